/*
 * ferry.h: the umbrella header. ferry ferries work between a single-threaded
 * event loop and a work-stealing thread pool, with asyncio's semantics.
 *
 *   ferry/loop.h      the loop: call_soon, timers, fd watchers, threadsafe
 * posts ferry/future.h    futures shared across threads ferry/executor.h  the
 * work-stealing pool ferry/bridge.h    run_in_executor, run_threadsafe,
 * promises
 */
#ifndef FERRY_H
#define FERRY_H

#include "ferry/common.h"
#include "ferry/loop.h"
#include "ferry/future.h"
#include "ferry/executor.h"
#include "ferry/bridge.h"

#endif /* FERRY_H */
