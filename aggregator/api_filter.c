/* api_filter.c - filters answered exactly from breakdown rows (see
 * api_filter.h). It never logs a value. */
#include "api_filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "util.h"

#define PROPS_PREFIX "event:props:"

bool api_property_dim(const char *property, char *dim, size_t dimlen, unsigned *metrics,
                      bool *visitors)
{
    for (int i = 0; i < SD__COUNT; i++) {
        const struct schema_dim *d = schema_dim((enum schema_dim_id)i);
        if (i != SD_PROP && d->property && strcmp(property, d->property) == 0) {
            *metrics = d->metrics;
            *visitors = d->visitors != SCHEMA_U_NONE;
            return str_copy(dim, dimlen, d->name, strlen(d->name));
        }
    }
    size_t plen = sizeof PROPS_PREFIX - 1;
    if (strncmp(property, PROPS_PREFIX, plen) == 0 && property[plen] &&
        strlen(property + plen) < 65) {
        const struct schema_dim *d = schema_dim(SD_PROP);
        *metrics = d->metrics;
        *visitors = true;
        return str_format(dim, dimlen, "prop:%s", property + plen);
    }
    return false;
}

bool api_filter_check_metrics(const struct api_filter *f, const char *const *metrics,
                              size_t n, char *err, size_t errlen)
{
    if (!f->set)
        return true;
    for (size_t i = 0; i < n; i++) {
        const char *m = metrics[i];
        bool ok = (strcmp(m, "visitors") == 0 && f->dim_visitors) ||
                  (strcmp(m, "pageviews") == 0 && (f->dim_metrics & SCHEMA_PV)) ||
                  (strcmp(m, "visits") == 0 && (f->dim_metrics & SCHEMA_VIS)) ||
                  (strcmp(m, "events") == 0 && (f->dim_metrics & SCHEMA_EV)) ||
                  strcmp(m, "conversion_rate") == 0;
        if (!ok) {
            str_format(err, errlen,
                       "filters: %s is not kept per %s value (the daily counts hold "
                       "visitors, pageviews, visits or events per value only where "
                       "docs/KEYS.md lists them), so it cannot be filtered exactly",
                       m, f->property);
            return false;
        }
    }
    return true;
}

/* One value of a|b|c, percent-free (the query string is decoded already). */
static bool add_value(struct api_filter *f, const char *v, size_t len, char *err,
                      size_t errlen)
{
    if (len == 0 || len >= API_FILTER_VALUE_MAX) {
        str_format(err, errlen, "filters: a value has 1 to %d bytes", API_FILTER_VALUE_MAX - 1);
        return false;
    }
    if (f->nvalues == API_FILTER_VALUES_MAX) {
        str_format(err, errlen, "filters: at most %d values in one a|b set",
                   API_FILTER_VALUES_MAX);
        return false;
    }
    memcpy(f->values[f->nvalues], v, len);
    f->values[f->nvalues][len] = '\0';
    f->nvalues++;
    return true;
}

bool api_filter_parse_v1(const char *s, const char *breakdown_property,
                         const char *const *metrics, size_t nmetrics, struct api_filter *out,
                         char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strchr(s, ';')) {
        str_format(err, errlen,
                   "filters: only one filter can be answered exactly from the daily counts "
                   "(two at once need counts per combination of values, which Veil does not "
                   "keep)");
        return false;
    }
    const char *op = strstr(s, "==");
    size_t oplen = 2;
    out->op = AF_IS;
    const char *tilde = strchr(s, '~');
    if (strstr(s, "!=") || strstr(s, "!~")) {
        str_format(err, errlen,
                   "filters: != and !~ cannot be answered exactly (visitors of all values "
                   "but some is not a HyperLogLog union); use == or ~");
        return false;
    }
    if (!op || (tilde && tilde < op)) {
        op = tilde;
        oplen = 1;
        out->op = AF_CONTAINS;
    }
    if (!op || op == s) {
        str_format(err, errlen, "filters: expected <property>==<value>, <property>==a|b or "
                                "<property>~<text>");
        return false;
    }
    size_t plen = (size_t)(op - s);
    if (plen >= sizeof out->property) {
        str_format(err, errlen, "filters: unknown property");
        return false;
    }
    memcpy(out->property, s, plen);
    out->property[plen] = '\0';
    if (!api_property_dim(out->property, out->dim, sizeof out->dim, &out->dim_metrics,
                          &out->dim_visitors)) {
        str_format(err, errlen, "filters: unknown property (expected one of the breakdown "
                                "properties, e.g. visit:source, event:page, event:goal)");
        return false;
    }
    if (breakdown_property && strcmp(breakdown_property, out->property) != 0) {
        str_format(err, errlen,
                   "filters: a breakdown by %s filtered by %s needs counts per pair of values "
                   "(two-dimensional counts), which Veil does not keep yet; filter a breakdown "
                   "by its own property, or ask aggregate/timeseries with this filter",
                   breakdown_property, out->property);
        return false;
    }
    const char *v = op + oplen;
    if (out->op == AF_CONTAINS) {
        if (!add_value(out, v, strlen(v), err, errlen))
            return false;
    } else {
        for (;;) {
            const char *bar = strchr(v, '|');
            size_t len = bar ? (size_t)(bar - v) : strlen(v);
            if (!add_value(out, v, len, err, errlen))
                return false;
            if (memchr(v, '*', len))
                out->op = AF_MATCHES;
            if (!bar)
                break;
            v = bar + 1;
        }
    }
    out->set = true;
    return api_filter_check_metrics(out, metrics, nmetrics, err, errlen);
}

