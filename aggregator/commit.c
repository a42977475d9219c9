/* commit.c - the atomic commit of one combined batch (see commit.h and
 * docs/AGGREGATOR.md "Exactly once").
 *
 * The script below is the only code that writes counts. The session logic
 * already ran in C (rollup_apply_sessions) on a snapshot of the batch's
 * sessions; the script checks what that needed - the entries are still
 * this consumer's, the sessions are as in the snapshot - and then applies
 * the result without further logic. Its arguments:
 *
 *   KEYS[1] stream, KEYS[2] sites set, KEYS[3] sessions version counter,
 *   KEYS[4] a scratch key for HyperLogLogs built in C
 *   ARGV[1] group, [2] consumer, [3] held (entries pending for the consumer
 *   if nothing was taken away; 0 = unknown), [4] breakdown_cap,
 *   [5] session bucket width (s), [6] session_timeout_s, [7] session hash
 *   prefix "veil:{0}:sessions:", [8] the version counter at the snapshot
 *   ("-" = the batch has no sessions), [9] the batch's session fields and
 *   [10] their values at the snapshot (both joined by "\n"; only read when
 *   the counter moved), [11] n ids, [12 .. 11+n] the stream ids, ascending,
 *   then records:
 *     D base expire_at site            a site-day; "base" = "veil:{0}:d:<site>:<day>:"
 *     T n (field delta)*n              totals of the current site-day
 *     H n (bucket delta)*n             scroll histogram of the current site-day
 *     V visitors                       day visitors (HyperLogLog)
 *     G kind dim k value*k, then k times: pv ev vis visitors
 *                                      the rows of one dimension: kind 'e' (cap
 *                                      counted in b:<dim>:ev), 'v' (entry_page:
 *                                      b:entry_page:vis), 'p' (prop:<key>, no rows
 *                                      when <key> is "(other)" in prop_key)
 *     S n (field value)*n              session states, into the current bucket
 *     X bucket n field*n               the same sessions' older copies, deleted
 *     Z rt_key n (ts vh)*n             realtime visitors of one site
 *   where "visitors" is either n vh*n (n >= 0, PFADD) or -1 and a
 *   HyperLogLog of many visitors built by hll.c (PFMERGE via KEYS[4]).
 *
 * Daily and session-bucket keys (base + suffix) are built inside the
 * script because the row a value lands in ("(other)" past the cap) and the
 * bucket of the server's clock are only known there; they share the {0}
 * hash tag of KEYS, so the script stays within one cluster slot. The
 * script checks first and writes last, so a conflict or a malformed call
 * writes nothing. It never logs. */
#include "commit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hll.h"
#include "reply.h"
#include "resp.h"
#include "util.h"

