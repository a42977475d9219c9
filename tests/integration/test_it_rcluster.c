/* test_it_rcluster.c - the routing module (include/rcluster.h) against a
 * real local Redis Cluster (tests/harness/harness_cluster.h) and a real
 * single Redis: the key slot against CLUSTER KEYSLOT, routing over every
 * master, MOVED and ASK while a slot migrates, a killed master and its
 * promoted replica, and a plain Redis through the same handle. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "harness_cluster.h"
#include "rcluster.h"
#include "shard.h"

static redisContext *direct(const struct harness_cluster *c, int i)
{
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", c->port[i], tv);
    cr_assert(rc && !rc->err, "connect to node %d", i);
    return rc;
}

static char *node_id(const struct harness_cluster *c, int i)
{
    redisContext *rc = direct(c, i);
    redisReply *r = redisCommand(rc, "CLUSTER MYID");
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    char *id = strdup(r->str);
    freeReplyObject(r);
    redisFree(rc);
    return id;
}

static void cmd_ok(redisContext *rc, const char *what, redisReply *r)
{
    cr_assert(r, "%s: %s", what, rc->errstr);
    cr_assert(r->type != REDIS_REPLY_ERROR, "%s: %s", what, r->str);
    freeReplyObject(r);
}

static char *start(struct harness_cluster *c, int masters, int replicas)
{
    char *dir = harness_tmpdir();
    cr_assert(dir);
    cr_assert_eq(harness_cluster_start(c, dir, masters, replicas, 1000), 0,
                 "cluster did not start (see %s/create.log)", dir);
    return dir;
}

static void finish(struct harness_cluster *c, char *dir)
{
    harness_cluster_stop(c);
    harness_rmdir(dir);
    free(dir);
}

Test(rcluster, keyslot_matches_cluster_keyslot, .timeout = 120)
{
    struct harness_cluster c;
    char *dir = start(&c, 1, 0);
    redisContext *rc = direct(&c, 0);
    static const char *fixed[] = {"", "a", "foo", "{}", "{}a", "a{}", "{a}", "{a}b", "x{a}y{b}",
                                  "{{a}}", "{a", "a}", "}{a}", "{}{a}", "veil:{0}:events",
                                  "veil:{reg}:sites", "veil:meta:shards", "123456789",
                                  "\xff\x00\x01{\x80}"};
    char keys[2400][48];
    size_t lens[2400];
    int n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        lens[n] = i == sizeof fixed / sizeof *fixed - 1 ? 6 : strlen(fixed[i]);
        memcpy(keys[n], fixed[i], lens[n]);
        n++;
    }
    for (unsigned s = 0; s < SHARDS_MAX; s++) { /* every shard's prefix and a key of it */
        lens[n] = shard_key_prefix(keys[n], sizeof keys[n], s);
        n++;
    }
    srand(11);
    while (n < 2400) { /* random bytes, often with braces in them */
        size_t len = (size_t)(rand() % 40);
        for (size_t k = 0; k < len; k++) {
            int pick = rand() % 10;
            keys[n][k] = pick == 0 ? '{' : pick == 1 ? '}' : (char)(rand() % 256);
        }
        lens[n++] = len;
    }
    for (int i = 0; i < n; i++)
        redisAppendCommand(rc, "CLUSTER KEYSLOT %b", keys[i], lens[i]);
    for (int i = 0; i < n; i++) {
        redisReply *r;
        cr_assert_eq(redisGetReply(rc, (void **)&r), REDIS_OK);
        cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
        cr_assert_eq((unsigned)r->integer, rc_keyslot(keys[i], lens[i]), "key %d (len %zu)", i,
                     lens[i]);
        freeReplyObject(r);
    }
    redisFree(rc);
    finish(&c, dir);
}

