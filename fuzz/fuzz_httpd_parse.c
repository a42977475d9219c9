/* fuzz_httpd_parse.c - libFuzzer target: httpd_parse() on the bytes of one
 * connection. The input format and the checks are in target_httpd.c
 * (fuzz_httpd_parse). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_httpd_parse(data, size);
}
