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

/* What one day's reading collects. */
struct day_ctx {
    const char *dim, *property;
    bool per_visit;            /* the dim's visitors are added per visit */
    const char *base;
    size_t bl;
    char dstr[11];
    query_row_match_fn match;
    void *arg;
    struct query_totals *out;  /* 24 hours */
    struct hour_keys keys[24]; /* the matching rows' "<base>hu:<dim>:<HH>:<row>" */
    char *err;
    size_t errlen;
};

/* One field "<HH>:<metric>:<row>" = v of hb:<dim>. 0, or 1 with a reason
 * (an "(other)" row with counts). */
static int take(struct day_ctx *c, int h, const char *metric, size_t ml, const char *row,
                size_t rl, long long v)
{
    if (rl == strlen(QUERY_OTHER) && memcmp(row, QUERY_OTHER, rl) == 0) {
        if (!v)
            return 0;
        str_format(c->err, c->errlen,
                   "filters: on %s values of %s past breakdown_cap were counted together as "
                   "(other), and the filter may match some of them: it cannot be answered "
                   "exactly",
                   c->dstr, c->property);
        return 1;
    }
    if (!v || !c->match(c->arg, row, rl))
        return 0;
    struct query_totals *t = &c->out[h];
    bool vis = ml == 3 && memcmp(metric, "vis", 3) == 0;
    if (ml == 2 && memcmp(metric, "pv", 2) == 0) {
        t->c[QC_PAGEVIEWS] += v;
        t->c[QC_EVENTS] += v; /* events are page views plus "oe" */
    } else if (ml == 2 && (memcmp(metric, "oe", 2) == 0 || memcmp(metric, "ev", 2) == 0)) {
        t->c[QC_EVENTS] += v;
    } else if (vis) {
        t->c[QC_VISITS] += v;
    }
    /* the row's visitors of the hour: per visit, or per event (listed once
     * per counter of events, so maybe twice: PFCOUNT does not mind) */
    char prefix[300];
    if (c->per_visit != vis || !hourly_visitors_prefix(prefix, sizeof prefix, c->dim, (unsigned)h))
        return 0;
    size_t pl = strlen(prefix), kl = c->bl + pl + rl;
    char *k = xmalloc(kl + 1);
    memcpy(k, c->base, c->bl);
    memcpy(k + c->bl, prefix, pl);
    memcpy(k + c->bl + pl, row, rl);
    k[kl] = '\0';
    if (c->keys[h].argc == 0)
        keys_push(&c->keys[h], "PFCOUNT", 7);
    keys_push(&c->keys[h], k, kl);
    return 0;
}

/* The fields of the hb:<dim> hash (HGETALL). */
static int take_all(struct day_ctx *c, const redisReply *hb)
{
    for (size_t f = 0; f + 1 < hb->elements; f += 2) {
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
        if (take(c, h, metric, ml, colon + 1, name->len - 3 - ml - 1, v) != 0)
            return 1;
    }
    return 0;
}

/* The metrics the dim keeps (schema.h), as field names. */
static size_t dim_metrics(const struct schema_dim *sd, const char *names[3])
{
    size_t n = 0;
    if (sd->metrics & SCHEMA_PV)
        names[n++] = "pv";
    if (sd->metrics & SCHEMA_EV)
        names[n++] = sd->metrics & SCHEMA_PV ? "oe" : "ev";
    if (sd->metrics & SCHEMA_VIS)
        names[n++] = "vis";
    return n;
}

/* The HMGET of exact values: fields "<HH>:<metric>:<value>" of every hour,
 * metric and value, and of "(other)". */
static void exact_fields(const struct schema_dim *sd, const char *const *values,
                         size_t nvalues, struct hour_keys *fields)
{
    const char *metrics[3];
    size_t nm = dim_metrics(sd, metrics);
    for (unsigned h = 0; h < 24; h++) {
        for (size_t m = 0; m < nm; m++) {
            for (size_t i = 0; i <= nvalues; i++) {
                const char *v = i < nvalues ? values[i] : QUERY_OTHER;
                char prefix[9];
                hourly_field_prefix(prefix, h, metrics[m]);
                size_t pl = strlen(prefix), vl = strlen(v);
                char *f = xmalloc(pl + vl + 1);
                memcpy(f, prefix, pl);
                memcpy(f + pl, v, vl + 1);
                keys_push(fields, f, pl + vl);
            }
        }
    }
}

/* The HMGET's answers, field i of fields (argv[2..]) to reply element i.
 * A value with its own row on the day is never in that day's "(other)"
 * (a value past the cap goes to "(other)" for the whole day), so
 * "(other)" only matters when some asked value has no row of its own. */
static int take_exact(struct day_ctx *c, const struct hour_keys *fields, const redisReply *r,
                      const char *const *values, size_t nvalues)
{
    size_t ol = strlen(QUERY_OTHER);
    bool all_rows = true;
    for (size_t v = 0; v < nvalues && all_rows; v++) {
        size_t vl = strlen(values[v]);
        bool row = false;
        for (size_t i = 0; i < r->elements && i + 2 < fields->argc && !row; i++) {
            const char *f = fields->argv[i + 2];
            size_t fl = fields->argvlen[i + 2];
            const char *colon = memchr(f + 3, ':', fl - 3);
            long long n;
            row = colon && (size_t)(f + fl - (colon + 1)) == vl &&
                  memcmp(colon + 1, values[v], vl) == 0 && !(vl == ol && !memcmp(values[v], QUERY_OTHER, ol)) &&
                  r->element[i]->type == REDIS_REPLY_STRING && reply_ll(r->element[i], &n) && n;
        }
        all_rows = row;
    }
    for (size_t i = 0; i < r->elements && i + 2 < fields->argc; i++) {
        long long v;
        const char *f = fields->argv[i + 2];
        size_t fl = fields->argvlen[i + 2];
        if (r->element[i]->type != REDIS_REPLY_STRING || !reply_ll(r->element[i], &v))
            continue;
        const char *colon = memchr(f + 3, ':', fl - 3);
        size_t ml = (size_t)(colon - (f + 3)), rl = fl - 3 - ml - 1;
        if (all_rows && rl == ol && memcmp(colon + 1, QUERY_OTHER, ol) == 0)
            continue;
        if (take(c, field_hour(f, fl), f + 3, ml, colon + 1, rl, v) != 0)
            return 1;
    }
    return 0;
}

