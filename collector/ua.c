/* ua.c - User-Agent parsing with uap-core's regexes (see ua.h).
 *
 * Load: libyaml reads regexes.yaml into three chains; each regex is
 * compiled by PCRE2 (byte mode, no UTF: any input bytes are safe) and JIT
 * compiled, and registered with the literal pre-filter (ua_filter.h).
 * Parse: cache lookup (ua_cache.h); on a miss one pre-filter scan, then
 * each chain runs its regexes in order until the first match, and the
 * uap fields are turned into the collector's result.
 *
 * Never logs, stores or returns a User-Agent; nothing here allocates per
 * parse. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "ua.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "log.h"
#include "ua_cache.h"
#include "ua_filter.h"
#include "util.h"

/* Explicit PCRE2 limits: a pathological regex/agent pair gives up (and is
 * counted as a match error) instead of burning a core. uap-core's own
 * suites stay far below them. */
#define UA_MATCH_LIMIT   1000000u
#define UA_DEPTH_LIMIT   100000u
#define UA_HEAP_LIMIT_KB 4096u
#define UA_JIT_STACK_MIN (32u * 1024u)
#define UA_JIT_STACK_MAX (1024u * 1024u)

/* Scratch for one substituted value before trimming and fitting. */
#define UA_VALUE_MAX 256

enum chain { CHAIN_BROWSER, CHAIN_OS, CHAIN_DEVICE, CHAIN_COUNT };
enum slot { SLOT_FAMILY, SLOT_MAJOR, SLOT_BRAND, SLOT_COUNT };

static const char *const chain_key[CHAIN_COUNT] = {
    "user_agent_parsers", "os_parsers", "device_parsers"};

/* The replacement key filling each slot, per chain (NULL: slot unused). */
static const char *const slot_key[CHAIN_COUNT][SLOT_COUNT] = {
    {"family_replacement", "v1_replacement", NULL},
    {"os_replacement", NULL, NULL},
    {"device_replacement", NULL, "brand_replacement"},
};

/* The capture group filling a slot when there is no replacement (0: none;
 * uap-core gives brand only through brand_replacement). */
static const int slot_group[CHAIN_COUNT][SLOT_COUNT] = {
    {1, 2, 0},
    {1, 0, 0},
    {1, 0, 0},
};

struct ua_rule {
    pcre2_code *code;
    bool jit;
    uint32_t filter_id;
    char *repl[SLOT_COUNT]; /* NULL when absent or empty */
};

struct ua_rules {
    struct ua_rule *rule[CHAIN_COUNT];
    size_t n[CHAIN_COUNT], cap[CHAIN_COUNT];
    struct ua_filter *filter;
    uint32_t max_groups;
    size_t jit_failures;
};

struct ua_parser {
    const struct ua_rules *rules;
    pcre2_match_data *match_data;
    pcre2_match_context *match_ctx;
    pcre2_jit_stack *jit_stack;
    uint64_t *found;          /* pre-filter scratch: candidate rules */
    bool use_filter;
    struct ua_cache *cache;   /* NULL: caching disabled */
    uint64_t hits, misses, match_errors;
};

/* A successful match of one regex. */
struct match {
    const struct ua_rule *rule;
    const char *subject;
    const PCRE2_SIZE *ovector;
    int groups; /* 1 + highest group set */
};

static void *check_alloc(void *p)
{
    if (!p) {
        log_error("ua: out of memory");
        abort();
    }
    return p;
}

/* ---- loading ----------------------------------------------------------- */

static bool scalar_is(const yaml_node_t *n, const char *s)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
           memcmp(n->data.scalar.value, s, n->data.scalar.length) == 0;
}

static size_t node_line(const yaml_node_t *n)
{
    return n->start_mark.line + 1;
}

