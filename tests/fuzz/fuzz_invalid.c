/*
 * tests/fuzz/fuzz_invalid.c: the invalid instruction: one of 40 calls
 * with NULL or bad arguments, each of which must give its exact error and
 * touch nothing (cases 0-8 loops, 9-16 handles, watchers and queries,
 * 17-23 futures, 24-31 executor, thread-safe and promise calls, 32-39
 * pools, tasks, groups and the rest).
 */
#include "fuzz.h"

/* Cases 0-8 of fz_op_invalid: the loop's lifecycle and calls. */
static void invalid_loop(unsigned k)
{
    ferry_handle *h = NULL;
    switch (k) {
    case 0:
        CHECK_RC(ferry_loop_new(NULL, NULL), DOC_LOOP_NEW, -EINVAL);
        break;
    case 1:
        CHECK_RC(ferry_loop_free(NULL), DOC_LOOP_FREE, -EINVAL);
        break;
    case 2:
        CHECK_RC(ferry_loop_close(NULL), DOC_LOOP_CLOSE, -EINVAL);
        break;
    case 3:
        CHECK_RC(ferry_loop_run_once(NULL, 0), DOC_RUN, -EINVAL);
        break;
    case 4:
        CHECK_RC(ferry_loop_run_forever(NULL), DOC_RUN, -EINVAL);
        break;
    case 5:
        CHECK_RC(ferry_loop_stop(NULL), DOC_STOP, -EINVAL);
        break;
    case 6:
        CHECK_RC(ferry_call_soon(NULL, fz_never_cb, NULL, NULL, &h), DOC_CALL,
                 -EINVAL);
        break;
    case 7:
        CHECK_RC(ferry_call_later(NULL, 0, fz_never_cb, NULL, NULL, &h),
                 DOC_CALL, -EINVAL);
        break;
    case 8:
        CHECK_RC(ferry_call_soon_threadsafe(NULL, fz_never_cb, NULL, NULL),
                 DOC_POST, -EINVAL);
        break;
    }
}

/* Cases 9-16 of fz_op_invalid: handles, watchers and loop queries. */
static void invalid_loop_misc(unsigned k)
{
    struct ferry_loop_stats ls;
    switch (k) {
    case 9:
        CHECK_RC(ferry_handle_cancel(NULL), DOC_HCANCEL, -EINVAL);
        ferry_handle_unref(NULL);
        FZ_CHECK(!ferry_handle_cancelled(NULL), "cancelled(NULL)");
        break;
    case 10:
        CHECK_RC(ferry_add_reader(NULL, 0, fz_never_cb, NULL, NULL),
                 DOC_ADD_WATCH, -EINVAL);
        break;
    case 11:
        CHECK_RC(ferry_remove_writer(NULL, 0), DOC_REMOVE_WATCH, -EINVAL);
        break;
    case 12:
        CHECK_RC(ferry_loop_fd(NULL), DOC_LOOP_FD, -EINVAL);
        break;
    case 13: {
        int64_t t;
        CHECK_RC(ferry_loop_timeout(NULL, &t), DOC_LOOP_TIMEOUT, -EINVAL);
        break;
    }
    case 14:
        CHECK_RC(ferry_loop_stats(NULL, &ls), DOC_LOOP_STATS, -EINVAL);
        FZ_CHECK(!ferry_loop_is_running(NULL) && !ferry_loop_is_closed(NULL) &&
                     ferry_loop_time(NULL) == 0,
                 "NULL loop queries");
        ferry_loop_ref(NULL);
        ferry_loop_unref(NULL);
        break;
    case 15:
        CHECK_RC(ferry_loop_set_slow_callback(NULL, 0, NULL, NULL), DOC_SLOW,
                 -EINVAL);
        break;
    case 16:
        CHECK_RC(ferry_loop_after_fork(NULL), DOC_AFTER_FORK, -EINVAL);
        break;
    }
}

