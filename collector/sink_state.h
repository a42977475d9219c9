/* sink_state.h - private to the sink (sink_redis.c and sink_calls.c, see
 * sink_redis.h): the state of one worker thread's delivery and the few
 * functions its two halves share. No other module includes it. Holds
 * derived event records only: never an IP or a User-Agent. */
#ifndef VEIL_SINK_STATE_H
#define VEIL_SINK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "metrics.h"
#include "rcluster.h"
#include "sink_events.h"
#include "sink_wire.h"
#include "spool.h"

#define SINK_MAX_INFLIGHT 4096      /* events sent and not yet answered */
#define SINK_MAX_CALLS 4096         /* calls sent and not yet answered */
#define SINK_BATCH_MAX 1024         /* events per delivery batch (all its calls together) */
#define SINK_BATCH_BYTES (4 << 20)  /* payload bytes per delivery batch (one event always fits) */
#define SINK_GROUPS_MAX 64          /* calls per delivery batch; the rest waits for the next */
#define SINK_BACKOFF_MIN_MS 50
#define SINK_BACKOFF_MAX_MS 2000

enum sink_state { SINK_DISCONNECTED, SINK_LOADING, SINK_READY, SINK_CLOSING };

struct sink {
    struct event_base *base;
    char *redis;
    unsigned nshards;
    size_t max_buffered;
    size_t max_bytes;        /* this thread's share of max_buffered_bytes */
    size_t mem_bytes;        /* held by the events in memory (sink_cmd_bytes each) */
    long batch_wait_us;      /* how long a queued event may wait for company */
    int wait_replicas;       /* 0: no WAIT */
    int wait_timeout_ms;
    struct metrics *m;
    enum sink_state state;
    struct rcluster_async *rca; /* NULL while DISCONNECTED */
    bool cluster;            /* the server is a Redis Cluster */
    struct event *retry;     /* reconnect after backoff */
    struct event *reset_ev;  /* close everything outside any callback */
    int backoff_ms;
    uint64_t conn_gen;       /* bumped when a connection becomes READY */
    uint64_t lost_seen;      /* the routing's count of lost connections when READY */
    bool refused;            /* the last connection ended on a refused call */
    char sha[41];            /* the delivery script's SHA1, from SCRIPT LOAD */
    struct cmd_list queue;   /* not yet sent */
    struct cmd_list returned; /* to send again */
    size_t inflight;         /* events in calls awaiting their answer */
    size_t ncalls;           /* calls awaiting their answer */
    struct event *flush_ev;  /* active once per loop iteration while events wait */
    bool flush_pending;
    struct wire_call wire;   /* one call in the Redis protocol, reused */
    struct spool *spool;     /* NULL without spool_dir */
    struct event *sync_ev, *adopt_ev;
    struct lane_set lanes;
    struct lane *own;
};

/* sink_redis.c: the event is acknowledged or given up (frees it). */
void sink_cmd_done(struct sink *s, struct sink_cmd *c);
/* sink_redis.c: something failed; close every connection and start again
 * after backoff (safe inside callbacks: the closing is deferred). */
void sink_fail(struct sink *s, bool refused);
/* sink_redis.c: send what waits at the end of this loop iteration. */
void sink_schedule_flush(struct sink *s);
/* A reply nobody reads. */
void sink_ignore_cb(void *r, void *privdata);

/* sink_calls.c: send one delivery batch, a prefix of s->queue, one call
 * per (lane, shard), each settled by its own reply. Returns the number of
 * calls sent (0: nothing to send, or no node reachable: sink_fail ran). */
size_t sink_send_batch(struct sink *s);

#endif
