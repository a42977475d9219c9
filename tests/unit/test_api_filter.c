/* test_api_filter.c - one property's filter expression (api_filter.h):
 * v1 and v2 parsing into the same model, matching and complements,
 * regular expression bounds, "(other)" rows, the _name variants from
 * Debian's iso-codes, and the reasons of what is refused. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "api_filter.h"
#include "geo_names.h"
#include "paths.h"

static char err[512];

static void names_up(void)
{
    cr_assert_eq(geo_names_load(veil_default_iso_codes_dir, err, sizeof err), 0, "%s", err);
}

static void names_down(void)
{
    geo_names_unload();
}

TestSuite(api_filter, .init = names_up, .fini = names_down);

static bool v1(const char *s, struct api_filter *f)
{
    static const char *const metrics[] = {"visitors"};
    err[0] = '\0';
    return api_filter_parse_v1(s, NULL, metrics, 1, f, err, sizeof err);
}

static bool v2(const char *json, struct api_filter *f)
{
    cJSON *doc = cJSON_Parse(json);
    cr_assert_not_null(doc, "%s", json);
    err[0] = '\0';
    bool ok = api_filter_parse_v2(doc, f, err, sizeof err);
    cJSON_Delete(doc);
    return ok;
}

static bool m(const struct api_filter *f, const char *value)
{
    return api_filter_matches(f, value, strlen(value));
}

static struct api_filter f, g;

Test(api_filter, v1_negations_and_semicolons)
{
    cr_assert(v1("visit:source!=Google", &f), "%s", err);
    cr_expect(!m(&f, "Google"));
    cr_expect(m(&f, "Bing"));
    cr_assert(v1("visit:source!=Google|Bing", &f), "%s", err);
    cr_expect(!m(&f, "Bing") && m(&f, "Direct / None"));
    cr_assert(v1("event:page!~blog", &f), "%s", err);
    cr_expect(!m(&f, "/blog/x") && m(&f, "/about"));
    cr_assert(v1("event:page!=/blog/**", &f), "%s", err);
    cr_expect(!m(&f, "/blog/a/b") && m(&f, "/blo"));
    /* ';' is an and over one property */
    cr_assert(v1("event:page~o;event:page!=/about", &f), "%s", err);
    cr_expect(m(&f, "/pricing/old"));
    cr_expect(!m(&f, "/about"));
    cr_expect(!m(&f, "/x"));
    cr_expect_eq(f.nodes[0].op, AF_AND);
    cr_expect_eq(f.nodes[0].n, 2);
    cr_expect_eq(f.nnodes, 3);
}

Test(api_filter, v1_refusals_name_the_part)
{
    cr_expect(!v1("visit:source==Google;event:page==/", &f));
    cr_expect(strstr(err, "only one property can be filtered at a time"), "%s", err);
    cr_expect(strstr(err, "visit:source and event:page"), "%s", err);
    cr_expect(!v1("visit:source=Google", &f));
    cr_expect(strstr(err, "expected <property>==<value>"), "%s", err);
    cr_expect(!v1("visit:nothing==x", &f));
    cr_expect(strstr(err, "unknown property"), "%s", err);
    static const char *const metrics[] = {"bounce_rate"};
    cr_expect(!api_filter_parse_v1("visit:source!=Google", NULL, metrics, 1, &f, err,
                                   sizeof err));
    cr_expect(strstr(err, "bounce_rate is not kept per visit:source value"), "%s", err);
    static const char *const visitors[] = {"visitors"};
    cr_expect(!api_filter_parse_v1("visit:source!=Google", "event:page", visitors, 1, &f, err,
                                   sizeof err));
    cr_expect(strstr(err, "needs counts per pair of values"), "%s", err);
}

