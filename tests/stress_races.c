/*
 * tests/stress_races.c: the races that broke the peers (issue 6 section
 * 4), each run for many iterations, each iteration counting every item.
 *
 *   close   ferry_loop_close, ferry_loop_free and ferry_loop_stop racing
 *           ferry_call_soon_threadsafe from 4 threads that hold loop
 *           references (libuv #2226, #4922): the owner closes, or frees,
 *           at a random point after a random number of iterations, or runs
 *           run_forever while a fifth thread keeps calling ferry_loop_stop
 *           and closes under it. Every post returns 0 (then it ran or was
 *           disposed, once) or -ESHUTDOWN; every stop 0 or -ESHUTDOWN.
 *   pool    ferry_pool_shutdown, FERRY_DRAIN and FERRY_CANCEL_PENDING in
 *           turn, at a random point while two threads submit (tasks also
 *           submit nested tasks) and a third cancels random tasks: every
 *           task ran (status 0, its fn counted once), was cancelled
 *           (-ECANCELED, fn never ran; a cancel that returned 0 always
 *           means this), or was refused (-ESHUTDOWN). In drain mode only
 *           the cancels drop tasks.
 *   promise promises resolved by three threads at once while their loop
 *           closes (or is freed) at a random point: exactly one resolve
 *           wins per promise, each future ends resolved with the winner's
 *           value, every value is disposed exactly once, every done
 *           callback runs or is disposed once.
 *   wait    ferry_future_wait with a short timeout while another thread
 *           completes the future (free-standing or bound to a loop): 0
 *           means done with the result readable; -ETIMEDOUT means the
 *           result is readable once the completer is done.
 *   fork    fork() while pool workers run tasks and another thread posts
 *           to the loop: in the child every call on the inherited objects
 *           answers -ECHILD, after_fork rebuilds both, the child's own
 *           work runs once and none of the parent's runs there; in the
 *           parent every task and post runs exactly once. The child
 *           reports through its exit status (a bit per failed check).
 *
 * Counts come from the environment: FERRY_RACE_CLOSE (10000), _POOL
 * (2000), _PROMISE (10000), _WAIT (4000), _FORK (1000) iterations,
 * FERRY_RACE_POSTS (500 per poster and close iteration) and
 * FERRY_RACE_SECONDS (a time box per race, 60; a race that runs out of
 * time stops early and says so). The iteration counts are printed. Helper
 * threads count into atomics; only the test thread asserts (STYLE.md point 20).
 */
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/base.h"
#include "helpers.h"

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static uint64_t seconds_ns(void)
{
    return (uint64_t)env_long("FERRY_RACE_SECONDS", 60) * 1000000000u;
}

