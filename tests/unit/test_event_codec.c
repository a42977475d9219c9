/* test_event_codec.c - the stream codec (common/event.c): encode -> decode
 * round trips, field order and omission, and every decode rejection. */
#include <criterion/criterion.h>
#include <string.h>

#include "event.h"
#include "util.h"

#define SET(dst, text) cr_assert(str_copy((dst), sizeof(dst), (text), strlen(text)))

struct encoded {
    const char *argv[EVENT_MAX_ARGS];
    size_t argvlen[EVENT_MAX_ARGS];
    char scratch[EVENT_SCRATCH_BYTES];
    size_t n;
};

static void encode(const struct event_record *ev, struct encoded *e)
{
    memset(e, 0, sizeof *e);
    e->n = event_encode(ev, e->argv, e->argvlen, e->scratch);
}

/* Decode all pairs; returns false at the first failing field. */
static bool decode(const struct encoded *e, struct event_record *ev, char *err, size_t errlen)
{
    event_record_init(ev);
    for (size_t i = 0; i + 1 < e->n; i += 2)
        if (!event_decode_field(ev, e->argv[i], e->argvlen[i], e->argv[i + 1],
                                e->argvlen[i + 1], err, errlen))
            return false;
    return event_decode_check(ev, err, errlen);
}

static const char *value_of(const struct encoded *e, const char *field)
{
    static char buf[4096];
    for (size_t i = 0; i + 1 < e->n; i += 2) {
        if (e->argvlen[i] == strlen(field) && memcmp(e->argv[i], field, e->argvlen[i]) == 0) {
            memcpy(buf, e->argv[i + 1], e->argvlen[i + 1]);
            buf[e->argvlen[i + 1]] = '\0';
            return buf;
        }
    }
    return NULL;
}

static void full_record(struct event_record *ev)
{
    event_record_init(ev);
    SET(ev->site, "example.com");
    SET(ev->day, "2024-03-01");
    ev->ts = 1709251200;
    SET(ev->name, "pageview");
    SET(ev->path, "/blog/post?page=2#top");
    SET(ev->referrer, "news.ycombinator.com");
    SET(ev->utm_source, "newsletter");
    SET(ev->utm_medium, "email");
    SET(ev->utm_campaign, "spring sale");
    SET(ev->utm_term, "shoes");
    SET(ev->utm_content, "hero");
    SET(ev->country, "DE");
    SET(ev->region, "BE");
    SET(ev->city, "Berlin");
    SET(ev->browser, "Firefox");
    SET(ev->browser_major, "123");
    SET(ev->os, "Linux");
    ev->device = DEVICE_DESKTOP;
    SET(ev->screen, "laptop");
    ev->scroll_depth = 0; /* 0 is present, not absent */
    ev->engaged_ms = 86400000;
    ev->interactive = false; /* "ni" 1 */
    ev->paid = EV_PAID_SOCIAL; /* "pd" 2 */
    SET(ev->visitor, "0123456789abcdef");
    SET(ev->ip_truncated, "192.0.2.0");
    ev->nprops = EV_PROPS_MAX;
    for (size_t i = 0; i < EV_PROPS_MAX; i++) {
        /* the longest allowed keys and values */
        memset(ev->props[i].key, 'a' + (int)(i % 26), EV_PROP_KEY_MAX - 1);
        ev->props[i].key[EV_PROP_KEY_MAX - 1] = '\0';
        ev->props[i].key[0] = (char)('0' + (int)(i / 26));
        memset(ev->props[i].value, 'v', EV_PROP_VAL_MAX - 1);
        ev->props[i].value[EV_PROP_VAL_MAX - 1] = '\0';
    }
}

Test(event_codec, full_round_trip)
{
    struct event_record in, back;
    struct encoded e;
    char err[128] = "";
    full_record(&in);
    encode(&in, &e);
    cr_assert_eq(e.n, EVENT_MAX_ARGS, "all 26 fields and 30 props: %zu", e.n);
    cr_assert(decode(&e, &back, err, sizeof err), "decode: %s", err);
    cr_assert(memcmp(&in, &back, sizeof in) == 0, "round trip differs");
}

