/* compat_umami.c - read Umami's tracker request (compat_umami.h).
 *
 * Must never keep Umami's distinct id, tag, title or language, never
 * accept an identify request, and never quote input in a reason. Umami's
 * nesting is fixed (body > payload > data), so the reader walks exactly
 * those levels; a data member that is itself a container is dropped (its
 * scalars only, deeper is refused), an unknown payload member may nest one
 * level of scalars. */
#include "compat_umami.h"

#include <string.h>

#include "json_scan.h"
#include "util.h"

#define VALUE_BUF (EVENT_URL_MAX + 1)
#define KEY_BUF 80
#define UUID_MAX 64

enum umami_type { TYPE_NONE, TYPE_EVENT, TYPE_IDENTIFY, TYPE_OTHER };

struct umami {
    struct json_cursor j;
    struct raw_event *out;
    enum umami_type type;
    char website[UUID_MAX + 1];
    size_t website_len;
    char hostname[EV_SITE_MAX];
    char url[EVENT_URL_MAX + 1];
    size_t url_len;
    bool has_payload, has_name;
};

static bool fail(struct umami *u, const char *why)
{
    return json_fail(&u->j, why);
}

static bool key_is(const char *key, size_t klen, const char *lit)
{
    return strlen(lit) == klen && memcmp(key, lit, klen) == 0;
}

/* A string member's value into dst[0..cap): false when not a string or
 * too long for it. */
static bool string_into(struct umami *u, const char *field, char *dst, size_t cap, size_t *len)
{
    char why[48];
    if (!json_peek(&u->j, '"')) {
        str_format(why, sizeof why, "%s: must be a string", field);
        return fail(u, why);
    }
    if (!json_string(&u->j, dst, cap, len))
        return false;
    if (*len >= cap) {
        str_format(why, sizeof why, "%s: too long", field);
        return fail(u, why);
    }
    dst[*len] = '\0';
    return true;
}

static bool read_data(struct umami *u, char *buf)
{
    bool more;
    if (!json_peek(&u->j, '{'))
        return fail(u, "data: must be an object");
    if (!json_open(&u->j, '{', &more))
        return false;
    while (more) {
        char key[KEY_BUF];
        size_t klen;
        struct json_value v;
        if (!json_key(&u->j, key, sizeof key, &klen))
            return false;
        if (klen > sizeof key)
            return fail(u, "data: key too long");
        if (json_is_container(&u->j)) {
            if (!json_skip_container(&u->j))
                return false;
            u->out->props_dropped++;
        } else {
            if (!json_scalar(&u->j, &v, buf, VALUE_BUF))
                return false;
            const char *text = v.s;
            size_t tlen = v.len;
            if (v.kind == JSON_TRUE || v.kind == JSON_FALSE) {
                text = v.kind == JSON_TRUE ? "true" : "false";
                tlen = strlen(text);
            }
            if (v.kind == JSON_NULL)
                u->out->props_dropped++;
            else if (tlen > VALUE_BUF)
                return fail(u, "data: value too long");
            else if (!raw_event_add_prop(u->out, "data", key, klen, text, tlen, u->j.reason,
                                         u->j.reasonlen))
                return false;
        }
        if (!json_next(&u->j, '}', &more))
            return false;
    }
    return true;
}

/* The payload's screen, "<width>x<height>". */
static bool read_screen(struct umami *u, char *buf)
{
    size_t len;
    if (!string_into(u, "screen", buf, 32, &len))
        return false;
    const char *x = memchr(buf, 'x', len);
    long long width;
    if (len == 0)
        return true;
    if (!x || !safe_strtoll_n(buf, (size_t)(x - buf), 0, EVENT_SCREEN_MAX, &width))
        return fail(u, "screen: must be <width>x<height>");
    u->out->screen_width = (long)width;
    return true;
}

static bool read_payload_member(struct umami *u, char *buf)
{
    char key[KEY_BUF];
    size_t klen, len;
    struct raw_event *out = u->out;
    if (!json_key(&u->j, key, sizeof key, &klen))
        return false;
    if (klen > sizeof key)
        klen = 0; /* an unknown member */
    if (json_peek(&u->j, 'n') && !key_is(key, klen, "website")) {
        struct json_value v;
        return json_scalar(&u->j, &v, NULL, 0); /* null: absent */
    }
    if (key_is(key, klen, "website"))
        return string_into(u, "website", u->website, sizeof u->website, &u->website_len);
    if (key_is(key, klen, "hostname")) {
        if (!string_into(u, "hostname", u->hostname, sizeof u->hostname, &len))
            return false;
        return len > 0 || fail(u, "hostname: empty");
    }
    if (key_is(key, klen, "url"))
        return string_into(u, "url", u->url, sizeof u->url, &u->url_len);
    if (key_is(key, klen, "referrer")) {
        if (!string_into(u, "referrer", buf, VALUE_BUF, &len))
            return false;
        if (len == 0 || buf[0] == '/')
            return true; /* a path: Umami's previous page, internal */
        return raw_event_set_referrer(out, "referrer", buf, len, u->j.reason, u->j.reasonlen);
    }
    if (key_is(key, klen, "name")) {
        if (!string_into(u, "name", buf, VALUE_BUF, &len))
            return false;
        u->has_name = true;
        return raw_event_set_name(out, "name", buf, len, u->j.reason, u->j.reasonlen);
    }
    if (key_is(key, klen, "screen"))
        return read_screen(u, buf);
    if (key_is(key, klen, "data"))
        return read_data(u, buf);
    /* title, language, tag, id and anything newer: read, never kept */
    if (json_is_container(&u->j))
        return json_skip_container(&u->j);
    struct json_value v;
    return json_scalar(&u->j, &v, NULL, 0);
}

