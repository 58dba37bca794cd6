/* The real libcudart.so.13 (from the toolkit or the nvidia-cuda-runtime wheel) initialises over the
 * fake driver with the shim preloaded: it enumerates its ~440 driver entry points through the
 * shim's dlsym and cuGetProcAddress_v2 without crashing or recursing. Replaying every recorded
 * (name, version, flags) request through the shim must give the shim's wrapper exactly for the
 * hooked variants and the fake's own pointer for everything else. */
#include <cuda.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fakecuda.h"

static const char *hooked[] = {
    "cuGetProcAddress", "cuGetProcAddress_v2", "cuMemAlloc_v2", "cuMemAllocPitch_v2", "cuMemAllocManaged", "cuMemFree_v2",
    "cuMemAllocAsync", "cuMemAllocAsync_ptsz", "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync_ptsz", "cuMemFreeAsync",
    "cuMemFreeAsync_ptsz", "cuMemCreate", "cuMemRelease", "cuArrayCreate_v2", "cuArray3DCreate_v2", "cuArrayDestroy",
    "cuMipmappedArrayCreate", "cuMipmappedArrayDestroy", "cuGraphAddMemAllocNode", "cuGraphDestroy", "cuIpcOpenMemHandle_v2",
    "cuIpcCloseMemHandle", "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2", "cuMemGetInfo_v2", "cuDeviceTotalMem_v2",
    "cuLaunchKernel", "cuLaunchKernel_ptsz", "cuLaunchKernelEx", "cuLaunchKernelEx_ptsz", "cuLaunchCooperativeKernel",
    "cuLaunchCooperativeKernel_ptsz", "cuGraphLaunch", "cuGraphLaunch_ptsz",
};
#define NHOOKED (sizeof hooked / sizeof hooked[0])

int main(void) {
    const char *path = getenv("CUDART");
    void *rt = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    CHECK(rt != NULL, "load the real runtime %s: %s", path ? path : "(CUDART unset)", rt ? "" : dlerror());
    if (!rt) return CHECK_DONE("test_runtime");
    int (*get_count)(int *) = (int (*)(int *))dlsym(rt, "cudaGetDeviceCount");
    int n = -1, err = get_count ? get_count(&n) : -1;
    int requests = fakecuda_proc_requests();
    printf("runtime: cudaGetDeviceCount returned %d after %d driver entry-point requests\n", err, requests);
    CHECK(requests >= 300, "the runtime enumerated its entry points (%d)", requests);
    CHECK(fakecuda_calls("cuGetProcAddress_v2") == (uint64_t)requests, "one driver lookup per request: no recursion");
    CHECK(fakecuda_calls("cuGetExportTable") >= 1, "the runtime went on to cuGetExportTable (as with a real driver)");

    void *drv = dlopen("libcuda.so.1", RTLD_NOW);
    __typeof__(cuGetProcAddress_v2) *shim_gpa = dlsym(drv, "cuGetProcAddress_v2");
    __typeof__(cuGetProcAddress_v2) *fake_gpa = fakecuda_lookup("cuGetProcAddress_v2");
    CHECK(shim_gpa && fake_gpa && (void *)shim_gpa != (void *)fake_gpa, "dlsym on the driver handle gives the shim's lookup");
    int wrapped = 0, passed_through = 0, missing = 0, wrong = 0;
    for (int i = 0; i < requests; i++) {
        int version;
        uint64_t flags;
        char name[64];
        strncpy(name, fakecuda_proc_request(i, &version, &flags), sizeof name - 1);
        name[63] = 0;
        void *p = NULL, *q = NULL;
        CUdriverProcAddressQueryResult sp, sq;
        CUresult rp = shim_gpa(name, &p, version, flags, &sp);
        CUresult rq = fake_gpa(name, &q, version, flags, &sq);
        if (rp != rq || sp != sq) { wrong++; fprintf(stderr, "status differs for %s %d %llu\n", name, version, (unsigned long long)flags); continue; }
        if (!q) { missing++; if (p) wrong++; continue; }
        const char *variant = NULL;
        for (size_t h = 0; h < NHOOKED; h++)
            if (fakecuda_lookup(hooked[h]) == q) variant = hooked[h];
        if (variant) {
            wrapped++;
            if (p != dlsym(RTLD_DEFAULT, variant) || p == q) { wrong++; fprintf(stderr, "%s %d %llu: not the %s wrapper\n", name, version, (unsigned long long)flags, variant); }
        } else {
            passed_through++;
            if (p != q) { wrong++; fprintf(stderr, "%s %d %llu: changed a pointer the shim does not hook\n", name, version, (unsigned long long)flags); }
        }
    }
    printf("runtime: %d requests replayed: %d wrapped, %d passed through unchanged, %d unknown to the fake\n", requests, wrapped,
           passed_through, missing);
    CHECK(wrong == 0, "%d answers were wrong", wrong);
    CHECK(wrapped >= 20, "the runtime's allocation and launch entry points are wrapped (%d)", wrapped);
    void *p;
    shim_gpa("cuLaunchKernel", &p, 7000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL);
    CHECK(p == dlsym(RTLD_DEFAULT, "cuLaunchKernel_ptsz"), "cuLaunchKernel at 7000 with the PTDS flag gets the _ptsz wrapper");
    shim_gpa("cuLaunchKernel", &p, 4000, 0, NULL);
    CHECK(p == dlsym(RTLD_DEFAULT, "cuLaunchKernel"), "and without it the legacy wrapper");
    shim_gpa("cuMemAdvise", &p, 8000, 0, NULL);
    CHECK(p == fakecuda_lookup("cuMemAdvise"), "cuMemAdvise at 8000 keeps the old ABI");
    shim_gpa("cuMemAdvise", &p, 12020, 0, NULL);
    CHECK(p == fakecuda_lookup("cuMemAdvise_v2"), "cuMemAdvise at 12020 gets the new one");
    shim_gpa("cuGetProcAddress", &p, 12000, 0, NULL);
    CHECK(p == (void *)shim_gpa, "asking for cuGetProcAddress itself keeps nested lookups hooked");
    for (int i = 0; i < 3; i++) CHECK(dlsym(drv, "cuMemAlloc_v2") == dlsym(RTLD_DEFAULT, "cuMemAlloc_v2"), "repeated lookups all succeed");
    CHECK(dlsym(drv, "cudnnCreate") == NULL && dlsym(RTLD_DEFAULT, "cuNoSuchFunction") == NULL, "names the shim does not know pass through");
    /* RTLD_NEXT keeps the caller's meaning: from this executable the next "dlsym" is the shim's
     * (preloaded libraries come after the executable); had the shim called glibc's dlsym instead
     * of jumping to it, "next" would be counted from the shim and give glibc's. */
    CHECK(dlsym(RTLD_NEXT, "dlsym") == dlsym(RTLD_DEFAULT, "dlsym"), "RTLD_NEXT is resolved from the real caller");
    CHECK(dlsym(RTLD_NEXT, "cuInit") == fakecuda_lookup("cuInit"), "RTLD_NEXT finds the driver's unhooked functions");
    return CHECK_DONE("test_runtime");
}
