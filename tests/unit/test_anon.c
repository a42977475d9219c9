/* test_anon.c - client IP parsing, truncation, trusted proxies and wiping
 * (privacy invariant P1). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "anon.h"

static struct client_ip ip_from(const char *text)
{
    struct client_ip ip;
    cr_assert(anon_ip_parse(text, strlen(text), &ip), "parse '%s'", text);
    return ip;
}

/* Format an address for comparisons. */
static const char *fmt(const struct client_ip *ip)
{
    static char buf[ANON_IP_STRLEN];
    cr_assert(anon_ip_format(ip, buf, sizeof buf));
    return buf;
}

static const char *truncated(const char *text, int v4, int v6)
{
    struct client_ip ip = ip_from(text), t;
    anon_truncate(&ip, v4, v6, &t);
    return fmt(&t);
}

static struct anon_cidr_list *list_of(char **items, size_t n)
{
    struct cfg_list cl = {n, items};
    char err[256] = "";
    struct anon_cidr_list *l = anon_cidr_list_new(&cl, err, sizeof err);
    cr_assert_not_null(l, "list: %s", err);
    return l;
}

/* ---- parsing ---- */

Test(anon_parse, good_forms)
{
    struct client_ip ip;
    const struct {
        const char *in, *out;
        int family;
    } cases[] = {
        {"203.0.113.7", "203.0.113.7", AF_INET},
        {"203.0.113.7:8080", "203.0.113.7", AF_INET},
        {"0.0.0.0", "0.0.0.0", AF_INET},
        {"2001:db8::1", "2001:db8::1", AF_INET6},
        {"[2001:db8::1]", "2001:db8::1", AF_INET6},
        {"[2001:db8::1]:4711", "2001:db8::1", AF_INET6},
        {"[2001:db8::1]:_hidden", "2001:db8::1", AF_INET6},
        {"::1", "::1", AF_INET6},
        {"::ffff:203.0.113.7", "203.0.113.7", AF_INET},
        {"[::ffff:198.51.100.1]:443", "198.51.100.1", AF_INET},
        {"::ffff:cb00:7107", "203.0.113.7", AF_INET},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert(anon_ip_parse(cases[i].in, strlen(cases[i].in), &ip), "%s", cases[i].in);
        cr_assert_eq(ip.family, cases[i].family, "%s", cases[i].in);
        cr_assert_str_eq(fmt(&ip), cases[i].out);
    }
    /* v4 leaves the rest of addr zero. */
    ip = ip_from("::ffff:203.0.113.7");
    static const uint8_t zero[12] = {0};
    cr_assert_eq(memcmp(ip.addr + 4, zero, 12), 0);
}

Test(anon_parse, slice_without_nul)
{
    struct client_ip ip;
    const char *hdr = "198.51.100.9, 10.0.0.1";
    cr_assert(anon_ip_parse(hdr, 12, &ip));
    cr_assert_str_eq(fmt(&ip), "198.51.100.9");
    cr_assert_not(anon_ip_parse(hdr, 13, &ip)); /* includes the comma */
}

Test(anon_parse, bad_forms)
{
    const char *bad[] = {
        "", "unknown", "_hidden", "localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1",
        "01.2.3.4", "1.2.3.4:", "1.2.3.4:99999", "1.2.3.4:8a", "1.2.3.4:_", " 1.2.3.4",
        "1.2.3.4 ", "[1.2.3.4]", "[2001:db8::1", "2001:db8::1]", "[2001:db8::1]x",
        "[2001:db8::1]:", "[]", "fe80::1%eth0", "2001:db8:::1", "\"1.2.3.4\"",
        "2001:db8::1:2:3:4:5:6:7:8", "1.2.3.4/24",
        "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client_ip ip;
        memset(&ip, 0xAB, sizeof ip);
        cr_assert_not(anon_ip_parse(bad[i], strlen(bad[i]), &ip), "accepted '%s'", bad[i]);
        cr_assert_eq(ip.family, 0, "'%s' left data behind", bad[i]);
    }
    struct client_ip ip;
    cr_assert_not(anon_ip_parse("1.2.3.4\0", 8, &ip), "embedded NUL");
    cr_assert_not(anon_ip_parse(NULL, 0, &ip));
}

