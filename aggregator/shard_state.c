/* shard_state.c - one owned shard's memory (see shard_state.h).
 *
 * Sessions, rows and expiries live in arenas that are rebuilt, never
 * freed piecemeal: a sweep copies what stays into fresh ones. It never
 * talks to Redis and never logs. */
#include "shard_state.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void shard_state_init(struct shard_state *st, unsigned shard)
{
    memset(st, 0, sizeof *st);
    st->shard = shard;
    shard_key_prefix(st->prefix, sizeof st->prefix, shard);
    str_format(st->stream_key, sizeof st->stream_key, "%sevents", st->prefix);
    str_format(st->epoch_key, sizeof st->epoch_key, "%sepoch", st->prefix);
    str_format(st->lease_key, sizeof st->lease_key, "%slease", st->prefix);
    str_format(st->sessions_key, sizeof st->sessions_key, "%ssessions", st->prefix);
    str_format(st->sites_key, sizeof st->sites_key, "%ssites", st->prefix);
    str_copy(st->last_id, sizeof st->last_id, "0-0", 3);
    st->events_per_entry = SHARD_FIRST_EVENTS_PER_ENTRY;
}

static void rows_free(struct shard_state *st)
{
    smap_free(&st->pk_map);
    smap_free(&st->row_map);
    smap_free(&st->expiry_map);
    arena_free(&st->row_arena);
    free(st->pks);
    st->pks = NULL;
    st->npks = st->pks_cap = 0;
}

static void seen_free(struct shard_state *st)
{
    smap_free(&st->seen_map);
    arena_free(&st->seen_arena);
    free(st->seen_masks);
    st->seen_masks = NULL;
    st->nseen = st->seen_cap = 0;
}

void shard_state_clear(struct shard_state *st)
{
    seen_free(st);
    smap_free(&st->session_map);
    smap_free(&st->visit_rows_map);
    arena_free(&st->session_arena);
    free(st->sessions);
    st->sessions = NULL;
    st->nsessions = st->sessions_cap = 0;
    rows_free(st);
    st->watermark = 0;
    str_copy(st->last_id, sizeof st->last_id, "0-0", 3);
}

void shard_state_free(struct shard_state *st)
{
    shard_state_clear(st);
}

/* ---- sessions ---- */

const struct shard_session *shard_session_find(const struct shard_state *st, const char *field,
                                               size_t len)
{
    uint32_t i;
    return smap_find(&st->session_map, field, len, &i) ? &st->sessions[i] : NULL;
}

void shard_session_put(struct shard_state *st, const struct shard_session *s)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&st->session_map, &st->session_arena, s->field, strlen(s->field),
                             (uint32_t)st->nsessions, &created, &stored);
    if (created) {
        GROW(st->sessions, st->nsessions, st->sessions_cap);
        st->nsessions++;
    }
    st->sessions[i] = *s;
    st->sessions[i].field = stored;
    /* rows and exit rows: one copy per distinct string, not per put */
    if (s->rows)
        smap_intern(&st->visit_rows_map, &st->session_arena, s->rows, s->rows_len, 0, &created,
                    &st->sessions[i].rows);
    if (s->exit && s->exit_len)
        smap_intern(&st->visit_rows_map, &st->session_arena, s->exit, s->exit_len, 0, &created,
                    &st->sessions[i].exit);
    else if (s->exit)
        st->sessions[i].exit = ""; /* a visit whose pages have no path */
}

void shard_session_filter(struct shard_state *st,
                          bool (*keep)(void *arg, const struct shard_session *s), void *arg)
{
    struct shard_session *old = st->sessions;
    size_t n = st->nsessions;
    struct arena_chunk *old_arena = st->session_arena;
    st->session_arena = NULL;
    st->sessions = NULL;
    st->nsessions = st->sessions_cap = 0;
    smap_free(&st->session_map);
    smap_free(&st->visit_rows_map);
    for (size_t i = 0; i < n; i++)
        if (keep(arg, &old[i]))
            shard_session_put(st, &old[i]);
    free(old);
    arena_free(&old_arena);
}

/* A number in decimal at p (a minus sign first when negative). */
static char *put_ll(char *p, long long v)
{
    if (v < 0) {
        *p++ = '-';
        return uint_to_dec(p, (uint64_t)0 - (uint64_t)v);
    }
    return uint_to_dec(p, (uint64_t)v);
}

