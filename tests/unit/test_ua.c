/* test_ua.c - User-Agent parser: conformance with uap-core's own test
 * suites, device class and bot rules, the LRU cache, and hostile input
 * (overlong agents, invalid UTF-8, NUL bytes).
 *
 * The conformance suites are Debian's uap-core files
 * (/usr/share/uap-core/tests, or $VEIL_UAP_CORE/tests). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "log.h"
#include "ua.h"
#include "ua_cache.h"
#include "util.h"

/* ---- fixtures ---------------------------------------------------------- */

static const char *uap_dir(void)
{
    const char *d = getenv("VEIL_UAP_CORE");
    return d && *d ? d : "/usr/share/uap-core";
}

static struct ua_rules *rules;
static struct ua_parser *parser;

static void setup(void)
{
    char path[512], err[512];
    log_init("test_ua", LOG_LVL_WARN);
    cr_assert(str_format(path, sizeof(path), "%s/regexes.yaml", uap_dir()));
    rules = ua_rules_load(path, err, sizeof(err));
    cr_assert_not_null(rules, "load %s: %s", path, err);
    parser = ua_parser_new(rules, 0);
    cr_assert_not_null(parser);
}

static void teardown(void)
{
    ua_parser_free(parser);
    ua_rules_free(rules);
    parser = NULL;
    rules = NULL;
}

/* One test case of a uap-core suite: the agent and the expected family and
 * major ("" for a YAML null). */
struct uap_case {
    char *ua;
    size_t ua_len;
    char *family;
    char *major;
};

static char *scalar_dup(yaml_node_t *n, size_t *len)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return xstrdup("");
    const char *v = (const char *)n->data.scalar.value;
    size_t l = n->data.scalar.length;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (l == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
        l = 0;
    char *s = xmalloc(l + 1);
    memcpy(s, v, l);
    s[l] = '\0';
    if (len)
        *len = l;
    return s;
}

static bool key_is(yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE && strcmp((const char *)n->data.scalar.value, s) == 0;
}

/* Load tests/<name> of uap-core: a mapping with test_cases, a list of
 * mappings with user_agent_string, family, major... */
static size_t load_cases(const char *name, struct uap_case **out)
{
    char path[512];
    cr_assert(str_format(path, sizeof(path), "%s/tests/%s", uap_dir(), name));
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    yaml_parser_t yp;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&yp));
    yaml_parser_set_input_file(&yp, fp);
    cr_assert(yaml_parser_load(&yp, &doc), "%s: YAML error", path);

    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cr_assert(root && root->type == YAML_MAPPING_NODE);
    yaml_node_t *list = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++)
        if (key_is(yaml_document_get_node(&doc, p->key), "test_cases"))
            list = yaml_document_get_node(&doc, p->value);
    cr_assert(list && list->type == YAML_SEQUENCE_NODE, "%s: no test_cases", path);

    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    struct uap_case *cases = xcalloc(n, sizeof(*cases));
    size_t i = 0;
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++, i++) {
        yaml_node_t *item = yaml_document_get_node(&doc, *it);
        cr_assert(item && item->type == YAML_MAPPING_NODE);
        yaml_node_t *ua = NULL, *family = NULL, *major = NULL;
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
             p < item->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *v = yaml_document_get_node(&doc, p->value);
            if (key_is(k, "user_agent_string"))
                ua = v;
            else if (key_is(k, "family"))
                family = v;
            else if (key_is(k, "major"))
                major = v;
        }
        cr_assert_not_null(ua, "%s: case %zu without user_agent_string", path, i);
        cases[i].ua = scalar_dup(ua, &cases[i].ua_len);
        cases[i].family = scalar_dup(family, NULL);
        cases[i].major = scalar_dup(major, NULL);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    fclose(fp);
    *out = cases;
    return n;
}

static void free_cases(struct uap_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(cases[i].ua);
        free(cases[i].family);
        free(cases[i].major);
    }
    free(cases);
}

/* The expected value as it fits a field of `size` bytes: whole UTF-8
 * characters only, trailing blanks dropped (what ua.c does). */
