/* test_it_aggregator_filter_ops.c - the filter operators within one
 * property (is_not, contains_not, matches, matches_not, v1 != !~ and ';',
 * v2 and/or/not) and the visit:*_name variants, against counts made by
 * the real veil-aggregator from known events: exact numbers on aggregate,
 * timeseries and a breakdown by the filter's own property, k-anonymity on
 * filtered cells, v1 and v2 agreeing, "(other)" included only when it is
 * known, and each refusal with its reason. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "aggregator_env.h"

#define TOKEN "filter-ops-test-token-0123456789"
#define VE "00000000000000e5"

TestSuite(aggregator_filter_ops, .fini = teardown);

static void pageview(struct env *e, const char *visitor, const char *path, const char *ref,
                     const char *country, const char *region, const char *city, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, "pageview", path, visitor, ts);
    if (ref)
        SET(ev.referrer, ref);
    SET(ev.country, country);
    SET(ev.region, region);
    SET(ev.city, city);
    xadd(e->rc, &ev);
}

/* Five visitors, seven page views, in this order (the order matters for
 * breakdown_cap: the first distinct values get rows):
 *   VA  /  then /blog/one   google.com  DE-BY Munich
 *   VB  /                   google.de   DE-BE Berlin
 *   VC  /pricing            bing.com    FR-IDF Paris
 *   VD  /blog/two           -           FR-IDF Paris
 *   VE  /blog/two then /pricing  -      US-CA San Francisco */
static void known_events(struct env *e)
{
    const int64_t t = e->now - 600;
    pageview(e, VA, "/", "google.com", "DE", "BY", "Munich", t);
    pageview(e, VA, "/blog/one", NULL, "DE", "BY", "Munich", t + 60);
    pageview(e, VB, "/", "google.de", "DE", "BE", "Berlin", t);
    pageview(e, VC, "/pricing", "bing.com", "FR", "IDF", "Paris", t);
    pageview(e, VD, "/blog/two", NULL, "FR", "IDF", "Paris", t);
    pageview(e, VE, "/blog/two", NULL, "US", "CA", "San Francisco", t);
    pageview(e, VE, "/pricing", NULL, "US", "CA", "San Francisco", t + 60);
}

static int start(struct env *e, const char *k, const char *cap, struct harness_proc **agg)
{
    int port = harness_free_port();
    static char listen[64], refs[512], kk[64], cc[64];
    char refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    str_format(kk, sizeof kk, "--k_anonymity=%s", k);
    str_format(cc, sizeof cc, "--breakdown_cap=%s", cap);
    char *extra[] = {listen, "--api_token=" TOKEN, kk, cc, refs, NULL};
    *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    return port;
}

static cJSON *get(int port, const char *path, int want)
{
    char *body = NULL;
    int code = harness_http(port, "GET", path, "Authorization: Bearer " TOKEN "\r\n", NULL, 0,
                            &body, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", path, code, body ? body : "");
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc, "%s", body);
    free(body);
    return doc;
}

static cJSON *post(int port, const char *body, int want)
{
    char *resp = NULL;
    int code = harness_http(port, "POST", "/api/v2/query",
                            "Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n",
                            body, strlen(body), &resp, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", body, code, resp ? resp : "");
    cJSON *doc = cJSON_Parse(resp);
    cr_assert_not_null(doc, "not JSON: %s", resp);
    free(resp);
    return doc;
}

static double num(const cJSON *n, const char *what)
{
    cr_assert(cJSON_IsNumber(n), "%s is not a number", what);
    return n->valuedouble;
}

/* v1 aggregate's value of metric */
static double v1_value(const cJSON *doc, const char *metric)
{
    return num(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "results"),
                                                       metric),
                                   "value"),
               metric);
}

/* v2 results[row].metrics[i] */
static double v2_metric(const cJSON *doc, int row, int i)
{
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "results"), row);
    return num(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "metrics"), i), "v2 metric");
}

static const char *v2_dim(const cJSON *doc, int row)
{
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "results"), row);
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "dimensions"), 0);
    cr_assert(cJSON_IsString(d));
    return d->valuestring;
}

