/* resp.h - Redis commands built in RESP in place, for commands with very
 * many arguments (the commit script's call, the session snapshot).
 *
 * A `struct resp` is reusable: reset, add arguments, append to a hiredis
 * context's output buffer. It holds only what it is given, until reset. */
#ifndef VEIL_RESP_H
#define VEIL_RESP_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define RESP_HEAD 24 /* room for "*<argc>\r\n", written last */

struct resp {
    char *buf;
    size_t len, size;
    size_t argc;
    size_t head; /* where the finished command starts (after resp_finish) */
};

/* Start a new command (keeps the buffer). Aborts on OOM. */
void resp_reset(struct resp *q);

/* Add one argument: `len` bytes at s / a C string / a decimal number. */
void resp_arg(struct resp *q, const char *s, size_t len);
void resp_str(struct resp *q, const char *s);
void resp_ll(struct resp *q, long long v);

/* Finish the command; returns it and its length in *len, valid until the
 * next reset. */
const char *resp_finish(struct resp *q, size_t *len);

/* Finish the command and append it to rc's output buffer. Returns 0, or
 * -1 (hiredis error in rc->err). */
int resp_append(redisContext *rc, struct resp *q);

/* Decimal digits of v into out (at least 21 bytes); returns the length. */
size_t resp_fmt_ll(char *out, long long v);

/* Free the buffer; q may be reset and used again. */
void resp_free(struct resp *q);

#endif
