/* commit.h - one combined batch into Redis, atomically. The session logic
 * and the breakdown caps are planned in C from pipelined reads; one Lua
 * script call (EVALSHA, loaded once, re-loaded on NOSCRIPT) checks that the
 * batch's entries are still pending for this consumer and that what the
 * plan was made from is unchanged, applies every increment, HyperLogLog
 * add and expiry, then XACKs and XDELs the entries - all or nothing
 * (docs/AGGREGATOR.md).
 *
 * It sends only what rollup.c combined (counts, dimension values, visitor
 * hashes, stream ids); it never sends or logs event content otherwise. */
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
    const char *consumer;         /* this process's consumer name */
    long long breakdown_cap;
    long long session_timeout_s;
};

enum commit_result {
    COMMIT_OK = 0,    /* counted, acknowledged and trimmed */
    COMMIT_CONFLICT,  /* nothing written: some entries are no longer ours (lost[] set) */
    COMMIT_ERROR,     /* nothing known written; reason in err; check rc->err */
};

struct commit;

/* A committer holding the script's SHA and a reusable argument buffer.
 * Aborts on OOM. */
struct commit *commit_new(void);
void commit_free(struct commit *c);

/* SCRIPT LOAD the commit script on `rc` (done lazily by commit_batch too).
 * Returns 0, or -1 with a reason in err. */
int commit_load(struct commit *c, redisContext *rc, char *err, size_t errlen);

/* Commit stream entries ids[0..nids) (each idlens[i] bytes) together with
 * the combined batch `r` (rollup_finish already called). The ids must be
 * every entry `r` was built from plus any entry to acknowledge without
 * counting (rejected, expired, deleted). On COMMIT_CONFLICT, lost[i] is
 * set for each id no longer pending for p->consumer and nothing was
 * written: drop those entries, recombine the rest and call again.
 * Returns the result; on COMMIT_ERROR a reason is in err. */
enum commit_result commit_batch(struct commit *c, redisContext *rc,
                                const struct commit_params *p, const char *const *ids,
                                const size_t *idlens, size_t nids, const struct rollup *r,
                                bool *lost, char *err, size_t errlen);

/* Tests only: `hook` runs between the reads and the script call of every
 * plan (attempt 0, 1, ...), to change what was read as another worker
 * would. NULL removes it. */
void commit_set_plan_hook(struct commit *c, void (*hook)(void *arg, int attempt), void *arg);

/* Plans thrown away because a guard failed, since commit_new. */
unsigned long long commit_replans(const struct commit *c);

/* Remove consumers of the group other than p->consumer that have nothing
 * pending and were idle for more than `idle_ms` (dead workers' names), in
 * one script so a consumer cannot read entries in between. Returns the
 * number removed, or -1 with a reason in err. */
long long commit_forget_consumers(redisContext *rc, const struct commit_params *p,
                                  long long idle_ms, char *err, size_t errlen);

#endif
