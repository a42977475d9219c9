/* test_it_abuse.c - one client against the real collector (issue 13).
 *
 * Each test reproduces one way a single client could exhaust or mislead
 * the collector and shows that it is bounded now: IPv6 address rotation
 * inside a /64, the rate limit multiplied by the thread count, connection
 * hogging (with /healthz still answering), forwarding-header precedence
 * and malformed Forwarded elements, the memory buffer in bytes, future
 * timestamps, bidi characters, and the salt split after Redis loses its
 * data. The rate limit serves as the observable of which address the
 * collector believed: two requests it counts as one client share a burst. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "harness_stream.h"

#define VISITOR_LEN 17 /* struct event_record.visitor */

#define UA "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define GOOD "{\"n\":\"pageview\",\"u\":\"https://example.com/ok\",\"d\":\"example.com\"}"

struct stack {
    char *dir;
    struct harness_redis redis;
    struct harness_proc coll;
    int port;
    redisContext *rc;
};

static void collector_spawn(struct stack *s, struct harness_proc *p, int port, const char *name,
                            char *const *extra)
{
    char listen[64], redis[400], log[400], spool[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool-%s", s->dir, name);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s->redis.socket);
    snprintf(log, sizeof log, "%s/%s.log", s->dir, name);
    char *argv[32] = {"veil-collector", listen, redis, spool, "--sites=example.com"};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(harness_spawn(p, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "collector %s did not start",
                 name);
}

static void stack_start(struct stack *s, char *const *extra)
{
    memset(s, 0, sizeof *s);
    s->dir = harness_tmpdir();
    cr_assert_not_null(s->dir);
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0);
    s->port = harness_free_port();
    collector_spawn(s, &s->coll, s->port, "collector", extra);
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

/* POST `body` with `headers` (a "Name: value\r\n" block, may be NULL). */
static int post(int port, const char *headers, const char *body)
{
    char all[4096];
    snprintf(all, sizeof all, "Content-Type: text/plain\r\nUser-Agent: " UA "\r\n%s",
             headers ? headers : "");
    return harness_http(port, "POST", "/api/event", all, body, strlen(body), NULL, NULL);
}

/* The value of one metric line "name value" at /metrics, or -1. */
static long long metric(int port, const char *name)
{
    char *text = NULL;
    if (harness_http(port, "GET", "/metrics", NULL, NULL, 0, &text, NULL) != 200 || !text) {
        free(text);
        return -1;
    }
    long long v = -1;
    size_t n = strlen(name);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = strtoll(line + n + 1, NULL, 10);
    free(text);
    return v;
}

static long long xlen(redisContext *rc);

/* ---- rate limit: IPv6 /64 and threads ---- */

/* Finding 2a: 300 beacons from rotating addresses of one /64 were all
 * accepted. Now the /64 is one client: its burst, then 429. */
Test(abuse, ipv6_rotation_inside_one_64_is_one_client, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--trusted_proxies=127.0.0.1", "--rate_limit=0.01",
                           "--rate_burst=10", NULL};
    stack_start(&s, extra);
    int accepted = 0, limited = 0;
    for (int i = 0; i < 60; i++) {
        char h[128];
        snprintf(h, sizeof h, "X-Forwarded-For: 2001:db8:7:8:%x:%x:%x:1\r\n", i * 31 + 1, i, i * 7);
        int code = post(s.port, h, GOOD);
        accepted += code == 202;
        limited += code == 429;
    }
    cr_expect_eq(accepted, 10, "one /64 got %d beacons through, its burst is 10", accepted);
    cr_expect_eq(limited, 50);
    cr_expect_eq(post(s.port, "X-Forwarded-For: 2001:db8:7:9::1\r\n", GOOD), 202,
                 "the next /64 is another client");
    stack_stop(&s);
}

/* Finding 2b: the limit was counted per worker thread (2 threads, twice
 * the limit). With 4 threads and connections spread over them by
 * SO_REUSEPORT, one client still gets its burst once. */
Test(abuse, threads_share_one_rate_limit, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--threads=4", "--trusted_proxies=127.0.0.1", "--rate_limit=0.01",
                           "--rate_burst=20", NULL};
    stack_start(&s, extra);
    int accepted = 0;
    for (int i = 0; i < 120; i++) /* a new connection each (Connection: close) */
        accepted += post(s.port, "X-Forwarded-For: 203.0.113.7\r\n", GOOD) == 202;
    /* 0.01/s refills at most a token or two during the test */
    cr_expect(accepted >= 20 && accepted <= 22, "4 threads let %d through, the burst is 20",
              accepted);
    stack_stop(&s);
}