/* xorshift32, one state per thread */
static unsigned rnd(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

/* Where to strike: after a random delay, or (every other time) once the
 * other threads have made a random amount of progress (*done, out of
 * span), so that slow thread starts under the sanitizers do not make
 * every strike land before the race began. */
static void race_point(unsigned *seed, _Atomic long *done, long span)
{
    if (rnd(seed) % 2 == 0) {
        spin(rnd(seed) % 20000);
        return;
    }
    long target = (long)(rnd(seed) % (unsigned)span);
    uint64_t end = ferry__now_ns() + 2000000000u;
    while (atomic_load(done) < target && ferry__now_ns() < end)
        sched_yield();
}

/* Run a race until `want` iterations or the time box; print and check. */
static long time_boxed(const char *name, long want, bool (*one)(long i))
{
    uint64_t box = seconds_ns(), t0 = ferry__now_ns();
    long i;
    for (i = 0; i < want && ferry__now_ns() - t0 < box; i++)
        if (!one(i))
            break;
    print_message("%s: %ld iterations in %.1f s%s\n", name, i,
                  (double)(ferry__now_ns() - t0) / 1e9,
                  i < want ? " (time box)" : "");
    assert_true(i > 0);
    return i;
}

/* ---- close, free and stop racing threadsafe posts ---- */

enum { POSTERS = 4 };
static long posts_max; /* per poster and iteration: FERRY_RACE_POSTS */

/* The posters and the stopper live across iterations (thread starts are
 * the slow part under TSan): each iteration bumps `gen`, and each thread
 * reports in `finished` when it is done with that iteration's loop. */
struct close_race {
    ferry_loop *loop;
    int mode;              /* 0 close, 1 free, 2 stop + close */
    _Atomic int stop_done; /* the stopper may finish the iteration */
    _Atomic long accepted, refused, ran, disposed, other;
    _Atomic long stops, stops_refused, stops_other;
};

static struct close_race cr;
static _Atomic long cr_gen;     /* iteration number, published last */
static _Atomic int cr_finished; /* threads done with this iteration */
static _Atomic int cr_quit;

static void cr_ran(void *arg)
{
    atomic_fetch_add(&((struct close_race *)arg)->ran, 1);
}

static void cr_disposed(void *arg)
{
    atomic_fetch_add(&((struct close_race *)arg)->disposed, 1);
}

/* Wait for the next iteration; false: quit. */
static bool cr_next(long *seen)
{
    long g;
    while ((g = atomic_load(&cr_gen)) == *seen) {
        if (atomic_load(&cr_quit))
            return false;
        sched_yield();
    }
    *seen = g;
    return true;
}

static void *cr_poster(void *arg)
{
    (void)arg;
    long seen = 0;
    while (cr_next(&seen)) {
        struct close_race *r = &cr;
        for (long i = 0; i < posts_max; i++) {
            int rc =
                ferry_call_soon_threadsafe(r->loop, cr_ran, r, cr_disposed);
            if (rc == 0) {
                atomic_fetch_add(&r->accepted, 1);
                continue;
            }
            atomic_fetch_add(rc == -ESHUTDOWN ? &r->refused : &r->other, 1);
            break;
        }
        ferry_loop_unref(r->loop); /* may be the last reference */
        atomic_fetch_add(&cr_finished, 1);
    }
    return NULL;
}

static void *cr_stopper(void *arg)
{
    (void)arg;
    long seen = 0;
    while (cr_next(&seen)) {
        struct close_race *r = &cr;
        if (r->mode == 2) {
            while (!atomic_load(&r->stop_done)) {
                int rc = ferry_loop_stop(r->loop);
                atomic_fetch_add(rc == 0            ? &r->stops
                                 : rc == -ESHUTDOWN ? &r->stops_refused
                                                    : &r->stops_other,
                                 1);
                sched_yield();
            }
            ferry_loop_unref(r->loop);
        }
        atomic_fetch_add(&cr_finished, 1);
    }
    return NULL;
}

static long cr_totals[4]; /* accepted, ran, disposed, refused */

static bool close_one(long it)
{
    static unsigned seed = 12345;
    struct close_race *r = &cr;
    memset((void *)r, 0, sizeof *r);
    atomic_store(&cr_finished, 0);
    assert_int_equal(ferry_loop_new(&r->loop, NULL), 0);
    r->mode = (int)(it % 3);
    for (int i = 0; i < POSTERS; i++)
        ferry_loop_ref(r->loop); /* each poster holds a reference */
    if (r->mode == 2)
        ferry_loop_ref(r->loop);   /* and the stopper */
    atomic_store(&cr_gen, it + 1); /* go (seq_cst: after the above) */
    unsigned runs = rnd(&seed) % 4;
    for (unsigned i = 0; i < runs; i++) {
        if (r->mode == 2)
            assert_int_equal(ferry_loop_run_forever(r->loop), 0);
        else
            assert_int_equal(ferry_loop_run_once(r->loop, 0), 0);
    }
    race_point(&seed, &r->accepted, POSTERS * posts_max);
    ferry_loop *loop = r->loop;
    if (r->mode == 1) {
        /* The posters' references keep the memory; the last one frees it
         * (ASan would see a use after free). */
        assert_int_equal(ferry_loop_free(loop), 0);
    } else {
        assert_int_equal(ferry_loop_close(loop), 0);
    }
    while (atomic_load(&cr_finished) < POSTERS)
        sched_yield();
    atomic_store(&r->stop_done, 1);
    while (atomic_load(&cr_finished) < POSTERS + 1)
        sched_yield();
    assert_int_equal(atomic_load(&r->stops_other), 0);
    if (r->mode != 1)
        assert_int_equal(ferry_loop_free(loop), 0);
    assert_int_equal(atomic_load(&r->other), 0);
    assert_true(atomic_load(&r->refused) <= POSTERS);
    /* nothing lost, nothing twice */
    assert_int_equal(atomic_load(&r->ran) + atomic_load(&r->disposed),
                     atomic_load(&r->accepted));
    cr_totals[0] += r->accepted;
    cr_totals[1] += r->ran;
    cr_totals[2] += r->disposed;
    cr_totals[3] += r->refused;
    return true;
}

static void test_race_close_free_stop_vs_threadsafe_posts(void **state)
{
    (void)state;
    posts_max = env_long("FERRY_RACE_POSTS", 500);
    pthread_t t[POSTERS + 1];
    for (int i = 0; i < POSTERS; i++)
        t[i] = spawn(cr_poster, NULL);
    t[POSTERS] = spawn(cr_stopper, NULL);
    time_boxed("close/free/stop vs 4 posters",
               env_long("FERRY_RACE_CLOSE", 10000), close_one);
    atomic_store(&cr_quit, 1);
    for (int i = 0; i <= POSTERS; i++)
        pthread_join(t[i], NULL);
    print_message("  posts accepted %ld = ran %ld + disposed %ld; refused "
                  "%ld\n",
                  cr_totals[0], cr_totals[1], cr_totals[2], cr_totals[3]);
    assert_true(cr_totals[3] > 0); /* the close did race posts */
    assert_true(cr_totals[2] > 0); /* and dropped some */
}

/* ---- pool shutdown racing submits and cancels ---- */

enum { PR_SUBMITTERS = 2, PR_EACH = 400, PR_MAX = 4096 };

struct pool_race {
    ferry_pool *pool;
    _Atomic int go;
    _Atomic int stop;
    _Atomic long n;                  /* handle slots taken */
    _Atomic(ferry_task *) h[PR_MAX]; /* each slot's task, NULL: refused */
    _Atomic int cancel_rc[PR_MAX];
    _Atomic unsigned char fn_ran[PR_MAX];
    _Atomic long refused, nested_refused, other, overflow;
    _Atomic long cancels_ok;
};

static struct pool_race pr;

static void pr_task(void *arg);

/* Submit one task (from anywhere) and record its handle. */
static int pr_submit(void)
{
    long i = atomic_fetch_add(&pr.n, 1);
    if (i >= PR_MAX) {
        atomic_fetch_add(&pr.overflow, 1);
        return -ENOSPC;
    }
    ferry_task *h = NULL;
    int rc = ferry_pool_submit(pr.pool, pr_task, (void *)(intptr_t)i, 0, &h);
    /* Release: the canceller's acquire load sees the handle's contents. */
    atomic_store_explicit(&pr.h[i], h, memory_order_release);
    return rc;
}

static void pr_task(void *arg)
{
    long i = (long)(intptr_t)arg;
    atomic_fetch_add(&pr.fn_ran[i], 1);
    if (i % 8 == 0) {
        int rc = pr_submit(); /* nested: accepted while draining */
        if (rc == -ESHUTDOWN)
            atomic_fetch_add(&pr.nested_refused, 1);
        else if (rc != 0 && rc != -ENOSPC)
            atomic_fetch_add(&pr.other, 1);
    }
}

static void *pr_submitter(void *arg)
{
    (void)arg;
    while (!atomic_load(&pr.go))
        sched_yield();
    /* Bounded, so an iteration costs little when the shutdown comes late;
     * PR_EACH submits take longer than the shutdown's random delay. */
    for (int k = 0; k < PR_EACH && !atomic_load(&pr.stop); k++) {
        int rc = pr_submit();
        if (rc == -ESHUTDOWN) {
            atomic_fetch_add(&pr.refused, 1);
            break;
        }
        if (rc == -ENOSPC)
            break;
        if (rc != 0) {
            atomic_fetch_add(&pr.other, 1);
            break;
        }
    }
    return NULL;
}

static void *pr_canceller(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg | 1u;
    while (!atomic_load(&pr.go))
        sched_yield();
    while (!atomic_load(&pr.stop)) {
        long n = atomic_load(&pr.n);
        if (n > PR_MAX)
            n = PR_MAX;
        if (n == 0) {
            sched_yield();
            continue;
        }
        long i = (long)(rnd(&seed) % (unsigned)n);
        ferry_task *h = atomic_load_explicit(&pr.h[i], memory_order_acquire);
        if (h == NULL || atomic_load(&pr.cancel_rc[i]) != 1)
            continue;
        int rc = ferry_task_cancel(h);
        atomic_store(&pr.cancel_rc[i], rc);
        if (rc == 0)
            atomic_fetch_add(&pr.cancels_ok, 1);
        sched_yield(); /* leave the CPUs to the submitters and workers */
    }
    return NULL;
}

static long pr_totals[5]; /* ran, cancelled, refused, shutdown-dropped,
                             cancels that won */

static bool pool_one(long it)
{
    static unsigned seed = 777;
    memset((void *)&pr, 0, sizeof pr);
    for (long i = 0; i < PR_MAX; i++)
        atomic_store(&pr.cancel_rc[i], 1); /* not cancelled */
    bool drain = it % 2 == 0;
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_pool_new(&pr.pool, &o), 0);
    pthread_t s[PR_SUBMITTERS], c;
    for (int i = 0; i < PR_SUBMITTERS; i++)
        s[i] = spawn(pr_submitter, NULL);
    c = spawn(pr_canceller, (void *)(uintptr_t)(it + 1));
    atomic_store(&pr.go, 1);
    race_point(&seed, &pr.n, PR_SUBMITTERS * PR_EACH);
    assert_int_equal(
        ferry_pool_shutdown(pr.pool, drain ? FERRY_DRAIN : FERRY_CANCEL_PENDING,
                            -1, NULL),
        0);
    atomic_store(&pr.stop, 1);
    for (int i = 0; i < PR_SUBMITTERS; i++)
        pthread_join(s[i], NULL);
    pthread_join(c, NULL);
    assert_int_equal(ferry_pool_free(pr.pool), 0);
    assert_int_equal(atomic_load(&pr.other), 0);
    long n = atomic_load(&pr.n);
    if (n > PR_MAX)
        n = PR_MAX;
    long ran = 0, cancelled = 0, refused = 0, bad = 0, won = 0;
    for (long i = 0; i < n; i++) {
        ferry_task *h = atomic_load(&pr.h[i]);
        int fr = atomic_load(&pr.fn_ran[i]);
        if (h == NULL) { /* refused: never ran */
            refused++;
            bad += fr != 0;
            continue;
        }
        int st = ferry_task_status(h);
        int crc = atomic_load(&pr.cancel_rc[i]);
        if (st == 0) {
            ran++;
            bad += fr != 1 || crc == 0;
        } else if (st == -ECANCELED) {
            cancelled++;
            bad += fr != 0;
        } else {
            bad++; /* still pending after the pool was freed */
        }
        won += crc == 0;
        ferry_task_unref(h);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(won, atomic_load(&pr.cancels_ok));
    /* Refusals: at most one per submitter, plus refused nested submits. */
    assert_int_equal(refused, atomic_load(&pr.refused) +
                                  atomic_load(&pr.nested_refused));
    if (drain) /* only the cancels dropped tasks */
        assert_int_equal(cancelled, won);
    else
        assert_true(cancelled >= won);
    pr_totals[0] += ran;
    pr_totals[1] += cancelled;
    pr_totals[2] += refused;
    pr_totals[3] += cancelled - won;
    pr_totals[4] += won;
    return true;
}

static void test_race_pool_shutdown_vs_submit_and_cancel(void **state)
{
    (void)state;
    time_boxed("pool shutdown (drain, cancel) vs submits and cancels",
               env_long("FERRY_RACE_POOL", 2000), pool_one);
    print_message("  tasks: ran %ld, cancelled %ld (%ld by a cancel, %ld by "
                  "the shutdown), refused %ld\n",
                  pr_totals[0], pr_totals[1], pr_totals[4], pr_totals[3],
                  pr_totals[2]);
    assert_true(pr_totals[3] > 0); /* cancelling shutdowns dropped some */
    assert_true(pr_totals[2] > 0); /* and submits were refused */
}

/* ---- promises resolved while their loop closes ---- */

enum { PROMISES = 8, RESOLVERS = 3 };

struct promise_race {
    ferry_loop *loop;
    ferry_promise *p[PROMISES];
    ferry_future *f[PROMISES];
    _Atomic long made, disposed, wins, losses, other;
    _Atomic long cb_ran, cb_disposed;
};

static struct promise_race pm;
static _Atomic long pm_gen; /* as cr_gen: the resolvers live on */
static _Atomic int pm_finished;
static _Atomic int pm_quit;

static void pm_dispose(void *v)
{
    atomic_fetch_add(&pm.disposed, 1);
    free(v);
}

static void pm_cb(ferry_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&pm.cb_ran, 1);
}

