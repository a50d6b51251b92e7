/*
 * tests/test_loop_fault.c: fault injection for the loop and futures (issue
 * 6 section 3), through the wrappers of tests/fault.h: the N-th allocation,
 * eventfd, epoll_create1 or epoll_ctl(ADD) made on the test thread fails,
 * for N = 1, 2, ... until the scenario runs without a fault. Every failure
 * must return its documented error, leave nothing scheduled (no dispose,
 * no callback), leave the loop usable (what was accepted before still
 * runs) or cleanly freeable, and leak nothing (ASan/valgrind).
 *
 *   loop_new            every step, epoll_ctl failing with ENOMEM and
 *                       with ENOSPC (max_user_watches)
 *   registrations       call_soon, threadsafe, readers, futures, done
 *                       callbacks, the timer heap's growth
 *   watchers            a writer whose epoll_ctl fails leaves the fd's
 *                       reader registered and firing
 *   lifecycle           new, a reader, a writer, timers, call_soon,
 *                       threadsafe posts, a future and its callback, run,
 *                       free: every accepted registration ran or was
 *                       disposed exactly once, whatever failed
 *   after_fork          in a child: every step of the rebuild fails in
 *                       turn; the loop stays stale (-ECHILD) and the call
 *                       can be repeated until it succeeds, after which the
 *                       inherited reader fires
 *   eventfd EAGAIN      a post whose eventfd write fails with EAGAIN (the
 *                       genuine one: counter full) still wakes a loop
 *                       sleeping with no timeout, and an embedder polling
 *                       ferry_loop_fd
 */
#include <poll.h>
#include <string.h>
#include <sys/wait.h>

#include "common/base.h"
#include "fault.h"
#include "helpers.h"
#include "loop/internal.h"

/* Run op with the N-th wrapped call of kinds failing, N = 1.. until it
 * runs without a fault. A fault the op absorbed (it still returned 0) is
 * undone by undo. Returns how many failure points it went through. */
static int sweep(int (*op)(void *ctx), void (*undo)(void *ctx), void *ctx,
                 unsigned kinds, const int *allowed, int nallowed)
{
    int points = 0;
    for (long n = 1; n < 1000; n++) {
        fault_arm(kinds, n, false);
        int rc = op(ctx);
        unsigned fired = fault_disarm();
        if (rc == 0 && fired == 0)
            return points;
        points++;
        if (rc == 0) {
            if (undo == NULL)
                fail_msg("fault %u at N=%ld absorbed without an undo", fired,
                         n);
            undo(ctx);
            continue;
        }
        assert_true(fired != 0); /* failed only because we made it fail */
        bool ok = false;
        for (int i = 0; i < nallowed; i++)
            ok |= rc == allowed[i];
        if (!ok)
            fail_msg("unexpected error %d (%s) at N=%ld", rc,
                     ferry_strerror(rc), n);
    }
    fail_msg("no success after 1000 faults");
    return points;
}

static ferry_loop *made;

static int op_loop_new(void *ctx)
{
    (void)ctx;
    ferry_loop *l = (ferry_loop *)0x1;
    int rc = ferry_loop_new(&l, NULL);
    if (rc < 0) {
        assert_ptr_equal(l, (ferry_loop *)0x1); /* untouched on error */
        return rc;
    }
    made = l;
    return 0;
}

static void test_fault_loop_new_every_step(void **state)
{
    (void)state;
    const int allowed[] = {-ENOMEM, -EMFILE, -ENFILE, -ENOSPC};
    const unsigned kinds =
        FAULT_ALLOC | FAULT_EVENTFD | FAULT_EPOLL | FAULT_CTL;
    fault_ctl_errno = ENOMEM;
    int failures = sweep(op_loop_new, NULL, NULL, kinds, allowed, 3);
    /* loop, events, epoll, eventfd, the eventfd's registration */
    assert_true(failures >= 5);
    assert_int_equal(ferry_loop_free(made), 0);
    fault_ctl_errno = ENOSPC;
    failures = sweep(op_loop_new, NULL, NULL, kinds, allowed, 4);
    assert_true(failures >= 5);
    assert_int_equal(ferry_loop_free(made), 0);
    fault_ctl_errno = ENOMEM;
    print_message("ferry_loop_new: %d failure points\n", failures);
}

struct ops_ctx {
    ferry_loop *loop;
    _Atomic int disposed;
    int ran;
    int fd;
    ferry_future *fut;
};

static void ran_cb(void *arg)
{
    ((struct ops_ctx *)arg)->ran++;
}

static void ran_done(ferry_future *f, void *arg)
{
    (void)f;
    ((struct ops_ctx *)arg)->ran++;
}

static void ops_dispose(void *arg)
{
    atomic_fetch_add(&((struct ops_ctx *)arg)->disposed, 1);
}

