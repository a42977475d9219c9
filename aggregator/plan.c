/* plan.c - the plan of one batch of one shard, from the shard's memory
 * (see plan.h). Pure C: no Redis, no clock (the caller passes `now`),
 * never logs. The visit rules themselves are in visit.c. */
#include "plan.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "plan_hours.h"
#include "plan_pairs.h"
#include "schema.h"
#include "util.h"
#include "visit_rows.h"

void plan_reset(struct plan *p)
{
    smap_clear(&p->pk_map);
    smap_clear(&p->cell_map);
    smap_clear(&p->key_map);
    smap_clear(&p->inc_map);
    smap_clear(&p->pf_map);
    smap_clear(&p->vday_map);
    arena_free(&p->arena);
    for (size_t i = 0; i < p->vis_cap; i++)
        p->vis_pk[i] = p->vis_key[i] = UINT32_MAX;
    if (p->pair_cache_cap)
        memset(p->pair_cache, 0, p->pair_cache_cap * sizeof *p->pair_cache);
    if (p->pair_incs_cap)
        memset(p->pair_incs, 0,
               (p->ncells < p->pair_incs_cap ? p->ncells : p->pair_incs_cap) *
                   sizeof *p->pair_incs);
    visit_rows_reset(p);
    p->npks = p->ncells = p->nkeys = p->nincs = p->npfs = p->nclosed = p->nvdays = 0;
}

void plan_free(struct plan *p)
{
    plan_reset(p);
    smap_free(&p->pk_map);
    smap_free(&p->cell_map);
    smap_free(&p->key_map);
    smap_free(&p->inc_map);
    smap_free(&p->pf_map);
    smap_free(&p->vday_map);
    free(p->vdays);
    free(p->day_vday);
    free(p->vis_pk);
    free(p->vis_key);
    free(p->pair_cache);
    free(p->pair_incs);
    visit_rows_free(p);
    free(p->hours_key);
    free(p->seen);
    free(p->seen_day);
    free(p->seen_added);
    free(p->pks);
    free(p->cells);
    free(p->sessions);
    free(p->keys);
    free(p->incs);
    free(p->pfs);
    free(p->closed);
}

/* Concatenate up to four parts into buf (KEY_MAX); false when too long. */
static bool join(char *buf, size_t *len, const char *a, const char *b, const char *c,
                 const char *d)
{
    const char *parts[] = {a, b, c, d};
    size_t n = 0;
    for (size_t i = 0; i < 4; i++) {
        if (!parts[i])
            continue;
        size_t l = strlen(parts[i]);
        if (n + l >= KEY_MAX)
            return false;
        memcpy(buf + n, parts[i], l);
        n += l;
    }
    buf[n] = '\0';
    *len = n;
    return true;
}

/* ":ev" or ":vis": the metric whose hash holds every row of dim */
static const char *pk_suffix(const char *dim)
{
    return strcmp(schema_primary_metric(schema_find(dim)), "vis") == 0 ? ":vis" : ":ev";
}

static uint32_t pk_intern(struct plan *p, const char *key, size_t len, bool budget);

/* The index of the primary hash of `dim` in the site-day `base`. */
static uint32_t pk_index(struct plan *p, const char *base, const char *dim)
{
    char key[KEY_MAX];
    size_t len;
    if (!join(key, &len, base, "b:", dim, pk_suffix(dim)))
        abort(); /* dims and bases are short: cannot happen */
    return pk_intern(p, key, len, false);
}

/* The property-row budget of the site-day `base`: the hash <base>rows,
 * field "prop", counts the rows of all its prop:<key> breakdowns. */
static uint32_t budget_index(struct plan *p, const char *base)
{
    char key[KEY_MAX];
    size_t len;
    if (!join(key, &len, base, PLAN_BUDGET_KEY, NULL, NULL))
        abort();
    return pk_intern(p, key, len, true);
}

static uint32_t pk_intern(struct plan *p, const char *key, size_t len, bool budget)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->pk_map, &p->arena, key, len, (uint32_t)p->npks, &created,
                             &stored);
    if (created) {
        GROW(p->pks, p->npks, p->pks_cap);
        p->pks[p->npks++] = (struct pk){.key = stored, .spk = UINT32_MAX, .budget = budget};
    }
    return i;
}

