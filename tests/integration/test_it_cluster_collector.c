/* test_it_cluster_collector.c - the whole pipeline on a real Redis Cluster:
 * two veil-collector processes and two veil-aggregator processes on a
 * 3-master cluster (3 more replicas for the failover), events of 12 sites
 * (every master owns some) posted over HTTP from a thread while the test
 * moves a shard's slot to another master, or kills the master holding a
 * shard. Every 202 must be counted exactly once by the stats API (with
 * wait_replicas=1 across the failover, as docs/DELIVERY.md promises).
 * Bounded: at most POST_MAX requests per run, every wait has a deadline. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "harness_cluster.h"
#include "rcluster.h"
#include "shard.h"
#include "util.h"

#define SECRET "s3cr3t-veil-token"
#define NSITES 12
#define POST_MAX 6000
#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

struct pipeline {
    struct harness_cluster c;
    char *dir;
    char spec[400];
    struct harness_proc coll[2];
    int coll_port[2];
    struct harness_proc agg[2];
    int api_port;
    char first_day[11];
};

static char site[NSITES][32];

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static unsigned site_slot(int i)
{
    char prefix[SHARD_PREFIX_MAX];
    shard_key_prefix(prefix, sizeof prefix, shard_of_site(site[i], strlen(site[i]), 16));
    return rc_keyslot(prefix, strlen(prefix));
}

static void pipeline_start(struct pipeline *p, int replicas, int wait_replicas)
{
    memset(p, 0, sizeof *p);
    utc_day((int64_t)time(NULL), p->first_day);
    p->dir = harness_tmpdir();
    cr_assert_eq(harness_cluster_start(&p->c, p->dir, 3, replicas, 1000), 0,
                 "cluster (%s/create.log)", p->dir);
    harness_cluster_spec(&p->c, 0, p->spec, sizeof p->spec);
    int per_node[HARNESS_CLUSTER_NODES_MAX] = {0};
    for (int i = 0; i < NSITES; i++) {
        snprintf(site[i], sizeof site[i], "site%d.example", i);
        int owner = harness_cluster_slot_owner(&p->c, 0, site_slot(i));
        cr_assert_geq(owner, 0);
        per_node[owner]++;
    }
    cr_assert(per_node[0] && per_node[1] && per_node[2], "a master owns no site");
    for (int k = 0; k < 2; k++) {
        char listen[64], redis[420], log[400], spool[400], wait[40];
        snprintf(wait, sizeof wait, "--wait_replicas=%d", wait_replicas);
        p->coll_port[k] = harness_free_port();
        snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", p->coll_port[k]);
        snprintf(redis, sizeof redis, "--redis=%s", p->spec);
        snprintf(spool, sizeof spool, "--spool_dir=%s/spool-%d", p->dir, k);
        snprintf(log, sizeof log, "%s/collector-%d.log", p->dir, k);
        char *argv[] = {"veil-collector", listen, redis, spool, "--threads=2",
                        "--trusted_proxies=127.0.0.1", "--rate_limit=0", "--log_level=info",
                        wait, NULL};
        cr_assert_eq(harness_spawn(&p->coll[k], argv, log), 0);
    }
    p->api_port = harness_free_port();
    for (int a = 0; a < 2; a++) {
        char listen[64], redis[420], log[400], consumer[64], dash[400];
        if (a == 0)
            snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", p->api_port);
        else
            snprintf(listen, sizeof listen, "--api_listen=");
        snprintf(redis, sizeof redis, "--redis=%s", p->spec);
        snprintf(log, sizeof log, "%s/aggregator-%d.log", p->dir, a);
        snprintf(consumer, sizeof consumer, "--consumer=agg-%d", a);
        snprintf(dash, sizeof dash, "--dashboard_dir=%s", p->dir);
        char *argv[] = {"veil-aggregator", listen, redis, consumer, dash, "--api_token=" SECRET,
                        "--k_anonymity=1", "--log_level=info", "--shards=16", NULL};
        cr_assert_eq(harness_spawn(&p->agg[a], argv, log), 0);
    }
    for (int k = 0; k < 2; k++)
        cr_assert_eq(harness_wait_http(p->coll_port[k], "/healthz", 15000), 0,
                     "collector %d did not start (%s)", k, p->dir);
    cr_assert_eq(harness_wait_http(p->api_port, "/healthz", 15000), 0, "aggregator did not start");
}

static void pipeline_stop(struct pipeline *p)
{
    for (int k = 0; k < 2; k++)
        cr_expect_eq(harness_stop(&p->coll[k]), 0, "collector %d did not exit 0", k);
    for (int a = 0; a < 2; a++)
        cr_expect_eq(harness_stop(&p->agg[a]), 0, "aggregator %d did not exit 0", a);
    harness_cluster_stop(&p->c);
    if (!getenv("VEIL_KEEP_TMP")) /* set it to look at a failed run's logs */
        harness_rmdir(p->dir);
    free(p->dir);
}

