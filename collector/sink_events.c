/* sink_events.c - records of accepted events held by a sink, their lists
 * and lanes (sink_events.h). No I/O; never sees an IP or a User-Agent. */
#include "sink_events.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shard.h"
#include "sink_wire.h"
#include "util.h"

struct lane *lane_get(struct lane_set *ls, const char *id, size_t len)
{
    for (struct lane *l = ls->head; l; l = l->next)
        if (strlen(l->id) == len && memcmp(l->id, id, len) == 0)
            return l;
    struct lane *l = xcalloc(1, sizeof *l);
    str_copy(l->id, sizeof l->id, id, len);
    l->sent_gen = xcalloc(ls->nshards, sizeof *l->sent_gen);
    l->sent_seq = xcalloc(ls->nshards, sizeof *l->sent_seq);
    l->next = ls->head;
    ls->head = l;
    return l;
}

void lane_set_free(struct lane_set *ls)
{
    while (ls->head) {
        struct lane *next = ls->head->next;
        free(ls->head->sent_gen);
        free(ls->head->sent_seq);
        free(ls->head);
        ls->head = next;
    }
}

/* A record holding the version 2 payload p[0..len) (already checked);
 * NULL when the event names no site. */
static struct sink_cmd *cmd_from_payload(struct lane_set *ls, const uint8_t *p, size_t len)
{
    struct payload_view v;
    const char *site;
    size_t site_len;
    if (!payload_parse(p, len, &v) || v.version != PAYLOAD_VERSION ||
        !packed_site(v.packed, v.packed_len, &site, &site_len))
        return NULL;
    struct sink_cmd *c = xmalloc(sizeof *c + len);
    c->lane = lane_get(ls, v.lane, v.lane_len);
    if (v.flags & PAYLOAD_LEGACY)
        c->lane->legacy = true;
    c->seq = v.seq;
    c->seg = NULL;
    c->shard = shard_of_site(site, site_len, ls->nshards);
    c->len = len;
    c->packed_len = v.packed_len;
    memcpy(c->payload, p, len);
    return c;
}

struct sink_cmd *sink_cmd_new_event(struct lane_set *ls, struct lane *own, uint64_t seq,
                                    const struct event_record *ev)
{
    char packed[EVENT_PACKED_MAX];
    size_t packed_len = event_pack(ev, packed, sizeof packed);
    size_t lane_len = strlen(own->id);
    size_t len = 3 + lane_len + 8 + packed_len;
    if (packed_len == 0 || len > SPOOL_RECORD_MAX)
        return NULL;
    struct sink_cmd *c = xmalloc(sizeof *c + len);
    payload_build(c->payload, len, own->id, lane_len, seq, 0, packed, packed_len);
    c->lane = own;
    c->seq = seq;
    c->seg = NULL;
    c->shard = shard_of_site(ev->site, strlen(ev->site), ls->nshards);
    c->len = len;
    c->packed_len = packed_len;
    return c;
}

struct sink_cmd *sink_cmd_from_spool(struct lane_set *ls, const uint8_t *payload, size_t len)
{
    static _Thread_local uint8_t upgraded[SPOOL_RECORD_MAX];
    char err[160];
    if (len > 0 && payload[0] == PAYLOAD_VERSION_1) {
        len = payload_upgrade(payload, len, upgraded, sizeof upgraded, err, sizeof err);
        if (!len)
            log_warn("spool: a version 1 record does not decode (%s)", err);
        payload = upgraded;
    }
    return len ? cmd_from_payload(ls, payload, len) : NULL;
}

size_t sink_cmd_bytes(const struct sink_cmd *c)
{
    return sizeof *c + c->len;
}

void cmds_push(struct cmd_list *l, struct sink_cmd *c)
{
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

struct sink_cmd *cmds_pop(struct cmd_list *l)
{
    struct sink_cmd *c = l->head;
    if (!c)
        return NULL;
    l->head = c->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    return c;
}

void cmds_prepend(struct cmd_list *l, struct cmd_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    l->n += front->n;
    front->head = front->tail = NULL;
    front->n = 0;
}

void cmds_append(struct cmd_list *l, struct cmd_list *back)
{
    if (!back->head)
        return;
    if (l->tail)
        l->tail->next = back->head;
    else
        l->head = back->head;
    l->tail = back->tail;
    l->n += back->n;
    back->head = back->tail = NULL;
    back->n = 0;
}

static bool cmd_before(const struct sink_cmd *a, const struct sink_cmd *b)
{
    if (a->seq != b->seq)
        return a->seq < b->seq;
    return (uintptr_t)a->lane <= (uintptr_t)b->lane;
}

/* Merge sort of a NULL-terminated chain. */
static struct sink_cmd *sort_chain(struct sink_cmd *head, size_t n)
{
    if (n < 2)
        return head;
    struct sink_cmd *mid = head;
    for (size_t i = 1; i < n / 2; i++)
        mid = mid->next;
    struct sink_cmd *right = mid->next;
    mid->next = NULL;
    struct sink_cmd *a = sort_chain(head, n / 2), *b = sort_chain(right, n - n / 2);
    struct sink_cmd *merged = NULL, **t = &merged;
    while (a && b) {
        struct sink_cmd **first = cmd_before(a, b) ? &a : &b;
        *t = *first;
        *first = (*first)->next;
        t = &(*t)->next;
    }
    *t = a ? a : b;
    return merged;
}

void cmds_sort(struct cmd_list *l)
{
    if (l->n < 2)
        return;
    l->head = sort_chain(l->head, l->n);
    struct sink_cmd *t = l->head;
    while (t->next)
        t = t->next;
    l->tail = t;
}
