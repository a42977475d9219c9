/* test_httpd_parse.c - the collector's request parser (collector/httpd_parse.c)
 * on its contract: what a request yields, where it ends when requests are
 * pipelined, and the status of every kind of hostile or malformed head
 * (request smuggling, folding, control characters, limits). The fuzz
 * target (fuzz/target_httpd.c) checks split invariance on top of this. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "httpd_parse.h"

#define MAX_HEAD 1024
#define MAX_BODY 256
#define MAX_WIRE (MAX_HEAD + 2 * MAX_BODY + 64)

static struct httpd_parser parser;
static struct httpd_request req;
static char buf[8192];
static size_t len, used;

static void setup(void)
{
    httpd_parser_init(&parser, MAX_HEAD, MAX_BODY, MAX_WIRE);
}

static void teardown(void)
{
    httpd_parser_free(&parser);
}

/* Parse `text` delivered whole. */
static enum httpd_parse_result parse(const char *text)
{
    len = strlen(text);
    cr_assert_lt(len, sizeof buf);
    memcpy(buf, text, len);
    return httpd_parse(&parser, buf, &len, &used, &req);
}

static void expect_error(const char *text, int status, const char *reason)
{
    httpd_parser_free(&parser);
    httpd_parser_init(&parser, MAX_HEAD, MAX_BODY, MAX_WIRE);
    enum httpd_parse_result r = parse(text);
    cr_expect_eq(r, HTTPD_PARSE_ERROR, "accepted (%d): %s", r, text);
    cr_expect_eq(parser.error_status, status, "%s: %d", text, parser.error_status);
    if (reason && parser.error_reason)
        cr_expect_str_eq(parser.error_reason, reason, "%s", text);
}

static bool span_is(const char *s, size_t n, const char *want)
{
    return s && n == strlen(want) && memcmp(s, want, n) == 0;
}

TestSuite(httpd_parse, .init = setup, .fini = teardown);

Test(httpd_parse, a_post_yields_target_headers_and_body)
{
    cr_assert_eq(parse("POST /api/event?x=1#frag HTTP/1.1\r\nHost: a\r\n"
                       "User-Agent:  Mozilla/5.0 (X11)  \r\nContent-Type: text/plain\r\n"
                       "DNT: 1\r\nContent-Length: 5\r\n\r\nhello"),
                 HTTPD_PARSE_DONE);
    cr_expect_eq(used, len);
    cr_expect_eq(req.method, HTTPD_POST);
    cr_expect_eq(req.version_minor, 1);
    cr_expect(req.keep_alive);
    cr_expect(span_is(req.path, req.path_len, "/api/event"));
    cr_expect(span_is(req.query, req.query_len, "x=1"));
    cr_expect_str_eq(req.header[HTTPD_H_USER_AGENT], "Mozilla/5.0 (X11)", "trimmed both ends");
    cr_expect_str_eq(req.header[HTTPD_H_CONTENT_TYPE], "text/plain");
    cr_expect_str_eq(req.header[HTTPD_H_DNT], "1");
    cr_expect_null(req.header[HTTPD_H_SEC_GPC]);
    cr_expect(span_is(req.body, req.body_len, "hello"));
}

Test(httpd_parse, an_empty_value_is_present_and_empty)
{
    cr_assert_eq(parse("GET / HTTP/1.1\r\nSec-GPC:\r\nDNT: \r\nHost: a\r\n\r\n"),
                 HTTPD_PARSE_DONE);
    cr_expect_str_eq(req.header[HTTPD_H_SEC_GPC], "");
    cr_expect_str_eq(req.header[HTTPD_H_DNT], "");
    cr_expect(span_is(req.query, req.query_len, "") == false && req.query == NULL);
    cr_expect_eq(req.body_len, 0);
}

Test(httpd_parse, pipelined_requests_end_where_the_next_begins)
{
    const char *first = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *second = "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
    char text[512];
    snprintf(text, sizeof text, "%s%s", first, second);
    cr_assert_eq(parse(text), HTTPD_PARSE_DONE);
    cr_expect_eq(used, strlen(first));
    cr_expect(span_is(req.path, req.path_len, "/a"));
    httpd_parser_next(&parser);
    memmove(buf, buf + used, len - used);
    len -= used;
    cr_assert_eq(httpd_parse(&parser, buf, &len, &used, &req), HTTPD_PARSE_DONE);
    cr_expect_eq(used, strlen(second));
    cr_expect_eq(req.method, HTTPD_POST);
    cr_expect(span_is(req.body, req.body_len, "hi"));
}

