/* geo.h - country / region / city of a client address from a MaxMind DB
 * (GeoIP2/GeoLite2 City or Country shaped .mmdb files).
 *
 * The database is opened once (mmap) and shared read-only by every worker
 * thread: libmaxminddb lookups on a shared MMDB_s are thread-safe.
 *
 * This module never logs, stores or returns the client IP: the only copy it
 * makes (a sockaddr on the stack for the lookup) is wiped before return,
 * and it returns only the derived place names, limited by the `geo`
 * level. */
#ifndef VEIL_GEO_H
#define VEIL_GEO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "anon.h"
#include "event.h"

/* How much of a location is kept (operator flag `geo`). */
enum geo_level { GEO_OFF = 0, GEO_COUNTRY, GEO_REGION, GEO_CITY };

/* Config names in enum order, NULL-terminated: "off", "country", "region",
 * "city". */
extern const char *const geo_level_names[];

struct geo_db;

struct geo_result {
    char country[3];              /* ISO 3166-1 alpha-2, or "" */
    char region[4];               /* ISO 3166-2 subdivision part ("CA"), or "" */
    char city[EV_GEO_CITY_MAX];   /* English name (UTF-8), or "" */
};

/* Open the .mmdb at `path` with MMDB_MODE_MMAP. Returns a handle to pass to
 * geo_lookup() from any thread and to free with geo_close(), or NULL with
 * "geo database '<path>': reason" in err. */
struct geo_db *geo_open(const char *path, char *err, size_t errlen);

/* Unmap and free the database. `db` may be NULL. No lookup may be running
 * or start afterwards. */
void geo_close(struct geo_db *db);

/* "<database_type> built YYYY-MM-DD" for the startup log. The string is
 * owned by `db` and lives until geo_close(). */
const char *geo_db_description(const struct geo_db *db);

/* Look `ip` up and fill *out (always fully written, NUL-terminated):
 * country.iso_code when level >= GEO_COUNTRY, subdivisions.0.iso_code when
 * level >= GEO_REGION, city.names.en when level == GEO_CITY; "" for
 * anything unknown, not in the database, or beyond the level.
 * A value that does not fit its field: a city name is cut at a UTF-8
 * character boundary; a country or region code is dropped (""), since a
 * cut code would name a different place. Values that are not valid UTF-8
 * are dropped. An IPv4-mapped IPv6 `ip` is looked up as IPv4.
 * Returns false only on a database error (out then all ""); an address
 * that is not in the database, a NULL `db` or GEO_OFF is not an error.
 * Thread-safe; `ip` is not modified and no copy of it survives the call. */
bool geo_lookup(const struct geo_db *db, const struct client_ip *ip, enum geo_level level,
                struct geo_result *out);

/* geo_lookup, also saying how far the answer reaches: *prefix_bits is the
 * prefix length of the database network that decided it, in bits of the
 * looked-up family (an IPv4 or mapped address: 0..32, IPv6: 0..128).
 * Every address sharing that prefix gets the same *out at any level. -1
 * when no lookup was made (NULL db, GEO_OFF, unknown family) or on a
 * database error. It says nothing about the address itself. */
bool geo_lookup_network(const struct geo_db *db, const struct client_ip *ip,
                        enum geo_level level, struct geo_result *out, int *prefix_bits);

/* A number naming this opened database, different for every geo_open()
 * of the process (a reopened file gets a new one), so that whatever was
 * derived from one database can tell it is not from the next. 0 for
 * NULL. */
uint64_t geo_db_serial(const struct geo_db *db);

/* The database's build time (its metadata's build_epoch, unix seconds), or
 * 0 for NULL or an unknown build time. */
int64_t geo_db_build_epoch(const struct geo_db *db);

#endif
