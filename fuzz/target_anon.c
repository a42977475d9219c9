/* target_anon.c - fuzz target anon: client addresses and proxy headers
 * (collector/anon.c), which come straight from the client.
 *
 * A parsed address is a clean AF_INET / AF_INET6 value that formats and
 * parses back to itself, and truncates to exactly its prefix. The client
 * address behind trusted proxies is the peer when the peer is untrusted,
 * and once the walk found an untrusted hop, nothing the client writes to
 * the left of the proxies' entries can change it. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anon.h"
#include "check.h"
#include "config.h"
#include "harness.h"
#include "util.h"

static struct anon_cidr_list *anon_trusted;

static void anon_setup(void)
{
    static char nets[][24] = {"10.0.0.0/8", "::1", "fd00::/8", "192.0.2.1",
                              "::ffff:172.16.0.0/108"};
    static char *items[ARRAY_LEN(nets)];
    char err[128];
    if (anon_trusted)
        return;
    for (size_t i = 0; i < ARRAY_LEN(nets); i++)
        items[i] = nets[i];
    struct cfg_list list = {ARRAY_LEN(nets), items};
    anon_trusted = anon_cidr_list_new(&list, err, sizeof err);
    if (!anon_trusted) {
        fprintf(stderr, "fuzz anon: %s\n", err);
        abort();
    }
}

static bool ip_equal(const struct client_ip *a, const struct client_ip *b)
{
    return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

static void check_ip(const char *t, const struct client_ip *ip)
{
    CHECK(t, ip->family == AF_INET || ip->family == AF_INET6);
    if (ip->family == AF_INET) {
        static const uint8_t zero[12];
        CHECK(t, memcmp(ip->addr + 4, zero, 12) == 0);
    } else {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        CHECKF(t, memcmp(ip->addr, mapped, 12) != 0, "a v4-mapped address stays IPv6");
    }
}

/* A parsed address formats and parses back to itself; truncation zeroes
 * exactly the bits past the prefix and is idempotent. */
static void check_ip_roundtrip(const char *t, const struct client_ip *ip, int v4_prefix,
                               int v6_prefix)
{
    char text[ANON_IP_STRLEN];
    struct client_ip again, cut, cut2;
    check_ip(t, ip);
    CHECK(t, anon_ip_format(ip, text, sizeof text));
    CHECK(t, anon_ip_parse(text, strlen(text), &again) && ip_equal(ip, &again));
    anon_truncate(ip, v4_prefix, v6_prefix, &cut);
    check_ip(t, &cut);
    int bits = ip->family == AF_INET ? 32 : 128, prefix = ip->family == AF_INET ? v4_prefix
                                                                                : v6_prefix;
    for (int b = 0; b < bits; b++) {
        int bit_in = (ip->addr[b / 8] >> (7 - b % 8)) & 1;
        int bit_out = (cut.addr[b / 8] >> (7 - b % 8)) & 1;
        CHECKF(t, b < prefix ? bit_out == bit_in : bit_out == 0,
               "truncation to /%d is wrong at bit %d", prefix, b);
    }
    anon_truncate(&cut, v4_prefix, v6_prefix, &cut2);
    CHECK(t, ip_equal(&cut, &cut2));
    CHECK(t, anon_ip_format(&cut, text, sizeof text));
}

/* Byte 0: bits 0-1 the peer (trusted v4, untrusted v4, trusted v6,
 * untrusted v6), bit 2 the header (X-Forwarded-For or Forwarded), bits 3-7
 * the truncation prefixes. The rest: the client's part of the header, a
 * newline, the proxies' part. */
int fuzz_anon(const uint8_t *data, size_t size)
{
    static const char t[] = "anon";
    static const char *const peers[] = {"10.1.2.3", "203.0.113.9", "::1", "2001:db8::9"};
    static char *joined, *right;
    static size_t cap;
    struct client_ip peer, ip, out, again;

    if (size == 0)
        return 0;
    anon_setup();
    unsigned flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int v4_prefix = (int)(flags >> 3), v6_prefix = (int)(flags >> 3) * 4 + 4;

    /* the whole text as one address */
    if (anon_ip_parse(text, len, &ip))
        check_ip_roundtrip(t, &ip, v4_prefix, v6_prefix);
    else
        CHECK(t, ip.family == 0);

    if (len + 3 > cap) {
        cap = len + 3;
        joined = xrealloc(joined, cap);
        right = xrealloc(right, cap);
    }
    const char *nl = memchr(text, '\n', len);
    size_t left_len = nl ? (size_t)(nl - text) : 0;
    const char *proxies = nl ? nl + 1 : text;
    size_t right_len = len - (size_t)(proxies - text);
    memcpy(right, proxies, right_len);
    right[right_len] = '\0'; /* a NUL inside ends the header early, as a C string */

    CHECK(t, anon_ip_parse(peers[flags & 3], strlen(peers[flags & 3]), &peer));
    bool is_forwarded = flags & 4;
    const char *xff = is_forwarded ? NULL : right, *fwd = is_forwarded ? right : NULL;
    CHECK(t, anon_client_ip(&peer, anon_trusted, xff, fwd, &out));
    check_ip(t, &out);
    if (!anon_cidr_contains(anon_trusted, &peer)) {
        CHECKF(t, ip_equal(&out, &peer), "headers are believed from an untrusted peer");
        return 0;
    }
    check_ip_roundtrip(t, &out, v4_prefix, v6_prefix);

    /* An untrusted hop is the client: whatever the client wrote to the
     * left of the proxies' part cannot change it, quotes included (a comma
     * always separates Forwarded elements, so an unbalanced quote in the
     * proxies' part never reaches into the client's: issue 13). */
    if (!ip_equal(&out, &peer) && !anon_cidr_contains(anon_trusted, &out) && nl != NULL) {
        memcpy(joined, text, left_len);
        joined[left_len] = ',';
        memcpy(joined + left_len + 1, proxies, right_len);
        joined[left_len + 1 + right_len] = '\0';
        const char *xff2 = is_forwarded ? NULL : joined, *fwd2 = is_forwarded ? joined : NULL;
        if (strlen(joined) == left_len + 1 + strlen(right)) { /* no NUL on the left */
            CHECK(t, anon_client_ip(&peer, anon_trusted, xff2, fwd2, &again));
            CHECKF(t, ip_equal(&out, &again),
                   "what the client put left of the proxies' entries changes the client IP");
        }
    }
    return 0;
}

void fuzz_anon_free(void)
{
    anon_cidr_list_free(anon_trusted);
    anon_trusted = NULL;
}
