/* test_it_collector.c - the real veil-collector against a real redis-server.
 *
 * Events are sent over HTTP from 127.0.0.1, which the collector is told to
 * trust as a proxy, so X-Forwarded-For carries the test IPs of the geo
 * fixture (tests/fixtures/README.md). The stream is read back and every
 * field checked; then every key and value in Redis and the collector's log
 * are scanned for the IPs (text and binary) and the User-Agents. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <criterion/criterion.h>
#include <hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "harness_stream.h"
#include "util.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define UA_IPHONE                                                                          \
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, " \
    "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
#define UA_BOT "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

struct stack {
    char *dir;
    struct harness_redis redis;
    struct harness_proc coll;
    int port;
    redisContext *rc;
};

static void stack_start(struct stack *s, char *const *extra)
{
    memset(s, 0, sizeof *s);
    s->dir = harness_tmpdir();
    cr_assert_not_null(s->dir);
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0, "redis-server did not start");
    s->port = harness_free_port();
    char listen[64], redis[400], geo[512], log[400], spool[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s->port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", s->dir);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s->redis.socket);
    char fixture[400];
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(log, sizeof log, "%s/collector.log", s->dir);
    char *argv[32] = {"veil-collector", listen, redis, geo, spool, "--threads=2",
                      "--sites=example.com,shop.example", "--trusted_proxies=127.0.0.1"};
    int n = 8;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(harness_spawn(&s->coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s->port, "/healthz", 15000), 0, "collector did not start");
    s->rc = redisConnectUnix(s->redis.socket);
    cr_assert(s->rc && !s->rc->err);
}

static void stack_stop(struct stack *s)
{
    if (s->rc)
        redisFree(s->rc);
    if (s->coll.pid > 0)
        cr_expect_eq(harness_stop(&s->coll), 0, "collector did not exit 0 on SIGTERM");
    harness_redis_stop(&s->redis);
    harness_rmdir(s->dir);
    free(s->dir);
}

static int post_event(struct stack *s, const char *ip, const char *ua, const char *extra_headers,
                      const char *body)
{
    char headers[2048];
    snprintf(headers, sizeof headers,
             "Content-Type: text/plain;charset=UTF-8\r\n%s%s%s%s%s%s", ip ? "X-Forwarded-For: " : "",
             ip ? ip : "", ip ? "\r\n" : "", ua ? "User-Agent: " : "", ua ? ua : "",
             ua ? "\r\n" : "");
    if (extra_headers)
        strncat(headers, extra_headers, sizeof headers - strlen(headers) - 1);
    return harness_http(s->port, "POST", "/api/event", headers, body, strlen(body), NULL, NULL);
}

static long long xlen(struct stack *s)
{
    return harness_stream_count(s->rc);
}

/* Wait until the streams hold `n` events (the delivery is asynchronous). */
static void wait_xlen(struct stack *s, long long n)
{
    cr_assert_eq(harness_wait_stream_events(s->rc, n, 2000), n, "events in the streams");
}

/* Decode stream event `idx` (0-based, in stream order). */
static void read_entry(struct stack *s, size_t idx, struct event_record *ev)
{
    struct harness_events e;
    char err[160];
    cr_assert(harness_stream_events(s->rc, true, &e, err, sizeof err) >= 0, "streams: %s", err);
    cr_assert(e.n > idx, "only %zu events in the streams", e.n);
    *ev = e.ev[idx];
    harness_events_free(&e);
}

static const char *const full_body =
    "{\"n\":\"pageview\",\"u\":\"https://example.com/pricing?utm_source=news&utm_medium="
    "email&utm_campaign=launch&email=a%40b.c#top\",\"d\":\"example.com\","
    "\"r\":\"https://www.google.com/search?q=secret\",\"w\":1280}";

