/* admin_token.c - veil-admin token create|list|revoke: stats API tokens in
 * the site registry (REG_TOKENS: SHA-256 hex -> scope).
 *
 * A token is 32 random bytes as 64 hex digits, printed once by create and
 * never stored: only auth_hash_token_hex's SHA-256, the form the stats
 * API's check (aggregator/auth.c) and api_tokens use. Listing shows a
 * 12-digit id of the hash, never the hash in full nor the token. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "admin.h"
#include "auth.h"
#include "registry.h"
#include "util.h"

#define TOKEN_ID_DIGITS 12

static int token_create(struct admin *a)
{
    if (a->nargs != 0 || (!a->site == !a->all))
        return admin_usage_error("token create: give --site SITE or --all");
    if (a->site && !admin_valid_host(a->site))
        return admin_usage_error("--site '%s': a site id is a lowercase hostname", a->site);
    const char *name = a->name ? a->name : "";
    if (strlen(name) > 100 || strpbrk(name, "\n\r"))
        return admin_usage_error("--name: one line of at most 100 bytes");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    char token[65], hash[65];
    sodium_bin2hex(token, sizeof token, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    if (auth_hash_token_hex(token, hash) != 0)
        return admin_usage_error("cannot hash the token");
    const char *scope = a->site ? a->site : "*";
    char meta[160];
    str_format(meta, sizeof meta, "%lld %s", (long long)time(NULL), name);
    redisReply *r = redisCommand(a->rc, "HSET " REG_TOKEN_META " %s %s", hash, meta);
    if (r && r->type != REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        /* the grant last: a token works only once fully described */
        r = redisCommand(a->rc, "HSET " REG_TOKENS " %s %s", hash, scope);
    }
    if (!r || r->type == REDIS_REPLY_ERROR) {
        int rc = admin_redis_error(a, r, "token create");
        if (r)
            freeReplyObject(r);
        sodium_memzero(token, sizeof token);
        return rc;
    }
    freeReplyObject(r);
    /* is the site registered? a token for a config-only site works too */
    struct reg_site s;
    char err[300];
    bool registered = !a->site || registry_site_get(a->rc, a->site, &s, err, sizeof err) == 1;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "token", token);
        char id[TOKEN_ID_DIGITS + 1];
        str_copy(id, sizeof id, hash, TOKEN_ID_DIGITS);
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "scope", scope);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddBoolToObject(o, "site_registered", registered);
        sodium_memzero(token, sizeof token);
        return admin_emit_json(o, ADMIN_OK);
    }
    printf("%s\n", token);
    fprintf(stderr, "veil-admin: token %.12s for %s%s: shown once, only its hash is stored%s\n",
            hash, a->site ? "site " : "", a->site ? a->site : "all sites",
            registered ? "" : " (the site is not in the registry)");
    sodium_memzero(token, sizeof token);
    return ADMIN_OK;
}

/* Both hashes, as parallel replies. NULL on error (printed). */
static redisReply *read_tokens(struct admin *a, redisReply **meta)
{
    redisReply *r = redisCommand(a->rc, "HGETALL " REG_TOKENS);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        admin_redis_error(a, r, "reading tokens");
        if (r)
            freeReplyObject(r);
        return NULL;
    }
    *meta = redisCommand(a->rc, "HGETALL " REG_TOKEN_META);
    if (!*meta || (*meta)->type != REDIS_REPLY_ARRAY) {
        admin_redis_error(a, *meta, "reading tokens");
        if (*meta)
            freeReplyObject(*meta);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static const char *meta_of(const redisReply *meta, const char *hash)
{
    for (size_t i = 0; i + 1 < meta->elements; i += 2)
        if (meta->element[i]->str && strcmp(meta->element[i]->str, hash) == 0)
            return meta->element[i + 1]->str ? meta->element[i + 1]->str : "";
    return "";
}

static int token_list(struct admin *a)
{
    if (!admin_redis(a))
        return ADMIN_REDIS;
    redisReply *meta;
    redisReply *r = read_tokens(a, &meta);
    if (!r)
        return ADMIN_REDIS;
    cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *hash = r->element[i]->str, *scope = r->element[i + 1]->str;
        if (!hash || !scope || (a->site && strcmp(scope, a->site) != 0))
            continue;
        const char *m = meta_of(meta, hash);
        long long created = atoll(m);
        const char *name = strchr(m, ' ') ? strchr(m, ' ') + 1 : "";
        if (arr) {
            cJSON *o = cJSON_CreateObject();
            char id[TOKEN_ID_DIGITS + 1];
            str_copy(id, sizeof id, hash, TOKEN_ID_DIGITS);
            cJSON_AddStringToObject(o, "id", id);
            cJSON_AddStringToObject(o, "scope", scope);
            cJSON_AddStringToObject(o, "name", name);
            cJSON_AddNumberToObject(o, "created", (double)created);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%.12s  %-30s %-10lld %s\n", hash, scope, created, name);
        }
    }
    freeReplyObject(r);
    freeReplyObject(meta);
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "tokens", arr);
        return admin_emit_json(o, ADMIN_OK);
    }
    return ADMIN_OK;
}

static int token_revoke(struct admin *a)
{
    const char *id = a->nargs == 1 ? a->args[0] : NULL;
    if ((id != NULL) + (a->site != NULL) + a->all != 1 || a->nargs > 1)
        return admin_usage_error("token revoke: give one ID, --site SITE or --all");
    if (id && (strlen(id) < 8 || strlen(id) > 64 || strspn(id, "0123456789abcdef") != strlen(id)))
        return admin_usage_error("token revoke: an ID is 8 to 64 lowercase hex digits "
                                 "(veil-admin token list)");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    redisReply *meta;
    redisReply *r = read_tokens(a, &meta);
    if (!r)
        return ADMIN_REDIS;
    const char *match[4096];
    size_t n = 0;
    for (size_t i = 0; i + 1 < r->elements && n < 4096; i += 2) {
        const char *hash = r->element[i]->str, *scope = r->element[i + 1]->str;
        if (!hash || !scope)
            continue;
        if ((id && strncmp(hash, id, strlen(id)) == 0) || (a->site && !strcmp(scope, a->site)) ||
            a->all)
            match[n++] = hash;
    }
    int rc = ADMIN_OK;
    if (id && n != 1) {
        fprintf(stderr, "veil-admin: %s token matches %s\n", n ? "more than one" : "no", id);
        rc = ADMIN_FOUND;
    }
    for (size_t i = 0; rc == ADMIN_OK && i < n; i++) {
        redisReply *d = redisCommand(a->rc, "HDEL " REG_TOKENS " %s", match[i]);
        if (!d || d->type == REDIS_REPLY_ERROR)
            rc = admin_redis_error(a, d, "token revoke");
        if (d)
            freeReplyObject(d);
        d = redisCommand(a->rc, "HDEL " REG_TOKEN_META " %s", match[i]);
        if (d)
            freeReplyObject(d);
    }
    if (rc == ADMIN_OK) {
        if (a->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "revoked", (double)n);
            rc = admin_emit_json(o, ADMIN_OK);
        } else {
            printf("revoked %zu token%s\n", n, n == 1 ? "" : "s");
        }
    }
    freeReplyObject(r);
    freeReplyObject(meta);
    return rc;
}

int admin_token(struct admin *a, const char *verb)
{
    if (!strcmp(verb, "create"))
        return token_create(a);
    if (!strcmp(verb, "list"))
        return token_list(a);
    if (!strcmp(verb, "revoke"))
        return token_revoke(a);
    return admin_usage_error("token %s: expected create, list or revoke", verb);
}
