/* plan_pairs.c - the two-dimensional counts of one batch (see
 * plan_pairs.h). Pure C: no Redis, no clock, never logs. */
#include "plan_pairs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pairs.h"
#include "schema.h"
#include "util.h"

#define SLOT_BUDGET PAIRS_CLASSES /* the per-vday cache entry of the budget */
#define CACHE_STRIDE (PAIRS_CLASSES + 1)

/* The classes, once. */
static struct pair_class page_class[ROLLUP_V_COUNT], goal_class[ROLLUP_V_COUNT],
    visit_class[ROLLUP_V_COUNT][ROLLUP_V_COUNT];
static bool page_ok[ROLLUP_V_COUNT], goal_ok[ROLLUP_V_COUNT],
    visit_ok[ROLLUP_V_COUNT][ROLLUP_V_COUNT];
static char dim_field[ROLLUP_V_COUNT][40]; /* "d:<dim>" of <base>pairs */
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;

static void classes_init(void)
{
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
        str_format(dim_field[d], sizeof dim_field[d], "d:%s",
                   rollup_visit_dim_name((enum rollup_visit_dim)d));
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        page_ok[d] = pairs_page_class(d, &page_class[d]);
        goal_ok[d] = pairs_goal_class(d, &goal_class[d]);
        for (size_t e = 0; e < ROLLUP_V_COUNT; e++)
            visit_ok[d][e] = d < e && pairs_visit_class(d, e, &visit_class[d][e]);
    }
}

/* "<base><a><b><c><d>" into buf (KEY_MAX); its length, 0 when too long. */
static size_t key_of(char *buf, const char *base, const char *a, const char *b, const char *c,
                     const char *d)
{
    const char *parts[] = {base, a, b, c, d};
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
        size_t l = strlen(parts[i]);
        if (n + l >= KEY_MAX)
            return 0;
        memcpy(buf + n, parts[i], l);
        n += l;
    }
    buf[n] = '\0';
    return n;
}

static const char *metric_tail(unsigned m)
{
    return m == SCHEMA_PV ? ":pv" : m == SCHEMA_EV ? ":ev" : ":vis";
}

/* Whether visit slot d is one of pair_dims. */
static bool paired(const struct plan *p, size_t d)
{
    return (p->pair_dims >> d) & 1u;
}

/* The primary hash and the overflow marks of class c on the day `base`. */
static void collect_class(struct plan *p, const char *base, const struct pair_class *c)
{
    char key[KEY_MAX];
    size_t len = key_of(key, base, "p:", c->first, ":", c->second);
    if (!len || len + 4 >= KEY_MAX)
        return;
    strcpy(key + len, metric_tail(c->primary));
    plan_pk(p, key, strlen(key), NULL);
    strcpy(key + len, ":o");
    plan_pk(p, key, len + 2, NULL);
}

#define HAS_PAGEVIEW (1u << 30) /* a day's mask: a page view (visits may start) */
#define HAS_GOAL (1u << 31)     /* ... an event completing a goal */

/* Per day of the batch, what its events carry: bit d for a value of visit
 * slot d, HAS_PAGEVIEW, HAS_GOAL. Only the pairs these can make are
 * collected (a small site's batch touches a few dozen of the 166). */
static uint32_t *day_masks(const struct rollup *r, size_t ndays)
{
    uint32_t *mask = xcalloc(ndays ? ndays : 1, sizeof *mask);
    size_t nhits;
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    for (size_t i = 0; i < nhits; i++) {
        uint32_t *m = &mask[hits[i].day];
        if (hits[i].pageview)
            *m |= HAS_PAGEVIEW | (1u << ROLLUP_V_VISITOR_TYPE); /* set by the plan */
        if (hits[i].ngoals)
            *m |= HAS_GOAL;
        for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
            if (hits[i].visit[d][0])
                *m |= 1u << d;
    }
    return mask;
}

