/* geo-pick.c - bench helper: read IP addresses (one a line) on stdin, print
 * "ip<TAB>country<TAB>subdivision<TAB>city" for those the MaxMind City
 * database places in a city. Used once by make-ip-mix.py to build
 * bench/data/ips.tsv; not part of Veil.
 *
 *   cc -O2 -o geo-pick geo-pick.c -lmaxminddb
 *   geo-pick GeoLite2-City.mmdb < candidates.txt */
#include <maxminddb.h>
#include <stdio.h>
#include <string.h>

static void get(MMDB_entry_s *e, char *out, size_t outlen, const char *const *path)
{
    MMDB_entry_data_s d;
    out[0] = '\0';
    if (MMDB_aget_value(e, &d, path) == MMDB_SUCCESS && d.has_data &&
        d.type == MMDB_DATA_TYPE_UTF8_STRING && d.data_size < outlen) {
        memcpy(out, d.utf8_string, d.data_size);
        out[d.data_size] = '\0';
    }
}

int main(int argc, char **argv)
{
    MMDB_s db;
    if (argc != 2 || MMDB_open(argv[1], MMDB_MODE_MMAP, &db) != MMDB_SUCCESS) {
        fprintf(stderr, "usage: geo-pick DB.mmdb < ips\n");
        return 2;
    }
    static const char *const cc_path[] = {"country", "iso_code", NULL};
    static const char *const rg_path[] = {"subdivisions", "0", "iso_code", NULL};
    static const char *const city_path[] = {"city", "names", "en", NULL};
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        int gai, mmerr;
        MMDB_lookup_result_s r = MMDB_lookup_string(&db, line, &gai, &mmerr);
        if (gai != 0 || mmerr != MMDB_SUCCESS || !r.found_entry)
            continue;
        char cc[8], rg[16], city[128];
        get(&r.entry, cc, sizeof cc, cc_path);
        get(&r.entry, rg, sizeof rg, rg_path);
        get(&r.entry, city, sizeof city, city_path);
        if (cc[0] && city[0])
            printf("%s\t%s\t%s\t%s\n", line, cc, rg, city);
    }
    MMDB_close(&db);
    return 0;
}
