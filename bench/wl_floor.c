/*
 * bench/wl_floor.c: the wake-latency floors, group "wake", and the
 * hand-over floors, group "tput".
 *
 * floor.epoll: two threads ping-pong through two eventfds, each thread
 *   sleeping in epoll_wait on its own eventfd, as a loop thread sleeps.
 *   One round trip = two cross-thread wake-ups of a sleeping thread; the
 *   figures are ROUND TRIPS (one-way is about half). Nothing a loop and a
 *   pool do can wake a sleeping thread faster than this without spinning,
 *   which is why issue 5 states ferry's wake target against it.
 * floor.spin: the same ping-pong through two atomics with both threads
 *   spinning (bounded: they yield after a few thousand rounds). The cost of
 *   moving a cache line there and back: what a loop pays when it spins
 *   instead of sleeping. Reference only.
 *
 * floor.tput: what handing no-op jobs to another core and back costs on
 *   this machine with no library at all. The main thread writes a 192-byte
 *   job (three lines, as ferry's offload block) and hands its pointer to a
 *   spinning worker through a single-producer ring; the worker reads the
 *   three lines, writes a result into the first and hands the pointer back
 *   through a second ring; window of 1024, as ferry.tput. No locked
 *   instruction anywhere: the rings are a release store of the tail and an
 *   acquire load of it (Lamport's single-producer queue).
 * floor.tput.locked: the same with one locked read-modify-write per job on
 *   each side, on a line no other thread touches (no contention): what a
 *   hand-over pays once each side must fence per job, as a reference
 *   count, a CAS on a job's state or a Treiber push all do (x86 drains
 *   the store buffer at each).
 *   Two environment variables reshape both floors for exploration:
 *   FERRY_FLOOR_LINES (1-3, default 3) lines of the job written and read,
 *   FERRY_FLOOR_LOCKS (1-16, default 1) locked RMWs per job per side.
 *
 * Verification: the responder counts the pings it answered and must have
 * answered every one; every wait is bounded (10 s) and a timeout fails the
 * run. The first 10 % of round trips warm up and are not recorded. The
 * hand-over floors count the jobs each side handled and check the sum of
 * the results against the sequence numbers submitted.
 *
 * Thread: main thread = pinger or submitter; one responder or worker
 * thread per run.
 */
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define WAIT_MS 10000

struct efd_pp {
    int efd[2];        /* [0] wakes the pinger, [1] the responder */
    int ep[2];         /* one epoll instance per thread */
    _Atomic bool stop; /* set before the last ping */
    uint64_t answered; /* responder's count, read after join */
    int err;           /* responder's error, read after join */
};

