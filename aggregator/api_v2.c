/* api_v2.c - Plausible's Stats API v2, POST /api/v2/query (docs/API.md
 * "Stats API v2"): the JSON request (site_id, metrics, date_range,
 * dimensions, filters, order_by, include, pagination) is parsed with cJSON
 * into the same parameters the v1 handlers use, and answered from the same
 * queries, so v1 and v2 agree where they overlap; the response has v2's
 * shape (results[].metrics and .dimensions in request order, meta, query).
 * What the daily counts cannot answer exactly is a 400 naming the part.
 * It never logs a token, a body or a row value. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api_filter.h"
#include "api_internal.h"
#include "api_pairs.h"
#include "api_rates.h"
#include "api_visit_rows.h"
#include "api_hourly.h"
#include "geo_names.h"
#include "kanon.h"
#include "output.h"
#include "util.h"

#define V2_LIMIT_DEFAULT 10000
#define V2_LIMIT_MAX 10000

enum v2_kind { V2_AGGREGATE = 0, V2_TIME, V2_PROPERTY };

struct v2_metric {
    enum api_metric m;
    bool percentage;          /* "percentage": a row's visitors / all visitors */
    bool group;               /* group_conversion_rate (m is API_METRIC_CONVERSION_RATE):
                                 a row's converted visitors / the row's visitors */
};

static const char *v2_metric_name(const struct v2_metric *m)
{
    return m->percentage ? "percentage"
           : m->group    ? "group_conversion_rate"
                         : api_metric_name(m->m);
}

struct api_v2_query {
    struct api_params p;      /* site, range, v1 metrics (for filters), filter */
    struct v2_metric metrics[API_METRIC__COUNT + 1];
    size_t nmetrics;
    enum v2_kind kind;
    char dimension[96];       /* as asked, "" for none */
    int order_metric;         /* index into metrics, -1: by the dimension */
    bool order_desc;
    bool order_given;         /* else: time ascending, rows by the first metric desc */
    bool total_rows, time_labels;
    bool compare;             /* include.comparisons previous_period (aggregate) */
    long long limit, offset;
};

const char *api_v2_site(const struct api_v2_query *q)
{
    return q->p.site_id;
}

static bool fail(char *err, size_t errlen, const char *reason)
{
    str_copy(err, errlen, reason, strlen(reason));
    return false;
}

static bool parse_metrics(struct api_v2_query *q, const cJSON *metrics, char *err,
                          size_t errlen)
{
    if (!cJSON_IsArray(metrics) || cJSON_GetArraySize(metrics) < 1)
        return fail(err, errlen, "metrics: expected a non-empty array of metric names");
    const cJSON *m;
    cJSON_ArrayForEach(m, metrics) {
        if (!cJSON_IsString(m) || q->nmetrics == API_METRIC__COUNT + 1)
            return fail(err, errlen, "metrics: expected metric names, each once");
        struct v2_metric v = {API_METRIC__COUNT, false, false};
        if (strcmp(m->valuestring, "percentage") == 0)
            v.percentage = true;
        if (strcmp(m->valuestring, "group_conversion_rate") == 0)
            v.group = true, v.m = API_METRIC_CONVERSION_RATE;
        for (int i = 0; i < API_METRIC__COUNT && !v.percentage && !v.group; i++)
            if (strcmp(m->valuestring, api_metric_name((enum api_metric)i)) == 0)
                v.m = (enum api_metric)i;
        if (!v.percentage && v.m == API_METRIC__COUNT) {
            str_format(err, errlen,
                       "metrics: %s is not one of visitors, visits, pageviews, views_per_visit, "
                       "bounce_rate, visit_duration, events, scroll_depth, percentage, "
                       "conversion_rate, group_conversion_rate",
                       m->valuestring);
            if (strlen(m->valuestring) > 40)
                str_format(err, errlen, "metrics: unknown metric");
            return false;
        }
        for (size_t i = 0; i < q->nmetrics; i++)
            if (q->metrics[i].percentage == v.percentage && q->metrics[i].group == v.group &&
                q->metrics[i].m == v.m)
                return fail(err, errlen, "metrics: a metric is listed twice");
        q->metrics[q->nmetrics++] = v;
        bool have = false; /* conversion_rate and group_conversion_rate share one */
        for (size_t i = 0; i < q->p.nmetrics; i++)
            have = have || q->p.metrics[i] == v.m;
        if (!v.percentage && !have)
            q->p.metrics[q->p.nmetrics++] = v.m;
    }
    return true;
}

/* date_range: a shorthand, or [from, to] as dates or datetimes (the date
 * part is used: days are the site's local days). */
