/* geo_names.h - names of countries and regions for the stats API's
 * visit:country_name and visit:region_name (docs/API.md "Filters"), read
 * from Debian's iso-codes package (iso_3166-1.json, iso_3166-2.json in
 * the directory of the iso_codes_dir directive). The counts keep ISO codes
 * (countries "DE", regions "DE-BY"); a name is only ever looked up for
 * display and for matching a filter.
 *
 * One process-wide table, loaded once at start before the stats API
 * thread exists and read-only afterwards (no locks). It never holds
 * anything about visitors, and no name is typed into C. */
#ifndef VEIL_GEO_NAMES_H
#define VEIL_GEO_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Load both files of `dir` (replacing a previous table). Returns 0, or -1
 * with a reason naming the file in err (the table is then empty). Not
 * thread-safe: call before any reader runs. */
int geo_names_load(const char *dir, char *err, size_t errlen);

/* Drop the table (names are then unknown). */
void geo_names_unload(void);

/* True once geo_names_load succeeded. */
bool geo_names_loaded(void);

/* Countries and regions in the table (for the start-up log line). */
size_t geo_names_count(void);

/* The English name of country code[0..len) ("DE" -> "Germany"), or of
 * region code[0..len) ("DE-BY" -> "Bayern"); NULL when unknown. The
 * string lives until geo_names_load or geo_names_unload. */
const char *geo_names_country(const char *code, size_t len);
const char *geo_names_region(const char *code, size_t len);

#endif
