/* url.h - page URL and referrer normalisation (privacy invariant P8).
 *
 * A page URL is reduced to its host and a path: the query string is dropped
 * except operator-allowlisted parameters, campaign parameters (utm_*) are
 * lifted into their own fields, and the fragment is dropped unless the site
 * uses hash routing. A referrer is reduced to its host. Nothing here may
 * keep a query parameter that is neither a campaign parameter nor
 * allowlisted, nor any part of a referrer but its host. */
#ifndef VEIL_URL_H
#define VEIL_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "event.h"

struct url_result {
    char host[EV_HOST_MAX];  /* lowercased (ASCII only), no userinfo, no port */
    char path[EV_PATH_MAX];  /* "/..." + "?kept=params" + "#fragment" (hash mode) */
    char utm_source[EV_UTM_MAX], utm_medium[EV_UTM_MAX], utm_campaign[EV_UTM_MAX],
        utm_term[EV_UTM_MAX], utm_content[EV_UTM_MAX];
};

/* Normalise the absolute http(s) URL url[0..len) into `out`.
 *
 * host: ASCII-lowercased, userinfo ("user:pass@") and port dropped, one
 * trailing dot dropped, a leading "www." kept (sites are matched by the
 * caller). No IDNA conversion: a UTF-8 host stays UTF-8, a punycode host
 * stays punycode.
 * path: as sent (no percent-decoding, no dot-segment collapsing); "/" when
 * empty. Then "?" and the allowlisted parameters (names matched
 * case-insensitively against `query_allowlist`, which may be NULL; an item
 * "*" keeps every parameter, for strip_query=no; kept byte-for-byte in
 * their original order), then, only when `hash_mode`, the
 * fragment up to its own '?' (a hash route's query is dropped like any
 * other). utm_source/medium/campaign/term/content are percent-decoded
 * ('+' is a space), cut to EV_UTM_MAX-1 bytes on a UTF-8 boundary and never
 * kept in the path, even when allowlisted; the first non-empty occurrence
 * wins. When utm_source is absent, "source" and then "ref" stand in for it
 * (Plausible does the same). A campaign value that is not valid UTF-8 or
 * holds control characters is ignored.
 *
 * Returns true on success: every field of `out` is a NUL-terminated string
 * and the bytes after its NUL are left as they were (copy a field by its
 * length, not by its size). Returns false, with a short reason that never
 * quotes the URL, when the URL is not http(s), has no or a malformed host or
 * port, holds control characters, or the host or path does not fit; `out`
 * is then unspecified. */
bool url_normalise(const char *url, size_t len, bool hash_mode,
                   const struct cfg_list *query_allowlist, struct url_result *out,
                   char *reason, size_t reasonlen);

/* The host of the absolute http(s) URL url[0..len), by the rules of
 * url_normalise, into out. Returns false (out = "") when the URL is not
 * http(s) or malformed. */
bool url_host(const char *url, size_t len, char out[EV_HOST_MAX]);

/* Percent-decode s[0..len) into dst, '+' as a space (form encoding), at
 * most `cap` bytes, not NUL-terminated. When dst fills up decoding stops
 * and *full is set (the input was longer than cap). Returns the number of
 * bytes written, or -1 on a malformed escape ("%", "%4", "%zz"). The output
 * may hold any byte, NUL included: callers validate it. */
long url_decode(const char *s, size_t len, char *dst, size_t cap, bool *full);

/* Reduce a referrer to its host: lowercased, a leading "www." stripped.
 * out is "" and the result true when the referrer is empty, is not an
 * http(s) URL (android-app://, about:blank...), or points at `page_host`
 * itself (a self-referral, compared ignoring "www." and ASCII case;
 * page_host may be NULL or "" to skip the check). Returns false, with out
 * "", only when an http(s) referrer is malformed (a host of EV_HOST_MAX bytes
 * or more counts, "www." included); callers just drop it. */
bool url_referrer_host(const char *referrer, size_t len, const char *page_host,
                       char out[EV_HOST_MAX]);

#endif
