/* query_units.c - a range of days into the units query.c reads:
 * quarters, months and weeks from their twin keys where those hold exactly the range's
 * days, the other days from their day keys (see query.h, query_units,
 * and docs/AGGREGATOR.md "Month and week roll-ups").
 *
 * It only reads (HGETALL of totals hashes, pipelined); it never writes and
 * never sees anything but counts. */
#include "query.h"

#include <stdlib.h>
#include <string.h>

#include "months.h"
#include "util.h"

/* Commands in flight per pipeline round trip. */
#define UNITS_CHUNK 512

/* Written once at start-up (query_set_rollups), before any query thread. */
static bool use_quarters = true, use_months = true, use_weeks = true;

void query_set_rollups(bool quarters, bool months, bool weeks)
{
    use_quarters = quarters;
    use_months = months;
    use_weeks = weeks;
}

char *query_unit_key(const char *site, struct query_unit unit, const char *tail,
                     const char *value, size_t value_len, size_t *len_out)
{
    char dstr[11];
    period_format_day(unit.first, dstr);
    char kind = unit.kind == MONTHS_MONTH || unit.kind == MONTHS_QUARTER ||
                        unit.kind == MONTHS_WEEK
                    ? unit.kind
                    : MONTHS_DAY;
    /* "YYYY-MM" of a month or a quarter's first month, else "YYYY-MM-DD" */
    size_t dlen = kind == MONTHS_MONTH || kind == MONTHS_QUARTER ? 7 : 10;
    char prefix[SHARD_PREFIX_MAX];
    size_t prefix_len = query_site_prefix(site, prefix);
    size_t site_len = strlen(site), tail_len = strlen(tail);
    size_t len = prefix_len + 2 + site_len + 1 + dlen + 1 + tail_len + value_len;
    char *k = xmalloc(len + 1), *p = k;
    memcpy(p, prefix, prefix_len);
    p += prefix_len;
    *p++ = kind;
    *p++ = ':';
    memcpy(p, site, site_len);
    p += site_len;
    *p++ = ':';
    memcpy(p, dstr, dlen);
    p += dlen;
    *p++ = ':';
    memcpy(p, tail, tail_len);
    p += tail_len;
    if (value_len)
        memcpy(p, value, value_len);
    p += value_len;
    *p = '\0';
    *len_out = len;
    return k;
}

void query_units_free(struct query_units *units, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(units[i].u);
        units[i] = (struct query_units){NULL, 0};
    }
}

static void units_push(struct query_units *q, size_t *cap, struct query_unit unit)
{
    if (q->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        q->u = xrealloc(q->u, *cap * sizeof *q->u);
    }
    q->u[q->n++] = unit;
}

void query_units_days(const struct period_range *range, struct query_units *out)
{
    *out = (struct query_units){NULL, 0};
    size_t cap = 0;
    for (period_day d = range->first; d <= range->last; d++)
        units_push(out, &cap, (struct query_unit){d, MONTHS_DAY});
}

/* ---- the check: a twin's totals against the sum of its days' ---- */

/* Fields of one totals hash summed (a twin's own, or its days'). */
#define SUM_FIELDS 32
#define SUM_NAME 48
struct field_sum {
    size_t n;
    bool bad;           /* more or longer fields than kept, or not a hash: never equal */
    char name[SUM_FIELDS][SUM_NAME];
    long long v[SUM_FIELDS];
};

static void field_sum_add(struct field_sum *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY) {
        s->bad = true;
        return;
    }
    for (size_t f = 0; f + 1 < r->elements; f += 2) {
        const redisReply *name = r->element[f], *val = r->element[f + 1];
        long long v;
        if (name->type != REDIS_REPLY_STRING || name->len >= SUM_NAME ||
            val->type != REDIS_REPLY_STRING ||
            !safe_strtoll_n(val->str, val->len, -(1LL << 62), 1LL << 62, &v)) {
            s->bad = true;
            continue;
        }
        size_t i = 0;
        while (i < s->n && !(strlen(s->name[i]) == name->len &&
                             memcmp(s->name[i], name->str, name->len) == 0))
            i++;
        if (i == s->n) {
            if (s->n == SUM_FIELDS) {
                s->bad = true;
                continue;
            }
            memcpy(s->name[i], name->str, name->len);
            s->name[i][name->len] = '\0';
            s->v[i] = 0;
            s->n++;
        }
        s->v[i] += v;
    }
}

