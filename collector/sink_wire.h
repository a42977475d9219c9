/* sink_wire.h - what the sink sends to Redis and keeps in memory and in
 * the spool (docs/DELIVERY.md): the record of one accepted event (its
 * payload), the delivery script, and the Redis-protocol form of one
 * delivery call (one shard, one lane, many events in one stream entry).
 *
 * No I/O here (wire_connect only starts a connection): building and
 * checking bytes. A payload holds the
 * derived event (event_pack), its lane and its number: never an IP or a
 * User-Agent. */
#ifndef VEIL_SINK_WIRE_H
#define VEIL_SINK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <async.h>
#include <hiredis.h>

#include "event.h"
#include "spool.h"

/* A payload: [u8 version 2][u8 flags][u8 lane length][lane][u64 seq LE]
 * [the event_pack bytes]. Version 1 (written by earlier versions, read
 * from old spools): [u8 1][u8 lane length][lane][u64 seq LE][u16 field
 * count LE] then per field [u16 length LE][bytes], the stream fields of
 * one event (the packed field "e" or one field per event field). */
#define PAYLOAD_VERSION 2
#define PAYLOAD_VERSION_1 1
/* flags: the lane was numbered by version 1, whose mark for the whole
 * lane was veil:{0}:lane:<lane>; delivery honours that mark too. */
#define PAYLOAD_LEGACY 0x01

#define SINK_LANE_PREFIX_TAIL "lane:"       /* veil:{s}:lane:<lane> */
#define SINK_LEGACY_LANE_PREFIX "veil:{0}:lane:" /* version 1's mark, read only */
#define SINK_LEGACY_MARK_SUFFIX ":v1" /* veil:{s}:lane:<lane>:v1: such a lane's new marks */
#define SINK_STREAM_TAIL "events"           /* veil:{s}:events */
#define SINK_LANE_TTL "2592000" /* 30 days: how long a lane's mark outlives its last event */

/* A payload read back: pointers into it. */
struct payload_view {
    const char *lane;
    size_t lane_len;
    uint64_t seq;
    unsigned flags;
    const char *packed; /* the event_pack bytes (version 2 only) */
    size_t packed_len;
    int version;
};

/* Check a payload's layout (from memory or the spool), version 1 or 2.
 * For version 1 the event's fields are checked but not converted:
 * use payload_upgrade. */
bool payload_parse(const uint8_t *p, size_t len, struct payload_view *v);

/* Write the version 2 payload of one event into buf (cap bytes): its
 * length is 3 + lane_len + 8 + packed_len, the packed bytes last. Returns
 * that length, or 0 when it does not fit. */
size_t payload_build(uint8_t *buf, size_t cap, const char *lane, size_t lane_len, uint64_t seq,
                     unsigned flags, const char *packed, size_t packed_len);

/* The version 2 form of a version 1 payload (same lane and number, flag
 * PAYLOAD_LEGACY): its fields decoded (into a per-thread record) and
 * packed again. Returns the new length in buf, or 0 when the event does
 * not decode (with a reason in err). */
size_t payload_upgrade(const uint8_t *p, size_t len, uint8_t *buf, size_t cap, char *err,
                       size_t errlen);

/* The site id inside packed event bytes (a pointer into them), or false
 * when there is none. */
bool packed_site(const char *pk, size_t plen, const char **site, size_t *site_len);

/* The delivery script (docs/DELIVERY.md "Exactly once"). */
extern const char sink_delivery_script[];

/* One delivery call being written: EVALSHA of the script for the events
 * numbered seq[0] < seq[1] < ... of one lane and one shard. Use:
 * wire_call_begin, wire_call_add per event, wire_call_end. The buffer is
 * the caller's and grows with xrealloc. */
struct wire_call {
    char *buf;          /* the caller's buffer, reused between calls */
    size_t cap;
    size_t batch_at;    /* where the batch value's bytes start */
    size_t batch_len;   /* its length so far, version byte included */
    size_t gaps_len;    /* bytes of the gap list so far */
    char *gaps;         /* "d d d": differences between numbers */
    size_t gaps_cap;
    uint64_t first, last;
    size_t n;
};

/* Start a call; `batch_bytes` is the expected sum of the packed events'
 * sizes (room is reserved once; more grows the buffer). */
void wire_call_begin(struct wire_call *w, size_t batch_bytes);
/* Add one event numbered `seq` (greater than the previous one);
 * packed_len is below 2^21 (any event_pack output). */
void wire_call_add(struct wire_call *w, uint64_t seq, const char *packed, size_t packed_len);
/* Finish the call: the RESP command for EVALSHA `sha` with the keys of
 * `shard` and `lane` (and the legacy lane mark when `legacy`), `prev` as
 * in docs/DELIVERY.md. Returns a pointer into the buffer and sets *len. */
const char *wire_call_end(struct wire_call *w, const char *sha, unsigned shard, const char *lane,
                          bool legacy, uint64_t prev, size_t *len);
void wire_call_free(struct wire_call *w);

/* Errors after which sending the same call again can succeed (OOM,
 * LOADING, READONLY, VEILGAP, ...): Redis is treated as down. */
bool wire_error_transient(const char *msg);
/* Length of the error code (first word) of a Redis error, for logs. */
int wire_error_code_len(const char *msg);

/* What a non-error reply to one delivery call of n events says. */
struct wire_outcome {
    size_t written;   /* events added to the stream */
    size_t cut;       /* events the lane had delivered already (duplicates not added) */
    size_t refused;   /* events XADD refused (given up, never retried) */
    const char *why;  /* XADD's reason then (points into the reply), or NULL */
    bool unexpected;  /* a reply the script never gives: counted as written */
};
void wire_reply_outcome(const redisReply *r, size_t n, struct wire_outcome *o);

/* Start connecting to `addr` (the redis directive: host:port or
 * unix:/path) without blocking; NULL when that fails at once. */
redisAsyncContext *wire_connect(const char *addr);

#endif
