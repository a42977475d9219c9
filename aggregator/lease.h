/* lease.h - shard ownership in Redis (docs/AGGREGATOR.md "Ownership"):
 * the installation's shard count, the live aggregator processes, each
 * shard's lease with its fencing epoch, the Redis Functions library that
 * implements them (veil_functions.lua), and the checkpoint read at
 * takeover.
 *
 * Every call is one round trip (or one pipeline) on the caller's
 * connection; none of them retries or logs. It never reads event content. */
#ifndef VEIL_LEASE_H
#define VEIL_LEASE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "shard_state.h"

#define LEASE_MEMBERS_KEY "veil:meta:aggregators"    /* sorted set: owner -> alive until (ms) */

/* FUNCTION LOAD REPLACE of the library "veil" compiled into the binary.
 * Returns 0, or -1 with a reason in err. */
int lease_load_functions(redisContext *rc, char *err, size_t errlen);

/* Announce `owner` alive for lease_ms and drop members whose time ran out.
 * Returns the number of live processes (at least 1), or -1 with a reason. */
long long lease_heartbeat(redisContext *rc, const char *owner, long long lease_ms, char *err,
                          size_t errlen);

/* Remove `owner` from the live processes (clean shutdown). */
void lease_leave(redisContext *rc, const char *owner);

/* Try to take shard st: on success st->epoch is the new epoch, st->owned
 * is set and 1 is returned; 0 when another process holds the lease; -1
 * with a reason on a Redis error. */
int lease_acquire(redisContext *rc, struct shard_state *st, const char *owner, long long lease_ms,
                  char *err, size_t errlen);

/* Renew the leases of the shards sts[0..n) (pipelined). ok[i] is set to
 * 1 (still ours) or 0 (epoch moved on: lost). Returns 0, or -1 with a
 * reason when the link failed (ok[] then undefined). */
int lease_renew(redisContext *rc, struct shard_state *const *sts, size_t n, const char *owner,
                long long lease_ms, int *ok, char *err, size_t errlen);

/* Give shard st up (when the epoch is still ours, its lease is deleted so
 * another process takes it at once). Returns 0 or -1. */
int lease_release(redisContext *rc, struct shard_state *st, char *err, size_t errlen);

/* Read the shard's checkpoint (open visits) into st, replacing what it
 * held. Returns the number of visits loaded, or -1 with a reason. */
long long lease_load_checkpoint(redisContext *rc, struct shard_state *st, char *err,
                                size_t errlen);

#endif
