/*
 * tests/fuzz/fuzz_pool.c: which pool an instruction names (the persistent
 * one, the per-input one, or the default) and what submitting to it must
 * return, and the instructions on pools: pool_new and pool_shutdown of the
 * per-input pool, submit and try_submit, task handles, fork-join groups,
 * and shutting the default pool down from a loop.
 */
#include "fuzz.h"

/* ---- pools ---- */

ferry_pool *fz_pool_by_sel(int sel)
{
    switch (sel) {
    case 0:
        return fz_persistent_pool;
    case 1:
        return fz_ctx->pool_in != NULL ? fz_ctx->pool_in : fz_persistent_pool;
    default:
        return NULL;
    }
}

int64_t fz_pool_expect(int sel)
{
    if (sel == 1 && fz_ctx->pool_in != NULL) {
        if (fz_ctx->pool_in_shut == 1)
            return -ESHUTDOWN;
        if (fz_ctx->pool_in_shut == 2)
            return ANY;
    }
    return 0;
}

void fz_op_pool_new(uint8_t a, uint8_t b, uint8_t c)
{
    if (fz_ctx->pool_in != NULL) {
        if (fz_ctx->pool_in_shut == 0)
            return;
        fz_helper_sync(); /* no command still names it */
        CHECK_RC(ferry_pool_free(fz_ctx->pool_in), DOC_POOL_FREE, 0);
        fz_ctx->pool_in = NULL;
    }
    struct ferry_pool_opts o = {
        .threads = 1 + (a & 1),
        .max_threads = 1 + (a & 1) + b % 3,
        .keepalive_ns = 1000000,
        .queue_limit = c % 4,
        .starvation_ns = (c & 4) ? 1000000 : 0,
        .name_prefix = "fz-in",
    };
    CHECK_RC(ferry_pool_new(&fz_ctx->pool_in, &o), DOC_POOL_NEW, 0);
    fz_ctx->pool_in_shut = 0;
}

void fz_op_pool_shutdown(uint8_t a, uint8_t b, uint8_t c)
{
    if (fz_ctx->pool_in == NULL)
        return;
    if (c & 1) {
        fz_helper_push(&(struct hcmd){.op = H_POOL_SHUTDOWN,
                                      .a = a,
                                      .b = b & 1,
                                      .pool = fz_ctx->pool_in},
                       false);
        if (fz_ctx->pool_in_shut == 0)
            fz_ctx->pool_in_shut = 2;
        return;
    }
    struct ferry_pool_report rep;
    if (a & 2) {
        CHECK_RC(ferry_pool_shutdown(fz_ctx->pool_in, 7, 0, NULL),
                 DOC_POOL_SHUTDOWN, -EINVAL);
        CHECK_RC(ferry_pool_shutdown(fz_ctx->pool_in, 0, -2, NULL),
                 DOC_POOL_SHUTDOWN, -EINVAL);
        return;
    }
    static const int64_t t[4] = {0, 1000000, -1, 0};
    int rc = (int)CHECK_RC(ferry_pool_shutdown(fz_ctx->pool_in, a & 1, t[b & 3],
                                               (b & 4) ? &rep : NULL),
                           DOC_POOL_SHUTDOWN, t[b & 3] == -1 ? 0 : ANY);
    FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "pool shutdown: %d", rc);
    if (rc == -ETIMEDOUT && (b & 4))
        FZ_CHECK(rep.listed <= rep.running &&
                     rep.listed <= FERRY_POOL_REPORT_MAX,
                 "shutdown report");
    fz_ctx->pool_in_shut = 1;
}

void fz_op_pool_submit(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = a % 3;
    ferry_pool *pool = fz_pool_by_sel(sel);
    unsigned flags = b & 1 ? FERRY_TASK_BLOCKING : 0;
    if (b & 2)
        flags |= 1u << 5; /* unknown flag */
    ferry_task *t = NULL;
    bool keep = (b & 4) && fz_ctx->ntasks < MAX_TASKS;
    int64_t expect = pool == NULL || (flags & ~FERRY_TASK_BLOCKING)
                         ? -EINVAL
                         : fz_pool_expect(sel);
    /* b & 16: the task carries a record and a dispose, and the oracle
     * checks that exactly one of fn and dispose ran (a cancel before the
     * start, a FERRY_CANCEL_PENDING shutdown, or neither). */
    struct rec *r = (b & 16) ? fz_new_rec(REC_ONCE, NULL) : NULL;
    ferry_task_fn *fn = fz_task_fn;
    ferry_free_fn *dispose = NULL;
    void *arg = (void *)(uintptr_t)c;
    if (r != NULL) {
        r->dispose = true;
        r->arg = c;
        fn = fz_task_rec_fn;
        dispose = fz_task_rec_dispose;
        arg = r;
    }
    int rc;
    /* try_submit on the per-input pool (queue_limit) may say -EAGAIN, also
     * once it is shut down: the limit is checked first (executor/pool.c). */
    if (b & 8)
        rc = (int)CHECK_RC(ferry_pool_try_submit(pool, fn, arg, dispose, flags,
                                                 keep ? &t : NULL),
                           DOC_TRY_SUBMIT,
                           sel == 1 && expect != -EINVAL ? ANY : expect);
    else
        rc = (int)CHECK_RC(
            ferry_pool_submit(pool, fn, arg, dispose, flags, keep ? &t : NULL),
            DOC_SUBMIT, expect);
    if (r != NULL)
        atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc == 0 && keep)
        fz_ctx->tasks[fz_ctx->ntasks++].t = t;
}

void fz_op_task(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    if (fz_ctx->ntasks == 0)
        return;
    struct tslot *ts = &fz_ctx->tasks[a % fz_ctx->ntasks];
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
        fz_helper_push(&(struct hcmd){.op = H_TASK, .a = b >> 2, .task = ts->t},
                       false);
        break;
    default:
        fz_helper_sync(); /* the helper may still use it */
        ferry_task_unref(ts->t);
        ts->t = NULL;
        break;
    }
}

void fz_op_group(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = a % 2;
    ferry_pool *pool = fz_pool_by_sel(sel);
    ferry_group g;
    CHECK_RC(ferry_group_init(&g, pool), DOC_GROUP_INIT, 0);
    int64_t expect = fz_pool_expect(sel);
    for (unsigned i = 0; i < 1 + b % 4u; i++)
        CHECK_RC(ferry_group_spawn(&g, fz_task_fn, (void *)(uintptr_t)(c & ~3u),
                                   (b & 0x10) ? FERRY_TASK_BLOCKING : 0),
                 DOC_GROUP_SPAWN, expect);
    CHECK_RC(ferry_group_wait(&g), DOC_GROUP_INIT, 0);
}

void fz_op_shutdown_default(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    if (c & 1) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 11}, ls, false);
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
    /* Every rc past the argument checks: the loop is marked first. */
    if (rc == 0 || rc == -ETIMEDOUT || rc == -EAGAIN || rc == -ENOMEM)
        ls->default_shut = true;
}
