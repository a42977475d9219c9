/* test_it_aggregator_safety.c - the real veil-aggregator against a real
 * redis-server: exactly-once under failure, and privacy.
 *
 * Crash safety: a writer thread XADDs events in bounded batches while
 * workers are killed with kill -9 and a second worker runs and is frozen
 * (SIGSTOP) past claim_idle_ms, so its batches are claimed by the other and
 * its stale commits must be refused; at the end every count equals what
 * was sent, exactly. Privacy: a TYPE-aware dump of every key and value (and
 * the logs) must hold no IP, in text or binary, although the stream
 * entries carried truncated IPs (ip_keep=truncated). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator_env.h"
#include "event.h"
#include "harness.h"
#include "util.h"

TestSuite(aggregator_safety, .fini = teardown);

/* ---- 3. crash safety ---- */

#define CRASH_VISITORS 1500
#define CRASH_PAGES 20
#define CRASH_BATCH 100

struct crash_event {
    int visitor, page;
    int64_t ts;
    bool pageview;
};

struct writer {
    const struct env *e;
    struct crash_event *events;
    size_t n;
    volatile bool done;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    redisContext *rc = connect_unix(w->e->redis.socket);
    struct event_record ev;
    for (size_t i = 0; i < w->n; i += CRASH_BATCH) {
        size_t end = i + CRASH_BATCH < w->n ? i + CRASH_BATCH : w->n;
        for (size_t k = i; k < end; k++) {
            const struct crash_event *c = &w->events[k];
            char path[32], vh[17];
            str_format(path, sizeof path, "/p%d", c->page);
            str_format(vh, sizeof vh, "%016x", 0x100000u + (unsigned)c->visitor);
            event_base(&ev, w->e, c->pageview ? "pageview" : "click", path, vh, c->ts);
            xadd_append(rc, &ev);
        }
        for (size_t k = i; k < end; k++)
            xadd_reply(rc);
        sleep_ms(120);
    }
    redisFree(rc);
    w->done = true;
    return NULL;
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33) % n;
}

