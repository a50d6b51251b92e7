/*
 * tests/fuzz/fuzz.h: the private header of the API-sequence fuzzer (the
 * design is described in fuzz_main.c). It holds the limits, the failure
 * and return-code checks (FZ_CHECK, CHECK_RC and the DOC_* lists), the
 * interpreter's model (records, loop, future, promise, handle and task
 * slots, the per-input context), the helper thread's command queue, and
 * the declarations of everything the translation units share: each shared
 * function and variable is named fz_*.
 */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

/* ---- limits ---- */

#define MAX_OPS 256
#define OP_BYTES 4
#define NLOOPS 3
#define MAX_HANDLES 256
#define MAX_FUTS 512
#define MAX_PROMS 64
#define MAX_TASKS 64
#define MAX_RECS 1536
#define SPAWN_BUDGET 192 /* registrations made from callbacks */
#define BYTES_BUDGET 2048
#define HQ_CAP 32
#define MAIL_CAP 512
#define DEADLINE_NS 8000000000ull /* any bounded wait; a hang is a bug */
#define NOT_AN_FD 900             /* checked closed at start-up */

/* ---- failures ---- */

/* Prints file:line and the message, and aborts. */
void fz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn));

#define FZ_CHECK(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond))                                                           \
            fz_fail(__FILE__, __LINE__, __VA_ARGS__);                          \
    } while (0)

/* ---- documented return codes ---- */

enum {
    C_OK = 1u << 0,
    C_POS = 1u << 1, /* a count or an fd */
    C_INVAL = 1u << 2,
    C_NOMEM = 1u << 3,
    C_PERM = 1u << 4,
    C_AGAIN = 1u << 5,
    C_CANCELED = 1u << 6,
    C_BUSY = 1u << 7,
    C_ALREADY = 1u << 8,
    C_SHUTDOWN = 1u << 9,
    C_TIMEDOUT = 1u << 10,
    C_DEADLK = 1u << 11,
    C_CHILD = 1u << 12,
    C_BADF = 1u << 13,
    C_MFILE = 1u << 14,
    C_NFILE = 1u << 15,
    C_IO = 1u << 16,   /* the errors our work and producers use */
    C_2BIG = 1u << 17, /* (-EIO and -E2BIG) */
};

