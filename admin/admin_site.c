/* admin_site.c - veil-admin site add|set|list|show|remove|rename: the
 * live site registry (registry.h, docs/KEYS.md "Site registry").
 *
 * Every change is one MULTI/EXEC over {reg} keys that also bumps
 * REG_VERSION, so a collector polling the version sees all of a change or
 * none of it. It stores settings only, never anything about a visitor. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "registry.h"
#include "shard.h"
#include "util.h"

static bool valid_goal(const char *g)
{
    size_t len = strlen(g);
    if (len > 200 || strchr(g, '\n'))
        return false;
    if (strncmp(g, "event:", 6) == 0)
        return len > 6;
    return strncmp(g, "page:/", 6) == 0;
}

static bool valid_id_text(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return false;
    return true;
}

/* Check the options of add/set. */
static int check_fields(const struct admin *a)
{
    for (int i = 0; i < a->nhostnames; i++)
        if (!admin_valid_host(a->hostnames[i]))
            return admin_usage_error("--hostname '%s': expected a lowercase hostname",
                                     a->hostnames[i]);
    if (a->timezone && !registry_timezone_valid(a->timezone))
        return admin_usage_error("--timezone '%s': no such zone under /usr/share/zoneinfo "
                                 "(e.g. Europe/Paris, America/New_York, Etc/UTC)",
                                 a->timezone);
    for (int i = 0; i < a->ngoals; i++)
        if (!valid_goal(a->goals[i]))
            return admin_usage_error("--goal '%s': expected event:NAME or page:/PATH ('*' "
                                     "matches any run)", a->goals[i]);
    if (a->umami_id && !valid_id_text(a->umami_id, 63))
        return admin_usage_error("--umami-id: letters, digits, '-' and '_' only (a UUID)");
    if (a->matomo_id && !valid_id_text(a->matomo_id, 31))
        return admin_usage_error("--matomo-id: letters, digits, '-' and '_' only");
    return ADMIN_OK;
}

static cJSON *site_json(const struct reg_site *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", s->id);
    cJSON *hosts = cJSON_AddArrayToObject(o, "hostnames");
    char buf[REG_FIELD_MAX];
    str_copy(buf, sizeof buf, s->hostnames, strlen(s->hostnames));
    for (char *save = NULL, *h = strtok_r(buf, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
        cJSON_AddItemToArray(hosts, cJSON_CreateString(h));
    cJSON_AddStringToObject(o, "timezone", s->timezone);
    cJSON *goals = cJSON_AddArrayToObject(o, "goals");
    str_copy(buf, sizeof buf, s->goals, strlen(s->goals));
    for (char *save = NULL, *g = strtok_r(buf, "\n", &save); g; g = strtok_r(NULL, "\n", &save))
        cJSON_AddItemToArray(goals, cJSON_CreateString(g));
    cJSON_AddStringToObject(o, "umami_id", s->umami_id);
    cJSON_AddStringToObject(o, "matomo_id", s->matomo_id);
    cJSON_AddNumberToObject(o, "shard", (double)s->shard);
    cJSON_AddNumberToObject(o, "created", (double)s->created);
    return o;
}

static void print_site(const struct reg_site *s, bool long_form)
{
    char hosts[REG_FIELD_MAX], goals[REG_FIELD_MAX];
    str_copy(hosts, sizeof hosts, s->hostnames, strlen(s->hostnames));
    str_copy(goals, sizeof goals, s->goals, strlen(s->goals));
    for (char *c = hosts; *c; c++)
        if (*c == '\n')
            *c = ',';
    if (!long_form) {
        printf("%-30s %-20s shard %-4ld %s\n", s->id, s->timezone, s->shard, hosts);
        return;
    }
    for (char *c = goals; *c; c++)
        if (*c == '\n')
            *c = ',';
    printf("site       %s\nhostnames  %s\ntimezone   %s\ngoals      %s\numami_id   %s\n"
           "matomo_id  %s\nshard      %ld\ncreated    %lld\n",
           s->id, hosts, s->timezone, goals[0] ? goals : "-", s->umami_id[0] ? s->umami_id : "-",
           s->matomo_id[0] ? s->matomo_id : "-", s->shard, s->created);
}

/* Join list items with '\n' into out. */
static bool join_lines(char *out, size_t size, const char *first, const char *const *items, int n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = -1; i < n; i++) {
        const char *item = i < 0 ? first : items[i];
        if (!item)
            continue;
        /* no duplicates */
        bool dup = false;
        for (const char *p = out; *p && !dup; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0))
            dup = strcspn(p, "\n") == strlen(item) && strncmp(p, item, strlen(item)) == 0;
        if (dup)
            continue;
        size_t l = strlen(item);
        if (len + l + 2 > size)
            return false;
        if (len)
            out[len++] = '\n';
        memcpy(out + len, item, l + 1);
        len += l;
    }
    return true;
}