Test(api_filter, v2_operators)
{
    cr_assert(v2("[[\"is_not\", \"visit:source\", [\"Google\", \"Bing\"]]]", &f), "%s", err);
    cr_expect(!m(&f, "Google") && !m(&f, "Bing") && m(&f, "Direct / None"));
    cr_assert(v2("[[\"contains_not\", \"event:page\", [\"blog\"]]]", &f), "%s", err);
    cr_expect(!m(&f, "/blog") && m(&f, "/"));
    cr_assert(v2("[[\"matches\", \"event:page\", [\"^/blog/[0-9]+$\"]]]", &f), "%s", err);
    cr_expect(m(&f, "/blog/12") && !m(&f, "/blog/x") && !m(&f, "/x/blog/12"));
    cr_assert(v2("[[\"matches\", \"event:page\", [\"log\"]]]", &f), "%s", err);
    cr_expect(m(&f, "/blog/12"), "unanchored, like Plausible's");
    cr_assert(v2("[[\"matches_not\", \"event:page\", [\"^/blog\"]]]", &f), "%s", err);
    cr_expect(!m(&f, "/blog/12") && m(&f, "/about"));
    cr_assert(v2("[[\"is\", \"visit:source\", [\"google\"], {\"case_sensitive\": false}]]", &f),
              "%s", err);
    cr_expect(m(&f, "Google") && !m(&f, "Googles"));
    cr_assert(v2("[[\"contains\", \"event:page\", [\"BLOG\"], {\"case_sensitive\": false}]]",
                 &f), "%s", err);
    cr_expect(m(&f, "/blog/x"));
    cr_assert(v2("[[\"matches\", \"event:page\", [\"^/BLOG\"], {\"case_sensitive\": false}]]",
                 &f), "%s", err);
    cr_expect(m(&f, "/blog/x"));
    /* a value that is not UTF-8 is a non-match, not an error */
    cr_expect(!api_filter_matches(&f, "/\xff\xfe", 3));
}

Test(api_filter, v2_and_or_not_over_one_property)
{
    cr_assert(v2("[[\"or\", [[\"is\", \"event:page\", [\"/\"]], [\"and\", [[\"contains\", "
                 "\"event:page\", [\"blog\"]], [\"not\", [\"matches\", \"event:page\", "
                 "[\"draft\"]]]]]]]]",
                 &f),
              "%s", err);
    cr_expect(m(&f, "/"));
    cr_expect(m(&f, "/blog/post"));
    cr_expect(!m(&f, "/blog/draft-1"));
    cr_expect(!m(&f, "/about"));
    /* several top-level filters: all of them */
    cr_assert(v2("[[\"contains\", \"event:page\", [\"blog\"]], [\"is_not\", \"event:page\", "
                 "[\"/blog/\"]]]",
                 &f),
              "%s", err);
    cr_expect(m(&f, "/blog/a") && !m(&f, "/blog/") && !m(&f, "/x"));
    /* written back as the same filters */
    struct evbuffer *b = evbuffer_new();
    api_filter_write_v2(b, &f);
    size_t len = evbuffer_get_length(b);
    char *text = calloc(1, len + 1);
    evbuffer_remove(b, text, len);
    cr_expect_str_eq(text, "[[\"contains\", \"event:page\", [\"blog\"]], [\"is_not\", "
                           "\"event:page\", [\"/blog/\"]]]");
    free(text);
    evbuffer_free(b);
}

Test(api_filter, v1_and_v2_build_the_same_model)
{
    cr_assert(v1("visit:country!=DE|FR", &f), "%s", err);
    cr_assert(v2("[[\"is_not\", \"visit:country\", [\"DE\", \"FR\"]]]", &g), "%s", err);
    cr_expect_eq(f.nnodes, g.nnodes);
    cr_expect_eq(f.nodes[0].op, g.nodes[0].op);
    cr_expect_eq(f.nodes[0].negate, g.nodes[0].negate);
    cr_expect_eq(f.nvalues, g.nvalues);
    cr_expect_str_eq(f.dim, g.dim);
    cr_expect_str_eq(f.property, g.property);
}

