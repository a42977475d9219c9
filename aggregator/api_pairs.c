/* api_pairs.c - queries answered from the two-dimensional counts (see
 * api_pairs.h and docs/KEYS.md "Pair counts"). It never logs a value. */
#include "api_pairs.h"

#include <stdlib.h>
#include <string.h>

#include "pairs.h"
#include "schema.h"
#include "strmap.h"
#include "util.h"

#define V1_PARTS_MAX 16 /* conditions in one v1 filters string */
/* Matching cell-days one query may gather (each a HyperLogLog key of a
 * union): bounds the stats API's memory and time per query. */
#define PAIRS_QUERY_CELLS_MAX 500000

/* ---- which pair answers a query ---- */

struct pair_query {
    struct pair_class c;
    const struct api_filter *cond[2]; /* on the class's first, second value; NULL: any */
    int group;                        /* rows by the first (0) or second (1) value, -1: one */
};

bool api_pairs_needed(const struct api_filter *f1, const struct api_filter *f2,
                      const char *bdim)
{
    return (f2 && f2->set) || (f1 && f1->set && bdim && strcmp(f1->dim, bdim) != 0);
}

static bool pair_query_make(const struct api_filter *f1, const struct api_filter *f2,
                            const char *bdim, const char *bproperty, struct pair_query *q,
                            char *err, size_t errlen)
{
    const char *dims[3], *props[3];
    size_t n = 0;
    const struct api_filter *fs[2] = {f1, f2};
    for (size_t i = 0; i < 2; i++)
        if (fs[i] && fs[i]->set) {
            dims[n] = fs[i]->dim;
            props[n++] = fs[i]->property;
        }
    if (bdim && (n < 2 || (strcmp(bdim, dims[0]) != 0 && strcmp(bdim, dims[1]) != 0))) {
        dims[n] = bdim;
        props[n++] = bproperty ? bproperty : bdim;
    }
    if (n == 3) {
        str_format(err, errlen,
                   "filters: a breakdown by %.40s under filters on %.40s and %.40s needs counts "
                   "per combination of three values, which Veil does not keep (pair counts "
                   "answer two properties at once)",
                   props[2], props[0], props[1]);
        return false;
    }
    if (n != 2 || strcmp(dims[0], dims[1]) == 0) {
        str_format(err, errlen, "filters: two filters on one property are one condition");
        return false;
    }
    char why[600];
    bool first0;
    if (!pairs_class_of(dims[0], dims[1], &q->c, &first0, why, sizeof why)) {
        str_format(err, errlen, "filters: %s", why);
        return false;
    }
    q->cond[0] = q->cond[1] = NULL;
    for (size_t i = 0; i < 2; i++)
        if (fs[i] && fs[i]->set)
            q->cond[strcmp(fs[i]->dim, q->c.first) == 0 ? 0 : 1] = fs[i];
    q->group = !bdim ? -1 : strcmp(bdim, q->c.first) == 0 ? 0 : 1;
    return true;
}

bool api_pairs_check(const struct api_filter *f1, const struct api_filter *f2,
                     const char *bdim, const char *bproperty, const char *const *metrics,
                     size_t nmetrics, char *err, size_t errlen)
{
    struct pair_query q;
    if (!pair_query_make(f1, f2, bdim, bproperty, &q, err, errlen))
        return false;
    for (size_t i = 0; i < nmetrics; i++) {
        const char *m = metrics[i];
        if (strcmp(m, "visitors") == 0 || (strcmp(m, "pageviews") == 0 && (q.c.metrics & SCHEMA_PV)) ||
            (strcmp(m, "events") == 0 && (q.c.metrics & SCHEMA_EV)) ||
            (strcmp(m, "visits") == 0 && (q.c.metrics & SCHEMA_VIS)))
            continue;
        str_format(err, errlen,
                   "filters: %s is not kept per pair of %s and %s values (a pair keeps "
                   "visitors and %s), so it cannot be answered exactly",
                   m, q.c.first, q.c.second,
                   q.c.kind == PAIR_PAGE   ? "pageviews"
                   : q.c.kind == PAIR_GOAL ? "pageviews and events"
                                           : "visits");
        return false;
    }
    return true;
}

