/* test_rollup.c - batch combining and key naming (aggregator/rollup.c):
 * totals, breakdown rows and their distinct visitors, source/region/
 * browser-version derivation, measurement events, session hits and their
 * order, rejection of unusable events, expiry arithmetic and every key
 * name of docs/KEYS.md. Pure C: no Redis. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "rollup.h"
#include "util.h"

#define SET(dst, text) cr_assert(str_copy((dst), sizeof(dst), (text), strlen(text)))
#define DAY "2024-05-01"
#define NOW 1714567890 /* 2024-05-01T12:51:30Z */
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

TestSuite(rollup, .init = setup, .fini = teardown);
TestSuite(rollup_keys);

static void base_event(struct event_record *ev, const char *name, const char *path,
                       const char *visitor, int64_t ts)
{
    event_record_init(ev);
    SET(ev->site, "example.com");
    SET(ev->day, DAY);
    SET(ev->name, name);
    SET(ev->path, path);
    SET(ev->visitor, visitor);
    ev->ts = ts;
}

static void add_ok(const struct event_record *ev)
{
    char err[128] = "";
    cr_assert_eq(rollup_add(r, ev, NOW, err, sizeof err), ROLLUP_ADDED, "%s", err);
}

static const struct rollup_row *row(const char *dim, const char *value)
{
    return rollup_find_row(r, "example.com", DAY, dim, value);
}

static const struct rollup_day *today(void)
{
    const struct rollup_day *d = rollup_find_day(r, "example.com", DAY);
    cr_assert_not_null(d);
    return d;
}

/* ---- key names ---- */

Test(rollup_keys, names_follow_keys_md)
{
    char k[512];
    cr_assert(rollup_key_stream(k, sizeof k, ROLLUP_SHARD_PREFIX));
    cr_assert_str_eq(k, "veil:{0}:events");
    cr_assert(rollup_key_sites(k, sizeof k, ROLLUP_SHARD_PREFIX));
    cr_assert_str_eq(k, "veil:{0}:sites");
    cr_assert(rollup_key_day(k, sizeof k, ROLLUP_SHARD_PREFIX, "example.com", DAY, "totals"));
    cr_assert_str_eq(k, "veil:{0}:d:example.com:2024-05-01:totals");
    cr_assert(rollup_key_day(k, sizeof k, ROLLUP_SHARD_PREFIX, "example.com", DAY, ""));
    cr_assert_str_eq(k, "veil:{0}:d:example.com:2024-05-01:");
    cr_assert(rollup_key_breakdown(k, sizeof k, ROLLUP_SHARD_PREFIX, "example.com", DAY,
                                   "prop:plan", "vis"));
    cr_assert_str_eq(k, "veil:{0}:d:example.com:2024-05-01:b:prop:plan:vis");
    cr_assert(rollup_key_row_visitors(k, sizeof k, ROLLUP_SHARD_PREFIX, "example.com", DAY,
                                      "page", "/a b"));
    cr_assert_str_eq(k, "veil:{0}:d:example.com:2024-05-01:u:page:/a b");
    cr_assert(rollup_key_session(k, sizeof k, "example.com", VA));
    cr_assert_str_eq(k, "example.com:00000000000000aa", "the checkpoint field of a visit");
    cr_assert(rollup_key_realtime(k, sizeof k, "veil:{7}:", "example.com"));
    cr_assert_str_eq(k, "veil:{7}:rt:example.com:", "the minute follows");
}

Test(rollup_keys, names_report_truncation)
{
    char k[16];
    cr_assert_not(rollup_key_day(k, sizeof k, ROLLUP_SHARD_PREFIX, "example.com", DAY,
                                 "totals"));
}

Test(rollup_keys, expiry_is_end_of_day_plus_retention)
{
    cr_assert_eq(rollup_day_expire_at("1970-01-01", 0), 86400);
    /* 2024-05-01T00:00:00Z = 1714521600 */
    cr_assert_eq(rollup_day_expire_at(DAY, 730), 1714521600LL + 86400LL * 731);
    cr_assert_eq(rollup_day_expire_at("2024-02-29", 1), 1709164800LL + 2 * 86400);
    cr_assert_eq(rollup_day_expire_at("2000-02-29", 0), 951782400LL + 86400);
    cr_assert_eq(rollup_day_expire_at("2023-02-29", 1), -1);
    cr_assert_eq(rollup_day_expire_at("1900-02-29", 1), -1);
    cr_assert_eq(rollup_day_expire_at("2024-04-31", 1), -1);
    cr_assert_eq(rollup_day_expire_at("2024-13-01", 1), -1);
    cr_assert_eq(rollup_day_expire_at("2024-00-10", 1), -1);
    cr_assert_eq(rollup_day_expire_at("2024-5-01", 1), -1);
    cr_assert_eq(rollup_day_expire_at("2024-05-011", 1), -1);
    cr_assert_eq(rollup_day_expire_at("+024-05-01", 1), -1);
    cr_assert_eq(rollup_day_expire_at("", 1), -1);
}

