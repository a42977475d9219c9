/* visit_rows.c - a visit's breakdown rows while it is open (see
 * visit_rows.h): the plan's part, which only adds counter increments and
 * HyperLogLog arguments to the plan (the codec is visit_rows_codec.c). No
 * I/O, never logs. */
#include "visit_rows.h"

#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "schema.h"
#include "shard_state.h"
#include "strmap.h"
#include "util.h"
#include "visit.h"

#define EXIT_DIM "exit_page"

/* ---- the plan's part ---- */

/* One visit of the batch (by rollup session). */
struct vr_visit {
    bool known;                  /* its rows are known (and counted under) */
    uint32_t day;                /* its vday: where its rows are */
    const char *row[VISIT_ROWS]; /* NUL-terminated; NULL or "" = no row */
    const char *blob;            /* row[0..ROLLUP_V_COUNT) encoded (the checkpoint's part) */
    size_t blob_len;
    const char *exit0;           /* the exit row its counts are on in Redis (NULL: none) */
    long long n0, d0;            /* its non-bounce (0/1) and seconds counted on exit0 */
    long long pend_nbn, pend_dur; /* changes of this batch not written yet */
};

struct visit_rows_plan {
    struct vr_visit *v;
    size_t n, cap;
    uint32_t *keys;              /* (vday, slot, metric) -> key index, UINT32_MAX = not yet */
    size_t keys_cap;
    uint32_t *exit_pk;           /* vday -> primary hash of exit_page, UINT32_MAX = not yet */
    size_t exit_pk_cap;
};

/* nbn: visits that are no bounce (counted at their second interaction, so
 * a visit that stays a bounce - most - costs no increment); the row's
 * bounces are its vis minus its nbn */
enum { M_NBN = 0, M_DUR, M_VIS, M__COUNT };
static const char *const metric_suffix[M__COUNT] = {":nbn", ":dur", ":vis"};

static const char *slot_dim(size_t slot)
{
    return slot == VISIT_ROW_EXIT ? EXIT_DIM : rollup_visit_dim_name((enum rollup_visit_dim)slot);
}

/* Rows are kept for the visit dimensions the stats API publishes (not
 * browser_version) and the exit page (visit_rows_slot_kept). */
static bool slot_kept(size_t slot)
{
    return visit_rows_slot_kept(slot);
}

static struct visit_rows_plan *vr_of(struct plan *p)
{
    if (!p->visit_rows)
        p->visit_rows = xcalloc(1, sizeof *p->visit_rows);
    return p->visit_rows;
}

void visit_rows_reset(struct plan *p)
{
    struct visit_rows_plan *vr = p->visit_rows;
    if (!vr)
        return;
    vr->n = 0;
    for (size_t i = 0; i < vr->keys_cap; i++)
        vr->keys[i] = UINT32_MAX;
    for (size_t i = 0; i < vr->exit_pk_cap; i++)
        vr->exit_pk[i] = UINT32_MAX;
}

void visit_rows_free(struct plan *p)
{
    struct visit_rows_plan *vr = p->visit_rows;
    if (!vr)
        return;
    free(vr->v);
    free(vr->keys);
    free(vr->exit_pk);
    free(vr);
    p->visit_rows = NULL;
}

/* The key b:<dim of slot><metric> of vday, found once per batch. */
static uint32_t key_of(struct plan *p, uint32_t vday, size_t slot, int metric)
{
    struct visit_rows_plan *vr = vr_of(p);
    size_t need = p->nvdays * VISIT_ROWS * M__COUNT;
    if (need > vr->keys_cap) {
        size_t old = vr->keys_cap;
        vr->keys_cap = need * 2;
        vr->keys = xrealloc(vr->keys, vr->keys_cap * sizeof *vr->keys);
        for (size_t i = old; i < vr->keys_cap; i++)
            vr->keys[i] = UINT32_MAX;
    }
    uint32_t *k = &vr->keys[((size_t)vday * VISIT_ROWS + slot) * M__COUNT + (size_t)metric];
    if (*k == UINT32_MAX)
        *k = plan_row_key(p, vday, slot_dim(slot), metric_suffix[metric]);
    return *k;
}

static void add(struct plan *p, uint32_t vday, size_t slot, int metric, const char *row,
                long long delta)
{
    if (delta && row && row[0])
        (void)plan_hincr(p, key_of(p, vday, slot, metric), row, delta);
}

