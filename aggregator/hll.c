/* hll.c - Redis-compatible HyperLogLog registers (see hll.h).
 *
 * Layouts, from Redis' hyperloglog.c: a 16-byte header "HYLL", encoding
 * (0 dense, 1 sparse), 3 unused bytes, 8 bytes of cached cardinality
 * (most significant bit of the last byte set = stale, recomputed by the
 * next PFCOUNT); then either 16384 6-bit registers packed little-end
 * first (dense), or opcodes (sparse): ZERO 00xxxxxx = 1..64 zero
 * registers, XZERO 01xxxxxx yyyyyyyy = 1..16384 zero registers, VAL
 * 1vvvvvxx = 1..4 registers of value 1..32. It never logs. */
#include "hll.h"

#include <string.h>

#define HLL_P 14
#define HLL_Q 50
#define HLL_SEED 0xadc83b19ULL
#define SPARSE_VAL_MAX 32
#define SPARSE_VAL_LEN_MAX 4
#define SPARSE_ZERO_LEN_MAX 64
#define SPARSE_XZERO_LEN_MAX 16384

/* Redis' MurmurHash64A (little-endian reads, as on the servers Veil
 * targets). */
static uint64_t murmur64a(const unsigned char *data, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ (len * m);
    const unsigned char *end = data + (len - (len & 7));
    while (data != end) {
        uint64_t k = (uint64_t)data[0] | (uint64_t)data[1] << 8 | (uint64_t)data[2] << 16 |
                     (uint64_t)data[3] << 24 | (uint64_t)data[4] << 32 |
                     (uint64_t)data[5] << 40 | (uint64_t)data[6] << 48 |
                     (uint64_t)data[7] << 56;
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
        data += 8;
    }
    switch (len & 7) {
    case 7:
        h ^= (uint64_t)data[6] << 48;
        /* fall through */
    case 6:
        h ^= (uint64_t)data[5] << 40;
        /* fall through */
    case 5:
        h ^= (uint64_t)data[4] << 32;
        /* fall through */
    case 4:
        h ^= (uint64_t)data[3] << 24;
        /* fall through */
    case 3:
        h ^= (uint64_t)data[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint64_t)data[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint64_t)data[0];
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

void hll_hash(const void *member, size_t len, uint32_t *index, uint8_t *value)
{
    uint64_t hash = murmur64a(member, len, HLL_SEED);
    *index = (uint32_t)(hash & (HLL_REGISTERS - 1));
    hash >>= HLL_P;
    hash |= 1ULL << HLL_Q; /* the run ends by bit Q at the latest */
    uint8_t count = 1;
    while ((hash & 1) == 0) {
        count++;
        hash >>= 1;
    }
    *value = count;
}

static void header(unsigned char *out, unsigned char encoding)
{
    memset(out, 0, HLL_HEADER);
    memcpy(out, "HYLL", 4);
    out[4] = encoding;
    out[15] = 0x80; /* cached cardinality stale */
}

static size_t encode_dense(const uint8_t reg[HLL_REGISTERS], unsigned char *out)
{
    header(out, 0);
    unsigned char *p = out + HLL_HEADER;
    memset(p, 0, HLL_DENSE_BYTES - HLL_HEADER + 1);
    for (size_t i = 0; i < HLL_REGISTERS; i++) {
        unsigned v = reg[i] & 63;
        size_t bit = i * 6, byte = bit / 8, shift = bit & 7;
        p[byte] |= (unsigned char)(v << shift);
        p[byte + 1] |= (unsigned char)(v >> (8 - shift)); /* the spare byte at the end */
    }
    return HLL_DENSE_BYTES;
}

/* The sparse encoding, or 0 when it cannot hold the registers or would
 * not be smaller than the dense one. */
static size_t encode_sparse(const uint8_t reg[HLL_REGISTERS], unsigned char *out)
{
    header(out, 1);
    size_t len = HLL_HEADER, i = 0;
    while (i < HLL_REGISTERS) {
        if (len + 2 > HLL_DENSE_BYTES)
            return 0;
        size_t run = 1;
        if (reg[i] == 0) {
            while (i + run < HLL_REGISTERS && reg[i + run] == 0)
                run++;
            if (run <= SPARSE_ZERO_LEN_MAX) {
                out[len++] = (unsigned char)(run - 1);
            } else {
                out[len++] = (unsigned char)(0x40 | ((run - 1) >> 8));
                out[len++] = (unsigned char)((run - 1) & 0xff);
            }
        } else {
            if (reg[i] > SPARSE_VAL_MAX)
                return 0;
            while (run < SPARSE_VAL_LEN_MAX && i + run < HLL_REGISTERS && reg[i + run] == reg[i])
                run++;
            out[len++] = (unsigned char)(0x80 | ((reg[i] - 1) << 2) | (run - 1));
        }
        i += run;
    }
    return len < HLL_DENSE_BYTES ? len : 0;
}

size_t hll_encode(const uint8_t reg[HLL_REGISTERS], unsigned char *out)
{
    size_t len = encode_sparse(reg, out);
    return len ? len : encode_dense(reg, out);
}
