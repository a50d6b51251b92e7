/*
 * executor/internal.h: the pool's private structures and the ferry__ calls
 * shared between executor files and with the bridge.
 *
 * Model (Go's M:P split, algorithms.md §2): a pool has `ncores` cores (CPU
 * slots, Go's P) and up to max_threads workers (threads, Go's M). A worker
 * must hold a core to run CPU tasks or to search for work; every worker
 * owns a Chase-Lev deque, whether or not it holds a core, and any worker
 * may steal from any deque. A worker running blocking work marks its core
 * BLOCKED without releasing it; a worker that needs a core may retake a
 * BLOCKED one (Go's retake of a P in a syscall), and the blocked worker
 * then finds its core gone when it comes back (Go's exitsyscall slow path).
 *
 * Lock order: sched.lock and inject.lock are never held together.
 *
 * For the bridge: embed a struct ferry__task in your own allocation, call
 * ferry__task_init, then ferry__pool_submit_task. complete(t, status) runs
 * exactly once per successful submit, on a pool worker (or on the thread
 * that calls ferry_pool_shutdown(FERRY_CANCEL_PENDING), for tasks dropped
 * there): status 0 after fn ran, -ECANCELED when the task was dropped
 * without running. After complete returns the pool never touches t again;
 * before that it may (fn returning is not the end: the pool still stores
 * the task's final state), so t may be freed or reused only from complete
 * or after it.
 *
 * A task flagged FERRY__TASK_OWN_STATE (the bridge's jobs) arbitrates
 * start against cancel itself (its future's state does): the pool then
 * keeps no state for it (no start CAS, no DONE store; ferry__task_cancel
 * does not apply, the owner sets cancel_requested directly), reads
 * complete before fn, and touches t no more once fn has returned, so fn
 * may hand t's memory on (and complete(t, 0) must not touch it).
 */
#ifndef FERRY_EXECUTOR_INTERNAL_H
#define FERRY_EXECUTOR_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/base.h"
#include "executor/deque.h"
#include "ferry/executor.h"

/* ---- tasks (the bridge's interface) ---- */

struct ferry__task;

/* Runs once per successfully submitted task; see the file comment. */
typedef void ferry__task_complete_fn(struct ferry__task *t, int status);

enum ferry__task_state {
    FERRY__TASK_PENDING = 0,   /* queued */
    FERRY__TASK_RUNNING = 1,   /* a worker won the start CAS */
    FERRY__TASK_DONE = 2,      /* fn returned */
    FERRY__TASK_CANCELLED = 3, /* will never run */
};

/* Every flag a caller may pass. */
#define FERRY__TASK_PUBLIC_FLAGS ((unsigned)FERRY_TASK_BLOCKING)
/* Internal: see the file comment. */
#define FERRY__TASK_OWN_STATE (1u << 15)

struct ferry__task {
    struct ferry__task *next;          /* injection-queue link */
    ferry_task_fn *fn;                 /* what to run */
    void *arg;                         /* fn's argument */
    ferry__task_complete_fn *complete; /* runs after fn, or on a drop */
    uint64_t enqueue_ns;               /* set at submit, for queue_wait */
    _Atomic uint32_t state;            /* enum ferry__task_state */
    _Atomic uint16_t cancel_requested; /* polled by ferry_task_cancelled */
    uint16_t flags;                    /* FERRY_TASK_* */
};

/* Prepare t for one submission. Thread: any, before submitting t. */
void ferry__task_init(struct ferry__task *t, ferry_task_fn *fn, void *arg,
                      ferry__task_complete_fn *complete, unsigned flags);

/* Submit t without allocating: a worker of pool pushes on its own deque,
 * any other thread on the injection queue. Returns 0, -ESHUTDOWN,
 * -ECHILD, -EINVAL (NULL). On error complete will not run. Thread: any. */
int ferry__pool_submit_task(ferry_pool *pool, struct ferry__task *t);

/* Returns 0 (will never run: complete runs later with -ECANCELED),
 * -EBUSY (running: the cooperative flag is set), -EALREADY (finished or
 * already cancelled). Thread: any; t must stay valid during the call. */
int ferry__task_cancel(struct ferry__task *t);