#define Q "/api/v1/stats/"
#define S "site_id=" SITE "&period=day"
#define V2(filters) \
    "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\"], " \
    "\"date_range\": \"day\", \"filters\": " filters "}"

/* aggregate under a v2 filter: visitors and pageviews */
static void expect_v2(int port, const char *body, double visitors, double pageviews)
{
    cJSON *d = post(port, body, 200);
    cr_expect_eq(v2_metric(d, 0, 0), visitors, "%s: visitors %g", body, v2_metric(d, 0, 0));
    cr_expect_eq(v2_metric(d, 0, 1), pageviews, "%s: pageviews %g", body, v2_metric(d, 0, 1));
    cJSON_Delete(d);
}

/* v1 and v2 give the same visitors and pageviews, and these */
static void expect_both(int port, const char *v1_filter, const char *v2_body, double visitors,
                        double pageviews)
{
    char path[512];
    str_format(path, sizeof path, Q "aggregate?" S "&metrics=visitors,pageviews&filters=%s",
               v1_filter);
    cJSON *a = get(port, path, 200);
    cr_expect_eq(v1_value(a, "visitors"), visitors, "%s: visitors %g", path,
                 v1_value(a, "visitors"));
    cr_expect_eq(v1_value(a, "pageviews"), pageviews, "%s: pageviews %g", path,
                 v1_value(a, "pageviews"));
    cJSON_Delete(a);
    expect_v2(port, v2_body, visitors, pageviews);
}

