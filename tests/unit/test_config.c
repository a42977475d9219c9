/* test_config.c - the table-driven config engine and the collector table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector_config.h"
#include "config.h"
#include "util.h"

struct demo {
    char *name;
    long long count;
    double ratio;
    bool flag;
    int mode;
    struct cfg_list items;
    char *secret;
};

#define D(f) offsetof(struct demo, f)
static const struct cfg_option demo_options[] = {
    {"name", CFG_STRING, D(name), "veil", 0, 16, NULL, "a name", NULL, false},
    {"count", CFG_INT, D(count), "5", 1, 10, NULL, "a count", NULL, false},
    {"ratio", CFG_DOUBLE, D(ratio), "0.5", 0, 2, NULL, "a ratio", NULL, false},
    {"flag", CFG_BOOL, D(flag), "yes", 0, 0, NULL, "a flag", "privacy text", false},
    {"mode", CFG_ENUM, D(mode), "b", 0, 0, CFG_ENUM_NAMES("a", "b", "c"), "a mode", NULL, false},
    {"items", CFG_LIST, D(items), "x, y", 0, 3, NULL, "items", NULL, false},
    {"secret", CFG_STRING, D(secret), "", 0, 64, NULL, "a secret", NULL, true},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/veil-config-test.XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(config, defaults)
{
    struct demo d = {0};
    char err[256];
    cr_assert_eq(cfg_defaults(demo_options, &d, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(d.name, "veil");
    cr_expect_eq(d.count, 5);
    cr_expect_float_eq(d.ratio, 0.5, 1e-9);
    cr_expect(d.flag);
    cr_expect_eq(d.mode, 1);
    cr_assert_eq(d.items.n, 2);
    cr_expect_str_eq(d.items.items[0], "x");
    cr_expect_str_eq(d.items.items[1], "y");
    cfg_free(demo_options, &d);
}

Test(config, every_bad_value_is_refused_with_its_name)
{
    struct demo d = {0};
    char err[256];
    cfg_defaults(demo_options, &d, err, sizeof err);
    static const char *const bad[][2] = {
        {"count", "0"},     {"count", "11"},      {"count", "3x"},  {"count", ""},
        {"ratio", "2.5"},   {"ratio", "nan"},     {"ratio", "1e"},  {"flag", "maybe"},
        {"mode", "d"},      {"items", "a,b,c,d"}, {"name", "01234567890123456"},
        {"name", "\xff"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_expect_eq(cfg_set(demo_options, &d, bad[i][0], bad[i][1], err, sizeof err), -1,
                     "%s=%s accepted", bad[i][0], bad[i][1]);
        cr_expect(strncmp(err, bad[i][0], strlen(bad[i][0])) == 0, "reason: %s", err);
    }
    cr_expect_eq(cfg_set(demo_options, &d, "nope", "1", err, sizeof err), -1);
    cr_expect(strstr(err, "unknown directive") != NULL);
    /* the old values survive a refused set */
    cr_expect_eq(d.count, 5);
    cr_expect_eq(d.items.n, 2);
    cfg_free(demo_options, &d);
}

Test(config, file_then_arguments_override)
{
    char *path = write_temp("# a comment\n\n  name \"a b#c\"  # trailing\ncount 7\n"
                            "flag off\nitems one,two three\n");
    struct demo d = {0};
    char err[256], arg[300];
    cfg_defaults(demo_options, &d, err, sizeof err);
    snprintf(arg, sizeof arg, "--config=%s", path);
    char *argv[] = {"prog", "--count=9", arg, "--mode", "c", "--flag", NULL};
    enum cfg_action action;
    cr_assert_eq(cfg_parse_args(demo_options, &d, 6, argv, &action, err, sizeof err), 0, "%s",
                 err);
    cr_expect_eq(action, CFG_RUN);
    cr_expect_str_eq(d.name, "a b#c");
    cr_expect_eq(d.count, 9, "the command line wins over the file");
    cr_expect_eq(d.mode, 2);
    cr_expect(d.flag, "a bare boolean option means yes");
    cr_assert_eq(d.items.n, 3);
    cr_expect_str_eq(d.items.items[2], "three");
    cfg_free(demo_options, &d);
    unlink(path);
    free(path);
}