Test(rcluster, spec_parsing)
{
    struct rc_addr a[RC_SEEDS_MAX];
    int n;
    char err[200];
    cr_assert(rc_parse_spec("unix:/tmp/r.sock", a, &n, err, sizeof err));
    cr_assert(n == 1 && a[0].is_unix && strcmp(a[0].host, "/tmp/r.sock") == 0);
    cr_assert(rc_parse_spec("127.0.0.1:6379", a, &n, err, sizeof err));
    cr_assert(n == 1 && !a[0].is_unix && a[0].port == 6379);
    cr_assert(rc_parse_spec("10.0.0.1:7000,redis-b:7001,[::1]:7002", a, &n, err, sizeof err));
    cr_assert(n == 3 && a[1].port == 7001 && strcmp(a[1].host, "redis-b") == 0 &&
              strcmp(a[2].host, "::1") == 0);
    static const char *bad[] = {"", "host", "host:", "host:0", "host:70000", "a:1,", ",a:1",
                                "a:1,,b:2", "unix:", "unix:/a,b:1", "a:1 ,b:2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        cr_assert(!rc_parse_spec(bad[i], a, &n, err, sizeof err), "'%s' accepted", bad[i]);
        cr_assert(strncmp(err, "redis:", 6) == 0, "'%s': %s", bad[i], err);
    }
    char many[400] = "";
    for (int i = 0; i <= RC_SEEDS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sh:%d", i ? "," : "", 7000 + i);
    cr_assert(!rc_parse_spec(many, a, &n, err, sizeof err));
}

/* Keys of every shard go to their slot's owner; every master holds some;
 * a pipeline within one slot gets every reply in order. */
Test(rcluster, routes_every_shard_to_its_owner, .timeout = 120)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 0);
    char spec[200], err[256];
    harness_cluster_spec(&c, 1, spec, sizeof spec); /* one seed is enough */
    struct rcluster *rc = rcluster_connect(spec, 2000, err, sizeof err);
    cr_assert(rc, "%s", err);
    cr_assert(rcluster_is_cluster(rc));
    cr_assert_eq(rcluster_masters(rc), 3);
    for (unsigned s = 0; s < 64; s++) {
        char key[64];
        size_t pl = shard_key_prefix(key, sizeof key, s);
        snprintf(key + pl, sizeof key - pl, "probe");
        redisReply *r = rcluster_commandf(rc, key, "SET %s %u", key, s);
        cr_assert(r && r->type == REDIS_REPLY_STATUS, "shard %u: %s", s,
                  r ? r->str : rcluster_errstr(rc));
        freeReplyObject(r);
        /* one pipeline of three commands, all in the shard's slot */
        char *cmds[3];
        size_t lens[3];
        const char *a0[] = {"INCRBY", key, "1000"};
        const char *a1[] = {"GET", key};
        char ekey[64];
        snprintf(ekey, sizeof ekey, "%.*sother", (int)pl, key);
        const char *a2[] = {"SET", ekey, "x"};
        lens[0] = (size_t)redisFormatCommandArgv(&cmds[0], 3, a0, NULL);
        lens[1] = (size_t)redisFormatCommandArgv(&cmds[1], 2, a1, NULL);
        lens[2] = (size_t)redisFormatCommandArgv(&cmds[2], 3, a2, NULL);
        redisReply *rep[3];
        cr_assert_eq(rcluster_pipeline(rc, key, pl, 3, cmds, lens, rep), 0);
        cr_assert_eq(rep[0]->integer, 1000 + s);
        cr_assert_str_eq(rep[1]->str, rep[0]->integer == 1000 + s ? rep[1]->str : "");
        cr_assert_eq(atoll(rep[1]->str), 1000 + s);
        cr_assert_eq(rep[2]->type, REDIS_REPLY_STATUS);
        for (int i = 0; i < 3; i++) {
            freeReplyObject(rep[i]);
            redisFreeCommand(cmds[i]);
        }
    }
    long long total = 0;
    for (int m = 0; m < rcluster_masters(rc); m++) {
        const char *argv[] = {"DBSIZE"};
        redisReply *r = rcluster_master_command(rc, m, 1, argv, NULL);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        cr_assert_gt(r->integer, 0, "master %s holds no shard", rcluster_master_name(rc, m));
        total += r->integer;
        freeReplyObject(r);
    }
    cr_assert_eq(total, 128);
    struct rcluster_stats st;
    rcluster_get_stats(rc, &st);
    cr_assert_eq(st.moved, 0, "the map was right from the start");
    rcluster_free(rc);
    finish(&c, dir);
}

