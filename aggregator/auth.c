/* auth.c - token grants as SHA-256 hashes, constant-time comparison (see
 * auth.h). Never stores, logs or compares a plain-text token. */
#include "auth.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util.h"

struct grant {
    char *site;                          /* NULL: every site ("*") */
    unsigned char hash[AUTH_HASH_BYTES];
};

struct auth {
    struct grant *grants;
    size_t n;
};

static bool parse_hash_hex(const char *hex, unsigned char out[AUTH_HASH_BYTES])
{
    if (strlen(hex) != 2 * AUTH_HASH_BYTES)
        return false;
    for (size_t i = 0; i < AUTH_HASH_BYTES; i++) {
        int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static void add_grant(struct auth *a, const char *site, const unsigned char hash[AUTH_HASH_BYTES])
{
    a->grants = xrealloc(a->grants, (a->n + 1) * sizeof *a->grants);
    a->grants[a->n].site = site ? xstrdup(site) : NULL;
    memcpy(a->grants[a->n].hash, hash, AUTH_HASH_BYTES);
    a->n++;
}

struct auth *auth_new(char *api_token, const struct cfg_list *api_tokens, char *err,
                      size_t errlen)
{
    struct auth *a = xcalloc(1, sizeof *a);
    if (sodium_init() < 0) {
        str_format(err, errlen, "libsodium failed to initialise");
        goto err;
    }
    if (api_token && api_token[0]) {
        unsigned char hash[AUTH_HASH_BYTES];
        size_t len = strlen(api_token);
        crypto_hash_sha256(hash, (const unsigned char *)api_token, len);
        sodium_memzero(api_token, len);
        add_grant(a, NULL, hash);
    }
    for (size_t i = 0; api_tokens && i < api_tokens->n; i++) {
        const char *item = api_tokens->items[i];
        const char *eq = strrchr(item, '=');
        unsigned char hash[AUTH_HASH_BYTES];
        char site[256];
        if (!eq || eq == item || !parse_hash_hex(eq + 1, hash) ||
            !str_copy(site, sizeof site, item, (size_t)(eq - item))) {
            str_format(err, errlen,
                       "api_tokens: entry %zu: expected site=<64 hex digits> or *=<64 hex digits>",
                       i + 1);
            goto err;
        }
        add_grant(a, strcmp(site, "*") == 0 ? NULL : site, hash);
    }
    return a;
err:
    auth_free(a);
    return NULL;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->grants[i].site);
    free(a->grants);
    free(a);
}

size_t auth_grant_count(const struct auth *a)
{
    return a->n;
}

enum auth_result auth_identify(const struct auth *a, const char *authorization,
                               unsigned char hash[AUTH_HASH_BYTES])
{
    if (!authorization || !str_has_prefix_ci(authorization, strlen(authorization), "bearer "))
        return AUTH_MISSING;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    while (len && token[len - 1] == ' ')
        len--;
    if (len == 0)
        return AUTH_MISSING;
    if (len > AUTH_TOKEN_MAX) {
        memset(hash, 0, AUTH_HASH_BYTES);
        return AUTH_INVALID;
    }
    crypto_hash_sha256(hash, (const unsigned char *)token, len);
    /* Compare with every grant, no early exit. */
    int known = 0;
    for (size_t i = 0; i < a->n; i++)
        known |= sodium_memcmp(a->grants[i].hash, hash, AUTH_HASH_BYTES) == 0;
    return known ? AUTH_OK : AUTH_INVALID;
}

enum auth_result auth_check_site(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES],
                                 const char *site)
{
    int allowed = 0;
    for (size_t i = 0; i < a->n; i++) {
        int same = sodium_memcmp(a->grants[i].hash, hash, AUTH_HASH_BYTES) == 0;
        const char *granted = a->grants[i].site;
        allowed |= same && (!granted || (site && strcmp(granted, site) == 0));
    }
    return allowed ? AUTH_OK : AUTH_FORBIDDEN;
}

bool auth_all_sites(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES])
{
    return auth_check_site(a, hash, NULL) == AUTH_OK;
}

size_t auth_named_sites(const struct auth *a, const unsigned char hash[AUTH_HASH_BYTES],
                        const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n && n < max; i++) {
        if (a->grants[i].site && sodium_memcmp(a->grants[i].hash, hash, AUTH_HASH_BYTES) == 0)
            out[n++] = a->grants[i].site;
    }
    return n;
}

int auth_hash_token_hex(const char *token, char out[65])
{
    size_t len = token ? strlen(token) : 0;
    unsigned char hash[AUTH_HASH_BYTES];
    out[0] = '\0';
    if (len == 0 || len > AUTH_TOKEN_MAX || sodium_init() < 0)
        return -1;
    crypto_hash_sha256(hash, (const unsigned char *)token, len);
    sodium_bin2hex(out, 65, hash, sizeof hash);
    return 0;
}
