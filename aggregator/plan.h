/* plan.h - what one batch of one shard writes, decided in C from the
 * combined batch (rollup.h) and the shard's memory (shard_state.h):
 * visits, bounces and durations (visit.c), the row each value lands in
 * ("(other)" past breakdown_cap), and the combined counter increments and
 * HyperLogLog adds, including the per-minute realtime HyperLogLogs.
 * commit.c sends the plan in one function call and, when it succeeded,
 * makes it the shard's memory.
 *
 * A plan holds key names, dimension values, counts and visitor hashes of
 * one batch only; it never does I/O and never logs. */
#ifndef VEIL_PLAN_H
#define VEIL_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollup.h"
#include "shard_state.h"
#include "strmap.h"
#include "visit.h"

#define KEY_MAX 4096          /* the longest key: base + "u:" + dim + ":" + a 2000-byte path */
#define REALTIME_WINDOW_S 300 /* realtime visitors: the last five minutes */
#define REALTIME_KEEP_S 420   /* a minute's HyperLogLog lives this long past its minute */
#define PLAN_BUDGET_KEY "rows" /* <base>rows: field "prop" = property rows of the site-day */

/* A breakdown's primary hash (b:<dim>:ev, b:entry_page:vis). */
struct pk {
    const char *key;
    uint32_t spk;         /* its index in the shard's memory */
    long long rows;       /* rows other than "(other)": known, plus admitted */
    bool budget;          /* the site-day's property budget (<base>rows), not a hash of rows */
    const char *budget_field; /* the budget's field: NULL = "prop" (plan_pairs.c: "cells") */
};

/* One value of one breakdown the batch touches. */
struct cell {
    uint32_t pk;
    const char *value;
    bool exists;          /* already a row */
    const char *row;      /* planned row (value or "(other)"), NULL = not yet */
    uint32_t aux;         /* plan_pairs.c: its visitor HyperLogLog's key index + 1 */
};

/* A day a visit of the batch counts in: a day of the batch, or the day an
 * open visit from memory started. visit_state.day indexes these. */
struct vday {
    const char *base;     /* "<prefix>d:<site>:<day>:" */
    int64_t exp;          /* its keys' expiry */
    char day[11];
};

/* A key the plan writes: its expiry. */
struct wkey {
    const char *name;
    size_t len;
    int64_t expire_at;
    bool realtime;        /* expiry sent on every write */
};

struct inc {
    uint32_t key;
    const char *field;
    long long delta;
};

struct pfitem {
    uint32_t key;
    uint32_t seq;
    const char *member;
};

struct plan {
    struct arena_chunk *arena;
    struct smap pk_map, cell_map, key_map, inc_map, pf_map;
    struct pk *pks;
    size_t npks, pks_cap;
    struct cell *cells;
    size_t ncells, cells_cap;
    struct visit_state *sessions; /* per rollup session */
    size_t sessions_cap;
    struct smap vday_map;
    struct vday *vdays;
    size_t nvdays, vdays_cap;
    uint32_t *day_vday;           /* rollup day -> vday */
    size_t day_vday_cap;
    struct wkey *keys;
    size_t nkeys, keys_cap;
    struct inc *incs;
    size_t nincs, incs_cap;
    struct pfitem *pfs;
    size_t npfs, pfs_cap;
    const char **closed;  /* checkpoint fields of visits the sweep closes */
    size_t nclosed, closed_cap;
    long long cap, timeout, prop_budget;
    /* per visitor id of the batch: its seen mask (shard_state.h) for day
     * seen_day (a rollup day index, UINT32_MAX = not read), and the bits
     * this plan adds */
    uint32_t *seen, *seen_day, *seen_added;
    size_t seen_cap;
    /* per (vday, visit dimension): primary hash and b:<dim>:vis key index */
    uint32_t *vis_pk, *vis_key;
    size_t vis_cap;
    /* two-dimensional counts (plan_pairs.c): the budget, and per (vday,
     * pair class) the indexes + 1 of its primary hash, metric keys, and
     * overflow marks' hash and key, whether "*" is marked, and the
     * increments of its "(other)" per metric; per cell, its increments */
    long long pair_budget;
    uint32_t pair_dims;       /* visit slots paired (bit d = slot d) */
    uint32_t (*pair_cache)[10];
    size_t pair_cache_cap;
    uint32_t (*pair_incs)[3]; /* per cell (p->cells index): inc index + 1 per metric */
    size_t pair_incs_cap;
    struct visit_rows_plan *visit_rows; /* visit_rows.c: each visit's rows */
    /* per (vday, schema dimension): its hb:<dim> key index (plan_hours.c) */
    uint32_t *hours_key;
    size_t hours_key_cap;
};

