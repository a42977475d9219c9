/* test_it_abuse_api.c - the stats API out of file descriptors (issue 13,
 * finding 4).
 *
 * The real veil-aggregator runs with its open-file limit lowered to 64
 * (prlimit on the spawned process, as `ulimit -n` would). A client opens
 * more connections than that. Before, evhttp's listener retried accept()
 * in a busy loop: a full core and 10.5 MB/s of accept errors on stderr.
 * Now accepting pauses, the log gets one line per kind per interval, and
 * the API answers again once the connections are gone. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* CPU ticks (user + system) the process has used. */
static long long cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    size_t len;
    char *text = harness_read_file(path, &len);
    cr_assert_not_null(text);
    char *p = strrchr(text, ')'); /* the name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    int n = sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
    free(text);
    cr_assert_eq(n, 2);
    return (long long)(utime + stime);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

Test(abuse_api, out_of_file_descriptors_backs_off_and_recovers, .timeout = 120)
{
    char *dir = harness_tmpdir();
    struct harness_redis redis;
    cr_assert_eq(harness_redis_start(&redis, dir, false), 0);
    int port = harness_free_port();
    char listen[64], rd[400], log[400];
    snprintf(listen, sizeof listen, "--api_listen=127.0.0.1:%d", port);
    snprintf(rd, sizeof rd, "--redis=unix:%s", redis.socket);
    snprintf(log, sizeof log, "%s/aggregator.log", dir);
    char *argv[] = {"veil-aggregator", listen, rd, "--api_token=abuse-test-token", NULL};
    struct harness_proc agg;
    cr_assert_eq(harness_spawn(&agg, argv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0, "aggregator did not start");

    /* ulimit -n 64 on the running process */
    struct rlimit low = {64, 64};
    cr_assert_eq(prlimit(agg.pid, RLIMIT_NOFILE, &low, NULL), 0);

    enum { HOG = 150 };
    int fds[HOG];
    for (int i = 0; i < HOG; i++)
        fds[i] = connect_to(port); /* the kernel completes them into the backlog */
    long long log_before = file_size(log);
    long long cpu_before = cpu_ticks(agg.pid);
    struct timespec two_s = {2, 0};
    nanosleep(&two_s, NULL);
    long long cpu_used = cpu_ticks(agg.pid) - cpu_before;
    long long logged = file_size(log) - log_before;
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    /* a busy loop burns the whole 2 s (2 * ticks_per_s); a pause of
     * 100 ms between tries costs next to nothing */
    cr_expect_lt(cpu_used, ticks_per_s / 2, "%lld ticks of CPU in 2 s while out of descriptors",
                 cpu_used);
    cr_expect_lt(logged, 4096, "%lld bytes logged in 2 s while out of descriptors", logged);
    char *text = harness_read_file(log, NULL);
    cr_expect(text && strstr(text, "accept failed") != NULL, "the pause is logged once");
    free(text);

    for (int i = 0; i < HOG; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* connections gone: the API answers again, and counted its pauses */
    cr_expect_eq(harness_wait_http(port, "/healthz", 20000), 0, "the API did not recover");
    char *metrics = NULL;
    harness_http(port, "GET", "/metrics", NULL, NULL, 0, &metrics, NULL);
    cr_expect(metrics && strstr(metrics, "veil_api_accept_pauses_total ") &&
                  !strstr(metrics, "veil_api_accept_pauses_total 0\n"),
              "pauses counted");
    free(metrics);

    cr_expect_eq(harness_stop(&agg), 0, "aggregator did not exit 0 on SIGTERM");
    harness_redis_stop(&redis);
    harness_rmdir(dir);
    free(dir);
}
