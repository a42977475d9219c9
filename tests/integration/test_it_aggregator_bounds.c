/* test_it_aggregator_bounds.c - the real veil-aggregator against a real
 * redis-server: what Redis holds stays within the written bound
 * (docs/KEYS.md "Memory bound") under the property flood of issue 10, the
 * pipeline recovers by itself when Redis is at maxmemory, and a Redis
 * killed with kill -9 and restarted from its append-only file loses no
 * count and counts nothing twice. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "aggregator_env.h"
#include "event.h"
#include "harness.h"
#include "shard.h"
#include "util.h"

TestSuite(aggregator_bounds, .fini = teardown);

#define BATCH_EVENTS 200

/* Events written as the collector does: batch entries of up to
 * BATCH_EVENTS events into SITE's shard stream. */
struct batch_writer {
    redisContext *rc;
    char buf[BATCH_EVENTS * 2048];
    size_t used, events, entries_pending;
};

static void bw_flush(struct batch_writer *w)
{
    if (w->used) {
        const char *argv[] = {"XADD", STREAM, "*", EVENT_BATCH_FIELD, w->buf};
        size_t lens[] = {4, strlen(STREAM), 1, 1, w->used};
        cr_assert_eq(redisAppendCommandArgv(w->rc, 5, argv, lens), REDIS_OK);
        w->entries_pending++;
    }
    w->used = w->events = 0;
    if (w->entries_pending >= 50 || !w->used) {
        for (; w->entries_pending; w->entries_pending--)
            xadd_reply(w->rc);
    }
}

static void bw_add(struct batch_writer *w, const struct event_record *ev)
{
    char packed[EVENT_PACKED_MAX];
    size_t plen = event_pack(ev, packed, sizeof packed);
    cr_assert_gt(plen, 0);
    size_t used = event_batch_append(w->buf, sizeof w->buf, w->used, packed, plen);
    if (used == 0 || w->events == BATCH_EVENTS) {
        bw_flush(w);
        used = event_batch_append(w->buf, sizeof w->buf, 0, packed, plen);
    }
    cr_assert_gt(used, 0);
    w->used = used;
    w->events++;
}