static bool parse_range(struct api_v2_query *q, const cJSON *r, period_day today,
                        long long retention_days, char *err, size_t errlen)
{
    char date[32];
    const char *period = NULL, *arg = NULL;
    if (cJSON_IsString(r)) {
        static const struct {
            const char *v2, *v1;
            int days;
        } shorthands[] = {{"day", "day", 0},       {"7d", "7d", 0},     {"30d", "30d", 0},
                          {"month", "month", 0},   {"6mo", "6mo", 0},   {"12mo", "12mo", 0},
                          {"28d", "custom", 28},   {"91d", "custom", 91}, {"year", "year", 0}};
        for (size_t i = 0; i < ARRAY_LEN(shorthands); i++) {
            if (strcmp(r->valuestring, shorthands[i].v2) != 0)
                continue;
            if (strcmp(shorthands[i].v2, "year") == 0) {
                int y, m, d;
                period_to_civil(today, &y, &m, &d);
                char a[11], b[11];
                period_format_day(period_from_civil(y, 1, 1), a);
                period_format_day(today, b);
                str_format(date, sizeof date, "%s,%s", a, b);
                period = "custom";
                arg = date;
            } else if (shorthands[i].days) {
                char a[11], b[11];
                period_format_day(today - shorthands[i].days + 1, a);
                period_format_day(today, b);
                str_format(date, sizeof date, "%s,%s", a, b);
                period = "custom";
                arg = date;
            } else {
                period = shorthands[i].v1;
            }
        }
        if (!period)
            return fail(err, errlen, "date_range: expected day, 7d, 28d, 30d, 91d, month, "
                                     "6mo, 12mo, year or [from, to]");
    } else if (cJSON_IsArray(r) && cJSON_GetArraySize(r) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(r, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(r, 1))) {
        const char *a = cJSON_GetArrayItem(r, 0)->valuestring,
                   *b = cJSON_GetArrayItem(r, 1)->valuestring;
        if (strlen(a) < 10 || strlen(b) < 10)
            return fail(err, errlen, "date_range: expected YYYY-MM-DD dates or datetimes");
        str_format(date, sizeof date, "%.10s,%.10s", a, b);
        period = "custom";
        arg = date;
    } else {
        return fail(err, errlen, "date_range: expected a shorthand or [from, to]");
    }
    char why[200];
    if (!period_resolve(period, arg, today, retention_days, &q->p.range, &q->p.clipped, why,
                        sizeof why)) {
        str_format(err, errlen, "date_range: %s", why);
        return false;
    }
    return true;
}

static bool parse_dimensions(struct api_v2_query *q, const cJSON *dims, char *err,
                             size_t errlen)
{
    q->kind = V2_AGGREGATE;
    if (!dims)
        return true;
    if (!cJSON_IsArray(dims))
        return fail(err, errlen, "dimensions: expected an array");
    int n = cJSON_GetArraySize(dims);
    if (n == 0)
        return true;
    if (n > 1)
        return fail(err, errlen, "dimensions: one dimension at a time can be answered exactly "
                                 "(two need counts per pair of values, which Veil does not "
                                 "keep yet)");
    const cJSON *d = cJSON_GetArrayItem(dims, 0);
    if (!cJSON_IsString(d) || strlen(d->valuestring) >= sizeof q->dimension)
        return fail(err, errlen, "dimensions: expected dimension names");
    str_copy(q->dimension, sizeof q->dimension, d->valuestring, strlen(d->valuestring));
    if (strncmp(q->dimension, "time", 4) == 0) {
        q->kind = V2_TIME;
        if (!strcmp(q->dimension, "time") || !strcmp(q->dimension, "time:day"))
            q->p.interval = PERIOD_INTERVAL_DAY;
        else if (!strcmp(q->dimension, "time:month"))
            q->p.interval = PERIOD_INTERVAL_MONTH;
        else if (!strcmp(q->dimension, "time:hour"))
            q->p.interval = PERIOD_INTERVAL_HOUR;
        else if (!strcmp(q->dimension, "time:week"))
            q->p.interval = PERIOD_INTERVAL_WEEK;
        else
            return fail(err, errlen, "dimensions: time, time:hour, time:day, time:week or "
                                     "time:month");
        if (q->p.interval == PERIOD_INTERVAL_HOUR &&
            period_range_days(&q->p.range) > PERIOD_MAX_HOURLY_DAYS)
            return fail(err, errlen, "dimensions: time:hour covers at most 31 days");
        return true;
    }
    unsigned metrics;
    bool visitors;
    if (!api_property_dim(q->dimension, q->p.dim, sizeof q->p.dim, &metrics, &visitors))
        return fail(err, errlen, "dimensions: unknown dimension");
    if (api_property_names(q->dimension) != AF_NAMES_NONE && !geo_names_loaded())
        return fail(err, errlen, "dimensions: the _name variants need the names of iso-codes, "
                                 "and this server runs without them (iso_codes_dir is empty)");
    q->kind = V2_PROPERTY;
    str_copy(q->p.property, sizeof q->p.property, q->dimension, strlen(q->dimension));
    return true;
}

