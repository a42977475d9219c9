/* rollup.c - combine one batch of events in memory, apply the session
 * logic to it; name the keys (see rollup.h and docs/AGGREGATOR.md).
 *
 * Everything a batch needs lives in one arena and a few growable arrays
 * that rollup_reset empties, so memory is bounded by the batch, never by
 * the stream. It never copies the truncated IP (ipt) or anything else
 * that is not a count, a dimension value or a visitor hash, and it never
 * logs. */
#include "rollup.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ARENA_CHUNK 65536
#define DAY_OWNER_BIT 0x80000000u /* visitor-list owners: days vs rows */
#define OWNERS_INLINE 48          /* lists per visitor checked by a scan */

/* ---- arena: strings that live until the next reset ---- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, size;
    char data[];
};

static char *arena_alloc(struct arena_chunk **head, size_t len)
{
    struct arena_chunk *c = *head;
    if (!c || c->size - c->used < len) {
        size_t size = len > ARENA_CHUNK ? len : ARENA_CHUNK;
        c = xmalloc(sizeof *c + size);
        c->size = size;
        c->used = 0;
        c->next = *head;
        *head = c;
    }
    char *p = c->data + c->used;
    c->used += len;
    return p;
}

static const char *arena_dup(struct arena_chunk **head, const char *s, size_t len)
{
    char *p = arena_alloc(head, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static void arena_free(struct arena_chunk **head)
{
    while (*head) {
        struct arena_chunk *next = (*head)->next;
        free(*head);
        *head = next;
    }
}

/* ---- string map: byte-string key -> index (open addressing) ---- */

struct smap_slot {
    uint64_t hash;
    const char *key; /* NULL = empty; owned by the arena */
    size_t len;
    uint32_t value;
};

struct smap {
    struct smap_slot *slots;
    size_t cap, n;
};

/* A fast 64-bit hash of short keys, 8 bytes at a time (not for anything
 * adversarial beyond a batch: keys come from our own events). */
static uint64_t hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (len * 0xff51afd7ed558ccdULL);
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, s, 8);
        h = (h ^ (k * 0xc4ceb9fe1a85ec53ULL)) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 31;
        s += 8;
        len -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < len; i++)
        k |= (uint64_t)s[i] << (8 * i);
    h = (h ^ (k * 0xc4ceb9fe1a85ec53ULL)) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static struct smap_slot *smap_slot(const struct smap *m, const char *key, size_t len,
                                   uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct smap_slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static void smap_grow(struct smap *m)
{
    struct smap old = *m;
    m->cap = old.cap ? old.cap * 2 : 256;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *smap_slot(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash) =
                old.slots[i];
    free(old.slots);
}

/* Find `key`; when absent, insert it with `value` (the key is copied into
 * the arena). Returns the stored value; *created tells which happened and
 * *stored (if not NULL) points at the map's copy of the key. */
static uint32_t smap_intern(struct smap *m, struct arena_chunk **arena, const char *key,
                            size_t len, uint32_t value, bool *created, const char **stored)
{
    if ((m->n + 1) * 4 > m->cap * 3)
        smap_grow(m);
    uint64_t h = hash_bytes(key, len);
    struct smap_slot *s = smap_slot(m, key, len, h);
    *created = s->key == NULL;
    if (*created) {
        s->hash = h;
        s->key = arena_dup(arena, key, len);
        s->len = len;
        s->value = value;
        m->n++;
    }
    if (stored)
        *stored = s->key;
    return s->value;
}

static bool smap_find(const struct smap *m, const char *key, size_t len, uint32_t *value)
{
    if (m->cap == 0)
        return false;
    struct smap_slot *s = smap_slot(m, key, len, hash_bytes(key, len));
    if (!s->key)
        return false;
    *value = s->value;
    return true;
}

static void smap_clear(struct smap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
}

/* ---- pair set: (owner, visitor) seen, to keep visitor lists distinct ---- */

struct pairset {
    uint64_t *slots; /* 0 = empty, else pair + 1 */
    size_t cap, n;
};

static bool pairset_add(struct pairset *ps, uint32_t owner, uint32_t visitor)
{
    if ((ps->n + 1) * 2 > ps->cap) {
        struct pairset old = *ps;
        ps->cap = old.cap ? old.cap * 2 : 1024;
        ps->slots = xcalloc(ps->cap, sizeof *ps->slots);
        ps->n = 0;
        for (size_t i = 0; i < old.cap; i++) {
            if (old.slots[i]) {
                uint64_t v = old.slots[i] - 1;
                pairset_add(ps, (uint32_t)(v >> 32), (uint32_t)v);
            }
        }
        free(old.slots);
    }
    uint64_t v = ((uint64_t)owner << 32 | visitor) + 1;
    uint64_t h = v * 0x9E3779B97F4A7C15ULL;
    size_t mask = ps->cap - 1;
    for (size_t i = (size_t)(h >> 20) & mask;; i = (i + 1) & mask) {
        if (ps->slots[i] == v)
            return false;
        if (ps->slots[i] == 0) {
            ps->slots[i] = v;
            ps->n++;
            return true;
        }
    }
}

/* ---- the combiner ---- */

struct rollup {
    char *prefix;
    long long retention_days;
    struct arena_chunk *arena;
    int64_t now;           /* the clock rollup_add was last given */
    size_t nevents;
    struct rollup_day *days;
    size_t ndays, days_cap;
    struct rollup_row *rows;
    size_t nrows, rows_cap;
    struct rollup_session *sessions;
    size_t nsessions, sessions_cap;
    struct rollup_hit *hits;
    size_t nhits, hits_cap;
    struct rollup_group *groups;
    size_t ngroups, groups_cap;
    const char **visitors; /* id -> 16 hex digits */
    size_t nvisitors, visitors_cap;
    struct smap day_map, row_map, session_map, visitor_map, group_map, site_map;
    struct rollup_site { const char *name, *realtime_key; } *sites; /* by site id */
    size_t nsites, sites_cap;
    struct pairset seen;    /* (owner, visitor) pairs of visitors past OWNERS_INLINE */
    struct visitor_owners {
        uint32_t *owners;   /* the lists this visitor is in, while few */
        uint32_t n, cap;    /* n > OWNERS_INLINE: the pair set has them */
    } *owners;              /* by visitor id */
    size_t owners_cap;
};

#define GROW(arr, n, cap)                                                    \
    do {                                                                     \
        if ((n) == (cap)) {                                                  \
            (cap) = (cap) ? (cap) * 2 : 64;                                  \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr));                  \
        }                                                                    \
    } while (0)

