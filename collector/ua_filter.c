/* ua_filter.c - literal pre-filter for the User-Agent regex chains
 * (see ua_filter.h).
 *
 * Extraction is a small recursive-descent reader of the PCRE2 subset used
 * by uap-core. For a sequence it keeps the best required piece: a run of
 * mandatory literal characters, or the requirement of a mandatory group;
 * for an alternation it takes the union of its arms' requirements (any
 * arm without one makes the whole alternation unconstrained). Anything it
 * does not understand makes the pattern unconstrained: a wrong guess here
 * would silently change parse results, a missed one only costs time.
 *
 * It never stores or logs a User-Agent. */
#include "ua_filter.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Longer required literals are cut to this prefix (a prefix of a required
 * string is itself required). */
#define LIT_MAX 32
/* Nesting deeper than this is not analysed (the pattern is always run). */
#define NEST_MAX 32
#define NO_LIT UINT32_MAX

struct lit {
    uint8_t len;
    char s[LIT_MAX];
};

/* A requirement: one of these literals must occur. n == 0: none known. */
struct litset {
    size_t n, cap;
    struct lit *v;
};

struct rx_reader {
    const char *s;
    size_t len, pos;
    int depth;
    bool fail;
};

/* Literals bucketed by a 16-bit key of their first bytes. */
struct lit_index {
    uint64_t seen[1024];         /* 65536 bits: some literal has this key */
    uint32_t *start;             /* 65537 offsets into ids */
    uint32_t *ids;               /* literal ids, grouped by key */
};

struct rule_req {
    uint32_t first, n; /* slice of ua_filter.req_lits */
};

struct ua_filter {
    /* rules */
    struct rule_req *rules;
    size_t nrules, rules_cap;
    uint32_t *req_lits;
    size_t nreq, req_cap;
    /* distinct literals, lowercase */
    struct lit *lits;
    size_t nlits, lits_cap;
    /* index, built by ua_filter_finish */
    uint32_t single_id[256];     /* one-byte literal per byte, or NO_LIT */
    struct lit_index by_bigram;  /* 2-3 byte literals by their first 2 bytes */
    struct lit_index by_quad;    /* longer ones by a hash of their first 4 */
    uint32_t *lit_rule_start;    /* nlits + 1 offsets into lit_rule_ids */
    uint32_t *lit_rule_ids;      /* rules each literal satisfies */
    uint64_t *always;            /* rule bitmap: rules without requirement */
    size_t rule_words, lit_words;
};

static uint8_t lower_byte(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- literal sets ------------------------------------------------------ */

static void litset_push(struct litset *set, const struct lit *l)
{
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 4;
        set->v = xrealloc(set->v, set->cap * sizeof(*set->v));
    }
    set->v[set->n++] = *l;
}

static void litset_clear(struct litset *set)
{
    set->n = 0;
}

static void litset_free(struct litset *set)
{
    free(set->v);
    set->v = NULL;
    set->n = set->cap = 0;
}

static void litset_copy(struct litset *dst, const struct litset *src)
{
    litset_clear(dst);
    for (size_t i = 0; i < src->n; i++)
        litset_push(dst, &src->v[i]);
}

static size_t litset_min_len(const struct litset *set)
{
    size_t m = LIT_MAX;
    for (size_t i = 0; i < set->n; i++)
        if (set->v[i].len < m)
            m = set->v[i].len;
    return m;
}

/* Agents of today's common browsers (lowercase). A requirement met by
 * fewer of them lets its regex be skipped more often on real traffic, so
 * it is preferred; this only steers speed, never results. */
