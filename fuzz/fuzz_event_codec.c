/* fuzz_event_codec.c - libFuzzer target: event_decode_field() then event_encode() round trips.
 * The input format and the checks are in target_codec.c (fuzz_event_codec). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_event_codec(data, size);
}
