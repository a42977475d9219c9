/* rcluster.h - Redis Cluster routing over hiredis 0.14 (which has no cluster
 * client): the `redis` address list, the key slot (CRC16 with hash tags),
 * the slot map (CLUSTER SLOTS), MOVED/ASK/TRYAGAIN, reconnecting and
 * rediscovering after a failover. The same handle speaks to a single Redis
 * (one host:port or unix:/path), where every slot is that server.
 *
 * Two faces: a blocking one (struct rcluster, for the aggregator, the stats
 * API and veil-admin) and an event-loop one (struct rcluster_async, libevent
 * adapter, for the collector). Neither ever sends one command or one
 * pipeline across two slots: the caller names the slot by a key (a shard's
 * prefix "veil:{3}:" or any key of the batch), and everything goes to that
 * slot's owner.
 *
 * Bounds: at most RC_SEEDS_MAX seed addresses, RC_NODES_MAX nodes in the
 * map, RC_REDIRECTS_MAX redirections per command. */
#ifndef VEIL_RCLUSTER_H
#define VEIL_RCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define RC_SLOTS 16384
#define RC_SEEDS_MAX 16
#define RC_NODES_MAX 64
#define RC_REDIRECTS_MAX 8
#define RC_HOST_MAX 256

struct rc_addr {
    bool is_unix;
    char host[RC_HOST_MAX]; /* host name or address, or the socket path */
    int port;               /* 0 for unix */
};

/* Parse `spec`: "unix:/path", or "host:port[,host:port...]" (at most
 * RC_SEEDS_MAX, no spaces). Writes the addresses into seeds[0..*n-1].
 * Returns false with a reason in err on a malformed list. */
bool rc_parse_spec(const char *spec, struct rc_addr *seeds, int *n, char *err, size_t errlen);

/* The Redis Cluster slot of a key (0..16383): CRC16/XMODEM of the key, or
 * of the text between the first '{' and the next '}' when that is not
 * empty (Redis's hash tags). Pure; matches CLUSTER KEYSLOT. */
unsigned rc_keyslot(const void *key, size_t len);

/* The slot map: which node serves which slot. */
struct rc_map {
    int nnodes;
    struct rc_addr nodes[RC_NODES_MAX];
    uint16_t owner[RC_SLOTS]; /* index into nodes, or RC_NO_OWNER */
};
#define RC_NO_OWNER 0xffff

/* Fill `map` from a CLUSTER SLOTS reply; a master with an empty address is
 * `asked` (the node that answered). Returns the number of slots covered,
 * or -1 when the reply is not a CLUSTER SLOTS answer or names more than
 * RC_NODES_MAX masters. */
int rc_map_load(struct rc_map *map, const redisReply *slots, const struct rc_addr *asked);

/* Index of the node at host:port in map, adding it (when there is room)
 * if absent. Returns -1 when the map is full. */
int rc_map_node(struct rc_map *map, const char *host, int port);

/* Parse a "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" error
 * reply. Returns 1 for MOVED, 2 for ASK, 0 for anything else. */
int rc_redirect_parse(const redisReply *r, unsigned *slot, char *host, size_t hostlen, int *port);

/* True for a TRYAGAIN or CLUSTERDOWN error reply (retry after a moment:
 * a multi-key command during a slot migration, or a failover under way). */
bool rc_reply_is_transient(const redisReply *r);

/* ---- blocking client ---- */

struct rcluster;

/* Connect to the first seed that answers (each within `timeout_ms`, which
 * also bounds every later command), find out whether it is a cluster
 * (INFO cluster) and, if so, load the slot map. Returns NULL with a reason
 * in err when no seed answers or the map cannot be read. */
struct rcluster *rcluster_connect(const char *spec, int timeout_ms, char *err, size_t errlen);
void rcluster_free(struct rcluster *rc);

/* A plain connection (caller frees with redisFree) to the node that owns
 * the slot of `slotkey` right now, found through `spec` as
 * rcluster_connect does; for a plain Redis, to that server. For code whose
 * keys all live in one slot (the site registry's "veil:{reg}:"): when a
 * command there fails (MOVED after a resharding, a dead master), drop the
 * connection and call this again. NULL with a reason in err. */
redisContext *rcluster_connect_slot(const char *spec, const char *slotkey, int timeout_ms,
                                    char *err, size_t errlen);

/* True when the server is a Redis Cluster (false: one plain Redis). */
bool rcluster_is_cluster(const struct rcluster *rc);

/* Send one command (argv/argvlen as redisCommandArgv) to the owner of the
 * slot of `slotkey` (keylen bytes), following MOVED (the map is reloaded)
 * and ASK (ASKING first), retrying TRYAGAIN/CLUSTERDOWN for up to the
 * connect timeout. Returns the reply (caller frees with freeReplyObject),
 * or NULL on an I/O error: the command may or may not have run; the node's
 * connection is dropped, and the next call reconnects and reloads the map
 * (that is how a promoted replica is found). rcluster_errstr says why. */
redisReply *rcluster_command(struct rcluster *rc, const char *slotkey, size_t keylen,
                             int argc, const char **argv, const size_t *argvlen);

/* printf-style convenience over rcluster_command (hiredis's format). */
redisReply *rcluster_commandf(struct rcluster *rc, const char *slotkey, const char *fmt, ...);

