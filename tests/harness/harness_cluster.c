/* harness_cluster.c - a real local Redis Cluster for integration tests
 * (harness_cluster.h). Ports below 30000 with port + 10000 free too; every
 * node dies with the test process (PR_SET_PDEATHSIG). */
#include "harness_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool tcp_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* A port in [11000, 29999] whose bus port (+10000) is free too, not
 * already taken by this cluster. */
static int cluster_port(const struct harness_cluster *c)
{
    static uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec) | 1;
    }
    for (int tries = 0; tries < 1000; tries++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        int port = 11000 + (int)(state % 19000);
        bool taken = false;
        for (int i = 0; i < c->n; i++)
            if (c->port[i] == port || c->port[i] + 10000 == port || c->port[i] == port + 10000)
                taken = true;
        if (!taken && tcp_free(port) && tcp_free(port + 10000))
            return port;
    }
    return -1;
}

int harness_free_cluster_port(void)
{
    struct harness_cluster none = {0};
    return cluster_port(&none);
}

static pid_t spawn_quiet(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in >= 0)
        dup2(in, STDIN_FILENO);
    if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
    }
    execvp(argv[0], argv);
    _exit(127);
}

static redisContext *node_ctx(const struct harness_cluster *c, int i)
{
    struct timeval tv = {1, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", c->port[i], tv);
    if (rc && rc->err) {
        redisFree(rc);
        return NULL;
    }
    if (rc)
        redisSetTimeout(rc, tv);
    return rc;
}

static bool node_ok(const struct harness_cluster *c, int i)
{
    redisContext *rc = node_ctx(c, i);
    if (!rc)
        return false;
    redisReply *r = redisCommand(rc, "CLUSTER INFO");
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
              strstr(r->str, "cluster_slots_assigned:16384") &&
              strstr(r->str, "cluster_slots_ok:16384");
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return ok;
}

int harness_cluster_wait_ok(const struct harness_cluster *c, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        bool all = true;
        for (int i = 0; i < c->n && all; i++)
            if (c->pid[i] > 0 && !node_ok(c, i))
                all = false;
        if (all)
            return 0;
        nap_ms(50);
    }
    return -1;
}

/* 1 or 2 masters: CLUSTER MEET and ADDSLOTSRANGE in even parts. */
static int manual_create(struct harness_cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        redisContext *rc = node_ctx(c, i);
        if (!rc)
            return -1;
        int from = 16384 * i / c->n, to = 16384 * (i + 1) / c->n - 1;
        redisReply *r = redisCommand(rc, "CLUSTER ADDSLOTSRANGE %d %d", from, to);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        if (r)
            freeReplyObject(r);
        if (ok && i > 0) {
            r = redisCommand(rc, "CLUSTER MEET 127.0.0.1 %d", c->port[0]);
            ok = r && r->type != REDIS_REPLY_ERROR;
            if (r)
                freeReplyObject(r);
        }
        redisFree(rc);
        if (!ok)
            return -1;
    }
    return 0;
}

/* Every master has `replicas` replicas online (so WAIT can succeed). */
static int wait_replicas(const struct harness_cluster *c, int replicas, int timeout_ms)
{
    if (replicas == 0)
        return 0;
    char want[64];
    snprintf(want, sizeof want, "connected_slaves:%d", replicas);
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        int ready = 0, masters = 0;
        for (int i = 0; i < c->n; i++) {
            redisContext *rc = node_ctx(c, i);
            if (!rc)
                continue;
            redisReply *r = redisCommand(rc, "INFO replication");
            if (r && r->type == REDIS_REPLY_STRING && strstr(r->str, "role:master")) {
                masters++;
                if (strstr(r->str, want) && !strstr(r->str, "state=wait_bgsave") &&
                    !strstr(r->str, "state=send_bulk"))
                    ready++;
            }
            if (r)
                freeReplyObject(r);
            redisFree(rc);
        }
        if (masters == c->masters && ready == masters)
            return 0;
        nap_ms(50);
    }
    return -1;
}

/* Start node i's redis-server in its own directory (its nodes.conf, when
 * one is there, makes it rejoin as it was). */
static int node_spawn(struct harness_cluster *c, int i)
{
    char ndir[300], portstr[16], log[340], timeout[16];
    snprintf(timeout, sizeof timeout, "%d", c->node_timeout_ms);
    snprintf(ndir, sizeof ndir, "%s/node-%d", c->dir, c->port[i]);
    mkdir(ndir, 0700);
    snprintf(portstr, sizeof portstr, "%d", c->port[i]);
    snprintf(log, sizeof log, "%s/redis.log", ndir);
    char *argv[] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", timeout, "--dir", ndir, "--logfile", log,
                    "--save", "", "--appendonly", "no", "--daemonize", "no", NULL};
    c->pid[i] = spawn_quiet(argv, NULL);
    return c->pid[i] < 0 ? -1 : 0;
}