Test(aggregator_safety, crash_safety_kill9_and_stalls_count_exactly_once, .timeout = 240)
{
    env_start(&env);
    struct env *e = &env;

    /* Each visitor: 1..4 pageviews within 1000 s (one visit), clicks strictly
     * between its first and last pageview (so they never change a duration). */
    size_t cap = CRASH_VISITORS * 8, n = 0;
    struct crash_event *events = calloc(cap, sizeof *events);
    long long pageviews = 0, bounces = 0, duration = 0;
    long long page_pv[CRASH_PAGES] = {0};
    for (int v = 0; v < CRASH_VISITORS; v++) {
        int k = 1 + v % 4;
        int64_t first = e->now - 1200 + rnd(100), last = first;
        for (int j = 0; j < k; j++) {
            int64_t ts = first + (j ? 10 + rnd(900) : 0);
            int page = (int)rnd(CRASH_PAGES);
            events[n++] = (struct crash_event){v, page, ts, true};
            page_pv[page]++;
            if (ts > last)
                last = ts;
        }
        pageviews += k;
        bounces += k == 1;
        duration += last - first;
        for (int j = 0; last - first >= 2 && j < k - 1; j++)
            events[n++] =
                (struct crash_event){v, (int)rnd(CRASH_PAGES),
                                     first + 1 + (int64_t)rnd((unsigned)(last - first - 1)),
                                     false};
    }
    for (size_t i = n - 1; i > 0; i--) { /* shuffle */
        size_t j = rnd((unsigned)i + 1);
        struct crash_event t = events[i];
        events[i] = events[j];
        events[j] = t;
    }

    struct writer w = {e, events, n, false};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, writer_main, &w), 0);

    char *extra[] = {"--batch_size=50", "--claim_idle_ms=300", NULL};
    struct harness_proc *a = agg_spawn(e, extra), *bproc = NULL;
    int kills = 0, stalls = 0, round = 0;
    while (!w.done) {
        sleep_ms(150 + (int)rnd(450));
        harness_kill(a); /* kill -9, at any point of a batch */
        kills++;
        a = agg_spawn(e, extra);
        round++;
        if (round == 3)
            bproc = agg_spawn(e, extra); /* a second worker for a while */
        if (bproc && bproc->pid > 0 && round % 2 == 0) {
            kill(bproc->pid, SIGSTOP); /* stalls past claim_idle_ms: a takes over */
            sleep_ms(500 + (int)rnd(400));
            kill(bproc->pid, SIGCONT);
            stalls++;
        }
        if (bproc && bproc->pid > 0 && round == 9) {
            harness_kill(bproc);
            kills++;
        }
    }
    pthread_join(thread, NULL);
    wait_drained(e, 60000);
    agg_stop_ok(a);
    if (bproc && bproc->pid > 0)
        agg_stop_ok(bproc);
    cr_log_info("crash test: %zu events, %d kill -9, %d stalls, %d spawns", n, kills, stalls,
                e->nagg);

    cr_expect_eq(hget(e, "totals", "pageviews"), pageviews);
    cr_expect_eq(hget(e, "totals", "events"), (long long)n);
    cr_expect_eq(hget(e, "totals", "visits"), CRASH_VISITORS);
    cr_expect_eq(hget(e, "totals", "bounces"), bounces);
    cr_expect_eq(hget(e, "totals", "visit_duration_s"), duration);
    long long entry_sum = 0;
    for (int p = 0; p < CRASH_PAGES; p++) {
        char path[32];
        str_format(path, sizeof path, "/p%d", p);
        cr_expect_eq(row_count(e, "page", "pv", path), page_pv[p], "page %s", path);
        entry_sum += row_count(e, "entry_page", "vis", path);
    }
    cr_expect_eq(entry_sum, CRASH_VISITORS);
    long long visitors = cmd_int(e->rc, "PFCOUNT %sd:%s:%s:visitors", KP, SITE, e->day);
    cr_expect(visitors > CRASH_VISITORS * 97 / 100 && visitors < CRASH_VISITORS * 103 / 100,
              "HyperLogLog visitors %lld", visitors);
    cr_expect_eq(cmd_int(e->rc, "XLEN %s", STREAM), 0);

    size_t len;
    char *log = agg_logs(e, &len);
    cr_log_info("conflict recoveries logged: %s",
                strstr(log, "taken over by another worker") ? "yes" : "no");
    free(log);
    free(events);
}

/* ---- 5. privacy: nothing IP-like anywhere in Redis ---- */

static void dump_append(char **buf, size_t *len, const char *s, size_t n)
{
    *buf = realloc(*buf, *len + n + 2);
    memcpy(*buf + *len, s, n);
    (*buf)[*len + n] = '\n';
    *len += n + 1;
    (*buf)[*len] = '\0';
}

static void dump_reply(char **buf, size_t *len, const redisReply *r)
{
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        dump_append(buf, len, r->str, r->len);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        dump_reply(buf, len, r->element[i]);
}

