/* test_ua_filter.c - the literal pre-filter of the User-Agent parser:
 * which literals it requires of a regex (never one the regex does not
 * need), and which rules a scan leaves as candidates. Its end-to-end
 * guarantee (no parse result changes) is tested in test_ua.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "ua_filter.h"
#include "util.h"

struct extraction {
    const char *regex;
    const char *required; /* ua_filter_describe(); "" = always run */
};

static const struct extraction cases[] = {
    /* plain literals, lowercased; the best run wins */
    {"(Chrome)/(\\d+)", "chrome"},
    {"Opera Mini/(\\d+)", "opera mini/"},
    {"\\(Mobile;", "(mobile;"},
    {"zq.zqz", "zqz"},
    /* optional and repeated characters */
    {"abc?d", "ab"},
    {"ab+c", "ab"},
    {"x{0,3}yzw", "yzw"},
    {"Fire{1,2}fox", "fire"},
    {"Zx\\-?Zyxw", "zyxw"},
    /* a literal today's common browsers send is avoided if possible */
    {"Mozilla/5\\.0 .{0,50}Zune", "zune"},
    /* classes: only a single letter in both cases counts */
    {"[Bb]ot[Ss]pider", "botspider"},
    {"[^a]bc", "bc"},
    {"[A-z]{1,30}Bot", "bot"},
    {"[\\-_]foo", "foo"},
    /* groups and alternation */
    {"(Foo|Bars)x", "foo|bars"},
    {"(?:Foo|)Barbaz", "barbaz"},
    {"(?:a|b)?cd", "cd"},
    {"(Fire(fox|bird))", "fire"},
    {"Symbian|Windows CE", "symbian|windows ce"},
    {"^(Mozilla)(?: Foo)*$", "mozilla"},
    /* nothing provable: always run */
    {"\\d+", ""},
    {"foo|", ""},
    {"(foo|bar|)", ""},
    {"(?:foo)?", ""},
    {"(?=foo)bar", ""},
    {"(?i)foo", ""},
    {"(a)\\1", ""},
    {"[[:alpha:]]x", ""},
    {"(unclosed", ""},
    {"stray)", ""},
};

Test(ua_filter, extracts_only_required_literals)
{
    struct ua_filter *f = ua_filter_new();
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        cr_assert_eq(ua_filter_add(f, cases[i].regex, strlen(cases[i].regex)), i);
    ua_filter_finish(f);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char got[256];
        cr_assert(ua_filter_describe(f, (uint32_t)i, got, sizeof(got)));
        cr_expect_str_eq(got, cases[i].required, "regex %s", cases[i].regex);
    }
    size_t rules, filtered;
    ua_filter_counts(f, &rules, &filtered, NULL);
    cr_assert_eq(rules, ARRAY_LEN(cases));
    cr_assert_eq(filtered, ARRAY_LEN(cases) - 10);
    ua_filter_free(f);
}

Test(ua_filter, scan_marks_candidates_case_insensitively)
{
    static const char *const regexes[] = {
        "(Chrome)/(\\d+)",     /* 0 */
        "(Firefox)/(\\d+)",    /* 1 */
        "(Foo|Bars)x",         /* 2 */
        "\\d+",                /* 3: always */
        "q",                   /* 4: one-byte literal */
        "Windows NT",          /* 5 */
    };
    struct ua_filter *f = ua_filter_new();
    for (size_t i = 0; i < ARRAY_LEN(regexes); i++)
        ua_filter_add(f, regexes[i], strlen(regexes[i]));
    ua_filter_finish(f);
    uint64_t *scratch = xcalloc(ua_filter_words(f), sizeof(uint64_t));

    const char ua1[] = "Mozilla/5.0 (WINDOWS nt 10.0) CHROME/120";
    ua_filter_scan(f, ua1, sizeof(ua1) - 1, scratch);
    cr_assert(ua_filter_candidate(scratch, 0));
    cr_assert_not(ua_filter_candidate(scratch, 1));
    cr_assert_not(ua_filter_candidate(scratch, 2));
    cr_assert(ua_filter_candidate(scratch, 3));
    cr_assert_not(ua_filter_candidate(scratch, 4));
    cr_assert(ua_filter_candidate(scratch, 5));

    /* A new scan forgets the previous one; literals at the very start and
     * end of the text count; NUL and high bytes are just bytes. */
    const char ua2[] = "bars\0\xff\xfeQ";
    ua_filter_scan(f, ua2, sizeof(ua2) - 1, scratch);
    cr_assert_not(ua_filter_candidate(scratch, 0));
    cr_assert(ua_filter_candidate(scratch, 2));
    cr_assert(ua_filter_candidate(scratch, 3));
    cr_assert(ua_filter_candidate(scratch, 4));

    /* A literal cut by the end of the text does not count. */
    const char ua3[] = "Firefo";
    ua_filter_scan(f, ua3, sizeof(ua3) - 1, scratch);
    cr_assert_not(ua_filter_candidate(scratch, 1));
    ua_filter_scan(f, "", 0, scratch);
    cr_assert(ua_filter_candidate(scratch, 3));
    cr_assert_not(ua_filter_candidate(scratch, 0));

    free(scratch);
    ua_filter_free(f);
}

Test(ua_filter, describe_reports_truncation)
{
    struct ua_filter *f = ua_filter_new();
    ua_filter_add(f, "(alpha|beta)", 12);
    ua_filter_finish(f);
    char small[8];
    cr_assert_not(ua_filter_describe(f, 0, small, sizeof(small)));
    cr_assert_str_eq(small, "alpha");
    char big[32];
    cr_assert(ua_filter_describe(f, 0, big, sizeof(big)));
    cr_assert_str_eq(big, "alpha|beta");
    cr_assert(ua_filter_describe(f, 99, big, sizeof(big)));
    cr_assert_str_eq(big, "");
    ua_filter_free(f);
}
