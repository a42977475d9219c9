/* commit.c - the atomic commit of one combined batch (see commit.h and
 * docs/AGGREGATOR.md "Exactly once").
 *
 * A commit has three steps, repeated from the first while a guard fails:
 *
 *  1. read (pipelined plain commands, nothing written): the open session of
 *     every visitor of the batch (HMGET), and for every breakdown the batch
 *     touches, its row count (HLEN) and which of the batch's values already
 *     are rows (HMGET of "(other)" and the values);
 *  2. plan, in C: the session logic (visits, bounces, durations), the row
 *     each value lands in ("(other)" past breakdown_cap), and the resulting
 *     increments, HyperLogLog adds, expiries, session states and realtime
 *     scores;
 *  3. write, in one script call: check that every entry is still pending
 *     for this consumer and that nothing read in step 1 changed (the
 *     sessions' fields, and the row count of every breakdown the plan
 *     admitted a new row to: rows are only ever added, so an unchanged count
 *     means unchanged rows), then apply the plan, XACK and XDEL. A failed
 *     check writes nothing.
 *
 * Script arguments: KEYS[1] stream, KEYS[2] sites set; ARGV[1] group,
 * [2] consumer, [3] session_timeout_s, [4] lowest id, [5] highest id, [6] n
 * ids, [7 .. 6+n] ids, then records:
 *   G key mask pv start last base exp   session guard (mask: "1"/"0" per
 *                                       field read present or absent)
 *   L key hlen                          row-count guard
 *   S key pv start last base exp        session state to store
 *   I key n (field delta)*n             HINCRBY
 *   P key n member*n                    PFADD
 *   X key unix_time                     EXPIREAT
 *   A site                              SADD to the sites set
 *   Z key n (ts member)*n               realtime: ZADD GT, trim, EXPIRE
 * Every key carries the {0} hash tag of KEYS, so the script stays within one
 * cluster slot. The script never logs; it returns {1, n} when committed,
 * {0, lost ids} when entries are no longer ours and {2} when a guard
 * failed. */
#include "commit.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "util.h"

#define COMMIT_ATTEMPTS 8   /* plans per batch before giving up (guards kept failing) */
#define KEY_MAX 4096        /* the longest key: base + "u:" + dim + ":" + a 2000-byte path */

