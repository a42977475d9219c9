/* test_period.c - day arithmetic and the period/date parameters of the
 * stats API: leap years, month ends, clipping to retention, bad input. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "period.h"

static period_day D(const char *s)
{
    period_day d;
    char err[64];
    cr_assert(period_parse_day(s, strlen(s), &d, err, sizeof err), "%s: %s", s, err);
    return d;
}

static void expect_range(const struct period_range *r, const char *first, const char *last)
{
    char a[11], b[11];
    period_format_day(r->first, a);
    period_format_day(r->last, b);
    cr_expect_str_eq(a, first);
    cr_expect_str_eq(b, last);
}

Test(period, civil_matches_timegm_for_every_day_1970_to_2200)
{
    for (int y = 1970; y <= 2200; y++) {
        for (int m = 1; m <= 12; m++) {
            for (int d = 1; d <= period_days_in_month(y, m); d++) {
                struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
                long long want = (long long)timegm(&tm) / 86400;
                period_day got = period_from_civil(y, m, d);
                cr_assert_eq(got, want, "%04d-%02d-%02d", y, m, d);
                int yy, mm, dd;
                period_to_civil(got, &yy, &mm, &dd);
                cr_assert(yy == y && mm == m && dd == d);
            }
        }
    }
}

Test(period, leap_years_and_month_lengths)
{
    cr_expect_eq(period_days_in_month(2024, 2), 29);
    cr_expect_eq(period_days_in_month(2023, 2), 28);
    cr_expect_eq(period_days_in_month(2000, 2), 29);
    cr_expect_eq(period_days_in_month(2100, 2), 28);
    cr_expect_eq(period_days_in_month(2024, 4), 30);
    cr_expect_eq(period_days_in_month(2024, 12), 31);
    cr_expect_eq(period_days_in_month(2024, 13), 0);
}

Test(period, parse_accepts_valid_days)
{
    cr_expect_eq(D("1970-01-01"), 0);
    cr_expect_eq(D("2024-02-29"), 19782);
    cr_expect_eq(D("2000-02-29"), 11016);
    cr_expect_eq(D("2024-12-31") + 1, D("2025-01-01"));
    char out[11];
    period_format_day(D("2026-11-23"), out);
    cr_expect_str_eq(out, "2026-11-23");
    period_format_month(D("2026-11-23"), out);
    cr_expect_str_eq(out, "2026-11-01");
}

Test(period, parse_rejects_bad_days)
{
    const char *bad[] = {"",           "2023-02-29", "2100-02-29", "2024-04-31", "2024-13-01",
                         "2024-00-10", "2024-01-00", "2024-1-01",  "+024-01-01", "2024-01-01x",
                         "2024/01/01", "1969-12-31", "20240101",   "2024-01-1 ", "-024-01-01",
                         "2024-02-3a", "abcd-ef-gh"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        period_day d = 12345;
        char err[64] = "";
        cr_expect_not(period_parse_day(bad[i], strlen(bad[i]), &d, err, sizeof err), "%s", bad[i]);
        cr_expect_eq(d, 12345, "%s wrote its output", bad[i]);
        cr_expect(err[0] != '\0', "%s: no reason", bad[i]);
    }
}

static struct period_range resolve_ok(const char *period, const char *date, const char *today)
{
    struct period_range r;
    bool clipped = true;
    char err[128];
    cr_assert(period_resolve(period, date, D(today), 0, &r, &clipped, err, sizeof err),
              "%s %s: %s", period, date ? date : "-", err);
    cr_expect_not(clipped);
    return r;
}

Test(period, periods_resolve_like_plausible)
{
    struct period_range r;
    r = resolve_ok("day", "2024-02-29", "2026-01-01");
    expect_range(&r, "2024-02-29", "2024-02-29");
    r = resolve_ok("day", NULL, "2026-01-01");
    expect_range(&r, "2026-01-01", "2026-01-01");
    r = resolve_ok("7d", "2024-03-03", "2026-01-01");
    expect_range(&r, "2024-02-26", "2024-03-03");
    r = resolve_ok("30d", "2024-03-01", "2026-01-01");
    expect_range(&r, "2024-02-01", "2024-03-01"); /* 2024 is a leap year */
    r = resolve_ok(NULL, NULL, "2026-01-30"); /* default 30d ending today */
    expect_range(&r, "2026-01-01", "2026-01-30");
    r = resolve_ok("month", "2024-02-10", "2026-01-01");
    expect_range(&r, "2024-02-01", "2024-02-29");
    r = resolve_ok("month", "2023-02-10", "2026-01-01");
    expect_range(&r, "2023-02-01", "2023-02-28");
    r = resolve_ok("month", "2024-12-31", "2026-01-01");
    expect_range(&r, "2024-12-01", "2024-12-31");
    r = resolve_ok("6mo", "2026-02-15", "2026-03-01");
    expect_range(&r, "2025-09-01", "2026-02-28");
    r = resolve_ok("12mo", "2026-01-31", "2026-03-01");
    expect_range(&r, "2025-02-01", "2026-01-31");
    r = resolve_ok("custom", "2024-02-28,2024-03-01", "2026-01-01");
    expect_range(&r, "2024-02-28", "2024-03-01");
    cr_expect_eq(period_range_days(&r), 3);
    r = resolve_ok("custom", "2020-01-01,2030-01-07", "2031-01-01"); /* exactly 3660 days */
    cr_expect_eq(period_range_days(&r), PERIOD_MAX_CUSTOM_DAYS);
}

