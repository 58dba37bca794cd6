/*
 * fakecuda.h: control surface of the fake libcuda.so.1 (tests and benchmarks without a GPU).
 *
 * The fake simulates devices in host memory (device pointers are real, mapped host addresses),
 * answers cuGetProcAddress with the variant a real driver would pick for (name, version, flags),
 * and models kernel time on one busy timeline per device. Configuration comes from the
 * environment (read once, at load):
 *   FAKECUDA_DEVICES      device count (default 1, at most 8)
 *   FAKECUDA_MEMORY       bytes per device (default 80 GiB)
 *   FAKECUDA_CTX_BYTES    physical cost of a primary context (default 300 MiB)
 *   FAKECUDA_KERNEL_NS    ns per block of a kernel whose name ends in no digits (default 1000)
 *   FAKECUDA_QUEUE_NS     how far (ns of GPU work) launches may run ahead before they block (100 ms)
 *   FAKECUDA_STATE        file shared by processes for physical usage (default: process-local)
 *   FAKECUDA_VIRTUAL_CLOCK=1  time advances only through sleeps and waits (fakecuda_sleep_ns)
 * A kernel's cost per block is the number its name ends with ("k_250" = 250 ns per block).
 * Callers find these exports with dlsym; every one is prefixed fakecuda_.
 */
#ifndef FAKECUDA_H
#define FAKECUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Calls of the exported function `name` (exact variant, e.g. "cuLaunchKernel_ptsz") so far. */
uint64_t fakecuda_calls(const char *name);
/* Physical bytes in use on `dev` across every process sharing FAKECUDA_STATE (contexts included). */
int64_t fakecuda_physical_used(int dev);
/* Highest value fakecuda_data_used reached: allocations only, contexts excluded. */
int64_t fakecuda_data_peak(int dev);
/* Restart the peak from the current allocated bytes. */
void fakecuda_reset_peak(int dev);
/* Allocated bytes (not contexts) on `dev` across the processes sharing FAKECUDA_STATE. */
int64_t fakecuda_data_used(int dev);
/* The next `count` calls of `name` return `code` without doing anything. */
void fakecuda_fail_next(const char *name, int count, int code);
/* Zero call counts, faults and the kernel timeline (allocations stay). */
void fakecuda_reset(void);
/* The fake's clock in ns (virtual or CLOCK_MONOTONIC) and a sleep that advances it. */
uint64_t fakecuda_now_ns(void);
void fakecuda_sleep_ns(uint64_t ns);
/* Total GPU time (ns) of every kernel enqueued on `dev`; with a synchronize, the busy time. */
uint64_t fakecuda_busy_ns(int dev);
/* The fake's own function for the exported name, as cuGetProcAddress would hand it out. */
void *fakecuda_lookup(const char *name);
/* Make every stream report an active capture (1) or none (0); while capturing, cuEventQuery and
 * cuEventSynchronize fail as in a global-mode capture and are counted. */
void fakecuda_set_capturing(int on);
uint64_t fakecuda_capture_violations(void);
/* cuGetProcAddress requests received so far, and the i-th one (name, version, flags). */
int fakecuda_proc_requests(void);
const char *fakecuda_proc_request(int i, int *version, uint64_t *flags);

#ifdef __cplusplus
}
#endif

#endif /* FAKECUDA_H */
