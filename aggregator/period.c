/* period.c - UTC day arithmetic and the `period`/`date` parameters of the
 * stats API (see period.h). Civil-date conversion follows Howard Hinnant's
 * days_from_civil / civil_from_days. Never reads the clock itself except in
 * period_today(), whose input is the caller's. */
#include "period.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

period_day period_from_civil(int year, int month, int day)
{
    int y = year - (month <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;                                          /* [0, 399] */
    int doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1; /* [0, 365] */
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                  /* [0, 146096] */
    return (period_day)(era * 146097 + doe - 719468);
}

void period_to_civil(period_day day, int *year, int *month, int *mday)
{
    int z = (int)day + 719468;
    int era = (z >= 0 ? z : z - 146096) / 146097;
    int doe = z - era * 146097;
    int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int mp = (5 * doy + 2) / 153;
    int d = doy - (153 * mp + 2) / 5 + 1;
    int m = mp + (mp < 10 ? 3 : -9);
    *year = yoe + era * 400 + (m <= 2);
    *month = m;
    *mday = d;
}

static bool is_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int period_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return month == 2 && is_leap(year) ? 29 : days[month - 1];
}

bool period_parse_day(const char *s, size_t len, period_day *out, char *err, size_t errlen)
{
    long long y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-') {
        str_format(err, errlen, "expected YYYY-MM-DD");
        return false;
    }
    /* safe_strtoll_n accepts a sign; a date has digits only. */
    for (size_t i = 0; i < len; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) {
            str_format(err, errlen, "expected YYYY-MM-DD");
            return false;
        }
    }
    if (!safe_strtoll_n(s, 4, PERIOD_MIN_YEAR, PERIOD_MAX_YEAR, &y)) {
        str_format(err, errlen, "year out of range %d..%d", PERIOD_MIN_YEAR, PERIOD_MAX_YEAR);
        return false;
    }
    if (!safe_strtoll_n(s + 5, 2, 1, 12, &m)) {
        str_format(err, errlen, "month out of range");
        return false;
    }
    if (!safe_strtoll_n(s + 8, 2, 1, period_days_in_month((int)y, (int)m), &d)) {
        str_format(err, errlen, "no such day in that month");
        return false;
    }
    *out = period_from_civil((int)y, (int)m, (int)d);
    return true;
}

void period_format_day(period_day day, char out[11])
{
    int y, m, d;
    period_to_civil(day, &y, &m, &d);
    /* Years stay within 0..9999 for every day a parser can produce. */
    str_format(out, 11, "%04d-%02d-%02d", y % 10000, m, d);
}

void period_format_month(period_day day, char out[11])
{
    int y, m, d;
    period_to_civil(day, &y, &m, &d);
    str_format(out, 11, "%04d-%02d-01", y % 10000, m);
}

period_day period_today(int64_t unix_seconds)
{
    int64_t days = unix_seconds / 86400;
    if (unix_seconds % 86400 < 0)
        days--;
    return (period_day)days;
}

static period_day month_start(period_day day)
{
    int y, m, d;
    period_to_civil(day, &y, &m, &d);
    return period_from_civil(y, m, 1);
}

static period_day month_end(period_day day)
{
    int y, m, d;
    period_to_civil(day, &y, &m, &d);
    return period_from_civil(y, m, period_days_in_month(y, m));
}

/* The first day of the month `back` months before the month of `day`. */
static period_day months_back_start(period_day day, int back)
{
    int y, m, d;
    period_to_civil(day, &y, &m, &d);
    int index = y * 12 + (m - 1) - back;
    return period_from_civil(index / 12, index % 12 + 1, 1);
}

static bool parse_custom(const char *date, struct period_range *out, char *err, size_t errlen)
{
    char why[64];
    const char *comma = date ? strchr(date, ',') : NULL;
    if (!comma) {
        str_format(err, errlen, "date: period=custom needs date=YYYY-MM-DD,YYYY-MM-DD");
        return false;
    }
    if (!period_parse_day(date, (size_t)(comma - date), &out->first, why, sizeof why) ||
        !period_parse_day(comma + 1, strlen(comma + 1), &out->last, why, sizeof why)) {
        str_format(err, errlen, "date: %s", why);
        return false;
    }
    if (out->first > out->last) {
        str_format(err, errlen, "date: the range starts after it ends");
        return false;
    }
    if (out->last - out->first + 1 > PERIOD_MAX_CUSTOM_DAYS) {
        str_format(err, errlen, "date: a custom range may span at most %d days",
                   PERIOD_MAX_CUSTOM_DAYS);
        return false;
    }
    return true;
}

bool period_resolve(const char *period, const char *date, period_day today,
                    long long retention_days, struct period_range *out, bool *clipped,
                    char *err, size_t errlen)
{
    char why[64];
    struct period_range r;
    period_day day = today;
    if (!period)
        period = "30d";
    *clipped = false;

    if (strcmp(period, "custom") == 0) {
        if (!parse_custom(date, &r, err, errlen))
            return false;
    } else {
        if (date && !period_parse_day(date, strlen(date), &day, why, sizeof why)) {
            str_format(err, errlen, "date: %s", why);
            return false;
        }
        if (strcmp(period, "day") == 0) {
            r.first = r.last = day;
        } else if (strcmp(period, "7d") == 0) {
            r.first = day - 6;
            r.last = day;
        } else if (strcmp(period, "30d") == 0) {
            r.first = day - 29;
            r.last = day;
        } else if (strcmp(period, "month") == 0) {
            r.first = month_start(day);
            r.last = month_end(day);
        } else if (strcmp(period, "6mo") == 0) {
            r.first = months_back_start(day, 5);
            r.last = month_end(day);
        } else if (strcmp(period, "12mo") == 0) {
            r.first = months_back_start(day, 11);
            r.last = month_end(day);
        } else {
            str_format(err, errlen, "period: expected day, 7d, 30d, month, 6mo, 12mo or custom");
            return false;
        }
    }

    /* A day's keys live retention_days after the day, so the oldest day
     * that can still hold data is today - retention_days. */
    if (retention_days > 0) {
        long long oldest = (long long)today - retention_days;
        if ((long long)r.first < oldest) {
            r.first = (period_day)(oldest > r.last + 1LL ? r.last + 1LL : oldest);
            *clipped = true;
        }
    }
    *out = r;
    return true;
}

long period_range_days(const struct period_range *r)
{
    return r->first > r->last ? 0 : (long)r->last - (long)r->first + 1;
}

struct period_range *period_buckets(const struct period_range *range,
                                    enum period_interval interval, size_t *n)
{
    long days = period_range_days(range);
    *n = 0;
    if (days == 0)
        return NULL;
    /* Months never outnumber days. */
    struct period_range *b = xcalloc((size_t)days, sizeof *b);
    size_t count = 0;
    for (period_day d = range->first; d <= range->last;) {
        /* weeks run Monday to Sunday (ISO 8601); 1970-01-01 was a Thursday */
        period_day end = interval == PERIOD_INTERVAL_MONTH  ? month_end(d)
                       : interval == PERIOD_INTERVAL_WEEK ? d + (6 - ((d % 7 + 10) % 7))
                                                          : d;
        if (end > range->last)
            end = range->last;
        b[count].first = d;
        b[count].last = end;
        count++;
        d = end + 1;
    }
    *n = count;
    return b;
}
