/* test_compat.c - requests as each tracker sends them, read by the
 * collector (event_parse.c for Plausible, compat_umami.c, compat_matomo.c):
 * one table per format, each row a real request written from the tracker's
 * own source (plausible-tracker 0.3.9 and @plausible-analytics/tracker
 * 0.4.x, Umami 2.10 src/tracker/index.js, Matomo's matomo.js / Tracking
 * HTTP API) with the event Veil must make of it, rejection rows included. */
#include <criterion/criterion.h>
#include <string.h>

#include "compat_matomo.h"
#include "compat_umami.h"
#include "event_parse.h"
#include "util.h"

static struct raw_event ev;
static char reason[128];

/* The expected event: name, URL, sites (comma-joined), referrer, screen
 * width, props ("k=v;k=v"), or a reason when refused. */
struct row {
    const char *what;
    const char *input;
    enum compat_result result;
    const char *name, *url, *sites, *referrer;
    long width;
    const char *props;
    const char *reason;
};

static void joined_sites(char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < ev.ndomains; i++) {
        size_t n = strlen(out);
        str_format(out + n, cap - n, "%s%s", i ? "," : "", ev.domains[i]);
    }
}

static void joined_props(char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < ev.nprops; i++) {
        size_t n = strlen(out);
        str_format(out + n, cap - n, "%s%s=%s", i ? ";" : "", ev.props[i].key,
                   ev.props[i].value);
    }
}

static void check_row(const struct row *r, enum compat_result got)
{
    cr_assert_eq(got, r->result, "%s: result %d, want %d (%s)", r->what, got, r->result, reason);
    if (got != COMPAT_EVENT) {
        if (r->reason)
            cr_assert_str_eq(reason, r->reason, "%s", r->what);
        return;
    }
    char sites[600], props[4000];
    joined_sites(sites, sizeof sites);
    joined_props(props, sizeof props);
    cr_assert_str_eq(ev.name, r->name, "%s", r->what);
    cr_assert_str_eq(ev.url, r->url, "%s", r->what);
    cr_assert_str_eq(sites, r->sites, "%s", r->what);
    cr_assert_str_eq(ev.referrer, r->referrer ? r->referrer : "", "%s", r->what);
    cr_assert_eq(ev.screen_width, r->width, "%s: width %ld", r->what, ev.screen_width);
    cr_assert_str_eq(props, r->props ? r->props : "", "%s", r->what);
}

/* ---- Plausible ----------------------------------------------------------- */

