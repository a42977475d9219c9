/* sink_redis.c - memory buffer, spool and connection to Redis of one
 * worker thread (sink_redis.h, docs/DELIVERY.md); the delivery calls are in
 * sink_calls.c, the records it holds in sink_events.c, the payload layout,
 * the delivery script and the wire form of a call in sink_wire.c, the
 * routing to a Redis Cluster's nodes in common/rcluster_async.c (one plain
 * Redis is the cluster of one node).
 *
 * State: DISCONNECTED -> LOADING (shard count checked, SCRIPT LOAD sent)
 * -> READY -> CLOSING (after a failed call) -> DISCONNECTED, changed only
 * in sink_set_state. Queue discipline: `queue` holds events not yet sent,
 * each call in flight its own events (struct sink_call), `returned` those
 * of failed calls, to send again. Logical order is always returned, the
 * calls, queue, then the spool's unread records: an event goes to memory
 * only when the spool has nothing unread, and the spool is read back into
 * the tail of `queue`.
 *
 * Calls (sink_calls.c): a delivery batch is a prefix of `queue`, grouped
 * by (lane, shard) in order; each group is one EVALSHA adding ONE entry to
 * veil:{shard}:events, sent to the node owning that shard's slot (one slot
 * per call, never cross-slot). Each call is settled by its own callback,
 * whatever the order in which nodes answer; with wait_replicas, only after
 * a WAIT on the node that took it confirms the replicas. Order is kept per
 * (lane, shard) as long as nothing fails, and exactly-once (the lane marks
 * and `prev`, sink_wire.c) needs no more: a call that overtakes a failed
 * one is refused by the script (VEILGAP). Any failure (a lost node, a
 * refusal, an unconfirmed WAIT) stops sending, lets the calls in flight
 * be answered (bounded by SINK_DRAIN_MS), then closes every connection:
 * what did not succeed is in `returned`, put in numbering order per lane
 * and sent first after backoff, on fresh connections and a fresh slot map
 * (how a promoted replica is found). MOVED, ASK and TRYAGAIN are followed
 * by the routing without failing a call. sink_push only queues and arms
 * `flush_ev` once, as a timer of batch_wait_us (activated at once when 0),
 * so events accepted meanwhile share the calls; answers to clients never
 * wait for it. Never blocks the loop on Redis except for discovering the
 * nodes when (re)connecting (bounded by SINK_DISCOVER_MS per seed); never
 * holds an IP or a User-Agent. */
#include "sink_redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis.h>

#include "log.h"
#include "rcluster.h"
#include "shard.h"
#include "shard_meta.h"
#include "sink_events.h"
#include "sink_state.h"
#include "sink_wire.h"
#include "spool.h"
#include "util.h"

/* The least memory a thread's buffer may use (max_buffered_bytes share). */
#define SINK_MIN_BUFFER_BYTES (256 * 1024)
#define SINK_REFILL_BATCH 512       /* spool records moved into memory at a time */
#define SINK_DISCOVER_MS 300        /* per seed, when (re)connecting (blocks the thread); also TRYAGAIN's patience */
#define SINK_DRAIN_MS 1000          /* after a failure, the calls in flight get this long (+ wait_timeout_ms) */
#define SINK_SYNC_MS 100            /* spool_fsync=batch */
#define SINK_ADOPT_MS 10000         /* look for files of processes that ended */
#define SINK_SPOOL_SHARE_MIN (64 * 1024)
#define SINK_META_SHARDS SHARD_META_KEY

static size_t mem_pending(const struct sink *s)
{
    return s->queue.n + s->inflight + s->returned.n;
}

/* Whether memory may take `c` besides what it holds: both the event count
 * (max_buffered_events) and the bytes (max_buffered_bytes) bound it. */
static bool mem_room(const struct sink *s, const struct sink_cmd *c)
{
    return mem_pending(s) < s->max_buffered && s->mem_bytes + sink_cmd_bytes(c) <= s->max_bytes;
}

static void update_gauge(struct sink *s, int64_t delta)
{
    atomic_fetch_add_explicit(&s->m->buffered, delta, memory_order_relaxed);
}

