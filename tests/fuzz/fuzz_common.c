/*
 * tests/fuzz/fuzz_common.c: the fuzzer's shared ground: failing (fz_fail)
 * and checking return codes against the documented lists (fz_check_rc),
 * clocks, the result values whose every copy must be freed exactly once,
 * the work the pools run (encoded in its argument), the state shared by
 * every translation unit (the running input's model, the main thread, the
 * persistent pool), records, and the fd count used by the leak oracle.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "tests/fds.h"

/* ---- failures ---- */

void fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_api: %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

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

/* rc must be documented for call, and equal expect unless expect is ANY. */
int64_t fz_check_rc(const char *call, const char *file, int line, int64_t rc,
                    unsigned doc, int64_t expect)
{
    if ((code_class(rc) & doc) == 0)
        fz_fail(file, line, "%s returned %lld (%s): not documented", call,
                (long long)rc, rc < 0 ? ferry_strerror((int)rc) : "");
    if (expect != ANY && rc != expect)
        fz_fail(file, line, "%s returned %lld (%s), expected %lld (%s)", call,
                (long long)rc, rc < 0 ? ferry_strerror((int)rc) : "",
                (long long)expect,
                expect < 0 ? ferry_strerror((int)expect) : "");
    return rc;
}

/* ---- time ---- */

uint64_t fz_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fz_sleep_for(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void spin_for(uint64_t ns, bool until_cancelled)
{
    uint64_t end = fz_now_ns() + ns;
    while (fz_now_ns() < end)
        if (until_cancelled && ferry_task_cancelled())
            return;
}

/* ---- result values: every one is freed exactly once ---- */

#define VAL_MAGIC 0x7e57ab1eu

struct val {
    uint32_t magic;
};

_Atomic long fz_values_made;
_Atomic long fz_values_freed;

void *fz_new_value(void)
{
    struct val *v = malloc(sizeof *v);
    FZ_CHECK(v != NULL, "out of memory");
    v->magic = VAL_MAGIC;
    atomic_fetch_add(&fz_values_made, 1);
    return v;
}

/* A destructor may be handed NULL (a NULL result): like free(3). */
void fz_free_value(void *p)
{
    struct val *v = p;
    if (v == NULL)
        return;
    FZ_CHECK(v->magic == VAL_MAGIC, "free_value(%p): not a value", p);
    v->magic = 0;
    free(v);
    atomic_fetch_add(&fz_values_freed, 1);
}

/* ---- work run by the pools (the encoding is in fuzz.h) ---- */

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
        fz_sleep_for(nap[d]);
}

int fz_work_fn(void *arg, void **result)
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
        *result = fz_new_value();
        return 0;
    }
}

void fz_task_fn(void *arg)
{
    burn((unsigned)(uintptr_t)arg);
}

void fz_task_rec_fn(void *arg)
{
    struct rec *r = arg;
    burn(r->arg);
    atomic_fetch_add(&r->runs, 1);
}

void fz_task_rec_dispose(void *arg)
{
    atomic_fetch_add(&((struct rec *)arg)->disposes, 1);
}

/* ---- shared state ---- */

struct ctx *fz_ctx;
pthread_t fz_main_thread;
ferry_pool *fz_persistent_pool;
int fz_regular_fd = -1;
int fz_base_fds; /* open fds when the input started */
bool fz_trace;

bool fz_on_main(void)
{
    return pthread_equal(pthread_self(), fz_main_thread);
}

struct rec *fz_new_rec(enum rec_kind kind, struct lslot *ls)
{
    if (fz_ctx->nrecs == MAX_RECS)
        return NULL;
    struct rec *r = &fz_ctx->recs[fz_ctx->nrecs++];
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

struct lslot *fz_loop_of(const struct rec *r)
{
    if (r->ls == NULL || r->ls->gen != r->ls_gen || r->ls->loop == NULL)
        return NULL;
    return r->ls;
}

/* What a program can leak: see tests/fds.h. */
int fz_count_fds(void)
{
    int n = count_leakable_fds();
    FZ_CHECK(n >= 0, "opendir /proc/self/fd");
    return n;
}