/* The property a v1 condition is on: the text before its operator. */
static size_t condition_property(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] != '=' && s[i] != '!' && s[i] != '~')
        i++;
    return i;
}

bool api_pairs_parse_v1(const char *s, const char *breakdown_property,
                        const char *const *metrics, size_t nmetrics, struct api_filter *f1,
                        struct api_filter *f2, char *err, size_t errlen)
{
    memset(f1, 0, sizeof *f1);
    memset(f2, 0, sizeof *f2);
    const char *part[V1_PARTS_MAX];
    size_t plen[V1_PARTS_MAX], n = 0;
    for (const char *p = s;;) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (n == V1_PARTS_MAX) {
            str_format(err, errlen, "filters: at most %d conditions", V1_PARTS_MAX);
            return false;
        }
        part[n] = p;
        plen[n++] = len;
        if (!semi)
            break;
        p = semi + 1;
    }
    /* conditions grouped by property, in order of appearance */
    size_t group[V1_PARTS_MAX], ngroups = 0, first_of[3];
    for (size_t i = 0; i < n; i++) {
        size_t pl = condition_property(part[i], plen[i]);
        size_t g = 0;
        while (g < ngroups && !(condition_property(part[first_of[g]], plen[first_of[g]]) == pl &&
                                memcmp(part[first_of[g]], part[i], pl) == 0))
            g++;
        if (g == ngroups) {
            if (ngroups == 2) {
                str_format(err, errlen,
                           "filters: filters on three or more properties at once need counts "
                           "per combination of three values, which Veil does not keep: the "
                           "two-dimensional counts answer at most two properties at once");
                return false;
            }
            first_of[ngroups++] = i;
        }
        group[i] = g;
    }
    struct api_filter *out[2] = {f1, f2};
    char *buf = xmalloc(strlen(s) + 1);
    for (size_t g = 0; g < ngroups; g++) {
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            if (group[i] != g)
                continue;
            if (len)
                buf[len++] = ';';
            memcpy(buf + len, part[i], plen[i]);
            len += plen[i];
        }
        buf[len] = '\0';
        if (!api_filter_parse_v1(buf, NULL, metrics, nmetrics, out[g], err, errlen)) {
            free(buf);
            return false;
        }
    }
    free(buf);
    char bdim[96];
    unsigned bm;
    bool bv;
    const char *bd = NULL;
    if (breakdown_property && api_property_dim(breakdown_property, bdim, sizeof bdim, &bm, &bv))
        bd = bdim;
    if (!api_pairs_needed(f1, f2, bd))
        return true;
    return api_pairs_check(f1, f2, bd, breakdown_property, metrics, nmetrics, err, errlen);
}

/* ---- reading the cells ---- */

struct cell_group {
    char *value;              /* the breakdown value ("" for totals) */
    size_t len;
    long long count[3];       /* pageviews, events, visits */
    struct query_day_key *keys; /* its cells' visitor HyperLogLogs */
    size_t nkeys, keys_cap;
};

struct api_pair_cells {
    struct pair_query q;
    char tail_u[200];         /* "pu:<first>:<second>:" */
    struct cell_group *groups;
    size_t n, cap;
    uint32_t *index;          /* open addressing: group + 1, 0 = empty */
    size_t index_cap;         /* a power of two, at least twice n */
    long long other;          /* counts in "(other)" cells */
    long long marks;          /* overflow marks seen */
    bool refused;             /* a mark matches a filter, or "*" */
    size_t nkeys;             /* cell-days gathered, at most PAIRS_QUERY_CELLS_MAX */
    bool too_many;
    unsigned tail_metric[4];  /* the metric of each hash read per day, 0: the marks */
};

static int metric_slot(unsigned m)
{
    return m == SCHEMA_PV ? 0 : m == SCHEMA_EV ? 1 : 2;
}

static const unsigned metric_of_tail[3] = {SCHEMA_PV, SCHEMA_EV, SCHEMA_VIS};

