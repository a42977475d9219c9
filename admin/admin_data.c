/* admin_data.c - veil-admin purge, export, retention apply, salt status:
 * the counts a site has in Redis (docs/KEYS.md) and the salts' lifetimes.
 *
 * Keys are found with SCAN (never KEYS), in the shard the site maps to and
 * in shard {0}, where single-shard installations keep everything. Salt
 * values are never read: only their names and TTLs. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "period.h"
#include "shard.h"
#include "util.h"

static int scan_node(struct admin *a, const char *pattern,
                     int (*fn)(struct admin *a, const char *key, size_t len, void *arg), void *arg);

/* Call fn for every key matching pattern; stops when fn returns non-zero.
 * Returns ADMIN_OK, fn's value, or ADMIN_REDIS. */
static int scan_keys(struct admin *a, const char *pattern,
                     int (*fn)(struct admin *a, const char *key, size_t len, void *arg), void *arg)
{
    /* every master in turn (one for a plain Redis): fn's commands on a key
     * go to a->rc, the node that holds it */
    for (int m = 0; m < admin_redis_masters(a); m++) {
        if (!admin_redis_master(a, m))
            return ADMIN_REDIS;
        int rc = scan_node(a, pattern, fn, arg);
        if (rc != ADMIN_OK)
            return rc;
    }
    return ADMIN_OK;
}

