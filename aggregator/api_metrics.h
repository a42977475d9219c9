/* api_metrics.h - request counters of the stats API by route and status,
 * rendered at GET /metrics in the Prometheus text format.
 *
 * Touched only from the stats API's own thread, so plain integers. Labels
 * are fixed route names and status codes: never a site id, a path asked
 * for, a token or any other request content. */
#ifndef VEIL_API_METRICS_H
#define VEIL_API_METRICS_H

#include <stdint.h>

struct evbuffer;

enum api_route {
    API_ROUTE_AGGREGATE = 0,
    API_ROUTE_TIMESERIES,
    API_ROUTE_BREAKDOWN,
    API_ROUTE_REALTIME,
    API_ROUTE_SITES,
    API_ROUTE_HEALTHZ,
    API_ROUTE_METRICS,
    API_ROUTE_STATIC,
    API_ROUTE_QUERY,     /* POST /api/v2/query */
    API_ROUTE_UNKNOWN,
    API_ROUTE__COUNT
};

/* Status codes counted one by one; any other lands in "other". */
#define API_METRICS_STATUSES 10

struct api_metrics {
    uint64_t requests[API_ROUTE__COUNT][API_METRICS_STATUSES + 1];
    uint64_t redis_errors;
    uint64_t redis_reconnects;
};

/* Count one answered request. */
void api_metrics_count(struct api_metrics *m, enum api_route route, int status);

/* Requests counted so far for (route, status); for tests. */
uint64_t api_metrics_get(const struct api_metrics *m, enum api_route route, int status);

/* Append the Prometheus text of every non-zero counter to out. */
void api_metrics_render(const struct api_metrics *m, struct evbuffer *out);

#endif
