/* spool.c - append-only, checksummed spool files of one worker (spool.h).
 *
 * Must never hold anything but the opaque records the sink hands it (the
 * derived stream fields), and never log a record's content: reports name
 * the file, the offset and the reason only.
 *
 * Segments form a FIFO in replay order. Only the tail is appended to; a
 * new segment starts when the tail reaches segment_bytes or when files are
 * adopted (they queue behind everything this spool holds). A segment is
 * deleted as soon as every record in it has been read and released. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SPOOL_MAGIC "VEILSP1\n"
#define SPOOL_HEADER 8
#define SPOOL_READ_CHUNK (64 * 1024)
#define SPOOL_DUMP_BUF (256 * 1024)
#define SPOOL_SEGMENT_MIN (16 * 1024)
#define SPOOL_SEGMENT_MAX (8 * 1024 * 1024)

const char *const spool_fsync_names[] = {"always", "batch", "never", NULL};

static const uint8_t record_marker[4] = {0xF5, 0x1E, 0xC0, 0xDE};

/* ---- CRC-32C (Castagnoli), table driven ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The checksum covers the length field and the payload. */
static uint32_t record_crc(const uint8_t len_le[4], const uint8_t *payload, size_t len)
{
    return crc32c(crc32c(0, len_le, 4), payload, len);
}

static void frame_header(uint8_t hdr[SPOOL_RECORD_OVERHEAD], const void *payload, size_t len)
{
    memcpy(hdr, record_marker, 4);
    put_u32(hdr + 4, (uint32_t)len);
    put_u32(hdr + 8, record_crc(hdr + 4, payload, len));
}

/* ---- reading with resynchronisation ---- */

struct reader {
    int fd;
    uint64_t size;       /* bytes that may be read */
    const char *name;    /* file name for reports */
    bool report;         /* false: corruption was reported when the file was adopted */
    struct metrics *m;   /* may be NULL */
    uint8_t *buf;
    size_t cap;
    uint64_t boff;       /* buf holds file bytes [boff, boff + blen) */
    size_t blen;
    uint64_t corrupt;
};

/* Make buf hold [off, off + n). Returns 0, or -1 on a read error or a file
 * shorter than expected. */
