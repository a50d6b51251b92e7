/*
 * executor/thread.c: the OS thread plumbing of the pool, kept in one file
 * because it is the only one that needs _GNU_SOURCE (sched_getaffinity,
 * CPU_COUNT, pthread_setname_np, gettid; STYLE.md point 18).
 *
 * pthread_create failures are returned, never fatal: the callers join what
 * they started and report -EAGAIN (STYLE.md point 5).
 *
 * Thread: any.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executor/internal.h"

unsigned ferry__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

int ferry__thread_spawn(ferry_pool *pool, pthread_t *out, void *(*fn)(void *),
                        void *arg)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -EAGAIN;
    int rc = 0;
    if (pool->stack_size != 0)
        rc = pthread_attr_setstacksize(&attr, pool->stack_size);
    if (rc == 0)
        rc = pthread_create(out, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -EAGAIN;
}

void ferry__thread_name(const char *prefix, const char *suffix)
{
    char name[16]; /* the kernel's limit, with the NUL */
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    (void)pthread_setname_np(pthread_self(), name);
}

size_t ferry__stack_min(void)
{
    long n = sysconf(_SC_THREAD_STACK_MIN);
    return n > 0 ? (size_t)n : (size_t)PTHREAD_STACK_MIN;
}

int ferry__mutex_init_adaptive(pthread_mutex_t *m)
{
    /* glibc's adaptive mutex spins a little before sleeping in the kernel:
     * the injection queue's critical sections are a few instructions, so
     * a contended lock is usually free again within the spin. */
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    if (rc == 0)
        rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

int ferry__gettid(void)
{
    return (int)syscall(SYS_gettid);
}

/* The /proc read below holds a descriptor for a few microseconds. A fork
 * in that window would leave the child a descriptor nothing closes
 * (O_CLOEXEC only helps an exec), so fork waits for the read: the prepare
 * handler takes this lock, and both sides release it after the fork (in
 * the child the forking thread, which holds it, is the one that runs). */
static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t proc_once = PTHREAD_ONCE_INIT;

static void proc_prepare(void)
{
    pthread_mutex_lock(&proc_lock);
}

static void proc_release(void)
{
    pthread_mutex_unlock(&proc_lock);
}

static void proc_setup(void)
{
    /* Fails only on memory exhaustion; the window stays as narrow. */
    (void)pthread_atfork(proc_prepare, proc_release, proc_release);
}

static ssize_t read_task_stat(int tid, char *buf, size_t size)
{
    char path[48];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    pthread_once(&proc_once, proc_setup);
    pthread_mutex_lock(&proc_lock);
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, size - 1);
        close(fd);
    }
    pthread_mutex_unlock(&proc_lock);
    return n;
}

bool ferry__thread_on_cpu(int tid)
{
    /* /proc/self/task/TID/stat: "tid (comm) S ...", the state letter after
     * the last ')' (comm may hold anything). open/read, not stdio: no
     * allocation on the monitor's thread. errno is left as it was. */
    char buf[256];
    int saved = errno;
    ssize_t n = read_task_stat(tid, buf, sizeof buf);
    errno = saved;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'R';
}
