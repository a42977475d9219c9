/* http.c - the collector's worker threads and endpoints (http.h), served by
 * httpd.c. Recording a request's events and answering it are shared with
 * the other trackers' endpoints in http_compat.c (http_ingest.h).
 *
 * Must never put the client IP, the User-Agent or a request's query string
 * in a log line or a response. Each request gets exactly one reply. The
 * headers of every reply are fixed texts built once (the ETag ones at
 * start-up); httpd adds Date, Content-Length and Connection. */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "enrich.h"
#include "event_parse.h"
#include "geo.h"
#include "http_compat.h"
#include "http_ingest.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "ratelimit.h"
#include "sink_redis.h"
#include "util.h"

/* File descriptors besides client connections: listeners, Redis, spool
 * files, the GeoIP database, logs. */
#define FD_RESERVE 256

/* Networks (/24, /48) whose location each worker remembers: the few
 * thousand a site's visitors come from most of the day. */
#define GEO_CACHE_ENTRIES 4096

/* Clients the rate limiter and the connection cap tell apart at once
 * (about 2.5 MB for both tables, whatever the traffic). */
#define RATELIMIT_SLOTS 65536

/* Connections the admin listener holds at once (scrapers, health checks). */
#define ADMIN_MAX_CONNECTIONS 64

/* Why an accepted event was not recorded (drop_texts below). */
enum drop_reason { DROP_DNT, DROP_GPC, DROP_BOT, DROP_UNKNOWN_SITE, DROP__COUNT };

struct http_worker {
    int id;
    struct collector_server *srv;
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct httpd *httpd;
    struct httpd *admin;     /* worker 0 only: the admin listener (admin_listen) */
    struct sink *sink;
    struct ua_parser *ua;
    struct geo_cache *geo_cache;

    struct metrics metrics;
    struct drop_log {
        uint64_t last_ms;    /* when this reason was last logged */
        uint64_t suppressed; /* drops of this reason not logged since */
    } drops[DROP__COUNT];    /* enum drop_reason */
    struct event *stop_ev;
    struct event *drain_ev;
    uint64_t drain_deadline;
};

struct collector_server {
    struct collector_shared shared;
    _Atomic(struct collector_live *) live;
    _Atomic(const struct reg_hosts *) registry; /* NULL: none loaded yet */
    int nworkers;
    struct http_worker *workers;
    struct metrics **metric_ptrs;
    int drain_ms;
    _Atomic long open_connections; /* all workers: max_connections */
    _Atomic long admin_connections; /* the admin listener's own: ADMIN_MAX_CONNECTIONS */
    struct metrics admin_metrics;   /* its connection counters, apart from the public ones */
    struct ratelimit *limiter;     /* all workers: rate and connections per client */
    char *tracker_head;            /* 200 headers of /veil.js, with its ETag */
    char *tracker_head_304;
};

/* A transparent 1x1 GIF. */
static const unsigned char pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b};

#define CORS "Access-Control-Allow-Origin: *\r\n"
#define NO_STORE                                                      \
    "Cache-Control: no-store, no-cache, must-revalidate, max-age=0\r\n" \
    "Pragma: no-cache\r\n"                                            \
    "Expires: 0\r\n"
#define TEXT_PLAIN "Content-Type: text/plain; charset=utf-8\r\n"
#define TRACKER_CACHE "Cache-Control: public, max-age=3600\r\n"

static const char head_accepted[] = "HTTP/1.1 202 Accepted\r\n" CORS NO_STORE TEXT_PLAIN;
static const char head_pixel[] = "HTTP/1.1 200 OK\r\n" CORS NO_STORE "Content-Type: image/gif\r\n";
static const char head_preflight[] = "HTTP/1.1 204 No Content\r\n" CORS
                                     "Access-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
                                     "Access-Control-Allow-Headers: Content-Type\r\n"
                                     "Access-Control-Max-Age: 86400\r\n";
