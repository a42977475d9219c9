/* argbuf.h - the arguments of one Redis command built up in one growing
 * block of bytes (each NUL-terminated), so that a commit's tens of
 * thousands of arguments cost a few allocations, reused batch after batch.
 * Aborts on OOM, like the rest of the aggregator. */
#ifndef VEIL_ARGBUF_H
#define VEIL_ARGBUF_H

#include <stddef.h>

struct argbuf {
    char *bytes;
    size_t used, size;
    size_t *offsets, *lens;
    size_t n, cap;
    const char **argv; /* resolved by argbuf_finish */
    char *resp;        /* argbuf_resp's output */
    size_t resp_size;
};

/* Append s[0..len) (copied) / a C string / a decimal number. */
void arg_add(struct argbuf *a, const char *s, size_t len);
void arg_str(struct argbuf *a, const char *s);
void arg_ll(struct argbuf *a, long long v);
/* Point a->argv at the arguments (valid until the next add); returns it.
 * Empty a buffer for reuse with a->n = a->used = 0. */
const char **argbuf_finish(struct argbuf *a);
void argbuf_free(struct argbuf *a);

/* The whole command in the Redis protocol (RESP), for
 * redisAppendFormattedCommand: hiredis's own formatting costs a printf per
 * argument. Valid until the next call; *len is its length. */
const char *argbuf_resp(struct argbuf *a, size_t *len);

#endif
