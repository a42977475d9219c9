/* shard_meta.c - the check of veil:meta:shards (see shard_meta.h), shared
 * by the collector's start-up and the aggregator's connect; never changes
 * a stored count. */
#include "shard_meta.h"

#include "rcluster.h"

#include <string.h>

#include "util.h"

int shard_meta_agree(redisContext *rc, unsigned shards, char *err, size_t errlen)
{
    redisReply *set = redisCommand(rc, "SET " SHARD_META_KEY " %u NX", shards);
    if (!set) {
        str_format(err, errlen, "SET " SHARD_META_KEY ": %s", rc->errstr);
        return -2;
    }
    freeReplyObject(set); /* OOM or READONLY: compare with what is there, if anything */
    redisReply *get = redisCommand(rc, "GET " SHARD_META_KEY);
    if (!get) {
        str_format(err, errlen, "GET " SHARD_META_KEY ": %s", rc->errstr);
        return -2;
    }
    int rv = 1;
    if (get->type == REDIS_REPLY_STRING) {
        long long stored;
        if (safe_strtoll(get->str, 1, 1 << 30, &stored) && stored == (long long)shards) {
            rv = 0;
        } else {
            str_format(err, errlen,
                       "shards: this Redis was set up with %.20s shards (" SHARD_META_KEY
                       ") but shards is %u here; every collector and aggregator must use the "
                       "same count (changing it is a procedure: docs/AGGREGATOR.md \"Changing "
                       "the shard count\")",
                       get->str, shards);
            rv = -1;
        }
    }
    freeReplyObject(get);
    return rv;
}

int shard_meta_check(const char *redis, unsigned shards, int timeout_ms, char *err,
                     size_t errlen)
{
    char why[256];
    /* the key's node on a Redis Cluster, the server otherwise */
    redisContext *rc = rcluster_connect_slot(redis, SHARD_META_KEY, timeout_ms, why, sizeof why);
    if (!rc)
        return 1;
    int rv = shard_meta_agree(rc, shards, why, sizeof why);
    redisFree(rc);
    if (rv == -1) {
        str_format(err, errlen, "%s", why);
        return -1;
    }
    return rv == 0 ? 0 : 1;
}
