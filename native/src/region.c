/* The container's shared region: one file, HAMi-core's 1.2 layout followed by this shim's
 * extension (hami_shim.h, README). Creation and validation happen under a short fcntl lock;
 * slot and usage updates under a robust process-shared mutex (a dead holder cannot orphan it). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

_Static_assert(sizeof(hami_device_memory_t) == 64, "device_memory_t");
_Static_assert(sizeof(hami_device_util_t) == 48, "device_util_t");
_Static_assert(sizeof(hami_proc_slot_t) == 1960, "proc slot");
_Static_assert(offsetof(hami_proc_slot_t, status) == 1928, "status");
_Static_assert(offsetof(hami_proc_slot_t, seqlock) == 1936, "seqlock");
_Static_assert(offsetof(hami_region_t, device_num) == 56, "device_num");
_Static_assert(offsetof(hami_region_t, limit) == 1600, "limit");
_Static_assert(offsetof(hami_region_t, sm_limit) == 1728, "sm_limit");
_Static_assert(offsetof(hami_region_t, procs) == 1856, "procs");
_Static_assert(offsetof(hami_region_t, proc_num) == 2008896, "proc_num");
_Static_assert(offsetof(hami_region_t, last_kernel_time) == 2008912, "last_kernel_time");
_Static_assert(sizeof(hami_region_t) == 2008952, "HAMi-core 1.2 region size");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits");

hami_region_t *shim_region;
hami_region_ext_t *shim_ext;
struct shim_config shim_cfg;
_Atomic int shim_ready;

static hami_proc_slot_t *my_slot;
static int my_pid;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t *region_mutex(void) { return (pthread_mutex_t *)shim_ext->lock; }

/* Recompute the aggregate from the slots after a holder died inside the critical section. */
static void repair_aggregate(void) {
    for (int d = 0; d < HAMI_MAX_DEVICES; d++) {
        int64_t sum = 0;
        for (int i = 0; i < shim_region->proc_num && i < HAMI_MAX_PROCS; i++)
            if (shim_region->procs[i].pid) sum += (int64_t)shim_region->procs[i].used[d].total;
        shim_ext->charged[d] = sum;
    }
}

static void lock_region(void) {
    int rc = pthread_mutex_lock(region_mutex());
    if (UNLIKELY(rc == EOWNERDEAD)) {
        LOG_WARN("a process died holding the region lock; usage recomputed from the slots");
        repair_aggregate();
        pthread_mutex_consistent(region_mutex());
    }
}
static void unlock_region(void) { pthread_mutex_unlock(region_mutex()); }

static int pid_alive(int pid) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* Give back the usage of a slot and free it (lock held). */
static void release_slot(hami_proc_slot_t *s) {
    for (int d = 0; d < HAMI_MAX_DEVICES; d++) shim_ext->charged[d] -= (int64_t)s->used[d].total;
    memset(s, 0, sizeof *s);
}

/* Free the slots of dead processes (lock held); returns how many. */
static int reclaim_dead(void) {
    int n = 0;
    for (int i = 0; i < shim_region->proc_num && i < HAMI_MAX_PROCS; i++) {
        hami_proc_slot_t *s = &shim_region->procs[i];
        if (s->pid && s != my_slot && !pid_alive(s->pid)) {
            LOG_INFO("reclaiming the slot of exited process %d", s->pid);
            release_slot(s);
            n++;
        }
    }
    return n;
}

static void register_slot(void) {
    lock_region();
    hami_proc_slot_t *free_slot = NULL;
    for (int pass = 0; pass < 2 && !free_slot; pass++) {
        if (pass == 1) reclaim_dead();
        for (int i = 0; i < shim_region->proc_num && i < HAMI_MAX_PROCS; i++) {
            hami_proc_slot_t *s = &shim_region->procs[i];
            if (s->pid == my_pid) release_slot(s); /* a dead process whose PID we now have */
            if (s->pid == 0 && !free_slot) free_slot = s;
        }
        if (!free_slot && shim_region->proc_num < HAMI_MAX_PROCS) free_slot = &shim_region->procs[shim_region->proc_num++];
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->status = 1;
        free_slot->pid = my_pid;
        shim_region->last_kernel_time = (uint64_t)time(NULL); /* as HAMi-core does at attach */
    } else {
        LOG_ERROR("all %d region slots are in use; this process's memory is not limited", HAMI_MAX_PROCS);
    }
    my_slot = free_slot;
    unlock_region();
}