int harness_cluster_restart(struct harness_cluster *c, int i)
{
    if (i < 0 || i >= c->n || c->pid[i] > 0 || node_spawn(c, i) != 0)
        return -1;
    for (int t = 0; t < 200; t++) {
        redisContext *rc = node_ctx(c, i);
        if (rc) {
            redisFree(rc);
            return 0;
        }
        nap_ms(50);
    }
    return -1;
}

int harness_cluster_start(struct harness_cluster *c, const char *dir, int masters, int replicas,
                          int node_timeout_ms)
{
    memset(c, 0, sizeof *c);
    int total = masters * (1 + replicas);
    if (masters < 1 || total > HARNESS_CLUSTER_NODES_MAX)
        return -1;
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->masters = masters;
    c->node_timeout_ms = node_timeout_ms;
    for (int i = 0; i < total; i++) {
        int port = cluster_port(c);
        if (port < 0)
            goto err;
        c->port[i] = port;
        c->n = i + 1;
        if (node_spawn(c, i) != 0)
            goto err;
    }
    for (int i = 0; i < total; i++) {
        redisContext *rc = NULL;
        for (int t = 0; t < 200 && !rc; t++) {
            rc = node_ctx(c, i);
            if (!rc)
                nap_ms(50);
        }
        if (!rc)
            goto err;
        redisFree(rc);
    }
    if (masters < 3) { /* redis-cli wants 3 masters: assign the slots by hand */
        if (replicas != 0 || manual_create(c) != 0)
            goto err;
        if (harness_cluster_wait_ok(c, 30000) != 0)
            goto err;
        return 0;
    }
    /* redis-cli --cluster create a:p ... --cluster-replicas R --cluster-yes */
    char addrs[HARNESS_CLUSTER_NODES_MAX][32], reps[8], out[300];
    char *argv[HARNESS_CLUSTER_NODES_MAX + 8];
    int a = 0;
    argv[a++] = "redis-cli";
    argv[a++] = "--cluster";
    argv[a++] = "create";
    for (int i = 0; i < total; i++) {
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", c->port[i]);
        argv[a++] = addrs[i];
    }
    snprintf(reps, sizeof reps, "%d", replicas);
    argv[a++] = "--cluster-replicas";
    argv[a++] = reps;
    argv[a++] = "--cluster-yes";
    argv[a] = NULL;
    snprintf(out, sizeof out, "%s/create.log", dir);
    pid_t pid = spawn_quiet(argv, out);
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        goto err;
    if (harness_cluster_wait_ok(c, 30000) != 0 || wait_replicas(c, replicas, 30000) != 0)
        goto err;
    return 0;
err:
    harness_cluster_stop(c);
    return -1;
}

void harness_cluster_kill(struct harness_cluster *c, int i)
{
    if (i < 0 || i >= c->n || c->pid[i] <= 0)
        return;
    kill(c->pid[i], SIGKILL);
    waitpid(c->pid[i], NULL, 0);
    c->pid[i] = 0;
}

void harness_cluster_stop(struct harness_cluster *c)
{
    for (int i = 0; i < c->n; i++)
        harness_cluster_kill(c, i);
}

const char *harness_cluster_spec(const struct harness_cluster *c, int k, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    if (k <= 0 || k > c->n)
        k = c->n;
    for (int i = 0; i < k; i++) {
        int w = snprintf(out + used, outlen - used, "%s127.0.0.1:%d", i ? "," : "", c->port[i]);
        if (w < 0 || (size_t)w >= outlen - used)
            break;
        used += (size_t)w;
    }
    return out;
}

char *harness_cluster_cli(const struct harness_cluster *c, int i, const char *const args[])
{
    int fds[2];
    if (pipe(fds) != 0)
        return NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", c->port[i]);
    char *argv[40];
    int a = 0;
    argv[a++] = (char *)(uintptr_t) "redis-cli";
    argv[a++] = (char *)(uintptr_t) "-p";
    argv[a++] = portstr;
    for (int k = 0; args[k] && a < 39; k++)
        argv[a++] = (char *)(uintptr_t)args[k];
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return NULL;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp("redis-cli", argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1024 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    buf[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    return buf;
}

int harness_cluster_slot_owner(const struct harness_cluster *c, int ask, unsigned slot)
{
    redisContext *rc = node_ctx(c, ask);
    if (!rc)
        return -1;
    redisReply *r = redisCommand(rc, "CLUSTER SLOTS");
    int owner = -1;
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
        redisReply *e = r->element[k];
        if (e->elements >= 3 && (long long)slot >= e->element[0]->integer &&
            (long long)slot <= e->element[1]->integer) {
            long long port = e->element[2]->element[1]->integer;
            for (int i = 0; i < c->n; i++)
                if (c->port[i] == port)
                    owner = i;
        }
    }
    if (r)
        freeReplyObject(r);
    redisFree(rc);
    return owner;
}