Test(anon_sockaddr, v4_v6_mapped_and_other)
{
    struct client_ip ip;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, "198.51.100.77", &sin.sin_addr);
    cr_assert(anon_ip_from_sockaddr((struct sockaddr *)&sin, &ip));
    cr_assert_eq(ip.family, AF_INET);
    cr_assert_str_eq(fmt(&ip), "198.51.100.77");

    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1::5", &sin6.sin6_addr);
    cr_assert(anon_ip_from_sockaddr((struct sockaddr *)&sin6, &ip));
    cr_assert_eq(ip.family, AF_INET6);
    cr_assert_str_eq(fmt(&ip), "2001:db8:1::5");

    inet_pton(AF_INET6, "::ffff:192.0.2.33", &sin6.sin6_addr);
    cr_assert(anon_ip_from_sockaddr((struct sockaddr *)&sin6, &ip));
    cr_assert_eq(ip.family, AF_INET);
    cr_assert_str_eq(fmt(&ip), "192.0.2.33");

    struct sockaddr un = {.sa_family = AF_UNIX};
    cr_assert_not(anon_ip_from_sockaddr(&un, &ip));
    cr_assert_eq(ip.family, 0);
    cr_assert_not(anon_ip_from_sockaddr(NULL, &ip));
}

/* ---- truncation ---- */

Test(anon_truncate, ipv4_prefixes)
{
    cr_assert_str_eq(truncated("203.0.113.77", 24, 48), "203.0.113.0");
    cr_assert_str_eq(truncated("203.0.113.77", 16, 48), "203.0.0.0");
    cr_assert_str_eq(truncated("203.0.113.77", 0, 48), "0.0.0.0");
    cr_assert_str_eq(truncated("203.0.113.77", 32, 48), "203.0.113.77");
    cr_assert_str_eq(truncated("203.0.113.255", 25, 48), "203.0.113.128");
    cr_assert_str_eq(truncated("203.0.113.255", 30, 48), "203.0.113.252");
    /* Out of range prefixes are clamped. */
    cr_assert_str_eq(truncated("203.0.113.77", 99, 48), "203.0.113.77");
    cr_assert_str_eq(truncated("203.0.113.77", -5, 48), "0.0.0.0");
}

Test(anon_truncate, ipv6_prefixes)
{
    const char *a = "2001:db8:abcd:1234:5678:9abc:def0:1234";
    cr_assert_str_eq(truncated(a, 24, 48), "2001:db8:abcd::");
    cr_assert_str_eq(truncated(a, 24, 64), "2001:db8:abcd:1234::");
    cr_assert_str_eq(truncated(a, 24, 128), a);
    cr_assert_str_eq(truncated(a, 24, 0), "::");
    cr_assert_str_eq(truncated(a, 24, 52), "2001:db8:abcd:1000::");
    cr_assert_str_eq(truncated(a, 24, 200), a);
}

Test(anon_truncate, mapped_is_v4_and_in_place)
{
    /* A raw mapped address (not through the parser) uses the v4 prefix. */
    struct client_ip ip = {.family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, "::ffff:198.51.100.200", ip.addr), 1);
    anon_truncate(&ip, 24, 48, &ip);
    cr_assert_eq(ip.family, AF_INET);
    cr_assert_str_eq(fmt(&ip), "198.51.100.0");
}

