/* test_visit.c - the visit logic (aggregator/visit.c) and the checkpoint
 * of open visits (shard_state.c), without Redis. */
#include <criterion/criterion.h>
#include <string.h>

#include "shard_state.h"
#include "visit.h"

#define TIMEOUT 1800

/* Feed events (ts, pageview) to s; sum the effects. */
struct sums {
    long long visits, duration, bounces;
};

static void feed(struct visit_state *s, int64_t ts, bool pageview, struct sums *sum)
{
    struct visit_effect fx;
    visit_apply(s, ts, pageview, 7, TIMEOUT, &fx);
    sum->visits += fx.new_visit;
    sum->bounces += fx.new_visit + fx.bounces;
    sum->duration += fx.duration;
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
    feed(&s, 1000, true, &sum);
    feed(&s, 1060, false, &sum); /* a click extends it */
    feed(&s, 1100, true, &sum);
    feed(&s, 1200, true, &sum); /* the third page view changes no bounce */
    cr_assert_eq(sum.visits, 1);
    cr_assert_eq(sum.bounces, 0);
    cr_assert_eq(sum.duration, 200);
    cr_assert_eq(s.pv, 3);
}

Test(visit, carries_across_batches_as_the_stored_state)
{
    /* batch 1 ends with an open visit; batch 2 starts from what was stored */
    struct visit_state s = {0};
    struct sums sum = {0};
    feed(&s, 1000, true, &sum);
    struct shard_session stored = {"example.com:00000000000000a1", s.pv, s.start, s.last, 99,
                                   "2024-05-01"};
    char value[SHARD_SESSION_VALUE_MAX];
    size_t len = shard_session_encode(&stored, value, sizeof value);
    cr_assert_gt(len, 0);
    cr_assert_str_eq(value, "1 1000 1000 99 2024-05-01");
    cr_assert_eq(shard_session_encode(&stored, value, SHARD_SESSION_VALUE_MAX - 1), 0);
    struct shard_session back;
    cr_assert(shard_session_decode(value, len, &back));
    cr_assert_eq(back.pv, 1);
    cr_assert_eq(back.start, 1000);
    cr_assert_eq(back.last, 1000);
    cr_assert_eq(back.exp, 99);
    cr_assert_str_eq(back.day, "2024-05-01");
    struct visit_state again = {true, back.pv, back.start, back.last, 3, false};
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
                         "1 2 3 4 2024-05-0", "1 2 3 4 2024-05-011"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_not(shard_session_decode(bad[i], strlen(bad[i]), &s), "%s", bad[i]);
}

Test(visit, shard_memory_keeps_sessions_and_rows_through_a_sweep)
{
    struct shard_state st;
    shard_state_init(&st, 5);
    cr_assert_str_eq(st.prefix, "veil:{5}:");
    cr_assert_str_eq(st.stream_key, "veil:{5}:events");
    struct shard_session a = {"s:a", 1, 10, 10, 0, "2024-05-01"};
    struct shard_session b = {"s:b", 2, 10, 5000, 0, "2024-05-01"};
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
