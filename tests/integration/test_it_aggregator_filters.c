/* test_it_aggregator_filters.c - the stats API's filters, compare and
 * views_per_visit against counts made by the real veil-aggregator from
 * known events: exact numbers for each filter form (one value, a set, a
 * contains, a glob), k-anonymity on filtered cells, and the 400 answers
 * (with their reasons) for what the daily counts cannot answer exactly. */
#include <criterion/criterion.h>

#include "aggregator_env.h"
#include "period.h"

#define TOKEN "filters-test-token-0123456789"
#include "aggregator_api.h"

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
        {Q "aggregate?" S "&filters=visit:source%3D%3DGoogle;event:page%3D%3D/;"
                          "visit:country%3D%3DDE",
         "filters on three or more properties at once"},
        {Q "breakdown?" S "&property=event:name&filters=visit:source%3D%3DGoogle",
         "are not counted per pair of values"},
        {Q "aggregate?" S "&metrics=bounce_rate&filters=visit:source%3D%3DGoogle",
         "bounce_rate is not kept per visit:source value"},
        {Q "timeseries?" S "&interval=hour&filters=visit:city%3D%3DBerlin",
         "visit:city has daily counts only, not hourly ones"},
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

static char *v2_post(int port, const char *body, int want)
{
    char *resp = NULL;
    int code = harness_http(port, "POST", "/api/v2/query",
                            "Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n",
                            body, strlen(body), &resp, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", body, code, resp ? resp : "");
    return resp;
}

/* compare=previous_period under a filter: the previous period's filtered
 * totals, counted and withheld (k = 2) as the current ones.
 *   today      Google: VA, VB          Bing: VC, VD
 *   yesterday  Google: VA..VD, VE      Bing: VE (one visitor: withheld) */
Test(aggregator_filters, compare_under_a_filter, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 600, y = t - 86400;
    char yday[11];
    period_format_day((period_day)(y / 86400), yday);
    const char *today_g[] = {VA, VB}, *today_b[] = {VC, VD};
    const char *yest_g[] = {VA, VB, VC, VD, "00000000000000e5"};
    for (size_t i = 0; i < 2; i++) {
        pageview(e, today_g[i], "/", "google.com", t);
        pageview(e, today_b[i], "/", "bing.com", t);
    }
    struct event_record ev;
    for (size_t i = 0; i < ARRAY_LEN(yest_g) + 1; i++) {
        event_base(&ev, e, "pageview", "/", i < ARRAY_LEN(yest_g) ? yest_g[i] : "00000000000000f6",
                   y);
        SET(ev.referrer, i < ARRAY_LEN(yest_g) ? "google.com" : "bing.com");
        SET(ev.day, yday);
        xadd(e->rc, &ev);
    }
    int port = harness_free_port();
    char listen[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=2", refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    char *b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews&compare=previous_period"
                          "&filters=visit:source%3D%3DGoogle", 200);
    expect_has(b, "\"visitors\": {\"value\": 2, \"change\": -60}");
    expect_has(b, "\"pageviews\": {\"value\": 2, \"change\": -60}");
    expect_has(b, "\"filter_withheld\": 0");
    free(b);
    /* yesterday's Bing cell (1 visitor < k) is withheld: 0 before, +100 % */
    b = api(port, Q "aggregate?" S "&metrics=visitors&compare=previous_period"
                    "&filters=visit:source%3D%3DBing", 200);
    expect_has(b, "\"visitors\": {\"value\": 2, \"change\": 100}");
    expect_has(b, "\"filter_withheld\": 1");
    free(b);
    /* unfiltered: 4 against 6 */
    b = api(port, Q "aggregate?" S "&metrics=visitors&compare=previous_period", 200);
    expect_has(b, "\"visitors\": {\"value\": 4, \"change\": -33}");
    free(b);

    /* v2 include.comparisons, the same numbers in Plausible's v2 shape */
    static const struct {
        const char *filters, *want;
        int code;
    } v2q[] = {
        {"[[\"is\", \"visit:source\", [\"Google\"]]]",
         "{\"metrics\": [2, 2], \"dimensions\": [], \"comparison\": {\"dimensions\": [], "
         "\"metrics\": [5, 5], \"change\": [-60, -60]}}", 200},
        {"[]",
         "{\"metrics\": [4, 4], \"dimensions\": [], \"comparison\": {\"dimensions\": [], "
         "\"metrics\": [6, 6], \"change\": [-33, -33]}}", 200},
        {"[[\"is\", \"visit:source\", [\"Bing\"]]]", "\"filter_withheld\": 1", 200},
    };
    char body[600];
    for (size_t i = 0; i < ARRAY_LEN(v2q); i++) {
        str_format(body, sizeof body,
                   "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\"], "
                   "\"date_range\": \"day\", \"filters\": %s, "
                   "\"include\": {\"comparisons\": {\"mode\": \"previous_period\"}}}",
                   v2q[i].filters);
        b = v2_post(port, body, v2q[i].code);
        expect_has(b, v2q[i].want);
        char range[80];
        str_format(range, sizeof range, "\"comparison_date_range\": [\"%s\", \"%s\"]", yday,
                   yday);
        expect_has(b, range);
        free(b);
    }
    b = v2_post(port,
                "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": "
                "\"day\", \"dimensions\": [\"visit:source\"], \"include\": {\"comparisons\": "
                "{\"mode\": \"previous_period\"}}}",
                400);
    expect_has(b, "include: comparisons: only {\\\"mode\\\": \\\"previous_period\\\"}, on a "
                  "query without dimensions");
    free(b);
    b = v2_post(port,
                "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": "
                "\"day\", \"include\": {\"comparisons\": {\"mode\": \"year_over_year\"}}}",
                400);
    expect_has(b, "include: comparisons: only");
    free(b);
    agg_stop_ok(agg);
}

/* ---- Stats API v2, and its agreement with v1 ---- */

#include <cjson/cJSON.h>

static cJSON *v1(int port, const char *path)
{
    char *b = api(port, path, 200);
    cJSON *doc = cJSON_Parse(b);
    cr_assert_not_null(doc, "%s", b);
    free(b);
    return doc;
}

static double num(const cJSON *n)
{
    cr_assert(cJSON_IsNumber(n));
    return n->valuedouble;
}

Test(aggregator_filters, v2_query_shapes_and_agreement_with_v1, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 600;
    pageview(e, VA, "/", "google.com", t);
    pageview(e, VA, "/about", NULL, t + 60);
    pageview(e, VB, "/", "google.de", t);
    pageview(e, VC, "/pricing", "bing.com", t);
    pageview(e, VD, "/blog/x", NULL, t);
    int port = harness_free_port();
    char listen[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);

    /* aggregate: the same numbers, in request order */
    static const char *const metrics[] = {"visitors",       "pageviews",   "visits",
                                          "bounce_rate",    "visit_duration", "views_per_visit",
                                          "events"};
    cJSON *a1 = v1(port, Q "aggregate?" S "&metrics=visitors,pageviews,visits,bounce_rate,"
                             "visit_duration,views_per_visit,events");
    cJSON *a2 = v2(port,
                   "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\", "
                   "\"visits\", \"bounce_rate\", \"visit_duration\", \"views_per_visit\", "
                   "\"events\"], \"date_range\": \"day\"}",
                   200);
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(a2, "results"), 0);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(row, "dimensions")), 0);
    for (size_t i = 0; i < ARRAY_LEN(metrics); i++) {
        double one = num(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(a1, "results"), metrics[i]), "value"));
        double two = num(cJSON_GetArrayItem(cJSON_GetObjectItem(row, "metrics"), (int)i));
        cr_expect_eq(one, two, "%s: v1 %g, v2 %g", metrics[i], one, two);
    }
    cr_expect_eq(num(cJSON_GetArrayItem(cJSON_GetObjectItem(row, "metrics"), 0)), 4);
    cr_expect_eq(num(cJSON_GetArrayItem(cJSON_GetObjectItem(row, "metrics"), 5)), 1.25);
    const cJSON *query = cJSON_GetObjectItem(a2, "query");
    cr_expect_str_eq(cJSON_GetObjectItem(query, "site_id")->valuestring, SITE);
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(query, "date_range"), 0)->valuestring,
                     e->day);
    cr_expect(cJSON_IsObject(cJSON_GetObjectItem(a2, "meta")));
    cJSON_Delete(a1);
    cJSON_Delete(a2);

    /* a breakdown: the same rows; v2 ordered by visitors, then by the value */
    cJSON *b1 = v1(port, Q "breakdown?" S "&property=visit:source&metrics=visitors,visits");
    cJSON *b2 = v2(port,
                   "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"visits\", "
                   "\"percentage\"], \"date_range\": \"day\", \"dimensions\": [\"visit:source\"], "
                   "\"include\": {\"total_rows\": true}}",
                   200);
    const cJSON *r1 = cJSON_GetObjectItem(b1, "results"), *r2 = cJSON_GetObjectItem(b2, "results");
    cr_assert_eq(cJSON_GetArraySize(r1), cJSON_GetArraySize(r2));
    cr_assert_eq(cJSON_GetArraySize(r2), 3, "Google, Bing, Direct / None");
    for (int i = 0; i < cJSON_GetArraySize(r1); i++) {
        const cJSON *x = cJSON_GetArrayItem(r1, i), *y = cJSON_GetArrayItem(r2, i);
        cr_expect_str_eq(cJSON_GetObjectItem(x, "source")->valuestring,
                         cJSON_GetArrayItem(cJSON_GetObjectItem(y, "dimensions"), 0)->valuestring);
        cr_expect_eq(num(cJSON_GetObjectItem(x, "visitors")),
                     num(cJSON_GetArrayItem(cJSON_GetObjectItem(y, "metrics"), 0)));
        cr_expect_eq(num(cJSON_GetObjectItem(x, "visits")),
                     num(cJSON_GetArrayItem(cJSON_GetObjectItem(y, "metrics"), 1)));
    }
    const cJSON *top = cJSON_GetArrayItem(r2, 0);
    cr_expect_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(top, "dimensions"), 0)->valuestring,
                     "Google");
    cr_expect_eq(num(cJSON_GetArrayItem(cJSON_GetObjectItem(top, "metrics"), 2)), 50.0,
                 "percentage: 2 of 4 visitors");
    cr_expect_eq(num(cJSON_GetObjectItem(cJSON_GetObjectItem(b2, "meta"), "total_rows")), 3);
    cJSON_Delete(b1);
    cJSON_Delete(b2);

    /* a time dimension and a filter: the same as v1's filtered timeseries */
    cJSON *t1 = v1(port, Q "timeseries?site_id=" SITE "&period=7d&metrics=visitors"
                           "&filters=visit:source%3D%3DGoogle");
    cJSON *t2 = v2(port,
                   "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": "
                   "\"7d\", \"dimensions\": [\"time:day\"], \"filters\": [[\"is\", "
                   "\"visit:source\", [\"Google\"]]], \"include\": {\"time_labels\": true}}",
                   200);
    r1 = cJSON_GetObjectItem(t1, "results");
    r2 = cJSON_GetObjectItem(t2, "results");
    cr_assert_eq(cJSON_GetArraySize(r1), 7);
    cr_assert_eq(cJSON_GetArraySize(r2), 7);
    for (int i = 0; i < 7; i++) {
        const cJSON *x = cJSON_GetArrayItem(r1, i), *y = cJSON_GetArrayItem(r2, i);
        cr_expect_str_eq(cJSON_GetObjectItem(x, "date")->valuestring,
                         cJSON_GetArrayItem(cJSON_GetObjectItem(y, "dimensions"), 0)->valuestring);
        cr_expect_eq(num(cJSON_GetObjectItem(x, "visitors")),
                     num(cJSON_GetArrayItem(cJSON_GetObjectItem(y, "metrics"), 0)));
    }
    cr_expect_eq(num(cJSON_GetArrayItem(
                     cJSON_GetObjectItem(cJSON_GetArrayItem(r2, 6), "metrics"), 0)),
                 2);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(t2, "meta"),
                                                        "time_labels")),
                 7);
    cJSON_Delete(t1);
    cJSON_Delete(t2);

    /* what v2 refuses, with the part named */
    static const struct {
        const char *body, *reason;
    } refused[] = {
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
         "\"filters\": [[\"is\", \"visit:source\", [\"Google\"]], [\"is\", \"event:page\", "
         "[\"/\"]], [\"is\", \"visit:country\", [\"DE\"]]]}",
         "filters on three or more properties at once"},
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
         "\"dimensions\": [\"visit:source\", \"event:page\"]}",
         "dimensions: one dimension at a time"},
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"scroll_depth\"], \"date_range\": \"day\", "
         "\"dimensions\": [\"visit:source\"]}",
         "metrics: scroll_depth is not kept per visit:source value"},
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"bounce_rate\"], \"date_range\": \"day\", "
         "\"dimensions\": [\"event:page\"]}",
         "metrics: bounce_rate is kept per row of the visit properties (visit:*) only"},
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
         "\"dimensions\": [\"event:name\"], \"filters\": [[\"is\", \"visit:source\", "
         "[\"Google\"]]]}",
         "are not counted per pair of values"},
        {"{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"decade\"}",
         "date_range: expected"},
        {"{\"metrics\": [\"visitors\"], \"date_range\": \"day\"}", "site_id: required"},
        {"not json", "body: expected a JSON object"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        cJSON *doc = v2(port, refused[i].body, 400);
        const cJSON *error = cJSON_GetObjectItem(doc, "error");
        cr_expect(cJSON_IsString(error) && strstr(error->valuestring, refused[i].reason),
                  "%s: %s", refused[i].body, cJSON_IsString(error) ? error->valuestring : "?");
        cJSON_Delete(doc);
    }
    char *resp = NULL;
    cr_expect_eq(harness_http(port, "GET", "/api/v2/query",
                              "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &resp, NULL),
                 405);
    free(resp);
    cr_expect_eq(harness_http(port, "POST", "/api/v2/query", NULL, "{}", 2, &resp, NULL), 401);
    free(resp);
    agg_stop_ok(agg);
}
