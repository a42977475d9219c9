/* test_visit.c - the visit logic (aggregator/visit.c) and the checkpoint
 * of open visits (shard_state.c), without Redis. */
#include <criterion/criterion.h>
#include <string.h>

#include "plan.h"
#include "shard_state.h"
#include "visit.h"
#include "visit_rows.h"

#define TIMEOUT 1800

/* Feed events (ts, pageview) to s; sum the effects. */
struct sums {
    long long visits, duration, bounces, scroll_sum, scroll_n;
    long long hist[11]; /* page views per scroll bucket */
};

static void feed_hit(struct visit_state *s, const struct visit_hit *h, struct sums *sum)
{
    struct visit_effect fx;
    visit_apply(s, h, 7, TIMEOUT, &fx);
    sum->visits += fx.new_visit;
    sum->bounces += fx.new_visit + fx.bounces;
    sum->duration += fx.duration;
    sum->scroll_sum += fx.scroll_sum;
    sum->scroll_n += fx.scroll_n;
    if (fx.scroll_to >= 0) {
        if (fx.scroll_from >= 0)
            sum->hist[fx.scroll_from]--;
        sum->hist[fx.scroll_to]++;
    }
}

static void feed(struct visit_state *s, int64_t ts, bool pageview, struct sums *sum)
{
    /* a non-page view here is an interactive custom event on no page */
    const struct visit_hit h = {ts, pageview, !pageview, visit_page_hash("/"), -1, 5};
    feed_hit(s, &h, sum);
}

/* A page view of `path`, or an event `kind` ('c' interactive custom event,
 * 'n' non-interactive one, 'e' engagement) on `path` with depth `sd`. */
static void ev(struct visit_state *s, int64_t ts, char kind, const char *path, int sd,
               struct sums *sum)
{
    const struct visit_hit h = {ts, kind == 'p', kind == 'c', visit_page_hash(path), sd,
                                (uint8_t)(ts / 3600 % 24)};
    feed_hit(s, &h, sum);
}

Test(visit, a_page_view_opens_a_visit_other_events_do_not)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    feed(&s, 1000, false, &sum);
    cr_assert_not(s.open, "a click without a visit opens none");
    cr_assert_eq(sum.visits, 0);
    feed(&s, 1010, true, &sum);
    cr_assert(s.open && s.changed);
    cr_assert_eq(s.day, 7);
    cr_assert_eq(sum.visits, 1);
    cr_assert_eq(sum.bounces, 1, "one page view: a bounce");
}

Test(visit, second_page_view_undoes_the_bounce_and_durations_add_up)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    ev(&s, 1000, 'p', "/", -1, &sum);
    ev(&s, 1060, 'n', "/", -1, &sum); /* a non-interactive event extends it */
    cr_assert_eq(sum.bounces, 1, "i:false does not undo the bounce");
    ev(&s, 1100, 'p', "/a", -1, &sum);
    ev(&s, 1200, 'p', "/b", -1, &sum); /* the third page view changes no bounce */
    cr_assert_eq(sum.visits, 1);
    cr_assert_eq(sum.bounces, 0);
    cr_assert_eq(sum.duration, 200);
    cr_assert_eq(s.pv, 3);
}

Test(visit, an_interactive_custom_event_undoes_the_bounce_engagement_does_not)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    ev(&s, 1000, 'p', "/", -1, &sum);
    ev(&s, 1030, 'e', "/", 40, &sum);
    ev(&s, 1040, 'n', "/", -1, &sum);
    cr_assert_eq(sum.bounces, 1, "engagement and i:false events keep the bounce");
    cr_assert_eq(sum.duration, 40, "but they extend the visit");
    ev(&s, 1050, 'c', "/", -1, &sum);
    cr_assert_eq(sum.bounces, 0, "an interactive custom event (Plausible's default) undoes it");
    ev(&s, 1060, 'c', "/", -1, &sum);
    ev(&s, 1070, 'p', "/x", -1, &sum);
    cr_assert_eq(sum.bounces, 0, "later interactions change nothing");
    cr_assert_eq(sum.visits, 1);
    struct visit_state t = {0};
    struct sums tsum = {0};
    ev(&t, 1000, 'c', "/", -1, &tsum);
    cr_assert_not(t.open, "a custom event alone opens no visit");
    cr_assert_eq(tsum.visits, 0);
}

