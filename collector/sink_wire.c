/* sink_wire.c - payloads, the delivery script and the wire form of one
 * delivery call (see sink_wire.h and docs/DELIVERY.md).
 *
 * The call is written in the Redis protocol here rather than by hiredis:
 * one pass over the events, no per-argument formatting, and the events'
 * packed bytes are copied once, straight into the batch value that
 * becomes the stream entry's field "b". Never does I/O; never sees an IP
 * or a User-Agent (only event_pack bytes). */
#include "sink_wire.h"

#include <stdlib.h>
#include <string.h>

#include <async.h>

#include "shard.h"
#include "util.h"

/* KEYS[1] the shard's stream, KEYS[2] the lane's mark in that shard
 * (veil:{s}:lane:<lane>, or veil:{s}:lane:<lane>:v1 for a lane numbered by
 * version 1), KEYS[3] (only for those) the old mark of the whole lane,
 * veil:{0}:lane:<lane>, which is only read: raising it with shard 0's
 * progress would cut other shards' events. ARGV[1] prev (0: none), ARGV[2] the first number, ARGV[3] the
 * last, ARGV[4] the mark's TTL, ARGV[5] the batch value (EVENT_BATCH_*),
 * ARGV[6] the differences between consecutive numbers, space-separated
 * ("" when they are all 1).
 *
 * VEILGAP (nothing added) when the mark is below prev: an earlier call of
 * this lane and shard was refused. Otherwise the events numbered at or
 * below the mark are cut from the front of the batch (already added),
 * the rest is added as ONE stream entry, the mark becomes the last number;
 * the reply is the number of events cut, -1 when all were, or {cut, error}
 * when XADD refused the entry (given up, never retried). Reading the
 * batch happens only on the rare path where some were cut: O(1) Redis
 * work per call otherwise. "#!lua" makes Redis refuse the whole call with
 * -OOM up front, never halfway. */
const char sink_delivery_script[] =
    "#!lua\n"
    "local mark = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "if KEYS[3] then\n"
    "  local old = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "  if old > mark then mark = old end\n"
    "end\n"
    "local first, last = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if mark < tonumber(ARGV[1]) then\n"
    "  return redis.error_reply('VEILGAP lane mark ' .. mark .. ' is behind ' .. ARGV[1])\n"
    "end\n"
    "if mark >= last then return -1 end\n"
    "local b, cut = ARGV[5], 0\n"
    "if mark >= first then\n"
    "  local gaps, seq, p = string.gmatch(ARGV[6], '%d+'), first, 2\n"
    "  while seq <= mark do\n"
    "    local len, mul, c = 0, 1, 0\n"
    "    repeat\n"
    "      c = string.byte(b, p)\n"
    "      p, len, mul = p + 1, len + (c % 128) * mul, mul * 128\n"
    "    until c < 128\n"
    "    p, cut = p + len, cut + 1\n"
    "    seq = seq + tonumber(gaps() or '1')\n"
    "  end\n"
    "  b = string.sub(b, 1, 1) .. string.sub(b, p)\n"
    "end\n"
    "local r = redis.pcall('XADD', KEYS[1], '*', '" EVENT_BATCH_FIELD "', b)\n"
    "redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
    "if type(r) == 'table' and r.err then return {cut, r.err} end\n"
    "return cut\n";

/* ---- payloads ---- */

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

static bool lane_ok(const char *lane, size_t len)
{
    if (len == 0 || len >= SPOOL_GROUP_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lane[i] <= ' ' || lane[i] > '~')
            return false;
    return true;
}

/* Version 1: after the header, nfields x [u16 length][bytes] exactly. */
static bool fields_v1_ok(const uint8_t *q, const uint8_t *end, size_t nfields)
{
    if (nfields % 2 || nfields > EVENT_MAX_ARGS)
        return false;
    for (size_t i = 0; i < nfields; i++) {
        if (end - q < 2)
            return false;
        size_t flen = (size_t)get_le(q, 2);
        if ((size_t)(end - q - 2) < flen)
            return false;
        q += 2 + flen;
    }
    return q == end;
}

