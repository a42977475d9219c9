/* test_it_delivery.c - the shard stream layout of the collector's delivery
 * (docs/DELIVERY.md), with a real redis-server and the real binary:
 * events of each site in their shard's stream, many events per entry,
 * the delivery script's exactly-once rules called directly (cuts, gaps,
 * VEILGAP, the old lane mark), a spool written by the previous version
 * (payload version 1) replayed into the new layout, and the shard count
 * check. Redis out of memory is in test_it_redis_oom.c. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "harness_stream.h"
#include "metrics.h"
#include "shard.h"
#include "sink_wire.h"
#include "spool.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

struct stack {
    char *dir;
    char spool[300];
    struct harness_redis redis;
    struct harness_proc coll;
    int port;
    redisContext *rc;
};

static void stack_new(struct stack *s)
{
    memset(s, 0, sizeof *s);
    s->dir = harness_tmpdir();
    cr_assert_not_null(s->dir);
    snprintf(s->spool, sizeof s->spool, "%s/spool", s->dir);
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0, "redis-server did not start");
    s->rc = redisConnectUnix(s->redis.socket);
    cr_assert(s->rc && !s->rc->err);
}

/* Start the collector; returns what harness_wait_http says (0 = up). */
static int collector_up(struct stack *s, char *extra)
{
    char listen[64], redis[400], log[400], spool[400];
    s->port = harness_free_port();
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s->port);
    snprintf(redis, sizeof redis, "--redis=unix:%s", s->redis.socket);
    snprintf(spool, sizeof spool, "--spool_dir=%s", s->spool);
    snprintf(log, sizeof log, "%s/collector.log", s->dir);
    char *argv[] = {"veil-collector", listen, redis, spool, "--threads=2",
                    "--trusted_proxies=127.0.0.1", "--rate_limit=0", extra, NULL};
    cr_assert_eq(harness_spawn(&s->coll, argv, log), 0);
    return harness_wait_http(s->port, "/healthz", 8000);
}

static void stack_free(struct stack *s)
{
    if (s->coll.pid > 0)
        harness_stop(&s->coll);
    redisFree(s->rc);
    harness_redis_stop(&s->redis);
    harness_rmdir(s->dir);
    free(s->dir);
}

static int post(struct stack *s, const char *site, int n)
{
    char headers[512], body[256];
    snprintf(headers, sizeof headers,
             "Content-Type: text/plain\r\nX-Forwarded-For: 203.0.113.%d\r\nUser-Agent: %s\r\n",
             1 + n % 200, UA_FIREFOX);
    snprintf(body, sizeof body, "{\"n\":\"pageview\",\"u\":\"https://%s/p/%d\",\"d\":\"%s\"}",
             site, n, site);
    return harness_http(s->port, "POST", "/api/event", headers, body, strlen(body), NULL, NULL);
}

static long long metric(struct stack *s, const char *name)
{
    char *body = NULL;
    cr_assert_eq(harness_http(s->coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &body, NULL),
                 200);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(body, want);
    long long v = at ? strtoll(at + strlen(want), NULL, 10) : -1;
    free(body);
    return v;
}

static long long cmd_int(redisContext *rc, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r && r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                       : -1;
    freeReplyObject(r);
    return v;
}

/* Every event of `e` is path /p/<n> with n < max, each n exactly once. */
static void expect_each_once(const struct harness_events *e, int max)
{
    int *seen = calloc((size_t)max, sizeof *seen);
    for (size_t i = 0; i < e->n; i++) {
        int n = -1;
        sscanf(e->ev[i].path, "/p/%d", &n);
        cr_assert(n >= 0 && n < max, "unexpected path %s", e->ev[i].path);
        seen[n]++;
    }
    for (int n = 0; n < max; n++)
        cr_expect_eq(seen[n], 1, "event %d is in the streams %d times", n, seen[n]);
    free(seen);
}

Test(delivery, each_site_goes_to_its_shard_stream_many_events_per_entry, .timeout = 60)
{
    struct stack s;
    stack_new(&s);
    cr_assert_eq(collector_up(&s, "--batch_wait_us=20000"), 0, "collector did not start");
    static const char *const sites[] = {"a.example", "b.example", "c.example", "d.example"};
    for (int n = 0; n < 200; n++)
        cr_assert_eq(post(&s, sites[n % 4], n), 202);
    cr_assert_eq(harness_wait_stream_events(s.rc, 200, 10000), 200);
    struct harness_events e;
    char err[160];
    cr_assert_eq(harness_stream_events(s.rc, true, &e, err, sizeof err), 200, "%s", err);
    expect_each_once(&e, 200);
    for (size_t i = 0; i < e.n; i++)
        cr_expect_eq(e.shard[i], shard_of_site(e.ev[i].site, strlen(e.ev[i].site), 16),
                     "%s is in shard %u", e.ev[i].site, e.shard[i]);
    /* 200 events in 4 sites went out in far fewer entries than events */
    cr_expect_lt(e.entries, 100, "%zu entries for 200 events", e.entries);
    cr_expect_eq(cmd_int(s.rc, "GET %s", "veil:meta:shards"), 16);
    harness_events_free(&e);
    cr_expect_eq(metric(&s, "veil_collector_redis_written_total"), 200);
    stack_free(&s);
}

