/*
 * loop/internal.h: the body of struct ferry_loop and the ferry__ calls the
 * loop's files (and the bridge) share.
 *
 * Threads: everything below the "owner-only" marker of struct ferry_loop is
 * touched by the owner thread only. The fields above it are the loop's
 * cross-thread surface: the inbox head, the polling / wake_pending pair of
 * the wake-up protocol (loop/wakeup.c), the stop request, the reference
 * count and the closed flag.
 */
#ifndef FERRY_LOOP_INTERNAL_H
#define FERRY_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "common/base.h"
#include "common/ec.h"
#include "ferry/future.h"
#include "ferry/loop.h"
#include "loop/poller.h"

/*
 * A node of the cross-thread inbox. Producers own it until the push
 * succeeds; then the loop owns it and calls exactly one of ops->run
 * (drained on the owner thread) or ops->drop (the loop closed first; also
 * on the owner thread). Neither may run user callbacks inline except
 * through the ready queue; drop may call a dispose. Two words: the ops
 * live in static tables, which keeps offload jobs small.
 */
struct ferry__post;

struct ferry__post_ops {
    void (*run)(struct ferry__post *p, ferry_loop *loop);
    void (*drop)(struct ferry__post *p);
};

struct ferry__post {
    struct ferry__post *next; /* written before the publishing CAS */
    const struct ferry__post_ops *ops;
};

/*
 * A node of the ready queue (owner thread only): a handle, or a future
 * whose first done callback is embedded in it (future.c), so that the
 * common single callback of an offload costs no handle. run calls the
 * node's callback unless it was cancelled, then releases the queue's
 * reference; it returns the callback's address (for the slow-callback
 * hook), or NULL if nothing ran. drop disposes instead (the loop closed).
 * A node is never in the inbox and the ready queue at once, so handles
 * and futures keep the two in one union.
 */
struct ferry__rnode;
typedef void ferry__anyfn(void);

struct ferry__rnode_ops {
    ferry__anyfn *(*run)(struct ferry__rnode *n);
    void (*drop)(struct ferry__rnode *n);
};

struct ferry__rnode {
    struct ferry__rnode *next;
    const struct ferry__rnode_ops *ops;
};

enum handle_kind {
    HANDLE_CALL,  /* fn.cb(arg): call_soon, timers, threadsafe posts */
    HANDLE_DONE,  /* fn.fcb(fut, arg): a future's done callback */
    HANDLE_WATCH, /* fn.cb(arg), persistent: an fd watcher */
};

enum handle_state {
    HANDLE_IDLE,      /* created, not scheduled yet */
    HANDLE_SCHEDULED, /* in the ready queue, the heap or a done list */
    HANDLE_RAN,       /* one-shot callback has run */
    HANDLE_DROPPED,   /* cancelled, removed or dropped by close: disposed */
};

/*
 * One scheduled callback (asyncio's Handle / TimerHandle). Owner-thread
 * only, except a threadsafe post's handle, which its producer fills before
 * the publishing CAS. References: the ready queue, the timer heap, the
 * watcher table and the user (when asked for) each hold one.
 */
struct ferry_handle {
    struct ferry_handle *next; /* a future's done-callback list */
    ferry_loop *loop;
    union {
        ferry_cb *cb;
        ferry_future_cb *fcb;
    } fn;
    void *arg;
    ferry_free_fn *dispose;
    ferry_future *fut; /* HANDLE_DONE: holds a reference while queued */
    uint64_t when;     /* timers: deadline on the loop clock */
    uint64_t seq;      /* timers: registration order, ties FIFO */
    size_t heap_idx;   /* timers: index in the heap, SIZE_MAX if none */
    uint32_t refs;     /* owner-thread count, no atomics needed */
    uint8_t kind;      /* enum handle_kind */
    uint8_t state;     /* enum handle_state */
    bool queued;       /* in the ready queue right now */
    union {
        struct ferry__post post;   /* threadsafe posts travel the inbox */
        struct ferry__rnode rnode; /* then the ready queue */
    };
};

