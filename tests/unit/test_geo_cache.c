/* test_geo_cache.c - the per-thread geo answer cache: a hit answers what a
 * lookup would, a network narrower than the /24 or /48 the cache files
 * under is never kept, the cache never holds an address, follows database
 * reloads and the geo level, and stays within its size.
 *
 * Uses the shared fixture ($VEIL_BUILD/fixtures/geo-test.mmdb, only /24
 * and /48 networks) and databases this test writes with the same Perl
 * writer (MaxMind::DB::Writer) into a temp dir: split networks for the
 * cases the fixture does not have, as an IPv6 tree (IPv4 aliased into it)
 * and as an IPv4-only tree. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo.h"
#include "geo_cache.h"

/* Networks split below /24 and /48, and wider ones:
 *   203.0.113.0/25   US CA San Francisco | 203.0.113.128/25     DE BE Berlin
 *   198.51.100.7/32  JP                  (the rest of its /24 is empty)
 *   100.64.0.0/10    NL NH Amsterdam     (many /24s, one answer)
 * and in the IPv6 tree only:
 *   2001:db8:1::/56  FR IDF Paris        | 2001:db8:1:100::/56  BR SP Recife
 *   2001:db8:2::/47  SE AB Stockholm     (two /48s, one answer) */
static const char split_writer[] =
    "use strict; use warnings; use MaxMind::DB::Writer::Tree;\n"
    "my ($out, $v) = @ARGV;\n"
    "my %t = (city => 'map', country => 'map', subdivisions => ['array', 'map'],\n"
    "         names => 'map', en => 'utf8_string', iso_code => 'utf8_string');\n"
    "my $tree = MaxMind::DB::Writer::Tree->new(ip_version => $v, record_size => 28,\n"
    "    database_type => 'Veil-Test-Split', languages => ['en'],\n"
    "    description => {en => 'split'}, map_key_type_callback => sub { $t{$_[0]} },\n"
    "    alias_ipv6_to_ipv4 => $v == 6, remove_reserved_networks => 0);\n"
    "sub place { my ($cc, $rg, $city) = @_;\n"
    "    my %r = (country => {iso_code => $cc});\n"
    "    $r{subdivisions} = [{iso_code => $rg}] if defined $rg;\n"
    "    $r{city} = {names => {en => $city}} if defined $city; return \\%r; }\n"
    "$tree->insert_network('203.0.113.0/25', place('US', 'CA', 'San Francisco'));\n"
    "$tree->insert_network('203.0.113.128/25', place('DE', 'BE', 'Berlin'));\n"
    "$tree->insert_network('198.51.100.7/32', place('JP'));\n"
    "$tree->insert_network('100.64.0.0/10', place('NL', 'NH', 'Amsterdam'));\n"
    "if ($v == 6) {\n"
    "  $tree->insert_network('2001:db8:1::/56', place('FR', 'IDF', 'Paris'));\n"
    "  $tree->insert_network('2001:db8:1:100::/56', place('BR', 'SP', 'Recife'));\n"
    "  $tree->insert_network('2001:db8:2::/47', place('SE', 'AB', 'Stockholm'));\n"
    "}\n"
    "open my $fh, '>:raw', $out or die; $tree->write_tree($fh); close $fh or die;\n";

static char tmpdir[] = "/tmp/veil-geo-cache-XXXXXX";
static bool have_tmpdir;
static struct geo_db *fixture, *split[2]; /* split[0]: IPv4 tree, split[1]: IPv6 tree */

static struct geo_db *open_db(const char *path)
{
    char err[512] = "";
    struct geo_db *db = geo_open(path, err, sizeof err);
    cr_assert_not_null(db, "geo_open: %s", err);
    return db;
}

static void fixture_path(char *out, size_t outlen)
{
    const char *build = getenv("VEIL_BUILD");
    snprintf(out, outlen, "%s/fixtures/geo-test.mmdb", build && *build ? build : "build");
}

/* The split database as an IPv6 tree (v6) or an IPv4-only one, written on
 * first use. */
