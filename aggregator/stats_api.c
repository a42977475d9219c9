/* stats_api.c - HTTP side of the stats API (see stats_api.h, docs/API.md):
 * the thread and its event loop, routing, token checks, the site's local
 * today, /healthz and the dashboard's files; the v1 handlers are in
 * api_v1.c (shared declarations: api_internal.h).
 *
 * Every request is answered exactly once, by request_cb, from the status
 * and body a handler leaves in struct api_request. It never logs a token,
 * a query string or a row value. */
#include "stats_api.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <sodium.h>

#include "agg_config.h"
#include "api_accept.h"
#include "api_internal.h"
#include "api_metrics.h"
#include "api_params.h"
#include "auth.h"
#include "dp.h"
#include "log.h"
#include "output.h"
#include "query.h"
#include "rcluster.h"
#include "registry.h"
#include "rollup_metrics.h"
#include "site_zones.h"
#include "static_files.h"
#include "util.h"

/* evhttp limits (its defaults are unlimited). */
#define API_MAX_HEADERS_BYTES 8192
#define API_MAX_BODY_BYTES 16384 /* a v2 query's JSON */
#define API_TIMEOUT_S 30
#define REDIS_CONNECT_TIMEOUT_MS 2000
#define REDIS_COMMAND_TIMEOUT_MS 10000

void api_set_error(struct api_request *rq, int status, const char *reason)
{
    evbuffer_drain(rq->body, evbuffer_get_length(rq->body));
    evbuffer_add(rq->body, "{\"error\": ", 10);
    output_json_string(rq->body, reason, strlen(reason));
    evbuffer_add(rq->body, "}\n", 2);
    rq->status = status;
    rq->content_type = "application/json";
}

/* ---- Redis connection of the API thread ---- */

/* The routing handle (rcluster.h: one Redis or a Redis Cluster), connected
 * on first use and again after it was dropped. */
static struct rcluster *api_cluster(struct stats_api *api)
{
    if (api->cluster)
        return api->cluster;
    char err[300];
    api->cluster = rcluster_connect(api->redis_addr, REDIS_CONNECT_TIMEOUT_MS, err, sizeof err);
    if (!api->cluster) {
        log_warn("stats api: %s", err);
        return NULL;
    }
    if (api->redis_connected_once)
        api->metrics.redis_reconnects++;
    api->redis_connected_once = true;
    return api->cluster;
}

/* The connection to the node holding the keys of `prefix` (a site's shard
 * "veil:{N}:", the registry's "veil:{reg}:"), borrowed from the handle;
 * remembered in api->redis for api_redis_error. NULL when unreachable. */
static redisContext *api_redis_at(struct stats_api *api, const char *prefix)
{
    struct rcluster *cl = api_cluster(api);
    api->redis = cl ? rcluster_slot_context(cl, prefix, strlen(prefix)) : NULL;
    if (cl && !api->redis)
        log_warn("stats api: %s", rcluster_errstr(cl));
    return api->redis;
}

/* The site registry's node (tokens, time zones). */
static redisContext *api_redis(struct stats_api *api)
{
    return api_redis_at(api, REG_PREFIX);
}

static char tryagain[] = "TRYAGAIN";
static const redisReply map_may_have_changed = {.type = REDIS_REPLY_ERROR, .str = tryagain,
                                                .len = sizeof tryagain - 1};

/* After a failed query: 503 when the connection is lost or, on a cluster,
 * when the slot map may have changed (MOVED during a resharding, a
 * failover: the map is reloaded before the next request), 500 for an
 * unexpected answer from a single Redis. */
