/* harness.c - real servers for integration tests (see harness.h).
 *
 * Every server gets a fresh temp dir and a unix socket or a free port, and
 * every wait is bounded. Nothing here is a mock. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

const char *harness_build_path(const char *rel, char *out, size_t outlen)
{
    const char *b = getenv("VEIL_BUILD");
    snprintf(out, outlen, "%s/%s", b && *b ? b : "build", rel);
    return out;
}

const char *harness_root_path(const char *rel, char *out, size_t outlen)
{
    const char *r = getenv("VEIL_ROOT");
    snprintf(out, outlen, "%s/%s", r && *r ? r : ".", rel);
    return out;
}

char *harness_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "%s/veil-test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

void harness_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            harness_rmdir(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* The lowest port of the kernel's ephemeral range, from which outgoing
 * connections take their local ports. */
static int ephemeral_low(void)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

static int port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* A port below the ephemeral range, picked at random. A port the kernel
 * hands out for bind(0) can be taken by any test's outgoing connection
 * (an HTTP client, say) before the server under test binds it, which made
 * start-ups fail now and then. Criterion runs each test in its own
 * process, so the seed differs per test. */
int harness_free_port(void)
{
    static uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec) | 1;
    }
    int high = ephemeral_low(), low = high - 12000;
    if (low < 10000)
        low = 10000;
    for (int tries = 0; high > low && tries < 500; tries++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        int port = low + (int)(state % (uint64_t)(high - low));
        if (port_is_free(port))
            return port;
    }
    return -1;
}

static int unix_ping(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        close(fd);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int ok = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        const char ping[] = "PING\r\n";
        char buf[64];
        struct pollfd pfd = {fd, POLLIN, 0};
        if (write(fd, ping, sizeof ping - 1) == (ssize_t)(sizeof ping - 1) &&
            poll(&pfd, 1, 1000) == 1) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            if (n > 0 && strncmp(buf, "+PONG", 5) == 0)
                ok = 0;
        }
    }
    close(fd);
    return ok;
}

int harness_redis_start(struct harness_redis *r, const char *dir, bool persist)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->socket, sizeof r->socket, "%s/redis.sock", dir);
    char logfile[300];
    snprintf(logfile, sizeof logfile, "%s/redis.log", dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        /* A test process that dies (a failed assertion, a timeout) takes its
         * Redis along, and Redis never holds the test runner's output pipe
         * open (it logs to its file). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            dup2(devnull, STDERR_FILENO);
            close(devnull);
        }
        char *argv[] = {"redis-server", "--port", "0", "--unixsocket", r->socket,
                        "--unixsocketperm", "700", "--dir", r->dir, "--logfile", logfile,
                        "--save", "", "--appendonly", persist ? "yes" : "no",
                        "--appendfsync", "always", "--daemonize", "no", NULL};
        execvp("redis-server", argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 200; i++) {
        if (unix_ping(r->socket) == 0)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        sleep_ms(50);
    }
    harness_redis_stop(r);
    return -1;
}

void harness_redis_stop(struct harness_redis *r)
{
    if (r->pid <= 0)
        return;
    kill(r->pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        sleep_ms(25);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

static int spawn_plain(struct harness_proc *p, char *const argv[], const char *log_path)
{
    memset(p, 0, sizeof *p);
    snprintf(p->log_path, sizeof p->log_path, "%s", log_path);
    char exe[512];
    if (strchr(argv[0], '/'))
        snprintf(exe, sizeof exe, "%s", argv[0]);
    else
        harness_build_path(argv[0], exe, sizeof exe);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        execv(exe, argv);
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

static int spawn_plain(struct harness_proc *p, char *const argv[], const char *log_path);

int harness_spawn(struct harness_proc *p, char *const argv[], const char *log_path)
{
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    int n = 0;
    bool has_admin = false;
    for (; argv[n]; n++)
        has_admin = has_admin || strncmp(argv[n], "--admin_listen", 14) == 0;
    if (strcmp(name, "veil-collector") != 0 || has_admin)
        return spawn_plain(p, argv, log_path);
    int port = harness_free_port();
    char admin[64];
    snprintf(admin, sizeof admin, "--admin_listen=127.0.0.1:%d", port);
    char **with = calloc((size_t)n + 2, sizeof *with);
    if (!with)
        return -1;
    memcpy(with, argv, (size_t)n * sizeof *with);
    with[n] = admin;
    int rc = spawn_plain(p, with, log_path);
    free(with);
    p->admin_port = port;
    return rc;
}

/* A sanitizer report in a daemon's log must fail the run: copy it to our
 * stderr, where scripts/run-tests.sh looks for it. */
static void relay_sanitizer_report(const char *log_path)
{
    size_t len;
    char *log = harness_read_file(log_path, &len);
    if (!log)
        return;
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        const char *at = memmem(log, len, marks[i], strlen(marks[i]));
        if (at) {
            fprintf(stderr, "sanitizer report in %s:\n%.4000s\n", log_path, at);
            break;
        }
    }
    free(log);
}

int harness_stop(struct harness_proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 400; i++) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            p->pid = 0;
            relay_sanitizer_report(p->log_path);
            return status;
        }
        sleep_ms(25);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    relay_sanitizer_report(p->log_path);
    return -1;
}

void harness_kill(struct harness_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

int harness_wait_http(int port, const char *path, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (harness_http(port, "GET", path, NULL, NULL, 0, NULL, NULL) == 200)
            return 0;
        sleep_ms(50);
    }
    return -1;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, size_t body_len, char **resp, char **resp_headers)
{
    if (resp)
        *resp = NULL;
    if (resp_headers)
        *resp_headers = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    char head[8192];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, port, headers ? headers : "", body_len);
    if (n < 0 || (size_t)n >= sizeof head || write_all(fd, head, (size_t)n) != 0 ||
        (body_len && write_all(fd, body, body_len) != 0)) {
        close(fd);
        return -1;
    }
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 10000) != 1)
            break;
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *sep = strstr(buf, "\r\n\r\n");
    if (resp_headers) {
        size_t hl = sep ? (size_t)(sep - buf) : len;
        *resp_headers = strndup(buf, hl);
    }
    if (resp)
        *resp = strdup(sep ? sep + 4 : "");
    free(buf);
    return status;
}

char *harness_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (len)
            *len = 0;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

bool harness_contains(const char *buf, size_t len, const void *needle, size_t n)
{
    return buf && n > 0 && memmem(buf, len, needle, n) != NULL;
}
