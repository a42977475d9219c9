/* config.c - the table-driven configuration engine (see config.h).
 *
 * Parses "name value" files and --name=value options against a daemon's
 * cfg_option table, validates bounds, and prints --help and the sample
 * config from the same table. It never logs values: a directive may hold
 * a secret (api_token). Errors name the directive, not its value. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define CFG_LINE_MAX 4096
#define CFG_ITEM_MAX 255

static void *field(void *conf, const struct cfg_option *o)
{
    return (char *)conf + o->offset;
}

static const struct cfg_option *cfg_find(const struct cfg_option *table, const char *name,
                                         size_t len)
{
    for (const struct cfg_option *o = table; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

static void list_clear(struct cfg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "on", "true", "1"};
    static const char *const no[] = {"no", "off", "false", "0"};
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Split a list value on commas and blanks; each item at most CFG_ITEM_MAX. */
static int parse_list(const struct cfg_option *o, const char *v, struct cfg_list *out,
                      char *err, size_t errlen)
{
    struct cfg_list l = {0, NULL};
    const char *p = v;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - start);
        if (len > CFG_ITEM_MAX) {
            str_format(err, errlen, "%s: item %zu longer than %d bytes", o->name, l.n + 1,
                       CFG_ITEM_MAX);
            goto err;
        }
        if ((long long)l.n >= o->max) {
            str_format(err, errlen, "%s: more than %lld items", o->name, o->max);
            goto err;
        }
        l.items = xrealloc(l.items, (l.n + 1) * sizeof *l.items);
        l.items[l.n] = xmalloc(len + 1);
        memcpy(l.items[l.n], start, len);
        l.items[l.n][len] = '\0';
        l.n++;
    }
    list_clear(out);
    *out = l;
    return 0;
err:
    list_clear(&l);
    return -1;
}

static int set_option(const struct cfg_option *o, void *conf, const char *v, char *err,
                      size_t errlen)
{
    switch (o->type) {
    case CFG_STRING: {
        size_t len = strlen(v);
        if (o->max > 0 && (long long)len > o->max) {
            str_format(err, errlen, "%s: longer than %lld bytes", o->name, o->max);
            return -1;
        }
        if (!utf8_valid(v, len)) {
            str_format(err, errlen, "%s: not valid UTF-8", o->name);
            return -1;
        }
        char **slot = field(conf, o);
        free(*slot);
        *slot = xstrdup(v);
        return 0;
    }
    case CFG_INT: {
        long long n;
        if (!safe_strtoll(v, o->min, o->max, &n)) {
            str_format(err, errlen, "%s: expected an integer from %lld to %lld", o->name,
                       o->min, o->max);
            return -1;
        }
        *(long long *)field(conf, o) = n;
        return 0;
    }
    case CFG_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < (double)o->min ||
            d > (double)o->max) {
            str_format(err, errlen, "%s: expected a number from %lld to %lld", o->name,
                       o->min, o->max);
            return -1;
        }
        *(double *)field(conf, o) = d;
        return 0;
    }
    case CFG_BOOL: {
        bool b;
        if (!parse_bool(v, &b)) {
            str_format(err, errlen, "%s: expected yes or no", o->name);
            return -1;
        }
        *(bool *)field(conf, o) = b;
        return 0;
    }
    case CFG_ENUM:
        for (int i = 0; o->enum_names[i]; i++) {
            if (strcasecmp(v, o->enum_names[i]) == 0) {
                *(int *)field(conf, o) = i;
                return 0;
            }
        }
        {
            char names[256] = "";
            size_t used = 0;
            for (int i = 0; o->enum_names[i]; i++) {
                int n = snprintf(names + used, sizeof names - used, "%s%s", i ? "|" : "",
                                 o->enum_names[i]);
                if (n < 0 || (size_t)n >= sizeof names - used)
                    break;
                used += (size_t)n;
            }
            str_format(err, errlen, "%s: expected one of %s", o->name, names);
        }
        return -1;
    case CFG_LIST:
        return parse_list(o, v, field(conf, o), err, errlen);
    }
    str_format(err, errlen, "%s: bad option type", o->name);
    return -1;
}

int cfg_set(const struct cfg_option *table, void *conf, const char *name, const char *value,
            char *err, size_t errlen)
{
    const struct cfg_option *o = cfg_find(table, name, strlen(name));
    if (!o) {
        str_format(err, errlen, "unknown directive '%.64s'", name);
        return -1;
    }
    return set_option(o, conf, value, err, errlen);
}

