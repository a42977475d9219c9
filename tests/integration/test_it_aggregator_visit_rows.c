/* test_it_aggregator_visit_rows.c - per-row bounce rate and visit duration
 * and visit:exit_page (docs/API.md "Bounce rate and visit duration per
 * row", "Exit pages") from known events with known timestamps, through the
 * real veil-aggregator and its stats API: exact numbers per row in v1 and
 * v2 (which must agree), visits that go on across a takeover after the
 * aggregator was killed (kill -9: the rows come back from the checkpoint), a visit restored
 * from a checkpoint value of the version before (its day's per-row numbers
 * are left out and said so), "(other)" rows past breakdown_cap with their
 * visits' bounces, seconds and exits, and the 400s for what is still not
 * kept. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "aggregator_env.h"

#define TOKEN "visit-rows-test-token-0123456789"
#include "aggregator_api.h"

TestSuite(aggregator_visit_rows, .fini = teardown);

static void event(struct env *e, const char *day, const char *name, const char *visitor,
                  const char *path, const char *ref, const char *country, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, name, path, visitor, ts);
    SET(ev.day, day);
    if (ref)
        SET(ev.referrer, ref);
    if (country)
        SET(ev.country, country);
    xadd(e->rc, &ev);
}

static struct harness_proc *start(struct env *e, int port)
{
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    return agg;
}

#define Q "/api/v1/stats/breakdown?site_id=" SITE
#define M "&metrics=visitors,visits,bounce_rate,visit_duration"

/* One expected row: value, visitors, visits, bounce rate, duration. */
struct want {
    const char *value;
    long long visitors, visits, bounce_rate, visit_duration;
};

/* v1 says exactly `want` for `property` (rows in any order, no others), and
 * v2 agrees with v1 row by row. */
static void check_property(int port, const char *period, const char *v2_range,
                           const char *property, const char *column, const struct want *want,
                           size_t n, int total)
{
    char path[512];
    str_format(path, sizeof path, Q "&period=%s&property=%s" M, period, property);
    char *body = api(port, path, 200);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc);
    const cJSON *results = cJSON_GetObjectItem(doc, "results");
    cr_expect_eq(cJSON_GetArraySize(results), total, "%s: %s", property, body);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        const cJSON *row;
        cJSON_ArrayForEach(row, results) {
            const cJSON *v = cJSON_GetObjectItem(row, column);
            if (!cJSON_IsString(v) || strcmp(v->valuestring, want[i].value) != 0)
                continue;
            found = true;
            cr_expect_eq(cJSON_GetObjectItem(row, "visitors")->valuedouble, want[i].visitors,
                         "%s %s visitors: %s", property, want[i].value, body);
            cr_expect_eq(cJSON_GetObjectItem(row, "visits")->valuedouble, want[i].visits,
                         "%s %s visits: %s", property, want[i].value, body);
            cr_expect_eq(cJSON_GetObjectItem(row, "bounce_rate")->valuedouble,
                         want[i].bounce_rate, "%s %s bounce_rate: %s", property, want[i].value,
                         body);
            cr_expect_eq(cJSON_GetObjectItem(row, "visit_duration")->valuedouble,
                         want[i].visit_duration, "%s %s visit_duration: %s", property,
                         want[i].value, body);
        }
        cr_expect(found, "%s: no row %s in %s", property, want[i].value, body);
    }
    /* v2: the same rows, the same numbers */
    char q[512];
    str_format(q, sizeof q,
               "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"visits\", "
               "\"bounce_rate\", \"visit_duration\"], \"date_range\": %s, \"dimensions\": "
               "[\"%s\"]}",
               v2_range, property);
    cJSON *doc2 = v2(port, q, 200);
    const cJSON *rows2 = cJSON_GetObjectItem(doc2, "results");
    cr_expect_eq(cJSON_GetArraySize(rows2), cJSON_GetArraySize(results), "v2 rows of %s",
                 property);
    const cJSON *r2;
    cJSON_ArrayForEach(r2, rows2) {
        const char *label = cJSON_GetArrayItem(cJSON_GetObjectItem(r2, "dimensions"), 0)->valuestring;
        const cJSON *m = cJSON_GetObjectItem(r2, "metrics");
        const cJSON *r1 = NULL, *row;
        cJSON_ArrayForEach(row, results)
            if (!strcmp(cJSON_GetObjectItem(row, column)->valuestring, label))
                r1 = row;
        cr_assert_not_null(r1, "v2 row %s of %s not in v1", label, property);
        static const char *const names[] = {"visitors", "visits", "bounce_rate", "visit_duration"};
        for (int k = 0; k < 4; k++)
            cr_expect_eq(cJSON_GetArrayItem(m, k)->valuedouble,
                         cJSON_GetObjectItem(r1, names[k])->valuedouble, "%s %s %s: v1 and v2",
                         property, label, names[k]);
    }
    /* both name the days without per-row counts */
    const cJSON *missing = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "meta"),
                                               "visit_rows_missing_days");
    const cJSON *missing2 = cJSON_GetObjectItem(cJSON_GetObjectItem(doc2, "meta"),
                                                "visit_rows_missing_days");
    cr_expect(cJSON_IsNumber(missing) && cJSON_IsNumber(missing2) &&
                  missing->valuedouble == missing2->valuedouble,
              "meta visit_rows_missing_days: %s", body);
    cJSON_Delete(doc2);
    cJSON_Delete(doc);
    free(body);
}