static uint64_t value_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The group of value v, created when new. */
static struct cell_group *group_get(struct api_pair_cells *c, const char *v, size_t len)
{
    if ((c->n + 1) * 2 > c->index_cap) {
        free(c->index);
        c->index_cap = c->index_cap ? c->index_cap * 2 : 64;
        c->index = xcalloc(c->index_cap, sizeof *c->index);
        for (size_t k = 0; k < c->n; k++) {
            size_t i = value_hash(c->groups[k].value, c->groups[k].len) & (c->index_cap - 1);
            while (c->index[i])
                i = (i + 1) & (c->index_cap - 1);
            c->index[i] = (uint32_t)(k + 1);
        }
    }
    size_t i = value_hash(v, len) & (c->index_cap - 1);
    for (; c->index[i]; i = (i + 1) & (c->index_cap - 1)) {
        struct cell_group *g = &c->groups[c->index[i] - 1];
        if (g->len == len && memcmp(g->value, v, len) == 0)
            return g;
    }
    GROW(c->groups, c->n, c->cap);
    struct cell_group *g = &c->groups[c->n++];
    memset(g, 0, sizeof *g);
    g->value = xmalloc(len + 1);
    memcpy(g->value, v, len);
    g->value[len] = '\0';
    g->len = len;
    c->index[i] = (uint32_t)c->n;
    return g;
}

/* A field of the overflow marks (plan_pairs.c mark_folded): "1:<a>",
 * "2:<b>" or "*". */
static void mark_cb(struct api_pair_cells *c, const char *field, size_t flen)
{
    c->marks++;
    if (flen == 1 && field[0] == PAIRS_MARK_ALL[0]) {
        c->refused = true;
        return;
    }
    if (flen < 2 || (field[0] != '1' && field[0] != '2') || field[1] != ':')
        return;
    const struct api_filter *f = c->q.cond[field[0] - '1'];
    if (f && api_filter_matches(f, field + 2, flen - 2))
        c->refused = true;
}

static int cell_cb(void *arg, period_day day, size_t tail, const char *field, size_t flen,
                   long long value, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct api_pair_cells *c = arg;
    unsigned m = c->tail_metric[tail];
    if (!m) {
        mark_cb(c, field, flen);
        return 0;
    }
    const char *v[2];
    size_t vlen[2];
    if (!pairs_field_split(field, flen, &v[0], &vlen[0], &v[1], &vlen[1])) {
        if (flen == sizeof ROLLUP_OTHER - 1 && memcmp(field, ROLLUP_OTHER, flen) == 0)
            c->other += value;
        return 0;
    }
    for (size_t s = 0; s < 2; s++)
        if (c->q.cond[s] && !api_filter_matches(c->q.cond[s], v[s], vlen[s]))
            return 0;
    const char *gv = c->q.group < 0 ? "" : v[c->q.group];
    size_t glen = c->q.group < 0 ? 0 : vlen[c->q.group];
    struct cell_group *g = group_get(c, gv, glen);
    g->count[metric_slot(m)] += value;
    if (m == c->q.c.primary) {
        if (c->nkeys == PAIRS_QUERY_CELLS_MAX) {
            c->too_many = true;
            return 0;
        }
        c->nkeys++;
        GROW(g->keys, g->nkeys, g->keys_cap);
        char *f = xmalloc(flen + 1);
        memcpy(f, field, flen);
        f[flen] = '\0';
        g->keys[g->nkeys++] = (struct query_day_key){day, c->tail_u, f, flen};
    }
    return 0;
}

/* ---- days counted without pairs ---- */

struct marks {
    period_day first;
    unsigned char *state;     /* per day: bit 1 traffic, 2 counted with pairs, 4 without */
    long long (*batches)[7];  /* per day: batches with pairs, of them pairing first, second;
                                 page views and visits counted into pairs, and in totals */
    char dfield[2][40];       /* "d:<first>", "d:<second>" ("" for page and goal) */
};

static int marks_cb(void *arg, period_day day, size_t tail, const char *field, size_t flen,
                    long long value, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct marks *m = arg;
    unsigned char *s = &m->state[day - m->first];
    long long *n = m->batches[day - m->first];
#define IS(lit) (flen == sizeof lit - 1 && memcmp(field, lit, flen) == 0)
    if (tail == 1) { /* totals */
        if (value > 0 && (IS("events") || IS("pageviews")))
            *s |= 1;
        if (IS("pageviews"))
            n[5] = value;
        else if (IS("visits"))
            n[6] = value;
        return 0;
    }
    if (IS("batches") && value > 0) {
        *s |= 2;
        n[0] = value;
    } else if (IS("off") && value > 0) {
        *s |= 4;
    } else if (IS("pageviews")) {
        n[3] = value;
    } else if (IS("visits")) {
        n[4] = value;
    } else if (flen > 2 && field[0] == 'd' && field[1] == ':') {
        for (size_t k = 0; k < 2; k++)
            if (strlen(m->dfield[k]) == flen && memcmp(m->dfield[k], field, flen) == 0)
                n[1 + k] = value;
    }
#undef IS
    return 0;
}

