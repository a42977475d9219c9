/* ua_filter.h - literal pre-filter for the User-Agent regex chains.
 *
 * Before a regex is run on a User-Agent, this module tells whether it could
 * possibly match: for every regex it extracts, at load time, a set of
 * literal strings one of which must occur in any text the regex matches
 * (e.g. "(Chrome)/(\d+)" needs "chrome"; "(Foo|Bar)/\d" needs "foo" or
 * "bar"). Of several such requirements it keeps the one that the agents of
 * today's common browsers meet least, so that on real traffic most regexes
 * are skipped. One pass over the (ASCII-lowercased) User-Agent marks which
 * literals occur; a regex none of whose literals occur is skipped. A regex
 * whose requirement cannot be proven (unknown syntax, an optional branch,
 * an alternation with an unconstrained arm) is always run.
 *
 * The filter is conservative by construction: it may let a regex through
 * that then fails to match, but it must never skip a regex that would
 * match, so results are identical with and without it. Literals are
 * compared case-insensitively (ASCII), which is a superset of both
 * case-sensitive and `regex_flag: 'i'` matching.
 *
 * It never stores or logs the User-Agent: a scan only sets bits in a
 * caller-owned bitmap. After ua_filter_finish() the filter is immutable and
 * may be shared by any number of threads. */
#ifndef VEIL_UA_FILTER_H
#define VEIL_UA_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ua_filter;

/* An empty filter. Aborts on OOM (start-up only). Free with
 * ua_filter_free(). */
struct ua_filter *ua_filter_new(void);

/* Register the PCRE2 pattern `regex[0..len)` and return its rule id
 * (0, 1, 2... in the order of calls). Must be called before
 * ua_filter_finish(). Patterns using syntax the extractor does not know are
 * accepted and simply never filtered. */
uint32_t ua_filter_add(struct ua_filter *f, const char *regex, size_t len);

/* Build the lookup index. After this the filter is read-only; no more
 * rules may be added. */
void ua_filter_finish(struct ua_filter *f);

/* Number of uint64_t words of scratch a caller must provide to
 * ua_filter_scan() (one per thread; no allocation happens in a scan). */
size_t ua_filter_words(const struct ua_filter *f);

/* Scan `ua[0..len)` (any bytes, including NUL and invalid UTF-8) and leave
 * in `scratch` (ua_filter_words() words, overwritten) the set of candidate
 * rules: those without a requirement and those one of whose literals
 * occurs. Test it with ua_filter_candidate(). */
void ua_filter_scan(const struct ua_filter *f, const char *ua, size_t len, uint64_t *scratch);

/* True when rule `rule` may match the text last scanned into `scratch`;
 * false means it certainly does not. (Inline: it runs per rule per parse.) */
static inline bool ua_filter_candidate(const uint64_t *scratch, uint32_t rule)
{
    return (scratch[rule >> 6] >> (rule & 63)) & 1u;
}

/* Describe rule `rule`'s requirement for tests and debugging: its literals
 * joined by '|' (e.g. "bot|spider"), or "" when it is always run. Returns
 * false if `out` is too small (then `out` holds a truncated prefix). */
bool ua_filter_describe(const struct ua_filter *f, uint32_t rule, char *out, size_t outlen);

/* Counts for logging at start-up: rules, rules with a requirement, and
 * distinct literals. Any pointer may be NULL. */
void ua_filter_counts(const struct ua_filter *f, size_t *rules, size_t *filtered,
                      size_t *literals);

void ua_filter_free(struct ua_filter *f);

#endif
