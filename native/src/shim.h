/* Internal declarations of libvgpu.so shared by its source files (nothing here is exported). */
#ifndef SHIM_H
#define SHIM_H

#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <nvml.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hami_shim.h"

/* Everything declared from here on is internal: direct, not GOT-indirect, access. */
#pragma GCC visibility push(hidden)

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Every driver function the shim wraps: the wrapper has the driver's name and is exported. */
#define CUDA_HOOKS(X)                                                                                   \
    X(cuGetProcAddress) X(cuGetProcAddress_v2) X(cuMemAlloc_v2) X(cuMemAllocPitch_v2) X(cuMemAllocManaged) \
    X(cuMemFree_v2) X(cuMemAllocAsync) X(cuMemAllocAsync_ptsz) X(cuMemAllocFromPoolAsync)                 \
    X(cuMemAllocFromPoolAsync_ptsz) X(cuMemFreeAsync) X(cuMemFreeAsync_ptsz) X(cuMemCreate) X(cuMemRelease) \
    X(cuArrayCreate_v2) X(cuArray3DCreate_v2) X(cuArrayDestroy) X(cuMipmappedArrayCreate)                 \
    X(cuMipmappedArrayDestroy) X(cuGraphAddMemAllocNode) X(cuGraphDestroy) X(cuIpcOpenMemHandle_v2)       \
    X(cuIpcCloseMemHandle) X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2) X(cuMemGetInfo_v2) \
    X(cuDeviceTotalMem_v2) X(cuLaunchKernel) X(cuLaunchKernel_ptsz) X(cuLaunchKernelEx)                   \
    X(cuLaunchKernelEx_ptsz) X(cuLaunchCooperativeKernel) X(cuLaunchCooperativeKernel_ptsz)               \
    X(cuGraphLaunch) X(cuGraphLaunch_ptsz)

/* Driver functions the shim calls for itself without wrapping them. */
#define CUDA_USED(X)                                                                                    \
    X(cuCtxGetDevice) X(cuCtxGetCurrent) X(cuEventCreate) X(cuEventDestroy_v2) X(cuEventRecord)         \
    X(cuEventRecord_ptsz) X(cuEventQuery) X(cuEventElapsedTime_v2) X(cuEventElapsedTime)                 \
    X(cuMemGetAddressRange_v2) X(cuStreamIsCapturing) X(cuStreamIsCapturing_ptsz) X(cuDeviceGetCount) X(cuDeviceGetUuid_v2) X(cuStreamQuery) \
    X(cuStreamQuery_ptsz)

#define NVML_HOOKS(X) X(nvmlDeviceGetMemoryInfo) X(nvmlDeviceGetMemoryInfo_v2)
#define NVML_USED(X) X(nvmlDeviceGetIndex)

#define DECLARE_REAL(n) extern __typeof__(n) *real_##n;
CUDA_HOOKS(DECLARE_REAL)
CUDA_USED(DECLARE_REAL)
NVML_HOOKS(DECLARE_REAL)
NVML_USED(DECLARE_REAL)

/* The calling thread's current device, or -1 without a context. A process that sees one device
 * (the common case for shared GPUs) never asks the driver: it is device 0. */
extern int shim_single_device;
int shim_current_device_slow(void);
static inline int shim_current_device(void) {
    if (LIKELY(shim_single_device > 0)) return 0;
    return shim_current_device_slow();
}

/* ---- logging ---- */
extern int shim_log_level;
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG_ERROR(...) shim_log(1, __VA_ARGS__)
#define LOG_WARN(...) shim_log(2, __VA_ARGS__)
#define LOG_INFO(...) shim_log(3, __VA_ARGS__)

/* ---- configuration (env.c) ---- */
struct shim_config {
    uint64_t mem_limit[HAMI_MAX_DEVICES]; /* bytes, 0 = none */
    uint64_t sm_limit[HAMI_MAX_DEVICES];  /* percent, 100 = none */
    int policy_disable;
    int priority;
    int record_interval;
    char cache_path[4096];
};
/* Parse a memory limit: digits then an optional k/K/m/M/g/G (or Ki/Mi/Gi). 0 ok, -1 invalid. */
int shim_parse_bytes(const char *s, uint64_t *out);
/* Parse a percent 0..100 (digits only). 0 ok, -1 invalid. */
int shim_parse_percent(const char *s, uint64_t *out);
void shim_read_config(struct shim_config *cfg);

/* ---- driver resolution (lookup.c) ---- */
void shim_load_driver(void);
void shim_load_nvml(void);

/* ---- shared region (region.c) ---- */
extern hami_region_t *shim_region;
extern hami_region_ext_t *shim_ext;
extern struct shim_config shim_cfg;
extern _Atomic int shim_ready;
void shim_init_slow(void);
static inline void shim_init(void) {
    if (UNLIKELY(!atomic_load_explicit(&shim_ready, memory_order_acquire))) shim_init_slow();
}
/* Charge `bytes` on `dev` to this process (kind 0 context, 2 data); -1 when over the limit. */
int region_charge(int dev, uint64_t bytes, int kind);
void region_uncharge(int dev, uint64_t bytes, int kind);
/* Bytes charged on `dev` by every process of the container. */
uint64_t region_usage(int dev);
uint64_t region_limit(int dev);
/* Record the devices' UUIDs (HAMi's monitor labels usage by them) unless already recorded. */
void region_set_devices(int n, const char (*uuids)[HAMI_UUID_LEN]);

/* ---- process-local tracking (track.c) ---- */
enum track_class { TRACK_PTR = 1, TRACK_HANDLE, TRACK_ARRAY, TRACK_GRAPH, TRACK_IPC };
void track_put(enum track_class c, uint64_t key, uint64_t size, int dev);
/* Add to an entry (creating it): graphs collect their memory nodes. */
void track_add(enum track_class c, uint64_t key, uint64_t size, int dev);
int track_take(enum track_class c, uint64_t key, uint64_t *size, int *dev);
void track_reset_after_fork(void);
void hooks_reset_after_fork(void);

/* ---- compute limiter (limiter.c) ---- */
struct launch_sample;
void limiter_after(CUstream s, int ptsz);
void limiter_configure(void);
extern int limiter_enabled; /* the policy is not "disable" */
/* Pure token-bucket step (unit-tested): the budget after refilling from `last` to `now`. */
int64_t limiter_refill_amount(uint64_t last, uint64_t now, uint64_t share);
uint64_t shim_now_ns(void);
void shim_sleep_ns(uint64_t ns);

#pragma GCC visibility pop

#endif