struct ferry__ready {
    struct ferry__rnode *head;
    struct ferry__rnode *tail;
};

struct ferry__timers {
    struct ferry_handle **heap; /* min-heap on (when, seq) */
    size_t len;
    size_t cap;
    uint64_t seq; /* next registration number */
};

struct ferry__io_watch {
    struct ferry_handle *reader;
    struct ferry_handle *writer;
    unsigned registered; /* events currently registered with the poller */
};

struct ferry__io {
    struct ferry__io_watch *fds; /* indexed by fd, grown on demand */
    size_t cap;
    size_t count; /* fds with at least one watcher */
};

struct ferry_loop {
    /* Cross-thread surface. The inbox head takes every producer's CAS, so
     * it has its own line; polling/wake_pending/stopping are read by every
     * producer and written by the owner about twice per iteration. */
    alignas(FERRY__CACHELINE) _Atomic(struct ferry__post *) inbox;
    alignas(FERRY__CACHELINE) _Atomic int polling;
    _Atomic int wake_pending;
    _Atomic int stopping;
    _Atomic bool closed;
    _Atomic bool running;
    _Atomic uint64_t wakeups_written;
    _Atomic bool default_pool_shut; /* bridge/: this loop called
                                       ferry_loop_shutdown_default_executor */
    _Atomic bool embedded; /* ferry_loop_fd was called: polling stays set
                              so that posts wake the embedder's poll */
    int efd; /* eventfd: closed on the last unref, never by close */
    /* Every future bound to the loop holds a reference, so the owner bumps
     * this twice per offload: on the producers' line above it made every
     * completion's read of polling miss (false sharing), hence a line of
     * its own. */
    alignas(FERRY__CACHELINE) _Atomic uint32_t refs;

    /* owner-only */
    alignas(FERRY__CACHELINE) pthread_t owner;
    pid_t pid;
    unsigned fork_gen;
    struct ferry__poller poller;
    struct ferry__ready ready;
    struct ferry__timers timers;
    struct ferry__io io;
    ferry_clock_fn *clock;
    void *clock_ctx;
    ferry_slow_hook_fn *slow_hook;
    void *slow_arg;
    uint64_t slow_threshold;
    int64_t spin_ns;     /* busy-poll budget before blocking; < 0: never */
    uint64_t posts_seen; /* stats.posts at the previous iteration */
    /* References on refs that the owner took in one batch for the futures
     * it binds to the loop (ferry__loop_ref_future); given back at close. */
    uint32_t ref_credit;
    /* true while iterate runs a pass of ready callbacks; pass_end, if
     * set, runs after each pass, before the loop polls again (the bridge
     * hands the pass's offloads to the pool there, executor/defer.c). */
    bool in_pass;
    void (*pass_end)(ferry_loop *loop);
    /* Inbox prefetch hints (wakeup.c): the inbox nodes of the offloads
     * this loop submitted, in submission order, in a ring allocated on
     * first use (NULL: no hints). Completions come back in roughly that
     * order, so the drain prefetches the oldest ones: the inbox is a
     * linked list, and without the hints each node is a cache miss that
     * starts only when the previous one ends. Stale entries are harmless:
     * a prefetch never faults and changes nothing. */
    const void **expect;
    uint64_t expect_wr, expect_rd;
    uint64_t expect_last; /* nodes in the previous drain */
    /* bridge/default_pool.c: the default pool's holder this loop caches
     * (with a reference), the epoch it was read at, and how close drops
     * the reference. */
    void *dp;
    uint64_t dp_epoch;
    void (*dp_release)(void *dp);
    /* Counters for ferry_loop_stats. Written by the owner only, but read
     * from any thread ("Thread: any"), so relaxed atomics bumped with a
     * load and a store (ferry__loop_count): no locked RMW on the hot path,
     * and no data race with a reader (a plain struct was one, found by
     * TSan with the fuzzer's helper thread, issue 6). */
    struct {
        _Atomic uint64_t iterations;
        _Atomic uint64_t callbacks;
        _Atomic uint64_t posts;
        _Atomic uint64_t slow_callbacks;
    } stats;
};

