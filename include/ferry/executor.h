/*
 * ferry/executor.h: the work-stealing thread pool (issue 3).
 */
#ifndef FERRY_EXECUTOR_H
#define FERRY_EXECUTOR_H

#include "ferry/common.h"

typedef struct ferry_pool ferry_pool;

#endif /* FERRY_EXECUTOR_H */
