/* Pure logic of the env contract: memory-limit and percent parsing (specs/shim.md section 2, with
 * HAMi-core's quirks decided: README "Environment") and per-device fallbacks. */
#include <stdlib.h>

#include "check.h"
#include "shim.h"

static int bytes(const char *s, uint64_t want) {
    uint64_t v = 0;
    return shim_parse_bytes(s, &v) == 0 && v == want;
}
static int invalid(const char *s) {
    uint64_t v = 0;
    return shim_parse_bytes(s, &v) != 0;
}

int main(void) {
    CHECK(bytes("3000m", 3000ull << 20), "3000m");
    CHECK(bytes("1g", 1ull << 30) && bytes("1G", 1ull << 30), "1g");
    CHECK(bytes("1073741824", 1073741824ull), "plain bytes");
    CHECK(bytes("0", 0), "0 (no limit)");
    CHECK(bytes("512k", 512ull << 10) && bytes("2M", 2ull << 20), "k and M");
    CHECK(bytes("1Gi", 1ull << 30) && bytes("300Mi", 300ull << 20), "1Gi is 1 GiB (HAMi-core reads 1 byte)");
    CHECK(bytes("010m", 10ull << 20), "leading zeros are decimal (HAMi-core reads octal)");
    CHECK(invalid("1.5g"), "fractions are refused (HAMi-core reads 1 GiB)");
    CHECK(invalid("0x10m"), "hex is refused");
    CHECK(invalid("-1"), "negative is refused (HAMi-core wraps)");
    CHECK(invalid("12abc") && invalid("g") && invalid("") && invalid("1gb") && invalid(" 1g"), "garbage is refused");
    CHECK(invalid("18446744073709551616"), "overflow without a suffix");
    CHECK(invalid("17179869184g") && bytes("17179869183g", 17179869183ull << 30), "overflow with a suffix");
    uint64_t p = 0;
    CHECK(shim_parse_percent("30", &p) == 0 && p == 30, "percent");
    CHECK(shim_parse_percent("101", &p) != 0 && shim_parse_percent("30m", &p) != 0 && shim_parse_percent("x", &p) != 0,
          "bad percent");

    struct shim_config cfg;
    setenv("CUDA_DEVICE_MEMORY_LIMIT", "2g", 1);
    setenv("CUDA_DEVICE_MEMORY_LIMIT_1", "3000m", 1);
    setenv("CUDA_DEVICE_MEMORY_LIMIT_2", "1.5g", 1);
    setenv("CUDA_DEVICE_SM_LIMIT", "30", 1);
    setenv("CUDA_DEVICE_SM_LIMIT_3", "0", 1);
    setenv("GPU_CORE_UTILIZATION_POLICY", "DISABLE", 1);
    setenv("LIBCUDA_LOG_LEVEL", "0", 1);
    shim_read_config(&cfg);
    CHECK(cfg.mem_limit[0] == 2ull << 30 && cfg.mem_limit[1] == 3000ull << 20, "per-device limit overrides the global one");
    CHECK(cfg.mem_limit[2] == 2ull << 30, "an invalid per-device value falls back to the global one");
    CHECK(cfg.sm_limit[0] == 30 && cfg.sm_limit[3] == 100, "SM limit; 0 means none");
    CHECK(cfg.policy_disable && cfg.priority == 1 && cfg.record_interval == 1, "policy, default priority and interval");
    unsetenv("CUDA_DEVICE_MEMORY_LIMIT");
    unsetenv("CUDA_DEVICE_SM_LIMIT");
    setenv("CUDA_TASK_PRIORITY", "0", 1);
    shim_read_config(&cfg);
    CHECK(cfg.mem_limit[0] == 0 && cfg.sm_limit[0] == 100 && cfg.priority == 0, "unset means unlimited");
    return CHECK_DONE("test_parse");
}
