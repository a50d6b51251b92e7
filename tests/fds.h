/*
 * tests/fds.h: the count of descriptors a test program can leak, shared by
 * the soak (tests/soak.c) and the fuzzer's oracle (tests/fuzz/).
 *
 * Counted: anonymous inodes (each loop's epoll and eventfd) and sockets
 * (the tests' socketpairs). Left out: files and pipes. The sanitizers'
 * symbolizer opens the binary and two pipes whenever it first runs, and
 * the pool's monitor reads /proc/self/task/TID/stat through a descriptor
 * it closes at once; neither is a leak, and counting them made the checks
 * flaky.
 */
#ifndef FERRY_TESTS_FDS_H
#define FERRY_TESTS_FDS_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Returns the count, or -1 if /proc/self/fd cannot be read. */
static inline int count_leakable_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        target[len > 0 ? len : 0] = '\0';
        if (strncmp(target, "anon_inode:", 11) == 0 ||
            strncmp(target, "socket:", 7) == 0)
            n++;
    }
    closedir(d);
    return n;
}

#endif /* FERRY_TESTS_FDS_H */
