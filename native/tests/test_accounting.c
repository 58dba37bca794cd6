/* Exact accounting: 10,000 random allocations and frees over five allocation paths under a 2 GiB
 * limit; after every step the region's aggregate, its slots and this test's own bookkeeping agree,
 * an allocation is refused exactly when it would cross the limit, and everything returns to zero. */
#include <cuda.h>
#include <stdlib.h>

#include "check.h"
#include "driver_extra.h"
#include "fakecuda.h"
#include "region_view.h"

#define MiB (1ull << 20)
#define LIMIT (2048 * MiB)
#define OPS 10000

struct live { int kind; uint64_t h, size; };

static CUresult alloc(int kind, uint64_t size, uint64_t *h, uint64_t *charged) {
    size_t pitch;
    CUmemAllocationProp p = {.type = CU_MEM_ALLOCATION_TYPE_PINNED, .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    *charged = size;
    switch (kind) {
    case 0: return cuMemAlloc_v2((CUdeviceptr *)h, size);
    case 1: return cuMemAllocManaged((CUdeviceptr *)h, size, CU_MEM_ATTACH_GLOBAL);
    case 2: return cuMemAllocAsync((CUdeviceptr *)h, size, 0);
    case 3: *charged = (size + (2 * MiB - 1)) & ~(2 * MiB - 1); return cuMemCreate((CUmemGenericAllocationHandle *)h, *charged, &p, 0);
    default: *charged = ((size / 4096 + 511) & ~511ull) * 4096; return cuMemAllocPitch_v2((CUdeviceptr *)h, &pitch, size / 4096, 4096, 4);
    }
}

static CUresult release(const struct live *l) {
    switch (l->kind) {
    case 2: return cuMemFreeAsync(l->h, 0);
    case 3: return cuMemRelease(l->h);
    default: return cuMemFree_v2(l->h);
    }
}

int main(void) {
    srand(12345);
    cuInit(0);
    CUcontext ctx;
    cuCtxCreate_v2(&ctx, 0, 0); /* an explicit context is not charged: usage starts at zero */
    uint64_t h0;
    cuMemAlloc_v2((CUdeviceptr *)&h0, 1);
    cuMemFree_v2(h0);
    hami_region_t *R = region_view(NULL);
    hami_region_ext_t *E = region_ext(R);
    static struct live lives[OPS];
    int n = 0, refused = 0, mismatches = 0, wrong_refusals = 0;
    uint64_t expected = 0;
    for (int op = 0; op < OPS; op++) {
        if (n > 0 && (rand() % 2 == 0)) {
            int i = rand() % n;
            if (release(&lives[i]) != CUDA_SUCCESS) mismatches++;
            expected -= lives[i].size;
            lives[i] = lives[--n];
        } else {
            int kind = rand() % 5;
            uint64_t size = (uint64_t)(rand() % 256 + 1) * MiB - (uint64_t)(rand() % 4096), h = 0, charged;
            CUresult rc = alloc(kind, size, &h, &charged);
            if (rc == CUDA_SUCCESS) {
                lives[n++] = (struct live){kind, h, charged};
                expected += charged;
                if (expected > LIMIT) wrong_refusals++;
            } else {
                refused++;
                if (rc != CUDA_ERROR_OUT_OF_MEMORY || expected + charged <= LIMIT) wrong_refusals++;
            }
        }
        if ((uint64_t)E->charged[0] != expected || region_slot_sum(R, 0) != expected) mismatches++;
    }
    CHECK(mismatches == 0, "%d steps where the region differed from the expected usage", mismatches);
    CHECK(wrong_refusals == 0, "%d allocations refused or granted on the wrong side of the limit", wrong_refusals);
    CHECK(refused > 100, "the limit was reached often enough to matter (%d refusals)", refused);
    while (n > 0) release(&lives[--n]);
    CHECK(E->charged[0] == 0 && region_slot_sum(R, 0) == 0, "everything freed: usage is zero");
    CHECK(fakecuda_data_used(0) == 0, "and the driver agrees: nothing left allocated");
    printf("accounting: %d operations, %d refused at the limit\n", OPS, refused);
    return CHECK_DONE("test_accounting");
}
