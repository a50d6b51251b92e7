/*
 * tests/fuzz/fuzz_main.c: an API-sequence fuzzer for ferry (issue 6 §2).
 *
 * The input is a program: 4-byte instructions [op, a, b, c] (at most
 * MAX_OPS), interpreted on this thread, which owns every loop it creates.
 * The objects are up to NLOOPS loops (each with a socketpair for fd
 * watchers), a persistent pool (kept across inputs), an optional per-input
 * pool (which the program may shut down), the process-wide default pool,
 * and the handles, futures, promises and task handles the program makes.
 * A persistent helper thread, fed through a mutex-protected queue, makes
 * the cross-thread calls: posts, run_threadsafe, promise and future
 * completions, cancels, timed waits, and owner-only calls from the wrong
 * thread. It holds a reference on every object a command names.
 *
 * Oracles
 *   - Every call's return code is in the list its header documents
 *     (DOC_* in fuzz.h); where the interpreter's model knows the answer
 *     (NULL argument, wrong thread, closed loop, second completion...) it
 *     must be exactly that.
 *   - Every registration has a record that its callback and its dispose
 *     both count: a one-shot ends at exactly one of the two, a watcher is
 *     disposed exactly once and never runs after, a done callback runs or
 *     is disposed exactly once. Callbacks run on the owner thread, call_soon
 *     and each thread's posts in FIFO order, timers never early.
 *   - Every future ends done, exactly once: its tracking done callback saw
 *     the outcome it keeps, and the outcome is one its producer could give
 *     (the work's, the winner's of a completion race, a cancel, a timeout).
 *   - Nothing leaks: every result value is freed exactly once, the fd count
 *     returns to its baseline, and ASan/LSan check the memory.
 * Each input is bounded: run_once never blocks more than 1 ms, waits have
 * timeouts, work lasts at most 2 ms, and callbacks draw from a budget.
 * After the program everything is cancelled, closed and dropped, and the
 * interpreter waits (bounded) for the pools' stragglers before checking.
 *
 * A violation prints what broke and aborts, from any thread: libFuzzer
 * saves the input; the corpus runner (run_corpus.c) fails.
 *
 * Files: this one holds the entry points, the set-up and the program
 * driver (the instructions and their table); fuzz.h the shared model and
 * checks; fuzz_common.c failures, clocks, values, work and shared state;
 * fuzz_helper.c the helper thread; fuzz_callback.c the callbacks and the
 * call/post/handle instructions; fuzz_loop.c, fuzz_future.c,
 * fuzz_bridge.c and fuzz_pool.c the instructions of their area;
 * fuzz_invalid.c the invalid-argument calls; fuzz_oracle.c the end of a
 * program and its checks.
 */

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_api.h"

/* ---- the instructions ----
 *
 * [op, a, b, c]; a usually picks the object (a loop slot, a future...),
 * b and c the variant. "helper" means the call is made from the helper
 * thread; "wrong thread" an owner-only call from there (-EPERM).
 *   loop_new            a slot, b options (max_events 1-3)
 *   run_once            timeout 0, 50 us, 1 ms, or -1 after a self-post;
 *                       wrong thread
 *   run_forever         stopped first, or by a callback
 *   stop, close, free   from the owner or the helper (wrong thread)
 *   call_soon           handle kept or not, dispose or not, callback
 *                       action, NULL cb; wrong thread
 *   call_later          delays 0..1 s, call_at, negative; wrong thread
 *   post                call_soon_threadsafe from this thread or the helper
 *   handle_cancel       owner (0 / -EALREADY) or helper (-EPERM), also
 *                       after the loop was freed; handle_unref
 *   add/remove_watch    reader or writer on either socket end, fd -1, a
 *                       closed fd, a regular file; callback drains,
 *                       writes, removes or replaces itself
 *   sock                write bytes, or shut a socket down (EOF)
 *   run_in_executor     persistent, per-input or default pool, NULL fn;
 *                       work: value / error / NULL / spin until cancelled,
 *                       0..1 ms; wrong thread
 *   submit_future       pool_submit_future from this thread or the helper
 *                       (then waits, cancels)
 *   run_threadsafe      from the loop's thread or the helper (waits,
 *                       cancels)
 *   promise_new/_complete/_unref
 *                       resolve, reject, complete, invalid; from either
 *                       thread, twice, after a cancel
 *   future_new/_set     bound or free-standing; set_result/_error, the
 *                       _threadsafe forms, invalid errors; from either thread
 *   future_cancel/_wait/_result/_unref
 *   add/remove_done     done callbacks with actions, removal
 *   timeout, then, wrap ferry_future_timeout / _then / _wrap
 *   run_until_complete  on futures that will complete
 *   pool_new/_shutdown  the per-input pool: drain or cancel, timeouts,
 *                       invalid mode, from either thread
 *   pool_submit, task   submit / try_submit, flags, task cancel / status /
 *                       unref from either thread
 *   group               fork-join on a pool
 *   shutdown_default    ferry_loop_shutdown_default_executor
 *   loop_misc           loop_fd (embedding), loop_timeout, slow-callback
 *                       hook, after_fork (-EALREADY), "Thread: any"
 *                       queries and every wrong-thread call from the helper
 *   invalid             40 calls with NULL or bad arguments
 *   fz_helper_sync         wait for the helper's queue to drain
 */

