/*
 * tests/fuzz/fuzz_api.c: an API-sequence fuzzer for ferry (issue 6 §2).
 *
 * The input is a program: 4-byte instructions [op, a, b, c] (at most
 * MAX_OPS), interpreted on this thread, which owns every loop it creates.
 * The objects are up to NLOOPS loops (each with a socketpair for fd
 * watchers), a persistent pool (kept across inputs), an optional per-input
 * pool (which the program may shut down), the process-wide default pool,
 * and the handles, futures, promises and task handles the program makes.
 * A persistent helper thread, fed through a mutex-protected queue, makes
 * the cross-thread calls: posts, run_threadsafe, promise and future
 * completions, cancels, timed waits, and owner-only calls from the wrong
 * thread. It holds a reference on every object a command names.
 *
 * Oracles
 *   - Every call's return code is in the list its header documents
 *     (DOC_* below); where the interpreter's model knows the answer
 *     (NULL argument, wrong thread, closed loop, second completion...) it
 *     must be exactly that.
 *   - Every registration has a record that its callback and its dispose
 *     both count: a one-shot ends at exactly one of the two, a watcher is
 *     disposed exactly once and never runs after, a done callback runs or
 *     is disposed exactly once. Callbacks run on the owner thread, call_soon
 *     and each thread's posts in FIFO order, timers never early.
 *   - Every future ends done, exactly once: its tracking done callback saw
 *     the outcome it keeps, and the outcome is one its producer could give
 *     (the work's, the winner's of a completion race, a cancel, a timeout).
 *   - Nothing leaks: every result value is freed exactly once, the fd count
 *     returns to its baseline, and ASan/LSan check the memory.
 * Each input is bounded: run_once never blocks more than 1 ms, waits have
 * timeouts, work lasts at most 2 ms, and callbacks draw from a budget.
 * After the program everything is cancelled, closed and dropped, and the
 * interpreter waits (bounded) for the pools' stragglers before checking.
 *
 * A violation prints what broke and aborts, from any thread: libFuzzer
 * saves the input; the corpus runner (run_corpus.c) fails.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"
#include "fuzz_api.h"

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

static void fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_api: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

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

static unsigned code_class(int64_t rc)
{
    if (rc == 0)
        return C_OK;
    if (rc > 0)
        return C_POS;
    switch (-rc) {
    case EINVAL:
        return C_INVAL;
    case ENOMEM:
        return C_NOMEM;
    case EPERM:
        return C_PERM;
    case EAGAIN:
        return C_AGAIN;
    case ECANCELED:
        return C_CANCELED;
    case EBUSY:
        return C_BUSY;
    case EALREADY:
        return C_ALREADY;
    case ESHUTDOWN:
        return C_SHUTDOWN;
    case ETIMEDOUT:
        return C_TIMEDOUT;
    case EDEADLK:
        return C_DEADLK;
    case ECHILD:
        return C_CHILD;
    case EBADF:
        return C_BADF;
    case EMFILE:
        return C_MFILE;
    case ENFILE:
        return C_NFILE;
    case EIO:
        return C_IO;
    case E2BIG:
        return C_2BIG;
    default:
        return 0;
    }
}

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
#define DOC_LOOP_TIMEOUT (C_OK | C_POS | C_PERM | C_INVAL | C_SHUTDOWN)
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
#define DOC_SHUT_DEFAULT (C_OK | C_TIMEDOUT | C_INVAL | C_PERM | C_CHILD)
#define DOC_RUN_TS (C_OK | C_INVAL | C_NOMEM | C_SHUTDOWN | C_CHILD)
#define DOC_PROM_NEW (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN | C_CHILD)
#define DOC_PROM_DONE (C_OK | C_ALREADY | C_INVAL)
#define DOC_COMPOSE (C_OK | C_INVAL | C_NOMEM | C_PERM | C_SHUTDOWN)
#define DOC_RUN_UNTIL (DOC_RUN | DOC_OUTCOME | C_AGAIN)
#define DOC_POOL_NEW (C_OK | C_INVAL | C_NOMEM | C_AGAIN)
#define DOC_POOL_FREE (C_OK | C_INVAL | C_DEADLK | C_CHILD)
#define DOC_POOL_SHUTDOWN (C_OK | C_TIMEDOUT | C_INVAL | C_DEADLK | C_CHILD)
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

/* rc must be documented for call, and equal expect unless expect is ANY. */
static int64_t check_rc(const char *call, int line, int64_t rc, unsigned doc,
                        int64_t expect)
{
    if ((code_class(rc) & doc) == 0)
        fz_fail(__FILE__, line, "%s returned %lld (%s): not documented", call,
                (long long)rc, rc < 0 ? ferry_strerror((int)rc) : "");
    if (expect != ANY && rc != expect)
        fz_fail(__FILE__, line, "%s returned %lld (%s), expected %lld (%s)",
                call, (long long)rc, rc < 0 ? ferry_strerror((int)rc) : "",
                (long long)expect,
                expect < 0 ? ferry_strerror((int)expect) : "");
    return rc;
}

#define CHECK_RC(call, doc, expect)                                            \
    check_rc(#call, __LINE__, (int64_t)(call), (doc), (expect))

/* ---- time ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_for(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void spin_for(uint64_t ns, bool until_cancelled)
{
    uint64_t end = now_ns() + ns;
    while (now_ns() < end)
        if (until_cancelled && ferry_task_cancelled())
            return;
}

/* ---- result values: every one is freed exactly once ---- */

#define VAL_MAGIC 0x7e57ab1eu

struct val {
    uint32_t magic;
};

static _Atomic long values_made;
static _Atomic long values_freed;

static void *new_value(void)
{
    struct val *v = malloc(sizeof *v);
    FZ_CHECK(v != NULL, "out of memory");
    v->magic = VAL_MAGIC;
    atomic_fetch_add(&values_made, 1);
    return v;
}

/* A destructor may be handed NULL (a NULL result): like free(3). */
static void free_value(void *p)
{
    struct val *v = p;
    if (v == NULL)
        return;
    FZ_CHECK(v->magic == VAL_MAGIC, "free_value(%p): not a value", p);
    v->magic = 0;
    free(v);
    atomic_fetch_add(&values_freed, 1);
}

/* ---- work run by the pools: no per-input memory, the argument encodes it
 * (c byte: bits 0-1 outcome, bits 2-4 duration) ---- */

enum { W_VALUE, W_ERROR, W_NULL, W_SPIN_CANCEL };

static void burn(unsigned w)
{
    static const uint32_t spin[8] = {0, 0, 1000, 20000, 100000, 0, 0, 0};
    static const uint32_t nap[8] = {0, 0, 0, 0, 0, 50000, 300000, 1000000};
    unsigned d = (w >> 2) & 7;
    if ((w & 3) == W_SPIN_CANCEL)
        spin_for(2000000, true);
    else if (spin[d] != 0)
        spin_for(spin[d], false);
    else if (nap[d] != 0)
        sleep_for(nap[d]);
}

static int work_fn(void *arg, void **result)
{
    unsigned w = (unsigned)(uintptr_t)arg;
    burn(w);
    switch (w & 3) {
    case W_ERROR:
        return -EIO;
    case W_NULL:
        *result = NULL;
        return 0;
    default:
        *result = new_value();
        return 0;
    }
}

static void task_fn(void *arg)
{
    burn((unsigned)(uintptr_t)arg);
}

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

static struct ctx *C;
static pthread_t main_thread;
static ferry_pool *persistent_pool;
static int regular_fd = -1;
static int base_fds; /* open fds when the input started */
static bool initialised;

static bool on_main(void)
{
    return pthread_equal(pthread_self(), main_thread);
}

static struct rec *new_rec(enum rec_kind kind, struct lslot *ls)
{
    if (C->nrecs == MAX_RECS)
        return NULL;
    struct rec *r = &C->recs[C->nrecs++];
    atomic_init(&r->runs, 0);
    atomic_init(&r->disposes, 0);
    atomic_init(&r->reg, REG_WAIT);
    r->kind = (uint8_t)kind;
    r->ls = ls;
    r->ls_gen = ls ? ls->gen : 0;
    r->space = SP_NONE;
    r->fd_idx = -1;
    return r;
}

static struct lslot *loop_of(const struct rec *r)
{
    if (r->ls == NULL || r->ls->gen != r->ls_gen || r->ls->loop == NULL)
        return NULL;
    return r->ls;
}

/* With LeakSanitizer (ASan builds), FUZZ_API_LSAN_EACH=1 checks for leaks
 * after every input (libFuzzer checks only some), to pin a leak on the
 * input that made it. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
static bool lsan_each;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    FZ_CHECK(d != NULL, "opendir /proc/self/fd");
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

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

static struct helper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hcmd q[HQ_CAP];
    unsigned head, len;
    uint64_t enq, done;
    bool quit;
    struct mail mail[MAIL_CAP];
    unsigned nmail;
} H = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void mail_put(const struct mail *m)
{
    pthread_mutex_lock(&H.mu);
    FZ_CHECK(H.nmail < MAIL_CAP, "mailbox full");
    H.mail[H.nmail++] = *m;
    pthread_mutex_unlock(&H.mu);
}

static void helper_push(const struct hcmd *c, bool wait)
{
    pthread_mutex_lock(&H.mu);
    while (H.len == HQ_CAP)
        pthread_cond_wait(&H.cv, &H.mu);
    H.q[(H.head + H.len) % HQ_CAP] = *c;
    H.len++;
    uint64_t mine = ++H.enq;
    pthread_cond_broadcast(&H.cv);
    while (wait && H.done < mine)
        pthread_cond_wait(&H.cv, &H.mu);
    pthread_mutex_unlock(&H.mu);
}

static void helper_sync(void)
{
    pthread_mutex_lock(&H.mu);
    while (H.done < H.enq)
        pthread_cond_wait(&H.cv, &H.mu);
    pthread_mutex_unlock(&H.mu);
}

/* Callbacks that must never run: given to calls that must fail. */
static void never_cb(void *arg)
{
    (void)arg;
    fz_fail(__FILE__, __LINE__, "a callback whose registration failed ran");
}

static void cb_once(void *arg);
static void cb_dispose(void *arg);
static int ts_fn(void *arg, void **result);

/* Owner-only calls made from the helper: each must refuse with -EPERM
 * (S1) and schedule nothing. */
static void wrong_thread_call(ferry_loop *loop, unsigned which, int sv)
{
    ferry_handle *h = NULL;
    ferry_future *f = NULL;
    ferry_promise *p = NULL;
    switch (which % 14) {
    case 0:
        CHECK_RC(ferry_call_soon(loop, never_cb, NULL, NULL, &h), DOC_CALL,
                 -EPERM);
        break;
    case 1:
        CHECK_RC(ferry_call_later(loop, 0, never_cb, NULL, NULL, &h), DOC_CALL,
                 -EPERM);
        break;
    case 2:
        CHECK_RC(ferry_add_reader(loop, sv, never_cb, NULL, NULL),
                 DOC_ADD_WATCH, -EPERM);
        break;
    case 3:
        CHECK_RC(ferry_remove_writer(loop, sv), DOC_REMOVE_WATCH, -EPERM);
        break;
    case 4:
        CHECK_RC(ferry_loop_run_once(loop, 0), DOC_RUN, -EPERM);
        break;
    case 5:
        CHECK_RC(ferry_loop_close(loop), DOC_LOOP_CLOSE, -EPERM);
        break;
    case 6:
        CHECK_RC(ferry_loop_free(loop), DOC_LOOP_FREE, -EPERM);
        break;
    case 7:
        CHECK_RC(ferry_future_new(loop, &f), DOC_FUT_NEW, -EPERM);
        break;
    case 8:
        CHECK_RC(ferry_promise_new(loop, NULL, &p, &f), DOC_PROM_NEW, -EPERM);
        break;
    case 9:
        CHECK_RC(ferry_run_in_executor(loop, persistent_pool, work_fn, NULL,
                                       NULL, &f),
                 DOC_RIE, -EPERM);
        break;
    case 10:
        CHECK_RC(ferry_loop_set_slow_callback(loop, 1, NULL, NULL), DOC_SLOW,
                 -EPERM);
        break;
    case 11:
        CHECK_RC(ferry_loop_shutdown_default_executor(loop, 0),
                 DOC_SHUT_DEFAULT, -EPERM);
        break;
    case 12:
        CHECK_RC(ferry_loop_run_forever(loop), DOC_RUN, -EPERM);
        break;
    case 13: {
        /* wrap needs a future: a free-standing one is fine anywhere */
        ferry_future *src;
        CHECK_RC(ferry_future_new(NULL, &src), DOC_FUT_NEW, 0);
        CHECK_RC(ferry_future_wrap(loop, src, &f), DOC_COMPOSE, -EPERM);
        ferry_future_unref(src);
        break;
    }
    }
}

static void helper_run(struct hcmd *c)
{
    switch ((enum hop)c->op) {
    case H_POST: {
        ferry_cb *cb = c->a & 1 ? NULL : cb_once;
        int rc = (int)CHECK_RC(
            ferry_call_soon_threadsafe(c->loop, cb, c->rec,
                                       c->rec->dispose ? cb_dispose : NULL),
            DOC_POST, cb == NULL ? -EINVAL : ANY);
        FZ_CHECK(rc == 0 || rc == -ESHUTDOWN || rc == -EINVAL,
                 "post from the helper: %d", rc);
        atomic_store(&c->rec->reg, rc == 0 ? REG_OK : REG_FAILED);
        break;
    }
    case H_STOP:
        CHECK_RC(ferry_loop_stop(c->loop), DOC_STOP, ANY);
        break;
    case H_WRONG:
        wrong_thread_call(c->loop, c->a, c->b);
        break;
    case H_HANDLE_CANCEL:
        CHECK_RC(ferry_handle_cancel(c->h), DOC_HCANCEL, c->expect);
        break;
    case H_RUN_TS: {
        ferry_future *f = NULL;
        int rc = (int)CHECK_RC(
            ferry_run_threadsafe(c->loop, ts_fn, c->rec,
                                 c->a & 1 ? free_value : NULL, &f),
            DOC_RUN_TS, ANY);
        FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "run_threadsafe: %d", rc);
        if (rc < 0) {
            atomic_store(&c->rec->reg, REG_FAILED);
            break;
        }
        atomic_store(&c->rec->reg, REG_OK);
        if (c->a & 2)
            CHECK_RC(ferry_future_wait(f, (c->a & 4) ? 200000 : 0), DOC_WAIT,
                     ANY);
        if (c->a & 8)
            (void)ferry_future_cancel(f);
        mail_put(&(struct mail){.f = f,
                                .kind = FK_TS,
                                .ls = c->ls,
                                .ls_gen = c->ls_gen,
                                .fn = c->rec});
        break;
    }
    case H_SUBMIT_FUT: {
        ferry_future *f = NULL;
        int rc = (int)CHECK_RC(ferry_pool_submit_future(c->pool, work_fn,
                                                        (void *)(uintptr_t)c->c,
                                                        free_value, &f),
                               DOC_SUBMIT_FUT, ANY);
        FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "submit_future: %d", rc);
        if (rc < 0)
            break;
        if (c->a & 2)
            CHECK_RC(ferry_future_wait(f, (c->a & 4) ? 300000 : 0), DOC_WAIT,
                     ANY);
        if (c->a & 8)
            (void)ferry_future_cancel(f);
        mail_put(&(struct mail){
            .f = f, .kind = FK_JOB_FREE, .work = c->c, .pool_sel = c->b});
        break;
    }
    case H_PROM: {
        ferry_promise *p = c->prom;
        void *v = NULL;
        int rc, want_rc = 0;
        switch (c->a % 6) {
        case 0:
            v = new_value();
            rc = ferry_promise_resolve(p, v);
            break;
        case 1:
            rc = ferry_promise_resolve(p, NULL);
            break;
        case 2:
            want_rc = -EIO;
            rc = ferry_promise_reject(p, -EIO);
            break;
        case 3:
            want_rc = -ECANCELED;
            rc = ferry_promise_reject(p, -ECANCELED);
            break;
        case 4:
            v = new_value();
            rc = ferry_promise_complete(p, 0, v);
            break;
        default:
            want_rc = -EIO;
            rc = ferry_promise_complete(p, EIO, new_value()); /* disposed */
            break;
        }
        CHECK_RC(rc, DOC_PROM_DONE, ANY);
        FZ_CHECK(rc == 0 || rc == -EALREADY, "promise completion: %d", rc);
        if (rc == 0) {
            atomic_store(&c->ps->win_rc, want_rc);
            atomic_store(&c->ps->win_val, v);
            atomic_fetch_add(&c->ps->winners, 1);
        }
        ferry_promise_unref(p);
        break;
    }
    case H_FUT_SET: {
        ferry_future *f = c->fut;
        bool bound = ferry_future_loop(f) != NULL;
        void *v = NULL;
        int rc, want_rc = 0;
        switch (c->a % 4) {
        case 0: /* the owner-only form: -EPERM for a bound future */
            v = new_value();
            rc = (int)CHECK_RC(ferry_future_set_result(f, v, free_value),
                               DOC_SET, bound ? -EPERM : ANY);
            if (rc == -EPERM)
                free_value(v); /* refused: still ours */
            break;
        case 1:
            v = new_value();
            rc = (int)CHECK_RC(
                ferry_future_set_result_threadsafe(f, v, free_value),
                DOC_SET_TS, ANY);
            break;
        case 2:
            want_rc = -E2BIG;
            rc = (int)CHECK_RC(ferry_future_set_error_threadsafe(f, -E2BIG),
                               DOC_SET_TS, ANY);
            break;
        default:
            rc = (int)CHECK_RC(ferry_future_set_error_threadsafe(f, -ECANCELED),
                               DOC_SET_TS, -EINVAL);
            break;
        }
        if (rc == 0) {
            atomic_store(&c->fs->win_rc, want_rc);
            atomic_store(&c->fs->win_val, v);
            atomic_fetch_add(&c->fs->winners, 1);
        }
        ferry_future_unref(f);
        break;
    }
    case H_FUT_CANCEL:
        (void)ferry_future_cancel(c->fut);
        ferry_future_unref(c->fut);
        break;
    case H_FUT_WAIT: {
        static const int64_t timeouts[4] = {0, 10000, 200000, 1000000};
        int rc = (int)CHECK_RC(ferry_future_wait(c->fut, timeouts[c->a & 3]),
                               DOC_WAIT, ANY);
        FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "wait off the loop: %d", rc);
        FZ_CHECK((rc == 0) == ferry_future_done(c->fut) || rc == -ETIMEDOUT,
                 "wait returned 0 on a pending future");
        ferry_future_unref(c->fut);
        break;
    }
    case H_POOL_SHUTDOWN: {
        struct ferry_pool_report rep;
        int rc = (int)CHECK_RC(
            ferry_pool_shutdown(c->pool, c->a & 1, c->b ? 1000000 : 0, &rep),
            DOC_POOL_SHUTDOWN, ANY);
        FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "pool shutdown: %d", rc);
        break;
    }
    case H_TASK:
        if (c->a & 1)
            CHECK_RC(ferry_task_cancel(c->task), DOC_TASK_CANCEL, ANY);
        else
            CHECK_RC(ferry_task_status(c->task), DOC_TASK_STATUS, ANY);
        break;
    case H_ANY: {
        struct ferry_loop_stats st;
        CHECK_RC(ferry_loop_stats(c->loop, &st), DOC_LOOP_STATS, 0);
        (void)ferry_loop_is_running(c->loop);
        (void)ferry_loop_is_closed(c->loop);
        (void)ferry_loop_time(c->loop);
        FZ_CHECK(ferry_loop_running() == NULL, "the helper runs no loop");
        if (c->a & 1)
            CHECK_RC(ferry_loop_fd(c->loop), DOC_LOOP_FD, ANY);
        if (c->pool != NULL) {
            struct ferry_pool_stats ps;
            CHECK_RC(ferry_pool_stats(c->pool, &ps), DOC_POOL_STATS, 0);
        }
        break;
    }
    }
    if (c->loop != NULL)
        ferry_loop_unref(c->loop);
}

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&H.mu);
    for (;;) {
        while (H.len == 0 && !H.quit)
            pthread_cond_wait(&H.cv, &H.mu);
        if (H.len == 0)
            break;
        struct hcmd c = H.q[H.head];
        H.head = (H.head + 1) % HQ_CAP;
        H.len--;
        pthread_cond_broadcast(&H.cv); /* room in the queue */
        pthread_mutex_unlock(&H.mu);
        helper_run(&c);
        pthread_mutex_lock(&H.mu);
        H.done++;
        pthread_cond_broadcast(&H.cv);
    }
    pthread_mutex_unlock(&H.mu);
    return NULL;
}

