/* query.c - reading daily counts back from Redis (see query.h and
 * docs/KEYS.md). A range is read as units (query_units.c): quarters,
 * months and weeks from their twin keys where those hold exactly the
 * range's days, the other days from their day keys. Commands are
 * pipelined in chunks; visitors are always HyperLogLog unions over the
 * units' keys. Never writes a count; the only write is a short-lived
 * query-scoped PFMERGE key for very large unions and the one-time SET NX
 * of the DP key. */
#include "query.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "dp.h"
#include "months.h"
#include "schema.h"
#include "rcluster.h"
#include "shard.h"
#include "util.h"

#define DP_KEY "veil:{0}:dpkey" /* one per installation, kept where it always was */
/* Commands in flight per pipeline round trip. */
#define PIPELINE_CHUNK 512
/* Keys per PFCOUNT; a larger union goes through PFMERGE in chunks. */
#define PFCOUNT_MAX_KEYS 4096

static const char *const counter_fields[QC__COUNT] = {
    [QC_PAGEVIEWS] = "pageviews",          [QC_EVENTS] = "events",
    [QC_VISITS] = "visits",                [QC_BOUNCES] = "bounces",
    [QC_VISIT_DURATION_S] = "visit_duration_s", [QC_SCROLL_SUM] = "scroll_sum",
    [QC_SCROLL_N] = "scroll_n",
};

const char *query_counter_field(enum query_counter c)
{
    return c < QC__COUNT ? counter_fields[c] : "";
}

/* ---- keys ---- */

/* Written once at start-up (query_set_shards), before any query thread. */
static unsigned query_shards = SHARDS_DEFAULT;
void query_set_shards(unsigned shards)
{
    query_shards = shards ? shards : 1;
}

/* "veil:{<shard of site>}:" into buf (SHARD_PREFIX_MAX); its length. */
static size_t site_prefix(const char *site, char *buf)
{
    return shard_key_prefix(buf, SHARD_PREFIX_MAX,
                            shard_of_site(site, strlen(site), query_shards));
}

/* ---- a command under construction ---- */

struct cmd {
    size_t argc, cap;
    char **owned;        /* the strings, freed by cmd_reset */
    const char **argv;   /* the same pointers, as hiredis takes them */
    size_t *argvlen;
};

static void cmd_push(struct cmd *c, char *owned, size_t len)
{
    if (c->argc == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->owned = xrealloc(c->owned, c->cap * sizeof *c->owned);
        c->argv = xrealloc(c->argv, c->cap * sizeof *c->argv);
        c->argvlen = xrealloc(c->argvlen, c->cap * sizeof *c->argvlen);
    }
    c->owned[c->argc] = owned;
    c->argv[c->argc] = owned;
    c->argvlen[c->argc++] = len;
}

static void cmd_push_str(struct cmd *c, const char *s)
{
    cmd_push(c, xstrdup(s), strlen(s));
}

static void cmd_reset(struct cmd *c)
{
    for (size_t i = 0; i < c->argc; i++)
        free(c->owned[i]);
    c->argc = 0;
}

static void cmd_free(struct cmd *c)
{
    cmd_reset(c);
    free(c->owned);
    free(c->argv);
    free(c->argvlen);
}

/* Push the key "veil:{s}:<d|w|m>:<site>:<unit>:<tail><value>". */
static void cmd_push_unit_key(struct cmd *c, const char *site, struct query_unit unit,
                              const char *tail, const char *value, size_t value_len)
{
    size_t len;
    char *key = query_unit_key(site, unit, tail, value, value_len, &len);
    cmd_push(c, key, len);
}

/* Push the key "veil:{s}:d:<site>:<day>:<tail><value>". */
static void cmd_push_day_key(struct cmd *c, const char *site, period_day day, const char *tail,
                             const char *value, size_t value_len)
{
    cmd_push_unit_key(c, site, (struct query_unit){day, MONTHS_DAY}, tail, value, value_len);
}

static int cmd_append(redisContext *rc, struct cmd *c)
{
    int r = redisAppendCommandArgv(rc, (int)c->argc, c->argv, c->argvlen);
    cmd_reset(c);
    return r == REDIS_OK ? 0 : -1;
}