/* Beacons that are never recorded (unknown site, bot) were not rate
 * limited: a free flood. Every parsed beacon takes a token now. (A body
 * that does not parse is answered 400 before the client is known; it
 * costs one parse, within the connection caps.) */
Test(abuse, unrecorded_beacons_count_against_the_rate, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--rate_limit=0.01", "--rate_burst=5", NULL};
    stack_start(&s, extra);
    const char *unknown =
        "{\"n\":\"pageview\",\"u\":\"https://other.example/\",\"d\":\"other.example\"}";
    int accepted = 0, limited = 0;
    for (int i = 0; i < 10; i++) {
        char all[512];
        snprintf(all, sizeof all, "Content-Type: text/plain\r\nUser-Agent: %s\r\n",
                 i % 2 ? UA : "curl/8.5.0");
        int code = harness_http(s.port, "POST", "/api/event", all, i % 2 ? unknown : GOOD,
                                strlen(i % 2 ? unknown : GOOD), NULL, NULL);
        accepted += code == 202;
        limited += code == 429;
    }
    cr_expect_eq(accepted, 5, "%d answered before the limit, the burst is 5", accepted);
    cr_expect_eq(limited, 5);
    cr_expect_eq(post(s.port, NULL, GOOD), 429, "the flood used this client's burst");
    long long xl = xlen(s.rc);
    cr_expect_eq(xl, 0, "none of them was recorded");
    stack_stop(&s);
}

/* ---- connection slots ---- */

static int connect_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* True when the server closed `fd` within `ms` without answering. */
static bool closed_by_server(int fd, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, ms) != 1)
        return false;
    char buf[64];
    return read(fd, buf, sizeof buf) <= 0;
}

/* Finding 3: one client could hold every slot with slow partial requests,
 * so /healthz and everyone else were refused. Now a client (here
 * 127.0.0.2) holds at most max_client_connections; the others and
 * /healthz (from 127.0.0.1) keep being served. */
Test(abuse, connection_hog_is_capped_and_healthz_answers, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--threads=2", "--max_connections=40", "--max_client_connections=8",
                           "--timeout_s=30", "--request_timeout_s=30", "--rate_limit=0", NULL};
    stack_start(&s, extra);
    enum { HOG = 60 };
    int fds[HOG], refused = 0;
    for (int i = 0; i < HOG; i++) {
        fds[i] = connect_from("127.0.0.2", s.port);
        /* slowloris: half a request, then silence */
        cr_assert_eq(write(fds[i], "POST /api/event HTTP/1.1\r\nHost: x\r\n", 35), 35);
    }
    for (int i = 0; i < HOG; i++)
        refused += closed_by_server(fds[i], i < 8 ? 50 : 2000);
    cr_expect_eq(refused, HOG - 8, "the hog kept %d connections, its cap is 8", HOG - refused);
    cr_expect_eq(harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200,
                 "/healthz must answer while a client is throttled");
    cr_expect_eq(post(s.port, NULL, GOOD), 202, "another client is served");
    cr_expect_geq(metric(s.coll.admin_port, "veil_collector_connections_refused_per_client_total"), HOG - 8);
    for (int i = 0; i < HOG; i++)
        close(fds[i]);
    /* the slots come back once the hog's connections close */
    int again = -1;
    for (int tries = 0; tries < 100; tries++) {
        again = connect_from("127.0.0.2", s.port);
        if (!closed_by_server(again, 100))
            break;
        close(again);
        again = -1;
        usleep(20000);
    }
    cr_expect_geq(again, 0, "the client's slots were not given back");
    if (again >= 0)
        close(again);
    stack_stop(&s);
}

/* ---- forwarding headers ---- */

/* Finding 5: a client's X-Forwarded-For beat the trusted proxy's
 * Forwarded. With proxy_header=forwarded only Forwarded is read: changing
 * X-Forwarded-For does not make another client (one shared burst), while
 * a different Forwarded for= does. */
