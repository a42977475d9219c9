/* main.c - veil-admin: global options, dispatch, and the help table that
 * --help and the manual page (--man) are both printed from.
 *
 * It never prints a salt or a visitor's data; see admin.h. */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin.h"
#include "rcluster.h"
#include "agg_config.h"
#include "registry.h"
#include "shard.h"
#include "util.h"

/* One row per command: the single source of --help and of veil-admin(8). */
static const struct admin_help {
    const char *command;
    const char *usage;
    const char *text;
} help_rows[] = {
    {"site add", "site add SITE [--hostname HOST]... [--timezone ZONE] [--goal GOAL]... "
                 "[--umami-id ID] [--matomo-id ID]",
     "Register a site in the live registry: the collector accepts its events within "
     "registry_poll_ms (1 s by default), no restart. SITE is its id (a lowercase hostname); "
     "each --hostname is another host whose events count for it (www. is stripped by the "
     "collector). --timezone is an IANA zone that must exist under /usr/share/zoneinfo "
     "(default Etc/UTC). A --goal is event:NAME or page:/PATH, '*' matching any run of "
     "characters (page:/blog/*). --umami-id and --matomo-id are the ids the compatibility "
     "endpoints receive. The site's shard is shard_of_site(SITE, --shards). Exit 1 when the "
     "site or a hostname is already registered."},
    {"site set", "site set SITE [--hostname HOST]... [--timezone ZONE] [--goal GOAL]... "
                 "[--umami-id ID] [--matomo-id ID]",
     "Change a registered site: each option given replaces that field (all --hostname "
     "together replace the host list, all --goal the goals). Live within registry_poll_ms."},
    {"site list", "site list", "List the registered sites (id, hostnames, time zone, shard)."},
    {"site show", "site show SITE", "Show every field of one site. Exit 1 when it is not registered."},
    {"site remove", "site remove SITE",
     "Remove a site from the registry: its events get 404 within registry_poll_ms. Its counts "
     "stay until they expire or `purge SITE` deletes them; its tokens stay until revoked."},
    {"site rename", "site rename OLD NEW",
     "Give a site a new id. OLD stays one of its hostnames, so pages still sending OLD count "
     "for NEW. Counts recorded before stay under OLD (export or purge them by OLD)."},
    {"token create", "token create (--site SITE | --all) [--name TEXT]",
     "Make a stats API token for one site or all sites and print it once: only its SHA-256 "
     "is stored (the same hash api_tokens uses), so it cannot be shown again. It works at "
     "once, without a reload."},
    {"token list", "token list [--site SITE]",
     "List tokens: an id (the first 12 hex digits of the hash), the scope, name and "
     "creation time. Never the token."},
    {"token revoke", "token revoke (ID | --site SITE | --all)",
     "Revoke one token by id (or a unique prefix of at least 8 hex digits), every token of a "
     "site, or every registry token. Takes effect at the next request."},
    {"purge", "purge SITE [--from DAY --to DAY] [--dry-run]",
     "Delete a site's counts: every day, or the days from DAY to DAY (YYYY-MM-DD, inclusive). "
     "Without --from/--to the site's open sessions and realtime set go too. --dry-run counts "
     "the keys without deleting them."},
    {"export", "export SITE --from DAY --to DAY [--format csv|json]",
     "Print a site's daily counts (visitors, pageviews, visits, bounces, visit duration, "
     "events) for each day of the range, as CSV (default) or JSON. Raw numbers, before "
     "k-anonymity and DP: treat the file like the database."},
    {"retention apply", "retention apply [--days N] [--dry-run]",
     "Give every existing daily key the expiry retention_days implies: the end of its day "
     "plus N days (N from --days, else the -c file's retention_days, else 730). Lowering "
     "retention_days shortens what is already stored; keys past it are deleted at once."},
    {"salt status", "salt status",
     "List the visitor-hash salts alive in Redis: period, id and seconds until expiry. "
     "Never the salt bytes."},
    {"audit", "audit",
     "Scan every Veil key for what looks like personal data (IPv4 or IPv6 addresses in text, "
     "4- or 16-byte binary values, User-Agent strings, e-mail addresses, long query "
     "strings) and for keys without an expiry that should have one. Exit 1 when anything is "
     "found, 0 when clean."},
    {"config explain", "config explain COLLECTOR.conf [AGGREGATOR.conf]",
     "Say in plain words what the configuration keeps and drops, then check it against the "
     "conditions of the CNIL's consent exemption for audience measurement, item by item "
     "(docs/PRIVACY.md). Exit 1 when a condition is not met. Needs no Redis."},
};

