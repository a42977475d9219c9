/* prom.h - the Prometheus text exposition format (version 0.0.4), shared by
 * every /metrics page of Veil: one helper per line kind, so that each
 * metric family gets its "# HELP" and "# TYPE" once, before its samples,
 * and label values are escaped alike.
 *
 * Conventions (docs/OPERATIONS.md, "Metrics"): names are
 * veil_<component>_<what>[_<unit>], counters end in _total, times are in
 * seconds, sizes in bytes; a family is written only with at least one
 * sample (promtool check metrics warns about a TYPE without one). Label
 * values must be fixed strings, codes or reasons: never a site id, a path,
 * a token or anything a client sent. */
#ifndef VEIL_PROM_H
#define VEIL_PROM_H

#include <stdint.h>

struct evbuffer;

/* "# HELP name help\n# TYPE name type\n"; type is "counter", "gauge",
 * "histogram" or "summary"; help is one line (a newline or backslash in it
 * is escaped). */
void prom_family(struct evbuffer *out, const char *name, const char *type, const char *help);

/* One sample without labels: "name value\n". */
void prom_u64(struct evbuffer *out, const char *name, uint64_t value);
void prom_i64(struct evbuffer *out, const char *name, int64_t value);
void prom_double(struct evbuffer *out, const char *name, double value);

/* One sample with one label: name{label="value"} n, the value escaped. */
void prom_u64_label(struct evbuffer *out, const char *name, const char *label,
                    const char *label_value, uint64_t value);

/* A label value escaped as the format wants (backslash, quote, newline). */
void prom_label_value(struct evbuffer *out, const char *s);

/* A whole counter or gauge family with one unlabelled sample. */
void prom_counter(struct evbuffer *out, const char *name, const char *help, uint64_t value);
void prom_gauge(struct evbuffer *out, const char *name, const char *help, double value);

#endif