/* '*' matches any run (also "**", Plausible's path glob); else literal. */
static bool glob(const char *p, const char *s, size_t slen)
{
    const char *star = NULL;
    size_t i = 0, resume = 0;
    while (i < slen) {
        if (*p == '*') {
            star = p++;
            resume = i;
        } else if (*p && *p == s[i]) {
            p++;
            i++;
        } else if (star) {
            p = star + 1;
            i = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

bool api_filter_matches(const struct api_filter *f, const char *value, size_t len)
{
    for (size_t i = 0; i < f->nvalues; i++) {
        const char *v = f->values[i];
        size_t vl = strlen(v);
        switch (f->op) {
        case AF_IS:
            if (vl == len && memcmp(v, value, len) == 0)
                return true;
            break;
        case AF_CONTAINS:
            if (vl <= len && memmem(value, len, v, vl))
                return true;
            break;
        case AF_MATCHES:
            if (glob(v, value, len))
                return true;
            break;
        }
    }
    return false;
}

bool api_filter_keep(const char *value, size_t len, void *filter)
{
    return api_filter_matches(filter, value, len);
}

size_t api_filter_values(const struct api_filter *f, const char **values, size_t *lens)
{
    if (!f->set || f->op != AF_IS)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < f->nvalues && n < API_FILTER_VALUES_MAX; i++) {
        size_t len = strlen(f->values[i]), k = 0;
        while (k < n && !(lens[k] == len && memcmp(values[k], f->values[i], len) == 0))
            k++;
        if (k == n) {
            values[n] = f->values[i];
            lens[n++] = len;
        }
    }
    return n;
}

query_row_keep api_breakdown_keep(const struct api_filter *f, const char *dim)
{
    return f->set && strcmp(f->dim, dim) == 0 ? api_filter_keep : NULL;
}

int api_filter_totals(redisContext *rc, const char *site, const struct api_filter *f,
                      const struct period_range *buckets, size_t nbuckets,
                      struct query_totals *out, char *err, size_t errlen)
{
    for (size_t b = 0; b < nbuckets; b++) {
        memset(&out[b], 0, sizeof out[b]);
        if (buckets[b].first > buckets[b].last)
            continue;
        struct stats_rows rows = {0};
        const char *values[API_FILTER_VALUES_MAX];
        size_t lens[API_FILTER_VALUES_MAX];
        size_t nvalues = api_filter_values(f, values, lens);
        if ((nvalues ? query_breakdown_values(rc, site, f->dim, &buckets[b], values, lens,
                                              nvalues, &rows, err, errlen)
                     : query_breakdown_where(rc, site, f->dim, &buckets[b], api_filter_keep,
                                             (void *)(uintptr_t)f, &rows, err, errlen)) != 0)
            return -1;
        /* matching rows first, then the rest */
        size_t n = 0;
        bool other = false;
        for (size_t i = 0; i < rows.n; i++) {
            struct stats_row *r = &rows.rows[i];
            if (r->value_len == strlen(QUERY_OTHER) &&
                memcmp(r->value, QUERY_OTHER, r->value_len) == 0) {
                other = r->pageviews || r->visits || r->events || r->visitors;
                continue;
            }
            if (!api_filter_matches(f, r->value, r->value_len))
                continue;
            struct stats_row tmp = rows.rows[n];
            rows.rows[n] = *r;
            *r = tmp;
            n++;
        }
        if (other) {
            query_rows_free(&rows);
            str_format(err, errlen,
                       "filters: on some days of this range values of %s past breakdown_cap "
                       "were counted together as (other), and the filter may match some of "
                       "them: it cannot be answered exactly",
                       f->property);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            out[b].c[QC_PAGEVIEWS] += rows.rows[i].pageviews;
            out[b].c[QC_VISITS] += rows.rows[i].visits;
            out[b].c[QC_EVENTS] += rows.rows[i].events;
        }
        if (n == 1)
            out[b].visitors = rows.rows[0].visitors;
        else if (n > 1 && query_rows_union_visitors(rc, site, f->dim, rows.rows, n,
                                                    &out[b].visitors, err, errlen) != 0) {
            query_rows_free(&rows);
            return -1;
        }
        query_rows_free(&rows);
    }
    return 0;
}
