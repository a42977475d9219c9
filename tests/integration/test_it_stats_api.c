/* test_it_stats_api.c - the stats API of the real veil-aggregator against
 * a real redis-server.
 *
 * Known daily counts are written straight into Redis in the docs/KEYS.md
 * schema (HSET, PFADD, SADD, ZADD), then every endpoint is asked over HTTP
 * and its exact answer checked: aggregate, timeseries and breakdown for
 * every property, k-anonymity folding, CSV, tokens (401/403), a 400 naming
 * each bad parameter, DP determinism, retention clipping, realtime, static
 * files, Redis loss and return. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "schema.h"

#define SECRET "s3cr3t-veil-token"
/* printf %s site-token | sha256sum */
#define SITE_TOKEN_SHA256 "c8411df959a2a269e5e59740b597ac0d27c295110ac3acd8e856e7bcb352a724"
#define D0 "2025-01-30"
#define D1 "2025-01-31"
#define D2 "2025-02-01"
#define RANGE "period=custom&date=" D1 "," D2

struct env {
    char *dir;
    struct harness_redis redis;
    struct harness_proc agg;
    int port;
    redisContext *rc;
};

static void env_redis(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->dir = harness_tmpdir();
    cr_assert_not_null(e->dir);
    cr_assert_eq(harness_redis_start(&e->redis, e->dir, false), 0, "redis-server did not start");
    e->rc = redisConnectUnix(e->redis.socket);
    cr_assert(e->rc && !e->rc->err);
}

/* Start veil-aggregator with its API on a free port; extra are more
 * --name=value options (NULL-terminated). */
static void env_agg(struct env *e, const char *const *extra)
{
    char listen[64], redis[400], log[400], dash[400];
    e->port = harness_free_port();
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", e->port);
    snprintf(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    snprintf(log, sizeof log, "%s/aggregator.log", e->dir);
    snprintf(dash, sizeof dash, "--dashboard_dir=%s/dash", e->dir);
    char *argv[32] = {"veil-aggregator", listen, redis, dash, "--api_token=" SECRET,
                      "--api_tokens=example.com=" SITE_TOKEN_SHA256, "--retention_days=3650",
                      "--k_anonymity=1", "--log_level=warn", "--shards=1"};
    int n = 10;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)(uintptr_t)extra[i];
    argv[n] = NULL;
    cr_assert_eq(harness_spawn(&e->agg, argv, log), 0);
    cr_assert_eq(harness_wait_http(e->port, "/healthz", 15000), 0, "aggregator did not start");
}

static void env_stop(struct env *e)
{
    if (e->agg.pid > 0)
        cr_expect_eq(harness_stop(&e->agg), 0, "aggregator did not exit 0 on SIGTERM");
    if (e->rc)
        redisFree(e->rc);
    harness_redis_stop(&e->redis);
    harness_rmdir(e->dir);
    free(e->dir);
}

static void rcmd(struct env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(e->rc, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : e->rc->errstr);
    freeReplyObject(r);
}

/* HTTP GET with an optional bearer token and extra headers. */
static int get(struct env *e, const char *path, const char *token, const char *headers,
               char **body, char **resp_headers)
{
    char h[1024];
    snprintf(h, sizeof h, "%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
             token ? "\r\n" : "", headers ? headers : "");
    return harness_http(e->port, "GET", path, h, NULL, 0, body, resp_headers);
}

static cJSON *get_json(struct env *e, const char *path, const char *token, int want_status)
{
    char *body = NULL;
    int status = get(e, path, token, NULL, &body, NULL);
    cr_assert_eq(status, want_status, "%s: status %d, body %s", path, status, body);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc, "%s: not JSON: %s", path, body);
    free(body);
    return doc;
}

static long long num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(cJSON_IsNumber(v), "no number %s", key);
    return (long long)v->valuedouble;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert(cJSON_IsString(v), "no string %s", key);
    return v->valuestring;
}

static long long agg_value(const cJSON *doc, const char *metric)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "results"), metric);
    cr_assert_not_null(m, "no metric %s", metric);
    return num(m, "value");
}

/* ---- fixtures in the KEYS.md schema ---- */

/* The API runs with shards=1 here: every site's keys are in shard 0.
 * (The pipeline suite reads sites of other shards with the default 16.) */
#define K "veil:{0}:d:"

static void seed_totals(struct env *e)
{
    rcmd(e, "SADD veil:{0}:sites example.com other.example");
    rcmd(e, "HSET " K "example.com:" D0 ":totals pageviews 1 events 1 visits 1 bounces 1");
    rcmd(e, "PFADD " K "example.com:" D0 ":visitors v1 v9");
    rcmd(e, "HSET " K "example.com:" D1 ":totals pageviews 10 events 12 visits 6 bounces 3 "
            "visit_duration_s 600 scroll_sum 300 scroll_n 5 engaged_ms 999");
    rcmd(e, "PFADD " K "example.com:" D1 ":visitors v1 v2 v3 v4 v5");
    rcmd(e, "HSET " K "example.com:" D2 ":totals pageviews 20 events 25 visits 10 bounces 4 "
            "visit_duration_s 900 scroll_sum 700 scroll_n 10");
    /* v1 and v2 again: as with a salt period longer than a day. */
    rcmd(e, "PFADD " K "example.com:" D2 ":visitors v1 v2 w1 w2 w3 w4 w5 w6");
}