/* Same fields with the same sums (a field summing to 0 counts as absent). */
static bool field_sum_equal(const struct field_sum *a, const struct field_sum *b)
{
    if (a->bad || b->bad)
        return false;
    for (int pass = 0; pass < 2; pass++) {
        const struct field_sum *x = pass ? b : a, *y = pass ? a : b;
        for (size_t i = 0; i < x->n; i++) {
            long long other = 0;
            for (size_t j = 0; j < y->n; j++)
                if (strcmp(x->name[i], y->name[j]) == 0)
                    other = y->v[j];
            if (other != x->v[i])
                return false;
        }
    }
    return true;
}

/* A twin considered for the days first..last of its span. */
struct candidate {
    char kind;
    period_day span;        /* the span's first day: its keys' name */
    period_day first, last; /* the days it would stand for */
    struct field_sum twin, days;
    bool others;            /* a day of the span outside first..last has counts */
    bool ok;
};

struct candidates {
    struct candidate *c;
    size_t n, cap, njobs;
};

static void candidate_add(struct candidates *cs, char kind, period_day first, period_day last)
{
    if (last <= first) /* one day: a day unit is as good */
        return;
    for (size_t k = 0; k < cs->n; k++)
        if (cs->c[k].kind == kind && cs->c[k].first == first && cs->c[k].last == last)
            return;
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 16;
        cs->c = xrealloc(cs->c, cs->cap * sizeof *cs->c);
    }
    period_day span = months_span_first(kind, first);
    cs->c[cs->n++] = (struct candidate){.kind = kind, .span = span, .first = first, .last = last};
    cs->njobs += 1 + (size_t)(months_span_last(kind, span) - span + 1);
}

/* The candidates of the days a..z (inside one span of the next larger
 * kind): the part of each span of `kind` they cover; inside a span they
 * cover only in part, the candidates of the next smaller kind. */
static void span_candidates(struct candidates *cs, char kind, period_day a, period_day z)
{
    static const char smaller[] = {MONTHS_QUARTER, MONTHS_MONTH, MONTHS_WEEK, MONTHS_DAY};
    bool on = kind == MONTHS_QUARTER ? use_quarters : kind == MONTHS_MONTH ? use_months
                                                                           : use_weeks;
    size_t k = 0;
    while (smaller[k] != kind)
        k++;
    char next = smaller[k + 1];
    for (period_day s = months_span_first(kind, a); s <= z; s = months_span_last(kind, s) + 1) {
        period_day sl = months_span_last(kind, s);
        period_day sa = s > a ? s : a, sz = sl < z ? sl : z;
        if (on)
            candidate_add(cs, kind, sa, sz);
        if (next != MONTHS_DAY && !(on && sa == s && sz == sl))
            span_candidates(cs, next, sa, sz);
    }
}

/* The candidates of one range: quarters, months in the quarters it covers
 * in part, weeks (cut at the month's end) in the months it covers in part. */
static void range_candidates(struct candidates *cs, const struct period_range *r)
{
    span_candidates(cs, MONTHS_QUARTER, r->first, r->last);
}