bool payload_parse(const uint8_t *p, size_t len, struct payload_view *v)
{
    memset(v, 0, sizeof *v);
    if (len < 2)
        return false;
    if (p[0] == PAYLOAD_VERSION_1) {
        if (len < 2 + (size_t)p[1] + 10 || !lane_ok((const char *)p + 2, p[1]))
            return false;
        v->version = 1;
        v->lane = (const char *)p + 2;
        v->lane_len = p[1];
        v->flags = PAYLOAD_LEGACY;
        const uint8_t *q = p + 2 + v->lane_len;
        v->seq = get_le(q, 8);
        return v->seq != 0 && fields_v1_ok(q + 10, p + len, (size_t)get_le(q + 8, 2));
    }
    if (p[0] != PAYLOAD_VERSION || len < 3 || len < 3 + (size_t)p[2] + 8 + 2 ||
        !lane_ok((const char *)p + 3, p[2]))
        return false;
    v->version = 2;
    v->flags = p[1];
    v->lane = (const char *)p + 3;
    v->lane_len = p[2];
    const uint8_t *q = p + 3 + v->lane_len;
    v->seq = get_le(q, 8);
    v->packed = (const char *)q + 8;
    v->packed_len = len - (size_t)(q + 8 - p);
    return v->seq != 0 && v->packed[0] == EVENT_PACKED_VERSION && (v->flags & ~PAYLOAD_LEGACY) == 0;
}

size_t payload_build(uint8_t *buf, size_t cap, const char *lane, size_t lane_len, uint64_t seq,
                     unsigned flags, const char *packed, size_t packed_len)
{
    size_t len = 3 + lane_len + 8 + packed_len;
    if (len > cap || lane_len >= SPOOL_GROUP_MAX || packed_len == 0)
        return 0;
    buf[0] = PAYLOAD_VERSION;
    buf[1] = (uint8_t)flags;
    buf[2] = (uint8_t)lane_len;
    memcpy(buf + 3, lane, lane_len);
    put_le(buf + 3 + lane_len, seq, 8);
    memcpy(buf + 3 + lane_len + 8, packed, packed_len);
    return len;
}

size_t payload_upgrade(const uint8_t *p, size_t len, uint8_t *buf, size_t cap, char *err,
                       size_t errlen)
{
    static _Thread_local struct event_record record;
    struct event_record *scratch = &record;
    struct payload_view v;
    if (!payload_parse(p, len, &v) || v.version != 1) {
        str_format(err, errlen, "not a version 1 payload");
        return 0;
    }
    const uint8_t *q = p + 2 + v.lane_len + 8;
    size_t nfields = (size_t)get_le(q, 2);
    q += 2;
    event_record_reset(scratch);
    for (size_t i = 0; i < nfields; i += 2) {
        size_t flen = (size_t)get_le(q, 2);
        const char *field = (const char *)q + 2;
        q += 2 + flen;
        size_t vlen = (size_t)get_le(q, 2);
        const char *value = (const char *)q + 2;
        q += 2 + vlen;
        if (!event_decode_field(scratch, field, flen, value, vlen, err, errlen))
            return 0;
    }
    if (!event_decode_check(scratch, err, errlen))
        return 0;
    static _Thread_local char packed[EVENT_PACKED_MAX];
    size_t plen = event_pack(scratch, packed, sizeof packed);
    size_t out = plen ? payload_build(buf, cap, v.lane, v.lane_len, v.seq, PAYLOAD_LEGACY, packed,
                                      plen)
                      : 0;
    if (!out)
        str_format(err, errlen, "the event does not fit a payload");
    return out;
}

bool packed_site(const char *pk, size_t plen, const char **site, size_t *site_len)
{
    const unsigned char *p = (const unsigned char *)pk + 1, *end = (const unsigned char *)pk + plen;
    if (plen < 1 || pk[0] != EVENT_PACKED_VERSION)
        return false;
    while (p < end) {
        size_t nlen = *p++;
        if ((size_t)(end - p) < nlen)
            return false;
        const unsigned char *name = p;
        p += nlen;
        size_t vlen = 0;
        for (int shift = 0; shift <= 14; shift += 7) {
            if (p == end)
                return false;
            unsigned c = *p++;
            vlen |= (size_t)(c & 0x7f) << shift;
            if (!(c & 0x80))
                break;
        }
        if ((size_t)(end - p) < vlen)
            return false;
        if (nlen == 4 && memcmp(name, "site", 4) == 0) {
            *site = (const char *)p;
            *site_len = vlen;
            return true;
        }
        p += vlen;
    }
    return false;
}

