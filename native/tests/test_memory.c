/* Every allocation path against the memory limit, through the three ways code reaches the driver:
 * direct linking, dlopen + dlsym, and cuGetProcAddress_v2 with the runtime's (name, version, flags).
 * Run with CUDA_DEVICE_MEMORY_LIMIT_0=1g (tests/run.sh). */
#include <cuda.h>
#include <dlfcn.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "driver_extra.h"
#include "fakecuda.h"
#include "region_view.h"

#define MiB (1ull << 20)
#define LIMIT (1024 * MiB)


struct api {
    const char *how;
    __typeof__(cuMemAlloc_v2) *alloc;
    __typeof__(cuMemFree_v2) *free;
    __typeof__(cuMemAllocPitch_v2) *pitch;
    __typeof__(cuMemAllocManaged) *managed;
    __typeof__(cuMemAllocAsync) *async, *async_ptsz;
    __typeof__(cuMemAllocFromPoolAsync) *pool, *pool_ptsz;
    __typeof__(cuMemFreeAsync) *free_async, *free_async_ptsz;
    __typeof__(cuMemCreate) *create;
    __typeof__(cuMemRelease) *release;
    __typeof__(cuArrayCreate_v2) *array;
    __typeof__(cuArray3DCreate_v2) *array3d;
    __typeof__(cuArrayDestroy) *array_destroy;
    __typeof__(cuMipmappedArrayCreate) *mip;
    __typeof__(cuMipmappedArrayDestroy) *mip_destroy;
    __typeof__(cuGraphAddMemAllocNode) *graph_mem;
    __typeof__(cuGraphDestroy) *graph_destroy;
    __typeof__(cuIpcOpenMemHandle_v2) *ipc_open;
    __typeof__(cuIpcCloseMemHandle) *ipc_close;
    __typeof__(cuMemGetInfo_v2) *info;
    __typeof__(cuDeviceTotalMem_v2) *total;
};

static hami_region_t *R;
static uint64_t usage(void) { return (uint64_t)region_ext(R)->charged[0]; }

/* One allocation kind: allocate `size` bytes into *h, free *h, the variant the fake must see. */
struct kind {
    const char *name, *variant;
    CUresult (*alloc)(const struct api *, uint64_t, uint64_t *);
    CUresult (*free)(const struct api *, uint64_t);
};

static CUmemoryPool pool;
static CUgraph graph_for_mem;

static CUresult a_plain(const struct api *a, uint64_t n, uint64_t *h) { return a->alloc((CUdeviceptr *)h, n); }
static CUresult f_plain(const struct api *a, uint64_t h) { return a->free(h); }
static CUresult a_managed(const struct api *a, uint64_t n, uint64_t *h) { return a->managed((CUdeviceptr *)h, n, CU_MEM_ATTACH_GLOBAL); }
static CUresult a_async(const struct api *a, uint64_t n, uint64_t *h) { return a->async((CUdeviceptr *)h, n, 0); }
static CUresult f_async(const struct api *a, uint64_t h) { return a->free_async(h, 0); }
static CUresult a_async_ptsz(const struct api *a, uint64_t n, uint64_t *h) { return a->async_ptsz((CUdeviceptr *)h, n, 0); }
static CUresult f_async_ptsz(const struct api *a, uint64_t h) { return a->free_async_ptsz(h, 0); }
static CUresult a_pool(const struct api *a, uint64_t n, uint64_t *h) { return a->pool((CUdeviceptr *)h, n, pool, 0); }
static CUresult a_pool_ptsz(const struct api *a, uint64_t n, uint64_t *h) { return a->pool_ptsz((CUdeviceptr *)h, n, pool, 0); }
static CUresult a_vmm(const struct api *a, uint64_t n, uint64_t *h) {
    CUmemAllocationProp p = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    return a->create((CUmemGenericAllocationHandle *)h, n, &p, 0);
}
static CUresult f_vmm(const struct api *a, uint64_t h) { return a->release(h); }
static CUresult a_array(const struct api *a, uint64_t n, uint64_t *h) {
    CUDA_ARRAY_DESCRIPTOR d = {.Width = 16384, .Height = n / 16384 / 4, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    return a->array((CUarray *)h, &d);
}
static CUresult a_array3d(const struct api *a, uint64_t n, uint64_t *h) {
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 1024, .Height = 1024, .Depth = n / (1024 * 1024 * 2), .Format = CU_AD_FORMAT_HALF, .NumChannels = 1};
    return a->array3d((CUarray *)h, &d);
}
static CUresult f_array(const struct api *a, uint64_t h) { return a->array_destroy((CUarray)h); }
static CUresult a_mip(const struct api *a, uint64_t n, uint64_t *h) {
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 16384, .Height = n / 16384 / 4, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    return a->mip((CUmipmappedArray *)h, &d, 1);
}
static CUresult f_mip(const struct api *a, uint64_t h) { return a->mip_destroy((CUmipmappedArray)h); }
static CUresult a_graph(const struct api *a, uint64_t n, uint64_t *h) {
    CUgraph g;
    cuGraphCreate(&g, 0);
    CUDA_MEM_ALLOC_NODE_PARAMS p = {.poolProps = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}}, .bytesize = n};
    CUgraphNode node;
    CUresult rc = a->graph_mem(&node, g, NULL, 0, &p);
    graph_for_mem = g;
    *h = (uint64_t)(uintptr_t)g;
    return rc;
}
static CUresult f_graph(const struct api *a, uint64_t h) { return a->graph_destroy((CUgraph)(uintptr_t)h); }

