/* util.h - small bounded, checked helpers shared by both daemons
 * (memcached safe_strtoul style). No atoi/strcpy/sprintf anywhere else. */
#ifndef VEIL_UTIL_H
#define VEIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation for core structures: abort with a message on OOM.
 * Per-request code should use plain malloc and fail softly instead. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

/* Parse the whole of `s` as a base-10 integer within [min, max].
 * Returns true and writes *out on success; false on empty input, trailing
 * garbage, overflow or out-of-range (leaving *out untouched). */
bool safe_strtoll(const char *s, long long min, long long max, long long *out);

/* Same, for a non-NUL-terminated slice of `len` bytes. */
bool safe_strtoll_n(const char *s, size_t len, long long min, long long max,
                    long long *out);

/* Copy `len` bytes of `src` into `dst` of size `dstsize` and NUL-terminate.
 * Returns false (and writes an empty string) when it does not fit. */
bool str_copy(char *dst, size_t dstsize, const char *src, size_t len);

/* Bounded formatted write; returns false if truncated or on error. */
bool str_format(char *dst, size_t dstsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when `s[0..len)` is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF) and contains no NUL byte. */
bool utf8_valid(const char *s, size_t len);

/* Decode the well-formed UTF-8 sequence at s[0..len) into *cp. Returns its
 * length (1..4), or 0 when it is not one (overlong, surrogate, above
 * U+10FFFF, truncated, a stray continuation byte). NUL decodes as U+0000. */
size_t utf8_decode(const unsigned char *s, size_t len, unsigned *cp);

/* Value of one hex digit, or -1. */
int hex_digit_value(char c);

/* Write `v` in decimal at `out` (at most 20 bytes, no NUL) and return the
 * end. For hot paths where snprintf's cost shows. */
char *uint_to_dec(char *out, uint64_t v);

/* Case-insensitive ASCII prefix test on a slice. */
bool str_has_prefix_ci(const char *s, size_t len, const char *prefix);

/* Monotonic clock in milliseconds. */
uint64_t clock_ms(void);

/* UTC calendar day of `unix_seconds` as "YYYY-MM-DD" into out[11]. */
void utc_day(int64_t unix_seconds, char out[11]);

/* Split "host:port" or "[v6]:port" into host (NUL-terminated, brackets
 * removed) and port 1..65535. Returns true, or false when malformed. */
bool hostport_split(const char *s, char *host, size_t hostlen, int *port);

#endif