static void pm_cb_disposed(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pm.cb_disposed, 1);
}

static void *pm_resolver(void *arg)
{
    (void)arg;
    long seen = 0;
    for (;;) {
        long g;
        while ((g = atomic_load(&pm_gen)) == seen && !atomic_load(&pm_quit))
            sched_yield();
        if (g == seen)
            return NULL;
        seen = g;
        for (int i = 0; i < PROMISES; i++) {
            int *v = malloc(sizeof *v);
            *v = i;
            atomic_fetch_add(&pm.made, 1);
            int rc = ferry_promise_resolve(pm.p[i], v);
            atomic_fetch_add(rc == 0           ? &pm.wins
                             : rc == -EALREADY ? &pm.losses
                                               : &pm.other,
                             1);
            ferry_promise_unref(pm.p[i]);
        }
        atomic_fetch_add(&pm_finished, 1);
    }
}

static long pm_totals[3]; /* resolved on the loop, in the close, after */

static bool promise_one(long it)
{
    static unsigned seed = 4242;
    memset((void *)&pm, 0, sizeof pm);
    assert_int_equal(ferry_loop_new(&pm.loop, NULL), 0);
    for (int i = 0; i < PROMISES; i++) {
        assert_int_equal(
            ferry_promise_new(pm.loop, pm_dispose, &pm.p[i], &pm.f[i]), 0);
        assert_int_equal(ferry_future_add_done_callback(pm.f[i], pm_cb, NULL,
                                                        pm_cb_disposed),
                         0);
        for (int r = 1; r < RESOLVERS; r++)
            ferry_promise_ref(pm.p[i]); /* one reference per resolver */
    }
    atomic_store(&pm_finished, 0);
    atomic_store(&pm_gen, it + 1); /* go */
    unsigned runs = rnd(&seed) % 3;
    for (unsigned i = 0; i < runs; i++)
        assert_int_equal(ferry_loop_run_once(pm.loop, 0), 0);
    race_point(&seed, &pm.made, PROMISES * RESOLVERS);
    long before = atomic_load(&pm.cb_ran);
    bool free_it = it % 2 == 1;
    if (free_it) /* the futures' references keep the memory */
        assert_int_equal(ferry_loop_free(pm.loop), 0);
    else
        assert_int_equal(ferry_loop_close(pm.loop), 0);
    while (atomic_load(&pm_finished) < RESOLVERS)
        sched_yield();
    assert_int_equal(atomic_load(&pm.other), 0);
    assert_int_equal(atomic_load(&pm.wins), PROMISES);
    assert_int_equal(atomic_load(&pm.losses), PROMISES * (RESOLVERS - 1));
    /* Every future ended resolved with its winner's value. */
    long bad = 0;
    for (int i = 0; i < PROMISES; i++) {
        void *v = NULL;
        bad += ferry_future_result(pm.f[i], &v) != 0 || v == NULL ||
               *(int *)v != i;
        ferry_future_unref(pm.f[i]);
    }
    assert_int_equal(bad, 0);
    if (!free_it)
        assert_int_equal(ferry_loop_free(pm.loop), 0);
    /* Every value disposed once (losers at once, winners at the last
     * unref); every done callback ran or was disposed once. */
    assert_int_equal(atomic_load(&pm.disposed), atomic_load(&pm.made));
    assert_int_equal(atomic_load(&pm.cb_ran) + atomic_load(&pm.cb_disposed),
                     PROMISES);
    pm_totals[0] += before;
    pm_totals[1] += atomic_load(&pm.cb_disposed);
    return true;
}