Test(abuse, only_the_named_proxy_header_is_read, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--trusted_proxies=127.0.0.1", "--rate_limit=0.01",
                           "--rate_burst=1", "--proxy_header=forwarded", NULL};
    stack_start(&s, extra);
    cr_expect_eq(post(s.port, "X-Forwarded-For: 6.6.6.1\r\nForwarded: for=203.0.113.7\r\n", GOOD),
                 202);
    cr_expect_eq(post(s.port, "X-Forwarded-For: 6.6.6.2\r\nForwarded: for=203.0.113.7\r\n", GOOD),
                 429, "the client's X-Forwarded-For chose the address");
    cr_expect_eq(post(s.port, "X-Forwarded-For: 6.6.6.3\r\nForwarded: for=203.0.113.8\r\n", GOOD),
                 202, "Forwarded names the client");
    /* X-Real-IP and X-Forwarded-For are ignored too: the proxy's address */
    cr_expect_eq(post(s.port, "X-Real-IP: 6.6.6.4\r\n", GOOD), 202, "the proxy itself");
    cr_expect_eq(post(s.port, "X-Real-IP: 6.6.6.5\r\n", GOOD), 429);
    stack_stop(&s);

    /* proxy_header=x-real-ip: only X-Real-IP */
    char *const real_ip[] = {"--threads=1", "--trusted_proxies=127.0.0.1", "--rate_limit=0.01",
                             "--rate_burst=1", "--proxy_header=x-real-ip", NULL};
    stack_start(&s, real_ip);
    cr_expect_eq(post(s.port, "X-Real-IP: 203.0.113.7\r\nX-Forwarded-For: 6.6.6.1\r\n", GOOD), 202);
    cr_expect_eq(post(s.port, "X-Real-IP: 203.0.113.7\r\nX-Forwarded-For: 6.6.6.2\r\n", GOOD), 429);
    cr_expect_eq(post(s.port, "X-Real-IP: 203.0.113.9\r\n", GOOD), 202);
    stack_stop(&s);
}

/* Finding 6: a trusted proxy's element with a stray trailing quote let a
 * client-written for= win. Now the request counts as the proxy's own:
 * whatever for= the client writes, it is one client (the proxy). */
Test(abuse, malformed_forwarded_falls_back_to_the_proxy, .timeout = 90)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--trusted_proxies=127.0.0.1", "--rate_limit=0.01",
                           "--rate_burst=1", "--proxy_header=forwarded", NULL};
    stack_start(&s, extra);
    int accepted = 0;
    for (int i = 1; i <= 5; i++) {
        char h[160];
        snprintf(h, sizeof h, "Forwarded: for=6.6.6.%d;x=\"\r\nForwarded: for=1.2.3.4\"\r\n", i);
        accepted += post(s.port, h, GOOD) == 202;
    }
    cr_expect_eq(accepted, 1, "%d different client-chosen addresses got through", accepted);
    stack_stop(&s);
}

/* ---- memory ---- */

/* Finding 1: the buffer counted events, not bytes: 20,000 beacons at the
 * body limit took 215 MB. With Redis away and max_buffered_bytes at its
 * 1 MiB minimum, big events spill to the spool once memory holds 1 MiB,
 * long before max_buffered_events. */
Test(abuse, buffer_is_bounded_in_bytes, .timeout = 120)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--rate_limit=0", "--max_buffered_bytes=1048576",
                           "--max_buffered_events=100000", NULL};
    stack_start(&s, extra);
    redisFree(s.rc);
    s.rc = NULL;
    harness_redis_stop(&s.redis); /* Redis away: events wait in memory, then the spool */
    /* ~6.5 KB of props per event, under the 8 KiB body limit */
    static char body[8192];
    int off = snprintf(body, sizeof body,
                       "{\"n\":\"big\",\"u\":\"https://example.com/big\",\"d\":\"example.com\",\"p\":{");
    for (int k = 0; k < 20; k++) {
        off += snprintf(body + off, sizeof body - (size_t)off, "%s\"k%02d", k ? "," : "", k);
        memset(body + off, 'k', 55);
        off += 55;
        off += snprintf(body + off, sizeof body - (size_t)off, "\":\"");
        memset(body + off, 'v', 250);
        off += 250;
        off += snprintf(body + off, sizeof body - (size_t)off, "\"");
    }
    snprintf(body + off, sizeof body - (size_t)off, "}}");
    cr_assert_lt(strlen(body), 8192);
    int accepted = 0;
    for (int i = 0; i < 400; i++)
        accepted += post(s.port, NULL, body) == 202;
    cr_expect_eq(accepted, 400, "accepted while Redis is away");
    long long buffered = metric(s.coll.admin_port, "veil_collector_buffered_events");
    long long spooled = metric(s.coll.admin_port, "veil_collector_spooled_events_total");
    long long bytes_full = metric(s.coll.admin_port, "veil_collector_buffer_bytes_full_total");
    /* each event holds at least 6 KB: 1 MiB is at most ~170 of them */
    cr_expect(buffered > 0 && buffered <= 400, "buffered %lld", buffered);
    cr_expect_gt(spooled, 200, "spooled %lld", spooled);
    cr_expect_gt(bytes_full, 0, "the byte bound was never the reason");
    char *health = NULL;
    harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, &health, NULL);
    free(health);
    cr_expect_eq(harness_stop(&s.coll), 0);
    s.coll.pid = 0;
    harness_rmdir(s.dir);
    free(s.dir);
}

