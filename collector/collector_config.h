/* collector_config.h - every directive of veil-collector in one table
 * (file, --name=value, --help and deploy/veil.conf come from it). */
#ifndef VEIL_COLLECTOR_CONFIG_H
#define VEIL_COLLECTOR_CONFIG_H

#include <stdbool.h>

#include "config.h"

enum ip_keep { IP_KEEP_NONE = 0, IP_KEEP_TRUNCATED };
enum referrer_mode { REFERRER_HOST = 0, REFERRER_OFF };
enum proxy_header { PROXY_HEADER_XFF = 0, PROXY_HEADER_FORWARDED, PROXY_HEADER_X_REAL_IP };

struct collector_config {
    char *listen;
    char *admin_listen;         /* "" = no admin listener */
    char *redis;
    long long threads;
    char *geo_db;
    int geo;                    /* enum geo_level */
    long long geo_db_max_age_days; /* warn when geo_db is older; 0 = never */
    char *ua_regexes;
    long long ua_cache_entries;
    bool bot_filter;
    bool drop_header;           /* X-Veil-Dropped on events not recorded */
    struct cfg_list sites;
    struct cfg_list trusted_proxies;
    int proxy_header;           /* enum proxy_header */
    long long ipv4_prefix;
    long long ipv6_prefix;
    int ip_keep;                /* enum ip_keep */
    int visitor_hash;           /* enum salt_period */
    bool honor_dnt;
    bool honor_gpc;
    bool strip_query;
    bool drop_utm;              /* keep no campaign parameter (CNIL exemption) */
    struct cfg_list query_allowlist;
    int referrer;               /* enum referrer_mode */
    long long max_body_bytes;
    long long max_header_bytes;
    long long timeout_s;
    long long request_timeout_s;
    long long max_connections;  /* all threads together */
    long long max_buffered_events;
    long long max_buffered_bytes; /* all threads together */
    long long batch_wait_us;
    long long wait_replicas;    /* 0 = a batch is delivered when its master answers */
    long long wait_timeout_ms;
    long long shards;           /* logical shards of the installation (shard.h) */
    long long registry_poll_ms; /* 0 = the site registry is not read */
    char *spool_dir;            /* "" = no disk spool */
    long long spool_max_bytes;  /* all threads together */
    int spool_fsync;            /* enum spool_fsync */
    double rate_limit;
    long long rate_burst;
    long long client_ipv6_prefix;
    long long max_client_connections;
    char *tracker_js;
    char *log_level;
    struct cfg_list umami_website_ids; /* "uuid=site" (compat_map.h) */
    char *umami_path;
    struct cfg_list matomo_site_ids;   /* "idsite=site" */
};

extern const struct cfg_option collector_options[];

/* Defaults, then file and command line (see cfg_parse_args), then the
 * cross-directive checks. Returns 0, or -1 with a reason in err. */
int collector_config_load(struct collector_config *conf, int argc, char **argv,
                          enum cfg_action *action, char *err, size_t errlen);

void collector_config_free(struct collector_config *conf);


#endif