static const struct row plausible_rows[] = {
    {"legacy plausible-tracker 0.3.9 pageview",
     "{\"n\":\"pageview\",\"u\":\"https://example.com/docs?x=1\",\"d\":\"example.com\","
     "\"r\":\"https://news.example/\",\"w\":1440,\"h\":0}",
     COMPAT_EVENT, "pageview", "https://example.com/docs?x=1", "example.com",
     "https://news.example/", 1440, NULL, NULL},
    {"legacy plausible-tracker custom event, props as a JSON string",
     "{\"n\":\"Signup\",\"u\":\"https://example.com/\",\"d\":\"example.com\",\"r\":null,"
     "\"w\":390,\"h\":0,\"p\":\"{\\\"plan\\\":\\\"pro\\\",\\\"seats\\\":3}\"}",
     COMPAT_EVENT, "Signup", "https://example.com/", "example.com", NULL, 390,
     "plan=pro;seats=3", NULL},
    {"legacy outbound link click (enableAutoOutboundTracking)",
     "{\"n\":\"Outbound Link: Click\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
     "\"r\":null,\"w\":1280,\"h\":0,\"p\":\"{\\\"url\\\":\\\"https://other.example/a\\\"}\"}",
     COMPAT_EVENT, "Outbound Link: Click", "https://example.com/", "example.com", NULL, 1280,
     "url=https://other.example/a", NULL},
    {"script v1 (plausible.js) with m for props",
     "{\"n\":\"Download\",\"u\":\"https://example.com/\",\"d\":\"example.com\",\"r\":null,"
     "\"w\":1280,\"m\":\"{\\\"file\\\":\\\"a.pdf\\\"}\"}",
     COMPAT_EVENT, "Download", "https://example.com/", "example.com", NULL, 1280, "file=a.pdf",
     NULL},
    {"@plausible-analytics/tracker 0.4 pageview with v and props object",
     "{\"n\":\"pageview\",\"v\":20,\"u\":\"https://www.example.com/\",\"d\":\"example.com\","
     "\"r\":\"\",\"p\":{\"author\":\"ann\"}}",
     COMPAT_EVENT, "pageview", "https://www.example.com/", "example.com", NULL, -1,
     "author=ann", NULL},
    {"engagement with sd and e, i false",
     "{\"n\":\"engagement\",\"sd\":75,\"e\":12000,\"u\":\"https://example.com/\","
     "\"d\":\"example.com\",\"i\":false,\"v\":20}",
     COMPAT_EVENT, "engagement", "https://example.com/", "example.com", NULL, -1, NULL, NULL},
    {"script pageleave extension (late 2024): read as engagement",
     "{\"n\":\"pageleave\",\"d\":\"example.com\",\"u\":\"https://example.com/#/a\",\"sd\":20,"
     "\"h\":1}",
     COMPAT_EVENT, "engagement", "https://example.com/#/a", "example.com", NULL, -1, NULL, NULL},
    {"long names (Events API)",
     "{\"name\":\"pageview\",\"url\":\"https://example.com/#/a\",\"domain\":\"example.com\","
     "\"referrer\":\"https://r.example/\",\"screen_width\":800,\"hashMode\":1,"
     "\"props\":{\"k\":\"v\"},\"interactive\":true}",
     COMPAT_EVENT, "pageview", "https://example.com/#/a", "example.com", "https://r.example/",
     800, "k=v", NULL},
    {"several sites in d",
     "{\"n\":\"pageview\",\"u\":\"https://a.example/\",\"d\":\"a.example, www.B.example,,a.example\"}",
     COMPAT_EVENT, "pageview", "https://a.example/", "a.example,b.example", NULL, -1, NULL, NULL},
    {"revenue accepted and dropped",
     "{\"n\":\"Purchase\",\"u\":\"https://example.com/\",\"d\":\"example.com\","
     "\"$\":{\"amount\":\"15.99\",\"currency\":\"EUR\"}}",
     COMPAT_EVENT, "Purchase", "https://example.com/", "example.com", NULL, -1, NULL, NULL},
    {"integer name (404 tracking)", "{\"n\":404,\"u\":\"https://example.com/\"}", COMPAT_EVENT,
     "404", "https://example.com/", "example.com", NULL, -1, NULL, NULL},
    {"nested and blank props dropped",
     "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":{\"a\":[1],\"b\":\"\",\"c\":null,"
     "\"d\":true}}",
     COMPAT_EVENT, "x", "https://example.com/", "example.com", NULL, -1, "d=true", NULL},
    {"props string that is not an object: no props",
     "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":\"null\"}", COMPAT_EVENT, "x",
     "https://example.com/", "example.com", NULL, -1, NULL, NULL},
    {"refused: props string that is not JSON",
     "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":\"{plan:pro}\"}", COMPAT_BAD_REQUEST,
     NULL, NULL, NULL, NULL, 0, NULL, "p: invalid JSON in string"},
    {"refused: too many sites",
     "{\"n\":\"x\",\"u\":\"https://example.com/\",\"d\":\"a.a,b.b,c.c,d.d,e.e,f.f,g.g,h.h,i.i,"
     "j.j,k.k\"}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "d: too many domains"},
    {"refused: i not a boolean", "{\"n\":\"x\",\"u\":\"https://example.com/\",\"i\":\"no\"}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "i: must be a boolean"},
    {"refused: revenue not an object", "{\"n\":\"x\",\"u\":\"https://example.com/\",\"$\":5}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "$: must be an object"},
    {"refused: d only commas", "{\"n\":\"x\",\"u\":\"https://example.com/\",\"d\":\" , \"}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "d: empty"},
};

Test(compat, plausible_every_tracker_version)
{
    for (size_t i = 0; i < ARRAY_LEN(plausible_rows); i++) {
        const struct row *r = &plausible_rows[i];
        reason[0] = '\0';
        bool ok = event_parse_json(r->input, strlen(r->input), &ev, reason, sizeof reason);
        check_row(r, ok ? COMPAT_EVENT : COMPAT_BAD_REQUEST);
    }
}

Test(compat, plausible_more_than_30_props_keeps_30)
{
    char body[4096] = "{\"n\":\"x\",\"u\":\"https://example.com/\",\"p\":\"{";
    for (int i = 0; i < 40; i++) {
        size_t n = strlen(body);
        str_format(body + n, sizeof body - n, "%s\\\"k%d\\\":%d", i ? "," : "", i, i);
    }
    strcat(body, "}\"}");
    cr_assert(event_parse_json(body, strlen(body), &ev, reason, sizeof reason), "%s", reason);
    cr_assert_eq(ev.nprops, 30);
    cr_assert_eq(ev.props_dropped, 10);
    cr_assert_str_eq(ev.props[29].key, "k29");
}

/* ---- Umami --------------------------------------------------------------- */

#define UUID "94db1cb1-74f4-4a40-ad6c-962362670409"

static char umami_1[] = UUID "=example.com", umami_2[] = "0f0f0f0f-0000-4000-8000-00000000abcd=other.example";
static char *umami_items[] = {umami_1, umami_2};
static const struct cfg_list umami_ids = {2, umami_items};

static const struct row umami_rows[] = {
    {"Umami 2.10 pageview (url is pathname + search)",
     "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\",\"hostname\":\"example.com\","
     "\"screen\":\"1920x1080\",\"language\":\"en-US\",\"title\":\"Home%20page\","
     "\"url\":\"/docs?x=1\",\"referrer\":\"https://news.example/\"}}",
     COMPAT_EVENT, "pageview", "https://example.com/docs?x=1", "example.com",
     "https://news.example/", 1920, NULL, NULL},
    {"Umami SPA navigation: the referrer is the previous path",
     "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\",\"hostname\":\"example.com\","
     "\"screen\":\"1280x720\",\"language\":\"en\",\"title\":\"\",\"url\":\"/b\",\"referrer\":\"/a\"}}",
     COMPAT_EVENT, "pageview", "https://example.com/b", "example.com", NULL, 1280, NULL, NULL},
    {"Umami custom event with data (umami.track(name, data))",
     "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\",\"hostname\":\"example.com\","
     "\"screen\":\"390x844\",\"language\":\"de\",\"title\":\"x\",\"url\":\"/\",\"referrer\":\"\","
     "\"name\":\"signup\",\"data\":{\"plan\":\"pro\",\"seats\":3,\"trial\":false,\"x\":{\"y\":1}}}}",
     COMPAT_EVENT, "signup", "https://example.com/", "example.com", NULL, 390,
     "plan=pro;seats=3;trial=false", NULL},
    {"Umami newer versions: absolute url, id and tag dropped, website case-insensitive",
     "{\"payload\":{\"website\":\"94DB1CB1-74F4-4A40-AD6C-962362670409\",\"hostname\":\"example.com\","
     "\"url\":\"https://example.com/p\",\"tag\":\"ab\",\"id\":\"user-42\"},\"type\":\"event\"}",
     COMPAT_EVENT, "pageview", "https://example.com/p", "example.com", NULL, -1, NULL, NULL},
    {"refused: identify",
     "{\"type\":\"identify\",\"payload\":{\"website\":\"" UUID "\",\"hostname\":\"example.com\","
     "\"url\":\"/\",\"data\":{\"email\":\"a@b.c\"}}}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL,
     "identify is not supported: Veil identifies nobody"},
    {"unknown website",
     "{\"type\":\"event\",\"payload\":{\"website\":\"11111111-2222-3333-4444-555555555555\","
     "\"hostname\":\"example.com\",\"url\":\"/\"}}",
     COMPAT_UNKNOWN_SITE, NULL, NULL, NULL, NULL, 0, NULL, "unknown website"},
    {"refused: no website", "{\"type\":\"event\",\"payload\":{\"hostname\":\"example.com\",\"url\":\"/\"}}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "missing field website"},
    {"refused: no url", "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\"}}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "missing field url"},
    {"refused: no type", "{\"payload\":{\"website\":\"" UUID "\",\"url\":\"https://e.com/\"}}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "missing field type"},
    {"refused: data nested too deep",
     "{\"type\":\"event\",\"payload\":{\"website\":\"" UUID "\",\"hostname\":\"example.com\","
     "\"url\":\"/\",\"name\":\"x\",\"data\":{\"a\":[[1]]}}}",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "nesting too deep"},
    {"refused: not JSON", "type=event", COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL,
     "body is not a JSON object"},
};

Test(compat, umami_requests)
{
    for (size_t i = 0; i < ARRAY_LEN(umami_rows); i++) {
        const struct row *r = &umami_rows[i];
        reason[0] = '\0';
        check_row(r, compat_umami_parse(r->input, strlen(r->input), &umami_ids, &ev, reason,
                                        sizeof reason));
    }
}

/* ---- Matomo -------------------------------------------------------------- */

static char matomo_1[] = "1=example.com", matomo_2[] = "7=blog.example";
static char *matomo_items[] = {matomo_1, matomo_2};
static const struct cfg_list matomo_ids = {2, matomo_items};

#define MATOMO_IDS "&_id=0123456789abcdef&_idts=1700000000&_viewts=1700000000&uid=ann&cid=0123456789abcdef&_pk_ses=1"

static const struct row matomo_rows[] = {
    {"matomo.js trackPageView",
     "idsite=1&rec=1&r=123456&h=12&m=0&s=1&url=https%3A%2F%2Fexample.com%2Fdocs%3Fx%3D1"
     "&urlref=https%3A%2F%2Fnews.example%2F&action_name=Docs" MATOMO_IDS
     "&send_image=0&cookie=1&res=1920x1080&pv_id=aB3dE6&pf_net=0&pf_srv=12&uadata=%7B%7D",
     COMPAT_EVENT, "pageview", "https://example.com/docs?x=1", "example.com",
     "https://news.example/", 1920, NULL, NULL},
    {"matomo.js trackEvent",
     "?idsite=7&rec=1&url=https%3A%2F%2Fblog.example%2F&e_c=Video&e_a=Play&e_n=Intro&e_v=1.5"
     MATOMO_IDS "&res=390x844",
     COMPAT_EVENT, "Video", "https://blog.example/", "blog.example", NULL, 390,
     "action=Play;name=Intro;value=1.5", NULL},
    {"matomo.js outlink",
     "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&link=https%3A%2F%2Fother.example%2Fa%3Ftoken%3Ds"
     MATOMO_IDS,
     COMPAT_EVENT, "Outbound Link: Click", "https://example.com/", "example.com", NULL, -1,
     "url=https://other.example/a", NULL},
    {"matomo.js download",
     "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&download=https%3A%2F%2Fexample.com%2Fa.pdf",
     COMPAT_EVENT, "File Download", "https://example.com/", "example.com", NULL, -1,
     "url=https://example.com/a.pdf", NULL},
    {"site search: keyword not kept",
     "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fs&search=my+name&search_cat=x&search_count=3",
     COMPAT_EVENT, "Site Search", "https://example.com/s", "example.com", NULL, -1, NULL, NULL},
    {"heartbeat ping: nothing", "idsite=1&rec=1&ping=1&url=https%3A%2F%2Fexample.com%2F",
     COMPAT_NOTHING, NULL, NULL, NULL, NULL, 0, NULL, NULL},
    {"rec missing: nothing", "idsite=1&url=https%3A%2F%2Fexample.com%2F", COMPAT_NOTHING, NULL,
     NULL, NULL, NULL, 0, NULL, NULL},
    {"unknown idsite", "idsite=99&rec=1&url=https%3A%2F%2Fexample.com%2F", COMPAT_UNKNOWN_SITE,
     NULL, NULL, NULL, NULL, 0, NULL, "unknown idsite"},
    {"refused: cip", "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&cip=1.2.3.4",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "cip: overrides are refused"},
    {"refused: cdt", "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&cdt=1700000000",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "cdt: overrides are refused"},
    {"refused: token_auth", "token_auth=abc&idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "token_auth: overrides are refused"},
    {"refused: country", "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&country=fr",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "country: overrides are refused"},
    {"refused: no idsite", "rec=1&url=https%3A%2F%2Fexample.com%2F", COMPAT_BAD_REQUEST, NULL,
     NULL, NULL, NULL, 0, NULL, "missing field idsite"},
    {"refused: no url", "idsite=1&rec=1", COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL,
     "missing field url"},
    {"refused: event without action",
     "idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2F&e_c=Video", COMPAT_BAD_REQUEST, NULL,
     NULL, NULL, NULL, 0, NULL, "e_c and e_a: both required for an event"},
    {"refused: url not http", "idsite=1&rec=1&url=ftp%3A%2F%2Fexample.com%2F",
     COMPAT_BAD_REQUEST, NULL, NULL, NULL, NULL, 0, NULL, "url: not an http(s) URL"},
};

Test(compat, matomo_requests)
{
    for (size_t i = 0; i < ARRAY_LEN(matomo_rows); i++) {
        const struct row *r = &matomo_rows[i];
        reason[0] = '\0';
        check_row(r, compat_matomo_parse(r->input, strlen(r->input), &matomo_ids, &ev, reason,
                                         sizeof reason));
    }
}

Test(compat, matomo_send_image)
{
    static const char *const image[] = {"idsite=1&rec=1", "?idsite=1&send_image=1", "",
                                        "send_image=00", "xsend_image=0"};
    static const char *const none[] = {"idsite=1&send_image=0", "?send_image=0&rec=1",
                                       "a=1&send_image=0&b=2"};
    for (size_t i = 0; i < ARRAY_LEN(image); i++)
        cr_expect(compat_matomo_wants_image(image[i], strlen(image[i])), "%s", image[i]);
    for (size_t i = 0; i < ARRAY_LEN(none); i++)
        cr_expect_not(compat_matomo_wants_image(none[i], strlen(none[i])), "%s", none[i]);
}

Test(compat, matomo_bulk_walks_every_request)
{
    const char *body = "{\"requests\":[\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fa\","
                       "\"?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fb\"],\"send_image\":0}";
    struct matomo_bulk b;
    char buf[MATOMO_REQUEST_MAX];
    size_t len;
    cr_assert(compat_matomo_is_bulk(body, strlen(body)));
    cr_assert(compat_matomo_bulk_open(&b, body, strlen(body), reason, sizeof reason), "%s", reason);
    cr_assert_eq(compat_matomo_bulk_next(&b, buf, sizeof buf, &len), 1);
    cr_assert_str_eq(buf, "?idsite=1&rec=1&url=https%3A%2F%2Fexample.com%2Fa");
    cr_assert_eq(compat_matomo_bulk_next(&b, buf, sizeof buf, &len), 1);
    cr_assert_eq(compat_matomo_bulk_next(&b, buf, sizeof buf, &len), 0, "%s", reason);

    const char *with_token = "{\"requests\":[],\"token_auth\":\"x\"}";
    cr_assert(compat_matomo_bulk_open(&b, with_token, strlen(with_token), reason, sizeof reason));
    cr_assert_eq(compat_matomo_bulk_next(&b, buf, sizeof buf, &len), -1);
    cr_assert_str_eq(reason, "token_auth: overrides are refused");
    const char *no_requests = "{\"other\":1}";
    cr_assert_not(compat_matomo_bulk_open(&b, no_requests, strlen(no_requests), reason,
                                          sizeof reason));
    cr_assert_str_eq(reason, "missing field requests");
    const char *not_strings = "{\"requests\":[1]}";
    cr_assert(compat_matomo_bulk_open(&b, not_strings, strlen(not_strings), reason, sizeof reason));
    cr_assert_eq(compat_matomo_bulk_next(&b, buf, sizeof buf, &len), -1);
    cr_assert_str_eq(reason, "requests: must be strings");
}

Test(compat, site_maps_are_checked)
{
    char err[128];
    static char bad_1[] = "no-equals";
    static char *bad_items[] = {bad_1};
    struct cfg_list bad = {1, bad_items};
    cr_assert_eq(compat_map_check(&bad, "matomo_site_ids", err, sizeof err), -1);
    cr_assert_str_eq(err, "matomo_site_ids: item 1 is not <id>=<site>");
    cr_assert_eq(compat_map_check(&matomo_ids, "matomo_site_ids", err, sizeof err), 0);
}