Test(event_codec, field_order_and_names)
{
    static const char *const order[] = {"v",  "site", "day", "ts", "n",  "path", "ref", "us",
                                        "um", "uc",   "ut",  "uo", "cc", "rg",   "ci",  "br",
                                        "bv", "os",   "dev", "scr", "sd", "em",  "ni", "pd", "vh",  "ipt"};
    struct event_record in;
    struct encoded e;
    full_record(&in);
    encode(&in, &e);
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        cr_assert_eq(e.argvlen[2 * i], strlen(order[i]));
        cr_assert(memcmp(e.argv[2 * i], order[i], strlen(order[i])) == 0, "field %zu", i);
    }
    cr_assert_str_eq(value_of(&e, "v"), "1");
    cr_assert_str_eq(value_of(&e, "ts"), "1709251200");
    cr_assert_str_eq(value_of(&e, "dev"), "desktop");
    cr_assert_str_eq(value_of(&e, "sd"), "0");
    cr_assert_str_eq(value_of(&e, "em"), "86400000");
    cr_assert_eq(e.argvlen[52], 2 + EV_PROP_KEY_MAX - 1);
    cr_assert(memcmp(e.argv[52], "p:0aaa", 6) == 0);
}

Test(event_codec, minimal_round_trip_omits_empty_fields)
{
    struct event_record in, back;
    struct encoded e;
    char err[128] = "";
    event_record_init(&in);
    SET(in.site, "example.com");
    SET(in.day, "2024-03-01");
    in.ts = 1709251200;
    SET(in.name, "signup");
    encode(&in, &e);
    cr_assert_eq(e.n, 10, "v site day ts n: %zu entries", e.n);
    cr_assert_null(value_of(&e, "sd"));
    cr_assert_null(value_of(&e, "em"));
    cr_assert_null(value_of(&e, "ni"), "interactive is the default: not written");
    cr_assert_null(value_of(&e, "pd"));
    cr_assert_null(value_of(&e, "dev"));
    cr_assert_null(value_of(&e, "ref"));
    cr_assert_null(value_of(&e, "vh"));
    cr_assert_null(value_of(&e, "ipt"));
    cr_assert(decode(&e, &back, err, sizeof err), "decode: %s", err);
    cr_assert(memcmp(&in, &back, sizeof in) == 0);
    cr_assert_eq(back.scroll_depth, -1);
    cr_assert_eq(back.engaged_ms, -1);
    cr_assert(back.interactive);
    cr_assert_eq(back.device, DEVICE_UNKNOWN);
}

Test(event_codec, empty_prop_values_are_not_emitted)
{
    struct event_record in;
    struct encoded e;
    event_record_init(&in);
    SET(in.site, "example.com");
    SET(in.day, "2024-03-01");
    SET(in.name, "x");
    in.nprops = 2;
    SET(in.props[0].key, "plan");
    SET(in.props[1].key, "empty");
    SET(in.props[0].value, "pro");
    encode(&in, &e);
    cr_assert_str_eq(value_of(&e, "p:plan"), "pro");
    cr_assert_null(value_of(&e, "p:empty"));
}

static bool decode_one(struct event_record *ev, const char *field, const char *value,
                       char *err, size_t errlen)
{
    return event_decode_field(ev, field, strlen(field), value, strlen(value), err, errlen);
}

/* A string of `n` 'x' bytes in buf. */
static const char *xs(char *buf, size_t n)
{
    memset(buf, 'x', n);
    buf[n] = '\0';
    return buf;
}

