/* test_it_compat.c - other trackers' requests end to end, with real parts:
 * Plausible (every tracker version), Umami and Matomo requests over HTTP ->
 * veil-collector -> Redis -> veil-aggregator -> stats API, with exact
 * counts. Only the public behaviour is used (HTTP in, stats API out), so
 * the test holds whatever the stream and the roll-up look like inside. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define UA_HEADLESS                                                                          \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "              \
    "HeadlessChrome/120.0.0.0 Safari/537.36"
#define IP_A "203.0.113.7"
#define IP_B "198.51.100.23"
#define IP_C "2001:db8:1::77"
#define TOKEN "compat-test-token-0123456789"
#define UUID "94db1cb1-74f4-4a40-ad6c-962362670409"

struct pipeline {
    char *dir;
    struct harness_redis redis;
    struct harness_proc collector, aggregator;
    int port, api_port;
};

static struct pipeline p;

static void start_aggregator(void)
{
    char redis[400], api[64], alog[400];
    snprintf(redis, sizeof redis, "--redis=unix:%s", p.redis.socket);
    snprintf(api, sizeof api, "--api_listen=127.0.0.1:%d", p.api_port);
    snprintf(alog, sizeof alog, "%s/aggregator.log", p.dir);
    char *aargv[] = {"veil-aggregator", redis, api, "--k_anonymity=1", "--api_token=" TOKEN,
                     "--block_ms=50", NULL};
    cr_assert_eq(harness_spawn(&p.aggregator, aargv, alog), 0);
    cr_assert_eq(harness_wait_http(p.api_port, "/healthz", 15000), 0, "API did not start");
}

static void pipeline_start_collector(void)
{
    memset(&p, 0, sizeof p);
    p.dir = harness_tmpdir();
    cr_assert_eq(harness_redis_start(&p.redis, p.dir, false), 0);
    p.port = harness_free_port();
    p.api_port = harness_free_port();
    char listen[64], redis[400], log[400], spool[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", p.port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", p.dir);
    snprintf(redis, sizeof redis, "--redis=unix:%s", p.redis.socket);
    snprintf(log, sizeof log, "%s/collector.log", p.dir);
    char *argv[] = {"veil-collector", listen, redis, spool, "--threads=1", "--log_level=debug",
                    "--sites=example.com,other.example", "--trusted_proxies=127.0.0.1",
                    "--umami_website_ids=" UUID "=example.com", "--matomo_site_ids=1=example.com",
                    NULL};
    cr_assert_eq(harness_spawn(&p.collector, argv, log), 0);
    cr_assert_eq(harness_wait_http(p.port, "/healthz", 15000), 0);
}

static void pipeline_start(void)
{
    pipeline_start_collector();
    start_aggregator();
}

static void pipeline_stop(void)
{
    if (p.collector.pid > 0)
        cr_expect_eq(harness_stop(&p.collector), 0, "collector exit status");
    cr_expect_eq(harness_stop(&p.aggregator), 0, "aggregator exit status");
    harness_redis_stop(&p.redis);
    harness_rmdir(p.dir);
    free(p.dir);
}

/* One request; returns the status, the body in *resp when given. */
static int send_as(const char *method, const char *path, const char *ip, const char *ua,
                   const char *content_type, const char *body, char **resp)
{
    char headers[1024];
    snprintf(headers, sizeof headers, "Content-Type: %s\r\nX-Forwarded-For: %s\r\nUser-Agent: %s\r\n",
             content_type, ip, ua);
    return harness_http(p.port, method, path, headers, body, body ? strlen(body) : 0, resp,
                        NULL);
}

static char *api_get(const char *path_and_query)
{
    char *body = NULL;
    int code = harness_http(p.api_port, "GET", path_and_query, "Authorization: Bearer " TOKEN "\r\n",
                            NULL, 0, &body, NULL);
    cr_assert_eq(code, 200, "%s -> %d %s", path_and_query, code, body ? body : "");
    return body;
}

/* Wait until the stats API shows `events` events for `site` (every
 * accepted event rolled up), then give the aggregate. */
static char *wait_events(const char *site, int events)
{
    char path[256], want[64];
    snprintf(path, sizeof path,
             "/api/v1/stats/aggregate?site_id=%s&period=day&metrics=events,pageviews,visitors",
             site);
    snprintf(want, sizeof want, "\"events\": {\"value\": %d}", events);
    for (int i = 0; i < 750; i++) {
        char *body = api_get(path);
        if (strstr(body, want))
            return body;
        free(body);
        usleep(20000);
    }
    cr_assert_fail("%s never reached %d events", site, events);
    return NULL;
}

