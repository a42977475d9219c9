/* test_event_parse.c - what the tracker sends (collector/event_parse.c):
 * every accepted member, every rejection with its reason, limits at the
 * boundary, hostile input (deep nesting, bad UTF-8, NUL bytes). */
#include <criterion/criterion.h>
#include <string.h>

#include "event_parse.h"
#include "util.h"

static struct raw_event ev;
static char reason[128];

/* ---- helpers ----------------------------------------------------------- */

/* A growing test input (static: some inputs are large). */
static char sb[700000];
static size_t sb_len;

static void sb_reset(void)
{
    sb_len = 0;
    sb[0] = '\0';
}

static void sb_add(const char *s)
{
    size_t n = strlen(s);
    cr_assert(sb_len + n < sizeof sb);
    memcpy(sb + sb_len, s, n);
    sb_len += n;
    sb[sb_len] = '\0';
}

static void sb_rep(const char *s, size_t times)
{
    for (size_t i = 0; i < times; i++)
        sb_add(s);
}

static bool pj_n(const char *body, size_t len)
{
    reason[0] = '\0';
    return event_parse_json(body, len, &ev, reason, sizeof reason);
}

static bool pj(const char *body)
{
    return pj_n(body, strlen(body));
}

static void json_ok(const char *body)
{
    cr_assert(pj(body), "rejected (%s): %.200s", reason, body);
}

static void json_rejected(const char *body, const char *why)
{
    cr_assert_not(pj(body), "accepted: %.200s", body);
    cr_assert_str_eq(reason, why, "body: %.200s", body);
}

static bool pq(const char *query)
{
    reason[0] = '\0';
    return event_parse_query(query, strlen(query), &ev, reason, sizeof reason);
}

static void query_ok(const char *query)
{
    cr_assert(pq(query), "rejected (%s): %.200s", reason, query);
}

static void query_rejected(const char *query, const char *why)
{
    cr_assert_not(pq(query), "accepted: %.200s", query);
    cr_assert_str_eq(reason, why, "query: %.200s", query);
}

#define NU "\"n\":\"pageview\",\"u\":\"https://example.com/\""

/* ---- JSON: accepted members -------------------------------------------- */

Test(event_parse_json, minimal)
{
    json_ok("{\"n\":\"pageview\",\"u\":\"https://example.com/\"}");
    cr_assert_str_eq(ev.name, "pageview");
    cr_assert_str_eq(ev.url, "https://example.com/");
    cr_assert_str_eq(ev.domain, "example.com", "derived from u");
    cr_assert_str_eq(ev.referrer, "");
    cr_assert_eq(ev.screen_width, -1);
    cr_assert_not(ev.hash_mode);
    cr_assert_eq(ev.scroll_depth, -1);
    cr_assert_eq(ev.engaged_ms, -1);
    cr_assert_eq(ev.nprops, 0);
}

Test(event_parse_json, every_member)
{
    json_ok(" {\n \"n\" : \"signup\" ,\"u\":\"https://www.example.com/x?y=1#z\",\t"
            "\"d\":\"Example.COM\",\"r\":\"https://google.com/?q=1\",\"w\":1280,\"h\":1,"
            "\"p\":{\"plan\":\"pro\",\"seats\":5,\"trial\":true,\"off\":false,\"ratio\":-1.5e2,"
            "\"none\":null,\"empty\":\"\"},\"sd\":75,\"e\":12345}\r\n");
    cr_assert_str_eq(ev.name, "signup");
    cr_assert_str_eq(ev.url, "https://www.example.com/x?y=1#z", "u is kept whole here");
    cr_assert_str_eq(ev.domain, "example.com", "d is lowercased");
    cr_assert_str_eq(ev.referrer, "https://google.com/?q=1");
    cr_assert_eq(ev.screen_width, 1280);
    cr_assert(ev.hash_mode);
    cr_assert_eq(ev.scroll_depth, 75);
    cr_assert_eq(ev.engaged_ms, 12345);
    cr_assert_eq(ev.nprops, 5, "null and empty values are dropped");
    static const char *const want[][2] = {
        {"plan", "pro"}, {"seats", "5"}, {"trial", "true"}, {"off", "false"}, {"ratio", "-1.5e2"}};
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        cr_assert_str_eq(ev.props[i].key, want[i][0]);
        cr_assert_str_eq(ev.props[i].value, want[i][1]);
    }
}