static const char *const total_fields[ROLLUP_T_COUNT] = {
    "pageviews", "events", "engaged_ms", "engaged_n", "scroll_sum", "scroll_n",
    "visits",    "bounces", "visit_duration_s",
};

static const char *const visit_dim_names[ROLLUP_V_COUNT] = {
    "entry_page", "source",  "utm_source",      "utm_medium", "utm_campaign",
    "country",    "region",  "city",            "browser",    "browser_version",
    "os",         "device",  "screen",
};

const char *rollup_total_field(enum rollup_total t)
{
    return (unsigned)t < ROLLUP_T_COUNT ? total_fields[t] : "?";
}

const char *rollup_visit_dim_name(enum rollup_visit_dim d)
{
    return (unsigned)d < ROLLUP_V_COUNT ? visit_dim_names[d] : "?";
}

bool rollup_visit_dim_acquisition(enum rollup_visit_dim d)
{
    return d <= ROLLUP_V_UTM_CAMPAIGN;
}

bool rollup_is_measurement(const char *name)
{
    return strcmp(name, "engagement") == 0 || strcmp(name, "scroll") == 0;
}

struct rollup *rollup_new(const char *prefix, long long retention_days)
{
    struct rollup *r = xcalloc(1, sizeof *r);
    r->prefix = xstrdup(prefix);
    r->retention_days = retention_days;
    return r;
}

void rollup_reset(struct rollup *r)
{
    for (size_t i = 0; i < r->ndays; i++)
        free(r->days[i].visitors);
    for (size_t i = 0; i < r->nrows; i++) {
        free(r->rows[i].visitors);
        free(r->rows[i].visit_visitors);
    }
    r->ndays = r->nrows = r->nsessions = r->nhits = r->nvisitors = r->nevents = 0;
    r->ngroups = 0;
    r->now = 0;
    smap_clear(&r->day_map);
    smap_clear(&r->row_map);
    smap_clear(&r->session_map);
    smap_clear(&r->visitor_map);
    smap_clear(&r->group_map);
    smap_clear(&r->site_map);
    r->nsites = 0;
    if (r->seen.n)
        memset(r->seen.slots, 0, r->seen.cap * sizeof *r->seen.slots);
    r->seen.n = 0;
    arena_free(&r->arena);
}

void rollup_free(struct rollup *r)
{
    if (!r)
        return;
    rollup_reset(r);
    free(r->days);
    free(r->rows);
    free(r->sessions);
    free(r->hits);
    free(r->groups);
    free(r->visitors);
    free(r->day_map.slots);
    free(r->row_map.slots);
    free(r->session_map.slots);
    free(r->visitor_map.slots);
    free(r->group_map.slots);
    free(r->site_map.slots);
    free(r->sites);
    free(r->owners);
    free(r->seen.slots);
    free(r->prefix);
    free(r);
}

