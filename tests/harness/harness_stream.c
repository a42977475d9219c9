/* harness_stream.c - count and decode the events of all shard streams
 * (see harness_stream.h). Test code: reads whole streams with XRANGE, so
 * only for the small streams of integration tests. Never writes to Redis. */
#include "harness_stream.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One stream entry's position, to merge the shard streams by ID. */
struct entry_ref {
    uint64_t ms, seq;
    unsigned shard;
    redisReply *fields;
};

static bool shard_stream_key(const char *k, size_t len, unsigned *shard)
{
    static const char head[] = "veil:{", tail[] = "}:events";
    if (len < sizeof head + sizeof tail - 1 || memcmp(k, head, sizeof head - 1) != 0 ||
        memcmp(k + len - (sizeof tail - 1), tail, sizeof tail - 1) != 0)
        return false;
    unsigned v = 0;
    size_t digits = 0;
    for (size_t i = sizeof head - 1; i < len - (sizeof tail - 1); i++, digits++) {
        if (k[i] < '0' || k[i] > '9' || digits >= 6)
            return false;
        v = v * 10 + (unsigned)(k[i] - '0');
    }
    *shard = v;
    return digits > 0;
}

static int by_id(const void *a, const void *b)
{
    const struct entry_ref *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->shard < y->shard ? -1 : x->shard > y->shard;
}

static void push_event(struct harness_events *out, size_t *cap, const struct event_record *ev,
                       unsigned shard)
{
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        out->ev = realloc(out->ev, *cap * sizeof *out->ev);
        out->shard = realloc(out->shard, *cap * sizeof *out->shard);
        if (!out->ev || !out->shard)
            abort();
    }
    out->ev[out->n] = *ev;
    out->shard[out->n] = shard;
}

/* The events of one entry: counted into out->n, decoded when asked. */
static bool read_entry(const struct entry_ref *e, bool decode, struct harness_events *out,
                       size_t *cap, struct event_record *ev, char *err, size_t errlen)
{
    const redisReply *f = e->fields;
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2) {
        snprintf(err, errlen, "shard %u: an entry without field/value pairs", e->shard);
        return false;
    }
    out->entries++;
    if (f->elements == 2 && f->element[0]->len == 1 && f->element[0]->str[0] == 'b') {
        struct event_batch_iter it;
        const char *pk;
        size_t plen;
        int r;
        if (!event_batch_begin(&it, f->element[1]->str, f->element[1]->len, err, errlen))
            return false;
        while ((r = event_batch_next(&it, &pk, &plen, err, errlen)) == 1) {
            if (decode) {
                event_record_init(ev);
                if (!event_decode_packed(ev, pk, plen, err, errlen) ||
                    !event_decode_check(ev, err, errlen))
                    return false;
                push_event(out, cap, ev, e->shard);
            }
            out->n++;
        }
        return r == 0;
    }
    /* field "e" (one packed event) or the old one field per event field */
    if (decode) {
        event_record_init(ev);
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (!event_decode_field(ev, f->element[i]->str, f->element[i]->len,
                                    f->element[i + 1]->str, f->element[i + 1]->len, err, errlen))
                return false;
        if (!event_decode_check(ev, err, errlen))
            return false;
        push_event(out, cap, ev, e->shard);
    }
    out->n++;
    return true;
}

long long harness_stream_events(redisContext *rc, bool decode, struct harness_events *out,
                                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    redisReply *ranges[1024];
    size_t nranges = 0;
    static unsigned char seen[1000000 / 8 + 1];
    memset(seen, 0, sizeof seen);
    struct entry_ref *refs = NULL;
    size_t nrefs = 0, cap_refs = 0, cap_ev = 0;
    long long result = -1;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(rc, "SCAN %s MATCH veil:{*}:events COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            snprintf(err, errlen, "SCAN failed: %s", r && r->str ? r->str : rc->errstr);
            freeReplyObject(r);
            goto done;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t k = 0; k < keys->elements; k++) {
            unsigned shard;
            if (!shard_stream_key(keys->element[k]->str, keys->element[k]->len, &shard))
                continue;
            if (seen[shard / 8] & (1u << (shard % 8)))
                continue; /* SCAN may return a key twice */
            seen[shard / 8] |= (unsigned char)(1u << (shard % 8));
            if (nranges == sizeof ranges / sizeof *ranges) {
                snprintf(err, errlen, "more than %zu shard streams", nranges);
                freeReplyObject(r);
                goto done;
            }
            redisReply *x = redisCommand(rc, "XRANGE %b - +", keys->element[k]->str,
                                         keys->element[k]->len);
            if (!x || x->type != REDIS_REPLY_ARRAY) {
                snprintf(err, errlen, "XRANGE %s failed: %s", keys->element[k]->str,
                         x && x->str ? x->str : rc->errstr);
                freeReplyObject(x);
                freeReplyObject(r);
                goto done;
            }
            ranges[nranges++] = x;
            if (x->elements)
                out->streams++;
            for (size_t i = 0; i < x->elements; i++) {
                const redisReply *en = x->element[i];
                struct entry_ref ref = {0, 0, shard, en->element[1]};
                if (sscanf(en->element[0]->str, "%" SCNu64 "-%" SCNu64, &ref.ms, &ref.seq) != 2) {
                    snprintf(err, errlen, "bad entry ID %s", en->element[0]->str);
                    freeReplyObject(r);
                    goto done;
                }
                if (nrefs == cap_refs) {
                    cap_refs = cap_refs ? cap_refs * 2 : 256;
                    refs = realloc(refs, cap_refs * sizeof *refs);
                    if (!refs)
                        abort();
                }
                refs[nrefs++] = ref;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (nrefs) /* qsort wants an array even for no elements */
        qsort(refs, nrefs, sizeof *refs, by_id);
    struct event_record *ev = malloc(sizeof *ev);
    if (!ev)
        abort();
    bool ok = true;
    for (size_t i = 0; i < nrefs && ok; i++)
        ok = read_entry(&refs[i], decode, out, &cap_ev, ev, err, errlen);
    free(ev);
    if (ok)
        result = (long long)out->n;
done:
    for (size_t i = 0; i < nranges; i++)
        freeReplyObject(ranges[i]);
    free(refs);
    if (result < 0)
        harness_events_free(out);
    return result;
}

void harness_events_free(struct harness_events *e)
{
    free(e->ev);
    free(e->shard);
    e->ev = NULL;
    e->shard = NULL;
    e->n = 0;
}

long long harness_stream_count(redisContext *rc)
{
    struct harness_events e;
    char err[200];
    long long n = harness_stream_events(rc, false, &e, err, sizeof err);
    if (n < 0)
        fprintf(stderr, "harness_stream_count: %s\n", err);
    harness_events_free(&e);
    return n;
}

long long harness_wait_stream_events(redisContext *rc, long long n, int timeout_ms)
{
    long long have = harness_stream_count(rc);
    for (int waited = 0; have >= 0 && have < n && waited < timeout_ms; waited += 10) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        have = harness_stream_count(rc);
    }
    return have;
}
