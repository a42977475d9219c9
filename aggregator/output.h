/* output.h - turns a published table of the stats API into JSON or CSV.
 *
 * It only formats: every number it writes has already passed the privacy
 * filters (k-anonymity, DP noise). It must never emit invalid UTF-8, an
 * unescaped JSON string, or a CSV cell that a spreadsheet would evaluate
 * as a formula. */
#ifndef VEIL_OUTPUT_H
#define VEIL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum output_format { OUTPUT_JSON = 0, OUTPUT_CSV };

/* One cell: a string slice (not owned), an integer, or a number with one
 * or two decimals (num in tenths or hundredths: a conversion rate of
 * 12.5 %, 1.63 views per visit). */
struct output_cell {
    bool is_str;
    const char *str;
    size_t len;
    long long num;
    unsigned char decimals; /* 0, 1 or 2 */
};

/* Rows of cells under named columns; cells is nrows * ncols, row-major.
 * The table owns nothing it points to. */
struct output_table {
    size_t ncols;
    const char *const *cols;
    size_t nrows;
    struct output_cell *cells;
};

static inline struct output_cell output_str(const char *s, size_t len)
{
    struct output_cell c = {true, s, len, 0, 0};
    return c;
}

static inline struct output_cell output_num(long long n)
{
    struct output_cell c = {false, NULL, 0, n, 0};
    return c;
}

/* No number: JSON null, an empty CSV cell (a per-row bounce rate of a row
 * without visits on the days that keep it). */
#define OUTPUT_NULL_DECIMALS 255
static inline struct output_cell output_null(void)
{
    struct output_cell c = {false, NULL, 0, 0, OUTPUT_NULL_DECIMALS};
    return c;
}

/* A number with one decimal, given in tenths (125 -> 12.5). */
static inline struct output_cell output_tenths(long long tenths)
{
    struct output_cell c = {false, NULL, 0, tenths, 1};
    return c;
}

/* A number with two decimals, given in hundredths (163 -> 1.63). */
static inline struct output_cell output_hundredths(long long hundredths)
{
    struct output_cell c = {false, NULL, 0, hundredths, 2};
    return c;
}

/* Append `s[0..len)` as a quoted JSON string: quote, backslash and control
 * characters escaped, '<' '>' '&' U+2028 U+2029 as \u escapes (safe inside
 * HTML too), each byte of invalid UTF-8 replaced by U+FFFD. */
void output_json_string(struct evbuffer *out, const char *s, size_t len);

/* Append one CSV field (RFC 4180, OWASP CSV-injection guidance): quoted
 * when it holds a comma, a semicolon (the separator of ';' spreadsheets),
 * a quote, CR or LF, or starts with a formula character; quotes doubled.
 * Formula guard: a field starting with = + - @ TAB or CR is quoted and
 * gets a leading apostrophe so spreadsheets show it as text. The result is
 * one text cell whether the reader splits on ',' or ';'. */
void output_csv_field(struct evbuffer *out, const char *s, size_t len);

/* One cell as a JSON value (a string or a number). */
void output_json_cell(struct evbuffer *out, const struct output_cell *c);

/* `[{"col": cell, ...}, ...]`, one object per row. */
void output_json_rows(struct evbuffer *out, const struct output_table *t);

/* `{"col": {"value": cell}, ...}` from the first row (Plausible's
 * aggregate shape); `{}` when there is no row. With a second row (compare)
 * each becomes `{"value": cell, "change": second row's cell}`. */
void output_json_aggregate(struct evbuffer *out, const struct output_table *t);

/* Header row of column names, then one line per row; CRLF line ends. */
void output_csv(struct evbuffer *out, const struct output_table *t);

#endif
