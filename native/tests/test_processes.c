/* Several processes, one region: fork children get their own slot, a SIGKILLed worker's usage is
 * reclaimed, processes racing near the limit never exceed it, 200 processes attach quickly, a
 * stale region takes new limits, and a corrupt or foreign file is reported and left untouched. */
#define _GNU_SOURCE
#include <cuda.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "driver_extra.h"
#include "fakecuda.h"
#include "region_view.h"

#define MiB (1ull << 20)
static char self[4096];

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void context(void) {
    CUcontext c;
    cuInit(0);
    cuCtxCreate_v2(&c, 0, 0);
}

/* Child modes, run through exec so each attaches the region from scratch. */
static int child(const char *mode) {
    context();
    CUdeviceptr p;
    if (strcmp(mode, "attach") == 0) {
        if (cuMemAlloc_v2(&p, MiB) != CUDA_SUCCESS) return 3;
        return cuMemFree_v2(p) == CUDA_SUCCESS ? 0 : 4;
    }
    if (strcmp(mode, "race") == 0) { /* grab 64 MiB blocks until refused; report how many; hold */
        int got = 0;
        while (got < 64 && cuMemAlloc_v2(&p, 64 * MiB) == CUDA_SUCCESS) got++;
        char c = (char)got;
        if (write(3, &c, 1) != 1) return 5;
        if (read(4, &c, 1) != 1) return 6; /* hold until the parent has looked */
        return 0;
    }
    if (strcmp(mode, "hold") == 0) { /* allocate 10 MiB, say so, hold until the parent closes the pipe */
        char c = (char)(cuMemAlloc_v2(&p, 10 * MiB) == CUDA_SUCCESS);
        if (write(3, &c, 1) != 1) return 5;
        while (read(4, &c, 1) == 1) {}
        return 0;
    }
    if (strcmp(mode, "alloc") == 0) { /* allocate what ALLOC_MIB says and report the result code */
        CUresult rc = cuMemAlloc_v2(&p, strtoull(getenv("ALLOC_MIB"), NULL, 10) * MiB);
        printf("rc=%d\n", rc);
        return 0;
    }
    return 2;
}

static pid_t spawn(const char *mode, int in_fd, int out_fd) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (out_fd >= 0) dup2(out_fd, 3);
        if (in_fd >= 0) dup2(in_fd, 4);
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_ok(pid_t pid) {
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_fork_child(hami_region_t *R) {
    CUdeviceptr p, q;
    CHECK(cuMemAlloc_v2(&p, 100 * MiB) == CUDA_SUCCESS, "parent allocates");
    int parent_slot = -1;
    for (int i = 0; i < R->proc_num; i++)
        if (R->procs[i].pid == getpid()) parent_slot = i;
    int fds[2], back[2];
    if (pipe(fds) || pipe(back)) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        int ok = cuMemAlloc_v2(&q, 50 * MiB) == CUDA_SUCCESS;
        c = (char)ok;
        if (write(fds[1], &c, 1) != 1 || read(back[0], &c, 1) != 1) _exit(1);
        exit(0); /* a normal exit: the shim gives the slot back */
    }
    char c = 0;
    CHECK(read(fds[0], &c, 1) == 1 && c == 1, "the fork child allocates");
    int child_slot = -1;
    for (int i = 0; i < R->proc_num; i++)
        if (R->procs[i].pid == pid) child_slot = i;
    CHECK(child_slot >= 0 && child_slot != parent_slot, "the fork child registered its own slot");
    CHECK(child_slot >= 0 && R->procs[child_slot].used[0].total == 50 * MiB, "the child's usage is its own");
    CHECK(R->procs[parent_slot].used[0].total == 100 * MiB, "the parent's slot is unchanged");
    CHECK(region_ext(R)->charged[0] == (int64_t)(150 * MiB), "container usage counts both");
    if (write(back[1], &c, 1) != 1) return;
    CHECK(wait_ok(pid), "child exits");
    CHECK(region_ext(R)->charged[0] == (int64_t)(100 * MiB), "a child that exits gives its usage back");
    cuMemFree_v2(p);
}

