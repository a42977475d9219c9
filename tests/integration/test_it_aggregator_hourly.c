/* test_it_aggregator_hourly.c - hourly rows of the main breakdowns, through
 * the real veil-aggregator and its stats API: a site in Tokyo (UTC+9, set
 * with the real veil-admin) with known events around its local midnight.
 * An hourly timeseries (v1 interval=hour, v2 time:hour) under a filter on
 * a main property gives exact numbers per local hour (visitors the union
 * of the matching rows' hourly sets, visits under the hour the visit
 * started), k-anonymity withholds a filtered hour below k, v1 and v2
 * agree, and what the hourly rows cannot answer (a property without
 * them, hours counted before they existed, "(other)") is a 400 naming
 * why. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "aggregator_env.h"
#include "period.h"

#define TOKEN "hourly-test-token-0123456789"
#include "aggregator_api.h"
#define VE "00000000000000e5"

TestSuite(aggregator_hourly, .fini = teardown);

static void veil_admin(struct env *e, char *zone)
{
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/admin.out", e->dir);
    char *argv[] = {"veil-admin", redis, "site", "add", SITE, "--timezone", zone, NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "veil-admin site add failed");
}

/* A page view at ts with the collector's UTC day. */
static void pageview(struct env *e, const char *visitor, const char *path, const char *ref,
                     const char *country, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, "pageview", path, visitor, ts);
    period_format_day((period_day)(ts / 86400), ev.day);
    if (ref)
        SET(ev.referrer, ref);
    if (country)
        SET(ev.country, country);
    xadd(e->rc, &ev);
}

/* The v1 row of hour `hour` of `day` with visitors, pageviews, visits. */
static void expect_hour(const char *body, const char *day, int hour, long long visitors,
                        long long pageviews, long long visits)
{
    char want[200];
    str_format(want, sizeof want,
               "{\"date\": \"%s %02d:00:00\", \"visitors\": %lld, \"pageviews\": %lld, "
               "\"visits\": %lld}",
               day, hour, visitors, pageviews, visits);
    expect_has(body, want);
}

static char *hourly(int port, const char *day, const char *filter, int want)
{
    char path[400];
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews,visits%s%s",
               day, filter ? "&filters=" : "", filter ? filter : "");
    return api(port, path, want);
}

