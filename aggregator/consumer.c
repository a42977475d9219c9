/* consumer.c - the roll-up engine loop (see consumer.h and
 * docs/AGGREGATOR.md "The engine").
 *
 * State machine (changed only in set_state):
 *   DISCONNECTED -> connect, load the functions, check the shard count,
 *                   reload the checkpoint of every shard still owned -> RUNNING
 *   RUNNING      -> every lease_ms/3: heartbeat, renew, release what is
 *                   above this process's share, take free shards up to it;
 *                   otherwise one XREAD BLOCK over the owned shards'
 *                   streams, then one batch and one commit per shard read.
 * Any Redis failure -> back off, then DISCONNECTED (broken link) or a
 * reload of the failed shard's checkpoint (error reply).
 *
 * A shard's stream holds exactly the entries not yet committed: a commit
 * trims what it counted (XTRIM MINID), so after a takeover the new owner
 * reads from the start. It never logs event content or visitor hashes. */
#include "consumer.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "commit.h"
#include "event.h"
#include "lease.h"
#include "rcluster.h"
#include "log.h"
#include "registry.h"
#include "rollup.h"
#include "site_zones.h"
#include "shard.h"
#include "shard_meta.h"
#include "shard_state.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_TIMEOUT_MS 60000 /* a large batch's commit may run a while */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define REPORT_EVERY_MS 10000
#define SWEEP_EVERY_MS 30000
#define READ_MAX_ENTRIES 10000   /* entries per shard and XREAD, whatever batch_size says */
#define REJECT_LOGS_PER_REPORT 10
#define CLUSTER_IDLE_MS 20         /* pause when no owned shard had entries (cluster) */
#define LEASE_WAIT_MS 1000        /* WAIT for a replica after taking a lease (cluster) */

enum consumer_state { CS_DISCONNECTED = 0, CS_RUNNING };

static const char *const state_names[] = {"disconnected", "running"};

struct consumer {
    const struct agg_config *cfg;
    enum consumer_state state;
    struct rcluster *cl;           /* one Redis or a Redis Cluster (rcluster.h) */
    redisContext *rc;              /* the node of the current call, borrowed from cl */
    struct shard_state *shards;
    size_t nshards;
    struct rollup *rollup;
    struct site_zones *zones;      /* sites' time zones from the registry */
    struct commit *commit;
    long long batch_events;        /* batch_size, shared by the day keys and their twins */
    uint64_t next_lease_ms, next_report_ms, report_start_ms;
    int backoff_ms;
    unsigned rejects_logged;
    bool fatal;
    size_t rr;                     /* the backlogged shard read last */
    pthread_mutex_t lock;          /* guards stats against the metrics thread */
    struct consumer_stats stats, reported;
    struct commit_forward *fw;     /* this batch's legacy entries of other shards */
    size_t nfw, fw_cap;
    char *fw_bytes;                /* their packed bytes */
    size_t fw_used, fw_size;
    char (*fw_streams)[40];
    struct event_record ev;        /* decoding scratch, ~14 KB */
    char packed[EVENT_PACKED_MAX];
};

static void set_state(struct consumer *c, enum consumer_state s)
{
    if (c->state != s)
        log_debug("engine %s -> %s", state_names[c->state], state_names[s]);
    c->state = s;
}

