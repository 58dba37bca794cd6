/* Fake driver core: configuration, clock, call counts and faults, physical memory, devices, contexts. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fake_internal.h"

struct fake_config fake_cfg;
struct fake_device fake_dev[FAKE_MAX_DEVICES];

/* Physical usage, in a file when several processes must agree (FAKECUDA_STATE). */
struct fake_shared {
    _Atomic int64_t used[FAKE_MAX_DEVICES];
    _Atomic int64_t data_used[FAKE_MAX_DEVICES];
    _Atomic int64_t data_peak[FAKE_MAX_DEVICES];
};
static struct fake_shared *shared;

#define MAX_NAMES 512
static struct { const char *name; _Atomic uint64_t calls; } names[MAX_NAMES];
static int name_count;
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int fault_armed;
static char fault_name[96];
static int fault_count;
static CUresult fault_code;

static _Atomic uint64_t virtual_now;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static void init_once(void) {
    fake_cfg.devices = (int)env_u64("FAKECUDA_DEVICES", 1);
    if (fake_cfg.devices < 1 || fake_cfg.devices > FAKE_MAX_DEVICES) fake_cfg.devices = 1;
    fake_cfg.memory = env_u64("FAKECUDA_MEMORY", 80ull << 30);
    fake_cfg.ctx_bytes = env_u64("FAKECUDA_CTX_BYTES", 300ull << 20);
    fake_cfg.kernel_ns = env_u64("FAKECUDA_KERNEL_NS", 1000);
    fake_cfg.queue_ns = env_u64("FAKECUDA_QUEUE_NS", 100000000ull);
    fake_cfg.virtual_clock = (int)env_u64("FAKECUDA_VIRTUAL_CLOCK", 0);
    for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
        fake_dev[i].total = fake_cfg.memory;
        pthread_mutex_init(&fake_dev[i].lock, NULL);
    }
    const char *path = getenv("FAKECUDA_STATE");
    void *p = MAP_FAILED;
    if (path && *path) {
        int fd = open(path, O_RDWR | O_CREAT, 0666);
        if (fd >= 0 && ftruncate(fd, sizeof(struct fake_shared)) == 0)
            p = mmap(NULL, sizeof(struct fake_shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (fd >= 0) close(fd);
    }
    if (p == MAP_FAILED)
        p = mmap(NULL, sizeof(struct fake_shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    shared = p;
}

void fake_init(void) { pthread_once(&once, init_once); }

CUresult fake_enter(int *slot, const char *name) {
    fake_init();
    int s = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (s < 0) {
        pthread_mutex_lock(&names_lock);
        for (s = 0; s < name_count && strcmp(names[s].name, name) != 0; s++) {}
        if (s == name_count && name_count < MAX_NAMES) names[name_count++].name = name;
        pthread_mutex_unlock(&names_lock);
        __atomic_store_n(slot, s, __ATOMIC_RELEASE);
    }
    if (s < MAX_NAMES) atomic_fetch_add_explicit(&names[s].calls, 1, memory_order_relaxed);
    if (atomic_load_explicit(&fault_armed, memory_order_relaxed)) {
        CUresult rc = CUDA_SUCCESS;
        pthread_mutex_lock(&fault_lock);
        if (fault_count > 0 && strcmp(fault_name, name) == 0) {
            rc = fault_code;
            if (--fault_count == 0) atomic_store(&fault_armed, 0);
        }
        pthread_mutex_unlock(&fault_lock);
        return rc;
    }
    return CUDA_SUCCESS;
}

API uint64_t fakecuda_calls(const char *name) {
    pthread_mutex_lock(&names_lock);
    uint64_t n = 0;
    for (int i = 0; i < name_count; i++)
        if (strcmp(names[i].name, name) == 0) n = names[i].calls;
    pthread_mutex_unlock(&names_lock);
    return n;
}

API void fakecuda_fail_next(const char *name, int count, int code) {
    pthread_mutex_lock(&fault_lock);
    snprintf(fault_name, sizeof fault_name, "%s", name);
    fault_count = count;
    fault_code = (CUresult)code;
    atomic_store(&fault_armed, count > 0);
    pthread_mutex_unlock(&fault_lock);
}

API void fakecuda_reset(void) {
    fake_init();
    pthread_mutex_lock(&names_lock);
    for (int i = 0; i < name_count; i++) names[i].calls = 0;
    pthread_mutex_unlock(&names_lock);
    fakecuda_fail_next("", 0, 0);
    uint64_t now = fakecuda_now_ns();
    for (int i = 0; i < FAKE_MAX_DEVICES; i++) {
        pthread_mutex_lock(&fake_dev[i].lock);
        fake_dev[i].busy_total = 0;
        if (fake_dev[i].busy_until > now) fake_dev[i].busy_until = now;
        pthread_mutex_unlock(&fake_dev[i].lock);
    }
}

API uint64_t fakecuda_now_ns(void) {
    fake_init();
    if (fake_cfg.virtual_clock) return atomic_load(&virtual_now);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

API void fakecuda_sleep_ns(uint64_t ns) {
    fake_init();
    if (fake_cfg.virtual_clock) {
        atomic_fetch_add(&virtual_now, ns);
        return;
    }
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

void fake_wait_until(uint64_t t) {
    uint64_t now = fakecuda_now_ns();
    if (t > now) fakecuda_sleep_ns(t - now);
}

int fake_phys_take(int dev, uint64_t bytes, int data) {
    int64_t cur = atomic_load(&shared->used[dev]);
    do {
        if ((uint64_t)cur + bytes > fake_dev[dev].total) return -1;
    } while (!atomic_compare_exchange_weak(&shared->used[dev], &cur, cur + (int64_t)bytes));
    if (data) {
        int64_t now = atomic_fetch_add(&shared->data_used[dev], (int64_t)bytes) + (int64_t)bytes;
        int64_t peak = atomic_load(&shared->data_peak[dev]);
        while (now > peak && !atomic_compare_exchange_weak(&shared->data_peak[dev], &peak, now)) {}
    }
    return 0;
}

void fake_phys_give(int dev, uint64_t bytes, int data) {
    atomic_fetch_sub(&shared->used[dev], (int64_t)bytes);
    if (data) atomic_fetch_sub(&shared->data_used[dev], (int64_t)bytes);
}

API int64_t fakecuda_physical_used(int dev) { fake_init(); return atomic_load(&shared->used[dev]); }
API int64_t fakecuda_data_used(int dev) { fake_init(); return atomic_load(&shared->data_used[dev]); }
API void fakecuda_reset_peak(int dev) { fake_init(); atomic_store(&shared->data_peak[dev], atomic_load(&shared->data_used[dev])); }
API int64_t fakecuda_data_peak(int dev) { fake_init(); return atomic_load(&shared->data_peak[dev]); }

/* ---- contexts ---- */
static __thread struct fake_ctx *ctx_stack[16];
static __thread int ctx_depth;

struct fake_ctx *fake_current_ctx(void) { return ctx_depth ? ctx_stack[ctx_depth - 1] : NULL; }
int fake_current_device(void) { struct fake_ctx *c = fake_current_ctx(); return c ? c->dev : -1; }
void fake_set_current(struct fake_ctx *ctx) {
    if (ctx_depth == 0) { if (ctx) ctx_stack[ctx_depth++] = ctx; return; }
    if (ctx) ctx_stack[ctx_depth - 1] = ctx; else ctx_depth--;
}

static int bad_device(CUdevice d) { return d < 0 || d >= fake_cfg.devices; }

API CUresult cuInit(unsigned int flags) { (void)flags; FAKE_ENTER(); return CUDA_SUCCESS; }
API CUresult cuDriverGetVersion(int *v) { FAKE_ENTER(); if (!v) return CUDA_ERROR_INVALID_VALUE; *v = 13000; return CUDA_SUCCESS; }
API CUresult cuDeviceGetCount(int *n) { FAKE_ENTER(); if (!n) return CUDA_ERROR_INVALID_VALUE; *n = fake_cfg.devices; return CUDA_SUCCESS; }
API CUresult cuDeviceGet(CUdevice *d, int ordinal) {
    FAKE_ENTER();
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    if (bad_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}
API CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
    FAKE_ENTER();
    if (!name || bad_device(d)) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "Fake GPU %d", d);
    return CUDA_SUCCESS;
}
API CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice d) {
    FAKE_ENTER();
    if (!u || bad_device(d)) return CUDA_ERROR_INVALID_VALUE;
    memset(u->bytes, 0, sizeof u->bytes);
    u->bytes[0] = 0xfa;
    u->bytes[15] = (char)d;
    return CUDA_SUCCESS;
}
API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice d) {
    FAKE_ENTER();
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    if (bad_device(d)) return CUDA_ERROR_INVALID_DEVICE;
    *bytes = fake_dev[d].total;
    return CUDA_SUCCESS;
}
API CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice d) {
    FAKE_ENTER();
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    if (bad_device(d)) return CUDA_ERROR_INVALID_DEVICE;
    switch (a) {
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: *v = 2048; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *v = 1; break;
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *v = 1; break;
    default: *v = 0;
    }
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice d) {
    FAKE_ENTER();
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    if (bad_device(d)) return CUDA_ERROR_INVALID_DEVICE;
    struct fake_device *fd = &fake_dev[d];
    pthread_mutex_lock(&fd->lock);
    CUresult rc = CUDA_SUCCESS;
    if (fd->primary_refs == 0) {
        if (fake_phys_take(d, fake_cfg.ctx_bytes, 0) != 0) rc = CUDA_ERROR_OUT_OF_MEMORY;
        else if (!fd->primary) {
            fd->primary = calloc(1, sizeof *fd->primary);
            fd->primary->dev = d;
            fd->primary->primary = 1;
        }
    }
    if (rc == CUDA_SUCCESS) {
        fd->primary_refs++;
        *pctx = (CUcontext)fd->primary;
    }
    pthread_mutex_unlock(&fd->lock);
    return rc;
}

API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) {
    FAKE_ENTER();
    if (bad_device(d)) return CUDA_ERROR_INVALID_DEVICE;
    struct fake_device *fd = &fake_dev[d];
    pthread_mutex_lock(&fd->lock);
    CUresult rc = CUDA_SUCCESS;
    if (fd->primary_refs == 0) rc = CUDA_ERROR_INVALID_CONTEXT;
    else if (--fd->primary_refs == 0) fake_phys_give(d, fake_cfg.ctx_bytes, 0);
    pthread_mutex_unlock(&fd->lock);
    return rc;
}