void api_redis_error(struct api_request *rq, const char *reason)
{
    struct stats_api *api = rq->api;
    api->metrics.redis_errors++;
    log_warn("stats api: %s", reason);
    bool lost = !api->redis || api->redis->err;
    bool cluster = api->cluster && rcluster_is_cluster(api->cluster);
    if (api->cluster)
        (void)rcluster_note(api->cluster, lost ? NULL : &map_may_have_changed);
    if (lost && api->cluster && !cluster) { /* one Redis: start again */
        rcluster_free(api->cluster);
        api->cluster = NULL;
    }
    api->redis = NULL;
    if (lost || cluster)
        api_set_error(rq, 503, "storage unavailable, try again");
    else
        api_set_error(rq, 500, "storage answered unexpectedly");
}

/* The DP key, fetched (or created) once. */
static bool api_dp_key(struct api_request *rq, redisContext *rc)
{
    char err[160];
    if (rq->api->dp_key_loaded || !(rq->api->dp_epsilon > 0))
        return true;
    if (query_dp_key(rc, rq->api->dp_key, err, sizeof err) != 0) {
        api_redis_error(rq, err);
        return false;
    }
    rq->api->dp_key_loaded = true;
    return true;
}

/* The DP key's node (veil:{0}:), then, for a site, its shard's node.
 * Returns the last, or NULL after answering 503 or the DP key's error.
 * (A site's local day is read on the registry's node before; a site list
 * gathers from every shard itself.) */
static redisContext *api_site_redis(struct api_request *rq, const char *site)
{
    struct stats_api *api = rq->api;
    redisContext *rc = api_redis_at(api, "veil:{0}:");
    if (rc && !api_dp_key(rq, rc))
        return NULL;
    if (rc && site) {
        char prefix[SHARD_PREFIX_MAX];
        query_site_prefix(site, prefix);
        rc = api_redis_at(api, prefix);
    }
    if (!rc) {
        api->metrics.redis_errors++;
        api_set_error(rq, 503, "storage unavailable, try again");
    }
    return rc;
}


static void handle_healthz(struct api_request *rq)
{
    redisContext *rc = api_redis(rq->api);
    redisReply *r = rc ? redisCommand(rc, "PING") : NULL;
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    rq->content_type = "text/plain; charset=utf-8";
    rq->status = ok ? 200 : 503;
    evbuffer_add_printf(rq->body, ok ? "ok\n" : "redis unavailable\n");
}

static void handle_static(struct api_request *rq, const char *path)
{
    struct static_file f;
    if (static_open(rq->api->dashboard_dir, path, &f) != 0) {
        api_set_error(rq, 404, "not found");
        return;
    }
    /* The segment closes the descriptor when its last reference goes. */
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(f.fd, 0, f.size, EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
        close(f.fd);
        api_set_error(rq, 500, "cannot read file");
        return;
    }
    int added = evbuffer_add_file_segment(rq->body, seg, 0, f.size);
    evbuffer_file_segment_free(seg); /* the body holds its own reference */
    if (added != 0) {
        api_set_error(rq, 500, "cannot read file");
        return;
    }
    rq->status = 200;
    rq->content_type = f.content_type;
}

/* The request's token: true with its hash in token and, for a token made
 * by veil-admin, its registry scope in reg_scope (REG_ID_MAX + 1); false
 * when rq was answered 401. */
static bool authenticate(struct api_request *rq, unsigned char token[AUTH_HASH_BYTES],
                         char *reg_scope)
{
    struct stats_api *api = rq->api;
    struct evkeyvalq *in = evhttp_request_get_input_headers(rq->req);
    /* A token veil-admin made: looked up in the site registry per request,
     * so a new token works and a revoked one stops at once. */
    reg_scope[0] = '\0';
    enum auth_result known = auth_identify(api->auth, evhttp_find_header(in, "Authorization"),
                                           token);
    if (known == AUTH_INVALID && !sodium_is_zero(token, AUTH_HASH_BYTES)) {
        redisContext *rrc = api_redis(api);
        if (rrc && registry_token_scope(rrc, token, reg_scope, REG_ID_MAX + 1) == 1)
            known = AUTH_OK;
        else
            reg_scope[0] = '\0';
    }
    switch (known) {
    case AUTH_OK: return true;
    case AUTH_MISSING:
        rq->unauthorized = true;
        api_set_error(rq, 401, "missing API token: send Authorization: Bearer <token>");
        return false;
    default:
        rq->unauthorized = true;
        api_set_error(rq, 401, "invalid API token");
        return false;
    }
}

