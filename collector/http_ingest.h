/* http_ingest.h - what the collector's endpoint modules share with http.c
 * (private to collector/http*.c): recording a request's events and
 * answering it. http.c owns the worker, its replies and its counters;
 * http_compat.c serves other trackers' endpoints through these calls.
 *
 * Every function answers at most once and only as its contract says; a
 * request gets exactly one reply. Never logs or answers with an IP or a
 * User-Agent. */
#ifndef VEIL_HTTP_INGEST_H
#define VEIL_HTTP_INGEST_H

#include <stdbool.h>
#include <stddef.h>

#include "httpd.h"
#include "raw_event.h"

struct http_worker;

/* How a request that was accepted (recorded or deliberately dropped) is
 * answered: as the tracker that sent it expects. */
enum reply_style {
    REPLY_EVENT,       /* Veil / Plausible: 202 ok */
    REPLY_PIXEL,       /* Veil's no-script pixel: 200 GIF */
    REPLY_UMAMI,       /* Umami: 200 {} (no cache token, nothing that follows a visitor) */
    REPLY_MATOMO_GET,  /* Matomo image request: 200 GIF */
    REPLY_MATOMO_POST, /* Matomo POST (sendBeacon, XHR, bulk), or GET with send_image=0: 204 */
};

enum preflight_kind {
    PREFLIGHT_EVENT, /* POST/GET with Content-Type */
    PREFLIGHT_UMAMI, /* POST with Content-Type and x-umami-cache */
};

/* What recording the events of one request came to. */
struct ingest_tally {
    size_t recorded, dropped;
    int drop_why; /* http.c's reason of the last drop (DNT, GPC, bot, unknown site) */
};

/* Answer with an error: counted, with `reason` (a fixed text that never
 * quotes input) as the body. */
void http_reply_error(struct http_worker *w, struct httpd_reply *r, int code,
                      const char *reason);

/* Answer an OPTIONS preflight. */
void http_reply_preflight(struct httpd_reply *r, enum preflight_kind kind);

/* True when a body's Content-Type is absent, text/plain or
 * application/json. */
bool http_media_type_ok(const char *content_type);

/* Enrich and queue `raw` once per site it lists (raw->domains, Plausible's
 * "d":"a.com,b.com"); sites Veil does not serve are dropped and counted
 * (http_drop_unknown_site), not refused. Returns 0, or -1 when it has
 * answered the request with an error (400, 429, 503): then nothing more may
 * be recorded for it. raw->domain is overwritten. */
int http_record_event(struct http_worker *w, const struct httpd_request *req,
                      struct httpd_reply *r, struct raw_event *raw, struct ingest_tally *t);

/* An event for a site this instance does not serve (or another tracker's
 * id it does not map): counted (veil_collector_unknown_site_total), logged
 * at most once per 10 s, noted in `t`; the request is still answered as
 * accepted, so no answer tells which sites are tracked. */
void http_drop_unknown_site(struct http_worker *w, struct ingest_tally *t);

/* Answer a request whose events were all recorded or deliberately dropped
 * (`style`); with drop_header, a request whose every event was dropped
 * says why in X-Veil-Dropped (Veil's own /api/event and /e.gif only). */
void http_reply_accepted(struct http_worker *w, struct httpd_reply *r,
                         const struct ingest_tally *t, enum reply_style style);

#endif
