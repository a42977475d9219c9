/* text_rule.h - the collector's rule for invisible and reordering
 * characters in what a client writes (docs/EVENTS.md, "Text rule").
 *
 * Text that reaches the stream and, from there, dashboards and CSV files
 * (page URLs, referrers, event names, prop keys and values, campaign
 * values) must not hold characters that are invisible or that change how
 * the text around them is shown:
 *   - C0 controls U+0000-U+001F and DEL U+007F,
 *   - C1 controls U+0080-U+009F,
 *   - bidirectional formatting: U+061C ALM, U+200E LRM, U+200F RLM,
 *     U+202A-U+202E (LRE, RLE, PDF, LRO, RLO), U+2066-U+2069 (LRI, RLI,
 *     FSI, PDI).
 * An event holding one in such a field is refused with 400 (the event
 * says something else than it shows); a campaign value holding one after
 * percent-decoding is dropped, like a malformed one. Percent-encoded
 * bytes in a path stay encoded text ("%E2%80%AE") and reorder nothing.
 *
 * Only answers yes or no; never copies, keeps or logs the text. */
#ifndef VEIL_TEXT_RULE_H
#define VEIL_TEXT_RULE_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) (UTF-8) holds a character the rule refuses. */
bool text_rule_refuses(const char *s, size_t len);

#endif