/* The property a v2 filter (a condition, or and/or/not of conditions) is
 * on: its first condition's; NULL when it names none. */
static const char *filter_property(const cJSON *f, int depth)
{
    const cJSON *op = cJSON_GetArrayItem(f, 0);
    if (!cJSON_IsArray(f) || !cJSON_IsString(op) || depth > API_FILTER_DEPTH_MAX)
        return NULL;
    const char *o = op->valuestring;
    if (!strcmp(o, "and") || !strcmp(o, "or")) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetArrayItem(f, 1)) {
            const char *p = filter_property(c, depth + 1);
            if (p)
                return p;
        }
        return NULL;
    }
    if (!strcmp(o, "not"))
        return filter_property(cJSON_GetArrayItem(f, 1), depth + 1);
    const cJSON *dim = cJSON_GetArrayItem(f, 1);
    return cJSON_IsString(dim) ? dim->valuestring : NULL;
}

/* filters: the top-level and (a list, or [["and", [...]]]) of filters on
 * at most two properties: each property's conditions become its
 * expression (api_filter_parse_v2), two properties are answered from the
 * pair counts (api_pairs.h). */
static bool parse_filters(struct api_v2_query *q, const cJSON *filters, char *err,
                          size_t errlen)
{
    if (!filters || (cJSON_IsArray(filters) && cJSON_GetArraySize(filters) == 0))
        return true;
    if (!cJSON_IsArray(filters))
        return fail(err, errlen, "filters: expected an array");
    const cJSON *list = filters, *head = cJSON_GetArrayItem(filters, 0);
    const cJSON *op = cJSON_IsArray(head) ? cJSON_GetArrayItem(head, 0) : NULL;
    if (cJSON_GetArraySize(filters) == 1 && cJSON_IsString(op) && !strcmp(op->valuestring, "and") &&
        cJSON_IsArray(cJSON_GetArrayItem(head, 1)))
        list = cJSON_GetArrayItem(head, 1);
    /* the filters grouped by property, in order of appearance */
    cJSON *groups[2] = {NULL, NULL};
    const char *gprop[2] = {NULL, NULL};
    size_t ng = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, list) {
        const char *prop = filter_property(f, 0);
        size_t g = 0;
        while (g < ng && prop && !(gprop[g] && !strcmp(gprop[g], prop)))
            g++;
        if (g == ng && ng == 2) {
            cJSON_Delete(groups[0]);
            cJSON_Delete(groups[1]);
            return fail(err, errlen, "filters: filters on three or more properties at once "
                                     "need counts per combination of three values, which Veil "
                                     "does not keep: the two-dimensional counts answer at most "
                                     "two properties at once");
        }
        if (g == ng) {
            groups[ng] = cJSON_CreateArray();
            gprop[ng++] = prop;
        }
        cJSON_AddItemToArray(groups[g], cJSON_Duplicate(f, true));
    }
    struct api_filter *out[2] = {&q->p.filter, &q->p.filter2};
    bool ok = true;
    for (size_t g = 0; g < ng; g++) {
        ok = ok && api_filter_parse_v2(groups[g], out[g], err, errlen);
        cJSON_Delete(groups[g]);
    }
    if (!ok)
        return false;
    if (!q->p.filter.set)
        return true;
    if (q->kind == V2_TIME && q->p.interval == PERIOD_INTERVAL_HOUR) {
        if (q->p.filter2.set)
            return fail(err, errlen, "filters: hourly rows are kept per property, not per pair "
                                     "of properties; use time:day with filters on two "
                                     "properties");
        if (!api_hourly_filter_ok(&q->p.filter, err, errlen))
            return false;
    }
    const char *names[API_METRIC__COUNT];
    for (size_t i = 0; i < q->p.nmetrics; i++)
        names[i] = api_metric_name(q->p.metrics[i]);
    /* one property's filter: per-row bounce_rate and visit_duration of its
     * own breakdown are left to api_visit_rows */
    const char *own[API_METRIC__COUNT];
    size_t nown = api_visit_rows_filter_metrics(q->kind == V2_PROPERTY, q->p.metrics,
                                                q->p.nmetrics, own);
    for (size_t i = 0; i < 2; i++)
        if (out[i]->set && !api_filter_check_metrics(out[i], own, nown, err, errlen))
            return false;
    const char *bdim = q->kind == V2_PROPERTY ? q->p.dim : NULL;
    if (!api_pairs_needed(&q->p.filter, &q->p.filter2, bdim))
        return true;
    /* two properties: every metric must be kept per pair (conversion rates
     * under a goal filter are the pair cell's visitors: check_metrics) */
    size_t npair = 0;
    for (size_t i = 0; i < q->p.nmetrics; i++)
        if (q->p.metrics[i] != API_METRIC_CONVERSION_RATE || !api_rate_goal_filter(&q->p))
            names[npair++] = api_metric_name(q->p.metrics[i]);
    return api_pairs_check(&q->p.filter, &q->p.filter2, bdim,
                           q->kind == V2_PROPERTY ? q->p.property : NULL, names, npair, err,
                           errlen);
}

