/* target_codec.c - fuzz target event_codec: the stream record codec
 * (common/event.c) on any entry.
 *
 * The input is field, value, field, value... separated by NUL bytes. Each
 * pair is decoded with event_decode_field; a rejection must be a fixed
 * reason. A decoded record must be well formed, and encoding it, decoding
 * that and encoding again must give the same record and the same fields
 * byte for byte: what the aggregator reads is what the collector wrote. */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "check.h"
#include "event.h"
#include "harness.h"
#include "util.h"

struct encoded {
    const char *argv[EVENT_MAX_ARGS];
    size_t argvlen[EVENT_MAX_ARGS];
    char scratch[EVENT_SCRATCH_BYTES];
    size_t n;
};

#define RECORD_TEXT(member) \
    {#member, offsetof(struct event_record, member), sizeof(((struct event_record *)0)->member)}
static const struct {
    const char *name;
    size_t offset, size;
} record_text[] = {
    RECORD_TEXT(site),         RECORD_TEXT(day),          RECORD_TEXT(name),
    RECORD_TEXT(path),         RECORD_TEXT(referrer),     RECORD_TEXT(utm_source),
    RECORD_TEXT(utm_medium),   RECORD_TEXT(utm_campaign), RECORD_TEXT(utm_term),
    RECORD_TEXT(utm_content),  RECORD_TEXT(country),      RECORD_TEXT(region),
    RECORD_TEXT(city),         RECORD_TEXT(browser),      RECORD_TEXT(browser_major),
    RECORD_TEXT(os),           RECORD_TEXT(screen),       RECORD_TEXT(visitor),
    RECORD_TEXT(ip_truncated),
};

static void check_record(const char *t, const struct event_record *ev)
{
    for (size_t i = 0; i < ARRAY_LEN(record_text); i++)
        CHECKF(t, fuzz_fits((const char *)ev + record_text[i].offset, record_text[i].size),
               "decoded %s is not NUL-terminated within its slot", record_text[i].name);
    if (ev->day[0]) {
        CHECK(t, strlen(ev->day) == 10);
        for (size_t i = 0; i < 10; i++)
            CHECK(t, (i == 4 || i == 7) ? ev->day[i] == '-'
                                        : (ev->day[i] >= '0' && ev->day[i] <= '9'));
    }
    CHECK(t, ev->ts >= 0);
    CHECK(t, ev->scroll_depth == -1 || (ev->scroll_depth >= 0 && ev->scroll_depth <= 100));
    CHECK(t, ev->engaged_ms >= -1);
    CHECK(t, ev->device >= DEVICE_UNKNOWN && ev->device <= DEVICE_BOT);
    CHECK(t, ev->nprops <= EV_PROPS_MAX);
    for (size_t i = 0; i < ev->nprops; i++) {
        CHECK(t, fuzz_fits(ev->props[i].key, EV_PROP_KEY_MAX) && ev->props[i].key[0] != '\0');
        CHECK(t, fuzz_fits(ev->props[i].value, EV_PROP_VAL_MAX));
        for (size_t j = 0; j < i; j++)
            CHECK(t, strcmp(ev->props[i].key, ev->props[j].key) != 0);
    }
}

static const char *record_diff(const struct event_record *a, const struct event_record *b)
{
    for (size_t i = 0; i < ARRAY_LEN(record_text); i++)
        if (strcmp((const char *)a + record_text[i].offset,
                   (const char *)b + record_text[i].offset) != 0)
            return record_text[i].name;
    if (a->ts != b->ts)
        return "ts";
    if (a->device != b->device)
        return "device";
    if (a->scroll_depth != b->scroll_depth)
        return "scroll_depth";
    if (a->engaged_ms != b->engaged_ms)
        return "engaged_ms";
    if (a->nprops != b->nprops)
        return "nprops";
    for (size_t i = 0; i < a->nprops; i++)
        if (strcmp(a->props[i].key, b->props[i].key) != 0 ||
            strcmp(a->props[i].value, b->props[i].value) != 0)
            return "props";
    return NULL;
}

static void encode_checked(const char *t, const struct event_record *ev, struct encoded *e)
{
    e->n = event_encode(ev, e->argv, e->argvlen, e->scratch);
    CHECK(t, e->n % 2 == 0 && e->n <= EVENT_MAX_ARGS);
    for (size_t i = 0; i < e->n; i++) {
        CHECK(t, e->argv[i] != NULL && e->argvlen[i] > 0);
        CHECK(t, memchr(e->argv[i], '\0', e->argvlen[i]) == NULL);
    }
    for (size_t i = 0; i < e->n; i += 2)
        for (size_t j = 0; j < i; j += 2)
            CHECKF(t, e->argvlen[i] != e->argvlen[j] ||
                          memcmp(e->argv[i], e->argv[j], e->argvlen[i]) != 0,
                   "a field is encoded twice");
}

static struct reason_set codec_reasons;

int fuzz_event_codec(const uint8_t *data, size_t size)
{
    static const char t[] = "event_codec";
    static struct event_record ev, again;
    static struct encoded first, second;
    char reason[REASON_BUF];
    const char *p = (const char *)data, *end = p + size;

    /* decode the input's pairs */
    event_record_init(&ev);
    while (p < end) {
        const char *field = p;
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL)
            break; /* a field without a value */
        const char *value = nul + 1;
        const char *value_end = memchr(value, '\0', (size_t)(end - value));
        if (value_end == NULL)
            value_end = end;
        fuzz_reason_prepare(reason);
        if (!event_decode_field(&ev, field, (size_t)(nul - field), value,
                                (size_t)(value_end - value), reason, REASON_LEN)) {
            fuzz_check_reason(t, &codec_reasons, reason);
            return 0;
        }
        fuzz_reason_canary(t, reason);
        p = value_end + 1;
    }
    check_record(t, &ev);
    fuzz_reason_prepare(reason);
    if (!event_decode_check(&ev, reason, REASON_LEN))
        fuzz_check_reason(t, &codec_reasons, reason);

    /* encode, decode again: the same record, the same fields */
    encode_checked(t, &ev, &first);
    event_record_init(&again);
    for (size_t i = 0; i < first.n; i += 2) {
        fuzz_reason_prepare(reason);
        CHECKF(t, event_decode_field(&again, first.argv[i], first.argvlen[i], first.argv[i + 1],
                                     first.argvlen[i + 1], reason, REASON_LEN),
               "its encoding does not decode: %s", reason);
    }
    const char *diff = record_diff(&ev, &again);
    CHECKF(t, diff == NULL, "encoding and decoding changes %s", diff);
    /* the packed field carries the same record */
    static char packed[EVENT_PACKED_MAX];
    size_t packed_len = event_pack(&ev, packed, sizeof packed);
    CHECK(t, packed_len > 0);
    event_record_init(&again);
    fuzz_reason_prepare(reason);
    CHECKF(t, event_decode_packed(&again, packed, packed_len, reason, REASON_LEN),
           "its packing does not decode: %s", reason);
    diff = record_diff(&ev, &again);
    CHECKF(t, diff == NULL, "packing and unpacking changes %s", diff);
    encode_checked(t, &again, &second);
    CHECK(t, first.n == second.n);
    for (size_t i = 0; i < first.n; i++)
        CHECKF(t, first.argvlen[i] == second.argvlen[i] &&
                      memcmp(first.argv[i], second.argv[i], first.argvlen[i]) == 0,
               "re-encoding the decoded record differs at argument %zu", i);
    return 0;
}