static bool granted(struct stats_api *api, const unsigned char token[AUTH_HASH_BYTES],
                    const char *reg_scope, const char *site)
{
    return reg_scope[0] ? strcmp(reg_scope, "*") == 0 || strcmp(reg_scope, site) == 0
                        : auth_check_site(api->auth, token, site) == AUTH_OK;
}

/* The site's local today (docs/API.md "Time zones"). */
static period_day site_today(redisContext *rc, const char *site)
{
    int32_t local;
    int hour;
    tz_local(site_zone_lookup(rc, site), time(NULL), &local, &hour);
    return local;
}

/* POST /api/v2/query: token, body, site grant, then the work. */
static void handle_v2(struct api_request *rq)
{
    struct stats_api *api = rq->api;
    unsigned char token[AUTH_HASH_BYTES];
    char reg_scope[REG_ID_MAX + 1], err[400];
    if (!authenticate(rq, token, reg_scope))
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(rq->req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    period_day today = period_today(time(NULL));
    struct api_v2_query *q = api_v2_parse(body, len, today, api->retention_days, err, sizeof err);
    if (!q) {
        api_set_error(rq, 400, err);
        return;
    }
    redisContext *rc = NULL;
    if (!granted(api, token, reg_scope, api_v2_site(q))) {
        api_set_error(rq, 403, "this token may not read this site");
    } else if (!(rc = api_redis(api))) {
        api->metrics.redis_errors++;
        api_set_error(rq, 503, "storage unavailable, try again");
    } else {
        period_day local = site_today(rc, api_v2_site(q));
        if (local != today) {
            free(q);
            q = api_v2_parse(body, len, local, api->retention_days, err, sizeof err);
        }
        if (!q)
            api_set_error(rq, 400, err);
        else if ((rc = api_site_redis(rq, api_v2_site(q))))
            api_v2_run(rq, q, rc);
    }
    free(q);
}

/* Stats and sites routes: token, parameters, site grant, then the work. */
static void handle_api(struct api_request *rq, enum api_endpoint ep)
{
    struct stats_api *api = rq->api;
    struct evkeyvalq *in = evhttp_request_get_input_headers(rq->req);
    unsigned char token[AUTH_HASH_BYTES];
    char reg_scope[REG_ID_MAX + 1];
    char err[300];
    struct api_params p;
    if (!authenticate(rq, token, reg_scope))
        return;
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(rq->req));
    period_day today = period_today(time(NULL));
    if (!api_params_parse(ep, query, evhttp_find_header(in, "Accept"), today,
                          api->retention_days, &p, err, sizeof err)) {
        api_set_error(rq, 400, err);
        return;
    }
    if (ep != API_EP_SITES && !granted(api, token, reg_scope, p.site_id)) {
        api_set_error(rq, 403, "this token may not read this site");
        return;
    }
    if (ep != API_EP_SITES && ep != API_EP_REALTIME) {
        redisContext *reg = api_redis(api);
        if (!reg) {
            api->metrics.redis_errors++;
            api_set_error(rq, 503, "storage unavailable, try again");
            return;
        }
        period_day local = site_today(reg, p.site_id);
        if (local != today && !api_params_parse(ep, query, evhttp_find_header(in, "Accept"),
                                                local, api->retention_days, &p, err, sizeof err)) {
            api_set_error(rq, 400, err);
            return;
        }
    }
    redisContext *rc = api_site_redis(rq, ep == API_EP_SITES ? NULL : p.site_id);
    if (!rc)
        return;
    if (ep == API_EP_SITES && !(rc = api_redis(api))) { /* the registry's time zones */
        api->metrics.redis_errors++;
        api_set_error(rq, 503, "storage unavailable, try again");
        return;
    }
    switch (ep) {
    case API_EP_AGGREGATE: api_v1_aggregate(rq, &p, rc); break;
    case API_EP_TIMESERIES: api_v1_timeseries(rq, &p, rc); break;
    case API_EP_BREAKDOWN: api_v1_breakdown(rq, &p, rc); break;
    case API_EP_REALTIME: api_v1_realtime(rq, &p, rc); break;
    case API_EP_SITES: api_v1_sites(rq, &p, rc, token, reg_scope); break;
    }
}

