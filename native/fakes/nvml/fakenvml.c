/*
 * fakenvml.c: a fake libnvidia-ml.so.1 for machines without an NVIDIA GPU.
 *
 * The real nvidia-ml-py binding (and any C program) loads it through the ordinary library search
 * path. Devices come from the JSON file named by FAKE_NVML_CONFIG, read when nvmlInit takes the
 * first reference; see README.md for the format. The ABI follows nvml.h (NVML API version 12/13):
 * handles are pointers, strings are NUL-terminated into caller buffers, structs are filled in
 * NVML's layout, and failures use NVML's return codes (UNINITIALIZED before init,
 * INVALID_ARGUMENT for bad handles and NULL pointers, NOT_SUPPORTED for queries a device does not
 * support, INSUFFICIENT_SIZE for short buffers, TIMEOUT when no event arrives).
 *
 * XID events reach event sets two ways: fakenvml_inject_xid() in-process, and lines
 * "<uuid-or-index> <xid>" appended to the events file (FAKE_NVML_EVENTS or the config's
 * "events_file"), which nvmlEventSetWait polls, so a test can inject into a running plugin.
 */
#include "fakenvml.h"
#include "json.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

/* --- the slice of nvml.h this fake implements --------------------------------------------- */

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_NVLINK_MAX_LINKS 36
#define NVML_TOPOLOGY_INTERNAL 0
#define NVML_TOPOLOGY_NODE 40
#define NVML_TOPOLOGY_SYSTEM 50

#define EVENT_SINGLE_BIT_ECC 0x1ULL
#define EVENT_DOUBLE_BIT_ECC 0x2ULL
#define EVENT_XID_CRITICAL 0x8ULL
#define SUPPORTED_EVENTS (EVENT_SINGLE_BIT_ECC | EVENT_DOUBLE_BIT_ECC | EVENT_XID_CRITICAL)

#define NVML_MEMORY_V2 0x02000028u

typedef struct {
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} nvmlPciInfo_t;

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

struct fake_device;
typedef struct fake_device *nvmlDevice_t;

typedef struct {
    nvmlDevice_t device;
    unsigned long long eventType;
    unsigned long long eventData;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlEventData_t;

struct event_set;
typedef struct event_set *nvmlEventSet_t;

/* --- state --------------------------------------------------------------------------------- */

#define MAX_DEVICES 64
#define MAX_EVENTS 4096
#define POLL_NS 10000000L

struct fake_device {
    unsigned int index;
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE];
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE];
    char bus_id[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
    unsigned int pci_device_id;
    unsigned long long memory_bytes;
    int memory_supported;
    int numa; /* -1: the driver reports no NUMA affinity (NOT_SUPPORTED) */
    int mig_mode;
    int cc_major, cc_minor;
    int xid_events;
    int nvlink_supported;
    int link_peer[NVML_NVLINK_MAX_LINKS]; /* peer index per link; -1 = link down */
};

struct event {
    unsigned int device;
    unsigned long long xid;
};

struct event_set {
    unsigned int magic;
    unsigned long long mask[MAX_DEVICES];
    unsigned long long next_seq;
    struct event_set *next;
};

#define SET_MAGIC 0x5e7e7e75u

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_device devices[MAX_DEVICES];
static unsigned int device_count;
static int topology[MAX_DEVICES][MAX_DEVICES];
static char driver_version[80] = "550.54.15";
static int cuda_version = 12040;
static char events_path[4096];
static long events_offset;
static struct event events[MAX_EVENTS];
static unsigned long long event_seq; /* sequence number of the next event */
static struct event_set *sets;
static unsigned int init_refs;
static unsigned int init_calls;
static char last_error[512];

/* --- configuration ------------------------------------------------------------------------- */

static int config_error(const char *fmt, const char *detail) {
    snprintf(last_error, sizeof last_error, fmt, detail);
    fprintf(stderr, "fake NVML: %s\n", last_error);
    return -1;
}

