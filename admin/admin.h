/* admin.h - what the commands of veil-admin share: the parsed command
 * line, the Redis connection, output in text or JSON, exit codes.
 *
 * veil-admin is the operators' tool (docs/OPERATIONS.md): the site registry
 * (registry.h), stats API tokens, purge, export, retention, salt status,
 * audit and config explain. It must never print a salt, a stored token
 * hash in full, or anything about a visitor; a token is printed once, by
 * `token create`, and never stored in plain text. */
#ifndef VEIL_ADMIN_H
#define VEIL_ADMIN_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

/* Exit codes (the same for every command; veil-admin(8) lists them). */
enum {
    ADMIN_OK = 0,
    ADMIN_FOUND = 1,    /* audit findings; not found; already exists */
    ADMIN_USAGE = 2,    /* bad command line or value */
    ADMIN_REDIS = 3,    /* Redis unreachable or an error */
};

#define ADMIN_MAX_LIST 64

struct admin {
    /* global options */
    const char *redis;          /* --redis, else the -c file's, else 127.0.0.1:6379 */
    const char *config;         /* -c: veil-aggregator.conf (redis, retention_days) */
    bool json;                  /* --json */
    long long retention_days;   /* from -c, or 730 */
    unsigned shards;            /* --shards (shard.h), SHARDS_DEFAULT */
    /* command options */
    const char *hostnames[ADMIN_MAX_LIST];
    int nhostnames;
    const char *goals[ADMIN_MAX_LIST];
    int ngoals;
    const char *timezone, *umami_id, *matomo_id, *name, *site, *from, *to, *format;
    bool all, dry_run, help;
    long long days;             /* --days, -1 unset */
    /* positional words after the command */
    char **args;
    int nargs;
    redisContext *rc;           /* the connection in use (borrowed from `cluster`): the
                                   registry's node, a shard's node, or one master in turn */
    struct rcluster *cluster;   /* connected by admin_redis() (rcluster.h) */
};

/* Connect to Redis once (a->cluster: one Redis or a Redis Cluster) and
 * point a->rc at the registry's node; prints the reason and returns NULL. */
redisContext *admin_redis(struct admin *a);

/* Point a->rc at the node owning the slot of `prefix` (a shard's
 * "veil:{N}:", the registry's). Returns it, or NULL after printing why. */
redisContext *admin_redis_slot(struct admin *a, const char *prefix);

/* The number of masters (1 for one Redis); admin_redis_master points a->rc
 * at master i, for SCANs that must see every node. */
int admin_redis_masters(struct admin *a);
redisContext *admin_redis_master(struct admin *a, int i);

/* A command-line or value error: prints "veil-admin: <msg>" to stderr and
 * returns ADMIN_USAGE. */
int admin_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A Redis error for `what`: prints it and returns ADMIN_REDIS. */
int admin_redis_error(struct admin *a, const redisReply *r, const char *what);

/* --json: print the object (then free it) and return `rc`. */
int admin_emit_json(cJSON *obj, int rc);

/* True for a lowercase hostname-shaped site id or hostname. */
bool admin_valid_host(const char *s);

/* The commands; each returns an exit code. */
int admin_site(struct admin *a, const char *verb);
int admin_token(struct admin *a, const char *verb);
int admin_purge(struct admin *a);
int admin_export(struct admin *a);
int admin_retention(struct admin *a, const char *verb);
int admin_salt(struct admin *a, const char *verb);
int admin_audit(struct admin *a);
int admin_config(struct admin *a, const char *verb);

/* The help of one command ("site add", "audit", ...; NULL = overview). */
void admin_print_help(FILE *out, const char *command);
/* The manual page (roff) built from the same table as --help. */
void admin_print_man(FILE *out);

#endif
