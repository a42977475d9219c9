/* ratelimit.c - token buckets keyed by a keyed hash of the client IP.
 * Never stores the IP itself (see ratelimit.h). */
#include "ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util.h"

struct bucket {
    uint64_t client;  /* keyed hash of the IP; 0 = empty */
    uint64_t last_ms; /* last refill */
    double tokens;
};

struct ratelimit {
    double per_second;
    double burst;
    size_t mask;
    uint8_t key[crypto_shorthash_KEYBYTES];
    struct bucket *table;
};

struct ratelimit *ratelimit_new(double per_second, double burst, size_t slots)
{
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->per_second = per_second;
    rl->burst = burst < 1 ? 1 : burst;
    size_t n = 1;
    while (n < slots)
        n <<= 1;
    rl->mask = n - 1;
    randombytes_buf(rl->key, sizeof rl->key);
    rl->table = per_second > 0 ? xcalloc(n, sizeof *rl->table) : NULL;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    sodium_memzero(rl->key, sizeof rl->key);
    free(rl->table);
    free(rl);
}

bool ratelimit_allow(struct ratelimit *rl, const struct client_ip *ip, uint64_t now_ms)
{
    if (!rl->table)
        return true;
    uint8_t input[17];
    input[0] = (uint8_t)(ip->family == AF_INET ? 4 : 6);
    memcpy(input + 1, ip->addr, 16);
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, input, sizeof input, rl->key);
    sodium_memzero(input, sizeof input);
    uint64_t client;
    memcpy(&client, out, sizeof client);
    client |= 1; /* never 0, which marks an empty slot */

    struct bucket *b = &rl->table[client & rl->mask];
    if (b->client != client) {
        b->client = client;
        b->tokens = rl->burst;
        b->last_ms = now_ms;
    } else {
        double refill = (double)(now_ms - b->last_ms) * rl->per_second / 1000.0;
        b->tokens = b->tokens + refill > rl->burst ? rl->burst : b->tokens + refill;
        b->last_ms = now_ms;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}
