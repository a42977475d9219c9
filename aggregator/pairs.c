/* pairs.c - the table of two-dimensional counts (see pairs.h). Data and
 * pure functions only. */
#include "pairs.h"

#include <string.h>

#include "config.h"
#include "schema.h"
#include "util.h"

bool pairs_visit_slot(size_t d)
{
    const struct schema_dim *sd = schema_visit_dim((int)d);
    return d < ROLLUP_V_COUNT && sd && sd->property;
}

bool pairs_event_slot(size_t d)
{
    return pairs_visit_slot(d) && d != ROLLUP_V_ENTRY_PAGE && d != ROLLUP_V_VISITOR_TYPE;
}

bool pairs_dims_parse(const struct cfg_list *dims, uint32_t *mask, char *err, size_t errlen)
{
    *mask = 0;
    for (size_t i = 0; i < dims->n; i++) {
        size_t d = 0;
        while (d < ROLLUP_V_COUNT && !(pairs_visit_slot(d) &&
                                       strcmp(dims->items[i], schema_visit_dim((int)d)->name) == 0))
            d++;
        if (d == ROLLUP_V_COUNT) {
            str_format(err, errlen,
                       "pair_dims: %.60s is not a visit dimension of the stats API (source, "
                       "channel, referrer, utm_source, utm_medium, utm_campaign, utm_term, "
                       "utm_content, entry_page, country, region, city, browser, os, device, "
                       "screen, visitor_type)",
                       dims->items[i]);
            return false;
        }
        *mask |= 1u << d;
    }
    return true;
}

bool pairs_page_class(size_t d, struct pair_class *out)
{
    if (!pairs_event_slot(d))
        return false;
    *out = (struct pair_class){PAIR_PAGE, (unsigned)d, schema_dim(SD_PAGE)->name,
                               schema_visit_dim((int)d)->name, SCHEMA_PV, SCHEMA_PV};
    return true;
}

bool pairs_goal_class(size_t d, struct pair_class *out)
{
    if (!pairs_event_slot(d))
        return false;
    *out = (struct pair_class){PAIR_GOAL, (unsigned)(ROLLUP_V_COUNT + d),
                               schema_dim(SD_GOAL)->name, schema_visit_dim((int)d)->name,
                               SCHEMA_PV | SCHEMA_EV, SCHEMA_EV};
    return true;
}

/* the order of two visit dimensions: the schema table's */
static size_t table_index(size_t d)
{
    return (size_t)(schema_visit_dim((int)d) - schema_dim(SD_PAGE));
}

bool pairs_visit_class(size_t d1, size_t d2, struct pair_class *out)
{
    if (d1 == d2 || !pairs_visit_slot(d1) || !pairs_visit_slot(d2))
        return false;
    if (table_index(d1) > table_index(d2)) {
        size_t t = d1;
        d1 = d2;
        d2 = t;
    }
    *out = (struct pair_class){PAIR_VISIT, (unsigned)(2 * ROLLUP_V_COUNT + d1 * ROLLUP_V_COUNT + d2),
                               schema_visit_dim((int)d1)->name, schema_visit_dim((int)d2)->name,
                               SCHEMA_VIS, SCHEMA_VIS};
    return true;
}

/* The visit slot of a <dim> name, or -1. */
static int slot_of(const char *dim)
{
    const struct schema_dim *sd = schema_find(dim);
    return sd && strncmp(dim, "prop:", 5) != 0 ? sd->visit_slot : -1;
}

bool pairs_class_of(const char *a, const char *b, struct pair_class *out, bool *a_first,
                    char *why, size_t whylen)
{
    int sa = slot_of(a), sb = slot_of(b);
    bool ok = false;
    if (strcmp(a, "page") == 0 && sb >= 0)
        ok = pairs_page_class((size_t)sb, out);
    else if (strcmp(b, "page") == 0 && sa >= 0)
        ok = pairs_page_class((size_t)sa, out);
    else if (strcmp(a, "goal") == 0 && sb >= 0)
        ok = pairs_goal_class((size_t)sb, out);
    else if (strcmp(b, "goal") == 0 && sa >= 0)
        ok = pairs_goal_class((size_t)sa, out);
    else if (sa >= 0 && sb >= 0)
        ok = pairs_visit_class((size_t)sa, (size_t)sb, out);
    if (ok) {
        *a_first = strcmp(out->first, a) == 0;
        return true;
    }
    str_format(why, whylen,
               "%.60s and %.60s are not counted per pair of values (pairs are a page or a "
               "goal with a visit dimension, or two visit dimensions: docs/KEYS.md \"Pair "
               "counts\")",
               a, b);
    return false;
}

size_t pairs_field(char *buf, size_t cap, const char *a, size_t alen, const char *b,
                   size_t blen)
{
    char num[24];
    char *end = uint_to_dec(num, (uint64_t)alen);
    size_t nlen = (size_t)(end - num);
    if (nlen + 1 + alen + blen + 1 > cap)
        return 0;
    memcpy(buf, num, nlen);
    buf[nlen] = ':';
    memcpy(buf + nlen + 1, a, alen);
    memcpy(buf + nlen + 1 + alen, b, blen);
    buf[nlen + 1 + alen + blen] = '\0';
    return nlen + 1 + alen + blen;
}

bool pairs_field_split(const char *f, size_t flen, const char **a, size_t *alen,
                       const char **b, size_t *blen)
{
    size_t i = 0, n = 0;
    while (i < flen && i < 12 && f[i] >= '0' && f[i] <= '9')
        n = n * 10 + (size_t)(f[i++] - '0');
    if (i == 0 || i >= flen || f[i] != ':' || n > flen - i - 1)
        return false;
    *a = f + i + 1;
    *alen = n;
    *b = f + i + 1 + n;
    *blen = flen - i - 1 - n;
    return true;
}
