/* rollup_metrics.h - the roll-up engine's counters (consumer.h) on the
 * aggregator's GET /metrics, in the Prometheus text format with # HELP and
 * # TYPE lines: stream lag, backlog, batch sizes, commit latency, commits
 * retried and refused, events rejected by reason, shards owned.
 *
 * Labels are fixed reason names only: never a site, a value or a hash. */
#ifndef VEIL_ROLLUP_METRICS_H
#define VEIL_ROLLUP_METRICS_H

struct consumer;
struct evbuffer;

/* The engine whose counters /metrics shows; call once, before the stats
 * API starts (NULL: none, nothing is rendered). */
void rollup_metrics_register(struct consumer *c);

/* Append the engine's metrics to out (from the stats API's thread). */
void rollup_metrics_render(struct evbuffer *out);

#endif
