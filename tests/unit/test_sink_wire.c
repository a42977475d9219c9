/* test_sink_wire.c - payloads (version 2, and version 1 upgraded), the
 * site inside packed bytes, the wire form of a delivery call and the
 * reading of its replies (collector/sink_wire.c). No Redis: the script
 * itself runs in tests/integration/test_it_delivery.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_wire.h"

static void sample(struct event_record *ev, int n)
{
    event_record_init(ev);
    snprintf(ev->site, sizeof ev->site, "example.com");
    snprintf(ev->day, sizeof ev->day, "2026-12-06");
    ev->ts = 1796515200;
    snprintf(ev->name, sizeof ev->name, "pageview");
    snprintf(ev->path, sizeof ev->path, "/p/%d", n);
    snprintf(ev->browser, sizeof ev->browser, "Firefox");
    ev->device = DEVICE_DESKTOP;
    ev->nprops = 1;
    snprintf(ev->props[0].key, sizeof ev->props[0].key, "plan");
    snprintf(ev->props[0].value, sizeof ev->props[0].value, "pro");
}

Test(sink_wire, payload_round_trip_and_site)
{
    struct event_record ev;
    sample(&ev, 7);
    char pk[EVENT_PACKED_MAX];
    size_t plen = event_pack(&ev, pk, sizeof pk);
    uint8_t buf[4096];
    size_t len = payload_build(buf, sizeof buf, "0011223344556677-1", 18, 42, 0, pk, plen);
    cr_assert_gt(len, plen);
    struct payload_view v;
    cr_assert(payload_parse(buf, len, &v));
    cr_expect_eq(v.version, 2);
    cr_expect_eq(v.seq, 42);
    cr_expect_eq(v.flags, 0);
    cr_expect_eq(v.lane_len, 18);
    cr_expect(memcmp(v.lane, "0011223344556677-1", 18) == 0);
    cr_assert_eq(v.packed_len, plen);
    cr_expect(memcmp(v.packed, pk, plen) == 0);
    const char *site;
    size_t site_len;
    cr_assert(packed_site(v.packed, v.packed_len, &site, &site_len));
    cr_expect_eq(site_len, 11);
    cr_expect(memcmp(site, "example.com", 11) == 0);
    /* damaged: cut short, an unknown version, a zero number, a bad lane byte */
    cr_expect_not(payload_parse(buf, 10, &v));
    buf[0] = 3;
    cr_expect_not(payload_parse(buf, len, &v));
    buf[0] = PAYLOAD_VERSION;
    buf[3] = '\n';
    cr_expect_not(payload_parse(buf, len, &v));
    cr_expect_eq(payload_build(buf, 10, "l", 1, 1, 0, pk, plen), 0, "does not fit");
    cr_expect_not(packed_site(pk, 3, &site, &site_len), "cut short");
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A version 1 payload of `ev`: packed field "e", or one field per field. */
static size_t v1(uint8_t *buf, const struct event_record *ev, bool packed)
{
    const char *argv[EVENT_MAX_ARGS];
    size_t argvlen[EVENT_MAX_ARGS], nf;
    static char scratch[EVENT_SCRATCH_BYTES], pk[EVENT_PACKED_MAX];
    if (packed) {
        argv[0] = "e";
        argvlen[0] = 1;
        argv[1] = pk;
        argvlen[1] = event_pack(ev, pk, sizeof pk);
        nf = 2;
    } else {
        nf = event_encode(ev, argv, argvlen, scratch);
    }
    size_t len = 0;
    buf[len++] = 1;
    buf[len++] = 4;
    memcpy(buf + len, "ab-0", 4);
    len += 4;
    put_le(buf + len, 9, 8);
    put_le(buf + len + 8, nf, 2);
    len += 10;
    for (size_t i = 0; i < nf; i++) {
        put_le(buf + len, argvlen[i], 2);
        memcpy(buf + len + 2, argv[i], argvlen[i]);
        len += 2 + argvlen[i];
    }
    return len;
}

Test(sink_wire, version_1_payloads_upgrade_to_the_same_event)
{
    struct event_record ev;
    sample(&ev, 3);
    char pk[EVENT_PACKED_MAX];
    size_t plen = event_pack(&ev, pk, sizeof pk);
    for (int packed = 0; packed < 2; packed++) {
        uint8_t old[8192], out[8192];
        size_t len = v1(old, &ev, packed);
        struct payload_view v;
        cr_assert(payload_parse(old, len, &v));
        cr_expect_eq(v.version, 1);
        char err[128];
        size_t ulen = payload_upgrade(old, len, out, sizeof out, err, sizeof err);
        cr_assert_gt(ulen, 0, "%s", err);
        cr_assert(payload_parse(out, ulen, &v));
        cr_expect_eq(v.version, 2);
        cr_expect_eq(v.flags, PAYLOAD_LEGACY, "numbered by version 1");
        cr_expect_eq(v.seq, 9);
        cr_expect(v.lane_len == 4 && memcmp(v.lane, "ab-0", 4) == 0);
        cr_assert_eq(v.packed_len, plen, "layout %d", packed);
        cr_expect(memcmp(v.packed, pk, plen) == 0, "the same packed event");
        /* a version 1 field list that does not add up is refused */
        cr_expect_not(payload_parse(old, len - 1, &v));
    }
}