static const char commit_script[] =
    "#!lua\n"
    "local stream, sites_key, version_key, scratch = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local group, consumer, held = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local cap, width, timeout = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local sessions, version = ARGV[7], ARGV[8]\n"
    "local nids = tonumber(ARGV[11])\n"
    "local first, last = 12, 11 + nids\n"
    "local OTHER = '(other)'\n"
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local bucket = math.floor(now / width)\n"
    /* 0. the records are well-formed (a bad call must not write half) */
    "local n_args, i = #ARGV, last + 1\n"
    "local HEAD = {T = 2, H = 2, S = 2, X = 3, Z = 3}\n"
    "local PER = {T = 2, H = 2, S = 2, X = 1, Z = 2}\n"
    "local function count(j, blob)\n"
    "  local n = tonumber(ARGV[j])\n"
    "  if blob and n == -1 then return 1 end\n"
    "  if not n or n < 0 then error('veil commit: bad count at argument ' .. j) end\n"
    "  return n\n"
    "end\n"
    "while i <= n_args do\n"
    "  local tag = ARGV[i]\n"
    "  if tag == 'D' then\n"
    "    i = i + 4\n"
    "  elseif tag == 'V' then\n"
    "    i = i + 2 + count(i + 1, true)\n"
    "  elseif tag == 'G' then\n"
    "    local k = count(i + 3)\n"
    "    i = i + 4 + k\n"
    "    for _ = 1, k do i = i + 4 + count(i + 3, true) end\n"
    "  elseif HEAD[tag] then\n"
    "    i = i + HEAD[tag] + PER[tag] * count(i + HEAD[tag] - 1)\n"
    "  else\n"
    "    return redis.error_reply('veil commit: bad record at argument ' .. i)\n"
    "  end\n"
    "end\n"
    "if i ~= n_args + 1 then return redis.error_reply('veil commit: truncated records') end\n"
    /* 1. every entry must still be pending for this consumer. The count of
     * its pending entries settles it when the caller knows what it holds;
     * else (or when it differs) the entries are listed. Our pending entries
     * between the batch's lowest and highest id are normally just the
     * batch; should there be more than the count asked for, some of ours
     * read as lost: they are left out now and claimed again later - late,
     * never twice. */
    "local function pending_of(summary, name)\n"
    "  if summary[4] then\n"
    "    for _, c in ipairs(summary[4]) do\n"
    "      if c[1] == name then return tonumber(c[2]) end\n"
    "    end\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if held == 0 or pending_of(redis.call('XPENDING', stream, group), consumer) ~= held then\n"
    "  local ours, lost = {}, {}\n"
    "  for _, p in ipairs(redis.call('XPENDING', stream, group, ARGV[first], ARGV[last],\n"
    "                                2 * nids + 16, consumer)) do\n"
    "    ours[p[1]] = true\n"
    "  end\n"
    "  for j = first, last do\n"
    "    if not ours[ARGV[j]] then lost[#lost + 1] = ARGV[j] end\n"
    "  end\n"
    "  if #lost > 0 then return {0, lost} end\n"
    "end\n"
    /* 2. the sessions are as in the snapshot: nobody committed sessions
     * since (the counter), or else every one of the batch's still holds
     * the value the snapshot saw (newest bucket first) */
    "if version ~= '-' then\n"
    "  if (redis.call('GET', version_key) or '0') ~= version then\n"
    "    local list, found, seen = {}, {}, {}\n"
    "    for f in string.gmatch(ARGV[9], '[^\\n]+') do list[#list + 1] = f end\n"
    "    for b = bucket, bucket - 2, -1 do\n"
    "      for j = 1, #list, 1000 do\n"
    "        local got = redis.call('HMGET', sessions .. b, unpack(list, j, math.min(j + 999, #list)))\n"
    "        for k = 1, #got do\n"
    "          if got[k] and not found[j + k - 1] then found[j + k - 1] = got[k] end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    for j = 1, #list do seen[j] = found[j] or '' end\n"
    "    if table.concat(seen, '\\n') ~= ARGV[10] then return {2} end\n"
    "  end\n"
    "  redis.call('INCR', version_key)\n"
    "end\n"
    /* 3. write */
    /* visitors at ARGV[at]: "n vh*n" or "-1 hll"; returns the next index */
    "local merged = false\n"
    "local function hll_add(key, at)\n"
    "  local n = tonumber(ARGV[at])\n"
    "  if n < 0 then\n"
    "    redis.call('SET', scratch, ARGV[at + 1], 'PX', 60000)\n"
    "    redis.call('PFMERGE', key, scratch)\n"
    "    merged = true\n"
    "    return at + 2\n"
    "  end\n"
    "  for j = at + 1, at + n, 500 do\n"
    "    redis.call('PFADD', key, unpack(ARGV, j, math.min(j + 499, at + n)))\n"
    "  end\n"
    "  return at + 1 + n\n"
    "end\n"
    "local base, exp, props\n"
    "i = last + 1\n"
    "while i <= n_args do\n"
    "  local tag = ARGV[i]\n"
    "  if tag == 'G' then\n"
    "    local kind, dim, k = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])\n"
    "    local v0 = i + 4\n"
    "    local rows\n"
    "    i = v0 + k\n"
    /* the row a value is counted in: itself, or OTHER once the dimension
     * holds `cap` rows; membership is the dimension's primary hash */
    "    if kind ~= 'p' or props[string.sub(dim, 6)] ~= OTHER then\n"
    "      local pk = base .. 'b:' .. dim .. (kind == 'v' and ':vis' or ':ev')\n"
    "      local n\n"
    "      rows = {}\n"
    "      for j = 0, k - 1, 1000 do\n"
    "        local got = redis.call('HMGET', pk, unpack(ARGV, v0 + j, v0 + math.min(j + 999, k - 1)))\n"
    "        for x = 1, #got do\n"
    "          local v = ARGV[v0 + j + x - 1]\n"
    "          if got[x] or v == OTHER then\n"
    "            rows[j + x] = v\n"
    "          else\n"
    "            if not n then n = redis.call('HLEN', pk) - redis.call('HEXISTS', pk, OTHER) end\n"
    "            if n < cap then rows[j + x] = v; n = n + 1 else rows[j + x] = OTHER end\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "      if dim == 'prop_key' then\n"
    "        for x = 1, k do props[ARGV[v0 + x - 1]] = rows[x] end\n"
    "      end\n"
    "    end\n"
    "    local kb = base .. 'b:' .. dim\n"
    "    local kpv, kev, kvis = kb .. ':pv', kb .. ':ev', kb .. ':vis'\n"
    "    local upv, uev, uvis = false, false, false\n"
    "    for x = 1, k do\n"
    "      local pv, ev, vis, m = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "      if not rows then\n"
    "        i = i + 4 + (m == '-1' and 1 or tonumber(m))\n"
    "      else\n"
    "        local row = rows[x]\n"
    "        if pv ~= '0' then redis.call('HINCRBY', kpv, row, pv); upv = true end\n"
    "        if ev ~= '0' then redis.call('HINCRBY', kev, row, ev); uev = true end\n"
    "        if vis ~= '0' then redis.call('HINCRBY', kvis, row, vis); uvis = true end\n"
    "        if m ~= '0' then\n"
    "          local uk = base .. 'u:' .. dim .. ':' .. row\n"
    "          i = hll_add(uk, i + 3)\n"
    "          redis.call('EXPIREAT', uk, exp)\n"
    "        else\n"
    "          i = i + 4\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    if upv then redis.call('EXPIREAT', kpv, exp) end\n"
    "    if uev then redis.call('EXPIREAT', kev, exp) end\n"
    "    if uvis then redis.call('EXPIREAT', kvis, exp) end\n"
    "  elseif tag == 'D' then\n"
    "    base, exp, props = ARGV[i + 1], ARGV[i + 2], {}\n"
    "    redis.call('SADD', sites_key, ARGV[i + 3])\n"
    "    i = i + 4\n"
    "  elseif tag == 'T' or tag == 'H' then\n"
    "    local key, n = base .. (tag == 'T' and 'totals' or 'scroll'), tonumber(ARGV[i + 1])\n"
    "    for j = i + 2, i + 2 * n, 2 do redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1]) end\n"
    "    redis.call('EXPIREAT', key, exp)\n"
    "    i = i + 2 + 2 * n\n"
    "  elseif tag == 'V' then\n"
    "    local key = base .. 'visitors'\n"
    "    i = hll_add(key, i + 1)\n"
    "    redis.call('EXPIREAT', key, exp)\n"
    "  elseif tag == 'S' then\n"
    "    local key, to = sessions .. bucket, i + 1 + 2 * tonumber(ARGV[i + 1])\n"
    "    for j = i + 2, to, 1000 do redis.call('HSET', key, unpack(ARGV, j, math.min(j + 999, to))) end\n"
    "    redis.call('EXPIREAT', key, (bucket + 1) * width + timeout)\n"
    "    i = to + 1\n"
    "  elseif tag == 'X' then\n"
    "    local b, to = tonumber(ARGV[i + 1]), i + 2 + tonumber(ARGV[i + 2])\n"
    "    if b ~= bucket then\n"
    "      for j = i + 3, to, 1000 do\n"
    "        redis.call('HDEL', sessions .. b, unpack(ARGV, j, math.min(j + 999, to)))\n"
    "      end\n"
    "    end\n"
    "    i = to + 1\n"
    "  else\n" /* Z */
    "    local key, to = ARGV[i + 1], i + 2 + 2 * tonumber(ARGV[i + 2])\n"
    "    for j = i + 3, to, 1000 do\n"
    "      redis.call('ZADD', key, 'GT', unpack(ARGV, j, math.min(j + 999, to)))\n"
    "    end\n"
    "    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - 300))\n"
    "    redis.call('EXPIRE', key, 600)\n"
    "    i = to + 1\n"
    "  end\n"
    "end\n"
    /* 4. acknowledge, then trim: entries below the oldest one still pending
     * in the group (and up to our highest) are all acknowledged, and XTRIM
     * MINID drops them by whole stream nodes; only our entries above an
     * older pending one need XDEL, one by one */
    "for j = first, last, 500 do\n"
    "  redis.call('XACK', stream, group, unpack(ARGV, j, math.min(j + 499, last)))\n"
    "end\n"
    "local function id_parts(id)\n"
    "  return string.match(id, '^(%d+)-(%d+)$')\n"
    "end\n"
    "local function id_less(a, b)\n"
    "  local am, as = id_parts(a)\n"
    "  local bm, bs = id_parts(b)\n"
    "  if #am ~= #bm then return #am < #bm end\n"
    "  if am ~= bm then return am < bm end\n"
    "  if #as ~= #bs then return #as < #bs end\n"
    "  return as < bs\n"
    "end\n"
    "local oldest = redis.call('XPENDING', stream, group)[2]\n"
    "local from = first\n"
    "if not id_parts(ARGV[first]) or not id_parts(ARGV[last]) or\n"
    "   (oldest and not id_parts(oldest)) then\n"
    "  from = first\n"
    "elseif not oldest or id_less(ARGV[last], oldest) then\n"
    "  redis.call('XTRIM', stream, 'MINID', ARGV[last])\n"
    "  from = last\n"
    "else\n"
    "  redis.call('XTRIM', stream, 'MINID', oldest)\n"
    "  local hi = last + 1\n"
    "  while from < hi do\n"
    "    local mid = math.floor((from + hi) / 2)\n"
    "    if id_less(oldest, ARGV[mid]) then hi = mid else from = mid + 1 end\n"
    "  end\n"
    "end\n"
    "for j = from, last, 500 do\n"
    "  redis.call('XDEL', stream, unpack(ARGV, j, math.min(j + 499, last)))\n"
    "end\n"
    "if merged then redis.call('DEL', scratch) end\n"
    "return {1, nids, now}\n";

