/* harness_cluster.h - a real local Redis Cluster for integration tests:
 * redis-server --cluster-enabled yes on loopback ports below 30000 (the
 * cluster bus is port + 10000, so both must be free), joined by
 * redis-cli --cluster create, in a temp dir, torn down at the end. Never
 * touches a port it did not find free, never outlives the test process. */
#ifndef VEIL_HARNESS_CLUSTER_H
#define VEIL_HARNESS_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HARNESS_CLUSTER_NODES_MAX 8

struct harness_cluster {
    int n;                                  /* nodes started */
    int masters;                            /* the first `masters` nodes were created as masters */
    int port[HARNESS_CLUSTER_NODES_MAX];
    pid_t pid[HARNESS_CLUSTER_NODES_MAX];   /* 0: not running */
    char dir[256];
    int node_timeout_ms;
};

/* A free port in [11000, 29999] whose cluster bus port (+10000) is free
 * too, for a lone cluster node a test starts itself; -1 when none. */
int harness_free_cluster_port(void);

/* Start `masters` masters with `replicas` replicas each (masters *
 * (1 + replicas) <= HARNESS_CLUSTER_NODES_MAX) under `dir`, node timeout
 * `node_timeout_ms` (failover speed), create the cluster and wait until
 * every node reports cluster_state:ok with all 16384 slots (at most 30 s).
 * Returns 0 or -1 (everything started is stopped again). */
int harness_cluster_start(struct harness_cluster *c, const char *dir, int masters, int replicas,
                          int node_timeout_ms);
/* SIGKILL every node and reap it. */
void harness_cluster_stop(struct harness_cluster *c);

/* "127.0.0.1:p1,127.0.0.1:p2,..." of the first `k` nodes (0: all). */
const char *harness_cluster_spec(const struct harness_cluster *c, int k, char *out, size_t outlen);

/* SIGKILL node i (a crashed master) and reap it. */
void harness_cluster_kill(struct harness_cluster *c, int i);

/* Start node i again after harness_cluster_kill, on its port and with its
 * nodes.conf (a killed master comes back as its promoted replica's
 * replica). Waits until it answers (at most 10 s). Returns 0 or -1. */
int harness_cluster_restart(struct harness_cluster *c, int i);

/* Run `redis-cli -p <port of node i> <args...>` (NULL-terminated), output
 * into a malloc'd buffer (caller frees) or NULL on failure. */
char *harness_cluster_cli(const struct harness_cluster *c, int i, const char *const args[]);

/* Index of the node currently master of `slot` according to node `ask`,
 * or -1. */
int harness_cluster_slot_owner(const struct harness_cluster *c, int ask, unsigned slot);

/* Wait (at most timeout_ms) until every running node reports
 * cluster_state:ok. Returns 0 or -1. */
int harness_cluster_wait_ok(const struct harness_cluster *c, int timeout_ms);

#endif