/* Every key of SITE's day (SCAN MATCH), their count and MEMORY USAGE. */
static void site_day_usage(struct env *e, long long *keys, long long *bytes)
{
    char cursor[32] = "0";
    *keys = *bytes = 0;
    do {
        redisReply *scan =
            cmd(e->rc, "SCAN %s MATCH %sd:%s:%s:* COUNT 10000", cursor, KP, SITE, e->day);
        str_copy(cursor, sizeof cursor, scan->element[0]->str, scan->element[0]->len);
        const redisReply *list = scan->element[1];
        for (size_t i = 0; i < list->elements; i++)
            redisAppendCommand(e->rc, "MEMORY USAGE %b SAMPLES 0", list->element[i]->str,
                               list->element[i]->len);
        for (size_t i = 0; i < list->elements; i++) {
            redisReply *r = NULL;
            cr_assert_eq(redisGetReply(e->rc, (void **)&r), REDIS_OK);
            if (r->type == REDIS_REPLY_INTEGER)
                *bytes += r->integer;
            freeReplyObject(r);
            (*keys)++;
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
}

/* ---- 1. the property flood of issue 10 ---- */

#define FLOOD_BEACONS 40000
#define FLOOD_PROPS 30
#define FLOOD_KEYS 1000
#define CAP 1000
#define BUDGET 10000

Test(aggregator_bounds, property_flood_stays_within_the_written_bound, .timeout = 240)
{
    env_start(&env);
    struct env *e = &env;
    /* 40,000 beacons of one visitor each, 30 properties each: 1,000 keys,
     * every value new. Before the budget: 1,001,000 keys, 320 MB. */
    struct batch_writer *w = calloc(1, sizeof *w);
    w->rc = e->rc;
    struct event_record ev;
    for (int i = 0; i < FLOOD_BEACONS; i++) {
        char vh[17];
        str_format(vh, sizeof vh, "%016x", 0x300000u + (unsigned)i);
        event_base(&ev, e, "flood", "/", vh, e->now - 60);
        for (int j = 0; j < FLOOD_PROPS; j++) {
            str_format(ev.props[j].key, sizeof ev.props[j].key, "k%d",
                       (i * FLOOD_PROPS + j) % FLOOD_KEYS);
            str_format(ev.props[j].value, sizeof ev.props[j].value, "v%d_%d", i, j);
        }
        ev.nprops = FLOOD_PROPS;
        bw_add(w, &ev);
    }
    bw_flush(w);
    bw_flush(w);
    free(w);
    char *extra[] = {"--breakdown_cap=1000", "--property_budget=10000", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    wait_drained(e, 200000);
    agg_stop_ok(agg);

    /* nothing lost: every property value counted, in a row or (other) */
    long long prop_rows = 0, prop_events = 0, prop_hashes = 0;
    char cursor[32] = "0";
    do {
        redisReply *scan = cmd(e->rc, "SCAN %s MATCH %sd:%s:%s:b:prop:*:ev COUNT 10000", cursor,
                               KP, SITE, e->day);
        str_copy(cursor, sizeof cursor, scan->element[0]->str, scan->element[0]->len);
        for (size_t i = 0; i < scan->element[1]->elements; i++) {
            redisReply *all = cmd(e->rc, "HGETALL %s", scan->element[1]->element[i]->str);
            for (size_t f = 0; f + 1 < all->elements; f += 2) {
                prop_events += strtoll(all->element[f + 1]->str, NULL, 10);
                prop_rows += strcmp(all->element[f]->str, "(other)") != 0;
            }
            freeReplyObject(all);
            prop_hashes++;
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
    cr_expect_eq(prop_events, (long long)FLOOD_BEACONS * FLOOD_PROPS, "every value counted");
    cr_expect_eq(prop_rows, BUDGET, "one budget for all property rows of the site-day");
    cr_expect_eq(prop_hashes, FLOOD_KEYS);
    cr_expect_eq(breakdown_rows(e, "prop_key", "ev"), FLOOD_KEYS);
    cr_expect_eq(hget(e, "rows", "prop"), BUDGET);
    cr_expect_eq(hget(e, "totals", "events"), FLOOD_BEACONS);

    /* the written bound (docs/KEYS.md "Memory bound"), for this traffic:
     * keys <= 5 (totals, visitors, scroll, rows, hours) + 24 hourly
     * visitor HLLs + 20 dims x 3 metric
     * hashes + prop_key rows x 2 (b:prop:<key>:pv|ev) + row HyperLogLogs
     * (published dims' rows + property rows + (other) rows). Bytes: each
     * key at most its name plus, per HyperLogLog, the dense size. */
    long long keys, bytes;
    site_day_usage(e, &keys, &bytes);
    long long row_hlls = 17LL * (CAP + 1) + BUDGET + CAP;
    /* + per-row bounces and seconds (2 hashes x 17 visit dims) and exit pages
     * (3 hashes and a row HyperLogLog per row) */
    long long key_bound = 5 + 24 + 20 * 3 + 2 + 65 + 1 + 3 + 2LL * CAP + row_hlls + 34 + 3 +
                          (CAP + 1);
    cr_log_info("property flood: %lld keys, %lld bytes in Redis for the site-day", keys, bytes);
    cr_expect_leq(keys, key_bound, "%lld keys > bound %lld", keys, key_bound);
    cr_expect_leq(keys, 2 * CAP + BUDGET + CAP + 100, "the flood made no more keys than rows");
    /* per-row cost bounded by a 12 KB dense HyperLogLog plus names; this
     * traffic (one visitor per row) keeps each far below that */
    cr_expect_leq(bytes, 16LL * 1024 * 1024, "the flood's site-day holds %lld bytes", bytes);
}

/* ---- 2. Redis at maxmemory ---- */

Test(aggregator_bounds, recovers_by_itself_at_maxmemory, .timeout = 120)
{
    env_start(&env);
    struct env *e = &env;
    freeReplyObject(cmd(e->rc, "CONFIG SET maxmemory-policy noeviction"));
    /* an aggregator ran before (it loaded its functions, which persist
     * with the data set), then stopped; meanwhile the stream fills Redis
     * until it refuses entries */
    agg_stop_ok(agg_spawn(e, NULL));
    long long used = 0;
    redisReply *info = cmd(e->rc, "MEMORY STATS");
    freeReplyObject(info);
    redisReply *mem = cmd(e->rc, "INFO memory");
    const char *at = strstr(mem->str, "used_memory:");
    cr_assert_not_null(at);
    used = strtoll(at + 12, NULL, 10);
    freeReplyObject(mem);
    freeReplyObject(cmd(e->rc, "CONFIG SET maxmemory %lld", used + 4 * 1024 * 1024));
    struct event_record ev;
    long long accepted = 0;
    char packed[EVENT_PACKED_MAX], batch[64 * 1024];
    for (int round = 0; round < 100000; round++) {
        size_t bused = 0;
        for (int k = 0; k < 50; k++) {
            char vh[17];
            /* ten page views per visitor, as on a real site: the open
             * visits the commit stores take far less than the raw events
             * it trims */
            str_format(vh, sizeof vh, "%016x", 0x400000u + (unsigned)(round * 50 + k) / 10);
            event_base(&ev, e, "pageview", "/full", vh, e->now - 30);
            SET(ev.referrer, "news.example");
            SET(ev.browser, "Firefox");
            SET(ev.browser_major, "126");
            SET(ev.os, "Linux");
            SET(ev.country, "DE");
            SET(ev.city, "Berlin");
            size_t plen = event_pack(&ev, packed, sizeof packed);
            bused = event_batch_append(batch, sizeof batch, bused, packed, plen);
        }
        redisReply *r = redisCommand(e->rc, "XADD %s * b %b", STREAM, batch, bused);
        cr_assert_not_null(r);
        bool oom = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0;
        freeReplyObject(r);
        if (oom)
            break;
        accepted += 50;
    }
    cr_assert_gt(accepted, 0, "Redis refused an XADD with OOM before the aggregator ran");

    /* the aggregator counts and trims at maxmemory (its functions are
     * allow-oom), which makes room again */
    struct harness_proc *agg = agg_spawn(e, NULL);
    wait_drained(e, 60000);
    cr_expect_eq(hget(e, "totals", "pageviews"), accepted);
    event_base(&ev, e, "pageview", "/after", VA, e->now);
    xadd(e->rc, &ev);
    wait_drained(e, 20000);
    cr_expect_eq(hget(e, "totals", "pageviews"), accepted + 1, "and goes on counting");
    agg_stop_ok(agg);
    cr_log_info("maxmemory: %lld events accepted before OOM, all counted", accepted);
}

/* ---- 3. Redis killed and restarted from its append-only file ---- */

Test(aggregator_bounds, redis_restart_with_aof_counts_exactly_once, .timeout = 120)
{
    struct env *e = &env;
    memset(e, 0, sizeof *e);
    e->dir = harness_tmpdir();
    cr_assert_not_null(e->dir);
    cr_assert_eq(harness_redis_start(&e->redis, e->dir, true), 0, "redis-server did not start");
    e->rc = connect_unix(e->redis.socket);
    e->now = (int64_t)time(NULL);
    utc_day(e->now, e->day);
    shard_key_prefix(e->prefix, sizeof e->prefix, shard_of_site(SITE, strlen(SITE), SHARDS));
    str_format(e->stream, sizeof e->stream, "%sevents", e->prefix);

    /* a backlog: each visitor views two pages 10 s apart (one visit, no
     * bounce), the second pages after all the first ones */
    struct batch_writer *w = calloc(1, sizeof *w);
    w->rc = e->rc;
    struct event_record ev;
    const int visitors = 40000;
    for (int i = 0; i < visitors; i++) {
        char vh[17];
        str_format(vh, sizeof vh, "%016x", 0x500000u + (unsigned)i);
        event_base(&ev, e, "pageview", "/a", vh, e->now - 600);
        bw_add(w, &ev);
    }
    for (int i = 0; i < visitors; i++) {
        char vh[17];
        str_format(vh, sizeof vh, "%016x", 0x500000u + (unsigned)i);
        event_base(&ev, e, "pageview", "/b", vh, e->now - 590);
        bw_add(w, &ev);
    }
    bw_flush(w);
    bw_flush(w);
    free(w);

    char *extra[] = {"--batch_size=200", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    /* kill -9 Redis while the backlog is being rolled up */
    for (int waited = 0; waited < 20000 && hget(e, "totals", "pageviews") == 0; waited += 1)
        sleep_ms(1);
    long long before = hget(e, "totals", "pageviews");
    kill(e->redis.pid, SIGKILL);
    waitpid(e->redis.pid, NULL, 0);
    e->redis.pid = 0;
    redisFree(e->rc);
    sleep_ms(300);
    cr_assert_eq(harness_redis_start(&e->redis, e->dir, true), 0, "redis-server did not restart");
    e->rc = connect_unix(e->redis.socket);
    wait_drained(e, 60000);
    agg_stop_ok(agg);
    cr_log_info("AOF restart after %lld of %d page views were counted", before, 2 * visitors);
    cr_expect_lt(before, 2 * visitors, "Redis was killed mid-backlog");
    cr_expect_eq(hget(e, "totals", "pageviews"), 2 * visitors);
    cr_expect_eq(hget(e, "totals", "visits"), visitors);
    cr_expect_eq(hget(e, "totals", "bounces"), 0, "visits carried over the restart");
    cr_expect_eq(hget(e, "totals", "visit_duration_s"), 10LL * visitors);
    cr_expect_eq(row_count(e, "page", "pv", "/a"), visitors);
    cr_expect_eq(row_count(e, "page", "pv", "/b"), visitors);
}
