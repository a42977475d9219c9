/* enrich.c - the collector's in-memory pipeline for one event (enrich.h).
 *
 * Must never copy the client IP anywhere but the stack variables below,
 * which are wiped on every path out; only the truncated form may be kept,
 * and only with ip_keep=truncated. Never keeps the User-Agent. */
#include "enrich.h"

#include "registry.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "registry.h"
#include "text_rule.h"
#include "url.h"
#include "util.h"
#include "visitor.h"

static bool header_is_one(const char *v)
{
    return v && v[0] == '1' && v[1] == '\0';
}

static const char *strip_www(const char *host)
{
    return strncasecmp(host, "www.", 4) == 0 ? host + 4 : host;
}

bool enrich_site_allowed(const struct collector_config *conf, const char *site)
{
    if (conf->sites.n == 0)
        return true;
    for (size_t i = 0; i < conf->sites.n; i++)
        if (strcasecmp(strip_www(conf->sites.items[i]), strip_www(site)) == 0)
            return true;
    return false;
}

const char *enrich_site_resolve(const struct collector_config *conf,
                                const struct reg_hosts *registry, const char *site)
{
    const char *id = registry_hosts_lookup(registry, site);
    if (!id)
        id = registry_hosts_lookup(registry, strip_www(site)); /* as `sites` does */
    if (id)
        return id;
    if (conf->sites.n == 0 && registry_hosts_count(registry) > 0)
        return NULL; /* the registry is the allowlist */
    return enrich_site_allowed(conf, site) ? site : NULL;
}

/* Copy the string in `src` into the array `dst`: its bytes and NUL, not
 * the whole array (a path field is 2001 bytes, a page path a few dozen). */
#define COPY_STRING(dst, src) copy_string((dst), sizeof(dst), (src))

static void copy_string(char *dst, size_t size, const char *src)
{
    (void)str_copy(dst, size, src, strnlen(src, size - 1)); /* fits: cut to size - 1 */
}

/* utc_day, formatted once per UTC day and thread rather than per event
 * (gmtime_r and snprintf cost more than the rest of the record). */
static void utc_day_cached(int64_t now, char out[11])
{
    static _Thread_local int64_t day = INT64_MIN;
    static _Thread_local char text[11];
    int64_t today = now / 86400 - (now % 86400 < 0);
    if (today != day) {
        utc_day(now, text);
        day = today;
    }
    memcpy(out, text, sizeof text);
}

/* The first client-written text field the text rule (text_rule.h) refuses,
 * by its wire name, or NULL. */
static const char *text_rule_field(const struct raw_event *raw)
{
    if (text_rule_refuses(raw->name, strlen(raw->name)))
        return "n";
    if (text_rule_refuses(raw->url, strlen(raw->url)))
        return "u";
    if (text_rule_refuses(raw->referrer, strlen(raw->referrer)))
        return "r";
    if (text_rule_refuses(raw->domain, strlen(raw->domain)))
        return "d";
    for (size_t i = 0; i < raw->nprops; i++)
        if (text_rule_refuses(raw->props[i].key, strlen(raw->props[i].key)) ||
            text_rule_refuses(raw->props[i].value, strlen(raw->props[i].value)))
            return "p";
    return NULL;
}

/* The query allowlist handed to url_normalise: strip_query=no keeps all. */
static const struct cfg_list *allowlist(const struct collector_config *conf)
{
    static char *all_items[] = {"*"};
    static const struct cfg_list keep_all = {1, all_items};
    return conf->strip_query ? &conf->query_allowlist : &keep_all;
}

/* The client address of the request into *client (the caller wipes it):
 * the peer, or the hop named by the header the trusted proxies write
 * (proxy_header). A client's copy of any other header passes through
 * proxies unchanged and is never read. X-Real-IP holds one address, read
 * like a one-hop X-Forwarded-For. */
static void client_address(const struct enrich_ctx *ctx, const struct request_info *req,
                           struct client_ip *client)
{
    const struct collector_config *conf = ctx->conf;
    struct client_ip peer;
    if (!anon_ip_from_sockaddr(req->peer, &peer)) {
        memset(&peer, 0, sizeof peer);
        peer.family = AF_INET; /* unknown peer: an all-zero address */
    }
    const char *hops = conf->proxy_header == PROXY_HEADER_XFF         ? req->x_forwarded_for
                       : conf->proxy_header == PROXY_HEADER_X_REAL_IP ? req->x_real_ip
                                                                      : NULL;
    const char *forwarded = conf->proxy_header == PROXY_HEADER_FORWARDED ? req->forwarded : NULL;
    if (!anon_client_ip(&peer, ctx->trusted, hops, forwarded, client))
        *client = peer;
    anon_ip_wipe(&peer);
}

