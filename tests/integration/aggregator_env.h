/* aggregator_env.h - what the veil-aggregator integration suites share:
 * a real redis-server in a fresh temp dir, the real binary, and small
 * Redis helpers. Included by test_it_aggregator*.c only; every function
 * is static (each suite has its own copy) and marked unused so a suite
 * need not use them all. Teardown (run by criterion even after a failed
 * assertion) kills every spawned process and removes the dir. */
#ifndef VEIL_IT_AGGREGATOR_ENV_H
#define VEIL_IT_AGGREGATOR_ENV_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "harness.h"
#include "shard.h"
#include "util.h"

#define IT_UNUSED __attribute__((unused))

#define SITE "example.com"
#define SHARDS 16
/* SITE's shard: its key prefix and stream (set by env_start) */
#define KP env.prefix
#define STREAM env.stream
#define SET(dst, text) cr_assert(str_copy((dst), sizeof(dst), (text), strlen(text)))

#define VA "00000000000000a1"
#define VB "00000000000000b2"
#define VC "00000000000000c3"
#define VD "00000000000000d4"

struct env {
    char *dir;
    struct harness_redis redis;
    redisContext *rc;
    char day[11];
    int64_t now;
    char prefix[SHARD_PREFIX_MAX]; /* "veil:{<shard of SITE>}:" */
    char stream[48];
    int nagg; /* aggregator log files spawned so far */
    struct harness_proc procs[64]; /* every aggregator spawned, killed by teardown */
};

/* The test's environment: in a global so that teardown (run by criterion
 * even after a failed assertion) stops every process and removes the dir. */
static struct env env;

static IT_UNUSED void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static IT_UNUSED redisContext *connect_unix(const char *socket)
{
    redisContext *rc = redisConnectUnix(socket);
    cr_assert(rc && !rc->err, "cannot connect to redis");
    return rc;
}

static IT_UNUSED void env_start(struct env *e)
{
    memset(e, 0, sizeof *e);
    e->dir = harness_tmpdir();
    cr_assert_not_null(e->dir);
    cr_assert_eq(harness_redis_start(&e->redis, e->dir, false), 0, "redis-server did not start");
    e->rc = connect_unix(e->redis.socket);
    e->now = (int64_t)time(NULL);
    utc_day(e->now, e->day);
    shard_key_prefix(e->prefix, sizeof e->prefix, shard_of_site(SITE, strlen(SITE), SHARDS));
    str_format(e->stream, sizeof e->stream, "%sevents", e->prefix);
}

static IT_UNUSED void teardown(void)
{
    struct env *e = &env;
    for (int i = 0; i < e->nagg && i < (int)ARRAY_LEN(e->procs); i++) {
        if (e->procs[i].pid > 0) {
            kill(e->procs[i].pid, SIGCONT);
            harness_kill(&e->procs[i]);
        }
    }
    if (e->rc)
        redisFree(e->rc);
    e->rc = NULL;
    harness_redis_stop(&e->redis);
    if (e->dir) {
        harness_rmdir(e->dir);
        free(e->dir);
    }
    e->dir = NULL;
}


/* A command whose reply the caller frees; fails the test on a dead link. */
static IT_UNUSED redisReply *cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "redis: %s", rc->errstr);
    return r;
}

static IT_UNUSED long long cmd_int(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "redis: %s", rc->errstr);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "expected an integer reply (%s)",
                 r->type == REDIS_REPLY_ERROR ? r->str : "other type");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* HGET as a number; 0 when the field or key is missing. */
