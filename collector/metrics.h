/* metrics.h - the collector's counters, exposed at GET /metrics in the
 * Prometheus text format. Counters are per worker thread (relaxed atomics,
 * no contention) and summed when scraped. Rejection reasons are the fixed,
 * non-identifying strings the parsers produce; never user input. */
#ifndef VEIL_METRICS_H
#define VEIL_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <event2/buffer.h>

enum metric {
    M_REQUESTS,          /* every request answered */
    M_ACCEPTED,          /* 202 and recorded */
    M_PIXEL,             /* of those, via /e.gif */
    M_DNT,               /* 202, not recorded: DNT */
    M_GPC,               /* 202, not recorded: Sec-GPC */
    M_BOT,               /* 202, not recorded: bot filter */
    M_UNKNOWN_SITE,      /* 202, not recorded: a site not in `sites` */
    M_BAD_REQUEST,       /* 400 */
    M_NOT_FOUND,         /* 404 (unknown site or path) */
    M_BAD_METHOD,        /* 405 */
    M_TOO_LARGE,         /* 413 */
    M_BAD_MEDIA_TYPE,    /* 415 */
    M_UNAVAILABLE,       /* 503: buffer full */
    M_RATE_LIMITED,      /* 429 */
    M_REDIS_WRITTEN,     /* XADD acknowledged by Redis */
    M_REDIS_ERRORS,      /* XADD answered with an error */
    M_REDIS_RECONNECTS,  /* connection attempts after a loss */
    M_REDIS_DUPLICATES,  /* re-sent events Redis already held (not added twice) */
    M_SPOOLED,           /* events written to the disk spool */
    M_REPLAYED,          /* events read back from the spool to go to Redis */
    M_SPOOL_CORRUPT,     /* torn or corrupt spool data skipped (one per bad span) */
    M_SPOOL_ERRORS,      /* spool writes, syncs or opens that failed */
    M_HEADER_TOO_LARGE,  /* 431: request line + headers over max_header_bytes */
    M_REQUEST_TIMEOUT,   /* 408: a request not received within its deadline */
    M_CONN_REFUSED,      /* connections closed at once: max_connections reached */
    M_CONN_CLIENT_CAP,   /* connections closed at once: the client's max_client_connections */
    M_BUFFER_BYTES_FULL, /* events sent to the spool because max_buffered_bytes was reached */
    M_REDIS_UNCONFIRMED, /* delivery calls whose WAIT did not confirm wait_replicas replicas */
    M__COUNT
};

struct metrics {
    _Atomic uint64_t c[M__COUNT];
    _Atomic int64_t buffered; /* events waiting for Redis in memory (gauge) */
    _Atomic int64_t spool_bytes; /* size of this thread's spool files (gauge) */
    _Atomic int64_t connections; /* client connections open on this thread (gauge) */
};

static inline void metrics_inc(struct metrics *m, enum metric k)
{
    atomic_fetch_add_explicit(&m->c[k], 1, memory_order_relaxed);
}

/* Count one rejection reason (a static, non-identifying string). At most
 * 64 distinct reasons are tracked; the rest count as "other". */
void metrics_reason(const char *reason);

/* Append the Prometheus text of `n` per-thread metric blocks to `out`. */
void metrics_render(struct metrics *const *per_thread, int n, struct evbuffer *out);

/* Sum of one counter over all threads. */
uint64_t metrics_sum(struct metrics *const *per_thread, int n, enum metric k);

#endif