Test(event_codec, decode_rejects_overlong_values)
{
    struct event_record ev;
    char err[128];
    char big[EV_PATH_MAX + 1];
    event_record_init(&ev);

    cr_assert_not(decode_one(&ev, "path", xs(big, EV_PATH_MAX), err, sizeof err));
    cr_assert_str_eq(err, "path: value too long");
    cr_assert(decode_one(&ev, "path", xs(big, EV_PATH_MAX - 1), err, sizeof err));
    cr_assert_eq(strlen(ev.path), EV_PATH_MAX - 1);

    cr_assert_not(decode_one(&ev, "cc", "DEU", err, sizeof err));
    cr_assert_str_eq(err, "cc: value too long");
    cr_assert_not(decode_one(&ev, "n", xs(big, EV_NAME_MAX), err, sizeof err));
    cr_assert_str_eq(err, "n: value too long");
    cr_assert(decode_one(&ev, "n", xs(big, EV_NAME_MAX - 1), err, sizeof err));
    cr_assert_not(decode_one(&ev, "vh", xs(big, 17), err, sizeof err));
    cr_assert_not(decode_one(&ev, "p:k", xs(big, EV_PROP_VAL_MAX), err, sizeof err));
    cr_assert_str_eq(err, "p: value too long");
    cr_assert(decode_one(&ev, "p:k", xs(big, EV_PROP_VAL_MAX - 1), err, sizeof err), "%s", err);

    char key[EV_PROP_KEY_MAX + 3] = "p:";
    memset(key + 2, 'k', EV_PROP_KEY_MAX);
    key[EV_PROP_KEY_MAX + 2] = '\0';
    cr_assert_not(decode_one(&ev, key, "v", err, sizeof err));
    cr_assert_str_eq(err, "p: bad key");
    key[EV_PROP_KEY_MAX + 1] = '\0'; /* 64 bytes: fits */
    cr_assert(decode_one(&ev, key, "v", err, sizeof err), "%s", err);
}

Test(event_codec, decode_rejects_bad_numbers)
{
    static const char *const bad[][2] = {
        {"ts", "abc"}, {"ts", "-1"},  {"ts", "12x"},  {"ts", ""},   {"sd", "101"},
        {"sd", "-1"},  {"sd", "5.5"}, {"em", "-3"},   {"em", "1e3"}, {"v", "0"},
        {"v", "x"},    {"ts", "99999999999999999999"},
    };
    char err[128];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct event_record ev;
        event_record_init(&ev);
        err[0] = '\0';
        cr_assert_not(decode_one(&ev, bad[i][0], bad[i][1], err, sizeof err), "%s=%s",
                      bad[i][0], bad[i][1]);
        cr_assert(strstr(err, "bad number") != NULL, "%s", err);
    }
    struct event_record ev;
    event_record_init(&ev);
    cr_assert(decode_one(&ev, "sd", "100", err, sizeof err));
    cr_assert_eq(ev.scroll_depth, 100);
    cr_assert(decode_one(&ev, "em", "0", err, sizeof err));
    cr_assert_eq(ev.engaged_ms, 0);
}

Test(event_codec, decode_rejects_bad_day_and_nul)
{
    struct event_record ev;
    char err[128];
    event_record_init(&ev);
    cr_assert_not(decode_one(&ev, "day", "2024-3-01", err, sizeof err));
    cr_assert_not(decode_one(&ev, "day", "2024/03/01", err, sizeof err));
    cr_assert_str_eq(err, "day: not YYYY-MM-DD");
    cr_assert_eq(ev.day[0], '\0');
    cr_assert_not(event_decode_field(&ev, "site", 4, "a\0b", 3, err, sizeof err));
    cr_assert_str_eq(err, "site: NUL byte in value");
}

