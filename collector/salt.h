/* salt.h - the visitor-hash salt of the current period, shared between
 * collectors through Redis (P2).
 *
 * The first collector to need a period's salt creates 32 random bytes and
 * publishes them with SET NX EX (expiry at most two periods); every other
 * collector adopts what Redis holds. A background thread prefetches the
 * next period's salt shortly before the boundary, so request threads never
 * wait on Redis. Salts live in this process's memory and in Redis only:
 * Veil never writes them to disk or to a log. */
#ifndef VEIL_SALT_H
#define VEIL_SALT_H

#include <stdbool.h>
#include <stdint.h>

#include "visitor.h"

struct salt_store;

/* A store for `period` (SALT_OFF gives a store that never has a salt).
 * `redis` is "host:port" or "unix:/path". Does not connect yet. */
struct salt_store *salt_store_new(enum salt_period period, const char *redis);

/* Fetch (or create and publish) the current period's salt, waiting at most
 * `wait_ms` for Redis; if Redis cannot be reached, use a local random salt
 * and keep trying to publish it. Then start the rotation thread.
 * Returns 0, or -1 if the thread cannot start. */
int salt_store_start(struct salt_store *s, int wait_ms);

/* Copy the salt of the period containing `unix_seconds` into `out`.
 * Returns false when there is none (visitor_hash=off, or the period is
 * neither the current nor the next one). Thread-safe. */
bool salt_store_get(struct salt_store *s, int64_t unix_seconds,
                    uint8_t out[VISITOR_SALT_BYTES]);

/* Stop the thread, wipe the salts, free. */
void salt_store_free(struct salt_store *s);

#endif