/* Write why a command failed (no reply, an error reply, or a reply of the
 * wrong type) into err; returns -1. */
static int redis_fail(redisContext *rc, const redisReply *r, char *err, size_t errlen)
{
    if (!r)
        str_format(err, errlen, "redis: %s", rc && rc->errstr[0] ? rc->errstr : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        str_format(err, errlen, "redis: %.*s", (int)r->len, r->str);
    else
        str_format(err, errlen, "redis: unexpected reply type %d", r->type);
    return -1;
}

/* ---- pipelining ---- */

/* append_cb adds command i to the context; reply_cb consumes its reply
 * (which it must not free). Both get the caller's context in arg. */
typedef int (*append_cb)(redisContext *rc, size_t i, void *arg);
typedef int (*reply_cb)(const redisReply *r, size_t i, void *arg, char *err, size_t errlen);

static int pipeline(redisContext *rc, size_t n, append_cb append, reply_cb on_reply, void *arg,
                    char *err, size_t errlen)
{
    for (size_t base = 0; base < n; base += PIPELINE_CHUNK) {
        size_t end = base + PIPELINE_CHUNK < n ? base + PIPELINE_CHUNK : n;
        for (size_t i = base; i < end; i++) {
            if (append(rc, i, arg) != 0)
                return redis_fail(rc, NULL, err, errlen);
        }
        int status = 0;
        /* Read every reply of the chunk even after a failure, so the
         * connection stays in step for the next request. */
        for (size_t i = base; i < end; i++) {
            void *reply = NULL;
            if (redisGetReply(rc, &reply) != REDIS_OK || !reply)
                return redis_fail(rc, NULL, err, errlen);
            redisReply *r = reply;
            if (status == 0) {
                if (r->type == REDIS_REPLY_ERROR)
                    status = redis_fail(rc, r, err, errlen);
                else
                    status = on_reply(r, i, arg, err, errlen);
            }
            freeReplyObject(r);
        }
        if (status != 0)
            return -1;
    }
    return 0;
}

static bool reply_integer(const redisReply *r, long long *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    if (r->type == REDIS_REPLY_STRING)
        return safe_strtoll_n(r->str, r->len, -(1LL << 62), 1LL << 62, out);
    return false;
}

/* ---- HyperLogLog unions ---- */

static void push_union_keys(struct cmd *c, const char *site, const struct stats_row *row,
                            const char *tail)
{
    for (size_t d = 0; d < row->nunits; d++)
        cmd_push_unit_key(c, site, row->units[d], tail, row->value, row->value_len);
}

/* PFCOUNT of the keys in c->argv[1..]: one command when small enough,
 * else PFMERGE into a query-scoped key in chunks. c is consumed. */
static int pfcount_union(redisContext *rc, struct cmd *c, long long *out, char *err, size_t errlen)
{
    redisReply *r;
    size_t nkeys = c->argc - 1;
    if (nkeys == 0) {
        *out = 0;
        cmd_reset(c);
        return 0;
    }
    if (nkeys <= PFCOUNT_MAX_KEYS) {
        r = redisCommandArgv(rc, (int)c->argc, c->argv, c->argvlen);
        cmd_reset(c);
        int status = r && reply_integer(r, out) ? 0 : redis_fail(rc, r, err, errlen);
        if (r)
            freeReplyObject(r);
        return status;
    }
    /* in the slot of the keys it merges: their "veil:{s}:" */
    char tmp[64], prefix[SHARD_PREFIX_MAX] = "veil:{0}:";
    const char *tag_end = memchr(c->argv[1], '}', c->argvlen[1]);
    if (tag_end && (size_t)(tag_end - c->argv[1]) + 2 < sizeof prefix)
        str_copy(prefix, sizeof prefix, c->argv[1], (size_t)(tag_end - c->argv[1]) + 2);
    unsigned char id[8];
    randombytes_buf(id, sizeof id);
    str_format(tmp, sizeof tmp, "%stmp:union:%02x%02x%02x%02x%02x%02x%02x%02x", prefix, id[0],
               id[1], id[2], id[3], id[4], id[5], id[6], id[7]);
    int status = 0;
    for (size_t base = 1; base < c->argc && status == 0; base += PFCOUNT_MAX_KEYS) {
        size_t end = base + PFCOUNT_MAX_KEYS < c->argc ? base + PFCOUNT_MAX_KEYS : c->argc;
        size_t argc = end - base + 2;
        const char **argv = xcalloc(argc, sizeof *argv);
        size_t *argvlen = xcalloc(argc, sizeof *argvlen);
        argv[0] = "PFMERGE";
        argvlen[0] = 7;
        argv[1] = tmp;
        argvlen[1] = strlen(tmp);
        for (size_t i = base; i < end; i++) {
            argv[i - base + 2] = c->argv[i];
            argvlen[i - base + 2] = c->argvlen[i];
        }
        r = redisCommandArgv(rc, (int)argc, argv, argvlen);
        free(argv);
        free(argvlen);
        if (!r || r->type == REDIS_REPLY_ERROR)
            status = redis_fail(rc, r, err, errlen);
        if (r)
            freeReplyObject(r);
        if (status == 0 && base == 1) {
            r = redisCommand(rc, "EXPIRE %s 60", tmp);
            if (r)
                freeReplyObject(r);
        }
    }
    cmd_reset(c);
    if (status == 0) {
        r = redisCommand(rc, "PFCOUNT %s", tmp);
        status = r && reply_integer(r, out) ? 0 : redis_fail(rc, r, err, errlen);
        if (r)
            freeReplyObject(r);
    }
    r = redisCommand(rc, "DEL %s", tmp);
    if (r)
        freeReplyObject(r);
    return status;
}

/* ---- totals ---- */

struct totals_job {
    size_t bucket;
    struct query_unit unit; /* HGETALL totals of this unit, or ... */
    bool pfcount;           /* ... PFCOUNT over the bucket's units' HLLs */
};

struct totals_ctx {
    const char *site;
    const struct query_units *units; /* of each bucket */
    struct query_totals *out;
    struct totals_job *jobs;
    struct cmd cmd;
};

static int totals_append_cb(redisContext *rc, size_t i, void *arg)
{
    struct totals_ctx *t = arg;
    const struct totals_job *job = &t->jobs[i];
    if (job->pfcount) {
        const struct query_units *b = &t->units[job->bucket];
        cmd_push_str(&t->cmd, "PFCOUNT");
        for (size_t u = 0; u < b->n; u++)
            cmd_push_unit_key(&t->cmd, t->site, b->u[u], "visitors", NULL, 0);
    } else {
        cmd_push_str(&t->cmd, "HGETALL");
        cmd_push_unit_key(&t->cmd, t->site, job->unit, "totals", NULL, 0);
    }
    return cmd_append(rc, &t->cmd);
}

static int totals_reply_cb(const redisReply *r, size_t i, void *arg, char *err, size_t errlen)
{
    struct totals_ctx *t = arg;
    struct query_totals *q = &t->out[t->jobs[i].bucket];
    if (t->jobs[i].pfcount) {
        if (!reply_integer(r, &q->visitors)) {
            str_format(err, errlen, "redis: PFCOUNT answered type %d", r->type);
            return -1;
        }
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: HGETALL answered type %d", r->type);
        return -1;
    }
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *name = r->element[f];
        long long v;
        if (name->type != REDIS_REPLY_STRING || !reply_integer(r->element[f + 1], &v))
            continue;
        for (int c = 0; c < QC__COUNT; c++) {
            if (strlen(counter_fields[c]) == name->len &&
                memcmp(counter_fields[c], name->str, name->len) == 0)
                q->c[c] += v;
        }
    }
    return 0;
}

