/* test_visitor.c - salt periods, salt keys and expiry, and the visitor hash
 * (P2): known-answer vectors computed independently with Python's
 * hashlib.blake2b(key=..., digest_size=8). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include "visitor.h"

#define DAY 86400LL

/* 2024-01-01T00:00:00Z, a Monday (day 19723 since the epoch). */
#define T_2024_01_01 1704067200LL

static struct client_ip ip_from(const char *text)
{
    struct client_ip ip;
    cr_assert(anon_ip_parse(text, strlen(text), &ip), "parse %s", text);
    return ip;
}

static int64_t utc(int year, int month, int day)
{
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    return (int64_t)timegm(&tm);
}

Test(visitor, names_match_enum)
{
    cr_assert_str_eq(visitor_hash_names[SALT_OFF], "off");
    cr_assert_str_eq(visitor_hash_names[SALT_DAY], "day");
    cr_assert_str_eq(visitor_hash_names[SALT_WEEK], "week");
    cr_assert_str_eq(visitor_hash_names[SALT_MONTH], "month");
    cr_assert_null(visitor_hash_names[4]);
}

Test(salt_period, day_boundary_at_midnight_utc)
{
    cr_assert_eq(salt_period_id(SALT_DAY, 0), 0);
    cr_assert_eq(salt_period_id(SALT_DAY, DAY - 1), 0);
    cr_assert_eq(salt_period_id(SALT_DAY, -1), -1);
    cr_assert_eq(salt_period_id(SALT_DAY, T_2024_01_01 - 1), 19722);
    cr_assert_eq(salt_period_id(SALT_DAY, T_2024_01_01), 19723);
    cr_assert_eq(salt_period_start(SALT_DAY, 19723), T_2024_01_01);
    cr_assert_eq(salt_period_end(SALT_DAY, 19723), T_2024_01_01 + DAY);
    cr_assert_eq(salt_period_end(SALT_DAY, 19722), salt_period_start(SALT_DAY, 19723));
}

Test(salt_period, iso_week_starts_on_monday)
{
    /* 1970-01-05 (Monday) starts week 0; the Thursday epoch is in week -1. */
    cr_assert_eq(salt_period_id(SALT_WEEK, 4 * DAY), 0);
    cr_assert_eq(salt_period_id(SALT_WEEK, 4 * DAY - 1), -1);
    cr_assert_eq(salt_period_id(SALT_WEEK, 0), -1);
    cr_assert_eq(salt_period_start(SALT_WEEK, 0), 4 * DAY);
    cr_assert_eq(salt_period_start(SALT_WEEK, -1), -3 * DAY);

    /* Sunday 2023-12-31 23:59:59 and Monday 2024-01-01 00:00:00. */
    int64_t sunday = salt_period_id(SALT_WEEK, T_2024_01_01 - 1);
    int64_t monday = salt_period_id(SALT_WEEK, T_2024_01_01);
    cr_assert_eq(monday, 2817);
    cr_assert_eq(sunday, monday - 1);
    cr_assert_eq(salt_period_start(SALT_WEEK, monday), T_2024_01_01);
    cr_assert_eq(salt_period_end(SALT_WEEK, monday), T_2024_01_01 + 7 * DAY);
    /* The whole week through Sunday 2024-01-07 23:59:59 is one period. */
    cr_assert_eq(salt_period_id(SALT_WEEK, T_2024_01_01 + 7 * DAY - 1), monday);
    cr_assert_eq(salt_period_id(SALT_WEEK, T_2024_01_01 + 7 * DAY), monday + 1);

    /* Every week start, over decades, is a Monday at 00:00 UTC (libc). */
    for (int64_t id = -600; id < 4000; id += 7) {
        time_t start = (time_t)salt_period_start(SALT_WEEK, id);
        struct tm tm;
        gmtime_r(&start, &tm);
        cr_assert_eq(tm.tm_wday, 1, "week %lld starts on wday %d", (long long)id, tm.tm_wday);
        cr_assert_eq(tm.tm_hour + tm.tm_min + tm.tm_sec, 0);
        cr_assert_eq(salt_period_id(SALT_WEEK, start), id);
        cr_assert_eq(salt_period_id(SALT_WEEK, start - 1), id - 1);
    }
}

