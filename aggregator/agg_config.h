/* agg_config.h - every directive of veil-aggregator (roll-up and stats API)
 * in one table: the config file, --name=value options, --help and
 * deploy/veil-aggregator.conf (make sample-config) all come from it.
 *
 * It holds settings only; it never holds counts or event content. */
#ifndef VEIL_AGG_CONFIG_H
#define VEIL_AGG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "paths.h"

struct agg_config {
    /* roll-up */
    char *redis;                 /* "unix:/path" or "host:port" */
    long long shards;            /* logical shards of the installation */
    char *consumer;              /* owner name in the leases; "" at load = <hostname>-<pid> */
    long long batch_size;        /* most events per commit of one shard */
    long long block_ms;          /* XREAD BLOCK */
    long long lease_ms;          /* shard lease */
    long long future_skew_s;     /* events further in the future are refused */
    long long retention_days;    /* daily keys expire at end of day + this */
    long long breakdown_cap;     /* rows per dimension per site-day before "(other)" */
    long long property_budget;   /* rows of all prop:<key> dimensions per site-day */
    long long pair_budget;       /* two-dimensional cells per site-day (plan_pairs.h) */
    struct cfg_list pair_dims;   /* visit dimensions of the pair counts */
    uint32_t pair_dim_mask;      /* the same as visit slots (pairs_dims_parse) */
    long long session_timeout_s; /* a visit ends after this much inactivity */
    bool month_rollups;          /* write and read month keys (months.h) */
    bool week_rollups;           /* write and read week keys (months.h) */
    bool quarter_rollups;        /* write and read quarter keys (months.h) */
    char *referrer_db;           /* referrers.json: named sources and channels */
    /* stats API */
    char *api_listen;            /* "host:port"; "" = no stats API in this process */
    char *api_token;             /* all-sites bearer token; "" = none */
    struct cfg_list api_tokens;  /* per-site "site=sha256hex" */
    long long k_anonymity;
    double dp_epsilon;           /* 0 = differential privacy off */
    char *dashboard_dir;
    char *iso_codes_dir;         /* iso-codes JSON: country and region names; "" = none */
    /* both */
    char *log_level;             /* debug|info|warn|error */
};

/* referrer_db's default: where make install puts Ghost's referrers.json. */
#define AGG_REFERRER_DB_DEFAULT veil_default_referrer_db

/* The table, terminated by a row with a NULL name. */
extern const struct cfg_option agg_options[];

/* Defaults, then the file and command line (cfg_parse_args), then the
 * cross-directive checks (redis and api_listen shapes, log_level), then
 * derived values: an empty `consumer` becomes "<hostname>-<pid>".
 * `conf` is overwritten; free it with agg_config_free even on failure.
 * Returns 0, or -1 with a reason in err. */
int agg_config_load(struct agg_config *conf, int argc, char **argv, enum cfg_action *action,
                    char *err, size_t errlen);

/* Free what agg_config_load allocated; `conf` may then be loaded again. */
void agg_config_free(struct agg_config *conf);

#endif