static const struct {
    const char *property, *dim, *column;
} props[] = {
    {"event:page", "page", "page"},
    {"event:name", "name", "name"},
    {"event:props:plan", "prop:plan", "plan"},
    {"visit:entry_page", "entry_page", "entry_page"},
    {"visit:source", "source", "source"},
    {"visit:utm_source", "utm_source", "utm_source"},
    {"visit:utm_medium", "utm_medium", "utm_medium"},
    {"visit:utm_campaign", "utm_campaign", "utm_campaign"},
    {"visit:country", "country", "country"},
    {"visit:region", "region", "region"},
    {"visit:city", "city", "city"},
    {"visit:browser", "browser", "browser"},
    {"visit:os", "os", "os"},
    {"visit:device", "device", "device"},
    {"visit:screen", "screen", "screen"},
};

/* Rows X1 (D1+D2), X2 (D1), X3 (D2) of one dimension of example.com. */
static void seed_dim(struct env *e, const char *dim)
{
    rcmd(e, "HSET " K "example.com:" D1 ":b:%s:pv X1 5 X2 1", dim);
    rcmd(e, "HSET " K "example.com:" D1 ":b:%s:vis X1 3 X2 1", dim);
    rcmd(e, "HSET " K "example.com:" D1 ":b:%s:ev X1 6 X2 2", dim);
    rcmd(e, "PFADD " K "example.com:" D1 ":u:%s:X1 v1 v2 v3", dim);
    rcmd(e, "PFADD " K "example.com:" D1 ":u:%s:X2 v4", dim);
    rcmd(e, "HSET " K "example.com:" D2 ":b:%s:pv X1 4 X3 2", dim);
    rcmd(e, "HSET " K "example.com:" D2 ":b:%s:vis X1 2 X3 2", dim);
    rcmd(e, "HSET " K "example.com:" D2 ":b:%s:ev X1 4 X3 2", dim);
    rcmd(e, "PFADD " K "example.com:" D2 ":u:%s:X1 v1 w1", dim);
    rcmd(e, "PFADD " K "example.com:" D2 ":u:%s:X3 w2 w3", dim);
}

static void expect_row(const cJSON *row, const char *column, const char *value, long long visitors,
                       long long pv, long long visits, long long events)
{
    cr_assert_not_null(row, "missing row %s", value);
    cr_expect_str_eq(str(row, column), value);
    cr_expect_eq(num(row, "visitors"), visitors, "%s %s visitors", column, value);
    cr_expect_eq(num(row, "pageviews"), pv, "%s %s pageviews", column, value);
    cr_expect_eq(num(row, "visits"), visits, "%s %s visits", column, value);
    cr_expect_eq(num(row, "events"), events, "%s %s events", column, value);
}

/* ---- tests ---- */

Test(stats_api, aggregate_exact_and_visitors_are_a_union)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    env_agg(&e, NULL);
    cJSON *doc = get_json(&e,
                          "/api/v1/stats/aggregate?site_id=example.com&" RANGE
                          "&metrics=visitors,pageviews,visits,bounce_rate,visit_duration,events,"
                          "scroll_depth",
                          SECRET, 200);
    cr_expect_eq(agg_value(doc, "visitors"), 11, "a union of the day HLLs, not 5 + 8");
    cr_expect_eq(agg_value(doc, "pageviews"), 30);
    cr_expect_eq(agg_value(doc, "visits"), 16);
    cr_expect_eq(agg_value(doc, "bounce_rate"), 44);    /* 100 * 7 / 16 = 43.75 */
    cr_expect_eq(agg_value(doc, "visit_duration"), 94); /* 1500 / 16 = 93.75 */
    cr_expect_eq(agg_value(doc, "events"), 37);
    cr_expect_eq(agg_value(doc, "scroll_depth"), 67); /* 1000 / 15 */
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    cr_assert_not_null(meta);
    cr_expect(strstr(str(meta, "visitors"), "salt period") != NULL);
    const cJSON *range = cJSON_GetObjectItemCaseSensitive(meta, "date_range");
    cr_expect_str_eq(cJSON_GetArrayItem(range, 0)->valuestring, D1);
    cr_expect_str_eq(cJSON_GetArrayItem(range, 1)->valuestring, D2);
    cJSON_Delete(doc);

    /* Default metric is visitors; one day. */
    doc = get_json(&e, "/api/v1/stats/aggregate?site_id=example.com&period=day&date=" D1, SECRET,
                   200);
    cr_expect_eq(agg_value(doc, "visitors"), 5);
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(doc, "results"),
                                                    "pageviews"));
    cJSON_Delete(doc);

    /* A site without data answers zeros, not an error. */
    doc = get_json(&e, "/api/v1/stats/aggregate?site_id=nodata.example&metrics=visitors,"
                       "bounce_rate",
                   SECRET, 200);
    cr_expect_eq(agg_value(doc, "visitors"), 0);
    cr_expect_eq(agg_value(doc, "bounce_rate"), 0);
    cJSON_Delete(doc);
    env_stop(&e);
}

