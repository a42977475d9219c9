/* test_referrers.c - named sources and channels (aggregator/referrers.c)
 * with the real data file (Ghost's referrers.json from npm, copied to
 * build/data by make) and with damaged files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "referrers.h"
#include "util.h"

static struct referrers *db;

static void load(void)
{
    char path[512], err[300];
    const char *b = getenv("VEIL_BUILD");
    str_format(path, sizeof path, "%s/data/referrers.json", b ? b : "build");
    db = referrers_load(path, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_assert_gt(referrers_count(db), 1000);
}

static void unload(void)
{
    referrers_free(db);
}

TestSuite(referrers, .init = load, .fini = unload);

static const char *channel(const char *host, const char *us, const char *um, unsigned paid)
{
    return referrers_channel_name(referrers_channel(db, host, us, um, paid));
}

Test(referrers, hosts_and_parent_domains_are_named)
{
    enum ref_medium m;
    cr_assert_str_eq(referrers_source(db, "google.de", &m), "Google");
    cr_assert_eq(m, REF_SEARCH);
    cr_assert_str_eq(referrers_source(db, "google.com", &m), "Google");
    cr_assert_str_eq(referrers_source(db, "t.co", &m), "Twitter");
    cr_assert_eq(m, REF_SOCIAL);
    cr_assert_str_eq(referrers_source(db, "l.facebook.com", &m), "Facebook");
    cr_assert_str_eq(referrers_source(db, "some.sub.facebook.com", &m), "Facebook",
                     "a parent domain");
    cr_assert_null(referrers_source(db, "blog.example.org", &m));
    cr_assert_eq(m, REF_UNKNOWN);
    cr_assert_null(referrers_source(db, "com", &m), "never a bare top-level domain");
    cr_assert_null(referrers_source(NULL, "google.de", &m), "no data: no names");
}

Test(referrers, every_channel)
{
    cr_assert_str_eq(channel("", "", "", 0), "Direct");
    cr_assert_str_eq(channel("google.de", "", "", 0), "Organic Search");
    cr_assert_str_eq(channel("google.de", "", "", EV_PAID_SEARCH), "Paid Search", "gclid");
    cr_assert_str_eq(channel("google.com", "google", "cpc", 0), "Paid Search", "utm_medium");
    cr_assert_str_eq(channel("", "google", "", 0), "Organic Search", "utm_source by name");
    cr_assert_str_eq(channel("t.co", "", "", 0), "Organic Social");
    cr_assert_str_eq(channel("l.facebook.com", "", "", EV_PAID_SOCIAL), "Paid Social", "fbclid");
    cr_assert_str_eq(channel("", "facebook", "paid_social", 0), "Paid Social");
    cr_assert_str_eq(channel("mail.google.com", "", "", 0), "Email", "webmail");
    cr_assert_str_eq(channel("", "newsletter", "email", 0), "Email");
    cr_assert_str_eq(channel("blog.example.org", "", "", 0), "Referral");
    cr_assert_str_eq(channel("", "", "", EV_PAID_SEARCH), "Paid Search", "a click id alone");
    cr_assert_str_eq(channel("", "partner", "display", 0), "Display");
}

Test(referrers, unusable_files_are_refused, .init = NULL, .fini = NULL)
{
    char err[300];
    cr_assert_null(referrers_load("/nonexistent/referrers.json", err, sizeof err));
    cr_assert(strstr(err, "cannot open"), "%s", err);
    char path[] = "/tmp/veil-referrers-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *cases[] = {"[1, 2]", "{\"a.com\": 5}", "{not json"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(ftruncate(fd, 0), 0);
        cr_assert_eq(pwrite(fd, cases[i], strlen(cases[i]), 0), (ssize_t)strlen(cases[i]));
        cr_expect_null(referrers_load(path, err, sizeof err), "%s", cases[i]);
    }
    close(fd);
    unlink(path);
}