/* ---- cores ---- */

/* A core's word is (seq << 2 | status); seq changes on every hand-over and
 * on every entry into blocking work, so a worker that comes back from
 * blocking can tell by one CAS whether its core is still its own, and the
 * monitor can tell one long blocking episode from two short ones. */
enum ferry__core_status {
    FERRY__CORE_IDLE = 0,    /* on the idle list (sched lock) */
    FERRY__CORE_RUNNING = 1, /* held by a worker that runs CPU work */
    FERRY__CORE_BLOCKED = 2, /* held by a worker in blocking work */
};

static inline uint64_t ferry__core_word(uint64_t seq, unsigned status)
{
    return seq << 2 | status;
}

static inline unsigned ferry__core_status(uint64_t word)
{
    return (unsigned)(word & 3u);
}

struct ferry__worker;

struct ferry__core {
    /* CAS by the holder (blocking enter/exit) and by retakers: its own
     * line, away from the next core's word. */
    alignas(FERRY__CACHELINE) _Atomic uint64_t word;
    struct ferry__core *next_idle; /* sched lock: idle list link */
    struct ferry__worker *holder;  /* sched lock: who was granted it */
    uint64_t mon_seen;             /* monitor only: BLOCKED word last seen */
    uint64_t mon_since;            /* monitor only: when it was first seen */
    unsigned index;                /* 0 .. ncores-1 */
};

/* ---- workers ---- */

/* Per-worker counters: written by the owner with relaxed load + store (no
 * RMW), read by ferry_pool_stats with relaxed loads. */
struct ferry__wstats {
    _Atomic uint64_t submitted;
    _Atomic uint64_t started; /* tasks taken to run (also the monitor's
                                 progress measure) */
    _Atomic uint64_t completed;
    _Atomic uint64_t cancelled;
    _Atomic uint64_t stolen;
    _Atomic uint64_t parks;
    _Atomic uint64_t unparks;
    _Atomic uint64_t queue_wait[FERRY_POOL_HIST_BUCKETS];
    _Atomic uint64_t run_time[FERRY_POOL_HIST_BUCKETS];
};

static inline void ferry__stat_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

enum {
    FERRY__TIME_SAMPLE = 32, /* one task in 32 per submitter is timed
                                (include/ferry/executor.h says so) */
    FERRY__BLOCK_SIZE = FERRY__CACHE_SMALL_BYTES, /* bytes per block */
};

struct ferry__worker {
    struct ferry__deque dq; /* own deque (aligned lines inside) */

    /* Owner-only fields, read by nobody else. */
    alignas(FERRY__CACHELINE) ferry_pool *pool;
    unsigned gen;             /* pool fork generation when started */
    unsigned index;           /* slot number, used in the thread name */
    struct ferry__core *core; /* the core we believe we hold, or NULL */
    uint64_t core_word;       /* its word while we hold it */
    unsigned blocking;        /* nesting depth of blocking sections */
    bool lazy;                /* our core stayed BLOCKED after a top-level
                                 blocking task (blocking.c) */
    unsigned nest;            /* depth of tasks run inside a task */
    unsigned tick;            /* tasks run, for the 61-task fairness check */
    bool searching;           /* counted in sched.nsearching */
    uint64_t rng;             /* xorshift state for victim choice */

    /* Read by other threads: what runs now (report, monitor). */
    alignas(FERRY__CACHELINE) _Atomic(const void *) cur_task;
    _Atomic(ferry_task_fn *) cur_fn;
    _Atomic(void *) cur_arg;
    _Atomic uint32_t blocked; /* 1 inside blocking work (stats) */
    _Atomic int tid;          /* kernel thread id (the monitor's look) */
    struct ferry__wstats st;

    /* Park token (algorithms.md §3.1): EMPTY, NOTIFIED or PARKED. */
    alignas(FERRY__CACHELINE) _Atomic uint32_t park;
    /* Fields below are protected by sched.lock. */
    struct ferry__worker *next; /* idle stack or wanter queue link */
    bool idle;                  /* on the idle stack */
    bool wanting;               /* on the wanter queue */
    bool live;                  /* a thread runs on this record */
    bool joinable;              /* thread exited or running: join it */
    pthread_t thread;
};