static int reader_fill(struct reader *r, uint64_t off, size_t n)
{
    if (off >= r->boff && off + n <= r->boff + r->blen)
        return 0;
    size_t want = n > SPOOL_READ_CHUNK ? n : SPOOL_READ_CHUNK;
    if (want > r->size - off)
        want = (size_t)(r->size - off);
    if (want > r->cap) {
        r->buf = xrealloc(r->buf, want);
        r->cap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    r->boff = off;
    r->blen = got;
    return got >= n ? 0 : -1;
}

/* Payload length of the intact record at `p`, or -1 with the reason. */
static long record_at(struct reader *r, uint64_t p, const char **why)
{
    if (r->size - p < SPOOL_RECORD_OVERHEAD) {
        *why = "torn record at the end of the file";
        return -1;
    }
    if (reader_fill(r, p, SPOOL_RECORD_OVERHEAD) != 0) {
        *why = "read error";
        return -1;
    }
    const uint8_t *h = r->buf + (p - r->boff);
    if (memcmp(h, record_marker, 4) != 0) {
        *why = "no record marker";
        return -1;
    }
    uint32_t len = get_u32(h + 4);
    if (len == 0 || len > SPOOL_RECORD_MAX) {
        *why = "impossible record length";
        return -1;
    }
    if (r->size - p - SPOOL_RECORD_OVERHEAD < len) {
        *why = "record runs past the end of the file (torn write)";
        return -1;
    }
    if (reader_fill(r, p, SPOOL_RECORD_OVERHEAD + len) != 0) {
        *why = "read error";
        return -1;
    }
    h = r->buf + (p - r->boff);
    if (record_crc(h + 4, h + SPOOL_RECORD_OVERHEAD, len) != get_u32(h + 8)) {
        *why = "checksum mismatch";
        return -1;
    }
    return (long)len;
}

/* Offset of the next intact record at or after `from`, or the file size. */
static uint64_t resync(struct reader *r, uint64_t from)
{
    uint64_t p = from;
    while (p + SPOOL_RECORD_OVERHEAD <= r->size) {
        size_t span = r->size - p < SPOOL_READ_CHUNK ? (size_t)(r->size - p) : SPOOL_READ_CHUNK;
        if (reader_fill(r, p, span) != 0)
            return r->size;
        const uint8_t *base = r->buf + (p - r->boff);
        const uint8_t *hit = memmem(base, span, record_marker, sizeof record_marker);
        if (!hit) {
            p += span - 3; /* a marker may straddle the window's end */
            continue;
        }
        uint64_t cand = p + (uint64_t)(hit - base);
        const char *why;
        if (record_at(r, cand, &why) >= 0)
            return cand;
        p = cand + 1;
    }
    return r->size;
}

static void report_corrupt(struct reader *r, uint64_t off, const char *why, uint64_t skipped)
{
    r->corrupt++;
    if (!r->report)
        return;
    if (r->m)
        metrics_inc(r->m, M_SPOOL_CORRUPT);
    log_warn("spool %s: bad data at offset %llu (%s): %llu bytes skipped, reading on at the "
             "next intact record",
             r->name, (unsigned long long)off, why, (unsigned long long)skipped);
}

/* Offset of the first record: after a good header, else wherever the
 * first intact record is found. */
static uint64_t reader_start(struct reader *r)
{
    if (r->size == 0)
        return 0;
    if (r->size >= SPOOL_HEADER && reader_fill(r, 0, SPOOL_HEADER) == 0 &&
        memcmp(r->buf + (0 - r->boff), SPOOL_MAGIC, SPOOL_HEADER) == 0)
        return SPOOL_HEADER;
    uint64_t first = resync(r, 0);
    report_corrupt(r, 0, r->size < SPOOL_HEADER ? "torn file header" : "bad file header", first);
    return first;
}

/* The next intact record at or after *off: returns 1 with the payload in
 * r->buf, 0 at the end. Corrupt spans are reported and skipped. */
static int reader_next(struct reader *r, uint64_t *off, const uint8_t **payload, size_t *len)
{
    while (*off < r->size) {
        const char *why = "";
        long n = record_at(r, *off, &why);
        if (n >= 0) {
            *payload = r->buf + (*off - r->boff) + SPOOL_RECORD_OVERHEAD;
            *len = (size_t)n;
            *off += SPOOL_RECORD_OVERHEAD + (uint64_t)n;
            return 1;
        }
        uint64_t next = resync(r, *off + 1);
        report_corrupt(r, *off, why, next - *off);
        *off = next;
    }
    return 0;
}

/* ---- segments ---- */

struct spool_seg {
    struct spool_seg *next;
    uint64_t seq;
    int fd;               /* -1 while closed */
    uint64_t size;        /* file length */
    uint64_t read_off;    /* next record to read */
    uint64_t start_off;   /* the first record (after the header) */
    uint64_t unread;      /* intact records not yet read */
    uint64_t outstanding; /* read, not yet released */
    bool checked;         /* adopted: corruption was reported then */
};

/* One log line per interval for a refusal that repeats per event (a full
 * disk, a full spool): the first is logged at once, later ones are counted
 * and reported with the next line after SPOOL_LOG_INTERVAL_MS. */
#define SPOOL_LOG_INTERVAL_MS 10000
struct log_every {
    uint64_t logged_at;   /* clock_ms of the last line; 0: never */
    uint64_t suppressed;  /* refusals since that line */
};

struct spool {
    struct log_every full_log;  /* spool_max_bytes reached */
    struct log_every write_log; /* writes or creates failed (ENOSPC...) */
    char *dir;
    char group[SPOOL_GROUP_MAX];
    uint64_t max_bytes, segment_bytes;
    enum spool_fsync fsync;
    int worker, nworkers;
    struct metrics *m;
    int lock_fd;
    struct spool_seg *head, *tail; /* replay order */
    struct spool_seg *writing;     /* the tail while it takes appends */
    struct spool_seg *reading;     /* the segment `rd` is attached to */
    struct reader rd;
    char rd_name[SPOOL_GROUP_MAX + 32];
    uint64_t next_seq;
    uint64_t bytes, unread;
    bool data_dirty, dir_dirty; /* fdatasync / directory fsync owed */
    bool dumping;  /* between spool_dump_begin and commit/abort */
    int dump_fd;   /* opened at the first flush: no file when nothing is saved */
    uint64_t dump_size, dump_records;
    uint8_t *wbuf;
    size_t wlen;
};

static void count(struct spool *sp, enum metric k)
{
    if (sp->m)
        metrics_inc(sp->m, k);
}

static void gauge(struct spool *sp)
{
    if (sp->m)
        atomic_store_explicit(&sp->m->spool_bytes, (int64_t)sp->bytes, memory_order_relaxed);
}

static void seg_name(const struct spool *sp, const char *group, uint64_t seq, char *out,
                     size_t outlen)
{
    (void)sp;
    str_format(out, outlen, "%s.%016llx.spool", group, (unsigned long long)seq);
}

static void dir_path(const struct spool *sp, const char *name, char *out, size_t outlen)
{
    str_format(out, outlen, "%s/%s", sp->dir, name);
}

static void seg_path(const struct spool *sp, uint64_t seq, char *out, size_t outlen)
{
    char name[SPOOL_GROUP_MAX + 32];
    seg_name(sp, sp->group, seq, name, sizeof name);
    dir_path(sp, name, out, outlen);
}

static int sync_dir(struct spool *sp)
{
    int fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    sp->dir_dirty = false;
    return rc;
}

static int seg_fd(struct spool *sp, struct spool_seg *seg)
{
    if (seg->fd < 0) {
        char path[1200];
        seg_path(sp, seg->seq, path, sizeof path);
        seg->fd = open(path, O_RDWR | O_CLOEXEC);
    }
    return seg->fd;
}

static void seg_close(struct spool *sp, struct spool_seg *seg)
{
    if (seg->fd >= 0 && seg != sp->writing && seg != sp->reading) {
        close(seg->fd);
        seg->fd = -1;
    }
}

/* Take a segment out of the FIFO and free it; delete its file if asked. */
static void seg_remove(struct spool *sp, struct spool_seg *seg, bool delete_file)
{
    struct spool_seg **pp = &sp->head, *prev = NULL;
    while (*pp && *pp != seg) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp)
        *pp = seg->next;
    if (sp->tail == seg)
        sp->tail = prev;
    if (sp->writing == seg)
        sp->writing = NULL;
    if (sp->reading == seg)
        sp->reading = NULL;
    char path[1200];
    seg_path(sp, seg->seq, path, sizeof path);
    if (delete_file && unlink(path) != 0 && errno != ENOENT)
        log_warn("spool: cannot delete %s: %s", path, strerror(errno));
    if (seg->fd >= 0)
        close(seg->fd);
    sp->bytes -= seg->size;
    sp->unread -= seg->unread;
    free(seg);
    gauge(sp);
}

