/* test_shard.c - site to shard (common/shard.c): stable values that must
 * never change (they are where data lives), spread, and key prefixes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "shard.h"

Test(shard, values_are_stable_across_versions)
{
    /* FNV-1a 64 of the bytes, modulo the shard count: pinned values. */
    cr_assert_eq(shard_of_site("", 0, 16), 0xcbf29ce484222325ULL % 16);
    cr_assert_eq(shard_of_site("a", 1, 1000), 0xaf63dc4c8601ec8cULL % 1000);
    cr_assert_eq(shard_of_site("example.com", 11, 16), 6);
    cr_assert_eq(shard_of_site("example.com", 11, 1), 0);
    cr_assert_eq(shard_of_site("example.com", 11, 0), 0, "0 shards reads as 1");
}

Test(shard, sites_spread_over_every_shard)
{
    unsigned seen[16] = {0};
    char site[32];
    for (int i = 0; i < 1600; i++) {
        int n = snprintf(site, sizeof site, "site%d.example", i);
        unsigned s = shard_of_site(site, (size_t)n, 16);
        cr_assert_lt(s, 16);
        seen[s]++;
    }
    for (int s = 0; s < 16; s++)
        cr_assert(seen[s] > 50 && seen[s] < 150, "shard %d got %u of 1600", s, seen[s]);
}

Test(shard, key_prefix)
{
    char buf[SHARD_PREFIX_MAX];
    cr_assert_eq(shard_key_prefix(buf, sizeof buf, 0), 9);
    cr_assert_str_eq(buf, "veil:{0}:");
    cr_assert_eq(shard_key_prefix(buf, sizeof buf, SHARDS_MAX - 1), 12);
    cr_assert_str_eq(buf, "veil:{1023}:");
    char small[8];
    cr_assert_eq(shard_key_prefix(small, sizeof small, 0), 0, "does not fit");
}
