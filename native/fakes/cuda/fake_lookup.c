/* Fake driver lookup: cuGetProcAddress(_v2) picks the variant a real driver returns for
 * (name, requested version, flags) and logs every request for the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_internal.h"

#define EXPORTS(X) \
    X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetUuid_v2) \
    X(cuDeviceTotalMem_v2) X(cuDeviceGetAttribute) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2) \
    X(cuDevicePrimaryCtxGetState) X(cuCtxCreate_v2) X(cuCtxDestroy_v2) X(cuCtxGetCurrent) X(cuCtxSetCurrent) \
    X(cuCtxPushCurrent_v2) X(cuCtxPopCurrent_v2) X(cuCtxGetDevice) X(cuCtxSynchronize) X(cuMemGetInfo_v2) \
    X(cuGetErrorName) X(cuGetErrorString) X(cuGetExportTable) X(cuGetProcAddress) X(cuGetProcAddress_v2) \
    X(cuMemAlloc_v2) X(cuMemAllocPitch_v2) X(cuMemAllocManaged) X(cuMemFree_v2) X(cuMemGetAddressRange_v2) \
    X(cuMemAllocHost_v2) X(cuMemFreeHost) X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuMemsetD8_v2) X(cuMemAdvise) \
    X(cuMemAdvise_v2) X(cuMemAllocAsync) X(cuMemAllocAsync_ptsz) X(cuMemAllocFromPoolAsync) \
    X(cuMemAllocFromPoolAsync_ptsz) X(cuMemFreeAsync) X(cuMemFreeAsync_ptsz) X(cuDeviceGetDefaultMemPool) \
    X(cuDeviceGetMemPool) X(cuDeviceSetMemPool) X(cuMemPoolCreate) X(cuMemPoolDestroy) X(cuMemPoolTrimTo) \
    X(cuMemPoolGetAttribute) X(cuMemPoolSetAttribute) X(cuMemGetAllocationGranularity) X(cuMemCreate) \
    X(cuMemRelease) X(cuMemAddressReserve) X(cuMemAddressFree) X(cuMemMap) X(cuMemUnmap) X(cuMemSetAccess) \
    X(cuArrayCreate_v2) X(cuArray3DCreate_v2) X(cuArrayDestroy) X(cuMipmappedArrayCreate) \
    X(cuMipmappedArrayDestroy) X(cuIpcGetMemHandle) X(cuIpcOpenMemHandle_v2) X(cuIpcCloseMemHandle) \
    X(cuModuleLoadData) X(cuModuleUnload) X(cuModuleGetFunction) X(cuLaunchKernel) X(cuLaunchKernel_ptsz) \
    X(cuLaunchCooperativeKernel) X(cuLaunchCooperativeKernel_ptsz) X(cuLaunchKernelEx) X(cuLaunchKernelEx_ptsz) \
    X(cuStreamCreate) X(cuStreamDestroy_v2) X(cuStreamSynchronize) X(cuStreamSynchronize_ptsz) \
    X(cuStreamIsCapturing) X(cuStreamIsCapturing_ptsz) X(cuStreamQuery) X(cuStreamQuery_ptsz) X(cuEventCreate) X(cuEventDestroy_v2) X(cuEventRecord) \
    X(cuEventRecord_ptsz) X(cuEventQuery) X(cuEventSynchronize) X(cuEventElapsedTime) X(cuEventElapsedTime_v2) \
    X(cuGraphCreate) X(cuGraphDestroy) X(cuGraphAddKernelNode_v2) X(cuGraphAddMemAllocNode) \
    X(cuGraphInstantiateWithFlags) X(cuGraphExecDestroy) X(cuGraphLaunch) X(cuGraphLaunch_ptsz)

#define ENTRY(n) {#n, (void *)&n},
static const struct { const char *name; void *fn; } table[] = {EXPORTS(ENTRY)};

/* Names whose newer ABI a request at `since` or later gets (the driver's versioned symbols). */
static const struct { const char *name; int since; const char *variant; } versions[] = {
    {"cuMemAlloc", 3020, "cuMemAlloc_v2"}, {"cuMemFree", 3020, "cuMemFree_v2"},
    {"cuMemAllocPitch", 3020, "cuMemAllocPitch_v2"}, {"cuMemGetInfo", 3020, "cuMemGetInfo_v2"},
    {"cuDeviceTotalMem", 3020, "cuDeviceTotalMem_v2"}, {"cuMemGetAddressRange", 3020, "cuMemGetAddressRange_v2"},
    {"cuMemAllocHost", 3020, "cuMemAllocHost_v2"}, {"cuMemcpyHtoD", 3020, "cuMemcpyHtoD_v2"},
    {"cuMemcpyDtoH", 3020, "cuMemcpyDtoH_v2"}, {"cuMemsetD8", 3020, "cuMemsetD8_v2"},
    {"cuArrayCreate", 3020, "cuArrayCreate_v2"}, {"cuArray3DCreate", 3020, "cuArray3DCreate_v2"},
    {"cuCtxCreate", 3020, "cuCtxCreate_v2"}, {"cuCtxDestroy", 4000, "cuCtxDestroy_v2"},
    {"cuCtxPushCurrent", 4000, "cuCtxPushCurrent_v2"}, {"cuCtxPopCurrent", 4000, "cuCtxPopCurrent_v2"},
    {"cuStreamDestroy", 4000, "cuStreamDestroy_v2"}, {"cuEventDestroy", 4000, "cuEventDestroy_v2"},
    {"cuDevicePrimaryCtxRelease", 11000, "cuDevicePrimaryCtxRelease_v2"},
    {"cuIpcOpenMemHandle", 11000, "cuIpcOpenMemHandle_v2"}, {"cuDeviceGetUuid", 11040, "cuDeviceGetUuid_v2"},
    {"cuGraphAddKernelNode", 12000, "cuGraphAddKernelNode_v2"}, {"cuMemAdvise", 12020, "cuMemAdvise_v2"},
    {"cuEventElapsedTime", 12080, "cuEventElapsedTime_v2"}, {"cuGetProcAddress", 12000, "cuGetProcAddress_v2"},
};

