/* event.c - the stream codec: an event_record to XADD field/value pairs and
 * back (field names in include/event.h and docs/KEYS.md).
 *
 * It only moves the derived, non-identifying fields the record holds; it
 * never adds anything of its own, never allocates, and never logs a value.
 * Decoding is strict about what it keeps (every value must fit its slot,
 * numbers must be in range) and lenient about what it does not know:
 * unknown fields are skipped so that an older aggregator can read a newer
 * collector's entries. */
#include "event.h"

#include "util.h"

#include <string.h>

#define EV_ENGAGED_MS_MAX INT64_MAX

void event_record_init(struct event_record *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->device = DEVICE_UNKNOWN;
    ev->scroll_depth = -1;
    ev->engaged_ms = -1;
}

static const char *const device_names[] = {
    [DEVICE_UNKNOWN] = "unknown", [DEVICE_DESKTOP] = "desktop", [DEVICE_MOBILE] = "mobile",
    [DEVICE_TABLET] = "tablet",   [DEVICE_BOT] = "bot",
};

const char *device_class_name(enum device_class d)
{
    if ((size_t)d >= ARRAY_LEN(device_names))
        return device_names[DEVICE_UNKNOWN];
    return device_names[d];
}

enum device_class device_class_parse(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(device_names); i++)
        if (strcmp(name, device_names[i]) == 0)
            return (enum device_class)i;
    return DEVICE_UNKNOWN;
}

const char *screen_class(long width)
{
    if (width <= 0)
        return "";
    if (width < 576)
        return "mobile";
    if (width < 992)
        return "tablet";
    if (width < 1440)
        return "laptop";
    return "desktop";
}

/* ---- encoding ---------------------------------------------------------- */

struct encoder {
    const char **argv;
    size_t *argvlen;
    size_t n;
    char *scratch;     /* next free byte */
};

static void emit(struct encoder *enc, const char *field, const char *value, size_t vlen)
{
    enc->argv[enc->n] = field;
    enc->argvlen[enc->n] = strlen(field);
    enc->argv[enc->n + 1] = value;
    enc->argvlen[enc->n + 1] = vlen;
    enc->n += 2;
}

static void emit_str(struct encoder *enc, const char *field, const char *value)
{
    size_t vlen = strlen(value);
    if (vlen > 0)
        emit(enc, field, value, vlen);
}

/* Format a number into the scratch area and emit it. The scratch budget
 * (EVENT_SCRATCH_BYTES) reserves 128 bytes for the four numbers, each at
 * most 21 bytes, so this cannot run out. Hand-rolled: vsnprintf was a
 * visible part of the collector's cost per event. */
static void emit_num(struct encoder *enc, const char *field, int64_t value)
{
    char *dst = enc->scratch, *end = dst;
    if (value < 0)
        *end++ = '-';
    end = uint_to_dec(end, value < 0 ? 0 - (uint64_t)value : (uint64_t)value);
    *end = '\0';
    enc->scratch = end + 1;
    emit(enc, field, dst, (size_t)(end - dst));
}

size_t event_encode(const struct event_record *ev, const char **argv, size_t *argvlen,
                    char *scratch)
{
    struct encoder enc = {argv, argvlen, 0, scratch};

    emit_num(&enc, "v", EVENT_SCHEMA_VERSION);
    emit_str(&enc, "site", ev->site);
    emit_str(&enc, "day", ev->day);
    emit_num(&enc, "ts", ev->ts);
    emit_str(&enc, "n", ev->name);
    emit_str(&enc, "path", ev->path);
    emit_str(&enc, "ref", ev->referrer);
    emit_str(&enc, "us", ev->utm_source);
    emit_str(&enc, "um", ev->utm_medium);
    emit_str(&enc, "uc", ev->utm_campaign);
    emit_str(&enc, "ut", ev->utm_term);
    emit_str(&enc, "uo", ev->utm_content);
    emit_str(&enc, "cc", ev->country);
    emit_str(&enc, "rg", ev->region);
    emit_str(&enc, "ci", ev->city);
    emit_str(&enc, "br", ev->browser);
    emit_str(&enc, "bv", ev->browser_major);
    emit_str(&enc, "os", ev->os);
    if (ev->device != DEVICE_UNKNOWN)
        emit_str(&enc, "dev", device_class_name(ev->device));
    emit_str(&enc, "scr", ev->screen);
    if (ev->scroll_depth >= 0)
        emit_num(&enc, "sd", ev->scroll_depth);
    if (ev->engaged_ms >= 0)
        emit_num(&enc, "em", ev->engaged_ms);
    emit_str(&enc, "vh", ev->visitor);
    emit_str(&enc, "ipt", ev->ip_truncated);

    /* Prop keys go after the 128 bytes reserved for numbers. */
    enc.scratch = scratch + 128;
    size_t nprops = ev->nprops < EV_PROPS_MAX ? ev->nprops : EV_PROPS_MAX;
    for (size_t i = 0; i < nprops; i++) {
        const struct event_prop *p = &ev->props[i];
        size_t klen = strnlen(p->key, EV_PROP_KEY_MAX - 1);
        size_t vlen = strnlen(p->value, EV_PROP_VAL_MAX - 1);
        if (klen == 0 || vlen == 0)
            continue;
        char *field = enc.scratch;
        field[0] = 'p';
        field[1] = ':';
        memcpy(field + 2, p->key, klen);
        field[2 + klen] = '\0';
        enc.scratch += klen + 3;
        enc.argv[enc.n] = field;
        enc.argvlen[enc.n] = klen + 2;
        enc.argv[enc.n + 1] = p->value;
        enc.argvlen[enc.n + 1] = vlen;
        enc.n += 2;
    }
    return enc.n;
}

