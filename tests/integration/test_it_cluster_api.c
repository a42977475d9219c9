/* test_it_cluster_api.c - the stats API of the real veil-aggregator on a
 * real 3-master Redis Cluster (tests/harness/harness_cluster.h): counts of
 * 12 sites written in the docs/KEYS.md schema into their shards, spread
 * over every node; each site answered exactly from its shard's node; the
 * site list (an all-sites token) gathered from every node; a slot moved
 * to another master and the site still answered exactly. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_cluster.h"
#include "rcluster.h"
#include "shard.h"

#define SECRET "s3cr3t-veil-token"
#define DAY "2026-12-01"
#define NSITES 12

static void rc_ok(struct rcluster *rc, const char *key, const char *fmt, const char *a)
{
    redisReply *r = rcluster_commandf(rc, key, fmt, key, a);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", key, r ? r->str : rcluster_errstr(rc));
    freeReplyObject(r);
}

static long long aggregate(int port, const char *site, const char *metric)
{
    char path[300], h[200], *body = NULL;
    snprintf(path, sizeof path,
             "/api/v1/stats/aggregate?site_id=%s&period=day&date=" DAY "&metrics=%s", site, metric);
    snprintf(h, sizeof h, "Authorization: Bearer " SECRET "\r\n");
    int status = harness_http(port, "GET", path, h, NULL, 0, &body, NULL);
    cr_assert_eq(status, 200, "%s: %d %s", path, status, body);
    cJSON *doc = cJSON_Parse(body);
    cr_assert(doc, "%s", body);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "results"),
                                                             metric), "value");
    cr_assert(cJSON_IsNumber(v), "%s", body);
    long long n = (long long)v->valuedouble;
    cJSON_Delete(doc);
    free(body);
    return n;
}

Test(cluster_api, every_site_from_its_node_and_the_list_from_all, .timeout = 180)
{
    struct harness_cluster c;
    char *dir = harness_tmpdir();
    cr_assert_eq(harness_cluster_start(&c, dir, 3, 0, 1000), 0, "cluster (%s/create.log)", dir);
    char spec[200], err[256];
    harness_cluster_spec(&c, 0, spec, sizeof spec);
    struct rcluster *rc = rcluster_connect(spec, 2000, err, sizeof err);
    cr_assert(rc, "%s", err);
    char site[NSITES][32];
    int per_node[3] = {0};
    for (int i = 0; i < NSITES; i++) {
        snprintf(site[i], sizeof site[i], "site%d.example", i);
        char prefix[SHARD_PREFIX_MAX], key[160];
        shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[i], strlen(site[i]), 16));
        snprintf(key, sizeof key, "%ssites", prefix);
        rc_ok(rc, key, "SADD %s %s", site[i]);
        snprintf(key, sizeof key, "%sd:%s:" DAY ":totals", prefix, site[i]);
        redisReply *r = rcluster_commandf(rc, key, "HSET %s pageviews %d visits %d", key,
                                          100 + i, 10 + i);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        per_node[harness_cluster_slot_owner(&c, 0, rc_keyslot(key, strlen(key)))]++;
    }
    cr_assert(per_node[0] && per_node[1] && per_node[2], "sites on every node: %d %d %d",
              per_node[0], per_node[1], per_node[2]);

    struct harness_proc agg;
    int port = harness_free_port();
    char listen[64], redis[300], log[400], dash[400];
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    /* one seed: the daemons' redis directive takes one host:port until their
     * roll-up runs on a cluster (docs/CLUSTER.md "Status"); the API finds
     * the other nodes from it */
    char seed[64];
    snprintf(redis, sizeof redis, "--redis=%s", harness_cluster_spec(&c, 1, seed, sizeof seed));
    snprintf(log, sizeof log, "%s/aggregator.log", dir);
    snprintf(dash, sizeof dash, "--dashboard_dir=%s", dir);
    char *argv[] = {"veil-aggregator", listen, redis, dash, "--api_token=" SECRET,
                    "--k_anonymity=1", "--retention_days=3650", "--log_level=warn",
                    "--shards=16", NULL};
    cr_assert_eq(harness_spawn(&agg, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "aggregator did not start");
    for (int i = 0; i < NSITES; i++) {
        cr_expect_eq(aggregate(port, site[i], "pageviews"), 100 + i, "%s", site[i]);
        cr_expect_eq(aggregate(port, site[i], "visits"), 10 + i, "%s", site[i]);
    }
    char h[200], *body = NULL;
    snprintf(h, sizeof h, "Authorization: Bearer " SECRET "\r\n");
    cr_assert_eq(harness_http(port, "GET", "/api/v1/sites", h, NULL, 0, &body, NULL), 200);
    for (int i = 0; i < NSITES; i++)
        cr_expect(strstr(body, site[i]), "the site list misses %s: %s", site[i], body);
    free(body);

    /* move site 0's slot to another master: the API follows */
    char prefix[SHARD_PREFIX_MAX];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[0], strlen(site[0]), 16));
    unsigned slot = rc_keyslot(prefix, strlen(prefix));
    int src = harness_cluster_slot_owner(&c, 0, slot), dst = (src + 1) % 3;
    char dst_port[16];
    snprintf(dst_port, sizeof dst_port, "%d", c.port[dst]);
    const char *const myid[] = {"CLUSTER", "MYID", NULL};
    char *src_id = harness_cluster_cli(&c, src, myid), *dst_id = harness_cluster_cli(&c, dst, myid);
    src_id[strcspn(src_id, "\r\n")] = dst_id[strcspn(dst_id, "\r\n")] = '\0';
    char slot_s[16];
    snprintf(slot_s, sizeof slot_s, "%u", slot);
    const char *const imp[] = {"CLUSTER", "SETSLOT", slot_s, "IMPORTING", src_id, NULL};
    const char *const mig[] = {"CLUSTER", "SETSLOT", slot_s, "MIGRATING", dst_id, NULL};
    free(harness_cluster_cli(&c, dst, imp));
    free(harness_cluster_cli(&c, src, mig));
    const char *const keys[] = {"CLUSTER", "GETKEYSINSLOT", slot_s, "100", NULL};
    char *list = harness_cluster_cli(&c, src, keys);
    for (char *k = strtok(list, "\n"); k; k = strtok(NULL, "\n")) {
        const char *const m[] = {"MIGRATE", "127.0.0.1", dst_port, k, "0", "5000", NULL};
        free(harness_cluster_cli(&c, src, m));
    }
    free(list);
    for (int i = 0; i < 3; i++) {
        const char *const node[] = {"CLUSTER", "SETSLOT", slot_s, "NODE", dst_id, NULL};
        free(harness_cluster_cli(&c, i == 0 ? dst : i == 1 ? src : 3 - src - dst, node));
    }
    free(src_id);
    free(dst_id);
    cr_assert_eq(harness_cluster_slot_owner(&c, 0, slot), dst);
    /* the first request after the move may be told 503 (MOVED), then exact */
    long long pv = -1;
    for (int t = 0; t < 50 && pv < 0; t++) {
        char path[300];
        snprintf(path, sizeof path,
                 "/api/v1/stats/aggregate?site_id=%s&period=day&date=" DAY "&metrics=pageviews",
                 site[0]);
        char *b = NULL;
        if (harness_http(port, "GET", path, h, NULL, 0, &b, NULL) == 200)
            pv = aggregate(port, site[0], "pageviews");
        free(b);
    }
    cr_expect_eq(pv, 100, "site 0 after its slot moved");
    harness_stop(&agg);
    rcluster_free(rc);
    harness_cluster_stop(&c);
    harness_rmdir(dir);
    free(dir);
}
