/* sink_redis.c - memory buffer, spool and pipelined Redis delivery of one
 * worker thread (sink_redis.h, docs/DELIVERY.md); the payload layout, the
 * delivery script and the wire form of a call are in sink_wire.c.
 *
 * State: DISCONNECTED -> CONNECTING -> LOADING (shard count checked,
 * SCRIPT LOAD sent) -> READY -> CLOSING (after a transient error) ->
 * DISCONNECTED, changed only in sink_set_state. Queue discipline: `queue`
 * holds events not yet sent, `inflight` those sent and awaiting a reply,
 * `returned` those to send again. Logical order is always returned,
 * inflight, queue, then the spool's unread records: an event goes to
 * memory only when the spool has nothing unread, and the spool is read
 * back into the tail of `queue`.
 *
 * Calls: a delivery batch is a prefix of `queue`, grouped by (lane,
 * shard) in order; each group is one EVALSHA adding ONE entry to
 * veil:{shard}:events (one Redis Cluster slot per call). A group's events
 * join `inflight` together, in call order; `batches` (a FIFO of group
 * sizes) says how many events at the head of `inflight` each reply
 * settles. Order is kept per (lane, shard), which is all exactly-once
 * (the lane marks, sink_wire.c) needs. sink_push only queues and arms
 * `flush_ev` once, as a timer of batch_wait_us (activated at once when 0),
 * so events accepted meanwhile share the calls; answers to clients never
 * wait for it. Never blocks the loop on Redis; never holds an IP or a
 * User-Agent. */
#include "sink_redis.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <adapters/libevent.h>
#include <async.h>
#include <hiredis.h>

#include "log.h"
#include "shard.h"
#include "shard_meta.h"
#include "sink_wire.h"
#include "spool.h"
#include "util.h"

/* The least memory a thread's buffer may use (max_buffered_bytes share). */
#define SINK_MIN_BUFFER_BYTES (256 * 1024)
#define SINK_MAX_INFLIGHT 4096      /* events sent and not yet answered */
#define SINK_BATCH_MAX 1024         /* events per delivery batch (all its calls together) */
#define SINK_BATCH_BYTES (4 << 20)  /* payload bytes per delivery batch (one event always fits) */
#define SINK_GROUPS_MAX 64          /* calls per delivery batch; the rest waits for the next */
#define SINK_REFILL_BATCH 512       /* spool records moved into memory at a time */
#define SINK_BACKOFF_MIN_MS 50
#define SINK_BACKOFF_MAX_MS 2000
#define SINK_SYNC_MS 100            /* spool_fsync=batch */
#define SINK_ADOPT_MS 10000         /* look for files of processes that ended */
#define SINK_SPOOL_SHARE_MIN (64 * 1024)
#define SINK_META_SHARDS SHARD_META_KEY

enum sink_state { SINK_DISCONNECTED, SINK_CONNECTING, SINK_LOADING, SINK_READY, SINK_CLOSING };

struct lane {
    struct lane *next;
    char id[SPOOL_GROUP_MAX];
    bool legacy;         /* numbered by version 1: honour veil:{0}:lane:<id> too */
    uint64_t last_seq;   /* own lane: the last number given out */
    uint64_t *sent_gen;  /* per shard: connection on which sent_seq was sent */
    uint64_t *sent_seq;  /* per shard: the last number sent on that connection */
};

/* One event: its payload (sink_wire.h, version 2), the same bytes in
 * memory and in the spool. */
struct sink_cmd {
    struct sink_cmd *next;
    struct lane *lane;
    uint64_t seq;
    struct spool_seg *seg; /* read back from the spool, NULL if never there */
    unsigned shard;
    size_t len;
    size_t packed_len;     /* the event_pack bytes end the payload */
    uint8_t payload[];
};

struct cmd_list {
    struct sink_cmd *head, *tail;
    size_t n;
};

