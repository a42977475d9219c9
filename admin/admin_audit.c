/* admin_audit.c - veil-admin audit: look through every Veil key for what
 * looks like personal data, and for keys that should expire but do not.
 *
 * Heuristics (docs/PRIVACY.md, "Audit"): IPv4 and IPv6 addresses in text,
 * values of exactly 4 or 16 bytes that are not text (a binary IP),
 * User-Agent markers, e-mail addresses, query strings over 100 bytes. It
 * reads values to judge them but prints only the key, where in it, and
 * why: never the value itself (it may be the personal data). Salts and the
 * DP key are random bytes by design: their content is not judged, only
 * their expiry. Bounds: every key (SCAN), up to 10000 members or fields
 * per key and the first 10000 entries of a stream. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "util.h"

#define AUDIT_PER_KEY 10000
#define QUERY_MAX 100

/* ---- the detectors: each true with a reason when the text looks personal ---- */

static bool has_ipv4(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || (i > 0 && (isdigit((unsigned char)s[i - 1]) ||
                                                        s[i - 1] == '.')))
            continue;
        size_t j = i;
        int parts = 0;
        bool ok = true;
        while (parts < 4 && ok) {
            size_t start = j;
            int v = 0;
            while (j < len && isdigit((unsigned char)s[j]) && j - start < 4)
                v = v * 10 + (s[j++] - '0');
            ok = j > start && j - start <= 3 && v <= 255;
            parts++;
            if (parts < 4) {
                if (j < len && s[j] == '.')
                    j++;
                else
                    ok = false;
            }
        }
        if (ok && parts == 4 && (j == len || (!isdigit((unsigned char)s[j]) && s[j] != '.')))
            return true;
    }
    return false;
}

static bool has_ipv6(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && (isxdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'))
            i++;
        size_t n = i - start;
        if (n >= 3) {
            const char *t = s + start;
            int colons = 0, groups = 0, glen = 0;
            bool ok = true, dbl = false;
            for (size_t k = 0; k < n && ok; k++) {
                if (t[k] == ':') {
                    colons++;
                    if (k + 1 < n && t[k + 1] == ':')
                        dbl = true;
                    if (glen)
                        groups++;
                    glen = 0;
                } else if (t[k] != '.') {
                    ok = ++glen <= 4;
                }
            }
            if (glen)
                groups++;
            if (ok && colons >= 2 && ((dbl && groups >= 2) || colons == 7))
                return true;
        }
        if (i == start)
            i++;
    }
    return false;
}

static bool has_email(const char *s, size_t len)
{
    for (size_t at = 1; at + 3 < len; at++) {
        if (s[at] != '@')
            continue;
        size_t l = at;
        while (l > 0 && (isalnum((unsigned char)s[l - 1]) || strchr("._%+-", s[l - 1])))
            l--;
        size_t r = at + 1, dot = 0;
        while (r < len && (isalnum((unsigned char)s[r]) || s[r] == '.' || s[r] == '-')) {
            if (s[r] == '.')
                dot = r;
            r++;
        }
        if (l < at && dot > at + 1 && r - dot > 2)
            return true;
    }
    return false;
}

static bool has_user_agent(const char *s, size_t len)
{
    static const char *const marks[] = {"Mozilla/", "AppleWebKit/", "Gecko/2", "(Windows NT",
                                        "(X11;", "(Macintosh;", "(iPhone;", "(Linux; Android",
                                        "curl/", "Googlebot"};
    for (size_t i = 0; i < ARRAY_LEN(marks); i++)
        if (memmem(s, len, marks[i], strlen(marks[i])))
            return true;
    return false;
}

static bool has_long_query(const char *s, size_t len)
{
    const char *q = memchr(s, '?', len);
    while (q) {
        size_t n = 0;
        const char *e = q + 1;
        while (e < s + len && *e != ' ' && *e != '#' && *e != '\0') {
            e++;
            n++;
        }
        if (n > QUERY_MAX && memchr(q, '=', (size_t)(e - q)))
            return true;
        q = memchr(e, '?', (size_t)(s + len - e));
    }
    return false;
}