/* Which metrics each kind of query offers. */
static bool check_metrics(const struct api_v2_query *q, char *err, size_t errlen)
{
    for (size_t i = 0; i < q->nmetrics; i++) {
        const struct v2_metric *m = &q->metrics[i];
        if (!m->percentage && m->m == API_METRIC_CONVERSION_RATE &&
            (m->group || q->kind == V2_PROPERTY)) {
            if (!api_rate_check(&q->p, v2_metric_name(m), m->group, q->kind != V2_AGGREGATE,
                                q->kind == V2_PROPERTY && !strcmp(q->dimension, "event:goal"),
                                err, errlen))
                return false;
            continue;
        }
        if (q->kind == V2_PROPERTY) {
            if (m->percentage || m->m == API_METRIC_VISITORS || m->m == API_METRIC_VISITS ||
                m->m == API_METRIC_PAGEVIEWS || m->m == API_METRIC_EVENTS ||
                (m->m == API_METRIC_CONVERSION_RATE && !strcmp(q->dimension, "event:goal")))
                continue;
            if (m->m != API_METRIC_CONVERSION_RATE &&
                !api_visit_rows_metric_ok(q->p.dim, q->dimension, m->m, err, errlen))
                return false;
            if (m->m == API_METRIC_BOUNCE_RATE || m->m == API_METRIC_VISIT_DURATION)
                continue; /* per row of a visit dimension (api_visit_rows.h) */
            str_format(err, errlen,
                       "metrics: %s is not kept per %.40s value (the daily counts hold "
                       "visitors, visits, pageviews and events per value)",
                       v2_metric_name(m), q->dimension);
            return false;
        }
        if (!m->percentage && m->m == API_METRIC_CONVERSION_RATE && q->p.filter.set &&
            !strcmp(q->p.filter.property, "event:goal"))
            continue;
        if (m->percentage || m->m == API_METRIC_CONVERSION_RATE) {
            str_format(err, errlen, "metrics: %s needs %s",
                       m->percentage ? "percentage" : "conversion_rate",
                       m->percentage ? "a dimension (a share of its rows)"
                                     : "the dimension event:goal or a filter on event:goal");
            return false;
        }
    }
    return true;
}

static bool parse_order(struct api_v2_query *q, const cJSON *order, char *err, size_t errlen)
{
    q->order_metric = 0;
    q->order_desc = true;
    if (!order)
        return true;
    if (!cJSON_IsArray(order) || cJSON_GetArraySize(order) != 1)
        return fail(err, errlen, "order_by: expected one [metric or dimension, asc|desc]");
    const cJSON *o = cJSON_GetArrayItem(order, 0);
    const cJSON *what = cJSON_GetArrayItem(o, 0), *dir = cJSON_GetArrayItem(o, 1);
    if (!cJSON_IsArray(o) || !cJSON_IsString(what) || !cJSON_IsString(dir) ||
        (strcmp(dir->valuestring, "asc") && strcmp(dir->valuestring, "desc")))
        return fail(err, errlen, "order_by: expected [metric or dimension, asc|desc]");
    q->order_desc = !strcmp(dir->valuestring, "desc");
    q->order_given = true;
    if (q->dimension[0] && !strcmp(what->valuestring, q->dimension)) {
        q->order_metric = -1;
        return true;
    }
    for (size_t i = 0; i < q->nmetrics; i++) {
        const char *name = v2_metric_name(&q->metrics[i]);
        if (!strcmp(name, what->valuestring)) {
            q->order_metric = (int)i;
            return true;
        }
    }
    return fail(err, errlen, "order_by: orders by a requested metric or dimension");
}

