/*
 * tests/fuzz/fuzz_callback.c: the callbacks the program registers and
 * their oracles (run on the owner thread, once, in FIFO order, never
 * early; disposed exactly once), run_threadsafe's and then's functions,
 * what a callback does when it runs (do_action: chain more calls, stop,
 * re-enter, cancel, post, close another loop; a watcher drains, writes,
 * removes or replaces itself), and the instructions that register them:
 * call_soon, call_later, post, handle cancel and unref.
 */
#include <sys/socket.h>

#include "fuzz.h"

/* ---- callbacks (owner thread) and disposes (any thread) ---- */

static void check_fifo(struct rec *r)
{
    struct lslot *ls = fz_loop_of(r);
    if (ls == NULL || r->space == SP_NONE)
        return;
    FZ_CHECK(r->seq > ls->last_seq[r->space],
             "loop %d: FIFO space %d ran %llu after %llu", ls->idx, r->space,
             (unsigned long long)r->seq,
             (unsigned long long)ls->last_seq[r->space]);
    ls->last_seq[r->space] = r->seq;
}

static void do_action(struct rec *r);

void fz_cb_once(void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(fz_on_main(), "a callback ran off its loop's thread");
    int runs = atomic_fetch_add(&r->runs, 1);
    FZ_CHECK(runs == 0 && atomic_load(&r->disposes) == 0,
             "one-shot callback: ran %d times before, disposed %d", runs,
             atomic_load(&r->disposes));
    FZ_CHECK(atomic_load(&r->reg) != REG_FAILED,
             "a callback whose registration failed ran");
    struct lslot *ls = fz_loop_of(r);
    if (ls != NULL)
        FZ_CHECK(ferry_loop_time(ls->loop) >= r->due, "a timer ran early");
    check_fifo(r);
    do_action(r);
}

void fz_cb_dispose(void *arg)
{
    struct rec *r = arg;
    int d = atomic_fetch_add(&r->disposes, 1);
    FZ_CHECK(d == 0, "disposed twice");
    FZ_CHECK(r->kind == REC_WATCH || atomic_load(&r->runs) == 0,
             "disposed after it ran");
}

void fz_cb_done(ferry_future *f, void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(fz_on_main(), "a done callback ran off its loop's thread");
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

void fz_cb_watch(void *arg)
{
    struct rec *r = arg;
    FZ_CHECK(fz_on_main(), "a watcher ran off its loop's thread");
    FZ_CHECK(atomic_load(&r->disposes) == 0, "a removed watcher fired");
    atomic_fetch_add(&r->runs, 1);
    do_action(r);
}

/* Callbacks that must never run: given to calls that must fail. */
void fz_never_cb(void *arg)
{
    (void)arg;
    fz_fail(__FILE__, __LINE__, "a callback whose registration failed ran");
}

/* run_threadsafe's function: on the loop's thread, at most once. */
/* The outcome r->action picks for a function that makes a result: a new
 * value, the error err, or a NULL value; recorded for the oracle. */
static int rec_outcome(struct rec *r, void **result, int err)
{
    switch (r->action % 3) {
    case 0:
        r->out_val = *result = fz_new_value();
        r->out_rc = 0;
        return 0;
    case 1:
        r->out_rc = err;
        return err;
    default:
        r->out_val = *result = NULL;
        r->out_rc = 0;
        return 0;
    }
}

int fz_ts_fn(void *arg, void **result)
{
    struct rec *r = arg;
    FZ_CHECK(fz_on_main(), "run_threadsafe ran off the loop's thread");
    FZ_CHECK(atomic_fetch_add(&r->runs, 1) == 0, "run_threadsafe ran twice");
    return rec_outcome(r, result, -EIO);
}

int fz_then_fn(ferry_future *prev, void *arg, void **result)
{
    struct rec *r = arg;
    FZ_CHECK(fz_on_main(), "then ran off the loop's thread");
    FZ_CHECK(ferry_future_done(prev), "then ran before its source was done");
    FZ_CHECK(atomic_fetch_add(&r->runs, 1) == 0, "then ran twice");
    return rec_outcome(r, result, -E2BIG);
}

/* ---- registrations ---- */

static int add_handle(ferry_handle *h, struct rec *r)
{
    if (fz_ctx->nhandles == MAX_HANDLES) {
        ferry_handle_unref(h);
        return -1;
    }
    fz_ctx->handles[fz_ctx->nhandles++] = (struct hslot){.h = h, .r = r};
    return 0;
}

bool fz_rec_final(const struct rec *r)
{
    return atomic_load(&r->runs) + atomic_load(&r->disposes) > 0;
}

/* call_soon (delay < 0) or call_later on ls from the owner thread. */
static void do_call(struct lslot *ls, int64_t delay, uint8_t action,
                    uint8_t arg, bool keep, bool dispose, bool at)
{
    struct rec *r = fz_new_rec(REC_ONCE, ls);
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
        rc = (int)CHECK_RC(ferry_call_soon(ls->loop, fz_cb_once, r,
                                           dispose ? fz_cb_dispose : NULL,
                                           keep ? &h : NULL),
                           DOC_CALL, expect);
    } else if (at) {
        r->due = ferry_loop_time(ls->loop) + (uint64_t)delay;
        rc = (int)CHECK_RC(ferry_call_at(ls->loop, r->due, fz_cb_once, r,
                                         dispose ? fz_cb_dispose : NULL,
                                         keep ? &h : NULL),
                           DOC_CALL, expect);
    } else {
        r->due = ferry_loop_time(ls->loop) + (uint64_t)delay;
        rc = (int)CHECK_RC(ferry_call_later(ls->loop, delay, fz_cb_once, r,
                                            dispose ? fz_cb_dispose : NULL,
                                            keep ? &h : NULL),
                           DOC_CALL, expect);
    }
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    FZ_CHECK(!fz_rec_final(r),
             "a callback ran or was disposed inside its call");
    if (rc == 0 && keep)
        add_handle(h, r);
}

