/* ratelimit.h - per-client request rate limit, in memory only.
 *
 * A token bucket per client, keyed by a keyed hash (SipHash-2-4 under a
 * random per-process key) of the client IP: the table never holds an IP,
 * and its keys cannot be linked to one after the process exits. The table
 * is direct-mapped with a fixed number of slots, so memory is bounded
 * whatever the traffic; a colliding client simply takes the slot over. One
 * table per worker thread: no locking. */
#ifndef VEIL_RATELIMIT_H
#define VEIL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anon.h"

struct ratelimit;

/* A limiter allowing `per_second` requests per client on average with
 * bursts of `burst`, over `slots` table entries (rounded up to a power of
 * two). per_second = 0 disables it (ratelimit_allow always true). */
struct ratelimit *ratelimit_new(double per_second, double burst, size_t slots);
void ratelimit_free(struct ratelimit *rl);

/* Take one token for `ip` at monotonic time `now_ms`. Returns false when
 * the client is over its rate. Does not keep `ip`. */
bool ratelimit_allow(struct ratelimit *rl, const struct client_ip *ip, uint64_t now_ms);

#endif
