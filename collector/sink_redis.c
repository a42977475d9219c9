/* sink_redis.c - memory buffer, spool and pipelined Redis delivery of one
 * worker thread (see sink_redis.h and docs/DELIVERY.md).
 *
 * State: DISCONNECTED -> CONNECTING -> LOADING (SCRIPT LOAD sent) -> READY
 * -> CLOSING (after a transient error) -> DISCONNECTED, changed only in
 * sink_set_state. Queue discipline: `queue` holds events not yet sent,
 * `inflight` those sent and awaiting a reply, `returned` those to send
 * again. Events go out in batches: one EVALSHA carries up to
 * SINK_BATCH_MAX consecutive events of one lane, and its one reply settles
 * the whole batch, so `batches` (a FIFO of batch sizes) says how many
 * events at the head of `inflight` each reply stands for. Logical order is
 * always returned, inflight, queue, then the spool's unread records: an
 * event goes to memory only when the spool has nothing unread, and the
 * spool is read back into the tail of `queue`.
 *
 * When batches leave: sink_push only queues the event and arms `flush_ev`
 * once, as a timer of batch_wait_us (default 1 ms), so every event accepted
 * meanwhile shares one call (a full batch leaves at once); with
 * batch_wait_us=0 it is activated instead and runs after the other
 * callbacks of the current loop iteration. Answers to clients never wait
 * for it.
 *
 * Exactly once into the stream: each event carries its lane (the spool
 * group "<run id>-<worker>" of the sink that accepted it) and a sequence
 * number in that lane. The delivery script keeps the lane's high-water mark
 * in veil:{0}:lane:<lane>; for a batch of numbers first..last it skips those
 * at or below the mark (already added), adds the rest in order and sets the
 * mark to last, all in one atomic call. A batch also names `prev`, the last
 * number of that lane sent before it on this connection: if the mark is
 * below prev, an earlier batch was refused and this one is too (VEILGAP),
 * to be sent again in order after reconnecting. The first batch of a lane
 * on a connection has prev 0: everything older of that lane is
 * acknowledged or given up. Never blocks the loop on Redis; never holds an
 * IP or a User-Agent. */
#include "sink_redis.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <adapters/libevent.h>
#include <async.h>
#include <hiredis.h>

#include "log.h"
#include "spool.h"
#include "util.h"

/* The least memory a thread's buffer may use (max_buffered_bytes share). */
#define SINK_MIN_BUFFER_BYTES (256 * 1024)
#define SINK_MAX_INFLIGHT 4096      /* events sent and not yet answered */
#define SINK_BATCH_MAX 256          /* events per EVALSHA */
#define SINK_BATCH_BYTES (1 << 20)  /* payload bytes per EVALSHA (one event always fits) */
#define SINK_BATCH_HEAD 9           /* EVALSHA sha 2 stream mark prev first last ttl */
#define SINK_REFILL_BATCH 512       /* spool records moved into memory at a time */
#define SINK_BACKOFF_MIN_MS 50
#define SINK_BACKOFF_MAX_MS 2000
#define SINK_SYNC_MS 100            /* spool_fsync=batch */
#define SINK_ADOPT_MS 10000         /* look for files of processes that ended */
#define SINK_LANE_TTL "2592000"     /* 30 days: how long a lane's mark outlives its last event */
#define SINK_SPOOL_SHARE_MIN (64 * 1024)
#define PAYLOAD_VERSION 1

/* One batch of consecutive numbers first..last of one lane. KEYS[1]
 * stream, KEYS[2] lane mark; ARGV[1] prev (0: none), ARGV[2] first,
 * ARGV[3] last, ARGV[4] mark TTL, then per event its field count and
 * fields. Numbers at or below the mark are skipped (already added), the
 * others are added in order, then the mark is set to last. Returns the
 * number skipped, or {skipped, refused, first error} when XADD refused
 * some (given up, never retried); VEILGAP when the mark is below prev (an
 * earlier batch of the lane was refused: nothing is added). O(batch). The
 * shebang makes Redis refuse the whole call with -OOM up front instead of
 * failing inside it. */
static const char delivery_script[] =
    "#!lua\n"
    "local mark = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if mark < tonumber(ARGV[1]) then\n"
    "  return redis.error_reply('VEILGAP lane mark ' .. mark .. ' is behind ' .. ARGV[1])\n"
    "end\n"
    "if mark >= last then return last - first + 1 end\n"
    "local skipped, refused, why = 0, 0, nil\n"
    "if mark >= first then skipped = mark - first + 1 end\n"
    "local add, stream, i = redis.pcall, KEYS[1], 5\n"
    "for seq = first, last do\n"
    "  local n = tonumber(ARGV[i])\n"
    "  if seq > mark then\n"
    "    local r = add('XADD', stream, '*', unpack(ARGV, i + 1, i + n))\n"
    "    if type(r) == 'table' and r.err then refused, why = refused + 1, why or r.err end\n"
    "  end\n"
    "  i = i + 1 + n\n"
    "end\n"
    "redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
    "if refused > 0 then return {skipped, refused, why} end\n"
    "return skipped\n";

