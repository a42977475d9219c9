/* test_it_aggregator.c - the real veil-aggregator against a real
 * redis-server (unix socket in a temp dir): counting.
 *
 * Known events are XADDed with event_encode, the aggregator rolls them up,
 * and every count is checked exactly: totals, visits, bounces, durations,
 * breakdown rows with the cap and "(other)", row visitors, the scroll
 * histogram, expiries, the realtime set and the trimmed stream. Then: the
 * commit script's ownership guard on its own; reconnection after a Redis
 * restart; the stats API thread beside the roll-up; the sample config; and
 * a throughput measurement (printed, not asserted). Crash safety and the
 * IP scan are in test_it_aggregator_safety.c. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "aggregator_env.h"
#include "commit.h"
#include "event.h"
#include "harness.h"
#include "rollup.h"
#include "util.h"

TestSuite(aggregator, .fini = teardown);

/* ---- 1. exact counts ---- */

/* The known event set; see docs/AGGREGATOR.md for the rules checked. */
static void write_known_events(struct env *e)
{
    struct event_record ev;
    const int64_t now = e->now, t0 = now - 1000;

    event_base(&ev, e, "pageview", "/", VA, t0); /* A enters from google */
    SET(ev.referrer, "google.com");
    SET(ev.country, "DE");
    SET(ev.region, "BY");
    SET(ev.city, "Munich");
    SET(ev.browser, "Firefox");
    SET(ev.browser_major, "126");
    SET(ev.os, "Linux");
    ev.device = DEVICE_DESKTOP;
    SET(ev.screen, "laptop");
    xadd(e->rc, &ev);
    ev.ts = t0 + 60; /* A's second pageview: internal, no referrer */
    SET(ev.path, "/about");
    ev.referrer[0] = '\0';
    xadd(e->rc, &ev);
    event_base(&ev, e, "engagement", "/about", VA, t0 + 90);
    ev.engaged_ms = 5000;
    ev.scroll_depth = 45;
    xadd(e->rc, &ev);

    event_base(&ev, e, "pageview", "/", VB, t0); /* B: newsletter, bounces */
    SET(ev.utm_source, "newsletter");
    SET(ev.utm_medium, "email");
    SET(ev.utm_campaign, "may");
    SET(ev.country, "FR");
    ev.device = DEVICE_MOBILE;
    xadd(e->rc, &ev);

    event_base(&ev, e, "pageview", "/pricing", VC, now - 2900); /* C: two visits */
    xadd(e->rc, &ev);
    /* D: three pages, written one stream field per event field (the layout
     * before the packed field, still read) */
    event_base(&ev, e, "pageview", "/blog/1", VD, t0 + 100);
    xadd_fields(e->rc, &ev);
    event_base(&ev, e, "pageview", "/blog/2", VD, t0 + 160);
    xadd_fields(e->rc, &ev);
    event_base(&ev, e, "pageview", "/blog/3", VD, t0 + 200);
    xadd_fields(e->rc, &ev);
    event_base(&ev, e, "pageview", "/pricing", VC, now - 900); /* 2000 s later */
    SET(ev.referrer, "bing.com");
    xadd(e->rc, &ev);

    event_base(&ev, e, "signup", "/pricing", VA, now - 10); /* A's custom event */
    SET(ev.props[0].key, "plan");
    SET(ev.props[0].value, "pro");
    ev.nprops = 1;
    xadd(e->rc, &ev);

    event_base(&ev, e, "pageview", "/", NULL, t0); /* visitor_hash=off */
    xadd(e->rc, &ev);
    event_base(&ev, e, "pageview", "/blog/1", NULL, t0);
    xadd(e->rc, &ev);

    /* undecodable: no site; a bad number; a packed value cut short */
    freeReplyObject(cmd(e->rc, "XADD %s * v 1 day %s ts 1 n pageview path /x", STREAM, e->day));
    freeReplyObject(
        cmd(e->rc, "XADD %s * v 1 site %s day %s ts abc n pageview", STREAM, SITE, e->day));
    freeReplyObject(cmd(e->rc, "XADD %s * e %b", STREAM, "1\x04site\x10" "abc", (size_t)10));

    event_base(&ev, e, "scroll", "/", VB, t0 + 5); /* B scrolls: extends, no pageview */
    ev.scroll_depth = 100;
    xadd(e->rc, &ev);

    event_base(&ev, e, "pageview", "/", VA, t0); /* older than retention */
    SET(ev.day, "2000-01-01");
    xadd(e->rc, &ev);
}

