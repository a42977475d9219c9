/* stats_api.c - HTTP side of the stats API (see stats_api.h, docs/API.md):
 * the thread and its event loop, routing, token checks, and the handlers
 * that turn query results into published tables.
 *
 * Every request is answered exactly once, by request_cb, from the status
 * and body a handler leaves in struct api_request. Breakdown rows pass
 * k-anonymity before DP noise and before they are sorted or paged. It never
 * logs a token, a query string or a row value. */
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
#include "api_metrics.h"
#include "api_params.h"
#include "auth.h"
#include "dp.h"
#include "kanon.h"
#include "log.h"
#include "output.h"
#include "query.h"
#include "rcluster.h"
#include "registry.h"
#include "rollup_metrics.h"
#include "static_files.h"
#include "util.h"

/* evhttp limits (its defaults are unlimited). */
#define API_MAX_HEADERS_BYTES 8192
#define API_MAX_BODY_BYTES 1024
#define API_TIMEOUT_S 30
#define REDIS_CONNECT_TIMEOUT_MS 2000
#define REDIS_COMMAND_TIMEOUT_MS 10000
/* Realtime visitors: those seen in the last five minutes. */
#define REALTIME_WINDOW_S 300
#define SITES_MAX_GRANTS 10000

/* How much one visit can move each published counter: the DP sensitivity. */
static const double counter_sensitivity[QC__COUNT] = {
    [QC_PAGEVIEWS] = 1, [QC_EVENTS] = 1,    [QC_VISITS] = 1,     [QC_BOUNCES] = 1,
    [QC_VISIT_DURATION_S] = 1800, [QC_SCROLL_SUM] = 100, [QC_SCROLL_N] = 1,
};

static const char VISITORS_NOTE[] =
    "Visitors are unique within one visitor-hash salt period (one UTC day by default). "
    "Over several days they are the HyperLogLog union of the daily sets: a person seen on "
    "several days counts once per salt period, not once overall.";

struct stats_api {
    /* settings, copied at start */
    char *redis_addr;
    char *dashboard_dir;
    long long k_anonymity;
    double dp_epsilon;
    long long retention_days;
    struct auth *auth;
    /* loop */
    struct event_base *base;
    struct evhttp *http;
    struct api_accept *accept;   /* accept back-off */
    struct event *stop_event;
    int stop_pipe[2];
    pthread_t thread;
    /* state of the API thread only */
    struct rcluster *cluster;    /* one Redis or a Redis Cluster (rcluster.h) */
    redisContext *redis;         /* the node of the last request, borrowed from cluster */
    bool redis_connected_once;
    bool dp_key_loaded;
    unsigned char dp_key[DP_KEY_BYTES];
    struct api_metrics metrics;
};

/* One request in flight: the handler sets status, content type and body;
 * request_cb sends them once. */
struct api_request {
    struct stats_api *api;
    struct evhttp_request *req;
    enum api_route route;
    int status;
    const char *content_type;
    struct evbuffer *body;
    bool unauthorized;         /* add WWW-Authenticate */
};

static void set_error(struct api_request *rq, int status, const char *reason)
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
 * remembered in api->redis for redis_error. NULL when unreachable. */
static redisContext *api_redis_at(struct stats_api *api, const char *prefix)
{
    struct rcluster *cl = api_cluster(api);
    api->redis = cl ? rcluster_slot_context(cl, prefix, strlen(prefix)) : NULL;
    if (cl && !api->redis)
        log_warn("stats api: %s", rcluster_errstr(cl));
    return api->redis;
}

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
static void redis_error(struct api_request *rq, const char *reason)
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
        set_error(rq, 503, "storage unavailable, try again");
    else
        set_error(rq, 500, "storage answered unexpectedly");
}

/* The DP key, fetched (or created) once. */
static bool api_dp_key(struct api_request *rq, redisContext *rc)
{
    char err[160];
    if (rq->api->dp_key_loaded || !(rq->api->dp_epsilon > 0))
        return true;
    if (query_dp_key(rc, rq->api->dp_key, err, sizeof err) != 0) {
        redis_error(rq, err);
        return false;
    }
    rq->api->dp_key_loaded = true;
    return true;
}

/* ---- privacy at publication ---- */

static long long dp_count(const struct stats_api *api, const char *site, const char *metric,
                          const char *value, size_t value_len, const struct period_range *r,
                          double sensitivity, long long true_count)
{
    if (!(api->dp_epsilon > 0))
        return true_count;
    struct dp_label l = {site, metric, value, value_len, r->first, r->last};
    return dp_publish(api->dp_key, api->dp_epsilon, sensitivity, &l, true_count);
}