static bool is_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
            return false;
    return true;
}

/* Why `s` looks personal, or NULL. */
static const char *judge(const char *s, size_t len)
{
    if (!s || len == 0)
        return NULL;
    if ((len == 4 || len == 16) && !is_text(s, len))
        return "a 4- or 16-byte binary value (an IP address?)";
    if (has_ipv4(s, len))
        return "an IPv4 address";
    if (has_ipv6(s, len))
        return "an IPv6 address";
    if (has_user_agent(s, len))
        return "a User-Agent string";
    if (has_email(s, len))
        return "an e-mail address";
    if (has_long_query(s, len))
        return "a query string over 100 bytes";
    return NULL;
}

/* ---- the scan ---- */

struct audit {
    cJSON *findings; /* array when --json */
    long long keys, count;
};

static void finding(struct admin *a, struct audit *au, const char *key, size_t klen,
                    const char *where, const char *why)
{
    (void)a;
    au->count++;
    if (au->findings) {
        cJSON *o = cJSON_CreateObject();
        char *k = xmalloc(klen + 1);
        memcpy(k, key, klen);
        k[klen] = '\0';
        cJSON_AddStringToObject(o, "key", k);
        cJSON_AddStringToObject(o, "where", where);
        cJSON_AddStringToObject(o, "finding", why);
        cJSON_AddItemToArray(au->findings, o);
        free(k);
    } else {
        printf("%.*s: %s: %s\n", (int)klen, key, where, why);
    }
}

/* Keys that live without an expiry by design (docs/KEYS.md). */
static bool may_persist(const char *key, size_t len, const char *type)
{
    if (!strcmp(type, "stream"))
        return true; /* trimmed once acknowledged */
    static const char *const suffixes[] = {":sites", ":dpkey", ":epoch"}; /* epoch: a fencing token */
    if (len > 9 && !memcmp(key, "veil:{reg}", 10))
        return true; /* the site registry: settings and token hashes */
    if (len == 16 && !memcmp(key, "veil:meta:shards", 16))
        return true; /* the installation's shard count (docs/DELIVERY.md "Shards") */
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && !memcmp(key + len - n, suffixes[i], n) && key[len - n - 1] == '}')
            return true;
    }
    return false;
}

static bool content_by_design_random(const char *key, size_t len)
{
    return (len > 10 && !memcmp(key, "veil:salt:", 10)) ||
           (len > 6 && !memcmp(key + len - 6, ":dpkey", 6));
}

/* Judge every string of an array reply (members, or field/value pairs). */
static void judge_elements(struct admin *a, struct audit *au, const char *key, size_t klen,
                           const redisReply *arr, bool pairs)
{
    for (size_t i = 0; i < arr->elements; i++) {
        const redisReply *e = arr->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        const char *why = judge(e->str, e->len);
        if (why)
            finding(a, au, key, klen, pairs ? (i % 2 ? "a value" : "a field") : "a member", why);
    }
}

