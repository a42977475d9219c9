/* test_it_cluster_agg.c - two real veil-aggregator processes rolling up on
 * a real 3-master Redis Cluster: packed events of 12 sites (every node owns
 * some) XADDed into their shard streams through the routing module, the
 * shards shared by lease, one shard's slot migrated by hand while events
 * flow; every event counted exactly once, and the stats API of one of
 * them answers each site exactly. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "harness.h"
#include "harness_cluster.h"
#include "rcluster.h"
#include "shard.h"
#include "util.h"

#define SECRET "s3cr3t-veil-token"
#define NSITES 12

static char day[11];

static void add_events(struct rcluster *rc, const char *site, int n, int salt)
{
    char prefix[SHARD_PREFIX_MAX], stream[64];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site, strlen(site), 16));
    snprintf(stream, sizeof stream, "%sevents", prefix);
    for (int k = 0; k < n; k++) {
        struct event_record ev;
        event_record_init(&ev);
        str_copy(ev.site, sizeof ev.site, site, strlen(site));
        str_copy(ev.day, sizeof ev.day, day, 10);
        str_copy(ev.name, sizeof ev.name, "pageview", 8);
        str_copy(ev.path, sizeof ev.path, "/", 1);
        char visitor[17];
        snprintf(visitor, sizeof visitor, "%016x", (unsigned)(salt * 1000 + k));
        str_copy(ev.visitor, sizeof ev.visitor, visitor, 16);
        ev.ts = (int64_t)time(NULL);
        static char packed[EVENT_PACKED_MAX];
        size_t len = event_pack(&ev, packed, sizeof packed);
        cr_assert_gt(len, 0);
        const char *argv[] = {"XADD", stream, "*", EVENT_PACKED_FIELD, packed};
        size_t lens[] = {4, strlen(stream), 1, strlen(EVENT_PACKED_FIELD), len};
        redisReply *r = rcluster_command(rc, stream, strlen(stream), 5, argv, lens);
        /* only after a kill, written while the map still named the dead
         * master: nothing reached Redis, the handle has reloaded the map */
        for (int again = 0; !r && again < 3; again++)
            r = rcluster_command(rc, stream, strlen(stream), 5, argv, lens);
        cr_assert(r && r->type == REDIS_REPLY_STRING, "XADD: %s",
                  r ? r->str : rcluster_errstr(rc));
        freeReplyObject(r);
    }
}

static long long pageviews(struct rcluster *rc, const char *site)
{
    char prefix[SHARD_PREFIX_MAX], key[160];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site, strlen(site), 16));
    snprintf(key, sizeof key, "%sd:%s:%s:totals", prefix, site, day);
    redisReply *r = rcluster_commandf(rc, key, "HGET %s pageviews", key);
    long long n = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (r)
        freeReplyObject(r);
    return n;
}

static struct rcluster *writer;
static char site[NSITES][32];
static int want[NSITES];

static void write_round(int per_site, int salt)
{
    for (int i = 0; i < NSITES; i++) {
        add_events(writer, site[i], per_site + (i % 3), salt);
        want[i] += per_site + (i % 3);
    }
}

static void during(void *arg)
{
    (void)arg;
    write_round(3, 3); /* while half of a shard's keys sit on each side */
}

/* Move `slot` from src to dst by hand; `between` runs after half the keys. */
static void migrate(struct harness_cluster *c, unsigned slot, int src, int dst,
                    void (*between)(void *))
{
    const char *const myid[] = {"CLUSTER", "MYID", NULL};
    char *src_id = harness_cluster_cli(c, src, myid), *dst_id = harness_cluster_cli(c, dst, myid);
    src_id[strcspn(src_id, "\r\n")] = '\0';
    dst_id[strcspn(dst_id, "\r\n")] = '\0';
    char slot_s[16], dst_port[16];
    snprintf(slot_s, sizeof slot_s, "%u", slot);
    snprintf(dst_port, sizeof dst_port, "%d", c->port[dst]);
    const char *const imp[] = {"CLUSTER", "SETSLOT", slot_s, "IMPORTING", src_id, NULL};
    const char *const mig[] = {"CLUSTER", "SETSLOT", slot_s, "MIGRATING", dst_id, NULL};
    free(harness_cluster_cli(c, dst, imp));
    free(harness_cluster_cli(c, src, mig));
    const char *const keys[] = {"CLUSTER", "GETKEYSINSLOT", slot_s, "1000", NULL};
    char *list = harness_cluster_cli(c, src, keys);
    int nkeys = 0;
    for (char *p = list; *p; p++)
        nkeys += *p == '\n';
    int moved = 0;
    for (char *k = strtok(list, "\n"); k; k = strtok(NULL, "\n")) {
        if (moved++ == nkeys / 2 && between)
            between(NULL);
        const char *const m[] = {"MIGRATE", "127.0.0.1", dst_port, "", "0", "5000", "KEYS", k,
                                 NULL};
        free(harness_cluster_cli(c, src, m));
    }
    free(list);
    for (int i = 0; i < 3; i++) {
        const char *const node[] = {"CLUSTER", "SETSLOT", slot_s, "NODE", dst_id, NULL};
        free(harness_cluster_cli(c, i == 0 ? dst : i == 1 ? src : 3 - src - dst, node));
    }
    free(src_id);
    free(dst_id);
}