struct consumer *consumer_new(const struct agg_config *cfg)
{
    struct consumer *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    c->nshards = (size_t)cfg->shards;
    c->shards = xcalloc(c->nshards, sizeof *c->shards);
    for (size_t i = 0; i < c->nshards; i++)
        shard_state_init(&c->shards[i], (unsigned)i);
    c->fw_streams = xcalloc(c->nshards, sizeof *c->fw_streams);
    for (size_t i = 0; i < c->nshards; i++)
        str_copy(c->fw_streams[i], sizeof c->fw_streams[i], c->shards[i].stream_key,
                 strlen(c->shards[i].stream_key));
    c->rollup = rollup_new(ROLLUP_SHARD_PREFIX, cfg->retention_days);
    c->zones = site_zones_new();
    rollup_set_sites(c->rollup, site_zones_get, c->zones);
    c->commit = commit_new();
    commit_set_rollups(c->commit, cfg->quarter_rollups, cfg->month_rollups, cfg->week_rollups);
    /* each roll-up adds the day keys' work again to a commit: fewer events
     * per batch keep one function call as long as before (docs/AGGREGATOR.md) */
    c->batch_events = cfg->batch_size / (1 + cfg->quarter_rollups + cfg->month_rollups +
                                         cfg->week_rollups);
    if (c->batch_events < 1)
        c->batch_events = 1;
    c->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void consumer_free(struct consumer *c)
{
    if (!c)
        return;
    rcluster_free(c->cl); /* c->rc was borrowed from it */
    for (size_t i = 0; i < c->nshards; i++)
        shard_state_free(&c->shards[i]);
    free(c->shards);
    free(c->fw_streams);
    free(c->fw);
    free(c->fw_bytes);
    rollup_free(c->rollup);
    site_zones_free(c->zones);
    commit_free(c->commit);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void consumer_get_stats(struct consumer *c, struct consumer_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

/* True when stop_fd is readable within timeout_ms: the interruptible wait. */
static bool stop_requested(int stop_fd, int timeout_ms)
{
    struct pollfd pfd = {stop_fd, POLLIN, 0};
    int n = poll(&pfd, 1, timeout_ms);
    return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

static size_t owned_count(const struct consumer *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++)
        n += c->shards[i].owned;
    return n;
}

static void publish_owned(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    c->stats.shards_owned = (long long)owned_count(c);
    pthread_mutex_unlock(&c->lock);
}

/* Forget shard st (lost, released, or Redis forgot it). */
static void drop_shard(struct consumer *c, struct shard_state *st)
{
    st->owned = false;
    shard_state_clear(st);
    publish_owned(c);
}

static void disconnect(struct consumer *c)
{
    rcluster_free(c->cl);
    c->cl = NULL;
    c->rc = NULL;
    set_state(c, CS_DISCONNECTED);
}

/* Point c->rc at the node that owns the slot of `key` (a shard's keys, a
 * meta key). Returns it, or NULL when that node cannot be reached. */
static redisContext *node_at(struct consumer *c, const char *key)
{
    c->rc = c->cl ? rcluster_slot_context(c->cl, key, strlen(key)) : NULL;
    return c->rc;
}

static bool clustered(const struct consumer *c)
{
    return c->cl && rcluster_is_cluster(c->cl);
}

/* The functions library on every master (one for a plain Redis). */
static int load_functions(struct consumer *c, char *err, size_t errlen)
{
    for (int m = 0; m < rcluster_masters(c->cl); m++) {
        redisContext *rc = rcluster_master_context(c->cl, m);
        if (!rc) {
            str_format(err, errlen, "%s", rcluster_errstr(c->cl));
            return -1;
        }
        if (lease_load_functions(rc, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Read shard st's checkpoint again (after a takeover, a reconnect or a
 * commit whose outcome is unknown); on failure the shard is dropped. */
static int reload_shard(struct consumer *c, struct shard_state *st)
{
    char err[256];
    long long loaded = node_at(c, st->stream_key) ? lease_load_checkpoint(c->rc, st, err, sizeof err)
                                             : -1;
    if (!c->rc)
        str_format(err, sizeof err, "%s", rcluster_errstr(c->cl));
    if (loaded < 0) {
        log_warn("shard %u: %s; giving it up", st->shard, err);
        drop_shard(c, st);
        return -1;
    }
    st->next_sweep_ms = clock_ms() + SWEEP_EVERY_MS;
    log_debug("shard %u: %lld open visits loaded from the checkpoint", st->shard, loaded);
    return 0;
}

static int connect_redis(struct consumer *c, char *err, size_t errlen)
{
    long long cmd_ms = COMMAND_TIMEOUT_MS + c->cfg->block_ms;
    c->cl = rcluster_connect(c->cfg->redis, (int)cmd_ms, err, errlen);
    if (!c->cl)
        goto err;
    if (load_functions(c, err, errlen) != 0)
        goto err;
    if (!node_at(c, SHARD_META_KEY)) {
        str_format(err, errlen, "%s", rcluster_errstr(c->cl));
        goto err;
    }
    /* 1: nothing stored and nothing storable (maxmemory): compared on the next connect */
    int check = shard_meta_agree(c->rc, (unsigned)c->cfg->shards, err, errlen);
    if (check == -1)
        c->fatal = true;
    if (check < 0)
        goto err;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].owned)
            reload_shard(c, &c->shards[i]);
    c->next_lease_ms = 0; /* renew at once: the epochs may have moved on meanwhile */
    set_state(c, CS_RUNNING);
    return 0;
err:
    disconnect(c);
    return -1;
}

/* ---- leases ---- */

static void measure_backlog(struct consumer *c);

/* Heartbeat, renew, then release or acquire towards this process's share
 * of the shards: ceil(shards / live processes). Returns 0 or -1. */
static int manage_leases(struct consumer *c, uint64_t now_ms)
{
    char err[256];
    long long lease_ms = c->cfg->lease_ms;
    long long live = node_at(c, LEASE_MEMBERS_KEY)
                         ? lease_heartbeat(c->rc, c->cfg->consumer, lease_ms, err, sizeof err)
                         : -1;
    if (!c->rc)
        str_format(err, sizeof err, "%s", rcluster_errstr(c->cl));
    if (live < 0) {
        log_warn("%s", err);
        return -1;
    }
    size_t share = (c->nshards + (size_t)live - 1) / (size_t)live;

    struct shard_state **owned = xmalloc((c->nshards ? c->nshards : 1) * sizeof *owned);
    int *ok = xmalloc((c->nshards ? c->nshards : 1) * sizeof *ok);
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].owned)
            owned[n++] = &c->shards[i];
    int rv = 0;
    if (clustered(c)) { /* each shard's lease on its own node */
        for (size_t i = 0; i < n && rv == 0; i++)
            rv = node_at(c, owned[i]->stream_key) ? lease_renew(c->rc, &owned[i], 1, c->cfg->consumer,
                                                           lease_ms, &ok[i], err, sizeof err)
                                             : -1;
    } else if (n) {
        rv = node_at(c, SHARD_META_KEY)
                 ? lease_renew(c->rc, owned, n, c->cfg->consumer, lease_ms, ok, err, sizeof err)
                 : -1;
    }
    if (rv != 0 && !c->rc)
        str_format(err, sizeof err, "%s", rcluster_errstr(c->cl));
    if (rv != 0) {
        log_warn("%s", err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) {
            log_warn("shard %u: lease lost (another process took it over); dropping its state",
                     owned[i]->shard);
            drop_shard(c, owned[i]);
        }
    }
    /* above the share: give the highest shards back (their state is
     * committed: every batch is, before the next read) */
    for (size_t i = c->nshards; i-- > 0 && owned_count(c) > share;) {
        struct shard_state *st = &c->shards[i];
        if (!st->owned)
            continue;
        if (!node_at(c, st->stream_key) || lease_release(c->rc, st, err, sizeof err) != 0)
            log_warn("shard %u: %s", st->shard, c->rc ? err : rcluster_errstr(c->cl));
        log_info("shard %u released (share is %zu of %zu shards, %lld processes)", st->shard,
                 share, c->nshards, live);
        drop_shard(c, st);
    }
    /* below it: take free shards, starting at a place of our own */
    size_t start = (size_t)(shard_of_site(c->cfg->consumer, strlen(c->cfg->consumer),
                                          (unsigned)c->nshards));
    for (size_t k = 0; k < c->nshards && owned_count(c) < share; k++) {
        struct shard_state *st = &c->shards[(start + k) % c->nshards];
        if (st->owned)
            continue;
        int got = node_at(c, st->stream_key)
                      ? lease_acquire(c->rc, st, c->cfg->consumer, lease_ms, err, sizeof err)
                      : -1;
        if (got < 0) {
            log_warn("shard %u: %s", st->shard, c->rc ? err : rcluster_errstr(c->cl));
            rv = -1;
            break;
        }
        if (got == 1 && clustered(c)) {
            /* a replica must have the new epoch before the shard is used: a
             * failover must never hand the same epoch to two processes
             * (docs/CLUSTER.md "Failover"); 0 replicas: nothing to wait for */
            redisReply *role = redisCommand(c->rc, "ROLE");
            bool replicas = role && role->type == REDIS_REPLY_ARRAY && role->elements >= 3 &&
                            role->element[2]->type == REDIS_REPLY_ARRAY &&
                            role->element[2]->elements > 0;
            if (role)
                freeReplyObject(role);
            redisReply *w = replicas ? redisCommand(c->rc, "WAIT 1 %d", LEASE_WAIT_MS) : NULL;
            if (w)
                freeReplyObject(w);
        }
        if (got == 0 || reload_shard(c, st) != 0)
            continue;
        log_info("shard %u acquired (epoch %lld, %zu open visits)", st->shard, st->epoch,
                 st->nsessions);
        pthread_mutex_lock(&c->lock);
        c->stats.takeovers++;
        pthread_mutex_unlock(&c->lock);
    }
    publish_owned(c);
    measure_backlog(c);
out:
    free(owned);
    free(ok);
    c->next_lease_ms = now_ms + (uint64_t)(lease_ms / 3);
    return rv;
}

/* ---- one batch ---- */

struct tally {
    unsigned long long events, rejected, future, expired, forwarded;
};

static void log_reject(struct consumer *c, const redisReply *id, const char *reason)
{
    if (c->rejects_logged++ < REJECT_LOGS_PER_REPORT)
        log_warn("stream entry %.*s: an event rejected (acknowledged, not counted): %s", (int)id->len,
                 id->str, reason);
}

/* Keep a copy of packed event pk[0..len) to forward to shard `to`. */
static void forward(struct consumer *c, unsigned to, const char *pk, size_t len)
{
    if (c->fw_size - c->fw_used < len) {
        while (c->fw_size - c->fw_used < len)
            c->fw_size = c->fw_size ? c->fw_size * 2 : 65536;
        c->fw_bytes = xrealloc(c->fw_bytes, c->fw_size);
    }
    memcpy(c->fw_bytes + c->fw_used, pk, len);
    GROW(c->fw, c->nfw, c->fw_cap);
    /* packed points at an offset until the batch is complete (realloc) */
    c->fw[c->nfw++] = (struct commit_forward){c->fw_streams[to], (const char *)(uintptr_t)c->fw_used,
                                              len};
    c->fw_used += len;
}

/* One decoded event of entry `id` of shard st. pk is its packed form when
 * the entry carried one (else it is packed here if it must be forwarded). */
static void take_event(struct consumer *c, struct shard_state *st, const redisReply *id,
                       const char *pk, size_t plen, int64_t now, struct tally *t)
{
    char reason[160];
    if (!event_decode_check(&c->ev, reason, sizeof reason)) {
        t->rejected++;
        log_reject(c, id, reason);
        return;
    }
    if (c->ev.ts > now + c->cfg->future_skew_s) {
        t->future++;
        log_reject(c, id, "ts: beyond future_skew_s in the future");
        return;
    }
    unsigned home = shard_of_site(c->ev.site, strlen(c->ev.site), (unsigned)c->nshards);
    if (home != st->shard) {
        if (!pk) {
            plen = event_pack(&c->ev, c->packed, sizeof c->packed);
            pk = c->packed;
        }
        if (plen == 0) {
            t->rejected++;
            log_reject(c, id, "cannot be packed to move it to its shard");
            return;
        }
        forward(c, home, pk, plen);
        t->forwarded++;
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
        log_reject(c, id, reason);
        break;
    }
}

/* Every event of one stream entry: the batch field 'b', the packed field
 * 'e', or the old layout with one stream field per event field. */
static void take_entry(struct consumer *c, struct shard_state *st, const redisReply *entry,
                       int64_t now, struct tally *t)
{
    const redisReply *id = entry->element[0], *fields = entry->element[1];
    char reason[160];
    if (fields->type != REDIS_REPLY_ARRAY)
        return; /* deleted under us: nothing to count */
    if (fields->elements % 2 != 0) {
        t->rejected++;
        log_reject(c, id, "odd number of field/value items");
        return;
    }
    for (size_t j = 0; j < fields->elements; j++) {
        if (fields->element[j]->type != REDIS_REPLY_STRING) {
            t->rejected++;
            log_reject(c, id, "field or value is not a string");
            return;
        }
    }
    const redisReply *f0 = fields->elements ? fields->element[0] : NULL;
    if (f0 && fields->elements == 2 && strcmp(f0->str, EVENT_BATCH_FIELD) == 0) {
        const redisReply *v = fields->element[1];
        struct event_batch_iter it;
        const char *pk;
        size_t plen;
        if (!event_batch_begin(&it, v->str, v->len, reason, sizeof reason)) {
            t->rejected++;
            log_reject(c, id, reason);
            return;
        }
        int more;
        while ((more = event_batch_next(&it, &pk, &plen, reason, sizeof reason)) == 1) {
            event_record_reset(&c->ev);
            if (!event_decode_packed(&c->ev, pk, plen, reason, sizeof reason)) {
                t->rejected++;
                log_reject(c, id, reason);
                continue;
            }
            take_event(c, st, id, pk, plen, now, t);
        }
        if (more < 0) {
            t->rejected++;
            log_reject(c, id, reason);
        }
        return;
    }
    event_record_reset(&c->ev);
    const char *pk = NULL;
    size_t plen = 0;
    for (size_t j = 0; j < fields->elements; j += 2) {
        const redisReply *f = fields->element[j], *v = fields->element[j + 1];
        if (!event_decode_field(&c->ev, f->str, f->len, v->str, v->len, reason, sizeof reason)) {
            t->rejected++;
            log_reject(c, id, reason);
            return;
        }
        if (fields->elements == 2 && strcmp(f->str, EVENT_PACKED_FIELD) == 0) {
            pk = v->str;
            plen = v->len;
        }
    }
    take_event(c, st, id, pk, plen, now, t);
}

/* The smallest id after `id` ("<ms>-<seq+1>"): the trim bound. */
static bool id_after(const redisReply *id, char *out, size_t outlen)
{
    unsigned long long ms = 0, seq = 0;
    const char *dash = memchr(id->str, '-', id->len);
    if (!dash)
        return false;
    for (const char *p = id->str; p < dash; p++)
        ms = ms * 10 + (unsigned long long)(*p - '0');
    for (const char *p = dash + 1; p < id->str + id->len; p++)
        seq = seq * 10 + (unsigned long long)(*p - '0');
    if (seq == UINT64_MAX) {
        ms++;
        seq = 0;
    } else {
        seq++;
    }
    return str_format(out, outlen, "%llu-%llu", ms, seq);
}

static unsigned bucket_of(double v, const double *bounds, unsigned n)
{
    unsigned i = 0;
    while (i + 1 < n && v > bounds[i])
        i++;
    return i;
}

static const double batch_bounds[CONSUMER_BATCH_BUCKETS] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 0};
static const double latency_bounds[CONSUMER_LATENCY_BUCKETS] = {1, 2, 5, 10, 50, 100, 1000, 0};

/* Combine and commit one shard's entries (an array of [id, fields]).
 * Returns 0, or -1 when the commit failed (the entries stay in the
 * stream; the shard's memory was reloaded or the link is broken). */
static int process_shard(struct consumer *c, struct shard_state *st, const redisReply *entries)
{
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDIS_REPLY_STRING)
            n++;
    }
    if (n == 0)
        return 0;
    uint64_t started = clock_ms();
    int64_t now = (int64_t)time(NULL);
    struct tally t = {0, 0, 0, 0, 0};
    const redisReply *first = NULL, *last = NULL;
    rollup_reset(c->rollup);
    rollup_set_prefix(c->rollup, st->prefix);
    /* the registry's node (on a cluster not the shard's); node_at below
     * points c->rc back at the shard's before the commit */
    site_zones_refresh(c->zones, node_at(c, REG_PREFIX), started);
    c->nfw = c->fw_used = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (!first)
            first = e->element[0];
        last = e->element[0];
        take_entry(c, st, e, now, &t);
    }
    rollup_finish(c->rollup);
    for (size_t i = 0; i < c->nfw; i++)
        c->fw[i].packed = c->fw_bytes + (uintptr_t)c->fw[i].packed;

    char trim[64] = "";
    if (!id_after(last, trim, sizeof trim))
        trim[0] = '\0';
    struct commit_params p = {c->cfg->consumer,          c->cfg->lease_ms,
                              c->cfg->breakdown_cap,     c->cfg->property_budget,
                              c->cfg->session_timeout_s, c->cfg->future_skew_s,
                              now,                       c->cfg->pair_budget,
                              c->cfg->pair_dim_mask};
    bool sweep = started >= st->next_sweep_ms;
    char err[512];
    if (!node_at(c, st->stream_key)) {
        log_warn("shard %u: %s", st->shard, rcluster_errstr(c->cl));
        return -1;
    }
    enum commit_result res = commit_batch(c->commit, c->rc, st, &p, c->rollup, trim, c->fw,
                                          c->nfw, sweep, err, sizeof err);
    uint64_t done = clock_ms();
    if (res == COMMIT_STALE) {
        log_warn("shard %u: commit refused, epoch %lld is stale (another process owns the "
                 "shard); dropping it",
                 st->shard, st->epoch);
        pthread_mutex_lock(&c->lock);
        c->stats.stale++;
        pthread_mutex_unlock(&c->lock);
        drop_shard(c, st);
        return 0;
    }
    if (res == COMMIT_ERROR) {
        log_warn("shard %u: batch of %zu entries not committed (they stay in the stream): %s",
                 st->shard, n, err);
        pthread_mutex_lock(&c->lock);
        c->stats.retried++;
        pthread_mutex_unlock(&c->lock);
        if (c->rc->err == 0)
            reload_shard(c, st);
        return -1;
    }
    str_copy(st->last_id, sizeof st->last_id, last->str, last->len);
    if (sweep)
        st->next_sweep_ms = done + SWEEP_EVERY_MS;
    unsigned long long nev = t.events + t.rejected + t.future + t.expired + t.forwarded;
    st->events_per_entry = nev ? (double)nev / (double)n : 1.0;
    unsigned long long first_ms = 0;
    for (size_t i = 0; i < first->len && first->str[i] != '-'; i++)
        first_ms = first_ms * 10 + (unsigned long long)(first->str[i] - '0');
    double latency_ms = (double)(done - started);
    pthread_mutex_lock(&c->lock);
    struct consumer_stats *s = &c->stats;
    s->batches++;
    s->events += t.events;
    s->rejected += t.rejected;
    s->future += t.future;
    s->expired += t.expired;
    s->forwarded += t.forwarded;
    s->commands += commit_last_commands(c->commit);
    s->batch_hist[bucket_of((double)nev, batch_bounds, CONSUMER_BATCH_BUCKETS)]++;
    s->batch_events_sum += nev;
    s->latency_hist[bucket_of(latency_ms, latency_bounds, CONSUMER_LATENCY_BUCKETS)]++;
    s->latency_sum_s += latency_ms / 1000.0;
    long long wall_ms = (long long)now * 1000;
    s->lag_ms = first_ms && wall_ms > (long long)first_ms ? wall_ms - (long long)first_ms : 0;
    pthread_mutex_unlock(&c->lock);
    log_debug("shard %u: %zu entries, %llu events committed in %llu ms (%llu commands)",
              st->shard, n, t.events, (unsigned long long)(done - started),
              commit_last_commands(c->commit));
    return 0;
}

