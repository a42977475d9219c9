/* http.c - the collector's HTTP workers and request handlers (http.h).
 *
 * Must never put the client IP, the User-Agent or a request's query string
 * in a log line or a response. Each request gets exactly one reply. */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "enrich.h"
#include "event_parse.h"
#include "log.h"
#include "metrics.h"
#include "sink_redis.h"
#include "util.h"

struct http_worker {
    int id;
    struct collector_server *srv;
    pthread_t thread;
    bool started;
    evutil_socket_t fd;
    struct event_base *base;
    struct evhttp *http;
    struct sink *sink;
    struct ua_parser *ua;
    struct ratelimit *limiter;

    struct metrics metrics;
    struct event *stop_ev;
    struct event *drain_ev;
    uint64_t drain_deadline;
};

struct collector_server {
    struct collector_shared shared;
    _Atomic(struct collector_live *) live;
    int nworkers;
    struct http_worker *workers;
    struct metrics **metric_ptrs;
    int drain_ms;
};

/* A transparent 1x1 GIF. */
static const unsigned char pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b};

static void add_header(struct evhttp_request *req, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

static void add_cors(struct evhttp_request *req)
{
    add_header(req, "Access-Control-Allow-Origin", "*");
}

static void no_store(struct evhttp_request *req)
{
    add_header(req, "Cache-Control", "no-store, no-cache, must-revalidate, max-age=0");
    add_header(req, "Pragma", "no-cache");
    add_header(req, "Expires", "0");
}

/* The one place a worker answers with an error: count it, give a reason. */
static void reply_error(struct http_worker *w, struct evhttp_request *req, int code,
                        const char *status, const char *reason)
{
    static const struct {
        int code;
        enum metric m;
    } counters[] = {{400, M_BAD_REQUEST}, {404, M_NOT_FOUND},   {405, M_BAD_METHOD},
                    {413, M_TOO_LARGE},   {415, M_BAD_MEDIA_TYPE}, {429, M_RATE_LIMITED},
                    {503, M_UNAVAILABLE}};
    for (size_t i = 0; i < ARRAY_LEN(counters); i++)
        if (counters[i].code == code)
            metrics_inc(&w->metrics, counters[i].m);
    if (code == 400)
        metrics_reason(reason);
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add_printf(body, "%s\n", reason);
    add_cors(req);
    no_store(req);
    add_header(req, "Content-Type", "text/plain; charset=utf-8");
    if (code == 405)
        add_header(req, "Allow", "GET, POST, OPTIONS");
    if (code == 503)
        add_header(req, "Retry-After", "5");
    if (code == 429)
        add_header(req, "Retry-After", "1");
    evhttp_send_reply(req, code, status, body);
    if (body)
        evbuffer_free(body);
}

static const char *input_header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* Enrich and queue one parsed event; answers the request. */
static void accept_event(struct http_worker *w, struct evhttp_request *req,
                         const struct raw_event *raw, bool pixel)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const struct sockaddr *peer = conn ? evhttp_connection_get_addr(conn) : NULL;
    struct sockaddr_in none = {.sin_family = AF_INET};
    struct request_info info = {
        .peer = peer ? peer : (const struct sockaddr *)&none,
        .x_forwarded_for = input_header(req, "X-Forwarded-For"),
        .forwarded = input_header(req, "Forwarded"),
        .user_agent = input_header(req, "User-Agent"),
        .dnt = input_header(req, "DNT"),
        .sec_gpc = input_header(req, "Sec-GPC"),
        .now = (int64_t)time(NULL),
    };
    struct event_record ev;
    char reason[128] = "";
    struct collector_live *live = atomic_load_explicit(&w->srv->live, memory_order_acquire);
    struct enrich_ctx ctx = {&live->conf, w->ua,          live->geo,
                             live->trusted, w->srv->shared.salts, w->limiter};
    enum enrich_outcome outcome = enrich_event(&ctx, &info, raw, &ev, reason, sizeof reason);
    switch (outcome) {
    case ENRICH_BAD_REQUEST:
        reply_error(w, req, 400, "Bad Request", reason);
        return;
    case ENRICH_UNKNOWN_SITE:
        reply_error(w, req, 404, "Not Found", reason);
        return;
    case ENRICH_RATE_LIMITED:
        reply_error(w, req, 429, "Too Many Requests", "rate limit exceeded, slow down");
        return;
    case ENRICH_DROP_DNT:
        metrics_inc(&w->metrics, M_DNT);
        break;
    case ENRICH_DROP_GPC:
        metrics_inc(&w->metrics, M_GPC);
        break;
    case ENRICH_DROP_BOT:
        metrics_inc(&w->metrics, M_BOT);
        break;
    case ENRICH_RECORD:
        if (sink_push(w->sink, &ev) != 0) {
            reply_error(w, req, 503, "Service Unavailable", "buffer full, retry later");
            return;
        }
        metrics_inc(&w->metrics, M_ACCEPTED);
        if (pixel)
            metrics_inc(&w->metrics, M_PIXEL);
        break;
    }
    add_cors(req);
    no_store(req);
    if (pixel) {
        struct evbuffer *body = evbuffer_new();
        if (body)
            evbuffer_add(body, pixel_gif, sizeof pixel_gif);
        add_header(req, "Content-Type", "image/gif");
        evhttp_send_reply(req, 200, "OK", body);
        if (body)
            evbuffer_free(body);
    } else {
        evhttp_send_reply(req, 202, "Accepted", NULL);
    }
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

static void event_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_OPTIONS) {
        add_cors(req);
        add_header(req, "Access-Control-Allow-Methods", "POST, GET, OPTIONS");
        add_header(req, "Access-Control-Allow-Headers", "Content-Type");
        add_header(req, "Access-Control-Max-Age", "86400");
        evhttp_send_reply(req, 204, "No Content", NULL);
        return;
    }
    if (method != EVHTTP_REQ_POST) {
        reply_error(w, req, 405, "Method Not Allowed", "use POST");
        return;
    }
    if (!media_type_ok(input_header(req, "Content-Type"))) {
        reply_error(w, req, 415, "Unsupported Media Type",
                    "content type must be text/plain or application/json");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > (size_t)w->srv->shared.boot->conf.max_body_bytes) {
        reply_error(w, req, 413, "Payload Too Large", "body too large");
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
    struct raw_event raw;
    char reason[128] = "";
    if (!event_parse_json(body, len, &raw, reason, sizeof reason)) {
        reply_error(w, req, 400, "Bad Request", reason);
        return;
    }
    accept_event(w, req, &raw, false);
}

