/*
 * loop/wakeup.pml: a Promela model of the loop's wake-up protocol
 * (loop/wakeup.c, in the order iterate() in loop/loop.c runs it; issue 6
 * section 1). tests/spin/run_model.py checks it with spin; the meson suite
 * 'model' runs that for the variants below.
 *
 * What is modelled
 *   producer i (NPROD of them, NPOST posts each; at most 8 items in all),
 *   ferry__loop_post:
 *     push item; fence(seq_cst); load polling; if 1: load wake_pending;
 *     if 0: exchange(wake_pending, 1); if the old value was 0: write(efd)
 *   ferry__loop_post has no fence of its own since 2026-12-02: its push is
 *   a seq_cst CAS and its loads are seq_cst, which orders the loads after
 *   the push as the fence did (the argument is in wakeup.c); a buffered
 *   push followed by a drain of the buffer is that order, so the model's
 *   producer is unchanged, and NO_PRODUCER_FENCE is the push made
 *   release-only with relaxed loads, the variant C11 would let reorder.
 *   loop, one iteration of iterate():
 *     poll_timeout: 0 (callbacks ready; at most BUSY times), finite (a
 *                   timer or another fd; at most TIMERS times) or infinite
 *     prepare_poll: timeout 0: nothing. Else wake_pending = 0 (re-arm);
 *                   polling = 1; fence(seq_cst);
 *                   load inbox; non-empty: poll without blocking
 *     poller_wait:  blocking: wait until the eventfd is readable, or, with
 *                   a finite timeout, possibly return without it
 *     after_poll:   polling = 0
 *     on_event:     if the poll reported the eventfd: read it (efd = 0)
 *     drain:        load inbox; if non-empty exchange it with empty and
 *                   run every item taken
 *   The inbox is a set of item bits; the Treiber CAS loop is one atomic
 *   step (only the set matters to the protocol, not the list order).
 *   The stop flag is published like a push (ferry_loop_stop: store
 *   stopping, then ferry__wakeup_signal), so pushes stand for it too.
 *   Not modelled: the embedder mode (ferry_loop_fd: polling stays 1) and
 *   close (the inbox sentinel).
 *
 * Memory model: store buffers
 *   The fences exist because a store may wait in a store buffer while
 *   later loads of the same thread execute (x86-TSO allows this; C11 and
 *   ARM allow it too). Each thread has a FIFO store buffer, flushed to
 *   memory one store at a time, at any moment, by a process of its own
 *   (pflush, lflush). A fence waits until its thread's buffer is empty
 *   (x86 mfence). The loop's buffer holds LBUF stores; when full, the loop
 *   waits for a flush, as a real CPU does.
 *   - Buffered: the producer's push (release CAS on inbox) and the loop's
 *     stores polling = 1, polling = 0 and wake_pending = 0. The push is an
 *     atomic RMW; buffering it means that it takes effect in memory at
 *     flush time while the producer's later loads have already run, which
 *     C11 allows for a release CAS followed by relaxed loads of another
 *     location (and ARM does). On x86 the CAS is a locked instruction and
 *     drains the buffer, so there the producer's fence is belt and braces;
 *     -DX86_LOCKED_RMW models that (the producer variant then passes, the
 *     loop variant still fails: its store of polling is a plain mov).
 *   - Atomic, unbuffered: the exchanges on wake_pending and inbox (which
 *     do not drain the buffers, as C11 allows, unless X86_LOCKED_RMW), and
 *     the eventfd's write and read (syscalls on a kernel counter).
 *   - Loads read memory. No thread loads a location it has buffered, so
 *     no store-to-load forwarding is needed. The producer's two loads
 *     after its fence are kept in order; C11 lets them swap, but each is
 *     after the fence, and that is all the Dekker argument uses.
 *
 * The property, and why checking it at a deadlock is sound
 *   "No work is left queued while every consumer sleeps."
 *   A watchdog waits for Promela's timeout, which is enabled only when no
 *   other process can move: the producers have finished, every store
 *   buffer is empty (a flush is enabled while anything is buffered), and
 *   the loop is blocked in poller_wait with an infinite timeout and the
 *   eventfd unreadable. Nothing can wake the loop any more, in the model
 *   or in the program (later posts would be other work). The watchdog
 *   then asserts that the inbox is empty and every item was drained.
 *   Every execution of the model is finite (items, eventfd writes and
 *   timeout-0 and finite-timeout polls are bounded, and each blocking poll
 *   consumes an eventfd write or a finite timeout), so every execution
 *   ends in such a state; an exhaustive search without errors therefore
 *   covers all of them, as a plain safety check (pan -DSAFETY): no never
 *   claim and no fairness assumption are needed.
 *   Also asserted on every step: no item is drained twice.
 *   Coalescing is best effort, not a safety property: with
 *   -DONE_WRITE_PER_SLEEP the model asserts at most one eventfd write per
 *   poll episode (prepare_poll to prepare_poll). The re-arm placement
 *   ferry uses (wake_pending = 0 in prepare_poll) keeps an awake loop free
 *   of writes, since wake_pending stays set from a wake-up to the next
 *   sleep, but a producer preempted between its winning exchange and its
 *   write can still land that write in the next episode, beside that
 *   episode's own. Re-arming as the eventfd is read (-DREARM_ON_READ,
 *   ferry's first version) never writes a still-readable eventfd
 *   (asserted in that variant) but leaves a window after every wake-up in
 *   which a producer that saw polling == 1 writes again
 *   (tests/spin/expected/double_write.txt). Neither loses a wake-up; an
 *   extra write only makes the next poll return at once.
 *
 * Variants (spin -D...)
 *   NO_PRODUCER_FENCE    drop the producer's StoreLoad order (the fence
 *                        of ferry__wakeup_signal, the seq_cst push of
 *                        ferry__loop_post)
 *   NO_LOOP_FENCE        drop the fence of ferry__wakeup_prepare_poll
 *   REARM_ON_READ        re-arm wake_pending when reading the eventfd
 *                        (after clearing polling) instead of in prepare_poll
 *   X86_LOCKED_RMW       RMWs drain their thread's buffer (x86 lock prefix)
 *   ONE_WRITE_PER_SLEEP  check the per-episode write bound above
 *   NPROD NPOST BUSY TIMERS  sizes (defaults 2 2 1 1)
 *
 * The model prints its events ("@ ..." lines); replayed counter-examples
 * are matched against those, not against spin's step numbers.
 */

