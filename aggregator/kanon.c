/* kanon.c - folding of small breakdown rows into "(other)" (see kanon.h).
 * Never publishes a row below k when k > 1. */
#include "kanon.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static bool is_other(const struct stats_row *r)
{
    return r->value_len == sizeof QUERY_OTHER - 1 &&
           memcmp(r->value, QUERY_OTHER, sizeof QUERY_OTHER - 1) == 0;
}

bool kanon_publishable(long long visitors, long long k)
{
    return k <= 1 || visitors >= k;
}

size_t kanon_partition(struct stats_row *rows, size_t n, long long k, size_t *folded_values)
{
    size_t kept = 0, folded = 0;
    if (n == 0) {
        *folded_values = 0;
        return 0;
    }
    /* Stable: kept rows copied forward in order, folded ones collected in
     * a side array and appended. */
    struct stats_row *fold = xcalloc(n, sizeof *fold);
    size_t nfold = 0;
    for (size_t i = 0; i < n; i++) {
        bool other = is_other(&rows[i]);
        if (other || !kanon_publishable(rows[i].visitors, k)) {
            fold[nfold++] = rows[i];
            if (!other)
                folded++;
        } else {
            rows[kept++] = rows[i];
        }
    }
    memcpy(rows + kept, fold, nfold * sizeof *fold);
    free(fold);
    *folded_values = folded;
    return kept;
}

void kanon_sum(const struct stats_row *rows, size_t n, struct stats_row *other)
{
    for (size_t i = 0; i < n; i++) {
        other->pageviews += rows[i].pageviews;
        other->visits += rows[i].visits;
        other->events += rows[i].events;
        other->bounces += rows[i].bounces;
        other->duration_s += rows[i].duration_s;
        other->row_visits += rows[i].row_visits;
    }
}