size_t event_pack(const struct event_record *ev, char *buf, size_t cap)
{
    const char *argv[EVENT_MAX_ARGS];
    size_t argvlen[EVENT_MAX_ARGS];
    char scratch[EVENT_SCRATCH_BYTES];
    size_t n = event_encode(ev, argv, argvlen, scratch);
    if (cap < 1)
        return 0;
    size_t len = 0;
    buf[len++] = EVENT_PACKED_VERSION;
    for (size_t i = 0; i < n; i += 2) {
        size_t nlen = argvlen[i], vlen = argvlen[i + 1];
        /* name length byte, name, up to 3 length bytes, value */
        if (nlen > UINT8_MAX || vlen >= (1u << 21) || cap - len < 1 + nlen + 3 + vlen)
            return 0;
        buf[len++] = (char)nlen;
        memcpy(buf + len, argv[i], nlen);
        len += nlen;
        while (vlen >= 0x80) {
            buf[len++] = (char)(0x80 | (vlen & 0x7f));
            vlen >>= 7;
        }
        buf[len++] = (char)vlen;
        memcpy(buf + len, argv[i + 1], argvlen[i + 1]);
        len += argvlen[i + 1];
    }
    return len;
}

/* ---- decoding ---------------------------------------------------------- */

static bool field_is(const char *field, size_t flen, const char *name)
{
    size_t nlen = strlen(name);
    return flen == nlen && memcmp(field, name, nlen) == 0;
}

/* Copy a text value into its slot; a value that does not fit or holds a
 * NUL byte is an error naming the field (field names are ours, never user
 * data). */
static bool decode_text(char *dst, size_t dstsize, const char *name, const char *value,
                        size_t vlen, char *err, size_t errlen)
{
    if (memchr(value, '\0', vlen) != NULL) {
        str_format(err, errlen, "%s: NUL byte in value", name);
        return false;
    }
    if (!str_copy(dst, dstsize, value, vlen)) {
        str_format(err, errlen, "%s: value too long", name);
        return false;
    }
    return true;
}

static bool decode_num(const char *name, const char *value, size_t vlen, long long min,
                       long long max, long long *out, char *err, size_t errlen)
{
    if (!safe_strtoll_n(value, vlen, min, max, out)) {
        str_format(err, errlen, "%s: bad number", name);
        return false;
    }
    return true;
}

static bool day_well_formed(const char *day)
{
    static const char shape[] = "dddd-dd-dd";
    for (size_t i = 0; i < 10; i++) {
        char c = day[i];
        if (shape[i] == 'd' ? (c < '0' || c > '9') : c != '-')
            return false;
    }
    return day[10] == '\0';
}

static bool decode_prop(struct event_record *ev, const char *key, size_t klen,
                        const char *value, size_t vlen, char *err, size_t errlen)
{
    if (klen == 0 || klen >= EV_PROP_KEY_MAX || memchr(key, '\0', klen) != NULL) {
        str_format(err, errlen, "p: bad key");
        return false;
    }
    if (vlen == 0)
        return true; /* never encoded (see event_encode): as if absent */
    struct event_prop *slot = NULL;
    for (size_t i = 0; i < ev->nprops; i++) {
        if (strlen(ev->props[i].key) == klen && memcmp(ev->props[i].key, key, klen) == 0) {
            slot = &ev->props[i]; /* a repeated key: the last value wins */
            break;
        }
    }
    if (slot == NULL) {
        if (ev->nprops >= EV_PROPS_MAX) {
            str_format(err, errlen, "p: too many props");
            return false;
        }
        slot = &ev->props[ev->nprops];
    }
    if (!decode_text(slot->value, sizeof slot->value, "p", value, vlen, err, errlen))
        return false;
    if (slot == &ev->props[ev->nprops]) {
        memcpy(slot->key, key, klen);
        slot->key[klen] = '\0';
        ev->nprops++;
    }
    return true;
}