struct api_v2_query *api_v2_parse(const char *body, size_t len, period_day today,
                                  long long retention_days, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    struct api_v2_query *q = xcalloc(1, sizeof *q);
    q->limit = V2_LIMIT_DEFAULT;
    q->p.limit = API_LIMIT_MAX;
    q->p.page = 1;
    q->p.format = OUTPUT_JSON;
    bool ok = false;
    const cJSON *site = cJSON_GetObjectItemCaseSensitive(root, "site_id");
    if (!cJSON_IsObject(root)) {
        fail(err, errlen, "body: expected a JSON object");
        goto done;
    }
    for (const cJSON *k = root->child; k; k = k->next) {
        static const char *const known[] = {"site_id", "metrics", "date_range", "dimensions",
                                            "filters", "order_by", "include", "pagination"};
        bool found = false;
        for (size_t i = 0; i < ARRAY_LEN(known); i++)
            found = found || !strcmp(k->string, known[i]);
        if (!found) {
            fail(err, errlen, "body: unknown member (expected site_id, metrics, date_range, "
                              "dimensions, filters, order_by, include, pagination)");
            goto done;
        }
    }
    if (!cJSON_IsString(site) || !site->valuestring[0] ||
        strlen(site->valuestring) >= sizeof q->p.site_id) {
        fail(err, errlen, "site_id: required");
        goto done;
    }
    str_copy(q->p.site_id, sizeof q->p.site_id, site->valuestring, strlen(site->valuestring));
    if (!parse_metrics(q, cJSON_GetObjectItemCaseSensitive(root, "metrics"), err, errlen) ||
        !parse_range(q, cJSON_GetObjectItemCaseSensitive(root, "date_range"), today,
                     retention_days, err, errlen) ||
        !parse_dimensions(q, cJSON_GetObjectItemCaseSensitive(root, "dimensions"), err,
                          errlen) ||
        !parse_filters(q, cJSON_GetObjectItemCaseSensitive(root, "filters"), err, errlen) ||
        !check_metrics(q, err, errlen) ||
        !parse_order(q, cJSON_GetObjectItemCaseSensitive(root, "order_by"), err, errlen))
        goto done;
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(root, "include");
    if (inc) {
        q->total_rows = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(inc, "total_rows"));
        q->time_labels = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(inc, "time_labels"));
        const cJSON *cmp = cJSON_GetObjectItemCaseSensitive(inc, "comparisons");
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(cmp, "mode");
        if (cmp && (!cJSON_IsString(mode) || strcmp(mode->valuestring, "previous_period") ||
                    q->kind != V2_AGGREGATE)) {
            fail(err, errlen, "include: comparisons: only {\"mode\": \"previous_period\"}, on "
                              "a query without dimensions (the other modes and comparisons "
                              "per row or per time bucket are not offered)");
            goto done;
        }
        q->compare = cmp != NULL;
        for (size_t i = 0; q->compare && i < q->nmetrics; i++)
            if (q->metrics[i].percentage || q->metrics[i].group) {
                fail(err, errlen, "include: comparisons: not with percentage or "
                                  "group_conversion_rate");
                goto done;
            }
        if (cJSON_GetObjectItemCaseSensitive(inc, "imports")) {
            fail(err, errlen, "include: imports are not offered (Veil imports nothing)");
            goto done;
        }
    }
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(root, "pagination");
    if (pg) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(pg, "limit"),
                    *o = cJSON_GetObjectItemCaseSensitive(pg, "offset");
        if ((l && (!cJSON_IsNumber(l) || l->valuedouble < 1 || l->valuedouble > V2_LIMIT_MAX)) ||
            (o && (!cJSON_IsNumber(o) || o->valuedouble < 0 || o->valuedouble > 1e9))) {
            fail(err, errlen, "pagination: limit 1..10000, offset >= 0");
            goto done;
        }
        if (l)
            q->limit = (long long)l->valuedouble;
        if (o)
            q->offset = (long long)o->valuedouble;
    }
    ok = true;
done:
    cJSON_Delete(root);
    if (!ok) {
        free(q);
        return NULL;
    }
    return q;
}

/* ---- running it ---- */

struct v2_row {
    const char *label;         /* the dimension's value */
    size_t label_len;
    struct output_cell cells[API_METRIC__COUNT + 1];
    double sort;               /* the order_by metric */
    /* include.comparisons: the previous period's metrics, then each change */
    const struct output_cell *cmp;
};

static int cmp_rows(const void *a, const void *b, bool desc, bool by_label)
{
    const struct v2_row *x = a, *y = b;
    int c;
    if (by_label) {
        size_t n = x->label_len < y->label_len ? x->label_len : y->label_len;
        c = memcmp(x->label, y->label, n);
        if (!c)
            c = x->label_len < y->label_len ? -1 : x->label_len > y->label_len;
    } else {
        c = x->sort < y->sort ? -1 : x->sort > y->sort;
        if (!c) { /* ties: by value, ascending */
            size_t n = x->label_len < y->label_len ? x->label_len : y->label_len;
            int l = memcmp(x->label, y->label, n);
            return l ? l : (x->label_len < y->label_len ? -1 : x->label_len > y->label_len);
        }
    }
    return desc ? -c : c;
}

static bool sort_desc, sort_by_label; /* the API thread's only sort: no qsort_r */

static int cmp_qsort(const void *a, const void *b)
{
    return cmp_rows(a, b, sort_desc, sort_by_label);
}

/* Order rows[0..n) by q's order_by (the metric's values in .sort, or the
 * dimension's value). */