Test(stats_api, timeseries_days_zeros_and_months)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    env_agg(&e, NULL);
    cJSON *doc = get_json(&e,
                          "/api/v1/stats/timeseries?site_id=example.com&period=7d&date=" D2
                          "&metrics=visitors,pageviews,bounce_rate",
                          SECRET, 200);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 7);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "date"), "2025-01-26");
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(num(cJSON_GetArrayItem(rows, i), "visitors"), 0);
        cr_expect_eq(num(cJSON_GetArrayItem(rows, i), "pageviews"), 0);
    }
    const cJSON *r4 = cJSON_GetArrayItem(rows, 4), *r5 = cJSON_GetArrayItem(rows, 5),
                *r6 = cJSON_GetArrayItem(rows, 6);
    cr_expect_str_eq(str(r4, "date"), D0);
    cr_expect_eq(num(r4, "visitors"), 2);
    cr_expect_str_eq(str(r5, "date"), D1);
    cr_expect_eq(num(r5, "visitors"), 5);
    cr_expect_eq(num(r5, "pageviews"), 10);
    cr_expect_eq(num(r5, "bounce_rate"), 50);
    cr_expect_str_eq(str(r6, "date"), D2);
    cr_expect_eq(num(r6, "visitors"), 8);
    cr_expect_eq(num(r6, "pageviews"), 20);
    cr_expect_eq(num(r6, "bounce_rate"), 40);
    cJSON_Delete(doc);

    doc = get_json(&e,
                   "/api/v1/stats/timeseries?site_id=example.com&period=custom&date=2024-12-15,"
                   "2025-02-10&interval=month&metrics=visitors,pageviews",
                   SECRET, 200);
    rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 3);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "date"), "2024-12-01");
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 0), "visitors"), 0);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 1), "date"), "2025-01-01");
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 1), "visitors"), 6, "v1..v5 and v9, v1 once");
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 1), "pageviews"), 11);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 2), "date"), "2025-02-01");
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 2), "visitors"), 8);
    cJSON_Delete(doc);
    env_stop(&e);
}

Test(stats_api, breakdown_every_property_exact_with_k_1)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        seed_dim(&e, props[i].dim);
    env_agg(&e, NULL);
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        char path[300];
        snprintf(path, sizeof path,
                 "/api/v1/stats/breakdown?site_id=example.com&" RANGE
                 "&property=%s&metrics=visitors,pageviews,visits,events",
                 props[i].property);
        cJSON *doc = get_json(&e, path, SECRET, 200);
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
        cr_assert_eq(cJSON_GetArraySize(rows), 3, "%s", props[i].property);
        /* only the metrics the dimension has are read (schema.h): page has
         * no visits, entry_page only visits */
        unsigned m = schema_find(props[i].dim)->metrics;
        long long pv = (m & SCHEMA_PV) != 0, vis = (m & SCHEMA_VIS) != 0,
                  ev = (m & SCHEMA_EV) != 0;
        expect_row(cJSON_GetArrayItem(rows, 0), props[i].column, "X1", 4, 9 * pv, 5 * vis,
                   10 * ev);
        expect_row(cJSON_GetArrayItem(rows, 1), props[i].column, "X3", 2, 2 * pv, 2 * vis,
                   2 * ev);
        expect_row(cJSON_GetArrayItem(rows, 2), props[i].column, "X2", 1, 1 * pv, 1 * vis,
                   2 * ev);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
        cr_expect_eq(num(meta, "k_anonymity"), 1);
        cr_expect_eq(num(meta, "folded_rows"), 0);
        cJSON_Delete(doc);
    }
    /* One day only: X3 is absent, X1 has its D1 counts. */
    cJSON *doc = get_json(&e,
                          "/api/v1/stats/breakdown?site_id=example.com&period=day&date=" D1
                          "&property=visit:country&metrics=pageviews,visitors",
                          SECRET, 200);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 2);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "country"), "X1");
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 0), "visitors"), 3);
    cr_expect_eq(num(cJSON_GetArrayItem(rows, 0), "pageviews"), 5);
    cJSON_Delete(doc);

    /* limit and page. */
    doc = get_json(&e,
                   "/api/v1/stats/breakdown?site_id=example.com&" RANGE
                   "&property=event:page&limit=2&page=2",
                   SECRET, 200);
    rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "page"), "X2");
    cJSON_Delete(doc);
    env_stop(&e);
}

