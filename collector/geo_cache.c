/* geo_cache.c - per-thread cache of geo_lookup answers by network
 * (geo_cache.h).
 *
 * Must never hold a client address, whole or truncated: the /24 or /48 is
 * built on the stack, hashed under the cache's secret key and wiped; only
 * the hash and the place names are kept. Never logs. */
#include "geo_cache.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

_Static_assert(GEO_OFF == 0, "a zeroed entry must read as empty");

struct cache_entry {
    uint64_t network;         /* keyed hash of the /24 or /48 */
    uint8_t level;            /* enum geo_level the place was read at; GEO_OFF: empty */
    struct geo_result place;
};

struct geo_cache {
    uint64_t db_serial;       /* the database the entries came from */
    size_t set_mask;          /* sets - 1 (a power of two) */
    size_t used;
    uint64_t hits, lookups;
    unsigned char key[crypto_shorthash_KEYBYTES];
    struct cache_entry entries[]; /* GEO_CACHE_WAYS per set, most recently used first */
};

static size_t cache_bytes(size_t sets)
{
    return sizeof(struct geo_cache) + sets * GEO_CACHE_WAYS * sizeof(struct cache_entry);
}

struct geo_cache *geo_cache_new(size_t entries)
{
    if (sodium_init() < 0)
        return NULL;
    size_t sets = 1;
    while (sets * GEO_CACHE_WAYS < entries)
        sets <<= 1;
    struct geo_cache *c = xcalloc(1, cache_bytes(sets));
    c->set_mask = sets - 1;
    randombytes_buf(c->key, sizeof c->key);
    return c;
}

void geo_cache_free(struct geo_cache *c)
{
    if (!c)
        return;
    sodium_memzero(c, cache_bytes(c->set_mask + 1));
    free(c);
}

/* Forget every entry: they came from another database. */
static void cache_flush(struct geo_cache *c, uint64_t db_serial)
{
    memset(c->entries, 0, (c->set_mask + 1) * GEO_CACHE_WAYS * sizeof c->entries[0]);
    c->used = 0;
    c->db_serial = db_serial;
}

/* The keyed hash of the /24 or /48 around `ip` (mapped v6 as v4) into
 * *network and its family into *family. False for an unknown family. */
static bool network_of(const struct geo_cache *c, const struct client_ip *ip,
                       uint64_t *network, int *family)
{
    struct client_ip norm = *ip;
    anon_ip_normalise(&norm);
    /* A family byte first: no v4 prefix reads as a v6 one. */
    unsigned char prefix[1 + GEO_CACHE_IPV6_PREFIX / 8];
    size_t len = 0;
    if (norm.family == AF_INET) {
        prefix[0] = 4;
        len = 1 + GEO_CACHE_IPV4_PREFIX / 8;
    } else if (norm.family == AF_INET6) {
        prefix[0] = 6;
        len = 1 + GEO_CACHE_IPV6_PREFIX / 8;
    }
    *family = norm.family;
    if (len > 0) {
        memcpy(prefix + 1, norm.addr, len - 1);
        unsigned char digest[crypto_shorthash_BYTES];
        crypto_shorthash(digest, prefix, len, c->key);
        memcpy(network, digest, sizeof *network);
    }
    sodium_memzero(prefix, sizeof prefix);
    anon_ip_wipe(&norm);
    return len > 0;
}

/* True when an answer for a network of `bits` holds for the whole /24 or
 * /48 the cache files it under. */
static bool covers_cached_prefix(int family, int bits)
{
    int widest = family == AF_INET ? GEO_CACHE_IPV4_PREFIX : GEO_CACHE_IPV6_PREFIX;
    return bits >= 0 && bits <= widest;
}

/* Make set[way] the most recently used of its set. */
static void promote(struct cache_entry *set, int way)
{
    if (way == 0)
        return;
    struct cache_entry hit = set[way];
    memmove(set + 1, set, (size_t)way * sizeof *set);
    set[0] = hit;
}

static void insert(struct geo_cache *c, struct cache_entry *set, uint64_t network,
                   enum geo_level level, const struct geo_result *place)
{
    if (set[GEO_CACHE_WAYS - 1].level == GEO_OFF)
        c->used++;
    memmove(set + 1, set, (GEO_CACHE_WAYS - 1) * sizeof *set); /* the oldest falls out */
    set[0].network = network;
    set[0].level = (uint8_t)level;
    set[0].place = *place;
}

bool geo_cache_lookup(struct geo_cache *c, const struct geo_db *db, const struct client_ip *ip,
                      enum geo_level level, struct geo_result *out)
{
    uint64_t network;
    int family;
    if (!c || !db || !ip || level == GEO_OFF || !network_of(c, ip, &network, &family))
        return geo_lookup(db, ip, level, out);
    if (c->db_serial != geo_db_serial(db))
        cache_flush(c, geo_db_serial(db));
    c->lookups++;
    struct cache_entry *set = &c->entries[(network & c->set_mask) * GEO_CACHE_WAYS];
    for (int way = 0; way < GEO_CACHE_WAYS; way++) {
        if (set[way].level == level && set[way].network == network) {
            promote(set, way);
            *out = set[0].place;
            c->hits++;
            return true;
        }
    }
    int bits;
    bool ok = geo_lookup_network(db, ip, level, out, &bits);
    if (ok && covers_cached_prefix(family, bits))
        insert(c, set, network, level, out);
    return ok;
}

void geo_cache_counts(const struct geo_cache *c, size_t *used, uint64_t *hits,
                      uint64_t *lookups)
{
    if (used)
        *used = c->used;
    if (hits)
        *hits = c->hits;
    if (lookups)
        *lookups = c->lookups;
}

void geo_cache_memory(const struct geo_cache *c, const void **mem, size_t *len)
{
    *mem = c;
    *len = cache_bytes(c->set_mask + 1);
}