static const char overview[] =
    "veil-admin - operate a Veil installation: sites, tokens, data, audit\n"
    "\n"
    "usage: veil-admin [-c veil-aggregator.conf] [--redis ADDR] [--shards N] [--json] COMMAND ...\n"
    "\n"
    "  -c FILE       the aggregator's config: its redis and retention_days\n"
    "  --redis ADDR  host:port or unix:/path (default: the -c file's, else 127.0.0.1:6379)\n"
    "  --shards N    logical shards of the installation (default 16)\n"
    "  --json        machine-readable output on stdout\n"
    "  --help        this text; COMMAND --help: that command's\n"
    "  --man         the manual page (roff)\n"
    "\n"
    "exit codes: 0 ok, 1 findings / not found / already exists, 2 usage, 3 Redis error\n";

void admin_print_help(FILE *out, const char *command)
{
    if (command) {
        for (size_t i = 0; i < ARRAY_LEN(help_rows); i++) {
            if (strcmp(help_rows[i].command, command) == 0 ||
                strncmp(help_rows[i].command, command, strlen(command)) == 0) {
                fprintf(out, "usage: veil-admin %s\n  %s\n", help_rows[i].usage,
                        help_rows[i].text);
            }
        }
        return;
    }
    fputs(overview, out);
    fputs("\ncommands:\n", out);
    for (size_t i = 0; i < ARRAY_LEN(help_rows); i++)
        fprintf(out, "  %s\n", help_rows[i].usage);
}

/* roff: backslashes and leading dots/quotes must not be read as requests. */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void admin_print_man(FILE *out)
{
    fprintf(out, ".TH VEIL-ADMIN 8 \"\" \"Veil %s\" \"Veil\"\n", VEIL_VERSION);
    fputs(".SH NAME\nveil-admin \\- operate a Veil installation: sites, tokens, data, audit\n", out);
    fputs(".SH SYNOPSIS\n.B veil-admin\n[\\-c FILE] [\\-\\-redis ADDR] [\\-\\-shards N] [\\-\\-json] "
          "COMMAND ...\n",
          out);
    fputs(".SH OPTIONS\n", out);
    const char *opts[][2] = {
        {"-c FILE", "the aggregator's config: its redis and retention_days"},
        {"--redis ADDR", "host:port or unix:/path (default: the -c file's, else 127.0.0.1:6379)"},
        {"--shards N", "logical shards of the installation (default 16)"},
        {"--json", "machine-readable output on stdout"},
        {"--help", "help; after a command, that command's"},
    };
    for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
        fputs(".TP\n.B ", out);
        roff_text(out, opts[i][0]);
        fputc('\n', out);
        roff_text(out, opts[i][1]);
        fputc('\n', out);
    }
    fputs(".SH COMMANDS\n", out);
    for (size_t i = 0; i < ARRAY_LEN(help_rows); i++) {
        fputs(".TP\n.B ", out);
        roff_text(out, help_rows[i].usage);
        fputc('\n', out);
        roff_text(out, help_rows[i].text);
        fputc('\n', out);
    }
    fputs(".SH EXIT STATUS\n0 ok, 1 findings, not found or already exists, 2 usage error, "
          "3 Redis error.\n",
          out);
    fputs(".SH SEE ALSO\nveil-collector(8), veil-aggregator(8); docs/OPERATIONS.md, "
          "docs/PRIVACY.md, docs/KEYS.md\n",
          out);
}

int admin_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("veil-admin: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return ADMIN_USAGE;
}

int admin_redis_error(struct admin *a, const redisReply *r, const char *what)
{
    fprintf(stderr, "veil-admin: %s: %s\n", what,
            r && r->type == REDIS_REPLY_ERROR ? r->str
            : a->rc && a->rc->errstr[0]       ? a->rc->errstr
                                              : "no answer from redis");
    return ADMIN_REDIS;
}