/* ---- posting from a thread while the cluster changes ---- */

struct poster {
    int port[2];
    atomic_bool stop;
    atomic_int sent;
    atomic_int accepted[NSITES]; /* 202 */
    atomic_int refused;          /* anything else */
    pthread_t thread;
};

static int post(int port, const char *host, int n)
{
    char headers[512], body[256];
    snprintf(headers, sizeof headers,
             "Content-Type: text/plain\r\nX-Forwarded-For: 203.0.113.%d\r\nUser-Agent: %s\r\n",
             1 + n % 200, UA_FIREFOX);
    snprintf(body, sizeof body, "{\"n\":\"pageview\",\"u\":\"https://%s/p/%d\",\"d\":\"%s\"}",
             host, n % 7, host);
    return harness_http(port, "POST", "/api/event", headers, body, strlen(body), NULL, NULL);
}

static void *poster_main(void *arg)
{
    struct poster *ps = arg;
    for (int n = 0; n < POST_MAX && !atomic_load(&ps->stop); n++) {
        int i = n % NSITES;
        if (post(ps->port[n % 2], site[i], n) == 202)
            atomic_fetch_add(&ps->accepted[i], 1);
        else
            atomic_fetch_add(&ps->refused, 1);
        atomic_fetch_add(&ps->sent, 1);
    }
    return NULL;
}

static void poster_start(struct poster *ps, const struct pipeline *p)
{
    memset(ps, 0, sizeof *ps);
    ps->port[0] = p->coll_port[0];
    ps->port[1] = p->coll_port[1];
    cr_assert_eq(pthread_create(&ps->thread, NULL, poster_main, ps), 0);
}

/* Wait until `more` further requests were answered (at most 30 s). */
static void poster_wait(struct poster *ps, int more)
{
    int until = atomic_load(&ps->sent) + more;
    for (int t = 0; t < 3000 && atomic_load(&ps->sent) < until && atomic_load(&ps->sent) < POST_MAX;
         t++)
        nap_ms(10);
}

static void poster_stop(struct poster *ps)
{
    atomic_store(&ps->stop, true);
    pthread_join(ps->thread, NULL);
}

/* ---- counting ---- */

/* Pageviews of site i from the stats API of aggregator 0, over the days
 * the test ran (it may cross midnight); -1 when it does not answer. */
static long long api_pageviews(const struct pipeline *p, int i)
{
    char path[512], h[200], *body = NULL, today[11];
    utc_day((int64_t)time(NULL), today);
    snprintf(path, sizeof path,
             "/api/v1/stats/aggregate?site_id=%s&period=custom&date=%s,%s&metrics=pageviews",
             site[i], p->first_day, today);
    snprintf(h, sizeof h, "Authorization: Bearer " SECRET "\r\n");
    int status = harness_http(p->api_port, "GET", path, h, NULL, 0, &body, NULL);
    long long n = -1;
    cJSON *doc = status == 200 ? cJSON_Parse(body) : NULL;
    const cJSON *v = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "results"), "pageviews"), "value");
    if (cJSON_IsNumber(v))
        n = (long long)v->valuedouble;
    cJSON_Delete(doc);
    free(body);
    return n;
}

