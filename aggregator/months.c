/* months.c - quarter, month and week twins of day keys (see months.h). Never
 * touches Redis, never sees event content: only key names and day
 * numbers. */
#include "months.h"

#include <stdio.h>
#include <string.h>

static bool is(const char *tail, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(tail, name, len) == 0;
}

static bool starts(const char *tail, size_t len, const char *prefix)
{
    return len >= strlen(prefix) && memcmp(tail, prefix, strlen(prefix)) == 0;
}

bool months_tail_mirrored(const char *tail, size_t len)
{
    /* hourly keys (read for at most 31 days, per day), per-day budgets and
     * marks, and pair counts (read per day, under their own budget) */
    if (is(tail, len, "hours") || is(tail, len, "rows") || is(tail, len, "pairs") ||
        starts(tail, len, "hv:") || starts(tail, len, "hb:") || starts(tail, len, "hu:") ||
        starts(tail, len, "p:") || starts(tail, len, "pu:"))
        return false;
    /* custom properties: the most keys per event (up to property_budget
     * rows a day), read as days (query.c) */
    if (starts(tail, len, "b:prop:") || starts(tail, len, "u:prop:") ||
        starts(tail, len, "b:prop_key:") || starts(tail, len, "u:prop_key:"))
        return false;
    return len > 0;
}

bool months_dim_mirrored(const char *dim)
{
    char tail[256];
    int n = snprintf(tail, sizeof tail, "b:%s:pv", dim);
    return n > 0 && (size_t)n < sizeof tail && months_tail_mirrored(tail, (size_t)n);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

size_t months_twin(const char *key, size_t len, char kind, char *out, size_t cap,
                   period_day *day)
{
    if (kind != MONTHS_MONTH && kind != MONTHS_QUARTER && kind != MONTHS_WEEK)
        return 0;
    /* "veil:{s}:" then "d:" */
    const char *tag = memchr(key, '}', len);
    if (!tag || (size_t)(tag - key) + 4 > len || tag[1] != ':' || tag[2] != 'd' || tag[3] != ':')
        return 0;
    size_t d = (size_t)(tag - key) + 2; /* the 'd' */
    /* the first ":YYYY-MM-DD:" after the site (site ids hold no such run) */
    for (size_t i = d + 2; i + 12 <= len; i++) {
        const char *s = key + i;
        if (s[0] != ':' || s[5] != '-' || s[8] != '-' || s[11] != ':' || !digits(s + 1, 4) ||
            !digits(s + 6, 2) || !digits(s + 9, 2))
            continue;
        if (i == d + 2) /* an empty site */
            return 0;
        const char *tail = s + 12;
        size_t tail_len = len - (i + 12);
        char err[64];
        period_day dd;
        if (!months_tail_mirrored(tail, tail_len) || !period_parse_day(s + 1, 10, &dd, err, sizeof err))
            return 0;
        size_t n = kind == MONTHS_WEEK ? len : len - 3; /* a Monday, or "-DD" dropped */
        if (n + 1 > cap)
            return 0;
        memcpy(out, key, i + 1); /* "<p>d:<site>:" */
        out[d] = kind;
        if (kind == MONTHS_MONTH) {
            memcpy(out + i + 1, s + 1, 7); /* "YYYY-MM" */
        } else if (kind == MONTHS_QUARTER) {
            char first[11];
            period_format_day(months_span_first(MONTHS_QUARTER, dd), first);
            memcpy(out + i + 1, first, 7); /* "YYYY-MM" of its first month */
        } else {
            char monday[11];
            period_format_day(months_span_first(MONTHS_WEEK, dd), monday);
            memcpy(out + i + 1, monday, 10);
        }
        memcpy(out + n - tail_len - 1, s + 11, tail_len + 1); /* ":<tail>" */
        out[n] = '\0';
        *day = dd;
        return n;
    }
    return 0;
}

period_day months_span_first(char kind, period_day day)
{
    int y, m, md;
    switch (kind) {
    case MONTHS_MONTH:
        period_to_civil(day, &y, &m, &md);
        return day - (md - 1);
    case MONTHS_QUARTER:
        period_to_civil(day, &y, &m, &md);
        return period_from_civil(y, (m - 1) / 3 * 3 + 1, 1);
    case MONTHS_WEEK: /* 1970-01-01, day 0, was a Thursday */
        return day - (period_day)(((day % 7) + 7 + 3) % 7);
    default:
        return day;
    }
}

period_day months_span_last(char kind, period_day day)
{
    int y, m, md;
    switch (kind) {
    case MONTHS_MONTH:
        period_to_civil(day, &y, &m, &md);
        return day - md + period_days_in_month(y, m);
    case MONTHS_QUARTER:
        period_to_civil(day, &y, &m, &md);
        m = (m - 1) / 3 * 3 + 3;
        return period_from_civil(y, m, period_days_in_month(y, m));
    case MONTHS_WEEK:
        return months_span_first(MONTHS_WEEK, day) + 6;
    default:
        return day;
    }
}

int64_t months_expire_at(char kind, period_day day, int64_t day_expire_at)
{
    return day_expire_at + (int64_t)(months_span_last(kind, day) - day) * 86400;
}