static int scan_node(struct admin *a, const char *pattern,
                     int (*fn)(struct admin *a, const char *key, size_t len, void *arg), void *arg)
{
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(a->rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            int rc = admin_redis_error(a, r, "SCAN");
            if (r)
                freeReplyObject(r);
            return rc;
        }
        str_copy(cursor, sizeof cursor, r->element[0]->str, r->element[0]->len);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            int rc = fn(a, keys->element[i]->str, keys->element[i]->len, arg);
            if (rc != 0) {
                freeReplyObject(r);
                return rc;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return ADMIN_OK;
}

/* The key prefixes a site's data may live under: its shard's and {0}. */
static int site_prefixes(const struct admin *a, const char *site, char prefixes[2][SHARD_PREFIX_MAX])
{
    shard_key_prefix(prefixes[0], SHARD_PREFIX_MAX, shard_of_site(site, strlen(site), a->shards));
    shard_key_prefix(prefixes[1], SHARD_PREFIX_MAX, 0);
    return strcmp(prefixes[0], prefixes[1]) == 0 ? 1 : 2;
}

static bool parse_day_arg(const char *text, const char *what, period_day *out)
{
    char err[200];
    if (!text || !period_parse_day(text, strlen(text), out, err, sizeof err)) {
        admin_usage_error("%s: expected a day YYYY-MM-DD%s%s", what, text ? ", " : "",
                          text ? err : "");
        return false;
    }
    return true;
}

/* ---- purge ---- */

struct purge {
    size_t day_off;   /* offset of the day in a daily key (after "<prefix>d:<site>:") */
    char from[11], to[11];
    bool ranged;
    long long deleted;
};

static int purge_key(struct admin *a, const char *key, size_t len, void *arg)
{
    struct purge *p = arg;
    if (p->ranged) {
        if (len < p->day_off + 10)
            return 0;
        char day[11];
        memcpy(day, key + p->day_off, 10);
        day[10] = '\0';
        if (strcmp(day, p->from) < 0 || strcmp(day, p->to) > 0)
            return 0;
    }
    if (!a->dry_run) {
        redisReply *r = redisCommand(a->rc, "UNLINK %b", key, len);
        bool ok = r && r->type == REDIS_REPLY_INTEGER;
        if (r)
            freeReplyObject(r);
        if (!ok)
            return admin_redis_error(a, NULL, "UNLINK");
    }
    p->deleted++;
    return 0;
}

/* HDEL the site's open visits (fields "<site>:<visitor>") from the
 * checkpoint hash <prefix>sessions; each counts as one deleted key. */
static int purge_visits(struct admin *a, const char *prefix, const char *site, struct purge *p)
{
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(a->rc, "HSCAN %ssessions %s MATCH %s:* COUNT 1000", prefix,
                                     cursor, site);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            return admin_redis_error(a, NULL, "HSCAN");
        }
        str_copy(cursor, sizeof cursor, r->element[0]->str, r->element[0]->len);
        const redisReply *items = r->element[1];
        for (size_t i = 0; i + 1 < items->elements; i += 2) {
            if (!a->dry_run) {
                redisReply *d = redisCommand(a->rc, "HDEL %ssessions %b", prefix,
                                             items->element[i]->str, items->element[i]->len);
                if (d)
                    freeReplyObject(d);
            }
            p->deleted++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return ADMIN_OK;
}

int admin_purge(struct admin *a)
{
    if (a->nargs != 1)
        return admin_usage_error("purge: expected one SITE (veil-admin purge --help)");
    const char *site = a->args[0];
    if (!admin_valid_host(site))
        return admin_usage_error("'%s': a site id is a lowercase hostname", site);
    struct purge p = {0};
    if (a->from || a->to) {
        period_day f, t;
        if (!parse_day_arg(a->from, "--from", &f) || !parse_day_arg(a->to, "--to", &t))
            return ADMIN_USAGE;
        if (f > t)
            return admin_usage_error("--from is after --to");
        period_format_day(f, p.from);
        period_format_day(t, p.to);
        p.ranged = true;
    }
    if (!admin_redis(a))
        return ADMIN_REDIS;
    char prefixes[2][SHARD_PREFIX_MAX];
    int np = site_prefixes(a, site, prefixes);
    for (int i = 0; i < np; i++) {
        char pattern[512];
        str_format(pattern, sizeof pattern, "%sd:%s:*", prefixes[i], site);
        p.day_off = strlen(pattern) - 1;
        int rc = scan_keys(a, pattern, purge_key, &p);
        if (rc != ADMIN_OK)
            return rc;
        if (p.ranged)
            continue;
        struct purge all = {.ranged = false};
        str_format(pattern, sizeof pattern, "%ss:%s:*", prefixes[i], site);
        if ((rc = scan_keys(a, pattern, purge_key, &all)) != ADMIN_OK)
            return rc;
        str_format(pattern, sizeof pattern, "%srt:%s", prefixes[i], site);
        if ((rc = scan_keys(a, pattern, purge_key, &all)) != ADMIN_OK)
            return rc;
        /* aggregator engine v2: realtime per minute, open visits in the
         * shard's checkpoint hash (docs/KEYS.md) */
        str_format(pattern, sizeof pattern, "%srt:%s:*", prefixes[i], site);
        if ((rc = scan_keys(a, pattern, purge_key, &all)) != ADMIN_OK)
            return rc;
        if (!admin_redis_slot(a, prefixes[i])) /* the checkpoint is on the shard's node */
            return ADMIN_REDIS;
        if ((rc = purge_visits(a, prefixes[i], site, &all)) != ADMIN_OK)
            return rc;
        p.deleted += all.deleted;
        if (!a->dry_run && admin_redis_slot(a, prefixes[i])) {
            redisReply *r = redisCommand(a->rc, "SREM %ssites %s", prefixes[i], site);
            if (r)
                freeReplyObject(r);
        }
    }
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "site", site);
        if (p.ranged) {
            cJSON_AddStringToObject(o, "from", p.from);
            cJSON_AddStringToObject(o, "to", p.to);
        }
        cJSON_AddNumberToObject(o, a->dry_run ? "would_delete" : "deleted", (double)p.deleted);
        return admin_emit_json(o, ADMIN_OK);
    }
    printf("%s %lld key%s of %s%s%s%s%s\n", a->dry_run ? "would delete" : "deleted", p.deleted,
           p.deleted == 1 ? "" : "s", site, p.ranged ? " from " : "", p.ranged ? p.from : "",
           p.ranged ? " to " : "", p.ranged ? p.to : "");
    return ADMIN_OK;
}

/* ---- export ---- */

static const char *const export_fields[] = {"pageviews", "visits", "bounces", "visit_duration_s",
                                            "events"};

