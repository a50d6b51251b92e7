/*
 * tests/loop_fixture.h: the fixture shared by the loop's unit tests
 * (test_loop.c, test_loop_sched.c, test_loop_wakeup.c): a loop on a fake
 * clock with an ordered log, owned by setup and leak-checked by teardown
 * (STYLE.md point 19), and the small callbacks the tests schedule.
 */
#ifndef FERRY_TESTS_LOOP_FIXTURE_H
#define FERRY_TESTS_LOOP_FIXTURE_H

#include "helpers.h"
#include "loop/internal.h"

struct fx {
    ferry_loop *loop;
    struct fake_clock clock;
    struct log log;
};

static inline int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->clock.now = 1000000000u;
    struct ferry_loop_opts o = {.clock = fake_clock_read,
                                .clock_ctx = &fx->clock};
    if (ferry_loop_new(&fx->loop, &o) != 0)
        return -1;
    *state = fx;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(ferry_loop_free(fx->loop), 0);
    free(fx);
    return 0;
}

/* ---- callbacks ---- */

/* push_id's argument: the id to log, and where. */
struct rec {
    struct log *log;
    int id;
};

static struct rec recs[256];

static inline struct rec *rec(struct fx *fx, int id)
{
    recs[id] = (struct rec){.log = &fx->log, .id = id};
    return &recs[id];
}

static inline void push_id(void *arg)
{
    struct rec *r = arg;
    log_push(r->log, r->id);
}

static inline void stop_loop(void *arg)
{
    ferry_loop_stop(arg);
}

#endif /* FERRY_TESTS_LOOP_FIXTURE_H */
