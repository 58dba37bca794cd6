/* Compute limiter: a token bucket of GPU time per device, shared by the container's processes
 * through the region. Launches spend their estimated GPU time; the bucket refills at share x
 * elapsed time (capped at a 20 ms burst); a launch waits while the bucket is negative. Kernel
 * and graph costs are learned by timing sampled launches with a pair of events (README: limiter). */
#include <time.h>

#include "limiter.h"

#define BURST_NS 20000000LL
#define RESAMPLE_EVERY 1024
#define DEFAULT_NS_PER_UNIT (1000 << 10)

int limiter_enabled;
int limiter_any_sm_limit;
uint64_t limiter_share[HAMI_MAX_DEVICES];

/* ---- clock (injectable for tests) ---- */
static uint64_t mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static void mono_sleep(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}
static uint64_t (*now_fn)(void) = mono_now;
static void (*sleep_fn)(uint64_t) = mono_sleep;
uint64_t shim_now_ns(void) { return now_fn(); }
void shim_sleep_ns(uint64_t ns) { sleep_fn(ns); }

/* Tests replace the clock (e.g. with the fake driver's virtual one); NULL restores the real one. */
EXPORT void hami_shim_set_clock(uint64_t (*now)(void), void (*sleep)(uint64_t)) {
    now_fn = now ? now : mono_now;
    sleep_fn = sleep ? sleep : mono_sleep;
}

int64_t limiter_refill_amount(uint64_t last, uint64_t now, uint64_t share) {
    if (last == 0) return BURST_NS;
    uint64_t dt = now > last ? now - last : 0;
    if (dt > 1000000000ull) dt = 1000000000ull;
    return (int64_t)(dt * share / 100);
}

/* ---- learned costs: key (function or graph exec) -> GPU time per unit (block or graph launch),
 * in 1/1024 ns so that short kernels keep their precision ---- */
struct limiter_cost limiter_costs[LIMITER_COSTS];
#define costs limiter_costs
#define cost limiter_cost
static pthread_mutex_t cost_lock = PTHREAD_MUTEX_INITIALIZER;

#define cost_home limiter_cost_home
#define cost_find limiter_cost_find
#define COSTS LIMITER_COSTS

static struct cost *cost_insert(uintptr_t key) {
    pthread_mutex_lock(&cost_lock);
    struct cost *c = cost_find(key);
    for (size_t j = cost_home(key), n = 0; !c && n < 16; j = (j + 1) & (COSTS - 1), n++)
        if (!atomic_load(&costs[j].key)) {
            costs[j].ns = 0;
            costs[j].countdown = RESAMPLE_EVERY;
            atomic_store_explicit(&costs[j].key, key, memory_order_release);
            c = &costs[j];
        }
    pthread_mutex_unlock(&cost_lock);
    return c;
}

/* ---- sampling: one launch at a time per device is bracketed by two events. On an idle stream the
 * start event completes before the launch even reaches the GPU, so the host time the submission
 * took is taken off the measurement. ---- */
struct sampler {
    int pending, armed, ptsz;
    int idle;                /* the stream was idle: the events also timed the launch's submission */
    uint64_t host_start, host_ns; /* host time from the start event to the launch's return */
    CUcontext ctx;
    CUevent a, b;
    uintptr_t key;
    uint64_t units;
    int64_t charged;
};
static struct sampler samplers[HAMI_MAX_DEVICES];
static uint64_t default_ns[HAMI_MAX_DEVICES];
static pthread_mutex_t sampler_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int sampled_dev = -1;



static CUresult record(CUevent e, CUstream s, int ptsz) {
    if (ptsz && real_cuEventRecord_ptsz) return real_cuEventRecord_ptsz(e, s);
    return real_cuEventRecord ? real_cuEventRecord(e, s) : CUDA_ERROR_NOT_FOUND;
}

