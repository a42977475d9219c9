/* test_geo.c - MaxMind lookups against the fixture built by
 * tests/fixtures/make-geo-fixture.pl (`make build/fixtures/geo-test.mmdb`),
 * found at $VEIL_BUILD/fixtures/geo-test.mmdb (VEIL_BUILD defaults to
 * "build"). The networks are listed in tests/fixtures/README.md. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo.h"

static struct geo_db *db;

static void fixture_path(char *out, size_t outlen)
{
    const char *build = getenv("VEIL_BUILD");
    snprintf(out, outlen, "%s/fixtures/geo-test.mmdb", build && *build ? build : "build");
}

static void open_fixture(void)
{
    char path[1024], err[512] = "";
    fixture_path(path, sizeof path);
    cr_assert_eq(access(path, R_OK), 0,
                 "%s missing: run `make build/fixtures/geo-test.mmdb` first", path);
    db = geo_open(path, err, sizeof err);
    cr_assert_not_null(db, "geo_open: %s", err);
}

static void close_fixture(void)
{
    geo_close(db);
    db = NULL;
}

static struct client_ip ip_from(const char *text)
{
    struct client_ip ip;
    cr_assert(anon_ip_parse(text, strlen(text), &ip), "parse %s", text);
    return ip;
}

static struct geo_result look(const char *text, enum geo_level level)
{
    struct geo_result r;
    struct client_ip ip = ip_from(text);
    memset(&r, 'X', sizeof r); /* every byte must be rewritten */
    cr_assert(geo_lookup(db, &ip, level, &r), "lookup %s", text);
    return r;
}

static void expect(const char *ip, enum geo_level level, const char *cc, const char *rg,
                   const char *city)
{
    struct geo_result r = look(ip, level);
    cr_assert_str_eq(r.country, cc, "%s level %d country", ip, (int)level);
    cr_assert_str_eq(r.region, rg, "%s level %d region", ip, (int)level);
    cr_assert_str_eq(r.city, city, "%s level %d city", ip, (int)level);
}

/* Each fixture network at every level: v4, v4-mapped v6 and v6. */
static const struct {
    const char *ip, *cc, *rg, *city;
} places[] = {
    {"203.0.113.5", "US", "CA", "San Francisco"},
    {"203.0.113.255", "US", "CA", "San Francisco"},
    {"::ffff:203.0.113.77", "US", "CA", "San Francisco"},
    {"198.51.100.1", "DE", "BE", "Berlin"},
    {"[::ffff:198.51.100.200]:443", "DE", "BE", "Berlin"},
    {"2001:db8:1::5", "FR", "IDF", "Paris"},
    {"2001:db8:1:ffff:ffff:ffff:ffff:ffff", "FR", "IDF", "Paris"},
    {"2001:db8:2::1", "BR", "SP", "S\xc3\xa3o Paulo"},
    {"192.0.2.10", "JP", "", ""},
    {"::ffff:192.0.2.10", "JP", "", ""},
};

Test(geo, level_names)
{
    cr_assert_str_eq(geo_level_names[GEO_OFF], "off");
    cr_assert_str_eq(geo_level_names[GEO_COUNTRY], "country");
    cr_assert_str_eq(geo_level_names[GEO_REGION], "region");
    cr_assert_str_eq(geo_level_names[GEO_CITY], "city");
    cr_assert_null(geo_level_names[4]);
}

Test(geo, every_level_every_family, .init = open_fixture, .fini = close_fixture)
{
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        const char *ip = places[i].ip;
        expect(ip, GEO_CITY, places[i].cc, places[i].rg, places[i].city);
        expect(ip, GEO_REGION, places[i].cc, places[i].rg, "");
        expect(ip, GEO_COUNTRY, places[i].cc, "", "");
        expect(ip, GEO_OFF, "", "", "");
    }
}

