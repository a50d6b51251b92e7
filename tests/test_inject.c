/*
 * tests/test_inject.c: the injection queue (executor/inject.c) on its own:
 * a ring of task pointers, then an overflow list. Checked against a plain
 * array model: random pushes (single tasks and batches), pops of every
 * share and batch size and requeues at the front give exactly the model's
 * order, across the ring's wrap-around, its overflow into the back list
 * and that list's turn as the front while the ring fills again; the
 * `nonempty` flag and `split` follow the queue's length; the closed levels
 * refuse the right submitters. The threaded stress is stress_inject.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "executor/internal.h"

enum { NTASK = 8 * FERRY__INJECT_RING };

static struct ferry__task tasks[NTASK];

/* The model: a deque of task indices, oldest first. */
struct model {
    int v[4 * NTASK];
    int lo, hi; /* [lo, hi) */
};

static void model_push(struct model *m, int id)
{
    m->v[m->hi++] = id;
}

static void model_push_front(struct model *m, int id)
{
    assert_true(m->lo > 0);
    m->v[--m->lo] = id;
}

static int id_of(const struct ferry__task *t)
{
    return (int)(t - tasks);
}

static struct ferry__inject *new_queue(void)
{
    struct ferry__inject *q = aligned_alloc(FERRY__CACHELINE, sizeof *q);
    assert_non_null(q);
    assert_int_equal(ferry__inject_init(q), 0);
    return q;
}

/* Pop one batch and check it against the model. */
static uint64_t pop_check(struct ferry__inject *q, struct model *m,
                          uint64_t share, uint64_t max)
{
    struct ferry__task *out[64];
    bool split = true;
    uint64_t len = (uint64_t)(m->hi - m->lo);
    uint64_t want = len == 0 ? 0 : len / share + 1;
    if (want > max)
        want = max;
    if (want > len)
        want = len;
    uint64_t n = ferry__inject_pop_batch(q, share, max, out, &split);
    assert_int_equal(n, want);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(id_of(out[i]), m->v[m->lo++]);
    len -= n;
    assert_int_equal(split, n != 0 && len != 0);
    for (uint32_t i = q->rlen; i < FERRY__INJECT_RING; i++) /* free slots */
        assert_null(q->ring[(q->rhead + i) % FERRY__INJECT_RING]);
    assert_int_equal(ferry__inject_nonempty(q), len != 0);
    assert_int_equal(ferry__inject_len(q), len);
    return n;
}

static void push_check(struct ferry__inject *q, struct model *m, int *next,
                       int n)
{
    struct ferry__task *ts[64];
    bool was_empty = false;
    bool empty = m->hi == m->lo;
    for (int i = 0; i < n; i++) {
        ts[i] = &tasks[*next];
        model_push(m, (*next)++);
    }
    if (n == 1)
        assert_int_equal(ferry__inject_push(q, ts[0], false, &was_empty), 0);
    else
        assert_int_equal(
            ferry__inject_push_batch(q, ts, (uint64_t)n, false, &was_empty), 0);
    assert_int_equal(was_empty, empty);
    assert_true(ferry__inject_nonempty(q));
}

static struct model *new_model(void)
{
    struct model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->lo = m->hi = NTASK; /* room in front for requeues */
    return m;
}

static void requeue_check(struct ferry__inject *q, struct model *m, int *next)
{
    int id = (*next)++;
    ferry__inject_requeue(q, &tasks[id]);
    model_push_front(m, id);
    assert_true(ferry__inject_nonempty(q));
}

/* Fill past the ring into the list, drain in small bites, fill again: the
 * order is the push order throughout. */
static void test_inject_fifo_across_ring_and_list(void **state)
{
    (void)state;
    struct ferry__inject *q = new_queue();
    struct model *m = new_model();
    int next = 0;
    while (next < FERRY__INJECT_RING + 500)
        push_check(q, m, &next, next % 3 == 0 ? 1 : 7);
    while (m->hi - m->lo > 1000)
        pop_check(q, m, 1, 13);
    /* The overflow is not drained yet: these go behind it. */
    for (int i = 0; i < 10; i++)
        push_check(q, m, &next, 5);
    while (m->hi != m->lo)
        pop_check(q, m, 2, 32);
    assert_int_equal(pop_check(q, m, 1, 32), 0);
    /* Empty again: the ring takes pushes again, across its wrap-around. */
    for (int i = 0; i < 300; i++) {
        push_check(q, m, &next, 1 + i % 9);
        pop_check(q, m, 1, 1 + (uint64_t)(i % 5));
    }
    while (m->hi != m->lo)
        pop_check(q, m, 1, 64);
    free(m);
    free(q);
}

