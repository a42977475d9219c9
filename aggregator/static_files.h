/* static_files.h - the dashboard's static files, served by the stats API
 * from `dashboard_dir`: "/" is index.html, "/static/<path>" is the file
 * static/<path> under the directory.
 *
 * It must never open anything outside dashboard_dir: request paths are
 * checked segment by segment against a strict alphabet (no "..", no
 * hidden files, no percent escapes, no backslashes), the last component
 * is opened without following a symlink, and only regular files go out. */
#ifndef VEIL_STATIC_FILES_H
#define VEIL_STATIC_FILES_H

#include <stdbool.h>
#include <sys/types.h>

/* Largest file served. */
#define STATIC_MAX_BYTES (32L * 1024 * 1024)

struct static_file {
    int fd;                    /* open, read-only; the caller closes or hands it on */
    off_t size;
    const char *content_type;  /* static string */
};

/* True when `rel` (relative, '/'-separated) is a path we may serve: 1 to 8
 * segments of [A-Za-z0-9._-], none starting with '.', at most 255 bytes. */
bool static_path_safe(const char *rel);

/* Content type from the file name's extension; application/octet-stream
 * for anything unknown. */
const char *static_content_type(const char *name);

/* True when the request path is one of ours ("/" or "/static/..."). */
bool static_route_matches(const char *uri_path);

/* Open the file for request path `uri_path` under `dir`. Returns 0 and
 * fills *out, or -1 when there is nothing to serve (no such directory or
 * file, a path we refuse, not a regular file, too large): answer 404. */
int static_open(const char *dir, const char *uri_path, struct static_file *out);

#endif