static long long metric(int admin_port, const char *name)
{
    char *body = NULL;
    if (harness_http(admin_port, "GET", "/metrics", NULL, NULL, 0, &body, NULL) != 200) {
        free(body);
        return -1;
    }
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(body, want);
    long long v = at ? strtoll(at + strlen(want), NULL, 10) : -1;
    free(body);
    return v;
}

/* Entries in every shard's stream: 0 once the aggregators have counted
 * everything (a commit trims what it counted); -1 when unreadable. */
static long long stream_backlog(const struct pipeline *p)
{
    char err[256];
    struct rcluster *rc = rcluster_connect(p->spec, 1000, err, sizeof err);
    if (!rc)
        return -1;
    long long n = 0;
    for (unsigned s = 0; s < 16 && n >= 0; s++) {
        char prefix[SHARD_PREFIX_MAX], key[64];
        shard_key_prefix(prefix, sizeof prefix, s);
        snprintf(key, sizeof key, "%sevents", prefix);
        redisReply *r = rcluster_commandf(rc, key, "XLEN %s", key);
        n = r && r->type == REDIS_REPLY_INTEGER ? n + r->integer : -1;
        if (r)
            freeReplyObject(r);
    }
    rcluster_free(rc);
    return n;
}

/* Wait (at most timeout_ms) until both collectors hold nothing and every
 * stream is rolled up. */
static bool wait_drained(const struct pipeline *p, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        if (metric(p->coll[0].admin_port, "veil_collector_buffered_events") == 0 &&
            metric(p->coll[1].admin_port, "veil_collector_buffered_events") == 0 &&
            stream_backlog(p) == 0)
            return true;
        nap_ms(200);
    }
    return false;
}

/* Wait (at most timeout_ms) until both collectors hold nothing and the
 * stats API counts at least what was accepted for every site; then expect
 * exactly that. */
static void expect_each_202_counted_once(const struct pipeline *p, const struct poster *ps,
                                         int timeout_ms)
{
    bool done = false;
    wait_drained(p, timeout_ms);
    for (int waited = 0; waited <= timeout_ms && !done; waited += 100) {
        done = metric(p->coll[0].admin_port, "veil_collector_buffered_events") == 0 &&
               metric(p->coll[1].admin_port, "veil_collector_buffered_events") == 0;
        for (int i = 0; i < NSITES && done; i++)
            done = api_pageviews(p, i) >= atomic_load(&ps->accepted[i]);
        if (!done)
            nap_ms(100);
    }
    long long total = 0;
    for (int i = 0; i < NSITES; i++) {
        long long counted = api_pageviews(p, i);
        cr_expect_eq(counted, atomic_load(&ps->accepted[i]), "%s: %lld counted, %d accepted (%s)",
                     site[i], counted, atomic_load(&ps->accepted[i]), p->dir);
        total += counted;
    }
    long long written = 0, dups = 0;
    for (int k = 0; k < 2; k++) {
        written += metric(p->coll[k].admin_port, "veil_collector_redis_written_total");
        dups += metric(p->coll[k].admin_port, "veil_collector_redis_duplicates_suppressed_total");
    }
    cr_log_info("%d requests, %lld events counted, %d not accepted; collectors: %lld written, "
                "%lld duplicates suppressed",
                atomic_load(&ps->sent), total, atomic_load(&ps->refused), written, dups);
}

/* ---- a slot moving ---- */

static char *node_id(struct harness_cluster *c, int i)
{
    const char *const myid[] = {"CLUSTER", "MYID", NULL};
    char *id = harness_cluster_cli(c, i, myid);
    cr_assert(id);
    id[strcspn(id, "\r\n")] = '\0';
    return id;
}

/* Move `slot` from src to dst by hand, one key per MIGRATE, as
 * redis-cli --cluster reshard does; events keep flowing meanwhile. */
