/*
 * tests/stress_races_fork.c: fork() while pool workers run tasks and
 * another thread posts to the loop (issue 6 section 4). In the child every
 * call on the inherited objects answers -ECHILD, after_fork rebuilds both,
 * the child's own work runs once and none of the parent's runs there; in
 * the parent every task and post runs exactly once. The child reports
 * through its exit status (a bit per failed check); a child that hangs is
 * killed after 30 s and fails the test.
 *
 * This race has an executable of its own: under ASan a fork costs with
 * the parent's resident heap (the quarantine), which the other races
 * would fill. FERRY_RACE_FORK iterations (1000); FERRY_RACE_SECONDS and
 * the rest: stress_races.h.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_threads.h"
#include "stress_races.h"

struct fork_race {
    ferry_loop *loop;
    ferry_pool *pool;
    _Atomic int stop;
    _Atomic long submitted, task_ran;
    _Atomic long posted, post_ran;
    _Atomic long child_ran;
    _Atomic long other;
};

static struct fork_race fr; /* static: a child's _exit leaves it reachable */

#if defined(__SANITIZE_ADDRESS__)
/* GCC 12's libasan takes no allocator locks around fork (LLVM added them
 * in llvm/llvm-project#75290, 2023): a child whose parent had another
 * thread inside malloc or free at the fork blocks forever in its first
 * allocation (seen: the child's ferry_call_soon_threadsafe waiting in
 * SizeClassAllocator64::GetFromAllocator). That is the runtime's, not
 * ferry's, so under ASan the producer and the poster pause at a point
 * between two calls, and the pool drains and every worker parks (a worker
 * frees a fire-and-forget task's block after its fn) before each fork; the
 * race with threads inside ferry runs in the plain and TSan builds. */
#define FR_QUIESCE 1
#else
#define FR_QUIESCE 0
#endif
static _Atomic int fr_pause;  /* the forking thread asks the others */
static _Atomic int fr_paused; /* how many stopped between two calls */

static void fr_maybe_pause(void)
{
    if (!FR_QUIESCE || !atomic_load(&fr_pause))
        return;
    atomic_fetch_add(&fr_paused, 1);
    while (atomic_load(&fr_pause))
        sched_yield();
    atomic_fetch_sub(&fr_paused, 1);
}

/* Every worker asleep: none is inside free() (a task's block, after its
 * fn) when we fork, and none is starting or leaving: the threads the
 * kernel lists under the pool's names are the workers the pool counts and
 * its monitor, so each has finished the runtime's start-up (it names
 * itself first thing) and none is in its exit (which frees the thread's
 * runtime state). Fork 0 hung once in CI without the second check: the
 * pool's threads, started by ferry_pool_new, may still be starting then.
 * Used under ASan only, see FR_QUIESCE. */
static bool fr_pool_asleep(void)
{
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(fr.pool, &st), 0);
    return st.threads_idle == st.threads_total &&
           st.completed + st.cancelled == st.submitted &&
           count_pool_threads() == (int)st.threads_total + 1;
}

static void fr_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.task_ran, 1);
    spin(200);
}

static void fr_post(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.post_ran, 1);
}

static void fr_child_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.child_ran, 1);
}

static void *fr_producer(void *arg)
{
    (void)arg;
    while (!atomic_load(&fr.stop)) {
        fr_maybe_pause();
        int rc = ferry_pool_submit(fr.pool, fr_task, NULL, NULL, 0, NULL);
        if (rc == 0)
            atomic_fetch_add(&fr.submitted, 1);
        else
            atomic_fetch_add(&fr.other, 1);
        /* Keep the queue short: the point is tasks in flight. */
        while (atomic_load(&fr.submitted) - atomic_load(&fr.task_ran) > 64 &&
               !atomic_load(&fr.stop)) {
            fr_maybe_pause(); /* the drain may wait on us (ASan) */
            sched_yield();
        }
    }
    return NULL;
}

static void *fr_poster(void *arg)
{
    (void)arg;
    while (!atomic_load(&fr.stop)) {
        fr_maybe_pause();
        int rc = ferry_call_soon_threadsafe(fr.loop, fr_post, NULL, NULL);
        if (rc == 0)
            atomic_fetch_add(&fr.posted, 1);
        else
            atomic_fetch_add(&fr.other, 1);
        while (atomic_load(&fr.posted) - atomic_load(&fr.post_ran) > 64 &&
               !atomic_load(&fr.stop)) {
            fr_maybe_pause(); /* the loop drains only after the fork */
            sched_yield();
        }
    }
    return NULL;
}

enum { CHILD_WORK = 16 };