static void check_known_counts(struct env *e, long long extra_pageviews)
{
    /* totals */
    cr_expect_eq(hget(e, "totals", "pageviews"), 10 + extra_pageviews);
    cr_expect_eq(hget(e, "totals", "events"), 11 + extra_pageviews);
    cr_expect_eq(hget(e, "totals", "visits"), 5);
    cr_expect_eq(hget(e, "totals", "bounces"), 3, "B once, C twice");
    cr_expect_eq(hget(e, "totals", "visit_duration_s"), 990 + 5 + 100 + extra_pageviews * 5);
    cr_expect_eq(hget(e, "totals", "engaged_ms"), 5000);
    cr_expect_eq(hget(e, "totals", "engaged_n"), 1);
    cr_expect_eq(hget(e, "totals", "scroll_sum"), 145);
    cr_expect_eq(hget(e, "totals", "scroll_n"), 2);
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT veil:{0}:d:%s:%s:visitors", SITE, e->day), 4);
    /* scroll histogram */
    cr_expect_eq(hget(e, "scroll", "40"), 1);
    cr_expect_eq(hget(e, "scroll", "100"), 1);
    cr_expect_eq(cmd_int(e->rc, "HLEN veil:{0}:d:%s:%s:scroll", SITE, e->day), 2);

    /* pages, capped at 3 rows: "/", "/about", "/pricing"; the blog is "(other)" */
    cr_expect_eq(breakdown_rows(e, "page", "ev"), 4);
    cr_expect_eq(row_count(e, "page", "pv", "/"), 3);
    cr_expect_eq(row_count(e, "page", "pv", "/about"), 1 + extra_pageviews);
    cr_expect_eq(row_count(e, "page", "pv", "/pricing"), 2);
    cr_expect_eq(row_count(e, "page", "ev", "/pricing"), 3, "the signup counts as an event");
    cr_expect_eq(row_count(e, "page", "pv", "(other)"), 4);
    cr_expect_eq(row_count(e, "page", "pv", "/blog/1"), 0);
    cr_expect_eq(row_visitors(e, "page", "/"), 2, "A and B; the anonymous view has no hash");
    cr_expect_eq(row_visitors(e, "page", "(other)"), 1);
    cr_expect_eq(row_visitors(e, "page", "/pricing"), 2);

    /* entry pages (visits) */
    cr_expect_eq(row_count(e, "entry_page", "vis", "/"), 2);
    cr_expect_eq(row_count(e, "entry_page", "vis", "/pricing"), 2);
    cr_expect_eq(row_count(e, "entry_page", "vis", "/blog/1"), 1);
    cr_expect_eq(breakdown_rows(e, "entry_page", "vis"), 3);
    cr_expect_eq(row_visitors(e, "entry_page", "/pricing"), 1);

    /* sources: per event (pv/ev) and per visit (vis); bing.com is past the cap */
    cr_expect_eq(row_count(e, "source", "pv", "google.com"), 1);
    cr_expect_eq(row_count(e, "source", "pv", "Direct / None"), 7 + extra_pageviews);
    cr_expect_eq(row_count(e, "source", "ev", "Direct / None"), 8 + extra_pageviews);
    cr_expect_eq(row_count(e, "source", "pv", "newsletter"), 1);
    cr_expect_eq(row_count(e, "source", "pv", "(other)"), 1);
    cr_expect_eq(row_count(e, "source", "pv", "bing.com"), 0);
    cr_expect_eq(row_count(e, "source", "vis", "google.com"), 1);
    cr_expect_eq(row_count(e, "source", "vis", "newsletter"), 1);
    cr_expect_eq(row_count(e, "source", "vis", "Direct / None"), 2);
    cr_expect_eq(row_count(e, "source", "vis", "(other)"), 1);
    cr_expect_eq(row_visitors(e, "source", "Direct / None"), 2, "C and D started visits so");
    cr_expect_eq(row_visitors(e, "source", "google.com"), 1);
    cr_expect_eq(row_count(e, "utm_source", "vis", "newsletter"), 1);
    cr_expect_eq(row_count(e, "utm_medium", "vis", "email"), 1);
    cr_expect_eq(row_count(e, "utm_campaign", "pv", "may"), 1);

    /* geo, browser, device */
    cr_expect_eq(row_count(e, "country", "pv", "DE"), 2 + extra_pageviews);
    cr_expect_eq(row_count(e, "country", "vis", "DE"), 1);
    cr_expect_eq(row_count(e, "country", "vis", "FR"), 1);
    cr_expect_eq(row_visitors(e, "country", "DE"), 1);
    cr_expect_eq(row_count(e, "region", "pv", "DE-BY"), 2 + extra_pageviews);
    cr_expect_eq(row_count(e, "city", "vis", "Munich"), 1);
    cr_expect_eq(row_count(e, "browser_version", "pv", "Firefox 126"), 2 + extra_pageviews);
    cr_expect_eq(row_count(e, "device", "pv", "desktop"), 2 + extra_pageviews);
    cr_expect_eq(row_count(e, "device", "vis", "mobile"), 1);
    cr_expect_eq(row_count(e, "screen", "vis", "laptop"), 1);

    /* names and props */
    cr_expect_eq(row_count(e, "name", "ev", "pageview"), 10 + extra_pageviews);
    cr_expect_eq(row_count(e, "name", "ev", "signup"), 1);
    cr_expect_eq(breakdown_rows(e, "name", "ev"), 2, "measurement events make no name rows");
    cr_expect_eq(row_count(e, "prop_key", "ev", "plan"), 1);
    cr_expect_eq(row_count(e, "prop:plan", "ev", "pro"), 1);
    cr_expect_eq(row_visitors(e, "prop:plan", "pro"), 1);
}