/* Whether `visitor` is new in the list of `owner` (then remembered). A
 * visitor is in a few lists (its events' rows and day), so they are
 * checked by a scan of its own short array; a visitor in very many lists
 * (thousands of distinct pages) moves to the pair set. */
static bool visitor_first_in(struct rollup *r, uint32_t owner, uint32_t visitor)
{
    struct visitor_owners *vo = &r->owners[visitor];
    if (vo->n > OWNERS_INLINE)
        return pairset_add(&r->seen, owner, visitor);
    for (uint32_t i = 0; i < vo->n; i++)
        if (vo->owners[i] == owner)
            return false;
    if (vo->n == OWNERS_INLINE) {
        for (uint32_t i = 0; i < vo->n; i++)
            pairset_add(&r->seen, vo->owners[i], visitor);
        vo->n++;
        return pairset_add(&r->seen, owner, visitor);
    }
    if (vo->n == vo->cap) {
        uint32_t cap = vo->cap ? vo->cap * 2 : 16;
        uint32_t *owners = (uint32_t *)(void *)arena_alloc(&r->arena, cap * sizeof *owners + 8);
        owners = (uint32_t *)(void *)(((uintptr_t)owners + 7) & ~(uintptr_t)7);
        if (vo->n)
            memcpy(owners, vo->owners, vo->n * sizeof *owners);
        vo->owners = owners;
        vo->cap = cap;
    }
    vo->owners[vo->n++] = owner;
    return true;
}

/* Append `visitor` to a distinct-visitor list owned by `owner`. */
static void visitors_add(struct rollup *r, uint32_t owner, uint32_t visitor, uint32_t **list,
                         size_t *n, size_t *cap)
{
    if (visitor == ROLLUP_NO_VISITOR || !visitor_first_in(r, owner, visitor))
        return;
    GROW(*list, *n, *cap);
    (*list)[(*n)++] = visitor;
}

static bool visitor_hash_valid(const char *vh)
{
    size_t i = 0;
    for (; vh[i]; i++)
        if (!((vh[i] >= '0' && vh[i] <= '9') || (vh[i] >= 'a' && vh[i] <= 'f') ||
              (vh[i] >= 'A' && vh[i] <= 'F')))
            return false;
    return i == 16;
}

static uint32_t visitor_id(struct rollup *r, const char *hash)
{
    size_t len = strlen(hash);
    if (len == 0)
        return ROLLUP_NO_VISITOR;
    bool created;
    const char *stored;
    uint32_t id = smap_intern(&r->visitor_map, &r->arena, hash, len, (uint32_t)r->nvisitors,
                              &created, &stored);
    if (created) {
        if (r->nvisitors == r->owners_cap) {
            r->owners_cap = r->owners_cap ? r->owners_cap * 2 : 1024;
            r->owners = xrealloc(r->owners, r->owners_cap * sizeof *r->owners);
        }
        r->owners[r->nvisitors] = (struct visitor_owners){NULL, 0, 0};
        GROW(r->visitors, r->nvisitors, r->visitors_cap);
        r->visitors[r->nvisitors++] = stored; /* the map's NUL-terminated copy */
    }
    return id;
}

/* Key material "site\0day" for the day map. */
static size_t day_key(char *buf, size_t buflen, const char *site, const char *day)
{
    size_t sl = strlen(site), dl = strlen(day);
    if (sl + 1 + dl > buflen)
        return 0;
    memcpy(buf, site, sl);
    buf[sl] = '\0';
    memcpy(buf + sl + 1, day, dl);
    return sl + 1 + dl;
}

static int day_index(struct rollup *r, const char *site, const char *day, int64_t expire_at,
                     uint32_t *out)
{
    char key[EV_SITE_MAX + 16];
    size_t klen = day_key(key, sizeof key, site, day);
    if (klen == 0)
        return -1;
    bool created;
    uint32_t idx = smap_intern(&r->day_map, &r->arena, key, klen, (uint32_t)r->ndays, &created,
                                NULL);
    if (created) {
        char base[EV_SITE_MAX + 64];
        if (!rollup_key_day(base, sizeof base, r->prefix, site, day, ""))
            return -1;
        GROW(r->days, r->ndays, r->days_cap);
        struct rollup_day *d = &r->days[r->ndays++];
        memset(d, 0, sizeof *d);
        d->site = arena_dup(&r->arena, site, strlen(site));
        d->day = arena_dup(&r->arena, day, strlen(day));
        d->base = arena_dup(&r->arena, base, strlen(base));
        d->expire_at = expire_at;
    }
    *out = idx;
    return 0;
}

/* Key material of a row: 4 bytes of day index, dim, NUL, value. */
#define ROW_KEY_MAX (4 + 8 + EV_PROP_KEY_MAX + 1 + EV_PATH_MAX + 16)