/* wakeup.c: owner thread; node will come back through the inbox (a hint
 * only; the ring is allocated on first use and holds FERRY__EXPECT). */
enum { FERRY__EXPECT = 2048 };
void ferry__loop_expect_slow(ferry_loop *loop, const void *node);
static inline void ferry__loop_expect(ferry_loop *loop, const void *node)
{
    if (loop->expect != NULL)
        loop->expect[loop->expect_wr++ % FERRY__EXPECT] = node;
    else
        ferry__loop_expect_slow(loop, node);
}

/* Count one event on an owner-written counter (see stats above). */
static inline void ferry__loop_count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Future states, in the low bits of the state word (FUT_STATE). Terminal
 * states are >= FUT_DONE; FUT_COMPLETING is the winner's private window
 * for writing the result before publishing. */
enum future_state {
    FUT_PENDING,
    FUT_RUNNING, /* attached work started (bridge): still cancellable */
    FUT_COMPLETING,
    FUT_DONE,
    FUT_FAILED,
    FUT_CANCELLED,
};

/* The state word's flags, set (never cleared) by CAS while the state is
 * not terminal, so that the RMW that makes it terminal returns them: the
 * completer bumps the ec only for a foreign waiter and closes the notifier
 * list only when someone registered (future.c). */
enum {
    FUT_STATE = 0x7u,      /* mask of the enum above */
    FUT_WAITERS = 0x8u,    /* a thread may sleep on ec (ferry_future_wait) */
    FUT_NOTIFIERS = 0x10u, /* ferry__future_notify was called */
    /* Set with DONE or FAILED by a resolver other than the handoff one,
     * of a future whose ops have alt_outcome: the outcome is in that
     * slot, since result/dtor/err belong to the handoff resolver. */
    FUT_OUTCOME_OPS = 0x20u,
};

static inline uint32_t ferry__fut_state(uint32_t word)
{
    return word & FUT_STATE;
}

/* A future's outcome, where it is not in the future itself. */
struct ferry__outcome {
    void *result;
    ferry_free_fn *dtor;
    int err;
};

/* Hooks for code that embeds a future (the bridge). */
struct ferry__future_ops {
    /* Called once by the thread whose cancel (or timeout) won, after the
     * state CAS: stop the attached work. */
    void (*on_cancel)(ferry_future *f);
    /* Frees the memory on the last unref, after the result's dtor. */
    void (*release)(ferry_future *f);
    /* For a future with a handoff resolver (ferry__future_resolve_
     * handoff), which owns result/dtor/err: the slot where any other
     * resolver writes its outcome instead, inside its COMPLETING window,
     * setting FUT_OUTCOME_OPS with the final state. NULL: no handoff.
     * It runs inside that window, which losing cancels and resolvers wait
     * out: it must not block, lock, or call back into the future. */
    struct ferry__outcome *(*alt_outcome)(ferry_future *f);
};

/* A completion notifier: fn runs once, on the thread that completes the
 * future (any thread), right after the state is published. It must not run
 * user code; it may post to a loop. */
struct ferry__notify {
    struct ferry__notify *next;
    void (*fn)(struct ferry__notify *n, ferry_future *f);
};

#define FERRY__NOTIFY_CLOSED ((struct ferry__notify *)(uintptr_t)1)
#define FERRY__CBS_DISPATCHED ((struct ferry_handle *)(uintptr_t)1)

