/* consumer.c - the roll-up worker loop (see consumer.h).
 *
 * State machine (changed only in set_state):
 *   DISCONNECTED -> connect, create the group (MKSTREAM, BUSYGROUP ok),
 *                   load the script                          -> OWN_PENDING
 *   OWN_PENDING  -> XREADGROUP .. 0: entries this consumer was given but
 *                   did not commit (e.g. a reply lost with the connection);
 *                   none left                               -> READING
 *   READING      -> XAUTOCLAIM when due (entries idle at dead workers),
 *                   else XREADGROUP .. BLOCK block_ms >
 * Any Redis failure -> back off, then DISCONNECTED (broken connection) or
 * OWN_PENDING (error reply: the group is re-created if it vanished).
 *
 * It never logs event content or visitor hashes: only counts, timings,
 * stream ids, site-free reasons and Redis error texts. */
#include "consumer.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "commit.h"
#include "event.h"
#include "log.h"
#include "rollup.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_TIMEOUT_MS 60000 /* a large batch's script may run a while */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define REPORT_EVERY_MS 10000
#define FORGET_EVERY_MS 60000
#define FORGET_IDLE_MIN_MS 600000 /* dead consumers' names go after 10 minutes */
#define REJECT_LOGS_PER_REPORT 10

enum consumer_state { CS_DISCONNECTED = 0, CS_OWN_PENDING, CS_READING };

static const char *const state_names[] = {"disconnected", "own-pending", "reading"};

/* Per-batch scratch arrays, grown to the largest batch seen. */
struct batch {
    size_t n, cap;
    const char **ids;
    size_t *idlens;
    const redisReply **fields; /* NULL: entry deleted from the stream */
    bool *excluded;            /* taken by another worker: not ours to commit */
    const char **commit_ids;   /* the non-excluded ids, compacted */
    size_t *commit_idlens;
    size_t *commit_index;      /* commit_ids[k] is ids[commit_index[k]] */
    bool *lost;
};

struct tally {
    unsigned long long events, rejected, expired, gone;
};

struct consumer {
    const struct agg_config *cfg;
    enum consumer_state state;
    redisContext *rc;
    struct rollup *rollup;
    struct commit *commit;
    struct commit_params params;
    char stream_key[64], sites_key[64];
    char claim_cursor[64];
    uint64_t next_claim_ms, next_forget_ms, next_report_ms, report_start_ms;
    int backoff_ms;
    unsigned rejects_logged;
    struct consumer_stats stats, reported;
    struct batch batch;
    struct event_record ev; /* decoding scratch, ~14 KB */
};

static void set_state(struct consumer *c, enum consumer_state s)
{
    if (c->state != s)
        log_debug("consumer %s -> %s", state_names[c->state], state_names[s]);
    c->state = s;
}

struct consumer *consumer_new(const struct agg_config *cfg)
{
    struct consumer *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    c->rollup = rollup_new(ROLLUP_SHARD_PREFIX, cfg->retention_days);
    c->commit = commit_new();
    rollup_key_stream(c->stream_key, sizeof c->stream_key, ROLLUP_SHARD_PREFIX);
    rollup_key_sites(c->sites_key, sizeof c->sites_key, ROLLUP_SHARD_PREFIX);
    c->params = (struct commit_params){c->stream_key, c->sites_key, ROLLUP_GROUP,
                                       cfg->consumer, cfg->breakdown_cap,
                                       cfg->session_timeout_s};
    str_copy(c->claim_cursor, sizeof c->claim_cursor, "0-0", 3);
    c->backoff_ms = BACKOFF_MIN_MS;
    return c;
}

static void batch_free(struct batch *b)
{
    free(b->ids);
    free(b->idlens);
    free(b->fields);
    free(b->excluded);
    free(b->commit_ids);
    free(b->commit_idlens);
    free(b->commit_index);
    free(b->lost);
}

void consumer_free(struct consumer *c)
{
    if (!c)
        return;
    if (c->rc)
        redisFree(c->rc);
    rollup_free(c->rollup);
    commit_free(c->commit);
    batch_free(&c->batch);
    free(c);
}

void consumer_get_stats(const struct consumer *c, struct consumer_stats *out)
{
    *out = c->stats;
}

