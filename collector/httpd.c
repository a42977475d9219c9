/* httpd.c - connections of the collector's HTTP/1.1 server (httpd.h).
 *
 * One connection is one `struct conn` with an explicit state, changed only
 * in conn_set_state, which also sets what the socket waits for and the
 * deadline:
 *
 *   IDLE ----bytes---> READING ----whole request(s) answered----> IDLE
 *     |                  |  (replies the socket does not take: WRITING,
 *     |                  |   back to IDLE/READING once written)
 *     |        error, 408, Connection: close
 *     |                  v
 *     +--timeout----> CLOSING --reply written--> LINGERING --EOF/2 s--> closed
 *
 * Hot path: a read lands in the worker's scratch buffer, every whole
 * request in it is parsed in place and answered into the worker's reply
 * buffer, and the replies go out in one write. Nothing is allocated per
 * request; a connection gets its own buffers only for what a read leaves
 * unfinished (part of a request, replies the socket would not take).
 *
 * Privacy: the peer address lives in the connection while it is open (the
 * handler needs it for every request) and is wiped (sodium_memzero) when
 * the connection is freed. Request bytes (they hold X-Forwarded-For and
 * the User-Agent) are wiped as soon as they have been answered. Nothing
 * here logs a request, an address or a header. */
#include "httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/util.h>
#include <sodium.h>

#include "log.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
#define ACCEPT_BATCH 64               /* accepts per listener wake-up */
#define ACCEPT_PAUSE_MS 100           /* out of file descriptors: retry after */
#define READ_SLACK 4096               /* read room past the largest request */
#define CONN_IN_MIN 2048              /* first size of a connection's buffer */
#define REPLY_HIGH_WATER (64 * 1024)  /* stop parsing pipelined requests here */
#define LINGER_MS 2000                /* after the last reply: drain the client */
#define LINGER_MAX_BYTES (1024 * 1024)

enum conn_state {
    CONN_IDLE,      /* between requests; nothing of the next one has arrived */
    CONN_READING,   /* part of a request has arrived */
    CONN_WRITING,   /* replies wait for the socket; reading is paused */
    CONN_CLOSING,   /* the last reply waits for the socket, then LINGERING */
    CONN_LINGERING, /* our side is shut: discard what the client still sends */
};

struct conn {
    struct httpd *h;
    int fd;
    enum conn_state state;
    struct event *io;            /* EV_READ or EV_WRITE, persistent */
    short io_events;
    struct event *timer;
    uint64_t deadline;           /* monotonic ms: time out at */
    uint64_t timer_at;           /* when `timer` fires; 0: not armed */
    uint64_t request_deadline;   /* the current request's first byte + request_timeout_s */
    bool continue_sent;          /* "100 Continue" went out for this request */
    struct httpd_parser parser;
    char *in;                    /* an unfinished request kept between reads */
    size_t in_len, in_cap;
    char *out;                   /* replies the socket has not taken yet */
    size_t out_len, out_off;
    size_t lingered;             /* bytes discarded while LINGERING */
    struct sockaddr_storage peer;
    uint32_t ticket;             /* from cfg.admit, returned to cfg.release */
    struct conn *prev, *next;
};

struct httpd {
    struct event_base *base;
    struct httpd_config cfg;
    int listen_fd;
    struct event *accept_ev;
    struct event *accept_resume;
    struct conn *conns;
    size_t in_cap;               /* buffer for the largest request plus READ_SLACK */
    size_t max_wire;             /* a request as sent, chunk framing included */
    char *rbuf;                  /* scratch: reads land here */
    char *wbuf;                  /* replies of one connection's read, before the write */
    size_t wbuf_len, wbuf_cap;
    uint64_t now;                /* clock_ms() at the start of the callback */
    time_t date_at;
    char date[48];               /* "Date: ...\r\n" of second date_at */
    size_t date_len;
    uint64_t accept_warned_at;
};

struct httpd_reply {
    struct httpd *h;
    bool head_only;   /* HEAD: headers as for GET, no body */
    bool close;       /* the connection closes after this reply */
    bool keep_alive_10; /* HTTP/1.0 with keep-alive: say so */
    bool sent;
};

static void conn_io_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static bool conn_serve(struct conn *c, char *buf, size_t len, bool own);

/* ---- time ---- */