static void order_rows(const struct api_v2_query *q, struct v2_row *rows, size_t n)
{
    if (n < 2)
        return;
    sort_desc = q->order_desc;
    sort_by_label = q->order_metric < 0;
    if (n > 1)
        qsort(rows, n, sizeof *rows, cmp_qsort);
}

static void write_response(struct api_request *rq, const struct api_v2_query *q,
                           struct v2_row *rows, size_t n, bool with_dim, size_t total)
{
    struct evbuffer *b = rq->body;
    rq->status = 200;
    rq->content_type = "application/json";
    size_t from = (size_t)q->offset < n ? (size_t)q->offset : n;
    size_t to = from + (size_t)q->limit < n ? from + (size_t)q->limit : n;
    evbuffer_add_printf(b, "{\"results\": [");
    for (size_t r = from; r < to; r++) {
        evbuffer_add_printf(b, "%s{\"metrics\": [", r > from ? ", " : "");
        for (size_t i = 0; i < q->nmetrics; i++) {
            if (i)
                evbuffer_add(b, ", ", 2);
            output_json_cell(b, &rows[r].cells[i]);
        }
        evbuffer_add_printf(b, "], \"dimensions\": [");
        if (with_dim)
            output_json_string(b, rows[r].label, rows[r].label_len);
        evbuffer_add_printf(b, "]");
        for (size_t half = 0; rows[r].cmp && half < 2; half++) {
            evbuffer_add_printf(b, half ? "], \"change\": [" : ", \"comparison\": "
                                                                 "{\"dimensions\": [], \"metrics\": [");
            for (size_t i = 0; i < q->nmetrics; i++) {
                if (i)
                    evbuffer_add(b, ", ", 2);
                output_json_cell(b, &rows[r].cmp[half * q->nmetrics + i]);
            }
        }
        evbuffer_add_printf(b, "%s}", rows[r].cmp ? "]}" : "");
    }
    char first[11], last[11];
    period_format_day(q->p.range.first, first);
    period_format_day(q->p.range.last, last);
    evbuffer_add_printf(b, "], \"meta\": {\"k_anonymity\": %lld, \"dp_epsilon\": %g",
                        rq->api->k_anonymity, rq->api->dp_epsilon);
    if (rq->filtered)
        evbuffer_add_printf(b, ", \"filter_withheld\": %zu", rq->k_withheld);
    if (rq->visit_rows_used)
        evbuffer_add_printf(b, ", \"visit_rows_missing_days\": %lld", rq->visit_rows_missing);
    if (q->total_rows)
        evbuffer_add_printf(b, ", \"total_rows\": %zu", total);
    if (q->compare) {
        long days = period_range_days(&q->p.range);
        char pf[11], pl[11];
        period_format_day(q->p.range.first - (period_day)days, pf);
        period_format_day(q->p.range.first - 1, pl);
        evbuffer_add_printf(b, ", \"comparison_date_range\": [\"%s\", \"%s\"]", pf, pl);
    }
    if (q->time_labels && q->kind == V2_TIME) {
        evbuffer_add_printf(b, ", \"time_labels\": [");
        for (size_t r = 0; r < n; r++) {
            if (r)
                evbuffer_add(b, ", ", 2);
            output_json_string(b, rows[r].label, rows[r].label_len);
        }
        evbuffer_add(b, "]", 1);
    }
    evbuffer_add_printf(b, "}, \"query\": {\"site_id\": ");
    output_json_string(b, q->p.site_id, strlen(q->p.site_id));
    evbuffer_add_printf(b, ", \"metrics\": [");
    for (size_t i = 0; i < q->nmetrics; i++)
        evbuffer_add_printf(b, "%s\"%s\"", i ? ", " : "",
                            v2_metric_name(&q->metrics[i]));
    evbuffer_add_printf(b, "], \"date_range\": [\"%s\", \"%s\"], \"dimensions\": [", first,
                        last);
    if (q->dimension[0])
        output_json_string(b, q->dimension, strlen(q->dimension));
    evbuffer_add_printf(b, "], \"filters\": ");
    if (q->p.filter2.set) { /* two properties: the and of their expressions */
        evbuffer_add_printf(b, "[[\"and\", [");
        for (size_t k = 0; k < 2; k++) {
            const struct api_filter *f = k ? &q->p.filter2 : &q->p.filter;
            struct evbuffer *one = evbuffer_new();
            api_filter_write_v2(one, f);
            /* one property's list "[a, b]": its members */
            size_t len = evbuffer_get_length(one);
            const char *text = (const char *)evbuffer_pullup(one, -1);
            if (k)
                evbuffer_add(b, ", ", 2);
            if (len >= 2)
                evbuffer_add(b, text + 1, len - 2);
            evbuffer_free(one);
        }
        evbuffer_add_printf(b, "]]]");
    } else {
        api_filter_write_v2(b, &q->p.filter);
    }
    evbuffer_add_printf(b, ", \"pagination\": {\"limit\": %lld, \"offset\": %lld}}}\n",
                        q->limit, q->offset);
}