static struct geo_db *split_db(bool v6)
{
    if (split[v6])
        return split[v6];
    if (!have_tmpdir) {
        cr_assert_not_null(mkdtemp(tmpdir));
        have_tmpdir = true;
    }
    char script[512], db[512], cmd[2048];
    snprintf(script, sizeof script, "%s/split.pl", tmpdir);
    snprintf(db, sizeof db, "%s/split%d.mmdb", tmpdir, v6 ? 6 : 4);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs(split_writer, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "perl '%s' '%s' %d", script, db, v6 ? 6 : 4);
    cr_assert_eq(system(cmd), 0, "%s (needs libmaxmind-db-writer-perl)", cmd);
    split[v6] = open_db(db);
    return split[v6];
}

static void setup(void)
{
    char path[1024];
    fixture_path(path, sizeof path);
    cr_assert_eq(access(path, R_OK), 0,
                 "%s missing: run `make build/fixtures/geo-test.mmdb` first", path);
    fixture = open_db(path);
}

static void teardown(void)
{
    geo_close(fixture);
    geo_close(split[0]);
    geo_close(split[1]);
    if (have_tmpdir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        cr_expect_eq(system(cmd), 0);
    }
}

TestSuite(geo_cache, .init = setup, .fini = teardown);

static struct client_ip ip_from(const char *text)
{
    struct client_ip ip;
    cr_assert(anon_ip_parse(text, strlen(text), &ip), "parse %s", text);
    return ip;
}

/* Look `text` up through the cache and directly: the same answer, every
 * byte of it. */
static struct geo_result same_as_lookup(struct geo_cache *c, const struct geo_db *db,
                                        const char *text, enum geo_level level)
{
    struct client_ip ip = ip_from(text);
    struct geo_result direct, cached;
    memset(&direct, 'X', sizeof direct);
    memset(&cached, 'Y', sizeof cached);
    cr_assert(geo_lookup(db, &ip, level, &direct), "lookup %s", text);
    cr_assert(geo_cache_lookup(c, db, &ip, level, &cached), "cached lookup %s", text);
    cr_assert_eq(memcmp(&direct, &cached, sizeof direct), 0, "%s level %d: %s/%s/%s != %s/%s/%s",
                 text, (int)level, cached.country, cached.region, cached.city, direct.country,
                 direct.region, direct.city);
    return cached;
}

static uint64_t hits_of(const struct geo_cache *c)
{
    uint64_t hits;
    geo_cache_counts(c, NULL, &hits, NULL);
    return hits;
}

static size_t used_of(const struct geo_cache *c)
{
    size_t used;
    geo_cache_counts(c, &used, NULL, NULL);
    return used;
}

Test(geo_cache, hit_answers_what_a_lookup_does)
{
    static const char *const ips[] = {
        "203.0.113.5",    "203.0.113.250", "::ffff:203.0.113.77", "198.51.100.1",
        "192.0.2.10",     "2001:db8:1::5", "2001:db8:1:ffff::1",  "2001:db8:2::1",
        "2001:db8:3::1",  "8.8.8.8",       "2001:db8:9::1",       "10.0.0.1",
    };
    struct geo_cache *c = geo_cache_new(4096);
    cr_assert_not_null(c);
    for (int level = GEO_OFF; level <= GEO_CITY; level++) {
        for (int round = 0; round < 2; round++)
            for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++)
                same_as_lookup(c, fixture, ips[i], (enum geo_level)level);
    }
    /* Every fixture network is a /24 or /48, and so is the empty space
     * next to them: the second round of each level hit. */
    cr_assert_geq(hits_of(c), 3 * sizeof ips / sizeof ips[0], "hits %llu",
                  (unsigned long long)hits_of(c));
    struct geo_result r = same_as_lookup(c, fixture, "203.0.113.99", GEO_CITY);
    cr_assert_str_eq(r.city, "San Francisco");
    geo_cache_free(c);
}