/* ---- time, text ---- */

/* Finding 8: an event's time is the collector's clock, whatever the
 * client writes; a future timestamp in the body changes nothing. (The
 * aggregator's own bound, refusing events from the future past a small
 * skew, is tested with the aggregator.) */
Test(abuse, a_client_timestamp_is_ignored, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--rate_limit=0", NULL};
    stack_start(&s, extra);
    const char *future = "{\"n\":\"pageview\",\"u\":\"https://example.com/f\",\"d\":\"example.com\","
                         "\"ts\":4102444800,\"t\":4102444800000,\"timestamp\":\"2099-12-31\"}";
    int code = post(s.port, NULL, future);
    cr_expect(code == 202 || code == 400, "got %d", code);
    time_t now = time(NULL);
    /* whatever reached the stream carries the collector's time */
    if (code == 202)
        harness_wait_stream_events(s.rc, 1, 2000);
    struct harness_events e;
    char err[160];
    cr_assert(harness_stream_events(s.rc, true, &e, err, sizeof err) >= 0, "%s", err);
    for (size_t i = 0; i < e.n; i++)
        cr_expect(e.ev[i].ts >= now - 5 && e.ev[i].ts <= now + 5, "event time %lld, now %lld",
                  (long long)e.ev[i].ts, (long long)now);
    harness_events_free(&e);
    stack_stop(&s);
}

/* Finding 10: bidirectional-override characters in paths were stored and
 * shown as they are. Now the event is refused with a reason. */
Test(abuse, bidi_and_control_characters_are_refused, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--rate_limit=0", NULL};
    stack_start(&s, extra);
    static const char *const bodies[] = {
        "{\"n\":\"pageview\",\"u\":\"https://example.com/\xe2\x80\xae" "fdp.exe\",\"d\":\"example.com\"}",
        "{\"n\":\"pageview\",\"u\":\"https://example.com/\\u202egnp.js\",\"d\":\"example.com\"}",
        "{\"n\":\"sign\\u2066up\",\"u\":\"https://example.com/\",\"d\":\"example.com\"}",
        "{\"n\":\"x\",\"u\":\"https://example.com/\",\"d\":\"example.com\",\"p\":{\"k\":\"\\u0085\"}}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char *resp = NULL;
        char headers[256];
        snprintf(headers, sizeof headers, "Content-Type: text/plain\r\nUser-Agent: %s\r\n", UA);
        int code = harness_http(s.port, "POST", "/api/event", headers, bodies[i],
                                strlen(bodies[i]), &resp, NULL);
        cr_expect_eq(code, 400, "case %zu: got %d", i, code);
        cr_expect(resp && strstr(resp, "bidirectional"), "case %zu: reason %s", i,
                  resp ? resp : "");
        free(resp);
    }
    cr_expect_eq(post(s.port, NULL, GOOD), 202);
    harness_wait_stream_events(s.rc, 1, 2000);
    usleep(100000); /* anything more would show by now */
    cr_expect_eq(harness_stream_count(s.rc), 1, "only the good event reached the stream");
    stack_stop(&s);
}

/* ---- salts ---- */

/* The visitor hashes of the stream's events whose path starts with
 * `prefix`, latest first, into out[n]. Returns how many. */
static int visitors_of(redisContext *rc, const char *prefix, char out[][VISITOR_LEN], int n)
{
    struct harness_events e;
    char err[160];
    int got = 0;
    if (harness_stream_events(rc, true, &e, err, sizeof err) < 0)
        return 0;
    for (size_t i = e.n; i-- > 0 && got < n;)
        if (strncmp(e.ev[i].path, prefix, strlen(prefix)) == 0)
            snprintf(out[got++], VISITOR_LEN, "%s", e.ev[i].visitor);
    harness_events_free(&e);
    return got;
}

static long long xlen(redisContext *rc)
{
    return harness_stream_count(rc);
}

/* Finding 9: after Redis lost its data, a running collector kept its old
 * salt while a newly started one published a new one: one person, two
 * visitors, for the rest of the day. Now both converge within seconds. */
