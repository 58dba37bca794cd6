/*
 * fakenvml.h: control surface of the fake libnvidia-ml.so.1 (tests and demos without a GPU).
 *
 * The fake implements the NVML entry points hami's NVIDIA backend calls through nvidia-ml-py
 * (init, device enumeration, identity, memory, NUMA, MIG mode, P2P topology, NVLink, XID events)
 * with NVML's own return codes. Its devices come from a JSON file named by FAKE_NVML_CONFIG
 * (read at every first nvmlInit), see README.md in this folder. These extra exports, prefixed
 * fakenvml_, let a test look inside and inject events; callers find them with dlsym or ctypes.
 */
#ifndef FAKENVML_H
#define FAKENVML_H

#ifdef __cplusplus
extern "C" {
#endif

/* Environment variable naming the JSON device configuration. */
#define FAKENVML_CONFIG_ENV "FAKE_NVML_CONFIG"
/* Environment variable naming the XID events file (overrides the config's "events_file"). */
#define FAKENVML_EVENTS_ENV "FAKE_NVML_EVENTS"

/* Queue an XID critical-error event for the device at NVML index `index`; 0 on success,
 * -1 if the index is unknown or the queue is full. Every event set registered for XID events
 * on that device sees it at its next nvmlEventSetWait. */
int fakenvml_inject_xid(unsigned int index, unsigned long long xid);

/* How many devices the loaded configuration has (0 before nvmlInit). */
unsigned int fakenvml_device_count(void);

/* How many times nvmlInit* succeeded since the library was loaded. */
unsigned int fakenvml_init_calls(void);

/* The last configuration error, "" when the configuration loaded. */
const char *fakenvml_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* FAKENVML_H */
