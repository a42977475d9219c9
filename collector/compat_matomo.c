/* compat_matomo.c - read Matomo's tracking requests (compat_matomo.h).
 *
 * Must never keep a visitor id or any parameter it does not read, never
 * accept a token_auth override (they set the IP, time or location Matomo
 * would otherwise take from the request), and never quote input in a
 * reason. Parameters it does not know are skipped without being decoded. */
#include "compat_matomo.h"

#include <string.h>

#include "url.h"
#include "util.h"

#define VALUE_BUF (EVENT_URL_MAX + 1)
#define NAME_BUF 32

enum param {
    P_IDSITE, P_REC, P_URL, P_ACTION_NAME, P_URLREF, P_RES, P_LINK, P_DOWNLOAD, P_E_C, P_E_A,
    P_E_N, P_E_V, P_PING, P_SEARCH, P__COUNT, P_REFUSED, P_IGNORED
};

static const char *const param_names[P__COUNT] = {
    "idsite", "rec", "url", "action_name", "urlref", "res", "link", "download",
    "e_c", "e_a", "e_n", "e_v", "ping", "search",
};

/* Overrides Matomo accepts only with token_auth: refused outright. */
static const char *const refused[] = {"token_auth", "cip", "cdt", "country", "region",
                                      "city", "lat", "long"};

/* One request's values as sent (decoded); only what is read is kept. */
struct matomo_req {
    bool seen[P__COUNT];
    char idsite[65];
    bool rec, ping;
    long screen_width;
    char url[VALUE_BUF], urlref[VALUE_BUF], target[VALUE_BUF];
    enum param target_kind; /* P_LINK, P_DOWNLOAD or P__COUNT */
    char e_c[EV_NAME_MAX], e_a[EV_PROP_VAL_MAX], e_n[EV_PROP_VAL_MAX], e_v[32];
};

static bool fail(char *reason, size_t reasonlen, const char *why)
{
    if (reason != NULL && reasonlen > 0)
        str_copy(reason, reasonlen, why, strnlen(why, reasonlen - 1));
    return false;
}

static bool fail_param(char *reason, size_t reasonlen, enum param p, const char *why)
{
    char text[64];
    str_format(text, sizeof text, "%s: %s", param_names[p], why);
    return fail(reason, reasonlen, text);
}

static enum param param_lookup(const char *name, size_t len)
{
    for (int i = 0; i < P__COUNT; i++)
        if (strlen(param_names[i]) == len && memcmp(param_names[i], name, len) == 0)
            return (enum param)i;
    for (size_t i = 0; i < ARRAY_LEN(refused); i++)
        if (strlen(refused[i]) == len && memcmp(refused[i], name, len) == 0)
            return P_REFUSED;
    return P_IGNORED;
}

/* A decoded value into dst[0..cap), valid UTF-8 without control characters. */
static bool value_into(enum param p, const char *s, size_t len, char *dst, size_t cap,
                       char *reason, size_t reasonlen)
{
    bool full;
    long n = url_decode(s, len, dst, cap, &full);
    if (n < 0)
        return fail(reason, reasonlen, "bad percent-encoding");
    if (full || (size_t)n >= cap)
        return fail_param(reason, reasonlen, p, "too long");
    if (!utf8_valid(dst, (size_t)n))
        return fail_param(reason, reasonlen, p, "invalid UTF-8");
    for (long i = 0; i < n; i++)
        if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
            return fail_param(reason, reasonlen, p, "control character");
    dst[n] = '\0';
    return true;
}

/* "<width>x<height>" -> width; anything else is ignored, as Matomo does. */
static long screen_width(const char *res)
{
    const char *x = strchr(res, 'x');
    long long w;
    if (!x || !safe_strtoll_n(res, (size_t)(x - res), 0, EVENT_SCREEN_MAX, &w))
        return -1;
    return (long)w;
}

