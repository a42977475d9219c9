/* commit.c - plan one batch of one owned shard from memory and commit it
 * in one function call (see commit.h and docs/AGGREGATOR.md "The commit").
 *
 * Steps:
 *  1. the breakdowns and values the batch touches (cells); the rows of a
 *     breakdown not in memory yet are read once (HKEYS, pipelined);
 *  2. the plan, in C (plan.c, visit.c): visits, bounces, durations from the
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
#include "months.h"
#include "plan.h"
#include "strmap.h"
#include "util.h"

#define SESSIONS_TTL_S 86400  /* the checkpoint outlives the last commit by this */

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
        if (p->pks[i].budget) {
            const char *argv[] = {"HGET", p->pks[i].key,
                                  p->pks[i].budget_field ? p->pks[i].budget_field : "prop"};
            redisAppendCommandArgv(rc, 3, argv, NULL);
        } else {
            const char *argv[] = {"HKEYS", p->pks[i].key};
            redisAppendCommandArgv(rc, 2, argv, NULL);
        }
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
            bool budget_ok = k->budget && (reply->type == REDIS_REPLY_NIL ||
                                           reply->type == REDIS_REPLY_STRING);
            if (rv == 0 && reply->type != REDIS_REPLY_ARRAY && !budget_ok) {
                reply_error(rc, reply, "reading rows", err, errlen);
                rv = -1;
            }
            if (rv == 0 && k->budget) {
                sr = shard_rows_add(st, k->key);
                long long used = 0;
                if (reply->type == REDIS_REPLY_STRING &&
                    !safe_strtoll(reply->str, 0, 1LL << 40, &used))
                    used = 0;
                sr->rows = used;
            } else if (rv == 0) {
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

/* ---- step 3: the function call ---- */

/* A twin of one written key (months.h): its name at twin_names + at, len
 * 0 for none. Key k has twins[k * TWINS + j]: its month (j 0), its week
 * (j 1) and its quarter (j 2). */
#define TWINS 3
struct twin {
    size_t at, len;
    int64_t expire_at;
};

struct commit {
    struct argbuf args;
    struct plan plan;
    size_t *counts;          /* sort_pfs scratch */
    size_t count_cap;
    struct pfitem *sorted;
    size_t sorted_cap;
    struct smap site_map;
    struct twin *twins;      /* per written key: its TWINS twins (find_twins) */
    size_t twins_cap;
    char *twin_names;        /* the twins' names, NUL-terminated, one after another */
    size_t twin_names_len, twin_names_cap;
    bool rollups[3];         /* month, week, quarter twins on (commit_set_rollups) */
    unsigned long long commands, reads;
    void (*hook)(void *arg);
    void *hook_arg;
};

void commit_set_rollups(struct commit *c, bool quarters, bool months, bool weeks)
{
    c->rollups[0] = months;
    c->rollups[1] = weeks;
    c->rollups[2] = quarters;
}

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
    free(c->counts);
    free(c->sorted);
    free(c->twins);
    free(c->twin_names);
    smap_free(&c->site_map);
    free(c);
}

