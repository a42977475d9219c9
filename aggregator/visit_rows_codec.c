/* visit_rows_codec.c - the encoding of a visit's rows in the checkpoint
 * (see visit_rows.h): pure C, no allocation, no I/O; it reads at most the
 * bytes it is given. */
#include <string.h>

#include "schema.h"
#include "util.h"
#include "visit_rows.h"

bool visit_rows_slot_kept(size_t slot)
{
    if (slot == VISIT_ROW_EXIT)
        return true;
    const struct schema_dim *d = schema_visit_dim((int)slot);
    return d && d->property;
}

size_t visit_rows_prefix_len(size_t len)
{
    size_t n = 1;
    while (len >= 10) {
        len /= 10;
        n++;
    }
    return n + 1;
}

size_t visit_rows_put(const char *s, size_t len, char *out, size_t cap)
{
    size_t need = visit_rows_prefix_len(len) + len;
    if (need > cap)
        return 0;
    char *p = uint_to_dec(out, (uint64_t)len);
    *p++ = ':';
    memcpy(p, s, len);
    return need;
}

bool visit_rows_exit_is_entry(const char *rows, size_t rows_len, const char *exit,
                              size_t exit_len)
{
    const char *item;
    size_t len, used;
    return visit_rows_scan(rows, rows_len, 1, &item, &len, &used) && len == exit_len &&
           memcmp(item, exit, len) == 0;
}

size_t visit_rows_encode(const char *const *rows, char *out, size_t cap)
{
    size_t at = 0;
    for (size_t d = 0; d < ROLLUP_V_COUNT; d++) {
        const char *row = rows[d] && visit_rows_slot_kept(d) ? rows[d] : "";
        size_t len = strlen(row);
        if (len > (d == ROLLUP_V_ENTRY_PAGE ? (size_t)EV_PATH_MAX - 1 : VISIT_ROW_VALUE_MAX))
            return 0;
        size_t n = visit_rows_put(row, len, out + at, cap - at);
        if (!n)
            return 0;
        at += n;
    }
    return at;
}

bool visit_rows_scan(const char *s, size_t len, size_t n, const char **items, size_t *lens,
                     size_t *used)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = 0, digits = 0;
        while (at < len && s[at] >= '0' && s[at] <= '9' && digits < 5) {
            l = l * 10 + (size_t)(s[at++] - '0');
            digits++;
        }
        if (digits == 0 || at >= len || s[at] != ':' || l > len - at - 1)
            return false;
        items[i] = s + at + 1;
        lens[i] = l;
        at += 1 + l;
    }
    *used = at;
    return true;
}

