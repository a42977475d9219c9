/* resp.c - Redis commands built in RESP in place (see resp.h).
 *
 * hiredis' redisCommandArgv formats every argument with a printf-like
 * helper and copies it twice; a commit has hundreds of thousands of
 * arguments, so they are written straight into one reusable buffer, the
 * "*<argc>" header last into room kept in front. It never logs. */
#include "resp.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void reserve(struct resp *q, size_t more)
{
    if (q->size - q->len >= more)
        return;
    while (q->size - q->len < more)
        q->size = q->size ? q->size * 2 : 65536;
    q->buf = xrealloc(q->buf, q->size);
}

void resp_reset(struct resp *q)
{
    reserve(q, RESP_HEAD);
    q->len = RESP_HEAD;
    q->argc = 0;
}

/* Decimal digits of v into out (at least 21 bytes); returns the length. */
size_t resp_fmt_ll(char *out, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    return len;
}

void resp_arg(struct resp *q, const char *s, size_t len)
{
    reserve(q, len + 32);
    char *p = q->buf + q->len;
    *p++ = '$';
    p += resp_fmt_ll(p, (long long)len);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, s, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    q->len = (size_t)(p - q->buf);
    q->argc++;
}

void resp_str(struct resp *q, const char *s)
{
    resp_arg(q, s, strlen(s));
}

void resp_ll(struct resp *q, long long v)
{
    char num[24];
    resp_arg(q, num, resp_fmt_ll(num, v));
}

/* Finish the command; returns it (valid until the next reset). */
const char *resp_finish(struct resp *q, size_t *len)
{
    char head[RESP_HEAD];
    size_t n = 0;
    head[n++] = '*';
    n += resp_fmt_ll(head + n, (long long)q->argc);
    head[n++] = '\r';
    head[n++] = '\n';
    q->head = RESP_HEAD - n;
    memcpy(q->buf + q->head, head, n);
    *len = q->len - q->head;
    return q->buf + q->head;
}

int resp_append(redisContext *rc, struct resp *q)
{
    size_t len;
    const char *cmd = resp_finish(q, &len);
    return redisAppendFormattedCommand(rc, cmd, len) == REDIS_OK ? 0 : -1;
}

void resp_free(struct resp *q)
{
    free(q->buf);
    q->buf = NULL;
    q->len = q->size = q->argc = q->head = 0;
}