/*
 * The future body, visible so that the bridge can embed one in a job (one
 * allocation per offload). state and refs are C11 atomics; ec is ck's and
 * only touched through ck_ec; result/err/dtor are written by the single
 * winner of the PENDING/RUNNING -> COMPLETING CAS and published by the
 * release RMW to the final state, or by the handoff resolver before its
 * CAS (then other resolvers write ops->alt_outcome instead, and set
 * FUT_OUTCOME_OPS). The done callbacks (cb0, cbs) belong to the loop's
 * owner thread.
 */
struct ferry_future {
    /* First line (64 bytes on 64-bit, from a 64-aligned block): what only
     * the loop side touches on an offload's way there and back. The
     * worker that completes a job (bridge/) writes the second line only,
     * on the success path: a future without a loop, a foreign waiter (ec)
     * or a notifier brings the worker here too. */
    _Atomic uint32_t refs;
    struct ck_ec32 ec; /* bumped once at completion; foreign waiters */
    ferry_free_fn *dtor;
    /* The first done callback, embedded (fn == NULL: none); it reaches
     * the ready queue as the future's own rnode. */
    struct {
        ferry_future_cb *fn;
        void *arg;
        ferry_free_fn *dispose;
    } cb0;
    /* Further callbacks, registered after cb0 while it was taken, as
     * handles; FERRY__CBS_DISPATCHED once the callbacks went to the ready
     * queue (later ones then go there directly). */
    struct ferry_handle *cbs;
    const struct ferry__future_ops *ops; /* NULL: plain heap future */
    /* Notifiers run by the completing thread (wrap uses one); a Treiber
     * list closed by FERRY__NOTIFY_CLOSED at completion. */
    _Atomic(struct ferry__notify *) notify;
    /* Second line: what the completing thread writes or reads. */
    _Atomic uint32_t state;
    int err;
    void *result;
    ferry_loop *loop; /* bound loop (holds a reference), or NULL */
    union {
        struct ferry__post post;   /* completion notice from another thread */
        struct ferry__rnode rnode; /* then cb0 in the ready queue */
    };
};

/* future.c: for code that embeds a future */
void ferry__future_init(ferry_future *f, ferry_loop *loop,
                        const struct ferry__future_ops *ops);
/* Register n; returns false (n not registered) if f already completed. */
bool ferry__future_notify(ferry_future *f, struct ferry__notify *n);
/* Forget cb0 and dispose its argument (owner thread; future_cb.c). */
void ferry__future_drop_cb0(ferry_future *f);
bool ferry__future_try_start(ferry_future *f);
/* Resolve from any thread (err < 0: failed). Returns 0, or -EALREADY with
 * value left to the caller. */
int ferry__future_resolve(ferry_future *f, void *value, ferry_free_fn *dtor,
                          int err);
/* Whether f is unresolved (PENDING or RUNNING), by an acquire load: the
 * bridge's worker looks before it runs fn, without claiming anything. */
static inline bool ferry__future_unresolved(const ferry_future *f)
{
    return ferry__fut_state(atomic_load_explicit(&((ferry_future *)f)->state,
                                                 memory_order_acquire)) <
           FUT_COMPLETING;
}
/* Resolve f with value (err == 0) or err < 0, from its work's thread (the
 * bridge's worker), after the work ran; f->dtor was set when f was made.
 * f's ops must have alt_outcome, so that no other resolver writes result
 * or err: the handoff writes them first and publishes them with one CAS
 * PENDING|RUNNING -> DONE|FAILED, no COMPLETING window, and the loop
 * reads them on the line it reads the state from. The caller hands over
 * one reference it holds. Returns 0: resolved, the reference consumed (f
 * may be gone); or -EALREADY: another resolver (a cancel, a timeout, a
 * setter) won, the caller keeps its reference, and f->result still holds
 * value (nobody reads it: it is the caller's to dispose). */
int ferry__future_resolve_handoff(ferry_future *f, void *value, int err);

