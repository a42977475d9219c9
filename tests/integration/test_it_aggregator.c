/* test_it_aggregator.c - the real veil-aggregator against a real
 * redis-server (unix socket in a temp dir): counting.
 *
 * Known events are XADDed into their site's shard stream (packed, and in
 * the older per-field layout), the aggregator rolls them up, and every
 * count is checked exactly: totals, visits, bounces, durations, breakdown
 * rows with the cap and "(other)", row visitors, the scroll histogram,
 * expiries, the checkpoint, the realtime minutes and the trimmed stream.
 * Then: leases and the fencing epoch through commit.c directly (a stale
 * commit refused, a takeover continuing from the checkpoint); a wrong
 * shard count refused; reconnection after a Redis restart; the stats API
 * thread beside the roll-up with the roll-up metrics; the sample config;
 * and a throughput measurement (printed, not asserted). Crash safety and
 * the IP scan are in test_it_aggregator_safety.c, memory bounds, maxmemory
 * and AOF in test_it_aggregator_bounds.c. */
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
#include "lease.h"
#include "rollup.h"
#include "shard_state.h"
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
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %sd:%s:%s:visitors", KP, SITE, e->day), 4);
    /* scroll histogram */
    cr_expect_eq(hget(e, "scroll", "40"), 1);
    cr_expect_eq(hget(e, "scroll", "100"), 1);
    cr_expect_eq(cmd_int(e->rc, "HLEN %sd:%s:%s:scroll", KP, SITE, e->day), 2);

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
    long long ttl = cmd_int(e->rc, "TTL %sd:%s:%s:totals", KP, SITE, e->day);
    cr_expect(ttl > 30 * 86400 - 60 && ttl <= 31 * 86400, "totals TTL %lld", ttl);
    const char *suffixes[] = {"visitors", "scroll", "b:page:pv", "b:source:vis",
                              "u:page:/", "u:source:(other)", "b:prop:plan:ev"};
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        long long t = cmd_int(e->rc, "TTL %sd:%s:%s:%s", KP, SITE, e->day, suffixes[i]);
        cr_expect(t > 30 * 86400 - 60 && t <= 31 * 86400, "%s TTL %lld", suffixes[i], t);
    }
    /* the expired day and the rejected entries left nothing */
    cr_expect_eq(cmd_int(e->rc, "EXISTS %sd:%s:2000-01-01:totals", KP, SITE), 0);
    cr_expect_eq(cmd_int(e->rc, "SCARD %ssites", KP), 1);
    cr_expect_eq(cmd_int(e->rc, "SISMEMBER %ssites %s", KP, SITE), 1);
    /* open visits are checkpointed in the shard's sessions hash, which
     * expires a day after the last commit */
    long long st = cmd_int(e->rc, "TTL %ssessions", KP);
    cr_expect(st > 86400 && st <= 86400 + 1800, "checkpoint TTL %lld", st);
    redisReply *spv = cmd(e->rc, "HGET %ssessions %s:%s", KP, SITE, VD);
    cr_expect(spv->type == REDIS_REPLY_STRING && strncmp(spv->str, "3 ", 2) == 0,
              "D's open visit holds 3 pageviews");
    freeReplyObject(spv);
    /* realtime: only A was seen in the last 5 minutes, in the HyperLogLog
     * of its minute, which expires 7 minutes after that minute */
    long long minute = (e->now - 10) / 60;
    cr_expect_eq(cmd_int(e->rc, "PFCOUNT %srt:%s:%lld", KP, SITE, minute), 1);
    long long rt_ttl = cmd_int(e->rc, "TTL %srt:%s:%lld", KP, SITE, minute);
    cr_expect(rt_ttl > 300 && rt_ttl <= 480, "realtime TTL %lld", rt_ttl);
    redisReply *keys = cmd(e->rc, "KEYS %srt:*", KP);
    cr_expect_eq(keys->elements, 1, "no realtime key for events outside the window");
    freeReplyObject(keys);
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

    /* The functions are lost (as after a restart without persistence):
     * they must be loaded again. A's next pageview extends the open visit
     * by 5 s. */
    freeReplyObject(cmd(e->rc, "FUNCTION FLUSH"));
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

/* ---- 2. leases and the fencing epoch, directly ---- */

/* The trim bound just after stream entry `index` (0-based) of STREAM. */
static void trim_after(struct env *e, size_t index, char *out, size_t outlen)
{
    redisReply *r = cmd(e->rc, "XRANGE %s - +", STREAM);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements > index);
    unsigned long long ms, seq;
    cr_assert_eq(sscanf(r->element[index]->element[0]->str, "%llu-%llu", &ms, &seq), 2);
    str_format(out, outlen, "%llu-%llu", ms, seq + 1);
    freeReplyObject(r);
}

/* A batch of one page view of `visitor` at ts. */
static void one_pageview(struct env *e, struct rollup *r, const char *visitor, int64_t ts)
{
    struct event_record ev;
    char err[128];
    event_base(&ev, e, "pageview", "/", visitor, ts);
    xadd(e->rc, &ev);
    rollup_reset(r);
    rollup_set_prefix(r, KP);
    cr_assert_eq(rollup_add(r, &ev, e->now, err, sizeof err), ROLLUP_ADDED);
    rollup_finish(r);
}