static int op_call_soon(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_soon(x->loop, ran_cb, x, ops_dispose, NULL);
}

static int op_call_later(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_later(x->loop, 0, ran_cb, x, ops_dispose, NULL);
}

static int op_threadsafe(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_soon_threadsafe(x->loop, ran_cb, x, ops_dispose);
}

static int op_reader(void *c)
{
    struct ops_ctx *x = c;
    return ferry_add_reader(x->loop, x->fd, ran_cb, x, ops_dispose);
}

static int op_future(void *c)
{
    struct ops_ctx *x = c;
    return ferry_future_new(x->loop, &x->fut);
}

static int op_done_cb(void *c)
{
    struct ops_ctx *x = c;
    return ferry_future_add_done_callback(x->fut, ran_done, x, ops_dispose);
}

static void test_fault_registrations_enomem(void **state)
{
    (void)state;
    struct ops_ctx x = {0};
    const int enomem[] = {-ENOMEM};
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* fd 900: the watcher table must grow, another allocation to fail. */
    x.fd = dup2(p[0], 900);
    assert_int_equal(ferry_loop_new(&x.loop, NULL), 0);
    int (*ops[])(void *) = {op_call_soon, op_threadsafe, op_reader, op_future};
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(ops); i++)
        assert_true(
            sweep(ops[i], NULL, &x, FAULT_ALLOC | FAULT_CTL, enomem, 1) >= 1);
    /* A future's first done callback is embedded in it: nothing can fail.
     * The second one takes a handle. */
    assert_int_equal(sweep(op_done_cb, NULL, &x, FAULT_ALLOC, enomem, 1), 0);
    assert_true(sweep(op_done_cb, NULL, &x, FAULT_ALLOC, enomem, 1) >= 1);
    /* The timer heap grows by realloc at 16, 32, ...: fail there too. */
    for (int i = 0; i < 40; i++)
        sweep(op_call_later, NULL, &x, FAULT_ALLOC, enomem, 1);
    assert_int_equal(atomic_load(&x.disposed),
                     0); /* failures schedule nothing */
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(ferry_future_set_result(x.fut, NULL, NULL), 0);
    assert_int_equal(ferry_loop_run_once(x.loop, -1), 0);
    assert_int_equal(ferry_loop_run_once(x.loop, 0), 0);
    /* call_soon, threadsafe, reader, 2 done callbacks, 40 timers: all ran. */
    assert_true(x.ran >= 45);
    ferry_future_unref(x.fut);
    assert_int_equal(ferry_loop_free(x.loop), 0);
    assert_int_equal(atomic_load(&x.disposed), 1); /* the reader */
    close(x.fd);
    close(p[0]);
    close(p[1]);
}

/* ---- watchers: a failed registration leaves the fd's other one alone ---- */

