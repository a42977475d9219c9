/* plan_hours.c - hourly rows of a batch's plan (see plan_hours.h). Pure
 * C: no Redis, no clock, never logs. */
#include "plan_hours.h"

#include <string.h>

#include "hourly.h"
#include "rollup_hours.h"
#include "schema.h"
#include "util.h"

/* "<base>hb:<dim>": the day's hash of hourly rows of dim, indexed. */
static bool hash_key_make(struct plan *p, const char *base, const char *dim, int64_t exp,
                          uint32_t *k)
{
    char key[KEY_MAX], suffix[160];
    size_t bl = strlen(base);
    if (!hourly_hash_suffix(suffix, sizeof suffix, dim))
        return false;
    size_t sl = strlen(suffix);
    if (bl + sl >= sizeof key)
        return false;
    memcpy(key, base, bl);
    memcpy(key + bl, suffix, sl + 1);
    *k = plan_key(p, key, bl + sl, exp);
    return true;
}

/* hash_key_make, found once per (vday, dimension) of the plan */
static bool hash_key(struct plan *p, uint32_t vdi, const struct schema_dim *sd, int64_t exp,
                     uint32_t *k)
{
    size_t need = p->nvdays * SD__COUNT, id = (size_t)(sd - schema_dim(SD_PAGE));
    if (need > p->hours_key_cap) {
        size_t old = p->hours_key_cap;
        p->hours_key_cap = need * 2;
        p->hours_key = xrealloc(p->hours_key, p->hours_key_cap * sizeof *p->hours_key);
        for (size_t i = old; i < p->hours_key_cap; i++)
            p->hours_key[i] = UINT32_MAX;
    }
    uint32_t *slot = &p->hours_key[vdi * SD__COUNT + id];
    if (*slot == UINT32_MAX && !hash_key_make(p, p->vdays[vdi].base, sd->name, exp, slot))
        return false;
    *k = *slot;
    return true;
}

/* HINCRBY <hb:dim> "<HH>:<metric>:<row>" delta. */
static void count(struct plan *p, uint32_t k, unsigned hour, const char *metric,
                  const char *row, long long delta)
{
    char field[9 + KEY_MAX];
    size_t rl = strlen(row);
    hourly_field_prefix(field, hour, metric);
    size_t fl = strlen(field);
    if (fl + rl >= sizeof field)
        return;
    memcpy(field + fl, row, rl + 1);
    plan_hincr(p, k, field, delta);
}

/* "<base>hu:<dim>:<HH>:<row>", indexed. */
static bool visitors_key(struct plan *p, const char *base, const char *dim, unsigned hour,
                         const char *row, int64_t exp, uint32_t *k)
{
    char key[KEY_MAX], prefix[160];
    size_t bl = strlen(base), rl = strlen(row);
    if (!hourly_visitors_prefix(prefix, sizeof prefix, dim, hour))
        return false;
    size_t pl = strlen(prefix);
    if (bl + pl + rl >= sizeof key)
        return false;
    memcpy(key, base, bl);
    memcpy(key + bl, prefix, pl);
    memcpy(key + bl + pl, row, rl + 1);
    *k = plan_key(p, key, bl + pl + rl, exp);
    return true;
}

void plan_hours_rows(struct plan *p, const struct shard_state *st, const struct rollup *r)
{
    size_t ndays, nrows, nhr;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hour_row *hrs = rollup_hour_rows(r, &nhr);
    for (size_t i = 0; i < p->hours_key_cap; i++) /* a new plan: key indexes are new */
        p->hours_key[i] = UINT32_MAX;
    /* which events of each hour have hourly rows: all of them from now on */
    for (size_t i = 0; i < ndays; i++) {
        const struct rollup_day *d = &days[i];
        uint32_t k = UINT32_MAX;
        for (unsigned h = 0; h < 24; h++) {
            if (!d->hour_ev[h])
                continue;
            char key[KEY_MAX], field[24];
            size_t bl = strlen(d->base);
            if (k == UINT32_MAX) {
                if (bl + 6 > sizeof key)
                    break;
                memcpy(key, d->base, bl);
                memcpy(key + bl, "hours", 6);
                k = plan_key(p, key, bl + 5, d->expire_at);
            }
            str_format(field, sizeof field, "%02u:%s", h, HOURLY_COVER_FIELD);
            plan_hincr(p, k, field, d->hour_ev[h]);
        }
    }
    for (size_t i = 0; i < nhr; i++) {
        const struct rollup_hour_row *hr = &hrs[i];
        const struct rollup_row *row = &rows[hr->row];
        const struct rollup_day *d = &days[row->day];
        const struct schema_dim *sd = schema_find(row->dim);
        if (!sd)
            continue;
        const char *target = plan_row(p, st, d->base, row->dim, row->value, d->expire_at);
        uint32_t k;
        if (!hash_key(p, p->day_vday[row->day], sd, d->expire_at, &k))
            continue;
        /* events as page views plus "oe", the others: most rows have no
         * other events, so one counter instead of two */
        bool pv = sd->metrics & SCHEMA_PV;
        if (pv && hr->pv > 0)
            count(p, k, hr->hour, "pv", target, hr->pv);
        long long other = pv ? hr->ev - hr->pv : hr->ev;
        if ((sd->metrics & SCHEMA_EV) && other > 0)
            count(p, k, hr->hour, pv ? "oe" : "ev", target, other);
        if (hr->nvisitors == 0 ||
            !visitors_key(p, d->base, row->dim, hr->hour, target, d->expire_at, &k))
            continue;
        for (size_t v = 0; v < hr->nvisitors; v++)
            plan_pfadd(p, k, rollup_visitor(r, hr->visitors[v]));
    }
}

void plan_hours_visit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                      unsigned hour, const char *visitor, const char *const *values)
{
    const struct vday *vd = &p->vdays[vdi];
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        const struct schema_dim *sd = schema_visit_dim((int)d);
        if (!values[d][0] || !sd || !hourly_dim((enum schema_dim_id)(sd - schema_dim(SD_PAGE))))
            continue;
        /* visit() has just mapped the value: its cell is found, not decided */
        size_t at = (size_t)vdi * ROLLUP_V_COUNT + d;
        uint32_t pk = at < p->vis_cap ? p->vis_pk[at] : UINT32_MAX;
        const char *row = pk != UINT32_MAX
                              ? plan_row_pk(p, st, vd->base, pk, sd->name, values[d], vd->exp)
                              : plan_row(p, st, vd->base, sd->name, values[d], vd->exp);
        uint32_t k;
        if (!hash_key(p, vdi, sd, vd->exp, &k))
            continue;
        count(p, k, hour, "vis", row, 1);
        if (sd->visitors == SCHEMA_U_PER_VISIT &&
            visitors_key(p, vd->base, sd->name, hour, row, vd->exp, &k))
            plan_pfadd(p, k, visitor);
    }
}