Test(salt_period, month_boundaries)
{
    /* Dec 2023 -> Jan 2024. */
    cr_assert_eq(salt_period_id(SALT_MONTH, T_2024_01_01 - 1), 2023 * 12 + 11);
    cr_assert_eq(salt_period_id(SALT_MONTH, T_2024_01_01), 2024 * 12 + 0);
    cr_assert_eq(salt_period_start(SALT_MONTH, 2024 * 12), T_2024_01_01);
    cr_assert_eq(salt_period_end(SALT_MONTH, 2023 * 12 + 11), T_2024_01_01);
    cr_assert_eq(salt_period_start(SALT_MONTH, 2023 * 12 + 11), T_2024_01_01 - 31 * DAY);

    /* Leap February 2024: 29 days; 2023 and 1900 have 28, 2000 has 29. */
    int64_t feb24 = 2024 * 12 + 1;
    cr_assert_eq(salt_period_start(SALT_MONTH, feb24), 1706745600LL);
    cr_assert_eq(salt_period_end(SALT_MONTH, feb24), 1709251200LL);
    cr_assert_eq(salt_period_id(SALT_MONTH, 1709164800LL + 43200), feb24); /* 02-29 noon */
    cr_assert_eq(salt_period_id(SALT_MONTH, 1709251200LL), feb24 + 1);     /* 03-01 */
    int64_t feb23 = 2023 * 12 + 1, feb00 = 2000 * 12 + 1, feb1900 = 1900 * 12 + 1;
    cr_assert_eq(salt_period_end(SALT_MONTH, feb23) - salt_period_start(SALT_MONTH, feb23),
                 28 * DAY);
    cr_assert_eq(salt_period_end(SALT_MONTH, feb00) - salt_period_start(SALT_MONTH, feb00),
                 29 * DAY);
    cr_assert_eq(salt_period_end(SALT_MONTH, feb1900) -
                     salt_period_start(SALT_MONTH, feb1900), 28 * DAY);

    /* Every month start 1900..2100 agrees with libc's timegm. */
    for (int year = 1900; year <= 2100; year++)
        for (int month = 1; month <= 12; month++) {
            int64_t id = (int64_t)year * 12 + month - 1;
            int64_t start = utc(year, month, 1);
            cr_assert_eq(salt_period_start(SALT_MONTH, id), start, "%d-%02d", year, month);
            cr_assert_eq(salt_period_id(SALT_MONTH, start), id);
            cr_assert_eq(salt_period_id(SALT_MONTH, start - 1), id - 1);
        }
}

Test(salt_period, off_and_extremes)
{
    cr_assert_eq(salt_period_id(SALT_OFF, T_2024_01_01), 0);
    cr_assert_eq(salt_period_start(SALT_OFF, 5), 0);
    cr_assert_eq(salt_period_end(SALT_OFF, 5), 0);
    /* Clamped, no overflow (UBSan builds would trap otherwise). */
    cr_assert_eq(salt_period_id(SALT_DAY, INT64_MAX), salt_period_id(SALT_DAY, 253402300799LL));
    cr_assert_lt(salt_period_start(SALT_MONTH, INT64_MAX), 253402300800LL + 31 * DAY);
    cr_assert_gt(salt_period_end(SALT_WEEK, INT64_MIN), -62135596800LL - 7 * DAY);
}

