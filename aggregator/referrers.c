/* referrers.c - named sources and channels (see referrers.h). Reads one
 * file at start; never logs a host, never touches Redis. */
#include "referrers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "strmap.h"
#include "util.h"

struct ref_entry {
    const char *source;
    enum ref_medium medium;
};

struct referrers {
    struct smap hosts;           /* host -> index into entries */
    struct smap names;           /* lowercased source name -> index into name_media */
    struct arena_chunk *arena;
    struct ref_entry *entries;
    size_t n, cap;
    enum ref_medium *name_media; /* a name's first medium other than "unknown" */
    size_t nnames, names_cap;
};

static enum ref_medium medium_parse(const char *m)
{
    static const struct {
        const char *name;
        enum ref_medium medium;
    } media[] = {{"search", REF_SEARCH}, {"social", REF_SOCIAL},     {"email", REF_EMAIL},
                 {"paid", REF_PAID},     {"referral", REF_REFERRAL}, {"unknown", REF_UNKNOWN}};
    for (size_t i = 0; i < sizeof media / sizeof *media; i++)
        if (strcmp(m, media[i].name) == 0)
            return media[i].medium;
    return REF_UNKNOWN;
}

static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        str_format(err, errlen, "referrer_db: cannot open %s", path);
        return NULL;
    }
    char *buf = xmalloc(REFERRERS_FILE_MAX + 1);
    *len = fread(buf, 1, REFERRERS_FILE_MAX + 1, f);
    bool bad = ferror(f) || *len > REFERRERS_FILE_MAX;
    fclose(f);
    if (bad) {
        str_format(err, errlen, "referrer_db: %s is unreadable or over %d bytes", path,
                   REFERRERS_FILE_MAX);
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

struct referrers *referrers_load(const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        str_format(err, errlen, "referrer_db: %s is not a JSON object", path);
        cJSON_Delete(root);
        return NULL;
    }
    struct referrers *db = xcalloc(1, sizeof *db);
    for (cJSON *e = root->child; e; e = e->next) {
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(e, "source");
        const cJSON *med = cJSON_GetObjectItemCaseSensitive(e, "medium");
        if (!e->string || !cJSON_IsString(src) || !src->valuestring[0] || db->n >= REFERRERS_MAX)
            continue;
        char host[256];
        size_t hl = strlen(e->string);
        if (hl == 0 || hl >= sizeof host)
            continue;
        for (size_t i = 0; i <= hl; i++)
            host[i] = (char)tolower((unsigned char)e->string[i]);
        const char *h = strncmp(host, "www.", 4) == 0 ? host + 4 : host;
        GROW(db->entries, db->n, db->cap);
        size_t sl = strlen(src->valuestring);
        db->entries[db->n] = (struct ref_entry){
            arena_dup(&db->arena, src->valuestring, sl),
            cJSON_IsString(med) ? medium_parse(med->valuestring) : REF_UNKNOWN};
        bool created;
        smap_intern(&db->hosts, &db->arena, h, strlen(h), (uint32_t)db->n, &created, NULL);
        /* a name's medium for utm_source=<name>: its first non-"unknown" one */
        char name[256];
        if (sl < sizeof name) {
            for (size_t i = 0; i <= sl; i++)
                name[i] = (char)tolower((unsigned char)src->valuestring[i]);
            uint32_t at = smap_intern(&db->names, &db->arena, name, sl, (uint32_t)db->nnames,
                                      &created, NULL);
            if (created) {
                GROW(db->name_media, db->nnames, db->names_cap);
                db->name_media[db->nnames++] = REF_UNKNOWN;
            }
            if (db->name_media[at] == REF_UNKNOWN)
                db->name_media[at] = db->entries[db->n].medium;
        }
        db->n++;
    }
    cJSON_Delete(root);
    if (db->n == 0) {
        str_format(err, errlen, "referrer_db: %s holds no hosts", path);
        referrers_free(db);
        return NULL;
    }
    return db;
}

