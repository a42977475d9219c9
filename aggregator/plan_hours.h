/* plan_hours.h - the hourly rows of one batch's plan (docs/KEYS.md "hb:"
 * and "hu:"): for the hourly dimensions of hourly.h, page views, events
 * and visitors per (row, local hour), visits and the visitors of
 * per-visit dimensions under the hour the visit started, and the mark
 * <HH>:hourly_rows in the day's `hours` hash that says which events had
 * their hourly rows written. Rows are the daily ones (plan_row): a value
 * past breakdown_cap is "(other)" in its hours too, so the hourly keys
 * exist only for rows the day has.
 *
 * Pure C like plan.c: no I/O, no clock, never logs. */
#ifndef VEIL_PLAN_HOURS_H
#define VEIL_PLAN_HOURS_H

#include <stdint.h>

#include "plan.h"

/* The batch's events: every hour row of rollup_hour_rows, and the
 * coverage mark of each hour with events. Call in plan_make after the
 * daily rows are mapped. */
void plan_hours_rows(struct plan *p, const struct shard_state *st, const struct rollup *r);

/* A visit that starts in local hour `hour` of the plan's day vdi, with the
 * visit values `values` (rollup_visit_dim order): b:<dim>:vis's hourly
 * twin, and the visitor for per-visit dimensions. Call right after the
 * daily visit is counted (its rows are decided then). */
void plan_hours_visit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                      unsigned hour, const char *visitor, const char *const *values);

#endif
