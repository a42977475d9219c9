/* url.c - page URL and referrer normalisation (privacy invariant P8).
 *
 * Reduces what the tracker reports as location.href and document.referrer
 * to what analytics needs: host, path, campaign fields, and the referrer's
 * host. It must never let a query parameter through that is neither a
 * campaign parameter nor operator-allowlisted, never keep more of a
 * referrer than its host, and never quote a URL in a reason (reasons are
 * sent to clients and counted).
 *
 * It works on slices and writes into caller-owned fixed buffers: no
 * allocation. It is not a general URL parser: only absolute http(s) URLs of
 * the shape browsers report are accepted. */
#include "url.h"

#include "ctl_scan.h"
#include "text_rule.h"
#include "util.h"

#include <string.h>
#include <strings.h>

enum split_status { SPLIT_OK, SPLIT_NOT_HTTP, SPLIT_BAD };

/* An absolute http(s) URL cut into its host (raw, without userinfo and
 * port) and the rest (path, query, fragment). */
struct url_parts {
    const char *host;
    size_t host_len;
    const char *rest;
    size_t rest_len;
};

static bool is_host_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c >= 0x80;
}

static bool is_ipv6_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
           c == ':' || c == '.';
}

static void set_reason(char *reason, size_t reasonlen, const char *why)
{
    if (reason != NULL && reasonlen > 0)
        str_copy(reason, reasonlen, why, strnlen(why, reasonlen - 1));
}

/* Length of a leading "http://" or "https://" in any case, or 0. */
static size_t http_scheme_len(const char *url, size_t len)
{
    /* c | 0x20 folds exactly the two cases of a letter onto its lower case */
    if (len < 7 || (url[0] | 0x20) != 'h' || (url[1] | 0x20) != 't' ||
        (url[2] | 0x20) != 't' || (url[3] | 0x20) != 'p')
        return 0;
    size_t i = (url[4] | 0x20) == 's' ? 5 : 4;
    return len >= i + 3 && memcmp(url + i, "://", 3) == 0 ? i + 3 : 0;
}

static enum split_status split_url(const char *url, size_t len, struct url_parts *parts,
                                   const char **why)
{
    size_t i = http_scheme_len(url, len);
    if (i == 0) {
        *why = "not an http(s) URL";
        return SPLIT_NOT_HTTP;
    }
    if (ctl_scan(url, len, false)) {
        *why = "control character in URL";
        return SPLIT_BAD;
    }

    /* One pass over the authority: where it ends, where the userinfo ends
     * (at its last '@'), and whether it holds a '\' (WHATWG reads it as
     * '/', a naive reader as part of the userinfo: browsers never report
     * one here, so it is refused, not guessed). */
    size_t host_start = i;
    bool backslash = false;
    for (; i < len; i++) {
        char c = url[i];
        if (c == '/' || c == '?' || c == '#')
            break;
        if (c == '@')
            host_start = i + 1;
        backslash |= c == '\\';
    }
    size_t auth_end = i;
    if (backslash) {
        *why = "bad host";
        return SPLIT_BAD;
    }

    size_t host_end, port_start;
    if (host_start < auth_end && url[host_start] == '[') {
        const char *close = memchr(url + host_start, ']', auth_end - host_start);
        if (close == NULL) {
            *why = "bad host";
            return SPLIT_BAD;
        }
        host_end = (size_t)(close - url) + 1;
        for (size_t k = host_start + 1; k < host_end - 1; k++) {
            if (!is_ipv6_byte((unsigned char)url[k])) {
                *why = "bad host";
                return SPLIT_BAD;
            }
        }
        if (host_end - host_start < 3) {
            *why = "bad host";
            return SPLIT_BAD;
        }
        if (host_end < auth_end && url[host_end] != ':') {
            *why = "bad host";
            return SPLIT_BAD;
        }
        port_start = host_end < auth_end ? host_end + 1 : auth_end;
    } else {
        /* The host up to the port, checked byte by byte on the way: an
         * empty label ("..") and, for UTF-8 validation, any non-ASCII. */
        bool non_ascii = false, empty_label = false;
        for (host_end = host_start; host_end < auth_end && url[host_end] != ':'; host_end++) {
            unsigned char c = (unsigned char)url[host_end];
            if (!is_host_byte(c)) {
                *why = "bad host";
                return SPLIT_BAD;
            }
            non_ascii |= c >= 0x80;
            empty_label |= c == '.' && host_end > host_start && url[host_end - 1] == '.';
        }
        port_start = host_end < auth_end ? host_end + 1 : auth_end;
        /* one trailing dot names the same host */
        if (host_end > host_start && url[host_end - 1] == '.')
            host_end--;
        if (host_end == host_start ||
            (non_ascii && !utf8_valid(url + host_start, host_end - host_start))) {
            *why = host_end == host_start ? "missing host" : "bad host";
            return SPLIT_BAD;
        }
        /* an empty label (".a", "a..b", "a..") names no host; a ".." that
         * only the dropped trailing dot made leaves a trailing '.' */
        if (url[host_start] == '.' || url[host_end - 1] == '.' || empty_label) {
            *why = "bad host";
            return SPLIT_BAD;
        }
    }

    /* The port is dropped, but it must be a port: up to 5 digits, <= 65535,
     * or empty ("example.com:" is the default port). */
    if (port_start < auth_end) {
        long long port;
        if (!safe_strtoll_n(url + port_start, auth_end - port_start, 0, 65535, &port) ||
            url[port_start] == '+' || url[port_start] == '-') {
            *why = "bad port";
            return SPLIT_BAD;
        }
    }

    parts->host = url + host_start;
    parts->host_len = host_end - host_start;
    parts->rest = url + auth_end;
    parts->rest_len = len - auth_end;
    return SPLIT_OK;
}

