/* salt.c - rotating, Redis-shared visitor-hash salts (see salt.h).
 *
 * Never writes a salt to disk or a log line; wipes salts on rotation and
 * at exit. Uses its own synchronous Redis connection on its own thread so
 * that request threads never block. */
#include "salt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis.h>
#include <sodium.h>

#include "log.h"
#include "rcluster.h"
#include "util.h"

#define SALT_SLOTS 2
#define SALT_PREFETCH_S 120 /* fetch the next period's salt this early */
#define SALT_VERIFY_S 1     /* check that Redis still holds our salt this often */

struct salt_slot {
    int64_t period_id;       /* -1 = empty */
    bool published;          /* agreed with Redis */
    int64_t verified_at;     /* unix seconds of the last agreement */
    uint8_t salt[VISITOR_SALT_BYTES];
};

struct salt_store {
    enum salt_period period;
    char *redis;
    redisContext *rc;
    char rc_key[96];         /* the key whose node rc is connected to */
    pthread_mutex_t lock;
    struct salt_slot slot[SALT_SLOTS];
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
};

struct salt_store *salt_store_new(enum salt_period period, const char *redis)
{
    struct salt_store *s = xcalloc(1, sizeof *s);
    s->period = period;
    s->redis = xstrdup(redis);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    pthread_cond_init(&s->stop_cond, NULL);
    for (int i = 0; i < SALT_SLOTS; i++)
        s->slot[i].period_id = -1;
    return s;
}

static void disconnect(struct salt_store *s)
{
    if (s->rc)
        redisFree(s->rc);
    s->rc = NULL;
}

/* A connection to the node holding `key` (the server itself unless redis
 * names a Redis Cluster), kept while the key stays the same. */
static bool connect_redis(struct salt_store *s, const char *key, int timeout_ms)
{
    if (s->rc && strcmp(s->rc_key, key) == 0)
        return true;
    disconnect(s);
    char err[256];
    s->rc = rcluster_connect_slot(s->redis, key, timeout_ms, err, sizeof err);
    if (!s->rc)
        return false;
    str_copy(s->rc_key, sizeof s->rc_key, key, strlen(key));
    return true;
}

/* Agree on the salt of period `id` with Redis: SET NX our candidate (the
 * salt we hold, or a fresh random one when `mine` is NULL), then GET
 * whichever won. Returns true and fills `salt` on success. */
static bool fetch_salt(struct salt_store *s, int64_t id, int64_t now, const uint8_t *mine,
                       uint8_t salt[VISITOR_SALT_BYTES])
{
    char key[96];
    if (!salt_key(s->period, id, key, sizeof key) || !connect_redis(s, key, 1000))
        return false;
    uint8_t candidate[VISITOR_SALT_BYTES];
    if (mine)
        memcpy(candidate, mine, sizeof candidate);
    else
        visitor_salt_random(candidate);
    int64_t ttl = salt_key_ttl(s->period, id, now); /* at most two periods */
    if (ttl < 1) {
        sodium_memzero(candidate, sizeof candidate);
        return false;
    }
    char ttl_text[24];
    str_format(ttl_text, sizeof ttl_text, "%lld", (long long)ttl);
    const char *argv[] = {"SET", key, (const char *)candidate, "NX", "EX", ttl_text};
    size_t argvlen[] = {3, strlen(key), sizeof candidate, 2, 2, strlen(ttl_text)};
    redisReply *r = redisCommandArgv(s->rc, 6, argv, argvlen);
    sodium_memzero(candidate, sizeof candidate);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        disconnect(s);
        return false;
    }
    freeReplyObject(r);
    r = redisCommand(s->rc, "GET %s", key);
    bool ok = r && r->type == REDIS_REPLY_STRING && r->len == VISITOR_SALT_BYTES;
    if (ok)
        memcpy(salt, r->str, VISITOR_SALT_BYTES);
    if (r) {
        if (r->type == REDIS_REPLY_STRING)
            sodium_memzero(r->str, r->len);
        freeReplyObject(r);
    } else {
        disconnect(s);
    }
    return ok;
}

/* Make sure period `id` has a slot: from Redis if reachable, else local.
 * Retries publishing a local salt; adopts Redis's if another collector
 * published first (hashes of this period may then differ briefly).
 *
 * A published salt is checked again every SALT_VERIFY_S: Redis may have
 * lost it (FLUSHALL, a restart without persistence, eviction) while a
 * collector started since published another. The check offers the salt we
 * hold with SET NX and adopts whatever Redis then holds, so every
 * collector converges on one salt per period within seconds of the loss. */
