/* registry.c - reading the live site registry (registry.h). Reads only;
 * veil-admin (admin/admin_site.c, admin_token.c) writes. Never holds a
 * plain-text token. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "rcluster.h"
#include "util.h"

redisContext *registry_connect(const char *addr, int timeout_ms, char *err, size_t errlen)
{
    /* the registry's keys share the slot of {reg}: one node of a cluster */
    return rcluster_connect_slot(addr, REG_PREFIX, timeout_ms, err, errlen);
}

long long registry_version(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "GET " REG_VERSION);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_NIL)
        v = 0;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    if (r)
        freeReplyObject(r);
    return v;
}

static void field_copy(char *dst, size_t size, const redisReply *v)
{
    if (v->type == REDIS_REPLY_STRING)
        (void)str_copy(dst, size, v->str, v->len < size ? v->len : size - 1);
    else
        dst[0] = '\0';
}

int registry_site_get(redisContext *rc, const char *id, struct reg_site *out, char *err,
                      size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->shard = -1;
    redisReply *r = redisCommand(rc, "HGETALL " REG_SITE "%s", id);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: %s", r && r->type == REDIS_REPLY_ERROR ? r->str
                                             : rc->errstr[0]                ? rc->errstr
                                                                            : "no answer");
        if (r)
            freeReplyObject(r);
        return -1;
    }
    int found = r->elements > 0;
    if (found)
        (void)str_copy(out->id, sizeof out->id, id, strnlen(id, REG_ID_MAX));
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *k = r->element[i]->str;
        const redisReply *v = r->element[i + 1];
        if (!k)
            continue;
        char num[32];
        if (strcmp(k, "hostnames") == 0)
            field_copy(out->hostnames, sizeof out->hostnames, v);
        else if (strcmp(k, "timezone") == 0)
            field_copy(out->timezone, sizeof out->timezone, v);
        else if (strcmp(k, "goals") == 0)
            field_copy(out->goals, sizeof out->goals, v);
        else if (strcmp(k, "umami_id") == 0)
            field_copy(out->umami_id, sizeof out->umami_id, v);
        else if (strcmp(k, "matomo_id") == 0)
            field_copy(out->matomo_id, sizeof out->matomo_id, v);
        else if (strcmp(k, "shard") == 0) {
            field_copy(num, sizeof num, v);
            out->shard = num[0] ? atol(num) : -1;
        } else if (strcmp(k, "created") == 0) {
            field_copy(num, sizeof num, v);
            out->created = atoll(num);
        }
    }
    freeReplyObject(r);
    return found;
}

/* Glob with '*' only (any run, also empty); everything else literal. */
static bool glob_match(const char *pat, size_t plen, const char *s)
{
    const char *star = NULL, *resume = NULL;
    size_t i = 0;
    while (*s) {
        if (i < plen && pat[i] == '*') {
            star = pat + i++;
            resume = s;
        } else if (i < plen && pat[i] == *s) {
            i++;
            s++;
        } else if (star) {
            i = (size_t)(star - pat) + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (i < plen && pat[i] == '*')
        i++;
    return i == plen;
}

bool registry_goal_line_matches(const char *line, size_t len, const char *name,
                                const char *path)
{
    if (len > 6 && strncmp(line, "event:", 6) == 0)
        return strcmp(name, "pageview") != 0 && glob_match(line + 6, len - 6, name);
    if (len > 5 && strncmp(line, "page:", 5) == 0)
        return strcmp(name, "pageview") == 0 && glob_match(line + 5, len - 5, path);
    return false;
}

bool registry_goal_matches(const struct reg_site *site, const char *name, const char *path)
{
    const char *line = site->goals;
    while (*line) {
        size_t len = strcspn(line, "\n");
        if (len > 6 && strncmp(line, "event:", 6) == 0) {
            if (glob_match(line + 6, len - 6, name))
                return true;
        } else if (len > 5 && strncmp(line, "page:", 5) == 0) {
            if (strcmp(name, "pageview") == 0 && glob_match(line + 5, len - 5, path))
                return true;
        }
        line += len + (line[len] == '\n');
    }
    return false;
}

struct reg_hosts {
    size_t n;
    char **host; /* sorted, lowercase */
    char **site; /* host[i]'s site id */
};

static int host_cmp(const void *a, const void *b)
{
    return strcasecmp(*(char *const *)a, *(char *const *)b);
}

struct reg_hosts *registry_hosts_load(redisContext *rc, char *err, size_t errlen)
{
    redisReply *r = redisCommand(rc, "HGETALL " REG_HOSTS);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        str_format(err, errlen, "redis: %s", r && r->type == REDIS_REPLY_ERROR ? r->str
                                             : rc->errstr[0]                ? rc->errstr
                                                                            : "no answer");
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    struct reg_hosts *h = xcalloc(1, sizeof *h);
    size_t n = r->elements / 2;
    /* pairs, sorted together: one array of "host\0site" strings */
    char **pairs = xcalloc(n ? n : 1, sizeof *pairs);
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = r->element[2 * i], *v = r->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            memchr(k->str, '\0', k->len) || memchr(v->str, '\0', v->len))
            continue;
        char *p = xmalloc(k->len + v->len + 2);
        memcpy(p, k->str, k->len);
        p[k->len] = '\0';
        memcpy(p + k->len + 1, v->str, v->len);
        p[k->len + 1 + v->len] = '\0';
        pairs[h->n++] = p;
    }
    freeReplyObject(r);
    if (h->n > 1)
        qsort(pairs, h->n, sizeof *pairs, host_cmp);
    h->host = pairs;
    h->site = xcalloc(h->n ? h->n : 1, sizeof *h->site);
    for (size_t i = 0; i < h->n; i++)
        h->site[i] = pairs[i] + strlen(pairs[i]) + 1;
    return h;
}

void registry_hosts_free(struct reg_hosts *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->host[i]);
    free(h->host);
    free(h->site);
    free(h);
}

size_t registry_hosts_count(const struct reg_hosts *h)
{
    return h ? h->n : 0;
}

const char *registry_hosts_lookup(const struct reg_hosts *h, const char *host)
{
    if (!h || h->n == 0)
        return NULL;
    char **hit = bsearch(&host, h->host, h->n, sizeof *h->host, host_cmp);
    return hit ? h->site[hit - h->host] : NULL;
}

int registry_token_scope(redisContext *rc, const unsigned char hash[32], char *scope,
                         size_t scopelen)
{
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    redisReply *r = redisCommand(rc, "HGET " REG_TOKENS " %s", hex);
    int status = -1;
    if (r && r->type == REDIS_REPLY_NIL)
        status = 0;
    else if (r && r->type == REDIS_REPLY_STRING &&
             str_copy(scope, scopelen, r->str, r->len))
        status = 1;
    if (r)
        freeReplyObject(r);
    return status;
}

bool registry_timezone_valid(const char *tz)
{
    size_t len = strlen(tz);
    if (len == 0 || len > 60 || tz[0] == '/' || strstr(tz, ".."))
        return false;
    for (const char *c = tz; *c; c++) {
        bool ok = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                  (*c >= '0' && *c <= '9') || *c == '/' || *c == '_' || *c == '-' || *c == '+';
        if (!ok)
            return false;
    }
    const char *dir = getenv("VEIL_ZONEINFO");
    char path[512];
    str_format(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    /* a TZif file, not e.g. zone1970.tab */
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool tzif = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    if (f)
        fclose(f);
    return tzif;
}
