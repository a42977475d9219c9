/* cluster-route.c - bench tool for `make bench`'s cluster section
 * (bench/cluster.py): writes delivery-like batches (one XADD of one entry
 * carrying many events per shard and batch, as the collector does) through
 * the routing module (include/rcluster.h) to a single Redis or a Redis
 * Cluster, optionally followed by WAIT for a replica, and prints what it
 * took as one JSON line. Measures the routing's overhead and WAIT's cost,
 * not the daemons. Never sends a batch across two slots.
 *
 *   cluster-route SPEC EVENTS EVENTS_PER_ENTRY SHARDS DEPTH WAIT_REPLICAS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "rcluster.h"
#include "shard.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s SPEC EVENTS EVENTS_PER_ENTRY SHARDS DEPTH WAIT_REPLICAS\n",
                argv[0]);
        return 2;
    }
    long events = atol(argv[2]), per_entry = atol(argv[3]);
    int shards = atoi(argv[4]), depth = atoi(argv[5]), wait_replicas = atoi(argv[6]);
    if (events < 1 || per_entry < 1 || shards < 1 || shards > SHARDS_MAX || depth < 1 ||
        depth > 64 || wait_replicas < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    char err[256];
    struct rcluster *rc = rcluster_connect(argv[1], 5000, err, sizeof err);
    if (!rc) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* an event is ~60 bytes packed (docs/DELIVERY.md); an entry carries many */
    size_t payload_len = (size_t)per_entry * 60;
    char *payload = malloc(payload_len);
    for (size_t i = 0; i < payload_len; i++)
        payload[i] = (char)('a' + i % 26);
    long entries = (events + per_entry - 1) / per_entry, sent = 0, waits_short = 0;
    char *cmds[66];
    size_t lens[66];
    redisReply *replies[66];
    double t0 = now_s(), c0 = cpu_s();
    for (long e = 0; e < entries; sent++) {
        int shard = (int)(sent % shards);
        char prefix[SHARD_PREFIX_MAX], key[64];
        size_t pl = shard_key_prefix(prefix, sizeof prefix, (unsigned)shard);
        snprintf(key, sizeof key, "%sbench", prefix);
        int n = 0;
        for (; n < depth && e < entries; n++, e++) {
            const char *av[] = {"XADD", key, "MAXLEN", "~", "1000", "*", "b", payload};
            size_t al[] = {4, strlen(key), 6, 1, 4, 1, 1, payload_len};
            lens[n] = (size_t)redisFormatCommandArgv(&cmds[n], 8, av, al);
        }
        int waits = 0;
        if (wait_replicas > 0) {
            char num[16];
            snprintf(num, sizeof num, "%d", wait_replicas);
            const char *av[] = {"WAIT", num, "1000"};
            lens[n] = (size_t)redisFormatCommandArgv(&cmds[n], 3, av, NULL);
            n++;
            waits = 1;
        }
        if (rcluster_pipeline(rc, prefix, pl, n, cmds, lens, replies) != 0) {
            fprintf(stderr, "pipeline: %s\n", rcluster_errstr(rc));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (replies[i]->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "reply: %s\n", replies[i]->str);
                return 1;
            }
            if (waits && i == n - 1 && replies[i]->integer < wait_replicas)
                waits_short++;
            freeReplyObject(replies[i]);
            redisFreeCommand(cmds[i]);
        }
    }
    double secs = now_s() - t0, cpu = cpu_s() - c0;
    struct rcluster_stats st;
    rcluster_get_stats(rc, &st);
    printf("{\"events\": %ld, \"entries\": %ld, \"seconds\": %.4f, \"client_cpu_s\": %.4f, "
           "\"pipelines\": %ld, \"waits_short\": %ld, \"moved\": %llu, \"masters\": %d, "
           "\"cluster\": %s}\n",
           entries * per_entry, entries, secs, cpu, sent, waits_short,
           (unsigned long long)st.moved, rcluster_masters(rc),
           rcluster_is_cluster(rc) ? "true" : "false");
    free(payload);
    rcluster_free(rc);
    return 0;
}