static const char commit_script[] =
    "#!lua\n"
    "local stream, sites_key = KEYS[1], KEYS[2]\n"
    "local group, consumer, timeout = ARGV[1], ARGV[2], ARGV[3]\n"
    "local nids = tonumber(ARGV[6])\n"
    /* 1. every entry must still be pending for this consumer. Our pending
     * entries between the batch's lowest and highest id are normally just
     * the batch; should there be more than the count asked for, some of ours
     * read as lost: they are left out now and claimed again later - late,
     * never twice. */
    "local ours, lost = {}, {}\n"
    "for _, p in ipairs(redis.call('XPENDING', stream, group, ARGV[4], ARGV[5],\n"
    "                              2 * nids + 16, consumer)) do\n"
    "  ours[p[1]] = true\n"
    "end\n"
    "for i = 7, 6 + nids do\n"
    "  if not ours[ARGV[i]] then lost[#lost + 1] = ARGV[i] end\n"
    "end\n"
    "if #lost > 0 then return {0, lost} end\n"
    /* 2. what the plan was made from must be unchanged */
    "local i, n = 7 + nids, #ARGV\n"
    "while i <= n do\n"
    "  local t = ARGV[i]\n"
    "  if t == 'G' then\n"
    "    local v = redis.call('HMGET', ARGV[i + 1], 'pv', 'start', 'last', 'base', 'exp')\n"
    "    local mask = ARGV[i + 2]\n"
    "    for j = 1, 5 do\n"
    "      if v[j] then\n"
    "        if string.byte(mask, j) ~= 49 or v[j] ~= ARGV[i + 2 + j] then return {2} end\n"
    "      elseif string.byte(mask, j) ~= 48 then return {2} end\n"
    "    end\n"
    "    i = i + 8\n"
    "  elseif t == 'L' then\n"
    "    if redis.call('HLEN', ARGV[i + 1]) ~= tonumber(ARGV[i + 2]) then return {2} end\n"
    "    i = i + 3\n"
    "  else break end\n"
    "end\n"
    /* 3. write */
    "local now = nil\n"
    "while i <= n do\n"
    "  local t, key = ARGV[i], ARGV[i + 1]\n"
    "  if t == 'I' then\n"
    "    local last = i + 2 + 2 * tonumber(ARGV[i + 2])\n"
    "    for j = i + 3, last, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end\n"
    "    i = last + 1\n"
    "  elseif t == 'P' then\n"
    "    local last = i + 2 + tonumber(ARGV[i + 2])\n"
    "    for j = i + 3, last, 500 do\n"
    "      redis.call('PFADD', key, unpack(ARGV, j, math.min(j + 499, last)))\n"
    "    end\n"
    "    i = last + 1\n"
    "  elseif t == 'X' then\n"
    "    redis.call('EXPIREAT', key, ARGV[i + 2]); i = i + 3\n"
    "  elseif t == 'S' then\n"
    "    redis.call('HSET', key, 'pv', ARGV[i + 2], 'start', ARGV[i + 3], 'last', ARGV[i + 4],\n"
    "               'base', ARGV[i + 5], 'exp', ARGV[i + 6])\n"
    "    redis.call('EXPIRE', key, timeout)\n"
    "    i = i + 7\n"
    "  elseif t == 'A' then\n"
    "    redis.call('SADD', sites_key, key); i = i + 2\n"
    "  elseif t == 'Z' then\n"
    "    local last = i + 2 + 2 * tonumber(ARGV[i + 2])\n"
    "    for j = i + 3, last, 1000 do\n"
    "      redis.call('ZADD', key, 'GT', unpack(ARGV, j, math.min(j + 999, last)))\n"
    "    end\n"
    "    now = now or tonumber(redis.call('TIME')[1])\n"
    "    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - 300))\n"
    "    redis.call('EXPIRE', key, 600)\n"
    "    i = last + 1\n"
    "  else\n"
    "    return redis.error_reply('veil commit: bad record at argument ' .. i)\n"
    "  end\n"
    "end\n"
    "for j = 7, 6 + nids, 500 do\n"
    "  local last = math.min(j + 499, 6 + nids)\n"
    "  redis.call('XACK', stream, group, unpack(ARGV, j, last))\n"
    "  redis.call('XDEL', stream, unpack(ARGV, j, last))\n"
    "end\n"
    "return {1, nids}\n";

static const char forget_script[] =
    "#!lua\n"
    "local removed = 0\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
    "  local f = {}\n"
    "  for j = 1, #c, 2 do f[c[j]] = c[j + 1] end\n"
    "  if f.name ~= ARGV[2] and f.pending == 0 and f.idle > tonumber(ARGV[3]) then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)\n"
    "    removed = removed + 1\n"
    "  end\n"
    "end\n"
    "return removed\n";

/* ---- argument buffer: strings copied into one growing block ---- */

struct argbuf {
    char *bytes;
    size_t used, size;
    size_t *offsets, *lens;
    size_t n, cap;
    const char **argv; /* resolved by argbuf_finish */
};

static void arg_add(struct argbuf *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4096;
        a->offsets = xrealloc(a->offsets, a->cap * sizeof *a->offsets);
        a->lens = xrealloc(a->lens, a->cap * sizeof *a->lens);
    }
    if (a->size - a->used < len + 1) {
        while (a->size - a->used < len + 1)
            a->size = a->size ? a->size * 2 : 65536;
        a->bytes = xrealloc(a->bytes, a->size);
    }
    memcpy(a->bytes + a->used, s, len);
    a->bytes[a->used + len] = '\0';
    a->offsets[a->n] = a->used;
    a->lens[a->n] = len;
    a->used += len + 1;
    a->n++;
}

static void arg_str(struct argbuf *a, const char *s)
{
    arg_add(a, s, strlen(s));
}

static void arg_ll(struct argbuf *a, long long v)
{
    char num[24];
    str_format(num, sizeof num, "%lld", v);
    arg_str(a, num);
}

static const char **argbuf_finish(struct argbuf *a)
{
    a->argv = xrealloc(a->argv, (a->n ? a->n : 1) * sizeof *a->argv);
    for (size_t i = 0; i < a->n; i++)
        a->argv[i] = a->bytes + a->offsets[i];
    return a->argv;
}

static void argbuf_free(struct argbuf *a)
{
    free(a->bytes);
    free(a->offsets);
    free(a->lens);
    free(a->argv);
}

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


