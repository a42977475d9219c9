/* check.c - reporting broken invariants and the checks every fuzz target
 * shares (see check.h). Never prints an input's bytes. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "util.h"

#define CANARY 0x5a

/* ---- failing ----------------------------------------------------------- */

static const char *input_name;

void fuzz_set_input_name(const char *name)
{
    input_name = name;
}

const char *fuzz_input_name(void)
{
    return input_name ? input_name : "the current input";
}

void fuzz_broken(const char *target, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz %s: invariant broken on %s: ", target, fuzz_input_name());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* ---- text -------------------------------------------------------------- */

bool fuzz_fits(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

bool fuzz_has_ctl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

bool fuzz_clean_text(const char *s)
{
    size_t len = strlen(s);
    return utf8_valid(s, len) && !fuzz_has_ctl(s, len);
}

/* ---- reasons ----------------------------------------------------------- */

void fuzz_reason_prepare(char *reason)
{
    memset(reason, CANARY, REASON_BUF);
}

void fuzz_reason_canary(const char *target, const char *reason)
{
    for (size_t i = REASON_LEN; i < REASON_BUF; i++)
        CHECKF(target, (unsigned char)reason[i] == CANARY,
               "a reason was written past the length it was given");
}

void fuzz_reason_note(const char *target, struct reason_set *set, const char *reason)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = reason; *p; p++) {
        unsigned char c = (unsigned char)*p;
        CHECKF(target, c >= 0x20 && c < 0x7f, "reason holds a non-printable byte");
        if (c >= '0' && c <= '9') {
            while (p[1] >= '0' && p[1] <= '9')
                p++;
            c = '#';
        }
        h = (h ^ c) * 1099511628211ULL;
    }
    for (size_t i = 0; i < set->n; i++)
        if (set->hash[i] == h)
            return;
    CHECKF(target, set->n < REASONS_MAX,
           "more than %d distinct reasons; the newest is \"%s\" (does it quote input?)",
           REASONS_MAX, reason);
    set->hash[set->n++] = h;
}

void fuzz_check_reason(const char *target, struct reason_set *set, const char *reason)
{
    fuzz_reason_canary(target, reason);
    CHECKF(target, fuzz_fits(reason, REASON_LEN),
           "reason not NUL-terminated within its length");
    CHECKF(target, reason[0] != '\0', "rejected without a reason");
    CHECKF(target, strlen(reason) <= 80, "reason longer than 80 bytes: \"%s\"", reason);
    fuzz_reason_note(target, set, reason);
}

