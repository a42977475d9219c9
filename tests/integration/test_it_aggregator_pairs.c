/* test_it_aggregator_pairs.c - the two-dimensional counts (docs/KEYS.md
 * "Pair counts") made by the real veil-aggregator from known events and
 * published by its stats API: exact numbers for a breakdown filtered by
 * another property (visit dimension x page, page x visit dimension, goal
 * x source, visit x visit), two filters at once (v1 and v2 agreeing),
 * k-anonymity on filtered cells, the 400 answers with their reasons, and
 * the memory bound of pair_budget under a property and page flood. */
#include <criterion/criterion.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "aggregator_env.h"

#define TOKEN "pairs-test-token-0123456789"
#include "aggregator_api.h"

TestSuite(aggregator_pairs, .fini = teardown);

static void hit(struct env *e, const char *name, const char *visitor, const char *path,
                const char *ref, const char *country, const char *browser, int64_t ts)
{
    struct event_record ev;
    event_base(&ev, e, name, path, visitor, ts);
    if (ref)
        SET(ev.referrer, ref);
    SET(ev.country, country);
    SET(ev.browser, browser);
    xadd(e->rc, &ev);
}

/* The known events: four visitors, one visit each.
 *   VA  pageview /        google.com  DE Firefox
 *       pageview /about   (internal)  DE Firefox
 *       Signup   /about               DE Firefox
 *   VB  pageview /        google.de   FR Chrome
 *   VC  pageview /pricing bing.com    DE Chrome
 *       Signup   /pricing bing.com    DE Chrome
 *   VD  pageview /blog/x              DE Firefox */
static void known_events(struct env *e)
{
    char *words[] = {"site", "add", SITE, "--goal", "event:Signup", NULL};
    env_admin(e, words);
    const int64_t t = e->now - 600;
    hit(e, "pageview", VA, "/", "google.com", "DE", "Firefox", t);
    hit(e, "pageview", VA, "/about", NULL, "DE", "Firefox", t + 60);
    hit(e, "Signup", VA, "/about", NULL, "DE", "Firefox", t + 70);
    hit(e, "pageview", VB, "/", "google.de", "FR", "Chrome", t);
    hit(e, "pageview", VC, "/pricing", "bing.com", "DE", "Chrome", t);
    hit(e, "Signup", VC, "/pricing", "bing.com", "DE", "Chrome", t + 5);
    hit(e, "pageview", VD, "/blog/x", NULL, "DE", "Firefox", t);
}