static void pixel_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        reply_error(w, req, 405, "Method Not Allowed", "use GET");
        return;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct raw_event raw;
    char reason[128] = "";
    if (!event_parse_query(query ? query : "", query ? strlen(query) : 0, &raw, reason,
                           sizeof reason)) {
        reply_error(w, req, 400, "Bad Request", reason);
        return;
    }
    accept_event(w, req, &raw, true);
}

static void tracker_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    const struct collector_shared *sh = &w->srv->shared;
    metrics_inc(&w->metrics, M_REQUESTS);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (!sh->tracker_js) {
        reply_error(w, req, 404, "Not Found", "tracker not configured (tracker_js)");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        reply_error(w, req, 405, "Method Not Allowed", "use GET");
        return;
    }
    add_cors(req);
    add_header(req, "Cache-Control", "public, max-age=3600");
    add_header(req, "ETag", sh->tracker_etag);
    const char *inm = input_header(req, "If-None-Match");
    if (inm && strstr(inm, sh->tracker_etag)) {
        evhttp_send_reply(req, 304, "Not Modified", NULL);
        return;
    }
    add_header(req, "Content-Type", "text/javascript; charset=utf-8");
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add_reference(body, sh->tracker_js, sh->tracker_js_len, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", body);
    if (body)
        evbuffer_free(body);
}

static void healthz_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    struct evbuffer *body = evbuffer_new();
    if (body)
        evbuffer_add_printf(body, "{\"status\":\"ok\",\"redis\":\"%s\",\"buffered\":%zu}\n",
                            sink_connected(w->sink) ? "connected" : "disconnected",
                            sink_pending(w->sink));
    add_header(req, "Content-Type", "application/json");
    no_store(req);
    evhttp_send_reply(req, 200, "OK", body);
    if (body)
        evbuffer_free(body);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    struct evbuffer *body = evbuffer_new();
    if (body)
        metrics_render(w->srv->metric_ptrs, w->srv->nworkers, body);
    add_header(req, "Content-Type", "text/plain; version=0.0.4");
    no_store(req);
    evhttp_send_reply(req, 200, "OK", body);
    if (body)
        evbuffer_free(body);
}

static void notfound_cb(struct evhttp_request *req, void *arg)
{
    struct http_worker *w = arg;
    metrics_inc(&w->metrics, M_REQUESTS);
    reply_error(w, req, 404, "Not Found", "no such endpoint");
}