int query_totals(redisContext *rc, const char *site, const struct period_range *buckets,
                 size_t nbuckets, struct query_totals *out, char *err, size_t errlen)
{
    struct query_units *units = xcalloc(nbuckets ? nbuckets : 1, sizeof *units);
    if (query_units(rc, site, buckets, nbuckets, units, err, errlen) != 0) {
        free(units);
        return -1;
    }
    size_t njobs = 0;
    for (size_t b = 0; b < nbuckets; b++)
        njobs += units[b].n + 1;
    struct totals_ctx t = {site, units, out, xcalloc(njobs ? njobs : 1, sizeof *t.jobs), {0}};
    size_t j = 0;
    for (size_t b = 0; b < nbuckets; b++) {
        memset(&out[b], 0, sizeof out[b]);
        for (size_t u = 0; u < units[b].n; u++)
            t.jobs[j++] = (struct totals_job){b, units[b].u[u], false};
        t.jobs[j++] = (struct totals_job){b, {0, MONTHS_DAY}, true};
    }
    int status = pipeline(rc, njobs, totals_append_cb, totals_reply_cb, &t, err, errlen);
    cmd_free(&t.cmd);
    free(t.jobs);
    query_units_free(units, nbuckets);
    free(units);
    return status;
}

/* ---- local hours ---- */

