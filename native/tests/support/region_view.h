/* region_view.h: read the shim's shared region from a test, as the host monitor would. */
#ifndef REGION_VIEW_H
#define REGION_VIEW_H
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hami_shim.h"

static inline hami_region_t *region_view(const char *path) {
    int fd = open(path ? path : getenv(HAMI_ENV_SHARED_CACHE), O_RDWR);
    if (fd < 0) return NULL;
    void *m = mmap(NULL, HAMI_REGION_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}
static inline hami_region_ext_t *region_ext(hami_region_t *r) { return (hami_region_ext_t *)(r + 1); }

/* Container usage as HAMi's monitor computes it: the sum over slots [0, proc_num). */
static inline uint64_t region_slot_sum(const hami_region_t *r, int dev) {
    uint64_t s = 0;
    for (int i = 0; i < r->proc_num; i++) s += r->procs[i].used[dev].total;
    return s;
}
#endif