Test(geo_cache, a_hit_needs_the_same_network)
{
    struct geo_cache *c = geo_cache_new(64);
    same_as_lookup(c, fixture, "203.0.113.5", GEO_CITY);
    uint64_t hits = hits_of(c);
    same_as_lookup(c, fixture, "203.0.113.200", GEO_CITY); /* same /24 */
    cr_assert_eq(hits_of(c), hits + 1);
    struct geo_result r = same_as_lookup(c, fixture, "203.0.114.5", GEO_CITY); /* next /24 */
    cr_assert_eq(hits_of(c), hits + 1);
    cr_assert_str_eq(r.country, "");
    same_as_lookup(c, fixture, "::ffff:203.0.113.9", GEO_CITY); /* mapped: the same /24 */
    cr_assert_eq(hits_of(c), hits + 2);
    geo_cache_free(c);
}

/* Networks narrower than /24 or /48, found or empty, are never kept: each
 * address of a split network gets its own answer, in both tree shapes. */
static void check_split(const struct geo_db *db, bool v6)
{
    struct geo_cache *c = geo_cache_new(64);
    struct geo_result r = same_as_lookup(c, db, "203.0.113.5", GEO_CITY);
    cr_assert_str_eq(r.city, "San Francisco");
    r = same_as_lookup(c, db, "203.0.113.200", GEO_CITY);
    cr_assert_str_eq(r.city, "Berlin");
    r = same_as_lookup(c, db, "198.51.100.200", GEO_CITY); /* empty /25 */
    cr_assert_str_eq(r.country, "");
    r = same_as_lookup(c, db, "198.51.100.6", GEO_CITY); /* empty /32 */
    cr_assert_str_eq(r.country, "");
    r = same_as_lookup(c, db, "198.51.100.7", GEO_CITY);
    cr_assert_str_eq(r.country, "JP");
    if (v6) {
        r = same_as_lookup(c, db, "2001:db8:1::1", GEO_CITY);
        cr_assert_str_eq(r.city, "Paris");
        r = same_as_lookup(c, db, "2001:db8:1:100::1", GEO_CITY);
        cr_assert_str_eq(r.city, "Recife");
    }
    cr_assert_eq(used_of(c), 0, "a split network was cached");
    cr_assert_eq(hits_of(c), 0);

    /* A network wider than the cache's prefix is kept, once per /24 or /48. */
    same_as_lookup(c, db, "100.64.1.1", GEO_CITY);
    r = same_as_lookup(c, db, "100.64.1.2", GEO_CITY);
    cr_assert_str_eq(r.city, "Amsterdam");
    cr_assert_eq(hits_of(c), 1);
    if (v6) {
        same_as_lookup(c, db, "2001:db8:2::1", GEO_CITY);
        r = same_as_lookup(c, db, "2001:db8:2:ffff::1", GEO_CITY);
        cr_assert_str_eq(r.city, "Stockholm");
        cr_assert_eq(hits_of(c), 2);
    }
    cr_assert_eq(used_of(c), v6 ? 2 : 1);
    geo_cache_free(c);
}

Test(geo_cache, split_networks_are_never_cached_v6_tree)
{
    check_split(split_db(true), true);
}

Test(geo_cache, split_networks_are_never_cached_v4_tree)
{
    check_split(split_db(false), false);
    /* An IPv4-only database knows no IPv6 address: answered, never wrong. */
    struct geo_cache *c = geo_cache_new(64);
    struct geo_result r = same_as_lookup(c, split_db(false), "2001:db8:1::1", GEO_CITY);
    cr_assert_str_eq(r.country, "");
    same_as_lookup(c, split_db(false), "2001:db8:1::1", GEO_CITY);
    geo_cache_free(c);
}

static bool memory_holds(const struct geo_cache *c, const void *needle, size_t len)
{
    const void *mem;
    size_t memlen;
    geo_cache_memory(c, &mem, &memlen);
    return memmem(mem, memlen, needle, len) != NULL;
}

Test(geo_cache, never_holds_an_address)
{
    static const char *const ips[] = {"203.0.113.77", "198.51.100.23", "2001:db8:1::77",
                                      "2001:db8:2:abcd::1"};
    struct geo_cache *c = geo_cache_new(8); /* small: few random key bytes to scan */
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++)
        same_as_lookup(c, fixture, ips[i], GEO_CITY);
    cr_assert_eq(used_of(c), 4);
    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
        struct client_ip ip = ip_from(ips[i]);
        bool v4 = ip.family == AF_INET;
        cr_assert(!memory_holds(c, ip.addr, v4 ? 4 : 16), "%s: the address", ips[i]);
        cr_assert(!memory_holds(c, ip.addr, v4 ? 3 : 6), "%s: its /24 or /48", ips[i]);
        cr_assert(!memory_holds(c, ips[i], strlen(ips[i])), "%s: its text", ips[i]);
    }
    geo_cache_free(c);
}