static size_t row_key(char *buf, uint32_t day, const char *dim, const char *value)
{
    size_t dl = strlen(dim), vl = strlen(value);
    if (4 + dl + 1 + vl > ROW_KEY_MAX)
        return 0;
    memcpy(buf, &day, 4);
    memcpy(buf + 4, dim, dl);
    buf[4 + dl] = '\0';
    memcpy(buf + 5 + dl, value, vl);
    return 5 + dl + vl;
}

/* The group of (day, dim), created on first use. */
static uint32_t group_index(struct rollup *r, uint32_t day, const char *dim)
{
    char key[4 + 8 + EV_PROP_KEY_MAX];
    size_t dl = strlen(dim);
    if (4 + dl > sizeof key)
        dl = sizeof key - 4; /* cannot happen: dims are bounded */
    memcpy(key, &day, 4);
    memcpy(key + 4, dim, dl);
    bool created;
    const char *stored;
    uint32_t idx = smap_intern(&r->group_map, &r->arena, key, 4 + dl, (uint32_t)r->ngroups,
                               &created, &stored);
    if (created) {
        GROW(r->groups, r->ngroups, r->groups_cap);
        struct rollup_group *g = &r->groups[r->ngroups++];
        g->day = day;
        g->dim = arena_dup(&r->arena, dim, dl);
        g->kind = strcmp(dim, "entry_page") == 0     ? ROLLUP_G_VIS
                  : strncmp(dim, "prop:", 5) == 0 ? ROLLUP_G_PROP
                                                  : ROLLUP_G_EV;
    }
    return idx;
}

/* Row (day, dim, value), created when absent; ROLLUP_NO_ROW when the value
 * is empty or unusable. */
static uint32_t row_index(struct rollup *r, uint32_t day, const char *dim, const char *value,
                          bool visitors_at_visit)
{
    if (value[0] == '\0')
        return ROLLUP_NO_ROW;
    char key[ROW_KEY_MAX];
    size_t klen = row_key(key, day, dim, value);
    if (klen == 0)
        return ROLLUP_NO_ROW;
    bool created;
    const char *stored;
    uint32_t idx = smap_intern(&r->row_map, &r->arena, key, klen, (uint32_t)r->nrows, &created,
                               &stored);
    if (created) {
        uint32_t group = group_index(r, day, dim);
        GROW(r->rows, r->nrows, r->rows_cap);
        struct rollup_row *row = &r->rows[r->nrows++];
        memset(row, 0, sizeof *row);
        row->day = day;
        row->group = group;
        row->dim = stored + 4; /* dim and value point into the map's key copy */
        row->value = stored + 4 + strlen(dim) + 1;
        row->visitors_at_visit = visitors_at_visit;
    }
    return idx;
}

/* Count one event into row (day, dim, value); returns the row index, or
 * ROLLUP_NO_ROW when the value is empty or unusable. */
static uint32_t row_count(struct rollup *r, uint32_t day, const char *dim, const char *value,
                          bool pageview, uint32_t visitor, bool visitors_at_visit)
{
    uint32_t idx = row_index(r, day, dim, value, visitors_at_visit);
    if (idx == ROLLUP_NO_ROW)
        return idx;
    struct rollup_row *row = &r->rows[idx];
    row->ev++;
    if (pageview)
        row->pv++;
    if (!visitors_at_visit)
        visitors_add(r, idx, visitor, &row->visitors, &row->nvisitors, &row->visitors_cap);
    return idx;
}

/* The site's id; its name and realtime key are shared by its sessions. */
static uint32_t site_index(struct rollup *r, const char *site)
{
    bool created;
    const char *stored;
    uint32_t idx = smap_intern(&r->site_map, &r->arena, site, strlen(site), (uint32_t)r->nsites,
                               &created, &stored);
    if (created) {
        char rkey[EV_SITE_MAX + 64];
        rollup_key_realtime(rkey, sizeof rkey, r->prefix, site);
        GROW(r->sites, r->nsites, r->sites_cap);
        r->sites[r->nsites].name = stored;
        r->sites[r->nsites].realtime_key = arena_dup(&r->arena, rkey, strlen(rkey));
        r->nsites++;
    }
    return idx;
}

static uint32_t session_index(struct rollup *r, const char *site, uint32_t visitor)
{
    const char *vh = r->visitors[visitor];
    char key[EV_SITE_MAX + 24];
    size_t klen = day_key(key, sizeof key, site, vh);
    bool created;
    uint32_t idx = smap_intern(&r->session_map, &r->arena, key, klen, (uint32_t)r->nsessions,
                               &created, NULL);
    if (created) {
        uint32_t sid = site_index(r, site);
        char field[EV_SITE_MAX + 24];
        str_format(field, sizeof field, "%s:%s", site, vh);
        GROW(r->sessions, r->nsessions, r->sessions_cap);
        struct rollup_session *s = &r->sessions[r->nsessions++];
        memset(s, 0, sizeof *s);
        s->field = arena_dup(&r->arena, field, strlen(field));
        s->site = r->sites[sid].name;
        s->realtime_key = r->sites[sid].realtime_key;
        s->visitor = visitor;
        s->last_seen = INT64_MIN;
    }
    return idx;
}