void plan_pairs_collect(struct plan *p, const struct rollup *r)
{
    if (p->pair_budget <= 0)
        return;
    pthread_once(&classes_once, classes_init);
    size_t ndays;
    const struct rollup_day *days = rollup_days(r, &ndays);
    uint32_t *mask = day_masks(r, ndays);
    char key[KEY_MAX];
    for (size_t i = 0; i < ndays; i++) {
        const char *base = days[i].base;
        uint32_t m = mask[i];
        if (!(m & (HAS_PAGEVIEW | HAS_GOAL)))
            continue;
        size_t len = key_of(key, base, PAIRS_KEY, "", "", "");
        if (!len)
            continue;
        plan_pk(p, key, len, "cells");
        for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
            if (!paired(p, d) || !(m & (1u << d)))
                continue;
            if (page_ok[d] && (m & HAS_PAGEVIEW))
                collect_class(p, base, &page_class[d]);
            if (goal_ok[d] && (m & HAS_GOAL))
                collect_class(p, base, &goal_class[d]);
            for (size_t e = d + 1; e < ROLLUP_V_COUNT && (m & HAS_PAGEVIEW); e++)
                if (visit_ok[d][e] && paired(p, e) && (m & (1u << e)))
                    collect_class(p, base, &visit_class[d][e]);
        }
    }
    free(mask);
}

/* The cache entry of (vday, class id). */
static uint32_t *cache(struct plan *p, uint32_t vdi, unsigned id)
{
    return p->pair_cache[(size_t)vdi * CACHE_STRIDE + id];
}

void plan_pairs_mark(struct plan *p, const struct rollup *r)
{
    size_t need = p->nvdays * CACHE_STRIDE;
    if (p->pair_budget > 0 && need > p->pair_cache_cap) {
        p->pair_cache_cap = need * 2;
        p->pair_cache = xrealloc(p->pair_cache, p->pair_cache_cap * sizeof *p->pair_cache);
        memset(p->pair_cache, 0, p->pair_cache_cap * sizeof *p->pair_cache);
    }
    size_t ndays;
    const struct rollup_day *days = rollup_days(r, &ndays);
    char key[KEY_MAX];
    for (size_t i = 0; i < ndays; i++) {
        if (!days[i].totals[ROLLUP_T_EVENTS] && !days[i].totals[ROLLUP_T_PAGEVIEWS])
            continue;
        size_t len = key_of(key, days[i].base, PAIRS_KEY, "", "", "");
        if (!len)
            continue;
        uint32_t k = plan_key(p, key, len, days[i].expire_at);
        plan_hincr(p, k, p->pair_budget > 0 ? "batches" : "off", 1);
        /* and which visit dimensions this batch paired */
        pthread_once(&classes_once, classes_init);
        for (size_t d = 0; d < ROLLUP_V_COUNT && p->pair_budget > 0; d++)
            if (paired(p, d) && pairs_visit_slot(d))
                plan_hincr(p, k, dim_field[d], 1);
    }
}

/* The budget of vday vdi: its primary-hash index in p->pks. */
static uint32_t budget_pk(struct plan *p, uint32_t vdi, uint32_t *key_index)
{
    uint32_t *slot = cache(p, vdi, SLOT_BUDGET);
    if (!slot[0]) {
        char key[KEY_MAX];
        size_t len = key_of(key, p->vdays[vdi].base, PAIRS_KEY, "", "", "");
        slot[0] = plan_pk(p, key, len, "cells") + 1;
        slot[1] = plan_key(p, key, len, p->vdays[vdi].exp) + 1;
    }
    *key_index = slot[1] - 1;
    return slot[0] - 1;
}

/* The row a new cell is counted in: itself while the site-day's budget
 * lasts (or when it is a cell already), else "(other)". */
static const char *admit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                         uint32_t ci)
{
    struct cell *cell = &p->cells[ci];
    struct pk *k = &p->pks[cell->pk];
    cell->exists = k->spk != UINT32_MAX && shard_row_exists(st, &st->pks[k->spk], cell->value);
    if (cell->exists)
        return cell->row = cell->value;
    uint32_t bkey;
    uint32_t bi = budget_pk(p, vdi, &bkey);
    cell = &p->cells[ci];
    k = &p->pks[cell->pk];
    struct pk *budget = &p->pks[bi];
    if (k->spk == UINT32_MAX || budget->spk == UINT32_MAX || budget->rows >= p->pair_budget)
        return cell->row = ROLLUP_OTHER; /* not loaded: (other), never a wrong cell */
    k->rows++;
    budget->rows++;
    plan_hincr(p, bkey, "cells", 1);
    return cell->row = cell->value;
}

/* A new cell (a, b) of class c went to "(other)": name its two values in
 * the class's marks (`p:<A>:<B>:o`, fields "1:<a>" and "2:<b>", at most
 * PAIRS_MARKS_MAX, then "*"), so that a query refuses only filters that
 * may match a folded cell. */