static bool read_param(struct matomo_req *q, const char *param, size_t len, char *reason,
                       size_t reasonlen)
{
    const char *eq = memchr(param, '=', len);
    size_t name_len = eq ? (size_t)(eq - param) : len;
    const char *raw = eq ? eq + 1 : param + len;
    size_t raw_len = eq ? len - name_len - 1 : 0;
    char name[NAME_BUF], value[VALUE_BUF];
    bool full;

    long n = url_decode(param, name_len, name, sizeof name, &full);
    if (n < 0)
        return fail(reason, reasonlen, "bad percent-encoding");
    enum param p = full ? P_IGNORED : param_lookup(name, (size_t)n);
    if (p == P_REFUSED) {
        char text[64];
        str_format(text, sizeof text, "%.*s: overrides are refused", (int)n, name);
        return fail(reason, reasonlen, text);
    }
    if (p == P_IGNORED)
        return true; /* _id, uid, cid, _idts, _viewts, _pk_*, ua, lang, ...: never read */
    if (q->seen[p])
        return fail_param(reason, reasonlen, p, "given twice");
    q->seen[p] = true;
    switch (p) {
    case P_IDSITE:
        return value_into(p, raw, raw_len, q->idsite, sizeof q->idsite, reason, reasonlen);
    case P_REC:
        if (!value_into(p, raw, raw_len, value, sizeof value, reason, reasonlen))
            return false;
        q->rec = strcmp(value, "1") == 0;
        return true;
    case P_PING:
        if (!value_into(p, raw, raw_len, value, sizeof value, reason, reasonlen))
            return false;
        q->ping = strcmp(value, "0") != 0 && value[0] != '\0';
        return true;
    case P_URL:
        return value_into(p, raw, raw_len, q->url, sizeof q->url, reason, reasonlen);
    case P_URLREF:
        return value_into(p, raw, raw_len, q->urlref, sizeof q->urlref, reason, reasonlen);
    case P_RES:
        if (!value_into(p, raw, raw_len, value, sizeof value, reason, reasonlen))
            return false;
        q->screen_width = screen_width(value);
        return true;
    case P_LINK:
    case P_DOWNLOAD:
        if (q->target_kind != P__COUNT)
            return fail(reason, reasonlen, "link and download: only one");
        q->target_kind = p;
        return value_into(p, raw, raw_len, q->target, sizeof q->target, reason, reasonlen);
    case P_E_C:
        return value_into(p, raw, raw_len, q->e_c, sizeof q->e_c, reason, reasonlen);
    case P_E_A:
        return value_into(p, raw, raw_len, q->e_a, sizeof q->e_a, reason, reasonlen);
    case P_E_N:
        return value_into(p, raw, raw_len, q->e_n, sizeof q->e_n, reason, reasonlen);
    case P_E_V:
        return value_into(p, raw, raw_len, q->e_v, sizeof q->e_v, reason, reasonlen);
    case P_ACTION_NAME:
    case P_SEARCH:
        return true; /* the page title and the search keyword are not kept */
    case P__COUNT:
    case P_REFUSED:
    case P_IGNORED:
        break;
    }
    return true;
}

/* The link's URL as a prop, without its query and fragment (P8). */
static bool add_target(struct raw_event *out, char *target, char *reason, size_t reasonlen)
{
    target[strcspn(target, "?#")] = '\0';
    return raw_event_add_prop(out, "url", "url", 3, target, strlen(target), reason, reasonlen);
}

static bool add_if(struct raw_event *out, const char *key, const char *value, char *reason,
                   size_t reasonlen)
{
    return value[0] == '\0' ||
           raw_event_add_prop(out, key, key, strlen(key), value, strlen(value), reason,
                              reasonlen);
}

/* What the request is about: its name and props. */
static bool set_kind(struct matomo_req *q, struct raw_event *out, char *reason,
                     size_t reasonlen)
{
    const char *name = "pageview";
    if (q->target_kind == P_LINK)
        name = "Outbound Link: Click";
    else if (q->target_kind == P_DOWNLOAD)
        name = "File Download";
    else if (q->seen[P_E_C] || q->seen[P_E_A]) {
        if (q->e_c[0] == '\0' || q->e_a[0] == '\0')
            return fail(reason, reasonlen, "e_c and e_a: both required for an event");
        name = q->e_c;
    } else if (q->seen[P_SEARCH])
        name = "Site Search";
    if (!raw_event_set_name(out, "e_c", name, strlen(name), reason, reasonlen))
        return false;
    if (q->target_kind != P__COUNT)
        return q->target[0] == '\0' || add_target(out, q->target, reason, reasonlen);
    if (name == q->e_c)
        return add_if(out, "action", q->e_a, reason, reasonlen) &&
               add_if(out, "name", q->e_n, reason, reasonlen) &&
               add_if(out, "value", q->e_v, reason, reasonlen);
    return true;
}