Test(httpd_parse, bytes_arriving_one_at_a_time_give_the_same_request)
{
    const char *text = "POST /api/event HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n"
                       "X-Forwarded-For: 10.0.0.2\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    size_t n = strlen(text);
    len = 0;
    enum httpd_parse_result r = HTTPD_PARSE_MORE;
    for (size_t i = 0; i < n && r == HTTPD_PARSE_MORE; i++) {
        buf[len++] = text[i];
        r = httpd_parse(&parser, buf, &len, &used, &req);
    }
    cr_assert_eq(r, HTTPD_PARSE_DONE);
    cr_expect(span_is(req.body, req.body_len, "abcde"), "chunked body decoded in place");
    cr_expect_str_eq(req.header[HTTPD_H_X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2");
}

Test(httpd_parse, absolute_form_targets_are_split_like_origin_form)
{
    cr_assert_eq(parse("GET http://example.com:8080/api/event?p=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
                 HTTPD_PARSE_DONE);
    cr_expect(span_is(req.path, req.path_len, "/api/event"));
    cr_expect(span_is(req.query, req.query_len, "p=1"));
    httpd_parser_next(&parser);
    cr_assert_eq(parse("GET http://[::1 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTPD_PARSE_DONE);
    cr_expect(span_is(req.path, req.path_len, "http://[::1"), "no path: its own path");
    httpd_parser_next(&parser);
    cr_assert_eq(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTPD_PARSE_DONE);
    cr_expect(span_is(req.path, req.path_len, "*"), "its own path: no route matches");
    cr_expect_eq(req.method, HTTPD_OPTIONS);
}

Test(httpd_parse, keep_alive_follows_version_and_connection)
{
    cr_assert_eq(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), HTTPD_PARSE_DONE);
    cr_expect(req.keep_alive);
    httpd_parser_next(&parser);
    cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n"), HTTPD_PARSE_DONE);
    cr_expect_not(req.keep_alive);
    /* Nothing may follow a request that closes the connection: llhttp
     * discards it (httpd.c closes the connection anyway). */
    httpd_parser_next(&parser);
    cr_expect_neq(parse("GET / HTTP/1.1\r\n\r\n"), HTTPD_PARSE_DONE);
    httpd_parser_free(&parser);
    httpd_parser_init(&parser, MAX_HEAD, MAX_BODY, MAX_WIRE);
    cr_assert_eq(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), HTTPD_PARSE_DONE);
    cr_expect_not(req.keep_alive);
}

Test(httpd_parse, an_upgrade_request_ends_the_connection)
{
    cr_assert_eq(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
                 HTTPD_PARSE_DONE);
    cr_expect_not(req.keep_alive);
}

Test(httpd_parse, expect_100_continue_is_reported_until_the_body_comes)
{
    cr_assert_eq(parse("POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
                 HTTPD_PARSE_MORE);
    cr_expect(parser.expect_continue);
    memcpy(buf + len, "abc", 3);
    len += 3;
    cr_assert_eq(httpd_parse(&parser, buf, &len, &used, &req), HTTPD_PARSE_DONE);
    cr_expect_not(parser.expect_continue);
    cr_expect(span_is(req.body, req.body_len, "abc"));
}

Test(httpd_parse, request_smuggling_is_refused)
{
    expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "0\r\n\r\n",
                 400, NULL);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                 400, NULL);
    expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
                 "bad Content-Length");
    expect_error("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400,
                 "bad Content-Length");
    expect_error("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length");
    expect_error("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, "bad Content-Length");
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, NULL);
    expect_error("POST / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc", 400, NULL);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
                 400, "bad chunk size");
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "ffffffffffffffffff\r\n",
                 400, NULL);
}

Test(httpd_parse, folding_and_control_characters_are_refused)
{
    expect_error("GET / HTTP/1.1\r\nUser-Agent: a\r\n folded\r\n\r\n", 400, NULL);
    expect_error("GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\x01\r\n\r\n", 400, NULL);
    expect_error("GET /a\tb HTTP/1.1\r\n\r\n", 400, NULL);
    expect_error("GET /a\x7f HTTP/1.1\r\n\r\n", 400, NULL);
    char nul[] = "GET / HTTP/1.1\r\nUser-Agent: a\0b\r\n\r\n";
    len = sizeof nul - 1;
    httpd_parser_free(&parser);
    httpd_parser_init(&parser, MAX_HEAD, MAX_BODY, MAX_WIRE);
    memcpy(buf, nul, len);
    cr_expect_eq(httpd_parse(&parser, buf, &len, &used, &req), HTTPD_PARSE_ERROR);
    cr_expect_eq(parser.error_status, 400);
}

