/* Fake driver execution: modules and kernels, one busy timeline per device, streams, events, graphs.
 * A launch costs blocks x (ns per block of the kernel) of GPU time; work runs back to back on the
 * device's timeline; a launch blocks while more than FAKECUDA_QUEUE_NS of work is queued ahead. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fake_internal.h"

struct fake_function { uint64_t ns_per_block; };
static _Atomic int capture_on;
static _Atomic uint64_t capture_violations;
API void fakecuda_set_capturing(int on) { capture_on = on; }
API uint64_t fakecuda_capture_violations(void) { return capture_violations; }
struct fake_event { uint64_t at; int recorded; };
struct fake_graph { uint64_t cost_ns; };
struct fake_exec { int dev; uint64_t cost_ns; };

API CUresult cuModuleLoadData(CUmodule *m, const void *image) {
    (void)image;
    FAKE_ENTER();
    if (!m) return CUDA_ERROR_INVALID_VALUE;
    *m = (CUmodule)calloc(1, 8);
    return CUDA_SUCCESS;
}
API CUresult cuModuleUnload(CUmodule m) { FAKE_ENTER(); free(m); return CUDA_SUCCESS; }
API CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name) {
    FAKE_ENTER();
    if (!f || !m || !name) return CUDA_ERROR_INVALID_VALUE;
    size_t n = strlen(name), i = n;
    while (i > 0 && isdigit((unsigned char)name[i - 1])) i--;
    struct fake_function *fn = calloc(1, sizeof *fn);
    fn->ns_per_block = i < n ? strtoull(name + i, NULL, 10) : fake_cfg.kernel_ns;
    *f = (CUfunction)fn;
    return CUDA_SUCCESS;
}

uint64_t fake_kernel_cost(CUfunction f, uint64_t blocks) {
    const struct fake_function *fn = (const struct fake_function *)f;
    return blocks * (fn ? fn->ns_per_block : fake_cfg.kernel_ns);
}

uint64_t fake_timeline_end(int dev) {
    pthread_mutex_lock(&fake_dev[dev].lock);
    uint64_t t = fake_dev[dev].busy_until;
    pthread_mutex_unlock(&fake_dev[dev].lock);
    return t;
}

CUresult fake_run(int dev, uint64_t ns) {
    struct fake_device *d = &fake_dev[dev];
    for (;;) {
        uint64_t now = fakecuda_now_ns();
        pthread_mutex_lock(&d->lock);
        if (d->busy_until <= now + fake_cfg.queue_ns) {
            uint64_t start = d->busy_until > now ? d->busy_until : now;
            d->busy_until = start + ns;
            d->busy_total += ns;
            pthread_mutex_unlock(&d->lock);
            return CUDA_SUCCESS;
        }
        uint64_t wait = d->busy_until - fake_cfg.queue_ns;
        pthread_mutex_unlock(&d->lock);
        fake_wait_until(wait);
    }
}

API uint64_t fakecuda_busy_ns(int dev) {
    fake_init();
    pthread_mutex_lock(&fake_dev[dev].lock);
    uint64_t t = fake_dev[dev].busy_total;
    pthread_mutex_unlock(&fake_dev[dev].lock);
    return t;
}

static CUresult launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz) {
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (!f || !gx || !gy || !gz) return CUDA_ERROR_INVALID_VALUE;
    if (capture_on) return CUDA_SUCCESS; /* recorded into the graph being captured, not run */
    return fake_run(dev, fake_kernel_cost(f, (uint64_t)gx * gy * gz));
}

#define LAUNCH_ARGS CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
                    unsigned shmem, CUstream s, void **params, void **extra
#define UNUSED_LAUNCH (void)bx, (void)by, (void)bz, (void)shmem, (void)s, (void)params, (void)extra
API CUresult cuLaunchKernel(LAUNCH_ARGS) { UNUSED_LAUNCH; FAKE_ENTER(); return launch(f, gx, gy, gz); }
API CUresult cuLaunchKernel_ptsz(LAUNCH_ARGS) { UNUSED_LAUNCH; FAKE_ENTER(); return launch(f, gx, gy, gz); }
#define COOP_ARGS CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
                  unsigned shmem, CUstream s, void **params
