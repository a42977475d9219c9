/* rollup_hours.c - a batch's rows by local hour (see rollup_hours.h).
 * Memory is bounded by the batch; never logs. */
#include "rollup_hours.h"

#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "strmap.h"
#include "util.h"

/* (hour row, visitor) seen already; true when new. */
static bool seen_add(struct rollup_hours *h, uint32_t hr, uint32_t visitor)
{
    if ((h->seen_n + 1) * 2 > h->seen_cap) {
        uint64_t *old = h->seen;
        size_t old_cap = h->seen_cap;
        h->seen_cap = old_cap ? old_cap * 2 : 1024;
        h->seen = xcalloc(h->seen_cap, sizeof *h->seen);
        h->seen_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i])
                seen_add(h, (uint32_t)((old[i] - 1) >> 32), (uint32_t)(old[i] - 1));
        free(old);
    }
    uint64_t v = ((uint64_t)hr << 32 | visitor) + 1, x = v;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL; /* splitmix64's finalizer */
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    size_t mask = h->seen_cap - 1;
    for (size_t i = (size_t)x & mask;; i = (i + 1) & mask) {
        if (h->seen[i] == v)
            return false;
        if (h->seen[i] == 0) {
            h->seen[i] = v;
            h->seen_n++;
            return true;
        }
    }
}

/* Whether visitor joins the row of bit `bit` in (day, hour) for the first
 * time. A visitor whose events of the batch alternate between hours may
 * be listed twice: a repeated PFADD member, never a missing one. */
static bool mask_add(struct rollup_hours *h, uint32_t visitor, uint32_t day, unsigned hour,
                     uint32_t bit)
{
    if (visitor >= h->masks_cap) {
        size_t cap = h->masks_cap ? h->masks_cap : 1024;
        while (cap <= visitor)
            cap *= 2;
        h->masks = xrealloc(h->masks, cap * sizeof *h->masks);
        memset(h->masks + h->masks_cap, 0, (cap - h->masks_cap) * sizeof *h->masks);
        h->masks_cap = cap;
    }
    if (visitor >= h->masks_used)
        h->masks_used = (size_t)visitor + 1;
    struct rollup_hours_mask *m = &h->masks[visitor];
    uint32_t owner = day * 24 + (hour % 24) + 1;
    if (m->owner != owner) {
        m->owner = owner;
        m->dims = 0;
    }
    if (m->dims & bit)
        return false;
    m->dims |= bit;
    return true;
}

void rollup_hours_count(struct rollup_hours *h, uint32_t row, uint32_t day, unsigned hour,
                        bool pageview, uint32_t visitor, uint32_t visitor_bit)
{
    size_t s = (size_t)row * 24 + (hour % 24);
    if (s >= h->slot_cap) {
        size_t cap = h->slot_cap ? h->slot_cap : 24 * 256;
        while (cap <= s)
            cap *= 2;
        h->slot = xrealloc(h->slot, cap * sizeof *h->slot);
        memset(h->slot + h->slot_cap, 0, (cap - h->slot_cap) * sizeof *h->slot);
        h->slot_cap = cap;
    }
    if (s >= h->slot_used)
        h->slot_used = s + 1;
    if (h->slot[s] == 0) {
        GROW(h->rows, h->n, h->cap);
        h->rows[h->n] = (struct rollup_hour_row){.row = row, .hour = (uint8_t)(hour % 24)};
        h->slot[s] = (uint32_t)++h->n;
    }
    uint32_t hr = h->slot[s] - 1;
    struct rollup_hour_row *r = &h->rows[hr];
    r->ev++;
    if (pageview)
        r->pv++;
    if (visitor != ROLLUP_NO_VISITOR && (visitor_bit ? mask_add(h, visitor, day, hour, visitor_bit)
                                                      : seen_add(h, hr, visitor))) {
        GROW(r->visitors, r->nvisitors, r->visitors_cap);
        r->visitors[r->nvisitors++] = visitor;
    }
}

void rollup_hours_reset(struct rollup_hours *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->rows[i].visitors);
    h->n = 0;
    if (h->slot_used)
        memset(h->slot, 0, h->slot_used * sizeof *h->slot);
    h->slot_used = 0;
    if (h->seen_n)
        memset(h->seen, 0, h->seen_cap * sizeof *h->seen);
    h->seen_n = 0;
    if (h->masks_used)
        memset(h->masks, 0, h->masks_used * sizeof *h->masks);
    h->masks_used = 0;
}

void rollup_hours_free(struct rollup_hours *h)
{
    rollup_hours_reset(h);
    free(h->slot);
    free(h->rows);
    free(h->seen);
    free(h->masks);
    memset(h, 0, sizeof *h);
}
