/* prom.c - Prometheus text exposition lines (see prom.h). Writes only what
 * the caller hands it; never request content. */
#include "prom.h"

#include <inttypes.h>

#include <event2/buffer.h>

static void add_escaped(struct evbuffer *out, const char *s, int quote_too)
{
    for (; *s; s++) {
        if (*s == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else if (quote_too && *s == '"')
            evbuffer_add(out, "\\\"", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

void prom_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s ", name);
    add_escaped(out, help, 0);
    evbuffer_add_printf(out, "\n# TYPE %s %s\n", name, type);
}

void prom_u64(struct evbuffer *out, const char *name, uint64_t value)
{
    evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

void prom_i64(struct evbuffer *out, const char *name, int64_t value)
{
    evbuffer_add_printf(out, "%s %" PRId64 "\n", name, value);
}

void prom_double(struct evbuffer *out, const char *name, double value)
{
    evbuffer_add_printf(out, "%s %.17g\n", name, value);
}

void prom_label_value(struct evbuffer *out, const char *s)
{
    add_escaped(out, s, 1);
}

void prom_u64_label(struct evbuffer *out, const char *name, const char *label,
                    const char *label_value, uint64_t value)
{
    evbuffer_add_printf(out, "%s{%s=\"", name, label);
    prom_label_value(out, label_value);
    evbuffer_add_printf(out, "\"} %" PRIu64 "\n", value);
}

void prom_counter(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
    prom_family(out, name, "counter", help);
    prom_u64(out, name, value);
}

void prom_gauge(struct evbuffer *out, const char *name, const char *help, double value)
{
    prom_family(out, name, "gauge", help);
    prom_double(out, name, value);
}
