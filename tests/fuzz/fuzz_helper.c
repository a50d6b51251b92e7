/*
 * tests/fuzz/fuzz_helper.c: the persistent helper thread, which makes the
 * program's cross-thread calls: its command queue (fz_helper_push,
 * fz_helper_sync, fz_helper_loop_cmd), the commands it runs (posts,
 * run_threadsafe, pool_submit_future, promise and future completions,
 * cancels, timed waits, pool shutdowns, "Thread: any" queries, and
 * owner-only calls that must fail with -EPERM from the wrong thread), and
 * the mailbox through which the futures it makes reach the interpreter
 * (fz_collect_mail).
 */
#include <string.h>

#include "fuzz.h"

struct helper fz_helper = {.mu = PTHREAD_MUTEX_INITIALIZER,
                           .cv = PTHREAD_COND_INITIALIZER};

static void mail_put(const struct mail *m)
{
    pthread_mutex_lock(&fz_helper.mu);
    FZ_CHECK(fz_helper.nmail < MAIL_CAP, "mailbox full");
    fz_helper.mail[fz_helper.nmail++] = *m;
    pthread_mutex_unlock(&fz_helper.mu);
}

void fz_helper_push(const struct hcmd *c, bool wait)
{
    pthread_mutex_lock(&fz_helper.mu);
    while (fz_helper.len == HQ_CAP)
        pthread_cond_wait(&fz_helper.cv, &fz_helper.mu);
    fz_helper.q[(fz_helper.head + fz_helper.len) % HQ_CAP] = *c;
    fz_helper.len++;
    uint64_t mine = ++fz_helper.enq;
    pthread_cond_broadcast(&fz_helper.cv);
    while (wait && fz_helper.done < mine)
        pthread_cond_wait(&fz_helper.cv, &fz_helper.mu);
    pthread_mutex_unlock(&fz_helper.mu);
}

void fz_helper_sync(void)
{
    pthread_mutex_lock(&fz_helper.mu);
    while (fz_helper.done < fz_helper.enq)
        pthread_cond_wait(&fz_helper.cv, &fz_helper.mu);
    pthread_mutex_unlock(&fz_helper.mu);
}

/* The helper_sync instruction: wait for the helper's queue to drain. */
void fz_op_helper_sync(uint8_t a, uint8_t b, uint8_t c)
{
    (void)a;
    (void)b;
    (void)c;
    fz_helper_sync();
}

/* Owner-only calls made from the helper: each must refuse with -EPERM
 * (S1) and schedule nothing. These are cases 7-13 of wrong_thread_call. */