/* A requeued task goes to the very front, even with the ring full. */
static void test_inject_requeue_goes_first(void **state)
{
    (void)state;
    struct ferry__inject *q = new_queue();
    struct model *m = new_model();
    int next = 0;
    while (next < FERRY__INJECT_RING)
        push_check(q, m, &next, 64);
    requeue_check(q, m, &next); /* ring full: the front list */
    push_check(q, m, &next, 3); /* the back list */
    requeue_check(q, m, &next); /* in front of the first */
    pop_check(q, m, 1, 1);
    requeue_check(q, m, &next);
    while (m->hi != m->lo)
        pop_check(q, m, 3, 17);
    requeue_check(q, m, &next); /* onto an empty queue: the ring */
    pop_check(q, m, 1, 1);
    free(m);
    free(q);
}

/* Random operations against the model. */
static void test_inject_random_against_model(void **state)
{
    (void)state;
    struct ferry__inject *q = new_queue();
    struct model *m = new_model();
    srand(12345);
    int next = 0, pushes = 7;
    bool overflowed = false, recovered = false;
    while (next < NTASK - 64) {
        /* Pushes dominate until the queue overflows into the list, then
         * pops until it is nearly empty, and again. */
        int op = rand() % 10;
        if (m->hi - m->lo > FERRY__INJECT_RING + 300)
            pushes = 2;
        else if (m->hi - m->lo < 50)
            pushes = 7;
        overflowed |= q->bhead != NULL;
        /* the overflow drains from the front while the ring takes pushes */
        recovered |= q->head != NULL && q->rlen != 0;
        if (op < pushes)
            push_check(q, m, &next, 1 + rand() % 64);
        else if (op < 9)
            pop_check(q, m, 1 + (uint64_t)(rand() % 3),
                      1 + (uint64_t)(rand() % 64));
        else if (m->lo > 0)
            requeue_check(q, m, &next);
    }
    while (m->hi != m->lo)
        pop_check(q, m, 1, 64);
    assert_true(overflowed);
    assert_true(recovered);
    free(m);
    free(q);
}

/* Level 1 refuses outside submitters only, level 2 everyone; a requeue
 * (a task already accepted) is never refused. */
static void test_inject_closed_levels(void **state)
{
    (void)state;
    struct ferry__inject *q = new_queue();
    struct ferry__task *ts[2] = {&tasks[0], &tasks[1]};
    bool was_empty;
    ferry__inject_close(q, 1);
    assert_int_equal(ferry__inject_push(q, ts[0], false, &was_empty),
                     -ESHUTDOWN);
    assert_int_equal(ferry__inject_push_batch(q, ts, 2, true, &was_empty), 0);
    ferry__inject_close(q, 2);
    assert_int_equal(ferry__inject_push(q, ts[0], true, &was_empty),
                     -ESHUTDOWN);
    ferry__inject_requeue(q, &tasks[2]);
    assert_int_equal(ferry__inject_len(q), 3);
    struct ferry__task *out[4];
    bool split;
    assert_int_equal(ferry__inject_pop_batch(q, 1, 4, out, &split), 3);
    assert_ptr_equal(out[0], &tasks[2]);
    assert_ptr_equal(out[1], &tasks[0]);
    assert_ptr_equal(out[2], &tasks[1]);
    assert_false(split);
    free(q);
}

/* The workers' pop never waits: while another thread holds the lock it
 * reports nothing and leaves the queue (and its nonempty flag, which
 * keeps a parking worker awake) as they were. */
static void test_inject_try_pop_never_waits(void **state)
{
    (void)state;
    struct ferry__inject *q = new_queue();
    bool was_empty, split;
    struct ferry__task *out[4];
    assert_int_equal(ferry__inject_push(q, &tasks[0], false, &was_empty), 0);
    assert_int_equal(ferry__inject_push(q, &tasks[1], false, &was_empty), 0);
    ferry__lock(&q->lock); /* as a submitter in its section */
    split = true;
    assert_int_equal(ferry__inject_try_pop_batch(q, 1, 4, out, &split), 0);
    assert_false(split);
    assert_true(ferry__inject_nonempty(q));
    ferry__unlock(&q->lock);
    assert_int_equal(ferry__inject_try_pop_batch(q, 2, 4, out, &split), 2);
    assert_ptr_equal(out[0], &tasks[0]);
    assert_ptr_equal(out[1], &tasks[1]);
    assert_false(split);
    assert_false(ferry__inject_nonempty(q));
    assert_int_equal(ferry__inject_try_pop_batch(q, 1, 4, out, &split), 0);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inject_fifo_across_ring_and_list),
        cmocka_unit_test(test_inject_requeue_goes_first),
        cmocka_unit_test(test_inject_random_against_model),
        cmocka_unit_test(test_inject_closed_levels),
        cmocka_unit_test(test_inject_try_pop_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
