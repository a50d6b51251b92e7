/*
 * tests/fuzz/fuzz_oracle.c: the end of a program and its oracles
 * (fz_finish): run the loops until the bounded futures are done, cancel
 * the rest and check that every future completed exactly once with an
 * outcome its producer could give, close and free the loops, check that
 * tracking callbacks saw the outcome each future keeps, drop every
 * reference, wait for the pools' stragglers, and check that nothing
 * leaked (values, registrations, fds) and every record ended as its kind
 * must.
 */
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "fuzz.h"

/* ---- the end of a program: drain, close, drop, wait, check ---- */

static void run_all_once(int64_t timeout)
{
    for (int i = 0; i < NLOOPS; i++) {
        struct lslot *ls = &fz_ctx->loops[i];
        if (ls->loop != NULL && !ls->closed)
            CHECK_RC(ferry_loop_run_once(ls->loop, timeout), DOC_RUN, 0);
    }
}

static bool all_bounded_done(void)
{
    for (int i = 0; i < fz_ctx->nfuts; i++) {
        struct fslot *s = &fz_ctx->futs[i];
        if (s->f == NULL || ferry_future_done(s->f))
            continue;
        if (fz_bounded(s, 0, NULL))
            return false;
    }
    return true;
}

/* check_outcome for a job: the outcome is what its work returned. */
static void check_job_outcome(const struct fslot *s, int rc, void *val)
{
    switch (s->work & 3) {
    case W_ERROR:
        FZ_CHECK(rc == -EIO, "job: %d, its work returned -EIO", rc);
        break;
    case W_NULL:
        FZ_CHECK(rc == 0 && val == NULL, "job: %d %p, expected NULL", rc, val);
        break;
    default:
        FZ_CHECK(rc == 0 && val != NULL, "job: %d %p, expected a value", rc,
                 val);
        break;
    }
}

/* check_outcome for the futures the program completes (promises, plain
 * futures): the outcome is the single winner's. */
static void check_winner_outcome(struct fslot *s, int rc, void *val, bool stop)
{
    switch ((enum fkind)s->kind) {
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
    default:
        break;
    }
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
        check_job_outcome(s, rc, val);
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
        struct fslot *src = s->src >= 0 ? &fz_ctx->futs[s->src] : NULL;
        if (src == NULL || !src->final_done || stop)
            break;
        FZ_CHECK(rc == src->final_rc && (rc != 0 || val == src->final_val),
                 "wrapper: %d %p, its source %d %p", rc, val, src->final_rc,
                 src->final_val);
        break;
    }
    case FK_PROMISE:
    case FK_PLAIN:
    case FK_FREE:
        check_winner_outcome(s, rc, val, stop);
        break;
    }
}

static void wait_done(struct fslot *s, uint64_t deadline)
{
    while (!ferry_future_done(s->f)) {
        FZ_CHECK(fz_now_ns() < deadline, "a future never completed (kind %d)",
                 s->kind);
        sched_yield();
    }
}