static int audit_key(struct admin *a, struct audit *au, const char *key, size_t klen)
{
    au->keys++;
    redisReply *t = redisCommand(a->rc, "TYPE %b", key, klen);
    char type[16] = "";
    if (t && t->type == REDIS_REPLY_STATUS)
        str_copy(type, sizeof type, t->str, t->len < sizeof type ? t->len : sizeof type - 1);
    if (t)
        freeReplyObject(t);
    if (!type[0] || !strcmp(type, "none"))
        return ADMIN_OK; /* expired meanwhile */
    redisReply *ttl = redisCommand(a->rc, "TTL %b", key, klen);
    if (ttl && ttl->type == REDIS_REPLY_INTEGER && ttl->integer == -1 &&
        !may_persist(key, klen, type))
        finding(a, au, key, klen, "expiry", "no expiry (it should have one)");
    if (ttl)
        freeReplyObject(ttl);
    if (content_by_design_random(key, klen))
        return ADMIN_OK;

    redisReply *r = NULL;
    if (!strcmp(type, "string")) {
        r = redisCommand(a->rc, "GETRANGE %b 0 65535", key, klen);
        if (r && r->type == REDIS_REPLY_STRING && !(r->len >= 4 && !memcmp(r->str, "HYLL", 4))) {
            const char *why = judge(r->str, r->len);
            if (why)
                finding(a, au, key, klen, "the value", why);
        }
    } else if (!strcmp(type, "hash") || !strcmp(type, "set") || !strcmp(type, "zset")) {
        const char *cmd = !strcmp(type, "hash") ? "HSCAN" : !strcmp(type, "set") ? "SSCAN" : "ZSCAN";
        char cursor[32] = "0";
        long long seen = 0;
        do {
            redisReply *s = redisCommand(a->rc, "%s %b %s COUNT 1000", cmd, key, klen, cursor);
            if (!s || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
                if (s)
                    freeReplyObject(s);
                break;
            }
            str_copy(cursor, sizeof cursor, s->element[0]->str, s->element[0]->len);
            const redisReply *items = s->element[1];
            if (!strcmp(type, "zset")) {
                /* member, score pairs: judge members only */
                for (size_t i = 0; i < items->elements; i += 2) {
                    const char *why = judge(items->element[i]->str, items->element[i]->len);
                    if (why)
                        finding(a, au, key, klen, "a member", why);
                }
            } else {
                judge_elements(a, au, key, klen, items, !strcmp(type, "hash"));
            }
            seen += (long long)items->elements;
            freeReplyObject(s);
        } while (strcmp(cursor, "0") != 0 && seen < AUDIT_PER_KEY);
    } else if (!strcmp(type, "list")) {
        r = redisCommand(a->rc, "LRANGE %b 0 %d", key, klen, AUDIT_PER_KEY - 1);
        if (r && r->type == REDIS_REPLY_ARRAY)
            judge_elements(a, au, key, klen, r, false);
    } else if (!strcmp(type, "stream")) {
        r = redisCommand(a->rc, "XRANGE %b - + COUNT %d", key, klen, AUDIT_PER_KEY);
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *entry = r->element[i];
            if (entry->type == REDIS_REPLY_ARRAY && entry->elements == 2 &&
                entry->element[1]->type == REDIS_REPLY_ARRAY)
                judge_elements(a, au, key, klen, entry->element[1], true);
        }
    }
    if (r)
        freeReplyObject(r);
    return ADMIN_OK;
}

int admin_audit(struct admin *a)
{
    if (a->nargs != 0)
        return admin_usage_error("audit takes no argument");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct audit au = {a->json ? cJSON_CreateArray() : NULL, 0, 0};
    for (int m = 0; m < admin_redis_masters(a); m++) { /* every node's keys */
        if (!admin_redis_master(a, m)) {
            cJSON_Delete(au.findings);
            return ADMIN_REDIS;
        }
        char cursor[32] = "0";
        do {
            redisReply *r = redisCommand(a->rc, "SCAN %s MATCH veil:* COUNT 1000", cursor);
            if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                int rc = admin_redis_error(a, r, "SCAN");
                if (r)
                    freeReplyObject(r);
                cJSON_Delete(au.findings);
                return rc;
            }
            str_copy(cursor, sizeof cursor, r->element[0]->str, r->element[0]->len);
            for (size_t i = 0; i < r->element[1]->elements; i++)
                audit_key(a, &au, r->element[1]->element[i]->str, r->element[1]->element[i]->len);
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    int rc = au.count ? ADMIN_FOUND : ADMIN_OK;
    if (au.findings) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "keys", (double)au.keys);
        cJSON_AddItemToObject(o, "findings", au.findings);
        return admin_emit_json(o, rc);
    }
    printf("audit: %lld key%s, %lld finding%s\n", au.keys, au.keys == 1 ? "" : "s", au.count,
           au.count == 1 ? "" : "s");
    return rc;
}
