/* test_it_aggregator_months.c - month roll-ups (docs/AGGREGATOR.md "Month
 * roll-ups"): the real veil-aggregator counts three local months of a site
 * in New York (UTC-5/-4), events around its local midnight included, and
 * the stats API with month keys (--month_rollups=on, the default) answers
 * byte for byte what the same API on day keys only (--month_rollups=off
 * --week_rollups=off --quarter_rollups=off) answers: aggregates, timeseries by day, week and month, breakdowns and a
 * filter, over ranges that cross month boundaries and do not start on a
 * month's first day. Then:
 *  - the month path really reads month and week keys (a day key changed
 *    behind the aggregator's back changes the day path's answer only);
 *  - a late event for a month already asked about reaches its month keys,
 *    and both paths agree again;
 *  - a month partly counted without roll-ups (an upgrade) is read from
 *    its days, so the answers stay exact;
 *  - month and week keys expire with the last day of their span. */
#include <criterion/criterion.h>

#include "aggregator_env.h"
#include "months.h"
#include "period.h"
#include "tzfile.h"

#define TOKEN "months-test-token-0123456789"
#define ZONE "America/New_York"

TestSuite(aggregator_months, .fini = teardown);

static void site_zone(struct env *e)
{
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/admin.out", e->dir);
    char *argv[] = {"veil-admin", redis, "site", "add", SITE, "--timezone", ZONE, NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "veil-admin site add failed");
}

static void event(struct env *e, const char *visitor, const char *path, const char *ref,
                  const char *cc, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, "pageview", path, visitor, ts);
    period_format_day((period_day)(ts / 86400), ev.day);
    if (ref)
        SET(ev.referrer, ref);
    SET(ev.country, cc);
    xadd_append(e->rc, &ev);
}

/* A few visits on UTC day d: a visitor seen every day (unions over days
 * count it once), two of the day, one at 23:30 in New York (the next UTC
 * day). n events appended (replies read by the caller). */
static int day_events(struct env *e, period_day d)
{
    int64_t t = (int64_t)d * 86400;
    char v1[17], v2[17];
    str_format(v1, sizeof v1, "%016llx", 0x1000ULL + (unsigned long long)d);
    str_format(v2, sizeof v2, "%016llx", 0x2000000ULL + (unsigned long long)d);
    const char *pages[] = {"/", "/a", "/b", "/c"};
    event(e, VA, "/", "news.example.org", "DE", t + 15 * 3600);
    event(e, VA, pages[d % 4], NULL, "DE", t + 15 * 3600 + 120);
    event(e, v1, pages[(d + 1) % 4], d % 3 ? "search.example.net" : NULL, "FR", t + 16 * 3600);
    event(e, v2, "/b", NULL, d % 2 ? "US" : "DE", t + 4 * 3600 + 30 * 60);
    event(e, v2, "/c", NULL, d % 2 ? "US" : "DE", t + 4 * 3600 + 50 * 60);
    return 5;
}

static void days_events(struct env *e, period_day from, period_day to)
{
    int n = 0;
    for (period_day d = from; d <= to; d++)
        n += day_events(e, d);
    for (int i = 0; i < n; i++)
        xadd_reply(e->rc);
}

static char *get(int port, const char *path)
{
    char *body = NULL;
    int code = harness_http(port, "GET", path, "Authorization: Bearer " TOKEN "\r\n", NULL, 0,
                            &body, NULL);
    cr_assert_eq(code, 200, "%s -> %d %s", path, code, body ? body : "");
    return body;
}

/* Both APIs answer `path` identically; returns the answer (to free). */
static char *same(int months_port, int days_port, const char *path)
{
    char *a = get(months_port, path), *b = get(days_port, path);
    cr_expect_str_eq(a, b, "month path and day path differ for %s", path);
    free(b);
    return a;
}

static void day_str(period_day d, char out[11])
{
    period_format_day(d, out);
}