static void migrate(struct harness_cluster *c, unsigned slot, int src, int dst,
                    struct poster *ps)
{
    char *src_id = node_id(c, src), *dst_id = node_id(c, dst);
    char slot_s[16], dst_port[16];
    snprintf(slot_s, sizeof slot_s, "%u", slot);
    snprintf(dst_port, sizeof dst_port, "%d", c->port[dst]);
    const char *const imp[] = {"CLUSTER", "SETSLOT", slot_s, "IMPORTING", src_id, NULL};
    const char *const mig[] = {"CLUSTER", "SETSLOT", slot_s, "MIGRATING", dst_id, NULL};
    free(harness_cluster_cli(c, dst, imp));
    free(harness_cluster_cli(c, src, mig));
    poster_wait(ps, 100); /* events for the slot while it is MIGRATING with every key home */
    const char *const keys[] = {"CLUSTER", "GETKEYSINSLOT", slot_s, "1000", NULL};
    char *list = harness_cluster_cli(c, src, keys);
    cr_assert(list);
    int moved = 0;
    for (char *k = strtok(list, "\n"); k; k = strtok(NULL, "\n")) {
        const char *const m[] = {"MIGRATE", "127.0.0.1", dst_port, "", "0", "5000", "KEYS", k,
                                 NULL};
        free(harness_cluster_cli(c, src, m));
        if (++moved == 2)
            poster_wait(ps, 100); /* and while its keys are split between two nodes */
    }
    free(list);
    cr_assert_geq(moved, 2, "the slot held too few keys to be split");
    for (int i = 0; i < 3; i++) {
        const char *const node[] = {"CLUSTER", "SETSLOT", slot_s, "NODE", dst_id, NULL};
        free(harness_cluster_cli(c, i == 0 ? dst : i == 1 ? src : 3 - src - dst, node));
    }
    free(src_id);
    free(dst_id);
}

Test(cluster_collector, every_202_counted_once_across_a_slot_move, .timeout = 180)
{
    struct pipeline p;
    pipeline_start(&p, 0, 0);
    struct poster ps;
    poster_start(&ps, &p);
    poster_wait(&ps, 300);
    /* the slot of site 0's shard, with its stream, lane marks, leases and
     * counts, moves to the next master while both collectors deliver */
    unsigned slot = site_slot(0);
    int src = harness_cluster_slot_owner(&p.c, 0, slot), dst = (src + 1) % 3;
    migrate(&p.c, slot, src, dst, &ps);
    cr_assert_eq(harness_cluster_slot_owner(&p.c, 0, slot), dst);
    poster_wait(&ps, 300);
    poster_stop(&ps);
    cr_expect_eq(atomic_load(&ps.refused), 0, "requests not answered 202");
    expect_each_202_counted_once(&p, &ps, 60000);
    /* both collectors delivered, on a cluster */
    long long written = 0;
    for (int k = 0; k < 2; k++) {
        size_t len;
        char *log = harness_read_file(p.coll[k].log_path, &len);
        cr_expect(log && strstr(log, "redis connected (a Redis Cluster)"), "%s", log);
        free(log);
        written += metric(p.coll[k].admin_port, "veil_collector_redis_written_total");
    }
    cr_expect_gt(written, 0);
    pipeline_stop(&p);
}

/* Kill the master of site 0's shard while events flow, its replica
 * replica lagging: the replica is stopped (SIGSTOP) and its link cut
 * (CLIENT KILL TYPE replica), so the writes of the last moments exist on
 * the master only, as when a master dies with writes in flight to its
 * replica; then the replica runs again. Waits until the
 * replica is promoted. Returns the killed node. */
