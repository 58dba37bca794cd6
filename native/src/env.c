/* Environment contract: limit parsing (pure) and the configuration a process starts with. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "shim.h"

int shim_log_level = 2;

void shim_log(int level, const char *fmt, ...) {
    if (level > shim_log_level) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[hami-shim] %s\n", buf);
}

/* Decimal digits with an optional k/m/g suffix (an "i" after it is allowed, so 1Gi = 1g).
 * Unlike HAMi-core's strtoul(base 0): no hex or octal, no fractions, no trailing text, no
 * negative numbers and no silent overflow; such values are reported and ignored. */
int shim_parse_bytes(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    uint64_t unit = 1;
    switch (*s) {
    case 'k': case 'K': unit = HAMI_UNIT_K; s++; break;
    case 'm': case 'M': unit = HAMI_UNIT_M; s++; break;
    case 'g': case 'G': unit = HAMI_UNIT_G; s++; break;
    default: break;
    }
    if (unit != 1 && *s == 'i') s++;
    if (*s != '\0') return -1;
    if (v > UINT64_MAX / unit) return -1;
    *out = v * unit;
    return 0;
}

int shim_parse_percent(const char *s, uint64_t *out) {
    uint64_t v;
    if (shim_parse_bytes(s, &v) != 0) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    if (v > 100) return -1;
    *out = v;
    return 0;
}

static int env_bytes(const char *name, uint64_t *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    if (shim_parse_bytes(v, out) != 0) {
        LOG_ERROR("%s=%s is not a size (digits with an optional k, m or g); ignored", name, v);
        return 0;
    }
    return 1;
}

static int env_percent(const char *name, uint64_t *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    if (shim_parse_percent(v, out) != 0) {
        LOG_ERROR("%s=%s is not a percentage 0-100; ignored", name, v);
        return 0;
    }
    return 1;
}

void shim_read_config(struct shim_config *cfg) {
    const char *lv = getenv(HAMI_ENV_LOG_LEVEL);
    if (lv && *lv >= '0' && *lv <= '9') shim_log_level = atoi(lv);
    memset(cfg, 0, sizeof *cfg);
    uint64_t all_mem = 0, all_sm = 100;
    env_bytes(HAMI_ENV_MEMORY_LIMIT, &all_mem);
    if (env_percent(HAMI_ENV_SM_LIMIT, &all_sm) && all_sm == 0) all_sm = 100;
    char name[64];
    for (int i = 0; i < HAMI_MAX_DEVICES; i++) {
        cfg->mem_limit[i] = all_mem;
        snprintf(name, sizeof name, "%s%d", HAMI_ENV_MEMORY_LIMIT_PREFIX, i);
        env_bytes(name, &cfg->mem_limit[i]);
        cfg->sm_limit[i] = all_sm;
        snprintf(name, sizeof name, "%s%d", HAMI_ENV_SM_LIMIT_PREFIX, i);
        if (env_percent(name, &cfg->sm_limit[i]) && cfg->sm_limit[i] == 0) cfg->sm_limit[i] = 100;
    }
    const char *pol = getenv(HAMI_ENV_CORE_POLICY);
    cfg->policy_disable = pol && strcasecmp(pol, "disable") == 0;
    const char *pr = getenv(HAMI_ENV_TASK_PRIORITY);
    cfg->priority = pr && *pr ? atoi(pr) : HAMI_DEFAULT_PRIORITY;
    const char *ri = getenv(HAMI_ENV_RECORD_KERNEL_INTERVAL);
    cfg->record_interval = ri && *ri ? atoi(ri) : 1;
    if (cfg->record_interval < 1) cfg->record_interval = 1;
    const char *path = getenv(HAMI_ENV_SHARED_CACHE);
    snprintf(cfg->cache_path, sizeof cfg->cache_path, "%s", path && *path ? path : HAMI_DEFAULT_SHARED_CACHE);
}
