/* target_compat.c - fuzz targets compat_umami and compat_matomo: other
 * trackers' requests (collector/compat_umami.c, collector/compat_matomo.c).
 *
 * A request is either refused with a fixed, short reason (an unknown site
 * too), or valid with nothing to record (Matomo's ping), or an event that
 * passes every check of a parsed event (fuzz_check_raw_event) and goes to
 * exactly the one site its id maps to, with no prop but the ones the
 * format defines: nothing else a request carries (visitor ids, titles,
 * languages, search keywords) can reach the event. */
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "compat_matomo.h"
#include "compat_umami.h"
#include "harness.h"
#include "util.h"

static char umami_1[] = "94db1cb1-74f4-4a40-ad6c-962362670409=example.com";
static char umami_2[] = "0f0f0f0f-0000-4000-8000-00000000abcd=www.Other.example";
static char *umami_items[] = {umami_1, umami_2};
static const struct cfg_list umami_ids = {2, umami_items};

static char matomo_1[] = "1=example.com", matomo_2[] = "7=blog.example";
static char *matomo_items[] = {matomo_1, matomo_2};
static const struct cfg_list matomo_ids = {2, matomo_items};

static void check_one_site(const char *t, const struct raw_event *ev, const char *const *sites,
                           size_t nsites)
{
    CHECK(t, ev->ndomains == 1);
    bool known = false;
    for (size_t i = 0; i < nsites; i++)
        known = known || strcmp(ev->domain, sites[i]) == 0;
    CHECKF(t, known, "an event for a site no id maps to");
}

static void check_result(const char *t, struct reason_set *reasons, enum compat_result r,
                         const char *reason)
{
    CHECK(t, r == COMPAT_EVENT || r == COMPAT_NOTHING || r == COMPAT_BAD_REQUEST ||
                 r == COMPAT_UNKNOWN_SITE);
    if (r == COMPAT_BAD_REQUEST || r == COMPAT_UNKNOWN_SITE)
        fuzz_check_reason(t, reasons, reason);
    else
        fuzz_reason_canary(t, reason);
}

static struct reason_set umami_reasons, matomo_reasons;

int fuzz_compat_umami(const uint8_t *data, size_t size)
{
    static const char t[] = "compat_umami";
    static const char *const sites[] = {"example.com", "other.example"};
    static struct raw_event ev;
    char reason[REASON_BUF];

    fuzz_reason_prepare(reason);
    enum compat_result r =
        compat_umami_parse((const char *)data, size, &umami_ids, &ev, reason, REASON_LEN);
    check_result(t, &umami_reasons, r, reason);
    CHECK(t, r != COMPAT_NOTHING);
    if (r != COMPAT_EVENT)
        return 0;
    fuzz_check_raw_event(t, &ev);
    check_one_site(t, &ev, sites, ARRAY_LEN(sites));
    return 0;
}

static void matomo_event(const char *t, const struct raw_event *ev)
{
    static const char *const sites[] = {"example.com", "blog.example"};
    fuzz_check_raw_event(t, ev);
    check_one_site(t, ev, sites, ARRAY_LEN(sites));
    for (size_t i = 0; i < ev->nprops; i++) {
        const char *k = ev->props[i].key;
        CHECKF(t, !strcmp(k, "url") || !strcmp(k, "action") || !strcmp(k, "name") ||
                      !strcmp(k, "value"),
               "a prop Matomo's format does not define");
        if (!strcmp(k, "url"))
            CHECK(t, strpbrk(ev->props[i].value, "?#") == NULL);
    }
}

/* Byte 0 even: the rest is one request's parameters (GET query or form
 * body); odd: the rest is a bulk body, each request parsed in turn. */
int fuzz_compat_matomo(const uint8_t *data, size_t size)
{
    static const char t[] = "compat_matomo";
    static struct raw_event ev;
    static char params[MATOMO_REQUEST_MAX];
    char reason[REASON_BUF];

    if (size == 0)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if ((data[0] & 1) == 0) {
        bool image = compat_matomo_wants_image(body, len);
        CHECK(t, image || memmem(body, len, "send_image=0", 12) != NULL);
        fuzz_reason_prepare(reason);
        enum compat_result r = compat_matomo_parse(body, len, &matomo_ids, &ev, reason, REASON_LEN);
        check_result(t, &matomo_reasons, r, reason);
        if (r == COMPAT_EVENT)
            matomo_event(t, &ev);
        return 0;
    }
    struct matomo_bulk b;
    fuzz_reason_prepare(reason);
    if (!compat_matomo_bulk_open(&b, body, len, reason, REASON_LEN)) {
        fuzz_check_reason(t, &matomo_reasons, reason);
        return 0;
    }
    size_t plen;
    int next;
    while ((next = compat_matomo_bulk_next(&b, params, sizeof params, &plen)) == 1) {
        CHECK(t, plen < sizeof params && params[plen] == '\0');
        CHECK(t, b.count <= MATOMO_BULK_MAX);
        char one[REASON_BUF];
        fuzz_reason_prepare(one);
        enum compat_result r = compat_matomo_parse(params, plen, &matomo_ids, &ev, one, REASON_LEN);
        check_result(t, &matomo_reasons, r, one);
        if (r == COMPAT_EVENT)
            matomo_event(t, &ev);
    }
    if (next < 0)
        fuzz_check_reason(t, &matomo_reasons, reason);
    else
        fuzz_reason_canary(t, reason);
    return 0;
}
