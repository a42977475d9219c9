/* hourly.h - which breakdowns also keep local-hour rows (the "main"
 * dimensions the dashboard filters on most), and the names of their keys
 * (docs/KEYS.md "hb:" and "hu:"). Roll-up (rollup_hours.c), the plan
 * (plan_hours.c) and the stats API (query_hours.c) all read this one list:
 * adding a dimension to the hourly ones is one entry here.
 *
 * Data and names only: it never touches Redis, events or logs. */
#ifndef VEIL_HOURLY_H
#define VEIL_HOURLY_H

#include <stdbool.h>
#include <stddef.h>

#include "schema.h"

/* <HH>:<this> in the `hours` hash: events of that hour whose hourly rows
 * were written (equal to <HH>:events on every hour counted since hourly
 * rows exist; the stats API refuses a filtered hour where they differ). */
#define HOURLY_COVER_FIELD "hourly_rows"

/* True when dimension `id` keeps hourly rows. */
bool hourly_dim(enum schema_dim_id id);

/* The same for a key's <dim> name ("source", "prop:plan" -> false). */
bool hourly_dim_name(const char *dim);

/* The stats API properties with hourly rows, comma-separated, for error
 * messages ("event:page, visit:entry_page, ..."). */
const char *hourly_properties(void);

/* "hb:<dim>": the suffix (after a day's base) of the hash of hourly rows;
 * its fields are "<HH>:<metric>:<row>" (metric pv, ev, vis). False when
 * out is too small. */
bool hourly_hash_suffix(char *out, size_t outlen, const char *dim);

/* "<HH>:<metric>:" into out (at least 9 bytes): a field's prefix. */
void hourly_field_prefix(char out[9], unsigned hour, const char *metric);

/* "hu:<dim>:<HH>:": the prefix of the row HyperLogLogs of hour `hour`
 * (the row value follows). False when out is too small. */
bool hourly_visitors_prefix(char *out, size_t outlen, const char *dim, unsigned hour);

#endif
