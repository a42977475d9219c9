/* test_ratelimit.c - per-client token buckets keyed by a hash of the IP. */
#include <criterion/criterion.h>
#include <string.h>

#include "anon.h"
#include "ratelimit.h"

static struct client_ip ip4(const char *text)
{
    struct client_ip ip;
    cr_assert(anon_ip_parse(text, strlen(text), &ip));
    return ip;
}

Test(ratelimit, burst_then_refill)
{
    struct ratelimit *rl = ratelimit_new(2.0, 3.0, 1024);
    struct client_ip a = ip4("203.0.113.7");
    uint64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        cr_expect(ratelimit_allow(rl, &a, t), "burst request %d", i);
    cr_expect_not(ratelimit_allow(rl, &a, t), "the fourth at once is over the burst");
    cr_expect_not(ratelimit_allow(rl, &a, t + 400), "0.8 tokens after 400 ms");
    cr_expect(ratelimit_allow(rl, &a, t + 600), "a token after 500 ms at 2/s");
    cr_expect_not(ratelimit_allow(rl, &a, t + 600));
    cr_expect(ratelimit_allow(rl, &a, t + 60000), "refilled after a minute");
    ratelimit_free(rl);
}

Test(ratelimit, clients_are_independent)
{
    struct ratelimit *rl = ratelimit_new(1.0, 1.0, 65536);
    struct client_ip a = ip4("203.0.113.7"), b = ip4("203.0.113.8"), c = ip4("2001:db8::1");
    cr_expect(ratelimit_allow(rl, &a, 5000));
    cr_expect_not(ratelimit_allow(rl, &a, 5000));
    cr_expect(ratelimit_allow(rl, &b, 5000), "another client has its own bucket");
    cr_expect(ratelimit_allow(rl, &c, 5000));
    ratelimit_free(rl);
}

Test(ratelimit, zero_disables)
{
    struct ratelimit *rl = ratelimit_new(0, 1, 16);
    struct client_ip a = ip4("203.0.113.7");
    for (int i = 0; i < 1000; i++)
        cr_expect(ratelimit_allow(rl, &a, 0));
    ratelimit_free(rl);
}
