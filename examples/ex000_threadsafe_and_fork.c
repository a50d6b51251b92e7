/*
 * examples/ex000_threadsafe_and_fork.c: seed 000 in C.
 *
 * Part 1: a loop runs in another thread. call_soon from this thread is
 * refused (-EPERM: asyncio silently drops it, ferry says so), while
 * call_soon_threadsafe wakes the loop and runs "task" on its thread.
 * Part 2: a process forks from inside a running loop's callback; the child
 * does not see its parent's running loop and runs a loop of its own
 * (asyncio 3.5 raised "Cannot run the event loop while another loop is
 * running" here).
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ferry.h>

static ferry_loop *loop;
static pthread_t loop_thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void task(void *arg)
{
    printf("task (on the loop's thread: %s)\n",
           pthread_equal(pthread_self(), loop_thread) ? "yes" : "no");
    ferry_loop_stop(arg);
}

static void *run_loop_inside_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    ferry_loop_new(&loop, NULL); /* the loop belongs to this thread */
    /* main posts from its own thread, so it holds a reference: the loop's
     * memory must outlive every thread-safe call (see ferry/loop.h). */
    ferry_loop_ref(loop);
    loop_thread = pthread_self();
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    ferry_loop_run_forever(loop);
    ferry_loop_free(loop);
    return NULL;
}

static void child_task(void *arg)
{
    printf("child: own loop ran\n");
    ferry_loop_stop(arg);
}

static void coro(void *arg)
{
    (void)arg;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child: running loop is %s\n",
               ferry_loop_running() ? "the parent's" : "NULL");
        ferry_loop *cloop;
        if (ferry_loop_new(&cloop, NULL) != 0)
            _exit(1);
        ferry_call_soon(cloop, child_task, cloop, NULL, NULL);
        int rc = ferry_loop_run_forever(cloop);
        ferry_loop_free(cloop);
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("parent: child exited with %d\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void stop_cb(void *arg)
{
    ferry_loop_stop(arg);
}

int main(void)
{
    pthread_t t;
    pthread_mutex_lock(&mu);
    pthread_create(&t, NULL, run_loop_inside_thread, NULL);
    while (loop == NULL)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    int rc = ferry_call_soon(loop, task, loop, NULL, NULL);
    printf("call_soon from another thread: %s\n", ferry_strerror(rc));
    rc = ferry_call_soon_threadsafe(loop, task, loop, NULL);
    pthread_join(t, NULL); /* task ran on the loop's thread meanwhile */
    printf("call_soon_threadsafe: %s\n", ferry_strerror(rc));
    ferry_loop_unref(loop);

    ferry_loop *main_loop;
    ferry_loop_new(&main_loop, NULL);
    ferry_call_soon(main_loop, coro, main_loop, NULL, NULL);
    ferry_call_soon(main_loop, stop_cb, main_loop, NULL, NULL);
    ferry_loop_run_forever(main_loop);
    return ferry_loop_free(main_loop) == 0 ? 0 : 1;
}
