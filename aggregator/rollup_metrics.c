/* rollup_metrics.c - the engine's counters as Prometheus text (see
 * rollup_metrics.h). Reads a copy of the counters under the engine's
 * lock; never touches Redis, never logs. */
#include "rollup_metrics.h"

#include <event2/buffer.h>

#include "consumer.h"
#include "prom.h"

static struct consumer *engine; /* set once before the stats API thread starts */

void rollup_metrics_register(struct consumer *c)
{
    engine = c;
}

static void histogram(struct evbuffer *out, const char *name, const char *help,
                      const double *bounds, const unsigned long long *counts, unsigned n,
                      double sum)
{
    prom_family(out, name, "histogram", help);
    unsigned long long cumulative = 0;
    for (unsigned i = 0; i < n; i++) {
        cumulative += counts[i];
        if (i + 1 < n)
            evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], cumulative);
        else
            evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, cumulative);
    }
    evbuffer_add_printf(out, "%s_sum %.17g\n%s_count %llu\n", name, sum, name, cumulative);
}

void rollup_metrics_render(struct evbuffer *out)
{
    if (!engine)
        return;
    struct consumer_stats s;
    consumer_get_stats(engine, &s);
    static const double batch_bounds[CONSUMER_BATCH_BUCKETS] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    static const double latency_bounds[CONSUMER_LATENCY_BUCKETS] = {0.001, 0.002, 0.005, 0.01,
                                                                    0.05,  0.1,   1};
    prom_gauge(out, "veil_aggregator_stream_lag_seconds",
               "Age of the oldest stream entry not yet committed in this process's shards "
               "(at the last batch; 0 when nothing waits).",
               (double)s.lag_ms / 1000.0);
    prom_gauge(out, "veil_aggregator_backlog_entries",
               "Stream entries waiting in this process's shards (each holds one or many events).",
               (double)s.backlog_entries);
    prom_gauge(out, "veil_aggregator_shards_owned", "Shards whose lease this process holds.",
               (double)s.shards_owned);
    histogram(out, "veil_aggregator_batch_events", "Events per committed batch.", batch_bounds,
              s.batch_hist, CONSUMER_BATCH_BUCKETS, (double)s.batch_events_sum);
    histogram(out, "veil_aggregator_commit_seconds",
              "Time to combine, plan and commit one batch.", latency_bounds, s.latency_hist,
              CONSUMER_LATENCY_BUCKETS, s.latency_sum_s);
    prom_counter(out, "veil_aggregator_commits_total", "Batches committed.", s.batches);
    prom_counter(out, "veil_aggregator_commits_retried_total",
                 "Commits that failed (Redis error or lost link) and were retried.", s.retried);
    prom_counter(out, "veil_aggregator_commits_stale_total",
                 "Commits Redis refused because the shard's epoch had moved on (another process "
                 "owned it).",
                 s.stale);
    prom_counter(out, "veil_aggregator_events_total", "Events counted.", s.events);
    static const char rejected[] = "veil_aggregator_events_rejected_total";
    prom_family(out, rejected, "counter",
                "Events not counted, by reason: invalid (undecodable or unusable), future "
                "(beyond future_skew_s), expired (older than retention).");
    prom_u64_label(out, rejected, "reason", "invalid", s.rejected);
    prom_u64_label(out, rejected, "reason", "future", s.future);
    prom_u64_label(out, rejected, "reason", "expired", s.expired);
    prom_counter(out, "veil_aggregator_events_forwarded_total",
                 "Old collectors' entries moved to the stream of their site's shard.", s.forwarded);
    prom_counter(out, "veil_aggregator_redis_commands_total",
                 "Redis commands run inside the commit functions.", s.commands);
    prom_counter(out, "veil_aggregator_shard_takeovers_total", "Shards this process acquired.",
                 s.takeovers);
}
