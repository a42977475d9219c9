/* test_api_params.c - the stats API's query parameters: defaults, every
 * property mapping, and a 400 reason naming each bad parameter. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api_params.h"

static period_day today(void)
{
    return period_from_civil(2026, 11, 23);
}

static struct api_params ok(enum api_endpoint ep, const char *query, const char *accept)
{
    struct api_params p;
    char err[300];
    cr_assert(api_params_parse(ep, query, accept, today(), 730, &p, err, sizeof err), "%s: %s",
              query, err);
    return p;
}

Test(api_params, defaults)
{
    struct api_params p = ok(API_EP_AGGREGATE, "site_id=example.com", NULL);
    cr_expect_str_eq(p.site_id, "example.com");
    cr_expect_eq(p.range.last, today());
    cr_expect_eq(p.range.first, today() - 29);
    cr_expect_eq(p.nmetrics, 1);
    cr_expect_eq(p.metrics[0], API_METRIC_VISITORS);
    cr_expect_eq(p.format, OUTPUT_JSON);
    cr_expect_eq(p.interval, PERIOD_INTERVAL_DAY);

    p = ok(API_EP_BREAKDOWN, "site_id=a&property=event:page", NULL);
    cr_expect_eq(p.limit, 100);
    cr_expect_eq(p.page, 1);

    p = ok(API_EP_TIMESERIES, "site_id=a&period=12mo", NULL);
    cr_expect_eq(p.interval, PERIOD_INTERVAL_MONTH, "12mo defaults to monthly buckets");
    p = ok(API_EP_TIMESERIES, "site_id=a&period=6mo&interval=date", NULL);
    cr_expect_eq(p.interval, PERIOD_INTERVAL_DAY);
}

Test(api_params, metrics_keep_their_order)
{
    struct api_params p = ok(API_EP_AGGREGATE,
                             "site_id=a&metrics=pageviews,visitors,bounce_rate,visit_duration,"
                             "events,scroll_depth,visits",
                             NULL);
    cr_assert_eq(p.nmetrics, 7);
    cr_expect_eq(p.metrics[0], API_METRIC_PAGEVIEWS);
    cr_expect_eq(p.metrics[1], API_METRIC_VISITORS);
    cr_expect_eq(p.metrics[6], API_METRIC_VISITS);
    cr_expect_str_eq(api_metric_name(p.metrics[3]), "visit_duration");
}

Test(api_params, csv_by_accept_or_format)
{
    cr_expect_eq(ok(API_EP_AGGREGATE, "site_id=a", "text/csv").format, OUTPUT_CSV);
    cr_expect_eq(ok(API_EP_AGGREGATE, "site_id=a", "application/json, text/csv;q=0.5").format,
                 OUTPUT_CSV);
    cr_expect_eq(ok(API_EP_AGGREGATE, "site_id=a&format=csv", NULL).format, OUTPUT_CSV);
    cr_expect_eq(ok(API_EP_AGGREGATE, "site_id=a&format=json", "text/csv").format, OUTPUT_JSON);
    cr_expect_eq(ok(API_EP_AGGREGATE, "site_id=a", "*/*").format, OUTPUT_JSON);
}

