/* ua_cache.c - bounded LRU cache of User-Agent parse results
 * (see ua_cache.h). Keyed by a secret-keyed 128-bit SipHash of the agent;
 * never holds or logs the agent itself. */
#include "ua_cache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NIL UINT32_MAX

struct cache_entry {
    struct ua_cache_key key;
    uint32_t chain_next;           /* next entry in the same bucket */
    uint32_t lru_prev, lru_next;   /* towards head (newer) / tail (older) */
    struct ua_result value;
};

struct ua_cache {
    size_t capacity, used;
    uint64_t evictions;
    size_t mask;                   /* buckets - 1 (power of two) */
    uint32_t *buckets;             /* first entry per bucket, or NIL */
    struct cache_entry *entries;
    uint32_t head, tail;           /* most / least recently used */
    unsigned char secret[crypto_shorthash_siphashx24_KEYBYTES];
};

struct ua_cache *ua_cache_new(size_t entries)
{
    if (entries == 0 || entries >= NIL)
        return NULL;
    if (sodium_init() < 0)
        return NULL;
    struct ua_cache *c = xcalloc(1, sizeof(*c));
    size_t nbuckets = 1;
    while (nbuckets < entries)
        nbuckets <<= 1;
    c->capacity = entries;
    c->mask = nbuckets - 1;
    c->buckets = xmalloc(nbuckets * sizeof(*c->buckets));
    for (size_t i = 0; i < nbuckets; i++)
        c->buckets[i] = NIL;
    c->entries = xcalloc(entries, sizeof(*c->entries));
    c->head = c->tail = NIL;
    randombytes_buf(c->secret, sizeof(c->secret));
    return c;
}

void ua_cache_key_of(const struct ua_cache *c, const char *ua, size_t len,
                     struct ua_cache_key *key)
{
    unsigned char digest[crypto_shorthash_siphashx24_BYTES];
    crypto_shorthash_siphashx24(digest, (const unsigned char *)ua, len, c->secret);
    memcpy(&key->lo, digest, 8);
    memcpy(&key->hi, digest + 8, 8);
}

static bool key_equal(const struct ua_cache_key *a, const struct ua_cache_key *b)
{
    return a->lo == b->lo && a->hi == b->hi;
}

static uint32_t find(const struct ua_cache *c, const struct ua_cache_key *key)
{
    uint32_t i = c->buckets[key->lo & c->mask];
    while (i != NIL && !key_equal(&c->entries[i].key, key))
        i = c->entries[i].chain_next;
    return i;
}

static void lru_unlink(struct ua_cache *c, uint32_t i)
{
    struct cache_entry *e = &c->entries[i];
    if (e->lru_prev != NIL)
        c->entries[e->lru_prev].lru_next = e->lru_next;
    else
        c->head = e->lru_next;
    if (e->lru_next != NIL)
        c->entries[e->lru_next].lru_prev = e->lru_prev;
    else
        c->tail = e->lru_prev;
}

static void lru_push_head(struct ua_cache *c, uint32_t i)
{
    struct cache_entry *e = &c->entries[i];
    e->lru_prev = NIL;
    e->lru_next = c->head;
    if (c->head != NIL)
        c->entries[c->head].lru_prev = i;
    c->head = i;
    if (c->tail == NIL)
        c->tail = i;
}

static void chain_unlink(struct ua_cache *c, uint32_t i)
{
    uint32_t *link = &c->buckets[c->entries[i].key.lo & c->mask];
    while (*link != i)
        link = &c->entries[*link].chain_next;
    *link = c->entries[i].chain_next;
}

bool ua_cache_get(struct ua_cache *c, const struct ua_cache_key *key, struct ua_result *out)
{
    uint32_t i = find(c, key);
    if (i == NIL)
        return false;
    if (c->head != i) {
        lru_unlink(c, i);
        lru_push_head(c, i);
    }
    *out = c->entries[i].value;
    return true;
}

void ua_cache_put(struct ua_cache *c, const struct ua_cache_key *key,
                  const struct ua_result *value)
{
    uint32_t i = find(c, key);
    if (i != NIL) {
        c->entries[i].value = *value;
        if (c->head != i) {
            lru_unlink(c, i);
            lru_push_head(c, i);
        }
        return;
    }
    if (c->used < c->capacity) {
        i = (uint32_t)c->used++;
    } else {
        i = c->tail;
        lru_unlink(c, i);
        chain_unlink(c, i);
        c->evictions++;
    }
    struct cache_entry *e = &c->entries[i];
    e->key = *key;
    e->value = *value;
    size_t b = key->lo & c->mask;
    e->chain_next = c->buckets[b];
    c->buckets[b] = i;
    lru_push_head(c, i);
}

void ua_cache_counts(const struct ua_cache *c, size_t *used, size_t *capacity,
                     uint64_t *evictions)
{
    if (used)
        *used = c->used;
    if (capacity)
        *capacity = c->capacity;
    if (evictions)
        *evictions = c->evictions;
}

void ua_cache_free(struct ua_cache *c)
{
    if (!c)
        return;
    sodium_memzero(c->secret, sizeof(c->secret));
    free(c->buckets);
    free(c->entries);
    free(c);
}