enum compat_result compat_matomo_parse(const char *query, size_t len,
                                       const struct cfg_list *site_ids, struct raw_event *out,
                                       char *reason, size_t reasonlen)
{
    static _Thread_local struct matomo_req q; /* ~7 KB: off the stack */
    char site[EV_SITE_MAX];
    size_t params = 0;

    memset(q.seen, 0, sizeof q.seen);
    q.idsite[0] = q.url[0] = q.urlref[0] = q.target[0] = '\0';
    q.e_c[0] = q.e_a[0] = q.e_n[0] = q.e_v[0] = '\0';
    q.rec = q.ping = false;
    q.screen_width = -1;
    q.target_kind = P__COUNT;
    raw_event_reset(out);

    if (len > 0 && query[0] == '?') {
        query++;
        len--;
    }
    if (len == 0)
        return fail(reason, reasonlen, "empty request"), COMPAT_BAD_REQUEST;
    for (const char *p = query, *end = query + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *param_end = amp ? amp : end;
        if (param_end > p) {
            if (++params > MATOMO_PARAMS_MAX)
                return fail(reason, reasonlen, "too many parameters"), COMPAT_BAD_REQUEST;
            if (!read_param(&q, p, (size_t)(param_end - p), reason, reasonlen))
                return COMPAT_BAD_REQUEST;
        }
        p = param_end + 1;
    }
    if (q.idsite[0] == '\0')
        return fail(reason, reasonlen, "missing field idsite"), COMPAT_BAD_REQUEST;
    if (!q.rec || q.ping)
        return COMPAT_NOTHING;
    if (q.url[0] == '\0')
        return fail(reason, reasonlen, "missing field url"), COMPAT_BAD_REQUEST;
    if (!raw_event_set_url(out, "url", q.url, strlen(q.url), reason, reasonlen) ||
        !raw_event_set_referrer(out, "urlref", q.urlref, strlen(q.urlref), reason, reasonlen) ||
        !set_kind(&q, out, reason, reasonlen))
        return COMPAT_BAD_REQUEST;
    out->screen_width = q.screen_width;
    if (!compat_map_site(site_ids, q.idsite, strlen(q.idsite), site)) {
        fail(reason, reasonlen, "unknown idsite");
        return COMPAT_UNKNOWN_SITE;
    }
    if (!raw_event_set_domains(out, "idsite", site, strlen(site), reason, reasonlen) ||
        !raw_event_finish(out, "e_c", "url", "idsite", reason, reasonlen))
        return COMPAT_BAD_REQUEST;
    return COMPAT_EVENT;
}

bool compat_matomo_wants_image(const char *query, size_t len)
{
    static const char param[] = "send_image=0";
    const size_t plen = sizeof param - 1;
    for (const char *p = query, *end = query + len; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *param_end = amp ? amp : end;
        if (*p == '?')
            p++;
        if ((size_t)(param_end - p) == plen && memcmp(p, param, plen) == 0)
            return false;
        p = param_end + 1;
    }
    return true;
}

/* ---- bulk ---------------------------------------------------------------- */

bool compat_matomo_is_bulk(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r'))
        i++;
    return i < len && body[i] == '{';
}

/* Members other than "requests": token_auth is refused, the rest skipped.
 * Stops on the "requests" key (true, *found) or the end of the object. */
static bool bulk_members(struct matomo_bulk *b, bool *found)
{
    bool more = true;
    *found = false;
    while (more) {
        char key[NAME_BUF];
        size_t klen;
        if (!json_key(&b->j, key, sizeof key, &klen))
            return false;
        if (klen == 8 && memcmp(key, "requests", 8) == 0) {
            *found = true;
            return true;
        }
        if (klen == 10 && memcmp(key, "token_auth", 10) == 0)
            return json_fail(&b->j, "token_auth: overrides are refused");
        bool ok;
        if (json_is_container(&b->j)) {
            ok = json_skip_container(&b->j);
        } else {
            struct json_value v;
            ok = json_scalar(&b->j, &v, NULL, 0);
        }
        if (!ok || !json_next(&b->j, '}', &more))
            return false;
    }
    return true;
}

bool compat_matomo_bulk_open(struct matomo_bulk *b, const char *body, size_t len,
                             char *reason, size_t reasonlen)
{
    bool more, found;
    b->j = (struct json_cursor){body, body + len, reason, reasonlen};
    b->count = 0;
    b->more = false;
    if (!json_body_ok(&b->j, body, len))
        return false;
    json_ws(&b->j);
    if (!json_open(&b->j, '{', &more))
        return false;
    if (!more || !bulk_members(b, &found))
        return more ? false : json_fail(&b->j, "missing field requests");
    if (!found)
        return json_fail(&b->j, "missing field requests");
    if (!json_peek(&b->j, '['))
        return json_fail(&b->j, "requests: must be an array");
    return json_open(&b->j, '[', &b->more);
}

int compat_matomo_bulk_next(struct matomo_bulk *b, char *buf, size_t cap, size_t *len)
{
    if (!b->more) {
        bool more, found;
        /* after the array: the rest of the object */
        if (!json_next(&b->j, '}', &more))
            return -1;
        if (more) {
            if (!bulk_members(b, &found))
                return -1;
            if (found)
                return json_fail(&b->j, "duplicate field requests"), -1;
        }
        return json_at_end(&b->j) ? 0 : -1;
    }
    if (++b->count > MATOMO_BULK_MAX)
        return json_fail(&b->j, "requests: too many"), -1;
    if (!json_peek(&b->j, '"'))
        return json_fail(&b->j, "requests: must be strings"), -1;
    if (!json_string(&b->j, buf, cap, len))
        return -1;
    if (*len >= cap)
        return json_fail(&b->j, "requests: one is too long"), -1;
    buf[*len] = '\0';
    if (!json_next(&b->j, ']', &b->more))
        return -1;
    return 1;
}