/* Parse "<ms>-<seq>"; a malformed id reads as 0-0. */
static void stream_id_parse(const char *id, size_t len, unsigned long long out[2])
{
    out[0] = out[1] = 0;
    size_t part = 0;
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '-' && part == 0)
            part = 1;
        else if (id[i] >= '0' && id[i] <= '9')
            out[part] = out[part] * 10 + (unsigned long long)(id[i] - '0');
    }
}

static int stream_id_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned long long x[2], y[2];
    stream_id_parse(a, alen, x);
    stream_id_parse(b, blen, y);
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* ---- the plan of one batch ---- */

/* A breakdown's primary hash (b:<dim>:ev, b:entry_page:vis): its rows. */
struct pk {
    const char *key;
    long long hlen;       /* HLEN as read */
    long long rows;       /* rows other than "(other)": read, plus admitted */
    bool admitted;        /* the plan adds a row: guard on hlen */
    uint32_t first, n;    /* its values: cells order[first .. first+n) */
};

/* One value of one breakdown the batch touches. */
struct cell {
    uint32_t pk;
    const char *value;
    bool exists;          /* read: already a row */
    const char *row;      /* planned row (value or "(other)"), NULL = not yet */
};

/* A visitor's open session: as read, then as planned. */
struct session {
    bool read_present[5];
    const char *read[5];  /* pv start last base exp as read ("" when absent) */
    bool present;         /* a usable session (all five fields, numbers) */
    long long pv, start, last, exp;
    const char *base;
    bool dirty;
    int64_t rt_ts;        /* latest event time, for the realtime set */
};

/* A key the plan writes: its expiry and its increments. */
struct wkey {
    const char *name;
    int64_t expire_at;    /* from the first record that used the key */
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
    struct smap pk_map, cell_map, key_map, inc_map, rt_map;
    struct pk *pks;
    size_t npks, pks_cap;
    struct cell *cells;
    uint32_t *order;      /* cell indexes grouped by pk */
    size_t ncells, cells_cap;
    struct session *sessions;
    size_t sessions_cap;
    struct wkey *keys;
    size_t nkeys, keys_cap;
    struct inc *incs;
    size_t nincs, incs_cap;
    struct pfitem *pfs;
    size_t npfs, pfs_cap;
    uint32_t *rt_first;   /* per realtime key: its first session, then a chain */
    uint32_t *rt_next;
    size_t nrt, rt_cap;
    long long cap, timeout;
};

static void plan_reset(struct plan *p)
{
    smap_clear(&p->pk_map);
    smap_clear(&p->cell_map);
    smap_clear(&p->key_map);
    smap_clear(&p->inc_map);
    smap_clear(&p->rt_map);
    arena_free(&p->arena);
    p->npks = p->ncells = p->nkeys = p->nincs = p->npfs = p->nrt = 0;
}

static void plan_free(struct plan *p)
{
    plan_reset(p);
    smap_free(&p->pk_map);
    smap_free(&p->cell_map);
    smap_free(&p->key_map);
    smap_free(&p->inc_map);
    smap_free(&p->rt_map);
    free(p->pks);
    free(p->cells);
    free(p->order);
    free(p->sessions);
    free(p->keys);
    free(p->incs);
    free(p->pfs);
    free(p->rt_first);
    free(p->rt_next);
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
        p->pks[p->npks++] = (struct pk){.key = stored};
    }
    return i;
}

/* Map key "<4-byte index><s>" in buf (the map copies it when new); the
 * arena only for a string longer than any dimension value. Returns its
 * length; *key points at it. */
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
        if (p->ncells == p->cells_cap) {
            p->cells_cap = p->cells_cap ? p->cells_cap * 2 : 256;
            p->cells = xrealloc(p->cells, p->cells_cap * sizeof *p->cells);
            p->order = xrealloc(p->order, p->cells_cap * sizeof *p->order);
        }
        p->cells[p->ncells++] = (struct cell){.pk = pk, .value = value};
    }
    return i;
}

/* Step 1a: every (breakdown, value) the plan may map, in the order the
 * plan maps them. */