/* One day: counters of the matching rows into out[0..24), visitors by
 * one PFCOUNT per hour. `values` (nvalues of them), when not NULL, are the
 * exact values the filter matches: their fields are read with HMGET
 * instead of the whole hash. */
static int one_day(redisContext *rc, struct day_ctx *c, const char *site, period_day day,
                   const char *const *values, size_t nvalues)
{
    const struct schema_dim *sd = schema_find(c->dim);
    if (!sd) {
        str_format(c->err, c->errlen, "filters: unknown dimension");
        return -1;
    }
    c->per_visit = sd->visitors == SCHEMA_U_PER_VISIT;
    char base[1024], hours_key[1100], hb_key[1200];
    size_t bl = day_base(base, sizeof base, site, day);
    if (!bl || !str_format(hours_key, sizeof hours_key, "%shours", base) ||
        !str_format(hb_key, sizeof hb_key, "%shb:%s", base, c->dim)) {
        str_format(c->err, c->errlen, "site: too long");
        return -1;
    }
    c->base = base;
    c->bl = bl;
    period_format_day(day, c->dstr);
    memset(c->keys, 0, sizeof c->keys);
    struct hour_keys fields = {0};
    keys_push(&fields, "HMGET", 5);
    keys_push(&fields, hb_key, strlen(hb_key));
    if (values)
        exact_fields(sd, values, nvalues, &fields);
    int status = 0;
    if (redisAppendCommand(rc, "HGETALL %s", hours_key) != REDIS_OK ||
        (values ? redisAppendCommandArgv(rc, (int)fields.argc, fields.argv, fields.argvlen)
                : redisAppendCommand(rc, "HGETALL %s", hb_key)) != REDIS_OK)
        status = redis_error(rc, NULL, c->err, c->errlen);
    redisReply *replies[2] = {NULL, NULL};
    for (int i = 0; status == 0 && i < 2; i++) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK || !rep) {
            status = redis_error(rc, NULL, c->err, c->errlen);
            break;
        }
        replies[i] = rep;
    }
    for (int i = 0; status == 0 && i < 2; i++)
        if (replies[i]->type != REDIS_REPLY_ARRAY)
            status = redis_error(rc, replies[i], c->err, c->errlen);
    int bad;
    if (status == 0 && !hours_covered(replies[0], &bad)) {
        str_format(c->err, c->errlen,
                   "filters: %s %02d:00 was counted before hourly rows were kept (its hours "
                   "are totals of the site only), so %s cannot be filtered by the hour there; "
                   "ask interval=day (time:day) with this filter",
                   c->dstr, bad, c->property);
        status = 1;
    }
    if (status == 0)
        status = values ? take_exact(c, &fields, replies[1], values, nvalues)
                        : take_all(c, replies[1]);
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    for (size_t i = 2; i < fields.argc; i++)
        free((char *)(uintptr_t)fields.argv[i]);
    free(fields.argv);
    free(fields.argvlen);
    size_t sent = 0;
    int pending[24];
    for (int h = 0; status == 0 && h < 24; h++) {
        if (c->keys[h].argc < 2)
            continue;
        if (redisAppendCommandArgv(rc, (int)c->keys[h].argc, c->keys[h].argv,
                                   c->keys[h].argvlen) != REDIS_OK) {
            status = redis_error(rc, NULL, c->err, c->errlen);
            break;
        }
        pending[sent++] = h;
    }
    /* every reply read, even after a failure, so the connection stays in step */
    for (size_t i = 0; i < sent; i++) {
        void *rep = NULL;
        if (redisGetReply(rc, &rep) != REDIS_OK || !rep) {
            status = redis_error(rc, NULL, c->err, c->errlen);
            break;
        }
        redisReply *r = rep;
        if (status == 0 && !reply_ll(r, &c->out[pending[i]].visitors))
            status = redis_error(rc, r, c->err, c->errlen);
        freeReplyObject(r);
    }
    for (int h = 0; h < 24; h++) {
        for (size_t i = 1; i < c->keys[h].argc; i++)
            free((char *)(uintptr_t)c->keys[h].argv[i]);
        free(c->keys[h].argv);
        free(c->keys[h].argvlen);
    }
    return status;
}

int query_hours_rows(redisContext *rc, const char *site, const char *dim, const char *property,
                     const struct period_range *range, const char *const *values,
                     size_t nvalues, query_row_match_fn match, void *arg,
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
    struct day_ctx *c = xcalloc(1, sizeof *c);
    *c = (struct day_ctx){.dim = dim, .property = property, .match = match, .arg = arg,
                          .err = err, .errlen = errlen};
    int s = 0;
    for (long d = 0; s == 0 && d < days; d++) {
        c->out = out + d * 24;
        s = one_day(rc, c, site, range->first + (period_day)d, values, nvalues);
    }
    free(c);
    return s;
}