Test(aggregator_hourly, filtered_hours_around_local_midnight, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    veil_admin(e, "Asia/Tokyo");
    /* yesterday (UTC) 14:00-16:59 is 23:00 on day D to 01:59 on D + 1 in Tokyo */
    const int64_t base = (e->now / 86400 - 1) * 86400;
    const period_day D = (period_day)(base / 86400);
    char d0[11], d1[11], old[11];
    period_format_day(D, d0);
    period_format_day(D + 1, d1);
    period_format_day(D - 3, old);
    const int64_t h14 = base + 14 * 3600, h15 = base + 15 * 3600, h16 = base + 16 * 3600;
    pageview(e, VA, "/", "google.com", "JP", h14 + 30 * 60); /* D 23:30 */
    pageview(e, VB, "/", "google.com", "JP", h14 + 50 * 60); /* D 23:50, a visit ... */
    pageview(e, VB, "/next", NULL, "JP", h15 + 10 * 60);     /* ... on to D+1 00:10 */
    pageview(e, VC, "/", "google.de", "DE", h15 + 20 * 60);  /* D+1 00:20 */
    pageview(e, VD, "/", "google.com", "DE", h15 + 30 * 60); /* D+1 00:30 */
    pageview(e, VE, "/", "bing.com", "DE", h15 + 40 * 60);   /* D+1 00:40 */
    pageview(e, VA, "/x", "google.com", "JP", h16 + 5 * 60); /* D+1 01:05, a new visit */

    /* a day counted before hourly rows existed: site totals only */
    cmd_int(e->rc, "HSET %sd:%s:%s:hours 10:events 7 10:pageviews 7", KP, SITE, old);
    cmd_int(e->rc, "HSET %sd:%s:%s:b:source:ev Google 7", KP, SITE, old);

    int port = harness_free_port();
    char listen[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=2", refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    /* the keys: rows of the local hour, visits where they started */
    redisReply *r = cmd(e->rc, "HGET %sd:%s:%s:hb:source 00:vis:Google", KP, SITE, d1);
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "2") == 0);
    freeReplyObject(r);
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:hu:source:00:Google", KP, SITE, d1), 2);
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:hu:page:00:/", KP, SITE, d1), 3);
    cr_expect_eq(cmd_int(e->rc, "EXISTS %sd:%s:%s:hu:source:14:Google", KP, SITE, d0), 0,
                 "no UTC hours");

    /* visit:source==Google, D + 1: C and D started visits at 00 (B's page
     * at 00:10 came without a referrer: Direct / None, its visit started
     * on D); A's new visit at 01 has one visitor: withheld under k = 2 */
    char *b = hourly(port, d1, "visit:source%3D%3DGoogle", 200);
    expect_hour(b, d1, 0, 2, 2, 2);
    expect_hour(b, d1, 1, 0, 0, 0);
    expect_hour(b, d1, 23, 0, 0, 0);
    expect_has(b, "\"filter_withheld\": 1");
    free(b);
    /* and D: A and B at 23 */
    b = hourly(port, d0, "visit:source%3D%3DGoogle", 200);
    expect_hour(b, d0, 23, 2, 2, 2);
    expect_has(b, "\"filter_withheld\": 0");
    free(b);
    /* a page, a set of sources, an entry page, a country */
    char path[400];
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews&filters=event:page%%3D%%3D/",
               d1);
    b = api(port, path, 200);
    str_format(path, sizeof path, "{\"date\": \"%s 00:00:00\", \"visitors\": 3, \"pageviews\": 3}",
               d1);
    expect_has(b, path);
    free(b);
    /* a glob over the stored values (the whole hash is read, not one value) */
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews&filters=event:page%%3D%%3D/*",
               d1);
    b = api(port, path, 200);
    str_format(path, sizeof path, "{\"date\": \"%s 00:00:00\", \"visitors\": 4, \"pageviews\": 4}",
               d1);
    expect_has(b, path);
    free(b);
    b = hourly(port, d1, "visit:source%3D%3DGoogle%7CBing", 200);
    expect_hour(b, d1, 0, 3, 3, 3);
    free(b);
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,visits&filters=visit:entry_page%%3D%%3D/",
               d1);
    b = api(port, path, 200);
    str_format(path, sizeof path, "{\"date\": \"%s 00:00:00\", \"visitors\": 3, \"visits\": 3}",
               d1);
    expect_has(b, path);
    free(b);
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews&filters=visit:country%%3D%%3DDE",
               d1);
    b = api(port, path, 200);
    str_format(path, sizeof path, "{\"date\": \"%s 00:00:00\", \"visitors\": 3, \"pageviews\": 3}",
               d1);
    expect_has(b, path);
    free(b);

    /* v2 time:hour with the same filter: the same 24 rows */
    char body[600];
    str_format(body, sizeof body,
               "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\", "
               "\"visits\"], \"date_range\": [\"%s\", \"%s\"], \"dimensions\": [\"time:hour\"], "
               "\"filters\": [[\"is\", \"visit:source\", [\"Google\"]]], "
               "\"include\": {\"time_labels\": true}}",
               d1, d1);
    cJSON *t2 = v2(port, body, 200);
    char *t1 = hourly(port, d1, "visit:source%3D%3DGoogle", 200);
    const cJSON *rows = cJSON_GetObjectItem(t2, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 24);
    for (int h = 0; h < 24; h++) {
        const cJSON *row = cJSON_GetArrayItem(rows, h);
        const cJSON *m = cJSON_GetObjectItem(row, "metrics");
        char label[32];
        str_format(label, sizeof label, "%s %02d:00:00", d1, h);
        cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(row, "dimensions"), 0)->valuestring,
                         label);
        expect_hour(t1, d1, h, (long long)cJSON_GetArrayItem(m, 0)->valuedouble,
                    (long long)cJSON_GetArrayItem(m, 1)->valuedouble,
                    (long long)cJSON_GetArrayItem(m, 2)->valuedouble);
    }
    cr_expect_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "metrics"), 0)
                     ->valuedouble,
                 2);
    cJSON_Delete(t2);
    free(t1);

    /* what the hourly rows cannot answer */
    b = hourly(port, d1, "visit:city%3D%3DTokyo", 400);
    expect_has(b, "visit:city has daily counts only, not hourly ones");
    free(b);
    b = hourly(port, old, "visit:source%3D%3DGoogle", 400);
    char want[200];
    str_format(want, sizeof want, "%s 10:00 was counted before hourly rows were kept", old);
    expect_has(b, want);
    free(b);
    str_format(body, sizeof body,
               "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": "
               "[\"%s\", \"%s\"], \"dimensions\": [\"time:hour\"], \"filters\": [[\"is\", "
               "\"visit:region\", [\"JP-13\"]]]}",
               d1, d1);
    char *resp = NULL;
    cr_expect_eq(harness_http(port, "POST", "/api/v2/query",
                              "Authorization: Bearer " TOKEN
                              "\r\nContent-Type: application/json\r\n",
                              body, strlen(body), &resp, NULL),
                 400);
    cr_expect(resp && strstr(resp, "visit:region has daily counts only"), "%s", resp);
    free(resp);
    /* the same day without a filter still answers from the site's hours */
    b = hourly(port, old, NULL, 200);
    str_format(want, sizeof want, "{\"date\": \"%s 10:00:00\", \"visitors\": 0, \"pageviews\": 7",
               old);
    expect_has(b, want);
    free(b);
    agg_stop_ok(agg);
}