/* Cases 17-23 of fz_op_invalid: futures. */
static void invalid_future(unsigned k)
{
    switch (k) {
    case 17:
        CHECK_RC(ferry_future_new(NULL, NULL), DOC_FUT_NEW, -EINVAL);
        break;
    case 18:
        CHECK_RC(ferry_future_set_result(NULL, NULL, NULL), DOC_SET, -EINVAL);
        CHECK_RC(ferry_future_set_error(NULL, -EIO), DOC_SET, -EINVAL);
        break;
    case 19:
        CHECK_RC(ferry_future_set_result_threadsafe(NULL, NULL, NULL),
                 DOC_SET_TS, -EINVAL);
        CHECK_RC(ferry_future_set_error_threadsafe(NULL, -EIO), DOC_SET_TS,
                 -EINVAL);
        break;
    case 20:
        FZ_CHECK(!ferry_future_cancel(NULL) && !ferry_future_done(NULL) &&
                     !ferry_future_cancelled(NULL) &&
                     ferry_future_loop(NULL) == NULL,
                 "NULL future queries");
        ferry_future_ref(NULL);
        ferry_future_unref(NULL);
        break;
    case 21:
        CHECK_RC(ferry_future_result(NULL, NULL), DOC_RESULT, -EINVAL);
        break;
    case 22:
        CHECK_RC(ferry_future_add_done_callback(NULL, fz_cb_done, NULL, NULL),
                 DOC_ADD_DONE, -EINVAL);
        CHECK_RC(ferry_future_remove_done_callback(NULL, fz_cb_done, NULL),
                 DOC_REMOVE_DONE, -EINVAL);
        break;
    case 23:
        CHECK_RC(ferry_future_wait(NULL, 0), DOC_WAIT, -EINVAL);
        break;
    }
}

/* Cases 24-31 of fz_op_invalid: executor, thread-safe and promise calls,
 * composition. */
static void invalid_bridge(unsigned k)
{
    ferry_future *f = NULL;
    ferry_promise *p = NULL;
    switch (k) {
    case 24:
        CHECK_RC(ferry_run_in_executor(NULL, fz_persistent_pool, fz_work_fn,
                                       NULL, NULL, &f),
                 DOC_RIE, -EINVAL);
        break;
    case 25:
        CHECK_RC(
            ferry_pool_submit_future(fz_persistent_pool, NULL, NULL, NULL, &f),
            DOC_SUBMIT_FUT, -EINVAL);
        CHECK_RC(ferry_pool_submit_future(fz_persistent_pool, fz_work_fn, NULL,
                                          NULL, NULL),
                 DOC_SUBMIT_FUT, -EINVAL);
        break;
    case 26:
        CHECK_RC(ferry_run_threadsafe(NULL, fz_ts_fn, NULL, NULL, &f),
                 DOC_RUN_TS, -EINVAL);
        break;
    case 27:
        CHECK_RC(ferry_promise_new(NULL, NULL, NULL, &f), DOC_PROM_NEW,
                 -EINVAL);
        CHECK_RC(ferry_promise_new(NULL, NULL, &p, NULL), DOC_PROM_NEW,
                 -EINVAL);
        break;
    case 28:
        CHECK_RC(ferry_promise_resolve(NULL, NULL), DOC_PROM_DONE, -EINVAL);
        CHECK_RC(ferry_promise_reject(NULL, -EIO), DOC_PROM_DONE, -EINVAL);
        CHECK_RC(ferry_promise_complete(NULL, 0, NULL), DOC_PROM_DONE, -EINVAL);
        ferry_promise_ref(NULL);
        ferry_promise_unref(NULL);
        ferry_promise_cb_status(NULL, 0);
        ferry_promise_cb_status_data(NULL, 1, NULL);
        ferry_promise_cb_status_data_ctx(0, NULL, NULL);
        break;
    case 29:
        CHECK_RC(ferry_future_timeout(NULL, 0), DOC_COMPOSE, -EINVAL);
        break;
    case 30:
        CHECK_RC(ferry_future_then(NULL, fz_then_fn, NULL, NULL, &f),
                 DOC_COMPOSE, -EINVAL);
        break;
    case 31:
        CHECK_RC(ferry_future_wrap(NULL, NULL, &f), DOC_COMPOSE, -EINVAL);
        break;
    }
}

