/*
 * hami_shim.h: the contract of libvgpu.so with the container (environment) and the host
 * (shared region file). Python mirrors the names in hami_core/isolation/shim.py; a test
 * compares the two lists. Layout: native/README.md; HAMi-core facts: specs/shim.md 2-3.
 */
#ifndef HAMI_SHIM_H
#define HAMI_SHIM_H

#include <stdint.h>

/* ---- environment (names and units follow HAMi-core, specs/shim.md section 2) ---- */
/* Memory limit, every device: bytes, or an integer with one suffix k/K, m/M, g/G (x1024 steps). */
#define HAMI_ENV_MEMORY_LIMIT "CUDA_DEVICE_MEMORY_LIMIT"
/* Per-device memory limit: HAMI_ENV_MEMORY_LIMIT_PREFIX "<i>", i = the container's CUDA ordinal. */
#define HAMI_ENV_MEMORY_LIMIT_PREFIX "CUDA_DEVICE_MEMORY_LIMIT_"
/* Compute limit in percent, every device; unset, 0 or >= 100 = no limit. */
#define HAMI_ENV_SM_LIMIT "CUDA_DEVICE_SM_LIMIT"
#define HAMI_ENV_SM_LIMIT_PREFIX "CUDA_DEVICE_SM_LIMIT_"
/* Path of the container's shared region file. */
#define HAMI_ENV_SHARED_CACHE "CUDA_DEVICE_MEMORY_SHARED_CACHE"
/* Priority, lower = more important (HAMi: 0 high, 1 low, default 1). */
#define HAMI_ENV_TASK_PRIORITY "CUDA_TASK_PRIORITY"
/* "disable" turns the compute limit off; anything else keeps it on (see README: policy). */
#define HAMI_ENV_CORE_POLICY "GPU_CORE_UTILIZATION_POLICY"
/* 0-4; 2 (default) prints warnings and errors to stderr. */
#define HAMI_ENV_LOG_LEVEL "LIBCUDA_LOG_LEVEL"
/* Parsed for compatibility; the shim refuses over-limit allocations instead of killing. */
#define HAMI_ENV_ACTIVE_OOM_KILLER "ACTIVE_OOM_KILLER"
/* Minimum seconds between two last_kernel_time updates in the region. */
#define HAMI_ENV_RECORD_KERNEL_INTERVAL "RECORD_KERNEL_INTERVAL"
/* HAMi-core's self-dlopen path; read for compatibility, this shim finds itself with dladdr. */
#define HAMI_ENV_REDIRECT "CUDA_REDIRECT"

#define HAMI_DEFAULT_SHARED_CACHE "/tmp/cudevshr.cache"
#define HAMI_DEFAULT_PRIORITY 1
/* Unit multipliers of the limit suffixes. */
#define HAMI_UNIT_K 1024ull
#define HAMI_UNIT_M (1024ull * 1024ull)
#define HAMI_UNIT_G (1024ull * 1024ull * 1024ull)

/* What a primary context is charged against the limit (HAMi measures it with NVML; see README). */
#define HAMI_PRIMARY_CONTEXT_CHARGE (256ull << 20)

/* ---- shared region: HAMi-core 1.2 layout, then this shim's extension ---- */
#define HAMI_REGION_MAGIC 19920718
#define HAMI_REGION_MAJOR 1u
#define HAMI_REGION_MINOR 2u
#define HAMI_MAX_DEVICES 16
#define HAMI_MAX_PROCS 1024
#define HAMI_UUID_LEN 96

typedef struct {
    uint64_t context_size, module_size, data_size, offset, total, unused[3];
} hami_device_memory_t;

typedef struct {
    uint64_t dec_util, enc_util, sm_util, unused[3];
} hami_device_util_t;

typedef struct {
    int32_t pid;     /* container PID, 0 = free slot */
    int32_t hostpid; /* 0: this shim does not detect host PIDs */
    hami_device_memory_t used[HAMI_MAX_DEVICES];
    uint64_t monitorused[HAMI_MAX_DEVICES];
    hami_device_util_t device_util[HAMI_MAX_DEVICES];
    int32_t status; /* 1 running, 0 exited */
    int32_t pad;
    uint64_t seqlock; /* odd while the owner updates used[] */
    uint64_t unused[2];
} hami_proc_slot_t;

typedef struct {
    int32_t initialized_flag; /* HAMI_REGION_MAGIC once valid */
    uint32_t major_version, minor_version;
    int32_t sm_init_flag;
    uint64_t owner_pid;   /* unused (0) */
    uint8_t sem[32];      /* HAMi-core's semaphore; unused (zero) */
    uint64_t device_num;
    char uuids[HAMI_MAX_DEVICES][HAMI_UUID_LEN];
    uint64_t limit[HAMI_MAX_DEVICES];    /* bytes, 0 = none */
    uint64_t sm_limit[HAMI_MAX_DEVICES]; /* percent, 100 = none */
    hami_proc_slot_t procs[HAMI_MAX_PROCS];
    int32_t proc_num; /* slots ever used (a prefix); freed slots stay with pid 0 */
    int32_t utilization_switch;
    int32_t recent_kernel; /* priority handshake with the host monitor; < 0 = blocked */
    int32_t priority;
    uint64_t last_kernel_time; /* Unix seconds */
    uint8_t sem_postinit[32];  /* unused (zero) */
} hami_region_t;

#define HAMI_EXT_TAG "HAMISHM1"
#define HAMI_EXT_VERSION 1u

/* The extension after the HAMi layout: HAMi's monitor maps only sizeof(hami_region_t). */
typedef struct {
    char tag[8];            /* HAMI_EXT_TAG */
    uint32_t version;       /* HAMI_EXT_VERSION */
    uint32_t size;          /* sizeof(hami_region_ext_t) */
    uint8_t lock[64];       /* robust process-shared mutex guarding slots and charged[] */
    int64_t charged[HAMI_MAX_DEVICES];   /* bytes charged per device: sum of live slots' used[].total */
    int64_t tokens[HAMI_MAX_DEVICES];    /* compute budget per device, ns of GPU time */
    uint64_t refilled[HAMI_MAX_DEVICES]; /* clock (ns) of the last budget refill */
    uint64_t generation;    /* how many times the file was (re)initialised */
    uint64_t reserved[31];
} hami_region_ext_t;

#define HAMI_REGION_FILE_SIZE (sizeof(hami_region_t) + sizeof(hami_region_ext_t))

#endif /* HAMI_SHIM_H */
