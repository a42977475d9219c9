/* http_compat.c - other trackers' endpoints (http_compat.h): Umami's
 * POST umami_path and Matomo's /matomo.php and /piwik.php. Reading their
 * requests is compat_umami.c's and compat_matomo.c's; recording and
 * answering is http.c's (http_ingest.h).
 *
 * Must never record part of a bulk request that has a bad request in it,
 * never answer with anything that could follow a visitor, and never log or
 * answer with an IP, a User-Agent or a query. */
#include "http_compat.h"

#include <stdbool.h>
#include <stddef.h>

#include "compat_matomo.h"
#include "compat_umami.h"
#include "http_ingest.h"

/* Umami's tracker: POST umami_path (compat_umami.h). Its answer is {},
 * which Umami 2.x keeps as its "cache" and sends back in x-umami-cache:
 * the same two bytes for everyone, so they cannot follow a visitor. */
void http_compat_umami(struct http_worker *w, const struct httpd_request *req,
                       struct httpd_reply *r, const struct collector_config *conf)
{
    if (req->method == HTTPD_OPTIONS) {
        http_reply_preflight(r, PREFLIGHT_UMAMI);
        return;
    }
    if (req->method != HTTPD_POST) {
        http_reply_error(w, r, 405, "use POST");
        return;
    }
    if (!http_media_type_ok(req->header[HTTPD_H_CONTENT_TYPE])) {
        http_reply_error(w, r, 415, "content type must be text/plain or application/json");
        return;
    }
    struct raw_event raw;
    char reason[128] = "";
    switch (compat_umami_parse(req->body, req->body_len, &conf->umami_website_ids, &raw, reason,
                               sizeof reason)) {
    case COMPAT_EVENT: {
        struct ingest_tally t = {0, 0, 0};
        if (http_record_event(w, req, r, &raw, &t) == 0)
            http_reply_accepted(w, r, &t, REPLY_UMAMI);
        return;
    }
    case COMPAT_UNKNOWN_SITE: {
        /* an unmapped website id: accepted, not recorded, counted */
        struct ingest_tally t = {0, 0, 0};
        http_drop_unknown_site(w, &t);
        http_reply_accepted(w, r, &t, REPLY_UMAMI);
        return;
    }
    case COMPAT_NOTHING:
    case COMPAT_BAD_REQUEST:
        break;
    }
    http_reply_error(w, r, 400, reason);
}

/* One Matomo request's parameters: parsed, and recorded when `record`.
 * Returns 0, or -1 when it answered the request with an error. */
static int matomo_one(struct http_worker *w, const struct httpd_request *req,
                      struct httpd_reply *r, const struct collector_config *conf,
                      const char *params, size_t len, bool record, struct ingest_tally *t)
{
    struct raw_event raw;
    char reason[128] = "";
    switch (compat_matomo_parse(params, len, &conf->matomo_site_ids, &raw, reason,
                                sizeof reason)) {
    case COMPAT_EVENT:
        return record ? http_record_event(w, req, r, &raw, t) : 0;
    case COMPAT_NOTHING:
        return 0;
    case COMPAT_UNKNOWN_SITE:
        /* an unmapped idsite: accepted, not recorded, counted */
        if (record)
            http_drop_unknown_site(w, t);
        return 0;
    case COMPAT_BAD_REQUEST:
        break;
    }
    http_reply_error(w, r, 400, reason);
    return -1;
}

/* A bulk body: every request is checked before any is recorded, so a bad
 * one refuses the whole body and records nothing. */
static void matomo_bulk(struct http_worker *w, const struct httpd_request *req,
                        struct httpd_reply *r, const struct collector_config *conf)
{
    static _Thread_local char params[MATOMO_REQUEST_MAX];
    struct ingest_tally t = {0, 0, 0};
    for (int pass = 0; pass < 2; pass++) {
        struct matomo_bulk b;
        char reason[128] = "";
        size_t len;
        int next;
        if (!compat_matomo_bulk_open(&b, req->body, req->body_len, reason, sizeof reason)) {
            http_reply_error(w, r, 400, reason);
            return;
        }
        while ((next = compat_matomo_bulk_next(&b, params, sizeof params, &len)) == 1)
            if (matomo_one(w, req, r, conf, params, len, pass == 1, &t) != 0)
                return;
        if (next < 0) {
            http_reply_error(w, r, 400, reason);
            return;
        }
    }
    http_reply_accepted(w, r, &t, REPLY_MATOMO_POST);
}

/* Matomo's tracker: GET or POST /matomo.php and /piwik.php
 * (compat_matomo.h): a GIF for GET (204 with send_image=0), 204 for POST,
 * as Matomo answers. */
void http_compat_matomo(struct http_worker *w, const struct httpd_request *req,
                        struct httpd_reply *r, const struct collector_config *conf)
{
    struct ingest_tally t = {0, 0, 0};
    if (req->method == HTTPD_OPTIONS) {
        http_reply_preflight(r, PREFLIGHT_EVENT);
        return;
    }
    if (req->method == HTTPD_GET || req->method == HTTPD_HEAD) {
        const char *query = req->query ? req->query : "";
        if (matomo_one(w, req, r, conf, query, req->query_len, true, &t) == 0)
            http_reply_accepted(w, r, &t,
                           compat_matomo_wants_image(query, req->query_len) ? REPLY_MATOMO_GET
                                                                            : REPLY_MATOMO_POST);
        return;
    }
    if (req->method != HTTPD_POST) {
        http_reply_error(w, r, 405, "use GET or POST");
        return;
    }
    if (compat_matomo_is_bulk(req->body, req->body_len)) {
        matomo_bulk(w, req, r, conf);
        return;
    }
    /* a form body (sendBeacon, XHR), or the parameters in the URL */
    const char *params = req->body_len > 0 ? req->body : (req->query ? req->query : "");
    size_t len = req->body_len > 0 ? req->body_len : req->query_len;
    if (matomo_one(w, req, r, conf, params, len, true, &t) == 0)
        http_reply_accepted(w, r, &t, REPLY_MATOMO_POST);
}