/* ---- routing and the one reply ---- */

static const struct {
    const char *path;
    enum api_route route;
    int endpoint; /* enum api_endpoint, or -1 */
} routes[] = {
    {"/api/v1/stats/aggregate", API_ROUTE_AGGREGATE, API_EP_AGGREGATE},
    {"/api/v1/stats/timeseries", API_ROUTE_TIMESERIES, API_EP_TIMESERIES},
    {"/api/v1/stats/breakdown", API_ROUTE_BREAKDOWN, API_EP_BREAKDOWN},
    {"/api/v1/stats/realtime/visitors", API_ROUTE_REALTIME, API_EP_REALTIME},
    {"/api/v1/sites", API_ROUTE_SITES, API_EP_SITES},
    {"/healthz", API_ROUTE_HEALTHZ, -1},
    {"/metrics", API_ROUTE_METRICS, -1},
    {"/api/v2/query", API_ROUTE_QUERY, -1},
};

static void send_reply(struct api_request *rq)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(rq->req);
    evhttp_add_header(out, "Content-Type", rq->content_type);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(out, "Referrer-Policy", "no-referrer");
    if (rq->route == API_ROUTE_STATIC && rq->status == 200) {
        evhttp_add_header(out, "Cache-Control", "no-cache");
        evhttp_add_header(out, "Content-Security-Policy",
                          "default-src 'self'; frame-ancestors 'none'");
        evhttp_add_header(out, "X-Frame-Options", "DENY");
    } else {
        evhttp_add_header(out, "Cache-Control", "no-store");
    }
    if (rq->status == 405)
        evhttp_add_header(out, "Allow", rq->route == API_ROUTE_QUERY ? "POST" : "GET, HEAD");
    if (rq->unauthorized)
        evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"veil\"");
    if (evhttp_request_get_command(rq->req) == EVHTTP_REQ_HEAD) {
        /* evhttp would send a HEAD body: give only its length. */
        char length[32];
        str_format(length, sizeof length, "%zu", evbuffer_get_length(rq->body));
        evhttp_add_header(out, "Content-Length", length);
        evbuffer_drain(rq->body, evbuffer_get_length(rq->body));
    }
    evhttp_send_reply(rq->req, rq->status, NULL, rq->body);
    api_metrics_count(&rq->api->metrics, rq->route, rq->status);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct api_request rq = {.api = arg, .req = req, .route = API_ROUTE_UNKNOWN,
                             .status = 500, .content_type = "application/json"};
    rq.body = evbuffer_new();
    if (!rq.body) {
        evhttp_send_error(req, 503, "out of memory");
        api_metrics_count(&rq.api->metrics, API_ROUTE_UNKNOWN, 503);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !path[0])
        path = "/";
    int endpoint = -1;
    for (size_t i = 0; i < ARRAY_LEN(routes); i++) {
        if (strcmp(path, routes[i].path) == 0) {
            rq.route = routes[i].route;
            endpoint = routes[i].endpoint;
        }
    }
    if (rq.route == API_ROUTE_UNKNOWN && static_route_matches(path))
        rq.route = API_ROUTE_STATIC;

    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (rq.route == API_ROUTE_UNKNOWN) {
        api_set_error(&rq, 404, "not found");
    } else if (rq.route == API_ROUTE_QUERY) {
        if (method == EVHTTP_REQ_POST)
            handle_v2(&rq);
        else
            api_set_error(&rq, 405, "method not allowed: use POST");
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        api_set_error(&rq, 405, "method not allowed: use GET");
    } else if (endpoint >= 0) {
        handle_api(&rq, (enum api_endpoint)endpoint);
    } else if (rq.route == API_ROUTE_HEALTHZ) {
        handle_healthz(&rq);
    } else if (rq.route == API_ROUTE_METRICS) {
        rq.status = 200;
        rq.content_type = "text/plain; version=0.0.4; charset=utf-8";
        api_metrics_render(&rq.api->metrics, rq.body);
        evbuffer_add_printf(rq.body,
                            "# HELP veil_api_accept_pauses_total Accepting paused for %d ms "
                            "because accept failed (out of file descriptors).\n"
                            "# TYPE veil_api_accept_pauses_total counter\n"
                            "veil_api_accept_pauses_total %llu\n",
                            API_ACCEPT_PAUSE_MS,
                            (unsigned long long)api_accept_pauses(rq.api->accept));
        rollup_metrics_render(rq.body);
    } else {
        handle_static(&rq, path);
    }
    send_reply(&rq);
    evbuffer_free(rq.body);
}

