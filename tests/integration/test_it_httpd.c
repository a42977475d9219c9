/* test_it_httpd.c - the collector's own HTTP/1.1 server (collector/httpd.c,
 * docs/HTTPD.md) over raw sockets against the real veil-collector and a
 * real redis-server.
 *
 * Keep-alive with many requests on one connection, pipelining (answers in
 * order, one per request, HEAD without a body), HTTP/1.0, chunked bodies,
 * "Expect: 100-continue", repeated X-Forwarded-For lines, the connection
 * cap, the whole-request deadline against a slowloris, a request split at
 * every byte boundary, and a few thousand random and mutated requests that
 * must never stop the server. Each check would fail if the feature broke. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "harness_stream.h"

#define UA "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define GOOD "{\"n\":\"pageview\",\"u\":\"https://example.com/ok\",\"d\":\"example.com\"}"

struct server {
    char *dir;
    struct harness_redis redis;
    struct harness_proc coll;
    int port;
    redisContext *rc;
};

/* The running server of this test (each test is its own process): stopped
 * by the suite's fini even when an assertion ends the test early. */
static struct server *current;

static void cleanup(void)
{
    if (!current)
        return;
    if (current->rc)
        redisFree(current->rc);
    current->rc = NULL;
    harness_kill(&current->coll);
    harness_redis_stop(&current->redis);
    if (current->dir) {
        harness_rmdir(current->dir);
        free(current->dir);
        current->dir = NULL;
    }
    current = NULL;
}

TestSuite(httpd, .fini = cleanup);

static void server_start(struct server *s, char *const *extra)
{
    memset(s, 0, sizeof *s);
    current = s;
    s->dir = harness_tmpdir();
    cr_assert_not_null(s->dir);
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0);
    s->port = harness_free_port();
    char listen[64], redis[400], log[400], spool[400], geo[512], fixture[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s->port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", s->dir);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s->redis.socket);
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(log, sizeof log, "%s/collector.log", s->dir);
    char *argv[32] = {"veil-collector", listen,           redis,
                      spool,            geo,              "--sites=example.com",
                      "--rate_limit=0", "--trusted_proxies=127.0.0.1"};
    int n = 8;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(harness_spawn(&s->coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s->port, "/healthz", 15000), 0, "collector did not start");
    s->rc = redisConnectUnix(s->redis.socket);
    cr_assert(s->rc && !s->rc->err);
}

static void server_stop(struct server *s)
{
    if (s->rc)
        redisFree(s->rc);
    s->rc = NULL;
    cr_expect_eq(harness_stop(&s->coll), 0, "the collector must exit 0 on SIGTERM");
    harness_redis_stop(&s->redis);
    harness_rmdir(s->dir);
    free(s->dir);
    s->dir = NULL;
    current = NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
                 strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        cr_assert(n > 0, "send: %s", strerror(errno));
        buf += n;
        len -= (size_t)n;
    }
}

/* Bytes received on one connection, consumed response by response. */
struct reader {
    int fd;
    char buf[1 << 17];
    size_t len;
    bool eof;
};

/* Read more within `timeout_ms`; false on timeout, EOF or error. */
static bool reader_fill(struct reader *r, int timeout_ms)
{
    if (r->eof || r->len == sizeof r->buf - 1)
        return false;
    struct pollfd pfd = {r->fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return false;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
    if (n <= 0) {
        r->eof = true;
        return false;
    }
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    return true;
}

struct response {
    int status;
    char head[4096]; /* status line and headers */
    char body[8192];
    size_t body_len;
};

static const char *find_header(const struct response *resp, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = strstr(resp->head, "\r\n"); line; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, name, n) == 0 && line[2 + n] == ':')
            return line + 2 + n + 1 + strspn(line + 2 + n + 1, " ");
    return NULL;
}

/* True when header `name` is there with exactly `value` (case-insensitive). */
static bool header_is(const struct response *resp, const char *name, const char *value)
{
    const char *v = find_header(resp, name);
    size_t n = strlen(value);
    return v && strncasecmp(v, value, n) == 0 && (v[n] == '\r' || v[n] == '\0');
}

/* One whole response (framed by Content-Length; none for HEAD, 1xx, 204,
 * 304). Returns false if none arrives within `timeout_ms`. */