/* Move the slot of shard `s` from its owner to another master by hand
 * (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), with `between`
 * called after half the keys moved (the ASK window). */
static void migrate_slot(struct harness_cluster *c, unsigned slot, int src, int dst,
                         void (*between)(void *), void *arg)
{
    char *src_id = node_id(c, src), *dst_id = node_id(c, dst);
    redisContext *s = direct(c, src), *d = direct(c, dst);
    cmd_ok(d, "importing", redisCommand(d, "CLUSTER SETSLOT %u IMPORTING %s", slot, src_id));
    cmd_ok(s, "migrating", redisCommand(s, "CLUSTER SETSLOT %u MIGRATING %s", slot, dst_id));
    redisReply *keys = redisCommand(s, "CLUSTER GETKEYSINSLOT %u 1000", slot);
    cr_assert(keys && keys->type == REDIS_REPLY_ARRAY);
    for (size_t k = 0; k < keys->elements; k++) {
        if (k == keys->elements / 2 && between)
            between(arg);
        cmd_ok(s, "migrate",
               redisCommand(s, "MIGRATE 127.0.0.1 %d %b 0 5000", c->port[dst],
                            keys->element[k]->str, keys->element[k]->len));
    }
    freeReplyObject(keys);
    cmd_ok(d, "node dst", redisCommand(d, "CLUSTER SETSLOT %u NODE %s", slot, dst_id));
    cmd_ok(s, "node src", redisCommand(s, "CLUSTER SETSLOT %u NODE %s", slot, dst_id));
    for (int i = 0; i < c->n; i++)
        if (i != src && i != dst) {
            redisContext *o = direct(c, i);
            cmd_ok(o, "node other", redisCommand(o, "CLUSTER SETSLOT %u NODE %s", slot, dst_id));
            redisFree(o);
        }
    redisFree(s);
    redisFree(d);
    free(src_id);
    free(dst_id);
}

struct mig {
    struct rcluster *rc;
    char prefix[SHARD_PREFIX_MAX];
    int incr_during;
};

static void incr_all(struct mig *m, int nkeys)
{
    for (int k = 0; k < nkeys; k++) {
        char key[64];
        snprintf(key, sizeof key, "%sk%d", m->prefix, k);
        redisReply *r = rcluster_commandf(m->rc, key, "INCR %s", key);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER, "INCR %s: %s", key,
                  r ? r->str : rcluster_errstr(m->rc));
        freeReplyObject(r);
    }
}

/* The same 20 INCRs as one pipeline in the slot: the commands on keys
 * already moved come back ASK and are sent again on their own. */
static void incr_all_pipelined(struct mig *m, int nkeys)
{
    char *cmds[20];
    size_t lens[20];
    redisReply *rep[20];
    for (int k = 0; k < nkeys; k++) {
        char key[64];
        snprintf(key, sizeof key, "%sk%d", m->prefix, k);
        lens[k] = (size_t)redisFormatCommand(&cmds[k], "INCR %s", key);
    }
    cr_assert_eq(rcluster_pipeline(m->rc, m->prefix, strlen(m->prefix), nkeys, cmds, lens, rep), 0,
                 "%s", rcluster_errstr(m->rc));
    for (int k = 0; k < nkeys; k++) {
        cr_assert_eq(rep[k]->type, REDIS_REPLY_INTEGER, "%s", rep[k]->str);
        freeReplyObject(rep[k]);
        redisFreeCommand(cmds[k]);
    }
}

static void during(void *arg)
{
    struct mig *m = arg;
    incr_all(m, 20); /* half the keys are on the target: ASK for those */
    struct rcluster_stats before, after;
    rcluster_get_stats(m->rc, &before);
    incr_all_pipelined(m, 20);
    rcluster_get_stats(m->rc, &after);
    cr_assert_gt(after.ask, before.ask, "the pipeline met no ASK");
    m->incr_during++;
}

