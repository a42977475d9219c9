/* compat_matomo.h - Matomo's (and Piwik's) tracking request, GET or POST
 * /matomo.php and /piwik.php, read into raw_events.
 *
 * Never keeps a visitor id (_id, uid, cid, _idts, _viewts, _pk_* and every
 * other parameter it does not read are ignored) and refuses every override
 * that needs Matomo's token_auth (token_auth, cip, cdt, country, region,
 * city, lat, long). */
#ifndef VEIL_COMPAT_MATOMO_H
#define VEIL_COMPAT_MATOMO_H

#include <stdbool.h>
#include <stddef.h>

#include "compat_map.h"
#include "config.h"
#include "json_scan.h"
#include "raw_event.h"

#define MATOMO_PARAMS_MAX  128   /* parameters in one request */
#define MATOMO_BULK_MAX    100   /* requests in one bulk body */
#define MATOMO_REQUEST_MAX 8192  /* bytes of one bulk request's query text */

/* Read one request's parameters query[0..len) (a query string or a form
 * body; a leading '?' is skipped). idsite (mapped by `site_ids`), rec=1
 * and url are required. What it becomes:
 *   link=<url>      "Outbound Link: Click", prop url (without query/fragment)
 *   download=<url>  "File Download", prop url (likewise)
 *   e_c/e_a/e_n/e_v a custom event named e_c, props action, name, value
 *   search=<kw>     "Site Search" (the keyword is not kept)
 *   otherwise       "pageview"
 * urlref is the referrer, res "<w>x<h>" the screen width; action_name is
 * read and not kept. ping=1 (a heartbeat) and rec other than 1 are
 * COMPAT_NOTHING. Returns COMPAT_EVENT with `out` filled,
 * COMPAT_UNKNOWN_SITE for an unmapped idsite, COMPAT_BAD_REQUEST with a
 * fixed reason that never quotes input. */
enum compat_result compat_matomo_parse(const char *query, size_t len,
                                       const struct cfg_list *site_ids, struct raw_event *out,
                                       char *reason, size_t reasonlen);

/* False when the request's parameters ask for no image (send_image=0):
 * Matomo then answers a GET with 204 instead of its GIF. */
bool compat_matomo_wants_image(const char *query, size_t len);

/* True when a POST body is a bulk request (a JSON object). */
bool compat_matomo_is_bulk(const char *body, size_t len);

/* Walking a bulk body {"requests":["?idsite=1&...", ...]}. */
struct matomo_bulk {
    struct json_cursor j;
    bool more;    /* requests left in the array */
    size_t count; /* requests handed out so far */
};

/* Start on body[0..len) (which must outlive the walk). False with a reason
 * when it is not a bulk body, has no "requests" array, or carries
 * token_auth. */
bool compat_matomo_bulk_open(struct matomo_bulk *b, const char *body, size_t len,
                             char *reason, size_t reasonlen);

/* The next request's query text, decoded into buf[0..cap) with its length
 * in *len: returns 1; 0 when there are no more and the body ended well; -1
 * with a reason when it is malformed, a request is not a string or longer
 * than cap, or there are more than MATOMO_BULK_MAX. */
int compat_matomo_bulk_next(struct matomo_bulk *b, char *buf, size_t cap, size_t *len);

#endif
