/* test_kanon_dp.c - the privacy filters at publication: k-anonymity
 * folding into "(other)" and deterministic differential-privacy noise. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "kanon.h"

static struct stats_row row(const char *value, long long visitors, long long pv)
{
    struct stats_row r = {0};
    r.value = strdup(value);
    r.value_len = strlen(value);
    r.visitors = visitors;
    r.pageviews = pv;
    r.visits = visitors;
    r.events = pv + 1;
    return r;
}

Test(kanon, rows_below_k_and_other_are_folded_stably)
{
    struct stats_row rows[6] = {row("/a", 10, 100), row("/b", 3, 30),      row("/c", 5, 50),
                                row("/d", 4, 40),   row("(other)", 2, 20), row("/e", 7, 70)};
    size_t folded;
    size_t kept = kanon_partition(rows, 6, 5, &folded);
    cr_assert_eq(kept, 3);
    cr_expect_eq(folded, 2, "\"(other)\" is merged but not counted as a folded row");
    cr_expect_str_eq(rows[0].value, "/a");
    cr_expect_str_eq(rows[1].value, "/c");
    cr_expect_str_eq(rows[2].value, "/e");
    cr_expect_str_eq(rows[3].value, "/b");
    cr_expect_str_eq(rows[4].value, "/d");
    cr_expect_str_eq(rows[5].value, "(other)");

    struct stats_row other = {0};
    kanon_sum(rows + kept, 6 - kept, &other);
    cr_expect_eq(other.pageviews, 30 + 40 + 20);
    cr_expect_eq(other.visits, 3 + 4 + 2);
    cr_expect_eq(other.events, 31 + 41 + 21);
    cr_expect_eq(other.visitors, 0, "visitors come from an HLL union, not a sum");
    for (int i = 0; i < 6; i++)
        free(rows[i].value);
}

Test(kanon, k_of_one_keeps_every_row_but_merges_other)
{
    struct stats_row rows[3] = {row("x", 1, 1), row("(other)", 1, 1), row("y", 0, 4)};
    size_t folded;
    size_t kept = kanon_partition(rows, 3, 1, &folded);
    cr_expect_eq(kept, 2);
    cr_expect_eq(folded, 0);
    cr_expect_str_eq(rows[2].value, "(other)");
    cr_expect(kanon_publishable(0, 1));
    cr_expect_not(kanon_publishable(4, 5));
    cr_expect(kanon_publishable(5, 5));
    for (int i = 0; i < 3; i++)
        free(rows[i].value);
}

Test(kanon, no_kept_row_is_below_k_random)
{
    srand(7);
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(rand() % 40);
        long long k = 1 + rand() % 10;
        struct stats_row *rows = calloc(n + 1, sizeof *rows);
        long long sum_pv = 0;
        for (size_t i = 0; i < n; i++) {
            char v[32];
            snprintf(v, sizeof v, "v%zu", i);
            rows[i] = row(v, rand() % 15, rand() % 100);
            sum_pv += rows[i].pageviews;
        }
        size_t folded;
        size_t kept = kanon_partition(rows, n, k, &folded);
        cr_assert_eq(kept + folded, n);
        long long kept_pv = 0;
        for (size_t i = 0; i < n; i++) {
            if (i < kept) {
                cr_assert(k <= 1 || rows[i].visitors >= k);
                kept_pv += rows[i].pageviews;
            } else {
                cr_assert(rows[i].visitors < k);
            }
        }
        struct stats_row other = {0};
        kanon_sum(rows + kept, n - kept, &other);
        cr_assert_eq(kept_pv + other.pageviews, sum_pv, "folding loses no pageviews");
        for (size_t i = 0; i < n; i++)
            free(rows[i].value);
        free(rows);
    }
}

static const unsigned char key_a[DP_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
static const unsigned char key_b[DP_KEY_BYTES] = {2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

static struct dp_label label_n(char *buf, size_t size, int i)
{
    snprintf(buf, size, "/page/%d", i);
    struct dp_label l = {"example.com", "visitors", buf, strlen(buf), 20000, 20006};
    return l;
}

static void check_distribution(double epsilon, double sensitivity)
{
    const int n = 40000;
    double sum = 0, sumsq = 0;
    int zeros = 0;
    char buf[32];
    for (int i = 0; i < n; i++) {
        struct dp_label l = label_n(buf, sizeof buf, i);
        long long z = dp_noise(key_a, epsilon, sensitivity, &l, 1000000);
        sum += (double)z;
        sumsq += (double)z * (double)z;
        zeros += z == 0;
    }
    double var_expected = dp_noise_variance(epsilon, sensitivity);
    double a = exp(-epsilon / sensitivity);
    double mean = sum / n, var = sumsq / n - mean * mean;
    /* Mean within 5 standard errors of 0; variance within 10 %. */
    cr_expect(fabs(mean) < 5 * sqrt(var_expected / n), "eps %g: mean %g", epsilon, mean);
    cr_expect(fabs(var / var_expected - 1) < 0.10, "eps %g: variance %g, expected %g", epsilon,
              var, var_expected);
    /* Two-sided geometric: P(0) = (1 - a) / (1 + a). */
    double p0 = (1 - a) / (1 + a);
    cr_expect(fabs((double)zeros / n - p0) < 5 * sqrt(p0 * (1 - p0) / n) + 1e-9,
              "eps %g: P(0) %g, expected %g", epsilon, (double)zeros / n, p0);
}

