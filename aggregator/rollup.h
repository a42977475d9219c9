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
#define ROLLUP_HIT_GOALS 4              /* goals of one event the pair counts see */

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
    ROLLUP_V_CHANNEL,
    ROLLUP_V_REFERRER,
    ROLLUP_V_VISITOR_TYPE, /* set by the plan, not per event: "new" or "returning" */
    ROLLUP_V_UTM_TERM,
    ROLLUP_V_UTM_CONTENT,
    ROLLUP_V_COUNT
};

/* The <dim> name of a visit dimension ("entry_page", "source", ...). */
const char *rollup_visit_dim_name(enum rollup_visit_dim d);

/* True for event names that only carry measurements ("engagement",
 * "scroll"): they add engaged time and scroll depth and extend a visit,
 * but are not counted as events nor as breakdown rows. */
bool rollup_is_measurement(const char *name);

/* A visitor seen in one local hour of a day. */
struct rollup_hour_visitor {
    uint32_t visitor;
    uint8_t hour;
};

/* A site's settings from the registry (site_zones.h): its time zone (NULL:
 * UTC) and goals ("kind:pattern" lines, "" none). */
struct tz_zone;
struct rollup_site {
    const struct tz_zone *zone;
    const char *goals;
};
typedef const struct rollup_site *(*rollup_site_fn)(void *arg, const char *site);

/* One site and local day of the batch (the site's time zone, UTC by
 * default). Read-only for callers. */
struct rollup_day {
    const char *site;
    const char *day;                      /* YYYY-MM-DD */
    const char *base;                     /* "<prefix>d:<site>:<day>:" */
    const char *realtime_key;             /* "<prefix>rt:<site>:" */
    int64_t expire_at;                    /* unix time its keys expire */
    long long totals[ROLLUP_T_COUNT];     /* scroll_sum and scroll_n stay 0: scroll depth
                                             is per page view, counted by the plan */
    long long hour_pv[24], hour_ev[24];   /* pageviews and events per local hour */
    struct rollup_hour_visitor *hour_visitors; /* distinct (visitor, hour) pairs */
    size_t nhour_visitors, hour_visitors_cap;
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
    bool interactive;                     /* a custom event that is an interaction */
    int scroll;                           /* its scroll depth, -1 absent */
    uint64_t page;                        /* visit_page_hash of its path */
    uint8_t hour;                         /* local hour of ts, 0..23 */
    uint32_t seq;                         /* arrival order within the batch */
    const char *visit[ROLLUP_V_COUNT];    /* visit-dimension values, "" = none */
    const char *goals[ROLLUP_HIT_GOALS];  /* goal rows the event completes (plan_pairs.c) */
    uint8_t ngoals;
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

/* Each site's settings from `fn(arg, site)`: local days and hours, goals
 * (NULL fn: every site is UTC without goals). Kept across batches. */
void rollup_set_sites(struct rollup *r, rollup_site_fn fn, void *arg);

/* Named sources and channels from `db` (referrers.h; NULL: the source is
 * the referrer host and channels come from campaigns only). Kept across
 * batches; db must outlive r. */
struct referrers;
void rollup_set_referrers(struct rollup *r, const struct referrers *db);

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
