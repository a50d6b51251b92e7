/*
 * tests/stress_bridge.c: the bridge under many threads (issue 4).
 *
 * 1. Offloads with random cancels: FERRY_STRESS_LOOPS (2) loops on their
 *    own threads each submit FERRY_STRESS_OFFLOADS (100000) offloads to one
 *    shared pool, cancelling about one in four at a random moment, while
 *    2 more threads submit free-standing futures (ferry_pool_submit_future)
 *    and cancel or wait on them. Every future resolves exactly once (done
 *    callback or wait), and every result a function produced reaches its
 *    destructor exactly once (late results after a cancel included).
 * 2. A loop closed while offloads are in flight: nothing runs on it after,
 *    every result is still freed, nothing touches freed memory.
 * 3. Adapter abuse: FERRY_STRESS_PROMISES (100000) promises completed from
 *    random threads, some twice, some after a cancel, some inside the
 *    initiating call, some never (bounded by ferry_future_timeout). Every
 *    outcome is counted; values are freed exactly once.
 *
 * Workers and helper threads count into atomics; the test thread asserts.
 */
#include <string.h>

#include "helpers.h"

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static _Atomic long ran;       /* work functions that produced a result */
static _Atomic long freed;     /* results that reached their destructor */
static _Atomic long resolved;  /* done callbacks / successful waits */
static _Atomic long cancelled; /* futures that ended cancelled */

static void free_result(void *p)
{
    atomic_fetch_add(&freed, 1);
    free(p);
}

static int produce(void *arg, void **result)
{
    unsigned spins = (unsigned)(uintptr_t)arg & 255u;
    for (volatile unsigned i = 0; i < spins * 4; i++)
        ;
    *result = malloc(8);
    atomic_fetch_add(&ran, 1);
    return 0;
}

static unsigned rnd(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* ---- 1. loops offloading, with random cancels ---- */

struct side {
    ferry_loop *loop;
    ferry_pool *pool;
    long total, submitted, done;
    unsigned seed;
    int err;
};

static void offload_done(ferry_future *f, void *arg);

static void submit_one(struct side *s)
{
    ferry_future *f;
    int rc = ferry_run_in_executor(s->loop, s->pool, produce,
                                   (void *)(uintptr_t)rnd(&s->seed),
                                   free_result, &f);
    if (rc < 0) {
        s->err = rc;
        ferry_loop_stop(s->loop);
        return;
    }
    s->submitted++;
    ferry_future_add_done_callback(f, offload_done, s, NULL);
    unsigned r = rnd(&s->seed) & 7u;
    if (r == 0)
        ferry_future_cancel(f); /* at once: usually before it starts */
    else if (r == 1)
        ferry_future_timeout(f, 1000); /* 1 us: may land while running */
    ferry_future_unref(f);
}

static void offload_done(ferry_future *f, void *arg)
{
    struct side *s = arg;
    atomic_fetch_add(&resolved, 1);
    if (ferry_future_cancelled(f) || ferry_future_result(f, NULL) < 0)
        atomic_fetch_add(&cancelled, 1);
    s->done++;
    if (s->submitted < s->total)
        submit_one(s);
    else if (s->done == s->total)
        ferry_loop_stop(s->loop);
}

static void *loop_side(void *arg)
{
    struct side *s = arg;
    if ((s->err = ferry_loop_new(&s->loop, NULL)) != 0)
        return NULL;
    for (int i = 0; i < 64 && s->submitted < s->total; i++)
        submit_one(s);
    int rc = ferry_loop_run_forever(s->loop);
    if (rc < 0 && s->err == 0)
        s->err = rc;
    /* Late results posted after the last done callback: drain them. */
    int64_t t;
    while (ferry_loop_timeout(s->loop, &t) == 0 && t == 0)
        ferry_loop_run_once(s->loop, 0);
    ferry_loop_free(s->loop);
    return NULL;
}

static void *free_standing_side(void *arg)
{
    struct side *s = arg;
    for (long i = 0; i < s->total; i++) {
        ferry_future *f;
        int rc = ferry_pool_submit_future(s->pool, produce,
                                          (void *)(uintptr_t)rnd(&s->seed),
                                          free_result, &f);
        if (rc < 0) {
            s->err = rc;
            return NULL;
        }
        if ((rnd(&s->seed) & 3u) == 0)
            ferry_future_cancel(f);
        if (ferry_future_wait(f, -1) == 0)
            atomic_fetch_add(&resolved, 1);
        if (ferry_future_cancelled(f))
            atomic_fetch_add(&cancelled, 1);
        ferry_future_unref(f);
        s->done++;
    }
    return NULL;
}

static void test_stress_offloads_with_cancels(void **state)
{
    (void)state;
    long per = env_long("FERRY_STRESS_OFFLOADS", 100000);
    int loops = (int)env_long("FERRY_STRESS_LOOPS", 2);
    ferry_pool *pool;
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    atomic_store(&ran, 0);
    atomic_store(&freed, 0);
    atomic_store(&resolved, 0);
    atomic_store(&cancelled, 0);
    struct side s[8];
    pthread_t t[8];
    int n = loops + 2;
    assert_true(loops >= 1 && n <= 8);
    for (int i = 0; i < n; i++) {
        s[i] = (struct side){.pool = pool,
                             .total = i < loops ? per : per / 4,
                             .seed = 0x9e3779b9u * (unsigned)(i + 1)};
        t[i] = spawn(i < loops ? loop_side : free_standing_side, &s[i]);
    }
    long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].err, 0);
        assert_int_equal(s[i].done, s[i].total);
        total += s[i].total;
    }
    assert_int_equal(ferry_pool_free(pool), 0);      /* every task finished */
    assert_int_equal(atomic_load(&resolved), total); /* each exactly once */
    assert_int_equal(atomic_load(&freed), atomic_load(&ran));
    assert_true(atomic_load(&ran) <= total);
    print_message("offloads %ld: ran %ld, cancelled or timed out %ld, "
                  "results freed %ld\n",
                  total, atomic_load(&ran), atomic_load(&cancelled),
                  atomic_load(&freed));
}

