/* target_config.c - fuzz target config: the config engine (common/config.c)
 * on any file and any command line.
 *
 * The input is written to one file per process (a memfd, else a temp file
 * removed at exit) and loaded over the collector's table (with its
 * cross-directive checks) and over a table holding one option of every
 * type, a secret among them; its lines are then tried as command-line
 * arguments. A loaded config holds every option within its bounds; an
 * error names a directive, never a value (only an unknown name is quoted);
 * a secret is never printed. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "collector_config.h"
#include "config.h"
#include "harness.h"
#include "util.h"

/* One option of every type, a secret among them. */
struct fuzz_conf {
    char *text;
    char *secret;
    long long count;
    double ratio;
    bool flag;
    int mode;
    struct cfg_list items;
};

#define FOPT(f) offsetof(struct fuzz_conf, f)
static const struct cfg_option fuzz_options[] = {
    {"text", CFG_STRING, FOPT(text), "veil", 0, 32, NULL, "a string", NULL, false},
    {"secret", CFG_STRING, FOPT(secret), "", 0, 64, NULL, "a secret", "never printed", true},
    {"count", CFG_INT, FOPT(count), "5", -1000, 1000, NULL, "an integer", NULL, false},
    {"ratio", CFG_DOUBLE, FOPT(ratio), "0.5", 0, 100, NULL, "a number", NULL, false},
    {"flag", CFG_BOOL, FOPT(flag), "yes", 0, 0, NULL, "a flag", NULL, false},
    {"mode", CFG_ENUM, FOPT(mode), "b", 0, 0, CFG_ENUM_NAMES("a", "b", "c"), "a choice", NULL,
     false},
    {"items", CFG_LIST, FOPT(items), "x, y", 0, 4, NULL, "a list", NULL, false},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL, NULL, false},
};

static int config_fd = -1;
static char config_path[64];

static void config_unlink(void)
{
    unlink(config_path);
}

/* One file per process, rewritten per input: a memfd (nothing left on
 * disk), else a temp file removed at exit. */
static void config_setup(void)
{
    if (config_fd >= 0)
        return;
    config_fd = memfd_create("veil-fuzz-config", MFD_CLOEXEC);
    if (config_fd >= 0) {
        str_format(config_path, sizeof config_path, "/proc/self/fd/%d", config_fd);
        FILE *f = fopen(config_path, "r");
        if (f) {
            fclose(f);
            return;
        }
        close(config_fd);
    }
    str_format(config_path, sizeof config_path, "/tmp/veil-fuzz-config.XXXXXX");
    config_fd = mkstemp(config_path);
    if (config_fd < 0) {
        perror("fuzz config: mkstemp");
        abort();
    }
    atexit(config_unlink);
}

