/* months.h - coarser roll-ups: the quarter, month and week twins of a day key
 * (docs/KEYS.md "Month and week keys", docs/AGGREGATOR.md "Month and week
 * roll-ups").
 *
 * Every commit that adds to a day key "veil:{s}:d:<site>:<YYYY-MM-DD>:<tail>"
 * adds the same (the same HINCRBY fields and deltas, the same PFADD members)
 * to its twins "veil:{s}:q:<site>:<YYYY-MM>:<tail>" (the local calendar
 * quarter, named by its first month), "veil:{s}:m:<site>:<YYYY-MM>:<tail>"
 * (the local month) and "veil:{s}:w:<site>:<YYYY-MM-DD of its Monday>:
 * <tail>" (the ISO week), in the same function call. A twin therefore holds exactly the sum (hashes)
 * or the union (HyperLogLogs: the same registers) of the day keys of its
 * span counted while its roll-up was on; the stats API uses a twin for a
 * set of days only when the other days of its span hold nothing and its
 * totals equal the sum of those days' totals (query_units.c).
 *
 * Pure string and calendar arithmetic: it never touches Redis. */
#ifndef VEIL_MONTHS_H
#define VEIL_MONTHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "period.h"

/* Span kinds, the letter of their keys. */
#define MONTHS_DAY 'd'
#define MONTHS_WEEK 'w'
#define MONTHS_MONTH 'm'
#define MONTHS_QUARTER 'q'

/* True when day-key tail `tail` (len bytes, what follows
 * "<site>:<YYYY-MM-DD>:") has twins: every tail but the day-only ones:
 * `hours`, `hv:<HH>`, `hb:<dim>`, `hu:...` (hourly, read for at most 31
 * days), `rows` and `pairs` (budgets and marks of one site-day), the
 * pair counts `p:...`, `pu:...` (read per day, under their own budget),
 * and the custom-property breakdowns `b:prop:...`, `u:prop:...`,
 * `b:prop_key:...`, `u:prop_key:...` (the most keys per event: their
 * twins made a property flood's commit 4 times longer). A
 * new additive day key (a hash only ever HINCRBY'd, a HyperLogLog only
 * PFADD'ed) gets its twins without changes here; a day key whose meaning
 * is not a sum or a union over days, or that no reader reads through
 * query_units, should be listed here as day-only. */
bool months_tail_mirrored(const char *tail, size_t len);

/* True when the breakdown of dimension dim ("page", "prop:plan") has
 * twins, so its ranges may be read from them (else: day keys only). */
bool months_dim_mirrored(const char *dim);

/* If key[0..len) is a day key "<p>d:<site>:<YYYY-MM-DD>:<tail>" with a
 * mirrored tail, writes its twin of `kind` (MONTHS_MONTH: "<p>m:<site>:
 * <YYYY-MM>:<tail>", MONTHS_QUARTER: "<p>q:<site>:<YYYY-MM of the
 * quarter's first month>:<tail>", MONTHS_WEEK: "<p>w:<site>:<Monday>:
 * <tail>"), NUL-
 * terminated, into out (cap bytes) and the day into *day, and returns the
 * twin's length; else (not a day key, day-only tail, too long) 0. */
size_t months_twin(const char *key, size_t len, char kind, char *out, size_t cap,
                   period_day *day);

/* First and last day of the span of `kind` holding `day` (a week is
 * Monday to Sunday, a quarter January to March, ...; a day is itself). */
period_day months_span_first(char kind, period_day day);
period_day months_span_last(char kind, period_day day);

/* The expiry of a twin, given one of its days and that day's key expiry:
 * the expiry of the span's last day (day keys expire retention_days after
 * their day, so the twin outlives its last day by as much). */
int64_t months_expire_at(char kind, period_day day, int64_t day_expire_at);

#endif
