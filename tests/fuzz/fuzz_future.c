/*
 * tests/fuzz/fuzz_future.c: the future slots of the model (each bound
 * future gets a tracking done callback; fz_bounded says whether a future
 * will complete without further help) and the instructions on futures:
 * future_new, set, cancel, wait, result, done callbacks, timeout, then,
 * wrap, unref and run_until_complete.
 */
#include <string.h>

#include "fuzz.h"

/* ---- futures ---- */

struct fslot *fz_add_fut(void *f, enum fkind kind, struct lslot *ls)
{
    if (fz_ctx->nfuts == MAX_FUTS) {
        /* Out of slots: a well-behaved owner cancels what it drops. */
        (void)ferry_future_cancel(f);
        ferry_future_unref(f);
        return NULL;
    }
    struct fslot *s = &fz_ctx->futs[fz_ctx->nfuts++];
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

struct lslot *fz_fut_loop(const struct fslot *s)
{
    if (s->ls == NULL || s->ls->gen != s->ls_gen || s->ls->loop == NULL)
        return NULL;
    return s->ls;
}

/* Every bound future gets a tracking done callback: its record must end
 * at exactly one (ran with the outcome, or disposed). */
void fz_track(struct fslot *s)
{
    ferry_loop *loop = ferry_future_loop(s->f);
    if (loop == NULL)
        return;
    struct rec *r = fz_new_rec(REC_DONE, fz_fut_loop(s));
    if (r == NULL)
        return;
    r->fut = s->f;
    r->dispose = true;
    struct lslot *ls = fz_fut_loop(s);
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int rc = (int)CHECK_RC(
        ferry_future_add_done_callback(s->f, fz_cb_done, r, fz_cb_dispose),
        DOC_ADD_DONE, expect);
    FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "tracking callback: %d", rc);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!fz_rec_final(r), "a done callback ran inside its registration");
    if (rc == 0)
        s->track = r;
}

/* Whether the future will complete without anything else from us, while
 * the loop `running` runs (NULL: all of them run). */
bool fz_bounded(const struct fslot *s, int depth, ferry_loop *running)
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
        if (fz_fut_loop(s) == NULL || fz_fut_loop(s)->closed)
            return false;
        if (running != NULL && running != own)
            return false;
        return s->src >= 0 &&
               fz_bounded(&fz_ctx->futs[s->src], depth + 1, running);
    case FK_WRAP:
    case FK_ALIAS:
        /* the source's completer resolves the wrapper */
        return s->src >= 0 &&
               fz_bounded(&fz_ctx->futs[s->src], depth + 1, running);
    default:
        return false;
    }
}

struct fslot *fz_pick_fut(uint8_t a)
{
    if (fz_ctx->nfuts == 0)
        return NULL;
    struct fslot *s = &fz_ctx->futs[a % fz_ctx->nfuts];
    return s->f != NULL ? s : NULL;
}

void fz_op_future_new(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    ferry_future *f = NULL;
    if (b & 1) { /* free-standing */
        CHECK_RC(ferry_future_new(NULL, &f), DOC_FUT_NEW, 0);
        fz_add_fut(f, FK_FREE, NULL);
        return;
    }
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 7}, ls, false);
        return;
    }
    int rc = (int)CHECK_RC(ferry_future_new(ls->loop, &f), DOC_FUT_NEW,
                           ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    struct fslot *s = fz_add_fut(f, FK_PLAIN, ls);
    if (s != NULL)
        fz_track(s);
}

void fz_op_future_set(uint8_t a, uint8_t b, uint8_t c)
{
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL || (s->kind != FK_PLAIN && s->kind != FK_FREE))
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        fz_helper_push(
            &(struct hcmd){.op = H_FUT_SET, .a = c, .fut = s->f, .fs = s},
            false);
        return;
    }
    bool was_done = ferry_future_done(s->f);
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c % 5) {
    case 0:
        v = fz_new_value();
        rc = (int)CHECK_RC(ferry_future_set_result(s->f, v, fz_free_value),
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
        v = fz_new_value();
        rc = (int)CHECK_RC(
            ferry_future_set_result_threadsafe(s->f, v, fz_free_value),
            DOC_SET_TS, was_done ? -EALREADY : ANY);
        break;
    }
    if (rc == 0) {
        atomic_store(&s->win_rc, want_rc);
        atomic_store(&s->win_val, v);
        atomic_fetch_add(&s->winners, 1);
    }
}

void fz_op_future_cancel(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL)
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        fz_helper_push(&(struct hcmd){.op = H_FUT_CANCEL, .fut = s->f}, false);
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