static const struct kind kinds[] = {
    {"plain", "cuMemAlloc_v2", a_plain, f_plain},
    {"managed", "cuMemAllocManaged", a_managed, f_plain},
    {"async", "cuMemAllocAsync", a_async, f_async},
    {"async per-thread", "cuMemAllocAsync_ptsz", a_async_ptsz, f_async_ptsz},
    {"from pool", "cuMemAllocFromPoolAsync", a_pool, f_async},
    {"from pool per-thread", "cuMemAllocFromPoolAsync_ptsz", a_pool_ptsz, f_async_ptsz},
    {"vmm", "cuMemCreate", a_vmm, f_vmm},
    {"array", "cuArrayCreate_v2", a_array, f_array},
    {"array 3d", "cuArray3DCreate_v2", a_array3d, f_array},
    {"mipmapped array", "cuMipmappedArrayCreate", a_mip, f_mip},
    {"graph memory node", "cuGraphAddMemAllocNode", a_graph, f_graph},
};

static void run_kinds(const struct api *a, uint64_t base) {
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const struct kind *kd = &kinds[k];
        uint64_t h1 = 0, h2 = 0;
        CHECK(kd->alloc(a, 512 * MiB, &h1) == CUDA_SUCCESS, "%s %s: first 512 MiB", a->how, kd->name);
        CHECK(usage() == base + 512 * MiB, "%s %s: usage %llu", a->how, kd->name, (unsigned long long)usage());
        CHECK(region_slot_sum(R, 0) == usage(), "%s %s: slots agree with the aggregate", a->how, kd->name);
        uint64_t calls = fakecuda_calls(kd->variant);
        CUresult rc = kd->alloc(a, 512 * MiB, &h2);
        CHECK(rc == CUDA_ERROR_OUT_OF_MEMORY, "%s %s: over the limit gives %d", a->how, kd->name, rc);
        CHECK(fakecuda_calls(kd->variant) == calls, "%s %s: the driver was not called over the limit", a->how, kd->name);
        CHECK(usage() == base + 512 * MiB, "%s %s: a refused allocation costs nothing", a->how, kd->name);
        CHECK(kd->free(a, h1) == CUDA_SUCCESS, "%s %s: free", a->how, kd->name);
        CHECK(usage() == base, "%s %s: free gives back exactly (%llu)", a->how, kd->name, (unsigned long long)usage());
        CHECK(kd->alloc(a, 512 * MiB, &h2) == CUDA_SUCCESS && kd->free(a, h2) == CUDA_SUCCESS, "%s %s: room again", a->how, kd->name);
        fakecuda_fail_next(kd->variant, 1, CUDA_ERROR_UNKNOWN); /* the driver fails after the charge */
        rc = kd->alloc(a, 256 * MiB, &h2);
        CHECK(rc == CUDA_ERROR_UNKNOWN && usage() == base, "%s %s: a driver failure passes through (%d) and costs nothing",
              a->how, kd->name, rc);
    }
}

