/* test_it_run.c - first contact: `make run`'s script (scripts/run.sh) and
 * the README's hand-sent event, against the real binaries and Redis.
 *
 * run.sh is started in a fresh state directory (VEIL_VAR) on free ports; the
 * README's curl example (section "Sending events by hand") is read from
 * README.md and run with the port swapped, and must be counted by the stats
 * API. A port in use must make run.sh exit non-zero without its banner. The
 * collector must say why an event is not counted: an info log line always,
 * the X-Veil-Dropped header only with drop_header on. The README's GeoIP
 * database is not needed: VEIL_GEO_DB points at the test fixture. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* Start scripts/run.sh with its knobs; output in dir/run.out. */
static void start_run(struct harness_proc *p, const char *dir, int port, int api_port,
                      const char *extra_env)
{
    char var[400], geo[400], fixture[400], build[400], script[400], out[400], v[32];
    snprintf(var, sizeof var, "%s/var", dir);
    setenv("VEIL_VAR", var, 1);
    snprintf(v, sizeof v, "%d", port);
    setenv("VEIL_PORT", v, 1);
    snprintf(v, sizeof v, "%d", api_port);
    setenv("VEIL_API_PORT", v, 1);
    snprintf(geo, sizeof geo, "%s", harness_build_path("fixtures/geo-test.mmdb", fixture,
                                                       sizeof fixture));
    setenv("VEIL_GEO_DB", geo, 1);
    setenv("BUILD", harness_build_path("", build, sizeof build), 1);
    if (extra_env) {
        char kv[200];
        snprintf(kv, sizeof kv, "%s", extra_env);
        char *eq = strchr(kv, '=');
        cr_assert_not_null(eq);
        *eq = '\0';
        setenv(kv, eq + 1, 1);
    }
    snprintf(out, sizeof out, "%s/run.out", dir);
    harness_root_path("scripts/run.sh", script, sizeof script);
    char *argv[] = {"/bin/sh", script, NULL};
    cr_assert_eq(harness_spawn(p, argv, out), 0);
}

/* Wait until run.out shows `mark` or the script exits; true when shown. */
static bool wait_output(struct harness_proc *p, const char *dir, const char *mark, int ms,
                        int *exit_status)
{
    char out[400];
    snprintf(out, sizeof out, "%s/run.out", dir);
    for (int waited = 0; waited < ms; waited += 50) {
        size_t len = 0;
        char *text = harness_read_file(out, &len);
        bool shown = text && strstr(text, mark);
        free(text);
        if (shown)
            return true;
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = -1;
            *exit_status = status;
            return false;
        }
        sleep_ms(50);
    }
    return false;
}

/* The README's example: the sh block of "## Sending events by hand". */
static char *readme_example(int port)
{
    char path[400];
    size_t len;
    char *readme = harness_read_file(harness_root_path("README.md", path, sizeof path), &len);
    cr_assert_not_null(readme);
    char *sec = strstr(readme, "## Sending events by hand");
    cr_assert_not_null(sec, "README has no 'Sending events by hand' section");
    char *start = strstr(sec, "```sh\n");
    cr_assert_not_null(start);
    start += 6;
    char *end = strstr(start, "```");
    cr_assert_not_null(end);
    *end = '\0';
    char *at = strstr(start, "127.0.0.1:8080");
    cr_assert_not_null(at, "the README example does not send to 127.0.0.1:8080");
    char *cmd = malloc(strlen(start) + 64);
    *at = '\0';
    sprintf(cmd, "%s127.0.0.1:%d%s", start, port, at + strlen("127.0.0.1:8080"));
    free(readme);
    return cmd;
}

static long long stat_value(int api_port, const char *token, const char *metric)
{
    char headers[200], *body = NULL;
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    int code = harness_http(api_port, "GET",
                            "/api/v1/stats/aggregate?site_id=example.com&period=day"
                            "&metrics=visitors,pageviews",
                            headers, NULL, 0, &body, NULL);
    long long v = -1;
    char key[64];
    snprintf(key, sizeof key, "\"%s\": {\"value\": ", metric);
    char *at = code == 200 && body ? strstr(body, key) : NULL;
    if (at)
        v = atoll(at + strlen(key));
    free(body);
    return v;
}

/* The pid of a process whose command line holds `secret`, or 0. */
static int cmdline_holding(const char *secret)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        size_t len;
        char *cmd = harness_read_file(path, &len);
        if (cmd && harness_contains(cmd, len, secret, strlen(secret)))
            found = pid;
        free(cmd);
    }
    closedir(d);
    return found;
}