static bool host_copy_lower(char out[EV_HOST_MAX], const char *host, size_t len)
{
    if (len >= EV_HOST_MAX) {
        out[0] = '\0';
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[len] = '\0';
    return true;
}

bool url_host(const char *url, size_t len, char out[EV_HOST_MAX])
{
    struct url_parts parts;
    const char *why;
    out[0] = '\0';
    if (split_url(url, len, &parts, &why) != SPLIT_OK)
        return false;
    return host_copy_lower(out, parts.host, parts.host_len);
}

/* ---- query parameters -------------------------------------------------- */

long url_decode(const char *s, size_t len, char *dst, size_t cap, bool *full)
{
    size_t n = 0;
    *full = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_digit_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_digit_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == cap) {
            *full = true;
            break;
        }
        dst[n++] = c;
    }
    return (long)n;
}

/* Decode one campaign value into dst[EV_UTM_MAX]: cut on a UTF-8 boundary,
 * and leave dst empty when the value is malformed, not UTF-8 or holds a
 * character the text rule refuses (text_rule.h: controls, bidi). */
static void campaign_decode(char dst[EV_UTM_MAX], const char *value, size_t len)
{
    char decoded[EV_UTM_MAX + 4];
    bool full;
    long n = url_decode(value, len, decoded, sizeof decoded, &full);
    dst[0] = '\0';
    if (n <= 0)
        return;
    size_t keep = (size_t)n;
    if (keep > EV_UTM_MAX - 1) {
        keep = EV_UTM_MAX - 1;
        while (keep > 0 && ((unsigned char)decoded[keep] & 0xC0) == 0x80)
            keep--;
    }
    if (!utf8_valid(decoded, keep) || text_rule_refuses(decoded, keep))
        return;
    memcpy(dst, decoded, keep);
    dst[keep] = '\0';
}

/* Bounded append into the result path. */
struct path_writer {
    char *buf;
    size_t len;
    bool overflow;
};

static void path_append(struct path_writer *w, const char *s, size_t len)
{
    if (w->overflow || len >= EV_PATH_MAX - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, len);
    w->len += len;
    w->buf[w->len] = '\0';
}

/* Fallbacks for utm_source, in Plausible's order of preference. */
struct campaign_fallback {
    char source[EV_UTM_MAX];
    char ref[EV_UTM_MAX];
};

/* Handle one "name=value" query parameter: lift campaign values, keep an
 * allowlisted parameter, drop everything else. */
static void query_param(const char *param, size_t len, const struct cfg_list *allowlist,
                        struct url_result *out, struct campaign_fallback *fb,
                        struct path_writer *w, bool *first_kept)
{
    const char *eq = memchr(param, '=', len);
    size_t name_len = eq ? (size_t)(eq - param) : len;
    const char *value = eq ? eq + 1 : param + len;
    size_t value_len = eq ? len - name_len - 1 : 0;

    char name[256];
    bool full;
    long n = url_decode(param, name_len, name, sizeof name - 1, &full);
    if (n <= 0 || full)
        return; /* no parameter we know has an empty, overlong or malformed name */
    name[n] = '\0';