static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return NULL;
    size_t size = 0, capacity = 4096;
    char *text = malloc(capacity);
    size_t got;
    while (text != NULL && (got = fread(text + size, 1, capacity - size - 1, file)) > 0) {
        size += got;
        if (capacity - size < 2) {
            char *bigger = realloc(text, capacity * 2);
            if (bigger == NULL) { free(text); text = NULL; break; }
            text = bigger;
            capacity *= 2;
        }
    }
    fclose(file);
    if (text != NULL) text[size] = '\0';
    return text;
}

static int copy_string(char *out, size_t size, const struct json *value, const char *what) {
    if (value == NULL || value->kind != JSON_STRING || value->string[0] == '\0')
        return config_error("%s must be a non-empty string", what);
    if (strlen(value->string) >= size) return config_error("%s is too long", what);
    strcpy(out, value->string);
    return 0;
}

static int integer(const struct json *value, long long low, long long high, long long fallback,
                   long long *out) {
    if (value == NULL) { *out = fallback; return 0; }
    if (value->kind != JSON_NUMBER || value->number != (double)(long long)value->number ||
        value->number < (double)low || value->number > (double)high)
        return -1;
    *out = (long long)value->number;
    return 0;
}

static int boolean(const struct json *value, int fallback, int *out) {
    if (value == NULL) { *out = fallback; return 0; }
    if (value->kind != JSON_BOOL) return -1;
    *out = (int)value->number;
    return 0;
}

static int load_device(const struct json *raw, unsigned int index) {
    struct fake_device *d = &devices[index];
    char where[64];
    long long number;
    memset(d, 0, sizeof *d);
    d->index = index;
    snprintf(where, sizeof where, "devices[%u]", index);
    if (raw == NULL || raw->kind != JSON_OBJECT) return config_error("%s must be an object", where);
    if (copy_string(d->uuid, sizeof d->uuid, json_get(raw, "uuid"), "a device's uuid") ||
        copy_string(d->name, sizeof d->name, json_get(raw, "name"), "a device's name"))
        return -1;
    const struct json *bus = json_get(raw, "pci_bus_id");
    if (bus != NULL) {
        if (copy_string(d->bus_id, sizeof d->bus_id, bus, "a device's pci_bus_id")) return -1;
    } else {
        snprintf(d->bus_id, sizeof d->bus_id, "00000000:%02X:00.0", 0x10 + index);
    }
    const struct json *memory = json_get(raw, "memory_mib");
    d->memory_supported = memory != NULL && memory->kind != JSON_NULL;
    if (d->memory_supported) {
        if (integer(memory, 1, 1LL << 32, 0, &number)) return config_error("%s.memory_mib must be a positive integer or null", where);
        d->memory_bytes = (unsigned long long)number << 20;
    }
    const struct json *numa = json_get(raw, "numa");
    if (numa != NULL && numa->kind == JSON_NULL) {
        d->numa = -1;
    } else {
        if (integer(numa, 0, 1024, 0, &number)) return config_error("%s.numa must be an integer from 0 or null", where);
        d->numa = (int)number;
    }
    if (boolean(json_get(raw, "mig_mode"), 0, &d->mig_mode)) return config_error("%s.mig_mode must be true or false", where);
    if (boolean(json_get(raw, "xid_events"), 1, &d->xid_events)) return config_error("%s.xid_events must be true or false", where);
    if (integer(json_get(raw, "pci_device_id"), 0, 0xFFFFFFFFLL, 0x20B210DE, &number)) return config_error("%s.pci_device_id must be a 32-bit integer", where);
    d->pci_device_id = (unsigned int)number;
    const struct json *cc = json_get(raw, "compute_capability");
    d->cc_major = 8;
    d->cc_minor = 0;
    if (cc != NULL && (cc->kind != JSON_STRING || sscanf(cc->string, "%d.%d", &d->cc_major, &d->cc_minor) != 2))
        return config_error("%s.compute_capability must be like \"8.0\"", where);
    for (int link = 0; link < NVML_NVLINK_MAX_LINKS; link++) d->link_peer[link] = -1;
    return 0;
}

