/* commit.c - the atomic commit of one combined batch (see commit.h and
 * docs/AGGREGATOR.md "Exactly once").
 *
 * The script below is the only code that writes counts. Its arguments:
 *
 *   KEYS[1] stream, KEYS[2] sites set, KEYS[3..] session keys of the batch
 *   ARGV[1] group, [2] consumer, [3] breakdown_cap, [4] session_timeout_s,
 *   [5] lowest id, [6] highest id, [7] n ids, [8 .. 7+n] stream ids, then
 *   records:
 *     D base expire_at site          a site-day; "base" = "veil:{0}:d:<site>:<day>:"
 *     T field delta                  totals of the current site-day
 *     H bucket delta                 scroll histogram of the current site-day
 *     V n vh*n                       day visitors (HyperLogLog)
 *     R dim value pv ev n vh*n       a breakdown row (cap applied in the script)
 *     E key_index rt_key base expire_at vh ts is_pageview value*13
 *                                    one visitor event for the session logic
 *
 * Daily keys (base + suffix) are built inside the script because the row a
 * value lands in ("(other)" past the cap) is only known there; they share
 * the {0} hash tag of KEYS, so the script stays within one cluster slot.
 * The script reads first (ownership, sessions, cap membership) and writes
 * last, so a conflict or a malformed call writes nothing. It never logs. */
