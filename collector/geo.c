/* geo.c - MaxMind DB lookups (see geo.h).
 *
 * Never logs, stores or returns the client IP: the sockaddr built for the
 * lookup lives on the stack and is wiped before return. */
#include "geo.h"

#include <errno.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

const char *const geo_level_names[] = {"off", "country", "region", "city", NULL};

struct geo_db {
    MMDB_s mmdb;
    uint64_t serial;
    char description[160];
};

/* Serials handed out by geo_open; 0 is never one. */
static _Atomic uint64_t last_serial;

struct geo_db *geo_open(const char *path, char *err, size_t errlen)
{
    struct geo_db *db = xcalloc(1, sizeof *db);
    int status = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
    if (status != MMDB_SUCCESS) {
        int saved_errno = errno;
        if (status == MMDB_IO_ERROR || status == MMDB_FILE_OPEN_ERROR)
            str_format(err, errlen, "geo database '%s': %s: %s", path,
                       MMDB_strerror(status), strerror(saved_errno));
        else
            str_format(err, errlen, "geo database '%s': %s", path, MMDB_strerror(status));
        free(db);
        return NULL;
    }

    db->serial = atomic_fetch_add(&last_serial, 1) + 1;
    const MMDB_metadata_s *meta = &db->mmdb.metadata;
    char built[11] = "unknown";
    if (meta->build_epoch > 0 && meta->build_epoch <= (uint64_t)INT64_MAX)
        utc_day((int64_t)meta->build_epoch, built);
    str_format(db->description, sizeof db->description, "%.100s built %s",
               meta->database_type ? meta->database_type : "(untyped)", built);
    return db;
}

void geo_close(struct geo_db *db)
{
    if (!db)
        return;
    MMDB_close(&db->mmdb);
    free(db);
}

const char *geo_db_description(const struct geo_db *db)
{
    return db ? db->description : "";
}

int64_t geo_db_build_epoch(const struct geo_db *db)
{
    if (!db || db->mmdb.metadata.build_epoch > (uint64_t)INT64_MAX)
        return 0;
    return (int64_t)db->mmdb.metadata.build_epoch;
}

uint64_t geo_db_serial(const struct geo_db *db)
{
    return db ? db->serial : 0;
}

/* Length of the longest prefix of s[0..len) that fits in `max` bytes
 * without cutting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    /* Back off over continuation bytes to the lead byte of the cut char. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Read the UTF-8 string at `path` under `entry` into dst[dstsize].
 * `cut`: shorten an oversized value at a character boundary; otherwise an
 * oversized value is dropped. Missing, non-string or invalid UTF-8 values
 * give "". Returns false only on a database error. */
static bool read_string(MMDB_entry_s *entry, const char *const *path, char *dst,
                        size_t dstsize, bool cut)
{
    MMDB_entry_data_s data;
    dst[0] = '\0';
    int status = MMDB_aget_value(entry, &data, path);
    if (status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR ||
        status == MMDB_INVALID_LOOKUP_PATH_ERROR)
        return true;
    if (status != MMDB_SUCCESS)
        return false;
    if (!data.has_data || data.type != MMDB_DATA_TYPE_UTF8_STRING)
        return true;

    size_t len = data.data_size;
    if (len >= dstsize) {
        if (!cut)
            return true;
        len = utf8_cut(data.utf8_string, len, dstsize - 1);
    }
    if (!utf8_valid(data.utf8_string, len))
        return true;
    str_copy(dst, dstsize, data.utf8_string, len);
    return true;
}

/* A sockaddr for `ip` (mapped v6 as v4), written into `ss`. */
static bool fill_sockaddr(const struct client_ip *ip, struct sockaddr_storage *ss)
{
    struct client_ip norm = *ip;
    anon_ip_normalise(&norm);
    memset(ss, 0, sizeof *ss);
    bool ok = true;
    if (norm.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, norm.addr, 4);
    } else if (norm.family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, norm.addr, 16);
    } else {
        ok = false;
    }
    anon_ip_wipe(&norm);
    return ok;
}

/* The prefix length, in bits of the family of `ss`, of the network that
 * decided lookup `found`. MaxMind counts the bits of the tree it walked:
 * an IPv4 address in an IPv6 tree starts below ::/96, so those 96 bits
 * are not its own (fewer when the tree ends above ::/96: then one record
 * covers all of IPv4). */
static int network_bits(const MMDB_s *mmdb, const struct sockaddr_storage *ss,
                        const MMDB_lookup_result_s *found)
{
    int bits = found->netmask;
    if (ss->ss_family == AF_INET && mmdb->metadata.ip_version == 6)
        bits = bits > 96 ? bits - 96 : 0;
    return bits;
}

bool geo_lookup(const struct geo_db *db, const struct client_ip *ip, enum geo_level level,
                struct geo_result *out)
{
    int prefix_bits;
    return geo_lookup_network(db, ip, level, out, &prefix_bits);
}

bool geo_lookup_network(const struct geo_db *db, const struct client_ip *ip,
                        enum geo_level level, struct geo_result *out, int *prefix_bits)
{
    static const char *const country_path[] = {"country", "iso_code", NULL};
    static const char *const region_path[] = {"subdivisions", "0", "iso_code", NULL};
    static const char *const city_path[] = {"city", "names", "en", NULL};

    memset(out, 0, sizeof *out);
    *prefix_bits = -1;
    if (!db || !ip || level == GEO_OFF)
        return true;

    struct sockaddr_storage ss;
    if (!fill_sockaddr(ip, &ss)) {
        sodium_memzero(&ss, sizeof ss);
        return true;
    }
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s found =
        MMDB_lookup_sockaddr(&db->mmdb, (const struct sockaddr *)&ss, &mmdb_error);
    if (mmdb_error == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) {
        sodium_memzero(&ss, sizeof ss);
        *prefix_bits = 0; /* an IPv4-only database knows nothing about v6 */
        return true;
    }
    int bits = network_bits(&db->mmdb, &ss, &found);
    sodium_memzero(&ss, sizeof ss);
    if (mmdb_error != MMDB_SUCCESS)
        return false;
    if (!found.found_entry) {
        *prefix_bits = bits;
        return true;
    }

    bool ok = read_string(&found.entry, country_path, out->country, sizeof out->country,
                          false);
    if (ok && level >= GEO_REGION)
        ok = read_string(&found.entry, region_path, out->region, sizeof out->region, false);
    if (ok && level >= GEO_CITY)
        ok = read_string(&found.entry, city_path, out->city, sizeof out->city, true);
    if (ok)
        *prefix_bits = bits;
    else
        memset(out, 0, sizeof *out);
    sodium_memzero(&found, sizeof found);
    return ok;
}