static void collect_cells(struct plan *p, const struct rollup *r)
{
    size_t ndays, nrows, nhits;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    for (size_t i = 0; i < nrows; i++) {
        const char *base = days[rows[i].day].base;
        if (strncmp(rows[i].dim, "prop:", 5) == 0)
            cell_index(p, pk_index(p, base, "prop_key"), rows[i].dim + 5);
        cell_index(p, pk_index(p, base, rows[i].dim), rows[i].value);
    }
    for (size_t i = 0; i < nhits; i++) {
        if (!hits[i].pageview)
            continue;
        const char *base = days[hits[i].day].base;
        for (size_t d = 0; d < ROLLUP_V_COUNT; d++)
            if (hits[i].visit[d][0])
                cell_index(p, pk_index(p, base, rollup_visit_dim_name((enum rollup_visit_dim)d)),
                           hits[i].visit[d]);
    }
    /* group the cells by breakdown for the reads */
    for (size_t i = 0; i < p->npks; i++)
        p->pks[i].n = 0;
    for (size_t i = 0; i < p->ncells; i++)
        p->pks[p->cells[i].pk].n++;
    uint32_t at = 0;
    for (size_t i = 0; i < p->npks; i++) {
        p->pks[i].first = at;
        at += p->pks[i].n;
        p->pks[i].n = 0;
    }
    for (size_t i = 0; i < p->ncells; i++) {
        struct pk *k = &p->pks[p->cells[i].pk];
        p->order[k->first + k->n++] = (uint32_t)i;
    }
}

/* Step 1b: read the sessions and the breakdowns, pipelined. Returns 0, or
 * -1 with a reason in err. */
static int read_state(struct plan *p, redisContext *rc, const struct rollup *r, char *err,
                      size_t errlen)
{
    size_t nsessions;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    size_t most = 8;
    for (size_t i = 0; i < p->npks; i++)
        if (p->pks[i].n + 3 > most)
            most = p->pks[i].n + 3;
    const char **argv = xmalloc(most * sizeof *argv);
    size_t *lens = xmalloc(most * sizeof *lens);
    for (size_t i = 0; i < p->npks; i++) {
        const struct pk *k = &p->pks[i];
        argv[0] = "HLEN";
        argv[1] = k->key;
        redisAppendCommandArgv(rc, 2, argv, NULL);
        argv[0] = "HMGET";
        argv[2] = ROLLUP_OTHER;
        for (size_t j = 0; j < k->n; j++)
            argv[3 + j] = p->cells[p->order[k->first + j]].value;
        for (size_t j = 0; j < 3 + k->n; j++)
            lens[j] = strlen(argv[j]);
        redisAppendCommandArgv(rc, (int)(3 + k->n), argv, lens);
    }
    for (size_t i = 0; i < nsessions; i++) {
        const char *hm[] = {"HMGET", sessions[i].key, "pv", "start", "last", "base", "exp"};
        redisAppendCommandArgv(rc, 7, hm, NULL);
    }
    free(argv);
    free(lens);

    int rv = 0;
    for (size_t i = 0; i < p->npks; i++) {
        struct pk *k = &p->pks[i];
        redisReply *hlen = NULL, *hm = NULL;
        if (redisGetReply(rc, (void **)&hlen) != REDIS_OK ||
            redisGetReply(rc, (void **)&hm) != REDIS_OK) {
            str_format(err, errlen, "reading rows: %s", rc->errstr);
            freeReplyObject(hlen);
            return -1;
        }
        if (rv == 0 && (hlen->type != REDIS_REPLY_INTEGER || hm->type != REDIS_REPLY_ARRAY ||
                        hm->elements != k->n + 1)) {
            reply_error(rc, hlen->type == REDIS_REPLY_INTEGER ? hm : hlen, "reading rows", err,
                        errlen);
            rv = -1;
        }
        if (rv == 0) {
            k->hlen = hlen->integer;
            k->rows = k->hlen - (hm->element[0]->type == REDIS_REPLY_STRING);
            k->admitted = false;
            for (size_t j = 0; j < k->n; j++) {
                struct cell *c = &p->cells[p->order[k->first + j]];
                c->exists = hm->element[1 + j]->type == REDIS_REPLY_STRING;
                c->row = NULL;
            }
        }
        freeReplyObject(hlen);
        freeReplyObject(hm);
    }
    if (nsessions > p->sessions_cap) {
        p->sessions_cap = nsessions;
        p->sessions = xrealloc(p->sessions, nsessions * sizeof *p->sessions);
    }
    for (size_t i = 0; i < nsessions; i++) {
        redisReply *v = NULL;
        if (redisGetReply(rc, (void **)&v) != REDIS_OK) {
            str_format(err, errlen, "reading sessions: %s", rc->errstr);
            return -1;
        }
        if (rv == 0 && (v->type != REDIS_REPLY_ARRAY || v->elements != 5)) {
            reply_error(rc, v, "reading sessions", err, errlen);
            rv = -1;
        }
        if (rv == 0) {
            struct session *s = &p->sessions[i];
            long long num[5];
            s->present = true;
            for (size_t j = 0; j < 5; j++) {
                const redisReply *e = v->element[j];
                s->read_present[j] = e->type == REDIS_REPLY_STRING;
                s->read[j] = s->read_present[j] ? arena_dup(&p->arena, e->str, e->len) : "";
                if (!s->read_present[j] ||
                    (j != 3 && !safe_strtoll(s->read[j], INT64_MIN, INT64_MAX, &num[j])))
                    s->present = false;
            }
            if (s->present) {
                s->pv = num[0];
                s->start = num[1];
                s->last = num[2];
                s->base = s->read[3];
                s->exp = num[4];
            }
            s->dirty = false;
            s->rt_ts = INT64_MIN;
        }
        freeReplyObject(v);
    }
    return rv;
}