/* Which site a hostname is mapped to: 1 with owner, 0 none, -1 error. */
static int host_owner(struct admin *a, const char *host, char *owner, size_t size)
{
    redisReply *r = redisCommand(a->rc, "HGET " REG_HOSTS " %s", host);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_NIL)
        rc = 0;
    else if (r && r->type == REDIS_REPLY_STRING)
        rc = str_copy(owner, size, r->str, r->len) ? 1 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

/* A MULTI/EXEC being built: commands are pipelined and counted. */
struct txn {
    struct admin *a;
    int queued;
};

static void txn_begin(struct txn *t, struct admin *a)
{
    t->a = a;
    t->queued = 0;
    redisAppendCommand(a->rc, "MULTI");
}

static void txn_cmd(struct txn *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisvAppendCommand(t->a->rc, fmt, ap);
    va_end(ap);
    t->queued++;
}

/* INCR the version inside the transaction, EXEC, read every reply. */
static int txn_commit(struct txn *t, const char *what)
{
    struct admin *a = t->a;
    txn_cmd(t, "INCR " REG_VERSION);
    redisAppendCommand(a->rc, "EXEC");
    int rc = ADMIN_OK;
    for (int i = 0; i < t->queued + 2; i++) { /* MULTI, the queued, EXEC */
        redisReply *r = NULL;
        if (redisGetReply(a->rc, (void **)&r) != REDIS_OK || !r)
            return admin_redis_error(a, NULL, what);
        bool last = i == t->queued + 1;
        if (rc == ADMIN_OK && (r->type == REDIS_REPLY_ERROR || (last && r->type != REDIS_REPLY_ARRAY)))
            rc = admin_redis_error(a, r, what);
        freeReplyObject(r);
    }
    return rc;
}

