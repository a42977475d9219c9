/* test_it_aggregator_safety.c - the real veil-aggregator against a real
 * redis-server: exactly-once under failure, and privacy.
 *
 * Crash safety: a writer thread XADDs events of 24 sites (all 16 shards)
 * in bounded batches, as batch entries and as old collectors' entries in
 * shard 0, while three aggregator processes share the shards and a random
 * one is killed with kill -9 every second and restarted; and an owner
 * frozen (SIGSTOP) past its lease must be refused once resumed. At the end
 * every count equals what was sent, exactly. Privacy: a TYPE-aware dump of every key and value (and
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
#include "months.h"
#include "period.h"
#include "event.h"
#include "harness.h"
#include "util.h"

TestSuite(aggregator_safety, .fini = teardown);

/* ---- 3. crash safety: three processes, kill -9, stalls ---- */

#define CRASH_SITES 24
#define CRASH_VISITORS 1500
#define CRASH_PAGES 20
#define CRASH_BATCH 100
#define CRASH_LEGACY_EVERY 20 /* one event in 20 is an old collector's entry in shard 0 */

struct crash_event {
    int site, visitor, page;
    int64_t ts;
    bool pageview;
};

struct site_expect {
    long long pageviews, events, visits, bounces, duration;
};

struct writer {
    const struct env *e;
    struct crash_event *events;
    size_t n;
    int pause_ms;
    volatile bool done;
};

static void crash_site(int site, char *out, size_t outlen)
{
    str_format(out, outlen, "s%d.example", site);
}

/* Each CRASH_BATCH of events: per shard, one entry holding them all in
 * the batch field (as the collector writes them), except every
 * CRASH_LEGACY_EVERY-th event, written alone (packed field 'e') into shard
 * 0's stream whatever its site, as an old collector did. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    redisContext *rc = connect_unix(w->e->redis.socket);
    struct event_record ev;
    static char batch[SHARDS][64 * 1024];
    size_t used[SHARDS];
    char packed[EVENT_PACKED_MAX];
    for (size_t i = 0; i < w->n; i += CRASH_BATCH) {
        size_t end = i + CRASH_BATCH < w->n ? i + CRASH_BATCH : w->n;
        memset(used, 0, sizeof used);
        size_t replies = 0;
        for (size_t k = i; k < end; k++) {
            const struct crash_event *c = &w->events[k];
            char path[32], vh[17];
            str_format(path, sizeof path, "/p%d", c->page);
            str_format(vh, sizeof vh, "%016x", 0x100000u + (unsigned)c->visitor);
            event_base(&ev, w->e, c->pageview ? "pageview" : "click", path, vh, c->ts);
            crash_site(c->site, ev.site, sizeof ev.site);
            size_t plen = event_pack(&ev, packed, sizeof packed);
            if (k % CRASH_LEGACY_EVERY == 0) {
                const char *argv[] = {"XADD", "veil:{0}:events", "*", "e", packed};
                size_t lens[] = {4, 15, 1, 1, plen};
                redisAppendCommandArgv(rc, 5, argv, lens);
                replies++;
                continue;
            }
            unsigned s = shard_of_site(ev.site, strlen(ev.site), SHARDS);
            used[s] = event_batch_append(batch[s], sizeof batch[s], used[s], packed, plen);
            cr_assert_gt(used[s], 0);
        }
        for (unsigned s = 0; s < SHARDS; s++) {
            if (!used[s])
                continue;
            char stream[32];
            str_format(stream, sizeof stream, "veil:{%u}:events", s);
            const char *argv[] = {"XADD", stream, "*", EVENT_BATCH_FIELD, batch[s]};
            size_t lens[] = {4, strlen(stream), 1, 1, used[s]};
            redisAppendCommandArgv(rc, 5, argv, lens);
            replies++;
        }
        for (size_t k = 0; k < replies; k++)
            xadd_reply(rc);
        sleep_ms(w->pause_ms);
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

/* Each visitor (of one site): 1..4 pageviews within 1000 s (one visit),
 * clicks strictly between its first and last pageview (so they never
 * change a duration); shuffled. */
static struct crash_event *crash_events(const struct env *e, int visitors, size_t *n,
                                        struct site_expect *want)
{
    size_t cap = (size_t)visitors * 8;
    struct crash_event *events = calloc(cap, sizeof *events);
    *n = 0;
    memset(want, 0, CRASH_SITES * sizeof *want);
    for (int v = 0; v < visitors; v++) {
        int k = 1 + v % 4, site = v % CRASH_SITES;
        int64_t first = e->now - 1200 + rnd(100), last = first;
        for (int j = 0; j < k; j++) {
            int64_t ts = first + (j ? 10 + rnd(900) : 0);
            events[(*n)++] = (struct crash_event){site, v, (int)rnd(CRASH_PAGES), ts, true};
            if (ts > last)
                last = ts;
        }
        struct site_expect *w = &want[site];
        w->pageviews += k;
        w->events += k;
        w->visits++;
        w->bounces += k == 1;
        w->duration += last - first;
        for (int j = 0; last - first >= 2 && j < k - 1; j++) {
            events[(*n)++] =
                (struct crash_event){site, v, (int)rnd(CRASH_PAGES),
                                     first + 1 + (int64_t)rnd((unsigned)(last - first - 1)),
                                     false};
            w->events++;
        }
    }
    for (size_t i = *n - 1; i > 0; i--) {
        size_t j = rnd((unsigned)i + 1);
        struct crash_event t = events[i];
        events[i] = events[j];
        events[j] = t;
    }
    return events;
}

