/* The compute budget belongs to the container, not to each process: two processes launching
 * 0.5 ms kernels flat out for 2 s of real time (the shim's default clock) under a 30 % limit use
 * 30 % of the GPU together, within 5 points. */
#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fakecuda.h"

#define SECONDS 2

static int worker(int fd, uint64_t start) {
    CUcontext ctx;
    CUmodule m;
    CUfunction f;
    cuInit(0);
    cuDevicePrimaryCtxRetain(&ctx, 0);
    cuCtxSetCurrent(ctx);
    cuModuleLoadData(&m, "");
    cuModuleGetFunction(&f, m, "half_ms_1000");
    cuLaunchKernel(f, 500, 1, 1, 64, 1, 1, 0, 0, NULL, NULL); /* attach and learn before the window */
    cuCtxSynchronize();
    while (fakecuda_now_ns() < start) fakecuda_sleep_ns(100000);
    uint64_t b0 = fakecuda_busy_ns(0), end = start + SECONDS * 1000000000ull;
    while (fakecuda_now_ns() < end) cuLaunchKernel(f, 500, 1, 1, 64, 1, 1, 0, 0, NULL, NULL);
    cuCtxSynchronize();
    uint64_t busy[2] = {fakecuda_busy_ns(0) - b0, fakecuda_now_ns() - start};
    return write(fd, busy, sizeof busy) == sizeof busy ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc > 2) return worker(atoi(argv[1]), strtoull(argv[2], NULL, 10));
    int fds[2];
    if (pipe(fds)) return 1;
    char arg[16], when[32], self[4096];
    snprintf(arg, sizeof arg, "%d", fds[1]);
    snprintf(when, sizeof when, "%llu", (unsigned long long)(fakecuda_now_ns() + 500000000ull)); /* common start */
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    pid_t pids[2];
    for (int i = 0; i < 2; i++)
        if ((pids[i] = fork()) == 0) {
            execl(self, self, arg, when, (char *)NULL);
            _exit(127);
        }
    close(fds[1]);
    uint64_t busy = 0, longest = 0, r[2];
    int got = 0;
    while (read(fds[0], r, sizeof r) == sizeof r) {
        busy += r[0];
        if (r[1] > longest) longest = r[1];
        got++;
    }
    for (int i = 0; i < 2; i++) waitpid(pids[i], NULL, 0);
    double share = 100.0 * (double)busy / (double)(SECONDS * 1000000000ull);
    (void)longest;
    CHECK(got == 2, "both workers reported");
    CHECK(share > 25 && share < 35, "two processes under a 30%% limit used %.1f%% together", share);
    printf("limiter: two processes, real clock, limit 30%%: %.1f%% of the GPU together\n", share);
    return CHECK_DONE("test_limiter_shared");
}