/* A command on a loop: the helper holds a reference for it. */
static void helper_loop_cmd(struct hcmd c, struct lslot *ls, bool wait)
{
    ferry_loop_ref(ls->loop);
    c.loop = ls->loop;
    c.ls = ls;
    c.ls_gen = ls->gen;
    helper_push(&c, wait);
}

/* ---- callbacks (owner thread) and disposes (any thread) ---- */

static void check_fifo(struct rec *r)
{
    struct lslot *ls = loop_of(r);
    if (ls == NULL || r->space == SP_NONE)
        return;
    FZ_CHECK(r->seq > ls->last_seq[r->space],
             "loop %d: FIFO space %d ran %llu after %llu", ls->idx, r->space,
             (unsigned long long)r->seq,
             (unsigned long long)ls->last_seq[r->space]);
    ls->last_seq[r->space] = r->seq;
}

static void do_action(struct rec *r);

static void cb_once(void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(on_main(), "a callback ran off its loop's thread");
    int runs = atomic_fetch_add(&r->runs, 1);
    FZ_CHECK(runs == 0 && atomic_load(&r->disposes) == 0,
             "one-shot callback: ran %d times before, disposed %d", runs,
             atomic_load(&r->disposes));
    FZ_CHECK(atomic_load(&r->reg) != REG_FAILED,
             "a callback whose registration failed ran");
    struct lslot *ls = loop_of(r);
    if (ls != NULL)
        FZ_CHECK(ferry_loop_time(ls->loop) >= r->due, "a timer ran early");
    check_fifo(r);
    do_action(r);
}

static void cb_dispose(void *arg)
{
    struct rec *r = arg;
    int d = atomic_fetch_add(&r->disposes, 1);
    FZ_CHECK(d == 0, "disposed twice");
    FZ_CHECK(r->kind == REC_WATCH || atomic_load(&r->runs) == 0,
             "disposed after it ran");
}

static void cb_done(ferry_future *f, void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(on_main(), "a done callback ran off its loop's thread");
    FZ_CHECK(r->fut == (void *)f, "done callback got another future");
    int runs = atomic_fetch_add(&r->runs, 1);
    FZ_CHECK(runs == 0 && atomic_load(&r->disposes) == 0,
             "done callback: ran %d times before, disposed %d", runs,
             atomic_load(&r->disposes));
    FZ_CHECK(ferry_future_done(f), "done callback on a pending future");
    void *v = NULL;
    r->out_rc = (int)CHECK_RC(ferry_future_result(f, &v), DOC_RESULT, ANY);
    r->out_val = r->out_rc == 0 ? v : NULL;
    FZ_CHECK(r->out_rc != -EAGAIN, "done callback: result pending");
    do_action(r);
}

static void cb_watch(void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(on_main(), "a watcher ran off its loop's thread");
    FZ_CHECK(atomic_load(&r->disposes) == 0, "a removed watcher fired");
    atomic_fetch_add(&r->runs, 1);
    do_action(r);
}

/* run_threadsafe's function: on the loop's thread, at most once. */
static int ts_fn(void *arg, void **result)
{
    struct rec *r = arg;
    FZ_CHECK(on_main(), "run_threadsafe ran off the loop's thread");
    FZ_CHECK(atomic_fetch_add(&r->runs, 1) == 0, "run_threadsafe ran twice");
    switch (r->action % 3) {
    case 0:
        r->out_val = *result = new_value();
        r->out_rc = 0;
        return 0;
    case 1:
        r->out_rc = -EIO;
        return -EIO;
    default:
        r->out_val = *result = NULL;
        r->out_rc = 0;
        return 0;
    }
}

static int then_fn(ferry_future *prev, void *arg, void **result)
{
    struct rec *r = arg;
    FZ_CHECK(on_main(), "then ran off the loop's thread");
    FZ_CHECK(ferry_future_done(prev), "then ran before its source was done");
    FZ_CHECK(atomic_fetch_add(&r->runs, 1) == 0, "then ran twice");
    switch (r->action % 3) {
    case 0:
        r->out_val = *result = new_value();
        r->out_rc = 0;
        return 0;
    case 1:
        r->out_rc = -E2BIG;
        return -E2BIG;
    default:
        r->out_val = *result = NULL;
        r->out_rc = 0;
        return 0;
    }
}

/* ---- registrations ---- */

static int add_handle(ferry_handle *h, struct rec *r)
{
    if (C->nhandles == MAX_HANDLES) {
        ferry_handle_unref(h);
        return -1;
    }
    C->handles[C->nhandles++] = (struct hslot){.h = h, .r = r};
    return 0;
}

static bool rec_final(const struct rec *r)
{
    return atomic_load(&r->runs) + atomic_load(&r->disposes) > 0;
}