static int add_rule(struct ua_rules *rules, enum chain ch, yaml_document_t *doc,
                    yaml_node_t *item, const char *path, char *err, size_t errlen)
{
    if (item->type != YAML_MAPPING_NODE) {
        str_format(err, errlen, "%s:%zu: %s entry is not a mapping", path, node_line(item),
                   chain_key[ch]);
        return -1;
    }
    const yaml_node_t *regex = NULL;
    const yaml_node_t *repl[SLOT_COUNT] = {NULL};
    bool caseless = false;
    for (yaml_node_pair_t *pair = item->data.mapping.pairs.start;
         pair < item->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(doc, pair->value);
        if (!key || !value || key->type != YAML_SCALAR_NODE || value->type != YAML_SCALAR_NODE) {
            str_format(err, errlen, "%s:%zu: %s entry has a non-scalar field", path,
                       node_line(item), chain_key[ch]);
            return -1;
        }
        if (scalar_is(key, "regex")) {
            regex = value;
        } else if (scalar_is(key, "regex_flag")) {
            if (!scalar_is(value, "i")) {
                str_format(err, errlen, "%s:%zu: unknown regex_flag (only 'i' is known)", path,
                           node_line(value));
                return -1;
            }
            caseless = true;
        } else {
            for (int s = 0; s < SLOT_COUNT; s++)
                if (slot_key[ch][s] && scalar_is(key, slot_key[ch][s]))
                    repl[s] = value;
            /* other keys (minor versions, model...) are not needed */
        }
    }
    if (!regex || regex->data.scalar.length == 0) {
        str_format(err, errlen, "%s:%zu: %s entry without a regex", path, node_line(item),
                   chain_key[ch]);
        return -1;
    }

    int errcode;
    PCRE2_SIZE erroffset;
    uint32_t options = PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | (caseless ? PCRE2_CASELESS : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)regex->data.scalar.value,
                                     regex->data.scalar.length, options, &errcode, &erroffset,
                                     NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            str_copy((char *)msg, sizeof(msg), "unknown error", 13);
        str_format(err, errlen, "%s:%zu: %s regex does not compile at offset %zu: %s", path,
                   node_line(regex), chain_key[ch], (size_t)erroffset, (const char *)msg);
        return -1;
    }
    uint32_t groups = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups > rules->max_groups)
        rules->max_groups = groups;

    if (rules->n[ch] == rules->cap[ch]) {
        rules->cap[ch] = rules->cap[ch] ? rules->cap[ch] * 2 : 256;
        rules->rule[ch] = xrealloc(rules->rule[ch], rules->cap[ch] * sizeof(struct ua_rule));
    }
    struct ua_rule *r = &rules->rule[ch][rules->n[ch]++];
    memset(r, 0, sizeof(*r));
    r->code = code;
    r->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    if (!r->jit)
        rules->jit_failures++;
    r->filter_id = ua_filter_add(rules->filter, (const char *)regex->data.scalar.value,
                                 regex->data.scalar.length);
    if (rules->n[ch] > 1 && r->filter_id != rules->rule[ch][rules->n[ch] - 2].filter_id + 1) {
        /* next_candidate() relies on a chain's ids being consecutive */
        str_format(err, errlen, "%s:%zu: %s is split in two parts", path, node_line(item),
                   chain_key[ch]);
        return -1;
    }
    for (int s = 0; s < SLOT_COUNT; s++)
        if (repl[s] && repl[s]->data.scalar.length > 0)
            r->repl[s] = xstrdup((const char *)repl[s]->data.scalar.value);
    return 0;
}

static int load_document(struct ua_rules *rules, yaml_document_t *doc, const char *path,
                         char *err, size_t errlen)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        str_format(err, errlen, "%s: not a uap-core regexes file (no top-level mapping)", path);
        return -1;
    }
    bool seen[CHAIN_COUNT] = {false};
    for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        yaml_node_t *key = yaml_document_get_node(doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(doc, pair->value);
        for (int ch = 0; ch < CHAIN_COUNT; ch++) {
            if (!scalar_is(key, chain_key[ch]))
                continue;
            if (!value || value->type != YAML_SEQUENCE_NODE) {
                str_format(err, errlen, "%s:%zu: %s is not a list", path, node_line(key),
                           chain_key[ch]);
                return -1;
            }
            seen[ch] = true;
            for (yaml_node_item_t *it = value->data.sequence.items.start;
                 it < value->data.sequence.items.top; it++) {
                yaml_node_t *item = yaml_document_get_node(doc, *it);
                if (!item || add_rule(rules, (enum chain)ch, doc, item, path, err, errlen) < 0)
                    return -1;
            }
        }
    }
    for (int ch = 0; ch < CHAIN_COUNT; ch++) {
        if (!seen[ch] || rules->n[ch] == 0) {
            str_format(err, errlen, "%s: no %s", path, chain_key[ch]);
            return -1;
        }
    }
    return 0;
}

