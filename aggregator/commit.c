/* commit.c - plan one batch of one owned shard from memory and commit it
 * in one function call (see commit.h and docs/AGGREGATOR.md "The commit").
 *
 * Steps:
 *  1. the breakdowns and values the batch touches (cells); the rows of a
 *     breakdown not in memory yet are read once (HKEYS, pipelined);
 *  2. the plan, in C: the visit logic (visits, bounces, durations) from the
 *     shard's open sessions, the row each value lands in ("(other)" past
 *     breakdown_cap), the combined increments and HyperLogLog adds, and
 *     the realtime per-minute HyperLogLogs;
 *  3. FCALL veil_commit with the whole plan (argument layout in
 *     veil_functions.lua); on success the plan becomes the shard's memory.
 *
 * It never logs and never sends event content beyond dimension values,
 * counts, visitor hashes and, for forwarded legacy entries, the packed
 * event itself. */
#include "commit.h"

#include <stdlib.h>
#include <string.h>

#include "argbuf.h"
#include "strmap.h"
#include "util.h"
#include "visit.h"

#define KEY_MAX 4096          /* the longest key: base + "u:" + dim + ":" + a 2000-byte path */
#define REALTIME_WINDOW_S 300 /* realtime visitors: the last five minutes */
#define REALTIME_KEEP_S 420   /* a minute's HyperLogLog lives this long past its minute */
#define SESSIONS_TTL_S 86400  /* the checkpoint outlives the last commit by this */
#define SESSION_VALUE_MAX 96

static void reply_error(const redisContext *rc, const redisReply *reply, const char *what,
                        char *err, size_t errlen)
{
    if (!reply)
        str_format(err, errlen, "%s: %s", what, rc->err ? rc->errstr : "no reply");
    else if (reply->type == REDIS_REPLY_ERROR)
        str_format(err, errlen, "%s: %.200s", what, reply->str);
    else
        str_format(err, errlen, "%s: unexpected reply type %d", what, reply->type);
}

/* ---- the plan of one batch ---- */

/* A breakdown's primary hash (b:<dim>:ev, b:entry_page:vis). */
struct pk {
    const char *key;
    uint32_t spk;         /* its index in the shard's memory */
    long long rows;       /* rows other than "(other)": known, plus admitted */
};

/* One value of one breakdown the batch touches. */
struct cell {
    uint32_t pk;
    const char *value;
    bool exists;          /* already a row */
    const char *row;      /* planned row (value or "(other)"), NULL = not yet */
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
    long long cap, timeout;
};

static void plan_reset(struct plan *p)
{
    smap_clear(&p->pk_map);
    smap_clear(&p->cell_map);
    smap_clear(&p->key_map);
    smap_clear(&p->inc_map);
    smap_clear(&p->pf_map);
    smap_clear(&p->vday_map);
    arena_free(&p->arena);
    p->npks = p->ncells = p->nkeys = p->nincs = p->npfs = p->nclosed = p->nvdays = 0;
}

static void plan_free(struct plan *p)
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

static const char *pk_suffix(const char *dim)
{
    return strcmp(dim, "entry_page") == 0 ? ":vis" : ":ev";
}

/* The index of the primary hash of `dim` in the site-day `base`. */
static uint32_t pk_index(struct plan *p, const char *base, const char *dim)
{
    char key[KEY_MAX];
    size_t len;
    if (!join(key, &len, base, "b:", dim, pk_suffix(dim)))
        abort(); /* dims and bases are short: cannot happen */
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->pk_map, &p->arena, key, len, (uint32_t)p->npks, &created,
                             &stored);
    if (created) {
        GROW(p->pks, p->npks, p->pks_cap);
        p->pks[p->npks++] = (struct pk){.key = stored, .spk = UINT32_MAX};
    }
    return i;
}

/* Map key "<4-byte index><s>" in buf (the map copies it when new); the
 * arena only for a string longer than any dimension value. */