static IT_UNUSED long long hget(struct env *e, const char *suffix, const char *field)
{
    redisReply *r = cmd(e->rc, "HGET %sd:%s:%s:%s %s", KP, SITE, e->day, suffix, field);
    long long v = 0;
    if (r->type == REDIS_REPLY_STRING)
        cr_assert(safe_strtoll(r->str, -(1LL << 62), 1LL << 62, &v));
    else
        cr_assert_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

/* Field `value` of b:<dim>:<metric> of today; 0 when missing. */
static IT_UNUSED long long row_count(struct env *e, const char *dim, const char *metric,
                                     const char *value)
{
    char suffix[128];
    str_format(suffix, sizeof suffix, "b:%s:%s", dim, metric);
    return hget(e, suffix, value);
}

static IT_UNUSED long long breakdown_rows(struct env *e, const char *dim, const char *metric)
{
    return cmd_int(e->rc, "HLEN %sd:%s:%s:b:%s:%s", KP, SITE, e->day, dim, metric);
}

static IT_UNUSED long long row_visitors(struct env *e, const char *dim, const char *value)
{
    return cmd_int(e->rc, "PFCOUNT %sd:%s:%s:u:%s:%s", KP, SITE, e->day, dim, value);
}

/* ---- writing events ---- */

static IT_UNUSED void event_base(struct event_record *ev, const struct env *e,
                                 const char *name, const char *path, const char *visitor,
                                 int64_t ts)
{
    event_record_init(ev);
    SET(ev->site, SITE);
    SET(ev->day, e->day);
    SET(ev->name, name);
    if (path)
        SET(ev->path, path);
    if (visitor)
        SET(ev->visitor, visitor);
    ev->ts = ts;
}

/* Append (pipelined) one XADD of `ev`, packed into one field as the
 * collector writes it; read the reply with xadd_reply. */
static IT_UNUSED void xadd_append(redisContext *rc, const struct event_record *ev)
{
    static char packed[EVENT_PACKED_MAX];
    size_t len = event_pack(ev, packed, sizeof packed);
    cr_assert_gt(len, 0);
    const char *argv[] = {"XADD", STREAM, "*", EVENT_PACKED_FIELD, packed};
    size_t lens[] = {4, strlen(STREAM), 1, strlen(EVENT_PACKED_FIELD), len};
    cr_assert_eq(redisAppendCommandArgv(rc, 5, argv, lens), REDIS_OK);
}

/* The same with one stream field per event field (the layout of
 * collectors before the packed field, still read by the aggregator). */
static IT_UNUSED void xadd_append_fields(redisContext *rc, const struct event_record *ev)
{
    const char *argv[3 + EVENT_MAX_ARGS];
    size_t lens[3 + EVENT_MAX_ARGS];
    char scratch[EVENT_SCRATCH_BYTES];
    argv[0] = "XADD";
    argv[1] = STREAM;
    argv[2] = "*";
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    size_t n = event_encode(ev, argv + 3, lens + 3, scratch);
    cr_assert_eq(redisAppendCommandArgv(rc, (int)(3 + n), argv, lens), REDIS_OK);
}

static IT_UNUSED void xadd_reply(redisContext *rc)
{
    void *reply = NULL;
    cr_assert_eq(redisGetReply(rc, &reply), REDIS_OK, "XADD: %s", rc->errstr);
    redisReply *r = reply;
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "XADD failed: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
}

static IT_UNUSED void xadd(redisContext *rc, const struct event_record *ev)
{
    xadd_append(rc, ev);
    xadd_reply(rc);
}

static IT_UNUSED void xadd_fields(redisContext *rc, const struct event_record *ev)
{
    xadd_append_fields(rc, ev);
    xadd_reply(rc);
}

/* ---- the aggregator process ---- */

static IT_UNUSED struct harness_proc *agg_spawn(struct env *e, char *const *extra)
{
    cr_assert(e->nagg < (int)ARRAY_LEN(e->procs), "too many aggregators");
    struct harness_proc *p = &e->procs[e->nagg];
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/agg-%d.log", e->dir, e->nagg++);
    char *argv[24] = {"veil-aggregator", redis, "--api_listen=", "--block_ms=20",
                      "--lease_ms=1500"};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    cr_assert_eq(harness_spawn(p, argv, log), 0);
    return p;
}

/* SIGTERM once the process is up (a signal before main() blocks it would
 * kill any program), and expect exit status 0. */
static IT_UNUSED void agg_stop_ok(struct harness_proc *p)
{
    bool up = false;
    for (int waited = 0; !up && waited < 10000; waited += 20) {
        size_t len;
        char *log = harness_read_file(p->log_path, &len);
        up = log && strstr(log, "connected to redis");
        free(log);
        if (!up)
            sleep_ms(20);
    }
    cr_assert(up, "aggregator never connected");
    int status = harness_stop(p);
    cr_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "aggregator did not exit 0 on SIGTERM (status %d)", status);
}

/* Entries in every shard's stream (a commit trims what it counted). */
static IT_UNUSED long long stream_entries(redisContext *rc)
{
    long long n = 0;
    for (unsigned s = 0; s < SHARDS; s++)
        n += cmd_int(rc, "XLEN veil:{%u}:events", s);
    return n;
}

/* Wait until every entry of every shard is committed: the streams are empty. */
static IT_UNUSED void wait_drained(struct env *e, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (stream_entries(e->rc) == 0)
            return;
        sleep_ms(20);
    }
    cr_assert_fail("streams not drained in %d ms: %lld entries left", timeout_ms,
                   stream_entries(e->rc));
}

/* All aggregator logs of this env concatenated. */
static IT_UNUSED char *agg_logs(struct env *e, size_t *len)
{
    size_t total = 0;
    char *all = strdup("");
    for (int i = 0; i < e->nagg; i++) {
        char path[400];
        size_t n;
        str_format(path, sizeof path, "%s/agg-%d.log", e->dir, i);
        char *text = harness_read_file(path, &n);
        if (!text)
            continue;
        all = realloc(all, total + n + 1);
        memcpy(all + total, text, n + 1);
        total += n;
        free(text);
    }
    *len = total;
    return all;
}

/* Run veil-admin with words (NULL-terminated, at most 13) on e's Redis;
 * asserts it exits 0. */
static IT_UNUSED void env_admin(struct env *e, char **words)
{
    char redis[400], log[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    str_format(log, sizeof log, "%s/admin.out", e->dir);
    char *argv[16] = {"veil-admin", redis};
    int n = 2;
    for (; words[n - 2] && n < 15; n++)
        argv[n] = words[n - 2];
    argv[n] = NULL;
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    waitpid(p.pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "veil-admin failed");
}

#endif
