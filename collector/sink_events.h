/* sink_events.h - the events a worker's sink holds in memory until Redis
 * acknowledges them (sink_redis.c): one record per accepted event (its
 * payload, the same bytes as in the spool), FIFO lists of them, and the
 * lanes that number them (docs/DELIVERY.md "Exactly once").
 *
 * No I/O, no Redis: building, ordering and freeing records. A record holds
 * the derived event only (event_pack bytes): never an IP or a User-Agent. */
#ifndef VEIL_SINK_EVENTS_H
#define VEIL_SINK_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "spool.h"

/* A lane: a sequence of event numbers (this worker's own, or one adopted
 * from a spool file of another run) and, per shard, what was last sent. */
struct lane {
    struct lane *next;
    char id[SPOOL_GROUP_MAX];
    bool legacy;        /* numbered by version 1: honour veil:{0}:lane:<id> too */
    uint64_t last_seq;  /* own lane: the last number given out */
    uint64_t *sent_gen; /* per shard: the connection generation sent_seq was sent in */
    uint64_t *sent_seq; /* per shard: the last number sent in that generation */
};

/* The lanes of one sink, for `nshards` shards. */
struct lane_set {
    struct lane *head;
    unsigned nshards;
};

/* One event: its payload (sink_wire.h, version 2). */
struct sink_cmd {
    struct sink_cmd *next;
    struct lane *lane;
    uint64_t seq;
    struct spool_seg *seg; /* read back from the spool, NULL if never there */
    unsigned shard;
    size_t len;
    size_t packed_len; /* the event_pack bytes end the payload */
    uint8_t payload[];
};

/* A FIFO of records (not owning: records move between lists). */
struct cmd_list {
    struct sink_cmd *head, *tail;
    size_t n;
};

/* The lane `id` (len bytes) of ls, created when new. Never NULL. */
struct lane *lane_get(struct lane_set *ls, const char *id, size_t len);
/* Free every lane (the records pointing at them must be gone). */
void lane_set_free(struct lane_set *ls);

/* A record for `ev` in lane `own` under number `seq` (packed once, straight
 * into the payload); NULL when it does not fit a spool record. Caller
 * owns it (free). */
struct sink_cmd *sink_cmd_new_event(struct lane_set *ls, struct lane *own, uint64_t seq,
                                    const struct event_record *ev);

/* A record from a spool payload (version 2, or version 1 upgraded); NULL
 * when it cannot be read (logged; the caller counts it). */
struct sink_cmd *sink_cmd_from_spool(struct lane_set *ls, const uint8_t *payload, size_t len);

/* What one record in memory costs: its struct and payload. */
size_t sink_cmd_bytes(const struct sink_cmd *c);

void cmds_push(struct cmd_list *l, struct sink_cmd *c);
struct sink_cmd *cmds_pop(struct cmd_list *l);
/* Put all of `front` before `l` / all of `back` after `l`, emptying it. */
void cmds_prepend(struct cmd_list *l, struct cmd_list *front);
void cmds_append(struct cmd_list *l, struct cmd_list *back);
/* Sort `l` by event number (ties by lane), stable: afterwards the records
 * of each lane are in the order they were numbered, which is the order a
 * lane's events must reach each shard (for records returned by calls that
 * were answered in any order, over several connections). O(n log n). */
void cmds_sort(struct cmd_list *l);

#endif
