/* Fake driver memory: device allocations backed by host mappings, pools, VMM, arrays and IPC. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake_internal.h"

enum { KIND_PLAIN, KIND_POOL, KIND_MANAGED };

struct alloc_node { uint64_t ptr, size; int dev, kind; struct alloc_node *next; };
#define BUCKETS 4096
static struct alloc_node *buckets[BUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned bucket(uint64_t p) { return (unsigned)((p >> 12) * 0x9E3779B97F4A7C15ull >> 52) % BUCKETS; }

void fake_alloc_put(uint64_t ptr, uint64_t size, int dev, int kind) {
    struct alloc_node *n = malloc(sizeof *n);
    *n = (struct alloc_node){ptr, size, dev, kind, NULL};
    pthread_mutex_lock(&table_lock);
    n->next = buckets[bucket(ptr)];
    buckets[bucket(ptr)] = n;
    pthread_mutex_unlock(&table_lock);
}

int fake_alloc_take(uint64_t ptr, uint64_t *size, int *dev, int *kind) {
    pthread_mutex_lock(&table_lock);
    for (struct alloc_node **pp = &buckets[bucket(ptr)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->ptr == ptr) {
            struct alloc_node *n = *pp;
            *pp = n->next;
            pthread_mutex_unlock(&table_lock);
            *size = n->size; *dev = n->dev; *kind = n->kind;
            free(n);
            return 0;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return -1;
}

int fake_alloc_find(uint64_t ptr, uint64_t *base, uint64_t *size) {
    pthread_mutex_lock(&table_lock);
    for (int b = 0; b < BUCKETS; b++)
        for (struct alloc_node *n = buckets[b]; n; n = n->next)
            if (ptr >= n->ptr && ptr < n->ptr + (n->size ? n->size : 1)) {
                *base = n->ptr; *size = n->size;
                pthread_mutex_unlock(&table_lock);
                return 0;
            }
    pthread_mutex_unlock(&table_lock);
    return -1;
}

void *fake_map(uint64_t size) {
    void *p = mmap(NULL, size ? size : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
void fake_unmap(void *p, uint64_t size) { munmap(p, size ? size : 1); }

static CUresult alloc_on(int dev, CUdeviceptr *dptr, uint64_t size, int kind) {
    if (fake_phys_take(dev, size, 1) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    void *p = fake_map(size);
    if (!p) { fake_phys_give(dev, size, 1); return CUDA_ERROR_OUT_OF_MEMORY; }
    fake_alloc_put((uint64_t)(uintptr_t)p, size, dev, kind);
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

#define NEED_CTX(dev) int dev = fake_current_device(); if (dev < 0) return CUDA_ERROR_INVALID_CONTEXT

API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t size) {
    FAKE_ENTER();
    NEED_CTX(dev);
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    return alloc_on(dev, dptr, size, KIND_PLAIN);
}

API CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int elem) {
    FAKE_ENTER();
    NEED_CTX(dev);
    if (!dptr || !pitch || width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16)) return CUDA_ERROR_INVALID_VALUE;
    size_t p = (width + 511) & ~(size_t)511;
    CUresult rc = alloc_on(dev, dptr, (uint64_t)p * height, KIND_PLAIN);
    if (rc == CUDA_SUCCESS) *pitch = p;
    return rc;
}

API CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t size, unsigned int flags) {
    (void)flags;
    FAKE_ENTER();
    NEED_CTX(dev);
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    return alloc_on(dev, dptr, size, KIND_MANAGED);
}

API CUresult cuMemFree_v2(CUdeviceptr dptr) {
    FAKE_ENTER();
    if (dptr == 0) return CUDA_SUCCESS;
    uint64_t size; int dev, kind;
    if (fake_alloc_take(dptr, &size, &dev, &kind) != 0) return CUDA_ERROR_INVALID_VALUE;
    fake_unmap((void *)(uintptr_t)dptr, size);
    fake_phys_give(dev, size, 1);
    return CUDA_SUCCESS;
}

API CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr dptr) {
    FAKE_ENTER();
    uint64_t b, s;
    if (fake_alloc_find(dptr, &b, &s) != 0) return CUDA_ERROR_NOT_FOUND;
    if (base) *base = b;
    if (size) *size = s;
    return CUDA_SUCCESS;
}

API CUresult cuMemAllocHost_v2(void **pp, size_t size) {
    FAKE_ENTER();
    if (!pp) return CUDA_ERROR_INVALID_VALUE;
    *pp = malloc(size ? size : 1);
    return *pp ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
API CUresult cuMemFreeHost(void *p) { FAKE_ENTER(); free(p); return CUDA_SUCCESS; }

API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { FAKE_ENTER(); memcpy((void *)(uintptr_t)dst, src, n); return CUDA_SUCCESS; }
API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { FAKE_ENTER(); memcpy(dst, (void *)(uintptr_t)src, n); return CUDA_SUCCESS; }
API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) { FAKE_ENTER(); memset((void *)(uintptr_t)dst, v, n); return CUDA_SUCCESS; }

API CUresult cuMemAdvise(CUdeviceptr p, size_t n, CUmem_advise a, CUdevice d) { (void)p; (void)n; (void)a; (void)d; FAKE_ENTER(); return CUDA_SUCCESS; }
API CUresult cuMemAdvise_v2(CUdeviceptr p, size_t n, CUmem_advise a, CUmemLocation l) { (void)p; (void)n; (void)a; (void)l; FAKE_ENTER(); return CUDA_SUCCESS; }

/* ---- stream-ordered pools: a pool reserves physical memory in 2 MiB steps and keeps what is freed
 * cached up to its release threshold ---- */
