/* api_metrics.c - the stats API's counters in Prometheus text (see
 * api_metrics.h). Labels are fixed strings and status codes only. */
#include "api_metrics.h"

#include <stdbool.h>

#include <event2/buffer.h>

#include "prom.h"

static const int statuses[API_METRICS_STATUSES] = {200, 304, 400, 401, 403,
                                                   404, 405, 413, 500, 503};

static const char *const route_names[API_ROUTE__COUNT] = {
    [API_ROUTE_AGGREGATE] = "aggregate", [API_ROUTE_TIMESERIES] = "timeseries",
    [API_ROUTE_BREAKDOWN] = "breakdown", [API_ROUTE_REALTIME] = "realtime",
    [API_ROUTE_SITES] = "sites",         [API_ROUTE_HEALTHZ] = "healthz",
    [API_ROUTE_METRICS] = "metrics",     [API_ROUTE_STATIC] = "static",
    [API_ROUTE_QUERY] = "query",
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
    prom_family(out, "veil_api_requests_total", "counter",
                "Stats API requests answered, by route and status.");
    for (int r = 0; r < API_ROUTE__COUNT; r++) {
        for (int s = 0; s <= API_METRICS_STATUSES; s++) {
            /* metrics/200 always: the family never stands without a sample
             * (the scrape being answered is counted after it) */
            bool always = r == API_ROUTE_METRICS && s == status_slot(200);
            if (!m->requests[r][s] && !always)
                continue;
            if (s < API_METRICS_STATUSES)
                evbuffer_add_printf(out,
                                    "veil_api_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                    route_names[r], statuses[s],
                                    (unsigned long long)m->requests[r][s]);
            else
                evbuffer_add_printf(out,
                                    "veil_api_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                                    route_names[r], (unsigned long long)m->requests[r][s]);
        }
    }
    prom_family(out, "veil_api_responses_total", "counter",
                "Stats API answers by status class (2xx, 3xx, 4xx, 5xx), all routes.");
    static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
    uint64_t by_class[4] = {0, 0, 0, 0};
    for (int r = 0; r < API_ROUTE__COUNT; r++)
        for (int s = 0; s < API_METRICS_STATUSES; s++)
            if (statuses[s] >= 200 && statuses[s] < 600)
                by_class[statuses[s] / 100 - 2] += m->requests[r][s];
    for (int c = 0; c < 4; c++)
        prom_u64_label(out, "veil_api_responses_total", "class", classes[c], by_class[c]);
    prom_counter(out, "veil_api_redis_errors_total", "Redis commands of the stats API that failed.",
                 m->redis_errors);
    prom_counter(out, "veil_api_redis_reconnects_total",
                 "Connections the stats API opened to Redis after the first.", m->redis_reconnects);
}