/* True when stop_fd is readable within timeout_ms: the interruptible wait. */
static bool stop_requested(int stop_fd, int timeout_ms)
{
    struct pollfd pfd = {stop_fd, POLLIN, 0};
    int n = poll(&pfd, 1, timeout_ms);
    return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

static void disconnect(struct consumer *c)
{
    if (c->rc)
        redisFree(c->rc);
    c->rc = NULL;
    set_state(c, CS_DISCONNECTED);
}

/* XGROUP CREATE .. 0 MKSTREAM: entries already in the stream are rolled up
 * too. An existing group (BUSYGROUP) is fine. */
static int ensure_group(struct consumer *c, char *err, size_t errlen)
{
    const char *argv[] = {"XGROUP", "CREATE", c->stream_key, ROLLUP_GROUP, "0", "MKSTREAM"};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(c->rc, 6, argv, lens);
    int rv = -1;
    if (reply && (reply->type == REDIS_REPLY_STATUS ||
                  (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) == 0)))
        rv = 0;
    else
        str_format(err, errlen, "XGROUP CREATE: %s",
                   reply ? (reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply")
                         : c->rc->errstr);
    if (reply)
        freeReplyObject(reply);
    return rv;
}

static int connect_redis(struct consumer *c, char *err, size_t errlen)
{
    const char *addr = c->cfg->redis;
    struct timeval ct = {CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000};
    if (strncmp(addr, "unix:", 5) == 0) {
        c->rc = redisConnectUnixWithTimeout(addr + 5, ct);
    } else {
        char host[300];
        int port;
        if (!hostport_split(addr, host, sizeof host, &port)) {
            str_format(err, errlen, "redis: bad address");
            return -1;
        }
        c->rc = redisConnectWithTimeout(host, port, ct);
    }
    if (!c->rc || c->rc->err) {
        str_format(err, errlen, "connect: %s", c->rc ? c->rc->errstr : "out of memory");
        goto err;
    }
    long long cmd_ms = COMMAND_TIMEOUT_MS + c->cfg->block_ms;
    struct timeval tv = {(time_t)(cmd_ms / 1000), (suseconds_t)(cmd_ms % 1000) * 1000};
    if (redisSetTimeout(c->rc, tv) != REDIS_OK) {
        str_format(err, errlen, "cannot set the command timeout");
        goto err;
    }
    if (strncmp(addr, "unix:", 5) != 0)
        redisEnableKeepAlive(c->rc);
    if (ensure_group(c, err, errlen) != 0 || commit_load(c->commit, c->rc, err, errlen) != 0)
        goto err;
    set_state(c, CS_OWN_PENDING);
    return 0;
err:
    disconnect(c);
    return -1;
}

static void batch_reserve(struct batch *b, size_t n)
{
    if (n <= b->cap)
        return;
    b->cap = n;
    b->ids = xrealloc(b->ids, n * sizeof *b->ids);
    b->idlens = xrealloc(b->idlens, n * sizeof *b->idlens);
    b->fields = xrealloc(b->fields, n * sizeof *b->fields);
    b->excluded = xrealloc(b->excluded, n * sizeof *b->excluded);
    b->commit_ids = xrealloc(b->commit_ids, n * sizeof *b->commit_ids);
    b->commit_idlens = xrealloc(b->commit_idlens, n * sizeof *b->commit_idlens);
    b->commit_index = xrealloc(b->commit_index, n * sizeof *b->commit_index);
    b->lost = xrealloc(b->lost, n * sizeof *b->lost);
}

static void log_reject(struct consumer *c, size_t i, const char *reason)
{
    if (c->rejects_logged++ < REJECT_LOGS_PER_REPORT)
        log_warn("stream entry %.*s rejected (acknowledged, not counted): %s",
                 (int)c->batch.idlens[i], c->batch.ids[i], reason);
}

/* Decode entry i and add it to the rollup; counts what happened in *t. */
static void combine_entry(struct consumer *c, size_t i, int64_t now, struct tally *t)
{
    const redisReply *fields = c->batch.fields[i];
    char reason[160];
    if (!fields) {
        t->gone++;
        return;
    }
    if (fields->elements % 2 != 0) {
        t->rejected++;
        log_reject(c, i, "odd number of field/value items");
        return;
    }
    event_record_reset(&c->ev);
    for (size_t j = 0; j < fields->elements; j += 2) {
        const redisReply *f = fields->element[j], *v = fields->element[j + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            t->rejected++;
            log_reject(c, i, "field or value is not a string");
            return;
        }
        if (!event_decode_field(&c->ev, f->str, f->len, v->str, v->len, reason, sizeof reason)) {
            t->rejected++;
            log_reject(c, i, reason);
            return;
        }
    }
    if (!event_decode_check(&c->ev, reason, sizeof reason)) {
        t->rejected++;
        log_reject(c, i, reason);
        return;
    }
    switch (rollup_add(c->rollup, &c->ev, now, reason, sizeof reason)) {
    case ROLLUP_ADDED:
        t->events++;
        break;
    case ROLLUP_EXPIRED:
        t->expired++;
        break;
    case ROLLUP_INVALID:
        t->rejected++;
        log_reject(c, i, reason);
        break;
    }
}

/* Combine and commit `entries` (an array of [id, [field, value, ...]]).
 * Entries another worker took meanwhile are dropped and the rest
 * recombined. Returns 0, or -1 when the commit failed (entries stay
 * pending for this consumer). */
static int process_entries(struct consumer *c, const redisReply *entries)
{
    struct batch *b = &c->batch;
    batch_reserve(b, entries->elements);
    b->n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        b->ids[b->n] = e->element[0]->str;
        b->idlens[b->n] = e->element[0]->len;
        b->fields[b->n] = e->element[1]->type == REDIS_REPLY_ARRAY ? e->element[1] : NULL;
        b->excluded[b->n] = false;
        b->n++;
    }
    if (b->n == 0)
        return 0;

    uint64_t started = clock_ms();
    for (;;) {
        struct tally t = {0, 0, 0, 0};
        int64_t now = (int64_t)time(NULL);
        size_t ncommit = 0;
        rollup_reset(c->rollup);
        for (size_t i = 0; i < b->n; i++) {
            if (b->excluded[i])
                continue;
            combine_entry(c, i, now, &t);
            b->commit_ids[ncommit] = b->ids[i];
            b->commit_idlens[ncommit] = b->idlens[i];
            b->commit_index[ncommit] = i;
            ncommit++;
        }
        if (ncommit == 0)
            return 0;
        rollup_finish(c->rollup);

        char err[512];
        enum commit_result res =
            commit_batch(c->commit, c->rc, &c->params, b->commit_ids, b->commit_idlens,
                         ncommit, c->rollup, b->lost, err, sizeof err);
        if (res == COMMIT_OK) {
            c->stats.batches++;
            c->stats.events += t.events;
            c->stats.rejected += t.rejected;
            c->stats.expired += t.expired;
            c->stats.gone += t.gone;
            log_debug("batch of %zu entries committed in %llu ms (%llu counted)", ncommit,
                      (unsigned long long)(clock_ms() - started), t.events);
            return 0;
        }
        if (res == COMMIT_ERROR) {
            log_warn("batch of %zu entries not committed (they stay pending): %s", ncommit,
                     err);
            return -1;
        }
        size_t nlost = 0;
        for (size_t k = 0; k < ncommit; k++) {
            if (b->lost[k]) {
                b->excluded[b->commit_index[k]] = true;
                nlost++;
            }
        }
        c->stats.conflicts += nlost;
        log_info("%zu of %zu entries were taken over by another worker; recombining the rest",
                 nlost, ncommit);
        if (nlost == 0)
            return -1; /* cannot happen; never loop on it */
    }
}

