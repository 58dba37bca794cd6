/* The compute limiter's per-launch fast path, inlined into the launch wrappers; the rest is in
 * limiter.c. */
#ifndef LIMITER_H
#define LIMITER_H

#include "shim.h"

#pragma GCC visibility push(hidden)

#define LIMITER_COSTS 4096

struct limiter_cost {
    _Atomic uintptr_t key;
    uint64_t ns;          /* per unit, 1/1024 ns; 0 until the first sample completes */
    uint32_t countdown;   /* launches until the next sample */
    int32_t pad;
    uint64_t pend_units;  /* launched before the first sample completed ... */
    int64_t pend_charged; /* ... and what they were charged, corrected once it has */
};

extern struct limiter_cost limiter_costs[LIMITER_COSTS];
extern int limiter_any_sm_limit;
extern uint64_t limiter_share[HAMI_MAX_DEVICES];
void limiter_priority_gate(void);
void limiter_wait(int dev, CUstream s, int ptsz);
int limiter_slow(int dev, uintptr_t key, uint64_t units, CUstream s, int ptsz, struct limiter_cost *c);

static inline _Atomic int64_t *limiter_tokens(int dev) { return (_Atomic int64_t *)&shim_ext->tokens[dev]; }

static inline size_t limiter_cost_home(uintptr_t k) {
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 52) & (LIMITER_COSTS - 1);
}

static inline struct limiter_cost *limiter_cost_find(uintptr_t key) {
    for (size_t j = limiter_cost_home(key), n = 0; n < 16; j = (j + 1) & (LIMITER_COSTS - 1), n++) {
        uintptr_t k = atomic_load_explicit(&limiter_costs[j].key, memory_order_acquire);
        if (LIKELY(k == key)) return &limiter_costs[j];
        if (!k) return NULL;
    }
    return NULL;
}

/* Before a launch of `key` (function or graph exec) costing `units` (blocks, or 1 per graph):
 * charge its learned GPU time to the device's budget, waiting while the budget is negative.
 * Returns 1 when this launch is sampled: the wrapper then calls limiter_after. */
static inline int limiter_before(uintptr_t key, uint64_t units, CUstream s, int ptsz) {
    if (UNLIKELY(!limiter_enabled)) return 0;
    if (UNLIKELY(shim_region->recent_kernel != 2)) limiter_priority_gate();
    if (!limiter_any_sm_limit) return 0;
    int dev = shim_current_device();
    if (UNLIKELY((unsigned)dev >= HAMI_MAX_DEVICES) || limiter_share[dev] >= 100) return 0;
    struct limiter_cost *c = limiter_cost_find(key);
    if (UNLIKELY(!c || !c->ns || --c->countdown == 0)) return limiter_slow(dev, key, units, s, ptsz, c);
    _Atomic int64_t *t = limiter_tokens(dev);
    if (UNLIKELY(atomic_load_explicit(t, memory_order_relaxed) < 0)) limiter_wait(dev, s, ptsz);
    atomic_fetch_sub_explicit(t, (int64_t)((c->ns * units) >> 10), memory_order_relaxed);
    return 0;
}

#pragma GCC visibility pop

#endif