#include "commit.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char commit_script[] =
    "#!lua\n"
    "local stream, sites_key = KEYS[1], KEYS[2]\n"
    "local group, consumer = ARGV[1], ARGV[2]\n"
    "local cap, timeout, nids = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[7])\n"
    "local OTHER = '(other)'\n"
    /* the order of enum rollup_visit_dim (rollup.h) */
    "local VISIT_DIMS = {'entry_page', 'source', 'utm_source', 'utm_medium', 'utm_campaign',\n"
    "  'country', 'region', 'city', 'browser', 'browser_version', 'os', 'device', 'screen'}\n"
    "local VISIT_HLL = {entry_page = true, source = true, utm_source = true,\n"
    "  utm_medium = true, utm_campaign = true}\n"
    /* 1. every entry must still be pending for this consumer. Our pending
     * entries between the batch's lowest and highest id are normally just
     * the batch; should there be more than the count asked for, some of ours
     * read as lost: they are left out now and claimed again later - late,
     * never twice. */
    "local ours, lost = {}, {}\n"
    "for _, p in ipairs(redis.call('XPENDING', stream, group, ARGV[5], ARGV[6],\n"
    "                              2 * nids + 16, consumer)) do\n"
    "  ours[p[1]] = true\n"
    "end\n"
    "for i = 8, 7 + nids do\n"
    "  if not ours[ARGV[i]] then lost[#lost + 1] = ARGV[i] end\n"
    "end\n"
    "if #lost > 0 then return {0, lost} end\n"
    /* 2. read and compute; nothing is written in this phase */
    "local incr, pf, expat, rowmap, sess, dirty, rt, sites = {}, {}, {}, {}, {}, {}, {}, {}\n"
    "local function hincr(key, field, d, e)\n"
    "  local h = incr[key]\n"
    "  if not h then h = {}; incr[key] = h; expat[key] = e end\n"
    "  h[field] = (h[field] or 0) + d\n"
    "end\n"
    "local function pfadd(key, member, e)\n"
    "  local l = pf[key]\n"
    "  if not l then l = {}; pf[key] = l; expat[key] = e end\n"
    "  l[#l + 1] = member\n"
    "end\n"
    /* the row a value is counted in: itself, or OTHER once the dimension
     * holds `cap` rows; membership is the dimension's primary hash */
    "local function map_row(base, dim, value)\n"
    "  local pk = base .. 'b:' .. dim .. (dim == 'entry_page' and ':vis' or ':ev')\n"
    "  local m = rowmap[pk]\n"
    "  if not m then m = {rows = {}}; rowmap[pk] = m end\n"
    "  local row = m.rows[value]\n"
    "  if row then return row end\n"
    "  if value == OTHER or redis.call('HEXISTS', pk, value) == 1 then\n"
    "    row = value\n"
    "  else\n"
    "    if not m.n then\n"
    "      m.n = redis.call('HLEN', pk) - redis.call('HEXISTS', pk, OTHER)\n"
    "    end\n"
    "    if m.n < cap then row = value; m.n = m.n + 1 else row = OTHER end\n"
    "  end\n"
    "  m.rows[value] = row\n"
    "  return row\n"
    "end\n"
    "local function visit(b, e, vh, first)\n"
    "  hincr(b .. 'totals', 'visits', 1, e)\n"
    "  hincr(b .. 'totals', 'bounces', 1, e)\n"
    "  for d = 1, #VISIT_DIMS do\n"
    "    local v = ARGV[first + d - 1]\n"
    "    if v ~= '' then\n"
    "      local dim = VISIT_DIMS[d]\n"
    "      local row = map_row(b, dim, v)\n"
    "      hincr(b .. 'b:' .. dim .. ':vis', row, 1, e)\n"
    "      if VISIT_HLL[dim] then pfadd(b .. 'u:' .. dim .. ':' .. row, vh, e) end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function hit(i)\n"
    "  local k, rtkey, b, e = tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])\n"
    "  local vh, ts, is_pv = ARGV[i + 5], tonumber(ARGV[i + 6]), ARGV[i + 7] == '1'\n"
    "  local r = rt[rtkey]\n"
    "  if not r then r = {}; rt[rtkey] = r end\n"
    "  if not r[vh] or r[vh] < ts then r[vh] = ts end\n"
    "  local s = sess[k]\n"
    "  if s == nil then\n"
    "    local v = redis.call('HMGET', KEYS[k], 'pv', 'start', 'last', 'base', 'exp')\n"
    "    if v[1] and v[2] and v[3] and v[4] and v[5] then\n"
    "      s = {pv = tonumber(v[1]), start = tonumber(v[2]), last = tonumber(v[3]),\n"
    "           base = v[4], exp = tonumber(v[5])}\n"
    "    else\n"
    "      s = false\n"
    "    end\n"
    "    sess[k] = s\n"
    "  end\n"
    "  if s and ts > s.last + timeout then s = false end\n"
    "  if s and ts < s.start - timeout then\n"
    /* an earlier, separate visit that arrived late: count it, keep the session */
    "    if is_pv then visit(b, e, vh, i + 8) end\n"
    "    return\n"
    "  end\n"
    "  if not s then\n"
    "    if is_pv then\n"
    "      visit(b, e, vh, i + 8)\n"
    "      sess[k] = {pv = 1, start = ts, last = ts, base = b, exp = e}\n"
    "      dirty[k] = true\n"
    "    end\n"
    "    return\n"
    "  end\n"
    "  if ts > s.last then\n"
    "    hincr(s.base .. 'totals', 'visit_duration_s', ts - s.last, s.exp); s.last = ts\n"
    "  end\n"
    "  if ts < s.start then\n"
    "    hincr(s.base .. 'totals', 'visit_duration_s', s.start - ts, s.exp); s.start = ts\n"
    "  end\n"
    "  if is_pv then\n"
    "    s.pv = s.pv + 1\n"
    "    if s.pv == 2 then hincr(s.base .. 'totals', 'bounces', -1, s.exp) end\n"
    "  end\n"
    "  dirty[k] = true\n"
    "end\n"
    "local i, n_args, base, exp = 8 + nids, #ARGV, nil, nil\n"
    "while i <= n_args do\n"
    "  local tag = ARGV[i]\n"
    "  if tag == 'D' then\n"
    "    base, exp = ARGV[i + 1], tonumber(ARGV[i + 2]); sites[ARGV[i + 3]] = true; i = i + 4\n"
    "  elseif tag == 'T' then\n"
    "    hincr(base .. 'totals', ARGV[i + 1], tonumber(ARGV[i + 2]), exp); i = i + 3\n"
    "  elseif tag == 'H' then\n"
    "    hincr(base .. 'scroll', ARGV[i + 1], tonumber(ARGV[i + 2]), exp); i = i + 3\n"
    "  elseif tag == 'V' then\n"
    "    local n, key = tonumber(ARGV[i + 1]), base .. 'visitors'\n"
    "    for j = i + 2, i + 1 + n do pfadd(key, ARGV[j], exp) end\n"
    "    i = i + 2 + n\n"
    "  elseif tag == 'R' then\n"
    "    local dim, value = ARGV[i + 1], ARGV[i + 2]\n"
    "    local pv, ev, n = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])\n"
    "    if string.sub(dim, 1, 5) ~= 'prop:' or\n"
    "       map_row(base, 'prop_key', string.sub(dim, 6)) ~= OTHER then\n"
    "      local row = map_row(base, dim, value)\n"
    "      if pv > 0 then hincr(base .. 'b:' .. dim .. ':pv', row, pv, exp) end\n"
    "      hincr(base .. 'b:' .. dim .. ':ev', row, ev, exp)\n"
    "      local ukey = base .. 'u:' .. dim .. ':' .. row\n"
    "      for j = i + 6, i + 5 + n do pfadd(ukey, ARGV[j], exp) end\n"
    "    end\n"
    "    i = i + 6 + n\n"
    "  elseif tag == 'E' then\n"
    "    hit(i); i = i + 8 + #VISIT_DIMS\n"
    "  else\n"
    "    return redis.error_reply('veil commit: bad record at argument ' .. i)\n"
    "  end\n"
    "end\n"
    /* 3. write */
    "for k in pairs(dirty) do\n"
    "  local s = sess[k]\n"
    "  redis.call('HSET', KEYS[k], 'pv', s.pv, 'start', s.start, 'last', s.last,\n"
    "             'base', s.base, 'exp', s.exp)\n"
    "  redis.call('EXPIRE', KEYS[k], timeout)\n"
    "end\n"
    "for key, h in pairs(incr) do\n"
    "  for f, d in pairs(h) do\n"
    "    if d ~= 0 then redis.call('HINCRBY', key, f, d) end\n"
    "  end\n"
    "end\n"
    "for key, l in pairs(pf) do\n"
    "  for j = 1, #l, 500 do redis.call('PFADD', key, unpack(l, j, math.min(j + 499, #l))) end\n"
    "end\n"
    "for key, e in pairs(expat) do redis.call('EXPIREAT', key, e) end\n"
    "for site in pairs(sites) do redis.call('SADD', sites_key, site) end\n"
    "local now = tonumber(redis.call('TIME')[1])\n"
    "for key, m in pairs(rt) do\n"
    "  local z = {}\n"
    "  for vh, ts in pairs(m) do z[#z + 1] = ts; z[#z + 1] = vh end\n"
    "  for j = 1, #z, 1000 do\n"
    "    redis.call('ZADD', key, 'GT', unpack(z, j, math.min(j + 999, #z)))\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - 300))\n"
    "  redis.call('EXPIRE', key, 600)\n"
    "end\n"
    "for j = 8, 7 + nids, 500 do\n"
    "  local last = math.min(j + 499, 7 + nids)\n"
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