static const char *const common_agents[] = {
    "mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) "
    "chrome/120.0.0.0 safari/537.36",
    "mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) "
    "chrome/120.0.0.0 safari/537.36 edg/120.0.0.0",
    "mozilla/5.0 (windows nt 10.0; win64; x64; rv:121.0) gecko/20100101 firefox/121.0",
    "mozilla/5.0 (macintosh; intel mac os x 10_15_7) applewebkit/537.36 (khtml, like gecko) "
    "chrome/120.0.0.0 safari/537.36",
    "mozilla/5.0 (macintosh; intel mac os x 10_15_7) applewebkit/605.1.15 (khtml, like gecko) "
    "version/17.1 safari/605.1.15",
    "mozilla/5.0 (iphone; cpu iphone os 17_1 like mac os x) applewebkit/605.1.15 (khtml, like "
    "gecko) version/17.1 mobile/15e148 safari/604.1",
    "mozilla/5.0 (iphone; cpu iphone os 17_1 like mac os x) applewebkit/605.1.15 (khtml, like "
    "gecko) crios/120.0.6099.119 mobile/15e148 safari/604.1",
    "mozilla/5.0 (ipad; cpu os 17_1 like mac os x) applewebkit/605.1.15 (khtml, like gecko) "
    "version/17.1 mobile/15e148 safari/604.1",
    "mozilla/5.0 (linux; android 10; k) applewebkit/537.36 (khtml, like gecko) "
    "chrome/120.0.0.0 mobile safari/537.36",
    "mozilla/5.0 (linux; android 13; sm-s911b) applewebkit/537.36 (khtml, like gecko) "
    "samsungbrowser/23.0 chrome/115.0.0.0 mobile safari/537.36",
    "mozilla/5.0 (linux; android 13; pixel 7 build/tq3a.230901.001; wv) applewebkit/537.36 "
    "(khtml, like gecko) version/4.0 chrome/120.0.6099.144 mobile safari/537.36",
    "mozilla/5.0 (android 14; mobile; rv:121.0) gecko/121.0 firefox/121.0",
    "mozilla/5.0 (x11; linux x86_64; rv:121.0) gecko/20100101 firefox/121.0",
    "mozilla/5.0 (x11; linux x86_64) applewebkit/537.36 (khtml, like gecko) "
    "chrome/120.0.0.0 safari/537.36",
};

/* How many common agents meet requirement `set`. */
static size_t litset_common_hits(const struct litset *set)
{
    size_t hits = 0;
    for (size_t a = 0; a < ARRAY_LEN(common_agents); a++) {
        const char *agent = common_agents[a];
        size_t alen = strlen(agent);
        for (size_t i = 0; i < set->n; i++) {
            if (memmem(agent, alen, set->v[i].s, set->v[i].len)) {
                hits++;
                break;
            }
        }
    }
    return hits;
}

/* Is `cand` a better requirement than `best`? Met by fewer common agents
 * first, then a longer shortest literal (capped: beyond 8 bytes length
 * hardly matters), then fewer literals. */
static bool litset_better(const struct litset *cand, const struct litset *best)
{
    if (cand->n == 0)
        return false;
    if (best->n == 0)
        return true;
    size_t ch = litset_common_hits(cand), bh = litset_common_hits(best);
    if (ch != bh)
        return ch < bh;
    size_t cm = litset_min_len(cand), bm = litset_min_len(best);
    cm = cm > 8 ? 8 : cm;
    bm = bm > 8 ? 8 : bm;
    if (cm != bm)
        return cm > bm;
    return cand->n < best->n;
}

/* ---- pattern reader ---------------------------------------------------- */

static void read_alt(struct rx_reader *r, struct litset *out);

/* Read an optional quantifier at r->pos. Returns -1 when there is none,
 * else its minimum count (clamped to 2). Lazy/possessive suffixes are
 * consumed. A '{' that does not start a valid quantifier is left alone. */
static int read_quantifier(struct rx_reader *r)
{
    if (r->pos >= r->len)
        return -1;
    char c = r->s[r->pos];
    int min;
    if (c == '*' || c == '?') {
        min = 0;
        r->pos++;
    } else if (c == '+') {
        min = 1;
        r->pos++;
    } else if (c == '{') {
        size_t p = r->pos + 1;
        long n = 0;
        size_t digits = 0;
        while (p < r->len && r->s[p] >= '0' && r->s[p] <= '9') {
            if (n < 1000)
                n = n * 10 + (r->s[p] - '0');
            p++;
            digits++;
        }
        if (digits == 0)
            return -1;
        if (p < r->len && r->s[p] == ',') {
            p++;
            while (p < r->len && r->s[p] >= '0' && r->s[p] <= '9')
                p++;
        }
        if (p >= r->len || r->s[p] != '}')
            return -1;
        r->pos = p + 1;
        min = n >= 2 ? 2 : (int)n;
    } else {
        return -1;
    }
    if (r->pos < r->len && (r->s[r->pos] == '?' || r->s[r->pos] == '+'))
        r->pos++;
    return min;
}

