/*
 * loop/future.c: futures shared across threads.
 *
 * State machine (one RMW per transition, exactly one winner):
 *   PENDING -> RUNNING            attached work started (run_threadsafe,
 *                                 then)
 *   PENDING|RUNNING -> COMPLETING -> DONE|FAILED   the resolver
 *   PENDING|RUNNING -> DONE|FAILED the bridge's worker (handoff)
 *   PENDING|RUNNING -> CANCELLED                   ferry_future_cancel
 * The resolver writes result/err/dtor inside its private COMPLETING window
 * and publishes them with a release RMW to the final state; readers load
 * the state with acquire before reading them. COMPLETING reads as pending;
 * a cancel or resolver that loses against it waits the window out, so the
 * future is done when it returns. The bridge's worker writes result/err first
 * and publishes them with one CAS from PENDING; so that it never clobbers
 * the outcome of a resolver that won meanwhile (a timeout, a setter: the
 * review of 2026-12-02 found that), every other resolver of such a future
 * writes its own outcome to the job's slot (ops->alt_outcome) and sets
 * FUT_OUTCOME_OPS, which tells readers where to look (outcome_of).
 *
 * The state word also carries flags (loop/internal.h): two set by CAS
 * while the state is not terminal and never cleared, so the RMW that makes
 * the state terminal returns them and a completion pays only for what was
 * asked for: FUT_WAITERS, a foreign thread may sleep on the ck_ec event
 * count, which the completer then bumps (one futex call only if it
 * sleeps); FUT_NOTIFIERS, the completer closes and runs the notifier list.
 * Either a registrar's CAS precedes the terminal RMW in the word's
 * modification order, and the completer sees its flag, or it follows it
 * and sees the terminal state, and the registrar handles the completion
 * itself. An offload without waiters or notifiers thus completes with one
 * locked instruction on the state instead of three. The third flag,
 * FUT_OUTCOME_OPS, comes with the handoff's terminal state (above).
 *
 * Completion then dispatches the done callbacks on the loop: directly
 * when the completing thread is the loop's owner, else through the loop's
 * inbox (the future's embedded post node, used once). Callbacks are
 * registered (future_cb.c) and dispatched on the owner thread only. The first
 * one is embedded in the future (cb0) and reaches the ready queue as the
 * future's own node (the post node, free again once the inbox is drained), so
 * an offload with one callback allocates nothing more; further ones are handles
 * on the `cbs` list. `cbs` becoming FERRY__CBS_DISPATCHED (owner-only) decides
 * whether a new registration joins them or goes straight to the ready queue, so
 * registration order holds even when completion raced registration.
 *
 * References: the resolver must hold one for the duration of its call (the
 * ec bump happens after the state RMW, when a waiter may already have
 * returned and dropped its own). The post holds one while in the inbox (and
 * hands it to the first callback it dispatches); each dispatched callback
 * (cb0's node or a handle) holds one until it has run. A handoff resolver's
 * reference becomes the post's: the push is then its last touch of f, and
 * the wake-up's reads of the loop after it are covered by a hazard record
 * (ferry__loop_post_handoff, common/hazard.c), not by f's loop reference.
 *
 * Thread: see include/ferry/future.h per function.
 */
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "loop/internal.h"

void ferry__future_init(ferry_future *f, ferry_loop *loop,
                        const struct ferry__future_ops *ops)
{
    atomic_init(&f->state, FUT_PENDING);
    atomic_init(&f->refs, 1);
    ck_ec32_init(&f->ec, 0);
    f->err = 0;
    f->result = NULL;
    f->dtor = NULL;
    f->loop = loop;
    f->cb0.fn = NULL;
    f->cb0.arg = NULL;
    f->cb0.dispose = NULL;
    f->cbs = NULL;
    f->ops = ops;
    atomic_init(&f->notify, NULL);
    if (loop != NULL)
        ferry__loop_ref_future(loop);
}