/* The queries compared, for a range [from, to] (local days) that crosses
 * month boundaries. */
static void compare_all(int pm, int pd, period_day from, period_day to)
{
    char a[11], z[11], path[600];
    day_str(from, a);
    day_str(to, z);
    const char *periods[] = {"period=12mo", "period=6mo", "period=30d", "period=month", NULL};
    const char *queries[] = {
        "/api/v1/stats/aggregate?site_id=" SITE "&%s"
        "&metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration",
        "/api/v1/stats/timeseries?site_id=" SITE "&%s&metrics=visitors,pageviews,visits",
        "/api/v1/stats/timeseries?site_id=" SITE "&%s&metrics=visitors,pageviews&interval=week",
        "/api/v1/stats/timeseries?site_id=" SITE "&%s&metrics=visitors,pageviews&interval=month",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=event:page&metrics=visitors,pageviews",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=visit:source"
        "&metrics=visitors,visits,bounce_rate,visit_duration",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=visit:country&metrics=visitors",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=visit:entry_page&metrics=visitors",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=visit:exit_page"
        "&metrics=visitors,visits,bounce_rate,visit_duration",
        "/api/v1/stats/aggregate?site_id=" SITE "&%s&metrics=visitors,pageviews"
        "&filters=visit:country%%3D%%3DDE",
        "/api/v1/stats/timeseries?site_id=" SITE "&%s&metrics=visitors,pageviews&interval=month"
        "&filters=event:page%%3D%%3D/a%%7C/b",
        "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=visit:country&metrics=visitors"
        "&filters=visit:country%%3D%%3DDE%%7CUS",
        NULL};
    char custom[64];
    str_format(custom, sizeof custom, "period=custom&date=%s,%s", a, z);
    for (int q = 0; queries[q]; q++) {
        str_format(path, sizeof path, queries[q], custom);
        free(same(pm, pd, path));
        for (int p = 0; periods[p]; p++) {
            str_format(path, sizeof path, queries[q], periods[p]);
            free(same(pm, pd, path));
        }
    }
}

static struct harness_proc *api_spawn(struct env *e, int port, bool months)
{
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1",
                     months ? "--month_rollups=on" : "--month_rollups=off",
                     months ? "--week_rollups=on" : "--week_rollups=off",
                     months ? "--quarter_rollups=on" : "--quarter_rollups=off", NULL};
    struct harness_proc *p = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    return p;
}