enum sink_state { SINK_DISCONNECTED, SINK_CONNECTING, SINK_LOADING, SINK_READY, SINK_CLOSING };

struct lane {
    struct lane *next;
    char id[SPOOL_GROUP_MAX];
    char key[sizeof SINK_LANE_PREFIX + SPOOL_GROUP_MAX];
    uint64_t last_seq;   /* own lane: the last number given out */
    uint64_t sent_gen;   /* connection on which sent_seq was sent */
    uint64_t sent_seq;   /* the last number sent on that connection */
};

/* One event. payload: [u8 version][u8 lane length][lane][u64 seq LE]
 * [u16 field count LE] then per field [u16 length LE][bytes]: the same
 * bytes in memory and in the spool. */
struct sink_cmd {
    struct sink_cmd *next;
    struct lane *lane;
    uint64_t seq;
    struct spool_seg *seg; /* read back from the spool, NULL if never there */
    size_t len;
    size_t nfields;        /* fields at payload + fields_at */
    size_t fields_at;
    uint8_t payload[];
};

struct cmd_list {
    struct sink_cmd *head, *tail;
    size_t n;
};

struct sink {
    struct event_base *base;
    char *redis;
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
    char sha[41];             /* the delivery script's SHA1, from SCRIPT LOAD */
    struct cmd_list queue;    /* not yet sent */
    struct cmd_list inflight; /* sent, awaiting reply */
    struct cmd_list returned; /* to send again */
    uint16_t batches[SINK_MAX_INFLIGHT]; /* events per sent call, oldest first (a ring) */
    size_t batch_head, nbatches;
    struct event *flush_ev;   /* active once per loop iteration while events wait */
    bool flush_pending;
    char *wire;               /* one call in the Redis protocol, reused */
    size_t wire_cap;
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

/* ---- payload ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

struct payload_view {
    const char *lane;
    size_t lane_len;
    uint64_t seq;
    size_t nfields;
    const uint8_t *fields; /* nfields x [u16 length][bytes] */
};

/* Check the layout of a payload (from memory or the spool). */
static bool payload_parse(const uint8_t *p, size_t len, struct payload_view *v)
{
    if (len < 2 || p[0] != PAYLOAD_VERSION || p[1] == 0 || p[1] >= SPOOL_GROUP_MAX ||
        len < 2 + (size_t)p[1] + 10)
        return false;
    v->lane = (const char *)p + 2;
    v->lane_len = p[1];
    const uint8_t *q = p + 2 + v->lane_len, *end = p + len;
    v->seq = get_le(q, 8);
    v->nfields = (size_t)get_le(q + 8, 2);
    v->fields = q + 10;
    if (v->seq == 0 || v->nfields % 2 || v->nfields > EVENT_MAX_ARGS)
        return false;
    for (size_t i = 0; i < v->lane_len; i++)
        if (v->lane[i] <= ' ' || v->lane[i] > '~')
            return false;
    q = v->fields;
    for (size_t i = 0; i < v->nfields; i++) {
        if (end - q < 2)
            return false;
        size_t flen = (size_t)get_le(q, 2);
        if ((size_t)(end - q - 2) < flen)
            return false;
        q += 2 + flen;
    }
    return q == end;
}

/* A command holding `ev` in `lane` under number `seq`, packed into the one
 * stream field EVENT_PACKED_FIELD; NULL when out of memory. */
static struct sink_cmd *cmd_new_event(struct lane *lane, uint64_t seq,
                                      const struct event_record *ev)
{
    static const char field[] = EVENT_PACKED_FIELD;
    char packed[EVENT_PACKED_MAX];
    size_t packed_len = event_pack(ev, packed, sizeof packed);
    size_t lane_len = strlen(lane->id);
    size_t fields_at = 2 + lane_len + 10;
    size_t len = fields_at + 2 + (sizeof field - 1) + 2 + packed_len;
    if (packed_len == 0 || packed_len > UINT16_MAX || len > SPOOL_RECORD_MAX)
        return NULL;
    struct sink_cmd *c = malloc(sizeof *c + len);
    if (!c)
        return NULL;
    c->lane = lane;
    c->seq = seq;
    c->seg = NULL;
    c->len = len;
    c->nfields = 2;
    c->fields_at = fields_at;
    uint8_t *p = c->payload;
    p[0] = PAYLOAD_VERSION;
    p[1] = (uint8_t)lane_len;
    memcpy(p + 2, lane->id, lane_len);
    p += 2 + lane_len;
    put_le(p, seq, 8);
    put_le(p + 8, 2, 2);
    p += 10;
    put_le(p, sizeof field - 1, 2);
    memcpy(p + 2, field, sizeof field - 1);
    p += 2 + sizeof field - 1;
    put_le(p, packed_len, 2);
    memcpy(p + 2, packed, packed_len);
    return c;
}

