/* rcluster.c - Redis Cluster routing, the parts both faces share (address
 * list, key slot, slot map, redirect replies) and the blocking client
 * (rcluster.h). Never sends a command or a pipeline to more than one slot,
 * never follows more than RC_REDIRECTS_MAX redirections for one command,
 * never logs a key or a value. */
#include "rcluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* ---- address list ---- */

bool rc_parse_spec(const char *spec, struct rc_addr *seeds, int *n, char *err, size_t errlen)
{
    *n = 0;
    if (!spec || !*spec) {
        str_format(err, errlen, "redis: empty address");
        return false;
    }
    if (strncmp(spec, "unix:", 5) == 0) {
        if (!spec[5] || strchr(spec, ',') ||
            !str_copy(seeds[0].host, sizeof seeds[0].host, spec + 5, strlen(spec + 5))) {
            str_format(err, errlen, "redis: expected unix:/path (one socket, no list)");
            return false;
        }
        seeds[0].is_unix = true;
        seeds[0].port = 0;
        *n = 1;
        return true;
    }
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char one[RC_HOST_MAX + 8];
        if (*n == RC_SEEDS_MAX) {
            str_format(err, errlen, "redis: more than %d seed addresses", RC_SEEDS_MAX);
            return false;
        }
        if (len == 0 || !str_copy(one, sizeof one, p, len) ||
            !hostport_split(one, seeds[*n].host, sizeof seeds[*n].host, &seeds[*n].port)) {
            str_format(err, errlen,
                       "redis: expected host:port[,host:port...] or unix:/path (entry %d)",
                       *n + 1);
            return false;
        }
        seeds[*n].is_unix = false;
        (*n)++;
        if (!end)
            break;
        p = end + 1;
        if (!*p) {
            str_format(err, errlen, "redis: trailing ',' in the address list");
            return false;
        }
    }
    return true;
}

/* ---- key slot: CRC16/XMODEM (poly 0x1021), as Redis's crc16.c ---- */

