/* api_internal.h - what the stats API's files share (stats_api.c: HTTP,
 * thread, routing, tokens; api_v1.c: the Plausible v1 handlers). Internal
 * to aggregator/: nothing outside the stats API includes it. It never logs
 * a token, a query string or a row value. */
#ifndef VEIL_API_INTERNAL_H
#define VEIL_API_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>

#include "api_metrics.h"
#include "api_params.h"
#include "auth.h"
#include "dp.h"
#include "output.h"
#include "period.h"
#include "query.h"

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
    bool filtered;             /* answered under a filter (meta says how many cells were
                                  withheld by k-anonymity) */
    size_t k_withheld;
    bool visit_rows_used;      /* answered with per-row bounces/durations or exit pages:
                                  meta says on how many days they are missing */
    long long visit_rows_missing;
};

/* Replace the body with {"error": reason} and set the status. */
void api_set_error(struct api_request *rq, int status, const char *reason);

/* After a failed query: 503 when the connection is lost (it is dropped
 * and reopened by the next request), 500 for an unexpected answer. */
void api_redis_error(struct api_request *rq, const char *reason);

/* ---- shared by the v1 and v2 handlers (api_v1.c) ---- */

/* Noise on every counter of t (DP; nothing when dp_epsilon is 0). */
void api_publish_totals(const struct stats_api *api, const char *site,
                        const struct period_range *r, struct query_totals *t);
/* Totals of buckets[0..n) under p's filter (k-anonymity per filtered
 * cell), published. False when rq was answered with an error. */
bool api_load_totals(struct api_request *rq, const struct api_params *p, redisContext *rc,
                     const struct period_range *buckets, size_t n, struct query_totals *t);
/* A metric of totals: a number, and as a cell (decimals where it has them). */
long long api_totals_metric(const struct query_totals *t, enum api_metric m);
struct output_cell api_totals_cell(const struct query_totals *t, enum api_metric m);
/* compare=previous_period (v1) and include.comparisons (v2): the change
 * of metric m from prev to cur (percent, rounded; points for bounce_rate;
 * 100 when prev is 0 and cur is not). */
long long api_change(enum api_metric m, long long cur, long long prev);
/* A breakdown row's counter metric (visitors, pageviews, visits, events). */
long long api_row_metric(const struct stats_row *r, enum api_metric m);
/* ... as a cell: null for a per-row bounce rate or visit duration of a row
 * without visits on the days that keep them (api_visit_rows.h). */
struct output_cell api_row_cell(const struct stats_row *r, enum api_metric m);
/* Noise on a breakdown row. */
void api_publish_row(const struct stats_api *api, const char *site,
                     const struct period_range *range, struct stats_row *r);
/* Keep the rows matching p's filter; false (rq answered 400) when
 * "(other)" may hide some. */
bool api_filter_rows(struct api_request *rq, const struct api_params *p,
                     struct stats_rows *rows);

/* A breakdown filtered by another property (api_pairs.h): its rows and
 * the cells api_pairs_union needs; false when rq was answered (400 or a
 * Redis error). */
struct api_pair_cells;
bool api_pairs_rows(struct api_request *rq, const struct api_params *p, redisContext *rc,
                    struct stats_rows *rows, struct api_pair_cells **pairs);

/* v2 (api_v2.c): POST /api/v2/query; body is the request's JSON. */
struct api_v2_query;
/* Parse body[0..len) for `today` (the site's local day): NULL with a 400
 * reason in err. The caller frees it with free(). */
struct api_v2_query *api_v2_parse(const char *body, size_t len, period_day today,
                                  long long retention_days, char *err, size_t errlen);
const char *api_v2_site(const struct api_v2_query *q);
void api_v2_run(struct api_request *rq, const struct api_v2_query *q, redisContext *rc);

/* v1 handlers (api_v1.c); p is parsed and the site granted. */
void api_v1_aggregate(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_timeseries(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_breakdown(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_realtime(struct api_request *rq, const struct api_params *p, redisContext *rc);
/* rc: the site registry's node (time zones); token: the caller's token hash;
 * reg_scope: its registry scope or "". */
void api_v1_sites(struct api_request *rq, const struct api_params *p, redisContext *rc,
                  const unsigned char token[AUTH_HASH_BYTES], const char *reg_scope);

#endif
