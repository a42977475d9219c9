/* geo_cache.h - per-thread cache of geo_lookup answers by network, so that
 * visitors from a network already seen skip the MaxMind tree walk and the
 * three record reads.
 *
 * An answer is kept only when the database says it holds for the whole
 * /24 (IPv4) or /48 (IPv6) around the address, so a hit gives exactly what
 * geo_lookup would. Entries are found by a SipHash-2-4 (libsodium
 * crypto_shorthash) of that /24 or /48 under a random key drawn per cache,
 * never stored anywhere else and wiped with it: the cache holds no
 * address, not even the truncated one, and an attacker cannot aim
 * networks at one set. Each entry holds the place names and the geo level
 * they were read at. The cache is bounded (set-associative, least recently
 * used out), lives in memory only, never logs, and empties itself when it
 * is asked about another database than the one it was filled from (a
 * SIGHUP reload opens a new one).
 *
 * Not thread-safe: one cache per worker thread. */
#ifndef VEIL_GEO_CACHE_H
#define VEIL_GEO_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "anon.h"
#include "geo.h"

/* Widest networks a cached answer stands for. */
#define GEO_CACHE_IPV4_PREFIX 24
#define GEO_CACHE_IPV6_PREFIX 48

/* Entries per set. */
#define GEO_CACHE_WAYS 4

struct geo_cache;

/* A cache of about `entries` answers (rounded up to whole sets of
 * GEO_CACHE_WAYS, a power of two of them). Aborts on OOM; returns NULL
 * when libsodium cannot be initialised. */
struct geo_cache *geo_cache_new(size_t entries);

/* Free the cache and wipe its key and entries. NULL is a no-op. */
void geo_cache_free(struct geo_cache *c);

/* geo_lookup(db, ip, level, out) through the cache: same contract, same
 * answer. A NULL `c` looks up directly. `ip` is not kept in any form but
 * the keyed hash of its /24 or /48, and only with an answer that holds for
 * all of that network. */
bool geo_cache_lookup(struct geo_cache *c, const struct geo_db *db, const struct client_ip *ip,
                      enum geo_level level, struct geo_result *out);

/* Answers kept, hits and lookups so far (for tests). Any pointer may be
 * NULL. */
void geo_cache_counts(const struct geo_cache *c, size_t *used, uint64_t *hits,
                      uint64_t *lookups);

/* The cache's whole memory, key and entries, as one span (for tests that
 * check it never holds an address). */
void geo_cache_memory(const struct geo_cache *c, const void **mem, size_t *len);

#endif