size_t shard_session_encode(const struct shard_session *s, char *buf, size_t cap)
{
    /* four numbers of at most 21 bytes, four spaces, the day: no printf,
     * this runs for every visitor of every batch */
    if (cap < SHARD_SESSION_VALUE_MAX)
        return 0;
    char *p = buf;
    const long long nums[4] = {s->pv, s->start, s->last, s->exp};
    for (int i = 0; i < 4; i++) {
        p = put_ll(p, nums[i]);
        *p++ = ' ';
    }
    memcpy(p, s->day, 10);
    p += 10;
    *p++ = ' ';
    p = uint_to_dec(p, s->page);
    *p++ = ' ';
    p = put_ll(p, s->scroll < 0 ? -1 : s->scroll > 100 ? 100 : s->scroll);
    *p++ = ' ';
    p = put_ll(p, s->hour < 0 || s->hour > 23 ? 0 : s->hour);
    if (s->rows && s->exit) {
        /* " <exit_ts> <rows><exit row>" */
        *p++ = ' ';
        p = put_ll(p, s->exit_ts);
        *p++ = ' ';
        size_t room = cap - (size_t)(p - buf) - 1;
        if (s->rows_len > room)
            return 0;
        memcpy(p, s->rows, s->rows_len);
        p += s->rows_len;
        if (visit_rows_exit_is_entry(s->rows, s->rows_len, s->exit, s->exit_len)) {
            *p++ = VISIT_ROWS_EXIT_IS_ENTRY; /* most visits: one page, or back to it */
        } else {
            size_t n = visit_rows_put(s->exit, s->exit_len, p, cap - (size_t)(p - buf) - 1);
            if (!n)
                return 0;
            p += n;
        }
    }
    *p = '\0';
    return (size_t)(p - buf);
}

/* The tail "<exit_ts> <rows><exit row>" into s (pointers into value). */
static bool decode_rows(const char *value, size_t len, struct shard_session *s)
{
    size_t sp = 0;
    while (sp < len && value[sp] != ' ')
        sp++;
    long long exit_ts;
    if (sp == 0 || sp >= len ||
        !safe_strtoll_n(value, sp, -(1LL << 62), 1LL << 62, &exit_ts))
        return false;
    const char *items[VISIT_ROWS];
    size_t lens[VISIT_ROWS], used;
    const char *rows = value + sp + 1;
    size_t rows_room = len - sp - 1;
    if (!visit_rows_scan(rows, rows_room, ROLLUP_V_COUNT, items, lens, &used))
        return false;
    s->exit_ts = exit_ts;
    s->rows = rows;
    s->rows_len = used;
    if (used + 1 == rows_room && rows[used] == VISIT_ROWS_EXIT_IS_ENTRY) {
        s->exit = items[ROLLUP_V_ENTRY_PAGE];
        s->exit_len = lens[ROLLUP_V_ENTRY_PAGE];
        return true;
    }
    size_t exit_used;
    if (!visit_rows_scan(rows + used, rows_room - used, 1, &s->exit, &s->exit_len, &exit_used) ||
        used + exit_used != rows_room)
        return false;
    return true;
}

bool shard_session_decode(const char *value, size_t len, struct shard_session *s)
{
    long long num[4];
    size_t at = 0;
    for (int k = 0; k < 4; k++) {
        size_t end = at;
        while (end < len && value[end] != ' ')
            end++;
        if (end == at || end == len ||
            !safe_strtoll_n(value + at, end - at, -(1LL << 62), 1LL << 62, &num[k]))
            return false;
        at = end + 1;
    }
    if (len - at < 10 || num[0] < 1)
        return false;
    s->page = 0;
    s->scroll = -1;
    s->hour = 0;
    s->exit_ts = 0;
    s->rows = s->exit = NULL;
    s->rows_len = s->exit_len = 0;
    if (len - at > 10) {
        /* " <page> <scroll> <hour>" */
        size_t p = at + 11, sp = p;
        while (sp < len && value[sp] != ' ')
            sp++;
        unsigned long long page = 0;
        long long depth;
        if (value[at + 10] != ' ' || sp == p || sp >= len || sp - p > 20)
            return false;
        for (size_t i = p; i < sp; i++) {
            if (value[i] < '0' || value[i] > '9' || page > (UINT64_MAX - 9) / 10)
                return false;
            page = page * 10 + (unsigned)(value[i] - '0');
        }
        size_t hp = sp + 1;
        while (hp < len && value[hp] != ' ')
            hp++;
        size_t ep = hp + 1; /* the end of the hour */
        while (ep < len && value[ep] != ' ')
            ep++;
        long long hour;
        if (hp >= len || !safe_strtoll_n(value + sp + 1, hp - sp - 1, -1, 100, &depth) ||
            !safe_strtoll_n(value + hp + 1, ep - hp - 1, 0, 23, &hour))
            return false;
        s->page = page;
        s->scroll = (int)depth;
        s->hour = (int)hour;
        if (ep < len && !decode_rows(value + ep + 1, len - ep - 1, s))
            return false;
    }
    s->pv = num[0];
    s->start = num[1];
    s->last = num[2];
    s->exp = num[3];
    memcpy(s->day, value + at, 10);
    s->day[10] = '\0';
    return true;
}

/* ---- rows ---- */

struct shard_rows *shard_rows_find(struct shard_state *st, const char *key)
{
    uint32_t i;
    if (!smap_find(&st->pk_map, key, strlen(key), &i))
        return NULL;
    st->pks[i].used = true;
    return &st->pks[i];
}

struct shard_rows *shard_rows_add(struct shard_state *st, const char *key)
{
    bool created;
    const char *stored;
    uint32_t i = smap_intern(&st->pk_map, &st->row_arena, key, strlen(key), (uint32_t)st->npks,
                             &created, &stored);
    if (created) {
        GROW(st->pks, st->npks, st->pks_cap);
        st->pks[st->npks++] = (struct shard_rows){stored, 0, true};
    }
    return &st->pks[i];
}

