/* rollup.h - combining one batch of decoded events in memory, and the names
 * of the Redis keys the daily counts live in (docs/KEYS.md).
 *
 * A batch is combined into per site-day totals, per site-day breakdown
 * rows (dimension, value -> pageviews, events, distinct visitors) and the
 * per-visitor "hits" the session logic needs. Combining is pure C: no
 * Redis, no clock, no I/O; commit.c turns the result into one atomic
 * script call. This module never keeps anything beyond one batch, never
 * touches the truncated IP an event may carry, and never logs. */
#ifndef VEIL_ROLLUP_H
#define VEIL_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define ROLLUP_SHARD_PREFIX "veil:{0}:" /* shard 0's prefix (tests, a one-shard install) */
#define ROLLUP_OTHER "(other)"          /* the row past breakdown_cap */
#define ROLLUP_DIRECT "Direct / None"   /* source of a visit without referrer or utm_source */
#define ROLLUP_SCROLL_BUCKETS 11        /* 0, 10, .. 100 */
#define ROLLUP_NO_VISITOR UINT32_MAX

/* Fields of the `totals` hash combined in C. visits, bounces and
 * visit_duration_s need the stored session and are counted by the commit
 * script. */
enum rollup_total {
    ROLLUP_T_PAGEVIEWS = 0,
    ROLLUP_T_EVENTS,
    ROLLUP_T_ENGAGED_MS,
    ROLLUP_T_ENGAGED_N,
    ROLLUP_T_SCROLL_SUM,
    ROLLUP_T_SCROLL_N,
    ROLLUP_T_COUNT
};

/* The totals hash field name of `t` ("pageviews", "events", ...). */
const char *rollup_total_field(enum rollup_total t);

/* Dimensions counted once per visit (the `vis` metric), with the value of
 * the visit's first pageview. The order is the commit script's order. */
enum rollup_visit_dim {
    ROLLUP_V_ENTRY_PAGE = 0,
    ROLLUP_V_SOURCE,
    ROLLUP_V_UTM_SOURCE,
    ROLLUP_V_UTM_MEDIUM,
    ROLLUP_V_UTM_CAMPAIGN,
    ROLLUP_V_COUNTRY,
    ROLLUP_V_REGION,
    ROLLUP_V_CITY,
    ROLLUP_V_BROWSER,
    ROLLUP_V_BROWSER_VERSION,
    ROLLUP_V_OS,
    ROLLUP_V_DEVICE,
    ROLLUP_V_SCREEN,
    ROLLUP_V_COUNT
};

/* The <dim> name of a visit dimension ("entry_page", "source", ...). */
const char *rollup_visit_dim_name(enum rollup_visit_dim d);

/* True for event names that only carry measurements ("engagement",
 * "scroll"): they add engaged time and scroll depth and extend a visit,
 * but are not counted as events nor as breakdown rows. */
bool rollup_is_measurement(const char *name);

/* One site and UTC day of the batch. Read-only for callers. */
struct rollup_day {
    const char *site;
    const char *day;                      /* YYYY-MM-DD */
    const char *base;                     /* "<prefix>d:<site>:<day>:" */
    const char *realtime_key;             /* "<prefix>rt:<site>:" */
    int64_t expire_at;                    /* unix time its keys expire */
    long long totals[ROLLUP_T_COUNT];
    long long scroll[ROLLUP_SCROLL_BUCKETS];
    uint32_t *visitors;                   /* distinct visitor ids (rollup_visitor) */
    size_t nvisitors, visitors_cap;
};

/* One breakdown row of one site-day: events with dimension `dim` equal to
 * `value`. Rows come in first-seen order. Read-only for callers. */
struct rollup_row {
    uint32_t day;                         /* index into rollup_days() */
    const char *dim;                      /* "page", "source", "prop:plan", ... */
    const char *value;
    long long pv, ev;                     /* pageviews, events (pageviews included) */
    bool visitors_at_visit;               /* entry/acquisition dims: the row's visitors
                                             are added per visit by the script instead */
    uint32_t *visitors;                   /* distinct visitor ids of the row's events */
    size_t nvisitors, visitors_cap;
};

/* One visitor of one site: its open-session key. */
struct rollup_session {
    const char *key;                      /* "<site>:<visitor>": its checkpoint field */
    const char *site;
    const char *realtime_key;             /* "<prefix>rt:<site>:" (plus the minute) */
    uint32_t visitor;                     /* visitor id */
};

