/* fuzz_compat_matomo.c - libFuzzer target: compat_matomo_parse() on Matomo tracker requests.
 * The input format and the checks are in target_compat.c (fuzz_compat_matomo). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_compat_matomo(data, size);
}