struct sink {
    struct event_base *base;
    char *redis;
    unsigned nshards;
    size_t max_buffered;
    size_t max_bytes;        /* this thread's share of max_buffered_bytes */
    size_t mem_bytes;        /* held by the events in memory (cmd_bytes each) */
    long batch_wait_us;      /* how long a queued event may wait for company */
    struct metrics *m;
    enum sink_state state;
    redisAsyncContext *ac;
    struct event *retry;
    int backoff_ms;
    uint64_t conn_gen;        /* bumped when a connection becomes READY */
    bool refused;             /* the last connection ended on a refused call */
    char sha[41];             /* the delivery script's SHA1, from SCRIPT LOAD */
    struct cmd_list queue;    /* not yet sent */
    struct cmd_list inflight; /* sent, awaiting reply */
    struct cmd_list returned; /* to send again */
    uint16_t batches[SINK_MAX_INFLIGHT]; /* events per sent call, oldest first (a ring) */
    size_t batch_head, nbatches;
    struct event *flush_ev;   /* active once per loop iteration while events wait */
    bool flush_pending;
    struct wire_call wire;    /* one call in the Redis protocol, reused */
    struct spool *spool;      /* NULL without spool_dir */
    struct event *sync_ev, *adopt_ev;
    struct lane *lanes, *own;
};

