/*
 * tests/stress_deque.c: the Chase-Lev deque under one owner and several
 * thieves. Every id pushed is taken exactly once, by the owner's take or a
 * thief's steal, with growth forced from a 2-slot array.
 *
 * Environment: FERRY_STRESS_ITEMS (default 10^6 ids), FERRY_STRESS_THREADS
 * (default 2 thieves; the machine may have only 2 CPUs). Elements are fake
 * pointers (id + 1) << 4: the deque never dereferences them.
 *
 * Thieves record into an array of atomic counters; the test thread asserts
 * after joining them (STYLE.md point 20).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "executor/deque.h"

static unsigned env_or(const char *name, unsigned def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    unsigned long v = strtoul(s, NULL, 10);
    return v > 0 ? (unsigned)v : def;
}

static struct ferry__task *elem(uint64_t id)
{
    return (struct ferry__task *)(uintptr_t)((id + 1) << 4);
}

static uint64_t id_of(struct ferry__task *t)
{
    return ((uintptr_t)t >> 4) - 1;
}

struct shared {
    struct ferry__deque q;
    uint64_t items;
    _Atomic unsigned char *seen; /* times each id was taken */
    _Atomic uint64_t taken;
    _Atomic uint64_t stolen; /* of those, by thieves */
    _Atomic int owner_done;
    _Atomic uint64_t bad; /* ids out of range */
};

static void record(struct shared *s, struct ferry__task *t)
{
    if (t == NULL || id_of(t) >= s->items) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    atomic_fetch_add_explicit(&s->seen[id_of(t)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->taken, 1, memory_order_relaxed);
}

static void *thief(void *arg)
{
    struct shared *s = arg;
    for (;;) {
        struct ferry__task *t;
        enum ferry__steal r = ferry__deque_steal(&s->q, &t);
        if (r == FERRY__STEAL_OK) {
            record(s, t);
            atomic_fetch_add_explicit(&s->stolen, 1, memory_order_relaxed);
        } else if (r == FERRY__STEAL_EMPTY) {
            if (atomic_load(&s->owner_done) &&
                atomic_load(&s->taken) == s->items)
                return NULL;
            ferry__cpu_relax();
        }
    }
}

/* The owner pushes in bursts and takes some back, so take races steal at
 * the last element, and growth happens while thieves read old arrays. */
static void *owner(void *arg)
{
    struct shared *s = arg;
    uint64_t next = 0;
    unsigned rng = 1;
    while (next < s->items) {
        rng = rng * 1103515245u + 12345u;
        unsigned burst = 1 + (rng >> 16) % 64;
        for (unsigned i = 0; i < burst && next < s->items; i++) {
            if (ferry__deque_push(&s->q, elem(next)) != 0)
                atomic_fetch_add(&s->bad, 1);
            next++;
        }
        unsigned takes = (rng >> 8) % (burst + 1);
        for (unsigned i = 0; i < takes; i++) {
            struct ferry__task *t = ferry__deque_take(&s->q);
            if (t != NULL)
                record(s, t);
        }
    }
    struct ferry__task *t;
    while ((t = ferry__deque_take(&s->q)) != NULL)
        record(s, t);
    atomic_store(&s->owner_done, 1);
    return NULL;
}

static void test_deque_empty_take_and_steal(void **state)
{
    (void)state;
    struct ferry__deque q;
    assert_int_equal(ferry__deque_init(&q, 1), 0);
    /* bottom == 0: take computes b = -1, which must not underflow. */
    assert_null(ferry__deque_take(&q));
    assert_null(ferry__deque_take(&q));
    struct ferry__task *t = NULL;
    assert_int_equal(ferry__deque_steal(&q, &t), FERRY__STEAL_EMPTY);
    assert_int_equal(ferry__deque_len(&q), 0);
    /* LIFO for the owner, FIFO for thieves, through growth 2 -> 8. */
    for (uint64_t i = 0; i < 7; i++)
        assert_int_equal(ferry__deque_push(&q, elem(i)), 0);
    assert_int_equal(ferry__deque_len(&q), 7);
    assert_int_equal(ferry__deque_steal(&q, &t), FERRY__STEAL_OK);
    assert_int_equal(id_of(t), 0);
    assert_int_equal(id_of(ferry__deque_take(&q)), 6);
    ferry__deque_discard(&q);
    assert_null(ferry__deque_take(&q));
    ferry__deque_term(&q);
}

static void test_deque_owner_and_thieves_exactly_once(void **state)
{
    (void)state;
    struct shared s;
    s.items = env_or("FERRY_STRESS_ITEMS", 1000000);
    unsigned thieves = env_or("FERRY_STRESS_THREADS", 2);
    s.seen = calloc(s.items, 1);
    assert_non_null(s.seen);
    atomic_init(&s.taken, 0);
    atomic_init(&s.stolen, 0);
    atomic_init(&s.owner_done, 0);
    atomic_init(&s.bad, 0);
    assert_int_equal(ferry__deque_init(&s.q, 1), 0); /* 2 slots: grow */

    pthread_t *th = calloc(thieves + 1, sizeof *th);
    assert_non_null(th);
    for (unsigned i = 0; i < thieves; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thief, &s), 0);
    assert_int_equal(pthread_create(&th[thieves], NULL, owner, &s), 0);
    for (unsigned i = 0; i <= thieves; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&s.taken), s.items);
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < s.items; i++)
        wrong += atomic_load(&s.seen[i]) != 1;
    assert_int_equal(wrong, 0);
    /* It did grow: 2 slots could never hold a burst of 64. */
    assert_true(atomic_load(&s.q.array)->cap > 2);
    print_message("%llu ids: %llu stolen by %u thieves, the rest taken by "
                  "the owner; final capacity %lld\n",
                  (unsigned long long)s.items,
                  (unsigned long long)atomic_load(&s.stolen), thieves,
                  (long long)atomic_load(&s.q.array)->cap);
    assert_true(atomic_load(&s.stolen) > 0);
    ferry__deque_term(&s.q);
    free(th);
    free((void *)s.seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deque_empty_take_and_steal),
        cmocka_unit_test(test_deque_owner_and_thieves_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