static void ensure_period(struct salt_store *s, int64_t id, int64_t now, bool allow_local)
{
    pthread_mutex_lock(&s->lock);
    int found = -1, oldest = 0;
    for (int i = 0; i < SALT_SLOTS; i++) {
        if (s->slot[i].period_id == id)
            found = i;
        if (s->slot[i].period_id < s->slot[oldest].period_id)
            oldest = i;
    }
    bool verify = found >= 0 && s->slot[found].published;
    uint8_t mine[VISITOR_SALT_BYTES];
    if (verify) {
        if (now - s->slot[found].verified_at < SALT_VERIFY_S) {
            pthread_mutex_unlock(&s->lock);
            return;
        }
        memcpy(mine, s->slot[found].salt, sizeof mine);
    }
    pthread_mutex_unlock(&s->lock);

    uint8_t salt[VISITOR_SALT_BYTES];
    bool published = fetch_salt(s, id, now, verify ? mine : NULL, salt);
    if (verify) {
        bool changed = published && sodium_memcmp(mine, salt, sizeof mine) != 0;
        sodium_memzero(mine, sizeof mine);
        if (changed)
            log_warn("the salt of this period in Redis is not ours (Redis lost its data?): "
                     "adopting it");
        if (!published) {
            sodium_memzero(salt, sizeof salt);
            return; /* Redis away: keep ours, check again next time */
        }
    }
    if (!published) {
        if (found >= 0 || !allow_local)
            return;
        visitor_salt_random(salt);
        log_warn("redis unreachable: using a local salt for this period until it can be "
                 "shared");
    }
    pthread_mutex_lock(&s->lock);
    int slot = found >= 0 ? found : oldest;
    if (found < 0 || published) {
        sodium_memzero(s->slot[slot].salt, sizeof s->slot[slot].salt);
        memcpy(s->slot[slot].salt, salt, sizeof salt);
        s->slot[slot].period_id = id;
        s->slot[slot].published = published;
        s->slot[slot].verified_at = now;
    }
    pthread_mutex_unlock(&s->lock);
    sodium_memzero(salt, sizeof salt);
}

static void *rotate_main(void *arg)
{
    struct salt_store *s = arg;
    pthread_mutex_lock(&s->stop_lock);
    while (!s->stopping) {
        pthread_mutex_unlock(&s->stop_lock);
        int64_t now = (int64_t)time(NULL);
        int64_t id = salt_period_id(s->period, now);
        ensure_period(s, id, now, true);
        if (salt_period_end(s->period, id) - now <= SALT_PREFETCH_S)
            ensure_period(s, id + 1, now, false);
        pthread_mutex_lock(&s->stop_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (!s->stopping &&
               pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&s->stop_lock);
    return NULL;
}

int salt_store_start(struct salt_store *s, int wait_ms)
{
    if (s->period == SALT_OFF)
        return 0;
    int64_t now = (int64_t)time(NULL);
    int64_t id = salt_period_id(s->period, now);
    uint64_t deadline = clock_ms() + (uint64_t)wait_ms;
    do {
        ensure_period(s, id, now, false);
        if (salt_store_get(s, now, (uint8_t[VISITOR_SALT_BYTES]){0}))
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    } while (clock_ms() < deadline);
    ensure_period(s, id, now, true);
    if (pthread_create(&s->thread, NULL, rotate_main, s) != 0)
        return -1;
    s->thread_started = true;
    return 0;
}

bool salt_store_get(struct salt_store *s, int64_t unix_seconds, uint8_t out[VISITOR_SALT_BYTES])
{
    if (s->period == SALT_OFF)
        return false;
    int64_t id = salt_period_id(s->period, unix_seconds);
    bool ok = false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < SALT_SLOTS; i++) {
        if (s->slot[i].period_id == id) {
            memcpy(out, s->slot[i].salt, VISITOR_SALT_BYTES);
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void salt_store_free(struct salt_store *s)
{
    if (!s)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->stop_lock);
        s->stopping = true;
        pthread_cond_signal(&s->stop_cond);
        pthread_mutex_unlock(&s->stop_lock);
        pthread_join(s->thread, NULL);
    }
    disconnect(s);
    sodium_memzero(s->slot, sizeof s->slot);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->stop_lock);
    pthread_cond_destroy(&s->stop_cond);
    free(s->redis);
    free(s);
}
