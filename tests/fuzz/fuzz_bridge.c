/*
 * tests/fuzz/fuzz_bridge.c: the instructions that cross between loops and
 * pools: run_in_executor, pool_submit_future and run_threadsafe (from the
 * loop's thread or the helper), and promises (new, complete from either
 * thread, unref), recording what each future's producer may give.
 */
#include "fuzz.h"

void fz_op_run_in_executor(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    int sel = b % 4;
    if (b & 0x80) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 9}, ls, false);
        return;
    }
    ferry_future *f = NULL;
    if (sel == 3) { /* NULL fn */
        CHECK_RC(ferry_run_in_executor(ls->loop, fz_persistent_pool, NULL, NULL,
                                       NULL, &f),
                 DOC_RIE, -EINVAL);
        return;
    }
    int64_t expect = fz_pool_expect(sel);
    if (sel == 2 && ls->default_shut)
        expect = -ESHUTDOWN;
    if (ls->closed)
        expect = -ESHUTDOWN;
    /* Without a dtor a value result would leak (the caller's bug): such
     * work returns NULL instead. */
    if (!(b & 4) && ((c & 3) == W_VALUE || (c & 3) == W_SPIN_CANCEL))
        c = (uint8_t)((c & ~3u) | W_NULL);
    int rc =
        (int)CHECK_RC(ferry_run_in_executor(ls->loop, fz_pool_by_sel(sel),
                                            fz_work_fn, (void *)(uintptr_t)c,
                                            (b & 4) ? fz_free_value : NULL, &f),
                      DOC_RIE, expect);
    if (rc != 0)
        return;
    struct fslot *s = fz_add_fut(f, FK_JOB, ls);
    if (s == NULL)
        return;
    s->work = c;
    s->pool_sel = sel;
    fz_track(s);
}

void fz_op_submit_future(uint8_t a, uint8_t b, uint8_t c)
{
    int sel = b % 3;
    if (a & 1) {
        ferry_pool *pool = fz_pool_by_sel(sel);
        if (pool == NULL)
            pool = fz_persistent_pool;
        fz_helper_push(&(struct hcmd){.op = H_SUBMIT_FUT,
                                      .a = a >> 1,
                                      .b = (uint8_t)sel,
                                      .c = c,
                                      .pool = pool},
                       false);
        return;
    }
    ferry_future *f = NULL;
    if (sel == 2) {
        CHECK_RC(ferry_pool_submit_future(NULL, fz_work_fn, NULL, NULL, &f),
                 DOC_SUBMIT_FUT, -EINVAL);
        return;
    }
    int rc = (int)CHECK_RC(
        ferry_pool_submit_future(fz_pool_by_sel(sel), fz_work_fn,
                                 (void *)(uintptr_t)c, fz_free_value, &f),
        DOC_SUBMIT_FUT, fz_pool_expect(sel));
    if (rc != 0)
        return;
    struct fslot *s = fz_add_fut(f, FK_JOB_FREE, NULL);
    if (s == NULL)
        return;
    s->work = c;
    s->pool_sel = sel;
}

void fz_op_run_threadsafe(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    struct rec *r = fz_new_rec(REC_FN, ls);
    if (r == NULL)
        return;
    r->action = c;
    bool dtor = b & 2;
    if (!dtor && c % 3 == 0)
        r->action = 2; /* no dtor: NULL rather than a leak */
    if (b & 1) {
        /* a: bit 0 dtor, 1 wait, 2 longer wait, 3 cancel */
        fz_helper_loop_cmd((struct hcmd){.op = H_RUN_TS,
                                         .a = (uint8_t)((b >> 1) & 0xf),
                                         .rec = r},
                           ls, false);
        return;
    }
    /* From the loop's own thread: allowed; waiting here would deadlock. */
    ferry_future *f = NULL;
    int rc =
        (int)CHECK_RC(ferry_run_threadsafe(ls->loop, fz_ts_fn, r,
                                           dtor ? fz_free_value : NULL, &f),
                      DOC_RUN_TS, ls->closed ? -ESHUTDOWN : 0);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    CHECK_RC(ferry_future_wait(f, 0), DOC_WAIT,
             ferry_future_done(f) ? 0 : -EDEADLK);
    struct fslot *s = fz_add_fut(f, FK_TS, ls);
    if (s == NULL)
        return;
    s->fn = r;
    fz_track(s);
}

void fz_op_promise_new(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 8}, ls, false);
        return;
    }
    if (fz_ctx->nproms == MAX_PROMS)
        return;
    ferry_promise *p = NULL;
    ferry_future *f = NULL;
    /* Always with a dispose: values that lose must be freed. */
    int rc = (int)CHECK_RC(ferry_promise_new(ls->loop, fz_free_value, &p, &f),
                           DOC_PROM_NEW, ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    struct fslot *s = fz_add_fut(f, FK_PROMISE, ls);
    if (s == NULL) {
        ferry_promise_unref(p);
        return;
    }
    struct pslot *ps = &fz_ctx->proms[fz_ctx->nproms++];
    ps->p = p;
    ps->fut = (int)(s - fz_ctx->futs);
    atomic_init(&ps->winners, 0);
    atomic_init(&ps->win_rc, 0);
    atomic_init(&ps->win_val, NULL);
    s->prom = ps;
    fz_track(s);
}

void fz_op_promise_complete(uint8_t a, uint8_t b, uint8_t c)
{
    if (fz_ctx->nproms == 0)
        return;
    struct pslot *ps = &fz_ctx->proms[a % fz_ctx->nproms];
    if (ps->p == NULL)
        return;
    if (b & 1) {
        ferry_promise_ref(ps->p);
        fz_helper_push(
            &(struct hcmd){.op = H_PROM, .a = c, .prom = ps->p, .ps = ps},
            false);
        return;
    }
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c % 7) {
    case 0:
        v = fz_new_value();
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
        v = fz_new_value();
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

void fz_op_promise_unref(uint8_t a, uint8_t b, uint8_t c)
{
    (void)b;
    (void)c;
    if (fz_ctx->nproms > 0) {
        struct pslot *ps = &fz_ctx->proms[a % fz_ctx->nproms];
        if (ps->p != NULL) {
            ferry_promise_unref(ps->p); /* helper commands hold theirs */
            ps->p = NULL;
        }
    }
}
