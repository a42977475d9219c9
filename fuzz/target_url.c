/* target_url.c - fuzz target url: url_normalise, url_host,
 * url_referrer_host and url_decode on one URL.
 *
 * Privacy invariant P8 as a check: a normalised path keeps no query
 * parameter that is not allowlisted and never a campaign parameter, and a
 * fragment only in hash mode; a referrer keeps only its host. Also: hosts
 * lowercased, without userinfo or port; the functions agree on the host;
 * normalising a normalised URL changes nothing; a page never refers to
 * itself. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "config.h"
#include "harness.h"
#include "url.h"
#include "util.h"

static const char *const campaign_names[] = {"utm_source", "utm_medium", "utm_campaign",
                                             "utm_term", "utm_content"};

/* Allowlists: named (one campaign name among them, which must still never
 * be kept) and named plus "*" (strip_query=no). */
static char allow_words[][12] = {"page", "lang", "ref", "UTM_SOURCE", "q", "id", "*"};
static char *allow_items[ARRAY_LEN(allow_words)];

static const struct cfg_list *allowlist(unsigned mode)
{
    static struct cfg_list empty = {0, NULL}, named, star;
    if (allow_items[0] == NULL) {
        for (size_t i = 0; i < ARRAY_LEN(allow_words); i++)
            allow_items[i] = allow_words[i];
        named = (struct cfg_list){ARRAY_LEN(allow_words) - 1, allow_items};
        star = (struct cfg_list){ARRAY_LEN(allow_words), allow_items};
    }
    switch (mode & 3) {
    case 0: return NULL;
    case 1: return &empty;
    case 2: return &named;
    default: return &star;
    }
}

static void check_host(const char *t, const char *host)
{
    size_t len = strlen(host);
    CHECK(t, len > 0 && utf8_valid(host, len) && !fuzz_has_ctl(host, len));
    for (size_t i = 0; i < len; i++)
        CHECK(t, !(host[i] >= 'A' && host[i] <= 'Z') && !strchr("@/?#\\ ", host[i]));
    if (host[0] == '[') {
        CHECK(t, host[len - 1] == ']');
    } else {
        CHECK(t, strchr(host, ':') == NULL);
        CHECKF(t, host[0] != '.' && host[len - 1] != '.' && strstr(host, "..") == NULL,
               "a host with an empty label");
    }
}

/* The path keeps nothing of the query but allowlisted, non-campaign
 * parameters, and a fragment only in hash mode. */
static void check_path(const char *t, const char *path, bool hash_mode,
                       const struct cfg_list *allow)
{
    size_t len = strlen(path);
    CHECK(t, path[0] == '/' && !fuzz_has_ctl(path, len));
    const char *hash = strchr(path, '#');
    CHECK(t, hash == NULL || hash_mode);
    CHECK(t, hash == NULL || strchr(hash, '?') == NULL);
    const char *query_end = hash ? hash : path + len;
    const char *q = memchr(path, '?', (size_t)(query_end - path));
    if (q == NULL)
        return;
    CHECK(t, allow != NULL && allow->n > 0);
    for (const char *p = q + 1; p <= query_end;) {
        const char *amp = memchr(p, '&', (size_t)(query_end - p));
        const char *param_end = amp ? amp : query_end;
        CHECK(t, param_end > p);
        const char *eq = memchr(p, '=', (size_t)(param_end - p));
        char name[256];
        bool full;
        long n = url_decode(p, (size_t)((eq ? eq : param_end) - p), name, sizeof name - 1, &full);
        CHECK(t, n > 0 && !full);
        name[n] = '\0';
        CHECKF(t, cfg_list_contains(allow, name) || cfg_list_contains(allow, "*"),
               "a parameter that is not allowlisted is kept in the path");
        for (size_t i = 0; i < ARRAY_LEN(campaign_names); i++)
            CHECKF(t, strcasecmp(name, campaign_names[i]) != 0,
                   "a campaign parameter is kept in the path");
        p = param_end + 1;
    }
}

static void check_url_result(const char *t, const struct url_result *r, bool hash_mode,
                             const struct cfg_list *allow)
{
    CHECK(t, fuzz_fits(r->host, sizeof r->host) && fuzz_fits(r->path, sizeof r->path));
    check_host(t, r->host);
    check_path(t, r->path, hash_mode, allow);
    const char *const utm[] = {r->utm_source, r->utm_medium, r->utm_campaign, r->utm_term,
                               r->utm_content};
    for (size_t i = 0; i < ARRAY_LEN(utm); i++)
        CHECK(t, fuzz_fits(utm[i], EV_UTM_MAX) && fuzz_clean_text(utm[i]));
}

static struct reason_set url_reasons;

int fuzz_url(const uint8_t *data, size_t size)
{
    static const char t[] = "url";
    static struct url_result r, again;
    static char rebuilt[EV_HOST_MAX + EV_PATH_MAX + 16];
    char reason[REASON_BUF];
    char host[EV_HOST_MAX], ref[EV_HOST_MAX];

    if (size == 0)
        return 0;
    bool hash_mode = data[0] & 1;
    const struct cfg_list *allow = allowlist((unsigned)data[0] >> 1);
    const char *url = (const char *)data + 1;
    size_t len = size - 1;

    bool has_host = url_host(url, len, host);
    CHECK(t, fuzz_fits(host, sizeof host));
    CHECK(t, has_host || host[0] == '\0');
    if (has_host)
        check_host(t, host);

    fuzz_reason_prepare(reason);
    bool ok = url_normalise(url, len, hash_mode, allow, &r, reason, REASON_LEN);
    if (!ok) {
        fuzz_check_reason(t, &url_reasons, reason);
    } else {
        fuzz_reason_canary(t, reason);
        check_url_result(t, &r, hash_mode, allow);
        CHECKF(t, has_host && strcmp(host, r.host) == 0,
               "url_host and url_normalise disagree on the host");
        /* normalising is idempotent */
        CHECK(t, str_format(rebuilt, sizeof rebuilt, "http://%s%s", r.host, r.path));
        fuzz_reason_prepare(reason);
        CHECKF(t, url_normalise(rebuilt, strlen(rebuilt), hash_mode, allow, &again, reason,
                                REASON_LEN),
               "its normalised form is rejected: %s", reason);
        CHECKF(t, strcmp(r.host, again.host) == 0 && strcmp(r.path, again.path) == 0,
               "normalising its normalised form changes it");
        /* a page never refers to itself */
        CHECK(t, url_referrer_host(url, len, r.host, ref) && ref[0] == '\0');
    }

    /* As a referrer: its host without one "www.", or nothing. */
    bool ref_ok = url_referrer_host(url, len, NULL, ref);
    CHECK(t, fuzz_fits(ref, sizeof ref));
    CHECK(t, ref_ok || ref[0] == '\0');
    if (has_host) {
        const char *want = strlen(host) > 4 && strncmp(host, "www.", 4) == 0 ? host + 4 : host;
        CHECKF(t, ref_ok && strcmp(ref, want) == 0, "the referrer host is not the URL's host");
    } else {
        CHECK(t, ref[0] == '\0');
    }
    url_referrer_host(url, len, "", ref);
    CHECK(t, fuzz_fits(ref, sizeof ref));

    char decoded[64];
    bool full;
    long n = url_decode(url, len, decoded, sizeof decoded, &full);
    CHECK(t, n >= -1 && n <= (long)sizeof decoded && (!full || n == (long)sizeof decoded));
    return 0;
}
