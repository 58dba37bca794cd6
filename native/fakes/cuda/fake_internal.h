/* Internal state of the fake driver shared by its source files (not installed, not exported). */
#ifndef FAKE_INTERNAL_H
#define FAKE_INTERNAL_H

#define __CUDA_API_VERSION_INTERNAL 1
#include <cuda.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fakecuda.h"

#define FAKE_MAX_DEVICES 8
#define FAKE_GRANULARITY (2ull << 20)
#define API __attribute__((visibility("default")))

struct fake_device {
    uint64_t total;
    pthread_mutex_t lock;     /* guards the timeline */
    uint64_t busy_until;      /* ns on the fake clock when the queued work ends */
    uint64_t busy_total;      /* ns of kernel time ever enqueued */
    int primary_refs;
    struct fake_ctx *primary;
};

struct fake_ctx {
    int dev;
    int primary;
};

struct fake_config {
    int devices;
    uint64_t memory;
    uint64_t ctx_bytes;
    uint64_t kernel_ns;
    uint64_t queue_ns;
    int virtual_clock;
};

extern struct fake_config fake_cfg;
extern struct fake_device fake_dev[FAKE_MAX_DEVICES];

/* Count a call of `name` and return an injected error, or CUDA_SUCCESS to go on. */
CUresult fake_enter(int *slot, const char *name);
#define FAKE_ENTER()                                  \
    do {                                              \
        static int fake_slot_ = -1;                   \
        CUresult fake_rc_ = fake_enter(&fake_slot_, __func__); \
        if (fake_rc_ != CUDA_SUCCESS) return fake_rc_; \
    } while (0)

void fake_init(void);
/* Physical accounting: 0 on success, -1 when `dev` has no room. */
int fake_phys_take(int dev, uint64_t bytes, int data);
void fake_phys_give(int dev, uint64_t bytes, int data);
/* The device of the calling thread's current context, or -1. */
int fake_current_device(void);
struct fake_ctx *fake_current_ctx(void);
void fake_set_current(struct fake_ctx *ctx);

/* Live allocations: pointer -> size, device (for frees and address ranges). */
void fake_alloc_put(uint64_t ptr, uint64_t size, int dev, int kind);
int fake_alloc_take(uint64_t ptr, uint64_t *size, int *dev, int *kind);
int fake_alloc_find(uint64_t ptr, uint64_t *base, uint64_t *size);
void *fake_map(uint64_t size);
void fake_unmap(void *p, uint64_t size);

/* Kernel timeline. */
uint64_t fake_kernel_cost(CUfunction f, uint64_t blocks);
CUresult fake_run(int dev, uint64_t ns);
uint64_t fake_timeline_end(int dev);
void fake_wait_until(uint64_t t);

#endif
