/* argbuf.c - a command's arguments copied into one growing block, for
 * redisCommandArgv calls with many thousands of arguments (see argbuf.h).
 * It only copies bytes; it never logs. */
#include "argbuf.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"


void arg_add(struct argbuf *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4096;
        a->offsets = xrealloc(a->offsets, a->cap * sizeof *a->offsets);
        a->lens = xrealloc(a->lens, a->cap * sizeof *a->lens);
    }
    if (a->size - a->used < len + 1) {
        while (a->size - a->used < len + 1)
            a->size = a->size ? a->size * 2 : 65536;
        a->bytes = xrealloc(a->bytes, a->size);
    }
    memcpy(a->bytes + a->used, s, len);
    a->bytes[a->used + len] = '\0';
    a->offsets[a->n] = a->used;
    a->lens[a->n] = len;
    a->used += len + 1;
    a->n++;
}

void arg_str(struct argbuf *a, const char *s)
{
    arg_add(a, s, strlen(s));
}

void arg_ll(struct argbuf *a, long long v)
{
    char num[24], *p = num;
    if (v < 0) {
        *p++ = '-';
        p = uint_to_dec(p, (uint64_t)0 - (uint64_t)v);
    } else {
        p = uint_to_dec(p, (uint64_t)v);
    }
    arg_add(a, num, (size_t)(p - num));
}

const char **argbuf_finish(struct argbuf *a)
{
    a->argv = xrealloc(a->argv, (a->n ? a->n : 1) * sizeof *a->argv);
    for (size_t i = 0; i < a->n; i++)
        a->argv[i] = a->bytes + a->offsets[i];
    return a->argv;
}

void argbuf_free(struct argbuf *a)
{
    free(a->bytes);
    free(a->offsets);
    free(a->lens);
    free(a->argv);
    free(a->resp);
}

const char *argbuf_resp(struct argbuf *a, size_t *len)
{
    size_t need = 32 + a->used + a->n * 32;
    if (need > a->resp_size) {
        a->resp_size = need;
        a->resp = xrealloc(a->resp, need);
    }
    char *p = a->resp;
    *p++ = '*';
    p = uint_to_dec(p, a->n);
    *p++ = '\r';
    *p++ = '\n';
    for (size_t i = 0; i < a->n; i++) {
        *p++ = '$';
        p = uint_to_dec(p, a->lens[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, a->bytes + a->offsets[i], a->lens[i]);
        p += a->lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    *len = (size_t)(p - a->resp);
    return a->resp;
}

