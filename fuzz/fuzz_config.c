/* fuzz_config.c - libFuzzer target: the config engine over the collector's table.
 * The input format and the checks are in target_config.c (fuzz_config). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_config(data, size);
}