static int load_matrix(const struct json *raw, const char *what, int lowest, int highest,
                       int out[MAX_DEVICES][MAX_DEVICES]) {
    if (json_length(raw) != device_count) return config_error("%s must have one row per device", what);
    for (unsigned i = 0; i < device_count; i++) {
        const struct json *row = json_at(raw, i);
        if (json_length(row) != device_count) return config_error("%s must have one column per device", what);
        for (unsigned j = 0; j < device_count; j++) {
            long long value;
            if (row->kind != JSON_ARRAY || integer(json_at(row, j), lowest, highest, 0, &value))
                return config_error("%s holds a value out of range", what);
            out[i][j] = (int)value;
        }
    }
    return 0;
}

static int load_config(void) {
    const char *path = getenv(FAKENVML_CONFIG_ENV);
    if (path == NULL || path[0] == '\0') {
        snprintf(last_error, sizeof last_error, "%s is not set", FAKENVML_CONFIG_ENV);
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    char *text = read_file(path);
    if (text == NULL) {
        config_error("cannot read the configuration %s", path);
        return NVML_ERROR_DRIVER_NOT_LOADED;
    }
    char error[256];
    struct json *root = json_parse(text, error, sizeof error);
    free(text);
    if (root == NULL) {
        config_error("configuration is not JSON: %s", error);
        return NVML_ERROR_UNKNOWN;
    }
    int failed = 0;
    const struct json *list = json_get(root, "devices");
    long long number;
    device_count = 0;
    if (root->kind != JSON_OBJECT || list == NULL || list->kind != JSON_ARRAY) {
        failed = config_error("%s", "the configuration needs a \"devices\" list");
    } else if (json_length(list) > MAX_DEVICES) {
        failed = config_error("%s", "too many devices (at most 64)");
    } else {
        unsigned n = (unsigned)json_length(list);
        for (unsigned i = 0; i < n && !failed; i++) failed = load_device(json_at(list, i), i);
        for (unsigned i = 0; i < n && !failed; i++)
            for (unsigned j = 0; j < i && !failed; j++)
                if (strcmp(devices[i].uuid, devices[j].uuid) == 0)
                    failed = config_error("duplicate device uuid %s", devices[i].uuid);
        if (!failed) device_count = n;
    }
    const struct json *driver = json_get(root, "driver_version");
    if (!failed && driver != NULL) failed = copy_string(driver_version, sizeof driver_version, driver, "driver_version");
    if (!failed && integer(json_get(root, "cuda_driver_version"), 1000, 99999, 12040, &number))
        failed = config_error("%s", "cuda_driver_version must be an integer like 12040");
    if (!failed) cuda_version = (int)number;
    for (unsigned i = 0; i < device_count; i++)
        for (unsigned j = 0; j < device_count; j++)
            topology[i][j] = i == j ? NVML_TOPOLOGY_INTERNAL
                             : devices[i].numa == devices[j].numa ? NVML_TOPOLOGY_NODE
                                                                  : NVML_TOPOLOGY_SYSTEM;
    const struct json *levels = json_get(root, "topology");
    if (!failed && levels != NULL) failed = load_matrix(levels, "topology", 0, 50, topology);
    const struct json *nvlink = json_get(root, "nvlink");
    if (!failed && nvlink != NULL) {
        static int links[MAX_DEVICES][MAX_DEVICES];
        failed = load_matrix(nvlink, "nvlink", 0, NVML_NVLINK_MAX_LINKS, links);
        for (unsigned i = 0; i < device_count && !failed; i++) {
            int used = 0;
            devices[i].nvlink_supported = 1;
            for (unsigned j = 0; j < device_count; j++) {
                if (i == j) continue;
                for (int k = 0; k < links[i][j]; k++) {
                    if (used == NVML_NVLINK_MAX_LINKS) {
                        failed = config_error("%s has more NVLinks than NVML_NVLINK_MAX_LINKS", devices[i].uuid);
                        break;
                    }
                    devices[i].link_peer[used++] = (int)j;
                }
            }
        }
    }
    events_path[0] = '\0';
    const char *events_env = getenv(FAKENVML_EVENTS_ENV);
    const struct json *events_file = json_get(root, "events_file");
    if (!failed && events_env != NULL && events_env[0] != '\0') {
        snprintf(events_path, sizeof events_path, "%s", events_env);
    } else if (!failed && events_file != NULL) {
        failed = copy_string(events_path, sizeof events_path, events_file, "events_file");
    }
    json_free(root);
    if (failed) {
        device_count = 0;
        return NVML_ERROR_UNKNOWN;
    }
    /* Only events written after init count, as on a real driver. */
    events_offset = 0;
    if (events_path[0] != '\0') {
        FILE *file = fopen(events_path, "rb");
        if (file != NULL) {
            fseek(file, 0, SEEK_END);
            events_offset = ftell(file);
            fclose(file);
        }
    }
    last_error[0] = '\0';
    return NVML_SUCCESS;
}

/* --- init and helpers ---------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_refs == 0) ret = load_config();
    if (ret == NVML_SUCCESS) {
        init_refs++;
        init_calls++;
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

EXPORT nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (init_refs == 0) {
        ret = NVML_ERROR_UNINITIALIZED;
    } else if (--init_refs == 0) {
        device_count = 0;
        while (sets != NULL) {
            struct event_set *next = sets->next;
            sets->magic = 0;
            free(sets);
            sets = next;
        }
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

/* The device behind `handle`, or NULL; sets *ret to NVML's code for the failure. */
static struct fake_device *lookup(nvmlDevice_t handle, nvmlReturn_t *ret) {
    if (init_refs == 0) { *ret = NVML_ERROR_UNINITIALIZED; return NULL; }
    struct fake_device *d = handle;
    if (d < devices || d >= devices + device_count || (size_t)((char *)d - (char *)devices) % sizeof *d != 0) {
        *ret = NVML_ERROR_INVALID_ARGUMENT;
        return NULL;
    }
    *ret = NVML_SUCCESS;
    return d;
}

static nvmlReturn_t put_string(char *out, unsigned int length, const char *value) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

#define DEVICE_CALL(handle, body)                                  \
    do {                                                           \
        nvmlReturn_t ret_;                                         \
        pthread_mutex_lock(&lock);                                 \
        struct fake_device *d = lookup((handle), &ret_);           \
        if (d != NULL) { body }                                    \
        pthread_mutex_unlock(&lock);                               \
        return ret_;                                               \
    } while (0)

/* --- system -------------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    return put_string(version, length, driver_version);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    char text[96];
    snprintf(text, sizeof text, "12.%s", driver_version);
    return put_string(version, length, text);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *version = cuda_version;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

/* --- enumeration --------------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = device_count;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= device_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned i = 0; i < device_count; i++)
        if (strcmp(devices[i].uuid, uuid) == 0) {
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, nvmlDevice_t *device) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (bus_id == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (unsigned i = 0; i < device_count; i++)
        if (strcasecmp(devices[i].bus_id, bus_id) == 0) {
            *device = &devices[i];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *bus_id, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByPciBusId_v2(bus_id, device);
}

/* --- identity ------------------------------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    DEVICE_CALL(device, {
        if (index == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else *index = d->index;
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor) {
    DEVICE_CALL(device, {
        if (minor == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else *minor = d->index;
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    DEVICE_CALL(device, { ret_ = put_string(uuid, length, d->uuid); });
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    DEVICE_CALL(device, { ret_ = put_string(name, length, d->name); });
}

static void fill_pci(const struct fake_device *d, nvmlPciInfo_t *pci) {
    unsigned domain = 0, bus = 0, dev = 0;
    memset(pci, 0, sizeof *pci);
    sscanf(d->bus_id, "%x:%x:%x", &domain, &bus, &dev);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", domain & 0xFFFF, bus, dev);
    snprintf(pci->busId, sizeof pci->busId, "%s", d->bus_id);
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    pci->pciDeviceId = d->pci_device_id;
    pci->pciSubSystemId = 0x145F10DE;
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    DEVICE_CALL(device, {
        if (pci == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else fill_pci(d, pci);
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor) {
    DEVICE_CALL(device, {
        if (major == NULL || minor == NULL) {
            ret_ = NVML_ERROR_INVALID_ARGUMENT;
        } else {
            *major = d->cc_major;
            *minor = d->cc_minor;
        }
    });
}

/* --- memory, NUMA, MIG --------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    DEVICE_CALL(device, {
        if (memory == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (!d->memory_supported) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else {
            memory->total = d->memory_bytes;
            memory->used = 0;
            memory->free = d->memory_bytes;
        }
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    DEVICE_CALL(device, {
        if (memory == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (memory->version != NVML_MEMORY_V2) ret_ = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
        else if (!d->memory_supported) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else {
            memory->total = d->memory_bytes;
            memory->reserved = 0;
            memory->used = 0;
            memory->free = d->memory_bytes;
        }
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetNumaNodeId(nvmlDevice_t device, unsigned int *node) {
    DEVICE_CALL(device, {
        if (node == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (d->numa < 0) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else *node = (unsigned int)d->numa;
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *current, unsigned int *pending) {
    DEVICE_CALL(device, {
        if (current == NULL || pending == NULL) {
            ret_ = NVML_ERROR_INVALID_ARGUMENT;
        } else if (d->cc_major < 8) {
            ret_ = NVML_ERROR_NOT_SUPPORTED; /* MIG exists from Ampere on */
        } else {
            *current = (unsigned int)d->mig_mode;
            *pending = (unsigned int)d->mig_mode;
        }
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *rates) {
    DEVICE_CALL(device, {
        if (rates == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else rates->gpu = rates->memory = 0;
    });
}

static nvmlReturn_t no_processes(nvmlDevice_t device, unsigned int *count) {
    DEVICE_CALL(device, {
        if (count == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else *count = 0;
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t device, unsigned int *count, void *infos) {
    (void)infos;
    return no_processes(device, count);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, void *infos) {
    (void)infos;
    return no_processes(device, count);
}
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, void *infos) {
    (void)infos;
    return no_processes(device, count);
}

/* --- topology and NVLink ------------------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t first, nvmlDevice_t second, int *level) {
    nvmlReturn_t ret;
    pthread_mutex_lock(&lock);
    struct fake_device *a = lookup(first, &ret);
    struct fake_device *b = a != NULL ? lookup(second, &ret) : NULL;
    if (b != NULL) {
        if (level == NULL) ret = NVML_ERROR_INVALID_ARGUMENT;
        else *level = topology[a->index][b->index];
    }
    pthread_mutex_unlock(&lock);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, int *active) {
    DEVICE_CALL(device, {
        if (active == NULL || link >= NVML_NVLINK_MAX_LINKS) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (!d->nvlink_supported) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else *active = d->link_peer[link] >= 0;
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci) {
    DEVICE_CALL(device, {
        if (pci == NULL || link >= NVML_NVLINK_MAX_LINKS) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (!d->nvlink_supported) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else if (d->link_peer[link] < 0) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else fill_pci(&devices[d->link_peer[link]], pci);
    });
}

EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo(nvmlDevice_t device, unsigned int link, nvmlPciInfo_t *pci) {
    return nvmlDeviceGetNvLinkRemotePciInfo_v2(device, link, pci);
}

/* --- events -------------------------------------------------------------------------------- */

static int queue_event(unsigned int index, unsigned long long xid) {
    if (index >= device_count) return -1;
    events[event_seq % MAX_EVENTS] = (struct event){index, xid};
    event_seq++;
    return 0;
}

/* Queue the complete lines appended to the events file since the last poll (lock held). */
static void poll_events_file(void) {
    if (events_path[0] == '\0') return;
    FILE *file = fopen(events_path, "rb");
    if (file == NULL) return;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    if (size < events_offset) events_offset = 0; /* truncated or replaced: read it afresh */
    fseek(file, events_offset, SEEK_SET);
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, file)) > 0) {
        if (line[length - 1] != '\n') break; /* a line still being written */
        events_offset += (long)length;
        char who[128];
        unsigned long long xid;
        if (sscanf(line, "%127s %llu", who, &xid) != 2) continue;
        char *end;
        unsigned long index = strtoul(who, &end, 10);
        if (*end != '\0') {
            index = device_count;
            for (unsigned i = 0; i < device_count; i++)
                if (strcmp(devices[i].uuid, who) == 0) index = i;
        }
        queue_event((unsigned int)index, xid);
    }
    free(line);
    fclose(file);
}