static long long meta_missing(int port, const char *path)
{
    char *body = api(port, path, 200);
    cJSON *doc = cJSON_Parse(body);
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "meta"), "visit_rows_missing_days");
    long long v = cJSON_IsNumber(m) ? (long long)m->valuedouble : -1;
    cJSON_Delete(doc);
    free(body);
    return v;
}

/* A: / (news) 0 s, /pricing 30 s, | kill -9, takeover |, /signup 100 s: 100 s, no bounce, exit /signup
 * B: / (direct) 10 s, | takeover |, engagement 40 s: a bounce of 30 s, exit /
 * C: /pricing (news) 20 s, | takeover |, Signup (interactive) 80 s: 60 s, no bounce, exit /pricing
 * D: / (direct) 5 s: a bounce of 0 s, exit / */
Test(aggregator_visit_rows, per_row_bounce_duration_and_exit_pages_across_a_takeover,
     .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 200;
    const char *day = e->day;
    event(e, day, "pageview", VA, "/", "news.example", "DE", t);
    event(e, day, "pageview", VA, "/pricing", NULL, "DE", t + 30);
    event(e, day, "pageview", VB, "/", NULL, "DE", t + 10);
    event(e, day, "pageview", VC, "/pricing", "news.example", "FR", t + 20);
    event(e, day, "pageview", VD, "/", NULL, "FR", t + 5);
    int port = harness_free_port();
    struct harness_proc *agg = start(e, port);
    wait_drained(e, 15000);

    /* the open visits' rows are in the checkpoint */
    char field[64];
    str_format(field, sizeof field, SITE ":" VA);
    redisReply *r = cmd(e->rc, "HGET %ssessions %s", KP, field);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_expect(strstr(r->str, "12:news.example") && strstr(r->str, "8:/pricing"),
              "checkpoint value without A's rows and exit: %s", r->str);
    freeReplyObject(r);
    /* so far A's exit is /pricing, with A's 30 s; / holds B and D (A passed: its
     * visitors are at most its visits) */
    static const struct want exits1[] = {{"/", 2, 2, 100, 0}, {"/pricing", 2, 2, 50, 15}};
    check_property(port, "day", "\"day\"", "visit:exit_page", "exit_page", exits1, 2, 2);
    /* kill -9: no clean release; the next owner waits for the lease and
     * starts from the checkpoint */
    harness_kill(agg);

    /* the visits go on in another process: rows and exits from the checkpoint */
    event(e, day, "pageview", VA, "/signup", NULL, "DE", t + 100);
    event(e, day, "engagement", VB, "/", NULL, "DE", t + 40);
    event(e, day, "Signup", VC, "/pricing", NULL, "FR", t + 80);
    port = harness_free_port();
    agg = start(e, port);
    wait_drained(e, 15000);

    static const struct want sources[] = {{"news.example", 2, 2, 0, 80},
                                          {"Direct / None", 2, 2, 100, 15}};
    check_property(port, "day", "\"day\"", "visit:source", "source", sources, 2, 2);
    static const struct want countries[] = {{"DE", 2, 2, 50, 65}, {"FR", 2, 2, 50, 30}};
    check_property(port, "day", "\"day\"", "visit:country", "country", countries, 2, 2);
    static const struct want entries[] = {{"/", 3, 3, 67, 43}, {"/pricing", 1, 1, 0, 60}};
    check_property(port, "day", "\"day\"", "visit:entry_page", "entry_page", entries, 2, 2);
    static const struct want types[] = {{"new", 4, 4, 50, 48}};
    check_property(port, "day", "\"day\"", "visit:visitor_type", "visitor_type", types, 1, 1);
    /* exits: A moved from /pricing to /signup; /pricing's visitors (C, and A
     * who passed) are at most its one exit */
    static const struct want exits[] = {
        {"/", 2, 2, 100, 15}, {"/pricing", 1, 1, 0, 60}, {"/signup", 1, 1, 0, 100}};
    check_property(port, "day", "\"day\"", "visit:exit_page", "exit_page", exits, 3, 3);
    cr_expect_eq(row_count(e, "exit_page", "vis", "/pricing"), 1);
    cr_expect_eq(row_count(e, "exit_page", "dur", "/pricing"), 60);
    cr_expect_eq(hget(e, "totals", "row_visits"), 4);
    cr_expect_eq(meta_missing(port, Q "&period=day&property=visit:source" M), 0);

    /* still refused, with reasons: per-row scroll depth, bounce rate of a page */
    char *b = api(port, Q "&period=day&property=visit:source&metrics=scroll_depth", 400);
    expect_has(b, "metrics: scroll_depth is not kept per visit:source value");
    free(b);
    b = api(port, Q "&period=day&property=event:page&metrics=visitors,bounce_rate", 400);
    expect_has(b, "metrics: bounce_rate is kept per row of the visit properties (visit:*) only");
    free(b);
    cJSON *doc = v2(port,
                      "{\"site_id\": \"" SITE "\", \"metrics\": [\"visit_duration\"], "
                      "\"date_range\": \"day\", \"dimensions\": [\"event:name\"]}",
                      400);
    const cJSON *err = cJSON_GetObjectItem(doc, "error");
    cr_expect(cJSON_IsString(err) && strstr(err->valuestring, "visit_duration is kept per row"),
              "%s", cJSON_IsString(err) ? err->valuestring : "?");
    cJSON_Delete(doc);
    /* a breakdown filtered by its own property keeps its rows' own numbers */
    b = api(port, Q "&period=day&property=visit:source" M "&filters=visit:source%3D%3Dnews.example",
            200);
    expect_has(b, "[{\"source\": \"news.example\", \"visitors\": 2, \"visits\": 2, "
                  "\"bounce_rate\": 0, \"visit_duration\": 80}]");
    free(b);
    doc = v2(port,
               "{\"site_id\": \"" SITE "\", \"metrics\": [\"visits\", \"bounce_rate\", "
               "\"visit_duration\"], \"date_range\": \"day\", \"dimensions\": "
               "[\"visit:source\"], \"filters\": [[\"is\", \"visit:source\", "
               "[\"Direct / None\"]]]}",
               200);
    const cJSON *only = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "results"), 0);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "results")), 1);
    cr_expect_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(only, "metrics"), 1)->valuedouble, 100);
    cr_expect_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(only, "metrics"), 2)->valuedouble, 15);
    cJSON_Delete(doc);
    /* totals under a filter still refuse them (not kept per filtered cell) */
    b = api(port, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=bounce_rate"
                  "&filters=visit:source%3D%3Dnews.example",
            400);
    expect_has(b, "filters: bounce_rate is not kept per visit:source value");
    free(b);
    /* an exit page filters its own breakdown, not the totals */
    b = api(port, Q "&period=day&property=visit:exit_page&metrics=visitors,visits"
                    "&filters=visit:exit_page%3D%3D/signup",
            200);
    expect_has(b, "[{\"exit_page\": \"/signup\", \"visitors\": 1, \"visits\": 1}]");
    free(b);
    b = api(port, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=visitors"
                  "&filters=visit:exit_page%3D%3D/signup",
            400);
    expect_has(b, "filters: totals filtered by visit:exit_page are not kept");
    free(b);
    agg_stop_ok(agg);
}

