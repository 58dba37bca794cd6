/* How calls reach the wrappers: direct interposition (the wrappers carry the driver's names), an
 * exported dlsym that swaps in a wrapper only for exact hooked names, and cuGetProcAddress(_v2),
 * which asks the real driver with the caller's (name, version, flags) and wraps the variant the
 * driver returned (so _ptsz requests get the _ptsz wrapper and old ABIs stay unwrapped). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

#define DEFINE_REAL(n) __typeof__(n) *real_##n;
CUDA_HOOKS(DEFINE_REAL)
CUDA_USED(DEFINE_REAL)
NVML_HOOKS(DEFINE_REAL)
NVML_USED(DEFINE_REAL)

struct hook { const char *name; void *wrapper; void **real; int nvml; };
#define CUDA_ENTRY(n) {#n, (void *)&n, (void **)&real_##n, 0},
#define NVML_ENTRY(n) {#n, (void *)&n, (void **)&real_##n, 1},
static const struct hook hooks[] = {CUDA_HOOKS(CUDA_ENTRY) NVML_HOOKS(NVML_ENTRY)};
#define NHOOKS (sizeof hooks / sizeof hooks[0])

typedef void *(*dlsym_fn)(void *, const char *);
static dlsym_fn real_dlsym;

static void bootstrap_dlsym(void) {
    static const char *versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17"};
    for (size_t i = 0; i < 3 && !real_dlsym; i++) real_dlsym = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", versions[i]);
}

static const struct hook *find_hook(const char *name) {
    if (!((name[0] == 'c' && name[1] == 'u' && name[2] >= 'A' && name[2] <= 'Z') ||
          (strncmp(name, "nvml", 4) == 0 && name[4] >= 'A' && name[4] <= 'Z')))
        return NULL;
    for (size_t i = 0; i < NHOOKS; i++)
        if (strcmp(hooks[i].name, name) == 0) return &hooks[i];
    return NULL;
}

/* Real driver pointer -> wrapper, for cuGetProcAddress answers. */
#define MAP_CAP 256
static struct { void *real; void *wrapper; } ptr_map[MAP_CAP];

static size_t map_home(void *p) { return (size_t)(((uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 56) & (MAP_CAP - 1); }

static void *wrapper_for(void *real) {
    for (size_t j = map_home(real);; j = (j + 1) & (MAP_CAP - 1)) {
        if (!ptr_map[j].real) return NULL;
        if (ptr_map[j].real == real) return ptr_map[j].wrapper;
    }
}

static void map_put(void *real, void *wrapper) {
    if (wrapper_for(real)) return;
    size_t j = map_home(real);
    while (ptr_map[j].real) j = (j + 1) & (MAP_CAP - 1);
    ptr_map[j].real = real;
    ptr_map[j].wrapper = wrapper;
}

/* A driver may hand out entry points through cuGetProcAddress that are not its exported symbols.
 * Ask it for every hooked function the way the runtime does (base name, this build's CUDA version,
 * per-thread flag for _ptsz) and map what it returns to the same wrapper: the pointer identifies
 * the ABI, so older-version requests that get the same pointer are wrapped too, others are not. */
static void map_driver_entry_points(void) {
    if (!real_cuGetProcAddress_v2) return;
    int mapped = 0;
    for (size_t i = 0; i < NHOOKS; i++) {
        const char *name = hooks[i].name;
        if (hooks[i].nvml || strncmp(name, "cuGetProcAddress", 16) == 0) continue;
        char base[64];
        snprintf(base, sizeof base, "%s", name);
        cuuint64_t flags = CU_GET_PROC_ADDRESS_DEFAULT;
        size_t n = strlen(base);
        if (n > 5 && strcmp(base + n - 5, "_ptsz") == 0) {
            base[n -= 5] = 0;
            flags = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
        }
        if (n > 3 && base[n - 3] == '_' && base[n - 2] == 'v' && base[n - 1] >= '2' && base[n - 1] <= '9') base[n - 3] = 0;
        void *p = NULL;
        CUdriverProcAddressQueryResult st;
        if (real_cuGetProcAddress_v2(base, &p, CUDA_VERSION, flags, &st) == CUDA_SUCCESS && p && p != *hooks[i].real) {
            map_put(p, hooks[i].wrapper);
            mapped++;
        }
    }
    if (mapped) LOG_INFO("%d driver entry points differ from the exported symbols; mapped to their wrappers", mapped);
}

static void *cuda_handle, *nvml_handle;
static pthread_once_t driver_once = PTHREAD_ONCE_INIT, nvml_once = PTHREAD_ONCE_INIT;

static void load_driver(void) {
    if (!real_dlsym) bootstrap_dlsym();
    cuda_handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cuda_handle) {
        LOG_ERROR("libcuda.so.1 not found: %s", dlerror());
        return;
    }
#define RESOLVE(n) real_##n = (__typeof__(n) *)real_dlsym(cuda_handle, #n);
    CUDA_HOOKS(RESOLVE)
    CUDA_USED(RESOLVE)
    for (size_t i = 0; i < NHOOKS; i++)
        if (!hooks[i].nvml && *hooks[i].real) map_put(*hooks[i].real, hooks[i].wrapper);
    map_driver_entry_points();
}

static void load_nvml(void) {
    if (!real_dlsym) bootstrap_dlsym();
    nvml_handle = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!nvml_handle) return;
#define RESOLVE_IF_UNSET(n) if (!real_##n) real_##n = (__typeof__(n) *)real_dlsym(nvml_handle, #n);
    NVML_HOOKS(RESOLVE_IF_UNSET)
    NVML_USED(RESOLVE_IF_UNSET)
}

