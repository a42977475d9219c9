/* pairs.h - the two-dimensional counts (docs/KEYS.md "Pair counts"):
 * which pairs of dimensions are counted together, in which order, with
 * which metrics, and how a pair of values is named in a hash field. The
 * plan (plan_pairs.c) writes them and the stats API (api_pairs.c) reads
 * them, both from this one table.
 *
 * Three kinds of pairs, chosen for what a filter on one property and a
 * breakdown by another ask, at a cost the aggregator can pay per event:
 * - page x V: a page view's path with its own value of V (V one of the
 *   visit dimensions an event carries: source, country, browser...);
 *   pageviews and visitors;
 * - goal x V: an event that completes a goal, with its own value of V;
 *   pageviews, events and visitors;
 * - V x W: two visit dimensions (entry_page and visitor_type included)
 *   with the values of a visit's first page view, once per visit; visits
 *   and visitors.
 * Data and pure functions only: no Redis, no logging. */
#ifndef VEIL_PAIRS_H
#define VEIL_PAIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollup.h"

#define PAIRS_KEY "pairs" /* <base>pairs: "cells" admitted, "batches" counted with pairs,
                             "off" counted without (pair_budget 0) */
#define PAIRS_MARKS_MAX 100 /* values with folded cells named per pair and site-day */
#define PAIRS_MARK_ALL "*"   /* ... past that: any value may have folded cells */
#define PAIRS_CLASSES (2 * ROLLUP_V_COUNT + ROLLUP_V_COUNT * ROLLUP_V_COUNT)

enum pair_kind { PAIR_PAGE = 0, PAIR_GOAL, PAIR_VISIT };

struct pair_class {
    enum pair_kind kind;
    unsigned id;            /* 0 .. PAIRS_CLASSES-1 */
    const char *first;      /* <dim> names in key order: p:<first>:<second>:<metric> */
    const char *second;
    unsigned metrics;       /* SCHEMA_PV | SCHEMA_EV | SCHEMA_VIS kept per cell */
    unsigned primary;       /* the metric whose hash holds every cell of the pair */
};

/* Whether visit slot d pairs at all (a visit dimension with a stats API
 * property), and whether an event carries its own value of it (every one
 * but entry_page and visitor_type, which only a visit has). */
bool pairs_visit_slot(size_t d);
bool pairs_event_slot(size_t d);

/* Parse the pair_dims directive (visit dimension names) into a mask of
 * visit slots (bit d = slot d). False with "pair_dims: <reason>" in err. */
struct cfg_list;
bool pairs_dims_parse(const struct cfg_list *dims, uint32_t *mask, char *err, size_t errlen);

/* The class of page x slot d, goal x slot d, or slots d1 x d2 (any
 * order); false when that pair is not counted. */
bool pairs_page_class(size_t d, struct pair_class *out);
bool pairs_goal_class(size_t d, struct pair_class *out);
bool pairs_visit_class(size_t d1, size_t d2, struct pair_class *out);

/* The class of two <dim> names ("page", "source", "goal"...): true and
 * *out, or false with the reason in why ("<a> and <b> are not counted per
 * pair of values ..."), for the stats API's 400. *a_first says whether
 * dim a is the class's first. */
bool pairs_class_of(const char *a, const char *b, struct pair_class *out, bool *a_first,
                    char *why, size_t whylen);

/* The hash field of the pair (a, b): "<decimal length of a>:<a><b>",
 * unambiguous whatever bytes the values hold. Its length, 0 when it does
 * not fit in cap. */
size_t pairs_field(char *buf, size_t cap, const char *a, size_t alen, const char *b,
                   size_t blen);

/* Split a field back into its two values; false when it is not one
 * (e.g. "(other)"). */
bool pairs_field_split(const char *f, size_t flen, const char **a, size_t *alen,
                       const char **b, size_t *blen);

#endif
