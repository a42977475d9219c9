/* test_it_admin.c - veil-admin against a real redis-server, the real
 * collector and the real aggregator: the live registry (a site added is
 * accepted without a restart, removed is refused again), tokens (work at
 * once, revoked stop), export and purge of real rolled-up counts,
 * retention apply, salt status, audit (clean on the pipeline's own data,
 * each kind of planted personal data found), config explain, and --help
 * and exit codes of every command. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tzfile.h"
#include "util.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

struct stack {
    char *dir;
    struct harness_redis redis;
    struct harness_proc coll, agg;
    int cport, aport;
    redisContext *rc;
    char redis_arg[400];
};

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

static void stack_start(struct stack *s)
{
    memset(s, 0, sizeof *s);
    s->dir = harness_tmpdir();
    cr_assert_eq(harness_redis_start(&s->redis, s->dir, false), 0);
    s->rc = redisConnectUnix(s->redis.socket);
    cr_assert(s->rc && !s->rc->err);
    s->cport = harness_free_port();
    do
        s->aport = harness_free_port();
    while (s->aport == s->cport);
    char listen[64], api[64], geo[400], fixture[400], clog[400], alog[400];
    snprintf(s->redis_arg, sizeof s->redis_arg, "--redis=unix:%s", s->redis.socket);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", s->cport);
    snprintf(api, sizeof api, "--api_listen=127.0.0.1:%d", s->aport);
    snprintf(geo, sizeof geo, "--geo_db=%s",
             harness_build_path("fixtures/geo-test.mmdb", fixture, sizeof fixture));
    snprintf(clog, sizeof clog, "%s/collector.log", s->dir);
    snprintf(alog, sizeof alog, "%s/aggregator.log", s->dir);
    /* a config-file site, so the collector is not in open mode */
    char *cargv[] = {"veil-collector", listen, s->redis_arg, geo, "--spool_dir=", "--threads=1",
                     "--sites=config.example", "--registry_poll_ms=100",
                     "--trusted_proxies=127.0.0.1", NULL};
    char *aargv[] = {"veil-aggregator", s->redis_arg, api, "--block_ms=20", NULL};
    cr_assert_eq(harness_spawn(&s->coll, cargv, clog), 0);
    cr_assert_eq(harness_spawn(&s->agg, aargv, alog), 0);
    cr_assert_eq(harness_wait_http(s->cport, "/healthz", 15000), 0);
    cr_assert_eq(harness_wait_http(s->aport, "/healthz", 15000), 0);
}

static void stack_stop(struct stack *s)
{
    cr_expect_eq(harness_stop(&s->coll), 0);
    cr_expect_eq(harness_stop(&s->agg), 0);
    redisFree(s->rc);
    harness_redis_stop(&s->redis);
    harness_rmdir(s->dir);
    free(s->dir);
}