static bool read_payload(struct umami *u, char *buf)
{
    bool more;
    if (u->has_payload)
        return fail(u, "duplicate field payload");
    u->has_payload = true;
    if (!json_peek(&u->j, '{'))
        return fail(u, "payload: must be an object");
    if (!json_open(&u->j, '{', &more))
        return false;
    while (more)
        if (!read_payload_member(u, buf) || !json_next(&u->j, '}', &more))
            return false;
    return true;
}

static bool read_type(struct umami *u, char *buf)
{
    size_t len;
    if (u->type != TYPE_NONE)
        return fail(u, "duplicate field type");
    if (!string_into(u, "type", buf, 16, &len))
        return false;
    u->type = key_is(buf, len, "event") ? TYPE_EVENT
              : key_is(buf, len, "identify") ? TYPE_IDENTIFY
                                             : TYPE_OTHER;
    return true;
}

static bool read_body(struct umami *u, const char *body, size_t len, char *buf)
{
    bool more;
    if (len == 0)
        return fail(u, "empty body");
    if (!json_body_ok(&u->j, body, len))
        return false;
    json_ws(&u->j);
    if (!json_peek(&u->j, '{'))
        return fail(u, "body is not a JSON object");
    if (!json_open(&u->j, '{', &more))
        return false;
    while (more) {
        char key[KEY_BUF];
        size_t klen;
        if (!json_key(&u->j, key, sizeof key, &klen))
            return false;
        bool ok;
        if (key_is(key, klen, "type"))
            ok = read_type(u, buf);
        else if (key_is(key, klen, "payload"))
            ok = read_payload(u, buf);
        else if (json_is_container(&u->j))
            ok = json_skip_container(&u->j);
        else {
            struct json_value v;
            ok = json_scalar(&u->j, &v, NULL, 0);
        }
        if (!ok || !json_next(&u->j, '}', &more))
            return false;
    }
    return json_at_end(&u->j);
}

/* The page: url as sent when absolute, else https://<hostname><url>. */
static bool set_page(struct umami *u, char *buf)
{
    if (u->url_len == 0)
        return fail(u, "missing field url");
    if (u->url[0] != '/')
        return raw_event_set_url(u->out, "url", u->url, u->url_len, u->j.reason, u->j.reasonlen);
    if (u->hostname[0] == '\0')
        return fail(u, "missing field hostname");
    if (!str_format(buf, VALUE_BUF, "https://%s%s", u->hostname, u->url))
        return fail(u, "url: too long");
    return raw_event_set_url(u->out, "url", buf, strlen(buf), u->j.reason, u->j.reasonlen);
}

enum compat_result compat_umami_parse(const char *body, size_t len,
                                      const struct cfg_list *website_ids,
                                      struct raw_event *out, char *reason, size_t reasonlen)
{
    static _Thread_local struct umami u; /* ~4 KB: off the stack */
    char buf[VALUE_BUF];
    char site[EV_SITE_MAX];

    memset(&u, 0, offsetof(struct umami, hostname));
    u.hostname[0] = '\0';
    u.url[0] = '\0';
    u.url_len = 0;
    u.has_payload = u.has_name = false;
    u.j = (struct json_cursor){body, body + len, reason, reasonlen};
    u.out = out;
    raw_event_reset(out);
    if (!read_body(&u, body, len, buf))
        return COMPAT_BAD_REQUEST;
    if (u.type == TYPE_IDENTIFY)
        return fail(&u, "identify is not supported: Veil identifies nobody"), COMPAT_BAD_REQUEST;
    if (u.type != TYPE_EVENT)
        return fail(&u, u.type == TYPE_NONE ? "missing field type" : "type: must be event"),
               COMPAT_BAD_REQUEST;
    if (!u.has_payload)
        return fail(&u, "missing field payload"), COMPAT_BAD_REQUEST;
    if (u.website_len == 0)
        return fail(&u, "missing field website"), COMPAT_BAD_REQUEST;
    if (!set_page(&u, buf))
        return COMPAT_BAD_REQUEST;
    if (!u.has_name && !raw_event_set_name(out, "name", "pageview", 8, reason, reasonlen))
        return COMPAT_BAD_REQUEST;
    if (!compat_map_site(website_ids, u.website, u.website_len, site)) {
        fail(&u, "unknown website");
        return COMPAT_UNKNOWN_SITE;
    }
    if (!raw_event_set_domains(out, "website", site, strlen(site), reason, reasonlen) ||
        !raw_event_finish(out, "name", "url", "website", reason, reasonlen))
        return COMPAT_BAD_REQUEST;
    return COMPAT_EVENT;
}