static evutil_socket_t bind_listener(const char *listen_addr, char *err, size_t errlen)
{
    char host[300];
    int port;
    if (!hostport_split(listen_addr, host, sizeof host, &port)) {
        str_format(err, errlen, "listen: expected host:port");
        return -1;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char spec[320];
    str_format(spec, sizeof spec, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
        str_format(err, errlen, "listen: not a numeric address (use an IP, not a name)");
        return -1;
    }
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 || listen(fd, 1024) != 0) {
        str_format(err, errlen, "listen %s: %s", listen_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg);
static void drain_cb(evutil_socket_t fd, short what, void *arg);

static int worker_init(struct collector_server *srv, struct http_worker *w, int id, char *err,
                       size_t errlen)
{
    const struct collector_config *conf = &srv->shared.boot->conf;
    w->id = id;
    w->srv = srv;
    w->fd = bind_listener(conf->listen, err, errlen);
    if (w->fd < 0)
        return -1;
    w->base = event_base_new();
    w->http = w->base ? evhttp_new(w->base) : NULL;
    if (!w->http) {
        str_format(err, errlen, "cannot create the event loop");
        return -1;
    }
    evhttp_set_max_headers_size(w->http, (ev_ssize_t)conf->max_header_bytes);
    /* Bodies up to max_body_bytes + 64 KiB are read and refused here, with a
     * counted 413; evhttp refuses anything larger by itself (uncounted). */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)conf->max_body_bytes + 65536);
    evhttp_set_timeout(w->http, (int)conf->timeout_s);
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(w->http, "text/plain; charset=utf-8");
    evhttp_set_flags(w->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_cb(w->http, "/api/event", event_cb, w);
    evhttp_set_cb(w->http, "/e.gif", pixel_cb, w);
    evhttp_set_cb(w->http, "/veil.js", tracker_cb, w);
    evhttp_set_cb(w->http, "/healthz", healthz_cb, w);
    evhttp_set_cb(w->http, "/metrics", metrics_cb, w);
    evhttp_set_gencb(w->http, notfound_cb, w);
    if (!evhttp_accept_socket_with_handle(w->http, w->fd)) {
        str_format(err, errlen, "cannot accept on the listener");
        return -1;
    }
    w->ua = ua_parser_new(srv->shared.ua_rules, (size_t)conf->ua_cache_entries);
    w->sink = sink_new(w->base, conf, id, srv->nworkers, &w->metrics, err, errlen);
    if (!w->sink)
        return -1; /* err says why (e.g. spool_dir) */
    if (!w->ua) {
        str_format(err, errlen, "cannot set up worker %d", id);
        return -1;
    }
    w->limiter = ratelimit_new(conf->rate_limit, (double)conf->rate_burst, 65536);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, drain_cb, w);
    return 0;
}

struct collector_server *collector_server_new(const struct collector_shared *shared,
                                              int nthreads, char *err, size_t errlen)
{
    struct collector_server *srv = xcalloc(1, sizeof *srv);
    srv->shared = *shared;
    atomic_store(&srv->live, shared->boot);
    srv->workers = xcalloc((size_t)nthreads, sizeof *srv->workers);
    srv->metric_ptrs = xcalloc((size_t)nthreads, sizeof *srv->metric_ptrs);
    for (int i = 0; i < nthreads; i++) {
        srv->workers[i].fd = -1;
        srv->metric_ptrs[i] = &srv->workers[i].metrics;
    }
    srv->nworkers = nthreads;
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

/* In the worker's thread: stop accepting, then drain the sink. */
static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_worker *w = arg;
    if (w->http) {
        evhttp_free(w->http); /* closes the listener and idle connections */
        w->http = NULL;
        w->fd = -1;
    }
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
        if (w->http)
            evhttp_free(w->http);
        else if (w->fd >= 0)
            close(w->fd);
        sink_free(w->sink);
        if (w->ua)
            ua_parser_free(w->ua);
        ratelimit_free(w->limiter);
        if (w->stop_ev)
            event_free(w->stop_ev);
        if (w->drain_ev)
            event_free(w->drain_ev);
        if (w->base)
            event_base_free(w->base);
    }
    free(srv->workers);
    free(srv->metric_ptrs);
    free(srv);
}

struct collector_live *collector_server_reload(struct collector_server *srv,
                                               struct collector_live *next)
{
    return atomic_exchange_explicit(&srv->live, next, memory_order_acq_rel);
}
