/* target_event_parse.c - fuzz targets event_parse_json and event_parse_query.
 *
 * A body or pixel query either is rejected with a fixed, short reason, or
 * parses to an event whose every field is NUL-terminated within its slot,
 * clean UTF-8 and within its documented range; that event, written back as
 * a JSON body (plain, or with every character \u-escaped and the long
 * member names) and as a pixel query (percent-encoded, spaces as '+' or
 * %20), must parse to the same event through both front ends. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "event_parse.h"
#include "harness.h"
#include "url.h"
#include "util.h"

/* A growing text buffer for re-encodings (overflow is reported, not
 * silently cut). */
struct sbuf {
    char *p;
    size_t len, cap;
    bool overflow;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->overflow || n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_num(struct sbuf *b, long long v)
{
    char num[24];
    str_format(num, sizeof num, "%lld", v);
    sb_str(b, num);
}

/* ---- event_parse_json / event_parse_query ------------------------------- */

static bool domain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c >= 0x80;
}

void fuzz_check_raw_event(const char *t, const struct raw_event *ev)
{
    char host[EV_HOST_MAX];

    CHECK(t, fuzz_fits(ev->name, sizeof ev->name) && ev->name[0] != '\0');
    CHECK(t, fuzz_clean_text(ev->name));
    CHECK(t, fuzz_fits(ev->url, sizeof ev->url) && ev->url[0] != '\0' && fuzz_clean_text(ev->url));
    CHECK(t, url_host(ev->url, strlen(ev->url), host));
    CHECK(t, fuzz_fits(ev->domain, sizeof ev->domain) && ev->domain[0] != '\0');
    CHECK(t, ev->ndomains >= 1 && ev->ndomains <= EVENT_DOMAINS_MAX);
    CHECK(t, strcmp(ev->domain, ev->domains[0]) == 0);
    for (size_t i = 0; i < ev->ndomains; i++) {
        const char *d = ev->domains[i];
        CHECK(t, fuzz_fits(d, EV_SITE_MAX) && d[0] != '\0' && utf8_valid(d, strlen(d)));
        for (const char *p = d; *p; p++)
            CHECK(t, domain_byte((unsigned char)*p));
        for (size_t j = 0; j < i; j++)
            CHECK(t, strcmp(ev->domains[j], d) != 0);
    }
    CHECK(t, fuzz_fits(ev->referrer, sizeof ev->referrer) && fuzz_clean_text(ev->referrer));
    CHECK(t, ev->screen_width == -1 ||
                 (ev->screen_width >= 0 && ev->screen_width <= EVENT_SCREEN_MAX));
    CHECK(t, ev->scroll_depth == -1 || (ev->scroll_depth >= 0 && ev->scroll_depth <= 100));
    CHECK(t, ev->engaged_ms == -1 || (ev->engaged_ms >= 0 && ev->engaged_ms <= EVENT_ENGAGED_MAX));
    CHECK(t, ev->nprops <= EV_PROPS_MAX);
    for (size_t i = 0; i < ev->nprops; i++) {
        const struct event_prop *p = &ev->props[i];
        CHECK(t, fuzz_fits(p->key, sizeof p->key) && p->key[0] != '\0' && fuzz_clean_text(p->key));
        CHECK(t, fuzz_fits(p->value, sizeof p->value) && p->value[0] != '\0');
        CHECK(t, fuzz_clean_text(p->value));
        for (size_t j = 0; j < i; j++)
            CHECK(t, strcmp(ev->props[j].key, p->key) != 0);
    }
}

/* The first field in which two parsed events differ, or NULL. */
static const char *raw_event_diff(const struct raw_event *a, const struct raw_event *b,
                                  bool with_domain)
{
    if (strcmp(a->name, b->name) != 0)
        return "n";
    if (strcmp(a->url, b->url) != 0)
        return "u";
    if (with_domain && a->ndomains != b->ndomains)
        return "d (count)";
    for (size_t i = 0; with_domain && i < a->ndomains; i++)
        if (strcmp(a->domains[i], b->domains[i]) != 0)
            return "d";
    if (strcmp(a->referrer, b->referrer) != 0)
        return "r";
    if (a->screen_width != b->screen_width)
        return "w";
    if (a->hash_mode != b->hash_mode)
        return "h";
    if (a->interactive != b->interactive)
        return "i";
    if (a->scroll_depth != b->scroll_depth)
        return "sd";
    if (a->engaged_ms != b->engaged_ms)
        return "e";
    if (a->nprops != b->nprops)
        return "p (count)";
    for (size_t i = 0; i < a->nprops; i++)
        if (strcmp(a->props[i].key, b->props[i].key) != 0 ||
            strcmp(a->props[i].value, b->props[i].value) != 0)
            return "p";
    return NULL;
}