void sink_cmd_done(struct sink *s, struct sink_cmd *c)
{
    if (c->seg)
        spool_release(s->spool, c->seg);
    s->mem_bytes -= sink_cmd_bytes(c);
    free(c);
    update_gauge(s, -1);
}

/* ---- connection ---- */

static void sink_connect(struct sink *s);
static size_t pump(struct sink *s);

static void sink_set_state(struct sink *s, enum sink_state state)
{
    s->state = state;
    if (state == SINK_DISCONNECTED) {
        /* every call has come back: send the failed ones first, each
         * lane's events in their numbering order */
        cmds_sort(&s->returned);
        cmds_prepend(&s->queue, &s->returned);
        struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
        evtimer_add(s->retry, &tv);
        s->backoff_ms = s->backoff_ms * 2 > SINK_BACKOFF_MAX_MS ? SINK_BACKOFF_MAX_MS
                                                               : s->backoff_ms * 2;
    } else if (state == SINK_READY) {
        /* The backoff keeps growing until a call is delivered
         * (call_delivered): reconnecting does not make Redis take calls,
         * nor a cluster's dead master come back. */
        s->conn_gen++;
    }
}

/* (a lost node, a refused or unconfirmed call; the closing happens in
 * reset_cb) */
void sink_fail(struct sink *s, bool refused)
{
    if (refused)
        s->refused = true;
    if (s->state == SINK_LOADING || s->state == SINK_READY) {
        sink_set_state(s, SINK_CLOSING);
        /* Nothing new is sent; the calls in flight to nodes that work are
         * answered and settled meanwhile (sink_calls.c activates reset_ev
         * when the last one ends), so one failed node does not hold back
         * what the others took. A node that never answers is closed when
         * the drain time is up. */
        if (s->ncalls == 0) {
            event_active(s->reset_ev, EV_TIMEOUT, 0);
        } else {
            int ms = SINK_DRAIN_MS + s->wait_timeout_ms;
            struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
            evtimer_add(s->reset_ev, &tv);
        }
    }
}

static void reset_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    event_del(s->reset_ev); /* the drain timer, when the last call ended first */
    if (s->state != SINK_CLOSING)
        return;
    struct rcluster_async *rca = s->rca;
    s->rca = NULL;
    rcluster_async_free(rca); /* every call in flight comes back (NULL): `returned` */
    sink_set_state(s, SINK_DISCONNECTED);
}

/* (see flush_cb) */
void sink_schedule_flush(struct sink *s)
{
    if (!s->flush_pending) {
        s->flush_pending = true;
        event_active(s->flush_ev, EV_TIMEOUT, 0);
    }
}

/* A newly queued event: send it within batch_wait_us, together with what
 * arrives meanwhile (one call for many events costs Redis a fraction per
 * event of one call each), or at the end of this iteration when the wait
 * is 0. A full batch leaves at once (sink_push). */
static void schedule_batch(struct sink *s)
{
    if (s->batch_wait_us <= 0) {
        sink_schedule_flush(s);
    } else if (!s->flush_pending) {
        s->flush_pending = true;
        struct timeval tv = {s->batch_wait_us / 1000000, s->batch_wait_us % 1000000};
        event_add(s->flush_ev, &tv);
    }
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    s->flush_pending = false;
    if (pump(s) > 0 && s->state == SINK_READY)
        rcluster_async_flush(s->rca); /* write now, not one loop iteration later */
}


/* Move the oldest spool records to the tail of `queue` while memory has room. */
static void refill(struct sink *s)
{
    while (s->spool && s->queue.n < SINK_REFILL_BATCH && mem_pending(s) < s->max_buffered &&
           s->mem_bytes < s->max_bytes && /* may pass it by one record */
           spool_unread(s->spool) > 0) {
        const uint8_t *payload;
        size_t len;
        struct spool_seg *seg;
        if (spool_next(s->spool, &payload, &len, &seg) != 1)
            break;
        metrics_inc(s->m, M_REPLAYED);
        struct sink_cmd *c = sink_cmd_from_spool(&s->lanes, payload, len);
        if (!c) {
            log_warn("spool: a record with a good checksum has an unknown layout; skipped");
            metrics_inc(s->m, M_SPOOL_CORRUPT);
            spool_release(s->spool, seg);
            continue;
        }
        c->seg = seg;
        cmds_push(&s->queue, c);
        s->mem_bytes += sink_cmd_bytes(c);
        update_gauge(s, 1);
    }
}