/* ---- the injection queue (inject.c) ---- */

/* Slots of the injection queue's ring: a loop's window of 1024 offloads
 * fits, with room for outside submitters; beyond it, the list. */
enum { FERRY__INJECT_RING = 4096 };

struct ferry__inject {
    struct ferry__lock lock;
    struct ferry__task *head;  /* lock: overflow older than the ring */
    struct ferry__task *tail;  /* lock */
    struct ferry__task *bhead; /* lock: overflow newer than the ring */
    struct ferry__task *btail; /* lock */
    uint32_t rhead;            /* lock: the ring's oldest slot */
    uint32_t rlen;             /* lock: tasks in the ring */
    uint64_t len;              /* lock: tasks queued, ring and list */
    uint64_t submitted;        /* lock: tasks pushed (stats) */
    int closed;                /* lock: 0 open, 1 workers only, 2 closed */
    /* 1 while the queue is non-empty: written under the lock on the empty
     * <-> non-empty edges only, read without it by searchers and wake
     * decisions. Its own line, so their polling does not pull the lock's
     * line away from a submitter in the middle of a burst. */
    alignas(FERRY__CACHELINE) _Atomic uint32_t nonempty;
    alignas(FERRY__CACHELINE) struct ferry__task *ring[FERRY__INJECT_RING];
};

int ferry__inject_init(struct ferry__inject *q);
void ferry__inject_term(struct ferry__inject *q);
/* Returns 0 or -ESHUTDOWN (closed for this caller: nested says whether
 * the caller is one of the pool's workers). *was_empty: the push made the
 * queue non-empty, so the caller must notify (only then). */
int ferry__inject_push(struct ferry__inject *q, struct ferry__task *t,
                       bool nested, bool *was_empty);
/* As ferry__inject_push for the n tasks of ts, in order, all or nothing,
 * in one lock (defer.c's batches). */
int ferry__inject_push_batch(struct ferry__inject *q,
                             struct ferry__task *const *ts, uint64_t n,
                             bool nested, bool *was_empty);
/* Put back a task already accepted, whatever the closed level. */
void ferry__inject_requeue(struct ferry__inject *q, struct ferry__task *t);
/* Pop len / share + 1 tasks, at most max, oldest first, into out[];
 * returns how many (0: empty). When *split is set, tasks were left
 * behind: the caller notifies, so that another worker shares them (Go's
 * wake-another-if-more-work; no wake-up is lost without it, park.pml). */
uint64_t ferry__inject_pop_batch(struct ferry__inject *q, uint64_t share,
                                 uint64_t max, struct ferry__task **out,
                                 bool *split);
/* As ferry__inject_pop_batch, but 0 also when another thread holds the
 * lock: the workers' pop, which never waits for it. */
uint64_t ferry__inject_try_pop_batch(struct ferry__inject *q, uint64_t share,
                                     uint64_t max, struct ferry__task **out,
                                     bool *split);
/* Whether tasks are queued (no lock). */
static inline bool ferry__inject_nonempty(struct ferry__inject *q)
{
    return atomic_load_explicit(&q->nonempty, memory_order_relaxed) != 0;
}
/* Queued tasks (takes the lock). */
uint64_t ferry__inject_len(struct ferry__inject *q);
/* 0 open, 1 only nested submits, 2 none. */
void ferry__inject_close(struct ferry__inject *q, int level);
/* Single-threaded (after fork): reinit the lock, drop the tasks. */
void ferry__inject_reset(struct ferry__inject *q);

/* ---- the pool ---- */

enum ferry__pool_state {
    FERRY__POOL_OPEN = 0,
    FERRY__POOL_DRAIN = 1,  /* shutting down: run what is queued */
    FERRY__POOL_CANCEL = 2, /* shutting down: drop what is queued */
};