static bool read_response(struct reader *r, struct response *resp, bool head_request,
                          int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char *end;
    while (!(end = strstr(r->buf, "\r\n\r\n")) || end >= r->buf + r->len)
        if (!reader_fill(r, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0)))
            return false;
    size_t head_len = (size_t)(end - r->buf);
    cr_assert(head_len < sizeof resp->head);
    memcpy(resp->head, r->buf, head_len);
    resp->head[head_len] = '\0';
    resp->status = -1;
    cr_assert_eq(sscanf(resp->head, "HTTP/1.1 %d", &resp->status), 1, "bad status line: %.60s",
                 resp->head);
    const char *cl = find_header(resp, "Content-Length");
    size_t body_len = 0;
    bool bodiless = head_request || resp->status < 200 || resp->status == 204 ||
                    resp->status == 304;
    if (!bodiless) {
        cr_assert_not_null(cl, "a %d without Content-Length", resp->status);
        body_len = (size_t)strtoul(cl, NULL, 10);
    }
    size_t total = head_len + 4 + body_len;
    while (r->len < total)
        if (!reader_fill(r, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0)))
            return false;
    cr_assert(body_len < sizeof resp->body);
    memcpy(resp->body, r->buf + head_len + 4, body_len);
    resp->body[body_len] = '\0';
    resp->body_len = body_len;
    memmove(r->buf, r->buf + total, r->len - total);
    r->len -= total;
    r->buf[r->len] = '\0';
    return true;
}

/* True when the server closes the connection within `timeout_ms`. */
static bool closed_by_server(struct reader *r, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    while (!r->eof && now_ms() < deadline)
        if (!reader_fill(r, (int)(deadline - now_ms())) && !r->eof)
            return false;
    return r->eof;
}

static char *event_request(char *buf, size_t size, const char *body, const char *extra)
{
    snprintf(buf, size,
             "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "User-Agent: " UA "\r\n%sContent-Length: %zu\r\n\r\n%s",
             extra ? extra : "", strlen(body), body);
    return buf;
}

static void wait_xlen(struct server *s, long long n)
{
    cr_assert_eq(harness_wait_stream_events(s->rc, n, 3000), n, "events in the streams");
}

static long long metric(struct server *s, const char *name)
{
    char *body = NULL;
    cr_assert_eq(harness_http(s->coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &body, NULL), 200);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(body, want);
    long long v = at ? strtoll(at + strlen(want), NULL, 10) : -1;
    free(body);
    return v;
}

/* A metric read while the public connection slots are all taken: over
 * the admin listener, which has its own slots (and is not in the gauges). */
static long long held_metric(struct reader *r, const char *name)
{
    (void)r;
    return metric(current, name);
}

/* Stream event `idx` (in stream order, see harness_stream.h). */
static void entry(struct server *s, size_t idx, struct event_record *ev)
{
    struct harness_events e;
    char err[160];
    cr_assert(harness_stream_events(s->rc, true, &e, err, sizeof err) >= 0, "streams: %s", err);
    cr_assert(e.n > idx, "only %zu events in the streams", e.n);
    *ev = e.ev[idx];
    harness_events_free(&e);
}

Test(httpd, keep_alive_serves_many_requests_on_one_connection, .timeout = 120)
{
    struct server s;
    char *const extra[] = {"--threads=2", NULL};
    server_start(&s, extra);
    struct reader *r = calloc(1, sizeof *r);
    r->fd = connect_to(s.port);
    char req[1024];
    struct response resp;
    int n = 2000;
    for (int i = 0; i < n; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"n\":\"pageview\",\"u\":\"https://example.com/k/%d\",\"d\":\"example.com\"}", i);
        event_request(req, sizeof req, body, NULL);
        send_all(r->fd, req, strlen(req));
        cr_assert(read_response(r, &resp, false, 5000), "no answer to request %d", i);
        cr_assert_eq(resp.status, 202, "request %d: %d", i, resp.status);
        cr_assert_null(find_header(&resp, "Connection"), "keep-alive is the default in 1.1");
        cr_assert_not_null(find_header(&resp, "Date"));
    }
    wait_xlen(&s, n);
    cr_expect_eq(metric(&s, "veil_collector_connections"), 1,
                 "this one (the scrape goes to the admin listener)");
    close(r->fd);
    free(r);
    server_stop(&s);
}