/* Map key "<4-byte index><s>" in buf (the map copies it when new); the
 * arena only for a string longer than any dimension value. */
static size_t plan_indexed_key(struct plan *p, char (*buf)[4 + KEY_MAX], uint32_t index,
                          const char *s, const char **key)
{
    size_t len = strlen(s);
    char *k = 4 + len <= sizeof *buf ? *buf : arena_alloc(&p->arena, 4 + len);
    memcpy(k, &index, 4);
    memcpy(k + 4, s, len);
    *key = k;
    return 4 + len;
}

/* The cell of `value` in primary hash `pk`, created when new. */
static uint32_t cell_index(struct plan *p, uint32_t pk, const char *value)
{
    char buf[4 + KEY_MAX];
    const char *k;
    size_t klen = plan_indexed_key(p, &buf, pk, value, &k);
    bool created;
    uint32_t i = smap_intern(&p->cell_map, &p->arena, k, klen, (uint32_t)p->ncells, &created,
                             NULL);
    if (created) {
        GROW(p->cells, p->ncells, p->cells_cap);
        p->cells[p->ncells++] = (struct cell){.pk = pk, .value = value};
    }
    return i;
}

/* Step 1a: every breakdown the plan may map a value in. */
void plan_collect(struct plan *p, const struct rollup *r)
{
    size_t ndays, nrows;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    for (size_t i = 0; i < nrows; i++) {
        const char *base = days[rows[i].day].base;
        if (strncmp(rows[i].dim, "prop:", 5) == 0) {
            pk_index(p, base, "prop_key");
            budget_index(p, base);
        }
        pk_index(p, base, rows[i].dim);
    }
    /* a visit may start on any day of the batch that has page views: its
     * dimensions' breakdowns depend on the day only, not on the values */
    for (size_t i = 0; i < ndays; i++)
        if (days[i].totals[ROLLUP_T_PAGEVIEWS] > 0)
            for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
                pk_index(p, days[i].base, rollup_visit_dim_name((enum rollup_visit_dim)d));
    plan_pairs_collect(p, r);
}

/* The vday of (base, exp, day), registered when new. */
static uint32_t vday_index(struct plan *p, const char *base, int64_t exp, const char *day)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->vday_map, &p->arena, base, strlen(base), (uint32_t)p->nvdays,
                             &created, &stored);
    if (created) {
        GROW(p->vdays, p->nvdays, p->vdays_cap);
        struct vday *v = &p->vdays[p->nvdays++];
        v->base = stored;
        v->exp = exp;
        str_copy(v->day, sizeof v->day, day, strlen(day));
    }
    return i;
}

/* Step 1c: the batch's days, and its visitors' open visits copied from
 * memory. */
void plan_load_sessions(struct plan *p, struct shard_state *st, const struct rollup *r)
{
    size_t ndays, nsessions;
    const struct rollup_day *days = rollup_days(r, &ndays);
    if (ndays > p->day_vday_cap) {
        p->day_vday_cap = ndays;
        p->day_vday = xrealloc(p->day_vday, ndays * sizeof *p->day_vday);
    }
    for (size_t i = 0; i < ndays; i++)
        p->day_vday[i] = vday_index(p, days[i].base, days[i].expire_at, days[i].day);
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    if (nsessions > p->sessions_cap) {
        p->sessions_cap = nsessions;
        p->sessions = xrealloc(p->sessions, nsessions * sizeof *p->sessions);
    }
    for (size_t i = 0; i < nsessions; i++) {
        struct visit_state *s = &p->sessions[i];
        const struct shard_session *ss =
            shard_session_find(st, sessions[i].key, strlen(sessions[i].key));
        memset(s, 0, sizeof *s);
        char base[KEY_MAX];
        size_t blen;
        if (!ss || !join(base, &blen, st->prefix, "d:", sessions[i].site, ":") ||
            blen + 12 > sizeof base) {
            visit_rows_load(p, i, nsessions, NULL);
            continue;
        }
        memcpy(base + blen, ss->day, 10); /* "<prefix>d:<site>:<day>:" */
        base[blen + 10] = ':';
        base[blen + 11] = '\0';
        s->open = true;
        s->pv = ss->pv;
        s->start = ss->start;
        s->last = ss->last;
        s->page = ss->page;
        s->scroll = ss->scroll;
        s->hour = (uint8_t)ss->hour;
        s->exit_ts = ss->rows ? ss->exit_ts : ss->last;
        s->day = vday_index(p, base, ss->exp, ss->day);
        visit_rows_load(p, i, nsessions, ss);
    }
}

