/*
 * ferry/bridge.h: run_in_executor, run_threadsafe, promises (issue 4).
 */
#ifndef FERRY_BRIDGE_H
#define FERRY_BRIDGE_H

#include "ferry/common.h"
#include "ferry/loop.h"
#include "ferry/future.h"
#include "ferry/executor.h"

#endif /* FERRY_BRIDGE_H */