/* Queue the writes that store `s`, mapping its hostnames. */
static void queue_store(struct txn *t, const struct reg_site *s)
{
    char shard[24], created[24];
    str_format(shard, sizeof shard, "%ld", s->shard);
    str_format(created, sizeof created, "%lld", s->created);
    txn_cmd(t, "HSET " REG_SITE "%s hostnames %s timezone %s goals %s umami_id %s "
               "matomo_id %s shard %s created %s",
            s->id, s->hostnames, s->timezone, s->goals, s->umami_id, s->matomo_id, shard,
            created);
    txn_cmd(t, "SADD " REG_SITES " %s", s->id);
    char buf[REG_FIELD_MAX];
    str_copy(buf, sizeof buf, s->hostnames, strlen(s->hostnames));
    for (char *save = NULL, *h = strtok_r(buf, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
        txn_cmd(t, "HSET " REG_HOSTS " %s %s", h, s->id);
}

static void queue_unmap(struct txn *t, const struct reg_site *s)
{
    char buf[REG_FIELD_MAX];
    str_copy(buf, sizeof buf, s->hostnames, strlen(s->hostnames));
    for (char *save = NULL, *h = strtok_r(buf, "\n", &save); h; h = strtok_r(NULL, "\n", &save))
        txn_cmd(t, "HDEL " REG_HOSTS " %s", h);
}

static int site_write(struct admin *a, const struct reg_site *old, const struct reg_site *s,
                      const char *what)
{
    struct txn t;
    txn_begin(&t, a);
    if (old) {
        queue_unmap(&t, old);
        if (strcmp(old->id, s->id) != 0) {
            txn_cmd(&t, "DEL " REG_SITE "%s", old->id);
            txn_cmd(&t, "SREM " REG_SITES " %s", old->id);
        }
    }
    queue_store(&t, s);
    return txn_commit(&t, what);
}

/* Hostnames of `s` (besides those it already owns) must be free. */
static int check_hosts_free(struct admin *a, const struct reg_site *s)
{
    char buf[REG_FIELD_MAX], owner[REG_ID_MAX + 1];
    str_copy(buf, sizeof buf, s->hostnames, strlen(s->hostnames));
    for (char *save = NULL, *h = strtok_r(buf, "\n", &save); h; h = strtok_r(NULL, "\n", &save)) {
        int got = host_owner(a, h, owner, sizeof owner);
        if (got < 0)
            return admin_redis_error(a, NULL, "reading the hostnames");
        if (got == 1 && strcmp(owner, s->id) != 0) {
            fprintf(stderr, "veil-admin: hostname %s already belongs to site %s\n", h, owner);
            return ADMIN_FOUND;
        }
    }
    return ADMIN_OK;
}

static int get_site(struct admin *a, const char *id, struct reg_site *s)
{
    char err[300];
    int got = registry_site_get(a->rc, id, s, err, sizeof err);
    if (got < 0) {
        fprintf(stderr, "veil-admin: %s\n", err);
        return ADMIN_REDIS;
    }
    if (got == 0) {
        fprintf(stderr, "veil-admin: site %s is not registered (veil-admin site list)\n", id);
        return ADMIN_FOUND;
    }
    return ADMIN_OK;
}

static int site_add_or_set(struct admin *a, bool add)
{
    if (a->nargs != 1)
        return admin_usage_error("site %s: expected one SITE (veil-admin site %s --help)",
                                 add ? "add" : "set", add ? "add" : "set");
    const char *id = a->args[0];
    if (!admin_valid_host(id))
        return admin_usage_error("'%s': a site id is a lowercase hostname", id);
    int rc = check_fields(a);
    if (rc != ADMIN_OK)
        return rc;
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct reg_site s, old;
    char err[300];
    int got = registry_site_get(a->rc, id, &old, err, sizeof err);
    if (got < 0)
        return admin_redis_error(a, NULL, "reading the site");
    if (add && got == 1) {
        fprintf(stderr, "veil-admin: site %s is already registered (use site set)\n", id);
        return ADMIN_FOUND;
    }
    if (!add && got == 0)
        return get_site(a, id, &old);
    if (add) {
        memset(&s, 0, sizeof s);
        str_copy(s.id, sizeof s.id, id, strlen(id));
        str_copy(s.timezone, sizeof s.timezone, "Etc/UTC", 7);
        s.shard = (long)shard_of_site(id, strlen(id), a->shards);
        s.created = (long long)time(NULL);
    } else {
        s = old;
    }
    if (add || a->nhostnames)
        if (!join_lines(s.hostnames, sizeof s.hostnames, id, a->hostnames, a->nhostnames))
            return admin_usage_error("--hostname: too many");
    if (add || a->ngoals)
        if (!join_lines(s.goals, sizeof s.goals, NULL, a->goals, a->ngoals))
            return admin_usage_error("--goal: too many");
    if (a->timezone)
        str_copy(s.timezone, sizeof s.timezone, a->timezone, strlen(a->timezone));
    if (a->umami_id)
        str_copy(s.umami_id, sizeof s.umami_id, a->umami_id, strlen(a->umami_id));
    if (a->matomo_id)
        str_copy(s.matomo_id, sizeof s.matomo_id, a->matomo_id, strlen(a->matomo_id));
    if ((rc = check_hosts_free(a, &s)) != ADMIN_OK)
        return rc;
    if ((rc = site_write(a, add ? NULL : &old, &s, add ? "site add" : "site set")) != ADMIN_OK)
        return rc;
    if (a->json)
        return admin_emit_json(site_json(&s), ADMIN_OK);
    printf("%s site %s (shard %ld, %s); collectors accept it within a second\n",
           add ? "added" : "changed", s.id, s.shard, s.timezone);
    return ADMIN_OK;
}

static int site_list(struct admin *a)
{
    if (!admin_redis(a))
        return ADMIN_REDIS;
    redisReply *r = redisCommand(a->rc, "SMEMBERS " REG_SITES);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        int rc = admin_redis_error(a, r, "site list");
        if (r)
            freeReplyObject(r);
        return rc;
    }
    cJSON *arr = a->json ? cJSON_CreateArray() : NULL;
    /* sorted for a stable listing */
    size_t n = r->elements;
    char **ids = xcalloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = r->element[i]->str;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(ids[j - 1], ids[j]) > 0; j--) {
            char *t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    int rc = ADMIN_OK;
    for (size_t i = 0; i < n && rc == ADMIN_OK; i++) {
        struct reg_site s;
        char err[300];
        if (registry_site_get(a->rc, ids[i], &s, err, sizeof err) != 1)
            continue;
        if (arr)
            cJSON_AddItemToArray(arr, site_json(&s));
        else
            print_site(&s, false);
    }
    free(ids);
    freeReplyObject(r);
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "sites", arr);
        return admin_emit_json(o, rc);
    }
    return rc;
}