redisContext *admin_redis(struct admin *a)
{
    if (!a->cluster) {
        char err[400];
        a->cluster = rcluster_connect(a->redis, 5000, err, sizeof err);
        if (!a->cluster) {
            fprintf(stderr, "veil-admin: %s\n", err);
            return NULL;
        }
    }
    return admin_redis_slot(a, REG_PREFIX);
}

redisContext *admin_redis_slot(struct admin *a, const char *prefix)
{
    a->rc = a->cluster ? rcluster_slot_context(a->cluster, prefix, strlen(prefix)) : NULL;
    if (!a->rc && a->cluster)
        fprintf(stderr, "veil-admin: %s\n", rcluster_errstr(a->cluster));
    return a->rc;
}

int admin_redis_masters(struct admin *a)
{
    return a->cluster ? rcluster_masters(a->cluster) : 0;
}

redisContext *admin_redis_master(struct admin *a, int i)
{
    a->rc = a->cluster ? rcluster_master_context(a->cluster, i) : NULL;
    if (!a->rc && a->cluster)
        fprintf(stderr, "veil-admin: %s\n", rcluster_errstr(a->cluster));
    return a->rc;
}

int admin_emit_json(cJSON *obj, int rc)
{
    char *text = cJSON_Print(obj);
    if (text)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(obj);
    return rc;
}

bool admin_valid_host(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > REG_ID_MAX || s[0] == '.' || s[0] == '-' || s[len - 1] == '.')
        return false;
    for (const char *c = s; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                  *c == '.' || *c == '_';
        if (!ok || (c[0] == '.' && c[1] == '.'))
            return false;
    }
    return true;
}

/* -c FILE: the aggregator's configuration, for redis and retention_days. */
static int load_config(struct admin *a, struct agg_config *conf)
{
    char *argv[] = {"veil-aggregator", "-c", (char *)(uintptr_t)a->config, NULL};
    enum cfg_action action;
    char err[512];
    if (agg_config_load(conf, 3, argv, &action, err, sizeof err) != 0)
        return admin_usage_error("%s", err);
    if (!a->redis)
        a->redis = conf->redis;
    a->retention_days = conf->retention_days;
    return ADMIN_OK;
}