/* One day's totals and visitors under the first prefix that has them. */
static int day_counts(struct admin *a, char prefixes[2][SHARD_PREFIX_MAX], int np,
                      const char *site, const char *day, long long out[6])
{
    memset(out, 0, 6 * sizeof out[0]);
    for (int i = 0; i < np; i++) {
        if (!admin_redis_slot(a, prefixes[i]))
            return ADMIN_REDIS;
        redisReply *r = redisCommand(a->rc, "HGETALL %sd:%s:%s:totals", prefixes[i], site, day);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            int rc = admin_redis_error(a, r, "export");
            if (r)
                freeReplyObject(r);
            return rc;
        }
        bool found = r->elements > 0;
        for (size_t k = 0; k + 1 < r->elements; k += 2)
            for (size_t f = 0; f < ARRAY_LEN(export_fields); f++)
                if (r->element[k]->str && !strcmp(r->element[k]->str, export_fields[f]))
                    out[1 + f] = r->element[k + 1]->str ? atoll(r->element[k + 1]->str) : 0;
        freeReplyObject(r);
        r = redisCommand(a->rc, "PFCOUNT %sd:%s:%s:visitors", prefixes[i], site, day);
        if (r && r->type == REDIS_REPLY_INTEGER) {
            out[0] = r->integer;
            found = found || r->integer > 0;
        }
        if (r)
            freeReplyObject(r);
        if (found)
            break;
    }
    return ADMIN_OK;
}

int admin_export(struct admin *a)
{
    if (a->nargs != 1)
        return admin_usage_error("export: expected one SITE (veil-admin export --help)");
    const char *site = a->args[0];
    if (!admin_valid_host(site))
        return admin_usage_error("'%s': a site id is a lowercase hostname", site);
    period_day f, t;
    if (!parse_day_arg(a->from, "--from", &f) || !parse_day_arg(a->to, "--to", &t))
        return ADMIN_USAGE;
    if (f > t || t - f >= PERIOD_MAX_CUSTOM_DAYS)
        return admin_usage_error("--from..--to: at most %d days, --from first",
                                 PERIOD_MAX_CUSTOM_DAYS);
    bool json = a->json || (a->format && !strcmp(a->format, "json"));
    if (a->format && strcmp(a->format, "json") && strcmp(a->format, "csv"))
        return admin_usage_error("--format: csv or json");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    char prefixes[2][SHARD_PREFIX_MAX];
    int np = site_prefixes(a, site, prefixes);
    cJSON *days = json ? cJSON_CreateArray() : NULL;
    if (!json)
        printf("date,visitors,pageviews,visits,bounces,visit_duration_s,events\n");
    for (period_day d = f; d <= t; d++) {
        char day[11];
        long long c[6];
        period_format_day(d, day);
        int rc = day_counts(a, prefixes, np, site, day, c);
        if (rc != ADMIN_OK) {
            cJSON_Delete(days);
            return rc;
        }
        if (days) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "date", day);
            cJSON_AddNumberToObject(o, "visitors", (double)c[0]);
            for (size_t k = 0; k < ARRAY_LEN(export_fields); k++)
                cJSON_AddNumberToObject(o, export_fields[k], (double)c[1 + k]);
            cJSON_AddItemToArray(days, o);
        } else {
            printf("%s,%lld,%lld,%lld,%lld,%lld,%lld\n", day, c[0], c[1], c[2], c[3], c[4], c[5]);
        }
    }
    if (days) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "site", site);
        cJSON_AddItemToObject(o, "days", days);
        return admin_emit_json(o, ADMIN_OK);
    }
    return ADMIN_OK;
}

/* ---- retention apply ---- */

struct retention {
    long long days;
    long long now;
    long long set, expired, skipped;
};

/* "veil:{N}:d:<site>:<YYYY-MM-DD>:..." -> the day, or false. */
static bool daily_key_day(const char *key, size_t len, period_day *day)
{
    const char *d = memmem(key, len, "}:d:", 4);
    if (!d)
        return false;
    d += 4;
    const char *colon = memchr(d, ':', len - (size_t)(d - key));
    if (!colon || (size_t)(colon - key) + 11 > len || colon[11] != ':')
        return false;
    char err[100];
    return period_parse_day(colon + 1, 10, day, err, sizeof err);
}