/* One event of a visitor, for the session logic. After rollup_finish the
 * hits are ordered by session, then timestamp, then arrival. */
struct rollup_hit {
    uint32_t session;                     /* index into rollup_sessions() */
    uint32_t day;                         /* the event's day */
    int64_t ts;
    bool pageview;
    uint32_t seq;                         /* arrival order within the batch */
    const char *visit[ROLLUP_V_COUNT];    /* visit-dimension values, "" = none */
};

enum rollup_status {
    ROLLUP_ADDED = 0,  /* counted */
    ROLLUP_EXPIRED,    /* its day is past retention: acknowledge, do not count */
    ROLLUP_INVALID,    /* unusable (reason in err): acknowledge as rejected */
};

struct rollup;

/* A combiner writing key names under `prefix` (ROLLUP_SHARD_PREFIX) with
 * daily keys expiring `retention_days` after their day. Aborts on OOM. */
struct rollup *rollup_new(const char *prefix, long long retention_days);
void rollup_free(struct rollup *r);

/* Write the next batch's keys under `prefix` (the shard's "veil:{s}:");
 * call right after rollup_reset. */
void rollup_set_prefix(struct rollup *r, const char *prefix);

/* Forget the batch; every pointer obtained from `r` becomes invalid. */
void rollup_reset(struct rollup *r);

/* Combine one decoded, checked event (event_decode_check passed). `now` is
 * the current unix time, used only to recognise expired days. The event is
 * copied from; `ev` may be reused at once. Returns the status; for
 * ROLLUP_INVALID a reason without event content is written into err. */
enum rollup_status rollup_add(struct rollup *r, const struct event_record *ev, int64_t now,
                              char *err, size_t errlen);

/* Order the hits for the session logic. Call once after the last add. */
void rollup_finish(struct rollup *r);

/* Views of the combined batch, valid until the next reset/add/free. */
size_t rollup_nevents(const struct rollup *r);  /* events added (ROLLUP_ADDED) */
const struct rollup_day *rollup_days(const struct rollup *r, size_t *n);
const struct rollup_row *rollup_rows(const struct rollup *r, size_t *n);
const struct rollup_session *rollup_sessions(const struct rollup *r, size_t *n);
const struct rollup_hit *rollup_hits(const struct rollup *r, size_t *n);
const char *rollup_visitor(const struct rollup *r, uint32_t id); /* 16 hex digits */
size_t rollup_nvisitors(const struct rollup *r);                  /* ids 0 .. n-1 */

/* Lookups (tests, logs): NULL when absent. */
const struct rollup_day *rollup_find_day(const struct rollup *r, const char *site,
                                         const char *day);
const struct rollup_row *rollup_find_row(const struct rollup *r, const char *site,
                                         const char *day, const char *dim, const char *value);

/* ---- key names (docs/KEYS.md); each returns false when out is too small -- */

bool rollup_key_stream(char *out, size_t outlen, const char *prefix);   /* <p>events */
bool rollup_key_sites(char *out, size_t outlen, const char *prefix);    /* <p>sites */
/* <p>d:<site>:<day>:<suffix>  ("" gives the base; "totals", "visitors", "scroll") */
bool rollup_key_day(char *out, size_t outlen, const char *prefix, const char *site,
                    const char *day, const char *suffix);
/* <p>d:<site>:<day>:b:<dim>:<metric>   metric "pv" | "vis" | "ev" */
bool rollup_key_breakdown(char *out, size_t outlen, const char *prefix, const char *site,
                          const char *day, const char *dim, const char *metric);
/* <p>d:<site>:<day>:u:<dim>:<value> */
bool rollup_key_row_visitors(char *out, size_t outlen, const char *prefix, const char *site,
                             const char *day, const char *dim, const char *value);
bool rollup_key_session(char *out, size_t outlen, const char *site,
                        const char *visitor);                         /* <site>:<vh> */
/* <p>rt:<site>:  - the realtime HyperLogLog of minute M is this plus M */
bool rollup_key_realtime(char *out, size_t outlen, const char *prefix, const char *site);

/* Unix time at which the keys of `day` expire: the end of that UTC day plus
 * `retention_days` days. -1 when `day` is not a real YYYY-MM-DD date. */
int64_t rollup_day_expire_at(const char *day, long long retention_days);

/* True when `site` can be part of a key name: non-empty, no ':', no
 * whitespace or control bytes. */
bool rollup_site_valid(const char *site);

#endif