/* Send queued events, in batches, while ready and the window allows.
 * Returns the number of calls handed to the routing. */
static size_t pump(struct sink *s)
{
    size_t calls = 0;
    if (s->state == SINK_READY) {
        /* a connection closed since READY (even with no call on it, e.g. a
         * Redis restart): start again, checking the shard count anew */
        struct rcluster_stats st;
        rcluster_async_get_stats(s->rca, &st);
        if (st.lost != s->lost_seen)
            sink_fail(s, false);
    }
    while (s->state == SINK_READY && s->inflight < SINK_MAX_INFLIGHT &&
           s->ncalls < SINK_MAX_CALLS) {
        if (s->queue.n < SINK_BATCH_MAX)
            refill(s);
        size_t sent = s->queue.head ? sink_send_batch(s) : 0;
        if (sent == 0)
            break; /* nothing to send, or no node reachable */
        calls += sent;
    }
    return calls;
}

void sink_ignore_cb(void *r, void *privdata)
{
    (void)r;
    (void)privdata;
}

static void load_cb(void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    if (s->state != SINK_LOADING)
        return;
    if (!reply) {
        sink_fail(s, false);
        return;
    }
    if (reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(s->sha, reply->str, 40);
        s->sha[40] = '\0';
        struct rcluster_stats st;
        rcluster_async_get_stats(s->rca, &st);
        s->lost_seen = st.lost;
        sink_set_state(s, SINK_READY);
        log_info("redis connected%s (%zu events waiting)",
                 s->cluster ? " (a Redis Cluster)" : "", sink_pending(s));
        pump(s);
        return;
    }
    metrics_inc(s->m, M_REDIS_ERRORS);
    const char *msg = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    if (wire_error_transient(msg))
        log_warn("redis is not ready (%.*s); retrying", wire_error_code_len(msg), msg);
    else
        log_error("redis refused the delivery script (%.160s); Redis 7.0 or later is required",
                  msg);
    sink_fail(s, false);
}

/* The answer to GET veil:meta:shards (after SET ... NX): the installation's
 * shard count must be ours, or events would land in the wrong shard. */
static void meta_cb(void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    if (!reply || s->state != SINK_LOADING)
        return; /* lost: load_cb sees it too */
    if (reply->type != REDIS_REPLY_STRING)
        return; /* nil: the SET was refused (OOM); nothing to compare yet */
    char *end;
    unsigned long stored = strtoul(reply->str, &end, 10);
    if (*end == '\0' && stored == s->nshards)
        return;
    log_error("redis says this installation has %.20s shards (" SINK_META_SHARDS
              ") but shards is %u here: nothing is delivered until they agree (set shards %.20s, "
              "or see docs/DELIVERY.md \"Changing the shard count\")",
              reply->str, s->nshards, reply->str);
    metrics_inc(s->m, M_REDIS_ERRORS);
    s->backoff_ms = SINK_BACKOFF_MAX_MS;
    sink_fail(s, true);
}