Test(stats_api, k_anonymity_folds_small_rows_into_other)
{
    struct env e;
    env_redis(&e);
    const char *s = K "fold.example:" D1;
    rcmd(&e, "HSET %s:b:page:pv /a 10 /b 3 /c 2 (other) 4 /d 5", s);
    rcmd(&e, "HSET %s:b:page:ev /a 6 /b 2 /c 2 (other) 1 /d 3", s); /* pages have no vis */
    rcmd(&e, "PFADD %s:u:page:/a a1 a2 a3 a4 a5 a6", s);
    rcmd(&e, "PFADD %s:u:page:/b b1 b2", s);
    rcmd(&e, "PFADD %s:u:page:/c c1 c2", s);
    rcmd(&e, "PFADD %s:u:page:(other) o1", s);
    rcmd(&e, "PFADD %s:u:page:/d a1 a2 d1", s);
    rcmd(&e, "HSET %s:b:source:pv x.com 4 y.com 1 z.com 1", s);
    rcmd(&e, "PFADD %s:u:source:x.com s1 s2 s3 s4", s);
    rcmd(&e, "PFADD %s:u:source:y.com s5", s);
    rcmd(&e, "PFADD %s:u:source:z.com s5", s);
    const char *extra[] = {"--k_anonymity=3", NULL};
    env_agg(&e, extra);

    cJSON *doc = get_json(&e,
                          "/api/v1/stats/breakdown?site_id=fold.example&period=day&date=" D1
                          "&property=event:page&metrics=visitors,pageviews,events",
                          SECRET, 200);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 3);
    const cJSON *r0 = cJSON_GetArrayItem(rows, 0), *r1 = cJSON_GetArrayItem(rows, 1),
                *r2 = cJSON_GetArrayItem(rows, 2);
    cr_expect_str_eq(str(r0, "page"), "/a");
    cr_expect_eq(num(r0, "visitors"), 6);
    cr_expect_str_eq(str(r1, "page"), "/d");
    cr_expect_eq(num(r1, "visitors"), 3);
    cr_expect_str_eq(str(r2, "page"), "(other)", "the summary row comes last");
    cr_expect_eq(num(r2, "visitors"), 5, "union of /b, /c and the roll-up's own (other)");
    cr_expect_eq(num(r2, "pageviews"), 3 + 2 + 4);
    cr_expect_eq(num(r2, "events"), 2 + 2 + 1);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    cr_expect_eq(num(meta, "k_anonymity"), 3);
    cr_expect_eq(num(meta, "folded_rows"), 2);
    cr_expect(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(meta, "other_suppressed")));
    cJSON_Delete(doc);

    /* Pages: (other) is on the last page. */
    doc = get_json(&e,
                   "/api/v1/stats/breakdown?site_id=fold.example&period=day&date=" D1
                   "&property=event:page&limit=2&page=2",
                   SECRET, 200);
    rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "page"), "(other)");
    cJSON_Delete(doc);

    /* Sources: the folded rows together are still below k: withheld. */
    doc = get_json(&e,
                   "/api/v1/stats/breakdown?site_id=fold.example&period=day&date=" D1
                   "&property=visit:source&metrics=visitors,pageviews",
                   SECRET, 200);
    rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(rows, 0), "source"), "x.com");
    meta = cJSON_GetObjectItemCaseSensitive(doc, "meta");
    cr_expect_eq(num(meta, "folded_rows"), 2);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "other_suppressed")));
    cJSON_Delete(doc);

    /* Nothing below k ever appears, whatever the property. */
    char *body = NULL;
    cr_assert_eq(get(&e, "/api/v1/stats/breakdown?site_id=fold.example&period=day&date=" D1
                         "&property=visit:source&format=csv",
                     SECRET, NULL, &body, NULL),
                 200);
    cr_expect_str_eq(body, "source,visitors\r\nx.com,4\r\n");
    free(body);
    env_stop(&e);
}

Test(stats_api, large_fold_uses_a_merged_union_and_cleans_up)
{
    struct env e;
    env_redis(&e);
    const int n = 4500; /* more keys than one PFCOUNT carries */
    for (int i = 0; i < n; i++) {
        redisAppendCommand(e.rc, "HSET " K "big.example:" D1 ":b:page:pv /p%d 1", i);
        redisAppendCommand(e.rc, "PFADD " K "big.example:" D1 ":u:page:/p%d h%d", i, i);
    }
    for (int i = 0; i < 2 * n; i++) {
        void *r;
        cr_assert_eq(redisGetReply(e.rc, &r), REDIS_OK);
        freeReplyObject(r);
    }
    const char *extra[] = {"--k_anonymity=2", NULL};
    env_agg(&e, extra);
    cJSON *doc = get_json(&e,
                          "/api/v1/stats/breakdown?site_id=big.example&period=day&date=" D1
                          "&property=event:page&metrics=visitors,pageviews",
                          SECRET, 200);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results");
    cr_assert_eq(cJSON_GetArraySize(rows), 1);
    const cJSON *other = cJSON_GetArrayItem(rows, 0);
    cr_expect_str_eq(str(other, "page"), "(other)");
    cr_expect_eq(num(other, "pageviews"), n);
    long long v = num(other, "visitors");
    cr_expect(v > n * 97 / 100 && v < n * 103 / 100, "HLL union of %d visitors: %lld", n, v);
    cr_expect_eq(num(cJSON_GetObjectItemCaseSensitive(doc, "meta"), "folded_rows"), n);
    cJSON_Delete(doc);
    redisReply *r = redisCommand(e.rc, "KEYS veil:{0}:tmp:*");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    cr_expect_eq(r->elements, 0, "the query-scoped union key was left behind");
    freeReplyObject(r);
    env_stop(&e);
}

