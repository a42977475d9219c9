/* reply.c - hiredis replies built in one arena per reply (see reply.h).
 *
 * The reader creates a reply top-down: the top-level object first, then
 * its elements in order. The top-level object lives at the start of the
 * reply's first chunk, whose header also points at the newest chunk, so
 * every element finds its arena through its read task's parents, and
 * freeing the reply frees the chunk list from there. No state outside the
 * replies; it never inspects their content. */
#include "reply.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FIRST_CHUNK 4096
#define MAX_CHUNK (1024 * 1024)
#define ALIGN 16

struct chunk {
    struct chunk *next;  /* the reply's chunks, newest first (in the first chunk) */
    struct chunk *older; /* this chunk's predecessor */
    size_t used, size;
    _Alignas(ALIGN) char data[];
};

static struct chunk *first_chunk(const void *top)
{
    return (struct chunk *)(void *)((char *)(uintptr_t)top - offsetof(struct chunk, data));
}

/* The first chunk of the reply `task` belongs to. */
static struct chunk *arena_of(const redisReadTask *task)
{
    while (task->parent)
        task = task->parent;
    return first_chunk(task->obj);
}

static void *chunk_alloc(struct chunk *first, size_t len)
{
    len = (len + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct chunk *c = first->next ? first->next : first;
    if (c->size - c->used < len) {
        size_t size = c->size * 2 > MAX_CHUNK ? MAX_CHUNK : c->size * 2;
        if (size < len)
            size = len;
        struct chunk *n = xmalloc(sizeof *n + size);
        n->next = NULL;
        n->older = c;
        n->used = 0;
        n->size = size;
        first->next = c = n; /* the first chunk tracks the newest */
    }
    void *p = c->data + c->used;
    c->used += len;
    return p;
}

/* A new reply object of `type` (with room for `extra` more bytes in its
 * arena), attached to its parent array; *arena is set to its arena. */
static redisReply *object_new(const redisReadTask *task, int type, size_t extra,
                              struct chunk **arena)
{
    redisReply *r;
    if (!task->parent) {
        size_t size = FIRST_CHUNK;
        if (size < sizeof(redisReply) + extra + 2 * ALIGN)
            size = sizeof(redisReply) + extra + 2 * ALIGN;
        struct chunk *c = xmalloc(sizeof *c + size);
        c->next = NULL;
        c->older = NULL;
        c->used = 0;
        c->size = size;
        *arena = c;
        r = chunk_alloc(c, sizeof *r); /* at c->data: first_chunk() finds c */
    } else {
        *arena = arena_of(task);
        r = chunk_alloc(*arena, sizeof *r);
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    memset(r, 0, sizeof *r);
    r->type = type;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    struct chunk *arena;
    redisReply *r = object_new(task, task->type, len + 1, &arena);
    r->str = chunk_alloc(arena, len + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    size_t n = elements > 0 ? (size_t)elements : 0;
    struct chunk *arena;
    redisReply *r = object_new(task, REDIS_REPLY_ARRAY, n * sizeof(redisReply *), &arena);
    r->elements = n;
    if (n) {
        r->element = chunk_alloc(arena, n * sizeof(redisReply *));
        memset(r->element, 0, n * sizeof(redisReply *));
    }
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    struct chunk *arena;
    redisReply *r = object_new(task, REDIS_REPLY_INTEGER, 0, &arena);
    r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    struct chunk *arena;
    return object_new(task, REDIS_REPLY_NIL, 0, &arena);
}

/* Only ever called with a top-level object (by hiredis and reply_free). */
static void free_object(void *obj)
{
    if (!obj)
        return;
    struct chunk *first = first_chunk(obj);
    struct chunk *c = first->next;
    while (c) {
        struct chunk *older = c->older;
        if (c == first)
            break;
        free(c);
        c = older;
    }
    free(first);
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

void reply_install(redisContext *rc)
{
    rc->reader->fn = &arena_functions;
}

void reply_free(const redisContext *rc, redisReply *reply)
{
    if (!reply)
        return;
    if (rc && rc->reader && rc->reader->fn && rc->reader->fn->freeObject)
        rc->reader->fn->freeObject(reply);
    else
        freeReplyObject(reply);
}
