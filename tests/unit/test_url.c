/* test_url.c - page URL and referrer normalisation (collector/url.c),
 * privacy invariant P8: queries dropped except campaign and allowlisted
 * parameters, referrers reduced to their host. */
#include <criterion/criterion.h>
#include <string.h>

#include "text_rule.h"
#include "url.h"
#include "util.h"

static struct url_result res;
static char reason[128];

static bool norm_list(const char *url, bool hash_mode, const struct cfg_list *allow)
{
    reason[0] = '\0';
    return url_normalise(url, strlen(url), hash_mode, allow, &res, reason, sizeof reason);
}

static bool norm(const char *url)
{
    return norm_list(url, false, NULL);
}

static void assert_rejected(const char *url, const char *why)
{
    cr_assert_not(norm(url), "accepted: %s", url);
    cr_assert_str_eq(reason, why, "url %s", url);
}

Test(url, host_and_path)
{
    cr_assert(norm("https://example.com/blog/post"));
    cr_assert_str_eq(res.host, "example.com");
    cr_assert_str_eq(res.path, "/blog/post");
    cr_assert(norm("http://example.com"));
    cr_assert_str_eq(res.path, "/", "empty path becomes /");
    cr_assert(norm("https://example.com?x=1"));
    cr_assert_str_eq(res.path, "/");
    cr_assert(norm("https://example.com#top"));
    cr_assert_str_eq(res.path, "/");
    /* the path is kept as sent: no decoding, no dot-segment collapsing */
    cr_assert(norm("https://example.com/a/../b/%7Euser//x"));
    cr_assert_str_eq(res.path, "/a/../b/%7Euser//x");
}

Test(url, host_is_lowercased_and_www_kept)
{
    cr_assert(norm("HTTPS://WWW.Example.COM/Path"));
    cr_assert_str_eq(res.host, "www.example.com");
    cr_assert_str_eq(res.path, "/Path", "the path keeps its case");
    cr_assert(norm("https://example.com./"));
    cr_assert_str_eq(res.host, "example.com", "one trailing dot dropped");
}

Test(url, idn_hosts)
{
    cr_assert(norm("https://XN--BCHER-KVA.Example/"));
    cr_assert_str_eq(res.host, "xn--bcher-kva.example");
    cr_assert(norm("https://B\xc3\xbc" "cher.EXAMPLE/"));
    cr_assert_str_eq(res.host, "b\xc3\xbc" "cher.example", "only ASCII is lowercased");
    assert_rejected("https://b\xff" "cher.example/", "bad host");
}

Test(url, userinfo_and_port_are_dropped)
{
    cr_assert(norm("http://user:pass@Example.com:8080/x?secret=1"));
    cr_assert_str_eq(res.host, "example.com");
    cr_assert_str_eq(res.path, "/x");
    cr_assert_null(strstr(res.host, "user"));
    cr_assert(norm("http://a@b@host.example/"));
    cr_assert_str_eq(res.host, "host.example", "userinfo ends at the last @");
    cr_assert(norm("http://example.com:/"));
    cr_assert_str_eq(res.host, "example.com");
    cr_assert(norm("http://[::1]:3000/app"));
    cr_assert_str_eq(res.host, "[::1]");
    cr_assert_str_eq(res.path, "/app");
    cr_assert(norm("http://[2001:DB8::1]/"));
    cr_assert_str_eq(res.host, "[2001:db8::1]");
}

Test(url, rejections)
{
    assert_rejected("", "not an http(s) URL");
    assert_rejected("ftp://example.com/", "not an http(s) URL");
    assert_rejected("javascript:alert(1)", "not an http(s) URL");
    assert_rejected("example.com/page", "not an http(s) URL");
    assert_rejected("//example.com/page", "not an http(s) URL");
    assert_rejected("https://", "missing host");
    assert_rejected("https:///path", "missing host");
    assert_rejected("https://user@/path", "missing host");
    assert_rejected("https://exa mple.com/", "bad host");
    assert_rejected("https://ex<am>ple.com/", "bad host");
    assert_rejected("https://example.com\\@evil.com/", "bad host");
    assert_rejected("http://[::1/", "bad host");
    assert_rejected("http://[]/", "bad host");
    assert_rejected("http://[::1]x/", "bad host");
    assert_rejected("http://[::g]/", "bad host");
    assert_rejected("https://example.com:abc/", "bad port");
    assert_rejected("https://example.com:99999/", "bad port");
    assert_rejected("https://example.com:+80/", "bad port");
    assert_rejected("https://example.com:-1/", "bad port");
    assert_rejected("https://example.com/a\nb", "control character in URL");
    assert_rejected("https://example.com/a\x7f", "control character in URL");
    assert_rejected("https://example.com/#frag\t", "control character in URL");
}