static void test_race_promise_resolve_vs_loop_close(void **state)
{
    (void)state;
    pthread_t t[RESOLVERS];
    for (int r = 0; r < RESOLVERS; r++)
        t[r] = spawn(pm_resolver, NULL);
    time_boxed("promises resolved by 3 threads vs loop close/free",
               env_long("FERRY_RACE_PROMISE", 10000), promise_one);
    atomic_store(&pm_quit, 1);
    for (int r = 0; r < RESOLVERS; r++)
        pthread_join(t[r], NULL);
    print_message("  done callbacks: %ld ran before the close, %ld disposed "
                  "by it\n",
                  pm_totals[0], pm_totals[1]);
    assert_true(pm_totals[1] > 0);
}

/* ---- ferry_future_wait timing out while the future completes ---- */

struct wait_race {
    ferry_future *f;
    _Atomic int go;
    uint64_t timeout_ns;
    unsigned delay; /* spins before completing */
    int rc;         /* the waiter's */
    bool done_at_return;
    int result_rc;
    void *result;
};

static int wr_value;

static void *wr_waiter(void *arg)
{
    struct wait_race *w = arg;
    while (!atomic_load(&w->go))
        ;
    w->rc = ferry_future_wait(w->f, (int64_t)w->timeout_ns);
    w->done_at_return = ferry_future_done(w->f);
    w->result_rc = ferry_future_result(w->f, &w->result);
    return NULL;
}