static size_t indexed_key(struct plan *p, char (*buf)[4 + KEY_MAX], uint32_t index,
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
    size_t klen = indexed_key(p, &buf, pk, value, &k);
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
static void collect_breakdowns(struct plan *p, const struct rollup *r)
{
    size_t ndays, nrows, nhits;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    for (size_t i = 0; i < nrows; i++) {
        const char *base = days[rows[i].day].base;
        if (strncmp(rows[i].dim, "prop:", 5) == 0)
            pk_index(p, base, "prop_key");
        pk_index(p, base, rows[i].dim);
    }
    for (size_t i = 0; i < nhits; i++) {
        if (!hits[i].pageview)
            continue;
        const char *base = days[hits[i].day].base;
        for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
            if (hits[i].visit[d][0])
                pk_index(p, base, rollup_visit_dim_name((enum rollup_visit_dim)d));
    }
}

/* Step 1b: the rows of breakdowns the shard's memory does not hold yet,
 * read with one pipelined HKEYS each. Returns the number read, or -1 with
 * a reason in err. */
static long long load_rows(struct plan *p, struct shard_state *st, redisContext *rc, char *err,
                           size_t errlen)
{
    long long nread = 0;
    for (size_t i = 0; i < p->npks; i++) {
        if (shard_rows_find(st, p->pks[i].key))
            continue;
        const char *argv[] = {"HKEYS", p->pks[i].key};
        redisAppendCommandArgv(rc, 2, argv, NULL);
        nread++;
    }
    int rv = 0;
    for (size_t i = 0; i < p->npks; i++) {
        struct pk *k = &p->pks[i];
        struct shard_rows *sr = shard_rows_find(st, k->key);
        if (!sr) {
            redisReply *reply = NULL;
            if (redisGetReply(rc, (void **)&reply) != REDIS_OK) {
                str_format(err, errlen, "reading rows: %s", rc->errstr);
                return -1;
            }
            if (rv == 0 && reply->type != REDIS_REPLY_ARRAY) {
                reply_error(rc, reply, "reading rows", err, errlen);
                rv = -1;
            }
            if (rv == 0) {
                sr = shard_rows_add(st, k->key);
                for (size_t j = 0; j < reply->elements; j++) {
                    const redisReply *f = reply->element[j];
                    if (f->type != REDIS_REPLY_STRING || strcmp(f->str, ROLLUP_OTHER) == 0)
                        continue;
                    shard_row_add(st, sr, f->str);
                    sr->rows++;
                }
            }
            freeReplyObject(reply);
            if (rv != 0)
                continue;
        }
        k->spk = (uint32_t)(sr - st->pks);
        k->rows = sr->rows;
    }
    return rv == 0 ? nread : -1;
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
static void load_sessions(struct plan *p, struct shard_state *st, const struct rollup *r)
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
        if (!ss || !rollup_key_day(base, sizeof base, st->prefix, sessions[i].site, ss->day, ""))
            continue;
        s->open = true;
        s->pv = ss->pv;
        s->start = ss->start;
        s->last = ss->last;
        s->day = vday_index(p, base, ss->exp, ss->day);
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

static void hincr(struct plan *p, const char *key, size_t klen, const char *field,
                  long long delta, int64_t expire_at)
{
    uint32_t k = wkey_index(p, key, klen, expire_at, false);
    char buf[4 + KEY_MAX];
    const char *ik;
    size_t iklen = indexed_key(p, &buf, k, field, &ik);
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->inc_map, &p->arena, ik, iklen, (uint32_t)p->nincs, &created,
                             &stored);
    if (created) {
        GROW(p->incs, p->nincs, p->incs_cap);
        p->incs[p->nincs++] = (struct inc){k, stored + 4, 0};
    }
    p->incs[i].delta += delta;
}

static void hincr_at(struct plan *p, const char *base, const char *suffix, const char *field,
                     long long delta, int64_t expire_at)
{
    char key[KEY_MAX];
    size_t len;
    if (join(key, &len, base, suffix, NULL, NULL))
        hincr(p, key, len, field, delta, expire_at);
}

/* PFADD member to key; a member already planned for the key is skipped. */
static void pfadd(struct plan *p, const char *key, size_t klen, const char *member,
                  int64_t expire_at, bool realtime)
{
    uint32_t k = wkey_index(p, key, klen, expire_at, realtime);
    char buf[4 + KEY_MAX];
    const char *ik;
    size_t iklen = indexed_key(p, &buf, k, member, &ik);
    bool created;
    smap_intern(&p->pf_map, &p->arena, ik, iklen, 0, &created, NULL);
    if (!created)
        return;
    GROW(p->pfs, p->npfs, p->pfs_cap);
    p->pfs[p->npfs] = (struct pfitem){k, (uint32_t)p->npfs, member};
    p->npfs++;
}

/* The row `value` is counted in: itself, or "(other)" once the breakdown
 * holds `cap` rows (docs/AGGREGATOR.md "Breakdown cap"). */
static const char *map_row(struct plan *p, const struct shard_state *st, const char *base,
                           const char *dim, const char *value)
{
    uint32_t pki = pk_index(p, base, dim);
    uint32_t ci = cell_index(p, pki, value); /* may move p->cells */
    struct cell *c = &p->cells[ci];
    if (c->row)
        return c->row;
    struct pk *k = &p->pks[c->pk];
    c->exists = strcmp(value, ROLLUP_OTHER) != 0 && k->spk != UINT32_MAX &&
                shard_row_exists(st, &st->pks[k->spk], value);
    if (strcmp(value, ROLLUP_OTHER) == 0 || c->exists) {
        c->row = value;
    } else if (k->rows < p->cap) {
        c->row = value;
        k->rows++;
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
    return d <= ROLLUP_V_UTM_CAMPAIGN; /* entry_page, source and the utm dims */
}

/* A new visit starting with a page view whose visit values are `values`. */
static void visit(struct plan *p, const struct shard_state *st, const char *base,
                  int64_t expire_at, const char *visitor, const char *const *values)
{
    hincr_at(p, base, "totals", "visits", 1, expire_at);
    hincr_at(p, base, "totals", "bounces", 1, expire_at);
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        if (!values[d][0])
            continue;
        const char *dim = rollup_visit_dim_name((enum rollup_visit_dim)d);
        const char *row = map_row(p, st, base, dim, values[d]);
        count_row(p, base, dim, row, ":vis", 1, expire_at);
        if (visit_dim_has_visitors(d))
            count_row_visitor(p, base, dim, row, visitor, expire_at);
    }
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
    if (!str_format(key, sizeof key, "%s%lld", rs->realtime_key, (long long)minute))
        return;
    pfadd(p, key, strlen(key), visitor, minute * 60 + 60 + REALTIME_KEEP_S, true);
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
    visit_apply(&p->sessions[h->session], h->ts, h->pageview, p->day_vday[h->day], p->timeout,
                &fx);
    const struct vday *vd = &p->vdays[fx.day];
    if (fx.new_visit)
        visit(p, st, vd->base, vd->exp, visitor, h->visit);
    if (fx.duration)
        hincr_at(p, vd->base, "totals", "visit_duration_s", fx.duration, vd->exp);
    if (fx.bounces)
        hincr_at(p, vd->base, "totals", "bounces", fx.bounces, vd->exp);
}

/* Step 2: the whole plan, in the order that decides which values get rows
 * before a cap is reached: day totals, rows in first-seen order, visits. */
static void make_plan(struct plan *p, const struct shard_state *st, const struct rollup *r,
                      int64_t now)
{
    size_t ndays, nrows, nhits;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    for (size_t i = 0; i < ndays; i++) {
        const struct rollup_day *d = &days[i];
        for (size_t t = 0; t < ROLLUP_T_COUNT; t++)
            if (d->totals[t])
                hincr_at(p, d->base, "totals", rollup_total_field((enum rollup_total)t),
                         d->totals[t], d->expire_at);
        for (size_t b = 0; b < ROLLUP_SCROLL_BUCKETS; b++) {
            char bucket[8];
            str_format(bucket, sizeof bucket, "%zu", b * 10);
            if (d->scroll[b])
                hincr_at(p, d->base, "scroll", arena_dup(&p->arena, bucket, strlen(bucket)),
                         d->scroll[b], d->expire_at);
        }
        char key[KEY_MAX];
        size_t len;
        if (join(key, &len, d->base, "visitors", NULL, NULL))
            for (size_t v = 0; v < d->nvisitors; v++)
                pfadd(p, key, len, rollup_visitor(r, d->visitors[v]), d->expire_at, false);
    }
    for (size_t i = 0; i < nrows; i++) {
        const struct rollup_row *row = &rows[i];
        const struct rollup_day *d = &days[row->day];
        if (strncmp(row->dim, "prop:", 5) == 0 &&
            strcmp(map_row(p, st, d->base, "prop_key", row->dim + 5), ROLLUP_OTHER) == 0)
            continue;
        const char *target = map_row(p, st, d->base, row->dim, row->value);
        if (row->pv > 0)
            count_row(p, d->base, row->dim, target, ":pv", row->pv, d->expire_at);
        count_row(p, d->base, row->dim, target, ":ev", row->ev, d->expire_at);
        for (size_t v = 0; v < row->nvisitors; v++)
            count_row_visitor(p, d->base, row->dim, target, rollup_visitor(r, row->visitors[v]),
                              d->expire_at);
    }
    for (size_t i = 0; i < nhits; i++)
        hit(p, st, r, &hits[i], now);
}

/* The sweep: visits of the shard idle past the timeout (plus the skew an
 * event may still arrive with) in stream time, not touched by this batch. */
static bool sweep_keep(void *arg, const struct shard_session *s)
{
    return s->last >= *(const int64_t *)arg;
}

static void plan_sweep(struct plan *p, const struct shard_state *st, int64_t cutoff)
{
    for (size_t i = 0; i < st->nsessions; i++) {
        if (st->sessions[i].last >= cutoff)
            continue;
        GROW(p->closed, p->nclosed, p->closed_cap);
        p->closed[p->nclosed++] = st->sessions[i].field;
    }
}

/* ---- step 3: the function call ---- */

struct commit {
    struct argbuf args;
    struct plan plan;
    struct smap site_map;
    unsigned long long commands, reads;
    void (*hook)(void *arg);
    void *hook_arg;
};

void commit_set_hook(struct commit *c, void (*hook)(void *arg), void *arg)
{
    c->hook = hook;
    c->hook_arg = arg;
}

unsigned long long commit_last_commands(const struct commit *c)
{
    return c->commands;
}

unsigned long long commit_last_reads(const struct commit *c)
{
    return c->reads;
}

struct commit *commit_new(void)
{
    return xcalloc(1, sizeof(struct commit));
}

void commit_free(struct commit *c)
{
    if (!c)
        return;
    argbuf_free(&c->args);
    plan_free(&c->plan);
    smap_free(&c->site_map);
    free(c);
}

static int inc_cmp(const void *a, const void *b)
{
    const struct inc *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int pf_cmp(const void *a, const void *b)
{
    const struct pfitem *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The stored form of rollup session i when the batch changed it. */
static bool session_of(const struct plan *pl, size_t i, const char *field,
                       struct shard_session *out)
{
    const struct visit_state *v = &pl->sessions[i];
    if (!v->changed)
        return false;
    const struct vday *vd = &pl->vdays[v->day];
    *out = (struct shard_session){field, v->pv, v->start, v->last, vd->exp, {0}};
    memcpy(out->day, vd->day, sizeof out->day);
    return true;
}

/* The expiry to send for key k: 0 when this ownership already set it. */
static long long expiry_arg(const struct plan *pl, const struct shard_state *st, uint32_t k)
{
    const struct wkey *w = &pl->keys[k];
    if (!w->realtime && shard_expiry_set(st, w->name, w->len))
        return 0;
    return w->expire_at;
}

/* Fill c->args with FCALL's arguments (veil_functions.lua, veil_commit). */
static void encode(struct commit *c, const struct shard_state *st,
                   const struct commit_params *p, const struct rollup *r,
                   const char *trim_minid, const struct commit_forward *fw, size_t nfw)
{
    struct argbuf *a = &c->args;
    struct plan *pl = &c->plan;
    a->n = a->used = 0;
    const char *head[] = {"FCALL", "veil_commit", "5", st->epoch_key, st->lease_key,
                          st->stream_key, st->sessions_key, st->sites_key, p->owner};
    for (size_t i = 0; i < ARRAY_LEN(head); i++)
        arg_str(a, head[i]);
    arg_ll(a, st->epoch);
    arg_ll(a, p->lease_ms);
    arg_str(a, trim_minid);
    arg_ll(a, SESSIONS_TTL_S + p->session_timeout_s);
    unsigned long long commands = 3 + (trim_minid[0] != '\0');

    /* counters: one group per key, one HINCRBY per distinct field */
    qsort(pl->incs, pl->nincs, sizeof *pl->incs, inc_cmp);
    size_t ngroups = 0, last_counted = 0;
    for (size_t i = 0; i < pl->nincs; i++)
        if (pl->incs[i].delta != 0 &&
            (ngroups == 0 || pl->incs[i].key != pl->incs[last_counted].key)) {
            ngroups++;
            last_counted = i;
        }
    arg_ll(a, (long long)ngroups);
    for (size_t i = 0; i < pl->nincs;) {
        size_t end = i, nonzero = 0;
        for (; end < pl->nincs && pl->incs[end].key == pl->incs[i].key; end++)
            nonzero += pl->incs[end].delta != 0;
        if (nonzero) {
            long long exp = expiry_arg(pl, st, pl->incs[i].key);
            arg_str(a, pl->keys[pl->incs[i].key].name);
            arg_ll(a, exp);
            arg_ll(a, (long long)nonzero);
            for (size_t j = i; j < end; j++) {
                if (pl->incs[j].delta == 0)
                    continue;
                arg_str(a, pl->incs[j].field);
                arg_ll(a, pl->incs[j].delta);
            }
            commands += nonzero + (exp != 0);
        }
        i = end;
    }

    /* HyperLogLogs: one PFADD per key with all its members */
    qsort(pl->pfs, pl->npfs, sizeof *pl->pfs, pf_cmp);
    size_t nhll = 0;
    for (size_t i = 0; i < pl->npfs;) {
        size_t end = i;
        while (end < pl->npfs && pl->pfs[end].key == pl->pfs[i].key)
            end++;
        nhll++;
        i = end;
    }
    arg_ll(a, (long long)nhll);
    for (size_t i = 0; i < pl->npfs;) {
        size_t end = i;
        while (end < pl->npfs && pl->pfs[end].key == pl->pfs[i].key)
            end++;
        long long exp = expiry_arg(pl, st, pl->pfs[i].key);
        arg_str(a, pl->keys[pl->pfs[i].key].name);
        arg_ll(a, exp);
        arg_ll(a, (long long)(end - i));
        for (size_t j = i; j < end; j++)
            arg_str(a, pl->pfs[j].member);
        commands += 1 + (exp != 0);
        i = end;
    }

    /* the checkpoint: closed visits, then changed ones */
    arg_ll(a, (long long)pl->nclosed);
    for (size_t i = 0; i < pl->nclosed; i++)
        arg_str(a, pl->closed[i]);
    size_t nsessions, ndirty = 0;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    for (size_t i = 0; i < nsessions; i++)
        ndirty += pl->sessions[i].changed;
    arg_ll(a, (long long)ndirty);
    for (size_t i = 0; i < nsessions; i++) {
        struct shard_session ss;
        if (!session_of(pl, i, NULL, &ss))
            continue;
        char value[SESSION_VALUE_MAX];
        size_t vlen = shard_session_encode(&ss, value, sizeof value);
        arg_str(a, sessions[i].key);
        arg_add(a, value, vlen);
    }
    commands += (pl->nclosed > 0) + (ndirty > 0) * 2;

    /* sites with data */
    size_t ndays, nsites = 0;
    const struct rollup_day *days = rollup_days(r, &ndays);
    smap_clear(&c->site_map);
    for (size_t i = 0; i < ndays; i++) {
        bool created;
        smap_intern(&c->site_map, &pl->arena, days[i].site, strlen(days[i].site),
                    (uint32_t)i, &created, NULL);
        nsites += created;
    }
    arg_ll(a, (long long)nsites);
    for (size_t i = 0; i < ndays; i++) {
        uint32_t first;
        if (smap_find(&c->site_map, days[i].site, strlen(days[i].site), &first) && first == i)
            arg_str(a, days[i].site);
    }
    commands += nsites;

    /* legacy entries of other shards */
    arg_ll(a, (long long)nfw);
    for (size_t i = 0; i < nfw; i++) {
        arg_str(a, fw[i].stream);
        arg_add(a, fw[i].packed, fw[i].len);
    }
    commands += nfw;
    argbuf_finish(a);
    c->commands = commands;
}

/* The plan succeeded: it becomes the shard's memory. */
static void apply(struct commit *c, struct shard_state *st, const struct rollup *r,
                  bool sweep, int64_t cutoff)
{
    struct plan *pl = &c->plan;
    for (size_t i = 0; i < pl->npks; i++)
        if (pl->pks[i].spk != UINT32_MAX)
            st->pks[pl->pks[i].spk].rows = pl->pks[i].rows;
    for (size_t i = 0; i < pl->ncells; i++) {
        const struct cell *cell = &pl->cells[i];
        uint32_t spk = pl->pks[cell->pk].spk;
        if (cell->row && !cell->exists && cell->row == cell->value && spk != UINT32_MAX)
            shard_row_add(st, &st->pks[spk], cell->value);
    }
    for (size_t i = 0; i < pl->nkeys; i++)
        if (!pl->keys[i].realtime)
            shard_expiry_mark(st, pl->keys[i].name, pl->keys[i].len);
    if (sweep)
        shard_session_filter(st, sweep_keep, &cutoff);
    size_t nsessions;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    for (size_t i = 0; i < nsessions; i++) {
        struct shard_session ss;
        if (session_of(pl, i, sessions[i].key, &ss))
            shard_session_put(st, &ss);
    }
    if (sweep)
        shard_rows_sweep(st);
}

enum commit_result commit_batch(struct commit *c, redisContext *rc, struct shard_state *st,
                                const struct commit_params *p, const struct rollup *r,
                                const char *trim_minid, const struct commit_forward *fw,
                                size_t nfw, bool sweep, char *err, size_t errlen)
{
    struct plan *pl = &c->plan;
    plan_reset(pl);
    pl->cap = p->breakdown_cap;
    pl->timeout = p->session_timeout_s;
    c->commands = c->reads = 0;
    collect_breakdowns(pl, r);
    long long nread = load_rows(pl, st, rc, err, errlen);
    if (nread < 0)
        return COMMIT_ERROR;
    c->reads = (unsigned long long)nread;
    load_sessions(pl, st, r);
    make_plan(pl, st, r, p->now);

    size_t nhits;
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    int64_t watermark = st->watermark;
    for (size_t i = 0; i < nhits; i++)
        if (hits[i].ts > watermark)
            watermark = hits[i].ts;
    int64_t cutoff = watermark - p->session_timeout_s - p->future_skew_s;
    if (sweep)
        plan_sweep(pl, st, cutoff);
    encode(c, st, p, r, trim_minid, fw, nfw);
    if (c->hook)
        c->hook(c->hook_arg);

    redisReply *reply = redisCommandArgv(rc, (int)c->args.n, c->args.argv, c->args.lens);
    enum commit_result result = COMMIT_ERROR;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        result = reply->integer == 1 ? COMMIT_OK : COMMIT_STALE;
    else
        reply_error(rc, reply, "commit", err, errlen);
    if (reply)
        freeReplyObject(reply);
    if (result == COMMIT_OK) {
        apply(c, st, r, sweep, cutoff);
        st->watermark = watermark;
    }
    return result;
}
