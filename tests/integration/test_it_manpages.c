/* test_it_manpages.c - the manual pages come from the same tables as
 * --help: every directive of the collector's and the aggregator's tables
 * has an entry in its binary's page, every veil-admin command of --help is
 * in veil-admin(8), and the pages `make` built (and `make install` copies)
 * are exactly what the binaries print. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agg_config.h"
#include "collector_config.h"
#include "harness.h"

/* Run a built binary with one argument; its stdout. */
static char *output_of(const char *binary, const char *arg)
{
    char path[400], cmd[600];
    harness_build_path(binary, path, sizeof path);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/dev/null", path, arg);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    cr_expect_eq(pclose(p), 0, "%s %s failed", binary, arg);
    return buf;
}

/* The roff form of a directive name ('-' is written "\-"). */
static void entry_of(const char *name, char *out, size_t size)
{
    size_t k = 0;
    k += (size_t)snprintf(out, size, ".B ");
    for (const char *c = name; *c && k + 3 < size; c++) {
        if (*c == '-')
            out[k++] = '\\';
        out[k++] = *c;
    }
    out[k++] = '\n';
    out[k] = '\0';
}

static void check_page(const char *binary, const struct cfg_option *table)
{
    char *page = output_of(binary, "--man");
    cr_expect(strncmp(page, ".TH ", 4) == 0, "%s --man is not a manual page", binary);
    for (const struct cfg_option *o = table; o->name; o++) {
        char entry[128];
        entry_of(o->name, entry, sizeof entry);
        cr_expect(strstr(page, entry), "%s(8) lacks directive %s", binary, o->name);
    }
    char built[400], rel[100];
    snprintf(rel, sizeof rel, "man/%s.8", binary);
    size_t len;
    char *file = harness_read_file(harness_build_path(rel, built, sizeof built), &len);
    cr_expect(file && strcmp(file, page) == 0, "%s differs from %s --man", built, binary);
    free(file);
    free(page);
}

Test(manpages, daemons_pages_list_every_directive, .timeout = 30)
{
    check_page("veil-collector", collector_options);
    check_page("veil-aggregator", agg_options);
}

Test(manpages, admin_page_lists_every_command_of_help, .timeout = 30)
{
    char *help = output_of("veil-admin", "--help");
    char *page = output_of("veil-admin", "--man");
    const char *cmds = strstr(help, "commands:\n");
    cr_assert_not_null(cmds);
    int n = 0;
    for (const char *line = strchr(cmds, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        char one[256], word[64], verb[64] = "";
        snprintf(one, sizeof one, "%.*s", (int)strcspn(line, "\n"), line);
        if (sscanf(one, "  %63[a-z] ", word) == 1) {
            sscanf(one, "  %*[a-z] %63[a-z]", verb);
            char needle[140];
            snprintf(needle, sizeof needle, ".B %s%s%s", word, verb[0] ? " " : "", verb);
            cr_expect(strstr(page, needle), "veil-admin(8) lacks '%s %s'", word, verb);
            n++;
        }
        if (!strchr(line, '\n'))
            break;
    }
    cr_expect_geq(n, 15, "only %d commands in --help", n);
    char built[400];
    size_t len;
    char *file = harness_read_file(harness_build_path("man/veil-admin.8", built, sizeof built), &len);
    cr_expect(file && strcmp(file, page) == 0);
    free(file);
    free(help);
    free(page);
}
