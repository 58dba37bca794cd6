/* A driver whose cuGetProcAddress hands out internal entry points instead of its exported symbols
 * (the fake with FAKECUDA_PROC_ALIASES=1 does so for cuMemAlloc_v2 and cuLaunchKernel_ptsz): the
 * shim still answers with its wrappers, and the limit holds through them. */
#include <cuda.h>
#include <dlfcn.h>

#include "check.h"
#include "fakecuda.h"

int main(void) {
    void *drv = dlopen("libcuda.so.1", RTLD_NOW);
    __typeof__(cuGetProcAddress_v2) *gpa = dlsym(drv, "cuGetProcAddress_v2");
    __typeof__(cuGetProcAddress_v2) *raw = fakecuda_lookup("cuGetProcAddress_v2");
    void *p = NULL, *q = NULL;
    raw("cuMemAlloc", &q, 3020, 0, NULL);
    CHECK(q && q != fakecuda_lookup("cuMemAlloc_v2"), "the fake hands out an internal entry point");
    gpa("cuMemAlloc", &p, 3020, 0, NULL);
    CHECK(p == dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"), "the shim answers with its cuMemAlloc_v2 wrapper");
    gpa("cuLaunchKernel", &p, 7000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL);
    CHECK(p == dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz"), "and with its _ptsz launch wrapper");
    cuInit(0);
    CUcontext c;
    cuDevicePrimaryCtxRetain(&c, 0);
    cuCtxSetCurrent(c);
    __typeof__(cuMemAlloc_v2) *alloc;
    gpa("cuMemAlloc", (void **)&alloc, 3020, 0, NULL);
    CUdeviceptr d;
    uint64_t calls = fakecuda_calls("cuMemAlloc_v2");
    CHECK(alloc(&d, 2ull << 30) == CUDA_ERROR_OUT_OF_MEMORY && fakecuda_calls("cuMemAlloc_v2") == calls,
          "over the 1 GiB limit without reaching the driver");
    CHECK(alloc(&d, 256ull << 20) == CUDA_SUCCESS, "within it");
    return CHECK_DONE("test_aliases");
}