Test(stats_api, csv_output_and_formula_guard)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    seed_dim(&e, "page");
    rcmd(&e, "HSET " K "csv.example:" D1 ":b:utm_campaign:pv =1+1 3 spring,sale 2");
    rcmd(&e, "PFADD " K "csv.example:" D1 ":u:utm_campaign:=1+1 a b");
    rcmd(&e, "PFADD " K "csv.example:" D1 ":u:utm_campaign:spring,sale c");
    env_agg(&e, NULL);
    char *body = NULL, *headers = NULL;
    cr_assert_eq(get(&e,
                     "/api/v1/stats/breakdown?site_id=example.com&" RANGE
                     "&property=event:page&metrics=visitors,pageviews&format=csv",
                     SECRET, NULL, &body, &headers),
                 200);
    cr_expect_str_eq(body, "page,visitors,pageviews\r\nX1,4,9\r\nX3,2,2\r\nX2,1,1\r\n");
    cr_expect(strstr(headers, "Content-Type: text/csv") != NULL, "%s", headers);
    free(body);
    free(headers);
    cr_assert_eq(get(&e, "/api/v1/stats/aggregate?site_id=example.com&" RANGE
                         "&metrics=visitors,pageviews",
                     SECRET, "Accept: text/csv\r\n", &body, NULL),
                 200);
    cr_expect_str_eq(body, "visitors,pageviews\r\n11,30\r\n");
    free(body);
    cr_assert_eq(get(&e, "/api/v1/stats/timeseries?site_id=example.com&" RANGE, SECRET,
                     "Accept: text/csv\r\n", &body, NULL),
                 200);
    cr_expect_str_eq(body, "date,visitors\r\n" D1 ",5\r\n" D2 ",8\r\n");
    free(body);
    cr_assert_eq(get(&e, "/api/v1/stats/breakdown?site_id=csv.example&period=day&date=" D1
                         "&property=visit:utm_campaign&metrics=visitors,pageviews&format=csv",
                     SECRET, NULL, &body, NULL),
                 200);
    cr_expect_str_eq(body, "utm_campaign,visitors,pageviews\r\n\"'=1+1\",2,3\r\n\"spring,sale\",1,2\r\n");
    free(body);
    env_stop(&e);
}

Test(stats_api, tokens_401_403_and_sites)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    env_agg(&e, NULL);
    const char *path = "/api/v1/stats/aggregate?site_id=example.com";
    char *body = NULL, *headers = NULL;
    cr_expect_eq(get(&e, path, NULL, NULL, &body, &headers), 401);
    cr_expect(strstr(headers, "WWW-Authenticate: Bearer") != NULL);
    cr_expect(strstr(body, "\"error\"") != NULL);
    free(body);
    free(headers);
    cr_expect_eq(get(&e, path, "wrong", NULL, NULL, NULL), 401);
    cr_expect_eq(get(&e, path, "", NULL, NULL, NULL), 401);
    cr_expect_eq(get(&e, path, NULL, "Authorization: Basic c2VjcmV0\r\n", NULL, NULL), 401);
    cr_expect_eq(get(&e, path, SECRET, NULL, NULL, NULL), 200);
    cr_expect_eq(get(&e, path, "site-token", NULL, NULL, NULL), 200);
    cr_expect_eq(get(&e, "/api/v1/stats/aggregate?site_id=other.example", "site-token", NULL,
                     NULL, NULL),
                 403);
    cr_expect_eq(get(&e, "/api/v1/stats/realtime/visitors?site_id=other.example", "site-token",
                     NULL, NULL, NULL),
                 403);
    /* 401 comes before parameter checks: no probing without a token. */
    cr_expect_eq(get(&e, "/api/v1/stats/aggregate?period=bogus", NULL, NULL, NULL, NULL), 401);

    cJSON *doc = get_json(&e, "/api/v1/sites", SECRET, 200);
    const cJSON *sites = cJSON_GetObjectItemCaseSensitive(doc, "sites");
    cr_assert_eq(cJSON_GetArraySize(sites), 2);
    cr_expect_str_eq(str(cJSON_GetArrayItem(sites, 0), "domain"), "example.com");
    cr_expect_str_eq(str(cJSON_GetArrayItem(sites, 1), "domain"), "other.example");
    cJSON_Delete(doc);
    doc = get_json(&e, "/api/v1/sites", "site-token", 200);
    sites = cJSON_GetObjectItemCaseSensitive(doc, "sites");
    cr_assert_eq(cJSON_GetArraySize(sites), 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(sites, 0), "domain"), "example.com");
    cJSON_Delete(doc);
    cr_expect_eq(get(&e, "/api/v1/sites", NULL, NULL, NULL, NULL), 401);

    /* The plain tokens never reach the log. */
    char logpath[400];
    snprintf(logpath, sizeof logpath, "%s/aggregator.log", e.dir);
    size_t len;
    char *log = harness_read_file(logpath, &len);
    cr_assert_not_null(log);
    cr_expect_not(harness_contains(log, len, SECRET, strlen(SECRET)));
    cr_expect_not(harness_contains(log, len, "site-token", 10));
    free(log);
    env_stop(&e);
}

