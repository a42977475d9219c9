/* test_sink_events.c - the records a sink holds (collector/sink_events.c):
 * one record per event with its lane, number and shard, the FIFO lists,
 * and the re-ordering of records that calls answered in any order gave
 * back (cmds_sort): afterwards each lane's records are in numbering
 * order, which is what exactly-once re-sending needs. No Redis. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"
#include "sink_events.h"
#include "sink_wire.h"

static void sample(struct event_record *ev, const char *site, int n)
{
    event_record_init(ev);
    snprintf(ev->site, sizeof ev->site, "%s", site);
    snprintf(ev->day, sizeof ev->day, "2026-12-06");
    ev->ts = 1796515200;
    snprintf(ev->name, sizeof ev->name, "pageview");
    snprintf(ev->path, sizeof ev->path, "/p/%d", n);
}

Test(sink_events, records_carry_lane_number_shard_and_survive_the_spool_form)
{
    struct lane_set ls = {NULL, 16};
    struct lane *own = lane_get(&ls, "0123456789abcdef-0", 18);
    cr_assert_eq(lane_get(&ls, "0123456789abcdef-0", 18), own, "a lane is made once");
    struct event_record ev;
    sample(&ev, "a.example", 1);
    struct sink_cmd *c = sink_cmd_new_event(&ls, own, 42, &ev);
    cr_assert_not_null(c);
    cr_expect_eq(c->lane, own);
    cr_expect_eq(c->seq, 42);
    cr_expect_eq(c->shard, shard_of_site("a.example", 9, 16));
    cr_expect_eq(sink_cmd_bytes(c), sizeof *c + c->len);
    /* the payload is the spool record: read back, the same event */
    struct sink_cmd *back = sink_cmd_from_spool(&ls, c->payload, c->len);
    cr_assert_not_null(back);
    cr_expect_eq(back->lane, own);
    cr_expect_eq(back->seq, 42);
    cr_expect_eq(back->shard, c->shard);
    cr_expect_eq(back->len, c->len);
    cr_expect_eq(memcmp(back->payload, c->payload, c->len), 0);
    /* garbage is refused, not guessed at */
    uint8_t junk[16] = {PAYLOAD_VERSION, 0, 200};
    cr_expect_null(sink_cmd_from_spool(&ls, junk, sizeof junk));
    free(back);
    free(c);
    lane_set_free(&ls);
}

Test(sink_events, sort_puts_each_lane_back_in_numbering_order)
{
    struct lane_set ls = {NULL, 16};
    struct lane *lanes[3] = {lane_get(&ls, "lane-a", 6), lane_get(&ls, "lane-b", 6),
                             lane_get(&ls, "lane-c", 6)};
    /* calls answered out of order: their events joined `returned` in
     * blocks, newest block first, lanes interleaved */
    struct cmd_list l = {NULL, NULL, 0};
    struct event_record ev;
    sample(&ev, "b.example", 0);
    enum { N = 300 };
    for (int block = 9; block >= 0; block--)
        for (int k = 0; k < N / 10; k++) {
            int i = block * (N / 10) + k;
            struct sink_cmd *c = sink_cmd_new_event(&ls, lanes[i % 3], 1000 + (uint64_t)i / 3, &ev);
            cr_assert_not_null(c);
            cmds_push(&l, c);
        }
    cr_assert_eq(l.n, N);
    cmds_sort(&l);
    cr_expect_eq(l.n, N);
    uint64_t last[3] = {0, 0, 0};
    int seen = 0;
    struct sink_cmd *tail = NULL;
    for (struct sink_cmd *c = l.head; c; c = c->next) {
        int which = c->lane == lanes[0] ? 0 : c->lane == lanes[1] ? 1 : 2;
        cr_expect_gt(c->seq, last[which], "lane %d: %llu after %llu", which,
                     (unsigned long long)c->seq, (unsigned long long)last[which]);
        last[which] = c->seq;
        seen++;
        tail = c;
    }
    cr_expect_eq(seen, N);
    cr_expect_eq(l.tail, tail, "the tail is the last record");
    /* the list still works as a FIFO afterwards */
    struct cmd_list front = {NULL, NULL, 0};
    cmds_push(&front, cmds_pop(&l));
    cmds_prepend(&l, &front);
    cr_expect_eq(l.n, N);
    cr_expect_eq(front.n, 0);
    struct sink_cmd *c;
    while ((c = cmds_pop(&l)))
        free(c);
    cr_expect_null(l.tail);
    lane_set_free(&ls);
}