/* FAKECUDA_PROC_ALIASES=1: cuGetProcAddress hands out internal entry points, not the exported
 * symbols, for these two functions (as a real driver may). */
static CUresult alias_cuMemAlloc_v2(CUdeviceptr *p, size_t n) { return cuMemAlloc_v2(p, n); }
static CUresult alias_cuLaunchKernel_ptsz(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                          unsigned bz, unsigned sh, CUstream s, void **p, void **e) {
    return cuLaunchKernel_ptsz(f, gx, gy, gz, bx, by, bz, sh, s, p, e);
}
static void *alias_of(void *fn) {
    static int on = -1;
    if (on < 0) on = getenv("FAKECUDA_PROC_ALIASES") && atoi(getenv("FAKECUDA_PROC_ALIASES"));
    if (!on) return fn;
    if (fn == (void *)&cuMemAlloc_v2) return (void *)&alias_cuMemAlloc_v2;
    if (fn == (void *)&cuLaunchKernel_ptsz) return (void *)&alias_cuLaunchKernel_ptsz;
    return fn;
}

#define MAX_LOG 4096
static struct { char name[64]; int version; uint64_t flags; } req_log[MAX_LOG];
static _Atomic int req_count;

static void *find(const char *name) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) return table[i].fn;
    return NULL;
}

API void *fakecuda_lookup(const char *name) { return find(name); }
API int fakecuda_proc_requests(void) { int n = req_count; return n < MAX_LOG ? n : MAX_LOG; }
API const char *fakecuda_proc_request(int i, int *version, uint64_t *flags) {
    if (i < 0 || i >= fakecuda_proc_requests()) return NULL;
    if (version) *version = req_log[i].version;
    if (flags) *flags = req_log[i].flags;
    return req_log[i].name;
}

static CUresult resolve(const char *symbol, void **pfn, int version, cuuint64_t flags, CUdriverProcAddressQueryResult *status) {
    if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
    int i = req_count++;
    if (i < MAX_LOG) {
        snprintf(req_log[i].name, sizeof req_log[i].name, "%s", symbol);
        req_log[i].version = version;
        req_log[i].flags = flags;
    }
    const char *base = symbol;
    for (size_t v = 0; v < sizeof versions / sizeof versions[0]; v++)
        if (strcmp(versions[v].name, symbol) == 0 && version >= versions[v].since) base = versions[v].variant;
    void *fn = NULL;
    if (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s_ptsz", base);
        fn = find(buf);
        if (!fn) { snprintf(buf, sizeof buf, "%s_ptds", base); fn = find(buf); }
    }
    if (!fn) fn = find(base);
    fn = alias_of(fn);
    *pfn = fn;
    if (status) *status = fn ? CU_GET_PROC_ADDRESS_SUCCESS : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return fn ? CUDA_SUCCESS : CUDA_ERROR_NOT_FOUND;
}

API CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags) {
    FAKE_ENTER();
    return resolve(symbol, pfn, version, flags, NULL);
}
API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags, CUdriverProcAddressQueryResult *status) {
    FAKE_ENTER();
    return resolve(symbol, pfn, version, flags, status);
}