Test(event_codec, decode_check_requires_site_day_name)
{
    struct event_record ev;
    char err[128];
    event_record_init(&ev);
    cr_assert_not(event_decode_check(&ev, err, sizeof err));
    cr_assert_str_eq(err, "missing field site");
    cr_assert(decode_one(&ev, "site", "example.com", err, sizeof err));
    cr_assert_not(event_decode_check(&ev, err, sizeof err));
    cr_assert_str_eq(err, "missing field day");
    cr_assert(decode_one(&ev, "day", "2024-03-01", err, sizeof err));
    cr_assert_not(event_decode_check(&ev, err, sizeof err));
    cr_assert_str_eq(err, "missing field n");
    cr_assert(decode_one(&ev, "n", "pageview", err, sizeof err));
    cr_assert(event_decode_check(&ev, err, sizeof err));
}

Test(event_codec, unknown_fields_are_ignored)
{
    struct event_record ev, blank;
    char err[128] = "";
    event_record_init(&ev);
    event_record_init(&blank);
    cr_assert(decode_one(&ev, "future_field", "whatever", err, sizeof err));
    cr_assert(decode_one(&ev, "sitex", "x", err, sizeof err));
    cr_assert(decode_one(&ev, "p", "x", err, sizeof err)); /* not "p:<key>" */
    cr_assert(memcmp(&ev, &blank, sizeof ev) == 0, "unknown fields changed the record");
}

Test(event_codec, props_limit_and_repeat)
{
    struct event_record ev;
    char err[128], key[16];
    event_record_init(&ev);
    for (int i = 0; i < EV_PROPS_MAX; i++) {
        str_format(key, sizeof key, "p:k%d", i);
        cr_assert(decode_one(&ev, key, "v", err, sizeof err), "%s", err);
    }
    cr_assert(decode_one(&ev, "p:k3", "again", err, sizeof err), "a repeat replaces");
    cr_assert_eq(ev.nprops, EV_PROPS_MAX);
    cr_assert_str_eq(ev.props[3].value, "again");
    cr_assert_not(decode_one(&ev, "p:k30", "v", err, sizeof err));
    cr_assert_str_eq(err, "p: too many props");
}

Test(event_codec, device_and_screen_classes)
{
    for (int d = DEVICE_UNKNOWN; d <= DEVICE_BOT; d++)
        cr_assert_eq(device_class_parse(device_class_name((enum device_class)d)), d);
    cr_assert_eq(device_class_parse("toaster"), DEVICE_UNKNOWN);
    cr_assert_str_eq(device_class_name((enum device_class)42), "unknown");
    cr_assert_str_eq(screen_class(0), "");
    cr_assert_str_eq(screen_class(-5), "");
    cr_assert_str_eq(screen_class(575), "mobile");
    cr_assert_str_eq(screen_class(576), "tablet");
    cr_assert_str_eq(screen_class(991), "tablet");
    cr_assert_str_eq(screen_class(992), "laptop");
    cr_assert_str_eq(screen_class(1439), "laptop");
    cr_assert_str_eq(screen_class(1440), "desktop");
}

/* ---- the packed field ---- */

static bool unpack(const char *packed, size_t len, struct event_record *ev, char *err,
                   size_t errlen)
{
    event_record_init(ev);
    return event_decode_field(ev, EVENT_PACKED_FIELD, strlen(EVENT_PACKED_FIELD), packed, len,
                              err, errlen) &&
           event_decode_check(ev, err, errlen);
}

Test(event_codec, packed_round_trip_of_the_largest_event)
{
    static struct event_record in, back;
    static char packed[EVENT_PACKED_MAX];
    char err[128] = "";
    full_record(&in);
    SET(in.path, "/");
    memset(in.path, 'x', EV_PATH_MAX - 1); /* a 2000-byte value: a 2-byte length */
    in.path[0] = '/';
    size_t len = event_pack(&in, packed, sizeof packed);
    cr_assert_gt(len, 30 * 256);
    cr_assert_eq(packed[0], EVENT_PACKED_VERSION);
    cr_assert(unpack(packed, len, &back, err, sizeof err), "unpack: %s", err);
    cr_assert(memcmp(&in, &back, sizeof in) == 0, "packed round trip differs");
    cr_assert_eq(event_pack(&in, packed, len - 1), 0, "one byte short does not fit");
}