Test(visit, scroll_depth_is_each_page_views_maximum)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    ev(&s, 1000, 'p', "/post", -1, &sum);
    ev(&s, 1010, 'e', "/post", 50, &sum); /* the tracker's first beacon */
    ev(&s, 1020, 'e', "/post", 100, &sum); /* the same page, scrolled further */
    ev(&s, 1030, 'e', "/post", 80, &sum); /* a lower depth never lowers the maximum */
    cr_assert_eq(sum.scroll_n, 1, "one page view");
    cr_assert_eq(sum.scroll_sum, 100, "its maximum, not 50 + 100 + 80");
    cr_assert_eq(sum.hist[10], 1);
    cr_assert_eq(sum.hist[5], 0, "moved from the 50 bucket to the 100 bucket");
    ev(&s, 1100, 'p', "/about", -1, &sum);
    ev(&s, 1110, 'e', "/post", 100, &sum); /* late, for the previous page: not counted */
    ev(&s, 1120, 'e', "/about", 30, &sum);
    ev(&s, 1200, 'p', "/post", -1, &sum); /* the same path again: a new page view */
    ev(&s, 1210, 'e', "/post", 20, &sum);
    cr_assert_eq(sum.scroll_n, 3);
    cr_assert_eq(sum.scroll_sum, 150, "100 + 30 + 20: mean 50");
    cr_assert_eq(sum.hist[10] + sum.hist[3] + sum.hist[2], 3);
    /* a page view without any depth is not in the mean */
    ev(&s, 1300, 'p', "/none", -1, &sum);
    cr_assert_eq(sum.scroll_n, 3);
    /* no open visit: a depth alone counts nothing */
    struct visit_state t = {0};
    struct sums tsum = {0};
    ev(&t, 1000, 'e', "/post", 70, &tsum);
    cr_assert_eq(tsum.scroll_n, 0);
}

Test(visit, the_page_and_its_depth_survive_the_checkpoint)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    ev(&s, 1000, 'p', "/post", -1, &sum);
    ev(&s, 1010, 'e', "/post", 50, &sum);
    struct shard_session stored = {"example.com:00000000000000a1", s.pv, s.start, s.last, 99,
                                   "2024-05-01", s.page, s.scroll, s.hour, 0, NULL, 0, NULL, 0};
    char value[SHARD_SESSION_VALUE_MAX];
    size_t len = shard_session_encode(&stored, value, sizeof value);
    cr_assert_gt(len, 0);
    struct shard_session back;
    cr_assert(shard_session_decode(value, len, &back), "%s", value);
    cr_assert_eq(back.page, visit_page_hash("/post"));
    cr_assert_eq(back.scroll, 50);
    cr_assert_eq(back.hour, 1000 / 3600 % 24, "the hour the visit started in");
    struct visit_state again = {.open = true, .pv = back.pv, .start = back.start,
                                .last = back.last, .day = 3, .page = back.page,
                                .scroll = back.scroll};
    ev(&again, 1020, 'e', "/post", 90, &sum); /* the next batch raises the same page view */
    cr_assert_eq(sum.scroll_n, 1);
    cr_assert_eq(sum.scroll_sum, 90);
    /* a value written before pages were kept still reads: no page, no depth */
    cr_assert(shard_session_decode("1 1000 1000 99 2024-05-01", 25, &back));
    cr_assert_eq(back.page, 0);
    cr_assert_eq(back.scroll, -1);
}

