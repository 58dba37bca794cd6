/* Memory wrappers: every allocation path is charged before the driver is called (over the limit:
 * CUDA_ERROR_OUT_OF_MEMORY, driver untouched), un-charged exactly on free; memory queries report
 * the limit. NULL out-pointers get CUDA_ERROR_INVALID_VALUE without a driver call. */
#include <string.h>

#include "shim.h"

#define KIND_CTX 0
#define KIND_DATA 2
#define REAL(n) \
    shim_init(); \
    if (UNLIKELY(!real_##n)) return CUDA_ERROR_NOT_FOUND

#define current_device shim_current_device

/* Charge, allocate with `call`, record under (cls, *key); undo the charge when the driver fails. */
#define CHARGED_ALLOC(cls, dev, size, keyexpr, call)                            \
    do {                                                                       \
        if ((dev) < 0) return (call);                                          \
        if (region_charge((dev), (size), KIND_DATA) != 0) return CUDA_ERROR_OUT_OF_MEMORY; \
        CUresult rc_ = (call);                                                 \
        if (rc_ != CUDA_SUCCESS) {                                             \
            region_uncharge((dev), (size), KIND_DATA);                         \
            return rc_;                                                        \
        }                                                                      \
        track_put((cls), (uint64_t)(keyexpr), (size), (dev));                  \
        return rc_;                                                            \
    } while (0)

/* Forget (cls, key), free with `call`, give the charge back; unknown keys go to the driver as is. */
#define CHARGED_FREE(cls, key, call)                                           \
    do {                                                                       \
        uint64_t size_;                                                        \
        int dev_;                                                              \
        if (track_take((cls), (uint64_t)(key), &size_, &dev_) != 0) return (call); \
        CUresult rc_ = (call);                                                 \
        if (rc_ != CUDA_SUCCESS) track_put((cls), (uint64_t)(key), size_, dev_); \
        else region_uncharge(dev_, size_, KIND_DATA);                           \
        return rc_;                                                            \
    } while (0)

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    REAL(cuMemAlloc_v2);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAlloc_v2(dptr, size));
}

EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags) {
    REAL(cuMemAllocManaged);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAllocManaged(dptr, size, flags));
}

EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem) {
    REAL(cuMemAllocPitch_v2);
    if (!dptr || !pitch) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    if (dev < 0) return real_cuMemAllocPitch_v2(dptr, pitch, width, height, elem);
    uint64_t least = (uint64_t)width * height;
    if (region_charge(dev, least, KIND_DATA) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = real_cuMemAllocPitch_v2(dptr, pitch, width, height, elem);
    if (rc != CUDA_SUCCESS) {
        region_uncharge(dev, least, KIND_DATA);
        return rc;
    }
    uint64_t real = (uint64_t)*pitch * height;
    if (real > least && region_charge(dev, real - least, KIND_DATA) != 0) {
        real_cuMemFree_v2(*dptr);
        region_uncharge(dev, least, KIND_DATA);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (real < least) region_uncharge(dev, least - real, KIND_DATA);
    track_put(TRACK_PTR, *dptr, real, dev);
    return rc;
}

EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) {
    REAL(cuMemFree_v2);
    CHARGED_FREE(TRACK_PTR, dptr, real_cuMemFree_v2(dptr));
}

EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s) {
    REAL(cuMemAllocAsync);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAllocAsync(dptr, size, s));
}
EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s) {
    REAL(cuMemAllocAsync_ptsz);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAllocAsync_ptsz(dptr, size, s));
}
EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s) {
    REAL(cuMemAllocFromPoolAsync);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAllocFromPoolAsync(dptr, size, pool, s));
}
EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size, CUmemoryPool pool, CUstream s) {
    REAL(cuMemAllocFromPoolAsync_ptsz);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    int dev = current_device();
    CHARGED_ALLOC(TRACK_PTR, dev, size, *dptr, real_cuMemAllocFromPoolAsync_ptsz(dptr, size, pool, s));
}
EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s) {
    REAL(cuMemFreeAsync);
    CHARGED_FREE(TRACK_PTR, dptr, real_cuMemFreeAsync(dptr, s));
}
EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream s) {
    REAL(cuMemFreeAsync_ptsz);
    CHARGED_FREE(TRACK_PTR, dptr, real_cuMemFreeAsync_ptsz(dptr, s));
}

EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags) {
    REAL(cuMemCreate);
    if (!h || !prop) return CUDA_ERROR_INVALID_VALUE;
    int dev = prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE ? prop->location.id : -1;
    CHARGED_ALLOC(TRACK_HANDLE, dev, size, *h, real_cuMemCreate(h, size, prop, flags));
}
EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle h) {
    REAL(cuMemRelease);
    CHARGED_FREE(TRACK_HANDLE, h, real_cuMemRelease(h));
}

