/*
 * common/cache.c: small fixed-size blocks without malloc on the hot paths.
 *
 * Loop handles and offload jobs (192 bytes) and pool tasks (64 bytes) are
 * allocated on one thread and often freed on another (a post is made by a
 * producer and freed by the loop; a task by a submitter and freed by a
 * worker), so plain malloc/free moves every block across threads and ends
 * in glibc's slow paths. Instead, per size class:
 *   - every thread keeps a private free list (no lock, no atomics);
 *   - a thread whose list grows past 2 * BATCH moves BATCH blocks, as one
 *     chain, to a process-wide depot (a mutex and a stack of chains);
 *   - a thread whose list is empty takes one chain from the depot, and
 *     only when the depot is empty too calls malloc.
 * So a producer/consumer pair touches the depot lock once per BATCH
 * blocks. The depot is capped; past the cap chains go back to free(). A
 * thread's lists go back to the depot when it exits (a pthread key
 * destructor); fork is handled with pthread_atfork (the depot locks are
 * leaf locks, so taking them in prepare is safe).
 *
 * A free block's first word links its list, the second links chains in
 * the depot. Under AddressSanitizer the cache is bypassed, so that a use
 * after free of a block stays visible.
 *
 * Thread: any.
 */
#include <pthread.h>
#include <stdlib.h>

#include "common/base.h"

/* gcc says __SANITIZE_ADDRESS__; clang 14 only __has_feature. Under ASan
 * the cache is bypassed so that a use after free of a block stays
 * visible. */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_BYPASS 1
#endif
#endif

enum {
    BATCH = 32,
    DEPOT_MAX = 1024, /* chains per class: 1024 * 32 * 192 B = 6 MiB max */
};

struct block {
    struct block *next;  /* within a list or chain */
    struct block *chain; /* depot: next chain (chain heads only) */
    unsigned len;        /* depot: blocks in this chain (heads only) */
};

static const size_t class_size[FERRY__CACHE_CLASSES] = {
    [FERRY__CACHE_SMALL] = FERRY__CACHE_SMALL_BYTES,
    [FERRY__CACHE_LARGE] = FERRY__CACHE_LARGE_BYTES,
};

_Static_assert(sizeof(struct block) <= FERRY__CACHE_SMALL_BYTES, "blocks");

struct depot {
    pthread_mutex_t lock;
    struct block *chains; /* lock */
    unsigned n;           /* lock */
};

static struct depot depots[FERRY__CACHE_CLASSES] = {
    {PTHREAD_MUTEX_INITIALIZER, NULL, 0},
    {PTHREAD_MUTEX_INITIALIZER, NULL, 0},
};

struct list {
    struct block *head;
    unsigned n;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static FERRY__TLS struct list tls[FERRY__CACHE_CLASSES];
static FERRY__TLS bool tls_registered;

static void free_chain(struct block *b)
{
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

static void depot_put(struct depot *d, struct block *chain, unsigned len)
{
    chain->len = len;
    pthread_mutex_lock(&d->lock);
    if (d->n < DEPOT_MAX) {
        chain->chain = d->chains;
        d->chains = chain;
        d->n++;
        chain = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    free_chain(chain);
}

static struct block *depot_get(struct depot *d)
{
    pthread_mutex_lock(&d->lock);
    struct block *chain = d->chains;
    if (chain != NULL) {
        d->chains = chain->chain;
        d->n--;
    }
    pthread_mutex_unlock(&d->lock);
    return chain;
}

/* Thread exit: hand the lists to the depots in chains of at most BATCH. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    for (int c = 0; c < FERRY__CACHE_CLASSES; c++) {
        struct list *l = &tls[c];
        while (l->head != NULL) {
            struct block *chain = l->head;
            struct block *last = chain;
            unsigned len = 1;
            for (; len < BATCH && last->next != NULL; len++)
                last = last->next;
            l->head = last->next;
            last->next = NULL;
            depot_put(&depots[c], chain, len);
        }
        l->n = 0;
    }
}

static void prepare(void)
{
    for (int c = 0; c < FERRY__CACHE_CLASSES; c++)
        pthread_mutex_lock(&depots[c].lock);
}

static void release_all(void)
{
    for (int c = FERRY__CACHE_CLASSES - 1; c >= 0; c--)
        pthread_mutex_unlock(&depots[c].lock);
}

static void setup(void)
{
    /* Without the key, exiting threads' lists are simply lost to the
     * cache (still valid memory); without atfork a child could find a lock
     * held. Both calls fail only on resource exhaustion. In the child only
     * the forking thread exists and it holds the locks taken in prepare. */
    (void)pthread_key_create(&key, on_thread_exit);
    (void)pthread_atfork(prepare, release_all, release_all);
}

static void register_thread(void)
{
    pthread_once(&once, setup);
    /* Any non-NULL value makes the destructor run at thread exit. */
    (void)pthread_setspecific(key, &tls);
    tls_registered = true;
}

void *ferry__cache_get(enum ferry__cache_class c)
{
#if defined(CACHE_BYPASS)
    return malloc(class_size[c]);
#endif
    struct list *l = &tls[c];
    struct block *b = l->head;
    if (b == NULL) {
        if (!tls_registered)
            register_thread();
        b = depot_get(&depots[c]);
        if (b == NULL)
            return aligned_alloc(64, class_size[c]);
        l->n = b->len;
    }
    l->head = b->next;
    l->n--;
    /* The next block was most likely last written on another CPU (a
     * worker completed the job in it): start pulling its lines now, for
     * writing, rather than on the next call, which writes all of them. */
    if (l->head != NULL)
        for (size_t off = 0; off < class_size[c]; off += 64)
            ferry__prefetch_w((const char *)l->head + off);
    return b;
}

void ferry__cache_put(enum ferry__cache_class c, void *p)
{
#if defined(CACHE_BYPASS)
    free(p);
    return;
#endif
    struct list *l = &tls[c];
    struct block *b = p;
    if (!tls_registered)
        register_thread();
    b->next = l->head;
    l->head = b;
    if (++l->n < 2 * BATCH)
        return;
    /* Keep the newest BATCH blocks (cache-warm), give the rest away. */
    struct block *last = l->head;
    for (unsigned i = 1; i < BATCH; i++)
        last = last->next;
    struct block *chain = last->next;
    last->next = NULL;
    depot_put(&depots[c], chain, l->n - BATCH);
    l->n = BATCH;
}