API CUresult cuDevicePrimaryCtxGetState(CUdevice d, unsigned int *flags, int *active) {
    FAKE_ENTER();
    if (bad_device(d) || !flags || !active) return CUDA_ERROR_INVALID_VALUE;
    *flags = 0;
    *active = fake_dev[d].primary_refs > 0;
    return CUDA_SUCCESS;
}

API CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice d) {
    (void)flags;
    FAKE_ENTER();
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    if (bad_device(d)) return CUDA_ERROR_INVALID_DEVICE;
    if (fake_phys_take(d, fake_cfg.ctx_bytes, 0) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    struct fake_ctx *c = calloc(1, sizeof *c);
    c->dev = d;
    *pctx = (CUcontext)c;
    if (ctx_depth < 16) ctx_stack[ctx_depth++] = c;
    return CUDA_SUCCESS;
}

API CUresult cuCtxDestroy_v2(CUcontext ctx) {
    FAKE_ENTER();
    struct fake_ctx *c = (struct fake_ctx *)ctx;
    if (!c || c->primary) return CUDA_ERROR_INVALID_CONTEXT;
    for (int i = 0; i < ctx_depth; i++)
        if (ctx_stack[i] == c) { memmove(&ctx_stack[i], &ctx_stack[i + 1], (size_t)(ctx_depth - i - 1) * sizeof c); ctx_depth--; i--; }
    fake_phys_give(c->dev, fake_cfg.ctx_bytes, 0);
    free(c);
    return CUDA_SUCCESS;
}

API CUresult cuCtxGetCurrent(CUcontext *pctx) {
    FAKE_ENTER();
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    *pctx = (CUcontext)fake_current_ctx();
    return CUDA_SUCCESS;
}
API CUresult cuCtxSetCurrent(CUcontext ctx) { FAKE_ENTER(); fake_set_current((struct fake_ctx *)ctx); return CUDA_SUCCESS; }
API CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
    FAKE_ENTER();
    if (!ctx || ctx_depth >= 16) return CUDA_ERROR_INVALID_VALUE;
    ctx_stack[ctx_depth++] = (struct fake_ctx *)ctx;
    return CUDA_SUCCESS;
}
API CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
    FAKE_ENTER();
    if (ctx_depth == 0) return CUDA_ERROR_INVALID_CONTEXT;
    struct fake_ctx *c = ctx_stack[--ctx_depth];
    if (pctx) *pctx = (CUcontext)c;
    return CUDA_SUCCESS;
}
API CUresult cuCtxGetDevice(CUdevice *d) {
    FAKE_ENTER();
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    *d = dev;
    return CUDA_SUCCESS;
}
API CUresult cuCtxSynchronize(void) {
    FAKE_ENTER();
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    fake_wait_until(fake_timeline_end(dev));
    return CUDA_SUCCESS;
}

API CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
    FAKE_ENTER();
    int dev = fake_current_device();
    if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT;
    if (!free_b || !total_b) return CUDA_ERROR_INVALID_VALUE;
    int64_t used = atomic_load(&shared->used[dev]);
    *total_b = fake_dev[dev].total;
    *free_b = fake_dev[dev].total - (uint64_t)used;
    return CUDA_SUCCESS;
}

static const char *error_name(CUresult e) {
    switch (e) {
    case CUDA_SUCCESS: return "CUDA_SUCCESS";
    case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
    case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
    case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case CUDA_ERROR_NOT_READY: return "CUDA_ERROR_NOT_READY";
    case CUDA_ERROR_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return NULL;
    }
}
API CUresult cuGetErrorName(CUresult e, const char **s) {
    FAKE_ENTER();
    if (!s) return CUDA_ERROR_INVALID_VALUE;
    *s = error_name(e);
    return *s ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
API CUresult cuGetErrorString(CUresult e, const char **s) { return cuGetErrorName(e, s); }

API CUresult cuGetExportTable(const void **table, const CUuuid *id) {
    (void)id;
    FAKE_ENTER();
    if (table) *table = NULL;
    return CUDA_ERROR_NOT_SUPPORTED;
}
