/* check.h - what the fuzz targets share (private to fuzz/): reporting a
 * broken invariant, text checks, and checks of parsers' rejection reasons.
 *
 * A broken check prints "fuzz <target>: invariant broken on <input>: ..."
 * and aborts; nothing here prints an input's bytes. */
#ifndef VEIL_FUZZ_CHECK_H
#define VEIL_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Report a broken invariant of `target` and abort. */
__attribute__((noreturn, format(printf, 2, 3))) void fuzz_broken(const char *target,
                                                                const char *fmt, ...);

/* The name given to fuzz_set_input_name(), or "the current input". */
const char *fuzz_input_name(void);

#define CHECK(target, cond)                                                             \
    do {                                                                                \
        if (!(cond))                                                                    \
            fuzz_broken((target), "%s (%s:%d)", #cond, __FILE__, __LINE__);             \
    } while (0)

#define CHECKF(target, cond, ...)                                                       \
    do {                                                                                \
        if (!(cond))                                                                    \
            fuzz_broken((target), __VA_ARGS__);                                         \
    } while (0)

/* True when the C string s ends inside its `size`-byte slot. */
bool fuzz_fits(const char *s, size_t size);

/* True when s[0..len) holds a byte below 0x20 or 0x7f. */
bool fuzz_has_ctl(const char *s, size_t len);

/* Valid UTF-8 without control characters. */
bool fuzz_clean_text(const char *s);

/* Reasons: parsers are given a REASON_BUF-byte buffer but told REASON_LEN;
 * the rest is a canary that must survive. */
#define REASON_BUF 160
#define REASON_LEN 128

/* Fill a reason buffer with the canary before a parse. */
void fuzz_reason_prepare(char *reason);

/* Abort unless the canary past REASON_LEN is intact. */
void fuzz_reason_canary(const char *target, const char *reason);

/* The distinct reasons a target produced, digits folded (counts, line
 * numbers). Reasons are fixed texts, so their number is bounded; a reason
 * quoting input would make fuzzing produce ever new ones. Zero-initialise. */
#define REASONS_MAX 400
struct reason_set {
    size_t n;
    uint64_t hash[REASONS_MAX];
};

/* Note a reason in the set: printable ASCII, and not one too many. */
void fuzz_reason_note(const char *target, struct reason_set *set, const char *reason);

/* A rejection: canary intact, terminated within REASON_LEN, non-empty, at
 * most 80 bytes, noted in the set. */
void fuzz_check_reason(const char *target, struct reason_set *set, const char *reason);

/* A parsed event: every field NUL-terminated within its slot, clean
 * UTF-8, within its documented range; sites and prop keys distinct
 * (target_event_parse.c; shared with the compat targets). */
struct raw_event;
void fuzz_check_raw_event(const char *target, const struct raw_event *ev);

/* What a target set up on first use, freed (fuzz_harness_free). */
void fuzz_ua_free(void);
void fuzz_config_free(void);
void fuzz_anon_free(void);

#endif