static void seg_unlink(struct spool *sp, struct spool_seg *seg)
{
    seg_remove(sp, seg, true);
}

/* Drop a segment this run cannot read. Its file is left where it is (the
 * next run adopts it again) or, renamed out of the group's names, for the
 * operator. */
static void seg_forget(struct spool *sp, struct spool_seg *seg)
{
    char path[1200], keep[1300];
    seg_path(sp, seg->seq, path, sizeof path);
    str_format(keep, sizeof keep, "%s.unreadable", path);
    if (rename(path, keep) == 0)
        log_error("spool: %s renamed to %s for the operator", path, keep);
    seg_remove(sp, seg, false);
}

/* Delete a segment once all of it is read and released. */
static void maybe_reclaim(struct spool *sp, struct spool_seg *seg)
{
    if (seg->read_off >= seg->size && seg->outstanding == 0)
        seg_unlink(sp, seg);
}

static void seg_link(struct spool *sp, struct spool_seg *seg)
{
    seg->next = NULL;
    if (sp->tail)
        sp->tail->next = seg;
    else
        sp->head = seg;
    sp->tail = seg;
    sp->bytes += seg->size;
    sp->unread += seg->unread;
    gauge(sp);
}

/* Stop appending to the current tail (it keeps its place in the FIFO). */
static void seal(struct spool *sp)
{
    struct spool_seg *w = sp->writing;
    if (!w)
        return;
    if (sp->data_dirty && sp->fsync != SPOOL_FSYNC_NEVER && w->fd >= 0) {
        if (fdatasync(w->fd) != 0)
            count(sp, M_SPOOL_ERRORS);
        sp->data_dirty = false;
    }
    sp->writing = NULL;
    seg_close(sp, w);
}

/* True when this occurrence is to be logged (then *suppressed is how many
 * were not since the last line); else counts it. */
static bool log_due(struct log_every *l, uint64_t *suppressed)
{
    uint64_t now = clock_ms();
    if (l->logged_at != 0 && now - l->logged_at < SPOOL_LOG_INTERVAL_MS) {
        l->suppressed++;
        return false;
    }
    *suppressed = l->suppressed;
    l->suppressed = 0;
    l->logged_at = now ? now : 1;
    return true;
}

