/* query_hours.c - hourly rows read back from Redis (see query_hours.h and
 * docs/KEYS.md). One day at a time: HGETALL of its `hours` hash (which
 * hours have hourly rows) and of `hb:<dim>`, then one PFCOUNT per hour
 * over the matching rows' `hu:` keys, pipelined. Never writes; never logs
 * a value. */
#include "query_hours.h"

#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "hourly.h"
#include "schema.h"
#include "shard.h"
#include "util.h"

/* "veil:{s}:d:<site>:<day>:" into buf; its length, 0 when too long. */
static size_t day_base(char *buf, size_t cap, const char *site, period_day day)
{
    char prefix[SHARD_PREFIX_MAX], d[11];
    query_site_prefix(site, prefix);
    period_format_day(day, d);
    return str_format(buf, cap, "%sd:%s:%s:", prefix, site, d) ? strlen(buf) : 0;
}

static int redis_error(redisContext *rc, const redisReply *r, char *err, size_t errlen)
{
    if (!r)
        str_format(err, errlen, "redis: %s", rc->errstr[0] ? rc->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        str_format(err, errlen, "redis: %.*s", (int)r->len, r->str);
    else
        str_format(err, errlen, "redis: unexpected reply type %d", r->type);
    return -1;
}

static bool reply_ll(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    return r->type == REDIS_REPLY_STRING && safe_strtoll_n(r->str, r->len, -(1LL << 62),
                                                           1LL << 62, out);
}

/* "<HH>:" at the start of s[0..len): the hour, or -1. */
static int field_hour(const char *s, size_t len)
{
    if (len < 4 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9')
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    return h < 24 ? h : -1;
}

/* Whether every hour of the day that has events has its hourly rows:
 * <HH>:events equal to <HH>:hourly_rows (docs/KEYS.md). The first hour
 * that does not into *bad. */
static bool hours_covered(const redisReply *r, int *bad)
{
    long long events[24] = {0}, covered[24] = {0};
    size_t cl = strlen(HOURLY_COVER_FIELD);
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *name = r->element[f];
        long long v;
        int h;
        if (name->type != REDIS_REPLY_STRING || (h = field_hour(name->str, name->len)) < 0 ||
            !reply_ll(r->element[f + 1], &v))
            continue;
        if (name->len - 3 == 6 && memcmp(name->str + 3, "events", 6) == 0)
            events[h] += v;
        else if (name->len - 3 == cl && memcmp(name->str + 3, HOURLY_COVER_FIELD, cl) == 0)
            covered[h] += v;
    }
    for (int h = 0; h < 24; h++) {
        if (events[h] != covered[h]) {
            *bad = h;
            return false;
        }
    }
    return true;
}

/* One day's keys of the matching rows, per hour. */
struct hour_keys {
    const char **argv;
    size_t *argvlen;
    size_t argc, cap;
};

static void keys_push(struct hour_keys *k, const char *s, size_t len)
{
    if (k->argc == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->argv = xrealloc(k->argv, k->cap * sizeof *k->argv);
        k->argvlen = xrealloc(k->argvlen, k->cap * sizeof *k->argvlen);
    }
    k->argv[k->argc] = s;
    k->argvlen[k->argc++] = len;
}

/* One day: counters of the matching rows into out[0..24), visitors by
 * one PFCOUNT per hour. */
static int one_day(redisContext *rc, const char *site, const char *dim, const char *property,
                   period_day day, query_row_match_fn match, void *arg,
                   struct query_totals *out, char *err, size_t errlen)
{
    const struct schema_dim *sd = schema_find(dim);
    /* the metric listed once per (hour, row) that has visitors */
    const char *key_metric = sd && sd->visitors == SCHEMA_U_PER_VISIT ? "vis" : "ev";
    char base[1024], hours_key[1100], hb_key[1200];
    size_t bl = day_base(base, sizeof base, site, day);
    if (!bl || !str_format(hours_key, sizeof hours_key, "%shours", base) ||
        !str_format(hb_key, sizeof hb_key, "%shb:%s", base, dim)) {
        str_format(err, errlen, "site: too long");
        return -1;
    }
    if (redisAppendCommand(rc, "HGETALL %s", hours_key) != REDIS_OK ||
        redisAppendCommand(rc, "HGETALL %s", hb_key) != REDIS_OK)
        return redis_error(rc, NULL, err, errlen);
    redisReply *replies[2] = {NULL, NULL};
    int status = 0;
    for (int i = 0; i < 2; i++) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK || !rep) {
            status = redis_error(rc, NULL, err, errlen);
            break;
        }
        replies[i] = rep;
        if (status == 0 && replies[i]->type != REDIS_REPLY_ARRAY)
            status = redis_error(rc, replies[i], err, errlen);
    }
    char dstr[11];
    period_format_day(day, dstr);
    int bad;
    if (status == 0 && !hours_covered(replies[0], &bad)) {
        str_format(err, errlen,
                   "filters: %s %02d:00 was counted before hourly rows were kept (its hours "
                   "are totals of the site only), so %s cannot be filtered by the hour there; "
                   "ask interval=day (time:day) with this filter",
                   dstr, bad, property);
        status = 1;
    }
    /* the keys of each hour: "<base>hu:<dim>:<HH>:<row>" */
    struct hour_keys keys[24];
    memset(keys, 0, sizeof keys);
    const redisReply *hb = replies[1];
    for (size_t f = 0; status == 0 && f + 1 < hb->elements; f += 2) {
        const redisReply *name = hb->element[f];
        long long v;
        int h;
        if (name->type != REDIS_REPLY_STRING || (h = field_hour(name->str, name->len)) < 0 ||
            !reply_ll(hb->element[f + 1], &v))
            continue;
        const char *metric = name->str + 3;
        const char *colon = memchr(metric, ':', name->len - 3);
        if (!colon)
            continue;
        size_t ml = (size_t)(colon - metric);
        const char *row = colon + 1;
        size_t rl = name->len - 3 - ml - 1;
        if (rl == strlen(QUERY_OTHER) && memcmp(row, QUERY_OTHER, rl) == 0) {
            if (v) {
                str_format(err, errlen,
                           "filters: on %s values of %s past breakdown_cap were counted "
                           "together as (other), and the filter may match some of them: it "
                           "cannot be answered exactly",
                           dstr, property);
                status = 1;
            }
            continue;
        }
        if (!match(arg, row, rl))
            continue;
        struct query_totals *t = &out[h];
        if (ml == 2 && memcmp(metric, "pv", 2) == 0)
            t->c[QC_PAGEVIEWS] += v;
        else if (ml == 2 && memcmp(metric, "ev", 2) == 0)
            t->c[QC_EVENTS] += v;
        else if (ml == 3 && memcmp(metric, "vis", 3) == 0)
            t->c[QC_VISITS] += v;
        if (ml != strlen(key_metric) || memcmp(metric, key_metric, ml) != 0)
            continue;
        char prefix[300];
        if (!hourly_visitors_prefix(prefix, sizeof prefix, dim, (unsigned)h))
            continue;
        size_t pl = strlen(prefix), kl = bl + pl + rl;
        char *k = xmalloc(kl + 1);
        memcpy(k, base, bl);
        memcpy(k + bl, prefix, pl);
        memcpy(k + bl + pl, row, rl);
        k[kl] = '\0';
        if (keys[h].argc == 0)
            keys_push(&keys[h], "PFCOUNT", 7);
        keys_push(&keys[h], k, kl);
    }
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    size_t sent = 0;
    int pending[24];
    for (int h = 0; status == 0 && h < 24; h++) {
        if (keys[h].argc < 2)
            continue;
        if (redisAppendCommandArgv(rc, (int)keys[h].argc, keys[h].argv, keys[h].argvlen) !=
            REDIS_OK) {
            status = redis_error(rc, NULL, err, errlen);
            break;
        }
        pending[sent++] = h;
    }
    /* every reply read, even after a failure, so the connection stays in step */
    for (size_t i = 0; i < sent; i++) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK || !rep) {
            status = redis_error(rc, NULL, err, errlen);
            break;
        }
        redisReply *r = rep;
        if (status == 0 && !reply_ll(r, &out[pending[i]].visitors))
            status = redis_error(rc, r, err, errlen);
        freeReplyObject(r);
    }
    for (int h = 0; h < 24; h++) {
        for (size_t i = 1; i < keys[h].argc; i++)
            free((char *)(uintptr_t)keys[h].argv[i]);
        free(keys[h].argv);
        free(keys[h].argvlen);
    }
    return status;
}

int query_hours_rows(redisContext *rc, const char *site, const char *dim, const char *property,
                     const struct period_range *range, query_row_match_fn match, void *arg,
                     struct query_totals *out, char *err, size_t errlen)
{
    long days = period_range_days(range);
    if (days <= 0)
        return 0;
    if (days > PERIOD_MAX_HOURLY_DAYS) {
        str_format(err, errlen, "interval: hour covers at most 31 days");
        return -1;
    }
    memset(out, 0, (size_t)days * 24 * sizeof *out);
    for (long d = 0; d < days; d++) {
        int s = one_day(rc, site, dim, property, range->first + (period_day)d, match, arg,
                        out + d * 24, err, errlen);
        if (s != 0)
            return s;
    }
    return 0;
}