enum op {
    OP_LOOP_NEW,
    OP_RUN_ONCE,
    OP_RUN_FOREVER,
    OP_STOP,
    OP_CLOSE,
    OP_FREE,
    OP_CALL_SOON,
    OP_CALL_LATER,
    OP_POST,
    OP_HANDLE_CANCEL,
    OP_HANDLE_UNREF,
    OP_ADD_WATCH,
    OP_REMOVE_WATCH,
    OP_SOCK,
    OP_RUN_IN_EXECUTOR,
    OP_SUBMIT_FUTURE,
    OP_RUN_THREADSAFE,
    OP_PROMISE_NEW,
    OP_PROMISE_COMPLETE,
    OP_PROMISE_UNREF,
    OP_FUTURE_NEW,
    OP_FUTURE_SET,
    OP_FUTURE_CANCEL,
    OP_FUTURE_WAIT,
    OP_FUTURE_RESULT,
    OP_ADD_DONE,
    OP_REMOVE_DONE,
    OP_TIMEOUT,
    OP_THEN,
    OP_WRAP,
    OP_FUTURE_UNREF,
    OP_RUN_UNTIL_COMPLETE,
    OP_POOL_NEW,
    OP_POOL_SHUTDOWN,
    OP_POOL_SUBMIT,
    OP_TASK,
    OP_GROUP,
    OP_SHUTDOWN_DEFAULT,
    OP_LOOP_MISC,
    OP_INVALID,
    OP_HELPER_SYNC,
    OP_COUNT
};

/* The name (FUZZ_API_TRACE) and the function of each op; the functions
 * are in the files of their area (fuzz.h lists them). */