struct fake_pool {
    int dev;
    uint64_t reserved, used, reserved_high, used_high, threshold;
    pthread_mutex_t lock;
};
static struct fake_pool default_pool[FAKE_MAX_DEVICES];
static struct fake_pool *current_pool[FAKE_MAX_DEVICES];
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

static void pools_init(void) {
    for (int d = 0; d < FAKE_MAX_DEVICES; d++) {
        default_pool[d].dev = d;
        pthread_mutex_init(&default_pool[d].lock, NULL);
        current_pool[d] = &default_pool[d];
    }
}

static void pool_trim(struct fake_pool *p, uint64_t keep) {
    uint64_t floor = p->used > keep ? p->used : keep;
    floor = (floor + FAKE_GRANULARITY - 1) & ~(FAKE_GRANULARITY - 1);
    if (p->reserved > floor) {
        fake_phys_give(p->dev, p->reserved - floor, 1);
        p->reserved = floor;
    }
}

static CUresult pool_alloc(struct fake_pool *p, CUdeviceptr *dptr, size_t size) {
    if (!dptr || size == 0) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&p->lock);
    uint64_t need = p->used + size;
    if (need > p->reserved) {
        uint64_t grow = ((need - p->reserved) + FAKE_GRANULARITY - 1) & ~(FAKE_GRANULARITY - 1);
        if (fake_phys_take(p->dev, grow, 1) != 0) { pthread_mutex_unlock(&p->lock); return CUDA_ERROR_OUT_OF_MEMORY; }
        p->reserved += grow;
        if (p->reserved > p->reserved_high) p->reserved_high = p->reserved;
    }
    p->used += size;
    if (p->used > p->used_high) p->used_high = p->used;
    pthread_mutex_unlock(&p->lock);
    void *m = fake_map(size);
    fake_alloc_put((uint64_t)(uintptr_t)m, size, p->dev, KIND_POOL);
    /* Remember the pool in the size's top bits is not possible; pools are found per device. */
    *dptr = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}

static CUresult async_alloc(CUdeviceptr *dptr, size_t size) {
    pthread_once(&pools_once, pools_init);
    NEED_CTX(dev);
    return pool_alloc(current_pool[dev], dptr, size);
}
API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s) { (void)s; FAKE_ENTER(); return async_alloc(dptr, size); }
API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream s) { (void)s; FAKE_ENTER(); return async_alloc(dptr, size); }