static struct spool_seg *seg_create(struct spool *sp)
{
    uint64_t seq = sp->next_seq++;
    char path[1200];
    seg_path(sp, seq, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    uint64_t suppressed;
    if (fd < 0) {
        if (log_due(&sp->write_log, &suppressed))
            log_error("spool: cannot create %s: %s (%llu more failures since the last line)",
                      path, strerror(errno), (unsigned long long)suppressed);
        return NULL;
    }
    if (pwrite(fd, SPOOL_MAGIC, SPOOL_HEADER, 0) != SPOOL_HEADER) {
        if (log_due(&sp->write_log, &suppressed))
            log_error("spool: cannot write %s: %s (%llu more failures since the last line)",
                      path, strerror(errno), (unsigned long long)suppressed);
        close(fd);
        unlink(path);
        return NULL;
    }
    struct spool_seg *seg = xcalloc(1, sizeof *seg);
    seg->seq = seq;
    seg->fd = fd;
    seg->size = SPOOL_HEADER;
    seg->read_off = seg->start_off = SPOOL_HEADER;
    seg_link(sp, seg);
    sp->writing = seg;
    sp->dir_dirty = true;
    return seg;
}

/* ---- public ---- */

const char *spool_group(const struct spool *sp)
{
    return sp->group;
}

uint64_t spool_unread(const struct spool *sp)
{
    return sp->unread;
}

uint64_t spool_bytes(const struct spool *sp)
{
    return sp->bytes;
}

static int write_all_at(int fd, const struct iovec *iov, int iovcnt, uint64_t off)
{
    struct iovec v[2];
    int n = iovcnt;
    memcpy(v, iov, sizeof v[0] * (size_t)n);
    struct iovec *cur = v;
    while (n > 0) {
        ssize_t k = pwritev(fd, cur, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (uint64_t)k;
        while (n > 0 && (size_t)k >= cur->iov_len) {
            k -= (ssize_t)cur->iov_len;
            cur++;
            n--;
        }
        if (n > 0) {
            cur->iov_base = (uint8_t *)cur->iov_base + k;
            cur->iov_len -= (size_t)k;
        }
    }
    return 0;
}

int spool_append(struct spool *sp, const void *payload, size_t len)
{
    if (len == 0 || len > SPOOL_RECORD_MAX)
        return -1;
    uint64_t rec = SPOOL_RECORD_OVERHEAD + len;
    struct spool_seg *w = sp->writing;
    bool rotate = !w || (w->size + rec > sp->segment_bytes && w->size > SPOOL_HEADER);
    uint64_t suppressed;
    if (sp->bytes + rec + (rotate ? SPOOL_HEADER : 0) > sp->max_bytes) {
        if (log_due(&sp->full_log, &suppressed))
            log_warn("spool full (spool_max_bytes, this thread's share): events refused with "
                     "503 (%llu more since the last line)", (unsigned long long)suppressed);
        return -1;
    }
    if (rotate) {
        seal(sp);
        w = seg_create(sp);
        if (!w) {
            count(sp, M_SPOOL_ERRORS);
            return -1;
        }
    }
    uint8_t hdr[SPOOL_RECORD_OVERHEAD];
    frame_header(hdr, payload, len);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)(uintptr_t)payload, len}};
    bool ok = write_all_at(w->fd, iov, 2, w->size) == 0;
    if (ok && sp->fsync == SPOOL_FSYNC_ALWAYS)
        ok = fdatasync(w->fd) == 0 && (!sp->dir_dirty || sync_dir(sp) == 0);
    if (!ok) {
        int saved = errno;
        if (ftruncate(w->fd, (off_t)w->size) != 0)
            seal(sp); /* never append after a partial record */
        if (log_due(&sp->write_log, &suppressed))
            log_error("spool: write failed: %s (%llu more failures since the last line)",
                      strerror(saved), (unsigned long long)suppressed);
        count(sp, M_SPOOL_ERRORS);
        return -1;
    }
    w->size += rec;
    w->unread++;
    sp->bytes += rec;
    sp->unread++;
    if (sp->fsync == SPOOL_FSYNC_BATCH)
        sp->data_dirty = true;
    gauge(sp);
    return 0;
}

int spool_sync(struct spool *sp)
{
    int rc = 0;
    if (sp->fsync == SPOOL_FSYNC_NEVER) {
        sp->data_dirty = sp->dir_dirty = false;
        return 0;
    }
    if (sp->data_dirty && sp->writing && sp->writing->fd >= 0 && fdatasync(sp->writing->fd) != 0)
        rc = -1;
    sp->data_dirty = false;
    if (sp->dir_dirty && sync_dir(sp) != 0)
        rc = -1;
    if (rc != 0)
        count(sp, M_SPOOL_ERRORS);
    return rc;
}

