/*
 * executor/park.pml: a Promela model of the pool's park/unpark protocol
 * (executor/park.c and the worker loop of executor/worker.c, as the code
 * is; issue 6 section 1). tests/spin/run_model.py checks it with spin; the
 * meson suite 'model' runs the variants below (tests spin_park_*).
 *
 * What is modelled: NW workers and NW cores, one outside submitter
 *   submitter, NSUB times (ferry__submit from outside the pool):
 *     lock(inject); edge = (len == 0); len++; if edge: nonempty = 1;
 *     unlock(inject); if edge: ferry__notify
 *   ferry__notify: fence(seq_cst); ferry__wakep
 *   ferry__wakep: load nsearching; != 0: return. load nidle_cores; 0:
 *     return (core_available). CAS nsearching 0 -> 1, or return.
 *     start_searcher: up to TRIES times { lock(sched); an idle core? take
 *     it, pop the top idle worker, grant it the core, mark it searching,
 *     unlock, unpark it: done. Else unlock; nsearching--; fence; no work
 *     visible or no idle core: done; CAS nsearching 0 -> 1, or done }
 *     then nsearching--.
 *   worker, holding a core (worker_main, next_task):
 *     ferry__find_local: ferry__deque_take on its own deque (the take's
 *       seq_cst fence drains the store buffer), else pop_inject; else
 *       ferry__begin_searching (load nsearching; 2 * it >= cores: park;
 *       nsearching++) and search: SWEEPS sweeps of steal_any (one task,
 *       then up to half of the rest onto our deque) and pop_inject; a
 *       task found: ferry__end_searching, then run it.
 *     pop_inject: load nonempty; 0: nothing. trylock(inject), held:
 *       nothing; take len / cores + 1 (at most len); if that emptied the
 *       queue nonempty = 0; unlock; having left tasks behind (split),
 *       notify. The tasks beyond the first go on our deque (push_local).
 *     ferry__end_searching: searching = 0; fetch_sub(nsearching) == 1:
 *       fence; if ferry__work_visible: ferry__wakep.
 *     a running task may submit a nested task (NNEST in all): push on our
 *       deque, then ferry__notify (ferry__submit from a worker).
 *     ferry__park_worker: lock(sched); release the core (nidle_cores++);
 *       was = searching; searching = 0; push self on the idle stack;
 *       unlock; if was: nsearching--; fence(seq_cst); lock(sched);
 *       reclaim_locked: popped meanwhile: go on with what the waker
 *       granted; else if ferry__work_visible and a core is idle: take it,
 *       leave the idle stack; unlock. Not reclaimed: ferry__idle_worker:
 *       loop { lock; popped: unlock, go on; unlock; ferry__park_token }.
 *     ferry__park_token (no deadline): fetch_sub on the token: NOTIFIED ->
 *       EMPTY returns at once; EMPTY -> PARKED sleeps until the token is
 *       NOTIFIED and takes it (the futex wait and CAS loop, one step).
 *     ferry__unpark: exchange the token with NOTIFIED (the futex wake is
 *       the sleeper's guard becoming true).
 *     ferry__work_visible: load nonempty, then each deque's length, one
 *       load at a time, as the C code does.
 *   Deques are counters: take and steal are atomic (the Chase-Lev deque
 *   is linearisable, which tests/stress_deque.c checks; its internals are
 *   not the subject here); steal_any's steal-half is one step.
 *   The pool starts idle: both workers parked, both cores on the idle
 *   list. (A worker starting with a core behaves as one that reclaimed a
 *   core, which the model covers.)
 *
 * Not modelled: blocking work (BLOCKED cores, retake, wanters, the
 * monitor), spares and their keep-alive, thread creation (every worker
 * exists, so an idle core always has an idle worker: asserted where
 * start_with_core pops one), shutdown and wake_all_idle, the 61-task
 * fairness check, a deque that cannot grow, groups. Each of those either
 * never lowers nsearching, idle workers or visible work, or does it with
 * the same fence-and-re-check (blocking_enter, wait_for_core).
 *
 * Memory model: store buffers (as loop/wakeup.pml)
 *   Each thread has a FIFO store buffer, flushed one store at a time, at
 *   any moment, by a process of its own (flush); a fence waits until its
 *   thread's buffer is empty. A thread's load of a location it has itself
 *   buffered reads its newest buffered value (store forwarding).
 *   - Buffered: the stores that make work, idle cores or a stopped
 *     searcher visible to others, the ones the two fences are for:
 *     nonempty = 1 (the submitter's push), a nested
 *     task's deque push (bottom), park_worker's nidle_cores = n + 1, and
 *     nsearching-- where its result is unused (park_worker,
 *     start_searcher). An RMW can be buffered because C11 (and ARM) let
 *     later relaxed loads of other locations pass a release or seq_cst
 *     RMW: it takes effect at flush time, the thread having moved on.
 *   - At once: the stores that only hide work, cores or add a searcher
 *     (nonempty = 0 of a pop, nidle_cores-- of a core taken, nsearching++
 *     and the CASes 0 -> 1, steal-half and push_local of tasks the thread
 *     will run itself before it can park), and the RMWs whose result is
 *     used (end_searching's fetch_sub, the CASes); a thread's own earlier
 *     buffered updates of the same location are flushed first
 *     (coherence). Seen late, those could only make a waker wake more.
 *   - Locks are release/acquire, not fences: a thread takes a lock only
 *     once every store the last releaser made before its unlock is
 *     visible; the releaser's own later loads may still pass them.
 *     Lock-protected data (queue length, idle stack, idle-core count,
 *     searching, granted core) is plain. A critical section is one step,
 *     or, when it loads lock-free data (reclaim_locked), a step to take
 *     the lock, one per load, and one to release it (Lipton's reduction:
 *     lock acquisition moves right, release left).
 *   - -DX86_LOCKED_RMW: RMWs, lock and unlock (locked instructions in
 *     glibc) drain the buffer first, as x86's lock prefix does; plain
 *     stores (the deque push) stay buffered.
 *   A fence and the load after it are one step (the buffer cannot refill
 *   in between), as are an append to the buffer and the step before it.
 *
 * The property, and why checking it at a deadlock is sound
 *   "No work is left queued while every worker sleeps." A watchdog waits
 *   for Promela's timeout, enabled only when no process can move: the
 *   submitter has finished, every buffer is empty, and every worker
 *   sleeps in ferry__park_token with its token taken (nothing can wake it
 *   any more, in the model or in the program). It asserts that the
 *   injection queue and every deque are empty and that every task ran
 *   (exactly once: each is counted as it is taken). Also asserted on the
 *   way: nsearching never goes below 0, a worker in next_task holds a
 *   core, an idle core has an idle worker. An exhaustive search without
 *   errors (pan -DSAFETY) covers every interleaving; an execution that
 *   loops forever never sleeps with work queued (the looping worker finds
 *   it), so it is not a lost wake-up.
 *   end_searching's fence is not varied: without it the last searcher
 *   could miss work a submitter left to it, but that searcher then runs a
 *   task and finds the work the next time it looks: latency, not a loss,
 *   and the quiescent property cannot see it.
 *
 * Variants (spin -D...)
 *   NO_NOTIFY_FENCE  drop the fence of ferry__notify (submitter side)
 *   NO_PARK_FENCE    drop the fence of ferry__park_worker (worker side)
 *   X86_LOCKED_RMW   RMWs, lock and unlock drain the buffer (x86)
 *   TRYFAILS         failed tries of the injection lock per worker
 *                    (default 1)
 *   NW NSUB NNEST SWEEPS TRIES  sizes (defaults 2 2 1 1 2; park.c has
 *                    TRIES 4, and SPIN_ROUNDS sweeps: the bounds only end
 *                    the loops, each exit takes the same path)
 *
 * The model prints its events ("@ ..." lines; T<n> is thread n: workers
 * are 0 .. NW-1, the submitter NW); replayed counter-examples are matched
 * against those, not against spin's step numbers.
 */