/* ---- step 2: the plan ---- */

static uint32_t wkey_index(struct plan *p, const char *key, size_t len, int64_t expire_at)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&p->key_map, &p->arena, key, len, (uint32_t)p->nkeys, &created,
                             &stored);
    if (created) {
        GROW(p->keys, p->nkeys, p->keys_cap);
        p->keys[p->nkeys++] = (struct wkey){stored, expire_at};
    }
    return i;
}

static void hincr(struct plan *p, const char *key, size_t klen, const char *field,
                  long long delta, int64_t expire_at)
{
    uint32_t k = wkey_index(p, key, klen, expire_at);
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

static void pfadd(struct plan *p, const char *key, size_t klen, const char *member,
                  int64_t expire_at)
{
    uint32_t k = wkey_index(p, key, klen, expire_at);
    GROW(p->pfs, p->npfs, p->pfs_cap);
    p->pfs[p->npfs] = (struct pfitem){k, (uint32_t)p->npfs, member};
    p->npfs++;
}

/* The row `value` is counted in: itself, or "(other)" once the breakdown
 * holds `cap` rows (the rule of docs/AGGREGATOR.md "Caps"). */
static const char *map_row(struct plan *p, const char *base, const char *dim,
                           const char *value)
{
    struct cell *c = &p->cells[cell_index(p, pk_index(p, base, dim), value)];
    if (c->row)
        return c->row;
    struct pk *k = &p->pks[c->pk];
    if (strcmp(value, ROLLUP_OTHER) == 0 || c->exists) {
        c->row = value;
    } else if (k->rows < p->cap) {
        c->row = value;
        k->rows++;
        k->admitted = true;
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
        pfadd(p, key, len, visitor, expire_at);
}

static bool visit_dim_has_visitors(size_t d)
{
    return d <= ROLLUP_V_UTM_CAMPAIGN; /* entry_page, source and the utm dims */
}

/* A new visit starting with a page view whose visit values are `values`. */
static void visit(struct plan *p, const char *base, int64_t expire_at, const char *visitor,
                  const char *const *values)
{
    hincr_at(p, base, "totals", "visits", 1, expire_at);
    hincr_at(p, base, "totals", "bounces", 1, expire_at);
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        if (!values[d][0])
            continue;
        const char *dim = rollup_visit_dim_name((enum rollup_visit_dim)d);
        const char *row = map_row(p, base, dim, values[d]);
        count_row(p, base, dim, row, ":vis", 1, expire_at);
        if (visit_dim_has_visitors(d))
            count_row_visitor(p, base, dim, row, visitor, expire_at);
    }
}

/* One event of a visitor, in session then time order (rollup_finish). */
static void hit(struct plan *p, const struct rollup *r, const struct rollup_hit *h)
{
    size_t ndays, nsessions;
    const struct rollup_day *day = &rollup_days(r, &ndays)[h->day];
    const struct rollup_session *rs = &rollup_sessions(r, &nsessions)[h->session];
    const char *visitor = rollup_visitor(r, rs->visitor);
    struct session *s = &p->sessions[h->session];
    if (s->rt_ts < h->ts)
        s->rt_ts = h->ts;
    bool open = s->present;
    if (open && h->ts > s->last + p->timeout)
        open = false; /* expired: a page view starts a new visit */
    if (open && h->ts < s->start - p->timeout) {
        /* an earlier, separate visit that arrived late: count it, keep the session */
        if (h->pageview)
            visit(p, day->base, day->expire_at, visitor, h->visit);
        return;
    }
    if (!open) {
        if (h->pageview) {
            visit(p, day->base, day->expire_at, visitor, h->visit);
            s->present = true;
            s->pv = 1;
            s->start = s->last = h->ts;
            s->base = day->base;
            s->exp = day->expire_at;
            s->dirty = true;
        }
        return;
    }
    if (h->ts > s->last) {
        hincr_at(p, s->base, "totals", "visit_duration_s", h->ts - s->last, s->exp);
        s->last = h->ts;
    }
    if (h->ts < s->start) {
        hincr_at(p, s->base, "totals", "visit_duration_s", s->start - h->ts, s->exp);
        s->start = h->ts;
    }
    if (h->pageview && ++s->pv == 2)
        hincr_at(p, s->base, "totals", "bounces", -1, s->exp);
    s->dirty = true;
}

/* Step 2: the whole plan, in the order that decides which values get rows
 * before a cap is reached: day totals, rows in first-seen order, visits. */
static void make_plan(struct plan *p, const struct rollup *r)
{
    size_t ndays, nrows, nhits, nsessions;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);
    rollup_sessions(r, &nsessions);
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
                pfadd(p, key, len, rollup_visitor(r, d->visitors[v]), d->expire_at);
    }
    for (size_t i = 0; i < nrows; i++) {
        const struct rollup_row *row = &rows[i];
        const struct rollup_day *d = &days[row->day];
        if (strncmp(row->dim, "prop:", 5) == 0 &&
            strcmp(map_row(p, d->base, "prop_key", row->dim + 5), ROLLUP_OTHER) == 0)
            continue;
        const char *target = map_row(p, d->base, row->dim, row->value);
        if (row->pv > 0)
            count_row(p, d->base, row->dim, target, ":pv", row->pv, d->expire_at);
        count_row(p, d->base, row->dim, target, ":ev", row->ev, d->expire_at);
        for (size_t v = 0; v < row->nvisitors; v++)
            count_row_visitor(p, d->base, row->dim, target, rollup_visitor(r, row->visitors[v]),
                              d->expire_at);
    }
    for (size_t i = 0; i < nhits; i++)
        hit(p, r, &hits[i]);
}