FERRY_API int ferry_future_new(ferry_loop *loop, ferry_future **out)
{
    if (out == NULL)
        return -EINVAL;
    if (loop != NULL) {
        int rc = ferry__loop_check_open(loop);
        if (rc < 0)
            return rc;
    }
    ferry_future *f = malloc(sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    ferry__future_init(f, loop, NULL);
    *out = f;
    return 0;
}

FERRY_API void ferry_future_ref(ferry_future *fut)
{
    if (fut != NULL)
        atomic_fetch_add_explicit(&fut->refs, 1, memory_order_relaxed);
}

void ferry__future_drop_cb0(ferry_future *f)
{
    ferry_free_fn *dispose = f->cb0.dispose;
    f->cb0.fn = NULL;
    f->cb0.dispose = NULL;
    if (dispose != NULL)
        dispose(f->cb0.arg);
}

static void drop_callbacks(ferry_future *f)
{
    struct ferry_handle *h = f->cbs;
    f->cbs = FERRY__CBS_DISPATCHED;
    if (h == FERRY__CBS_DISPATCHED)
        return;
    ferry__future_drop_cb0(f);
    while (h != NULL) {
        struct ferry_handle *next = h->next;
        ferry__handle_drop(h);
        ferry__handle_put(h);
        h = next;
    }
}

/* f's outcome; word is its terminal state word, loaded with acquire (or
 * by the last holder, after its acquire RMW or load of refs). */
static struct ferry__outcome outcome_of(const ferry_future *f, uint32_t word)
{
    if (word & FUT_OUTCOME_OPS)
        return *f->ops->alt_outcome((ferry_future *)f);
    return (struct ferry__outcome){f->result, f->dtor, f->err};
}

static void destroy(ferry_future *f)
{
    drop_callbacks(f); /* never dispatched: the loop closed first */
    uint32_t word = atomic_load_explicit(&f->state, memory_order_relaxed);
    struct ferry__outcome o = {0};
    if (ferry__fut_state(word) == FUT_DONE)
        o = outcome_of(f, word);
    if (o.dtor != NULL)
        o.dtor(o.result);
    ferry_loop *loop = f->loop;
    if (f->ops != NULL)
        f->ops->release(f);
    else
        free(f);
    if (loop != NULL)
        ferry__loop_unref_future(loop);
}

FERRY_API void ferry_future_unref(ferry_future *fut)
{
    if (fut == NULL)
        return;
    /* The sole holder needs no RMW: with one reference, ours, nobody else
     * can take one (that takes a reference), so the count cannot move. The
     * acquire load reads the last decrement (a release RMW) and so sees
     * every former holder's writes; the common case is the done callback's
     * queue reference, dropped after the user dropped theirs. Else
     * acq_rel: every holder's writes happen-before the teardown by the
     * last one (STYLE.md point 8, with the acquire folded into the RMW
     * because ThreadSanitizer does not model standalone fences). */
    if (atomic_load_explicit(&fut->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&fut->refs, 1, memory_order_acq_rel) != 1)
        return;
    destroy(fut);
}

/* cb0 in the ready queue: run it, then drop the queue's reference. */
static ferry__anyfn *cb0_run(struct ferry__rnode *n)
{
    ferry_future *f = ferry__container_of(n, ferry_future, rnode);
    ferry_future_cb *fn = f->cb0.fn;
    f->cb0.fn = NULL;
    f->cb0.dispose = NULL;
    fn(f, f->cb0.arg);
    ferry_future_unref(f);
    return (ferry__anyfn *)fn;
}

static void cb0_drop(struct ferry__rnode *n)
{
    ferry_future *f = ferry__container_of(n, ferry_future, rnode);
    ferry__future_drop_cb0(f);
    ferry_future_unref(f);
}

static const struct ferry__rnode_ops cb0_ready = {.run = cb0_run,
                                                  .drop = cb0_drop};

/* Owner thread: move the callbacks to the ready queue, in order: cb0 (the
 * future's own node), then the handles. Each queued callback holds a
 * reference on f; `ref` is one the caller hands over (the inbox post's),
 * given to the first callback instead of taking a new one. Returns whether
 * it was used (else the caller still owns it). The inbox post is consumed
 * by now, so the node it shares with cb0 is free. */
static bool dispatch(ferry_future *f, bool ref)
{
    ferry_loop *loop = f->loop;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed)) {
        drop_callbacks(f);
        return false;
    }
    struct ferry_handle *h = f->cbs;
    f->cbs = FERRY__CBS_DISPATCHED;
    bool used = false;
    if (f->cb0.fn != NULL) {
        if (!ref)
            ferry_future_ref(f);
        used = ref;
        ref = false;
        f->rnode.ops = &cb0_ready;
        ferry__ready_push_node(loop, &f->rnode);
    }
    while (h != NULL) {
        struct ferry_handle *next = h->next;
        if (!ref)
            ferry_future_ref(f);
        used |= ref;
        ref = false;
        h->fut = f;
        ferry__ready_push(loop, h);
        ferry__handle_put(h); /* the list's reference; the queue has one */
        h = next;
    }
    return used;
}

