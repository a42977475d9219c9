/* tzfile.h - a site's local time: UTC offsets of an IANA time zone read
 * from the system's compiled tz database (Debian tzdata,
 * /usr/share/zoneinfo or $VEIL_ZONEINFO, TZif files), so that days and
 * hours can be the site's own (docs/API.md "Time zones").
 *
 * Zones are loaded once per process and kept (at most TZ_ZONES_MAX names;
 * each is a few KB); lookups are thread-safe and never change a loaded
 * zone. It never uses the process-wide TZ variable or localtime(), which
 * would make every thread share one zone. */
#ifndef VEIL_TZFILE_H
#define VEIL_TZFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TZ_ZONES_MAX 4096       /* distinct zone names per process (tzdata has ~1800
                                   files); past it a new name reads as UTC */
#define TZ_FILE_MAX (256 * 1024) /* a TZif file larger than this is refused */

struct tz_zone;

/* The zone named `name` (e.g. "Europe/Paris"), loaded on first use. NULL
 * for "", "UTC", "Etc/UTC" and any name that is not a readable TZif file
 * (callers treat NULL as UTC; registry_timezone_valid checks names when
 * they are set). */
const struct tz_zone *tz_get(const char *name);

/* Seconds to add to UTC unix time `ts` for local time in zone `z` (0 for
 * NULL). After the file's last transition the last offset holds (Debian's
 * files list transitions up to 2037). */
int32_t tz_offset(const struct tz_zone *z, int64_t ts);

/* The local day number (days since 1970-01-01) and hour 0..23 of `ts`. */
void tz_local(const struct tz_zone *z, int64_t ts, int32_t *day, int *hour);

/* Parse a TZif file's bytes into a new zone (for tests); NULL when it is
 * not one. Free with tz_free. Zones from tz_get are never freed. */
struct tz_zone *tz_parse(const unsigned char *buf, size_t len);
void tz_free(struct tz_zone *z);

#endif
