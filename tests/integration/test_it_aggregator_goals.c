/* test_it_aggregator_goals.c - goals set with the real veil-admin (an
 * event goal and a page goal with a wildcard) counted by the real
 * veil-aggregator and published by its stats API as Plausible publishes
 * them: event:goal rows with visitors, events and conversion_rate. Then
 * new and returning visitors (visit:visitor_type). Exact numbers. */
#include <criterion/criterion.h>

#include "aggregator_env.h"
#include "period.h"

#define TOKEN "goals-test-token-0123456789"
#include "aggregator_api.h"

TestSuite(aggregator_goals, .fini = teardown);

static void event(struct env *e, const char *name, const char *visitor, const char *path,
                  int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, name, path, visitor, ts);
    xadd(e->rc, &ev);
}

static struct harness_proc *start(struct env *e, int *port)
{
    *port = harness_free_port();
    static char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", *port);
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(*port, "/healthz", 15000), 0);
    return agg;
}

Test(aggregator_goals, goals_conversions_and_conversion_rate, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    char *words[] = {"site", "add", SITE, "--goal", "event:Signup", "--goal", "page:/blog/*",
                     NULL};
    env_admin(e, words);
    const int64_t t = e->now - 600;
    event(e, "pageview", VA, "/blog/a", t);
    event(e, "Signup", VA, "/blog/a", t + 10);
    event(e, "Signup", VA, "/blog/a", t + 20); /* a second conversion, same visitor */
    event(e, "pageview", VB, "/blog/b", t);
    event(e, "pageview", VC, "/about", t);
    event(e, "pageview", VD, "/", t);
    int port;
    struct harness_proc *agg = start(e, &port);
    wait_drained(e, 15000);
    char *body = api(port,
                     "/api/v1/stats/breakdown?site_id=" SITE "&period=day&property=event:goal"
                     "&metrics=visitors,events,conversion_rate",
                     200);
    expect_has(body, "{\"goal\": \"Visit /blog/*\", \"visitors\": 2, \"events\": 2, "
                     "\"conversion_rate\": 50.0}");
    expect_has(body, "{\"goal\": \"Signup\", \"visitors\": 1, \"events\": 2, "
                     "\"conversion_rate\": 25.0}");
    cr_expect(strstr(body, "about") == NULL, "no goal row for other pages: %s", body);
    free(body);
    body = api(port,
               "/api/v1/stats/breakdown?site_id=" SITE "&period=day&property=event:page"
               "&metrics=conversion_rate",
               400);
    expect_has(body, "conversion_rate needs a breakdown by event:goal");
    free(body);
    body = api(port, "/api/v1/stats/aggregate?site_id=" SITE "&metrics=conversion_rate", 400);
    expect_has(body, "conversion_rate needs a breakdown by event:goal or a filter on event:goal");
    free(body);
    /* under a goal filter: the goal's visitors and their share of all */
    body = api(port,
               "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=visitors,events,"
               "conversion_rate&filters=event:goal%3D%3DSignup",
               200);
    expect_has(body, "\"visitors\": {\"value\": 1}");
    expect_has(body, "\"events\": {\"value\": 2}");
    expect_has(body, "\"conversion_rate\": {\"value\": 25.0}");
    free(body);
    char *resp = NULL;
    const char *q = "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"conversion_rate\"], "
                    "\"date_range\": \"day\", \"filters\": [[\"is\", \"event:goal\", "
                    "[\"Visit /blog/*\"]]]}";
    cr_expect_eq(harness_http(port, "POST", "/api/v2/query",
                              "Authorization: Bearer " TOKEN "\r\n", q, strlen(q), &resp, NULL),
                 200);
    cr_expect(resp && strstr(resp, "\"metrics\": [2, 50.0]"), "v2: %s", resp);
    free(resp);
    agg_stop_ok(agg);
}

Test(aggregator_goals, new_and_returning_visitors, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    /* two visits of A 2000 s apart (past the 1800 s timeout) on one UTC
     * day, the second read by a new process from the checkpoint */
    int64_t day_start = e->now / 86400 * 86400;
    int64_t t0 = (e->now - day_start > 2400 ? day_start : day_start - 86400) + 60;
    struct event_record ev;
    const char *first[] = {VA, VB};
    for (int i = 0; i < 2; i++) {
        event_base(&ev, e, "pageview", "/", first[i], t0);
        period_format_day((period_day)(t0 / 86400), ev.day);
        xadd(e->rc, &ev);
    }
    int port;
    struct harness_proc *agg = start(e, &port);
    wait_drained(e, 15000);
    agg_stop_ok(agg);
    const char *second[] = {VA, VC};
    for (int i = 0; i < 2; i++) {
        event_base(&ev, e, "pageview", "/", second[i], t0 + 2000);
        period_format_day((period_day)(t0 / 86400), ev.day);
        xadd(e->rc, &ev);
    }
    agg = start(e, &port);
    wait_drained(e, 15000);
    char path[300], day[11];
    period_format_day((period_day)(t0 / 86400), day);
    str_format(path, sizeof path,
               "/api/v1/stats/breakdown?site_id=" SITE "&period=day&date=%s"
               "&property=visit:visitor_type&metrics=visitors,visits",
               day);
    char *body = api(port, path, 200);
    expect_has(body, "{\"visitor_type\": \"new\", \"visitors\": 3, \"visits\": 3}");
    expect_has(body, "{\"visitor_type\": \"returning\", \"visitors\": 1, \"visits\": 1}");
    free(body);
    agg_stop_ok(agg);
}