#ifndef NPROD
#define NPROD 2
#endif
#ifndef NPOST
#define NPOST 2
#endif
#ifndef BUSY
#define BUSY 1 /* iterations with timeout 0 (callbacks were ready) */
#endif
#ifndef TIMERS
#define TIMERS 1 /* sleeps with a finite timeout (a timer, another fd) */
#endif

#define TMO_ZERO 0
#define TMO_FINITE 1
#define TMO_INFINITE 2

#define NITEMS (NPROD * NPOST)
#define ALL ((1 << NITEMS) - 1)
#define ITEM(i, k) (1 << ((i) * NPOST + (k)))

/* shared memory */
byte inbox;       /* items pushed and visible, not yet drained (a set) */
byte drained;     /* items taken by the loop's drains */
bit polling;
bit wake_pending;
byte efd;         /* the eventfd's counter */
byte sleep_writes; /* eventfd writes in the current poll episode */

/* producer store buffers: pushes executed, and how many of those are
 * visible; FIFO, so producer i's k-th push is visible iff k < visible[i] */
byte pushed[NPROD];
byte visible[NPROD];

/* the loop's store buffer: FIFO of pending stores (lflush's shift is
 * written for LBUF == 3) */
#define LBUF 3
#define ST_POLL1 1 /* polling = 1 */
#define ST_POLL0 2 /* polling = 0 */
#define ST_PEND0 3 /* wake_pending = 0 */
byte lbuf[LBUF];
byte llen;

inline loop_store(st)
{
    atomic {
        llen < LBUF ->
        lbuf[llen] = st;
        llen++;
        if
        :: st == ST_POLL1 -> printf("@ L store polling=1 (buffered)\n")
        :: st == ST_POLL0 -> printf("@ L store polling=0 (buffered)\n")
        :: st == ST_PEND0 -> printf("@ L store wake_pending=0 (buffered)\n")
        fi
    }
}

/* mfence: wait until this thread's stores are all in memory */
#define LOOP_DRAINED (llen == 0)
#define PRODUCER_DRAINED(i) (visible[i] == pushed[i])

proctype pflush(byte i)
{
end_pflush:
    do
    :: atomic {
        visible[i] < pushed[i] ->
        inbox = inbox | ITEM(i, visible[i]);
        printf("@ P%d push of item %d becomes visible\n", i, i * NPOST + visible[i]);
        visible[i]++
    }
    od
}

active proctype lflush()
{
end_lflush:
    do
    :: atomic {
        llen > 0 ->
        if
        :: lbuf[0] == ST_POLL1 -> polling = 1;
           printf("@ L polling=1 becomes visible\n")
        :: lbuf[0] == ST_POLL0 -> polling = 0;
           printf("@ L polling=0 becomes visible\n")
        :: lbuf[0] == ST_PEND0 -> wake_pending = 0;
           printf("@ L wake_pending=0 becomes visible\n")
        fi;
        lbuf[0] = lbuf[1];
        lbuf[1] = lbuf[2];
        lbuf[2] = 0;
        llen--
    }
    od
}