/* ---- step 2: the plan ---- */

static uint32_t wkey_index(struct plan *p, const char *key, size_t len, int64_t expire_at,
                           bool realtime)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->key_map, &p->arena, key, len, (uint32_t)p->nkeys, &created,
                             &stored);
    if (created) {
        GROW(p->keys, p->nkeys, p->keys_cap);
        p->keys[p->nkeys++] = (struct wkey){stored, len, expire_at, realtime};
    }
    return i;
}

static uint32_t hincr_k(struct plan *p, uint32_t k, const char *field, long long delta);

static void hincr(struct plan *p, const char *key, size_t klen, const char *field,
                  long long delta, int64_t expire_at)
{
    hincr_k(p, wkey_index(p, key, klen, expire_at, false), field, delta);
}

/* HINCRBY field of the key indexed as k; the index of its increment. */
static uint32_t hincr_k(struct plan *p, uint32_t k, const char *field, long long delta)
{
    char buf[4 + KEY_MAX];
    const char *ik;
    size_t iklen = plan_indexed_key(p, &buf, k, field, &ik);
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->inc_map, &p->arena, ik, iklen, (uint32_t)p->nincs, &created,
                             &stored);
    if (created) {
        GROW(p->incs, p->nincs, p->incs_cap);
        p->incs[p->nincs++] = (struct inc){k, stored + 4, 0};
    }
    p->incs[i].delta += delta;
    return i;
}

static void hincr_at(struct plan *p, const char *base, const char *suffix, const char *field,
                     long long delta, int64_t expire_at)
{
    char key[KEY_MAX];
    size_t len;
    if (join(key, &len, base, suffix, NULL, NULL))
        hincr(p, key, len, field, delta, expire_at);
}

/* PFADD member to key. */
static void pfadd(struct plan *p, const char *key, size_t klen, const char *member,
                  int64_t expire_at, bool realtime)
{
    uint32_t k = wkey_index(p, key, klen, expire_at, realtime);
    if (realtime) {
        /* a visitor's events of one minute: added once (row visitors come
         * distinct per row from rollup.c; a repeat costs Redis nothing but
         * an argument, so they are not checked again here) */
        char buf[4 + KEY_MAX];
        const char *ik;
        size_t iklen = plan_indexed_key(p, &buf, k, member, &ik);
        bool created;
        smap_intern(&p->pf_map, &p->arena, ik, iklen, 0, &created, NULL);
        if (!created)
            return;
    }
    GROW(p->pfs, p->npfs, p->pfs_cap);
    p->pfs[p->npfs] = (struct pfitem){k, (uint32_t)p->npfs, member};
    p->npfs++;
}

/* The row `value` is counted in: itself, or "(other)" once the breakdown
 * holds `cap` rows, or for a prop:<key> breakdown once the site-day's
 * property rows reach the budget (docs/AGGREGATOR.md "Breakdown cap"). */
static const char *map_row_pk(struct plan *p, const struct shard_state *st, const char *base,
                              uint32_t pki, const char *dim, const char *value,
                              int64_t expire_at);

static const char *map_row(struct plan *p, const struct shard_state *st, const char *base,
                           const char *dim, const char *value, int64_t expire_at)
{
    return map_row_pk(p, st, base, pk_index(p, base, dim), dim, value, expire_at);
}