Test(config, file_errors_name_file_and_line)
{
    static const char *const cases[][2] = {
        {"count 5\ncount 50\n", ":2: count"},
        {"name ok\nbogus 1\n", ":2: unknown directive 'bogus'"},
        {"name \"open\n", ":1: unterminated quote"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *path = write_temp(cases[i][0]);
        struct demo d = {0};
        char err[256];
        cfg_defaults(demo_options, &d, err, sizeof err);
        cr_expect_eq(cfg_load_file(demo_options, &d, path, err, sizeof err), -1);
        cr_expect(strstr(err, path) == err && strstr(err, cases[i][1]) != NULL, "got: %s", err);
        cfg_free(demo_options, &d);
        unlink(path);
        free(path);
    }
    struct demo d = {0};
    char err[256];
    cfg_defaults(demo_options, &d, err, sizeof err);
    cr_expect_eq(cfg_load_file(demo_options, &d, "/nonexistent/veil.conf", err, sizeof err), -1);
    cr_expect(strstr(err, "No such file") != NULL);
    cfg_free(demo_options, &d);
}

Test(config, argument_errors)
{
    struct demo d = {0};
    char err[256];
    enum cfg_action action;
    cfg_defaults(demo_options, &d, err, sizeof err);
    char *a1[] = {"prog", "--what=1", NULL};
    cr_expect_eq(cfg_parse_args(demo_options, &d, 2, a1, &action, err, sizeof err), -1);
    cr_expect(strstr(err, "--what") != NULL);
    char *a2[] = {"prog", "stray", NULL};
    cr_expect_eq(cfg_parse_args(demo_options, &d, 2, a2, &action, err, sizeof err), -1);
    char *a3[] = {"prog", "--count", NULL};
    cr_expect_eq(cfg_parse_args(demo_options, &d, 2, a3, &action, err, sizeof err), -1);
    char *a4[] = {"prog", "--help", NULL};
    cr_expect_eq(cfg_parse_args(demo_options, &d, 2, a4, &action, err, sizeof err), 0);
    cr_expect_eq(action, CFG_HELP);
    cfg_free(demo_options, &d);
}

Test(config, sample_round_trips_and_secrets_stay_hidden)
{
    char path[] = "/tmp/veil-sample.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    cfg_print_sample(demo_options, f, "demo");
    fclose(f);
    struct demo d = {0};
    char err[256];
    cfg_defaults(demo_options, &d, err, sizeof err);
    cfg_set(demo_options, &d, "count", "2", err, sizeof err);
    cr_assert_eq(cfg_load_file(demo_options, &d, path, err, sizeof err), 0, "%s", err);
    cr_expect_eq(d.count, 5, "the sample sets every default");
    cfg_set(demo_options, &d, "secret", "hunter2", err, sizeof err);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cfg_print_values(demo_options, &d, m);
    fclose(m);
    cr_expect(strstr(text, "hunter2") == NULL);
    free(text);
    cfg_free(demo_options, &d);
    unlink(path);
}

/* deploy/veil.conf is generated from the table: it must not drift. */
Test(config, deploy_sample_matches_the_collector_table)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    cfg_print_sample(collector_options, m,
                     "veil-collector configuration (generated by "
                     "'veil-collector --sample-config')");
    fclose(m);
    const char *root = getenv("VEIL_ROOT");
    char path[512];
    snprintf(path, sizeof path, "%s/deploy/veil.conf", root ? root : ".");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "deploy/veil.conf missing (make sample-config)");
    char *file = malloc(len + 2);
    size_t n = fread(file, 1, len + 1, f);
    fclose(f);
    cr_expect(n == len && memcmp(file, text, len) == 0,
              "deploy/veil.conf is stale: run 'make sample-config'");
    free(file);
    free(text);
}

