/* dp.c - deterministic two-sided geometric noise (see dp.h). The only
 * randomness is the installation's secret key; nothing here is seeded from
 * the clock or rand(). */
#include "dp.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

/* Feed one field with its length in front, so that ("ab","c") and
 * ("a","bc") hash differently. */
static void hash_field(crypto_generichash_state *st, const void *p, size_t len)
{
    unsigned char prefix[8];
    uint64_t n = len;
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)(n >> (8 * i));
    crypto_generichash_update(st, prefix, sizeof prefix);
    crypto_generichash_update(st, p, len);
}

/* A uniform double in (0, 1] from 64 random bits (53 significant). */
static double unit_open0(uint64_t bits)
{
    return ((double)(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Geometric on {0, 1, ...} with P(k) = (1 - a) a^k, by inversion:
 * floor(ln u / ln a), with ln a = -epsilon / sensitivity. */
static long long geometric(double u, double scale)
{
    double g = floor(-log(u) * scale);
    if (g > 1e15)
        g = 1e15;
    return (long long)g;
}

long long dp_noise(const unsigned char key[DP_KEY_BYTES], double epsilon, double sensitivity,
                   const struct dp_label *label, long long true_count)
{
    if (!(epsilon > 0) || !(sensitivity > 0))
        return 0;
    crypto_generichash_state st;
    unsigned char digest[16];
    int32_t days[2] = {label->first, label->last};
    crypto_generichash_init(&st, key, DP_KEY_BYTES, sizeof digest);
    hash_field(&st, "veil-dp-v1", 10);
    hash_field(&st, label->site, strlen(label->site));
    hash_field(&st, label->metric, strlen(label->metric));
    hash_field(&st, label->value ? label->value : "", label->value ? label->value_len : 0);
    hash_field(&st, days, sizeof days);
    hash_field(&st, &true_count, sizeof true_count);
    crypto_generichash_final(&st, digest, sizeof digest);

    uint64_t a = 0, b = 0;
    for (int i = 0; i < 8; i++) {
        a = (a << 8) | digest[i];
        b = (b << 8) | digest[8 + i];
    }
    double scale = sensitivity / epsilon;
    /* The difference of two i.i.d. geometrics is two-sided geometric. */
    return geometric(unit_open0(a), scale) - geometric(unit_open0(b), scale);
}

long long dp_publish(const unsigned char key[DP_KEY_BYTES], double epsilon, double sensitivity,
                     const struct dp_label *label, long long true_count)
{
    long long noisy = true_count + dp_noise(key, epsilon, sensitivity, label, true_count);
    return noisy < 0 ? 0 : noisy;
}

double dp_noise_variance(double epsilon, double sensitivity)
{
    if (!(epsilon > 0) || !(sensitivity > 0))
        return 0;
    double a = exp(-epsilon / sensitivity);
    return 2 * a / ((1 - a) * (1 - a));
}

void dp_key_generate(unsigned char key[DP_KEY_BYTES])
{
    randombytes_buf(key, DP_KEY_BYTES);
}
