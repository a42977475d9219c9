/* sink_redis.h - one worker thread's delivery of events to the Redis
 * shard streams: memory buffer, then disk spool, then Redis, one server or
 * a Redis Cluster (docs/DELIVERY.md).
 *
 * Events are packed once (lane, sequence number, the event_pack bytes).
 * A delivery batch becomes one call of a small script per (lane, shard),
 * sent through the cluster routing (rcluster.h, libevent) to the node that
 * owns the shard's slot, and each call adds ONE entry to
 * veil:{shard}:events holding all its events (field "b"). The script adds
 * only events its lane has not delivered to that shard yet, so re-sending
 * after a lost reply never adds an event twice. With wait_replicas, a call
 * counts as delivered only once WAIT confirms the replicas. Up to
 * max_buffered_events wait in memory until Redis acknowledges them; past
 * that, and whenever the spool still holds unread events (per-thread
 * order), they are appended to the spool and replayed when Redis is back
 * (records of earlier versions included). Redis refusing writes (OOM,
 * READONLY, ...) is treated like Redis down. At shutdown what is
 * unacknowledged goes to the spool. The sink only ever sees the derived
 * event record: no IP, no User-Agent. */
#ifndef VEIL_SINK_REDIS_H
#define VEIL_SINK_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "collector_config.h"
#include "event.h"
#include "metrics.h"

struct sink;

/* The sink of worker `worker` (of `nworkers`) on `base`, configured by
 * conf->redis, shards, max_buffered_events, batch_wait_us, wait_replicas,
 * wait_timeout_ms and spool_*
 * (`conf` must outlive it).
 * Opens the worker's spool, adopting files a previous run left there (a
 * share of them, by name, when several workers start), and starts
 * connecting. `m` receives its counters. Returns NULL with a reason in err
 * (bad address, unusable spool_dir). */
struct sink *sink_new(struct event_base *base, const struct collector_config *conf, int worker,
                      int nworkers, struct metrics *m, char *err, size_t errlen);

/* Queue one event. Returns 0 when it is held in memory or on disk (it
 * will reach Redis unless the process dies before saving its memory
 * buffer), -1 when memory and spool are both full (answer 503). */
int sink_push(struct sink *s, const struct event_record *ev);

/* Events not yet acknowledged by Redis: in memory plus unread in the spool. */
size_t sink_pending(const struct sink *s);

bool sink_connected(const struct sink *s);

/* Disconnect and free. Events Redis has not acknowledged are saved to the
 * spool (before its unread events, keeping their order) or, without a
 * spool, counted and logged as lost. */
void sink_free(struct sink *s);

#endif
