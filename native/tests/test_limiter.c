/* The compute limiter on the fake driver's virtual clock: the busy share of the device over 5 s
 * stays within 5 points of CUDA_DEVICE_SM_LIMIT for short and long kernels, Ex, cooperative and
 * graph launches; a new limit written into the region (as the host monitor may) takes effect;
 * recent_kernel < 0 blocks launches; GPU_CORE_UTILIZATION_POLICY=disable turns the limit off
 * (run again by tests/run.sh with LIMITER_EXPECT=100). */
#include <cuda.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "driver_extra.h"
#include "fakecuda.h"
#include "region_view.h"

#define WINDOW_NS 5000000000ull
static CUfunction short_k, long_k;
static CUgraphExec graph;
static hami_region_t *R;

static void l_short(void) { cuLaunchKernel(short_k, 500, 1, 1, 128, 1, 1, 0, 0, NULL, NULL); }        /* 10 us */
static void l_long(void) { cuLaunchKernel_ptsz(long_k, 100, 1, 1, 128, 1, 1, 0, 0, NULL, NULL); }     /* 20 ms */
static void l_graph(void) { cuGraphLaunch(graph, 0); }                                               /* 10 ms */
static void l_mixed(void) {
    static unsigned i;
    CUlaunchConfig c = {.gridDimX = 250, .gridDimY = 2, .gridDimZ = 1, .blockDimX = 64, .blockDimY = 1, .blockDimZ = 1};
    if (i++ % 2) cuLaunchKernelEx(&c, short_k, NULL, NULL);                                          /* 10 us */
    else cuLaunchCooperativeKernel_ptsz(short_k, 1000, 1, 1, 64, 1, 1, 0, 0, NULL);                  /* 20 us */
}

static double share(void (*launch)(void)) {
    cuCtxSynchronize();
    uint64_t t0 = fakecuda_now_ns(), b0 = fakecuda_busy_ns(0);
    while (fakecuda_now_ns() - t0 < WINDOW_NS) launch();
    cuCtxSynchronize();
    return 100.0 * (double)(fakecuda_busy_ns(0) - b0) / (double)(fakecuda_now_ns() - t0);
}

static void *unblock_later(void *arg) {
    uint64_t t0 = *(uint64_t *)arg;
    while (fakecuda_now_ns() - t0 < 100000000ull) sched_yield();
    __atomic_store_n(&R->recent_kernel, 0, __ATOMIC_SEQ_CST);
    return NULL;
}

int main(void) {
    void (*set_clock)(uint64_t (*)(void), void (*)(uint64_t)) = (void (*)(uint64_t (*)(void), void (*)(uint64_t)))dlsym(RTLD_DEFAULT, "hami_shim_set_clock");
    CHECK(set_clock != NULL, "the shim exports its clock hook");
    if (!set_clock) return CHECK_DONE("test_limiter");
    set_clock(fakecuda_now_ns, fakecuda_sleep_ns);
    cuInit(0);
    CUcontext ctx;
    cuDevicePrimaryCtxRetain(&ctx, 0);
    cuCtxSetCurrent(ctx);
    CUmodule m;
    cuModuleLoadData(&m, "");
    cuModuleGetFunction(&short_k, m, "short_20");
    cuModuleGetFunction(&long_k, m, "long_200000");
    CUgraph g;
    cuGraphCreate(&g, 0);
    for (int i = 0; i < 10; i++) {
        CUDA_KERNEL_NODE_PARAMS p = {.func = short_k, .gridDimX = 50000, .gridDimY = 1, .gridDimZ = 1, .blockDimX = 64, .blockDimY = 1, .blockDimZ = 1};
        CUgraphNode n;
        cuGraphAddKernelNode(&n, g, NULL, 0, &p);
    }
    cuGraphInstantiate(&graph, g, 0);
    R = region_view(NULL);
    const char *expect_env = getenv("LIMITER_EXPECT");
    if (expect_env) { /* policy disable: the limit in the env is ignored */
        double s1 = share(l_short), s2 = share(l_graph);
        CHECK(s1 > 95 && s2 > 95, "with the policy disabled launches run unthrottled (%.1f%%, %.1f%%)", s1, s2);
        printf("limiter disabled: short %.1f%%, graph %.1f%%\n", s1, s2);
        return CHECK_DONE("test_limiter (policy disable)");
    }
    struct { const char *name; void (*fn)(void); } loads[] = {
        {"short kernels (10 us)", l_short}, {"long kernels (20 ms, _ptsz)", l_long},
        {"graph launches (10 ms)", l_graph}, {"Ex + cooperative (10-20 us)", l_mixed},
    };
    int limits[] = {30, 70};
    for (int li = 0; li < 2; li++) {
        R->sm_limit[0] = (uint64_t)limits[li]; /* as the host monitor may rewrite it */
        for (int k = 0; k < 4; k++) {
            double s = share(loads[k].fn);
            CHECK(fabs(s - limits[li]) <= 5.0, "limit %d%%: %s ran at %.1f%%", limits[li], loads[k].name, s);
            printf("limiter: limit %d%%, %-28s measured %.1f%%\n", limits[li], loads[k].name, s);
        }
    }
    /* Priority: the monitor blocks the container with recent_kernel = -1 until it writes 0. */
    R->sm_limit[0] = 100;
    __atomic_store_n(&R->recent_kernel, -1, __ATOMIC_SEQ_CST);
    uint64_t t0 = fakecuda_now_ns();
    pthread_t th;
    pthread_create(&th, NULL, unblock_later, &t0);
    l_short();
    pthread_join(th, NULL);
    CHECK(fakecuda_now_ns() - t0 >= 100000000ull, "a blocked container waits until the monitor unblocks it");
    CHECK(R->recent_kernel == 2, "the launch marks the container active again (recent_kernel=%d)", R->recent_kernel);
    double s = share(l_short);
    CHECK(s > 95, "limit 100 (none): %.1f%%", s);
    /* During stream capture launches do not run: no waiting, no event queries (they would break a
     * global-mode capture), whatever the budget. */
    R->sm_limit[0] = 30;
    l_long();
    fakecuda_set_capturing(1);
    CUfunction fresh;
    cuModuleGetFunction(&fresh, m, "captured_5000");
    uint64_t t1 = fakecuda_now_ns(), q = fakecuda_calls("cuEventQuery");
    for (int i = 0; i < 1000; i++) cuLaunchKernel(fresh, 1000, 1, 1, 64, 1, 1, 0, 0, NULL, NULL);
    for (int i = 0; i < 100; i++) l_long();
    fakecuda_set_capturing(0);
    CHECK(fakecuda_now_ns() == t1, "captured launches never wait");
    CHECK(fakecuda_capture_violations() == 0 && fakecuda_calls("cuEventQuery") == q, "and never query events");
    return CHECK_DONE("test_limiter");
}
