/* shard_meta.h - the shard count an installation was set up with, kept in
 * Redis as the plain key veil:meta:shards (docs/DELIVERY.md "Shards").
 *
 * Every collector and aggregator of one Redis must map sites to shards
 * alike, or a site's events would be split over streams that different
 * owners read. The first process to start stores its count (SET NX);
 * everyone compares. Never overwrites a stored count. */
#ifndef VEIL_SHARD_META_H
#define VEIL_SHARD_META_H

#include <stddef.h>

#include <hiredis.h>

#define SHARD_META_KEY "veil:meta:shards"

/* On an open connection: store `shards` unless a count is stored (a
 * refused write, such as OOM at maxmemory or READONLY, is not an error),
 * then compare with what is stored. Returns 0 when they agree, 1 when no
 * count is stored and none could be stored (compare again later), -1 with
 * a reason in err when they differ or the stored value is not a count,
 * -2 with a reason in err when the connection failed. */
int shard_meta_agree(redisContext *rc, unsigned shards, char *err, size_t errlen);

/* The same at start-up, on a short connection of its own to `redis` (the
 * redis directive: host:port or unix:/path) waiting at most timeout_ms.
 * Returns 0 when they agree, 1 when Redis could not be asked or holds no
 * count (the collector's sink checks again on every connection), -1 with a
 * reason in err when they differ. Blocking: for start-up only. */
int shard_meta_check(const char *redis, unsigned shards, int timeout_ms, char *err,
                     size_t errlen);

#endif