/* The inbox's "closed" sentinel: a pointer no node can have. */
#define FERRY__INBOX_CLOSED ((struct ferry__post *)(uintptr_t)1)

/* loop.c */
int ferry__loop_check(const ferry_loop *loop);      /* -EINVAL/-ECHILD/-EPERM */
int ferry__loop_check_open(const ferry_loop *loop); /* ... or -ESHUTDOWN */
bool ferry__loop_on_owner(const ferry_loop *loop);
/* Whether the calling thread is inside a pass of loop's ready callbacks
 * (then loop->pass_end will run before the loop next polls). */
bool ferry__loop_in_pass(const ferry_loop *loop);
bool ferry__loop_stale(const ferry_loop *loop);
uint64_t ferry__loop_now(const ferry_loop *loop);

/* The reference a future bound to loop holds (ferry__future_init, its
 * destroy). On the owner thread of an open loop it comes from, and goes
 * back to, the owner's credit (ref_credit): no locked instruction on the
 * offload path's loop side; elsewhere (or closed) ferry_loop_ref/unref. */
void ferry__loop_ref_future(ferry_loop *loop);
void ferry__loop_unref_future(ferry_loop *loop);

/* wakeup.c: the inbox and the eventfd */
int ferry__wakeup_init(ferry_loop *loop);
void ferry__wakeup_term(ferry_loop *loop);
int ferry__loop_post(ferry_loop *loop, struct ferry__post *p);
/* As ferry__loop_post, for a producer whose reference keeping the loop
 * alive travels with p: once p is pushed the loop may be drained and freed
 * at once, so the wake-up's reads of the loop after the push are covered
 * by the thread's hazard record (common/hazard.c), and ferry_loop_unref
 * waits for it before the free. Returns 0, -ESHUTDOWN (closed: p not
 * posted), or -ENOMEM (the thread has no record: p not posted, post it
 * with a reference held across ferry__loop_post instead). */
int ferry__loop_post_handoff(ferry_loop *loop, struct ferry__post *p);
void ferry__wakeup_signal(ferry_loop *loop);
int64_t ferry__wakeup_prepare_poll(ferry_loop *loop, int64_t timeout_ns);
void ferry__wakeup_after_poll(ferry_loop *loop);
void ferry__wakeup_on_event(ferry_loop *loop);
void ferry__inbox_drain(ferry_loop *loop);
void ferry__inbox_close(ferry_loop *loop, bool dispose);
bool ferry__inbox_nonempty(const ferry_loop *loop);

/* ready.c: handles and the ready queue */
struct ferry_handle *ferry__handle_new(ferry_loop *loop, enum handle_kind kind,
                                       ferry_cb *cb, void *arg,
                                       ferry_free_fn *dispose);
void ferry__handle_put(struct ferry_handle *h);
void ferry__handle_drop(struct ferry_handle *h);
void ferry__ready_push(ferry_loop *loop, struct ferry_handle *h);
void ferry__ready_push_node(ferry_loop *loop, struct ferry__rnode *n);
void ferry__ready_run(ferry_loop *loop);
void ferry__ready_term(ferry_loop *loop);

/* timer.c */
int ferry__timers_init(struct ferry__timers *t);
void ferry__timers_term(ferry_loop *loop);
void ferry__timers_remove(ferry_loop *loop, struct ferry_handle *h);
void ferry__timers_collect(ferry_loop *loop, uint64_t now);
int64_t ferry__timers_next(const ferry_loop *loop, uint64_t now);

/* io.c */
void ferry__io_init(struct ferry__io *io);
void ferry__io_term(ferry_loop *loop);
void ferry__io_event(ferry_loop *loop, int fd, unsigned events);
int ferry__io_reregister(ferry_loop *loop);

/* future.c: loop side of future completion */
void ferry__future_run_done(struct ferry_handle *h);

#endif /* FERRY_LOOP_INTERNAL_H */