static const struct op_desc {
    const char *name;
    fz_op_fn *run;
} ops[] = {
    [OP_LOOP_NEW] = {"loop_new", fz_op_loop_new},
    [OP_RUN_ONCE] = {"run_once", fz_op_run_once},
    [OP_RUN_FOREVER] = {"run_forever", fz_op_run_forever},
    [OP_STOP] = {"stop", fz_op_stop},
    [OP_CLOSE] = {"close", fz_op_close},
    [OP_FREE] = {"free", fz_op_free},
    [OP_CALL_SOON] = {"call_soon", fz_op_call_soon},
    [OP_CALL_LATER] = {"call_later", fz_op_call_later},
    [OP_POST] = {"post", fz_op_post},
    [OP_HANDLE_CANCEL] = {"handle_cancel", fz_op_handle_cancel},
    [OP_HANDLE_UNREF] = {"handle_unref", fz_op_handle_unref},
    [OP_ADD_WATCH] = {"add_watch", fz_op_add_watch},
    [OP_REMOVE_WATCH] = {"remove_watch", fz_op_remove_watch},
    [OP_SOCK] = {"sock", fz_op_sock},
    [OP_RUN_IN_EXECUTOR] = {"run_in_executor", fz_op_run_in_executor},
    [OP_SUBMIT_FUTURE] = {"submit_future", fz_op_submit_future},
    [OP_RUN_THREADSAFE] = {"run_threadsafe", fz_op_run_threadsafe},
    [OP_PROMISE_NEW] = {"promise_new", fz_op_promise_new},
    [OP_PROMISE_COMPLETE] = {"promise_complete", fz_op_promise_complete},
    [OP_PROMISE_UNREF] = {"promise_unref", fz_op_promise_unref},
    [OP_FUTURE_NEW] = {"future_new", fz_op_future_new},
    [OP_FUTURE_SET] = {"future_set", fz_op_future_set},
    [OP_FUTURE_CANCEL] = {"future_cancel", fz_op_future_cancel},
    [OP_FUTURE_WAIT] = {"future_wait", fz_op_future_wait},
    [OP_FUTURE_RESULT] = {"future_result", fz_op_future_result},
    [OP_ADD_DONE] = {"add_done", fz_op_add_done},
    [OP_REMOVE_DONE] = {"remove_done", fz_op_remove_done},
    [OP_TIMEOUT] = {"timeout", fz_op_timeout},
    [OP_THEN] = {"then", fz_op_then},
    [OP_WRAP] = {"wrap", fz_op_wrap},
    [OP_FUTURE_UNREF] = {"future_unref", fz_op_future_unref},
    [OP_RUN_UNTIL_COMPLETE] = {"run_until_complete", fz_op_run_until_complete},
    [OP_POOL_NEW] = {"pool_new", fz_op_pool_new},
    [OP_POOL_SHUTDOWN] = {"pool_shutdown", fz_op_pool_shutdown},
    [OP_POOL_SUBMIT] = {"pool_submit", fz_op_pool_submit},
    [OP_TASK] = {"task", fz_op_task},
    [OP_GROUP] = {"group", fz_op_group},
    [OP_SHUTDOWN_DEFAULT] = {"shutdown_default", fz_op_shutdown_default},
    [OP_LOOP_MISC] = {"loop_misc", fz_op_loop_misc},
    [OP_INVALID] = {"invalid", fz_op_invalid},
    [OP_HELPER_SYNC] = {"helper_sync", fz_op_helper_sync},
};

_Static_assert(sizeof ops / sizeof ops[0] == OP_COUNT, "one entry per op");

static unsigned long op_counts[OP_COUNT];

static void step(uint8_t op, uint8_t a, uint8_t b, uint8_t c)
{
    fz_collect_mail();
    op_counts[op % OP_COUNT]++;
    if (fz_trace)
        fprintf(stderr, "  %-18s %3u %3u %3u\n", ops[op % OP_COUNT].name, a, b,
                c);
    ops[op % OP_COUNT].run(a, b, c);
}

/* With LeakSanitizer (ASan builds), FUZZ_API_LSAN_EACH=1 checks for leaks
 * after every input (libFuzzer checks only some), to pin a leak on the
 * input that made it. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
static bool lsan_each;
static bool initialised;

/* ---- set-up ---- */

/*
 * LeakSanitizer and threads. A thread that exited but was not joined yet
 * (a retired spare: the pool joins it when its slot is reused) stays in
 * ASan's thread registry under its kernel tid. Once the kernel hands that
 * tid to a new thread (pid_max is 32768 here, and the machine is shared:
 * it wraps in about a minute), LSan's lookup by tid finds the stale entry
 * first and skips the live thread's stack and TLS, reporting what only
 * they reference as leaked: seen as a 64-byte task block at the head of a
 * live worker's block cache, and reproduced with plain threads (no ferry).
 * So libFuzzer's checks between inputs are off in CI (run_fuzz.sh,
 * -detect_leaks=0); LSan still checks at exit, after fuzz_api_teardown
 * (atexit) joined every thread; and each input checks its own leaks
 * (values, registrations, fds). Recycling the long-lived pools every
 * RECYCLE_EVERY inputs also keeps stale entries young.
 */
#define RECYCLE_EVERY 256
static unsigned long inputs_run;