/* call_soon_threadsafe from this thread (space SP_POST_MAIN). */
void fz_do_post_main(struct lslot *ls, uint8_t action, uint8_t arg,
                     bool dispose)
{
    struct rec *r = fz_new_rec(REC_ONCE, ls);
    if (r == NULL)
        return;
    r->action = action;
    r->arg = arg;
    r->dispose = dispose;
    r->space = SP_POST_MAIN;
    r->seq = ++ls->next_seq[SP_POST_MAIN];
    int rc = (int)CHECK_RC(
        ferry_call_soon_threadsafe(ls->loop, fz_cb_once, r,
                                   dispose ? fz_cb_dispose : NULL),
        DOC_POST, ls->closed ? -ESHUTDOWN : 0);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
}

static const int64_t delays[8] = {0,          1000, 50000, 1000000,
                                  1000000000, 0,    20000, -1};

/* A watcher's callback replaces itself with a fresh watcher (action 3). */
static void watch_replace(struct rec *r, struct lslot *ls, int fd)
{
    if (fz_ctx->spawn_budget <= 0)
        return;
    fz_ctx->spawn_budget--;
    struct rec *n = fz_new_rec(REC_WATCH, ls);
    if (n == NULL)
        return;
    n->fd_idx = r->fd_idx;
    n->writer = r->writer;
    n->dispose = true;
    n->action = 0; /* the replacement drains (or writes) */
    CHECK_RC(
        r->writer
            ? ferry_add_writer(ls->loop, fd, fz_cb_watch, n, fz_cb_dispose)
            : ferry_add_reader(ls->loop, fd, fz_cb_watch, n, fz_cb_dispose),
        DOC_ADD_WATCH, 0);
    atomic_store(&n->reg, REG_OK);
    FZ_CHECK(!r->dispose || atomic_load(&r->disposes) == 1,
             "watcher replaced in its callback: not disposed");
    ls->watch[r->fd_idx][r->writer] = n;
}

/* What a watcher's callback does: drain or write, nothing (it fires
 * again), remove itself, or replace itself. */