/* out = a + sep + b, or "" when that does not fit. */
static void join2(char *out, size_t outlen, const char *a, char sep, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al + 1 + bl + 1 > outlen) {
        out[0] = '\0';
        return;
    }
    memcpy(out, a, al);
    out[al] = sep;
    memcpy(out + al + 1, b, bl + 1);
}

enum rollup_status rollup_add(struct rollup *r, const struct event_record *ev, int64_t now,
                              char *err, size_t errlen)
{
    if (!rollup_site_valid(ev->site)) {
        str_format(err, errlen, "site: not usable in a key name");
        return ROLLUP_INVALID;
    }
    int64_t expire_at = rollup_day_expire_at(ev->day, r->retention_days);
    if (expire_at < 0) {
        str_format(err, errlen, "day: not a calendar day");
        return ROLLUP_INVALID;
    }
    r->now = now;
    if (expire_at <= now)
        return ROLLUP_EXPIRED;
    if (ev->visitor[0] && !visitor_hash_valid(ev->visitor)) {
        str_format(err, errlen, "vh: not 16 hex digits");
        return ROLLUP_INVALID;
    }
    uint32_t di;
    if (day_index(r, ev->site, ev->day, expire_at, &di) != 0) {
        str_format(err, errlen, "site: too long for a key name");
        return ROLLUP_INVALID;
    }
    struct rollup_day *d = &r->days[di];
    bool pageview = strcmp(ev->name, "pageview") == 0;
    bool measurement = !pageview && rollup_is_measurement(ev->name);
    uint32_t vid = visitor_id(r, ev->visitor);

    if (!measurement)
        d->totals[ROLLUP_T_EVENTS]++;
    if (pageview)
        d->totals[ROLLUP_T_PAGEVIEWS]++;
    if (ev->engaged_ms >= 0) {
        d->totals[ROLLUP_T_ENGAGED_MS] += ev->engaged_ms;
        d->totals[ROLLUP_T_ENGAGED_N]++;
    }
    if (ev->scroll_depth >= 0 && ev->scroll_depth <= 100) {
        d->totals[ROLLUP_T_SCROLL_SUM] += ev->scroll_depth;
        d->totals[ROLLUP_T_SCROLL_N]++;
        d->scroll[ev->scroll_depth / 10]++;
    }
    visitors_add(r, DAY_OWNER_BIT | di, vid, &d->visitors, &d->nvisitors, &d->visitors_cap);

    uint32_t visit_row[ROLLUP_V_COUNT];
    for (size_t i = 0; i < ROLLUP_V_COUNT; i++)
        visit_row[i] = ROLLUP_NO_ROW;
    const char *entry_page = "";
    if (!measurement) {
        char region[8], version[EV_UA_FIELD_MAX + 20];
        const char *source = ev->referrer[0] ? ev->referrer
                           : ev->utm_source[0] ? ev->utm_source
                                               : ROLLUP_DIRECT;
        region[0] = version[0] = '\0';
        if (ev->country[0] && ev->region[0])
            join2(region, sizeof region, ev->country, '-', ev->region);
        if (ev->browser[0] && ev->browser_major[0])
            join2(version, sizeof version, ev->browser, ' ', ev->browser_major);
        const char *device = ev->device == DEVICE_UNKNOWN ? "" : device_class_name(ev->device);

        uint32_t page = row_count(r, di, "page", ev->path, pageview, vid, false);
        if (page != ROLLUP_NO_ROW)
            entry_page = r->rows[page].value;
        visit_row[ROLLUP_V_SOURCE] = row_count(r, di, "source", source, pageview, vid, true);
        visit_row[ROLLUP_V_UTM_SOURCE] =
            row_count(r, di, "utm_source", ev->utm_source, pageview, vid, true);
        visit_row[ROLLUP_V_UTM_MEDIUM] =
            row_count(r, di, "utm_medium", ev->utm_medium, pageview, vid, true);
        visit_row[ROLLUP_V_UTM_CAMPAIGN] =
            row_count(r, di, "utm_campaign", ev->utm_campaign, pageview, vid, true);
        visit_row[ROLLUP_V_COUNTRY] = row_count(r, di, "country", ev->country, pageview, vid, false);
        visit_row[ROLLUP_V_REGION] = row_count(r, di, "region", region, pageview, vid, false);
        visit_row[ROLLUP_V_CITY] = row_count(r, di, "city", ev->city, pageview, vid, false);
        visit_row[ROLLUP_V_BROWSER] = row_count(r, di, "browser", ev->browser, pageview, vid, false);
        visit_row[ROLLUP_V_BROWSER_VERSION] =
            row_count(r, di, "browser_version", version, pageview, vid, false);
        visit_row[ROLLUP_V_OS] = row_count(r, di, "os", ev->os, pageview, vid, false);
        visit_row[ROLLUP_V_DEVICE] = row_count(r, di, "device", device, pageview, vid, false);
        visit_row[ROLLUP_V_SCREEN] = row_count(r, di, "screen", ev->screen, pageview, vid, false);
        row_count(r, di, "name", ev->name, pageview, vid, false);
        for (size_t i = 0; i < ev->nprops && i < EV_PROPS_MAX; i++) {
            const struct event_prop *p = &ev->props[i];
            char dim[8 + EV_PROP_KEY_MAX];
            if (!p->key[0] || !p->value[0] ||
                !str_format(dim, sizeof dim, "prop:%s", p->key))
                continue;
            row_count(r, di, "prop_key", p->key, pageview, vid, false);
            row_count(r, di, dim, p->value, pageview, vid, false);
        }
    }
    if (vid != ROLLUP_NO_VISITOR) {
        GROW(r->hits, r->nhits, r->hits_cap);
        struct rollup_hit *h = &r->hits[r->nhits];
        h->session = session_index(r, ev->site, vid);
        h->day = di;
        h->ts = ev->ts;
        h->pageview = pageview;
        h->seq = (uint32_t)r->nhits;
        h->visit[ROLLUP_V_ENTRY_PAGE] = entry_page;
        for (size_t i = 1; i < ROLLUP_V_COUNT; i++)
            h->visit[i] = visit_row[i] == ROLLUP_NO_ROW ? "" : r->rows[visit_row[i]].value;
        memcpy(h->visit_row, visit_row, sizeof visit_row);
        struct rollup_session *s = &r->sessions[h->session];
        if (ev->ts > s->last_seen)
            s->last_seen = ev->ts;
        r->nhits++;
    }
    r->nevents++;
    return ROLLUP_ADDED;
}

