/* consumer.h - the roll-up engine: owns a share of the installation's
 * shards through leases (lease.c), reads their streams veil:{s}:events
 * with one XREAD, decodes and combines each shard's batch (rollup.c) and
 * commits it with one epoch-checked function call (commit.c). Any number
 * of processes split the shards; a dead one's shards are taken over when
 * its leases expire. Survives Redis restarts by reconnecting.
 *
 * It logs counts, timings, shard numbers, stream ids and reasons, never
 * event content or visitor hashes; an undecodable event is counted as
 * rejected and never blocks the stream. */
#ifndef VEIL_CONSUMER_H
#define VEIL_CONSUMER_H

#include <stdint.h>

#include "agg_config.h"

/* Histogram bucket bounds shared with the metrics page. */
#define CONSUMER_BATCH_BUCKETS 8  /* events per batch: 1 10 100 1e3 1e4 1e5 1e6 +Inf */
#define CONSUMER_LATENCY_BUCKETS 8 /* commit ms: 1 2 5 10 50 100 1000 +Inf */

struct consumer_stats {
    unsigned long long batches;     /* committed */
    unsigned long long events;      /* counted */
    unsigned long long rejected;    /* undecodable or unusable */
    unsigned long long future;      /* stamped beyond future_skew_s: refused */
    unsigned long long expired;     /* older than retention */
    unsigned long long forwarded;   /* legacy entries moved to their site's shard */
    unsigned long long stale;       /* commits refused: the epoch moved on */
    unsigned long long retried;     /* commits that failed and were retried */
    unsigned long long commands;    /* Redis commands inside the commits */
    unsigned long long takeovers;   /* shards acquired */
    unsigned long long batch_hist[CONSUMER_BATCH_BUCKETS];
    unsigned long long latency_hist[CONSUMER_LATENCY_BUCKETS];
    double latency_sum_s;
    unsigned long long batch_events_sum;
    long long shards_owned;
    long long backlog_entries;      /* stream entries waiting in owned shards */
    long long lag_ms;               /* age of the oldest uncommitted entry read */
};

struct consumer;

/* An engine for `cfg`, which must outlive it. Nothing is connected yet.
 * Aborts on OOM. */
struct consumer *consumer_new(const struct agg_config *cfg);

/* Roll up until `stop_fd` (a signalfd or a pipe) becomes readable, checked
 * between batches and during every wait, so a stop takes at most block_ms
 * plus one batch; owned leases are released on the way out. Redis errors
 * are logged and retried with backoff; they never end the loop. Returns
 * 0, or -1 when this process must not run (its `shards` differs from the
 * installation's; the reason is logged). */
int consumer_run(struct consumer *c, int stop_fd);

/* A copy of the counters; safe from any thread. */
void consumer_get_stats(struct consumer *c, struct consumer_stats *out);

void consumer_free(struct consumer *c);

#endif