/* Finish the device's sample if its end event completed (sampler_lock held). */
static void poll_sample(int dev) {
    struct sampler *sm = &samplers[dev];
    if (!sm->pending || !sm->armed || !real_cuEventQuery || real_cuEventQuery(sm->b) != CUDA_SUCCESS) return;
    float ms = 0;
    CUresult rc = real_cuEventElapsedTime_v2 ? real_cuEventElapsedTime_v2(&ms, sm->a, sm->b)
                                             : real_cuEventElapsedTime ? real_cuEventElapsedTime(&ms, sm->a, sm->b)
                                                                       : CUDA_ERROR_NOT_FOUND;
    sm->pending = sm->armed = 0;
    if (rc != CUDA_SUCCESS || ms < 0) return;
    int64_t ns = (int64_t)((double)ms * 1e6 + 0.5);
    if (sm->idle) ns = ns > (int64_t)sm->host_ns ? ns - (int64_t)sm->host_ns : 0;
    uint64_t per = ((uint64_t)ns << 10) / (sm->units ? sm->units : 1);
    if (per == 0) per = 1;
    struct cost *c = cost_find(sm->key);
    int64_t debt = ns - sm->charged;
    if (c && !c->ns && c->pend_units) debt = (int64_t)((per * c->pend_units) >> 10) - c->pend_charged;
    if (c) {
        c->ns = per;
        c->pend_units = 0;
        c->pend_charged = 0;
    }
    default_ns[dev] = per;
    LOG_INFO("device %d: %#lx costs %llu/1024 ns per unit (sampled %lld ns, charged %lld)", dev, (unsigned long)sm->key, (unsigned long long)per, (long long)ns, (long long)sm->charged);
    atomic_fetch_sub_explicit(limiter_tokens(dev), debt, memory_order_relaxed);
}

static int capturing(CUstream s, int ptsz) {
    CUstreamCaptureStatus st = CU_STREAM_CAPTURE_STATUS_NONE;
    __typeof__(cuStreamIsCapturing) *fn = ptsz && real_cuStreamIsCapturing_ptsz ? real_cuStreamIsCapturing_ptsz : real_cuStreamIsCapturing;
    return fn && fn(s, &st) == CUDA_SUCCESS && st != CU_STREAM_CAPTURE_STATUS_NONE;
}

static int start_sample(int dev, uintptr_t key, uint64_t units, int64_t charged, CUstream s, int ptsz) {
    struct sampler *sm = &samplers[dev];
    CUcontext ctx = NULL;
    if (!real_cuCtxGetCurrent || real_cuCtxGetCurrent(&ctx) != CUDA_SUCCESS || !ctx || !real_cuEventCreate) return 0;
    if (sm->ctx != ctx) {
        if (real_cuEventCreate(&sm->a, CU_EVENT_DEFAULT) != CUDA_SUCCESS) return 0;
        if (real_cuEventCreate(&sm->b, CU_EVENT_DEFAULT) != CUDA_SUCCESS) return 0;
        sm->ctx = ctx;
    }
    __typeof__(cuStreamQuery) *query = ptsz && real_cuStreamQuery_ptsz ? real_cuStreamQuery_ptsz : real_cuStreamQuery;
    sm->idle = query && query(s) == CUDA_SUCCESS;
    sm->host_start = now_fn();
    if (record(sm->a, s, ptsz) != CUDA_SUCCESS) return 0;
    sm->pending = 1;
    sm->armed = 0;
    sm->key = key;
    sm->units = units;
    sm->charged = charged;
    sm->ptsz = ptsz;
    return 1;
}

static void touch_kernel_time(void) {
    uint64_t t = (uint64_t)time(NULL);
    if (t >= shim_region->last_kernel_time + (uint64_t)shim_cfg.record_interval) shim_region->last_kernel_time = t;
}

static void refill(int dev, uint64_t now) {
    _Atomic uint64_t *at = (_Atomic uint64_t *)&shim_ext->refilled[dev];
    uint64_t last = atomic_load(at);
    if (now <= last || !atomic_compare_exchange_strong(at, &last, now)) return;
    uint64_t sl = shim_region->sm_limit[dev];
    limiter_share[dev] = sl == 0 || sl > 100 ? 100 : sl;
    int64_t add = limiter_refill_amount(last, now, limiter_share[dev]);
    int64_t cur = atomic_load(limiter_tokens(dev)), next;
    do {
        next = cur + add > BURST_NS ? BURST_NS : cur + add;
    } while (!atomic_compare_exchange_weak(limiter_tokens(dev), &cur, next));
}