/* Run veil-admin with --redis and the words given; exit code, output. */
static int admin(struct stack *s, char **out, ...)
{
    char *argv[32] = {"veil-admin", s ? s->redis_arg : "--redis=127.0.0.1:1"};
    int n = 2;
    va_list ap;
    va_start(ap, out);
    for (char *w; (w = va_arg(ap, char *)) && n < 31;)
        argv[n++] = w;
    va_end(ap);
    argv[n] = NULL;
    static int runs;
    char log[400], dir_fallback[] = "/tmp";
    snprintf(log, sizeof log, "%s/admin-%d-%d.out", s ? s->dir : dir_fallback, (int)getpid(),
             ++runs);
    struct harness_proc p;
    cr_assert_eq(harness_spawn(&p, argv, log), 0);
    int status;
    cr_assert_eq(waitpid(p.pid, &status, 0), p.pid);
    size_t len;
    char *text = harness_read_file(log, &len);
    if (!s)
        unlink(log);
    if (out)
        *out = text;
    else
        free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The collector's count of events for sites it does not track. */
static long long unknown_sites(struct stack *s)
{
    char *text = NULL;
    harness_http(s->coll.admin_port, "GET", "/metrics", NULL, NULL, 0, &text, NULL);
    const char *at = text ? strstr(text, "\nveil_collector_unknown_site_total ") : NULL;
    long long n = at ? strtoll(at + strlen("\nveil_collector_unknown_site_total "), NULL, 10) : -1;
    free(text);
    return n;
}

/* POST a page view of `site`. Its status, except 404 when the collector
 * did not record it because the site is unknown: it answers those 202 like
 * any other (a 404 would tell anyone which sites it tracks) and counts
 * them in veil_collector_unknown_site_total. */
static int post(struct stack *s, const char *site, const char *path)
{
    char body[300];
    snprintf(body, sizeof body, "{\"n\":\"pageview\",\"u\":\"https://%s%s\",\"d\":\"%s\"}", site,
             path, site);
    long long before = unknown_sites(s);
    int code = harness_http(s->cport, "POST", "/api/event",
                            "Content-Type: text/plain\r\nUser-Agent: " UA_FIREFOX
                            "\r\nX-Forwarded-For: 203.0.113.7\r\n",
                            body, strlen(body), NULL, NULL);
    return code == 202 && unknown_sites(s) > before ? 404 : code;
}

/* Poll until post() answers `want` (the registry is read every 100 ms). */
static bool wait_post(struct stack *s, const char *site, int want)
{
    for (int i = 0; i < 100; i++) {
        if (post(s, site, "/probe") == want)
            return true;
        sleep_ms(50);
    }
    return false;
}

/* The line of 64 hex digits in `out` (stdout and stderr share the log). */
static void token_in(const char *out, char token[80])
{
    token[0] = '\0';
    for (const char *line = out; line && *line;
         line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
        if (strcspn(line, "\n") == 64 && strspn(line, "0123456789abcdef") == 64)
            snprintf(token, 80, "%.64s", line);
}

static long long pageviews(struct stack *s, const char *token, const char *site, int *status)
{
    char path[300], headers[200], *body = NULL;
    snprintf(path, sizeof path, "/api/v1/stats/aggregate?site_id=%s&period=day&metrics=pageviews",
             site);
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", token);
    *status = harness_http(s->aport, "GET", path, headers, NULL, 0, &body, NULL);
    const char *at = body ? strstr(body, "\"pageviews\": {\"value\": ") : NULL;
    long long v = at ? atoll(at + strlen("\"pageviews\": {\"value\": ")) : -1;
    free(body);
    return v;
}

Test(admin, registry_tokens_export_purge_audit_end_to_end, .timeout = 180)
{
    struct stack s;
    stack_start(&s);
    char *out = NULL;

    /* unknown at first; added: accepted within the poll, no restart */
    cr_expect_eq(post(&s, "new.example", "/"), 404);
    cr_assert_eq(admin(&s, NULL, "site", "add", "new.example", "--hostname", "alias.example",
                       "--timezone", "Europe/Paris", "--goal", "event:Signup", "--goal",
                       "page:/blog/*", NULL),
                 0);
    cr_expect(wait_post(&s, "new.example", 202), "an added site is not accepted");
    cr_expect_eq(post(&s, "alias.example", "/from-alias"), 202, "a site's hostname is refused");
    cr_expect_eq(post(&s, "www.new.example", "/from-www"), 202, "www. of a site is refused");
    cr_expect_eq(post(&s, "config.example", "/"), 202, "the config-file site stopped working");
    cr_expect_eq(admin(&s, NULL, "site", "add", "new.example", NULL), 1, "a duplicate add");
    cr_expect_eq(admin(&s, NULL, "site", "add", "x.example", "--timezone", "Nowhere/Atlantis",
                       NULL),
                 2, "a bad time zone was accepted");
    cr_expect_eq(admin(&s, &out, "--json", "site", "show", "new.example", NULL), 0);
    cr_expect(out && strstr(out, "\"Europe/Paris\"") && strstr(out, "\"page:/blog/*\"") &&
                  strstr(out, "\"alias.example\""),
              "%s", out);
    free(out);

    /* a token made now works at once, for its site only; revoked: 401 */
    cr_assert_eq(admin(&s, &out, "token", "create", "--site", "new.example", "--name", "ci",
                       NULL),
                 0);
    char token[80];
    token_in(out, token);
    free(out);
    cr_assert_eq(strlen(token), 64, "token create printed '%s'", token);
    redisReply *r = redisCommand(s.rc, "HGETALL veil:{reg}:tokens");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    cr_expect(strcmp(r->element[0]->str, token) != 0, "the token is stored in plain text");
    freeReplyObject(r);
    cr_expect_eq(admin(&s, &out, "token", "list", NULL), 0);
    cr_expect(out && !strstr(out, token) && strstr(out, "new.example"), "%s", out);
    free(out);

    /* events of both hostnames count under the site id */
    int status;
    long long pv = -1;
    for (int i = 0; i < 200; i++) {
        pv = pageviews(&s, token, "new.example", &status);
        if (status == 200 && pv >= 3)
            break;
        sleep_ms(50);
    }
    cr_expect_eq(status, 200, "a fresh registry token is refused");
    cr_expect_geq(pv, 3, "events of the site, its alias and www. were not counted under it");
    pageviews(&s, token, "config.example", &status);
    cr_expect_eq(status, 403, "a site token reads another site");

    /* an all-sites registry token lists the site with its registry time zone */
    cr_assert_eq(admin(&s, &out, "token", "create", "--all", NULL), 0);
    char all[80];
    token_in(out, all);
    free(out);
    char headers[200], *body = NULL;
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", all);
    cr_expect_eq(harness_http(s.aport, "GET", "/api/v1/sites", headers, NULL, 0, &body, NULL), 200);
    cr_expect(body && strstr(body, "\"new.example\"") && strstr(body, "\"Europe/Paris\""),
              "sites: %s", body ? body : "");
    free(body);

    /* export: the day's real counts, on the site's local day (Europe/Paris:
     * from 23:00 UTC already the next day) */
    char today[11];
    const struct tz_zone *paris = tz_get("Europe/Paris");
    cr_assert(paris, "the system's zone data has Europe/Paris");
    int64_t now = (int64_t)time(NULL);
    utc_day(now + tz_offset(paris, now), today);
    cr_expect_eq(admin(&s, &out, "export", "new.example", "--from", today, "--to", today, NULL),
                 0);
    char want[64];
    snprintf(want, sizeof want, "%s,1,%lld,", today, pv);
    cr_expect(out && strstr(out, "date,visitors,pageviews") && strstr(out, want),
              "export: %s (want %s)", out, want);
    free(out);

    /* the end-to-end data passes the audit */
    cr_expect_eq(admin(&s, &out, "audit", NULL), 0, "audit on the pipeline's data: %s", out);
    free(out);
    /* salts: alive, with an expiry, never shown */
    cr_expect_eq(admin(&s, &out, "--json", "salt", "status", NULL), 0);
    cr_expect(out && strstr(out, "\"period\":\t\"day\"") && strstr(out, "expires_in_s"), "%s",
              out);
    r = redisCommand(s.rc, "KEYS veil:salt:*");
    cr_assert(r && r->elements >= 1);
    redisReply *salt = redisCommand(s.rc, "GET %s", r->element[0]->str);
    cr_expect(salt && salt->len == 32 && !harness_contains(out, strlen(out), salt->str, 8),
              "salt status shows salt bytes");
    freeReplyObject(salt);
    freeReplyObject(r);
    free(out);

    /* purge: the counts are gone, export says zero */
    cr_expect_eq(admin(&s, &out, "purge", "new.example", "--from", today, "--to", today, NULL),
                 0);
    cr_expect(out && strstr(out, "deleted ") && !strstr(out, "deleted 0 "), "%s", out);
    free(out);
    cr_expect_eq(admin(&s, &out, "export", "new.example", "--from", today, "--to", today,
                       "--format", "json", NULL),
                 0);
    cr_expect(out && strstr(out, "\"pageviews\":\t0"), "%s", out);
    free(out);

    cr_expect_eq(admin(&s, NULL, "token", "revoke", "--site", "new.example", NULL), 0);
    pageviews(&s, token, "new.example", &status);
    cr_expect_eq(status, 401, "a revoked token still works");

    /* removed: refused again within the poll */
    cr_expect_eq(admin(&s, NULL, "site", "remove", "new.example", NULL), 0);
    cr_expect(wait_post(&s, "new.example", 404), "a removed site is still accepted");
    cr_expect_eq(admin(&s, NULL, "site", "show", "new.example", NULL), 1);

    /* planted personal data: every kind found, exit 1, values never printed */
    redisReply *p;
    p = redisCommand(s.rc, "SET veil:{0}:plant:ip4 %s EX 100", "seen from 198.51.100.23 today");
    freeReplyObject(p);
    p = redisCommand(s.rc, "SET veil:{0}:plant:bin %b EX 100", "\xc6\x33\x64\x17", (size_t)4);
    freeReplyObject(p);
    p = redisCommand(s.rc, "HSET veil:{0}:plant:h ua %s v6 %s", UA_FIREFOX, "2001:db8:85a3::8a2e:370:7334");
    freeReplyObject(p);
    p = redisCommand(s.rc, "EXPIRE veil:{0}:plant:h 100");
    freeReplyObject(p);
    p = redisCommand(s.rc, "SADD veil:{0}:plant:s %s", "mail jane.doe@example.org");
    freeReplyObject(p);
    p = redisCommand(s.rc, "XADD veil:{0}:plant:x * path %s",
                     "/search?q=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    freeReplyObject(p);
    cr_expect_eq(admin(&s, &out, "audit", NULL), 1, "planted data passed the audit");
    cr_expect(out && strstr(out, "veil:{0}:plant:ip4: the value: an IPv4 address"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:bin: the value: a 4- or 16-byte binary"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:h: a value: a User-Agent string"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:h: a value: an IPv6 address"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:s: a member: an e-mail address"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:s: expiry: no expiry"), "%s", out);
    cr_expect(out && strstr(out, "veil:{0}:plant:x: a value: a query string over 100 bytes"),
              "%s", out);
    cr_expect(out && !strstr(out, "198.51.100.23") && !strstr(out, "jane.doe"),
              "audit printed the personal data itself");
    free(out);
    stack_stop(&s);
}

Test(admin, retention_apply_shortens_existing_keys, .timeout = 60)
{
    struct stack s;
    stack_start(&s);
    char today[11], old[11];
    time_t now = time(NULL);
    utc_day((int64_t)now, today);
    utc_day((int64_t)now - 40 * 86400, old);
    redisReply *r = redisCommand(s.rc, "HSET veil:{0}:d:x.example:%s:totals pageviews 3", today);
    freeReplyObject(r);
    r = redisCommand(s.rc, "EXPIRE veil:{0}:d:x.example:%s:totals %d", today, 730 * 86400);
    freeReplyObject(r);
    r = redisCommand(s.rc, "HSET veil:{0}:d:x.example:%s:totals pageviews 1", old);
    freeReplyObject(r);
    char *out = NULL;
    cr_expect_eq(admin(&s, &out, "retention", "apply", "--days", "30", NULL), 0, "%s", out);
    cr_expect(out && strstr(out, "gave 1 daily key") && strstr(out, "1 past it deleted"), "%s",
              out);
    free(out);
    r = redisCommand(s.rc, "TTL veil:{0}:d:x.example:%s:totals", today);
    cr_expect(r && r->integer > 29 * 86400 && r->integer <= 31 * 86400,
              "today's key keeps ttl %lld", r ? r->integer : -9);
    freeReplyObject(r);
    r = redisCommand(s.rc, "EXISTS veil:{0}:d:x.example:%s:totals", old);
    cr_expect_eq(r->integer, 0, "a key past the new retention survived");
    freeReplyObject(r);
    stack_stop(&s);
}

Test(admin, config_explain_checks_the_cnil_conditions, .timeout = 30)
{
    char *dir = harness_tmpdir();
    char conf[400], agg[400];
    snprintf(conf, sizeof conf, "%s/veil.conf", dir);
    snprintf(agg, sizeof agg, "%s/agg.conf", dir);
    FILE *f = fopen(conf, "w");
    fputs("geo city\n", f);
    fclose(f);
    f = fopen(agg, "w");
    fputs("retention_days 800\nk_anonymity 10\n", f);
    fclose(f);
    struct stack fake = {.dir = dir};
    snprintf(fake.redis_arg, sizeof fake.redis_arg, "--redis=127.0.0.1:1");
    char *out = NULL;
    cr_expect_eq(admin(&fake, &out, "config", "explain", conf, NULL), 1, "%s", out);
    cr_expect(out && strstr(out, "daily salt") && strstr(out, "under 5 visitors") &&
                  strstr(out, "[NOT MET] No campaign tracking"),
              "%s", out);
    free(out);
    cr_expect_eq(admin(&fake, &out, "config", "explain", conf, agg, NULL), 1);
    cr_expect(out && strstr(out, "[NOT MET] Statistics kept at most 25 months") &&
                  strstr(out, "under 10 visitors"),
              "%s", out);
    free(out);
    f = fopen(conf, "w");
    fputs("drop_utm yes\n", f);
    fclose(f);
    cr_expect_eq(admin(&fake, &out, "--json", "config", "explain", conf, NULL), 0, "%s", out);
    cr_expect(out && strstr(out, "\"not_met\":\t0"), "%s", out);
    free(out);
    harness_rmdir(dir);
    free(dir);
}

Test(admin, every_command_has_help_and_exit_codes, .timeout = 30)
{
    static const char *const commands[][2] = {
        {"site", "add"},   {"site", "set"},    {"site", "list"},      {"site", "show"},
        {"site", "remove"}, {"site", "rename"}, {"token", "create"},  {"token", "list"},
        {"token", "revoke"}, {"purge", NULL},  {"export", NULL},      {"retention", "apply"},
        {"salt", "status"}, {"audit", NULL},   {"config", "explain"},
    };
    char *out = NULL;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        int rc = commands[i][1] ? admin(NULL, &out, commands[i][0], commands[i][1], "--help", NULL)
                                : admin(NULL, &out, commands[i][0], "--help", NULL);
        cr_expect_eq(rc, 0, "%s %s --help", commands[i][0], commands[i][1] ? commands[i][1] : "");
        cr_expect(out && strstr(out, "usage: veil-admin"), "no usage for %s", commands[i][0]);
        free(out);
    }
    cr_expect_eq(admin(NULL, NULL, "frobnicate", NULL), 2, "an unknown command");
    cr_expect_eq(admin(NULL, NULL, "site", "add", NULL), 2, "site add without a site");
    cr_expect_eq(admin(NULL, NULL, "export", "a.example", "--from", "2026-13-01", "--to",
                       "2026-01-01", NULL),
                 2, "a bad day");
    cr_expect_eq(admin(NULL, NULL, "audit", NULL), 3, "no Redis must be exit 3");
    cr_expect_eq(admin(NULL, &out, "--man", NULL), 0);
    cr_expect(out && strstr(out, ".TH VEIL-ADMIN 8") && strstr(out, "token create"));
    free(out);
}
