/*
 * tests/test_pool_fork.c: the pool's part of S14. A thread that is not a worker
 * forks while tasks are queued (and one runs). In the child every call on
 * the inherited pool answers -ECHILD; ferry_pool_after_fork then rebuilds
 * it, and only the child's own tasks run there, never the parent's. The
 * parent's pool is unaffected.
 *
 * The child checks with plain code and reports through its exit status:
 * it runs on a copy of the forking thread, where cmocka cannot jump back
 * (STYLE.md point 20). The parent's tasks are internal tasks in static
 * storage, so the child, which never completes them, leaks nothing (it is
 * checked by valgrind too, which follows the fork).
 */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "executor/internal.h"
#include "ferry.h"
#include "tests/pool_threads.h"

enum { QUEUED = 16, CHILD_TASKS = 100 };

static ferry_pool *pool;
static sem_t gate;
static _Atomic int gate_entered;
static _Atomic long parent_ran; /* parent's queued tasks that ran */
static _Atomic long child_ran;  /* child's tasks that ran */
static struct ferry__task gate_task;
static struct ferry__task queued[QUEUED];
static _Atomic long completes;

static void gate_fn(void *arg)
{
    (void)arg;
    atomic_store(&gate_entered, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    sem_timedwait(&gate, &ts);
}

static void parent_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parent_ran, 1);
}

static void child_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&child_ran, 1);
}

static void on_complete(struct ferry__task *t, int status)
{
    (void)t;
    (void)status;
    atomic_fetch_add(&completes, 1);
}

/* In the child. Returns 0 or the number of the first failed check. */
static int child_main(void)
{
    ferry_task *h = NULL;
    struct ferry_pool_stats st;
    ferry_group g;
    if (ferry_pool_submit(pool, child_fn, NULL, NULL, 0, &h) != -ECHILD)
        return 1;
    if (ferry_pool_try_submit(pool, child_fn, NULL, NULL, 0, &h) != -ECHILD)
        return 2;
    if (ferry_pool_stats(pool, &st) != -ECHILD)
        return 3;
    if (ferry_group_init(&g, pool) != -ECHILD)
        return 4;
    if (ferry_pool_shutdown(pool, FERRY_DRAIN, 0, NULL) != -ECHILD)
        return 5;
    if (ferry_pool_free(pool) != -ECHILD)
        return 6;
    struct ferry__task t;
    ferry__task_init(&t, child_fn, NULL, on_complete, 0);
    if (ferry__pool_submit_task(pool, &t) != -ECHILD)
        return 7;
#if defined(__SANITIZE_THREAD__)
    /* TSan cannot start threads after a multithreaded fork: glibc hands the
     * child the dead parent threads' cached stacks, and TSan aborts on the
     * reused thread ids ("dup thread with used id"). The rebuild half runs
     * in the plain, ASan and valgrind configurations. */
    return 0;
#endif
    if (ferry_pool_after_fork(pool) != 0)
        return 8;
    if (ferry_pool_after_fork(pool) != -EINVAL) /* no longer stale */
        return 9;
    if (ferry_group_init(&g, pool) != 0)
        return 10;
    for (int i = 0; i < CHILD_TASKS; i++)
        if (ferry_group_spawn(&g, child_fn, NULL, 0) != 0)
            return 11;
    if (ferry_group_wait(&g) != 0)
        return 12;
    if (ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL) != 0)
        return 13;
    if (atomic_load(&child_ran) != CHILD_TASKS)
        return 14;
    if (atomic_load(&parent_ran) != 0 || atomic_load(&completes) != 0)
        return 15; /* the parent's tasks never ran, nor completed */
    if (ferry_pool_stats(pool, &st) != 0 || st.completed != CHILD_TASKS)
        return 16;
    if (ferry_pool_free(pool) != 0)
        return 17;
    return 0;
}

static sem_t forked;

static void *forker(void *arg)
{
    pid_t *pid = arg;
    *pid = fork();
    if (*pid == 0)
        _exit(child_main());
    sem_post(&forked);
    return NULL;
}

static void test_fork_child_gets_echild_then_after_fork(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {
        .threads = 1, .max_threads = 1, .starvation_ns = UINT64_MAX};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    sem_init(&gate, 0, 0);
    ferry__task_init(&gate_task, gate_fn, NULL, on_complete, 0);
    assert_int_equal(ferry__pool_submit_task(pool, &gate_task), 0);
    while (!atomic_load(&gate_entered))
        sched_yield();
    for (int i = 0; i < QUEUED; i++) {
        ferry__task_init(&queued[i], parent_fn, NULL, on_complete, 0);
        assert_int_equal(ferry__pool_submit_task(pool, &queued[i]), 0);
    }

    /* The test thread waits on a semaphore, not in pthread_join, while
     * the other thread forks: sanitizer runtimes take their thread
     * registry lock inside pthread_join, and a child forked meanwhile
     * would inherit it held and deadlock in its own pthread_create
     * (gcc 12's libasan does not lock around fork). */
    /* ... and only once every pool thread runs: sanitizer runtimes
     * allocate while a thread starts, and gcc 12's do not lock their
     * allocator around fork either. */
    assert_true(wait_pool_threads(2)); /* the worker and the monitor */
    pid_t pid = -1;
    pthread_t th;
    sem_init(&forked, 0, 0);
    assert_int_equal(pthread_create(&th, NULL, forker, &pid), 0);
    sem_wait(&forked);
    assert_true(pid > 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    pthread_join(th, NULL);

    /* The parent's pool is untouched: its tasks run once the gate opens. */
    assert_int_equal(atomic_load(&parent_ran), 0);
    sem_post(&gate);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(atomic_load(&parent_ran), QUEUED);
    assert_int_equal(atomic_load(&completes), QUEUED + 1);
    assert_int_equal(atomic_load(&child_ran), 0);
    assert_int_equal(ferry_pool_free(pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_child_gets_echild_then_after_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
