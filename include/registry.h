/* registry.h - the live site registry in Redis (docs/KEYS.md, "Site
 * registry"): sites, their hostnames, time zones, goals and compatibility
 * ids, and the stats API tokens made by veil-admin (their SHA-256 only).
 *
 * veil-admin writes it; the collector polls REG_VERSION and reloads the
 * hostnames when it moves; the stats API looks unknown tokens up in
 * REG_TOKENS; the aggregator and API may read a site's time zone and goals
 * (registry_site_get). All keys share the hash tag {reg}, so one MULTI
 * changes them together on Redis Cluster too. It must never store or
 * compare a plain-text token, nor anything about a visitor. */
#ifndef VEIL_REGISTRY_H
#define VEIL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define REG_PREFIX "veil:{reg}:"
#define REG_VERSION REG_PREFIX "version"  /* string: INCR on every change */
#define REG_SITES REG_PREFIX "sites"      /* set: site ids */
#define REG_SITE REG_PREFIX "site:"       /* + id: hash of the site's fields */
#define REG_HOSTS REG_PREFIX "hosts"      /* hash: hostname -> site id */
#define REG_TOKENS REG_PREFIX "tokens"    /* hash: sha256 hex -> scope ("*" or a site id) */
#define REG_TOKEN_META REG_PREFIX "token_meta" /* hash: sha256 hex -> "created name" */

#define REG_ID_MAX 253      /* a site id is a hostname */
#define REG_HOSTS_MAX 64    /* hostnames per site */
#define REG_GOALS_MAX 64    /* goals per site */
#define REG_FIELD_MAX 1024  /* any one stored field */

/* One site as stored (strings NUL-terminated; lists newline-separated). */
struct reg_site {
    char id[REG_ID_MAX + 1];
    char hostnames[REG_FIELD_MAX]; /* "a.example\nb.example" (the id is always one) */
    char timezone[64];             /* IANA name, e.g. "Europe/Paris" */
    char goals[REG_FIELD_MAX];     /* lines "event:Signup", "page:/blog/..." (* = any run) */
    char umami_id[64];             /* Umami website id (compat), or "" */
    char matomo_id[32];            /* Matomo idsite (compat), or "" */
    long shard;                    /* shard_of_site() when added, -1 unknown */
    long long created;             /* unix seconds */
};

/* Connect to "host:port", "host:port,host:port..." (Redis Cluster seeds)
 * or "unix:/path" with a timeout for connect and each command: on a
 * cluster, to the node owning the registry's slot ({reg}). NULL with a
 * reason in err. */
redisContext *registry_connect(const char *addr, int timeout_ms, char *err, size_t errlen);

/* The registry's version (0 when never written), or -1 on a Redis error. */
long long registry_version(redisContext *rc);

/* Read one site. 1 found, 0 absent, -1 Redis error (reason in err). */
int registry_site_get(redisContext *rc, const char *id, struct reg_site *out, char *err,
                      size_t errlen);

/* A site's goals as "kind:pattern" lines: true when the event (`name`,
 * `path`) matches one of them, with '*' matching any run of characters. */
bool registry_goal_matches(const struct reg_site *site, const char *name, const char *path);

/* One goal line ("event:<name glob>" or "page:<path glob>", len bytes, not
 * NUL-terminated): true when the event matches it. An event goal never
 * matches a pageview; a page goal matches pageviews only. */
bool registry_goal_line_matches(const char *line, size_t len, const char *name,
                                const char *path);

/* The collector's view: every hostname and site id mapped to its site id,
 * sorted for binary search. Immutable once built. */
struct reg_hosts;

/* Load the hosts map. NULL with a reason on a Redis error; an empty
 * registry gives a map with no entries. */
struct reg_hosts *registry_hosts_load(redisContext *rc, char *err, size_t errlen);
void registry_hosts_free(struct reg_hosts *h);
size_t registry_hosts_count(const struct reg_hosts *h);
/* The site id `host` belongs to (case-insensitive), or NULL. */
const char *registry_hosts_lookup(const struct reg_hosts *h, const char *host);

/* The scope of a token given by its SHA-256 (32 bytes): 1 with the scope
 * ("*" or a site id) in scope, 0 unknown, -1 Redis error. */
int registry_token_scope(redisContext *rc, const unsigned char hash[32], char *scope,
                         size_t scopelen);

/* True when `tz` names a zone file under /usr/share/zoneinfo (or
 * $VEIL_ZONEINFO): letters, digits, '/', '_', '-', '+' only, no "..". */
bool registry_timezone_valid(const char *tz);

#endif
