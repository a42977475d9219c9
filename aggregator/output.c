/* output.c - JSON and CSV writers of the stats API (see output.h). Never
 * writes a byte of input unescaped into JSON, never lets a CSV cell start
 * a spreadsheet formula. */
#include "output.h"

#include <string.h>

#include <event2/buffer.h>

#include "util.h"

/* An integer, or tenths / hundredths as "<whole>.<d>" / "<whole>.<dd>". */
static void write_num(struct evbuffer *out, const struct output_cell *c)
{
    long long v = c->num < 0 ? -c->num : c->num;
    const char *sign = c->num < 0 ? "-" : "";
    if (c->decimals == 1)
        evbuffer_add_printf(out, "%s%lld.%lld", sign, v / 10, v % 10);
    else if (c->decimals == 2)
        evbuffer_add_printf(out, "%s%lld.%02lld", sign, v / 100, v % 100);
    else
        evbuffer_add_printf(out, "%lld", c->num);
}

void output_json_string(struct evbuffer *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0; /* s[run..i) is pending plain text */
    evbuffer_add(out, "\"", 1);
    while (i < len) {
        unsigned cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        const char *esc = NULL;
        char ubuf[8];
        if (n == 0) {
            esc = "\\ufffd";
            n = 1;
        } else if (cp == '"') {
            esc = "\\\"";
        } else if (cp == '\\') {
            esc = "\\\\";
        } else if (cp == '\n') {
            esc = "\\n";
        } else if (cp == '\r') {
            esc = "\\r";
        } else if (cp == '\t') {
            esc = "\\t";
        } else if (cp < 0x20 || cp == 0x7F || cp == '<' || cp == '>' || cp == '&' ||
                   cp == 0x2028 || cp == 0x2029) {
            str_format(ubuf, sizeof ubuf, "\\u%04x", cp);
            esc = ubuf;
        }
        if (esc) {
            evbuffer_add(out, s + run, i - run);
            evbuffer_add_printf(out, "%s", esc);
            run = i + n;
        }
        i += n;
    }
    evbuffer_add(out, s + run, len - run);
    evbuffer_add(out, "\"", 1);
}

void output_csv_field(struct evbuffer *out, const char *s, size_t len)
{
    bool guard = len > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                             s[0] == '\t' || s[0] == '\r');
    /* Quoted when it holds either separator spreadsheets use (',' and, in
     * German or French locales, ';'), a quote or a line break, or when it
     * starts a formula: whichever separator the reader splits on, the
     * field stays one text cell (OWASP CSV injection). */
    bool quote = guard;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == ';' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (quote)
        evbuffer_add(out, "\"", 1);
    if (guard)
        evbuffer_add(out, "'", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') {
            evbuffer_add(out, s + run, i + 1 - run); /* the quote itself ... */
            evbuffer_add(out, "\"", 1);              /* ... doubled */
            run = i + 1;
        }
    }
    evbuffer_add(out, s + run, len - run);
    if (quote)
        evbuffer_add(out, "\"", 1);
}

static void json_cell(struct evbuffer *out, const struct output_cell *c)
{
    if (c->is_str)
        output_json_string(out, c->str, c->len);
    else if (c->decimals == OUTPUT_NULL_DECIMALS)
        evbuffer_add(out, "null", 4);
    else
        write_num(out, c);
}

static void json_key(struct evbuffer *out, const char *name)
{
    output_json_string(out, name, strlen(name));
    evbuffer_add(out, ": ", 2);
}

void output_json_rows(struct evbuffer *out, const struct output_table *t)
{
    evbuffer_add(out, "[", 1);
    for (size_t r = 0; r < t->nrows; r++) {
        evbuffer_add(out, r ? ", {" : "{", r ? 3 : 1);
        for (size_t c = 0; c < t->ncols; c++) {
            if (c)
                evbuffer_add(out, ", ", 2);
            json_key(out, t->cols[c]);
            json_cell(out, &t->cells[r * t->ncols + c]);
        }
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add(out, "]", 1);
}

void output_json_aggregate(struct evbuffer *out, const struct output_table *t)
{
    evbuffer_add(out, "{", 1);
    for (size_t c = 0; t->nrows > 0 && c < t->ncols; c++) {
        if (c)
            evbuffer_add(out, ", ", 2);
        json_key(out, t->cols[c]);
        evbuffer_add(out, "{\"value\": ", 10);
        json_cell(out, &t->cells[c]);
        if (t->nrows > 1) { /* compare: the second row holds the changes */
            evbuffer_add(out, ", \"change\": ", 12);
            json_cell(out, &t->cells[t->ncols + c]);
        }
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add(out, "}", 1);
}

void output_csv(struct evbuffer *out, const struct output_table *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            evbuffer_add(out, ",", 1);
        output_csv_field(out, t->cols[c], strlen(t->cols[c]));
    }
    evbuffer_add(out, "\r\n", 2);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const struct output_cell *cell = &t->cells[r * t->ncols + c];
            if (c)
                evbuffer_add(out, ",", 1);
            if (cell->is_str)
                output_csv_field(out, cell->str, cell->len);
            else if (cell->decimals != OUTPUT_NULL_DECIMALS)
                write_num(out, cell);
        }
        evbuffer_add(out, "\r\n", 2);
    }
}

void output_json_cell(struct evbuffer *out, const struct output_cell *c)
{
    json_cell(out, c);
}