static const char head_umami[] =
    "HTTP/1.1 200 OK\r\n" CORS NO_STORE "Content-Type: application/json\r\n";
static const char head_no_content[] = "HTTP/1.1 204 No Content\r\n" CORS NO_STORE;
static const char head_umami_preflight[] =
    "HTTP/1.1 204 No Content\r\n" CORS "Access-Control-Allow-Methods: POST, OPTIONS\r\n"
    "Access-Control-Allow-Headers: Content-Type, x-umami-cache\r\n"
    "Access-Control-Max-Age: 86400\r\n";
static const char head_healthz[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" NO_STORE;
static const char head_metrics[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n" NO_STORE;

#define HEAD_LEN(h) (sizeof(h) - 1)

/* Why an accepted event was not recorded: the info log line and, when the
 * operator turns drop_header on, the X-Veil-Dropped header of the answer. */
#define DROP_LOG_EVERY_MS 10000
static const struct drop_text {
    const char *name;    /* X-Veil-Dropped value */
    const char *why;     /* the log line's explanation */
    const char *head;    /* 202 answer with the header */
    const char *pixel;   /* pixel answer with the header */
} drop_texts[] = {
    {"dnt", "the request carries 'DNT: 1' (honor_dnt)",
     "HTTP/1.1 202 Accepted\r\n" CORS NO_STORE TEXT_PLAIN "X-Veil-Dropped: dnt\r\n",
     "HTTP/1.1 200 OK\r\n" CORS NO_STORE "Content-Type: image/gif\r\nX-Veil-Dropped: dnt\r\n"},
    {"gpc", "the request carries 'Sec-GPC: 1' (honor_gpc)",
     "HTTP/1.1 202 Accepted\r\n" CORS NO_STORE TEXT_PLAIN "X-Veil-Dropped: gpc\r\n",
     "HTTP/1.1 200 OK\r\n" CORS NO_STORE "Content-Type: image/gif\r\nX-Veil-Dropped: gpc\r\n"},
    {"bot", "its User-Agent is empty or looks like a bot, crawler or headless browser "
            "(bot_filter; send a browser's User-Agent when testing by hand)",
     "HTTP/1.1 202 Accepted\r\n" CORS NO_STORE TEXT_PLAIN "X-Veil-Dropped: bot\r\n",
     "HTTP/1.1 200 OK\r\n" CORS NO_STORE "Content-Type: image/gif\r\nX-Veil-Dropped: bot\r\n"},
    {"unknown-site", "its site is neither in 'sites' nor in the site registry (answered like "
                     "any other: a 404 would tell anyone which sites are tracked)",
     "HTTP/1.1 202 Accepted\r\n" CORS NO_STORE TEXT_PLAIN "X-Veil-Dropped: unknown-site\r\n",
     "HTTP/1.1 200 OK\r\n" CORS NO_STORE
     "Content-Type: image/gif\r\nX-Veil-Dropped: unknown-site\r\n"},
};

/* Log why an event was not recorded, at most once per reason per worker
 * every DROP_LOG_EVERY_MS (a bot storm must not flood the log); the line
 * names the reason only, never the request's IP, User-Agent or URL. */
static void log_drop(struct http_worker *w, enum drop_reason why)
{
    struct drop_log *d = &w->drops[why];
    uint64_t now = clock_ms();
    if (d->last_ms != 0 && now - d->last_ms < DROP_LOG_EVERY_MS) {
        d->suppressed++;
        return;
    }
    if (d->suppressed)
        log_info("event not counted: %s (and %llu more for this reason since the last line)",
                 drop_texts[why].why, (unsigned long long)d->suppressed);
    else
        log_info("event not counted: %s", drop_texts[why].why);
    d->last_ms = now;
    d->suppressed = 0;
}

/* Every error a worker answers: its headers and its counter. */
static const struct error_reply {
    int code;
    const char *head;
    enum metric counter; /* M__COUNT: none beyond M_REQUESTS */
} error_replies[] = {
    {400, "HTTP/1.1 400 Bad Request\r\n" CORS NO_STORE TEXT_PLAIN, M_BAD_REQUEST},
    {404, "HTTP/1.1 404 Not Found\r\n" CORS NO_STORE TEXT_PLAIN, M_NOT_FOUND},
    {405, "HTTP/1.1 405 Method Not Allowed\r\n" CORS NO_STORE TEXT_PLAIN
          "Allow: GET, POST, OPTIONS\r\n", M_BAD_METHOD},
    {408, "HTTP/1.1 408 Request Timeout\r\n" CORS NO_STORE TEXT_PLAIN, M_REQUEST_TIMEOUT},
    {413, "HTTP/1.1 413 Payload Too Large\r\n" CORS NO_STORE TEXT_PLAIN, M_TOO_LARGE},
    {415, "HTTP/1.1 415 Unsupported Media Type\r\n" CORS NO_STORE TEXT_PLAIN, M_BAD_MEDIA_TYPE},
    {429, "HTTP/1.1 429 Too Many Requests\r\n" CORS NO_STORE TEXT_PLAIN "Retry-After: 1\r\n",
     M_RATE_LIMITED},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n" CORS NO_STORE TEXT_PLAIN,
     M_HEADER_TOO_LARGE},
    {503, "HTTP/1.1 503 Service Unavailable\r\n" CORS NO_STORE TEXT_PLAIN "Retry-After: 5\r\n",
     M_UNAVAILABLE},
    {500, "HTTP/1.1 500 Internal Server Error\r\n" CORS NO_STORE TEXT_PLAIN, M__COUNT},
};

/* The one place a worker answers with an error: count it, give a reason
 * (a fixed text that never quotes input). */
static void reply_error(struct http_worker *w, struct httpd_reply *r, int code,
                        const char *reason)
{
    const struct error_reply *e = &error_replies[ARRAY_LEN(error_replies) - 1];
    for (size_t i = 0; i < ARRAY_LEN(error_replies); i++)
        if (error_replies[i].code == code)
            e = &error_replies[i];
    if (e->counter != M__COUNT)
        metrics_inc(&w->metrics, e->counter);
    if (code == 400)
        metrics_reason(reason);
    char body[192];
    size_t len = strnlen(reason, sizeof body - 2);
    memcpy(body, reason, len);
    body[len++] = '\n';
    httpd_reply(r, e->code, e->head, strlen(e->head), body, len);
}

int http_record_event(struct http_worker *w, const struct httpd_request *req,
                      struct httpd_reply *r, struct raw_event *raw, struct ingest_tally *t)
{
    struct sockaddr_in none = {.sin_family = AF_INET};
    struct request_info info = {
        .peer = req->peer ? req->peer : (const struct sockaddr *)&none,
        .x_forwarded_for = req->header[HTTPD_H_X_FORWARDED_FOR],
        .forwarded = req->header[HTTPD_H_FORWARDED],
        .x_real_ip = req->header[HTTPD_H_X_REAL_IP],
        .user_agent = req->header[HTTPD_H_USER_AGENT],
        .dnt = req->header[HTTPD_H_DNT],
        .sec_gpc = req->header[HTTPD_H_SEC_GPC],
        .now = (int64_t)time(NULL),
    };
    struct event_record ev;
    char reason[128] = "";
    struct collector_live *live = atomic_load_explicit(&w->srv->live, memory_order_acquire);
    struct enrich_ctx ctx = {&live->conf,   w->ua,
                             live->geo,     w->geo_cache,
                             live->trusted, w->srv->shared.salts,
                             w->srv->limiter,
                             atomic_load_explicit(&w->srv->registry, memory_order_acquire)};
    for (size_t i = 0; i < raw->ndomains; i++) {
        memcpy(raw->domain, raw->domains[i], strlen(raw->domains[i]) + 1);
        enum enrich_outcome outcome = enrich_event(&ctx, &info, raw, &ev, reason, sizeof reason);
        switch (outcome) {
        case ENRICH_BAD_REQUEST:
            reply_error(w, r, 400, reason);
            return -1;
        case ENRICH_RATE_LIMITED:
            reply_error(w, r, 429, "rate limit exceeded, slow down");
            return -1;
        case ENRICH_UNKNOWN_SITE:
            /* answered like a recorded event, not recorded, counted: a 404
             * would tell anyone which sites this instance tracks
             * (docs/DESIGN.md, Threat model); the next listed site may be
             * one it serves */
            http_drop_unknown_site(w, t);
            continue;
        case ENRICH_DROP_DNT:
        case ENRICH_DROP_GPC:
        case ENRICH_DROP_BOT: {
            static const enum metric counter[DROP__COUNT] = {M_DNT, M_GPC, M_BOT,
                                                             M_UNKNOWN_SITE};
            enum drop_reason why = outcome == ENRICH_DROP_DNT   ? DROP_DNT
                                   : outcome == ENRICH_DROP_GPC ? DROP_GPC
                                                                : DROP_BOT;
            metrics_inc(&w->metrics, counter[why]);
            log_drop(w, why);
            t->dropped++;
            t->drop_why = (int)why;
            return 0; /* the same for every site it lists */
        }
        case ENRICH_RECORD:
            if (sink_push(w->sink, &ev) != 0) {
                reply_error(w, r, 503, "buffer full, retry later");
                return -1;
            }
            metrics_inc(&w->metrics, M_ACCEPTED);
            t->recorded++;
            break;
        }
    }
    return 0;
}

void http_drop_unknown_site(struct http_worker *w, struct ingest_tally *t)
{
    metrics_inc(&w->metrics, M_UNKNOWN_SITE);
    log_drop(w, DROP_UNKNOWN_SITE);
    t->dropped++;
    t->drop_why = (int)DROP_UNKNOWN_SITE;
}

void http_reply_accepted(struct http_worker *w, struct httpd_reply *r,
                         const struct ingest_tally *t, enum reply_style style)
{
    struct collector_live *live = atomic_load_explicit(&w->srv->live, memory_order_acquire);
    if (t->dropped > 0 && t->recorded == 0 && live->conf.drop_header) {
        /* why it was not recorded (drop_header): Veil's own two styles */
        const struct drop_text *d = &drop_texts[t->drop_why];
        if (style == REPLY_EVENT) {
            httpd_reply(r, 202, d->head, strlen(d->head), "ok", 2);
            return;
        }
        if (style == REPLY_PIXEL) {
            httpd_reply(r, 200, d->pixel, strlen(d->pixel), (const char *)pixel_gif,
                        sizeof pixel_gif);
            return;
        }
    }
    switch (style) {
    case REPLY_EVENT:
        httpd_reply(r, 202, head_accepted, HEAD_LEN(head_accepted), "ok", 2);
        break;
    case REPLY_PIXEL:
        if (t->recorded > 0)
            metrics_inc(&w->metrics, M_PIXEL);
        /* fall through */
    case REPLY_MATOMO_GET:
        httpd_reply(r, 200, head_pixel, HEAD_LEN(head_pixel), (const char *)pixel_gif,
                    sizeof pixel_gif);
        break;
    case REPLY_UMAMI:
        httpd_reply(r, 200, head_umami, HEAD_LEN(head_umami), "{}", 2);
        break;
    case REPLY_MATOMO_POST:
        httpd_reply(r, 204, head_no_content, HEAD_LEN(head_no_content), NULL, 0);
        break;
    }
}

/* Enrich and queue one parsed event; answers the request. */
static void accept_event(struct http_worker *w, const struct httpd_request *req,
                         struct httpd_reply *r, struct raw_event *raw, enum reply_style style)
{
    struct ingest_tally t = {0, 0, 0};
    if (http_record_event(w, req, r, raw, &t) == 0)
        http_reply_accepted(w, r, &t, style);
}

static bool media_type_ok(const char *ct)
{
    if (!ct)
        return true; /* sendBeacon with a string always sets one; curl may not */
    size_t len = strcspn(ct, ";");
    while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    return (len == 10 && strncasecmp(ct, "text/plain", 10) == 0) ||
           (len == 16 && strncasecmp(ct, "application/json", 16) == 0);
}

void http_reply_error(struct http_worker *w, struct httpd_reply *r, int code,
                      const char *reason)
{
    reply_error(w, r, code, reason);
}

void http_reply_preflight(struct httpd_reply *r, enum preflight_kind kind)
{
    if (kind == PREFLIGHT_UMAMI)
        httpd_reply(r, 204, head_umami_preflight, HEAD_LEN(head_umami_preflight), NULL, 0);
    else
        httpd_reply(r, 204, head_preflight, HEAD_LEN(head_preflight), NULL, 0);
}

bool http_media_type_ok(const char *content_type)
{
    return media_type_ok(content_type);
}

static void event_request(struct http_worker *w, const struct httpd_request *req,
                          struct httpd_reply *r)
{
    if (req->method == HTTPD_OPTIONS) {
        httpd_reply(r, 204, head_preflight, HEAD_LEN(head_preflight), NULL, 0);
        return;
    }
    if (req->method != HTTPD_POST) {
        reply_error(w, r, 405, "use POST");
        return;
    }
    if (!media_type_ok(req->header[HTTPD_H_CONTENT_TYPE])) {
        reply_error(w, r, 415, "content type must be text/plain or application/json");
        return;
    }
    struct raw_event raw;
    char reason[128] = "";
    if (!event_parse_json(req->body, req->body_len, &raw, reason, sizeof reason)) {
        reply_error(w, r, 400, reason);
        return;
    }
    accept_event(w, req, r, &raw, REPLY_EVENT);
}

static void pixel_request(struct http_worker *w, const struct httpd_request *req,
                          struct httpd_reply *r)
{
    if (req->method != HTTPD_GET && req->method != HTTPD_HEAD) {
        reply_error(w, r, 405, "use GET");
        return;
    }
    struct raw_event raw;
    char reason[128] = "";
    if (!event_parse_query(req->query ? req->query : "", req->query_len, &raw, reason,
                           sizeof reason)) {
        reply_error(w, r, 400, reason);
        return;
    }
    accept_event(w, req, r, &raw, REPLY_PIXEL);
}

static void tracker_request(struct http_worker *w, const struct httpd_request *req,
                            struct httpd_reply *r)
{
    const struct collector_server *srv = w->srv;
    const struct collector_shared *sh = &srv->shared;
    if (!sh->tracker_js) {
        reply_error(w, r, 404, "tracker not configured (tracker_js)");
        return;
    }
    if (req->method != HTTPD_GET && req->method != HTTPD_HEAD) {
        reply_error(w, r, 405, "use GET");
        return;
    }
    const char *inm = req->header[HTTPD_H_IF_NONE_MATCH];
    if (inm && strstr(inm, sh->tracker_etag)) {
        httpd_reply(r, 304, srv->tracker_head_304, strlen(srv->tracker_head_304), NULL, 0);
        return;
    }
    httpd_reply(r, 200, srv->tracker_head, strlen(srv->tracker_head), sh->tracker_js,
                sh->tracker_js_len);
}

static void healthz_request(struct http_worker *w, struct httpd_reply *r)
{
    char body[128];
    str_format(body, sizeof body, "{\"status\":\"ok\",\"redis\":\"%s\",\"buffered\":%zu}\n",
               sink_connected(w->sink) ? "connected" : "disconnected", sink_pending(w->sink));
    httpd_reply(r, 200, head_healthz, HEAD_LEN(head_healthz), body, strlen(body));
}

static void metrics_request(struct http_worker *w, struct httpd_reply *r)
{
    struct evbuffer *body = evbuffer_new();
    if (!body) {
        reply_error(w, r, 503, "out of memory, retry later");
        return;
    }
    metrics_render(w->srv->metric_ptrs, w->srv->nworkers, body);
    struct collector_live *live = atomic_load_explicit(&w->srv->live, memory_order_acquire);
    prom_gauge(body, "veil_collector_geoip_build_timestamp_seconds",
               "Build time of the GeoIP database in use (its metadata's build_epoch; 0 = no "
               "database).",
               (double)geo_db_build_epoch(live->geo));
    size_t len = evbuffer_get_length(body);
    const char *text = len ? (const char *)evbuffer_pullup(body, (ev_ssize_t)len) : "";
    if (!text) {
        evbuffer_free(body);
        reply_error(w, r, 503, "out of memory, retry later");
        return;
    }
    httpd_reply(r, 200, head_metrics, HEAD_LEN(head_metrics), text, len);
    evbuffer_free(body);
}

static bool path_is(const struct httpd_request *req, const char *path, size_t len)
{
    return req->path_len == len && memcmp(req->path, path, len) == 0;
}

#define PATH_IS(req, lit) path_is((req), (lit), sizeof(lit) - 1)

static struct collector_live *live_conf(struct http_worker *w)
{
    return atomic_load_explicit(&w->srv->live, memory_order_acquire);
}

static void request_cb(void *arg, const struct httpd_request *req, struct httpd_reply *r)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    if (PATH_IS(req, "/api/event"))
        event_request(w, req, r);
    else if (PATH_IS(req, "/e.gif"))
        pixel_request(w, req, r);
    else if (PATH_IS(req, "/matomo.php") || PATH_IS(req, "/piwik.php"))
        http_compat_matomo(w, req, r, &live_conf(w)->conf);
    else if (path_is(req, live_conf(w)->conf.umami_path, strlen(live_conf(w)->conf.umami_path)))
        http_compat_umami(w, req, r, &live_conf(w)->conf);
    else if (PATH_IS(req, "/veil.js"))
        tracker_request(w, req, r);
    else if (PATH_IS(req, "/healthz"))
        healthz_request(w, r);
    else
        reply_error(w, r, 404, "no such endpoint"); /* /metrics too: admin_listen */
}