struct ua_rules *ua_rules_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        str_format(err, errlen, "%s: cannot open: %m", path);
        return NULL;
    }
    struct ua_rules *rules = xcalloc(1, sizeof(*rules));
    rules->filter = ua_filter_new();

    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        str_format(err, errlen, "%s: cannot initialise the YAML parser", path);
        fclose(fp);
        ua_rules_free(rules);
        return NULL;
    }
    yaml_parser_set_input_file(&parser, fp);
    if (!yaml_parser_load(&parser, &doc)) {
        str_format(err, errlen, "%s:%zu: YAML error: %s", path,
                   (size_t)parser.problem_mark.line + 1,
                   parser.problem ? parser.problem : "unknown");
    } else {
        rc = load_document(rules, &doc, path, err, errlen);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    if (rc < 0) {
        ua_rules_free(rules);
        return NULL;
    }
    ua_filter_finish(rules->filter);

    size_t nrules, nfiltered;
    ua_filter_counts(rules->filter, &nrules, &nfiltered, NULL);
    log_info("ua: %zu browser, %zu os, %zu device regexes from %s; %zu pre-filtered, "
             "%zu without JIT",
             rules->n[CHAIN_BROWSER], rules->n[CHAIN_OS], rules->n[CHAIN_DEVICE], path,
             nfiltered, rules->jit_failures);
    return rules;
}

void ua_rules_counts(const struct ua_rules *rules, size_t *browser, size_t *os, size_t *device)
{
    if (browser)
        *browser = rules->n[CHAIN_BROWSER];
    if (os)
        *os = rules->n[CHAIN_OS];
    if (device)
        *device = rules->n[CHAIN_DEVICE];
}

void ua_rules_free(struct ua_rules *rules)
{
    if (!rules)
        return;
    for (int ch = 0; ch < CHAIN_COUNT; ch++) {
        for (size_t i = 0; i < rules->n[ch]; i++) {
            pcre2_code_free(rules->rule[ch][i].code);
            for (int s = 0; s < SLOT_COUNT; s++)
                free(rules->rule[ch][i].repl[s]);
        }
        free(rules->rule[ch]);
    }
    ua_filter_free(rules->filter);
    free(rules);
}

/* ---- parser ------------------------------------------------------------ */

struct ua_parser *ua_parser_new(const struct ua_rules *rules, size_t cache_entries)
{
    struct ua_parser *p = xcalloc(1, sizeof(*p));
    p->rules = rules;
    p->use_filter = true;
    if (cache_entries > 0) {
        p->cache = ua_cache_new(cache_entries);
        if (!p->cache) {
            free(p);
            return NULL;
        }
    }
    p->match_data = check_alloc(pcre2_match_data_create(rules->max_groups + 1, NULL));
    p->match_ctx = check_alloc(pcre2_match_context_create(NULL));
    pcre2_set_match_limit(p->match_ctx, UA_MATCH_LIMIT);
    pcre2_set_depth_limit(p->match_ctx, UA_DEPTH_LIMIT);
    pcre2_set_heap_limit(p->match_ctx, UA_HEAP_LIMIT_KB);
    p->jit_stack = check_alloc(pcre2_jit_stack_create(UA_JIT_STACK_MIN, UA_JIT_STACK_MAX, NULL));
    pcre2_jit_stack_assign(p->match_ctx, NULL, p->jit_stack);
    p->found = xcalloc(ua_filter_words(rules->filter), sizeof(uint64_t));
    return p;
}

void ua_parser_free(struct ua_parser *p)
{
    if (!p)
        return;
    ua_cache_free(p->cache);
    pcre2_match_data_free(p->match_data);
    pcre2_match_context_free(p->match_ctx);
    pcre2_jit_stack_free(p->jit_stack);
    free(p->found);
    free(p);
}

