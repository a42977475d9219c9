/* kanon.h - k-anonymity at publication (P5): breakdown rows seen by fewer
 * than k visitors are folded into one "(other)" row, and that row itself is
 * published only if it reaches k.
 *
 * Pure functions over rows; thresholds are applied to true counts before
 * any DP noise. It must never let a row with 0 < visitors < k through when
 * k > 1. */
#ifndef VEIL_KANON_H
#define VEIL_KANON_H

#include <stdbool.h>
#include <stddef.h>

#include "query.h"

/* Reorder rows[0..n): rows to keep first (in their original order), rows to
 * fold after them. A row is folded when k > 1 and its visitors < k, and
 * always when its value is "(other)" (the roll-up's own overflow bucket).
 * Returns the number kept; *folded_values gets the number of folded rows
 * other than "(other)". k <= 1 disables the threshold. */
size_t kanon_partition(struct stats_row *rows, size_t n, long long k, size_t *folded_values);

/* Sum pageviews, visits and events of rows[0..n) into *other (which the
 * caller zeroed). Visitors are not summed: the caller sets them from a
 * HyperLogLog union of the folded rows. */
void kanon_sum(const struct stats_row *rows, size_t n, struct stats_row *other);

/* True when a row with this many visitors may be published under k. */
bool kanon_publishable(long long visitors, long long k);

#endif
