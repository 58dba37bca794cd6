/* Work loops for bench/shim_overhead.sh: cuLaunchKernel and cuMemAlloc + cuMemFree resolved through
 * cuGetProcAddress_v2, as libcudart does. Callgrind counts instructions inside the loop functions
 * only (--toggle-collect), with and without the shim preloaded. */
#include <cuda.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define N 20000

static __typeof__(cuLaunchKernel) *launch;
static __typeof__(cuMemAlloc_v2) *alloc;
static __typeof__(cuMemFree_v2) *release;

__attribute__((noinline)) void launch_loop(CUfunction f) {
    for (int i = 0; i < N; i++) launch(f, 1, 1, 1, 32, 1, 1, 0, 0, NULL, NULL);
}

__attribute__((noinline)) void alloc_loop(void) {
    CUdeviceptr p;
    for (int i = 0; i < N; i++) {
        alloc(&p, 1 << 20);
        release(p);
    }
}

int main(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    __typeof__(cuGetProcAddress_v2) *gpa = h ? dlsym(h, "cuGetProcAddress_v2") : NULL;
    if (!gpa) return 1;
    CUresult (*init)(unsigned), (*retain)(CUcontext *, CUdevice), (*set)(CUcontext), (*load)(CUmodule *, const void *);
    CUresult (*getfn)(CUfunction *, CUmodule, const char *);
    gpa("cuInit", (void **)&init, 2000, 0, NULL);
    gpa("cuDevicePrimaryCtxRetain", (void **)&retain, 7000, 0, NULL);
    gpa("cuCtxSetCurrent", (void **)&set, 4000, 0, NULL);
    gpa("cuModuleLoadData", (void **)&load, 2000, 0, NULL);
    gpa("cuModuleGetFunction", (void **)&getfn, 2000, 0, NULL);
    gpa("cuLaunchKernel", (void **)&launch, 4000, 0, NULL);
    gpa("cuMemAlloc", (void **)&alloc, 3020, 0, NULL);
    gpa("cuMemFree", (void **)&release, 3020, 0, NULL);
    CUcontext ctx;
    CUmodule m;
    CUfunction f;
    init(0);
    retain(&ctx, 0);
    set(ctx);
    load(&m, "");
    getfn(&f, m, "empty_1");
    launch_loop(f);
    alloc_loop();
    printf("%d launches, %d alloc+free pairs\n", N, N);
    return 0;
}
