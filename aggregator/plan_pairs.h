/* plan_pairs.h - the two-dimensional counts of one batch (pairs.h says
 * which; docs/KEYS.md "Pair counts" the keys): per pair cell a counter per
 * metric and a visitor HyperLogLog, at most pair_budget cells per
 * site-day, later new cells counted under "(other)" of their pair.
 * Called by plan.c at its steps; like the plan it does no I/O and never
 * logs. */
#ifndef VEIL_PLAN_PAIRS_H
#define VEIL_PLAN_PAIRS_H

#include <stdint.h>

#include "plan.h"

/* Step 1: the pair hashes and the budget of every day of the batch, for
 * the caller to load (their cells, the budget's "cells"). */
void plan_pairs_collect(struct plan *p, const struct rollup *r);

/* Start of step 3: mark each day of the batch as counted with pairs
 * ("batches") or without ("off", pair_budget 0), so that a query knows
 * whether a day's pair counts are whole. */
void plan_pairs_mark(struct plan *p, const struct rollup *r);

/* One event: page x V for a page view, goal x V for each goal it
 * completes (its own day, its own values). */
void plan_pairs_hit(struct plan *p, const struct shard_state *st, const struct rollup_hit *h,
                    const char *visitor);

/* A new visit on vday vdi with visit values `values`: V x W, once. */
void plan_pairs_visit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                      const char *visitor, const char *const *values);

#endif