static bool hit_before(const struct rollup_hit *x, const struct rollup_hit *y)
{
    if (x->session != y->session)
        return x->session < y->session;
    if (x->ts != y->ts)
        return x->ts < y->ts;
    return x->seq < y->seq;
}

static int hit_cmp(const void *a, const void *b)
{
    const struct rollup_hit *x = a, *y = b;
    return hit_before(x, y) ? -1 : hit_before(y, x);
}

void rollup_finish(struct rollup *r)
{
    if (r->nhits < 2)
        return;
    /* by session (counting sort, stable: arrival order kept), then each
     * session's few hits by ts (insertion sort) */
    size_t n = r->nhits, ns = r->nsessions;
    size_t *start = xcalloc(ns + 1, sizeof *start);
    struct rollup_hit *sorted = xmalloc(n * sizeof *sorted);
    for (size_t i = 0; i < n; i++)
        start[r->hits[i].session + 1]++;
    for (size_t k = 0; k < ns; k++)
        start[k + 1] += start[k];
    for (size_t i = 0; i < n; i++)
        sorted[start[r->hits[i].session]++] = r->hits[i];
    /* start[k] is now the end of session k's hits */
    for (size_t k = 0, from = 0; k < ns; from = start[k++]) {
        size_t to = start[k];
        if (to - from > 32) {
            qsort(sorted + from, to - from, sizeof *sorted, hit_cmp);
            continue;
        }
        for (size_t i = from + 1; i < to; i++) {
            struct rollup_hit h = sorted[i];
            size_t j = i;
            while (j > from && hit_before(&h, &sorted[j - 1])) {
                sorted[j] = sorted[j - 1];
                j--;
            }
            sorted[j] = h;
        }
    }
    memcpy(r->hits, sorted, n * sizeof *sorted);
    free(sorted);
    free(start);
}

/* ---- sessions ---- */

bool rollup_session_parse(const char *value, size_t len, struct rollup_session_state *out)
{
    /* "<pv> <start> <last> <YYYY-MM-DD>" */
    const char *p = value, *end = value + len;
    long long nums[3];
    for (int i = 0; i < 3; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (!sp || !safe_strtoll_n(p, (size_t)(sp - p), i == 0 ? 1 : 0, INT64_MAX / 4,
                                   &nums[i]))
            return false;
        p = sp + 1;
    }
    if (end - p != 10 || nums[2] < nums[1])
        return false;
    memcpy(out->day, p, 10);
    out->day[10] = '\0';
    if (rollup_day_expire_at(out->day, 0) < 0)
        return false;
    out->pv = nums[0];
    out->start = nums[1];
    out->last = nums[2];
    return true;
}

