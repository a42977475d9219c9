/* test_it_tunnel.c - Veil's Redis traffic across machines, protected the
 * way docs/DEPLOYMENT.md ("In transit") says: Redis 7 serving TLS only
 * (deploy/redis-veil-tls.conf, client certificates required) and stunnel
 * on the daemons' side (deploy/stunnel-veil-redis.conf), since Debian 12's
 * hiredis 0.14 has no TLS. Both shipped configs are used as they are, with
 * only their addresses and file paths pointed at this test's dir and free
 * loopback ports; the certificates are made here by openssl.
 *
 * Events sent to a real collector go through the tunnel and are counted by
 * the stats API of a real aggregator that reads through it too. Redis has
 * no plaintext port, refuses a plaintext client on its TLS port, and
 * refuses a TLS client without a certificate. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
#define TOKEN "tunnel-test-token-0123456789"
#define STUNNEL "/usr/bin/stunnel4"

static char *dir;
static struct harness_proc redis, stunnel, collector, aggregator;

static void teardown(void)
{
    struct harness_proc *procs[] = {&aggregator, &collector, &stunnel, &redis};
    for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++)
        if (procs[i]->pid > 0)
            harness_kill(procs[i]);
    if (dir) {
        harness_rmdir(dir);
        free(dir);
    }
    dir = NULL;
}

/* Run a shell command (output appended to dir/cmd.log); its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[4096], wrapped[4400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd);
    snprintf(wrapped, sizeof wrapped, "( %s ) >>%s/cmd.log 2>&1", cmd, dir);
    int status = system(wrapped);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A CA, Redis's certificate (for redis.example.internal) and a client
 * certificate, all under dir/tls. */
static void make_certificates(void)
{
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    cr_assert_eq(sh("mkdir -p %s/tls && cd %s/tls && "
                    "openssl req -x509 %s -days 1 -subj /CN=veil-test-ca -keyout ca.key -out ca.crt &&"
                    "openssl req %s -subj /CN=redis.example.internal -keyout redis.key -out redis.csr &&"
                    "printf 'subjectAltName=DNS:redis.example.internal\\n' > redis.ext && "
                    "openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 1 -extfile redis.ext -out redis.crt && "
                    "openssl req %s -subj /CN=veil-collector -keyout client.key -out client.csr && "
                    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-days 1 -out client.crt",
                    dir, dir, ec, ec, ec),
                 0, "openssl could not make the certificates");
}

