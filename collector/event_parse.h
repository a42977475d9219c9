/* event_parse.h - what Veil's and Plausible's trackers send: the
 * POST /api/event JSON body and the no-script pixel's query string,
 * validated into a raw_event (raw_event.h).
 *
 * Rejection reasons are short, fixed texts that never quote input. */
#ifndef VEIL_EVENT_PARSE_H
#define VEIL_EVENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "raw_event.h"

#define EVENT_FIELDS_MAX     64        /* top-level members / query parameters */
#define EVENT_PROPS_TEXT_MAX 16384     /* p given as a JSON string, decoded bytes */

/* Parse the JSON body body[0..len) (need not be NUL-terminated).
 *
 * Members (long Plausible names in brackets): n [name] string (or an
 * integer, kept as written), required; u [url] string, required, http(s),
 * <= 2000 bytes; d [domain] string, one site or a comma-separated list of
 * at most 10, required unless u has a host to derive it from; r [referrer]
 * string or null; w [screen_width] integer 0..100000; h [hashMode] 0, 1,
 * true or false; p [props, m, meta] an object, or a string holding a JSON
 * object (legacy trackers), whose scalar members become props
 * (raw_event_add_prop: more than 30, nested or blank ones are dropped;
 * null values too); sd integer 0..100; e integer 0..86400000; i
 * [interactive] boolean; v integer (tracker version, read and dropped);
 * $ [revenue] object of scalars (read and dropped). null means absent for
 * every optional member. Integers are plain JSON integers: 1.0 and 1e3 are
 * rejected. Unknown members are ignored (their values may nest one level,
 * holding scalars), at most 64 members in all; a known member given twice
 * (also under its other name) is rejected.
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