struct hours_ctx {
    const char *site;
    period_day first;
    struct query_totals *out;
    struct cmd cmd;
};

/* command i: day i / 25; 0 = HGETALL hours, 1..24 = PFCOUNT hv:<HH> */
static int hours_append_cb(redisContext *rc, size_t i, void *arg)
{
    struct hours_ctx *h = arg;
    period_day day = h->first + (period_day)(i / 25);
    size_t k = i % 25;
    if (k == 0) {
        cmd_push_str(&h->cmd, "HGETALL");
        cmd_push_day_key(&h->cmd, h->site, day, "hours", NULL, 0);
    } else {
        char hv[8] = {'h', 'v', ':', (char)('0' + (k - 1) / 10), (char)('0' + (k - 1) % 10), 0};
        cmd_push_str(&h->cmd, "PFCOUNT");
        cmd_push_day_key(&h->cmd, h->site, day, hv, NULL, 0);
    }
    return cmd_append(rc, &h->cmd);
}

static int hours_reply_cb(const redisReply *r, size_t i, void *arg, char *err, size_t errlen)
{
    struct hours_ctx *h = arg;
    struct query_totals *day = &h->out[i / 25 * 24];
    size_t k = i % 25;
    if (k > 0) {
        if (!reply_integer(r, &day[k - 1].visitors)) {
            str_format(err, errlen, "redis: PFCOUNT answered type %d", r->type);
            return -1;
        }
        return 0;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: HGETALL answered type %d", r->type);
        return -1;
    }
    /* fields "<HH>:<counter>" */
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *name = r->element[f];
        long long v;
        if (name->type != REDIS_REPLY_STRING || name->len < 4 || name->str[2] != ':' ||
            name->str[0] < '0' || name->str[0] > '2' || name->str[1] < '0' ||
            name->str[1] > '9' || !reply_integer(r->element[f + 1], &v))
            continue;
        int hour = (name->str[0] - '0') * 10 + (name->str[1] - '0');
        if (hour > 23)
            continue;
        for (int c = 0; c < QC__COUNT; c++) {
            if (strlen(counter_fields[c]) == name->len - 3 &&
                memcmp(counter_fields[c], name->str + 3, name->len - 3) == 0)
                day[hour].c[c] += v;
        }
    }
    return 0;
}

int query_hours(redisContext *rc, const char *site, const struct period_range *range,
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
    struct hours_ctx h = {site, range->first, out, {0}};
    int status = pipeline(rc, (size_t)days * 25, hours_append_cb, hours_reply_cb, &h, err, errlen);
    cmd_free(&h.cmd);
    return status;
}

/* ---- breakdown ---- */

struct breakdown_ctx {
    const char *site;
    const char *dim;
    unsigned metric[3];   /* the dim's metrics (schema.h), read for each day */
    size_t nmetrics;
    const struct query_units *units; /* of the range */
    struct stats_rows *out;
    size_t rows_cap;
    uint32_t *index;      /* open addressing: row number + 1, 0 = empty */
    size_t index_cap;     /* power of two */
    const char *const *values; /* when nvalues: only these rows (HMGET), and "(other)" */
    const size_t *value_lens;
    size_t nvalues;
    struct cmd cmd;
};