Test(anon_format, buffers_and_bad_family)
{
    struct client_ip ip = ip_from("2001:db8:abcd:1234:5678:9abc:def0:1234");
    char small[8] = "junk";
    cr_assert_not(anon_ip_format(&ip, small, sizeof small));
    cr_assert_str_eq(small, "");
    struct client_ip none = {0};
    char buf[ANON_IP_STRLEN] = "junk";
    cr_assert_not(anon_ip_format(&none, buf, sizeof buf));
    cr_assert_str_eq(buf, "");
    /* The longest form fits ANON_IP_STRLEN. */
    struct client_ip longest = ip_from("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    cr_assert(anon_ip_format(&longest, buf, sizeof buf));
}

/* ---- trusted proxy lists ---- */

Test(anon_cidr, contains)
{
    char *items[] = {"10.0.0.0/8", "::1", "127.0.0.1", "fd00::/8", "192.168.1.7/24",
                           "::ffff:172.16.0.0/108"};
    struct anon_cidr_list *l = list_of(items, 6);
    cr_assert_eq(anon_cidr_list_len(l), 6);
    struct {
        const char *ip;
        bool in;
    } cases[] = {
        {"10.0.0.1", true},         {"10.255.255.255", true}, {"11.0.0.0", false},
        {"9.255.255.255", false},   {"127.0.0.1", true},      {"127.0.0.2", false},
        {"::1", true},              {"::2", false},           {"fd12:3456::1", true},
        {"fe80::1", false},         {"192.168.1.200", true},  {"192.168.2.1", false},
        {"172.16.5.5", true},       {"172.31.255.255", true}, {"172.32.0.0", false},
        {"::ffff:10.1.2.3", true},  {"2001:db8::1", false},   {"203.0.113.7", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct client_ip ip = ip_from(cases[i].ip);
        cr_assert_eq(anon_cidr_contains(l, &ip), cases[i].in, "%s", cases[i].ip);
    }
    anon_cidr_list_free(l);
}

Test(anon_cidr, families_do_not_mix_and_zero_prefix)
{
    char *items[] = {"::/0"};
    struct anon_cidr_list *l = list_of(items, 1);
    struct client_ip v4 = ip_from("203.0.113.7"), v6 = ip_from("2001:db8::1");
    cr_assert_not(anon_cidr_contains(l, &v4));
    cr_assert(anon_cidr_contains(l, &v6));
    anon_cidr_list_free(l);

    char *items4[] = {"0.0.0.0/0"};
    l = list_of(items4, 1);
    cr_assert(anon_cidr_contains(l, &v4));
    cr_assert_not(anon_cidr_contains(l, &v6));
    anon_cidr_list_free(l);
}

Test(anon_cidr, empty_and_null)
{
    struct client_ip ip = ip_from("10.0.0.1");
    struct cfg_list empty = {0, NULL};
    char err[64];
    struct anon_cidr_list *l = anon_cidr_list_new(&empty, err, sizeof err);
    cr_assert_not_null(l);
    cr_assert_eq(anon_cidr_list_len(l), 0);
    cr_assert_not(anon_cidr_contains(l, &ip));
    anon_cidr_list_free(l);
    l = anon_cidr_list_new(NULL, err, sizeof err);
    cr_assert_not_null(l);
    anon_cidr_list_free(l);
    cr_assert_not(anon_cidr_contains(NULL, &ip));
    anon_cidr_list_free(NULL);
}

Test(anon_cidr, bad_items_named_in_err)
{
    char *bad[] = {"10.0.0.0/33", "::/129",    "10.0.0.0/", "10.0.0.0/-1", "10.0.0/8",
                         "example.com", "/8",        "fd00::/x",  "10.0.0.0/+8", "[::1]",
                         "1.2.3.4:80",  "10.0.0.0/8/8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *items[] = {"127.0.0.1", bad[i]};
        struct cfg_list cl = {2, items};
        char err[256] = "";
        struct anon_cidr_list *l = anon_cidr_list_new(&cl, err, sizeof err);
        cr_assert_null(l, "accepted '%s'", bad[i]);
        cr_assert_not_null(strstr(err, bad[i]), "err '%s' does not name '%s'", err, bad[i]);
    }
}

/* ---- the client behind proxies ---- */

static const char *client_of(const char *peer, struct anon_cidr_list *trusted,
                             const char *xff, const char *forwarded)
{
    struct client_ip p = ip_from(peer), out;
    cr_assert(anon_client_ip(&p, trusted, xff, forwarded, &out));
    return fmt(&out);
}

static char *proxies[] = {"10.0.0.0/8", "2001:db8:ffff::/48"};

Test(anon_client, untrusted_peer_ignores_headers)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    cr_assert_str_eq(client_of("198.51.100.9", l, "203.0.113.7", NULL), "198.51.100.9");
    cr_assert_str_eq(client_of("198.51.100.9", l, NULL, "for=203.0.113.7"), "198.51.100.9");
    anon_cidr_list_free(l);
    /* No trusted list at all (the default): headers never count. */
    cr_assert_str_eq(client_of("10.0.0.1", NULL, "203.0.113.7", NULL), "10.0.0.1");
    struct anon_cidr_list *empty = list_of(NULL, 0);
    cr_assert_str_eq(client_of("10.0.0.1", empty, "203.0.113.7", NULL), "10.0.0.1");
    anon_cidr_list_free(empty);
}

Test(anon_client, trusted_peer_takes_rightmost_untrusted_hop)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7", NULL), "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7, 10.1.1.1, 10.2.2.2", NULL),
                     "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, "  203.0.113.7 ,\t10.1.1.1 ", NULL),
                     "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7:51234", NULL), "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, "2001:db8:1::9, 2001:db8:ffff::1", NULL),
                     "2001:db8:1::9");
    cr_assert_str_eq(client_of("2001:db8:ffff::2", l, "[2001:db8:1::9]:443", NULL),
                     "2001:db8:1::9");
    cr_assert_str_eq(client_of("::ffff:10.0.0.1", l, "::ffff:203.0.113.7", NULL),
                     "203.0.113.7");
    anon_cidr_list_free(l);
}

