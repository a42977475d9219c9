/* test_it_reload.c - the aggregator's SIGHUP reload and both daemons'
 * --check-config, against the real binaries and a real redis-server.
 *
 * A reload must swap the stats API's tokens and dashboard files without a
 * restart and say so in the log; a broken file must leave the running
 * configuration in place; --check-config must refuse what start-up
 * refuses (a malformed api_tokens entry, an unusable spool_dir). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Two tokens; the configs carry their SHA-256 (from sha256sum). */
#define TOKEN_A "token-a"
#define TOKEN_B "token-b"

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void hash_of(const char *token, char hex[65])
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "printf %%s '%s' | sha256sum", token);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    cr_assert_not_null(fgets(hex, 65, p));
    pclose(p);
    hex[64] = '\0';
}

static void write_config(const char *path, const char *redis_sock, int port, const char *token,
                         const char *dashboard)
{
    char hex[65], text[2048];
    hash_of(token, hex);
    snprintf(text, sizeof text,
             "redis unix:%s\napi_listen 127.0.0.1:%d\napi_tokens example.com=%s\n"
             "dashboard_dir %s\n",
             redis_sock, port, hex, dashboard);
    write_file(path, text);
}

static int get_with(int port, const char *path, const char *token, char **body)
{
    char headers[200];
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    return harness_http(port, "GET", path, headers, NULL, 0, body, NULL);
}

#define AGGREGATE "/api/v1/stats/aggregate?site_id=example.com&period=day&metrics=pageviews"

/* Wait until `token` gets `want` from the aggregate endpoint. */
static bool wait_status(int port, const char *token, int want)
{
    for (int i = 0; i < 200; i++) {
        if (get_with(port, AGGREGATE, token, NULL) == want)
            return true;
        sleep_ms(50);
    }
    return false;
}

static bool log_has(const char *log, const char *needle)
{
    for (int i = 0; i < 200; i++) {
        size_t len;
        char *text = harness_read_file(log, &len);
        bool has = text && strstr(text, needle);
        free(text);
        if (has)
            return true;
        sleep_ms(50);
    }
    return false;
}

Test(reload, sighup_swaps_tokens_and_dashboard_and_keeps_running, .timeout = 90)
{
    char *dir = harness_tmpdir();
    struct harness_redis redis;
    cr_assert_eq(harness_redis_start(&redis, dir, false), 0);
    char conf[400], log[400], dash1[400], dash2[400], path[500];
    snprintf(conf, sizeof conf, "%s/agg.conf", dir);
    snprintf(log, sizeof log, "%s/agg.log", dir);
    snprintf(dash1, sizeof dash1, "%s/dash1", dir);
    snprintf(dash2, sizeof dash2, "%s/dash2", dir);
    cr_assert_eq(mkdir(dash1, 0700), 0);
    cr_assert_eq(mkdir(dash2, 0700), 0);
    snprintf(path, sizeof path, "%s/index.html", dash1);
    write_file(path, "<p>first dashboard</p>\n");
    snprintf(path, sizeof path, "%s/index.html", dash2);
    write_file(path, "<p>second dashboard</p>\n");
    int port = harness_free_port();
    write_config(conf, redis.socket, port, TOKEN_A, dash1);

    struct harness_proc agg;
    char *argv[] = {"veil-aggregator", "-c", conf, NULL};
    cr_assert_eq(harness_spawn(&agg, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "aggregator did not start");
    cr_expect_eq(get_with(port, AGGREGATE, TOKEN_A, NULL), 200);
    cr_expect_eq(get_with(port, AGGREGATE, TOKEN_B, NULL), 401);
    char *body = NULL;
    cr_expect_eq(harness_http(port, "GET", "/", NULL, NULL, 0, &body, NULL), 200);
    cr_expect(body && strstr(body, "first dashboard"));
    free(body);

    /* a new token and dashboard: live after SIGHUP, no restart */
    write_config(conf, redis.socket, port, TOKEN_B, dash2);
    cr_assert_eq(kill(agg.pid, SIGHUP), 0);
    cr_expect(wait_status(port, TOKEN_B, 200), "the new token is not accepted after SIGHUP");
    cr_expect_eq(get_with(port, AGGREGATE, TOKEN_A, NULL), 401, "the old token still works");
    body = NULL;
    cr_expect_eq(harness_http(port, "GET", "/", NULL, NULL, 0, &body, NULL), 200);
    cr_expect(body && strstr(body, "second dashboard"), "dashboard_dir was not reloaded");
    free(body);
    cr_expect(log_has(log, "configuration reloaded"), "the reload is not logged");
    cr_expect_eq(waitpid(agg.pid, NULL, WNOHANG), 0, "SIGHUP stopped the aggregator");

    /* a broken file: logged, the running configuration stays */
    write_file(conf, "api_tokens example.com=not-a-hash\n");
    cr_assert_eq(kill(agg.pid, SIGHUP), 0);
    cr_expect(log_has(log, "reload failed, keeping the running configuration: api_tokens"),
              "a broken reload is not logged");
    cr_expect_eq(get_with(port, AGGREGATE, TOKEN_B, NULL), 200, "a broken reload changed grants");

    /* a restart-only directive: said so */
    write_config(conf, redis.socket, port + 1 == 65536 ? port - 1 : port + 1, TOKEN_B, dash2);
    cr_assert_eq(kill(agg.pid, SIGHUP), 0);
    cr_expect(log_has(log, "reload: api_listen changed; it takes effect after a restart"));

    size_t len;
    char *text = harness_read_file(log, &len);
    cr_expect(text && !strstr(text, TOKEN_A) && !strstr(text, TOKEN_B), "a token is in the log");
    free(text);
    cr_expect_eq(harness_stop(&agg), 0, "aggregator did not exit 0 on SIGTERM after reloads");
    harness_redis_stop(&redis);
    harness_rmdir(dir);
    free(dir);
}

/* Run a binary to completion; its exit code, its output in *out. */
static int run(char *const argv[], const char *dir, char **out)
{
    char log[400];
    static int n;
    snprintf(log, sizeof log, "%s/run%d.log", dir, ++n);
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    cr_assert_eq(waitpid(p.pid, &status, 0), p.pid);
    size_t len;
    *out = harness_read_file(log, &len);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(check_config, refuses_what_start_up_refuses, .timeout = 60)
{
    char *dir = harness_tmpdir();
    char *out = NULL;

    char *bad_tokens[] = {"veil-aggregator", "--check-config", "--api_tokens=example.com=abc",
                          NULL};
    cr_expect_eq(run(bad_tokens, dir, &out), 2, "--check-config passed a malformed api_tokens");
    cr_expect(out && strstr(out, "api_tokens: entry 1"), "no reason: %s", out ? out : "");
    free(out);

    char hex[65], good[120];
    hash_of(TOKEN_A, hex);
    snprintf(good, sizeof good, "--api_tokens=example.com=%s", hex);
    char *good_tokens[] = {"veil-aggregator", "--check-config", good, NULL};
    cr_expect_eq(run(good_tokens, dir, &out), 0, "%s", out ? out : "");
    free(out);

    /* a spool_dir below a regular file can never be created */
    char file[400], spool[500];
    snprintf(file, sizeof file, "%s/plain-file", dir);
    write_file(file, "x\n");
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", file);
    char *bad_spool[] = {"veil-collector", "--check-config", spool, NULL};
    cr_expect_neq(run(bad_spool, dir, &out), 0, "--check-config passed an impossible spool_dir");
    cr_expect(out && strstr(out, "is not a directory"), "no reason: %s", out ? out : "");
    free(out);
    harness_rmdir(dir);
    free(dir);
}
