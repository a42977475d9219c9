/* admin_explain.c - veil-admin config explain: the effective anonymisation
 * of a configuration in plain words, and the conditions of the CNIL's
 * consent exemption for audience measurement checked item by item
 * (docs/PRIVACY.md lists them with their sources).
 *
 * It reads the config files the daemons read, through the same directive
 * tables, and needs no Redis. It judges the configuration only: the
 * operator's own part (informing visitors, offering the opt-out, not
 * combining the data) is listed, never claimed as met. */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "agg_config.h"
#include "collector_config.h"
#include "geo.h"
#include "util.h"
#include "visitor.h"

/* 25 months, the CNIL's ceiling for keeping the statistics. */
#define CNIL_MAX_RETENTION_DAYS 761

struct item {
    const char *condition;
    int state; /* 1 met, 0 not met, -1 the operator's part */
    char why[400];
};

static void add_line(cJSON *arr, const char *text)
{
    if (arr)
        cJSON_AddItemToArray(arr, cJSON_CreateString(text));
    else
        printf("  - %s\n", text);
}

int admin_config(struct admin *a, const char *verb)
{
    if (strcmp(verb, "explain") != 0 || a->nargs < 1 || a->nargs > 2)
        return admin_usage_error("config: expected 'config explain COLLECTOR.conf "
                                 "[AGGREGATOR.conf]'");
    struct collector_config c;
    struct agg_config g;
    enum cfg_action action;
    char err[512];
    char *cargv[] = {"veil-collector", "-c", a->args[0], NULL};
    if (collector_config_load(&c, 3, cargv, &action, err, sizeof err) != 0) {
        collector_config_free(&c);
        return admin_usage_error("%s", err);
    }
    char *gargv[] = {"veil-aggregator", "-c", a->nargs == 2 ? a->args[1] : NULL, NULL};
    if (agg_config_load(&g, a->nargs == 2 ? 3 : 1, gargv, &action, err, sizeof err) != 0) {
        collector_config_free(&c);
        agg_config_free(&g);
        return admin_usage_error("%s", err);
    }
    bool agg_given = a->nargs == 2;

    cJSON *out = a->json ? cJSON_CreateObject() : NULL;
    cJSON *words = out ? cJSON_AddArrayToObject(out, "anonymisation") : NULL;
    char line[600];
    if (!out)
        printf("What Veil keeps with this configuration:\n");

    static const char *const geo_words[] = {"no location at all", "the country only",
                                            "the country and region", "the city"};
    if (c.ip_keep == IP_KEEP_NONE)
        str_format(line, sizeof line, "IPs are used in memory only, for the location lookup "
                   "(%s) and the visitor hash, then wiped; no form of the IP is stored.",
                   geo_words[c.geo]);
    else
        str_format(line, sizeof line, "IPs are truncated to /%lld (IPv4) and /%lld (IPv6) "
                   "after the location lookup (%s), and that prefix is stored with each event.",
                   c.ipv4_prefix, c.ipv6_prefix, geo_words[c.geo]);
    add_line(words, line);
    if (c.visitor_hash == SALT_OFF)
        str_format(line, sizeof line, "No visitor identifier: visitors and visits are not "
                   "counted, only pageviews and events.");
    else
        str_format(line, sizeof line, "Visitors are counted with a %s salt: a keyed hash of "
                   "site, IP and User-Agent that changes every %s and cannot be linked across "
                   "them; each salt is random, kept in Redis only, and expires within two %ss.",
                   c.visitor_hash == SALT_DAY ? "daily" : c.visitor_hash == SALT_WEEK ? "weekly" : "monthly",
                   c.visitor_hash == SALT_DAY ? "UTC day" : c.visitor_hash == SALT_WEEK ? "week" : "month",
                   c.visitor_hash == SALT_DAY ? "day" : c.visitor_hash == SALT_WEEK ? "week" : "month");
    add_line(words, line);
    str_format(line, sizeof line, "The User-Agent is reduced to browser family and major "
               "version, OS family and device class%s.",
               c.bot_filter ? "; bots and headless browsers are not recorded" : "");
    add_line(words, line);
    str_format(line, sizeof line, "Page URLs keep their path; %s; campaign parameters "
               "(utm_*) are %s. Referrers keep %s.",
               !c.strip_query ? "query strings are KEPT WHOLE (strip_query no)"
               : c.query_allowlist.n ? "query strings are dropped except the allowlisted parameters"
                                     : "query strings are dropped",
               c.drop_utm ? "dropped too (drop_utm yes)" : "kept as campaign fields",
               c.referrer == REFERRER_HOST ? "only their host" : "nothing");
    add_line(words, line);
    str_format(line, sizeof line, "Requests with %s%s%s are answered and not recorded.",
               c.honor_dnt ? "DNT: 1" : "", c.honor_dnt && c.honor_gpc ? " or " : "",
               c.honor_gpc ? "Sec-GPC: 1" : (c.honor_dnt ? "" : "no opt-out header (neither DNT nor GPC is honoured)"));
    add_line(words, line);
    str_format(line, sizeof line, "Published breakdown rows under %lld visitors are folded "
               "into \"(other)\"%s%s.", g.k_anonymity,
               g.dp_epsilon > 0 ? "; differential-privacy noise is added to every answer" : "",
               agg_given ? "" : " (aggregator default; give its config to check yours)");
    add_line(words, line);
    str_format(line, sizeof line, "Daily counts expire %lld days after their day%s; raw "
               "events are deleted once rolled up.", g.retention_days,
               agg_given ? "" : " (aggregator default)");
    add_line(words, line);

    struct item items[] = {
        {"Anonymous statistics only (no per-visitor data kept or exported)", 0, ""},
        {"No identifier shared across sites", 1, ""},
        {"Identifier lifetime at most 13 months", 1, ""},
        {"Statistics kept at most 25 months", 0, ""},
        {"Location no finer than the city", 1, ""},
        {"IP truncated after the location lookup, or not kept", 0, ""},
        {"An opt-out for visitors", 1, ""},
        {"No campaign tracking (utm_* parameters)", 0, ""},
        {"Visitors informed; data not combined with other processing or passed on", -1, ""},
    };
    items[0].state = c.ip_keep == IP_KEEP_NONE;
    str_format(items[0].why, sizeof items[0].why, c.ip_keep == IP_KEEP_NONE
               ? "only daily aggregates are kept; events carry no identifier beyond the salted hash"
               : "ip_keep truncated stores an IP prefix with every event");
    str_format(items[1].why, sizeof items[1].why, "the visitor hash includes the site id: the "
               "same visitor gets unrelated hashes on two sites");
    str_format(items[2].why, sizeof items[2].why, "%s", c.visitor_hash == SALT_OFF
               ? "no identifier at all (visitor_hash off)"
               : "salts expire within two salt periods (at most about two months)");
    items[3].state = g.retention_days <= CNIL_MAX_RETENTION_DAYS;
    str_format(items[3].why, sizeof items[3].why, "retention_days %lld%s (25 months is about %d "
               "days)", g.retention_days, agg_given ? "" : ", the aggregator's default",
               CNIL_MAX_RETENTION_DAYS);
    str_format(items[4].why, sizeof items[4].why, "geo %s: the database's finest level is the city",
               geo_level_names[c.geo]);
    items[5].state = c.ip_keep == IP_KEEP_NONE || (c.ipv4_prefix <= 24 && c.ipv6_prefix <= 48);
    str_format(items[5].why, sizeof items[5].why, c.ip_keep == IP_KEEP_NONE
               ? "ip_keep none: no form of the IP is stored"
               : "ip_keep truncated with ipv4_prefix %lld and ipv6_prefix %lld (at most 24 and 48)",
               c.ipv4_prefix, c.ipv6_prefix);
    str_format(items[6].why, sizeof items[6].why, "veil.js honours localStorage.veil_ignore%s; "
               "link a way to set it from your privacy page",
               c.honor_dnt || c.honor_gpc ? ", and the collector the DNT/GPC signals" : "");
    items[7].state = c.drop_utm;
    str_format(items[7].why, sizeof items[7].why, c.drop_utm ? "drop_utm yes"
               : "utm_* are kept; set drop_utm yes for the exemption");
    str_format(items[8].why, sizeof items[8].why, "your part: say so in your privacy policy "
               "(docs/PRIVACY.md has wording)");

    int unmet = 0;
    cJSON *checks = out ? cJSON_AddArrayToObject(out, "cnil_exemption") : NULL;
    if (!out)
        printf("\nCNIL consent exemption for audience measurement (docs/PRIVACY.md):\n");
    for (size_t i = 0; i < ARRAY_LEN(items); i++) {
        const char *state = items[i].state == 1 ? "met" : items[i].state == 0 ? "NOT MET" : "your part";
        unmet += items[i].state == 0;
        if (checks) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "condition", items[i].condition);
            cJSON_AddStringToObject(o, "state", items[i].state == 1 ? "met"
                                                : items[i].state == 0 ? "not met" : "operator");
            cJSON_AddStringToObject(o, "why", items[i].why);
            cJSON_AddItemToArray(checks, o);
        } else {
            printf("  [%s] %s: %s\n", state, items[i].condition, items[i].why);
        }
    }
    int rc = unmet ? ADMIN_FOUND : ADMIN_OK;
    collector_config_free(&c);
    agg_config_free(&g);
    if (out) {
        cJSON_AddNumberToObject(out, "not_met", unmet);
        return admin_emit_json(out, rc);
    }
    printf("\n%d condition%s not met.\n", unmet, unmet == 1 ? "" : "s");
    return rc;
}