/* Entries to ask for from shard st so a read brings about `events`. */
static long long read_count(const struct shard_state *st, long long events)
{
    double per_entry = st->events_per_entry > 1.0 ? st->events_per_entry : 1.0;
    long long count = (long long)((double)events / per_entry);
    if (count < 1)
        count = 1;
    return count > READ_MAX_ENTRIES ? READ_MAX_ENTRIES : count;
}

/* One XREAD, then a batch per shard that returned entries. Shards known
 * to have a backlog (their last read came back full) are read one at a
 * time, without blocking, for batch_size events each, in turn; otherwise
 * every owned shard is read in one blocking XREAD for a share of
 * batch_size each. So one reply holds about batch_size events at most,
 * however many shards are behind. */
/* On a cluster: one XREAD per owned shard on its node (a read of several
 * streams would cross slots), without BLOCK; when nothing came, a short
 * pause (CLUSTER_IDLE_MS) instead. */
static int step_read_cluster(struct consumer *c)
{
    int rv = 0;
    bool any = false;
    for (size_t i = 0; i < c->nshards && rv == 0; i++) {
        struct shard_state *st = &c->shards[i];
        if (!st->owned)
            continue;
        long long count = read_count(st, c->batch_events);
        char count_s[24];
        str_format(count_s, sizeof count_s, "%lld", count);
        if (!node_at(c, st->stream_key)) {
            log_warn("shard %u: %s", st->shard, rcluster_errstr(c->cl));
            return -1;
        }
        const char *argv[] = {"XREAD", "COUNT", count_s, "STREAMS", st->stream_key, st->last_id};
        redisReply *reply = redisCommandArgv(c->rc, 6, argv, NULL);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            log_warn("XREAD: %s", reply ? reply->str : c->rc->errstr);
            rcluster_note(c->cl, reply);
            if (reply)
                freeReplyObject(reply);
            return -1;
        }
        st->backlog = false;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
            const redisReply *s = reply->element[0];
            if (s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
                s->element[1]->type == REDIS_REPLY_ARRAY && s->element[1]->elements) {
                any = true;
                bool full = s->element[1]->elements >= (size_t)count;
                if (process_shard(c, st, s->element[1]) != 0)
                    rv = -1;
                else
                    st->backlog = full && st->owned;
            }
        }
        freeReplyObject(reply);
    }
    if (rv == 0 && !any) {
        struct timespec ts = {0, CLUSTER_IDLE_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return rv;
}

static int step_read(struct consumer *c)
{
    if (clustered(c))
        return step_read_cluster(c);
    size_t n = owned_count(c);
    if (n == 0)
        return 0;
    struct shard_state *behind = NULL;
    for (size_t k = 1; k <= c->nshards && !behind; k++) {
        struct shard_state *st = &c->shards[(c->rr + k) % c->nshards];
        if (st->owned && st->backlog)
            behind = st;
    }
    long long share = c->batch_events / (long long)n;
    long long count;
    if (behind) {
        c->rr = behind->shard;
        n = 1;
        count = read_count(behind, c->batch_events);
    } else {
        /* the largest entries of the owned shards size the shared read */
        count = READ_MAX_ENTRIES;
        for (size_t i = 0; i < c->nshards; i++)
            if (c->shards[i].owned && read_count(&c->shards[i], share) < count)
                count = read_count(&c->shards[i], share);
    }
    char count_s[24], block_s[24];
    str_format(count_s, sizeof count_s, "%lld", count);
    str_format(block_s, sizeof block_s, "%lld", c->cfg->block_ms);
    size_t argc = 6 + 2 * n, at = 3;
    const char **argv = xmalloc(argc * sizeof *argv);
    struct shard_state **order = xmalloc(n * sizeof *order);
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = count_s;
    if (!behind) {
        argv[at++] = "BLOCK";
        argv[at++] = block_s;
    } else {
        argc -= 2;
    }
    argv[at++] = "STREAMS";
    size_t k = 0;
    for (size_t i = 0; i < c->nshards && k < n; i++) {
        struct shard_state *st = behind ? behind : &c->shards[i];
        if (!st->owned)
            continue;
        order[k] = st;
        argv[at + k] = st->stream_key;
        argv[at + n + k] = st->last_id;
        k++;
    }
    redisReply *reply = node_at(c, SHARD_META_KEY) ? redisCommandArgv(c->rc, (int)argc, argv, NULL)
                                                : NULL;
    free(argv);
    int rv = 0;
    for (size_t j = 0; j < n; j++)
        order[j]->backlog = false;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        log_warn("XREAD: %s", reply ? reply->str : c->rc ? c->rc->errstr : rcluster_errstr(c->cl));
        rv = -1;
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *s = reply->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
                s->element[0]->type != REDIS_REPLY_STRING ||
                s->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            for (size_t j = 0; j < n; j++) {
                if (order[j]->owned && strcmp(order[j]->stream_key, s->element[0]->str) == 0) {
                    /* a full reply: more is waiting */
                    bool full = s->element[1]->elements >= (size_t)count;
                    if (process_shard(c, order[j], s->element[1]) != 0)
                        rv = -1;
                    else
                        order[j]->backlog = full && order[j]->owned;
                    break;
                }
            }
            if (c->rc->err)
                break;
        }
    }
    if (reply)
        freeReplyObject(reply);
    free(order);
    return rv;
}