Test(salt_key, names_and_ids)
{
    char key[40];
    cr_assert(salt_key(SALT_DAY, 19723, key, sizeof key));
    cr_assert_str_eq(key, "veil:salt:day:19723");
    cr_assert(salt_key(SALT_WEEK, 2817, key, sizeof key));
    cr_assert_str_eq(key, "veil:salt:week:2817");
    cr_assert(salt_key(SALT_MONTH, 24289, key, sizeof key));
    cr_assert_str_eq(key, "veil:salt:month:24289");
    cr_assert(salt_key(SALT_WEEK, -1, key, sizeof key));
    cr_assert_str_eq(key, "veil:salt:week:-1");
    cr_assert(salt_key(SALT_MONTH, INT64_MIN, key, sizeof key)); /* 40 bytes always fit */

    cr_assert_not(salt_key(SALT_OFF, 1, key, sizeof key));
    cr_assert_str_eq(key, "");
    char small[10];
    cr_assert_not(salt_key(SALT_DAY, 19723, small, sizeof small));
    cr_assert_str_eq(small, "");
}

Test(salt_key, ttl_is_at_most_two_periods)
{
    int64_t id = 19723;
    /* Made at the very start of the day: lives through the next day. */
    cr_assert_eq(salt_key_ttl(SALT_DAY, id, T_2024_01_01), 2 * DAY);
    /* Made at 18:00: until the end of the next day. */
    cr_assert_eq(salt_key_ttl(SALT_DAY, id, T_2024_01_01 + 18 * 3600), DAY + 6 * 3600);
    /* The previous day's salt, read during today, expires at today's end. */
    cr_assert_eq(salt_key_ttl(SALT_DAY, id - 1, T_2024_01_01 + 3600), DAY - 3600);
    /* Expired: must not be stored. */
    cr_assert_eq(salt_key_ttl(SALT_DAY, id - 1, T_2024_01_01 + DAY), 0);
    cr_assert_eq(salt_key_ttl(SALT_DAY, id - 5, T_2024_01_01), 0);
    /* A clock far behind never yields more than two periods. */
    cr_assert_eq(salt_key_ttl(SALT_DAY, id, T_2024_01_01 - 30 * DAY), 2 * DAY);
    /* Month: February 2024 (29 d) plus March (31 d). */
    cr_assert_eq(salt_key_ttl(SALT_MONTH, 2024 * 12 + 1, 1706745600LL), 60 * DAY);
    /* Week. */
    cr_assert_eq(salt_key_ttl(SALT_WEEK, 2817, T_2024_01_01 + DAY), 13 * DAY);
    cr_assert_eq(salt_key_ttl(SALT_OFF, 0, T_2024_01_01), 0);

    for (int64_t now = T_2024_01_01 - 3 * DAY; now < T_2024_01_01 + 3 * DAY; now += 3599) {
        for (enum salt_period p = SALT_DAY; p <= SALT_MONTH; p++) {
            int64_t cur = salt_period_id(p, now);
            int64_t ttl = salt_key_ttl(p, cur, now);
            int64_t two = salt_period_end(p, cur + 1) - salt_period_start(p, cur);
            cr_assert_gt(ttl, 0);
            cr_assert_leq(ttl, two);
            /* It outlives the current period (the next one needs it). */
            cr_assert_gt(now + ttl, salt_period_end(p, cur));
        }
    }
}

/* ---- the hash ---- */

static uint8_t test_salt[VISITOR_SALT_BYTES];

static void init_salt(void)
{
    cr_assert_eq(visitor_init(), 0);
    for (int i = 0; i < VISITOR_SALT_BYTES; i++)
        test_salt[i] = (uint8_t)i;
}

#define FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"

Test(visitor_hash, known_answer_vectors, .init = init_salt)
{
    /* python3: hashlib.blake2b(site + b"\0" + family + addr16 + ua,
     *          key=bytes(range(32)), digest_size=8).hexdigest() */
    char hex[VISITOR_HASH_HEX];
    struct client_ip ip = ip_from("203.0.113.7");
    visitor_hash(test_salt, "example.com", &ip, FIREFOX, strlen(FIREFOX), hex);
    cr_assert_str_eq(hex, "e7cf89cfa7d34936");

    ip = ip_from("2001:db8:1::42");
    visitor_hash(test_salt, "example.com", &ip, FIREFOX, strlen(FIREFOX), hex);
    cr_assert_str_eq(hex, "44c4996422da70e5");

    ip = ip_from("198.51.100.23");
    visitor_hash(test_salt, "blog.example.org", &ip, NULL, 0, hex);
    cr_assert_str_eq(hex, "1a333a32690eb663");
}

