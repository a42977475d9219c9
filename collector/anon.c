/* anon.c - the client IP, in memory only (see anon.h).
 *
 * Finds the client address behind trusted proxies, truncates, formats and
 * wipes it. Never logs, stores or returns the IP in any other form; every
 * stack buffer that held address text or bytes is wiped before return. */
#include "anon.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Longest address text we accept, with brackets and port:
 * "[" + 45 + "]:" + 5 digits, with room to spare. */
#define ANON_TEXT_MAX 64

struct anon_cidr {
    struct client_ip net; /* host bits already zeroed */
    int prefix;           /* 0..32 for AF_INET, 0..128 for AF_INET6 */
};

struct anon_cidr_list {
    size_t n;
    struct anon_cidr *items;
};

/* A slice of a header: one hop of X-Forwarded-For or one Forwarded
 * element. */
struct hop_span {
    const char *s;
    size_t len;
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

void anon_ip_normalise(struct client_ip *ip)
{
    if (ip->family == AF_INET6 && memcmp(ip->addr, v4_mapped_prefix, 12) == 0) {
        uint8_t v4[4];
        memcpy(v4, ip->addr + 12, 4);
        memset(ip->addr, 0, sizeof ip->addr);
        memcpy(ip->addr, v4, 4);
        sodium_memzero(v4, sizeof v4);
        ip->family = AF_INET;
    } else if (ip->family == AF_INET) {
        memset(ip->addr + 4, 0, sizeof ip->addr - 4);
    }
}

void anon_ip_wipe(struct client_ip *ip)
{
    if (ip)
        sodium_memzero(ip, sizeof *ip);
}

bool anon_ip_from_sockaddr(const struct sockaddr *sa, struct client_ip *out)
{
    memset(out, 0, sizeof *out);
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        out->family = AF_INET;
        memcpy(out->addr, &sin->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        out->family = AF_INET6;
        memcpy(out->addr, &sin6->sin6_addr, 16);
        anon_ip_normalise(out);
        return true;
    }
    return false;
}

/* inet_pton on a slice, for exactly `family`. Wipes its text copy. */
static bool pton_slice(int family, const char *s, size_t len, struct client_ip *out)
{
    char text[ANON_TEXT_MAX];
    bool ok = false;
    if (len > 0 && str_copy(text, sizeof text, s, len) && memchr(s, '\0', len) == NULL) {
        memset(out, 0, sizeof *out);
        if (inet_pton(family, text, out->addr) == 1) {
            out->family = family;
            anon_ip_normalise(out);
            ok = true;
        }
    }
    sodium_memzero(text, sizeof text);
    if (!ok)
        memset(out, 0, sizeof *out);
    return ok;
}

/* A port after ':' in a proxy header: 1-5 digits up to 65535, or an
 * RFC 7239 obfuscated port "_" 1*(ALPHA / DIGIT / "." / "_" / "-"). */
static bool valid_port(const char *s, size_t len)
{
    if (len == 0)
        return false;
    if (s[0] == '_') {
        if (len < 2)
            return false;
        for (size_t i = 1; i < len; i++)
            if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
                return false;
        return true;
    }
    long long port;
    if (len > 5)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return false;
    return safe_strtoll_n(s, len, 0, 65535, &port);
}

bool anon_ip_parse(const char *s, size_t len, struct client_ip *out)
{
    memset(out, 0, sizeof *out);
    if (!s || len == 0 || len >= ANON_TEXT_MAX)
        return false;

    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        size_t inner = (size_t)(close - s) - 1;
        size_t rest = len - inner - 2;
        if (rest > 0 && (close[1] != ':' || !valid_port(close + 2, rest - 1)))
            return false;
        return pton_slice(AF_INET6, s + 1, inner, out);
    }

    size_t colons = 0, last_colon = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':') {
            colons++;
            last_colon = i;
        }
    if (colons == 0)
        return pton_slice(AF_INET, s, len, out);
    if (colons == 1) {
        if (!valid_port(s + last_colon + 1, len - last_colon - 1))
            return false;
        return pton_slice(AF_INET, s, last_colon, out);
    }
    return pton_slice(AF_INET6, s, len, out);
}

/* ---- trusted proxy networks ---- */

static int family_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

/* Zero every bit of addr beyond `prefix` (addr_bits total). */
static void mask_bits(uint8_t *addr, int addr_bits, int prefix)
{
    for (int byte = 0; byte < addr_bits / 8; byte++) {
        int keep = prefix - byte * 8;
        if (keep >= 8)
            continue;
        addr[byte] &= keep <= 0 ? 0 : (uint8_t)(0xFFu << (8 - keep));
    }
}

static bool prefix_matches(const uint8_t *net, const uint8_t *addr, int prefix)
{
    int full = prefix / 8, rem = prefix % 8;
    if (memcmp(net, addr, (size_t)full) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFFu << (8 - rem));
    return (net[full] & mask) == (addr[full] & mask);
}

