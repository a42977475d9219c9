/* target_ua.c - fuzz target ua: ua_parse on any bytes.
 *
 * The parser is built once per process from uap-core's regexes.yaml
 * ($VEIL_UAP_CORE/regexes.yaml, else /usr/share/uap-core) with a
 * 16-entry cache. Results must be clean text within their slots with a
 * valid device class; the literal pre-filter must never change a raw field
 * (compared with a parser that runs every regex), and a cache hit must
 * give what the parse gave. A regex that hits a PCRE2 limit is noted once
 * on stderr (it is slow, not wrong). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harness.h"
#include "log.h"
#include "ua.h"
#include "util.h"

static struct ua_rules *ua_rules;
static struct ua_parser *ua_cached;     /* small cache, pre-filter on: production */
static struct ua_parser *ua_unfiltered; /* no cache, no pre-filter: the reference */

static void ua_setup(void)
{
    char path[512], err[512];
    const char *dir = getenv("VEIL_UAP_CORE");
    if (ua_rules)
        return;
    log_init("fuzz", LOG_LVL_WARN);
    if (!str_format(path, sizeof path, "%s/regexes.yaml",
                    dir && *dir ? dir : "/usr/share/uap-core"))
        abort();
    ua_rules = ua_rules_load(path, err, sizeof err);
    if (!ua_rules) {
        fprintf(stderr, "fuzz ua: %s\n", err);
        abort();
    }
    ua_cached = ua_parser_new(ua_rules, 16);
    ua_unfiltered = ua_parser_new(ua_rules, 0);
    if (!ua_cached || !ua_unfiltered)
        abort();
    ua_parser_set_prefilter(ua_unfiltered, false);
}

static void check_ua_text(const char *t, const char *s, size_t size, bool nonempty)
{
    CHECK(t, fuzz_fits(s, size) && fuzz_clean_text(s));
    CHECK(t, !nonempty || s[0] != '\0');
}

static const char *ua_fields_diff(const struct ua_fields *a, const struct ua_fields *b)
{
    if (strcmp(a->family, b->family) != 0)
        return "family";
    if (strcmp(a->major, b->major) != 0)
        return "major";
    if (strcmp(a->os, b->os) != 0)
        return "os";
    if (strcmp(a->device, b->device) != 0)
        return "device";
    if (strcmp(a->brand, b->brand) != 0)
        return "brand";
    return NULL;
}

static bool ua_result_equal(const struct ua_result *a, const struct ua_result *b)
{
    return strcmp(a->browser, b->browser) == 0 && strcmp(a->browser_major, b->browser_major) == 0 &&
           strcmp(a->os, b->os) == 0 && a->device == b->device && a->is_bot == b->is_bot;
}

int fuzz_ua(const uint8_t *data, size_t size)
{
    static const char t[] = "ua";
    static bool noted_match_error;
    struct ua_result r, again;
    struct ua_fields f, ref;
    const char *ua = (const char *)data;

    ua_setup();
    uint64_t errors = ua_parser_match_errors(ua_cached) + ua_parser_match_errors(ua_unfiltered);

    ua_parse(ua_cached, ua, size, &r);
    check_ua_text(t, r.browser, sizeof r.browser, true);
    check_ua_text(t, r.browser_major, sizeof r.browser_major, false);
    check_ua_text(t, r.os, sizeof r.os, true);
    CHECK(t, r.device == DEVICE_DESKTOP || r.device == DEVICE_MOBILE ||
                 r.device == DEVICE_TABLET || r.device == DEVICE_BOT);
    CHECK(t, r.is_bot == (r.device == DEVICE_BOT));
    CHECK(t, size > 0 || r.is_bot);

    ua_parse_fields(ua_cached, ua, size, &f);
    check_ua_text(t, f.family, sizeof f.family, true);
    check_ua_text(t, f.major, sizeof f.major, false);
    check_ua_text(t, f.os, sizeof f.os, true);
    check_ua_text(t, f.device, sizeof f.device, true);
    check_ua_text(t, f.brand, sizeof f.brand, false);
    CHECK(t, strcmp(r.browser, f.family) == 0 && strcmp(r.browser_major, f.major) == 0 &&
                 strcmp(r.os, f.os) == 0);

    ua_parse_fields(ua_unfiltered, ua, size, &ref);
    const char *diff = ua_fields_diff(&f, &ref);
    CHECKF(t, diff == NULL, "the literal pre-filter changes the %s", diff);

    ua_parse(ua_cached, ua, size, &again); /* now a cache hit */
    CHECKF(t, ua_result_equal(&r, &again), "a cached result differs from the parsed one");

    if (!noted_match_error &&
        ua_parser_match_errors(ua_cached) + ua_parser_match_errors(ua_unfiltered) != errors) {
        noted_match_error = true;
        fprintf(stderr, "fuzz ua: note: a regex gave up (PCRE2 limit) on %s\n",
                fuzz_input_name());
    }
    return 0;
}

void fuzz_ua_free(void)
{
    ua_parser_free(ua_cached);
    ua_parser_free(ua_unfiltered);
    ua_rules_free(ua_rules);
    ua_cached = ua_unfiltered = NULL;
    ua_rules = NULL;
}
