/* sink_calls.c - the delivery calls of one worker's sink (sink_state.h,
 * docs/DELIVERY.md): a delivery batch cut into one call per (lane, shard),
 * each call a record holding its own events, written in the Redis protocol
 * (sink_wire.c) and sent through the cluster routing to the node owning
 * its shard's slot; its reply (and, with wait_replicas, the WAIT after it
 * on the same node) settles exactly that record's events, whatever the
 * order in which nodes answer. A failed call's events go to `returned`
 * and the sink starts over (sink_fail). Never sends one call to two slots;
 * never holds an IP or a User-Agent. */
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "log.h"
#include "shard.h"
#include "sink_state.h"
#include "util.h"

/* One delivery call in flight: the events of one (lane, shard). */
struct sink_call {
    struct sink *s;
    struct cmd_list cmds;
    struct lane *lane;
    unsigned shard;
    uint64_t prev;  /* what the lane's mark must have reached (0: no check) */
    bool reloaded;  /* sent again after NOSCRIPT once */
    bool waiting;   /* the call was answered; its WAIT is in flight */
};

static void count(struct sink *s, enum metric k, uint64_t n)
{
    if (n)
        atomic_fetch_add_explicit(&s->m->c[k], n, memory_order_relaxed);
}

static void call_cb(void *r, void *privdata);

static void call_end(struct sink *s, struct sink_call *call, size_t n)
{
    s->inflight -= n;
    s->ncalls--;
    free(call);
    if (s->state == SINK_CLOSING && s->ncalls == 0)
        event_active(s->reset_ev, EV_TIMEOUT, 0); /* every call is answered: start over */
}

/* The call's events are acknowledged (or given up). */
static void call_settle(struct sink *s, struct sink_call *call)
{
    size_t n = call->cmds.n;
    struct sink_cmd *c;
    while ((c = cmds_pop(&call->cmds)))
        sink_cmd_done(s, c);
    call_end(s, call, n);
}

/* The call's events are to be sent again. */
static void call_return(struct sink *s, struct sink_call *call)
{
    size_t n = call->cmds.n;
    cmds_append(&s->returned, &call->cmds);
    call_end(s, call, n);
}

/* The call is delivered (and confirmed when wait_replicas asks for it). */
static void call_delivered(struct sink *s, struct sink_call *call)
{
    call_settle(s, call);
    s->refused = false;
    s->backoff_ms = SINK_BACKOFF_MIN_MS;
    if (s->state == SINK_READY && (s->queue.head || (s->spool && spool_unread(s->spool))))
        sink_schedule_flush(s); /* the window has room again */
}

/* Write the call in the Redis protocol and hand it to the routing for its
 * shard's node. Returns 0, or -1 when no node is reachable (nothing sent). */
static int call_send(struct sink *s, struct sink_call *call)
{
    size_t bytes = 0;
    for (struct sink_cmd *c = call->cmds.head; c; c = c->next)
        bytes += c->packed_len + 3;
    wire_call_begin(&s->wire, bytes);
    for (struct sink_cmd *c = call->cmds.head; c; c = c->next)
        wire_call_add(&s->wire, c->seq, (const char *)c->payload + c->len - c->packed_len,
                      c->packed_len);
    size_t len;
    /* a lane of version 1 also reads veil:{0}:lane:<lane>, another slot:
     * never on a cluster (docs/CLUSTER.md) */
    const char *cmd = wire_call_end(&s->wire, s->sha, call->shard, call->lane->id,
                                    call->lane->legacy && !s->cluster, call->prev, &len);
    char prefix[SHARD_PREFIX_MAX];
    size_t plen = shard_key_prefix(prefix, sizeof prefix, call->shard);
    return rcluster_async_command(s->rca, prefix, plen, call_cb, call, cmd, len);
}

/* The answer to WAIT after a call: confirmed, or the call goes again. */
static void wait_answer(struct sink *s, struct sink_call *call, const redisReply *reply)
{
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= s->wait_replicas) {
        call_delivered(s, call);
        return;
    }
    metrics_inc(s->m, M_REDIS_UNCONFIRMED);
    if (s->state == SINK_READY)
        log_warn("redis: %lld of %d replicas confirmed a delivery call within %d ms; sending "
                 "again from the oldest unconfirmed event after backoff (%d ms)",
                 reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1LL, s->wait_replicas,
                 s->wait_timeout_ms, s->backoff_ms);
    call_return(s, call);
    sink_fail(s, true);
}

