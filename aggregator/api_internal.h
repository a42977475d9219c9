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
    struct event *stop_event;
    int stop_pipe[2];
    pthread_t thread;
    /* state of the API thread only */
    redisContext *redis;
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

/* Replace the body with {"error": reason} and set the status. */
void api_set_error(struct api_request *rq, int status, const char *reason);

/* After a failed query: 503 when the connection is lost (it is dropped
 * and reopened by the next request), 500 for an unexpected answer. */
void api_redis_error(struct api_request *rq, const char *reason);

/* v1 handlers (api_v1.c); p is parsed and the site granted. */
void api_v1_aggregate(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_timeseries(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_breakdown(struct api_request *rq, const struct api_params *p, redisContext *rc);
void api_v1_realtime(struct api_request *rq, const struct api_params *p, redisContext *rc);
/* token: the caller's token hash; reg_scope: its registry scope or "". */
void api_v1_sites(struct api_request *rq, const struct api_params *p, redisContext *rc,
                  const unsigned char token[AUTH_HASH_BYTES], const char *reg_scope);

#endif