static int valid_set(nvmlEventSet_t set) {
    for (struct event_set *s = sets; s != NULL; s = s->next)
        if (s == set && s->magic == SET_MAGIC) return 1;
    return 0;
}

EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
    if (init_refs == 0) return NVML_ERROR_UNINITIALIZED;
    if (set == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    struct event_set *created = calloc(1, sizeof *created);
    if (created == NULL) return NVML_ERROR_UNKNOWN;
    pthread_mutex_lock(&lock);
    poll_events_file();
    created->magic = SET_MAGIC;
    created->next_seq = event_seq;
    created->next = sets;
    sets = created;
    pthread_mutex_unlock(&lock);
    *set = created;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
    pthread_mutex_lock(&lock);
    nvmlReturn_t ret = init_refs == 0 ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
    for (struct event_set **s = &sets; init_refs != 0 && *s != NULL; s = &(*s)->next)
        if (*s == set) {
            *s = set->next;
            set->magic = 0;
            free(set);
            ret = NVML_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&lock);
    return ret;
}

EXPORT nvmlReturn_t nvmlDeviceGetSupportedEventTypes(nvmlDevice_t device, unsigned long long *types) {
    DEVICE_CALL(device, {
        if (types == NULL) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else *types = d->xid_events ? SUPPORTED_EVENTS : 0;
    });
}

EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
    DEVICE_CALL(device, {
        if (!valid_set(set)) ret_ = NVML_ERROR_INVALID_ARGUMENT;
        else if (!d->xid_events || (types & ~SUPPORTED_EVENTS) != 0) ret_ = NVML_ERROR_NOT_SUPPORTED;
        else set->mask[d->index] |= types;
    });
}

/* The next event for `set`, or 0 (lock held). */
static int next_event(struct event_set *set, nvmlEventData_t *data) {
    if (event_seq - set->next_seq > MAX_EVENTS) set->next_seq = event_seq - MAX_EVENTS; /* overrun */
    while (set->next_seq < event_seq) {
        struct event e = events[set->next_seq % MAX_EVENTS];
        set->next_seq++;
        if (set->mask[e.device] & EVENT_XID_CRITICAL) {
            data->device = &devices[e.device];
            data->eventType = EVENT_XID_CRITICAL;
            data->eventData = e.xid;
            data->gpuInstanceId = 0xFFFFFFFFu;
            data->computeInstanceId = 0xFFFFFFFFu;
            return 1;
        }
    }
    return 0;
}

EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    if (data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    struct timespec start, now, pause = {0, POLL_NS};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pthread_mutex_lock(&lock);
        if (init_refs == 0 || !valid_set(set)) {
            nvmlReturn_t ret = init_refs == 0 ? NVML_ERROR_UNINITIALIZED : NVML_ERROR_INVALID_ARGUMENT;
            pthread_mutex_unlock(&lock);
            return ret;
        }
        poll_events_file();
        int found = next_event(set, data);
        pthread_mutex_unlock(&lock);
        if (found) return NVML_SUCCESS;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long waited_ms = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000LL;
        if (waited_ms >= timeout_ms) return NVML_ERROR_TIMEOUT;
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
        pause.tv_nsec = POLL_NS;
    }
}

EXPORT nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeout_ms) {
    return nvmlEventSetWait_v2(set, data, timeout_ms);
}

/* --- introspection (fakenvml.h) ------------------------------------------------------------ */

EXPORT int fakenvml_inject_xid(unsigned int index, unsigned long long xid) {
    pthread_mutex_lock(&lock);
    int ret = queue_event(index, xid);
    pthread_mutex_unlock(&lock);
    return ret;
}

EXPORT unsigned int fakenvml_device_count(void) { return device_count; }
EXPORT unsigned int fakenvml_init_calls(void) { return init_calls; }
EXPORT const char *fakenvml_last_error(void) { return last_error; }
