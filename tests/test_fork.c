/*
 * tests/test_fork.c: S13 and S14 for loops. Each scenario forks; the child
 * checks what it sees and reports through its exit status (a bit per
 * failed check), so no cmocka assert ever runs in the child.
 */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "loop/internal.h"
#include "tests/pool_threads.h"

/* Loops live in statics, not locals: a child that _exit()s leaves them
 * reachable, so valgrind does not count what it inherited as leaked. */
static ferry_loop *loop;

static int child_status(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void mark(void *arg)
{
    (*(int *)arg)++;
}

static void stop_cb(void *arg)
{
    ferry_loop_stop(arg);
}

/* The child: stale loop -> -ECHILD everywhere; after_fork rebuilds it; the
 * rebuilt loop runs the child's own callbacks and watchers. */
static int child_checks(int rfd, int *reader_ran, int *posted)
{
    int bad = 0, ran = 0;
    if (ferry_call_soon(loop, mark, &ran, NULL, NULL) != -ECHILD)
        bad |= 1;
    if (ferry_call_soon_threadsafe(loop, mark, &ran, NULL) != -ECHILD)
        bad |= 1;
    if (ferry_loop_run_once(loop, 0) != -ECHILD)
        bad |= 2;
    if (ferry_loop_stop(loop) != -ECHILD || ferry_loop_fd(loop) != -ECHILD)
        bad |= 2;
    if (ferry_add_reader(loop, rfd, mark, &ran, NULL) != -ECHILD)
        bad |= 4;
    if (ferry_loop_after_fork(loop) != 0)
        bad |= 8;
    if (ferry_loop_after_fork(loop) != -EALREADY)
        bad |= 8;
    if (ferry_call_soon(loop, mark, &ran, NULL, NULL) != 0)
        bad |= 16;
    ferry_loop_stop(loop);
    /* One iteration: the inherited reader (re-registered in the new epoll)
     * fires, since the parent wrote a byte before forking; the post the
     * parent queued before the fork is dropped, not run. */
    if (ferry_loop_run_forever(loop) != 0 || ran != 1)
        bad |= 16;
    if (*reader_ran != 1)
        bad |= 32;
    if (*posted != 0)
        bad |= 128;
    if (ferry_loop_free(loop) != 0)
        bad |= 64;
    return bad;
}

static void test_S14_loop_child_echild_then_after_fork(void **state)
{
    (void)state;
    int p[2], ran = 0, posted = 0;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ferry_add_reader(loop, p[0], mark, &ran, NULL), 0);
    assert_int_equal(ferry_call_soon_threadsafe(loop, mark, &posted, NULL), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_checks(p[0], &ran, &posted));
    assert_int_equal(child_status(pid), 0);
    /* The child's after_fork and free did not unregister our reader: it
     * still fires here (and the post runs), so the shared epoll instance
     * never saw an EPOLL_CTL_DEL. */
    assert_int_equal(ferry_loop_run_once(loop, 1000000000), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(posted, 1);
    assert_int_equal(ferry_remove_reader(loop, p[0]), 1);
    assert_int_equal(ferry_loop_free(loop), 0);
    close(p[0]);
    close(p[1]);
}

static void fork_inside_callback(void *arg)
{
    int *status = arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* seed 000: the child, forked inside a running loop, makes and
         * runs its own loop. */
        int bad = 0;
        if (ferry_loop_running() != NULL)
            bad |= 1;
        static ferry_loop *child_loop;
        if (ferry_loop_new(&child_loop, NULL) != 0)
            _exit(2);
        int ran = 0;
        ferry_call_soon(child_loop, mark, &ran, NULL, NULL);
        ferry_call_soon(child_loop, stop_cb, child_loop, NULL, NULL);
        if (ferry_loop_run_forever(child_loop) != 0 || ran != 1)
            bad |= 4;
        if (ferry_loop_free(child_loop) != 0)
            bad |= 8;
        _exit(bad);
    }
    *status = child_status(pid);
}

static void test_S13_running_loop_null_in_child_forked_in_callback(void **s)
{
    (void)s;
    int status = -1;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    ferry_call_soon(loop, fork_inside_callback, &status, NULL, NULL);
    ferry_call_soon(loop, stop_cb, loop, NULL, NULL);
    assert_int_equal(ferry_loop_run_forever(loop), 0);
    assert_int_equal(status, 0);
    assert_int_equal(ferry_loop_free(loop), 0);
}