static void reader_attach(struct spool *sp, struct spool_seg *seg)
{
    struct spool_seg *old = sp->reading;
    sp->reading = NULL;
    if (old)
        seg_close(sp, old);
    sp->reading = seg;
    sp->rd.fd = seg_fd(sp, seg);
    sp->rd.boff = 0;
    sp->rd.blen = 0;
    sp->rd.report = !seg->checked;
    sp->rd.m = sp->m;
    seg_name(sp, sp->group, seg->seq, sp->rd_name, sizeof sp->rd_name);
    sp->rd.name = sp->rd_name;
}

/* Nothing intact is left to read in `seg`: give up what the count still
 * promised (corrupt records, reported when found), move on. */
static void finish_reading(struct spool *sp, struct spool_seg *seg)
{
    sp->unread -= seg->unread;
    seg->unread = 0;
    seg->read_off = seg->size;
    if (sp->reading == seg)
        sp->reading = NULL;
    seg_close(sp, seg);
    maybe_reclaim(sp, seg);
}

int spool_next(struct spool *sp, const uint8_t **payload, size_t *len, struct spool_seg **ref)
{
    for (;;) {
        struct spool_seg *seg = sp->head;
        while (seg && seg->read_off >= seg->size)
            seg = seg->next;
        if (!seg)
            return 0;
        if (seg->unread == 0) {
            finish_reading(sp, seg);
            continue;
        }
        if (sp->reading != seg)
            reader_attach(sp, seg);
        if (sp->rd.fd < 0) {
            log_error("spool: cannot open %s: %s", sp->rd_name, strerror(errno));
            count(sp, M_SPOOL_ERRORS);
            seg_forget(sp, seg);
            continue;
        }
        sp->rd.size = seg->size;
        if (reader_next(&sp->rd, &seg->read_off, payload, len) == 1) {
            seg->unread--;
            sp->unread--;
            seg->outstanding++;
            *ref = seg;
            if (seg->unread == 0)
                finish_reading(sp, seg); /* keeps rd.buf, and the payload in it */
            return 1;
        }
        finish_reading(sp, seg);
    }
}

void spool_release(struct spool *sp, struct spool_seg *ref)
{
    if (ref->outstanding)
        ref->outstanding--;
    if (ref != sp->reading)
        maybe_reclaim(sp, ref);
}

/* ---- adoption ---- */