int cfg_defaults(const struct cfg_option *table, void *conf, char *err, size_t errlen)
{
    for (const struct cfg_option *o = table; o->name; o++)
        if (set_option(o, conf, o->default_value ? o->default_value : "", err, errlen) != 0)
            return -1;
    return 0;
}

/* Strip a trailing comment and blanks, unquote a "value"; in place. */
static int clean_value(char *v, char *err, size_t errlen)
{
    if (*v == '"') {
        char *close = strchr(v + 1, '"');
        if (!close) {
            str_format(err, errlen, "unterminated quote");
            return -1;
        }
        char *after = close + 1;
        while (isspace((unsigned char)*after))
            after++;
        if (*after && *after != '#') {
            str_format(err, errlen, "text after the closing quote");
            return -1;
        }
        size_t len = (size_t)(close - v - 1);
        memmove(v, v + 1, len);
        v[len] = '\0';
        return 0;
    }
    char *hash = strchr(v, '#');
    if (hash)
        *hash = '\0';
    size_t len = strlen(v);
    while (len > 0 && isspace((unsigned char)v[len - 1]))
        v[--len] = '\0';
    return 0;
}

int cfg_load_file(const struct cfg_option *table, void *conf, const char *path, char *err,
                  size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        str_format(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[CFG_LINE_MAX];
    char reason[512];
    int lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            str_format(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                       CFG_LINE_MAX - 2);
            rc = -1;
            break;
        }
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        char *name = p;
        while (*p && !isspace((unsigned char)*p) && *p != '=')
            p++;
        size_t name_len = (size_t)(p - name);
        while (isspace((unsigned char)*p) || *p == '=')
            p++;
        char *value = p;
        if (clean_value(value, reason, sizeof reason) != 0) {
            str_format(err, errlen, "%s:%d: %s", path, lineno, reason);
            rc = -1;
            break;
        }
        const struct cfg_option *o = cfg_find(table, name, name_len);
        if (!o) {
            str_format(err, errlen, "%s:%d: unknown directive '%.*s'", path, lineno,
                       (int)(name_len > 64 ? 64 : name_len), name);
            rc = -1;
            break;
        }
        if (set_option(o, conf, value, reason, sizeof reason) != 0) {
            str_format(err, errlen, "%s:%d: %s", path, lineno, reason);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        str_format(err, errlen, "%s: read error", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

int cfg_parse_args(const struct cfg_option *table, void *conf, int argc, char **argv,
                   enum cfg_action *action, char *err, size_t errlen)
{
    *action = CFG_RUN;
    /* First pass: the config file, so that options override it. */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *path = NULL;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                str_format(err, errlen, "%s: missing file name", a);
                return -1;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        }
        if (path && cfg_load_file(table, conf, path, err, errlen) != 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0)
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *action = CFG_HELP;
            return 0;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            *action = CFG_VERSION;
            return 0;
        }
        if (strcmp(a, "--sample-config") == 0) {
            *action = CFG_SAMPLE;
            continue;
        }
        if (strcmp(a, "--markdown-config") == 0) {
            *action = CFG_MARKDOWN;
            continue;
        }
        if (strcmp(a, "--man") == 0) {
            *action = CFG_MAN;
            continue;
        }
        if (strcmp(a, "--check-config") == 0) {
            *action = CFG_CHECK;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            str_format(err, errlen, "unexpected argument '%.64s' (options are --name=value)", a);
            return -1;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cfg_option *o = cfg_find(table, name, name_len);
        if (!o) {
            str_format(err, errlen, "unknown option '--%.*s' (see --help)",
                       (int)(name_len > 64 ? 64 : name_len), name);
            return -1;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (o->type == CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            value = "yes";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            str_format(err, errlen, "--%s: missing value", o->name);
            return -1;
        }
        if (set_option(o, conf, value, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static const char *type_name(const struct cfg_option *o)
{
    switch (o->type) {
    case CFG_STRING: return "string";
    case CFG_INT: return "integer";
    case CFG_DOUBLE: return "number";
    case CFG_BOOL: return "yes|no";
    case CFG_ENUM: return "choice";
    case CFG_LIST: return "list";
    }
    return "?";
}

static void print_bounds(const struct cfg_option *o, FILE *out, const char *prefix)
{
    switch (o->type) {
    case CFG_INT:
    case CFG_DOUBLE:
        fprintf(out, "%sfrom %lld to %lld", prefix, o->min, o->max);
        break;
    case CFG_ENUM:
        fprintf(out, "%sone of ", prefix);
        for (int i = 0; o->enum_names[i]; i++)
            fprintf(out, "%s%s", i ? "|" : "", o->enum_names[i]);
        break;
    case CFG_LIST:
        fprintf(out, "%sat most %lld items, comma-separated", prefix, o->max);
        break;
    case CFG_STRING:
        if (o->max > 0)
            fprintf(out, "%sat most %lld bytes", prefix, o->max);
        break;
    case CFG_BOOL:
        fprintf(out, "%syes or no", prefix);
        break;
    }
}

void cfg_print_help(const struct cfg_option *table, FILE *out, const char *prog,
                    const char *summary)
{
    fprintf(out, "Usage: %s [-c FILE] [--name=value ...]\n%s\n\n", prog, summary);
    fprintf(out, "  -c, --config=FILE   read directives from FILE (options override it)\n"
                 "  --check-config      validate the configuration and exit\n"
                 "  --sample-config     print a commented config file with every default\n"
                 "  -h, --help          this help\n"
                 "  -v, --version       print the version\n\n"
                 "Directives (also --name=value options):\n");
    for (const struct cfg_option *o = table; o->name; o++) {
        fprintf(out, "  --%s=<%s>  (default: \"%s\"", o->name, type_name(o),
                o->default_value ? o->default_value : "");
        print_bounds(o, out, "; ");
        fprintf(out, ")\n      %s\n", o->help);
        if (o->privacy)
            fprintf(out, "      privacy: %s\n", o->privacy);
    }
}

void cfg_print_sample(const struct cfg_option *table, FILE *out, const char *title)
{
    fprintf(out, "# %s\n#\n# Every directive, set to its default. Syntax: 'name value';\n"
                 "# '#' starts a comment; lists are comma-separated. Each directive can\n"
                 "# also be given on the command line as --name=value (which wins).\n",
            title);
    for (const struct cfg_option *o = table; o->name; o++) {
        fprintf(out, "\n# %s\n", o->help);
        if (o->privacy)
            fprintf(out, "# Privacy: %s\n", o->privacy);
        fprintf(out, "# Type: %s", type_name(o));
        print_bounds(o, out, "; ");
        fprintf(out, ".\n");
        const char *d = o->default_value ? o->default_value : "";
        bool quote = *d == '\0' || strpbrk(d, " #\t") != NULL;
        fprintf(out, "%s %s%s%s\n", o->name, quote ? "\"" : "", d, quote ? "\"" : "");
    }
}

/* Markdown cells: a '|' would end the cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

void cfg_print_markdown(const struct cfg_option *table, FILE *out, const char *title)
{
    fprintf(out, "# %s\n\n"
                 "Generated from the directive table (`--markdown-config`); every directive\n"
                 "is a config-file line `name value` and a command-line option\n"
                 "`--name=value` (which wins over the file).\n\n"
                 "| directive | default | allowed | what it does | privacy meaning |\n"
                 "|---|---|---|---|---|\n",
            title);
    for (const struct cfg_option *o = table; o->name; o++) {
        fprintf(out, "| `%s` | `", o->name);
        md_cell(out, o->default_value && *o->default_value ? o->default_value : "\"\"");
        fprintf(out, "` | ");
        char *bounds = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&bounds, &len);
        if (m) {
            fprintf(m, "%s", type_name(o));
            print_bounds(o, m, ", ");
            fclose(m);
            md_cell(out, bounds);
            free(bounds);
        }
        fprintf(out, " | ");
        md_cell(out, o->help);
        fprintf(out, " | ");
        md_cell(out, o->privacy ? o->privacy : "");
        fprintf(out, " |\n");
    }
}

/* roff text: a leading dot or quote must not start a request. */
static void roff(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else if (*s == '\n')
            fputs("\n.br\n", out);
        else
            fputc(*s, out);
    }
}

void cfg_print_man(const struct cfg_option *table, FILE *out, const char *prog,
                   const char *summary)
{
    char upper[64];
    size_t i;
    for (i = 0; prog[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)(prog[i] >= 'a' && prog[i] <= 'z' ? prog[i] - 32 : prog[i]);
    upper[i] = '\0';
    fprintf(out, ".TH %s 8 \"\" \"Veil %s\" \"Veil\"\n.SH NAME\n%s \\- ", upper,
            VEIL_VERSION, prog);
    size_t first = strcspn(summary, ":.\n");
    fprintf(out, "%.*s\n", (int)first, summary);
    fprintf(out, ".SH SYNOPSIS\n.B %s\n[\\-c FILE] [\\-\\-name=value ...] [\\-\\-check\\-config] "
                 "[\\-\\-help] [\\-\\-version]\n.SH DESCRIPTION\n",
            prog);
    roff(out, summary);
    fputs("\n.PP\nEvery directive below is a line \\fIname value\\fR of the configuration file "
          "given with \\-c and an option \\-\\-name=value, which wins over the file. "
          "\\-\\-check\\-config validates everything start-up validates and exits; "
          "\\-\\-sample\\-config prints a commented file of every default.\n"
          ".SH DIRECTIVES\n",
          out);
    for (const struct cfg_option *o = table; o->name; o++) {
        fprintf(out, ".TP\n.B ");
        roff(out, o->name);
        fprintf(out, "\n(%s", type_name(o));
        char *bounds = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&bounds, &len);
        if (m) {
            print_bounds(o, m, ", ");
            fclose(m);
            roff(out, bounds);
            free(bounds);
        }
        fputs("; default ", out);
        roff(out, o->default_value && *o->default_value ? o->default_value : "\"\"");
        fputs(")\n", out);
        roff(out, o->help);
        fputc('\n', out);
        if (o->privacy) {
            fputs(".br\nPrivacy: ", out);
            roff(out, o->privacy);
            fputc('\n', out);
        }
    }
    fputs(".SH SIGNALS\nSIGTERM and SIGINT stop cleanly; SIGHUP reloads the configuration "
          "(docs/DEPLOYMENT.md lists what changes live).\n"
          ".SH SEE ALSO\nveil\\-collector(8), veil\\-aggregator(8), veil\\-admin(8)\n",
          out);
}

void cfg_print_values(const struct cfg_option *table, const void *conf, FILE *out)
{
    for (const struct cfg_option *o = table; o->name; o++) {
        const void *f = (const char *)conf + o->offset;
        fprintf(out, "%s ", o->name);
        if (o->secret) {
            fprintf(out, "(secret)\n");
            continue;
        }
        switch (o->type) {
        case CFG_STRING:
            fprintf(out, "\"%s\"", *(char *const *)f ? *(char *const *)f : "");
            break;
        case CFG_INT:
            fprintf(out, "%lld", *(const long long *)f);
            break;
        case CFG_DOUBLE:
            fprintf(out, "%g", *(const double *)f);
            break;
        case CFG_BOOL:
            fprintf(out, "%s", *(const bool *)f ? "yes" : "no");
            break;
        case CFG_ENUM:
            fprintf(out, "%s", o->enum_names[*(const int *)f]);
            break;
        case CFG_LIST: {
            const struct cfg_list *l = f;
            for (size_t i = 0; i < l->n; i++)
                fprintf(out, "%s%s", i ? "," : "", l->items[i]);
            break;
        }
        }
        fputc('\n', out);
    }
}

void cfg_free(const struct cfg_option *table, void *conf)
{
    for (const struct cfg_option *o = table; o->name; o++) {
        if (o->type == CFG_STRING) {
            char **slot = field(conf, o);
            free(*slot);
            *slot = NULL;
        } else if (o->type == CFG_LIST) {
            list_clear(field(conf, o));
        }
    }
}

bool cfg_list_contains(const struct cfg_list *list, const char *item)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcasecmp(list->items[i], item) == 0)
            return true;
    return false;
}

bool cfg_print_action(const struct cfg_option *table, enum cfg_action action, const char *prog,
                      const char *summary)
{
    char title[160];
    switch (action) {
    case CFG_HELP:
        cfg_print_help(table, stdout, prog, summary);
        return true;
    case CFG_VERSION:
        printf("%s %s\n", prog, VEIL_VERSION);
        return true;
    case CFG_SAMPLE:
        str_format(title, sizeof title, "%s configuration (generated by '%s --sample-config')",
                   prog, prog);
        cfg_print_sample(table, stdout, title);
        return true;
    case CFG_MARKDOWN:
        str_format(title, sizeof title, "%s directives", prog);
        cfg_print_markdown(table, stdout, title);
        return true;
    case CFG_MAN:
        cfg_print_man(table, stdout, prog, summary);
        return true;
    case CFG_CHECK:
    case CFG_RUN:
        break;
    }
    return false;
}