/* ---- thread and lifecycle ---- */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stats_api *api = arg;
    char byte;
    (void)what;
    while (read(fd, &byte, 1) < 0 && errno == EINTR) {
    }
    event_base_loopbreak(api->base);
}

static void *api_thread(void *arg)
{
    struct stats_api *api = arg;
    event_base_dispatch(api->base);
    return NULL;
}

static void api_free(struct stats_api *api)
{
    if (api->http)
        evhttp_free(api->http);
    api_accept_free(api->accept);
    if (api->stop_event)
        event_free(api->stop_event);
    if (api->base)
        event_base_free(api->base);
    for (int i = 0; i < 2; i++) {
        if (api->stop_pipe[i] >= 0)
            close(api->stop_pipe[i]);
    }
    rcluster_free(api->cluster); /* api->redis was borrowed from it */
    auth_free(api->auth);
    free(api->redis_addr);
    free(api->dashboard_dir);
    sodium_memzero(api->dp_key, sizeof api->dp_key);
    free(api);
}

struct stats_api *stats_api_start(const struct agg_config *cfg, char *err, size_t errlen)
{
    struct stats_api *api = xcalloc(1, sizeof *api);
    char host[300];
    int port;
    api->stop_pipe[0] = api->stop_pipe[1] = -1;
    api->redis_addr = xstrdup(cfg->redis);
    api->dashboard_dir = xstrdup(cfg->dashboard_dir ? cfg->dashboard_dir : "");
    api->k_anonymity = cfg->k_anonymity;
    api->dp_epsilon = cfg->dp_epsilon;
    api->retention_days = cfg->retention_days;
    query_set_shards((unsigned)cfg->shards);
    query_set_rollups(cfg->quarter_rollups, cfg->month_rollups, cfg->week_rollups);