/* Read every candidate's twin totals and its days' totals, and decide. */
static int check(redisContext *rc, const char *site, struct candidates *cs, char *err,
                 size_t errlen)
{
    /* job j: candidate job_c[j]; its twin (job_twin) or the day job_day */
    size_t *job_c = xcalloc(cs->njobs ? cs->njobs : 1, sizeof *job_c);
    period_day *job_day = xcalloc(cs->njobs ? cs->njobs : 1, sizeof *job_day);
    bool *job_twin = xcalloc(cs->njobs ? cs->njobs : 1, sizeof *job_twin);
    size_t j = 0;
    for (size_t k = 0; k < cs->n; k++) {
        job_c[j] = k;
        job_twin[j++] = true;
        period_day last = months_span_last(cs->c[k].kind, cs->c[k].span);
        for (period_day d = cs->c[k].span; d <= last; d++) {
            job_c[j] = k;
            job_day[j++] = d;
        }
    }
    int status = 0;
    for (size_t base = 0; base < cs->njobs && status == 0; base += UNITS_CHUNK) {
        size_t end = base + UNITS_CHUNK < cs->njobs ? base + UNITS_CHUNK : cs->njobs;
        for (size_t i = base; i < end; i++) {
            const struct candidate *c = &cs->c[job_c[i]];
            struct query_unit u = job_twin[i] ? (struct query_unit){c->span, c->kind}
                                                 : (struct query_unit){job_day[i], MONTHS_DAY};
            size_t len;
            char *key = query_unit_key(site, u, "totals", NULL, 0, &len);
            const char *argv[] = {"HGETALL", key};
            size_t lens[] = {7, len};
            int r = redisAppendCommandArgv(rc, 2, argv, lens);
            free(key);
            if (r != REDIS_OK) {
                str_format(err, errlen, "redis: %s", rc->errstr[0] ? rc->errstr : "no reply");
                status = -1;
                break;
            }
        }
        /* read every reply sent, so the connection stays in step */
        for (size_t i = base; i < end && status == 0; i++) {
            void *reply = NULL;
            if (redisGetReply(rc, &reply) != REDIS_OK || !reply) {
                str_format(err, errlen, "redis: %s", rc->errstr[0] ? rc->errstr : "no reply");
                status = -1;
                break;
            }
            struct candidate *c = &cs->c[job_c[i]];
            const redisReply *r = reply;
            if (job_twin[i])
                field_sum_add(&c->twin, r);
            else if (job_day[i] >= c->first && job_day[i] <= c->last)
                field_sum_add(&c->days, r);
            else if (r->type != REDIS_REPLY_ARRAY || r->elements > 0)
                c->others = true;
            freeReplyObject(reply);
        }
    }
    free(job_c);
    free(job_day);
    free(job_twin);
    /* A twin stands for the days first..last when the other days of its
     * span hold nothing and its totals equal the sum of theirs: then every
     * count of those days reached it (each counted event adds to a totals
     * field that only grows on its own day, pageviews, events, visits or
     * engaged_n, so a count the twin missed makes the sums differ). */
    for (size_t k = 0; k < cs->n; k++)
        cs->c[k].ok = !cs->c[k].others && field_sum_equal(&cs->c[k].twin, &cs->c[k].days);
    return status;
}

/* The checked candidate of `kind` that starts at d and covers exactly
 * the part of its span that r covers, or NULL. */
static const struct candidate *usable(const struct candidates *cs, char kind, period_day d,
                                      const struct period_range *r)
{
    period_day sl = months_span_last(kind, d);
    period_day want = sl < r->last ? sl : r->last;
    if (kind == MONTHS_WEEK) { /* weeks are cut at the month's end (months never cross quarters) */
        period_day ml = months_span_last(MONTHS_MONTH, d);
        want = want < ml ? want : ml;
    }
    for (size_t k = 0; k < cs->n; k++)
        if (cs->c[k].ok && cs->c[k].kind == kind && cs->c[k].first == d &&
            cs->c[k].last == want)
            return &cs->c[k];
    return NULL;
}

int query_units(redisContext *rc, const char *site, const struct period_range *ranges,
                size_t nranges, struct query_units *out, char *err, size_t errlen)
{
    struct candidates cs = {0};
    for (size_t r = 0; r < nranges && (use_quarters || use_months || use_weeks); r++)
        if (ranges[r].first <= ranges[r].last)
            range_candidates(&cs, &ranges[r]);
    int status = cs.n ? check(rc, site, &cs, err, errlen) : 0;
    for (size_t r = 0; r < nranges; r++) {
        out[r] = (struct query_units){NULL, 0};
        size_t cap = 0;
        for (period_day d = ranges[r].first; status == 0 && d <= ranges[r].last; d++) {
            const struct candidate *c = usable(&cs, MONTHS_QUARTER, d, &ranges[r]);
            if (!c)
                c = usable(&cs, MONTHS_MONTH, d, &ranges[r]);
            if (!c)
                c = usable(&cs, MONTHS_WEEK, d, &ranges[r]);
            if (c) {
                units_push(&out[r], &cap, (struct query_unit){c->span, c->kind});
                d = c->last;
            } else {
                units_push(&out[r], &cap, (struct query_unit){d, MONTHS_DAY});
            }
        }
    }
    free(cs.c);
    if (status != 0)
        query_units_free(out, nranges);
    return status;
}