Test(event_parse_json, long_names_and_prop_aliases)
{
    json_ok("{\"name\":\"click\",\"url\":\"http://a.example/\",\"domain\":\"b.example\","
            "\"referrer\":\"https://c.example/\",\"screen_width\":390,\"props\":{\"k\":\"v\"}}");
    cr_assert_str_eq(ev.name, "click");
    cr_assert_str_eq(ev.url, "http://a.example/");
    cr_assert_str_eq(ev.domain, "b.example");
    cr_assert_str_eq(ev.referrer, "https://c.example/");
    cr_assert_eq(ev.screen_width, 390);
    cr_assert_eq(ev.nprops, 1);
    json_ok("{" NU ",\"m\":{\"a\":\"1\"}}");
    cr_assert_str_eq(ev.props[0].key, "a");
    json_ok("{" NU ",\"meta\":{\"b\":\"2\"}}");
    cr_assert_str_eq(ev.props[0].key, "b");
}

Test(event_parse_json, domain_rules)
{
    json_ok("{\"n\":\"x\",\"u\":\"https://u:p@WWW.Shop.Example:8080/\"}");
    cr_assert_str_eq(ev.domain, "shop.example", "derived: no www., no port, lowercased");
    json_ok("{" NU ",\"d\":\"www.Foo.org\"}");
    cr_assert_str_eq(ev.domain, "foo.org");
    json_ok("{" NU ",\"d\":null}");
    cr_assert_str_eq(ev.domain, "example.com", "null d is derived");
    json_ok("{" NU ",\"d\":\"b\\u00fccher.example\"}");
    cr_assert_str_eq(ev.domain, "b\xc3\xbc" "cher.example");
    json_rejected("{" NU ",\"d\":\"a.com,b c.com\"}", "d: not a domain");
    json_rejected("{" NU ",\"d\":\"exa mple.com\"}", "d: not a domain");
    json_rejected("{" NU ",\"d\":\"a.com:6379\"}", "d: not a domain");
    json_rejected("{" NU ",\"d\":\"\"}", "d: empty");
    json_rejected("{\"n\":\"x\",\"u\":\"http://[::1]:8000/\"}", "missing field d");
}

Test(event_parse_json, hash_mode_values)
{
    json_ok("{" NU ",\"h\":true}");
    cr_assert(ev.hash_mode);
    json_ok("{" NU ",\"h\":0}");
    cr_assert_not(ev.hash_mode);
    json_ok("{" NU ",\"h\":false}");
    cr_assert_not(ev.hash_mode);
    json_ok("{" NU ",\"h\":null}");
    cr_assert_not(ev.hash_mode);
    json_rejected("{" NU ",\"h\":2}", "h: must be 0, 1 or a boolean");
    json_rejected("{" NU ",\"h\":1.0}", "h: must be 0, 1 or a boolean");
    json_rejected("{" NU ",\"h\":\"1\"}", "h: must be 0, 1 or a boolean");
}

Test(event_parse_json, string_escapes)
{
    json_ok("{\"n\":\"a\\\"b\\\\c\\/d \\u00fc \\ud83d\\ude00\",\"u\":\"https://example.com/\"}");
    cr_assert_str_eq(ev.name, "a\"b\\c/d \xc3\xbc \xf0\x9f\x98\x80");
    json_rejected("{\"n\":\"a\\nb\"," "\"u\":\"https://example.com/\"}", "n: control character");
    json_rejected("{\"n\":\"a\\u0000b\"}", "NUL in string");
    json_ok("{" NU ",\"p\":{\"k\\u00e9y\":\"v\\u00e4l\"}}");
    cr_assert_str_eq(ev.props[0].key, "k\xc3\xa9y");
    cr_assert_str_eq(ev.props[0].value, "v\xc3\xa4l");
    json_rejected("{" NU ",\"p\":{\"k\":\"a\\tb\"}}", "p: control character in value");
    json_rejected("{" NU ",\"p\":{\"k\\r\":\"v\"}}", "p: control character in key");
}

Test(event_parse_json, optional_members_accept_null)
{
    json_ok("{" NU ",\"r\":null,\"w\":null,\"p\":null,\"sd\":null,\"e\":null}");
    cr_assert_str_eq(ev.referrer, "");
    cr_assert_eq(ev.screen_width, -1);
    cr_assert_eq(ev.scroll_depth, -1);
    cr_assert_eq(ev.engaged_ms, -1);
    json_ok("{" NU ",\"r\":\"\",\"p\":{}}");
    cr_assert_str_eq(ev.referrer, "");
    cr_assert_eq(ev.nprops, 0);
}