#define UNUSED_COOP (void)bx, (void)by, (void)bz, (void)shmem, (void)s, (void)params
API CUresult cuLaunchCooperativeKernel(COOP_ARGS) { UNUSED_COOP; FAKE_ENTER(); return launch(f, gx, gy, gz); }
API CUresult cuLaunchCooperativeKernel_ptsz(COOP_ARGS) { UNUSED_COOP; FAKE_ENTER(); return launch(f, gx, gy, gz); }
static CUresult launch_ex(const CUlaunchConfig *c, CUfunction f) {
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    return launch(f, c->gridDimX, c->gridDimY, c->gridDimZ);
}
API CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **p, void **e) { (void)p; (void)e; FAKE_ENTER(); return launch_ex(c, f); }
API CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig *c, CUfunction f, void **p, void **e) { (void)p; (void)e; FAKE_ENTER(); return launch_ex(c, f); }

/* ---- streams: all work of a device shares its timeline ---- */
API CUresult cuStreamCreate(CUstream *s, unsigned int flags) {
    (void)flags;
    FAKE_ENTER();
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    *s = (CUstream)calloc(1, 8);
    return CUDA_SUCCESS;
}
API CUresult cuStreamDestroy_v2(CUstream s) { FAKE_ENTER(); free(s); return CUDA_SUCCESS; }
static CUresult sync_current(void) {
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    fake_wait_until(fake_timeline_end(dev));
    return CUDA_SUCCESS;
}
API CUresult cuStreamSynchronize(CUstream s) { (void)s; FAKE_ENTER(); return sync_current(); }
API CUresult cuStreamSynchronize_ptsz(CUstream s) { (void)s; FAKE_ENTER(); return sync_current(); }
static CUresult stream_query(void) {
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    return fake_timeline_end(dev) <= fakecuda_now_ns() ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}
API CUresult cuStreamQuery(CUstream s) { (void)s; FAKE_ENTER(); return stream_query(); }
API CUresult cuStreamQuery_ptsz(CUstream s) { (void)s; FAKE_ENTER(); return stream_query(); }
static CUresult capturing(CUstreamCaptureStatus *st) {
    if (!st) return CUDA_ERROR_INVALID_VALUE;
    *st = capture_on ? CU_STREAM_CAPTURE_STATUS_ACTIVE : CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}
API CUresult cuStreamIsCapturing(CUstream s, CUstreamCaptureStatus *st) { (void)s; FAKE_ENTER(); return capturing(st); }
API CUresult cuStreamIsCapturing_ptsz(CUstream s, CUstreamCaptureStatus *st) { (void)s; FAKE_ENTER(); return capturing(st); }

/* ---- events: a recorded event completes when the work queued before it ends ---- */
API CUresult cuEventCreate(CUevent *e, unsigned int flags) {
    (void)flags;
    FAKE_ENTER();
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    *e = (CUevent)calloc(1, sizeof(struct fake_event));
    return CUDA_SUCCESS;
}
API CUresult cuEventDestroy_v2(CUevent e) { FAKE_ENTER(); free(e); return CUDA_SUCCESS; }
static CUresult record(CUevent e) {
    struct fake_event *ev = (struct fake_event *)e;
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (!ev) return CUDA_ERROR_INVALID_HANDLE;
    uint64_t now = fakecuda_now_ns(), end = fake_timeline_end(dev);
    ev->at = end > now ? end : now;
    ev->recorded = 1;
    return CUDA_SUCCESS;
}
API CUresult cuEventRecord(CUevent e, CUstream s) { (void)s; FAKE_ENTER(); return record(e); }
API CUresult cuEventRecord_ptsz(CUevent e, CUstream s) { (void)s; FAKE_ENTER(); return record(e); }
API CUresult cuEventQuery(CUevent e) {
    FAKE_ENTER();
    if (capture_on) { capture_violations++; return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; }
    struct fake_event *ev = (struct fake_event *)e;
    if (!ev) return CUDA_ERROR_INVALID_HANDLE;
    return ev->at <= fakecuda_now_ns() ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY;
}
API CUresult cuEventSynchronize(CUevent e) {
    FAKE_ENTER();
    if (capture_on) { capture_violations++; return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED; }
    struct fake_event *ev = (struct fake_event *)e;
    if (!ev) return CUDA_ERROR_INVALID_HANDLE;
    fake_wait_until(ev->at);
    return CUDA_SUCCESS;
}
static CUresult elapsed(float *ms, CUevent a, CUevent b) {
    struct fake_event *x = (struct fake_event *)a, *y = (struct fake_event *)b;
    if (!ms || !x || !y || !x->recorded || !y->recorded) return CUDA_ERROR_INVALID_HANDLE;
    uint64_t now = fakecuda_now_ns();
    if (x->at > now || y->at > now) return CUDA_ERROR_NOT_READY;
    *ms = (float)((double)((int64_t)y->at - (int64_t)x->at) / 1e6);
    return CUDA_SUCCESS;
}
API CUresult cuEventElapsedTime(float *ms, CUevent a, CUevent b) { FAKE_ENTER(); return elapsed(ms, a, b); }
API CUresult cuEventElapsedTime_v2(float *ms, CUevent a, CUevent b) { FAKE_ENTER(); return elapsed(ms, a, b); }