#ifndef NW
#define NW 2 /* workers, and cores (ferry_pool_opts.threads) */
#endif
#ifndef NSUB
#define NSUB 2 /* tasks the outside submitter submits */
#endif
#ifndef NNEST
#define NNEST 1 /* nested submits from running tasks, in all */
#endif
#ifndef SWEEPS
#define SWEEPS 1 /* empty search sweeps before parking (SPIN_ROUNDS) */
#endif
#ifndef TRYFAILS
#define TRYFAILS 1 /* failed injection-lock tries per worker */
#endif
#ifndef TRIES
#define TRIES 2 /* start_searcher's attempts (4 in park.c) */
#endif

#define NCORES NW
#define S NW        /* the submitter's thread number */
#define NT (NW + 1) /* threads with a store buffer */
#define BUF 4       /* store buffer entries per thread */
#define FREE 255

#define SCHED 0 /* sched.lock */
#define INJ 1   /* inject.lock */

#define EMPTY 0 /* park token */
#define NOTIFIED 1
#define PARKED 2

/* store buffer entries */
#define E_NE1 1   /* nonempty = 1 */
#define E_NSDEC 2 /* nsearching -= 1 (an RMW whose result is unused) */
#define E_DQ 3    /* own deque: bottom += 1 (a push) */
#define E_IDLE0 8 /* nidle_cores = v: E_IDLE0 + v */