static void list_push(struct cmd_list *l, struct sink_cmd *c)
{
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static struct sink_cmd *list_pop(struct cmd_list *l)
{
    struct sink_cmd *c = l->head;
    if (!c)
        return NULL;
    l->head = c->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    return c;
}

/* Put all of `front` before `l`, leaving `front` empty. */
static void list_prepend(struct cmd_list *l, struct cmd_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    l->n += front->n;
    front->head = front->tail = NULL;
    front->n = 0;
}

/* Put all of `back` after `l`, leaving `back` empty. */
static void list_append(struct cmd_list *l, struct cmd_list *back)
{
    if (!back->head)
        return;
    if (l->tail)
        l->tail->next = back->head;
    else
        l->head = back->head;
    l->tail = back->tail;
    l->n += back->n;
    back->head = back->tail = NULL;
    back->n = 0;
}

/* Move the first n commands of `from` to the tail of `to`. */
static void list_move(struct cmd_list *from, struct cmd_list *to, size_t n)
{
    struct sink_cmd *c;
    while (n-- > 0 && (c = list_pop(from)))
        list_push(to, c);
}

static size_t mem_pending(const struct sink *s)
{
    return s->queue.n + s->inflight.n + s->returned.n;
}

/* What one event in memory costs: its command and payload. */
static size_t cmd_bytes(const struct sink_cmd *c)
{
    return sizeof *c + c->len;
}

/* Whether memory may take `c` besides what it holds: both the event count
 * (max_buffered_events) and the bytes (max_buffered_bytes) bound it. */
static bool mem_room(const struct sink *s, const struct sink_cmd *c)
{
    return mem_pending(s) < s->max_buffered && s->mem_bytes + cmd_bytes(c) <= s->max_bytes;
}

static void update_gauge(struct sink *s, int64_t delta)
{
    atomic_fetch_add_explicit(&s->m->buffered, delta, memory_order_relaxed);
}

static void count(struct sink *s, enum metric k, uint64_t n)
{
    if (n)
        atomic_fetch_add_explicit(&s->m->c[k], n, memory_order_relaxed);
}

/* ---- events and lanes ---- */

static struct lane *lane_get(struct sink *s, const char *id, size_t len)
{
    for (struct lane *l = s->lanes; l; l = l->next)
        if (strlen(l->id) == len && memcmp(l->id, id, len) == 0)
            return l;
    struct lane *l = xcalloc(1, sizeof *l);
    str_copy(l->id, sizeof l->id, id, len);
    l->sent_gen = xcalloc(s->nshards, sizeof *l->sent_gen);
    l->sent_seq = xcalloc(s->nshards, sizeof *l->sent_seq);
    l->next = s->lanes;
    s->lanes = l;
    return l;
}

/* A command holding the version 2 payload p[0..len) (already checked);
 * NULL when the event names no site. */
static struct sink_cmd *cmd_from_payload(struct sink *s, const uint8_t *p, size_t len)
{
    struct payload_view v;
    const char *site;
    size_t site_len;
    if (!payload_parse(p, len, &v) || v.version != PAYLOAD_VERSION ||
        !packed_site(v.packed, v.packed_len, &site, &site_len))
        return NULL;
    struct sink_cmd *c = xmalloc(sizeof *c + len);
    c->lane = lane_get(s, v.lane, v.lane_len);
    if (v.flags & PAYLOAD_LEGACY)
        c->lane->legacy = true;
    c->seq = v.seq;
    c->seg = NULL;
    c->shard = shard_of_site(site, site_len, s->nshards);
    c->len = len;
    c->packed_len = v.packed_len;
    memcpy(c->payload, p, len);
    return c;
}

/* A command holding `ev` in the own lane under number `seq`; NULL when it
 * does not fit a spool record. Packs once, straight into the payload. */
static struct sink_cmd *cmd_new_event(struct sink *s, uint64_t seq, const struct event_record *ev)
{
    char packed[EVENT_PACKED_MAX];
    size_t packed_len = event_pack(ev, packed, sizeof packed);
    size_t lane_len = strlen(s->own->id);
    size_t len = 3 + lane_len + 8 + packed_len;
    if (packed_len == 0 || len > SPOOL_RECORD_MAX)
        return NULL;
    struct sink_cmd *c = xmalloc(sizeof *c + len);
    payload_build(c->payload, len, s->own->id, lane_len, seq, 0, packed, packed_len);
    c->lane = s->own;
    c->seq = seq;
    c->seg = NULL;
    c->shard = shard_of_site(ev->site, strlen(ev->site), s->nshards);
    c->len = len;
    c->packed_len = packed_len;
    return c;
}

/* The event is acknowledged or given up. */
static void cmd_done(struct sink *s, struct sink_cmd *c)
{
    if (c->seg)
        spool_release(s->spool, c->seg);
    s->mem_bytes -= cmd_bytes(c);
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
        s->ac = NULL;
        list_prepend(&s->queue, &s->inflight); /* hiredis answered these NULL already */
        list_prepend(&s->queue, &s->returned);
        s->batch_head = s->nbatches = 0;
        struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
        evtimer_add(s->retry, &tv);
        s->backoff_ms = s->backoff_ms * 2 > SINK_BACKOFF_MAX_MS ? SINK_BACKOFF_MAX_MS
                                                               : s->backoff_ms * 2;
    } else if (state == SINK_READY) {
        /* After a refused call (OOM, ...) the backoff keeps growing until a
         * call succeeds: reconnecting does not make Redis take it. */
        if (!s->refused)
            s->backoff_ms = SINK_BACKOFF_MIN_MS;
        s->conn_gen++;
    }
}

/* Send what waits at the end of this loop iteration (see flush_cb). */
static void schedule_flush(struct sink *s)
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
        schedule_flush(s);
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
    if (pump(s) > 0 && s->state == SINK_READY) {
        /* Write now instead of one more loop iteration later. This is no
         * hiredis callback, so a failed write may free the context here
         * (disconnect_cb runs); nothing touches it afterwards. */
        redisAsyncHandleWrite(s->ac);
    }
}

/* The number of events the oldest unanswered call carries. */
static size_t batch_pop(struct sink *s)
{
    if (s->nbatches == 0)
        return 0;
    size_t n = s->batches[s->batch_head];
    s->batch_head = (s->batch_head + 1) % SINK_MAX_INFLIGHT;
    s->nbatches--;
    return n;
}

