/* http_compat.h - the endpoints of other trackers a site may keep running:
 * Umami's POST umami_path and Matomo's /matomo.php and /piwik.php
 * (docs/MIGRATE-UMAMI.md, docs/MIGRATE-MATOMO.md). Their requests are read
 * by compat_umami.c and compat_matomo.c and recorded like native events
 * (http_ingest.h). Each call answers the request exactly once. */
#ifndef VEIL_HTTP_COMPAT_H
#define VEIL_HTTP_COMPAT_H

#include "collector_config.h"
#include "httpd.h"

struct http_worker;

/* POST (and OPTIONS) umami_path: 200 {} once recorded or dropped. */
void http_compat_umami(struct http_worker *w, const struct httpd_request *req,
                       struct httpd_reply *r, const struct collector_config *conf);

/* GET, POST (form or bulk) and OPTIONS /matomo.php, /piwik.php: a GIF for
 * GET (204 with send_image=0), 204 for POST. */
void http_compat_matomo(struct http_worker *w, const struct httpd_request *req,
                        struct httpd_reply *r, const struct collector_config *conf);

#endif
