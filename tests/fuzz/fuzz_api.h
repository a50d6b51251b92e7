/*
 * tests/fuzz/fuzz_api.h: the entry points of the API-sequence fuzzer, for
 * libFuzzer and for the plain corpus runner (run_corpus.c).
 */
#ifndef FERRY_FUZZ_API_H
#define FERRY_FUZZ_API_H

#include <stddef.h>
#include <stdint.h>

/* Run one program (libFuzzer's entry point). Aborts on any violation. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stop the helper thread and free the persistent pools, so that a plain
 * run ends with nothing allocated (valgrind, LSan at exit). */
void fuzz_api_teardown(void);

#endif /* FERRY_FUZZ_API_H */