static int inc_cmp(const void *a, const void *b)
{
    const struct inc *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Group the plan's PFADD members by key: a counting sort on the key index
 * (there are many members and few keys; arrival order kept). */
static void sort_pfs(struct commit *c)
{
    struct plan *pl = &c->plan;
    if (pl->nkeys + 1 > c->count_cap) {
        c->count_cap = pl->nkeys + 1;
        c->counts = xrealloc(c->counts, c->count_cap * sizeof *c->counts);
    }
    if (pl->npfs > c->sorted_cap) {
        c->sorted_cap = pl->npfs;
        c->sorted = xrealloc(c->sorted, c->sorted_cap * sizeof *c->sorted);
    }
    memset(c->counts, 0, (pl->nkeys + 1) * sizeof *c->counts);
    for (size_t i = 0; i < pl->npfs; i++)
        c->counts[pl->pfs[i].key + 1]++;
    for (size_t k = 1; k <= pl->nkeys; k++)
        c->counts[k] += c->counts[k - 1];
    for (size_t i = 0; i < pl->npfs; i++)
        c->sorted[c->counts[pl->pfs[i].key]++] = pl->pfs[i];
    if (pl->npfs)
        memcpy(pl->pfs, c->sorted, pl->npfs * sizeof *pl->pfs);
}

/* The stored form of rollup session i when the batch changed it. */
static bool session_of(const struct plan *pl, size_t i, const char *field,
                       struct shard_session *out)
{
    const struct visit_state *v = &pl->sessions[i];
    if (!v->changed)
        return false;
    const struct vday *vd = &pl->vdays[v->day];
    *out = (struct shard_session){.field = field, .pv = v->pv, .start = v->start,
                                  .last = v->last, .exp = vd->exp, .page = v->page,
                                  .scroll = v->scroll, .hour = v->hour};
    memcpy(out->day, vd->day, sizeof out->day);
    visit_rows_session(pl, i, out);
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

/* Step 3a: the month, week and quarter twins of every day key the plan writes,
 * for the roll-ups that are on (docs/AGGREGATOR.md "Month and week
 * roll-ups"): encode sends each twin as one more group with the same
 * fields or members, so the same function call adds the same to the day
 * and to its month and week. */
static void find_twins(struct commit *c)
{
    struct plan *pl = &c->plan;
    if (pl->nkeys * TWINS > c->twins_cap) {
        c->twins_cap = pl->nkeys * TWINS;
        c->twins = xrealloc(c->twins, c->twins_cap * sizeof *c->twins);
    }
    const char kinds[TWINS] = {MONTHS_MONTH, MONTHS_WEEK, MONTHS_QUARTER};
    const bool *on = c->rollups;
    c->twin_names_len = 0;
    for (size_t k = 0; k < pl->nkeys; k++) {
        const struct wkey *w = &pl->keys[k];
        for (size_t j = 0; j < TWINS; j++) {
            struct twin *t = &c->twins[k * TWINS + j];
            *t = (struct twin){0, 0, 0};
            char name[KEY_MAX];
            period_day day;
            size_t n = on[j] && !w->realtime
                           ? months_twin(w->name, w->len, kinds[j], name, sizeof name, &day)
                           : 0;
            if (!n)
                continue;
            if (c->twin_names_len + n + 1 > c->twin_names_cap) {
                c->twin_names_cap = (c->twin_names_len + n + 1) * 2;
                c->twin_names = xrealloc(c->twin_names, c->twin_names_cap);
            }
            memcpy(c->twin_names + c->twin_names_len, name, n + 1);
            *t = (struct twin){c->twin_names_len, n, months_expire_at(kinds[j], day, w->expire_at)};
            c->twin_names_len += n + 1;
        }
    }
}

/* Twins of key k. */
static size_t twins_of(const struct commit *c, uint32_t k)
{
    size_t n = 0;
    for (size_t j = 0; j < TWINS; j++)
        n += c->twins[k * TWINS + j].len > 0;
    return n;
}

/* Group g of key k: the key itself (g 0), then its twins. Writes its name
 * and returns the expiry to send (0: already set by this ownership). */
static long long group_of(const struct commit *c, const struct shard_state *st, uint32_t k,
                          size_t g, const char **name, size_t *len)
{
    const struct plan *pl = &c->plan;
    if (g == 0) {
        *name = pl->keys[k].name;
        *len = pl->keys[k].len;
        return expiry_arg(pl, st, k);
    }
    for (size_t j = 0; j < TWINS; j++) {
        const struct twin *t = &c->twins[k * TWINS + j];
        if (t->len && --g == 0) {
            *name = c->twin_names + t->at;
            *len = t->len;
            return shard_expiry_set(st, *name, *len) ? 0 : t->expire_at;
        }
    }
    *name = "";
    *len = 0;
    return 0;
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
    if (pl->nincs > 1) /* (a batch of refused events has none: no array) */
        qsort(pl->incs, pl->nincs, sizeof *pl->incs, inc_cmp);
    size_t ngroups = 0, last_counted = 0;
    for (size_t i = 0; i < pl->nincs; i++)
        if (pl->incs[i].delta != 0 &&
            (ngroups == 0 || pl->incs[i].key != pl->incs[last_counted].key)) {
            ngroups += 1 + twins_of(c, pl->incs[i].key);
            last_counted = i;
        }
    arg_ll(a, (long long)ngroups);
    for (size_t i = 0; i < pl->nincs;) {
        size_t end = i, nonzero = 0;
        for (; end < pl->nincs && pl->incs[end].key == pl->incs[i].key; end++)
            nonzero += pl->incs[end].delta != 0;
        size_t ngroup = nonzero ? 1 + twins_of(c, pl->incs[i].key) : 0;
        for (size_t g = 0; g < ngroup; g++) {
            const char *name;
            size_t len;
            long long exp = group_of(c, st, pl->incs[i].key, g, &name, &len);
            arg_add(a, name, len);
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
    sort_pfs(c);
    size_t nhll = 0;
    for (size_t i = 0; i < pl->npfs;) {
        size_t end = i;
        while (end < pl->npfs && pl->pfs[end].key == pl->pfs[i].key)
            end++;
        nhll += 1 + twins_of(c, pl->pfs[i].key);
        i = end;
    }
    arg_ll(a, (long long)nhll);
    for (size_t i = 0; i < pl->npfs;) {
        size_t end = i;
        while (end < pl->npfs && pl->pfs[end].key == pl->pfs[i].key)
            end++;
        size_t ngroup = 1 + twins_of(c, pl->pfs[i].key);
        for (size_t g = 0; g < ngroup; g++) {
            const char *name;
            size_t len;
            long long exp = group_of(c, st, pl->pfs[i].key, g, &name, &len);
            arg_add(a, name, len);
            arg_ll(a, exp);
            arg_ll(a, (long long)(end - i));
            for (size_t j = i; j < end; j++)
                arg_str(a, pl->pfs[j].member);
            commands += 1 + (exp != 0);
        }
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
        char value[SHARD_SESSION_VALUE_MAX];
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
    for (size_t i = 0; i < pl->nkeys * TWINS; i++)
        if (c->twins[i].len)
            shard_expiry_mark(st, c->twin_names + c->twins[i].at, c->twins[i].len);
    if (sweep)
        shard_session_filter(st, plan_sweep_keep, &cutoff);
    size_t nsessions;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    for (size_t i = 0; i < nsessions; i++) {
        struct shard_session ss;
        if (session_of(pl, i, sessions[i].key, &ss))
            shard_session_put(st, &ss);
    }
    plan_seen_commit(pl, st, r);
    if (sweep) {
        shard_rows_sweep(st);
        char yesterday[11];
        utc_day(st->watermark - 86400, yesterday);
        shard_seen_sweep(st, yesterday);
    }
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
    pl->prop_budget = p->property_budget;
    pl->pair_budget = p->pair_budget;
    pl->pair_dims = p->pair_dims;
    c->commands = c->reads = 0;
    plan_collect(pl, r);
    visit_rows_collect(pl, st, r);
    long long nread = load_rows(pl, st, rc, err, errlen);
    if (nread < 0)
        return COMMIT_ERROR;
    c->reads = (unsigned long long)nread;
    plan_load_sessions(pl, st, r);
    plan_make(pl, st, r, p->now);

    size_t nhits;
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    int64_t watermark = st->watermark;
    for (size_t i = 0; i < nhits; i++)
        if (hits[i].ts > watermark)
            watermark = hits[i].ts;
    int64_t cutoff = watermark - p->session_timeout_s - p->future_skew_s;
    if (sweep)
        plan_sweep(pl, st, cutoff);
    find_twins(c);
    encode(c, st, p, r, trim_minid, fw, nfw);
    if (c->hook)
        c->hook(c->hook_arg);

    size_t resp_len;
    const char *resp = argbuf_resp(&c->args, &resp_len);
    redisReply *reply = NULL;
    if (redisAppendFormattedCommand(rc, resp, resp_len) != REDIS_OK ||
        redisGetReply(rc, (void **)&reply) != REDIS_OK)
        reply = NULL;
    enum commit_result result = COMMIT_ERROR;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        result = reply->integer == 1 ? COMMIT_OK : COMMIT_STALE;
    else
        reply_error(rc, reply, "commit", err, errlen);
    if (reply)
        freeReplyObject(reply);
    if (result == COMMIT_OK) {
        st->watermark = watermark;
        apply(c, st, r, sweep, cutoff);
    }
    return result;
}