/* aggregate (no dimension) and time dimensions */
static void run_totals(struct api_request *rq, const struct api_v2_query *q, redisContext *rc)
{
    size_t n = 1;
    struct period_range *buckets = NULL;
    if (q->kind == V2_TIME && q->p.interval != PERIOD_INTERVAL_HOUR) {
        buckets = period_buckets(&q->p.range, q->p.interval, &n);
    } else if (q->kind == V2_TIME) {
        long days = period_range_days(&q->p.range);
        n = days > 0 ? (size_t)days * 24 : 0;
    } else { /* include.comparisons: the as many days just before, as v1's compare */
        long days = period_range_days(&q->p.range);
        buckets = xcalloc(2, sizeof *buckets);
        buckets[0] = q->p.range;
        buckets[1] = (struct period_range){q->p.range.first - (period_day)days,
                                           q->p.range.first - 1};
        n = q->compare ? 2 : 1;
        if (q->p.range.first > q->p.range.last)
            n = 0;
    }
    struct query_totals *t = xcalloc(n ? n : 2, sizeof *t);
    struct v2_row *rows = xcalloc(n ? n : 1, sizeof *rows);
    struct output_cell cmp[2 * (API_METRIC__COUNT + 1)];
    char (*labels)[20] = xcalloc(n ? n : 1, sizeof *labels);
    bool ok = true;
    if (q->kind == V2_TIME && q->p.interval == PERIOD_INTERVAL_HOUR) {
        ok = api_load_hours(rq, &q->p, rc, t, n); /* under a filter: api_hourly.c */
        for (size_t b = 0; ok && b < n; b++) {
            struct period_range one = {q->p.range.first + (period_day)(b / 24),
                                       q->p.range.first + (period_day)(b / 24)};
            api_publish_totals(rq->api, q->p.site_id, &one, &t[b]);
        }
    } else {
        ok = api_load_totals(rq, &q->p, rc, buckets, n, t);
    }
    if (!ok)
        goto done;
    for (size_t b = 0; b < n; b++) {
        if (q->kind == V2_TIME && q->p.interval == PERIOD_INTERVAL_HOUR) {
            period_format_day(q->p.range.first + (period_day)(b / 24), labels[b]);
            str_format(labels[b] + 10, sizeof labels[b] - 10, " %02zu:00:00", b % 24);
        } else if (q->kind == V2_TIME && q->p.interval == PERIOD_INTERVAL_MONTH) {
            period_format_month(buckets[b].first, labels[b]);
        } else {
            period_format_day(buckets[b].first, labels[b]);
        }
        rows[b].label = labels[b];
        rows[b].label_len = strlen(labels[b]);
        for (size_t i = 0; i < q->nmetrics; i++) {
            rows[b].cells[i] = api_totals_cell(&t[b], q->metrics[i].m);
            if ((int)i == q->order_metric)
                rows[b].sort = (double)api_totals_metric(&t[b], q->metrics[i].m);
        }
    }
    if (q->kind == V2_TIME && q->order_given)
        order_rows(q, rows, n);
    if (q->kind == V2_AGGREGATE && n == 0) { /* clipped away: zeros */
        n = 1;
        for (size_t i = 0; i < q->nmetrics; i++)
            rows[0].cells[i] = api_totals_cell(&t[0], q->metrics[i].m);
    } else if (q->kind == V2_AGGREGATE && q->compare) { /* one row: its comparison */
        n = 1;
        for (size_t i = 0; i < q->nmetrics; i++) {
            enum api_metric m = q->metrics[i].m;
            cmp[i] = api_totals_cell(&t[1], m);
            cmp[q->nmetrics + i] = output_num(
                api_change(m, api_totals_metric(&t[0], m), api_totals_metric(&t[1], m)));
        }
        rows[0].cmp = cmp;
    }
    write_response(rq, q, rows, n, q->kind == V2_TIME, n);
done:
    free(labels);
    free(rows);
    free(t);
    free(buckets);
}

