/* harness.h - the fuzz targets' bodies: one function per parser that runs
 * one input through it and checks what must hold for every input
 * (fuzz/target_<name>.c; shared checks in fuzz/check.c).
 *
 * The libFuzzer entry points (fuzz/fuzz_<target>.c) and the regression
 * replay (tests/unit/test_fuzz_regressions.c) both call these, so an input
 * that once broke an invariant is replayed through exactly the same checks.
 * A broken invariant prints one line naming the target, the check and the
 * input (see fuzz_set_input_name) to stderr and aborts; a memory error is
 * left to the sanitizers. The harness never prints an input's bytes. */
#ifndef VEIL_FUZZ_HARNESS_H
#define VEIL_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 (libFuzzer's convention) or aborts.
 *
 * event_parse_json   the input is a POST /api/event body.
 * event_parse_query  the input is a pixel query string (after '?').
 * url                byte 0 picks the mode (bit 0 hash_mode, bits 1-2 the
 *                    query allowlist: none, empty, named, named + "*"); the
 *                    rest is a page URL and, again, a referrer.
 * ua                 the input is a User-Agent.
 * config             the input is a config file, loaded over the
 *                    collector's table and a table with every option type;
 *                    its lines are also tried as command-line arguments.
 * event_codec        the input is a stream entry: field, value, field,
 *                    value... separated by NUL bytes.
 * anon               byte 0 picks the peer, the header (X-Forwarded-For or
 *                    Forwarded) and truncation prefixes; the rest is an
 *                    address, and also the client's part of a header, a
 *                    newline, the proxies' part.
 * httpd_parse        byte 0 picks how the bytes arrive (whole, one byte per
 *                    read, or cut at up to 16 points); the rest is what a
 *                    client sends over one connection.
 * compat_umami       the input is a POST /api/send body (Umami's tracker).
 * compat_matomo      byte 0 even: the rest is one Matomo request's
 *                    parameters; odd: a bulk body {"requests":[...]}.
 * rcluster           byte 0 picks the parser: the `redis` address list, a
 *                    MOVED/ASK error, a CLUSTER SLOTS reply as RESP bytes;
 *                    every input is also a key for rc_keyslot.
 * checkpoint         the input is a value of the checkpoint hash
 *                    veil:{s}:sessions (an open visit, with its rows).
 * api_filter         byte 0 even: the rest is v1's `filters=` (decoded);
 *                    odd: v2's JSON `filters` array. */
int fuzz_event_parse_json(const uint8_t *data, size_t size);
int fuzz_event_parse_query(const uint8_t *data, size_t size);
int fuzz_url(const uint8_t *data, size_t size);
int fuzz_ua(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_event_codec(const uint8_t *data, size_t size);
int fuzz_anon(const uint8_t *data, size_t size);
int fuzz_httpd_parse(const uint8_t *data, size_t size);
int fuzz_compat_umami(const uint8_t *data, size_t size);
int fuzz_compat_matomo(const uint8_t *data, size_t size);
int fuzz_rcluster(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);
int fuzz_api_filter(const uint8_t *data, size_t size);

/* Every target by name (the name of its corpus and regressions
 * directories); ends with a row whose name is NULL. */
struct fuzz_target {
    const char *name;
    int (*run)(const uint8_t *data, size_t size);
};
extern const struct fuzz_target fuzz_targets[];

/* Name the input being run, for failure messages (the replay passes file
 * paths; NULL means "the current input"). The string must outlive the run. */
void fuzz_set_input_name(const char *name);

/* Free what the targets set up lazily on first use (the UA rules and
 * parsers, the config file descriptor). Optional: for leak checkers. */
void fuzz_harness_free(void);

/* libFuzzer's entry point, defined once per fuzz_<target>.c. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
