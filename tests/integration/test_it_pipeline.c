/* test_it_pipeline.c - the whole pipeline, end to end, with real parts:
 * HTTP beacons -> veil-collector -> Redis stream -> veil-aggregator ->
 * daily counts -> stats API. A known set of events from three visitors
 * (fixture IPs, tests/fixtures/README.md) must come out of the API as
 * exactly the expected numbers, for every metric and every breakdown
 * property; k-anonymity must fold what is below k; and no IP or
 * User-Agent may be left anywhere in Redis or in either daemon's log. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_stream.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define UA_IPHONE                                                                          \
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, " \
    "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
#define IP_A "203.0.113.7"    /* US, CA, San Francisco */
#define IP_B "198.51.100.23"  /* DE, BE, Berlin */
#define IP_C "2001:db8:1::77" /* FR, IDF, Paris */
#define TOKEN "pipeline-test-token-0123456789"
#define SITE "example.com"

struct pipeline {
    char *dir;
    struct harness_redis redis;
    struct harness_proc collector, aggregator;
    int port, api_port;
    redisContext *rc;
};

static void start_aggregator(struct pipeline *p, const char *k)
{
    char redis[400], listen[64], kopt[32], log[400], refs[512], refs_path[400];
    snprintf(redis, sizeof redis, "--redis=unix:%s", p->redis.socket);
    p->api_port = harness_free_port();
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", p->api_port);
    snprintf(kopt, sizeof kopt, "--k_anonymity=%s", k);
    snprintf(log, sizeof log, "%s/aggregator.log", p->dir);
    snprintf(refs, sizeof refs, "--referrer_db=%s",
             harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *argv[] = {"veil-aggregator", redis, listen, kopt, "--api_token=" TOKEN,
                    "--block_ms=50", refs, NULL};
    cr_assert_eq(harness_spawn(&p->aggregator, argv, log), 0);
    cr_assert_eq(harness_wait_http(p->api_port, "/healthz", 15000), 0, "API did not start");
}

static void pipeline_start(struct pipeline *p)
{
    memset(p, 0, sizeof *p);
    p->dir = harness_tmpdir();
    cr_assert_eq(harness_redis_start(&p->redis, p->dir, false), 0);
    p->port = harness_free_port();
    char listen[64], redis[400], geo[512], fixture[400], log[400], spool[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", p->port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", p->dir);
    snprintf(redis, sizeof redis, "--redis=unix:%s", p->redis.socket);
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(log, sizeof log, "%s/collector.log", p->dir);
    /* One thread: A's two page views fall in the same second, so only their
     * order in the stream says which one entered the visit; two threads
     * deliver in their own order (each batches for batch_wait_us). */
    char *argv[] = {"veil-collector", listen, redis, geo, spool, "--threads=1", "--sites=" SITE,
                    "--trusted_proxies=127.0.0.1", NULL};
    cr_assert_eq(harness_spawn(&p->collector, argv, log), 0);
    cr_assert_eq(harness_wait_http(p->port, "/healthz", 15000), 0);
    start_aggregator(p, "1");
    p->rc = redisConnectUnix(p->redis.socket);
    cr_assert(p->rc && !p->rc->err);
}

static void pipeline_stop(struct pipeline *p)
{
    redisFree(p->rc);
    cr_expect_eq(harness_stop(&p->collector), 0, "collector exit status");
    cr_expect_eq(harness_stop(&p->aggregator), 0, "aggregator exit status");
    harness_redis_stop(&p->redis);
    harness_rmdir(p->dir);
    free(p->dir);
}

static void send_event(struct pipeline *p, const char *ip, const char *ua, const char *body)
{
    char headers[1024];
    snprintf(headers, sizeof headers,
             "Content-Type: text/plain\r\nX-Forwarded-For: %s\r\nUser-Agent: %s\r\n", ip, ua);
    cr_assert_eq(harness_http(p->port, "POST", "/api/event", headers, body, strlen(body), NULL,
                              NULL),
                 202, "event not accepted: %s", body);
}

/* The known data set: three visitors, five recorded events plus one
 * engagement event. */
static void send_dataset(struct pipeline *p)
{
    send_event(p, IP_A, UA_FIREFOX,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/?utm_source=newsletter&utm_medium="
               "email&utm_campaign=launch&token=secret\",\"d\":\"example.com\","
               "\"r\":\"https://news.example/story?id=secret\",\"w\":1280}");
    send_event(p, IP_A, UA_FIREFOX,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/pricing\",\"d\":\"example.com\","
               "\"r\":\"https://example.com/\",\"w\":1280}");
    send_event(p, IP_A, UA_FIREFOX,
               "{\"n\":\"Signup\",\"u\":\"https://example.com/pricing\",\"d\":\"example.com\","
               "\"p\":{\"plan\":\"pro\"},\"w\":1280}");
    send_event(p, IP_A, UA_FIREFOX,
               "{\"n\":\"engagement\",\"u\":\"https://example.com/pricing\",\"d\":\"example.com\","
               "\"sd\":80,\"e\":3000,\"w\":1280}");
    send_event(p, IP_B, UA_IPHONE,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"d\":\"example.com\",\"w\":390}");
    send_event(p, IP_C, UA_FIREFOX,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/pricing\",\"d\":\"example.com\","
               "\"r\":\"https://www.google.com/\",\"w\":1280}");
}

/* Wait until the aggregator has consumed and trimmed the whole stream. */
static void wait_rolled_up(struct pipeline *p, int expected_events)
{
    for (int i = 0; i < 500; i++) {
        /* every shard's stream is empty: each entry was counted and trimmed */
        bool done = harness_stream_count(p->rc) == 0;
        if (done && expected_events >= 0) {
            char *body = NULL;
            harness_http(p->api_port, "GET",
                         "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=events",
                         "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &body, NULL);
            char want[64];
            snprintf(want, sizeof want, "\"events\": {\"value\": %d}", expected_events);
            done = body && strstr(body, want);
            free(body);
        }
        if (done)
            return;
        usleep(20000);
    }
    cr_assert_fail("the aggregator did not roll the stream up in time");
}

static char *api_get(struct pipeline *p, const char *path_and_query)
{
    char *body = NULL;
    int code = harness_http(p->api_port, "GET", path_and_query,
                            "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &body, NULL);
    cr_assert_eq(code, 200, "%s -> %d %s", path_and_query, code, body ? body : "");
    return body;
}

/* Assert that `body` contains `needle` (JSON fragments in the API's
 * canonical spacing). */
#define expect_has(body, needle) \
    cr_expect(strstr((body), (needle)) != NULL, "missing %s in %s", (needle), (body))

Test(pipeline, every_metric_and_breakdown_is_exact, .timeout = 120)
{
    struct pipeline p;
    pipeline_start(&p);
    send_dataset(&p);
    wait_rolled_up(&p, 5);

    char *agg = api_get(&p, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics="
                            "visitors,pageviews,visits,bounce_rate,events,scroll_depth");
    expect_has(agg, "\"visitors\": {\"value\": 3}");
    expect_has(agg, "\"pageviews\": {\"value\": 4}");
    expect_has(agg, "\"visits\": {\"value\": 3}");
    expect_has(agg, "\"bounce_rate\": {\"value\": 67}");
    expect_has(agg, "\"events\": {\"value\": 5}");
    expect_has(agg, "\"scroll_depth\": {\"value\": 80}");
    free(agg);

    /* All events arrive within a second or two: durations are 0..2 s. */
    agg = api_get(&p, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=visit_duration");
    cr_expect(strstr(agg, "\"visit_duration\": {\"value\": 0}") ||
                  strstr(agg, "\"visit_duration\": {\"value\": 1}"),
              "%s", agg);
    free(agg);

    char *ts = api_get(&p, "/api/v1/stats/timeseries?site_id=" SITE
                           "&period=day&metrics=visitors,pageviews");
    expect_has(ts, "\"visitors\": 3");
    expect_has(ts, "\"pageviews\": 4");
    free(ts);

    static const struct {
        const char *property;
        const char *rows[4];
    } cases[] = {
        {"event:page",
         {"{\"page\": \"/\", \"visitors\": 2, \"pageviews\": 2}",
          "{\"page\": \"/pricing\", \"visitors\": 2, \"pageviews\": 2}"}},
        {"visit:entry_page",
         {"{\"entry_page\": \"/\", \"visitors\": 2, \"visits\": 2}",
          "{\"entry_page\": \"/pricing\", \"visitors\": 1, \"visits\": 1}"}},
        {"visit:source",
         {"{\"source\": \"news.example\", \"visitors\": 1",
          "{\"source\": \"Google\", \"visitors\": 1",
          "{\"source\": \"Direct / None\", \"visitors\": 1"}},
        {"visit:channel",
         {"{\"channel\": \"Email\", \"visitors\": 1",
          "{\"channel\": \"Organic Search\", \"visitors\": 1",
          "{\"channel\": \"Direct\", \"visitors\": 1"}},
        {"visit:referrer",
         {"{\"referrer\": \"news.example\", \"visitors\": 1",
          "{\"referrer\": \"google.com\", \"visitors\": 1"}},
        {"visit:utm_source", {"{\"utm_source\": \"newsletter\", \"visitors\": 1"}},
        {"visit:utm_medium", {"{\"utm_medium\": \"email\", \"visitors\": 1"}},
        {"visit:utm_campaign", {"{\"utm_campaign\": \"launch\", \"visitors\": 1"}},
        {"visit:country",
         {"{\"country\": \"US\", \"visitors\": 1", "{\"country\": \"DE\", \"visitors\": 1",
          "{\"country\": \"FR\", \"visitors\": 1"}},
        {"visit:region",
         {"{\"region\": \"US-CA\", \"visitors\": 1", "{\"region\": \"DE-BE\", \"visitors\": 1",
          "{\"region\": \"FR-IDF\", \"visitors\": 1"}},
        {"visit:city",
         {"{\"city\": \"San Francisco\", \"visitors\": 1", "{\"city\": \"Berlin\", \"visitors\": 1",
          "{\"city\": \"Paris\", \"visitors\": 1"}},
        {"visit:browser",
         {"{\"browser\": \"Firefox\", \"visitors\": 2", "{\"browser\": \"Mobile Safari\", \"visitors\": 1"}},
        {"visit:os", {"{\"os\": \"Linux\", \"visitors\": 2", "{\"os\": \"iOS\", \"visitors\": 1"}},
        {"visit:device",
         {"{\"device\": \"desktop\", \"visitors\": 2", "{\"device\": \"mobile\", \"visitors\": 1"}},
        {"visit:screen",
         {"{\"screen\": \"laptop\", \"visitors\": 2", "{\"screen\": \"mobile\", \"visitors\": 1"}},
        {"event:name", {"{\"name\": \"Signup\", \"visitors\": 1"}},
        {"event:props:plan", {"{\"plan\": \"pro\", \"visitors\": 1"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        const char *metrics = strncmp(cases[i].property, "visit:entry", 11) == 0
                                  ? "visitors,visits"
                                  : strcmp(cases[i].property, "event:page") == 0
                                        ? "visitors,pageviews"
                                        : "visitors";
        snprintf(path, sizeof path,
                 "/api/v1/stats/breakdown?site_id=" SITE "&period=day&property=%s&metrics=%s",
                 cases[i].property, metrics);
        char *body = api_get(&p, path);
        for (int r = 0; r < 4 && cases[i].rows[r]; r++)
            expect_has(body, cases[i].rows[r]);
        cr_expect(strstr(body, "(other)") == NULL, "%s: nothing folded at k=1: %s",
                  cases[i].property, body);
        free(body);
    }

    /* per-row bounce rate and visit duration, exit pages (docs/API.md): A
     * (news.example, entry /, two pages and a signup) is no bounce and
     * exits at /pricing; B (Direct, /) and C (Google, /pricing) bounce in
     * 0 s; A's seconds are the ones between its beacons */
    static const struct {
        const char *property, *row;
    } per_row[] = {
        {"visit:source", "{\"source\": \"Google\", \"visitors\": 1, \"visits\": 1, "
                         "\"bounce_rate\": 100, \"visit_duration\": 0}"},
        {"visit:source", "{\"source\": \"Direct / None\", \"visitors\": 1, \"visits\": 1, "
                         "\"bounce_rate\": 100, \"visit_duration\": 0}"},
        {"visit:source", "{\"source\": \"news.example\", \"visitors\": 1, \"visits\": 1, "
                         "\"bounce_rate\": 0, \"visit_duration\": "},
        {"visit:entry_page", "{\"entry_page\": \"/pricing\", \"visitors\": 1, \"visits\": 1, "
                             "\"bounce_rate\": 100, \"visit_duration\": 0}"},
        {"visit:entry_page", "{\"entry_page\": \"/\", \"visitors\": 2, \"visits\": 2, "
                             "\"bounce_rate\": 50, \"visit_duration\": "},
        {"visit:country", "{\"country\": \"DE\", \"visitors\": 1, \"visits\": 1, "
                          "\"bounce_rate\": 100, \"visit_duration\": 0}"},
        {"visit:exit_page", "{\"exit_page\": \"/pricing\", \"visitors\": 2, \"visits\": 2, "
                            "\"bounce_rate\": 50, \"visit_duration\": "},
        {"visit:exit_page", "{\"exit_page\": \"/\", \"visitors\": 1, \"visits\": 1, "
                            "\"bounce_rate\": 100, \"visit_duration\": 0}"},
    };
    for (size_t i = 0; i < sizeof per_row / sizeof per_row[0]; i++) {
        char path[256];
        snprintf(path, sizeof path,
                 "/api/v1/stats/breakdown?site_id=" SITE "&period=day&property=%s"
                 "&metrics=visitors,visits,bounce_rate,visit_duration",
                 per_row[i].property);
        char *body = api_get(&p, path);
        expect_has(body, per_row[i].row);
        expect_has(body, "\"visit_rows_missing_days\": 0");
        free(body);
    }
    pipeline_stop(&p);
}

/* Engagement as Plausible's tracker sends it: a page that sent depth 50
 * and then 100 counts once with 100; engagement beacons and i:false events
 * keep a bounce, an interactive custom event ends it. */
Test(pipeline, engagement_follows_plausibles_rules, .timeout = 120)
{
    struct pipeline p;
    pipeline_start(&p);
    /* A: one page, two beacons (50 then 100): a bounce, depth 100 */
    send_event(&p, IP_A, UA_FIREFOX,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/post\",\"d\":\"example.com\"}");
    send_event(&p, IP_A, UA_FIREFOX,
               "{\"n\":\"engagement\",\"u\":\"https://example.com/post\",\"d\":\"example.com\","
               "\"sd\":50,\"e\":1000}");
    send_event(&p, IP_A, UA_FIREFOX,
               "{\"n\":\"engagement\",\"u\":\"https://example.com/post\",\"d\":\"example.com\","
               "\"sd\":100,\"e\":2000}");
    /* B: a non-interactive custom event keeps the bounce */
    send_event(&p, IP_B, UA_IPHONE,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}");
    send_event(&p, IP_B, UA_IPHONE,
               "{\"n\":\"Download\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
               "\"i\":false}");
    /* C: an interactive custom event ends the bounce; depth 20 */
    send_event(&p, IP_C, UA_FIREFOX,
               "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}");
    send_event(&p, IP_C, UA_FIREFOX,
               "{\"n\":\"Signup\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}");
    send_event(&p, IP_C, UA_FIREFOX,
               "{\"n\":\"engagement\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
               "\"sd\":20}");
    wait_rolled_up(&p, 5);
    char *agg = api_get(&p, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics="
                            "visits,bounce_rate,events,scroll_depth");
    expect_has(agg, "\"visits\": {\"value\": 3}");
    expect_has(agg, "\"bounce_rate\": {\"value\": 67}"); /* A and B of 3 */
    expect_has(agg, "\"events\": {\"value\": 5}");
    /* (100 + 20) / 2 page views; the mean of every beacon would be 57 */
    expect_has(agg, "\"scroll_depth\": {\"value\": 60}");
    free(agg);
    pipeline_stop(&p);
}

Test(pipeline, k_anonymity_folds_small_rows, .timeout = 120)
{
    struct pipeline p;
    pipeline_start(&p);
    send_dataset(&p);
    wait_rolled_up(&p, 5);
    harness_stop(&p.aggregator);
    start_aggregator(&p, "3");
    /* Every country has one visitor: all fold into (other), which has 3. */
    char *body = api_get(&p, "/api/v1/stats/breakdown?site_id=" SITE
                             "&period=day&property=visit:country");
    expect_has(body, "{\"country\": \"(other)\", \"visitors\": 3}");
    cr_expect(strstr(body, "\"US\"") == NULL && strstr(body, "\"DE\"") == NULL, "%s", body);
    expect_has(body, "\"folded_rows\": 3");
    free(body);
    /* Pages have two visitors each: both fold; the union is 3 visitors. */
    body = api_get(&p, "/api/v1/stats/breakdown?site_id=" SITE
                       "&period=day&property=event:page&metrics=visitors,pageviews");
    expect_has(body, "{\"page\": \"(other)\", \"visitors\": 3, \"pageviews\": 4}");
    free(body);
    /* One Signup visitor: folded, and (other) below k is withheld. */
    body = api_get(&p, "/api/v1/stats/breakdown?site_id=" SITE "&period=day&property=event:name");
    cr_expect(strstr(body, "Signup") == NULL, "%s", body);
    expect_has(body, "\"other_suppressed\": true");
    free(body);
    /* Totals are not thresholded. */
    body = api_get(&p, "/api/v1/stats/aggregate?site_id=" SITE "&period=day&metrics=visitors");
    expect_has(body, "\"visitors\": {\"value\": 3}");
    free(body);
    pipeline_stop(&p);
}

static void scan(const char *buf, size_t len, const char *what)
{
    static const char *const ips[] = {IP_A, IP_B, IP_C};
    for (size_t i = 0; i < 3; i++) {
        unsigned char bin[16];
        cr_expect(!harness_contains(buf, len, ips[i], strlen(ips[i])), "%s holds %s", what, ips[i]);
        if (inet_pton(AF_INET, ips[i], bin) == 1)
            cr_expect(!harness_contains(buf, len, bin, 4), "%s holds binary %s", what, ips[i]);
        else if (inet_pton(AF_INET6, ips[i], bin) == 1)
            cr_expect(!harness_contains(buf, len, bin, 16), "%s holds binary %s", what, ips[i]);
    }
    cr_expect(!harness_contains(buf, len, UA_FIREFOX, strlen(UA_FIREFOX)), "%s holds a UA", what);
    cr_expect(!harness_contains(buf, len, UA_IPHONE, strlen(UA_IPHONE)), "%s holds a UA", what);
    cr_expect(!harness_contains(buf, len, "secret", 6), "%s holds a query value", what);
}

Test(pipeline, privacy_scan_after_rollup, .timeout = 120)
{
    struct pipeline p;
    pipeline_start(&p);
    send_dataset(&p);
    wait_rolled_up(&p, 5);
    redisReply *keys = redisCommand(p.rc, "KEYS *");
    cr_assert(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements > 5);
    for (size_t k = 0; k < keys->elements; k++) {
        scan(keys->element[k]->str, keys->element[k]->len, "a key name");
        redisReply *d = redisCommand(p.rc, "DUMP %b", keys->element[k]->str,
                                     keys->element[k]->len);
        cr_assert(d && d->type == REDIS_REPLY_STRING);
        scan(d->str, d->len, keys->element[k]->str);
        freeReplyObject(d);
        /* P4: every daily count expires. */
        if (strstr(keys->element[k]->str, ":d:")) {
            redisReply *t = redisCommand(p.rc, "TTL %b", keys->element[k]->str,
                                         keys->element[k]->len);
            cr_expect(t->integer > 0 && t->integer <= 731LL * 86400, "%s ttl %lld",
                      keys->element[k]->str, t->integer);
            freeReplyObject(t);
        }
    }
    freeReplyObject(keys);
    cr_expect_eq(harness_stream_count(p.rc), 0, "P3: counted events are trimmed");
    harness_stop(&p.collector);
    harness_stop(&p.aggregator);
    const char *logs[] = {"collector.log", "aggregator.log"};
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", p.dir, logs[i]);
        size_t n;
        char *log = harness_read_file(path, &n);
        cr_assert(log && n > 0, "%s is empty", logs[i]);
        scan(log, n, logs[i]);
        free(log);
    }
    redisFree(p.rc);
    harness_redis_stop(&p.redis);
    harness_rmdir(p.dir);
    free(p.dir);
}
