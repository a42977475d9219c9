/* fuzz_api_filter.c - libFuzzer target: the stats API's v1 and v2 filter parsers.
 * The input format and the checks are in target_api_filter.c (fuzz_api_filter). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_api_filter(data, size);
}