Test(collector, pageview_fields_reach_the_stream, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 1);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.site, "example.com");
    cr_expect_str_eq(ev.name, "pageview");
    cr_expect_str_eq(ev.path, "/pricing");
    cr_expect_str_eq(ev.utm_source, "news");
    cr_expect_str_eq(ev.utm_medium, "email");
    cr_expect_str_eq(ev.utm_campaign, "launch");
    cr_expect_str_eq(ev.referrer, "google.com");
    cr_expect_str_eq(ev.country, "US");
    cr_expect_str_eq(ev.region, "CA");
    cr_expect_str_eq(ev.city, "San Francisco");
    cr_expect_str_eq(ev.browser, "Firefox");
    cr_expect_str_eq(ev.browser_major, "128");
    cr_expect_str_eq(ev.os, "Linux");
    cr_expect_eq(ev.device, DEVICE_DESKTOP);
    cr_expect_str_eq(ev.screen, "laptop");
    cr_expect_eq(strlen(ev.visitor), 16);
    cr_expect_str_eq(ev.ip_truncated, "");
    char today[11];
    utc_day((int64_t)time(NULL), today);
    cr_expect_str_eq(ev.day, today);
    stack_stop(&s);
}

Test(collector, custom_event_props_scroll_engagement_and_v6, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    const char *body = "{\"n\":\"Signup\",\"u\":\"https://shop.example/cart\",\"d\":\"shop.example\","
                       "\"p\":{\"plan\":\"pro\",\"seats\":3},\"sd\":75,\"e\":4200,\"w\":390}";
    cr_assert_eq(post_event(&s, "2001:db8:1::77", UA_IPHONE, NULL, body), 202);
    wait_xlen(&s, 1);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.site, "shop.example");
    cr_expect_str_eq(ev.name, "Signup");
    cr_expect_str_eq(ev.country, "FR");
    cr_expect_str_eq(ev.city, "Paris");
    cr_expect_eq(ev.device, DEVICE_MOBILE);
    cr_expect_str_eq(ev.os, "iOS");
    cr_expect_str_eq(ev.screen, "mobile");
    cr_expect_eq(ev.scroll_depth, 75);
    cr_expect_eq(ev.engaged_ms, 4200);
    cr_assert_eq(ev.nprops, 2);
    cr_expect_str_eq(ev.props[0].key, "plan");
    cr_expect_str_eq(ev.props[0].value, "pro");
    cr_expect_str_eq(ev.props[1].key, "seats");
    cr_expect_str_eq(ev.props[1].value, "3");
    stack_stop(&s);
}

Test(collector, pixel_answers_an_uncacheable_gif, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    char *body = NULL, *headers = NULL;
    int code = harness_http(s.port, "GET",
                            "/e.gif?n=pageview&u=https%3A%2F%2Fexample.com%2Fnoscript&d=example.com",
                            "X-Forwarded-For: 198.51.100.23\r\nUser-Agent: " UA_FIREFOX "\r\n",
                            NULL, 0, &body, &headers);
    cr_assert_eq(code, 200);
    cr_expect(strncmp(body, "GIF89a", 6) == 0);
    cr_expect(strstr(headers, "image/gif") != NULL);
    cr_expect(strstr(headers, "no-store") != NULL);
    free(body);
    free(headers);
    wait_xlen(&s, 1);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.path, "/noscript");
    cr_expect_str_eq(ev.country, "DE");
    stack_stop(&s);
}