/* Sleep in epoll_wait until efd is readable, then consume it. */
static int wait_efd(int ep, int efd)
{
    struct epoll_event ev;
    int n;
    do {
        n = epoll_wait(ep, &ev, 1, WAIT_MS);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    uint64_t v;
    return read(efd, &v, sizeof v) == sizeof v ? 0 : -errno;
}

static int signal_efd(int efd)
{
    uint64_t one = 1;
    return write(efd, &one, sizeof one) == sizeof one ? 0 : -errno;
}

static void *efd_responder(void *arg)
{
    struct efd_pp *pp = arg;
    for (;;) {
        pp->err = wait_efd(pp->ep[1], pp->efd[1]);
        if (pp->err < 0 || atomic_load(&pp->stop))
            return NULL;
        pp->answered++;
        pp->err = signal_efd(pp->efd[0]);
        if (pp->err < 0)
            return NULL;
    }
}

static int efd_open(struct efd_pp *pp)
{
    memset(pp, 0, sizeof *pp);
    pp->efd[0] = pp->efd[1] = pp->ep[0] = pp->ep[1] = -1;
    for (int i = 0; i < 2; i++) {
        pp->efd[i] = eventfd(0, EFD_CLOEXEC);
        pp->ep[i] = epoll_create1(EPOLL_CLOEXEC);
        if (pp->efd[i] < 0 || pp->ep[i] < 0)
            return -errno;
        struct epoll_event ev = {.events = EPOLLIN};
        if (epoll_ctl(pp->ep[i], EPOLL_CTL_ADD, pp->efd[i], &ev) < 0)
            return -errno;
    }
    return 0;
}

static void efd_close(struct efd_pp *pp)
{
    for (int i = 0; i < 2; i++) {
        if (pp->efd[i] >= 0)
            close(pp->efd[i]);
        if (pp->ep[i] >= 0)
            close(pp->ep[i]);
    }
}

/* The pinger's side: total round trips, the last n recorded into h. */
static int efd_ping(struct efd_pp *pp, uint64_t total, uint64_t n,
                    struct bench_hist *h)
{
    for (uint64_t i = 0; i < total; i++) {
        uint64_t t0 = bench_now();
        int rc = signal_efd(pp->efd[1]);
        if (rc == 0)
            rc = wait_efd(pp->ep[0], pp->efd[0]);
        if (rc < 0)
            return rc;
        if (i >= total - n)
            bench_hist_record(h, bench_now() - t0);
    }
    return 0;
}

static int run_epoll(struct bench_ctx *c)
{
    uint64_t n = bench_size(c, 5000, 200), total = n + n / 10;
    struct efd_pp pp;
    pthread_t th;
    int rc = efd_open(&pp);
    if (rc == 0)
        rc = -pthread_create(&th, NULL, efd_responder, &pp);
    if (rc < 0) {
        efd_close(&pp);
        return rc;
    }
    struct bench_hist *h = malloc(sizeof *h);
    if (h != NULL) {
        bench_hist_init(h);
        rc = efd_ping(&pp, total, n, h);
    }
    /* Release the responder whatever happened; it exits on stop or on its
     * own bounded wait. */
    atomic_store(&pp.stop, true);
    signal_efd(pp.efd[1]);
    pthread_join(th, NULL);
    efd_close(&pp);
    bench_check(c, h != NULL && rc == 0, "pinger: %s",
                h ? strerror(-rc) : "out of memory");
    bench_check(c, pp.err == 0, "responder: %s", strerror(-pp.err));
    if (bench_expect(c, "pings answered", pp.answered, total))
        bench_latency(c, h);
    free(h);
    return 0;
}

struct spin_pp {
    alignas(FERRY__CACHELINE) _Atomic uint64_t ping; /* pinger writes */
    alignas(FERRY__CACHELINE) _Atomic uint64_t pong; /* responder writes */
    uint64_t total;
    _Atomic int err;
};

static void *spin_responder(void *arg)
{
    struct spin_pp *pp = arg;
    for (uint64_t i = 1; i <= pp->total; i++) {
        if (!bench_wait_u64(&pp->ping, i)) {
            atomic_store(&pp->err, -ETIMEDOUT);
            return NULL;
        }
        atomic_store_explicit(&pp->pong, i, memory_order_release);
    }
    return NULL;
}

static int run_spin(struct bench_ctx *c)
{
    uint64_t n = bench_size(c, 50000, 200), total = n + n / 10;
    struct spin_pp *pp = bench_zalloc_aligned(sizeof *pp);
    struct bench_hist *h = malloc(sizeof *h);
    pthread_t th;
    int rc = pp && h ? 0 : -ENOMEM;
    if (rc == 0) {
        pp->total = total;
        bench_hist_init(h);
        rc = -pthread_create(&th, NULL, spin_responder, pp);
    }
    uint64_t i = 1;
    for (; rc == 0 && i <= total; i++) {
        uint64_t t0 = bench_now();
        atomic_store_explicit(&pp->ping, i, memory_order_release);
        if (!bench_wait_u64(&pp->pong, i))
            break;
        if (i > total - n)
            bench_hist_record(h, bench_now() - t0);
    }
    if (rc == 0) {
        /* On a timeout, let the responder run out of pings too. */
        atomic_store(&pp->ping, UINT64_MAX);
        pthread_join(th, NULL);
        bench_check(c, atomic_load(&pp->err) == 0, "responder timed out");
        if (bench_expect(c, "round trips", i - 1, total))
            bench_latency(c, h);
    }
    free(pp);
    free(h);
    return rc;
}

/* ---- hand-over floors ---- */

#define HO_WINDOW 1024
#define HO_RING 2048 /* more than the window: a ring never fills */
#define HO_TOKEN 0x5bd1e995u

struct ho_job {
    /* 192 bytes, three lines, on a FERRY__CACHELINE stride (256 bytes):
     * neighbours share no adjacent-line pair, so the floor stays a floor */
    alignas(FERRY__CACHELINE) uint64_t w[24];
};

/* Lamport's single-producer single-consumer ring: the producer writes the
 * slot, then publishes it with a release store of tail; the consumer's
 * acquire load of tail makes the slot (and the job behind it) visible. */
struct ho_ring {
    alignas(FERRY__CACHELINE) _Atomic uint64_t tail; /* producer writes */
    alignas(FERRY__CACHELINE) uint64_t head;         /* consumer only */
    alignas(FERRY__CACHELINE) struct ho_job *slot[HO_RING];
};

/* Every field a side writes per job sits on a line (FERRY__CACHELINE, the
 * adjacent-line pair) of that side's own, apart from what the other side
 * reads per job: otherwise the locked variant would measure contention. */
struct ho {
    struct ho_ring to_worker, to_main;
    alignas(FERRY__CACHELINE) uint64_t total; /* read-only while running */
    unsigned lines; /* of the job written and read: 1..3 */
    unsigned locks; /* locked RMWs per job per side */
    alignas(FERRY__CACHELINE) _Atomic uint64_t fence_worker;
    uint64_t handled; /* worker's count, read after join */
    alignas(FERRY__CACHELINE) _Atomic uint64_t fence_main;
    alignas(FERRY__CACHELINE) _Atomic int err; /* written on failure only */
};

static void ho_push(struct ho_ring *r, struct ho_job *j)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    r->slot[t % HO_RING] = j;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

/* The next job, spinning (then yielding) for it; NULL after
 * BENCH_WAIT_TIMEOUT_NS or once err is set by the other side. */
static struct ho_job *ho_pop(struct ho *h, struct ho_ring *r)
{
    uint64_t deadline = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&r->tail, memory_order_acquire) != r->head)
            return r->slot[r->head++ % HO_RING];
        if (i < 4096) {
            ferry__cpu_relax();
            continue;
        }
        if (deadline == 0)
            deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS;
        if (bench_now() > deadline || atomic_load(&h->err) != 0)
            return NULL;
        sched_yield();
    }
}