/* "<16 hex>-<worker>" before the first '.'; *rest is what follows it. */
static bool parse_name(const char *name, char group[SPOOL_GROUP_MAX], const char **rest)
{
    const char *dot = strchr(name, '.');
    size_t glen = dot ? (size_t)(dot - name) : 0;
    if (glen < 18 || glen > 22 || name[16] != '-')
        return false;
    for (size_t i = 0; i < glen; i++) {
        char c = name[i];
        bool ok = i < 16 ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
                         : i == 16 || (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    memcpy(group, name, glen);
    group[glen] = '\0';
    *rest = dot + 1;
    return true;
}

/* What a file of a group is: its lock, an unfinished dump, or a segment. */
static bool parse_other_rest(const char *rest)
{
    return strcmp(rest, "lock") == 0 || strcmp(rest, "dump") == 0;
}

static bool parse_seg_rest(const char *rest, uint64_t *seq)
{
    if (strlen(rest) != 16 + 6 || strcmp(rest + 16, ".spool") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = rest[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int cmp_group(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Check one orphan file, rename it into this group and queue it. */
static uint64_t adopt_file(struct spool *sp, const char *group, uint64_t seq)
{
    char name[SPOOL_GROUP_MAX + 32], from[1200], to[1200];
    seg_name(sp, group, seq, name, sizeof name);
    dir_path(sp, name, from, sizeof from);
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_error("spool: cannot read %s: %s", from, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 0;
    }
    struct reader r = {
        .fd = fd, .size = (uint64_t)st.st_size, .name = name, .report = true, .m = sp->m};
    uint64_t off = reader_start(&r), first = off, records = 0;
    const uint8_t *payload;
    size_t len;
    while (reader_next(&r, &off, &payload, &len) == 1)
        records++;
    free(r.buf);
    close(fd);
    if (records == 0) {
        if (r.size > SPOOL_HEADER)
            log_warn("spool: %s holds no intact record; deleted", name);
        unlink(from);
        return 0;
    }
    uint64_t newseq = sp->next_seq++;
    seg_path(sp, newseq, to, sizeof to);
    if (rename(from, to) != 0) {
        log_error("spool: cannot rename %s: %s", from, strerror(errno));
        return 0;
    }
    struct spool_seg *seg = xcalloc(1, sizeof *seg);
    seg->seq = newseq;
    seg->fd = -1;
    seg->size = r.size;
    seg->read_off = seg->start_off = first;
    seg->unread = records;
    seg->checked = true;
    seg_link(sp, seg);
    sp->dir_dirty = true;
    log_info("spool: adopted %s from a previous run: %llu events, %llu bytes%s", name,
             (unsigned long long)records, (unsigned long long)r.size,
             r.corrupt ? " (bad data skipped, see above)" : "");
    return records;
}

/* Adopt every file of `group` if its lock is free. */
static uint64_t adopt_group(struct spool *sp, const char *group)
{
    char name[SPOOL_GROUP_MAX + 16], lock[1200];
    str_format(name, sizeof name, "%s.lock", group);
    dir_path(sp, name, lock, sizeof lock);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd); /* a live process owns it */
        return 0;
    }
    size_t n = 0, cap = 16;
    uint64_t *seqs = xmalloc(cap * sizeof *seqs);
    DIR *d = opendir(sp->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char g[SPOOL_GROUP_MAX];
        const char *rest;
        uint64_t seq;
        if (!parse_name(e->d_name, g, &rest) || strcmp(g, group) != 0 ||
            !parse_seg_rest(rest, &seq))
            continue;
        if (n == cap) {
            cap *= 2;
            seqs = xrealloc(seqs, cap * sizeof *seqs);
        }
        seqs[n++] = seq;
    }
    if (d)
        closedir(d);
    if (n > 1)
        qsort(seqs, n, sizeof *seqs, cmp_u64);
    if (n > 0)
        seal(sp); /* adopted files queue behind this spool's own */
    uint64_t records = 0;
    for (size_t i = 0; i < n; i++)
        records += adopt_file(sp, group, seqs[i]);
    free(seqs);
    char dump[1200];
    str_format(name, sizeof name, "%s.dump", group);
    dir_path(sp, name, dump, sizeof dump);
    unlink(dump); /* an unfinished shutdown dump: its events were never acknowledged as saved */
    unlink(lock);
    close(fd);
    if (sp->fsync != SPOOL_FSYNC_NEVER && n > 0)
        sync_dir(sp);
    return records;
}

uint64_t spool_adopt(struct spool *sp)
{
    DIR *d = opendir(sp->dir);
    if (!d) {
        log_warn("spool: cannot list %s: %s", sp->dir, strerror(errno));
        return 0;
    }
    size_t n = 0, cap = 8;
    char(*groups)[SPOOL_GROUP_MAX] = xmalloc(cap * sizeof *groups);
    struct dirent *e;
    while ((e = readdir(d))) {
        char g[SPOOL_GROUP_MAX];
        const char *rest;
        uint64_t seq;
        if (!parse_name(e->d_name, g, &rest) || strcmp(g, sp->group) == 0 ||
            !(parse_seg_rest(rest, &seq) || parse_other_rest(rest)) ||
            fnv1a(g) % (uint32_t)sp->nworkers != (uint32_t)sp->worker)
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(groups[i], g) == 0;
        if (seen)
            continue;
        if (n == cap) {
            cap *= 2;
            groups = xrealloc(groups, cap * sizeof *groups);
        }
        memcpy(groups[n++], g, SPOOL_GROUP_MAX);
    }
    closedir(d);
    if (n > 1)
        qsort(groups, n, sizeof *groups, cmp_group);
    uint64_t records = 0;
    for (size_t i = 0; i < n; i++)
        records += adopt_group(sp, groups[i]);
    free(groups);
    return records;
}

/* ---- open / close ---- */

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[1100];
    if (!str_copy(path, sizeof path, dir, strlen(dir))) {
        str_format(err, errlen, "spool_dir: path too long");
        return -1;
    }
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                str_format(err, errlen, "spool_dir %s: cannot create %s: %s", dir, path,
                           strerror(errno));
                return -1;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        str_format(err, errlen, "spool_dir %s: not a directory", dir);
        return -1;
    }
    return 0;
}

struct spool *spool_open(const struct spool_options *opt, struct metrics *m, char *err,
                         size_t errlen)
{
    pthread_once(&crc_once, crc_init);
    if (!opt->dir || !opt->dir[0] || opt->nworkers < 1 || opt->worker < 0 ||
        opt->worker >= opt->nworkers) {
        str_format(err, errlen, "spool: bad options");
        return NULL;
    }
    if (make_dirs(opt->dir, err, errlen) != 0)
        return NULL;
    uint64_t run_id = opt->run_id;
    while (run_id == 0 && getrandom(&run_id, sizeof run_id, 0) != (ssize_t)sizeof run_id)
        ;
    struct spool *sp = xcalloc(1, sizeof *sp);
    sp->dir = xstrdup(opt->dir);
    str_format(sp->group, sizeof sp->group, "%016llx-%d", (unsigned long long)run_id, opt->worker);
    sp->max_bytes = opt->max_bytes;
    sp->segment_bytes = opt->max_bytes / 8;
    if (sp->segment_bytes > SPOOL_SEGMENT_MAX)
        sp->segment_bytes = SPOOL_SEGMENT_MAX;
    if (sp->segment_bytes < SPOOL_SEGMENT_MIN)
        sp->segment_bytes = SPOOL_SEGMENT_MIN;
    sp->fsync = opt->fsync;
    sp->worker = opt->worker;
    sp->nworkers = opt->nworkers;
    sp->m = m;
    sp->dump_fd = -1;
    sp->next_seq = 1;
    sp->rd.fd = -1;
    /* Locked under a name no scan looks at, then renamed into place: an
     * adopter never sees this group's lock file unlocked. */
    char name[SPOOL_GROUP_MAX + 16], lock[1200], tmp[1200];
    str_format(name, sizeof name, "%s.lock", sp->group);
    dir_path(sp, name, lock, sizeof lock);
    str_format(name, sizeof name, "%s.newlock", sp->group);
    dir_path(sp, name, tmp, sizeof tmp);
    sp->lock_fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sp->lock_fd < 0 || flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, lock) != 0) {
        str_format(err, errlen, "spool_dir %s: cannot create a lock file: %s", opt->dir,
                   strerror(errno));
        if (sp->lock_fd >= 0) {
            close(sp->lock_fd);
            unlink(tmp);
        }
        free(sp->dir);
        free(sp);
        return NULL;
    }
    gauge(sp);
    spool_adopt(sp);
    return sp;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    if (sp->dumping)
        spool_dump_abort(sp);
    if (sp->fsync != SPOOL_FSYNC_NEVER && (sp->data_dirty || sp->dir_dirty))
        spool_sync(sp);
    struct spool_seg *seg = sp->head;
    while (seg) {
        struct spool_seg *next = seg->next;
        if (seg->fd >= 0)
            close(seg->fd);
        free(seg);
        seg = next;
    }
    free(sp->rd.buf);
    free(sp->wbuf);
    char name[SPOOL_GROUP_MAX + 16], lock[1200];
    str_format(name, sizeof name, "%s.lock", sp->group);
    dir_path(sp, name, lock, sizeof lock);
    unlink(lock); /* before releasing it: a waiting adopter finds the files complete */
    close(sp->lock_fd);
    free(sp->dir);
    free(sp);
}

