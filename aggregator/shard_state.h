/* shard_state.h - what the owner of one shard keeps in memory between
 * batches (docs/AGGREGATOR.md "State in memory"): the shard's key names,
 * its lease epoch, the open visits of its sites, and which breakdown rows
 * exist in the site-days it touched, so that a batch is planned without
 * reading Redis per event.
 *
 * The open visits are checkpointed in Redis (the hash veil:{s}:sessions,
 * one field per visit, encoded by shard_session_encode) by every commit and
 * reloaded at takeover; rows are read back lazily (HKEYS, once per
 * breakdown and ownership). This module is pure C: no Redis, no clock. It
 * never holds event content other than visit timestamps, day and visitor
 * hashes, and never logs. */
#ifndef VEIL_SHARD_STATE_H
#define VEIL_SHARD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard.h"
#include "strmap.h"
#include "visit_rows.h"

/* Until a shard's entries were seen, reads assume this many events per
 * entry (a collector's batch can hold this many), so a first read never
 * brings batch_size entries of batch_size events each. */
#define SHARD_FIRST_EVENTS_PER_ENTRY 256.0

/* One open visit of one visitor on one site. */
struct shard_session {
    const char *field;   /* "<site>:<visitor>", the checkpoint field */
    long long pv;        /* page views so far */
    long long start, last; /* event ts of its first and last event */
    long long exp;       /* expiry of the keys of the day it started */
    char day[11];        /* the day it started: its counts go there */
    uint64_t page;       /* hash of its latest page view's path (visit_page_hash), 0 none */
    int scroll;          /* that page view's largest counted scroll depth, -1 none */
    int hour;            /* the local hour it started in, 0..23 */
    long long exit_ts;   /* ts of its latest page view (its exit page's) */
    const char *rows;    /* its breakdown rows (visit_rows.h: "<len>:<row>" per visit
                            dimension), NULL = unknown (a visit of an older checkpoint) */
    size_t rows_len;
    const char *exit;    /* its exit page row (NUL-terminated), NULL = unknown */
    size_t exit_len;
};

/* One breakdown's primary hash (b:<dim>:ev, b:entry_page:vis). */
struct shard_rows {
    const char *key;
    long long rows;      /* rows other than "(other)" */
    bool used;           /* touched since the last sweep */
};

struct shard_state {
    unsigned shard;
    char prefix[SHARD_PREFIX_MAX]; /* "veil:{s}:" */
    char stream_key[40], epoch_key[40], lease_key[40], sessions_key[40], sites_key[40];
    bool owned;
    long long epoch;               /* fencing token of our lease */
    uint64_t renew_due_ms;
    char last_id[48];              /* the last stream id read ("0-0": from the start) */
    double events_per_entry;       /* of the last batch: sizes the next read */
    bool backlog;                  /* the last read came back full: more waits */
    int64_t watermark;             /* highest event ts counted (stream time) */
    uint64_t next_sweep_ms;

    struct arena_chunk *session_arena;
    struct smap session_map;       /* field -> index */
    struct smap visit_rows_map;    /* a visit's rows and exit rows, shared by the visits that
                                      have the same ones (in session_arena) */
    struct shard_session *sessions;
    size_t nsessions, sessions_cap;

    struct arena_chunk *row_arena;
    struct smap pk_map;            /* primary key -> index into pks */
    struct shard_rows *pks;
    size_t npks, pks_cap;
    struct smap row_map;           /* "<4-byte pk index><value>" -> 0 */
    struct smap expiry_map;        /* keys whose EXPIREAT is set */

    /* Which per-visitor HyperLogLogs (a visitor's day visitors, its geo and
     * UA rows: schema.h SCHEMA_U_PER_VISITOR) already hold a visitor: a
     * PFADD that would change nothing is not sent again. Key
     * "<day>:<site>:<visitor>", value an index into seen_masks; at most
     * SHARD_SEEN_MAX entries, forgotten at sweeps once their day is over.
     * Memory only: after a takeover they are added once more (harmless). */
    struct arena_chunk *seen_arena;
    struct smap seen_map;
    uint32_t *seen_masks;
    size_t nseen, seen_cap;
};