static void ho_write(const struct ho *h, struct ho_job *j, uint64_t seq)
{
    for (unsigned l = 0; l < h->lines; l++)
        j->w[8 * l] = seq; /* one word on each line */
}

static uint64_t ho_read(const struct ho *h, const struct ho_job *j)
{
    uint64_t v = 0;
    for (unsigned l = 0; l < h->lines; l++)
        v += j->w[8 * l];
    return v;
}

static void *ho_worker(void *arg)
{
    struct ho *h = arg;
    for (; h->handled < h->total; h->handled++) {
        struct ho_job *j = ho_pop(h, &h->to_worker);
        if (j == NULL) {
            atomic_store(&h->err, -ETIMEDOUT);
            return NULL;
        }
        j->w[1] = ho_read(h, j) ^ HO_TOKEN;
        for (unsigned k = 0; k < h->locks; k++)
            atomic_fetch_add_explicit(&h->fence_worker, 1,
                                      memory_order_relaxed);
        ho_push(&h->to_main, j);
    }
    return NULL;
}

/* The submitting side: the window, then one new job per result. */
static int ho_main(struct ho *h, struct ho_job *jobs, uint64_t *sum)
{
    uint64_t seq = 0;
    for (; seq < HO_WINDOW && seq < h->total; seq++) {
        ho_write(h, &jobs[seq], seq);
        ho_push(&h->to_worker, &jobs[seq]);
    }
    for (uint64_t done = 0; done < h->total; done++) {
        struct ho_job *j = ho_pop(h, &h->to_main);
        if (j == NULL)
            return -ETIMEDOUT;
        *sum += j->w[1];
        for (unsigned k = 0; k < h->locks; k++)
            atomic_fetch_add_explicit(&h->fence_main, 1, memory_order_relaxed);
        if (seq < h->total) {
            ho_write(h, j, seq++);
            ho_push(&h->to_worker, j);
        }
    }
    return 0;
}

