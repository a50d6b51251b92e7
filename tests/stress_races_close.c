/*
 * tests/stress_races_close.c: ferry_loop_close, ferry_loop_free and
 * ferry_loop_stop racing ferry_call_soon_threadsafe from 4 threads that
 * hold loop references (libuv #2226, #4922; issue 6 section 4). The owner
 * closes, or frees, at a random point after a random number of
 * iterations, or runs run_forever while a fifth thread keeps calling
 * ferry_loop_stop and closes under it. Every post returns 0 (then it ran
 * or was disposed, once) or -ESHUTDOWN; every stop 0 or -ESHUTDOWN.
 *
 * FERRY_RACE_CLOSE iterations (10000), FERRY_RACE_POSTS posts per poster
 * and iteration (500); FERRY_RACE_SECONDS and the rest: stress_races.h.
 */
#include "stress_races.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_close_free_stop_vs_threadsafe_posts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
