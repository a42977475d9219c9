/* fuzz_event_parse_query.c - libFuzzer target: event_parse_query() on pixel query strings.
 * The input format and the checks are in target_event_parse.c (fuzz_event_parse_query). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_event_parse_query(data, size);
}
