/*
 * tests/fuzz/fuzz_loop.c: the loop slots of the model (a loop and its
 * socketpair per slot; closing checks that everything pending on the loop
 * was disposed) and the instructions on loops: loop_new, run_once,
 * run_forever, stop, close, free, fd watchers and socket traffic, and the
 * miscellany (embedding fd, timeout, slow-callback hook, after_fork,
 * "Thread: any" queries and wrong-thread calls through the helper).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

/* ---- loops ---- */

static void check_closed_loop(struct lslot *ls)
{
    /* Close disposed everything pending on the loop: every one-shot and
     * watcher registration whose registration is known to have succeeded
     * is final now (a post that raced the close either landed before it
     * and was disposed, or failed). */
    for (int i = 0; i < fz_ctx->nrecs; i++) {
        struct rec *r = &fz_ctx->recs[i];
        if (fz_loop_of(r) != ls || !r->dispose)
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

void fz_close_checked(struct lslot *ls)
{
    CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, 0);
    ls->closed = true;
    FZ_CHECK(ferry_loop_is_closed(ls->loop), "closed loop not closed");
    check_closed_loop(ls);
}

void fz_free_slot(struct lslot *ls)
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

struct lslot *fz_pick_loop(uint8_t a)
{
    struct lslot *ls = &fz_ctx->loops[a % NLOOPS];
    return ls->loop != NULL ? ls : NULL;
}

/* ---- the instructions on loops ---- */

void fz_op_loop_new(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    if (fz_ctx->loops[a % NLOOPS].loop == NULL)
        new_loop(&fz_ctx->loops[a % NLOOPS], b);
}

void fz_op_run_once(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    if (b & 0x80) {
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 4}, ls, false);
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
            fz_do_post_main(ls, 0, 0, true);
    }
    CHECK_RC(ferry_loop_run_once(ls->loop, timeout == -2 ? -1 : timeout),
             DOC_RUN, ls->closed ? -ESHUTDOWN : 0);
}

void fz_op_run_forever(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
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
        struct rec *r = fz_new_rec(REC_ONCE, ls);
        if (r == NULL)
            return;
        r->action = 3;
        r->dispose = true;
        r->space = SP_SOON;
        r->seq = ++ls->next_seq[SP_SOON];
        CHECK_RC(ferry_call_soon(ls->loop, fz_cb_once, r, fz_cb_dispose, NULL),
                 DOC_CALL, 0);
        atomic_store(&r->reg, REG_OK);
    }
    CHECK_RC(ferry_loop_run_forever(ls->loop), DOC_RUN, 0);
}

void fz_op_stop(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    (void)c;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if (b & 1)
        fz_helper_loop_cmd((struct hcmd){.op = H_STOP}, ls, false);
    else
        CHECK_RC(ferry_loop_stop(ls->loop), DOC_STOP,
                 ls->closed ? -ESHUTDOWN : 0);
}

void fz_op_close(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    (void)c;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if (b & 1)
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 5}, ls, false);
    else if (ls->closed)
        CHECK_RC(ferry_loop_close(ls->loop), DOC_LOOP_CLOSE, 0);
    else
        fz_close_checked(ls);
}

void fz_op_free(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls;
    (void)c;
    if ((ls = fz_pick_loop(a)) == NULL)
        return;
    if (b & 1)
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG, .a = 6}, ls, false);
    else
        fz_free_slot(ls);
}

void fz_op_add_watch(uint8_t a, uint8_t b, uint8_t c)
{
    struct lslot *ls = fz_pick_loop(a);
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
        fd = fz_regular_fd;
        expect = -EINVAL; /* epoll refuses regular files (EPERM) */
        valid = false;
    }
    if (b & 0x40) {
        fz_helper_loop_cmd(
            (struct hcmd){.op = H_WRONG, .a = 2, .b = (uint8_t)fd}, ls, false);
        return;
    }
    if (fd >= 0 && ls->closed)
        expect = -ESHUTDOWN;
    struct rec *r = fz_new_rec(REC_WATCH, ls);
    if (r == NULL)
        return;
    r->fd_idx = idx;
    r->writer = writer;
    r->dispose = !(c & 0x80);
    r->action = c & 3;
    struct rec *old = valid && !ls->closed ? ls->watch[idx][writer] : NULL;
    int rc = (int)CHECK_RC(
        writer ? ferry_add_writer(ls->loop, fd, fz_cb_watch, r,
                                  r->dispose ? fz_cb_dispose : NULL)
               : ferry_add_reader(ls->loop, fd, fz_cb_watch, r,
                                  r->dispose ? fz_cb_dispose : NULL),
        DOC_ADD_WATCH, expect);
    atomic_store(&r->reg, rc == 0 ? REG_OK : REG_FAILED);
    if (rc != 0)
        return;
    if (old != NULL)
        FZ_CHECK(!old->dispose || atomic_load(&old->disposes) == 1,
                 "replaced watcher not disposed");
    ls->watch[idx][writer] = r;
}

void fz_op_remove_watch(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
    if (ls == NULL)
        return;
    bool writer = b & 1;
    unsigned sel = (b >> 1) & 7;
    int idx = sel & 1;
    int fd = sel == 2 ? -1 : sel == 3 ? NOT_AN_FD : ls->sv[idx];
    if (b & 0x40) {
        fz_helper_loop_cmd(
            (struct hcmd){.op = H_WRONG, .a = 3, .b = (uint8_t)fd}, ls, false);
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

void fz_op_sock(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
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
    if (fz_ctx->bytes_budget >= (int)n &&
        send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
        fz_ctx->bytes_budget -= (int)n;
}

static void slow_hook(void *arg, const char *symbol, uint64_t ns)
{
    (void)arg;
    (void)symbol;
    (void)ns;
    FZ_CHECK(fz_on_main(), "the slow-callback hook ran off the loop's thread");
}

void fz_op_loop_misc(uint8_t a, uint8_t b, uint8_t c)
{
    (void)c;
    struct lslot *ls = fz_pick_loop(a);
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
        int64_t t = -2;
        int rc = CHECK_RC(ferry_loop_timeout(ls->loop, &t), DOC_LOOP_TIMEOUT,
                          ls->closed ? -ESHUTDOWN : ANY);
        FZ_CHECK(rc < 0 ? t == -2 : t >= -1, "ferry_loop_timeout: %d, %lld", rc,
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
        fz_helper_loop_cmd(
            (struct hcmd){.op = H_ANY,
                          .a = (uint8_t)(b >> 3),
                          .pool = (b & 0x40) ? fz_persistent_pool : NULL},
            ls, false);
        break;
    default:
        fz_helper_loop_cmd((struct hcmd){.op = H_WRONG,
                                         .a = (uint8_t)(b >> 3),
                                         .b = (uint8_t)ls->sv[0]},
                           ls, false);
        break;
    }
}