/* XREADGROUP with `id` ("0" = own pending, ">" = new). Returns the reply
 * (caller frees) and points *entries at the entry array or NULL when
 * there is none; NULL with *failed set on error. */
static redisReply *read_group(struct consumer *c, const char *id, bool block,
                              const redisReply **entries, bool *failed)
{
    char count[24], block_ms[24];
    str_format(count, sizeof count, "%lld", c->cfg->batch_size);
    str_format(block_ms, sizeof block_ms, "%lld", c->cfg->block_ms);
    const char *argv[11] = {"XREADGROUP", "GROUP", ROLLUP_GROUP, c->cfg->consumer, "COUNT",
                            count};
    int argc = 6;
    if (block) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block_ms;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = c->stream_key;
    argv[argc++] = id;
    size_t lens[11];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);

    *entries = NULL;
    *failed = false;
    redisReply *reply = redisCommandArgv(c->rc, argc, argv, lens);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        log_warn("XREADGROUP: %s", reply ? reply->str : c->rc->errstr);
        *failed = true;
        if (reply)
            freeReplyObject(reply);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        *entries = reply->element[0]->element[1];
    return reply;
}

static int step_read(struct consumer *c, bool own_pending)
{
    const redisReply *entries;
    bool failed;
    redisReply *reply = read_group(c, own_pending ? "0" : ">", !own_pending, &entries, &failed);
    if (failed)
        return -1;
    int rv = 0;
    if (entries && entries->elements > 0) {
        if (own_pending)
            log_info("re-reading %zu entries left pending for this consumer",
                     entries->elements);
        rv = process_entries(c, entries);
    } else if (own_pending) {
        set_state(c, CS_READING);
    }
    freeReplyObject(reply);
    return rv;
}

