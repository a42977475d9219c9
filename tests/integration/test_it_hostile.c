/* test_it_hostile.c - hostile and broken input against the real collector.
 *
 * Each input must get its 4xx with a reason (or, for what evhttp refuses
 * before routing, a 4xx or a closed connection), be counted, and leave the
 * server answering the next request. Nothing of it may reach the stream. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "harness_stream.h"

#define GOOD "{\"n\":\"pageview\",\"u\":\"https://example.com/ok\",\"d\":\"example.com\"}"
#define UA "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"

struct server {
    char *dir;
    struct harness_redis redis;
    struct harness_proc coll;
    int port;
};

static void server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    s->dir = harness_tmpdir();
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0);
    s->port = harness_free_port();
    char listen[64], redis[400], log[400], spool[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s->port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", s->dir);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s->redis.socket);
    snprintf(log, sizeof log, "%s/collector.log", s->dir);
    char *argv[] = {"veil-collector", listen,          redis,           spool, "--threads=1",
                    "--sites=example.com", "--timeout_s=2", "--rate_limit=0", NULL};
    cr_assert_eq(harness_spawn(&s->coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s->port, "/healthz", 15000), 0);
}

static void server_stop(struct server *s)
{
    cr_expect_eq(harness_stop(&s->coll), 0, "collector must still exit cleanly");
    harness_redis_stop(&s->redis);
    harness_rmdir(s->dir);
    free(s->dir);
}

static int post(struct server *s, const char *body, size_t len)
{
    return harness_http(s->port, "POST", "/api/event", "Content-Type: text/plain\r\n" UA, body,
                        len, NULL, NULL);
}

static void still_serving(struct server *s, const char *after)
{
    cr_assert_eq(post(s, GOOD, strlen(GOOD)), 202, "no longer serving after %s", after);
}

static long long stream_len(struct server *s)
{
    redisContext *rc = redisConnectUnix(s->redis.socket);
    long long n = harness_stream_count(rc);
    redisFree(rc);
    return n;
}

Test(hostile, bodies_get_400_with_a_reason_and_are_counted, .timeout = 120)
{
    struct server s;
    server_start(&s);
    static const struct {
        const char *what;
        const char *body;
        size_t len; /* 0 = strlen */
    } cases[] = {
        {"invalid UTF-8", "{\"n\":\"pageview\",\"u\":\"https://example.com/\xc3\x28\"}", 0},
        {"overlong UTF-8", "{\"n\":\"\xc0\xaf\",\"u\":\"https://example.com/\"}", 0},
        {"NUL byte", "{\"n\":\"page\0view\",\"u\":\"https://example.com/\"}", 44},
        {"duplicate key", "{\"n\":\"pageview\",\"n\":\"x\",\"u\":\"https://example.com/\"}", 0},
        {"wrong type", "{\"n\":5.5,\"u\":\"https://example.com/\"}", 0},
        {"url not a string", "{\"n\":\"pageview\",\"u\":[\"https://example.com/\"]}", 0},
        {"negative scroll", "{\"n\":\"s\",\"u\":\"https://example.com/\",\"sd\":-1}", 0},
        {"scroll over 100", "{\"n\":\"s\",\"u\":\"https://example.com/\",\"sd\":101}", 0},
        {"engaged for years", "{\"n\":\"e\",\"u\":\"https://example.com/\",\"e\":99999999999}", 0},
        {"fractional width", "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"w\":1.5}", 0},
        {"huge number", "{\"n\":\"pageview\",\"u\":\"https://example.com/\",\"w\":1e400}", 0},
        {"non-http url", "{\"n\":\"pageview\",\"u\":\"javascript:alert(1)\"}", 0},
        {"data url", "{\"n\":\"pageview\",\"u\":\"data:text/html,hi\"}", 0},
        {"missing name", "{\"u\":\"https://example.com/\"}", 0},
        {"name too long",
         "{\"n\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"u\":\"https://example.com/\"}",
         0},
        {"nested props", "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":{\"a\":{\"b\":{\"c\":1}}}}", 0},
        {"not an object", "[1,2,3]", 0},
        {"truncated", "{\"n\":\"pageview\",\"u\":\"https://exa", 0},
        {"empty", "", 0},
        {"trailing garbage", GOOD "x", 0},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
        char *resp = NULL;
        int code = harness_http(s.port, "POST", "/api/event", "Content-Type: text/plain\r\n" UA,
                                cases[i].body, len, &resp, NULL);
        cr_expect_eq(code, 400, "%s: got %d", cases[i].what, code);
        cr_expect(resp && strlen(resp) > 1 && strlen(resp) < 200, "%s: a short reason",
                  cases[i].what);
        free(resp);
        still_serving(&s, cases[i].what);
    }
    /* 100000 nested arrays, 31 props (30 kept) */
    size_t deep = 100000;
    char *nested = malloc(deep + 64);
    int off = snprintf(nested, 64, "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":");
    memset(nested + off, '[', deep - (size_t)off);
    cr_expect_eq(harness_http(s.port, "POST", "/api/event", "Content-Type: text/plain\r\n" UA,
                              nested, 4000, NULL, NULL),
                 400, "deeply nested");
    free(nested);
    char props[4096];
    off = snprintf(props, sizeof props, "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":{");
    for (int i = 0; i < 31; i++)
        off += snprintf(props + off, sizeof props - (size_t)off, "%s\"k%d\":\"v\"", i ? "," : "", i);
    snprintf(props + off, sizeof props - (size_t)off, "}}");
    /* as Plausible: the first 30 are kept, the rest dropped, the event recorded */
    cr_expect_eq(post(&s, props, strlen(props)), 202, "31 props");
    still_serving(&s, "props");

    /* every 400 was counted, nothing reached the stream but the good ones */
    char *metrics = NULL;
    harness_http(s.coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &metrics, NULL);
    char want[80];
    snprintf(want, sizeof want, "veil_collector_rejected_400_total %zu\n", n + 1);
    cr_expect(strstr(metrics, want) != NULL, "want %s in %s", want, metrics);
    cr_expect(strstr(metrics, "veil_collector_rejections_total{reason=") != NULL);
    free(metrics);
    for (int i = 0; i < 100 && stream_len(&s) < (long long)n + 2; i++)
        usleep(10000);
    cr_expect_eq(stream_len(&s), (long long)n + 2, "only the good events are recorded");
    server_stop(&s);
}

Test(hostile, oversized_requests_are_refused, .timeout = 60)
{
    struct server s;
    server_start(&s);
    /* body over max_body_bytes: a counted 413 */
    size_t big = 9000;
    char *body = malloc(big);
    memset(body, ' ', big);
    cr_expect_eq(post(&s, body, big), 413);
    free(body);
    still_serving(&s, "a large body");
    /* a very large body: refused by evhttp itself, still a 413 */
    big = 200000;
    body = malloc(big);
    memset(body, ' ', big);
    int code = post(&s, body, big);
    cr_expect(code == 413 || code == -1, "huge body: %d", code);
    free(body);
    still_serving(&s, "a huge body");
    /* headers over max_header_bytes */
    size_t hl = 20000;
    char *headers = malloc(hl + 32);
    memcpy(headers, "X-Junk: ", 8);
    memset(headers + 8, 'a', hl);
    memcpy(headers + 8 + hl, "\r\n", 3);
    code = harness_http(s.port, "POST", "/api/event", headers, GOOD, strlen(GOOD), NULL, NULL);
    cr_expect(code == -1 || (code >= 400 && code < 500), "huge headers: %d", code);
    free(headers);
    still_serving(&s, "huge headers");
    /* an absurdly long URL */
    size_t ul = 20000;
    char *url = malloc(ul + 16);
    memcpy(url, "/e.gif?u=", 9);
    memset(url + 9, 'a', ul);
    url[9 + ul] = '\0';
    code = harness_http(s.port, "GET", url, UA, NULL, 0, NULL, NULL);
    cr_expect(code == -1 || (code >= 400 && code < 500), "huge url: %d", code);
    free(url);
    still_serving(&s, "a huge URL");
    server_stop(&s);
}

static int connect_raw(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

Test(hostile, slow_and_idle_connections_are_cut_and_do_not_block, .timeout = 60)
{
    struct server s;
    server_start(&s);
    /* slowloris: half a request line, then silence; and many idle sockets */
    int slow = connect_raw(s.port);
    cr_assert_eq(write(slow, "POST /api/event HTTP/1.1\r\nHost: x\r\n", 35), 35);
    int idle[100];
    for (int i = 0; i < 100; i++)
        idle[i] = connect_raw(s.port);
    still_serving(&s, "100 idle connections");
    /* timeout_s=2: the server must close the slow one within a few seconds */
    struct pollfd pfd = {slow, POLLIN, 0};
    cr_expect_eq(poll(&pfd, 1, 6000), 1, "the slow connection was not cut");
    char buf[512];
    ssize_t r = read(slow, buf, sizeof buf);
    cr_expect(r >= 0, "closed (or answered) by the server");
    close(slow);
    for (int i = 0; i < 100; i++)
        close(idle[i]);
    still_serving(&s, "slowloris");
    server_stop(&s);
}

Test(hostile, bad_methods_paths_and_pixels, .timeout = 60)
{
    struct server s;
    server_start(&s);
    cr_expect_eq(harness_http(s.port, "DELETE", "/api/event", NULL, NULL, 0, NULL, NULL), 405);
    cr_expect_eq(harness_http(s.port, "PUT", "/e.gif", NULL, "x", 1, NULL, NULL), 405);
    cr_expect_eq(harness_http(s.port, "GET", "/../../etc/passwd", NULL, NULL, 0, NULL, NULL), 404);
    cr_expect_eq(harness_http(s.port, "GET", "/e.gif?n=pageview&u=%ZZ", UA, NULL, 0, NULL, NULL),
                 400);
    cr_expect_eq(harness_http(s.port, "GET", "/e.gif?n=pageview&u=https%3A%2F%2Fexample.com%2F%00",
                              UA, NULL, 0, NULL, NULL),
                 400);
    cr_expect_eq(harness_http(s.port, "GET", "/e.gif", UA, NULL, 0, NULL, NULL), 400);
    still_serving(&s, "bad methods and pixels");
    server_stop(&s);
}