Test(aggregator_filter_ops, operators_exact_and_v1_v2_agree, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    struct harness_proc *agg;
    int port = start(e, "2", "1000", &agg);

    /* is_not: events on the other pages; visitors = those with such events */
    expect_both(port, "event:page!%3D/",
                V2("[[\"is_not\", \"event:page\", [\"/\"]]]"), 4, 5);
    expect_both(port, "event:page!%3D/%7C/pricing",
                V2("[[\"is_not\", \"event:page\", [\"/\", \"/pricing\"]]]"), 3, 3);
    /* contains_not */
    expect_both(port, "event:page!~blog",
                V2("[[\"contains_not\", \"event:page\", [\"blog\"]]]"), 4, 4);
    /* a v1 glob and a v2 regular expression over the same rows */
    expect_both(port, "event:page%3D%3D/blog/**",
                V2("[[\"matches\", \"event:page\", [\"^/blog/[a-z]+$\"]]]"), 3, 3);
    expect_both(port, "event:page!%3D/blog/**",
                V2("[[\"matches_not\", \"event:page\", [\"^/blog/\"]]]"), 4, 4);
    /* v1 ';' and v2's list of filters: all of them, over one property */
    expect_both(port, "event:page~blog;event:page!%3D/blog/one",
                V2("[[\"contains\", \"event:page\", [\"blog\"]], [\"is_not\", \"event:page\", "
                   "[\"/blog/one\"]]]"),
                2, 2);
    /* and/or/not (v2 only) */
    expect_v2(port,
              V2("[[\"or\", [[\"is\", \"event:page\", [\"/\"]], [\"matches\", \"event:page\", "
                 "[\"two$\"]]]]]"),
              4, 4);
    expect_v2(port,
              V2("[[\"and\", [[\"contains\", \"event:page\", [\"blog\"]], [\"not\", [\"is\", "
                 "\"event:page\", [\"/blog/one\"]]]]]]"),
              2, 2);
    expect_v2(port, V2("[[\"is\", \"event:page\", [\"/BLOG/ONE\"], {\"case_sensitive\": false}]]"),
              0, 0); /* one visitor: below k, withheld */
    /* a visit dimension: visits too */
    cJSON *a = get(port, Q "aggregate?" S "&metrics=visitors,visits&filters=visit:source!%3DGoogle",
                   200);
    cr_expect_eq(v1_value(a, "visitors"), 3);
    cr_expect_eq(v1_value(a, "visits"), 3);
    cJSON_Delete(a);

    /* a timeseries under is_not: v1 and v2 agree, today has the numbers */
    cJSON *t1 = get(port, Q "timeseries?site_id=" SITE "&period=7d&metrics=visitors"
                            "&filters=event:page!%3D/", 200);
    cJSON *t2 = post(port,
                     "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": "
                     "\"7d\", \"dimensions\": [\"time:day\"], \"filters\": [[\"is_not\", "
                     "\"event:page\", [\"/\"]]]}",
                     200);
    const cJSON *r1 = cJSON_GetObjectItem(t1, "results"), *r2 = cJSON_GetObjectItem(t2, "results");
    cr_assert_eq(cJSON_GetArraySize(r1), 7);
    cr_assert_eq(cJSON_GetArraySize(r2), 7);
    for (int i = 0; i < 7; i++)
        cr_expect_eq(num(cJSON_GetObjectItem(cJSON_GetArrayItem(r1, i), "visitors"), "v1"),
                     v2_metric(t2, i, 0));
    cr_expect_eq(v2_metric(t2, 6, 0), 4);
    cr_expect_str_eq(v2_dim(t2, 6), e->day);
    cJSON_Delete(t1);
    cJSON_Delete(t2);

    /* a breakdown by the filter's own property: only the matching rows */
    cJSON *b1 = get(port, Q "breakdown?" S "&property=event:page&metrics=visitors,pageviews"
                            "&filters=event:page!~blog", 200);
    cJSON *b2 = post(port,
                     "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\"], "
                     "\"date_range\": \"day\", \"dimensions\": [\"event:page\"], \"filters\": "
                     "[[\"contains_not\", \"event:page\", [\"blog\"]]]}",
                     200);
    r1 = cJSON_GetObjectItem(b1, "results");
    r2 = cJSON_GetObjectItem(b2, "results");
    cr_assert_eq(cJSON_GetArraySize(r1), 2, "/ and /pricing");
    cr_assert_eq(cJSON_GetArraySize(r2), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetArrayItem(r1, i);
        cr_expect_str_eq(cJSON_GetObjectItem(x, "page")->valuestring, v2_dim(b2, i));
        cr_expect_eq(num(cJSON_GetObjectItem(x, "visitors"), "v1"), v2_metric(b2, i, 0));
        cr_expect_eq(v2_metric(b2, i, 0), 2);
        cr_expect(strstr(v2_dim(b2, i), "blog") == NULL);
    }
    cJSON_Delete(b1);
    cJSON_Delete(b2);
    /* k-anonymity on filtered rows: /blog/one (1 visitor) folds, (other) of 1 is not shown */
    b2 = post(port,
              "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
              "\"dimensions\": [\"event:page\"], \"filters\": [[\"matches\", \"event:page\", "
              "[\"^/blog\"]]]}",
              200);
    r2 = cJSON_GetObjectItem(b2, "results");
    cr_expect_eq(cJSON_GetArraySize(r2), 1, "only /blog/two (2 visitors) is published");
    cr_expect_str_eq(v2_dim(b2, 0), "/blog/two");
    cJSON_Delete(b2);
    agg_stop_ok(agg);
}

