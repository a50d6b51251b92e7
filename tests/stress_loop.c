/*
 * tests/stress_loop.c: the inbox and wake-up protocol under load.
 *
 * 1. FERRY_STRESS_PRODUCERS (4) threads x FERRY_STRESS_POSTS (250000)
 *    ferry_call_soon_threadsafe while the loop runs: every callback runs
 *    exactly once, and each producer's callbacks run in its post order.
 * 2. Close racing posts, FERRY_STRESS_ROUNDS (200) rounds: 4 threads post
 *    (up to 20000 each) until refused while the owner runs a few
 *    iterations and closes. Every
 *    accepted post either ran or was disposed; every other one returned
 *    -ESHUTDOWN. Counted: nothing lost, nothing twice.
 *
 * Helper threads count into atomics; the test thread asserts after join.
 */
#include <string.h>

#include "helpers.h"

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

#define MAX_PRODUCERS 16

struct item {
    int producer;
    long seq;
};

struct order_state {
    ferry_loop *loop;
    long posts;
    int producers;
    long next[MAX_PRODUCERS]; /* loop thread only */
    long received;            /* loop thread only */
    long out_of_order;        /* loop thread only */
    _Atomic long post_errors;
};

static struct order_state os;

static void on_item(void *arg)
{
    struct item *it = arg;
    if (os.next[it->producer] != it->seq)
        os.out_of_order++;
    os.next[it->producer] = it->seq + 1;
    free(it);
    if (++os.received == os.posts * os.producers)
        ferry_loop_stop(os.loop);
}

static void *produce(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (long i = 0; i < os.posts; i++) {
        struct item *it = malloc(sizeof *it);
        it->producer = id;
        it->seq = i;
        while (ferry_call_soon_threadsafe(os.loop, on_item, it, free) != 0)
            atomic_fetch_add(&os.post_errors, 1);
    }
    return NULL;
}

static void test_stress_threadsafe_posts_exactly_once_in_order(void **state)
{
    (void)state;
    memset(&os, 0, sizeof os);
    os.posts = env_long("FERRY_STRESS_POSTS", 250000);
    os.producers = (int)env_long("FERRY_STRESS_PRODUCERS", 4);
    assert_true(os.producers > 0 && os.producers <= MAX_PRODUCERS);
    assert_int_equal(ferry_loop_new(&os.loop, NULL), 0);
    pthread_t t[MAX_PRODUCERS];
    for (int i = 0; i < os.producers; i++)
        t[i] = spawn(produce, (void *)(intptr_t)i);
    assert_int_equal(ferry_loop_run_forever(os.loop), 0);
    for (int i = 0; i < os.producers; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(os.received, os.posts * os.producers);
    assert_int_equal(os.out_of_order, 0);
    assert_int_equal(atomic_load(&os.post_errors), 0);
    for (int i = 0; i < os.producers; i++)
        assert_int_equal(os.next[i], os.posts);
    struct ferry_loop_stats st;
    ferry_loop_stats(os.loop, &st);
    assert_int_equal(st.posts, os.posts * os.producers);
    print_message("posts %ld, wake-up writes %lu, iterations %lu\n",
                  os.received, (unsigned long)st.wakeups_written,
                  (unsigned long)st.iterations);
    assert_int_equal(ferry_loop_free(os.loop), 0);
}

/* ---- close racing posts ---- */

struct race {
    ferry_loop *loop;
    _Atomic int go;
    _Atomic long accepted;
    _Atomic long refused;
    _Atomic long ran;
    _Atomic long disposed;
    _Atomic long other;
};

static void race_ran(void *arg)
{
    atomic_fetch_add(&((struct race *)arg)->ran, 1);
}

static void race_disposed(void *arg)
{
    atomic_fetch_add(&((struct race *)arg)->disposed, 1);
}

static void *race_post(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(&r->go))
        ;
    /* Bounded: the loop may close late (or the producers may outrun it);
     * the count, not a flood, is what the test needs. */
    for (long i = 0; i < 20000; i++) {
        int rc =
            ferry_call_soon_threadsafe(r->loop, race_ran, r, race_disposed);
        if (rc == 0) {
            atomic_fetch_add(&r->accepted, 1);
        } else if (rc == -ESHUTDOWN) {
            atomic_fetch_add(&r->refused, 1);
            break;
        } else {
            atomic_fetch_add(&r->other, 1);
            break;
        }
    }
    ferry_loop_unref(r->loop);
    return NULL;
}

static void test_stress_close_racing_posts(void **state)
{
    (void)state;
    long rounds = env_long("FERRY_STRESS_ROUNDS", 200);
    long total_acc = 0, total_ran = 0, total_disp = 0, total_refused = 0;
    for (long round = 0; round < rounds; round++) {
        struct race r = {0};
        assert_int_equal(ferry_loop_new(&r.loop, NULL), 0);
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            ferry_loop_ref(r.loop); /* each poster holds a reference */
            t[i] = spawn(race_post, &r);
        }
        atomic_store(&r.go, 1);
        for (long i = 0; i < round % 7; i++)
            assert_int_equal(ferry_loop_run_once(r.loop, 0), 0);
        assert_int_equal(ferry_loop_free(r.loop), 0); /* close + unref */
        for (int i = 0; i < 4; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&r.other), 0);
        assert_true(atomic_load(&r.refused) <= 4);
        assert_int_equal(atomic_load(&r.ran) + atomic_load(&r.disposed),
                         atomic_load(&r.accepted));
        total_acc += r.accepted;
        total_ran += r.ran;
        total_disp += r.disposed;
        total_refused += r.refused;
    }
    print_message("rounds %ld: accepted %ld = ran %ld + disposed %ld; "
                  "refused %ld\n",
                  rounds, total_acc, total_ran, total_disp, total_refused);
    assert_true(total_refused > 0); /* the close did race some posts */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_threadsafe_posts_exactly_once_in_order),
        cmocka_unit_test(test_stress_close_racing_posts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