/* The admin listener (admin_listen, loopback by default): /metrics and
 * /healthz, nothing a beacon uses. */
static void admin_request_cb(void *arg, const struct httpd_request *req, struct httpd_reply *r)
{
    struct http_worker *w = arg;
    if (req->method != HTTPD_GET && req->method != HTTPD_HEAD)
        reply_error(w, r, 405, "use GET");
    else if (PATH_IS(req, "/metrics"))
        metrics_request(w, r);
    else if (PATH_IS(req, "/healthz"))
        healthz_request(w, r);
    else
        reply_error(w, r, 404, "no such endpoint");
}

/* Requests httpd could not hand over: malformed, too large, too slow. */
static void protocol_error_cb(void *arg, int status, const char *reason, struct httpd_reply *r)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    reply_error(w, r, status, reason);
}

/* Per-client connection cap (max_client_connections): a trusted proxy
 * carries many clients and is not capped; anyone else is counted under
 * the keyed hash of its address or /64 (ratelimit.h). */
static bool admit_cb(void *arg, const struct sockaddr *peer, uint32_t *ticket)
{
    struct http_worker *w = arg;
    struct client_ip ip;
    *ticket = UINT32_MAX;
    if (!anon_ip_from_sockaddr(peer, &ip))
        return true; /* a unix socket or the like: no address to count */
    struct collector_live *live = atomic_load_explicit(&w->srv->live, memory_order_acquire);
    bool ok = anon_cidr_contains(live->trusted, &ip) ||
              ratelimit_conn_enter(w->srv->limiter, &ip, ticket);
    anon_ip_wipe(&ip);
    return ok;
}