Test(event_parse_json, unknown_members_are_ignored)
{
    json_ok("{" NU ",\"v\":2,\"future\":\"x\",\"flag\":true,\"nothing\":null,"
            "\"list\":[1,\"a\",true,null,2.5],\"obj\":{\"a\":1,\"b\":\"c\"},\"empty\":[],"
            "\"eo\":{},\"nn\":\"\\u00fc\"}");
    cr_assert_str_eq(ev.name, "pageview");
    cr_assert_eq(ev.nprops, 0);
    /* an unknown key longer than any known one */
    sb_reset();
    sb_add("{" NU ",\"");
    sb_rep("k", 500);
    sb_add("\":1}");
    json_ok(sb);
}

/* ---- JSON: rejections -------------------------------------------------- */

Test(event_parse_json, body_level_rejections)
{
    json_rejected("", "empty body");
    json_rejected(" \n\t ", "empty body");
    json_rejected("[]", "body is not a JSON object");
    json_rejected("\"pageview\"", "body is not a JSON object");
    json_rejected("42", "body is not a JSON object");
    json_rejected("null", "body is not a JSON object");
    json_rejected("{\"n\":\"\xff\"}", "invalid UTF-8");
    json_rejected("{\"n\":\"\xc0\xaf\"}", "invalid UTF-8");
    json_rejected("{\"n\":\"\xed\xa0\x80\"}", "invalid UTF-8");
    const char nul[] = "{\"n\":\"a\0b\",\"u\":\"https://example.com/\"}";
    cr_assert_not(pj_n(nul, sizeof nul - 1));
    cr_assert_str_eq(reason, "NUL byte in body");
}