#define expect_has(body, needle) \
    cr_expect(strstr((body), (needle)) != NULL, "missing %s in %s", (needle), (body))

static void expect_breakdown(const char *site, const char *property, const char *row)
{
    char path[256];
    snprintf(path, sizeof path,
             "/api/v1/stats/breakdown?site_id=%s&period=day&property=%s&metrics=visitors", site,
             property);
    char *body = api_get(path);
    expect_has(body, row);
    free(body);
}

Test(compat, plausible_every_tracker_version, .timeout = 120)
{
    pipeline_start();
    char *resp = NULL;
    /* legacy plausible-tracker: pageview, then a custom event with props as a JSON string */
    cr_assert_eq(send_as("POST", "/api/event", IP_A, UA_FIREFOX, "text/plain",
                         "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
                         "\"r\":null,\"w\":1280,\"h\":0}", &resp), 202);
    cr_assert_str_eq(resp, "ok");
    free(resp);
    cr_assert_eq(send_as("POST", "/api/event", IP_A, UA_FIREFOX, "text/plain",
                         "{\"n\":\"Signup\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
                         "\"r\":null,\"w\":1280,\"h\":0,\"p\":\"{\\\"plan\\\":\\\"pro\\\"}\"}",
                         NULL), 202);
    /* @plausible-analytics/tracker: v, i, engagement; one pageview for two sites */
    cr_assert_eq(send_as("POST", "/api/event", IP_B, UA_FIREFOX, "text/plain",
                         "{\"n\":\"pageview\",\"v\":20,\"u\":\"https://example.com/a\","
                         "\"d\":\"example.com,other.example,not-served.example\",\"r\":\"\"}",
                         NULL), 202);
    cr_assert_eq(send_as("POST", "/api/event", IP_B, UA_FIREFOX, "text/plain",
                         "{\"n\":\"engagement\",\"sd\":60,\"e\":4000,\"i\":false,\"v\":20,"
                         "\"u\":\"https://example.com/a\",\"d\":\"example.com\"}", NULL), 202);
    /* a bot: answered 202 as Plausible does, never counted */
    cr_assert_eq(send_as("POST", "/api/event", IP_C, UA_HEADLESS, "text/plain",
                         "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}",
                         NULL), 202);
    /* only sites Veil does not serve: answered 202 like any event (a 404
     * would tell which sites are tracked), recorded nowhere */
    cr_assert_eq(send_as("POST", "/api/event", IP_C, UA_FIREFOX, "text/plain",
                         "{\"n\":\"pageview\",\"u\":\"https://x.example/\",\"d\":\"x.example,y.example\"}",
                         NULL), 202);

    char *agg = wait_events("example.com", 3);
    expect_has(agg, "\"pageviews\": {\"value\": 2}");
    expect_has(agg, "\"visitors\": {\"value\": 2}");
    free(agg);
    agg = wait_events("other.example", 1);
    expect_has(agg, "\"pageviews\": {\"value\": 1}");
    free(agg);
    expect_breakdown("example.com", "event:props:plan", "{\"plan\": \"pro\", \"visitors\": 1");
    pipeline_stop();
}

Test(compat, umami, .timeout = 120)
{
    pipeline_start();
    char *resp = NULL;
    cr_assert_eq(send_as("POST", "/api/send", IP_A, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"screen\":\"1920x1080\",\"language\":\"en\","
                         "\"title\":\"Home\",\"url\":\"/\",\"referrer\":\"https://news.example/\"}}",
                         &resp), 200);
    cr_assert_str_eq(resp, "{}");
    free(resp);
    cr_assert_eq(send_as("POST", "/api/send", IP_A, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"screen\":\"1920x1080\",\"url\":\"/pricing\","
                         "\"referrer\":\"/\"}}", NULL), 200);
    cr_assert_eq(send_as("POST", "/api/send", IP_B, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"url\":\"/pricing\",\"name\":\"signup\","
                         "\"data\":{\"plan\":\"pro\"}}}", NULL), 200);
    cr_assert_eq(send_as("POST", "/api/send", IP_B, UA_FIREFOX, "application/json",
                         "{\"type\":\"identify\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"url\":\"/\",\"data\":{\"email\":\"a@b.c\"}}}",
                         NULL), 400);
    cr_assert_eq(send_as("POST", "/api/send", IP_B, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"11111111-2222-3333-4444-"
                         "555555555555\",\"hostname\":\"example.com\",\"url\":\"/\"}}", NULL), 200);

    /* the preflight lets Umami 2.10 send back the "{}" it keeps as its cache */
    char *head = NULL;
    cr_assert_eq(harness_http(p.port, "OPTIONS", "/api/send",
                              "Origin: https://example.com\r\nAccess-Control-Request-Method: POST\r\n"
                              "Access-Control-Request-Headers: content-type,x-umami-cache\r\n",
                              NULL, 0, NULL, &head), 204);
    cr_expect(head && strstr(head, "x-umami-cache") && strstr(head, "Access-Control-Allow-Origin: *"),
              "%s", head ? head : "");
    free(head);
    cr_assert_eq(send_as("POST", "/api/send", IP_B, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"url\":\"/pricing\"}}", NULL), 200);

    char *agg = wait_events("example.com", 4);
    expect_has(agg, "\"pageviews\": {\"value\": 3}");
    expect_has(agg, "\"visitors\": {\"value\": 2}");
    free(agg);
    expect_breakdown("example.com", "event:props:plan", "{\"plan\": \"pro\", \"visitors\": 1");
    expect_breakdown("example.com", "visit:source", "{\"source\": \"news.example\", \"visitors\": 1");
    pipeline_stop();
}

