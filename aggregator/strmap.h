/* strmap.h - the aggregator's per-batch string storage: an arena whose
 * strings live until arena_free, and a map from byte strings (keys copied
 * into an arena) to uint32_t values, e.g. indexes into an array. Aborts on
 * OOM, like the rest of the aggregator. */
#ifndef VEIL_STRMAP_H
#define VEIL_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    char data[];
};

/* Make room for one more element in the growable array arr[0..n) of
 * capacity cap (doubling, from 64); xrealloc aborts on OOM. */
#define GROW(arr, n, cap)                                                    \
    do {                                                                     \
        if ((n) == (cap)) {                                                  \
            (cap) = (cap) ? (cap) * 2 : 64;                                  \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));                  \
        }                                                                    \
    } while (0)

char *arena_alloc(struct arena_chunk **head, size_t len);
/* A NUL-terminated copy of s[0..len). */
const char *arena_dup(struct arena_chunk **head, const char *s, size_t len);
void arena_free(struct arena_chunk **head);

struct smap_slot {
    uint64_t hash;
    const char *key; /* NULL = empty; owned by the arena */
    size_t len;
    uint32_t value;
};

struct smap {
    struct smap_slot *slots;
    size_t cap, n;
    uint64_t seed; /* random, drawn when the map first grows */
};

/* Find `key`; when absent, insert it with `value` (the key is copied into
 * `arena`). Returns the stored value; *created tells which happened and
 * *stored (if not NULL) points at the map's NUL-terminated copy of the key. */
uint32_t smap_intern(struct smap *m, struct arena_chunk **arena, const char *key, size_t len,
                     uint32_t value, bool *created, const char **stored);
bool smap_find(const struct smap *m, const char *key, size_t len, uint32_t *value);
/* Forget every key (the arena holding them is the caller's to free). */
void smap_clear(struct smap *m);
void smap_free(struct smap *m);

#endif
