/* event.h - the non-identifying event record that flows from the collector
 * to the aggregator through the Redis stream (and, later, the spool).
 *
 * It holds only derived fields (DESIGN.md "Collector to stream"). It never
 * holds a client IP (except the truncated form when ip_keep=truncated), a
 * raw User-Agent, a full URL query or a cookie. */
#ifndef VEIL_EVENT_H
#define VEIL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVENT_SCHEMA_VERSION 1

#define EV_SITE_MAX     254   /* site id / hostname, bytes incl. NUL */
#define EV_NAME_MAX     121   /* event name: at most 120 bytes */
#define EV_PATH_MAX     2001  /* normalised path (+kept query, +fragment) */
#define EV_HOST_MAX     254   /* referrer host */
#define EV_UTM_MAX      256   /* each utm_* value */
#define EV_PAID_SEARCH  1     /* event_record.paid: a search ad's click id (gclid, ...) */
#define EV_PAID_SOCIAL  2     /* a social network ad's click id (fbclid, ...) */
#define EV_GEO_CITY_MAX 128
#define EV_UA_FIELD_MAX 64    /* browser family, os family */
#define EV_PROPS_MAX    30    /* custom props per event */
#define EV_PROP_KEY_MAX 65    /* prop key: at most 64 bytes */
#define EV_PROP_VAL_MAX 257   /* prop value: at most 256 bytes */

enum device_class { DEVICE_UNKNOWN = 0, DEVICE_DESKTOP, DEVICE_MOBILE, DEVICE_TABLET, DEVICE_BOT };

struct event_prop {
    char key[EV_PROP_KEY_MAX];
    char value[EV_PROP_VAL_MAX];
};

struct event_record {
    char site[EV_SITE_MAX];        /* stream field "site" */
    char day[11];                  /* "day"  YYYY-MM-DD (UTC) */
    int64_t ts;                    /* "ts"   unix seconds */
    char name[EV_NAME_MAX];        /* "n"    pageview or custom name */
    char path[EV_PATH_MAX];        /* "path" */
    char referrer[EV_HOST_MAX];    /* "ref"  host only, "" = direct */
    char utm_source[EV_UTM_MAX];   /* "us" */
    char utm_medium[EV_UTM_MAX];   /* "um" */
    char utm_campaign[EV_UTM_MAX]; /* "uc" */
    char utm_term[EV_UTM_MAX];     /* "ut" */
    char utm_content[EV_UTM_MAX];  /* "uo" */
    char country[3];               /* "cc"   ISO 3166-1 alpha-2 or "" */
    char region[4];                /* "rg"   ISO 3166-2 subdivision code or "" */
    char city[EV_GEO_CITY_MAX];    /* "ci"   English name or "" */
    char browser[EV_UA_FIELD_MAX]; /* "br"   family */
    char browser_major[16];        /* "bv" */
    char os[EV_UA_FIELD_MAX];      /* "os"   family */
    enum device_class device;      /* "dev"  desktop|mobile|tablet */
    char screen[8];                /* "scr"  mobile|tablet|laptop|desktop or "" */
    int scroll_depth;              /* "sd"   0..100, -1 = absent */
    int64_t engaged_ms;            /* "em"   >= 0, -1 = absent */
    bool interactive;              /* "ni"   1 = false (Plausible's i:false): a custom
                                      event that does not undo a bounce; default true */
    unsigned char paid;            /* "pd"   the page URL had an ad click id: 1 a search
                                      ad (EV_PAID_SEARCH), 2 a social ad; 0 none */
    char visitor[17];              /* "vh"   16 hex chars, "" when visitor_hash=off */
    char ip_truncated[46];         /* "ipt"  only when ip_keep=truncated, else "" */
    size_t nprops;
    struct event_prop props[EV_PROPS_MAX]; /* "p:<key>" = value */
};

/* Reset `ev` to an empty record (absent numbers = -1), every byte set. */
void event_record_init(struct event_record *ev);

/* The same record for every reader of this API, without zeroing ~14 KB:
 * every text field is emptied (its first byte), numbers and counts reset;
 * bytes after a field's NUL keep what they held. For records reused per
 * event on hot paths; use event_record_init where whole records are
 * compared byte for byte. */
void event_record_reset(struct event_record *ev);

/* Names used in the stream: "desktop", "mobile", "tablet", "bot", "unknown". */
const char *device_class_name(enum device_class d);
enum device_class device_class_parse(const char *name);

