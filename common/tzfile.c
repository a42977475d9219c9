/* tzfile.c - UTC offsets from TZif files (see tzfile.h). Reads files only
 * under the zoneinfo directory, by names checked like
 * registry_timezone_valid; never logs; never touches the TZ variable. */
#include "tzfile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

struct tz_zone {
    size_t n;            /* transitions */
    int64_t *at;         /* transition times, ascending */
    int32_t *off;        /* offset from each transition on */
    int32_t before;      /* offset before the first transition */
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static bool header(const unsigned char *p, size_t len, struct tzif_counts *c)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type >= 1 && c->type <= 256 && c->time <= 100000 && c->leap <= 10000 &&
           c->chars <= 100000 && c->isut <= c->type && c->isstd <= c->type;
}

static size_t block_size(const struct tzif_counts *c, size_t tsize)
{
    return (size_t)c->time * tsize + c->time + (size_t)c->type * 6 + c->chars +
           (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

struct tz_zone *tz_parse(const unsigned char *buf, size_t len)
{
    struct tzif_counts c;
    if (!header(buf, len, &c))
        return NULL;
    const unsigned char *p = buf + 44;
    size_t tsize = 4;
    size_t v1 = block_size(&c, 4);
    if (buf[4] >= '2') {
        /* version 2+: skip the 32-bit block, read the 64-bit one */
        if (44 + v1 > len || !header(buf + 44 + v1, len - 44 - v1, &c))
            return NULL;
        p = buf + 44 + v1 + 44;
        tsize = 8;
    }
    if ((size_t)(p - buf) + block_size(&c, tsize) > len)
        return NULL;
    const unsigned char *times = p, *idx = p + (size_t)c.time * tsize,
                        *types = idx + c.time;
    struct tz_zone *z = xcalloc(1, sizeof *z);
    z->n = c.time;
    z->at = xcalloc(c.time ? c.time : 1, sizeof *z->at);
    z->off = xcalloc(c.time ? c.time : 1, sizeof *z->off);
    for (size_t i = 0; i < c.time; i++) {
        z->at[i] = tsize == 8 ? be64(times + 8 * i) : (int32_t)be32(times + 4 * i);
        unsigned t = idx[i];
        if (t >= c.type || (i && z->at[i] <= z->at[i - 1])) {
            tz_free(z);
            return NULL;
        }
        z->off[i] = (int32_t)be32(types + 6 * t);
    }
    /* before the first transition: the first standard-time type (RFC 8536
     * 3.2: type 0 unless the file says otherwise; type 0 is the usual) */
    z->before = (int32_t)be32(types);
    for (size_t i = 0; i < z->n; i++)
        if (z->off[i] < -86400 || z->off[i] > 86400) {
            tz_free(z);
            return NULL;
        }
    if (z->before < -86400 || z->before > 86400) {
        tz_free(z);
        return NULL;
    }
    return z;
}

void tz_free(struct tz_zone *z)
{
    if (!z)
        return;
    free(z->at);
    free(z->off);
    free(z);
}

int32_t tz_offset(const struct tz_zone *z, int64_t ts)
{
    if (!z)
        return 0;
    if (z->n == 0 || ts < z->at[0])
        return z->before;
    size_t lo = 0, hi = z->n; /* the last transition at or before ts */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= ts)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[lo];
}

void tz_local(const struct tz_zone *z, int64_t ts, int32_t *day, int *hour)
{
    int64_t local = ts + tz_offset(z, ts);
    int64_t d = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    *day = (int32_t)d;
    *hour = (int)((local - d * 86400) / 3600);
}

/* ---- the process-wide cache of loaded zones ---- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *name;
    struct tz_zone *zone; /* NULL: not loadable (UTC) */
} cache[TZ_ZONES_MAX];
static size_t ncache;

static struct tz_zone *load(const char *name)
{
    if (!registry_timezone_valid(name))
        return NULL;
    const char *dir = getenv("VEIL_ZONEINFO");
    char path[512];
    str_format(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = xmalloc(TZ_FILE_MAX);
    size_t len = fread(buf, 1, TZ_FILE_MAX, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    struct tz_zone *z = whole ? tz_parse(buf, len) : NULL;
    free(buf);
    return z;
}

const struct tz_zone *tz_get(const char *name)
{
    if (!name || !name[0] || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
        return NULL;
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < ncache; i++)
        if (strcmp(cache[i].name, name) == 0) {
            struct tz_zone *z = cache[i].zone;
            pthread_mutex_unlock(&cache_lock);
            return z;
        }
    struct tz_zone *z = NULL;
    if (ncache < TZ_ZONES_MAX) { /* past the bound (never with tzdata's names): UTC */
        z = load(name);
        cache[ncache].name = xmalloc(strlen(name) + 1);
        memcpy(cache[ncache].name, name, strlen(name) + 1);
        cache[ncache].zone = z;
        ncache++;
    }
    pthread_mutex_unlock(&cache_lock);
    return z;
}