static void wrong_thread_call_more(ferry_loop *loop, unsigned which)
{
    ferry_future *f = NULL;
    ferry_promise *p = NULL;
    switch (which) {
    case 7:
        CHECK_RC(ferry_future_new(loop, &f), DOC_FUT_NEW, -EPERM);
        break;
    case 8:
        CHECK_RC(ferry_promise_new(loop, NULL, &p, &f), DOC_PROM_NEW, -EPERM);
        break;
    case 9:
        CHECK_RC(ferry_run_in_executor(loop, fz_persistent_pool, fz_work_fn,
                                       NULL, NULL, &f),
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

/* Owner-only calls made from the helper: each must refuse with -EPERM
 * (S1) and schedule nothing. */
static void wrong_thread_call(ferry_loop *loop, unsigned which, int sv)
{
    ferry_handle *h = NULL;
    switch (which % 14) {
    case 0:
        CHECK_RC(ferry_call_soon(loop, fz_never_cb, NULL, NULL, &h), DOC_CALL,
                 -EPERM);
        break;
    case 1:
        CHECK_RC(ferry_call_later(loop, 0, fz_never_cb, NULL, NULL, &h),
                 DOC_CALL, -EPERM);
        break;
    case 2:
        CHECK_RC(ferry_add_reader(loop, sv, fz_never_cb, NULL, NULL),
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
    default:
        wrong_thread_call_more(loop, which % 14);
        break;
    }
}

/* ---- the commands (helper_run's cases) ---- */

static void helper_post(struct hcmd *c)
{
    ferry_cb *cb = c->a & 1 ? NULL : fz_cb_once;
    int rc = (int)CHECK_RC(
        ferry_call_soon_threadsafe(c->loop, cb, c->rec,
                                   c->rec->dispose ? fz_cb_dispose : NULL),
        DOC_POST, cb == NULL ? -EINVAL : ANY);
    FZ_CHECK(rc == 0 || rc == -ESHUTDOWN || rc == -EINVAL,
             "post from the helper: %d", rc);
    atomic_store(&c->rec->reg, rc == 0 ? REG_OK : REG_FAILED);
}

static void helper_run_ts(struct hcmd *c)
{
    ferry_future *f = NULL;
    int rc =
        (int)CHECK_RC(ferry_run_threadsafe(c->loop, fz_ts_fn, c->rec,
                                           c->a & 1 ? fz_free_value : NULL, &f),
                      DOC_RUN_TS, ANY);
    FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "run_threadsafe: %d", rc);
    if (rc < 0) {
        atomic_store(&c->rec->reg, REG_FAILED);
        return;
    }
    atomic_store(&c->rec->reg, REG_OK);
    if (c->a & 2)
        CHECK_RC(ferry_future_wait(f, (c->a & 4) ? 200000 : 0), DOC_WAIT, ANY);
    if (c->a & 8)
        (void)ferry_future_cancel(f);
    mail_put(&(struct mail){
        .f = f, .kind = FK_TS, .ls = c->ls, .ls_gen = c->ls_gen, .fn = c->rec});
}

static void helper_submit_fut(struct hcmd *c)
{
    ferry_future *f = NULL;
    int rc = (int)CHECK_RC(ferry_pool_submit_future(c->pool, fz_work_fn,
                                                    (void *)(uintptr_t)c->c,
                                                    fz_free_value, &f),
                           DOC_SUBMIT_FUT, ANY);
    FZ_CHECK(rc == 0 || rc == -ESHUTDOWN, "submit_future: %d", rc);
    if (rc < 0)
        return;
    if (c->a & 2)
        CHECK_RC(ferry_future_wait(f, (c->a & 4) ? 300000 : 0), DOC_WAIT, ANY);
    if (c->a & 8)
        (void)ferry_future_cancel(f);
    mail_put(&(struct mail){
        .f = f, .kind = FK_JOB_FREE, .work = c->c, .pool_sel = c->b});
}

static void helper_prom(struct hcmd *c)
{
    ferry_promise *p = c->prom;
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c->a % 6) {
    case 0:
        v = fz_new_value();
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
        v = fz_new_value();
        rc = ferry_promise_complete(p, 0, v);
        break;
    default:
        want_rc = -EIO;
        rc = ferry_promise_complete(p, EIO, fz_new_value()); /* disposed */
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
}

static void helper_fut_set(struct hcmd *c)
{
    ferry_future *f = c->fut;
    bool bound = ferry_future_loop(f) != NULL;
    void *v = NULL;
    int rc, want_rc = 0;
    switch (c->a % 4) {
    case 0: /* the owner-only form: -EPERM for a bound future */
        v = fz_new_value();
        rc = (int)CHECK_RC(ferry_future_set_result(f, v, fz_free_value),
                           DOC_SET, bound ? -EPERM : ANY);
        if (rc == -EPERM)
            fz_free_value(v); /* refused: still ours */
        break;
    case 1:
        v = fz_new_value();
        rc = (int)CHECK_RC(
            ferry_future_set_result_threadsafe(f, v, fz_free_value), DOC_SET_TS,
            ANY);
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
}

static void helper_fut_wait(struct hcmd *c)
{
    static const int64_t timeouts[4] = {0, 10000, 200000, 1000000};
    int rc = (int)CHECK_RC(ferry_future_wait(c->fut, timeouts[c->a & 3]),
                           DOC_WAIT, ANY);
    FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "wait off the loop: %d", rc);
    FZ_CHECK((rc == 0) == ferry_future_done(c->fut) || rc == -ETIMEDOUT,
             "wait returned 0 on a pending future");
    ferry_future_unref(c->fut);
}

static void helper_pool_shutdown(struct hcmd *c)
{
    struct ferry_pool_report rep;
    int rc = (int)CHECK_RC(
        ferry_pool_shutdown(c->pool, c->a & 1, c->b ? 1000000 : 0, &rep),
        DOC_POOL_SHUTDOWN, ANY);
    FZ_CHECK(rc == 0 || rc == -ETIMEDOUT, "pool shutdown: %d", rc);
}

static void helper_any(struct hcmd *c)
{
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
}

static void helper_run(struct hcmd *c)
{
    switch ((enum hop)c->op) {
    case H_POST:
        helper_post(c);
        break;
    case H_STOP:
        CHECK_RC(ferry_loop_stop(c->loop), DOC_STOP, ANY);
        break;
    case H_WRONG:
        wrong_thread_call(c->loop, c->a, c->b);
        break;
    case H_HANDLE_CANCEL:
        CHECK_RC(ferry_handle_cancel(c->h), DOC_HCANCEL, c->expect);
        break;
    case H_RUN_TS:
        helper_run_ts(c);
        break;
    case H_SUBMIT_FUT:
        helper_submit_fut(c);
        break;
    case H_PROM:
        helper_prom(c);
        break;
    case H_FUT_SET:
        helper_fut_set(c);
        break;
    case H_FUT_CANCEL:
        (void)ferry_future_cancel(c->fut);
        ferry_future_unref(c->fut);
        break;
    case H_FUT_WAIT:
        helper_fut_wait(c);
        break;
    case H_POOL_SHUTDOWN:
        helper_pool_shutdown(c);
        break;
    case H_TASK:
        if (c->a & 1)
            CHECK_RC(ferry_task_cancel(c->task), DOC_TASK_CANCEL, ANY);
        else
            CHECK_RC(ferry_task_status(c->task), DOC_TASK_STATUS, ANY);
        break;
    case H_ANY:
        helper_any(c);
        break;
    }
    if (c->loop != NULL)
        ferry_loop_unref(c->loop);
}

void *fz_helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&fz_helper.mu);
    for (;;) {
        while (fz_helper.len == 0 && !fz_helper.quit)
            pthread_cond_wait(&fz_helper.cv, &fz_helper.mu);
        if (fz_helper.len == 0)
            break;
        struct hcmd c = fz_helper.q[fz_helper.head];
        fz_helper.head = (fz_helper.head + 1) % HQ_CAP;
        fz_helper.len--;
        pthread_cond_broadcast(&fz_helper.cv); /* room in the queue */
        pthread_mutex_unlock(&fz_helper.mu);
        helper_run(&c);
        pthread_mutex_lock(&fz_helper.mu);
        fz_helper.done++;
        pthread_cond_broadcast(&fz_helper.cv);
    }
    pthread_mutex_unlock(&fz_helper.mu);
    return NULL;
}

/* A command on a loop: the helper holds a reference for it. */
void fz_helper_loop_cmd(struct hcmd c, struct lslot *ls, bool wait)
{
    ferry_loop_ref(ls->loop);
    c.loop = ls->loop;
    c.ls = ls;
    c.ls_gen = ls->gen;
    fz_helper_push(&c, wait);
}

/* The futures the helper made, into the model (each gets tracked). */
void fz_collect_mail(void)
{
    struct mail m[MAIL_CAP];
    pthread_mutex_lock(&fz_helper.mu);
    unsigned n = fz_helper.nmail;
    memcpy(m, fz_helper.mail, n * sizeof m[0]);
    fz_helper.nmail = 0;
    pthread_mutex_unlock(&fz_helper.mu);
    for (unsigned i = 0; i < n; i++) {
        struct lslot *ls =
            m[i].ls != NULL && m[i].ls->gen == m[i].ls_gen ? m[i].ls : NULL;
        struct fslot *s = fz_add_fut(m[i].f, (enum fkind)m[i].kind, ls);
        if (s == NULL)
            continue;
        s->fn = m[i].fn;
        s->work = m[i].work;
        s->pool_sel = m[i].pool_sel;
        fz_track(s);
    }
}
