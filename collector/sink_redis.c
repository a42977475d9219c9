/* sink_redis.c - pipelined, reconnecting XADD writer (see sink_redis.h).
 *
 * State: DISCONNECTED -> CONNECTING -> CONNECTED -> (lost) -> DISCONNECTED,
 * changed only in sink_set_state. Queue discipline: `queue` holds commands
 * not yet sent, `inflight` those sent and awaiting a reply, both FIFO; a
 * reply pops the head of `inflight`. When the connection is lost, hiredis
 * calls every outstanding callback with a NULL reply in order: those
 * commands go back, in order, in front of `queue`. Never blocks the loop. */
#include "sink_redis.h"

#include <stdlib.h>
#include <string.h>

#include <adapters/libevent.h>
#include <async.h>
#include <hiredis.h>

#include "log.h"
#include "util.h"

#define SINK_MAX_INFLIGHT 4096
#define SINK_BACKOFF_MIN_MS 50
#define SINK_BACKOFF_MAX_MS 2000

enum sink_state { SINK_DISCONNECTED, SINK_CONNECTING, SINK_CONNECTED };

struct sink_cmd {
    struct sink_cmd *next;
    size_t len;
    char *resp; /* formatted RESP command */
};

struct cmd_list {
    struct sink_cmd *head, *tail;
    size_t n;
};

struct sink {
    struct event_base *base;
    char *redis;
    size_t max_buffered;
    struct metrics *m;
    enum sink_state state;
    redisAsyncContext *ac;
    struct event *retry;
    int backoff_ms;
    struct cmd_list queue;    /* not yet sent */
    struct cmd_list inflight; /* sent, awaiting reply */
    struct cmd_list returned; /* lost with the connection, to resend */
};

static void list_push(struct cmd_list *l, struct sink_cmd *c)
{
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static struct sink_cmd *list_pop(struct cmd_list *l)
{
    struct sink_cmd *c = l->head;
    if (!c)
        return NULL;
    l->head = c->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    return c;
}

/* Put all of `front` before `l`, leaving `front` empty. */
static void list_prepend(struct cmd_list *l, struct cmd_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    l->n += front->n;
    front->head = front->tail = NULL;
    front->n = 0;
}

static void cmd_free(struct sink_cmd *c)
{
    redisFreeCommand(c->resp);
    free(c);
}

static void update_gauge(struct sink *s, int64_t delta)
{
    atomic_fetch_add_explicit(&s->m->buffered, delta, memory_order_relaxed);
}

static void sink_connect(struct sink *s);
static void pump(struct sink *s);

static void sink_set_state(struct sink *s, enum sink_state state)
{
    s->state = state;
    if (state == SINK_DISCONNECTED) {
        s->ac = NULL;
        list_prepend(&s->queue, &s->returned);
        struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
        evtimer_add(s->retry, &tv);
        s->backoff_ms = s->backoff_ms * 2 > SINK_BACKOFF_MAX_MS ? SINK_BACKOFF_MAX_MS
                                                               : s->backoff_ms * 2;
    } else if (state == SINK_CONNECTED) {
        s->backoff_ms = SINK_BACKOFF_MIN_MS;
    }
}

static void reply_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    struct sink *s = privdata;
    redisReply *reply = r;
    struct sink_cmd *c = list_pop(&s->inflight);
    if (!c)
        return;
    if (!reply) {
        /* Connection lost before the reply: send again after reconnect. */
        list_push(&s->returned, c);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        bool transient = strncmp(reply->str, "OOM", 3) == 0 ||
                         strncmp(reply->str, "LOADING", 7) == 0 ||
                         strncmp(reply->str, "BUSY", 4) == 0 ||
                         strncmp(reply->str, "MASTERDOWN", 10) == 0 ||
                         strncmp(reply->str, "READONLY", 8) == 0;
        metrics_inc(s->m, M_REDIS_ERRORS);
        if (transient) {
            list_push(&s->returned, c);
            if (s->state == SINK_CONNECTED && s->ac == ac) {
                log_warn("redis answered a transient error; retrying after backoff");
                redisAsyncDisconnect(ac);
            }
            return;
        }
        log_error("redis refused an event (not retried): %.120s", reply->str);
        cmd_free(c);
        update_gauge(s, -1);
        return;
    }
    metrics_inc(s->m, M_REDIS_WRITTEN);
    cmd_free(c);
    update_gauge(s, -1);
    pump(s);
}