struct ferry__sched {
    pthread_mutex_t lock;
    struct ferry__core *idle_cores; /* lock */
    struct ferry__worker *idle;     /* lock: parked workers, a stack */
    struct ferry__worker *wanters;  /* lock: FIFO of workers owed a core */
    struct ferry__worker *wanters_tail;
    unsigned nidle;    /* lock: workers on the idle stack */
    unsigned nthreads; /* lock: live worker threads */
    unsigned nslots;   /* lock: slots ever used */
    bool mon_sleeping; /* lock: monitor waits untimed */
    bool spawn_retry;  /* lock: a worker could not be started for queued
                          work; the monitor retries (monitor.c) */
    /* Written under the lock, rarely (park, wake, hand-over); read without
     * it by every submit and after every task: a line of their own, away
     * from the lock word, which parking workers keep taking. */
    alignas(FERRY__CACHELINE) _Atomic unsigned nidle_cores;
    _Atomic unsigned nwanters;
    /* Futex word: live worker threads, for the shutdown wait. */
    _Atomic uint32_t alive;
    /* Workers searching for work (Go's nmspinning): written whenever one
     * starts or stops searching, read by every submit: its own line. */
    alignas(FERRY__CACHELINE) _Atomic unsigned nsearching;
};

/* Layout: the first lines are read on every task and written almost never
 * (configuration, state, the slot table); the injection queue, the
 * scheduler and the monitor follow on lines of their own, so a submitter
 * taking the queue's lock does not invalidate what workers read. */
struct ferry_pool {
    /* Configuration, read-only after creation. */
    unsigned ncores;
    unsigned max_threads;
    uint64_t keepalive_ns;
    uint64_t starvation_ns;
    size_t stack_size;
    uint64_t queue_limit;
    char prefix[16];
    ferry_pool_thread_fn *on_start;
    ferry_pool_thread_fn *on_stop;
    void *hook_ctx;

    unsigned gen;      /* ferry__fork_gen() at creation/after_fork */
    pid_t pid;         /* getpid() likewise */
    _Atomic int state; /* enum ferry__pool_state */

    struct ferry__core *cores;              /* ncores of them */
    _Atomic(struct ferry__worker *) *slots; /* max_threads; kept to free */
    unsigned char *slot_used;               /* sched lock: a thread runs */
    _Atomic unsigned nslots;                /* slots published to thieves */
    alignas(FERRY__CACHELINE) struct ferry__inject inject;
    alignas(FERRY__CACHELINE) struct ferry__sched sched;

    /* The monitor thread (monitor.c): written every tick while busy. */
    alignas(FERRY__CACHELINE) pthread_t mon;
    bool mon_running;
    _Atomic uint32_t mon_word; /* futex: bumped to wake the monitor */
    _Atomic int mon_stop;
    /* 1 while the monitor polls for long-blocked cores (Go's sysmon
     * retake); set by ferry__want_retake, cleared by the monitor. */
    _Atomic uint32_t mon_fast;
    uint64_t mon_started;  /* monitor only */
    uint64_t mon_since_ns; /* monitor only */

    /* Pool-wide counters for rare events (lock or relaxed RMW). */
    _Atomic uint64_t spares_created;
    _Atomic uint64_t spares_retired;
    _Atomic uint64_t starvation_events;
    _Atomic uint64_t dropped; /* cancelled outside any worker */
    /* References on the pool's memory: the pool's own, dropped by
     * ferry_pool_free, and one per deferred chain (defer.c). */
    _Atomic uint32_t refs;
    /* Deferred chains being pushed right now (defer.c): destroy() waits
     * for 0 before it joins and frees the parts. */
    _Atomic uint32_t flushing;

    /* Worker records inherited across fork, freed by ferry_pool_free. */
    struct ferry__worker **stale;
    unsigned nstale;
};

/* The public task handle: an internal task plus a reference count. */
struct ferry_task {
    struct ferry__task task; /* first: report pointers equal the handle */
    _Atomic uint32_t refs;   /* the pool's and the caller's */
    _Atomic int status;      /* -EAGAIN until complete ran */
    ferry_free_fn *dispose;  /* for arg, when the task is dropped */
};

/* ---- shared between executor files ---- */

/* The calling thread's worker record (any pool), or NULL. */
struct ferry__worker *ferry__worker_self(void);
/* The record if the caller is a worker of pool (this fork generation). */
struct ferry__worker *ferry__worker_of(ferry_pool *pool);
/* The task running on this thread (NULL outside tasks). */
struct ferry__task *ferry__current_task(void);

