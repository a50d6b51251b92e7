/*
 * common/base.h: internal helpers shared by every module.
 *
 * container_of, cache-line padding, the monotonic clock, the fork
 * generation (common/fork.c) and the futex wrappers (common/futex.c).
 * Nothing here is exported from the shared library.
 */
#ifndef FERRY_COMMON_BASE_H
#define FERRY_COMMON_BASE_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <time.h>

#include "ferry/common.h"

/* 128, not 64: Intel's adjacent-line prefetcher pulls pairs of lines, so
 * two hot fields 64 bytes apart still false-share (algorithms.md §1.4). */
#define FERRY__CACHELINE 128

#define FERRY__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define ferry__container_of(ptr, type, member)                                 \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/*
 * Thread-local storage for the library's own per-thread state. libferry.so
 * is PIC, so plain _Thread_local compiles to the general-dynamic model: a
 * __tls_get_addr call per access, which callgrind put at 15% of the loop
 * thread's instructions per offload. The initial-exec model is one
 * %fs-relative load. Its cost: the library's TLS (about 200 bytes) must fit
 * in glibc's static TLS surplus if the library is dlopen()ed, which it does
 * (the surplus is 1664 bytes by default).
 */
#define FERRY__TLS _Thread_local __attribute__((tls_model("initial-exec")))

#if defined(__SANITIZE_THREAD__)
#define FERRY__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FERRY__TSAN 1
#endif
#endif

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t ferry__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timespec ferry__ns_to_ts(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    return ts;
}

/* A hint to the CPU that we are spinning (pause on x86). */
static inline void ferry__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* Step n of waiting for another thread's short critical window: pause,
 * then yield (it may have been preempted), then sleep, which also lets it
 * run if we are a real-time thread that sched_yield would not step aside
 * for. */
static inline void ferry__backoff(unsigned n)
{
    if (n < 64)
        ferry__cpu_relax();
    else if (n < 128)
        sched_yield();
    else
        nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
}

/* Prefetch the line at p with intent to write: the line comes over in the
 * exclusive state, so the stores that follow need no second round trip
 * to the core that wrote it last. PREFETCHW on x86-64 (executed as a NOP
 * by the rare x86-64 CPU without it); a write-hinted prefetch elsewhere. */
static inline void ferry__prefetch_w(const void *p)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("prefetchw %0" ::"m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

/*
 * Fork generation (common/fork.c). A pthread_atfork child handler bumps it;
 * every loop and pool stores the value it was built under and answers
 * -ECHILD when the two differ. One relaxed load per check: the handler runs
 * in the child before any other code there, single-threaded.
 */
unsigned ferry__fork_gen(void);
/* Install the atfork handler once (idempotent, thread-safe). */
void ferry__fork_init(void);

/*
 * Futex wrappers (common/futex.c). wait blocks while *addr == expected,
 * until woken, a signal, or the absolute CLOCK_MONOTONIC deadline (0 = none).
 * Returns 0 or -ETIMEDOUT; spurious returns happen and callers loop.
 */
int ferry__futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                      uint64_t deadline_ns);
void ferry__futex_wake(_Atomic uint32_t *addr, int count);

/*
 * A small futex lock (common/lock.c) for critical sections of a few
 * stores, such as the pool's injection queue: the uncontended lock and
 * unlock are one atomic RMW each, inlined, where a pthread mutex costs two
 * calls and a type dispatch. The protocol is U. Drepper, "Futexes Are
 * Tricky" (2004/2011), mutex 3: 0 free, 1 held, 2 held with possible
 * sleepers; the slow path spins briefly before sleeping. Lock is acquire,
 * unlock release, so the lock orders the data it protects. Not recursive;
 * a forked child re-initialises it (the holder may not exist there).
 */
struct ferry__lock {
    _Atomic uint32_t v;
};
#define FERRY__LOCK_INIT                                                       \
    {                                                                          \
        0                                                                      \
    }
void ferry__lock_slow(struct ferry__lock *l);
void ferry__unlock_wake(struct ferry__lock *l);

static inline void ferry__lock_init(struct ferry__lock *l)
{
    atomic_init(&l->v, 0);
}

static inline void ferry__lock(struct ferry__lock *l)
{
    uint32_t c = 0;
    if (!atomic_compare_exchange_strong_explicit(
            &l->v, &c, 1, memory_order_acquire, memory_order_relaxed))
        ferry__lock_slow(l);
}

/* Take the lock if it is free, without waiting: true when taken. A plain
 * load first, so a caller that finds it held makes no locked instruction
 * (test-and-test-and-set). Acquire on success, as ferry__lock. */
static inline bool ferry__trylock(struct ferry__lock *l)
{
    uint32_t c = atomic_load_explicit(&l->v, memory_order_relaxed);
    return c == 0 &&
           atomic_compare_exchange_strong_explicit(
               &l->v, &c, 1, memory_order_acquire, memory_order_relaxed);
}

static inline void ferry__unlock(struct ferry__lock *l)
{
    /* 2: someone may sleep; the slow path hands the lock over with a
     * release store and a wake. */
    if (atomic_fetch_sub_explicit(&l->v, 1, memory_order_release) != 1)
        ferry__unlock_wake(l);
}

/*
 * Block cache (common/cache.c): per-thread free lists over a shared depot,
 * for the fixed-size objects of the hot paths. Thread: any; a block may be
 * freed on another thread than the one that allocated it.
 */
enum ferry__cache_class {
    FERRY__CACHE_SMALL, /* pool tasks and task handles */
    FERRY__CACHE_LARGE, /* loop handles and offload jobs */
    FERRY__CACHE_CLASSES
};
#define FERRY__CACHE_SMALL_BYTES 64
#define FERRY__CACHE_LARGE_BYTES 192
void *ferry__cache_get(enum ferry__cache_class c);
void ferry__cache_put(enum ferry__cache_class c, void *p);

#endif /* FERRY_COMMON_BASE_H */