/* Screen class from a CSS pixel width: <576 mobile, <992 tablet,
 * <1440 laptop, else desktop; "" when width <= 0. */
const char *screen_class(long width);

/* Encoding to stream fields: fills argv/argvlen with alternating field
 * names and values for XADD (after the caller's own leading arguments).
 * Only non-empty fields are emitted. `scratch` (at least
 * EVENT_SCRATCH_BYTES) holds the number strings; argv points into `ev`
 * and `scratch`, so both must outlive the use of argv.
 * Returns the number of entries written (always even), at most
 * EVENT_MAX_ARGS; prop keys are written as "p:<key>" into scratch. */
#define EVENT_MAX_ARGS (2 * (26 + EV_PROPS_MAX))
#define EVENT_SCRATCH_BYTES (128 + EV_PROPS_MAX * (EV_PROP_KEY_MAX + 2))
size_t event_encode(const struct event_record *ev, const char **argv, size_t *argvlen,
                    char *scratch);

/* Packed form: the whole event in one stream field, EVENT_PACKED_FIELD,
 * so that Redis stores, and XREADGROUP returns, one field per entry instead
 * of up to EVENT_MAX_ARGS / 2 (docs/KEYS.md "Stream entries"). The value is
 * EVENT_PACKED_VERSION, then for each field of event_encode, in its order:
 * [u8 name length][name][value length, LEB128, at most 3 bytes][value].
 * Writes at most `cap` bytes to `buf` and returns the length, or 0 when it
 * does not fit (EVENT_PACKED_MAX always fits). */
#define EVENT_PACKED_FIELD "e"
#define EVENT_PACKED_VERSION '1'
#define EVENT_PACKED_MAX (sizeof(struct event_record) + 4 * EVENT_MAX_ARGS + 1)
size_t event_pack(const struct event_record *ev, char *buf, size_t cap);

/* Decoding from a stream entry's field/value pairs. Unknown fields are
 * ignored (forward compatibility); a field longer than its slot, a bad
 * number or a missing site/day/name makes it return false with a reason.
 * The field EVENT_PACKED_FIELD holds a whole packed event (event_pack). */
bool event_decode_field(struct event_record *ev, const char *field, size_t flen,
                        const char *value, size_t vlen, char *err, size_t errlen);
/* Decode a packed value (what event_decode_field does for the field
 * EVENT_PACKED_FIELD): every inner field through event_decode_field; a
 * truncated value, an unknown version or a nested packed field is an
 * error. */
bool event_decode_packed(struct event_record *ev, const char *value, size_t vlen, char *err,
                         size_t errlen);
bool event_decode_check(const struct event_record *ev, char *err, size_t errlen);

/* Batch form: many packed events in one stream entry, so that the collector
 * writes one entry per shard and delivery batch and the aggregator reads
 * thousands of events per XREADGROUP (docs/KEYS.md "Stream entries"). The
 * entry has one field, EVENT_BATCH_FIELD; its value is EVENT_BATCH_VERSION,
 * then for each event [length, LEB128, at most 3 bytes][event_pack bytes].
 * An entry with the field EVENT_PACKED_FIELD (or the old per-field layout)
 * is a batch of one: readers handle all three. */
#define EVENT_BATCH_FIELD "b"
#define EVENT_BATCH_VERSION '2'

/* Append the packed event pk[0..plen) to the batch value in buf, which
 * holds `used` bytes (0 for a new batch: the version byte is written
 * first). Returns the new length, or 0 when it does not fit in `cap` or
 * plen is 0 or too long (>= 2^21); buf is then unchanged up to `used`. */
size_t event_batch_append(char *buf, size_t cap, size_t used, const char *pk, size_t plen);

/* Cursor over the packed events of one batch value. */
struct event_batch_iter {
    const unsigned char *p, *end;
};

/* Start reading the batch value[0..vlen). Returns false with a reason
 * when the version byte is wrong or missing. */
bool event_batch_begin(struct event_batch_iter *it, const char *value, size_t vlen, char *err,
                       size_t errlen);

/* The next packed event of the batch: returns 1 and points *pk and *plen into
 * the value (pass them to event_decode_packed), 0 at the end, -1 with a
 * reason when the rest is truncated (the events before it stand). */
int event_batch_next(struct event_batch_iter *it, const char **pk, size_t *plen, char *err,
                     size_t errlen);

#endif