static const char forget_script[] =
    "#!lua\n"
    "local removed = 0\n"
    "for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
    "  local f = {}\n"
    "  for j = 1, #c, 2 do f[c[j]] = c[j + 1] end\n"
    "  if f.name ~= ARGV[2] and f.name ~= ARGV[4] and f.pending == 0 and\n"
    "     f.idle > tonumber(ARGV[3]) then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)\n"
    "    removed = removed + 1\n"
    "  end\n"
    "end\n"
    "return removed\n";

/* A growing byte string (the joined session fields and values). */
struct bytes {
    char *buf;
    size_t len, size;
};

static void bytes_add(struct bytes *b, const char *s, size_t len)
{
    if (b->size - b->len < len + 1) {
        while (b->size - b->len < len + 1)
            b->size = b->size ? b->size * 2 : 65536;
        b->buf = xrealloc(b->buf, b->size);
    }
    memcpy(b->buf + b->len, s, len);
    b->len += len;
}

/* ---- the committer ---- */

#define SNAPSHOT_BUCKETS_MAX 4 /* current, two older, maybe the next */

struct commit_snapshot {
    bool taken;             /* sessions were read (the batch has some) */
    char version[32];       /* the sessions version counter as read ("0" = none) */
    long long bucket;       /* the server's current session bucket */
    long long guess;        /* the bucket the read was built for */
    int nbuckets;           /* HMGETs sent: guess+1 (maybe), guess, guess-1, guess-2 */
    bool with_next;         /* whether guess+1 was read */
    size_t n;               /* sessions */
    struct bytes values;    /* their stored values, back to back */
    size_t *offsets, *lens; /* into values; lens[i] == SIZE_MAX: none */
    long long *found;       /* the bucket each value was found in */
    const char **ptrs;      /* resolved for rollup_apply_sessions */
    size_t cap;
};

/* Rows with more distinct visitors than this get a HyperLogLog built here
 * (one PFMERGE of ~16384 registers in Redis) instead of PFADD of each
 * visitor hash (each passed through Lua). */
#define HLL_MEMBERS_MAX 512

struct commit {
    char sha[41];         /* "" until loaded */
    uint8_t reg[HLL_REGISTERS];             /* all zero between uses */
    unsigned char hll[HLL_ENCODED_MAX];
    struct visitor_hash { uint32_t index; uint8_t value; } *vhash; /* by visitor id */
    size_t vhash_cap;
    const struct rollup *vhash_of;          /* the batch vhash was computed for */
    int64_t clock_offset; /* server clock - ours, seconds */
    struct resp args;     /* the last commit, kept for commit_resend */
    struct resp snap;     /* snapshot commands */
    struct bytes fields, expected;
    size_t *order;        /* scratch: sorted indexes */
    size_t order_cap;
    uint32_t *scratch;    /* scratch: group/row/session orderings */
    size_t scratch_cap;
};