/* The lists from the headers (include/ferry/). */
#define DOC_LOOP_NEW (C_OK | C_INVAL | C_NOMEM | C_MFILE | C_NFILE)
#define DOC_LOOP_FREE (C_OK | C_INVAL | C_BUSY | C_PERM)
#define DOC_LOOP_CLOSE (C_OK | C_INVAL | C_BUSY | C_PERM | C_CHILD)
#define DOC_RUN (C_OK | C_INVAL | C_PERM | C_BUSY | C_SHUTDOWN | C_CHILD)
#define DOC_STOP (C_OK | C_INVAL | C_SHUTDOWN | C_CHILD)
#define DOC_CALL (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_POST (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_HCANCEL (C_OK | C_ALREADY | C_INVAL | C_PERM)
#define DOC_ADD_WATCH                                                          \
    (C_OK | C_INVAL | C_BADF | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_REMOVE_WATCH                                                       \
    (C_OK | C_POS | C_INVAL | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_LOOP_FD (C_OK | C_POS | C_INVAL | C_SHUTDOWN | C_CHILD)
/* -1 means "only I/O can wake the loop" and is also -EPERM. */
#define DOC_LOOP_TIMEOUT (C_OK | C_PERM | C_INVAL | C_SHUTDOWN)
#define DOC_SLOW (C_OK | C_INVAL | C_PERM)
#define DOC_AFTER_FORK                                                         \
    (C_OK | C_INVAL | C_ALREADY | C_NOMEM | C_MFILE | C_NFILE)
#define DOC_FUT_NEW (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_SET (C_OK | C_INVAL | C_ALREADY | C_PERM)
#define DOC_SET_TS (C_OK | C_INVAL | C_ALREADY)
#define DOC_OUTCOME                                                            \
    (C_OK | C_CANCELED | C_TIMEDOUT | C_SHUTDOWN | C_IO | C_2BIG)
#define DOC_RESULT (DOC_OUTCOME | C_AGAIN | C_INVAL)
#define DOC_ADD_DONE (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN)
#define DOC_REMOVE_DONE (C_OK | C_POS | C_INVAL | C_PERM)
#define DOC_WAIT (C_OK | C_TIMEDOUT | C_DEADLK | C_INVAL)
#define DOC_RIE                                                                \
    (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD | C_AGAIN)
#define DOC_SUBMIT_FUT (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_SHUT_DEFAULT                                                       \
    (C_OK | C_TIMEDOUT | C_INVAL | C_PERM | C_CHILD | C_AGAIN | C_NOMEM)
#define DOC_RUN_TS (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_PROM_NEW (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_PROM_DONE (C_OK | C_ALREADY | C_INVAL)
#define DOC_COMPOSE (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN)
#define DOC_RUN_UNTIL (DOC_RUN | DOC_OUTCOME | C_AGAIN)
#define DOC_POOL_NEW (C_OK | C_INVAL | C_NOMEM | C_AGAIN)
#define DOC_POOL_FREE (C_OK | C_INVAL | C_DEADLK | C_CHILD)
#define DOC_POOL_SHUTDOWN                                                      \
    (C_OK | C_TIMEDOUT | C_INVAL | C_DEADLK | C_CHILD | C_AGAIN | C_NOMEM)
#define DOC_SUBMIT (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_TRY_SUBMIT (DOC_SUBMIT | C_AGAIN)
#define DOC_TASK_CANCEL (C_OK | C_BUSY | C_ALREADY | C_INVAL)
#define DOC_TASK_STATUS (C_AGAIN | C_OK | C_CANCELED | C_INVAL)
#define DOC_GROUP_INIT (C_OK | C_INVAL | C_CHILD)
#define DOC_GROUP_SPAWN (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_POOL_STATS (C_OK | C_INVAL | C_CHILD)
#define DOC_POOL_AFTER_FORK (C_OK | C_INVAL | C_NOMEM | C_AGAIN)
#define DOC_LOOP_STATS (C_OK | C_INVAL)

#define ANY INT32_MIN /* no exact expectation */

/* rc must be documented for call, and equal expect unless expect is ANY;
 * a failure names file and line of the check. */
int64_t fz_check_rc(const char *call, const char *file, int line, int64_t rc,
                    unsigned doc, int64_t expect);

#define CHECK_RC(call, doc, expect)                                            \
    fz_check_rc(#call, __FILE__, __LINE__, (int64_t)(call), (doc), (expect))

/* ---- time ---- */

uint64_t fz_now_ns(void);
void fz_sleep_for(uint64_t ns);

/* ---- result values: every one is freed exactly once ---- */

extern _Atomic long fz_values_made;
extern _Atomic long fz_values_freed;
void *fz_new_value(void);
void fz_free_value(void *p);

/* ---- work run by the pools: no per-input memory, the argument encodes it
 * (c byte: bits 0-1 outcome, bits 2-4 duration) ---- */

enum { W_VALUE, W_ERROR, W_NULL, W_SPIN_CANCEL };

int fz_work_fn(void *arg, void **result);
void fz_task_fn(void *arg);
/* A pool task with a record (struct rec *arg): fn counts a run, dispose a
 * dispose. */
void fz_task_rec_fn(void *arg);
void fz_task_rec_dispose(void *arg);

/* ---- records: one per registration ---- */

enum rec_kind {
    REC_ONCE,  /* call_soon, call_later, posts: runs or disposed, once */
    REC_WATCH, /* fd watcher: runs any number of times, disposed once */
    REC_DONE,  /* done callback: runs or disposed, once */
    REC_FN,    /* run_threadsafe / then function: runs at most once */
};

enum reg_state { REG_WAIT, REG_OK, REG_FAILED };

enum space { SP_SOON, SP_POST_MAIN, SP_POST_HELPER, SP_NONE };

struct lslot;

struct rec {
    _Atomic int runs;
    _Atomic int disposes;
    _Atomic int reg;  /* enum reg_state */
    uint8_t kind;     /* enum rec_kind */
    uint8_t action;   /* what the callback does (do_action) */
    uint8_t arg;      /* the action's argument */
    bool dispose;     /* registered with a dispose */
    struct lslot *ls; /* the loop it runs on (NULL: unknown) */
    unsigned ls_gen;
    uint8_t space; /* FIFO space (enum space) */
    uint64_t seq;
    uint64_t due; /* timers: not before this loop time */
    int fd_idx;   /* watchers: which end of the socketpair */
    bool writer;  /* watchers */
    void *fut;    /* REC_DONE: the future (ferry_future *) */
    int out_rc;   /* REC_DONE: outcome seen; REC_FN: what fn returned */
    void *out_val;
};

/* ---- the interpreter's model ---- */

struct lslot {
    ferry_loop *loop; /* NULL: empty */
    bool closed;
    bool default_shut; /* this loop shut the default pool down */
    bool embedded;     /* ferry_loop_fd was called */
    unsigned gen;      /* bumped by each loop made in the slot */
    int idx;
    int sv[2];
    struct rec *watch[2][2]; /* [socket end][0 reader, 1 writer] */
    uint64_t next_seq[3];
    uint64_t last_seq[3]; /* owner thread, in callbacks */
};

enum fkind {
    FK_PLAIN,    /* ferry_future_new(loop) */
    FK_FREE,     /* ferry_future_new(NULL) */
    FK_JOB,      /* run_in_executor */
    FK_JOB_FREE, /* pool_submit_future */
    FK_TS,       /* run_threadsafe */
    FK_PROMISE,  /* promise_new */
    FK_THEN,     /* future_then */
    FK_WRAP,     /* future_wrap of another loop's or a free future */
    FK_ALIAS,    /* future_wrap of a future already on that loop */
};

struct pslot;

struct fslot {
    void *f; /* ferry_future *: our reference; NULL once dropped */
    uint8_t kind;
    struct lslot *ls; /* bound loop's slot, or NULL */
    unsigned ls_gen;
    unsigned work;     /* FK_JOB*: the work encoding */
    int pool_sel;      /* FK_JOB*: 0 persistent, 1 per input, 2 default */
    struct rec *track; /* the tracking done callback */
    struct rec *fn;    /* FK_TS/FK_THEN */
    int src;           /* FK_THEN/FK_WRAP/FK_ALIAS: source slot, or -1 */
    struct pslot *prom;
    /* FK_PLAIN/FK_FREE: successful completions and the winner's payload */
    _Atomic int winners;
    _Atomic int win_rc;
    _Atomic(void *) win_val;
    /* the outcome read at the end, before our unref */
    bool final_done;
    int final_rc;
    void *final_val;
};

struct pslot {
    void *p; /* ferry_promise *: our reference; NULL once dropped */
    int fut; /* its future's slot */
    _Atomic int winners;
    _Atomic int win_rc;
    _Atomic(void *) win_val;
};

struct hslot {
    ferry_handle *h; /* our reference; NULL once dropped */
    struct rec *r;
};

struct tslot {
    ferry_task *t; /* our reference; NULL once dropped */
};

struct ctx {
    struct lslot loops[NLOOPS];
    struct hslot handles[MAX_HANDLES];
    int nhandles;
    struct fslot futs[MAX_FUTS];
    int nfuts;
    struct pslot proms[MAX_PROMS];
    int nproms;
    struct tslot tasks[MAX_TASKS];
    int ntasks;
    struct rec recs[MAX_RECS];
    int nrecs;
    ferry_pool *pool_in; /* per-input pool */
    int pool_in_shut;    /* 0 no, 1 yes, 2 maybe (a helper command) */
    int spawn_budget;
    int bytes_budget;
};

/* ---- shared state (fuzz_common.c) ---- */

extern struct ctx *fz_ctx; /* the running input's model */
extern pthread_t fz_main_thread;
extern ferry_pool *fz_persistent_pool;
extern int fz_regular_fd;
extern int fz_base_fds; /* open fds when the input started */
extern bool fz_trace;   /* FUZZ_API_TRACE */

bool fz_on_main(void);
struct rec *fz_new_rec(enum rec_kind kind, struct lslot *ls);
struct lslot *fz_loop_of(const struct rec *r);
int fz_count_fds(void);

/* ---- the helper thread ---- */

enum hop {
    H_POST,          /* call_soon_threadsafe */
    H_STOP,          /* ferry_loop_stop */
    H_WRONG,         /* an owner-only call from this thread: -EPERM */
    H_HANDLE_CANCEL, /* synchronous: -EPERM or -EALREADY */
    H_RUN_TS,        /* run_threadsafe; the future goes to the mailbox */
    H_SUBMIT_FUT,    /* pool_submit_future; to the mailbox */
    H_PROM,          /* complete a promise */
    H_FUT_SET,       /* set_result/_error(_threadsafe) */
    H_FUT_CANCEL,
    H_FUT_WAIT,
    H_POOL_SHUTDOWN,
    H_TASK, /* cancel or status of a task handle */
    H_ANY,  /* "Thread: any" queries */
};

struct hcmd {
    uint8_t op, a, b, c;
    ferry_loop *loop; /* a reference the helper drops */
    void *fut;        /* a reference the helper drops */
    void *prom;       /* a reference the helper drops */
    ferry_pool *pool;
    ferry_handle *h;
    ferry_task *task;
    struct rec *rec;
    struct fslot *fs;
    struct pslot *ps;
    struct lslot *ls;
    unsigned ls_gen;
    int64_t expect;
};

struct mail {
    void *f;
    uint8_t kind;
    struct lslot *ls;
    unsigned ls_gen;
    struct rec *fn;
    unsigned work;
    int pool_sel;
};

struct helper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hcmd q[HQ_CAP];
    unsigned head, len;
    uint64_t enq, done;
    bool quit;
    struct mail mail[MAIL_CAP];
    unsigned nmail;
};

extern struct helper fz_helper;

void fz_helper_push(const struct hcmd *c, bool wait);
void fz_helper_sync(void);
void fz_helper_loop_cmd(struct hcmd c, struct lslot *ls, bool wait);
void *fz_helper_main(void *arg);
void fz_collect_mail(void);

/* ---- callbacks and registrations (fuzz_callback.c) ---- */

void fz_never_cb(void *arg);
void fz_cb_once(void *arg);
void fz_cb_dispose(void *arg);
void fz_cb_done(ferry_future *f, void *arg);
void fz_cb_watch(void *arg);
int fz_ts_fn(void *arg, void **result);
int fz_then_fn(ferry_future *prev, void *arg, void **result);
bool fz_rec_final(const struct rec *r);
void fz_do_post_main(struct lslot *ls, uint8_t action, uint8_t arg,
                     bool dispose);

/* ---- loops (fuzz_loop.c) ---- */

struct lslot *fz_pick_loop(uint8_t a);
void fz_close_checked(struct lslot *ls);
void fz_free_slot(struct lslot *ls);

/* ---- futures (fuzz_future.c) ---- */

struct fslot *fz_add_fut(void *f, enum fkind kind, struct lslot *ls);
struct lslot *fz_fut_loop(const struct fslot *s);
void fz_track(struct fslot *s);
bool fz_bounded(const struct fslot *s, int depth, ferry_loop *running);
struct fslot *fz_pick_fut(uint8_t a);

/* ---- pools (fuzz_pool.c) ---- */

ferry_pool *fz_pool_by_sel(int sel);
int64_t fz_pool_expect(int sel);

/* ---- the end of a program (fuzz_oracle.c) ---- */

void fz_finish(void);

/* ---- the instructions: [op, a, b, c] (the table is in fuzz_main.c) ---- */

typedef void fz_op_fn(uint8_t a, uint8_t b, uint8_t c);

/* fuzz_loop.c */
fz_op_fn fz_op_loop_new, fz_op_run_once, fz_op_run_forever, fz_op_stop,
    fz_op_close, fz_op_free, fz_op_add_watch, fz_op_remove_watch, fz_op_sock,
    fz_op_loop_misc;
/* fuzz_callback.c */
fz_op_fn fz_op_call_soon, fz_op_call_later, fz_op_post, fz_op_handle_cancel,
    fz_op_handle_unref;
/* fuzz_bridge.c */
fz_op_fn fz_op_run_in_executor, fz_op_submit_future, fz_op_run_threadsafe,
    fz_op_promise_new, fz_op_promise_complete, fz_op_promise_unref;
/* fuzz_future.c */
fz_op_fn fz_op_future_new, fz_op_future_set, fz_op_future_cancel,
    fz_op_future_wait, fz_op_future_result, fz_op_add_done, fz_op_remove_done,
    fz_op_timeout, fz_op_then, fz_op_wrap, fz_op_future_unref,
    fz_op_run_until_complete;
/* fuzz_pool.c */
fz_op_fn fz_op_pool_new, fz_op_pool_shutdown, fz_op_pool_submit, fz_op_task,
    fz_op_group, fz_op_shutdown_default;
/* fuzz_invalid.c */
fz_op_fn fz_op_invalid;
/* fuzz_helper.c */
fz_op_fn fz_op_helper_sync;

#endif /* FERRY_FUZZ_H */