Test(collector, rejections_are_4xx_counted_and_harmless, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    char *resp = NULL;
    /* malformed JSON */
    cr_expect_eq(post_event(&s, NULL, UA_FIREFOX, NULL, "{\"n\":"), 400);
    /* missing url */
    cr_expect_eq(post_event(&s, NULL, UA_FIREFOX, NULL, "{\"n\":\"pageview\",\"d\":\"example.com\"}"),
                 400);
    /* non-http URL */
    cr_expect_eq(post_event(&s, NULL, UA_FIREFOX, NULL,
                            "{\"n\":\"pageview\",\"u\":\"javascript:alert(1)\",\"d\":\"example.com\"}"),
                 400);
    /* invalid UTF-8 */
    cr_expect_eq(post_event(&s, NULL, UA_FIREFOX, NULL,
                            "{\"n\":\"page\xff\",\"u\":\"https://example.com/\"}"),
                 400);
    /* unknown site: 202 like a known one (a 404 tells which sites are
     * tracked), not recorded, counted */
    cr_expect_eq(post_event(&s, NULL, UA_FIREFOX, NULL,
                            "{\"n\":\"pageview\",\"u\":\"https://evil.example/\",\"d\":\"evil.example\"}"),
                 202);
    /* oversized body */
    size_t big = 20000;
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    int code = harness_http(s.port, "POST", "/api/event", "Content-Type: text/plain\r\n", huge,
                            big, NULL, NULL);
    cr_expect_eq(code, 413);
    free(huge);
    /* wrong method, wrong media type, unknown path */
    cr_expect_eq(harness_http(s.port, "GET", "/api/event", NULL, NULL, 0, NULL, NULL), 405);
    cr_expect_eq(harness_http(s.port, "POST", "/api/event", "Content-Type: image/png\r\n", "{}", 2,
                              NULL, NULL),
                 415);
    cr_expect_eq(harness_http(s.port, "GET", "/nope", NULL, NULL, 0, NULL, NULL), 404);
    /* a reason is given, and never echoes input */
    code = harness_http(s.port, "POST", "/api/event", "Content-Type: text/plain\r\n",
                        "{\"n\":\"pageview\",\"u\":\"ftp://secret-host/\"}", 38, &resp, NULL);
    cr_expect_eq(code, 400);
    cr_expect(resp && strlen(resp) > 0 && strstr(resp, "secret-host") == NULL);
    free(resp);
    /* still serving */
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 1);
    code = harness_http(s.coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &resp, NULL);
    cr_assert_eq(code, 200);
    cr_expect(strstr(resp, "veil_collector_rejected_400_total 5") != NULL, "%s", resp);
    cr_expect(strstr(resp, "veil_collector_rejected_404_total 1") != NULL);
    cr_expect(strstr(resp, "veil_collector_unknown_site_total 1") != NULL);
    cr_expect(strstr(resp, "veil_collector_rejected_413_total 1") != NULL);
    cr_expect(strstr(resp, "veil_collector_rejected_405_total 1") != NULL);
    cr_expect(strstr(resp, "veil_collector_rejected_415_total 1") != NULL);
    cr_expect(strstr(resp, "veil_collector_events_accepted_total 1") != NULL);
    free(resp);
    stack_stop(&s);
}

Test(collector, cors_preflight, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    char *headers = NULL;
    int code = harness_http(s.port, "OPTIONS", "/api/event",
                            "Origin: https://example.com\r\nAccess-Control-Request-Method: POST\r\n",
                            NULL, 0, NULL, &headers);
    cr_expect_eq(code, 204);
    cr_expect(strstr(headers, "Access-Control-Allow-Origin: *") != NULL);
    cr_expect(strstr(headers, "Access-Control-Allow-Methods") != NULL);
    free(headers);
    stack_stop(&s);
}

Test(collector, dnt_gpc_and_bots_are_answered_but_not_recorded, .timeout = 60)
{
    struct stack s;
    stack_start(&s, NULL);
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, "DNT: 1\r\n", full_body), 202);
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, "Sec-GPC: 1\r\n", full_body), 202);
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_BOT, NULL, full_body), 202);
    cr_expect_eq(post_event(&s, "203.0.113.7", "", NULL, full_body), 202);
    /* a recorded one last, so that the stream has settled when it shows */
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 1);
    usleep(100000);
    cr_expect_eq(xlen(&s), 1);
    stack_stop(&s);
}

Test(collector, honor_dnt_off_records, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--honor_dnt=no", NULL};
    stack_start(&s, extra);
    cr_expect_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, "DNT: 1\r\n", full_body), 202);
    wait_xlen(&s, 1);
    stack_stop(&s);
}

/* A page view of "/v/<n>" (threads deliver in their own order: the path
 * tells the events apart). */
static int post_numbered(struct stack *s, const char *ip, const char *ua, int n)
{
    char body[160];
    snprintf(body, sizeof body,
             "{\"n\":\"pageview\",\"u\":\"https://example.com/v/%d\",\"d\":\"example.com\"}", n);
    return post_event(s, ip, ua, NULL, body);
}