/* A day whose visits were not all counted with their rows (one restored
 * from the version before's checkpoint) is left out of the per-row
 * numbers, and the answer says how many days were. */
Test(aggregator_visit_rows, days_counted_before_per_row_counts_are_left_out, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    char yesterday[11];
    utc_day(e->now - 86400, yesterday);
    /* yesterday: the older version counted E's visit (one page, a bounce)
     * and left it open in its checkpoint, without rows */
    const int64_t ty = e->now - 86400;
    char key[200];
    str_format(key, sizeof key, "%sd:" SITE ":%s:totals", KP, yesterday);
    cmd_int(e->rc, "HINCRBY %s visits 1", key);
    cmd_int(e->rc, "HINCRBY %s bounces 1", key);
    freeReplyObject(cmd(e->rc, "HSET %sd:" SITE ":%s:b:source:vis %s 1", KP, yesterday,
                        "Direct / None"));
    freeReplyObject(cmd(e->rc, "PFADD %sd:" SITE ":%s:u:source:%s %s", KP, yesterday,
                        "Direct / None", VD));
    char value[200];
    str_format(value, sizeof value, "1 %lld %lld %lld %s 0 -1 0", (long long)ty, (long long)ty,
               (long long)(ty + 730 * 86400LL), yesterday);
    freeReplyObject(cmd(e->rc, "HSET %ssessions %s %s", KP, SITE ":" VD, value));
    /* ... then the new version counts its second page view and a new visit */
    event(e, yesterday, "pageview", VD, "/more", NULL, NULL, ty + 50);
    event(e, yesterday, "pageview", VA, "/", "news.example", NULL, ty + 60);
    event(e, e->day, "pageview", VB, "/", "news.example", NULL, e->now - 100);
    event(e, e->day, "pageview", VB, "/next", NULL, NULL, e->now - 40);
    int port = harness_free_port();
    struct harness_proc *agg = start(e, port);
    wait_drained(e, 15000);
    cr_expect_eq(hget(e, "totals", "row_visits"), 1, "today: every visit with its rows");
    /* over both days: per-row numbers of today only, and one day named */
    char path[300];
    str_format(path, sizeof path, Q "&period=custom&date=%s,%s&property=visit:source" M,
               yesterday, e->day);
    cr_expect_eq(meta_missing(port, path), 1);
    char range[64];
    str_format(range, sizeof range, "[\"%s\", \"%s\"]", yesterday, e->day);
    char period[64];
    str_format(period, sizeof period, "custom&date=%s,%s", yesterday, e->day);
    /* news.example: A yesterday (left out of the rates), B today (60 s, no bounce);
     * Direct / None has no visit on a day that keeps per-row counts: null */
    static const struct want sources[] = {{"news.example", 2, 2, 0, 60}};
    check_property(port, period, range, "visit:source", "source", sources, 1, 2);
    /* exits only of today */
    static const struct want exits[] = {{"/next", 1, 1, 0, 60}};
    check_property(port, period, range, "visit:exit_page", "exit_page", exits, 1, 1);
    char *b = api(port, path, 200);
    expect_has(b, "{\"source\": \"Direct / None\", \"visitors\": 1, \"visits\": 1, "
                  "\"bounce_rate\": null, \"visit_duration\": null}");
    free(b);
    str_format(path, sizeof path, Q "&period=custom&date=%s,%s&property=visit:source" M
               "&format=csv", yesterday, e->day);
    b = api(port, path, 200);
    expect_has(b, "Direct / None,1,1,,\r\n");
    free(b);
    agg_stop_ok(agg);
}

