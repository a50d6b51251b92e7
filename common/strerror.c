/*
 * common/strerror.c: ferry_strerror and ferry_version.
 *
 * The library speaks negative errno values; the text is the C library's,
 * with ferry's reserved meanings spelled out for the codes whose system
 * text would mislead (ECHILD is "No child processes" to libc, but means
 * "inherited across fork" here).
 *
 * Thread: any. strerror() is not thread-safe, so the messages live in a
 * static table and the fallback goes through strerror_r's POSIX version
 * into a thread-local buffer.
 */
#include <errno.h>
#include <string.h>

#include "common/base.h"

#ifndef FERRY_VERSION_STRING
#define FERRY_VERSION_STRING "0.0.0"
#endif

static const struct {
    int err;
    const char *msg;
} table[] = {
    {0, "Success"},
    {EINVAL, "Invalid argument"},
    {ENOMEM, "Out of memory"},
    {EPERM, "Called from the wrong thread"},
    {EAGAIN, "Not ready yet, or queue full"},
    {ECANCELED, "Cancelled"},
    {EBUSY, "Busy: already running or still running"},
    {EALREADY, "Already resolved"},
    {ESHUTDOWN, "Loop or pool is closing or closed"},
    {ETIMEDOUT, "Timed out"},
    {EDEADLK, "Wait would deadlock: this thread must resolve the future"},
    {ECHILD, "Object inherited across fork; call its after_fork first"},
};

static FERRY__TLS char fallback[64];

FERRY_API const char *ferry_strerror(int err)
{
    int e = err < 0 ? -err : err;
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(table); i++)
        if (table[i].err == e)
            return table[i].msg;
    /* GNU strerror_r may return a static string instead of filling buf. */
    if (strerror_r(e, fallback, sizeof fallback) != 0)
        return "Unknown error";
    return fallback;
}

FERRY_API const char *ferry_version(void)
{
    return FERRY_VERSION_STRING;
}