int shim_single_device;

/* "GPU-" and the 16 bytes as 8-4-4-4-12 hex digits: how NVML (and HAMi's monitor) spell a UUID. */
static void format_uuid(const CUuuid *u, char *out) {
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, HAMI_UUID_LEN, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static void record_devices(int n) {
    static char uuids[HAMI_MAX_DEVICES][HAMI_UUID_LEN];
    if (n > HAMI_MAX_DEVICES) n = HAMI_MAX_DEVICES;
    for (int i = 0; i < n; i++) {
        CUuuid u;
        memset(uuids[i], 0, HAMI_UUID_LEN);
        if (real_cuDeviceGetUuid_v2 && real_cuDeviceGetUuid_v2(&u, i) == CUDA_SUCCESS) format_uuid(&u, uuids[i]);
    }
    region_set_devices(n, (const char (*)[HAMI_UUID_LEN])uuids);
}

int shim_current_device_slow(void) {
    int n;
    if (shim_single_device == 0 && real_cuDeviceGetCount && real_cuDeviceGetCount(&n) == CUDA_SUCCESS) {
        shim_single_device = n == 1 ? 1 : -1;
        record_devices(n);
    }
    if (shim_single_device > 0) return 0;
    CUdevice d;
    return real_cuCtxGetDevice && real_cuCtxGetDevice(&d) == CUDA_SUCCESS ? (int)d : -1;
}

void shim_load_driver(void) { pthread_once(&driver_once, load_driver); }
void shim_load_nvml(void) { pthread_once(&nvml_once, load_nvml); }

EXPORT void *dlsym(void *handle, const char *name) {
    if (UNLIKELY(!real_dlsym)) bootstrap_dlsym();
    const char *n = name;
    __asm__("" : "+r"(n)); /* glibc declares name nonnull; callers may still pass NULL */
    const struct hook *h = n ? find_hook(n) : NULL;
    if (h) {
        void *p = real_dlsym(handle, name);
        if (!p) return NULL;
        if (h->nvml) shim_load_nvml();
        else shim_load_driver();
        return *h->real ? h->wrapper : p;
    }
    /* A tail call, so RTLD_NEXT lookups still see their caller's return address. */
    return real_dlsym(handle, name);
}

static CUresult wrapped(CUresult rc, void **pfn) {
    if (rc == CUDA_SUCCESS && pfn && *pfn) {
        void *w = wrapper_for(*pfn);
        if (w) *pfn = w;
    }
    return rc;
}

EXPORT CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t flags, CUdriverProcAddressQueryResult *status) {
    shim_load_driver();
    if (!real_cuGetProcAddress_v2) return CUDA_ERROR_NOT_FOUND;
    return wrapped(real_cuGetProcAddress_v2(symbol, pfn, version, flags, status), pfn);
}

EXPORT CUresult cuGetProcAddress(const char *symbol, void **pfn, int version, cuuint64_t flags) {
    shim_load_driver();
    if (!real_cuGetProcAddress) return CUDA_ERROR_NOT_FOUND;
    return wrapped(real_cuGetProcAddress(symbol, pfn, version, flags), pfn);
}