Test(rollup_keys, site_validity)
{
    cr_assert(rollup_site_valid("example.com"));
    cr_assert(rollup_site_valid("xn--bcher-kva.example"));
    cr_assert_not(rollup_site_valid(""));
    cr_assert_not(rollup_site_valid("a:b"));
    cr_assert_not(rollup_site_valid("a b"));
    cr_assert_not(rollup_site_valid("a\tb"));
    cr_assert_not(rollup_site_valid("a\x7f"));
}

/* ---- combining ---- */

Test(rollup, totals_count_pageviews_events_engagement_and_scroll)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/", VA, NOW);
    add_ok(&ev);
    base_event(&ev, "pageview", "/pricing", VB, NOW + 1);
    ev.scroll_depth = 100;
    add_ok(&ev);
    base_event(&ev, "signup", "/pricing", VB, NOW + 2);
    add_ok(&ev);
    base_event(&ev, "engagement", "/pricing", VB, NOW + 3);
    ev.engaged_ms = 4200;
    ev.scroll_depth = 45;
    add_ok(&ev);
    base_event(&ev, "scroll", "/", VA, NOW + 4);
    ev.scroll_depth = 9;
    add_ok(&ev);

    const struct rollup_day *d = today();
    cr_assert_eq(rollup_nevents(r), 5);
    cr_assert_eq(d->totals[ROLLUP_T_PAGEVIEWS], 2);
    cr_assert_eq(d->totals[ROLLUP_T_EVENTS], 3, "measurement events are not events");
    cr_assert_eq(d->totals[ROLLUP_T_ENGAGED_MS], 4200);
    cr_assert_eq(d->totals[ROLLUP_T_ENGAGED_N], 1);
    cr_assert_eq(d->totals[ROLLUP_T_SCROLL_SUM], 154);
    cr_assert_eq(d->totals[ROLLUP_T_SCROLL_N], 3);
    cr_assert_eq(d->scroll[0], 1);
    cr_assert_eq(d->scroll[4], 1);
    cr_assert_eq(d->scroll[10], 1);
    cr_assert_eq(d->scroll[1] + d->scroll[5] + d->scroll[9], 0);
    cr_assert_eq(d->nvisitors, 2, "distinct visitors of the day");
    cr_assert_str_eq(d->site, "example.com");
    cr_assert_str_eq(d->base, "veil:{0}:d:example.com:2024-05-01:");
    cr_assert_eq(d->expire_at, rollup_day_expire_at(DAY, 730));
    cr_assert_null(row("name", "engagement"), "measurement events make no rows");
    cr_assert_null(row("name", "scroll"));
    cr_assert_eq(row("name", "signup")->ev, 1);
    cr_assert_eq(row("name", "signup")->pv, 0);
    cr_assert_eq(row("name", "pageview")->pv, 2);
    cr_assert_str_eq(rollup_total_field(ROLLUP_T_ENGAGED_N), "engaged_n");
}

Test(rollup, rows_count_pageviews_events_and_distinct_visitors)
{
    struct event_record ev;
    for (int i = 0; i < 3; i++) {
        base_event(&ev, "pageview", "/docs", VA, NOW + i);
        add_ok(&ev);
    }
    base_event(&ev, "download", "/docs", VB, NOW + 5);
    add_ok(&ev);
    base_event(&ev, "pageview", "/", "", NOW + 6);
    add_ok(&ev);

    const struct rollup_row *docs = row("page", "/docs");
    cr_assert_not_null(docs);
    cr_assert_eq(docs->pv, 3);
    cr_assert_eq(docs->ev, 4);
    cr_assert_eq(docs->nvisitors, 2, "each visitor once");
    cr_assert_str_eq(rollup_visitor(r, docs->visitors[0]), VA);
    cr_assert_str_eq(rollup_visitor(r, docs->visitors[1]), VB);
    cr_assert_str_eq(docs->dim, "page");
    cr_assert_str_eq(docs->value, "/docs");
    const struct rollup_row *root = row("page", "/");
    cr_assert_eq(root->pv, 1);
    cr_assert_eq(root->nvisitors, 0, "no visitor hash, no visitor");
    cr_assert_eq(today()->nvisitors, 2);

    size_t n;
    const struct rollup_row *rows = rollup_rows(r, &n);
    cr_assert_str_eq(rows[0].dim, "page", "rows in first-seen order");
    cr_assert_str_eq(rows[0].value, "/docs");
}