Test(abuse, salts_converge_after_flushall, .timeout = 120)
{
    struct stack s;
    char *const extra[] = {"--threads=1", "--trusted_proxies=127.0.0.1", "--rate_limit=0", NULL};
    stack_start(&s, extra);
    const char *client = "X-Forwarded-For: 203.0.113.7\r\n";
    cr_assert_eq(post(s.port, client, GOOD), 202);
    for (int i = 0; i < 200 && xlen(s.rc) < 1; i++)
        usleep(10000);
    freeReplyObject(redisCommand(s.rc, "FLUSHALL"));
    /* a second collector starts on the emptied Redis */
    struct harness_proc b;
    int port_b = harness_free_port();
    collector_spawn(&s, &b, port_b, "collector-b", extra);

    bool converged = false;
    int rounds = 0;
    for (; rounds < 100 && !converged; rounds++) { /* 10 s at most */
        char body[160];
        snprintf(body, sizeof body,
                 "{\"n\":\"pageview\",\"u\":\"https://example.com/a/%d\",\"d\":\"example.com\"}",
                 rounds);
        cr_assert_eq(post(s.port, client, body), 202);
        snprintf(body, sizeof body,
                 "{\"n\":\"pageview\",\"u\":\"https://example.com/b/%d\",\"d\":\"example.com\"}",
                 rounds);
        cr_assert_eq(post(port_b, client, body), 202);
        char path_a[32], path_b[32];
        snprintf(path_a, sizeof path_a, "/a/%d", rounds);
        snprintf(path_b, sizeof path_b, "/b/%d", rounds);
        /* wait for this round's two events */
        for (int w = 0; w < 200; w++) {
            char latest_a[1][VISITOR_LEN], latest_b[1][VISITOR_LEN];
            if (visitors_of(s.rc, path_a, latest_a, 1) == 1 &&
                visitors_of(s.rc, path_b, latest_b, 1) == 1) {
                converged = strcmp(latest_a[0], latest_b[0]) == 0 && latest_a[0][0] != '\0';
                break;
            }
            usleep(10000);
        }
        if (!converged)
            usleep(100000);
    }
    cr_expect(converged, "the two collectors still hash one person differently after %d rounds",
              rounds);
    redisReply *keys = redisCommand(s.rc, "KEYS veil:salt:*");
    cr_expect(keys && keys->type == REDIS_REPLY_ARRAY && keys->elements == 1,
              "one salt in Redis again");
    freeReplyObject(keys);
    cr_expect_eq(harness_stop(&b), 0);
    stack_stop(&s);
}

/* ---- admin endpoints ---- */

/* Finding 10: /metrics was served on the public beacon port. Now it is on
 * the admin listener only (admin_listen, loopback by default); the public
 * port answers 404 for it; /healthz answers on both. */
Test(abuse, metrics_only_on_the_admin_listener, .timeout = 60)
{
    struct stack s;
    char *const extra[] = {"--threads=2", NULL};
    stack_start(&s, extra);
    int admin = s.coll.admin_port;
    cr_assert_gt(admin, 0);
    char *body = NULL;
    cr_expect_eq(harness_http(s.port, "GET", "/metrics", NULL, NULL, 0, &body, NULL), 404);
    cr_expect(body && strstr(body, "veil_collector") == NULL, "no counters on the public port");
    free(body);
    body = NULL;
    cr_expect_eq(harness_http(admin, "GET", "/metrics", NULL, NULL, 0, &body, NULL), 200);
    cr_expect(body && strstr(body, "veil_collector_requests_total") != NULL);
    free(body);
    cr_expect_eq(harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200);
    cr_expect_eq(harness_http(admin, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200);
    /* the admin listener takes no beacons */
    cr_expect_eq(harness_http(admin, "POST", "/api/event", "Content-Type: text/plain\r\n", GOOD,
                              strlen(GOOD), NULL, NULL),
                 405);
    stack_stop(&s);

    /* the default binds loopback */
    char exe[512], cmd[600];
    snprintf(cmd, sizeof cmd, "%s --help 2>&1",
             harness_build_path("veil-collector", exe, sizeof exe));
    FILE *help = popen(cmd, "r");
    cr_assert_not_null(help);
    char line[1024];
    bool loopback = false;
    while (fgets(line, sizeof line, help))
        loopback = loopback || (strstr(line, "--admin_listen") && strstr(line, "\"127.0.0.1:9180\""));
    pclose(help);
    cr_expect(loopback, "admin_listen defaults to loopback");
    s.dir = harness_tmpdir();
    harness_rmdir(s.dir);
    free(s.dir);
}