static int bad_param(struct env *e, const char *path, const char *param)
{
    char *body = NULL;
    int status = get(e, path, SECRET, NULL, &body, NULL);
    cr_expect_eq(status, 400, "%s -> %d %s", path, status, body);
    cJSON *doc = cJSON_Parse(body);
    cr_assert_not_null(doc, "%s: %s", path, body);
    const char *err = str(doc, "error");
    size_t n = strlen(param);
    cr_expect(strncmp(err, param, n) == 0 && err[n] == ':', "%s -> \"%s\", wanted %s", path, err,
              param);
    cJSON_Delete(doc);
    free(body);
    return status == 400;
}

Test(stats_api, every_bad_parameter_is_a_400_naming_it_and_counted)
{
    struct env e;
    env_redis(&e);
    env_agg(&e, NULL);
    const char *A = "/api/v1/stats/aggregate?";
    const char *T = "/api/v1/stats/timeseries?";
    const char *B = "/api/v1/stats/breakdown?";
    const struct {
        const char *base, *query, *param;
    } cases[] = {
        {A, "", "site_id"},
        {A, "site_id=", "site_id"},
        {A, "site_id=example.com&period=2d", "period"},
        {A, "site_id=example.com&period=day&date=2025-02-29", "date"},
        {A, "site_id=example.com&period=custom", "date"},
        {A, "site_id=example.com&period=custom&date=2010-01-01,2025-01-01", "date"},
        {A, "site_id=example.com&metrics=hits", "metrics"},
        {A, "site_id=example.com&format=xml", "format"},
        {A, "site_id=example.com&filters=event:page%3D%3D/a;visit:source%3D%3Db;visit:os%3D%3Dc",
         "filters"},
        {A, "site_id=example.com&filters=visit:source%3Db", "filters"},
        {T, "site_id=example.com&compare=previous_period", "compare"},
        {A, "site_id=example.com&colour=blue", "colour"},
        {A, "site_id=example.com&site_id=example.com", "site_id"},
        {T, "site_id=example.com&interval=fortnight", "interval"},
        {B, "site_id=example.com", "property"},
        {B, "site_id=example.com&property=visit:exit_page&metrics=scroll_depth", "metrics"},
        {B, "site_id=example.com&property=event:page&metrics=bounce_rate", "metrics"},
        {B, "site_id=example.com&property=event:page&limit=1001", "limit"},
        {B, "site_id=example.com&property=event:page&page=0", "page"},
        {"/api/v1/stats/realtime/visitors?", "", "site_id"},
    };
    int aggregate_400 = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s%s", cases[i].base, cases[i].query);
        if (bad_param(&e, path, cases[i].param) && cases[i].base == A)
            aggregate_400++;
    }
    char *body = NULL, *headers = NULL;
    cr_expect_eq(get(&e, "/api/v1/stats/nothing", SECRET, NULL, NULL, NULL), 404);
    cr_expect_eq(get(&e, "/etc/passwd", NULL, NULL, NULL, NULL), 404);
    cr_expect_eq(harness_http(e.port, "POST", "/api/v1/stats/aggregate?site_id=example.com",
                              "Authorization: Bearer " SECRET "\r\n", "x", 1, &body, &headers),
                 405);
    cr_expect(strstr(headers, "Allow: GET, HEAD") != NULL, "%s", headers);
    free(body);
    free(headers);

    cr_assert_eq(get(&e, "/metrics", NULL, NULL, &body, NULL), 200);
    char line[128];
    snprintf(line, sizeof line, "veil_api_requests_total{route=\"aggregate\",status=\"400\"} %d\n",
             aggregate_400);
    cr_expect(strstr(body, line) != NULL, "no [%s] in\n%s", line, body);
    cr_expect(strstr(body, "veil_api_requests_total{route=\"unknown\",status=\"404\"} 2\n"));
    cr_expect(strstr(body, "veil_api_requests_total{route=\"aggregate\",status=\"405\"} 1\n"));
    cr_expect(strstr(body, "veil_api_requests_total{route=\"breakdown\",status=\"400\"} 5\n"));
    cr_expect(strstr(body, "example.com") == NULL, "site ids do not belong in /metrics");
    free(body);
    env_stop(&e);
}

/* All numbers of a response body, for comparing DP answers to the truth. */
static void collect_numbers(const cJSON *node, long long *out, size_t *n, size_t max)
{
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (cJSON_IsNumber(c) && *n < max)
            out[(*n)++] = (long long)c->valuedouble;
        else
            collect_numbers(c, out, n, max);
    }
}

