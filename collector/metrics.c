/* metrics.c - counters and their Prometheus rendering (see metrics.h).
 * Holds counts only: no site id, no path, no IP. */
#include "metrics.h"

#include <pthread.h>
#include <string.h>

#include "prom.h"
#include "util.h"

#define REASONS_MAX 64

/* Each counter: its name and its # HELP text. */
static const struct {
    const char *name;
    const char *help;
} metric_info[M__COUNT] = {
    [M_REQUESTS] = {"veil_collector_requests_total",
        "Requests answered, every endpoint and status."},
    [M_ACCEPTED] = {"veil_collector_events_accepted_total",
        "Events recorded (answered 202 or the pixel, and queued for Redis)."},
    [M_PIXEL] = {"veil_collector_pixel_events_total",
        "Of the recorded events, those sent through the no-script pixel /e.gif."},
    [M_DNT] = {"veil_collector_dropped_dnt_total",
        "Events answered but not recorded: the request carried DNT: 1 (honor_dnt)."},
    [M_GPC] = {"veil_collector_dropped_gpc_total",
        "Events answered but not recorded: the request carried Sec-GPC: 1 (honor_gpc)."},
    [M_BOT] = {"veil_collector_dropped_bot_total",
        "Events answered but not recorded: empty or bot User-Agent (bot_filter)."},
    [M_BAD_REQUEST] = {"veil_collector_rejected_400_total",
        "Requests refused with 400 (malformed event; reasons in veil_collector_rejections_total)."},
    [M_NOT_FOUND] = {"veil_collector_rejected_404_total",
        "Requests refused with 404 (unknown site or path)."},
    [M_BAD_METHOD] = {"veil_collector_rejected_405_total",
        "Requests refused with 405 (wrong method)."},
    [M_TOO_LARGE] = {"veil_collector_rejected_413_total",
        "Requests refused with 413 (body over max_body_bytes)."},
    [M_BAD_MEDIA_TYPE] = {"veil_collector_rejected_415_total",
        "Requests refused with 415 (content type not text/plain or application/json)."},
    [M_UNAVAILABLE] = {"veil_collector_unavailable_503_total",
        "Requests refused with 503: the memory buffer and the spool were both full."},
    [M_RATE_LIMITED] = {"veil_collector_rate_limited_429_total",
        "Requests refused with 429 (over rate_limit)."},
    [M_REDIS_WRITTEN] = {"veil_collector_redis_written_total",
        "Events Redis acknowledged in the stream."},
    [M_REDIS_ERRORS] = {"veil_collector_redis_errors_total",
        "Stream writes Redis answered with an error."},
    [M_REDIS_RECONNECTS] = {"veil_collector_redis_reconnects_total",
        "Connection attempts to Redis after a loss."},
    [M_REDIS_DUPLICATES] = {"veil_collector_redis_duplicates_suppressed_total",
        "Re-sent events Redis already held, not added twice."},
    [M_SPOOLED] = {"veil_collector_spooled_events_total",
        "Events written to the disk spool while Redis was away or slow."},
    [M_REPLAYED] = {"veil_collector_replayed_events_total",
        "Events read back from the spool to go to Redis."},
    [M_SPOOL_CORRUPT] = {"veil_collector_spool_corrupt_records_total",
        "Torn or corrupt spans of spool data skipped."},
    [M_SPOOL_ERRORS] = {"veil_collector_spool_errors_total",
        "Spool writes, syncs or opens that failed."},
    [M_HEADER_TOO_LARGE] = {"veil_collector_rejected_431_total",
        "Requests refused with 431 (request line and headers over max_header_bytes)."},
    [M_REQUEST_TIMEOUT] = {"veil_collector_request_timeouts_total",
        "Requests not received within their deadline (408, or closed)."},
    [M_UNKNOWN_SITE] = {"veil_collector_unknown_site_total",
        "Events answered 202 but not recorded: the site is not tracked here (a 404 would say so)."},
    [M_CONN_REFUSED] = {"veil_collector_connections_refused_total",
        "Connections closed at once because max_connections was reached."},
    [M_CONN_CLIENT_CAP] = {"veil_collector_connections_refused_per_client_total",
        "Connections closed at once because their client held max_client_connections."},
    [M_BUFFER_BYTES_FULL] = {"veil_collector_buffer_bytes_full_total",
        "Events sent to the spool because memory held max_buffered_bytes."},
    [M_REDIS_UNCONFIRMED] = {"veil_collector_redis_unconfirmed_total",
        "Delivery calls whose WAIT did not confirm wait_replicas replicas (sent again)."},
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

void metrics_render(struct metrics *const *per_thread, int n, struct evbuffer *out)
{
    for (int k = 0; k < M__COUNT; k++)
        prom_counter(out, metric_info[k].name, metric_info[k].help,
                     metrics_sum(per_thread, n, (enum metric)k));
    int64_t buffered = 0, spool_bytes = 0, connections = 0;
    for (int t = 0; t < n; t++) {
        buffered += atomic_load_explicit(&per_thread[t]->buffered, memory_order_relaxed);
        spool_bytes += atomic_load_explicit(&per_thread[t]->spool_bytes, memory_order_relaxed);
        connections += atomic_load_explicit(&per_thread[t]->connections, memory_order_relaxed);
    }
    prom_gauge(out, "veil_collector_buffered_events",
               "Events waiting in memory for Redis, all threads.", (double)buffered);
    prom_gauge(out, "veil_collector_spool_bytes", "Size of the spool files on disk, all threads.",
               (double)spool_bytes);
    prom_gauge(out, "veil_collector_connections", "Client connections open, all threads.",
               (double)connections);
    /* Always one sample, so the family's TYPE never stands alone. */
    prom_family(out, "veil_collector_rejections_total", "counter",
                "Requests refused with 400, by the parser's fixed reason text.");
    pthread_mutex_lock(&reasons_lock);
    for (int i = 0; i < REASONS_MAX && reason_text[i][0]; i++)
        prom_u64_label(out, "veil_collector_rejections_total", "reason", reason_text[i],
                       reason_count[i]);
    prom_u64_label(out, "veil_collector_rejections_total", "reason", "other", reason_other);
    pthread_mutex_unlock(&reasons_lock);
}
