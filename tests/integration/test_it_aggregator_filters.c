/* test_it_aggregator_filters.c - the stats API's filters, compare and
 * views_per_visit against counts made by the real veil-aggregator from
 * known events: exact numbers for each filter form (one value, a set, a
 * contains, a glob), k-anonymity on filtered cells, and the 400 answers
 * (with their reasons) for what the daily counts cannot answer exactly. */
#include <criterion/criterion.h>

#include "aggregator_env.h"

#define TOKEN "filters-test-token-0123456789"

TestSuite(aggregator_filters, .fini = teardown);

static void pageview(struct env *e, const char *visitor, const char *path, const char *ref,
                     int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, "pageview", path, visitor, ts);
    if (ref)
        SET(ev.referrer, ref);
    xadd(e->rc, &ev);
}

static char *api(int port, const char *path, int want)
{
    char *body = NULL;
    int code = harness_http(port, "GET", path, "Authorization: Bearer " TOKEN "\r\n", NULL, 0,
                            &body, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", path, code, body ? body : "");
    return body;
}

#define expect_has(body, needle) \
    cr_expect(strstr((body), (needle)) != NULL, "missing %s in %s", (needle), (body))

#define Q "/api/v1/stats/"
#define S "site_id=" SITE "&period=day"

Test(aggregator_filters, filters_compare_and_views_per_visit, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 600;
    pageview(e, VA, "/", "google.com", t);
    pageview(e, VA, "/about", NULL, t + 60); /* internal: Direct / None in pv */
    pageview(e, VB, "/", "google.de", t);
    pageview(e, VC, "/pricing", "bing.com", t);
    pageview(e, VD, "/blog/x", NULL, t);
    int port = harness_free_port();
    char listen[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=2", refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    char *b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews,visits,views_per_visit"
                          "&compare=previous_period", 200);
    expect_has(b, "\"visitors\": {\"value\": 4, \"change\": 100}");
    expect_has(b, "\"pageviews\": {\"value\": 5, \"change\": 100}");
    expect_has(b, "\"views_per_visit\": {\"value\": 1.25, \"change\": 100}");
    free(b);

    /* one value of a visit dimension: the named source */
    b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews,visits"
                    "&filters=visit:source%3D%3DGoogle", 200);
    expect_has(b, "\"visitors\": {\"value\": 2}");
    expect_has(b, "\"pageviews\": {\"value\": 2}");
    expect_has(b, "\"visits\": {\"value\": 2}");
    expect_has(b, "\"filter_withheld\": 0");
    free(b);
    /* a cell below k is withheld */
    b = api(port, Q "aggregate?" S "&metrics=visitors&filters=visit:source%3D%3DBing", 200);
    expect_has(b, "\"visitors\": {\"value\": 0}");
    expect_has(b, "\"filter_withheld\": 1");
    free(b);
    /* a set of pages: the union of their visitors */
    b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews"
                    "&filters=event:page%3D%3D/%7C/about", 200);
    expect_has(b, "\"visitors\": {\"value\": 2}");
    expect_has(b, "\"pageviews\": {\"value\": 3}");
    free(b);
    /* contains, and a glob, over the stored values */
    b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews&filters=event:page~o", 200);
    expect_has(b, "\"visitors\": {\"value\": 2}");
    expect_has(b, "\"pageviews\": {\"value\": 2}");
    free(b);
    b = api(port, Q "aggregate?" S "&metrics=pageviews&filters=event:page%3D%3D/*o*", 200);
    expect_has(b, "\"pageviews\": {\"value\": 2}");
    free(b);
    /* a timeseries under a filter */
    b = api(port, Q "timeseries?site_id=" SITE "&period=7d&metrics=visitors"
                    "&filters=visit:source%3D%3DGoogle", 200);
    char want[64];
    str_format(want, sizeof want, "{\"date\": \"%s\", \"visitors\": 2}", e->day);
    expect_has(b, want);
    free(b);
    /* a breakdown filtered by its own property */
    b = api(port, Q "breakdown?" S "&property=visit:source&metrics=visitors"
                    "&filters=visit:source%3D%3DGoogle%7CBing", 200);
    expect_has(b, "{\"source\": \"Google\", \"visitors\": 2}");
    cr_expect(strstr(b, "Direct") == NULL, "%s", b);
    free(b);

    /* what cannot be answered exactly */
    static const struct {
        const char *path, *reason;
    } refused[] = {
        {Q "aggregate?" S "&filters=visit:source%3D%3DGoogle;event:page%3D%3D/",
         "only one filter can be answered exactly"},
        {Q "breakdown?" S "&property=event:page&filters=visit:source%3D%3DGoogle",
         "needs counts per pair of values"},
        {Q "aggregate?" S "&metrics=bounce_rate&filters=visit:source%3D%3DGoogle",
         "bounce_rate is not kept per visit:source value"},
        {Q "aggregate?" S "&filters=visit:source!%3DGoogle", "!= and !~ cannot be answered"},
        {Q "timeseries?" S "&interval=hour&filters=visit:source%3D%3DGoogle",
         "hourly counts are totals of the site"},
        {Q "aggregate?" S "&filters=visit:nothing%3D%3Dx", "unknown property"},
        {Q "aggregate?" S "&compare=yesterday", "compare: expected previous_period"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        b = api(port, refused[i].path, 400);
        expect_has(b, refused[i].reason);
        free(b);
    }
    agg_stop_ok(agg);
}