/* return points of the worker's subroutines */
#define R_FIND 1
#define R_SEARCH 2
#define R_SPLIT 3
#define R_NEST 4
#define R_END 5

/* ---- shared memory ---- */
byte qlen;        /* inject.len (inject.lock) */
bit nonempty;     /* inject.nonempty */
byte tryfails[NW]; /* failed ferry__inject_try_pop_batch locks, per worker */
byte dq[NW];      /* deque lengths as thieves see them */
byte cores_idle;  /* the idle-core list's length (sched.lock) */
byte nidle_cores; /* sched.nidle_cores, read without the lock */
byte nsearching;
bit core[NW];     /* the worker holds a core (sched.lock, or its owner) */
bit searching[NW];
bit idle[NW];     /* on the idle stack (sched.lock) */
byte stack[NW];   /* the idle stack, top at nidle - 1 (sched.lock) */
byte nidle;
byte tok[NW];     /* park tokens */
byte ran;         /* tasks taken to run */
byte nested;      /* nested submits so far */

/* store buffers: thread t's FIFO is buf[t * BUF .. t * BUF + blen[t]),
 * with how many entries it holds per location */
byte buf[NT * BUF];
byte blen[NT];
byte pend_ne[NT];
byte pend_ns[NT];
byte pend_idle[NT];

/* locks: the holder (only tracked while held across steps), and the last
 * releaser with how many of its stores made before its unlock are still
 * buffered */
byte lk_holder[2] = FREE;
byte lk_last[2];
byte lk_owed[2];

byte i_; /* scratch inside single atomic steps, left 0 after them */
byte e_;

#define LOCKABLE(L, t) \
    (lk_holder[L] == FREE && (lk_last[L] == (t) || lk_owed[L] == 0))

/* Taking a lock: x86's locked instruction drains the buffer; otherwise
 * room for the two appends a section may make. */
#ifdef X86_LOCKED_RMW
#define CS_GUARD(t) (blen[t] == 0)
#else
#define CS_GUARD(t) (blen[t] + 2 <= BUF)
#endif

/* The fences, which the variants drop. A fence is the guard of the step
 * that follows it. */