static uint64_t value_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static void index_insert(struct breakdown_ctx *b, size_t row)
{
    const struct stats_row *r = &b->out->rows[row];
    size_t mask = b->index_cap - 1, i = value_hash(r->value, r->value_len) & mask;
    while (b->index[i])
        i = (i + 1) & mask;
    b->index[i] = (uint32_t)(row + 1);
}

static struct stats_row *row_find_or_add(struct breakdown_ctx *b, const char *value, size_t len)
{
    size_t mask = b->index_cap - 1, i = value_hash(value, len) & mask;
    for (; b->index[i]; i = (i + 1) & mask) {
        struct stats_row *r = &b->out->rows[b->index[i] - 1];
        if (r->value_len == len && memcmp(r->value, value, len) == 0)
            return r;
    }
    if (b->out->n == b->rows_cap) {
        b->rows_cap = b->rows_cap ? b->rows_cap * 2 : 64;
        b->out->rows = xrealloc(b->out->rows, b->rows_cap * sizeof *b->out->rows);
    }
    struct stats_row *r = &b->out->rows[b->out->n];
    memset(r, 0, sizeof *r);
    r->value = xmalloc(len + 1);
    memcpy(r->value, value, len);
    r->value[len] = '\0';
    r->value_len = len;
    b->out->n++;
    if (b->out->n * 2 > b->index_cap) {
        free(b->index);
        b->index_cap *= 2;
        b->index = xcalloc(b->index_cap, sizeof *b->index);
        for (size_t k = 0; k < b->out->n; k++)
            index_insert(b, k);
    } else {
        b->index[i] = (uint32_t)b->out->n;
    }
    return r;
}

static void row_add_unit(struct stats_row *r, struct query_unit unit)
{
    if (r->nunits && r->units[r->nunits - 1].first == unit.first &&
        r->units[r->nunits - 1].kind == unit.kind)
        return;
    if (r->nunits == r->units_cap) {
        r->units_cap = r->units_cap ? r->units_cap * 2 : 4;
        r->units = xrealloc(r->units, r->units_cap * sizeof *r->units);
    }
    r->units[r->nunits++] = unit;
}

static int rows_append_cb(redisContext *rc, size_t i, void *arg)
{
    struct breakdown_ctx *b = arg;
    char tail[300];
    str_format(tail, sizeof tail, "b:%s:%s", b->dim,
               schema_metric_name(b->metric[i % b->nmetrics]));
    cmd_push_str(&b->cmd, b->nvalues ? "HMGET" : "HGETALL");
    cmd_push_unit_key(&b->cmd, b->site, b->units->u[i / b->nmetrics], tail, NULL, 0);
    for (size_t v = 0; b->nvalues && v <= b->nvalues; v++) {
        const char *value = v < b->nvalues ? b->values[v] : QUERY_OTHER;
        size_t len = v < b->nvalues ? b->value_lens[v] : strlen(QUERY_OTHER);
        char *copy = xmalloc(len + 1);
        memcpy(copy, value, len);
        copy[len] = '\0';
        cmd_push(&b->cmd, copy, len);
    }
    return cmd_append(rc, &b->cmd);
}

static int rows_reply_cb(const redisReply *r, size_t i, void *arg, char *err, size_t errlen)
{
    struct breakdown_ctx *b = arg;
    if (r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: HGETALL answered type %d", r->type);
        return -1;
    }
    /* HGETALL: name, count, ...; HMGET: the count of each asked name */
    size_t step = b->nvalues ? 1 : 2, skip = b->nvalues ? 0 : 1;
    for (size_t f = 0; f + skip < r->elements; f += step) {
        redisReply asked = {.type = REDIS_REPLY_STRING};
        const redisReply *name = r->element[f];
        if (b->nvalues) {
            asked.str = (char *)(uintptr_t)(f < b->nvalues ? b->values[f] : QUERY_OTHER);
            asked.len = f < b->nvalues ? b->value_lens[f] : strlen(QUERY_OTHER);
            name = &asked;
        }
        long long v;
        if (name->type != REDIS_REPLY_STRING || r->element[f + skip]->type == REDIS_REPLY_NIL ||
            !reply_integer(r->element[f + skip], &v) || memchr(name->str, '\0', name->len))
            continue;
        if (b->out->n >= UINT32_MAX / 4) {
            str_format(err, errlen, "too many breakdown rows");
            return -1;
        }
        struct stats_row *row = row_find_or_add(b, name->str, name->len);
        switch (b->metric[i % b->nmetrics]) {
        case SCHEMA_PV: row->pageviews += v; break;
        case SCHEMA_VIS: row->visits += v; break;
        default: row->events += v; break;
        }
        row_add_unit(row, b->units->u[i / b->nmetrics]);
    }
    return 0;
}

