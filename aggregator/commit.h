/* commit.h - one combined batch of one owned shard into Redis, in one
 * atomic, epoch-checked function call (veil_commit in
 * veil_functions.lua; docs/AGGREGATOR.md "The commit").
 *
 * The visits and the breakdown caps are planned in C from the shard's
 * memory (shard_state.h): nothing is read per event. The only reads are
 * the rows of a breakdown the shard has not touched since it was taken
 * over (HKEYS, once). The call then writes one HINCRBY per distinct key
 * and field, one PFADD per key with all its members, the changed and
 * closed visits (the checkpoint), and trims the batch from the stream; it
 * writes nothing when the shard's epoch is no longer ours.
 *
 * It sends only counts, dimension values, visitor hashes, stream ids and
 * (for legacy entries of another shard) packed events; it never logs. */
#ifndef VEIL_COMMIT_H
#define VEIL_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "rollup.h"
#include "shard_state.h"

struct commit_params {
    const char *owner;          /* this process's name in the leases */
    long long lease_ms;
    long long breakdown_cap;
    long long property_budget;  /* rows of all prop:<key> breakdowns of a site-day */
    long long session_timeout_s;
    long long future_skew_s;    /* visits idle past timeout + skew of stream time close */
    int64_t now;                /* unix time: the realtime window */
    long long pair_budget;      /* two-dimensional cells of a site-day, 0 = none */
    uint32_t pair_dims;         /* visit slots paired (bit d = slot d) */
};

/* A legacy entry whose site belongs to another shard: moved there by the
 * commit (XADD of the packed event to that shard's stream). */
struct commit_forward {
    const char *stream;         /* the site's shard's stream key */
    const char *packed;         /* event_pack bytes */
    size_t len;
};

enum commit_result {
    COMMIT_OK = 0,    /* counted, checkpointed and trimmed; st updated */
    COMMIT_STALE,     /* nothing written: the shard's epoch is not ours any more */
    COMMIT_ERROR,     /* unknown whether written (reason in err): reload st */
};

struct commit;

/* A committer with reusable buffers. Aborts on OOM. */
struct commit *commit_new(void);
void commit_free(struct commit *c);

/* Commit batch `r` (rollup_finish called, every event of shard st) and
 * the forwards fw[0..nfw), then trim the stream up to, not including,
 * `trim_minid` ("" = nothing to trim). With `sweep`, visits idle past the
 * timeout in stream time are closed and dropped from the checkpoint, and
 * unused breakdowns are forgotten from memory. On COMMIT_OK the shard's
 * memory holds the new state; otherwise it is unchanged (on COMMIT_ERROR
 * the caller must reload it: the call may have run). */
enum commit_result commit_batch(struct commit *c, redisContext *rc, struct shard_state *st,
                                const struct commit_params *p, const struct rollup *r,
                                const char *trim_minid, const struct commit_forward *fw,
                                size_t nfw, bool sweep, char *err, size_t errlen);

/* Redis commands the last commit_batch ran inside its function call, and
 * the breakdowns it had to read first (HKEYS). */
unsigned long long commit_last_commands(const struct commit *c);
unsigned long long commit_last_reads(const struct commit *c);

/* Which twins of each day key (months.h) every commit also adds to: its
 * quarter, month, week (docs/AGGREGATOR.md "Month, week and quarter
 * roll-ups"). All off after commit_new. */
void commit_set_rollups(struct commit *c, bool quarters, bool months, bool weeks);

/* Tests only: `hook` runs right before the function call. */
void commit_set_hook(struct commit *c, void (*hook)(void *arg), void *arg);

#endif