struct commit {
    char sha[41]; /* "" until loaded */
    struct argbuf args;
};

struct commit *commit_new(void)
{
    return xcalloc(1, sizeof(struct commit));
}

void commit_free(struct commit *c)
{
    if (!c)
        return;
    argbuf_free(&c->args);
    free(c);
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

static void encode_day_header(struct argbuf *a, const struct rollup_day *d)
{
    arg_str(a, "D");
    arg_str(a, d->base);
    arg_ll(a, d->expire_at);
    arg_str(a, d->site);
}

/* The records of one site-day: D, then T, H and V. */
static void encode_day(struct argbuf *a, const struct rollup *r, const struct rollup_day *d)
{
    encode_day_header(a, d);
    for (size_t t = 0; t < ROLLUP_T_COUNT; t++) {
        if (d->totals[t] == 0)
            continue;
        arg_str(a, "T");
        arg_str(a, rollup_total_field((enum rollup_total)t));
        arg_ll(a, d->totals[t]);
    }
    for (size_t b = 0; b < ROLLUP_SCROLL_BUCKETS; b++) {
        if (d->scroll[b] == 0)
            continue;
        arg_str(a, "H");
        arg_ll(a, (long long)b * 10);
        arg_ll(a, d->scroll[b]);
    }
    if (d->nvisitors) {
        arg_str(a, "V");
        arg_ll(a, (long long)d->nvisitors);
        for (size_t v = 0; v < d->nvisitors; v++)
            arg_str(a, rollup_visitor(r, d->visitors[v]));
    }
}

static void encode_row(struct argbuf *a, const struct rollup *r, const struct rollup_row *row)
{
    arg_str(a, "R");
    arg_str(a, row->dim);
    arg_str(a, row->value);
    arg_ll(a, row->pv);
    arg_ll(a, row->ev);
    arg_ll(a, (long long)row->nvisitors);
    for (size_t v = 0; v < row->nvisitors; v++)
        arg_str(a, rollup_visitor(r, row->visitors[v]));
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

/* Fill c->args with EVALSHA's arguments from the SHA on. */
static void encode_batch(struct commit *c, const struct commit_params *p,
                         const char *const *ids, const size_t *idlens, size_t nids,
                         const struct rollup *r)
{
    struct argbuf *a = &c->args;
    size_t ndays, nrows, nsessions, nhits;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_session *sessions = rollup_sessions(r, &nsessions);
    const struct rollup_hit *hits = rollup_hits(r, &nhits);

    a->n = a->used = 0;
    arg_str(a, "EVALSHA");
    arg_str(a, c->sha);
    arg_ll(a, 2 + (long long)nsessions);
    arg_str(a, p->stream_key);
    arg_str(a, p->sites_key);
    for (size_t i = 0; i < nsessions; i++)
        arg_str(a, sessions[i].key);
    arg_str(a, p->group);
    arg_str(a, p->consumer);
    arg_ll(a, p->breakdown_cap);
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
    for (size_t d = 0; d < ndays; d++)
        encode_day(a, r, &days[d]);
    /* Rows in first-seen order, which decides which values get rows before
     * the cap is reached; a D record switches the site-day when needed. */
    size_t current = ndays ? ndays - 1 : 0;
    for (size_t i = 0; i < nrows; i++) {
        if (rows[i].day != current) {
            current = rows[i].day;
            encode_day_header(a, &days[current]);
        }
        encode_row(a, r, &rows[i]);
    }
    for (size_t i = 0; i < nhits; i++) {
        const struct rollup_hit *h = &hits[i];
        const struct rollup_session *s = &sessions[h->session];
        arg_str(a, "E");
        arg_ll(a, 3 + (long long)h->session); /* KEYS index */
        arg_str(a, s->realtime_key);
        arg_str(a, days[h->day].base);
        arg_ll(a, days[h->day].expire_at);
        arg_str(a, rollup_visitor(r, s->visitor));
        arg_ll(a, h->ts);
        arg_str(a, h->pageview ? "1" : "0");
        for (size_t v = 0; v < ROLLUP_V_COUNT; v++)
            arg_str(a, h->visit[v]);
    }
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
    encode_batch(c, p, ids, idlens, nids, r);

    redisReply *reply = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
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
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER) {
        if (reply->element[0]->integer == 1) {
            result = COMMIT_OK;
        } else if (reply->element[1]->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < nids; i++)
                lost[i] = false;
            mark_lost(reply->element[1], ids, idlens, nids, lost);
            result = COMMIT_CONFLICT;
        }
    }
    if (result == COMMIT_ERROR)
        reply_error(rc, reply, "commit script", err, errlen);
    if (reply)
        freeReplyObject(reply);
    return result;
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