/* call_soon (delay < 0) or call_later on ls from the owner thread. */
static void do_call(struct lslot *ls, int64_t delay, uint8_t action,
                    uint8_t arg, bool keep, bool dispose, bool at)
{
    struct rec *r = new_rec(REC_ONCE, ls);
    if (r == NULL)
        return;
    r->action = action;
    r->arg = arg;
    r->dispose = dispose;
    ferry_handle *h = NULL;
    int64_t expect = ls->closed ? -ESHUTDOWN : 0;
    int rc;
    if (delay < 0) {
        r->space = SP_SOON;
        r->seq = ++ls->next_seq[SP_SOON];
        rc = (int)CHECK_RC(ferry_call_soon(ls->loop, cb_once, r,
                                           dispose ? cb_dispose : NULL,
                                           keep ? &h : NULL),
                           DOC_CALL, expect);
    } else if (at) {
        r->due = ferry_loop_time(ls->loop) + (uint64_t)delay;
        rc = (int)CHECK_RC(ferry_call_at(ls->loop, r->due, cb_once, r,
                                         dispose ? cb_dispose : NULL,
                                         keep ? &h : NULL),
                           DOC_CALL, expect);
    } else {
        r->due = ferry_loop_time(ls->loop) + (uint64_t)delay;
        rc = (int)CHECK_RC(ferry_call_later(ls->loop, delay, cb_once, r,
                                            dispose ? cb_dispose : NULL,
                                            keep ? &h : NULL),
                           DOC_CALL, expect);
    }
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!rec_final(r), "a callback ran or was disposed inside its call");
    if (rc == 0 && keep)
        add_handle(h, r);
}

/* call_soon_threadsafe from this thread (space SP_POST_MAIN). */
static void do_post_main(struct lslot *ls, uint8_t action, uint8_t arg,
                         bool dispose)
{
    struct rec *r = new_rec(REC_ONCE, ls);
    if (r == NULL)
        return;
    r->action = action;
    r->arg = arg;
    r->dispose = dispose;
    r->space = SP_POST_MAIN;
    r->seq = ++ls->next_seq[SP_POST_MAIN];
    int rc =
        (int)CHECK_RC(ferry_call_soon_threadsafe(ls->loop, cb_once, r,
                                                 dispose ? cb_dispose : NULL),
                      DOC_POST, ls->closed ? -ESHUTDOWN : 0);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
}

static const int64_t delays[8] = {0,          1000, 50000, 1000000,
                                  1000000000, 0,    20000, -1};

static void close_checked(struct lslot *ls);

/* What a callback does after counting itself; draws on the budget. */
static void do_action(struct rec *r)
{
    struct lslot *ls = loop_of(r);
    if (ls == NULL || C == NULL)
        return;
    if (r->kind == REC_WATCH) {
        int fd = ls->sv[r->fd_idx];
        char buf[256];
        switch (r->action & 3) {
        case 0:
            if (r->writer) {
                if (C->bytes_budget > 0 &&
                    send(fd, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                    C->bytes_budget--;
            } else {
                while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                    ;
            }
            break;
        case 1:
            break; /* level-triggered: fires again next iteration */
        case 2:
            CHECK_RC(r->writer ? ferry_remove_writer(ls->loop, fd)
                               : ferry_remove_reader(ls->loop, fd),
                     DOC_REMOVE_WATCH, 1);
            FZ_CHECK(!r->dispose || atomic_load(&r->disposes) == 1,
                     "watcher removed in its callback: not disposed");
            ls->watch[r->fd_idx][r->writer] = NULL;
            break;
        default: {
            if (C->spawn_budget <= 0)
                break;
            C->spawn_budget--;
            struct rec *n = new_rec(REC_WATCH, ls);
            if (n == NULL)
                break;
            n->fd_idx = r->fd_idx;
            n->writer = r->writer;
            n->dispose = true;
            n->action = 0; /* the replacement drains (or writes) */
            CHECK_RC(
                r->writer
                    ? ferry_add_writer(ls->loop, fd, cb_watch, n, cb_dispose)
                    : ferry_add_reader(ls->loop, fd, cb_watch, n, cb_dispose),
                DOC_ADD_WATCH, 0);
            atomic_store(&n->reg, REG_OK);
            FZ_CHECK(!r->dispose || atomic_load(&r->disposes) == 1,
                     "watcher replaced in its callback: not disposed");
            ls->watch[r->fd_idx][r->writer] = n;
            break;
        }
        }
        return;
    }
    switch (r->action & 7) {
    case 1:
    case 2: {
        static const int64_t soon[4] = {0, 1000, 20000, 50000};
        if (C->spawn_budget-- > 0)
            do_call(ls, (r->action & 7) == 1 ? -1 : soon[r->arg & 3],
                    (uint8_t)(r->arg % 3), (uint8_t)(r->arg >> 2), false, true,
                    false);
        break;
    }
    case 3:
        CHECK_RC(ferry_loop_stop(ls->loop), DOC_STOP, 0);
        break;
    case 4:
        /* Re-entry: this thread runs a loop, so no loop may start here,
         * and the running one can be neither closed nor freed. */
        for (int i = 0; i < NLOOPS; i++) {
            struct lslot *o = &C->loops[i];
            if (o->loop != NULL)
                CHECK_RC(ferry_loop_run_once(o->loop, 0), DOC_RUN,
                         o->closed ? -ESHUTDOWN : -EBUSY);
        }
        CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, -EBUSY);
        CHECK_RC(ferry_loop_free(ls->loop), DOC_LOOP_FREE, -EBUSY);
        CHECK_RC(ferry_loop_run_forever(ls->loop), DOC_RUN, -EBUSY);
        FZ_CHECK(ferry_loop_running() == ls->loop, "ferry_loop_running()");
        FZ_CHECK(ferry_loop_is_running(ls->loop), "ferry_loop_is_running");
        break;
    case 5:
        if (C->nhandles > 0) {
            struct hslot *hs = &C->handles[r->arg % C->nhandles];
            if (hs->h != NULL) {
                int64_t expect = rec_final(hs->r) ? -EALREADY : 0;
                CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, expect);
                FZ_CHECK(rec_final(hs->r) || !hs->r->dispose,
                         "cancelled handle not disposed at once");
            }
        }
        break;
    case 6:
        if (C->spawn_budget-- > 0)
            do_post_main(ls, (uint8_t)(r->arg % 3), 0, true);
        break;
    case 7: {
        /* Close another loop from inside this one's callback. */
        struct lslot *o = &C->loops[(ls->idx + 1 + (r->arg & 1)) % NLOOPS];
        if (o != ls && o->loop != NULL && !o->closed)
            close_checked(o);
        break;
    }
    default:
        break;
    }
}

/* ---- futures ---- */

static struct fslot *add_fut(void *f, enum fkind kind, struct lslot *ls)
{
    if (C->nfuts == MAX_FUTS) {
        /* Out of slots: a well-behaved owner cancels what it drops. */
        (void)ferry_future_cancel(f);
        ferry_future_unref(f);
        return NULL;
    }
    struct fslot *s = &C->futs[C->nfuts++];
    memset(s, 0, sizeof *s);
    s->f = f;
    s->kind = (uint8_t)kind;
    s->ls = ls;
    s->ls_gen = ls ? ls->gen : 0;
    s->src = -1;
    atomic_init(&s->winners, 0);
    atomic_init(&s->win_rc, 0);
    atomic_init(&s->win_val, NULL);
    return s;
}

static struct lslot *fut_loop(const struct fslot *s)
{
    if (s->ls == NULL || s->ls->gen != s->ls_gen || s->ls->loop == NULL)
        return NULL;
    return s->ls;
}

/* Every bound future gets a tracking done callback: its record must end
 * at exactly one (ran with the outcome, or disposed). */
static void track(struct fslot *s)
{
    ferry_loop *loop = ferry_future_loop(s->f);
    if (loop == NULL)
        return;
    struct rec *r = new_rec(REC_DONE, fut_loop(s));
    if (r == NULL)
        return;
    r->fut = s->f;
    r->dispose = true;
    struct lslot *ls = fut_loop(s);
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int rc = (int)CHECK_RC(
        ferry_future_add_done_callback(s->f, cb_done, r, cb_dispose),
        DOC_ADD_DONE, expect);
    FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "tracking callback: %d", rc);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!rec_final(r), "a done callback ran inside its registration");
    if (rc == 0)
        s->track = r;
}

static void collect_mail(void)
{
    struct mail m[MAIL_CAP];
    pthread_mutex_lock(&H.mu);
    unsigned n = H.nmail;
    memcpy(m, H.mail, n * sizeof m[0]);
    H.nmail = 0;
    pthread_mutex_unlock(&H.mu);
    for (unsigned i = 0; i < n; i++) {
        struct lslot *ls =
            m[i].ls != NULL && m[i].ls->gen == m[i].ls_gen ? m[i].ls : NULL;
        struct fslot *s = add_fut(m[i].f, (enum fkind)m[i].kind, ls);
        if (s == NULL)
            continue;
        s->fn = m[i].fn;
        s->work = m[i].work;
        s->pool_sel = m[i].pool_sel;
        track(s);
    }
}

/* Whether the future will complete without anything else from us, while
 * the loop `running` runs (NULL: all of them run). */
static bool bounded(const struct fslot *s, int depth, ferry_loop *running)
{
    if (s->f != NULL && ferry_future_done(s->f))
        return true;
    if (depth > 8)
        return false;
    ferry_loop *own = ferry_future_loop(s->f);
    switch ((enum fkind)s->kind) {
    case FK_JOB:
    case FK_JOB_FREE:
        return true; /* the worker resolves it */
    case FK_TS:
        /* fn runs on its loop (a closed loop failed it already) */
        return running == NULL || running == own;
    case FK_THEN:
        /* next resolves on its loop: once the loop is closed, only when
         * the source is freed (its callbacks are disposed then). */
        if (fut_loop(s) == NULL || fut_loop(s)->closed)
            return false;
        if (running != NULL && running != own)
            return false;
        return s->src >= 0 && bounded(&C->futs[s->src], depth + 1, running);
    case FK_WRAP:
    case FK_ALIAS:
        /* the source's completer resolves the wrapper */
        return s->src >= 0 && bounded(&C->futs[s->src], depth + 1, running);
    default:
        return false;
    }
}

static struct fslot *pick_fut(uint8_t a)
{
    if (C->nfuts == 0)
        return NULL;
    struct fslot *s = &C->futs[a % C->nfuts];
    return s->f != NULL ? s : NULL;
}

/* ---- pools ---- */

static ferry_pool *pool_by_sel(int sel)
{
    switch (sel) {
    case 0:
        return persistent_pool;
    case 1:
        return C->pool_in != NULL ? C->pool_in : persistent_pool;
    default:
        return NULL;
    }
}

static int64_t pool_expect(int sel)
{
    if (sel == 1 && C->pool_in != NULL) {
        if (C->pool_in_shut == 1)
            return -ESHUTDOWN;
        if (C->pool_in_shut == 2)
            return ANY;
    }
    return 0;
}

/* ---- loops ---- */

static void check_closed_loop(struct lslot *ls)
{
    /* Close disposed everything pending on the loop: every one-shot and
     * watcher registration whose registration is known to have succeeded
     * is final now (a post that raced the close either landed before it
     * and was disposed, or failed). */
    for (int i = 0; i < C->nrecs; i++) {
        struct rec *r = &C->recs[i];
        if (loop_of(r) != ls || !r->dispose)
            continue;
        if (r->kind != REC_ONCE && r->kind != REC_WATCH)
            continue;
        if (atomic_load(&r->reg) != REG_OK)
            continue;
        FZ_CHECK(atomic_load(&r->disposes) + atomic_load(&r->runs) > 0 &&
                     (r->kind != REC_WATCH || atomic_load(&r->disposes) == 1),
                 "loop %d closed, a registration neither ran nor was "
                 "disposed (kind %d)",
                 ls->idx, r->kind);
    }
    memset(ls->watch, 0, sizeof ls->watch);
}

static void close_checked(struct lslot *ls)
{
    CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, 0);
    ls->closed = true;
    FZ_CHECK(ferry_loop_is_closed(ls->loop), "closed loop not closed");
    check_closed_loop(ls);
}

static void free_slot(struct lslot *ls)
{
    CHECK_RC(ferry_loop_free(ls->loop), DOC_LOOP_FREE, 0);
    if (!ls->closed) {
        ls->closed = true;
        check_closed_loop(ls);
    }
    ls->loop = NULL;
    close(ls->sv[0]);
    close(ls->sv[1]);
    ls->sv[0] = ls->sv[1] = -1;
}

static void new_loop(struct lslot *ls, uint8_t b)
{
    ferry_loop *l;
    struct ferry_loop_opts o = {.max_events = b & 3}; /* 1-3: tiny batches */
    CHECK_RC(ferry_loop_new(&l, (b & 4) ? &o : NULL), DOC_LOOP_NEW, 0);
    int sv[2];
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    for (int i = 0; i < 2; i++)
        FZ_CHECK(fcntl(sv[i], F_SETFL, O_NONBLOCK) == 0, "fcntl");
    unsigned gen = ls->gen + 1;
    int idx = ls->idx;
    memset(ls, 0, sizeof *ls);
    ls->loop = l;
    ls->gen = gen;
    ls->idx = idx;
    ls->sv[0] = sv[0];
    ls->sv[1] = sv[1];
}

static struct lslot *pick_loop(uint8_t a)
{
    struct lslot *ls = &C->loops[a % NLOOPS];
    return ls->loop != NULL ? ls : NULL;
}