static void unregister_slot(void) {
    if (!shim_region || !my_slot || my_slot->pid != getpid()) return;
    lock_region();
    release_slot(my_slot);
    my_slot = NULL;
    unlock_region();
}

static void init_fresh(hami_region_t *r, hami_region_ext_t *e) {
    uint64_t generation = memcmp(e->tag, HAMI_EXT_TAG, 8) == 0 ? e->generation : 0;
    memset(r, 0, sizeof *r);
    memset(e, 0, sizeof *e);
    r->major_version = HAMI_REGION_MAJOR;
    r->minor_version = HAMI_REGION_MINOR;
    for (int d = 0; d < HAMI_MAX_DEVICES; d++) {
        r->limit[d] = shim_cfg.mem_limit[d];
        r->sm_limit[d] = shim_cfg.sm_limit[d];
    }
    r->utilization_switch = 1;
    r->recent_kernel = 2;
    r->priority = shim_cfg.priority;
    memcpy(e->tag, HAMI_EXT_TAG, 8);
    e->version = HAMI_EXT_VERSION;
    e->size = sizeof *e;
    e->generation = generation + 1;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init((pthread_mutex_t *)e->lock, &a);
    pthread_mutexattr_destroy(&a);
    atomic_thread_fence(memory_order_release);
    r->initialized_flag = HAMI_REGION_MAGIC;
}

/* Why a mapped file cannot be trusted, or NULL. */
static const char *invalid_reason(const hami_region_t *r, const hami_region_ext_t *e) {
    if (r->initialized_flag != HAMI_REGION_MAGIC) return "no valid header (corrupt)";
    if (r->major_version != HAMI_REGION_MAJOR || r->minor_version != HAMI_REGION_MINOR) return "foreign layout version";
    if (memcmp(e->tag, HAMI_EXT_TAG, 8) != 0) return "written by another library (no hami extension)";
    if (e->version != HAMI_EXT_VERSION || e->size != sizeof *e) return "foreign extension version";
    if (r->proc_num < 0 || r->proc_num > HAMI_MAX_PROCS) return "corrupt process count";
    return NULL;
}

static int any_live_slot(const hami_region_t *r) {
    for (int i = 0; i < r->proc_num; i++)
        if (r->procs[i].pid && pid_alive(r->procs[i].pid)) return 1;
    return 0;
}

static int all_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return 0;
    return 1;
}

/* Map the file at `path`, creating or refreshing it, and register this process's slot, all under
 * the file lock (so no other process can take the region for abandoned in between); NULL with
 * `why` set when untrusted. */
static void *attach_file(const char *path, char *why, int why_len) {
    mode_t old = umask(0);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    umask(old);
    if (fd < 0) { snprintf(why, (size_t)why_len, "cannot open: %s", strerror(errno)); return NULL; }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    while (fcntl(fd, F_SETLKW, &fl) != 0 && errno == EINTR) {}
    void *map = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) { snprintf(why, (size_t)why_len, "cannot stat: %s", strerror(errno)); goto out; }
    int fresh = st.st_size == 0;
    if (fresh && ftruncate(fd, (off_t)HAMI_REGION_FILE_SIZE) != 0) { snprintf(why, (size_t)why_len, "cannot size: %s", strerror(errno)); goto out; }
    if (!fresh && (size_t)st.st_size != HAMI_REGION_FILE_SIZE) {
        snprintf(why, (size_t)why_len, "size %lld is not %zu: %s", (long long)st.st_size, (size_t)HAMI_REGION_FILE_SIZE,
                 (size_t)st.st_size == sizeof(hami_region_t) + 1 ? "a HAMi-core region" : "foreign or corrupt");
        goto out;
    }
    void *m = mmap(NULL, HAMI_REGION_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { snprintf(why, (size_t)why_len, "cannot map: %s", strerror(errno)); goto out; }
    hami_region_t *r = m;
    hami_region_ext_t *e = (hami_region_ext_t *)((char *)m + sizeof(hami_region_t));
    if (fresh || (r->initialized_flag == 0 && all_zero(m, 4096))) {
        init_fresh(r, e);
    } else {
        const char *bad = invalid_reason(r, e);
        if (bad) { snprintf(why, (size_t)why_len, "%s", bad); munmap(m, HAMI_REGION_FILE_SIZE); goto out; }
        if (!any_live_slot(r)) {
            init_fresh(r, e); /* left by processes that are all gone: take this process's limits */
        } else {
            for (int d = 0; d < HAMI_MAX_DEVICES; d++)
                if (r->limit[d] != shim_cfg.mem_limit[d] || r->sm_limit[d] != shim_cfg.sm_limit[d])
                    LOG_WARN("device %d: region limits (%llu bytes, %llu%%) differ from this process's env; the region's hold", d,
                             (unsigned long long)r->limit[d], (unsigned long long)r->sm_limit[d]);
        }
    }
    map = m;
    shim_region = r;
    shim_ext = e;
    register_slot();
out:
    fl.l_type = F_UNLCK;
    fcntl(fd, F_SETLK, &fl);
    close(fd);
    return map;
}