static void config_write(const uint8_t *data, size_t size)
{
    if (ftruncate(config_fd, 0) != 0)
        abort();
    for (size_t off = 0; off < size;) {
        ssize_t n = pwrite(config_fd, data + off, size - off, (off_t)off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
}

/* Every option of a loaded config within its declared bounds. */
static void check_conf(const char *t, const struct cfg_option *table, const void *conf)
{
    for (const struct cfg_option *o = table; o->name; o++) {
        const void *f = (const char *)conf + o->offset;
        switch (o->type) {
        case CFG_STRING: {
            const char *s = *(char *const *)f;
            CHECK(t, s != NULL && utf8_valid(s, strlen(s)));
            CHECK(t, o->max <= 0 || (long long)strlen(s) <= o->max);
            break;
        }
        case CFG_INT: {
            long long v = *(const long long *)f;
            CHECK(t, v >= o->min && v <= o->max);
            break;
        }
        case CFG_DOUBLE: {
            double d = *(const double *)f;
            CHECK(t, isfinite(d) && d >= (double)o->min && d <= (double)o->max);
            break;
        }
        case CFG_BOOL: {
            unsigned char b;
            memcpy(&b, f, 1);
            CHECK(t, b <= 1);
            break;
        }
        case CFG_ENUM: {
            int v = *(const int *)f, n = 0;
            while (o->enum_names[n])
                n++;
            CHECK(t, v >= 0 && v < n);
            break;
        }
        case CFG_LIST: {
            const struct cfg_list *l = f;
            CHECK(t, (long long)l->n <= o->max && (l->n == 0 || l->items != NULL));
            for (size_t i = 0; i < l->n; i++) {
                size_t len = strlen(l->items[i]);
                CHECK(t, len > 0 && len <= 255 && !strpbrk(l->items[i], ", \t\n\v\f\r"));
            }
            break;
        }
        }
    }
}

/* A config error: "path:line: reason" or "reason". Only an unknown
 * directive or argument is quoted (at most 64 bytes of it); every other
 * reason names a directive of the table, never a value. */
static void check_config_error(const char *t, struct reason_set *set, const char *err,
                               size_t errlen)
{
    CHECK(t, fuzz_fits(err, errlen) && err[0] != '\0');
    const char *r = err;
    size_t plen = strlen(config_path);
    if (strncmp(r, config_path, plen) == 0 && r[plen] == ':') {
        r += plen + 1;
        while (*r >= '0' && *r <= '9')
            r++;
        if (*r == ':')
            r++;
        if (*r == ' ')
            r++;
    }
    if (strncmp(r, "unknown directive '", 19) == 0 || strncmp(r, "unknown option '--", 18) == 0 ||
        strncmp(r, "unexpected argument '", 21) == 0) {
        CHECK(t, strlen(r) <= 21 + 64 + 60);
        return;
    }
    CHECKF(t, strlen(r) <= 100, "config reason longer than 100 bytes");
    fuzz_reason_note(t, set, r);
}

static void check_printed(const char *t, const struct fuzz_conf *fc)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    if (!m)
        abort();
    cfg_print_values(fuzz_options, fc, m);
    fclose(m);
    CHECKF(t, strstr(out, "\nsecret (secret)\n") != NULL && strstr(out, "\nsecret \"") == NULL,
           "a secret directive is printed");
    free(out);
}

/* The input's lines as command-line arguments; false (nothing to do) when
 * one of them names a config file, which would make the input choose a
 * file to read. */
#define ARGS_MAX 16
static bool split_args(const uint8_t *data, size_t size, char *buf, char **argv, int *argc)
{
    memcpy(buf, data, size);
    buf[size] = '\0';
    *argc = 0;
    argv[(*argc)++] = (char *)"fuzz";
    for (char *p = buf; *argc < ARGS_MAX - 1;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (strcmp(p, "-c") == 0 || strncmp(p, "--config", 8) == 0)
            return false;
        argv[(*argc)++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    argv[*argc] = NULL;
    return true;
}

static struct reason_set config_reasons;
static char *args_buf; /* the input's lines, NUL-terminated */
static size_t args_cap;

int fuzz_config(const uint8_t *data, size_t size)
{
    static const char t[] = "config";
    char err[512];
    enum cfg_action action;
    struct collector_config cc;
    struct fuzz_conf fc;

    config_setup();
    config_write(data, size);

    /* the collector: defaults, file, cross-directive checks */
    char prog[] = "veil-collector", opt[] = "-c";
    char *argv_file[] = {prog, opt, config_path, NULL};
    if (collector_config_load(&cc, 3, argv_file, &action, err, sizeof err) == 0) {
        CHECK(t, action == CFG_RUN);
        check_conf(t, collector_options, &cc);
    } else {
        check_config_error(t, &config_reasons, err, sizeof err);
    }
    collector_config_free(&cc);

    /* every option type, through the engine alone */
    memset(&fc, 0, sizeof fc);
    CHECK(t, cfg_defaults(fuzz_options, &fc, err, sizeof err) == 0);
    if (cfg_load_file(fuzz_options, &fc, config_path, err, sizeof err) == 0) {
        check_conf(t, fuzz_options, &fc);
        check_printed(t, &fc);
    } else {
        check_config_error(t, &config_reasons, err, sizeof err);
        check_conf(t, fuzz_options, &fc); /* a failed line leaves the old value */
    }
    cfg_free(fuzz_options, &fc);

    /* the same lines as --name=value arguments */
    char *argv[ARGS_MAX + 1];
    int argc;
    if (size + 1 > args_cap) {
        args_cap = size + 1;
        args_buf = xrealloc(args_buf, args_cap);
    }
    if (split_args(data, size, args_buf, argv, &argc)) {
        memset(&fc, 0, sizeof fc);
        CHECK(t, cfg_defaults(fuzz_options, &fc, err, sizeof err) == 0);
        if (cfg_parse_args(fuzz_options, &fc, argc, argv, &action, err, sizeof err) == 0)
            check_conf(t, fuzz_options, &fc);
        else
            check_config_error(t, &config_reasons, err, sizeof err);
        cfg_free(fuzz_options, &fc);

        if (collector_config_load(&cc, argc, argv, &action, err, sizeof err) == 0)
            check_conf(t, collector_options, &cc);
        else
            check_config_error(t, &config_reasons, err, sizeof err);
        collector_config_free(&cc);
    }
    return 0;
}

void fuzz_config_free(void)
{
    if (config_fd >= 0)
        close(config_fd);
    config_fd = -1;
    free(args_buf);
    args_buf = NULL;
    args_cap = 0;
}