/* Queue a formatted command for the node of veil:meta:shards. */
static int meta_node_command(struct sink *s, rcluster_reply_fn *fn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -1;
    int rc = rcluster_async_command(s->rca, SINK_META_SHARDS, sizeof SINK_META_SHARDS - 1, fn, s,
                                    cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    metrics_inc(s->m, M_REDIS_RECONNECTS);
    sink_connect(s);
}

/* Discover the server (blocking, bounded), then check the shard count and
 * load the delivery script on the node of veil:meta:shards; other nodes
 * get the script when they first answer NOSCRIPT (call_cb). */
static void sink_connect(struct sink *s)
{
    char err[256];
    s->rca = rcluster_async_new(s->base, s->redis, SINK_DISCOVER_MS, err, sizeof err);
    if (!s->rca || !rcluster_async_ready(s->rca)) {
        log_warn("redis connect failed: %s", s->rca ? "no node answered" : err);
        rcluster_async_free(s->rca);
        s->rca = NULL;
        sink_set_state(s, SINK_DISCONNECTED);
        return;
    }
    s->cluster = rcluster_async_is_cluster(s->rca);
    sink_set_state(s, SINK_LOADING);
    if (meta_node_command(s, sink_ignore_cb, "SET " SINK_META_SHARDS " %u NX", s->nshards) != 0 ||
        meta_node_command(s, meta_cb, "GET " SINK_META_SHARDS) != 0 ||
        meta_node_command(s, load_cb, "SCRIPT LOAD %s", sink_delivery_script) != 0)
        sink_fail(s, false);
}

/* ---- spool timers ---- */

static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    spool_sync(s->spool);
}

static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    if (spool_adopt(s->spool) > 0)
        pump(s);
}

/* ---- public ---- */

struct sink *sink_new(struct event_base *base, const struct collector_config *conf, int worker,
                      int nworkers, struct metrics *m, char *err, size_t errlen)
{
    struct rc_addr seeds[RC_SEEDS_MAX];
    int nseeds;
    if (!rc_parse_spec(conf->redis, seeds, &nseeds, err, errlen))
        return NULL;
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->redis = xstrdup(conf->redis);
    s->nshards = (unsigned)conf->shards;
    s->max_buffered = (size_t)conf->max_buffered_events;
    s->max_bytes = (size_t)(conf->max_buffered_bytes / (nworkers > 0 ? nworkers : 1));
    if (s->max_bytes < SINK_MIN_BUFFER_BYTES) /* room for batches in flight, whatever threads is */
        s->max_bytes = SINK_MIN_BUFFER_BYTES;
    s->batch_wait_us = (long)conf->batch_wait_us;
    s->wait_replicas = (int)conf->wait_replicas;
    s->wait_timeout_ms = (int)conf->wait_timeout_ms;
    s->lanes.nshards = s->nshards;
    s->m = m;
    s->backoff_ms = SINK_BACKOFF_MIN_MS;
    s->retry = evtimer_new(base, retry_cb, s);
    s->flush_ev = event_new(base, -1, 0, flush_cb, s);
    s->reset_ev = evtimer_new(base, reset_cb, s);
    char lane[SPOOL_GROUP_MAX];
    if (conf->spool_dir[0]) {
        uint64_t share = (uint64_t)conf->spool_max_bytes / (uint64_t)(nworkers > 0 ? nworkers : 1);
        struct spool_options opt = {
            .dir = conf->spool_dir,
            .max_bytes = share < SINK_SPOOL_SHARE_MIN ? SINK_SPOOL_SHARE_MIN : share,
            .fsync = (enum spool_fsync)conf->spool_fsync,
            .worker = worker,
            .nworkers = nworkers,
        };
        s->spool = spool_open(&opt, m, err, errlen);
        if (!s->spool) {
            size_t used = strlen(err);
            str_format(err + used, errlen - used,
                       " (make spool_dir a writable directory, or set it to \"\" to keep "
                       "undelivered events in memory only)");
            event_free(s->retry);
            event_free(s->flush_ev);
            event_free(s->reset_ev);
            free(s->redis);
            free(s);
            return NULL;
        }
        if (spool_unread(s->spool))
            log_info("spool: %llu events left by a previous run go to redis first",
                     (unsigned long long)spool_unread(s->spool));
        str_copy(lane, sizeof lane, spool_group(s->spool), strlen(spool_group(s->spool)));
        s->sync_ev = evtimer_new(base, sync_cb, s);
        s->adopt_ev = event_new(base, -1, EV_PERSIST, adopt_cb, s);
        struct timeval every = {SINK_ADOPT_MS / 1000, 0};
        event_add(s->adopt_ev, &every);
    } else {
        uint64_t run_id = 0;
        while (run_id == 0 && getrandom(&run_id, sizeof run_id, 0) != (ssize_t)sizeof run_id)
            ;
        str_format(lane, sizeof lane, "%016llx-%d", (unsigned long long)run_id, worker);
    }
    s->own = lane_get(&s->lanes, lane, strlen(lane));
    sink_connect(s);
    return s;
}