Test(geo, raw_mapped_struct_is_looked_up_as_v4, .init = open_fixture, .fini = close_fixture)
{
    /* Not through the parser: AF_INET6 with ::ffff:a.b.c.d bytes. */
    struct client_ip ip = {.family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, "::ffff:198.51.100.9", ip.addr), 1);
    struct geo_result r;
    cr_assert(geo_lookup(db, &ip, GEO_CITY, &r));
    cr_assert_str_eq(r.country, "DE");
    cr_assert_str_eq(r.city, "Berlin");
    cr_assert_eq(ip.family, AF_INET6, "caller's struct untouched");
}

Test(geo, not_in_database_gives_empty, .init = open_fixture, .fini = close_fixture)
{
    const char *misses[] = {"203.0.114.1", "198.51.101.1", "8.8.8.8", "2001:db8:9::1",
                            "2001:db8::1", "::1", "10.0.0.1"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
        expect(misses[i], GEO_CITY, "", "", "");
}

Test(geo, oversized_values, .init = open_fixture, .fini = close_fixture)
{
    /* 2001:db8:3::/48 holds country "XXL", region "ABCD" and a city of
     * 100 x "Å" (200 bytes): codes are dropped, the city is cut on a
     * character boundary. */
    struct geo_result r = look("2001:db8:3::1", GEO_CITY);
    cr_assert_str_eq(r.country, "");
    cr_assert_str_eq(r.region, "");
    size_t len = strlen(r.city);
    cr_assert_eq(len, 126, "63 two-byte characters fit in 127 bytes, got %zu", len);
    for (size_t i = 0; i < len; i += 2)
        cr_assert(r.city[i] == '\xc3' && r.city[i + 1] == '\x85', "byte %zu", i);
}

Test(geo, null_db_gives_empty)
{
    struct geo_result r;
    struct client_ip ip = ip_from("203.0.113.5");
    memset(&r, 'X', sizeof r);
    cr_assert(geo_lookup(NULL, &ip, GEO_CITY, &r));
    cr_assert_str_eq(r.country, "");
    cr_assert_str_eq(r.city, "");
    cr_assert_str_eq(geo_db_description(NULL), "");
    geo_close(NULL);
}

Test(geo, unknown_family_gives_empty, .init = open_fixture, .fini = close_fixture)
{
    struct client_ip none = {0};
    struct geo_result r;
    memset(&r, 'X', sizeof r);
    cr_assert(geo_lookup(db, &none, GEO_CITY, &r));
    cr_assert_str_eq(r.country, "");
}

Test(geo, description, .init = open_fixture, .fini = close_fixture)
{
    const char *d = geo_db_description(db);
    cr_assert_not_null(strstr(d, "Veil-Test-City built "), "%s", d);
    /* "... built YYYY-MM-DD" */
    const char *date = strstr(d, "built ") + 6;
    cr_assert_eq(strlen(date), 10, "%s", d);
    cr_assert(date[4] == '-' && date[7] == '-', "%s", d);
    cr_assert(date[0] == '2', "build year %s", date);
}

Test(geo, open_missing_file_fails_clearly)
{
    char err[512] = "";
    struct geo_db *g = geo_open("/nonexistent/veil/geo.mmdb", err, sizeof err);
    cr_assert_null(g);
    cr_assert_not_null(strstr(err, "/nonexistent/veil/geo.mmdb"), "%s", err);
    cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

Test(geo, open_non_mmdb_file_fails_clearly)
{
    char path[] = "/tmp/veil-geo-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char junk[] = "this is not a MaxMind database\n";
    for (int i = 0; i < 100; i++)
        cr_assert_eq(write(fd, junk, sizeof junk - 1), (ssize_t)(sizeof junk - 1));
    close(fd);

    char err[512] = "";
    struct geo_db *g = geo_open(path, err, sizeof err);
    unlink(path);
    cr_assert_null(g);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "metadata"), "reason: %s", err);
}

Test(geo, open_empty_file_fails)
{
    char path[] = "/tmp/veil-geo-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[512] = "";
    struct geo_db *g = geo_open(path, err, sizeof err);
    unlink(path);
    cr_assert_null(g);
    cr_assert_not_null(strstr(err, path), "%s", err);
}