/* a property dimension: its rows, k-anonymity first, then noise */
static void run_breakdown(struct api_request *rq, const struct api_v2_query *q,
                          redisContext *rc)
{
    struct stats_api *api = rq->api;
    char err[300];
    struct stats_rows rows = {0};
    struct v2_row *out = NULL;
    struct api_pair_cells *pairs = NULL;
    long long *row_all = NULL;
    if (api_pairs_needed(&q->p.filter, &q->p.filter2, q->p.dim)) {
        if (!api_pairs_rows(rq, &q->p, rc, &rows, &pairs))
            return;
    } else {
        if (q->p.range.first <= q->p.range.last &&
            (q->p.filter.set && strcmp(q->p.filter.dim, q->p.dim) == 0
                 ? api_filter_breakdown(rc, q->p.site_id, &q->p.filter, &q->p.range, &rows, err,
                                        sizeof err)
                 : query_breakdown(rc, q->p.site_id, q->p.dim, &q->p.range, &rows, err,
                                   sizeof err)) != 0) {
            api_redis_error(rq, err);
            return;
        }
        enum api_metric asked[API_METRIC__COUNT];
        size_t nasked = 0;
        for (size_t i = 0; i < q->nmetrics && nasked < API_METRIC__COUNT; i++)
            if (!q->metrics[i].percentage)
                asked[nasked++] = q->metrics[i].m;
        if (!api_visit_rows_load(rq, rc, q->p.site_id, q->p.dim, &q->p.range, asked, nasked,
                                 &rows))
            goto done;
        if (q->p.filter.set && !api_filter_rows(rq, &q->p, &rows))
            goto done;
    }
    size_t folded = 0;
    size_t kept = kanon_partition(rows.rows, rows.n, api->k_anonymity, &folded);
    char other_name[] = QUERY_OTHER;
    struct stats_row other = {.value = other_name, .value_len = sizeof other_name - 1};
    bool have_other = kept < rows.n;
    if (have_other) {
        kanon_sum(rows.rows + kept, rows.n - kept, &other);
        if ((pairs ? api_pairs_union(rc, q->p.site_id, pairs, rows.rows + kept, rows.n - kept,
                                     &other.visitors, err, sizeof err)
                   : query_rows_union_visitors(rc, q->p.site_id, q->p.dim, rows.rows + kept,
                                               rows.n - kept, &other.visitors, err,
                                               sizeof err)) != 0) {
            api_redis_error(rq, err);
            goto done;
        }
        api_visit_rows_other(q->p.dim, &other);
        have_other = kanon_publishable(other.visitors, api->k_anonymity);
    }
    /* the whole site's visitors, for percentage and conversion_rate */
    long long site_visitors = 0;
    for (size_t i = 0; i < q->nmetrics; i++) {
        if (!q->metrics[i].percentage && q->metrics[i].m != API_METRIC_CONVERSION_RATE)
            continue;
        struct query_totals t = {0};
        if (q->p.range.first <= q->p.range.last &&
            query_totals(rc, q->p.site_id, &q->p.range, 1, &t, err, sizeof err) != 0) {
            api_redis_error(rq, err);
            goto done;
        }
        api_publish_totals(api, q->p.site_id, &q->p.range, &t);
        site_visitors = t.visitors;
        break;
    }
    size_t n = kept + (have_other ? 1 : 0);
    row_all = xcalloc(n ? n : 1, sizeof *row_all);
    bool group = false;
    for (size_t i = 0; i < q->nmetrics; i++)
        group = group || q->metrics[i].group;
    if (group && strcmp(q->dimension, "event:goal") &&
        !api_rate_row_visitors(rq, &q->p, rc, &rows, kept, have_other, row_all))
        goto done;
    enum api_value_names names = api_property_names(q->dimension); /* _name variants */
    out = xcalloc(n ? n : 1, sizeof *out);
    for (size_t r = 0; r < n; r++) {
        struct stats_row *row = r < kept ? &rows.rows[r] : &other;
        api_publish_row(api, q->p.site_id, &q->p.range, row);
        out[r].label = api_value_label(names, row->value, row->value_len, &out[r].label_len);
        for (size_t i = 0; i < q->nmetrics; i++) {
            const struct v2_metric *m = &q->metrics[i];
            long long v;
            if (m->percentage || m->m == API_METRIC_CONVERSION_RATE) {
                long long of = m->group && strcmp(q->dimension, "event:goal") ? row_all[r]
                                                                               : site_visitors;
                v = of > 0 ? (row->visitors * 1000 + of / 2) / of : 0;
                out[r].cells[i] = output_tenths(v > 1000 ? 1000 : v);
            } else {
                v = api_row_metric(row, m->m);
                out[r].cells[i] = api_row_cell(row, m->m);
            }
            if ((int)i == q->order_metric)
                out[r].sort = (double)v;
        }
    }
    order_rows(q, out, kept); /* "(other)" stays last whatever the order */
    write_response(rq, q, out, n, true, n);
done:
    free(row_all);
    free(out);
    query_rows_free(&rows);
    api_pairs_free(pairs);
}

void api_v2_run(struct api_request *rq, const struct api_v2_query *q, redisContext *rc)
{
    if (q->kind == V2_PROPERTY)
        run_breakdown(rq, q, rc);
    else
        run_totals(rq, q, rc);
}
