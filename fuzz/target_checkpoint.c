/* target_checkpoint.c - fuzz target checkpoint: shard_session_decode on a
 * value of the checkpoint hash veil:{s}:sessions (docs/KEYS.md), with the
 * rows a visit is counted under (aggregator/visit_rows_codec.c).
 *
 * A damaged value is refused (that visit restarts); an accepted one is in
 * range (interactions >= 1, hour 0-23, depth -1..100, its rows and exit
 * row inside the value, each row item well formed), encodes again into a
 * value that decodes to the same visit, and goes into a shard's memory
 * (its strings copied) and out again. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harness.h"
#include "shard_state.h"
#include "visit_rows.h"

static void check_rows(const char *t, const struct shard_session *s)
{
    const char *items[ROLLUP_V_COUNT];
    size_t lens[ROLLUP_V_COUNT], used;
    CHECK(t, visit_rows_scan(s->rows, s->rows_len, ROLLUP_V_COUNT, items, lens, &used));
    CHECK(t, used == s->rows_len);
    CHECK(t, s->exit != NULL);
}

int fuzz_checkpoint(const uint8_t *data, size_t size)
{
    const char *t = "checkpoint";
    char *value = malloc(size ? size : 1); /* exactly size bytes: ASan sees over-reads */
    memcpy(value, data, size);
    struct shard_session s;
    if (!shard_session_decode(value, size, &s)) {
        free(value);
        return 0;
    }
    CHECK(t, s.pv >= 1);
    CHECK(t, s.hour >= 0 && s.hour <= 23);
    CHECK(t, s.scroll >= -1 && s.scroll <= 100);
    CHECK(t, s.day[10] == '\0');
    CHECK(t, (s.rows == NULL) == (s.exit == NULL));
    if (s.rows) {
        CHECK(t, s.rows >= value && s.rows + s.rows_len <= value + size);
        CHECK(t, s.exit >= value && s.exit + s.exit_len <= value + size);
        check_rows(t, &s);
    }
    /* encode, decode: the same visit */
    s.field = "fuzz.example:00000000000000a1";
    char *again = malloc(SHARD_SESSION_VALUE_MAX);
    size_t len = shard_session_encode(&s, again, SHARD_SESSION_VALUE_MAX);
    struct shard_session back;
    if (len > 0) {
        CHECK(t, shard_session_decode(again, len, &back));
        CHECK(t, back.pv == s.pv && back.start == s.start && back.last == s.last &&
                     back.exp == s.exp && back.page == s.page && back.hour == s.hour &&
                     memcmp(back.day, s.day, 11) == 0);
        CHECK(t, back.rows_len == s.rows_len && back.exit_len == s.exit_len);
        CHECK(t, !s.rows || (memcmp(back.rows, s.rows, s.rows_len) == 0 &&
                             memcmp(back.exit, s.exit, s.exit_len) == 0));
    } else {
        /* only a value whose rows exceed what the encoder keeps */
        CHECK(t, s.rows != NULL);
    }
    /* into a shard's memory and out: copies, NUL-terminated */
    struct shard_state st;
    shard_state_init(&st, 3);
    shard_session_put(&st, &s);
    const struct shard_session *kept = shard_session_find(&st, s.field, strlen(s.field));
    CHECK(t, kept != NULL);
    if (kept->rows) {
        CHECK(t, kept->rows_len == s.rows_len && memcmp(kept->rows, s.rows, s.rows_len) == 0);
        CHECK(t, strlen(kept->exit) <= s.exit_len);
    }
    shard_state_free(&st);
    free(again);
    free(value);
    return 0;
}