Test(rollup, source_is_referrer_then_utm_source_then_direct)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.referrer, "news.example");
    SET(ev.utm_source, "letter");
    add_ok(&ev);
    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.utm_source, "letter");
    SET(ev.utm_medium, "email");
    SET(ev.utm_campaign, "may");
    add_ok(&ev);
    base_event(&ev, "pageview", "/", VA, NOW);
    add_ok(&ev);

    cr_assert_eq(row("source", "news.example")->pv, 1);
    cr_assert_eq(row("source", "letter")->pv, 1);
    cr_assert_eq(row("source", ROLLUP_DIRECT)->pv, 1);
    cr_assert_eq(row("utm_source", "letter")->pv, 2);
    cr_assert_eq(row("utm_medium", "email")->pv, 1);
    cr_assert_eq(row("utm_campaign", "may")->pv, 1);
    cr_assert_null(row("utm_medium", ""), "empty utm values make no row");
    cr_assert(row("source", "letter")->visitors_at_visit);
    cr_assert_eq(row("source", "letter")->nvisitors, 0,
                 "acquisition rows get their visitors per visit, in the script");
    cr_assert_not(row("page", "/")->visitors_at_visit);
}

Test(rollup, geo_and_device_dimensions)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.country, "DE");
    SET(ev.region, "BY");
    SET(ev.city, "Munich");
    SET(ev.browser, "Firefox");
    SET(ev.browser_major, "126");
    SET(ev.os, "Linux");
    ev.device = DEVICE_DESKTOP;
    SET(ev.screen, "laptop");
    add_ok(&ev);
    base_event(&ev, "pageview", "/", VB, NOW);
    SET(ev.region, "BY"); /* no country: a region code alone is ambiguous */
    SET(ev.browser, "Safari");
    add_ok(&ev);

    cr_assert_eq(row("country", "DE")->pv, 1);
    cr_assert_eq(row("region", "DE-BY")->pv, 1);
    cr_assert_null(row("region", "BY"));
    cr_assert_null(row("region", "-BY"));
    cr_assert_eq(row("city", "Munich")->pv, 1);
    cr_assert_eq(row("browser", "Firefox")->pv, 1);
    cr_assert_eq(row("browser_version", "Firefox 126")->pv, 1);
    cr_assert_eq(row("browser", "Safari")->pv, 1);
    cr_assert_null(row("browser_version", "Safari "));
    cr_assert_eq(row("os", "Linux")->pv, 1);
    cr_assert_eq(row("device", "desktop")->pv, 1);
    cr_assert_null(row("device", "unknown"), "unknown device makes no row");
    cr_assert_eq(row("screen", "laptop")->pv, 1);
}

Test(rollup, props_make_key_and_value_rows)
{
    struct event_record ev;
    base_event(&ev, "signup", "/join", VA, NOW);
    SET(ev.props[0].key, "plan");
    SET(ev.props[0].value, "pro");
    SET(ev.props[1].key, "seats");
    SET(ev.props[1].value, "5");
    ev.nprops = 2;
    add_ok(&ev);
    base_event(&ev, "signup", "/join", VB, NOW);
    SET(ev.props[0].key, "plan");
    SET(ev.props[0].value, "free");
    ev.nprops = 1;
    add_ok(&ev);

    cr_assert_eq(row("prop_key", "plan")->ev, 2);
    cr_assert_eq(row("prop_key", "seats")->ev, 1);
    cr_assert_eq(row("prop:plan", "pro")->ev, 1);
    cr_assert_eq(row("prop:plan", "free")->ev, 1);
    cr_assert_eq(row("prop:seats", "5")->ev, 1);
    cr_assert_eq(row("prop:plan", "free")->nvisitors, 1);
    cr_assert_str_eq(rollup_visitor(r, row("prop:plan", "free")->visitors[0]), VB);
}

