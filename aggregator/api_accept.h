/* api_accept.h - what a flood of connections can make the stats API
 * spend of its file descriptors and its log (evhttp has no bound of its
 * own in libevent 2.1, whose evhttp has no connection cap).
 *
 *   - Out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM on accept,
 *     or any other accept error): accepting pauses for API_ACCEPT_PAUSE_MS
 *     instead of spinning, like the collector; connections wait in the
 *     listen backlog. The open-file limit (LimitNOFILE in the systemd
 *     unit) is the connection bound; each connection lives at most the
 *     API's timeout without traffic.
 *   - libevent's own warnings (it printed one per failed accept, 10 MB/s)
 *     go through one throttled logger: each kind of message at most once
 *     per API_LOG_INTERVAL_S, with the count of those not printed.
 *
 * Never logs an address, a request or a header. */
#ifndef VEIL_API_ACCEPT_H
#define VEIL_API_ACCEPT_H

#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

#define API_ACCEPT_PAUSE_MS 100
#define API_LOG_INTERVAL_S 10

struct api_accept;

/* Guard the listener of `bound` (on `base`): install the accept error
 * handler. Call once, before the loop runs. Returns NULL when out of
 * memory. */
struct api_accept *api_accept_new(struct event_base *base, struct evhttp_bound_socket *bound);

/* Free after evhttp_free. NULL is ignored. */
void api_accept_free(struct api_accept *aa);

/* Accept pauses since the start (read on the API thread). */
uint64_t api_accept_pauses(const struct api_accept *aa);

/* Route libevent's log messages (process-wide) through the throttled
 * logger. Idempotent. */
void api_accept_quiet_libevent(void);

#endif