/* Send queued commands while connected and the window allows. */
static void pump(struct sink *s)
{
    while (s->state == SINK_CONNECTED && s->queue.head &&
           s->inflight.n < SINK_MAX_INFLIGHT) {
        struct sink_cmd *c = list_pop(&s->queue);
        if (redisAsyncFormattedCommand(s->ac, reply_cb, s, c->resp, c->len) != REDIS_OK) {
            /* The context is going away: keep the command first in line. */
            struct cmd_list one = {c, c, 1};
            c->next = NULL;
            list_prepend(&s->queue, &one);
            break;
        }
        list_push(&s->inflight, c);
    }
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct sink *s = ac->data;
    if (status != REDIS_OK) {
        log_warn("redis connect failed: %s", ac->errstr);
        sink_set_state(s, SINK_DISCONNECTED);
        return;
    }
    log_info("redis connected (%zu events waiting)", s->queue.n + s->returned.n);
    sink_set_state(s, SINK_CONNECTED);
    pump(s);
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct sink *s = ac->data;
    if (!s)
        return; /* sink_free is tearing down */
    if (status != REDIS_OK)
        log_warn("redis connection lost: %s", ac->errstr);
    sink_set_state(s, SINK_DISCONNECTED);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sink *s = arg;
    metrics_inc(s->m, M_REDIS_RECONNECTS);
    sink_connect(s);
}

static void sink_connect(struct sink *s)
{
    redisAsyncContext *ac;
    if (strncmp(s->redis, "unix:", 5) == 0) {
        ac = redisAsyncConnectUnix(s->redis + 5);
    } else {
        char host[300];
        int port = 0;
        hostport_split(s->redis, host, sizeof host, &port);
        ac = redisAsyncConnect(host, port);
    }
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        sink_set_state(s, SINK_DISCONNECTED);
        return;
    }
    ac->data = s;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    s->ac = ac;
    s->state = SINK_CONNECTING;
}

struct sink *sink_new(struct event_base *base, const char *redis, size_t max_buffered,
                      struct metrics *m)
{
    char host[300];
    int port;
    if (strncmp(redis, "unix:", 5) != 0 && !hostport_split(redis, host, sizeof host, &port))
        return NULL;
    struct sink *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->redis = xstrdup(redis);
    s->max_buffered = max_buffered;
    s->m = m;
    s->backoff_ms = SINK_BACKOFF_MIN_MS;
    s->retry = evtimer_new(base, retry_cb, s);
    sink_connect(s);
    return s;
}

size_t sink_pending(const struct sink *s)
{
    return s->queue.n + s->inflight.n + s->returned.n;
}

bool sink_connected(const struct sink *s)
{
    return s->state == SINK_CONNECTED;
}

int sink_push(struct sink *s, const struct event_record *ev)
{
    if (sink_pending(s) >= s->max_buffered)
        return -1;
    const char *argv[3 + EVENT_MAX_ARGS];
    size_t argvlen[3 + EVENT_MAX_ARGS];
    char scratch[EVENT_SCRATCH_BYTES];
    argv[0] = "XADD";
    argvlen[0] = 4;
    argv[1] = SINK_STREAM_KEY;
    argvlen[1] = sizeof SINK_STREAM_KEY - 1;
    argv[2] = "*";
    argvlen[2] = 1;
    size_t n = event_encode(ev, argv + 3, argvlen + 3, scratch);
    char *resp = NULL;
    int len = redisFormatCommandArgv(&resp, (int)(3 + n), argv, argvlen);
    if (len < 0)
        return -1;
    struct sink_cmd *c = malloc(sizeof *c);
    if (!c) {
        redisFreeCommand(resp);
        return -1;
    }
    c->resp = resp;
    c->len = (size_t)len;
    list_push(&s->queue, c);
    update_gauge(s, 1);
    pump(s);
    return 0;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    size_t left = sink_pending(s);
    if (left)
        log_warn("%zu events were not acknowledged by redis at shutdown", left);
    if (s->ac) {
        s->ac->data = NULL;
        redisAsyncFree(s->ac); /* calls reply_cb(NULL) for inflight */
    }
    struct cmd_list *lists[] = {&s->queue, &s->inflight, &s->returned};
    for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
        struct sink_cmd *c;
        while ((c = list_pop(lists[i])))
            cmd_free(c);
    }
    update_gauge(s, -(int64_t)left);
    event_free(s->retry);
    free(s->redis);
    free(s);
}