static int visitors_append_cb(redisContext *rc, size_t i, void *arg)
{
    struct breakdown_ctx *b = arg;
    char tail[300];
    str_format(tail, sizeof tail, "u:%s:", b->dim);
    cmd_push_str(&b->cmd, "PFCOUNT");
    push_union_keys(&b->cmd, b->site, &b->out->rows[i], tail);
    return cmd_append(rc, &b->cmd);
}

static int visitors_reply_cb(const redisReply *r, size_t i, void *arg, char *err, size_t errlen)
{
    struct breakdown_ctx *b = arg;
    if (!reply_integer(r, &b->out->rows[i].visitors)) {
        str_format(err, errlen, "redis: PFCOUNT answered type %d", r->type);
        return -1;
    }
    return 0;
}

/* Keep the rows keep() accepts, and "(other)"; free the rest. */
static void rows_keep(struct stats_rows *rows, query_row_keep keep, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < rows->n; i++) {
        struct stats_row *r = &rows->rows[i];
        bool other = r->value_len == strlen(QUERY_OTHER) &&
                     memcmp(r->value, QUERY_OTHER, r->value_len) == 0;
        if (other || keep(r->value, r->value_len, arg)) {
            rows->rows[n++] = *r;
        } else {
            free(r->value);
            free(r->units);
        }
    }
    rows->n = n;
}

int query_breakdown(redisContext *rc, const char *site, const char *dim,
                    const struct period_range *range, struct stats_rows *out,
                    char *err, size_t errlen)
{
    return query_breakdown_where(rc, site, dim, range, NULL, NULL, out, err, errlen);
}

static int breakdown(redisContext *rc, const char *site, const char *dim,
                     const struct period_range *range, query_row_keep keep, void *arg,
                     const char *const *values, const size_t *value_lens, size_t nvalues,
                     bool days_only, struct stats_rows *out, char *err, size_t errlen);

int query_breakdown_days(redisContext *rc, const char *site, const char *dim,
                         const struct period_range *range, struct stats_rows *out, char *err,
                         size_t errlen)
{
    return breakdown(rc, site, dim, range, NULL, NULL, NULL, NULL, 0, true, out, err, errlen);
}

int query_breakdown_where(redisContext *rc, const char *site, const char *dim,
                          const struct period_range *range, query_row_keep keep, void *arg,
                          struct stats_rows *out, char *err, size_t errlen)
{
    return breakdown(rc, site, dim, range, keep, arg, NULL, NULL, 0, false, out, err, errlen);
}

int query_breakdown_values(redisContext *rc, const char *site, const char *dim,
                           const struct period_range *range, const char *const *values,
                           const size_t *value_lens, size_t nvalues, struct stats_rows *out,
                           char *err, size_t errlen)
{
    if (nvalues == 0) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    return breakdown(rc, site, dim, range, NULL, NULL, values, value_lens, nvalues, false, out,
                     err, errlen);
}