/* The slot table. A record is built, then published with release stores
 * of slots[i] and nslots (ferry__worker_create_locked); these acquire
 * loads pair with them, so a record seen is a record fully built. Records
 * live as long as the pool, so a pointer read here never dangles. */
static inline unsigned ferry__nslots(ferry_pool *pool)
{
    return atomic_load_explicit(&pool->nslots, memory_order_acquire);
}

static inline struct ferry__worker *ferry__slot(ferry_pool *pool, unsigned i)
{
    return atomic_load_explicit(&pool->slots[i], memory_order_acquire);
}

/* Inherited across fork: one load on hot paths (the atfork generation). */
static inline bool ferry__pool_stale(const ferry_pool *pool)
{
    return pool->gen != ferry__fork_gen();
}

/* Slow paths also compare the pid, which catches a raw clone() or _Fork()
 * that ran no atfork handler (common/fork.c). */
bool ferry__pool_stale_slow(const ferry_pool *pool);

static inline int ferry__pool_state(ferry_pool *pool)
{
    return atomic_load_explicit(&pool->state, memory_order_acquire);
}

/* thread.c */
unsigned ferry__cpu_count(void);
size_t ferry__stack_min(void);
int ferry__thread_spawn(ferry_pool *pool, pthread_t *out, void *(*fn)(void *),
                        void *arg);
void ferry__thread_name(const char *prefix, const char *suffix);
/* The calling thread's kernel id. */
int ferry__gettid(void);
/* Whether thread tid of this process is running or runnable (state R in
 * /proc), as opposed to asleep in the kernel; false when unknown. */
bool ferry__thread_on_cpu(int tid);
/* A mutex that spins briefly before sleeping. Returns 0 or -errno. */
int ferry__mutex_init_adaptive(pthread_mutex_t *m);

/* worker.c */
void *ferry__worker_main(void *arg);
/* Lock held: start a thread holding core c. 0, -ENOMEM or -EAGAIN. */
int ferry__worker_create_locked(ferry_pool *pool, struct ferry__core *c,
                                bool searching);
void ferry__worker_record_free(struct ferry__worker *w);
void ferry__run_task(struct ferry__worker *w, struct ferry__task *t);
/* Own deque, then a batch from the injection queue. */
struct ferry__task *ferry__find_local(struct ferry__worker *w);
/* One sweep over random victims; *raced set when a steal lost a race. */
struct ferry__task *ferry__steal_any(struct ferry__worker *w, bool *raced);
/* Complete t with -ECANCELED without running it (w may be NULL). */
void ferry__drop_task(ferry_pool *pool, struct ferry__worker *w,
                      struct ferry__task *t);
/* FERRY__BLOCK_SIZE bytes from the calling thread's cache (common/cache.c,
 * shared with the loop's handles and the bridge's jobs). */
static inline void *ferry__block_alloc(void)
{
    return ferry__cache_get(FERRY__CACHE_SMALL);
}

static inline void ferry__block_free(void *p)
{
    ferry__cache_put(FERRY__CACHE_SMALL, p);
}

/* park.c: sleepers, searching, wake-ups, core hand-over. */
void ferry__unpark(struct ferry__worker *w);
/* Sleep until unparked (true) or the absolute deadline (false; 0 = none). */
bool ferry__park_token(struct ferry__worker *w, uint64_t deadline_ns);
bool ferry__work_visible(ferry_pool *pool);
/* Lock held: an idle core, now RUNNING under a new seq and not yet
 * granted; NULL if none. (BLOCKED cores are retaken by the monitor.) */
struct ferry__core *ferry__core_get_locked(ferry_pool *pool);
/* Whether some core is held by a worker inside blocking work. */
bool ferry__any_blocked_core(ferry_pool *pool);
/* Lock held: c (held by nobody) to the first wanter, or the idle list. */
void ferry__core_put_locked(ferry_pool *pool, struct ferry__core *c);
void ferry__grant_locked(struct ferry__worker *w, struct ferry__core *c);
/* Lock held: give up w's core if it still owns it. */
void ferry__core_release_locked(struct ferry__worker *w);
bool ferry__owns_core(struct ferry__worker *w);
/* Lock held, released on return: if work is visible and a core is idle,
 * run that core on an idle or new worker. Returns 1 (started), 0 (no work
 * or no idle core), or the error of starting a thread. */