/* 0 when every day of range with traffic was counted with pairs; 1 with
 * the reason in err; -1 on a Redis error. */
static int check_days(redisContext *rc, const char *site, const struct pair_query *q,
                      const struct period_range *range, char *err, size_t errlen)
{
    long days = period_range_days(range);
    if (days <= 0)
        return 0;
    struct marks m = {range->first, xcalloc((size_t)days, 1),
                      xcalloc((size_t)days, sizeof *m.batches), {"", ""}};
    const char *names[2] = {q->c.first, q->c.second};
    for (size_t k = 0; k < 2; k++)
        if (strcmp(names[k], "page") != 0 && strcmp(names[k], "goal") != 0)
            str_format(m.dfield[k], sizeof m.dfield[k], "d:%s", names[k]);
    static const char *const tails[2] = {PAIRS_KEY, "totals"};
    int status = query_day_fields(rc, site, range, tails, 2, marks_cb, &m, err, errlen);
    for (long d = 0; status == 0 && d < days; d++) {
        if (!(m.state[d] & 1))
            continue;
        char day[11];
        period_format_day(range->first + (period_day)d, day);
        const long long *n = m.batches[d];
        if (!(m.state[d] & 2) || (m.state[d] & 4) || n[3] != n[5] || n[4] != n[6]) {
            str_format(err, errlen,
                       "filters: %s was counted, at least in part, without two-dimensional "
                       "counts (before they existed, or with pair_budget 0), so %s with %s "
                       "cannot be answered exactly for a range that includes it",
                       day, q->c.first, q->c.second);
            status = 1;
        }
        for (size_t k = 0; status == 0 && k < 2; k++) {
            if (m.dfield[k][0] && m.batches[d][1 + k] != m.batches[d][0]) {
                str_format(err, errlen,
                           "filters: on %s %s was not among pair_dims (the visit dimensions "
                           "the aggregator pairs), so %s with %s cannot be answered exactly "
                           "for a range that includes it",
                           day, names[k], q->c.first, q->c.second);
                status = 1;
            }
        }
    }
    free(m.state);
    free(m.batches);
    return status;
}

/* The matching cells of range, grouped. Returns as api_pairs_totals. */
static int load_cells(redisContext *rc, const char *site, const struct pair_query *q,
                      const struct period_range *range, struct api_pair_cells **out,
                      char *err, size_t errlen)
{
    struct api_pair_cells *c = xcalloc(1, sizeof *c);
    *out = c;
    c->q = *q;
    str_format(c->tail_u, sizeof c->tail_u, "pu:%s:%s:", q->c.first, q->c.second);
    int status = check_days(rc, site, q, range, err, errlen);
    if (status != 0)
        return status;
    /* the hashes of the metrics the pair keeps, then the overflow marks */
    char tails[4][200];
    const char *tp[4];
    size_t nt = 0;
    for (size_t t = 0; t < 4; t++) {
        if (t < 3 && !(q->c.metrics & metric_of_tail[t]))
            continue;
        str_format(tails[nt], sizeof tails[nt], "p:%s:%s:%s", q->c.first, q->c.second,
                   t < 3 ? schema_metric_name(metric_of_tail[t]) : "o");
        c->tail_metric[nt] = t < 3 ? metric_of_tail[t] : 0;
        tp[nt] = tails[nt];
        nt++;
    }
    if (query_day_fields(rc, site, range, tp, nt, cell_cb, c, err, errlen) != 0)
        return -1;
    if (c->too_many) {
        str_format(err, errlen,
                   "filters: this range holds more than %d matching pairs of %s and %s values "
                   "(cells per day), more than one query reads; ask a shorter range",
                   PAIRS_QUERY_CELLS_MAX, q->c.first, q->c.second);
        return 1;
    }
    /* an "(other)" without marks (never written so): refused all the same */
    if (c->refused || (c->other && !c->marks)) {
        str_format(err, errlen,
                   "filters: on some days of this range pairs of %s and %s values past "
                   "pair_budget were counted together as (other), and the filter matches "
                   "values that have pairs there: it cannot be answered exactly",
                   q->c.first, q->c.second);
        return 1;
    }
    return 0;
}

