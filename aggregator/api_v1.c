/* api_v1.c - Plausible's Stats API v1 handlers (docs/API.md): aggregate,
 * timeseries (days, months, local hours), breakdown with k-anonymity and
 * "(other)", realtime, sites. Query results become published tables here:
 * k-anonymity on true counts, then DP noise, then sorting and paging. It
 * never logs a token, a query string or a row value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_filter.h"
#include "api_internal.h"
#include "api_pairs.h"
#include "api_visit_rows.h"
#include "api_hourly.h"
#include "kanon.h"
#include "log.h"
#include "output.h"
#include "registry.h"
#include "util.h"

/* Realtime visitors: those seen in the last five minutes. */
#define REALTIME_WINDOW_S 300
#define SITES_MAX_GRANTS 10000

static const double counter_sensitivity[QC__COUNT] = {
    [QC_PAGEVIEWS] = 1, [QC_EVENTS] = 1,    [QC_VISITS] = 1,     [QC_BOUNCES] = 1,
    [QC_VISIT_DURATION_S] = 1800, [QC_SCROLL_SUM] = 100, [QC_SCROLL_N] = 1,
};

static const char VISITORS_NOTE[] =
    "Visitors are unique within one visitor-hash salt period (one UTC day by default). "
    "Over several days they are the HyperLogLog union of the daily sets: a person seen on "
    "several days counts once per salt period, not once overall.";

/* ---- privacy at publication ---- */

static long long dp_count(const struct stats_api *api, const char *site, const char *metric,
                          const char *value, size_t value_len, const struct period_range *r,
                          double sensitivity, long long true_count)
{
    if (!(api->dp_epsilon > 0))
        return true_count;
    struct dp_label l = {site, metric, value, value_len, r->first, r->last};
    return dp_publish(api->dp_key, api->dp_epsilon, sensitivity, &l, true_count);
}

void api_publish_totals(const struct stats_api *api, const char *site,
                           const struct period_range *r, struct query_totals *t)
{
    t->visitors = dp_count(api, site, "visitors", "", 0, r, 1, t->visitors);
    for (int c = 0; c < QC__COUNT; c++)
        t->c[c] = dp_count(api, site, query_counter_field(c), "", 0, r, counter_sensitivity[c],
                           t->c[c]);
}

static long long ratio(long long num, long long den, double scale, long long max)
{
    if (den <= 0)
        return 0;
    long long v = llround(scale * (double)num / (double)den);
    return v < 0 ? 0 : (max > 0 && v > max ? max : v);
}

long long api_totals_metric(const struct query_totals *t, enum api_metric m)
{
    switch (m) {
    case API_METRIC_VISITORS: return t->visitors;
    case API_METRIC_PAGEVIEWS: return t->c[QC_PAGEVIEWS];
    case API_METRIC_VISITS: return t->c[QC_VISITS];
    case API_METRIC_EVENTS: return t->c[QC_EVENTS];
    case API_METRIC_BOUNCE_RATE: return ratio(t->c[QC_BOUNCES], t->c[QC_VISITS], 100, 100);
    case API_METRIC_VISIT_DURATION: return ratio(t->c[QC_VISIT_DURATION_S], t->c[QC_VISITS], 1, 0);
    case API_METRIC_SCROLL_DEPTH: return ratio(t->c[QC_SCROLL_SUM], t->c[QC_SCROLL_N], 1, 100);
    case API_METRIC_CONVERSION_RATE: /* tenths of a percent, under a goal filter */
        if (t->all_visitors <= 0)
            return 0;
        return (t->visitors * 1000 + t->all_visitors / 2) / t->all_visitors > 1000
                   ? 1000
                   : (t->visitors * 1000 + t->all_visitors / 2) / t->all_visitors;
    case API_METRIC_VIEWS_PER_VISIT: return ratio(t->c[QC_PAGEVIEWS], t->c[QC_VISITS], 100, 0);
    case API_METRIC__COUNT: break;
    }
    return 0;
}

static struct output_cell row_cell(const struct stats_row *r, enum api_metric m,
                                   long long site_visitors);

/* A totals metric as a cell: views_per_visit with two decimals. */
struct output_cell api_totals_cell(const struct query_totals *t, enum api_metric m)
{
    if (m == API_METRIC_VIEWS_PER_VISIT)
        return output_hundredths(api_totals_metric(t, m));
    if (m == API_METRIC_CONVERSION_RATE)
        return output_tenths(api_totals_metric(t, m));
    return output_num(api_totals_metric(t, m));
}

