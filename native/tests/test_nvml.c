/* NVML inside the container reports the limit and the container's usage (as nvidia-smi or pynvml
 * would see them through dlopen + dlsym); devices without a limit are untouched. */
#include <cuda.h>
#include <dlfcn.h>
#include <nvml.h>

#include "check.h"
#include "driver_extra.h"

#define MiB (1ull << 20)

int main(void) {
    void *h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    CHECK(h != NULL, "NVML loads: %s", h ? "" : dlerror());
    if (!h) return CHECK_DONE("test_nvml");
    nvmlReturn_t (*init)(void) = (nvmlReturn_t (*)(void))dlsym(h, "nvmlInit_v2");
    nvmlReturn_t (*by_index)(unsigned, nvmlDevice_t *) = (nvmlReturn_t (*)(unsigned, nvmlDevice_t *))dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
    __typeof__(nvmlDeviceGetMemoryInfo) *info = dlsym(h, "nvmlDeviceGetMemoryInfo");
    __typeof__(nvmlDeviceGetMemoryInfo_v2) *info2 = dlsym(h, "nvmlDeviceGetMemoryInfo_v2");
    CHECK(info == dlsym(RTLD_DEFAULT, "nvmlDeviceGetMemoryInfo"), "dlsym hands out the shim's NVML wrapper");
    init();
    nvmlDevice_t d0, d1;
    by_index(0, &d0);
    by_index(1, &d1);
    cuInit(0);
    CUcontext c;
    cuCtxCreate_v2(&c, 0, 0);
    CUdeviceptr p;
    CHECK(cuMemAlloc_v2(&p, 512 * MiB) == CUDA_SUCCESS, "allocate 512 MiB");
    nvmlMemory_t m;
    CHECK(info(d0, &m) == NVML_SUCCESS && m.total == 2048 * MiB && m.used == 512 * MiB && m.free == 1536 * MiB,
          "device 0: total %llu used %llu free %llu", m.total, m.used, m.free);
    nvmlMemory_v2_t m2 = {.version = nvmlMemory_v2};
    CHECK(info2(d0, &m2) == NVML_SUCCESS && m2.total == 2048 * MiB && m2.used == 512 * MiB && m2.free == 1536 * MiB, "v2 too");
    CHECK(info(d1, &m) == NVML_SUCCESS && m.total > 2048 * MiB && m.free + m.used <= m.total, "device 1 (no limit) untouched");
    CHECK(info(d0, NULL) == NVML_ERROR_INVALID_ARGUMENT && info2(d0, NULL) == NVML_ERROR_INVALID_ARGUMENT, "NULL is refused");
    cuMemFree_v2(p);
    CHECK(info(d0, &m) == NVML_SUCCESS && m.used == 0 && m.free == 2048 * MiB, "usage follows frees");
    return CHECK_DONE("test_nvml");
}