static bool parse_cidr(const char *item, struct anon_cidr *out, const char **reason)
{
    size_t len = strlen(item);
    const char *slash = memchr(item, '/', len);
    size_t addr_len = slash ? (size_t)(slash - item) : len;
    int family = memchr(item, ':', addr_len) ? AF_INET6 : AF_INET;
    bool mapped_input;

    memset(out, 0, sizeof *out);
    if (addr_len == 0) {
        *reason = "missing address";
        return false;
    }
    /* Parse without normalising first, to know the written prefix's base. */
    char text[ANON_TEXT_MAX];
    if (!str_copy(text, sizeof text, item, addr_len) ||
        inet_pton(family, text, out->net.addr) != 1) {
        *reason = family == AF_INET6 ? "not an IPv6 address" : "not an IPv4 address";
        return false;
    }
    out->net.family = family;
    mapped_input = family == AF_INET6 && memcmp(out->net.addr, v4_mapped_prefix, 12) == 0;

    long long prefix = family_bits(family);
    if (slash && (!is_digit(slash[1]) || !safe_strtoll_n(slash + 1, len - addr_len - 1, 0, family_bits(family),
                                 &prefix))) {
        *reason = family == AF_INET6 ? "prefix must be 0..128" : "prefix must be 0..32";
        return false;
    }
    out->prefix = (int)prefix;
    if (mapped_input && out->prefix >= 96) {
        anon_ip_normalise(&out->net);
        out->prefix -= 96;
    }
    mask_bits(out->net.addr, family_bits(out->net.family), out->prefix);
    return true;
}

struct anon_cidr_list *anon_cidr_list_new(const struct cfg_list *items, char *err,
                                          size_t errlen)
{
    struct anon_cidr_list *list = xcalloc(1, sizeof *list);
    size_t n = items ? items->n : 0;
    if (n == 0)
        return list;
    list->items = xcalloc(n, sizeof *list->items);
    for (size_t i = 0; i < n; i++) {
        const char *reason = "invalid";
        if (!parse_cidr(items->items[i], &list->items[i], &reason)) {
            str_format(err, errlen, "trusted proxy '%s': %s", items->items[i], reason);
            anon_cidr_list_free(list);
            return NULL;
        }
        list->n++;
    }
    return list;
}

void anon_cidr_list_free(struct anon_cidr_list *list)
{
    if (!list)
        return;
    free(list->items);
    free(list);
}

size_t anon_cidr_list_len(const struct anon_cidr_list *list)
{
    return list ? list->n : 0;
}

bool anon_cidr_contains(const struct anon_cidr_list *list, const struct client_ip *ip)
{
    if (!list || !ip)
        return false;
    struct client_ip norm = *ip;
    anon_ip_normalise(&norm);
    bool found = false;
    for (size_t i = 0; i < list->n && !found; i++) {
        const struct anon_cidr *c = &list->items[i];
        found = c->net.family == norm.family &&
                prefix_matches(c->net.addr, norm.addr, c->prefix);
    }
    anon_ip_wipe(&norm);
    return found;
}

/* ---- proxy headers ---- */

static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && is_ows(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((*s)[*len - 1]))
        (*len)--;
}

static bool is_blank(const char *s)
{
    if (!s)
        return true;
    while (is_ows(*s))
        s++;
    return *s == '\0';
}

/* Walks a header's comma-separated elements from right to left. Every
 * comma separates, inside quotes too: no value Veil reads from Forwarded
 * (a node) can hold one, and honouring quotes would let one stray quote
 * in a proxy's element (`for=1.2.3.4"`) join it to a client-written
 * element on its left, whose for= would then be read. An element cut by
 * such a comma has an unbalanced quote and is malformed, which stops the
 * walk at the last trusted hop. Scanning from the right keeps the elements
 * that trusted proxies appended intact whatever the client put on the
 * left. (`quotes` is kept for a header that may one day need it.) */
struct hop_cursor {
    const char *header;
    size_t end;  /* the next element ends before header[end] */
    bool done;
    bool quotes; /* honour quoted strings (Forwarded) */
};

static bool hop_prev(struct hop_cursor *c, struct hop_span *span)
{
    if (c->done)
        return false;
    bool quoted = false;
    size_t i = c->end;
    for (; i > 0; i--) {
        char ch = c->header[i - 1];
        if (ch == ',' && !quoted)
            break;
        if (ch == '"' && c->quotes) {
            size_t backslashes = 0;
            while (backslashes < i - 1 && c->header[i - 2 - backslashes] == '\\')
                backslashes++;
            if (backslashes % 2 == 0)
                quoted = !quoted;
        }
    }
    span->s = c->header + i;
    span->len = c->end - i;
    if (i == 0)
        c->done = true;
    else
        c->end = i - 1;
    return true;
}

/* Extract the unquoted value of the single `for=` parameter of one RFC 7239
 * forwarded-element into out. False when there is none, more than one, or
 * the syntax is broken. */