struct commit *commit_new(void)
{
    return xcalloc(1, sizeof(struct commit));
}

void commit_free(struct commit *c)
{
    if (!c)
        return;
    resp_free(&c->args);
    resp_free(&c->snap);
    free(c->fields.buf);
    free(c->expected.buf);
    free(c->order);
    free(c->scratch);
    free(c->vhash);
    free(c);
}

struct commit_snapshot *commit_snapshot_new(void)
{
    return xcalloc(1, sizeof(struct commit_snapshot));
}

void commit_snapshot_free(struct commit_snapshot *s)
{
    if (!s)
        return;
    free(s->values.buf);
    free(s->offsets);
    free(s->lens);
    free(s->found);
    free(s->ptrs);
    free(s);
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
        reply_free(rc, reply);
    return rv;
}

int commit_load(struct commit *c, redisContext *rc, char *err, size_t errlen)
{
    return load_script(rc, commit_script, c->sha, err, errlen);
}

static const char *prefix_of(const struct commit_params *p)
{
    return p->prefix ? p->prefix : ROLLUP_SHARD_PREFIX;
}

/* Sessions live in hashes per time bucket of this width: a session last
 * written in bucket b is read while the current bucket is b .. b+2, so it
 * is found for at least session_timeout_s and at most 1.5 times that
 * after its last event was processed. */
static long long bucket_width(const struct commit_params *p)
{
    long long w = (p->session_timeout_s + 1) / 2;
    return w > 0 ? w : 1;
}

static long long floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void *grow_array(void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    *cap = n;
    return xrealloc(arr, n * elem);
}

/* ---- 1. the snapshot ---- */

static void snapshot_reserve(struct commit_snapshot *s, size_t n)
{
    if (n <= s->cap)
        return;
    size_t cap = s->cap;
    s->offsets = grow_array(s->offsets, &cap, n, sizeof *s->offsets);
    cap = s->cap;
    s->lens = grow_array(s->lens, &cap, n, sizeof *s->lens);
    cap = s->cap;
    s->found = grow_array(s->found, &cap, n, sizeof *s->found);
    cap = s->cap;
    s->ptrs = grow_array(s->ptrs, &cap, n, sizeof *s->ptrs);
    s->cap = cap;
}

static int snapshot_send(struct commit *c, redisContext *rc, const struct commit_params *p,
                         const struct rollup *r, struct commit_snapshot *s)
{
    size_t n;
    const struct rollup_session *sessions = rollup_sessions(r, &n);
    s->n = n;
    s->taken = n > 0;
    s->nbuckets = 0;
    if (n == 0)
        return 0;
    long long width = bucket_width(p);
    long long now = (long long)time(NULL) + c->clock_offset;
    s->guess = floor_div(now, width);
    s->with_next = floor_div(now + 5, width) > s->guess;
    char key[128];

    resp_reset(&c->snap);
    resp_str(&c->snap, "MULTI");
    if (resp_append(rc, &c->snap) != 0)
        return -1;
    resp_reset(&c->snap);
    resp_str(&c->snap, "GET");
    rollup_key_sessions_version(key, sizeof key, prefix_of(p));
    resp_str(&c->snap, key);
    if (resp_append(rc, &c->snap) != 0)
        return -1;
    resp_reset(&c->snap);
    resp_str(&c->snap, "TIME");
    if (resp_append(rc, &c->snap) != 0)
        return -1;
    for (long long b = s->guess + (s->with_next ? 1 : 0); b >= s->guess - 2; b--) {
        resp_reset(&c->snap);
        resp_str(&c->snap, "HMGET");
        rollup_key_sessions(key, sizeof key, prefix_of(p), b);
        resp_str(&c->snap, key);
        for (size_t i = 0; i < n; i++)
            resp_str(&c->snap, sessions[i].field);
        if (resp_append(rc, &c->snap) != 0)
            return -1;
        s->nbuckets++;
    }
    resp_reset(&c->snap);
    resp_str(&c->snap, "EXEC");
    return resp_append(rc, &c->snap);
}

int commit_snapshot_send(struct commit *c, redisContext *rc, const struct commit_params *p,
                         const struct rollup *r, struct commit_snapshot *s)
{
    return snapshot_send(c, rc, p, r, s);
}

/* Read the replies of one snapshot; 1 when the bucket was mis-guessed
 * (read again), 0 done, -1 error. */
