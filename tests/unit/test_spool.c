/* test_spool.c - the disk spool on its own (collector/spool.c): order,
 * deletion once acknowledged, restart adoption (also by a different number
 * of workers), torn and corrupt records, empty and missing files, the size
 * cap, the shutdown dump, and that a live group is never taken over. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "spool.h"

#define REC_LEN 40 /* every test record has this many bytes */

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/veil-spool-test.XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return strdup(d);
}

static void rmdir_all(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static struct spool *open_spool(const char *dir, uint64_t run_id, int worker, int nworkers,
                                uint64_t max_bytes, struct metrics *m)
{
    struct spool_options opt = {.dir = dir,
                                .max_bytes = max_bytes,
                                .fsync = SPOOL_FSYNC_NEVER,
                                .worker = worker,
                                .nworkers = nworkers,
                                .run_id = run_id};
    char err[256] = "";
    struct spool *sp = spool_open(&opt, m, err, sizeof err);
    cr_assert_not_null(sp, "spool_open: %s", err);
    return sp;
}

/* Record i: "record <i>" padded with dots to REC_LEN bytes. */
static void make_record(int i, char out[REC_LEN])
{
    memset(out, '.', REC_LEN);
    char head[32];
    int n = snprintf(head, sizeof head, "record %d", i);
    memcpy(out, head, (size_t)n);
}

static void append_range(struct spool *sp, int from, int to)
{
    for (int i = from; i < to; i++) {
        char rec[REC_LEN];
        make_record(i, rec);
        cr_assert_eq(spool_append(sp, rec, REC_LEN), 0, "append %d", i);
    }
}

/* Read everything unread; write the record numbers into `got` (at most
 * cap), release each one unless `refs` is given (then keep the refs). */
static int read_all(struct spool *sp, int *got, int cap, struct spool_seg **refs)
{
    int n = 0;
    const uint8_t *p;
    size_t len;
    struct spool_seg *ref;
    while (spool_next(sp, &p, &len, &ref) == 1) {
        cr_assert_eq(len, REC_LEN);
        cr_assert(n < cap);
        char text[REC_LEN + 1];
        memcpy(text, p, REC_LEN);
        text[REC_LEN] = '\0';
        cr_assert_eq(sscanf(text, "record %d", &got[n]), 1, "garbage replayed: %s", text);
        if (refs)
            refs[n] = ref;
        else
            spool_release(sp, ref);
        n++;
    }
    return n;
}

/* Files in `dir` whose name ends with `suffix`. */
static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (l >= s && strcmp(e->d_name + l - s, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The path of the only (or first by name) segment file in dir. */
static void first_segment(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 6 && strcmp(e->d_name + l - 6, ".spool") == 0 &&
            (!best[0] || strcmp(e->d_name, best) < 0))
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    cr_assert(best[0], "no segment file in %s", dir);
    snprintf(out, outlen, "%s/%s", dir, best);
}

static off_t record_offset(int k)
{
    return 8 + (off_t)k * (12 + REC_LEN);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

Test(spool, append_and_replay_in_order_then_files_are_deleted)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 1, 0, 1, 1 << 20, NULL);
    append_range(sp, 0, 500);
    cr_expect_eq(spool_unread(sp), 500);
    cr_expect_gt(spool_bytes(sp), 500 * (12 + REC_LEN));
    int got[600];
    cr_assert_eq(read_all(sp, got, 600, NULL), 500);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(got[i], i, "order at %d", i);
    cr_expect_eq(spool_unread(sp), 0);
    cr_expect_eq(spool_bytes(sp), 0, "all acknowledged: the files are gone");
    cr_expect_eq(count_files(dir, ".spool"), 0);
    /* appending after the drain starts a new file and still works */
    append_range(sp, 500, 510);
    cr_assert_eq(read_all(sp, got, 600, NULL), 10);
    cr_expect_eq(got[0], 500);
    spool_close(sp);
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_segment_is_deleted_only_when_all_its_records_are_released)
{
    char *dir = tmpdir();
    /* 128 KiB cap: 16 KiB segments, about 315 records each */
    struct spool *sp = open_spool(dir, 2, 0, 1, 128 * 1024, NULL);
    append_range(sp, 0, 1000);
    int nseg = count_files(dir, ".spool");
    cr_assert_gt(nseg, 2, "several segments");
    int got[1000];
    struct spool_seg *refs[1000];
    cr_assert_eq(read_all(sp, got, 1000, refs), 1000);
    cr_expect_eq(count_files(dir, ".spool"), nseg, "read but not acknowledged: all kept");
    /* acknowledge everything but record 0 (in the first segment) */
    for (int i = 999; i >= 1; i--)
        spool_release(sp, refs[i]);
    cr_expect_eq(count_files(dir, ".spool"), 1, "only the segment of record 0 is left");
    spool_release(sp, refs[0]);
    cr_expect_eq(count_files(dir, ".spool"), 0);
    cr_expect_eq(spool_bytes(sp), 0);
    spool_close(sp);
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_restart_replays_what_the_previous_run_left)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 3, 0, 1, 1 << 20, NULL);
    append_range(sp, 0, 300);
    int got[300];
    /* half read and acknowledged before the "crash" */
    const uint8_t *p;
    size_t len;
    struct spool_seg *ref;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(spool_next(sp, &p, &len, &ref), 1);
        spool_release(sp, ref);
    }
    spool_close(sp);
    struct spool *next = open_spool(dir, 4, 0, 1, 1 << 20, NULL);
    /* Without a shutdown dump the whole file comes back (Redis drops the
     * repeats by their lane sequence numbers). */
    cr_expect_eq(spool_unread(next), 300);
    cr_assert_eq(read_all(next, got, 300, NULL), 300);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(got[i], i);
    cr_expect_eq(count_files(dir, ".spool"), 0);
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, files_of_two_workers_are_shared_out_to_three)
{
    char *dir = tmpdir();
    struct spool *a = open_spool(dir, 0x10, 0, 2, 1 << 20, NULL);
    struct spool *b = open_spool(dir, 0x11, 1, 2, 1 << 20, NULL);
    append_range(a, 0, 200);
    append_range(b, 1000, 1200);
    spool_close(a);
    spool_close(b);
    struct spool *n[3];
    uint64_t total = 0;
    for (int w = 0; w < 3; w++) {
        n[w] = open_spool(dir, 0x20 + (uint64_t)w, w, 3, 1 << 20, NULL);
        total += spool_unread(n[w]);
    }
    cr_expect_eq(total, 400, "every record adopted exactly once");
    for (int w = 0; w < 3; w++) {
        int got[400];
        int k = read_all(n[w], got, 400, NULL);
        /* a group stays whole and in order */
        for (int i = 1; i < k; i++)
            if ((got[i] < 1000) == (got[i - 1] < 1000))
                cr_assert_eq(got[i], got[i - 1] + 1, "order within a worker's records");
        spool_close(n[w]);
    }
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_torn_tail_is_reported_and_the_rest_replayed)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 5, 0, 1, 1 << 20, NULL);
    append_range(sp, 0, 50);
    spool_close(sp);
    char path[1200];
    first_segment(dir, path, sizeof path);
    /* cut the last record in the middle of its payload */
    cr_assert_eq(truncate(path, record_offset(49) + 12 + REC_LEN / 2), 0);
    struct metrics m;
    memset(&m, 0, sizeof m);
    struct spool *next = open_spool(dir, 6, 0, 1, 1 << 20, &m);
    cr_expect_eq(spool_unread(next), 49);
    cr_expect_eq(m.c[M_SPOOL_CORRUPT], 1, "the torn record is reported once");
    int got[50];
    cr_assert_eq(read_all(next, got, 50, NULL), 49);
    for (int i = 0; i < 49; i++)
        cr_assert_eq(got[i], i);
    cr_expect_eq(m.c[M_SPOOL_CORRUPT], 1, "not reported again when replayed");
    cr_expect_eq(count_files(dir, ".spool"), 0);
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, flipped_bytes_lose_only_the_damaged_records)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 7, 0, 1, 1 << 20, NULL);
    append_range(sp, 0, 100);
    spool_close(sp);
    char path[1200];
    first_segment(dir, path, sizeof path);
    flip_byte(path, record_offset(20) + 12 + 5);  /* payload of 20: checksum mismatch */
    flip_byte(path, record_offset(50) + 4);       /* length of 50: framing lost */
    flip_byte(path, record_offset(70) + 1);       /* marker of 70 */
    flip_byte(path, record_offset(71) + 9);       /* checksum of 71 */
    struct metrics m;
    memset(&m, 0, sizeof m);
    struct spool *next = open_spool(dir, 8, 0, 1, 1 << 20, &m);
    cr_expect_eq(spool_unread(next), 96);
    cr_expect_eq(m.c[M_SPOOL_CORRUPT], 3, "three bad spans (70 and 71 are adjacent)");
    int got[100];
    cr_assert_eq(read_all(next, got, 100, NULL), 96);
    int k = 0;
    for (int i = 0; i < 100; i++) {
        if (i == 20 || i == 50 || i == 70 || i == 71)
            continue;
        cr_assert_eq(got[k], i, "record %d recovered in order", i);
        k++;
    }
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_bad_file_header_does_not_hide_the_records)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 9, 0, 1, 1 << 20, NULL);
    append_range(sp, 0, 10);
    spool_close(sp);
    char path[1200];
    first_segment(dir, path, sizeof path);
    flip_byte(path, 2);
    struct metrics m;
    memset(&m, 0, sizeof m);
    struct spool *next = open_spool(dir, 10, 0, 1, 1 << 20, &m);
    cr_expect_eq(m.c[M_SPOOL_CORRUPT], 1);
    int got[10];
    cr_expect_eq(read_all(next, got, 10, NULL), 10);
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, empty_garbage_and_missing_files)
{
    char *dir = tmpdir();
    char path[1200];
    /* a zero-length file, a header-only file and pure garbage, of a dead group */
    const char *group = "00000000000000aa-0";
    snprintf(path, sizeof path, "%s/%s.0000000000000001.spool", dir, group);
    close(open(path, O_WRONLY | O_CREAT, 0600));
    snprintf(path, sizeof path, "%s/%s.0000000000000002.spool", dir, group);
    FILE *f = fopen(path, "w");
    fputs("VEILSP1\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s.0000000000000003.spool", dir, group);
    f = fopen(path, "w");
    for (int i = 0; i < 1000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    /* an unrelated file is left alone */
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    struct metrics m;
    memset(&m, 0, sizeof m);
    struct spool *sp = open_spool(dir, 11, 0, 1, 1 << 20, &m);
    cr_expect_eq(spool_unread(sp), 0);
    cr_expect_eq(count_files(dir, ".spool"), 0, "files without any record are removed");
    cr_expect_eq(count_files(dir, "notes.txt"), 1);
    const uint8_t *p;
    size_t len;
    struct spool_seg *ref;
    cr_expect_eq(spool_next(sp, &p, &len, &ref), 0);
    spool_close(sp);
    rmdir_all(dir);

    /* a missing directory is created (0700), nested */
    char nested[1200];
    snprintf(nested, sizeof nested, "%s/a/b", dir);
    sp = open_spool(nested, 12, 0, 1, 1 << 20, NULL);
    struct stat st;
    cr_assert_eq(stat(nested, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700);
    spool_close(sp);
    rmdir_all(nested);
    snprintf(nested, sizeof nested, "%s/a", dir);
    rmdir(nested);

    /* a file where the directory should be is refused with a reason */
    f = fopen(dir, "w");
    if (!f) {
        mkdir(dir, 0700);
        snprintf(path, sizeof path, "%s/file", dir);
        f = fopen(path, "w");
    } else {
        snprintf(path, sizeof path, "%s", dir);
    }
    fclose(f);
    struct spool_options opt = {.dir = path, .max_bytes = 1 << 20, .worker = 0, .nworkers = 1};
    char err[256] = "";
    cr_expect_null(spool_open(&opt, NULL, err, sizeof err));
    cr_expect(strstr(err, "spool_dir") != NULL, "%s", err);
    unlink(path);
    rmdir(dir);
    free(dir);
}

Test(spool, the_size_cap_refuses_and_frees_up_after_acknowledgement)
{
    char *dir = tmpdir();
    uint64_t cap = 64 * 1024;
    struct spool *sp = open_spool(dir, 13, 0, 1, cap, NULL);
    int n = 0;
    char rec[REC_LEN];
    for (;; n++) {
        make_record(n, rec);
        if (spool_append(sp, rec, REC_LEN) != 0)
            break;
        cr_assert_lt(n, 10000);
    }
    cr_expect_gt(n, 1000);
    cr_expect_leq(spool_bytes(sp), cap);
    cr_expect_eq(spool_unread(sp), (uint64_t)n, "a refused append leaves no trace");
    cr_expect_neq(spool_append(sp, rec, REC_LEN), 0, "still full");
    int *got = calloc((size_t)n, sizeof *got);
    cr_assert_eq(read_all(sp, got, n, NULL), n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(got[i], i);
    free(got);
    cr_expect_eq(spool_append(sp, rec, REC_LEN), 0, "room again once acknowledged");
    spool_close(sp);
    rmdir_all(dir);
    free(dir);
}

/* Issue 13: a full spool logged one line per refused event. Now one line
 * per interval, the next one carrying the count of those not logged. */
Test(spool, a_full_spool_logs_one_line_per_interval)
{
    char *dir = tmpdir();
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s.log", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && dup2(fd, 2) == 2);
    close(fd);
    struct spool *sp = open_spool(dir, 13, 0, 1, 64 * 1024, NULL);
    char rec[REC_LEN];
    int refused = 0;
    for (int n = 0; n < 5000; n++) {
        make_record(n, rec);
        refused += spool_append(sp, rec, REC_LEN) != 0;
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_expect_gt(refused, 2000);
    size_t len;
    FILE *f = fopen(log_path, "r");
    cr_assert_not_null(f);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines += strstr(line, "spool full") != NULL;
    fclose(f);
    (void)len;
    cr_expect_eq(lines, 1, "%d refusals logged in %d lines", refused, lines);
    unlink(log_path);
    spool_close(sp);
    rmdir_all(dir);
    free(dir);
}

Test(spool, the_shutdown_dump_goes_before_the_unread_rest)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 14, 0, 1, 128 * 1024, NULL);
    /* memory held 0..99 (never spooled); then 100..799 were spooled, of
     * which 100..349 were read back into memory, 100..199 acknowledged */
    append_range(sp, 100, 800);
    const uint8_t *p;
    size_t len;
    struct spool_seg *ref;
    for (int i = 100; i < 350; i++) {
        cr_assert_eq(spool_next(sp, &p, &len, &ref), 1);
        if (i < 200)
            spool_release(sp, ref);
    }
    cr_assert_eq(spool_dump_begin(sp), 0);
    char rec[REC_LEN];
    for (int i = 0; i < 100; i++) {
        make_record(i, rec);
        cr_assert_eq(spool_dump_add(sp, rec, REC_LEN), 0);
    }
    for (int i = 200; i < 350; i++) {
        make_record(i, rec);
        cr_assert_eq(spool_dump_add(sp, rec, REC_LEN), 0);
    }
    cr_assert_eq(spool_dump_commit(sp), 0);
    cr_expect_eq(spool_unread(sp), 100 + 150 + 450);
    spool_close(sp);
    cr_expect_eq(count_files(dir, ".dump"), 0);
    struct spool *next = open_spool(dir, 15, 0, 1, 128 * 1024, NULL);
    int got[800];
    int k = read_all(next, got, 800, NULL);
    cr_assert_eq(k, 700, "nothing acknowledged comes back, nothing held is lost");
    int want = 0;
    for (int i = 0; i < k; i++) {
        if (want == 100)
            want = 200;
        cr_assert_eq(got[i], want, "position %d", i);
        want++;
    }
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_dump_with_nothing_to_save_changes_nothing)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 16, 0, 1, 1 << 20, NULL);
    cr_assert_eq(spool_dump_begin(sp), 0);
    cr_assert_eq(spool_dump_commit(sp), 0);
    cr_expect_eq(count_files(dir, ".spool"), 0);
    cr_expect_eq(count_files(dir, ".dump"), 0);
    append_range(sp, 0, 5);
    cr_assert_eq(spool_dump_begin(sp), 0);
    cr_assert_eq(spool_dump_commit(sp), 0);
    cr_expect_eq(spool_unread(sp), 5);
    spool_close(sp);
    struct spool *next = open_spool(dir, 17, 0, 1, 1 << 20, NULL);
    cr_expect_eq(spool_unread(next), 5);
    spool_close(next);
    rmdir_all(dir);
    free(dir);
}