/* Read a character class starting at '['. Returns the lowercase byte it
 * stands for when every member folds to that one byte ("[x]", "[Bb]"),
 * -1 for any other class; sets r->fail on syntax it does not know. */
static int read_class(struct rx_reader *r)
{
    bool member[256] = {false};
    bool negated = false, complex = false, first = true;
    r->pos++; /* '[' */
    if (r->pos < r->len && r->s[r->pos] == '^') {
        negated = true;
        r->pos++;
    }
    while (r->pos < r->len) {
        char c = r->s[r->pos];
        if (c == ']' && !first) {
            r->pos++;
            goto done;
        }
        first = false;
        if (c == '[' && r->pos + 1 < r->len &&
            (r->s[r->pos + 1] == ':' || r->s[r->pos + 1] == '.' || r->s[r->pos + 1] == '=')) {
            r->fail = true; /* POSIX classes: not analysed */
            return -1;
        }
        int lo;
        if (c == '\\') {
            if (r->pos + 1 >= r->len) {
                r->fail = true;
                return -1;
            }
            char e = r->s[r->pos + 1];
            r->pos += 2;
            if (is_alnum(e)) {
                if (strchr("dDwWsS", e)) {
                    complex = true;
                    continue;
                }
                r->fail = true;
                return -1;
            }
            lo = (uint8_t)e;
        } else {
            lo = (uint8_t)c;
            r->pos++;
        }
        int hi = lo;
        if (r->pos + 1 < r->len && r->s[r->pos] == '-' && r->s[r->pos + 1] != ']') {
            r->pos++;
            char h = r->s[r->pos];
            if (h == '\\') {
                if (r->pos + 1 >= r->len || is_alnum(r->s[r->pos + 1])) {
                    r->fail = true;
                    return -1;
                }
                h = r->s[r->pos + 1];
                r->pos += 2;
            } else {
                r->pos++;
            }
            hi = (uint8_t)h;
            if (hi < lo) {
                r->fail = true;
                return -1;
            }
        }
        for (int b = lo; b <= hi; b++)
            member[b] = true;
    }
    r->fail = true; /* unterminated */
    return -1;
done:
    if (negated || complex)
        return -1;
    int folded = -1;
    for (int b = 0; b < 256; b++) {
        if (!member[b])
            continue;
        int l = lower_byte((uint8_t)b);
        if (folded >= 0 && folded != l)
            return -1;
        folded = l;
    }
    return folded;
}

struct run {
    size_t len;
    char s[LIT_MAX];
};

static void run_push(struct run *run, int c)
{
    if (run->len < LIT_MAX)
        run->s[run->len++] = (char)c;
}

/* End the current literal run, keeping it if it beats `best`. */
static void run_flush(struct run *run, struct litset *best, struct litset *tmp)
{
    if (run->len == 0)
        return;
    struct lit l;
    l.len = (uint8_t)run->len;
    memcpy(l.s, run->s, run->len);
    litset_clear(tmp);
    litset_push(tmp, &l);
    if (litset_better(tmp, best))
        litset_copy(best, tmp);
    run->len = 0;
}

