/* dp.h - differential-privacy noise for published counts (P5).
 *
 * Noise is two-sided geometric (the discrete Laplace mechanism): for a
 * count with sensitivity D under budget epsilon, P(noise = z) is
 * proportional to exp(-epsilon * |z| / D). It is drawn from a keyed hash
 * (BLAKE2b keyed by the installation's secret DP key) of what is published
 * (site, metric, row value, day range) and of the true count, so asking the
 * same question again returns the same answer and averaging repeated
 * queries gains nothing. It must never draw from an unkeyed or guessable
 * source, and never publish a negative count. */
#ifndef VEIL_DP_H
#define VEIL_DP_H

#include <stddef.h>

#include "period.h"

#define DP_KEY_BYTES 32

/* What one published number is: the hash input besides the true count. */
struct dp_label {
    const char *site;
    const char *metric;   /* "visitors", "pageviews", ... */
    const char *value;    /* breakdown row value; "" for totals */
    size_t value_len;
    period_day first;     /* the day range the number covers */
    period_day last;
};

/* The noise for one published count: deterministic in (key, label,
 * true_count), two-sided geometric with scale sensitivity / epsilon.
 * epsilon <= 0 means off and returns 0. */
long long dp_noise(const unsigned char key[DP_KEY_BYTES], double epsilon, double sensitivity,
                   const struct dp_label *label, long long true_count);

/* true_count + dp_noise(...), clipped at 0. */
long long dp_publish(const unsigned char key[DP_KEY_BYTES], double epsilon, double sensitivity,
                     const struct dp_label *label, long long true_count);

/* Variance of the noise: 2a / (1 - a)^2 with a = exp(-epsilon / sensitivity). */
double dp_noise_variance(double epsilon, double sensitivity);

/* Fill `key` with fresh random bytes (libsodium's CSPRNG). */
void dp_key_generate(unsigned char key[DP_KEY_BYTES]);

#endif