Test(aggregator_filter_ops, name_variants_from_iso_codes, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    struct harness_proc *agg;
    int port = start(e, "2", "1000", &agg);

    /* a breakdown by country name: names, not codes; US (1 visitor) withheld */
    cJSON *d = post(port,
                    "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"visits\"], "
                    "\"date_range\": \"day\", \"dimensions\": [\"visit:country_name\"]}",
                    200);
    const cJSON *rows = cJSON_GetObjectItem(d, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 2);
    cr_expect_str_eq(v2_dim(d, 0), "France");
    cr_expect_str_eq(v2_dim(d, 1), "Germany");
    cr_expect_eq(v2_metric(d, 0, 0), 2);
    cr_expect_eq(v2_metric(d, 1, 1), 2);
    cJSON_Delete(d);
    /* the same numbers as the code dimension */
    d = post(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"visit:country\"]}",
             200);
    cr_expect_str_eq(v2_dim(d, 0), "DE"); /* 2 and 2: ties by value, DE before FR */
    cr_expect_eq(v2_metric(d, 0, 0), 2);
    cJSON_Delete(d);
    /* regions: iso-codes' names of CC-RG rows */
    d = post(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"visit:region_name\"]}",
             200);
    cr_expect_str_eq(v2_dim(d, 0), "Île-de-France");
    cr_expect_eq(v2_metric(d, 0, 0), 2);
    cJSON_Delete(d);
    /* city_name is the stored city */
    d = post(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"visit:city_name\"]}",
             200);
    cr_expect_str_eq(v2_dim(d, 0), "Paris");
    cJSON_Delete(d);

    /* filters by name: aggregate, v1 and v2 */
    expect_both(port, "visit:country_name%3D%3DGermany",
                V2("[[\"is\", \"visit:country_name\", [\"Germany\"]]]"), 2, 3);
    expect_both(port, "visit:country_name!%3DGermany",
                V2("[[\"is_not\", \"visit:country_name\", [\"Germany\"]]]"), 3, 4);
    expect_v2(port, V2("[[\"matches\", \"visit:region_name\", [\"^Île\"]]]"), 2, 2);
    /* Plausible's own example: "has a country" (every visitor here has one) */
    expect_both(port, "visit:country_name!%3D",
                V2("[[\"is_not\", \"visit:country_name\", [\"\"]]]"), 5, 7);
    /* a cell below k: Bayern has one visitor, withheld and counted */
    d = post(port, V2("[[\"is\", \"visit:region_name\", [\"Bayern\"]]]"), 200);
    cr_expect_eq(v2_metric(d, 0, 0), 0);
    cr_expect_eq(num(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "meta"), "filter_withheld"), "w"),
                 1);
    cJSON_Delete(d);
    /* v1: a breakdown by the code filtered by the name (one property) */
    d = get(port, Q "breakdown?" S "&property=visit:country&metrics=visitors"
                    "&filters=visit:country_name!%3DGermany", 200);
    rows = cJSON_GetObjectItem(d, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 1, "FR; US (1 visitor) is below k");
    cr_expect_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "country")->valuestring,
                     "FR");
    cJSON_Delete(d);
    /* a breakdown by name filtered by its code property: the same rows */
    d = post(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"visit:country_name\"], \"filters\": [[\"is_not\", "
             "\"visit:country\", [\"FR\"]]]}",
             200);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(d, "results")), 1);
    cr_expect_str_eq(v2_dim(d, 0), "Germany");
    cJSON_Delete(d);
    agg_stop_ok(agg);
}