Test(httpd, pipelined_requests_are_answered_in_order, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct {
        const char *req;
        bool head;
        int status;
        const char *body_starts;
    } pipe[] = {
        {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", false, 200, "{\"status\":\"ok\""},
        {NULL, false, 202, ""}, /* an event, filled below */
        {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", false, 404, "no such endpoint"},
        {"HEAD /e.gif?n=pageview&u=https%3A%2F%2Fexample.com%2Fhead&d=example.com HTTP/1.1\r\n"
         "Host: x\r\nUser-Agent: " UA "\r\n\r\n",
         true, 200, ""},
        {"GET /e.gif?n=pageview&u=https%3A%2F%2Fexample.com%2Fget&d=example.com HTTP/1.1\r\n"
         "Host: x\r\nUser-Agent: " UA "\r\n\r\n",
         false, 200, "GIF89a"},
        {"POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
         "Content-Length: 5\r\n\r\n{\"n\":",
         false, 400, ""},
        {"OPTIONS /api/event HTTP/1.1\r\nHost: x\r\n\r\n", false, 204, ""},
        {"DELETE /api/event HTTP/1.1\r\nHost: x\r\n\r\n", false, 405, "use POST"},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", false, 404, "no such endpoint"},
    };
    char event[1024];
    pipe[1].req = event_request(event, sizeof event, GOOD, NULL);
    size_t n = sizeof pipe / sizeof pipe[0];
    /* All of them, 20 times over, in one write. */
    size_t rounds = 20, cap = 64 * 1024, len = 0;
    char *all = malloc(cap);
    for (size_t k = 0; k < rounds; k++)
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(pipe[i].req);
            cr_assert(len + l < cap);
            memcpy(all + len, pipe[i].req, l);
            len += l;
        }
    struct reader *r = calloc(1, sizeof *r);
    r->fd = connect_to(s.port);
    send_all(r->fd, all, len);
    struct response resp;
    for (size_t k = 0; k < rounds; k++)
        for (size_t i = 0; i < n; i++) {
            cr_assert(read_response(r, &resp, pipe[i].head, 5000), "no answer %zu/%zu", k, i);
            cr_assert_eq(resp.status, pipe[i].status, "answer %zu of round %zu: %d", i, k,
                         resp.status);
            cr_assert(strncmp(resp.body, pipe[i].body_starts, strlen(pipe[i].body_starts)) == 0,
                      "answer %zu: %.40s", i, resp.body);
            if (pipe[i].head)
                cr_assert(header_is(&resp, "Content-Length", "42"),
                          "HEAD announces the GIF's length, sends no body");
        }
    cr_expect_eq(r->len, 0, "one answer per request, nothing more");
    /* ... and the connection is still open for more. */
    send_all(r->fd, pipe[0].req, strlen(pipe[0].req));
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 200);
    close(r->fd);
    free(r);
    free(all);
    wait_xlen(&s, (long long)rounds * 3); /* the event, the HEAD and the GET pixels */
    server_stop(&s);
}

/* Replies pile up while the client does not read: the server stops
 * reading it (no unbounded buffering), keeps serving others, and every
 * answer arrives, in order, once the client reads again. */
Test(httpd, a_client_that_does_not_read_gets_every_answer_later, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    int fd = connect_to(s.coll.admin_port); /* the admin listener's httpd serves /metrics */
    int rcvbuf = 32768; /* small: the server's replies must wait for it */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    enum { N = 2000 }; /* about 6 MB of answers: more than the socket buffers hold */
    const char one[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\n\r\n";
    char *all = malloc(N * sizeof one);
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        memcpy(all + len, one, sizeof one - 1);
        len += sizeof one - 1;
    }
    send_all(fd, all, len);
    free(all);
    sleep_ms(300);
    cr_assert_eq(harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200,
                 "others are served meanwhile");
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    struct response resp;
    for (int i = 0; i < N; i++) {
        cr_assert(read_response(r, &resp, false, 5000), "answer %d", i);
        cr_assert_eq(resp.status, 200, "answer %d", 2 * i);
        cr_assert(strncmp(resp.body, "# HELP", 6) == 0);
        cr_assert(read_response(r, &resp, false, 5000), "answer %d", 2 * i + 1);
        cr_assert_eq(resp.status, 404);
    }
    close(fd);
    free(r);
    server_stop(&s);
}

