/* rcluster_async.c - the event-loop face of the Redis Cluster routing
 * (rcluster.h): hiredis async connections on libevent, one per node, each
 * command sent to its slot's owner and redirected by MOVED, ASK and
 * TRYAGAIN without the caller seeing it. Discovery (INFO cluster, CLUSTER
 * SLOTS) at start and after a lost connection is blocking and bounded by
 * the timeout per seed, at most once per RCA_DISCOVER_MS; map reloads after
 * MOVED are asynchronous. Never calls a callback twice, never sends one
 * command to two nodes except as Redis itself redirects it. */
#include "rcluster.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define RCA_DISCOVER_MS 100 /* at most one blocking discovery per 100 ms */
#define RCA_TRYAGAIN_MS 20

struct rcluster_async;

struct rca_conn {
    struct rc_addr addr;
    redisAsyncContext *ac; /* NULL: not connected */
    struct rcluster_async *rca;
};

struct rca_req {
    struct rcluster_async *rca;
    unsigned slot;
    rcluster_reply_fn *fn;
    void *privdata;
    char *cmd;
    size_t len;
    int hops;
    bool fixed;                  /* sent to one node as is: no redirection */
    uint64_t deadline;
    struct event *timer;         /* waiting after TRYAGAIN */
    struct rca_req *prev, *next; /* in rca->waiting while the timer runs */
};

struct rcluster_async {
    struct event_base *base;
    char *spec;
    int timeout_ms;
    bool cluster;
    bool discovered; /* the map is usable */
    bool stale;      /* a connection failed: rediscover before routing */
    bool refreshing; /* an async CLUSTER SLOTS is in flight */
    bool closing;
    uint64_t last_discover_ms;
    struct rc_map map;
    struct rca_conn conns[RC_NODES_MAX];
    struct rca_req *waiting;
    struct rca_conn *replying; /* the node whose reply a callback is reading */
    struct rcluster_stats stats;
};

static void discover(struct rcluster_async *rca)
{
    uint64_t now = clock_ms();
    if (rca->discovered && !rca->stale)
        return;
    if (rca->last_discover_ms && now - rca->last_discover_ms < RCA_DISCOVER_MS)
        return;
    rca->last_discover_ms = now;
    char err[256];
    struct rcluster *rc = rcluster_connect(rca->spec, rca->timeout_ms, err, sizeof err);
    if (!rc)
        return;
    rca->cluster = rcluster_is_cluster(rc);
    rca->map = *rcluster_map(rc);
    rca->discovered = true;
    rca->stale = false;
    rca->stats.refreshes++;
    rcluster_free(rc);
}

struct rcluster_async *rcluster_async_new(struct event_base *base, const char *spec,
                                          int timeout_ms, char *err, size_t errlen)
{
    struct rc_addr seeds[RC_SEEDS_MAX];
    int n;
    if (!rc_parse_spec(spec, seeds, &n, err, errlen))
        return NULL;
    struct rcluster_async *rca = xcalloc(1, sizeof *rca);
    rca->base = base;
    rca->spec = xstrdup(spec);
    rca->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    for (int i = 0; i < RC_NODES_MAX; i++)
        rca->conns[i].rca = rca;
    discover(rca);
    rca->stats.refreshes = 0;
    return rca;
}

static void conn_lost(struct rca_conn *conn)
{
    conn->ac = NULL;
    if (!conn->rca->closing)
        conn->rca->stats.lost++;
    if (conn->rca->cluster && !conn->rca->closing)
        conn->rca->stale = true; /* perhaps a failover: find the new master */
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct rca_conn *conn = ac->data;
    if (status != REDIS_OK && conn) /* hiredis frees ac after this */
        conn_lost(conn);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct rca_conn *conn = ac->data;
    if (conn)
        conn_lost(conn);
}

/* The connection to a, connecting when needed; NULL when out of room or
 * the connect could not even start. */
