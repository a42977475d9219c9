/* rollup.c - combine one batch of events in memory; name the keys
 * (see rollup.h and docs/AGGREGATOR.md).
 *
 * Everything a batch needs lives in one arena and a few growable arrays
 * that rollup_reset empties, so memory is bounded by the batch, never by
 * the stream. It never copies the truncated IP (ipt) or anything else
 * that is not a count, a dimension value or a visitor hash, and it never
 * logs. */
#include "rollup.h"

#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "strmap.h"
#include "period.h"
#include "referrers.h"
#include "hourly.h"
#include "rollup_hours.h"
#include "registry.h"
#include "tzfile.h"
#include "util.h"
#include "visit.h"

#define DAY_OWNER_BIT 0x80000000u /* pair-set owners: days vs rows */
#define HOUR_OWNER_BITS 0xC0000000u /* and (day, hour): day * 24 + hour */

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
    /* splitmix64's finalizer: every bit of owner and visitor reaches the
     * low bits used as the slot (a plain multiply left owners out of them
     * for small tables, and every row's pairs probed one long chain) */
    uint64_t h = v;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    size_t mask = ps->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
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

/* The last row counted of one dimension. */
struct row_cache {
    uint32_t day;   /* UINT32_MAX: empty */
    uint32_t idx;
    size_t len;
    char value[64];
};

/* Which per-visitor dimensions a visitor was added to, for one day. */
struct visitor_mask {
    uint32_t day;   /* UINT32_MAX: none yet */
    uint32_t dims;  /* bit per dim (dim_bit) */
};

struct rollup {
    char *prefix;
    long long retention_days;
    struct arena_chunk *arena;
    size_t nevents;
    struct rollup_day *days;
    size_t ndays, days_cap;
    struct rollup_row *rows;
    size_t nrows, rows_cap;
    struct rollup_session *sessions;
    size_t nsessions, sessions_cap;
    struct rollup_hit *hits;
    size_t nhits, hits_cap;
    struct rollup_hit *sorted; /* rollup_finish's scratch (order_cap hits) */
    uint32_t *order;
    size_t order_cap;
    const char **visitors; /* id -> 16 hex digits */
    size_t nvisitors, visitors_cap;
    struct visitor_mask *masks; /* id -> its per-visitor rows of the batch */
    size_t masks_cap;
    struct row_cache last_row[SD__COUNT];
    struct smap day_map, row_map, session_map, visitor_map;
    struct pairset seen;
    const struct referrers *referrers; /* named sources, NULL: hosts */
    rollup_site_fn site_fn;    /* the site's zone and goals, or NULL: UTC, none */
    void *site_arg;
    struct rollup_hours hours; /* rows of the hourly dims by local hour (hourly.h) */
    unsigned hour;             /* the local hour of the event being added */
};

static const char *const total_fields[ROLLUP_T_COUNT] = {
    "pageviews", "events", "engaged_ms", "engaged_n", "scroll_sum", "scroll_n",
};

const char *rollup_total_field(enum rollup_total t)
{
    return (unsigned)t < ROLLUP_T_COUNT ? total_fields[t] : "?";
}

const char *rollup_visit_dim_name(enum rollup_visit_dim d)
{
    const struct schema_dim *sd = schema_visit_dim((int)d);
    return sd ? sd->name : "?";
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
    for (size_t i = 0; i < SD__COUNT; i++)
        r->last_row[i].day = UINT32_MAX;
    return r;
}

void rollup_set_prefix(struct rollup *r, const char *prefix)
{
    if (strcmp(r->prefix, prefix) != 0) {
        free(r->prefix);
        r->prefix = xstrdup(prefix);
    }
}

void rollup_reset(struct rollup *r)
{
    for (size_t i = 0; i < r->ndays; i++) {
        free(r->days[i].visitors);
        free(r->days[i].hour_visitors);
    }
    for (size_t i = 0; i < r->nrows; i++)
        free(r->rows[i].visitors);
    r->ndays = r->nrows = r->nsessions = r->nhits = r->nvisitors = r->nevents = 0;
    for (size_t i = 0; i < SD__COUNT; i++)
        r->last_row[i].day = UINT32_MAX;
    smap_clear(&r->day_map);
    smap_clear(&r->row_map);
    smap_clear(&r->session_map);
    smap_clear(&r->visitor_map);
    if (r->seen.slots)
        memset(r->seen.slots, 0, r->seen.cap * sizeof *r->seen.slots);
    r->seen.n = 0;
    rollup_hours_reset(&r->hours);
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
    free(r->sorted);
    free(r->order);
    free(r->visitors);
    free(r->masks);
    smap_free(&r->day_map);
    smap_free(&r->row_map);
    smap_free(&r->session_map);
    smap_free(&r->visitor_map);
    free(r->seen.slots);
    rollup_hours_free(&r->hours);
    free(r->prefix);
    free(r);
}