/* PING over a plain connection; true on PONG. */
static bool ping_tcp(int port)
{
    struct timeval tv = {1, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (rc && !rc->err) {
        redisSetTimeout(rc, tv);
        redisReply *r = redisCommand(rc, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        freeReplyObject(r);
    }
    redisFree(rc);
    return ok;
}

static void start_redis_tls(int tls_port)
{
    char src[512], conf[600], log[600];
    harness_root_path("deploy/redis-veil-tls.conf", src, sizeof src);
    cr_assert_eq(sh("sed -e 's|/usr/local/etc/veil/tls/|%s/tls/|' -e 's|^tls-port 6380|tls-port %d|' "
                    "-e 's|^unixsocket .*|unixsocket %s/redis.sock|' %s > %s/redis-veil-tls.conf && "
                    "printf 'include %s/redis-veil-tls.conf\\ndir %s\\nsave \"\"\\nappendonly no\\n' "
                    "> %s/redis.conf",
                    dir, tls_port, dir, src, dir, dir, dir, dir),
                 0);
    snprintf(conf, sizeof conf, "%s/redis.conf", dir);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    char *argv[] = {"/usr/bin/redis-server", conf, NULL};
    cr_assert_eq(harness_spawn(&redis, argv, log), 0);
    char sock[600];
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    for (int i = 0; i < 200; i++) {
        redisContext *rc = redisConnectUnix(sock);
        bool up = rc && !rc->err;
        redisFree(rc);
        if (up)
            return;
        usleep(50000);
    }
    cr_assert_fail("redis-server with the TLS sample did not start");
}

static void start_stunnel(int local_port, int tls_port)
{
    char src[512], conf[600], log[600];
    harness_root_path("deploy/stunnel-veil-redis.conf", src, sizeof src);
    cr_assert_eq(sh("sed -e 's|/usr/local/etc/veil/tls/|%s/tls/|' "
                    "-e 's|^accept = 127.0.0.1:6379|accept = 127.0.0.1:%d|' "
                    "-e 's|^connect = redis.example.internal:6380|connect = 127.0.0.1:%d|' "
                    "%s %s > %s/stunnel.conf",
                    dir, local_port, tls_port,
                    /* only root can change user; stunnel4 must read the dir */
                    geteuid() == 0 ? "" : "-e '/^set[ug]id =/d'", src, dir),
                 0);
    snprintf(conf, sizeof conf, "%s/stunnel.conf", dir);
    snprintf(log, sizeof log, "%s/stunnel.log", dir);
    char *argv[] = {STUNNEL, conf, NULL};
    cr_assert_eq(harness_spawn(&stunnel, argv, log), 0);
    for (int i = 0; i < 200; i++) {
        if (ping_tcp(local_port))
            return;
        usleep(50000);
    }
    size_t len;
    char *text = harness_read_file(log, &len);
    cr_assert_fail("no PONG through stunnel:\n%s", text ? text : "");
}

static int count_events(int api_port)
{
    char *body = NULL;
    harness_http(api_port, "GET", "/api/v1/stats/aggregate?site_id=example.com&period=day&metrics=events",
                 "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &body, NULL);
    const char *p = body ? strstr(body, "\"events\": {\"value\": ") : NULL;
    int n = p ? atoi(p + strlen("\"events\": {\"value\": ")) : -1;
    free(body);
    return n;
}

Test(tunnel, events_cross_a_stunnel_to_redis_tls_and_are_counted, .fini = teardown,
     .timeout = 180)
{
    if (access(STUNNEL, X_OK) != 0)
        cr_skip_test("stunnel4 is not installed (scripts/deps.sh test installs it)");
    dir = harness_tmpdir();
    cr_assert_not_null(dir);
    make_certificates();
    int tls_port = harness_free_port(), local_port = harness_free_port();
    start_redis_tls(tls_port);

    /* Redis speaks TLS only, and only to clients with a certificate. */
    cr_expect_not(ping_tcp(tls_port), "a plaintext client got PONG on the TLS port");
    cr_expect_neq(sh("redis-cli --tls --cacert %s/tls/ca.crt -h 127.0.0.1 -p %d ping | grep -q PONG",
                     dir, tls_port),
                  0, "a TLS client without a certificate got PONG");
    cr_expect_eq(sh("redis-cli --tls --cacert %s/tls/ca.crt --cert %s/tls/client.crt --key "
                    "%s/tls/client.key -h 127.0.0.1 -p %d ping | grep -q PONG",
                    dir, dir, dir, tls_port),
                 0, "a TLS client with a certificate got no PONG");

    start_stunnel(local_port, tls_port);

    /* The daemons know only the tunnel's plain end. */
    char rarg[64], listen[64], alisten[64], spool[600], log[600], alog[600];
    int port = harness_free_port(), api_port = harness_free_port();
    snprintf(rarg, sizeof rarg, "--redis=127.0.0.1:%d", local_port);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(alisten, sizeof alisten, "--api_listen=127.0.0.1:%d", api_port);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", dir);
    snprintf(log, sizeof log, "%s/collector.log", dir);
    snprintf(alog, sizeof alog, "%s/aggregator.log", dir);
    char *cargv[] = {"veil-collector", listen, rarg, spool, "--threads=2", "--sites=example.com",
                     "--trusted_proxies=127.0.0.1", NULL};
    cr_assert_eq(harness_spawn(&collector, cargv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    char *aargv[] = {"veil-aggregator", rarg, alisten, "--api_token=" TOKEN, "--k_anonymity=1",
                     "--block_ms=50", NULL};
    cr_assert_eq(harness_spawn(&aggregator, aargv, alog), 0);
    cr_assert_eq(harness_wait_http(api_port, "/healthz", 15000), 0);

    enum { EVENTS = 40 };
    for (int i = 0; i < EVENTS; i++) {
        char body[256], headers[512];
        snprintf(body, sizeof body,
                 "{\"n\":\"pageview\",\"u\":\"https://example.com/p%d\",\"d\":\"example.com\","
                 "\"w\":1280}",
                 i);
        snprintf(headers, sizeof headers,
                 "Content-Type: text/plain\r\nX-Forwarded-For: 198.51.100.%d\r\nUser-Agent: %s\r\n",
                 i + 1, UA_FIREFOX);
        cr_assert_eq(harness_http(port, "POST", "/api/event", headers, body, strlen(body), NULL,
                                  NULL),
                     202);
    }
    int counted = -1;
    for (int i = 0; i < 500 && counted != EVENTS; i++) {
        counted = count_events(api_port);
        if (counted != EVENTS)
            usleep(20000);
    }
    cr_expect_eq(counted, EVENTS, "the stats API counted %d of %d events sent through the tunnel",
                 counted, EVENTS);
    cr_expect_eq(harness_stop(&collector), 0, "collector exit status");
    cr_expect_eq(harness_stop(&aggregator), 0, "aggregator exit status");
}