/* Totals of buckets[0..n), under p's filter when it has one (a filtered
 * bucket seen by fewer than k visitors is withheld: zeros, counted in
 * meta), published (noise). False when the request was answered with an
 * error. */
bool api_load_totals(struct api_request *rq, const struct api_params *p, redisContext *rc,
                        const struct period_range *buckets, size_t n, struct query_totals *t)
{
    char err[400];
    if (!p->filter.set) {
        if (n && query_totals(rc, p->site_id, buckets, n, t, err, sizeof err) != 0) {
            api_redis_error(rq, err);
            return false;
        }
    } else {
        if (!api_visit_rows_filter_ok(&p->filter, err, sizeof err)) {
            api_set_error(rq, 400, err);
            return false;
        }
        int s = p->filter2.set ? api_pairs_totals(rc, p->site_id, &p->filter, &p->filter2,
                                                  buckets, n, t, err, sizeof err)
                               : api_filter_totals(rc, p->site_id, &p->filter, buckets, n, t,
                                                   err, sizeof err);
        if (s < 0) {
            api_redis_error(rq, err);
            return false;
        }
        if (s > 0) {
            api_set_error(rq, 400, err);
            return false;
        }
        rq->filtered = true;
        bool rate = false;
        for (size_t i = 0; i < p->nmetrics; i++)
            rate = rate || p->metrics[i] == API_METRIC_CONVERSION_RATE;
        if (rate && n) { /* the whole site's visitors of each bucket */
            struct query_totals *all = xcalloc(n, sizeof *all);
            if (query_totals(rc, p->site_id, buckets, n, all, err, sizeof err) != 0) {
                free(all);
                api_redis_error(rq, err);
                return false;
            }
            for (size_t b = 0; b < n; b++) {
                api_publish_totals(rq->api, p->site_id, &buckets[b], &all[b]);
                t[b].all_visitors = all[b].visitors;
            }
            free(all);
        }
        for (size_t b = 0; b < n; b++) {
            if (!kanon_publishable(t[b].visitors, rq->api->k_anonymity) &&
                (t[b].visitors || t[b].c[QC_PAGEVIEWS] || t[b].c[QC_EVENTS])) {
                long long all = t[b].all_visitors;
                memset(&t[b], 0, sizeof t[b]);
                t[b].all_visitors = all;
                rq->k_withheld++;
            }
        }
    }
    for (size_t b = 0; b < n; b++)
        api_publish_totals(rq->api, p->site_id, &buckets[b], &t[b]);
    return true;
}

/* compare=previous_period: the change from prev to cur, as Plausible
 * reports it (percent; points for bounce_rate). */
static long long change(enum api_metric m, long long cur, long long prev)
{
    if (m == API_METRIC_BOUNCE_RATE)
        return cur - prev;
    if (prev == 0)
        return cur > 0 ? 100 : 0;
    return llround(100.0 * (double)(cur - prev) / (double)prev);
}

long long api_change(enum api_metric m, long long cur, long long prev)
{
    return change(m, cur, prev);
}

long long api_row_metric(const struct stats_row *r, enum api_metric m)
{
    switch (m) {
    case API_METRIC_VISITORS: return r->visitors;
    case API_METRIC_PAGEVIEWS: return r->pageviews;
    case API_METRIC_VISITS: return r->visits;
    case API_METRIC_EVENTS: return r->events;
    /* per-row counts of the days that have them (api_visit_rows.h) */
    case API_METRIC_BOUNCE_RATE: return ratio(r->bounces, r->row_visits, 100, 100);
    case API_METRIC_VISIT_DURATION: return ratio(r->duration_s, r->row_visits, 1, 0);
    default: return 0;
    }
}

struct output_cell api_row_cell(const struct stats_row *r, enum api_metric m)
{
    if ((m == API_METRIC_BOUNCE_RATE || m == API_METRIC_VISIT_DURATION) && r->row_visits <= 0)
        return output_null(); /* no visit of the row on a day that keeps them */
    return output_num(api_row_metric(r, m));
}

/* A row's metric; conversion_rate in tenths of a percent of site_visitors
 * (one decimal, as Plausible answers it), at most 100. */
static struct output_cell row_cell(const struct stats_row *r, enum api_metric m,
                                   long long site_visitors)
{
    if (m != API_METRIC_CONVERSION_RATE)
        return api_row_cell(r, m);
    if (site_visitors <= 0)
        return output_tenths(0);
    long long t = (r->visitors * 1000 + site_visitors / 2) / site_visitors;
    return output_tenths(t > 1000 ? 1000 : t);
}