Test(collector, visitor_hash_is_stable_and_shared_between_collectors, .timeout = 90)
{
    struct stack s;
    stack_start(&s, NULL);
    cr_assert_eq(post_numbered(&s, "203.0.113.7", UA_FIREFOX, 0), 202);
    cr_assert_eq(post_numbered(&s, "203.0.113.7", UA_FIREFOX, 1), 202);
    cr_assert_eq(post_numbered(&s, "203.0.113.8", UA_FIREFOX, 2), 202);
    cr_assert_eq(post_numbered(&s, "203.0.113.7", UA_IPHONE, 3), 202);
    wait_xlen(&s, 4);
    /* A second collector on the same Redis adopts the same salt. */
    harness_stop(&s.coll);
    char listen[64], redis[400], log[400], spool[400];
    s.port = harness_free_port();
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool2", s.dir);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s.port);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s.redis.socket);
    snprintf(log, sizeof log, "%s/collector2.log", s.dir);
    char *argv[] = {"veil-collector", listen,      redis, "--threads=1",
                    spool,            "--trusted_proxies=127.0.0.1", NULL};
    cr_assert_eq(harness_spawn(&s.coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s.port, "/healthz", 15000), 0);
    cr_assert_eq(post_numbered(&s, "203.0.113.7", UA_FIREFOX, 4), 202);
    wait_xlen(&s, 5);
    struct event_record ev[5], entry;
    bool seen[5] = {false};
    for (size_t i = 0; i < 5; i++) {
        read_entry(&s, i, &entry);
        int n = -1;
        cr_assert_eq(sscanf(entry.path, "/v/%d", &n), 1, "path %s", entry.path);
        cr_assert(n >= 0 && n < 5 && !seen[n]);
        seen[n] = true;
        ev[n] = entry;
    }
    cr_expect_str_eq(ev[0].visitor, ev[1].visitor, "same IP+UA, same hash");
    cr_expect_str_neq(ev[0].visitor, ev[2].visitor, "another IP");
    cr_expect_str_neq(ev[0].visitor, ev[3].visitor, "another UA");
    cr_expect_str_eq(ev[0].visitor, ev[4].visitor, "another collector, same salt");
    /* The salt expires within two periods (days). */
    redisReply *r = redisCommand(s.rc, "KEYS veil:salt:*");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    redisReply *t = redisCommand(s.rc, "TTL %s", r->element[0]->str);
    cr_expect(t->integer > 0 && t->integer <= 2 * 86400, "salt ttl %lld", t->integer);
    freeReplyObject(t);
    freeReplyObject(r);
    stack_stop(&s);
}

Test(collector, visitor_hash_off_and_ip_keep_truncated, .timeout = 60)
{
    struct stack s;
    /* one thread: the two events must reach the stream in the order sent */
    char *const extra[] = {"--visitor_hash=off", "--ip_keep=truncated", "--geo=country",
                           "--threads=1", NULL};
    stack_start(&s, extra);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    cr_assert_eq(post_event(&s, "2001:db8:1::77", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 2);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.visitor, "");
    cr_expect_str_eq(ev.ip_truncated, "203.0.113.0");
    cr_expect_str_eq(ev.country, "US");
    cr_expect_str_eq(ev.region, "", "geo=country keeps no region");
    cr_expect_str_eq(ev.city, "");
    read_entry(&s, 1, &ev);
    cr_expect_str_eq(ev.ip_truncated, "2001:db8:1::");
    redisReply *r = redisCommand(s.rc, "KEYS veil:salt:*");
    cr_expect_eq(r->elements, 0, "no salt with visitor_hash=off");
    freeReplyObject(r);
    stack_stop(&s);
}

Test(collector, forwarded_headers_ignored_from_untrusted_peers, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--trusted_proxies=10.0.0.0/8", NULL};
    stack_start(&s, extra);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 1);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.country, "", "the forged X-Forwarded-For must not be used");
    stack_stop(&s);
}

