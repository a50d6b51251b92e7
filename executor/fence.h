/*
 * executor/fence.h: the StoreLoad fence, in a form ThreadSanitizer accepts.
 *
 * TSan does not model atomic_thread_fence (gcc 12 refuses it under
 * -fsanitize=thread with -Wtsan). Under TSan the fence becomes a seq_cst
 * read-modify-write of one process-wide word: on x86 the same locked
 * instruction as a fence, and in the C11 model at least as strong for our
 * Dekker pairs (the two RMWs are ordered in the word's modification order
 * and synchronise), which TSan does understand. Elsewhere it is the plain
 * fence. Callers still comment what each fence orders and its partner.
 */
#ifndef FERRY_EXECUTOR_FENCE_H
#define FERRY_EXECUTOR_FENCE_H

#include <stdatomic.h>

#include "common/base.h"

#ifdef FERRY__TSAN
extern _Atomic unsigned ferry__tsan_fence_word;
#endif

static inline void ferry__fence_seq_cst(void)
{
#ifdef FERRY__TSAN
    atomic_fetch_add_explicit(&ferry__tsan_fence_word, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

#endif /* FERRY_EXECUTOR_FENCE_H */