static redisAsyncContext *conn_get(struct rcluster_async *rca, const struct rc_addr *a)
{
    struct rca_conn *free_slot = NULL;
    for (int i = 0; i < RC_NODES_MAX; i++) {
        struct rca_conn *c = &rca->conns[i];
        if (c->ac && c->addr.port == a->port && strcmp(c->addr.host, a->host) == 0)
            return c->ac;
        if (!c->ac && !free_slot)
            free_slot = c;
    }
    if (!free_slot)
        return NULL;
    redisAsyncContext *ac = a->is_unix ? redisAsyncConnectUnix(a->host)
                                       : redisAsyncConnect(a->host, a->port);
    if (!ac)
        return NULL;
    if (ac->err || redisLibeventAttach(ac, rca->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    free_slot->addr = *a;
    free_slot->ac = ac;
    ac->data = free_slot;
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    rca->stats.reconnects++;
    return ac;
}

static void req_free(struct rca_req *req)
{
    if (req->timer)
        event_free(req->timer);
    free(req->cmd);
    free(req);
}

static void deliver(struct rca_req *req, void *reply)
{
    req->fn(reply, req->privdata);
    req_free(req);
}

/* Deliver a reply read from `conn`: rcluster_async_command_here may send
 * to that node during the callback. */
static void deliver_from(struct rca_req *req, struct rca_conn *conn, void *reply)
{
    struct rcluster_async *rca = req->rca;
    struct rca_conn *outer = rca->replying;
    rca->replying = reply ? conn : NULL;
    deliver(req, reply);
    rca->replying = outer;
}

static void req_cb(redisAsyncContext *ac, void *r, void *privdata);

/* Send req to map node `node` (ASKING first when asking). Returns 0 or -1
 * (nothing sent). */
static int send_to(struct rca_req *req, int node, bool asking)
{
    struct rcluster_async *rca = req->rca;
    if (node < 0 || node >= rca->map.nnodes)
        return -1;
    redisAsyncContext *ac = conn_get(rca, &rca->map.nodes[node]);
    if (!ac)
        return -1;
    if (asking && redisAsyncCommand(ac, NULL, NULL, "ASKING") != REDIS_OK)
        return -1;
    return redisAsyncFormattedCommand(ac, req_cb, req, req->cmd, req->len) == REDIS_OK ? 0 : -1;
}

static int owner_of(struct rcluster_async *rca, unsigned slot)
{
    discover(rca);
    if (!rca->discovered)
        return -1;
    int node = rca->map.owner[slot];
    return node == RC_NO_OWNER ? -1 : node;
}

static void refresh_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rcluster_async *rca = privdata;
    struct rca_conn *conn = ac->data;
    rca->refreshing = false;
    if (!r || !conn)
        return;
    struct rc_map *fresh = xmalloc(sizeof *fresh);
    if (rc_map_load(fresh, r, &conn->addr) > 0) {
        rca->map = *fresh;
        rca->stats.refreshes++;
    }
    free(fresh);
}

static void waiting_unlink(struct rca_req *req)
{
    struct rcluster_async *rca = req->rca;
    if (req->prev)
        req->prev->next = req->next;
    else if (rca->waiting == req)
        rca->waiting = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rca_req *req = arg;
    waiting_unlink(req);
    if (send_to(req, owner_of(req->rca, req->slot), false) != 0)
        deliver(req, NULL);
}

static void req_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rca_req *req = privdata;
    struct rcluster_async *rca = req->rca;
    redisReply *reply = r;
    struct rca_conn *conn = ac->data;
    if (!reply || rca->closing || req->fixed) {
        deliver_from(req, conn, reply);
        return;
    }
    char host[RC_HOST_MAX];
    int port;
    unsigned slot;
    int kind = rc_redirect_parse(reply, &slot, host, sizeof host, &port);
    if (kind == 0 && rc_reply_is_transient(reply) && clock_ms() < req->deadline) {
        rca->stats.tryagain++;
        struct timeval tv = {0, RCA_TRYAGAIN_MS * 1000};
        if (!req->timer)
            req->timer = evtimer_new(rca->base, retry_cb, req);
        if (req->timer && evtimer_add(req->timer, &tv) == 0) {
            req->next = rca->waiting;
            if (rca->waiting)
                rca->waiting->prev = req;
            rca->waiting = req;
            return;
        }
    }
    if (kind == 0 || ++req->hops > RC_REDIRECTS_MAX) {
        deliver_from(req, conn, reply);
        return;
    }
    int node = rc_map_node(&rca->map, host, port);
    if (kind == 1) {
        rca->stats.moved++;
        if (node >= 0)
            rca->map.owner[slot] = (uint16_t)node;
        if (!rca->refreshing &&
            redisAsyncCommand(ac, refresh_cb, rca, "CLUSTER SLOTS") == REDIS_OK)
            rca->refreshing = true; /* learn the rest of the move too */
    } else {
        rca->stats.ask++;
    }
    if (send_to(req, node, kind == 2) != 0)
        deliver(req, NULL);
}