/* ---- graphs: a graph's cost is the sum of its kernel nodes; memory nodes map host memory ---- */
API CUresult cuGraphCreate(CUgraph *g, unsigned int flags) {
    (void)flags;
    FAKE_ENTER();
    if (!g) return CUDA_ERROR_INVALID_VALUE;
    *g = (CUgraph)calloc(1, sizeof(struct fake_graph));
    return CUDA_SUCCESS;
}
API CUresult cuGraphDestroy(CUgraph g) { FAKE_ENTER(); free(g); return CUDA_SUCCESS; }
API CUresult cuGraphAddKernelNode_v2(CUgraphNode *n, CUgraph g, const CUgraphNode *deps, size_t nd, const CUDA_KERNEL_NODE_PARAMS *p) {
    (void)deps; (void)nd;
    FAKE_ENTER();
    if (!n || !g || !p) return CUDA_ERROR_INVALID_VALUE;
    ((struct fake_graph *)g)->cost_ns += fake_kernel_cost(p->func, (uint64_t)p->gridDimX * p->gridDimY * p->gridDimZ);
    *n = (CUgraphNode)g;
    return CUDA_SUCCESS;
}
API CUresult cuGraphAddMemAllocNode(CUgraphNode *n, CUgraph g, const CUgraphNode *deps, size_t nd, CUDA_MEM_ALLOC_NODE_PARAMS *p) {
    (void)deps; (void)nd;
    FAKE_ENTER();
    if (!n || !g || !p || p->bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
    void *m = fake_map(p->bytesize);
    p->dptr = (CUdeviceptr)(uintptr_t)m;
    *n = (CUgraphNode)g;
    return CUDA_SUCCESS;
}
API CUresult cuGraphInstantiateWithFlags(CUgraphExec *e, CUgraph g, unsigned long long flags) {
    (void)flags;
    FAKE_ENTER();
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (!e || !g) return CUDA_ERROR_INVALID_VALUE;
    struct fake_exec *x = calloc(1, sizeof *x);
    x->dev = dev;
    x->cost_ns = ((struct fake_graph *)g)->cost_ns;
    *e = (CUgraphExec)x;
    return CUDA_SUCCESS;
}
API CUresult cuGraphExecDestroy(CUgraphExec e) { FAKE_ENTER(); free(e); return CUDA_SUCCESS; }
static CUresult graph_launch(CUgraphExec e) {
    struct fake_exec *x = (struct fake_exec *)e;
    if (!x) return CUDA_ERROR_INVALID_VALUE;
    return fake_run(x->dev, x->cost_ns);
}
API CUresult cuGraphLaunch(CUgraphExec e, CUstream s) { (void)s; FAKE_ENTER(); return graph_launch(e); }
API CUresult cuGraphLaunch_ptsz(CUgraphExec e, CUstream s) { (void)s; FAKE_ENTER(); return graph_launch(e); }