/* P1: scan every key and value, and the log, for IPs and User-Agents. */
static void scan_value(const char *buf, size_t len, const char *what)
{
    static const char *const ips[] = {"203.0.113.7", "198.51.100.23", "2001:db8:1::77"};
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        cr_expect(!harness_contains(buf, len, ips[i], strlen(ips[i])), "%s holds %s", what,
                  ips[i]);
        unsigned char bin[16];
        if (inet_pton(AF_INET, ips[i], bin) == 1)
            cr_expect(!harness_contains(buf, len, bin, 4), "%s holds binary %s", what, ips[i]);
        if (inet_pton(AF_INET6, ips[i], bin) == 1)
            cr_expect(!harness_contains(buf, len, bin, 16), "%s holds binary %s", what, ips[i]);
    }
    cr_expect(!harness_contains(buf, len, UA_FIREFOX, strlen(UA_FIREFOX)), "%s holds a UA", what);
    cr_expect(!harness_contains(buf, len, UA_IPHONE, strlen(UA_IPHONE)), "%s holds a UA", what);
    cr_expect(!harness_contains(buf, len, "secret", 6), "%s holds a query", what);
}

Test(collector, privacy_scan_redis_and_logs, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--log_level=debug", NULL};
    stack_start(&s, extra);
    const char *ips[] = {"203.0.113.7", "198.51.100.23", "2001:db8:1::77"};
    for (int i = 0; i < 30; i++)
        cr_assert_eq(post_event(&s, ips[i % 3], i % 2 ? UA_FIREFOX : UA_IPHONE, NULL, full_body),
                     202);
    /* and some rejected ones, which must not log their input either */
    post_event(&s, ips[0], UA_FIREFOX, NULL, "{\"n\":\"pageview\",\"u\":\"https://x/?secret=1\"}");
    wait_xlen(&s, 30);
    redisReply *keys = redisCommand(s.rc, "KEYS *");
    cr_assert(keys && keys->elements >= 2);
    for (size_t k = 0; k < keys->elements; k++) {
        const char *key = keys->element[k]->str;
        scan_value(key, keys->element[k]->len, "a key name");
        redisReply *d = redisCommand(s.rc, "DUMP %s", key);
        cr_assert(d && d->type == REDIS_REPLY_STRING);
        scan_value(d->str, d->len, key);
        freeReplyObject(d);
    }
    freeReplyObject(keys);
    /* every shard stream, raw: a batch value holds its events' bytes as they are */
    redisReply *streams = redisCommand(s.rc, "KEYS veil:{*}:events");
    cr_assert(streams && streams->elements >= 1);
    for (size_t k = 0; k < streams->elements; k++) {
        redisReply *x = redisCommand(s.rc, "XRANGE %s - +", streams->element[k]->str);
        for (size_t i = 0; i < x->elements; i++) {
            redisReply *f = x->element[i]->element[1];
            for (size_t j = 0; j < f->elements; j++)
                scan_value(f->element[j]->str, f->element[j]->len, "a stream field");
        }
        freeReplyObject(x);
    }
    freeReplyObject(streams);
    harness_stop(&s.coll);
    size_t len;
    char *log = harness_read_file(s.coll.log_path, &len);
    cr_assert(log && len > 0, "the collector wrote no log at all");
    scan_value(log, len, "the collector log");
    free(log);
    stack_stop(&s);
}