static int snapshot_read(struct commit *c, redisContext *rc, const struct commit_params *p,
                         struct commit_snapshot *s, char *err, size_t errlen)
{
    redisReply *reply = NULL;
    int rv = -1;
    /* MULTI, GET, TIME and the HMGETs answer +OK / +QUEUED */
    for (int i = 0; i < 3 + s->nbuckets; i++) {
        void *r = NULL;
        if (redisGetReply(rc, &r) != REDIS_OK || !r) {
            reply_error(rc, NULL, "session snapshot", err, errlen);
            return -1;
        }
        redisReply *q = r;
        bool ok = q->type == REDIS_REPLY_STATUS;
        if (!ok)
            reply_error(rc, q, "session snapshot", err, errlen);
        reply_free(rc, q);
        if (!ok) {
            /* the transaction was aborted; read the EXEC error too */
            void *rest = NULL;
            for (int j = i + 1; j < 4 + s->nbuckets; j++) {
                if (redisGetReply(rc, &rest) != REDIS_OK || !rest)
                    break;
                reply_free(rc, rest);
            }
            return -1;
        }
    }
    void *r = NULL;
    if (redisGetReply(rc, &r) != REDIS_OK || !r) {
        reply_error(rc, NULL, "session snapshot", err, errlen);
        return -1;
    }
    reply = r;
    size_t n = s->n;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (size_t)(2 + s->nbuckets)) {
        reply_error(rc, reply, "session snapshot", err, errlen);
        goto out;
    }
    const redisReply *ver = reply->element[0], *tm = reply->element[1];
    if (ver->type == REDIS_REPLY_STRING) {
        if (!str_copy(s->version, sizeof s->version, ver->str, ver->len)) {
            str_format(err, errlen, "session snapshot: version counter too long");
            goto out;
        }
    } else if (ver->type == REDIS_REPLY_NIL) {
        str_copy(s->version, sizeof s->version, "0", 1);
    } else {
        reply_error(rc, ver, "session snapshot (version)", err, errlen);
        goto out;
    }
    long long server_now;
    if (tm->type != REDIS_REPLY_ARRAY || tm->elements != 2 ||
        tm->element[0]->type != REDIS_REPLY_STRING ||
        !safe_strtoll_n(tm->element[0]->str, tm->element[0]->len, 0, INT64_MAX / 2,
                        &server_now)) {
        reply_error(rc, tm, "session snapshot (TIME)", err, errlen);
        goto out;
    }
    c->clock_offset = server_now - (long long)time(NULL);
    long long width = bucket_width(p);
    s->bucket = floor_div(server_now, width);
    if (s->bucket != s->guess && !(s->with_next && s->bucket == s->guess + 1)) {
        rv = 1; /* built for the wrong buckets: read again with the server's clock */
        goto out;
    }
    for (int b = 0; b < s->nbuckets; b++) {
        const redisReply *a = reply->element[2 + b];
        if (a->type != REDIS_REPLY_ARRAY || a->elements != n) {
            reply_error(rc, a, "session snapshot (HMGET)", err, errlen);
            goto out;
        }
    }
    snapshot_reserve(s, n);
    s->values.len = 0;
    long long top = s->guess + (s->with_next ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        s->lens[i] = SIZE_MAX;
        s->found[i] = 0;
        /* newest bucket first, within current .. current-2 */
        for (int b = 0; b < s->nbuckets; b++) {
            long long bucket = top - b;
            if (bucket > s->bucket || bucket < s->bucket - 2)
                continue;
            const redisReply *v = reply->element[2 + b]->element[i];
            if (v->type == REDIS_REPLY_STRING) {
                s->offsets[i] = s->values.len;
                s->lens[i] = v->len;
                s->found[i] = bucket;
                bytes_add(&s->values, v->str, v->len);
                break;
            }
        }
    }
    rv = 0;
out:
    reply_free(rc, reply);
    return rv;
}

int commit_snapshot_receive(struct commit *c, redisContext *rc, const struct commit_params *p,
                            struct rollup *r, struct commit_snapshot *s, char *err,
                            size_t errlen)
{
    if (s->taken) {
        int rv;
        int tries = 0;
        while ((rv = snapshot_read(c, rc, p, s, err, errlen)) == 1) {
            if (++tries > 3) {
                str_format(err, errlen, "session snapshot: the server clock keeps moving");
                return -1;
            }
            if (snapshot_send(c, rc, p, r, s) != 0) {
                reply_error(rc, NULL, "session snapshot", err, errlen);
                return -1;
            }
        }
        if (rv != 0)
            return -1;
        for (size_t i = 0; i < s->n; i++)
            s->ptrs[i] = s->lens[i] == SIZE_MAX ? NULL : s->values.buf + s->offsets[i];
    }
    rollup_apply_sessions(r, s->taken ? s->ptrs : NULL, s->taken ? s->lens : NULL,
                          p->session_timeout_s);
    return 0;
}

/* ---- 2. the commit ---- */

/* Compare stream ids "<ms>-<seq>" as numbers: digits without leading
 * zeros compare by length, then bytes. Malformed ids compare as bytes. */
static int stream_id_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    const char *ad = memchr(a, '-', alen), *bd = memchr(b, '-', blen);
    if (!ad || !bd) {
        int c = memcmp(a, b, alen < blen ? alen : blen);
        return c ? c : (alen > blen) - (alen < blen);
    }
    size_t am = (size_t)(ad - a), bm = (size_t)(bd - b);
    if (am != bm)
        return am < bm ? -1 : 1;
    int c = memcmp(a, b, am);
    if (c)
        return c;
    size_t as = alen - am - 1, bs = blen - bm - 1;
    if (as != bs)
        return as < bs ? -1 : 1;
    return memcmp(ad + 1, bd + 1, as);
}

static const char *const *sort_ids;
static const size_t *sort_idlens;

static int id_index_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return stream_id_cmp(sort_ids[x], sort_idlens[x], sort_ids[y], sort_idlens[y]);
}

/* The ids in ascending order (the script's trim needs it): indexes. */
static const size_t *ids_ascending(struct commit *c, const char *const *ids,
                                   const size_t *idlens, size_t nids)
{
    c->order = grow_array(c->order, &c->order_cap, nids, sizeof *c->order);
    bool sorted = true;
    for (size_t i = 0; i < nids; i++) {
        c->order[i] = i;
        if (i && sorted && stream_id_cmp(ids[i - 1], idlens[i - 1], ids[i], idlens[i]) > 0)
            sorted = false;
    }
    if (!sorted) {
        sort_ids = ids;
        sort_idlens = idlens;
        qsort(c->order, nids, sizeof *c->order, id_index_cmp);
    }
    return c->order;
}

static bool row_empty(const struct rollup_row *row)
{
    return row->pv == 0 && row->ev == 0 && row->vis == 0 && row->nvisitors == 0 &&
           row->nvisit_visitors == 0;
}

/* The visitors of one HyperLogLog (lists a and b): "n vh*n" for a few,
 * else "-1 <registers>" built by hll.c. */
