/*
 * common/lock.c: the slow paths of struct ferry__lock (common/base.h),
 * Drepper's mutex 3 ("Futexes Are Tricky", 2004/2011, section 6).
 *
 * States: 0 free, 1 held, 2 held and a waiter may sleep. A locker that
 * finds the lock taken spins a little (the sections it guards are a few
 * stores long), then announces itself by exchanging in 2 and sleeps on
 * the futex while the word stays 2. It always takes the lock with the
 * value 2, because it cannot know whether other sleepers remain: the cost
 * is at most one spurious wake per contended episode, never a lost one.
 * The unlocker that sees 2 (its fetch_sub returned 2) stores 0 and wakes
 * one sleeper. A waker's 0 store races a new locker's CAS fairly; the
 * woken thread exchanges 2 again and sleeps if it lost.
 *
 * Memory order: every transition that takes the lock (the CAS in
 * ferry__lock, the exchanges here) is acquire; every one that releases it
 * (the fetch_sub in ferry__unlock, the store of 0 here) is release, so
 * each critical section happens-before the next one.
 *
 * Thread: any.
 */
#include <errno.h>

#include "common/base.h"

enum { SPINS = 64 };

void ferry__lock_slow(struct ferry__lock *l)
{
    for (unsigned i = 0; i < SPINS; i++) {
        uint32_t c = atomic_load_explicit(&l->v, memory_order_relaxed);
        if (c == 0 &&
            atomic_compare_exchange_weak_explicit(
                &l->v, &c, 1, memory_order_acquire, memory_order_relaxed))
            return;
        if (c == 2)
            break; /* sleepers already: join them */
        ferry__cpu_relax();
    }
    int saved = errno; /* the futex call may set it; callers keep theirs */
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        (void)ferry__futex_wait(&l->v, 2, 0);
    errno = saved;
}

void ferry__unlock_wake(struct ferry__lock *l)
{
    int saved = errno;
    atomic_store_explicit(&l->v, 0, memory_order_release);
    ferry__futex_wake(&l->v, 1);
    errno = saved;
}
