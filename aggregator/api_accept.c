/* api_accept.c - accept back-off and throttled libevent logs for the
 * stats API (see api_accept.h). Never logs an address or a request. */
#include "api_accept.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/listener.h>

#include "log.h"
#include "util.h"

struct api_accept {
    struct evconnlistener *listener;
    struct event *resume;          /* re-enables accepting after a pause */
    uint64_t pauses;
    struct api_accept *next;       /* registry: listener -> guard */
};

/* ---- throttled logging ---- */

#define LOG_KINDS 16

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char kind[48];                 /* the message up to its first ':' (at most 47 bytes) */
    time_t logged_at;
    uint64_t suppressed;
} log_kinds[LOG_KINDS];

/* Log `msg` unless one of its kind was logged less than an interval ago;
 * then count it, and say how many were not logged with the next line. */
static void log_throttled(int severity, const char *msg)
{
    size_t kind_len = strcspn(msg, ":");
    if (kind_len > sizeof log_kinds[0].kind - 1)
        kind_len = sizeof log_kinds[0].kind - 1;
    time_t now = time(NULL);
    pthread_mutex_lock(&log_lock);
    int slot = -1, oldest = 0;
    for (int i = 0; i < LOG_KINDS && slot < 0; i++) {
        if (log_kinds[i].kind[0] && strncmp(log_kinds[i].kind, msg, kind_len) == 0 &&
            log_kinds[i].kind[kind_len] == '\0')
            slot = i;
        else if (log_kinds[i].logged_at < log_kinds[oldest].logged_at)
            oldest = i;
    }
    if (slot < 0) {
        slot = oldest;
        str_copy(log_kinds[slot].kind, sizeof log_kinds[slot].kind, msg, kind_len);
        log_kinds[slot].logged_at = 0;
        log_kinds[slot].suppressed = 0;
    }
    bool due = now - log_kinds[slot].logged_at >= API_LOG_INTERVAL_S;
    uint64_t suppressed = log_kinds[slot].suppressed;
    if (due) {
        log_kinds[slot].logged_at = now;
        log_kinds[slot].suppressed = 0;
    } else {
        log_kinds[slot].suppressed++;
    }
    pthread_mutex_unlock(&log_lock);
    if (!due)
        return;
    if (severity >= EVENT_LOG_ERR)
        log_error("stats api: %s (%llu more like it in the last %d s)", msg,
                  (unsigned long long)suppressed, API_LOG_INTERVAL_S);
    else
        log_warn("stats api: %s (%llu more like it in the last %d s)", msg,
                 (unsigned long long)suppressed, API_LOG_INTERVAL_S);
}

static void libevent_log_cb(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_WARN)
        log_throttled(severity, msg);
}

void api_accept_quiet_libevent(void)
{
    event_set_log_callback(libevent_log_cb);
}

/* ---- accept errors ---- */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct api_accept *registry;

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct api_accept *aa = arg;
    evconnlistener_enable(aa->listener);
}

/* libevent calls this with evhttp's pointer, not ours: find the guard. */
static void accept_error_cb(struct evconnlistener *lev, void *unused)
{
    (void)unused;
    int err = EVUTIL_SOCKET_ERROR();
    pthread_mutex_lock(&registry_lock);
    struct api_accept *aa = registry;
    while (aa && aa->listener != lev)
        aa = aa->next;
    pthread_mutex_unlock(&registry_lock);
    char msg[160];
    str_format(msg, sizeof msg, "accept failed: %s; pausing accepts for %d ms (check "
               "LimitNOFILE)", strerror(err), API_ACCEPT_PAUSE_MS);
    log_throttled(EVENT_LOG_WARN, msg);
    if (!aa)
        return;
    /* Out of descriptors or memory, or anything else: never spin on it. */
    aa->pauses++;
    evconnlistener_disable(lev);
    struct timeval tv = {0, API_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(aa->resume, &tv);
}

struct api_accept *api_accept_new(struct event_base *base, struct evhttp_bound_socket *bound)
{
    struct api_accept *aa = calloc(1, sizeof *aa);
    if (!aa)
        return NULL;
    aa->listener = evhttp_bound_socket_get_listener(bound);
    aa->resume = evtimer_new(base, resume_cb, aa);
    if (!aa->resume) {
        free(aa);
        return NULL;
    }
    evconnlistener_set_error_cb(aa->listener, accept_error_cb);
    pthread_mutex_lock(&registry_lock);
    aa->next = registry;
    registry = aa;
    pthread_mutex_unlock(&registry_lock);
    return aa;
}

void api_accept_free(struct api_accept *aa)
{
    if (!aa)
        return;
    pthread_mutex_lock(&registry_lock);
    struct api_accept **p = &registry;
    while (*p && *p != aa)
        p = &(*p)->next;
    if (*p)
        *p = aa->next;
    pthread_mutex_unlock(&registry_lock);
    event_free(aa->resume);
    free(aa);
}

uint64_t api_accept_pauses(const struct api_accept *aa)
{
    return aa ? aa->pauses : 0;
}