static void httpd_tick(struct httpd *h)
{
    h->now = clock_ms();
    time_t t = time(NULL);
    if (t != h->date_at) {
        struct tm tm;
        gmtime_r(&t, &tm);
        h->date_len = strftime(h->date, sizeof h->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        h->date_at = t;
    }
}

/* ---- replies ---- */

static void wbuf_reserve(struct httpd *h, size_t more)
{
    if (h->wbuf_len + more <= h->wbuf_cap)
        return;
    size_t cap = h->wbuf_cap * 2;
    while (cap < h->wbuf_len + more)
        cap *= 2;
    h->wbuf = xrealloc(h->wbuf, cap);
    h->wbuf_cap = cap;
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

void httpd_reply(struct httpd_reply *r, int status, const char *head, size_t head_len,
                 const char *body, size_t body_len)
{
    if (r->sent) {
        log_error("httpd: a second reply to one request was dropped (status %d)", status);
        return;
    }
    r->sent = true;
    struct httpd *h = r->h;
    bool bodiless = status < 200 || status == 204 || status == 304;
    bool with_body = !bodiless && !r->head_only;
    wbuf_reserve(h, head_len + h->date_len + 96 + (with_body ? body_len : 0));
    char *o = h->wbuf + h->wbuf_len;
    o = put(o, head, head_len);
    o = put(o, h->date, h->date_len);
    if (!bodiless) {
        o = PUT_LIT(o, "Content-Length: ");
        o = uint_to_dec(o, body_len);
        o = PUT_LIT(o, "\r\n");
    }
    if (r->close)
        o = PUT_LIT(o, "Connection: close\r\n");
    else if (r->keep_alive_10)
        o = PUT_LIT(o, "Connection: keep-alive\r\n");
    o = PUT_LIT(o, "\r\n");
    if (with_body && body_len)
        o = put(o, body, body_len);
    h->wbuf_len = (size_t)(o - h->wbuf);
}

static void reply_fallback(struct httpd_reply *r)
{
    static const char head[] = "HTTP/1.1 500 Internal Server Error\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n";
    log_error("httpd: a request got no reply; answered 500");
    httpd_reply(r, 500, head, sizeof head - 1, "no reply\n", 9);
}

/* ---- connection life ---- */

static void conn_want(struct conn *c, short what)
{
    if (c->io_events == what)
        return;
    event_del(c->io);
    event_assign(c->io, c->h->base, c->fd, (short)(what | EV_PERSIST), conn_io_cb, c);
    event_add(c->io, NULL);
    c->io_events = what;
}

static void conn_arm(struct conn *c, uint64_t at)
{
    uint64_t ms = at > c->h->now ? at - c->h->now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->timer_at = at;
}

/* Timers are lazy: a later deadline leaves the armed timer alone (it
 * re-arms itself when it fires early); only an earlier one re-arms it. */
static void conn_set_deadline(struct conn *c, uint64_t deadline)
{
    c->deadline = deadline;
    if (c->timer_at == 0 || deadline < c->timer_at)
        conn_arm(c, deadline);
}

/* The one place a connection changes state. */
static void conn_set_state(struct conn *c, enum conn_state s)
{
    struct httpd *h = c->h;
    uint64_t idle = h->now + (uint64_t)h->cfg.timeout_s * 1000;
    switch (s) {
    case CONN_IDLE:
        conn_want(c, EV_READ);
        conn_set_deadline(c, idle);
        break;
    case CONN_READING:
        conn_want(c, EV_READ);
        conn_set_deadline(c, c->request_deadline < idle ? c->request_deadline : idle);
        break;
    case CONN_WRITING:
    case CONN_CLOSING:
        conn_want(c, EV_WRITE);
        conn_set_deadline(c, idle);
        break;
    case CONN_LINGERING:
        conn_want(c, EV_READ);
        conn_set_deadline(c, h->now + LINGER_MS);
        break;
    }
    c->state = s;
}

static void conn_drop_in(struct conn *c)
{
    if (c->in) {
        explicit_bzero(c->in, c->in_cap);
        free(c->in);
    }
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

static void conn_close(struct conn *c)
{
    struct httpd *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    event_free(c->io);
    event_free(c->timer);
    close(c->fd);
    conn_drop_in(c);
    free(c->out);
    httpd_parser_free(&c->parser);
    sodium_memzero(&c->peer, sizeof c->peer);
    if (h->cfg.release)
        h->cfg.release(h->cfg.arg, c->ticket);
    atomic_fetch_sub_explicit(h->cfg.open_connections, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&h->cfg.metrics->connections, 1, memory_order_relaxed);
    free(c);
}

static void conn_new(struct httpd *h, int fd, const struct sockaddr_storage *peer, socklen_t len,
                     uint32_t ticket)
{
    struct conn *c = calloc(1, sizeof *c);
    struct event *io = c ? event_new(h->base, fd, EV_READ | EV_PERSIST, conn_io_cb, c) : NULL;
    struct event *timer = io ? evtimer_new(h->base, conn_timer_cb, c) : NULL;
    if (!timer) { /* out of memory: refuse this connection, keep serving */
        if (io)
            event_free(io);
        free(c);
        close(fd);
        if (h->cfg.release)
            h->cfg.release(h->cfg.arg, ticket);
        atomic_fetch_sub_explicit(h->cfg.open_connections, 1, memory_order_relaxed);
        return;
    }
    if (peer->ss_family == AF_INET || peer->ss_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->h = h;
    c->fd = fd;
    c->io = io;
    c->io_events = EV_READ;
    c->timer = timer;
    c->ticket = ticket;
    memcpy(&c->peer, peer, len < sizeof c->peer ? len : sizeof c->peer);
    httpd_parser_init(&c->parser, h->cfg.max_header_bytes, h->cfg.max_body_bytes, h->max_wire);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    atomic_fetch_add_explicit(&h->cfg.metrics->connections, 1, memory_order_relaxed);
    event_add(io, NULL);
    c->state = CONN_IDLE;
    conn_set_state(c, CONN_IDLE);
}

/* Write what the worker built for `c` in one write; keep what the socket
 * does not take. Returns false when the connection was closed. */
static bool conn_flush(struct conn *c)
{
    struct httpd *h = c->h;
    if (h->wbuf_len == 0)
        return true;
    ssize_t n = send(c->fd, h->wbuf, h->wbuf_len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        n = 0;
    if (n < 0) {
        h->wbuf_len = 0;
        conn_close(c);
        return false;
    }
    size_t rest = h->wbuf_len - (size_t)n;
    if (rest > 0) {
        c->out = xmalloc(rest);
        memcpy(c->out, h->wbuf + n, rest);
        c->out_len = rest;
        c->out_off = 0;
    }
    h->wbuf_len = 0;
    return true;
}

/* The last reply is out: shut our side and drain the client briefly, so
 * that it reads the reply instead of a reset caused by unread bytes. */
static void conn_finish(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    conn_set_state(c, CONN_LINGERING);
}

/* After the last reply was handed to conn_flush: wait for the socket to
 * take the rest of it, or finish at once. */
static void conn_close_after_reply(struct conn *c)
{
    if (c->out)
        conn_set_state(c, CONN_CLOSING);
    else
        conn_finish(c);
}

/* Answer a request that cannot be served; the connection closes after. */
static void conn_refuse(struct conn *c, int status, const char *reason)
{
    struct httpd *h = c->h;
    struct httpd_reply r = {.h = h, .close = true};
    h->cfg.error(h->cfg.arg, status, reason, &r);
    if (!r.sent)
        reply_fallback(&r);
}

/* Keep buf[0..len) (the unfinished rest of a read) in the connection's
 * own buffer. */
static void conn_keep(struct conn *c, const char *buf, size_t len)
{
    if (c->in_cap < len) {
        size_t cap = CONN_IN_MIN;
        while (cap < len)
            cap *= 2;
        if (cap > c->h->in_cap)
            cap = c->h->in_cap;
        conn_drop_in(c);
        c->in = xmalloc(cap);
        c->in_cap = cap;
    }
    memcpy(c->in, buf, len);
    c->in_len = len;
}

/* Parse and answer every whole request in buf[0..len), which is either
 * the worker's scratch buffer (own = false) or the connection's (own =
 * true), write the replies, keep the unfinished rest, set the state.
 * Returns false when the connection was closed. */
static bool conn_serve(struct conn *c, char *buf, size_t len, bool own)
{
    struct httpd *h = c->h;
    size_t filled = len; /* what to wipe: parsing may shrink len */
    size_t start = 0;
    bool closing = false, new_request = c->state == CONN_IDLE, high_water = false;
    while (start < len) {
        if (h->wbuf_len >= REPLY_HIGH_WATER) {
            high_water = true;
            break;
        }
        size_t region = len - start, used;
        struct httpd_request req;
        enum httpd_parse_result res = httpd_parse(&c->parser, buf + start, &region, &used, &req);
        if (res == HTTPD_PARSE_MORE) {
            len = start + region;
            if (c->parser.expect_continue && !c->continue_sent) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                wbuf_reserve(h, sizeof cont - 1);
                memcpy(h->wbuf + h->wbuf_len, cont, sizeof cont - 1);
                h->wbuf_len += sizeof cont - 1;
                c->continue_sent = true;
            }
            break;
        }
        if (res == HTTPD_PARSE_ERROR) {
            conn_refuse(c, c->parser.error_status, c->parser.error_reason);
            closing = true;
            break;
        }
        req.peer = (const struct sockaddr *)&c->peer;
        struct httpd_reply r = {.h = h,
                                .head_only = req.method == HTTPD_HEAD,
                                .close = !req.keep_alive,
                                .keep_alive_10 = req.keep_alive && req.version_minor == 0};
        h->cfg.handler(h->cfg.arg, &req, &r);
        if (!r.sent)
            reply_fallback(&r);
        start += used;
        httpd_parser_next(&c->parser);
        c->continue_sent = false;
        new_request = true;
        if (r.close) {
            closing = true;
            break;
        }
    }

    size_t rest = closing ? 0 : len - start;
    if (rest > 0 && new_request)
        c->request_deadline = h->now + (uint64_t)h->cfg.request_timeout_s * 1000;
    if (own) {
        if (rest > 0 && start > 0)
            memmove(c->in, c->in + start, rest);
        if (rest == 0)
            conn_drop_in(c);
        else
            explicit_bzero(c->in + rest, filled - rest);
        if (c->in)
            c->in_len = rest;
    } else {
        if (rest > 0)
            conn_keep(c, buf + start, rest);
        explicit_bzero(buf, filled);
    }

    if (!conn_flush(c))
        return false;
    if (closing) {
        conn_close_after_reply(c);
        return true;
    }
    if (c->out) {
        conn_set_state(c, CONN_WRITING);
        return true;
    }
    if (high_water) /* every reply went out: serve the pipelined rest now */
        return conn_serve(c, c->in, c->in_len, true);
    conn_set_state(c, rest > 0 ? CONN_READING : CONN_IDLE);
    return true;
}

static void conn_on_readable(struct conn *c)
{
    struct httpd *h = c->h;
    if (c->state == CONN_LINGERING) {
        ssize_t n = recv(c->fd, h->rbuf, h->in_cap, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n > 0)
            explicit_bzero(h->rbuf, (size_t)n);
        c->lingered += n > 0 ? (size_t)n : 0;
        if (n <= 0 || c->lingered > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    char *buf = h->rbuf;
    size_t len = 0, cap = h->in_cap;
    bool own = c->in_len > 0;
    if (own) {
        if (c->in_len == c->in_cap && c->in_cap < h->in_cap) {
            size_t grown = c->in_cap * 2 < h->in_cap ? c->in_cap * 2 : h->in_cap;
            char *in = xmalloc(grown);
            memcpy(in, c->in, c->in_len);
            size_t keep = c->in_len;
            conn_drop_in(c);
            c->in = in;
            c->in_len = keep;
            c->in_cap = grown;
        }
        buf = c->in;
        len = c->in_len;
        cap = c->in_cap;
        if (len == cap) { /* cannot happen within the limits: refuse, do not spin */
            conn_refuse(c, c->parser.in_body ? 413 : 431,
                        c->parser.in_body ? "body too large" : "header block too large");
            conn_drop_in(c);
            if (conn_flush(c))
                conn_close_after_reply(c);
            return;
        }
    }
    ssize_t n = recv(c->fd, buf + len, cap - len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) { /* the client left (with or without a request half sent) */
        conn_close(c);
        return;
    }
    conn_serve(c, buf, len + (size_t)n, own);
}

static void conn_on_writable(struct conn *c)
{
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off < c->out_len) {
        conn_set_state(c, c->state); /* progress: a fresh timeout_s */
        return;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    if (c->state == CONN_CLOSING) {
        conn_finish(c);
        return;
    }
    if (c->in_len > 0)
        conn_serve(c, c->in, c->in_len, true);
    else
        conn_set_state(c, CONN_IDLE);
}

static void conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct conn *c = arg;
    httpd_tick(c->h);
    if (what & EV_WRITE)
        conn_on_writable(c);
    else if (what & EV_READ)
        conn_on_readable(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    struct httpd *h = c->h;
    httpd_tick(h);
    c->timer_at = 0;
    if (h->now < c->deadline) {
        conn_arm(c, c->deadline);
        return;
    }
    if (c->state != CONN_READING) {
        conn_close(c); /* idle, a reply nobody reads, or lingering: just close */
        return;
    }
    /* A request that did not arrive in time gets its one reply: 408. */
    conn_refuse(c, 408, "request timeout");
    conn_drop_in(c);
    if (conn_flush(c))
        conn_close_after_reply(c);
}

/* ---- accepting ---- */

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct httpd *h = arg;
    if (h->listen_fd >= 0)
        event_add(h->accept_ev, NULL);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    (void)what;
    struct httpd *h = arg;
    httpd_tick(h);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Leave them in the backlog for a moment instead of spinning. */
                if (h->now - h->accept_warned_at >= 10000 || h->accept_warned_at == 0) {
                    log_warn("accept: %s; pausing accepts for %d ms (check max_connections "
                             "against the open-file limit)",
                             strerror(errno), ACCEPT_PAUSE_MS);
                    h->accept_warned_at = h->now;
                }
                event_del(h->accept_ev);
                struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
                evtimer_add(h->accept_resume, &tv);
            }
            break;
        }
        long open = atomic_fetch_add_explicit(h->cfg.open_connections, 1, memory_order_relaxed);
        uint32_t ticket = UINT32_MAX;
        if (open >= h->cfg.max_connections) {
            atomic_fetch_sub_explicit(h->cfg.open_connections, 1, memory_order_relaxed);
            metrics_inc(h->cfg.metrics, M_CONN_REFUSED);
            close(fd);
        } else if (h->cfg.admit &&
                   !h->cfg.admit(h->cfg.arg, (const struct sockaddr *)&peer, &ticket)) {
            atomic_fetch_sub_explicit(h->cfg.open_connections, 1, memory_order_relaxed);
            metrics_inc(h->cfg.metrics, M_CONN_CLIENT_CAP);
            close(fd);
        } else {
            conn_new(h, fd, &peer, len, ticket);
        }
        sodium_memzero(&peer, sizeof peer);
    }
}

int httpd_listen(const char *listen_addr, bool reuseport, char *err, size_t errlen)
{
    char host[300];
    int port;
    if (!hostport_split(listen_addr, host, sizeof host, &port)) {
        str_format(err, errlen, "listen: expected host:port");
        return -1;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char spec[320];
    str_format(spec, sizeof spec, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
        str_format(err, errlen, "listen: not a numeric address (use an IP, not a name)");
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        str_format(err, errlen, "listen %s: %s", listen_addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

struct httpd *httpd_new(struct event_base *base, int listen_fd, const struct httpd_config *cfg)
{
    struct httpd *h = xcalloc(1, sizeof *h);
    h->base = base;
    h->cfg = *cfg;
    h->listen_fd = listen_fd;
    h->in_cap = cfg->max_header_bytes + cfg->max_body_bytes + READ_SLACK;
    /* A chunked body may carry framing: allow as much again as the body. */
    h->max_wire = cfg->max_header_bytes + 2 * cfg->max_body_bytes + READ_SLACK;
    h->rbuf = xmalloc(h->in_cap);
    h->wbuf_cap = 16384;
    h->wbuf = xmalloc(h->wbuf_cap);
    h->accept_ev = event_new(base, listen_fd, EV_READ | EV_PERSIST, accept_cb, h);
    h->accept_resume = evtimer_new(base, accept_resume_cb, h);
    if (!h->accept_ev || !h->accept_resume || event_add(h->accept_ev, NULL) != 0) {
        httpd_free(h);
        return NULL;
    }
    httpd_tick(h);
    return h;
}

void httpd_shutdown(struct httpd *h)
{
    if (h->accept_ev)
        event_del(h->accept_ev);
    if (h->accept_resume)
        event_del(h->accept_resume);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    h->listen_fd = -1;
    while (h->conns)
        conn_close(h->conns);
}

void httpd_free(struct httpd *h)
{
    if (!h)
        return;
    httpd_shutdown(h);
    if (h->accept_ev)
        event_free(h->accept_ev);
    if (h->accept_resume)
        event_free(h->accept_resume);
    if (h->rbuf) {
        explicit_bzero(h->rbuf, h->in_cap);
        free(h->rbuf);
    }
    free(h->wbuf);
    free(h);
}