void fz_op_future_wait(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL)
        return;
    if (b & 1) {
        ferry_future_ref(s->f);
        fz_helper_push(
            &(struct hcmd){.op = H_FUT_WAIT, .a = b >> 1, .fut = s->f}, false);
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

void fz_op_future_result(uint8_t a, uint8_t b, uint8_t c)
{
    (void)b;
    (void)c;
    struct fslot *s = fz_pick_fut(a);
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

void fz_op_add_done(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL)
        return;
    struct lslot *ls = fz_fut_loop(s);
    if (ferry_future_loop(s->f) == NULL) {
        CHECK_RC(ferry_future_add_done_callback(s->f, fz_cb_done, NULL, NULL),
                 DOC_ADD_DONE, -EINVAL);
        return;
    }
    struct rec *r = fz_new_rec(REC_DONE, ls);
    if (r == NULL)
        return;
    r->fut = s->f;
    r->dispose = !(b & 1);
    r->action = (uint8_t)(b >> 1);
    r->arg = (uint8_t)(b >> 4);
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int rc = (int)CHECK_RC(
        ferry_future_add_done_callback(s->f, fz_cb_done, r,
                                       r->dispose ? fz_cb_dispose : NULL),
        DOC_ADD_DONE, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!fz_rec_final(r), "a done callback ran inside its registration");
}

void fz_op_remove_done(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL || ferry_future_loop(s->f) == NULL)
        return;
    /* Remove one of the registrations on this future (by its record). */
    struct rec *pick = NULL;
    int seen = 0;
    for (int i = 0; i < fz_ctx->nrecs; i++) {
        struct rec *r = &fz_ctx->recs[i];
        if (r->kind == REC_DONE && r->fut == s->f &&
            atomic_load(&r->reg) == REG_OK && seen++ == b % 4)
            pick = r;
    }
    if (pick == NULL || (s->ls != NULL && fz_fut_loop(s) == NULL))
        return; /* its loop is gone from our model: cannot predict */
    bool was_final = fz_rec_final(pick);
    int rc =
        (int)CHECK_RC(ferry_future_remove_done_callback(s->f, fz_cb_done, pick),
                      DOC_REMOVE_DONE, was_final ? 0 : ANY);
    FZ_CHECK(rc == 0 || rc == 1, "removed %d registrations of one", rc);
    if (rc == 1)
        FZ_CHECK(!pick->dispose || (atomic_load(&pick->disposes) == 1 &&
                                    atomic_load(&pick->runs) == 0),
                 "removed done callback not disposed");
    if (pick == s->track && rc == 1)
        s->track = NULL;
}

void fz_op_timeout(uint8_t a, uint8_t b, uint8_t c)
{
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL)
        return;
    struct lslot *ls = fz_fut_loop(s);
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

void fz_op_then(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s == NULL)
        return;
    ferry_future *next = NULL;
    if (ferry_future_loop(s->f) == NULL) {
        CHECK_RC(ferry_future_then(s->f, fz_then_fn, NULL, NULL, &next),
                 DOC_COMPOSE, -EINVAL);
        return;
    }
    struct lslot *ls = fz_fut_loop(s);
    struct rec *r = fz_new_rec(REC_FN, ls);
    if (r == NULL)
        return;
    r->action = b;
    if (!(b & 0x10) && r->action % 3 == 0)
        r->action = 2; /* no dtor: NULL rather than a leak */
    int64_t expect = ANY;
    if (ls != NULL)
        expect = ls->closed ? -ESHUTDOWN : 0;
    int src = (int)(s - fz_ctx->futs);
    int rc = (int)CHECK_RC(ferry_future_then(s->f, fz_then_fn, r,
                                             (b & 0x10) ? fz_free_value : NULL,
                                             &next),
                           DOC_COMPOSE, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    struct fslot *n = fz_add_fut(next, FK_THEN, ls);
    if (n == NULL)
        return;
    n->fn = r;
    n->src = src;
    fz_track(n);
}

void fz_op_wrap(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = fz_pick_loop(a);
    struct fslot *s = fz_pick_fut(b);
    if (ls == NULL || s == NULL)
        return;
    if (c & 1) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 13}, ls, false);
        return;
    }
    ferry_future *w = NULL;
    int src = (int)(s - fz_ctx->futs);
    int rc = (int)CHECK_RC(ferry_future_wrap(ls->loop, s->f, &w), DOC_COMPOSE,
                           ls->closed ? -ESHUTDOWN : 0);
    if (rc != 0)
        return;
    bool alias = ferry_future_loop(s->f) == ls->loop;
    FZ_CHECK(alias == (w == s->f), "wrap of a future of the same loop");
    struct fslot *n = fz_add_fut(w, alias ? FK_ALIAS : FK_WRAP, ls);
    if (n == NULL)
        return;
    n->src = src;
    fz_track(n);
}

/* Drop our reference. A future nobody else will complete is cancelled
 * first, as its owner would: otherwise a wrapper and its source keep each
 * other alive by design (bridge.h, ferry_future_wrap). */
static void drop_fut(struct fslot *s)
{
    if (!fz_bounded(s, 0, NULL))
        (void)ferry_future_cancel(s->f);
    ferry_future_unref(s->f);
    s->f = NULL;
}

void fz_op_future_unref(uint8_t a, uint8_t b, uint8_t c)
{
    (void)b;
    (void)c;
    struct fslot *s = fz_pick_fut(a);
    if (s != NULL && s->kind != FK_PROMISE)
        drop_fut(s);
}

void fz_op_run_until_complete(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    fz_helper_sync(); /* its completions are in */
    fz_collect_mail();
    struct fslot *s = fz_pick_fut(b);
    if (s == NULL || !fz_bounded(s, 0, ls->loop))
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