/* ---- step 3: the script call ---- */

struct commit {
    char sha[41]; /* "" until loaded */
    struct argbuf args;
    struct plan plan;
    struct smap site_map;
    unsigned long long replans;
    void (*hook)(void *arg, int attempt);
    void *hook_arg;
};

void commit_set_plan_hook(struct commit *c, void (*hook)(void *arg, int attempt), void *arg)
{
    c->hook = hook;
    c->hook_arg = arg;
}

unsigned long long commit_replans(const struct commit *c)
{
    return c->replans;
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

static int load_script(redisContext *rc, const char *script, char sha[41], char *err,
                       size_t errlen)
{
    const char *argv[] = {"SCRIPT", "LOAD", script};
    size_t lens[] = {6, 4, strlen(script)};
    redisReply *reply = redisCommandArgv(rc, 3, argv, lens);
    int rv = -1;
    if (reply && reply->type == REDIS_REPLY_STRING && reply->len == 40) {
        memcpy(sha, reply->str, 40);
        sha[40] = '\0';
        rv = 0;
    } else {
        reply_error(rc, reply, "SCRIPT LOAD", err, errlen);
    }
    if (reply)
        freeReplyObject(reply);
    return rv;
}

int commit_load(struct commit *c, redisContext *rc, char *err, size_t errlen)
{
    return load_script(rc, commit_script, c->sha, err, errlen);
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

static void encode_guards(struct argbuf *a, const struct plan *pl, const struct rollup *r)
{
    size_t nsessions;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    for (size_t i = 0; i < nsessions; i++) {
        const struct session *s = &pl->sessions[i];
        char mask[6];
        for (size_t j = 0; j < 5; j++)
            mask[j] = s->read_present[j] ? '1' : '0';
        mask[5] = '\0';
        arg_str(a, "G");
        arg_str(a, sessions[i].key);
        arg_str(a, mask);
        for (size_t j = 0; j < 5; j++)
            arg_str(a, s->read[j]);
    }
    for (size_t i = 0; i < pl->npks; i++) {
        if (!pl->pks[i].admitted)
            continue;
        arg_str(a, "L");
        arg_str(a, pl->pks[i].key);
        arg_ll(a, pl->pks[i].hlen);
    }
}

static void encode_writes(struct commit *c, const struct rollup *r)
{
    struct argbuf *a = &c->args;
    struct plan *pl = &c->plan;
    size_t nsessions, ndays;
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    const struct rollup_day *days = rollup_days(r, &ndays);

    for (size_t i = 0; i < nsessions; i++) {
        const struct session *s = &pl->sessions[i];
        if (!s->dirty)
            continue;
        arg_str(a, "S");
        arg_str(a, sessions[i].key);
        arg_ll(a, s->pv);
        arg_ll(a, s->start);
        arg_ll(a, s->last);
        arg_str(a, s->base);
        arg_ll(a, s->exp);
    }
    qsort(pl->incs, pl->nincs, sizeof *pl->incs, inc_cmp);
    for (size_t i = 0; i < pl->nincs;) {
        size_t end = i, nonzero = 0;
        for (; end < pl->nincs && pl->incs[end].key == pl->incs[i].key; end++)
            nonzero += pl->incs[end].delta != 0;
        if (nonzero) {
            arg_str(a, "I");
            arg_str(a, pl->keys[pl->incs[i].key].name);
            arg_ll(a, (long long)nonzero);
            for (size_t j = i; j < end; j++) {
                if (pl->incs[j].delta == 0)
                    continue;
                arg_str(a, pl->incs[j].field);
                arg_ll(a, pl->incs[j].delta);
            }
        }
        i = end;
    }
    qsort(pl->pfs, pl->npfs, sizeof *pl->pfs, pf_cmp);
    for (size_t i = 0; i < pl->npfs;) {
        size_t end = i;
        while (end < pl->npfs && pl->pfs[end].key == pl->pfs[i].key)
            end++;
        arg_str(a, "P");
        arg_str(a, pl->keys[pl->pfs[i].key].name);
        arg_ll(a, (long long)(end - i));
        for (size_t j = i; j < end; j++)
            arg_str(a, pl->pfs[j].member);
        i = end;
    }
    for (size_t i = 0; i < pl->nkeys; i++) {
        arg_str(a, "X");
        arg_str(a, pl->keys[i].name);
        arg_ll(a, pl->keys[i].expire_at);
    }
    smap_clear(&c->site_map);
    for (size_t i = 0; i < ndays; i++) {
        bool created;
        smap_intern(&c->site_map, &pl->arena, days[i].site, strlen(days[i].site), 0, &created,
                    NULL);
        if (created) {
            arg_str(a, "A");
            arg_str(a, days[i].site);
        }
    }
    /* realtime: the sessions of each realtime key, chained */
    if (nsessions > pl->rt_cap) {
        pl->rt_cap = nsessions;
        pl->rt_first = xrealloc(pl->rt_first, nsessions * sizeof *pl->rt_first);
        pl->rt_next = xrealloc(pl->rt_next, nsessions * sizeof *pl->rt_next);
    }
    for (size_t i = 0; i < nsessions; i++) {
        pl->rt_next[i] = UINT32_MAX;
        if (pl->sessions[i].rt_ts == INT64_MIN)
            continue;
        const char *key = sessions[i].realtime_key;
        bool created;
        uint32_t k = smap_intern(&pl->rt_map, &pl->arena, key, strlen(key), (uint32_t)pl->nrt,
                                 &created, NULL);
        if (created) {
            pl->nrt++;
        } else {
            pl->rt_next[i] = pl->rt_first[k];
        }
        pl->rt_first[k] = (uint32_t)i;
    }
    for (size_t k = 0; k < pl->nrt; k++) {
        size_t n = 0;
        for (uint32_t i = pl->rt_first[k]; i != UINT32_MAX; i = pl->rt_next[i])
            n++;
        arg_str(a, "Z");
        arg_str(a, sessions[pl->rt_first[k]].realtime_key);
        arg_ll(a, (long long)n);
        for (uint32_t i = pl->rt_first[k]; i != UINT32_MAX; i = pl->rt_next[i]) {
            arg_ll(a, pl->sessions[i].rt_ts);
            arg_str(a, rollup_visitor(r, sessions[i].visitor));
        }
    }
}

/* Fill c->args with EVALSHA's arguments from the SHA on. */
static void encode_batch(struct commit *c, const struct commit_params *p,
                         const char *const *ids, const size_t *idlens, size_t nids,
                         const struct rollup *r)
{
    struct argbuf *a = &c->args;
    a->n = a->used = 0;
    arg_str(a, "EVALSHA");
    arg_str(a, c->sha);
    arg_str(a, "2");
    arg_str(a, p->stream_key);
    arg_str(a, p->sites_key);
    arg_str(a, p->group);
    arg_str(a, p->consumer);
    arg_ll(a, p->session_timeout_s);
    size_t lo = 0, hi = 0;
    for (size_t i = 1; i < nids; i++) {
        if (stream_id_cmp(ids[i], idlens[i], ids[lo], idlens[lo]) < 0)
            lo = i;
        if (stream_id_cmp(ids[i], idlens[i], ids[hi], idlens[hi]) > 0)
            hi = i;
    }
    arg_add(a, ids[lo], idlens[lo]);
    arg_add(a, ids[hi], idlens[hi]);
    arg_ll(a, (long long)nids);
    for (size_t i = 0; i < nids; i++)
        arg_add(a, ids[i], idlens[i]);
    encode_guards(a, &c->plan, r);
    encode_writes(c, r);
    argbuf_finish(a);
}

static void mark_lost(const redisReply *list, const char *const *ids, const size_t *idlens,
                      size_t nids, bool *lost)
{
    for (size_t j = 0; j < list->elements; j++) {
        const redisReply *id = list->element[j];
        if (id->type != REDIS_REPLY_STRING)
            continue;
        for (size_t i = 0; i < nids; i++) {
            if (idlens[i] == id->len && memcmp(ids[i], id->str, id->len) == 0) {
                lost[i] = true;
                break;
            }
        }
    }
}

enum commit_result commit_batch(struct commit *c, redisContext *rc,
                                const struct commit_params *p, const char *const *ids,
                                const size_t *idlens, size_t nids, const struct rollup *r,
                                bool *lost, char *err, size_t errlen)
{
    if (nids == 0)
        return COMMIT_OK;
    if (!c->sha[0] && commit_load(c, rc, err, errlen) != 0)
        return COMMIT_ERROR;
    struct plan *pl = &c->plan;
    for (int attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
        plan_reset(pl);
        pl->cap = p->breakdown_cap;
        pl->timeout = p->session_timeout_s;
        collect_cells(pl, r);
        if (read_state(pl, rc, r, err, errlen) != 0)
            return COMMIT_ERROR;
        make_plan(pl, r);
        encode_batch(c, p, ids, idlens, nids, r);
        if (c->hook)
            c->hook(c->hook_arg, attempt);

        redisReply *reply = NULL;
        for (int load = 0; load < 2; load++) {
            reply = redisCommandArgv(rc, (int)c->args.n, c->args.argv, c->args.lens);
            if (!reply || reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "NOSCRIPT", 8))
                break;
            /* The server lost its script cache (restart, SCRIPT FLUSH). */
            freeReplyObject(reply);
            reply = NULL;
            if (commit_load(c, rc, err, errlen) != 0)
                return COMMIT_ERROR;
            c->args.argv[1] = c->sha;
        }
        enum commit_result result = COMMIT_ERROR;
        bool again = false;
        if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER) {
            long long status = reply->element[0]->integer;
            if (status == 1) {
                result = COMMIT_OK;
            } else if (status == 2) {
                again = true; /* a session or a row count changed since step 1 */
            } else if (status == 0 && reply->elements == 2 &&
                       reply->element[1]->type == REDIS_REPLY_ARRAY) {
                for (size_t i = 0; i < nids; i++)
                    lost[i] = false;
                mark_lost(reply->element[1], ids, idlens, nids, lost);
                result = COMMIT_CONFLICT;
            }
        }
        if (result == COMMIT_ERROR && !again)
            reply_error(rc, reply, "commit script", err, errlen);
        if (reply)
            freeReplyObject(reply);
        if (!again)
            return result;
        c->replans++;
    }
    str_format(err, errlen, "commit: the batch's sessions or rows changed under %d plans in a row",
               COMMIT_ATTEMPTS);
    return COMMIT_ERROR;
}

long long commit_forget_consumers(redisContext *rc, const struct commit_params *p,
                                  long long idle_ms, char *err, size_t errlen)
{
    char idle[24];
    str_format(idle, sizeof idle, "%lld", idle_ms);
    const char *argv[] = {"EVAL", forget_script, "1", p->stream_key, p->group, p->consumer, idle};
    size_t lens[7];
    for (size_t i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(rc, 7, argv, lens);
    long long removed = -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        removed = reply->integer;
    else
        reply_error(rc, reply, "forget consumers", err, errlen);
    if (reply)
        freeReplyObject(reply);
    return removed;
}
