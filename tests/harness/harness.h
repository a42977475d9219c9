/* harness.h - start real servers for integration tests (Redis's
 * start_server, memcached's port file): a fresh temp dir, a free port or a
 * unix socket, a bounded wait, and the real binaries from $VEIL_BUILD. */
#ifndef VEIL_HARNESS_H
#define VEIL_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>


/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp). Caller owns
 * the returned string; harness_rmdir removes it recursively. */
char *harness_tmpdir(void);
void harness_rmdir(const char *dir);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int harness_free_port(void);

/* A started redis-server on a unix socket in `dir`. */
struct harness_redis {
    pid_t pid;
    char dir[256];
    char socket[300];
};
/* Start redis-server (no persistence unless `persist`), wait until it
 * answers PING (at most 10 s). Returns 0 or -1. */
int harness_redis_start(struct harness_redis *r, const char *dir, bool persist);
void harness_redis_stop(struct harness_redis *r);

/* A started process with stdout+stderr captured in `log_path`. */
struct harness_proc {
    pid_t pid;
    char log_path[300];
    int admin_port; /* veil-collector: its admin listener (/metrics), else 0 */
};
/* Spawn argv (argv[0] resolved under $VEIL_BUILD when it has no '/').
 * A veil-collector spawned without --admin_listen gets
 * --admin_listen=127.0.0.1:<free port> (its default port is fixed, and
 * tests run side by side); the port is in p->admin_port.
 * Returns 0 or -1. */
int harness_spawn(struct harness_proc *p, char *const argv[], const char *log_path);
/* SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit status as from
 * waitpid, or -1. */
int harness_stop(struct harness_proc *p);
/* SIGKILL and reap. */
void harness_kill(struct harness_proc *p);

/* Wait until 127.0.0.1:port accepts a connection and GET `path` answers
 * 200 (at most `timeout_ms`). Returns 0 or -1. */
int harness_wait_http(int port, const char *path, int timeout_ms);

/* One HTTP/1.1 request to 127.0.0.1:port (Connection: close). `headers`
 * is a "Name: value\r\n..." block or NULL. Returns the status code (or -1)
 * and, if `resp` is given, the body NUL-terminated in a malloc'd buffer
 * the caller frees. `resp_headers` likewise gets the raw header block. */
int harness_http(int port, const char *method, const char *path, const char *headers,
                 const char *body, size_t body_len, char **resp, char **resp_headers);

/* Read a whole file into a malloc'd NUL-terminated buffer (*len set). */
char *harness_read_file(const char *path, size_t *len);

/* memmem-based: true when `needle` (len n) occurs in buf. */
bool harness_contains(const char *buf, size_t len, const void *needle, size_t n);

/* Path of a built binary or fixture: "$VEIL_BUILD/<rel>" into out. */
const char *harness_build_path(const char *rel, char *out, size_t outlen);
/* Path under the source tree: "$VEIL_ROOT/<rel>". */
const char *harness_root_path(const char *rel, char *out, size_t outlen);

#endif