/* Forget the last plan (keeps the buffers) / free everything. */
void plan_reset(struct plan *p);
void plan_free(struct plan *p);

/* Step 1: every breakdown (primary hash) the batch may map a value in,
 * into p->pks (spk not yet known: the caller finds or loads each in the
 * shard's memory and sets spk and rows). */
void plan_collect(struct plan *p, const struct rollup *r);

/* Step 2: the batch's days and its visitors' open visits from memory. */
void plan_load_sessions(struct plan *p, struct shard_state *st, const struct rollup *r);

/* Step 3: the whole plan, in the order that decides which values get rows
 * before a cap is reached: day totals, rows in first-seen order, visits.
 * `now` (unix time) places the realtime window. */
void plan_make(struct plan *p, const struct shard_state *st, const struct rollup *r,
               int64_t now);

/* After a successful commit: record in the shard's memory which
 * per-visitor HyperLogLogs now hold which visitors. */
void plan_seen_commit(const struct plan *p, struct shard_state *st, const struct rollup *r);

/* ---- for plan_pairs.c (plan_pairs.h), which adds the pair counts ---- */

/* The index of primary hash (or, with budget_field, budget) `key`. */
uint32_t plan_pk(struct plan *p, const char *key, size_t len, const char *budget_field);
/* The cell of `value` (copied when new) in primary hash pk. */
uint32_t plan_cell(struct plan *p, uint32_t pk, const char *value, size_t len);
/* Whether primary hash pk has a cell `value` in this plan (*cell). */
bool plan_cell_find(struct plan *p, uint32_t pk, const char *value, uint32_t *cell);
/* The index of written key `key` (copied when new). */
uint32_t plan_key(struct plan *p, const char *key, size_t len, int64_t expire_at);
/* HINCRBY field (stable until reset) of key k by delta; the index of the
 * increment in p->incs (add to its delta for the same key and field). */
uint32_t plan_hincr(struct plan *p, uint32_t k, const char *field, long long delta);
/* PFADD member (stable until reset) to key k. */
void plan_pfadd(struct plan *p, uint32_t k, const char *member);

/* The sweep: the checkpoint fields of the shard's visits whose last event
 * is before `cutoff` (stream time) go into p->closed; plan_sweep_keep
 * (arg: &cutoff) is the matching filter for shard_session_filter. */
void plan_sweep(struct plan *p, const struct shard_state *st, int64_t cutoff);
bool plan_sweep_keep(void *arg, const struct shard_session *s);

/* ---- for visit_rows.c: counting under a visit's day ---- */

/* Register the primary hash of `dim` in the site-day `base` (step 1). */
void plan_collect_dim(struct plan *p, const char *base, const char *dim);
/* The key index of "<base of vday>b:<dim><metric>" (metric ":nbn", ...). */
uint32_t plan_row_key(struct plan *p, uint32_t vday, const char *dim, const char *metric);
/* HINCRBY <base of vday>totals field. */
void plan_total(struct plan *p, uint32_t vday, const char *field, long long delta);
/* The row `value` is counted in for `dim` on vday (itself or "(other)",
 * admitted against breakdown_cap like every row), with the primary hash
 * of `dim` on vday found by plan_visit_pk (once per batch). */
uint32_t plan_visit_pk(struct plan *p, uint32_t vday, const char *dim);
const char *plan_visit_row_pk(struct plan *p, const struct shard_state *st, uint32_t vday,
                              uint32_t pk, const char *dim, const char *value);
/* PFADD visitor to <base of vday>u:<dim>:<row>. */
void plan_row_visitor(struct plan *p, uint32_t vday, const char *dim, const char *row,
                      const char *visitor);

/* ---- for plan_hours.c (hourly rows, plan_hours.h) ---- */

/* The row `value` of breakdown `dim` of site-day `base` is counted in
 * (itself or "(other)", decided once per batch, as for the daily rows). */
const char *plan_row(struct plan *p, const struct shard_state *st, const char *base,
                     const char *dim, const char *value, int64_t expire_at);
/* The same with the primary hash's index pk (pk_index) known. */
const char *plan_row_pk(struct plan *p, const struct shard_state *st, const char *base,
                        uint32_t pk, const char *dim, const char *value, int64_t expire_at);
/* Keys, HINCRBY and PFADD: plan_key, plan_hincr and plan_pfadd above
 * (members must live until the commit). */

#endif