Test(api_filter, v2_refusals_and_bounds)
{
    static const struct {
        const char *json, *reason;
    } bad[] = {
        {"[[\"is\", \"visit:source\", [\"Google\"]], [\"is\", \"event:page\", [\"/\"]]]",
         "only one property can be filtered at a time"},
        {"[[\"or\", [[\"is\", \"visit:source\", [\"Google\"]], [\"is\", \"visit:country\", "
         "[\"DE\"]]]]]",
         "only one property can be filtered at a time"},
        {"[[\"matches\", \"event:page\", [\"(unclosed\"]]]",
         "matches on event:page: not a valid regular expression"},
        {"[[\"matches\", \"event:page\", [\"\\\\C\"]]]", "not a valid regular expression"},
        {"[[\"has_done\", \"event:goal\", [\"Signup\"]]]", "has_done and has_not_done"},
        {"[[\"starts_with\", \"event:page\", [\"/\"]]]", "unknown operator"},
        {"[[\"is\", \"event:page\", []]]", "1 to 16 values"},
        {"[[\"contains\", \"event:page\", [\"\"]]]", "only with is and is_not"},
        {"[[\"is\", \"event:page\", [1]]]", "values are strings"},
        {"[[\"is\", \"event:page\", [\"/\"], {\"case_sensitive\": 1}]]", "case_sensitive"},
        {"[[\"and\", []]]", "expected [\"and\"|\"or\", [filters]]"},
        {"[[\"not\", [\"not\", [\"not\", [\"not\", [\"not\", [\"is\", \"event:page\", "
         "[\"/\"]]]]]]]]",
         "nest at most 4 deep"},
        {"{}", "expected an array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect(!v2(bad[i].json, &f), "%s accepted", bad[i].json);
        cr_expect(strstr(err, bad[i].reason), "%s: %s", bad[i].json, err);
        cr_expect(strncmp(err, "filters: ", 9) == 0, "%s", err);
    }
    /* 17 conditions: over the node bound */
    char json[4096] = "[[\"or\", [";
    for (int i = 0; i < 16; i++)
        strcat(json, i ? ", [\"is\", \"event:page\", [\"/\"]]" : "[\"is\", \"event:page\", [\"/\"]]");
    strcat(json, "]]]");
    cr_expect(!v2(json, &f));
    cr_expect(strstr(err, "at most 16 conditions"), "%s", err);
    /* 17 values over all conditions */
    strcpy(json, "[[\"is\", \"event:page\", [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", "
                 "\"h\"]], [\"is_not\", \"event:page\", [\"i\", \"j\", \"k\", \"l\", \"m\", "
                 "\"n\", \"o\", \"p\", \"q\"]]]");
    cr_expect(!v2(json, &f));
    cr_expect(strstr(err, "at most 16 values in one filter"), "%s", err);
    /* a pattern over API_FILTER_REGEX_MAX bytes */
    char pattern[API_FILTER_REGEX_MAX + 2];
    memset(pattern, 'a', sizeof pattern - 1);
    pattern[sizeof pattern - 1] = '\0';
    char body[1024];
    snprintf(body, sizeof body, "[[\"matches\", \"event:page\", [\"%s\"]]]", pattern);
    cr_expect(!v2(body, &f));
    cr_expect(strstr(err, "at most 256 bytes"), "%s", err);
}

Test(api_filter, regex_match_limit_is_an_error_not_a_hang)
{
    /* catastrophic backtracking on a long value */
    cr_assert(v2("[[\"matches\", \"event:page\", [\"^(a|a?)+$\"]]]", &f), "%s", err);
    struct api_filter_code *code;
    cr_assert(api_filter_compile(&f, &code, err, sizeof err), "%s", err);
    char value[200];
    memset(value, 'a', sizeof value - 2);
    value[sizeof value - 2] = 'b';
    value[sizeof value - 1] = '\0';
    err[0] = '\0';
    cr_expect_eq(api_filter_eval(&f, code, value, strlen(value), err, sizeof err), -1);
    cr_expect(strstr(err, "matches on event:page: a regular expression hit its match limit"),
              "%s", err);
    api_filter_code_free(code);
}

/* ---- rows and "(other)" ---- */

static void row(struct stats_rows *rows, const char *value, long long visitors,
                const period_day *days, size_t ndays)
{
    rows->rows = realloc(rows->rows, (rows->n + 1) * sizeof *rows->rows);
    struct stats_row *r = &rows->rows[rows->n++];
    memset(r, 0, sizeof *r);
    r->value = strdup(value);
    r->value_len = strlen(value);
    r->visitors = visitors;
    r->pageviews = visitors;
    r->days = calloc(ndays, sizeof *r->days);
    memcpy(r->days, days, ndays * sizeof *days);
    r->ndays = r->days_cap = ndays;
}

static bool has(const struct stats_rows *rows, const char *value)
{
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->rows[i].value, value) == 0)
            return true;
    return false;
}

/* Days 10 and 11; (other) on day 11 only; Google a row both days, Bing only on day 10. */
static void sample(struct stats_rows *rows)
{
    static const period_day both[] = {10, 11}, ten[] = {10}, eleven[] = {11};
    memset(rows, 0, sizeof *rows);
    row(rows, "Google", 7, both, 2);
    row(rows, "Bing", 3, ten, 1);
    row(rows, "Direct / None", 5, both, 2);
    row(rows, QUERY_OTHER, 4, eleven, 1);
}