static int kill_master_with_writes_unreplicated(struct pipeline *p, struct poster *ps)
{
    unsigned slot = site_slot(0);
    int victim = harness_cluster_slot_owner(&p->c, 0, slot);
    cr_assert_geq(victim, 0);
    /* its replica: stopped, so that it cannot resync before the kill */
    const char *const info[] = {"INFO", "replication", NULL};
    char *text = harness_cluster_cli(&p->c, victim, info);
    const char *at = text ? strstr(text, ",port=") : NULL;
    int replica = -1, rport = at ? atoi(at + 6) : 0;
    for (int i = 0; i < p->c.n; i++)
        if (p->c.port[i] == rport)
            replica = i;
    free(text);
    cr_assert_geq(replica, 0, "the master has no replica");
    kill(p->c.pid[replica], SIGSTOP);
    const char *const cut[] = {"CLIENT", "KILL", "TYPE", "replica", NULL};
    free(harness_cluster_cli(&p->c, victim, cut));
    poster_wait(ps, 60);
    harness_cluster_kill(&p->c, victim);
    kill(p->c.pid[replica], SIGCONT);
    int alive = victim == 0 ? 1 : 0, owner = victim;
    for (int t = 0; t < 300 && (owner == victim || owner < 0); t++) {
        nap_ms(100);
        owner = harness_cluster_slot_owner(&p->c, alive, slot);
    }
    cr_assert(owner >= 0 && owner != victim, "no replica was promoted");
    return victim;
}

/* docs/DELIVERY.md "Redis Cluster: failover", wait_replicas=1: every 202 is
 * counted once although the master died with writes its replica never got. */
Test(cluster_collector, with_wait_replicas_a_killed_master_loses_no_202, .timeout = 240)
{
    struct pipeline p;
    pipeline_start(&p, 1, 1);
    struct poster ps;
    poster_start(&ps, &p);
    poster_wait(&ps, 300);
    int victim = kill_master_with_writes_unreplicated(&p, &ps);
    poster_wait(&ps, 200);
    /* the promoted master has no replica: its events wait in the
     * collectors (wait_replicas=1) until the old master is back as one */
    cr_assert_eq(harness_cluster_restart(&p.c, victim), 0);
    cr_assert_eq(harness_cluster_wait_ok(&p.c, 30000), 0, "the cluster did not recover");
    poster_wait(&ps, 300);
    poster_stop(&ps);
    cr_expect_eq(atomic_load(&ps.refused), 0, "requests not answered 202");
    expect_each_202_counted_once(&p, &ps, 90000);
    long long unconfirmed = metric(p.coll[0].admin_port, "veil_collector_redis_unconfirmed_total") +
                            metric(p.coll[1].admin_port, "veil_collector_redis_unconfirmed_total");
    cr_expect_gt(unconfirmed, 0, "no WAIT went unconfirmed: the failover was not exercised");
    cr_log_info("delivery calls not confirmed by a replica (sent again): %lld", unconfirmed);
    pipeline_stop(&p);
}

/* wait_replicas=0 (the default): what the master took in its last moments
 * and had not replicated is lost; never counted twice. Measures the loss
 * (docs/DELIVERY.md quotes it). */
Test(cluster_collector, without_wait_replicas_a_killed_master_loses_its_last_writes_only,
     .timeout = 240)
{
    struct pipeline p;
    pipeline_start(&p, 1, 0);
    struct poster ps;
    poster_start(&ps, &p);
    poster_wait(&ps, 300);
    kill_master_with_writes_unreplicated(&p, &ps);
    cr_assert_eq(harness_cluster_wait_ok(&p.c, 30000), 0, "the cluster did not recover");
    poster_wait(&ps, 300);
    poster_stop(&ps);
    cr_expect_eq(atomic_load(&ps.refused), 0, "requests not answered 202");
    cr_expect(wait_drained(&p, 60000), "the collectors or the aggregators did not catch up");
    long long accepted = 0, lost = 0;
    for (int i = 0; i < NSITES; i++) {
        long long counted = api_pageviews(&p, i);
        cr_expect_leq(counted, atomic_load(&ps.accepted[i]), "%s: %lld counted, %d accepted",
                      site[i], counted, atomic_load(&ps.accepted[i]));
        accepted += atomic_load(&ps.accepted[i]);
        lost += atomic_load(&ps.accepted[i]) - counted;
    }
    cr_log_info("without WAIT: %lld of %lld accepted events lost with the master", lost, accepted);
    /* the scenario does open a window, or the wait_replicas test above
     * would prove nothing */
    cr_expect_gt(lost, 0, "nothing lost: the master's last writes reached the replica anyway");
    pipeline_stop(&p);
}
