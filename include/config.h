/* config.h - one table drives the config file, --name=value options,
 * --help and the sample config (Redis static_configs style).
 *
 * Each daemon declares a `struct cfg_option` table over its own config
 * struct; this engine parses, validates and prints it. File syntax: one
 * directive per line, "name value", '#' starts a comment, values may be
 * double-quoted. Lists are comma- or space-separated. A bad directive is
 * fatal with "file:line: reason". Command line overrides file. */
#ifndef VEIL_CONFIG_H
#define VEIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
    CFG_STRING, /* char *            (owned by the config, may be "") */
    CFG_INT,    /* long long         within [min, max] */
    CFG_BOOL,   /* bool              yes|no|on|off|true|false|1|0 */
    CFG_ENUM,   /* int               index into enum_names */
    CFG_LIST,   /* struct cfg_list   at most `max` items, each <= 255 bytes */
    CFG_DOUBLE, /* double            within [min, max] */
};

struct cfg_list {
    size_t n;
    char **items;
};

struct cfg_option {
    const char *name;
    enum cfg_type type;
    size_t offset;                  /* offsetof(conf struct, field) */
    const char *default_value;      /* textual, parsed like a directive */
    long long min, max;             /* CFG_INT/CFG_DOUBLE bounds; CFG_LIST max items; CFG_STRING max length */
    const char *const *enum_names;  /* CFG_ENUM: NULL-terminated */
    const char *help;               /* one line: what it does */
    const char *privacy;            /* one line: its privacy meaning, or NULL */
    bool secret;                    /* never printed by cfg_print_values */
};

/* Fill `conf` with every option's default. Returns 0, or -1 with a reason
 * in err (a bad default is a programming error). */
int cfg_defaults(const struct cfg_option *table, void *conf, char *err, size_t errlen);

/* Set one directive from text. Returns 0, or -1 with "name: reason" in err. */
int cfg_set(const struct cfg_option *table, void *conf, const char *name,
            const char *value, char *err, size_t errlen);

/* Load a config file. Returns 0, or -1 with "path:line: reason" in err. */
int cfg_load_file(const struct cfg_option *table, void *conf, const char *path,
                  char *err, size_t errlen);

/* What the command line asked for beyond directives. */
enum cfg_action { CFG_RUN, CFG_HELP, CFG_VERSION, CFG_SAMPLE, CFG_CHECK, CFG_MARKDOWN, CFG_MAN };

/* Parse argv: "-c FILE" / "--config=FILE" (loaded first, whatever its
 * position), "--help", "--version", "--sample-config", "--check-config",
 * "--markdown-config", "--man", and "--name=value" / "--name value" for every directive (applied after the
 * file). Returns 0 and sets *action, or -1 with a reason in err naming the
 * offending argument. `conf` must already hold defaults. */
int cfg_parse_args(const struct cfg_option *table, void *conf, int argc, char **argv,
                   enum cfg_action *action, char *err, size_t errlen);

/* --help text: usage line, then every directive with type, default, bounds,
 * help and privacy meaning. */
void cfg_print_help(const struct cfg_option *table, FILE *out, const char *prog,
                    const char *summary);

/* A complete sample config file: every directive commented with its help,
 * privacy meaning and bounds, set to its default. */
void cfg_print_sample(const struct cfg_option *table, FILE *out, const char *title);

/* The directive reference as a Markdown table (docs/ is generated from it). */
void cfg_print_markdown(const struct cfg_option *table, FILE *out, const char *title);

/* The manual page (roff, section 8) of `prog`: NAME and SYNOPSIS from
 * `summary`, then every directive as in --help (default, bounds, help,
 * privacy meaning), so the page and --help never disagree. */
void cfg_print_man(const struct cfg_option *table, FILE *out, const char *prog,
                   const char *summary);

/* Print the effective configuration (one "name value" per line). */
void cfg_print_values(const struct cfg_option *table, const void *conf, FILE *out);

/* Carry out the informational actions on stdout: --help (with `summary`),
 * --version, --sample-config, --markdown-config, --man. Returns true when
 * `action` was one of them (the caller then exits 0), false for CFG_RUN and
 * CFG_CHECK. */
bool cfg_print_action(const struct cfg_option *table, enum cfg_action action, const char *prog,
                      const char *summary);

/* Free strings and lists owned by `conf`. */
void cfg_free(const struct cfg_option *table, void *conf);

/* Helpers for tables. */
#define CFG_ENUM_NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* True when `item` is in the list (exact, case-insensitive). */
bool cfg_list_contains(const struct cfg_list *list, const char *item);

#endif
