/* fuzz_checkpoint.c - libFuzzer target: shard_session_decode() on checkpoint values.
 * The checks are in target_checkpoint.c (fuzz_checkpoint). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_checkpoint(data, size);
}
