/* fuzz_rcluster.c - libFuzzer target: the Redis Cluster routing's parsers
 * (address list, redirect replies, CLUSTER SLOTS) and key slot. The input
 * format and the checks are in target_rcluster.c (fuzz_rcluster). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_rcluster(data, size);
}