Test(httpd, http_1_0_closes_unless_keep_alive, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    const char plain[] = "GET /healthz HTTP/1.0\r\n\r\n";
    send_all(r->fd, plain, sizeof plain - 1);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 200);
    cr_expect(header_is(&resp, "Connection", "close"));
    cr_expect(closed_by_server(r, 3000), "an HTTP/1.0 connection closes after the answer");
    close(r->fd);

    memset(r, 0, sizeof *r);
    r->fd = connect_to(s.port);
    const char ka[] = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        send_all(r->fd, ka, sizeof ka - 1);
        cr_assert(read_response(r, &resp, false, 5000), "keep-alive answer %d", i);
        cr_expect_eq(resp.status, 200);
        cr_expect(header_is(&resp, "Connection", "keep-alive"), "HTTP/1.0 keep-alive is confirmed");
    }
    /* HTTP/1.1 "Connection: close" closes too, after its answer. */
    const char close11[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(r->fd, close11, sizeof close11 - 1);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect(header_is(&resp, "Connection", "close"));
    cr_expect(closed_by_server(r, 3000));
    close(r->fd);
    free(r);
    server_stop(&s);
}

Test(httpd, chunked_bodies_are_decoded_and_bounded, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    /* GOOD in three chunks, with a chunk extension and a trailer */
    const char *body = "{\"n\":\"pageview\",\"u\":\"https://example.com/chunked\",\"d\":\"example.com\"}";
    size_t bl = strlen(body), a = 10, b = 25;
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                     "User-Agent: " UA "\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "%zx\r\n%.*s\r\n%zx;name=value\r\n%.*s\r\n%zx\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n",
                     a, (int)a, body, b, (int)b, body + a, bl - a - b, body + a + b);
    send_all(r->fd, req, (size_t)n);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_assert_eq(resp.status, 202, "%s", resp.body);
    wait_xlen(&s, 1);
    struct event_record ev;
    entry(&s, 0, &ev);
    cr_expect_str_eq(ev.path, "/chunked", "the chunked body arrived whole");
    /* Then the same split at every read boundary, on the same connection. */
    for (int cut = 1; cut < n; cut += 7) {
        send_all(r->fd, req, (size_t)cut);
        sleep_ms(1);
        send_all(r->fd, req + cut, (size_t)(n - cut));
        cr_assert(read_response(r, &resp, false, 5000), "cut %d", cut);
        cr_assert_eq(resp.status, 202, "cut at %d: %d %s", cut, resp.status, resp.body);
    }
    close(r->fd);

    /* Chunks adding up to more than max_body_bytes (8192): 413, closed. */
    memset(r, 0, sizeof *r);
    r->fd = connect_to(s.port);
    const char head[] = "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
    send_all(r->fd, head, sizeof head - 1);
    char chunk[1100];
    memset(chunk, ' ', sizeof chunk);
    memcpy(chunk, "400\r\n", 5);
    memcpy(chunk + 5 + 1024, "\r\n", 2);
    for (int i = 0; i < 9 && !r->eof; i++)
        send(r->fd, chunk, 5 + 1024 + 2, MSG_NOSIGNAL);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 413);
    cr_expect(closed_by_server(r, 4000));
    close(r->fd);

    /* Content-Length with chunked (request smuggling): 400. */
    memset(r, 0, sizeof *r);
    r->fd = connect_to(s.port);
    const char both[] = "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    send_all(r->fd, both, sizeof both - 1);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 400);
    close(r->fd);
    free(r);
    cr_expect_eq(metric(&s, "veil_collector_rejected_413_total"), 1);
    server_stop(&s);
}