Test(url, reason_never_quotes_the_url)
{
    cr_assert_not(norm("https://secret-host.example:bad/secret-path?token=abc"));
    cr_assert_null(strstr(reason, "secret"));
    cr_assert_null(strstr(reason, "token"));
    /* a NULL reason buffer is allowed */
    cr_assert_not(url_normalise("ftp://x", 7, false, NULL, &res, NULL, 0));
}

Test(url, host_and_path_limits)
{
    char url[2100], label[300];
    /* 253-byte host fits, 254 does not */
    memset(label, 'a', 253);
    label[253] = '\0';
    cr_assert(str_format(url, sizeof url, "https://%s/", label));
    cr_assert(norm(url), "%s", reason);
    cr_assert_eq(strlen(res.host), 253);
    label[253] = 'a';
    label[254] = '\0';
    cr_assert(str_format(url, sizeof url, "https://%s/", label));
    assert_rejected(url, "host too long");

    /* a 2000-byte path fits EV_PATH_MAX, 2001 does not */
    memcpy(url, "https://e.x", 11);
    memset(url + 11, 'p', 2000);
    url[11] = '/';
    url[2011] = '\0';
    cr_assert(norm(url), "%s", reason);
    cr_assert_eq(strlen(res.path), 2000);
    url[2011] = 'p';
    url[2012] = '\0';
    assert_rejected(url, "path too long");
}

Test(url, query_dropped_without_allowlist)
{
    cr_assert(norm("https://example.com/search?q=secret&email=a%40b.c&page=2"));
    cr_assert_str_eq(res.path, "/search");
    struct cfg_list empty = {0, NULL};
    cr_assert(norm_list("https://example.com/search?q=secret", false, &empty));
    cr_assert_str_eq(res.path, "/search");
}

Test(url, query_allowlist_keeps_in_order)
{
    char *names[] = {"page", "lang", "utm_source", "flag"};
    struct cfg_list allow = {4, names};
    cr_assert(norm_list("https://example.com/list?lang=de&token=s3cret&PAGE=2&&flag&"
                        "utm_source=x&lang=fr#frag",
                        false, &allow));
    cr_assert_str_eq(res.path, "/list?lang=de&PAGE=2&flag&lang=fr",
                     "kept byte-for-byte, in order; utm_* never kept");
    cr_assert_str_eq(res.utm_source, "x");
    cr_assert_null(strstr(res.path, "token"));
    /* nothing kept: no dangling '?' */
    cr_assert(norm_list("https://example.com/list?token=1", false, &allow));
    cr_assert_str_eq(res.path, "/list");
    /* percent-encoded names are matched decoded */
    cr_assert(norm_list("https://example.com/?pa%67e=3", false, &allow));
    cr_assert_str_eq(res.path, "/?pa%67e=3");
}

Test(url, query_allowlist_star_keeps_all_but_campaign)
{
    char *names[] = {"*"};
    struct cfg_list all = {1, names};
    cr_assert(norm_list("https://example.com/?a=1&utm_source=x&b&ref=r", false, &all));
    cr_assert_str_eq(res.path, "/?a=1&b&ref=r");
    cr_assert_str_eq(res.utm_source, "x");
}

Test(url, utm_extraction)
{
    cr_assert(norm("https://example.com/p?utm_source=news%20letter&utm_medium=e+mail&"
                   "utm_campaign=spring%2Fsale&utm_term=shoes&utm_content=hero&x=1"));
    cr_assert_str_eq(res.path, "/p");
    cr_assert_str_eq(res.utm_source, "news letter");
    cr_assert_str_eq(res.utm_medium, "e mail");
    cr_assert_str_eq(res.utm_campaign, "spring/sale");
    cr_assert_str_eq(res.utm_term, "shoes");
    cr_assert_str_eq(res.utm_content, "hero");

    cr_assert(norm("https://example.com/?UTM_SOURCE=Big&utm%5Fmedium=cpc"));
    cr_assert_str_eq(res.utm_source, "Big", "names are case-insensitive");
    cr_assert_str_eq(res.utm_medium, "cpc", "names are percent-decoded");

    cr_assert(norm("https://example.com/?utm_source=&utm_source=first&utm_source=second"));
    cr_assert_str_eq(res.utm_source, "first", "first non-empty occurrence wins");

    cr_assert(norm("https://example.com/?utm_source=%C3%BCber"));
    cr_assert_str_eq(res.utm_source, "\xc3\xbc" "ber");
}