static void publish_totals(const struct stats_api *api, const char *site,
                           const struct period_range *r, struct query_totals *t)
{
    t->visitors = dp_count(api, site, "visitors", "", 0, r, 1, t->visitors);
    for (int c = 0; c < QC__COUNT; c++)
        t->c[c] = dp_count(api, site, query_counter_field(c), "", 0, r, counter_sensitivity[c],
                           t->c[c]);
}

static long long ratio(long long num, long long den, double scale, long long max)
{
    if (den <= 0)
        return 0;
    long long v = llround(scale * (double)num / (double)den);
    return v < 0 ? 0 : (max > 0 && v > max ? max : v);
}

static long long totals_metric(const struct query_totals *t, enum api_metric m)
{
    switch (m) {
    case API_METRIC_VISITORS: return t->visitors;
    case API_METRIC_PAGEVIEWS: return t->c[QC_PAGEVIEWS];
    case API_METRIC_VISITS: return t->c[QC_VISITS];
    case API_METRIC_EVENTS: return t->c[QC_EVENTS];
    case API_METRIC_BOUNCE_RATE: return ratio(t->c[QC_BOUNCES], t->c[QC_VISITS], 100, 100);
    case API_METRIC_VISIT_DURATION: return ratio(t->c[QC_VISIT_DURATION_S], t->c[QC_VISITS], 1, 0);
    case API_METRIC_SCROLL_DEPTH: return ratio(t->c[QC_SCROLL_SUM], t->c[QC_SCROLL_N], 1, 100);
    case API_METRIC__COUNT: break;
    }
    return 0;
}

static long long row_metric(const struct stats_row *r, enum api_metric m)
{
    switch (m) {
    case API_METRIC_VISITORS: return r->visitors;
    case API_METRIC_PAGEVIEWS: return r->pageviews;
    case API_METRIC_VISITS: return r->visits;
    case API_METRIC_EVENTS: return r->events;
    default: return 0;
    }
}

static void publish_row(const struct stats_api *api, const char *site,
                        const struct period_range *range, struct stats_row *r)
{
    r->visitors = dp_count(api, site, "visitors", r->value, r->value_len, range, 1, r->visitors);
    r->pageviews = dp_count(api, site, "pageviews", r->value, r->value_len, range, 1, r->pageviews);
    r->visits = dp_count(api, site, "visits", r->value, r->value_len, range, 1, r->visits);
    r->events = dp_count(api, site, "events", r->value, r->value_len, range, 1, r->events);
}

/* ---- response bodies ---- */

static void write_meta(struct evbuffer *b, const struct stats_api *api,
                       const struct api_params *p, bool breakdown, size_t folded,
                       bool other_suppressed)
{
    char first[11], last[11];
    period_format_day(p->range.first, first);
    period_format_day(p->range.last, last);
    if (p->range.first > p->range.last) /* clipped away entirely */
        period_format_day(p->range.last, first);
    evbuffer_add_printf(b, ", \"meta\": {\"date_range\": [\"%s\", \"%s\"], "
                           "\"clipped_to_retention\": %s, \"visitors\": ",
                        first, last, p->clipped ? "true" : "false");
    output_json_string(b, VISITORS_NOTE, sizeof VISITORS_NOTE - 1);
    if (breakdown)
        evbuffer_add_printf(b, ", \"k_anonymity\": %lld, \"folded_rows\": %zu, "
                               "\"other_suppressed\": %s",
                            api->k_anonymity, folded, other_suppressed ? "true" : "false");
    evbuffer_add_printf(b, ", \"dp_epsilon\": %g}", api->dp_epsilon);
}

static void metric_columns(const struct api_params *p, const char **cols, size_t first)
{
    for (size_t i = 0; i < p->nmetrics; i++)
        cols[first + i] = api_metric_name(p->metrics[i]);
}

static void write_table(struct api_request *rq, const struct api_params *p,
                        const struct output_table *t, bool aggregate, bool breakdown,
                        size_t folded, bool other_suppressed)
{
    rq->status = 200;
    if (p->format == OUTPUT_CSV) {
        rq->content_type = "text/csv; charset=utf-8";
        output_csv(rq->body, t);
        return;
    }
    rq->content_type = "application/json";
    evbuffer_add(rq->body, "{\"results\": ", 12);
    if (aggregate)
        output_json_aggregate(rq->body, t);
    else
        output_json_rows(rq->body, t);
    write_meta(rq->body, rq->api, p, breakdown, folded, other_suppressed);
    evbuffer_add(rq->body, "}\n", 2);
}