static int site_show(struct admin *a)
{
    if (a->nargs != 1)
        return admin_usage_error("site show: expected one SITE");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct reg_site s;
    int rc = get_site(a, a->args[0], &s);
    if (rc != ADMIN_OK)
        return rc;
    if (a->json)
        return admin_emit_json(site_json(&s), ADMIN_OK);
    print_site(&s, true);
    return ADMIN_OK;
}

static int site_remove(struct admin *a)
{
    if (a->nargs != 1)
        return admin_usage_error("site remove: expected one SITE");
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct reg_site s;
    int rc = get_site(a, a->args[0], &s);
    if (rc != ADMIN_OK)
        return rc;
    struct txn t;
    txn_begin(&t, a);
    queue_unmap(&t, &s);
    txn_cmd(&t, "DEL " REG_SITE "%s", s.id);
    txn_cmd(&t, "SREM " REG_SITES " %s", s.id);
    if ((rc = txn_commit(&t, "site remove")) != ADMIN_OK)
        return rc;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "removed", s.id);
        return admin_emit_json(o, ADMIN_OK);
    }
    printf("removed site %s from the registry; its counts stay until they expire or "
           "`veil-admin purge %s`\n", s.id, s.id);
    return ADMIN_OK;
}

static int site_rename(struct admin *a)
{
    if (a->nargs != 2)
        return admin_usage_error("site rename: expected OLD NEW");
    const char *to = a->args[1];
    if (!admin_valid_host(to))
        return admin_usage_error("'%s': a site id is a lowercase hostname", to);
    if (!admin_redis(a))
        return ADMIN_REDIS;
    struct reg_site old, s, other;
    int rc = get_site(a, a->args[0], &old);
    if (rc != ADMIN_OK)
        return rc;
    char err[300];
    if (registry_site_get(a->rc, to, &other, err, sizeof err) != 0) {
        fprintf(stderr, "veil-admin: site %s already exists\n", to);
        return ADMIN_FOUND;
    }
    s = old;
    str_copy(s.id, sizeof s.id, to, strlen(to));
    /* NEW first, then every old hostname (OLD among them) */
    char hosts[REG_FIELD_MAX];
    str_copy(hosts, sizeof hosts, old.hostnames, strlen(old.hostnames));
    const char *list[REG_HOSTS_MAX];
    int n = 0;
    for (char *save = NULL, *h = strtok_r(hosts, "\n", &save); h && n < REG_HOSTS_MAX;
         h = strtok_r(NULL, "\n", &save))
        list[n++] = h;
    if (!join_lines(s.hostnames, sizeof s.hostnames, to, list, n))
        return admin_usage_error("too many hostnames");
    s.shard = (long)shard_of_site(to, strlen(to), a->shards);
    struct reg_site probe = s;
    str_copy(probe.hostnames, sizeof probe.hostnames, to, strlen(to));
    if ((rc = check_hosts_free(a, &probe)) != ADMIN_OK)
        return rc;
    if ((rc = site_write(a, &old, &s, "site rename")) != ADMIN_OK)
        return rc;
    if (a->json)
        return admin_emit_json(site_json(&s), ADMIN_OK);
    printf("renamed %s to %s (shard %ld); %s stays one of its hostnames; counts recorded "
           "before stay under %s\n", old.id, s.id, s.shard, old.id, old.id);
    return ADMIN_OK;
}

int admin_site(struct admin *a, const char *verb)
{
    if (!strcmp(verb, "add"))
        return site_add_or_set(a, true);
    if (!strcmp(verb, "set"))
        return site_add_or_set(a, false);
    if (!strcmp(verb, "list"))
        return site_list(a);
    if (!strcmp(verb, "show"))
        return site_show(a);
    if (!strcmp(verb, "remove"))
        return site_remove(a);
    if (!strcmp(verb, "rename"))
        return site_rename(a);
    return admin_usage_error("site %s: expected add, set, list, show, remove or rename", verb);
}
