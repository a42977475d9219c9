/* fuzz_ua.c - libFuzzer target: ua_parse() on User-Agents, against every regex run unfiltered.
 * The input format and the checks are in target_ua.c (fuzz_ua). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_ua(data, size);
}
