/* enrich.h - turn what the tracker sent, plus what the server sees of the
 * request, into the non-identifying event record.
 *
 * Order (DESIGN.md): privacy signals -> site -> bot filter -> UA parse ->
 * geo lookup -> visitor hash -> truncate or drop the IP -> URL/referrer
 * normalisation. The client IP exists only inside enrich_event, on its
 * stack, and is wiped before it returns, whatever the outcome. */
#ifndef VEIL_ENRICH_H
#define VEIL_ENRICH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "anon.h"
#include "collector_config.h"
#include "event.h"
#include "event_parse.h"
#include "geo.h"
#include "geo_cache.h"
#include "ratelimit.h"
#include "salt.h"
#include "ua.h"

/* What one worker thread needs; all pointers borrowed. */
struct enrich_ctx {
    const struct collector_config *conf;
    struct ua_parser *ua;                 /* this thread's */
    const struct geo_db *geo;             /* NULL: no geo */
    struct geo_cache *geo_cache;          /* this thread's; NULL: look every IP up */
    const struct anon_cidr_list *trusted; /* trusted proxies */
    struct salt_store *salts;
    struct ratelimit *limiter;            /* shared by all threads */
    const struct reg_hosts *registry;     /* live site registry; NULL: none */
};

/* What the server saw of the request; header values may be NULL. */
struct request_info {
    const struct sockaddr *peer;
    const char *x_forwarded_for;
    const char *forwarded;
    const char *x_real_ip;
    const char *user_agent;
    const char *dnt;
    const char *sec_gpc;
    int64_t now; /* unix seconds */
};

enum enrich_outcome {
    ENRICH_RECORD,       /* `out` is ready to push */
    ENRICH_DROP_DNT,     /* answer 202, record nothing */
    ENRICH_DROP_GPC,
    ENRICH_DROP_BOT,
    ENRICH_BAD_REQUEST,  /* 400 with `reason` */
    ENRICH_UNKNOWN_SITE, /* not in `sites`: 202, not recorded (http.c) */
    ENRICH_RATE_LIMITED, /* 429 */
};

/* Build `out` from `raw` and `req`. On ENRICH_BAD_REQUEST / UNKNOWN_SITE a
 * short reason that quotes no user input is written to `reason`. */
enum enrich_outcome enrich_event(const struct enrich_ctx *ctx, const struct request_info *req,
                                 const struct raw_event *raw, struct event_record *out,
                                 char *reason, size_t reasonlen);

/* True when `site` (already lowercased, no "www.") is accepted by the
 * `sites` directive (empty list: every site). */
bool enrich_site_allowed(const struct collector_config *conf, const char *site);

/* The site id an event for `site` is recorded under: the registry's site
 * for that hostname or id (veil-admin site add), else `site` itself when
 * the `sites` directive accepts it, else NULL (unknown site). With both
 * the directive and the registry empty, every site is accepted (open
 * mode). */
struct reg_hosts;
const char *enrich_site_resolve(const struct collector_config *conf,
                                const struct reg_hosts *registry, const char *site);

#endif