static int select_rows(const char *json, struct stats_rows *rows)
{
    cr_assert(v2(json, &f), "%s", err);
    struct api_filter_code *code;
    cr_assert(api_filter_compile(&f, &code, err, sizeof err), "%s", err);
    err[0] = '\0';
    int r = api_filter_select(&f, code, rows, err, sizeof err);
    api_filter_code_free(code);
    return r;
}

Test(api_filter, other_row_included_when_the_excluded_values_are_rows)
{
    struct stats_rows rows;
    sample(&rows);
    /* Google has its own row on day 11: no folded value is Google */
    cr_expect_eq(select_rows("[[\"is_not\", \"visit:source\", [\"Google\"]]]", &rows), 0, "%s",
                 err);
    cr_expect_eq(rows.n, 3);
    cr_expect(has(&rows, "Bing") && has(&rows, "Direct / None") && has(&rows, QUERY_OTHER));
    cr_expect(!has(&rows, "Google"));
    query_rows_free(&rows);

    sample(&rows);
    cr_expect_eq(select_rows("[[\"is\", \"visit:source\", [\"Google\"]]]", &rows), 0, "%s", err);
    cr_expect_eq(rows.n, 1);
    cr_expect(has(&rows, "Google"));
    query_rows_free(&rows);

    /* Bing has no row on day 11: it may be folded into that day's (other) */
    sample(&rows);
    cr_expect_eq(select_rows("[[\"is_not\", \"visit:source\", [\"Bing\"]]]", &rows), 1);
    cr_expect(strstr(err, "counted together as (other)"), "%s", err);
    query_rows_free(&rows);
    sample(&rows);
    cr_expect_eq(select_rows("[[\"is\", \"visit:source\", [\"Bing\"]]]", &rows), 1);
    query_rows_free(&rows);

    /* contains and matches may hold for some folded values and not others */
    sample(&rows);
    cr_expect_eq(select_rows("[[\"contains_not\", \"visit:source\", [\"oo\"]]]", &rows), 1);
    query_rows_free(&rows);
    sample(&rows);
    cr_expect_eq(select_rows("[[\"matches\", \"visit:source\", [\"^G\"]]]", &rows), 1);
    query_rows_free(&rows);

    /* Kleene logic: (is_not Google) or (contains x) is true for every folded value */
    sample(&rows);
    cr_expect_eq(select_rows("[[\"or\", [[\"is_not\", \"visit:source\", [\"Google\"]], "
                             "[\"contains\", \"visit:source\", [\"x\"]]]]]",
                             &rows),
                 0, "%s", err);
    cr_expect(has(&rows, QUERY_OTHER));
    query_rows_free(&rows);
    /* (is Google) and (contains x) is false for every folded value */
    sample(&rows);
    cr_expect_eq(select_rows("[[\"and\", [[\"is\", \"visit:source\", [\"Google\"]], "
                             "[\"contains\", \"visit:source\", [\"x\"]]]]]",
                             &rows),
                 0, "%s", err);
    cr_expect_eq(rows.n, 0);
    query_rows_free(&rows);
    /* not (is Google): the same as is_not */
    sample(&rows);
    cr_expect_eq(select_rows("[[\"not\", [\"is\", \"visit:source\", [\"Google\"]]]]", &rows), 0,
                 "%s", err);
    cr_expect(has(&rows, QUERY_OTHER) && !has(&rows, "Google"));
    query_rows_free(&rows);
}

/* ---- _name variants ---- */

