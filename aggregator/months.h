/* months.h - month roll-ups: the month twin of a day key (docs/KEYS.md
 * "Month keys", docs/AGGREGATOR.md "Month roll-ups").
 *
 * Every commit that adds to a day key "veil:{s}:d:<site>:<YYYY-MM-DD>:<tail>"
 * adds the same (the same HINCRBY fields and deltas, the same PFADD members)
 * to its twin "veil:{s}:m:<site>:<YYYY-MM>:<tail>", in the same function
 * call. A month key therefore holds exactly the sum (hashes) or the union
 * (HyperLogLogs: the same registers) of the day keys of its month counted
 * while month roll-ups were on; the stats API uses a month only when its
 * totals equal the sum of its days' totals (query.c, query_units).
 *
 * Pure string and calendar arithmetic: it never touches Redis. */
#ifndef VEIL_MONTHS_H
#define VEIL_MONTHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "period.h"

/* True when day-key tail `tail` (len bytes, what follows
 * "<site>:<YYYY-MM-DD>:") has a month twin: every tail but the day-only
 * ones (`hours` and `hv:<HH>`, read for at most 31 days, and `rows`, the
 * property budget of one site-day). A new additive day key (a hash only
 * ever HINCRBY'd, a HyperLogLog only PFADD'ed) gets its twin without
 * changes here; a day key whose meaning is not a sum or a union over days
 * must be listed here as day-only. */
bool months_tail_mirrored(const char *tail, size_t len);

/* If key[0..len) is a day key "<p>d:<site>:<YYYY-MM-DD>:<tail>" with a
 * mirrored tail, writes its twin "<p>m:<site>:<YYYY-MM>:<tail>" (NUL-
 * terminated) into out (cap bytes) and the day into *day, and returns the
 * twin's length; else (not a day key, day-only tail, too long) 0. */
size_t months_twin(const char *key, size_t len, char *out, size_t cap, period_day *day);

/* The expiry of a month key, given one of its days and that day's key
 * expiry: the expiry of the month's last day (day keys expire
 * retention_days after their day, so the month outlives its last day by
 * as much). */
int64_t months_expire_at(period_day day, int64_t day_expire_at);

/* First and last day of the calendar month holding `day`. */
period_day months_first(period_day day);
period_day months_last(period_day day);

#endif
