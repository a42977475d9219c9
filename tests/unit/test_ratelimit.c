/* test_ratelimit.c - per-client token buckets keyed by a hash of the IP. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
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
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){2.0, 3.0, 1024, 64, 0});
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
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){1.0, 1.0, 65536, 64, 0});
    struct client_ip a = ip4("203.0.113.7"), b = ip4("203.0.113.8"), c = ip4("2001:db8::1");
    cr_expect(ratelimit_allow(rl, &a, 5000));
    cr_expect_not(ratelimit_allow(rl, &a, 5000));
    cr_expect(ratelimit_allow(rl, &b, 5000), "another client has its own bucket");
    cr_expect(ratelimit_allow(rl, &c, 5000));
    ratelimit_free(rl);
}

Test(ratelimit, zero_disables)
{
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){0, 1, 16, 64, 0});
    struct client_ip a = ip4("203.0.113.7");
    for (int i = 0; i < 1000; i++)
        cr_expect(ratelimit_allow(rl, &a, 0));
    ratelimit_free(rl);
}

/* Issue 13 finding 2: 300 beacons from rotating addresses of one /64 were
 * 300 clients. Now they are one: the burst, then nothing. */
Test(ratelimit, ipv6_addresses_of_one_prefix_are_one_client)
{
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){1.0, 10.0, 65536, 64, 0});
    int allowed = 0;
    for (int i = 0; i < 300; i++) {
        char text[64];
        snprintf(text, sizeof text, "2001:db8:1:2:%x:%x::%x", i * 7919 % 65536, i, i + 1);
        struct client_ip ip = ip4(text);
        allowed += ratelimit_allow(rl, &ip, 1000);
    }
    cr_expect_eq(allowed, 10, "one /64 gets one burst, got %d", allowed);
    struct client_ip other = ip4("2001:db8:1:3::1");
    cr_expect(ratelimit_allow(rl, &other, 1000), "the next /64 is another client");
    ratelimit_free(rl);

    /* client_ipv6_prefix=128: every address is its own client again */
    rl = ratelimit_new(&(struct ratelimit_config){1.0, 1.0, 65536, 128, 0});
    struct client_ip a = ip4("2001:db8:1:2::1"), b = ip4("2001:db8:1:2::2");
    cr_expect(ratelimit_allow(rl, &a, 1000));
    cr_expect(ratelimit_allow(rl, &b, 1000));
    ratelimit_free(rl);
}

struct hammer {
    struct ratelimit *rl;
    int allowed;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct client_ip ip = ip4("203.0.113.7");
    for (int i = 0; i < 1000; i++)
        h->allowed += ratelimit_allow(h->rl, &ip, 5000);
    return NULL;
}

/* Issue 13 finding 2: the limit was per worker thread. One table for all:
 * 8 threads hammering one client at one instant share one burst. */
Test(ratelimit, shared_by_threads)
{
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){1.0, 50.0, 65536, 64, 0});
    pthread_t t[8];
    struct hammer h[8];
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){rl, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += h[i].allowed;
    }
    cr_expect_eq(total, 50, "8 threads together get one burst of 50, got %d", total);
    ratelimit_free(rl);
}

/* Issue 13 finding 3: the per-client connection cap, keyed like the rate. */
Test(ratelimit, connection_cap_per_client)
{
    struct ratelimit *rl = ratelimit_new(&(struct ratelimit_config){0, 1, 65536, 64, 3});
    struct client_ip a = ip4("2001:db8:1:2::1"), a2 = ip4("2001:db8:1:2::99"),
                     b = ip4("198.51.100.1");
    uint32_t tickets[4];
    cr_expect(ratelimit_conn_enter(rl, &a, &tickets[0]));
    cr_expect(ratelimit_conn_enter(rl, &a2, &tickets[1]), "same /64");
    cr_expect(ratelimit_conn_enter(rl, &a, &tickets[2]));
    uint32_t refused;
    cr_expect_not(ratelimit_conn_enter(rl, &a2, &refused), "the fourth of one /64 is refused");
    cr_expect(ratelimit_conn_enter(rl, &b, &tickets[3]), "another client is not");
    ratelimit_conn_leave(rl, tickets[1]);
    cr_expect(ratelimit_conn_enter(rl, &a, &tickets[1]), "a slot again once one closed");
    ratelimit_free(rl);
    /* 0 = no cap */
    rl = ratelimit_new(&(struct ratelimit_config){0, 1, 16, 64, 0});
    for (int i = 0; i < 100; i++)
        cr_expect(ratelimit_conn_enter(rl, &a, &refused));
    ratelimit_free(rl);
}