/* Past breakdown_cap a value's hours are "(other)" like its day: a filter
 * that may match it is refused, not answered short; a value with its own
 * row is answered. */
Test(aggregator_hourly, other_row_is_refused, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 600;
    char day[11];
    period_format_day((period_day)(t / 86400), day);
    pageview(e, VA, "/a", NULL, NULL, t);
    pageview(e, VB, "/b", NULL, NULL, t + 1);
    pageview(e, VC, "/c", NULL, NULL, t + 2);
    int port = harness_free_port();
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", "--breakdown_cap=2",
                     NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    cr_expect_eq(cmd_int(e->rc, "HLEN %sd:%s:%s:b:page:ev", KP, SITE, day), 3,
                 "/a, /b and (other)");
    char path[300];
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews&filters=event:page%%3D%%3D/c",
               day);
    char *b = api(port, path, 400);
    expect_has(b, "past breakdown_cap were counted together as (other)");
    free(b);
    /* a value with its own row that day is never in its (other): answered */
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,pageviews&filters=event:page%%3D%%3D/a",
               day);
    b = api(port, path, 200);
    char want[120];
    str_format(want, sizeof want, "{\"date\": \"%s %02d:00:00\", \"visitors\": 1, \"pageviews\": 1}",
               day, (int)(t % 86400 / 3600));
    expect_has(b, want);
    free(b);
    agg_stop_ok(agg);
}

/* A goal filter by the hour: the goal's visitors of each hour, and their
 * share of all the hour's visitors (conversion_rate), v1 and v2. */
Test(aggregator_hourly, goal_conversion_rate_by_the_hour, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/admin.out", e->dir);
    char *argv[] = {"veil-admin", redis, "site", "add", SITE, "--goal", "event:Signup", NULL};
    struct harness_proc adm;
    cr_assert_eq(harness_spawn(&adm, argv, log), 0);
    int status;
    waitpid(adm.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "veil-admin site add failed");
    /* all in one UTC hour, well inside it */
    const int64_t t = (e->now - 3600) / 3600 * 3600 + 600;
    const int hour = (int)(t % 86400 / 3600);
    char day[11];
    period_format_day((period_day)(t / 86400), day);
    const char *visitors[] = {VA, VB, VC, VD};
    for (int i = 0; i < 4; i++)
        pageview(e, visitors[i], "/", NULL, NULL, t + i);
    struct event_record ev;
    event_base(&ev, e, "Signup", "/", VA, t + 60);
    period_format_day((period_day)(t / 86400), ev.day);
    xadd(e->rc, &ev);
    int port = harness_free_port();
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    char path[400], want[200];
    str_format(path, sizeof path,
               "/api/v1/stats/timeseries?site_id=" SITE "&period=day&date=%s&interval=hour"
               "&metrics=visitors,events,conversion_rate&filters=event:goal%%3D%%3DSignup",
               day);
    char *b = api(port, path, 200);
    str_format(want, sizeof want,
               "{\"date\": \"%s %02d:00:00\", \"visitors\": 1, \"events\": 1, "
               "\"conversion_rate\": 25.0}",
               day, hour);
    expect_has(b, want);
    free(b);
    char body[500];
    str_format(body, sizeof body,
               "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"conversion_rate\"], "
               "\"date_range\": [\"%s\", \"%s\"], \"dimensions\": [\"time:hour\"], "
               "\"filters\": [[\"is\", \"event:goal\", [\"Signup\"]]]}",
               day, day);
    cJSON *doc = v2(port, body, 200);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "results"), hour);
    const cJSON *m = cJSON_GetObjectItem(row, "metrics");
    cr_expect_eq(cJSON_GetArrayItem(m, 0)->valuedouble, 1);
    cr_expect_eq(cJSON_GetArrayItem(m, 1)->valuedouble, 25.0);
    cJSON_Delete(doc);
    agg_stop_ok(agg);
}
