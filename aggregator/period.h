/* period.h - the calendar of the stats API: UTC days as day numbers, the
 * Plausible-style `period`/`date` parameters resolved into a closed range
 * of days, and the buckets of a timeseries.
 *
 * Pure arithmetic on the proleptic Gregorian calendar; it never reads the
 * clock (callers pass "today") and never touches Redis. */
#ifndef VEIL_PERIOD_H
#define VEIL_PERIOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Days since 1970-01-01 (UTC). */
typedef int32_t period_day;

#define PERIOD_MIN_YEAR 1970
#define PERIOD_MAX_YEAR 9999
/* The longest custom range accepted (about ten years). */
#define PERIOD_MAX_CUSTOM_DAYS 3660

/* A closed range of days: first <= last, or empty when first > last. */
struct period_range {
    period_day first;
    period_day last;
};

/* HOUR: the local hours of each day (the stats API reads them from the
 * `hours` keys; period_buckets gives the days). */
enum period_interval {
    PERIOD_INTERVAL_DAY = 0,
    PERIOD_INTERVAL_MONTH,
    PERIOD_INTERVAL_HOUR,
    PERIOD_INTERVAL_WEEK /* Monday to Sunday; a bucket is named by its first day in the range */
};

/* The longest range an hourly timeseries covers (24 rows per day). */
#define PERIOD_MAX_HOURLY_DAYS 31

/* Day number of a civil date (month 1..12, day 1..31; no validation). */
period_day period_from_civil(int year, int month, int day);

/* Civil date of a day number. */
void period_to_civil(period_day day, int *year, int *month, int *mday);

/* Days in `month` (1..12) of `year`, leap years included. */
int period_days_in_month(int year, int month);

/* Parse exactly "YYYY-MM-DD" (s[0..len)) as a valid calendar date between
 * PERIOD_MIN_YEAR and PERIOD_MAX_YEAR. Returns true and writes *out; on
 * false writes a short reason into err. */
bool period_parse_day(const char *s, size_t len, period_day *out, char *err, size_t errlen);

/* Format `day` as "YYYY-MM-DD" into out[11]. */
void period_format_day(period_day day, char out[11]);

/* Format the month of `day` as "YYYY-MM-01" into out[11] (Plausible names
 * monthly buckets by their first day). */
void period_format_month(period_day day, char out[11]);

/* Today (UTC) as a day number, from the wall clock `unix_seconds`. */
period_day period_today(int64_t unix_seconds);

/* Resolve `period` (day, 7d, 30d, month, 6mo, 12mo, custom; NULL means
 * 30d) and `date` (NULL means `today`; a single day, or for custom two
 * days "A,B") into *out:
 *   day    the date itself              7d/30d  the 7/30 days ending on date
 *   month  the calendar month of date   6mo/12mo  that month and the 5/11 before
 *   custom A..B inclusive, A <= B, at most PERIOD_MAX_CUSTOM_DAYS days
 * Then clips the start to retention: days before today - retention_days
 * have expired (retention_days <= 0 disables clipping). The result may be
 * empty after clipping. *clipped is set when the start moved.
 * Returns false with "period: ..." or "date: ..." in err on bad input. */
bool period_resolve(const char *period, const char *date, period_day today,
                    long long retention_days, struct period_range *out, bool *clipped,
                    char *err, size_t errlen);

/* Number of days in a range (0 when empty). */
long period_range_days(const struct period_range *r);

/* Split `range` into timeseries buckets: one per day, one per ISO week
 * (Monday to Sunday), or one per calendar month (the first and last week
 * or month cut to the range). Returns a malloc'd
 * array the caller frees and its length in *n; NULL with *n = 0 for an
 * empty range. */
struct period_range *period_buckets(const struct period_range *range,
                                    enum period_interval interval, size_t *n);

#endif