/* Entries waiting in the owned shards' streams (for the metrics). */
static void measure_backlog(struct consumer *c)
{
    if (clustered(c)) { /* one XLEN per shard, each on its node */
        long long total = 0;
        for (size_t i = 0; i < c->nshards; i++) {
            if (!c->shards[i].owned)
                continue;
            const char *key = c->shards[i].stream_key;
            redisReply *reply = rcluster_commandf(c->cl, key, "XLEN %s", key);
            if (!reply)
                return;
            if (reply->type == REDIS_REPLY_INTEGER)
                total += reply->integer;
            freeReplyObject(reply);
        }
        pthread_mutex_lock(&c->lock);
        c->stats.backlog_entries = total;
        if (total == 0)
            c->stats.lag_ms = 0;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (!node_at(c, SHARD_META_KEY))
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++)
        if (c->shards[i].owned) {
            redisAppendCommand(c->rc, "XLEN %s", c->shards[i].stream_key);
            n++;
        }
    long long total = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(c->rc, (void **)&reply) != REDIS_OK)
            return;
        if (reply->type == REDIS_REPLY_INTEGER)
            total += reply->integer;
        freeReplyObject(reply);
    }
    pthread_mutex_lock(&c->lock);
    c->stats.backlog_entries = total;
    if (total == 0)
        c->stats.lag_ms = 0;
    pthread_mutex_unlock(&c->lock);
}