static void encode_visitors(struct commit *c, struct resp *q, const struct rollup *r,
                            const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    if (na + nb <= HLL_MEMBERS_MAX) {
        resp_ll(q, (long long)(na + nb));
        for (size_t v = 0; v < na; v++)
            resp_arg(q, rollup_visitor(r, a[v]), 16);
        for (size_t v = 0; v < nb; v++)
            resp_arg(q, rollup_visitor(r, b[v]), 16);
        return;
    }
    if (c->vhash_of != r) {
        size_t n = rollup_visitor_count(r);
        c->vhash = grow_array(c->vhash, &c->vhash_cap, n, sizeof *c->vhash);
        for (uint32_t id = 0; id < n; id++)
            hll_hash(rollup_visitor(r, id), 16, &c->vhash[id].index, &c->vhash[id].value);
        c->vhash_of = r;
    }
    const uint32_t *lists[2] = {a, b};
    size_t counts[2] = {na, nb};
    for (int l = 0; l < 2; l++) {
        for (size_t v = 0; v < counts[l]; v++) {
            const struct visitor_hash *h = &c->vhash[lists[l][v]];
            if (h->value > c->reg[h->index])
                c->reg[h->index] = h->value;
        }
    }
    size_t len = hll_encode(c->reg, c->hll);
    for (int l = 0; l < 2; l++)
        for (size_t v = 0; v < counts[l]; v++)
            c->reg[c->vhash[lists[l][v]].index] = 0;
    resp_str(q, "-1");
    resp_arg(q, (const char *)c->hll, len);
}

static void encode_row(struct commit *c, struct resp *q, const struct rollup *r,
                       const struct rollup_row *row)
{
    resp_ll(q, row->pv);
    resp_ll(q, row->ev);
    resp_ll(q, row->vis);
    encode_visitors(c, q, r, row->visitors, row->nvisitors, row->visit_visitors,
                    row->nvisit_visitors);
}

/* Counting sort of n items by key[i] < nkeys: start[k] .. start[k+1] of
 * out hold the items of key k in their original order. */
static void bucket_sort(const uint32_t *key, size_t n, size_t nkeys, uint32_t *start,
                        uint32_t *out)
{
    memset(start, 0, (nkeys + 1) * sizeof *start);
    for (size_t i = 0; i < n; i++)
        start[key[i] + 1]++;
    for (size_t k = 0; k < nkeys; k++)
        start[k + 1] += start[k];
    for (size_t i = 0; i < n; i++)
        out[start[key[i]]++] = (uint32_t)i;
    for (size_t k = nkeys; k > 0; k--)
        start[k] = start[k - 1];
    start[0] = 0;
}

/* The records of every site-day: D, T, H, V, then its rows by dimension. */
static void encode_days(struct commit *c, struct resp *q, const struct rollup *r)
{
    size_t ndays, nrows, ngroups;
    const struct rollup_day *days = rollup_days(r, &ndays);
    const struct rollup_row *rows = rollup_rows(r, &nrows);
    const struct rollup_group *groups = rollup_groups(r, &ngroups);
    /* scratch: group keys, group order, group starts; row keys, row order, row starts */
    size_t need = 2 * ngroups + ndays + 1 + 2 * nrows + ngroups + 1;
    c->scratch = grow_array(c->scratch, &c->scratch_cap, need, sizeof *c->scratch);
    uint32_t *gkey = c->scratch, *gorder = gkey + ngroups, *gstart = gorder + ngroups;
    uint32_t *rkey = gstart + ndays + 1, *rorder = rkey + nrows, *rstart = rorder + nrows;
    for (size_t g = 0; g < ngroups; g++)
        gkey[g] = groups[g].day;
    bucket_sort(gkey, ngroups, ndays, gstart, gorder);
    for (size_t i = 0; i < nrows; i++)
        rkey[i] = rows[i].group;
    bucket_sort(rkey, nrows, ngroups, rstart, rorder);

    for (size_t d = 0; d < ndays; d++) {
        const struct rollup_day *day = &days[d];
        size_t nt = 0, nh = 0;
        for (size_t t = 0; t < ROLLUP_T_COUNT; t++)
            nt += day->totals[t] != 0;
        for (size_t b = 0; b < ROLLUP_SCROLL_BUCKETS; b++)
            nh += day->scroll[b] != 0;
        bool any = nt || nh || day->nvisitors;
        for (uint32_t gi = gstart[d]; !any && gi < gstart[d + 1]; gi++)
            for (uint32_t k = rstart[gorder[gi]]; !any && k < rstart[gorder[gi] + 1]; k++)
                any = !row_empty(&rows[rorder[k]]);
        if (!any)
            continue; /* e.g. the start day of a visit this batch only looked at */
        resp_str(q, "D");
        resp_str(q, day->base);
        resp_ll(q, day->expire_at);
        resp_str(q, day->site);
        if (nt) {
            resp_str(q, "T");
            resp_ll(q, (long long)nt);
            for (size_t t = 0; t < ROLLUP_T_COUNT; t++) {
                if (day->totals[t] == 0)
                    continue;
                resp_str(q, rollup_total_field((enum rollup_total)t));
                resp_ll(q, day->totals[t]);
            }
        }
        if (nh) {
            resp_str(q, "H");
            resp_ll(q, (long long)nh);
            for (size_t b = 0; b < ROLLUP_SCROLL_BUCKETS; b++) {
                if (day->scroll[b] == 0)
                    continue;
                resp_ll(q, (long long)b * 10);
                resp_ll(q, day->scroll[b]);
            }
        }
        if (day->nvisitors) {
            resp_str(q, "V");
            encode_visitors(c, q, r, day->visitors, day->nvisitors, NULL, 0);
        }
        /* rows by dimension, in first-seen order (which decides which
         * values get rows before the cap is reached) */
        for (uint32_t gi = gstart[d]; gi < gstart[d + 1]; gi++) {
            uint32_t g = gorder[gi];
            size_t k = 0;
            for (uint32_t x = rstart[g]; x < rstart[g + 1]; x++)
                k += !row_empty(&rows[rorder[x]]);
            if (k == 0)
                continue;
            resp_str(q, "G");
            resp_str(q, groups[g].kind == ROLLUP_G_VIS    ? "v"
                        : groups[g].kind == ROLLUP_G_PROP ? "p"
                                                          : "e");
            resp_str(q, groups[g].dim);
            resp_ll(q, (long long)k);
            for (uint32_t x = rstart[g]; x < rstart[g + 1]; x++)
                if (!row_empty(&rows[rorder[x]]))
                    resp_str(q, rows[rorder[x]].value);
            for (uint32_t x = rstart[g]; x < rstart[g + 1]; x++)
                if (!row_empty(&rows[rorder[x]]))
                    encode_row(c, q, r, &rows[rorder[x]]);
        }
    }
}