Test(compat, matomo, .timeout = 120)
{
    pipeline_start();
    char *resp = NULL;
    cr_assert_eq(send_as("GET",
                         "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&res=1920x1080"
                         "&_id=0123456789abcdef&uid=ann&_idts=1700000000&action_name=Home",
                         IP_A, UA_FIREFOX, "text/plain", NULL, &resp), 200);
    cr_assert(resp && strncmp(resp, "GIF89a", 6) == 0, "not a GIF");
    free(resp);
    cr_assert_eq(send_as("POST", "/piwik.php", IP_B, UA_FIREFOX,
                         "application/x-www-form-urlencoded; charset=UTF-8",
                         "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fdocs&_id=fedcba9876543210",
                         NULL), 204);
    cr_assert_eq(send_as("POST", "/matomo.php", IP_C, UA_FIREFOX, "application/json",
                         "{\"requests\":[\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F"
                         "&e_c=Video&e_a=Play\",\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F"
                         "&link=https%3A%2F%2Fother.example%2F\"]}", NULL), 204);
    cr_assert_eq(send_as("POST", "/matomo.php", IP_C, UA_FIREFOX, "text/plain",
                         "idsite=1&rec=1&ping=1&url=https%3A%2F%2Fexample.com%2F", NULL), 204);
    /* a heartbeat by GET without an image: 204, nothing recorded */
    cr_assert_eq(send_as("GET", "/matomo.php?idsite=1&rec=1&ping=1&send_image=0"
                         "&url=https%3A%2F%2Fexample.com%2F", IP_C, UA_FIREFOX, "text/plain", NULL,
                         NULL), 204);
    cr_assert_eq(send_as("GET", "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F"
                         "&cip=192.0.2.1", IP_C, UA_FIREFOX, "text/plain", NULL, NULL), 400);
    /* an idsite no site is mapped to: answered like the others, not recorded */
    cr_assert_eq(send_as("GET", "/matomo.php?idsite=99&rec=1&url=https%3A%2F%2Fexample.com%2F",
                         IP_C, UA_FIREFOX, "text/plain", NULL, NULL), 200);
    /* a bulk with one bad request records nothing */
    cr_assert_eq(send_as("POST", "/matomo.php", IP_C, UA_FIREFOX, "application/json",
                         "{\"requests\":[\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F\","
                         "\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&cdt=1\"]}", NULL), 400);

    char *agg = wait_events("example.com", 4);
    expect_has(agg, "\"pageviews\": {\"value\": 2}");
    expect_has(agg, "\"visitors\": {\"value\": 3}");
    free(agg);
    expect_breakdown("example.com", "event:name", "{\"name\": \"Video\", \"visitors\": 1");
    expect_breakdown("example.com", "event:name", "{\"name\": \"Outbound Link: Click\", \"visitors\": 1");
    pipeline_stop();
}

/* Every stream in Redis (found by type, whatever its name or entry
 * format), its entries' bytes appended to one buffer the caller frees. */
