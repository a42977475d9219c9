/* auth.h - bearer tokens of the stats API, kept only as SHA-256 hashes.
 *
 * Grants come from `api_token` (one all-sites token in plain text, hashed
 * at start-up and the plain copy wiped) and `api_tokens` ("site=<sha256
 * hex>" or "*=<sha256 hex>" entries). A request's token is hashed and
 * compared with every grant in constant time (sodium_memcmp). This module
 * must never keep, log or compare a plain-text token. */
#ifndef VEIL_AUTH_H
#define VEIL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define AUTH_HASH_BYTES 32
#define AUTH_TOKEN_MAX 512

struct auth;

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING,    /* no "Authorization: Bearer <token>" header: 401 */
    AUTH_INVALID,    /* a token no grant knows: 401 */
    AUTH_FORBIDDEN,  /* a known token without a grant for the site: 403 */
};

/* Build the grants. `api_token` (may be NULL or "") is hashed and then
 * overwritten with zero bytes in place, so the caller's copy is wiped.
 * Returns NULL with a reason in err when an api_tokens entry is malformed. */
struct auth *auth_new(char *api_token, const struct cfg_list *api_tokens, char *err,
                      size_t errlen);

void auth_free(struct auth *a);

/* Number of grants (0 means every request is refused with 401). */
size_t auth_grant_count(const struct auth *a);

/* Check the Authorization header value (NULL when absent) and hash the
 * token into hash on AUTH_OK. AUTH_MISSING or AUTH_INVALID otherwise; on
 * AUTH_INVALID hash holds the token's SHA-256 too (all zero for a token
 * over AUTH_TOKEN_MAX), so the caller may look it up elsewhere (the site
 * registry's tokens, registry.h). */
enum auth_result auth_identify(const struct auth *a, const char *authorization,
                               unsigned char hash[AUTH_HASH_BYTES]);

/* AUTH_OK when the token `hash` (from auth_identify) may read `site`;
 * AUTH_FORBIDDEN otherwise. site == NULL asks for an all-sites grant. */
enum auth_result auth_check_site(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES],
                                 const char *site);

/* True when `hash` has an all-sites ("*") grant. */
bool auth_all_sites(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES]);

/* The sites `hash` is granted by name: up to `max` pointers (owned by the
 * auth store, valid until auth_free) into out; returns how many. */
size_t auth_named_sites(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES],
                        const char **out, size_t max);

/* SHA-256 of `token` as 64 lowercase hex digits into out (NUL-terminated),
 * the form api_tokens takes; the same as `printf %s "$TOKEN" | sha256sum`.
 * Returns 0, or -1 for an empty or over-long token. */
int auth_hash_token_hex(const char *token, char out[65]);

#endif