static void *wr_completer(void *arg)
{
    struct wait_race *w = arg;
    while (!atomic_load(&w->go))
        ;
    spin(w->delay);
    if (ferry_future_set_result_threadsafe(w->f, &wr_value, NULL) != 0)
        abort();
    return NULL;
}

static long wr_totals[2]; /* returned 0, timed out */

static ferry_loop *wr_loop; /* bound futures' loop, made on first use */

static bool wait_one(long it)
{
    static unsigned seed = 99;
    ferry_loop *loop;
    bool bound = it % 2 == 1;
    struct wait_race w = {0};
    if (bound) {
        if (wr_loop == NULL)
            assert_int_equal(ferry_loop_new(&wr_loop, NULL), 0);
        loop = wr_loop;
        assert_int_equal(ferry_future_new(loop, &w.f), 0);
    } else {
        assert_int_equal(ferry_future_new(NULL, &w.f), 0);
    }
    w.timeout_ns = rnd(&seed) % 30000;
    w.delay = rnd(&seed) % 30000;
    pthread_t a = spawn(wr_waiter, &w), b = spawn(wr_completer, &w);
    atomic_store(&w.go, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (w.rc == 0) {
        /* 0: done, and the result is there */
        assert_true(w.done_at_return);
        assert_int_equal(w.result_rc, 0);
        assert_ptr_equal(w.result, &wr_value);
        wr_totals[0]++;
    } else {
        /* -ETIMEDOUT: the later result is readable */
        assert_int_equal(w.rc, -ETIMEDOUT);
        void *v = NULL;
        assert_int_equal(ferry_future_result(w.f, &v), 0);
        assert_ptr_equal(v, &wr_value);
        wr_totals[1]++;
    }
    if (bound) /* the completion's post */
        assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    ferry_future_unref(w.f);
    return true;
}

static void test_race_wait_timeout_vs_completion(void **state)
{
    (void)state;
    time_boxed("future_wait timeout vs completion",
               env_long("FERRY_RACE_WAIT", 4000), wait_one);
    if (wr_loop != NULL)
        assert_int_equal(ferry_loop_free(wr_loop), 0);
    print_message("  waits: %ld returned 0 (done), %ld timed out (result "
                  "read later)\n",
                  wr_totals[0], wr_totals[1]);
    assert_true(wr_totals[0] > 0 && wr_totals[1] > 0);
}

/* ---- fork while workers run and a thread posts ---- */

struct fork_race {
    ferry_loop *loop;
    ferry_pool *pool;
    _Atomic int stop;
    _Atomic long submitted, task_ran;
    _Atomic long posted, post_ran;
    _Atomic long child_ran;
    _Atomic long other;
};

static struct fork_race fr; /* static: a child's _exit leaves it reachable */

#if defined(__SANITIZE_ADDRESS__)
/* GCC 12's libasan takes no allocator locks around fork (LLVM added them
 * in llvm/llvm-project#75290, 2023): a child whose parent had another
 * thread inside malloc or free at the fork blocks forever in its first
 * allocation (seen: the child's ferry_call_soon_threadsafe waiting in
 * SizeClassAllocator64::GetFromAllocator). That is the runtime's, not
 * ferry's, so under ASan the producer and the poster pause at a point
 * between two calls, and the pool drains and every worker parks (a worker
 * frees a fire-and-forget task's block after its fn) before each fork; the race with
 * threads inside ferry runs in the plain and TSan builds. */
#define FR_QUIESCE 1
#else
#define FR_QUIESCE 0
#endif
static _Atomic int fr_pause;  /* the forking thread asks the others */
static _Atomic int fr_paused; /* how many stopped between two calls */

static void fr_maybe_pause(void)
{
    if (!FR_QUIESCE || !atomic_load(&fr_pause))
        return;
    atomic_fetch_add(&fr_paused, 1);
    while (atomic_load(&fr_pause))
        sched_yield();
    atomic_fetch_sub(&fr_paused, 1);
}

/* Every worker asleep: none is inside free() (a task's block, after its
 * fn) when we fork. Used under ASan only, see FR_QUIESCE. */
static bool fr_pool_asleep(void)
{
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(fr.pool, &st), 0);
    return st.threads_idle == st.threads_total &&
           st.completed + st.cancelled == st.submitted;
}