/* Decimal digits of v at out; returns the length (at most 20). */
static size_t put_ll(char *out, long long v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

size_t rollup_session_format(const struct rollup_session_state *s,
                             char out[ROLLUP_SESSION_VALUE_MAX])
{
    size_t len = put_ll(out, s->pv);
    out[len++] = ' ';
    len += put_ll(out + len, s->start);
    out[len++] = ' ';
    len += put_ll(out + len, s->last);
    out[len++] = ' ';
    memcpy(out + len, s->day, 10);
    len += 10;
    out[len] = '\0';
    return len;
}

/* The day a stored visit started on, as a day of this batch (created if
 * needed); ROLLUP_NO_DAY when that day is past retention. */
static uint32_t stored_day(struct rollup *r, const struct rollup_session *s, const char *day)
{
    int64_t expire_at = rollup_day_expire_at(day, r->retention_days);
    uint32_t di;
    if (expire_at <= r->now || day_index(r, s->site, day, expire_at, &di) != 0)
        return ROLLUP_NO_DAY;
    return di;
}

/* A visit starts with hit h of session s: visits, a bounce until a second
 * pageview, and the visit dimensions of its first pageview. */
static void count_visit(struct rollup *r, const struct rollup_hit *h,
                        const struct rollup_session *s)
{
    struct rollup_day *d = &r->days[h->day];
    d->totals[ROLLUP_T_VISITS]++;
    d->totals[ROLLUP_T_BOUNCES]++;
    for (size_t v = 0; v < ROLLUP_V_COUNT; v++) {
        uint32_t idx = h->visit_row[v];
        if (v == ROLLUP_V_ENTRY_PAGE)
            idx = row_index(r, h->day, "entry_page", h->visit[v], true);
        if (idx == ROLLUP_NO_ROW)
            continue;
        struct rollup_row *row = &r->rows[idx];
        row->vis++;
        if (rollup_visit_dim_acquisition((enum rollup_visit_dim)v)) {
            GROW(row->visit_visitors, row->nvisit_visitors, row->visit_visitors_cap);
            row->visit_visitors[row->nvisit_visitors++] = s->visitor;
        }
    }
}

static void add_total(struct rollup *r, uint32_t day, enum rollup_total t, long long delta)
{
    if (day != ROLLUP_NO_DAY)
        r->days[day].totals[t] += delta;
}

void rollup_apply_sessions(struct rollup *r, const char *const *stored, const size_t *lens,
                           long long timeout)
{
    for (size_t i = 0; i < r->ndays; i++) {
        r->days[i].totals[ROLLUP_T_VISITS] = 0;
        r->days[i].totals[ROLLUP_T_BOUNCES] = 0;
        r->days[i].totals[ROLLUP_T_VISIT_DURATION] = 0;
    }
    for (size_t i = 0; i < r->nrows; i++) {
        r->rows[i].vis = 0;
        r->rows[i].nvisit_visitors = 0;
    }
    for (size_t i = 0; i < r->nsessions; i++)
        r->sessions[i].dirty = false;

    /* Hits are ordered by session, then ts, then arrival (rollup_finish). */
    for (size_t i = 0, end; i < r->nhits; i = end) {
        uint32_t si = r->hits[i].session;
        for (end = i; end < r->nhits && r->hits[end].session == si; end++)
            ;
        struct rollup_session *s = &r->sessions[si];
        struct rollup_session_state st;
        bool open = stored && stored[si] && rollup_session_parse(stored[si], lens[si], &st);
        uint32_t st_day = open ? stored_day(r, s, st.day) : ROLLUP_NO_DAY;
        bool dirty = false;
        for (size_t k = i; k < end; k++) {
            const struct rollup_hit *h = &r->hits[k];
            /* a gap over the timeout ends the stored visit for this event */
            bool current = open && h->ts <= st.last + timeout;
            if (current && h->ts < st.start - timeout) {
                /* an earlier, separate visit that arrived late: count it,
                 * keep the session */
                if (h->pageview)
                    count_visit(r, h, s);
                continue;
            }
            if (!current) {
                if (h->pageview) {
                    count_visit(r, h, s);
                    open = dirty = true;
                    st.pv = 1;
                    st.start = st.last = h->ts;
                    memcpy(st.day, r->days[h->day].day, sizeof st.day);
                    st_day = h->day;
                }
                continue;
            }
            if (h->ts > st.last) {
                add_total(r, st_day, ROLLUP_T_VISIT_DURATION, h->ts - st.last);
                st.last = h->ts;
            }
            if (h->ts < st.start) {
                add_total(r, st_day, ROLLUP_T_VISIT_DURATION, st.start - h->ts);
                st.start = h->ts;
            }
            if (h->pageview && ++st.pv == 2)
                add_total(r, st_day, ROLLUP_T_BOUNCES, -1);
            dirty = true;
        }
        s->dirty = dirty;
        if (dirty)
            s->state = st;
    }
}

size_t rollup_nevents(const struct rollup *r)
{
    return r->nevents;
}

const struct rollup_day *rollup_days(const struct rollup *r, size_t *n)
{
    *n = r->ndays;
    return r->days;
}

const struct rollup_row *rollup_rows(const struct rollup *r, size_t *n)
{
    *n = r->nrows;
    return r->rows;
}

const struct rollup_session *rollup_sessions(const struct rollup *r, size_t *n)
{
    *n = r->nsessions;
    return r->sessions;
}

const struct rollup_hit *rollup_hits(const struct rollup *r, size_t *n)
{
    *n = r->nhits;
    return r->hits;
}

const struct rollup_group *rollup_groups(const struct rollup *r, size_t *n)
{
    *n = r->ngroups;
    return r->groups;
}

size_t rollup_visitor_count(const struct rollup *r)
{
    return r->nvisitors;
}

const char *rollup_visitor(const struct rollup *r, uint32_t id)
{
    return id < r->nvisitors ? r->visitors[id] : "";
}

const struct rollup_day *rollup_find_day(const struct rollup *r, const char *site,
                                         const char *day)
{
    char key[EV_SITE_MAX + 16];
    size_t klen = day_key(key, sizeof key, site, day);
    uint32_t idx;
    if (klen == 0 || !smap_find(&r->day_map, key, klen, &idx))
        return NULL;
    return &r->days[idx];
}

const struct rollup_row *rollup_find_row(const struct rollup *r, const char *site,
                                         const char *day, const char *dim, const char *value)
{
    const struct rollup_day *d = rollup_find_day(r, site, day);
    if (!d)
        return NULL;
    char key[ROW_KEY_MAX];
    size_t klen = row_key(key, (uint32_t)(d - r->days), dim, value);
    uint32_t idx;
    if (klen == 0 || !smap_find(&r->row_map, key, klen, &idx))
        return NULL;
    return &r->rows[idx];
}

/* ---- key names ---- */

bool rollup_key_stream(char *out, size_t outlen, const char *prefix)
{
    return str_format(out, outlen, "%sevents", prefix);
}

bool rollup_key_sites(char *out, size_t outlen, const char *prefix)
{
    return str_format(out, outlen, "%ssites", prefix);
}

bool rollup_key_day(char *out, size_t outlen, const char *prefix, const char *site,
                    const char *day, const char *suffix)
{
    return str_format(out, outlen, "%sd:%s:%s:%s", prefix, site, day, suffix);
}

bool rollup_key_breakdown(char *out, size_t outlen, const char *prefix, const char *site,
                          const char *day, const char *dim, const char *metric)
{
    return str_format(out, outlen, "%sd:%s:%s:b:%s:%s", prefix, site, day, dim, metric);
}

bool rollup_key_row_visitors(char *out, size_t outlen, const char *prefix, const char *site,
                             const char *day, const char *dim, const char *value)
{
    return str_format(out, outlen, "%sd:%s:%s:u:%s:%s", prefix, site, day, dim, value);
}

bool rollup_key_sessions(char *out, size_t outlen, const char *prefix, long long bucket)
{
    return str_format(out, outlen, "%ssessions:%lld", prefix, bucket);
}

bool rollup_key_sessions_version(char *out, size_t outlen, const char *prefix)
{
    return str_format(out, outlen, "%ssessions:version", prefix);
}

bool rollup_key_realtime(char *out, size_t outlen, const char *prefix, const char *site)
{
    return str_format(out, outlen, "%srt:%s", prefix, site);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t rollup_day_expire_at(const char *day, long long retention_days)
{
    long long y, m, d;
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; i < 10; i++)
        if (shape[i] == 'd' ? (day[i] < '0' || day[i] > '9') : day[i] != '-')
            return -1;
    if (day[10] != '\0' || !safe_strtoll_n(day, 4, 1970, 9999, &y) ||
        !safe_strtoll_n(day + 5, 2, 1, 12, &m) || !safe_strtoll_n(day + 8, 2, 1, 31, &d))
        return -1;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    unsigned last = mdays[m - 1] + (m == 2 && leap);
    if ((unsigned)d > last)
        return -1;
    int64_t start = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400;
    return start + 86400 + (int64_t)retention_days * 86400;
}

bool rollup_site_valid(const char *site)
{
    if (!site[0])
        return false;
    for (const unsigned char *p = (const unsigned char *)site; *p; p++)
        if (*p == ':' || *p <= ' ' || *p == 0x7f)
            return false;
    return true;
}