/* ---- one delivery call in the Redis protocol ---- */

#define HEAD_ROOM 512 /* in front of the batch: "*N", EVALSHA, sha, keys, numbers, "$len" */

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

void wire_call_begin(struct wire_call *w, size_t batch_bytes)
{
    /* per event at most 3 length bytes; the gap list and tail go after */
    size_t need = HEAD_ROOM + 1 + batch_bytes + 64;
    if (w->cap < need) {
        while (w->cap < need)
            w->cap = w->cap ? w->cap * 2 : 64 * 1024;
        w->buf = xrealloc(w->buf, w->cap);
    }
    w->batch_at = HEAD_ROOM;
    w->buf[w->batch_at] = EVENT_BATCH_VERSION;
    w->batch_len = 1;
    w->gaps_len = 0;
    w->first = w->last = 0;
    w->n = 0;
}

void wire_call_add(struct wire_call *w, uint64_t seq, const char *packed, size_t packed_len)
{
    if (w->n > 0 && (seq - w->last != 1 || w->last - w->first + 1 != w->n)) {
        /* the first gap other than 1 writes the 1s before it (consecutive
         * numbers, the common case, write no list at all) */
        size_t ones = w->gaps_len == 0 ? w->n - 1 : 0;
        if (w->gaps_cap < w->gaps_len + 2 * ones + 22) {
            while (w->gaps_cap < w->gaps_len + 2 * ones + 22)
                w->gaps_cap = w->gaps_cap ? w->gaps_cap * 2 : 4096;
            w->gaps = xrealloc(w->gaps, w->gaps_cap);
        }
        for (size_t i = 0; i < ones; i++) {
            memcpy(w->gaps + w->gaps_len, "1 ", 2);
            w->gaps_len += 2;
        }
        if (w->gaps_len && w->gaps[w->gaps_len - 1] != ' ')
            w->gaps[w->gaps_len++] = ' ';
        w->gaps_len = (size_t)(uint_to_dec(w->gaps + w->gaps_len, seq - w->last) - w->gaps);
    } else if (w->n == 0) {
        w->first = seq;
    }
    w->last = seq;
    w->n++;
    size_t need = w->batch_at + w->batch_len + 3 + packed_len + 64;
    if (w->cap < need) {
        while (w->cap < need)
            w->cap *= 2;
        w->buf = xrealloc(w->buf, w->cap);
    }
    w->batch_len = event_batch_append(w->buf + w->batch_at, w->cap - w->batch_at, w->batch_len,
                                      packed, packed_len);
}

/* Whether the gap list says nothing (every difference is 1). */
static bool gaps_all_one(const struct wire_call *w)
{
    return w->last - w->first + 1 == w->n;
}

