/* metrics.c - counters and their Prometheus rendering (see metrics.h).
 * Holds counts only: no site id, no path, no IP. */
#include "metrics.h"

#include <pthread.h>
#include <string.h>

#include "util.h"

#define REASONS_MAX 64

static const char *const metric_names[M__COUNT] = {
    [M_REQUESTS] = "veil_collector_requests_total",
    [M_ACCEPTED] = "veil_collector_events_accepted_total",
    [M_PIXEL] = "veil_collector_pixel_events_total",
    [M_DNT] = "veil_collector_dropped_dnt_total",
    [M_GPC] = "veil_collector_dropped_gpc_total",
    [M_BOT] = "veil_collector_dropped_bot_total",
    [M_BAD_REQUEST] = "veil_collector_rejected_400_total",
    [M_NOT_FOUND] = "veil_collector_rejected_404_total",
    [M_BAD_METHOD] = "veil_collector_rejected_405_total",
    [M_TOO_LARGE] = "veil_collector_rejected_413_total",
    [M_BAD_MEDIA_TYPE] = "veil_collector_rejected_415_total",
    [M_UNAVAILABLE] = "veil_collector_unavailable_503_total",
    [M_RATE_LIMITED] = "veil_collector_rate_limited_429_total",
    [M_REDIS_WRITTEN] = "veil_collector_redis_written_total",
    [M_REDIS_ERRORS] = "veil_collector_redis_errors_total",
    [M_REDIS_RECONNECTS] = "veil_collector_redis_reconnects_total",
    [M_REDIS_DUPLICATES] = "veil_collector_redis_duplicates_suppressed_total",
    [M_SPOOLED] = "veil_collector_spooled_events_total",
    [M_REPLAYED] = "veil_collector_replayed_events_total",
    [M_SPOOL_CORRUPT] = "veil_collector_spool_corrupt_records_total",
    [M_SPOOL_ERRORS] = "veil_collector_spool_errors_total",
    [M_HEADER_TOO_LARGE] = "veil_collector_rejected_431_total",
    [M_REQUEST_TIMEOUT] = "veil_collector_request_timeouts_total",
    [M_UNKNOWN_SITE] = "veil_collector_unknown_site_total",
    [M_CONN_REFUSED] = "veil_collector_connections_refused_total",
    [M_CONN_CLIENT_CAP] = "veil_collector_connections_refused_per_client_total",
    [M_BUFFER_BYTES_FULL] = "veil_collector_buffer_bytes_full_total",
};

static pthread_mutex_t reasons_lock = PTHREAD_MUTEX_INITIALIZER;
static char reason_text[REASONS_MAX][96];
static uint64_t reason_count[REASONS_MAX];
static uint64_t reason_other;

void metrics_reason(const char *reason)
{
    pthread_mutex_lock(&reasons_lock);
    int i;
    for (i = 0; i < REASONS_MAX && reason_text[i][0]; i++) {
        if (strncmp(reason_text[i], reason, sizeof reason_text[i] - 1) == 0)
            break;
    }
    if (i == REASONS_MAX) {
        reason_other++;
    } else {
        if (!reason_text[i][0]) {
            size_t len = strnlen(reason, sizeof reason_text[i] - 1);
            str_copy(reason_text[i], sizeof reason_text[i], reason, len);
        }
        reason_count[i]++;
    }
    pthread_mutex_unlock(&reasons_lock);
}

uint64_t metrics_sum(struct metrics *const *per_thread, int n, enum metric k)
{
    uint64_t sum = 0;
    for (int t = 0; t < n; t++)
        sum += atomic_load_explicit(&per_thread[t]->c[k], memory_order_relaxed);
    return sum;
}

/* Prometheus label values escape backslash, quote and newline. */
static void add_label(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(out, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

void metrics_render(struct metrics *const *per_thread, int n, struct evbuffer *out)
{
    for (int k = 0; k < M__COUNT; k++) {
        evbuffer_add_printf(out, "# TYPE %s counter\n%s %llu\n", metric_names[k],
                            metric_names[k],
                            (unsigned long long)metrics_sum(per_thread, n, (enum metric)k));
    }
    int64_t buffered = 0;
    for (int t = 0; t < n; t++)
        buffered += atomic_load_explicit(&per_thread[t]->buffered, memory_order_relaxed);
    evbuffer_add_printf(out,
                        "# TYPE veil_collector_buffered_events gauge\n"
                        "veil_collector_buffered_events %lld\n",
                        (long long)buffered);
    int64_t spool_bytes = 0;
    for (int t = 0; t < n; t++)
        spool_bytes += atomic_load_explicit(&per_thread[t]->spool_bytes, memory_order_relaxed);
    evbuffer_add_printf(out,
                        "# TYPE veil_collector_spool_bytes gauge\n"
                        "veil_collector_spool_bytes %lld\n",
                        (long long)spool_bytes);
    int64_t connections = 0;
    for (int t = 0; t < n; t++)
        connections += atomic_load_explicit(&per_thread[t]->connections, memory_order_relaxed);
    evbuffer_add_printf(out,
                        "# TYPE veil_collector_connections gauge\n"
                        "veil_collector_connections %lld\n",
                        (long long)connections);
    evbuffer_add_printf(out, "# TYPE veil_collector_rejections_total counter\n");
    pthread_mutex_lock(&reasons_lock);
    for (int i = 0; i < REASONS_MAX && reason_text[i][0]; i++) {
        evbuffer_add_printf(out, "veil_collector_rejections_total{reason=\"");
        add_label(out, reason_text[i]);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)reason_count[i]);
    }
    if (reason_other)
        evbuffer_add_printf(out, "veil_collector_rejections_total{reason=\"other\"} %llu\n",
                            (unsigned long long)reason_other);
    pthread_mutex_unlock(&reasons_lock);
}
