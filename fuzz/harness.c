/* harness.c - the list of fuzz targets and their shared set-up (see
 * harness.h). Each target's input format and checks are in
 * target_<name>.c; what they share is in check.c. */
#include "harness.h"

#include <stddef.h>

#include "check.h"

const struct fuzz_target fuzz_targets[] = {
    {"event_parse_json", fuzz_event_parse_json},
    {"event_parse_query", fuzz_event_parse_query},
    {"url", fuzz_url},
    {"ua", fuzz_ua},
    {"config", fuzz_config},
    {"event_codec", fuzz_event_codec},
    {"anon", fuzz_anon},
    {"httpd_parse", fuzz_httpd_parse},
    {"compat_umami", fuzz_compat_umami},
    {"compat_matomo", fuzz_compat_matomo},
    {"rcluster", fuzz_rcluster},
    {"checkpoint", fuzz_checkpoint},
    {"api_filter", fuzz_api_filter},
    {NULL, NULL},
};

void fuzz_harness_free(void)
{
    fuzz_ua_free();
    fuzz_config_free();
    fuzz_anon_free();
}
