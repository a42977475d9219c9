/* query.h - reads the daily counts of docs/KEYS.md back out of Redis for
 * one site and a range of days: totals summed over days, breakdown rows
 * merged over days, and visitors as HyperLogLog unions (PFCOUNT over the
 * day keys), never as a sum of daily uniques.
 *
 * Synchronous hiredis, for the stats API's own thread. It only reads,
 * except for a query-scoped temporary key (PFMERGE) when a union spans
 * more keys than one PFCOUNT should carry; that key is deleted at once and
 * expires within a minute anyway. It never writes counts. */
#ifndef VEIL_QUERY_H
#define VEIL_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "shard.h"

#include "period.h"

#define QUERY_OTHER "(other)"

/* Counters of the `totals` hash (plus visitors from the day HLLs). */
enum query_counter {
    QC_PAGEVIEWS = 0,
    QC_EVENTS,
    QC_VISITS,
    QC_BOUNCES,
    QC_VISIT_DURATION_S,
    QC_SCROLL_SUM,
    QC_SCROLL_N,
    QC__COUNT
};

/* The totals hash field name of a counter ("pageviews", ...). */
const char *query_counter_field(enum query_counter c);

struct query_totals {
    long long visitors;
    long long c[QC__COUNT];
    long long all_visitors; /* under a goal filter: the unfiltered visitors (the stats
                               API's conversion_rate); query_* leave it 0 */
};

/* A unit of stored counts: one local day, read from the day keys
 * veil:{s}:d:<site>:<YYYY-MM-DD>:<tail>, or a local quarter, month or ISO
 * week read from its twin keys veil:{s}:q:<site>:<YYYY-MM>:<tail>,
 * veil:{s}:m:<site>:<YYYY-MM>:<tail> or veil:{s}:w:<site>:<Monday>:<tail>
 * (months.h). Every additive day key
 * (hash summed, HyperLogLog unioned) has twins with the same tail, so a
 * reader of a range sums or unions its tail over the range's units
 * (query_units) exactly as it would over the range's days. */
struct query_unit {
    period_day first;   /* the day, or the first day of the month or week (its key's name) */
    char kind;          /* MONTHS_DAY 'd', MONTHS_WEEK 'w', MONTHS_MONTH 'm',
                           MONTHS_QUARTER 'q' (months.h) */
};

/* The units of one range. */
struct query_units {
    struct query_unit *u;  /* owned */
    size_t n;
};

/* The units that cover each of ranges[0..nranges) exactly, in order
 * (query_units.c): the days of a quarter inside a range are one quarter
 * unit when the other days of the quarter hold nothing and its totals
 * equal the sum of those days' totals (so it holds exactly their counts);
 * in the quarters a range covers only in part, months under the same
 * check; in the months it covers only in part, weeks cut at the month's
 * end; every other day is a day unit. The checks read totals hashes in one
 * pipeline. With the roll-ups off
 * (query_set_rollups) the units are the range's days. This is the one
 * place a range becomes keys: a reader of a new additive day key only
 * needs query_unit_key over these units. out[] has nranges entries (free
 * with query_units_free). Returns 0, or -1 with a reason in err. */
int query_units(redisContext *rc, const char *site, const struct period_range *ranges,
                size_t nranges, struct query_units *out, char *err, size_t errlen);

void query_units_free(struct query_units *units, size_t n);

/* The day units of range (no twins, no Redis): for readers that need each
 * row's days, e.g. to reason about "(other)" day by day. */
void query_units_days(const struct period_range *range, struct query_units *out);

/* The key "veil:{s}:<kind>:<site>:<unit>:<tail><value>" of a unit
 * (<unit> YYYY-MM-DD for a day or week, YYYY-MM for a month), malloc'd;
 * its length in *len (value may hold any byte). */
char *query_unit_key(const char *site, struct query_unit unit, const char *tail,
                     const char *value, size_t value_len, size_t *len);

/* Whether query_units may use quarter, month and week keys (the
 * quarter_rollups, month_rollups and week_rollups directives); call once
 * at start-up, before any query. All on by default. */
void query_set_rollups(bool quarters, bool months, bool weeks);

/* One breakdown row merged over days. */
struct stats_row {
    char *value;          /* owned, NUL-terminated, may hold any byte but NUL */
    size_t value_len;
    long long visitors;
    long long pageviews;
    long long visits;
    long long events;
    long long bounces;    /* per-row bounces, visit seconds and the visits they belong to,
                             over the days that have them (query_visit_rows.h) */
    long long duration_s;
    long long row_visits;
    struct query_unit *units; /* owned: the units (days, months) on which the row has
                                 counts; its visitors are the union of its u: keys there */
    size_t nunits;
    size_t units_cap;
};

struct stats_rows {
    struct stats_row *rows;
    size_t n;
};

/* Totals of each bucket (a range of days) of `site`: counters summed over
 * the bucket's days, visitors = PFCOUNT over the bucket's day HLLs.
 * out[] has nbuckets entries. Returns 0, or -1 with a reason in err (the
 * connection may then be unusable: check rc->err). */
int query_totals(redisContext *rc, const char *site, const struct period_range *buckets,
                 size_t nbuckets, struct query_totals *out, char *err, size_t errlen);