/* map_row with the primary hash's index pki already known. */
static const char *map_row_pk(struct plan *p, const struct shard_state *st, const char *base,
                              uint32_t pki, const char *dim, const char *value,
                              int64_t expire_at)
{
    uint32_t ci = cell_index(p, pki, value); /* may move p->cells */
    struct cell *c = &p->cells[ci];
    if (c->row)
        return c->row;
    struct pk *k = &p->pks[c->pk];
    c->exists = strcmp(value, ROLLUP_OTHER) != 0 && k->spk != UINT32_MAX &&
                shard_row_exists(st, &st->pks[k->spk], value);
    struct pk *budget = NULL;
    if (strncmp(dim, "prop:", 5) == 0)
        budget = &p->pks[budget_index(p, base)];
    if (strcmp(value, ROLLUP_OTHER) == 0 || c->exists) {
        c->row = value;
    } else if (k->rows < p->cap && (!budget || budget->rows < p->prop_budget)) {
        c->row = value;
        k->rows++;
        if (budget) {
            budget->rows++;
            hincr_at(p, base, PLAN_BUDGET_KEY, "prop", 1, expire_at);
        }
    } else {
        c->row = ROLLUP_OTHER;
    }
    return c->row;
}

/* Counts of one breakdown row: b:<dim>:<metric> and u:<dim>:<row>. */
static void count_row(struct plan *p, const char *base, const char *dim, const char *row,
                      const char *metric, long long delta, int64_t expire_at)
{
    char key[KEY_MAX];
    size_t len;
    if (join(key, &len, base, "b:", dim, metric))
        hincr(p, key, len, row, delta, expire_at);
}

/* PFADD member to the key already indexed as k (not a realtime key). */
static void pfadd_at(struct plan *p, uint32_t k, const char *member)
{
    GROW(p->pfs, p->npfs, p->pfs_cap);
    p->pfs[p->npfs] = (struct pfitem){k, (uint32_t)p->npfs, member};
    p->npfs++;
}

static void count_row_visitor(struct plan *p, const char *base, const char *dim,
                              const char *row, const char *visitor, int64_t expire_at)
{
    char key[KEY_MAX], prefix[KEY_MAX];
    size_t len;
    if (join(prefix, &len, base, "u:", dim, ":") && join(key, &len, prefix, row, NULL, NULL))
        pfadd(p, key, len, visitor, expire_at, false);
}

static bool visit_dim_has_visitors(size_t d)
{
    const struct schema_dim *sd = schema_visit_dim((int)d);
    return sd && sd->visitors == SCHEMA_U_PER_VISIT;
}

/* A new visit starting with a page view whose visit values are `values`;
 * the rows it is counted under into rows[] (NULL: none). */
static void visit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                  const char *visitor, const char *const *values, const char **rows)
{
    const struct vday *vd = &p->vdays[vdi];
    const char *base = vd->base;
    int64_t expire_at = vd->exp;
    hincr_at(p, base, "totals", "visits", 1, expire_at);
    hincr_at(p, base, "totals", "bounces", 1, expire_at);
    /* per (day, visit dimension): its primary hash and its b:<dim>:vis key,
     * found once per batch instead of once per visit */
    size_t need = p->nvdays * ROLLUP_V_COUNT;
    if (need > p->vis_cap) {
        size_t old = p->vis_cap;
        p->vis_cap = need * 2;
        p->vis_pk = xrealloc(p->vis_pk, p->vis_cap * sizeof *p->vis_pk);
        p->vis_key = xrealloc(p->vis_key, p->vis_cap * sizeof *p->vis_key);
        for (size_t i = old; i < p->vis_cap; i++)
            p->vis_pk[i] = p->vis_key[i] = UINT32_MAX;
    }
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        rows[d] = NULL;
        if (!values[d][0])
            continue;
        const char *dim = rollup_visit_dim_name((enum rollup_visit_dim)d);
        uint32_t *pk = &p->vis_pk[vdi * ROLLUP_V_COUNT + d];
        uint32_t *key = &p->vis_key[vdi * ROLLUP_V_COUNT + d];
        if (*pk == UINT32_MAX) {
            char name[KEY_MAX];
            size_t len;
            if (!join(name, &len, base, "b:", dim, ":vis"))
                continue;
            *pk = pk_index(p, base, dim);
            *key = wkey_index(p, name, len, expire_at, false);
        }
        const char *row = map_row_pk(p, st, base, *pk, dim, values[d], expire_at);
        rows[d] = row;
        hincr_k(p, *key, row, 1);
        if (visit_dim_has_visitors(d))
            count_row_visitor(p, base, dim, row, visitor, expire_at);
    }
    plan_pairs_visit(p, st, vdi, visitor, values);
}