void visit_rows_collect(struct plan *p, const struct shard_state *st, const struct rollup *r)
{
    size_t ndays, nsessions;
    const struct rollup_day *days = rollup_days(r, &ndays);
    for (size_t i = 0; i < ndays; i++)
        if (days[i].totals[ROLLUP_T_PAGEVIEWS] > 0)
            plan_collect_dim(p, days[i].base, EXIT_DIM);
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    for (size_t i = 0; i < nsessions; i++) {
        const struct shard_session *ss =
            shard_session_find(st, sessions[i].key, strlen(sessions[i].key));
        if (!ss || !ss->exit)
            continue;
        /* "<prefix>d:<site>:<day>:", without printf: once per visitor and batch */
        char base[KEY_MAX];
        size_t pl = strlen(st->prefix), sl = strlen(sessions[i].site);
        if (pl + 2 + sl + 1 + 10 + 2 > sizeof base)
            continue;
        memcpy(base, st->prefix, pl);
        memcpy(base + pl, "d:", 2);
        memcpy(base + pl + 2, sessions[i].site, sl);
        base[pl + 2 + sl] = ':';
        memcpy(base + pl + 3 + sl, ss->day, 10);
        base[pl + 13 + sl] = ':';
        base[pl + 14 + sl] = '\0';
        plan_collect_dim(p, base, EXIT_DIM);
    }
}

void visit_rows_load(struct plan *p, size_t i, size_t n, const struct shard_session *ss)
{
    struct visit_rows_plan *vr = vr_of(p);
    if (n > vr->cap) {
        vr->cap = n;
        vr->v = xrealloc(vr->v, n * sizeof *vr->v);
    }
    vr->n = n;
    struct vr_visit *v = &vr->v[i];
    memset(v, 0, sizeof *v);
    if (!ss || !ss->rows || !ss->exit)
        return;
    const char *items[ROLLUP_V_COUNT];
    size_t lens[ROLLUP_V_COUNT], used;
    if (!visit_rows_scan(ss->rows, ss->rows_len, ROLLUP_V_COUNT, items, lens, &used) ||
        used != ss->rows_len)
        return; /* cannot happen: shard_session_decode checked it */
    /* copies: the shard's memory may be rebuilt before the plan is stored */
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
        v->row[d] = lens[d] ? arena_dup(&p->arena, items[d], lens[d]) : NULL;
    v->row[VISIT_ROW_EXIT] = arena_dup(&p->arena, ss->exit, ss->exit_len);
    v->blob = arena_dup(&p->arena, ss->rows, ss->rows_len);
    v->blob_len = ss->rows_len;
    v->known = true;
    v->day = p->sessions[i].day;
    v->exit0 = v->row[VISIT_ROW_EXIT];
    v->n0 = ss->pv > 1;
    v->d0 = ss->last - ss->start;
}

/* Write the visit's changes of the batch to its rows. */
static void flush(struct plan *p, struct vr_visit *v)
{
    if (!v->known)
        return;
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        if (!slot_kept(d))
            continue;
        add(p, v->day, d, M_NBN, v->row[d], v->pend_nbn);
        add(p, v->day, d, M_DUR, v->row[d], v->pend_dur);
    }
    const char *exit = v->row[VISIT_ROW_EXIT];
    if (v->exit0 == exit || (v->exit0 && strcmp(v->exit0, exit) == 0)) {
        add(p, v->day, VISIT_ROW_EXIT, M_NBN, exit, v->pend_nbn);
        add(p, v->day, VISIT_ROW_EXIT, M_DUR, exit, v->pend_dur);
    } else {
        /* the exit moved: the whole visit leaves its old exit row */
        add(p, v->day, VISIT_ROW_EXIT, M_VIS, v->exit0, -1);
        add(p, v->day, VISIT_ROW_EXIT, M_NBN, v->exit0, -v->n0);
        add(p, v->day, VISIT_ROW_EXIT, M_DUR, v->exit0, -v->d0);
        add(p, v->day, VISIT_ROW_EXIT, M_VIS, exit, 1);
        add(p, v->day, VISIT_ROW_EXIT, M_NBN, exit, v->n0 + v->pend_nbn);
        add(p, v->day, VISIT_ROW_EXIT, M_DUR, exit, v->d0 + v->pend_dur);
    }
    v->exit0 = exit;
    v->n0 += v->pend_nbn;
    v->d0 += v->pend_dur;
    v->pend_nbn = v->pend_dur = 0;
}