#ifdef NO_NOTIFY_FENCE
#define NOTIFY_FENCE(t) true
#else
#define NOTIFY_FENCE(t) (blen[t] == 0)
#endif
#ifdef NO_PARK_FENCE
#define PARK_FENCE(t) true
#else
#define PARK_FENCE(t) (blen[t] == 0)
#endif

inline cs_end(L, t)
{
    lk_holder[L] = FREE;
    lk_last[L] = t;
    lk_owed[L] = blen[t]
}

/* append to t's buffer; the caller's step made sure there is room */
inline st_nb(t, e)
{
    assert(blen[t] < BUF);
    buf[t * BUF + blen[t]] = e;
    blen[t]++;
    if
    :: e == E_NE1 -> pend_ne[t]++
    :: e == E_NSDEC -> pend_ns[t]++
    :: e >= E_IDLE0 -> pend_idle[t]++
    :: else
    fi
}

/* stores inside a critical section: on x86 the unlock's locked
 * instruction makes them visible before anything after the section */
inline st_cs_ne1(t)
{
#ifdef X86_LOCKED_RMW
    nonempty = 1
#else
    st_nb(t, E_NE1)
#endif
}

inline st_cs_idle(t, v)
{
#ifdef X86_LOCKED_RMW
    nidle_cores = v
#else
    st_nb(t, E_IDLE0 + v)
#endif
}

/* nsearching-- with its result unused, in a step with room in the buffer
 * (x86: a locked instruction, in a step whose buffer is empty) */
inline ns_dec(t)
{
#ifdef X86_LOCKED_RMW
    assert(blen[t] == 0 && nsearching > 0);
    nsearching--;
    printf("@ T%d nsearching--\n", t)
#else
    st_nb(t, E_NSDEC);
    printf("@ T%d nsearching-- (buffered)\n", t)
#endif
}

/* The guard of an RMW on nsearching whose result is used: t's own
 * earlier updates first (coherence); x86: the lock prefix drains. */
#ifdef X86_LOCKED_RMW
#define NS_RMW(t) (blen[t] == 0)
#else
#define NS_RMW(t) (pend_ns[t] == 0)
#endif

/* loads as thread t sees them: its own buffered stores are forwarded */
inline fwd_ne(t, x)
{
    x = nonempty;
    i_ = 0;
    do
    :: i_ < blen[t] ->
        if
        :: buf[t * BUF + i_] == E_NE1 -> x = 1
        :: else
        fi;
        i_++
    :: else -> i_ = 0; break
    od
}

inline fwd_idle(t, x)
{
    x = nidle_cores;
    i_ = 0;
    do
    :: i_ < blen[t] ->
        if
        :: buf[t * BUF + i_] >= E_IDLE0 -> x = buf[t * BUF + i_] - E_IDLE0
        :: else
        fi;
        i_++
    :: else -> i_ = 0; break
    od
}

inline fwd_ns(t, x)
{
    x = nsearching;
    i_ = 0;
    do
    :: i_ < blen[t] ->
        if
        :: buf[t * BUF + i_] == E_NSDEC -> x--
        :: else
        fi;
        i_++
    :: else -> i_ = 0; break
    od
}

inline fwd_dq(t, q, x)
{
    x = dq[q];
    i_ = 0;
    do
    :: q == t && i_ < blen[t] ->
        if
        :: buf[t * BUF + i_] == E_DQ -> x++
        :: else
        fi;
        i_++
    :: else -> i_ = 0; break
    od
}

/* ferry__work_visible by t, its first load guarded by G (a fence) */
inline work_visible(t, vis, G)
{
    atomic {
        G -> fwd_ne(t, x); vis = (x != 0); x = 0;
        printf("@ T%d work_visible: load nonempty: %d\n", t, vis)
    };
    q = 0;
    do
    :: !vis && q < NW ->
        atomic {
            fwd_dq(t, q, x); vis = (x > 0); x = 0;
            printf("@ T%d work_visible: load deque %d length: %d\n", t, q, vis);
            q++
        }
    :: else -> q = 0; break
    od
}