proctype producer(byte i)
{
    byte k = 0;
    bit old;
    bit seen;
    do
    :: k < NPOST ->
push:
        atomic {
#ifdef X86_LOCKED_RMW
            PRODUCER_DRAINED(i) -> /* lock cmpxchg drains the buffer */
            inbox = inbox | ITEM(i, k);
            visible[i]++;
#endif
            pushed[i]++;
            printf("@ P%d push item %d\n", i, i * NPOST + k)
        };
#ifndef NO_PRODUCER_FENCE
producer_fence:
        PRODUCER_DRAINED(i);
#endif
load_polling: /* each load is one atomic step with its printf, so that the
               * replay prints events in the order they happened */
        atomic {
            if
            :: polling == 0 ->
                seen = 0;
                printf("@ P%d load polling: 0, no write\n", i)
            :: else ->
                seen = 1;
                printf("@ P%d load polling: 1\n", i)
            fi
        };
        if
        :: seen ->
load_pending:
            atomic {
                if
                :: wake_pending == 1 ->
                    seen = 0;
                    printf("@ P%d load wake_pending: 1, no write\n", i)
                :: else ->
                    seen = 1;
                    printf("@ P%d load wake_pending: 0\n", i)
                fi
            };
            if
            :: seen ->
xchg_pending:
                atomic {
                    old = wake_pending;
                    wake_pending = 1;
                    printf("@ P%d exchange wake_pending: old %d\n", i, old)
                };
                if
                :: old == 0 ->
write_efd:
                    atomic {
#ifdef REARM_ON_READ
                        assert(efd == 0); /* one write per read */
#endif
                        efd++;
                        sleep_writes++;
                        printf("@ P%d write eventfd\n", i)
                    };
#ifdef ONE_WRITE_PER_SLEEP
                    assert(sleep_writes <= 1)
#endif
                :: else
                fi
            :: else
            fi
        :: else
        fi;
        k++
    :: else -> break
    od
}

active proctype loop()
{
    byte busy = 0;
    byte timers = 0;
    byte tmo;
    bit block;
    bit woken;
    do
    :: /* poll_timeout */
        if
        :: busy < BUSY ->
            busy++;
            tmo = TMO_ZERO;
            printf("@ L timeout 0: callbacks ready\n")
        :: timers < TIMERS ->
            timers++;
            tmo = TMO_FINITE;
            printf("@ L timeout finite: a timer\n")
        :: true ->
            tmo = TMO_INFINITE;
            printf("@ L timeout infinite\n")
        fi;
        /* prepare_poll */
        if
        :: tmo == TMO_ZERO ->
            block = 0 /* returns at once: no polling store */
        :: else ->
            sleep_writes = 0; /* a new poll episode (bookkeeping only) */
#ifndef REARM_ON_READ
            loop_store(ST_PEND0); /* re-arm just before announcing the sleep */
#endif
            loop_store(ST_POLL1);
#ifndef NO_LOOP_FENCE
loop_fence:
            LOOP_DRAINED;
#endif
load_inbox:
            atomic {
                if
                :: inbox != 0 ->
                    block = 0;
                    printf("@ L load inbox: non-empty, poll without blocking\n")
                :: else ->
                    block = 1;
                    printf("@ L load inbox: empty, will block\n")
                fi
            }
        fi;
        /* poller_wait */
        if
        :: block ->
end_sleep:
            atomic {
                if
                :: efd > 0 ->
                    printf("@ L wakes: eventfd readable\n")
                :: tmo == TMO_FINITE ->
                    printf("@ L wakes: timeout (or another fd)\n")
                fi;
                woken = (efd > 0)
            }
        :: else ->
            woken = (efd > 0)
        fi;
        /* after_poll, then on_event */
        loop_store(ST_POLL0);
        if
        :: woken ->
            atomic { efd = 0; printf("@ L read eventfd\n") };
#ifdef REARM_ON_READ
            loop_store(ST_PEND0)
#else
            skip /* wake_pending stays set until the next sleep */
#endif
        :: else
        fi;
drain: /* ferry__inbox_drain: load, then exchange if non-empty */
        if
        :: inbox != 0 ->
            atomic {
#ifdef X86_LOCKED_RMW
                LOOP_DRAINED -> /* the xchg drains the buffer */
#endif
                assert((drained & inbox) == 0); /* each item once */
                drained = drained | inbox;
                printf("@ L drain: items %x, drained so far %x\n", inbox, drained);
                inbox = 0
            }
        :: else
        fi
    od
}

active proctype watchdog()
{
    timeout;
    printf("@ quiescent: loop asleep, inbox %x, drained %x of %x\n",
        inbox, drained, ALL);
    if
    :: inbox != 0 -> printf("@ LOST WAKE-UP: work queued, loop asleep forever\n")
    :: else
    fi;
    assert(inbox == 0 && drained == ALL)
}

init
{
    byte i = 0;
    atomic {
        do
        :: i < NPROD ->
            run pflush(i);
            run producer(i);
            i++
        :: else -> break
        od
    }
}
