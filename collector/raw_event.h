/* raw_event.h - one event as a client sent it, validated: the rules every
 * wire format shares (Veil/Plausible JSON and pixel, Umami, Matomo).
 *
 * A raw_event is still raw: its URL and referrer are whole (url.h reduces
 * them) and it must never reach the stream, a log line or a spool file as
 * it is. Rejection reasons are short fixed texts naming at most a field,
 * never quoting input. Each setter takes the field's name as the client's
 * format calls it (`field`), used only as the reason's prefix. */
#ifndef VEIL_RAW_EVENT_H
#define VEIL_RAW_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define EVENT_URL_MAX        2000      /* u and r, bytes */
#define EVENT_SCREEN_MAX     100000    /* w */
#define EVENT_ENGAGED_MAX    86400000  /* e: one day in milliseconds */
#define EVENT_DOMAINS_MAX    10        /* sites listed in one d */

struct raw_event {
    char name[EV_NAME_MAX];           /* "pageview" or a custom name, 1..120 bytes */
    char url[EVENT_URL_MAX + 1];      /* absolute http(s) URL */
    char domain[EV_SITE_MAX];         /* the site this event goes to (domains[i] in turn) */
    size_t ndomains;                  /* sites listed, 0 until set or derived */
    char domains[EVENT_DOMAINS_MAX][EV_SITE_MAX];
    char referrer[EVENT_URL_MAX + 1]; /* "" when absent */
    long screen_width;                /* 0..100000, -1 absent */
    bool hash_mode;
    bool interactive;                 /* Plausible i: false = does not end a bounce; not stored */
    int scroll_depth;                 /* 0..100, -1 absent */
    int64_t engaged_ms;               /* 0..86400000, -1 absent */
    size_t nprops;
    size_t props_dropped;             /* props past EV_PROPS_MAX, nested or blank: not kept */
    struct event_prop props[EV_PROPS_MAX]; /* non-empty values only */
    char url_host[EV_HOST_MAX];       /* host of url, set with it */
};

/* Empty the event: every text "", numbers absent (-1), interactive true. */
void raw_event_reset(struct raw_event *ev);

/* Each setter validates s[0..len) and stores it, or returns false with
 * "<field>: <why>" in reason[0..reasonlen). None keeps a pointer to s. */

/* 1..120 bytes, no control character. */
bool raw_event_set_name(struct raw_event *ev, const char *field, const char *s, size_t len,
                        char *reason, size_t reasonlen);

/* An absolute http(s) URL of at most EVENT_URL_MAX bytes with a host. */
bool raw_event_set_url(struct raw_event *ev, const char *field, const char *s, size_t len,
                       char *reason, size_t reasonlen);

/* At most EVENT_URL_MAX bytes, no control character; "" means direct. */
bool raw_event_set_referrer(struct raw_event *ev, const char *field, const char *s,
                            size_t len, char *reason, size_t reasonlen);

/* One site id, or a comma-separated list of at most EVENT_DOMAINS_MAX
 * (Plausible's "d":"a.com,b.com"): each item trimmed of spaces,
 * ASCII-lowercased, without a leading "www." or a trailing dot; letters,
 * digits, '-', '.', '_' and UTF-8 only. Empty items are skipped, repeated
 * ones kept once. Fills domains[], ndomains and domain (= domains[0]). */
bool raw_event_set_domains(struct raw_event *ev, const char *field, const char *s,
                           size_t len, char *reason, size_t reasonlen);

/* Add one custom property. Kept when the key is 1..64 bytes and the value
 * 1..256 bytes, neither blank nor holding a control character. Blank keys
 * or values and props past the 30th are dropped (counted in props_dropped)
 * as Plausible drops them; a key or value over its limit, a control
 * character or a repeated key is refused. */
bool raw_event_add_prop(struct raw_event *ev, const char *field, const char *key, size_t klen,
                        const char *value, size_t vlen, char *reason, size_t reasonlen);

/* The last check once every field is in: name and url are required; with
 * no site given, the URL's host (without "www.") is the site. */
bool raw_event_finish(struct raw_event *ev, const char *name_field, const char *url_field,
                      const char *domain_field, char *reason, size_t reasonlen);

#endif
