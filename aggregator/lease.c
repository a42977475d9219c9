/* lease.c - shard ownership in Redis (see lease.h). The functions it calls
 * live in veil_functions.lua, compiled in as a string by the Makefile. It
 * never logs and never reads event content. */
#include "lease.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util.h"

static const char veil_functions[] =
#include "veil_functions.h"
    ;

#define CHECKPOINT_SCAN_COUNT "1000"

/* Wall-clock milliseconds: the members' deadlines are compared across
 * processes (and machines), so not the monotonic clock. */
static long long realtime_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void reply_error(const redisContext *rc, const redisReply *reply, const char *what,
                        char *err, size_t errlen)
{
    if (!reply)
        str_format(err, errlen, "%s: %s", what, rc->err ? rc->errstr : "no reply");
    else if (reply->type == REDIS_REPLY_ERROR)
        str_format(err, errlen, "%s: %.200s", what, reply->str);
    else
        str_format(err, errlen, "%s: unexpected reply type %d", what, reply->type);
}

static bool is_oom(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "OOM", 3) == 0;
}

int lease_load_functions(redisContext *rc, char *err, size_t errlen)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", veil_functions};
    size_t lens[] = {8, 4, 7, sizeof veil_functions - 1};
    redisReply *reply = redisCommandArgv(rc, 4, argv, lens);
    int rv = reply && reply->type == REDIS_REPLY_STRING ? 0 : -1;
    /* At maxmemory Redis refuses the load; the library loaded before is
     * still there (FUNCTION LOAD persists it), and a commit that finds it
     * missing fails and is retried. */
    if (rv && reply && is_oom(reply))
        rv = 0;
    if (rv)
        reply_error(rc, reply, "FUNCTION LOAD", err, errlen);
    if (reply)
        freeReplyObject(reply);
    return rv;
}

long long lease_heartbeat(redisContext *rc, const char *owner, long long lease_ms, char *err,
                          size_t errlen)
{
    long long now = realtime_ms();
    redisAppendCommand(rc, "ZADD %s %lld %s", LEASE_MEMBERS_KEY, now + lease_ms, owner);
    redisAppendCommand(rc, "ZREMRANGEBYSCORE %s -inf (%lld", LEASE_MEMBERS_KEY, now);
    redisAppendCommand(rc, "PEXPIRE %s %lld", LEASE_MEMBERS_KEY, 3 * lease_ms);
    redisAppendCommand(rc, "ZCARD %s", LEASE_MEMBERS_KEY);
    long long live = -1;
    for (int i = 0; i < 4; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(rc, (void **)&reply) != REDIS_OK) {
            str_format(err, errlen, "heartbeat: %s", rc->errstr);
            return -1;
        }
        /* at maxmemory the writes are refused (OOM): the count still stands */
        if (reply->type == REDIS_REPLY_ERROR && live != -2 && !is_oom(reply)) {
            reply_error(rc, reply, "heartbeat", err, errlen);
            live = -2;
        } else if (i == 3 && live != -2 && reply->type == REDIS_REPLY_INTEGER) {
            live = reply->integer;
        }
        freeReplyObject(reply);
    }
    if (live < 0)
        return -1;
    return live < 1 ? 1 : live;
}

void lease_leave(redisContext *rc, const char *owner)
{
    redisReply *reply = redisCommand(rc, "ZREM %s %s", LEASE_MEMBERS_KEY, owner);
    if (reply)
        freeReplyObject(reply);
}

int lease_acquire(redisContext *rc, struct shard_state *st, const char *owner, long long lease_ms,
                  char *err, size_t errlen)
{
    redisReply *reply = redisCommand(rc, "FCALL veil_acquire 2 %s %s %s %lld", st->epoch_key,
                                     st->lease_key, owner, lease_ms);
    int rv = -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        rv = reply->integer > 0;
        if (rv) {
            st->epoch = reply->integer;
            st->owned = true;
        }
    } else {
        reply_error(rc, reply, "acquire", err, errlen);
    }
    if (reply)
        freeReplyObject(reply);
    return rv;
}

int lease_renew(redisContext *rc, struct shard_state *const *sts, size_t n, const char *owner,
                long long lease_ms, int *ok, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        redisAppendCommand(rc, "FCALL veil_renew 2 %s %s %s %lld %lld", sts[i]->epoch_key,
                           sts[i]->lease_key, owner, sts[i]->epoch, lease_ms);
    int rv = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(rc, (void **)&reply) != REDIS_OK) {
            str_format(err, errlen, "renew: %s", rc->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_INTEGER) {
            ok[i] = reply->integer == 1;
        } else if (rv == 0) {
            reply_error(rc, reply, "renew", err, errlen);
            rv = -1;
        }
        freeReplyObject(reply);
    }
    return rv;
}

int lease_release(redisContext *rc, struct shard_state *st, char *err, size_t errlen)
{
    redisReply *reply = redisCommand(rc, "FCALL veil_release 2 %s %s %lld", st->epoch_key,
                                     st->lease_key, st->epoch);
    int rv = reply && reply->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rv)
        reply_error(rc, reply, "release", err, errlen);
    if (reply)
        freeReplyObject(reply);
    st->owned = false;
    return rv;
}

long long lease_load_checkpoint(redisContext *rc, struct shard_state *st, char *err,
                                size_t errlen)
{
    shard_state_clear(st);
    char cursor[32] = "0";
    long long loaded = 0;
    do {
        redisReply *reply = redisCommand(rc, "HSCAN %s %s COUNT " CHECKPOINT_SCAN_COUNT,
                                         st->sessions_key, cursor);
        if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            reply_error(rc, reply, "reading the checkpoint", err, errlen);
            if (reply)
                freeReplyObject(reply);
            shard_state_clear(st);
            return -1;
        }
        str_copy(cursor, sizeof cursor, reply->element[0]->str, reply->element[0]->len);
        const redisReply *items = reply->element[1];
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
            const redisReply *f = items->element[i], *v = items->element[i + 1];
            struct shard_session s;
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
                !shard_session_decode(v->str, v->len, &s))
                continue;
            s.field = f->str;
            shard_session_put(st, &s);
            if (s.last > st->watermark)
                st->watermark = s.last;
            loaded++;
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return loaded;
}