static struct lane *lane_get(struct sink *s, const char *id, size_t len)
{
    for (struct lane *l = s->lanes; l; l = l->next)
        if (strlen(l->id) == len && memcmp(l->id, id, len) == 0)
            return l;
    struct lane *l = xcalloc(1, sizeof *l);
    str_copy(l->id, sizeof l->id, id, len);
    str_format(l->key, sizeof l->key, "%s%s", SINK_LANE_PREFIX, l->id);
    l->next = s->lanes;
    s->lanes = l;
    return l;
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

/* Errors after which sending the same event again can succeed. */
static bool transient_error(const char *msg)
{
    static const char *const prefixes[] = {"OOM",     "LOADING",  "BUSY",        "MASTERDOWN",
                                           "READONLY", "NOSCRIPT", "VEILGAP",     "TRYAGAIN",
                                           "CLUSTERDOWN", "NOREPLICAS"};
    for (size_t i = 0; i < ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Length of the error code (first word) of a Redis error, for logs. */
static int error_code_len(const char *msg)
{
    return (int)strcspn(msg, " ");
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

/* Integer element i of an array reply, or 0. */
static long long reply_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                          : 0;
}

/* The reply to one batch: the events at the head of `inflight`. */
static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    size_t n = batch_pop(s);
    if (n == 0)
        return;
    if (!reply) {
        /* Connection lost before the reply: send the batch again (the lane
         * mark makes a second add impossible if the first one happened). */
        list_move(&s->inflight, &s->returned, n);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        metrics_inc(s->m, M_REDIS_ERRORS);
        if (transient_error(reply->str)) {
            list_move(&s->inflight, &s->returned, n);
            if (s->state == SINK_READY && s->ac == ac) {
                log_warn("redis answered %.*s; sending again from the oldest unacknowledged "
                         "event after backoff",
                         error_code_len(reply->str), reply->str);
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
    long long skipped = 0, refused = 0;
    if (reply->type == REDIS_REPLY_INTEGER) {
        skipped = reply->integer;
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        skipped = reply_int(reply, 0);
        refused = reply_int(reply, 1);
        const redisReply *why = reply->elements > 2 ? reply->element[2] : NULL;
        log_error("redis refused %lld of %zu events (not retried): %.120s", refused, n,
                  why && why->str ? why->str : "no reason given");
    } else {
        log_error("unexpected reply type %d to the delivery script", reply->type);
    }
    skipped = skipped < 0 ? 0 : skipped > (long long)n ? (long long)n : skipped;
    refused = refused < 0 ? 0 : refused > (long long)n - skipped ? (long long)n - skipped : refused;
    count(s, M_REDIS_WRITTEN, n - (size_t)skipped - (size_t)refused);
    count(s, M_REDIS_DUPLICATES, (uint64_t)skipped);
    count(s, M_REDIS_ERRORS, (uint64_t)refused);
    settle(s, n);
    if (s->state == SINK_READY && (s->queue.head || (s->spool && spool_unread(s->spool))))
        schedule_flush(s); /* the window has room again */
}

/* ---- the wire form of one batch (RESP, written here rather than by
 * hiredis: one pass over the payloads, no per-argument formatting) ---- */

#define WIRE_ROOM 16 /* in front of the arguments, for "*<argc>\r\n" */

static char *put_bulk(char *p, const void *data, size_t len)
{
    *p++ = '$';
    p = uint_to_dec(p, len);
    memcpy(p, "\r\n", 2);
    memcpy(p + 2, data, len);
    memcpy(p + 2 + len, "\r\n", 2);
    return p + 4 + len;
}

static char *put_bulk_uint(char *p, uint64_t v)
{
    char digits[20];
    return put_bulk(p, digits, (size_t)(uint_to_dec(digits, v) - digits));
}

/* Room for `more` bytes after `used` bytes of the wire buffer. */
static void wire_reserve(struct sink *s, size_t used, size_t more)
{
    if (used + more <= s->wire_cap)
        return;
    while (s->wire_cap < used + more)
        s->wire_cap = s->wire_cap ? s->wire_cap * 2 : 64 * 1024;
    s->wire = xrealloc(s->wire, s->wire_cap);
}

/* Send the longest run at the head of `queue` that can share one call: the
 * same lane, consecutive numbers, within the batch limits. Returns 0, or -1
 * when the context is going away. */
static int send_batch(struct sink *s)
{
    struct sink_cmd *head = s->queue.head, *c = head;
    struct lane *lane = head->lane;
    size_t n = 0, argc = SINK_BATCH_HEAD, bytes = 0, wire_max = 0;
    uint64_t last = head->seq;
    for (; c && n < SINK_BATCH_MAX; c = c->next, n++) {
        if (n > 0 && (c->lane != lane || c->seq != last + 1 || bytes + c->len > SINK_BATCH_BYTES))
            break;
        argc += 1 + c->nfields;
        bytes += c->len;
        wire_max += c->len + 12 * (c->nfields + 1);
        last = c->seq;
    }
    /* prev: what the mark must have reached for this batch to be next */
    uint64_t prev =
        lane->sent_gen == s->conn_gen && lane->sent_seq < head->seq ? lane->sent_seq : 0;
    size_t key_len = strlen(lane->key);
    wire_reserve(s, 0, WIRE_ROOM + 256 + key_len + wire_max);
    char *p = s->wire + WIRE_ROOM;
    p = put_bulk(p, "EVALSHA", 7);
    p = put_bulk(p, s->sha, 40);
    p = put_bulk(p, "2", 1);
    p = put_bulk(p, SINK_STREAM_KEY, sizeof SINK_STREAM_KEY - 1);
    p = put_bulk(p, lane->key, key_len);
    p = put_bulk_uint(p, prev);
    p = put_bulk_uint(p, head->seq);
    p = put_bulk_uint(p, last);
    p = put_bulk(p, SINK_LANE_TTL, sizeof SINK_LANE_TTL - 1);
    c = head;
    for (size_t k = 0; k < n; k++, c = c->next) {
        p = put_bulk_uint(p, c->nfields);
        const uint8_t *q = c->payload + c->fields_at;
        for (size_t i = 0; i < c->nfields; i++) {
            size_t flen = (size_t)get_le(q, 2);
            p = put_bulk(p, q + 2, flen);
            q += 2 + flen;
        }
    }
    char count[WIRE_ROOM];
    count[0] = '*';
    char *h = uint_to_dec(count + 1, argc);
    memcpy(h, "\r\n", 2);
    size_t count_len = (size_t)(h + 2 - count);
    char *start = s->wire + WIRE_ROOM - count_len;
    memcpy(start, count, count_len);
    if (redisAsyncFormattedCommand(s->ac, reply_cb, s, start, (size_t)(p - start)) != REDIS_OK)
        return -1;
    lane->sent_gen = s->conn_gen;
    lane->sent_seq = last;
    list_move(&s->queue, &s->inflight, n);
    s->batches[(s->batch_head + s->nbatches) % SINK_MAX_INFLIGHT] = (uint16_t)n;
    s->nbatches++;
    return 0;
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
        struct payload_view v;
        if (!payload_parse(payload, len, &v)) {
            log_warn("spool: a record with a good checksum has an unknown layout; skipped");
            metrics_inc(s->m, M_SPOOL_CORRUPT);
            spool_release(s->spool, seg);
            continue;
        }
        struct sink_cmd *c = xmalloc(sizeof *c + len);
        c->lane = lane_get(s, v.lane, v.lane_len);
        c->seq = v.seq;
        c->seg = seg;
        c->len = len;
        c->nfields = v.nfields;
        c->fields_at = (size_t)(v.fields - payload);
        memcpy(c->payload, payload, len);
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
        if (!s->queue.head || send_batch(s) != 0)
            break; /* nothing to send, or the context is going away */
        calls++;
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
    if (transient_error(msg))
        log_warn("redis is not ready (%.*s); retrying", error_code_len(msg), msg);
    else
        log_error("redis refused the delivery script (%.160s); Redis 7.0 or later is required",
                  msg);
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
    if (redisAsyncCommand(s->ac, load_cb, s, "SCRIPT LOAD %s", delivery_script) != REDIS_OK) {
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
    redisAsyncContext *ac;
    if (strncmp(s->redis, "unix:", 5) == 0) {
        ac = redisAsyncConnectUnix(s->redis + 5);
    } else {
        char host[300];
        int port = 0;
        hostport_split(s->redis, host, sizeof host, &port);
        ac = redisAsyncConnect(host, port);
    }
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
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
    struct sink_cmd *c = cmd_new_event(s->own, s->own->last_seq + 1, ev);
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
        free(s->lanes);
        s->lanes = next;
    }
    event_free(s->retry);
    event_free(s->flush_ev);
    free(s->wire);
    free(s->redis);
    free(s);
}