/* The first n events of `inflight` are acknowledged or given up. */
static void settle(struct sink *s, size_t n)
{
    struct sink_cmd *c;
    while (n-- > 0 && (c = list_pop(&s->inflight)))
        cmd_done(s, c);
}

/* The reply to one call: the events at the head of `inflight`. */
static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    size_t n = batch_pop(s);
    if (n == 0)
        return;
    if (!reply) {
        /* Connection lost before the reply: send the call again (the lane
         * mark makes a second add impossible if the first one happened). */
        list_move(&s->inflight, &s->returned, n);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        metrics_inc(s->m, M_REDIS_ERRORS);
        if (wire_error_transient(reply->str)) {
            list_move(&s->inflight, &s->returned, n);
            if (s->state == SINK_READY && s->ac == ac) {
                log_warn("redis answered %.*s; sending again from the oldest unacknowledged "
                         "event after backoff (%d ms)",
                         wire_error_code_len(reply->str), reply->str, s->backoff_ms);
                s->refused = true;
                sink_set_state(s, SINK_CLOSING);
                redisAsyncDisconnect(ac);
            }
            return;
        }
        log_error("redis refused %zu event%s (not retried): %.120s", n, n == 1 ? "" : "s",
                  reply->str);
        settle(s, n);
        return;
    }
    struct wire_outcome o;
    wire_reply_outcome(reply, n, &o);
    if (o.unexpected)
        log_error("unexpected reply type %d to the delivery script", reply->type);
    if (o.refused)
        log_error("redis refused a stream entry of %zu events (not retried): %.120s", o.refused,
                  o.why ? o.why : "no reason given");
    count(s, M_REDIS_WRITTEN, o.written);
    count(s, M_REDIS_DUPLICATES, o.cut);
    count(s, M_REDIS_ERRORS, o.refused);
    settle(s, n);
    s->refused = false;
    s->backoff_ms = SINK_BACKOFF_MIN_MS;
    if (s->state == SINK_READY && (s->queue.head || (s->spool && spool_unread(s->spool))))
        schedule_flush(s); /* the window has room again */
}

/* One call of a delivery batch: the events of one (lane, shard). */
struct group {
    struct lane *lane;
    unsigned shard;
    struct cmd_list cmds;
    size_t bytes;
};

/* Send one delivery batch: a prefix of `queue`, one call per (lane,
 * shard) in it (see the head comment). Returns the number of calls sent;
 * 0 with nothing sent when the context is going away. */
static size_t send_batch(struct sink *s)
{
    struct group groups[SINK_GROUPS_MAX];
    size_t ngroups = 0, n = 0, bytes = 0;
    /* take the prefix apart into groups, in order */
    while (s->queue.head && n < SINK_BATCH_MAX &&
           s->inflight.n + n < SINK_MAX_INFLIGHT) {
        struct sink_cmd *c = s->queue.head;
        if (n > 0 && bytes + c->len > SINK_BATCH_BYTES)
            break;
        size_t g = 0;
        while (g < ngroups && (groups[g].lane != c->lane || groups[g].shard != c->shard))
            g++;
        if (g == ngroups) {
            if (ngroups == SINK_GROUPS_MAX || s->nbatches + ngroups >= SINK_MAX_INFLIGHT)
                break;
            groups[g] = (struct group){c->lane, c->shard, {NULL, NULL, 0}, 0};
            ngroups++;
        }
        list_push(&groups[g].cmds, list_pop(&s->queue));
        groups[g].bytes += c->packed_len;
        bytes += c->len;
        n++;
    }
    size_t sent = 0;
    for (; sent < ngroups; sent++) {
        struct group *g = &groups[sent];
        struct lane *lane = g->lane;
        struct sink_cmd *head = g->cmds.head;
        wire_call_begin(&s->wire, g->bytes + 3 * g->cmds.n);
        for (struct sink_cmd *c = head; c; c = c->next)
            wire_call_add(&s->wire, c->seq, (const char *)c->payload + c->len - c->packed_len,
                          c->packed_len);
        /* prev: what the mark must have reached for this call to be next */
        uint64_t prev = lane->sent_gen[g->shard] == s->conn_gen &&
                                lane->sent_seq[g->shard] < head->seq
                            ? lane->sent_seq[g->shard]
                            : 0;
        size_t len;
        const char *cmd = wire_call_end(&s->wire, s->sha, g->shard, lane->id, lane->legacy, prev,
                                        &len);
        if (redisAsyncFormattedCommand(s->ac, reply_cb, s, cmd, len) != REDIS_OK)
            break;
        lane->sent_gen[g->shard] = s->conn_gen;
        lane->sent_seq[g->shard] = s->wire.last;
        s->batches[(s->batch_head + s->nbatches) % SINK_MAX_INFLIGHT] = (uint16_t)g->cmds.n;
        s->nbatches++;
        list_append(&s->inflight, &g->cmds);
    }
    /* calls not sent go back in front of the queue, each (lane, shard) in order */
    for (size_t k = ngroups; k-- > sent;)
        list_prepend(&s->queue, &groups[k].cmds);
    return sent;
}

