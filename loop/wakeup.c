/*
 * loop/wakeup.c: the cross-thread inbox and the coalesced eventfd wake-up.
 *
 * Inbox: an intrusive Treiber stack (R. K. Treiber, "Systems Programming:
 * Coping with Parallelism", IBM RJ 5118, 1986) whose consumer takes the
 * whole list with one exchange and reverses it, so posts from one producer
 * run in post order. The consumer never pops single nodes, so there is no
 * ABA. We do not use ck_stack_push_upmc because close must be atomic with
 * the post: close swaps in a sentinel (FERRY__INBOX_CLOSED), and a
 * producer's CAS loop refuses to push onto it. A post therefore either
 * lands before the close (and close disposes it) or returns -ESHUTDOWN:
 * never lost, never run after close (libuv #2226/#4922 show the bug this
 * avoids).
 *
 * Wake-up (algorithms.md §4.2), Dekker's pattern on two flags:
 *   producer: push node (seq_cst CAS, which stands for the fence); if
 *             polling && !xchg(wake_pending) write(eventfd); other
 *             signals (stop): store; fence(seq_cst); the same
 *   loop:     wake_pending = 0; polling = 1; fence(seq_cst); if inbox
 *             non-empty or stopping: don't block; epoll; polling = 0; on
 *             eventfd: read it; drain.
 * With both StoreLoad orders (the producer's seq_cst push or fence, the
 * loop's fence), at least one side sees the other's store: either the
 * loop sees the node and does not block, or the producer's loads come after
 * the loop's fence and see polling == 1 and wake_pending == 0 (or a later
 * value, written by a producer that does write), so it writes. wake_pending
 * is re-armed only just before a sleep: from the wake-up until the next
 * sleep every post finds it set, so an awake loop costs producers no
 * system call and one sleep sees at most one write. (Embedded loops keep
 * polling set and re-arm when they read the eventfd instead.) The model is
 * loop/wakeup.pml, checked by spin (tests/spin): no lost wake-up; the
 * write coalescing above is best effort (see the model for the rare extra
 * write).
 *
 * The eventfd stays open until the loop's last reference goes, because a
 * producer that pushed just before a close may still be about to write it.
 *
 * Thread: ferry__loop_post and ferry__wakeup_signal any thread; the rest
 * the owner thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/hazard.h"
#include "loop/internal.h"

int ferry__wakeup_init(ferry_loop *loop)
{
    loop->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->efd < 0)
        return -errno;
    atomic_init(&loop->inbox, NULL);
    atomic_init(&loop->polling, 0);
    atomic_init(&loop->wake_pending, 0);
    return 0;
}

void ferry__wakeup_term(ferry_loop *loop)
{
    free(loop->expect);
    loop->expect = NULL;
    if (loop->efd >= 0)
        close(loop->efd);
    loop->efd = -1;
}

/* The producer's half of the Dekker pair, after its publication and its
 * StoreLoad ordering (a fence, or the seq_cst push of ferry__loop_post).
 * Seq_cst loads: ferry__loop_post's argument needs them. */
