/* test_it_aggregator_timezone.c - a site in Tokyo (UTC+9, set with the
 * real veil-admin) around its local midnight: the real veil-aggregator
 * counts each event on the site's local day and hour (not the collector's
 * UTC day), a visit on the day and hour it started, and the stats API
 * answers `interval=hour` and the site's local "today". Then the zone is
 * changed: events counted from then on use the new zone, the days already
 * counted keep theirs. Exact numbers throughout. */
#include <criterion/criterion.h>

#include "aggregator_env.h"
#include "period.h"
#include "tzfile.h"

#define TOKEN "timezone-test-token-0123456789"
#include "aggregator_api.h"

TestSuite(aggregator_timezone, .fini = teardown);

static void veil_admin(struct env *e, char *verb, char *zone)
{
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/admin-%s.out", e->dir, verb);
    char *argv[] = {"veil-admin", redis, "site", verb, SITE, "--timezone", zone,
                    NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "veil-admin site %s failed", verb);
}

/* A page view at ts, with the collector's UTC day. */
static void pageview(struct env *e, const char *visitor, const char *path, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, "pageview", path, visitor, ts);
    period_format_day((period_day)(ts / 86400), ev.day);
    xadd(e->rc, &ev);
}

static long long day_hget(struct env *e, const char *day, const char *suffix, const char *field)
{
    redisReply *r = cmd(e->rc, "HGET %sd:%s:%s:%s %s", KP, SITE, day, suffix, field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

Test(aggregator_timezone, local_days_and_hours_around_midnight, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    veil_admin(e, "add", "Asia/Tokyo");
    /* yesterday (UTC): 14:30 and 14:50 UTC are 23:30 and 23:50 in Tokyo on
     * day D; 15:10 and 15:30 UTC are 00:10 and 00:30 on D + 1 */
    const int64_t base = (e->now / 86400 - 1) * 86400;
    const period_day D = (period_day)(base / 86400);
    char d0[11], d1[11], path[300];
    period_format_day(D, d0);
    period_format_day(D + 1, d1);
    pageview(e, VA, "/late", base + 14 * 3600 + 30 * 60);   /* D 23:30, a bounce */
    pageview(e, VB, "/", base + 14 * 3600 + 50 * 60);       /* D 23:50, starts a visit */
    pageview(e, VB, "/next", base + 15 * 3600 + 10 * 60);   /* D+1 00:10, same visit */
    pageview(e, VC, "/", base + 15 * 3600 + 30 * 60);       /* D+1 00:30, a bounce */

    int port = harness_free_port();
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    /* the local day D: A, and B's visit (counted where it started) */
    cr_expect_eq(day_hget(e, d0, "totals", "pageviews"), 2, "not the 4 of the UTC day");
    cr_expect_eq(day_hget(e, d0, "totals", "visits"), 2);
    cr_expect_eq(day_hget(e, d0, "totals", "bounces"), 1, "B's second page undid its bounce");
    cr_expect_eq(day_hget(e, d0, "totals", "visit_duration_s"), 1200);
    cr_expect_eq(day_hget(e, d0, "hours", "23:pageviews"), 2);
    cr_expect_eq(day_hget(e, d0, "hours", "23:visits"), 2);
    cr_expect_eq(day_hget(e, d0, "hours", "23:bounces"), 1);
    cr_expect_eq(day_hget(e, d0, "hours", "23:visit_duration_s"), 1200);
    cr_expect_eq(day_hget(e, d0, "hours", "14:pageviews"), 0, "no UTC hours");
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:hv:23", KP, SITE, d0), 2);
    /* D + 1: B's second page and C */
    cr_expect_eq(day_hget(e, d1, "totals", "pageviews"), 2);
    cr_expect_eq(day_hget(e, d1, "totals", "visits"), 1);
    cr_expect_eq(day_hget(e, d1, "hours", "00:pageviews"), 2);
    cr_expect_eq(day_hget(e, d1, "hours", "00:visits"), 1);
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:hv:00", KP, SITE, d1), 2);
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:visitors", KP, SITE, d1), 2);

    /* the API: an hourly timeseries of D + 1, the aggregate of D */
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews,visits",
               d1);
    char *body = api(port, path, 200);
    char want[200];
    str_format(want, sizeof want,
               "{\"date\": \"%s 00:00:00\", \"visitors\": 2, \"pageviews\": 2, \"visits\": 1}", d1);
    expect_has(body, want);
    str_format(want, sizeof want,
               "{\"date\": \"%s 23:00:00\", \"visitors\": 0, \"pageviews\": 0, \"visits\": 0}", d1);
    expect_has(body, want);
    free(body);
    str_format(path, sizeof path,
               "/api/v1/stats/aggregate?site_id=" SITE "&period=day&date=%s"
               "&metrics=visitors,pageviews,visits,bounce_rate,visit_duration",
               d0);
    body = api(port, path, 200);
    expect_has(body, "\"pageviews\": {\"value\": 2}");
    expect_has(body, "\"bounce_rate\": {\"value\": 50}");
    expect_has(body, "\"visit_duration\": {\"value\": 600}");
    free(body);
    /* "today" is Tokyo's today */
    int32_t today;
    int hour;
    tz_local(tz_get("Asia/Tokyo"), time(NULL), &today, &hour);
    char t[11];
    period_format_day(today, t);
    body = api(port, "/api/v1/stats/aggregate?site_id=" SITE "&period=day", 200);
    str_format(want, sizeof want, "\"date_range\": [\"%s\", \"%s\"]", t, t);
    expect_has(body, want);
    free(body);
    /* an hourly range is bounded */
    char *bad = NULL;
    cr_expect_eq(harness_http(port, "GET",
                              "/api/v1/stats/timeseries?site_id=" SITE
                              "&period=custom&date=2026-01-01,2026-03-01&interval=hour",
                              "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &bad, NULL),
                 400);
    cr_expect(bad && strstr(bad, "interval: hour covers at most 31 days"), "%s", bad);
    free(bad);
    agg_stop_ok(agg);

    /* the zone changes to UTC: counted from then on in UTC, D keeps its counts */
    veil_admin(e, "set", "Etc/UTC");
    pageview(e, VD, "/after", base + 15 * 3600 + 40 * 60); /* UTC D 15:40 (Tokyo D+1) */
    agg = agg_spawn(e, extra);
    wait_drained(e, 15000);
    cr_expect_eq(day_hget(e, d0, "totals", "pageviews"), 3, "the new event on the UTC day");
    cr_expect_eq(day_hget(e, d0, "hours", "15:pageviews"), 1, "in its UTC hour");
    cr_expect_eq(day_hget(e, d0, "hours", "23:pageviews"), 2, "the Tokyo hours stay");
    cr_expect_eq(day_hget(e, d1, "totals", "pageviews"), 2);
    agg_stop_ok(agg);
}