void api_publish_row(const struct stats_api *api, const char *site,
                        const struct period_range *range, struct stats_row *r)
{
    r->visitors = dp_count(api, site, "visitors", r->value, r->value_len, range, 1, r->visitors);
    r->pageviews = dp_count(api, site, "pageviews", r->value, r->value_len, range, 1, r->pageviews);
    r->visits = dp_count(api, site, "visits", r->value, r->value_len, range, 1, r->visits);
    r->events = dp_count(api, site, "events", r->value, r->value_len, range, 1, r->events);
    if (r->row_visits) {
        r->bounces = dp_count(api, site, "bounces", r->value, r->value_len, range, 1, r->bounces);
        r->duration_s = dp_count(api, site, "visit_duration_s", r->value, r->value_len, range,
                                 counter_sensitivity[QC_VISIT_DURATION_S], r->duration_s);
        r->row_visits =
            dp_count(api, site, "row_visits", r->value, r->value_len, range, 1, r->row_visits);
    }
}

/* ---- response bodies ---- */

static void write_meta(struct evbuffer *b, const struct stats_api *api,
                       const struct api_params *p, bool breakdown, size_t folded,
                       bool other_suppressed, long long filter_withheld,
                       long long visit_rows_missing)
{
    char first[11], last[11];
    period_format_day(p->range.first, first);
    period_format_day(p->range.last, last);
    if (p->range.first > p->range.last) /* clipped away entirely */
        period_format_day(p->range.last, first);
    evbuffer_add_printf(b, ", \"meta\": {\"date_range\": [\"%s\", \"%s\"], "
                           "\"clipped_to_retention\": %s, \"visitors\": ",
                        first, last, p->clipped ? "true" : "false");
    output_json_string(b, VISITORS_NOTE, sizeof VISITORS_NOTE - 1);
    if (breakdown)
        evbuffer_add_printf(b, ", \"k_anonymity\": %lld, \"folded_rows\": %zu, "
                               "\"other_suppressed\": %s",
                            api->k_anonymity, folded, other_suppressed ? "true" : "false");
    if (filter_withheld >= 0)
        evbuffer_add_printf(b, ", \"k_anonymity\": %lld, \"filter_withheld\": %lld",
                            api->k_anonymity, filter_withheld);
    if (visit_rows_missing >= 0)
        evbuffer_add_printf(b, ", \"visit_rows_missing_days\": %lld", visit_rows_missing);
    evbuffer_add_printf(b, ", \"dp_epsilon\": %g}", api->dp_epsilon);
}

static void metric_columns(const struct api_params *p, const char **cols, size_t first)
{
    for (size_t i = 0; i < p->nmetrics; i++)
        cols[first + i] = api_metric_name(p->metrics[i]);
}

static void write_table(struct api_request *rq, const struct api_params *p,
                        const struct output_table *t, bool aggregate, bool breakdown,
                        size_t folded, bool other_suppressed)
{
    rq->status = 200;
    if (p->format == OUTPUT_CSV) {
        rq->content_type = "text/csv; charset=utf-8";
        output_csv(rq->body, t);
        return;
    }
    rq->content_type = "application/json";
    evbuffer_add(rq->body, "{\"results\": ", 12);
    if (aggregate)
        output_json_aggregate(rq->body, t);
    else
        output_json_rows(rq->body, t);
    write_meta(rq->body, rq->api, p, breakdown, folded, other_suppressed,
               rq->filtered && !breakdown ? (long long)rq->k_withheld : -1,
               rq->visit_rows_used ? rq->visit_rows_missing : -1);
    evbuffer_add(rq->body, "}\n", 2);
}

/* ---- handlers ---- */

void api_v1_aggregate(struct api_request *rq, const struct api_params *p, redisContext *rc)
{
    struct query_totals t[2] = {{0}, {0}};
    /* compare=previous_period: the as many days just before */
    long days = period_range_days(&p->range);
    struct period_range ranges[2] = {p->range,
                                     {p->range.first - (period_day)days, p->range.first - 1}};
    size_t n = p->compare ? 2 : 1;
    if (p->range.first <= p->range.last && !api_load_totals(rq, p, rc, ranges, n, t))
        return;
    const char *cols[API_METRIC__COUNT];
    struct output_cell cells[2 * API_METRIC__COUNT];
    metric_columns(p, cols, 0);
    for (size_t i = 0; i < p->nmetrics; i++) {
        cells[i] = api_totals_cell(&t[0], p->metrics[i]);
        cells[p->nmetrics + i] = output_num(change(
            p->metrics[i], api_totals_metric(&t[0], p->metrics[i]), api_totals_metric(&t[1], p->metrics[i])));
    }
    struct output_table table = {p->nmetrics, cols, n, cells};
    write_table(rq, p, &table, true, false, 0, false);
}