/* ---- the instructions ----
 *
 * [op, a, b, c]; a usually picks the object (a loop slot, a future...),
 * b and c the variant. "helper" means the call is made from the helper
 * thread; "wrong thread" an owner-only call from there (-EPERM).
 *   loop_new            a slot, b options (max_events 1-3)
 *   run_once            timeout 0, 50 us, 1 ms, or -1 after a self-post;
 *                       wrong thread
 *   run_forever         stopped first, or by a callback
 *   stop, close, free   from the owner or the helper (wrong thread)
 *   call_soon           handle kept or not, dispose or not, callback
 *                       action, NULL cb; wrong thread
 *   call_later          delays 0..1 s, call_at, negative; wrong thread
 *   post                call_soon_threadsafe from this thread or the helper
 *   handle_cancel       owner (0 / -EALREADY) or helper (-EPERM), also
 *                       after the loop was freed; handle_unref
 *   add/remove_watch    reader or writer on either socket end, fd -1, a
 *                       closed fd, a regular file; callback drains,
 *                       writes, removes or replaces itself
 *   sock                write bytes, or shut a socket down (EOF)
 *   run_in_executor     persistent, per-input or default pool, NULL fn;
 *                       work: value / error / NULL / spin until cancelled,
 *                       0..1 ms; wrong thread
 *   submit_future       pool_submit_future from this thread or the helper
 *                       (then waits, cancels)
 *   run_threadsafe      from the loop's thread or the helper (waits,
 *                       cancels)
 *   promise_new/_complete/_unref
 *                       resolve, reject, complete, invalid; from either
 *                       thread, twice, after a cancel
 *   future_new/_set     bound or free-standing; set_result/_error, the
 *                       _threadsafe forms, invalid errors; from either thread
 *   future_cancel/_wait/_result/_unref
 *   add/remove_done     done callbacks with actions, removal
 *   timeout, then, wrap ferry_future_timeout / _then / _wrap
 *   run_until_complete  on futures that will complete
 *   pool_new/_shutdown  the per-input pool: drain or cancel, timeouts,
 *                       invalid mode, from either thread
 *   pool_submit, task   submit / try_submit, flags, task cancel / status /
 *                       unref from either thread
 *   group               fork-join on a pool
 *   shutdown_default    ferry_loop_shutdown_default_executor
 *   loop_misc           loop_fd (embedding), loop_timeout, slow-callback
 *                       hook, after_fork (-EALREADY), "Thread: any"
 *                       queries and every wrong-thread call from the helper
 *   invalid             40 calls with NULL or bad arguments
 *   helper_sync         wait for the helper's queue to drain
 */

enum op {
    OP_LOOP_NEW,
    OP_RUN_ONCE,
    OP_RUN_FOREVER,
    OP_STOP,
    OP_CLOSE,
    OP_FREE,
    OP_CALL_SOON,
    OP_CALL_LATER,
    OP_POST,
    OP_HANDLE_CANCEL,
    OP_HANDLE_UNREF,
    OP_ADD_WATCH,
    OP_REMOVE_WATCH,
    OP_SOCK,
    OP_RUN_IN_EXECUTOR,
    OP_SUBMIT_FUTURE,
    OP_RUN_THREADSAFE,
    OP_PROMISE_NEW,
    OP_PROMISE_COMPLETE,
    OP_PROMISE_UNREF,
    OP_FUTURE_NEW,
    OP_FUTURE_SET,
    OP_FUTURE_CANCEL,
    OP_FUTURE_WAIT,
    OP_FUTURE_RESULT,
    OP_ADD_DONE,
    OP_REMOVE_DONE,
    OP_TIMEOUT,
    OP_THEN,
    OP_WRAP,
    OP_FUTURE_UNREF,
    OP_RUN_UNTIL_COMPLETE,
    OP_POOL_NEW,
    OP_POOL_SHUTDOWN,
    OP_POOL_SUBMIT,
    OP_TASK,
    OP_GROUP,
    OP_SHUTDOWN_DEFAULT,
    OP_LOOP_MISC,
    OP_INVALID,
    OP_HELPER_SYNC,
    OP_COUNT
};

static const char *const op_names[] = {
    "loop_new",
    "run_once",
    "run_forever",
    "stop",
    "close",
    "free",
    "call_soon",
    "call_later",
    "post",
    "handle_cancel",
    "handle_unref",
    "add_watch",
    "remove_watch",
    "sock",
    "run_in_executor",
    "submit_future",
    "run_threadsafe",
    "promise_new",
    "promise_complete",
    "promise_unref",
    "future_new",
    "future_set",
    "future_cancel",
    "future_wait",
    "future_result",
    "add_done",
    "remove_done",
    "timeout",
    "then",
    "wrap",
    "future_unref",
    "run_until_complete",
    "pool_new",
    "pool_shutdown",
    "pool_submit",
    "task",
    "group",
    "shutdown_default",
    "loop_misc",
    "invalid",
    "helper_sync",
};

_Static_assert(sizeof op_names / sizeof op_names[0] == OP_COUNT,
               "one name per op");

static bool trace;
static unsigned long op_counts[OP_COUNT];

static void op_run_once(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 4}, ls, false);
        return;
    }
    static const int64_t t[8] = {0, 0, 0, 0, 50000, 1000000, -2, 0};
    int64_t timeout = t[b & 7];
    /* -2: "until something happens", allowed only when something will:
     * a post to ourselves makes the loop runnable at once. */
    if (timeout == -2) {
        if (ls->closed)
            timeout = 0;
        else
            do_post_main(ls, 0, 0, true);
    }
    CHECK_RC(ferry_loop_run_once(ls->loop, timeout == -2 ? -1 : timeout),
             DOC_RUN, ls->closed ? -ESHUTDOWN : 0);
}

static void op_run_forever(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    if (ls->closed) {
        CHECK_RC(ferry_loop_run_forever(ls->loop), DOC_RUN, -ESHUTDOWN);
        return;
    }
    if (b & 1) {
        CHECK_RC(ferry_loop_stop(ls->loop), DOC_STOP, 0);
    } else {
        /* A stop from a callback: the loop runs until that batch ends. */
        struct rec *r = new_rec(REC_ONCE, ls);
        if (r == NULL)
            return;
        r->action = 3;
        r->dispose = true;
        r->space = SP_SOON;
        r->seq = ++ls->next_seq[SP_SOON];
        CHECK_RC(ferry_call_soon(ls->loop, cb_once, r, cb_dispose, NULL),
                 DOC_CALL, 0);
        atomic_store(&r->reg, REG_OK);
    }
    CHECK_RC(ferry_loop_run_forever(ls->loop), DOC_RUN, 0);
}

static void op_add_watch(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    bool writer = b & 1;
    unsigned sel = (b >> 1) & 7;
    int idx = sel & 1;
    int fd = ls->sv[idx];
    int64_t expect = 0;
    bool valid = true;
    if (sel == 2) {
        fd = -1;
        expect = -EINVAL;
        valid = false;
    } else if (sel == 3) {
        fd = NOT_AN_FD;
        expect = -EBADF;
        valid = false;
    } else if (sel == 4) {
        fd = regular_fd;
        expect = -EINVAL; /* epoll refuses regular files (EPERM) */
        valid = false;
    }
    if (b & 0x40) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 2, .b = (uint8_t)fd},
                        ls, false);
        return;
    }
    if (fd >= 0 && ls->closed)
        expect = -ESHUTDOWN;
    struct rec *r = new_rec(REC_WATCH, ls);
    if (r == NULL)
        return;
    r->fd_idx = idx;
    r->writer = writer;
    r->dispose = !(c & 0x80);
    r->action = c & 3;
    struct rec *old = valid && !ls->closed ? ls->watch[idx][writer] : NULL;
    int rc =
        (int)CHECK_RC(writer ? ferry_add_writer(ls->loop, fd, cb_watch, r,
                                                r->dispose ? cb_dispose : NULL)
                             : ferry_add_reader(ls->loop, fd, cb_watch, r,
                                                r->dispose ? cb_dispose : NULL),
                      DOC_ADD_WATCH, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    if (old != NULL)
        FZ_CHECK(!old->dispose || atomic_load(&old->disposes) == 1,
                 "replaced watcher not disposed");
    ls->watch[idx][writer] = r;
}

static void op_remove_watch(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    bool writer = b & 1;
    unsigned sel = (b >> 1) & 7;
    int idx = sel & 1;
    int fd = sel == 2 ? -1 : sel == 3 ? NOT_AN_FD : ls->sv[idx];
    if (b & 0x40) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 3, .b = (uint8_t)fd},
                        ls, false);
        return;
    }
    int64_t expect;
    if (fd < 0)
        expect = -EINVAL;
    else if (ls->closed)
        expect = -ESHUTDOWN;
    else if (sel == 3)
        expect = 0;
    else
        expect = ls->watch[idx][writer] != NULL;
    struct rec *old = expect == 1 ? ls->watch[idx][writer] : NULL;
    CHECK_RC(writer ? ferry_remove_writer(ls->loop, fd)
                    : ferry_remove_reader(ls->loop, fd),
             DOC_REMOVE_WATCH, expect);
    if (old != NULL) {
        FZ_CHECK(!old->dispose || atomic_load(&old->disposes) == 1,
                 "removed watcher not disposed");
        ls->watch[idx][writer] = NULL;
    }
}

static void op_sock(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    int fd = ls->sv[b & 1];
    if (b & 2) {
        (void)shutdown(fd, SHUT_WR); /* the peer reads EOF from now on */
        return;
    }
    char buf[64];
    memset(buf, 'x', sizeof buf);
    size_t n = 1 + (b >> 2) % sizeof buf;
    if (C->bytes_budget >= (int)n &&
        send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        C->bytes_budget -= (int)n;
}

static void op_run_in_executor(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    int sel = b % 4;
    if (b & 0x80) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 9}, ls, false);
        return;
    }
    ferry_future *f = NULL;
    if (sel == 3) { /* NULL fn */
        CHECK_RC(ferry_run_in_executor(ls->loop, persistent_pool, NULL, NULL,
                                       NULL, &f),
                 DOC_RIE, -EINVAL);
        return;
    }
    int64_t expect = pool_expect(sel);
    if (sel == 2 && ls->default_shut)
        expect = -ESHUTDOWN;
    if (ls->closed)
        expect = -ESHUTDOWN;
    /* Without a dtor a value result would leak (the caller's bug): such
     * work returns NULL instead. */
    if (!(b & 4) && ((c & 3) == W_VALUE || (c & 3) == W_SPIN_CANCEL))
        c = (uint8_t)((c & ~3u) | W_NULL);
    int rc =
        (int)CHECK_RC(ferry_run_in_executor(ls->loop, pool_by_sel(sel), work_fn,
                                            (void *)(uintptr_t)c,
                                            (b & 4) ? free_value : NULL, &f),
                      DOC_RIE, expect);
    if (rc != 0)
        return;
    struct fslot *s = add_fut(f, FK_JOB, ls);
    if (s == NULL)
        return;
    s->work = c;
    s->pool_sel = sel;
    track(s);
}

static void op_submit_future(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = b % 3;
    if (a & 1) {
        ferry_pool *pool = pool_by_sel(sel);
        if (pool == NULL)
            pool = persistent_pool;
        helper_push(&(struct hcmd){.op = H_SUBMIT_FUT,
                                   .a = a >> 1,
                                   .b = (uint8_t)sel,
                                   .c = c,
                                   .pool = pool},
                    false);
        return;
    }
    ferry_future *f = NULL;
    if (sel == 2) {
        CHECK_RC(ferry_pool_submit_future(NULL, work_fn, NULL, NULL, &f),
                 DOC_SUBMIT_FUT, -EINVAL);
        return;
    }
    int rc = (int)CHECK_RC(ferry_pool_submit_future(pool_by_sel(sel), work_fn,
                                                    (void *)(uintptr_t)c,
                                                    free_value, &f),
                           DOC_SUBMIT_FUT, pool_expect(sel));
    if (rc != 0)
        return;
    struct fslot *s = add_fut(f, FK_JOB_FREE, NULL);
    if (s == NULL)
        return;
    s->work = c;
    s->pool_sel = sel;
}

static void op_run_threadsafe(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    struct rec *r = new_rec(REC_FN, ls);
    if (r == NULL)
        return;
    r->action = c;
    bool dtor = b & 2;
    if (!dtor && c % 3 == 0)
        r->action = 2; /* no dtor: NULL rather than a leak */
    if (b & 1) {
        /* a: bit 0 dtor, 1 wait, 2 longer wait, 3 cancel */
        helper_loop_cmd((struct hcmd){.op = H_RUN_TS,
                                      .a = (uint8_t)((b >> 1) & 0xf),
                                      .rec = r},
                        ls, false);
        return;
    }
    /* From the loop's own thread: allowed; waiting here would deadlock. */
    ferry_future *f = NULL;
    int rc = (int)CHECK_RC(
        ferry_run_threadsafe(ls->loop, ts_fn, r, dtor ? free_value : NULL, &f),
        DOC_RUN_TS, ls->closed ? -ESHUTDOWN : 0);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    CHECK_RC(ferry_future_wait(f, 0), DOC_WAIT,
             ferry_future_done(f) ? 0 : -EDEADLK);
    struct fslot *s = add_fut(f, FK_TS, ls);
    if (s == NULL)
        return;
    s->fn = r;
    track(s);
}