/* ---- the delivery script, called directly ---- */

static char sha[41];

static void load_script(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", sink_delivery_script);
    cr_assert(r && r->type == REDIS_REPLY_STRING && r->len == 40, "%s", r ? r->str : "");
    memcpy(sha, r->str, 41);
    freeReplyObject(r);
}

/* One call for events numbered seqs[0..n) with paths /p/<seq>, prev as
 * given. Returns the reply (caller frees). */
static redisReply *call(redisContext *rc, const char *lane, bool legacy, uint64_t prev,
                        const uint64_t *seqs, size_t n)
{
    struct wire_call w = {0};
    wire_call_begin(&w, 1024);
    for (size_t i = 0; i < n; i++) {
        struct event_record ev;
        event_record_init(&ev);
        snprintf(ev.site, sizeof ev.site, "example.com");
        snprintf(ev.day, sizeof ev.day, "2026-12-06");
        snprintf(ev.name, sizeof ev.name, "pageview");
        snprintf(ev.path, sizeof ev.path, "/p/%llu", (unsigned long long)seqs[i]);
        char pk[EVENT_PACKED_MAX];
        size_t plen = event_pack(&ev, pk, sizeof pk);
        wire_call_add(&w, seqs[i], pk, plen);
    }
    size_t len;
    const char *cmd = wire_call_end(&w, sha, 5, lane, legacy, prev, &len);
    redisReply *r = NULL;
    cr_assert_eq(redisAppendFormattedCommand(rc, cmd, len), REDIS_OK);
    cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
    wire_call_free(&w);
    return r;
}

static long long call_int(redisContext *rc, const char *lane, bool legacy, uint64_t prev,
                          const uint64_t *seqs, size_t n)
{
    redisReply *r = call(rc, lane, legacy, prev, seqs, n);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "reply type %d %s", r ? r->type : -1,
              r && r->str ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

Test(delivery, script_cuts_what_a_lane_delivered_and_refuses_gaps, .timeout = 60)
{
    struct stack s;
    stack_new(&s);
    load_script(s.rc);
    /* numbers of one lane in one shard need not be consecutive */
    uint64_t a[] = {3, 4, 9, 12};
    cr_expect_eq(call_int(s.rc, "L1", false, 0, a, 4), 0, "nothing cut");
    cr_expect_eq(cmd_int(s.rc, "GET %s", "veil:{5}:lane:L1"), 12);
    /* sent again after a lost reply: all cut (-1), nothing added */
    cr_expect_eq(call_int(s.rc, "L1", false, 0, a, 4), -1);
    /* a call overlapping the mark: 9 and 12 are cut, 13 and 20 added */
    uint64_t b[] = {9, 12, 13, 20};
    cr_expect_eq(call_int(s.rc, "L1", false, 0, b, 4), 2);
    /* consecutive numbers (no gap list) overlapping the mark */
    uint64_t c[] = {19, 20, 21, 22};
    cr_expect_eq(call_int(s.rc, "L1", false, 20, c, 4), 2);
    /* prev above the mark: an earlier call was refused, so this one is too */
    uint64_t d[] = {40, 41};
    redisReply *r = call(s.rc, "L1", false, 30, d, 2);
    cr_assert(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "VEILGAP", 7) == 0);
    freeReplyObject(r);
    cr_expect_eq(cmd_int(s.rc, "GET %s", "veil:{5}:lane:L1"), 22);
    /* a lane numbered by version 1 also honours its old mark veil:{0}:lane:<lane> */
    redisReply *set = redisCommand(s.rc, "SET veil:{0}:lane:OLD 7");
    freeReplyObject(set);
    uint64_t e[] = {5, 7, 8};
    cr_expect_eq(call_int(s.rc, "OLD", true, 0, e, 3), 2);
    cr_expect_eq(cmd_int(s.rc, "GET %s", "veil:{0}:lane:OLD"), 7, "the old mark is only read");
    cr_expect_eq(cmd_int(s.rc, "GET %s", "veil:{5}:lane:OLD:v1"), 8);
    struct harness_events got;
    char err[160];
    cr_assert_eq(harness_stream_events(s.rc, true, &got, err, sizeof err), 9, "%s", err);
    static const char *const want[] = {"/p/3",  "/p/4",  "/p/9",  "/p/12", "/p/13",
                                       "/p/20", "/p/21", "/p/22", "/p/8"};
    for (size_t i = 0; i < got.n; i++) {
        cr_expect_str_eq(got.ev[i].path, want[i]);
        cr_expect_eq(got.shard[i], 5);
    }
    cr_expect_eq(got.entries, 4, "one entry per call that added events");
    harness_events_free(&got);
    stack_free(&s);
}