Test(rollup, hits_are_per_visitor_in_time_order)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/b", VB, NOW + 10);
    add_ok(&ev);
    base_event(&ev, "pageview", "/a2", VA, NOW + 20);
    add_ok(&ev);
    base_event(&ev, "pageview", "/a1", VA, NOW + 5);
    SET(ev.referrer, "search.example");
    SET(ev.country, "FR");
    add_ok(&ev);
    base_event(&ev, "engagement", "/a1", VA, NOW + 20);
    ev.engaged_ms = 10;
    add_ok(&ev);
    base_event(&ev, "pageview", "/anon", "", NOW);
    add_ok(&ev);
    rollup_finish(r);

    size_t nhits, nsessions;
    const struct rollup_hit *h = rollup_hits(r, &nhits);
    const struct rollup_session *s = rollup_sessions(r, &nsessions);
    cr_assert_eq(nhits, 4, "events without a visitor hash have no session");
    cr_assert_eq(nsessions, 2);
    cr_assert_str_eq(s[0].key, "example.com:" VB);
    cr_assert_str_eq(s[0].site, "example.com");
    cr_assert_str_eq(s[0].realtime_key, "veil:{0}:rt:example.com:");
    cr_assert_str_eq(rollup_visitor(r, s[1].visitor), VA);
    /* session 0 (VB) first, then VA's hits by ts, ties by arrival */
    cr_assert_eq(h[0].session, 0);
    cr_assert_eq(h[1].session, 1);
    cr_assert_eq(h[1].ts, NOW + 5);
    cr_assert_str_eq(h[1].visit[ROLLUP_V_ENTRY_PAGE], "/a1");
    cr_assert_str_eq(h[1].visit[ROLLUP_V_SOURCE], "search.example");
    cr_assert_str_eq(h[1].visit[ROLLUP_V_COUNTRY], "FR");
    cr_assert_str_eq(h[1].visit[ROLLUP_V_CITY], "");
    cr_assert(h[1].pageview);
    cr_assert_eq(h[2].ts, NOW + 20);
    cr_assert_str_eq(h[2].visit[ROLLUP_V_ENTRY_PAGE], "/a2");
    cr_assert_str_eq(h[2].visit[ROLLUP_V_SOURCE], ROLLUP_DIRECT);
    cr_assert_eq(h[3].ts, NOW + 20);
    cr_assert_not(h[3].pageview);
    cr_assert_str_eq(h[3].visit[ROLLUP_V_ENTRY_PAGE], "", "measurements carry no visit values");
    cr_assert_str_eq(rollup_visit_dim_name(ROLLUP_V_BROWSER_VERSION), "browser_version");
}

Test(rollup, unusable_events_change_nothing)
{
    struct event_record ev;
    char err[128];

    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.site, "evil:site");
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_INVALID);
    cr_assert(strstr(err, "site"));

    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.day, "2024-02-31");
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_INVALID);

    base_event(&ev, "pageview", "/", "not-a-hash", NOW);
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_INVALID);
    base_event(&ev, "pageview", "/", "00000000000000zz", NOW);
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_INVALID);

    /* 730 days of retention: a day 800 days back has expired */
    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.day, "2022-02-20");
    cr_assert_eq(rollup_add(r, &ev, NOW, err, sizeof err), ROLLUP_EXPIRED);

    size_t n;
    rollup_days(r, &n);
    cr_assert_eq(n, 0);
    rollup_rows(r, &n);
    cr_assert_eq(n, 0);
    rollup_hits(r, &n);
    cr_assert_eq(n, 0);
    cr_assert_eq(rollup_nevents(r), 0);
}

Test(rollup, days_and_sites_are_separate)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/", VA, NOW);
    add_ok(&ev);
    base_event(&ev, "pageview", "/", VA, NOW + 86400);
    SET(ev.day, "2024-05-02");
    add_ok(&ev);
    base_event(&ev, "pageview", "/", VA, NOW);
    SET(ev.site, "other.example");
    add_ok(&ev);
    size_t n;
    rollup_days(r, &n);
    cr_assert_eq(n, 3);
    cr_assert_eq(rollup_find_row(r, "example.com", "2024-05-02", "page", "/")->pv, 1);
    cr_assert_eq(rollup_find_row(r, "other.example", DAY, "page", "/")->pv, 1);
    cr_assert_eq(row("page", "/")->pv, 1);
    rollup_sessions(r, &n);
    cr_assert_eq(n, 2, "a session is per site and visitor");
}