/* The visitor in the realtime HyperLogLog of the minute of ts, when that
 * minute is inside the window. */
static void realtime(struct plan *p, const struct rollup_session *rs, const char *visitor,
                     int64_t ts, int64_t now)
{
    if (ts < now - REALTIME_WINDOW_S - 60 || ts > now + 60)
        return;
    char key[KEY_MAX];
    int64_t minute = ts / 60;
    size_t len = strlen(rs->realtime_key);
    if (len + 24 > sizeof key)
        return;
    memcpy(key, rs->realtime_key, len);
    len = (size_t)(uint_to_dec(key + len, (uint64_t)minute) - key);
    key[len] = '\0';
    pfadd(p, key, len, visitor, minute * 60 + 60 + REALTIME_KEEP_S, true);
}

/* Fields of the `hours` hash: "<HH>:<counter>" (docs/KEYS.md). */
enum hour_counter { HF_PAGEVIEWS = 0, HF_EVENTS, HF_VISITS, HF_BOUNCES, HF_DURATION, HF__COUNT };
static const char *const hour_counter_names[HF__COUNT] = {"pageviews", "events", "visits",
                                                          "bounces", "visit_duration_s"};
static char hour_fields[24][HF__COUNT][24];
static pthread_once_t hour_fields_once = PTHREAD_ONCE_INIT;

static void hour_fields_init(void)
{
    for (int h = 0; h < 24; h++)
        for (int c = 0; c < HF__COUNT; c++)
            str_format(hour_fields[h][c], sizeof hour_fields[h][c], "%02d:%s", h,
                       hour_counter_names[c]);
}

static const char *hour_field(unsigned hour, enum hour_counter c)
{
    pthread_once(&hour_fields_once, hour_fields_init);
    return hour_fields[hour < 24 ? hour : 23][c];
}

/* One event of a visitor, in session then time order (rollup_finish):
 * visit.c decides, this turns its effect into counts. */
static void hit(struct plan *p, const struct shard_state *st, const struct rollup *r,
                const struct rollup_hit *h, int64_t now)
{
    size_t nsessions;
    const struct rollup_session *rs = &rollup_sessions(r, &nsessions)[h->session];
    const char *visitor = rollup_visitor(r, rs->visitor);
    realtime(p, rs, visitor, h->ts, now);
    struct visit_effect fx;
    const struct visit_hit vh = {h->ts, h->pageview, h->interactive, h->page, h->scroll,
                                 h->hour};
    visit_apply(&p->sessions[h->session], &vh, p->day_vday[h->day], p->timeout, &fx);
    plan_pairs_hit(p, st, h, visitor);
    const struct vday *vd = &p->vdays[fx.day];
    const char *rows[ROLLUP_V_COUNT] = {0};
    if (fx.new_visit) {
        const char *values[ROLLUP_V_COUNT];
        memcpy(values, h->visit, sizeof values);
        values[ROLLUP_V_VISITOR_TYPE] = fx.returning ? "returning" : "new";
        visit(p, st, fx.day, visitor, values, rows);
        plan_hours_visit(p, st, fx.day, fx.hour, visitor, values);
        hincr_at(p, vd->base, "hours", hour_field(fx.hour, HF_VISITS), 1, vd->exp);
        hincr_at(p, vd->base, "hours", hour_field(fx.hour, HF_BOUNCES), 1, vd->exp);
    }
    if (fx.duration) {
        hincr_at(p, vd->base, "totals", "visit_duration_s", fx.duration, vd->exp);
        hincr_at(p, vd->base, "hours", hour_field(fx.hour, HF_DURATION), fx.duration, vd->exp);
    }
    if (fx.bounces) {
        hincr_at(p, vd->base, "totals", "bounces", fx.bounces, vd->exp);
        hincr_at(p, vd->base, "hours", hour_field(fx.hour, HF_BOUNCES), fx.bounces, vd->exp);
    }
    if (fx.scroll_n)
        hincr_at(p, vd->base, "totals", "scroll_n", fx.scroll_n, vd->exp);
    if (fx.scroll_sum)
        hincr_at(p, vd->base, "totals", "scroll_sum", fx.scroll_sum, vd->exp);
    /* the histogram of page views' maximum depths: a raised maximum moves
     * its page view from one bucket to the next */
    static const char *const bucket[ROLLUP_SCROLL_BUCKETS] = {"0",  "10", "20", "30", "40", "50",
                                                              "60", "70", "80", "90", "100"};
    if (fx.scroll_to >= 0 && fx.scroll_to != fx.scroll_from) {
        if (fx.scroll_from >= 0)
            hincr_at(p, vd->base, "scroll", bucket[fx.scroll_from], -1, vd->exp);
        hincr_at(p, vd->base, "scroll", bucket[fx.scroll_to], 1, vd->exp);
    }
    visit_rows_hit(p, st, h->session, &fx, rows, h->pageview ? h->visit[ROLLUP_V_ENTRY_PAGE] : "",
                   visitor);
}