/* The row of page `page` in exit_page of vday (the primary hash found once
 * per batch). */
static const char *exit_map(struct plan *p, const struct shard_state *st, uint32_t vday,
                            const char *page)
{
    struct visit_rows_plan *vr = vr_of(p);
    if (vday >= vr->exit_pk_cap) {
        size_t old = vr->exit_pk_cap;
        vr->exit_pk_cap = (size_t)vday * 2 + 8;
        vr->exit_pk = xrealloc(vr->exit_pk, vr->exit_pk_cap * sizeof *vr->exit_pk);
        for (size_t i = old; i < vr->exit_pk_cap; i++)
            vr->exit_pk[i] = UINT32_MAX;
    }
    if (vr->exit_pk[vday] == UINT32_MAX)
        vr->exit_pk[vday] = plan_visit_pk(p, vday, EXIT_DIM);
    return plan_visit_row_pk(p, st, vday, vr->exit_pk[vday], EXIT_DIM, page);
}

/* The exit row of a page view `page` on vday ("" none), its visitor added. */
static const char *exit_row(struct plan *p, const struct shard_state *st, uint32_t vday,
                            const char *page, const char *visitor)
{
    if (!page || !page[0])
        return "";
    const char *row = exit_map(p, st, vday, page);
    plan_row_visitor(p, vday, EXIT_DIM, row, visitor);
    return row;
}

void visit_rows_hit(struct plan *p, const struct shard_state *st, size_t i,
                    const struct visit_effect *fx, const char *const *rows, const char *page,
                    const char *visitor)
{
    struct visit_rows_plan *vr = vr_of(p);
    if (i >= vr->n)
        return;
    struct vr_visit *v = &vr->v[i];
    if (fx->new_visit && fx->separate) {
        /* an earlier visit arrived late: one page view, a bounce of 0 s (its
         * vis rows are counted; nothing more) */
        const char *exit = exit_row(p, st, fx->day, page, visitor);
        add(p, fx->day, VISIT_ROW_EXIT, M_VIS, exit, 1);
        plan_total(p, fx->day, "row_visits", 1);
        return;
    }
    if (fx->new_visit) {
        flush(p, v); /* the visit it replaces */
        memset(v, 0, sizeof *v);
        char blob[VISIT_ROWS_BLOB_MAX];
        size_t len = visit_rows_encode(rows, blob, sizeof blob);
        if (!len)
            return; /* a row too long to keep: the day's rows are marked incomplete */
        v->blob = arena_dup(&p->arena, blob, len);
        v->blob_len = len;
        memcpy(v->row, rows, ROLLUP_V_COUNT * sizeof *rows);
        v->day = fx->day;
        v->row[VISIT_ROW_EXIT] = exit_row(p, st, fx->day, page, visitor);
        v->known = true;
        /* a one-page visit so far: a bounce, nothing to add to nbn */
        plan_total(p, fx->day, "row_visits", 1);
        return;
    }
    if (!v->known)
        return;
    v->pend_nbn -= fx->bounces; /* -1 bounce: +1 non-bounce */
    v->pend_dur += fx->duration;
    if (fx->exit_move && page && page[0]) {
        const char *row = exit_map(p, st, v->day, page);
        if (row != v->row[VISIT_ROW_EXIT] && strcmp(row, v->row[VISIT_ROW_EXIT]) != 0) {
            v->row[VISIT_ROW_EXIT] = row;
            plan_row_visitor(p, v->day, EXIT_DIM, row, visitor);
        }
    }
}

void visit_rows_finish(struct plan *p, const struct shard_state *st)
{
    (void)st;
    struct visit_rows_plan *vr = p->visit_rows;
    if (!vr)
        return;
    for (size_t i = 0; i < vr->n; i++)
        flush(p, &vr->v[i]);
}

void visit_rows_session(const struct plan *p, size_t i, struct shard_session *out)
{
    const struct visit_rows_plan *vr = p->visit_rows;
    out->rows = out->exit = NULL;
    out->rows_len = out->exit_len = 0;
    out->exit_ts = p->sessions[i].exit_ts;
    if (!vr || i >= vr->n || !vr->v[i].known)
        return;
    const struct vr_visit *v = &vr->v[i];
    out->rows = v->blob;
    out->rows_len = v->blob_len;
    out->exit = v->row[VISIT_ROW_EXIT];
    out->exit_len = strlen(out->exit);
}
