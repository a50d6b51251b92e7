/* tests/test_common.c: ferry_strerror and ferry_version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ferry.h"

static void test_common_strerror_reserved_codes(void **state)
{
    (void)state;
    assert_string_equal(ferry_strerror(0), "Success");
    assert_string_equal(ferry_strerror(-ECHILD),
                        "Object inherited across fork; call its after_fork "
                        "first");
    assert_string_equal(ferry_strerror(-ESHUTDOWN),
                        "Loop or pool is closing or closed");
    assert_non_null(ferry_strerror(-EIO));
    assert_true(strlen(ferry_strerror(-EIO)) > 0);
    assert_non_null(ferry_strerror(-99999));
}

static void test_common_version(void **state)
{
    (void)state;
    assert_string_equal(ferry_version(), "0.1.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_strerror_reserved_codes),
        cmocka_unit_test(test_common_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