/* One XAUTOCLAIM step over the group's pending list. */
static int step_claim(struct consumer *c, uint64_t now_ms)
{
    char idle[24], count[24];
    str_format(idle, sizeof idle, "%lld", c->cfg->claim_idle_ms);
    str_format(count, sizeof count, "%lld", c->cfg->batch_size);
    const char *argv[] = {"XAUTOCLAIM", c->stream_key, ROLLUP_GROUP, c->cfg->consumer,
                          idle,         c->claim_cursor, "COUNT",    count};
    size_t lens[8];
    for (size_t i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(c->rc, 8, argv, lens);
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        log_warn("XAUTOCLAIM: %s",
                 reply ? (reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply")
                       : c->rc->errstr);
        if (reply)
            freeReplyObject(reply);
        return -1;
    }
    const redisReply *cursor = reply->element[0], *entries = reply->element[1];
    if (!str_copy(c->claim_cursor, sizeof c->claim_cursor, cursor->str, cursor->len))
        str_copy(c->claim_cursor, sizeof c->claim_cursor, "0-0", 3);
    if (strcmp(c->claim_cursor, "0-0") == 0) {
        long long every = c->cfg->claim_idle_ms / 2;
        if (every > 5000)
            every = 5000;
        c->next_claim_ms = now_ms + (uint64_t)every;
    }
    int rv = 0;
    if (entries->elements > 0) {
        log_info("claimed %zu entries idle for over %lld ms at other consumers",
                 entries->elements, c->cfg->claim_idle_ms);
        c->stats.claimed += entries->elements;
        rv = process_entries(c, entries);
    }
    freeReplyObject(reply);
    return rv;
}

static void forget_consumers(struct consumer *c)
{
    char err[256];
    long long idle = c->cfg->claim_idle_ms * 10;
    if (idle < FORGET_IDLE_MIN_MS)
        idle = FORGET_IDLE_MIN_MS;
    long long removed = commit_forget_consumers(c->rc, &c->params, idle, err, sizeof err);
    if (removed < 0)
        log_warn("%s", err);
    else if (removed > 0)
        log_info("removed %lld idle consumer names with nothing pending", removed);
}

static void report(struct consumer *c, uint64_t now_ms, bool final)
{
    const struct consumer_stats *s = &c->stats, *r = &c->reported;
    uint64_t span = now_ms - c->report_start_ms;
    if (s->batches != r->batches || final) {
        unsigned long long events = s->events - r->events;
        log_info("rolled up %llu events in %llu batches (%.0f events/s); rejected %llu, "
                 "expired %llu, deleted %llu, claimed %llu, conflicts %llu",
                 events, s->batches - r->batches,
                 span ? (double)events * 1000.0 / (double)span : 0.0, s->rejected - r->rejected,
                 s->expired - r->expired, s->gone - r->gone, s->claimed - r->claimed,
                 s->conflicts - r->conflicts);
    }
    if (c->rejects_logged > REJECT_LOGS_PER_REPORT)
        log_warn("%u more rejected entries not logged individually",
                 c->rejects_logged - REJECT_LOGS_PER_REPORT);
    c->rejects_logged = 0;
    c->reported = *s;
    c->report_start_ms = now_ms;
    c->next_report_ms = now_ms + REPORT_EVERY_MS;
}

/* After a failure: wait (interruptibly), then reconnect or re-read. */
static void recover(struct consumer *c, int stop_fd)
{
    bool broken = c->rc == NULL || c->rc->err != 0;
    if (broken) {
        disconnect(c);
    } else {
        char err[256];
        if (ensure_group(c, err, sizeof err) != 0) {
            log_warn("%s", err);
            disconnect(c);
        } else {
            set_state(c, CS_OWN_PENDING);
        }
    }
    stop_requested(stop_fd, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

int consumer_run(struct consumer *c, int stop_fd)
{
    uint64_t now = clock_ms();
    c->report_start_ms = now;
    c->next_report_ms = now + REPORT_EVERY_MS;
    c->next_claim_ms = now;
    c->next_forget_ms = now + FORGET_EVERY_MS;
    bool outage_logged = false;

    while (!stop_requested(stop_fd, 0)) {
        now = clock_ms();
        if (now >= c->next_report_ms)
            report(c, now, false);
        if (c->state == CS_DISCONNECTED) {
            char err[512];
            if (connect_redis(c, err, sizeof err) != 0) {
                if (!outage_logged)
                    log_warn("redis %s unavailable (%s); retrying", c->cfg->redis, err);
                outage_logged = true;
                recover(c, stop_fd);
                continue;
            }
            log_info("connected to redis %s as consumer '%s' of group '%s'", c->cfg->redis,
                     c->cfg->consumer, ROLLUP_GROUP);
            outage_logged = false;
        }
        int rv;
        if (c->state == CS_OWN_PENDING)
            rv = step_read(c, true);
        else if (now >= c->next_claim_ms)
            rv = step_claim(c, now);
        else
            rv = step_read(c, false);
        if (rv == 0 && now >= c->next_forget_ms) {
            forget_consumers(c);
            c->next_forget_ms = now + FORGET_EVERY_MS;
        }
        if (rv != 0)
            recover(c, stop_fd);
        else
            c->backoff_ms = BACKOFF_MIN_MS;
    }
    report(c, clock_ms(), true);
    return 0;
}