/* Read one sequence (up to '|', ')' or the end) into `best`. */
static void read_seq(struct rx_reader *r, struct litset *best)
{
    struct run run = {0};
    struct litset tmp = {0}, inner = {0};
    litset_clear(best);
    while (r->pos < r->len && !r->fail) {
        char c = r->s[r->pos];
        int lit = -1;
        if (c == '|' || c == ')')
            break;
        switch (c) {
        case '\\': {
            if (r->pos + 1 >= r->len) {
                r->fail = true;
                break;
            }
            char e = r->s[r->pos + 1];
            r->pos += 2;
            if (e == 'b' || e == 'B') { /* zero-width */
                run_flush(&run, best, &tmp);
                continue;
            }
            if (is_alnum(e) && !strchr("dDwWsS", e)) {
                r->fail = true; /* backreference, \x.., \Q.. etc. */
                break;
            }
            lit = is_alnum(e) ? -1 : (int)lower_byte((uint8_t)e);
            break;
        }
        case '[':
            lit = read_class(r);
            break;
        case '(': {
            r->pos++;
            if (r->pos < r->len && r->s[r->pos] == '?') {
                if (r->pos + 1 < r->len && r->s[r->pos + 1] == ':') {
                    r->pos += 2;
                } else {
                    r->fail = true; /* lookaround, flags, named group */
                    break;
                }
            }
            if (++r->depth > NEST_MAX) {
                r->fail = true;
                break;
            }
            read_alt(r, &inner);
            r->depth--;
            if (r->fail)
                break;
            if (r->pos >= r->len || r->s[r->pos] != ')') {
                r->fail = true;
                break;
            }
            r->pos++;
            run_flush(&run, best, &tmp);
            int min = read_quantifier(r);
            if (min != 0 && litset_better(&inner, best))
                litset_copy(best, &inner);
            continue;
        }
        case '.':
            r->pos++;
            break;
        case '^':
        case '$':
            r->pos++;
            run_flush(&run, best, &tmp);
            continue;
        case '*':
        case '+':
        case '?':
        case '{':
        case ']':
        case '}':
            r->fail = true; /* stray metacharacter: not analysed */
            break;
        default:
            lit = lower_byte((uint8_t)c);
            r->pos++;
            break;
        }
        if (r->fail)
            break;
        int min = read_quantifier(r);
        if (lit < 0) {
            run_flush(&run, best, &tmp);
        } else if (min < 0) {
            run_push(&run, lit);
        } else if (min == 0) {
            run_flush(&run, best, &tmp);
        } else {
            run_push(&run, lit);
            run_flush(&run, best, &tmp);
        }
    }
    run_flush(&run, best, &tmp);
    litset_free(&tmp);
    litset_free(&inner);
}

/* Read alternatives up to ')' or the end into `out`: the union of the
 * arms' requirements, or nothing if any arm has none. */
static void read_alt(struct rx_reader *r, struct litset *out)
{
    struct litset arm = {0};
    bool all = true;
    litset_clear(out);
    for (;;) {
        read_seq(r, &arm);
        if (r->fail)
            break;
        if (arm.n == 0)
            all = false;
        else if (all)
            for (size_t i = 0; i < arm.n; i++)
                litset_push(out, &arm.v[i]);
        if (r->pos < r->len && r->s[r->pos] == '|') {
            r->pos++;
            continue;
        }
        break;
    }
    if (!all || r->fail)
        litset_clear(out);
    litset_free(&arm);
}

/* ---- filter ------------------------------------------------------------ */

struct ua_filter *ua_filter_new(void)
{
    struct ua_filter *f = xcalloc(1, sizeof(*f));
    return f;
}

static uint32_t intern_lit(struct ua_filter *f, const struct lit *l)
{
    for (size_t i = 0; i < f->nlits; i++)
        if (f->lits[i].len == l->len && memcmp(f->lits[i].s, l->s, l->len) == 0)
            return (uint32_t)i;
    if (f->nlits == f->lits_cap) {
        f->lits_cap = f->lits_cap ? f->lits_cap * 2 : 256;
        f->lits = xrealloc(f->lits, f->lits_cap * sizeof(*f->lits));
    }
    f->lits[f->nlits] = *l;
    return (uint32_t)f->nlits++;
}

uint32_t ua_filter_add(struct ua_filter *f, const char *regex, size_t len)
{
    struct rx_reader r = {.s = regex, .len = len};
    struct litset req = {0};
    read_alt(&r, &req);
    if (r.fail || r.pos != len)
        litset_clear(&req);

    if (f->nrules == f->rules_cap) {
        f->rules_cap = f->rules_cap ? f->rules_cap * 2 : 256;
        f->rules = xrealloc(f->rules, f->rules_cap * sizeof(*f->rules));
    }
    struct rule_req *rule = &f->rules[f->nrules];
    rule->first = (uint32_t)f->nreq;
    rule->n = 0;
    for (size_t i = 0; i < req.n; i++) {
        uint32_t id = intern_lit(f, &req.v[i]);
        bool dup = false;
        for (uint32_t j = 0; j < rule->n; j++)
            dup = dup || f->req_lits[rule->first + j] == id;
        if (dup)
            continue;
        if (f->nreq == f->req_cap) {
            f->req_cap = f->req_cap ? f->req_cap * 2 : 1024;
            f->req_lits = xrealloc(f->req_lits, f->req_cap * sizeof(*f->req_lits));
        }
        f->req_lits[f->nreq++] = id;
        rule->n++;
    }
    litset_free(&req);
    return (uint32_t)f->nrules++;
}