enum enrich_outcome enrich_event(const struct enrich_ctx *ctx, const struct request_info *req,
                                 const struct raw_event *raw, struct event_record *out,
                                 char *reason, size_t reasonlen)
{
    const struct collector_config *conf = ctx->conf;
    if (conf->honor_dnt && header_is_one(req->dnt))
        return ENRICH_DROP_DNT;
    if (conf->honor_gpc && header_is_one(req->sec_gpc))
        return ENRICH_DROP_GPC;

    /* Every beacon counts against its client's rate, whatever becomes of
     * it: a flood of malformed, unknown-site or bot beacons is bounded too. */
    struct client_ip client;
    client_address(ctx, req, &client);
    bool allowed = ratelimit_allow(ctx->limiter, &client, clock_ms());
    anon_ip_wipe(&client);
    if (!allowed)
        return ENRICH_RATE_LIMITED;

    const char *field = text_rule_field(raw);
    if (field) {
        str_format(reason, reasonlen, "%s: control or bidirectional formatting character",
                   field);
        return ENRICH_BAD_REQUEST;
    }

    event_record_reset(out);
    struct url_result url;
    if (!url_normalise(raw->url, strlen(raw->url), raw->hash_mode, allowlist(conf), &url,
                       reason, reasonlen))
        return ENRICH_BAD_REQUEST;

    const char *site = raw->domain[0] ? raw->domain : strip_www(url.host);
    if (!*site) {
        str_format(reason, reasonlen, "missing field d");
        return ENRICH_BAD_REQUEST;
    }
    site = enrich_site_resolve(conf, ctx->registry, site);
    if (!site) {
        str_format(reason, reasonlen, "unknown site");
        return ENRICH_UNKNOWN_SITE;
    }
    if (!str_copy(out->site, sizeof out->site, site, strlen(site))) {
        str_format(reason, reasonlen, "d: too long");
        return ENRICH_BAD_REQUEST;
    }

    const char *ua_text = req->user_agent ? req->user_agent : "";
    size_t ua_len = strlen(ua_text);
    struct ua_result ua;
    ua_parse(ctx->ua, ua_text, ua_len, &ua);
    if (conf->bot_filter && ua.is_bot)
        return ENRICH_DROP_BOT;

    /* The IP again: from here to the end, wiped on every path. */
    enum enrich_outcome outcome = ENRICH_RECORD;
    client_address(ctx, req, &client);

    if (ctx->geo && conf->geo != GEO_OFF) {
        struct geo_result geo;
        if (geo_cache_lookup(ctx->geo_cache, ctx->geo, &client, (enum geo_level)conf->geo,
                             &geo)) {
            COPY_STRING(out->country, geo.country);
            COPY_STRING(out->region, geo.region);
            COPY_STRING(out->city, geo.city);
        }
    }
    if (conf->visitor_hash != SALT_OFF) {
        uint8_t salt[VISITOR_SALT_BYTES];
        if (salt_store_get(ctx->salts, req->now, salt))
            visitor_hash(salt, out->site, &client, ua_text, ua_len, out->visitor);
        sodium_memzero(salt, sizeof salt);
    }
    if (conf->ip_keep == IP_KEEP_TRUNCATED) {
        struct client_ip truncated;
        anon_truncate(&client, (int)conf->ipv4_prefix, (int)conf->ipv6_prefix, &truncated);
        anon_ip_format(&truncated, out->ip_truncated, sizeof out->ip_truncated);
        anon_ip_wipe(&truncated);
    }
    anon_ip_wipe(&client);

    /* Derived, non-identifying fields. */
    out->ts = req->now;
    utc_day_cached(req->now, out->day);
    COPY_STRING(out->name, raw->name);
    COPY_STRING(out->path, url.path);
    if (!conf->drop_utm) {
        COPY_STRING(out->utm_source, url.utm_source);
        COPY_STRING(out->utm_medium, url.utm_medium);
        COPY_STRING(out->utm_campaign, url.utm_campaign);
        COPY_STRING(out->utm_term, url.utm_term);
        COPY_STRING(out->utm_content, url.utm_content);
    }
    if (conf->referrer == REFERRER_HOST && raw->referrer[0])
        url_referrer_host(raw->referrer, strlen(raw->referrer), url.host, out->referrer);
    COPY_STRING(out->browser, ua.browser);
    COPY_STRING(out->browser_major, ua.browser_major);
    COPY_STRING(out->os, ua.os);
    out->device = ua.device;
    COPY_STRING(out->screen, screen_class(raw->screen_width));
    out->scroll_depth = raw->scroll_depth;
    out->engaged_ms = raw->engaged_ms;
    out->nprops = raw->nprops;
    memcpy(out->props, raw->props, raw->nprops * sizeof raw->props[0]);
    return outcome;
}