Test(run, readme_example_is_counted_and_token_stays_off_the_command_line, .timeout = 120)
{
    char *dir = harness_tmpdir();
    int port = harness_free_port(), api_port = harness_free_port();
    while (api_port == port)
        api_port = harness_free_port();
    struct harness_proc run;
    start_run(&run, dir, port, api_port, NULL);
    int status = 0;
    cr_assert(wait_output(&run, dir, "Veil is running", 60000, &status),
              "run.sh did not print its banner (exit status %d)", status);

    /* the README's example, verbatim apart from the port */
    char *cmd = readme_example(port);
    char *quiet = malloc(strlen(cmd) + 32);
    sprintf(quiet, "( %s ) 2>/dev/null", cmd);
    FILE *f = popen(quiet, "r");
    free(quiet);
    cr_assert_not_null(f);
    char line[512];
    bool accepted = false;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "HTTP/1.1 202", 12) == 0)
            accepted = true;
    cr_expect_eq(pclose(f), 0);
    cr_expect(accepted, "the README example was not answered 202");
    free(cmd);

    /* counted: the aggregator rolls it up; the token comes from var/ */
    char path[400];
    size_t len;
    snprintf(path, sizeof path, "%s/var/api-token", dir);
    char *token = harness_read_file(path, &len);
    cr_assert(token && len >= 32);
    struct stat st;
    cr_expect_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 077, 0, "var/api-token is readable by others");
    snprintf(path, sizeof path, "%s/var/veil-aggregator.conf", dir);
    cr_expect_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 077, 0, "the aggregator's config (with the token) is readable by others");
    long long pv = -1;
    for (int i = 0; i < 200 && (pv = stat_value(api_port, token, "pageviews")) != 1; i++)
        sleep_ms(50);
    cr_expect_eq(pv, 1, "the README example was not counted (pageviews %lld)", pv);

    /* no process shows the token in its command line */
    cr_expect_eq(cmdline_holding(token), 0, "process %d has the API token in its command line",
                 cmdline_holding(token));
    free(token);

    cr_expect_eq(harness_stop(&run), 0, "run.sh did not exit 0 on SIGTERM");
    harness_rmdir(dir);
    free(dir);
}

Test(run, a_port_in_use_is_a_clear_error_and_no_banner, .timeout = 60)
{
    char *dir = harness_tmpdir();
    int port = harness_free_port(), taken = harness_free_port();
    while (taken == port)
        taken = harness_free_port();
    /* someone else listens on the stats API's port */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)taken)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);

    struct harness_proc run;
    start_run(&run, dir, port, taken, NULL);
    int status = -1;
    cr_expect_not(wait_output(&run, dir, "Veil is running", 30000, &status),
                  "run.sh printed its banner with its API port taken");
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "run.sh did not fail (status %d)",
              status);
    char out[400];
    size_t len;
    snprintf(out, sizeof out, "%s/run.out", dir);
    char *text = harness_read_file(out, &len);
    char want[64];
    snprintf(want, sizeof want, "port %d is in use", taken);
    cr_expect(text && strstr(text, want), "no clear message: %s", text ? text : "");
    free(text);
    if (run.pid > 0)
        harness_kill(&run);
    close(fd);
    harness_rmdir(dir);
    free(dir);
}

/* A collector with `drop_header`; one bot event; the answer's headers. */
static char *bot_answer(const char *dir, int port, const char *drop_header, const char *extra)
{
    char listen[64], redis[400], geo[400], fixture[400], log[400], dh[64];
    static int calls;
    char rdir[400];
    snprintf(rdir, sizeof rdir, "%s/redis%d", dir, ++calls);
    cr_assert_eq(mkdir(rdir, 0700), 0);
    struct harness_redis r;
    cr_assert_eq(harness_redis_start(&r, rdir, false), 0);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(redis, sizeof redis, "--redis=unix:%s", r.socket);
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(log, sizeof log, "%s/collector.log", dir);
    snprintf(dh, sizeof dh, "--drop_header=%s", drop_header);
    char *argv[] = {"veil-collector", listen, redis, geo, "--spool_dir=", "--threads=1",
                    "--sites=example.com", dh, NULL};
    struct harness_proc c;
    cr_assert_eq(harness_spawn(&c, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    static const char body[] = "{\"n\":\"pageview\",\"u\":\"https://example.com/x\",\"d\":\"example.com\"}";
    char headers[300];
    snprintf(headers, sizeof headers, "Content-Type: text/plain\r\n%s", extra);
    char *head = NULL;
    int code = harness_http(port, "POST", "/api/event", headers, body, sizeof body - 1, NULL,
                            &head);
    cr_expect_eq(code, 202);
    cr_expect_eq(harness_stop(&c), 0);
    harness_redis_stop(&r);
    return head;
}

Test(run, dropped_events_are_explained_in_the_log_and_on_request_in_a_header, .timeout = 60)
{
    char *dir = harness_tmpdir();
    /* default: no header, but an info line naming the reason (never the UA) */
    char *head = bot_answer(dir, harness_free_port(), "no",
                            "User-Agent: curl/7.88.1 secret-ua-marker\r\n");
    cr_assert_not_null(head);
    cr_expect_null(strcasestr(head, "X-Veil-Dropped"), "header sent while drop_header is off");
    free(head);
    char path[400];
    size_t len;
    snprintf(path, sizeof path, "%s/collector.log", dir);
    char *log = harness_read_file(path, &len);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "INFO event not counted: its User-Agent is empty or looks like a bot"),
              "no info line says why: %s", log);
    cr_expect_null(strstr(log, "secret-ua-marker"), "the log holds the User-Agent");
    free(log);

    /* drop_header yes: the answer says bot, dnt */
    head = bot_answer(dir, harness_free_port(), "yes", "");
    cr_assert_not_null(head);
    cr_expect(strcasestr(head, "X-Veil-Dropped: bot\r\n"), "no bot header: %s", head);
    free(head);
    head = bot_answer(dir, harness_free_port(), "yes", "User-Agent: " UA_FIREFOX "\r\nDNT: 1\r\n");
    cr_assert_not_null(head);
    cr_expect(strcasestr(head, "X-Veil-Dropped: dnt\r\n"), "no dnt header: %s", head);
    free(head);
    /* a recorded event carries no such header */
    head = bot_answer(dir, harness_free_port(), "yes", "User-Agent: " UA_FIREFOX "\r\n");
    cr_assert_not_null(head);
    cr_expect_null(strcasestr(head, "X-Veil-Dropped"), "a recorded event says dropped");
    free(head);
    harness_rmdir(dir);
    free(dir);
}