Test(spool, a_live_group_is_not_taken_over)
{
    char *dir = tmpdir();
    struct spool *alive = open_spool(dir, 18, 0, 1, 1 << 20, NULL);
    append_range(alive, 0, 20);
    struct spool *other = open_spool(dir, 19, 0, 1, 1 << 20, NULL);
    cr_expect_eq(spool_unread(other), 0, "the owner holds its lock");
    cr_expect_eq(spool_adopt(other), 0);
    spool_close(alive);
    cr_expect_eq(spool_adopt(other), 20, "taken over once the owner is gone");
    int got[20];
    cr_expect_eq(read_all(other, got, 20, NULL), 20);
    cr_expect_eq(count_files(dir, ".lock"), 1, "only the live spool's lock remains");
    spool_close(other);
    cr_expect_eq(count_files(dir, ".lock"), 0);
    rmdir_all(dir);
    free(dir);
}

Test(spool, records_are_framed_with_a_checksum_over_length_and_payload)
{
    char *dir = tmpdir();
    struct spool *sp = open_spool(dir, 20, 0, 1, 1 << 20, NULL);
    cr_assert_eq(spool_append(sp, "123456789", 9), 0);
    spool_close(sp);
    char path[1200];
    first_segment(dir, path, sizeof path);
    unsigned char buf[64];
    int fd = open(path, O_RDONLY);
    cr_assert_eq(read(fd, buf, sizeof buf), 8 + 12 + 9);
    close(fd);
    cr_expect(memcmp(buf, "VEILSP1\n", 8) == 0);
    const unsigned char marker[4] = {0xF5, 0x1E, 0xC0, 0xDE};
    cr_expect(memcmp(buf + 8, marker, 4) == 0);
    cr_expect_eq(buf[12], 9);
    cr_expect(memcmp(buf + 20, "123456789", 9) == 0);
    /* CRC-32C of the 4 length bytes then the payload, computed bitwise here */
    unsigned crc = 0xffffffffu;
    for (int i = 12; i < 29; i++) {
        if (i >= 16 && i < 20)
            continue; /* skip the stored checksum */
        crc ^= buf[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    crc = ~crc;
    unsigned stored = buf[16] | buf[17] << 8 | buf[18] << 16 | (unsigned)buf[19] << 24;
    cr_expect_eq(stored, crc);
    rmdir_all(dir);
    free(dir);
}