Test(stats_api, dp_noise_is_deterministic_across_queries_and_restarts)
{
    struct env e;
    env_redis(&e);
    seed_totals(&e);
    seed_dim(&e, "page");
    const char *extra[] = {"--dp_epsilon=1", NULL};
    env_agg(&e, extra);
    const char *agg = "/api/v1/stats/aggregate?site_id=example.com&" RANGE
                      "&metrics=visitors,pageviews,visits,events";
    const char *brk = "/api/v1/stats/breakdown?site_id=example.com&" RANGE
                      "&property=event:page&metrics=visitors,pageviews,visits,events";
    char *a1 = NULL, *a2 = NULL, *a3 = NULL, *b1 = NULL, *b2 = NULL, *b3 = NULL;
    cr_assert_eq(get(&e, agg, SECRET, NULL, &a1, NULL), 200);
    cr_assert_eq(get(&e, brk, SECRET, NULL, &b1, NULL), 200);
    cr_assert_eq(get(&e, agg, SECRET, NULL, &a2, NULL), 200);
    cr_assert_eq(get(&e, brk, SECRET, NULL, &b2, NULL), 200);
    cr_expect_str_eq(a1, a2);
    cr_expect_str_eq(b1, b2);

    redisReply *r = redisCommand(e.rc, "GET veil:{0}:dpkey");
    cr_assert(r && r->type == REDIS_REPLY_STRING && r->len == 32, "no 32-byte DP key");
    freeReplyObject(r);

    cr_assert_eq(harness_stop(&e.agg), 0);
    env_agg(&e, extra);
    cr_assert_eq(get(&e, agg, SECRET, NULL, &a3, NULL), 200);
    cr_assert_eq(get(&e, brk, SECRET, NULL, &b3, NULL), 200);
    cr_expect_str_eq(a1, a3, "the same question after a restart");
    cr_expect_str_eq(b1, b3);

    /* Noise is really there: the true answers are 11,30,16,37 and rows
     * 4,9,5,10 / 2,2,2,2 / 1,1,1,2 (as with dp_epsilon 0). */
    const long long truth[] = {11, 30, 16, 37};
    cJSON *doc = cJSON_Parse(a1);
    cr_assert_not_null(doc);
    long long got[64];
    size_t n = 0;
    collect_numbers(cJSON_GetObjectItemCaseSensitive(doc, "results"), got, &n, 64);
    cr_assert_eq(n, 4);
    int differ = 0;
    for (size_t i = 0; i < n; i++)
        differ += got[i] != truth[i];
    cr_expect_eq(num(cJSON_GetObjectItemCaseSensitive(doc, "meta"), "dp_epsilon"), 1);
    cJSON_Delete(doc);
    /* Each row value on its own: with 16 values the chance that none of
     * them moved is below 1e-6, whatever the random key. */
    doc = cJSON_Parse(b1);
    cr_assert_not_null(doc);
    static const struct {
        const char *page;
        long long v[4];
    } truth_rows[] = {{"X1", {4, 9, 5, 10}}, {"X3", {2, 2, 2, 2}}, {"X2", {1, 1, 1, 2}}};
    static const char *const cols[] = {"visitors", "pageviews", "visits", "events"};
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(doc, "results"), *row;
    for (size_t t = 0; t < 3; t++) {
        const cJSON *found = NULL;
        cJSON_ArrayForEach(row, rows)
        {
            if (strcmp(str(row, "page"), truth_rows[t].page) == 0)
                found = row;
        }
        if (!found) {
            differ += 4; /* withheld after the noise */
            continue;
        }
        for (size_t c = 0; c < 4; c++) {
            long long v = num(found, cols[c]);
            cr_expect_geq(v, 0, "a published count below zero");
            differ += v != truth_rows[t].v[c];
        }
    }
    cr_expect_gt(differ, 0, "dp_epsilon=1 changed nothing");
    cJSON_Delete(doc);
    free(a1);
    free(a2);
    free(a3);
    free(b1);
    free(b2);
    free(b3);
    env_stop(&e);
}

Test(stats_api, retention_clips_old_days)
{
    struct env e;
    env_redis(&e);
    char old[11], recent[11];
    time_t now = time(NULL);
    struct tm tm;
    time_t t = now - 10 * 86400;
    strftime(old, sizeof old, "%Y-%m-%d", gmtime_r(&t, &tm));
    t = now - 1 * 86400;
    strftime(recent, sizeof recent, "%Y-%m-%d", gmtime_r(&t, &tm));
    rcmd(&e, "HSET " K "example.com:%s:totals pageviews 100", old);
    rcmd(&e, "HSET " K "example.com:%s:totals pageviews 7", recent);
    const char *extra[] = {"--retention_days=5", NULL};
    env_agg(&e, extra);
    cJSON *doc = get_json(&e, "/api/v1/stats/aggregate?site_id=example.com&period=30d"
                              "&metrics=pageviews",
                          SECRET, 200);
    cr_expect_eq(agg_value(doc, "pageviews"), 7);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "meta"), "clipped_to_retention")));
    cJSON_Delete(doc);
    char path[300];
    snprintf(path, sizeof path,
             "/api/v1/stats/timeseries?site_id=example.com&period=day&date=%s&metrics=pageviews",
             old);
    doc = get_json(&e, path, SECRET, 200);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "results")), 0);
    cJSON_Delete(doc);
    env_stop(&e);
}