/* Arrays are charged width x height x depth x channels x element bytes (the driver may pad). */
static uint64_t element_bytes(CUarray_format f) {
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF: return 2;
    default: return 4;
    }
}
static uint64_t at_least_1(size_t v) { return v ? v : 1; }

EXPORT CUresult cuArrayCreate_v2(CUarray *h, const CUDA_ARRAY_DESCRIPTOR *d) {
    REAL(cuArrayCreate_v2);
    if (!h || !d) return CUDA_ERROR_INVALID_VALUE;
    uint64_t size = at_least_1(d->Width) * at_least_1(d->Height) * d->NumChannels * element_bytes(d->Format);
    int dev = current_device();
    CHARGED_ALLOC(TRACK_ARRAY, dev, size, *h, real_cuArrayCreate_v2(h, d));
}
EXPORT CUresult cuArray3DCreate_v2(CUarray *h, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    REAL(cuArray3DCreate_v2);
    if (!h || !d) return CUDA_ERROR_INVALID_VALUE;
    uint64_t size = at_least_1(d->Width) * at_least_1(d->Height) * at_least_1(d->Depth) * d->NumChannels * element_bytes(d->Format);
    int dev = current_device();
    CHARGED_ALLOC(TRACK_ARRAY, dev, size, *h, real_cuArray3DCreate_v2(h, d));
}
EXPORT CUresult cuArrayDestroy(CUarray h) {
    REAL(cuArrayDestroy);
    CHARGED_FREE(TRACK_ARRAY, h, real_cuArrayDestroy(h));
}
EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray *h, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned int levels) {
    REAL(cuMipmappedArrayCreate);
    if (!h || !d) return CUDA_ERROR_INVALID_VALUE;
    uint64_t w = at_least_1(d->Width), hh = at_least_1(d->Height), dd = at_least_1(d->Depth), size = 0;
    for (unsigned l = 0; l < levels; l++) {
        size += w * hh * dd * d->NumChannels * element_bytes(d->Format);
        w = w > 1 ? w / 2 : 1;
        hh = hh > 1 ? hh / 2 : 1;
        dd = dd > 1 ? dd / 2 : 1;
    }
    int dev = current_device();
    CHARGED_ALLOC(TRACK_ARRAY, dev, size, *h, real_cuMipmappedArrayCreate(h, d, levels));
}
EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray h) {
    REAL(cuMipmappedArrayDestroy);
    CHARGED_FREE(TRACK_ARRAY, h, real_cuMipmappedArrayDestroy(h));
}

/* Graph memory nodes are charged to their graph from creation until cuGraphDestroy. */
EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode *n, CUgraph g, const CUgraphNode *deps, size_t nd, CUDA_MEM_ALLOC_NODE_PARAMS *p) {
    REAL(cuGraphAddMemAllocNode);
    if (!n || !p) return CUDA_ERROR_INVALID_VALUE;
    int dev = p->poolProps.location.type == CU_MEM_LOCATION_TYPE_DEVICE ? p->poolProps.location.id : current_device();
    if (dev < 0) return real_cuGraphAddMemAllocNode(n, g, deps, nd, p);
    uint64_t size = p->bytesize;
    if (region_charge(dev, size, KIND_DATA) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = real_cuGraphAddMemAllocNode(n, g, deps, nd, p);
    if (rc != CUDA_SUCCESS) region_uncharge(dev, size, KIND_DATA);
    else track_add(TRACK_GRAPH, (uint64_t)(uintptr_t)g, size, dev);
    return rc;
}
EXPORT CUresult cuGraphDestroy(CUgraph g) {
    REAL(cuGraphDestroy);
    CHARGED_FREE(TRACK_GRAPH, (uintptr_t)g, real_cuGraphDestroy(g));
}

/* Imported IPC memory is charged to the importer too: it counts against its limit while open. */
EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *dptr, CUipcMemHandle h, unsigned int flags) {
    REAL(cuIpcOpenMemHandle_v2);
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = real_cuIpcOpenMemHandle_v2(dptr, h, flags);
    int dev = current_device();
    CUdeviceptr base;
    size_t size;
    if (rc != CUDA_SUCCESS || dev < 0 || !real_cuMemGetAddressRange_v2 ||
        real_cuMemGetAddressRange_v2(&base, &size, *dptr) != CUDA_SUCCESS)
        return rc;
    if (region_charge(dev, size, KIND_DATA) != 0) {
        if (real_cuIpcCloseMemHandle) real_cuIpcCloseMemHandle(*dptr);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    track_put(TRACK_IPC, *dptr, size, dev);
    return rc;
}
EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr dptr) {
    REAL(cuIpcCloseMemHandle);
    CHARGED_FREE(TRACK_IPC, dptr, real_cuIpcCloseMemHandle(dptr));
}

