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
    char num[24];
    str_format(num, sizeof num, "%lld", v);
    arg_str(a, num);
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
}