static void watch_action(struct rec *r, struct lslot *ls)
{
    int fd = ls->sv[r->fd_idx];
    char buf[256];
    switch (r->action & 3) {
    case 0:
        if (r->writer) {
            if (fz_ctx->bytes_budget > 0 &&
                send(fd, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                fz_ctx->bytes_budget--;
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
    default:
        watch_replace(r, ls, fd);
        break;
    }
}

/* Re-entry: this thread runs a loop, so no loop may start here, and the
 * running one can be neither closed nor freed. */
static void check_reentry(struct lslot *ls)
{
    for (int i = 0; i < NLOOPS; i++) {
        struct lslot *o = &fz_ctx->loops[i];
        if (o->loop != NULL)
            CHECK_RC(ferry_loop_run_once(o->loop, 0), DOC_RUN,
                     o->closed ? -ESHUTDOWN : -EBUSY);
    }
    CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, -EBUSY);
    CHECK_RC(ferry_loop_free(ls->loop), DOC_LOOP_FREE, -EBUSY);
    CHECK_RC(ferry_loop_run_forever(ls->loop), DOC_RUN, -EBUSY);
    FZ_CHECK(ferry_loop_running() == ls->loop, "ferry_loop_running()");
    FZ_CHECK(ferry_loop_is_running(ls->loop), "ferry_loop_is_running");
}

/* What a callback does after counting itself; draws on the budget. */
static void do_action(struct rec *r)
{
    struct lslot *ls = fz_loop_of(r);
    if (ls == NULL || fz_ctx == NULL)
        return;
    if (r->kind == REC_WATCH) {
        watch_action(r, ls);
        return;
    }
    switch (r->action & 7) {
    case 1:
    case 2: {
        static const int64_t soon[4] = {0, 1000, 20000, 50000};
        if (fz_ctx->spawn_budget-- > 0)
            do_call(ls, (r->action & 7) == 1 ? -1 : soon[r->arg & 3],
                    (uint8_t)(r->arg % 3), (uint8_t)(r->arg >> 2), false, true,
                    false);
        break;
    }
    case 3:
        CHECK_RC(ferry_loop_stop(ls->loop), DOC_STOP, 0);
        break;
    case 4:
        check_reentry(ls);
        break;
    case 5:
        if (fz_ctx->nhandles > 0) {
            struct hslot *hs = &fz_ctx->handles[r->arg % fz_ctx->nhandles];
            if (hs->h != NULL) {
                int64_t expect = fz_rec_final(hs->r) ? -EALREADY : 0;
                CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, expect);
                FZ_CHECK(fz_rec_final(hs->r) || !hs->r->dispose,
                         "cancelled handle not disposed at once");
            }
        }
        break;
    case 6:
        if (fz_ctx->spawn_budget-- > 0)
            fz_do_post_main(ls, (uint8_t)(r->arg % 3), 0, true);
        break;
    case 7: {
        /* Close another loop from inside this one's callback. */
        struct lslot *o = &fz_ctx->loops[(ls->idx + 1 + (r->arg & 1)) % NLOOPS];
        if (o != ls && o->loop != NULL && !o->closed)
            fz_close_checked(o);
        break;
    }
    default:
        break;
    }
}

/* ---- the instructions: calls, posts, handles ---- */

void fz_op_call_soon(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if (b & 0x80)
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 0}, ls, false);
    else if (b & 0x40)
        CHECK_RC(ferry_call_soon(ls->loop, NULL, NULL, NULL, NULL), DOC_CALL,
                 -EINVAL);
    else
        do_call(ls, -1, b & 7, c, b & 8, !(b & 0x10) || (b & 8), false);
}

void fz_op_call_later(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if ((b & 7) == 7) {
        CHECK_RC(ferry_call_later(ls->loop, -1, fz_never_cb, NULL, NULL, NULL),
                 DOC_CALL, -EINVAL);
        return;
    }
    if (b & 0x80) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 1}, ls, false);
        return;
    }
    do_call(ls, delays[b & 7], (uint8_t)(c & 7), (uint8_t)(c >> 3), b & 8, true,
            b & 0x40);
}

void fz_op_post(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if (b & 1) {
        struct rec *r = fz_new_rec(REC_ONCE, ls);
        if (r == NULL)
            return;
        r->action = (uint8_t)((b >> 1) & 7);
        r->arg = c;
        r->dispose = !(b & 0x10);
        bool null_cb = (b & 0x60) == 0x60;
        if (!null_cb) {
            r->space = SP_POST_HELPER;
            r->seq = ++ls->next_seq[SP_POST_HELPER];
        }
        fz_helper_loop_cmd((struct hcmd){.op = H_POST, .a = null_cb, .rec = r},
                           ls, false);
    } else {
        fz_do_post_main(ls, (uint8_t)((b >> 1) & 7), c, !(b & 0x10));
    }
}

void fz_op_handle_cancel(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    if (fz_ctx->nhandles > 0) {
        struct hslot *hs = &fz_ctx->handles[a % fz_ctx->nhandles];
        if (hs->h == NULL)
            return;
        int64_t expect = fz_rec_final(hs->r) ? -EALREADY : 0;
        if (b & 1) {
            /* Synchronous: handles are owner-thread objects, the
             * helper only reads one while we wait. */
            fz_helper_push(&(struct hcmd){.op = H_HANDLE_CANCEL,
                                          .h = hs->h,
                                          .expect = expect ? expect : -EPERM},
                           true);
            return;
        }
        CHECK_RC(ferry_handle_cancel(hs->h), DOC_HCANCEL, expect);
        FZ_CHECK(fz_rec_final(hs->r), "cancelled handle not disposed");
        FZ_CHECK(ferry_handle_cancelled(hs->h) ==
                     (atomic_load(&hs->r->disposes) == 1),
                 "ferry_handle_cancelled disagrees with dispose");
    }
}

void fz_op_handle_unref(uint8_t a, uint8_t b, uint8_t c)
{
    (void)b;
    (void)c;
    if (fz_ctx->nhandles > 0) {
        struct hslot *hs = &fz_ctx->handles[a % fz_ctx->nhandles];
        if (hs->h != NULL) {
            ferry_handle_unref(hs->h);
            hs->h = NULL;
        }
    }
}