static void mark_folded(struct plan *p, const struct shard_state *st, uint32_t vdi,
                        const struct pair_class *c, const char *a, const char *b)
{
    uint32_t *slot = cache(p, vdi, c->id);
    const struct vday *vd = &p->vdays[vdi];
    char field[KEY_MAX];
    if (!slot[4]) {
        size_t len = key_of(field, vd->base, "p:", c->first, ":", c->second);
        if (!len || len + 3 >= KEY_MAX)
            return;
        strcpy(field + len, ":o");
        slot[4] = plan_pk(p, field, len + 2, NULL) + 1;
        slot[5] = plan_key(p, field, len + 2, vd->exp) + 1;
    }
    const char *values[2] = {a, b};
    for (size_t side = 0; side < 2; side++) {
        size_t vlen = strlen(values[side]);
        if (vlen + 3 > sizeof field)
            continue;
        field[0] = side ? '2' : '1';
        field[1] = ':';
        memcpy(field + 2, values[side], vlen + 1);
        uint32_t mi;
        if (!plan_cell_find(p, slot[4] - 1, field, &mi)) {
            mi = plan_cell(p, slot[4] - 1, field, vlen + 2);
            struct cell *m = &p->cells[mi];
            struct pk *k = &p->pks[m->pk];
            m->exists = k->spk != UINT32_MAX && shard_row_exists(st, &st->pks[k->spk], m->value);
            if (m->exists) {
                m->row = m->value;
            } else if (k->spk != UINT32_MAX && k->rows < PAIRS_MARKS_MAX) {
                k->rows++;
                m->row = m->value;
            } else {
                m->row = PAIRS_MARK_ALL;
            }
        }
        if (strcmp(p->cells[mi].row, PAIRS_MARK_ALL) == 0)
            slot[6] = 1; /* from now on: no value is named, nothing is kept */
        plan_hincr(p, slot[5] - 1, p->cells[mi].row, 1);
    }
}

/* Whether a cell `field` of primary hash pk, new to this plan, goes to
 * "(other)" without a trace: the pair's marks say "*" already, the
 * site-day's budget is spent and it is not a cell yet. The common case of
 * a busy site-day: then nothing of it is kept in the plan. */
static bool fold_quietly(struct plan *p, const struct shard_state *st, uint32_t vdi,
                         const uint32_t *slot, const char *field)
{
    if (!slot[6])
        return false;
    uint32_t bkey;
    const struct pk *budget = &p->pks[budget_pk(p, vdi, &bkey)];
    if (budget->spk != UINT32_MAX && budget->rows < p->pair_budget)
        return false;
    const struct pk *k = &p->pks[slot[0] - 1];
    return k->spk == UINT32_MAX || !shard_row_exists(st, &st->pks[k->spk], field);
}

/* Count visitor (and `metrics`, one each) into the cell (a, b) of class c
 * on vday vdi. */