Test(aggregator_filter_ops, other_row_and_refusals, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    /* two rows per breakdown and day: pages "/" and "/blog/one" are rows,
     * /pricing and /blog/two (VC, VD, VE; 4 views) are folded into (other) */
    struct harness_proc *agg;
    int port = start(e, "1", "2", &agg);

    /* is_not of a stored row: every folded value passes, (other) is included:
     * the same numbers as without a cap */
    expect_both(port, "event:page!%3D/", V2("[[\"is_not\", \"event:page\", [\"/\"]]]"), 4, 5);
    /* is of a stored row: no folded value passes */
    expect_both(port, "event:page%3D%3D/", V2("[[\"is\", \"event:page\", [\"/\"]]]"), 2, 2);
    /* the breakdown by page under is_not shows (other) with its counts */
    cJSON *d = post(port,
                    "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\"], "
                    "\"date_range\": \"day\", \"dimensions\": [\"event:page\"], \"filters\": "
                    "[[\"is_not\", \"event:page\", [\"/\"]]]}",
                    200);
    const cJSON *rows = cJSON_GetObjectItem(d, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 2, "/blog/one and (other)");
    cr_expect_str_eq(v2_dim(d, 1), "(other)");
    cr_expect_eq(v2_metric(d, 1, 0), 3);
    cr_expect_eq(v2_metric(d, 1, 1), 4);
    cJSON_Delete(d);

    /* what could be wrong, and what cannot be answered, is refused with the part named */
    static const struct {
        const char *v1, *v2, *reason;
    } refused[] = {
        {Q "aggregate?" S "&filters=event:page%3D%3D/pricing",
         V2("[[\"is\", \"event:page\", [\"/pricing\"]]]"), "counted together as (other)"},
        {Q "aggregate?" S "&filters=event:page!~blog",
         V2("[[\"contains_not\", \"event:page\", [\"blog\"]]]"), "counted together as (other)"},
        {NULL, V2("[[\"matches_not\", \"event:page\", [\"^/$\"]]]"),
         "counted together as (other)"},
        {NULL, V2("[[\"matches\", \"event:page\", [\"[unclosed\"]]]"),
         "filters: matches on event:page: not a valid regular expression"},
        {NULL, /* v1's ';' across two properties is an and: the pair counts answer it */
         V2("[[\"or\", [[\"is_not\", \"event:page\", [\"/\"]], [\"is\", \"visit:source\", "
            "[\"Google\"]]]]]"),
         "only one property can be filtered at a time"},
        {NULL,
         V2("[[\"not\", [\"not\", [\"not\", [\"not\", [\"not\", [\"is\", \"event:page\", "
            "[\"/\"]]]]]]]]"),
         "and/or/not nest at most 4 deep"},
        {NULL, V2("[[\"has_done\", \"event:goal\", [\"Signup\"]]]"), "has_done"},
        {NULL,
         "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
         "\"dimensions\": [\"event:name\"], \"filters\": [[\"is_not\", \"event:page\", "
         "[\"/\"]]]}",
         "are not counted per pair of values"},
        {Q "aggregate?" S "&metrics=bounce_rate&filters=event:page!%3D/",
         "{\"site_id\": \"" SITE "\", \"metrics\": [\"bounce_rate\"], \"date_range\": \"day\", "
         "\"filters\": [[\"is_not\", \"event:page\", [\"/\"]]]}",
         "bounce_rate is not kept per event:page value"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        if (refused[i].v1) {
            d = get(port, refused[i].v1, 400);
            const cJSON *error = cJSON_GetObjectItem(d, "error");
            cr_expect(cJSON_IsString(error) && strstr(error->valuestring, refused[i].reason),
                      "%s: %s", refused[i].v1, cJSON_IsString(error) ? error->valuestring : "?");
            cJSON_Delete(d);
        }
        d = post(port, refused[i].v2, 400);
        const cJSON *error = cJSON_GetObjectItem(d, "error");
        cr_expect(cJSON_IsString(error) && strstr(error->valuestring, refused[i].reason), "%s: %s",
                  refused[i].v2, cJSON_IsString(error) ? error->valuestring : "?");
        cJSON_Delete(d);
    }
    agg_stop_ok(agg);
}

/* iso-codes missing: --check-config and a start refuse with the path named */
Test(aggregator_filter_ops, missing_iso_codes_stops_the_start, .timeout = 30)
{
    char *dir = harness_tmpdir();
    cr_assert_not_null(dir);
    char arg[500], log[500];
    str_format(arg, sizeof arg, "--iso_codes_dir=%s", dir);
    for (int check = 0; check < 2; check++) {
        str_format(log, sizeof log, "%s/out%d.log", dir, check);
        char *argv[] = {"veil-aggregator", arg, "--redis=unix:/nonexistent.sock",
                        check ? "--check-config" : "--log_level=info", NULL};
        struct harness_proc p;
        cr_assert_eq(harness_spawn(&p, argv, log), 0);
        int status;
        waitpid(p.pid, &status, 0);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "exit %d", status);
        size_t len;
        char *out = harness_read_file(log, &len);
        char want[600];
        str_format(want, sizeof want, "iso_codes_dir: cannot read %s/iso_3166-1.json", dir);
        cr_expect(out && strstr(out, want), "%s", out ? out : "");
        free(out);
    }
    /* empty: no names, and the start goes on (checked by --check-config) */
    str_format(log, sizeof log, "%s/empty.log", dir);
    char *argv[] = {"veil-aggregator", "--iso_codes_dir=", "--check-config", NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit %d", status);
    harness_rmdir(dir);
    free(dir);
}