Test(url, bad_campaign_values_are_ignored)
{
    cr_assert(norm("https://example.com/?utm_source=%FF&utm_medium=a%0Ab&utm_campaign=%zz&"
                   "utm_term=%00&utm_content=ok"));
    cr_assert_str_eq(res.utm_source, "", "not UTF-8");
    cr_assert_str_eq(res.utm_medium, "", "control character");
    cr_assert_str_eq(res.utm_campaign, "", "bad escape");
    cr_assert_str_eq(res.utm_term, "", "NUL");
    cr_assert_str_eq(res.utm_content, "ok");
}

Test(url, utm_truncated_on_utf8_boundary)
{
    char url[1200];
    size_t n = 0;
    const char *prefix = "https://example.com/?utm_campaign=";
    memcpy(url, prefix, strlen(prefix));
    n = strlen(prefix);
    memset(url + n, 'a', 254);
    n += 254;
    memcpy(url + n, "%C3%BC%C3%BC", 12); /* u-umlaut straddles byte 255 */
    n += 12;
    url[n] = '\0';
    cr_assert(norm(url));
    cr_assert_eq(strlen(res.utm_campaign), 254, "cut before the split character");
    cr_assert(utf8_valid(res.utm_campaign, strlen(res.utm_campaign)));

    n = strlen(prefix);
    memset(url + n, 'b', 600);
    url[n + 600] = '\0';
    cr_assert(norm(url));
    cr_assert_eq(strlen(res.utm_campaign), EV_UTM_MAX - 1);

    n = strlen(prefix);
    memset(url + n, 'c', 253);
    memcpy(url + n + 253, "%C3%BC", 6); /* ends exactly at 255 */
    url[n + 259] = '\0';
    cr_assert(norm(url));
    cr_assert_eq(strlen(res.utm_campaign), 255);
}

Test(url, source_and_ref_fallbacks)
{
    cr_assert(norm("https://example.com/?ref=producthunt"));
    cr_assert_str_eq(res.utm_source, "producthunt");
    cr_assert_str_eq(res.path, "/", "ref is dropped from the path");
    cr_assert(norm("https://example.com/?ref=b&source=a"));
    cr_assert_str_eq(res.utm_source, "a", "source is preferred over ref");
    cr_assert(norm("https://example.com/?source=a&utm_source=u&ref=b"));
    cr_assert_str_eq(res.utm_source, "u", "utm_source is preferred");
    cr_assert(norm("https://example.com/?utm_medium=m"));
    cr_assert_str_eq(res.utm_source, "");
}

Test(url, hash_mode)
{
    cr_assert(norm_list("https://example.com/app#/settings", false, NULL));
    cr_assert_str_eq(res.path, "/app", "fragment dropped without hash mode");
    cr_assert(norm_list("https://example.com/app#/settings", true, NULL));
    cr_assert_str_eq(res.path, "/app#/settings");
    cr_assert(norm_list("https://example.com/app#", true, NULL));
    cr_assert_str_eq(res.path, "/app", "empty fragment");
    cr_assert(norm_list("https://example.com/#/search?q=secret&utm_source=x", true, NULL));
    cr_assert_str_eq(res.path, "/#/search", "a hash route's query is dropped");
    cr_assert_str_eq(res.utm_source, "");

    char *names[] = {"page"};
    struct cfg_list allow = {1, names};
    cr_assert(norm_list("https://example.com/app?page=2&q=x&utm_medium=m#/x?y", true, &allow));
    cr_assert_str_eq(res.path, "/app?page=2#/x");
    cr_assert_str_eq(res.utm_medium, "m");
}

Test(url, host_helper)
{
    char host[EV_HOST_MAX];
    cr_assert(url_host("https://u:p@WWW.Example.com:443/x", 33, host));
    cr_assert_str_eq(host, "www.example.com");
    cr_assert_not(url_host("mailto:a@b.c", 12, host));
    cr_assert_str_eq(host, "");
    cr_assert_not(url_host("https://a b/", 12, host));
    cr_assert_str_eq(host, "");
}