int main(int argc, char **argv)
{
    static struct admin a = {.retention_days = 730, .shards = SHARDS_DEFAULT, .days = -1};
    enum { O_REDIS = 256, O_SHARDS, O_JSON, O_HOST, O_TZ, O_GOAL, O_UMAMI, O_MATOMO, O_NAME,
           O_SITE, O_FROM, O_TO, O_FORMAT, O_ALL, O_DRY, O_DAYS, O_HELP, O_MAN };
    static const struct option opts[] = {
        {"redis", required_argument, NULL, O_REDIS},   {"shards", required_argument, NULL, O_SHARDS},
        {"json", no_argument, NULL, O_JSON},           {"hostname", required_argument, NULL, O_HOST},
        {"timezone", required_argument, NULL, O_TZ},   {"goal", required_argument, NULL, O_GOAL},
        {"umami-id", required_argument, NULL, O_UMAMI}, {"matomo-id", required_argument, NULL, O_MATOMO},
        {"name", required_argument, NULL, O_NAME},     {"site", required_argument, NULL, O_SITE},
        {"from", required_argument, NULL, O_FROM},     {"to", required_argument, NULL, O_TO},
        {"format", required_argument, NULL, O_FORMAT}, {"all", no_argument, NULL, O_ALL},
        {"dry-run", no_argument, NULL, O_DRY},         {"days", required_argument, NULL, O_DAYS},
        {"help", no_argument, NULL, O_HELP},           {"man", no_argument, NULL, O_MAN},
        {NULL, 0, NULL, 0},
    };
    if (sodium_init() < 0)
        return admin_usage_error("libsodium failed to initialise");
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a.config = optarg; break;
        case O_REDIS: a.redis = optarg; break;
        case O_SHARDS:
            a.shards = (unsigned)strtoul(optarg, &end, 10);
            if (*end || a.shards < 1 || a.shards > SHARDS_MAX)
                return admin_usage_error("--shards: expected 1..%d", SHARDS_MAX);
            break;
        case O_JSON: a.json = true; break;
        case O_HOST:
            if (a.nhostnames == ADMIN_MAX_LIST)
                return admin_usage_error("--hostname: at most %d", ADMIN_MAX_LIST);
            a.hostnames[a.nhostnames++] = optarg;
            break;
        case O_GOAL:
            if (a.ngoals == ADMIN_MAX_LIST)
                return admin_usage_error("--goal: at most %d", ADMIN_MAX_LIST);
            a.goals[a.ngoals++] = optarg;
            break;
        case O_TZ: a.timezone = optarg; break;
        case O_UMAMI: a.umami_id = optarg; break;
        case O_MATOMO: a.matomo_id = optarg; break;
        case O_NAME: a.name = optarg; break;
        case O_SITE: a.site = optarg; break;
        case O_FROM: a.from = optarg; break;
        case O_TO: a.to = optarg; break;
        case O_FORMAT: a.format = optarg; break;
        case O_ALL: a.all = true; break;
        case O_DRY: a.dry_run = true; break;
        case O_DAYS:
            a.days = strtoll(optarg, &end, 10);
            if (*end || a.days < 1 || a.days > 3650)
                return admin_usage_error("--days: expected 1..3650");
            break;
        case 'h':
        case O_HELP: a.help = true; break;
        case O_MAN: admin_print_man(stdout); return ADMIN_OK;
        default:
            return admin_usage_error("unknown option %s (veil-admin --help)", argv[optind - 1]);
        }
    }
    a.args = argv + optind;
    a.nargs = argc - optind;
    const char *cmd = a.nargs > 0 ? a.args[0] : NULL;
    const char *verb = a.nargs > 1 ? a.args[1] : NULL;
    bool has_verb = cmd && (!strcmp(cmd, "site") || !strcmp(cmd, "token") ||
                            !strcmp(cmd, "retention") || !strcmp(cmd, "salt") ||
                            !strcmp(cmd, "config"));
    if (a.help || !cmd) {
        char topic[64] = "";
        if (cmd)
            str_format(topic, sizeof topic, "%s%s%s", cmd, has_verb && verb ? " " : "",
                       has_verb && verb ? verb : "");
        admin_print_help(a.help ? stdout : stderr, cmd ? topic : NULL);
        return a.help ? ADMIN_OK : ADMIN_USAGE;
    }
    /* the words after the command (and its verb) */
    int skip = has_verb ? 2 : 1;
    if (has_verb && !verb)
        return admin_usage_error("%s: which one? (veil-admin %s --help)", cmd, cmd);
    a.args += skip;
    a.nargs -= skip;

    struct agg_config conf;
    memset(&conf, 0, sizeof conf);
    bool have_conf = false;
    int rc;
    if (a.config && strcmp(cmd, "config") != 0) {
        if ((rc = load_config(&a, &conf)) != ADMIN_OK) {
            agg_config_free(&conf);
            return rc;
        }
        have_conf = true;
    }
    if (!a.redis)
        a.redis = getenv("VEIL_REDIS") && *getenv("VEIL_REDIS") ? getenv("VEIL_REDIS")
                                                                : "127.0.0.1:6379";
    if (!strcmp(cmd, "site"))
        rc = admin_site(&a, verb);
    else if (!strcmp(cmd, "token"))
        rc = admin_token(&a, verb);
    else if (!strcmp(cmd, "purge"))
        rc = admin_purge(&a);
    else if (!strcmp(cmd, "export"))
        rc = admin_export(&a);
    else if (!strcmp(cmd, "retention"))
        rc = admin_retention(&a, verb);
    else if (!strcmp(cmd, "salt"))
        rc = admin_salt(&a, verb);
    else if (!strcmp(cmd, "audit"))
        rc = admin_audit(&a);
    else if (!strcmp(cmd, "config"))
        rc = admin_config(&a, verb);
    else
        rc = admin_usage_error("unknown command '%s' (veil-admin --help)", cmd);
    rcluster_free(a.cluster); /* a.rc was borrowed from it */
    if (have_conf)
        agg_config_free(&conf);
    return rc;
}