static int realtime_cmp(const void *a, const void *b)
{
    const struct rollup_session *x = *(const struct rollup_session *const *)a;
    const struct rollup_session *y = *(const struct rollup_session *const *)b;
    uintptr_t px = (uintptr_t)x->realtime_key, py = (uintptr_t)y->realtime_key;
    return px < py ? -1 : px > py;
}

/* S and X (session writes), then Z (realtime visitors). */
static void encode_sessions(struct commit *c, struct resp *q, const struct rollup *r,
                            const struct commit_snapshot *s)
{
    size_t n;
    const struct rollup_session *sessions = rollup_sessions(r, &n);
    size_t dirty = 0;
    for (size_t i = 0; i < n; i++)
        dirty += sessions[i].dirty;
    if (dirty) {
        resp_str(q, "S");
        resp_ll(q, (long long)dirty);
        for (size_t i = 0; i < n; i++) {
            if (!sessions[i].dirty)
                continue;
            char value[ROLLUP_SESSION_VALUE_MAX];
            size_t len = rollup_session_format(&sessions[i].state, value);
            resp_str(q, sessions[i].field);
            resp_arg(q, value, len);
        }
        /* older copies: the snapshot found them in an older bucket */
        for (long long b = s->bucket - 2; b < s->bucket; b++) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                k += sessions[i].dirty && s->lens[i] != SIZE_MAX && s->found[i] == b;
            if (k == 0)
                continue;
            resp_str(q, "X");
            resp_ll(q, b);
            resp_ll(q, (long long)k);
            for (size_t i = 0; i < n; i++)
                if (sessions[i].dirty && s->lens[i] != SIZE_MAX && s->found[i] == b)
                    resp_str(q, sessions[i].field);
        }
    }
    /* realtime: visitors seen in the last 5 minutes (by the server's clock,
     * with slack for the time until the script runs), grouped by site */
    int64_t since = (int64_t)time(NULL) + c->clock_offset - 300 - 30;
    const struct rollup_session **recent = NULL;
    size_t nrecent = 0;
    for (size_t i = 0; i < n; i++)
        nrecent += sessions[i].last_seen >= since;
    if (nrecent == 0)
        return;
    c->scratch = grow_array(c->scratch, &c->scratch_cap,
                            nrecent * (sizeof *recent / sizeof *c->scratch + 1),
                            sizeof *c->scratch);
    recent = (const struct rollup_session **)(void *)c->scratch;
    nrecent = 0;
    for (size_t i = 0; i < n; i++)
        if (sessions[i].last_seen >= since)
            recent[nrecent++] = &sessions[i];
    qsort(recent, nrecent, sizeof *recent, realtime_cmp);
    for (size_t i = 0, end; i < nrecent; i = end) {
        for (end = i; end < nrecent && recent[end]->realtime_key == recent[i]->realtime_key;
             end++)
            ;
        resp_str(q, "Z");
        resp_str(q, recent[i]->realtime_key);
        resp_ll(q, (long long)(end - i));
        for (size_t k = i; k < end; k++) {
            resp_ll(q, recent[k]->last_seen);
            resp_arg(q, rollup_visitor(r, recent[k]->visitor), 16);
        }
    }
}

/* Fill c->args with the EVALSHA call. */
static void encode_commit(struct commit *c, const struct commit_params *p,
                          const char *const *ids, const size_t *idlens, size_t nids,
                          size_t held, const struct rollup *r,
                          const struct commit_snapshot *s)
{
    struct resp *q = &c->args;
    char key[128];
    resp_reset(q);
    resp_str(q, "EVALSHA");
    resp_str(q, c->sha);
    resp_str(q, "4");
    resp_str(q, p->stream_key);
    resp_str(q, p->sites_key);
    rollup_key_sessions_version(key, sizeof key, prefix_of(p));
    resp_str(q, key);
    str_format(key, sizeof key, "%stmp:merge", prefix_of(p));
    resp_str(q, key);
    resp_str(q, p->group);
    resp_str(q, p->consumer);
    resp_ll(q, (long long)held);
    resp_ll(q, p->breakdown_cap);
    resp_ll(q, bucket_width(p));
    resp_ll(q, p->session_timeout_s);
    str_format(key, sizeof key, "%ssessions:", prefix_of(p));
    resp_str(q, key);
    if (s->taken) {
        size_t n;
        const struct rollup_session *sessions = rollup_sessions(r, &n);
        c->fields.len = c->expected.len = 0;
        for (size_t i = 0; i < n; i++) {
            if (i) {
                bytes_add(&c->fields, "\n", 1);
                bytes_add(&c->expected, "\n", 1);
            }
            bytes_add(&c->fields, sessions[i].field, strlen(sessions[i].field));
            if (s->lens[i] != SIZE_MAX)
                bytes_add(&c->expected, s->values.buf + s->offsets[i], s->lens[i]);
        }
        resp_str(q, s->version);
        resp_arg(q, c->fields.buf ? c->fields.buf : "", c->fields.len);
        resp_arg(q, c->expected.buf ? c->expected.buf : "", c->expected.len);
    } else {
        resp_str(q, "-");
        resp_str(q, "");
        resp_str(q, "");
    }
    resp_ll(q, (long long)nids);
    const size_t *order = ids_ascending(c, ids, idlens, nids);
    for (size_t i = 0; i < nids; i++)
        resp_arg(q, ids[order[i]], idlens[order[i]]);
    c->vhash_of = NULL; /* visitor ids are per batch */
    encode_days(c, q, r);
    if (s->taken)
        encode_sessions(c, q, r, s);
}

