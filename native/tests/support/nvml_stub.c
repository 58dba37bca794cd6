/* Minimal NVML for the shim's tests until the shared fake NVML (fakes/nvml) exists: every device
 * has 80 GiB, 1 GiB of it used. */
#include <nvml.h>
#include <stdint.h>

#define DEVICES 2
static int handles[DEVICES];

nvmlReturn_t nvmlInit_v2(void) { return NVML_SUCCESS; }
nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) { *n = DEVICES; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
    if (i >= DEVICES || !d) return NVML_ERROR_INVALID_ARGUMENT;
    *d = (nvmlDevice_t)&handles[i];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t d, unsigned int *i) {
    if (!d || !i) return NVML_ERROR_INVALID_ARGUMENT;
    *i = (unsigned)((int *)d - handles);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    if (!d || !m) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = 80ull << 30;
    m->used = 1ull << 30;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
    if (!d || !m || m->version != nvmlMemory_v2) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = 80ull << 30;
    m->reserved = 0;
    m->used = 1ull << 30;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