    api->auth = auth_new(cfg->api_token, &cfg->api_tokens, err, errlen);
    if (!api->auth)
        goto err;
    if (auth_grant_count(api->auth) == 0)
        log_warn("stats api: no api_token or api_tokens set: every stats request gets 401");
    if (!hostport_split(cfg->api_listen, host, sizeof host, &port)) {
        str_format(err, errlen, "api_listen: expected host:port");
        goto err;
    }
    api->base = event_base_new();
    api->http = api->base ? evhttp_new(api->base) : NULL;
    if (!api->http) {
        str_format(err, errlen, "stats api: cannot create the event loop");
        goto err;
    }
    evhttp_set_max_headers_size(api->http, API_MAX_HEADERS_BYTES);
    evhttp_set_max_body_size(api->http, API_MAX_BODY_BYTES);
    evhttp_set_timeout(api->http, API_TIMEOUT_S);
    /* Let every method reach request_cb, so a 405 is ours and counted. */
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(api->http, request_cb, api);
    api_accept_quiet_libevent();
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!bound) {
        str_format(err, errlen, "api_listen: cannot bind %s: %s", cfg->api_listen,
                   strerror(errno));
        goto err;
    }
    api->accept = api_accept_new(api->base, bound);
    if (!api->accept) {
        str_format(err, errlen, "stats api: out of memory");
        goto err;
    }
    if (pipe2(api->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        str_format(err, errlen, "stats api: pipe: %s", strerror(errno));
        goto err;
    }
    api->stop_event = event_new(api->base, api->stop_pipe[0], EV_READ, stop_cb, api);
    if (!api->stop_event || event_add(api->stop_event, NULL) != 0) {
        str_format(err, errlen, "stats api: cannot watch the stop pipe");
        goto err;
    }
    if (pthread_create(&api->thread, NULL, api_thread, api) != 0) {
        str_format(err, errlen, "stats api: cannot start its thread");
        goto err;
    }
    log_info("stats api: listening on %s (k_anonymity %lld, dp_epsilon %g)", cfg->api_listen,
             api->k_anonymity, api->dp_epsilon);
    return api;
err:
    api_free(api);
    return NULL;
}

void stats_api_stop(struct stats_api *api)
{
    if (!api)
        return;
    while (write(api->stop_pipe[1], "x", 1) < 0 && errno == EINTR) {
    }
    pthread_join(api->thread, NULL);
    api_free(api);
}

/* ---- reload (SIGHUP) ---- */

/* Settings handed from the reloading thread to the API thread. */
struct api_settings {
    struct stats_api *api;
    struct auth *auth;
    char *dashboard_dir;
    long long k_anonymity;
    double dp_epsilon;
    long long retention_days;
};

/* In the API thread, between requests: swap in the new settings. */
static void apply_settings_cb(evutil_socket_t fd, short what, void *arg)
{
    struct api_settings *s = arg;
    struct stats_api *api = s->api;
    (void)fd;
    (void)what;
    auth_free(api->auth);
    api->auth = s->auth;
    free(api->dashboard_dir);
    api->dashboard_dir = s->dashboard_dir;
    api->k_anonymity = s->k_anonymity;
    api->dp_epsilon = s->dp_epsilon;
    api->retention_days = s->retention_days;
    log_info("stats api: reloaded (%zu token grant%s, k_anonymity %lld, dp_epsilon %g, "
             "dashboard_dir %s)",
             auth_grant_count(api->auth), auth_grant_count(api->auth) == 1 ? "" : "s",
             api->k_anonymity, api->dp_epsilon, api->dashboard_dir);
    free(s);
}

int stats_api_reload(struct stats_api *api, const struct agg_config *cfg, char *err,
                     size_t errlen)
{
    struct api_settings *s = xcalloc(1, sizeof *s);
    s->api = api;
    s->auth = auth_new(cfg->api_token, &cfg->api_tokens, err, errlen);
    if (!s->auth) {
        free(s);
        return -1;
    }
    if (auth_grant_count(s->auth) == 0)
        log_warn("stats api: no api_token or api_tokens set: every stats request gets 401");
    s->dashboard_dir = xstrdup(cfg->dashboard_dir ? cfg->dashboard_dir : "");
    s->k_anonymity = cfg->k_anonymity;
    s->dp_epsilon = cfg->dp_epsilon;
    s->retention_days = cfg->retention_days;
    struct timeval now = {0, 0};
    if (event_base_once(api->base, -1, EV_TIMEOUT, apply_settings_cb, s, &now) != 0) {
        auth_free(s->auth);
        free(s->dashboard_dir);
        free(s);
        str_format(err, errlen, "stats api: cannot hand over the new settings");
        return -1;
    }
    return 0;
}