Test(aggregator, stale_epoch_is_refused_and_takeover_reloads_the_checkpoint, .timeout = 30)
{
    env_start(&env);
    struct env *e = &env;
    char err[256], trim[64];
    cr_assert_eq(lease_load_functions(e->rc, err, sizeof err), 0, "%s", err);
    unsigned shard = shard_of_site(SITE, strlen(SITE), SHARDS);
    struct shard_state x, y;
    shard_state_init(&x, shard);
    shard_state_init(&y, shard);
    cr_assert_eq(lease_acquire(e->rc, &x, "x", 60000, err, sizeof err), 1, "%s", err);
    cr_assert_eq(x.epoch, 1);
    cr_assert_eq(lease_acquire(e->rc, &y, "y", 60000, err, sizeof err), 0, "the lease is held");

    struct rollup *r = rollup_new(KP, 30);
    struct commit *c = commit_new();
    struct commit_params px = {.owner = "x", .lease_ms = 60000, .breakdown_cap = 1000,
                               .property_budget = 10000, .session_timeout_s = 1800,
                               .future_skew_s = 300, .now = e->now};
    struct commit_params py = px;
    py.owner = "y";

    /* x counts A's first page view: committed, checkpointed, trimmed */
    one_pageview(e, r, VA, e->now - 100);
    trim_after(e, 0, trim, sizeof trim);
    cr_assert_eq(commit_batch(c, e->rc, &x, &px, r, trim, NULL, 0, false, err, sizeof err),
                 COMMIT_OK, "%s", err);
    cr_assert_eq(hget(e, "totals", "visits"), 1);
    cr_assert_eq(hget(e, "totals", "bounces"), 1);
    cr_assert_eq(cmd_int(e->rc, "XLEN %s", STREAM), 0);
    cr_assert_eq(x.nsessions, 1);

    /* x stalls; its lease runs out and y takes the shard (epoch 2) */
    freeReplyObject(cmd(e->rc, "DEL %slease", KP));
    cr_assert_eq(lease_acquire(e->rc, &y, "y", 60000, err, sizeof err), 1, "%s", err);
    cr_assert_eq(y.epoch, 2);
    cr_assert_eq(lease_load_checkpoint(e->rc, &y, err, sizeof err), 1, "%s", err);

    /* x wakes up and commits A's second page view: refused, nothing written */
    one_pageview(e, r, VA, e->now - 50);
    trim_after(e, 0, trim, sizeof trim);
    cr_assert_eq(commit_batch(c, e->rc, &x, &px, r, trim, NULL, 0, false, err, sizeof err),
                 COMMIT_STALE);
    cr_assert_eq(hget(e, "totals", "pageviews"), 1, "a stale commit writes nothing");
    cr_assert_eq(cmd_int(e->rc, "XLEN %s", STREAM), 1, "nor trims");
    int ok = 1;
    struct shard_state *xs = &x;
    cr_assert_eq(lease_renew(e->rc, &xs, 1, "x", 60000, &ok, err, sizeof err), 0);
    cr_assert_eq(ok, 0, "x learns it lost the shard");

    /* y counts it from the checkpoint x left: the visit goes on, no bounce */
    cr_assert_eq(commit_batch(c, e->rc, &y, &py, r, trim, NULL, 0, false, err, sizeof err),
                 COMMIT_OK, "%s", err);
    cr_expect_eq(hget(e, "totals", "pageviews"), 2);
    cr_expect_eq(hget(e, "totals", "visits"), 1);
    cr_expect_eq(hget(e, "totals", "bounces"), 0);
    cr_expect_eq(hget(e, "totals", "visit_duration_s"), 50);
    cr_expect_eq(cmd_int(e->rc, "XLEN %s", STREAM), 0);
    /* a release lets another take over at once; the epoch only grows */
    cr_assert_eq(lease_release(e->rc, &y, err, sizeof err), 0, "%s", err);
    cr_assert_eq(lease_acquire(e->rc, &x, "x", 60000, err, sizeof err), 1, "%s", err);
    cr_expect_eq(x.epoch, 3);

    commit_free(c);
    rollup_free(r);
    shard_state_free(&x);
    shard_state_free(&y);
}

Test(aggregator, refuses_to_start_with_another_shard_count, .timeout = 30)
{
    env_start(&env);
    struct env *e = &env;
    freeReplyObject(cmd(e->rc, "SET veil:meta:shards 8"));
    struct harness_proc *agg = agg_spawn(e, NULL);
    int status = -1;
    for (int waited = 0; waited < 10000; waited += 20) {
        if (waitpid(agg->pid, &status, WNOHANG) == agg->pid)
            break;
        sleep_ms(20);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "it must exit with an error");
    agg->pid = -1;
    size_t len;
    char *log = agg_logs(e, &len);
    cr_expect(strstr(log, "shards is 16") && strstr(log, "veil:meta:shards"), "%s", log);
    free(log);
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
    /* the roll-up's metrics, with HELP and TYPE lines */
    char *body = NULL;
    cr_assert_eq(harness_http(port, "GET", "/metrics", NULL, NULL, 0, &body, NULL), 200);
    const char *want[] = {"# TYPE veil_aggregator_batch_events histogram",
                          "# HELP veil_aggregator_stream_lag_seconds ",
                          "veil_aggregator_events_total 1\n",
                          "veil_aggregator_shards_owned 16\n",
                          "veil_aggregator_commits_total 1\n",
                          "veil_aggregator_events_rejected_total{reason=\"future\"} 0\n",
                          "veil_aggregator_commit_seconds_count 1\n"};
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        cr_expect(body && strstr(body, want[i]), "/metrics lacks %s:\n%s", want[i], body);
    free(body);
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
                           "block_ms",      "lease_ms",         "retention_days",
                           "shards",        "future_skew_s",
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