static void post_run(struct ferry__post *p, ferry_loop *loop)
{
    (void)loop;
    ferry_future *f = ferry__container_of(p, ferry_future, post);
    if (!dispatch(f, true))
        ferry_future_unref(f);
}

static void post_drop(struct ferry__post *p)
{
    ferry_future_unref(ferry__container_of(p, ferry_future, post));
}

static const struct ferry__post_ops future_post = {.run = post_run,
                                                   .drop = post_drop};

/* Set flag in f's state word. Returns false if f was terminal without it:
 * its completer never looks at what the flag asks for, and the caller
 * handles the completion itself. True means the terminal RMW, past or
 * future, returns the flag. */
static bool set_flag(ferry_future *f, uint32_t flag)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    while ((s & flag) == 0) {
        if (ferry__fut_state(s) >= FUT_DONE)
            return false;
        if (atomic_compare_exchange_weak_explicit(&f->state, &s, s | flag,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return true;
    }
    return true;
}

bool ferry__future_notify(ferry_future *f, struct ferry__notify *n)
{
    if (!set_flag(f, FUT_NOTIFIERS))
        return false;
    /* The completer saw the flag, or will: it closes the list, so the push
     * below either lands before the close and runs there, or finds the
     * sentinel. */
    struct ferry__notify *head =
        atomic_load_explicit(&f->notify, memory_order_acquire);
    do {
        if (head == FERRY__NOTIFY_CLOSED)
            return false;
        n->next = head;
        /* Release: n's fields before the completer's acquire exchange. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->notify, &head, n, memory_order_release, memory_order_acquire));
    return true;
}

static void run_notifiers(ferry_future *f)
{
    /* Acq_rel: acquire pairs with the registrars' release CAS; release
     * makes the published state visible to a registrar that then sees the
     * sentinel and handles completion itself. */
    struct ferry__notify *n = atomic_exchange_explicit(
        &f->notify, FERRY__NOTIFY_CLOSED, memory_order_acq_rel);
    while (n != NULL) {
        struct ferry__notify *next = n->next;
        n->fn(n, f);
        n = next;
    }
}

/* Another thread completed f: its callbacks go to the loop through the
 * inbox. handoff: the caller's reference becomes the post's. */
static void post_completion(ferry_future *f, bool handoff)
{
    ferry_loop *loop = f->loop;
    f->post.ops = &future_post;
    if (handoff) {
        int rc = ferry__loop_post_handoff(loop, &f->post);
        if (rc == 0)
            return; /* the post owns our reference now */
        if (rc == -ESHUTDOWN) {
            ferry_future_unref(f); /* closed: destroy disposes callbacks */
            return;
        }
        /* -ENOMEM, no hazard record: keep ours across a plain post */
    }
    ferry_future_ref(f); /* the post's own */
    if (ferry__loop_post(loop, &f->post) < 0)
        ferry_future_unref(f); /* closed: destroy disposes callbacks */
    if (handoff)
        ferry_future_unref(f);
}

/* After the RMW that made f terminal; old is the word it replaced. */
static void complete(ferry_future *f, uint32_t old, bool handoff)
{
    /* ck_ec_inc is a write barrier after our RMW of the state: a waiter
     * that snapshotted the ec before checking the state either saw the
     * final state or sees the ec move (common/ec.c). */
    if (old & FUT_WAITERS)
        ck_ec32_inc(&f->ec, &ferry__ec_mode);
    if (old & FUT_NOTIFIERS)
        run_notifiers(f);
    if (f->loop == NULL || ferry__loop_on_owner(f->loop)) {
        bool used = f->loop != NULL && dispatch(f, handoff);
        if (handoff && !used)
            ferry_future_unref(f);
        return;
    }
    post_completion(f, handoff);
}

bool ferry__future_try_start(ferry_future *f)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    do {
        if (ferry__fut_state(s) != FUT_PENDING)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &s, (s & ~FUT_STATE) | FUT_RUNNING, memory_order_acq_rel,
        memory_order_relaxed));
    return true;
}

