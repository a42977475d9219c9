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

#define SHARD_META_KEY "veil:meta:shards"

/* Ask Redis (`redis` as the redis directive: host:port or unix:/path,
 * waiting at most timeout_ms) to store `shards` unless a count is stored,
 * then compare. Returns 0 when they agree, 1 when Redis could not be
 * asked (down, refusing writes and holding no count: the sink checks
 * again on every connection), -1 with a reason in err when they differ
 * or the stored value is not a count. Blocking: for start-up only. */
int shard_meta_check(const char *redis, unsigned shards, int timeout_ms, char *err,
                     size_t errlen);

#endif