/* The primary context is charged once per device and process while retained, clamped to what is
 * left under the limit (a retain never fails because of the limit). */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static int ctx_refs[HAMI_MAX_DEVICES];
static uint64_t ctx_charged[HAMI_MAX_DEVICES];

void hooks_reset_after_fork(void) {
    pthread_mutex_init(&ctx_lock, NULL);
    memset(ctx_refs, 0, sizeof ctx_refs);
    memset(ctx_charged, 0, sizeof ctx_charged);
}

EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
    REAL(cuDevicePrimaryCtxRetain);
    if (!pctx) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = real_cuDevicePrimaryCtxRetain(pctx, dev);
    if (rc != CUDA_SUCCESS || (unsigned)dev >= HAMI_MAX_DEVICES) return rc;
    pthread_mutex_lock(&ctx_lock);
    if (ctx_refs[dev]++ == 0) {
        uint64_t want = HAMI_PRIMARY_CONTEXT_CHARGE, limit = region_limit(dev), used = region_usage(dev);
        if (limit && used + want > limit) want = limit > used ? limit - used : 0;
        if (want && region_charge(dev, want, KIND_CTX) == 0) ctx_charged[dev] = want;
    }
    pthread_mutex_unlock(&ctx_lock);
    return rc;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
    REAL(cuDevicePrimaryCtxRelease_v2);
    CUresult rc = real_cuDevicePrimaryCtxRelease_v2(dev);
    if (rc != CUDA_SUCCESS || (unsigned)dev >= HAMI_MAX_DEVICES) return rc;
    pthread_mutex_lock(&ctx_lock);
    if (ctx_refs[dev] > 0 && --ctx_refs[dev] == 0 && ctx_charged[dev]) {
        region_uncharge(dev, ctx_charged[dev], KIND_CTX);
        ctx_charged[dev] = 0;
    }
    pthread_mutex_unlock(&ctx_lock);
    return rc;
}

/* total = min(limit, physical); free = total - container usage, never below 0, never above the
 * driver's free. No limit: the driver's figures. */
EXPORT CUresult cuMemGetInfo_v2(size_t *free_b, size_t *total_b) {
    REAL(cuMemGetInfo_v2);
    if (!free_b || !total_b) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = real_cuMemGetInfo_v2(free_b, total_b);
    int dev = current_device();
    if (rc != CUDA_SUCCESS || dev < 0) return rc;
    uint64_t limit = region_limit(dev);
    if (!limit) return rc;
    uint64_t total = limit < *total_b ? limit : *total_b, used = region_usage(dev);
    uint64_t free_v = total > used ? total - used : 0;
    *total_b = total;
    *free_b = free_v < *free_b ? free_v : *free_b;
    return rc;
}

EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
    REAL(cuDeviceTotalMem_v2);
    if (!bytes) return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = real_cuDeviceTotalMem_v2(bytes, dev);
    uint64_t limit = rc == CUDA_SUCCESS ? region_limit(dev) : 0;
    if (limit && limit < *bytes) *bytes = limit;
    return rc;
}

/* ---- NVML: the same figures for the device NVML names ---- */
static int nvml_index(nvmlDevice_t d) {
    unsigned int i;
    shim_load_nvml();
    return real_nvmlDeviceGetIndex && real_nvmlDeviceGetIndex(d, &i) == NVML_SUCCESS && i < HAMI_MAX_DEVICES ? (int)i : -1;
}

static void fit(unsigned long long *total, unsigned long long *free_b, unsigned long long *used, int idx) {
    uint64_t limit = region_limit(idx);
    if (!limit) return;
    uint64_t t = limit < *total ? limit : *total, u = region_usage(idx);
    *total = t;
    *used = u < t ? u : t;
    *free_b = t - *used;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    shim_load_nvml();
    if (!real_nvmlDeviceGetMemoryInfo) return NVML_ERROR_FUNCTION_NOT_FOUND;
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t rc = real_nvmlDeviceGetMemoryInfo(d, m);
    int idx = rc == NVML_SUCCESS ? nvml_index(d) : -1;
    if (idx >= 0) fit(&m->total, &m->free, &m->used, idx);
    return rc;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    shim_load_nvml();
    if (!real_nvmlDeviceGetMemoryInfo_v2) return NVML_ERROR_FUNCTION_NOT_FOUND;
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t rc = real_nvmlDeviceGetMemoryInfo_v2(d, m);
    int idx = rc == NVML_SUCCESS ? nvml_index(d) : -1;
    if (idx >= 0) fit(&m->total, &m->free, &m->used, idx);
    return rc;
}
