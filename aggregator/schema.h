/* schema.h - the one table of breakdown dimensions (docs/KEYS.md): each
 * dimension's name in the keys, its stats API property, which metrics it
 * counts (b:<dim>:pv|ev|vis), whether it is counted per visit, and whose
 * visitors its row HyperLogLogs (u:<dim>:<value>) hold. Roll-up
 * (rollup.c), the plan (plan.c) and the stats API (query.c,
 * api_params.c) all read it: adding a dimension is one row here plus the
 * line in rollup.c that takes its value from an event.
 *
 * Data only: it never touches Redis, events or logs. */
#ifndef VEIL_SCHEMA_H
#define VEIL_SCHEMA_H

#include <stddef.h>

/* Metrics of a breakdown: which b:<dim>:<metric> hashes exist. */
#define SCHEMA_PV 1u  /* page views under the event's own value */
#define SCHEMA_EV 2u  /* events (page views included) under the event's own value */
#define SCHEMA_VIS 4u /* visits, under the value of the visit's first page view */

enum schema_visitors {
    SCHEMA_U_PER_EVENT = 0, /* every event adds its visitor to its row */
    SCHEMA_U_PER_VISITOR,   /* the same, but the value is the same for every event of
                               one visitor hash (geo from the IP, UA fields: the hash
                               is made of site, IP and User-Agent), so a visitor joins
                               one row per day: added once */
    SCHEMA_U_PER_VISIT,     /* the visit's first page view adds it (acquisition dims) */
    SCHEMA_U_NONE,          /* no row visitors */
};

/* Dimensions in table order; SD_PROP is the family prop:<key>. */
enum schema_dim_id {
    SD_PAGE = 0,
    SD_ENTRY_PAGE,
    SD_SOURCE,
    SD_UTM_SOURCE,
    SD_UTM_MEDIUM,
    SD_UTM_CAMPAIGN,
    SD_COUNTRY,
    SD_REGION,
    SD_CITY,
    SD_BROWSER,
    SD_BROWSER_VERSION,
    SD_OS,
    SD_DEVICE,
    SD_SCREEN,
    SD_NAME,
    SD_PROP_KEY,
    SD_PROP,
    SD_CHANNEL,
    SD_REFERRER,
    SD_GOAL,
    SD_VISITOR_TYPE,
    SD_UTM_TERM,
    SD_UTM_CONTENT,
    SD_EXIT_PAGE, /* b:exit_page:vis|nbn|dur, moved as a visit proceeds (visit_rows.c) */
    SD__COUNT /* at most 32: a dimension is a bit in rollup.c's per-visitor masks */
};

struct schema_dim {
    const char *name;               /* <dim> in key names; "prop:" is a prefix */
    const char *property;           /* stats API breakdown property, NULL = none */
    unsigned metrics;               /* SCHEMA_PV | SCHEMA_EV | SCHEMA_VIS */
    int visit_slot;                 /* index among a visit's values (rollup.h
                                       enum rollup_visit_dim), -1 = no vis */
    enum schema_visitors visitors;
};

/* The row of `id`. */
const struct schema_dim *schema_dim(enum schema_dim_id id);

/* The row of a key's <dim>: "prop:<key>" gives SD_PROP's row; NULL when
 * unknown. */
const struct schema_dim *schema_find(const char *dim);

/* The row whose visit_slot is `slot`, or NULL. */
const struct schema_dim *schema_visit_dim(int slot);

/* The metric whose hash holds every row of the dimension (its row count
 * for the cap): "ev", or "vis" for a dimension counted only per visit. */
const char *schema_primary_metric(const struct schema_dim *d);

/* "pv", "ev" or "vis" for one metric bit. */
const char *schema_metric_name(unsigned metric);

#endif