Test(collector, bad_config_is_fatal_with_file_and_line, .timeout = 30)
{
    char *dir = harness_tmpdir();
    char conf[400], log[400], arg[420];
    snprintf(conf, sizeof conf, "%s/bad.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "# comment\nlisten 127.0.0.1:0\nipv4_prefix 33\n");
    fclose(f);
    snprintf(log, sizeof log, "%s/out.log", dir);
    snprintf(arg, sizeof arg, "--config=%s", conf);
    char *argv[] = {"veil-collector", arg, "--check-config", NULL};
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    size_t len;
    char *out = harness_read_file(log, &len);
    cr_expect(strstr(out, "bad.conf:3: ipv4_prefix") != NULL, "%s", out);
    free(out);
    harness_rmdir(dir);
    free(dir);
}

Test(collector, rate_limit_answers_429_per_client, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--rate_limit=0.5", "--rate_burst=3", "--threads=1", NULL};
    stack_start(&s, extra);
    int accepted = 0, limited = 0;
    for (int i = 0; i < 6; i++) {
        int code = post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body);
        accepted += code == 202;
        limited += code == 429;
    }
    cr_expect_eq(accepted, 3);
    cr_expect_eq(limited, 3);
    cr_expect_eq(post_event(&s, "198.51.100.23", UA_FIREFOX, NULL, full_body), 202,
                 "another client is not limited");
    wait_xlen(&s, 4);
    char *resp = NULL;
    harness_http(s.coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &resp, NULL);
    cr_expect(strstr(resp, "veil_collector_rate_limited_429_total 3") != NULL);
    free(resp);
    stack_stop(&s);
}

static void write_conf(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* SIGHUP: per-request directives and the GeoIP database change at once,
 * connections stay up, and a broken file keeps the running config. */
Test(collector, sighup_reloads_config_and_geo_without_dropping_connections, .timeout = 90)
{
    struct stack s;
    memset(&s, 0, sizeof s);
    s.dir = harness_tmpdir();
    cr_assert_eq(harness_redis_start(&s.redis, s.dir, false), 0);
    s.port = harness_free_port();
    char conf_path[400], text[2048], fixture[400], arg[420], log[400];
    snprintf(conf_path, sizeof conf_path, "%s/veil.conf", s.dir);
    harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture);
    snprintf(text, sizeof text,
             "listen 127.0.0.1:%d\nredis unix:%s\ngeo_db %s\ngeo country\nthreads 1\n"
             "sites example.com\ntrusted_proxies 127.0.0.1\nspool_dir %s/spool\n",
             s.port, s.redis.socket, fixture, s.dir);
    write_conf(conf_path, text);
    snprintf(arg, sizeof arg, "--config=%s", conf_path);
    snprintf(log, sizeof log, "%s/collector.log", s.dir);
    char *argv[] = {"veil-collector", arg, NULL};
    cr_assert_eq(harness_spawn(&s.coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s.port, "/healthz", 15000), 0);
    s.rc = redisConnectUnix(s.redis.socket);

    /* an idle keep-alive connection opened before the reload */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);

    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, "DNT: 1\r\n", full_body), 202);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 1);
    struct event_record ev;
    read_entry(&s, 0, &ev);
    cr_expect_str_eq(ev.country, "US");
    cr_expect_str_eq(ev.city, "", "geo=country before the reload");

    /* reload: city-level geo, DNT not honoured, a restart-only change */
    strncat(text, "geo city\nhonor_dnt no\nthreads 2\n", sizeof text - strlen(text) - 1);
    write_conf(conf_path, text);
    kill(s.coll.pid, SIGHUP);
    usleep(300000);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, "DNT: 1\r\n", full_body), 202);
    wait_xlen(&s, 2);
    read_entry(&s, 1, &ev);
    cr_expect_str_eq(ev.city, "San Francisco", "geo=city after the reload");

    /* the connection opened before the reload still works */
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    cr_expect(n > 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0, "kept connection answered");
    close(fd);

    /* a broken file: reported, the running configuration stays */
    write_conf(conf_path, "geo nowhere\n");
    kill(s.coll.pid, SIGHUP);
    usleep(300000);
    cr_assert_eq(post_event(&s, "203.0.113.7", UA_FIREFOX, NULL, full_body), 202);
    wait_xlen(&s, 3);
    read_entry(&s, 2, &ev);
    cr_expect_str_eq(ev.city, "San Francisco");
    harness_stop(&s.coll);
    size_t len;
    char *out = harness_read_file(log, &len);
    cr_expect(strstr(out, "configuration reloaded") != NULL);
    cr_expect(strstr(out, "reload: threads changed") != NULL, "restart-only change reported");
    cr_expect(strstr(out, "reload failed") != NULL && strstr(out, "veil.conf:1: geo") != NULL,
              "%s", out);
    free(out);
    stack_stop(&s);
}