static void test_fault_writer_failure_keeps_reader(void **state)
{
    (void)state;
    struct ops_ctx x = {0};
    int sv[2];
    assert_int_equal(pipe(sv), 0);
    assert_int_equal(ferry_loop_new(&x.loop, NULL), 0);
    /* A reader on the pipe's read end, then a writer on a fresh fd whose
     * ADD fails: -ENOMEM (or -ENOSPC), nothing registered, nothing
     * disposed. */
    assert_int_equal(ferry_add_reader(x.loop, sv[0], ran_cb, &x, ops_dispose),
                     0);
    const int errs[] = {ENOMEM, ENOSPC};
    for (int i = 0; i < 2; i++) {
        fault_ctl_errno = errs[i];
        fault_arm(FAULT_CTL, 1, false);
        int rc = ferry_add_writer(x.loop, sv[1], ran_cb, &x, ops_dispose);
        assert_int_equal(fault_disarm(), FAULT_CTL);
        assert_int_equal(rc, -errs[i]);
    }
    fault_ctl_errno = ENOMEM;
    assert_int_equal(atomic_load(&x.disposed), 0);
    assert_int_equal(ferry_remove_writer(x.loop, sv[1]), 0); /* none */
    /* The reader still fires. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(ferry_loop_run_once(x.loop, 1000000000), 0);
    assert_int_equal(x.ran, 1);
    /* And the writer can be added once the kernel has room again. */
    assert_int_equal(ferry_add_writer(x.loop, sv[1], ran_cb, &x, ops_dispose),
                     0);
    assert_int_equal(ferry_loop_run_once(x.loop, 1000000000), 0);
    assert_int_equal(x.ran, 3); /* reader (still readable) and writer */
    assert_int_equal(ferry_loop_free(x.loop), 0);
    assert_int_equal(atomic_load(&x.disposed), 2);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the whole lifecycle, failing each call in turn ---- */

struct life {
    int ran;
    _Atomic int disposed;
    int accepted;
    int rd, wr;
};

static void life_ran(void *arg)
{
    ((struct life *)arg)->ran++;
}

static void life_done(ferry_future *f, void *arg)
{
    (void)f;
    ((struct life *)arg)->ran++;
}

static void life_dispose(void *arg)
{
    atomic_fetch_add(&((struct life *)arg)->disposed, 1);
}

/* Readers and writers are persistent: count their first run only. */
struct once {
    struct life *l;
    ferry_loop *loop;
    int fd;
    bool write;
};

static void once_ran(void *arg)
{
    struct once *o = arg;
    o->l->ran++;
    /* Removing disposes: count that as the end, not a second outcome. */
    o->l->accepted++;
    if (o->write)
        ferry_remove_writer(o->loop, o->fd);
    else
        ferry_remove_reader(o->loop, o->fd);
}

static void once_dispose(void *arg)
{
    life_dispose(((struct once *)arg)->l);
}

static struct life life;

static int op_lifecycle(void *c)
{
    (void)c;
    struct life *l = &life;
    *l = (struct life){.rd = l->rd, .wr = l->wr};
    ferry_loop *loop;
    int rc = ferry_loop_new(&loop, NULL);
    if (rc < 0)
        return rc;
    struct once r = {l, loop, l->rd, false}, w = {l, loop, l->wr, true};
    ferry_future *fut = NULL;
    /* Register until the first failure; count what was accepted. */
    if ((rc = ferry_add_reader(loop, l->rd, once_ran, &r, once_dispose)) == 0)
        l->accepted++;
    if (rc == 0 &&
        (rc = ferry_add_writer(loop, l->wr, once_ran, &w, once_dispose)) == 0)
        l->accepted++;
    for (int i = 0; rc == 0 && i < 20; i++) {
        if ((rc = ferry_call_later(loop, i, life_ran, l, life_dispose, NULL)) ==
            0)
            l->accepted++;
        if (rc == 0 &&
            (rc = ferry_call_soon(loop, life_ran, l, life_dispose, NULL)) == 0)
            l->accepted++;
        if (rc == 0 && (rc = ferry_call_soon_threadsafe(loop, life_ran, l,
                                                        life_dispose)) == 0)
            l->accepted++;
    }
    if (rc == 0)
        rc = ferry_future_new(loop, &fut);
    if (rc == 0 && (rc = ferry_future_add_done_callback(fut, life_done, l,
                                                        life_dispose)) == 0)
        l->accepted++;
    if (fut != NULL)
        ferry_future_set_result(fut, NULL, NULL);
    /* Whatever failed, the loop runs what it accepted... */
    for (int i = 0; i < 50 && l->ran + atomic_load(&l->disposed) < l->accepted;
         i++)
        assert_int_equal(ferry_loop_run_once(loop, 1000000), 0);
    ferry_future_unref(fut);
    /* ...and frees cleanly; every accepted registration ran once or was
     * disposed once (the persistent watchers both, counted twice). */
    assert_int_equal(ferry_loop_free(loop), 0);
    assert_int_equal(l->ran + atomic_load(&l->disposed), l->accepted);
    return rc;
}

static void test_fault_loop_lifecycle_every_call(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1); /* readable, and writable */
    life.rd = p[0];
    life.wr = p[1];
    const int allowed[] = {-ENOMEM, -EMFILE, -ENFILE};
    int points = sweep(op_lifecycle, NULL, NULL,
                       FAULT_ALLOC | FAULT_EVENTFD | FAULT_EPOLL | FAULT_CTL,
                       allowed, 3);
    assert_true(points >= 10);
    print_message("loop lifecycle: %d failure points; %d registrations "
                  "accepted in the run without a fault\n",
                  points, life.accepted);
    close(p[0]);
    close(p[1]);
}

/* ---- after_fork, failing each step in a child ---- */

static ferry_loop *floop; /* static: a child's _exit leaves it reachable */

static void mark(void *arg)
{
    (*(int *)arg)++;
}

static int child_after_fork(int *ran)
{
    int bad = 0, points = 0, dummy = 0;
    const unsigned kinds =
        FAULT_ALLOC | FAULT_EVENTFD | FAULT_EPOLL | FAULT_CTL;
    for (long n = 1; n < 100; n++) {
        fault_arm(kinds, n, false);
        int rc = ferry_loop_after_fork(floop);
        unsigned fired = fault_disarm();
        if (rc == 0) {
            bad |= fired != 0 ? 1 : 0; /* a fault absorbed */
            break;
        }
        points++;
        if (fired == 0)
            bad |= 2;
        if (rc != -ENOMEM && rc != -EMFILE && rc != -ENFILE)
            bad |= 4;
        /* Still the parent's loop: stale, and the call can be repeated. */
        if (ferry_call_soon(floop, mark, &dummy, NULL, NULL) != -ECHILD)
            bad |= 8;
    }
    /* The inherited reader is registered in the child's epoll and fires. */
    if (ferry_loop_run_once(floop, 1000000000) != 0 || *ran != 1)
        bad |= 16;
    if (ferry_loop_free(floop) != 0)
        bad |= 32;
    if (points < 5) /* events, epoll, eventfd, its ADD, the reader's ADD */
        bad |= 64;
    return bad;
}

