/* consumer.c - the roll-up worker loop (see consumer.h).
 *
 * State machine (changed only in set_state):
 *   DISCONNECTED -> connect, create the group (MKSTREAM, BUSYGROUP ok),
 *                   load the script                          -> OWN_PENDING
 *   OWN_PENDING  -> XREADGROUP .. 0 under each of our two consumer names:
 *                   entries given to us but not committed (e.g. a reply
 *                   lost with the connection); none left    -> READING
 *   READING      -> XAUTOCLAIM when due (entries idle at dead workers),
 *                   else XREADGROUP .. BLOCK block_ms > and the pipeline
 * Any Redis failure -> back off, then DISCONNECTED (broken connection) or
 * OWN_PENDING (error reply: the group is re-created if it vanished).
 *
 * The pipeline (READING): two batch slots read under two consumer names,
 * `<consumer>` and `<consumer>~2`, alternately. While Redis runs the commit
 * script of one batch, the next one is already read (under the other
 * name), decoded and combined here, and its session snapshot is queued
 * behind the commit. Because each name holds exactly one batch, the
 * script can check ownership with one count (commit.h `held`). The
 * pipeline returns to the main loop for claims, reports and stops.
 *
 * It never logs event content or visitor hashes: only counts, timings,
 * stream ids, site-free reasons and Redis error texts. */
#include "consumer.h"

#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "commit.h"
#include "event.h"
#include "log.h"
#include "rollup.h"
#include "reply.h"
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

#define SLOTS 2

/* One batch in flight, read under the slot's own consumer name. */
struct slot {
    struct commit_params params;      /* .consumer: the slot's name */
    redisReply *reply;                /* holds the entries; NULL when empty */
    struct batch batch;
    size_t ncommit;                   /* batch.commit_ids in use */
    struct rollup *rollup;
    struct commit_snapshot *snap;
    struct tally tally;
    uint64_t started;
    bool exact;                       /* what else is pending under the name is unknown:
                                         the script checks every id */
};

struct consumer {
    const struct agg_config *cfg;
    enum consumer_state state;
    redisContext *rc;
    struct commit *commit;
    struct slot slots[SLOTS];
    int cur;                          /* the slot being committed */
    int own_slot;                     /* OWN_PENDING: the name being drained */
    char names[SLOTS][256];
    char stream_key[64], sites_key[64];
    char claim_cursor[64];
    uint64_t next_claim_ms, next_forget_ms, next_report_ms, report_start_ms;
    int backoff_ms;
    unsigned rejects_logged;
    struct consumer_stats stats, reported;
    struct event_record ev;       /* decoding scratch, ~14 KB */
    struct event_record ev_blank; /* as event_record_init leaves it */
};

/* event_record_init clears the whole record, ~14 KB, two thirds of it the
 * 30 props; decoding never reads a prop past nprops, so per entry only the
 * part before the props is restored from a cleared copy. */
_Static_assert(sizeof(struct event_record) - offsetof(struct event_record, props) -
                       sizeof(((struct event_record *)0)->props) <
                   _Alignof(struct event_record),
               "props must stay the last member of struct event_record");

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
    c->commit = commit_new();
    event_record_init(&c->ev_blank);
    rollup_key_stream(c->stream_key, sizeof c->stream_key, ROLLUP_SHARD_PREFIX);
    rollup_key_sites(c->sites_key, sizeof c->sites_key, ROLLUP_SHARD_PREFIX);
    str_format(c->names[0], sizeof c->names[0], "%s", cfg->consumer);
    str_format(c->names[1], sizeof c->names[1], "%s~2", cfg->consumer);
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &c->slots[i];
        s->params = (struct commit_params){
            .stream_key = c->stream_key,
            .sites_key = c->sites_key,
            .group = ROLLUP_GROUP,
            .consumer = c->names[i],
            .breakdown_cap = cfg->breakdown_cap,
            .session_timeout_s = cfg->session_timeout_s,
            .prefix = ROLLUP_SHARD_PREFIX,
            .other_consumer = c->names[1 - i],
        };
        s->rollup = rollup_new(ROLLUP_SHARD_PREFIX, cfg->retention_days);
        s->snap = commit_snapshot_new();
    }
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