size_t sink_pending(const struct sink *s)
{
    return mem_pending(s) + (s->spool ? (size_t)spool_unread(s->spool) : 0);
}

bool sink_connected(const struct sink *s)
{
    return s->state == SINK_READY;
}

int sink_push(struct sink *s, const struct event_record *ev)
{
    struct sink_cmd *c = sink_cmd_new_event(&s->lanes, s->own, s->own->last_seq + 1, ev);
    if (!c)
        return -1;
    bool spool_first = s->spool && spool_unread(s->spool) > 0;
    bool room = mem_room(s, c);
    if (!spool_first && !room && mem_pending(s) < s->max_buffered)
        metrics_inc(s->m, M_BUFFER_BYTES_FULL); /* the bytes, not the count, said no */
    if (!spool_first && room) {
        s->own->last_seq++;
        cmds_push(&s->queue, c);
        s->mem_bytes += sink_cmd_bytes(c);
        update_gauge(s, 1);
        if (s->queue.n >= SINK_BATCH_MAX)
            pump(s); /* a full batch need not wait */
        else
            schedule_batch(s);
        return 0;
    }
    int rc = -1;
    if (s->spool && spool_append(s->spool, c->payload, c->len) == 0) {
        s->own->last_seq++;
        metrics_inc(s->m, M_SPOOLED);
        if (!evtimer_pending(s->sync_ev, NULL)) {
            struct timeval tv = {0, SINK_SYNC_MS * 1000};
            evtimer_add(s->sync_ev, &tv);
        }
        rc = 0;
    }
    free(c);
    if (rc == 0)
        sink_schedule_flush(s);
    return rc;
}

/* Save what memory holds (older than the spool's unread records) in front
 * of them. Returns the number of events lost. */
static size_t save_to_spool(struct sink *s)
{
    size_t n = s->queue.n;
    if (spool_dump_begin(s->spool) == 0) {
        bool ok = true;
        for (struct sink_cmd *c = s->queue.head; c && ok; c = c->next)
            ok = spool_dump_add(s->spool, c->payload, c->len) == 0;
        if (ok && spool_dump_commit(s->spool) == 0) {
            if (n)
                log_info("saved %zu events redis had not acknowledged to the spool", n);
            return 0;
        }
    }
    spool_dump_abort(s->spool);
    metrics_inc(s->m, M_SPOOL_ERRORS);
    return n;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    if (s->rca) {
        s->state = SINK_CLOSING;
        rcluster_async_free(s->rca); /* every call in flight comes back to `returned` */
        s->rca = NULL;
    }
    cmds_sort(&s->returned);
    cmds_prepend(&s->queue, &s->returned);
    size_t held = s->queue.n, lost = held;
    if (s->spool) {
        if (s->sync_ev)
            event_free(s->sync_ev);
        if (s->adopt_ev)
            event_free(s->adopt_ev);
        lost = save_to_spool(s);
        if (spool_unread(s->spool))
            log_info("spool: %llu events wait on disk for the next start",
                     (unsigned long long)spool_unread(s->spool));
    }
    if (lost)
        log_error("%zu events were not acknowledged by redis and are lost%s", lost,
                  s->spool ? " (the spool could not take them)" : " (spool_dir is empty)");
    struct sink_cmd *c;
    while ((c = cmds_pop(&s->queue)))
        free(c); /* spool references died with the dump */
    update_gauge(s, -(int64_t)held);
    spool_close(s->spool);
    lane_set_free(&s->lanes);
    event_free(s->retry);
    event_free(s->flush_ev);
    event_free(s->reset_ev);
    wire_call_free(&s->wire);
    free(s->redis);
    free(s);
}