static void fr_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.task_ran, 1);
    spin(200);
}

static void fr_post(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.post_ran, 1);
}

static void fr_child_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&fr.child_ran, 1);
}

static void *fr_producer(void *arg)
{
    (void)arg;
    while (!atomic_load(&fr.stop)) {
        fr_maybe_pause();
        int rc = ferry_pool_submit(fr.pool, fr_task, NULL, 0, NULL);
        if (rc == 0)
            atomic_fetch_add(&fr.submitted, 1);
        else
            atomic_fetch_add(&fr.other, 1);
        /* Keep the queue short: the point is tasks in flight. */
        while (atomic_load(&fr.submitted) - atomic_load(&fr.task_ran) > 64 &&
               !atomic_load(&fr.stop)) {
            fr_maybe_pause(); /* the drain may wait on us (ASan) */
            sched_yield();
        }
    }
    return NULL;
}

static void *fr_poster(void *arg)
{
    (void)arg;
    while (!atomic_load(&fr.stop)) {
        fr_maybe_pause();
        int rc = ferry_call_soon_threadsafe(fr.loop, fr_post, NULL, NULL);
        if (rc == 0)
            atomic_fetch_add(&fr.posted, 1);
        else
            atomic_fetch_add(&fr.other, 1);
        while (atomic_load(&fr.posted) - atomic_load(&fr.post_ran) > 64 &&
               !atomic_load(&fr.stop)) {
            fr_maybe_pause(); /* the loop drains only after the fork */
            sched_yield();
        }
    }
    return NULL;
}