static void check_known_keys(struct env *e)
{
    /* expiry: end of today + 30 days */
    long long ttl = cmd_int(e->rc, "TTL veil:{0}:d:%s:%s:totals", SITE, e->day);
    cr_expect(ttl > 30 * 86400 - 60 && ttl <= 31 * 86400, "totals TTL %lld", ttl);
    const char *suffixes[] = {"visitors", "scroll", "b:page:pv", "b:source:vis",
                              "u:page:/", "u:source:(other)", "b:prop:plan:ev"};
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        long long t = cmd_int(e->rc, "TTL veil:{0}:d:%s:%s:%s", SITE, e->day, suffixes[i]);
        cr_expect(t > 30 * 86400 - 60 && t <= 31 * 86400, "%s TTL %lld", suffixes[i], t);
    }
    /* the expired day and the rejected entries left nothing */
    cr_expect_eq(cmd_int(e->rc, "EXISTS veil:{0}:d:%s:2000-01-01:totals", SITE), 0);
    cr_expect_eq(cmd_int(e->rc, "SCARD veil:{0}:sites"), 1);
    cr_expect_eq(cmd_int(e->rc, "SISMEMBER veil:{0}:sites %s", SITE), 1);
    /* open sessions live session_timeout_s */
    long long st = cmd_int(e->rc, "TTL veil:{0}:s:%s:%s", SITE, VA);
    cr_expect(st > 1700 && st <= 1800, "session TTL %lld", st);
    redisReply *spv = cmd(e->rc, "HGET veil:{0}:s:%s:%s pv", SITE, VD);
    cr_expect(spv->type == REDIS_REPLY_STRING && strcmp(spv->str, "3") == 0,
              "D's open session holds 3 pageviews");
    freeReplyObject(spv);
    /* realtime: only A was seen in the last 5 minutes */
    cr_expect_eq(cmd_int(e->rc, "ZCARD veil:{0}:rt:%s", SITE), 1);
    redisReply *r = cmd(e->rc, "ZSCORE veil:{0}:rt:%s %s", SITE, VA);
    cr_expect_eq(r->type, REDIS_REPLY_STRING);
    if (r->type == REDIS_REPLY_STRING)
        cr_expect_eq(strtoll(r->str, NULL, 10), e->now - 10);
    freeReplyObject(r);
    long long rt_ttl = cmd_int(e->rc, "TTL veil:{0}:rt:%s", SITE);
    cr_expect(rt_ttl > 500 && rt_ttl <= 600);
    /* the stream is trimmed */
    cr_expect_eq(cmd_int(e->rc, "XLEN %s", STREAM), 0);
}