static struct harness_proc *start(struct env *e, int *port, const char *k)
{
    *port = harness_free_port();
    static char listen[64], refs[512], kanon[64];
    char refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", *port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    str_format(kanon, sizeof kanon, "--k_anonymity=%s", k);
    char *extra[] = {listen, "--api_token=" TOKEN, kanon, refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(*port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    return agg;
}

#define Q "/api/v1/stats/"
#define S "site_id=" SITE "&period=day"
#define EQ "%3D%3D"

Test(aggregator_pairs, breakdowns_filtered_by_another_property_and_two_filters, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    int port;
    struct harness_proc *agg = start(e, &port, "1");

    /* visit dimension x page: pages viewed with source Google */
    char *b = api(port, Q "breakdown?" S "&property=event:page&metrics=visitors,pageviews"
                          "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "\"results\": [{\"page\": \"/\", \"visitors\": 2, \"pageviews\": 2}]");
    free(b);
    /* ... the sum over pages is the single filter's total */
    b = api(port, Q "aggregate?" S "&metrics=pageviews&filters=visit:source" EQ "Google", 200);
    expect_has(b, "\"pageviews\": {\"value\": 2}");
    free(b);

    /* page x visit dimension: countries of one page, of a set, of a contains */
    b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,pageviews"
                    "&filters=event:page" EQ "/", 200);
    expect_has(b, "{\"country\": \"DE\", \"visitors\": 1, \"pageviews\": 1}");
    expect_has(b, "{\"country\": \"FR\", \"visitors\": 1, \"pageviews\": 1}");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,pageviews"
                    "&filters=event:page" EQ "/%7C/about", 200);
    expect_has(b, "{\"country\": \"DE\", \"visitors\": 1, \"pageviews\": 2}");
    expect_has(b, "{\"country\": \"FR\", \"visitors\": 1, \"pageviews\": 1}");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:browser&metrics=visitors,pageviews"
                    "&filters=event:page~o", 200); /* /about, /blog/x */
    expect_has(b, "\"results\": [{\"browser\": \"Firefox\", \"visitors\": 2, "
                  "\"pageviews\": 2}]");
    free(b);

    /* goal x source: conversions by the events' own source */
    b = api(port, Q "breakdown?" S "&property=visit:source&metrics=visitors,events"
                    "&filters=event:goal" EQ "Signup", 200);
    expect_has(b, "{\"source\": \"Bing\", \"visitors\": 1, \"events\": 1}");
    expect_has(b, "{\"source\": \"Direct / None\", \"visitors\": 1, \"events\": 1}");
    expect_lacks(b, "Google");
    free(b);

    /* visit x visit: once per visit, with the visit's first page view */
    b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,visits"
                    "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "{\"country\": \"DE\", \"visitors\": 1, \"visits\": 1}");
    expect_has(b, "{\"country\": \"FR\", \"visitors\": 1, \"visits\": 1}");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:browser&metrics=visitors,visits"
                    "&filters=visit:country" EQ "DE", 200);
    expect_has(b, "{\"browser\": \"Firefox\", \"visitors\": 2, \"visits\": 2}");
    expect_has(b, "{\"browser\": \"Chrome\", \"visitors\": 1, \"visits\": 1}");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:entry_page&metrics=visitors"
                    "&filters=visit:country" EQ "DE", 200);
    expect_has(b, "{\"entry_page\": \"/\", \"visitors\": 1}");
    expect_has(b, "{\"entry_page\": \"/pricing\", \"visitors\": 1}");
    expect_lacks(b, "/about");
    free(b);

    /* a negated condition and a _name variant (api_filter.h) on a pair */
    b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,visits"
                    "&filters=visit:source!%3DGoogle", 200);
    expect_has(b, "\"results\": [{\"country\": \"DE\", \"visitors\": 2, \"visits\": 2}]");
    free(b);
    b = api(port, Q "breakdown?" S "&property=event:page&metrics=visitors,pageviews"
                    "&filters=visit:country_name" EQ "France", 200);
    expect_has(b, "\"results\": [{\"page\": \"/\", \"visitors\": 1, \"pageviews\": 1}]");
    free(b);

    /* two filters: aggregate, timeseries, and a breakdown by one of them */
    b = api(port, Q "aggregate?" S "&metrics=visitors,visits"
                    "&filters=visit:source" EQ "Google;visit:country" EQ "DE", 200);
    expect_has(b, "\"visitors\": {\"value\": 1}");
    expect_has(b, "\"visits\": {\"value\": 1}");
    free(b);
    b = api(port, Q "aggregate?" S "&metrics=visitors,events"
                    "&filters=event:goal" EQ "Signup;visit:country" EQ "DE", 200);
    expect_has(b, "\"visitors\": {\"value\": 2}");
    expect_has(b, "\"events\": {\"value\": 2}");
    free(b);
    b = api(port, Q "aggregate?" S "&metrics=visitors,pageviews"
                    "&filters=event:page" EQ "/;visit:browser" EQ "Chrome", 200);
    expect_has(b, "\"visitors\": {\"value\": 1}");
    expect_has(b, "\"pageviews\": {\"value\": 1}");
    free(b);
    b = api(port, Q "timeseries?site_id=" SITE "&period=7d&metrics=visitors"
                    "&filters=visit:country" EQ "DE;visit:browser" EQ "Firefox", 200);
    char want[80];
    str_format(want, sizeof want, "{\"date\": \"%s\", \"visitors\": 2}", e->day);
    expect_has(b, want);
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:browser&metrics=visitors"
                    "&filters=visit:country" EQ "DE;visit:browser" EQ "Chrome", 200);
    expect_has(b, "\"results\": [{\"browser\": \"Chrome\", \"visitors\": 1}]");
    free(b);

    /* v2: the same answers through the same code */
    cJSON *doc = v2(port,
                    "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"pageviews\"], "
                    "\"date_range\": \"day\", \"dimensions\": [\"event:page\"], \"filters\": "
                    "[[\"is\", \"visit:source\", [\"Google\"]]]}",
                    200);
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "results"));
    cr_expect_str_eq(text, "[{\"metrics\":[2,2],\"dimensions\":[\"/\"]}]");
    free(text);
    cJSON_Delete(doc);
    doc = v2(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\", \"visits\"], "
             "\"date_range\": \"day\", \"filters\": [[\"and\", [[\"is\", \"visit:source\", "
             "[\"Google\"]], [\"is\", \"visit:country\", [\"DE\"]]]]]}",
             200);
    text = cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "results"));
    cr_expect_str_eq(text, "[{\"metrics\":[1,1],\"dimensions\":[]}]");
    free(text);
    /* the query is echoed as the and of the two properties' filters */
    text = cJSON_PrintUnformatted(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "query"), "filters"));
    cr_expect_str_eq(text, "[[\"and\",[[\"is\",\"visit:source\",[\"Google\"]],[\"is\","
                           "\"visit:country\",[\"DE\"]]]]]");
    free(text);
    cJSON_Delete(doc);
    doc = v2(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"filters\": [[\"is\", \"visit:country\", [\"DE\"]], [\"is\", \"visit:browser\", "
             "[\"Firefox\"]]]}",
             200);
    text = cJSON_PrintUnformatted(cJSON_GetObjectItem(doc, "results"));
    cr_expect_str_eq(text, "[{\"metrics\":[2],\"dimensions\":[]}]");
    free(text);
    cJSON_Delete(doc);

    /* what the pair counts cannot answer exactly */
    static const struct {
        const char *path, *reason;
    } refused[] = {
        {Q "aggregate?" S "&filters=visit:source" EQ "Google;event:page" EQ "/;visit:country" EQ
           "DE",
         "filters: filters on three or more properties at once need counts per combination"},
        {Q "breakdown?" S "&property=visit:browser&filters=visit:source" EQ
           "Google;event:page" EQ "/",
         "filters: a breakdown by visit:browser under filters on visit:source and event:page "
         "needs counts per combination of three values"},
        {Q "breakdown?" S "&property=visit:country&metrics=pageviews&filters=visit:source" EQ
           "Google",
         "filters: pageviews is not kept per pair of source and country values"},
        {Q "breakdown?" S "&property=event:page&metrics=visits&filters=visit:country" EQ "DE",
         "filters: visits is not kept per pair of page and country values"},
        {Q "breakdown?" S "&property=visit:country&metrics=visits&filters=event:page" EQ "/",
         "filters: visits is not kept per event:page value"},
        {Q "breakdown?" S "&property=event:name&filters=visit:source" EQ "Google",
         "filters: source and name are not counted per pair of values"},
        {Q "breakdown?" S "&property=visit:entry_page&filters=event:page" EQ "/",
         "filters: page and entry_page are not counted per pair of values"},
        {Q "timeseries?" S "&interval=hour&filters=visit:source" EQ "Google;visit:country" EQ
           "DE",
         "filters: hourly rows are kept per property, not per pair of properties"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        b = api(port, refused[i].path, 400);
        expect_has(b, refused[i].reason);
        free(b);
    }
    doc = v2(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"visit:os\"], \"filters\": [[\"is\", \"visit:country\", "
             "[\"DE\"]], [\"is\", \"visit:browser\", [\"Firefox\"]]]}",
             400);
    const cJSON *error = cJSON_GetObjectItem(doc, "error");
    cr_expect(cJSON_IsString(error) &&
                  strstr(error->valuestring, "needs counts per combination of three values"),
              "%s", cJSON_IsString(error) ? error->valuestring : "?");
    cJSON_Delete(doc);
    doc = v2(port,
             "{\"site_id\": \"" SITE "\", \"metrics\": [\"visitors\"], \"date_range\": \"day\", "
             "\"dimensions\": [\"time:hour\"], \"filters\": [[\"is\", \"visit:country\", "
             "[\"DE\"]], [\"is\", \"visit:browser\", [\"Firefox\"]]]}",
             400);
    error = cJSON_GetObjectItem(doc, "error");
    cr_expect(cJSON_IsString(error) &&
                  strstr(error->valuestring, "hourly rows are kept per property, not per pair"),
              "%s", cJSON_IsString(error) ? error->valuestring : "?");
    cJSON_Delete(doc);

    /* a day counted before pair counts existed (an older aggregator wrote
     * its totals, and no pair keys): a range with it is refused */
    char yesterday[11];
    utc_day(e->now - 86400, yesterday);
    freeReplyObject(cmd(e->rc, "HSET %sd:%s:%s:totals pageviews 3 events 3", KP, SITE,
                        yesterday));
    b = api(port, Q "breakdown?site_id=" SITE "&period=7d&property=event:page"
                    "&filters=visit:source" EQ "Google", 400);
    str_format(want, sizeof want, "filters: %s was counted, at least in part, without",
               yesterday);
    expect_has(b, want);
    free(b);
    /* ... and a day partly counted so (an upgrade during the day): one
     * more page view in its totals than went through the pair counts */
    b = api(port, Q "breakdown?" S "&property=event:page&filters=visit:source" EQ "Google", 200);
    free(b);
    freeReplyObject(cmd(e->rc, "HINCRBY %sd:%s:%s:totals pageviews 1", KP, SITE, e->day));
    b = api(port, Q "breakdown?" S "&property=event:page&filters=visit:source" EQ "Google", 400);
    str_format(want, sizeof want, "filters: %s was counted, at least in part, without", e->day);
    expect_has(b, want);
    free(b);
    freeReplyObject(cmd(e->rc, "HINCRBY %sd:%s:%s:totals pageviews -1", KP, SITE, e->day));
    /* ... a one-filter query over it still is answered from its own rows */
    b = api(port, Q "aggregate?site_id=" SITE "&period=7d&metrics=pageviews"
                    "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "\"pageviews\": {\"value\": 2}");
    free(b);
    agg_stop_ok(agg);
}