static void release_cb(void *arg, uint32_t ticket)
{
    struct http_worker *w = arg;
    ratelimit_conn_leave(w->srv->limiter, ticket);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg);
static void drain_cb(evutil_socket_t fd, short what, void *arg);

static int worker_init(struct collector_server *srv, struct http_worker *w, int id, char *err,
                       size_t errlen)
{
    const struct collector_config *conf = &srv->shared.boot->conf;
    w->id = id;
    w->srv = srv;
    int fd = httpd_listen(conf->listen, true, err, errlen);
    if (fd < 0)
        return -1;
    /* The epoll changelist folds the add/delete pairs of a keep-alive
     * connection's read and write events within one loop iteration into at
     * most one epoll_ctl (0.16 -> 0.02 per request in `make bench`). Its
     * known caveat, descriptors shared through dup(), does not arise here. */
    struct event_config *ec = event_config_new();
    if (ec)
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = ec ? event_base_new_with_config(ec) : NULL;
    if (ec)
        event_config_free(ec);
    if (!w->base) {
        close(fd);
        str_format(err, errlen, "cannot create the event loop");
        return -1;
    }
    struct httpd_config hc = {
        .max_header_bytes = (size_t)conf->max_header_bytes,
        .max_body_bytes = (size_t)conf->max_body_bytes,
        .timeout_s = (int)conf->timeout_s,
        .request_timeout_s = (int)conf->request_timeout_s,
        .max_connections = (long)conf->max_connections,
        .open_connections = &srv->open_connections,
        .metrics = &w->metrics,
        .handler = request_cb,
        .error = protocol_error_cb,
        .arg = w,
        .admit = admit_cb,
        .release = release_cb,
    };
    w->httpd = httpd_new(w->base, fd, &hc);
    if (!w->httpd) {
        str_format(err, errlen, "cannot accept on the listener");
        return -1;
    }
    if (id == 0 && conf->admin_listen[0]) {
        int afd = httpd_listen(conf->admin_listen, false, err, errlen);
        if (afd < 0) {
            str_format(err, errlen, "admin_listen %s: cannot listen", conf->admin_listen);
            return -1;
        }
        struct httpd_config ac = hc;
        ac.handler = admin_request_cb;
        ac.max_connections = ADMIN_MAX_CONNECTIONS; /* its own slots: a full public */
        ac.open_connections = &srv->admin_connections; /* side never locks it out */
        ac.metrics = &srv->admin_metrics;
        ac.admit = NULL; /* the operator's own tools, not capped per client */
        ac.release = NULL;
        w->admin = httpd_new(w->base, afd, &ac);
        if (!w->admin) {
            str_format(err, errlen, "cannot accept on the admin listener");
            return -1;
        }
    }
    w->ua = ua_parser_new(srv->shared.ua_rules, (size_t)conf->ua_cache_entries);
    w->geo_cache = geo_cache_new(GEO_CACHE_ENTRIES);
    w->sink = sink_new(w->base, conf, id, srv->nworkers, &w->metrics, err, errlen);
    if (!w->sink)
        return -1; /* err says why (e.g. spool_dir) */
    if (!w->ua || !w->geo_cache) {
        str_format(err, errlen, "cannot set up worker %d", id);
        return -1;
    }
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_cb, w);
    return 0;
}