/* ---- a spool written by the previous version ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A version 1 payload: [1][lane length][lane][u64 seq][u16 field count]
 * then [u16 length][bytes] per field; `packed` chooses the field "e" (as
 * the last version 1 collector wrote) or one field per event field. */
static size_t v1_payload(uint8_t *buf, const char *lane, uint64_t seq, int n, bool packed)
{
    struct event_record ev;
    event_record_init(&ev);
    /* y.example is in shard 0, where the old mark veil:{0}:lane:<lane> lives */
    snprintf(ev.site, sizeof ev.site, n % 2 ? "a.example" : "y.example");
    snprintf(ev.day, sizeof ev.day, "2026-12-06");
    ev.ts = 1796515200;
    snprintf(ev.name, sizeof ev.name, "pageview");
    snprintf(ev.path, sizeof ev.path, "/p/%d", n);
    snprintf(ev.browser, sizeof ev.browser, "Firefox");
    ev.device = DEVICE_DESKTOP;
    const char *argv[EVENT_MAX_ARGS];
    size_t argvlen[EVENT_MAX_ARGS], nf;
    static char scratch[EVENT_SCRATCH_BYTES], pk[EVENT_PACKED_MAX];
    if (packed) {
        argv[0] = EVENT_PACKED_FIELD;
        argvlen[0] = 1;
        argv[1] = pk;
        argvlen[1] = event_pack(&ev, pk, sizeof pk);
        nf = 2;
    } else {
        nf = event_encode(&ev, argv, argvlen, scratch);
    }
    size_t lane_len = strlen(lane), len = 0;
    buf[len++] = 1;
    buf[len++] = (uint8_t)lane_len;
    memcpy(buf + len, lane, lane_len);
    len += lane_len;
    put_le(buf + len, seq, 8);
    put_le(buf + len + 8, nf, 2);
    len += 10;
    for (size_t i = 0; i < nf; i++) {
        put_le(buf + len, argvlen[i], 2);
        memcpy(buf + len + 2, argv[i], argvlen[i]);
        len += 2 + argvlen[i];
    }
    return len;
}

