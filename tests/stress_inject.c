/*
 * tests/stress_inject.c: the injection queue (executor/inject.c) under
 * concurrent producers and consumers. Producers push batches of random
 * sizes (1 to 64, as a loop's deferred offloads): with one consumer far
 * past the ring's size, with two kept around it, so the queue moves
 * between its ring and its overflow lists while pops take from both.
 *   - one consumer: every task comes out exactly once;
 *   - two consumers that requeue some of what they pop: every task comes
 *     out exactly once more than it was requeued, and the counts balance.
 * Either way each consumer sees each producer's tasks (first pops only)
 * in push order: a pop takes the oldest tasks, ring before list.
 *
 * Environment: FERRY_STRESS_ITEMS (default 200000 tasks per producer).
 * Threads record into atomics; the test thread asserts after joining
 * them (STYLE.md point 20).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "executor/internal.h"

enum { PRODUCERS = 2, BATCH = 64 };

struct item {
    struct ferry__task t; /* first: the queue sees only this */
    unsigned producer;
    uint64_t seq; /* push order within its producer */
    _Atomic uint32_t popped;
    _Atomic uint32_t requeued;
};

struct shared {
    struct ferry__inject *q;
    struct item *items;
    uint64_t per_producer;
    bool requeue;  /* consumers requeue every 97th task they pop, once */
    bool throttle; /* producers keep the queue near the ring's size */
    _Atomic unsigned producers_done;
    _Atomic uint64_t out;      /* pops, requeued ones counted again */
    _Atomic uint64_t requeues; /* requeue calls */
    _Atomic uint64_t disorder; /* a producer's tasks out of order */
    _Atomic uint64_t refused;  /* pushes refused (the queue is open) */
};

struct producer {
    struct shared *s;
    unsigned index;
};

static uint64_t items_per_producer(void)
{
    const char *e = getenv("FERRY_STRESS_ITEMS");
    unsigned long v = e != NULL ? strtoul(e, NULL, 10) : 0;
    return v > 0 ? v : 200000;
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    struct shared *s = p->s;
    struct item *mine = s->items + (uint64_t)p->index * s->per_producer;
    uint64_t rng = 88172645463325252ull + p->index;
    struct ferry__task *ts[BATCH];
    for (uint64_t i = 0; i < s->per_producer;) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint64_t n = 1 + rng % BATCH;
        if (n > s->per_producer - i)
            n = s->per_producer - i;
        for (uint64_t k = 0; k < n; k++)
            ts[k] = &mine[i + k].t;
        while (s->throttle &&
               ferry__inject_len(s->q) > FERRY__INJECT_RING + BATCH)
            sched_yield();
        bool was_empty;
        if (ferry__inject_push_batch(s->q, ts, n, false, &was_empty) != 0)
            atomic_fetch_add(&s->refused, 1);
        i += n;
    }
    atomic_fetch_add(&s->producers_done, 1);
    return NULL;
}

static void *consume(void *arg)
{
    struct shared *s = arg;
    uint64_t last[PRODUCERS] = {0};
    bool any[PRODUCERS] = {false};
    struct ferry__task *out[32];
    for (unsigned iter = 0;; iter++) {
        bool done = atomic_load(&s->producers_done) == PRODUCERS;
        bool split;
        /* Every other pop is the workers' try, which gives up when the
         * lock is held: a failed try must lose nothing either. */
        uint64_t n = iter % 2
                         ? ferry__inject_try_pop_batch(s->q, 2, 32, out, &split)
                         : ferry__inject_pop_batch(s->q, 2, 32, out, &split);
        if (n == 0) {
            if (done && ferry__inject_len(s->q) == 0)
                return NULL;
            sched_yield();
            continue;
        }
        for (uint64_t i = 0; i < n; i++) {
            struct item *it = (struct item *)out[i];
            atomic_fetch_add_explicit(&s->out, 1, memory_order_relaxed);
            uint32_t seen = atomic_fetch_add(&it->popped, 1);
            if (seen != 0)
                continue; /* a requeued task, out of order by design */
            unsigned p = it->producer;
            if (any[p] && it->seq <= last[p])
                atomic_fetch_add(&s->disorder, 1);
            last[p] = it->seq;
            any[p] = true;
            if (s->requeue && it->seq % 97 == 0) {
                atomic_fetch_add(&it->requeued, 1);
                atomic_fetch_add(&s->requeues, 1);
                ferry__inject_requeue(s->q, &it->t);
            }
        }
    }
}

static void run(unsigned consumers, bool requeue)
{
    /* One consumer: a backlog far past the ring, drained through the
     * lists. Two: the queue's length hovers around the ring's size, so
     * pushes and pops move between the ring and the lists all along. */
    struct shared s = {.per_producer = items_per_producer(),
                       .requeue = requeue,
                       .throttle = consumers > 1};
    uint64_t total = PRODUCERS * s.per_producer;
    s.q = aligned_alloc(FERRY__CACHELINE, sizeof *s.q);
    assert_non_null(s.q);
    assert_int_equal(ferry__inject_init(s.q), 0);
    s.items = calloc(total, sizeof *s.items);
    assert_non_null(s.items);
    for (uint64_t i = 0; i < total; i++) {
        s.items[i].producer = (unsigned)(i / s.per_producer);
        s.items[i].seq = i % s.per_producer;
    }
    pthread_t prod[PRODUCERS], cons[2];
    struct producer pa[PRODUCERS];
    for (unsigned i = 0; i < consumers; i++)
        assert_int_equal(pthread_create(&cons[i], NULL, consume, &s), 0);
    for (unsigned i = 0; i < PRODUCERS; i++) {
        pa[i] = (struct producer){&s, i};
        assert_int_equal(pthread_create(&prod[i], NULL, produce, &pa[i]), 0);
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    for (unsigned i = 0; i < consumers; i++)
        pthread_join(cons[i], NULL);

    assert_int_equal(atomic_load(&s.refused), 0);
    assert_int_equal(atomic_load(&s.disorder), 0);
    assert_int_equal(atomic_load(&s.out), total + atomic_load(&s.requeues));
    for (uint64_t i = 0; i < total; i++)
        assert_int_equal(atomic_load(&s.items[i].popped),
                         1 + atomic_load(&s.items[i].requeued));
    assert_int_equal(ferry__inject_len(s.q), 0);
    assert_false(ferry__inject_nonempty(s.q));
    if (requeue)
        assert_true(atomic_load(&s.requeues) > 0);
    free(s.items);
    free(s.q);
}

static void test_inject_stress_one_consumer_fifo(void **state)
{
    (void)state;
    run(1, false);
}

static void test_inject_stress_two_consumers_requeue(void **state)
{
    (void)state;
    run(2, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inject_stress_one_consumer_fifo),
        cmocka_unit_test(test_inject_stress_two_consumers_requeue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
