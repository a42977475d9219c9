/* sink_redis.h - one worker thread's pipelined XADD writer.
 *
 * Events are encoded (event_encode) into XADD commands and handed to
 * hiredis's async API on the thread's event_base: every command queued in
 * one loop iteration goes out in one write. Commands stay in a bounded
 * in-memory queue until Redis acknowledges them; on a lost connection the
 * unacknowledged ones are sent again after reconnecting (with backoff).
 * The sink only ever sees the derived event record: no IP, no User-Agent. */
#ifndef VEIL_SINK_REDIS_H
#define VEIL_SINK_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "event.h"
#include "metrics.h"

#define SINK_STREAM_KEY "veil:{0}:events"

struct sink;

/* A sink for `base` writing to `redis` ("host:port" or "unix:/path"),
 * holding at most `max_buffered` unacknowledged events. Starts connecting
 * at once; `m` receives its counters. Returns NULL on bad arguments. */
struct sink *sink_new(struct event_base *base, const char *redis, size_t max_buffered,
                      struct metrics *m);

/* Queue one event. Returns 0 when queued (it will reach Redis unless the
 * process dies), -1 when the buffer is full (answer 503). */
int sink_push(struct sink *s, const struct event_record *ev);

/* Events not yet acknowledged by Redis. */
size_t sink_pending(const struct sink *s);

bool sink_connected(const struct sink *s);

/* Disconnect and free; events still pending are counted and logged. */
void sink_free(struct sink *s);

#endif