Test(event_codec, packed_holds_the_same_fields_in_the_same_order)
{
    struct event_record ev;
    struct encoded e;
    char packed[1024];
    full_record(&ev);
    ev.nprops = 1;
    encode(&ev, &e);
    size_t len = event_pack(&ev, packed, sizeof packed);
    size_t at = 1;
    for (size_t i = 0; i < e.n; i += 2) {
        cr_assert_eq((size_t)(unsigned char)packed[at], e.argvlen[i]);
        cr_assert(memcmp(packed + at + 1, e.argv[i], e.argvlen[i]) == 0);
        at += 1 + e.argvlen[i];
        size_t vlen = (unsigned char)packed[at++];
        if (vlen & 0x80)
            vlen = (vlen & 0x7f) | (size_t)(unsigned char)packed[at++] << 7;
        cr_assert_eq(vlen, e.argvlen[i + 1], "length of %s", e.argv[i]);
        cr_assert(memcmp(packed + at, e.argv[i + 1], vlen) == 0);
        at += vlen;
    }
    cr_assert_eq(at, len);
}

Test(event_codec, packed_rejects_truncation_versions_and_nesting)
{
    struct event_record ev;
    char packed[1024], err[128];
    full_record(&ev);
    ev.nprops = 0;
    size_t len = event_pack(&ev, packed, sizeof packed);
    for (size_t cut = 1; cut < len; cut++) {
        /* every cut either ends between two fields (decodes, maybe missing
         * a required field) or inside one (truncated); never reads past */
        event_record_init(&ev);
        err[0] = '\0';
        if (!event_decode_packed(&ev, packed, cut, err, sizeof err))
            cr_assert_str_eq(err, EVENT_PACKED_FIELD ": truncated", "cut %zu", cut);
    }
    cr_assert_not(unpack("", 0, &ev, err, sizeof err));
    cr_assert_str_eq(err, EVENT_PACKED_FIELD ": unknown packing");
    cr_assert_not(unpack("2\x04site\x01x", 8, &ev, err, sizeof err));
    cr_assert_str_eq(err, EVENT_PACKED_FIELD ": unknown packing");
    cr_assert_not(unpack("1\x01" "e\x01" "1", 5, &ev, err, sizeof err));
    cr_assert_str_eq(err, EVENT_PACKED_FIELD ": nested packing");
    cr_assert_not(unpack("1\x00", 2, &ev, err, sizeof err), "empty name");
    cr_assert_not(unpack("1\x01x\xff\xff\xff\x01", 7, &ev, err, sizeof err),
                  "a length over 3 bytes");
    /* a bad inner value is the inner field's error */
    cr_assert_not(unpack("1\x02ts\x03" "abc", 8, &ev, err, sizeof err));
    cr_assert_str_eq(err, "ts: bad number");
    /* unknown inner fields are skipped like unknown stream fields */
    static const char fwd[] = "1\x04site\x01" "a\x03" "day\x0a" "2024-03-01\x01n\x01p\x03zzz\x01q";
    cr_assert(unpack(fwd, sizeof fwd - 1, &ev, err, sizeof err), "%s", err);
    cr_assert_str_eq(ev.site, "a");
    cr_assert_str_eq(ev.name, "p");
}