/* ---- the shutdown dump ---- */

static void dump_path(const struct spool *sp, char *out, size_t outlen)
{
    char name[SPOOL_GROUP_MAX + 16];
    str_format(name, sizeof name, "%s.dump", sp->group);
    dir_path(sp, name, out, outlen);
}

static int dump_flush(struct spool *sp)
{
    if (sp->dump_fd < 0) {
        char path[1200];
        dump_path(sp, path, sizeof path);
        sp->dump_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (sp->dump_fd < 0) {
            log_error("spool: cannot create %s: %s", path, strerror(errno));
            return -1;
        }
    }
    struct iovec iov = {sp->wbuf, sp->wlen};
    if (sp->wlen && write_all_at(sp->dump_fd, &iov, 1, sp->dump_size - sp->wlen) != 0)
        return -1;
    sp->wlen = 0;
    return 0;
}

static int dump_write(struct spool *sp, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    while (len > 0) {
        if (sp->wlen == SPOOL_DUMP_BUF && dump_flush(sp) != 0)
            return -1;
        size_t room = SPOOL_DUMP_BUF - sp->wlen, k = len < room ? len : room;
        memcpy(sp->wbuf + sp->wlen, p, k);
        sp->wlen += k;
        sp->dump_size += k;
        p += k;
        len -= k;
    }
    return 0;
}

