/* api_rates.c - conversion rates beside a goal filter (api_rates.h):
 * Plausible's group_conversion_rate ("the percentage of visitors who
 * completed the goal with the same dimension") answered from the goal x
 * value pair cells over each row's own visitors, and what is refused. It
 * must never answer a rate whose visitors of reference the counts do not
 * hold exactly (a second filter would need three-dimensional counts). */
#include "api_rates.h"

#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "util.h"

bool api_rate_goal_filter(const struct api_params *p)
{
    return (p->filter.set && !strcmp(p->filter.property, "event:goal")) ||
           (p->filter2.set && !strcmp(p->filter2.property, "event:goal"));
}

bool api_rate_check(const struct api_params *p, const char *metric, bool group,
                    bool dimensioned, bool by_goal, char *err, size_t errlen)
{
    if (group && !dimensioned) {
        str_format(err, errlen, "metrics: group_conversion_rate needs a dimension (each row's "
                                "converted visitors / that row's visitors)");
        return false;
    }
    if (by_goal)
        return true;
    if (!api_rate_goal_filter(p)) {
        str_format(err, errlen,
                   "metrics: %s needs the dimension event:goal or a filter on event:goal",
                   metric);
        return false;
    }
    if (p->filter2.set) {
        str_format(err, errlen,
                   "metrics: %s under filters on two properties is not offered (its visitors "
                   "of reference would need counts per combination of three values)",
                   metric);
        return false;
    }
    return true;
}

bool api_rate_row_visitors(struct api_request *rq, const struct api_params *p,
                           redisContext *rc, const struct stats_rows *rows, size_t kept,
                           bool have_other, long long *all)
{
    if (p->range.first > p->range.last)
        return true;
    char err[300];
    struct stats_rows plain = {0};
    if (query_breakdown(rc, p->site_id, p->dim, &p->range, &plain, err, sizeof err) != 0) {
        api_redis_error(rq, err);
        return false;
    }
    struct stats_row *folded = xcalloc(rows->n ? rows->n : 1, sizeof *folded);
    size_t nfolded = 0;
    for (size_t r = 0; r < rows->n; r++) {
        const struct stats_row *want = &rows->rows[r];
        for (size_t j = 0; j < plain.n; j++) {
            struct stats_row copy = plain.rows[j];
            if (copy.value_len != want->value_len ||
                memcmp(copy.value, want->value, copy.value_len) != 0)
                continue;
            if (r < kept) {
                api_publish_row(rq->api, p->site_id, &p->range, &copy);
                all[r] = copy.visitors;
            } else {
                folded[nfolded++] = copy;
            }
            break;
        }
    }
    bool ok = true;
    if (have_other) {
        char other_name[] = QUERY_OTHER;
        struct stats_row other = {.value = other_name, .value_len = sizeof other_name - 1};
        if (nfolded && query_rows_union_visitors(rc, p->site_id, p->dim, folded, nfolded,
                                                 &other.visitors, err, sizeof err) != 0) {
            api_redis_error(rq, err);
            ok = false;
        } else {
            api_publish_row(rq->api, p->site_id, &p->range, &other);
            all[kept] = other.visitors;
        }
    }
    free(folded);
    query_rows_free(&plain);
    return ok;
}