Test(rcluster, follows_ask_and_moved_while_a_slot_migrates, .timeout = 120)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 0);
    char spec[200], err[256];
    struct rcluster *rc = rcluster_connect(harness_cluster_spec(&c, 0, spec, sizeof spec), 2000,
                                           err, sizeof err);
    cr_assert(rc, "%s", err);
    struct mig m = {.rc = rc};
    shard_key_prefix(m.prefix, sizeof m.prefix, 7);
    unsigned slot = rc_keyslot(m.prefix, strlen(m.prefix));
    incr_all(&m, 20);
    int src = harness_cluster_slot_owner(&c, 0, slot);
    cr_assert_geq(src, 0);
    int dst = (src + 1) % 3;
    migrate_slot(&c, slot, src, dst, during, &m);
    incr_all(&m, 20); /* the map still says src: MOVED */
    cr_assert_eq(harness_cluster_slot_owner(&c, 0, slot), dst);
    struct rcluster_stats st;
    rcluster_get_stats(rc, &st);
    cr_assert_gt(st.ask, 0, "no ASK was followed");
    cr_assert_gt(st.moved, 0, "no MOVED was followed");
    /* every INCR counted exactly once: before, during (one by one and
     * pipelined), after */
    for (int k = 0; k < 20; k++) {
        char key[64];
        snprintf(key, sizeof key, "%sk%d", m.prefix, k);
        redisReply *r = rcluster_commandf(rc, key, "GET %s", key);
        cr_assert(r && r->type == REDIS_REPLY_STRING);
        cr_assert_eq(atoi(r->str), 4, "%s = %s", key, r->str);
        freeReplyObject(r);
    }
    rcluster_free(rc);
    finish(&c, dir);
}

/* A master is killed; writes acknowledged after WAIT 1 survive on the
 * promoted replica, which the handle finds by itself. */