/* A resolver on another thread holds f in its COMPLETING window: a few
 * stores and ops->alt_outcome (pointer arithmetic), no lock, no user code.
 * Wait them out, so that a resolver or cancel that lost finds f done (a
 * soak run caught a losing cancel followed by ferry_future_wait(f, 0)
 * seeing f still pending), with ferry__backoff. In a forked
 * child a window the parent's thread held never closes: a future of a
 * stale loop is not waited for. */
static void wait_out_completing(const ferry_future *f)
{
    if (f->loop != NULL && ferry__loop_stale(f->loop))
        return;
    /* Acquire: pairs with the winner's acq_rel RMW to the final state, so
     * its outcome is visible to whoever reads it after we return. */
    for (unsigned n = 0;
         ferry__fut_state(atomic_load_explicit(
             &f->state, memory_order_acquire)) == FUT_COMPLETING;
         n++)
        ferry__backoff(n);
}

int ferry__future_resolve(ferry_future *f, void *value, ferry_free_fn *dtor,
                          int err)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    do {
        if (ferry__fut_state(s) >= FUT_COMPLETING) {
            if (ferry__fut_state(s) == FUT_COMPLETING)
                wait_out_completing(f);
            return -EALREADY; /* value stays the caller's */
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &s, (s & ~FUT_STATE) | FUT_COMPLETING, memory_order_acquire,
        memory_order_acquire));
    uint32_t add = (err < 0 ? FUT_FAILED : FUT_DONE) - FUT_COMPLETING;
    struct ferry__outcome *alt = NULL;
    if (f->ops != NULL && f->ops->alt_outcome != NULL)
        alt = f->ops->alt_outcome(f); /* result/err are the handoff's */
    if (alt != NULL) {
        *alt = (struct ferry__outcome){value, dtor, err};
        add += FUT_OUTCOME_OPS;
    } else {
        f->result = value;
        f->dtor = dtor;
        f->err = err;
    }
    /* Release: publishes the outcome to readers that acquire-load the
     * state (ferry_future_result, wait, the loop's dispatch). An RMW, not a
     * store: flags set during our window come back in old. The add moves
     * the state bits (COMPLETING -> DONE or FAILED) and sets
     * FUT_OUTCOME_OPS, which no earlier transition sets. */
    uint32_t old =
        atomic_fetch_add_explicit(&f->state, add, memory_order_acq_rel);
    complete(f, old, false);
    return 0;
}

int ferry__future_resolve_handoff(ferry_future *f, void *value, int err)
{
    f->result = value; /* ours alone: other resolvers use alt_outcome */
    f->err = err;
    uint32_t fin = err < 0 ? FUT_FAILED : FUT_DONE;
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    /* Release: publishes result/err, for readers that acquire-load the
     * state (outcome_of). */
    do {
        if (ferry__fut_state(s) >= FUT_COMPLETING)
            return -EALREADY; /* resolved or cancelled meanwhile */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &s, (s & ~FUT_STATE) | fin, memory_order_acq_rel,
        memory_order_relaxed));
    complete(f, s, true);
    return 0;
}

/* A late result is never leaked: the loser's value goes to its dtor. */
static int resolve_or_free(ferry_future *f, void *value, ferry_free_fn *dtor)
{
    int rc = ferry__future_resolve(f, value, dtor, 0);
    if (rc == -EALREADY && dtor != NULL)
        dtor(value);
    return rc;
}

static int check_resolver(ferry_future *f)
{
    if (f == NULL)
        return -EINVAL;
    if (f->loop != NULL && !ferry__loop_on_owner(f->loop))
        return ferry__loop_stale(f->loop) ? -ECHILD : -EPERM;
    return 0;
}

