/* event_parse.h - what the tracker sends: the POST /api/event JSON body and
 * the no-script pixel's query string, validated into a raw_event.
 *
 * A raw_event is still raw: its URL and referrer are whole (url.h reduces
 * them) and it must never reach the stream, a log line or a spool file as
 * it is. Rejection reasons are short, fixed texts that never quote input. */
#ifndef VEIL_EVENT_PARSE_H
#define VEIL_EVENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define EVENT_URL_MAX        2000      /* u and r, bytes */
#define EVENT_SCREEN_MAX     100000    /* w */
#define EVENT_ENGAGED_MAX    86400000  /* e: one day in milliseconds */
#define EVENT_FIELDS_MAX     64        /* top-level members / query parameters */

struct raw_event {
    char name[EV_NAME_MAX];           /* n: "pageview" or a custom name, 1..120 bytes */
    char url[EVENT_URL_MAX + 1];      /* u: absolute http(s) URL */
    char domain[EV_SITE_MAX];         /* d: site id, lowercased, leading "www." removed */
    char referrer[EVENT_URL_MAX + 1]; /* r: "" when absent or null */
    long screen_width;                /* w: 0..100000, -1 absent */
    bool hash_mode;                   /* h */
    int scroll_depth;                 /* sd: 0..100, -1 absent */
    int64_t engaged_ms;               /* e: 0..86400000, -1 absent */
    bool interactive;                 /* i (or interactive): false = does not undo a
                                         bounce (Plausible's i:false); default true */
    size_t nprops;
    struct event_prop props[EV_PROPS_MAX]; /* p: non-empty values only */
};

/* Parse the JSON body body[0..len) (need not be NUL-terminated).
 *
 * Members (long Plausible names in brackets): n [name] string, required;
 * u [url] string, required, http(s), <= 2000 bytes; d [domain] string,
 * required unless u has a host to derive it from; r [referrer] string or
 * null; w [screen_width] integer 0..100000; h 0, 1, true or false; p [props,
 * m, meta] object of at most 30 scalar members (key 1..64 bytes, value <=
 * 256 bytes as text: numbers as written, booleans as true/false; null and ""
 * values are dropped); sd integer 0..100; e integer 0..86400000. null means
 * absent for every optional member. Integers are plain JSON integers: 1.0
 * and 1e3 are rejected. Unknown members are ignored (their values may nest
 * one level, holding scalars), at most 64 members in all; a known member
 * given twice (also under its other name) is rejected.
 *
 * Returns true and fills `out` on success. Returns false with a short
 * one-line reason in `reason` (never quoting input) on any violation; `out`
 * is then unspecified. No allocation; no recursion. */
bool event_parse_json(const char *body, size_t len, struct raw_event *out, char *reason,
                      size_t reasonlen);

/* Parse the pixel's query string query[0..len) (without the '?'):
 * the same members as event_parse_json as parameters (percent-decoded, '+'
 * is a space), h as 0/1/true/false, props as "p.<key>=<value>" (a bare "p"
 * is rejected). An empty value means absent for optional members. Same
 * limits, same reasons. */
bool event_parse_query(const char *query, size_t len, struct raw_event *out, char *reason,
                       size_t reasonlen);

#endif
