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
    long long pv;           /* page views so far */
    long long start, last;  /* event ts of its first and last event */
    uint32_t day;           /* the caller's handle of the day it started (its counts go there) */
    bool changed;           /* set when the visit must be stored again */
};

/* What one event does; the caller turns it into counter increments. */
struct visit_effect {
    bool new_visit;         /* a visit starts (count it on the event's day: visits+1,
                               bounces+1, its `vis` rows) */
    long long duration;     /* add to visit_duration_s of the visit's day */
    long long bounces;      /* add to bounces of the visit's day (-1 on the 2nd page view) */
    uint32_t day;           /* the visit's day for duration and bounces */
};

/* Apply one event (ts, page view or not, its day handle) to *s with
 * session timeout `timeout` seconds; writes what changed into *out.
 * Rules: with no open visit, or one idle for more than `timeout` before
 * ts, a page view starts a new visit (other events start none); an event
 * more than `timeout` before the open visit's start is an earlier,
 * separate visit that arrived late: a page view counts as a new visit,
 * the open visit is kept; otherwise the event extends the open visit
 * (duration grows by how far ts moves start or last) and its second page
 * view undoes the bounce. */
void visit_apply(struct visit_state *s, int64_t ts, bool pageview, uint32_t day,
                 long long timeout, struct visit_effect *out);

#endif
