/* libvgpu.so exports only its public interface (nm -D): the hooked driver and NVML names, dlsym
 * and the test clock hook; nothing internal; and it has no hard dependency on the driver libraries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *expected[] = {
    "cuArray3DCreate_v2", "cuArrayCreate_v2", "cuArrayDestroy", "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRetain",
    "cuDeviceTotalMem_v2", "cuGetProcAddress", "cuGetProcAddress_v2", "cuGraphAddMemAllocNode", "cuGraphDestroy", "cuGraphLaunch",
    "cuGraphLaunch_ptsz", "cuIpcCloseMemHandle", "cuIpcOpenMemHandle_v2", "cuLaunchCooperativeKernel",
    "cuLaunchCooperativeKernel_ptsz", "cuLaunchKernel", "cuLaunchKernelEx", "cuLaunchKernelEx_ptsz", "cuLaunchKernel_ptsz",
    "cuMemAllocAsync", "cuMemAllocAsync_ptsz", "cuMemAllocFromPoolAsync", "cuMemAllocFromPoolAsync_ptsz", "cuMemAllocManaged",
    "cuMemAllocPitch_v2", "cuMemAlloc_v2", "cuMemCreate", "cuMemFreeAsync", "cuMemFreeAsync_ptsz", "cuMemFree_v2",
    "cuMemGetInfo_v2", "cuMemRelease", "cuMipmappedArrayCreate", "cuMipmappedArrayDestroy", "dlsym", "hami_shim_set_clock",
    "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMemoryInfo_v2",
};
#define N (sizeof expected / sizeof expected[0])

int main(void) {
    char cmd[4200], line[512];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", getenv("SHIM"));
    FILE *p = popen(cmd, "r");
    int seen[N] = {0}, extra = 0, total = 0;
    while (p && fgets(line, sizeof line, p)) {
        char addr[64], type[8], name[256];
        if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3) continue;
        total++;
        size_t i = 0;
        while (i < N && strcmp(expected[i], name) != 0) i++;
        if (i < N) seen[i] = 1;
        else { extra++; fprintf(stderr, "unexpected export: %s\n", name); }
    }
    int rc = p ? pclose(p) : -1;
    CHECK(rc == 0 && total > 0, "nm -D ran (%d symbols)", total);
    CHECK(extra == 0, "%d exports beyond the public interface", extra);
    int missing = 0;
    for (size_t i = 0; i < N; i++)
        if (!seen[i]) { missing++; fprintf(stderr, "missing export: %s\n", expected[i]); }
    CHECK(missing == 0, "%d hooks not exported", missing);
    snprintf(cmd, sizeof cmd, "readelf -d '%s'", getenv("SHIM"));
    p = popen(cmd, "r");
    int hard = 0, read_any = 0;
    while (p && fgets(line, sizeof line, p)) {
        read_any = 1;
        if (strstr(line, "NEEDED") && (strstr(line, "libcuda") || strstr(line, "libnvidia-ml"))) hard++;
    }
    if (p) pclose(p);
    CHECK(read_any && hard == 0, "no DT_NEEDED on libcuda or libnvidia-ml");
    return CHECK_DONE("test_exports");
}