void referrers_free(struct referrers *db)
{
    if (!db)
        return;
    smap_free(&db->hosts);
    smap_free(&db->names);
    arena_free(&db->arena);
    free(db->entries);
    free(db->name_media);
    free(db);
}

size_t referrers_count(const struct referrers *db)
{
    return db ? db->n : 0;
}

const char *referrers_source(const struct referrers *db, const char *host,
                             enum ref_medium *medium)
{
    *medium = REF_UNKNOWN;
    if (!db || !host[0])
        return NULL;
    for (const char *h = host; h && *h;) {
        uint32_t i;
        if (smap_find(&db->hosts, h, strlen(h), &i)) {
            *medium = db->entries[i].medium;
            return db->entries[i].source;
        }
        h = strchr(h, '.');
        if (h) {
            h++;
            if (!strchr(h, '.'))
                break; /* never match a bare top-level domain */
        }
    }
    return NULL;
}

/* utm_medium (or utm_source) names an e-mail campaign */
static bool is_email(const char *s)
{
    return strcasestr(s, "email") || strcasestr(s, "e-mail") || strcasestr(s, "e_mail") ||
           strcasestr(s, "newsletter");
}

/* utm_medium marks paid traffic: "cpc", "ppc", "cpm", "paid...", anything
 * with "cp", "retargeting", "display" */
static bool is_paid_medium(const char *m)
{
    return strcasestr(m, "cp") || strcasecmp(m, "ppc") == 0 || strncasecmp(m, "paid", 4) == 0 ||
           strcasecmp(m, "retargeting") == 0;
}

static bool is_social_medium(const char *m)
{
    return strcasecmp(m, "social") == 0 || strcasecmp(m, "social-network") == 0 ||
           strcasecmp(m, "social-media") == 0 || strcasecmp(m, "social_network") == 0 ||
           strcasecmp(m, "social_media") == 0 || strcasecmp(m, "sm") == 0;
}

enum ref_channel referrers_channel(const struct referrers *db, const char *host,
                                   const char *utm_source, const char *utm_medium,
                                   unsigned paid)
{
    if (!host[0] && !utm_source[0] && !utm_medium[0] && !paid)
        return CH_DIRECT;
    enum ref_medium kind = REF_UNKNOWN;
    referrers_source(db, host, &kind);
    if (kind == REF_UNKNOWN && utm_source[0] && db) {
        char name[256];
        size_t n = strlen(utm_source);
        if (n < sizeof name) {
            for (size_t i = 0; i <= n; i++)
                name[i] = (char)tolower((unsigned char)utm_source[i]);
            uint32_t i;
            if (smap_find(&db->names, name, n, &i))
                kind = db->name_media[i];
            else
                referrers_source(db, name, &kind); /* utm_source=google.com */
        }
    }
    bool paid_medium = utm_medium[0] && is_paid_medium(utm_medium);
    if (kind == REF_EMAIL || is_email(utm_medium) || is_email(utm_source))
        return CH_EMAIL;
    if (kind == REF_PAID || strcasecmp(utm_medium, "display") == 0 ||
        strcasecmp(utm_medium, "banner") == 0)
        return CH_DISPLAY;
    if (kind == REF_SEARCH || strcasecmp(utm_medium, "organic") == 0)
        return paid || paid_medium ? CH_PAID_SEARCH : CH_ORGANIC_SEARCH;
    if (kind == REF_SOCIAL || is_social_medium(utm_medium))
        return paid || paid_medium ? CH_PAID_SOCIAL : CH_ORGANIC_SOCIAL;
    if (paid == 2)
        return CH_PAID_SOCIAL;
    if (paid || paid_medium)
        return CH_PAID_SEARCH;
    return CH_REFERRAL;
}

const char *referrers_channel_name(enum ref_channel c)
{
    static const char *const names[CH__COUNT] = {
        "Direct",         "Organic Search", "Paid Search", "Organic Social",
        "Paid Social",    "Email",          "Display",     "Referral"};
    return (unsigned)c < CH__COUNT ? names[c] : "Referral";
}