/* ---- handlers ---- */

static void handle_aggregate(struct api_request *rq, const struct api_params *p, redisContext *rc)
{
    char err[300];
    struct query_totals t = {0};
    if (p->range.first <= p->range.last &&
        query_totals(rc, p->site_id, &p->range, 1, &t, err, sizeof err) != 0) {
        redis_error(rq, err);
        return;
    }
    publish_totals(rq->api, p->site_id, &p->range, &t);
    const char *cols[API_METRIC__COUNT];
    struct output_cell cells[API_METRIC__COUNT];
    metric_columns(p, cols, 0);
    for (size_t i = 0; i < p->nmetrics; i++)
        cells[i] = output_num(totals_metric(&t, p->metrics[i]));
    struct output_table table = {p->nmetrics, cols, 1, cells};
    write_table(rq, p, &table, true, false, 0, false);
}

static void handle_timeseries(struct api_request *rq, const struct api_params *p,
                              redisContext *rc)
{
    char err[300];
    size_t n;
    struct period_range *buckets = period_buckets(&p->range, p->interval, &n);
    struct query_totals *t = xcalloc(n ? n : 1, sizeof *t);
    if (n && query_totals(rc, p->site_id, buckets, n, t, err, sizeof err) != 0) {
        redis_error(rq, err);
        goto done;
    }
    size_t ncols = 1 + p->nmetrics;
    const char *cols[1 + API_METRIC__COUNT] = {"date"};
    metric_columns(p, cols, 1);
    struct output_cell *cells = xcalloc((n ? n : 1) * ncols, sizeof *cells);
    char (*dates)[11] = xcalloc(n ? n : 1, sizeof *dates);
    for (size_t b = 0; b < n; b++) {
        publish_totals(rq->api, p->site_id, &buckets[b], &t[b]);
        if (p->interval == PERIOD_INTERVAL_MONTH)
            period_format_month(buckets[b].first, dates[b]);
        else
            period_format_day(buckets[b].first, dates[b]);
        cells[b * ncols] = output_str(dates[b], 10);
        for (size_t i = 0; i < p->nmetrics; i++)
            cells[b * ncols + 1 + i] = output_num(totals_metric(&t[b], p->metrics[i]));
    }
    struct output_table table = {ncols, cols, n, cells};
    write_table(rq, p, &table, false, false, 0, false);
    free(cells);
    free(dates);
done:
    free(t);
    free(buckets);
}

static int row_order(const void *a, const void *b)
{
    const struct stats_row *x = a, *y = b;
    if (x->visitors != y->visitors)
        return x->visitors > y->visitors ? -1 : 1;
    size_t n = x->value_len < y->value_len ? x->value_len : y->value_len;
    int c = memcmp(x->value, y->value, n);
    if (c)
        return c;
    return x->value_len < y->value_len ? -1 : x->value_len > y->value_len;
}

