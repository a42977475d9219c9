/* test_months.c - the month twin of a day key (aggregator/months.c): which
 * tails have one, its name, and its expiry (the month's last day's);
 * the week twin, named by its Monday. */
#include <criterion/criterion.h>
#include <string.h>

#include "months.h"

static size_t twin(const char *key, char *out, size_t cap, period_day *day)
{
    return months_twin(key, strlen(key), MONTHS_MONTH, out, cap, day);
}

Test(months, twin_of_day_keys)
{
    char out[256];
    period_day day = 0, want;
    char err[64];
    cr_assert(period_parse_day("2026-02-28", 10, &want, err, sizeof err));
    const char *cases[][2] = {
        {"veil:{3}:d:example.com:2026-02-28:totals", "veil:{3}:m:example.com:2026-02:totals"},
        {"veil:{3}:d:example.com:2026-02-28:visitors", "veil:{3}:m:example.com:2026-02:visitors"},
        {"veil:{12}:d:a.b:2026-02-28:b:page:pv", "veil:{12}:m:a.b:2026-02:b:page:pv"},
        {"veil:{3}:d:example.com:2026-02-28:u:page:/2026-01-01:x",
         "veil:{3}:m:example.com:2026-02:u:page:/2026-01-01:x"},
        {"veil:{3}:d:example.com:2026-02-28:scroll", "veil:{3}:m:example.com:2026-02:scroll"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = twin(cases[i][0], out, sizeof out, &day);
        cr_expect_eq(n, strlen(cases[i][1]), "%s", cases[i][0]);
        cr_expect_str_eq(out, cases[i][1]);
        cr_expect_eq(day, want);
    }
}

Test(months, week_twin_is_named_by_its_monday)
{
    char out[256];
    period_day day;
    const char *cases[][2] = {
        /* 2026-03-01 is a Sunday: its week began on Monday 2026-02-23 */
        {"veil:{3}:d:example.com:2026-03-01:totals", "veil:{3}:w:example.com:2026-02-23:totals"},
        {"veil:{3}:d:example.com:2026-02-23:u:page:/", "veil:{3}:w:example.com:2026-02-23:u:page:/"},
        {"veil:{3}:d:example.com:2027-01-01:b:source:vis",
         "veil:{3}:w:example.com:2026-12-28:b:source:vis"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = months_twin(cases[i][0], strlen(cases[i][0]), MONTHS_WEEK, out, sizeof out, &day);
        cr_expect_eq(n, strlen(cases[i][1]), "%s", cases[i][0]);
        cr_expect_str_eq(out, cases[i][1]);
    }
    cr_expect_eq(months_twin("veil:{3}:d:example.com:2026-03-01:hours", 39, MONTHS_WEEK, out,
                             sizeof out, &day), 0);
    char err[64];
    period_day sun, mon;
    cr_assert(period_parse_day("2026-03-01", 10, &sun, err, sizeof err));
    cr_assert(period_parse_day("2026-02-23", 10, &mon, err, sizeof err));
    cr_expect_eq(months_span_first(MONTHS_WEEK, sun), mon);
    cr_expect_eq(months_span_last(MONTHS_WEEK, mon), sun);
    cr_expect_eq(months_expire_at(MONTHS_WEEK, mon, 500), 500 + 6 * 86400);
    for (period_day d = -10; d < 30; d++) /* Mondays, also before 1970 */
        cr_expect_eq((months_span_first(MONTHS_WEEK, d) % 7 + 7) % 7, 4, "%d", (int)d);
}

Test(months, quarter_twin_is_named_by_its_first_month)
{
    char out[256];
    period_day day;
    const char *cases[][2] = {
        {"veil:{3}:d:example.com:2026-03-31:totals", "veil:{3}:q:example.com:2026-01:totals"},
        {"veil:{3}:d:example.com:2026-04-01:u:page:/", "veil:{3}:q:example.com:2026-04:u:page:/"},
        {"veil:{3}:d:example.com:2026-12-06:b:page:pv", "veil:{3}:q:example.com:2026-10:b:page:pv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = months_twin(cases[i][0], strlen(cases[i][0]), MONTHS_QUARTER, out, sizeof out,
                               &day);
        cr_expect_eq(n, strlen(cases[i][1]), "%s", cases[i][0]);
        cr_expect_str_eq(out, cases[i][1]);
    }
    char err[64];
    period_day feb, jan1, mar31, dec31;
    cr_assert(period_parse_day("2028-02-15", 10, &feb, err, sizeof err));
    cr_assert(period_parse_day("2028-01-01", 10, &jan1, err, sizeof err));
    cr_assert(period_parse_day("2028-03-31", 10, &mar31, err, sizeof err));
    cr_assert(period_parse_day("2028-12-31", 10, &dec31, err, sizeof err));
    cr_expect_eq(months_span_first(MONTHS_QUARTER, feb), jan1);
    cr_expect_eq(months_span_last(MONTHS_QUARTER, feb), mar31);
    cr_expect_eq(months_span_last(MONTHS_QUARTER, dec31 - 40), dec31);
    cr_expect_eq(months_expire_at(MONTHS_QUARTER, jan1, 0), (int64_t)(mar31 - jan1) * 86400);
}

Test(months, day_only_and_foreign_keys_have_no_twin)
{
    char out[256];
    period_day day;
    const char *none[] = {
        "veil:{3}:d:example.com:2026-02-28:hours",
        "veil:{3}:d:example.com:2026-02-28:hv:07",
        "veil:{3}:d:example.com:2026-02-28:rows",
        "veil:{3}:d:example.com:2026-02-28:pairs",
        "veil:{3}:d:example.com:2026-02-28:b:prop:plan:ev",
        "veil:{3}:d:example.com:2026-02-28:u:prop:plan:pro",
        "veil:{3}:d:example.com:2026-02-28:b:prop_key:pv",
        "veil:{3}:d:example.com:2026-02-28:hb:page",
        "veil:{3}:d:example.com:2026-02-28:hu:page:07:/",
        "veil:{3}:d:example.com:2026-02-28:p:page:country:pv",
        "veil:{3}:d:example.com:2026-02-28:pu:page:country:1:/DE",
        "veil:{3}:d:example.com:2026-02-30:totals", /* no such day */
        "veil:{3}:d::2026-02-28:totals",            /* no site */
        "veil:{3}:rt:example.com:29000000",
        "veil:{3}:sessions",
        "veil:{3}:m:example.com:2026-02:totals",
        "veil:{3}:d:example.com:2026-02-28:",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        cr_expect_eq(twin(none[i], out, sizeof out, &day), 0, "%s", none[i]);
    /* too small a buffer: no twin rather than a cut name */
    cr_expect_eq(twin("veil:{3}:d:example.com:2026-02-28:totals", out, 20, &day), 0);
}

Test(months, dims_with_twins)
{
    cr_expect(months_dim_mirrored("page"));
    cr_expect(months_dim_mirrored("source"));
    cr_expect(months_dim_mirrored("goal"));
    cr_expect(!months_dim_mirrored("prop:plan"));
    cr_expect(!months_dim_mirrored("prop_key"));
}

Test(months, expiry_is_the_last_days)
{
    char err[64];
    period_day feb10, feb28, leap, dec31;
    cr_assert(period_parse_day("2026-02-10", 10, &feb10, err, sizeof err));
    cr_assert(period_parse_day("2026-02-28", 10, &feb28, err, sizeof err));
    cr_assert(period_parse_day("2028-02-03", 10, &leap, err, sizeof err));
    cr_assert(period_parse_day("2026-12-31", 10, &dec31, err, sizeof err));
    cr_expect_eq(months_span_first(MONTHS_MONTH, feb28), feb10 - 9);
    cr_expect_eq(months_span_last(MONTHS_MONTH, feb10), feb28);
    cr_expect_eq(months_span_last(MONTHS_MONTH, leap), leap + 26); /* 2028-02-29 */
    cr_expect_eq(months_span_last(MONTHS_MONTH, dec31), dec31);
    cr_expect_eq(months_expire_at(MONTHS_MONTH, feb10, 1000), 1000 + 18 * 86400);
    cr_expect_eq(months_expire_at(MONTHS_MONTH, feb28, 1000), 1000);
}