static void wake(ferry_loop *loop)
{
    if (!atomic_load_explicit(&loop->polling, memory_order_seq_cst))
        return;
    /* Cheap read first (libuv's trick): most posts during a sleep find a
     * write already in flight and stop here without a locked RMW. */
    if (atomic_load_explicit(&loop->wake_pending, memory_order_seq_cst))
        return;
    if (atomic_exchange_explicit(&loop->wake_pending, 1, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    /* EAGAIN only if the counter would overflow: the fd is readable then,
     * so the wake-up is not lost (tests/test_loop_fault.c makes such
     * writes fail and checks that the loop still wakes). */
    (void)!write(loop->efd, &one, sizeof one);
    atomic_fetch_add_explicit(&loop->wakeups_written, 1, memory_order_relaxed);
}

void ferry__wakeup_signal(ferry_loop *loop)
{
    /* StoreLoad: the caller's publication (the stopping flag) must be
     * visible before we read polling; pairs with the fence in
     * ferry__wakeup_prepare_poll. */
    atomic_thread_fence(memory_order_seq_cst);
    wake(loop);
}

int ferry__loop_post(ferry_loop *loop, struct ferry__post *p)
{
    struct ferry__post *head =
        atomic_load_explicit(&loop->inbox, memory_order_relaxed);
    do {
        if (head == FERRY__INBOX_CLOSED)
            return -ESHUTDOWN;
        p->next = head;
        /* Release: the node's contents (written by the caller and p->next)
         * happen-before the consumer's acquire exchange in drain. Seq_cst
         * as well: the push is our half of the StoreLoad pair without a
         * fence (on x86 the locked CMPXCHG is one already; the fence cost
         * a second locked instruction per post). Why no wake-up is lost:
         * suppose wake() read polling == 0 (or wake_pending == 1, before
         * the loop's re-arm) and the loop's fenced look read the inbox
         * without our node. Both reads are coherence-ordered before the
         * other side's write, so the order S of seq_cst operations (C11
         * 7.17.3p9-10; C++20 [atomics.order] p4.2-4.3) puts our seq_cst
         * load before the loop's fence (the
         * store it missed precedes that fence) and the fence before our
         * seq_cst push (the load that missed it follows the fence); but
         * the push precedes the load in S, sequenced before it: a cycle. */
    } while (!atomic_compare_exchange_weak_explicit(
        &loop->inbox, &head, p, memory_order_seq_cst, memory_order_relaxed));
    wake(loop);
    return 0;
}

int ferry__loop_post_handoff(ferry_loop *loop, struct ferry__post *p)
{
    struct ferry__hz *hz = ferry__hz_self();
    if (hz == NULL)
        return -ENOMEM;
    /* Set before the push (its release orders the set before the drain
     * that may lead to the loop's free, common/hazard.c); cleared after
     * the wake-up, our last read of the loop. */
    ferry__hz_set(hz, loop);
    int rc = ferry__loop_post(loop, p);
    ferry__hz_clear(hz);
    return rc;
}

bool ferry__inbox_nonempty(const ferry_loop *loop)
{
    struct ferry__post *head = atomic_load_explicit(
        &((ferry_loop *)loop)->inbox, memory_order_relaxed);
    return head != NULL && head != FERRY__INBOX_CLOSED;
}

int64_t ferry__wakeup_prepare_poll(ferry_loop *loop, int64_t timeout_ns)
{
    if (timeout_ns == 0)
        return 0;
    /* Re-arm before announcing the sleep; both stores precede the fence, so
     * a producer whose loads follow it in the fences' total order sees
     * both. */
    if (!atomic_load_explicit(&loop->embedded, memory_order_relaxed))
        atomic_store_explicit(&loop->wake_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&loop->polling, 1, memory_order_relaxed);
    /* StoreLoad: polling = 1 before we look at the inbox and the stop flag;
     * pairs with the fence in ferry__wakeup_signal. */
    atomic_thread_fence(memory_order_seq_cst);
    if (ferry__inbox_nonempty(loop) ||
        atomic_load_explicit(&loop->stopping, memory_order_relaxed))
        return 0;
    return timeout_ns;
}

void ferry__wakeup_after_poll(ferry_loop *loop)
{
    if (!atomic_load_explicit(&loop->embedded, memory_order_relaxed))
        atomic_store_explicit(&loop->polling, 0, memory_order_relaxed);
}

void ferry__wakeup_on_event(ferry_loop *loop)
{
    uint64_t v;
    (void)!read(loop->efd, &v, sizeof v); /* counter mode: one read drains */
    /* An embedded loop never leaves polling: re-arm now, before the drain
     * that follows, so a post landing after the drain writes again and
     * wakes the embedder's poll. Release pairs with the producers' acq_rel
     * exchange. */
    if (atomic_load_explicit(&loop->embedded, memory_order_relaxed))
        atomic_store_explicit(&loop->wake_pending, 0, memory_order_release);
}

static struct ferry__post *reverse(struct ferry__post *p)
{
    struct ferry__post *prev = NULL;
    while (p != NULL) {
        struct ferry__post *next = p->next;
        p->next = prev;
        prev = p;
        p = next;
    }
    return prev;
}

void ferry__loop_expect_slow(ferry_loop *loop, const void *node)
{
    if (loop->expect_wr != 0)
        return; /* the allocation failed once: no hints */
    loop->expect_wr = 1;
    loop->expect_rd = 1;
    loop->expect = calloc(FERRY__EXPECT, sizeof *loop->expect);
    if (loop->expect != NULL)
        ferry__loop_expect(loop, node);
}

/* Prefetch the oldest nodes the loop expects back (ferry__loop_expect), at
 * most twice as many as the previous drain brought, so that reverse()'s
 * misses overlap instead of following one another (about 2.5 times
 * faster per node on the 2-core machine, tests aside: a walk of lines
 * another core just wrote). */
static void prefetch_expected(ferry_loop *loop)
{
    if (loop->expect == NULL)
        return;
    uint64_t n = loop->expect_wr - loop->expect_rd;
    if (n > FERRY__EXPECT) { /* more in flight than the ring holds */
        loop->expect_rd = loop->expect_wr - FERRY__EXPECT;
        n = FERRY__EXPECT;
    }
    if (n > 2 * loop->expect_last + 16)
        n = 2 * loop->expect_last + 16;
    for (uint64_t i = 0; i < n; i++)
        __builtin_prefetch(loop->expect[(loop->expect_rd + i) % FERRY__EXPECT]);
}

void ferry__inbox_drain(ferry_loop *loop)
{
    if (!ferry__inbox_nonempty(loop))
        return;
    prefetch_expected(loop);
    /* Acquire: pairs with the producers' release CAS, so every node's
     * contents are visible. */
    struct ferry__post *p =
        atomic_exchange_explicit(&loop->inbox, NULL, memory_order_acquire);
    uint64_t n = 0;
    for (p = reverse(p); p != NULL; n++) {
        struct ferry__post *next = p->next;
        p->ops->run(p, loop);
        ferry__loop_count(&loop->stats.posts);
        p = next;
    }
    loop->expect_last = n;
    loop->expect_rd += n;
    if (loop->expect_rd > loop->expect_wr)
        loop->expect_rd = loop->expect_wr;
}

void ferry__inbox_close(ferry_loop *loop, bool dispose)
{
    /* Acq_rel: acquire as in drain; release so that producers that see the
     * sentinel are ordered after everything close did before. */
    struct ferry__post *p = atomic_exchange_explicit(
        &loop->inbox, FERRY__INBOX_CLOSED, memory_order_acq_rel);
    if (p == FERRY__INBOX_CLOSED || !dispose)
        return; /* in a forked child the nodes belong to the parent */
    for (p = reverse(p); p != NULL;) {
        struct ferry__post *next = p->next;
        p->ops->drop(p);
        p = next;
    }
}