Test(httpd_parse, versions_other_than_1_x_are_refused)
{
    expect_error("GET / HTTP/2.0\r\n\r\n", 400, NULL);
    expect_error("GET / HTTP/1.1x\r\n\r\n", 400, NULL);
    expect_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, NULL);
    expect_error("GET /\r\n\r\n", 400, NULL);
}

Test(httpd_parse, limits_give_431_and_413)
{
    char text[4096];
    int n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nUser-Agent: ");
    memset(text + n, 'a', MAX_HEAD);
    strcpy(text + n + MAX_HEAD, "\r\n\r\n");
    expect_error(text, 431, "header block too large");

    n = snprintf(text, sizeof text, "GET /");
    memset(text + n, 'p', MAX_HEAD);
    strcpy(text + n + MAX_HEAD, " HTTP/1.1\r\n\r\n");
    expect_error(text, 431, "header block too large");

    expect_error("POST / HTTP/1.1\r\nContent-Length: 257\r\n\r\n", 413, "body too large");

    /* Blanks before a value pass without a callback: a head of them is
     * cut where the request as sent passes its limit. */
    n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\nDNT:");
    memset(text + n, ' ', MAX_WIRE);
    text[n + MAX_WIRE] = '\0';
    expect_error(text, 413, "request too large");

    /* So is chunk framing: many empty-extension chunks of one byte. */
    n = snprintf(text, sizeof text, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    while (n < (int)sizeof text - 64)
        n += snprintf(text + n, sizeof text - (size_t)n, "1;aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n");
    expect_error(text, 413, NULL);
}

Test(httpd_parse, too_many_forwarding_lines_are_refused)
{
    char text[2048];
    int n = snprintf(text, sizeof text, "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= HTTPD_REPEAT_MAX; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "Forwarded: for=1.2.3.%d\r\n", i);
    snprintf(text + n, sizeof text - (size_t)n, "\r\n");
    expect_error(text, 400, "too many forwarding headers");
}

Test(httpd_parse, methods_map_to_their_names_and_unknown_ones_fail)
{
    static const struct {
        const char *line;
        enum httpd_method m;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", HTTPD_GET},         {"HEAD / HTTP/1.1\r\n\r\n", HTTPD_HEAD},
        {"OPTIONS / HTTP/1.1\r\n\r\n", HTTPD_OPTIONS}, {"PUT / HTTP/1.1\r\n\r\n", HTTPD_PUT},
        {"DELETE / HTTP/1.1\r\n\r\n", HTTPD_DELETE},   {"PATCH / HTTP/1.1\r\n\r\n", HTTPD_PATCH},
        {"PROPFIND / HTTP/1.1\r\n\r\n", HTTPD_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        httpd_parser_free(&parser);
        httpd_parser_init(&parser, MAX_HEAD, MAX_BODY, MAX_WIRE);
        cr_assert_eq(parse(cases[i].line), HTTPD_PARSE_DONE, "%s", cases[i].line);
        cr_expect_eq(req.method, cases[i].m, "%s", cases[i].line);
    }
    expect_error("BREW / HTTP/1.1\r\n\r\n", 400, NULL);
    expect_error("get / HTTP/1.1\r\n\r\n", 400, NULL);
}

/* X-Real-IP (proxy_header=x-real-ip): one address per request; a second
 * line makes it "" (the request then counts as the proxy's own). Other
 * nine-letter names starting with x are not it. */
Test(httpd_parse, x_real_ip_once_or_blank)
{
    cr_assert_eq(parse("GET / HTTP/1.1\r\nx-real-ip: 203.0.113.7\r\nX-Real-Ix: 1\r\n\r\n"),
                 HTTPD_PARSE_DONE);
    cr_expect_str_eq(req.header[HTTPD_H_X_REAL_IP], "203.0.113.7");
    cr_expect_null(req.header[HTTPD_H_FORWARDED]);
    httpd_parser_next(&parser);
    cr_assert_eq(parse("GET / HTTP/1.1\r\nX-Real-IP: 6.6.6.6\r\nX-Real-IP: 203.0.113.7\r\n"
                       "Forwarded: for=1.2.3.4\r\n\r\n"),
                 HTTPD_PARSE_DONE);
    cr_expect_str_eq(req.header[HTTPD_H_X_REAL_IP], "");
    cr_expect_str_eq(req.header[HTTPD_H_FORWARDED], "for=1.2.3.4");
}