Test(cluster_agg, two_aggregators_count_every_event_once_across_a_slot_move, .timeout = 240)
{
    utc_day((int64_t)time(NULL), day);
    struct harness_cluster c;
    char *dir = harness_tmpdir();
    cr_assert_eq(harness_cluster_start(&c, dir, 3, 0, 1000), 0, "cluster (%s/create.log)", dir);
    char spec[200], err[256];
    harness_cluster_spec(&c, 0, spec, sizeof spec);
    writer = rcluster_connect(spec, 2000, err, sizeof err);
    cr_assert(writer, "%s", err);
    int per_node[3] = {0};
    for (int i = 0; i < NSITES; i++) {
        snprintf(site[i], sizeof site[i], "site%d.example", i);
        char prefix[SHARD_PREFIX_MAX];
        shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[i], strlen(site[i]), 16));
        per_node[harness_cluster_slot_owner(&c, 0, rc_keyslot(prefix, strlen(prefix)))]++;
    }
    cr_assert(per_node[0] && per_node[1] && per_node[2]);
    write_round(5, 1);

    struct harness_proc agg[2];
    int port = harness_free_port();
    for (int a = 0; a < 2; a++) {
        char listen[64], redis[300], log[400], consumer[64], dash[400];
        snprintf(listen, sizeof listen, "--api_listen=%s%d", a ? "" : "127.0.0.1:", a ? 0 : port);
        if (a)
            snprintf(listen, sizeof listen, "--api_listen=");
        snprintf(redis, sizeof redis, "--redis=%s", spec);
        snprintf(log, sizeof log, "%s/aggregator-%d.log", dir, a);
        snprintf(consumer, sizeof consumer, "--consumer=agg-%d", a);
        snprintf(dash, sizeof dash, "--dashboard_dir=%s", dir);
        char *argv[] = {"veil-aggregator", listen, redis, consumer, dash, "--api_token=" SECRET,
                        "--k_anonymity=1", "--log_level=info", "--shards=16", NULL};
        cr_assert_eq(harness_spawn(&agg[a], argv, log), 0);
    }
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "aggregator did not start");
    write_round(4, 2);

    char prefix[SHARD_PREFIX_MAX];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[0], strlen(site[0]), 16));
    unsigned slot = rc_keyslot(prefix, strlen(prefix));
    int src = harness_cluster_slot_owner(&c, 0, slot);
    migrate(&c, slot, src, (src + 1) % 3, during);
    cr_assert_eq(harness_cluster_slot_owner(&c, 0, slot), (src + 1) % 3);
    write_round(2, 4);

    /* wait until every site's pageviews reach what was written (60 s) */
    bool all = false;
    for (int t = 0; t < 600 && !all; t++) {
        all = true;
        for (int i = 0; i < NSITES && all; i++)
            all = pageviews(writer, site[i]) >= want[i];
        if (!all) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* and not more: a second look after the leases had time to move */
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    for (int i = 0; i < NSITES; i++)
        cr_expect_eq(pageviews(writer, site[i]), want[i], "%s: %lld counted, %d written",
                     site[i], pageviews(writer, site[i]), want[i]);
    /* the stats API of aggregator 0 answers each site exactly */
    for (int i = 0; i < NSITES; i++) {
        char path[512], h[200], *body = NULL;
        snprintf(path, sizeof path,
                 "/api/v1/stats/aggregate?site_id=%s&period=day&date=%s&metrics=pageviews",
                 site[i], day);
        snprintf(h, sizeof h, "Authorization: Bearer " SECRET "\r\n");
        int status = harness_http(port, "GET", path, h, NULL, 0, &body, NULL);
        if (status == 503) { /* a map reload after the move: once more */
            free(body);
            body = NULL;
            status = harness_http(port, "GET", path, h, NULL, 0, &body, NULL);
        }
        cr_assert_eq(status, 200, "%s: %s", path, body);
        char want_s[64];
        snprintf(want_s, sizeof want_s, "\"value\": %d", want[i]);
        cJSON *doc = cJSON_Parse(body);
        const cJSON *v = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "results"), "pageviews"), "value");
        cr_expect(cJSON_IsNumber(v) && (int)v->valuedouble == want[i], "%s: %s", site[i], body);
        cJSON_Delete(doc);
        free(body);
    }
    for (int a = 0; a < 2; a++) {
        cr_expect_eq(harness_stop(&agg[a]), 0, "aggregator %d did not exit 0", a);
        size_t len;
        char *log = harness_read_file(agg[a].log_path, &len);
        cr_expect(log && strstr(log, "acquired"), "aggregator %d owned no shard: %s", a, log);
        free(log);
    }
    rcluster_free(writer);
    harness_cluster_stop(&c);
    harness_rmdir(dir);
    free(dir);
}