Test(visitor_hash, sixteen_lowercase_hex, .init = init_salt)
{
    char hex[VISITOR_HASH_HEX];
    memset(hex, 'X', sizeof hex);
    struct client_ip ip = ip_from("2001:db8::1");
    for (int i = 0; i < 50; i++) {
        char ua[32];
        snprintf(ua, sizeof ua, "agent-%d", i);
        visitor_hash(test_salt, "example.com", &ip, ua, strlen(ua), hex);
        cr_assert_eq(strlen(hex), 16);
        for (int k = 0; k < 16; k++)
            cr_assert((hex[k] >= '0' && hex[k] <= '9') || (hex[k] >= 'a' && hex[k] <= 'f'),
                      "bad char in %s", hex);
    }
}

Test(visitor_hash, stable_and_sensitive_to_every_input, .init = init_salt)
{
    char base[VISITOR_HASH_HEX], again[VISITOR_HASH_HEX], other[VISITOR_HASH_HEX];
    struct client_ip ip = ip_from("203.0.113.7");
    struct client_ip ip2 = ip_from("203.0.113.8");
    const char *ua = FIREFOX;

    visitor_hash(test_salt, "example.com", &ip, ua, strlen(ua), base);
    visitor_hash(test_salt, "example.com", &ip, ua, strlen(ua), again);
    cr_assert_str_eq(base, again, "same inputs, same period: same hash");

    uint8_t salt2[VISITOR_SALT_BYTES];
    memcpy(salt2, test_salt, sizeof salt2);
    salt2[31] ^= 1;
    visitor_hash(salt2, "example.com", &ip, ua, strlen(ua), other);
    cr_assert_str_neq(base, other, "salt");

    visitor_hash(test_salt, "example.org", &ip, ua, strlen(ua), other);
    cr_assert_str_neq(base, other, "site");

    visitor_hash(test_salt, "example.com", &ip2, ua, strlen(ua), other);
    cr_assert_str_neq(base, other, "ip");

    visitor_hash(test_salt, "example.com", &ip, ua, strlen(ua) - 1, other);
    cr_assert_str_neq(base, other, "ua");

    /* The separator keeps site and address apart. */
    struct client_ip v6 = ip_from("2001:db8::1");
    visitor_hash(test_salt, "a", &v6, "", 0, base);
    visitor_hash(test_salt, "a\x06", &v6, "", 0, other);
    cr_assert_str_neq(base, other);
}

Test(visitor_hash, mapped_v6_hashes_as_v4, .init = init_salt)
{
    char v4hex[VISITOR_HASH_HEX], mappedhex[VISITOR_HASH_HEX];
    struct client_ip v4 = ip_from("203.0.113.7");
    struct client_ip mapped = {.family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, "::ffff:203.0.113.7", mapped.addr), 1);
    visitor_hash(test_salt, "example.com", &v4, "ua", 2, v4hex);
    visitor_hash(test_salt, "example.com", &mapped, "ua", 2, mappedhex);
    cr_assert_str_eq(v4hex, mappedhex);
    /* The caller's struct is not modified. */
    cr_assert_eq(mapped.family, AF_INET6);
}

Test(visitor_salt, random_salts_differ)
{
    uint8_t a[VISITOR_SALT_BYTES], b[VISITOR_SALT_BYTES], zero[VISITOR_SALT_BYTES] = {0};
    visitor_salt_random(a);
    visitor_salt_random(b);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
    cr_assert_neq(memcmp(a, zero, sizeof a), 0);
    cr_assert_neq(memcmp(b, zero, sizeof b), 0);
}
