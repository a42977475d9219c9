/* compat_umami.h - Umami's tracker request (POST /api/send, or the path set
 * by umami_path) read into a raw_event.
 *
 * Body: {"type":"event","payload":{website, hostname, url, referrer, title,
 * screen, language, name, data, tag, id}}. Never keeps what could follow a
 * visitor: "id" (Umami's distinct id), "tag", "title" and "language" are
 * read and dropped; an "identify" request is refused. */
#ifndef VEIL_COMPAT_UMAMI_H
#define VEIL_COMPAT_UMAMI_H

#include <stdbool.h>
#include <stddef.h>

#include "compat_map.h"
#include "config.h"
#include "raw_event.h"

/* Read body[0..len). The site is the one `website_ids` maps the payload's
 * website to. url may be a path (Umami 2.x sends pathname + search; the
 * page is then https://<hostname><url>) or an absolute URL; a referrer that
 * is a path (Umami's previous page after an SPA navigation) is an internal
 * one and kept as none. No name: a pageview; a name: a custom event whose
 * data members become props (raw_event_add_prop's rules). screen
 * "<w>x<h>" gives the screen width.
 *
 * Returns COMPAT_EVENT with `out` filled, COMPAT_UNKNOWN_SITE when the
 * website is not mapped, or COMPAT_BAD_REQUEST with a fixed reason in
 * reason[0..reasonlen) that never quotes input. No allocation; no
 * recursion. */
enum compat_result compat_umami_parse(const char *body, size_t len,
                                      const struct cfg_list *website_ids,
                                      struct raw_event *out, char *reason, size_t reasonlen);

#endif
