/* ua.h - User-Agent parsing: browser family + major version, OS family,
 * device class and a bot flag, from uap-core's regexes.
 *
 * Rules come from uap-core's regexes.yaml (Debian: /usr/share/uap-core),
 * loaded once at start-up with libyaml and compiled with PCRE2 + JIT. They
 * are applied as uap-core's specification says: three ordered chains
 * (user_agent_parsers, os_parsers, device_parsers), the first matching
 * regex of a chain wins, `*_replacement` templates take $1..$9, results are
 * trimmed, `regex_flag: 'i'` makes a regex case-insensitive, and a chain
 * with no match (or an empty result) gives "Other".
 *
 * Matching is byte-oriented (PCRE2 without UTF), so invalid UTF-8, NUL and
 * any other bytes are safe; only the first UA_MATCH_MAX bytes of an agent
 * are looked at. Output fields are always NUL-terminated, valid UTF-8 with
 * no control characters (bytes that are not are replaced by '?'), cut at a
 * character boundary to fit.
 *
 * Device class and bot rule (first that applies):
 *   bot     - the agent is empty or blank; or uap's device family is
 *             "Spider"; or uap's browser family is "Spider", a headless
 *             browser (HeadlessChrome, PhantomJS) or an HTTP library or
 *             command-line client (curl, Wget, Python Requests,
 *             Go-http-client, okhttp, Java, ...; the list is in ua.c).
 *             uap-core itself calls curl a browser family, not a Spider;
 *             Veil counts it as a bot because a beacon from curl is never
 *             a person viewing a page.
 *   desktop - big screens: a TV or set-top OS (tvOS, GoogleTV, Roku,
 *             Chromecast, HbbTV sets...) or a TV marker in the agent
 *             (SmartTV, HbbTV, CrKey, AppleTV...).
 *   tablet  - device family iPad or Kindle*, "Generic Tablet", brand
 *             "Generic_Android_Tablet", OS "BlackBerry Tablet OS"; or
 *             "iPad" or "Tablet" (but not "Tablet PC") in the agent; or an
 *             Android agent without "Mobi" (Google's advice to sites).
 *   mobile  - "Mobi" in the agent (MDN's advice); device family iPhone,
 *             iPod, Apple Watch, "Generic Smartphone", "Generic Feature
 *             Phone" or brand "Generic_Android"; or a phone OS (iOS,
 *             Windows Phone, Symbian, KaiOS, BlackBerry OS, Firefox OS...).
 *   desktop - everything else (Windows, macOS, Linux, Chrome OS, unknown).
 *
 * Privacy: this module never logs, stores or returns the User-Agent; a
 * result holds only the derived fields below. The per-thread cache keeps
 * results in memory only, keyed by a secret-keyed hash of the agent (see
 * ua_cache.h), and is never written anywhere. */
#ifndef VEIL_UA_H
#define VEIL_UA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

/* Where Debian's uap-core package puts the rules. */
#define UA_REGEXES_DEFAULT "/usr/share/uap-core/regexes.yaml"

/* Only this many leading bytes of an agent are matched (and cached by). */
#define UA_MATCH_MAX 1024

#define UA_MAJOR_MAX 16

/* What the collector keeps of a User-Agent. */
struct ua_result {
    char browser[EV_UA_FIELD_MAX];     /* uap family, e.g. "Chrome", "Other" */
    char browser_major[UA_MAJOR_MAX];  /* e.g. "120", "" when unknown */
    char os[EV_UA_FIELD_MAX];          /* uap OS family, e.g. "Windows", "Other" */
    enum device_class device;          /* DEVICE_DESKTOP/MOBILE/TABLET/BOT */
    bool is_bot;                       /* true exactly when device == DEVICE_BOT */
};

/* The raw uap-core fields the result is derived from (tests, debugging). */
struct ua_fields {
    char family[EV_UA_FIELD_MAX];      /* user_agent_parsers family or "Other" */
    char major[UA_MAJOR_MAX];          /* "" when unset */
    char os[EV_UA_FIELD_MAX];          /* os_parsers family or "Other" */
    char device[EV_UA_FIELD_MAX];      /* device_parsers family or "Other" */
    char brand[EV_UA_FIELD_MAX];       /* device brand, "" when unset */
};

struct ua_rules;
struct ua_parser;

/* Load and compile uap-core's regexes.yaml at `path`. Returns the compiled,
 * immutable rules, shareable by any number of threads (each with its own
 * ua_parser), or NULL with a reason in `err` ("path:line: ...") when the
 * file cannot be read, is not uap-core's format, or a regex does not
 * compile. Aborts on OOM. Free with ua_rules_free() after every parser
 * using the rules has been freed. */
struct ua_rules *ua_rules_load(const char *path, char *err, size_t errlen);

/* Number of regexes per chain (any pointer may be NULL). */
void ua_rules_counts(const struct ua_rules *rules, size_t *browser, size_t *os,
                     size_t *device);

void ua_rules_free(struct ua_rules *rules);

/* A parser for one thread: PCRE2 match data, a JIT stack, pre-filter
 * scratch and an LRU cache of `cache_entries` results (0 disables the
 * cache). `rules` must outlive the parser. Aborts on OOM; returns NULL
 * only if the cache cannot be set up (libsodium unusable). */
struct ua_parser *ua_parser_new(const struct ua_rules *rules, size_t cache_entries);

void ua_parser_free(struct ua_parser *p);

/* Parse `ua[0..len)` (any bytes; `ua` may be NULL when len is 0) into *out.
 * Never fails: unknown parts come out as "Other" / "" / DEVICE_DESKTOP.
 * Looks in the cache first and stores misses. No allocation. */
void ua_parse(struct ua_parser *p, const char *ua, size_t len, struct ua_result *out);

/* Run the three uap-core chains on `ua[0..len)` (first UA_MATCH_MAX bytes)
 * and write the raw fields, bypassing the cache and the classification. */
void ua_parse_fields(struct ua_parser *p, const char *ua, size_t len, struct ua_fields *out);

/* Cache hits and misses of ua_parse() since the parser was made (with the
 * cache disabled every parse is a miss). Either pointer may be NULL. */
void ua_parser_stats(const struct ua_parser *p, uint64_t *hits, uint64_t *misses);

/* The literal pre-filter (ua_filter.h) is on by default; it never changes
 * a result. Turning it off is for tests and benchmarks only. */
void ua_parser_set_prefilter(struct ua_parser *p, bool on);

/* Regex runs that ended in a PCRE2 error (match or JIT stack limit) rather
 * than a match or no-match; such a regex is treated as not matching. */
uint64_t ua_parser_match_errors(const struct ua_parser *p);

#endif