Test(httpd, expect_100_continue_and_oversized_heads, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    char req[1024];
    snprintf(req, sizeof req,
             "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "User-Agent: " UA "\r\nExpect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
             strlen(GOOD));
    send_all(r->fd, req, strlen(req));
    cr_assert(read_response(r, &resp, false, 5000), "no interim answer");
    cr_assert_eq(resp.status, 100);
    send_all(r->fd, GOOD, strlen(GOOD));
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 202);
    /* Too large a body announced: 413 before it is sent. */
    snprintf(req, sizeof req,
             "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "Expect: 100-continue\r\nContent-Length: 100000\r\n\r\n");
    send_all(r->fd, req, strlen(req));
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 413);
    close(r->fd);

    /* A header block over max_header_bytes (8192): 431, counted, closed. */
    memset(r, 0, sizeof *r);
    r->fd = connect_to(s.port);
    char *big = malloc(12000);
    int n = snprintf(big, 12000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: ");
    memset(big + n, 'a', 10000);
    memcpy(big + n + 10000, "\r\n\r\n", 4);
    send(r->fd, big, (size_t)n + 10004, MSG_NOSIGNAL);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 431);
    cr_expect(closed_by_server(r, 4000));
    close(r->fd);
    free(big);
    /* Malformed: 400 with a reason, closed. */
    memset(r, 0, sizeof *r);
    r->fd = connect_to(s.port);
    const char bad[] = "GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n";
    send_all(r->fd, bad, sizeof bad - 1);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 400);
    cr_expect_str_eq(resp.body, "malformed header\n");
    cr_expect(closed_by_server(r, 4000));
    close(r->fd);
    free(r);
    cr_expect_eq(metric(&s, "veil_collector_rejected_431_total"), 1);
    server_stop(&s);
}

/* A proxy that appends its own X-Forwarded-For line (HAProxy does) must not
 * lose to the line the client forged: the lines are one list, in order. */
Test(httpd, repeated_forwarded_for_lines_are_one_list, .timeout = 60)
{
    struct server s;
    server_start(&s, NULL);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    char req[1024];
    event_request(req, sizeof req, GOOD,
                  "X-Forwarded-For: 198.51.100.23\r\nX-Forwarded-For: 203.0.113.7\r\n");
    send_all(r->fd, req, strlen(req));
    cr_assert(read_response(r, &resp, false, 5000));
    cr_assert_eq(resp.status, 202);
    wait_xlen(&s, 1);
    struct event_record ev;
    entry(&s, 0, &ev);
    cr_expect_str_eq(ev.country, "US", "the last hop's address (203.0.113.7) is the client");
    /* A NUL would cut the list short before what the proxy appended. */
    static const char nul[] = "GET /healthz HTTP/1.1\r\nX-Forwarded-For: 198.51.100.23\0, "
                              "203.0.113.7\r\n\r\n";
    send_all(r->fd, nul, sizeof nul - 1);
    cr_assert(read_response(r, &resp, false, 5000));
    cr_expect_eq(resp.status, 400, "control characters in a header the collector reads");
    close(r->fd);
    free(r);
    server_stop(&s);
}

