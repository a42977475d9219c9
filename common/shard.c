/* shard.c - site to logical shard, and a shard's key prefix (shard.h).
 * Never changes its hash: the shard of a site is where its data lives. */
#include "shard.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

unsigned shard_of_site(const char *site, size_t len, unsigned nshards)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)site[i];
        h *= 0x100000001b3ULL;       /* FNV-1a 64 prime */
    }
    if (nshards == 0)
        nshards = 1;
    return (unsigned)(h % nshards);
}

size_t shard_key_prefix(char *buf, size_t cap, unsigned shard)
{
    char tmp[32]; /* any unsigned fits; the caller's cap decides */
    char *p = tmp;
    memcpy(p, "veil:{", 6);
    p = uint_to_dec(p + 6, shard);
    memcpy(p, "}:", 2);
    p += 2;
    size_t len = (size_t)(p - tmp);
    if (len + 1 > cap)
        return 0;
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    return len;
}
