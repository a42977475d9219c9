/* query_visit_rows.c - per-row bounces, visit seconds and exit pages of a
 * breakdown (see query_visit_rows.h). Reads only; never logs. */
#include "query_visit_rows.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "util.h"

enum { VR_VIS = 0, VR_NBN, VR_DUR, VR__COUNT };
static const char *const vr_metric[VR__COUNT] = {"vis", "nbn", "dur"};

static int fail(redisContext *rc, redisReply *r, const char *what, char *err, size_t errlen)
{
    if (!r)
        str_format(err, errlen, "redis: %s", rc->errstr[0] ? rc->errstr : "no reply");
    else
        str_format(err, errlen, "redis: %s answered type %d", what, r->type);
    if (r)
        freeReplyObject(r);
    return -1;
}

static long long reply_ll(const redisReply *r)
{
    long long v = 0;
    if (r && r->type == REDIS_REPLY_STRING && !safe_strtoll(r->str, -(1LL << 62), 1LL << 62, &v))
        v = 0;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    return v;
}

int query_visit_rows(redisContext *rc, const char *site, const char *dim,
                     const struct period_range *range, struct stats_rows *rows,
                     long long *missing_days, char *err, size_t errlen)
{
    *missing_days = 0;
    long ndays = period_range_days(range);
    if (ndays <= 0)
        return 0;
    char prefix[SHARD_PREFIX_MAX];
    query_site_prefix(site, prefix);
    /* 1: which days counted every visit with its rows */
    for (long d = 0; d < ndays; d++) {
        char day[11];
        period_format_day(range->first + (period_day)d, day);
        if (redisAppendCommand(rc, "HMGET %sd:%s:%s:totals visits row_visits", prefix, site,
                               day) != REDIS_OK)
            return fail(rc, NULL, "HMGET", err, errlen);
    }
    bool *complete = xcalloc((size_t)ndays, sizeof *complete);
    int status = 0;
    for (long d = 0; d < ndays; d++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            free(complete);
            return fail(rc, NULL, "HMGET", err, errlen);
        }
        if (status == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2)) {
            status = fail(rc, r, "HMGET", err, errlen);
            continue;
        }
        if (status == 0) {
            long long visits = reply_ll(r->element[0]), counted = reply_ll(r->element[1]);
            complete[d] = visits == counted;
            *missing_days += visits != counted;
        }
        freeReplyObject(r);
    }
    if (status != 0) {
        free(complete);
        return status;
    }
    /* 2: the rows' vis, nbn (visits that are no bounce) and dur of those days */
    struct arena_chunk *arena = NULL;
    struct smap index = {0};
    for (size_t i = 0; i < rows->n; i++) {
        bool created;
        smap_intern(&index, &arena, rows->rows[i].value, rows->rows[i].value_len, (uint32_t)i,
                    &created, NULL);
    }
    /* every day complete: a row's visits of those days are its visits, read
     * already; else read the vis rows of the complete days again */
    int first = *missing_days == 0 ? VR_NBN : VR_VIS;
    int per_day = VR__COUNT - first;
    size_t ncmds = 0;
    for (long d = 0; d < ndays; d++) {
        if (!complete[d])
            continue;
        char day[11];
        period_format_day(range->first + (period_day)d, day);
        for (int m = first; m < VR__COUNT; m++) {
            if (redisAppendCommand(rc, "HGETALL %sd:%s:%s:b:%s:%s", prefix, site, day, dim,
                                   vr_metric[m]) != REDIS_OK) {
                status = fail(rc, NULL, "HGETALL", err, errlen);
                break;
            }
            ncmds++;
        }
        if (status != 0)
            break;
    }
    for (size_t c = 0; c < ncmds; c++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            status = fail(rc, NULL, "HGETALL", err, errlen);
            break;
        }
        if (status == 0 && r->type != REDIS_REPLY_ARRAY) {
            status = fail(rc, r, "HGETALL", err, errlen);
            continue;
        }
        for (size_t f = 0; status == 0 && f + 1 < r->elements; f += 2) {
            const redisReply *name = r->element[f];
            uint32_t i;
            if (name->type != REDIS_REPLY_STRING ||
                !smap_find(&index, name->str, name->len, &i))
                continue; /* a row with no visit on any day: nothing to add to */
            long long v = reply_ll(r->element[f + 1]);
            struct stats_row *row = &rows->rows[i];
            switch (first + (int)(c % (size_t)per_day)) {
            case VR_VIS: row->row_visits += v; break;
            case VR_NBN: row->bounces -= v; break; /* + row_visits below */
            default: row->duration_s += v; break;
            }
        }
        freeReplyObject(r);
    }
    smap_free(&index);
    arena_free(&arena);
    free(complete);
    for (size_t i = 0; status == 0 && i < rows->n; i++) {
        if (first == VR_NBN)
            rows->rows[i].row_visits = rows->rows[i].visits;
        rows->rows[i].bounces += rows->rows[i].row_visits; /* bounces = vis - nbn */
    }
    if (status != 0 || strcmp(dim, "exit_page") != 0)
        return status;
    /* exit pages: the exits of complete days; a row every visit left has none */
    size_t kept = 0;
    for (size_t i = 0; i < rows->n; i++) {
        struct stats_row *row = &rows->rows[i];
        row->visits = row->row_visits;
        if (row->visitors > row->visits)
            row->visitors = row->visits; /* see docs/API.md "Exit pages" */
        if (row->visits > 0) {
            rows->rows[kept++] = *row;
        } else {
            free(row->value);
            free(row->days);
        }
    }
    rows->n = kept;
    return 0;
}
