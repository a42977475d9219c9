/* site_zones.h - each site's settings as the roll-up needs them: the
 * registry's `timezone` and `goals` fields (veil-admin site add --timezone
 * --goal), read once per site and kept until the registry's version moves.
 *
 * One instance per roll-up thread (not shared). It reads the registry
 * with the connection of the current batch and nothing else; a site the
 * registry does not know, or a Redis error, reads as UTC (docs/API.md
 * "Time zones"). It never writes to Redis and never logs a site. */
#ifndef VEIL_SITE_ZONES_H
#define VEIL_SITE_ZONES_H

#include <stdint.h>

#include <hiredis/hiredis.h>

#include "rollup.h"
#include "tzfile.h"

#define SITE_ZONES_CHECK_MS 1000   /* how often the registry version is read */
#define SITE_ZONES_MAX 100000      /* sites remembered; past it all are forgotten */

struct site_zones;

struct site_zones *site_zones_new(void);
void site_zones_free(struct site_zones *z);

/* Call before each batch with its connection: at most every
 * SITE_ZONES_CHECK_MS, reads REG_VERSION and forgets every site when it
 * moved, so a changed zone applies from the next batch on. */
void site_zones_refresh(struct site_zones *z, redisContext *rc, uint64_t now_ms);

/* The zone (NULL = UTC) and goals of `site`, valid until the next
 * site_zones_refresh. Signature of rollup_site_fn; `arg` is the struct
 * site_zones. */
const struct rollup_site *site_zones_get(void *arg, const char *site);

/* For the stats API (no cache: one registry read per request): the zone
 * of `site` now, NULL for UTC or when the registry cannot be read. */
const struct tz_zone *site_zone_lookup(redisContext *rc, const char *site);

#endif