/* "<day>:<site>:<visitor>" into buf; its length, 0 when too long. */
static size_t seen_key(char *buf, size_t cap, const struct rollup_day *d, const char *visitor)
{
    size_t sl = strlen(d->site);
    if (10 + 1 + sl + 1 + 16 + 1 > cap)
        return 0;
    memcpy(buf, d->day, 10);
    buf[10] = ':';
    memcpy(buf + 11, d->site, sl);
    buf[11 + sl] = ':';
    memcpy(buf + 12 + sl, visitor, 16);
    buf[28 + sl] = '\0';
    return 28 + sl;
}

/* Read the seen masks of the batch's visitors (one lookup per visitor,
 * for the first day it appears in). */
static void load_seen(struct plan *p, const struct shard_state *st, const struct rollup *r)
{
    size_t nv = rollup_nvisitors(r), ndays;
    const struct rollup_day *days = rollup_days(r, &ndays);
    if (nv > p->seen_cap) {
        p->seen_cap = nv;
        p->seen = xrealloc(p->seen, nv * sizeof *p->seen);
        p->seen_day = xrealloc(p->seen_day, nv * sizeof *p->seen_day);
        p->seen_added = xrealloc(p->seen_added, nv * sizeof *p->seen_added);
    }
    for (size_t v = 0; v < nv; v++) {
        p->seen[v] = p->seen_added[v] = 0;
        p->seen_day[v] = UINT32_MAX;
    }
    for (size_t i = 0; i < ndays; i++) {
        for (size_t k = 0; k < days[i].nvisitors; k++) {
            uint32_t v = days[i].visitors[k];
            if (p->seen_day[v] != UINT32_MAX)
                continue;
            char key[EV_SITE_MAX + 48];
            size_t len = seen_key(key, sizeof key, &days[i], rollup_visitor(r, v));
            p->seen_day[v] = (uint32_t)i;
            p->seen[v] = len ? shard_seen_get(st, key, len) : 0;
        }
    }
}

/* Whether visitor v is already in the per-visitor HyperLogLog `bit` of
 * day `day`; if not, it will be: the bit is recorded. */
static bool seen_before(struct plan *p, uint32_t v, uint32_t day, uint32_t bit)
{
    if (p->seen_day[v] != day)
        return false; /* another day of the batch: not remembered, added */
    if (p->seen[v] & (1u << bit))
        return true;
    p->seen_added[v] |= 1u << bit;
    return false;
}

void plan_seen_commit(const struct plan *p, struct shard_state *st, const struct rollup *r)
{
    size_t nv = rollup_nvisitors(r), ndays;
    const struct rollup_day *days = rollup_days(r, &ndays);
    for (size_t v = 0; v < nv; v++) {
        if (!p->seen_added[v] || p->seen_day[v] == UINT32_MAX)
            continue;
        char key[EV_SITE_MAX + 48];
        size_t len =
            seen_key(key, sizeof key, &days[p->seen_day[v]], rollup_visitor(r, (uint32_t)v));
        if (len)
            shard_seen_add(st, key, len, p->seen_added[v]);
    }
}

/* Step 2: the whole plan, in the order that decides which values get rows
 * before a cap is reached: day totals, rows in first-seen order, visits. */