Test(geo_cache, a_reopened_database_empties_it)
{
    /* The fixture says 203.0.113.0/24 is San Francisco; the split database
     * says 203.0.113.128/25 is Berlin. */
    struct geo_cache *c = geo_cache_new(64);
    struct geo_result r = same_as_lookup(c, fixture, "203.0.113.200", GEO_CITY);
    cr_assert_str_eq(r.city, "San Francisco");
    r = same_as_lookup(c, split_db(true), "203.0.113.200", GEO_CITY);
    cr_assert_str_eq(r.city, "Berlin");

    /* Closed and opened again (maybe at the same address): a new serial. */
    char path[1024];
    fixture_path(path, sizeof path);
    struct geo_db *first = open_db(path);
    uint64_t first_serial = geo_db_serial(first);
    same_as_lookup(c, first, "203.0.113.1", GEO_CITY);
    cr_assert_eq(used_of(c), 1);
    geo_close(first);
    struct geo_db *second = open_db(path);
    cr_assert_neq(geo_db_serial(second), first_serial);
    cr_assert_neq(geo_db_serial(second), 0);
    uint64_t hits = hits_of(c);
    same_as_lookup(c, second, "203.0.113.1", GEO_CITY);
    cr_assert_eq(hits_of(c), hits, "an answer of a closed database was used");
    geo_close(second);
    geo_cache_free(c);
}

Test(geo_cache, the_level_is_respected)
{
    struct geo_cache *c = geo_cache_new(64);
    same_as_lookup(c, fixture, "203.0.113.5", GEO_CITY);
    struct geo_result r = same_as_lookup(c, fixture, "203.0.113.5", GEO_COUNTRY);
    cr_assert_str_eq(r.country, "US");
    cr_assert_str_eq(r.region, "");
    cr_assert_str_eq(r.city, "");
    r = same_as_lookup(c, fixture, "203.0.113.5", GEO_REGION);
    cr_assert_str_eq(r.region, "CA");
    cr_assert_str_eq(r.city, "");
    r = same_as_lookup(c, fixture, "203.0.113.5", GEO_OFF);
    cr_assert_str_eq(r.country, "");
    geo_cache_free(c);
}

Test(geo_cache, bounded)
{
    struct geo_cache *c = geo_cache_new(16);
    for (int i = 0; i < 1000; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "100.%d.%d.1", 64 + i / 256, i % 256);
        struct geo_result r = same_as_lookup(c, split_db(true), ip, GEO_CITY);
        cr_assert_str_eq(r.city, "Amsterdam");
    }
    cr_assert_leq(used_of(c), 16);
    cr_assert_geq(used_of(c), 4);
    /* The most recent network is still there. */
    uint64_t hits = hits_of(c);
    same_as_lookup(c, split_db(true), "100.67.231.9", GEO_CITY);
    cr_assert_eq(hits_of(c), hits + 1);
    geo_cache_free(c);
}

Test(geo_cache, without_a_cache_or_database)
{
    struct client_ip ip = ip_from("203.0.113.5");
    struct geo_result r;
    cr_assert(geo_cache_lookup(NULL, fixture, &ip, GEO_CITY, &r));
    cr_assert_str_eq(r.city, "San Francisco");
    struct geo_cache *c = geo_cache_new(4);
    memset(&r, 'X', sizeof r);
    cr_assert(geo_cache_lookup(c, NULL, &ip, GEO_CITY, &r));
    cr_assert_str_eq(r.country, "");
    struct client_ip none = {0};
    cr_assert(geo_cache_lookup(c, fixture, &none, GEO_CITY, &r));
    cr_assert_str_eq(r.country, "");
    cr_assert_eq(used_of(c), 0);
    geo_cache_free(c);
    geo_cache_free(NULL);
}
