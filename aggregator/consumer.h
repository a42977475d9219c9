/* consumer.h - the roll-up worker: reads veil:{0}:events through the
 * consumer group "agg" (its own pending entries first, then entries idle
 * too long at dead workers via XAUTOCLAIM, then new entries via
 * XREADGROUP), decodes and combines each batch (rollup.c) and commits it
 * atomically (commit.c). Survives Redis restarts by reconnecting.
 *
 * It logs counts, timings, stream ids and reasons, never event content or
 * visitor hashes; an undecodable entry is acknowledged as rejected and
 * never blocks the stream. */
#ifndef VEIL_CONSUMER_H
#define VEIL_CONSUMER_H

#include "agg_config.h"

struct consumer_stats {
    unsigned long long batches;   /* committed */
    unsigned long long events;    /* counted */
    unsigned long long rejected;  /* undecodable or unusable, acknowledged */
    unsigned long long expired;   /* older than retention, acknowledged */
    unsigned long long gone;      /* pending but already deleted from the stream */
    unsigned long long claimed;   /* taken over from idle consumers */
    unsigned long long conflicts; /* entries another worker took while we held them */
};

struct consumer;

/* A worker for `cfg`, which must outlive it. Nothing is connected yet.
 * Aborts on OOM. */
struct consumer *consumer_new(const struct agg_config *cfg);

/* Roll up until `stop_fd` (a signalfd or a pipe) becomes readable, checked
 * between batches and during every wait, so a stop takes at most block_ms
 * plus one batch. Redis errors are logged and retried with backoff; they
 * never end the loop. Returns 0. */
int consumer_run(struct consumer *c, int stop_fd);

/* Totals since consumer_new. */
void consumer_get_stats(const struct consumer *c, struct consumer_stats *out);

void consumer_free(struct consumer *c);

#endif