static unsigned bigram_key(uint8_t a, uint8_t b)
{
    return ((unsigned)a << 8) | b;
}

static unsigned quad_key(uint32_t quad)
{
    return (quad * UINT32_C(2654435761)) >> 16;
}

static uint32_t quad_of(const char *s)
{
    return ((uint32_t)(uint8_t)s[0] << 24) | ((uint32_t)(uint8_t)s[1] << 16) |
           ((uint32_t)(uint8_t)s[2] << 8) | (uint8_t)s[3];
}

/* The key of literal `l` in the index for its length. */
static unsigned lit_key(const struct lit *l)
{
    return l->len < 4 ? bigram_key((uint8_t)l->s[0], (uint8_t)l->s[1]) : quad_key(quad_of(l->s));
}

/* Bucket the literals of length in [minlen, maxlen] into `ix`. */
static void index_build(struct lit_index *ix, const struct ua_filter *f, size_t minlen,
                        size_t maxlen)
{
    memset(ix->seen, 0, sizeof(ix->seen));
    ix->start = xcalloc(65537, sizeof(uint32_t));
    size_t n = 0;
    for (size_t i = 0; i < f->nlits; i++) {
        if (f->lits[i].len < minlen || f->lits[i].len > maxlen)
            continue;
        unsigned key = lit_key(&f->lits[i]);
        ix->seen[key >> 6] |= UINT64_C(1) << (key & 63);
        ix->start[key + 1]++;
        n++;
    }
    for (size_t k = 0; k < 65536; k++)
        ix->start[k + 1] += ix->start[k];
    ix->ids = xmalloc((n ? n : 1) * sizeof(uint32_t));
    uint32_t *fill = xcalloc(65536, sizeof(uint32_t));
    for (size_t i = 0; i < f->nlits; i++) {
        if (f->lits[i].len < minlen || f->lits[i].len > maxlen)
            continue;
        unsigned key = lit_key(&f->lits[i]);
        ix->ids[ix->start[key] + fill[key]++] = (uint32_t)i;
    }
    free(fill);
}

static void index_free(struct lit_index *ix)
{
    free(ix->start);
    free(ix->ids);
}

void ua_filter_finish(struct ua_filter *f)
{
    /* literal -> rules (inverted index) and the always-run rules */
    f->rule_words = f->nrules / 64 + 1;
    f->lit_words = f->nlits / 64 + 1;
    f->always = xcalloc(f->rule_words, sizeof(uint64_t));
    f->lit_rule_start = xcalloc(f->nlits + 1, sizeof(uint32_t));
    f->lit_rule_ids = xmalloc((f->nreq ? f->nreq : 1) * sizeof(uint32_t));
    for (size_t r = 0; r < f->nrules; r++) {
        if (f->rules[r].n == 0)
            f->always[r >> 6] |= UINT64_C(1) << (r & 63);
        for (uint32_t i = 0; i < f->rules[r].n; i++)
            f->lit_rule_start[f->req_lits[f->rules[r].first + i] + 1]++;
    }
    for (size_t l = 0; l < f->nlits; l++)
        f->lit_rule_start[l + 1] += f->lit_rule_start[l];
    uint32_t *fill = xcalloc(f->nlits + 1, sizeof(uint32_t));
    for (size_t r = 0; r < f->nrules; r++) {
        for (uint32_t i = 0; i < f->rules[r].n; i++) {
            uint32_t id = f->req_lits[f->rules[r].first + i];
            f->lit_rule_ids[f->lit_rule_start[id] + fill[id]++] = (uint32_t)r;
        }
    }
    free(fill);

    /* one-byte literals, and the two indexes for the longer ones */
    for (size_t b = 0; b < 256; b++)
        f->single_id[b] = NO_LIT;
    for (size_t i = 0; i < f->nlits; i++)
        if (f->lits[i].len == 1)
            f->single_id[(uint8_t)f->lits[i].s[0]] = (uint32_t)i;
    index_build(&f->by_bigram, f, 2, 3);
    index_build(&f->by_quad, f, 4, LIT_MAX);
}