static int retention_key(struct admin *a, const char *key, size_t len, void *arg)
{
    struct retention *r = arg;
    period_day day;
    if (!daily_key_day(key, len, &day)) {
        r->skipped++;
        return 0;
    }
    long long at = ((long long)day + 1) * 86400 + r->days * 86400;
    if (at <= r->now)
        r->expired++;
    else
        r->set++;
    if (a->dry_run)
        return 0;
    redisReply *rep = redisCommand(a->rc, "EXPIREAT %b %lld", key, len, at);
    bool ok = rep && rep->type == REDIS_REPLY_INTEGER;
    if (rep)
        freeReplyObject(rep);
    return ok ? 0 : admin_redis_error(a, NULL, "EXPIREAT");
}

int admin_retention(struct admin *a, const char *verb)
{
    if (strcmp(verb, "apply") != 0 || a->nargs != 0)
        return admin_usage_error("retention: expected 'retention apply [--days N]'");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct retention r = {.days = a->days > 0 ? a->days : a->retention_days,
                          .now = (long long)time(NULL)};
    int rc = scan_keys(a, "veil:{*}:d:*", retention_key, &r);
    if (rc != ADMIN_OK)
        return rc;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "retention_days", (double)r.days);
        cJSON_AddNumberToObject(o, "keys_set", (double)r.set);
        cJSON_AddNumberToObject(o, "keys_expired", (double)r.expired);
        cJSON_AddBoolToObject(o, "dry_run", a->dry_run);
        return admin_emit_json(o, ADMIN_OK);
    }
    printf("retention %lld days: %s %lld daily key%s the expiry of their day + %lld days; "
           "%lld past it %s\n",
           r.days, a->dry_run ? "would give" : "gave", r.set, r.set == 1 ? "" : "s", r.days,
           r.expired, a->dry_run ? "would be deleted" : "deleted");
    return ADMIN_OK;
}

/* ---- salt status ---- */

struct salts {
    cJSON *arr;
    int n;
};

static int salt_key(struct admin *a, const char *key, size_t len, void *arg)
{
    struct salts *s = arg;
    redisReply *r = redisCommand(a->rc, "PTTL %b", key, len);
    long long ttl = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    if (r)
        freeReplyObject(r);
    /* veil:salt:<period>:<id> */
    char name[128];
    str_copy(name, sizeof name, key, len < sizeof name ? len : sizeof name - 1);
    char *period = name + (strncmp(name, "veil:salt:", 10) == 0 ? 10 : 0);
    char *id = strchr(period, ':');
    if (id)
        *id++ = '\0';
    if (s->arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "period", period);
        cJSON_AddStringToObject(o, "id", id ? id : "");
        cJSON_AddNumberToObject(o, "expires_in_s", ttl >= 0 ? (double)(ttl / 1000) : -1);
        cJSON_AddItemToArray(s->arr, o);
    } else {
        char when[64];
        if (ttl >= 0)
            str_format(when, sizeof when, "expires in %lld s", ttl / 1000);
        else
            str_format(when, sizeof when, "NO EXPIRY (veil-admin audit flags it)");
        printf("%-6s %-12s %s\n", period, id ? id : "", when);
    }
    s->n++;
    return 0;
}

int admin_salt(struct admin *a, const char *verb)
{
    if (strcmp(verb, "status") != 0 || a->nargs != 0)
        return admin_usage_error("salt: expected 'salt status'");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct salts s = {a->json ? cJSON_CreateArray() : NULL, 0};
    int rc = scan_keys(a, "veil:salt:*", salt_key, &s);
    if (s.arr) {
        if (rc != ADMIN_OK) {
            cJSON_Delete(s.arr);
            return rc;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "salts", s.arr);
        return admin_emit_json(o, ADMIN_OK);
    }
    if (rc == ADMIN_OK && s.n == 0)
        printf("no salt alive (no collector has hashed a visitor in the last period, or "
               "visitor_hash is off)\n");
    return rc;
}