int ferry__start_for_work_locked(ferry_pool *pool);
/* Lock held, released on return: run c on an idle or new worker. */
int ferry__start_worker_locked(ferry_pool *pool, struct ferry__core *c,
                               bool searching);
/* Caller has fenced after publishing: wake one worker if nobody searches. */
void ferry__wakep(ferry_pool *pool);
/* Publication fence + ferry__wakep: call after queueing work. */
void ferry__notify(ferry_pool *pool);
bool ferry__begin_searching(struct ferry__worker *w);
void ferry__end_searching(struct ferry__worker *w);
/* Give up the core (if any) and sleep until granted one. Returns false
 * when the thread should exit. */
bool ferry__park_worker(struct ferry__worker *w);
bool ferry__idle_worker(struct ferry__worker *w);
/* Pop every idle worker without a core: they exit (shutdown). */
void ferry__wake_all_idle(ferry_pool *pool);

/* blocking.c */
void ferry__blocking_enter(struct ferry__worker *w);
/* top_level: the worker loop will find a core itself; otherwise wait. */
void ferry__blocking_exit(struct ferry__worker *w, bool top_level);
/* A worker whose core stayed BLOCKED after a top-level blocking task
 * (lazy) marks it RUNNING again, or learns it was retaken (core NULL).
 * Called before anything but another blocking task: a CPU task, parking,
 * giving the core away. No-op otherwise. */
void ferry__blocking_settle(struct ferry__worker *w);
/* After moving tasks onto our own deque: if our core is lazily BLOCKED,
 * fence and make the monitor poll (blocking.c). */
void ferry__lazy_moved_work(struct ferry__worker *w);
void ferry__wait_for_core(struct ferry__worker *w);
void ferry__handoff_to_wanter(struct ferry__worker *w);

/* monitor.c */
int ferry__monitor_start(ferry_pool *pool);
void ferry__monitor_stop(ferry_pool *pool);
void ferry__monitor_kick_locked(ferry_pool *pool);
/* After a fence that follows publishing work or a BLOCKED mark: make sure
 * the monitor polls for cores blocked too long (lock-free, any thread). */
void ferry__want_retake(ferry_pool *pool);
/* Lock held: a thread could not be started; have the monitor retry. */
void ferry__monitor_retry_locked(ferry_pool *pool);

/* stats.c */
void ferry__hist_add(_Atomic uint64_t *hist, uint64_t ns);
uint64_t ferry__queue_depth(ferry_pool *pool);

/* pool.c */
int ferry__submit(ferry_pool *pool, struct ferry__task *t, uint64_t limit);
/* Sample t's enqueue time (one task in FERRY__TIME_SAMPLE per thread). */
void ferry__stamp_enqueue(struct ferry__task *t);

/* defer.c: deferred submission (see its file comment). Thread: each
 * function acts on the calling thread's chain. */
/* Gets a refused chain (tasks linked through next), which it owns. */
typedef void ferry__defer_refused_fn(struct ferry__task *chain);
/* Tasks per chain at most: one lock per 64 offloads is most of the gain,
 * and a callback that offloads thousands at once (a batch) should not
 * keep the workers waiting until it returns (bench: ferry.tiny). */
enum { FERRY__DEFER_MAX = 64 };
/* Hold t for pool (refused: the hook for the chain if the pool refuses
 * it); false: not deferrable now, submit it at once. */
bool ferry__defer_task(ferry_pool *pool, struct ferry__task *t,
                       ferry__defer_refused_fn *refused);
/* Hand the calling thread's chain to its pool (no-op without one). */
void ferry__defer_flush(void);
/* The pool's memory: one reference for the pool itself (dropped by
 * ferry_pool_free) and one per deferred chain. Thread: any. */
void ferry__pool_ref(ferry_pool *pool);
void ferry__pool_unref(ferry_pool *pool);
int ferry__pool_start_threads(ferry_pool *pool);

#endif /* FERRY_EXECUTOR_INTERNAL_H */
