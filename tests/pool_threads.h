/*
 * tests/pool_threads.h: the pool's threads as the kernel lists them.
 *
 * The pool names its threads "<prefix>N" and "<prefix>mon" (prefix
 * "ferry-w" by default) as the first thing they do, so a thread listed
 * under that name in /proc/self/task has finished starting, including any
 * sanitizer runtime's start-up work. Fork tests wait for that: gcc 12's
 * ASan does not lock its allocator around fork, so a child forked while a
 * thread starts can inherit that lock held and deadlock.
 */
#ifndef FERRY_TESTS_POOL_THREADS_H
#define FERRY_TESTS_POOL_THREADS_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Threads of ours (named "ferry-w..." by the pool), so the helper threads
 * of sanitizer runtimes do not count. pthread_join returns once the kernel
 * has cleared the thread's tid, a moment before it leaves /proc/self/task:
 * poll, up to 2 s. */
static inline int count_pool_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue; /* gone meanwhile */
        if (fgets(comm, sizeof comm, f) != NULL &&
            strncmp(comm, "ferry-w", 7) == 0)
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

static inline bool no_pool_threads(void)
{
    for (int i = 0; i < 2000; i++) {
        if (count_pool_threads() == 0)
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* Wait until n threads of ours have started (each names itself first
 * thing), so none is still inside a sanitizer's thread start-up. */
static inline bool wait_pool_threads(int n)
{
    for (int i = 0; i < 20000; i++) {
        if (count_pool_threads() >= n)
            return true;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

#endif /* FERRY_TESTS_POOL_THREADS_H */