void ua_parser_set_prefilter(struct ua_parser *p, bool on)
{
    p->use_filter = on;
}

void ua_parser_stats(const struct ua_parser *p, uint64_t *hits, uint64_t *misses)
{
    if (hits)
        *hits = p->hits;
    if (misses)
        *misses = p->misses;
}

uint64_t ua_parser_match_errors(const struct ua_parser *p)
{
    return p->match_errors;
}

/* ---- matching and substitution ----------------------------------------- */

/* Index of the first rule of chain `ch` at or after `i` that the
 * pre-filter left as a candidate, or the chain length. A chain's rules
 * have consecutive filter ids, so whole words of misses are skipped. */
static size_t next_candidate(const struct ua_parser *p, enum chain ch, size_t i)
{
    const struct ua_rules *rules = p->rules;
    size_t n = rules->n[ch];
    if (!p->use_filter || i >= n)
        return i;
    uint32_t base = rules->rule[ch][0].filter_id;
    while (i < n) {
        uint32_t id = base + (uint32_t)i;
        uint64_t bits = p->found[id >> 6] >> (id & 63);
        if (bits)
            return i + (size_t)__builtin_ctzll(bits);
        i += 64 - (id & 63);
    }
    return n;
}

/* Run chain `ch`; on the first match fill *m and return true. */
static bool run_chain(struct ua_parser *p, enum chain ch, const char *ua, size_t len,
                      struct match *m)
{
    const struct ua_rules *rules = p->rules;
    for (size_t i = next_candidate(p, ch, 0); i < rules->n[ch]; i = next_candidate(p, ch, i + 1)) {
        const struct ua_rule *r = &rules->rule[ch][i];
        int rc = r->jit ? pcre2_jit_match(r->code, (PCRE2_SPTR)ua, len, 0, 0, p->match_data,
                                          p->match_ctx)
                        : pcre2_match(r->code, (PCRE2_SPTR)ua, len, 0, 0, p->match_data,
                                      p->match_ctx);
        if (rc > 0) {
            m->rule = r;
            m->subject = ua;
            m->ovector = pcre2_get_ovector_pointer(p->match_data);
            m->groups = rc;
            return true;
        }
        if (rc != PCRE2_ERROR_NOMATCH)
            p->match_errors++;
    }
    return false;
}

/* Group `g` of the match, if it took part. */
static bool match_group(const struct match *m, int g, const char **s, size_t *len)
{
    if (g <= 0 || g >= m->groups)
        return false;
    PCRE2_SIZE start = m->ovector[2 * g], end = m->ovector[2 * g + 1];
    if (start == PCRE2_UNSET || end < start)
        return false;
    *s = m->subject + start;
    *len = end - start;
    return true;
}