/* Cases 32-35 of fz_op_invalid: pools and the default executor. */
static void invalid_pool(unsigned k)
{
    ferry_pool *pool = NULL;
    switch (k) {
    case 32:
        CHECK_RC(ferry_loop_shutdown_default_executor(NULL, 0),
                 DOC_SHUT_DEFAULT, -EINVAL);
        break;
    case 33:
        CHECK_RC(ferry_pool_new(NULL, NULL), DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.threads = 4,
                                                            .max_threads = 2}),
            DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.threads = 5000}),
            DOC_POOL_NEW, -EINVAL);
        CHECK_RC(
            ferry_pool_new(&pool, &(struct ferry_pool_opts){.stack_size = 1}),
            DOC_POOL_NEW, -EINVAL);
        break;
    case 34:
        CHECK_RC(ferry_pool_free(NULL), DOC_POOL_FREE, -EINVAL);
        CHECK_RC(ferry_pool_shutdown(NULL, 0, 0, NULL), DOC_POOL_SHUTDOWN,
                 -EINVAL);
        break;
    case 35:
        CHECK_RC(ferry_pool_submit(NULL, fz_task_fn, NULL, NULL, 0, NULL),
                 DOC_SUBMIT, -EINVAL);
        CHECK_RC(
            ferry_pool_submit(fz_persistent_pool, NULL, NULL, NULL, 0, NULL),
            DOC_SUBMIT, -EINVAL);
        CHECK_RC(ferry_pool_try_submit(NULL, fz_task_fn, NULL, NULL, 0, NULL),
                 DOC_TRY_SUBMIT, -EINVAL);
        break;
    }
}

/* Cases 36-39 of fz_op_invalid: tasks, groups, pool queries and the rest. */
static void invalid_pool_misc(unsigned k)
{
    ferry_group g;
    struct ferry_pool_stats ps;
    switch (k) {
    case 36:
        CHECK_RC(ferry_task_cancel(NULL), DOC_TASK_CANCEL, -EINVAL);
        CHECK_RC(ferry_task_status(NULL), DOC_TASK_STATUS, -EINVAL);
        ferry_task_unref(NULL);
        FZ_CHECK(!ferry_task_cancelled(), "task_cancelled() off a worker");
        ferry_blocking_begin(); /* no effect off a worker */
        ferry_blocking_end();
        break;
    case 37:
        CHECK_RC(ferry_group_init(NULL, fz_persistent_pool), DOC_GROUP_INIT,
                 -EINVAL);
        CHECK_RC(ferry_group_init(&g, NULL), DOC_GROUP_INIT, -EINVAL);
        CHECK_RC(ferry_group_spawn(NULL, fz_task_fn, NULL, 0), DOC_GROUP_SPAWN,
                 -EINVAL);
        CHECK_RC(ferry_group_wait(NULL), DOC_GROUP_INIT, -EINVAL);
        break;
    case 38:
        CHECK_RC(ferry_pool_stats(NULL, &ps), DOC_POOL_STATS, -EINVAL);
        CHECK_RC(ferry_pool_stats(fz_persistent_pool, &ps), DOC_POOL_STATS, 0);
        CHECK_RC(ferry_pool_after_fork(NULL), DOC_POOL_AFTER_FORK, -EINVAL);
        CHECK_RC(ferry_pool_after_fork(fz_persistent_pool), DOC_POOL_AFTER_FORK,
                 -EINVAL); /* not a child */
        break;
    default:
        FZ_CHECK(ferry_strerror(-EBUSY) != NULL &&
                     ferry_strerror(-99999) != NULL && ferry_version() != NULL,
                 "strerror/version");
        FZ_CHECK(ferry_loop_running() == NULL, "no loop runs here now");
        break;
    }
}

/* Invalid arguments: each must give its exact error and touch nothing. */
void fz_op_invalid(uint8_t a, uint8_t b, uint8_t c)
{
    unsigned k = a % 40u;
    (void)b;
    (void)c;
    if (k < 9)
        invalid_loop(k);
    else if (k < 17)
        invalid_loop_misc(k);
    else if (k < 24)
        invalid_future(k);
    else if (k < 32)
        invalid_bridge(k);
    else if (k < 36)
        invalid_pool(k);
    else
        invalid_pool_misc(k);
}