void api_pairs_free(struct api_pair_cells *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->groups[i].nkeys; k++)
            free((char *)(uintptr_t)c->groups[i].keys[k].value);
        free(c->groups[i].keys);
        free(c->groups[i].value);
    }
    free(c->groups);
    free(c->index);
    free(c);
}

int api_pairs_totals(redisContext *rc, const char *site, const struct api_filter *f1,
                     const struct api_filter *f2, const struct period_range *buckets,
                     size_t nbuckets, struct query_totals *out, char *err, size_t errlen)
{
    struct pair_query q;
    if (!pair_query_make(f1, f2, NULL, NULL, &q, err, errlen))
        return 1;
    for (size_t b = 0; b < nbuckets; b++) {
        memset(&out[b], 0, sizeof out[b]);
        if (buckets[b].first > buckets[b].last)
            continue;
        struct api_pair_cells *c;
        int status = load_cells(rc, site, &q, &buckets[b], &c, err, errlen);
        if (status == 0 && c->n == 1) {
            out[b].c[QC_PAGEVIEWS] = c->groups[0].count[0];
            out[b].c[QC_EVENTS] = c->groups[0].count[1];
            out[b].c[QC_VISITS] = c->groups[0].count[2];
            if (query_day_keys_union(rc, site, c->groups[0].keys, c->groups[0].nkeys,
                                     &out[b].visitors, err, errlen) != 0)
                status = -1;
        }
        api_pairs_free(c);
        if (status != 0)
            return status;
    }
    return 0;
}

static int group_cmp(const void *a, const void *b)
{
    const struct cell_group *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->value, y->value, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

int api_pairs_breakdown(redisContext *rc, const char *site, const struct api_filter *f1,
                        const struct api_filter *f2, const char *bdim,
                        const struct period_range *range, struct stats_rows *out,
                        struct api_pair_cells **cells, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    *cells = NULL;
    struct pair_query q;
    if (!pair_query_make(f1, f2, bdim, NULL, &q, err, errlen))
        return 1;
    struct api_pair_cells *c;
    int status = load_cells(rc, site, &q, range, &c, err, errlen);
    if (status != 0) {
        api_pairs_free(c);
        return status;
    }
    if (c->n > 1) /* sorted for api_pairs_union (the index is not used again) */
        qsort(c->groups, c->n, sizeof *c->groups, group_cmp);
    out->rows = xcalloc(c->n ? c->n : 1, sizeof *out->rows);
    for (size_t i = 0; i < c->n; i++) {
        const struct cell_group *g = &c->groups[i];
        struct stats_row *r = &out->rows[out->n++];
        r->value = xmalloc(g->len + 1);
        memcpy(r->value, g->value, g->len + 1);
        r->value_len = g->len;
        r->pageviews = g->count[0];
        r->events = g->count[1];
        r->visits = g->count[2];
        if (query_day_keys_union(rc, site, g->keys, g->nkeys, &r->visitors, err, errlen) != 0) {
            query_rows_free(out);
            api_pairs_free(c);
            return -1;
        }
    }
    *cells = c;
    return 0;
}

int api_pairs_union(redisContext *rc, const char *site, const struct api_pair_cells *c,
                    const struct stats_row *rows, size_t n, long long *visitors, char *err,
                    size_t errlen)
{
    struct query_day_key *keys = NULL;
    size_t nkeys = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct cell_group key = {.value = rows[i].value, .len = rows[i].value_len};
        const struct cell_group *g = c ? bsearch(&key, c->groups, c->n, sizeof *c->groups,
                                                 group_cmp)
                                       : NULL;
        for (size_t k = 0; g && k < g->nkeys; k++) {
            GROW(keys, nkeys, cap);
            keys[nkeys++] = g->keys[k];
        }
    }
    int status = query_day_keys_union(rc, site, keys, nkeys, visitors, err, errlen);
    free(keys);
    return status;
}