/* ---- 2. a loop closed with offloads in flight ---- */

static int slow_produce(void *arg, void **result)
{
    (void)arg;
    sleep_ns(200000);
    *result = malloc(8);
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void never_runs(ferry_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((_Atomic long *)arg, 1);
}

static void test_stress_close_with_offloads_in_flight(void **state)
{
    (void)state;
    long rounds = env_long("FERRY_STRESS_ROUNDS", 50);
    ferry_pool *pool;
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    atomic_store(&ran, 0);
    atomic_store(&freed, 0);
    _Atomic long after_close = 0;
    for (long r = 0; r < rounds; r++) {
        ferry_loop *loop;
        assert_int_equal(ferry_loop_new(&loop, NULL), 0);
        for (int i = 0; i < 32; i++) {
            ferry_future *f;
            assert_int_equal(ferry_run_in_executor(loop, pool, slow_produce,
                                                   NULL, free_result, &f),
                             0);
            ferry_future_add_done_callback(f, never_runs, (void *)&after_close,
                                           NULL);
            ferry_future_unref(f);
        }
        for (long i = 0; i < r % 3; i++)
            ferry_loop_run_once(loop, 100000);
        assert_int_equal(ferry_loop_free(loop), 0); /* jobs keep its memory */
    }
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&freed), atomic_load(&ran));
    print_message("rounds %ld: %ld offloads ran, %ld callbacks ran before "
                  "their loop closed, all results freed\n",
                  rounds, atomic_load(&ran), atomic_load(&after_close));
}

/* ---- 3. adapter abuse ---- */

static _Atomic long values_made, values_freed;
static _Atomic long completions_ok, completions_late;

static void free_value(void *p)
{
    atomic_fetch_add(&values_freed, 1);
    free(p);
}

static void *new_value(void)
{
    atomic_fetch_add(&values_made, 1);
    return malloc(4);
}

struct abuse {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ferry_promise *queue[256];
    unsigned head, tail;
    bool quit;
};

static void complete_one(ferry_promise *p, unsigned r)
{
    int rc = (r & 1) ? ferry_promise_resolve(p, new_value())
                     : ferry_promise_reject(p, -EIO);
    atomic_fetch_add(rc == 0 ? &completions_ok : &completions_late, 1);
    if ((r & 6) == 0) { /* some twice */
        rc = ferry_promise_resolve(p, new_value());
        atomic_fetch_add(rc == 0 ? &completions_ok : &completions_late, 1);
    }
    ferry_promise_unref(p);
}

static void *abuser(void *arg)
{
    struct abuse *a = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self() | 1u;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->head == a->tail && !a->quit)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->head == a->tail)
            break;
        ferry_promise *p = a->queue[a->head++ % 256];
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        complete_one(p, rnd(&seed));
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void hand_over(struct abuse *a, ferry_promise *p)
{
    pthread_mutex_lock(&a->mu);
    while (a->tail - a->head == 256)
        pthread_cond_wait(&a->cv, &a->mu);
    a->queue[a->tail++ % 256] = p;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void count_outcome(ferry_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((_Atomic long *)arg, 1);
}

static void test_stress_promise_abuse(void **state)
{
    (void)state;
    long n = env_long("FERRY_STRESS_PROMISES", 100000);
    ferry_loop *loop;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    struct abuse a = {.mu = PTHREAD_MUTEX_INITIALIZER,
                      .cv = PTHREAD_COND_INITIALIZER};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn(abuser, &a);
    _Atomic long outcomes = 0;
    long never = 0;
    unsigned seed = 12345;
    for (long i = 0; i < n; i++) {
        ferry_promise *p;
        ferry_future *f;
        assert_int_equal(ferry_promise_new(loop, free_value, &p, &f), 0);
        ferry_future_add_done_callback(f, count_outcome, (void *)&outcomes,
                                       NULL);
        unsigned r = rnd(&seed) % 8;
        if (r == 0) { /* inside the initiating call */
            complete_one(p, rnd(&seed));
        } else if (r == 1) { /* never: bounded by a timeout */
            ferry_future_timeout(f, 1000);
            ferry_promise_unref(p);
            never++;
        } else {
            if (r == 2)
                ferry_future_cancel(f); /* the consumer gave up first */
            hand_over(&a, p);
        }
        ferry_future_unref(f);
        if ((i & 255) == 0)
            ferry_loop_run_once(loop, 0);
    }
    pthread_mutex_lock(&a.mu);
    a.quit = true;
    pthread_cond_broadcast(&a.cv);
    pthread_mutex_unlock(&a.mu);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    while (atomic_load(&outcomes) < n)
        ferry_loop_run_once(loop, 1000000);
    assert_int_equal(ferry_loop_free(loop), 0);
    assert_int_equal(atomic_load(&outcomes), n); /* each exactly once */
    assert_int_equal(atomic_load(&values_freed), atomic_load(&values_made));
    print_message("promises %ld: completions accepted %ld, refused %ld "
                  "(-EALREADY), never completed %ld, values freed %ld/%ld\n",
                  n, atomic_load(&completions_ok),
                  atomic_load(&completions_late), never,
                  atomic_load(&values_freed), atomic_load(&values_made));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_offloads_with_cancels),
        cmocka_unit_test(test_stress_close_with_offloads_in_flight),
        cmocka_unit_test(test_stress_promise_abuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