Test(rcluster, finds_the_promoted_replica_after_a_master_dies, .timeout = 180)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 1);
    char spec[200], err[256];
    struct rcluster *rc = rcluster_connect(harness_cluster_spec(&c, 0, spec, sizeof spec), 1000,
                                           err, sizeof err);
    cr_assert(rc, "%s", err);
    char prefix[SHARD_PREFIX_MAX], key[64];
    shard_key_prefix(prefix, sizeof prefix, 3);
    snprintf(key, sizeof key, "%scount", prefix);
    unsigned slot = rc_keyslot(key, strlen(key));
    int victim = harness_cluster_slot_owner(&c, 0, slot);
    cr_assert_geq(victim, 0);
    for (int i = 0; i < 50; i++) {
        redisReply *r = rcluster_commandf(rc, key, "INCR %s", key);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
    }
    redisReply *w = rcluster_commandf(rc, key, "WAIT 1 2000");
    cr_assert(w && w->type == REDIS_REPLY_INTEGER && w->integer == 1, "no replica acknowledged");
    freeReplyObject(w);
    harness_cluster_kill(&c, victim);
    /* keep asking, as a daemon would; failures are allowed until the
     * replica is promoted (node timeout 1 s), bounded at 20 s */
    long long got = -1;
    int failures = 0;
    for (int t = 0; t < 400 && got < 0; t++) {
        redisReply *r = rcluster_commandf(rc, key, "GET %s", key);
        if (r && r->type == REDIS_REPLY_STRING)
            got = atoll(r->str);
        else
            failures++;
        if (r)
            freeReplyObject(r);
        if (got < 0) {
            struct timespec ts = {0, 50000000L};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert_eq(got, 50, "the promoted replica has %lld", got);
    cr_assert_gt(failures, 0, "the master's death went unnoticed?");
    int owner = -1;
    for (int i = 0; i < c.n && owner < 0; i++)
        if (c.pid[i] > 0)
            owner = harness_cluster_slot_owner(&c, i, slot);
    cr_assert(owner >= 0 && owner != victim);
    struct rcluster_stats st;
    rcluster_get_stats(rc, &st);
    cr_assert_gt(st.refreshes, 0);
    rcluster_free(rc);
    finish(&c, dir);
}

Test(rcluster, a_single_redis_is_every_slot, .timeout = 60)
{
    char *dir = harness_tmpdir();
    struct harness_redis r;
    cr_assert_eq(harness_redis_start(&r, dir, false), 0);
    char spec[320], err[256];
    snprintf(spec, sizeof spec, "unix:%s", r.socket);
    struct rcluster *rc = rcluster_connect(spec, 1000, err, sizeof err);
    cr_assert(rc, "%s", err);
    cr_assert(!rcluster_is_cluster(rc));
    cr_assert_eq(rcluster_masters(rc), 1);
    redisReply *a = rcluster_commandf(rc, "veil:{1}:x", "SET veil:{1}:x 1");
    redisReply *b = rcluster_commandf(rc, "veil:{2}:x", "SET veil:{2}:x 2");
    cr_assert(a && b && a->type == REDIS_REPLY_STATUS && b->type == REDIS_REPLY_STATUS);
    freeReplyObject(a);
    freeReplyObject(b);
    const char *argv[] = {"DBSIZE"};
    redisReply *n = rcluster_master_command(rc, 0, 1, argv, NULL);
    cr_assert(n && n->integer == 2);
    freeReplyObject(n);
    rcluster_free(rc);
    harness_redis_stop(&r);
    harness_rmdir(dir);
    free(dir);
}

/* ---- the event-loop face ---- */

#include <event2/event.h>

struct async_run {
    struct event_base *base;
    struct rcluster_async *rca;
    char prefix[SHARD_PREFIX_MAX];
    int pending, ok, failed;
};

static void incr_reply(void *reply, void *privdata)
{
    struct async_run *ar = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_INTEGER)
        ar->ok++;
    else
        ar->failed++;
    if (--ar->pending == 0)
        event_base_loopbreak(ar->base);
}

/* INCR veil:{s}:k<k> for 20 keys of one shard and 16 other shards' keys,
 * through the event loop, until every reply came back. */
static void async_incr_all(struct async_run *ar)
{
    for (int k = 0; k < 36; k++) {
        char key[64], *cmd;
        if (k < 20)
            snprintf(key, sizeof key, "%sk%d", ar->prefix, k);
        else
            snprintf(key, sizeof key, "veil:{%d}:k", 100 + k);
        int len = redisFormatCommand(&cmd, "INCR %s", key);
        cr_assert_eq(rcluster_async_command(ar->rca, key, strlen(key), incr_reply, ar, cmd,
                                            (size_t)len),
                     0);
        redisFreeCommand(cmd);
        ar->pending++;
    }
    event_base_dispatch(ar->base);
    cr_assert_eq(ar->pending, 0);
}

static void async_during(void *arg)
{
    async_incr_all(arg);
}