/* "<4-byte pk index><value>" on the stack when short, else on the heap. */
static size_t row_key(const struct shard_state *st, const struct shard_rows *pk,
                      const char *value, char *buf, size_t cap, char **heap)
{
    uint32_t index = (uint32_t)(pk - st->pks);
    size_t len = strlen(value);
    char *k = buf;
    *heap = NULL;
    if (4 + len > cap)
        k = *heap = xmalloc(4 + len);
    memcpy(k, &index, 4);
    memcpy(k + 4, value, len);
    return 4 + len;
}

bool shard_row_exists(const struct shard_state *st, const struct shard_rows *pk,
                      const char *value)
{
    char buf[512], *heap;
    size_t len = row_key(st, pk, value, buf, sizeof buf, &heap);
    uint32_t v;
    bool found = smap_find(&st->row_map, heap ? heap : buf, len, &v);
    free(heap);
    return found;
}

void shard_row_add(struct shard_state *st, const struct shard_rows *pk, const char *value)
{
    char buf[512], *heap;
    size_t len = row_key(st, pk, value, buf, sizeof buf, &heap);
    bool created;
    smap_intern(&st->row_map, &st->row_arena, heap ? heap : buf, len, 0, &created, NULL);
    free(heap);
}

void shard_rows_sweep(struct shard_state *st)
{
    struct smap old_pk = st->pk_map, old_rows = st->row_map;
    struct shard_rows *old = st->pks;
    size_t n = st->npks;
    struct arena_chunk *old_arena = st->row_arena;
    uint32_t *remap = xmalloc((n ? n : 1) * sizeof *remap);
    memset(&st->pk_map, 0, sizeof st->pk_map);
    memset(&st->row_map, 0, sizeof st->row_map);
    smap_free(&st->expiry_map);
    st->row_arena = NULL;
    st->pks = NULL;
    st->npks = st->pks_cap = 0;
    for (size_t i = 0; i < n; i++) {
        remap[i] = UINT32_MAX;
        if (!old[i].used)
            continue;
        struct shard_rows *pk = shard_rows_add(st, old[i].key);
        pk->rows = old[i].rows;
        pk->used = false;
        remap[i] = (uint32_t)(pk - st->pks);
    }
    for (size_t i = 0; i < old_rows.cap; i++) {
        const struct smap_slot *s = &old_rows.slots[i];
        if (!s->key)
            continue;
        uint32_t index;
        memcpy(&index, s->key, 4);
        if (index >= n || remap[index] == UINT32_MAX)
            continue;
        char *k = xmalloc(s->len);
        memcpy(k, &remap[index], 4);
        memcpy(k + 4, s->key + 4, s->len - 4);
        bool created;
        smap_intern(&st->row_map, &st->row_arena, k, s->len, 0, &created, NULL);
        free(k);
    }
    free(remap);
    free(old);
    smap_free(&old_pk);
    smap_free(&old_rows);
    arena_free(&old_arena);
}

bool shard_expiry_set(const struct shard_state *st, const char *key, size_t len)
{
    uint32_t v;
    return smap_find(&st->expiry_map, key, len, &v);
}

void shard_expiry_mark(struct shard_state *st, const char *key, size_t len)
{
    bool created;
    smap_intern(&st->expiry_map, &st->row_arena, key, len, 0, &created, NULL);
}

/* ---- per-visitor HyperLogLogs already holding a visitor ---- */

uint32_t shard_seen_get(const struct shard_state *st, const char *key, size_t len)
{
    uint32_t i;
    return smap_find(&st->seen_map, key, len, &i) ? st->seen_masks[i] : 0;
}

void shard_seen_add(struct shard_state *st, const char *key, size_t len, uint32_t bits)
{
    uint32_t i;
    if (smap_find(&st->seen_map, key, len, &i)) {
        st->seen_masks[i] |= bits;
        return;
    }
    if (st->nseen >= SHARD_SEEN_MAX)
        return;
    bool created;
    smap_intern(&st->seen_map, &st->seen_arena, key, len, (uint32_t)st->nseen, &created, NULL);
    GROW(st->seen_masks, st->nseen, st->seen_cap);
    st->seen_masks[st->nseen++] = bits;
}

void shard_seen_sweep(struct shard_state *st, const char *day)
{
    struct smap old = st->seen_map;
    uint32_t *masks = st->seen_masks;
    struct arena_chunk *old_arena = st->seen_arena;
    memset(&st->seen_map, 0, sizeof st->seen_map);
    st->seen_arena = NULL;
    st->seen_masks = NULL;
    st->nseen = st->seen_cap = 0;
    for (size_t i = 0; i < old.cap; i++) {
        const struct smap_slot *slot = &old.slots[i];
        if (slot->key && slot->len > 10 && memcmp(slot->key, day, 10) >= 0)
            shard_seen_add(st, slot->key, slot->len, masks[slot->value]);
    }
    free(masks);
    smap_free(&old);
    arena_free(&old_arena);
}