/* A pipeline of n formatted commands (redisFormatCommandArgv) whose keys
 * are all in the slot of `slotkey`, sent in one write to its owner. Fills
 * replies[0..n-1] (caller frees each) and returns 0; a command answered
 * with MOVED, ASK or TRYAGAIN did not run and is sent again on its own,
 * after the others (callers keep dependent writes in one script call).
 * Returns -1 on an I/O error (replies[] are NULL; as rcluster_command). */
int rcluster_pipeline(struct rcluster *rc, const char *slotkey, size_t keylen, int n,
                      char *const *cmds, const size_t *lens, redisReply **replies);

/* The masters, for commands that span every slot (SCAN, INFO, FUNCTION
 * LOAD): their number (1 for a plain Redis) and one command sent to
 * master i (no redirection). rcluster_master_command returns as
 * rcluster_command. */
int rcluster_masters(struct rcluster *rc);
redisReply *rcluster_master_command(struct rcluster *rc, int i, int argc, const char **argv,
                                    const size_t *argvlen);
/* "host:port" of master i, for logs and errors. */
const char *rcluster_master_name(struct rcluster *rc, int i);

/* The connection (borrowed: owned by rc, valid until the next rcluster
 * call) to the current owner of the slot of `slotkey`, or to master i,
 * connecting when needed; NULL (rcluster_errstr says why) when it cannot.
 * For code written against one redisContext whose keys all live in one
 * slot or on one node (the registry's {reg}, a SCAN of one node): a MOVED
 * or ASK reply there means the map changed; pass it to rcluster_note. */
redisContext *rcluster_slot_context(struct rcluster *rc, const char *slotkey, size_t keylen);
redisContext *rcluster_master_context(struct rcluster *rc, int i);

/* Look at a reply got through a borrowed context: a MOVED, ASK, TRYAGAIN
 * or CLUSTERDOWN error, or NULL (I/O error), marks the map for reloading
 * before the next command. Returns true when it was such a reply (the
 * command did not run, or may not have: the caller retries or reports). */
bool rcluster_note(struct rcluster *rc, const redisReply *r);

/* Reload the slot map from any reachable node. Returns 0 or -1. */
int rcluster_refresh(struct rcluster *rc);

/* The reason of the last failure (never an address of a client). */
const char *rcluster_errstr(const struct rcluster *rc);

/* The current slot map (for the event-loop face and tests). */
const struct rc_map *rcluster_map(const struct rcluster *rc);

/* Counters since connect, for metrics and tests. */
struct rcluster_stats {
    uint64_t moved, ask, tryagain, reconnects, refreshes;
    uint64_t lost; /* event-loop face: connections that failed or closed */
};
void rcluster_get_stats(const struct rcluster *rc, struct rcluster_stats *out);

/* ---- event-loop client (libevent) ---- */

struct event_base;
struct redisAsyncContext;
struct rcluster_async;
typedef void(rcluster_reply_fn)(void *reply, void *privdata);

/* Parse `spec` and discover the server as rcluster_connect does (this one
 * call blocks, at most timeout_ms per seed). A server that does not answer
 * is not an error: discovery is tried again before the next command.
 * Returns NULL only for a malformed `spec` (reason in err). */
struct rcluster_async *rcluster_async_new(struct event_base *base, const char *spec,
                                          int timeout_ms, char *err, size_t errlen);
/* Close every connection: each pending command's callback runs once with
 * a NULL reply, then the handle is freed. */
void rcluster_async_free(struct rcluster_async *rca);

/* Queue one formatted command (redisFormatCommand...; copied) for the
 * owner of the slot of `slotkey`. `fn` runs exactly once: with the reply
 * (owned by hiredis, valid during the call), after following MOVED (map
 * updated, reloaded in the background), ASK (ASKING first) and TRYAGAIN /
 * CLUSTERDOWN (again after 20 ms, for at most timeout_ms); or with NULL
 * when the node's connection failed or closed (the command may have run;
 * the next command reconnects and, on a cluster, rediscovers the map).
 * Commands for one slot reach Redis in the order they were queued unless
 * one is redirected. Returns 0, or -1 when nothing could be queued (no node
 * reachable; fn does not run). */
int rcluster_async_command(struct rcluster_async *rca, const char *slotkey, size_t keylen,
                           rcluster_reply_fn *fn, void *privdata, const char *cmd, size_t len);

/* Only from inside a callback of this handle that got a reply (not NULL):
 * queue one formatted command (copied) for the node that gave that reply,
 * as is: no redirection, no retry (for WAIT after a write, which must
 * reach the node that took the write). `fn` runs exactly once, as for
 * rcluster_async_command. Returns 0, or -1 (fn does not run) outside such
 * a callback or when that connection is gone. */
int rcluster_async_command_here(struct rcluster_async *rca, rcluster_reply_fn *fn,
                                void *privdata, const char *cmd, size_t len);

/* Write what is queued on every connected node now rather than when the
 * loop next polls (not from inside a callback of this handle). A failed
 * write closes that node's connection (its callbacks run with NULL). */
void rcluster_async_flush(struct rcluster_async *rca);

/* True when the server is a Redis Cluster; false for one plain Redis or
 * before the first successful discovery. */
bool rcluster_async_is_cluster(const struct rcluster_async *rca);

/* True when the last discovery succeeded and no connection failed since. */
bool rcluster_async_ready(const struct rcluster_async *rca);

/* Counters since creation. */
void rcluster_async_get_stats(const struct rcluster_async *rca, struct rcluster_stats *out);

#endif