int spool_dump_begin(struct spool *sp)
{
    if (sp->dumping)
        spool_dump_abort(sp);
    if (!sp->wbuf)
        sp->wbuf = xmalloc(SPOOL_DUMP_BUF);
    sp->dumping = true;
    sp->wlen = 0;
    sp->dump_size = 0;
    sp->dump_records = 0;
    return dump_write(sp, SPOOL_MAGIC, SPOOL_HEADER);
}

int spool_dump_add(struct spool *sp, const void *payload, size_t len)
{
    if (!sp->dumping || len == 0 || len > SPOOL_RECORD_MAX)
        return -1;
    uint8_t hdr[SPOOL_RECORD_OVERHEAD];
    frame_header(hdr, payload, len);
    if (dump_write(sp, hdr, sizeof hdr) != 0 || dump_write(sp, payload, len) != 0)
        return -1;
    sp->dump_records++;
    return 0;
}

void spool_dump_abort(struct spool *sp)
{
    sp->dumping = false;
    sp->wlen = 0;
    if (sp->dump_fd < 0)
        return;
    close(sp->dump_fd);
    sp->dump_fd = -1;
    char path[1200];
    dump_path(sp, path, sizeof path);
    unlink(path);
}

int spool_dump_commit(struct spool *sp)
{
    if (!sp->dumping)
        return -1;
    /* The partly read segment: its unread rest follows the saved records. */
    struct spool_seg *rs = sp->head;
    while (rs && rs->read_off >= rs->size)
        rs = rs->next;
    if (sp->dump_records == 0 && (!rs || rs->read_off == rs->start_off) && rs == sp->head) {
        spool_dump_abort(sp); /* nothing held, nothing consumed: the files are right */
        return 0;
    }
    if (rs) {
        if (seg_fd(sp, rs) < 0)
            return -1;
        uint8_t *chunk = xmalloc(SPOOL_READ_CHUNK);
        for (uint64_t off = rs->read_off; off < rs->size;) {
            size_t want = rs->size - off < SPOOL_READ_CHUNK ? (size_t)(rs->size - off)
                                                             : SPOOL_READ_CHUNK;
            ssize_t k = pread(rs->fd, chunk, want, (off_t)off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0 || dump_write(sp, chunk, (size_t)k) != 0) {
                free(chunk);
                return -1;
            }
            off += (uint64_t)k;
        }
        free(chunk);
        sp->dump_records += rs->unread;
    }
    if (dump_flush(sp) != 0 ||
        (sp->fsync != SPOOL_FSYNC_NEVER && fdatasync(sp->dump_fd) != 0))
        return -1;
    close(sp->dump_fd);
    sp->dump_fd = -1;
    sp->dumping = false;
    char tmp[1200], final[1200];
    dump_path(sp, tmp, sizeof tmp);
    bool empty = sp->dump_size <= SPOOL_HEADER;
    uint64_t seq = rs ? rs->seq : sp->next_seq++;
    if (empty) {
        unlink(tmp);
    } else {
        seg_path(sp, seq, final, sizeof final);
        if (rename(tmp, final) != 0) {
            log_error("spool: cannot rename %s: %s", tmp, strerror(errno));
            unlink(tmp);
            return -1;
        }
    }
    /* Everything before (and the replaced segment) is acknowledged or saved. */
    sp->writing = NULL;
    while (sp->head && sp->head != rs)
        seg_unlink(sp, sp->head);
    if (rs) { /* never empty: it had an unread rest */
        if (rs->fd >= 0)
            close(rs->fd); /* the replaced inode */
        rs->fd = -1;
        if (sp->reading == rs)
            sp->reading = NULL;
        sp->bytes = sp->bytes - rs->size + sp->dump_size;
        sp->unread = sp->unread - rs->unread + sp->dump_records;
        rs->size = sp->dump_size;
        rs->read_off = rs->start_off = SPOOL_HEADER;
        rs->unread = sp->dump_records;
        rs->outstanding = 0;
        rs->checked = false;
    } else if (!empty) {
        struct spool_seg *seg = xcalloc(1, sizeof *seg);
        seg->seq = seq;
        seg->fd = -1;
        seg->size = sp->dump_size;
        seg->read_off = seg->start_off = SPOOL_HEADER;
        seg->unread = sp->dump_records;
        seg_link(sp, seg); /* the list is empty here */
    }
    gauge(sp);
    if (sp->fsync != SPOOL_FSYNC_NEVER)
        sync_dir(sp);
    return 0;
}
