/* visit.c - the visit logic (see visit.h). Pure: no I/O, no clock, no
 * allocation, never logs. */
#include "visit.h"

#include <string.h>

void visit_apply(struct visit_state *s, int64_t ts, bool pageview, uint32_t day,
                 long long timeout, struct visit_effect *out)
{
    memset(out, 0, sizeof *out);
    out->day = s->day;
    bool open = s->open;
    if (open && ts > s->last + timeout)
        open = false; /* expired: a page view starts a new visit */
    if (open && ts < s->start - timeout) {
        /* an earlier, separate visit that arrived late: count it, keep the open one */
        if (pageview) {
            out->new_visit = true;
            out->day = day;
        }
        return;
    }
    if (!open) {
        if (pageview) {
            out->new_visit = true;
            out->day = day;
            s->open = true;
            s->pv = 1;
            s->start = s->last = ts;
            s->day = day;
            s->changed = true;
        }
        return;
    }
    if (ts > s->last) {
        out->duration += ts - s->last;
        s->last = ts;
    }
    if (ts < s->start) {
        out->duration += s->start - ts;
        s->start = ts;
    }
    if (pageview && ++s->pv == 2)
        out->bounces = -1;
    s->changed = true;
}
