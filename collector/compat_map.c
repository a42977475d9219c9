/* compat_map.c - other trackers' site ids to Veil site ids (compat_map.h).
 *
 * Must never treat an id it does not know as a site: an unmapped id is an
 * unknown site (answered as accepted, counted, never recorded), never a
 * guess. */
#include "compat_map.h"

#include <string.h>
#include <strings.h>

#include "util.h"

#define COMPAT_ID_MAX 64

int compat_map_check(const struct cfg_list *pairs, const char *directive, char *err,
                     size_t errlen)
{
    for (size_t i = 0; i < pairs->n; i++) {
        const char *item = pairs->items[i];
        const char *eq = strchr(item, '=');
        size_t idlen = eq ? (size_t)(eq - item) : 0;
        if (!eq || idlen == 0 || eq[1] == '\0') {
            str_format(err, errlen, "%s: item %zu is not <id>=<site>", directive, i + 1);
            return -1;
        }
        if (idlen > COMPAT_ID_MAX || strlen(eq + 1) >= EV_SITE_MAX) {
            str_format(err, errlen, "%s: item %zu is too long", directive, i + 1);
            return -1;
        }
        if (!utf8_valid(item, strlen(item))) {
            str_format(err, errlen, "%s: item %zu is not valid UTF-8", directive, i + 1);
            return -1;
        }
    }
    return 0;
}

bool compat_map_site(const struct cfg_list *pairs, const char *id, size_t idlen,
                     char site[EV_SITE_MAX])
{
    if (idlen == 0)
        return false;
    for (size_t i = 0; i < pairs->n; i++) {
        const char *item = pairs->items[i];
        const char *eq = strchr(item, '=');
        if (eq && (size_t)(eq - item) == idlen && strncasecmp(item, id, idlen) == 0)
            return str_copy(site, EV_SITE_MAX, eq + 1, strlen(eq + 1));
    }
    return false;
}
