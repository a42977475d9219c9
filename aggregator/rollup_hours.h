/* rollup_hours.h - one batch's breakdown rows split by local hour, for the
 * hourly dimensions of hourly.h: per (row, hour) the page views, events
 * and distinct visitors of its events. rollup.c feeds it from the same
 * place it counts a row (one call per event and hourly dimension); the
 * plan (plan_hours.c) turns it into the `hb:` and `hu:` keys. Visits and
 * the visitors of dimensions counted per visit are not here: the plan
 * adds them when a visit starts, under the hour it started in.
 *
 * Pure C, one batch only (rollup_reset empties it); never logs. */
#ifndef VEIL_ROLLUP_HOURS_H
#define VEIL_ROLLUP_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One breakdown row's events in one local hour. Read-only for callers. */
struct rollup_hour_row {
    uint32_t row;          /* index into rollup_rows() */
    uint8_t hour;          /* local hour 0..23 */
    long long pv, ev;      /* page views, events (page views included) */
    uint32_t *visitors;    /* distinct visitor ids (not for per-visit dimensions) */
    size_t nvisitors, visitors_cap;
};

struct rollup_hours {
    uint32_t *slot;        /* row * 24 + hour -> index + 1, 0 = none */
    size_t slot_cap, slot_used;
    struct rollup_hour_row *rows;
    size_t n, cap;
    uint64_t *seen;        /* (hour row, visitor) pairs, open addressing, 0 = empty */
    size_t seen_cap, seen_n;
    struct rollup_hours_mask {
        uint32_t owner;    /* day * 24 + hour + 1 of the bits, 0 = none */
        uint32_t dims;     /* per-visitor dims the visitor joined in that hour */
    } *masks;              /* per visitor id */
    size_t masks_cap, masks_used;
};

/* Count one event of row `row` (rollup_rows index) of day `day` in local
 * hour `hour`; `visitor` joins the row-hour's visitors unless it is
 * ROLLUP_NO_VISITOR (no hash, or a dimension whose visitors are added per
 * visit). `visitor_bit` is the dimension's bit for a dimension whose value
 * is the same for all events of a visitor (schema.h SCHEMA_U_PER_VISITOR):
 * a mask per visitor and hour instead of the pair set; 0 otherwise. */
void rollup_hours_count(struct rollup_hours *h, uint32_t row, uint32_t day, unsigned hour,
                        bool pageview, uint32_t visitor, uint32_t visitor_bit);

/* Forget the batch (keeps the buffers) / free everything. */
void rollup_hours_reset(struct rollup_hours *h);
void rollup_hours_free(struct rollup_hours *h);

/* The batch's hour rows in first-seen order, valid until the next
 * rollup_reset/add/free (implemented in rollup.c). */
struct rollup;
const struct rollup_hour_row *rollup_hour_rows(const struct rollup *r, size_t *n);

#endif