Test(httpd, connections_past_max_connections_are_closed_and_counted, .timeout = 60)
{
    struct server s;
    char *const extra[] = {"--threads=2", "--max_connections=8", NULL};
    server_start(&s, extra);
    enum { HELD = 8, EXTRA = 5 };
    struct reader *held = calloc(HELD, sizeof *held);
    struct response resp;
    const char hz[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    sleep_ms(200); /* let the start-up probe's connections close */
    for (int i = 0; i < HELD; i++) {
        held[i].fd = connect_to(s.port);
        send_all(held[i].fd, hz, sizeof hz - 1);
        cr_assert(read_response(&held[i], &resp, false, 5000), "held connection %d", i);
        cr_assert_eq(resp.status, 200);
    }
    for (int i = 0; i < EXTRA; i++) {
        struct reader *x = calloc(1, sizeof *x);
        x->fd = connect_to(s.port);
        send(x->fd, hz, sizeof hz - 1, MSG_NOSIGNAL);
        cr_expect(closed_by_server(x, 3000), "connection %d past the cap was not closed", i);
        cr_expect_eq(x->len, 0, "and got no answer");
        close(x->fd);
        free(x);
    }
    /* The held ones still work (the metrics come over one of them). */
    cr_expect_eq(held_metric(&held[0], "veil_collector_connections_refused_total"), EXTRA);
    cr_expect_eq(held_metric(&held[0], "veil_collector_connections"), HELD);
    /* Once one closes, a new client is served. */
    close(held[HELD - 1].fd);
    for (int i = 0; i < 100 && held_metric(&held[0], "veil_collector_connections") != HELD - 1; i++)
        sleep_ms(30);
    cr_expect_eq(held_metric(&held[0], "veil_collector_connections"), HELD - 1);
    cr_expect_eq(harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200);
    cr_expect_eq(held_metric(&held[0], "veil_collector_connections_refused_total"), EXTRA);
    for (int i = 0; i < HELD - 1; i++)
        close(held[i].fd);
    free(held);
    long long open = -1;
    for (int i = 0; i < 100 && open != 0; i++) {
        sleep_ms(30);
        open = metric(&s, "veil_collector_connections");
    }
    cr_expect_eq(open, 0, "closed ones are forgotten (the scrape goes to the admin listener)");
    server_stop(&s);
}

Test(httpd, slowloris_is_cut_at_request_timeout, .timeout = 60)
{
    struct server s;
    char *const extra[] = {"--request_timeout_s=2", "--timeout_s=10", NULL};
    server_start(&s, extra);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    char req[1024];
    event_request(req, sizeof req, GOOD, NULL);
    long long start = now_ms();
    bool answered = false;
    /* one byte every 300 ms: each is well within timeout_s */
    for (size_t i = 0; i < strlen(req) && !answered; i++) {
        send(r->fd, req + i, 1, MSG_NOSIGNAL);
        struct pollfd pfd = {r->fd, POLLIN, 0};
        answered = poll(&pfd, 1, 300) == 1;
    }
    long long took = now_ms() - start;
    cr_assert(answered, "the slow request was never cut");
    cr_assert(read_response(r, &resp, false, 2000));
    cr_expect_eq(resp.status, 408);
    cr_expect(took >= 1800 && took < 4000, "cut after %lld ms, want about 2000", took);
    cr_expect(closed_by_server(r, 4000));
    close(r->fd);
    free(r);
    cr_expect_eq(metric(&s, "veil_collector_request_timeouts_total"), 1);
    /* An idle keep-alive connection is closed silently at timeout_s, not
     * at request_timeout_s. */
    r = calloc(1, sizeof *r);
    r->fd = connect_to(s.port);
    cr_expect(!closed_by_server(r, 3000), "idle connections get timeout_s");
    close(r->fd);
    free(r);
    server_stop(&s);
}

Test(httpd, a_request_split_at_every_byte_is_parsed, .timeout = 120)
{
    struct server s;
    server_start(&s, NULL);
    struct reader *r = calloc(1, sizeof *r);
    struct response resp;
    r->fd = connect_to(s.port);
    char req[1024];
    event_request(req, sizeof req, GOOD, "X-Forwarded-For: 203.0.113.7\r\nDNT: 0\r\n");
    size_t n = strlen(req);
    /* one byte per write */
    for (size_t i = 0; i < n; i++) {
        send_all(r->fd, req + i, 1);
        if (i % 16 == 0)
            sleep_ms(1);
    }
    cr_assert(read_response(r, &resp, false, 5000));
    cr_assert_eq(resp.status, 202);
    /* two writes, cut at every position */
    for (size_t cut = 1; cut < n; cut++) {
        send_all(r->fd, req, cut);
        usleep(300);
        send_all(r->fd, req + cut, n - cut);
        cr_assert(read_response(r, &resp, false, 5000), "cut at %zu", cut);
        cr_assert_eq(resp.status, 202, "cut at %zu: %d %s", cut, resp.status, resp.body);
    }
    close(r->fd);
    free(r);
    wait_xlen(&s, (long long)n);
    struct event_record ev;
    entry(&s, n - 1, &ev);
    cr_expect_str_eq(ev.path, "/ok");
    cr_expect_str_eq(ev.country, "US", "X-Forwarded-For survived the cuts");
    server_stop(&s);
}

/* xorshift64*: reproducible from the seed printed on failure. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static size_t mutate(char *buf, size_t len, size_t cap)
{
    static const char *const tokens[] = {
        "\r\n", "\r\n\r\n", ":", " ", "\0", "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\n", "ffffffffffffffff\r\n",
        "0\r\n\r\n", "HTTP/1.1", "HTTP/9.9", "GET ", "\xff\xfe", "%00", "?", "#", "\t",
        "Expect: 100-continue\r\n", "X-Forwarded-For: 203.0.113.7\r\n", "Connection: close\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\n", " folded\r\n"};
    int rounds = 1 + (int)(rnd() % 4);
    for (int k = 0; k < rounds; k++) {
        size_t at = len ? rnd() % (len + 1) : 0;
        switch (rnd() % 6) {
        case 0: /* flip a byte */
            if (len)
                buf[rnd() % len] = (char)rnd();
            break;
        case 1: { /* insert a token */
            const char *t = tokens[rnd() % (sizeof tokens / sizeof tokens[0])];
            size_t tl = t[0] ? strlen(t) : 1;
            if (len + tl < cap) {
                memmove(buf + at + tl, buf + at, len - at);
                memcpy(buf + at, t, tl);
                len += tl;
            }
            break;
        }
        case 2: { /* delete a span */
            size_t span = rnd() % 16;
            if (at + span <= len) {
                memmove(buf + at, buf + at + span, len - at - span);
                len -= span;
            }
            break;
        }
        case 3: /* truncate */
            len = at;
            break;
        case 4: { /* duplicate a span (repeated headers, requests) */
            size_t span = rnd() % 64;
            if (at + span <= len && len + span < cap) {
                memmove(buf + at + span, buf + at, len - at);
                len += span;
            }
            break;
        }
        default: { /* random bytes */
            size_t span = rnd() % 8;
            if (len + span < cap) {
                memmove(buf + at + span, buf + at, len - at);
                for (size_t i = 0; i < span; i++)
                    buf[at + i] = (char)rnd();
                len += span;
            }
            break;
        }
        }
    }
    return len;
}