Test(rcluster, async_routes_and_follows_a_migrating_slot, .timeout = 120)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 0);
    char spec[200], err[256];
    struct async_run ar = {.base = event_base_new()};
    ar.rca = rcluster_async_new(ar.base, harness_cluster_spec(&c, 1, spec, sizeof spec), 2000,
                                err, sizeof err);
    cr_assert(ar.rca, "%s", err);
    cr_assert(rcluster_async_is_cluster(ar.rca) && rcluster_async_ready(ar.rca));
    shard_key_prefix(ar.prefix, sizeof ar.prefix, 9);
    unsigned slot = rc_keyslot(ar.prefix, strlen(ar.prefix));
    async_incr_all(&ar);
    int src = harness_cluster_slot_owner(&c, 0, slot);
    migrate_slot(&c, slot, src, (src + 2) % 3, async_during, &ar);
    async_incr_all(&ar);
    cr_assert_eq(ar.failed, 0);
    cr_assert_eq(ar.ok, 3 * 36);
    struct rcluster_stats st;
    rcluster_async_get_stats(ar.rca, &st);
    cr_assert_gt(st.ask, 0);
    cr_assert_gt(st.moved, 0);
    /* exactly three per key, checked through the blocking face */
    struct rcluster *rc = rcluster_connect(spec, 2000, err, sizeof err);
    cr_assert(rc, "%s", err);
    for (int k = 0; k < 36; k++) {
        char key[64];
        if (k < 20)
            snprintf(key, sizeof key, "%sk%d", ar.prefix, k);
        else
            snprintf(key, sizeof key, "veil:{%d}:k", 100 + k);
        redisReply *r = rcluster_commandf(rc, key, "GET %s", key);
        cr_assert(r && r->type == REDIS_REPLY_STRING && atoi(r->str) == 3, "%s", key);
        freeReplyObject(r);
    }
    rcluster_free(rc);
    /* free with nothing pending, then a command whose connection is
     * closed by free: its callback runs once with NULL */
    char *cmd;
    int len = redisFormatCommand(&cmd, "INCR %s", "veil:{1}:late");
    ar.pending = 1;
    cr_assert_eq(rcluster_async_command(ar.rca, "veil:{1}:", 9, incr_reply, &ar, cmd, (size_t)len), 0);
    redisFreeCommand(cmd);
    int failed_before = ar.failed;
    rcluster_async_free(ar.rca);
    cr_assert_eq(ar.failed, failed_before + 1);
    event_base_free(ar.base);
    finish(&c, dir);
}

/* ---- veil-admin on a cluster ---- */

#include <stdarg.h>
#include <sys/wait.h>

static int run_admin(const char *dir, const char *spec, char **out, ...)
{
    char redis_arg[300];
    snprintf(redis_arg, sizeof redis_arg, "--redis=%s", spec);
    char *argv[32] = {"veil-admin", redis_arg};
    int n = 2;
    va_list ap;
    va_start(ap, out);
    for (char *w; (w = va_arg(ap, char *)) && n < 31;)
        argv[n++] = w;
    va_end(ap);
    argv[n] = NULL;
    static int runs;
    char log[400];
    snprintf(log, sizeof log, "%s/admin-%d.out", dir, ++runs);
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    cr_assert_eq(waitpid(p.pid, &status, 0), p.pid);
    size_t len;
    char *text = harness_read_file(log, &len);
    if (out)
        *out = text;
    else
        free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The registry lives in one slot ({reg}); a site's counts on its shard's
 * node; export reads them there, purge finds them with a SCAN of every
 * master, audit sees the keys of every node. */
Test(rcluster, veil_admin_on_a_cluster, .timeout = 120)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 0);
    char spec[200], err[256];
    harness_cluster_spec(&c, 1, spec, sizeof spec);
    struct rcluster *rc = rcluster_connect(spec, 2000, err, sizeof err);
    cr_assert(rc, "%s", err);
    char site[12][32];
    int nodes_seen[3] = {0};
    for (int i = 0; i < 12; i++) {
        snprintf(site[i], sizeof site[i], "site%d.example", i);
        cr_assert_eq(run_admin(dir, spec, NULL, "site", "add", site[i], NULL), 0, "%s", site[i]);
        char prefix[SHARD_PREFIX_MAX], key[128];
        shard_key_prefix(prefix, sizeof prefix,
                         shard_of_site(site[i], strlen(site[i]), SHARDS_DEFAULT));
        snprintf(key, sizeof key, "%sd:%s:2026-12-01:totals", prefix, site[i]);
        redisReply *r = rcluster_commandf(rc, key, "HSET %s pageviews %d visits 1", key, 10 + i);
        cr_assert(r && r->type == REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        int owner = harness_cluster_slot_owner(&c, 0, rc_keyslot(key, strlen(key)));
        cr_assert(owner >= 0 && owner < 3);
        nodes_seen[owner]++;
    }
    cr_assert(nodes_seen[0] && nodes_seen[1] && nodes_seen[2], "12 sites on every node: %d %d %d",
              nodes_seen[0], nodes_seen[1], nodes_seen[2]);
    char *out = NULL;
    cr_assert_eq(run_admin(dir, spec, &out, "site", "list", NULL), 0);
    for (int i = 0; i < 12; i++)
        cr_assert(strstr(out, site[i]), "site list misses %s: %s", site[i], out);
    free(out);
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(run_admin(dir, spec, &out, "export", site[i], "--from", "2026-12-01", "--to",
                               "2026-12-01", NULL),
                     0, "%s", out);
        char want[32];
        snprintf(want, sizeof want, ",%d,", 10 + i);
        cr_assert(strstr(out, want), "export of %s: %s", site[i], out);
        free(out);
    }
    cr_assert_eq(run_admin(dir, spec, &out, "purge", site[5], NULL), 0, "%s", out);
    cr_assert(strstr(out, "deleted 1 key"), "%s", out);
    free(out);
    long long keys = 0;
    for (int m = 0; m < rcluster_masters(rc); m++) {
        const char *argv[] = {"DBSIZE"};
        redisReply *r = rcluster_master_command(rc, m, 1, argv, NULL);
        keys += r->integer;
        freeReplyObject(r);
    }
    int st = run_admin(dir, spec, &out, "audit", NULL);
    cr_assert(st == 0 || st == 1, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "audit: %lld key", keys);
    cr_assert(strstr(out, want), "audit saw other than the %lld keys of all nodes: %s", keys, out);
    free(out);
    rcluster_free(rc);
    finish(&c, dir);
}