static long long month_field(struct env *e, period_day month, const char *field)
{
    char m[11];
    day_str(month, m);
    m[7] = '\0';
    redisReply *r = cmd(e->rc, "HGET %sm:%s:%s:totals %s", KP, SITE, m, field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static long long days_field(struct env *e, period_day first, period_day last, const char *field)
{
    long long sum = 0;
    for (period_day d = first; d <= last; d++) {
        char s[11];
        day_str(d, s);
        redisReply *r = cmd(e->rc, "HGET %sd:%s:%s:totals %s", KP, SITE, s, field);
        sum += r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        freeReplyObject(r);
    }
    return sum;
}

Test(aggregator_months, month_and_day_paths_agree, .timeout = 240)
{
    env_start(&env);
    struct env *e = &env;
    site_zone(e);
    int32_t today;
    int hour;
    tz_local(tz_get(ZONE), time(NULL), &today, &hour);
    /* three local months: M2 (two months ago), M1 and this month up to
     * yesterday (UTC days a little wider: the zone moves some events to
     * the previous local day) */
    period_day m0 = months_span_first(MONTHS_MONTH, today), m1 = months_span_first(MONTHS_MONTH, m0 - 1), m2 = months_span_first(MONTHS_MONTH, m1 - 1);
    period_day yesterday = (period_day)(e->now / 86400) - 1;

    /* an upgrade: the first ten days of M1 are counted without month
     * roll-ups, everything else with them */
    days_events(e, m1 + 1, m1 + 9); /* (m1's own evening events fall on M2's last day) */
    struct harness_proc *old =
        agg_spawn(e, (char *[]){"--month_rollups=off", "--week_rollups=off",
                                "--quarter_rollups=off", NULL});
    wait_drained(e, 30000);
    agg_stop_ok(old);
    days_events(e, m2 - 2, m1);
    days_events(e, m1 + 10, yesterday);
    int pm = harness_free_port();
    struct harness_proc *a = api_spawn(e, pm, true);
    wait_drained(e, 60000);

    /* M2 is complete in its month keys, M1 is not (its first days lack) */
    cr_assert_gt(month_field(e, m2, "pageviews"), 0);
    cr_expect_eq(month_field(e, m2, "pageviews"), days_field(e, m2, months_span_last(MONTHS_MONTH, m2), "pageviews"));
    cr_expect_eq(month_field(e, m2, "visits"), days_field(e, m2, months_span_last(MONTHS_MONTH, m2), "visits"));
    cr_expect_lt(month_field(e, m1, "pageviews"), days_field(e, m1, months_span_last(MONTHS_MONTH, m1), "pageviews"));
    cr_expect_gt(month_field(e, m1, "pageviews"), 0);

    int pd = harness_free_port();
    struct harness_proc *b = api_spawn(e, pd, false);
    compare_all(pm, pd, m2 + 4, today - 1);

    /* the month path reads M2 from its month keys: a day key of M2 changed
     * behind the aggregator (not its totals, so M2 still checks out)
     * changes only the day path's answer */
    char d[11], path[300], range[64];
    day_str(m2 + 14, d);
    char a0[11], z0[11];
    day_str(m2, a0);
    day_str(months_span_last(MONTHS_MONTH, m2), z0);
    str_format(range, sizeof range, "period=custom&date=%s,%s", a0, z0);
    str_format(path, sizeof path,
               "/api/v1/stats/breakdown?site_id=" SITE "&%s&property=event:page&metrics=pageviews",
               range);
    char *before = same(pm, pd, path);
    cmd_int(e->rc, "HINCRBY %sd:%s:%s:b:page:pv /zz 7", KP, SITE, d);
    char *via_months = get(pm, path), *via_days = get(pd, path);
    cr_expect_str_eq(via_months, before, "the month path read day keys of a whole month");
    cr_expect(strstr(via_days, "\"page\": \"/zz\", \"pageviews\": 7") != NULL, "%s", via_days);
    free(via_months);
    free(via_days);
    free(before);
    cmd_int(e->rc, "HDEL %sd:%s:%s:b:page:pv /zz", KP, SITE, d);
    /* a range inside M2 reads its whole weeks from week keys */
    period_day w = months_span_first(MONTHS_WEEK, m2 + 3);
    if (w < m2 + 3)
        w += 7;
    day_str(w + 2, d);
    day_str(m2 + 3, a0);
    day_str(m2 + 25, z0);
    str_format(path, sizeof path,
               "/api/v1/stats/breakdown?site_id=" SITE
               "&period=custom&date=%s,%s&property=event:page&metrics=pageviews",
               a0, z0);
    before = same(pm, pd, path);
    cmd_int(e->rc, "HINCRBY %sd:%s:%s:b:page:pv /zz 7", KP, SITE, d);
    via_months = get(pm, path);
    via_days = get(pd, path);
    cr_expect_str_eq(via_months, before, "the week path read day keys of a whole week");
    cr_expect(strstr(via_days, "\"page\": \"/zz\", \"pageviews\": 7") != NULL, "%s", via_days);
    free(via_months);
    free(via_days);
    free(before);
    cmd_int(e->rc, "HDEL %sd:%s:%s:b:page:pv /zz", KP, SITE, d);
    /* ... and M1, incomplete in its month keys, from its days */
    day_str(m1 + 3, d);
    cmd_int(e->rc, "HINCRBY %sd:%s:%s:b:page:pv /zz 7", KP, SITE, d);
    day_str(m1, a0);
    day_str(months_span_last(MONTHS_MONTH, m1), z0);
    str_format(path, sizeof path,
               "/api/v1/stats/breakdown?site_id=" SITE
               "&period=custom&date=%s,%s&property=event:page&metrics=pageviews",
               a0, z0);
    char *m1_answer = same(pm, pd, path);
    cr_expect(strstr(m1_answer, "\"page\": \"/zz\", \"pageviews\": 7") != NULL, "%s", m1_answer);
    free(m1_answer);
    cmd_int(e->rc, "HDEL %sd:%s:%s:b:page:pv /zz", KP, SITE, d);

    /* a late event for a day of M2, counted by the month path's aggregator
     * alone (the day-path API stopped: it would own some shards) */
    str_format(path, sizeof path,
               "/api/v1/stats/aggregate?site_id=" SITE "&%s&metrics=pageviews,visitors", range);
    char *old_answer = same(pm, pd, path);
    agg_stop_ok(b);
    long long pv = month_field(e, m2, "pageviews");
    event(e, "00000000000000e5", "/late", NULL, "DE", (int64_t)(m2 + 20) * 86400 + 15 * 3600);
    xadd_reply(e->rc);
    wait_drained(e, 30000);
    cr_expect_eq(month_field(e, m2, "pageviews"), pv + 1, "the late event reached M2's keys");
    cr_expect_eq(month_field(e, m2, "pageviews"), days_field(e, m2, months_span_last(MONTHS_MONTH, m2), "pageviews"));
    pd = harness_free_port();
    b = api_spawn(e, pd, false);
    char *new_answer = same(pm, pd, path);
    cr_expect_str_neq(new_answer, old_answer);
    free(old_answer);
    free(new_answer);
    compare_all(pm, pd, m2 + 4, today - 1);
    compare_all(pm, pd, m2 - 1, m0 + 1);

    /* an exact-value filter reads only its rows (HMGET): a repeated value
     * counts once, an absent one adds nothing */
    char *one = get(pm, "/api/v1/stats/aggregate?site_id=" SITE
                        "&period=12mo&metrics=visitors,pageviews&filters=visit:country%3D%3DDE");
    char *twice = get(pm, "/api/v1/stats/aggregate?site_id=" SITE "&period=12mo"
                          "&metrics=visitors,pageviews&filters=visit:country%3D%3DDE%7CDE%7CZZ");
    const char *r1 = strstr(one, "\"results\""), *r2 = strstr(twice, "\"results\"");
    cr_assert(r1 && r2);
    cr_expect(strncmp(r1, r2, strcspn(r1, "}") + 1) == 0, "%s\n%s", one, twice);
    cr_expect(strstr(one, "\"pageviews\": {\"value\": 0}") == NULL, "%s", one);
    free(one);
    free(twice);

    /* a month key lives as long as its month's last day */
    char mk[11];
    day_str(m2, mk);
    mk[7] = '\0';
    day_str(months_span_last(MONTHS_MONTH, m2), d);
    long long month_exp = cmd_int(e->rc, "EXPIRETIME %sm:%s:%s:totals", KP, SITE, mk);
    long long day_exp = cmd_int(e->rc, "EXPIRETIME %sd:%s:%s:totals", KP, SITE, d);
    cr_expect_eq(month_exp, day_exp, "month key expires at %lld, its last day at %lld", month_exp,
                 day_exp);
    cr_expect_gt(month_exp, 0);
    char wk[11];
    period_day sunday = months_span_last(MONTHS_WEEK, m2 + 10);
    day_str(months_span_first(MONTHS_WEEK, m2 + 10), wk);
    day_str(sunday, d);
    cr_expect_eq(cmd_int(e->rc, "EXPIRETIME %sw:%s:%s:totals", KP, SITE, wk),
                 cmd_int(e->rc, "EXPIRETIME %sd:%s:%s:totals", KP, SITE, d));
    agg_stop_ok(b);
    agg_stop_ok(a);
}
