/* ratelimit.h - per-client request rate and connection count, in memory
 * only, shared by every worker thread of the process.
 *
 * A client is an IPv4 address or an IPv6 network of `ipv6_prefix` bits
 * (default /64: one household or one server gets a /64, so rotating
 * addresses inside it is still one client). A client is looked up by a
 * keyed hash (SipHash-2-4 under a random per-process key) of that network:
 * the tables never hold an address, and their keys cannot be linked to
 * one after the process exits.
 *
 * Requests: a token bucket per client in a direct-mapped table with a
 * fixed number of slots, so memory is bounded whatever the traffic; a
 * colliding client simply takes the slot over. The table is lock-striped
 * (a mutex per group of slots), so a client gets its rate once whatever
 * the number of threads serving it.
 *
 * Connections: a counter per slot of a second table (atomic). Clients
 * that collide share a counter, which can only make their cap stricter,
 * never let anyone past it. */
#ifndef VEIL_RATELIMIT_H
#define VEIL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anon.h"

struct ratelimit;

struct ratelimit_config {
    double per_second;      /* average requests per second; 0 = no rate limit */
    double burst;           /* requests at once (at least 1) */
    size_t slots;           /* table entries, rounded up to a power of two */
    int ipv6_prefix;        /* bits of an IPv6 address that name a client (1..128) */
    long max_connections;   /* open connections per client; 0 = no cap */
};

/* A limiter for `cfg` (copied). Never returns NULL (aborts on OOM). */
struct ratelimit *ratelimit_new(const struct ratelimit_config *cfg);
void ratelimit_free(struct ratelimit *rl);

/* Take one token for `ip` at monotonic time `now_ms`. Returns false when
 * the client is over its rate. Does not keep `ip`. Thread-safe. */
bool ratelimit_allow(struct ratelimit *rl, const struct client_ip *ip, uint64_t now_ms);

/* Count a new connection of `ip`. Returns true and a ticket to hand to
 * ratelimit_conn_leave when it closes, or false (nothing counted) when the
 * client already holds max_connections. The ticket is a table index, not
 * an address. Thread-safe. */
bool ratelimit_conn_enter(struct ratelimit *rl, const struct client_ip *ip, uint32_t *ticket);

/* The connection of `ticket` closed. Thread-safe. */
void ratelimit_conn_leave(struct ratelimit *rl, uint32_t ticket);

#endif