Test(stats_api, realtime_healthz_and_redis_loss)
{
    struct env e;
    env_redis(&e);
    long long now = (long long)time(NULL);
    /* per-minute HyperLogLogs: h1 twice, h2, and h3 long ago */
    rcmd(&e, "PFADD veil:{0}:rt:example.com:%lld h1", (now - 10) / 60);
    rcmd(&e, "PFADD veil:{0}:rt:example.com:%lld h1 h2", (now - 100) / 60);
    rcmd(&e, "PFADD veil:{0}:rt:example.com:%lld h3", (now - 1000) / 60);
    env_agg(&e, NULL);
    char *body = NULL;
    cr_assert_eq(get(&e, "/api/v1/stats/realtime/visitors?site_id=example.com", SECRET, NULL,
                     &body, NULL),
                 200);
    cr_expect_str_eq(body, "2\n");
    free(body);
    cr_assert_eq(get(&e, "/healthz", NULL, NULL, &body, NULL), 200);
    cr_expect_str_eq(body, "ok\n");
    free(body);

    redisFree(e.rc);
    e.rc = NULL;
    harness_redis_stop(&e.redis);
    cr_expect_eq(get(&e, "/healthz", NULL, NULL, NULL, NULL), 503);
    cr_expect_eq(get(&e, "/api/v1/stats/aggregate?site_id=example.com", SECRET, NULL, NULL, NULL),
                 503);
    cr_assert_eq(harness_redis_start(&e.redis, e.dir, false), 0);
    e.rc = redisConnectUnix(e.redis.socket);
    cr_assert(e.rc && !e.rc->err);
    rcmd(&e, "HSET " K "example.com:" D1 ":totals pageviews 3");
    cJSON *doc = get_json(&e, "/api/v1/stats/aggregate?site_id=example.com&period=day&date=" D1
                              "&metrics=pageviews",
                          SECRET, 200);
    cr_expect_eq(agg_value(doc, "pageviews"), 3, "reconnected after the loss");
    cJSON_Delete(doc);
    env_stop(&e);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

Test(stats_api, dashboard_static_files)
{
    struct env e;
    env_redis(&e);
    char path[600];
    snprintf(path, sizeof path, "%s/dash", e.dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/dash/static", e.dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/dash/index.html", e.dir);
    put(path, "<!doctype html><title>veil</title>");
    snprintf(path, sizeof path, "%s/dash/static/app.js", e.dir);
    put(path, "console.log('veil')");
    snprintf(path, sizeof path, "%s/outside.txt", e.dir);
    put(path, "outside");
    env_agg(&e, NULL);

    char *body = NULL, *headers = NULL;
    cr_assert_eq(get(&e, "/", NULL, NULL, &body, &headers), 200);
    cr_expect_str_eq(body, "<!doctype html><title>veil</title>");
    cr_expect(strstr(headers, "Content-Type: text/html; charset=utf-8") != NULL);
    cr_expect(strstr(headers, "X-Content-Type-Options: nosniff") != NULL);
    free(body);
    free(headers);
    cr_assert_eq(get(&e, "/static/app.js", NULL, NULL, &body, &headers), 200);
    cr_expect_str_eq(body, "console.log('veil')");
    cr_expect(strstr(headers, "Content-Type: text/javascript") != NULL);
    free(body);
    free(headers);
    cr_expect_eq(harness_http(e.port, "HEAD", "/", NULL, NULL, 0, &body, NULL), 200);
    cr_expect_str_eq(body, "");
    free(body);
    const char *refused[] = {"/static/../../outside.txt", "/static/%2e%2e/%2e%2e/outside.txt",
                             "/static/missing.js", "/static/", "/index.html", "/outside.txt"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_expect_eq(get(&e, refused[i], NULL, NULL, &body, NULL), 404, "%s", refused[i]);
        cr_expect(strstr(body, "outside") == NULL, "%s leaked a file", refused[i]);
        free(body);
    }
    env_stop(&e);
}

Test(stats_api, start_up_failures_are_reported)
{
    struct env e;
    env_redis(&e);
    env_agg(&e, NULL);
    /* A second process on the same port must fail with a reason. */
    char listen[64], redis[400], log[400];
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", e.port);
    snprintf(redis, sizeof redis, "--redis=unix:%s", e.redis.socket);
    snprintf(log, sizeof log, "%s/second.log", e.dir);
    char *argv[] = {"veil-aggregator", listen, redis, "--api_token=x", NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status = -1; /* not reaped yet */
    for (int i = 0; i < 200 && waitpid(p.pid, &status, WNOHANG) == 0; i++)
        usleep(50000);
    if (!WIFEXITED(status))
        harness_kill(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "second bind did not fail");
    size_t len;
    char *text = harness_read_file(log, &len);
    cr_expect(text && strstr(text, "cannot bind"), "%s", text ? text : "(no log)");
    free(text);

    snprintf(log, sizeof log, "%s/third.log", e.dir);
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", harness_free_port());
    char *argv2[] = {"veil-aggregator", listen, redis, "--api_tokens=example.com=nothex", NULL};
    status = -1;
    cr_assert_eq(harness_spawn(&p, argv2, log), 0);
    for (int i = 0; i < 200 && waitpid(p.pid, &status, WNOHANG) == 0; i++)
        usleep(50000);
    if (!WIFEXITED(status))
        harness_kill(&p);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "a bad api_tokens entry was taken");
    text = harness_read_file(log, &len);
    cr_expect(text && strstr(text, "api_tokens"), "%s", text ? text : "(no log)");
    free(text);
    env_stop(&e);
}