FERRY_API int ferry_future_set_result(ferry_future *fut, void *value,
                                      ferry_free_fn *dtor)
{
    int rc = check_resolver(fut);
    if (rc < 0)
        return rc;
    return resolve_or_free(fut, value, dtor);
}

FERRY_API int ferry_future_set_error(ferry_future *fut, int err)
{
    if (err >= 0 || err == -ECANCELED)
        return -EINVAL;
    int rc = check_resolver(fut);
    if (rc < 0)
        return rc;
    return ferry__future_resolve(fut, NULL, NULL, err);
}

FERRY_API int ferry_future_set_result_threadsafe(ferry_future *fut, void *value,
                                                 ferry_free_fn *dtor)
{
    if (fut == NULL)
        return -EINVAL;
    return resolve_or_free(fut, value, dtor);
}

FERRY_API int ferry_future_set_error_threadsafe(ferry_future *fut, int err)
{
    if (fut == NULL || err >= 0 || err == -ECANCELED)
        return -EINVAL;
    return ferry__future_resolve(fut, NULL, NULL, err);
}

FERRY_API bool ferry_future_cancel(ferry_future *fut)
{
    if (fut == NULL)
        return false;
    uint32_t s = atomic_load_explicit(&fut->state, memory_order_acquire);
    do {
        if (ferry__fut_state(s) >= FUT_COMPLETING) {
            if (ferry__fut_state(s) == FUT_COMPLETING)
                wait_out_completing(fut);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &fut->state, &s, (s & ~FUT_STATE) | FUT_CANCELLED, memory_order_acq_rel,
        memory_order_acquire));
    if (fut->ops != NULL && fut->ops->on_cancel != NULL)
        fut->ops->on_cancel(fut);
    complete(fut, s, false);
    return true;
}

FERRY_API bool ferry_future_done(const ferry_future *fut)
{
    return fut != NULL && ferry__fut_state(atomic_load_explicit(
                              &fut->state, memory_order_acquire)) >= FUT_DONE;
}

FERRY_API bool ferry_future_cancelled(const ferry_future *fut)
{
    return fut != NULL &&
           ferry__fut_state(atomic_load_explicit(
               &fut->state, memory_order_acquire)) == FUT_CANCELLED;
}

FERRY_API int ferry_future_result(const ferry_future *fut, void **value)
{
    if (fut == NULL)
        return -EINVAL;
    /* Acquire: pairs with the resolver's release RMW of the state. */
    uint32_t word = atomic_load_explicit(&fut->state, memory_order_acquire);
    switch (ferry__fut_state(word)) {
    case FUT_DONE:
        if (value != NULL)
            *value = outcome_of(fut, word).result;
        return 0;
    case FUT_FAILED:
        return outcome_of(fut, word).err;
    case FUT_CANCELLED:
        return -ECANCELED;
    default:
        return -EAGAIN;
    }
}

FERRY_API int ferry_future_wait(ferry_future *fut, int64_t timeout_ns)
{
    if (fut == NULL)
        return -EINVAL;
    if (ferry_future_done(fut))
        return 0;
    if (fut->loop != NULL && ferry__loop_on_owner(fut->loop))
        return -EDEADLK;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    /* The completer bumps the ec only if it sees FUT_WAITERS (set_flag
     * says why one of us sees the other). */
    if (!set_flag(fut, FUT_WAITERS))
        return 0;
    uint64_t deadline = 0;
    if (timeout_ns > 0)
        deadline = ferry__now_ns() + (uint64_t)timeout_ns;
    for (;;) {
        /* Snapshot the ec before checking the state: a completion after
         * the check moves the ec, so the wait below returns. */
        uint32_t v = ck_ec32_value(&fut->ec);
        if (ferry_future_done(fut))
            return 0;
        if (ferry__ec_wait(&fut->ec, v, deadline) < 0)
            return ferry_future_done(fut) ? 0 : -ETIMEDOUT;
    }
}

FERRY_API ferry_loop *ferry_future_loop(const ferry_future *fut)
{
    return fut != NULL ? fut->loop : NULL;
}