Test(aggregator, counts_every_metric_exactly, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    write_known_events(e);
    char *extra[] = {"--breakdown_cap=3", "--retention_days=30", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    wait_drained(e, 15000);
    check_known_counts(e, 0);
    check_known_keys(e);

    /* The script cache is lost (as after a Redis restart): NOSCRIPT must
     * reload it. A's next pageview extends the open session by 5 s. */
    freeReplyObject(cmd(e->rc, "SCRIPT FLUSH"));
    struct event_record ev;
    event_base(&ev, e, "pageview", "/about", VA, e->now - 5);
    SET(ev.country, "DE");
    SET(ev.region, "BY");
    SET(ev.browser, "Firefox");
    SET(ev.browser_major, "126");
    ev.device = DEVICE_DESKTOP;
    xadd(e->rc, &ev);
    wait_drained(e, 15000);
    check_known_counts(e, 1);
    agg_stop_ok(agg);

    size_t len;
    char *log = agg_logs(e, &len);
    const char *needle = "rejected (acknowledged, not counted)";
    char *first = strstr(log, needle);
    char *second = first ? strstr(first + 1, needle) : NULL;
    cr_expect(second && strstr(second + 1, needle), "the three undecodable entries are logged");
    const char *secrets[] = {VA, VB, VC, "/pricing", "google.com", "Munich", "newsletter"};
    for (size_t i = 0; i < ARRAY_LEN(secrets); i++)
        cr_expect_not(harness_contains(log, len, secrets[i], strlen(secrets[i])),
                      "the log holds event content: %s", secrets[i]);
    free(log);
}

/* ---- 2. the ownership guard of the commit script, directly ---- */

Test(aggregator, commit_refuses_entries_taken_by_another_worker, .timeout = 30)
{
    env_start(&env);
    struct env *e = &env;
    freeReplyObject(cmd(e->rc, "XGROUP CREATE %s agg 0 MKSTREAM", STREAM));
    struct event_record ev;
    const char *visitors[] = {VA, VB, VC};
    for (int i = 0; i < 3; i++) {
        event_base(&ev, e, "pageview", "/", visitors[i], e->now);
        xadd(e->rc, &ev);
    }
    /* worker x reads all three; worker y takes the second over */
    redisReply *read = cmd(e->rc, "XREADGROUP GROUP agg x COUNT 10 STREAMS %s >", STREAM);
    cr_assert_eq(read->type, REDIS_REPLY_ARRAY);
    const redisReply *entries = read->element[0]->element[1];
    cr_assert_eq(entries->elements, 3);
    const char *ids[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        ids[i] = entries->element[i]->element[0]->str;
        lens[i] = entries->element[i]->element[0]->len;
    }
    freeReplyObject(cmd(e->rc, "XCLAIM %s agg y 0 %s", STREAM, ids[1]));

    struct rollup *r = rollup_new(ROLLUP_SHARD_PREFIX, 30);
    struct commit *c = commit_new();
    struct commit_params px = {STREAM, "veil:{0}:sites", "agg", "x", 1000, 1800};
    char err[256];
    bool lost[3];
    for (int i = 0; i < 3; i++) {
        event_base(&ev, e, "pageview", "/", visitors[i], e->now);
        cr_assert_eq(rollup_add(r, &ev, e->now, err, sizeof err), ROLLUP_ADDED);
    }
    rollup_finish(r);
    cr_assert_eq(commit_batch(c, e->rc, &px, ids, lens, 3, r, lost, err, sizeof err),
                 COMMIT_CONFLICT, "%s", err);
    cr_assert(!lost[0] && lost[1] && !lost[2]);
    cr_assert_eq(hget(e, "totals", "pageviews"), 0, "a refused commit writes nothing");
    cr_assert_eq(pending(e->rc), 3);

    /* x recombines without the lost entry; then y commits it */
    rollup_reset(r);
    const char *x_ids[2] = {ids[0], ids[2]};
    size_t x_lens[2] = {lens[0], lens[2]};
    event_base(&ev, e, "pageview", "/", VA, e->now);
    rollup_add(r, &ev, e->now, err, sizeof err);
    event_base(&ev, e, "pageview", "/", VC, e->now);
    rollup_add(r, &ev, e->now, err, sizeof err);
    rollup_finish(r);
    freeReplyObject(cmd(e->rc, "SCRIPT FLUSH")); /* NOSCRIPT path on the way */
    cr_assert_eq(commit_batch(c, e->rc, &px, x_ids, x_lens, 2, r, lost, err, sizeof err),
                 COMMIT_OK, "%s", err);
    cr_assert_eq(hget(e, "totals", "pageviews"), 2);

    struct commit_params py = px;
    py.consumer = "y";
    rollup_reset(r);
    event_base(&ev, e, "pageview", "/", VB, e->now);
    rollup_add(r, &ev, e->now, err, sizeof err);
    rollup_finish(r);
    /* a second commit of x's entries (a replay) is refused as well */
    cr_assert_eq(commit_batch(c, e->rc, &px, x_ids, x_lens, 2, r, lost, err, sizeof err),
                 COMMIT_CONFLICT);
    cr_assert_eq(commit_batch(c, e->rc, &py, &ids[1], &lens[1], 1, r, lost, err, sizeof err),
                 COMMIT_OK, "%s", err);
    cr_assert_eq(hget(e, "totals", "pageviews"), 3);
    cr_assert_eq(hget(e, "totals", "visits"), 3);
    cr_assert_eq(pending(e->rc), 0);
    cr_assert_eq(cmd_int(e->rc, "XLEN %s", STREAM), 0);

    /* dead consumers' names are forgotten once idle with nothing pending */
    sleep_ms(10);
    cr_assert_eq(commit_forget_consumers(e->rc, &px, 0, err, sizeof err), 1, "%s", err);
    redisReply *consumers = cmd(e->rc, "XINFO CONSUMERS %s agg", STREAM);
    cr_assert_eq(consumers->elements, 1, "x itself is kept");
    freeReplyObject(consumers);

    freeReplyObject(read);
    commit_free(c);
    rollup_free(r);
}

/* ---- 3. a plan made from state another worker then changed ---- */

struct race {
    struct env *e;
    bool session, row; /* what the other worker changes */
    int calls;
};

/* What another worker's commit for visitor A would do between this
 * worker's reads and its script call: open A's session 10 s ago and count
 * that visit, and/or give the page breakdown (cap 1) its only row. */
static void other_worker_commits(void *arg, int attempt)
{
    struct race *race = arg;
    struct env *e = race->e;
    race->calls++;
    if (attempt != 0)
        return;
    char base[256];
    cr_assert(rollup_key_day(base, sizeof base, ROLLUP_SHARD_PREFIX, SITE, e->day, ""));
    int64_t exp = rollup_day_expire_at(e->day, 30);
    if (race->session) {
        freeReplyObject(
            cmd(e->rc, "HSET veil:{0}:s:%s:%s pv 1 start %lld last %lld base %s exp %lld", SITE,
                VA, (long long)e->now - 10, (long long)e->now - 10, base, (long long)exp));
        freeReplyObject(cmd(e->rc, "HINCRBY %stotals visits 1", base));
        freeReplyObject(cmd(e->rc, "HINCRBY %stotals bounces 1", base));
    }
    if (race->row)
        freeReplyObject(cmd(e->rc, "HINCRBY %sb:page:ev /pricing 1", base));
}

/* Commit A's page view "/" with breakdown_cap 1 while `race` happens. */
static void commit_during(struct env *e, struct race *race)
{
    freeReplyObject(cmd(e->rc, "XGROUP CREATE %s agg 0 MKSTREAM", STREAM));
    struct event_record ev;
    event_base(&ev, e, "pageview", "/", VA, e->now);
    xadd(e->rc, &ev);
    redisReply *read = cmd(e->rc, "XREADGROUP GROUP agg x COUNT 10 STREAMS %s >", STREAM);
    const redisReply *entry = read->element[0]->element[1]->element[0];
    const char *id = entry->element[0]->str;
    size_t idlen = entry->element[0]->len;

    struct rollup *r = rollup_new(ROLLUP_SHARD_PREFIX, 30);
    struct commit *c = commit_new();
    struct commit_params px = {STREAM, "veil:{0}:sites", "agg", "x", 1, 1800};
    char err[256];
    bool lost[1];
    cr_assert_eq(rollup_add(r, &ev, e->now, err, sizeof err), ROLLUP_ADDED);
    rollup_finish(r);
    race->e = e;
    commit_set_plan_hook(c, other_worker_commits, race);
    cr_assert_eq(commit_batch(c, e->rc, &px, &id, &idlen, 1, r, lost, err, sizeof err),
                 COMMIT_OK, "%s", err);
    cr_assert_eq(race->calls, 2, "the first plan is thrown away, the second commits");
    cr_assert_eq(commit_replans(c), 1);
    cr_expect_eq(hget(e, "totals", "pageviews"), 1);
    cr_expect_eq(pending(e->rc), 0);
    freeReplyObject(read);
    commit_free(c);
    rollup_free(r);
}

Test(aggregator, commit_replans_when_the_session_changed, .timeout = 30)
{
    env_start(&env);
    struct race race = {.session = true};
    commit_during(&env, &race);
    /* The page view joined the visit the other worker opened (a second
     * page: no longer a bounce, 10 s long) instead of opening its own. */
    cr_expect_eq(hget(&env, "totals", "visits"), 1);
    cr_expect_eq(hget(&env, "totals", "bounces"), 0);
    cr_expect_eq(hget(&env, "totals", "visit_duration_s"), 10);
    redisReply *spv = cmd(env.rc, "HGET veil:{0}:s:%s:%s pv", SITE, VA);
    cr_expect(spv->type == REDIS_REPLY_STRING && strcmp(spv->str, "2") == 0);
    freeReplyObject(spv);
    cr_expect_eq(row_count(&env, "page", "ev", "/"), 1);
}

Test(aggregator, commit_replans_when_a_row_was_added, .timeout = 30)
{
    env_start(&env);
    struct race race = {.row = true};
    commit_during(&env, &race);
    /* The cap of one row was taken meanwhile: "/" is "(other)". */
    cr_expect_eq(row_count(&env, "page", "ev", "/pricing"), 1);
    cr_expect_eq(row_count(&env, "page", "ev", "/"), 0);
    cr_expect_eq(row_count(&env, "page", "ev", ROLLUP_OTHER), 1);
    cr_expect_eq(row_count(&env, "entry_page", "vis", ROLLUP_OTHER), 0,
                 "entry pages have their own rows");
    cr_expect_eq(hget(&env, "totals", "visits"), 1);
}

/* ---- 4. Redis goes away and comes back empty ---- */

Test(aggregator, reconnects_after_redis_restart, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    struct harness_proc *agg = agg_spawn(e, NULL);
    struct event_record ev;
    event_base(&ev, e, "pageview", "/", VA, e->now);
    xadd(e->rc, &ev);
    wait_drained(e, 15000);
    cr_assert_eq(hget(e, "totals", "pageviews"), 1);

    redisFree(e->rc);
    harness_redis_stop(&e->redis);
    sleep_ms(300);
    cr_assert_eq(harness_redis_start(&e->redis, e->dir, false), 0);
    e->rc = connect_unix(e->redis.socket);
    /* A fresh server: no group, no script. The entry must still be counted. */
    xadd(e->rc, &ev);
    wait_drained(e, 20000);
    cr_expect_eq(hget(e, "totals", "pageviews"), 1);
    agg_stop_ok(agg);
}

/* ---- 4b. the stats API thread runs beside the roll-up, and both stop ---- */

Test(aggregator, runs_stats_api_beside_rollup_and_stops_on_sigterm, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    int port = harness_free_port();
    char listen[64];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    char *extra[] = {listen, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "stats API did not answer");
    struct event_record ev;
    event_base(&ev, e, "pageview", "/", VA, e->now);
    xadd(e->rc, &ev);
    wait_drained(e, 15000);
    cr_expect_eq(hget(e, "totals", "pageviews"), 1);
    agg_stop_ok(agg);
    cr_expect_neq(harness_wait_http(port, "/healthz", 200), 0, "the API stopped with it");
}

/* ---- 6. configuration ---- */

static char *run_capture(struct env *e, char *const argv[], int *status)
{
    char log[400];
    static int runs;
    str_format(log, sizeof log, "%s/run-%d.out", e->dir, runs++);
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    waitpid(p.pid, status, 0);
    size_t len;
    return harness_read_file(log, &len);
}

Test(aggregator, sample_config_lists_every_directive_and_is_current, .timeout = 30)
{
    env_start(&env);
    struct env *e = &env;
    int status;
    char *argv[] = {"veil-aggregator", "--sample-config", NULL};
    char *sample = run_capture(e, argv, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const char *names[] = {"redis",         "consumer",         "batch_size",
                           "block_ms",      "claim_idle_ms",    "retention_days",
                           "breakdown_cap", "session_timeout_s", "api_listen",
                           "api_token",     "api_tokens",       "k_anonymity",
                           "dp_epsilon",    "dashboard_dir",    "log_level"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char line[64];
        str_format(line, sizeof line, "\n%s ", names[i]);
        cr_expect(strstr(sample, line), "directive %s missing from the sample", names[i]);
    }
    char path[400];
    size_t len;
    char *shipped = harness_read_file(harness_root_path("deploy/veil-aggregator.conf", path,
                                                        sizeof path), &len);
    cr_assert_not_null(shipped, "deploy/veil-aggregator.conf is missing");
    cr_expect_str_eq(shipped, sample, "deploy/veil-aggregator.conf is stale: make sample-config");
    free(shipped);
    free(sample);

    char *bad[] = {"veil-aggregator", "--batch_size=0", NULL};
    char *out = run_capture(e, bad, &status);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    cr_expect(strstr(out, "batch_size"), "the error names the directive");
    free(out);
    char *bad_redis[] = {"veil-aggregator", "--redis=nowhere", NULL};
    out = run_capture(e, bad_redis, &status);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    free(out);
}

/* ---- 7. throughput (a measurement, not an assertion on time) ---- */

#define BENCH_EVENTS 100000

Test(aggregator, throughput_measurement, .timeout = 240)
{
    env_start(&env);
    struct env *e = &env;
    struct event_record ev;
    const char *pages[] = {"/", "/pricing", "/docs", "/blog/a", "/blog/b", "/about"};
    const char *countries[] = {"DE", "FR", "US", "NL", "GB"};
    for (int i = 0; i < BENCH_EVENTS; i++) {
        char vh[17];
        str_format(vh, sizeof vh, "%016x", 0x200000u + (unsigned)(i % 20000));
        event_base(&ev, e, i % 10 ? "pageview" : "signup", pages[i % 6], vh,
                   e->now - 600 + i % 500);
        SET(ev.country, countries[i % 5]);
        SET(ev.browser, i % 2 ? "Firefox" : "Chrome");
        SET(ev.browser_major, "126");
        SET(ev.os, "Linux");
        ev.device = DEVICE_DESKTOP;
        SET(ev.screen, "laptop");
        if (i % 3 == 0)
            SET(ev.referrer, "news.example");
        xadd_append(e->rc, &ev);
        if (i % 1000 == 999)
            for (int k = 0; k < 1000; k++)
                xadd_reply(e->rc);
    }
    uint64_t start = clock_ms();
    struct harness_proc *agg = agg_spawn(e, NULL);
    wait_drained(e, 200000);
    uint64_t ms = clock_ms() - start;
    agg_stop_ok(agg);
    fprintf(stderr, "aggregator throughput: %d events in %llu ms = %.0f events/s\n",
            BENCH_EVENTS, (unsigned long long)ms, BENCH_EVENTS * 1000.0 / (double)(ms ? ms : 1));
    cr_expect_eq(hget(e, "totals", "pageviews"), BENCH_EVENTS / 10 * 9);
    cr_expect_eq(hget(e, "totals", "events"), BENCH_EVENTS);
}