static CUresult from_pool(CUdeviceptr *dptr, size_t size, CUmemoryPool pool) {
    pthread_once(&pools_once, pools_init);
    if (!pool) return CUDA_ERROR_INVALID_VALUE;
    return pool_alloc((struct fake_pool *)pool, dptr, size);
}
API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *d, size_t n, CUmemoryPool p, CUstream s) { (void)s; FAKE_ENTER(); return from_pool(d, n, p); }
API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *d, size_t n, CUmemoryPool p, CUstream s) { (void)s; FAKE_ENTER(); return from_pool(d, n, p); }

/* Frees go back to the pool of the device the memory came from: the fake keeps one pool per
 * device in use at a time, which is all the tests need. */
static CUresult async_free(CUdeviceptr dptr) {
    pthread_once(&pools_once, pools_init);
    uint64_t size; int dev, kind;
    if (fake_alloc_take(dptr, &size, &dev, &kind) != 0) return CUDA_ERROR_INVALID_VALUE;
    fake_unmap((void *)(uintptr_t)dptr, size);
    if (kind != KIND_POOL) { fake_phys_give(dev, size, 1); return CUDA_SUCCESS; }
    struct fake_pool *p = current_pool[dev];
    pthread_mutex_lock(&p->lock);
    p->used -= size < p->used ? size : p->used;
    pool_trim(p, p->threshold);
    pthread_mutex_unlock(&p->lock);
    return CUDA_SUCCESS;
}
API CUresult cuMemFreeAsync(CUdeviceptr d, CUstream s) { (void)s; FAKE_ENTER(); return async_free(d); }
API CUresult cuMemFreeAsync_ptsz(CUdeviceptr d, CUstream s) { (void)s; FAKE_ENTER(); return async_free(d); }

API CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice d) {
    FAKE_ENTER();
    pthread_once(&pools_once, pools_init);
    if (!pool || d < 0 || d >= fake_cfg.devices) return CUDA_ERROR_INVALID_VALUE;
    *pool = (CUmemoryPool)&default_pool[d];
    return CUDA_SUCCESS;
}
API CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice d) {
    FAKE_ENTER();
    pthread_once(&pools_once, pools_init);
    if (!pool || d < 0 || d >= fake_cfg.devices) return CUDA_ERROR_INVALID_VALUE;
    *pool = (CUmemoryPool)current_pool[d];
    return CUDA_SUCCESS;
}
API CUresult cuDeviceSetMemPool(CUdevice d, CUmemoryPool pool) {
    FAKE_ENTER();
    pthread_once(&pools_once, pools_init);
    if (!pool || d < 0 || d >= fake_cfg.devices) return CUDA_ERROR_INVALID_VALUE;
    current_pool[d] = (struct fake_pool *)pool;
    return CUDA_SUCCESS;
}
API CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *props) {
    FAKE_ENTER();
    if (!pool || !props || props->location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
    struct fake_pool *p = calloc(1, sizeof *p);
    p->dev = props->location.id;
    pthread_mutex_init(&p->lock, NULL);
    *pool = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}
API CUresult cuMemPoolDestroy(CUmemoryPool pool) {
    FAKE_ENTER();
    struct fake_pool *p = (struct fake_pool *)pool;
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    pool_trim(p, 0);
    return CUDA_SUCCESS;
}
API CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep) {
    FAKE_ENTER();
    struct fake_pool *p = (struct fake_pool *)pool;
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&p->lock);
    pool_trim(p, keep);
    pthread_mutex_unlock(&p->lock);
    return CUDA_SUCCESS;
}
API CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute a, void *v) {
    FAKE_ENTER();
    struct fake_pool *p = (struct fake_pool *)pool;
    if (!p || !v) return CUDA_ERROR_INVALID_VALUE;
    uint64_t *out = v;
    switch (a) {
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *out = p->threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *out = p->reserved; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *out = p->reserved_high; break;
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *out = p->used; break;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: *out = p->used_high; break;
    default: *(int *)v = 0;
    }
    return CUDA_SUCCESS;
}
API CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute a, void *v) {
    FAKE_ENTER();
    struct fake_pool *p = (struct fake_pool *)pool;
    if (!p || !v) return CUDA_ERROR_INVALID_VALUE;
    if (a == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD) p->threshold = *(uint64_t *)v;
    return CUDA_SUCCESS;
}