/* interval=hour: 24 rows per day of the range, named "YYYY-MM-DD HH:00:00"
 * (the site's local hours). */
static void handle_hourly(struct api_request *rq, const struct api_params *p, redisContext *rc)
{
    long days = period_range_days(&p->range);
    size_t n = days > 0 ? (size_t)days * 24 : 0;
    struct query_totals *t = xcalloc(n ? n : 1, sizeof *t);
    if (!api_load_hours(rq, p, rc, t, n)) { /* under a filter: api_hourly.c */
        free(t);
        return;
    }
    size_t ncols = 1 + p->nmetrics;
    const char *cols[1 + API_METRIC__COUNT] = {"date"};
    metric_columns(p, cols, 1);
    struct output_cell *cells = xcalloc((n ? n : 1) * ncols, sizeof *cells);
    char (*labels)[20] = xcalloc(n ? n : 1, sizeof *labels);
    for (size_t b = 0; b < n; b++) {
        period_day day = p->range.first + (period_day)(b / 24);
        struct period_range one = {day, day};
        period_format_day(day, labels[b]);
        str_format(labels[b] + 10, sizeof labels[b] - 10, " %02zu:00:00", b % 24);
        /* noise keyed by the hour too, so hours never share the day's draw */
        const char *hour = labels[b] + 11;
        t[b].visitors = dp_count(rq->api, p->site_id, "visitors", hour, 2, &one, 1, t[b].visitors);
        for (int c = 0; c < QC__COUNT; c++)
            t[b].c[c] = dp_count(rq->api, p->site_id, query_counter_field(c), hour, 2, &one,
                                 counter_sensitivity[c], t[b].c[c]);
        cells[b * ncols] = output_str(labels[b], 19);
        for (size_t i = 0; i < p->nmetrics; i++)
            cells[b * ncols + 1 + i] = api_totals_cell(&t[b], p->metrics[i]);
    }
    struct output_table table = {ncols, cols, n, cells};
    write_table(rq, p, &table, false, false, 0, false);
    free(cells);
    free(labels);
    free(t);
}

void api_v1_timeseries(struct api_request *rq, const struct api_params *p,
                              redisContext *rc)
{
    if (p->interval == PERIOD_INTERVAL_HOUR) {
        handle_hourly(rq, p, rc);
        return;
    }
    size_t n;
    struct period_range *buckets = period_buckets(&p->range, p->interval, &n);
    struct query_totals *t = xcalloc(n ? n : 1, sizeof *t);
    if (!api_load_totals(rq, p, rc, buckets, n, t))
        goto done;
    size_t ncols = 1 + p->nmetrics;
    const char *cols[1 + API_METRIC__COUNT] = {"date"};
    metric_columns(p, cols, 1);
    struct output_cell *cells = xcalloc((n ? n : 1) * ncols, sizeof *cells);
    char (*dates)[11] = xcalloc(n ? n : 1, sizeof *dates);
    for (size_t b = 0; b < n; b++) {
        if (p->interval == PERIOD_INTERVAL_MONTH)
            period_format_month(buckets[b].first, dates[b]);
        else
            period_format_day(buckets[b].first, dates[b]);
        cells[b * ncols] = output_str(dates[b], 10);
        for (size_t i = 0; i < p->nmetrics; i++)
            cells[b * ncols + 1 + i] = api_totals_cell(&t[b], p->metrics[i]);
    }
    struct output_table table = {ncols, cols, n, cells};
    write_table(rq, p, &table, false, false, 0, false);
    free(cells);
    free(dates);
done:
    free(t);
    free(buckets);
}

static int row_order(const void *a, const void *b)
{
    const struct stats_row *x = a, *y = b;
    if (x->visitors != y->visitors)
        return x->visitors > y->visitors ? -1 : 1;
    size_t n = x->value_len < y->value_len ? x->value_len : y->value_len;
    int c = memcmp(x->value, y->value, n);
    if (c)
        return c;
    return x->value_len < y->value_len ? -1 : x->value_len > y->value_len;
}

/* A breakdown filtered by its own property: only the matching rows; 400
 * when "(other)" may hide some (api_filter.h). */
