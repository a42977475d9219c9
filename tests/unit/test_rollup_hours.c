/* test_rollup_hours.c - one batch's rows by local hour
 * (aggregator/rollup_hours.c through rollup.c) and the hourly dimensions
 * (aggregator/hourly.c): page views, events and distinct visitors per
 * (row, hour) for the main dimensions only, none for the others, visitors
 * of per-visit dimensions left to the plan. Pure C: no Redis. */
#include <criterion/criterion.h>
#include <string.h>

#include "event.h"
#include "hourly.h"
#include "rollup.h"
#include "rollup_hours.h"
#include "util.h"

#define SET(dst, text) cr_assert(str_copy((dst), sizeof(dst), (text), strlen(text)))
#define DAY "2024-05-01"
#define NOW 1714600000           /* 2024-05-01T21:46:40Z */
#define H09 (1714521600 + 9 * 3600) /* 2024-05-01T09:00:00Z */
#define VA "00000000000000aa"
#define VB "00000000000000bb"

static struct rollup *r;

static void setup(void)
{
    r = rollup_new(ROLLUP_SHARD_PREFIX, 730);
}

static void teardown(void)
{
    rollup_free(r);
}

TestSuite(rollup_hours, .init = setup, .fini = teardown);

static void add(const char *name, const char *path, const char *visitor, const char *country,
                int64_t ts)
{
    struct event_record ev;
    event_record_init(&ev);
    SET(ev.site, "example.com");
    SET(ev.day, DAY);
    SET(ev.name, name);
    SET(ev.path, path);
    SET(ev.visitor, visitor);
    SET(ev.country, country);
    ev.ts = ts;
    char err[128] = "";
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_ADDED, "%s", err);
}

/* The hour row of (dim, value) in `hour`, or NULL. */
static const struct rollup_hour_row *hour_row(const char *dim, const char *value, unsigned hour)
{
    size_t n, nrows;
    const struct rollup_hour_row *hrs = rollup_hour_rows(r, &n);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    for (size_t i = 0; i < n; i++) {
        const struct rollup_row *row = &rows[hrs[i].row];
        if (hrs[i].hour == hour && !strcmp(row->dim, dim) && !strcmp(row->value, value))
            return &hrs[i];
    }
    return NULL;
}

Test(rollup_hours, rows_split_by_local_hour_with_distinct_visitors)
{
    add("pageview", "/", VA, "DE", H09 + 60);
    add("pageview", "/", VA, "DE", H09 + 120);  /* same visitor, same hour */
    add("pageview", "/", VB, "DE", H09 + 180);
    add("signup", "/", VB, "DE", H09 + 240);    /* an event, not a page view */
    add("pageview", "/", VA, "DE", H09 + 3600); /* the next hour */
    add("engagement", "/", VA, "DE", H09 + 3700); /* a measurement: no row */

    const struct rollup_hour_row *p9 = hour_row("page", "/", 9);
    cr_assert_not_null(p9);
    cr_expect_eq(p9->pv, 3);
    cr_expect_eq(p9->ev, 4);
    cr_expect_eq(p9->nvisitors, 2, "A once, B once");
    const struct rollup_hour_row *p10 = hour_row("page", "/", 10);
    cr_assert_not_null(p10);
    cr_expect_eq(p10->pv, 1);
    cr_expect_eq(p10->ev, 1, "the engagement beacon is not an event");
    cr_expect_eq(p10->nvisitors, 1);

    /* a per-visitor dimension: a mask per visitor and hour, same numbers */
    const struct rollup_hour_row *c9 = hour_row("country", "DE", 9);
    cr_assert_not_null(c9);
    cr_expect_eq(c9->ev, 4);
    cr_expect_eq(c9->nvisitors, 2);
    cr_expect_eq(hour_row("country", "DE", 10)->nvisitors, 1);

    /* per-visit dimensions: counts here, visitors when the visit starts (plan) */
    const struct rollup_hour_row *s9 = hour_row("source", "Direct / None", 9);
    cr_assert_not_null(s9);
    cr_expect_eq(s9->pv, 3);
    cr_expect_eq(s9->nvisitors, 0);

    /* not a main dimension: daily rows only */
    cr_expect_null(hour_row("name", "signup", 9));

    /* the site's hours are counted too, and reset empties the hour rows */
    const struct rollup_day *d = rollup_find_day(r, "example.com", DAY);
    cr_expect_eq(d->hour_ev[9], 4);
    rollup_reset(r);
    size_t n;
    rollup_hour_rows(r, &n);
    cr_expect_eq(n, 0);
}

Test(rollup_hours, the_hourly_dimensions)
{
    cr_expect(hourly_dim_name("page"));
    cr_expect(hourly_dim_name("source"));
    cr_expect(hourly_dim_name("goal"));
    cr_expect(!hourly_dim_name("city"));
    cr_expect(!hourly_dim_name("prop:plan"));
    cr_expect(!hourly_dim_name("nothing"));
    cr_expect(strstr(hourly_properties(), "visit:source") != NULL);
    cr_expect(strstr(hourly_properties(), "visit:city") == NULL);
    char buf[64];
    cr_assert(hourly_visitors_prefix(buf, sizeof buf, "page", 7));
    cr_expect_str_eq(buf, "hu:page:07:");
    cr_assert(hourly_hash_suffix(buf, sizeof buf, "source"));
    cr_expect_str_eq(buf, "hb:source");
    char f[9];
    hourly_field_prefix(f, 23, "vis");
    cr_expect_str_eq(f, "23:vis:");
    cr_expect(!hourly_visitors_prefix(buf, 8, "page", 7), "too small");
}