Test(aggregator_pairs, k_anonymity_on_filtered_cells, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    int port;
    struct harness_proc *agg = start(e, &port, "2");
    /* DE and FR under source Google: one visitor each, below k = 2: both
     * fold into (other), published because the union reaches 2 */
    char *b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,visits"
                          "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "\"results\": [{\"country\": \"(other)\", \"visitors\": 2, \"visits\": 2}]");
    expect_has(b, "\"folded_rows\": 2");
    free(b);
    /* Firefox in DE has 2 visitors: published; Chrome (1) alone in
     * (other), itself below k: suppressed */
    b = api(port, Q "breakdown?" S "&property=visit:browser&metrics=visitors"
                    "&filters=visit:country" EQ "DE", 200);
    expect_has(b, "\"results\": [{\"browser\": \"Firefox\", \"visitors\": 2}]");
    expect_has(b, "\"other_suppressed\": true");
    free(b);
    /* two filters: a cell of one visitor is withheld and counted */
    b = api(port, Q "aggregate?" S "&metrics=visitors,visits"
                    "&filters=visit:source" EQ "Google;visit:country" EQ "DE", 200);
    expect_has(b, "\"visitors\": {\"value\": 0}");
    expect_has(b, "\"filter_withheld\": 1");
    free(b);
    b = api(port, Q "aggregate?" S "&metrics=visitors"
                    "&filters=visit:country" EQ "DE;visit:browser" EQ "Firefox", 200);
    expect_has(b, "\"visitors\": {\"value\": 2}");
    expect_has(b, "\"filter_withheld\": 0");
    free(b);
    agg_stop_ok(agg);
}