static void fit(const char *expected, size_t size, char *out)
{
    size_t len = strlen(expected);
    if (len > size - 1) {
        len = size - 1;
        while (len > 0 && ((unsigned char)expected[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(out, expected, len);
    while (len > 0 && out[len - 1] == ' ')
        len--;
    out[len] = '\0';
}

static double percent(size_t ok, size_t n)
{
    return n ? 100.0 * (double)ok / (double)n : 0.0;
}

/* ---- conformance ------------------------------------------------------- */

TestSuite(ua_conformance, .init = setup, .fini = teardown, .timeout = 60);

Test(ua_conformance, browser_family_and_major)
{
    struct uap_case *cases;
    size_t n = load_cases("test_ua.yaml", &cases), ok = 0, shown = 0;
    cr_assert_gt(n, 1000, "suite too small: %zu", n);
    for (size_t i = 0; i < n; i++) {
        struct ua_fields f;
        char family[EV_UA_FIELD_MAX], major[UA_MAJOR_MAX];
        ua_parse_fields(parser, cases[i].ua, cases[i].ua_len, &f);
        fit(cases[i].family, sizeof(family), family);
        fit(cases[i].major, sizeof(major), major);
        if (strcmp(f.family, family) == 0 && strcmp(f.major, major) == 0) {
            ok++;
        } else if (shown++ < 10) {
            fprintf(stderr, "  mismatch: got %s/%s want %s/%s for %s\n", f.family, f.major,
                    family, major, cases[i].ua);
        }
    }
    printf("test_ua.yaml: browser family+major pass rate %.1f%% (%zu/%zu)\n", percent(ok, n), ok,
           n);
    fflush(stdout);
    cr_expect_eq(ua_parser_match_errors(parser), 0);
    cr_assert_geq(percent(ok, n), 99.0, "browser pass rate %.2f%%", percent(ok, n));
    free_cases(cases, n);
}

Test(ua_conformance, os_family)
{
    struct uap_case *cases;
    size_t n = load_cases("test_os.yaml", &cases), ok = 0, shown = 0;
    cr_assert_gt(n, 300, "suite too small: %zu", n);
    for (size_t i = 0; i < n; i++) {
        struct ua_fields f;
        char family[EV_UA_FIELD_MAX];
        ua_parse_fields(parser, cases[i].ua, cases[i].ua_len, &f);
        fit(cases[i].family, sizeof(family), family);
        if (strcmp(f.os, family) == 0)
            ok++;
        else if (shown++ < 10)
            fprintf(stderr, "  mismatch: got %s want %s for %s\n", f.os, family, cases[i].ua);
    }
    printf("test_os.yaml: OS family pass rate %.1f%% (%zu/%zu)\n", percent(ok, n), ok, n);
    fflush(stdout);
    cr_expect_eq(ua_parser_match_errors(parser), 0);
    cr_assert_geq(percent(ok, n), 99.0, "OS pass rate %.2f%%", percent(ok, n));
    free_cases(cases, n);
}

/* Device family conformance, and the bot rule on uap's Spider entries:
 * every agent uap calls a Spider must come out as a bot, and agents uap
 * places on an iPhone or iPod must be mobile, on an iPad tablet. */
Test(ua_conformance, device_family_and_spiders)
{
    struct uap_case *cases;
    size_t n = load_cases("test_device.yaml", &cases), ok = 0, shown = 0;
    size_t spiders = 0, spiders_bot = 0, apple = 0, apple_bot = 0;
    cr_assert_gt(n, 10000, "suite too small: %zu", n);
    for (size_t i = 0; i < n; i++) {
        struct ua_fields f;
        struct ua_result r;
        char family[EV_UA_FIELD_MAX];
        ua_parse_fields(parser, cases[i].ua, cases[i].ua_len, &f);
        ua_parse(parser, cases[i].ua, cases[i].ua_len, &r);
        fit(cases[i].family, sizeof(family), family);
        if (strcmp(f.device, family) == 0)
            ok++;
        else if (shown++ < 10)
            fprintf(stderr, "  mismatch: got %s want %s for %s\n", f.device, family, cases[i].ua);
        cr_assert_eq(r.is_bot, r.device == DEVICE_BOT);
        if (strcmp(family, "Spider") == 0) {
            spiders++;
            spiders_bot += r.is_bot;
        }
        if (strcmp(family, "iPhone") == 0 || strcmp(family, "iPod") == 0 ||
            strcmp(family, "iPad") == 0) {
            apple++;
            apple_bot += r.is_bot;
            cr_expect_eq(r.device, strcmp(family, "iPad") == 0 ? DEVICE_TABLET : DEVICE_MOBILE,
                         "%s: class %d for %s", family, r.device, cases[i].ua);
        }
    }
    printf("test_device.yaml: device family pass rate %.1f%% (%zu/%zu)\n", percent(ok, n), ok, n);
    printf("test_device.yaml: Spider -> bot pass rate %.1f%% (%zu/%zu)\n",
           percent(spiders_bot, spiders), spiders_bot, spiders);
    fflush(stdout);
    cr_assert_gt(spiders, 50);
    cr_assert_eq(spiders_bot, spiders, "%zu of %zu Spider agents not bots", spiders - spiders_bot,
                 spiders);
    cr_assert_gt(apple, 40);
    cr_assert_eq(apple_bot, 0, "%zu iPhone/iPod/iPad agents taken for bots", apple_bot);
    cr_assert_geq(percent(ok, n), 99.0, "device pass rate %.2f%%", percent(ok, n));
    free_cases(cases, n);
}

/* The pre-filter must never change a result: every agent of the three
 * suites parses identically with it on and off. */
Test(ua_conformance, prefilter_changes_nothing)
{
    static const char *const files[] = {"test_ua.yaml", "test_os.yaml", "test_device.yaml"};
    struct ua_parser *plain = ua_parser_new(rules, 0);
    ua_parser_set_prefilter(plain, false);
    size_t total = 0;
    for (size_t fi = 0; fi < ARRAY_LEN(files); fi++) {
        struct uap_case *cases;
        size_t n = load_cases(files[fi], &cases);
        /* test_device.yaml is large and the unfiltered path slow: every
         * 4th case of it keeps the run short and still covers thousands. */
        size_t step = n > 10000 ? 4 : 1;
        for (size_t i = 0; i < n; i += step, total++) {
            struct ua_fields a, b;
            ua_parse_fields(parser, cases[i].ua, cases[i].ua_len, &a);
            ua_parse_fields(plain, cases[i].ua, cases[i].ua_len, &b);
            cr_assert_str_eq(a.family, b.family, "%s", cases[i].ua);
            cr_assert_str_eq(a.major, b.major, "%s", cases[i].ua);
            cr_assert_str_eq(a.os, b.os, "%s", cases[i].ua);
            cr_assert_str_eq(a.device, b.device, "%s", cases[i].ua);
            cr_assert_str_eq(a.brand, b.brand, "%s", cases[i].ua);
        }
        free_cases(cases, n);
    }
    cr_assert_gt(total, 5000);
    ua_parser_free(plain);
}

/* ---- device class and bots --------------------------------------------- */

struct known_agent {
    const char *ua;
    const char *browser, *major, *os;
    enum device_class device;
};

static const struct known_agent known[] = {
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36",
     "Chrome", "120", "Windows", DEVICE_DESKTOP},
    {"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
     "Firefox", "121", "Ubuntu", DEVICE_DESKTOP},
    {"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.1 Safari/605.1.15",
     "Safari", "17", "Mac OS X", DEVICE_DESKTOP},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "17", "iOS", DEVICE_MOBILE},
    {"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "16", "iOS", DEVICE_TABLET},
    {"Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/116.0.0.0 Mobile Safari/537.36",
     "Chrome Mobile", "116", "Android", DEVICE_MOBILE},
    {"Mozilla/5.0 (Linux; Android 12; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/115.0.0.0 Safari/537.36",
     "Chrome", "115", "Android", DEVICE_TABLET},
    {"Mozilla/5.0 (Android 13; Tablet; rv:120.0) Gecko/120.0 Firefox/120.0",
     "Firefox Mobile", "120", "Android", DEVICE_TABLET},
    {"Mozilla/5.0 (Android 13; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0",
     "Firefox Mobile", "120", "Android", DEVICE_MOBILE},
    {"Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0; Tablet PC 2.0)",
     "IE", "8", "Windows", DEVICE_DESKTOP},
    {"Mozilla/5.0 (Linux; Android 9; BRAVIA 4K GB Build/PTT1.190515.001.S52) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/95.0.4638.74 Safari/537.36",
     "Chrome", "95", "Android", DEVICE_DESKTOP},
    /* bots */
    {"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", "2", "Other", DEVICE_BOT},
    {"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     "+http://www.google.com/bot.html)",
     "Googlebot", "2", "Android", DEVICE_BOT},
    {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.0.0 Safari/537.36",
     "HeadlessChrome", "120", "Linux", DEVICE_BOT},
    {"Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 "
     "Safari/538.1",
     "PhantomJS", "2", "Linux", DEVICE_BOT},
    {"curl/8.4.0", "curl", "8", "Other", DEVICE_BOT},
    {"python-requests/2.31.0", "Python Requests", "2", "Other", DEVICE_BOT},
    {"", "Other", "", "Other", DEVICE_BOT},
    {"   ", "Other", "", "Other", DEVICE_BOT},
};

TestSuite(ua_class, .init = setup, .fini = teardown);

Test(ua_class, known_agents)
{
    for (size_t i = 0; i < ARRAY_LEN(known); i++) {
        const struct known_agent *k = &known[i];
        struct ua_result r;
        ua_parse(parser, k->ua, strlen(k->ua), &r);
        cr_expect_str_eq(r.browser, k->browser, "browser of %s", k->ua);
        cr_expect_str_eq(r.browser_major, k->major, "major of %s", k->ua);
        cr_expect_str_eq(r.os, k->os, "os of %s", k->ua);
        cr_expect_eq(r.device, k->device, "class %d, want %d: %s", r.device, k->device, k->ua);
        cr_expect_eq(r.is_bot, k->device == DEVICE_BOT, "bot flag of %s", k->ua);
    }
}

Test(ua_class, null_agent_is_a_bot)
{
    struct ua_result r;
    ua_parse(parser, NULL, 0, &r);
    cr_assert(r.is_bot);
    cr_assert_eq(r.device, DEVICE_BOT);
    cr_assert_str_eq(r.browser, "Other");
}

/* ---- hostile input ----------------------------------------------------- */

static const char chrome_ua[] =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36";

TestSuite(ua_input, .init = setup, .fini = teardown);

static void assert_clean(const struct ua_result *r)
{
    cr_assert(utf8_valid(r->browser, strlen(r->browser)));
    cr_assert(utf8_valid(r->browser_major, strlen(r->browser_major)));
    cr_assert(utf8_valid(r->os, strlen(r->os)));
    for (const char *s = r->browser; *s; s++)
        cr_assert((unsigned char)*s >= 0x20 && *s != 0x7f);
    cr_assert(r->device >= DEVICE_DESKTOP && r->device <= DEVICE_BOT);
}

Test(ua_input, overlong_agent_is_cut_at_match_max)
{
    size_t len = 64 * 1024;
    char *ua = xmalloc(len);
    memset(ua, 'x', len);
    memcpy(ua, chrome_ua, sizeof(chrome_ua) - 1);
    struct ua_result whole, prefix;
    ua_parse(parser, ua, len, &whole);
    ua_parse(parser, ua, UA_MATCH_MAX, &prefix);
    assert_clean(&whole);
    cr_assert_str_eq(whole.browser, "Chrome");
    cr_assert_eq(memcmp(&whole, &prefix, sizeof(whole)), 0);

    /* A bot token beyond UA_MATCH_MAX is not seen; one before it is. */
    const char bot[] = " HeadlessChrome/120.0.0.0";
    memcpy(ua + UA_MATCH_MAX + 10, bot, sizeof(bot) - 1);
    ua_parse(parser, ua, len, &whole);
    cr_assert_not(whole.is_bot);
    memcpy(ua + UA_MATCH_MAX - sizeof(bot), bot, sizeof(bot) - 1);
    ua_parse(parser, ua, len, &whole);
    cr_assert(whole.is_bot);
    cr_assert_eq(ua_parser_match_errors(parser), 0);
    free(ua);
}

Test(ua_input, invalid_utf8_and_nul_bytes)
{
    /* The generic CFNetwork rule copies the app name, bytes and all, into
     * the family: invalid bytes must come out as '?'. */
    static const char bad_app[] = "\xff\xfe" "App\xc3" "/12 CFNetwork/1220.1 Darwin/20.3.0";
    struct ua_result r;
    ua_parse(parser, bad_app, sizeof(bad_app) - 1, &r);
    assert_clean(&r);
    cr_assert_str_eq(r.browser, "??App?");
    cr_assert_str_eq(r.browser_major, "12");

    static const char with_nul[] = "Mozilla/5.0 (Windows NT 10.0)\0 Chrome/99.0 \x80\xbf";
    ua_parse(parser, with_nul, sizeof(with_nul) - 1, &r);
    assert_clean(&r);
    cr_assert_str_eq(r.browser, "Chrome");
    cr_assert_str_eq(r.os, "Windows");

    /* Every byte value, in every position of a short agent. */
    char ua[16];
    for (int b = 0; b < 256; b++) {
        memset(ua, b, sizeof(ua));
        ua_parse(parser, ua, sizeof(ua), &r);
        assert_clean(&r);
    }
}

Test(ua_input, long_family_is_cut_on_a_character_boundary)
{
    /* 70 bytes of app name of two-byte characters: must be cut to whole
     * characters within EV_UA_FIELD_MAX - 1 bytes. */
    char ua[256];
    size_t n = 0;
    for (int i = 0; i < 35; i++) {
        ua[n++] = (char)0xc3;
        ua[n++] = (char)0xa9; /* U+00E9 */
    }
    const char tail[] = "/3 CFNetwork/1220.1 Darwin/20.3.0";
    memcpy(ua + n, tail, sizeof(tail) - 1);
    n += sizeof(tail) - 1;
    struct ua_result r;
    ua_parse(parser, ua, n, &r);
    assert_clean(&r);
    cr_assert_eq(strlen(r.browser), EV_UA_FIELD_MAX - 2, "len %zu", strlen(r.browser));
    cr_assert_str_eq(r.browser_major, "3");
}

/* ---- cache ------------------------------------------------------------- */

TestSuite(ua_cache, .init = setup, .fini = teardown);

static const char *const agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
};

static void parse_agent(struct ua_parser *p, size_t i, struct ua_result *r)
{
    ua_parse(p, agents[i], strlen(agents[i]), r);
}

static void expect_stats(struct ua_parser *p, uint64_t hits, uint64_t misses)
{
    uint64_t h, m;
    ua_parser_stats(p, &h, &m);
    cr_assert_eq(h, hits, "hits %llu want %llu", (unsigned long long)h, (unsigned long long)hits);
    cr_assert_eq(m, misses, "misses %llu want %llu", (unsigned long long)m,
                 (unsigned long long)misses);
}

Test(ua_cache, hit_returns_identical_result)
{
    struct ua_parser *p = ua_parser_new(rules, 16);
    for (size_t i = 0; i < ARRAY_LEN(agents); i++) {
        struct ua_result first, again, uncached;
        memset(&again, 0xaa, sizeof(again));
        parse_agent(p, i, &first);
        parse_agent(p, i, &again);
        parse_agent(parser, i, &uncached);
        cr_assert_eq(memcmp(&first, &again, sizeof(first)), 0);
        cr_assert_eq(memcmp(&first, &uncached, sizeof(first)), 0);
    }
    expect_stats(p, 3, 3);
    ua_parser_free(p);
}

Test(ua_cache, evicts_least_recently_used)
{
    struct ua_parser *p = ua_parser_new(rules, 2);
    struct ua_result r;
    parse_agent(p, 0, &r); /* miss: [0] */
    parse_agent(p, 1, &r); /* miss: [1 0] */
    parse_agent(p, 0, &r); /* hit:  [0 1] */
    expect_stats(p, 1, 2);
    parse_agent(p, 2, &r); /* miss, evicts 1: [2 0] */
    cr_assert(r.is_bot);
    parse_agent(p, 0, &r); /* hit */
    expect_stats(p, 2, 3);
    parse_agent(p, 1, &r); /* miss again: it was evicted */
    expect_stats(p, 2, 4);
    cr_assert_eq(r.device, DEVICE_MOBILE);
    ua_parser_free(p);
}

Test(ua_cache, disabled_cache_misses_every_time)
{
    struct ua_result r;
    for (int i = 0; i < 3; i++)
        parse_agent(parser, 0, &r);
    expect_stats(parser, 0, 3);
}

Test(ua_cache, keys_distinguish_agents_and_counts)
{
    struct ua_cache *c = ua_cache_new(3);
    cr_assert_not_null(c);
    cr_assert_null(ua_cache_new(0));
    struct ua_cache_key ka, kb, ka2;
    ua_cache_key_of(c, "a", 1, &ka);
    ua_cache_key_of(c, "b", 1, &kb);
    ua_cache_key_of(c, "a", 1, &ka2);
    cr_assert(ka.lo == ka2.lo && ka.hi == ka2.hi);
    cr_assert(ka.lo != kb.lo || ka.hi != kb.hi);

    struct ua_result va = {.browser = "A", .device = DEVICE_MOBILE};
    struct ua_result vb = {.browser = "B", .device = DEVICE_TABLET};
    struct ua_result out;
    cr_assert_not(ua_cache_get(c, &ka, &out));
    ua_cache_put(c, &ka, &va);
    ua_cache_put(c, &kb, &vb);
    cr_assert(ua_cache_get(c, &ka, &out));
    cr_assert_str_eq(out.browser, "A");
    ua_cache_put(c, &ka, &vb); /* replace in place */
    cr_assert(ua_cache_get(c, &ka, &out));
    cr_assert_str_eq(out.browser, "B");

    /* Fill past capacity with many keys: at most 3 entries stay, and the
     * most recent ones are the ones found. */
    char name[16];
    struct ua_cache_key k;
    for (int i = 0; i < 100; i++) {
        cr_assert(str_format(name, sizeof(name), "agent-%d", i));
        ua_cache_key_of(c, name, strlen(name), &k);
        ua_cache_put(c, &k, &va);
    }
    size_t used, cap;
    uint64_t evictions;
    ua_cache_counts(c, &used, &cap, &evictions);
    cr_assert_eq(used, 3);
    cr_assert_eq(cap, 3);
    cr_assert_eq(evictions, 99);
    for (int i = 0; i < 100; i++) {
        cr_assert(str_format(name, sizeof(name), "agent-%d", i));
        ua_cache_key_of(c, name, strlen(name), &k);
        cr_assert_eq(ua_cache_get(c, &k, &out), i >= 97, "agent-%d", i);
    }
    ua_cache_free(c);
}

/* ---- loading ----------------------------------------------------------- */

static void quiet(void)
{
    log_init("test_ua", LOG_LVL_WARN);
}

TestSuite(ua_load, .init = quiet);

static char *write_temp(const char *text)
{
    char *path = xstrdup("/tmp/veil-ua-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *fp = fdopen(fd, "w");
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void expect_load_error(const char *yaml, const char *reason)
{
    char *path = write_temp(yaml);
    char err[512] = "";
    struct ua_rules *r = ua_rules_load(path, err, sizeof(err));
    cr_expect_null(r, "loaded: %s", yaml);
    cr_expect(strstr(err, reason) != NULL, "error '%s' lacks '%s'", err, reason);
    ua_rules_free(r);
    unlink(path);
    free(path);
}

Test(ua_load, bad_files_are_refused_with_a_reason)
{
    char err[256] = "";
    cr_assert_null(ua_rules_load("/nonexistent/regexes.yaml", err, sizeof(err)));
    cr_assert(strstr(err, "cannot open") != NULL, "%s", err);
    expect_load_error("user_agent_parsers: [\n", "YAML error");
    expect_load_error("- a\n- b\n", "no top-level mapping");
    expect_load_error("user_agent_parsers:\n  - regex: 'a'\nos_parsers:\n  - regex: 'b'\n",
                      "no device_parsers");
    expect_load_error("user_agent_parsers:\n  - regex: '(a'\nos_parsers:\n  - regex: 'b'\n"
                      "device_parsers:\n  - regex: 'c'\n",
                      ":2: user_agent_parsers regex does not compile");
    expect_load_error("user_agent_parsers:\n  - regex: 'a'\n    regex_flag: 'x'\n"
                      "os_parsers:\n  - regex: 'b'\ndevice_parsers:\n  - regex: 'c'\n",
                      "unknown regex_flag");
    expect_load_error("user_agent_parsers:\n  - family_replacement: 'a'\n"
                      "os_parsers:\n  - regex: 'b'\ndevice_parsers:\n  - regex: 'c'\n",
                      "without a regex");
}

/* A hand-written rules file pins down the replacement semantics:
 * $N substitution, unset groups, trimming, 'i' flag, first match wins,
 * "Other" when nothing matches. */
Test(ua_load, replacement_semantics)
{
    char *path = write_temp(
        "user_agent_parsers:\n"
        "  - regex: '(Foo)(?:/(\\d+)|)'\n"
        "    family_replacement: ' $1 Browser $2 '\n"
        "  - regex: 'Foo'\n"
        "    family_replacement: 'Never'\n"
        "  - regex: '(Bar)/(\\d+)'\n"
        "    v1_replacement: '7'\n"
        "  - regex: '(Baz)()'\n"
        "os_parsers:\n"
        "  - regex: 'win(\\d+)'\n"
        "    regex_flag: 'i'\n"
        "    os_replacement: 'Windows $1'\n"
        "device_parsers:\n"
        "  - regex: '(Phone) (\\w+)'\n"
        "    device_replacement: '$2 $1'\n"
        "    brand_replacement: 'Acme'\n");
    char err[256];
    struct ua_rules *r = ua_rules_load(path, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    size_t nb, no, nd;
    ua_rules_counts(r, &nb, &no, &nd);
    cr_assert(nb == 4 && no == 1 && nd == 1);
    struct ua_parser *p = ua_parser_new(r, 0);
    struct ua_fields f;

    ua_parse_fields(p, "Foo/12 WIN10 Phone x1", 21, &f);
    cr_assert_str_eq(f.family, "Foo Browser 12");
    cr_assert_str_eq(f.major, "12");
    cr_assert_str_eq(f.os, "Windows 10");
    cr_assert_str_eq(f.device, "x1 Phone");
    cr_assert_str_eq(f.brand, "Acme");

    ua_parse_fields(p, "Foo", 3, &f); /* unset $2 gives "", then trimmed */
    cr_assert_str_eq(f.family, "Foo Browser");
    cr_assert_str_eq(f.major, "");

    ua_parse_fields(p, "Bar/3", 5, &f);
    cr_assert_str_eq(f.family, "Bar");
    cr_assert_str_eq(f.major, "7");

    ua_parse_fields(p, "Baz", 3, &f); /* empty group: no major */
    cr_assert_str_eq(f.family, "Baz");
    cr_assert_str_eq(f.major, "");

    ua_parse_fields(p, "nothing here", 12, &f);
    cr_assert_str_eq(f.family, "Other");
    cr_assert_str_eq(f.os, "Other");
    cr_assert_str_eq(f.device, "Other");
    cr_assert_str_eq(f.brand, "");

    ua_parser_free(p);
    ua_rules_free(r);
    unlink(path);
    free(path);
}
