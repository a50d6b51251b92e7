/*
 * executor/deque.h: the Chase-Lev work-stealing deque (see deque.c).
 *
 * One owner thread pushes and takes at the bottom (LIFO); any thread steals
 * at the top (FIFO). Elements are task pointers. Ownership may move from
 * one thread to another only through a happens-before edge (a lock).
 */
#ifndef FERRY_EXECUTOR_DEQUE_H
#define FERRY_EXECUTOR_DEQUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/base.h"
#include "executor/fence.h"

struct ferry__task;

/* A circular array of 2^k slots; index i lives in slot[i & (cap - 1)]. */
struct ferry__deque_array {
    int64_t cap;                          /* a power of two */
    struct ferry__deque_array *retired;   /* owner only: older arrays */
    _Atomic(struct ferry__task *) slot[]; /* relaxed: see deque.c */
};

struct ferry__deque {
    /* Thieves CAS top; it must not share a line with the owner's bottom. */
    alignas(FERRY__CACHELINE) _Atomic int64_t top;
    /* Written by the owner on every push and take. */
    alignas(FERRY__CACHELINE) _Atomic int64_t bottom;
    /* Read by every steal, written only on growth: its own line. */
    alignas(FERRY__CACHELINE) _Atomic(struct ferry__deque_array *) array;
};

enum ferry__steal {
    FERRY__STEAL_OK,    /* *out holds a task */
    FERRY__STEAL_EMPTY, /* nothing to steal */
    FERRY__STEAL_RETRY, /* lost a race: there was work, try again */
};

/* Returns 0 or -ENOMEM. Capacity starts at 2^log2_cap (log2_cap >= 1). */
int ferry__deque_init(struct ferry__deque *q, unsigned log2_cap);
/* Frees the array and every retired array. No thread may use q. */
void ferry__deque_term(struct ferry__deque *q);
/* Owner only. Returns 0, or -ENOMEM when a full deque could not grow (t
 * was not pushed: the caller queues it elsewhere). */
int ferry__deque_push(struct ferry__deque *q, struct ferry__task *t);
/* Owner only. The newest task, or NULL when empty. */
struct ferry__task *ferry__deque_take(struct ferry__deque *q);
/* Any thread. The oldest task. */
enum ferry__steal ferry__deque_steal(struct ferry__deque *q,
                                     struct ferry__task **out);
/* Any thread: how many tasks are queued, an estimate (never negative). */
int64_t ferry__deque_len(struct ferry__deque *q);
/* Single-threaded (after fork): forget every queued task. */
void ferry__deque_discard(struct ferry__deque *q);

#endif /* FERRY_EXECUTOR_DEQUE_H */