static long long site_total(struct env *e, int site, const char *field)
{
    char name[64], prefix[SHARD_PREFIX_MAX];
    crash_site(site, name, sizeof name);
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(name, strlen(name), SHARDS));
    redisReply *r = cmd(e->rc, "HGET %sd:%s:%s:totals %s", prefix, name, e->day, field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}

/* field of the quarter, month or week twin of the day's totals (months.h) */
static long long twin_total(struct env *e, int site, char kind, const char *field)
{
    char name[64], prefix[SHARD_PREFIX_MAX], span[11], err[64];
    period_day day;
    cr_assert(period_parse_day(e->day, 10, &day, err, sizeof err));
    period_format_day(months_span_first(kind, day), span);
    if (kind != MONTHS_WEEK)
        span[7] = '\0'; /* YYYY-MM */
    crash_site(site, name, sizeof name);
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(name, strlen(name), SHARDS));
    char k[2] = {kind, '\0'};
    redisReply *r = cmd(e->rc, "HGET %s%s:%s:%s:totals %s", prefix, k, name, span, field);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}

static void check_sites(struct env *e, const struct site_expect *want)
{
    /* the twins went with every commit, exactly once too (all events are
     * on one day, so each twin holds that day's totals) */
    const char kinds[] = {MONTHS_MONTH, MONTHS_WEEK, MONTHS_QUARTER};
    const char *fields[] = {"pageviews", "events", "visits", "bounces", "visit_duration_s"};
    for (int s = 0; s < CRASH_SITES; s++)
        for (size_t k = 0; k < sizeof kinds; k++)
            for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
                cr_expect_eq(twin_total(e, s, kinds[k], fields[f]), site_total(e, s, fields[f]),
                             "site %d, %c twin, %s", s, kinds[k], fields[f]);
    for (int s = 0; s < CRASH_SITES; s++) {
        cr_expect_eq(site_total(e, s, "pageviews"), want[s].pageviews, "site %d pageviews", s);
        cr_expect_eq(site_total(e, s, "events"), want[s].events, "site %d events", s);
        cr_expect_eq(site_total(e, s, "visits"), want[s].visits, "site %d visits", s);
        cr_expect_eq(site_total(e, s, "bounces"), want[s].bounces, "site %d bounces", s);
        cr_expect_eq(site_total(e, s, "visit_duration_s"), want[s].duration,
                     "site %d duration", s);
    }
}

Test(aggregator_safety, three_processes_kill9_every_second_count_exactly_once, .timeout = 120)
{
    env_start(&env);
    struct env *e = &env;
    struct site_expect want[CRASH_SITES];
    size_t n;
    struct crash_event *events = crash_events(e, CRASH_VISITORS, &n, want);
    struct writer w = {e, events, n, 250, false};
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, writer_main, &w), 0);

    /* three processes share the 16 shards; every second one of them, at
     * random, is killed with kill -9 (at any point of a batch) and
     * restarted, for as long as events stream in (about 10 s) */
    char *extra[] = {"--batch_size=300", NULL};
    struct harness_proc *procs[3];
    for (int i = 0; i < 3; i++)
        procs[i] = agg_spawn(e, extra);
    int kills = 0;
    while (!w.done) {
        sleep_ms(1000);
        int victim = (int)rnd(3);
        harness_kill(procs[victim]);
        procs[victim] = agg_spawn(e, extra);
        kills++;
    }
    pthread_join(thread, NULL);
    wait_drained(e, 60000);
    for (int i = 0; i < 3; i++)
        agg_stop_ok(procs[i]);
    cr_log_info("crash test: %zu events on %d sites, %d kill -9, %d spawns", n, CRASH_SITES,
                kills, e->nagg);
    cr_assert_geq(kills, 5, "the load lasted long enough for several kills");
    check_sites(e, want);
    free(events);
}

Test(aggregator_safety, owner_paused_past_its_lease_is_refused, .timeout = 120)
{
    env_start(&env);
    struct env *e = &env;
    struct site_expect want[CRASH_SITES];
    size_t n;
    /* a backlog big enough that a spends its time planning and committing
     * large batches: frozen at a random moment, it is most likely holding
     * a batch it read but has not committed */
    struct crash_event *events = crash_events(e, 25000, &n, want);
    struct writer w = {e, events, n, 0, false};
    writer_main(&w);

    char *extra[] = {"--batch_size=20000", NULL};
    struct harness_proc *a = agg_spawn(e, extra);
    long long counted = 0;
    for (int waited = 0; waited < 20000 && counted == 0; waited += 1) {
        for (int s = 0; s < CRASH_SITES && counted == 0; s++)
            counted += site_total(e, s, "events");
        sleep_ms(1);
    }
    cr_assert_gt(counted, 0, "a committed a first batch");
    kill(a->pid, SIGSTOP);
    struct harness_proc *b = agg_spawn(e, extra);
    sleep_ms(4500); /* lease_ms is 1500: b owns every shard by now */
    kill(a->pid, SIGCONT);
    wait_drained(e, 60000);
    agg_stop_ok(b);
    agg_stop_ok(a);
    check_sites(e, want);
    size_t len;
    char *log = harness_read_file(a->log_path, &len);
    bool refused = strstr(log, "is stale") != NULL;
    cr_log_info("paused owner: %s", refused ? "its commit was refused (stale epoch)"
                                            : "its renewal found the lease lost first");
    cr_expect(refused || strstr(log, "lease lost"), "a learns it lost its shards: %s", log);
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
    cr_assert(harness_contains(dump, len, "0000000000abc001", 16),
              "hash fields (the visits' checkpoint) are dumped");
    cr_assert(types[0] > 0 && types[1] > 0 && types[2] > 0,
              "strings/HLLs %d, hashes %d, sets %d", types[0], types[1], types[2]);
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