/* ferry__wakep by thread t, its first load guarded by G (the notify
 * fence), then start_searcher. Ends at wake_ret, a label of the proctype
 * that expands it (once per proctype). */
inline wakep(t, G)
{
    atomic {
        G ->
        fwd_ns(t, x);
        if
        :: x != 0 -> ok = 0; printf("@ T%d load nsearching: %d, no wake-up\n", t, x)
        :: else -> ok = 1; printf("@ T%d load nsearching: 0\n", t)
        fi;
        x = 0
    };
    if
    :: ok ->
        atomic {
            fwd_idle(t, x);
            if
            :: x == 0 -> ok = 0; printf("@ T%d load nidle_cores: 0, no wake-up\n", t)
            :: else -> printf("@ T%d load nidle_cores: %d\n", t, x)
            fi;
            x = 0
        }
    :: else
    fi;
    if
    :: ok ->
        atomic {
            NS_RMW(t) ->
            if
            :: nsearching == 0 -> nsearching = 1;
                printf("@ T%d CAS nsearching 0 -> 1\n", t)
            :: else -> ok = 0;
                printf("@ T%d CAS nsearching fails, no wake-up\n", t)
            fi
        }
    :: else
    fi;
    if
    :: !ok -> goto wake_ret
    :: else
    fi;
    /* start_searcher */
    tries = 0;
ss_try:
    atomic {
        LOCKABLE(SCHED, t) && CS_GUARD(t) && pend_idle[t] == 0 ->
        if
        :: cores_idle > 0 ->
            /* ferry__core_get_locked; start_with_core pops the idle stack
             * (a worker is there: no spares are modelled) */
            cores_idle--;
            nidle_cores = cores_idle;
            assert(nidle > 0);
            nidle--;
            w2 = stack[nidle];
            stack[nidle] = 0;
            idle[w2] = 0;
            core[w2] = 1;
            searching[w2] = 1;
            printf("@ T%d pops W%d, grants it a core, searching\n", t, w2);
            cs_end(SCHED, t)
        :: else -> ok = 0;
            printf("@ T%d finds no idle core\n", t);
            cs_end(SCHED, t);
            /* undo (then fence and re-check, like any searcher that
             * stops) */
            ns_dec(t)
        fi
    };
    if
    :: ok ->
        atomic {
            tok[w2] = NOTIFIED;
            printf("@ T%d unparks W%d\n", t, w2);
            w2 = 0;
            ok = 0
        };
        goto wake_ret
    :: else
    fi;
    work_visible(t, ok, blen[t] == 0);
    if
    :: ok -> atomic { fwd_idle(t, x); ok = (x != 0); x = 0 }
    :: else
    fi;
    if
    :: !ok -> goto wake_ret
    :: else
    fi;
    atomic {
        NS_RMW(t) ->
        if
        :: nsearching == 0 -> nsearching = 1
        :: else -> ok = 0
        fi
    };
    if
    :: !ok -> goto wake_ret
    :: else
    fi;
    tries++;
    if
    :: tries < TRIES -> goto ss_try
    :: else
    fi;
    /* still failing: give up */
    atomic {
#ifdef X86_LOCKED_RMW
        blen[t] == 0 ->
#else
        blen[t] < BUF ->
#endif
        ns_dec(t);
        ok = 0
    }
}

