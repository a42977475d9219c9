/* ratelimit.c - per-client token buckets and connection counters keyed by
 * a keyed hash of the client's address or /64 (see ratelimit.h). Never
 * stores an address; the hash input is wiped after use. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "util.h"

#define RL_STRIPES 64 /* mutexes over the bucket table */

struct bucket {
    uint64_t client;  /* keyed hash of the client; 0 = empty */
    uint64_t last_ms; /* last refill */
    double tokens;
};

struct ratelimit {
    struct ratelimit_config cfg;
    size_t mask;
    uint8_t key[crypto_shorthash_KEYBYTES];
    struct bucket *table;        /* NULL: no rate limit */
    _Atomic uint32_t *conns;     /* NULL: no connection cap */
    void *conns_alloc;           /* the same memory, to free */
    pthread_mutex_t stripe[RL_STRIPES];
};

struct ratelimit *ratelimit_new(const struct ratelimit_config *cfg)
{
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->cfg = *cfg;
    if (rl->cfg.burst < 1)
        rl->cfg.burst = 1;
    if (rl->cfg.ipv6_prefix < 1 || rl->cfg.ipv6_prefix > 128)
        rl->cfg.ipv6_prefix = 64;
    size_t n = 1;
    while (n < cfg->slots)
        n <<= 1;
    rl->mask = n - 1;
    randombytes_buf(rl->key, sizeof rl->key);
    rl->table = cfg->per_second > 0 ? xcalloc(n, sizeof *rl->table) : NULL;
    if (cfg->max_connections > 0) {
        rl->conns_alloc = xcalloc(n, sizeof *rl->conns);
        rl->conns = rl->conns_alloc;
        for (size_t i = 0; i < n; i++)
            atomic_init(&rl->conns[i], 0);
    }
    for (int i = 0; i < RL_STRIPES; i++)
        pthread_mutex_init(&rl->stripe[i], NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    sodium_memzero(rl->key, sizeof rl->key);
    for (int i = 0; i < RL_STRIPES; i++)
        pthread_mutex_destroy(&rl->stripe[i]);
    free(rl->table);
    free(rl->conns_alloc);
    free(rl);
}

/* The keyed hash of the client's network (the IPv4 address or the IPv6
 * prefix); never 0, which marks an empty slot. */
static uint64_t client_key(const struct ratelimit *rl, const struct client_ip *ip)
{
    struct client_ip net;
    anon_truncate(ip, 32, rl->cfg.ipv6_prefix, &net);
    uint8_t input[17];
    input[0] = (uint8_t)(net.family == AF_INET ? 4 : 6);
    memcpy(input + 1, net.addr, 16);
    anon_ip_wipe(&net);
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, input, sizeof input, rl->key);
    sodium_memzero(input, sizeof input);
    uint64_t client;
    memcpy(&client, out, sizeof client);
    sodium_memzero(out, sizeof out);
    return client | 1;
}

bool ratelimit_allow(struct ratelimit *rl, const struct client_ip *ip, uint64_t now_ms)
{
    if (!rl || !rl->table)
        return true;
    uint64_t client = client_key(rl, ip);
    size_t slot = (size_t)(client & rl->mask);
    pthread_mutex_t *lock = &rl->stripe[slot % RL_STRIPES];
    pthread_mutex_lock(lock);
    struct bucket *b = &rl->table[slot];
    if (b->client != client) {
        b->client = client;
        b->tokens = rl->cfg.burst;
        b->last_ms = now_ms;
    } else if (now_ms > b->last_ms) { /* threads' clocks may be read out of order */
        double refill = (double)(now_ms - b->last_ms) * rl->cfg.per_second / 1000.0;
        b->tokens = b->tokens + refill > rl->cfg.burst ? rl->cfg.burst : b->tokens + refill;
        b->last_ms = now_ms;
    }
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(lock);
    return ok;
}

bool ratelimit_conn_enter(struct ratelimit *rl, const struct client_ip *ip, uint32_t *ticket)
{
    *ticket = UINT32_MAX;
    if (!rl || !rl->conns)
        return true;
    uint32_t slot = (uint32_t)(client_key(rl, ip) & rl->mask);
    uint32_t held = atomic_fetch_add_explicit(&rl->conns[slot], 1, memory_order_relaxed);
    if ((long)held >= rl->cfg.max_connections) {
        atomic_fetch_sub_explicit(&rl->conns[slot], 1, memory_order_relaxed);
        return false;
    }
    *ticket = slot;
    return true;
}

void ratelimit_conn_leave(struct ratelimit *rl, uint32_t ticket)
{
    if (!rl || !rl->conns || ticket > rl->mask)
        return;
    atomic_fetch_sub_explicit(&rl->conns[ticket], 1, memory_order_relaxed);
}
