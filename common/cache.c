/*
 * common/cache.c: a per-thread cache of small fixed-size blocks (loop
 * handles and offload jobs), so that an offload in steady state makes no
 * malloc call.
 *
 * Each thread keeps a singly linked free list of at most CACHE_MAX blocks.
 * A block is freed onto the list of the thread that frees it, which for
 * run_in_executor and its done callback is the loop's thread (callbacks and
 * the caller's unref run there), the thread that allocates the next job:
 * the list stays warm without cross-thread traffic. A thread that only
 * frees (the loop, for handles posted by other threads) fills its list up
 * to the bound and frees the rest. A pthread key's destructor empties the
 * list when a thread exits.
 *
 * Under AddressSanitizer the cache is bypassed, so that a use after free
 * of a block is still caught.
 *
 * Thread: any; every list is touched by its own thread only.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/base.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_MAX 0
#else
#define CACHE_MAX 1024
#endif

struct block {
    struct block *next;
};

struct cache {
    struct block *head;
    unsigned n;
    bool registered; /* the exit destructor knows this thread's list */
};

static _Thread_local struct cache cache;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void drain(void *arg)
{
    struct cache *c = arg;
    while (c->head != NULL) {
        struct block *b = c->head;
        c->head = b->next;
        free(b);
    }
    c->n = 0;
}

static void make_key(void)
{
    (void)pthread_key_create(&key, drain);
}

void *ferry__cache_get(void)
{
    struct block *b = cache.head;
    if (b != NULL) {
        cache.head = b->next;
        cache.n--;
        return b;
    }
    return malloc(FERRY__CACHE_BLOCK);
}

void ferry__cache_put(void *block)
{
    /* n + 1 > MAX rather than n >= MAX: with CACHE_MAX 0 (ASan) the latter
     * is "unsigned >= 0", which gcc -O0 rejects (-Werror=type-limits). */
    if (cache.n + 1 > CACHE_MAX) {
        free(block);
        return;
    }
    if (!cache.registered) {
        pthread_once(&key_once, make_key);
        if (pthread_setspecific(key, &cache) != 0) {
            free(block);
            return;
        }
        cache.registered = true;
    }
    struct block *b = block;
    b->next = cache.head;
    cache.head = b;
    cache.n++;
}