Test(api_filter, names_from_iso_codes)
{
    cr_expect_str_eq(geo_names_country("DE", 2), "Germany");
    cr_expect_str_eq(geo_names_region("DE-BY", 5), "Bayern");
    cr_expect_null(geo_names_country("QQ", 2));
    size_t len;
    cr_expect_str_eq(api_value_label(AF_NAMES_COUNTRY, "FR", 2, &len), "France");
    cr_expect_eq(len, 6);
    cr_expect_str_eq(api_value_label(AF_NAMES_COUNTRY, "QQ", 2, &len), "QQ");
    cr_expect_str_eq(api_value_label(AF_NAMES_NONE, "DE", 2, &len), "DE");

    cr_assert(v2("[[\"is\", \"visit:country_name\", [\"Germany\"]]]", &f), "%s", err);
    cr_expect_str_eq(f.dim, "country");
    cr_expect(m(&f, "DE") && !m(&f, "FR"));
    cr_assert(v2("[[\"contains\", \"visit:region_name\", [\"Bay\"]]]", &f), "%s", err);
    cr_expect_str_eq(f.dim, "region");
    cr_expect(m(&f, "DE-BY") && !m(&f, "DE-BE"));
    cr_assert(v2("[[\"is_not\", \"visit:city_name\", [\"Berlin\"]]]", &f), "%s", err);
    cr_expect_str_eq(f.dim, "city");
    cr_expect(!m(&f, "Berlin") && m(&f, "Munich"));
    /* v1 shares the parser */
    cr_assert(v1("visit:country_name!=Germany", &f), "%s", err);
    cr_expect(!m(&f, "DE") && m(&f, "FR"));
    /* a name's (other) is never known: several codes may read alike */
    struct stats_rows rows;
    static const period_day d[] = {3};
    memset(&rows, 0, sizeof rows);
    row(&rows, "DE", 9, d, 1);
    row(&rows, QUERY_OTHER, 2, d, 1);
    cr_expect_eq(select_rows("[[\"is_not\", \"visit:country_name\", [\"Germany\"]]]", &rows), 1);
    query_rows_free(&rows);
}

Test(api_filter, names_need_iso_codes)
{
    geo_names_unload();
    cr_expect(!v2("[[\"is\", \"visit:country_name\", [\"Germany\"]]]", &f));
    cr_expect(strstr(err, "iso_codes_dir is empty"), "%s", err);
    cr_expect_neq(geo_names_load("/nonexistent", err, sizeof err), 0);
    cr_expect(strstr(err, "iso_codes_dir: cannot read /nonexistent/iso_3166-1.json"), "%s", err);
    cr_expect(!geo_names_loaded());
}

Test(api_filter, regex_values_per_request_are_bounded_and_remembered)
{
    cr_assert(v2("[[\"matches\", \"event:page\", [\"7$\"]]]", &f), "%s", err);
    struct api_filter_code *code;
    cr_assert(api_filter_compile(&f, &code, err, sizeof err), "%s", err);
    char value[32];
    for (int i = 0; i < API_FILTER_REGEX_VALUES; i++) {
        int n = snprintf(value, sizeof value, "/p%d", i);
        cr_assert_eq(api_filter_eval(&f, code, value, (size_t)n, err, sizeof err),
                     i % 10 == 7);
    }
    /* a value seen before is answered again; a new one is over the bound */
    cr_expect_eq(api_filter_eval(&f, code, "/p17", 4, err, sizeof err), 1);
    err[0] = '\0';
    cr_expect_eq(api_filter_eval(&f, code, "/new", 4, err, sizeof err), -1);
    cr_expect(strstr(err, "more than 100000 distinct values"), "%s", err);
    api_filter_code_free(code);
}

Test(api_filter, a_literal_other_is_never_known)
{
    struct stats_rows rows;
    sample(&rows);
    cr_expect_eq(select_rows("[[\"is_not\", \"visit:source\", [\"(other)\"]]]", &rows), 1);
    query_rows_free(&rows);
}

/* Plausible's own example: ["is_not", "visit:country_name", [""]], "has a country" */
Test(api_filter, empty_value_means_no_value)
{
    cr_assert(v2("[[\"is_not\", \"visit:country_name\", [\"\"]]]", &f), "%s", err);
    cr_expect(m(&f, "DE") && m(&f, "QQ"));
    cr_assert(v2("[[\"is\", \"visit:country\", [\"\"]]]", &f), "%s", err);
    cr_expect(!m(&f, "DE"));
    /* no value is folded into (other) empty: known, even for a name */
    struct stats_rows rows;
    static const period_day d[] = {3};
    memset(&rows, 0, sizeof rows);
    row(&rows, "DE", 9, d, 1);
    row(&rows, QUERY_OTHER, 2, d, 1);
    cr_expect_eq(select_rows("[[\"is_not\", \"visit:country_name\", [\"\"]]]", &rows), 0,
                 "%s", err);
    cr_expect_eq(rows.n, 2);
    query_rows_free(&rows);
}