static bool quiet(const char **why)
{
    for (int i = 0; i < fz_ctx->nrecs; i++) {
        struct rec *r = &fz_ctx->recs[i];
        int reg = atomic_load(&r->reg);
        if (reg == REG_OK && r->dispose && r->kind != REC_FN &&
            atomic_load(&r->disposes) +
                    (r->kind == REC_WATCH ? 0 : atomic_load(&r->runs)) ==
                0) {
            *why = "a registration neither ran nor was disposed";
            if (fz_trace)
                fprintf(stderr,
                        "fuzz_api: record %d kind %d loop %d gen %u fut %p\n",
                        i, r->kind, r->ls ? r->ls->idx : -1, r->ls_gen, r->fut);
            return false;
        }
    }
    if (atomic_load(&fz_values_made) != atomic_load(&fz_values_freed)) {
        *why = "result values leaked";
        return false;
    }
    if (fz_count_fds() != fz_base_fds) {
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

/* 1. Let bounded work complete naturally, running the loops. */
static void settle_bounded(uint64_t deadline)
{
    while (!all_bounded_done()) {
        FZ_CHECK(fz_now_ns() < deadline, "bounded futures never completed");
        run_all_once(100000);
        fz_collect_mail();
    }
    run_all_once(0);
}

/* 2. Cancel what is left (a no-op on done futures), as an owner who stops
 * waiting would; then every future must complete, with an outcome its
 * producer could give. */
static void settle_all(uint64_t deadline)
{
    for (int i = 0; i < fz_ctx->nfuts; i++)
        if (fz_ctx->futs[i].f != NULL)
            (void)ferry_future_cancel(fz_ctx->futs[i].f);
    run_all_once(0);
    for (int i = 0; i < fz_ctx->nfuts; i++) {
        struct fslot *s = &fz_ctx->futs[i];
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
    for (int i = 0; i < fz_ctx->nfuts; i++)
        if (fz_ctx->futs[i].f != NULL)
            check_outcome(&fz_ctx->futs[i]);
}

/* 4. Tracking callbacks saw the outcome the future keeps. */
static void check_tracking(void)
{
    for (int i = 0; i < fz_ctx->nfuts; i++) {
        struct fslot *s = &fz_ctx->futs[i];
        struct rec *r = s->track;
        if (s->f == NULL || r == NULL || atomic_load(&r->runs) == 0)
            continue;
        FZ_CHECK(r->out_rc == s->final_rc && r->out_val == s->final_val,
                 "a future changed its outcome after its callbacks ran "
                 "(%d %p, then %d %p)",
                 r->out_rc, r->out_val, s->final_rc, s->final_val);
    }
}

/* 5. Drop every reference we hold. */
static void drop_all(uint64_t deadline)
{
    for (int i = 0; i < fz_ctx->nhandles; i++) {
        struct hslot *hs = &fz_ctx->handles[i];
        if (hs->h == NULL)
            continue;
        /* Stale handles: the loop is gone, cancel must not touch it. */
        CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, -EALREADY);
        ferry_handle_unref(hs->h);
    }
    for (int i = 0; i < fz_ctx->nproms; i++)
        if (fz_ctx->proms[i].p != NULL)
            ferry_promise_unref(fz_ctx->proms[i].p);
    for (int i = 0; i < fz_ctx->nfuts; i++) {
        if (fz_ctx->futs[i].f == NULL)
            continue;
        if (fz_trace)
            fprintf(stderr, "fuzz_api: future %d %p kind %d outcome %d\n", i,
                    fz_ctx->futs[i].f, fz_ctx->futs[i].kind,
                    fz_ctx->futs[i].final_rc);
        ferry_future_unref(fz_ctx->futs[i].f);
    }
    if (fz_ctx->pool_in != NULL)
        CHECK_RC(ferry_pool_free(fz_ctx->pool_in), DOC_POOL_FREE, 0);
    for (int i = 0; i < fz_ctx->ntasks; i++) {
        ferry_task *t = fz_ctx->tasks[i].t;
        if (t == NULL)
            continue;
        /* Every task finishes: ran (0) or dropped (-ECANCELED). */
        while (ferry_task_status(t) == -EAGAIN) {
            FZ_CHECK(fz_now_ns() < deadline, "a task never finished");
            sched_yield();
        }
        CHECK_RC(ferry_task_status(t), DOC_TASK_STATUS, ANY);
        ferry_task_unref(t);
    }
}

/* 6. Every record ended as its kind must: a one-shot or done callback ran
 * or was disposed exactly once, a watcher was disposed once, a function
 * ran at most once; a failed registration did nothing. */
static void check_records(void)
{
    for (int i = 0; i < fz_ctx->nrecs; i++) {
        struct rec *r = &fz_ctx->recs[i];
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

/* After the program: drain, cancel, close, drop, wait, check. */
void fz_finish(void)
{
    uint64_t deadline = fz_now_ns() + DEADLINE_NS;
    fz_helper_sync();
    fz_collect_mail();

    settle_bounded(deadline); /* 1 */
    settle_all(deadline);     /* 2 */

    /* 3. Close and free the loops: everything left is disposed. */
    run_all_once(0);
    for (int i = 0; i < NLOOPS; i++)
        if (fz_ctx->loops[i].loop != NULL)
            fz_free_slot(&fz_ctx->loops[i]);

    check_tracking();   /* 4 */
    drop_all(deadline); /* 5 */

    /* 6. The pools' stragglers finish; then nothing may be left. */
    const char *why = NULL;
    while (!quiet(&why)) {
        if (fz_now_ns() >= deadline && fz_count_fds() != fz_base_fds)
            dump_fds();
        FZ_CHECK(fz_now_ns() < deadline, "not quiet after the program: %s",
                 why);
        fz_sleep_for(20000);
    }
    check_records();
}