Test(visit, carries_across_batches_as_the_stored_state)
{
    /* batch 1 ends with an open visit; batch 2 starts from what was stored */
    struct visit_state s = {0};
    struct sums sum = {0};
    feed(&s, 1000, true, &sum);
    struct shard_session stored = {"example.com:00000000000000a1", s.pv, s.start, s.last, 99,
                                   "2024-05-01", 0, -1, 0, 0, NULL, 0, NULL, 0};
    char value[SHARD_SESSION_VALUE_MAX];
    size_t len = shard_session_encode(&stored, value, sizeof value);
    cr_assert_gt(len, 0);
    cr_assert_str_eq(value, "1 1000 1000 99 2024-05-01 0 -1 0");
    cr_assert_eq(shard_session_encode(&stored, value, SHARD_SESSION_VALUE_MAX - 1), 0);
    struct shard_session back;
    cr_assert(shard_session_decode(value, len, &back));
    cr_assert_eq(back.pv, 1);
    cr_assert_eq(back.start, 1000);
    cr_assert_eq(back.last, 1000);
    cr_assert_eq(back.exp, 99);
    cr_assert_str_eq(back.day, "2024-05-01");
    struct visit_state again = {.open = true, .pv = back.pv, .start = back.start,
                                .last = back.last, .day = 3, .scroll = -1};
    feed(&again, 1500, true, &sum);
    cr_assert_eq(sum.visits, 1, "the same visit");
    cr_assert_eq(sum.bounces, 0);
    cr_assert_eq(sum.duration, 500);
}

Test(visit, a_gap_past_the_timeout_starts_a_new_visit)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    feed(&s, 1000, true, &sum);
    feed(&s, 1000 + TIMEOUT + 1, false, &sum);
    cr_assert_eq(sum.visits, 1, "a click after the timeout starts nothing");
    feed(&s, 1000 + TIMEOUT + 2, true, &sum);
    cr_assert_eq(sum.visits, 2);
    cr_assert_eq(sum.bounces, 2);
    cr_assert_eq(sum.duration, 0);
    cr_assert_eq(s.start, 1000 + TIMEOUT + 2);
}

Test(visit, out_of_order_events_extend_the_visit_backwards)
{
    struct visit_state s = {0};
    struct sums sum = {0};
    feed(&s, 2000, true, &sum);
    feed(&s, 1900, true, &sum); /* an earlier page view of the same visit, late */
    cr_assert_eq(sum.visits, 1);
    cr_assert_eq(sum.duration, 100);
    cr_assert_eq(sum.bounces, 0);
    cr_assert_eq(s.start, 1900);
    /* a page view long before: a separate visit that arrived late; the open
     * visit is kept as it was */
    feed(&s, 2000 - TIMEOUT - 500, true, &sum);
    cr_assert_eq(sum.visits, 2);
    cr_assert_eq(sum.bounces, 1);
    cr_assert_eq(s.start, 1900);
    cr_assert_eq(s.pv, 2);
}