int rcluster_async_command(struct rcluster_async *rca, const char *slotkey, size_t keylen,
                           rcluster_reply_fn *fn, void *privdata, const char *cmd, size_t len)
{
    if (rca->closing)
        return -1;
    struct rca_req *req = xcalloc(1, sizeof *req);
    req->rca = rca;
    req->slot = rc_keyslot(slotkey, keylen);
    req->fn = fn;
    req->privdata = privdata;
    req->cmd = xmalloc(len);
    memcpy(req->cmd, cmd, len);
    req->len = len;
    req->deadline = clock_ms() + (uint64_t)rca->timeout_ms;
    if (send_to(req, owner_of(rca, req->slot), false) != 0) {
        req_free(req);
        return -1;
    }
    return 0;
}

int rcluster_async_command_here(struct rcluster_async *rca, rcluster_reply_fn *fn,
                                void *privdata, const char *cmd, size_t len)
{
    struct rca_conn *conn = rca->replying;
    if (rca->closing || !conn || !conn->ac)
        return -1;
    struct rca_req *req = xcalloc(1, sizeof *req);
    req->rca = rca;
    req->fixed = true;
    req->fn = fn;
    req->privdata = privdata;
    req->cmd = xmalloc(len);
    memcpy(req->cmd, cmd, len);
    req->len = len;
    if (redisAsyncFormattedCommand(conn->ac, req_cb, req, req->cmd, req->len) != REDIS_OK) {
        req_free(req);
        return -1;
    }
    return 0;
}

void rcluster_async_flush(struct rcluster_async *rca)
{
    for (int i = 0; i < RC_NODES_MAX && !rca->closing; i++) {
        redisAsyncContext *ac = rca->conns[i].ac;
        /* only connected ones: hiredis 0.14 would take a connect still in
         * progress for done */
        if (ac && (ac->c.flags & REDIS_CONNECTED))
            redisAsyncHandleWrite(ac); /* a failure frees ac and clears conns[i] */
    }
}

void rcluster_async_free(struct rcluster_async *rca)
{
    if (!rca)
        return;
    rca->closing = true;
    while (rca->waiting) {
        struct rca_req *req = rca->waiting;
        waiting_unlink(req);
        deliver(req, NULL);
    }
    for (int i = 0; i < RC_NODES_MAX; i++) {
        redisAsyncContext *ac = rca->conns[i].ac;
        if (ac) {
            rca->conns[i].ac = NULL;
            redisAsyncFree(ac); /* pending callbacks run with NULL */
        }
    }
    free(rca->spec);
    free(rca);
}

bool rcluster_async_is_cluster(const struct rcluster_async *rca)
{
    return rca->cluster;
}

bool rcluster_async_ready(const struct rcluster_async *rca)
{
    return rca->discovered && !rca->stale;
}

void rcluster_async_get_stats(const struct rcluster_async *rca, struct rcluster_stats *out)
{
    *out = rca->stats;
}
