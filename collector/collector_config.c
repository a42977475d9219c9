/* collector_config.c - the collector's directive table and its checks.
 *
 * Each row: name, type, default, bounds, help and privacy meaning. The
 * table is the single source for the config file, --name=value options,
 * --help and deploy/veil.conf (make sample-config). */
#include "collector_config.h"

#include "rcluster.h"

#include <stddef.h>
#include <string.h>

#include "compat_map.h"
#include "geo.h"
#include "log.h"
#include "paths.h"
#include "spool.h"
#include "util.h"
#include "visitor.h"

#define OPT(field) offsetof(struct collector_config, field)

const struct cfg_option collector_options[] = {
    {"listen", CFG_STRING, OPT(listen), "127.0.0.1:8080", 0, 300, NULL,
     "Address and port the beacon endpoint listens on (host:port, [v6]:port).", NULL, false},
    {"admin_listen", CFG_STRING, OPT(admin_listen), "127.0.0.1:9180", 0, 300, NULL,
     "Address and port of the admin endpoints (GET /metrics, and /healthz again), apart from "
     "the public beacon port, which answers /metrics with 404. Keep it on loopback or a "
     "management network. Empty = no admin listener (no /metrics at all).",
     "Metrics identify nobody, but traffic volumes and the unknown-site count are the "
     "operator's business.", false},
    {"redis", CFG_STRING, OPT(redis), "127.0.0.1:6379", 0, 300, NULL,
     "Redis server: host:port or unix:/path/to/socket, or a Redis Cluster as seeds "
     "host:port,host:port,... (each delivery call goes to the node owning its shard's "
     "slot; docs/CLUSTER.md).", NULL, false},
    {"threads", CFG_INT, OPT(threads), "0", 0, 256, NULL,
     "Worker threads, each with its own event loop, listener (SO_REUSEPORT) and Redis "
     "connection; 0 = one per CPU core.", NULL, false},
    {"geo_db", CFG_STRING, OPT(geo_db), "", 0, 1024, NULL,
     "MaxMind City or Country database (.mmdb); empty = no geo lookup.",
     "The lookup happens in memory; only the fields allowed by 'geo' are kept.", false},
    {"geo_db_max_age_days", CFG_INT, OPT(geo_db_max_age_days), "30", 0, 3650, NULL,
     "Warn at start-up and on each reload when geo_db was built more than this many days "
     "ago (its build date is logged and exported as "
     "veil_collector_geoip_build_timestamp_seconds); 0 = never warn. MaxMind rebuilds "
     "GeoLite2 twice a week; docs/DEPLOYMENT.md says how to keep it current.",
     "An old database misplaces visitors whose addresses moved; it never adds data.", false},
    {"geo", CFG_ENUM, OPT(geo), "city", 0, 0, geo_level_names,
     "How precise the stored location is.",
     "off keeps no location; country/region/city keep that level and nothing finer.", false},
    {"ua_regexes", CFG_STRING, OPT(ua_regexes), "/usr/share/uap-core/regexes.yaml", 0, 1024,
     NULL, "uap-core regexes.yaml used to parse User-Agents.",
     "Only browser family+major, OS family and device class are kept, never the User-Agent.",
     false},
    {"ua_cache_entries", CFG_INT, OPT(ua_cache_entries), "10000", 0, 10000000, NULL,
     "Parsed User-Agents cached per thread (LRU); 0 disables the cache.",
     "The cache lives in memory only and is never written anywhere.", false},
    {"bot_filter", CFG_BOOL, OPT(bot_filter), "yes", 0, 0, NULL,
     "Drop events from bots, crawlers, headless browsers and empty User-Agents "
     "(answered 202, counted, not recorded).", NULL, false},
    {"drop_header", CFG_BOOL, OPT(drop_header), "no", 0, 0, NULL,
     "Debugging: answer an event that is not recorded with the header 'X-Veil-Dropped: "
     "dnt|gpc|bot|unknown-site' (like Plausible's x-plausible-dropped). Whatever this says, "
     "each such event is logged at info level with its reason (at most one line per reason per "
     "thread every 10 s).",
     "The header tells the sender only why its own event was dropped; leave it off in "
     "production so bots do not learn how they are detected, and nobody which sites are "
     "tracked (unknown-site).", false},
    {"sites", CFG_LIST, OPT(sites), "", 0, 10000, NULL,
     "Site ids (hostnames) accepted; an event for any other site is answered 202 like any "
     "other, not recorded, and counted in veil_collector_unknown_site_total (a 404 would tell "
     "anyone which sites are tracked). Empty accepts "
     "every site (open mode, logged as a warning at start-up).", NULL, false},
    {"trusted_proxies", CFG_LIST, OPT(trusted_proxies), "", 0, 256, NULL,
     "Peers (IPs or CIDRs) whose X-Forwarded-For / Forwarded headers are believed. Empty = "
     "never trust those headers.",
     "Trusting a proxy you do not run lets anyone choose the IP used for geo and hashing.",
     false},
    {"proxy_header", CFG_ENUM, OPT(proxy_header), "x-forwarded-for", 0, 0,
     CFG_ENUM_NAMES("x-forwarded-for", "forwarded", "x-real-ip"),
     "The one header the trusted proxies write the client address into: X-Forwarded-For, "
     "Forwarded (RFC 7239 for=) or X-Real-IP. Only this header is read, only from "
     "trusted_proxies, from right to left; any other forwarding header is ignored, and a "
     "malformed element makes the request count as the proxy's own "
     "(docs/DEPLOYMENT.md, Proxies).",
     "Naming a header your proxy passes through from clients unchanged lets clients choose "
     "the IP used for geo, hashing and the rate limit.", false},
    {"ipv4_prefix", CFG_INT, OPT(ipv4_prefix), "24", 0, 32, NULL,
     "Bits of an IPv4 address kept when a truncated IP is kept (ip_keep=truncated).",
     "Smaller keeps less: /24 hides the host among 256 addresses, /16 among 65536.", false},
    {"ipv6_prefix", CFG_INT, OPT(ipv6_prefix), "48", 0, 128, NULL,
     "Bits of an IPv6 address kept when a truncated IP is kept (ip_keep=truncated).",
     "/48 is a typical site allocation; /64 can still single out one household.", false},
    {"ip_keep", CFG_ENUM, OPT(ip_keep), "none", 0, 0, CFG_ENUM_NAMES("none", "truncated"),
     "Whether any form of the IP leaves memory.",
     "none: the IP is used for geo and the visitor hash, then wiped. truncated: the "
     "prefix (ipv4_prefix/ipv6_prefix) is stored with the event.", false},
    {"visitor_hash", CFG_ENUM, OPT(visitor_hash), "day", 0, 0, visitor_hash_names,
     "Salt period of the visitor hash (keyed BLAKE2b of site, IP and User-Agent).",
     "Hashes of different periods cannot be linked; off counts no visitors or visits at "
     "all; week/month link a visitor's visits for longer.", false},
    {"honor_dnt", CFG_BOOL, OPT(honor_dnt), "yes", 0, 0, NULL,
     "Do not record requests carrying 'DNT: 1' (answered 202).",
     "Respects the browser's Do Not Track signal.", false},
    {"honor_gpc", CFG_BOOL, OPT(honor_gpc), "yes", 0, 0, NULL,
     "Do not record requests carrying 'Sec-GPC: 1' (answered 202).",
     "Respects Global Privacy Control, a legal opt-out signal in some jurisdictions.",
     false},
    {"strip_query", CFG_BOOL, OPT(strip_query), "yes", 0, 0, NULL,
     "Drop page-URL query strings except utm_* and query_allowlist.",
     "Queries often carry emails, tokens and search terms; 'no' keeps them all.", false},
    {"drop_utm", CFG_BOOL, OPT(drop_utm), "no", 0, 0, NULL,
     "Keep no campaign parameter (utm_source, utm_medium, utm_campaign, utm_term, "
     "utm_content, and the source/ref stand-ins): sources are then referrer hosts only.",
     "The French CNIL's consent exemption for audience measurement reportedly does not "
     "cover campaign tracking: 'yes' meets that condition (docs/PRIVACY.md).", false},
    {"query_allowlist", CFG_LIST, OPT(query_allowlist), "", 0, 64, NULL,
     "Query parameters kept in page paths besides utm_* (e.g. page,lang).",
     "Only list parameters that can never identify a person.", false},
    {"referrer", CFG_ENUM, OPT(referrer), "host", 0, 0, CFG_ENUM_NAMES("host", "off"),
     "What is kept of the referrer.",
     "host keeps only the referring site's host name; off keeps nothing.", false},
    {"max_body_bytes", CFG_INT, OPT(max_body_bytes), "8192", 256, 1048576, NULL,
     "Largest accepted request body; larger gets 413.", NULL, false},
    {"max_header_bytes", CFG_INT, OPT(max_header_bytes), "8192", 1024, 65536, NULL,
     "Largest accepted request line plus headers; larger is refused.", NULL, false},
    {"timeout_s", CFG_INT, OPT(timeout_s), "10", 1, 300, NULL,
     "Seconds a connection may stay idle: between requests (keep-alive), between two reads "
     "of one request, or while a client does not read a reply; then it is closed (with 408 "
     "when part of a request had arrived). A whole request must also arrive within "
     "request_timeout_s.", NULL, false},
    {"request_timeout_s", CFG_INT, OPT(request_timeout_s), "10", 1, 300, NULL,
     "Seconds a client may take to send one whole request (request line, headers and "
     "body), counted from its first byte, however steadily the bytes trickle in; past it, "
     "408 and the connection is closed (slowloris).", NULL, false},
    {"max_connections", CFG_INT, OPT(max_connections), "10000", 1, 1000000, NULL,
     "Client connections held open at most, all threads together. A connection past it is "
     "accepted and closed at once without an answer (counted in "
     "veil_collector_connections_refused_total). The open-file limit is raised to fit when "
     "the hard limit allows.", NULL, false},
    {"max_buffered_events", CFG_INT, OPT(max_buffered_events), "100000", 100, 100000000, NULL,
     "Events held in memory per thread while Redis is slow or down; past it, events go to "
     "the disk spool (spool_dir), and only when that is full too, 503.",
     "Buffered events hold the same derived fields as the stream, never an IP.", false},
    {"max_buffered_bytes", CFG_INT, OPT(max_buffered_bytes), "268435456", 1048576,
     1099511627776LL, NULL,
     "Memory the events held while Redis is slow or down may take, all threads together "
     "(each thread gets an equal share, at least 256 KiB; counted as each event's encoded "
     "size). Past it, "
     "events go to the disk spool like past max_buffered_events, and only when that is "
     "full too, 503. Bounds the collector's memory whatever the size of the events.",
     NULL, false},
    {"batch_wait_us", CFG_INT, OPT(batch_wait_us), "1000", 0, 100000, NULL,
     "How long an event may wait in memory for others to share its one call to Redis "
     "(microseconds; at most 1024 events go per batch, one call and stream entry per shard, "
     "and a full batch leaves at once). It never "
     "delays the answer to the client, only the event's arrival in the stream. Bigger "
     "batches cost Redis less CPU per event (docs/BENCHMARKS.md); 0 = send what arrived in "
     "each event-loop iteration at its end.",
     "A waiting event holds the derived stream fields only, never an IP or a User-Agent.",
     false},
    {"wait_replicas", CFG_INT, OPT(wait_replicas), "0", 0, 16, NULL,
     "Replicas that must confirm a delivery call (Redis WAIT, sent after each call to the "
     "node that took it) before its events leave the collector's memory and spool. 0 = "
     "a call is done when its master answers, and a master that dies can take its last "
     "events with it; 1 on a cluster with a replica per master = an acknowledged event "
     "survives the death of its master (docs/DELIVERY.md \"Redis Cluster: failover\"). "
     "Unconfirmed calls are sent again after backoff (harmless: lane marks), so with no "
     "replica able to confirm, events wait in memory, then the spool, then get 503.",
     NULL, false},
    {"wait_timeout_ms", CFG_INT, OPT(wait_timeout_ms), "1000", 1, 60000, NULL,
     "How long one WAIT (wait_replicas) waits for the replicas, in milliseconds; the "
     "node's other calls from this thread queue behind it meanwhile.",
     NULL, false},
    /* default SHARDS_DEFAULT, bound SHARDS_MAX (include/shard.h) */
    {"shards", CFG_INT, OPT(shards), "16", 1, 1024, NULL,
     "Logical shards of the installation: a site's events go to the stream "
     "veil:{<shard>}:events of its shard. The same for every collector and aggregator "
     "of one Redis; the first to start stores it in veil:meta:shards, and a collector "
     "whose value differs does not start (or, noticed on a reconnect, delivers nothing "
     "until they agree). Chosen at install; changing it is a procedure "
     "(docs/DELIVERY.md).",
     NULL, false},
    {"registry_poll_ms", CFG_INT, OPT(registry_poll_ms), "1000", 0, 60000, NULL,
     "How often the live site registry in Redis (veil-admin site add/remove/rename) is "
     "checked for changes, in milliseconds: one GET per check, the hostnames reloaded only "
     "when they changed. Registry sites are accepted besides the 'sites' list; 0 = never "
     "read the registry.", NULL, false},
    {"spool_dir", CFG_STRING, OPT(spool_dir), "/var/lib/veil/spool", 0, 1000, NULL,
     "Directory of the disk spool (created 0700): events past max_buffered_events wait here "
     "while Redis is away, and what Redis has not acknowledged at shutdown is saved here and "
     "sent by the next start. Must be writable or the collector does not start; one "
     "directory per Redis destination. Empty = no spool (memory only: a restart during an "
     "outage loses the buffer). See docs/DELIVERY.md.",
     "Spool files hold exactly the derived stream fields, never an IP or a User-Agent; they "
     "are deleted once Redis has the events.", false},
    {"spool_max_bytes", CFG_INT, OPT(spool_max_bytes), "1073741824", 65536,
     1099511627776LL, NULL,
     "Disk the spool may use, all threads together (each thread gets an equal share); past "
     "it, 503 with Retry-After.", NULL, false},
    {"spool_fsync", CFG_ENUM, OPT(spool_fsync), "batch", 0, 0, spool_fsync_names,
     "When spooled events are forced to disk: always (before the answer; survives power "
     "loss), batch (within 100 ms; a power loss may lose the last 100 ms), never (the "
     "kernel decides). A collector crash loses nothing spooled with any of them.", NULL,
     false},
    {"rate_limit", CFG_DOUBLE, OPT(rate_limit), "20", 0, 100000, NULL,
     "Requests per second allowed per client on average (token bucket), all threads "
     "together; over it, 429. A client is its IPv4 address or its IPv6 network of "
     "client_ipv6_prefix bits. 0 = no limit.",
     "Clients are told apart by a keyed hash of the IP held in memory only; the IP is not "
     "kept.", false},
    {"rate_burst", CFG_INT, OPT(rate_burst), "100", 1, 1000000, NULL,
     "Requests a client may send at once before rate_limit applies.", NULL, false},
    {"client_ipv6_prefix", CFG_INT, OPT(client_ipv6_prefix), "64", 1, 128, NULL,
     "Bits of an IPv6 address that make one client for rate_limit and "
     "max_client_connections (an IPv4 client is its address). /64 is what one household or "
     "server gets: rotating addresses inside it is still one client.",
     "Clients are told apart by a keyed hash of the address or prefix held in memory only.",
     false},
    {"max_client_connections", CFG_INT, OPT(max_client_connections), "256", 0, 1000000, NULL,
     "Connections one client (address or client_ipv6_prefix network) may hold open at once, "
     "all threads together; past it, a new one is closed at once (counted in "
     "veil_collector_connections_refused_per_client_total). Trusted proxies are not capped. "
     "0 = no cap. Keeps one client from holding every slot of max_connections.",
     NULL, false},
    {"tracker_js", CFG_STRING, OPT(tracker_js), veil_default_tracker_js, 0, 1024, NULL,
     "Built veil.js served at GET /veil.js (read once at start-up); empty = not served. An installed binary's default is its PREFIX/share/veil/veil.js, a development build's is empty.",
     NULL, false},
    {"log_level", CFG_STRING, OPT(log_level), "info", 0, 16, NULL,
     "Lowest level logged to stderr: debug, info, warn or error.",
     "No level ever logs an IP, a User-Agent or a query string.", false},
    {"umami_website_ids", CFG_LIST, OPT(umami_website_ids), "", 0, 10000, NULL,
     "Umami website ids and the Veil site each one counts for, as uuid=site pairs; a "
     "request to umami_path for any other id is answered like the others, not recorded, "
     "and counted as an unknown site (docs/MIGRATE-UMAMI.md).",
     "Umami's distinct id, tag, title and language are never kept; identify is refused.",
     false},
    {"umami_path", CFG_STRING, OPT(umami_path), "/api/send", 1, 200, NULL,
     "Path Umami's tracker posts to (Umami's COLLECT_API_ENDPOINT; its script's "
     "data-host-url plus /api/send by default).", NULL, false},
    {"matomo_site_ids", CFG_LIST, OPT(matomo_site_ids), "", 0, 10000, NULL,
     "Matomo idsite values and the Veil site each one counts for, as id=site pairs; a "
     "request to /matomo.php or /piwik.php for any other id is answered like the others, "
     "not recorded, and counted as an unknown site (docs/MIGRATE-MATOMO.md).",
     "Matomo's visitor ids (_id, uid, cid, _pk_*) are ignored; token_auth overrides (cip, "
     "cdt, country, ...) are refused.", false},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

int collector_config_load(struct collector_config *conf, int argc, char **argv,
                          enum cfg_action *action, char *err, size_t errlen)
{
    memset(conf, 0, sizeof *conf);
    if (cfg_defaults(collector_options, conf, err, errlen) != 0)
        return -1;
    if (cfg_parse_args(collector_options, conf, argc, argv, action, err, errlen) != 0)
        return -1;
    char host[300];
    int port;
    if (!hostport_split(conf->listen, host, sizeof host, &port)) {
        str_format(err, errlen, "listen: expected host:port");
        return -1;
    }
    if (conf->admin_listen[0] && !hostport_split(conf->admin_listen, host, sizeof host, &port)) {
        str_format(err, errlen, "admin_listen: expected host:port (or empty)");
        return -1;
    }
    struct rc_addr seeds[RC_SEEDS_MAX];
    int nseeds;
    char why[200];
    if (!rc_parse_spec(conf->redis, seeds, &nseeds, why, sizeof why)) {
        str_format(err, errlen, "%s", why); /* "redis: expected ..." */
        return -1;
    }
    if (log_level_parse(conf->log_level) < 0) {
        str_format(err, errlen, "log_level: expected debug, info, warn or error");
        return -1;
    }
    static const char *const served[] = {"/api/event", "/e.gif", "/veil.js", "/healthz",
                                         "/metrics", "/matomo.php", "/piwik.php"};
    if (conf->umami_path[0] != '/' || strchr(conf->umami_path, '?') != NULL) {
        str_format(err, errlen, "umami_path: must start with / and hold no query");
        return -1;
    }
    for (size_t i = 0; i < ARRAY_LEN(served); i++) {
        if (strcmp(conf->umami_path, served[i]) == 0) {
            str_format(err, errlen, "umami_path: %s is another endpoint", served[i]);
            return -1;
        }
    }
    if (compat_map_check(&conf->umami_website_ids, "umami_website_ids", err, errlen) != 0 ||
        compat_map_check(&conf->matomo_site_ids, "matomo_site_ids", err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < conf->sites.n; i++) {
        if (!utf8_valid(conf->sites.items[i], strlen(conf->sites.items[i]))) {
            str_format(err, errlen, "sites: item %zu is not valid UTF-8", i + 1);
            return -1;
        }
    }
    return 0;
}

void collector_config_free(struct collector_config *conf)
{
    cfg_free(collector_options, conf);
}
