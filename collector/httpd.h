/* httpd.h - the collector's lean HTTP/1.1 server: one per worker thread,
 * on that thread's event_base, accepting from its own SO_REUSEPORT
 * listener (docs/HTTPD.md).
 *
 * It accepts connections up to a process-wide cap, reads requests with
 * httpd_parse (keep-alive, pipelining, HTTP/1.0, chunked bodies,
 * "Expect: 100-continue"), hands each whole request to the handler in
 * arrival order, and writes the replies of one read in one write. Every
 * limit is explicit: header and body bytes, a whole-request deadline, an
 * idle timeout, the connection count. Protocol errors (400, 408, 413, 431)
 * are answered through the error callback, then the connection closes.
 *
 * Never logs an IP, a User-Agent or a request target. The peer address
 * stays in the connection only while it is open and is wiped when it
 * closes; request bytes are wiped once parsed. */
#ifndef VEIL_HTTPD_H
#define VEIL_HTTPD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "httpd_parse.h"
#include "metrics.h"

struct httpd;
struct httpd_reply; /* the one reply a request gets (httpd_reply) */

/* Called once per whole request, in the order requests arrived on a
 * connection; must call httpd_reply exactly once before returning. */
typedef void (*httpd_handler_fn)(void *arg, const struct httpd_request *req,
                                 struct httpd_reply *reply);

/* Called for a request that cannot be served (`status` 400, 408, 413 or
 * 431, `reason` a fixed text); must call httpd_reply exactly once. The
 * connection closes after this reply. */
typedef void (*httpd_error_fn)(void *arg, int status, const char *reason,
                               struct httpd_reply *reply);

struct httpd_config {
    size_t max_header_bytes;   /* request line + headers; more is 431 */
    size_t max_body_bytes;     /* decoded body; more is 413 */
    int timeout_s;             /* idle, between reads, or a reply not read */
    int request_timeout_s;     /* one whole request, from its first byte; then 408 */
    long max_connections;      /* process-wide, with open_connections */
    _Atomic long *open_connections; /* shared by every httpd of the process */
    struct metrics *metrics;   /* this thread's counters and connection gauge */
    httpd_handler_fn handler;
    httpd_error_fn error;
    void *arg;                 /* passed to handler, error, admit and release */
    /* Optional per-client connection cap: admit decides at accept time
     * (false: closed at once, counted in M_CONN_CLIENT_CAP) and hands out a
     * ticket; release gets the ticket back when the connection closes.
     * Must not keep `peer`. NULL: every connection is admitted. */
    bool (*admit)(void *arg, const struct sockaddr *peer, uint32_t *ticket);
    void (*release)(void *arg, uint32_t ticket);
};

/* A non-blocking listening socket on "host:port" or "[v6]:port", with
 * SO_REUSEPORT when `reuseport` (one per worker; without it a second
 * process on the same port fails to bind). Returns the fd, or -1 with a
 * reason. */
int httpd_listen(const char *listen_addr, bool reuseport, char *err, size_t errlen);

/* A server on `base` accepting from `listen_fd`, which it owns from now
 * on (also when it returns NULL). `cfg` is copied. */
struct httpd *httpd_new(struct event_base *base, int listen_fd, const struct httpd_config *cfg);

/* Stop accepting (the listener is closed) and close every connection,
 * whatever it was doing. Call on the server's thread. */
void httpd_shutdown(struct httpd *h);

/* Shut down if not done yet and free. NULL is ignored. */
void httpd_free(struct httpd *h);

/* Answer the request with `status` (which must match the status line).
 * `head` is the status line and the headers, each ending in CRLF, without
 * Date, Content-Length and Connection, which are added here. The body is
 * copied (and left out for HEAD, 1xx, 204 and 304). A second call for the
 * same request is a programming error: logged and ignored. */
void httpd_reply(struct httpd_reply *reply, int status, const char *head, size_t head_len,
                 const char *body, size_t body_len);

#endif
