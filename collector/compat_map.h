/* compat_map.h - the ids other trackers send for a site (Umami's website
 * UUID, Matomo's idsite) mapped to Veil site ids by the directives
 * umami_website_ids and matomo_site_ids ("id=site,id=site").
 *
 * The result of reading one request in another tracker's format is a
 * compat_result; the readers never quote input in a reason. */
#ifndef VEIL_COMPAT_MAP_H
#define VEIL_COMPAT_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "event.h"

enum compat_result {
    COMPAT_EVENT,        /* an event to record */
    COMPAT_NOTHING,      /* valid, but nothing to record (Matomo ping, rec=0) */
    COMPAT_BAD_REQUEST,  /* 400 with the reason */
    COMPAT_UNKNOWN_SITE, /* the id is not mapped: an unknown site (answered, not recorded) */
};

/* Check every item of `pairs` is "<id>=<site>" with a non-empty id of at
 * most 64 bytes and a site of at most 253. Returns 0, or -1 with
 * "<directive>: item N ..." in err. */
int compat_map_check(const struct cfg_list *pairs, const char *directive, char *err,
                     size_t errlen);

/* The site mapped to id[0..idlen) (compared ignoring ASCII case, as UUIDs
 * are written either way), copied into site. False when none is. */
bool compat_map_site(const struct cfg_list *pairs, const char *id, size_t idlen,
                     char site[EV_SITE_MAX]);

#endif