/* A knob for exploring the floor's shape (README, Performance): the
 * variable's value if it is a number in [lo, hi], else dflt. */
static unsigned ho_env(const char *name, unsigned dflt, unsigned lo,
                       unsigned hi)
{
    const char *v = getenv(name);
    char *end;
    unsigned long n = v != NULL ? strtoul(v, &end, 10) : 0;
    return v != NULL && *v != '\0' && *end == '\0' && n >= lo && n <= hi
               ? (unsigned)n
               : dflt;
}

static int run_handover(struct bench_ctx *c, bool locked)
{
    struct ho *h = bench_zalloc_aligned(sizeof *h);
    struct ho_job *jobs = bench_zalloc_aligned(HO_WINDOW * sizeof *jobs);
    pthread_t th;
    int rc = h && jobs ? 0 : -ENOMEM;
    uint64_t sum = 0, want = 0, ns = 0;
    if (rc == 0) {
        h->total = bench_size(c, BENCH_TPUT_OFFLOADS, 5000);
        h->lines = ho_env("FERRY_FLOOR_LINES", 3, 1, 3);
        h->locks = locked ? ho_env("FERRY_FLOOR_LOCKS", 1, 1, 16) : 0;
        rc = -pthread_create(&th, NULL, ho_worker, h);
    }
    if (rc == 0) {
        uint64_t t0 = bench_now();
        rc = ho_main(h, jobs, &sum);
        ns = bench_now() - t0;
        if (rc < 0)
            atomic_store(&h->err, rc); /* lets the worker give up */
        pthread_join(th, NULL);
        for (uint64_t i = 0; i < h->total; i++)
            want += (h->lines * i) ^ HO_TOKEN;
        int err = rc < 0 ? rc : atomic_load(&h->err);
        if (bench_check(c, err == 0, "hand-over: %s", strerror(-err)) &&
            bench_expect(c, "jobs handled", h->handled, h->total) &&
            bench_expect(c, "checksum", sum, want))
            bench_tput(c, h->total, ns);
        rc = 0;
    }
    free(h);
    free(jobs);
    return rc;
}

static int run_handover_plain(struct bench_ctx *c)
{
    return run_handover(c, false);
}

static int run_handover_locked(struct bench_ctx *c)
{
    return run_handover(c, true);
}

static const struct bench_wl workloads[] = {
    {"floor.epoll", "wake", "floor", "ferry.wake",
     "eventfd+epoll ping-pong between two sleeping threads (round trip)",
     run_epoll, NULL},
    {"floor.spin", "wake", "floor", "ferry.wake",
     "atomic ping-pong between two spinning threads (round trip; bounded "
     "spin)",
     run_spin, NULL},
    {"floor.tput", "tput", "floor", "ferry.tput",
     "192-byte jobs to a spinning thread and back through two SPSC rings, "
     "window 1024, no locked instruction",
     run_handover_plain, NULL},
    {"floor.tput.locked", "tput", "floor", "ferry.tput",
     "floor.tput with one locked RMW per job on each side", run_handover_locked,
     NULL},
};

const struct bench_wl *bench_floor_workloads(size_t *n)
{
    *n = FERRY__ARRAY_SIZE(workloads);
    return workloads;
}