Test(period, bad_periods_name_the_parameter)
{
    const struct {
        const char *period, *date, *param;
    } bad[] = {
        {"2d", NULL, "period: "},
        {"DAY", NULL, "period: "},
        {"", NULL, "period: "},
        {"day", "2024-02-30", "date: "},
        {"7d", "yesterday", "date: "},
        {"day", "2024-01-01,2024-01-02", "date: "},
        {"custom", NULL, "date: "},
        {"custom", "2024-01-01", "date: "},
        {"custom", "2024-01-02,2024-01-01", "date: "},
        {"custom", "2024-01-01,", "date: "},
        {"custom", "2020-01-01,2030-01-08", "date: "}, /* 3661 days */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct period_range r;
        bool clipped;
        char err[128] = "";
        cr_expect_not(period_resolve(bad[i].period, bad[i].date, D("2026-01-01"), 0, &r,
                                     &clipped, err, sizeof err),
                      "%s %s", bad[i].period, bad[i].date ? bad[i].date : "-");
        cr_expect(strncmp(err, bad[i].param, strlen(bad[i].param)) == 0, "%s / %s -> %s",
                  bad[i].period, bad[i].date ? bad[i].date : "-", err);
    }
}

Test(period, ranges_are_clipped_to_retention)
{
    struct period_range r;
    bool clipped;
    char err[128];
    period_day today = D("2026-03-31");
    cr_assert(period_resolve("30d", NULL, today, 10, &r, &clipped, err, sizeof err));
    cr_expect(clipped);
    expect_range(&r, "2026-03-21", "2026-03-31");
    cr_assert(period_resolve("7d", NULL, today, 10, &r, &clipped, err, sizeof err));
    cr_expect_not(clipped);
    expect_range(&r, "2026-03-25", "2026-03-31");
    /* Entirely before retention: an empty range. */
    cr_assert(period_resolve("month", "2025-01-15", today, 10, &r, &clipped, err, sizeof err));
    cr_expect(clipped);
    cr_expect_eq(period_range_days(&r), 0);
    size_t n = 99;
    cr_expect_null(period_buckets(&r, PERIOD_INTERVAL_DAY, &n));
    cr_expect_eq(n, 0);
}

Test(period, buckets_by_day_and_month)
{
    struct period_range r = {D("2024-01-15"), D("2024-03-10")};
    size_t n;
    struct period_range *b = period_buckets(&r, PERIOD_INTERVAL_MONTH, &n);
    cr_assert_eq(n, 3);
    expect_range(&b[0], "2024-01-15", "2024-01-31");
    expect_range(&b[1], "2024-02-01", "2024-02-29");
    expect_range(&b[2], "2024-03-01", "2024-03-10");
    free(b);
    b = period_buckets(&r, PERIOD_INTERVAL_DAY, &n);
    cr_assert_eq(n, 31 - 15 + 1 + 29 + 10);
    for (size_t i = 0; i < n; i++)
        cr_assert(b[i].first == r.first + (period_day)i && b[i].last == b[i].first);
    free(b);
}

Test(period, today_from_unix_seconds)
{
    cr_expect_eq(period_today(0), 0);
    cr_expect_eq(period_today(86399), 0);
    cr_expect_eq(period_today(86400), 1);
    cr_expect_eq(period_today(-1), -1);
    cr_expect_eq(period_today(1709164800), D("2024-02-29"));
}

Test(period, week_buckets_run_monday_to_sunday)
{
    /* 2026-12-02 is a Wednesday */
    struct period_range r = {period_from_civil(2026, 12, 2), period_from_civil(2026, 12, 16)};
    size_t n;
    struct period_range *b = period_buckets(&r, PERIOD_INTERVAL_WEEK, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(b[0].first, period_from_civil(2026, 12, 2), "cut to the range");
    cr_assert_eq(b[0].last, period_from_civil(2026, 12, 6), "a Sunday");
    cr_assert_eq(b[1].first, period_from_civil(2026, 12, 7), "a Monday");
    cr_assert_eq(b[1].last, period_from_civil(2026, 12, 13));
    cr_assert_eq(b[2].first, period_from_civil(2026, 12, 14));
    cr_assert_eq(b[2].last, period_from_civil(2026, 12, 16));
    free(b);
    struct period_range old = {period_from_civil(1969, 12, 29), period_from_civil(1970, 1, 5)};
    b = period_buckets(&old, PERIOD_INTERVAL_WEEK, &n);
    cr_assert_eq(n, 2, "across 1970-01-01 (a Thursday)");
    cr_assert_eq(b[0].last, period_from_civil(1970, 1, 4));
    free(b);
}