/* Decode one UTF-8 character of valid text; *n gets its length. */
static unsigned utf8_next(const char *s, size_t *n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *n = 1;
        return u[0];
    }
    size_t k = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : 2;
    unsigned cp = u[0] & (0x7fu >> k);
    for (size_t i = 1; i < k; i++)
        cp = (cp << 6) | (u[i] & 0x3fu);
    *n = k;
    return cp;
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A JSON string; with `escape_all` every character but [A-Za-z0-9] is
 * written as \uXXXX (surrogate pairs above U+FFFF, hex case alternating),
 * which exercises the parser's escape decoding. */
static void json_put_string(struct sbuf *b, const char *s, bool escape_all)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; s[i];) {
        unsigned char c = (unsigned char)s[i];
        if (!escape_all || is_alnum(c)) {
            if (c == '"' || c == '\\')
                sb_put(b, "\\", 1);
            sb_put(b, s + i, 1);
            i++;
            continue;
        }
        size_t n;
        unsigned cp = utf8_next(s + i, &n);
        unsigned units[2] = {cp, 0};
        size_t nunits = 1;
        if (cp >= 0x10000) {
            units[0] = 0xd800 + ((cp - 0x10000) >> 10);
            units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            nunits = 2;
        }
        for (size_t u = 0; u < nunits; u++) {
            char esc[8];
            str_format(esc, sizeof esc, (i & 1) ? "\\u%04X" : "\\u%04x", units[u]);
            sb_str(b, esc);
        }
        i += n;
    }
    sb_put(b, "\"", 1);
}

/* Percent-encode everything but unreserved bytes; spaces as '+' or %20. */
static void query_put(struct sbuf *b, const char *s, bool plus)
{
    static const char hex_upper[] = "0123456789ABCDEF", hex_lower[] = "0123456789abcdef";
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            sb_put(b, s + i, 1);
        } else if (c == ' ' && plus) {
            sb_put(b, "+", 1);
        } else {
            const char *hex = (i & 1) ? hex_lower : hex_upper;
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_put(b, esc, 3);
        }
    }
}

/* The "d" to send so that the parser's normalisation ("www." and a
 * trailing dot removed from each listed site) gives back the event's
 * sites, comma-separated; false when one cannot fit. */
#define DOMAINS_TEXT (EVENT_DOMAINS_MAX * (EV_SITE_MAX + 6))
static bool domain_to_send(const struct raw_event *ev, char out[DOMAINS_TEXT])
{
    bool exact = true;
    out[0] = '\0';
    for (size_t i = 0; i < ev->ndomains; i++) {
        const char *domain = ev->domains[i];
        size_t len = strlen(domain), used = strlen(out);
        bool www = len >= 4 && strncmp(domain, "www.", 4) == 0;
        bool dot = len > 0 && domain[len - 1] == '.';
        char one[EV_SITE_MAX + 8];
        if (!str_format(one, sizeof one, "%s%s%s", www ? "www." : "", domain, dot ? "." : "") ||
            strlen(one) >= EV_SITE_MAX) {
            exact = false;
            str_copy(one, sizeof one, domain, len);
        }
        str_format(out + used, DOMAINS_TEXT - used, "%s%s", i ? "," : "", one);
    }
    return exact;
}

static void build_json(struct sbuf *b, const struct raw_event *ev, const char *domain,
                       bool variant)
{
    sb_str(b, "{");
    sb_str(b, variant ? "\"name\":" : "\"n\":");
    json_put_string(b, ev->name, variant);
    sb_str(b, variant ? ",\"url\":" : ", \"u\" : ");
    json_put_string(b, ev->url, variant);
    sb_str(b, variant ? ",\"domain\":" : ",\"d\":");
    json_put_string(b, domain, variant);
    if (ev->referrer[0]) {
        sb_str(b, variant ? ",\"referrer\":" : ",\"r\":");
        json_put_string(b, ev->referrer, variant);
    } else {
        sb_str(b, ",\"r\":null");
    }
    if (ev->screen_width >= 0) {
        sb_str(b, variant ? ",\"screen_width\":" : ",\"w\":");
        sb_num(b, ev->screen_width);
    }
    sb_str(b, ev->hash_mode ? ",\"h\":true" : (variant ? ",\"h\":0" : ",\"h\":false"));
    sb_str(b, ev->interactive ? "" : (variant ? ",\"interactive\":false" : ",\"i\":false"));
    if (ev->scroll_depth >= 0) {
        sb_str(b, ",\"sd\":");
        sb_num(b, ev->scroll_depth);
    }
    if (ev->engaged_ms >= 0) {
        sb_str(b, ",\"e\":");
        sb_num(b, ev->engaged_ms);
    }
    sb_str(b, ",\"x-unknown\":[1,\"two\",null]");
    if (ev->nprops > 0) {
        sb_str(b, variant ? ",\"props\":{" : ",\"p\":{");
        for (size_t i = 0; i < ev->nprops; i++) {
            if (i)
                sb_str(b, ",");
            json_put_string(b, ev->props[i].key, variant);
            sb_str(b, ":");
            json_put_string(b, ev->props[i].value, variant);
        }
        sb_str(b, "}");
    }
    sb_str(b, "}\n");
}

