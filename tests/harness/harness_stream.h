/* harness_stream.h - what the collector put into the Redis streams, for
 * integration tests: every event of every shard stream veil:{s}:events,
 * whatever the entry layout (docs/KEYS.md "Stream entries": a batch in
 * field "b", one packed event in field "e", or the old one field per
 * event field). Tests count events with it, never entries (XLEN counts
 * entries, and one entry holds many events). Read-only: it never writes,
 * acknowledges or trims. */
#ifndef VEIL_HARNESS_STREAM_H
#define VEIL_HARNESS_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis.h>

#include "event.h"

/* The events found, in stream ID order across all shard streams (so the
 * order they were added in when the IDs differ; within one entry, batch
 * order). */
struct harness_events {
    size_t n;                  /* events */
    size_t entries;            /* stream entries they came in */
    size_t streams;            /* non-empty veil:{s}:events keys */
    struct event_record *ev;   /* n records when decoded, else NULL */
    unsigned *shard;           /* the shard stream of each record, when decoded */
};

/* Read every stream whose key matches veil:{<number>}:events (found with
 * SCAN, so the shard count need not be known). Counts the events and,
 * when `decode` is true, decodes each into out->ev (event_decode_* and
 * event_decode_check). Returns the number of events, or -1 with a reason
 * in err when Redis fails or an entry does not decode (a test should then
 * fail: the collector wrote something the aggregator cannot read).
 * Free out with harness_events_free. */
long long harness_stream_events(redisContext *rc, bool decode, struct harness_events *out,
                                char *err, size_t errlen);
void harness_events_free(struct harness_events *e);

/* Count only (no decoding), or -1 on error: the replacement for XLEN. */
long long harness_stream_count(redisContext *rc);

/* Wait until at least `n` events are in the streams (at most timeout_ms,
 * polling every 10 ms). Returns the last count (or -1). */
long long harness_wait_stream_events(redisContext *rc, long long n, int timeout_ms);

#endif