static void op_promise_new(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 8}, ls, false);
        return;
    }
    if (C->nproms == MAX_PROMS)
        return;
    ferry_promise *p = NULL;
    ferry_future *f = NULL;
    /* Always with a dispose: values that lose must be freed. */
    int rc = (int)CHECK_RC(ferry_promise_new(ls->loop, free_value, &p, &f),
                           DOC_PROM_NEW, ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    struct fslot *s = add_fut(f, FK_PROMISE, ls);
    if (s == NULL) {
        ferry_promise_unref(p);
        return;
    }
    struct pslot *ps = &C->proms[C->nproms++];
    ps->p = p;
    ps->fut = (int)(s - C->futs);
    atomic_init(&ps->winners, 0);
    atomic_init(&ps->win_rc, 0);
    atomic_init(&ps->win_val, NULL);
    s->prom = ps;
    track(s);
}

static void op_promise_complete(uint8_t a, uint8_t b, uint8_t c)
{
    if (C->nproms == 0)
        return;
    struct pslot *ps = &C->proms[a % C->nproms];
    if (ps->p == NULL)
        return;
    if (b & 1) {
        ferry_promise_ref(ps->p);
        helper_push(
            &(struct hcmd){.op = H_PROM, .a = c, .prom = ps->p, .ps = ps},
            false);
        return;
    }
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c % 7) {
    case 0:
        v = new_value();
        rc = ferry_promise_resolve(ps->p, v);
        break;
    case 1:
        rc = ferry_promise_resolve(ps->p, NULL);
        break;
    case 2:
        want_rc = -EIO;
        rc = ferry_promise_reject(ps->p, -EIO);
        break;
    case 3:
        want_rc = -ECANCELED;
        rc = ferry_promise_reject(ps->p, -ECANCELED);
        break;
    case 4:
        want_rc = -E2BIG;
        rc = ferry_promise_complete(ps->p, -E2BIG, NULL);
        break;
    case 5:
        v = new_value();
        rc = ferry_promise_complete(ps->p, 0, v);
        break;
    default:
        CHECK_RC(ferry_promise_reject(ps->p, 1), DOC_PROM_DONE, -EINVAL);
        return;
    }
    CHECK_RC(rc, DOC_PROM_DONE, ANY);
    FZ_CHECK(rc == 0 || rc == -EALREADY, "promise completion: %d", rc);
    if (rc == 0) {
        atomic_store(&ps->win_rc, want_rc);
        atomic_store(&ps->win_val, v);
        int w = atomic_fetch_add(&ps->winners, 1);
        FZ_CHECK(w == 0, "a promise completed twice");
    }
}

static void op_future_new(uint8_t a, uint8_t b)
{
    ferry_future *f = NULL;
    if (b & 1) { /* free-standing */
        CHECK_RC(ferry_future_new(NULL, &f), DOC_FUT_NEW, 0);
        add_fut(f, FK_FREE, NULL);
        return;
    }
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 7}, ls, false);
        return;
    }
    int rc = (int)CHECK_RC(ferry_future_new(ls->loop, &f), DOC_FUT_NEW,
                           ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    struct fslot *s = add_fut(f, FK_PLAIN, ls);
    if (s != NULL)
        track(s);
}

static void op_future_set(uint8_t a, uint8_t b, uint8_t c)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL || (s->kind != FK_PLAIN && s->kind != FK_FREE))
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        helper_push(
            &(struct hcmd){.op = H_FUT_SET, .a = c, .fut = s->f, .fs = s},
            false);
        return;
    }
    bool was_done = ferry_future_done(s->f);
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c % 5) {
    case 0:
        v = new_value();
        rc = (int)CHECK_RC(ferry_future_set_result(s->f, v, free_value),
                           DOC_SET, was_done ? -EALREADY : ANY);
        break;
    case 1:
        want_rc = -EIO;
        rc = (int)CHECK_RC(ferry_future_set_error(s->f, -EIO), DOC_SET,
                           was_done ? -EALREADY : ANY);
        break;
    case 2:
        rc = (int)CHECK_RC(ferry_future_set_error(s->f, 3), DOC_SET, -EINVAL);
        break;
    case 3:
        rc = (int)CHECK_RC(ferry_future_set_error(s->f, -ECANCELED), DOC_SET,
                           -EINVAL);
        break;
    default:
        v = new_value();
        rc = (int)CHECK_RC(
            ferry_future_set_result_threadsafe(s->f, v, free_value), DOC_SET_TS,
            was_done ? -EALREADY : ANY);
        break;
    }
    if (rc == 0) {
        atomic_store(&s->win_rc, want_rc);
        atomic_store(&s->win_val, v);
        atomic_fetch_add(&s->winners, 1);
    }
}

static void op_future_cancel(uint8_t a, uint8_t b)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        helper_push(&(struct hcmd){.op = H_FUT_CANCEL, .fut = s->f}, false);
        return;
    }
    bool was_done = ferry_future_done(s->f);
    bool won = ferry_future_cancel(s->f);
    FZ_CHECK(!(was_done && won), "cancel won on a done future");
    if (won)
        FZ_CHECK(ferry_future_cancelled(s->f) && ferry_future_done(s->f),
                 "cancel won but the future is not cancelled");
    CHECK_RC(ferry_future_result(s->f, NULL), DOC_RESULT,
             won ? -ECANCELED : ANY);
}

static void op_future_wait(uint8_t a, uint8_t b)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        helper_push(&(struct hcmd){.op = H_FUT_WAIT, .a = b >> 1, .fut = s->f},
                    false);
        return;
    }
    /* On this thread: a bound future of one of our loops may not be
     * waited for (-EDEADLK); a free-standing one may, briefly. */
    bool was_done = ferry_future_done(s->f);
    bool ours = ferry_future_loop(s->f) != NULL;
    int rc = (int)CHECK_RC(ferry_future_wait(s->f, ours ? 1000000 : 200000),
                           DOC_WAIT, was_done ? 0 : ANY);
    if (ours)
        FZ_CHECK(rc == 0 || rc == -EDEADLK, "wait on the owner: %d", rc);
    else
        FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "wait: %d", rc);
}

static void op_future_result(uint8_t a)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    void *v1 = NULL, *v2 = NULL;
    bool done = ferry_future_done(s->f);
    int r1 = (int)CHECK_RC(ferry_future_result(s->f, &v1), DOC_RESULT, ANY);
    int r2 = (int)CHECK_RC(ferry_future_result(s->f, &v2), DOC_RESULT, ANY);
    if (done)
        FZ_CHECK(r1 == r2 && v1 == v2 && r1 != -EAGAIN,
                 "a done future changed its outcome");
    FZ_CHECK((r1 == -ECANCELED) <= ferry_future_cancelled(s->f),
             "-ECANCELED but not cancelled");
}

static void op_add_done(uint8_t a, uint8_t b)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    struct lslot *ls = fut_loop(s);
    if (ferry_future_loop(s->f) == NULL) {
        CHECK_RC(ferry_future_add_done_callback(s->f, cb_done, NULL, NULL),
                 DOC_ADD_DONE, -EINVAL);
        return;
    }
    struct rec *r = new_rec(REC_DONE, ls);
    if (r == NULL)
        return;
    r->fut = s->f;
    r->dispose = !(b & 1);
    r->action = (uint8_t)(b >> 1);
    r->arg = (uint8_t)(b >> 4);
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int rc =
        (int)CHECK_RC(ferry_future_add_done_callback(
                          s->f, cb_done, r, r->dispose ? cb_dispose : NULL),
                      DOC_ADD_DONE, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!rec_final(r), "a done callback ran inside its registration");
}

static void op_remove_done(uint8_t a, uint8_t b)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL || ferry_future_loop(s->f) == NULL)
        return;
    /* Remove one of the registrations on this future (by its record). */
    struct rec *pick = NULL;
    int seen = 0;
    for (int i = 0; i < C->nrecs; i++) {
        struct rec *r = &C->recs[i];
        if (r->kind == REC_DONE && r->fut == s->f &&
            atomic_load(&r->reg) == REG_OK && seen++ == b % 4)
            pick = r;
    }
    if (pick == NULL || (s->ls != NULL && fut_loop(s) == NULL))
        return; /* its loop is gone from our model: cannot predict */
    bool was_final = rec_final(pick);
    int rc =
        (int)CHECK_RC(ferry_future_remove_done_callback(s->f, cb_done, pick),
                      DOC_REMOVE_DONE, was_final ? 0 : ANY);
    FZ_CHECK(rc == 0 || rc == 1, "removed %d registrations of one", rc);
    if (rc == 1)
        FZ_CHECK(!pick->dispose || (atomic_load(&pick->disposes) == 1 &&
                                    atomic_load(&pick->runs) == 0),
                 "removed done callback not disposed");
    if (pick == s->track && rc == 1)
        s->track = NULL;
}

static void op_timeout(uint8_t a, uint8_t b, uint8_t c)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    struct lslot *ls = fut_loop(s);
    static const int64_t d[8] = {0,          1000, 100000, 1000000,
                                 1000000000, 0,    -1,     50000};
    int64_t delay = d[b & 7];
    int64_t expect = ANY;
    if (delay < 0 || ferry_future_loop(s->f) == NULL)
        expect = -EINVAL;
    else if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    (void)c;
    CHECK_RC(ferry_future_timeout(s->f, delay), DOC_COMPOSE, expect);
}

static void op_then(uint8_t a, uint8_t b)
{
    struct fslot *s = pick_fut(a);
    if (s == NULL)
        return;
    ferry_future *next = NULL;
    if (ferry_future_loop(s->f) == NULL) {
        CHECK_RC(ferry_future_then(s->f, then_fn, NULL, NULL, &next),
                 DOC_COMPOSE, -EINVAL);
        return;
    }
    struct lslot *ls = fut_loop(s);
    struct rec *r = new_rec(REC_FN, ls);
    if (r == NULL)
        return;
    r->action = b;
    if (!(b & 0x10) && r->action % 3 == 0)
        r->action = 2; /* no dtor: NULL rather than a leak */
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int src = (int)(s - C->futs);
    int rc =
        (int)CHECK_RC(ferry_future_then(s->f, then_fn, r,
                                        (b & 0x10) ? free_value : NULL, &next),
                      DOC_COMPOSE, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    struct fslot *n = add_fut(next, FK_THEN, ls);
    if (n == NULL)
        return;
    n->fn = r;
    n->src = src;
    track(n);
}

static void op_wrap(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = pick_loop(a);
    struct fslot *s = pick_fut(b);
    if (ls == NULL || s == NULL)
        return;
    if (c & 1) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 13}, ls, false);
        return;
    }
    ferry_future *w = NULL;
    int src = (int)(s - C->futs);
    int rc = (int)CHECK_RC(ferry_future_wrap(ls->loop, s->f, &w), DOC_COMPOSE,
                           ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    bool alias = ferry_future_loop(s->f) == ls->loop;
    FZ_CHECK(alias == (w == s->f), "wrap of a future of the same loop");
    struct fslot *n = add_fut(w, alias ? FK_ALIAS : FK_WRAP, ls);
    if (n == NULL)
        return;
    n->src = src;
    track(n);
}

/* Drop our reference. A future nobody else will complete is cancelled
 * first, as its owner would: otherwise a wrapper and its source keep each
 * other alive by design (bridge.h, ferry_future_wrap). */
static void drop_fut(struct fslot *s)
{
    if (!bounded(s, 0, NULL))
        (void)ferry_future_cancel(s->f);
    ferry_future_unref(s->f);
    s->f = NULL;
}

static void op_run_until_complete(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    helper_sync(); /* its completions are in */
    collect_mail();
    struct fslot *s = pick_fut(b);
    if (s == NULL || !bounded(s, 0, ls->loop))
        return;
    void *v = NULL;
    int64_t expect = ANY;
    if (ferry_future_loop(s->f) != ls->loop)
        expect = -EINVAL;
    else if (ls->closed)
        expect = -ESHUTDOWN;
    int rc = (int)CHECK_RC(ferry_loop_run_until_complete(ls->loop, s->f, &v),
                           DOC_RUN_UNTIL, expect);
    if (expect != ANY || rc == -EAGAIN)
        return;
    void *v2 = NULL;
    FZ_CHECK(ferry_future_done(s->f), "run_until_complete: not done");
    FZ_CHECK(ferry_future_result(s->f, &v2) == rc && (rc != 0 || v == v2),
             "run_until_complete returned another outcome");
}