Test(dp, noise_is_centred_with_the_calibrated_scale)
{
    check_distribution(1.0, 1.0);
    check_distribution(0.1, 1.0);
    check_distribution(5.0, 1.0);
    check_distribution(1.0, 100.0);
}

Test(dp, same_question_same_answer)
{
    char buf[32];
    struct dp_label l = label_n(buf, sizeof buf, 42);
    long long first = dp_publish(key_a, 0.5, 1, &l, 1234);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(dp_publish(key_a, 0.5, 1, &l, 1234), first);
}

Test(dp, answers_depend_on_key_label_and_count)
{
    char buf[32];
    int diff_key = 0, diff_count = 0, diff_range = 0, diff_metric = 0;
    for (int i = 0; i < 200; i++) {
        struct dp_label l = label_n(buf, sizeof buf, i);
        long long base = dp_noise(key_a, 0.5, 1, &l, 100);
        diff_key += dp_noise(key_b, 0.5, 1, &l, 100) != base;
        diff_count += dp_noise(key_a, 0.5, 1, &l, 101) != base;
        struct dp_label other_range = l;
        other_range.last++;
        diff_range += dp_noise(key_a, 0.5, 1, &other_range, 100) != base;
        struct dp_label other_metric = l;
        other_metric.metric = "pageviews";
        diff_metric += dp_noise(key_a, 0.5, 1, &other_metric, 100) != base;
    }
    /* With eps 0.5, P(two draws equal) is about 0.12: most must differ. */
    cr_expect_gt(diff_key, 150);
    cr_expect_gt(diff_count, 150);
    cr_expect_gt(diff_range, 150);
    cr_expect_gt(diff_metric, 150);
}

Test(dp, off_means_exact_and_counts_never_go_negative)
{
    char buf[32];
    int positive = 0;
    for (int i = 0; i < 2000; i++) {
        struct dp_label l = label_n(buf, sizeof buf, i);
        cr_assert_eq(dp_publish(key_a, 0, 1, &l, 17), 17);
        cr_assert_eq(dp_noise(key_a, 0, 1, &l, 17), 0);
        long long v = dp_publish(key_a, 0.2, 1, &l, 0);
        cr_assert_geq(v, 0);
        positive += v > 0;
    }
    cr_expect_gt(positive, 500, "noise does reach published zeros");
}

Test(dp, value_boundaries_are_part_of_the_label)
{
    /* ("ab","c") and ("a","bc") as value/metric must not collide. */
    int differ = 0;
    for (int c = 0; c < 100; c++) {
        struct dp_label x = {"s", "ab", "c", 1, 1, 1};
        struct dp_label y = {"s", "a", "bc", 2, 1, 1};
        differ += dp_noise(key_a, 0.5, 1, &x, c) != dp_noise(key_a, 0.5, 1, &y, c);
    }
    cr_expect_gt(differ, 70);
}