static int breakdown(redisContext *rc, const char *site, const char *dim,
                     const struct period_range *range, query_row_keep keep, void *arg,
                     const char *const *values, const size_t *value_lens, size_t nvalues,
                     bool days_only, struct stats_rows *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct query_units units;
    if (days_only || !months_dim_mirrored(dim)) /* a dim without twins: its days */
        query_units_days(range, &units);
    else if (query_units(rc, site, range, 1, &units, err, errlen) != 0)
        return -1;
    struct breakdown_ctx b = {site,   dim,        {0},     0,  &units, out, 0, NULL, 64,
                              values, value_lens, nvalues, {0}};
    /* only the hashes the dimension has (schema.h): pv, vis, ev in turn */
    const struct schema_dim *sd = schema_find(dim);
    unsigned metrics = sd ? sd->metrics : SCHEMA_PV | SCHEMA_EV | SCHEMA_VIS;
    const unsigned order[3] = {SCHEMA_PV, SCHEMA_VIS, SCHEMA_EV};
    for (size_t m = 0; m < 3; m++)
        if (metrics & order[m])
            b.metric[b.nmetrics++] = order[m];
    b.index = xcalloc(b.index_cap, sizeof *b.index);
    size_t ncmds = units.n * b.nmetrics;
    int status = pipeline(rc, ncmds, rows_append_cb, rows_reply_cb, &b, err, errlen);
    if (status == 0 && keep)
        rows_keep(out, keep, arg);
    if (status == 0)
        status = pipeline(rc, out->n, visitors_append_cb, visitors_reply_cb, &b, err, errlen);
    cmd_free(&b.cmd);
    free(b.index);
    query_units_free(&units, 1);
    if (status != 0)
        query_rows_free(out);
    return status;
}

int query_rows_union_visitors(redisContext *rc, const char *site, const char *dim,
                              const struct stats_row *rows, size_t n, long long *visitors,
                              char *err, size_t errlen)
{
    struct cmd c = {0};
    char tail[300];
    str_format(tail, sizeof tail, "u:%s:", dim);
    cmd_push_str(&c, "PFCOUNT");
    for (size_t i = 0; i < n; i++)
        push_union_keys(&c, site, &rows[i], tail);
    int status = pfcount_union(rc, &c, visitors, err, errlen);
    cmd_free(&c);
    return status;
}

/* ---- any day hash, any union of day keys (api_pairs.c) ---- */

struct fields_ctx {
    const char *site;
    period_day first;
    const char *const *tails;
    size_t ntails;
    query_field_cb cb;
    void *arg;
    struct cmd cmd;
};

static int fields_append_cb(redisContext *rc, size_t i, void *arg)
{
    struct fields_ctx *f = arg;
    cmd_push_str(&f->cmd, "HGETALL");
    cmd_push_day_key(&f->cmd, f->site, f->first + (period_day)(i / f->ntails),
                     f->tails[i % f->ntails], NULL, 0);
    return cmd_append(rc, &f->cmd);
}