/* Append `visitor` to a distinct-visitor list owned by `owner`. */
static void visitors_add(struct rollup *r, uint32_t owner, uint32_t visitor, uint32_t **list,
                         size_t *n, size_t *cap)
{
    if (visitor == ROLLUP_NO_VISITOR || !pairset_add(&r->seen, owner, visitor))
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
        GROW(r->visitors, r->nvisitors, r->visitors_cap);
        if (r->masks_cap < r->visitors_cap) {
            r->masks_cap = r->visitors_cap;
            r->masks = xrealloc(r->masks, r->masks_cap * sizeof *r->masks);
        }
        r->masks[r->nvisitors] = (struct visitor_mask){UINT32_MAX, 0};
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
        char rkey[EV_SITE_MAX + 64];
        if (!rollup_key_realtime(rkey, sizeof rkey, r->prefix, site))
            return -1;
        d->realtime_key = arena_dup(&r->arena, rkey, strlen(rkey));
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

/* Count one event into row (day, dim, value); returns the row's value as
 * stored (stable until reset), or "" when the value is empty or unusable. */
static const char *row_count(struct rollup *r, uint32_t day, const char *dim,
                             enum schema_dim_id id, const char *value, bool pageview,
                             uint32_t visitor, enum schema_visitors visitors)
{
    bool visitors_at_visit = visitors == SCHEMA_U_PER_VISIT || visitors == SCHEMA_U_NONE;
    if (value[0] == '\0')
        return "";
    /* consecutive events often share a dimension's value (a site's few
     * browsers, countries, devices): the last row of each dim first */
    size_t vlen = strlen(value);
    struct row_cache *rc = id != SD_PROP ? &r->last_row[id] : NULL;
    uint32_t idx;
    if (rc && rc->day == day && rc->len == vlen && memcmp(rc->value, value, vlen) == 0) {
        idx = rc->idx;
        goto count;
    }
    char key[ROW_KEY_MAX];
    size_t klen = row_key(key, day, dim, value);
    if (klen == 0)
        return "";
    bool created;
    const char *stored;
    idx = smap_intern(&r->row_map, &r->arena, key, klen, (uint32_t)r->nrows, &created, &stored);
    if (rc && vlen < sizeof rc->value) {
        rc->day = day;
        rc->len = vlen;
        rc->idx = idx;
        memcpy(rc->value, value, vlen);
    }
    if (created) {
        GROW(r->rows, r->nrows, r->rows_cap);
        struct rollup_row *row = &r->rows[r->nrows++];
        memset(row, 0, sizeof *row);
        row->day = day;
        row->dim = stored + 4; /* dim and value point into the map's key copy */
        row->value = stored + 4 + strlen(dim) + 1;
        row->visitors_at_visit = visitors_at_visit;
    }
count:;
    struct rollup_row *row = &r->rows[idx];
    row->ev++;
    if (pageview)
        row->pv++;
    if (hourly_dim(id))
        rollup_hours_count(&r->hours, idx, day, r->hour, pageview,
                           visitors == SCHEMA_U_PER_VISIT ? ROLLUP_NO_VISITOR : visitor,
                           visitors == SCHEMA_U_PER_VISITOR ? 1u << id : 0);
    if (visitors == SCHEMA_U_PER_VISITOR && visitor != ROLLUP_NO_VISITOR) {
        /* one row per visitor and day: a mask per visitor instead of the
         * pair set (most of the batch's pairs are of these dims) */
        uint32_t bit = 1u << id; /* SD__COUNT < 32 */
        struct visitor_mask *m = &r->masks[visitor];
        if (m->day != day) {
            m->day = day;
            m->dims = 0;
        }
        if (m->dims & bit)
            return row->value;
        m->dims |= bit;
        GROW(row->visitors, row->nvisitors, row->visitors_cap);
        row->visitors[row->nvisitors++] = visitor;
    } else if (visitors == SCHEMA_U_PER_EVENT)
        visitors_add(r, idx, visitor, &row->visitors, &row->nvisitors, &row->visitors_cap);
    return row->value;
}

/* row_count for a dimension of the schema table. */
static const char *row_dim(struct rollup *r, uint32_t day, enum schema_dim_id id,
                           const char *value, bool pageview, uint32_t visitor)
{
    const struct schema_dim *d = schema_dim(id);
    return row_count(r, day, d->name, id, value, pageview, visitor, d->visitors);
}

static uint32_t session_index(struct rollup *r, uint32_t day, uint32_t visitor)
{
    const struct rollup_day *d = &r->days[day];
    const char *vh = r->visitors[visitor];
    /* the checkpoint field "<site>:<visitor>" is also the map key */
    char key[EV_SITE_MAX + 24];
    size_t sl = strlen(d->site);
    if (sl + 1 + 16 + 1 > sizeof key)
        abort(); /* sites are shorter than EV_SITE_MAX: cannot happen */
    memcpy(key, d->site, sl);
    key[sl] = ':';
    memcpy(key + sl + 1, vh, 16);
    key[sl + 17] = '\0';
    bool created;
    const char *stored;
    uint32_t idx = smap_intern(&r->session_map, &r->arena, key, sl + 17, (uint32_t)r->nsessions,
                               &created, &stored);
    if (created) {
        GROW(r->sessions, r->nsessions, r->sessions_cap);
        struct rollup_session *s = &r->sessions[r->nsessions++];
        s->key = stored;
        s->site = d->site;
        s->realtime_key = d->realtime_key;
        s->visitor = visitor;
    }
    return idx;
}

/* "<a><sep><b>" into out (no printf: this runs per event). */
static bool join2(char *out, size_t outlen, const char *a, char sep, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    if (al + 1 + bl + 1 > outlen)
        return false;
    memcpy(out, a, al);
    out[al] = sep;
    memcpy(out + al + 1, b, bl + 1);
    return true;
}

/* Each of the site's goals the event completes is a row of `goal`, named
 * as Plausible names goals: the event name for "event:<name>", "Visit
 * <path>" for "page:<path>" (docs/API.md "Goals"). */
static void count_goals(struct rollup *r, uint32_t di, const char *goals,
                        const struct event_record *ev, bool pageview, uint32_t vid,
                        const char **done, uint8_t *ndone)
{
    for (const char *line = goals; *line;) {
        size_t len = strcspn(line, "\n");
        if (registry_goal_line_matches(line, len, ev->name, ev->path)) {
            char name[8 + REG_FIELD_MAX];
            bool page = line[0] == 'p';
            size_t skip = page ? 5 : 6, n = 0;
            if (page) {
                memcpy(name, "Visit ", 6);
                n = 6;
            }
            if (n + len - skip < sizeof name) {
                memcpy(name + n, line + skip, len - skip);
                name[n + len - skip] = '\0';
                const char *row = row_dim(r, di, SD_GOAL, name, pageview, vid);
                if (row[0] && *ndone < ROLLUP_HIT_GOALS)
                    done[(*ndone)++] = row;
            }
        }
        line += len + (line[len] == '\n');
    }
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
    /* the site's local day and hour (docs/API.md "Time zones"): for a
     * zoned site the day is taken from ts, not from the collector's UTC day */
    const struct rollup_site *conf = r->site_fn ? r->site_fn(r->site_arg, ev->site) : NULL;
    const struct tz_zone *zone = conf ? conf->zone : NULL;
    int32_t local;
    int hour;
    tz_local(zone, ev->ts, &local, &hour);
    r->hour = (unsigned)hour;
    char zoned_day[11];
    const char *day = ev->day;
    if (zone) {
        period_format_day(local, zoned_day);
        day = zoned_day;
        expire_at = rollup_day_expire_at(day, r->retention_days);
        if (expire_at < 0) {
            str_format(err, errlen, "ts: outside the calendar");
            return ROLLUP_INVALID;
        }
    }
    if (expire_at <= now)
        return ROLLUP_EXPIRED;
    if (ev->visitor[0] && !visitor_hash_valid(ev->visitor)) {
        str_format(err, errlen, "vh: not 16 hex digits");
        return ROLLUP_INVALID;
    }
    uint32_t di;
    if (day_index(r, ev->site, day, expire_at, &di) != 0) {
        str_format(err, errlen, "site: too long for a key name");
        return ROLLUP_INVALID;
    }
    struct rollup_day *d = &r->days[di];
    bool pageview = strcmp(ev->name, "pageview") == 0;
    bool measurement = !pageview && rollup_is_measurement(ev->name);
    uint32_t vid = visitor_id(r, ev->visitor);

    if (!measurement) {
        d->totals[ROLLUP_T_EVENTS]++;
        d->hour_ev[hour]++;
    }
    if (pageview) {
        d->totals[ROLLUP_T_PAGEVIEWS]++;
        d->hour_pv[hour]++;
    }
    if (vid != ROLLUP_NO_VISITOR &&
        pairset_add(&r->seen, HOUR_OWNER_BITS | (di * 24 + (uint32_t)hour), vid)) {
        GROW(d->hour_visitors, d->nhour_visitors, d->hour_visitors_cap);
        d->hour_visitors[d->nhour_visitors++] = (struct rollup_hour_visitor){vid, (uint8_t)hour};
    }
    if (ev->engaged_ms >= 0) {
        d->totals[ROLLUP_T_ENGAGED_MS] += ev->engaged_ms;
        d->totals[ROLLUP_T_ENGAGED_N]++;
    }
    visitors_add(r, DAY_OWNER_BIT | di, vid, &d->visitors, &d->nvisitors, &d->visitors_cap);

    const char *visit[ROLLUP_V_COUNT], *goals_done[ROLLUP_HIT_GOALS];
    uint8_t ngoals = 0;
    for (size_t i = 0; i < ROLLUP_V_COUNT; i++)
        visit[i] = "";
    if (!measurement) {
        char region[8], version[EV_UA_FIELD_MAX + 20];
        enum ref_medium medium;
        const char *named = referrers_source(r->referrers, ev->referrer, &medium);
        const char *source = named               ? named
                           : ev->referrer[0]     ? ev->referrer
                           : ev->utm_source[0]   ? ev->utm_source
                                                 : ROLLUP_DIRECT;
        const char *channel = referrers_channel_name(referrers_channel(
            r->referrers, ev->referrer, ev->utm_source, ev->utm_medium, ev->paid));
        region[0] = version[0] = '\0';
        if (ev->country[0] && ev->region[0])
            join2(region, sizeof region, ev->country, '-', ev->region);
        if (ev->browser[0] && ev->browser_major[0])
            join2(version, sizeof version, ev->browser, ' ', ev->browser_major);
        const char *device = ev->device == DEVICE_UNKNOWN ? "" : device_class_name(ev->device);

        visit[ROLLUP_V_ENTRY_PAGE] = row_dim(r, di, SD_PAGE, ev->path, pageview, vid);
        visit[ROLLUP_V_SOURCE] = row_dim(r, di, SD_SOURCE, source, pageview, vid);
        visit[ROLLUP_V_UTM_SOURCE] =
            row_dim(r, di, SD_UTM_SOURCE, ev->utm_source, pageview, vid);
        visit[ROLLUP_V_UTM_MEDIUM] =
            row_dim(r, di, SD_UTM_MEDIUM, ev->utm_medium, pageview, vid);
        visit[ROLLUP_V_UTM_CAMPAIGN] =
            row_dim(r, di, SD_UTM_CAMPAIGN, ev->utm_campaign, pageview, vid);
        visit[ROLLUP_V_COUNTRY] = row_dim(r, di, SD_COUNTRY, ev->country, pageview, vid);
        visit[ROLLUP_V_REGION] = row_dim(r, di, SD_REGION, region, pageview, vid);
        visit[ROLLUP_V_CITY] = row_dim(r, di, SD_CITY, ev->city, pageview, vid);
        visit[ROLLUP_V_BROWSER] = row_dim(r, di, SD_BROWSER, ev->browser, pageview, vid);
        visit[ROLLUP_V_BROWSER_VERSION] =
            row_dim(r, di, SD_BROWSER_VERSION, version, pageview, vid);
        visit[ROLLUP_V_OS] = row_dim(r, di, SD_OS, ev->os, pageview, vid);
        visit[ROLLUP_V_DEVICE] = row_dim(r, di, SD_DEVICE, device, pageview, vid);
        visit[ROLLUP_V_SCREEN] = row_dim(r, di, SD_SCREEN, ev->screen, pageview, vid);
        visit[ROLLUP_V_CHANNEL] = row_dim(r, di, SD_CHANNEL, channel, pageview, vid);
        visit[ROLLUP_V_REFERRER] = row_dim(r, di, SD_REFERRER, ev->referrer, pageview, vid);
        visit[ROLLUP_V_UTM_TERM] = row_dim(r, di, SD_UTM_TERM, ev->utm_term, pageview, vid);
        visit[ROLLUP_V_UTM_CONTENT] =
            row_dim(r, di, SD_UTM_CONTENT, ev->utm_content, pageview, vid);
        row_dim(r, di, SD_NAME, ev->name, pageview, vid);
        for (size_t i = 0; i < ev->nprops && i < EV_PROPS_MAX; i++) {
            const struct event_prop *p = &ev->props[i];
            char dim[8 + EV_PROP_KEY_MAX];
            if (!p->key[0] || !p->value[0] || !join2(dim, sizeof dim, "prop", ':', p->key))
                continue;
            row_dim(r, di, SD_PROP_KEY, p->key, pageview, vid);
            row_count(r, di, dim, SD_PROP, p->value, pageview, vid,
                      schema_dim(SD_PROP)->visitors);
        }
        if (conf && conf->goals && conf->goals[0])
            count_goals(r, di, conf->goals, ev, pageview, vid, goals_done, &ngoals);
    }
    if (vid != ROLLUP_NO_VISITOR) {
        GROW(r->hits, r->nhits, r->hits_cap);
        struct rollup_hit *h = &r->hits[r->nhits];
        h->session = session_index(r, di, vid);
        h->day = di;
        h->ts = ev->ts;
        h->pageview = pageview;
        h->interactive = !pageview && !measurement && ev->interactive;
        h->scroll = ev->scroll_depth >= 0 && ev->scroll_depth <= 100 ? ev->scroll_depth : -1;
        h->page = visit_page_hash(ev->path);
        h->hour = (uint8_t)hour;
        h->seq = (uint32_t)r->nhits;
        memcpy(h->visit, visit, sizeof visit);
        memcpy(h->goals, goals_done, ngoals * sizeof *goals_done);
        h->ngoals = ngoals;
        r->nhits++;
    }
    r->nevents++;
    return ROLLUP_ADDED;
}

/* qsort_r-free ordering of hit indexes: the hits being sorted */
static const struct rollup_hit *sorting;

static int hit_cmp(const void *a, const void *b)
{
    const struct rollup_hit *x = &sorting[*(const uint32_t *)a],
                            *y = &sorting[*(const uint32_t *)b];
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void rollup_finish(struct rollup *r)
{
    if (r->nhits < 2)
        return;
    /* sort 4-byte indexes, not the ~140-byte hits, then move each hit once */
    if (r->order_cap < r->nhits) {
        r->order_cap = r->nhits;
        r->order = xrealloc(r->order, r->order_cap * sizeof *r->order);
        r->sorted = xrealloc(r->sorted, r->order_cap * sizeof *r->sorted);
    }
    for (size_t i = 0; i < r->nhits; i++)
        r->order[i] = (uint32_t)i;
    sorting = r->hits;
    if (r->nhits > 1)
        qsort(r->order, r->nhits, sizeof *r->order, hit_cmp);
    sorting = NULL;
    for (size_t i = 0; i < r->nhits; i++)
        r->sorted[i] = r->hits[r->order[i]];
    memcpy(r->hits, r->sorted, r->nhits * sizeof *r->hits);
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

const struct rollup_hour_row *rollup_hour_rows(const struct rollup *r, size_t *n)
{
    *n = r->hours.n;
    return r->hours.rows;
}

size_t rollup_nvisitors(const struct rollup *r)
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

bool rollup_key_session(char *out, size_t outlen, const char *site, const char *visitor)
{
    return str_format(out, outlen, "%s:%s", site, visitor);
}

bool rollup_key_realtime(char *out, size_t outlen, const char *prefix, const char *site)
{
    return str_format(out, outlen, "%srt:%s:", prefix, site);
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

void rollup_set_sites(struct rollup *r, rollup_site_fn fn, void *arg)
{
    r->site_fn = fn;
    r->site_arg = arg;
}

void rollup_set_referrers(struct rollup *r, const struct referrers *db)
{
    r->referrers = db;
}