/* The answer to one call (or to its WAIT), settling its own events. */
static void call_cb(void *r, void *privdata)
{
    struct sink_call *call = privdata;
    struct sink *s = call->s;
    redisReply *reply = r;
    if (!reply) {
        /* The node's connection failed or everything is closing: send the
         * call again (its lane mark makes a second add impossible if the
         * first one happened). */
        call_return(s, call);
        sink_fail(s, false);
        return;
    }
    if (call->waiting) {
        wait_answer(s, call, reply);
        return;
    }
    size_t n = call->cmds.n;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOSCRIPT", 8) == 0 && !call->reloaded &&
            s->state == SINK_READY) {
            /* a node that has not seen the script (a promoted replica, a
             * node that took the slot): load it there, then the call again */
            char *load;
            int len = redisFormatCommand(&load, "SCRIPT LOAD %s", sink_delivery_script);
            call->reloaded = true;
            if (len > 0 &&
                rcluster_async_command_here(s->rca, sink_ignore_cb, NULL, load, (size_t)len) == 0 &&
                call_send(s, call) == 0) {
                redisFreeCommand(load);
                return;
            }
            if (len > 0)
                redisFreeCommand(load);
        }
        metrics_inc(s->m, M_REDIS_ERRORS);
        if (wire_error_transient(reply->str)) {
            if (s->state == SINK_READY)
                log_warn("redis answered %.*s; sending again from the oldest unacknowledged "
                         "event after backoff (%d ms)",
                         wire_error_code_len(reply->str), reply->str, s->backoff_ms);
            call_return(s, call);
            sink_fail(s, true);
            return;
        }
        log_error("redis refused %zu event%s (not retried): %.120s", n, n == 1 ? "" : "s",
                  reply->str);
        call_settle(s, call);
        return;
    }
    struct wire_outcome o;
    wire_reply_outcome(reply, n, &o);
    if (o.unexpected)
        log_error("unexpected reply type %d to the delivery script", reply->type);
    if (o.refused)
        log_error("redis refused a stream entry of %zu events (not retried): %.120s", o.refused,
                  o.why ? o.why : "no reason given");
    count(s, M_REDIS_WRITTEN, o.written);
    count(s, M_REDIS_DUPLICATES, o.cut);
    count(s, M_REDIS_ERRORS, o.refused);
    if (s->wait_replicas > 0) {
        char *wait;
        int len = redisFormatCommand(&wait, "WAIT %d %d", s->wait_replicas, s->wait_timeout_ms);
        call->waiting = true;
        int rc = len > 0 ? rcluster_async_command_here(s->rca, call_cb, call, wait, (size_t)len)
                         : -1;
        if (len > 0)
            redisFreeCommand(wait);
        if (rc != 0) {
            call_return(s, call);
            sink_fail(s, false);
        }
        return;
    }
    call_delivered(s, call);
}

/* One call of a delivery batch being formed. */
struct group {
    struct lane *lane;
    unsigned shard;
    struct cmd_list cmds;
};

size_t sink_send_batch(struct sink *s)
{
    struct group groups[SINK_GROUPS_MAX];
    size_t ngroups = 0, n = 0, bytes = 0;
    /* take the prefix apart into groups, in order */
    while (s->queue.head && n < SINK_BATCH_MAX && s->inflight + n < SINK_MAX_INFLIGHT) {
        struct sink_cmd *c = s->queue.head;
        if (n > 0 && bytes + c->len > SINK_BATCH_BYTES)
            break;
        size_t g = 0;
        while (g < ngroups && (groups[g].lane != c->lane || groups[g].shard != c->shard))
            g++;
        if (g == ngroups) {
            if (ngroups == SINK_GROUPS_MAX || s->ncalls + ngroups >= SINK_MAX_CALLS)
                break;
            groups[g] = (struct group){c->lane, c->shard, {NULL, NULL, 0}};
            ngroups++;
        }
        cmds_push(&groups[g].cmds, cmds_pop(&s->queue));
        bytes += c->len;
        n++;
    }
    size_t sent = 0;
    for (; sent < ngroups && s->state == SINK_READY; sent++) {
        struct group *g = &groups[sent];
        struct lane *lane = g->lane;
        struct sink_call *call = xcalloc(1, sizeof *call);
        call->s = s;
        call->lane = lane;
        call->shard = g->shard;
        /* prev: what the mark must have reached for this call to be next */
        call->prev = lane->sent_gen[g->shard] == s->conn_gen &&
                             lane->sent_seq[g->shard] < g->cmds.head->seq
                         ? lane->sent_seq[g->shard]
                         : 0;
        call->cmds = g->cmds;
        if (call_send(s, call) != 0) {
            free(call);
            sink_fail(s, false); /* no node reachable */
            break;
        }
        lane->sent_gen[g->shard] = s->conn_gen;
        lane->sent_seq[g->shard] = g->cmds.tail->seq;
        g->cmds = (struct cmd_list){NULL, NULL, 0};
        s->inflight += call->cmds.n;
        s->ncalls++;
    }
    /* calls not sent go back in front of the queue, each (lane, shard) in order */
    for (size_t k = ngroups; k-- > sent;)
        cmds_prepend(&s->queue, &groups[k].cmds);
    return sent;
}