/* Read one RESP bulk string at *p. */
static const char *bulk(const char **p, size_t *len)
{
    cr_assert_eq(**p, '$');
    char *end;
    *len = strtoul(*p + 1, &end, 10);
    const char *data = end + 2;
    *p = data + *len + 2;
    return data;
}

Test(sink_wire, a_call_is_one_evalsha_with_one_batch_value)
{
    struct wire_call w = {0};
    wire_call_begin(&w, 16);
    uint64_t seqs[] = {5, 6, 9, 300};
    char pk[4][EVENT_PACKED_MAX];
    size_t plen[4];
    for (int i = 0; i < 4; i++) {
        struct event_record ev;
        sample(&ev, i);
        plen[i] = event_pack(&ev, pk[i], sizeof pk[i]);
        wire_call_add(&w, seqs[i], pk[i], plen[i]);
    }
    size_t len;
    const char *sha = "0123456789012345678901234567890123456789";
    const char *cmd = wire_call_end(&w, sha, 13, "ab-0", false, 4, &len);
    const char *p = cmd;
    cr_assert(strncmp(p, "*11\r\n", 5) == 0);
    p += 5;
    static const char *const want[] = {"EVALSHA", NULL, "2", "veil:{13}:events",
                                       "veil:{13}:lane:ab-0", "4", "5", "300", SINK_LANE_TTL};
    for (int i = 0; i < 9; i++) {
        size_t n;
        const char *a = bulk(&p, &n);
        const char *expect = want[i] ? want[i] : sha;
        cr_expect(n == strlen(expect) && memcmp(a, expect, n) == 0, "argument %d: %.*s", i,
                  (int)n, a);
    }
    size_t blen;
    const char *b = bulk(&p, &blen);
    struct event_batch_iter it;
    char err[64];
    cr_assert(event_batch_begin(&it, b, blen, err, sizeof err));
    const char *q;
    size_t qlen;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(event_batch_next(&it, &q, &qlen, err, sizeof err), 1);
        cr_expect(qlen == plen[i] && memcmp(q, pk[i], qlen) == 0, "event %d", i);
    }
    cr_expect_eq(event_batch_next(&it, &q, &qlen, err, sizeof err), 0);
    size_t glen;
    const char *gaps = bulk(&p, &glen);
    cr_expect(glen == 7 && memcmp(gaps, "1 3 291", 7) == 0, "gaps %.*s", (int)glen, gaps);
    cr_expect_eq((size_t)(p - cmd), len, "nothing after the last argument");
    /* consecutive numbers send no gap list; a legacy lane names its old mark */
    wire_call_begin(&w, 16);
    wire_call_add(&w, 7, pk[0], plen[0]);
    wire_call_add(&w, 8, pk[1], plen[1]);
    cmd = wire_call_end(&w, sha, 0, "ab-0", true, 0, &len);
    cr_assert(strncmp(cmd, "*12\r\n", 5) == 0);
    static const char keys[] = "$15\r\nveil:{0}:events\r\n$21\r\nveil:{0}:lane:ab-0:v1\r\n$18\r\n"
                               "veil:{0}:lane:ab-0\r\n";
    cr_expect(memmem(cmd, len, keys, sizeof keys - 1) != NULL,
              "stream, the shard's mark, the old mark");
    cr_expect(len > 6 && memcmp(cmd + len - 6, "$0\r\n\r\n", 6) == 0, "an empty gap list");
    wire_call_free(&w);
}

Test(sink_wire, replies)
{
    struct wire_outcome o;
    redisReply cut = {.type = REDIS_REPLY_INTEGER, .integer = 2};
    wire_reply_outcome(&cut, 5, &o);
    cr_expect(o.written == 3 && o.cut == 2 && o.refused == 0);
    redisReply all = {.type = REDIS_REPLY_INTEGER, .integer = -1};
    wire_reply_outcome(&all, 5, &o);
    cr_expect(o.written == 0 && o.cut == 5);
    redisReply n1 = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    redisReply why = {.type = REDIS_REPLY_STATUS, .str = "ERR too big", .len = 11};
    redisReply *elems[] = {&n1, &why};
    redisReply refused = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = elems};
    wire_reply_outcome(&refused, 5, &o);
    cr_expect(o.written == 0 && o.cut == 1 && o.refused == 4);
    cr_expect_str_eq(o.why, "ERR too big");
    cr_expect(wire_error_transient("OOM command not allowed"));
    cr_expect(wire_error_transient("VEILGAP lane mark 3 is behind 7"));
    cr_expect_not(wire_error_transient("ERR unknown command"));
    cr_expect_eq(wire_error_code_len("OOM command not allowed"), 3);
}
