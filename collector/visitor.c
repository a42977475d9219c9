/* visitor.c - salt periods and the visitor hash (see visitor.h).
 *
 * Never logs, stores or returns the IP, the User-Agent or a salt; the
 * BLAKE2b state and raw digest are wiped after each hash. */
#include "visitor.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

const char *const visitor_hash_names[] = {"off", "day", "week", "month", NULL};

#define SECONDS_PER_DAY 86400
/* Supported time range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define SALT_MIN_TIME (-62135596800LL)
#define SALT_MAX_TIME 253402300799LL
/* 1970-01-01 was a Thursday; the first Monday is day 4 (1970-01-05). */
#define FIRST_MONDAY_DAY 4

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). month is 1..12. */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = floor_div(year, 400);
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Year and month (1..12) of a day number (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t days, int64_t *year, int *month)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

static int64_t clamp_time(int64_t t)
{
    return t < SALT_MIN_TIME ? SALT_MIN_TIME : t > SALT_MAX_TIME ? SALT_MAX_TIME : t;
}

int64_t salt_period_id(enum salt_period p, int64_t unix_seconds)
{
    int64_t day = floor_div(clamp_time(unix_seconds), SECONDS_PER_DAY);
    switch (p) {
    case SALT_DAY:
        return day;
    case SALT_WEEK:
        return floor_div(day - FIRST_MONDAY_DAY, 7);
    case SALT_MONTH: {
        int64_t year;
        int month;
        civil_from_days(day, &year, &month);
        return year * 12 + (month - 1);
    }
    case SALT_OFF:
    default:
        return 0;
    }
}

/* Keep `id` within the ids of the supported range, plus one past the end
 * so that salt_period_end of the last period is still exact. */
static int64_t clamp_id(enum salt_period p, int64_t id)
{
    int64_t lo = salt_period_id(p, SALT_MIN_TIME);
    int64_t hi = salt_period_id(p, SALT_MAX_TIME) + 1;
    return id < lo ? lo : id > hi ? hi : id;
}

int64_t salt_period_start(enum salt_period p, int64_t id)
{
    id = clamp_id(p, id);
    switch (p) {
    case SALT_DAY:
        return id * SECONDS_PER_DAY;
    case SALT_WEEK:
        return (id * 7 + FIRST_MONDAY_DAY) * SECONDS_PER_DAY;
    case SALT_MONTH: {
        int64_t year = floor_div(id, 12);
        int month = (int)(id - year * 12) + 1;
        return days_from_civil(year, month, 1) * SECONDS_PER_DAY;
    }
    case SALT_OFF:
    default:
        return 0;
    }
}

int64_t salt_period_end(enum salt_period p, int64_t id)
{
    if (p == SALT_OFF)
        return 0;
    return salt_period_start(p, clamp_id(p, id) + 1);
}

bool salt_key(enum salt_period p, int64_t id, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = '\0';
    if (p != SALT_DAY && p != SALT_WEEK && p != SALT_MONTH)
        return false;
    if (!str_format(out, outlen, "veil:salt:%s:%lld", visitor_hash_names[p], (long long)id)) {
        if (outlen > 0)
            out[0] = '\0';
        return false;
    }
    return true;
}

int64_t salt_key_ttl(enum salt_period p, int64_t id, int64_t now)
{
    if (p == SALT_OFF)
        return 0;
    id = clamp_id(p, id);
    int64_t start = salt_period_start(p, id);
    int64_t expire_at = salt_period_end(p, id + 1);
    now = clamp_time(now);
    if (now >= expire_at)
        return 0;
    int64_t ttl = expire_at - now;
    int64_t two_periods = expire_at - start;
    return ttl < two_periods ? ttl : two_periods;
}

int visitor_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void visitor_salt_random(uint8_t salt[VISITOR_SALT_BYTES])
{
    if (visitor_init() != 0) {
        log_error("visitor: libsodium failed to initialise; refusing to make a salt");
        abort();
    }
    randombytes_buf(salt, VISITOR_SALT_BYTES);
}

void visitor_hash(const uint8_t salt[VISITOR_SALT_BYTES], const char *site,
                  const struct client_ip *ip, const char *ua, size_t ua_len,
                  char out_hex[VISITOR_HASH_HEX])
{
    static const uint8_t separator = 0;
    crypto_generichash_state state;
    uint8_t digest[8];
    uint8_t addr[1 + 16];
    struct client_ip norm = *ip;

    anon_ip_normalise(&norm);
    addr[0] = norm.family == AF_INET ? 4 : norm.family == AF_INET6 ? 6 : 0;
    memcpy(addr + 1, norm.addr, 16);

    bool ok = crypto_generichash_init(&state, salt, VISITOR_SALT_BYTES, sizeof digest) == 0 &&
              crypto_generichash_update(&state, (const unsigned char *)site, strlen(site)) == 0 &&
              crypto_generichash_update(&state, &separator, 1) == 0 &&
              crypto_generichash_update(&state, addr, sizeof addr) == 0 &&
              (ua_len == 0 ||
               crypto_generichash_update(&state, (const unsigned char *)ua, ua_len) == 0) &&
              crypto_generichash_final(&state, digest, sizeof digest) == 0;
    if (ok)
        sodium_bin2hex(out_hex, VISITOR_HASH_HEX, digest, sizeof digest);
    else
        out_hex[0] = '\0';

    sodium_memzero(&state, sizeof state);
    sodium_memzero(digest, sizeof digest);
    sodium_memzero(addr, sizeof addr);
    anon_ip_wipe(&norm);
}