    static const struct {
        const char *name;
        size_t offset;
    } campaign[] = {
        {"utm_source", offsetof(struct url_result, utm_source)},
        {"utm_medium", offsetof(struct url_result, utm_medium)},
        {"utm_campaign", offsetof(struct url_result, utm_campaign)},
        {"utm_term", offsetof(struct url_result, utm_term)},
        {"utm_content", offsetof(struct url_result, utm_content)},
    };
    for (size_t i = 0; i < ARRAY_LEN(campaign); i++) {
        if (strcasecmp(name, campaign[i].name) == 0) {
            char *dst = (char *)out + campaign[i].offset;
            if (dst[0] == '\0')
                campaign_decode(dst, value, value_len);
            return; /* never kept in the path */
        }
    }
    if (strcasecmp(name, "source") == 0 && fb->source[0] == '\0')
        campaign_decode(fb->source, value, value_len);
    else if (strcasecmp(name, "ref") == 0 && fb->ref[0] == '\0')
        campaign_decode(fb->ref, value, value_len);

    if (allowlist != NULL &&
        (cfg_list_contains(allowlist, name) || cfg_list_contains(allowlist, "*"))) {
        path_append(w, *first_kept ? "?" : "&", 1);
        path_append(w, param, len);
        *first_kept = false;
    }
}

bool url_normalise(const char *url, size_t len, bool hash_mode,
                   const struct cfg_list *query_allowlist, struct url_result *out,
                   char *reason, size_t reasonlen)
{
    struct url_parts parts;
    const char *why = "bad URL";

    /* Strings, not arrays: only what precedes each NUL is ever read. */
    out->host[0] = out->path[0] = '\0';
    out->utm_source[0] = out->utm_medium[0] = out->utm_campaign[0] = '\0';
    out->utm_term[0] = out->utm_content[0] = '\0';
    if (split_url(url, len, &parts, &why) != SPLIT_OK) {
        set_reason(reason, reasonlen, why);
        return false;
    }
    if (!host_copy_lower(out->host, parts.host, parts.host_len)) {
        set_reason(reason, reasonlen, "host too long");
        return false;
    }

    const char *rest = parts.rest, *end = parts.rest + parts.rest_len;
    const char *hash = memchr(rest, '#', parts.rest_len);
    const char *query_end = hash ? hash : end;
    const char *query = memchr(rest, '?', (size_t)(query_end - rest));
    const char *path_end = query ? query : query_end;

    struct path_writer w = {out->path, 0, false};
    if (path_end == rest)
        path_append(&w, "/", 1);
    else
        path_append(&w, rest, (size_t)(path_end - rest));

    struct campaign_fallback fb;
    fb.source[0] = fb.ref[0] = '\0';
    if (query != NULL) {
        bool first_kept = true;
        const char *p = query + 1;
        while (p < query_end) {
            const char *amp = memchr(p, '&', (size_t)(query_end - p));
            const char *param_end = amp ? amp : query_end;
            if (param_end > p)
                query_param(p, (size_t)(param_end - p), query_allowlist, out, &fb, &w,
                            &first_kept);
            p = param_end + 1;
        }
    }
    if (out->utm_source[0] == '\0') {
        const char *fallback = fb.source[0] ? fb.source : fb.ref;
        memcpy(out->utm_source, fallback, strlen(fallback) + 1);
    }

    if (hash_mode && hash != NULL) {
        const char *frag_end = memchr(hash, '?', (size_t)(end - hash));
        if (frag_end == NULL)
            frag_end = end;
        if (frag_end - hash > 1)
            path_append(&w, hash, (size_t)(frag_end - hash));
    }

    if (w.overflow) {
        set_reason(reason, reasonlen, "path too long");
        return false;
    }
    return true;
}

/* ---- referrers --------------------------------------------------------- */

static const char *strip_www(const char *host, size_t *len)
{
    if (*len > 4 && strncasecmp(host, "www.", 4) == 0) {
        *len -= 4;
        return host + 4;
    }
    return host;
}

bool url_referrer_host(const char *referrer, size_t len, const char *page_host,
                       char out[EV_HOST_MAX])
{
    struct url_parts parts;
    const char *why;

    out[0] = '\0';
    if (len == 0)
        return true;
    switch (split_url(referrer, len, &parts, &why)) {
    case SPLIT_NOT_HTTP:
        return true;
    case SPLIT_BAD:
        return false;
    case SPLIT_OK:
        break;
    }

    /* A host too long to be a page host is no referrer host either, with
     * or without its "www." (the two must agree: fuzz target url). */
    if (parts.host_len >= EV_HOST_MAX)
        return false;
    size_t host_len = parts.host_len;
    const char *host = strip_www(parts.host, &host_len);
    if (page_host != NULL && page_host[0] != '\0') {
        size_t page_len = strlen(page_host);
        const char *page = strip_www(page_host, &page_len);
        if (page_len == host_len && strncasecmp(page, host, host_len) == 0)
            return true;
    }
    return host_copy_lower(out, host, host_len);
}
