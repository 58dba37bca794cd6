/* Process-local record of what this process charged: (class, key) -> size and device, so a free
 * gives back exactly what its allocation took. Open addressing with backward-shift deletion. */
#include <stdlib.h>
#include <string.h>

#include "shim.h"

struct entry { uint64_t key; uint64_t size; uint32_t cls; int32_t dev; };

static struct entry *slots;
static size_t cap, count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static inline size_t home(uint32_t cls, uint64_t key) {
    uint64_t h = (key ^ ((uint64_t)cls << 59)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 40) & (cap - 1);
}

static void grow(void) {
    struct entry *old = slots;
    size_t old_cap = cap;
    cap = cap ? cap * 2 : 1024;
    slots = calloc(cap, sizeof *slots);
    count = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].cls) continue;
        size_t j = home(old[i].cls, old[i].key);
        while (slots[j].cls) j = (j + 1) & (cap - 1);
        slots[j] = old[i];
        count++;
    }
    free(old);
}

static struct entry *find(uint32_t cls, uint64_t key) {
    if (!cap) return NULL;
    for (size_t j = home(cls, key);; j = (j + 1) & (cap - 1)) {
        if (!slots[j].cls) return NULL;
        if (slots[j].key == key && slots[j].cls == cls) return &slots[j];
    }
}

static void insert(uint32_t cls, uint64_t key, uint64_t size, int dev, int add) {
    pthread_mutex_lock(&lock);
    struct entry *e = find(cls, key);
    if (e) {
        e->size = add ? e->size + size : size;
        e->dev = dev;
    } else {
        if ((count + 1) * 2 > cap) grow();
        size_t j = home(cls, key);
        while (slots[j].cls) j = (j + 1) & (cap - 1);
        slots[j] = (struct entry){key, size, cls, dev};
        count++;
    }
    pthread_mutex_unlock(&lock);
}

void track_put(enum track_class c, uint64_t key, uint64_t size, int dev) { insert(c, key, size, dev, 0); }
void track_add(enum track_class c, uint64_t key, uint64_t size, int dev) { insert(c, key, size, dev, 1); }

int track_take(enum track_class c, uint64_t key, uint64_t *size, int *dev) {
    pthread_mutex_lock(&lock);
    struct entry *e = find(c, key);
    if (!e) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    *size = e->size;
    *dev = e->dev;
    size_t i = (size_t)(e - slots);
    for (size_t j = (i + 1) & (cap - 1); slots[j].cls; j = (j + 1) & (cap - 1)) {
        size_t h = home(slots[j].cls, slots[j].key);
        /* move j back into the hole at i when its home is not in (i, j] */
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i].cls = 0;
    count--;
    pthread_mutex_unlock(&lock);
    return 0;
}

void track_reset_after_fork(void) {
    pthread_mutex_init(&lock, NULL);
    if (slots) memset(slots, 0, cap * sizeof *slots);
    count = 0;
}