Test(anon_client, forged_left_entries_are_never_used)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    /* The client sent "X-Forwarded-For: 192.0.2.66"; our proxy appended the
     * real address. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "192.0.2.66, 203.0.113.7", NULL), "203.0.113.7");
    /* A forged trusted-looking entry to the left changes nothing either. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "10.9.9.9, 203.0.113.7, 10.1.1.1", NULL),
                     "203.0.113.7");
    /* Garbage to the left of the real hop is never reached. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "\"junk, <script>, 203.0.113.7", NULL),
                     "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL,
                               "for=\"192.0.2.66, for=203.0.113.7;proto=https"),
                     "203.0.113.7");
    anon_cidr_list_free(l);
}

Test(anon_client, malformed_hop_stops_at_last_trusted)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    /* Malformed rightmost entry: nothing in the header is vouched for. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7, garbage", NULL), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7,", NULL), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, "unknown", NULL), "10.0.0.1");
    /* Malformed after a trusted hop: that trusted hop is the answer, never
     * the address further left. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "203.0.113.7, junk, 10.3.3.3", NULL), "10.3.3.3");
    /* All trusted: the leftmost (a trusted host itself). */
    cr_assert_str_eq(client_of("10.0.0.1", l, "10.4.4.4, 10.3.3.3", NULL), "10.4.4.4");
    /* Blank headers: the peer. */
    cr_assert_str_eq(client_of("10.0.0.1", l, "  ", NULL), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, "", ""), "10.0.0.1");
    anon_cidr_list_free(l);
}

Test(anon_client, hop_limit)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    /* 203.0.113.7 followed by 40 trusted hops: the walk gives up after
     * ANON_MAX_HOPS and answers the last trusted hop it accepted. */
    char xff[1024] = "203.0.113.7";
    size_t used = strlen(xff);
    for (int i = 1; i <= 40; i++)
        used += (size_t)snprintf(xff + used, sizeof xff - used, ", 10.0.0.%d", i);
    cr_assert_lt(used, sizeof xff);
    char expect[24];
    snprintf(expect, sizeof expect, "10.0.0.%d", 40 - ANON_MAX_HOPS + 1);
    cr_assert_str_eq(client_of("10.0.0.1", l, xff, NULL), expect);
    anon_cidr_list_free(l);
}

Test(anon_client, forwarded_header)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=\"[2001:db8::1]:4711\""), "2001:db8::1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "For=203.0.113.7;proto=http;by=10.0.0.1"),
                     "203.0.113.7");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL,
                               "for=192.0.2.43, for=\"[2001:db8:cafe::17]\";proto=https, "
                               "for=10.7.7.7"),
                     "2001:db8:cafe::17");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "proto=https; for=\"203.0.113.7:80\""),
                     "203.0.113.7");
    /* Escapes inside quoted strings. */
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "by=\"a\\\"b\";for=203.0.113.9"),
                     "203.0.113.9");
    /* A comma separates elements inside quotes too: the quoted string is
     * cut, the element is malformed, the walk stops at the proxy. */
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "by=\"a\\\"b,c\";for=203.0.113.9"),
                     "10.0.0.1");
    /* Given both, XFF is read (the collector passes only the header named
     * by proxy_header: enrich.c). */
    cr_assert_str_eq(client_of("10.0.0.1", l, "198.51.100.1", "for=203.0.113.7"),
                     "198.51.100.1");
    /* unknown / obfuscated / no for= / duplicate for= / unquoted v6 stop the
     * walk at the last trusted hop. */
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=unknown"), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=_hidden, for=10.5.5.5"), "10.5.5.5");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "proto=https"), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=1.2.3.4;for=203.0.113.7"), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=\"203.0.113.7"), "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=203.0.113.7 x"), "10.0.0.1");
    anon_cidr_list_free(l);
}

/* Issue 13 finding 6: the trusted proxy's element has a stray trailing
 * quote; the client wrote an element with an opening quote on its left.
 * Read with quotes honoured, the two joined into one element whose for=
 * was the client's. The proxy's element is malformed: its own address. */
Test(anon_client, forwarded_stray_quote_never_lets_a_client_value_through)
{
    struct anon_cidr_list *l = list_of(proxies, 2);
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=6.6.6.6;x=\", for=1.2.3.4\""),
                     "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=\"6.6.6.6, for=1.2.3.4\""),
                     "10.0.0.1");
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=6.6.6.6, for=1.2.3.4\""), "10.0.0.1");
    /* The same from a second trusted hop: the first trusted hop answers. */
    cr_assert_str_eq(client_of("10.0.0.1", l, NULL, "for=6.6.6.6;x=\", for=1.2.3.4\", for=10.9.9.9"),
                     "10.9.9.9");
    anon_cidr_list_free(l);
}

Test(anon_client, null_peer)
{
    struct client_ip out;
    memset(&out, 0x55, sizeof out);
    cr_assert_not(anon_client_ip(NULL, NULL, NULL, NULL, &out));
    cr_assert_eq(out.family, 0);
}

/* ---- wiping ---- */

Test(anon_wipe, zeroes_the_struct)
{
    struct client_ip ip = ip_from("2001:db8:abcd:1234:5678:9abc:def0:1234");
    struct client_ip zero;
    memset(&zero, 0, sizeof zero);
    cr_assert_neq(memcmp(&ip, &zero, sizeof ip), 0);
    anon_ip_wipe(&ip);
    cr_assert_eq(memcmp(&ip, &zero, sizeof ip), 0);
    anon_ip_wipe(NULL);
}