static size_t append(char *buf, size_t n, const char *s, size_t len)
{
    size_t room = UA_VALUE_MAX - n;
    if (len > room)
        len = room;
    memcpy(buf + n, s, len);
    return n + len;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Length of the well-formed, printable UTF-8 character at s[0..len), or 0
 * when it is malformed or a control character. */
static size_t char_len(const char *s, size_t len)
{
    uint8_t b = (uint8_t)s[0];
    if (b < 0x80)
        return (b < 0x20 || b == 0x7f) ? 0 : 1;
    size_t n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (n == 0 || n > len || !utf8_valid(s, n))
        return 0;
    return n;
}

/* Copy `s[0..len)` into `out` (size outlen): whole characters only, bad
 * bytes as '?', trailing blanks dropped. */
static void field_set(char *out, size_t outlen, const char *s, size_t len)
{
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = char_len(s + i, len - i);
        const char *from = n ? s + i : "?";
        size_t w = n ? n : 1;
        if (o + w >= outlen)
            break;
        memcpy(out + o, from, w);
        o += w;
        i += n ? n : 1;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* The value of `slot` for match `m` of chain `ch`: the replacement with
 * $1..$9 substituted (an unset group gives ""), else the default group;
 * trimmed; "" when unset. */
static void slot_value(const struct match *m, enum chain ch, enum slot slot, char *out,
                       size_t outlen)
{
    char buf[UA_VALUE_MAX];
    size_t n = 0;
    const char *g;
    size_t glen;
    const char *tmpl = m->rule->repl[slot];
    if (tmpl) {
        for (const char *t = tmpl; *t; t++) {
            if (t[0] == '$' && t[1] >= '1' && t[1] <= '9') {
                if (match_group(m, t[1] - '0', &g, &glen))
                    n = append(buf, n, g, glen);
                t++;
            } else {
                n = append(buf, n, t, 1);
            }
        }
    } else if (match_group(m, slot_group[ch][slot], &g, &glen)) {
        n = append(buf, n, g, glen);
    }
    size_t start = 0;
    while (start < n && is_space(buf[start]))
        start++;
    while (n > start && is_space(buf[n - 1]))
        n--;
    field_set(out, outlen, buf + start, n - start);
}

void ua_parse_fields(struct ua_parser *p, const char *ua, size_t len, struct ua_fields *out)
{
    struct match m;
    if (!ua || len == 0) {
        ua = "";
        len = 0;
    }
    if (len > UA_MATCH_MAX)
        len = UA_MATCH_MAX;
    memset(out, 0, sizeof(*out));
    if (p->use_filter)
        ua_filter_scan(p->rules->filter, ua, len, p->found);

    if (run_chain(p, CHAIN_BROWSER, ua, len, &m)) {
        slot_value(&m, CHAIN_BROWSER, SLOT_FAMILY, out->family, sizeof(out->family));
        slot_value(&m, CHAIN_BROWSER, SLOT_MAJOR, out->major, sizeof(out->major));
    }
    if (run_chain(p, CHAIN_OS, ua, len, &m))
        slot_value(&m, CHAIN_OS, SLOT_FAMILY, out->os, sizeof(out->os));
    if (run_chain(p, CHAIN_DEVICE, ua, len, &m)) {
        slot_value(&m, CHAIN_DEVICE, SLOT_FAMILY, out->device, sizeof(out->device));
        slot_value(&m, CHAIN_DEVICE, SLOT_BRAND, out->brand, sizeof(out->brand));
    }
    if (!out->family[0])
        str_copy(out->family, sizeof(out->family), "Other", 5);
    if (!out->os[0])
        str_copy(out->os, sizeof(out->os), "Other", 5);
    if (!out->device[0])
        str_copy(out->device, sizeof(out->device), "Other", 5);
}

/* ---- classification ---------------------------------------------------- */

/* Browser families that are not people: headless browsers and HTTP
 * libraries / command-line clients (uap-core names). */
static const char *const bot_families[] = {
    "Spider", "HeadlessChrome", "PhantomJS",
    "curl", "Wget", "wget2", "libwww-perl", "PycURL", "urlgrabber", "aria2", "Axel",
    "lftp", "Python Requests", "Python-urllib", "Python aiohttp", "Go-http-client",
    "Apache-HttpClient", "Google-HTTP-Java-Client", "okhttp", "Java", "axios", "got",
    "PostmanRuntime", "insomnia", "scalaj-http", "reqwest", "HTTPClient", "akka-http",
    "ReactorNetty", "Jersey", "Vert.x-WebClient", "Apache-CXF", "go-resty", "AHC",
    "Debian APT-HTTP", "Ubuntu APT-HTTP", "libcurl-agent", "WinHTTP",
};

/* Operating systems of TVs and set-top boxes (counted as desktop). */
static const char *const big_screen_os[] = {
    "tvOS", "ATV OS X", "GoogleTV", "Roku", "Chromecast", "FireHbbTV", "WebTV", "Web0S",
    "Samsung", "LG", "Sony", "Panasonic", "Philips",
};
/* TV markers; all but the last two contain "TV", which is looked for first. */
static const char *const tv_markers[] = {
    "SmartTV", "SMART-TV", "Smart-TV", "HbbTV", "GoogleTV", "Android TV", "AndroidTV", "AppleTV",
};

static const char *const phone_os[] = {
    "iOS", "Windows Phone", "Windows Mobile", "Symbian OS", "Symbian^3", "Symbian^3 Anna",
    "Symbian^3 Belle", "KaiOS", "BlackBerry OS", "Firefox OS", "Bada", "Brew MP", "BREW",
    "Nokia Series 40", "Nokia Series 30 Plus", "Sailfish", "MeeGo", "Maemo", "WatchOS",
    "webOS",
};
static const char *const phone_devices[] = {
    "iPhone", "iPod", "Apple Watch", "Generic Smartphone", "Generic Feature Phone",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static bool contains(const char *ua, size_t len, const char *needle)
{
    return memmem(ua, len, needle, strlen(needle)) != NULL;
}

static bool contains_any(const char *ua, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (contains(ua, len, list[i]))
            return true;
    return false;
}

static bool says_tv(const char *ua, size_t len)
{
    if (contains(ua, len, "TV") && contains_any(ua, len, tv_markers, ARRAY_LEN(tv_markers)))
        return true;
    return contains(ua, len, "CrKey") || contains(ua, len, "BRAVIA");
}

static bool is_blank(const char *ua, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space(ua[i]))
            return false;
    return true;
}

/* "Tablet" somewhere in the agent, not as Windows' "Tablet PC". */
static bool says_tablet(const char *ua, size_t len)
{
    const char *s = ua, *end = ua + len;
    while (s < end) {
        const char *hit = memmem(s, (size_t)(end - s), "Tablet", 6);
        if (!hit)
            return false;
        if (!(end - hit >= 9 && memcmp(hit + 6, " PC", 3) == 0))
            return true;
        s = hit + 6;
    }
    return false;
}

static enum device_class classify(const char *ua, size_t len, const struct ua_fields *f)
{
    if (is_blank(ua, len) || strcmp(f->device, "Spider") == 0 ||
        in_list(f->family, bot_families, ARRAY_LEN(bot_families)))
        return DEVICE_BOT;
    if (in_list(f->os, big_screen_os, ARRAY_LEN(big_screen_os)) || says_tv(ua, len))
        return DEVICE_DESKTOP;
    bool mobi = contains(ua, len, "Mobi");
    if (strncmp(f->device, "iPad", 4) == 0 || strncmp(f->device, "Kindle", 6) == 0 ||
        strcmp(f->device, "Generic Tablet") == 0 ||
        strcmp(f->brand, "Generic_Android_Tablet") == 0 ||
        strcmp(f->os, "BlackBerry Tablet OS") == 0 || contains(ua, len, "iPad") ||
        says_tablet(ua, len) ||
        (!mobi && (strcmp(f->os, "Android") == 0 || contains(ua, len, "Android"))))
        return DEVICE_TABLET;
    if (mobi || in_list(f->device, phone_devices, ARRAY_LEN(phone_devices)) ||
        strcmp(f->brand, "Generic_Android") == 0 ||
        in_list(f->os, phone_os, ARRAY_LEN(phone_os)))
        return DEVICE_MOBILE;
    return DEVICE_DESKTOP;
}

void ua_parse(struct ua_parser *p, const char *ua, size_t len, struct ua_result *out)
{
    struct ua_cache_key key;
    if (!ua || len == 0) {
        ua = "";
        len = 0;
    }
    if (len > UA_MATCH_MAX)
        len = UA_MATCH_MAX;
    if (p->cache) {
        ua_cache_key_of(p->cache, ua, len, &key);
        if (ua_cache_get(p->cache, &key, out)) {
            p->hits++;
            return;
        }
    }
    p->misses++;

    struct ua_fields f;
    ua_parse_fields(p, ua, len, &f);
    memset(out, 0, sizeof(*out));
    str_copy(out->browser, sizeof(out->browser), f.family, strlen(f.family));
    str_copy(out->browser_major, sizeof(out->browser_major), f.major, strlen(f.major));
    str_copy(out->os, sizeof(out->os), f.os, strlen(f.os));
    out->device = classify(ua, len, &f);
    out->is_bot = out->device == DEVICE_BOT;
    if (p->cache)
        ua_cache_put(p->cache, &key, out);
}