void plan_make(struct plan *p, const struct shard_state *st, const struct rollup *r,
               int64_t now)
{
    size_t ndays, nrows, nhits;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    load_seen(p, st, r);
    plan_pairs_mark(p, r);
    for (size_t i = 0; i < ndays; i++) {
        const struct rollup_day *d = &days[i];
        for (size_t t = 0; t < ROLLUP_T_COUNT; t++)
            if (d->totals[t])
                hincr_at(p, d->base, "totals", rollup_total_field((enum rollup_total)t),
                         d->totals[t], d->expire_at);
        char key[KEY_MAX];
        size_t len;
        uint32_t k = UINT32_MAX;
        for (size_t v = 0; v < d->nvisitors; v++) {
            if (seen_before(p, d->visitors[v], (uint32_t)i, SHARD_SEEN_DAY_BIT))
                continue;
            if (k == UINT32_MAX) {
                if (!join(key, &len, d->base, "visitors", NULL, NULL))
                    break;
                k = wkey_index(p, key, len, d->expire_at, false);
            }
            pfadd_at(p, k, rollup_visitor(r, d->visitors[v]));
        }
        /* the local hours: counters and one visitor HyperLogLog per hour */
        for (unsigned h = 0; h < 24; h++) {
            if (d->hour_pv[h])
                hincr_at(p, d->base, "hours", hour_field(h, HF_PAGEVIEWS), d->hour_pv[h],
                         d->expire_at);
            if (d->hour_ev[h])
                hincr_at(p, d->base, "hours", hour_field(h, HF_EVENTS), d->hour_ev[h],
                         d->expire_at);
        }
        uint32_t hk[24];
        for (unsigned h = 0; h < 24; h++)
            hk[h] = UINT32_MAX;
        for (size_t v = 0; v < d->nhour_visitors; v++) {
            unsigned h = d->hour_visitors[v].hour;
            if (hk[h] == UINT32_MAX) {
                char hv[8] = "hv:";
                hv[3] = (char)('0' + h / 10);
                hv[4] = (char)('0' + h % 10);
                hv[5] = '\0';
                if (!join(key, &len, d->base, hv, NULL, NULL))
                    break;
                hk[h] = wkey_index(p, key, len, d->expire_at, false);
            }
            pfadd_at(p, hk[h], rollup_visitor(r, d->hour_visitors[v].visitor));
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        const struct rollup_row *row = &rows[i];
        const struct rollup_day *d = &days[row->day];
        if (strncmp(row->dim, "prop:", 5) == 0 &&
            strcmp(map_row(p, st, d->base, "prop_key", row->dim + 5, d->expire_at),
                   ROLLUP_OTHER) == 0)
            continue;
        const char *target = map_row(p, st, d->base, row->dim, row->value, d->expire_at);
        if (row->pv > 0)
            count_row(p, d->base, row->dim, target, ":pv", row->pv, d->expire_at);
        count_row(p, d->base, row->dim, target, ":ev", row->ev, d->expire_at);
        const struct schema_dim *sd = schema_find(row->dim);
        bool per_visitor = sd && sd->visitors == SCHEMA_U_PER_VISITOR;
        uint32_t bit = sd ? (uint32_t)(sd - schema_dim(SD_PAGE)) : 0;
        uint32_t k = UINT32_MAX; /* u:<dim>:<row>, indexed once per row */
        for (size_t v = 0; v < row->nvisitors; v++) {
            if (per_visitor && seen_before(p, row->visitors[v], row->day, bit))
                continue;
            if (k == UINT32_MAX) {
                char key[KEY_MAX], prefix[KEY_MAX];
                size_t len;
                if (!join(prefix, &len, d->base, "u:", row->dim, ":") ||
                    !join(key, &len, prefix, target, NULL, NULL))
                    break;
                k = wkey_index(p, key, len, d->expire_at, false);
            }
            pfadd_at(p, k, rollup_visitor(r, row->visitors[v]));
        }
    }
    plan_hours_rows(p, st, r);
    for (size_t i = 0; i < nhits; i++)
        hit(p, st, r, &hits[i], now);
    visit_rows_finish(p, st);
}

const char *plan_row(struct plan *p, const struct shard_state *st, const char *base,
                     const char *dim, const char *value, int64_t expire_at)
{
    return map_row(p, st, base, dim, value, expire_at);
}

const char *plan_row_pk(struct plan *p, const struct shard_state *st, const char *base,
                        uint32_t pk, const char *dim, const char *value, int64_t expire_at)
{
    return map_row_pk(p, st, base, pk, dim, value, expire_at);
}

/* ---- for plan_pairs.c ---- */

uint32_t plan_pk(struct plan *p, const char *key, size_t len, const char *budget_field)
{
    uint32_t i = pk_intern(p, key, len, budget_field != NULL);
    if (budget_field)
        p->pks[i].budget_field = budget_field;
    return i;
}

uint32_t plan_cell(struct plan *p, uint32_t pk, const char *value, size_t len)
{
    /* value is the caller's buffer (NUL-terminated): a new cell keeps a copy */
    uint32_t i = cell_index(p, pk, value);
    if (p->cells[i].value == value)
        p->cells[i].value = arena_dup(&p->arena, value, len);
    return i;
}

bool plan_cell_find(struct plan *p, uint32_t pk, const char *value, uint32_t *cell)
{
    char buf[4 + KEY_MAX];
    const char *k;
    size_t klen = plan_indexed_key(p, &buf, pk, value, &k);
    return smap_find(&p->cell_map, k, klen, cell);
}

uint32_t plan_key(struct plan *p, const char *key, size_t len, int64_t expire_at)
{
    return wkey_index(p, key, len, expire_at, false);
}

uint32_t plan_hincr(struct plan *p, uint32_t k, const char *field, long long delta)
{
    return hincr_k(p, k, field, delta);
}

void plan_pfadd(struct plan *p, uint32_t k, const char *member)
{
    pfadd_at(p, k, member);
}

/* The sweep: visits of the shard idle past the timeout (plus the skew an
 * event may still arrive with) in stream time, not touched by this batch. */
/* A visit ended before cutoff is kept until the UTC day of its last event
 * is over too (the default salt period: visitor hashes change at UTC
 * midnight), so that a later visit of the same hash that day is known to be
 * returning (docs/API.md "New and returning visitors"). */
static bool keep_session(long long last, int64_t cutoff)
{
    long long day = last >= 0 ? last / 86400 : -1, cut = cutoff >= 0 ? cutoff / 86400 : -1;
    return last >= cutoff || day == cut;
}

bool plan_sweep_keep(void *arg, const struct shard_session *s)
{
    return keep_session(s->last, *(const int64_t *)arg);
}

void plan_sweep(struct plan *p, const struct shard_state *st, int64_t cutoff)
{
    for (size_t i = 0; i < st->nsessions; i++) {
        if (keep_session(st->sessions[i].last, cutoff))
            continue;
        GROW(p->closed, p->nclosed, p->closed_cap);
        p->closed[p->nclosed++] = st->sessions[i].field;
    }
}

/* ---- for visit_rows.c ---- */

void plan_collect_dim(struct plan *p, const char *base, const char *dim)
{
    pk_index(p, base, dim);
}

uint32_t plan_row_key(struct plan *p, uint32_t vday, const char *dim, const char *metric)
{
    const struct vday *vd = &p->vdays[vday];
    char key[KEY_MAX];
    size_t len;
    if (!join(key, &len, vd->base, "b:", dim, metric))
        abort(); /* dims and bases are short: cannot happen */
    return wkey_index(p, key, len, vd->exp, false);
}

void plan_total(struct plan *p, uint32_t vday, const char *field, long long delta)
{
    hincr_at(p, p->vdays[vday].base, "totals", field, delta, p->vdays[vday].exp);
}

uint32_t plan_visit_pk(struct plan *p, uint32_t vday, const char *dim)
{
    return pk_index(p, p->vdays[vday].base, dim);
}

const char *plan_visit_row_pk(struct plan *p, const struct shard_state *st, uint32_t vday,
                              uint32_t pk, const char *dim, const char *value)
{
    return map_row_pk(p, st, p->vdays[vday].base, pk, dim, value, p->vdays[vday].exp);
}

void plan_row_visitor(struct plan *p, uint32_t vday, const char *dim, const char *row,
                      const char *visitor)
{
    count_row_visitor(p, p->vdays[vday].base, dim, row, visitor, p->vdays[vday].exp);
}