enum { CHILD_WORK = 16 };

static int fr_child(void)
{
    int bad = 0;
    long task_ran = atomic_load(&fr.task_ran);
    long post_ran = atomic_load(&fr.post_ran);
    /* Inherited: -ECHILD everywhere until after_fork. */
    if (ferry_pool_submit(fr.pool, fr_child_task, NULL, 0, NULL) != -ECHILD)
        bad |= 1;
    if (ferry_call_soon_threadsafe(fr.loop, fr_post, NULL, NULL) != -ECHILD)
        bad |= 1;
    if (ferry_loop_run_once(fr.loop, 0) != -ECHILD)
        bad |= 1;
    if (ferry_loop_after_fork(fr.loop) != 0)
        bad |= 2;
    /* The loop's own posts run once; the parent's queued ones never. */
    for (int i = 0; i < CHILD_WORK; i++)
        if (ferry_call_soon_threadsafe(fr.loop, fr_child_task, NULL, NULL))
            bad |= 4;
    for (int i = 0; i < 10 && atomic_load(&fr.child_ran) < CHILD_WORK; i++)
        ferry_loop_run_once(fr.loop, 0);
    if (atomic_load(&fr.child_ran) != CHILD_WORK)
        bad |= 4;
#if !defined(__SANITIZE_THREAD__)
    /* (TSan cannot start threads after a multithreaded fork: see
     * tests/test_pool_fork.c. The pool's rebuild runs in the other
     * builds.) */
    if (ferry_pool_after_fork(fr.pool) != 0)
        bad |= 8;
    for (int i = 0; i < CHILD_WORK; i++)
        if (ferry_pool_submit(fr.pool, fr_child_task, NULL, 0, NULL) != 0)
            bad |= 16;
    if (ferry_pool_shutdown(fr.pool, FERRY_DRAIN, -1, NULL) != 0)
        bad |= 16;
    if (atomic_load(&fr.child_ran) != 2 * CHILD_WORK)
        bad |= 16;
    if (ferry_pool_free(fr.pool) != 0)
        bad |= 32;
#endif
    /* Nothing of the parent's ran here. */
    if (atomic_load(&fr.task_ran) != task_ran ||
        atomic_load(&fr.post_ran) != post_ran)
        bad |= 64;
    if (ferry_loop_free(fr.loop) != 0)
        bad |= 32;
    return bad;
}