struct one_shot {
    struct event_base *base;
    long long value; /* -1: no integer reply */
    bool done;
};

static void one_reply(void *reply, void *privdata)
{
    struct one_shot *o = privdata;
    redisReply *r = reply;
    o->value = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    o->done = true;
    event_base_loopbreak(o->base);
}

/* Send one command through the event loop and wait for its callback. */
static long long async_once(struct rcluster_async *rca, struct event_base *base, const char *key,
                            const char *fmt)
{
    struct one_shot o = {.base = base, .value = -1};
    char *cmd;
    int len = redisFormatCommand(&cmd, fmt, key);
    int rv = rcluster_async_command(rca, key, strlen(key), one_reply, &o, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rv != 0)
        return -1;
    while (!o.done)
        event_base_dispatch(base);
    return o.value;
}

/* The event-loop face after a master dies: callbacks run once with NULL
 * while the master is gone, then the promoted replica is found and the
 * writes acknowledged after WAIT 1 are all there. */
Test(rcluster, async_finds_the_promoted_replica, .timeout = 180)
{
    struct harness_cluster c;
    char *dir = start(&c, 3, 1);
    char spec[200], err[256];
    struct event_base *base = event_base_new();
    struct rcluster_async *rca = rcluster_async_new(
        base, harness_cluster_spec(&c, 0, spec, sizeof spec), 1000, err, sizeof err);
    cr_assert(rca, "%s", err);
    const char *key = "veil:{5}:count";
    for (int i = 1; i <= 30; i++)
        cr_assert_eq(async_once(rca, base, key, "INCR %s"), i);
    cr_assert_eq(async_once(rca, base, key, "WAIT 1 2000"), 1, "no replica acknowledged");
    int victim = harness_cluster_slot_owner(&c, 0, rc_keyslot(key, strlen(key)));
    harness_cluster_kill(&c, victim);
    long long got = -1;
    int failures = 0;
    for (int t = 0; t < 400 && got < 0; t++) {
        got = async_once(rca, base, key, "INCR %s");
        if (got < 0) {
            failures++;
            struct timespec ts = {0, 50000000L};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert_eq(got, 31, "after the failover the count is %lld, not 30 + 1", got);
    cr_assert_gt(failures, 0);
    struct rcluster_stats st;
    rcluster_async_get_stats(rca, &st);
    cr_assert_gt(st.refreshes, 0, "the map was never reloaded");
    rcluster_async_free(rca);
    event_base_free(base);
    finish(&c, dir);
}