/* The text fields, by stream name. */
#define TEXT_FIELD(name, member) {name, sizeof name - 1, offsetof(struct event_record, member), \
                                  sizeof(((struct event_record *)0)->member)}
static const struct {
    const char *name;
    size_t nlen;
    size_t offset;
    size_t size;
} text_fields[] = {
    TEXT_FIELD("site", site),          TEXT_FIELD("n", name),
    TEXT_FIELD("path", path),          TEXT_FIELD("ref", referrer),
    TEXT_FIELD("us", utm_source),      TEXT_FIELD("um", utm_medium),
    TEXT_FIELD("uc", utm_campaign),    TEXT_FIELD("ut", utm_term),
    TEXT_FIELD("uo", utm_content),     TEXT_FIELD("cc", country),
    TEXT_FIELD("rg", region),          TEXT_FIELD("ci", city),
    TEXT_FIELD("br", browser),         TEXT_FIELD("bv", browser_major),
    TEXT_FIELD("os", os),              TEXT_FIELD("scr", screen),
    TEXT_FIELD("vh", visitor),         TEXT_FIELD("ipt", ip_truncated),
};

void event_record_reset(struct event_record *ev)
{
    for (size_t i = 0; i < ARRAY_LEN(text_fields); i++)
        ((char *)ev + text_fields[i].offset)[0] = '\0';
    ev->day[0] = '\0';
    ev->ts = 0;
    ev->device = DEVICE_UNKNOWN;
    ev->scroll_depth = -1;
    ev->engaged_ms = -1;
    ev->nprops = 0;
}

/* Read a LEB128 length of at most 3 bytes at *p (before end). Returns
 * false when it is truncated or longer. */
static bool leb128_read(const unsigned char **p, const unsigned char *end, size_t *out)
{
    size_t len = 0;
    for (int shift = 0;; shift += 7) {
        if (*p == end || shift > 14)
            return false;
        len |= (size_t)(**p & 0x7f) << shift;
        if (!(*(*p)++ & 0x80))
            break;
    }
    *out = len;
    return true;
}

static bool decode_field(struct event_record *ev, const char *field, size_t flen,
                         const char *value, size_t vlen, size_t *hint, char *err,
                         size_t errlen);

bool event_decode_packed(struct event_record *ev, const char *value, size_t vlen, char *err,
                         size_t errlen)
{
    const unsigned char *p = (const unsigned char *)value, *end = p + vlen;
    size_t hint = 0;
    if (vlen == 0 || *p != EVENT_PACKED_VERSION) {
        str_format(err, errlen, EVENT_PACKED_FIELD ": unknown packing");
        return false;
    }
    p++;
    while (p < end) {
        size_t nlen = *p++;
        if (nlen == 0 || (size_t)(end - p) < nlen)
            goto truncated;
        const char *name = (const char *)p;
        p += nlen;
        size_t len;
        if (!leb128_read(&p, end, &len) || (size_t)(end - p) < len)
            goto truncated;
        if (field_is(name, nlen, EVENT_PACKED_FIELD)) {
            str_format(err, errlen, EVENT_PACKED_FIELD ": nested packing");
            return false;
        }
        if (!decode_field(ev, name, nlen, (const char *)p, len, &hint, err, errlen))
            return false;
        p += len;
    }
    return true;
truncated:
    str_format(err, errlen, EVENT_PACKED_FIELD ": truncated");
    return false;
}

bool event_decode_field(struct event_record *ev, const char *field, size_t flen,
                        const char *value, size_t vlen, char *err, size_t errlen)
{
    size_t hint = 0;
    return decode_field(ev, field, flen, value, vlen, &hint, err, errlen);
}

/* event_decode_field, searching the text fields from *hint on: the fields
 * of a packed event come in text_fields' order (event_encode's), so the
 * next one is almost always the next entry. */
/* The fields decode_field handles after the text fields. */
static bool numeric_field(const char *field, size_t flen)
{
    return field_is(field, flen, "v") || field_is(field, flen, "ts") ||
           field_is(field, flen, "day") || field_is(field, flen, "sd") ||
           field_is(field, flen, "em") || field_is(field, flen, "dev");
}