Test(config, collector_defaults_are_private)
{
    struct collector_config c;
    char err[256];
    enum cfg_action action;
    char *argv[] = {"veil-collector", NULL};
    cr_assert_eq(collector_config_load(&c, 1, argv, &action, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.ip_keep, IP_KEEP_NONE);
    cr_expect_eq(c.ipv4_prefix, 24);
    cr_expect_eq(c.ipv6_prefix, 48);
    cr_expect(c.honor_dnt && c.honor_gpc && c.strip_query);
    cr_expect_eq(c.trusted_proxies.n, 0);
    collector_config_free(&c);
    char *bad[] = {"veil-collector", "--listen=nowhere", NULL};
    cr_expect_eq(collector_config_load(&c, 2, bad, &action, err, sizeof err), -1);
    cr_expect(strstr(err, "listen") != NULL);
    collector_config_free(&c);
}

Test(config, compat_directives_are_checked)
{
    struct collector_config c;
    char err[256];
    enum cfg_action action;
    char *good[] = {"veil-collector", "--umami_website_ids=94db1cb1-74f4-4a40-ad6c-962362670409=example.com",
                    "--matomo_site_ids=1=example.com,2=blog.example", "--umami_path=/u/send", NULL};
    cr_assert_eq(collector_config_load(&c, 4, good, &action, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.umami_website_ids.n, 1);
    cr_expect_eq(c.matomo_site_ids.n, 2);
    cr_expect_str_eq(c.umami_path, "/u/send");
    collector_config_free(&c);
    static const char *const bad[][2] = {
        {"--matomo_site_ids=1", "matomo_site_ids: item 1 is not <id>=<site>"},
        {"--matomo_site_ids==example.com", "matomo_site_ids: item 1 is not <id>=<site>"},
        {"--umami_website_ids=abc=", "umami_website_ids: item 1 is not <id>=<site>"},
        {"--umami_path=api/send", "umami_path: must start with / and hold no query"},
        {"--umami_path=/matomo.php", "umami_path: /matomo.php is another endpoint"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char arg[128];
        cr_assert(str_copy(arg, sizeof arg, bad[i][0], strlen(bad[i][0])));
        char *argv[] = {"veil-collector", arg, NULL};
        cr_expect_eq(collector_config_load(&c, 2, argv, &action, err, sizeof err), -1, "%s",
                     bad[i][0]);
        cr_expect_str_eq(err, bad[i][1]);
        collector_config_free(&c);
    }
}

Test(config, collector_redis_takes_one_server_or_cluster_seeds)
{
    struct collector_config c;
    char err[256];
    enum cfg_action action;
    static const char *const good[] = {"--redis=127.0.0.1:6379", "--redis=unix:/run/redis.sock",
                                       "--redis=10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        char arg[128];
        cr_assert(str_copy(arg, sizeof arg, good[i], strlen(good[i])));
        char *argv[] = {"veil-collector", arg, "--wait_replicas=1", NULL};
        cr_expect_eq(collector_config_load(&c, 3, argv, &action, err, sizeof err), 0, "%s: %s",
                     good[i], err);
        cr_expect_eq(c.wait_replicas, 1);
        collector_config_free(&c);
    }
    char *defaults[] = {"veil-collector", NULL};
    cr_assert_eq(collector_config_load(&c, 1, defaults, &action, err, sizeof err), 0, "%s", err);
    cr_expect_eq(c.wait_replicas, 0, "WAIT is opt-in");
    cr_expect_eq(c.wait_timeout_ms, 1000);
    collector_config_free(&c);
    static const char *const bad[] = {"--redis=10.0.0.1:6379,", "--redis=10.0.0.1", "--redis=",
                                      "--redis=a:1,b:2 ,c:3", "--wait_replicas=17",
                                      "--wait_timeout_ms=0"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char arg[128];
        cr_assert(str_copy(arg, sizeof arg, bad[i], strlen(bad[i])));
        char *argv[] = {"veil-collector", arg, NULL};
        cr_expect_eq(collector_config_load(&c, 2, argv, &action, err, sizeof err), -1, "%s",
                     bad[i]);
        cr_expect(strstr(err, bad[i][2] == 'r' ? "redis" : "wait_") != NULL, "%s: %s", bad[i],
                  err);
        collector_config_free(&c);
    }
}
