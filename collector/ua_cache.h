/* ua_cache.h - bounded LRU cache of User-Agent parse results, per thread.
 *
 * Maps a User-Agent to its `struct ua_result` so that repeated agents (the
 * common case: a site sees a few thousand distinct ones a day) skip the
 * regex chains. It is a hash table with chaining plus a doubly linked
 * recency list over a fixed array of entries allocated up front: lookups
 * and inserts never allocate; when full, the least recently used entry is
 * reused.
 *
 * Keys are not the User-Agent text: each entry holds a 128-bit keyed
 * SipHash (libsodium crypto_shorthash_siphashx24) of the full string under
 * a random key drawn per cache. Hence the cache never retains a
 * User-Agent, an attacker cannot aim agents at one bucket (the key is
 * secret), and two different agents share an entry only with probability
 * about n^2 / 2^129. The cache lives only in memory, is never written
 * anywhere and dies with its parser. It never logs.
 *
 * Not thread-safe: one cache per thread (it belongs to a ua_parser). */
#ifndef VEIL_UA_CACHE_H
#define VEIL_UA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ua.h"

struct ua_cache;

/* The digest a cache is keyed by. */
struct ua_cache_key {
    uint64_t lo, hi;
};

/* A cache of at most `entries` results (1 .. UINT32_MAX - 1); all memory is
 * allocated here, aborting on OOM. Returns NULL when `entries` is 0 or out
 * of range, or when libsodium cannot be initialised. */
struct ua_cache *ua_cache_new(size_t entries);

/* Digest of `ua[0..len)` under this cache's secret key (any bytes). */
void ua_cache_key_of(const struct ua_cache *c, const char *ua, size_t len,
                     struct ua_cache_key *key);

/* Look `key` up. On a hit copies the result into *out, marks the entry
 * most recently used and returns true; false on a miss (*out untouched). */
bool ua_cache_get(struct ua_cache *c, const struct ua_cache_key *key, struct ua_result *out);

/* Store `value` under `key` (replacing an existing entry for the same
 * key), evicting the least recently used entry when the cache is full. */
void ua_cache_put(struct ua_cache *c, const struct ua_cache_key *key,
                  const struct ua_result *value);

/* Entries in use, capacity and evictions so far. Any pointer may be NULL. */
void ua_cache_counts(const struct ua_cache *c, size_t *used, size_t *capacity,
                     uint64_t *evictions);

/* Free the cache and wipe its key. NULL is a no-op. */
void ua_cache_free(struct ua_cache *c);

#endif