static bool decode_field(struct event_record *ev, const char *field, size_t flen,
                         const char *value, size_t vlen, size_t *hint, char *err,
                         size_t errlen)
{
    long long num;

    if (field_is(field, flen, EVENT_PACKED_FIELD))
        return event_decode_packed(ev, value, vlen, err, errlen);

    /* the expected next text field first, then the numbers, then the rest */
    size_t at = *hint < ARRAY_LEN(text_fields) ? *hint : 0;
    for (size_t k = 0; k < ARRAY_LEN(text_fields); k++) {
        size_t i = at + k < ARRAY_LEN(text_fields) ? at + k : at + k - ARRAY_LEN(text_fields);
        if (flen == text_fields[i].nlen && memcmp(field, text_fields[i].name, flen) == 0) {
            *hint = i + 1;
            return decode_text((char *)ev + text_fields[i].offset, text_fields[i].size,
                               text_fields[i].name, value, vlen, err, errlen);
        }
        if (k == 0 && numeric_field(field, flen))
            break; /* v, day, ts, sd, em, dev: below */
    }
    if (field_is(field, flen, "v"))
        return decode_num("v", value, vlen, 1, 1000000, &num, err, errlen);
    if (field_is(field, flen, "day")) {
        if (!decode_text(ev->day, sizeof ev->day, "day", value, vlen, err, errlen))
            return false;
        if (!day_well_formed(ev->day)) {
            ev->day[0] = '\0';
            str_format(err, errlen, "day: not YYYY-MM-DD");
            return false;
        }
        return true;
    }
    if (field_is(field, flen, "ts")) {
        if (!decode_num("ts", value, vlen, 0, INT64_MAX, &num, err, errlen))
            return false;
        ev->ts = num;
        return true;
    }
    if (field_is(field, flen, "sd")) {
        if (!decode_num("sd", value, vlen, 0, 100, &num, err, errlen))
            return false;
        ev->scroll_depth = (int)num;
        return true;
    }
    if (field_is(field, flen, "em")) {
        if (!decode_num("em", value, vlen, 0, EV_ENGAGED_MS_MAX, &num, err, errlen))
            return false;
        ev->engaged_ms = num;
        return true;
    }
    if (field_is(field, flen, "dev")) {
        char name[16];
        /* An unknown or overlong class name reads as "unknown". */
        if (vlen < sizeof name && memchr(value, '\0', vlen) == NULL) {
            memcpy(name, value, vlen);
            name[vlen] = '\0';
            ev->device = device_class_parse(name);
        } else {
            ev->device = DEVICE_UNKNOWN;
        }
        return true;
    }
    if (flen > 2 && field[0] == 'p' && field[1] == ':')
        return decode_prop(ev, field + 2, flen - 2, value, vlen, err, errlen);
    return true; /* unknown: a newer writer's field */
}

bool event_decode_check(const struct event_record *ev, char *err, size_t errlen)
{
    if (ev->site[0] == '\0') {
        str_format(err, errlen, "missing field site");
        return false;
    }
    if (ev->day[0] == '\0') {
        str_format(err, errlen, "missing field day");
        return false;
    }
    if (ev->name[0] == '\0') {
        str_format(err, errlen, "missing field n");
        return false;
    }
    return true;
}

/* ---- batches of packed events ------------------------------------------ */

size_t event_batch_append(char *buf, size_t cap, size_t used, const char *pk, size_t plen)
{
    size_t len = used;
    if (plen == 0 || plen >= (1u << 21))
        return 0;
    if (len == 0) {
        if (cap < 1)
            return 0;
        buf[len++] = EVENT_BATCH_VERSION;
    }
    if (cap - len < 3 + plen)
        return 0;
    size_t v = plen;
    while (v >= 0x80) {
        buf[len++] = (char)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    buf[len++] = (char)v;
    memcpy(buf + len, pk, plen);
    return len + plen;
}

bool event_batch_begin(struct event_batch_iter *it, const char *value, size_t vlen, char *err,
                       size_t errlen)
{
    if (vlen == 0 || value[0] != EVENT_BATCH_VERSION) {
        str_format(err, errlen, EVENT_BATCH_FIELD ": unknown batch version");
        it->p = it->end = NULL;
        return false;
    }
    it->p = (const unsigned char *)value + 1;
    it->end = (const unsigned char *)value + vlen;
    return true;
}

int event_batch_next(struct event_batch_iter *it, const char **pk, size_t *plen, char *err,
                     size_t errlen)
{
    size_t len;
    if (it->p == it->end)
        return 0;
    if (!leb128_read(&it->p, it->end, &len) || len == 0 || (size_t)(it->end - it->p) < len) {
        str_format(err, errlen, EVENT_BATCH_FIELD ": truncated");
        it->p = it->end;
        return -1;
    }
    *pk = (const char *)it->p;
    *plen = len;
    it->p += len;
    return 1;
}
