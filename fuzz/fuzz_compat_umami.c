/* fuzz_compat_umami.c - libFuzzer target: compat_umami_parse() on Umami tracker requests.
 * The input format and the checks are in target_compat.c (fuzz_compat_umami). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_compat_umami(data, size);
}
