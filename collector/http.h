/* http.h - the collector's HTTP front: worker threads, each with its own
 * event_base, SO_REUSEPORT listener, evhttp, UA parser and Redis sink.
 *
 * Endpoints: POST /api/event (and OPTIONS preflight), GET /e.gif (pixel),
 * GET /veil.js (the tracker), GET /healthz, GET /metrics. Exactly one reply per request; every evhttp
 * limit is set explicitly. Never logs or answers with an IP or a UA. */
#ifndef VEIL_HTTP_H
#define VEIL_HTTP_H

#include "anon.h"
#include "collector_config.h"
#include "geo.h"
#include "salt.h"
#include "ua.h"

struct collector_server;

/* Shared, read-only parts every worker borrows (owned by the caller). */
struct collector_shared {
    const struct collector_config *conf;
    const struct ua_rules *ua_rules;
    const struct geo_db *geo;
    const struct anon_cidr_list *trusted;
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

#endif
