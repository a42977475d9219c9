/* test_util.c - the bounded helpers every module relies on. */
#include <criterion/criterion.h>
#include <string.h>

#include "util.h"

Test(util, safe_strtoll_bounds_and_garbage)
{
    long long v = 7;
    cr_expect(safe_strtoll("42", 0, 100, &v) && v == 42);
    cr_expect(safe_strtoll("-5", -10, 10, &v) && v == -5);
    cr_expect(safe_strtoll("9223372036854775807", 0, INT64_MAX, &v) && v == INT64_MAX);
    cr_expect(safe_strtoll("-9223372036854775808", INT64_MIN, 0, &v) && v == INT64_MIN);
    v = 7;
    static const char *const bad[] = {"", "-", "+", "1x", " 1", "1 ", "101", "-11",
                                      "9223372036854775808", "99999999999999999999999", "0x10"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_expect_not(safe_strtoll(bad[i], -10, 100, &v), "'%s' accepted", bad[i]);
    cr_expect_eq(v, 7, "a refused parse leaves the output alone");
}

Test(util, utf8)
{
    cr_expect(utf8_valid("plain ascii", 11));
    cr_expect(utf8_valid("S\xc3\xa3o Paulo \xe2\x82\xac \xf0\x9f\x98\x80", 19));
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\x80",             /* stray continuation */
        "\xc3",             /* truncated */
        "\xf5\x80\x80\x80", /* invalid lead */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_expect_not(utf8_valid(bad[i], strlen(bad[i])), "case %zu accepted", i);
    cr_expect_not(utf8_valid("a\0b", 3), "NUL is refused");
    unsigned cp = 0;
    cr_expect_eq(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    cr_expect_eq(cp, 0x20AC);
    cr_expect_eq(utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp), 0);
}

Test(util, strings_and_hostport)
{
    char buf[4];
    cr_expect(str_copy(buf, sizeof buf, "abc", 3) && strcmp(buf, "abc") == 0);
    cr_expect_not(str_copy(buf, sizeof buf, "abcd", 4));
    cr_expect_str_eq(buf, "", "no partial copy");
    cr_expect_not(str_format(buf, sizeof buf, "%d", 12345));
    char host[64];
    int port = 0;
    cr_expect(hostport_split("127.0.0.1:8080", host, sizeof host, &port));
    cr_expect(strcmp(host, "127.0.0.1") == 0 && port == 8080);
    cr_expect(hostport_split("[::1]:443", host, sizeof host, &port));
    cr_expect(strcmp(host, "::1") == 0 && port == 443);
    static const char *const bad[] = {"nohost", ":80", "h:0", "h:65536", "h:x", "::1:80",
                                      "[::1]80", "[::1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        cr_expect_not(hostport_split(bad[i], host, sizeof host, &port), "'%s'", bad[i]);
    cr_expect_eq(hex_digit_value('f'), 15);
    cr_expect_eq(hex_digit_value('G'), -1);
}

Test(util, utc_day)
{
    char day[11];
    utc_day(0, day);
    cr_expect_str_eq(day, "1970-01-01");
    utc_day(1795564799, day); /* 2026-11-24T23:59:59Z */
    cr_expect_str_eq(day, "2026-11-24");
    utc_day(1795564800, day);
    cr_expect_str_eq(day, "2026-11-25");
}

Test(util, uint_to_dec)
{
    static const struct {
        uint64_t v;
        const char *text;
    } cases[] = {{0, "0"}, {9, "9"}, {10, "10"}, {1709251200, "1709251200"},
                 {UINT64_MAX, "18446744073709551615"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[24];
        char *end = uint_to_dec(buf, cases[i].v);
        cr_assert_eq((size_t)(end - buf), strlen(cases[i].text));
        *end = '\0';
        cr_assert_str_eq(buf, cases[i].text);
    }
}