static void build_query(struct sbuf *b, const struct raw_event *ev, const char *domain,
                        bool plus)
{
    sb_str(b, "n=");
    query_put(b, ev->name, plus);
    sb_str(b, "&u=");
    query_put(b, ev->url, plus);
    sb_str(b, "&&d=");
    query_put(b, domain, plus);
    if (ev->referrer[0]) {
        sb_str(b, "&r=");
        query_put(b, ev->referrer, plus);
    }
    if (ev->screen_width >= 0) {
        sb_str(b, "&w=");
        sb_num(b, ev->screen_width);
    }
    sb_str(b, ev->hash_mode ? "&h=1" : "&h=");
    sb_str(b, ev->interactive ? "" : "&i=false");
    if (ev->scroll_depth >= 0) {
        sb_str(b, "&sd=");
        sb_num(b, ev->scroll_depth);
    }
    if (ev->engaged_ms >= 0) {
        sb_str(b, "&e=");
        sb_num(b, ev->engaged_ms);
    }
    sb_str(b, "&x_unknown=1");
    for (size_t i = 0; i < ev->nprops; i++) {
        sb_str(b, "&p.");
        query_put(b, ev->props[i].key, plus);
        sb_str(b, "=");
        query_put(b, ev->props[i].value, plus);
    }
}

/* A parsed event, written back as a JSON body and as a pixel query, must
 * parse to the same event through both front ends. */
static void check_reencode(const char *t, const struct raw_event *ev, bool variant)
{
    static char text[1 << 17];
    static struct raw_event again;
    static char domain[DOMAINS_TEXT];
    char reason[REASON_BUF];
    bool exact = domain_to_send(ev, domain);

    struct sbuf b = {text, 0, sizeof text, false};
    build_json(&b, ev, domain, variant);
    CHECK(t, !b.overflow);
    fuzz_reason_prepare(reason);
    CHECKF(t, event_parse_json(text, b.len, &again, reason, REASON_LEN),
           "its JSON re-encoding is rejected: %s", reason);
    const char *diff = raw_event_diff(ev, &again, exact);
    CHECKF(t, diff == NULL, "its JSON re-encoding parses to a different %s", diff);

    b = (struct sbuf){text, 0, sizeof text, false};
    build_query(&b, ev, domain, variant);
    CHECK(t, !b.overflow);
    fuzz_reason_prepare(reason);
    CHECKF(t, event_parse_query(text, b.len, &again, reason, REASON_LEN),
           "its query re-encoding is rejected: %s", reason);
    diff = raw_event_diff(ev, &again, exact);
    CHECKF(t, diff == NULL, "its query re-encoding parses to a different %s", diff);
}

static struct reason_set json_reasons, query_reasons;

int fuzz_event_parse_json(const uint8_t *data, size_t size)
{
    static const char t[] = "event_parse_json";
    static struct raw_event ev;
    char reason[REASON_BUF];

    fuzz_reason_prepare(reason);
    if (!event_parse_json((const char *)data, size, &ev, reason, REASON_LEN)) {
        fuzz_check_reason(t, &json_reasons, reason);
        return 0;
    }
    fuzz_reason_canary(t, reason);
    fuzz_check_raw_event(t, &ev);
    check_reencode(t, &ev, size & 1);
    return 0;
}

int fuzz_event_parse_query(const uint8_t *data, size_t size)
{
    static const char t[] = "event_parse_query";
    static struct raw_event ev;
    char reason[REASON_BUF];

    fuzz_reason_prepare(reason);
    if (!event_parse_query((const char *)data, size, &ev, reason, REASON_LEN)) {
        fuzz_check_reason(t, &query_reasons, reason);
        return 0;
    }
    fuzz_reason_canary(t, reason);
    fuzz_check_raw_event(t, &ev);
    check_reencode(t, &ev, size & 1);
    return 0;
}
