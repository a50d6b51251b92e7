/*
 * common/ec.h: ck_ec (Paul Khuong's event count, ck 0.7.1) with ferry's
 * futex ops. An event count lets a thread sleep until a counter moves, and
 * costs the incrementer no system call unless someone sleeps (the waiter
 * sets a flag bit that ck_ec_inc checks).
 *
 * Thread: any. ck_ec32 is touched only through ck's API (ck_pr inside),
 * never with C11 atomics (STYLE.md point 10).
 */
#ifndef FERRY_COMMON_EC_H
#define FERRY_COMMON_EC_H

#include <stdint.h>
#include <time.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <ck_ec.h>
#pragma GCC diagnostic pop

/* Multi-producer mode with futex wait/wake on CLOCK_MONOTONIC deadlines. */
extern const struct ck_ec_mode ferry__ec_mode;

/* Wait until ec moves past old or the absolute deadline_ns (0 = none).
 * Returns 0 or -ETIMEDOUT. */
int ferry__ec_wait(struct ck_ec32 *ec, uint32_t old, uint64_t deadline_ns);

#endif /* FERRY_COMMON_EC_H */
