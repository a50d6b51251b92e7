/*
 * common/fork.c: fork detection by generation counter.
 *
 * One pthread_atfork(NULL, NULL, child) handler, registered once through
 * pthread_once, bumps the generation in the child. It takes no lock and
 * rebuilds nothing: the child only learns that every loop and pool built
 * before the fork is stale (-ECHILD) until its after_fork call rebuilds it
 * (algorithms.md §7.3). Objects also store getpid() so that a raw clone()
 * or _Fork(), which skip atfork handlers, is caught on the slow paths that
 * compare pids.
 *
 * Thread: the handler runs in the child, single-threaded, before fork()
 * returns there; the generation is read with relaxed loads elsewhere.
 */
#include <pthread.h>

#include "common/base.h"

static _Atomic unsigned fork_gen = 1;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void install(void)
{
    /* Cannot fail in glibc except with ENOMEM; without the handler the pid
     * checks still catch the child, so the error is not fatal. */
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

void ferry__fork_init(void)
{
    pthread_once(&fork_once, install);
}

unsigned ferry__fork_gen(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}