static long fr_failed;
static long fr_hung;

/* waitpid with a deadline: a hung child is killed and reported as such,
 * rather than hanging the test until meson's timeout. */
static int wait_child(pid_t pid, int *st)
{
    uint64_t end = ferry__now_ns() + 30000000000u;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0)
            return -errno;
        if (ferry__now_ns() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, st, 0);
            return -ETIMEDOUT;
        }
        sleep_ns(200000);
    }
}

static bool fork_one(long it)
{
    static unsigned seed = 31337;
    /* The loop runs between forks, so posts are in flight at the fork. */
    for (unsigned i = rnd(&seed) % 3; i > 0; i--)
        assert_int_equal(ferry_loop_run_once(fr.loop, 0), 0);
    spin(rnd(&seed) % 20000);
    if (FR_QUIESCE) {
        atomic_store(&fr_pause, 1);
        while (atomic_load(&fr_paused) < 2 || !fr_pool_asleep())
            sched_yield();
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fr_child());
    atomic_store(&fr_pause, 0);
    int st = 0;
    int rc = wait_child(pid, &st);
    if (rc == -ETIMEDOUT) {
        print_message("fork %ld: the child hung (killed)\n", it);
        fr_hung++;
        return false;
    }
    assert_int_equal(rc, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_message("fork %ld: child status %#x\n", it, st);
        fr_failed++;
        return false;
    }
    return true;
}

static void test_race_fork_vs_workers_and_posts(void **state)
{
    (void)state;
    memset((void *)&fr, 0, sizeof fr);
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_loop_new(&fr.loop, NULL), 0);
    assert_int_equal(ferry_pool_new(&fr.pool, &o), 0);
    pthread_t p = spawn(fr_producer, NULL), q = spawn(fr_poster, NULL);
    time_boxed("fork vs workers and a poster",
               env_long("FERRY_RACE_FORK", 1000), fork_one);
    atomic_store(&fr.stop, 1);
    pthread_join(p, NULL);
    pthread_join(q, NULL);
    assert_int_equal(fr_failed, 0);
    assert_int_equal(fr_hung, 0);
    /* In the parent everything ran exactly once. */
    assert_int_equal(ferry_pool_shutdown(fr.pool, FERRY_DRAIN, -1, NULL), 0);
    for (int i = 0;
         i < 1000 && atomic_load(&fr.post_ran) < atomic_load(&fr.posted); i++)
        assert_int_equal(ferry_loop_run_once(fr.loop, 1000000), 0);
    assert_int_equal(atomic_load(&fr.other), 0);
    assert_int_equal(atomic_load(&fr.task_ran), atomic_load(&fr.submitted));
    assert_int_equal(atomic_load(&fr.post_ran), atomic_load(&fr.posted));
    assert_int_equal(atomic_load(&fr.child_ran), 0);
    print_message("  parent: %ld tasks and %ld posts, each run once\n",
                  atomic_load(&fr.task_ran), atomic_load(&fr.post_ran));
    assert_int_equal(ferry_pool_free(fr.pool), 0);
    assert_int_equal(ferry_loop_free(fr.loop), 0);
}

int main(void)
{
    /* Fork first: under ASan a fork costs with the parent's resident heap
     * (the quarantine), which the other races fill. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_fork_vs_workers_and_posts),
        cmocka_unit_test(test_race_close_free_stop_vs_threadsafe_posts),
        cmocka_unit_test(test_race_pool_shutdown_vs_submit_and_cancel),
        cmocka_unit_test(test_race_promise_resolve_vs_loop_close),
        cmocka_unit_test(test_race_wait_timeout_vs_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
