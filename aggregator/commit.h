/* commit.h - one combined batch into Redis, atomically.
 *
 * Two steps per batch (docs/AGGREGATOR.md "Exactly once"):
 *
 *   1. a snapshot (MULTI/EXEC) of the batch's open sessions and of the
 *      sessions version counter; rollup_apply_sessions runs on it in C;
 *   2. a Lua script (EVALSHA, loaded once, re-loaded on NOSCRIPT) that
 *      checks the batch's entries are still pending for this consumer and
 *      the sessions are as in the snapshot - else it writes nothing and
 *      says why - then applies every increment, HyperLogLog add, session
 *      and expiry, XACKs the entries and trims them from the stream.
 *
 * The steps can be pipelined (commit_snapshot_send/_receive, commit_send/
 * _receive) so that the process combines the next batch while Redis runs
 * the script; commit_batch does both steps synchronously.
 *
 * It sends only what rollup.c combined (counts, dimension values, visitor
 * hashes, session states, stream ids); it never logs event content. */
#ifndef VEIL_COMMIT_H
#define VEIL_COMMIT_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rollup.h"

struct commit_params {
    const char *stream_key;       /* veil:{0}:events */
    const char *sites_key;        /* veil:{0}:sites */
    const char *group;            /* "agg" */
    const char *consumer;         /* the consumer name the batch's entries were read under */
    long long breakdown_cap;
    long long session_timeout_s;
    const char *prefix;           /* key prefix; NULL = ROLLUP_SHARD_PREFIX */
    const char *other_consumer;   /* this process's second consumer name (kept by
                                     commit_forget_consumers); NULL = none */
};

enum commit_result {
    COMMIT_OK = 0,    /* counted, acknowledged and trimmed */
    COMMIT_CONFLICT,  /* nothing written: some entries are no longer ours (lost[] set) */
    COMMIT_STALE,     /* nothing written: a session changed since the snapshot */
    COMMIT_NOSCRIPT,  /* nothing written: the server lost the script (commit_resend) */
    COMMIT_ERROR,     /* nothing known written; reason in err; check rc->err */
};

struct commit;
struct commit_snapshot;

/* A committer holding the script's SHA, the server clock offset and
 * reusable argument buffers. Aborts on OOM. */
struct commit *commit_new(void);
void commit_free(struct commit *c);

/* The stored sessions one batch's session logic was computed from. One
 * per batch in flight. Aborts on OOM. */
struct commit_snapshot *commit_snapshot_new(void);
void commit_snapshot_free(struct commit_snapshot *s);

/* SCRIPT LOAD the commit script on `rc` (done lazily by commit_send too).
 * Returns 0, or -1 with a reason in err. */
int commit_load(struct commit *c, redisContext *rc, char *err, size_t errlen);

/* Append the snapshot of the open sessions of `r` (rollup_finish done) to
 * rc's output buffer; nothing is sent for a batch without sessions.
 * Returns 0, or -1 (hiredis error in rc->err). */
int commit_snapshot_send(struct commit *c, redisContext *rc, const struct commit_params *p,
                         const struct rollup *r, struct commit_snapshot *s);

/* Read the snapshot's reply into `s` and apply it to `r`
 * (rollup_apply_sessions). Re-reads synchronously when the server's time
 * bucket was mis-guessed. Returns 0, or -1 with a reason in err. */
int commit_snapshot_receive(struct commit *c, redisContext *rc, const struct commit_params *p,
                            struct rollup *r, struct commit_snapshot *s, char *err,
                            size_t errlen);

/* Append the commit script call of stream entries ids[0..nids) (each
 * idlens[i] bytes, ascending) with the combined batch `r` and its applied
 * snapshot `s`. The ids must be every entry `r` was built from plus any
 * entry to acknowledge without counting (rejected, expired, deleted).
 * `held` is the number of entries pending for p->consumer when the script
 * runs if nothing was taken away (the script then checks one count
 * instead of every id); 0 = unknown, check every id. The arguments are
 * kept for commit_resend. Returns 0, or -1 with a reason in err. */
int commit_send(struct commit *c, redisContext *rc, const struct commit_params *p,
                const char *const *ids, const size_t *idlens, size_t nids, size_t held,
                const struct rollup *r, const struct commit_snapshot *s, char *err,
                size_t errlen);

/* Read the reply of the last commit_send. On COMMIT_CONFLICT, lost[i] is
 * set for each id no longer pending for the consumer: drop those entries,
 * recombine the rest and commit again. On COMMIT_STALE take a new snapshot
 * and commit again. On COMMIT_NOSCRIPT read the replies of anything
 * pipelined after it, then call commit_resend. Returns the result; on
 * COMMIT_ERROR a reason is in err. */
enum commit_result commit_receive(struct commit *c, redisContext *rc, const char *const *ids,
                                  const size_t *idlens, size_t nids, bool *lost, char *err,
                                  size_t errlen);

/* Load the script again and send the last commit again (after
 * COMMIT_NOSCRIPT); read its reply with commit_receive. Returns 0 or -1. */
int commit_resend(struct commit *c, redisContext *rc, char *err, size_t errlen);

/* Both steps, synchronously, retried while sessions change underneath:
 * snapshot, apply, commit (`held` as for commit_send). `r` is finished
 * (rollup_finish). Returns the result as commit_receive (never
 * COMMIT_STALE or COMMIT_NOSCRIPT). */
enum commit_result commit_batch(struct commit *c, redisContext *rc,
                                const struct commit_params *p, const char *const *ids,
                                const size_t *idlens, size_t nids, size_t held,
                                struct rollup *r, bool *lost, char *err, size_t errlen);

/* Remove consumers of the group other than p->consumer and
 * p->other_consumer that have nothing pending and were idle for more than
 * `idle_ms` (dead workers' names), in one script so a consumer cannot read
 * entries in between. Returns the number removed, or -1 with a reason in
 * err. */
long long commit_forget_consumers(redisContext *rc, const struct commit_params *p,
                                  long long idle_ms, char *err, size_t errlen);

#endif
