/*
 * executor/monitor.pml: a Promela model of the monitor's sleep against
 * ferry__want_retake (executor/monitor.c). tests/spin/run_model.py checks
 * it with spin; the meson suite 'model' runs the variants below.
 *
 * What is modelled
 *   wakers (NWAKE of them), ferry__want_retake, called by whoever finds a
 *   BLOCKED core holding back queued work:
 *     load mon_fast; if set: return. exchange(mon_fast, 1); if the old
 *     value was 0: bump mon_word, futex_wake(mon_word)
 *   the monitor, the top of monitor_main's loop, with the starvation check
 *   off (no timed sleep; the case a review found stuck):
 *     load mon_word (seen); load mon_fast (fast)
 *     fast: poll the BLOCKED cores (a timed wait): the request is served
 *     else: futex_wait(mon_word, seen) with no deadline: blocks while
 *           mon_word == seen (the kernel compares under its own lock, so
 *           a bump before the wait makes it return at once)
 *   Not modelled: the monitor clearing mon_fast once nothing is held back
 *   (maybe_slow_down, which fences and looks again), kicks made under the
 *   sched lock, and the spawn retry; each only adds wake-ups.
 *
 * Memory model: the wakers only store and the monitor only loads, so
 * sequential consistency is enough: the wakers' exchange and bump are
 * ordered by the bump's release, the monitor's loads by its acquire load
 * of mon_word (x86 keeps both orders anyway).
 *
 * The property: "a request for a retake is served". A watchdog waits for
 * Promela's timeout (no process can move: the wakers are done and the
 * monitor sleeps) and asserts that the monitor saw mon_fast.
 *
 * Variants (tests/meson.build, tests/spin/run_model.py)
 *   monitor_ok          the code as written: passes
 *   monitor_fast_first  mon_fast loaded before mon_word, the order before
 *                       the fix: a waker between the two loads sets the
 *                       flag unseen and bumps the word the monitor then
 *                       reads, so it sleeps forever, and later wakers see
 *                       the flag set and return (counter-example in
 *                       tests/spin/expected/monitor_fast_first.txt)
 */
#ifndef NWAKE
#define NWAKE 2
#endif

byte mon_word = 0;
bit mon_fast = 0;
bit served = 0;

proctype waker(byte i)
{
    bit old;
    if
    :: mon_fast -> printf("@ W%d mon_fast already set: return\n", i)
    :: else ->
        atomic { old = mon_fast; mon_fast = 1 };
        if
        :: old == 0 ->
            mon_word++;
            printf("@ W%d set mon_fast, bump mon_word to %d\n", i, mon_word)
        :: else -> printf("@ W%d lost the exchange: return\n", i)
        fi
    fi
}

active proctype monitor()
{
    byte seen;
    bit fast;
    do
    ::
#ifdef FAST_FIRST
        fast = mon_fast;
        printf("@ M load mon_fast: %d\n", fast);
        seen = mon_word;
        printf("@ M load mon_word: %d\n", seen);
#else
        seen = mon_word;
        printf("@ M load mon_word: %d\n", seen);
        fast = mon_fast;
        printf("@ M load mon_fast: %d\n", fast);
#endif
        if
        :: fast ->
            printf("@ M polls the blocked cores: served\n");
            served = 1;
            break
        :: else ->
            printf("@ M futex_wait(mon_word, %d), no deadline\n", seen);
            mon_word != seen;
            printf("@ M woken\n")
        fi
    od
}

active proctype watchdog()
{
    timeout;
    printf("@ quiescent: mon_fast %d, mon_word %d\n", mon_fast, mon_word);
    if
    :: !served -> printf("@ LOST RETAKE: monitor asleep for good\n")
    :: else
    fi;
    assert(served)
}

init
{
    byte i = 0;
    atomic {
        do
        :: i < NWAKE ->
            run waker(i);
            i++
        :: else -> break
        od
    }
}
