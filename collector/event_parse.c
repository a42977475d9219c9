/* event_parse.c - read what Veil's and Plausible's trackers send (the
 * POST /api/event JSON body and the pixel's query string) into a struct
 * raw_event; the rules of a valid event are raw_event.c's, the JSON tokens
 * json_scan.c's.
 *
 * It must never echo input in a reason (reasons go back to the client as
 * the 400 body and are counted by text), never allocate, never recurse, and
 * never accept anything the schema does not allow for a known member.
 *
 * Why a hand-written JSON reader and not cJSON: the schema is flat (one
 * object; one nested object of scalars for props), so a strict reader is
 * small, and it is both faster and stricter than building a cJSON tree: no
 * allocation per member, numbers are checked as written (so 1.0 and 1e3
 * are not integers and 2^53+1 is not silently rounded), keys given twice
 * are seen, and nesting is bounded by the grammar itself: a prop value
 * that is a container may hold scalars only, and so may an unknown member,
 * so "[[[[..." is rejected at its second or third byte.
 *
 * Plausible compatibility (docs/MIGRATE-PLAUSIBLE.md): every tracker
 * version's member names; props as an object or as a JSON string (legacy
 * plausible-tracker and the Nuxt module's fork send a string); more than
 * 30 props, nested or blank prop values are dropped, not refused, as
 * Plausible's ingestion drops them; "d" may list several sites; i, v and
 * $ are read and dropped. In the pixel query, props are "p.<key>=<value>"
 * (not a JSON object: the pixel is for pages without script). */
#include "event_parse.h"

#include <string.h>

#include "json_scan.h"
#include "url.h"
#include "util.h"

enum field_id { F_NAME, F_URL, F_DOMAIN, F_REFERRER, F_WIDTH, F_HASH, F_PROPS, F_SCROLL,
                F_ENGAGED, F_INTERACTIVE, F_VERSION, F_REVENUE, F_UNKNOWN };

/* Canonical names, used in reasons (never the name the client sent). */
static const char *const field_names[] = {"n", "u", "d", "r", "w", "h",
                                          "p", "sd", "e", "i", "v", "$"};

static const char *const field_types[] = {
    "must be a string",  "must be a string",   "must be a string",
    "must be a string",  "must be an integer", "must be 0, 1 or a boolean",
    "must be an object", "must be an integer", "must be an integer",
    "must be a boolean", "must be a scalar",   "must be an object",
};

/* Searched in order: the short names trackers send come first. */
#define KEY(k, id) {k, sizeof(k) - 1, id}
static const struct {
    const char *key;
    size_t len;
    enum field_id id;
} field_keys[] = {
    KEY("n", F_NAME),       KEY("u", F_URL),           KEY("d", F_DOMAIN),  KEY("r", F_REFERRER),
    KEY("w", F_WIDTH),      KEY("e", F_ENGAGED),       KEY("sd", F_SCROLL), KEY("p", F_PROPS),
    KEY("h", F_HASH),       KEY("v", F_VERSION),       KEY("i", F_INTERACTIVE),
    KEY("$", F_REVENUE),    KEY("name", F_NAME),       KEY("url", F_URL),   KEY("domain", F_DOMAIN),
    KEY("referrer", F_REFERRER), KEY("screen_width", F_WIDTH), KEY("props", F_PROPS),
    KEY("m", F_PROPS),      KEY("meta", F_PROPS),      KEY("hashMode", F_HASH),
    KEY("interactive", F_INTERACTIVE), KEY("revenue", F_REVENUE),
};

/* What has been seen, where it goes. */
struct ctx {
    struct raw_event *out;
    unsigned seen; /* bit per enum field_id */
    char *reason;
    size_t reasonlen;
};

/* Big enough that any value longer than every limit is still measured. */
#define VALUE_BUF (EVENT_URL_MAX + 1)
#define KEY_BUF 80

static bool fail(struct ctx *c, const char *why)
{
    if (c->reason != NULL && c->reasonlen > 0)
        str_copy(c->reason, c->reasonlen, why, strnlen(why, c->reasonlen - 1));
    return false;
}

static bool fail_field(struct ctx *c, enum field_id id, const char *why)
{
    if (c->reason != NULL && c->reasonlen > 0 &&
        !str_format(c->reason, c->reasonlen, "%s: %s", field_names[id], why))
        return fail(c, why);
    return false;
}