Test(delivery, a_version_1_spool_is_replayed_into_the_shard_streams, .timeout = 60)
{
    struct stack s;
    stack_new(&s);
    /* the spool a stopped version 1 collector left: 40 events of its lane,
     * the first 10 already in its stream (old mark 10: sent, reply lost) */
    struct metrics m;
    memset(&m, 0, sizeof m);
    struct spool_options opt = {.dir = s.spool, .max_bytes = 1 << 24,
                                .fsync = SPOOL_FSYNC_ALWAYS, .worker = 0, .nworkers = 1,
                                .run_id = 0x1234abcd};
    char err[200];
    struct spool *sp = spool_open(&opt, &m, err, sizeof err);
    cr_assert_not_null(sp, "%s", err);
    char lane[SPOOL_GROUP_MAX];
    snprintf(lane, sizeof lane, "%s", spool_group(sp));
    for (int n = 0; n < 40; n++) {
        uint8_t buf[SPOOL_RECORD_MAX];
        size_t len = v1_payload(buf, lane, (uint64_t)n + 1, n, n % 3 != 0);
        cr_assert_eq(spool_append(sp, buf, len), 0);
    }
    spool_close(sp);
    redisReply *r = redisCommand(s.rc, "SET veil:{0}:lane:%s 10", lane);
    freeReplyObject(r);
    cr_assert_eq(collector_up(&s, NULL), 0, "collector did not start");
    /* events 10..39 arrive once each in their shard streams, 0..9 are cut */
    cr_assert_eq(harness_wait_stream_events(s.rc, 30, 10000), 30);
    for (int i = 0; i < 100 && metric(&s, "veil_collector_redis_duplicates_suppressed_total") < 10;
         i++)
        usleep(20000);
    usleep(300000); /* a duplicate would show by now */
    struct harness_events e;
    cr_assert_eq(harness_stream_events(s.rc, true, &e, err, sizeof err), 30, "%s", err);
    int seen[40] = {0};
    for (size_t i = 0; i < e.n; i++) {
        int n = -1;
        sscanf(e.ev[i].path, "/p/%d", &n);
        cr_assert(n >= 10 && n < 40, "event %s", e.ev[i].path);
        seen[n]++;
        cr_expect_str_eq(e.ev[i].browser, "Firefox");
        cr_expect_eq(e.shard[i], shard_of_site(e.ev[i].site, strlen(e.ev[i].site), 16));
    }
    for (int n = 10; n < 40; n++)
        cr_expect_eq(seen[n], 1, "event %d arrived %d times", n, seen[n]);
    harness_events_free(&e);
    cr_expect_eq(metric(&s, "veil_collector_redis_duplicates_suppressed_total"), 10);
    cr_expect_eq(metric(&s, "veil_collector_replayed_events_total"), 40);
    /* the old mark is only read; each shard has its own new mark */
    char key[100];
    snprintf(key, sizeof key, "veil:{0}:lane:%s", lane);
    cr_expect_eq(cmd_int(s.rc, "GET %s", key), 10);
    snprintf(key, sizeof key, "veil:{0}:lane:%s:v1", lane);
    cr_expect_eq(cmd_int(s.rc, "GET %s", key), 39, "the last of y.example (n 38: seq 39)");
    snprintf(key, sizeof key, "veil:{8}:lane:%s:v1", lane);
    cr_expect_eq(cmd_int(s.rc, "GET %s", key), 40, "the last of a.example (n 39: seq 40)");
    stack_free(&s);
}

Test(delivery, a_different_shard_count_refuses_to_start, .timeout = 60)
{
    struct stack s;
    stack_new(&s);
    redisReply *r = redisCommand(s.rc, "SET veil:meta:shards 8");
    freeReplyObject(r);
    cr_assert_neq(collector_up(&s, NULL), 0, "started with shards 16 on an 8-shard Redis");
    int status = harness_stop(&s.coll);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "status %d", status);
    s.coll.pid = 0;
    size_t len;
    char path[400];
    snprintf(path, sizeof path, "%s/collector.log", s.dir);
    char *log = harness_read_file(path, &len);
    cr_expect(log && strstr(log, "veil:meta:shards") && strstr(log, "8 shards"), "%s", log);
    free(log);
    /* the same count starts, and delivers */
    cr_assert_eq(collector_up(&s, "--shards=8"), 0, "collector did not start with shards 8");
    cr_assert_eq(post(&s, "a.example", 0), 202);
    cr_assert_eq(harness_wait_stream_events(s.rc, 1, 5000), 1);
    struct harness_events e;
    char err[160];
    cr_assert_eq(harness_stream_events(s.rc, true, &e, err, sizeof err), 1, "%s", err);
    cr_expect_eq(e.shard[0], shard_of_site("a.example", 9, 8));
    harness_events_free(&e);
    stack_free(&s);
}