Test(api_params, every_property_maps_to_a_dimension_and_column)
{
    const struct {
        const char *property, *dim, *column;
    } map[] = {
        {"event:page", "page", "page"},
        {"event:name", "name", "name"},
        {"visit:entry_page", "entry_page", "entry_page"},
        {"visit:source", "source", "source"},
        {"visit:utm_source", "utm_source", "utm_source"},
        {"visit:utm_medium", "utm_medium", "utm_medium"},
        {"visit:utm_campaign", "utm_campaign", "utm_campaign"},
        {"visit:country", "country", "country"},
        {"visit:region", "region", "region"},
        {"visit:city", "city", "city"},
        {"visit:browser", "browser", "browser"},
        {"visit:os", "os", "os"},
        {"visit:device", "device", "device"},
        {"visit:screen", "screen", "screen"},
        {"visit:exit_page", "exit_page", "exit_page"},
        {"event:props:plan", "prop:plan", "plan"},
        {"event:props:a%3Ab", "prop:a:b", "a:b"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char q[200];
        snprintf(q, sizeof q, "site_id=a&property=%s", map[i].property);
        struct api_params p = ok(API_EP_BREAKDOWN, q, NULL);
        cr_expect_str_eq(p.dim, map[i].dim);
        cr_expect_str_eq(p.column, map[i].column);
    }
}

static void bad(enum api_endpoint ep, const char *query, const char *param)
{
    struct api_params p;
    char err[300] = "";
    cr_expect_not(api_params_parse(ep, query, NULL, today(), 730, &p, err, sizeof err), "%s",
                  query);
    size_t n = strlen(param);
    cr_expect(strncmp(err, param, n) == 0 && err[n] == ':', "%s -> \"%s\", wanted %s", query,
              err, param);
}

Test(api_params, every_bad_parameter_is_named)
{
    bad(API_EP_AGGREGATE, "", "site_id");
    bad(API_EP_AGGREGATE, NULL, "site_id");
    bad(API_EP_AGGREGATE, "site_id=", "site_id");
    bad(API_EP_AGGREGATE, "site_id=a%20b", "site_id");
    bad(API_EP_AGGREGATE, "site_id=a%0Ab", "site_id");
    bad(API_EP_AGGREGATE, "site_id=a&period=2d", "period");
    bad(API_EP_AGGREGATE, "site_id=a&period=day&date=2026-02-29", "date");
    bad(API_EP_AGGREGATE, "site_id=a&period=custom", "date");
    bad(API_EP_AGGREGATE, "site_id=a&period=custom&date=2010-01-01,2026-01-01", "date");
    bad(API_EP_AGGREGATE, "site_id=a&metrics=visitors,hits", "metrics");
    bad(API_EP_AGGREGATE, "site_id=a&metrics=", "metrics");
    bad(API_EP_AGGREGATE, "site_id=a&metrics=visitors,visitors", "metrics");
    bad(API_EP_AGGREGATE, "site_id=a&metrics=visitors,", "metrics");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&metrics=bounce_rate", "metrics");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&metrics=scroll_depth", "metrics");
    bad(API_EP_TIMESERIES, "site_id=a&interval=fortnight", "interval");
    bad(API_EP_BREAKDOWN, "site_id=a", "property");
    bad(API_EP_BREAKDOWN, "site_id=a&property=visit:exit_pages", "property");
    bad(API_EP_BREAKDOWN, "site_id=a&property=visit:exit_page&metrics=scroll_depth", "metrics");
    bad(API_EP_BREAKDOWN, "site_id=a&property=visit:source&metrics=views_per_visit", "metrics");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:props:", "property");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&limit=0", "limit");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&limit=1001", "limit");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&limit=ten", "limit");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&page=0", "page");
    bad(API_EP_BREAKDOWN, "site_id=a&property=event:page&page=-1", "page");
    bad(API_EP_AGGREGATE, "site_id=a&format=xml", "format");
    bad(API_EP_AGGREGATE, "site_id=a&colour=blue", "colour");
    bad(API_EP_AGGREGATE,
        "site_id=a&filters=event:page%3D%3D/a;visit:source%3D%3Db;visit:os%3D%3Dc", "filters");
    bad(API_EP_AGGREGATE, "site_id=a&compare=x", "compare");
    bad(API_EP_TIMESERIES, "site_id=a&compare=previous_period", "compare");
    bad(API_EP_AGGREGATE, "site_id=a&interval=day", "interval");
    bad(API_EP_AGGREGATE, "site_id=a&property=event:page", "property");
    bad(API_EP_AGGREGATE, "site_id=a&site_id=b", "site_id");
    bad(API_EP_AGGREGATE, "site_id=a&period=day&period=7d", "period");
    bad(API_EP_AGGREGATE, "site_id=a&date=%FF", "date");
    bad(API_EP_REALTIME, "site_id=a&period=day", "period");
    bad(API_EP_AGGREGATE, "site_id", "query");
}

Test(api_params, visit_properties_take_per_row_bounce_rate_and_duration)
{
    struct api_params p = ok(API_EP_BREAKDOWN,
                             "site_id=a&property=visit:source&metrics=visits,bounce_rate,"
                             "visit_duration",
                             NULL);
    cr_expect_eq(p.nmetrics, 3);
    cr_expect_eq(p.metrics[1], API_METRIC_BOUNCE_RATE);
    p = ok(API_EP_BREAKDOWN, "site_id=a&property=visit:exit_page&metrics=visitors,bounce_rate",
           NULL);
    cr_expect_str_eq(p.dim, "exit_page");
}

Test(api_params, sites_endpoint_needs_no_site)
{
    struct api_params p = ok(API_EP_SITES, NULL, NULL);
    cr_expect_str_eq(p.site_id, "");
    cr_expect_eq(ok(API_EP_SITES, "format=csv", NULL).format, OUTPUT_CSV);
}

Test(api_params, retention_clips_the_range)
{
    struct api_params p;
    char err[300];
    cr_assert(api_params_parse(API_EP_AGGREGATE, "site_id=a&period=30d", NULL, today(), 7, &p,
                               err, sizeof err));
    cr_expect(p.clipped);
    cr_expect_eq(p.range.first, today() - 7);
}
