/* shard_meta.c - the start-up check of veil:meta:shards (see
 * shard_meta.h). One short blocking connection before the workers start;
 * never changes a stored count. */
#include "shard_meta.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "util.h"

int shard_meta_check(const char *redis, unsigned shards, int timeout_ms, char *err,
                     size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *rc = NULL;
    if (strncmp(redis, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(redis + 5, tv);
    } else {
        char host[300];
        int port;
        if (hostport_split(redis, host, sizeof host, &port))
            rc = redisConnectWithTimeout(host, port, tv);
    }
    if (!rc || rc->err) {
        if (rc)
            redisFree(rc);
        return 1;
    }
    redisSetTimeout(rc, tv);
    redisReply *set = redisCommand(rc, "SET " SHARD_META_KEY " %u NX", shards);
    freeReplyObject(set); /* OOM or READONLY: compare with what is there, if anything */
    redisReply *get = redisCommand(rc, "GET " SHARD_META_KEY);
    int rc_out = 1;
    if (get && get->type == REDIS_REPLY_STRING) {
        char *end;
        unsigned long stored = strtoul(get->str, &end, 10);
        if (*end == '\0' && end != get->str && stored == shards) {
            rc_out = 0;
        } else {
            str_format(err, errlen,
                       "shards: this Redis was set up with %.20s shards (" SHARD_META_KEY
                       ") but shards is %u here; use the same value everywhere (changing it "
                       "is a procedure: docs/DELIVERY.md \"Changing the shard count\")",
                       get->str, shards);
            rc_out = -1;
        }
    }
    freeReplyObject(get);
    redisFree(rc);
    return rc_out;
}
