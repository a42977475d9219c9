/* api_metrics.c - the stats API's counters in Prometheus text (see
 * api_metrics.h). Labels are fixed strings and status codes only. */
#include "api_metrics.h"

#include <event2/buffer.h>

static const int statuses[API_METRICS_STATUSES] = {200, 304, 400, 401, 403,
                                                   404, 405, 413, 500, 503};

static const char *const route_names[API_ROUTE__COUNT] = {
    [API_ROUTE_AGGREGATE] = "aggregate", [API_ROUTE_TIMESERIES] = "timeseries",
    [API_ROUTE_BREAKDOWN] = "breakdown", [API_ROUTE_REALTIME] = "realtime",
    [API_ROUTE_SITES] = "sites",         [API_ROUTE_HEALTHZ] = "healthz",
    [API_ROUTE_METRICS] = "metrics",     [API_ROUTE_STATIC] = "static",
    [API_ROUTE_UNKNOWN] = "unknown",
};

static int status_slot(int status)
{
    for (int i = 0; i < API_METRICS_STATUSES; i++) {
        if (statuses[i] == status)
            return i;
    }
    return API_METRICS_STATUSES;
}

void api_metrics_count(struct api_metrics *m, enum api_route route, int status)
{
    if (route >= API_ROUTE__COUNT)
        route = API_ROUTE_UNKNOWN;
    m->requests[route][status_slot(status)]++;
}

uint64_t api_metrics_get(const struct api_metrics *m, enum api_route route, int status)
{
    return route < API_ROUTE__COUNT ? m->requests[route][status_slot(status)] : 0;
}

void api_metrics_render(const struct api_metrics *m, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP veil_api_requests_total Stats API requests answered, "
                             "by route and status.\n"
                             "# TYPE veil_api_requests_total counter\n");
    for (int r = 0; r < API_ROUTE__COUNT; r++) {
        for (int s = 0; s <= API_METRICS_STATUSES; s++) {
            if (!m->requests[r][s])
                continue;
            if (s < API_METRICS_STATUSES)
                evbuffer_add_printf(out, "veil_api_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                    route_names[r], statuses[s],
                                    (unsigned long long)m->requests[r][s]);
            else
                evbuffer_add_printf(out, "veil_api_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                                    route_names[r], (unsigned long long)m->requests[r][s]);
        }
    }
    evbuffer_add_printf(out,
                        "# HELP veil_api_redis_errors_total Redis commands of the stats API that "
                        "failed.\n"
                        "# TYPE veil_api_redis_errors_total counter\n"
                        "veil_api_redis_errors_total %llu\n"
                        "# HELP veil_api_redis_reconnects_total Connections the stats API opened "
                        "to Redis after the first.\n"
                        "# TYPE veil_api_redis_reconnects_total counter\n"
                        "veil_api_redis_reconnects_total %llu\n",
                        (unsigned long long)m->redis_errors,
                        (unsigned long long)m->redis_reconnects);
}