Test(rollup, reset_forgets_the_batch)
{
    struct event_record ev;
    base_event(&ev, "pageview", "/", VA, NOW);
    add_ok(&ev);
    rollup_reset(r);
    cr_assert_null(rollup_find_day(r, "example.com", DAY));
    cr_assert_null(row("page", "/"));
    cr_assert_eq(rollup_nevents(r), 0);
    add_ok(&ev);
    cr_assert_eq(row("page", "/")->pv, 1);
    cr_assert_eq(row("page", "/")->nvisitors, 1, "visitor sets start empty again");
    cr_assert_eq(today()->nvisitors, 1);
}

Test(rollup, large_batch_sums_are_exact)
{
    struct event_record ev;
    long long pageviews = 0;
    for (int i = 0; i < 20000; i++) {
        char path[32], vh[17];
        str_format(path, sizeof path, "/p%d", i % 37);
        str_format(vh, sizeof vh, "%016x", (unsigned)(i % 501));
        bool pv = i % 3 != 0;
        base_event(&ev, pv ? "pageview" : "click", path, vh, NOW + i % 100);
        pageviews += pv;
        add_ok(&ev);
    }
    rollup_finish(r);
    const struct rollup_day *d = today();
    cr_assert_eq(d->totals[ROLLUP_T_PAGEVIEWS], pageviews);
    cr_assert_eq(d->totals[ROLLUP_T_EVENTS], 20000);
    cr_assert_eq(d->nvisitors, 501);
    size_t n, pages = 0;
    long long ev_sum = 0, pv_sum = 0;
    size_t vis_sum = 0;
    const struct rollup_row *rows = rollup_rows(r, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].dim, "page") != 0)
            continue;
        pages++;
        ev_sum += rows[i].ev;
        pv_sum += rows[i].pv;
        vis_sum += rows[i].nvisitors;
    }
    cr_assert_eq(pages, 37);
    cr_assert_eq(ev_sum, 20000);
    cr_assert_eq(pv_sum, pageviews);
    /* visitor v visits page p iff some i = v (mod 501) = p (mod 37) below
     * 20000; 501 * 37 = 18537 <= 20000, so every pair occurs */
    cr_assert_eq(vis_sum, 501 * 37);
    const struct rollup_hit *h = rollup_hits(r, &n);
    cr_assert_eq(n, 20000);
    for (size_t i = 1; i < n; i++) {
        cr_assert(h[i - 1].session < h[i].session ||
                  (h[i - 1].session == h[i].session &&
                   (h[i - 1].ts < h[i].ts ||
                    (h[i - 1].ts == h[i].ts && h[i - 1].seq < h[i].seq))));
    }
}

/* ---- the schema table (schema.h) ---- */

#include "schema.h"

Test(rollup, schema_table_covers_every_visit_value_and_names_primary_hashes)
{
    for (int slot = 0; slot < ROLLUP_V_COUNT; slot++) {
        const struct schema_dim *d = schema_visit_dim(slot);
        cr_assert_not_null(d, "visit slot %d has no dimension", slot);
        cr_expect(d->metrics & SCHEMA_VIS, "%s is counted per visit", d->name);
        cr_expect_str_eq(rollup_visit_dim_name((enum rollup_visit_dim)slot), d->name);
    }
    cr_expect_str_eq(schema_primary_metric(schema_find("entry_page")), "vis");
    cr_expect_str_eq(schema_primary_metric(schema_find("page")), "ev");
    cr_expect_eq(schema_find("prop:plan"), schema_dim(SD_PROP));
    cr_expect_null(schema_find("nonsense"));
    cr_expect_eq(schema_find("source")->visitors, SCHEMA_U_PER_VISIT);
    cr_expect_eq(schema_find("country")->visitors, SCHEMA_U_PER_VISITOR);
    cr_expect_eq(schema_find("screen")->visitors, SCHEMA_U_PER_EVENT, "a window can change");
    /* no row visitors where nothing published needs them */
    for (int i = 0; i < SD__COUNT; i++) {
        const struct schema_dim *d = schema_dim((enum schema_dim_id)i);
        if (!d->property)
            cr_expect_eq(d->visitors, SCHEMA_U_NONE, "%s has row visitors nobody reads",
                         d->name);
    }
}