static void run_pitch_ipc_queries(const struct api *a, uint64_t base) {
    CUdeviceptr p;
    size_t pitch = 0;
    CHECK(a->pitch(&p, &pitch, 1000, 262144, 4) == CUDA_SUCCESS && pitch == 1024, "%s pitch alloc", a->how);
    CHECK(usage() == base + 1024ull * 262144, "%s: the real pitch is charged (%llu)", a->how, (unsigned long long)(usage() - base));
    CHECK(a->free(p) == CUDA_SUCCESS && usage() == base, "%s: pitch free", a->how);
    uint64_t c = fakecuda_calls("cuMemAllocPitch_v2");
    CHECK(a->pitch(&p, &pitch, 4096, 262144, 4) == CUDA_ERROR_OUT_OF_MEMORY, "%s: pitch over the limit", a->how);
    CHECK(fakecuda_calls("cuMemAllocPitch_v2") == c, "%s: pitch over the limit never reaches the driver", a->how);

    CUdeviceptr x, y, opened;
    CUipcMemHandle ih;
    CHECK(a->alloc(&x, 300 * MiB) == CUDA_SUCCESS, "%s ipc source", a->how);
    cuIpcGetMemHandle(&ih, x);
    CHECK(a->ipc_open(&opened, ih, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) == CUDA_SUCCESS, "%s ipc open", a->how);
    CHECK(usage() == base + 600 * MiB, "%s: an imported IPC block is charged to the importer", a->how);
    CHECK(a->ipc_close(opened) == CUDA_SUCCESS && usage() == base + 300 * MiB, "%s: ipc close gives it back", a->how);
    CHECK(a->alloc(&y, 200 * MiB) == CUDA_SUCCESS, "%s second block", a->how);
    uint64_t closes = fakecuda_calls("cuIpcCloseMemHandle");
    CHECK(a->ipc_open(&opened, ih, 0) == CUDA_ERROR_OUT_OF_MEMORY, "%s: ipc import over the limit", a->how);
    CHECK(fakecuda_calls("cuIpcCloseMemHandle") == closes + 1, "%s: the refused import is closed again", a->how);
    a->free(y);
    a->free(x);
    CHECK(usage() == base, "%s: back to the context only", a->how);

    size_t f = 0, t = 0;
    CHECK(a->info(&f, &t) == CUDA_SUCCESS && t == LIMIT && f == LIMIT - base, "%s info: total %zu free %zu", a->how, t, f);
    CHECK(a->total(&t, 0) == CUDA_SUCCESS && t == LIMIT, "%s total mem %zu", a->how, t);
    CHECK(a->info(NULL, &t) == CUDA_ERROR_INVALID_VALUE && a->info(&f, NULL) == CUDA_ERROR_INVALID_VALUE, "%s info NULL", a->how);
    CHECK(a->total(NULL, 0) == CUDA_ERROR_INVALID_VALUE, "%s total NULL", a->how);
    c = fakecuda_calls("cuMemAlloc_v2");
    CHECK(a->alloc(NULL, MiB) == CUDA_ERROR_INVALID_VALUE && a->managed(NULL, MiB, 1) == CUDA_ERROR_INVALID_VALUE &&
              a->async(NULL, MiB, 0) == CUDA_ERROR_INVALID_VALUE && a->pitch(&p, NULL, 8, 8, 4) == CUDA_ERROR_INVALID_VALUE &&
              a->create(NULL, MiB, NULL, 0) == CUDA_ERROR_INVALID_VALUE && a->array(NULL, NULL) == CUDA_ERROR_INVALID_VALUE,
          "%s: NULL out-pointers are refused", a->how);
    CHECK(fakecuda_calls("cuMemAlloc_v2") == c && usage() == base, "%s: NULL out-pointers cost nothing", a->how);
    c = fakecuda_calls("cuMemFree_v2");
    CHECK(a->free((CUdeviceptr)0x1234) == CUDA_ERROR_INVALID_VALUE && fakecuda_calls("cuMemFree_v2") == c + 1,
          "%s: an unknown pointer's free is forwarded to the driver", a->how);
    CHECK(a->free_async((CUdeviceptr)0x1234, 0) == CUDA_ERROR_INVALID_VALUE, "%s: unknown async free forwarded", a->how);
}

static void *sym(void *h, const char *n) {
    void *p = dlsym(h, n);
    if (!p) fprintf(stderr, "missing %s\n", n);
    return p;
}

