/* strmap.c - an arena for strings that live until the next reset, and an
 * open-addressing map from byte strings to indexes (strmap.h). */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

#define ARENA_CHUNK 65536

/* ---- arena: strings that live until the next reset ---- */


char *arena_alloc(struct arena_chunk **head, size_t len)
{
    struct arena_chunk *c = *head;
    if (!c || c->size - c->used < len) {
        size_t size = len > ARENA_CHUNK ? len : ARENA_CHUNK;
        c = xmalloc(sizeof *c + size);
        c->size = size;
        c->used = 0;
        c->next = *head;
        *head = c;
    }
    char *p = c->data + c->used;
    c->used += len;
    return p;
}

const char *arena_dup(struct arena_chunk **head, const char *s, size_t len)
{
    char *p = arena_alloc(head, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void arena_free(struct arena_chunk **head)
{
    while (*head) {
        struct arena_chunk *next = (*head)->next;
        free(*head);
        *head = next;
    }
}

/* ---- string map: byte-string key -> index (open addressing) ---- */


/* Eight bytes per multiply (keys are up to a few KB: a byte-at-a-time hash
 * was most of the aggregator's CPU), seeded per map so that values chosen
 * by clients cannot be crafted into one long probe chain. */
static uint64_t hash_bytes(uint64_t seed, const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = seed ^ (len * 0x9E3779B97F4A7C15ULL);
    for (; len >= 8; s += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s, len);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static struct smap_slot *smap_slot(const struct smap *m, const char *key, size_t len,
                                   uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct smap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static void smap_grow(struct smap *m)
{
    struct smap old = *m;
    if (old.cap == 0 && getrandom(&m->seed, sizeof m->seed, 0) != sizeof m->seed)
        m->seed = (uint64_t)(uintptr_t)m ^ clock_ms(); /* no entropy yet: still varies */
    m->cap = old.cap ? old.cap * 2 : 256;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *smap_slot(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash) =
                old.slots[i];
    free(old.slots);
}

uint32_t smap_intern(struct smap *m, struct arena_chunk **arena, const char *key, size_t len,
                     uint32_t value, bool *created, const char **stored)
{
    if ((m->n + 1) * 4 > m->cap * 3)
        smap_grow(m);
    uint64_t h = hash_bytes(m->seed, key, len);
    struct smap_slot *s = smap_slot(m, key, len, h);
    *created = s->key == NULL;
    if (*created) {
        s->hash = h;
        s->key = arena_dup(arena, key, len);
        s->len = len;
        s->value = value;
        m->n++;
    }
    if (stored)
        *stored = s->key;
    return s->value;
}

bool smap_find(const struct smap *m, const char *key, size_t len, uint32_t *value)
{
    if (m->cap == 0)
        return false;
    struct smap_slot *s = smap_slot(m, key, len, hash_bytes(m->seed, key, len));
    if (!s->key)
        return false;
    *value = s->value;
    return true;
}

void smap_clear(struct smap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
}

void smap_free(struct smap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