size_t ua_filter_words(const struct ua_filter *f)
{
    return f->rule_words + f->lit_words;
}

/* Literal `id` occurs: the first time, make its rules candidates. */
static void found_lit(const struct ua_filter *f, uint64_t *scratch, uint32_t id)
{
    uint64_t *seen = scratch + f->rule_words;
    uint64_t bit = UINT64_C(1) << (id & 63);
    if (seen[id >> 6] & bit)
        return;
    seen[id >> 6] |= bit;
    for (uint32_t j = f->lit_rule_start[id]; j < f->lit_rule_start[id + 1]; j++) {
        uint32_t r = f->lit_rule_ids[j];
        scratch[r >> 6] |= UINT64_C(1) << (r & 63);
    }
}

/* Does literal `l` occur at the start of ua[0..room)? */
static bool lit_at(const char *ua, size_t room, const struct lit *l)
{
    if (l->len > room)
        return false;
    for (size_t k = 0; k < l->len; k++)
        if (lower_byte((uint8_t)ua[k]) != (uint8_t)l->s[k])
            return false;
    return true;
}

/* Check the literals of bucket `key` of `ix` at ua[0..room). */
static void probe(const struct ua_filter *f, const struct lit_index *ix, unsigned key,
                  const char *ua, size_t room, uint64_t *scratch)
{
    if (!(ix->seen[key >> 6] & (UINT64_C(1) << (key & 63))))
        return;
    for (uint32_t j = ix->start[key]; j < ix->start[key + 1]; j++) {
        uint32_t id = ix->ids[j];
        if (lit_at(ua, room, &f->lits[id]))
            found_lit(f, scratch, id);
    }
}

void ua_filter_scan(const struct ua_filter *f, const char *ua, size_t len, uint64_t *scratch)
{
    memcpy(scratch, f->always, f->rule_words * sizeof(uint64_t));
    memset(scratch + f->rule_words, 0, f->lit_words * sizeof(uint64_t));
    uint32_t quad = 0; /* the last four bytes, lowercased */
    for (size_t i = 0; i < len; i++) {
        uint8_t c = lower_byte((uint8_t)ua[i]);
        quad = (quad << 8) | c;
        if (f->single_id[c] != NO_LIT)
            found_lit(f, scratch, f->single_id[c]);
        if (i >= 1)
            probe(f, &f->by_bigram, bigram_key((uint8_t)(quad >> 8), c), ua + i - 1,
                  len - i + 1, scratch);
        if (i >= 3)
            probe(f, &f->by_quad, quad_key(quad), ua + i - 3, len - i + 3, scratch);
    }
}

bool ua_filter_describe(const struct ua_filter *f, uint32_t rule, char *out, size_t outlen)
{
    if (outlen == 0)
        return false;
    out[0] = '\0';
    if (rule >= f->nrules)
        return true;
    const struct rule_req *req = &f->rules[rule];
    size_t pos = 0;
    for (uint32_t i = 0; i < req->n; i++) {
        const struct lit *l = &f->lits[f->req_lits[req->first + i]];
        size_t need = l->len + (i ? 1 : 0);
        if (pos + need >= outlen) {
            out[pos] = '\0';
            return false;
        }
        if (i)
            out[pos++] = '|';
        memcpy(out + pos, l->s, l->len);
        pos += l->len;
    }
    out[pos] = '\0';
    return true;
}

void ua_filter_counts(const struct ua_filter *f, size_t *rules, size_t *filtered,
                      size_t *literals)
{
    size_t nf = 0;
    for (size_t i = 0; i < f->nrules; i++)
        nf += f->rules[i].n > 0;
    if (rules)
        *rules = f->nrules;
    if (filtered)
        *filtered = nf;
    if (literals)
        *literals = f->nlits;
}

void ua_filter_free(struct ua_filter *f)
{
    if (!f)
        return;
    free(f->rules);
    free(f->req_lits);
    free(f->lits);
    index_free(&f->by_bigram);
    index_free(&f->by_quad);
    free(f->lit_rule_start);
    free(f->lit_rule_ids);
    free(f->always);
    free(f);
}