static void op_pool_new(uint8_t a, uint8_t b, uint8_t c)
{
    if (C->pool_in != NULL) {
        if (C->pool_in_shut == 0)
            return;
        helper_sync(); /* no command still names it */
        CHECK_RC(ferry_pool_free(C->pool_in), DOC_POOL_FREE, 0);
        C->pool_in = NULL;
    }
    struct ferry_pool_opts o = {
        .threads = 1 + (a & 1),
        .max_threads = 1 + (a & 1) + b % 3,
        .keepalive_ns = 1000000,
        .queue_limit = c % 4,
        .starvation_ns = (c & 4) ? 1000000 : 0,
        .name_prefix = "fz-in",
    };
    CHECK_RC(ferry_pool_new(&C->pool_in, &o), DOC_POOL_NEW, 0);
    C->pool_in_shut = 0;
}

static void op_pool_shutdown(uint8_t a, uint8_t b, uint8_t c)
{
    if (C->pool_in == NULL)
        return;
    if (c & 1) {
        helper_push(
            &(struct hcmd){
                .op = H_POOL_SHUTDOWN, .a = a, .b = b & 1, .pool = C->pool_in},
            false);
        if (C->pool_in_shut == 0)
            C->pool_in_shut = 2;
        return;
    }
    struct ferry_pool_report rep;
    if (a & 2) {
        CHECK_RC(ferry_pool_shutdown(C->pool_in, 7, 0, NULL), DOC_POOL_SHUTDOWN,
                 -EINVAL);
        CHECK_RC(ferry_pool_shutdown(C->pool_in, 0, -2, NULL),
                 DOC_POOL_SHUTDOWN, -EINVAL);
        return;
    }
    static const int64_t t[4] = {0, 1000000, -1, 0};
    int rc = (int)CHECK_RC(
        ferry_pool_shutdown(C->pool_in, a & 1, t[b & 3], (b & 4) ? &rep : NULL),
        DOC_POOL_SHUTDOWN, t[b & 3] == -1 ? 0 : ANY);
    FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "pool shutdown: %d", rc);
    if (rc == -ETIMEDOUT && (b & 4))
        FZ_CHECK(rep.listed <= rep.running &&
                     rep.listed <= FERRY_POOL_REPORT_MAX,
                 "shutdown report");
    C->pool_in_shut = 1;
}

static void op_pool_submit(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = a % 3;
    ferry_pool *pool = pool_by_sel(sel);
    unsigned flags = b & 1 ? FERRY_TASK_BLOCKING : 0;
    if (b & 2)
        flags |= 1u << 5; /* unknown flag */
    ferry_task *t = NULL;
    bool keep = (b & 4) && C->ntasks < MAX_TASKS;
    int64_t expect = pool == NULL || (flags & ~FERRY_TASK_BLOCKING)
                         ? -EINVAL
                         : pool_expect(sel);
    int rc;
    /* try_submit on the per-input pool (queue_limit) may say -EAGAIN, also
     * once it is shut down: the limit is checked first (executor/pool.c). */
    if (b & 8)
        rc = (int)CHECK_RC(
            ferry_pool_try_submit(pool, task_fn, (void *)(uintptr_t)c, flags,
                                  keep ? &t : NULL),
            DOC_TRY_SUBMIT, sel == 1 && expect != -EINVAL ? ANY : expect);
    else
        rc =
            (int)CHECK_RC(ferry_pool_submit(pool, task_fn, (void *)(uintptr_t)c,
                                            flags, keep ? &t : NULL),
                          DOC_SUBMIT, expect);
    if (rc == 0 && keep)
        C->tasks[C->ntasks++].t = t;
}

static void op_task(uint8_t a, uint8_t b)
{
    if (C->ntasks == 0)
        return;
    struct tslot *ts = &C->tasks[a % C->ntasks];
    if (ts->t == NULL)
        return;
    switch (b % 4) {
    case 0:
        CHECK_RC(ferry_task_cancel(ts->t), DOC_TASK_CANCEL, ANY);
        break;
    case 1:
        CHECK_RC(ferry_task_status(ts->t), DOC_TASK_STATUS, ANY);
        break;
    case 2:
        helper_push(&(struct hcmd){.op = H_TASK, .a = b >> 2, .task = ts->t},
                    false);
        break;
    default:
        helper_sync(); /* the helper may still use it */
        ferry_task_unref(ts->t);
        ts->t = NULL;
        break;
    }
}

static void op_group(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = a % 2;
    ferry_pool *pool = pool_by_sel(sel);
    ferry_group g;
    CHECK_RC(ferry_group_init(&g, pool), DOC_GROUP_INIT, 0);
    int64_t expect = pool_expect(sel);
    for (unsigned i = 0; i < 1 + b % 4u; i++)
        CHECK_RC(ferry_group_spawn(&g, task_fn, (void *)(uintptr_t)(c & ~3u),
                                   (b & 0x10) ? FERRY_TASK_BLOCKING : 0),
                 DOC_GROUP_SPAWN, expect);
    CHECK_RC(ferry_group_wait(&g), DOC_GROUP_INIT, 0);
}

static void op_shutdown_default(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    if (c & 1) {
        helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 11}, ls, false);
        return;
    }
    static const int64_t t[4] = {-1, 0, 1000000, -2};
    int64_t timeout = t[b & 3];
    int rc =
        (int)CHECK_RC(ferry_loop_shutdown_default_executor(ls->loop, timeout),
                      DOC_SHUT_DEFAULT,
                      timeout == -2   ? -EINVAL
                      : timeout == -1 ? 0
                                      : ANY);
    if (rc == 0 || rc == -ETIMEDOUT)
        ls->default_shut = true;
}

static void slow_hook(void *arg, const char *symbol, uint64_t ns)
{
    (void)arg;
    (void)symbol;
    (void)ns;
    FZ_CHECK(on_main(), "the slow-callback hook ran off the loop's thread");
}

static void op_loop_misc(uint8_t a, uint8_t b)
{
    struct lslot *ls = pick_loop(a);
    if (ls == NULL)
        return;
    switch (b % 6) {
    case 0: {
        int64_t fd = CHECK_RC(ferry_loop_fd(ls->loop), DOC_LOOP_FD,
                              ls->closed ? -ESHUTDOWN : ANY);
        FZ_CHECK(ls->closed || fd > 0, "ferry_loop_fd: %lld", (long long)fd);
        if (!ls->closed)
            ls->embedded = true;
        break;
    }
    case 1: {
        int64_t t = CHECK_RC(ferry_loop_timeout(ls->loop), DOC_LOOP_TIMEOUT,
                             ls->closed ? -ESHUTDOWN : ANY);
        FZ_CHECK(t >= -1 || ls->closed, "ferry_loop_timeout: %lld",
                 (long long)t);
        break;
    }
    case 2:
        CHECK_RC(ferry_loop_set_slow_callback(ls->loop, (b >> 3) & 1,
                                              (b & 0x40) ? NULL : slow_hook,
                                              NULL),
                 DOC_SLOW, 0);
        break;
    case 3:
        CHECK_RC(ferry_loop_after_fork(ls->loop), DOC_AFTER_FORK, -EALREADY);
        break;
    case 4:
        helper_loop_cmd(
            (struct hcmd){.op = H_ANY,
                          .a = (uint8_t)(b >> 3),
                          .pool = (b & 0x40) ? persistent_pool : NULL},
            ls, false);
        break;
    default:
        helper_loop_cmd((struct hcmd){.op = H_WRONG,
                                      .a = (uint8_t)(b >> 3),
                                      .b = (uint8_t)ls->sv[0]},
                        ls, false);
        break;
    }
}

/* Invalid arguments: each must give its exact error and touch nothing. */
static void op_invalid(uint8_t a)
{
    ferry_future *f = NULL;
    ferry_promise *p = NULL;
    ferry_handle *h = NULL;
    ferry_pool *pool = NULL;
    ferry_group g;
    struct ferry_loop_stats ls;
    struct ferry_pool_stats ps;
    switch (a % 40) {
    case 0:
        CHECK_RC(ferry_loop_new(NULL, NULL), DOC_LOOP_NEW, -EINVAL);
        break;
    case 1:
        CHECK_RC(ferry_loop_free(NULL), DOC_LOOP_FREE, -EINVAL);
        break;
    case 2:
        CHECK_RC(ferry_loop_close(NULL), DOC_LOOP_CLOSE, -EINVAL);
        break;
    case 3:
        CHECK_RC(ferry_loop_run_once(NULL, 0), DOC_RUN, -EINVAL);
        break;
    case 4:
        CHECK_RC(ferry_loop_run_forever(NULL), DOC_RUN, -EINVAL);
        break;
    case 5:
        CHECK_RC(ferry_loop_stop(NULL), DOC_STOP, -EINVAL);
        break;
    case 6:
        CHECK_RC(ferry_call_soon(NULL, never_cb, NULL, NULL, &h), DOC_CALL,
                 -EINVAL);
        break;
    case 7:
        CHECK_RC(ferry_call_later(NULL, 0, never_cb, NULL, NULL, &h), DOC_CALL,
                 -EINVAL);
        break;
    case 8:
        CHECK_RC(ferry_call_soon_threadsafe(NULL, never_cb, NULL, NULL),
                 DOC_POST, -EINVAL);
        break;
    case 9:
        CHECK_RC(ferry_handle_cancel(NULL), DOC_HCANCEL, -EINVAL);
        ferry_handle_unref(NULL);
        FZ_CHECK(!ferry_handle_cancelled(NULL), "cancelled(NULL)");
        break;
    case 10:
        CHECK_RC(ferry_add_reader(NULL, 0, never_cb, NULL, NULL), DOC_ADD_WATCH,
                 -EINVAL);
        break;
    case 11:
        CHECK_RC(ferry_remove_writer(NULL, 0), DOC_REMOVE_WATCH, -EINVAL);
        break;
    case 12:
        CHECK_RC(ferry_loop_fd(NULL), DOC_LOOP_FD, -EINVAL);
        break;
    case 13:
        CHECK_RC(ferry_loop_timeout(NULL), DOC_LOOP_TIMEOUT, -EINVAL);
        break;
    case 14:
        CHECK_RC(ferry_loop_stats(NULL, &ls), DOC_LOOP_STATS, -EINVAL);
        FZ_CHECK(!ferry_loop_is_running(NULL) && !ferry_loop_is_closed(NULL) &&
                     ferry_loop_time(NULL) == 0,
                 "NULL loop queries");
        ferry_loop_ref(NULL);
        ferry_loop_unref(NULL);
        break;
    case 15:
        CHECK_RC(ferry_loop_set_slow_callback(NULL, 0, NULL, NULL), DOC_SLOW,
                 -EINVAL);
        break;
    case 16:
        CHECK_RC(ferry_loop_after_fork(NULL), DOC_AFTER_FORK, -EINVAL);
        break;
    case 17:
        CHECK_RC(ferry_future_new(NULL, NULL), DOC_FUT_NEW, -EINVAL);
        break;
    case 18:
        CHECK_RC(ferry_future_set_result(NULL, NULL, NULL), DOC_SET, -EINVAL);
        CHECK_RC(ferry_future_set_error(NULL, -EIO), DOC_SET, -EINVAL);
        break;
    case 19:
        CHECK_RC(ferry_future_set_result_threadsafe(NULL, NULL, NULL),
                 DOC_SET_TS, -EINVAL);
        CHECK_RC(ferry_future_set_error_threadsafe(NULL, -EIO), DOC_SET_TS,
                 -EINVAL);
        break;
    case 20:
        FZ_CHECK(!ferry_future_cancel(NULL) && !ferry_future_done(NULL) &&
                     !ferry_future_cancelled(NULL) &&
                     ferry_future_loop(NULL) == NULL,
                 "NULL future queries");
        ferry_future_ref(NULL);
        ferry_future_unref(NULL);
        break;
    case 21:
        CHECK_RC(ferry_future_result(NULL, NULL), DOC_RESULT, -EINVAL);
        break;
    case 22:
        CHECK_RC(ferry_future_add_done_callback(NULL, cb_done, NULL, NULL),
                 DOC_ADD_DONE, -EINVAL);
        CHECK_RC(ferry_future_remove_done_callback(NULL, cb_done, NULL),
                 DOC_REMOVE_DONE, -EINVAL);
        break;
    case 23:
        CHECK_RC(ferry_future_wait(NULL, 0), DOC_WAIT, -EINVAL);
        break;
    case 24:
        CHECK_RC(ferry_run_in_executor(NULL, persistent_pool, work_fn, NULL,
                                       NULL, &f),
                 DOC_RIE, -EINVAL);
        break;
    case 25:
        CHECK_RC(
            ferry_pool_submit_future(persistent_pool, NULL, NULL, NULL, &f),
            DOC_SUBMIT_FUT, -EINVAL);
        CHECK_RC(ferry_pool_submit_future(persistent_pool, work_fn, NULL, NULL,
                                          NULL),
                 DOC_SUBMIT_FUT, -EINVAL);
        break;
    case 26:
        CHECK_RC(ferry_run_threadsafe(NULL, ts_fn, NULL, NULL, &f), DOC_RUN_TS,
                 -EINVAL);
        break;
    case 27:
        CHECK_RC(ferry_promise_new(NULL, NULL, NULL, &f), DOC_PROM_NEW,
                 -EINVAL);
        CHECK_RC(ferry_promise_new(NULL, NULL, &p, NULL), DOC_PROM_NEW,
                 -EINVAL);
        break;
    case 28:
        CHECK_RC(ferry_promise_resolve(NULL, NULL), DOC_PROM_DONE, -EINVAL);
        CHECK_RC(ferry_promise_reject(NULL, -EIO), DOC_PROM_DONE, -EINVAL);
        CHECK_RC(ferry_promise_complete(NULL, 0, NULL), DOC_PROM_DONE, -EINVAL);
        ferry_promise_ref(NULL);
        ferry_promise_unref(NULL);
        ferry_promise_cb_status(NULL, 0);
        ferry_promise_cb_status_data(NULL, 1, NULL);
        ferry_promise_cb_status_data_ctx(0, NULL, NULL);
        break;
    case 29:
        CHECK_RC(ferry_future_timeout(NULL, 0), DOC_COMPOSE, -EINVAL);
        break;
    case 30:
        CHECK_RC(ferry_future_then(NULL, then_fn, NULL, NULL, &f), DOC_COMPOSE,
                 -EINVAL);
        break;
    case 31:
        CHECK_RC(ferry_future_wrap(NULL, NULL, &f), DOC_COMPOSE, -EINVAL);
        break;
    case 32:
        CHECK_RC(ferry_loop_shutdown_default_executor(NULL, 0),
                 DOC_SHUT_DEFAULT, -EINVAL);
        break;
    case 33:
        CHECK_RC(ferry_pool_new(NULL, NULL), DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.threads = 4,
                                                            .max_threads = 2}),
            DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.threads = 5000}),
            DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.stack_size = 1}),
            DOC_POOL_NEW, -EINVAL);
        break;
    case 34:
        CHECK_RC(ferry_pool_free(NULL), DOC_POOL_FREE, -EINVAL);
        CHECK_RC(ferry_pool_shutdown(NULL, 0, 0, NULL), DOC_POOL_SHUTDOWN,
                 -EINVAL);
        break;
    case 35:
        CHECK_RC(ferry_pool_submit(NULL, task_fn, NULL, 0, NULL), DOC_SUBMIT,
                 -EINVAL);
        CHECK_RC(ferry_pool_submit(persistent_pool, NULL, NULL, 0, NULL),
                 DOC_SUBMIT, -EINVAL);
        CHECK_RC(ferry_pool_try_submit(NULL, task_fn, NULL, 0, NULL),
                 DOC_TRY_SUBMIT, -EINVAL);
        break;
    case 36:
        CHECK_RC(ferry_task_cancel(NULL), DOC_TASK_CANCEL, -EINVAL);
        CHECK_RC(ferry_task_status(NULL), DOC_TASK_STATUS, -EINVAL);
        ferry_task_unref(NULL);
        FZ_CHECK(!ferry_task_cancelled(), "task_cancelled() off a worker");
        ferry_blocking_begin(); /* no effect off a worker */
        ferry_blocking_end();
        break;
    case 37:
        CHECK_RC(ferry_group_init(NULL, persistent_pool), DOC_GROUP_INIT,
                 -EINVAL);
        CHECK_RC(ferry_group_init(&g, NULL), DOC_GROUP_INIT, -EINVAL);
        CHECK_RC(ferry_group_spawn(NULL, task_fn, NULL, 0), DOC_GROUP_SPAWN,
                 -EINVAL);
        CHECK_RC(ferry_group_wait(NULL), DOC_GROUP_INIT, -EINVAL);
        break;
    case 38:
        CHECK_RC(ferry_pool_stats(NULL, &ps), DOC_POOL_STATS, -EINVAL);
        CHECK_RC(ferry_pool_stats(persistent_pool, &ps), DOC_POOL_STATS, 0);
        CHECK_RC(ferry_pool_after_fork(NULL), DOC_POOL_AFTER_FORK, -EINVAL);
        CHECK_RC(ferry_pool_after_fork(persistent_pool), DOC_POOL_AFTER_FORK,
                 -EINVAL); /* not a child */
        break;
    default:
        FZ_CHECK(ferry_strerror(-EBUSY) != NULL &&
                     ferry_strerror(-99999) != NULL && ferry_version() != NULL,
                 "strerror/version");
        FZ_CHECK(ferry_loop_running() == NULL, "no loop runs here now");
        break;
    }
}

