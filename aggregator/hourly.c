/* hourly.c - the hourly dimensions and their key names (see hourly.h).
 * Data only. */
#include "hourly.h"

#include <pthread.h>
#include <string.h>

#include "util.h"

/* The breakdowns the dashboard filters on most: pages and entry pages,
 * where visits come from, and who the visitors are (country and device
 * class, browser, OS), and goals. Left out, each keeps daily rows only:
 * region, city, screen, referrer, utm_term, utm_content, event names,
 * custom properties and visitor_type (docs/API.md "Hourly rows").
 *
 * Adding a dimension here needs a new coverage field too (hourly.h
 * HOURLY_COVER_FIELD, e.g. "hourly_rows2", written from then on, and the
 * new dimension checked against it only): hours counted before would
 * otherwise pass the check with no rows of the new dimension, and a filter
 * on it would read zeros there instead of being refused. */
static const bool hourly[SD__COUNT] = {
    [SD_PAGE] = true,       [SD_ENTRY_PAGE] = true, [SD_SOURCE] = true,
    [SD_CHANNEL] = true,    [SD_UTM_SOURCE] = true, [SD_UTM_MEDIUM] = true,
    [SD_UTM_CAMPAIGN] = true, [SD_COUNTRY] = true,  [SD_DEVICE] = true,
    [SD_BROWSER] = true,    [SD_OS] = true,         [SD_GOAL] = true,
};

bool hourly_dim(enum schema_dim_id id)
{
    return (unsigned)id < SD__COUNT && hourly[id];
}

bool hourly_dim_name(const char *dim)
{
    const struct schema_dim *d = schema_find(dim);
    return d && d != schema_dim(SD_PROP) && hourly_dim((enum schema_dim_id)(d - schema_dim(0)));
}

/* the properties of the table above, built once */
static char properties[512];
static pthread_once_t properties_once = PTHREAD_ONCE_INIT;

static void properties_init(void)
{
    size_t n = 0;
    for (size_t i = 0; i < SD__COUNT; i++) {
        const char *prop = schema_dim((enum schema_dim_id)i)->property;
        if (!hourly[i] || !prop || n + strlen(prop) + 3 > sizeof properties)
            continue;
        if (n) {
            memcpy(properties + n, ", ", 2);
            n += 2;
        }
        memcpy(properties + n, prop, strlen(prop));
        n += strlen(prop);
    }
    properties[n] = '\0';
}

const char *hourly_properties(void)
{
    pthread_once(&properties_once, properties_init);
    return properties;
}

bool hourly_hash_suffix(char *out, size_t outlen, const char *dim)
{
    size_t dl = strlen(dim); /* no printf: this runs per row and visit */
    if (3 + dl + 1 > outlen)
        return false;
    memcpy(out, "hb:", 3);
    memcpy(out + 3, dim, dl + 1);
    return true;
}

void hourly_field_prefix(char out[9], unsigned hour, const char *metric)
{
    size_t ml = strlen(metric);
    out[0] = (char)('0' + hour / 10 % 10);
    out[1] = (char)('0' + hour % 10);
    out[2] = ':';
    if (ml > 3)
        ml = 3;
    memcpy(out + 3, metric, ml);
    out[3 + ml] = ':';
    out[4 + ml] = '\0';
}

bool hourly_visitors_prefix(char *out, size_t outlen, const char *dim, unsigned hour)
{
    size_t dl = strlen(dim);
    if (3 + dl + 4 + 1 > outlen)
        return false;
    memcpy(out, "hu:", 3);
    memcpy(out + 3, dim, dl);
    out[3 + dl] = ':';
    out[4 + dl] = (char)('0' + hour % 24 / 10);
    out[5 + dl] = (char)('0' + hour % 24 % 10);
    out[6 + dl] = ':';
    out[7 + dl] = '\0';
    return true;
}