int main(void) {
    CHECK(cuInit(0) == CUDA_SUCCESS, "cuInit");
    CUcontext ctx;
    CHECK(cuDevicePrimaryCtxRetain(&ctx, 0) == CUDA_SUCCESS, "retain");
    cuCtxSetCurrent(ctx);
    R = region_view(NULL);
    CHECK(R && R->initialized_flag == HAMI_REGION_MAGIC, "the region exists after the first call");
    if (!R) return CHECK_DONE("test_memory");
    uint64_t base = usage();
    CHECK(base == HAMI_PRIMARY_CONTEXT_CHARGE, "the primary context is charged (%llu)", (unsigned long long)base);
    CHECK(R->limit[0] == LIMIT && R->procs[0].pid == getpid() && R->procs[0].used[0].context_size == base,
          "limit and slot recorded in the region");
    { /* The host monitor's view: raw offsets of HAMi-core's v1.2 layout, not this header's structs. */
        struct stat st;
        stat(getenv(HAMI_ENV_SHARED_CACHE), &st);
        const unsigned char *b = (const unsigned char *)R;
        int32_t magic, proc_num;
        uint32_t major, minor;
        uint64_t limit0, total0, ctx0;
        int32_t pid0;
        memcpy(&magic, b + 0, 4);
        memcpy(&major, b + 4, 4);
        memcpy(&minor, b + 8, 4);
        memcpy(&limit0, b + 1600, 8);
        memcpy(&proc_num, b + 2008896, 4);
        memcpy(&pid0, b + 1856, 4);
        memcpy(&ctx0, b + 1856 + 8 + 0, 8);   /* procs[0].used[0].context_size */
        memcpy(&total0, b + 1856 + 8 + 32, 8); /* procs[0].used[0].total */
        CHECK(st.st_size >= 2008952 && magic == 19920718 && major == 1 && minor == 2, "HAMi's monitor accepts the file (v1 parser)");
        CHECK(limit0 == LIMIT && proc_num == 1 && pid0 == getpid() && total0 == base && ctx0 == base,
              "and reads limit, process count, PID and usage at HAMi-core's offsets");
    }
    CUmemPoolProps pp = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    cuMemPoolCreate(&pool, &pp);

    struct api direct = {"direct", cuMemAlloc_v2, cuMemFree_v2, cuMemAllocPitch_v2, cuMemAllocManaged, cuMemAllocAsync,
                         cuMemAllocAsync_ptsz, cuMemAllocFromPoolAsync, cuMemAllocFromPoolAsync_ptsz, cuMemFreeAsync,
                         cuMemFreeAsync_ptsz, cuMemCreate, cuMemRelease, cuArrayCreate_v2, cuArray3DCreate_v2, cuArrayDestroy,
                         cuMipmappedArrayCreate, cuMipmappedArrayDestroy, cuGraphAddMemAllocNode, cuGraphDestroy,
                         cuIpcOpenMemHandle_v2, cuIpcCloseMemHandle, cuMemGetInfo_v2, cuDeviceTotalMem_v2};
    run_kinds(&direct, base);
    run_pitch_ipc_queries(&direct, base);

    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    struct api viadl = {"dlsym", sym(h, "cuMemAlloc_v2"), sym(h, "cuMemFree_v2"), sym(h, "cuMemAllocPitch_v2"),
                        sym(h, "cuMemAllocManaged"), sym(h, "cuMemAllocAsync"), sym(h, "cuMemAllocAsync_ptsz"),
                        sym(h, "cuMemAllocFromPoolAsync"), sym(h, "cuMemAllocFromPoolAsync_ptsz"), sym(h, "cuMemFreeAsync"),
                        sym(h, "cuMemFreeAsync_ptsz"), sym(h, "cuMemCreate"), sym(h, "cuMemRelease"), sym(h, "cuArrayCreate_v2"),
                        sym(h, "cuArray3DCreate_v2"), sym(h, "cuArrayDestroy"), sym(h, "cuMipmappedArrayCreate"),
                        sym(h, "cuMipmappedArrayDestroy"), sym(h, "cuGraphAddMemAllocNode"), sym(h, "cuGraphDestroy"),
                        sym(h, "cuIpcOpenMemHandle_v2"), sym(h, "cuIpcCloseMemHandle"), sym(h, "cuMemGetInfo_v2"),
                        sym(h, "cuDeviceTotalMem_v2")};
    CHECK((void *)viadl.alloc == (void *)direct.alloc, "dlsym hands out the same wrapper as direct linking");
    CHECK((void *)viadl.alloc != fakecuda_lookup("cuMemAlloc_v2"), "dlsym does not hand out the raw driver function");
    run_kinds(&viadl, base);
    run_pitch_ipc_queries(&viadl, base);

    __typeof__(cuGetProcAddress_v2) *gpa = sym(h, "cuGetProcAddress_v2");
    struct { const char *name; int version; int flags; void **slot; } triples[] = {
        {"cuMemAlloc", 3020, 0, NULL}, {"cuMemFree", 3020, 0, NULL}, {"cuMemAllocPitch", 3020, 0, NULL},
        {"cuMemAllocManaged", 6000, 0, NULL}, {"cuMemAllocAsync", 11020, 0, NULL}, {"cuMemAllocAsync", 11020, 2, NULL},
        {"cuMemAllocFromPoolAsync", 11020, 0, NULL}, {"cuMemAllocFromPoolAsync", 11020, 2, NULL},
        {"cuMemFreeAsync", 11020, 0, NULL}, {"cuMemFreeAsync", 11020, 2, NULL}, {"cuMemCreate", 10020, 0, NULL},
        {"cuMemRelease", 10020, 0, NULL}, {"cuArrayCreate", 3020, 0, NULL}, {"cuArray3DCreate", 3020, 0, NULL},
        {"cuArrayDestroy", 2000, 0, NULL}, {"cuMipmappedArrayCreate", 5000, 0, NULL},
        {"cuMipmappedArrayDestroy", 5000, 0, NULL}, {"cuGraphAddMemAllocNode", 11040, 0, NULL},
        {"cuGraphDestroy", 10000, 0, NULL}, {"cuIpcOpenMemHandle", 11000, 0, NULL}, {"cuIpcCloseMemHandle", 4010, 0, NULL},
        {"cuMemGetInfo", 3020, 0, NULL}, {"cuDeviceTotalMem", 3020, 0, NULL},
    };
    struct api viagpa = {.how = "cuGetProcAddress_v2"};
    void **slots[] = {(void **)&viagpa.alloc, (void **)&viagpa.free, (void **)&viagpa.pitch, (void **)&viagpa.managed,
                      (void **)&viagpa.async, (void **)&viagpa.async_ptsz, (void **)&viagpa.pool, (void **)&viagpa.pool_ptsz,
                      (void **)&viagpa.free_async, (void **)&viagpa.free_async_ptsz, (void **)&viagpa.create,
                      (void **)&viagpa.release, (void **)&viagpa.array, (void **)&viagpa.array3d,
                      (void **)&viagpa.array_destroy, (void **)&viagpa.mip, (void **)&viagpa.mip_destroy,
                      (void **)&viagpa.graph_mem, (void **)&viagpa.graph_destroy, (void **)&viagpa.ipc_open,
                      (void **)&viagpa.ipc_close, (void **)&viagpa.info, (void **)&viagpa.total};
    for (size_t i = 0; i < sizeof triples / sizeof triples[0]; i++) {
        CUdriverProcAddressQueryResult st = -1;
        CUresult rc = gpa(triples[i].name, slots[i], triples[i].version, (cuuint64_t)triples[i].flags, &st);
        CHECK(rc == CUDA_SUCCESS && st == CU_GET_PROC_ADDRESS_SUCCESS && *slots[i], "lookup %s %d %d", triples[i].name,
              triples[i].version, triples[i].flags);
    }
    CHECK((void *)viagpa.async_ptsz == (void *)direct.async_ptsz && (void *)viagpa.async == (void *)direct.async,
          "per-thread-stream requests get the _ptsz wrapper, legacy ones the legacy wrapper");
    run_kinds(&viagpa, base);
    run_pitch_ipc_queries(&viagpa, base);

    uint64_t ptsz_calls = fakecuda_calls("cuMemAllocAsync_ptsz"), legacy_calls = fakecuda_calls("cuMemAllocAsync");
    CUdeviceptr d;
    viagpa.async_ptsz(&d, MiB, 0);
    viagpa.free_async_ptsz(d, 0);
    CHECK(fakecuda_calls("cuMemAllocAsync_ptsz") == ptsz_calls + 1 && fakecuda_calls("cuMemAllocAsync") == legacy_calls,
          "the _ptsz wrapper reaches the driver's _ptsz variant");

    CHECK(cuDevicePrimaryCtxRelease_v2(0) == CUDA_SUCCESS && usage() == 0, "releasing the primary context un-charges it");
    CHECK(R->device_num == 1 && strcmp(R->uuids[0], "GPU-fa000000-0000-0000-0000-000000000000") == 0,
          "the devices' UUIDs are recorded for the monitor (%llu, %s)", (unsigned long long)R->device_num, R->uuids[0]);
    return CHECK_DONE("test_memory");
}