proctype flush(byte t)
{
end_flush:
    do
    :: atomic {
        blen[t] > 0 ->
        e_ = buf[t * BUF];
        if
        :: e_ == E_NE1 -> nonempty = 1; pend_ne[t]--;
            printf("@ T%d nonempty=1 becomes visible\n", t)
        :: e_ == E_NSDEC -> assert(nsearching > 0); nsearching--; pend_ns[t]--;
            printf("@ T%d nsearching-- becomes visible\n", t)
        :: e_ == E_DQ -> dq[t]++;
            printf("@ T%d deque push becomes visible\n", t)
        :: e_ >= E_IDLE0 -> nidle_cores = e_ - E_IDLE0; pend_idle[t]--;
            printf("@ T%d nidle_cores=%d becomes visible\n", t, nidle_cores)
        fi;
        i_ = 0;
        do
        :: i_ < BUF - 1 -> buf[t * BUF + i_] = buf[t * BUF + i_ + 1]; i_++
        :: else -> i_ = 0; break
        od;
        e_ = 0;
        buf[t * BUF + BUF - 1] = 0;
        blen[t]--;
        if
        :: lk_last[SCHED] == t && lk_owed[SCHED] > 0 -> lk_owed[SCHED]--
        :: else
        fi;
        if
        :: lk_last[INJ] == t && lk_owed[INJ] > 0 -> lk_owed[INJ]--
        :: else
        fi
    }
    od
}

/* The outside submitter: ferry__submit's injection path, NSUB times. */
proctype submitter()
{
    byte x;
    byte q;
    byte k;
    byte tries;
    byte w2;
    bit ok;
    bit edge;
    do
    :: k < NSUB ->
        atomic {
            LOCKABLE(INJ, S) && CS_GUARD(S) ->
            edge = (qlen == 0);
            qlen++;
            if
            :: edge -> st_cs_ne1(S);
                printf("@ S push onto an empty queue: store nonempty=1\n")
            :: else -> printf("@ S push: queue non-empty, no notify\n")
            fi;
            cs_end(INJ, S)
        };
        if
        :: edge -> edge = 0; wakep(S, NOTIFY_FENCE(S)) /* ferry__notify */
        :: else
        fi;
wake_ret:
        k++
    :: else -> break
    od
}

