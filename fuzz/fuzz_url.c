/* fuzz_url.c - libFuzzer target: url_normalise(), url_host() and url_referrer_host() on URLs.
 * The input format and the checks are in target_url.c (fuzz_url). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_url(data, size);
}
