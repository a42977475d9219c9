/* spool.h - one worker thread's disk spool: the tier after the in-memory
 * buffer while Redis is slow or away, and where unacknowledged events go
 * at shutdown (docs/DELIVERY.md).
 *
 * A spool is a FIFO of segment files in spool_dir, all named after the
 * spool's group "<run id>-<worker>": "<group>.<seq>.spool". Each file is
 * append-only: an 8-byte header, then records framed as
 *   [u32 marker F5 1E C0 DE][u32 len LE][u32 crc32c(len, payload) LE][payload]
 * A torn or corrupt record is reported (offset and reason, never content)
 * and skipped; the next intact record is found again by its marker and
 * checksum. Records are opaque here: the sink stores the derived stream
 * fields of one event, never an IP or a User-Agent.
 *
 * Threads never share a spool (no locking inside). Between processes,
 * "<group>.lock" is held with flock(2) while the group is alive; files of
 * a group whose lock is free were left by a previous run and are adopted:
 * renamed into the adopting spool's group and replayed after its own.
 *
 * Every call does bounded disk I/O on the calling thread: one pwrite per
 * append (plus fdatasync with spool_fsync=always), reads of at most one
 * record plus 64 KiB, adoption reads each adopted file once. */
#ifndef VEIL_SPOOL_H
#define VEIL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

#define SPOOL_RECORD_MAX (64 * 1024) /* largest payload accepted */
#define SPOOL_RECORD_OVERHEAD 12     /* marker, length, checksum */
#define SPOOL_GROUP_MAX 32           /* "<16 hex>-<worker>" and NUL */

/* When appended records are forced to stable storage. */
enum spool_fsync {
    SPOOL_FSYNC_ALWAYS = 0, /* fdatasync before spool_append returns */
    SPOOL_FSYNC_BATCH,      /* fdatasync when spool_sync is called (every 100 ms by the sink) */
    SPOOL_FSYNC_NEVER,      /* the kernel writes back when it likes */
};
extern const char *const spool_fsync_names[]; /* "always", "batch", "never", NULL */

struct spool_options {
    const char *dir;        /* created (0700) when missing */
    uint64_t max_bytes;     /* appends are refused once the files would exceed it */
    enum spool_fsync fsync;
    int worker;             /* orphan groups are shared out: this spool adopts */
    int nworkers;           /*   those whose name hashes to worker (mod nworkers) */
    uint64_t run_id;        /* group id part; 0 = random */
};

struct spool;
struct spool_seg;

/* Open the spool of one worker: create the directory and the group lock,
 * then adopt orphan files (see spool_adopt). `m` (may be NULL) receives
 * the corrupt-record counter and the spool_bytes gauge. Returns NULL with
 * a reason in err when the directory or the lock cannot be used. */
struct spool *spool_open(const struct spool_options *opt, struct metrics *m, char *err,
                         size_t errlen);

/* The group id, "<16 hex>-<worker>": unique to this spool. */
const char *spool_group(const struct spool *sp);

/* Append one record. Returns 0 when it is in the file (and synced with
 * spool_fsync=always), -1 when the cap would be exceeded or the write
 * failed (the file is left as it was). */
int spool_append(struct spool *sp, const void *payload, size_t len);

/* Records appended or adopted and not yet read back by spool_next. */
uint64_t spool_unread(const struct spool *sp);

/* Bytes of all segment files (what the cap counts). */
uint64_t spool_bytes(const struct spool *sp);

/* The oldest unread record. Returns 1 with *payload and *len pointing into a
 * buffer that stays valid until the next call on `sp`, and *ref to hand
 * to spool_release once the record is acknowledged or given up; 0 when
 * nothing is unread. Corrupt records are skipped (and reported), never
 * returned. */
int spool_next(struct spool *sp, const uint8_t **payload, size_t *len, struct spool_seg **ref);

/* One record obtained by spool_next is done with. A segment file whose
 * records are all read and done is deleted. */
void spool_release(struct spool *sp, struct spool_seg *ref);

/* fdatasync what was appended since the last call (spool_fsync=batch).
 * Returns 0 or -1. */
int spool_sync(struct spool *sp);

/* Adopt files of groups whose lock is free (a dead process) and whose
 * name hashes to this worker: each file is checked once (corruption
 * reported), renamed into this group and queued after what this spool
 * already holds. Returns the number of records adopted. */
uint64_t spool_adopt(struct spool *sp);

/* Shutdown: save the records the caller still holds in memory, which are
 * older than anything unread in the spool. begin, then add each record in
 * order, then commit: the saved records and the unread rest of the
 * partly read segment go into one file that takes that segment's place,
 * and every fully read segment is deleted. Appends are not refused for
 * the cap here (accepted events are never dropped at shutdown). Each
 * returns 0 or -1; after a failure, call spool_dump_abort. References
 * from spool_next are void after commit (do not release them). */
int spool_dump_begin(struct spool *sp);
int spool_dump_add(struct spool *sp, const void *payload, size_t len);
int spool_dump_commit(struct spool *sp);
void spool_dump_abort(struct spool *sp);

/* Close the files and release the group lock. Unread records stay on disk
 * for the next run. */
void spool_close(struct spool *sp);

#endif