#define SHARD_SEEN_MAX (1u << 20)
#define SHARD_SEEN_DAY_BIT 31u /* the day's visitors HyperLogLog */

/* Initialise `st` for shard `shard`: key names, nothing owned or loaded.
 * Aborts on OOM (none here). */
void shard_state_init(struct shard_state *st, unsigned shard);

/* Forget every session, row and expiry (after losing the lease, or when
 * what Redis holds is unknown); keeps the key names. */
void shard_state_clear(struct shard_state *st);
void shard_state_free(struct shard_state *st);

/* The session of checkpoint field `field` (len bytes), or NULL. */
const struct shard_session *shard_session_find(const struct shard_state *st, const char *field,
                                               size_t len);
/* Insert or replace the session of s->field (copied). */
void shard_session_put(struct shard_state *st, const struct shard_session *s);
/* Keep only the sessions for which keep(arg, s) is true (rebuilds the map). */
void shard_session_filter(struct shard_state *st,
                          bool (*keep)(void *arg, const struct shard_session *s), void *arg);

/* Checkpoint value of a session: "<pv> <start> <last> <exp> <day> <page>
 * <scroll> <hour>", then, when its rows are known, " <exit_ts> " and its
 * rows and exit row as visit_rows.h items ("<len>:<bytes>" each, no
 * separator). Values written by versions without the tail (or without
 * page, scroll and hour) still decode: rows unknown (page 0, no scroll,
 * hour 0). Returns its length, or 0 when cap is below
 * SHARD_SESSION_VALUE_MAX or the rows do not fit. */
#define SHARD_SESSION_VALUE_MAX (4 * 22 + 10 + 1 + 21 + 5 + 3 + 23 + VISIT_ROWS_CHECKPOINT_MAX)
size_t shard_session_encode(const struct shard_session *s, char *buf, size_t cap);
/* Parse a checkpoint value into *s (s->field untouched). False when it is
 * not one (a damaged entry is dropped: that visit restarts). */
bool shard_session_decode(const char *value, size_t len, struct shard_session *s);

/* The rows of primary hash `key`, or NULL when not loaded yet. */
struct shard_rows *shard_rows_find(struct shard_state *st, const char *key);
/* Register primary hash `key` as loaded with no rows yet. */
struct shard_rows *shard_rows_add(struct shard_state *st, const char *key);
/* Whether `value` is a row of `pk` (as returned by find/add). */
bool shard_row_exists(const struct shard_state *st, const struct shard_rows *pk,
                      const char *value);
/* Record `value` as a row of pk (not counting it: the caller sets rows). */
void shard_row_add(struct shard_state *st, const struct shard_rows *pk, const char *value);
/* Forget the breakdowns not used since the last call (they are read again
 * when touched), and every recorded expiry; marks the rest unused. */
void shard_rows_sweep(struct shard_state *st);

/* The seen mask of `key` ("<day>:<site>:<visitor>", len bytes): 0 when
 * none. shard_seen_add ORs bits into it (ignored past SHARD_SEEN_MAX). */
uint32_t shard_seen_get(const struct shard_state *st, const char *key, size_t len);
void shard_seen_add(struct shard_state *st, const char *key, size_t len, uint32_t bits);
/* Forget the seen masks of days before `day` (YYYY-MM-DD). */
void shard_seen_sweep(struct shard_state *st, const char *day);

/* Whether the expiry of `key` was set during this ownership; mark it. */
bool shard_expiry_set(const struct shard_state *st, const char *key, size_t len);
void shard_expiry_mark(struct shard_state *st, const char *key, size_t len);

#endif