/* Past breakdown_cap a visit is counted under "(other)": its bounce and
 * seconds, and its exit, go there too. */
Test(aggregator_visit_rows, other_rows_get_their_visits_bounces_and_seconds, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 300;
    /* A first: a.example and the exit / get the only rows (cap 1) */
    event(e, e->day, "pageview", VA, "/", "a.example", NULL, t);
    event(e, e->day, "pageview", VA, "/x", NULL, NULL, t + 50);
    event(e, e->day, "pageview", VB, "/", "b.example", NULL, t + 10);
    event(e, e->day, "pageview", VC, "/", "c.example", NULL, t + 20);
    event(e, e->day, "engagement", VC, "/", NULL, NULL, t + 60);
    int port = harness_free_port();
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", "--breakdown_cap=1", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    static const struct want sources[] = {{"a.example", 1, 1, 0, 50},
                                          {"(other)", 2, 2, 100, 20}};
    check_property(port, "day", "\"day\"", "visit:source", "source", sources, 2, 2);
    /* A's exit moved from / (a row) to /x ((other)): B and C stay on / */
    static const struct want exits[] = {{"/", 2, 2, 100, 20}, {"(other)", 1, 1, 0, 50}};
    check_property(port, "day", "\"day\"", "visit:exit_page", "exit_page", exits, 2, 2);
    cr_expect_eq(row_count(e, "exit_page", "vis", "/"), 2);
    cr_expect_eq(row_count(e, "exit_page", "vis", "(other)"), 1);
    cr_expect_eq(row_count(e, "source", "dur", "(other)"), 40);
    agg_stop_ok(agg);

    /* k-anonymity (k = 2) folds a.example's one visitor into "(other)":
     * the folded row's bounce rate and duration are of all its visits */
    port = harness_free_port();
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *k2[] = {listen, "--api_token=" TOKEN, "--k_anonymity=2", "--breakdown_cap=1", NULL};
    agg = agg_spawn(e, k2);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    static const struct want folded[] = {{"(other)", 3, 3, 67, 30}};
    check_property(port, "day", "\"day\"", "visit:source", "source", folded, 1, 1);
    agg_stop_ok(agg);
}