static void step(uint8_t op, uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    collect_mail();
    op_counts[op % OP_COUNT]++;
    if (trace)
        fprintf(stderr, "  %-18s %3u %3u %3u\n", op_names[op % OP_COUNT], a, b,
                c);
    switch ((enum op)(op % OP_COUNT)) {
    case OP_LOOP_NEW:
        if (C->loops[a % NLOOPS].loop == NULL)
            new_loop(&C->loops[a % NLOOPS], b);
        break;
    case OP_RUN_ONCE:
        op_run_once(a, b);
        break;
    case OP_RUN_FOREVER:
        op_run_forever(a, b);
        break;
    case OP_STOP:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if (b & 1)
            helper_loop_cmd((struct hcmd){.op = H_STOP}, ls, false);
        else
            CHECK_RC(ferry_loop_stop(ls->loop), DOC_STOP,
                     ls->closed ? -ESHUTDOWN : 0);
        break;
    case OP_CLOSE:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if (b & 1)
            helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 5}, ls, false);
        else if (ls->closed)
            CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, 0);
        else
            close_checked(ls);
        break;
    case OP_FREE:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if (b & 1)
            helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 6}, ls, false);
        else
            free_slot(ls);
        break;
    case OP_CALL_SOON:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if (b & 0x80)
            helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 0}, ls, false);
        else if (b & 0x40)
            CHECK_RC(ferry_call_soon(ls->loop, NULL, NULL, NULL, NULL),
                     DOC_CALL, -EINVAL);
        else
            do_call(ls, -1, b & 7, c, b & 8, !(b & 0x10) || (b & 8), false);
        break;
    case OP_CALL_LATER:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if ((b & 7) == 7) {
            CHECK_RC(ferry_call_later(ls->loop, -1, never_cb, NULL, NULL, NULL),
                     DOC_CALL, -EINVAL);
            break;
        }
        if (b & 0x80) {
            helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 1}, ls, false);
            break;
        }
        do_call(ls, delays[b & 7], (uint8_t)(c & 7), (uint8_t)(c >> 3), b & 8,
                true, b & 0x40);
        break;
    case OP_POST:
        if ((ls = pick_loop(a)) == NULL)
            break;
        if (b & 1) {
            struct rec *r = new_rec(REC_ONCE, ls);
            if (r == NULL)
                break;
            r->action = (uint8_t)((b >> 1) & 7);
            r->arg = c;
            r->dispose = !(b & 0x10);
            bool null_cb = (b & 0x60) == 0x60;
            if (!null_cb) {
                r->space = SP_POST_HELPER;
                r->seq = ++ls->next_seq[SP_POST_HELPER];
            }
            helper_loop_cmd((struct hcmd){.op = H_POST, .a = null_cb, .rec = r},
                            ls, false);
        } else {
            do_post_main(ls, (uint8_t)((b >> 1) & 7), c, !(b & 0x10));
        }
        break;
    case OP_HANDLE_CANCEL:
        if (C->nhandles > 0) {
            struct hslot *hs = &C->handles[a % C->nhandles];
            if (hs->h == NULL)
                break;
            int64_t expect = rec_final(hs->r) ? -EALREADY : 0;
            if (b & 1) {
                /* Synchronous: handles are owner-thread objects, the
                 * helper only reads one while we wait. */
                helper_push(&(struct hcmd){.op = H_HANDLE_CANCEL,
                                           .h = hs->h,
                                           .expect = expect ? expect : -EPERM},
                            true);
                break;
            }
            CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, expect);
            FZ_CHECK(rec_final(hs->r), "cancelled handle not disposed");
            FZ_CHECK(ferry_handle_cancelled(hs->h) ==
                         (atomic_load(&hs->r->disposes) == 1),
                     "ferry_handle_cancelled disagrees with dispose");
        }
        break;
    case OP_HANDLE_UNREF:
        if (C->nhandles > 0) {
            struct hslot *hs = &C->handles[a % C->nhandles];
            if (hs->h != NULL) {
                ferry_handle_unref(hs->h);
                hs->h = NULL;
            }
        }
        break;
    case OP_ADD_WATCH:
        op_add_watch(a, b, c);
        break;
    case OP_REMOVE_WATCH:
        op_remove_watch(a, b);
        break;
    case OP_SOCK:
        op_sock(a, b);
        break;
    case OP_RUN_IN_EXECUTOR:
        op_run_in_executor(a, b, c);
        break;
    case OP_SUBMIT_FUTURE:
        op_submit_future(a, b, c);
        break;
    case OP_RUN_THREADSAFE:
        op_run_threadsafe(a, b, c);
        break;
    case OP_PROMISE_NEW:
        op_promise_new(a, b);
        break;
    case OP_PROMISE_COMPLETE:
        op_promise_complete(a, b, c);
        break;
    case OP_PROMISE_UNREF:
        if (C->nproms > 0) {
            struct pslot *ps = &C->proms[a % C->nproms];
            if (ps->p != NULL) {
                ferry_promise_unref(ps->p); /* helper commands hold theirs */
                ps->p = NULL;
            }
        }
        break;
    case OP_FUTURE_NEW:
        op_future_new(a, b);
        break;
    case OP_FUTURE_SET:
        op_future_set(a, b, c);
        break;
    case OP_FUTURE_CANCEL:
        op_future_cancel(a, b);
        break;
    case OP_FUTURE_WAIT:
        op_future_wait(a, b);
        break;
    case OP_FUTURE_RESULT:
        op_future_result(a);
        break;
    case OP_ADD_DONE:
        op_add_done(a, b);
        break;
    case OP_REMOVE_DONE:
        op_remove_done(a, b);
        break;
    case OP_TIMEOUT:
        op_timeout(a, b, c);
        break;
    case OP_THEN:
        op_then(a, b);
        break;
    case OP_WRAP:
        op_wrap(a, b, c);
        break;
    case OP_FUTURE_UNREF: {
        struct fslot *s = pick_fut(a);
        if (s != NULL && s->kind != FK_PROMISE)
            drop_fut(s);
        break;
    }
    case OP_RUN_UNTIL_COMPLETE:
        op_run_until_complete(a, b);
        break;
    case OP_POOL_NEW:
        op_pool_new(a, b, c);
        break;
    case OP_POOL_SHUTDOWN:
        op_pool_shutdown(a, b, c);
        break;
    case OP_POOL_SUBMIT:
        op_pool_submit(a, b, c);
        break;
    case OP_TASK:
        op_task(a, b);
        break;
    case OP_GROUP:
        op_group(a, b, c);
        break;
    case OP_SHUTDOWN_DEFAULT:
        op_shutdown_default(a, b, c);
        break;
    case OP_LOOP_MISC:
        op_loop_misc(a, b);
        break;
    case OP_INVALID:
        op_invalid(a);
        break;
    case OP_HELPER_SYNC:
        helper_sync();
        break;
    case OP_COUNT:
        break;
    }
}

/* ---- the end of a program: drain, close, drop, wait, check ---- */

static void run_all_once(int64_t timeout)
{
    for (int i = 0; i < NLOOPS; i++) {
        struct lslot *ls = &C->loops[i];
        if (ls->loop != NULL && !ls->closed)
            CHECK_RC(ferry_loop_run_once(ls->loop, timeout), DOC_RUN, 0);
    }
}

static bool all_bounded_done(void)
{
    for (int i = 0; i < C->nfuts; i++) {
        struct fslot *s = &C->futs[i];
        if (s->f == NULL || ferry_future_done(s->f))
            continue;
        if (bounded(s, 0, NULL))
            return false;
    }
    return true;
}