proctype worker(byte w)
{
    byte x;
    byte q;
    byte n;
    byte k;
    byte rest;
    byte tries;
    byte w2;
    byte dry;
    byte ret_pop;
    byte ret_wake;
    bit got;
    bit ok;
    bit vis;
    bit nf;
    byte back;

    goto end_sleep; /* the pool starts idle: see init */
main:
    /* next_task: ferry__find_local = deque take (whose seq_cst fence
     * drains our buffer), then pop_inject */
    atomic {
        blen[w] == 0 ->
        assert(core[w]);
        if
        :: dq[w] > 0 -> dq[w]--; got = 1;
            printf("@ W%d takes a task from its deque\n", w)
        :: else
        fi
    };
    if
    :: got -> goto found
    :: else -> ret_pop = R_FIND; goto pop_inject
    fi;
after_find:
    if
    :: got -> goto found
    :: else
    fi;
    /* ferry__begin_searching: a relaxed load for the cap, then the RMW */
    if
    :: searching[w]
    :: else ->
        atomic { fwd_ns(w, x); ok = (2 * x < NCORES); x = 0 };
        if
        :: ok ->
            atomic {
                NS_RMW(w) -> nsearching++; searching[w] = 1; ok = 0;
                printf("@ W%d begins searching\n", w)
            }
        :: else -> printf("@ W%d may not search (cap)\n", w); goto park
        fi
    fi;
    /* search: SWEEPS empty sweeps of steal_any and pop_inject */
sweep:
    atomic {
        /* steal_any: one task, then up to half of the rest onto our own
         * deque (one step here; each steal is a CAS in the code) */
        q = 0;
        do
        :: q < NW && q != w && dq[q] > 0 ->
            dq[q]--;
            got = 1;
            n = dq[q] / 2;
            dq[q] = dq[q] - n;
            dq[w] = dq[w] + n;
            printf("@ W%d steals %d tasks from W%d\n", w, n + 1, q);
            n = 0;
            break
        :: q < NW && (q == w || dq[q] == 0) -> q++
        :: q >= NW -> break
        od;
        q = 0
    };
    if
    :: got -> goto found
    :: else -> ret_pop = R_SEARCH; goto pop_inject
    fi;
after_search:
    if
    :: got -> goto found
    :: else
    fi;
    dry++;
    if
    :: dry < SWEEPS -> goto sweep
    :: else -> dry = 0; printf("@ W%d finds nothing\n", w); goto park
    fi;

found:
    dry = 0;
    got = 0;
    /* ferry__end_searching */
    if
    :: searching[w] ->
        atomic {
            NS_RMW(w) ->
            searching[w] = 0;
            x = nsearching;
            assert(x > 0);
            nsearching--;
            printf("@ W%d stops searching (nsearching was %d)\n", w, x)
        };
        if
        :: x == 1 ->
            x = 0;
            work_visible(w, vis, blen[w] == 0); /* after the fence */
            if
            :: vis -> vis = 0; ret_wake = R_END; nf = 0; goto wakep_sub
            :: else
            fi
        :: else -> x = 0
        fi
    :: else
    fi;
after_end:
    /* run the task; it may submit a nested task (ferry__submit from a
     * worker: push on our deque, then ferry__notify) */
    if
    :: atomic {
        nested < NNEST && blen[w] < BUF ->
        ran++;
        nested++;
        st_nb(w, E_DQ);
        printf("@ W%d runs a task (%d run); it pushes a nested task on its deque\n", w, ran)
    };
        ret_wake = R_NEST;
        nf = 1;
        goto wakep_sub
    :: atomic { ran++; printf("@ W%d runs a task (%d run)\n", w, ran) }
    fi;
after_nest:
    goto main;

pop_inject:
    /* pop_inject / ferry__inject_(try_)pop_batch: one lock section (the ring,
     * then the list, nothing put back) */
    atomic { fwd_ne(w, x); got = (x != 0); x = 0 };
    if
    :: !got -> goto pop_ret
    :: else
    fi;
    atomic {
        if
        :: qlen > 0 && tryfails[w] < TRYFAILS ->
            /* ferry__inject_try_pop_batch finds the lock held: nothing, no
             * wait. Sections are single steps here (Lipton), so a section
             * in progress is not a state: the try may fail at any step
             * (with qlen == 0 a failure is the same as the empty pop),
             * TRYFAILS times per worker to keep the search finite. */
            tryfails[w]++;
            got = 0;
            printf("@ W%d finds the injection lock held\n", w)
        :: LOCKABLE(INJ, w) && CS_GUARD(w) && pend_ne[w] == 0 ->
            /* take len / cores + 1, at most what is there */
            n = qlen;
            k = n / NCORES + 1;
            if
            :: n <= k -> k = n; rest = 0
            :: else -> rest = n - k
            fi;
            qlen = rest;
            if
            :: n == 0 -> got = 0
            :: n != 0 && rest == 0 -> nonempty = 0
            :: else
            fi;
            printf("@ W%d pops %d of %d tasks\n", w, k, n);
            n = 0;
            cs_end(INJ, w)
        fi
    };
    if
    :: !got -> goto pop_ret
    :: else
    fi;
    /* push_local: the batch beyond the first task onto our deque */
    atomic {
        dq[w] = dq[w] + k - 1;
        printf("@ W%d pushes %d of them on its deque\n", w, k - 1);
        k = 0
    };
    if
    :: rest > 0 -> rest = 0; ret_wake = R_SPLIT; nf = 1; goto wakep_sub
    :: else
    fi;
split_back:
pop_ret:
    if
    :: ret_pop == R_FIND -> ret_pop = 0; goto after_find
    :: ret_pop == R_SEARCH -> ret_pop = 0; goto after_search
    fi;

wakep_sub:
    /* ferry__notify (nf: the fence first) or ferry__wakep */
    wakep(w, (!nf || NOTIFY_FENCE(w)));
wake_ret:
    nf = 0;
    if
    :: ret_wake == R_SPLIT -> ret_wake = 0; goto split_back
    :: ret_wake == R_NEST -> ret_wake = 0; goto after_nest
    :: ret_wake == R_END -> ret_wake = 0; goto after_end
    fi;

park:
    /* ferry__park_worker */
    atomic {
        LOCKABLE(SCHED, w) && CS_GUARD(w) ->
        /* ferry__core_release_locked, then idle_push_locked */
        core[w] = 0;
        cores_idle++;
        st_cs_idle(w, cores_idle);
        stack[nidle] = w;
        nidle++;
        idle[w] = 1;
        printf("@ W%d releases its core (store nidle_cores=%d), goes on the idle stack\n", w, cores_idle);
        cs_end(SCHED, w);
        if
        :: searching[w] -> searching[w] = 0; ns_dec(w)
        :: else
        fi
    };
    /* the fence, then lock(sched) for reclaim_locked */
    atomic {
        PARK_FENCE(w) && LOCKABLE(SCHED, w) && CS_GUARD(w) ->
        if
        :: idle[w] -> back = 2; lk_holder[SCHED] = w
        :: else -> back = 1; cs_end(SCHED, w);
            printf("@ W%d was popped meanwhile\n", w)
        fi
    };
    if
    :: back == 2 ->
        work_visible(w, vis, true);
        atomic {
            pend_idle[w] == 0 ->
            if
            :: vis && cores_idle > 0 ->
                cores_idle--;
                nidle_cores = cores_idle;
                /* idle_remove_locked */
                i_ = 0;
                do
                :: stack[i_] == w -> break
                :: else -> i_++
                od;
                do
                :: i_ + 1 < nidle -> stack[i_] = stack[i_ + 1]; i_++
                :: else -> i_ = 0; break
                od;
                nidle--;
                stack[nidle] = 0;
                idle[w] = 0;
                core[w] = 1;
                back = 1;
                printf("@ W%d re-check: work visible, takes a core back\n", w)
            :: else -> back = 0;
                printf("@ W%d re-check: no work visible (or no idle core)\n", w)
            fi;
            vis = 0;
            cs_end(SCHED, w)
        }
    :: else
    fi;
    if
    :: back -> back = 0; goto main
    :: else
    fi;
idle_loop:
    /* ferry__idle_worker */
    atomic {
        LOCKABLE(SCHED, w) && CS_GUARD(w) ->
        back = !idle[w];
        cs_end(SCHED, w)
    };
    if
    :: back -> back = 0; goto main
    :: else
    fi;
    /* ferry__park_token(w, 0) */
    atomic {
        if
        :: tok[w] == NOTIFIED -> tok[w] = EMPTY; got = 1
        :: else -> tok[w] = PARKED; got = 0;
            printf("@ W%d sleeps\n", w)
        fi
    };
    if
    :: got -> got = 0; goto idle_loop
    :: else
    fi;
end_sleep:
    atomic {
        tok[w] == NOTIFIED -> tok[w] = EMPTY;
        printf("@ W%d wakes up\n", w)
    };
    goto idle_loop
}

active proctype watchdog()
{
    byte q;
    byte left;
    timeout;
    do
    :: q < NW -> left = left + dq[q]; q++
    :: else -> break
    od;
    printf("@ quiescent: every worker asleep; injection queue %d, deques %d, ran %d of %d\n",
        qlen, left, ran, NSUB + nested);
    if
    :: qlen != 0 || left != 0 ->
        printf("@ LOST WAKE-UP: work queued, every worker asleep\n")
    :: else
    fi;
    assert(qlen == 0 && left == 0 && ran == NSUB + nested)
}

init
{
    byte t;
    atomic {
        do
        :: t < NT -> run flush(t); t++
        :: else -> break
        od;
        /* an idle pool: every worker parked, every core idle */
        t = 0;
        do
        :: t < NW ->
            stack[t] = t;
            idle[t] = 1;
            tok[t] = PARKED;
            run worker(t);
            t++
        :: else -> break
        od;
        nidle = NW;
        cores_idle = NW;
        nidle_cores = NW;
        run submitter()
    }
}
