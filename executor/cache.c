/*
 * executor/cache.c: task-sized blocks without malloc on the hot path.
 *
 * Task handles and group tasks are allocated on the submitting thread and
 * freed on whichever worker completes them, so plain malloc/free moves
 * every block across threads and ends in glibc's slow paths (_int_malloc
 * was the largest item of a tiny-task profile). Instead:
 *   - every thread keeps a private free list (no lock, no atomics);
 *   - a thread whose list grows past 2 * BATCH moves BATCH blocks, as one
 *     chain, to a process-wide depot (a mutex and a stack of chains);
 *   - a thread whose list is empty takes one chain from the depot, and
 *     only when the depot is empty too calls malloc.
 * So a producer/consumer pair touches the depot lock once per BATCH
 * tasks. The depot is capped; past the cap chains go back to free().
 * A thread's list goes back to the depot when the thread exits (a
 * pthread key destructor), and fork is handled with pthread_atfork
 * (the depot lock is a leaf lock, so taking it in prepare is safe).
 *
 * Blocks are FERRY__BLOCK_SIZE bytes; a free block's first word links the
 * list and its second word links chains in the depot.
 *
 * Thread: any.
 */
#include <pthread.h>
#include <stdlib.h>

#include "executor/internal.h"

enum {
    BATCH = 32,
    DEPOT_MAX = 4096, /* chains: 4096 * 32 * 64 bytes = 8 MiB at most */
};

struct block {
    struct block *next;  /* within a list or chain */
    struct block *chain; /* depot: next chain (chain heads only) */
    unsigned len;        /* depot: blocks in this chain (heads only) */
};

_Static_assert(sizeof(struct block) <= FERRY__BLOCK_SIZE, "block size");

static struct {
    pthread_mutex_t lock;
    struct block *chains; /* lock */
    unsigned n;           /* lock */
} depot = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

static _Thread_local struct block *tls_head;
static _Thread_local unsigned tls_n;
static _Thread_local bool tls_registered;

static void free_chain(struct block *b)
{
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

static void depot_put(struct block *chain, unsigned len)
{
    chain->len = len;
    pthread_mutex_lock(&depot.lock);
    if (depot.n < DEPOT_MAX) {
        chain->chain = depot.chains;
        depot.chains = chain;
        depot.n++;
        chain = NULL;
    }
    pthread_mutex_unlock(&depot.lock);
    free_chain(chain);
}

static struct block *depot_get(void)
{
    pthread_mutex_lock(&depot.lock);
    struct block *chain = depot.chains;
    if (chain != NULL) {
        depot.chains = chain->chain;
        depot.n--;
    }
    pthread_mutex_unlock(&depot.lock);
    return chain;
}

/* Thread exit: hand the list to the depot in chains of at most BATCH. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    while (tls_head != NULL) {
        struct block *chain = tls_head;
        struct block *last = chain;
        unsigned len = 1;
        for (; len < BATCH && last->next != NULL; len++)
            last = last->next;
        tls_head = last->next;
        last->next = NULL;
        depot_put(chain, len);
    }
    tls_n = 0;
}

static void prepare(void)
{
    pthread_mutex_lock(&depot.lock);
}

static void parent(void)
{
    pthread_mutex_unlock(&depot.lock);
}

static void child(void)
{
    /* Only this thread exists; the lock we took in prepare is ours. */
    pthread_mutex_unlock(&depot.lock);
}

static void setup(void)
{
    /* Without the key, exiting threads' lists are simply lost to the
     * cache (still valid memory); without atfork a child could find the
     * lock held. Both calls fail only on resource exhaustion at startup. */
    (void)pthread_key_create(&key, on_thread_exit);
    (void)pthread_atfork(prepare, parent, child);
}

static void register_thread(void)
{
    pthread_once(&once, setup);
    /* Any non-NULL value makes the destructor run at thread exit. */
    (void)pthread_setspecific(key, &tls_head);
    tls_registered = true;
}

void *ferry__block_alloc(void)
{
    struct block *b = tls_head;
    if (b == NULL) {
        if (!tls_registered)
            register_thread();
        b = depot_get();
        if (b == NULL)
            return malloc(FERRY__BLOCK_SIZE);
        tls_n = b->len;
    }
    tls_head = b->next;
    tls_n--;
    /* The next block was most likely freed on another CPU: start pulling
     * its line now rather than on the next call. */
    if (tls_head != NULL)
        __builtin_prefetch(tls_head, 1);
    return b;
}

void ferry__block_free(void *p)
{
    struct block *b = p;
    if (!tls_registered)
        register_thread();
    b->next = tls_head;
    tls_head = b;
    if (++tls_n < 2 * BATCH)
        return;
    /* Keep the newest BATCH blocks (cache-warm), give the rest away. */
    struct block *last = tls_head;
    for (unsigned i = 1; i < BATCH; i++)
        last = last->next;
    struct block *chain = last->next;
    last->next = NULL;
    depot_put(chain, tls_n - BATCH);
    tls_n = BATCH;
}
