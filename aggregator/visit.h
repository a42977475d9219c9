/* visit.h - the visit logic (docs/AGGREGATOR.md "Sessions and bounces"):
 * given a visitor's open visit and one of its events, what changes - a
 * new visit, a longer duration, a bounce undone - in pure C, without
 * Redis, keys or a clock, so that it is tested on its own
 * (tests/unit/test_visit.c).
 *
 * A visit is a run of events of one visitor on one site with gaps of at
 * most the session timeout, in event time. Events of a visitor are fed in
 * ts order within a batch (rollup_finish); across batches the open visit
 * carries over (the shard's memory and checkpoint). It never logs and
 * never sees anything but timestamps, the page-view flag and the day. */
#ifndef VEIL_VISIT_H
#define VEIL_VISIT_H

#include <stdbool.h>
#include <stdint.h>

/* A visitor's open visit. */
struct visit_state {
    bool open;              /* false: no visit (or a damaged one) */
    long long pv;           /* interactions so far: page views and interactive custom
                               events (the second one undoes the bounce) */
    long long start, last;  /* event ts of its first and last event */
    uint32_t day;           /* the caller's handle of the day it started (its counts go there) */
    uint64_t page;          /* hash of the path of its latest page view (visit_page_hash) */
    int scroll;             /* the largest scroll depth counted for that page view, -1 none */
    uint8_t hour;           /* the local hour it started in (its hourly counts go there) */
    long long exit_ts;      /* ts of its latest page view (the exit page's): a page view at
                               or after it moves the visit's exit (visit:exit_page) */
    bool changed;           /* set when the visit must be stored again */
};

/* One event as the visit logic sees it. */
struct visit_hit {
    int64_t ts;
    bool pageview;
    bool interactive;       /* a custom event that counts as an interaction (not i:false,
                               not an engagement/scroll measurement) */
    uint64_t page;          /* visit_page_hash of its path */
    int scroll;             /* its scroll depth 0..100, -1 absent */
    uint8_t hour;           /* local hour of ts */
};

/* What one event does; the caller turns it into counter increments. */
struct visit_effect {
    bool new_visit;         /* a visit starts (count it on the event's day: visits+1,
                               bounces+1, its `vis` rows) */
    bool returning;         /* ... and this visitor hash had a visit before (the state
                               was kept: see plan_sweep) */
    long long duration;     /* add to visit_duration_s of the visit's day */
    long long bounces;      /* add to bounces of the visit's day (-1 on the 2nd page view) */
    uint32_t day;           /* the visit's day for duration, bounces and scroll */
    uint8_t hour;           /* the visit's local hour (of its start) on that day */
    long long scroll_sum;   /* add to scroll_sum of the visit's day */
    long long scroll_n;     /* add to scroll_n of the visit's day (0 or 1) */
    int scroll_from, scroll_to; /* scroll histogram: move one page view from bucket
                               scroll_from (-1: none) to scroll_to (-1: no move) */
    bool separate;          /* new_visit of an earlier, separate visit that arrived late:
                               the open visit is kept (its rows too); the new one is a
                               one-page bounce counted under this event's own values */
    bool exit_move;         /* a page view of the open, continuing visit that is now its
                               latest page view: the visit's exit page becomes its page */
};

/* True while the visit is a bounce (one interaction so far). */
static inline bool visit_bounced(const struct visit_state *s)
{
    return s->pv <= 1;
}

/* The page identity used to match an engagement event to its page view:
 * a 64-bit FNV-1a hash of the path (0 for ""). */
uint64_t visit_page_hash(const char *path);

/* Apply one event `h` (its day handle `day`) to *s with session timeout
 * `timeout` seconds; writes what changed into *out.
 * Rules (docs/API.md "Engagement"): with no open visit, or one idle for
 * more than `timeout` before ts, a page view starts a new visit (other
 * events start none); an event more than `timeout` before the open
 * visit's start is an earlier, separate visit that arrived late: a page
 * view counts as a new visit, the open visit is kept; otherwise the event
 * extends the open visit (duration grows by how far ts moves start or
 * last) and its second interaction (page view or interactive custom
 * event) undoes the bounce. Scroll depth: a page view's largest depth
 * counts once, on the visit's day: an event carrying a depth for the page
 * of the visit's latest page view raises that page view's maximum
 * (scroll_n +1 the first time, scroll_sum by the increase); depths for
 * any other page, or without an open visit, are not counted. Exit page:
 * a visit's exit is its page view with the largest ts (the later one of
 * equal ts); a page view of the open visit at or after exit_ts sets
 * exit_move (the caller moves the visit's exit row to its page). */
void visit_apply(struct visit_state *s, const struct visit_hit *h, uint32_t day,
                 long long timeout, struct visit_effect *out);

#endif