/* Sleep until the device's budget is not negative. Launches into a capturing stream do not run now:
 * they neither wait nor poll (an event query could break a global-mode capture). */
void limiter_wait(int dev, CUstream s, int ptsz) {
    if (capturing(s, ptsz)) return;
    for (;;) {
        refill(dev, now_fn());
        int64_t t = atomic_load(limiter_tokens(dev));
        if (t >= 0 || limiter_share[dev] >= 100) break;
        if (pthread_mutex_trylock(&sampler_lock) == 0) {
            poll_sample(dev);
            pthread_mutex_unlock(&sampler_lock);
        }
        uint64_t ns = (uint64_t)(-t) * 100 / limiter_share[dev];
        sleep_fn(ns < 20000 ? 20000 : ns > 10000000 ? 10000000 : ns);
    }
    touch_kernel_time();
}

/* recent_kernel < 0: the host monitor blocks this container while higher-priority work runs. */
void limiter_priority_gate(void) {
    _Atomic int32_t *rk = (_Atomic int32_t *)&shim_region->recent_kernel;
    int32_t v = atomic_load(rk);
    while (v < 0) {
        sleep_fn(10000000);
        v = atomic_load(rk);
    }
    atomic_compare_exchange_strong(rk, &v, 2);
    limiter_configure();
    touch_kernel_time();
}

/* Unknown or due for a new measurement: charge the best estimate, wait for budget, and bracket
 * this launch with the device's events when no other sample is in flight. The start event is
 * recorded after the wait, so the sample times the kernel, not the throttling. */
int limiter_slow(int dev, uintptr_t key, uint64_t units, CUstream s, int ptsz, struct cost *c) {
    if (!c) c = cost_insert(key);
    int capture = capturing(s, ptsz);
    pthread_mutex_lock(&sampler_lock);
    if (!capture) poll_sample(dev);
    uint64_t per = c && c->ns ? c->ns : default_ns[dev] ? default_ns[dev] : DEFAULT_NS_PER_UNIT;
    int64_t cost = (int64_t)((per * units) >> 10);
    if (c && !c->ns) { /* an estimate: remembered, and corrected when the sample completes */
        c->pend_units += units;
        c->pend_charged += cost;
    }
    pthread_mutex_unlock(&sampler_lock);
    if (!capture && atomic_load_explicit(limiter_tokens(dev), memory_order_relaxed) < 0) limiter_wait(dev, s, ptsz);
    atomic_fetch_sub_explicit(limiter_tokens(dev), cost, memory_order_relaxed);
    int sample = 0;
    pthread_mutex_lock(&sampler_lock);
    if (c && !capture && !samplers[dev].pending) sample = start_sample(dev, key, units, cost, s, ptsz);
    if (c) c->countdown = sample ? RESAMPLE_EVERY : 16;
    pthread_mutex_unlock(&sampler_lock);
    if (sample) sampled_dev = dev;
    return sample;
}

void limiter_after(CUstream s, int ptsz) {
    int dev = sampled_dev;
    sampled_dev = -1;
    if (dev < 0) return;
    pthread_mutex_lock(&sampler_lock);
    struct sampler *sm = &samplers[dev];
    sm->host_ns = now_fn() - sm->host_start;
    if (sm->pending && record(sm->b, s, ptsz) == CUDA_SUCCESS) sm->armed = 1;
    else sm->pending = 0;
    pthread_mutex_unlock(&sampler_lock);
}

void limiter_configure(void) {
    limiter_enabled = !shim_cfg.policy_disable;
    int any = 0;
    for (int d = 0; d < HAMI_MAX_DEVICES; d++) {
        uint64_t sl = shim_region->sm_limit[d];
        limiter_share[d] = sl == 0 || sl > 100 ? 100 : sl;
        any |= limiter_share[d] < 100;
    }
    limiter_any_sm_limit = any;
}