/* Totals of every local hour of the days of `range` (at most
 * PERIOD_MAX_HOURLY_DAYS), from the `hours` hash and the `hv:<HH>`
 * HyperLogLogs (docs/KEYS.md): out[d * 24 + h] for day range->first + d,
 * hour h; out holds period_range_days(range) * 24 entries. Scroll depth is
 * not kept per hour (0). Returns 0, or -1 with a reason in err. */
int query_hours(redisContext *rc, const char *site, const struct period_range *range,
                struct query_totals *out, char *err, size_t errlen);

/* Breakdown rows of dimension `dim` (a KEYS.md <dim>: "page", "prop:plan",
 * ...) over `range`: pageviews/visits/events summed from the b:<dim>:pv|vis|ev
 * hashes, visitors = PFCOUNT over the row's u:<dim>:<value> keys of the
 * days it appears on. Fills *out (caller frees with query_rows_free).
 * Returns 0, or -1 with a reason in err. */
int query_breakdown(redisContext *rc, const char *site, const char *dim,
                    const struct period_range *range, struct stats_rows *out,
                    char *err, size_t errlen);

/* A row filter: true to keep the row with this value. */
typedef bool (*query_row_keep)(const char *value, size_t len, void *arg);

/* query_breakdown keeping only the rows keep(value, len, arg) accepts, and
 * the "(other)" row (so a caller can tell that it may hide matches); the
 * visitors of the others are never counted, which is what makes a
 * filtered total cheap. keep NULL keeps every row. */
int query_breakdown_where(redisContext *rc, const char *site, const char *dim,
                          const struct period_range *range, query_row_keep keep, void *arg,
                          struct stats_rows *out, char *err, size_t errlen);

/* query_breakdown from day keys only: each row's units are the days it has
 * counts on. Slower over long ranges; for callers whose logic is per day
 * (a filter deciding, day by day, what "(other)" may hold). */
int query_breakdown_days(redisContext *rc, const char *site, const char *dim,
                         const struct period_range *range, struct stats_rows *out, char *err,
                         size_t errlen);

/* query_breakdown of only the rows named values[0..n) (value_lens[i]
 * bytes each), and "(other)": HMGET of those fields instead of HGETALL of
 * every row, which makes an exact-value filter cheap on a dimension with
 * many rows. A value with no counts in the range makes no row. */
int query_breakdown_values(redisContext *rc, const char *site, const char *dim,
                           const struct period_range *range, const char *const *values,
                           const size_t *value_lens, size_t nvalues, struct stats_rows *out,
                           char *err, size_t errlen);

/* Visitors of the union of rows[0..n) (every row's day keys in one
 * HyperLogLog union): the visitors of a folded "(other)" row. Returns 0 and
 * writes *visitors, or -1 with a reason in err. */
int query_rows_union_visitors(redisContext *rc, const char *site, const char *dim,
                              const struct stats_row *rows, size_t n, long long *visitors,
                              char *err, size_t errlen);

/* Every integer field of the hashes "<day>:<tail>" (tails[0..ntails)) of
 * each day of range: cb(arg, day, tail index, field, its length, value,
 * err, errlen), which returns 0 or -1 to stop with a reason in err.
 * Missing hashes have no fields. Returns 0, or -1 with a reason in err. */
typedef int (*query_field_cb)(void *arg, period_day day, size_t tail, const char *field,
                              size_t flen, long long value, char *err, size_t errlen);
int query_day_fields(redisContext *rc, const char *site, const struct period_range *range,
                     const char *const *tails, size_t ntails, query_field_cb cb, void *arg,
                     char *err, size_t errlen);

/* The day key "<day>:<tail><value>" of the site. */
struct query_day_key {
    period_day day;
    const char *tail;
    const char *value;
    size_t value_len;
};

/* Visitors of the HyperLogLog union of keys[0..n) (0 when n is 0).
 * Returns 0, or -1 with a reason in err. */
int query_day_keys_union(redisContext *rc, const char *site, const struct query_day_key *keys,
                         size_t n, long long *visitors, char *err, size_t errlen);

void query_rows_free(struct stats_rows *rows);

/* Every key is in the shard of its site: shard_of_site(site, shards).
 * Call once before any query (the stats API's start). */
void query_set_shards(unsigned shards);

/* Realtime visitors: PFCOUNT of the per-minute HyperLogLogs
 * veil:{s}:rt:<site>:<minute> of the minutes from since to now (unix
 * seconds). Missing keys count 0. Returns 0 or -1 with a reason in err. */
int query_realtime(redisContext *rc, const char *site, long long since, long long now,
                   long long *count, char *err, size_t errlen);

/* The sorted, de-duplicated site ids of every shard's "veil:{s}:sites",
 * each read on its shard's node (rcluster.h: a plain Redis or a cluster).
 * *sites is malloc'd (each string too). Returns 0, or -1 with a reason. */
struct rcluster;
int query_sites(struct rcluster *cluster, char ***sites, size_t *n, char *err, size_t errlen);

/* "veil:{<shard of site>}:" into buf; its length (the slot of the site's
 * keys). */
size_t query_site_prefix(const char *site, char buf[SHARD_PREFIX_MAX]);

/* The installation's DP key: SET veil:{0}:dpkey <random> NX, then GET it.
 * Returns 0 or -1 with a reason in err. */
int query_dp_key(redisContext *rc, unsigned char key[32], char *err, size_t errlen);

#endif
