/*
 * common/hazard.c: one hazard pointer per thread, after M. M. Michael,
 * "Hazard Pointers: Safe Memory Reclamation for Lock-Free Objects", IEEE
 * TPDS 15(6), 2004.
 *
 * Use: a thread that still reads an object after the publication that lets
 * another thread free it (a completion pushed onto a loop's inbox, then the
 * wake-up's reads of the loop) sets its record to the object before the
 * publication and clears it after its last read; whoever frees the object
 * calls ferry__hz_wait first. That replaces a reference count taken and
 * dropped around every publication (two locked instructions) by two plain
 * stores to a line of the thread's own.
 *
 * Records are cache lines on a push-only list, never freed: a thread takes
 * one on first use (a free one by CAS, else a new one) and gives it back
 * at exit (pthread key destructor), so the list is as long as the most
 * threads that used it at once. The scan walks it without a lock, which
 * also makes it safe in a forked child, whose atfork handler clears the
 * records of the threads that did not survive the fork. (A raw clone or
 * _Fork skips atfork handlers: a record that held a loop at that moment
 * would then make the child's free of that loop wait forever. fork.c
 * tolerates those only on its pid-checked slow paths; this is not one.)
 *
 * Memory ordering. Setter: store of p, sequenced before its release (or
 * stronger) publication; reads of p; release store of NULL (and release
 * stores of later objects, which a freer may read instead of the NULL).
 * Freer: whatever tells it p may go (an acquire that reads from the
 * publication, directly or through release sequences and reference
 * counts) happens-after the set, so its acquire load of the record reads
 * p or a later value (write-read coherence); it waits until the record no
 * longer holds p, and reading the setter's NULL makes every read of p
 * before it happen-before the free.
 *
 * Thread: any.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "common/hazard.h"

static _Atomic(struct ferry__hz *) hz_list;
static pthread_once_t hz_once = PTHREAD_ONCE_INIT;
static pthread_key_t hz_key;
static bool hz_key_ok;
static FERRY__TLS struct ferry__hz *tls_hz;

static void hz_put(struct ferry__hz *h)
{
    atomic_store_explicit(&h->ptr, NULL, memory_order_release);
    atomic_store_explicit(&h->used, false, memory_order_release);
}

static void on_thread_exit(void *h)
{
    tls_hz = NULL;
    hz_put(h);
}

/* In the child only the forking thread exists, and it is not between a set
 * and a clear (it is in fork()). The others' records would hold their
 * pointers forever: give them back. */
static void on_fork_child(void)
{
    struct ferry__hz *h = atomic_load_explicit(&hz_list, memory_order_acquire);
    for (; h != NULL; h = h->next)
        if (h != tls_hz)
            hz_put(h);
}

static void setup(void)
{
    hz_key_ok = pthread_key_create(&hz_key, on_thread_exit) == 0 &&
                pthread_atfork(NULL, NULL, on_fork_child) == 0;
}

static struct ferry__hz *claim(void)
{
    struct ferry__hz *h = atomic_load_explicit(&hz_list, memory_order_acquire);
    for (; h != NULL; h = h->next) {
        bool no = false;
        if (!atomic_load_explicit(&h->used, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(&h->used, &no, true,
                                                    memory_order_acquire,
                                                    memory_order_relaxed))
            return h;
    }
    h = aligned_alloc(FERRY__CACHELINE, sizeof *h);
    if (h == NULL)
        return NULL;
    atomic_init(&h->ptr, NULL);
    atomic_init(&h->used, true);
    /* Release: the record's fields before a scanner's acquire walk. */
    h->next = atomic_load_explicit(&hz_list, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        &hz_list, &h->next, h, memory_order_release, memory_order_relaxed))
        ;
    return h;
}

static struct ferry__hz *hz_self_slow(void)
{
    pthread_once(&hz_once, setup);
    if (!hz_key_ok)
        return NULL;
    struct ferry__hz *h = claim();
    if (h == NULL)
        return NULL;
    if (pthread_setspecific(hz_key, h) != 0) {
        hz_put(h);
        return NULL;
    }
    tls_hz = h;
    return h;
}

struct ferry__hz *ferry__hz_self(void)
{
    return tls_hz != NULL ? tls_hz : hz_self_slow();
}

void ferry__hz_wait(const void *p)
{
    struct ferry__hz *h = atomic_load_explicit(&hz_list, memory_order_acquire);
    for (; h != NULL; h = h->next) {
        /* A setter between its publication and its clear runs a few loads
         * and at most one eventfd write. */
        for (unsigned n = 0;
             atomic_load_explicit(&h->ptr, memory_order_acquire) == p; n++)
            ferry__backoff(n);
    }
}

unsigned ferry__hz_count(void)
{
    unsigned n = 0;
    struct ferry__hz *h = atomic_load_explicit(&hz_list, memory_order_acquire);
    for (; h != NULL; h = h->next)
        n++;
    return n;
}