/* The command of one spool record, upgraded from version 1 when needed;
 * NULL when it cannot be read (counted and logged by the caller). */
static struct sink_cmd *cmd_from_spool(struct sink *s, const uint8_t *payload, size_t len)
{
    static _Thread_local uint8_t upgraded[SPOOL_RECORD_MAX];
    char err[160];
    if (len > 0 && payload[0] == PAYLOAD_VERSION_1) {
        len = payload_upgrade(payload, len, upgraded, sizeof upgraded, err, sizeof err);
        if (!len)
            log_warn("spool: a version 1 record does not decode (%s)", err);
        payload = upgraded;
    }
    return len ? cmd_from_payload(s, payload, len) : NULL;
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
        struct sink_cmd *c = cmd_from_spool(s, payload, len);
        if (!c) {
            log_warn("spool: a record with a good checksum has an unknown layout; skipped");
            metrics_inc(s->m, M_SPOOL_CORRUPT);
            spool_release(s->spool, seg);
            continue;
        }
        c->seg = seg;
        list_push(&s->queue, c);
        s->mem_bytes += cmd_bytes(c);
        update_gauge(s, 1);
    }
}

/* Send queued events, in batches, while ready and the window allows.
 * Returns the number of calls handed to hiredis. */
static size_t pump(struct sink *s)
{
    size_t calls = 0;
    while (s->state == SINK_READY && s->inflight.n < SINK_MAX_INFLIGHT &&
           s->nbatches < SINK_MAX_INFLIGHT) {
        if (s->queue.n < SINK_BATCH_MAX)
            refill(s);
        size_t sent = s->queue.head ? send_batch(s) : 0;
        if (sent == 0)
            break; /* nothing to send, or the context is going away */
        calls += sent;
    }
    return calls;
}

static void load_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    if (!reply || s->ac != ac || s->state != SINK_LOADING)
        return; /* lost: disconnect_cb follows */
    if (reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(s->sha, reply->str, 40);
        s->sha[40] = '\0';
        sink_set_state(s, SINK_READY);
        log_info("redis connected (%zu events waiting)", sink_pending(s));
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
    sink_set_state(s, SINK_CLOSING);
    redisAsyncDisconnect(ac);
}

/* The answer to GET veil:meta:shards (after SET ... NX): the installation's
 * shard count must be ours, or events would land in the wrong shard. */
