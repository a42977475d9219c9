/* fuzz_event_parse_json.c - libFuzzer target: event_parse_json() on POST /api/event bodies.
 * The input format and the checks are in target_event_parse.c (fuzz_event_parse_json). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_event_parse_json(data, size);
}