static char *all_stream_bytes(redisContext *rc, size_t *len, size_t *entries)
{
    size_t cap = 1 << 16;
    char *buf = malloc(cap);
    cr_assert(buf);
    *len = 0;
    *entries = 0;
    redisReply *keys = redisCommand(rc, "KEYS *");
    for (size_t k = 0; keys && k < keys->elements; k++) {
        redisReply *type = redisCommand(rc, "TYPE %s", keys->element[k]->str);
        bool stream = type && type->type == REDIS_REPLY_STATUS && strcmp(type->str, "stream") == 0;
        freeReplyObject(type);
        if (!stream)
            continue;
        redisReply *x = redisCommand(rc, "XRANGE %s - +", keys->element[k]->str);
        for (size_t i = 0; x && i < x->elements; i++, (*entries)++) {
            redisReply *f = x->element[i]->element[1];
            for (size_t j = 0; j < f->elements; j++) {
                size_t n = f->element[j]->len;
                while (*len + n + 1 > cap)
                    cr_assert(buf = realloc(buf, cap *= 2));
                memcpy(buf + *len, f->element[j]->str, n);
                *len += n;
                buf[(*len)++] = '\n';
            }
        }
        freeReplyObject(x);
    }
    freeReplyObject(keys);
    return buf;
}

/* True once the stream holds the three events (their distinct paths). */
static bool delivered(redisContext *rc)
{
    size_t len, entries;
    char *bytes = all_stream_bytes(rc, &len, &entries);
    bool done = harness_contains(bytes, len, "/m1", 3) && harness_contains(bytes, len, "/m2", 3) &&
                harness_contains(bytes, len, "/u3", 3);
    free(bytes);
    return done;
}

static void scan(const char *buf, size_t len, const char *what)
{
    static const char *const markers[] = {"IDMARK", "UIDMARK", "CIDMARK", "UMAMIIDMARK",
                                          "TITLEMARK", "SEARCHMARK", "LANGMARK", "TAGMARK",
                                          IP_A, IP_B};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        cr_expect(!harness_contains(buf, len, markers[i], strlen(markers[i])), "%s holds %s",
                  what, markers[i]);
}

/* What could follow a visitor (Matomo's visitor ids, Umami's distinct id)
 * or is not kept (titles, languages, search keywords) reaches no Redis key,
 * no stream entry and no log line; the events are still counted. */
Test(compat, no_identifier_reaches_redis_or_logs, .timeout = 120)
{
    pipeline_start_collector();
    cr_assert_eq(send_as("GET",
                         "/matomo.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fm1&_id=IDMARK"
                         "&uid=UIDMARK&cid=CIDMARK&_idts=1700000000&_viewts=1700000000"
                         "&_pk_id=IDMARK&action_name=TITLEMARK&lang=LANGMARK",
                         IP_A, UA_FIREFOX, "text/plain", NULL, NULL), 200);
    cr_assert_eq(send_as("GET",
                         "/piwik.php?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fm2"
                         "&search=SEARCHMARK&_id=IDMARK", IP_A, UA_FIREFOX, "text/plain", NULL,
                         NULL), 200);
    cr_assert_eq(send_as("POST", "/api/send", IP_B, UA_FIREFOX, "application/json",
                         "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\","
                         "\"hostname\":\"example.com\",\"url\":\"/u3\",\"title\":\"TITLEMARK\","
                         "\"language\":\"LANGMARK\",\"tag\":\"TAGMARK\",\"id\":\"UMAMIIDMARK\"}}",
                         NULL), 200);
    /* before any aggregator runs: the events wait in the stream */
    redisContext *rc = redisConnectUnix(p.redis.socket);
    cr_assert(rc && !rc->err);
    for (int i = 0; i < 500 && !delivered(rc); i++)
        usleep(20000);
    cr_assert(delivered(rc), "the three events never reached a stream");

    redisReply *keys = redisCommand(rc, "KEYS *");
    cr_assert(keys && keys->elements >= 1);
    for (size_t k = 0; k < keys->elements; k++) {
        const char *key = keys->element[k]->str;
        scan(key, keys->element[k]->len, "a key name");
        redisReply *d = redisCommand(rc, "DUMP %s", key);
        cr_assert(d && d->type == REDIS_REPLY_STRING);
        scan(d->str, d->len, key);
        freeReplyObject(d);
    }
    freeReplyObject(keys);
    size_t len, entries;
    char *bytes = all_stream_bytes(rc, &len, &entries);
    cr_expect_gt(entries, 0, "no stream entry was scanned");
    scan(bytes, len, "a stream entry"); /* whatever the entry format */
    free(bytes);
    redisFree(rc);

    start_aggregator();
    char *agg = wait_events("example.com", 3);
    expect_has(agg, "\"pageviews\": {\"value\": 2}");
    free(agg);
    cr_expect_eq(harness_stop(&p.collector), 0, "collector exit status");
    char *log = harness_read_file(p.collector.log_path, &len);
    cr_assert(log && len > 0);
    scan(log, len, "the collector log");
    free(log);
    pipeline_stop();
}