static void attach_private(void) {
    void *m = mmap(NULL, HAMI_REGION_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    init_fresh(m, (hami_region_ext_t *)((char *)m + sizeof(hami_region_t)));
    shim_region = m;
    shim_ext = (hami_region_ext_t *)((char *)m + sizeof(hami_region_t));
}

static void at_fork_child(void) {
    my_slot = NULL;
    my_pid = getpid();
    track_reset_after_fork();
    hooks_reset_after_fork();
    if (shim_region) register_slot();
}

static void at_exit(void) { unregister_slot(); }

void shim_init_slow(void) {
    pthread_mutex_lock(&init_lock);
    if (!atomic_load(&shim_ready)) {
        shim_load_driver();
        shim_read_config(&shim_cfg);
        my_pid = getpid();
        char why[256] = "";
        if (!attach_file(shim_cfg.cache_path, why, sizeof why)) {
            LOG_ERROR("shared region %s not trusted (%s); limits hold for this process only", shim_cfg.cache_path, why);
            attach_private();
            register_slot();
        }
        limiter_configure();
        pthread_atfork(NULL, NULL, at_fork_child);
        atexit(at_exit);
        atomic_store_explicit(&shim_ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&init_lock);
}

static void slot_add(int dev, int64_t bytes, int kind) {
    hami_proc_slot_t *s = my_slot;
    if (!s) return;
    atomic_fetch_add_explicit((_Atomic uint64_t *)&s->seqlock, 1, memory_order_relaxed);
    if (kind == 0) s->used[dev].context_size += (uint64_t)bytes;
    else s->used[dev].data_size += (uint64_t)bytes;
    s->used[dev].total += (uint64_t)bytes;
    atomic_fetch_add_explicit((_Atomic uint64_t *)&s->seqlock, 1, memory_order_release);
}

int region_charge(int dev, uint64_t bytes, int kind) {
    shim_init();
    if ((unsigned)dev >= HAMI_MAX_DEVICES) return 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        lock_region();
        uint64_t limit = shim_region->limit[dev];
        int64_t used = shim_ext->charged[dev];
        if (limit == 0 || (uint64_t)used + bytes <= limit) {
            shim_ext->charged[dev] = used + (int64_t)bytes;
            slot_add(dev, (int64_t)bytes, kind);
            unlock_region();
            return 0;
        }
        int freed = attempt == 0 ? reclaim_dead() : 0;
        unlock_region();
        if (!freed) break;
    }
    LOG_WARN("device %d: %llu more bytes would exceed the limit of %llu (in use %llu)", dev, (unsigned long long)bytes,
             (unsigned long long)shim_region->limit[dev], (unsigned long long)region_usage(dev));
    return -1;
}

void region_uncharge(int dev, uint64_t bytes, int kind) {
    if ((unsigned)dev >= HAMI_MAX_DEVICES || !shim_region) return;
    lock_region();
    shim_ext->charged[dev] -= (int64_t)bytes;
    slot_add(dev, -(int64_t)bytes, kind);
    unlock_region();
}

uint64_t region_usage(int dev) {
    shim_init();
    int64_t v = atomic_load_explicit((_Atomic int64_t *)&shim_ext->charged[dev], memory_order_relaxed);
    return v > 0 ? (uint64_t)v : 0;
}

uint64_t region_limit(int dev) {
    shim_init();
    return (unsigned)dev < HAMI_MAX_DEVICES ? shim_region->limit[dev] : 0;
}

void region_set_devices(int n, const char (*uuids)[HAMI_UUID_LEN]) {
    if (!shim_region || n <= 0) return;
    if (n > HAMI_MAX_DEVICES) n = HAMI_MAX_DEVICES;
    lock_region();
    if (shim_region->device_num == 0) {
        for (int i = 0; i < n; i++) memcpy(shim_region->uuids[i], uuids[i], HAMI_UUID_LEN);
        shim_region->device_num = (uint64_t)n;
    }
    unlock_region();
}