struct forker {
    ferry_loop *loop;
    int status;
};

static void fork_and_return(void *arg)
{
    struct forker *f = arg;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Return into the inherited run_forever: it must notice the fork
         * and stop with -ECHILD instead of running the parent's work. */
        return;
    }
    f->status = child_status(pid);
    ferry_loop_stop(f->loop);
}

static void test_S14_inherited_run_forever_stops_with_echild(void **state)
{
    (void)state;
    int ran = 0;
    pid_t parent = getpid();
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    struct forker f = {.loop = loop, .status = -1};
    ferry_call_soon(loop, fork_and_return, &f, NULL, NULL);
    ferry_call_soon(loop, mark, &ran, NULL, NULL);
    ferry_call_at(loop, 0, mark, &ran, NULL, NULL);
    int rc = ferry_loop_run_forever(loop);
    if (getpid() != parent)
        _exit(rc == -ECHILD && ran == 0 ? 0 : 1);
    /* parent: the child returned from run_forever with -ECHILD */
    assert_int_equal(f.status, 0);
    assert_int_equal(ran, 2);
    assert_int_equal(rc, 0);
    assert_int_equal(ferry_loop_free(loop), 0);
}

/* S14 with a deferred offload: a fork inside a callback that offloaded,
 * whose task waits for the end of the pass (executor/defer.c). The child
 * rebuilds the loop and the pool, offloads again in the same callback,
 * and its own task runs: the parent's chain is forgotten, not flushed in
 * its place. The parent's offload completes in the parent. */
static ferry_pool *dpool;
static ferry_future *dfa, *dfb;
static pid_t dpid = -1;

static _Atomic int echo_runs[3]; /* by argument */

static int echo(void *arg, void **result)
{
    atomic_fetch_add(&echo_runs[(uintptr_t)arg], 1);
    *result = arg;
    return 0;
}

static void offload_then_fork(void *arg)
{
    (void)arg;
    if (ferry_run_in_executor(loop, dpool, echo, (void *)1, NULL, &dfa) != 0)
        abort();
    fflush(NULL);
    dpid = fork();
    if (dpid != 0)
        return;
    if (ferry_loop_after_fork(loop) != 0)
        _exit(10);
    if (ferry_pool_after_fork(dpool) != 0)
        _exit(11);
    if (ferry_run_in_executor(loop, dpool, echo, (void *)2, NULL, &dfb) != 0)
        _exit(12);
}

static void test_S14_fork_in_callback_with_deferred_offload(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {.threads = 1};
    assert_int_equal(ferry_pool_new(&dpool, &o), 0);
    /* The worker and the monitor have started (tests/pool_threads.h: a
     * fork while one starts can hand the child ASan's allocator lock). */
    assert_true(wait_pool_threads(2));
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    ferry_call_soon(loop, offload_then_fork, NULL, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    if (dpid == 0) { /* the child: plain checks, exit status */
        for (int i = 0; i < 500 && !ferry_future_done(dfb); i++)
            (void)ferry_loop_run_once(loop, 10000000);
        void *v = NULL;
        if (ferry_future_result(dfb, &v) != 0 || v != (void *)2)
            _exit(20);
        _exit(atomic_load(&echo_runs[1]) == 0 ? 0 : 21); /* not the parent's */
    }
    assert_true(dpid > 0);
    assert_int_equal(child_status(dpid), 0);
    void *v = NULL;
    assert_int_equal(ferry_loop_run_until_complete(loop, dfa, &v), 0);
    assert_ptr_equal(v, (void *)1);
    assert_int_equal(atomic_load(&echo_runs[1]), 1);
    ferry_future_unref(dfa);
    assert_int_equal(ferry_loop_free(loop), 0);
    assert_int_equal(ferry_pool_free(dpool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_S14_loop_child_echild_then_after_fork),
        cmocka_unit_test(
            test_S13_running_loop_null_in_child_forked_in_callback),
        cmocka_unit_test(test_S14_inherited_run_forever_stops_with_echild),
        cmocka_unit_test(test_S14_fork_in_callback_with_deferred_offload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
