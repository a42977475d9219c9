/* test_static_files.c - the dashboard file server never leaves its
 * directory: traversal, hidden files, escapes, symlinks and non-files are
 * refused; content types follow the extension. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static_files.h"

Test(static_files, path_alphabet)
{
    const char *good[] = {"index.html", "static/app.js", "static/img/logo-2.svg",
                          "static/a_b.c.d"};
    const char *bad[] = {"",           "/etc/passwd",      "static/../secret", "static/./x",
                         "static//x",  "static/.hidden",   "static/x/",        "static/%2e%2e/x",
                         "static/a b", "static/a\\b",      "static/a:b",       "..",
                         "static/a/b/c/d/e/f/g/h/i"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect(static_path_safe(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_not(static_path_safe(bad[i]), "%s", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_expect_not(static_path_safe(longname));
}

Test(static_files, content_types)
{
    cr_expect_str_eq(static_content_type("index.html"), "text/html; charset=utf-8");
    cr_expect_str_eq(static_content_type("static/app.JS"), "text/javascript; charset=utf-8");
    cr_expect_str_eq(static_content_type("static/a.css"), "text/css; charset=utf-8");
    cr_expect_str_eq(static_content_type("static/a.svg"), "image/svg+xml");
    cr_expect_str_eq(static_content_type("static/a.woff2"), "font/woff2");
    cr_expect_str_eq(static_content_type("static/noext"), "application/octet-stream");
    cr_expect_str_eq(static_content_type("static/a.exe"), "application/octet-stream");
    cr_expect_str_eq(static_content_type("static.d/noext"), "application/octet-stream");
}

static void put(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(static_files, open_only_inside_the_directory)
{
    char root[] = "/tmp/veil-static-test.XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    char dash[300], path[600];
    snprintf(dash, sizeof dash, "%s/dash", root);
    cr_assert_eq(mkdir(dash, 0700), 0);
    snprintf(path, sizeof path, "%s/static", dash);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/static/sub", dash);
    cr_assert_eq(mkdir(path, 0700), 0);
    put(dash, "index.html", "<h1>veil</h1>");
    put(dash, "static/app.js", "console.log(1)");
    put(dash, "static/.env", "SECRET=1");
    put(root, "secret.txt", "outside");
    char target[600];
    snprintf(target, sizeof target, "%s/secret.txt", root);
    snprintf(path, sizeof path, "%s/static/link.txt", dash);
    cr_assert_eq(symlink(target, path), 0);

    struct static_file f;
    cr_assert_eq(static_open(dash, "/", &f), 0);
    cr_expect_eq(f.size, 13);
    cr_expect_str_eq(f.content_type, "text/html; charset=utf-8");
    close(f.fd);
    cr_assert_eq(static_open(dash, "/static/app.js", &f), 0);
    char buf[64] = "";
    cr_expect_eq(read(f.fd, buf, sizeof buf), 14);
    cr_expect_str_eq(buf, "console.log(1)");
    close(f.fd);

    const char *refused[] = {"/static/../../secret.txt", "/static/.env", "/static/link.txt",
                             "/static/sub", "/static/missing.js", "/index.html",
                             "/static/%2e%2e/secret.txt", "/static/", "/other"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        cr_expect_eq(static_open(dash, refused[i], &f), -1, "%s was served", refused[i]);

    cr_expect_eq(static_open("", "/", &f), -1);
    snprintf(path, sizeof path, "%s/nope", root);
    cr_expect_eq(static_open(path, "/", &f), -1);
    cr_expect(static_route_matches("/"));
    cr_expect(static_route_matches("/static/x"));
    cr_expect_not(static_route_matches("/api/v1/stats/aggregate"));

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_expect_eq(system(cmd), 0);
}
