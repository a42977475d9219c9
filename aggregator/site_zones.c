/* site_zones.c - the roll-up's cache of site time zones (see
 * site_zones.h). It must never write to Redis. */
#include "site_zones.h"

#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "strmap.h"

struct site_zones {
    redisContext *rc;                /* the current batch's connection */
    long long version;               /* registry version the cache is for, -1 unknown */
    uint64_t next_check_ms;
    struct smap map;                 /* site -> index into zones */
    struct arena_chunk *arena;
    const struct tz_zone **zones;
    size_t n, cap;
    const char *last_site;           /* the last site asked, and its answer */
    const struct tz_zone *last_zone;
    struct reg_site reg;             /* lookup scratch (~2.6 KB) */
};

struct site_zones *site_zones_new(void)
{
    struct site_zones *z = xcalloc(1, sizeof *z);
    z->version = -1;
    return z;
}

static void forget(struct site_zones *z)
{
    smap_clear(&z->map);
    arena_free(&z->arena);
    z->n = 0;
    z->last_site = NULL;
}

void site_zones_free(struct site_zones *z)
{
    if (!z)
        return;
    forget(z);
    smap_free(&z->map);
    free(z->zones);
    free(z);
}

void site_zones_refresh(struct site_zones *z, redisContext *rc, uint64_t now_ms)
{
    z->rc = rc;
    if (now_ms < z->next_check_ms || !rc)
        return;
    z->next_check_ms = now_ms + SITE_ZONES_CHECK_MS;
    long long v = registry_version(rc);
    if (v < 0 || v == z->version)
        return;
    z->version = v;
    forget(z);
}

const struct tz_zone *site_zones_get(void *arg, const char *site)
{
    struct site_zones *z = arg;
    if (z->last_site && strcmp(z->last_site, site) == 0)
        return z->last_zone;
    uint32_t i;
    size_t len = strlen(site);
    const char *stored = NULL;
    if (!smap_find(&z->map, site, len, &i)) {
        const struct tz_zone *zone = NULL;
        char err[200];
        if (z->rc && registry_site_get(z->rc, site, &z->reg, err, sizeof err) == 1)
            zone = tz_get(z->reg.timezone);
        if (z->n >= SITE_ZONES_MAX)
            forget(z);
        GROW(z->zones, z->n, z->cap);
        bool created;
        i = smap_intern(&z->map, &z->arena, site, len, (uint32_t)z->n, &created, &stored);
        z->zones[z->n++] = zone;
    } else {
        bool created;
        smap_intern(&z->map, &z->arena, site, len, i, &created, &stored);
    }
    z->last_site = stored; /* the map's copy: the caller's string may be reused */
    z->last_zone = z->zones[i];
    return z->zones[i];
}

const struct tz_zone *site_zone_lookup(redisContext *rc, const char *site)
{
    struct reg_site *reg = xmalloc(sizeof *reg);
    char err[200];
    const struct tz_zone *zone = NULL;
    if (rc && registry_site_get(rc, site, reg, err, sizeof err) == 1)
        zone = tz_get(reg->timezone);
    free(reg);
    return zone;
}