/* ---- the memory bound under a property and page flood ---- */

#define FLOOD_VISITORS 3000
#define FLOOD_PROPS 20
#define PAIR_BUDGET 2000
/* docs/KEYS.md "Memory bound": pair keys of a site-day <= pair_budget +
 * 348 (the `pairs` hash, 181 pair hashes, 166 overflow marks) */
#define PAIR_KEYS_FIXED 348

/* Keys of the site-day matching "<base><pattern>": count and bytes. */
static void usage(struct env *e, const char *pattern, long long *keys, long long *bytes)
{
    char cursor[32] = "0";
    *keys = *bytes = 0;
    do {
        redisReply *scan = cmd(e->rc, "SCAN %s MATCH %sd:%s:%s:%s COUNT 10000", cursor, KP,
                               SITE, e->day, pattern);
        str_copy(cursor, sizeof cursor, scan->element[0]->str, scan->element[0]->len);
        const redisReply *list = scan->element[1];
        for (size_t i = 0; i < list->elements; i++)
            redisAppendCommand(e->rc, "MEMORY USAGE %b SAMPLES 0", list->element[i]->str,
                               list->element[i]->len);
        for (size_t i = 0; i < list->elements; i++) {
            redisReply *r = NULL;
            cr_assert_eq(redisGetReply(e->rc, (void **)&r), REDIS_OK);
            if (r->type == REDIS_REPLY_INTEGER)
                *bytes += r->integer;
            freeReplyObject(r);
            (*keys)++;
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
}

/* Sum of every field of a hash, and its fields other than "(other)". */
static void hash_sum(struct env *e, const char *suffix, long long *sum, long long *cells)
{
    redisReply *all = cmd(e->rc, "HGETALL %sd:%s:%s:%s", KP, SITE, e->day, suffix);
    *sum = *cells = 0;
    for (size_t f = 0; f + 1 < all->elements; f += 2) {
        *sum += strtoll(all->element[f + 1]->str, NULL, 10);
        *cells += strcmp(all->element[f]->str, "(other)") != 0;
    }
    freeReplyObject(all);
}

Test(aggregator_pairs, pair_budget_bounds_a_property_and_page_flood, .timeout = 240)
{
    env_start(&env);
    struct env *e = &env;
    /* every visitor a new page, a new referrer (a new source), 20 new
     * properties: each wants ~15 new pair cells, 45,000 in all */
    for (int i = 0; i < FLOOD_VISITORS; i++) {
        struct event_record ev;
        char vh[17], path[32], ref[48];
        str_format(vh, sizeof vh, "%016x", 0x500000u + (unsigned)i);
        str_format(path, sizeof path, "/flood/%d", i);
        str_format(ref, sizeof ref, "r%d.example", i);
        event_base(&ev, e, "pageview", path, vh, e->now - 300);
        SET(ev.referrer, ref);
        SET(ev.country, i % 2 ? "DE" : "FR");
        SET(ev.browser, "Firefox");
        for (int j = 0; j < FLOOD_PROPS; j++) {
            str_format(ev.props[j].key, sizeof ev.props[j].key, "k%d", j);
            str_format(ev.props[j].value, sizeof ev.props[j].value, "v%d_%d", i, j);
        }
        ev.nprops = FLOOD_PROPS;
        xadd_append(e->rc, &ev);
        if (i % 100 == 99)
            for (int k = 0; k < 100; k++)
                xadd_reply(e->rc);
    }
    int port = harness_free_port();
    char listen[64], budget[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(budget, sizeof budget, "--pair_budget=%d", PAIR_BUDGET);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", budget, refs, NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 200000);

    /* the budget: exactly PAIR_BUDGET cells, the rest in (other), nothing lost */
    cr_expect_eq(hget(e, "pairs", "cells"), PAIR_BUDGET);
    long long cells = 0, sum, n;
    static const char *const hashes[] = {
        "p:page:source:pv", "p:page:referrer:pv", "p:page:channel:pv", "p:page:country:pv",
        "p:page:browser:pv", "p:source:country:vis", "p:source:browser:vis",
        "p:source:referrer:vis", "p:source:channel:vis", "p:entry_page:source:vis",
        "p:entry_page:country:vis", "p:country:browser:vis", "p:channel:referrer:vis",
        "p:entry_page:referrer:vis", "p:source:visitor_type:vis"};
    for (size_t i = 0; i < ARRAY_LEN(hashes); i++) {
        hash_sum(e, hashes[i], &sum, &n);
        cr_expect_eq(sum, FLOOD_VISITORS, "%s: every page view or visit counted", hashes[i]);
        cells += n;
    }
    cr_expect_leq(cells, PAIR_BUDGET);
    cr_expect_gt(cells, PAIR_BUDGET / 2, "the budget is used");

    long long keys, bytes, pkeys, pbytes, ukeys, ubytes;
    usage(e, "p:*", &pkeys, &pbytes);
    usage(e, "pu:*", &ukeys, &ubytes);
    usage(e, "*", &keys, &bytes);
    cr_log_info("pair flood: %lld pair hashes (%lld bytes), %lld pair HyperLogLogs (%lld "
                "bytes); site-day %lld keys, %lld bytes",
                pkeys, pbytes, ukeys, ubytes, keys, bytes);
    cr_expect_leq(pkeys + ukeys + 1, PAIR_BUDGET + PAIR_KEYS_FIXED, "the written key bound");
    cr_expect_leq(ukeys, PAIR_BUDGET, "one HyperLogLog per admitted cell, none for (other)");
    /* a cell costs its fields and a sparse HyperLogLog: about 300 bytes
     * here; at most 1 KB each plus the hashes */
    cr_expect_leq(pbytes + ubytes, (long long)(PAIR_BUDGET + PAIR_KEYS_FIXED) * 1024,
                  "pair keys hold %lld bytes", pbytes + ubytes);

    /* a filter on a pair past the budget is refused, not answered */
    char *b = api(port, Q "breakdown?" S "&property=event:page&filters=visit:country" EQ "DE",
                  400);
    expect_has(b, "pairs of page and country values past pair_budget were counted together "
                  "as (other), and the filter matches values that have pairs there");
    free(b);
    agg_stop_ok(agg);
}

/* Past the budget only the values with folded cells are refused: a cell
 * admitted before keeps counting and answers exactly. */
Test(aggregator_pairs, past_the_budget_only_filters_on_folded_values_are_refused, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    const int64_t t = e->now - 600;
    hit(e, "pageview", VA, "/", "google.com", "DE", "Firefox", t);
    int port;
    struct harness_proc *agg = start(e, &port, "1");
    agg_stop_ok(agg);
    /* again, with the budget the first visit used up */
    long long used = hget(e, "pairs", "cells");
    cr_assert_gt(used, 10);
    hit(e, "pageview", VB, "/", "google.de", "FR", "Chrome", t + 10); /* ("/", Google) exists */
    hit(e, "pageview", VC, "/x", "bing.com", "DE", "Firefox", t + 20);
    port = harness_free_port();
    char listen[64], budget[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(budget, sizeof budget, "--pair_budget=%lld", used);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", budget, refs, NULL};
    agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    cr_expect_eq(hget(e, "pairs", "cells"), used, "no cell past the budget");

    /* Google's cell was admitted: exact, though the pair has (other) */
    cr_expect_gt(hget(e, "p:page:source:pv", "(other)"), 0);
    char *b = api(port, Q "breakdown?" S "&property=event:page&metrics=visitors,pageviews"
                          "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "\"results\": [{\"page\": \"/\", \"visitors\": 2, \"pageviews\": 2}]");
    free(b);
    /* Bing's cell was folded: refused; so is a page with a folded cell */
    b = api(port, Q "breakdown?" S "&property=event:page&filters=visit:source" EQ "Bing", 400);
    expect_has(b, "pairs of page and source values past pair_budget");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:country&filters=event:page" EQ "/", 400);
    expect_has(b, "pairs of page and country values past pair_budget");
    free(b);
    agg_stop_ok(agg);
}

/* pair_dims: fewer visit dimensions paired; a query on one left out is
 * refused for the days counted so, the others answered. */
Test(aggregator_pairs, pair_dims_limits_the_pairs_and_says_so, .timeout = 60)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    int port = harness_free_port();
    char listen[64], refs[512], refs_path[400];
    str_format(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    str_format(refs, sizeof refs, "--referrer_db=%s",
               harness_build_path("data/referrers.json", refs_path, sizeof refs_path));
    char *extra[] = {listen, "--api_token=" TOKEN, "--k_anonymity=1", refs,
                     "--pair_dims=source,country", NULL};
    struct harness_proc *agg = agg_spawn(e, extra);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    wait_drained(e, 15000);
    char *b = api(port, Q "breakdown?" S "&property=visit:country&metrics=visitors,visits"
                          "&filters=visit:source" EQ "Google", 200);
    expect_has(b, "{\"country\": \"DE\", \"visitors\": 1, \"visits\": 1}");
    free(b);
    b = api(port, Q "breakdown?" S "&property=event:page&metrics=visitors"
                    "&filters=visit:country" EQ "FR", 200);
    expect_has(b, "\"results\": [{\"page\": \"/\", \"visitors\": 1}]");
    free(b);
    b = api(port, Q "breakdown?" S "&property=visit:browser&filters=visit:country" EQ "DE", 400);
    expect_has(b, "browser was not among pair_dims");
    free(b);
    cr_expect_eq(cmd_int(e->rc, "EXISTS %sd:%s:%s:p:country:browser:vis", KP, SITE, e->day), 0,
                 "no pair of a dimension left out");
    agg_stop_ok(agg);

    /* a directive naming something else is refused at start */
    char bad_log[400];
    str_format(bad_log, sizeof bad_log, "%s/bad.log", e->dir);
    char redis[400];
    str_format(redis, sizeof redis, "--redis=unix:%s", e->redis.socket);
    char *argv[] = {"veil-aggregator", redis, "--pair_dims=source,planet", "--check-config", NULL};
    struct harness_proc bad;
    cr_assert_eq(harness_spawn(&bad, argv, bad_log), 0);
    int status;
    waitpid(bad.pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) != 0, "a bad pair_dims was accepted");
    size_t len;
    char *log = harness_read_file(bad_log, &len);
    cr_expect(log && strstr(log, "pair_dims: planet is not a visit dimension"), "%s",
              log ? log : "(no log)");
    free(log);
}

static char *v2_raw(int port, const char *body, int want)
{
    char *resp = NULL;
    int code = harness_http(port, "POST", "/api/v2/query",
                            "Authorization: Bearer " TOKEN "\r\nContent-Type: application/json\r\n",
                            body, strlen(body), &resp, NULL);
    cr_assert_eq(code, want, "%s -> %d %s", body, code, resp ? resp : "");
    return resp;
}

#define V2Q(metrics, dims, filters)                                                         \
    "{\"site_id\": \"" SITE "\", \"metrics\": [" metrics "], \"date_range\": \"day\", "     \
    "\"dimensions\": [" dims "], \"filters\": [" filters "]}"
#define GOAL "[\"is\", \"event:goal\", [\"Signup\"]]"

/* group_conversion_rate (v2): a row's converted visitors (the goal x value
 * pair cell) / that row's visitors without the filter; conversion_rate
 * there: / the range's visitors. Known events: countries DE (VA, VC, VD),
 * FR (VB); Signup by VA and VC (DE); browsers Firefox (VA, VD), Chrome
 * (VB, VC). */
Test(aggregator_pairs, group_conversion_rate, .timeout = 90)
{
    env_start(&env);
    struct env *e = &env;
    known_events(e);
    int port;
    struct harness_proc *agg = start(e, &port, "1");

    char *b = v2_raw(port, V2Q("\"visitors\", \"group_conversion_rate\", \"conversion_rate\"",
                               "\"visit:country\"", GOAL), 200);
    expect_has(b, "\"results\": [{\"metrics\": [2, 66.7, 50.0], \"dimensions\": [\"DE\"]}]");
    expect_has(b, "\"metrics\": [\"visitors\", \"group_conversion_rate\", \"conversion_rate\"]");
    free(b);
    b = v2_raw(port, V2Q("\"group_conversion_rate\"", "\"visit:browser\"", GOAL), 200);
    expect_has(b, "{\"metrics\": [50.0], \"dimensions\": [\"Chrome\"]}");
    expect_has(b, "{\"metrics\": [50.0], \"dimensions\": [\"Firefox\"]}");
    free(b);
    /* a time dimension: each bucket's converted visitors / its visitors */
    b = v2_raw(port, V2Q("\"visitors\", \"group_conversion_rate\"", "\"time:day\"", GOAL), 200);
    char want[200];
    str_format(want, sizeof want, "{\"metrics\": [2, 50.0], \"dimensions\": [\"%s\"]}", e->day);
    expect_has(b, want);
    free(b);
    /* the dimension event:goal: the goal's conversion rate */
    b = v2_raw(port, V2Q("\"group_conversion_rate\"", "\"event:goal\"", ""), 200);
    expect_has(b, "{\"metrics\": [50.0], \"dimensions\": [\"Signup\"]}");
    free(b);

    static const struct {
        const char *body, *reason;
    } refused[] = {
        {V2Q("\"group_conversion_rate\"", "", GOAL),
         "metrics: group_conversion_rate needs a dimension"},
        {V2Q("\"group_conversion_rate\"", "\"visit:country\"", ""),
         "metrics: group_conversion_rate needs the dimension event:goal or a filter on "
         "event:goal"},
        {V2Q("\"conversion_rate\"", "\"visit:country\"", ""),
         "metrics: conversion_rate needs the dimension event:goal or a filter on event:goal"},
        {V2Q("\"group_conversion_rate\"", "\"time:day\"",
             GOAL ", [\"is\", \"visit:country\", [\"DE\"]]"),
         "metrics: group_conversion_rate under filters on two properties is not offered"},
        {V2Q("\"group_conversion_rate\"", "\"event:name\"", GOAL),
         "are not counted per pair of values"},
    };
    for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
        b = v2_raw(port, refused[i].body, 400);
        expect_has(b, refused[i].reason);
        free(b);
    }
    agg_stop_ok(agg);

    /* k = 2: Chrome and Firefox (one converted visitor each) fold into
     * (other), 2 converted of their 4 visitors */
    agg = start(e, &port, "2");
    b = v2_raw(port, V2Q("\"visitors\", \"group_conversion_rate\"", "\"visit:browser\"", GOAL),
               200);
    expect_has(b, "\"results\": [{\"metrics\": [2, 50.0], \"dimensions\": [\"(other)\"]}]");
    free(b);
    agg_stop_ok(agg);
}