static void handle_breakdown(struct api_request *rq, const struct api_params *p,
                             redisContext *rc)
{
    struct stats_api *api = rq->api;
    char err[300];
    struct stats_rows rows = {0};
    if (p->range.first <= p->range.last &&
        query_breakdown(rc, p->site_id, p->dim, &p->range, &rows, err, sizeof err) != 0) {
        redis_error(rq, err);
        return;
    }
    /* k-anonymity on true counts first, then noise, then order and page. */
    size_t folded = 0;
    size_t kept = kanon_partition(rows.rows, rows.n, api->k_anonymity, &folded);
    char other_name[] = QUERY_OTHER;
    struct stats_row other = {.value = other_name, .value_len = sizeof other_name - 1};
    bool have_other = kept < rows.n, other_suppressed = false;
    if (have_other) {
        kanon_sum(rows.rows + kept, rows.n - kept, &other);
        if (query_rows_union_visitors(rc, p->site_id, p->dim, rows.rows + kept, rows.n - kept,
                                      &other.visitors, err, sizeof err) != 0) {
            redis_error(rq, err);
            goto done;
        }
        if (!kanon_publishable(other.visitors, api->k_anonymity)) {
            have_other = false;
            other_suppressed = true;
        }
    }
    for (size_t i = 0; i < kept; i++)
        publish_row(api, p->site_id, &p->range, &rows.rows[i]);
    if (have_other)
        publish_row(api, p->site_id, &p->range, &other);
    if (kept > 1)
        qsort(rows.rows, kept, sizeof *rows.rows, row_order);

    /* "(other)" is a summary: always the last row of the last page. */
    size_t total = kept + (have_other ? 1 : 0);
    size_t offset = (size_t)((p->page - 1) * p->limit);
    size_t count = offset >= total ? 0 : total - offset;
    if (count > (size_t)p->limit)
        count = (size_t)p->limit;
    size_t ncols = 1 + p->nmetrics;
    const char *cols[1 + API_METRIC__COUNT] = {p->column};
    metric_columns(p, cols, 1);
    struct output_cell *cells = xcalloc((count ? count : 1) * ncols, sizeof *cells);
    for (size_t i = 0; i < count; i++) {
        const struct stats_row *r = offset + i < kept ? &rows.rows[offset + i] : &other;
        cells[i * ncols] = output_str(r->value, r->value_len);
        for (size_t m = 0; m < p->nmetrics; m++)
            cells[i * ncols + 1 + m] = output_num(row_metric(r, p->metrics[m]));
    }
    struct output_table table = {ncols, cols, count, cells};
    write_table(rq, p, &table, false, true, folded, other_suppressed);
    free(cells);
done:
    query_rows_free(&rows);
}

static void handle_realtime(struct api_request *rq, const struct api_params *p, redisContext *rc)
{
    char err[300];
    long long n;
    time_t now = time(NULL);
    if (query_realtime(rc, p->site_id, (long long)now - REALTIME_WINDOW_S, (long long)now, &n, err,
                       sizeof err) != 0) {
        redis_error(rq, err);
        return;
    }
    period_day today = period_today(now);
    struct period_range r = {today, today};
    n = dp_count(rq->api, p->site_id, "realtime", "", 0, &r, 1, n);
    rq->status = 200;
    rq->content_type = "application/json";
    evbuffer_add_printf(rq->body, "%lld\n", n);
}

static void handle_sites(struct api_request *rq, const struct api_params *p, redisContext *rc,
                         const unsigned char token[AUTH_HASH_BYTES], const char *reg_scope)
{
    struct stats_api *api = rq->api;
    char err[300];
    char **stored = NULL;
    size_t nstored = 0;
    bool all = reg_scope[0] ? strcmp(reg_scope, "*") == 0 : auth_all_sites(api->auth, token);
    if (all && query_sites(api->cluster, &stored, &nstored, err, sizeof err) != 0) {
        redis_error(rq, err);
        return;
    }
    rc = api_redis(api); /* the registry's node, for the time zones */
    if (!rc) {
        redis_error(rq, "the site registry is unreachable");
        for (size_t i = 0; i < nstored; i++)
            free(stored[i]);
        free(stored);
        return;
    }
    const char **named = xcalloc(SITES_MAX_GRANTS, sizeof *named);
    size_t nnamed = 0;
    if (!reg_scope[0])
        nnamed = auth_named_sites(api->auth, token, named, SITES_MAX_GRANTS);
    else if (!all)
        named[nnamed++] = reg_scope;
    /* Stored sites (all-sites tokens) plus every site granted by name. */
    const char **list = xcalloc(nstored + nnamed + 1, sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < nstored; i++)
        list[n++] = stored[i];
    for (size_t i = 0; i < nnamed; i++) {
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(list[j], named[i]) == 0;
        if (!dup)
            list[n++] = named[i];
    }
    const char *cols[2] = {"domain", "timezone"};
    struct output_cell *cells = xcalloc((n ? n : 1) * 2, sizeof *cells);
    /* time zones from the site registry (veil-admin site add), else UTC */
    char (*zones)[64] = xcalloc(n ? n : 1, sizeof *zones);
    for (size_t i = 0; i < n; i++) {
        struct reg_site site;
        char rerr[200];
        if (registry_site_get(rc, list[i], &site, rerr, sizeof rerr) == 1 && site.timezone[0])
            str_copy(zones[i], sizeof zones[i], site.timezone, strlen(site.timezone));
        else
            str_copy(zones[i], sizeof zones[i], "Etc/UTC", 7);
        cells[2 * i] = output_str(list[i], strlen(list[i]));
        cells[2 * i + 1] = output_str(zones[i], strlen(zones[i]));
    }
    struct output_table table = {2, cols, n, cells};
    rq->status = 200;
    if (p->format == OUTPUT_CSV) {
        rq->content_type = "text/csv; charset=utf-8";
        output_csv(rq->body, &table);
    } else {
        rq->content_type = "application/json";
        evbuffer_add(rq->body, "{\"sites\": ", 10);
        output_json_rows(rq->body, &table);
        evbuffer_add(rq->body, "}\n", 2);
    }
    free(cells);
    free(zones);
    free(list);
    free(named);
    for (size_t i = 0; i < nstored; i++)
        free(stored[i]);
    free(stored);
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
        set_error(rq, 404, "not found");
        return;
    }
    /* The segment closes the descriptor when its last reference goes. */
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(f.fd, 0, f.size, EVBUF_FS_CLOSE_ON_FREE);
    if (!seg) {
        close(f.fd);
        set_error(rq, 500, "cannot read file");
        return;
    }
    int added = evbuffer_add_file_segment(rq->body, seg, 0, f.size);
    evbuffer_file_segment_free(seg); /* the body holds its own reference */
    if (added != 0) {
        set_error(rq, 500, "cannot read file");
        return;
    }
    rq->status = 200;
    rq->content_type = f.content_type;
}

