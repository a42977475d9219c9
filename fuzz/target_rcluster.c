/* target_rcluster.c - fuzz target rcluster: what the Redis Cluster routing
 * (include/rcluster.h) reads from configuration and from servers.
 *
 * Byte 0 picks the parser: 0 the `redis` address list, 1 a MOVED/ASK
 * error reply, 2 a CLUSTER SLOTS reply given as raw RESP bytes (parsed by
 * hiredis's own reader, as on the wire); the rest is the input. Every
 * input also goes through rc_keyslot. Checks: at most RC_SEEDS_MAX seeds,
 * ports in range, unix only alone; a redirect names a slot below 16384 and
 * a port in range; a loaded map covers at most 16384 slots, every owner is
 * a node of the map, at most RC_NODES_MAX nodes; a key's slot is below
 * 16384 and equals the slot of its hash tag when it has one. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "check.h"
#include "harness.h"
#include "rcluster.h"
#include "util.h"

static void check_spec(const char *text)
{
    struct rc_addr seeds[RC_SEEDS_MAX];
    int n = -1;
    char err[200];
    if (!rc_parse_spec(text, seeds, &n, err, sizeof err)) {
        if (strncmp(err, "redis:", 6) != 0)
            fuzz_broken("rcluster", "a refused address list without a 'redis:' reason");
        return;
    }
    if (n < 1 || n > RC_SEEDS_MAX)
        fuzz_broken("rcluster", "%d seeds accepted", n);
    for (int i = 0; i < n; i++) {
        if (seeds[i].is_unix && n != 1)
            fuzz_broken("rcluster", "a unix socket inside a list");
        if (!seeds[i].is_unix && (seeds[i].port < 1 || seeds[i].port > 65535))
            fuzz_broken("rcluster", "port %d accepted", seeds[i].port);
        if (!seeds[i].host[0])
            fuzz_broken("rcluster", "an empty host accepted");
    }
}

static void check_redirect(const char *text, size_t len)
{
    redisReply r = {.type = REDIS_REPLY_ERROR, .str = (char *)(uintptr_t)text, .len = len};
    unsigned slot = 0;
    char host[RC_HOST_MAX];
    int port = 0;
    int kind = rc_redirect_parse(&r, &slot, host, sizeof host, &port);
    if (kind < 0 || kind > 2)
        fuzz_broken("rcluster", "redirect kind %d", kind);
    if (kind && (slot >= RC_SLOTS || port < 1 || port > 65535 || !host[0]))
        fuzz_broken("rcluster", "redirect to slot %u port %d accepted", slot, port);
    (void)rc_reply_is_transient(&r);
}

/* hiredis 0.14's reader allocates an array as long as the server says
 * (1.0 added a limit): inputs announcing more than 100,000 elements would
 * only test the allocator. A real CLUSTER SLOTS has a few hundred. */
static bool huge_array(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (data[i] != '*')
            continue;
        unsigned long long n = 0;
        for (size_t k = i + 1; k < size && data[k] >= '0' && data[k] <= '9' && n < 1000000; k++)
            n = n * 10 + (unsigned)(data[k] - '0');
        if (n > 100000)
            return true;
    }
    return false;
}

static void check_slots(const uint8_t *data, size_t size)
{
    if (huge_array(data, size))
        return;
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return;
    redisReply *reply = NULL;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK &&
        redisReaderGetReply(rd, (void **)&reply) == REDIS_OK && reply) {
        struct rc_map *map = malloc(sizeof *map);
        struct rc_addr asked = {.is_unix = false, .host = "127.0.0.1", .port = 7000};
        int covered = rc_map_load(map, reply, &asked);
        if (covered > RC_SLOTS)
            fuzz_broken("rcluster", "%d slots covered", covered);
        if (covered >= 0) {
            if (map->nnodes < 0 || map->nnodes > RC_NODES_MAX)
                fuzz_broken("rcluster", "%d nodes in a map", map->nnodes);
            for (int s = 0; s < RC_SLOTS; s++)
                if (map->owner[s] != RC_NO_OWNER && map->owner[s] >= map->nnodes)
                    fuzz_broken("rcluster", "slot %d owned by node %u of %d", s, map->owner[s],
                                map->nnodes);
        }
        free(map);
        freeReplyObject(reply);
    }
    redisReaderFree(rd);
}

static void check_keyslot(const uint8_t *data, size_t size)
{
    unsigned slot = rc_keyslot(data, size);
    if (slot >= RC_SLOTS)
        fuzz_broken("rcluster", "slot %u", slot);
    const uint8_t *open = memchr(data, '{', size);
    if (open) {
        size_t from = (size_t)(open - data) + 1;
        const uint8_t *close = memchr(data + from, '}', size - from);
        if (close && close > data + from &&
            rc_keyslot(data + from, (size_t)(close - (data + from))) != slot)
            fuzz_broken("rcluster", "a key's slot is not its hash tag's");
    }
}

int fuzz_rcluster(const uint8_t *data, size_t size)
{
    check_keyslot(data, size);
    if (size < 1)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 3) {
    case 0: check_spec(text); break;
    case 1: check_redirect(text, strlen(text)); break;
    default: check_slots(data + 1, size - 1); break;
    }
    free(text);
    return 0;
}