static enum field_id field_lookup(const char *key, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(field_keys); i++)
        if (field_keys[i].len == len && field_keys[i].key[0] == key[0] &&
            memcmp(field_keys[i].key, key, len) == 0)
            return field_keys[i].id;
    return F_UNKNOWN;
}

/* ---- applying members (both front ends) --------------------------------- */

static bool mark_seen(struct ctx *c, enum field_id id)
{
    if (id == F_UNKNOWN)
        return true;
    if (c->seen & (1u << id)) {
        char why[32];
        str_format(why, sizeof why, "duplicate field %s", field_names[id]);
        return fail(c, why);
    }
    c->seen |= 1u << id;
    return true;
}

static bool is_text(const struct json_value *v)
{
    return v->kind == JSON_STRING || v->kind == JSON_TEXT;
}

static bool is_integer_text(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool get_int(struct ctx *c, enum field_id id, const struct json_value *v, long long min,
                    long long max, long long *out)
{
    bool integer = (v->kind == JSON_NUMBER && v->integer) ||
                   (v->kind == JSON_TEXT && is_integer_text(v->s, v->len));
    if (!integer)
        return fail_field(c, id, field_types[id]);
    if (!safe_strtoll_n(v->s, v->len, min, max, out))
        return fail_field(c, id, "out of range");
    return true;
}

/* true/false as JSON literals, or "true"/"false"/"1"/"0" as query text
 * (and 1/0 as JSON numbers when `numbers`). -1: neither. */
static int get_bool(const struct json_value *v, bool numbers)
{
    const char *s = v->s;
    size_t n = v->len;
    switch (v->kind) {
    case JSON_FALSE:
        return 0;
    case JSON_TRUE:
        return 1;
    case JSON_NUMBER:
        if (!numbers)
            return -1;
        /* fall through */
    case JSON_TEXT:
        if ((n == 1 && s[0] == '1') || (v->kind == JSON_TEXT && n == 4 && !memcmp(s, "true", 4)))
            return 1;
        if ((n == 1 && s[0] == '0') || (v->kind == JSON_TEXT && n == 5 && !memcmp(s, "false", 5)))
            return 0;
        return -1;
    case JSON_STRING:
    case JSON_NULL:
        break;
    }
    return -1;
}

/* Apply one top-level member's scalar value. */
static bool apply_value(struct ctx *c, enum field_id id, struct json_value *v)
{
    struct raw_event *out = c->out;
    const char *name = field_names[id < F_UNKNOWN ? id : 0];
    long long num;
    int flag;

    if (!mark_seen(c, id))
        return false;
    /* null means absent for every optional member; in the query every
     * value is text, and an empty one means absent too. */
    if (id != F_NAME && id != F_URL &&
        (v->kind == JSON_NULL || (v->kind == JSON_TEXT && v->len == 0)))
        return true;

    switch (id) {
    case F_NAME:
        /* Plausible takes an integer name as its text (404 tracking) */
        if (!is_text(v) && !(v->kind == JSON_NUMBER && v->integer))
            return fail_field(c, id, field_types[id]);
        return raw_event_set_name(out, name, v->s, v->len, c->reason, c->reasonlen);
    case F_URL:
        if (!is_text(v))
            return fail_field(c, id, field_types[id]);
        return raw_event_set_url(out, name, v->s, v->len, c->reason, c->reasonlen);
    case F_DOMAIN:
        if (!is_text(v))
            return fail_field(c, id, field_types[id]);
        if (v->len >= VALUE_BUF)
            return fail_field(c, id, "too long");
        return raw_event_set_domains(out, name, v->s, v->len, c->reason, c->reasonlen);
    case F_REFERRER:
        if (!is_text(v))
            return fail_field(c, id, field_types[id]);
        return raw_event_set_referrer(out, name, v->s, v->len, c->reason, c->reasonlen);
    case F_WIDTH:
        if (!get_int(c, id, v, 0, EVENT_SCREEN_MAX, &num))
            return false;
        out->screen_width = (long)num;
        return true;
    case F_HASH:
        if ((flag = get_bool(v, true)) < 0)
            return fail_field(c, id, field_types[id]);
        out->hash_mode = flag == 1;
        return true;
    case F_PROPS:
    case F_REVENUE:
        return fail_field(c, id, field_types[id]);
    case F_SCROLL:
        if (!get_int(c, id, v, 0, 100, &num))
            return false;
        out->scroll_depth = (int)num;
        return true;
    case F_ENGAGED:
        if (!get_int(c, id, v, 0, EVENT_ENGAGED_MAX, &num))
            return false;
        out->engaged_ms = num;
        return true;
    case F_INTERACTIVE:
        if ((flag = get_bool(v, false)) < 0)
            return fail_field(c, id, field_types[id]);
        out->interactive = flag == 1;
        return true;
    case F_VERSION:
        return true; /* the tracker's version: any scalar, not kept */
    case F_UNKNOWN:
        break;
    }
    return true;
}

/* Add one prop whose value is a scalar; null is dropped like Plausible's
 * blank values. Keys and values are measured in full (klen, v->len) even
 * when their buffers hold less. */
static bool add_prop(struct ctx *c, const char *key, size_t klen, size_t kcap,
                     const struct json_value *v, size_t vcap)
{
    const char *text = v->s;
    size_t tlen = v->len;
    switch (v->kind) {
    case JSON_NULL:
        c->out->props_dropped++;
        return true;
    case JSON_TRUE:
        text = "true";
        tlen = 4;
        break;
    case JSON_FALSE:
        text = "false";
        tlen = 5;
        break;
    case JSON_STRING:
    case JSON_TEXT:
        if (tlen > vcap)
            return fail(c, "p: value too long");
        break;
    case JSON_NUMBER:
        break;
    }
    if (klen > kcap)
        return fail(c, "p: key too long");
    return raw_event_add_prop(c->out, "p", key, klen, text, tlen, c->reason, c->reasonlen);
}

/* The last checks; "pageleave", what Plausible's scripts of late 2024 sent
 * when a page was left (with its scroll depth), is read as what replaced
 * it, "engagement": a measurement, not an event. */
static bool finish(struct raw_event *out, char *reason, size_t reasonlen)
{
    if (strcmp(out->name, "pageleave") == 0)
        memcpy(out->name, "engagement", sizeof "engagement");
    return raw_event_finish(out, "n", "u", "d", reason, reasonlen);
}

/* ---- JSON -------------------------------------------------------------- */

/* The props object at j->p (on its '{'). A member that is itself an array
 * or object (of scalars) is dropped, as Plausible drops it. */
static bool json_props(struct json_cursor *j, struct ctx *c, char *buf)
{
    bool more;
    if (!json_open(j, '{', &more))
        return false;
    while (more) {
        char key[KEY_BUF];
        size_t klen;
        struct json_value v;
        if (!json_key(j, key, sizeof key, &klen))
            return false;
        if (json_is_container(j)) {
            if (!json_skip_container(j))
                return false;
            c->out->props_dropped++;
        } else if (!json_scalar(j, &v, buf, VALUE_BUF) ||
                   !add_prop(c, key, klen, sizeof key, &v, VALUE_BUF)) {
            return false;
        }
        if (!json_next(j, '}', &more))
            return false;
    }
    return true;
}

/* p as a string holding a JSON object (legacy plausible-tracker). A string
 * that holds no object (null, "", a number) leaves no props, as in
 * Plausible; one that is not JSON at all is refused. */
static bool json_props_string(struct json_cursor *j, struct ctx *c, char *buf)
{
    char text[EVENT_PROPS_TEXT_MAX];
    size_t len;
    if (!mark_seen(c, F_PROPS) || !json_string(j, text, sizeof text, &len))
        return false;
    if (len > sizeof text)
        return fail(c, "p: too long");
    struct json_cursor in = {text, text + len, c->reason, c->reasonlen};
    json_ws(&in);
    if (!json_peek(&in, '{'))
        return true;
    if (json_props(&in, c, buf) && json_at_end(&in))
        return true;
    if (c->reason != NULL && strncmp(c->reason, "p: ", 3) != 0)
        fail(c, "p: invalid JSON in string");
    return false;
}

static bool json_member(struct json_cursor *j, struct ctx *c, char *buf)
{
    char key[KEY_BUF];
    size_t klen;
    struct json_value v;

    if (!json_key(j, key, sizeof key, &klen))
        return false;
    enum field_id id = klen <= sizeof key ? field_lookup(key, klen) : F_UNKNOWN;
    if (json_is_container(j)) {
        if (id == F_UNKNOWN)
            return json_skip_container(j);
        if (!mark_seen(c, id))
            return false;
        if (id == F_PROPS && json_peek(j, '{'))
            return json_props(j, c, buf);
        if (id == F_REVENUE && json_peek(j, '{'))
            return json_skip_container(j); /* revenue is not kept */
        return fail_field(c, id, field_types[id]);
    }
    if (id == F_PROPS && json_peek(j, '"'))
        return json_props_string(j, c, buf);
    if (!json_scalar(j, &v, buf, VALUE_BUF))
        return false;
    return apply_value(c, id, &v);
}

bool event_parse_json(const char *body, size_t len, struct raw_event *out, char *reason,
                      size_t reasonlen)
{
    struct ctx c = {out, 0, reason, reasonlen};
    struct json_cursor j = {body, body + len, reason, reasonlen};
    char buf[VALUE_BUF];
    size_t members = 0;
    bool more;

    raw_event_reset(out);
    if (len == 0)
        return fail(&c, "empty body");
    if (!json_body_ok(&j, body, len))
        return false;
    json_ws(&j);
    if (!json_peek(&j, '{'))
        return fail(&c, j.p == j.end ? "empty body" : "body is not a JSON object");
    if (!json_open(&j, '{', &more))
        return false;
    while (more) {
        if (++members > EVENT_FIELDS_MAX)
            return fail(&c, "too many fields");
        if (!json_member(&j, &c, buf) || !json_next(&j, '}', &more))
            return false;
    }
    if (!json_at_end(&j))
        return false;
    return finish(out, reason, reasonlen);
}

/* ---- pixel query ------------------------------------------------------- */

/* Decode a query value into buf; a value that does not fit is too long for
 * every member. Returns false with the reason set. */
static bool query_value(struct ctx *c, const char *s, size_t len, char *buf,
                        struct json_value *v, const char *too_long)
{
    bool full;
    long n = url_decode(s, len, buf, VALUE_BUF, &full);
    if (n < 0)
        return fail(c, "bad percent-encoding");
    if (full)
        return fail(c, too_long);
    if (!utf8_valid(buf, (size_t)n))
        return fail(c, memchr(buf, '\0', (size_t)n) ? "NUL byte in query" : "invalid UTF-8");
    v->kind = JSON_TEXT;
    v->s = buf;
    v->len = (size_t)n;
    v->integer = false;
    return true;
}

static bool query_param(struct ctx *c, const char *param, size_t len, char *buf)
{
    const char *eq = memchr(param, '=', len);
    size_t name_len = eq ? (size_t)(eq - param) : len;
    const char *raw_value = eq ? eq + 1 : param + len;
    size_t raw_len = eq ? len - name_len - 1 : 0;
    char name[KEY_BUF];
    struct json_value v;
    bool full;

    long n = url_decode(param, name_len, name, sizeof name, &full);
    if (n < 0)
        return fail(c, "bad percent-encoding");
    if (!utf8_valid(name, (size_t)n))
        return fail(c, memchr(name, '\0', (size_t)n) ? "NUL byte in query" : "invalid UTF-8");
    if (n >= 2 && name[0] == 'p' && name[1] == '.') {
        if (full)
            return fail(c, "p: key too long");
        return query_value(c, raw_value, raw_len, buf, &v, "p: value too long") &&
               add_prop(c, name + 2, (size_t)n - 2, sizeof name, &v, VALUE_BUF);
    }
    enum field_id id = full ? F_UNKNOWN : field_lookup(name, (size_t)n);
    if (id == F_UNKNOWN)
        return true;
    if (id == F_PROPS)
        return fail(c, "p: expected p.<key>=<value>");
    char too_long[16];
    str_format(too_long, sizeof too_long, "%s: too long", field_names[id]);
    return query_value(c, raw_value, raw_len, buf, &v, too_long) && apply_value(c, id, &v);
}

bool event_parse_query(const char *query, size_t len, struct raw_event *out, char *reason,
                       size_t reasonlen)
{
    struct ctx c = {out, 0, reason, reasonlen};
    char buf[VALUE_BUF];
    size_t params = 0;

    raw_event_reset(out);
    if (len == 0)
        return fail(&c, "empty query");
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *param_end = amp ? amp : end;
        if (param_end > p) {
            if (++params > EVENT_FIELDS_MAX)
                return fail(&c, "too many fields");
            if (!query_param(&c, p, (size_t)(param_end - p), buf))
                return false;
        }
        p = param_end + 1;
    }
    return finish(out, reason, reasonlen);
}
