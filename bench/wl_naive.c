/*
 * bench/wl_naive.c: the pool everybody writes first, as a baseline.
 *
 * Submission: one mutex + condition variable protecting a FIFO list; N
 * workers sleep on the condvar; submit signals one. Completion: the worker
 * appends the job to a second mutex-protected list and writes the loop's
 * eventfd when that list was empty (edge-triggered: writing on every
 * completion would only make the baseline look worse); the loop thread
 * sleeps in epoll_wait on the eventfd, swaps the whole list out under the
 * lock and runs the completions outside it. No spinning anywhere: every
 * hand-off to a sleeping thread is a futex or eventfd wake.
 *
 * Workloads, with the same shapes as libuv's and ferry's:
 *   naive.rtt   one no-op job in flight, round trip (us)
 *   naive.tput  no-op jobs, window of 1024 in flight
 *   naive.tiny  batches of 4096 tiny tasks
 *   naive.idle  CPU time while the loop sleeps 200 ms, pool warmed
 * Verification: each job's worker writes a token derived from its
 * sequence number, checked and summed on the loop thread; counts of jobs
 * completed; the loop's wait is bounded (10 s without a completion fails).
 *
 * Thread: the loop side runs on the main thread; work functions on the
 * pool's workers.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"

#define WINDOW 1024
#define BATCH 4096
#define TOKEN 0x5bd1e995u

struct naive_job {
    struct naive_job *next;
    void (*work)(struct naive_job *j); /* on a worker */
    uint64_t seq;                      /* set by the submitter */
    uint64_t val;                      /* set by work */
    uint64_t t0;                       /* submit time (rtt) */
};

struct naive_pool {
    pthread_mutex_t mu; /* protects head/tail/stop */
    pthread_cond_t cv;  /* signalled on submit and stop */
    struct naive_job *head, *tail;
    bool stop;
    pthread_t *th;
    unsigned nth;        /* threads started */
    pthread_mutex_t cmu; /* protects chead/ctail; never held with mu */
    struct naive_job *chead, *ctail;
    int efd, ep; /* completion wake-up of the loop thread */
};

static void push(struct naive_job **head, struct naive_job **tail,
                 struct naive_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void complete(struct naive_pool *p, struct naive_job *j)
{
    pthread_mutex_lock(&p->cmu);
    bool was_empty = p->chead == NULL;
    push(&p->chead, &p->ctail, j);
    pthread_mutex_unlock(&p->cmu);
    if (was_empty) {
        uint64_t one = 1;
        if (write(p->efd, &one, sizeof one) != sizeof one)
            abort(); /* eventfd write cannot fail short of a bug */
    }
}

static void *worker(void *arg)
{
    struct naive_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->head == NULL)
            break; /* stop, and nothing left */
        struct naive_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        j->work(j);
        complete(p, j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_free(struct naive_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    free(p->th);
    if (p->efd >= 0)
        close(p->efd);
    if (p->ep >= 0)
        close(p->ep);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->cmu);
}

static int pool_new(struct naive_pool *p, unsigned threads)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_mutex_init(&p->cmu, NULL);
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->th = calloc(threads, sizeof *p->th);
    struct epoll_event ev = {.events = EPOLLIN};
    int rc = 0;
    if (p->efd < 0 || p->ep < 0 ||
        epoll_ctl(p->ep, EPOLL_CTL_ADD, p->efd, &ev) < 0)
        rc = -errno;
    else if (p->th == NULL)
        rc = -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < threads; i++) {
        rc = -pthread_create(&p->th[i], NULL, worker, p);
        p->nth += rc == 0;
    }
    if (rc < 0)
        pool_free(p);
    return rc;
}