int commit_send(struct commit *c, redisContext *rc, const struct commit_params *p,
                const char *const *ids, const size_t *idlens, size_t nids, size_t held,
                const struct rollup *r, const struct commit_snapshot *s, char *err,
                size_t errlen)
{
    if (!c->sha[0] && commit_load(c, rc, err, errlen) != 0)
        return -1;
    encode_commit(c, p, ids, idlens, nids, held, r, s);
    if (resp_append(rc, &c->args) != 0) {
        reply_error(rc, NULL, "commit script", err, errlen);
        return -1;
    }
    return 0;
}

int commit_resend(struct commit *c, redisContext *rc, char *err, size_t errlen)
{
    /* The SHA is the script's digest: it does not change by loading again. */
    if (commit_load(c, rc, err, errlen) != 0)
        return -1;
    if (redisAppendFormattedCommand(rc, c->args.buf + c->args.head,
                                    c->args.len - c->args.head) != REDIS_OK) {
        reply_error(rc, NULL, "commit script", err, errlen);
        return -1;
    }
    return 0;
}

static void mark_lost(const redisReply *list, const char *const *ids, const size_t *idlens,
                      size_t nids, bool *lost)
{
    for (size_t i = 0; i < nids; i++)
        lost[i] = false;
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

enum commit_result commit_receive(struct commit *c, redisContext *rc, const char *const *ids,
                                  const size_t *idlens, size_t nids, bool *lost, char *err,
                                  size_t errlen)
{
    void *r = NULL;
    if (redisGetReply(rc, &r) != REDIS_OK || !r) {
        reply_error(rc, NULL, "commit script", err, errlen);
        return COMMIT_ERROR;
    }
    redisReply *reply = r;
    enum commit_result result = COMMIT_ERROR;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        result = COMMIT_NOSCRIPT; /* the server lost its script cache (restart, SCRIPT FLUSH) */
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
               reply->element[0]->type == REDIS_REPLY_INTEGER) {
        long long status = reply->element[0]->integer;
        if (status == 1 && reply->elements == 3 &&
            reply->element[2]->type == REDIS_REPLY_INTEGER) {
            c->clock_offset = reply->element[2]->integer - (long long)time(NULL);
            result = COMMIT_OK;
        } else if (status == 0 && reply->elements == 2 &&
                   reply->element[1]->type == REDIS_REPLY_ARRAY) {
            mark_lost(reply->element[1], ids, idlens, nids, lost);
            result = COMMIT_CONFLICT;
        } else if (status == 2) {
            result = COMMIT_STALE;
        }
    }
    if (result == COMMIT_ERROR)
        reply_error(rc, reply, "commit script", err, errlen);
    reply_free(rc, reply);
    return result;
}

enum commit_result commit_batch(struct commit *c, redisContext *rc,
                                const struct commit_params *p, const char *const *ids,
                                const size_t *idlens, size_t nids, size_t held,
                                struct rollup *r, bool *lost, char *err, size_t errlen)
{
    if (nids == 0)
        return COMMIT_OK;
    struct commit_snapshot *s = commit_snapshot_new();
    enum commit_result res = COMMIT_ERROR;
    /* sessions changing underneath means another worker made progress; a
     * bound only guards against a bug looping forever */
    for (int attempt = 0; attempt < 1000; attempt++) {
        if (commit_snapshot_send(c, rc, p, r, s) != 0) {
            reply_error(rc, NULL, "session snapshot", err, errlen);
            break;
        }
        if (commit_snapshot_receive(c, rc, p, r, s, err, errlen) != 0)
            break;
        if (commit_send(c, rc, p, ids, idlens, nids, held, r, s, err, errlen) != 0)
            break;
        res = commit_receive(c, rc, ids, idlens, nids, lost, err, errlen);
        if (res == COMMIT_NOSCRIPT) {
            if (commit_resend(c, rc, err, errlen) != 0) {
                res = COMMIT_ERROR;
                break;
            }
            res = commit_receive(c, rc, ids, idlens, nids, lost, err, errlen);
        }
        if (res != COMMIT_STALE)
            break;
        res = COMMIT_ERROR;
        str_format(err, errlen, "sessions kept changing underneath");
    }
    if (res == COMMIT_NOSCRIPT) {
        res = COMMIT_ERROR;
        str_format(err, errlen, "commit script: NOSCRIPT after loading it");
    }
    commit_snapshot_free(s);
    return res;
}

long long commit_forget_consumers(redisContext *rc, const struct commit_params *p,
                                  long long idle_ms, char *err, size_t errlen)
{
    char idle[24];
    str_format(idle, sizeof idle, "%lld", idle_ms);
    const char *other = p->other_consumer ? p->other_consumer : "";
    const char *argv[] = {"EVAL",   forget_script, "1", p->stream_key, p->group, p->consumer,
                          idle,     other};
    size_t lens[8];
    for (size_t i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(rc, 8, argv, lens);
    long long removed = -1;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        removed = reply->integer;
    else
        reply_error(rc, reply, "forget consumers", err, errlen);
    if (reply)
        reply_free(rc, reply);
    return removed;
}