Test(event_parse_json, invalid_json)
{
    static const char *const bad[] = {
        "{",
        "{\"n\"",
        "{\"n\":}",
        "{\"n\" \"x\"}",
        "{'n':'x'}",
        "{n:\"x\"}",
        "{\"n\":\"x\",}",
        "{\"n\":\"x\" \"u\":\"y\"}",
        "{\"n\":\"x\"} trailing",
        "{\"n\":\"x\"}{}",
        "{\"n\":\"x",
        "{\"n\":\"a\nb\"}",
        "{\"n\":\"\\x\"}",
        "{\"n\":\"\\u12\"}",
        "{\"n\":\"\\u12g4\"}",
        "{\"n\":\"\\ud800\"}",
        "{\"n\":\"\\ud800\\u0041\"}",
        "{\"n\":\"\\udc00\"}",
        "{\"w\":NaN}",
        "{\"w\":Infinity}",
        "{\"w\":-Infinity}",
        "{\"w\":01}",
        "{\"w\":+1}",
        "{\"w\":1.}",
        "{\"w\":.5}",
        "{\"w\":1e}",
        "{\"w\":-}",
        "{\"h\":tru}",
        "{\"h\":nul}",
        "{\"x\":[1,]}",
        "{\"x\":[1 2]}",
        "{\"x\":{\"a\"}}",
        "{\"p\":{\"a\":1,}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        json_rejected(bad[i], "invalid JSON");
}

Test(event_parse_json, missing_members)
{
    json_rejected("{}", "missing field n");
    json_rejected("{\"u\":\"https://example.com/\"}", "missing field n");
    json_rejected("{\"n\":\"pageview\"}", "missing field u");
    json_rejected("{\"n\":null,\"u\":\"https://example.com/\"}", "n: must be a string");
    json_rejected("{\"n\":\"pageview\",\"u\":null}", "u: must be a string");
    json_rejected("{\"n\":\"\",\"u\":\"https://example.com/\"}", "n: empty");
    json_rejected("{\"n\":\"x\",\"u\":\"\"}", "u: empty");
}

Test(event_parse_json, urls)
{
    json_rejected("{\"n\":\"x\",\"u\":\"ftp://example.com/\"}", "u: not an http(s) URL");
    json_rejected("{\"n\":\"x\",\"u\":\"/relative\"}", "u: not an http(s) URL");
    json_rejected("{\"n\":\"x\",\"u\":\"https://\"}", "u: not an http(s) URL");
    json_rejected("{\"n\":\"x\",\"u\":\"javascript:alert(1)\"}", "u: not an http(s) URL");
    json_ok("{\"n\":\"x\",\"u\":\"HTTPS://EXAMPLE.COM\"}");
    cr_assert_str_eq(ev.domain, "example.com");
}

Test(event_parse_json, wrong_types)
{
    json_rejected("{\"n\":5.5,\"u\":\"https://example.com/\"}", "n: must be a string");
    json_rejected("{\"n\":[\"x\"],\"u\":\"https://example.com/\"}", "n: must be a string");
    json_rejected("{\"n\":{},\"u\":\"https://example.com/\"}", "n: must be a string");
    json_rejected("{\"n\":\"x\",\"u\":true}", "u: must be a string");
    json_rejected("{" NU ",\"d\":1}", "d: must be a string");
    json_rejected("{" NU ",\"r\":5}", "r: must be a string");
    json_rejected("{" NU ",\"r\":{}}", "r: must be a string");
    json_rejected("{" NU ",\"w\":\"1280\"}", "w: must be an integer");
    json_rejected("{" NU ",\"w\":true}", "w: must be an integer");
    json_rejected("{" NU ",\"w\":[1]}", "w: must be an integer");
    json_ok("{" NU ",\"p\":\"{}\"}"); /* a JSON string holding an object (legacy trackers) */
    json_rejected("{" NU ",\"p\":[]}", "p: must be an object");
    json_rejected("{" NU ",\"p\":1}", "p: must be an object");
    json_rejected("{" NU ",\"sd\":\"50\"}", "sd: must be an integer");
    json_rejected("{" NU ",\"e\":false}", "e: must be an integer");
}

Test(event_parse_json, integers)
{
    /* decided: only plain JSON integers; 50.0 and 1e3 are not integers */
    json_rejected("{" NU ",\"sd\":50.0}", "sd: must be an integer");
    json_rejected("{" NU ",\"w\":1e3}", "w: must be an integer");
    json_rejected("{" NU ",\"w\":1E3}", "w: must be an integer");
    json_rejected("{" NU ",\"e\":1.5}", "e: must be an integer");
    json_rejected("{" NU ",\"sd\":-1}", "sd: out of range");
    json_rejected("{" NU ",\"sd\":101}", "sd: out of range");
    json_rejected("{" NU ",\"w\":-1}", "w: out of range");
    json_rejected("{" NU ",\"w\":100001}", "w: out of range");
    json_rejected("{" NU ",\"e\":86400001}", "e: out of range");
    json_rejected("{" NU ",\"e\":-5}", "e: out of range");
    json_rejected("{" NU ",\"e\":9223372036854775808}", "e: out of range");
    json_rejected("{" NU ",\"e\":123456789012345678901234567890}", "e: out of range");
    json_ok("{" NU ",\"sd\":0,\"w\":0,\"e\":0}");
    cr_assert_eq(ev.scroll_depth, 0);
    cr_assert_eq(ev.screen_width, 0);
    cr_assert_eq(ev.engaged_ms, 0);
    json_ok("{" NU ",\"sd\":100,\"w\":100000,\"e\":86400000}");
    cr_assert_eq(ev.scroll_depth, 100);
    cr_assert_eq(ev.screen_width, 100000);
    cr_assert_eq(ev.engaged_ms, 86400000);
    json_ok("{" NU ",\"sd\":-0}");
    cr_assert_eq(ev.scroll_depth, 0);
}

Test(event_parse_json, duplicate_members)
{
    json_rejected("{" NU ",\"n\":\"again\"}", "duplicate field n");
    json_rejected("{" NU ",\"name\":\"again\"}", "duplicate field n");
    json_rejected("{" NU ",\"url\":\"https://example.com/\"}", "duplicate field u");
    json_rejected("{" NU ",\"d\":\"a.com\",\"domain\":\"b.com\"}", "duplicate field d");
    json_rejected("{" NU ",\"w\":null,\"w\":1}", "duplicate field w");
    json_rejected("{" NU ",\"h\":1,\"h\":0}", "duplicate field h");
    json_rejected("{" NU ",\"sd\":1,\"sd\":2}", "duplicate field sd");
    json_rejected("{" NU ",\"e\":1,\"e\":2}", "duplicate field e");
    json_rejected("{" NU ",\"r\":\"\",\"referrer\":\"\"}", "duplicate field r");
    json_rejected("{" NU ",\"p\":{},\"props\":{}}", "duplicate field p");
    json_rejected("{" NU ",\"p\":{\"a\":1},\"m\":{\"b\":2}}", "duplicate field p");
    json_rejected("{" NU ",\"p\":{\"a\":1,\"a\":2}}", "p: duplicate key");
    json_rejected("{" NU ",\"p\":{\"a\":1,\"\\u0061\":2}}", "p: duplicate key");
}

Test(event_parse_json, name_length_boundary)
{
    sb_reset();
    sb_add("{\"u\":\"https://example.com/\",\"n\":\"");
    sb_rep("x", 120);
    sb_add("\"}");
    json_ok(sb);
    cr_assert_eq(strlen(ev.name), 120);
    sb_reset();
    sb_add("{\"u\":\"https://example.com/\",\"n\":\"");
    sb_rep("x", 121);
    sb_add("\"}");
    json_rejected(sb, "n: too long");
    /* 60 two-byte characters are 120 bytes; one more is too long */
    sb_reset();
    sb_add("{\"u\":\"https://example.com/\",\"n\":\"");
    sb_rep("\\u00fc", 60);
    sb_add("\"}");
    json_ok(sb);
    sb_reset();
    sb_add("{\"u\":\"https://example.com/\",\"n\":\"x");
    sb_rep("\\u00fc", 60);
    sb_add("\"}");
    json_rejected(sb, "n: too long");
}

Test(event_parse_json, url_and_referrer_length_boundary)
{
    /* "https://example.com/" is 20 bytes */
    for (int which = 0; which < 2; which++) {
        const char *member = which == 0 ? "u" : "r";
        for (size_t total = 2000; total <= 2001; total++) {
            sb_reset();
            sb_add(which == 0 ? "{\"n\":\"x\",\"u\":\"" : "{" NU ",\"r\":\"");
            sb_add("https://example.com/");
            sb_rep("a", total - 20);
            sb_add("\"}");
            if (total == 2000) {
                json_ok(sb);
                cr_assert_eq(strlen(which == 0 ? ev.url : ev.referrer), 2000);
            } else {
                char why[32];
                str_format(why, sizeof why, "%s: too long", member);
                json_rejected(sb, why);
            }
        }
    }
    sb_reset();
    sb_add("{\"n\":\"x\",\"u\":\"https://example.com/");
    sb_rep("a", 100000);
    sb_add("\"}");
    json_rejected(sb, "u: too long");
}

Test(event_parse_json, props_count_boundary)
{
    char member[32];
    for (int total = 30; total <= 31; total++) {
        sb_reset();
        sb_add("{" NU ",\"p\":{");
        for (int i = 0; i < total; i++) {
            str_format(member, sizeof member, "%s\"k%d\":%d", i ? "," : "", i, i);
            sb_add(member);
        }
        sb_add("}}");
        if (total == 30) {
            json_ok(sb);
            cr_assert_eq(ev.nprops, 30);
            cr_assert_str_eq(ev.props[29].key, "k29");
            cr_assert_str_eq(ev.props[29].value, "29");
        } else {
            /* Plausible keeps the first 30 and drops the rest */
            json_ok(sb);
            cr_assert_eq(ev.nprops, 30);
            cr_assert_eq(ev.props_dropped, 1);
            cr_assert_str_eq(ev.props[29].key, "k29");
        }
    }
    /* dropped (null) props do not count, and a flood of members is dropped */
    sb_reset();
    sb_add("{" NU ",\"p\":{");
    for (int i = 0; i < 40; i++) {
        str_format(member, sizeof member, "%s\"k%d\":%s", i ? "," : "", i, i < 30 ? "1" : "null");
        sb_add(member);
    }
    sb_add("}}");
    json_ok(sb);
    cr_assert_eq(ev.nprops, 30);
    sb_reset();
    sb_add("{" NU ",\"p\":{");
    for (int i = 0; i < 65; i++) {
        str_format(member, sizeof member, "%s\"k%d\":null", i ? "," : "", i);
        sb_add(member);
    }
    sb_add("}}");
    json_ok(sb);
    cr_assert_eq(ev.nprops, 0);
    cr_assert_eq(ev.props_dropped, 65);
}

Test(event_parse_json, prop_key_and_value_size_boundary)
{
    sb_reset();
    sb_add("{" NU ",\"p\":{\"");
    sb_rep("k", 64);
    sb_add("\":\"");
    sb_rep("v", 256);
    sb_add("\"}}");
    json_ok(sb);
    cr_assert_eq(strlen(ev.props[0].key), 64);
    cr_assert_eq(strlen(ev.props[0].value), 256);

    sb_reset();
    sb_add("{" NU ",\"p\":{\"");
    sb_rep("k", 65);
    sb_add("\":\"v\"}}");
    json_rejected(sb, "p: key too long");
    sb_reset();
    sb_add("{" NU ",\"p\":{\"");
    sb_rep("k", 5000);
    sb_add("\":\"v\"}}");
    json_rejected(sb, "p: key too long");

    sb_reset();
    sb_add("{" NU ",\"p\":{\"k\":\"");
    sb_rep("v", 257);
    sb_add("\"}}");
    json_rejected(sb, "p: value too long");
    sb_reset();
    sb_add("{" NU ",\"p\":{\"k\":1");
    sb_rep("0", 256); /* a 257-digit number as text */
    sb_add("}}");
    json_rejected(sb, "p: value too long");

    /* blank keys and values are dropped, as Plausible drops them */
    json_ok("{" NU ",\"p\":{\"\":\"v\",\" \":\"v\",\"k\":\"  \",\"kept\":\"v\"}}");
    cr_assert_eq(ev.nprops, 1);
    cr_assert_eq(ev.props_dropped, 3);
}

Test(event_parse_json, prop_values_must_be_scalars)
{
    /* dropped, as Plausible drops them; deeper nesting is refused */
    json_ok("{" NU ",\"p\":{\"k\":[1],\"o\":{\"a\":1},\"s\":\"x\"}}");
    cr_assert_eq(ev.nprops, 1);
    cr_assert_str_eq(ev.props[0].key, "s");
    cr_assert_eq(ev.props_dropped, 2);
    json_rejected("{" NU ",\"p\":{\"k\":[[1]]}}", "nesting too deep");
}

Test(event_parse_json, deep_nesting_fails_fast, .timeout = 5)
{
    /* 100000 nested arrays in a prop value */
    sb_reset();
    sb_add("{" NU ",\"p\":{\"k\":");
    sb_rep("[", 100000);
    sb_rep("]", 100000);
    sb_add("}}");
    json_rejected(sb, "nesting too deep");

    /* ... in an unknown member: one level of scalars is all it may hold */
    sb_reset();
    sb_add("{" NU ",\"x\":");
    sb_rep("[", 100000);
    json_rejected(sb, "nesting too deep");
    json_rejected("{" NU ",\"x\":[[1]]}", "nesting too deep");
    json_rejected("{" NU ",\"x\":[1,{}]}", "nesting too deep");
    json_rejected("{" NU ",\"x\":{\"a\":{\"b\":1}}}", "nesting too deep");

    /* ... as the whole body, or as objects */
    sb_reset();
    sb_rep("[", 100000);
    json_rejected(sb, "body is not a JSON object");
    sb_reset();
    sb_rep("{\"a\":", 100000);
    json_rejected(sb, "nesting too deep");
}

Test(event_parse_json, member_count_boundary)
{
    char member[32];
    for (int total = 64; total <= 65; total++) {
        sb_reset();
        sb_add("{" NU);
        for (int i = 2; i < total; i++) {
            str_format(member, sizeof member, ",\"x%d\":%d", i, i);
            sb_add(member);
        }
        sb_add("}");
        if (total == 64)
            json_ok(sb);
        else
            json_rejected(sb, "too many fields");
    }
}

Test(event_parse_json, reasons_never_echo_input)
{
    static const char *const bad[] = {
        "{\"n\":\"SECRET\",\"u\":\"ftp://SECRET/\"}",
        "{\"n\":\"SECRET\",\"u\":\"https://example.com/SECRET\",\"d\":\"SECRET SECRET\"}",
        "{\"SECRET\":[[\"SECRET\"]],\"n\":\"x\"}",
        "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":{\"SECRET\":[[\"SECRET\"]]}}",
        "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":{\"SECRET\":1,\"SECRET\":2}}",
        "{\"n\":\"x\",\"u\":\"https://example.com/\",\"w\":\"SECRET\"}",
        "{\"n\":\"x\",\"SECRET\":SECRET}",
        "{\"name\":\"x\",\"name\":\"SECRET\"}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_not(pj(bad[i]), "accepted: %s", bad[i]);
        cr_assert(reason[0] != '\0');
        cr_assert_null(strstr(reason, "SECRET"), "reason echoes input: %s", reason);
        cr_assert_null(strchr(reason, '\n'));
    }
}

Test(event_parse_json, short_reason_buffer_is_safe)
{
    char tiny[4];
    cr_assert_not(event_parse_json("{}", 2, &ev, tiny, sizeof tiny));
    cr_assert_eq(strlen(tiny), 3);
    cr_assert_not(event_parse_json("{}", 2, &ev, NULL, 0));
}

/* ---- pixel query ------------------------------------------------------- */

Test(event_parse_query, every_member)
{
    query_ok("n=pageview&u=https%3A%2F%2Fexample.com%2Fp%3Fa%3D1&d=Example.com"
             "&r=https%3A%2F%2Fgoogle.com%2F&w=390&h=1&sd=40&e=5000"
             "&p.plan=pro&p.ab+test=b+1&p.%C3%BC=%C3%A4&unknown=%zz-ignored");
    cr_assert_str_eq(ev.name, "pageview");
    cr_assert_str_eq(ev.url, "https://example.com/p?a=1");
    cr_assert_str_eq(ev.domain, "example.com");
    cr_assert_str_eq(ev.referrer, "https://google.com/");
    cr_assert_eq(ev.screen_width, 390);
    cr_assert(ev.hash_mode);
    cr_assert_eq(ev.scroll_depth, 40);
    cr_assert_eq(ev.engaged_ms, 5000);
    cr_assert_eq(ev.nprops, 3);
    cr_assert_str_eq(ev.props[0].key, "plan");
    cr_assert_str_eq(ev.props[0].value, "pro");
    cr_assert_str_eq(ev.props[1].key, "ab test");
    cr_assert_str_eq(ev.props[1].value, "b 1");
    cr_assert_str_eq(ev.props[2].key, "\xc3\xbc");
    cr_assert_str_eq(ev.props[2].value, "\xc3\xa4");
}

Test(event_parse_query, long_names_and_empty_values)
{
    query_ok("name=click&url=http://a.example/x&&domain=&referrer=&screen_width=&h=&sd=&e=&p.k=");
    cr_assert_str_eq(ev.name, "click");
    cr_assert_str_eq(ev.domain, "a.example", "empty d is derived");
    cr_assert_str_eq(ev.referrer, "");
    cr_assert_eq(ev.screen_width, -1);
    cr_assert_not(ev.hash_mode);
    cr_assert_eq(ev.scroll_depth, -1);
    cr_assert_eq(ev.engaged_ms, -1);
    cr_assert_eq(ev.nprops, 0, "empty prop value dropped");
    query_ok("n=x&u=https://example.com/&h=true");
    cr_assert(ev.hash_mode);
    query_ok("n=x&u=https://example.com/&h=false");
    cr_assert_not(ev.hash_mode);
}

Test(event_parse_query, rejections)
{
    query_rejected("", "empty query");
    query_rejected("u=https://example.com/", "missing field n");
    query_rejected("n=x", "missing field u");
    query_rejected("n=&u=https://example.com/", "n: empty");
    query_rejected("n=x&u=", "u: empty");
    query_rejected("n=x&n=y&u=https://example.com/", "duplicate field n");
    query_rejected("n=x&name=y&u=https://example.com/", "duplicate field n");
    query_rejected("n=x&u=ftp://example.com/", "u: not an http(s) URL");
    query_rejected("n=x%zz&u=https://example.com/", "bad percent-encoding");
    query_rejected("n=x%4&u=https://example.com/", "bad percent-encoding");
    query_rejected("n%g1=x", "bad percent-encoding");
    query_rejected("n=a%00b&u=https://example.com/", "NUL byte in query");
    query_rejected("n=a%FFb&u=https://example.com/", "invalid UTF-8");
    query_rejected("n=a%0Ab&u=https://example.com/", "n: control character");
    query_rejected("n=x&u=https://example.com/&w=abc", "w: must be an integer");
    query_rejected("n=x&u=https://example.com/&w=1.5", "w: must be an integer");
    query_rejected("n=x&u=https://example.com/&w=%2B5", "w: must be an integer");
    query_rejected("n=x&u=https://example.com/&w=1e3", "w: must be an integer");
    query_rejected("n=x&u=https://example.com/&w=-1", "w: out of range");
    query_rejected("n=x&u=https://example.com/&sd=-1", "sd: out of range");
    query_rejected("n=x&u=https://example.com/&sd=101", "sd: out of range");
    query_rejected("n=x&u=https://example.com/&e=86400001", "e: out of range");
    query_rejected("n=x&u=https://example.com/&h=yes", "h: must be 0, 1 or a boolean");
    query_rejected("n=x&u=https://example.com/&d=a.com,b%20c.com", "d: not a domain");
    query_rejected("n=x&u=https://example.com/&p=%7B%7D", "p: expected p.<key>=<value>");
    query_rejected("n=x&u=https://example.com/&props=x", "p: expected p.<key>=<value>");

    query_rejected("n=x&u=https://example.com/&p.a=1&p.a=2", "p: duplicate key");
    query_rejected("n=x&u=https://example.com/&p.a=x%09", "p: control character in value");
}

Test(event_parse_query, limits)
{
    char param[32];
    /* 30 vs 31 props */
    for (int total = 30; total <= 31; total++) {
        sb_reset();
        sb_add("n=x&u=https://example.com/");
        for (int i = 0; i < total; i++) {
            str_format(param, sizeof param, "&p.k%d=%d", i, i);
            sb_add(param);
        }
        if (total == 30) {
            query_ok(sb);
            cr_assert_eq(ev.nprops, 30);
        } else {
            query_ok(sb);
            cr_assert_eq(ev.nprops, 30);
            cr_assert_eq(ev.props_dropped, 1);
        }
    }
    /* 64 vs 65 parameters */
    for (int total = 64; total <= 65; total++) {
        sb_reset();
        sb_add("n=x&u=https://example.com/");
        for (int i = 2; i < total; i++) {
            str_format(param, sizeof param, "&x%d=1", i);
            sb_add(param);
        }
        if (total == 64)
            query_ok(sb);
        else
            query_rejected(sb, "too many fields");
    }
    /* 120 vs 121 byte name, counted after decoding */
    sb_reset();
    sb_add("u=https://example.com/&n=");
    sb_rep("%41", 120);
    query_ok(sb);
    cr_assert_eq(strlen(ev.name), 120);
    sb_add("A");
    query_rejected(sb, "n: too long");
    /* 2000 vs 2001 byte URL */
    sb_reset();
    sb_add("n=x&u=https://example.com/");
    sb_rep("a", 1980);
    query_ok(sb);
    cr_assert_eq(strlen(ev.url), 2000);
    sb_add("a");
    query_rejected(sb, "u: too long");
    sb_rep("a", 50000);
    query_rejected(sb, "u: too long");
    /* prop key 64 vs 65, value 256 vs 257 (and far beyond the buffer) */
    sb_reset();
    sb_add("n=x&u=https://example.com/&p.");
    sb_rep("k", 64);
    sb_add("=");
    sb_rep("v", 256);
    query_ok(sb);
    cr_assert_eq(strlen(ev.props[0].key), 64);
    cr_assert_eq(strlen(ev.props[0].value), 256);
    sb_add("v");
    query_rejected(sb, "p: value too long");
    sb_rep("v", 5000);
    query_rejected(sb, "p: value too long");
    sb_reset();
    sb_add("n=x&u=https://example.com/&p.");
    sb_rep("k", 65);
    sb_add("=v");
    query_rejected(sb, "p: key too long");
    sb_reset();
    sb_add("n=x&u=https://example.com/&p.");
    sb_rep("k", 500);
    sb_add("=v");
    query_rejected(sb, "p: key too long");
}

Test(event_parse_query, reasons_never_echo_input)
{
    static const char *const bad[] = {
        "n=SECRET&u=ftp%3A%2F%2FSECRET",
        "n=x&u=https://example.com/SECRET&w=SECRET",
        "n=x&u=https://example.com/&p.SECRET=%ZZ",
        "n=SECRET&n=SECRET",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        cr_assert_not(pq(bad[i]), "accepted: %s", bad[i]);
        cr_assert_null(strstr(reason, "SECRET"), "reason echoes input: %s", reason);
    }
}