const char *wire_call_end(struct wire_call *w, const char *sha, unsigned shard, const char *lane,
                          bool legacy, uint64_t prev, size_t *len)
{
    char prefix[SHARD_PREFIX_MAX];
    size_t plen = shard_key_prefix(prefix, sizeof prefix, shard);
    size_t lane_len = strlen(lane);
    char key[SHARD_PREFIX_MAX + sizeof SINK_LANE_PREFIX_TAIL + SPOOL_GROUP_MAX +
             sizeof SINK_LEGACY_MARK_SUFFIX];
    char head[HEAD_ROOM];
    char *p = head;
    *p++ = '*';
    p = uint_to_dec(p, legacy ? 12 : 11);
    memcpy(p, "\r\n", 2);
    p += 2;
    p = put_bulk(p, "EVALSHA", 7);
    p = put_bulk(p, sha, 40);
    p = put_bulk(p, legacy ? "3" : "2", 1);
    memcpy(key, prefix, plen);
    memcpy(key + plen, SINK_STREAM_TAIL, sizeof SINK_STREAM_TAIL - 1);
    p = put_bulk(p, key, plen + sizeof SINK_STREAM_TAIL - 1);
    memcpy(key + plen, SINK_LANE_PREFIX_TAIL, sizeof SINK_LANE_PREFIX_TAIL - 1);
    memcpy(key + plen + sizeof SINK_LANE_PREFIX_TAIL - 1, lane, lane_len);
    size_t key_len = plen + sizeof SINK_LANE_PREFIX_TAIL - 1 + lane_len;
    if (legacy) { /* never the old mark itself, which shard 0's key would be */
        memcpy(key + key_len, SINK_LEGACY_MARK_SUFFIX, sizeof SINK_LEGACY_MARK_SUFFIX - 1);
        key_len += sizeof SINK_LEGACY_MARK_SUFFIX - 1;
    }
    p = put_bulk(p, key, key_len);
    if (legacy) {
        memcpy(key, SINK_LEGACY_LANE_PREFIX, sizeof SINK_LEGACY_LANE_PREFIX - 1);
        memcpy(key + sizeof SINK_LEGACY_LANE_PREFIX - 1, lane, lane_len);
        p = put_bulk(p, key, sizeof SINK_LEGACY_LANE_PREFIX - 1 + lane_len);
    }
    p = put_bulk_uint(p, prev);
    p = put_bulk_uint(p, w->first);
    p = put_bulk_uint(p, w->last);
    p = put_bulk(p, SINK_LANE_TTL, sizeof SINK_LANE_TTL - 1);
    *p++ = '$';
    p = uint_to_dec(p, w->batch_len);
    memcpy(p, "\r\n", 2);
    p += 2;
    size_t head_len = (size_t)(p - head);
    char *start = w->buf + w->batch_at - head_len;
    memcpy(start, head, head_len);
    /* the tail: CRLF after the batch, then the gap list */
    size_t gaps_len = gaps_all_one(w) ? 0 : w->gaps_len;
    size_t end_at = w->batch_at + w->batch_len;
    size_t need = end_at + 2 + 16 + gaps_len + 2;
    if (w->cap < need) {
        size_t off = (size_t)(start - w->buf);
        while (w->cap < need)
            w->cap *= 2;
        w->buf = xrealloc(w->buf, w->cap);
        start = w->buf + off;
    }
    char *t = w->buf + end_at;
    memcpy(t, "\r\n", 2);
    t = put_bulk(t + 2, gaps_len ? w->gaps : "", gaps_len);
    *len = (size_t)(t - start);
    return start;
}

void wire_call_free(struct wire_call *w)
{
    free(w->buf);
    free(w->gaps);
    memset(w, 0, sizeof *w);
}

/* ---- replies ---- */

bool wire_error_transient(const char *msg)
{
    static const char *const prefixes[] = {"OOM",     "LOADING",  "BUSY",        "MASTERDOWN",
                                           "READONLY", "NOSCRIPT", "VEILGAP",     "TRYAGAIN",
                                           "CLUSTERDOWN", "NOREPLICAS"};
    for (size_t i = 0; i < ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

int wire_error_code_len(const char *msg)
{
    return (int)strcspn(msg, " ");
}

void wire_reply_outcome(const redisReply *r, size_t n, struct wire_outcome *o)
{
    memset(o, 0, sizeof *o);
    long long cut = 0;
    size_t refused = 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        cut = r->integer < 0 ? (long long)n : r->integer;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
               r->element[0]->type == REDIS_REPLY_INTEGER) {
        cut = r->element[0]->integer;
        refused = n;
        if (r->elements > 1 && r->element[1]->str)
            o->why = r->element[1]->str;
    } else {
        o->unexpected = true;
    }
    o->cut = cut < 0 ? 0 : cut > (long long)n ? n : (size_t)cut;
    o->refused = refused > o->cut ? refused - o->cut : 0;
    o->written = n - o->cut - o->refused;
}

redisAsyncContext *wire_connect(const char *addr)
{
    redisAsyncContext *ac;
    if (strncmp(addr, "unix:", 5) == 0) {
        ac = redisAsyncConnectUnix(addr + 5);
    } else {
        char host[300];
        int port = 0;
        hostport_split(addr, host, sizeof host, &port);
        ac = redisAsyncConnect(host, port);
    }
    if (ac && ac->err) {
        redisAsyncFree(ac);
        ac = NULL;
    }
    return ac;
}
