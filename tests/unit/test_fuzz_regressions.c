/* test_fuzz_regressions.c - replays what the fuzzers found and started from.
 *
 * Every file under fuzz/regressions/<target>/ (an input that once crashed a
 * parser or broke one of its invariants) and, as a smoke test, every seed
 * under fuzz/corpus/<target>/ is run through the very function the
 * libFuzzer binary runs (fuzz/target_<name>.c, compiled into this test so
 * that it needs neither clang nor a Makefile rule of its own). A broken check
 * aborts with a line naming the file; under `make test SANITIZER=address`
 * memory errors fail too. Zero regression files is fine; zero seeds is not.
 *
 * Files are read into buffers of exactly their size, as libFuzzer passes
 * them, so an over-read shows under ASan. Paths are relative to
 * $VEIL_ROOT (set by scripts/run-tests.sh), else the current directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The harness, compiled in: the same code the fuzzers run. */
#include "../../fuzz/check.c"
#include "../../fuzz/harness.c"
#include "../../fuzz/target_anon.c"
#include "../../fuzz/target_checkpoint.c"
#include "../../fuzz/target_codec.c"
#include "../../fuzz/target_compat.c"
#include "../../fuzz/target_config.c"
#include "../../fuzz/target_event_parse.c"
#include "../../fuzz/target_httpd.c"
#include "../../fuzz/target_ua.c"
#include "../../fuzz/target_url.c"
#include "../../fuzz/target_rcluster.c"
#include "../../fuzz/target_api_filter.c"

static const char *root_dir(void)
{
    const char *r = getenv("VEIL_ROOT");
    return r && *r ? r : ".";
}

static const struct fuzz_target *target_named(const char *name)
{
    for (const struct fuzz_target *t = fuzz_targets; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* Read all of `path` into a malloc'd buffer of exactly its size (1 byte
 * for an empty file, which is passed with size 0). */
static uint8_t *read_input(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    struct stat st;
    cr_assert(fstat(fileno(f), &st) == 0);
    *size = (size_t)st.st_size;
    uint8_t *buf = malloc(*size ? *size : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, *size, f), *size, "short read of %s", path);
    fclose(f);
    return buf;
}

static int visible(const struct dirent *d)
{
    return d->d_name[0] != '.' && strcmp(d->d_name, "README.md") != 0;
}

/* Run every file of <root>/fuzz/<kind>/<target>/ in name order; returns how
 * many (0 when the directory does not exist). */
static size_t replay_dir(const struct fuzz_target *t, const char *kind)
{
    char dir[1024];
    struct dirent **names;
    cr_assert(str_format(dir, sizeof dir, "%s/fuzz/%s/%s", root_dir(), kind, t->name));
    int n = scandir(dir, &names, visible, alphasort);
    if (n < 0)
        return 0;
    size_t replayed = 0;
    for (int i = 0; i < n; i++) {
        char path[1280];
        struct stat st;
        cr_assert(str_format(path, sizeof path, "%s/%s", dir, names[i]->d_name));
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t size;
            uint8_t *data = read_input(path, &size);
            fuzz_set_input_name(path);
            cr_assert_eq(t->run(data, size), 0, "%s", path);
            fuzz_set_input_name(NULL);
            free(data);
            replayed++;
        }
        free(names[i]);
    }
    free(names);
    return replayed;
}

static void replay(const char *name)
{
    const struct fuzz_target *t = target_named(name);
    cr_assert_not_null(t, "no fuzz target %s", name);
    size_t seeds = replay_dir(t, "corpus");
    size_t found = replay_dir(t, "regressions");
    cr_assert_gt(seeds, 0, "no seeds in fuzz/corpus/%s (is VEIL_ROOT the repository?)", name);
    cr_log_info("%s: %zu seeds, %zu regressions", name, seeds, found);
    fuzz_harness_free();
}

Test(fuzz_regressions, event_parse_json) { replay("event_parse_json"); }
Test(fuzz_regressions, event_parse_query) { replay("event_parse_query"); }
Test(fuzz_regressions, url) { replay("url"); }
Test(fuzz_regressions, ua, .timeout = 120) { replay("ua"); }
Test(fuzz_regressions, config) { replay("config"); }
Test(fuzz_regressions, rcluster) { replay("rcluster"); }
Test(fuzz_regressions, event_codec) { replay("event_codec"); }
Test(fuzz_regressions, anon) { replay("anon"); }
Test(fuzz_regressions, httpd_parse) { replay("httpd_parse"); }
Test(fuzz_regressions, compat_umami) { replay("compat_umami"); }
Test(fuzz_regressions, compat_matomo) { replay("compat_matomo"); }
Test(fuzz_regressions, checkpoint) { replay("checkpoint"); }
Test(fuzz_regressions, api_filter) { replay("api_filter"); }

/* Every target has a test above and a seed corpus; every directory of
 * crashers names a target (a typo would silently replay nothing). */
Test(fuzz_regressions, directories_name_targets)
{
    static const char *const tested[] = {"event_parse_json", "event_parse_query", "url",
                                         "ua", "config", "event_codec", "anon",
                                         "httpd_parse", "compat_umami", "compat_matomo",
                                         "rcluster", "api_filter", "checkpoint"};
    size_t ntargets = 0;
    for (const struct fuzz_target *t = fuzz_targets; t->name; t++, ntargets++) {
        bool found = false;
        for (size_t i = 0; i < ARRAY_LEN(tested); i++)
            found = found || strcmp(tested[i], t->name) == 0;
        cr_assert(found, "fuzz target %s has no replay test", t->name);
    }
    cr_assert_eq(ntargets, ARRAY_LEN(tested));

    char dir[1024];
    cr_assert(str_format(dir, sizeof dir, "%s/fuzz/regressions", root_dir()));
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        cr_expect_not_null(target_named(e->d_name),
                           "fuzz/regressions/%s does not name a fuzz target", e->d_name);
    }
    closedir(d);
}