static int fr_child(void)
{
    int bad = 0;
    long task_ran = atomic_load(&fr.task_ran);
    long post_ran = atomic_load(&fr.post_ran);
    /* Inherited: -ECHILD everywhere until after_fork. */
    if (ferry_pool_submit(fr.pool, fr_child_task, NULL, NULL, 0, NULL) !=
        -ECHILD)
        bad |= 1;
    if (ferry_call_soon_threadsafe(fr.loop, fr_post, NULL, NULL) != -ECHILD)
        bad |= 1;
    if (ferry_loop_run_once(fr.loop, 0) != -ECHILD)
        bad |= 1;
    if (ferry_loop_after_fork(fr.loop) != 0)
        bad |= 2;
    /* The loop's own posts run once; the parent's queued ones never. */
    for (int i = 0; i < CHILD_WORK; i++)
        if (ferry_call_soon_threadsafe(fr.loop, fr_child_task, NULL, NULL))
            bad |= 4;
    for (int i = 0; i < 10 && atomic_load(&fr.child_ran) < CHILD_WORK; i++)
        ferry_loop_run_once(fr.loop, 0);
    if (atomic_load(&fr.child_ran) != CHILD_WORK)
        bad |= 4;
#if !defined(__SANITIZE_THREAD__)
    /* (TSan cannot start threads after a multithreaded fork: see
     * tests/test_pool_fork.c. The pool's rebuild runs in the other
     * builds.) */
    if (ferry_pool_after_fork(fr.pool) != 0)
        bad |= 8;
    for (int i = 0; i < CHILD_WORK; i++)
        if (ferry_pool_submit(fr.pool, fr_child_task, NULL, NULL, 0, NULL) != 0)
            bad |= 16;
    if (ferry_pool_shutdown(fr.pool, FERRY_DRAIN, -1, NULL) != 0)
        bad |= 16;
    if (atomic_load(&fr.child_ran) != 2 * CHILD_WORK)
        bad |= 16;
    if (ferry_pool_free(fr.pool) != 0)
        bad |= 32;
#endif
    /* Nothing of the parent's ran here. */
    if (atomic_load(&fr.task_ran) != task_ran ||
        atomic_load(&fr.post_ran) != post_ran)
        bad |= 64;
    if (ferry_loop_free(fr.loop) != 0)
        bad |= 32;
    return bad;
}

static long fr_failed;
static long fr_hung;

/* waitpid with a deadline: a hung child is killed and reported as such,
 * rather than hanging the test until meson's timeout. */
static int wait_child(pid_t pid, int *st)
{
    uint64_t end = ferry__now_ns() + 30000000000u;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0)
            return -errno;
        if (ferry__now_ns() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, st, 0);
            return -ETIMEDOUT;
        }
        sleep_ns(200000);
    }
}

static bool fork_one(long it)
{
    static unsigned seed = 31337;
    /* The loop runs between forks, so posts are in flight at the fork. */
    for (unsigned i = rnd(&seed) % 3; i > 0; i--)
        assert_int_equal(ferry_loop_run_once(fr.loop, 0), 0);
    spin(rnd(&seed) % 20000);
    if (FR_QUIESCE) {
        atomic_store(&fr_pause, 1);
        while (atomic_load(&fr_paused) < 2 || !fr_pool_asleep())
            sched_yield();
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fr_child());
    atomic_store(&fr_pause, 0);
    int st = 0;
    int rc = wait_child(pid, &st);
    if (rc == -ETIMEDOUT) {
        print_message("fork %ld: the child hung (killed)\n", it);
        fr_hung++;
        return false;
    }
    assert_int_equal(rc, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_message("fork %ld: child status %#x\n", it, st);
        fr_failed++;
        return false;
    }
    return true;
}

static void test_race_fork_vs_workers_and_posts(void **state)
{
    (void)state;
    memset((void *)&fr, 0, sizeof fr);
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_loop_new(&fr.loop, NULL), 0);
    assert_int_equal(ferry_pool_new(&fr.pool, &o), 0);
    pthread_t p = spawn(fr_producer, NULL), q = spawn(fr_poster, NULL);
    time_boxed("fork vs workers and a poster",
               env_long("FERRY_RACE_FORK", 1000), fork_one);
    atomic_store(&fr.stop, 1);
    pthread_join(p, NULL);
    pthread_join(q, NULL);
    assert_int_equal(fr_failed, 0);
    assert_int_equal(fr_hung, 0);
    /* In the parent everything ran exactly once. */
    assert_int_equal(ferry_pool_shutdown(fr.pool, FERRY_DRAIN, -1, NULL), 0);
    for (int i = 0;
         i < 1000 && atomic_load(&fr.post_ran) < atomic_load(&fr.posted); i++)
        assert_int_equal(ferry_loop_run_once(fr.loop, 1000000), 0);
    assert_int_equal(atomic_load(&fr.other), 0);
    assert_int_equal(atomic_load(&fr.task_ran), atomic_load(&fr.submitted));
    assert_int_equal(atomic_load(&fr.post_ran), atomic_load(&fr.posted));
    assert_int_equal(atomic_load(&fr.child_ran), 0);
    print_message("  parent: %ld tasks and %ld posts, each run once\n",
                  atomic_load(&fr.task_ran), atomic_load(&fr.post_ran));
    assert_int_equal(ferry_pool_free(fr.pool), 0);
    assert_int_equal(ferry_loop_free(fr.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_fork_vs_workers_and_posts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