static void meta_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    if (!reply || s->ac != ac || s->state != SINK_LOADING)
        return; /* lost: disconnect_cb follows */
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
    s->refused = true;
    s->backoff_ms = SINK_BACKOFF_MAX_MS;
    sink_set_state(s, SINK_CLOSING);
    redisAsyncDisconnect(ac);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct sink *s = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis connect failed: %s", ac->errstr);
        sink_set_state(s, SINK_DISCONNECTED);
        return;
    }
    sink_set_state(s, SINK_LOADING);
    if (redisAsyncCommand(s->ac, NULL, NULL, "SET " SINK_META_SHARDS " %u NX", s->nshards) !=
            REDIS_OK ||
        redisAsyncCommand(s->ac, meta_cb, s, "GET " SINK_META_SHARDS) != REDIS_OK ||
        redisAsyncCommand(s->ac, load_cb, s, "SCRIPT LOAD %s", sink_delivery_script) !=
            REDIS_OK) {
        sink_set_state(s, SINK_CLOSING);
        redisAsyncDisconnect(s->ac);
    }
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct sink *s = ac->data;
    if (!s)
        return; /* sink_free is tearing down */
    if (status != REDIS_OK)
        log_warn("redis connection lost: %s", ac->errstr);
    sink_set_state(s, SINK_DISCONNECTED);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    metrics_inc(s->m, M_REDIS_RECONNECTS);
    sink_connect(s);
}

static void sink_connect(struct sink *s)
{
    redisAsyncContext *ac = wire_connect(s->redis);
    if (!ac) {
        sink_set_state(s, SINK_DISCONNECTED);
        return;
    }
    ac->data = s;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    s->ac = ac;
    sink_set_state(s, SINK_CONNECTING);
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
    char host[300];
    int port;
    if (strncmp(conf->redis, "unix:", 5) != 0 &&
        !hostport_split(conf->redis, host, sizeof host, &port)) {
        str_format(err, errlen, "redis: expected host:port or unix:/path");
        return NULL;
    }
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->redis = xstrdup(conf->redis);
    s->nshards = (unsigned)conf->shards;
    s->max_buffered = (size_t)conf->max_buffered_events;
    s->max_bytes = (size_t)(conf->max_buffered_bytes / (nworkers > 0 ? nworkers : 1));
    if (s->max_bytes < SINK_MIN_BUFFER_BYTES) /* room for batches in flight, whatever threads is */
        s->max_bytes = SINK_MIN_BUFFER_BYTES;
    s->batch_wait_us = (long)conf->batch_wait_us;
    s->m = m;
    s->backoff_ms = SINK_BACKOFF_MIN_MS;
    s->retry = evtimer_new(base, retry_cb, s);
    s->flush_ev = event_new(base, -1, 0, flush_cb, s);
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
    s->own = lane_get(s, lane, strlen(lane));
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
    struct sink_cmd *c = cmd_new_event(s, s->own->last_seq + 1, ev);
    if (!c)
        return -1;
    bool spool_first = s->spool && spool_unread(s->spool) > 0;
    bool room = mem_room(s, c);
    if (!spool_first && !room && mem_pending(s) < s->max_buffered)
        metrics_inc(s->m, M_BUFFER_BYTES_FULL); /* the bytes, not the count, said no */
    if (!spool_first && room) {
        s->own->last_seq++;
        list_push(&s->queue, c);
        s->mem_bytes += cmd_bytes(c);
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
        schedule_flush(s);
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
    if (s->ac) {
        s->ac->data = NULL;
        redisAsyncFree(s->ac); /* calls reply_cb(NULL) per batch: they join `returned` */
        s->ac = NULL;
    }
    list_prepend(&s->queue, &s->inflight);
    list_prepend(&s->queue, &s->returned);
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
    while ((c = list_pop(&s->queue)))
        free(c); /* spool references died with the dump */
    update_gauge(s, -(int64_t)held);
    spool_close(s->spool);
    while (s->lanes) {
        struct lane *next = s->lanes->next;
        free(s->lanes->sent_gen);
        free(s->lanes->sent_seq);
        free(s->lanes);
        s->lanes = next;
    }
    event_free(s->retry);
    event_free(s->flush_ev);
    wire_call_free(&s->wire);
    free(s->redis);
    free(s);
}