static void report(struct consumer *c, uint64_t now_ms, bool final)
{
    struct consumer_stats s;
    consumer_get_stats(c, &s);
    const struct consumer_stats *r = &c->reported;
    uint64_t span = now_ms - c->report_start_ms;
    if (s.batches != r->batches || final) {
        unsigned long long events = s.events - r->events;
        log_info("rolled up %llu events in %llu batches (%.0f events/s) on %lld shards; "
                 "rejected %llu, future %llu, expired %llu, forwarded %llu, stale commits %llu",
                 events, s.batches - r->batches,
                 span ? (double)events * 1000.0 / (double)span : 0.0, s.shards_owned,
                 s.rejected - r->rejected, s.future - r->future, s.expired - r->expired,
                 s.forwarded - r->forwarded, s.stale - r->stale);
    }
    if (c->rejects_logged > REJECT_LOGS_PER_REPORT)
        log_warn("%u more rejected events not logged individually",
                 c->rejects_logged - REJECT_LOGS_PER_REPORT);
    c->rejects_logged = 0;
    c->reported = s;
    c->report_start_ms = now_ms;
    c->next_report_ms = now_ms + REPORT_EVERY_MS;
}

/* After a failure: wait (interruptibly), reconnect when the link broke. */
static void recover(struct consumer *c, int stop_fd)
{
    char err[256];
    if (c->rc == NULL || c->rc->err != 0)
        disconnect(c);
    else if (clustered(c))
        rcluster_note(c->cl, NULL); /* a MOVED or a failover: reload the map */
    stop_requested(stop_fd, c->backoff_ms);
    /* the server may have lost the functions (FUNCTION FLUSH, a restart
     * without persistence, a new master): load them again before the next
     * try */
    if (c->cl && load_functions(c, err, sizeof err) != 0) {
        log_warn("%s", err);
        disconnect(c);
    }
    c->rc = NULL; /* borrowed, and the map may have been reloaded: node_at again */
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* Clean stop: give every lease back so another process takes over now. */
static void leave(struct consumer *c)
{
    if (!c->cl)
        return; /* never connected: nothing owned */
    char err[256];
    for (size_t i = 0; i < c->nshards; i++) {
        if (!c->shards[i].owned)
            continue;
        if (node_at(c, c->shards[i].stream_key) &&
            lease_release(c->rc, &c->shards[i], err, sizeof err) != 0)
            log_warn("shard %u: %s", c->shards[i].shard, err);
        drop_shard(c, &c->shards[i]);
    }
    if (node_at(c, LEASE_MEMBERS_KEY))
        lease_leave(c->rc, c->cfg->consumer);
}

int consumer_run(struct consumer *c, int stop_fd)
{
    uint64_t now = clock_ms();
    c->report_start_ms = now;
    c->next_report_ms = now + REPORT_EVERY_MS;
    bool outage_logged = false;

    while (!stop_requested(stop_fd, 0)) {
        now = clock_ms();
        if (now >= c->next_report_ms)
            report(c, now, false);
        if (c->state == CS_DISCONNECTED) {
            char err[512];
            if (connect_redis(c, err, sizeof err) != 0) {
                if (c->fatal) {
                    log_error("%s", err);
                    return -1;
                }
                if (!outage_logged)
                    log_warn("redis %s unavailable (%s); retrying", c->cfg->redis, err);
                outage_logged = true;
                recover(c, stop_fd);
                continue;
            }
            log_info("connected to redis %s as '%s' (%zu shards)", c->cfg->redis,
                     c->cfg->consumer, c->nshards);
            outage_logged = false;
        }
        int rv = 0;
        if (now >= c->next_lease_ms)
            rv = manage_leases(c, now);
        if (rv == 0) {
            if (owned_count(c) == 0)
                stop_requested(stop_fd, (int)c->cfg->block_ms);
            else
                rv = step_read(c);
        }
        if (rv != 0)
            recover(c, stop_fd);
        else
            c->backoff_ms = BACKOFF_MIN_MS;
    }
    leave(c);
    report(c, clock_ms(), true);
    return 0;
}

void consumer_set_referrers(struct consumer *c, const struct referrers *db)
{
    rollup_set_referrers(c->rollup, db);
}
