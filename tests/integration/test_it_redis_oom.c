/* test_it_redis_oom.c - Redis at maxmemory (noeviction) refuses the
 * collector's writes with -OOM: the collector treats it like Redis down
 * (memory buffer, then spool, then 503 with Retry-After), and every event
 * it answered 202 reaches the shard streams exactly once after the memory
 * is raised (docs/DELIVERY.md "Redis out of memory"). Real redis-server,
 * real veil-collector. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "harness_stream.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define EVENTS_MAX 4000

static int post(int port, int n, char **headers_out)
{
    char headers[512], body[256];
    snprintf(headers, sizeof headers,
             "Content-Type: text/plain\r\nX-Forwarded-For: 203.0.113.%d\r\nUser-Agent: %s\r\n",
             1 + n % 200, UA_FIREFOX);
    snprintf(body, sizeof body,
             "{\"n\":\"pageview\",\"u\":\"https://example.com/p/%d\",\"d\":\"example.com\"}", n);
    return harness_http(port, "POST", "/api/event", headers, body, strlen(body), NULL,
                        headers_out);
}

/* A counter from the collector's admin listener (/metrics). */
static long long metric(int admin_port, const char *name)
{
    char *body = NULL;
    cr_assert_eq(harness_http(admin_port, "GET", "/metrics", NULL, NULL, 0, &body, NULL), 200);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(body, want);
    long long v = at ? strtoll(at + strlen(want), NULL, 10) : -1;
    free(body);
    return v;
}

static void config_set(redisContext *rc, const char *name, const char *value)
{
    redisReply *r = redisCommand(rc, "CONFIG SET %s %s", name, value);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "CONFIG SET %s: %s", name, r ? r->str : "");
    freeReplyObject(r);
}

Test(redis_oom, refused_writes_buffer_spool_then_503_and_all_arrive_once_memory_is_raised,
     .timeout = 120)
{
    char *dir = harness_tmpdir();
    struct harness_redis redis;
    cr_assert_eq(harness_redis_start(&redis, dir, false), 0);
    redisContext *rc = redisConnectUnix(redis.socket);
    cr_assert(rc && !rc->err);
    config_set(rc, "maxmemory-policy", "noeviction");
    int port = harness_free_port();
    char listen[64], rarg[400], spool[400], log[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(rarg, sizeof rarg, "--redis=unix:%s", redis.socket);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", dir);
    snprintf(log, sizeof log, "%s/collector.log", dir);
    /* one thread: 100 events in memory, a 64 KiB spool (a few hundred events) */
    char *argv[] = {"veil-collector", listen, rarg, spool, "--threads=1",
                    "--max_buffered_events=100", "--spool_max_bytes=65536",
                    "--trusted_proxies=127.0.0.1", "--rate_limit=0", NULL};
    struct harness_proc coll;
    cr_assert_eq(harness_spawn(&coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "collector did not start");
    /* one event while Redis has room: the connection and script are up */
    int code[EVENTS_MAX];
    int next = 0, accepted = 0;
    code[next] = post(port, next, NULL);
    accepted += code[next++] == 202;
    cr_assert_eq(harness_wait_stream_events(rc, 1, 5000), 1);

    /* Redis full: every write is refused with OOM */
    config_set(rc, "maxmemory", "1");
    redisReply *probe = redisCommand(rc, "SET veil:test:probe x");
    cr_assert(probe && probe->type == REDIS_REPLY_ERROR && strncmp(probe->str, "OOM", 3) == 0,
              "redis still takes writes");
    freeReplyObject(probe);
    bool got_503 = false;
    char *retry_headers = NULL;
    while (next < EVENTS_MAX && !got_503) {
        char *h = NULL;
        code[next] = post(port, next, &h);
        cr_assert(code[next] == 202 || code[next] == 503, "answer %d", code[next]);
        accepted += code[next] == 202;
        if (code[next] == 503) {
            got_503 = true;
            retry_headers = h;
        } else {
            free(h);
        }
        next++;
    }
    cr_assert(got_503, "no 503 after %d events with Redis out of memory", next);
    cr_expect(retry_headers && strcasestr(retry_headers, "Retry-After:"), "%s", retry_headers);
    free(retry_headers);
    cr_log_info("with Redis full: %d events answered 202, the next 503; %lld spooled", accepted,
                metric(coll.admin_port, "veil_collector_spooled_events_total"));
    cr_expect_gt(accepted, 100, "only %d events were accepted before the 503", accepted);
    cr_expect_gt(metric(coll.admin_port, "veil_collector_spooled_events_total"), 0, "nothing was spooled");
    cr_expect_eq(metric(coll.admin_port, "veil_collector_redis_written_total"), 1);
    cr_expect_eq(harness_stream_count(rc), 1, "an event got in while Redis was full");

    /* memory raised: everything answered 202 arrives, exactly once */
    config_set(rc, "maxmemory", "0");
    cr_assert_eq(harness_wait_stream_events(rc, accepted, 30000), accepted);
    usleep(500000); /* a duplicate would show by now */
    struct harness_events e;
    char err[160];
    cr_assert_eq(harness_stream_events(rc, true, &e, err, sizeof err), accepted, "%s", err);
    int *seen = calloc(EVENTS_MAX, sizeof *seen);
    for (size_t i = 0; i < e.n; i++) {
        int n = -1;
        sscanf(e.ev[i].path, "/p/%d", &n);
        cr_assert(n >= 0 && n < next, "unexpected path %s", e.ev[i].path);
        seen[n]++;
    }
    for (int n = 0; n < next; n++)
        cr_expect_eq(seen[n], code[n] == 202 ? 1 : 0, "event %d (answered %d) arrived %d times",
                     n, code[n], seen[n]);
    free(seen);
    harness_events_free(&e);
    /* the collector serves again */
    cr_expect_eq(post(port, next, NULL), 202);
    cr_expect_eq(harness_stop(&coll), 0, "collector did not exit 0");
    size_t len;
    char *text = harness_read_file(log, &len);
    cr_expect(text && strstr(text, "OOM"), "the log does not say Redis was out of memory");
    free(text);
    redisFree(rc);
    harness_redis_stop(&redis);
    harness_rmdir(dir);
    free(dir);
}