/* Every key name and value, TYPE-aware; HyperLogLogs as raw strings. */
static char *dump_redis(redisContext *rc, size_t *len, int *types_seen)
{
    char *buf = NULL;
    *len = 0;
    dump_append(&buf, len, "", 0);
    char cursor[32] = "0";
    do {
        redisReply *scan = cmd(rc, "SCAN %s COUNT 1000", cursor);
        cr_assert_eq(scan->type, REDIS_REPLY_ARRAY);
        str_copy(cursor, sizeof cursor, scan->element[0]->str, scan->element[0]->len);
        for (size_t i = 0; i < scan->element[1]->elements; i++) {
            const redisReply *key = scan->element[1]->element[i];
            dump_append(&buf, len, key->str, key->len);
            redisReply *type = cmd(rc, "TYPE %b", key->str, key->len);
            redisReply *value = NULL;
            if (strcmp(type->str, "string") == 0) {
                value = cmd(rc, "GET %b", key->str, key->len);
                types_seen[0]++;
            } else if (strcmp(type->str, "hash") == 0) {
                value = cmd(rc, "HGETALL %b", key->str, key->len);
                types_seen[1]++;
            } else if (strcmp(type->str, "set") == 0) {
                value = cmd(rc, "SMEMBERS %b", key->str, key->len);
                types_seen[2]++;
            } else if (strcmp(type->str, "zset") == 0) {
                value = cmd(rc, "ZRANGE %b 0 -1 WITHSCORES", key->str, key->len);
                types_seen[3]++;
            } else if (strcmp(type->str, "stream") == 0) {
                value = cmd(rc, "XRANGE %b - +", key->str, key->len);
                types_seen[4]++;
            } else if (strcmp(type->str, "list") == 0) {
                value = cmd(rc, "LRANGE %b 0 -1", key->str, key->len);
            }
            cr_assert_not_null(value, "unexpected key type %s", type->str);
            dump_reply(&buf, len, value);
            freeReplyObject(value);
            freeReplyObject(type);
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
    return buf;
}

Test(aggregator_safety, no_ip_in_any_key_or_value, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    struct event_record ev;
    /* ip_keep=truncated puts the truncated IP into the stream (field ipt);
     * the aggregator must never copy it into a count. */
    const char *ips[] = {"203.0.113.0", "2001:db8:85a3::"};
    for (int i = 0; i < 40; i++) {
        char vh[17];
        str_format(vh, sizeof vh, "%016x", 0xabc000u + (unsigned)i);
        event_base(&ev, e, i % 5 ? "pageview" : "signup", "/canary-page", vh, e->now - i);
        SET(ev.ip_truncated, ips[i % 2]);
        SET(ev.referrer, "ref.example");
        SET(ev.country, "NL");
        SET(ev.region, "NH");
        SET(ev.city, "Amsterdam");
        if (i % 5 == 0) {
            SET(ev.props[0].key, "tier");
            SET(ev.props[0].value, "gold");
            ev.nprops = 1;
        }
        xadd(e->rc, &ev);
    }
    struct harness_proc *agg = agg_spawn(e, NULL);
    wait_drained(e, 15000);
    agg_stop_ok(agg);

    size_t len;
    int types[5] = {0};
    char *dump = dump_redis(e->rc, &len, types);
    /* the dump really covers keys, hashes, HLLs, sets and zsets */
    cr_assert(harness_contains(dump, len, "/canary-page", 12), "hash fields are dumped");
    cr_assert(harness_contains(dump, len, "HYLL", 4), "HyperLogLogs are dumped raw");
    cr_assert(harness_contains(dump, len, "0000000000abc001", 16), "zset members are dumped");
    cr_assert(types[0] > 0 && types[1] > 0 && types[2] > 0 && types[3] > 0,
              "strings/HLLs %d, hashes %d, sets %d, zsets %d", types[0], types[1], types[2],
              types[3]);
    cr_expect_eq(hget(e, "totals", "pageviews"), 32);

    unsigned char v4[4], v6[16];
    cr_assert_eq(inet_pton(AF_INET, ips[0], v4), 1);
    cr_assert_eq(inet_pton(AF_INET6, ips[1], v6), 1);
    const char *texts[] = {ips[0], ips[1], "203.0.113", "2001:db8"};
    for (size_t i = 0; i < ARRAY_LEN(texts); i++)
        cr_expect_not(harness_contains(dump, len, texts[i], strlen(texts[i])),
                      "an IP in Redis: %s", texts[i]);
    cr_expect_not(harness_contains(dump, len, v4, 4), "a binary IPv4 in Redis");
    cr_expect_not(harness_contains(dump, len, v6, 6), "a binary IPv6 prefix in Redis");
    free(dump);

    char *log = agg_logs(e, &len);
    for (size_t i = 0; i < ARRAY_LEN(texts); i++)
        cr_expect_not(harness_contains(log, len, texts[i], strlen(texts[i])));
    free(log);
}
