/* raw_event.c - the rules of a valid event, shared by every wire format
 * (raw_event.h).
 *
 * Must never quote input in a reason, never allocate, and never keep a
 * field the rules do not allow: whatever format an event came in, it is
 * held to the same limits here. */
#include "raw_event.h"

#include <string.h>

#include "ctl_scan.h"
#include "url.h"
#include "util.h"

static bool fail(const char *field, const char *why, char *reason, size_t reasonlen)
{
    if (reason != NULL && reasonlen > 0 &&
        !str_format(reason, reasonlen, "%s: %s", field, why))
        str_copy(reason, reasonlen, why, strnlen(why, reasonlen - 1));
    return false;
}

static bool has_ctl(const char *s, size_t len)
{
    return ctl_scan(s, len, false);
}

void raw_event_reset(struct raw_event *ev)
{
    /* Only what is read back: the buffers are large and rewritten anyway. */
    ev->name[0] = '\0';
    ev->url[0] = '\0';
    ev->url_host[0] = '\0';
    ev->domain[0] = '\0';
    ev->ndomains = 0;
    ev->referrer[0] = '\0';
    ev->screen_width = -1;
    ev->hash_mode = false;
    ev->interactive = true;
    ev->scroll_depth = -1;
    ev->engaged_ms = -1;
    ev->nprops = 0;
    ev->props_dropped = 0;
}

static bool set_text(const char *field, char *dst, size_t dstsize, const char *s, size_t len,
                     char *reason, size_t reasonlen)
{
    if (len == 0)
        return fail(field, "empty", reason, reasonlen);
    if (len >= dstsize)
        return fail(field, "too long", reason, reasonlen);
    if (has_ctl(s, len))
        return fail(field, "control character", reason, reasonlen);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

bool raw_event_set_name(struct raw_event *ev, const char *field, const char *s, size_t len,
                        char *reason, size_t reasonlen)
{
    return set_text(field, ev->name, sizeof ev->name, s, len, reason, reasonlen);
}

bool raw_event_set_url(struct raw_event *ev, const char *field, const char *s, size_t len,
                       char *reason, size_t reasonlen)
{
    if (!set_text(field, ev->url, sizeof ev->url, s, len, reason, reasonlen))
        return false;
    if (!url_host(ev->url, len, ev->url_host))
        return fail(field, "not an http(s) URL", reason, reasonlen);
    return true;
}

bool raw_event_set_referrer(struct raw_event *ev, const char *field, const char *s,
                            size_t len, char *reason, size_t reasonlen)
{
    if (len == 0) {
        ev->referrer[0] = '\0';
        return true;
    }
    return set_text(field, ev->referrer, sizeof ev->referrer, s, len, reason, reasonlen);
}

/* A site id: ASCII-lowercased, without a leading "www." or a trailing dot;
 * letters, digits, '-', '.', '_' and UTF-8 (IDN) only. */
static bool domain_set(char dst[EV_SITE_MAX], const char *s, size_t len)
{
    if (len > 4 && str_has_prefix_ci(s, len, "www.")) {
        s += 4;
        len -= 4;
    }
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len >= EV_SITE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                   ch == '.' || ch == '_' || ch >= 0x80))
            return false;
        dst[i] = (char)ch;
    }
    dst[len] = '\0';
    return true;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

bool raw_event_set_domains(struct raw_event *ev, const char *field, const char *s,
                           size_t len, char *reason, size_t reasonlen)
{
    ev->ndomains = 0;
    if (len == 0)
        return fail(field, "empty", reason, reasonlen);
    const char *end = s + len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        const char *a = s, *b = item_end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        s = item_end + 1;
        if (a == b)
            continue;
        if ((size_t)(b - a) >= EV_SITE_MAX)
            return fail(field, "too long", reason, reasonlen);
        char site[EV_SITE_MAX];
        if (!domain_set(site, a, (size_t)(b - a)))
            return fail(field, "not a domain", reason, reasonlen);
        bool seen = false;
        for (size_t i = 0; i < ev->ndomains && !seen; i++)
            seen = strcmp(ev->domains[i], site) == 0;
        if (seen)
            continue;
        if (ev->ndomains == EVENT_DOMAINS_MAX)
            return fail(field, "too many domains", reason, reasonlen);
        memcpy(ev->domains[ev->ndomains++], site, strlen(site) + 1);
    }
    if (ev->ndomains == 0)
        return fail(field, "empty", reason, reasonlen);
    memcpy(ev->domain, ev->domains[0], strlen(ev->domains[0]) + 1);
    return true;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(s[i]) && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

bool raw_event_add_prop(struct raw_event *ev, const char *field, const char *key, size_t klen,
                        const char *value, size_t vlen, char *reason, size_t reasonlen)
{
    if (blank(key, klen) || blank(value, vlen) || ev->nprops == EV_PROPS_MAX) {
        ev->props_dropped++;
        return true;
    }
    if (klen >= EV_PROP_KEY_MAX)
        return fail(field, "key too long", reason, reasonlen);
    if (has_ctl(key, klen))
        return fail(field, "control character in key", reason, reasonlen);
    if (vlen >= EV_PROP_VAL_MAX)
        return fail(field, "value too long", reason, reasonlen);
    if (has_ctl(value, vlen))
        return fail(field, "control character in value", reason, reasonlen);
    for (size_t i = 0; i < ev->nprops; i++)
        if (strlen(ev->props[i].key) == klen && memcmp(ev->props[i].key, key, klen) == 0)
            return fail(field, "duplicate key", reason, reasonlen);
    struct event_prop *prop = &ev->props[ev->nprops++];
    memcpy(prop->key, key, klen);
    prop->key[klen] = '\0';
    memcpy(prop->value, value, vlen);
    prop->value[vlen] = '\0';
    return true;
}

static bool missing(const char *field, char *reason, size_t reasonlen)
{
    if (reason != NULL && reasonlen > 0)
        str_format(reason, reasonlen, "missing field %s", field);
    return false;
}

bool raw_event_finish(struct raw_event *ev, const char *name_field, const char *url_field,
                      const char *domain_field, char *reason, size_t reasonlen)
{
    if (ev->name[0] == '\0')
        return missing(name_field, reason, reasonlen);
    if (ev->url[0] == '\0')
        return missing(url_field, reason, reasonlen);
    if (ev->ndomains == 0) {
        if (!domain_set(ev->domains[0], ev->url_host, strlen(ev->url_host)))
            return missing(domain_field, reason, reasonlen);
        ev->ndomains = 1;
        memcpy(ev->domain, ev->domains[0], strlen(ev->domains[0]) + 1);
    }
    return true;
}
