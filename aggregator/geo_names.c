/* geo_names.c - ISO 3166 codes to names from Debian's iso-codes JSON
 * (see geo_names.h). Countries take iso-codes' common_name when it has
 * one ("Bolivia", "Taiwan"), else its name; regions its name. It never
 * logs anything about visitors. */
#include "geo_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

#define GEO_FILE_MAX (8L * 1024 * 1024) /* iso_3166-2.json is about 0.5 MB */

struct geo_name {
    char *code;   /* "DE", "DE-BY" */
    char *name;
};

struct geo_table {
    struct geo_name *entries;
    size_t n;
};

static struct geo_table countries, regions;
static bool loaded;

static void table_free(struct geo_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->entries[i].code);
        free(t->entries[i].name);
    }
    free(t->entries);
    memset(t, 0, sizeof *t);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct geo_name *)a)->code, ((const struct geo_name *)b)->code);
}

/* The whole file into a NUL-terminated buffer, or NULL with a reason. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        str_format(err, errlen, "iso_codes_dir: cannot read %s (Debian package iso-codes)", path);
        return NULL;
    }
    char *buf = xmalloc(GEO_FILE_MAX + 1);
    size_t n = fread(buf, 1, GEO_FILE_MAX + 1, f);
    bool bad = ferror(f) || n > GEO_FILE_MAX;
    fclose(f);
    if (bad) {
        free(buf);
        str_format(err, errlen, "iso_codes_dir: %s cannot be read or is over %ld bytes", path,
                   GEO_FILE_MAX);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* dir/file's array `member` into t: code from code_key, name from
 * name_keys (the first present). */
static int load_table(const char *dir, const char *file, const char *member,
                      const char *code_key, const char *const name_keys[2],
                      struct geo_table *t, char *err, size_t errlen)
{
    char path[1200];
    if (!str_format(path, sizeof path, "%s/%s", dir, file)) {
        str_format(err, errlen, "iso_codes_dir: path too long");
        return -1;
    }
    char *text = read_file(path, err, errlen);
    if (!text)
        return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, member);
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) {
        cJSON_Delete(root);
        str_format(err, errlen, "iso_codes_dir: %s is not iso-codes' JSON (no \"%s\" list)",
                   path, member);
        return -1;
    }
    t->entries = xcalloc((size_t)cJSON_GetArraySize(list), sizeof *t->entries);
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, code_key);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, name_keys[0]);
        if (!cJSON_IsString(name))
            name = cJSON_GetObjectItemCaseSensitive(e, name_keys[1]);
        if (!cJSON_IsString(code) || !cJSON_IsString(name) || !code->valuestring[0] ||
            !name->valuestring[0])
            continue;
        t->entries[t->n].code = xstrdup(code->valuestring);
        t->entries[t->n].name = xstrdup(name->valuestring);
        t->n++;
    }
    cJSON_Delete(root);
    if (t->n > 1)
        qsort(t->entries, t->n, sizeof *t->entries, cmp_entry);
    return 0;
}

int geo_names_load(const char *dir, char *err, size_t errlen)
{
    static const char *const country_names[2] = {"common_name", "name"};
    static const char *const region_names[2] = {"name", "name"};
    geo_names_unload();
    if (load_table(dir, "iso_3166-1.json", "3166-1", "alpha_2", country_names, &countries, err,
                   errlen) != 0 ||
        load_table(dir, "iso_3166-2.json", "3166-2", "code", region_names, &regions, err,
                   errlen) != 0) {
        geo_names_unload();
        return -1;
    }
    loaded = true;
    return 0;
}

void geo_names_unload(void)
{
    table_free(&countries);
    table_free(&regions);
    loaded = false;
}

bool geo_names_loaded(void)
{
    return loaded;
}

size_t geo_names_count(void)
{
    return countries.n + regions.n;
}

static const char *lookup(const struct geo_table *t, const char *code, size_t len)
{
    char key[16];
    if (!t->n || len == 0 || len >= sizeof key)
        return NULL;
    memcpy(key, code, len);
    key[len] = '\0';
    struct geo_name probe = {key, NULL};
    const struct geo_name *hit = bsearch(&probe, t->entries, t->n, sizeof *t->entries, cmp_entry);
    return hit ? hit->name : NULL;
}

const char *geo_names_country(const char *code, size_t len)
{
    return lookup(&countries, code, len);
}

const char *geo_names_region(const char *code, size_t len)
{
    return lookup(&regions, code, len);
}
