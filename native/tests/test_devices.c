/* Two devices with their own limits (CUDA_DEVICE_MEMORY_LIMIT_<i>): each allocation is charged to
 * the device it lands on, a free gives back to the device charged even when another is current,
 * and the memory queries answer per device. */
#include <cuda.h>

#include "check.h"
#include "driver_extra.h"
#include "region_view.h"

#define MiB (1ull << 20)

int main(void) {
    cuInit(0);
    CUcontext c0, c1;
    cuCtxCreate_v2(&c0, 0, 0);
    cuCtxCreate_v2(&c1, 0, 1); /* current: device 1 */
    CUdeviceptr p1, p0, q;
    CHECK(cuMemAlloc_v2(&q, 600 * MiB) == CUDA_ERROR_OUT_OF_MEMORY, "device 1 (512m) refuses 600 MiB");
    CHECK(cuMemAlloc_v2(&p1, 400 * MiB) == CUDA_SUCCESS, "device 1 takes 400 MiB");
    hami_region_t *R = region_view(NULL);
    hami_region_ext_t *E = region_ext(R);
    CHECK(E->charged[1] == (int64_t)(400 * MiB) && E->charged[0] == 0, "charged to device 1 only");
    size_t f, t;
    CHECK(cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && t == 512 * MiB && f == 112 * MiB, "device 1 info: %zu / %zu", f, t);
    cuCtxSetCurrent(c0);
    CHECK(cuMemAlloc_v2(&p0, 900 * MiB) == CUDA_SUCCESS, "device 0 (1g) takes 900 MiB");
    CHECK(cuMemGetInfo_v2(&f, &t) == CUDA_SUCCESS && t == 1024 * MiB && f == 124 * MiB, "device 0 info: %zu / %zu", f, t);
    CHECK(cuDeviceTotalMem_v2(&t, 1) == CUDA_SUCCESS && t == 512 * MiB, "total mem of device 1 while device 0 is current");
    CHECK(cuMemFree_v2(p1) == CUDA_SUCCESS && E->charged[1] == 0 && E->charged[0] == (int64_t)(900 * MiB),
          "freeing device 1's block with device 0 current gives back to device 1");
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 1}};
    CUmemGenericAllocationHandle h;
    CHECK(cuMemCreate(&h, 256 * MiB, &prop, 0) == CUDA_SUCCESS && E->charged[1] == (int64_t)(256 * MiB),
          "cuMemCreate is charged to the device it names, not the current one");
    CHECK(cuMemCreate(&h, 512 * MiB, &prop, 0) == CUDA_ERROR_OUT_OF_MEMORY, "and limited by that device's limit");
    cuMemFree_v2(p0);
    CHECK(E->charged[0] == 0, "device 0 back to zero");
    return CHECK_DONE("test_devices");
}