Test(httpd, random_and_mutated_requests_never_stop_the_server, .timeout = 240)
{
    struct server s;
    char *const extra[] = {"--request_timeout_s=1", "--timeout_s=1", NULL};
    server_start(&s, extra);
    const char *seeds[] = {
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /e.gif?n=pageview&u=https%3A%2F%2Fexample.com%2F&d=example.com HTTP/1.1\r\n"
        "Host: x\r\nUser-Agent: " UA "\r\n\r\n",
        "POST /api/event HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nUser-Agent: " UA
        "\r\nContent-Length: 63\r\n\r\n" GOOD,
        "POST /api/event HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3f\r\n" GOOD "\r\n0\r\n\r\n",
        "OPTIONS /api/event HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n",
        "HEAD /veil.js HTTP/1.0\r\nConnection: keep-alive\r\nIf-None-Match: \"x\"\r\n\r\n",
    };
    rng_state = (uint64_t)time(NULL) | 1;
    uint64_t seed = rng_state;
    size_t cap = 4096;
    char *buf = malloc(cap);
    long long deadline = now_ms() + 120000;
    int iterations = 0, answered = 0;
    for (int i = 0; i < 3000 && now_ms() < deadline; i++, iterations++) {
        size_t len;
        if (rnd() % 10 == 0) { /* pure noise */
            len = rnd() % 600;
            for (size_t k = 0; k < len; k++)
                buf[k] = (char)rnd();
        } else {
            const char *sd = seeds[rnd() % (sizeof seeds / sizeof seeds[0])];
            len = strlen(sd);
            memcpy(buf, sd, len);
            len = mutate(buf, len, cap);
        }
        struct reader *r = calloc(1, sizeof *r);
        r->fd = connect_to(s.port);
        if (len)
            send(r->fd, buf, len, MSG_NOSIGNAL);
        shutdown(r->fd, SHUT_WR); /* EOF: a half request ends here */
        while (reader_fill(r, 3000))
            ;
        cr_assert(r->eof, "seed %llu, iteration %d: no close within 3 s",
                  (unsigned long long)seed, i);
        if (r->len) {
            int status = 0;
            cr_assert(sscanf(r->buf, "HTTP/1.1 %d ", &status) == 1 && status >= 100 && status < 600,
                      "seed %llu, iteration %d: not an HTTP answer", (unsigned long long)seed, i);
            answered++;
        }
        close(r->fd);
        free(r);
    }
    free(buf);
    cr_expect(iterations >= 1000, "only %d iterations", iterations);
    cr_expect(answered > 0);
    cr_assert_eq(harness_http(s.port, "GET", "/healthz", NULL, NULL, 0, NULL, NULL), 200,
                 "the server stopped serving (seed %llu)", (unsigned long long)seed);
    server_stop(&s);
}