static void submit(struct naive_pool *p, struct naive_job *j)
{
    pthread_mutex_lock(&p->mu);
    push(&p->head, &p->tail, j);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Wait for completions and hand each to done(); one epoll sleep at most. */
static int poll_completions(struct naive_pool *p,
                            void (*done)(struct naive_job *j, void *arg),
                            void *arg)
{
    struct epoll_event ev;
    int n = epoll_wait(p->ep, &ev, 1, 10000);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return -ETIMEDOUT;
    uint64_t v;
    if (read(p->efd, &v, sizeof v) < 0 && errno != EAGAIN)
        return -errno;
    pthread_mutex_lock(&p->cmu);
    struct naive_job *j = p->chead;
    p->chead = p->ctail = NULL;
    pthread_mutex_unlock(&p->cmu);
    while (j != NULL) {
        struct naive_job *next = j->next;
        done(j, arg);
        j = next;
    }
    return 0;
}

static void noop_work(struct naive_job *j)
{
    j->val = j->seq ^ TOKEN;
}

static void tiny_work(struct naive_job *j)
{
    j->val = bench_tiny_work(j->seq);
}

/* ---- shapes ---- */

struct shape {
    struct naive_pool pool;
    struct naive_job *jobs;
    uint64_t total; /* jobs to complete */
    uint64_t submitted;
    uint64_t completed;
    uint64_t sum; /* of val, checked against want_sum */
    uint64_t want_sum;
    uint64_t warm; /* rtt: first jobs not recorded */
    struct bench_hist *h;
};

static int shape_open(struct bench_ctx *c, struct shape *s, size_t njobs)
{
    memset(s, 0, sizeof *s);
    s->jobs = calloc(njobs, sizeof *s->jobs);
    if (s->jobs == NULL)
        return -ENOMEM;
    int rc = pool_new(&s->pool, c->cfg->threads);
    if (rc < 0)
        free(s->jobs);
    return rc;
}

static void shape_close(struct shape *s)
{
    pool_free(&s->pool);
    free(s->jobs);
    free(s->h);
}

static void submit_seq(struct shape *s, struct naive_job *j,
                       void (*work)(struct naive_job *j))
{
    j->seq = s->submitted++;
    j->work = work;
    if (s->h != NULL) /* rtt only: a clock read is not throughput's work */
        j->t0 = bench_now();
    submit(&s->pool, j);
}

static void rtt_done(struct naive_job *j, void *arg)
{
    struct shape *s = arg;
    uint64_t now = bench_now();
    if (s->completed++ >= s->warm)
        bench_hist_record(s->h, now - j->t0);
    s->sum += j->val;
    if (s->submitted < s->total)
        submit_seq(s, j, noop_work);
}

static int run_rtt(struct bench_ctx *c)
{
    struct shape s;
    uint64_t n = bench_size(c, 10000, 200);
    int rc = shape_open(c, &s, 1);
    if (rc < 0)
        return rc;
    s.warm = n / 10;
    s.total = n + s.warm;
    s.h = malloc(sizeof *s.h);
    if (s.h == NULL) {
        shape_close(&s);
        return -ENOMEM;
    }
    bench_hist_init(s.h);
    submit_seq(&s, &s.jobs[0], noop_work);
    while (rc == 0 && s.completed < s.total)
        rc = poll_completions(&s.pool, rtt_done, &s);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (bench_check(c, rc == 0, "loop: %s", strerror(-rc)) &&
        bench_expect(c, "jobs completed", s.completed, s.total) &&
        bench_expect(c, "checksum", s.sum, s.want_sum))
        bench_latency(c, s.h);
    shape_close(&s);
    return 0;
}

static void tput_done(struct naive_job *j, void *arg)
{
    struct shape *s = arg;
    s->completed++;
    s->sum += j->val;
    if (s->submitted < s->total)
        submit_seq(s, j, noop_work);
}

static int run_tput(struct bench_ctx *c)
{
    struct shape s;
    int rc = shape_open(c, &s, WINDOW);
    if (rc < 0)
        return rc;
    s.total = bench_size(c, BENCH_TPUT_OFFLOADS, 5000);
    uint64_t t0 = bench_now();
    for (unsigned i = 0; i < WINDOW && s.submitted < s.total; i++)
        submit_seq(&s, &s.jobs[i], noop_work);
    while (rc == 0 && s.completed < s.total)
        rc = poll_completions(&s.pool, tput_done, &s);
    uint64_t dt = bench_now() - t0;
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (bench_check(c, rc == 0, "loop: %s", strerror(-rc)) &&
        bench_expect(c, "jobs completed", s.completed, s.total) &&
        bench_expect(c, "checksum", s.sum, s.want_sum))
        bench_tput(c, s.completed, dt);
    shape_close(&s);
    return 0;
}

static void tiny_done(struct naive_job *j, void *arg)
{
    struct shape *s = arg;
    s->completed++;
    s->sum += j->val;
}

static int run_tiny(struct bench_ctx *c)
{
    struct shape s;
    int rc = shape_open(c, &s, BATCH);
    if (rc < 0)
        return rc;
    s.total = bench_size(c, 64 * BATCH, 2 * BATCH);
    uint64_t t0 = bench_now();
    while (rc == 0 && s.submitted < s.total) {
        for (unsigned i = 0; i < BATCH; i++)
            submit_seq(&s, &s.jobs[i], tiny_work);
        while (rc == 0 && s.completed < s.submitted)
            rc = poll_completions(&s.pool, tiny_done, &s);
    }
    uint64_t dt = bench_now() - t0;
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += bench_tiny_work(i);
    if (bench_check(c, rc == 0, "loop: %s", strerror(-rc)) &&
        bench_expect(c, "tasks completed", s.completed, s.total) &&
        bench_expect(c, "checksum", s.sum, s.want_sum))
        bench_tput(c, s.completed, dt);
    shape_close(&s);
    return 0;
}

/* The loop sleeps in epoll_wait for the span with the pool warmed up: the
 * process's CPU time over the span is what idling costs. */
static int run_idle(struct bench_ctx *c)
{
    struct shape s;
    int rc = shape_open(c, &s, 1);
    if (rc < 0)
        return rc;
    s.total = 1;
    submit_seq(&s, &s.jobs[0], noop_work);
    while (rc == 0 && s.completed < s.total)
        rc = poll_completions(&s.pool, tput_done, &s);
    struct epoll_event ev;
    uint64_t cpu0 = bench_cpu_ns(), t0 = bench_now();
    int n = epoll_wait(s.pool.ep, &ev, 1, (int)bench_size(c, 200, 20));
    uint64_t cpu = bench_cpu_ns() - cpu0, wall = bench_now() - t0;
    if (bench_check(c, rc == 0, "warm-up: %s", strerror(-rc)) &&
        bench_expect(c, "warm-up jobs", s.completed, 1) &&
        bench_check(c, n == 0, "idle loop woke up %d times", n))
        bench_metric(c, "idle cpu", "%", BENCH_LOWER,
                     100.0 * (double)cpu / (double)wall);
    shape_close(&s);
    return 0;
}

static const struct bench_wl workloads[] = {
    {"naive.rtt", "rtt", "naive", "ferry.rtt",
     "mutex+condvar pool, eventfd completion: no-op round trip", run_rtt, NULL},
    {"naive.tput", "tput", "naive", "ferry.tput",
     "mutex+condvar pool: no-op throughput, window 1024", run_tput, NULL},
    {"naive.tiny", "tiny", "naive", "ferry.tiny",
     "mutex+condvar pool: tiny tasks in batches of 4096", run_tiny, NULL},
    {"naive.idle", "idle", "naive", "ferry.idle",
     "CPU used by an idle epoll loop and warmed naive pool", run_idle, NULL},
};

const struct bench_wl *bench_naive_workloads(size_t *n)
{
    *n = FERRY__ARRAY_SIZE(workloads);
    return workloads;
}