static bool forwarded_for(const char *elem, size_t len, char *out, size_t outlen)
{
    size_t i = 0;
    bool found = false;
    while (i < len) {
        while (i < len && is_ows(elem[i]))
            i++;
        size_t name = i;
        while (i < len && elem[i] != '=' && elem[i] != ';')
            i++;
        if (i >= len || elem[i] != '=')
            return false;
        size_t name_len = i - name;
        while (name_len > 0 && is_ows(elem[name + name_len - 1]))
            name_len--;
        bool is_for = name_len == 3 && str_has_prefix_ci(elem + name, 3, "for");
        i++; /* '=' */
        while (i < len && is_ows(elem[i]))
            i++;

        size_t o = 0;
        if (i < len && elem[i] == '"') {
            bool closed = false;
            for (i++; i < len; i++) {
                char c = elem[i];
                if (c == '"') {
                    closed = true;
                    i++;
                    break;
                }
                if (c == '\\' && i + 1 < len)
                    c = elem[++i];
                if (is_for) {
                    if (o + 1 >= outlen)
                        return false;
                    out[o++] = c;
                }
            }
            if (!closed)
                return false;
        } else {
            for (; i < len && elem[i] != ';' && !is_ows(elem[i]); i++) {
                if (elem[i] == '"')
                    return false;
                if (is_for) {
                    if (o + 1 >= outlen)
                        return false;
                    out[o++] = elem[i];
                }
            }
        }
        if (is_for) {
            if (found || o == 0)
                return false;
            found = true;
            out[o] = '\0';
        }
        while (i < len && is_ows(elem[i]))
            i++;
        if (i < len) {
            if (elem[i] != ';')
                return false;
            i++;
        }
    }
    return found;
}

/* Parse one hop (an XFF item or a Forwarded element) into *out. */
static bool parse_hop(const struct hop_span *hop, bool is_forwarded, struct client_ip *out)
{
    const char *s = hop->s;
    size_t len = hop->len;
    trim_ows(&s, &len);
    if (!is_forwarded)
        return anon_ip_parse(s, len, out);

    char node[ANON_TEXT_MAX];
    bool ok = forwarded_for(s, len, node, sizeof node) &&
              anon_ip_parse(node, strlen(node), out);
    sodium_memzero(node, sizeof node);
    return ok;
}

bool anon_client_ip(const struct client_ip *peer, const struct anon_cidr_list *trusted,
                    const char *x_forwarded_for, const char *forwarded,
                    struct client_ip *out)
{
    if (!peer) {
        memset(out, 0, sizeof *out);
        return false;
    }
    struct client_ip last_good = *peer;
    anon_ip_normalise(&last_good);

    const char *header = NULL;
    bool is_forwarded = false;
    if (anon_cidr_contains(trusted, &last_good)) {
        if (!is_blank(x_forwarded_for)) {
            header = x_forwarded_for;
        } else if (!is_blank(forwarded)) {
            header = forwarded;
            is_forwarded = true;
        }
    }

    if (header) {
        struct hop_cursor cursor = {header, strlen(header), false, false};
        struct hop_span span;
        for (size_t hops = 0; hops < ANON_MAX_HOPS && hop_prev(&cursor, &span); hops++) {
            struct client_ip hop;
            if (!parse_hop(&span, is_forwarded, &hop))
                break;
            bool hop_trusted = anon_cidr_contains(trusted, &hop);
            last_good = hop;
            anon_ip_wipe(&hop);
            if (!hop_trusted)
                break;
        }
    }
    *out = last_good;
    anon_ip_wipe(&last_good);
    return true;
}

/* ---- truncation and formatting ---- */

void anon_truncate(const struct client_ip *ip, int ipv4_prefix, int ipv6_prefix,
                   struct client_ip *out)
{
    struct client_ip t = *ip;
    anon_ip_normalise(&t);
    if (t.family == AF_INET) {
        int p = ipv4_prefix < 0 ? 0 : ipv4_prefix > 32 ? 32 : ipv4_prefix;
        mask_bits(t.addr, 32, p);
    } else if (t.family == AF_INET6) {
        int p = ipv6_prefix < 0 ? 0 : ipv6_prefix > 128 ? 128 : ipv6_prefix;
        mask_bits(t.addr, 128, p);
    }
    *out = t;
    anon_ip_wipe(&t);
}

bool anon_ip_format(const struct client_ip *ip, char *out, size_t outlen)
{
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (ip->family != AF_INET && ip->family != AF_INET6)
        return false;
    if (outlen > (socklen_t)-1)
        outlen = (socklen_t)-1;
    struct client_ip norm = *ip;
    anon_ip_normalise(&norm);
    bool ok = inet_ntop(norm.family, norm.addr, out, (socklen_t)outlen) != NULL;
    anon_ip_wipe(&norm);
    if (!ok)
        out[0] = '\0';
    return ok;
}
