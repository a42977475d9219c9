/* test_pairs.c - the table of two-dimensional counts (pairs.c) and the
 * splitting of v1's filters into one condition per property
 * (api_pairs_parse_v1): unambiguous hash fields for any value, which
 * pairs are counted, and the reasons of what is refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "api_pairs.h"
#include "config.h"
#include "pairs.h"
#include "schema.h"

Test(pairs, fields_are_unambiguous_for_any_value)
{
    char f1[64], f2[64];
    /* "a:" + "b" and "a" + ":b" would collide without the length */
    size_t l1 = pairs_field(f1, sizeof f1, "a:", 2, "b", 1);
    size_t l2 = pairs_field(f2, sizeof f2, "a", 1, ":b", 2);
    cr_assert(l1 && l2);
    cr_expect_str_neq(f1, f2);
    cr_expect_str_eq(f1, "2:a:b");
    const char *a, *b;
    size_t al, bl;
    cr_assert(pairs_field_split(f2, l2, &a, &al, &b, &bl));
    cr_expect(al == 1 && memcmp(a, "a", 1) == 0 && bl == 2 && memcmp(b, ":b", 2) == 0);
    cr_expect_not(pairs_field_split("(other)", 7, &a, &al, &b, &bl));
    cr_expect_not(pairs_field_split("9:ab", 4, &a, &al, &b, &bl), "a length past the end");
    cr_expect_eq(pairs_field(f1, 4, "abc", 3, "d", 1), 0, "too long for the buffer");
}

Test(pairs, which_pairs_are_counted)
{
    struct pair_class c;
    bool a_first;
    char why[600];
    cr_assert(pairs_class_of("source", "page", &c, &a_first, why, sizeof why));
    cr_expect_str_eq(c.first, "page");
    cr_expect_str_eq(c.second, "source");
    cr_expect_not(a_first);
    cr_expect_eq(c.metrics, SCHEMA_PV);
    cr_assert(pairs_class_of("goal", "country", &c, &a_first, why, sizeof why));
    cr_expect_eq(c.metrics, SCHEMA_PV | SCHEMA_EV);
    cr_expect_eq(c.primary, SCHEMA_EV);
    cr_assert(pairs_class_of("country", "source", &c, &a_first, why, sizeof why));
    cr_expect_str_eq(c.first, "source", "the schema table's order");
    cr_expect_eq(c.metrics, SCHEMA_VIS);
    cr_assert(pairs_class_of("visitor_type", "entry_page", &c, &a_first, why, sizeof why));
    /* not counted: each with a reason */
    const char *no[][2] = {{"page", "entry_page"}, {"page", "visitor_type"}, {"page", "goal"},
                           {"name", "source"},     {"prop:plan", "page"},   {"source", "source"},
                           {"browser_version", "os"}};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        cr_expect_not(pairs_class_of(no[i][0], no[i][1], &c, &a_first, why, sizeof why),
                      "%s x %s", no[i][0], no[i][1]);
        cr_expect(strstr(why, "not counted per pair of values"), "%s", why);
    }
    /* every class id is distinct and within the table */
    bool seen[PAIRS_CLASSES] = {false};
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        if (pairs_page_class(d, &c)) {
            cr_assert_lt(c.id, PAIRS_CLASSES);
            cr_expect_not(seen[c.id]);
            seen[c.id] = true;
        }
        if (pairs_goal_class(d, &c)) {
            cr_assert_lt(c.id, PAIRS_CLASSES);
            cr_expect_not(seen[c.id]);
            seen[c.id] = true;
        }
        for (size_t e = d + 1; e < ROLLUP_V_COUNT; e++)
            if (pairs_visit_class(d, e, &c)) {
                cr_assert_lt(c.id, PAIRS_CLASSES);
                cr_expect_not(seen[c.id]);
                seen[c.id] = true;
            }
    }
}

Test(pairs, v1_filters_one_condition_per_property)
{
    struct api_filter f1, f2;
    char err[600];
    const char *m[] = {"visitors"};
    cr_assert(api_pairs_parse_v1("visit:source==Google;event:page==/a|/b", NULL, m, 1, &f1,
                                 &f2, err, sizeof err),
              "%s", err);
    cr_expect_str_eq(f1.property, "visit:source");
    cr_expect_str_eq(f2.property, "event:page");
    cr_expect_eq(f2.nvalues, 2);
    cr_assert(api_pairs_parse_v1("visit:country==DE", "event:page", m, 1, &f1, &f2, err,
                                 sizeof err),
              "%s", err);
    cr_expect(f1.set && !f2.set);
    cr_expect(api_pairs_needed(&f1, &f2, "page"));
    cr_expect_not(api_pairs_needed(&f1, &f2, "country"));
    cr_expect_not(api_pairs_parse_v1("visit:source==G;event:page==/;visit:country==DE", NULL, m,
                                     1, &f1, &f2, err, sizeof err));
    cr_expect(strstr(err, "three or more properties"), "%s", err);
    cr_expect_not(api_pairs_parse_v1("visit:source==G;visit:country==DE", "visit:browser", m, 1,
                                     &f1, &f2, err, sizeof err));
    cr_expect(strstr(err, "combination of three values"), "%s", err);
    const char *pv[] = {"visitors", "pageviews"};
    cr_expect_not(api_pairs_parse_v1("visit:source==G", "visit:country", pv, 2, &f1, &f2, err,
                                     sizeof err));
    cr_expect(strstr(err, "pageviews is not kept per pair of source and country"), "%s", err);
}

Test(pairs, pair_dims_directive)
{
    char *good[] = {"source", "country", "visitor_type"};
    struct cfg_list l = {3, good};
    uint32_t mask;
    char err[300];
    cr_assert(pairs_dims_parse(&l, &mask, err, sizeof err), "%s", err);
    cr_expect_eq(mask, (1u << ROLLUP_V_SOURCE) | (1u << ROLLUP_V_COUNTRY) |
                           (1u << ROLLUP_V_VISITOR_TYPE));
    char *bad[] = {"source", "browser_version"};
    struct cfg_list b = {2, bad};
    cr_expect_not(pairs_dims_parse(&b, &mask, err, sizeof err), "no property: not paired");
    cr_expect(strstr(err, "pair_dims: browser_version is not a visit dimension"), "%s", err);
}