/* ---- VMM: a physical handle is a memfd; mapping places it at the reserved address ---- */
struct fake_handle { int fd, dev; uint64_t size; };

API CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *prop, CUmemAllocationGranularity_flags f) {
    (void)f;
    FAKE_ENTER();
    if (!g || !prop) return CUDA_ERROR_INVALID_VALUE;
    *g = FAKE_GRANULARITY;
    return CUDA_SUCCESS;
}
API CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size, const CUmemAllocationProp *prop, unsigned long long flags) {
    (void)flags;
    FAKE_ENTER();
    if (!h || !prop || size == 0 || size % FAKE_GRANULARITY) return CUDA_ERROR_INVALID_VALUE;
    int dev = prop->location.id;
    if (prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || dev < 0 || dev >= fake_cfg.devices) return CUDA_ERROR_INVALID_DEVICE;
    if (fake_phys_take(dev, size, 1) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    struct fake_handle *fh = calloc(1, sizeof *fh);
    fh->fd = memfd_create("fakecuda", 0);
    if (fh->fd < 0 || ftruncate(fh->fd, (off_t)size) != 0) { fake_phys_give(dev, size, 1); free(fh); return CUDA_ERROR_OUT_OF_MEMORY; }
    fh->dev = dev;
    fh->size = size;
    *h = (CUmemGenericAllocationHandle)(uintptr_t)fh;
    return CUDA_SUCCESS;
}
API CUresult cuMemRelease(CUmemGenericAllocationHandle h) {
    FAKE_ENTER();
    struct fake_handle *fh = (struct fake_handle *)(uintptr_t)h;
    if (!fh) return CUDA_ERROR_INVALID_VALUE;
    close(fh->fd);
    fake_phys_give(fh->dev, fh->size, 1);
    free(fh);
    return CUDA_SUCCESS;
}
API CUresult cuMemAddressReserve(CUdeviceptr *p, size_t size, size_t align, CUdeviceptr addr, unsigned long long flags) {
    (void)align; (void)addr; (void)flags;
    FAKE_ENTER();
    if (!p || size == 0) return CUDA_ERROR_INVALID_VALUE;
    void *m = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    *p = (CUdeviceptr)(uintptr_t)m;
    return CUDA_SUCCESS;
}
API CUresult cuMemAddressFree(CUdeviceptr p, size_t size) { FAKE_ENTER(); munmap((void *)(uintptr_t)p, size); return CUDA_SUCCESS; }
API CUresult cuMemMap(CUdeviceptr p, size_t size, size_t offset, CUmemGenericAllocationHandle h, unsigned long long flags) {
    (void)flags;
    FAKE_ENTER();
    struct fake_handle *fh = (struct fake_handle *)(uintptr_t)h;
    if (!fh || offset + size > fh->size) return CUDA_ERROR_INVALID_VALUE;
    void *m = mmap((void *)(uintptr_t)p, size, PROT_NONE, MAP_SHARED | MAP_FIXED, fh->fd, (off_t)offset);
    return m == MAP_FAILED ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}
API CUresult cuMemUnmap(CUdeviceptr p, size_t size) {
    FAKE_ENTER();
    void *m = mmap((void *)(uintptr_t)p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return m == MAP_FAILED ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}
API CUresult cuMemSetAccess(CUdeviceptr p, size_t size, const CUmemAccessDesc *desc, size_t count) {
    FAKE_ENTER();
    if (!desc || count == 0) return CUDA_ERROR_INVALID_VALUE;
    return mprotect((void *)(uintptr_t)p, size, PROT_READ | PROT_WRITE) == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- arrays: bytes = width x height x depth x channels x element size ---- */
struct fake_array { int dev; uint64_t size; };

static uint64_t format_bytes(CUarray_format f) {
    switch (f) {
    case CU_AD_FORMAT_UNSIGNED_INT8: case CU_AD_FORMAT_SIGNED_INT8: return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16: case CU_AD_FORMAT_SIGNED_INT16: case CU_AD_FORMAT_HALF: return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32: case CU_AD_FORMAT_SIGNED_INT32: case CU_AD_FORMAT_FLOAT: return 4;
    default: return 4;
    }
}
static uint64_t dim(size_t v) { return v ? v : 1; }

static CUresult array_make(void **out, uint64_t size) {
    NEED_CTX(dev);
    if (fake_phys_take(dev, size, 1) != 0) return CUDA_ERROR_OUT_OF_MEMORY;
    struct fake_array *a = calloc(1, sizeof *a);
    a->dev = dev;
    a->size = size;
    *out = a;
    return CUDA_SUCCESS;
}
static CUresult array_drop(void *h) {
    struct fake_array *a = h;
    if (!a) return CUDA_ERROR_INVALID_VALUE;
    fake_phys_give(a->dev, a->size, 1);
    free(a);
    return CUDA_SUCCESS;
}
API CUresult cuArrayCreate_v2(CUarray *h, const CUDA_ARRAY_DESCRIPTOR *d) {
    FAKE_ENTER();
    if (!h || !d || d->Width == 0) return CUDA_ERROR_INVALID_VALUE;
    return array_make((void **)h, dim(d->Width) * dim(d->Height) * d->NumChannels * format_bytes(d->Format));
}
API CUresult cuArray3DCreate_v2(CUarray *h, const CUDA_ARRAY3D_DESCRIPTOR *d) {
    FAKE_ENTER();
    if (!h || !d || d->Width == 0) return CUDA_ERROR_INVALID_VALUE;
    return array_make((void **)h, dim(d->Width) * dim(d->Height) * dim(d->Depth) * d->NumChannels * format_bytes(d->Format));
}
API CUresult cuArrayDestroy(CUarray h) { FAKE_ENTER(); return array_drop(h); }
API CUresult cuMipmappedArrayCreate(CUmipmappedArray *h, const CUDA_ARRAY3D_DESCRIPTOR *d, unsigned int levels) {
    FAKE_ENTER();
    if (!h || !d || d->Width == 0 || levels == 0) return CUDA_ERROR_INVALID_VALUE;
    uint64_t w = d->Width, hh = dim(d->Height), dd = dim(d->Depth), total = 0;
    for (unsigned l = 0; l < levels; l++) {
        total += w * hh * dd * d->NumChannels * format_bytes(d->Format);
        w = w > 1 ? w / 2 : 1; hh = hh > 1 ? hh / 2 : 1; dd = dd > 1 ? dd / 2 : 1;
    }
    return array_make((void **)h, total);
}
API CUresult cuMipmappedArrayDestroy(CUmipmappedArray h) { FAKE_ENTER(); return array_drop(h); }

/* ---- IPC: the handle carries the exporter's pointer; opening maps nothing new ---- */
API CUresult cuIpcGetMemHandle(CUipcMemHandle *h, CUdeviceptr p) {
    FAKE_ENTER();
    uint64_t base, size;
    if (!h || fake_alloc_find(p, &base, &size) != 0) return CUDA_ERROR_INVALID_VALUE;
    memset(h, 0, sizeof *h);
    memcpy(h->reserved, &base, 8);
    memcpy(h->reserved + 8, &size, 8);
    return CUDA_SUCCESS;
}
API CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *p, CUipcMemHandle h, unsigned int flags) {
    (void)flags;
    FAKE_ENTER();
    if (!p) return CUDA_ERROR_INVALID_VALUE;
    uint64_t base;
    memcpy(&base, h.reserved, 8);
    *p = (CUdeviceptr)base;
    return base ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
API CUresult cuIpcCloseMemHandle(CUdeviceptr p) { FAKE_ENTER(); return p ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