Test(event_codec, reset_record_encodes_like_a_fresh_one)
{
    static struct event_record used, fresh;
    struct encoded a, b;
    full_record(&used);
    event_record_reset(&used);
    event_record_init(&fresh);
    encode(&used, &a);
    encode(&fresh, &b);
    cr_assert_eq(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        cr_assert(a.argvlen[i] == b.argvlen[i] && memcmp(a.argv[i], b.argv[i], a.argvlen[i]) == 0,
                  "argument %zu", i);
    /* a reset record decodes like a fresh one: no stale field shows */
    full_record(&used);
    event_record_init(&fresh);
    SET(fresh.site, "a.example");
    SET(fresh.day, "2024-03-01");
    SET(fresh.name, "pageview");
    encode(&fresh, &a);
    char err[128];
    event_record_reset(&used);
    for (size_t i = 0; i < a.n; i += 2)
        cr_assert(event_decode_field(&used, a.argv[i], a.argvlen[i], a.argv[i + 1],
                                     a.argvlen[i + 1], err, sizeof err), "%s", err);
    cr_assert(event_decode_check(&used, err, sizeof err), "%s", err);
    encode(&used, &b);
    cr_assert_eq(a.n, b.n);
    for (size_t i = 0; i < a.n; i++)
        cr_assert(a.argvlen[i] == b.argvlen[i] && memcmp(a.argv[i], b.argv[i], a.argvlen[i]) == 0,
                  "argument %zu", i);
    cr_assert_eq(used.nprops, 0);
}

/* ---- batches (event_batch_*) ---- */

Test(event_codec, batch_round_trip_of_many_events)
{
    static char pk[EVENT_PACKED_MAX], batch[4 * EVENT_PACKED_MAX];
    struct event_record in, back;
    char err[128] = "";
    size_t used = 0;
    full_record(&in);
    for (int i = 0; i < 3; i++) {
        in.ts = 1709251200 + i;
        size_t plen = event_pack(&in, pk, sizeof pk);
        cr_assert_gt(plen, 127, "a full event needs a multi-byte length");
        used = event_batch_append(batch, sizeof batch, used, pk, plen);
        cr_assert_gt(used, 0);
    }
    cr_assert_eq(batch[0], EVENT_BATCH_VERSION);
    struct event_batch_iter it;
    cr_assert(event_batch_begin(&it, batch, used, err, sizeof err), "%s", err);
    const char *p;
    size_t plen;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), 1, "event %d: %s", i, err);
        event_record_init(&back);
        cr_assert(event_decode_packed(&back, p, plen, err, sizeof err), "%s", err);
        in.ts = 1709251200 + i;
        cr_assert(memcmp(&in, &back, sizeof in) == 0, "event %d differs", i);
    }
    cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), 0);
}

Test(event_codec, batch_refuses_what_does_not_fit_and_bad_input)
{
    char batch[16], err[128];
    cr_assert_eq(event_batch_append(batch, sizeof batch, 0, "1abcdefghijk", 12), 14);
    /* another 12-byte event does not fit in 16: refused, nothing written past used */
    cr_assert_eq(event_batch_append(batch, sizeof batch, 14, "1abcdefghijk", 12), 0);
    cr_assert_eq(event_batch_append(batch, sizeof batch, 0, "", 0), 0, "empty events are refused");

    struct event_batch_iter it;
    cr_assert_not(event_batch_begin(&it, "1xyz", 4, err, sizeof err), "a packed event is no batch");
    cr_assert_not(event_batch_begin(&it, "", 0, err, sizeof err));
    /* a length that runs past the end: truncated, reported once */
    const char truncated[] = {EVENT_BATCH_VERSION, 10, '1', 'a'};
    const char *p;
    size_t plen;
    cr_assert(event_batch_begin(&it, truncated, sizeof truncated, err, sizeof err));
    cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), -1);
    cr_assert(strstr(err, "truncated") != NULL, "%s", err);
    cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), 0);
    /* a length of more than 3 LEB128 bytes or a zero length */
    const char overlong[] = {EVENT_BATCH_VERSION, (char)0x80, (char)0x80, (char)0x80, 1, 'x'};
    cr_assert(event_batch_begin(&it, overlong, sizeof overlong, err, sizeof err));
    cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), -1);
    const char zero[] = {EVENT_BATCH_VERSION, 0};
    cr_assert(event_batch_begin(&it, zero, sizeof zero, err, sizeof err));
    cr_assert_eq(event_batch_next(&it, &p, &plen, err, sizeof err), -1);
}