bool api_filter_rows(struct api_request *rq, const struct api_params *p,
                        struct stats_rows *rows)
{
    char err[400];
    struct api_filter_code *code;
    if (!api_filter_compile(&p->filter, &code, err, sizeof err) ||
        api_filter_select(&p->filter, code, rows, err, sizeof err) != 0) {
        api_filter_code_free(code);
        api_set_error(rq, 400, err);
        return false;
    }
    api_filter_code_free(code);
    return true;
}

/* A breakdown under filters on another property: its rows from the pair
 * counts; false (rq answered) on a refusal or an error. */
bool api_pairs_rows(struct api_request *rq, const struct api_params *p, redisContext *rc,
                    struct stats_rows *rows, struct api_pair_cells **pairs)
{
    char err[600];
    memset(rows, 0, sizeof *rows);
    if (p->range.first > p->range.last)
        return true;
    int s = api_pairs_breakdown(rc, p->site_id, &p->filter, &p->filter2, p->dim, &p->range,
                                rows, pairs, err, sizeof err);
    if (s < 0)
        api_redis_error(rq, err);
    else if (s > 0)
        api_set_error(rq, 400, err);
    return s == 0;
}

void api_v1_breakdown(struct api_request *rq, const struct api_params *p,
                             redisContext *rc)
{
    struct stats_api *api = rq->api;
    char err[300];
    struct stats_rows rows = {0};
    struct api_pair_cells *pairs = NULL;
    if (api_pairs_needed(&p->filter, &p->filter2, p->dim)) {
        if (!api_pairs_rows(rq, p, rc, &rows, &pairs))
            return;
    } else {
        if (p->range.first <= p->range.last &&
            (p->filter.set && strcmp(p->filter.dim, p->dim) == 0
                 ? api_filter_breakdown(rc, p->site_id, &p->filter, &p->range, &rows, err,
                                        sizeof err)
                 : query_breakdown(rc, p->site_id, p->dim, &p->range, &rows, err,
                                   sizeof err)) != 0) {
            api_redis_error(rq, err);
            return;
        }
        if (!api_visit_rows_load(rq, rc, p->site_id, p->dim, &p->range, p->metrics,
                                 p->nmetrics, &rows))
            goto done;
        if (p->filter.set && !api_filter_rows(rq, p, &rows))
            goto done;
    }
    /* k-anonymity on true counts first, then noise, then order and page. */
    size_t folded = 0;
    size_t kept = kanon_partition(rows.rows, rows.n, api->k_anonymity, &folded);
    char other_name[] = QUERY_OTHER;
    struct stats_row other = {.value = other_name, .value_len = sizeof other_name - 1};
    bool have_other = kept < rows.n, other_suppressed = false;
    if (have_other) {
        kanon_sum(rows.rows + kept, rows.n - kept, &other);
        if ((pairs ? api_pairs_union(rc, p->site_id, pairs, rows.rows + kept, rows.n - kept,
                                     &other.visitors, err, sizeof err)
                   : query_rows_union_visitors(rc, p->site_id, p->dim, rows.rows + kept,
                                               rows.n - kept, &other.visitors, err,
                                               sizeof err)) != 0) {
            api_redis_error(rq, err);
            goto done;
        }
        api_visit_rows_other(p->dim, &other);
        if (!kanon_publishable(other.visitors, api->k_anonymity)) {
            have_other = false;
            other_suppressed = true;
        }
    }
    for (size_t i = 0; i < kept; i++)
        api_publish_row(api, p->site_id, &p->range, &rows.rows[i]);
    if (have_other)
        api_publish_row(api, p->site_id, &p->range, &other);
    if (kept > 1)
        qsort(rows.rows, kept, sizeof *rows.rows, row_order);

    /* "(other)" is a summary: always the last row of the last page. */
    size_t total = kept + (have_other ? 1 : 0);
    size_t offset = (size_t)((p->page - 1) * p->limit);
    size_t count = offset >= total ? 0 : total - offset;
    if (count > (size_t)p->limit)
        count = (size_t)p->limit;
    size_t ncols = 1 + p->nmetrics;
    const char *cols[1 + API_METRIC__COUNT] = {p->column};
    metric_columns(p, cols, 1);
    /* conversion_rate: the share of all the range's visitors */
    long long site_visitors = 0;
    for (size_t m = 0; m < p->nmetrics; m++) {
        if (p->metrics[m] != API_METRIC_CONVERSION_RATE || p->range.first > p->range.last)
            continue;
        struct query_totals t = {0};
        if (query_totals(rc, p->site_id, &p->range, 1, &t, err, sizeof err) != 0) {
            api_redis_error(rq, err);
            goto done;
        }
        api_publish_totals(api, p->site_id, &p->range, &t);
        site_visitors = t.visitors;
        break;
    }
    struct output_cell *cells = xcalloc((count ? count : 1) * ncols, sizeof *cells);
    for (size_t i = 0; i < count; i++) {
        const struct stats_row *r = offset + i < kept ? &rows.rows[offset + i] : &other;
        cells[i * ncols] = output_str(r->value, r->value_len);
        for (size_t m = 0; m < p->nmetrics; m++)
            cells[i * ncols + 1 + m] = row_cell(r, p->metrics[m], site_visitors);
    }
    struct output_table table = {ncols, cols, count, cells};
    write_table(rq, p, &table, false, true, folded, other_suppressed);
    free(cells);
done:
    query_rows_free(&rows);
    api_pairs_free(pairs);
}