Test(visit, damaged_checkpoint_values_are_refused)
{
    struct shard_session s;
    const char *bad[] = {"", "1 2 3", "1 2 3 4", "x 2 3 4 2024-05-01", "0 2 3 4 2024-05-01",
                         "1 2 3 4 2024-05-0", "1 2 3 4 2024-05-011",
                         "1 2 3 4 2024-05-01 ", "1 2 3 4 2024-05-01 12", "1 2 3 4 2024-05-01 x 5",
                         "1 2 3 4 2024-05-01 12 101 0", "1 2 3 4 2024-05-01 12 -2 0",
                         "1 2 3 4 2024-05-01 12 5", "1 2 3 4 2024-05-01 12 5 24",
                         "1 2 3 4 2024-05-01 12 5 x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_not(shard_session_decode(bad[i], strlen(bad[i]), &s), "%s", bad[i]);
}

Test(visit, shard_memory_keeps_sessions_and_rows_through_a_sweep)
{
    struct shard_state st;
    shard_state_init(&st, 5);
    cr_assert_str_eq(st.prefix, "veil:{5}:");
    cr_assert_str_eq(st.stream_key, "veil:{5}:events");
    struct shard_session a = {"s:a", 1, 10, 10, 0, "2024-05-01", 0, -1, 0, 0, NULL, 0, NULL, 0};
    struct shard_session b = {"s:b", 2, 10, 5000, 0, "2024-05-01", 0, -1, 0, 0, NULL, 0, NULL, 0};
    shard_session_put(&st, &a);
    shard_session_put(&st, &b);
    cr_assert_eq(st.nsessions, 2);
    struct shard_rows *pk = shard_rows_add(&st, "veil:{5}:d:s:2024-05-01:b:page:ev");
    shard_row_add(&st, pk, "/x");
    pk->rows = 1;
    struct shard_rows *idle = shard_rows_add(&st, "veil:{5}:d:s:2024-05-01:b:os:ev");
    idle->used = false;
    shard_rows_sweep(&st); /* keeps what was used since the last sweep */
    pk = shard_rows_find(&st, "veil:{5}:d:s:2024-05-01:b:page:ev");
    cr_assert_not_null(pk);
    cr_assert_eq(pk->rows, 1);
    cr_assert(shard_row_exists(&st, pk, "/x"));
    cr_assert_not(shard_row_exists(&st, pk, "/y"));
    cr_assert_null(shard_rows_find(&st, "veil:{5}:d:s:2024-05-01:b:os:ev"));
    shard_state_free(&st);
}

Test(visit, a_later_visit_of_a_known_hash_is_returning)
{
    struct visit_state s = {0};
    struct visit_effect fx;
    const struct visit_hit first = {1000, true, false, visit_page_hash("/"), -1, 0};
    visit_apply(&s, &first, 7, TIMEOUT, &fx);
    cr_assert(fx.new_visit);
    cr_assert_not(fx.returning, "the first visit of a hash is new");
    const struct visit_hit later = {1000 + TIMEOUT + 60, true, false, visit_page_hash("/"), -1, 0};
    visit_apply(&s, &later, 7, TIMEOUT, &fx);
    cr_assert(fx.new_visit);
    cr_assert(fx.returning, "an ended visit of the same hash is known");
}

Test(visit, ended_visits_are_kept_until_their_utc_day_is_over)
{
    /* cutoff = stream time - timeout - skew; 86400 * 10 is a UTC midnight */
    const int64_t midnight = 86400LL * 10;
    struct shard_session s = {"s:a", 1, 0, midnight + 100, 0, "1970-01-11", 0, -1, 0, 0, NULL, 0, NULL, 0};
    int64_t cutoff = midnight + 5000;
    cr_assert(plan_sweep_keep(&cutoff, &s), "ended, but its day is not over");
    cutoff = midnight + 86400 + 10;
    cr_assert_not(plan_sweep_keep(&cutoff, &s), "its day is over: forgotten");
    s.last = midnight + 86400 + 20;
    cr_assert(plan_sweep_keep(&cutoff, &s), "still open");
}

/* ---- exit pages and a visit's rows (visit_rows.h) ---- */

/* One event; its effect. */
static struct visit_effect step(struct visit_state *s, int64_t ts, char kind, const char *path)
{
    struct visit_effect fx;
    const struct visit_hit h = {ts, kind == 'p', kind == 'c', visit_page_hash(path), -1, 0};
    visit_apply(s, &h, 7, TIMEOUT, &fx);
    return fx;
}

Test(visit, the_latest_page_view_moves_the_exit)
{
    struct visit_state s = {0};
    struct visit_effect fx = step(&s, 1000, 'p', "/a");
    cr_assert(fx.new_visit);
    cr_assert_not(fx.exit_move, "a new visit's exit is its first page, not a move");
    cr_assert_eq(s.exit_ts, 1000);
    fx = step(&s, 1010, 'e', "/a");
    cr_assert_not(fx.exit_move, "an engagement event is no page view");
    fx = step(&s, 1020, 'c', "/a");
    cr_assert_not(fx.exit_move, "a custom event is no page view");
    fx = step(&s, 1030, 'p', "/b");
    cr_assert(fx.exit_move);
    cr_assert_eq(s.exit_ts, 1030);
    /* an earlier page view of the same visit arriving late: not the exit */
    fx = step(&s, 1025, 'p', "/c");
    cr_assert_not(fx.exit_move);
    cr_assert_eq(fx.bounces, 0);
    cr_assert_eq(s.exit_ts, 1030);
    /* the same second: the later arrival is the exit */
    fx = step(&s, 1030, 'p', "/d");
    cr_assert(fx.exit_move);
}

Test(visit, an_earlier_separate_visit_is_marked_and_leaves_the_open_one)
{
    struct visit_state s = {0};
    step(&s, 5000, 'p', "/a");
    struct visit_effect fx = step(&s, 5000 - TIMEOUT - 10, 'p', "/old");
    cr_assert(fx.new_visit && fx.separate);
    cr_assert_not(fx.exit_move);
    cr_assert_eq(s.exit_ts, 5000, "the open visit's exit is untouched");
    fx = step(&s, 6000, 'p', "/b");
    cr_assert(!fx.new_visit && !fx.separate && fx.exit_move);
    cr_assert(!visit_bounced(&s));
}

Test(visit, rows_codec_round_trips_any_bytes)
{
    const char *rows[ROLLUP_V_COUNT] = {0};
    rows[ROLLUP_V_ENTRY_PAGE] = "/a b:c";
    rows[ROLLUP_V_SOURCE] = "Direct / None";
    rows[ROLLUP_V_CITY] = "New York";
    rows[ROLLUP_V_VISITOR_TYPE] = "new";
    rows[ROLLUP_V_REGION] = ROLLUP_OTHER;
    char blob[VISIT_ROWS_BLOB_MAX];
    size_t len = visit_rows_encode(rows, blob, sizeof blob);
    cr_assert_gt(len, 0);
    const char *items[ROLLUP_V_COUNT];
    size_t lens[ROLLUP_V_COUNT], used;
    cr_assert(visit_rows_scan(blob, len, ROLLUP_V_COUNT, items, lens, &used));
    cr_assert_eq(used, len);
    cr_assert_eq(lens[ROLLUP_V_ENTRY_PAGE], 6);
    cr_assert_eq(memcmp(items[ROLLUP_V_ENTRY_PAGE], "/a b:c", 6), 0);
    cr_assert_eq(memcmp(items[ROLLUP_V_CITY], "New York", 8), 0);
    cr_assert_eq(memcmp(items[ROLLUP_V_REGION], "(other)", 7), 0);
    cr_assert_eq(lens[ROLLUP_V_UTM_TERM], 0);
    /* a row longer than kept is refused, so the visit's rows are unknown */
    char longer[VISIT_ROW_VALUE_MAX + 2];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    rows[ROLLUP_V_UTM_CAMPAIGN] = longer;
    cr_assert_eq(visit_rows_encode(rows, blob, sizeof blob), 0);
    /* cut short or with a bad length: refused */
    cr_assert_not(visit_rows_scan("3:ab", 4, 1, items, lens, &used));
    cr_assert_not(visit_rows_scan(":ab", 3, 1, items, lens, &used));
    cr_assert_not(visit_rows_scan("2ab", 3, 1, items, lens, &used));
}

Test(visit, rows_and_exit_survive_the_checkpoint_and_old_values_still_read)
{
    const char *rows[ROLLUP_V_COUNT] = {0};
    rows[ROLLUP_V_ENTRY_PAGE] = "/landing";
    rows[ROLLUP_V_SOURCE] = "Google";
    rows[ROLLUP_V_COUNTRY] = "DE";
    char blob[VISIT_ROWS_BLOB_MAX];
    size_t blen = visit_rows_encode(rows, blob, sizeof blob);
    struct shard_session s = {.field = "example.com:00000000000000a1", .pv = 2, .start = 1000,
                              .last = 1090, .exp = 99, .day = "2024-05-01", .scroll = -1,
                              .hour = 3, .exit_ts = 1090, .rows = blob, .rows_len = blen,
                              .exit = "/pricing page", .exit_len = 13};
    char value[SHARD_SESSION_VALUE_MAX];
    size_t len = shard_session_encode(&s, value, sizeof value);
    cr_assert_gt(len, 0);
    struct shard_session back;
    cr_assert(shard_session_decode(value, len, &back), "%s", value);
    cr_assert_eq(back.exit_ts, 1090);
    cr_assert_eq(back.hour, 3);
    cr_assert_eq(back.exit_len, 13);
    cr_assert_eq(memcmp(back.exit, "/pricing page", 13), 0);
    cr_assert_eq(back.rows_len, blen);
    cr_assert_eq(memcmp(back.rows, blob, blen), 0);
    /* into the shard's memory: copied, shared between visits with the same rows */
    struct shard_state st;
    shard_state_init(&st, 1);
    back.field = "example.com:00000000000000a1";
    shard_session_put(&st, &back);
    back.field = "example.com:00000000000000a2";
    shard_session_put(&st, &back);
    cr_assert_eq(st.sessions[0].rows, st.sessions[1].rows, "one copy of equal rows");
    cr_assert_str_eq(st.sessions[1].exit, "/pricing page");
    shard_state_free(&st);
    /* an exit equal to the entry page is one byte, "=" */
    s.exit = "/landing";
    s.exit_len = 8;
    len = shard_session_encode(&s, value, sizeof value);
    cr_assert_gt(len, 0);
    cr_assert_eq(value[len - 1], '=', "%s", value);
    cr_assert(shard_session_decode(value, len, &back), "%s", value);
    cr_assert_eq(back.exit_len, 8);
    cr_assert_eq(memcmp(back.exit, "/landing", 8), 0);
    cr_assert_eq(back.rows_len, blen);
    /* the value of the version before (no rows): rows unknown */
    cr_assert(shard_session_decode("2 1000 1090 99 2024-05-01 0 -1 3", 32, &back));
    cr_assert_null(back.rows);
    cr_assert_null(back.exit);
    /* damaged tails are refused (the visit restarts, as any damaged value) */
    const char *bad[] = {"2 1000 1090 99 2024-05-01 0 -1 3 1090",
                         "2 1000 1090 99 2024-05-01 0 -1 3 1090 0:0:",
                         "2 1000 1090 99 2024-05-01 0 -1 3 x 0:",
                         "2 1000 1090 99 2024-05-01 0 -1 3 1090 0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:=x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_not(shard_session_decode(bad[i], strlen(bad[i]), &back), "%s", bad[i]);
}

/* Every cut and every one-byte change of a checkpoint value with rows
 * either decodes into something that encodes back to a value decoding the
 * same, or is refused; never a read past the value (ASan in the sanitizer
 * build). */
Test(visit, damaged_rows_tails_never_read_past_the_value)
{
    const char *rows[ROLLUP_V_COUNT] = {0};
    rows[ROLLUP_V_ENTRY_PAGE] = "/a";
    rows[ROLLUP_V_SOURCE] = "Google";
    rows[ROLLUP_V_CITY] = "Rio de Janeiro";
    char blob[VISIT_ROWS_BLOB_MAX];
    size_t blen = visit_rows_encode(rows, blob, sizeof blob);
    struct shard_session s = {.field = "x", .pv = 3, .start = 10, .last = 70, .exp = 99,
                              .day = "2024-05-01", .scroll = 40, .hour = 23, .exit_ts = 70,
                              .rows = blob, .rows_len = blen, .exit = "/b", .exit_len = 2};
    char value[SHARD_SESSION_VALUE_MAX];
    size_t len = shard_session_encode(&s, value, sizeof value);
    cr_assert_gt(len, 0);
    static const char repl[] = {'0', '9', ':', ' ', '=', '-', 'x', '\0'};
    size_t accepted = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        for (size_t at = 0; at <= cut; at++) {
            for (size_t r = 0; r < sizeof repl; r++) {
                char *copy = malloc(cut ? cut : 1); /* exactly cut bytes: ASan sees overreads */
                memcpy(copy, value, cut);
                if (at < cut)
                    copy[at] = repl[r];
                struct shard_session back, again;
                if (shard_session_decode(copy, cut, &back)) {
                    accepted++;
                    char v2[SHARD_SESSION_VALUE_MAX];
                    back.field = "x";
                    size_t l2 = shard_session_encode(&back, v2, sizeof v2);
                    cr_assert(l2 > 0 && shard_session_decode(v2, l2, &again));
                    cr_assert_eq(again.rows_len, back.rows_len);
                    cr_assert_eq(again.exit_len, back.exit_len);
                    cr_assert_eq(again.last, back.last);
                }
                free(copy);
                if (at == cut)
                    break;
            }
        }
    }
    cr_assert_gt(accepted, 0);
}