static void count_cell(struct plan *p, const struct shard_state *st, uint32_t vdi,
                       const struct pair_class *c, const char *a, const char *b,
                       const char *visitor, unsigned metrics)
{
    uint32_t *slot = cache(p, vdi, c->id);
    const struct vday *vd = &p->vdays[vdi];
    char key[KEY_MAX];
    size_t len;
    if (!slot[0]) {
        if (!(len = key_of(key, vd->base, "p:", c->first, ":", c->second)) || len + 4 >= KEY_MAX)
            return;
        strcpy(key + len, metric_tail(c->primary));
        slot[0] = plan_pk(p, key, strlen(key), NULL) + 1;
    }
    size_t flen = pairs_field(key, sizeof key, a, strlen(a), b, strlen(b));
    if (!flen)
        return;
    uint32_t ci = UINT32_MAX;
    const char *row;
    if (plan_cell_find(p, slot[0] - 1, key, &ci)) {
        row = p->cells[ci].row;
    } else if (fold_quietly(p, st, vdi, slot, key)) {
        row = ROLLUP_OTHER;
    } else {
        ci = plan_cell(p, slot[0] - 1, key, flen);
        row = admit(p, st, vdi, ci);
        if (strcmp(row, ROLLUP_OTHER) == 0)
            mark_folded(p, st, vdi, c, a, b);
    }
    bool other = strcmp(row, ROLLUP_OTHER) == 0;
    if (!other && ci >= p->pair_incs_cap) {
        size_t old = p->pair_incs_cap;
        p->pair_incs_cap = (size_t)ci * 2 + 64;
        p->pair_incs = xrealloc(p->pair_incs, p->pair_incs_cap * sizeof *p->pair_incs);
        memset(p->pair_incs + old, 0, (p->pair_incs_cap - old) * sizeof *p->pair_incs);
    }
    static const unsigned order[3] = {SCHEMA_PV, SCHEMA_EV, SCHEMA_VIS};
    for (size_t m = 0; m < 3; m++) {
        if (!(metrics & order[m]))
            continue;
        /* the increment of this cell (or of the pair's "(other)") once known */
        uint32_t *inc = other ? &slot[7 + m] : &p->pair_incs[ci][m];
        if (*inc) {
            p->incs[*inc - 1].delta++;
            continue;
        }
        uint32_t *k = &slot[1 + m];
        if (!*k) {
            if (!(len = key_of(key, vd->base, "p:", c->first, ":", c->second)) ||
                len + 4 >= KEY_MAX)
                return;
            strcpy(key + len, metric_tail(order[m]));
            *k = plan_key(p, key, strlen(key), vd->exp) + 1;
        }
        *inc = plan_hincr(p, *k - 1, row, 1) + 1;
    }
    if (other)
        return; /* "(other)" is never published: its counters only say what it holds */
    struct cell *cell = &p->cells[ci];
    if (!cell->aux) {
        if (!(len = key_of(key, vd->base, "pu:", c->first, ":", c->second)) ||
            len + 1 + strlen(row) >= KEY_MAX)
            return;
        key[len] = ':';
        strcpy(key + len + 1, row);
        p->cells[ci].aux = plan_key(p, key, strlen(key), vd->exp) + 1;
    }
    plan_pfadd(p, p->cells[ci].aux - 1, visitor);
}

/* Count one page view (which 0) or visit (1) of vday vdi as gone through
 * the pair counts: <base>pairs "pageviews" / "visits", which a query
 * compares with the day's totals to know its pairs are whole (a day
 * partly counted by an aggregator without them is not). */
static void count_seen(struct plan *p, uint32_t vdi, unsigned which)
{
    uint32_t key;
    budget_pk(p, vdi, &key);
    uint32_t *inc = &cache(p, vdi, SLOT_BUDGET)[2 + which];
    if (*inc)
        p->incs[*inc - 1].delta++;
    else
        *inc = plan_hincr(p, key, which ? "visits" : "pageviews", 1) + 1;
}

void plan_pairs_hit(struct plan *p, const struct shard_state *st, const struct rollup_hit *h,
                    const char *visitor)
{
    if (p->pair_budget <= 0)
        return;
    uint32_t vdi = p->day_vday[h->day];
    if (h->pageview)
        count_seen(p, vdi, 0);
    const char *page = h->visit[ROLLUP_V_ENTRY_PAGE]; /* the event's own path */
    bool pages = h->pageview && page[0];
    if (!pages && !h->ngoals)
        return;
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        const char *v = h->visit[d];
        if (!v[0] || !page_ok[d] || !paired(p, d))
            continue;
        if (pages)
            count_cell(p, st, vdi, &page_class[d], page, v, visitor, SCHEMA_PV);
        for (size_t g = 0; g < h->ngoals; g++)
            count_cell(p, st, vdi, &goal_class[d], h->goals[g], v, visitor,
                       h->pageview ? SCHEMA_PV | SCHEMA_EV : SCHEMA_EV);
    }
}

void plan_pairs_visit(struct plan *p, const struct shard_state *st, uint32_t vdi,
                      const char *visitor, const char *const *values)
{
    if (p->pair_budget <= 0)
        return;
    count_seen(p, vdi, 1);
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        if (!values[d][0] || !paired(p, d))
            continue;
        for (size_t e = d + 1; e < ROLLUP_V_COUNT; e++) {
            if (!values[e][0] || !visit_ok[d][e] || !paired(p, e))
                continue;
            const struct pair_class *c = &visit_class[d][e];
            bool d_first = strcmp(c->first, rollup_visit_dim_name((enum rollup_visit_dim)d)) == 0;
            count_cell(p, st, vdi, c, d_first ? values[d] : values[e],
                       d_first ? values[e] : values[d], visitor, SCHEMA_VIS);
        }
    }
}