void api_v1_realtime(struct api_request *rq, const struct api_params *p, redisContext *rc)
{
    char err[300];
    long long n;
    time_t now = time(NULL);
    if (query_realtime(rc, p->site_id, (long long)now - REALTIME_WINDOW_S, (long long)now, &n, err,
                       sizeof err) != 0) {
        api_redis_error(rq, err);
        return;
    }
    period_day today = period_today(now);
    struct period_range r = {today, today};
    n = dp_count(rq->api, p->site_id, "realtime", "", 0, &r, 1, n);
    rq->status = 200;
    rq->content_type = "application/json";
    evbuffer_add_printf(rq->body, "%lld\n", n);
}

void api_v1_sites(struct api_request *rq, const struct api_params *p, redisContext *rc,
                         const unsigned char token[AUTH_HASH_BYTES], const char *reg_scope)
{
    struct stats_api *api = rq->api;
    char err[300];
    char **stored = NULL;
    size_t nstored = 0;
    bool all = reg_scope[0] ? strcmp(reg_scope, "*") == 0 : auth_all_sites(api->auth, token);
    if (all && query_sites(rq->api->cluster, &stored, &nstored, err, sizeof err) != 0) {
        api_redis_error(rq, err);
        return;
    }
    const char **named = xcalloc(SITES_MAX_GRANTS, sizeof *named);
    size_t nnamed = 0;
    if (!reg_scope[0])
        nnamed = auth_named_sites(api->auth, token, named, SITES_MAX_GRANTS);
    else if (!all)
        named[nnamed++] = reg_scope;
    /* Stored sites (all-sites tokens) plus every site granted by name. */
    const char **list = xcalloc(nstored + nnamed + 1, sizeof *list);
    size_t n = 0;
    for (size_t i = 0; i < nstored; i++)
        list[n++] = stored[i];
    for (size_t i = 0; i < nnamed; i++) {
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(list[j], named[i]) == 0;
        if (!dup)
            list[n++] = named[i];
    }
    const char *cols[2] = {"domain", "timezone"};
    struct output_cell *cells = xcalloc((n ? n : 1) * 2, sizeof *cells);
    /* time zones from the site registry (veil-admin site add), else UTC */
    char (*zones)[64] = xcalloc(n ? n : 1, sizeof *zones);
    for (size_t i = 0; i < n; i++) {
        struct reg_site site;
        char rerr[200];
        if (registry_site_get(rc, list[i], &site, rerr, sizeof rerr) == 1 && site.timezone[0])
            str_copy(zones[i], sizeof zones[i], site.timezone, strlen(site.timezone));
        else
            str_copy(zones[i], sizeof zones[i], "Etc/UTC", 7);
        cells[2 * i] = output_str(list[i], strlen(list[i]));
        cells[2 * i + 1] = output_str(zones[i], strlen(zones[i]));
    }
    struct output_table table = {2, cols, n, cells};
    rq->status = 200;
    if (p->format == OUTPUT_CSV) {
        rq->content_type = "text/csv; charset=utf-8";
        output_csv(rq->body, &table);
    } else {
        rq->content_type = "application/json";
        evbuffer_add(rq->body, "{\"sites\": ", 10);
        output_json_rows(rq->body, &table);
        evbuffer_add(rq->body, "}\n", 2);
    }
    free(cells);
    free(zones);
    free(list);
    free(named);
    for (size_t i = 0; i < nstored; i++)
        free(stored[i]);
    free(stored);
}
