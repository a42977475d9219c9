/* static_files.c - safe lookup of dashboard files (see static_files.h).
 * Never opens a path outside dashboard_dir. */
#include "static_files.h"

#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define STATIC_PATH_MAX 255
#define STATIC_DEPTH_MAX 8

static bool segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool static_path_safe(const char *rel)
{
    size_t len = strlen(rel);
    if (len == 0 || len > STATIC_PATH_MAX)
        return false;
    int depth = 0;
    const char *seg = rel;
    for (;;) {
        const char *slash = strchr(seg, '/');
        size_t seglen = slash ? (size_t)(slash - seg) : strlen(seg);
        if (seglen == 0 || seg[0] == '.' || ++depth > STATIC_DEPTH_MAX)
            return false;
        for (size_t i = 0; i < seglen; i++) {
            if (!segment_char(seg[i]))
                return false;
        }
        if (!slash)
            return true;
        seg = slash + 1;
    }
}

const char *static_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"txt", "text/plain; charset=utf-8"},
        {"wasm", "application/wasm"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < ARRAY_LEN(types); i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

bool static_route_matches(const char *uri_path)
{
    return strcmp(uri_path, "/") == 0 || strncmp(uri_path, "/static/", 8) == 0;
}

int static_open(const char *dir, const char *uri_path, struct static_file *out)
{
    const char *rel;
    if (!dir || !dir[0])
        return -1;
    if (strcmp(uri_path, "/") == 0)
        rel = "index.html";
    else if (strncmp(uri_path, "/static/", 8) == 0)
        rel = uri_path + 1; /* "static/..." */
    else
        return -1;
    if (!static_path_safe(rel))
        return -1;

    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -1;
    int fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    close(dirfd);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_BYTES) {
        close(fd);
        return -1;
    }
    out->fd = fd;
    out->size = st.st_size;
    out->content_type = static_content_type(rel);
    return 0;
}