/* Whether the outcome rc/val of s is one its producer could give. */
static void check_outcome(struct fslot *s)
{
    int rc = s->final_rc;
    void *val = s->final_val;
    bool stop = rc == -ECANCELED || rc == -ETIMEDOUT;
    switch ((enum fkind)s->kind) {
    case FK_JOB:
    case FK_JOB_FREE:
        if (stop)
            break;
        switch (s->work & 3) {
        case W_ERROR:
            FZ_CHECK(rc == -EIO, "job: %d, its work returned -EIO", rc);
            break;
        case W_NULL:
            FZ_CHECK(rc == 0 && val == NULL, "job: %d %p, expected NULL", rc,
                     val);
            break;
        default:
            FZ_CHECK(rc == 0 && val != NULL, "job: %d %p, expected a value", rc,
                     val);
            break;
        }
        break;
    case FK_TS:
    case FK_THEN: {
        struct rec *r = s->fn;
        if (r == NULL)
            break;
        if (atomic_load(&r->runs) == 0)
            FZ_CHECK(stop || rc == -ESHUTDOWN,
                     "%s: fn never ran, the future says %d",
                     s->kind == FK_TS ? "run_threadsafe" : "then", rc);
        else
            FZ_CHECK(stop ||
                         (rc == r->out_rc && (rc != 0 || val == r->out_val)),
                     "%s: fn returned %d %p, the future says %d %p",
                     s->kind == FK_TS ? "run_threadsafe" : "then", r->out_rc,
                     r->out_val, rc, val);
        break;
    }
    case FK_WRAP:
    case FK_ALIAS: {
        struct fslot *src = s->src >= 0 ? &C->futs[s->src] : NULL;
        if (src == NULL || !src->final_done || stop)
            break;
        FZ_CHECK(rc == src->final_rc && (rc != 0 || val == src->final_val),
                 "wrapper: %d %p, its source %d %p", rc, val, src->final_rc,
                 src->final_val);
        break;
    }
    case FK_PROMISE: {
        struct pslot *ps = s->prom;
        FZ_CHECK(atomic_load(&ps->winners) <= 1, "promise: %d winners",
                 atomic_load(&ps->winners));
        if (stop && rc == -ECANCELED)
            break;
        if (rc == -ETIMEDOUT)
            break;
        FZ_CHECK(atomic_load(&ps->winners) == 1,
                 "promise future resolved (%d) but nobody completed it", rc);
        FZ_CHECK(rc == atomic_load(&ps->win_rc) &&
                     (rc != 0 || val == atomic_load(&ps->win_val)),
                 "promise future: %d %p, the winner gave %d %p", rc, val,
                 atomic_load(&ps->win_rc), atomic_load(&ps->win_val));
        break;
    }
    case FK_PLAIN:
    case FK_FREE:
        FZ_CHECK(atomic_load(&s->winners) <= 1, "future set %d times",
                 atomic_load(&s->winners));
        if (stop)
            break;
        FZ_CHECK(atomic_load(&s->winners) == 1,
                 "future resolved (%d) but nobody set it", rc);
        FZ_CHECK(rc == atomic_load(&s->win_rc) &&
                     (rc != 0 || val == atomic_load(&s->win_val)),
                 "future: %d %p, the winner set %d %p", rc, val,
                 atomic_load(&s->win_rc), atomic_load(&s->win_val));
        break;
    }
}

static void wait_done(struct fslot *s, uint64_t deadline)
{
    while (!ferry_future_done(s->f)) {
        FZ_CHECK(now_ns() < deadline, "a future never completed (kind %d)",
                 s->kind);
        sched_yield();
    }
}

static bool quiet(const char **why)
{
    for (int i = 0; i < C->nrecs; i++) {
        struct rec *r = &C->recs[i];
        int reg = atomic_load(&r->reg);
        if (reg == REG_OK && r->dispose && r->kind != REC_FN &&
            atomic_load(&r->disposes) +
                    (r->kind == REC_WATCH ? 0 : atomic_load(&r->runs)) ==
                0) {
            *why = "a registration neither ran nor was disposed";
            if (trace)
                fprintf(stderr,
                        "fuzz_api: record %d kind %d loop %d gen %u fut %p\n",
                        i, r->kind, r->ls ? r->ls->idx : -1, r->ls_gen, r->fut);
            return false;
        }
    }
    if (atomic_load(&values_made) != atomic_load(&values_freed)) {
        *why = "result values leaked";
        return false;
    }
    if (count_fds() != base_fds) {
        *why = "file descriptors leaked";
        return false;
    }
    return true;
}

static void dump_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        fprintf(stderr, "fuzz_api: fd %s -> %s\n", e->d_name, target);
    }
    if (d != NULL)
        closedir(d);
}

static void finish(void)
{
    uint64_t deadline = now_ns() + DEADLINE_NS;
    helper_sync();
    collect_mail();

    /* 1. Let bounded work complete naturally, running the loops. */
    while (!all_bounded_done()) {
        FZ_CHECK(now_ns() < deadline, "bounded futures never completed");
        run_all_once(100000);
        collect_mail();
    }
    run_all_once(0);

    /* 2. Cancel what is left (a no-op on done futures), as an owner who
     * stops waiting would; then every future must complete. */
    for (int i = 0; i < C->nfuts; i++)
        if (C->futs[i].f != NULL)
            (void)ferry_future_cancel(C->futs[i].f);
    run_all_once(0);
    for (int i = 0; i < C->nfuts; i++) {
        struct fslot *s = &C->futs[i];
        if (s->f == NULL)
            continue;
        wait_done(s, deadline);
        void *v = NULL;
        s->final_rc =
            (int)CHECK_RC(ferry_future_result(s->f, &v), DOC_RESULT, ANY);
        s->final_val = s->final_rc == 0 ? v : NULL;
        s->final_done = true;
        FZ_CHECK(s->final_rc != -EAGAIN, "done future reads -EAGAIN");
    }
    for (int i = 0; i < C->nfuts; i++)
        if (C->futs[i].f != NULL)
            check_outcome(&C->futs[i]);

    /* 3. Close and free the loops: everything left is disposed. */
    run_all_once(0);
    for (int i = 0; i < NLOOPS; i++)
        if (C->loops[i].loop != NULL)
            free_slot(&C->loops[i]);

    /* 4. Tracking callbacks saw the outcome the future keeps. */
    for (int i = 0; i < C->nfuts; i++) {
        struct fslot *s = &C->futs[i];
        struct rec *r = s->track;
        if (s->f == NULL || r == NULL || atomic_load(&r->runs) == 0)
            continue;
        FZ_CHECK(r->out_rc == s->final_rc && r->out_val == s->final_val,
                 "a future changed its outcome after its callbacks ran "
                 "(%d %p, then %d %p)",
                 r->out_rc, r->out_val, s->final_rc, s->final_val);
    }

    /* 5. Drop every reference we hold. */
    for (int i = 0; i < C->nhandles; i++) {
        struct hslot *hs = &C->handles[i];
        if (hs->h == NULL)
            continue;
        /* Stale handles: the loop is gone, cancel must not touch it. */
        CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, -EALREADY);
        ferry_handle_unref(hs->h);
    }
    for (int i = 0; i < C->nproms; i++)
        if (C->proms[i].p != NULL)
            ferry_promise_unref(C->proms[i].p);
    for (int i = 0; i < C->nfuts; i++) {
        if (C->futs[i].f == NULL)
            continue;
        if (trace)
            fprintf(stderr, "fuzz_api: future %d %p kind %d outcome %d\n", i,
                    C->futs[i].f, C->futs[i].kind, C->futs[i].final_rc);
        ferry_future_unref(C->futs[i].f);
    }
    if (C->pool_in != NULL)
        CHECK_RC(ferry_pool_free(C->pool_in), DOC_POOL_FREE, 0);
    for (int i = 0; i < C->ntasks; i++) {
        ferry_task *t = C->tasks[i].t;
        if (t == NULL)
            continue;
        /* Every task finishes: ran (0) or dropped (-ECANCELED). */
        while (ferry_task_status(t) == -EAGAIN) {
            FZ_CHECK(now_ns() < deadline, "a task never finished");
            sched_yield();
        }
        CHECK_RC(ferry_task_status(t), DOC_TASK_STATUS, ANY);
        ferry_task_unref(t);
    }

    /* 6. The pools' stragglers finish; then nothing may be left. */
    const char *why = NULL;
    while (!quiet(&why)) {
        if (now_ns() >= deadline && count_fds() != base_fds)
            dump_fds();
        FZ_CHECK(now_ns() < deadline, "not quiet after the program: %s", why);
        sleep_for(20000);
    }
    for (int i = 0; i < C->nrecs; i++) {
        struct rec *r = &C->recs[i];
        int runs = atomic_load(&r->runs);
        int disposes = atomic_load(&r->disposes);
        int reg = atomic_load(&r->reg);
        if (reg != REG_OK) {
            FZ_CHECK(runs == 0 && disposes == 0,
                     "record %d: registration failed, yet ran %d disposed %d",
                     i, runs, disposes);
            continue;
        }
        switch ((enum rec_kind)r->kind) {
        case REC_ONCE:
        case REC_DONE:
            FZ_CHECK(runs + disposes == (r->dispose ? 1 : runs),
                     "record %d (kind %d): ran %d, disposed %d", i, r->kind,
                     runs, disposes);
            FZ_CHECK(runs <= 1, "record %d ran %d times", i, runs);
            break;
        case REC_WATCH:
            FZ_CHECK(disposes == (r->dispose ? 1 : 0),
                     "watcher %d disposed %d times", i, disposes);
            break;
        case REC_FN:
            FZ_CHECK(runs <= 1, "fn %d ran %d times", i, runs);
            break;
        }
    }
}

/* ---- set-up ---- */

/*
 * LeakSanitizer and threads. A thread that exited but was not joined yet
 * (a retired spare: the pool joins it when its slot is reused) stays in
 * ASan's thread registry under its kernel tid. Once the kernel hands that
 * tid to a new thread (pid_max is 32768 here, and the machine is shared:
 * it wraps in about a minute), LSan's lookup by tid finds the stale entry
 * first and skips the live thread's stack and TLS, reporting what only
 * they reference as leaked: seen as a 64-byte task block at the head of a
 * live worker's block cache, and reproduced with plain threads (no ferry).
 * So libFuzzer's checks between inputs are off in CI (run_fuzz.sh,
 * -detect_leaks=0); LSan still checks at exit, after fuzz_api_teardown
 * (atexit) joined every thread; and each input checks its own leaks
 * (values, registrations, fds). Recycling the long-lived pools every
 * RECYCLE_EVERY inputs also keeps stale entries young.
 */
#define RECYCLE_EVERY 256
static unsigned long inputs_run;

static void new_persistent_pool(void)
{
    struct ferry_pool_opts o = {
        .threads = 2,
        .max_threads = 4,
        .keepalive_ns = 20000000,
        .starvation_ns = 5000000,
        .name_prefix = "fz-p",
    };
    CHECK_RC(ferry_pool_new(&persistent_pool, &o), DOC_POOL_NEW, 0);
}

static void shut_default_pool(void)
{
    ferry_loop *l;
    CHECK_RC(ferry_loop_new(&l, NULL), DOC_LOOP_NEW, 0);
    CHECK_RC(ferry_loop_shutdown_default_executor(l, -1), DOC_SHUT_DEFAULT, 0);
    CHECK_RC(ferry_loop_free(l), DOC_LOOP_FREE, 0);
}

static void recycle_pools(void)
{
    CHECK_RC(ferry_pool_free(persistent_pool), DOC_POOL_FREE, 0);
    new_persistent_pool();
    shut_default_pool();
}

static void init_once(void)
{
    if (initialised)
        return;
    initialised = true;
    main_thread = pthread_self();
    trace = getenv("FUZZ_API_TRACE") != NULL;
    lsan_each = getenv("FUZZ_API_LSAN_EACH") != NULL;
    FZ_CHECK(fcntl(NOT_AN_FD, F_GETFD) < 0, "fd %d is open", NOT_AN_FD);
    regular_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    FZ_CHECK(regular_fd >= 0, "open /proc/self/exe");
    new_persistent_pool();
    FZ_CHECK(pthread_create(&H.thread, NULL, helper_main, NULL) == 0,
             "pthread_create");
    /* libFuzzer ends with exit(): join every thread first, so that LSan's
     * check at exit sees no thread it could skip (see RECYCLE_EVERY). */
    FZ_CHECK(atexit(fuzz_api_teardown) == 0, "atexit");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    C = calloc(1, sizeof *C);
    FZ_CHECK(C != NULL, "out of memory");
    for (int i = 0; i < NLOOPS; i++) {
        C->loops[i].idx = i;
        C->loops[i].sv[0] = C->loops[i].sv[1] = -1;
    }
    /* Per input: libFuzzer's symbolizer opens pipes between inputs. */
    base_fds = count_fds();
    C->spawn_budget = SPAWN_BUDGET;
    C->bytes_budget = BYTES_BUDGET;
    size_t n = size / OP_BYTES;
    if (n > MAX_OPS)
        n = MAX_OPS;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + i * OP_BYTES;
        step(p[0], p[1], p[2], p[3]);
    }
    finish();
    free(C);
    C = NULL;
    if (++inputs_run % RECYCLE_EVERY == 0)
        recycle_pools();
    if (lsan_each && __lsan_do_recoverable_leak_check != NULL)
        FZ_CHECK(__lsan_do_recoverable_leak_check() == 0, "leaked");
    return 0;
}

void fuzz_api_teardown(void)
{
    if (!initialised)
        return;
    pthread_mutex_lock(&H.mu);
    H.quit = true;
    pthread_cond_broadcast(&H.cv);
    pthread_mutex_unlock(&H.mu);
    pthread_join(H.thread, NULL);
    CHECK_RC(ferry_pool_free(persistent_pool), DOC_POOL_FREE, 0);
    persistent_pool = NULL;
    shut_default_pool(); /* if a program made one: drain and free it */
    close(regular_fd);
    if (trace)
        for (int i = 0; i < OP_COUNT; i++)
            fprintf(stderr, "fuzz_api: %-18s ran %lu times\n", op_names[i],
                    op_counts[i]);
    FZ_CHECK(atomic_load(&values_made) == atomic_load(&values_freed),
             "%ld values made, %ld freed", atomic_load(&values_made),
             atomic_load(&values_freed));
    initialised = false;
}