static void new_persistent_pool(void)
{
    struct ferry_pool_opts o = {
        .threads = 2,
        .max_threads = 4,
        .keepalive_ns = 20000000,
        .starvation_ns = 5000000,
        .name_prefix = "fz-p",
    };
    CHECK_RC(ferry_pool_new(&fz_persistent_pool, &o), DOC_POOL_NEW, 0);
}

static void shut_default_pool(void)
{
    ferry_loop *l;
    CHECK_RC(ferry_loop_new(&l, NULL), DOC_LOOP_NEW, 0);
    CHECK_RC(ferry_loop_shutdown_default_executor(l, -1), DOC_SHUT_DEFAULT, 0);
    CHECK_RC(ferry_loop_free(l), DOC_LOOP_FREE, 0);
}

static void recycle_pools(void)
{
    CHECK_RC(ferry_pool_free(fz_persistent_pool), DOC_POOL_FREE, 0);
    new_persistent_pool();
    shut_default_pool();
}

static void init_once(void)
{
    if (initialised)
        return;
    initialised = true;
    fz_main_thread = pthread_self();
    fz_trace = getenv("FUZZ_API_TRACE") != NULL;
    lsan_each = getenv("FUZZ_API_LSAN_EACH") != NULL;
    FZ_CHECK(fcntl(NOT_AN_FD, F_GETFD) < 0, "fd %d is open", NOT_AN_FD);
    fz_regular_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    FZ_CHECK(fz_regular_fd >= 0, "open /proc/self/exe");
    new_persistent_pool();
    FZ_CHECK(pthread_create(&fz_helper.thread, NULL, fz_helper_main, NULL) == 0,
             "pthread_create");
    /* libFuzzer ends with exit(): join every thread first, so that LSan's
     * check at exit sees no thread it could skip (see RECYCLE_EVERY). */
    FZ_CHECK(atexit(fuzz_api_teardown) == 0, "atexit");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fz_ctx = calloc(1, sizeof *fz_ctx);
    FZ_CHECK(fz_ctx != NULL, "out of memory");
    for (int i = 0; i < NLOOPS; i++) {
        fz_ctx->loops[i].idx = i;
        fz_ctx->loops[i].sv[0] = fz_ctx->loops[i].sv[1] = -1;
    }
    /* Per input: libFuzzer's symbolizer opens pipes between inputs. */
    fz_base_fds = fz_count_fds();
    fz_ctx->spawn_budget = SPAWN_BUDGET;
    fz_ctx->bytes_budget = BYTES_BUDGET;
    size_t n = size / OP_BYTES;
    if (n > MAX_OPS)
        n = MAX_OPS;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + i * OP_BYTES;
        step(p[0], p[1], p[2], p[3]);
    }
    fz_finish();
    free(fz_ctx);
    fz_ctx = NULL;
    if (++inputs_run % RECYCLE_EVERY == 0)
        recycle_pools();
    if (lsan_each && __lsan_do_recoverable_leak_check != NULL)
        FZ_CHECK(__lsan_do_recoverable_leak_check() == 0, "leaked");
    return 0;
}

void fuzz_api_teardown(void)
{
    if (!initialised)
        return;
    pthread_mutex_lock(&fz_helper.mu);
    fz_helper.quit = true;
    pthread_cond_broadcast(&fz_helper.cv);
    pthread_mutex_unlock(&fz_helper.mu);
    pthread_join(fz_helper.thread, NULL);
    CHECK_RC(ferry_pool_free(fz_persistent_pool), DOC_POOL_FREE, 0);
    fz_persistent_pool = NULL;
    shut_default_pool(); /* if a program made one: drain and free it */
    close(fz_regular_fd);
    if (fz_trace)
        for (int i = 0; i < OP_COUNT; i++)
            fprintf(stderr, "fuzz_api: %-18s ran %lu times\n", ops[i].name,
                    op_counts[i]);
    FZ_CHECK(atomic_load(&fz_values_made) == atomic_load(&fz_values_freed),
             "%ld values made, %ld freed", atomic_load(&fz_values_made),
             atomic_load(&fz_values_freed));
    initialised = false;
}
