/* visit.c - the visit logic (see visit.h). Pure: no I/O, no clock, no
 * allocation, never logs. */
#include "visit.h"

#include <string.h>

uint64_t visit_page_hash(const char *path)
{
    if (!path || !path[0])
        return 0;
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        h ^= *c;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* A depth for the page of the visit's latest page view raises its maximum. */
static void scroll(struct visit_state *s, const struct visit_hit *h, struct visit_effect *out)
{
    if (h->scroll < 0 || h->scroll > 100 || h->page == 0 || h->page != s->page ||
        h->scroll <= s->scroll)
        return;
    if (s->scroll < 0) {
        out->scroll_n = 1;
        out->scroll_sum = h->scroll;
    } else {
        out->scroll_sum = h->scroll - s->scroll;
    }
    out->scroll_from = s->scroll < 0 ? -1 : s->scroll / 10;
    out->scroll_to = h->scroll / 10;
    s->scroll = h->scroll;
    s->changed = true;
}

void visit_apply(struct visit_state *s, const struct visit_hit *h, uint32_t day,
                 long long timeout, struct visit_effect *out)
{
    memset(out, 0, sizeof *out);
    out->scroll_from = out->scroll_to = -1;
    out->day = s->day;
    out->hour = s->hour;
    int64_t ts = h->ts;
    bool open = s->open;
    if (open && ts > s->last + timeout)
        open = false; /* expired: a page view starts a new visit */
    if (open && ts < s->start - timeout) {
        /* an earlier, separate visit that arrived late: count it, keep the open one */
        if (h->pageview) {
            out->new_visit = true;
            out->separate = true;
            out->returning = true; /* a visit of this hash is known (the later one) */
            out->day = day;
            out->hour = h->hour;
        }
        return;
    }
    if (!open) {
        if (h->pageview) {
            out->new_visit = true;
            out->returning = s->open; /* an ended visit of this hash is still kept */
            out->day = day;
            out->hour = h->hour;
            s->hour = h->hour;
            s->open = true;
            s->pv = 1;
            s->start = s->last = s->exit_ts = ts;
            s->day = day;
            s->page = h->page;
            s->scroll = -1;
            s->changed = true;
            scroll(s, h, out);
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
    if ((h->pageview || h->interactive) && ++s->pv == 2)
        out->bounces = -1;
    if (h->pageview) {
        s->page = h->page;
        s->scroll = -1;
        if (ts >= s->exit_ts) {
            s->exit_ts = ts;
            out->exit_move = true;
        }
    }
    scroll(s, h, out);
    s->changed = true;
}