static int fields_reply_cb(const redisReply *r, size_t i, void *arg, char *err, size_t errlen)
{
    struct fields_ctx *f = arg;
    if (r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: HGETALL answered type %d", r->type);
        return -1;
    }
    for (size_t k = 0; k + 1 < r->elements; k += 2) {
        const redisReply *name = r->element[k];
        long long v;
        if (name->type != REDIS_REPLY_STRING || !reply_integer(r->element[k + 1], &v) ||
            memchr(name->str, '\0', name->len))
            continue;
        if (f->cb(f->arg, f->first + (period_day)(i / f->ntails), i % f->ntails, name->str,
                  name->len, v, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int query_day_fields(redisContext *rc, const char *site, const struct period_range *range,
                     const char *const *tails, size_t ntails, query_field_cb cb, void *arg,
                     char *err, size_t errlen)
{
    long days = period_range_days(range);
    if (days <= 0 || ntails == 0)
        return 0;
    struct fields_ctx f = {site, range->first, tails, ntails, cb, arg, {0}};
    int status = pipeline(rc, (size_t)days * ntails, fields_append_cb, fields_reply_cb, &f, err,
                          errlen);
    cmd_free(&f.cmd);
    return status;
}

int query_day_keys_union(redisContext *rc, const char *site, const struct query_day_key *keys,
                         size_t n, long long *visitors, char *err, size_t errlen)
{
    struct cmd c = {0};
    cmd_push_str(&c, "PFCOUNT");
    for (size_t i = 0; i < n; i++)
        cmd_push_day_key(&c, site, keys[i].day, keys[i].tail, keys[i].value, keys[i].value_len);
    int status = pfcount_union(rc, &c, visitors, err, errlen);
    cmd_free(&c);
    return status;
}

void query_rows_free(struct stats_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->rows[i].value);
        free(rows->rows[i].units);
    }
    free(rows->rows);
    rows->rows = NULL;
    rows->n = 0;
}

/* ---- realtime, sites, DP key ---- */

int query_realtime(redisContext *rc, const char *site, long long since, long long now,
                   long long *count, char *err, size_t errlen)
{
    /* the per-minute HyperLogLogs "<p>rt:<site>:<minute>" of the window */
    char prefix[SHARD_PREFIX_MAX];
    site_prefix(site, prefix);
    struct cmd c = {0};
    cmd_push_str(&c, "PFCOUNT");
    for (long long minute = since / 60; minute <= now / 60; minute++) {
        char key[512];
        if (!str_format(key, sizeof key, "%srt:%s:%lld", prefix, site, minute)) {
            cmd_free(&c);
            str_format(err, errlen, "site id too long");
            return -1;
        }
        cmd_push_str(&c, key);
    }
    redisReply *r = redisCommandArgv(rc, (int)c.argc, c.argv, c.argvlen);
    cmd_free(&c);
    int status = r && r->type == REDIS_REPLY_INTEGER ? 0 : redis_fail(rc, r, err, errlen);
    if (status == 0)
        *count = r->integer;
    if (r)
        freeReplyObject(r);
    return status;
}

static int site_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t query_site_prefix(const char *site, char buf[SHARD_PREFIX_MAX])
{
    return site_prefix(site, buf);
}

int query_sites(struct rcluster *cluster, char ***sites, size_t *n, char *err, size_t errlen)
{
    /* one SMEMBERS per shard, each on its shard's node (a SUNION would
     * cross slots) */
    *n = 0;
    char **list = NULL;
    size_t count = 0, cap = 0;
    int status = 0;
    *sites = NULL;
    for (unsigned s = 0; s < query_shards; s++) {
        char prefix[SHARD_PREFIX_MAX];
        shard_key_prefix(prefix, sizeof prefix, s);
        redisReply *r = rcluster_commandf(cluster, prefix, "SMEMBERS %ssites", prefix);
        if (!r) {
            str_format(err, errlen, "redis: %s", rcluster_errstr(cluster));
            status = -1;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY) {
            if (status == 0)
                status = redis_fail(NULL, r, err, errlen);
            freeReplyObject(r);
            continue;
        }
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_STRING || memchr(e->str, '\0', e->len))
                continue;
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                list = xrealloc(list, cap * sizeof *list);
            }
            list[count] = xmalloc(e->len + 1);
            memcpy(list[count], e->str, e->len);
            list[count++][e->len] = '\0';
        }
        freeReplyObject(r);
    }
    if (status != 0) {
        for (size_t i = 0; i < count; i++)
            free(list[i]);
        free(list);
        return status;
    }
    if (count)
        qsort(list, count, sizeof *list, site_cmp);
    /* a site lives in one shard; drop duplicates all the same */
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (kept && strcmp(list[kept - 1], list[i]) == 0)
            free(list[i]);
        else
            list[kept++] = list[i];
    }
    *sites = list ? list : xcalloc(1, sizeof *list);
    *n = kept;
    return 0;
}

int query_dp_key(redisContext *rc, unsigned char key[32], char *err, size_t errlen)
{
    unsigned char fresh[DP_KEY_BYTES];
    dp_key_generate(fresh);
    redisReply *r = redisCommand(rc, "SET " DP_KEY " %b NX", fresh, sizeof fresh);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        int status = redis_fail(rc, r, err, errlen);
        if (r)
            freeReplyObject(r);
        return status;
    }
    freeReplyObject(r);
    r = redisCommand(rc, "GET " DP_KEY);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != DP_KEY_BYTES) {
        if (r && r->type == REDIS_REPLY_STRING)
            str_format(err, errlen, "redis: " DP_KEY " is not %d bytes", DP_KEY_BYTES);
        else
            redis_fail(rc, r, err, errlen);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    memcpy(key, r->str, DP_KEY_BYTES);
    freeReplyObject(r);
    return 0;
}
