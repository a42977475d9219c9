/* fuzz_anon.c - libFuzzer target: client addresses and proxy headers.
 * The input format and the checks are in target_anon.c (fuzz_anon). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_anon(data, size);
}