static void slot_release(const struct consumer *c, struct slot *s)
{
    if (s->reply)
        reply_free(c->rc, s->reply);
    s->reply = NULL;
    s->batch.n = 0;
    s->ncommit = 0;
}

void consumer_free(struct consumer *c)
{
    if (!c)
        return;
    for (int i = 0; i < SLOTS; i++)
        slot_release(c, &c->slots[i]);
    if (c->rc)
        redisFree(c->rc);
    for (int i = 0; i < SLOTS; i++) {
        rollup_free(c->slots[i].rollup);
        commit_snapshot_free(c->slots[i].snap);
        batch_free(&c->slots[i].batch);
    }
    commit_free(c->commit);
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
    for (int i = 0; i < SLOTS; i++)
        slot_release(c, &c->slots[i]); /* their replies belong to the connection's reader */
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
        reply_free(c->rc, reply);
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
    reply_install(c->rc);
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
    c->own_slot = 0;
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

static void log_reject(struct consumer *c, const struct batch *b, size_t i, const char *reason)
{
    if (c->rejects_logged++ < REJECT_LOGS_PER_REPORT)
        log_warn("stream entry %.*s rejected (acknowledged, not counted): %s",
                 (int)b->idlens[i], b->ids[i], reason);
}

/* Decode entry i of slot s and add it to its rollup; counts what happened
 * in the slot's tally. */
static void combine_entry(struct consumer *c, struct slot *s, size_t i, int64_t now)
{
    const struct batch *b = &s->batch;
    struct tally *t = &s->tally;
    const redisReply *fields = b->fields[i];
    char reason[160];
    if (!fields) {
        t->gone++;
        return;
    }
    if (fields->elements % 2 != 0) {
        t->rejected++;
        log_reject(c, b, i, "odd number of field/value items");
        return;
    }
    memcpy(&c->ev, &c->ev_blank, offsetof(struct event_record, props)); /* nprops = 0 */
    for (size_t j = 0; j < fields->elements; j += 2) {
        const redisReply *f = fields->element[j], *v = fields->element[j + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            t->rejected++;
            log_reject(c, b, i, "field or value is not a string");
            return;
        }
        if (!event_decode_field(&c->ev, f->str, f->len, v->str, v->len, reason, sizeof reason)) {
            t->rejected++;
            log_reject(c, b, i, reason);
            return;
        }
    }
    if (!event_decode_check(&c->ev, reason, sizeof reason)) {
        t->rejected++;
        log_reject(c, b, i, reason);
        return;
    }
    switch (rollup_add(s->rollup, &c->ev, now, reason, sizeof reason)) {
    case ROLLUP_ADDED:
        t->events++;
        break;
    case ROLLUP_EXPIRED:
        t->expired++;
        break;
    case ROLLUP_INVALID:
        t->rejected++;
        log_reject(c, b, i, reason);
        break;
    }
}

/* Give slot s the entries (an array of [id, [field, value, ...]]) of
 * `reply`, which it then owns. Returns the number of entries. */
static size_t slot_take(const struct consumer *c, struct slot *s, redisReply *reply,
                        const redisReply *entries, bool exact)
{
    struct batch *b = &s->batch;
    slot_release(c, s);
    s->reply = reply;
    s->exact = exact;
    s->started = clock_ms();
    batch_reserve(b, entries->elements);
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
    return b->n;
}

/* Combine the slot's entries that are still ours. Returns how many are to
 * be committed. */
static size_t slot_combine(struct consumer *c, struct slot *s)
{
    struct batch *b = &s->batch;
    int64_t now = (int64_t)time(NULL);
    s->tally = (struct tally){0, 0, 0, 0};
    s->ncommit = 0;
    rollup_reset(s->rollup);
    for (size_t i = 0; i < b->n; i++) {
        if (b->excluded[i])
            continue;
        combine_entry(c, s, i, now);
        b->commit_ids[s->ncommit] = b->ids[i];
        b->commit_idlens[s->ncommit] = b->idlens[i];
        b->commit_index[s->ncommit] = i;
        s->ncommit++;
    }
    rollup_finish(s->rollup);
    return s->ncommit;
}

static void slot_committed(struct consumer *c, struct slot *s)
{
    const struct tally *t = &s->tally;
    c->stats.batches++;
    c->stats.events += t->events;
    c->stats.rejected += t->rejected;
    c->stats.expired += t->expired;
    c->stats.gone += t->gone;
    log_debug("batch of %zu entries committed in %llu ms (%llu counted)", s->ncommit,
              (unsigned long long)(clock_ms() - s->started), t->events);
}

/* Drop the entries the script found taken over; returns how many. */
static size_t slot_exclude_lost(struct consumer *c, struct slot *s)
{
    struct batch *b = &s->batch;
    size_t nlost = 0;
    for (size_t k = 0; k < s->ncommit; k++) {
        if (b->lost[k]) {
            b->excluded[b->commit_index[k]] = true;
            nlost++;
        }
    }
    c->stats.conflicts += nlost;
    log_info("%zu of %zu entries were taken over by another worker; recombining the rest",
             nlost, s->ncommit);
    return nlost;
}

/* Commit slot s synchronously: snapshot, commit, and again after a
 * conflict (without the lost entries) or a session change. The rollup
 * must be combined. Returns 0, or -1 when the commit failed (entries stay
 * pending for this consumer). */
static int slot_commit_sync(struct consumer *c, struct slot *s)
{
    char err[512];
    for (;;) {
        if (s->ncommit == 0)
            return 0;
        enum commit_result res = COMMIT_ERROR;
        if (commit_snapshot_send(c->commit, c->rc, &s->params, s->rollup, s->snap) != 0)
            str_format(err, sizeof err, "session snapshot: %s", c->rc->errstr);
        else if (commit_snapshot_receive(c->commit, c->rc, &s->params, s->rollup, s->snap, err,
                                         sizeof err) == 0 &&
                 commit_send(c->commit, c->rc, &s->params, s->batch.commit_ids,
                             s->batch.commit_idlens, s->ncommit, s->exact ? 0 : s->ncommit,
                             s->rollup, s->snap, err, sizeof err) == 0) {
            res = commit_receive(c->commit, c->rc, s->batch.commit_ids, s->batch.commit_idlens,
                                 s->ncommit, s->batch.lost, err, sizeof err);
            if (res == COMMIT_NOSCRIPT) {
                res = COMMIT_ERROR;
                if (commit_resend(c->commit, c->rc, err, sizeof err) == 0)
                    res = commit_receive(c->commit, c->rc, s->batch.commit_ids,
                                         s->batch.commit_idlens, s->ncommit, s->batch.lost,
                                         err, sizeof err);
                if (res == COMMIT_NOSCRIPT) {
                    res = COMMIT_ERROR;
                    str_format(err, sizeof err, "commit script: NOSCRIPT after loading it");
                }
            }
        }
        switch (res) {
        case COMMIT_OK:
            slot_committed(c, s);
            return 0;
        case COMMIT_CONFLICT:
            if (slot_exclude_lost(c, s) == 0)
                return -1; /* cannot happen; never loop on it */
            s->exact = true;
            slot_combine(c, s);
            continue;
        case COMMIT_STALE:
            log_debug("sessions changed under a batch of %zu entries; reading them again",
                      s->ncommit);
            continue;
        case COMMIT_NOSCRIPT:
        case COMMIT_ERROR:
            break;
        }
        log_warn("batch of %zu entries not committed (they stay pending): %s", s->ncommit, err);
        return -1;
    }
}

/* XREADGROUP under `name` with `id` ("0" = own pending, ">" = new),
 * blocking or not. Appends only (read the reply with read_group_reply). */
static int read_group_send(struct consumer *c, const char *name, const char *id, bool block)
{
    char count[24], block_ms[24];
    str_format(count, sizeof count, "%lld", c->cfg->batch_size);
    str_format(block_ms, sizeof block_ms, "%lld", c->cfg->block_ms);
    const char *argv[11] = {"XREADGROUP", "GROUP", ROLLUP_GROUP, name, "COUNT", count};
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
    return redisAppendCommandArgv(c->rc, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

/* The reply of read_group_send (caller frees); *entries points at the
 * entry array or NULL when there is none. NULL on error. */
static redisReply *read_group_reply(struct consumer *c, const redisReply **entries)
{
    *entries = NULL;
    void *r = NULL;
    if (redisGetReply(c->rc, &r) != REDIS_OK || !r) {
        log_warn("XREADGROUP: %s", c->rc->errstr);
        return NULL;
    }
    redisReply *reply = r;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_warn("XREADGROUP: %s", reply->str);
        reply_free(c->rc, reply);
        return NULL;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->element[1]->elements > 0)
        *entries = reply->element[0]->element[1];
    return reply;
}

/* OWN_PENDING: one batch of the entries pending under one of our names. */
static int step_own(struct consumer *c)
{
    struct slot *s = &c->slots[c->own_slot];
    const redisReply *entries;
    redisReply *reply = NULL;
    if (read_group_send(c, s->params.consumer, "0", false) == 0)
        reply = read_group_reply(c, &entries);
    if (!reply)
        return -1;
    if (!entries) {
        reply_free(c->rc, reply);
        if (++c->own_slot == SLOTS) {
            c->own_slot = 0;
            set_state(c, CS_READING);
        }
        return 0;
    }
    log_info("re-reading %zu entries left pending for this consumer", entries->elements);
    slot_take(c, s, reply, entries, true);
    slot_combine(c, s);
    int rv = slot_commit_sync(c, s);
    slot_release(c, s);
    return rv;
}

/* Whether the pipeline may read another batch before returning to the
 * main loop (stop, claims, reports and forgetting happen there). */
static bool may_continue(const struct consumer *c, int stop_fd)
{
    uint64_t now = clock_ms();
    return now < c->next_claim_ms && now < c->next_report_ms && now < c->next_forget_ms &&
           !stop_requested(stop_fd, 0);
}

/* READING: new entries, pipelined (see the top of this file). */
static int step_read(struct consumer *c, int stop_fd)
{
    struct slot *cur = &c->slots[c->cur];
    const redisReply *entries;
    redisReply *reply = NULL;
    if (read_group_send(c, cur->params.consumer, ">", true) == 0)
        reply = read_group_reply(c, &entries);
    if (!reply)
        return -1;
    if (!entries) {
        reply_free(c->rc, reply);
        return 0;
    }
    slot_take(c, cur, reply, entries, false);
    slot_combine(c, cur);
    char err[512];
    if (commit_snapshot_send(c->commit, c->rc, &cur->params, cur->rollup, cur->snap) != 0 ||
        commit_snapshot_receive(c->commit, c->rc, &cur->params, cur->rollup, cur->snap, err,
                                sizeof err) != 0) {
        log_warn("batch of %zu entries not committed (they stay pending): session snapshot: %s",
                 cur->ncommit, c->rc->err ? c->rc->errstr : err);
        slot_release(c, cur);
        return -1;
    }
    for (;;) {
        /* cur: combined, its sessions applied. Read the next batch under
         * the other name first: it runs before cur's script, so cur's name
         * holds exactly cur's entries when the script counts them. */
        struct slot *next = &c->slots[1 - c->cur];
        bool prefetch = may_continue(c, stop_fd);
        bool have_next = false;
        int rv = 0;
        if (prefetch && read_group_send(c, next->params.consumer, ">", false) != 0)
            goto fail;
        if (commit_send(c->commit, c->rc, &cur->params, cur->batch.commit_ids,
                        cur->batch.commit_idlens, cur->ncommit, cur->exact ? 0 : cur->ncommit,
                        cur->rollup, cur->snap, err, sizeof err) != 0)
            goto fail;
        if (prefetch) {
            reply = read_group_reply(c, &entries);
            if (!reply)
                goto fail;
            if (entries) {
                /* combined while Redis runs cur's script; its snapshot is
                 * queued behind that script, so it sees cur's sessions */
                slot_take(c, next, reply, entries, false);
                slot_combine(c, next);
                if (commit_snapshot_send(c->commit, c->rc, &next->params, next->rollup,
                                         next->snap) != 0)
                    goto fail;
                have_next = true;
            } else {
                reply_free(c->rc, reply);
            }
        }
        enum commit_result res =
            commit_receive(c->commit, c->rc, cur->batch.commit_ids, cur->batch.commit_idlens,
                           cur->ncommit, cur->batch.lost, err, sizeof err);
        if (res == COMMIT_ERROR) {
            log_warn("batch of %zu entries not committed (they stay pending): %s", cur->ncommit,
                     err);
            goto fail;
        }
        if (have_next && commit_snapshot_receive(c->commit, c->rc, &next->params, next->rollup,
                                                 next->snap, err, sizeof err) != 0) {
            log_warn("session snapshot: %s", err);
            goto fail;
        }
        /* Anything but success is retried synchronously; a snapshot of
         * next taken before that retry is checked again by next's script. */
        switch (res) {
        case COMMIT_OK:
            slot_committed(c, cur);
            break;
        case COMMIT_NOSCRIPT:
            if (commit_resend(c->commit, c->rc, err, sizeof err) != 0)
                goto fail;
            res = commit_receive(c->commit, c->rc, cur->batch.commit_ids,
                                 cur->batch.commit_idlens, cur->ncommit, cur->batch.lost, err,
                                 sizeof err);
            if (res == COMMIT_OK) {
                slot_committed(c, cur);
                break;
            }
            if (res == COMMIT_CONFLICT && slot_exclude_lost(c, cur) > 0) {
                cur->exact = true;
                slot_combine(c, cur);
            } else if (res != COMMIT_STALE) {
                log_warn("batch of %zu entries not committed (they stay pending): %s",
                         cur->ncommit, res == COMMIT_NOSCRIPT ? "NOSCRIPT after loading" : err);
                goto fail;
            }
            rv = slot_commit_sync(c, cur);
            break;
        case COMMIT_CONFLICT:
            if (slot_exclude_lost(c, cur) == 0)
                goto fail;
            cur->exact = true;
            slot_combine(c, cur);
            rv = slot_commit_sync(c, cur);
            break;
        case COMMIT_STALE:
            rv = slot_commit_sync(c, cur);
            break;
        case COMMIT_ERROR:
            goto fail;
        }
        slot_release(c, cur);
        if (rv != 0)
            goto fail;
        if (!have_next)
            return 0;
        c->cur = 1 - c->cur;
        cur = next;
        continue;
fail:
        /* The entries of both slots stay pending and are read again. Replies
         * of pipelined commands may still be on the way: start afresh on a
         * new connection rather than mistake one for another. */
        disconnect(c);
        return -1;
    }
}

/* One XAUTOCLAIM step over the group's pending list. */
static int step_claim(struct consumer *c, uint64_t now_ms)
{
    char idle[24], count[24];
    str_format(idle, sizeof idle, "%lld", c->cfg->claim_idle_ms);
    str_format(count, sizeof count, "%lld", c->cfg->batch_size);
    struct slot *s = &c->slots[0];
    const char *argv[] = {"XAUTOCLAIM", c->stream_key, ROLLUP_GROUP, s->params.consumer,
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
            reply_free(c->rc, reply);
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
    if (entries->elements == 0) {
        reply_free(c->rc, reply);
        return 0;
    }
    log_info("claimed %zu entries idle for over %lld ms at other consumers", entries->elements,
             c->cfg->claim_idle_ms);
    c->stats.claimed += entries->elements;
    slot_take(c, s, reply, entries, true);
    slot_combine(c, s);
    int rv = slot_commit_sync(c, s);
    slot_release(c, s);
    return rv;
}

static void forget_consumers(struct consumer *c)
{
    char err[256];
    long long idle = c->cfg->claim_idle_ms * 10;
    if (idle < FORGET_IDLE_MIN_MS)
        idle = FORGET_IDLE_MIN_MS;
    long long removed = commit_forget_consumers(c->rc, &c->slots[0].params, idle, err, sizeof err);
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
            rv = step_own(c);
        else if (now >= c->next_claim_ms)
            rv = step_claim(c, now);
        else
            rv = step_read(c, stop_fd);
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