static uint16_t crc16(const unsigned char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rc_keyslot(const void *key, size_t len)
{
    const unsigned char *k = key;
    const unsigned char *open = memchr(k, '{', len);
    if (open) {
        size_t from = (size_t)(open - k) + 1;
        const unsigned char *close = memchr(k + from, '}', len - from);
        if (close && close > k + from)
            return crc16(k + from, (size_t)(close - (k + from))) & (RC_SLOTS - 1);
    }
    return crc16(k, len) & (RC_SLOTS - 1);
}

/* ---- slot map ---- */

int rc_map_node(struct rc_map *map, const char *host, int port)
{
    for (int i = 0; i < map->nnodes; i++)
        if (map->nodes[i].port == port && strcmp(map->nodes[i].host, host) == 0)
            return i;
    if (map->nnodes == RC_NODES_MAX)
        return -1;
    struct rc_addr *a = &map->nodes[map->nnodes];
    a->is_unix = false;
    a->port = port;
    if (!str_copy(a->host, sizeof a->host, host, strlen(host)))
        return -1;
    return map->nnodes++;
}

int rc_map_load(struct rc_map *map, const redisReply *slots, const struct rc_addr *asked)
{
    if (!slots || slots->type != REDIS_REPLY_ARRAY)
        return -1;
    map->nnodes = 0;
    for (size_t s = 0; s < RC_SLOTS; s++)
        map->owner[s] = RC_NO_OWNER;
    int covered = 0;
    for (size_t i = 0; i < slots->elements; i++) {
        const redisReply *e = slots->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            return -1;
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        const redisReply *m = e->element[2];
        if (from < 0 || to >= RC_SLOTS || from > to || m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        const char *host = m->element[0]->len ? m->element[0]->str : asked->host;
        int node = rc_map_node(map, host, (int)m->element[1]->integer);
        if (node < 0)
            return -1;
        for (long long s = from; s <= to; s++) {
            covered += map->owner[s] == RC_NO_OWNER; /* overlapping ranges: the last wins */
            map->owner[s] = (uint16_t)node;
        }
    }
    return covered;
}

int rc_redirect_parse(const redisReply *r, unsigned *slot, char *host, size_t hostlen, int *port)
{
    if (!r || r->type != REDIS_REPLY_ERROR)
        return 0;
    int kind;
    const char *p;
    if (strncmp(r->str, "MOVED ", 6) == 0) {
        kind = 1;
        p = r->str + 6;
    } else if (strncmp(r->str, "ASK ", 4) == 0) {
        kind = 2;
        p = r->str + 4;
    } else {
        return 0;
    }
    const char *sp = strchr(p, ' ');
    long long s;
    if (!sp || !safe_strtoll_n(p, (size_t)(sp - p), 0, RC_SLOTS - 1, &s) ||
        !hostport_split(sp + 1, host, hostlen, port))
        return 0;
    *slot = (unsigned)s;
    return kind;
}

bool rc_reply_is_transient(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/* ---- blocking client ---- */

struct rcluster {
    struct rc_addr seeds[RC_SEEDS_MAX];
    int nseeds;
    struct timeval timeout;
    int timeout_ms;
    bool cluster;
    struct rc_map map;             /* plain Redis: one node owning every slot */
    redisContext *conn[RC_NODES_MAX]; /* by map node index; NULL: not connected */
    bool stale;                    /* reload the map before the next command */
    char errstr[256];
    struct rcluster_stats stats;
};

static redisContext *addr_connect(const struct rc_addr *a, struct timeval tv)
{
    redisContext *c = a->is_unix ? redisConnectUnixWithTimeout(a->host, tv)
                                 : redisConnectWithTimeout(a->host, a->port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

static void drop_all(struct rcluster *rc)
{
    for (int i = 0; i < RC_NODES_MAX; i++)
        if (rc->conn[i]) {
            redisFree(rc->conn[i]);
            rc->conn[i] = NULL;
        }
}

/* Load the map through an open connection to `asked`. Keeps `c` as the
 * connection of its node when it is a master in the new map, frees it
 * otherwise (and on failure). */
static int load_map(struct rcluster *rc, redisContext *c, const struct rc_addr *asked)
{
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    struct rc_map *fresh = xmalloc(sizeof *fresh);
    int covered = r ? rc_map_load(fresh, r, asked) : -1;
    if (r)
        freeReplyObject(r);
    if (covered <= 0) {
        str_format(rc->errstr, sizeof rc->errstr, "CLUSTER SLOTS from %s:%d gave no slot map",
                   asked->host, asked->port);
        free(fresh);
        redisFree(c);
        return -1;
    }
    drop_all(rc);
    rc->map = *fresh;
    free(fresh);
    int self = -1;
    for (int i = 0; i < rc->map.nnodes; i++)
        if (rc->map.nodes[i].port == asked->port && strcmp(rc->map.nodes[i].host, asked->host) == 0)
            self = i;
    if (self >= 0)
        rc->conn[self] = c;
    else
        redisFree(c);
    rc->stale = false;
    rc->stats.refreshes++;
    return 0;
}

/* Connect to `a` and learn what it is: a plain Redis (the map is that one
 * node) or a cluster node (the map is loaded from it). */
static int discover(struct rcluster *rc, const struct rc_addr *a)
{
    redisContext *c = addr_connect(a, rc->timeout);
    if (!c) {
        str_format(rc->errstr, sizeof rc->errstr, "cannot connect to redis at %s%s%.0d",
                   a->is_unix ? "unix:" : "", a->host, a->port);
        return -1;
    }
    redisReply *r = redisCommand(c, "INFO cluster");
    if (!r || r->type != REDIS_REPLY_STRING) {
        str_format(rc->errstr, sizeof rc->errstr, "INFO cluster failed at %s: %s", a->host,
                   r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return -1;
    }
    rc->cluster = strstr(r->str, "cluster_enabled:1") != NULL;
    freeReplyObject(r);
    if (rc->cluster)
        return load_map(rc, c, a);
    drop_all(rc);
    rc->map.nnodes = 1;
    rc->map.nodes[0] = *a;
    memset(rc->map.owner, 0, sizeof rc->map.owner);
    rc->conn[0] = c;
    rc->stale = false;
    return 0;
}

/* Reload the map from any node we know (masters of the old map first,
 * then the seeds). */
int rcluster_refresh(struct rcluster *rc)
{
    for (int i = 0; i < rc->map.nnodes && rc->cluster; i++) {
        struct rc_addr a = rc->map.nodes[i];
        redisContext *c = rc->conn[i];
        rc->conn[i] = NULL;
        if (!c)
            c = addr_connect(&a, rc->timeout);
        if (c && load_map(rc, c, &a) == 0)
            return 0;
    }
    for (int i = 0; i < rc->nseeds; i++)
        if (discover(rc, &rc->seeds[i]) == 0)
            return 0;
    rc->stale = true;
    return -1;
}

struct rcluster *rcluster_connect(const char *spec, int timeout_ms, char *err, size_t errlen)
{
    struct rcluster *rc = xcalloc(1, sizeof *rc);
    if (!rc_parse_spec(spec, rc->seeds, &rc->nseeds, err, errlen)) {
        free(rc);
        return NULL;
    }
    rc->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    rc->timeout.tv_sec = rc->timeout_ms / 1000;
    rc->timeout.tv_usec = (rc->timeout_ms % 1000) * 1000;
    for (int i = 0; i < rc->nseeds; i++)
        if (discover(rc, &rc->seeds[i]) == 0) {
            rc->stats.refreshes = 0;
            return rc;
        }
    str_format(err, errlen, "%s", rc->errstr);
    free(rc);
    return NULL;
}

void rcluster_free(struct rcluster *rc)
{
    if (!rc)
        return;
    drop_all(rc);
    free(rc);
}

bool rcluster_is_cluster(const struct rcluster *rc)
{
    return rc->cluster;
}

const char *rcluster_errstr(const struct rcluster *rc)
{
    return rc->errstr;
}

const struct rc_map *rcluster_map(const struct rcluster *rc)
{
    return &rc->map;
}

void rcluster_get_stats(const struct rcluster *rc, struct rcluster_stats *out)
{
    *out = rc->stats;
}

/* The connection to node i, connecting when needed. */
static redisContext *node_conn(struct rcluster *rc, int i)
{
    if (i < 0 || i >= rc->map.nnodes)
        return NULL;
    if (!rc->conn[i]) {
        rc->conn[i] = addr_connect(&rc->map.nodes[i], rc->timeout);
        if (!rc->conn[i])
            str_format(rc->errstr, sizeof rc->errstr, "cannot connect to redis at %s:%d",
                       rc->map.nodes[i].host, rc->map.nodes[i].port);
        else
            rc->stats.reconnects++;
    }
    return rc->conn[i];
}

static void node_drop(struct rcluster *rc, int i)
{
    if (rc->conn[i] && rc->conn[i]->err)
        str_format(rc->errstr, sizeof rc->errstr, "redis %s:%d: %s", rc->map.nodes[i].host,
                   rc->map.nodes[i].port, rc->conn[i]->errstr);
    if (rc->conn[i])
        redisFree(rc->conn[i]);
    rc->conn[i] = NULL;
    if (rc->cluster)
        rc->stale = true; /* a failover looks like this: find the new master */
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Send formatted commands to node `node` (preceded by ASKING when `asking`)
 * and read their replies. Returns 0 or -1 (I/O error; node dropped). */
static int node_roundtrip(struct rcluster *rc, int node, bool asking, int n, char *const *cmds,
                          const size_t *lens, redisReply **replies)
{
    redisContext *c = node_conn(rc, node);
    if (!c) {
        if (rc->cluster)
            rc->stale = true;
        return -1;
    }
    if (asking)
        redisAppendCommand(c, "ASKING");
    for (int i = 0; i < n; i++)
        redisAppendFormattedCommand(c, cmds[i], lens[i]);
    if (asking) {
        redisReply *ok = NULL;
        if (redisGetReply(c, (void **)&ok) != REDIS_OK) {
            node_drop(rc, node);
            return -1;
        }
        freeReplyObject(ok);
    }
    for (int i = 0; i < n; i++) {
        if (redisGetReply(c, (void **)&replies[i]) != REDIS_OK) {
            for (int j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            replies[i] = NULL;
            node_drop(rc, node);
            return -1;
        }
    }
    return 0;
}

/* One formatted command to the owner of `slot`, following redirections. */
static redisReply *route_one(struct rcluster *rc, unsigned slot, char *cmd, size_t len)
{
    int node = -1;
    bool asking = false;
    uint64_t deadline = clock_ms() + (uint64_t)rc->timeout_ms;
    bool follow = false; /* going to a MOVED target the map could not confirm */
    for (int hop = 0; hop <= RC_REDIRECTS_MAX;) {
        if (rc->stale && !follow && rcluster_refresh(rc) != 0)
            return NULL;
        follow = false;
        if (node < 0) {
            node = rc->map.owner[slot];
            if (node == RC_NO_OWNER) {
                str_format(rc->errstr, sizeof rc->errstr, "no node serves slot %u", slot);
                rc->stale = true;
                if (clock_ms() > deadline)
                    return NULL;
                sleep_ms(50);
                node = -1;
                continue;
            }
        }
        redisReply *r = NULL;
        if (node_roundtrip(rc, node, asking, 1, &cmd, &len, &r) != 0)
            return NULL;
        char host[RC_HOST_MAX];
        int port;
        unsigned rslot;
        int kind = rc_redirect_parse(r, &rslot, host, sizeof host, &port);
        if (kind == 0 && !rc_reply_is_transient(r))
            return r;
        if (kind == 0) { /* TRYAGAIN / CLUSTERDOWN: wait, bounded */
            rc->stats.tryagain++;
            if (clock_ms() > deadline)
                return r;
            freeReplyObject(r);
            sleep_ms(20);
            if (rc->cluster)
                rc->stale = true;
            node = -1;
            asking = false;
            continue;
        }
        freeReplyObject(r);
        hop++;
        if (kind == 1) {
            rc->stats.moved++;
            int to = rc_map_node(&rc->map, host, port);
            if (to >= 0)
                rc->map.owner[rslot] = (uint16_t)to;
            rc->stale = true; /* learn the rest of the move too */
            node = to;
            asking = false;
            if (rcluster_refresh(rc) == 0)
                node = -1;
            else
                follow = to >= 0; /* no map now: trust the redirection once */
        } else {
            rc->stats.ask++;
            node = rc_map_node(&rc->map, host, port);
            asking = true;
        }
        if (node == -1 && kind == 2)
            return NULL;
    }
    str_format(rc->errstr, sizeof rc->errstr, "more than %d redirections for slot %u",
               RC_REDIRECTS_MAX, slot);
    return NULL;
}

redisReply *rcluster_command(struct rcluster *rc, const char *slotkey, size_t keylen, int argc,
                             const char **argv, const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        str_format(rc->errstr, sizeof rc->errstr, "cannot format the command");
        return NULL;
    }
    redisReply *r = route_one(rc, rc_keyslot(slotkey, keylen), cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

redisReply *rcluster_commandf(struct rcluster *rc, const char *slotkey, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        str_format(rc->errstr, sizeof rc->errstr, "cannot format the command");
        return NULL;
    }
    redisReply *r = route_one(rc, rc_keyslot(slotkey, strlen(slotkey)), cmd, (size_t)len);
    redisFreeCommand(cmd);
    return r;
}

int rcluster_pipeline(struct rcluster *rc, const char *slotkey, size_t keylen, int n,
                      char *const *cmds, const size_t *lens, redisReply **replies)
{
    unsigned slot = rc_keyslot(slotkey, keylen);
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    if (rc->stale && rcluster_refresh(rc) != 0)
        return -1;
    int node = rc->map.owner[slot];
    if (node == RC_NO_OWNER) {
        rc->stale = true; /* each command finds its way below */
    } else if (node_roundtrip(rc, node, false, n, cmds, lens, replies) != 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (replies[i]) {
            unsigned s;
            char host[RC_HOST_MAX];
            int port;
            if (rc_redirect_parse(replies[i], &s, host, sizeof host, &port) == 0 &&
                !rc_reply_is_transient(replies[i]))
                continue;
            freeReplyObject(replies[i]);
        }
        replies[i] = route_one(rc, slot, cmds[i], lens[i]);
        if (!replies[i]) {
            for (int j = 0; j < n; j++)
                if (replies[j]) {
                    freeReplyObject(replies[j]);
                    replies[j] = NULL;
                }
            return -1;
        }
    }
    return 0;
}

int rcluster_masters(struct rcluster *rc)
{
    if (rc->stale)
        (void)rcluster_refresh(rc);
    return rc->map.nnodes;
}

const char *rcluster_master_name(struct rcluster *rc, int i)
{
    static _Thread_local char name[RC_HOST_MAX + 16];
    if (i < 0 || i >= rc->map.nnodes)
        return "?";
    const struct rc_addr *a = &rc->map.nodes[i];
    if (a->is_unix)
        str_format(name, sizeof name, "unix:%s", a->host);
    else
        str_format(name, sizeof name, "%s:%d", a->host, a->port);
    return name;
}

redisReply *rcluster_master_command(struct rcluster *rc, int i, int argc, const char **argv,
                                    const size_t *argvlen)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return NULL;
    size_t l = (size_t)len;
    redisReply *r = NULL;
    if (node_roundtrip(rc, i, false, 1, &cmd, &l, &r) != 0)
        r = NULL;
    redisFreeCommand(cmd);
    return r;
}

redisContext *rcluster_slot_context(struct rcluster *rc, const char *slotkey, size_t keylen)
{
    if (rc->stale && rcluster_refresh(rc) != 0)
        return NULL;
    int node = rc->map.owner[rc_keyslot(slotkey, keylen)];
    if (node == RC_NO_OWNER) {
        str_format(rc->errstr, sizeof rc->errstr, "no node serves the slot of that key");
        rc->stale = true;
        return NULL;
    }
    redisContext *c = node_conn(rc, node);
    if (c && c->err) { /* a broken borrowed connection: start again */
        node_drop(rc, node);
        if (rc->stale && rcluster_refresh(rc) != 0)
            return NULL;
        c = node_conn(rc, rc->map.owner[rc_keyslot(slotkey, keylen)]);
    }
    return c;
}

redisContext *rcluster_master_context(struct rcluster *rc, int i)
{
    if (rc->stale)
        (void)rcluster_refresh(rc);
    redisContext *c = node_conn(rc, i);
    if (c && c->err) {
        node_drop(rc, i);
        c = node_conn(rc, i);
    }
    return c;
}

bool rcluster_note(struct rcluster *rc, const redisReply *r)
{
    unsigned slot;
    char host[RC_HOST_MAX];
    int port;
    if (r && rc_redirect_parse(r, &slot, host, sizeof host, &port) == 0 &&
        !rc_reply_is_transient(r))
        return false;
    if (rc->cluster)
        rc->stale = true;
    else if (!r)
        for (int i = 0; i < rc->map.nnodes; i++)
            if (rc->conn[i] && rc->conn[i]->err)
                node_drop(rc, i);
    return true;
}

redisContext *rcluster_connect_slot(const char *spec, const char *slotkey, int timeout_ms,
                                    char *err, size_t errlen)
{
    struct rcluster *rc = rcluster_connect(spec, timeout_ms, err, errlen);
    if (!rc)
        return NULL;
    redisContext *c = NULL;
    int node = rc->map.owner[rc_keyslot(slotkey, strlen(slotkey))];
    if (node == RC_NO_OWNER) {
        str_format(err, errlen, "redis: no cluster node serves the slot of %s", slotkey);
    } else {
        c = rc->conn[node] ? rc->conn[node] : addr_connect(&rc->map.nodes[node], rc->timeout);
        rc->conn[node] = NULL; /* now the caller's */
        if (!c)
            str_format(err, errlen, "cannot connect to redis at %s", rcluster_master_name(rc, node));
    }
    rcluster_free(rc);
    return c;
}