static void test_fault_after_fork_every_step(void **state)
{
    (void)state;
    int p[2], ran = 0;
    assert_int_equal(ferry_loop_new(&floop, NULL), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ferry_add_reader(floop, p[0], mark, &ran, NULL), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_after_fork(&ran));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The parent's loop is untouched: its reader fires here too. */
    assert_int_equal(ferry_loop_run_once(floop, 1000000000), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(ferry_loop_free(floop), 0);
    close(p[0]);
    close(p[1]);
}

/* ---- an eventfd write that fails with EAGAIN ---- */

struct wake {
    ferry_loop *loop;
    _Atomic int ran;
    _Atomic int go;   /* rounds the poster may post */
    _Atomic int done; /* rounds posted */
    int rounds;
    bool embedded;
};

static void wake_ran(void *arg)
{
    atomic_fetch_add(&((struct wake *)arg)->ran, 1);
}

static void *wake_poster(void *arg)
{
    struct wake *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        while (atomic_load(&w->go) <= i)
            sched_yield();
        /* Wait until the loop announced its sleep, then a little more so
         * that it is inside epoll_wait. */
        while (!atomic_load(&w->loop->polling))
            sched_yield();
        sleep_ns(200000);
        fault_arm(FAULT_WRITE, 1, true); /* the next eventfd write */
        if (ferry_call_soon_threadsafe(w->loop, wake_ran, w, NULL) != 0)
            abort();
        fault_disarm();
        atomic_store(&w->done, i + 1);
    }
    return NULL;
}

static void run_wake_rounds(bool embedded, int rounds)
{
    struct wake w = {.rounds = rounds, .embedded = embedded};
    assert_int_equal(ferry_loop_new(&w.loop, NULL), 0);
    int fd = -1;
    if (embedded)
        fd = ferry_loop_fd(w.loop);
    fault_watch_fd(w.loop->efd);
    long eagain0 = atomic_load(&fault_eagain);
    pthread_t t = spawn(wake_poster, &w);
    for (int i = 0; i < rounds; i++) {
        uint64_t t0 = ferry__now_ns();
        atomic_store(&w.go, i + 1);
        if (embedded) {
            /* The embedder's poll: ferry_loop_timeout is -1 (nothing
             * scheduled), so only the wake-up can end it; 5 s bounds a
             * lost one. */
            int64_t wait_ns = 0;
            assert_int_equal(ferry_loop_timeout(w.loop, &wait_ns), 0);
            assert_int_equal(wait_ns, -1);
            while (atomic_load(&w.ran) <= i) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                assert_int_equal(ferry_loop_run_once(w.loop, 0), 0);
            }
        } else {
            /* No timer, no fd: only the wake-up ends this sleep; 5 s
             * bounds a lost one. */
            while (atomic_load(&w.ran) <= i)
                assert_int_equal(ferry_loop_run_once(w.loop, 5000000000), 0);
        }
        assert_true(ferry__now_ns() - t0 < 4000000000u);
        while (atomic_load(&w.done) <= i)
            sched_yield();
    }
    pthread_join(t, NULL);
    fault_unwatch_fd(w.loop->efd);
    long eagain = atomic_load(&fault_eagain) - eagain0;
    assert_int_equal(atomic_load(&w.ran), rounds);
    assert_int_equal(ferry_loop_free(w.loop), 0);
    assert_int_equal(eagain, rounds); /* every post's write failed */
    print_message("%s: %d posts woke the loop, %ld of their eventfd writes "
                  "failed with EAGAIN\n",
                  embedded ? "embedded loop" : "loop", rounds, eagain);
}

static void test_fault_eventfd_eagain_loses_no_wakeup(void **state)
{
    (void)state;
    run_wake_rounds(false, 50);
    run_wake_rounds(true, 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_loop_new_every_step),
        cmocka_unit_test(test_fault_registrations_enomem),
        cmocka_unit_test(test_fault_writer_failure_keeps_reader),
        cmocka_unit_test(test_fault_loop_lifecycle_every_call),
        cmocka_unit_test(test_fault_after_fork_every_step),
        cmocka_unit_test(test_fault_eventfd_eagain_loses_no_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
