/* http.h - the collector's HTTP front: worker threads, each with its own
 * event_base, SO_REUSEPORT listener, HTTP server (httpd.h), UA parser and
 * Redis sink.
 *
 * Endpoints: POST /api/event (and OPTIONS preflight), GET /e.gif (pixel),
 * POST umami_path (Umami, default /api/send), GET/POST /matomo.php and
 * /piwik.php (Matomo), GET /veil.js (the tracker), GET /healthz,
 * GET /metrics. Exactly one reply
 * per request; every limit is set explicitly (max_header_bytes,
 * max_body_bytes, timeout_s, request_timeout_s, max_connections). Never
 * logs or answers with an IP or a UA. */
#ifndef VEIL_HTTP_H
#define VEIL_HTTP_H

#include "anon.h"
#include "collector_config.h"
#include "geo.h"
#include "salt.h"
#include "ua.h"

struct collector_server;

/* What SIGHUP can replace while requests are served: the configuration
 * (the directives that apply per request), the GeoIP database and the
 * trusted-proxy list. Workers read the current generation once per request;
 * the caller keeps a retired generation alive until no request can still
 * hold it (collector_server_reload). */
struct collector_live {
    struct collector_config conf;
    struct geo_db *geo;               /* NULL: no geo */
    struct anon_cidr_list *trusted;
};

/* Shared, read-only parts every worker borrows (owned by the caller).
 * `boot` is the first generation: it provides the restart-only settings
 * (listen, threads, redis, spool, limits) and must outlive the server. */
struct collector_shared {
    struct collector_live *boot;
    const struct ua_rules *ua_rules;
    struct salt_store *salts;
    const char *tracker_js;     /* veil.js bytes, NULL when not served */
    size_t tracker_js_len;
    const char *tracker_etag;   /* quoted strong ETag of tracker_js */
};

/* Bind `nthreads` listeners on conf->listen and set up the workers (not yet
 * running). Returns NULL with a reason in err (e.g. address in use). */
struct collector_server *collector_server_new(const struct collector_shared *shared,
                                              int nthreads, char *err, size_t errlen);

/* Start the worker threads. Returns 0 or -1. */
int collector_server_start(struct collector_server *srv);

/* Stop accepting, let each worker flush its Redis buffer for at most
 * `drain_ms`, join the threads. Safe to call from the main thread only. */
void collector_server_stop(struct collector_server *srv, int drain_ms);

void collector_server_free(struct collector_server *srv);

/* Make `next` the generation every new request uses and return the one it
 * replaces, which requests may still be using for a few microseconds: the
 * caller frees it only after a grace period (main.c waits seconds). */
struct collector_live *collector_server_reload(struct collector_server *srv,
                                               struct collector_live *next);

/* Switch the workers to a new site registry snapshot (registry.h; NULL:
 * none) and return the previous one, which requests may still be reading:
 * free it only after a grace period, as a retired generation. */
struct reg_hosts;
const struct reg_hosts *collector_server_set_registry(struct collector_server *srv,
                                                      const struct reg_hosts *next);

#endif
