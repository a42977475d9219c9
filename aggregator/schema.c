/* schema.c - the dimension table (see schema.h). Data only. */
#include "schema.h"

#include <pthread.h>
#include <string.h>

#include "rollup.h"

#define ALL (SCHEMA_PV | SCHEMA_EV | SCHEMA_VIS)
#define PER_EVENT (SCHEMA_PV | SCHEMA_EV)

/* Row visitors only where a published number needs them: the stats API
 * has no property for browser_version and prop_key, so they have none. */
static const struct schema_dim dims[SD__COUNT] = {
    [SD_PAGE] = {"page", "event:page", PER_EVENT, -1, SCHEMA_U_PER_EVENT},
    [SD_ENTRY_PAGE] = {"entry_page", "visit:entry_page", SCHEMA_VIS, ROLLUP_V_ENTRY_PAGE,
                       SCHEMA_U_PER_VISIT},
    [SD_SOURCE] = {"source", "visit:source", ALL, ROLLUP_V_SOURCE, SCHEMA_U_PER_VISIT},
    [SD_UTM_SOURCE] = {"utm_source", "visit:utm_source", ALL, ROLLUP_V_UTM_SOURCE,
                       SCHEMA_U_PER_VISIT},
    [SD_UTM_MEDIUM] = {"utm_medium", "visit:utm_medium", ALL, ROLLUP_V_UTM_MEDIUM,
                       SCHEMA_U_PER_VISIT},
    [SD_UTM_CAMPAIGN] = {"utm_campaign", "visit:utm_campaign", ALL, ROLLUP_V_UTM_CAMPAIGN,
                         SCHEMA_U_PER_VISIT},
    [SD_COUNTRY] = {"country", "visit:country", ALL, ROLLUP_V_COUNTRY, SCHEMA_U_PER_VISITOR},
    [SD_REGION] = {"region", "visit:region", ALL, ROLLUP_V_REGION, SCHEMA_U_PER_VISITOR},
    [SD_CITY] = {"city", "visit:city", ALL, ROLLUP_V_CITY, SCHEMA_U_PER_VISITOR},
    [SD_BROWSER] = {"browser", "visit:browser", ALL, ROLLUP_V_BROWSER, SCHEMA_U_PER_VISITOR},
    [SD_BROWSER_VERSION] = {"browser_version", NULL, ALL, ROLLUP_V_BROWSER_VERSION,
                            SCHEMA_U_NONE},
    [SD_OS] = {"os", "visit:os", ALL, ROLLUP_V_OS, SCHEMA_U_PER_VISITOR},
    [SD_DEVICE] = {"device", "visit:device", ALL, ROLLUP_V_DEVICE, SCHEMA_U_PER_VISITOR},
    [SD_SCREEN] = {"screen", "visit:screen", ALL, ROLLUP_V_SCREEN, SCHEMA_U_PER_EVENT},
    [SD_NAME] = {"name", "event:name", PER_EVENT, -1, SCHEMA_U_PER_EVENT},
    [SD_PROP_KEY] = {"prop_key", NULL, PER_EVENT, -1, SCHEMA_U_NONE},
    [SD_PROP] = {"prop:", "event:props:", PER_EVENT, -1, SCHEMA_U_PER_EVENT},
    [SD_CHANNEL] = {"channel", "visit:channel", ALL, ROLLUP_V_CHANNEL, SCHEMA_U_PER_VISIT},
    [SD_REFERRER] = {"referrer", "visit:referrer", ALL, ROLLUP_V_REFERRER, SCHEMA_U_PER_VISIT},
    [SD_GOAL] = {"goal", "event:goal", PER_EVENT, -1, SCHEMA_U_PER_EVENT},
    [SD_VISITOR_TYPE] = {"visitor_type", "visit:visitor_type", SCHEMA_VIS, ROLLUP_V_VISITOR_TYPE,
                         SCHEMA_U_PER_VISIT},
    [SD_UTM_TERM] = {"utm_term", "visit:utm_term", ALL, ROLLUP_V_UTM_TERM, SCHEMA_U_PER_VISIT},
    [SD_UTM_CONTENT] = {"utm_content", "visit:utm_content", ALL, ROLLUP_V_UTM_CONTENT,
                        SCHEMA_U_PER_VISIT},
    /* the page of each visit's latest page view, counted by visit_rows.c (no visit slot:
       its row moves as the visit proceeds); its row visitors are added whenever a visit's
       exit lands on the row */
    [SD_EXIT_PAGE] = {"exit_page", "visit:exit_page", SCHEMA_VIS, -1, SCHEMA_U_PER_VISIT},
};

const struct schema_dim *schema_dim(enum schema_dim_id id)
{
    return (unsigned)id < SD__COUNT ? &dims[id] : NULL;
}

const struct schema_dim *schema_find(const char *dim)
{
    /* the plan passes the table's own name strings: compare pointers first */
    for (size_t i = 0; i < SD__COUNT; i++)
        if (dims[i].name == dim)
            return &dims[i];
    if (strncmp(dim, "prop:", 5) == 0)
        return &dims[SD_PROP];
    for (size_t i = 0; i < SD__COUNT; i++)
        if (strcmp(dims[i].name, dim) == 0)
            return &dims[i];
    return NULL;
}

/* visit slot -> row, built once from the table */
static const struct schema_dim *by_slot[SD__COUNT];
static pthread_once_t by_slot_once = PTHREAD_ONCE_INIT;

static void by_slot_init(void)
{
    for (size_t i = 0; i < SD__COUNT; i++)
        if (dims[i].visit_slot >= 0 && dims[i].visit_slot < SD__COUNT)
            by_slot[dims[i].visit_slot] = &dims[i];
}

const struct schema_dim *schema_visit_dim(int slot)
{
    if (slot < 0 || slot >= SD__COUNT)
        return NULL;
    pthread_once(&by_slot_once, by_slot_init);
    return by_slot[slot];
}

const char *schema_primary_metric(const struct schema_dim *d)
{
    return d && !(d->metrics & SCHEMA_EV) ? "vis" : "ev";
}

const char *schema_metric_name(unsigned metric)
{
    return metric == SCHEMA_PV ? "pv" : metric == SCHEMA_VIS ? "vis" : "ev";
}