Test(delivery, a_shard_count_changed_under_a_running_collector_stops_delivery, .timeout = 60)
{
    struct stack s;
    stack_new(&s);
    cr_assert_eq(collector_up(&s, NULL), 0, "collector did not start");
    cr_assert_eq(post(&s, "a.example", 0), 202);
    cr_assert_eq(harness_wait_stream_events(s.rc, 1, 5000), 1);
    /* someone changes the stored count; the collector notices on reconnecting */
    redisReply *r = redisCommand(s.rc, "SET veil:meta:shards 8");
    freeReplyObject(r);
    r = redisCommand(s.rc, "CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(r);
    for (int n = 1; n < 5; n++)
        cr_assert_eq(post(&s, "a.example", n), 202, "events are still accepted (buffered)");
    char path[400];
    snprintf(path, sizeof path, "%s/collector.log", s.dir);
    char *log = NULL;
    for (int i = 0; i < 300; i++) {
        size_t len;
        free(log);
        log = harness_read_file(path, &len);
        if (log && strstr(log, "nothing is delivered until they agree"))
            break;
        usleep(10000);
    }
    cr_expect(log && strstr(log, "8 shards"), "%s", log);
    free(log);
    usleep(300000);
    cr_expect_eq(harness_stream_count(s.rc), 1, "delivered into a layout of another count");
    /* the count agrees again: everything arrives, once */
    r = redisCommand(s.rc, "SET veil:meta:shards 16");
    freeReplyObject(r);
    cr_assert_eq(harness_wait_stream_events(s.rc, 5, 10000), 5);
    struct harness_events e;
    char err[160];
    cr_assert_eq(harness_stream_events(s.rc, true, &e, err, sizeof err), 5, "%s", err);
    expect_each_once(&e, 5);
    harness_events_free(&e);
    stack_free(&s);
}

/* A redis-server on a TCP port of its own (a master, or the replica of
 * `of`), answering PING within 10 s. */
static void tcp_redis(struct harness_proc *p, const char *dir, const char *name, int port,
                      int of)
{
    char portstr[16], ndir[400], log[450], master[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(ndir, sizeof ndir, "%s/%s", dir, name);
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    snprintf(master, sizeof master, "%d", of);
    cr_assert_eq(mkdir(ndir, 0700), 0);
    char *argv[] = {"/usr/bin/redis-server", "--port", portstr, "--bind", "127.0.0.1", "--dir",
                    ndir, "--save", "", "--appendonly", "no", of ? "--replicaof" : NULL,
                    "127.0.0.1", master, NULL};
    cr_assert_eq(harness_spawn(p, argv, log), 0);
    for (int t = 0; t < 200; t++) {
        redisContext *rc = redisConnect("127.0.0.1", port);
        redisReply *r = rc && !rc->err ? redisCommand(rc, "PING") : NULL;
        bool up = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (rc)
            redisFree(rc);
        if (up)
            return;
        usleep(50000);
    }
    cr_assert_fail("%s did not answer", name);
}

/* wait_replicas (docs/DELIVERY.md "When a master dies"): events that Redis
 * took but no replica has confirmed stay held by the collector (counted in
 * its buffer, saved to the spool at exit); once a replica confirms them
 * they are let go, each in the stream once. Also on one plain Redis. */
Test(delivery, wait_replicas_holds_events_until_a_replica_confirms, .timeout = 60)
{
    struct stack s;
    memset(&s, 0, sizeof s);
    s.dir = harness_tmpdir();
    snprintf(s.spool, sizeof s.spool, "%s/spool", s.dir);
    struct harness_proc master, replica;
    int mport = harness_free_port();
    tcp_redis(&master, s.dir, "master", mport, 0);
    s.rc = redisConnect("127.0.0.1", mport);
    cr_assert(s.rc && !s.rc->err);
    char redis[64], listen[64], log[400];
    snprintf(redis, sizeof redis, "--redis=127.0.0.1:%d", mport);
    s.port = harness_free_port();
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s.port);
    snprintf(log, sizeof log, "%s/collector.log", s.dir);
    char spool[320];
    snprintf(spool, sizeof spool, "--spool_dir=%s", s.spool);
    char *argv[] = {"veil-collector", listen, redis, spool, "--threads=1",
                    "--trusted_proxies=127.0.0.1", "--rate_limit=0", "--wait_replicas=1",
                    "--wait_timeout_ms=50", NULL};
    cr_assert_eq(harness_spawn(&s.coll, argv, log), 0);
    cr_assert_eq(harness_wait_http(s.port, "/healthz", 8000), 0, "collector did not start");
    for (int n = 0; n < 20; n++)
        cr_assert_eq(post(&s, "a.example", n), 202);
    /* written, but not confirmed: still held */
    cr_assert_eq(harness_wait_stream_events(s.rc, 20, 5000), 20);
    for (int t = 0; t < 100 && metric(&s, "veil_collector_redis_unconfirmed_total") < 1; t++)
        usleep(50000);
    cr_expect_geq(metric(&s, "veil_collector_redis_unconfirmed_total"), 1);
    cr_expect_eq(metric(&s, "veil_collector_buffered_events"), 20,
                 "events left the collector before a replica had them");
    /* a replica comes: the next attempt is confirmed */
    tcp_redis(&replica, s.dir, "replica", harness_free_port(), mport);
    long long held = -1;
    for (int t = 0; t < 300 && held != 0; t++) {
        held = metric(&s, "veil_collector_buffered_events");
        if (held != 0)
            usleep(50000);
    }
    cr_expect_eq(held, 0, "confirmed events were not let go");
    struct harness_events e;
    char err[160];
    cr_assert_eq(harness_stream_events(s.rc, true, &e, err, sizeof err), 20, "%s", err);
    expect_each_once(&e, 20);
    harness_events_free(&e);
    cr_expect_eq(harness_stop(&s.coll), 0);
    harness_stop(&replica);
    harness_stop(&master);
    redisFree(s.rc);
    harness_rmdir(s.dir);
    free(s.dir);
}
