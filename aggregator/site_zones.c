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
    struct rollup_site *sites;
    size_t n, cap;
    const char *last_site;           /* the last site asked, and its answer's index */
    uint32_t last;
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
    free(z->sites);
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

const struct rollup_site *site_zones_get(void *arg, const char *site)
{
    struct site_zones *z = arg;
    if (z->last_site && strcmp(z->last_site, site) == 0)
        return &z->sites[z->last];
    uint32_t i;
    size_t len = strlen(site);
    const char *stored = NULL;
    bool created;
    if (!smap_find(&z->map, site, len, &i)) {
        struct rollup_site conf = {NULL, ""};
        char err[200];
        if (z->rc && registry_site_get(z->rc, site, &z->reg, err, sizeof err) == 1) {
            conf.zone = tz_get(z->reg.timezone);
            conf.goals = z->reg.goals;
        }
        if (z->n >= SITE_ZONES_MAX)
            forget(z);
        conf.goals = arena_dup(&z->arena, conf.goals, strlen(conf.goals));
        GROW(z->sites, z->n, z->cap);
        i = smap_intern(&z->map, &z->arena, site, len, (uint32_t)z->n, &created, &stored);
        z->sites[z->n++] = conf;
    } else {
        smap_intern(&z->map, &z->arena, site, len, i, &created, &stored);
    }
    z->last_site = stored; /* the map's copy: the caller's string may be reused */
    z->last = i;
    return &z->sites[i];
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
