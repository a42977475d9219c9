/* hll.h - Redis-compatible HyperLogLog registers built in memory.
 *
 * Adding thousands of visitor hashes to a row's HyperLogLog with PFADD
 * costs Redis (and the commit script, which passes every member through
 * Lua) far more than merging one ready-made HyperLogLog: commit.c builds
 * the registers of a large row here and the script PFMERGEs them. The
 * hash and register layout are Redis' own (hyperloglog.c: MurmurHash64A
 * with seed 0xadc83b19, 2^14 registers of 6 bits, sparse and dense
 * encodings), so the result is exactly what PFADD of the same members
 * would give. It holds hashes of visitor hashes only, never anything
 * else, and keeps nothing between calls. */
#ifndef VEIL_HLL_H
#define VEIL_HLL_H

#include <stddef.h>
#include <stdint.h>

#define HLL_REGISTERS 16384
#define HLL_HEADER 16
#define HLL_DENSE_BYTES (HLL_HEADER + HLL_REGISTERS * 6 / 8) /* 12304 */
/* The largest encoding hll_encode writes (plus one spare byte). */
#define HLL_ENCODED_MAX (HLL_DENSE_BYTES + 1)

/* The register PFADD would update for `member` and the value it would
 * store there at least (1..51). */
void hll_hash(const void *member, size_t len, uint32_t *index, uint8_t *value);

/* Encode registers (reg[i] = value, 0 = untouched) as a Redis HyperLogLog
 * string into out (HLL_ENCODED_MAX bytes): the sparse encoding when every
 * value fits it (<= 32) and it is smaller, else the dense one. PFMERGE
 * keeps a sparse destination sparse when the sources are. Returns the
 * length written. */
size_t hll_encode(const uint8_t reg[HLL_REGISTERS], unsigned char *out);

#endif