Test(url, decode_helper)
{
    char out[16];
    bool full;
    cr_assert_eq(url_decode("%41+b%2b", 8, out, sizeof out, &full), 4);
    cr_assert(memcmp(out, "A b+", 4) == 0);
    cr_assert_not(full);
    cr_assert_eq(url_decode("%4", 2, out, sizeof out, &full), -1);
    cr_assert_eq(url_decode("a%zz", 4, out, sizeof out, &full), -1);
    cr_assert_eq(url_decode("%", 1, out, sizeof out, &full), -1);
    cr_assert_eq(url_decode("abcdef", 6, out, 4, &full), 4);
    cr_assert(full);
    cr_assert_eq(url_decode("abcd", 4, out, 4, &full), 4);
    cr_assert_not(full, "exactly fitting is not full");
}

/* ---- referrers --------------------------------------------------------- */

static char ref[EV_HOST_MAX];

static bool referrer(const char *r, const char *page_host)
{
    memset(ref, 'X', sizeof ref - 1);
    ref[sizeof ref - 1] = '\0';
    return url_referrer_host(r, strlen(r), page_host, ref);
}

Test(url, referrer_reduced_to_host)
{
    cr_assert(referrer("https://www.Google.com/search?q=secret#x", "example.com"));
    cr_assert_str_eq(ref, "google.com");
    cr_assert(referrer("https://u:p@news.ycombinator.com:443/item?id=1", "example.com"));
    cr_assert_str_eq(ref, "news.ycombinator.com");
    cr_assert(referrer("http://t.co", "example.com"));
    cr_assert_str_eq(ref, "t.co");
    cr_assert(referrer("https://www.www.example.org/", NULL));
    cr_assert_str_eq(ref, "www.example.org", "one www. stripped");
}

Test(url, referrer_empty_or_not_http)
{
    cr_assert(referrer("", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert(referrer("android-app://com.google.android.gm/", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert(referrer("about:blank", "example.com"));
    cr_assert_str_eq(ref, "");
}

Test(url, referrer_self_referral_dropped)
{
    cr_assert(referrer("https://example.com/other?x=1", "www.example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert(referrer("https://www.example.com/", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert(referrer("https://EXAMPLE.com:8443/", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert(referrer("https://blog.example.com/", "example.com"));
    cr_assert_str_eq(ref, "blog.example.com", "a subdomain is another host");
    cr_assert(referrer("https://example.com.evil.net/", "example.com"));
    cr_assert_str_eq(ref, "example.com.evil.net");
    cr_assert(referrer("https://example.com/", NULL));
    cr_assert_str_eq(ref, "example.com", "no page host: no self-referral check");
    cr_assert(referrer("https://example.com/", ""));
    cr_assert_str_eq(ref, "example.com");
}

Test(url, referrer_malformed)
{
    cr_assert_not(referrer("https://exa mple.com/", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert_not(referrer("http://", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert_not(referrer("https://example.com:port/", "example.com"));
    cr_assert_str_eq(ref, "");
    cr_assert_not(referrer("https://a.com/\r\nx", "example.com"));
    cr_assert_str_eq(ref, "");
}

/* Issue 13: control and bidirectional formatting characters (text_rule.h). */
Test(text_rule, refuses_controls_and_bidi_formatting)
{
    static const char *const refused[] = {
        "/a\x01", "/a\x7f", "/a\xc2\x85", "/a\xc2\x9f", "/a\xd8\x9c", "/a\xe2\x80\x8e",
        "/a\xe2\x80\x8f", "/a\xe2\x80\xaa", "/a\xe2\x80\xae", "/a\xe2\x81\xa6", "/a\xe2\x81\xa9",
        "\xe2\x80\xae" "cod.exe",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_expect(text_rule_refuses(refused[i], strlen(refused[i])), "case %zu", i);
    static const char *const kept[] = {
        "/plain", "/caf\xc3\xa9", "/\xe2\x80\x94 dash", "/\xe2\x80\xa9", "/\xe2\x81\xa0",
        "/%E2%80%AE", "/\xd8\xa7", "/\xc2\xa0", "",
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        cr_expect_not(text_rule_refuses(kept[i], strlen(kept[i])), "case %zu", i);
}

Test(text_rule, campaign_values_with_bidi_are_dropped)
{
    struct url_result r;
    char why[128];
    const char *u = "https://example.com/p?utm_source=%E2%80%AEevil&utm_medium=ok";
    cr_assert(url_normalise(u, strlen(u), false, NULL, &r, why, sizeof why));
    cr_expect_str_eq(r.utm_source, "");
    cr_expect_str_eq(r.utm_medium, "ok");
}
