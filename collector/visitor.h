/* visitor.h - salt periods and the visitor hash (privacy invariant P2).
 *
 * visitor hash = keyed BLAKE2b-64 (libsodium crypto_generichash) of site,
 * client IP and User-Agent under the random salt of the current salt
 * period. Salts rotate every period (UTC day, ISO week or calendar month)
 * and are shared between collectors through Redis under
 * `veil:salt:<period>:<id>` with an expiry of at most two periods; once a
 * salt is gone, its hashes can no longer be linked to anyone.
 *
 * This module never logs, stores or returns the IP, the User-Agent or a
 * salt: it only turns them into the 16-hex-digit hash, and wipes its
 * intermediate state. It never writes a salt to disk. */
#ifndef VEIL_VISITOR_H
#define VEIL_VISITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anon.h"

/* Salt period (operator flag `visitor_hash`); SALT_OFF = no visitor hash. */
enum salt_period { SALT_OFF = 0, SALT_DAY, SALT_WEEK, SALT_MONTH };

/* Config names in enum order, NULL-terminated: "off", "day", "week",
 * "month". They are also the <period> part of the Redis salt key. */
extern const char *const visitor_hash_names[];

/* Period numbering, all in UTC, proleptic Gregorian calendar:
 *   SALT_DAY    days since 1970-01-01 (day 0 starts at 1970-01-01T00:00Z);
 *   SALT_WEEK   ISO weeks (Monday to Sunday) since Monday 1970-01-05:
 *               week 0 is 1970-01-05..11, the days before are week -1, -2...;
 *   SALT_MONTH  year * 12 + (month - 1), e.g. 2024-02 is 24289;
 *   SALT_OFF    always 0.
 * Times are clamped to years 1..9999 (ids likewise), so no input overflows. */

/* The id of the period containing `unix_seconds`. */
int64_t salt_period_id(enum salt_period p, int64_t unix_seconds);

/* First second of period `id` (inclusive) and first second of the next
 * period (exclusive end). 0 for SALT_OFF. */
int64_t salt_period_start(enum salt_period p, int64_t id);
int64_t salt_period_end(enum salt_period p, int64_t id);

/* Redis key of the salt of period `id`: "veil:salt:<period>:<id>", e.g.
 * "veil:salt:day:19800". Returns false (out "" when outlen > 0) for
 * SALT_OFF or a too-small buffer; 40 bytes are always enough. */
bool salt_key(enum salt_period p, int64_t id, char *out, size_t outlen);

/* Expiry, in seconds from `now`, for the salt of period `id`: until the end
 * of the following period (the previous salt stays readable for one
 * period, e.g. for late events), capped at the length of the two periods,
 * so it is never more than two periods. Returns 0 when that moment has
 * passed (the salt must not be stored) or for SALT_OFF. */
int64_t salt_key_ttl(enum salt_period p, int64_t id, int64_t now);

#define VISITOR_SALT_BYTES 32
#define VISITOR_HASH_HEX 17 /* 16 lowercase hex digits + NUL */

/* Initialise libsodium (sodium_init; idempotent and thread-safe). Call once
 * at startup before any worker thread. Returns 0, or -1 when libsodium
 * cannot be used (then no salt can be made safely). */
int visitor_init(void);

/* Fill `salt` with fresh random bytes (randombytes_buf). Calls
 * visitor_init() itself and aborts the process if libsodium cannot start:
 * a predictable salt would break P2. The caller wipes the salt with
 * sodium_memzero when it is dropped. */
void visitor_salt_random(uint8_t salt[VISITOR_SALT_BYTES]);

/* The visitor hash as 16 lowercase hex digits into out_hex (NUL-terminated).
 * Hash input, in order: the bytes of `site`, one 0 byte, a family byte
 * (4 for IPv4 - mapped IPv6 counts as IPv4 - 6 for IPv6, 0 otherwise), the
 * 16 address bytes (IPv4: its 4 bytes then 12 zero bytes), then the
 * `ua_len` bytes of `ua` (may be NULL when ua_len is 0).
 * Key: the 32-byte salt; output: 8 bytes (crypto_generichash, BLAKE2b).
 * Intermediate state is wiped. On an internal libsodium failure out_hex is
 * "" (the event is then counted without a visitor). Thread-safe. */
void visitor_hash(const uint8_t salt[VISITOR_SALT_BYTES], const char *site,
                  const struct client_ip *ip, const char *ua, size_t ua_len,
                  char out_hex[VISITOR_HASH_HEX]);

#endif