static void test_killed_worker(hami_region_t *R) {
    int fds[2];
    if (pipe(fds)) return;
    pid_t pid = fork();
    if (pid == 0) {
        CUdeviceptr p;
        char c = (char)(cuMemAlloc_v2(&p, 700 * MiB) == CUDA_SUCCESS);
        if (write(fds[1], &c, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c = 0;
    CHECK(read(fds[0], &c, 1) == 1 && c == 1, "worker holds 700 MiB");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(region_ext(R)->charged[0] == (int64_t)(700 * MiB), "the dead worker's charge is still recorded");
    CUdeviceptr p;
    CHECK(cuMemAlloc_v2(&p, 600 * MiB) == CUDA_SUCCESS, "an allocation that needs its memory succeeds (reclaimed)");
    CHECK(region_ext(R)->charged[0] == (int64_t)(600 * MiB) && region_slot_sum(R, 0) == 600 * MiB, "only the live usage remains");
    cuMemFree_v2(p);
}

static void test_race(hami_region_t *R) {
    enum { N = 8 };
    int up[2], down[2];
    if (pipe(up) || pipe(down)) return;
    pid_t pids[N];
    fakecuda_reset_peak(0);
    int64_t before = fakecuda_data_used(0); /* the SIGKILLed worker's blocks stay with the fake */
    for (int i = 0; i < N; i++) pids[i] = spawn("race", down[0], up[1]);
    int total = 0;
    for (int i = 0; i < N; i++) {
        char c;
        if (read(up[0], &c, 1) == 1) total += c;
    }
    CHECK(total == 16, "%d processes racing for 64 MiB blocks under 1 GiB got exactly 16 (got %d)", N, total);
    CHECK(region_ext(R)->charged[0] == (int64_t)(total * 64 * MiB), "the region shows what they hold");
    CHECK(fakecuda_data_peak(0) - before <= (int64_t)(1024 * MiB), "the driver never held more than the limit (peak %lld MiB)",
          (long long)((fakecuda_data_peak(0) - before) / (int64_t)MiB));
    char go[N] = {0};
    if (write(down[1], go, N) != N) return;
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= wait_ok(pids[i]);
    CHECK(ok, "racers exit cleanly");
    CHECK(region_ext(R)->charged[0] == 0, "and give everything back");
}

static void test_attach_200(hami_region_t *R) {
    enum { N = 200 };
    static pid_t pids[N];
    double t0 = now_ms();
    for (int i = 0; i < N; i++) pids[i] = spawn("attach", -1, -1);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += wait_ok(pids[i]);
    double ms = now_ms() - t0;
    CHECK(ok == N, "all %d processes attached, allocated and freed (%d ok)", N, ok);
    CHECK(region_ext(R)->charged[0] == 0, "no usage left behind");
    int live = 0;
    for (int i = 0; i < R->proc_num; i++) live += R->procs[i].pid != 0;
    CHECK(live == 1, "only this process still holds a slot (%d)", live);
    CHECK(ms < 20000, "200 attaches took %.0f ms", ms);
    printf("attach: %d processes started, attached, allocated, freed and exited in %.0f ms (%.2f ms each)\n", N, ms, ms / N);
}

/* 20 processes start together on a region nobody has created: exactly one initialises it and
 * nobody takes it for abandoned while the others are registering. */
static void test_cold_start(void) {
    enum { N = 20 };
    char path[512];
    snprintf(path, sizeof path, "%s/cold.cache", getenv("TEST_TMP"));
    setenv(HAMI_ENV_SHARED_CACHE, path, 1);
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) return; /* children keep only fds 3 and 4 */
    pid_t pids[N];
    for (int i = 0; i < N; i++) pids[i] = spawn("hold", down[0], up[1]);
    close(down[0]);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        char c = 0;
        if (read(up[0], &c, 1) == 1) ok += c;
    }
    hami_region_t *r = region_view(path);
    int live = 0;
    for (int i = 0; r && i < r->proc_num; i++) live += r->procs[i].pid != 0;
    CHECK(ok == N && r && live == N, "%d of %d processes started together hold a slot (%d live)", ok, N, live);
    CHECK(r && region_ext(r)->generation == 1, "the region was initialised once (generation %llu)",
          r ? (unsigned long long)region_ext(r)->generation : 0ull);
    CHECK(r && region_ext(r)->charged[0] == (int64_t)(N * 10 * MiB) && region_slot_sum(r, 0) == N * 10 * MiB,
          "and every allocation is counted");
    close(down[1]);
    for (int i = 0; i < N; i++) wait_ok(pids[i]);
}

/* Run "alloc" in a fresh process on `path` and return its stderr+stdout. */
static void run_alloc(const char *path, const char *limit, const char *mib, char *out, size_t len) {
    char outfile[512];
    snprintf(outfile, sizeof outfile, "%s/alloc.out", getenv("TEST_TMP"));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(outfile, "w", stdout);
        (void)f;
        dup2(1, 2);
        setenv(HAMI_ENV_SHARED_CACHE, path, 1);
        setenv(HAMI_ENV_MEMORY_LIMIT, limit, 1);
        setenv("ALLOC_MIB", mib, 1);
        setenv(HAMI_ENV_LOG_LEVEL, "2", 1);
        execl(self, self, "alloc", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, NULL, 0);
    FILE *f = fopen(outfile, "r");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
}

static uint64_t checksum(const char *path) {
    FILE *f = fopen(path, "rb");
    uint64_t h = 1469598103934665603ull;
    int c;
    while (f && (c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
    if (f) fclose(f);
    return h;
}

static void test_untrusted_files(void) {
    char path[512], out[4096];
    const char *tmp = getenv("TEST_TMP");
    /* A HAMi-core file: its layout size + 1 byte, valid magic, no extension. */
    snprintf(path, sizeof path, "%s/hami-core.cache", tmp);
    FILE *f = fopen(path, "wb");
    static hami_region_t hr;
    hr.initialized_flag = HAMI_REGION_MAGIC;
    hr.major_version = 1;
    hr.minor_version = 2;
    fwrite(&hr, sizeof hr, 1, f);
    fputc(0, f);
    fclose(f);
    uint64_t before = checksum(path);
    run_alloc(path, "1g", "2000", out, sizeof out);
    CHECK(strstr(out, "not trusted") && strstr(out, "HAMi-core"), "a HAMi-core file is reported: %s", out);
    CHECK(strstr(out, "rc=2"), "limits still hold in that process: %s", out);
    CHECK(checksum(path) == before, "the foreign file is left untouched");
    /* A corrupt file of the right size. */
    snprintf(path, sizeof path, "%s/corrupt.cache", tmp);
    f = fopen(path, "wb");
    for (size_t i = 0; i < HAMI_REGION_FILE_SIZE; i++) fputc((int)(i * 7 + 3) & 0xff, f);
    fclose(f);
    before = checksum(path);
    run_alloc(path, "1g", "512", out, sizeof out);
    CHECK(strstr(out, "not trusted") && strstr(out, "corrupt"), "a corrupt file is reported: %s", out);
    CHECK(strstr(out, "rc=0"), "the process still runs: %s", out);
    CHECK(checksum(path) == before, "the corrupt file is left untouched");
    /* A stale region from processes that are gone takes the new process's limits. */
    snprintf(path, sizeof path, "%s/stale.cache", tmp);
    run_alloc(path, "1g", "10", out, sizeof out);
    run_alloc(path, "3g", "2000", out, sizeof out);
    CHECK(strstr(out, "rc=0"), "a region left with 1g takes the next process's 3g: %s", out);
    hami_region_t *r = region_view(path);
    CHECK(r && r->limit[0] == 3ull << 30, "the file now records 3 GiB");
}

int main(int argc, char **argv) {
    if (readlink("/proc/self/exe", self, sizeof self - 1) < 0) return 1;
    if (argc > 1) return child(argv[1]);
    context();
    CUdeviceptr p;
    cuMemAlloc_v2(&p, 1);
    cuMemFree_v2(p);
    hami_region_t *R = region_view(NULL);
    CHECK(R != NULL, "region");
    if (!R) return CHECK_DONE("test_processes");
    test_fork_child(R);
    test_killed_worker(R);
    test_race(R);
    test_attach_200(R);
    test_untrusted_files();
    test_cold_start();
    return CHECK_DONE("test_processes");
}
