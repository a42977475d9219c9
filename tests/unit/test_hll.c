/* test_hll.c - Redis-compatible HyperLogLog registers (aggregator/hll.c):
 * the hash and register of known members (values taken from redis-server
 * 7.0 with PFADD + PFDEBUG GETREG), and that both encodings decode back
 * to the registers they were built from, following Redis' layouts. The
 * comparison with a real server is in test_it_aggregator.c. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hll.h"

TestSuite(hll);

Test(hll, hash_and_register_match_redis)
{
    struct {
        const char *member;
        uint32_t index;
        uint8_t value;
    } known[] = {
        {"00000000000000aa", 16289, 1},
        {"", 5938, 2},
        {"hello world, a longer member", 6149, 2},
        {"0000000000200001", 4576, 2},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint32_t index;
        uint8_t value;
        hll_hash(known[i].member, strlen(known[i].member), &index, &value);
        cr_expect_eq(index, known[i].index, "%s: register %u", known[i].member, index);
        cr_expect_eq(value, known[i].value, "%s: value %u", known[i].member, value);
    }
}

/* Decode either encoding into reg; false when malformed (as Redis would
 * refuse it: wrong magic, wrong length, registers not summing to 16384). */
static bool decode(const unsigned char *p, size_t len, uint8_t reg[HLL_REGISTERS])
{
    if (len < HLL_HEADER || memcmp(p, "HYLL", 4) != 0)
        return false;
    if (p[4] == 0) {
        if (len != HLL_DENSE_BYTES)
            return false;
        const unsigned char *r = p + HLL_HEADER;
        for (size_t i = 0; i < HLL_REGISTERS; i++) {
            size_t bit = i * 6, byte = bit / 8, shift = bit & 7;
            unsigned v = r[byte] >> shift;
            if (shift > 2)
                v |= (unsigned)r[byte + 1] << (8 - shift);
            reg[i] = (uint8_t)(v & 63);
        }
        return true;
    }
    if (p[4] != 1)
        return false;
    size_t i = 0;
    for (size_t at = HLL_HEADER; at < len;) {
        unsigned char op = p[at];
        size_t run;
        if ((op & 0xc0) == 0) {
            run = (op & 0x3f) + 1u;
            memset(reg + i, 0, run <= HLL_REGISTERS - i ? run : 0);
            at++;
        } else if ((op & 0xc0) == 0x40) {
            if (at + 1 >= len)
                return false;
            run = (((size_t)op & 0x3f) << 8 | p[at + 1]) + 1;
            if (run > HLL_REGISTERS - i)
                return false;
            memset(reg + i, 0, run);
            at += 2;
        } else {
            run = (op & 3u) + 1;
            if (run > HLL_REGISTERS - i)
                return false;
            memset(reg + i, ((op >> 2) & 0x1f) + 1, run);
            at++;
        }
        i += run;
        if (i > HLL_REGISTERS)
            return false;
    }
    return i == HLL_REGISTERS;
}

static void round_trip(const uint8_t reg[HLL_REGISTERS], int want_encoding)
{
    static unsigned char out[HLL_ENCODED_MAX];
    static uint8_t back[HLL_REGISTERS];
    size_t len = hll_encode(reg, out);
    cr_assert(len >= HLL_HEADER && len <= HLL_DENSE_BYTES);
    cr_assert_eq(out[4], want_encoding, "encoding %d", out[4]);
    cr_assert(out[15] & 0x80, "the cached cardinality is marked stale");
    cr_assert(decode(out, len, back), "malformed encoding");
    cr_assert_eq(memcmp(reg, back, HLL_REGISTERS), 0, "registers differ after decoding");
}

Test(hll, empty_and_small_sets_encode_sparse)
{
    static uint8_t reg[HLL_REGISTERS];
    memset(reg, 0, sizeof reg);
    round_trip(reg, 1);
    reg[0] = 1;
    round_trip(reg, 1);
    reg[HLL_REGISTERS - 1] = 32; /* the largest value the sparse form holds */
    round_trip(reg, 1);
    for (size_t i = 100; i < 110; i++)
        reg[i] = 3; /* a run longer than one VAL opcode */
    reg[5000] = 7;
    round_trip(reg, 1);
}

Test(hll, large_values_and_full_sets_encode_dense)
{
    static uint8_t reg[HLL_REGISTERS];
    memset(reg, 0, sizeof reg);
    reg[77] = 33; /* past what the sparse form can hold */
    round_trip(reg, 0);
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < HLL_REGISTERS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        reg[i] = (uint8_t)(1 + x % 20);
    }
    round_trip(reg, 0); /* sparse would not be smaller */
    reg[HLL_REGISTERS - 1] = 51;
    reg[0] = 63;
    round_trip(reg, 0);
}

Test(hll, members_fill_registers_like_pfadd)
{
    /* every member raises its register to at least its value */
    static uint8_t reg[HLL_REGISTERS];
    memset(reg, 0, sizeof reg);
    size_t distinct = 0;
    for (int m = 0; m < 3000; m++) {
        char member[17];
        snprintf(member, sizeof member, "%016x", 0x100000u + (unsigned)m);
        uint32_t index;
        uint8_t value;
        hll_hash(member, 16, &index, &value);
        cr_assert(index < HLL_REGISTERS && value >= 1 && value <= 51);
        if (reg[index] == 0)
            distinct++;
        if (value > reg[index])
            reg[index] = value;
    }
    cr_assert(distinct > 2500 && distinct < 3000, "3000 members spread over %zu registers",
              distinct);
    round_trip(reg, 1);
}
