/* shard.h - which logical shard a site belongs to, and the Redis key
 * prefix of a shard (docs/KEYS.md "Shards").
 *
 * A fixed number of logical shards (the `shards` directive, the same for
 * every collector, aggregator and veil-admin of one installation) splits
 * the sites. Every key of a shard carries the hash tag "{<shard>}", so a
 * site's stream entries, open sessions and counts live in one Redis
 * Cluster slot. The mapping is persisted data placement: it must never
 * change for a given (site, shards) pair. */
#ifndef VEIL_SHARD_H
#define VEIL_SHARD_H

#include <stddef.h>

#define SHARDS_DEFAULT 16
#define SHARDS_MAX 1024
/* "veil:{1023}:" plus its NUL */
#define SHARD_PREFIX_MAX 16

/* The shard of `site` (len bytes, no NUL needed): 64-bit FNV-1a of the
 * bytes, modulo nshards (1..SHARDS_MAX; 0 is treated as 1). Pure and
 * stable across versions, builds and machines. */
unsigned shard_of_site(const char *site, size_t len, unsigned nshards);

/* Write "veil:{<shard>}:" into buf (NUL-terminated). Returns its length,
 * or 0 when cap is too small (SHARD_PREFIX_MAX always fits). */
size_t shard_key_prefix(char *buf, size_t cap, unsigned shard);

#endif