/* Room for max_connections open sockets: raise the soft open-file limit
 * up to the hard one if needed, and say so when even that is too low. */
static void fit_open_files(long max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t to = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
        struct rlimit raised = {to, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = to;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        log_warn("max_connections %ld needs %llu open files, the limit is %llu: connections "
                 "past it wait in the listen backlog",
                 max_connections, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

static char *tracker_head(const char *status_line, const char *etag, bool with_type)
{
    char head[512];
    str_format(head, sizeof head, "%s" CORS TRACKER_CACHE "ETag: %s\r\n%s", status_line, etag,
               with_type ? "Content-Type: text/javascript; charset=utf-8\r\n" : "");
    return xstrdup(head);
}

struct collector_server *collector_server_new(const struct collector_shared *shared,
                                              int nthreads, char *err, size_t errlen)
{
    struct collector_server *srv = xcalloc(1, sizeof *srv);
    srv->shared = *shared;
    atomic_store(&srv->live, shared->boot);
    atomic_store(&srv->open_connections, 0);
    atomic_store(&srv->admin_connections, 0);
    const char *etag = shared->tracker_etag ? shared->tracker_etag : "\"\"";
    srv->tracker_head = tracker_head("HTTP/1.1 200 OK\r\n", etag, true);
    srv->tracker_head_304 = tracker_head("HTTP/1.1 304 Not Modified\r\n", etag, false);
    srv->workers = xcalloc((size_t)nthreads, sizeof *srv->workers);
    srv->metric_ptrs = xcalloc((size_t)nthreads, sizeof *srv->metric_ptrs);
    for (int i = 0; i < nthreads; i++)
        srv->metric_ptrs[i] = &srv->workers[i].metrics;
    srv->nworkers = nthreads;
    const struct collector_config *conf = &shared->boot->conf;
    struct ratelimit_config rc = {
        .per_second = conf->rate_limit,
        .burst = (double)conf->rate_burst,
        .slots = RATELIMIT_SLOTS,
        .ipv6_prefix = (int)conf->client_ipv6_prefix,
        .max_connections = (long)conf->max_client_connections,
    };
    srv->limiter = ratelimit_new(&rc);
    fit_open_files((long)conf->max_connections);
    for (int i = 0; i < nthreads; i++) {
        if (worker_init(srv, &srv->workers[i], i, err, errlen) != 0) {
            collector_server_free(srv);
            return NULL;
        }
    }
    return srv;
}

static void *worker_main(void *arg)
{
    struct http_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

int collector_server_start(struct collector_server *srv)
{
    for (int i = 0; i < srv->nworkers; i++) {
        struct http_worker *w = &srv->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return -1;
        w->started = true;
    }
    return 0;
}

/* In the worker's thread: stop accepting, close connections, drain the sink. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_worker *w = arg;
    if (w->httpd)
        httpd_shutdown(w->httpd);
    if (w->admin)
        httpd_shutdown(w->admin);
    w->drain_deadline = clock_ms() + (uint64_t)w->srv->drain_ms;
    struct timeval tv = {0, 20 * 1000};
    event_add(w->drain_ev, &tv);
    drain_cb(-1, 0, w);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_worker *w = arg;
    if (sink_pending(w->sink) == 0 || clock_ms() >= w->drain_deadline)
        event_base_loopbreak(w->base);
}

void collector_server_stop(struct collector_server *srv, int drain_ms)
{
    srv->drain_ms = drain_ms;
    for (int i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].started)
            event_active(srv->workers[i].stop_ev, EV_TIMEOUT, 0);
    for (int i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].started) {
            pthread_join(srv->workers[i].thread, NULL);
            srv->workers[i].started = false;
        }
    }
}

void collector_server_free(struct collector_server *srv)
{
    if (!srv)
        return;
    for (int i = 0; i < srv->nworkers; i++) {
        struct http_worker *w = &srv->workers[i];
        httpd_free(w->httpd); /* before the sink: closes connections */
        httpd_free(w->admin);
        sink_free(w->sink);
        if (w->ua)
            ua_parser_free(w->ua);
        geo_cache_free(w->geo_cache);
        if (w->stop_ev)
            event_free(w->stop_ev);
        if (w->drain_ev)
            event_free(w->drain_ev);
        if (w->base)
            event_base_free(w->base);
    }
    ratelimit_free(srv->limiter);
    free(srv->tracker_head);
    free(srv->tracker_head_304);
    free(srv->workers);
    free(srv->metric_ptrs);
    free(srv);
}

struct collector_live *collector_server_reload(struct collector_server *srv,
                                               struct collector_live *next)
{
    return atomic_exchange_explicit(&srv->live, next, memory_order_acq_rel);
}

const struct reg_hosts *collector_server_set_registry(struct collector_server *srv,
                                                      const struct reg_hosts *next)
{
    return atomic_exchange_explicit(&srv->registry, next, memory_order_acq_rel);
}