/* Every event written and confirmed on a replica (WAIT 1, as the collector
 * does before it lets a batch go) is counted exactly once although the
 * master holding a shard is killed while the aggregators roll up: its
 * replica is promoted, the routing finds it, the owner reloads the shard's
 * checkpoint and replays what the lost commit did not acknowledge. */
static void wait_all(struct rcluster *rc)
{
    for (int m = 0; m < rcluster_masters(rc); m++) {
        const char *argv[] = {"WAIT", "1", "2000"};
        redisReply *r = rcluster_master_command(rc, m, 3, argv, NULL);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1,
                  "no replica of %s confirmed", rcluster_master_name(rc, m));
        freeReplyObject(r);
    }
}

Test(cluster_agg, a_master_killed_while_rolling_up_loses_nothing, .timeout = 240)
{
    utc_day((int64_t)time(NULL), day);
    memset(want, 0, sizeof want);
    struct harness_cluster c;
    char *dir = harness_tmpdir();
    cr_assert_eq(harness_cluster_start(&c, dir, 3, 1, 1000), 0, "cluster (%s/create.log)", dir);
    char spec[300], err[256];
    harness_cluster_spec(&c, 0, spec, sizeof spec);
    writer = rcluster_connect(spec, 1000, err, sizeof err);
    cr_assert(writer, "%s", err);
    for (int i = 0; i < NSITES; i++)
        snprintf(site[i], sizeof site[i], "site%d.example", i);
    for (int r = 0; r < 20; r++)
        write_round(20, 10 + r);
    wait_all(writer);

    struct harness_proc agg[2];
    for (int a = 0; a < 2; a++) {
        char redis[400], log[400], consumer[64];
        snprintf(redis, sizeof redis, "--redis=%s", spec);
        snprintf(log, sizeof log, "%s/aggregator-%d.log", dir, a);
        snprintf(consumer, sizeof consumer, "--consumer=agg-%d", a);
        char *argv[] = {"veil-aggregator", "--api_listen=", redis, consumer, "--log_level=info",
                        "--shards=16", "--batch_size=200", NULL};
        cr_assert_eq(harness_spawn(&agg[a], argv, log), 0);
    }
    /* as soon as something is counted, kill the master of site 0's shard */
    for (int t = 0; t < 200 && pageviews(writer, site[0]) == 0; t++) {
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    char prefix[SHARD_PREFIX_MAX];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[0], strlen(site[0]), 16));
    int victim = harness_cluster_slot_owner(&c, 0, rc_keyslot(prefix, strlen(prefix)));
    cr_assert_geq(victim, 0);
    harness_cluster_kill(&c, victim);
    int alive = victim == 0 ? 1 : 0, owner = victim;
    unsigned slot = rc_keyslot(prefix, strlen(prefix));
    for (int t = 0; t < 300 && (owner == victim || owner < 0); t++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        owner = harness_cluster_slot_owner(&c, alive, slot);
    }
    cr_assert(owner >= 0 && owner != victim, "no replica was promoted");
    cr_assert_eq(harness_cluster_wait_ok(&c, 30000), 0, "the cluster did not recover");
    for (int r = 0; r < 5; r++)
        write_round(20, 40 + r);

    bool all = false;
    for (int t = 0; t < 600 && !all; t++) {
        all = true;
        for (int i = 0; i < NSITES && all; i++)
            all = pageviews(writer, site[i]) >= want[i];
        if (!all) {
            struct timespec ts = {0, 100000000L};
            nanosleep(&ts, NULL);
        }
    }
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    for (int i = 0; i < NSITES; i++)
        cr_expect_eq(pageviews(writer, site[i]), want[i], "%s: %lld counted, %d written",
                     site[i], pageviews(writer, site[i]), want[i]);
    for (int a = 0; a < 2; a++)
        cr_expect_eq(harness_stop(&agg[a]), 0, "aggregator %d did not exit 0", a);
    rcluster_free(writer);
    harness_cluster_stop(&c);
    harness_rmdir(dir);
    free(dir);
}