/* Stats and sites routes: token, parameters, site grant, then the work. */
static void handle_api(struct api_request *rq, enum api_endpoint ep)
{
    struct stats_api *api = rq->api;
    struct evkeyvalq *in = evhttp_request_get_input_headers(rq->req);
    unsigned char token[AUTH_HASH_BYTES];
    char err[300];
    struct api_params p;

    /* A token veil-admin made: looked up in the site registry per request,
     * so a new token works and a revoked one stops at once. */
    char reg_scope[REG_ID_MAX + 1] = "";
    enum auth_result known = auth_identify(api->auth, evhttp_find_header(in, "Authorization"),
                                           token);
    if (known == AUTH_INVALID && !sodium_is_zero(token, AUTH_HASH_BYTES)) {
        redisContext *rrc = api_redis(api);
        if (rrc && registry_token_scope(rrc, token, reg_scope, sizeof reg_scope) == 1)
            known = AUTH_OK;
        else
            reg_scope[0] = '\0';
    }
    switch (known) {
    case AUTH_OK: break;
    case AUTH_MISSING:
        rq->unauthorized = true;
        set_error(rq, 401, "missing API token: send Authorization: Bearer <token>");
        return;
    default:
        rq->unauthorized = true;
        set_error(rq, 401, "invalid API token");
        return;
    }
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(rq->req));
    period_day today = period_today(time(NULL));
    if (!api_params_parse(ep, query, evhttp_find_header(in, "Accept"), today,
                          api->retention_days, &p, err, sizeof err)) {
        set_error(rq, 400, err);
        return;
    }
    bool granted = reg_scope[0] ? strcmp(reg_scope, "*") == 0 || strcmp(reg_scope, p.site_id) == 0
                                : auth_check_site(api->auth, token, p.site_id) == AUTH_OK;
    if (ep != API_EP_SITES && !granted) {
        set_error(rq, 403, "this token may not read this site");
        return;
    }
    /* the DP key's node (veil:{0}:), then the site's shard's node (the
     * site list gathers from every shard itself) */
    redisContext *rc = api_redis_at(api, "veil:{0}:");
    if (rc && !api_dp_key(rq, rc))
        return;
    if (rc && ep != API_EP_SITES) {
        char prefix[SHARD_PREFIX_MAX];
        query_site_prefix(p.site_id, prefix);
        rc = api_redis_at(api, prefix);
    }
    if (!rc) {
        api->metrics.redis_errors++;
        set_error(rq, 503, "storage unavailable, try again");
        return;
    }
    switch (ep) {
    case API_EP_AGGREGATE: handle_aggregate(rq, &p, rc); break;
    case API_EP_TIMESERIES: handle_timeseries(rq, &p, rc); break;
    case API_EP_BREAKDOWN: handle_breakdown(rq, &p, rc); break;
    case API_EP_REALTIME: handle_realtime(rq, &p, rc); break;
    case API_EP_SITES: handle_sites(rq, &p, rc, token, reg_scope); break;
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
        evhttp_add_header(out, "Allow", "GET, HEAD");
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
        set_error(&rq, 404, "not found");
    } else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        set_error(&rq, 405, "method not allowed: use GET");
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
