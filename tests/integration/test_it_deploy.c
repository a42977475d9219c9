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
 * nothing to say about any unit and `systemd-analyze security` scores each
 * 2.0 or less; the nginx sample passes `nginx -t` with a
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
#include "harness_cluster.h"

#define UA_FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

static char *dir;  /* this test's temp dir */
static char root[512]; /* DESTDIR */

/* What a test started, in globals so that teardown (run even after a
 * failed assertion) stops it. */
static struct harness_redis redis;
static struct harness_proc collector, aggregator, nginx, node;

static void teardown(void)
{
    struct harness_proc *procs[] = {&nginx, &aggregator, &collector, &node};
    for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++)
        if (procs[i]->pid > 0)
            harness_kill(procs[i]);
    harness_redis_stop(&redis);
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
    int rc = sh("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL flock %s make -C %s --no-print-directory "
                "install DESTDIR=%s PREFIX=/usr %s",
                lock, src, root, sanitizer_arg());
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
    cr_expect_not_null(strstr(aconf, "\nreferrer_db /usr/share/veil/referrers.json\n"));
    cr_expect(exists("%s/usr/share/veil/referrers.json", root));
    free(aconf);
    cr_expect(exists("%s/usr/share/man/man8/veil-admin.8", root));
    cr_expect(exists("%s/etc/veil/proxy-common.conf", root));
    cr_expect_neq(sh("grep -rl /usr/local/ %s/etc %s/usr/share/veil/examples", root, root), 0,
                  "an installed config or sample names /usr/local");

    /* The installed binaries accept the installed configs (paths outside
     * DESTDIR pointed into it; the spool in the test's dir). Only their
     * output is in the log from here on. */
    char logpath[600];
    snprintf(logpath, sizeof logpath, "%s/cmd.log", dir);
    unlink(logpath);
    cr_expect_eq(sh("%s/usr/bin/veil-collector -c %s/etc/veil/veil.conf --check-config "
                    "--tracker_js=%s/usr/share/veil/veil.js --spool_dir=%s/spool",
                    root, root, root, dir),
                 0, "collector --check-config");
    cr_expect_eq(sh("%s/usr/bin/veil-aggregator -c %s/etc/veil/veil-aggregator.conf "
                    "--check-config --dashboard_dir=%s/usr/share/veil/dashboard "
                    "--referrer_db=%s/usr/share/veil/referrers.json",
                    root, root, root, root),
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
    cr_assert_eq(sh("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL flock %s make -C %s "
                    "--no-print-directory install DESTDIR=%s/local "
                    "PREFIX=/usr/local %s",
                    lock, src, dir, sanitizer_arg()),
                 0);
    cr_expect(exists("%s/local/usr/local/etc/veil/veil.conf", dir));
    cr_expect_not(exists("%s/local/etc", dir));
    char *unit = slurp("%s/local/usr/local/lib/systemd/system/veil-collector.service", dir);
    cr_expect_not_null(
        strstr(unit, "ExecStart=/usr/local/bin/veil-collector -c /usr/local/etc/veil/veil.conf\n"));
    free(unit);
    cr_assert_eq(sh("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C %s --no-print-directory "
                    "uninstall DESTDIR=%s/local PREFIX=/usr/local",
                    src, dir),
                 0);
    cr_expect_not(exists("%s/local/usr/local/bin/veil-collector", dir));
    cr_expect_not(exists("%s/local/usr/local/share/veil", dir));
    cr_expect_not(exists("%s/local/usr/local/lib/systemd/system/veil-collector.service", dir));
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
        /* Hardening does not regress: systemd's exposure score (0-10, lower
         * is safer; 1.4-1.7 when written) stays at 2.0 or below. */
        cr_expect_eq(sh("systemd-analyze security --offline=yes --threshold=20 %s/units/%s", dir,
                        name),
                     0, "%s: exposure above 2.0 (systemd-analyze security --offline=yes)", name);
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

/* The installed nginx sample, pointed at this test's certificate, ports,
 * log dir and tree; written to dir/nginx.conf. */
static void write_nginx_conf(int nginx_port, int http_port, int collector_port, int api_port)
{
    cr_assert_eq(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                    "-subj /CN=stats.example.com -addext subjectAltName=DNS:stats.example.com "
                    "-keyout %s/tls.key -out %s/tls.crt",
                    dir, dir),
                 0, "openssl could not make a certificate");
    cr_assert_eq(sh("mkdir -p %s/logs %s/nginxlog %s/tmp && sed "
                    "-e 's|listen 443 ssl|listen 127.0.0.1:%d ssl|' -e 's|listen 80;|listen 127.0.0.1:%d;|' "
                    "-e 's|127.0.0.1:8080|127.0.0.1:%d|' -e 's|127.0.0.1:8081|127.0.0.1:%d|' "
                    "-e 's|/etc/ssl/certs/stats.example.com.pem|%s/tls.crt|' "
                    "-e 's|/etc/ssl/private/stats.example.com.key|%s/tls.key|' "
                    "-e 's|/var/log/nginx/|%s/nginxlog/|' -e 's| /etc/veil/| %s/etc/veil/|' "
                    "%s/usr/share/veil/examples/nginx-veil.conf > %s/veil-site.conf",
                    dir, dir, dir, nginx_port, http_port, collector_port, api_port, dir, dir, dir, root,
                    root, dir),
                 0);
    char path[600];
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/logs/error.log;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log %s/logs/access.log;\n"
            "  client_body_temp_path %s/tmp/body;\n  proxy_temp_path %s/tmp/proxy;\n"
            "  fastcgi_temp_path %s/tmp/fastcgi;\n  uwsgi_temp_path %s/tmp/uwsgi;\n"
            "  scgi_temp_path %s/tmp/scgi;\n  include %s/veil-site.conf;\n}\n",
            dir, dir, dir, dir, dir, dir, dir, dir, dir);
    fclose(f);
}

/* curl over TLS through nginx, the certificate checked against the test's
 * own; prints the status code to dir/curl.out and returns it. */
static int curl_tls(int nginx_port, const char *args)
{
    char out[600];
    snprintf(out, sizeof out, "%s/curl.out", dir);
    unlink(out);
    int rc = sh("curl -sS -o /dev/null -w '%%{http_code}' --max-time 10 --cacert %s/tls.crt "
                "--resolve stats.example.com:%d:127.0.0.1 %s > %s",
                dir, nginx_port, args, out);
    if (rc != 0)
        return -1;
    size_t len;
    char *text = harness_read_file(out, &len);
    int code = text ? atoi(text) : -1;
    free(text);
    return code;
}

Test(deploy, nginx_sample_terminates_tls_and_logs_no_client_address, .fini = teardown,
     .timeout = 300)
{
    if (access("/usr/sbin/nginx", X_OK) != 0)
        cr_skip_test("nginx is not installed (Debian package nginx-light)");
    install_fresh();
    int nginx_port = harness_free_port(), http_port = harness_free_port(),
        port = harness_free_port(), api_port = harness_free_port();
    write_nginx_conf(nginx_port, http_port, port, api_port);
    cr_assert_eq(sh("nginx -t -p %s -e %s/logs/error.log -c %s/nginx.conf", dir, dir, dir), 0,
                 "nginx -t refused the sample:\n%s", cmd_log());

    /* The installed daemons with the installed configs behind it. */
    cr_assert_eq(harness_redis_start(&redis, dir, false), 0);
    char bin[600], conf[600], listen[64], rarg[400], spool[600], js[600], log[600];
    snprintf(bin, sizeof bin, "%s/usr/bin/veil-collector", root);
    snprintf(conf, sizeof conf, "%s/etc/veil/veil.conf", root);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%d", port);
    snprintf(rarg, sizeof rarg, "--redis=unix:%s", redis.socket);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", dir);
    snprintf(js, sizeof js, "--tracker_js=%s/usr/share/veil/veil.js", root);
    snprintf(log, sizeof log, "%s/collector.log", dir);
    char *cargv[] = {bin, "-c", conf, listen, rarg, spool, js, "--threads=1",
                     "--sites=example.com", "--trusted_proxies=127.0.0.1", NULL};
    cr_assert_eq(harness_spawn(&collector, cargv, log), 0);
    cr_assert_eq(harness_wait_http(port, "/healthz", 15000), 0);
    char abin[600], aconf[600], alisten[64], dash[600], alog[600];
    snprintf(abin, sizeof abin, "%s/usr/bin/veil-aggregator", root);
    snprintf(aconf, sizeof aconf, "%s/etc/veil/veil-aggregator.conf", root);
    snprintf(alisten, sizeof alisten, "--api_listen=127.0.0.1:%d", api_port);
    snprintf(dash, sizeof dash, "--dashboard_dir=%s/usr/share/veil/dashboard", root);
    snprintf(alog, sizeof alog, "%s/aggregator.log", dir);
    char *aargv[] = {abin, "-c", aconf, alisten, rarg, dash, "--api_token=deploy-test-token-0123456789",
                     "--k_anonymity=1", "--block_ms=50", NULL};
    cr_assert_eq(harness_spawn(&aggregator, aargv, alog), 0);
    cr_assert_eq(harness_wait_http(api_port, "/healthz", 15000), 0);

    char nconf[600], nlog[600], nerr[600];
    snprintf(nconf, sizeof nconf, "%s/nginx.conf", dir);
    snprintf(nlog, sizeof nlog, "%s/nginx.out", dir);
    snprintf(nerr, sizeof nerr, "%s/logs/error.log", dir);
    char *nargv[] = {"/usr/sbin/nginx", "-p", dir, "-e", nerr, "-c", nconf, NULL};
    cr_assert_eq(harness_spawn(&nginx, nargv, nlog), 0);
    int code = -1;

    /* veil.js (the installed one, the collector's default) over TLS. */
    char url[300];
    snprintf(url, sizeof url, "https://stats.example.com:%d/veil.js", nginx_port);
    for (int i = 0; i < 200; i++) {
        code = curl_tls(nginx_port, url);
        if (code == 200)
            break;
        usleep(50000);
    }
    cr_expect_eq(code, 200, "GET /veil.js through nginx: %d", code);

    /* An event over TLS is accepted and counted by the stats API. */
    char args[1200];
    snprintf(args, sizeof args,
             "-X POST -H 'Content-Type: text/plain' -H 'X-Forwarded-For: 203.0.113.7' "
             "-A '" UA_FIREFOX "' --data '{\"n\":\"pageview\",\"u\":\"https://example.com/tls\","
             "\"d\":\"example.com\",\"w\":1280}' https://stats.example.com:%d/api/event",
             nginx_port);
    cr_expect_eq(curl_tls(nginx_port, args), 202);
    bool counted = false;
    for (int i = 0; i < 300 && !counted; i++) {
        char *body = NULL;
        harness_http(api_port, "GET",
                     "/api/v1/stats/aggregate?site_id=example.com&period=day&metrics=events",
                     "Authorization: Bearer deploy-test-token-0123456789\r\n", NULL, 0, &body,
                     NULL);
        counted = body && strstr(body, "\"events\": {\"value\": 1}");
        free(body);
        if (!counted)
            usleep(20000);
    }
    cr_expect(counted, "the event sent through nginx was not counted");

    /* The dashboard and API are for the staff network only (not loopback). */
    snprintf(url, sizeof url, "https://stats.example.com:%d/api/v1/stats/aggregate", nginx_port);
    cr_expect_eq(curl_tls(nginx_port, url), 403);
    /* Plain HTTP: a redirect to https, nothing else. */
    cr_expect_eq(sh("curl -s -o /dev/null -w '%%{http_code} %%{redirect_url}' --max-time 5 "
                    "-H 'Host: stats.example.com' http://127.0.0.1:%d/api/event > %s/redirect.out "
                    "&& grep -q '^301 https://stats.example.com/api/event' %s/redirect.out",
                    http_port, dir, dir),
                 0, "plain HTTP is not redirected to https");
    /* Plain HTTP on the TLS port is refused. */
    cr_expect_neq(sh("curl -s -o /dev/null -w '%%{http_code}' --max-time 5 "
                     "http://127.0.0.1:%d/api/event | grep -q 202",
                     nginx_port),
                  0);

    harness_stop(&nginx);
    harness_stop(&aggregator);
    harness_stop(&collector);
    harness_redis_stop(&redis);
    /* No client address in any log nginx wrote (it saw 127.0.0.1 only). */
    cr_expect_neq(sh("grep -rl -e 127.0.0.1 -e 203.0.113.7 %s/logs %s/nginxlog", dir, dir), 0,
                  "nginx logged a client address");
    cr_expect_neq(sh("grep -l -e 203.0.113.7 -e Firefox %s/collector.log %s/aggregator.log", dir,
                     dir),
                  0, "a daemon logged a client address or User-Agent");
}

Test(deploy, redis_node_sample_starts_a_cluster_node, .fini = teardown, .timeout = 120)
{
    /* The sample veil-redis@PORT.service reads, with PORT and its data dir
     * set the way the sample says (replace 7000), is accepted by Debian's
     * redis-server and makes a cluster node with AOF on and noeviction. */
    dir = harness_tmpdir();
    cr_assert_not_null(dir);
    int port = harness_free_cluster_port(); /* its bus port (+10000) is free too */
    cr_assert_gt(port, 0);
    char src[512];
    harness_root_path("deploy/redis-veil-node.conf", src, sizeof src);
    cr_assert_eq(sh("mkdir -p %s/node && sed -e 's|7000|%d|g' -e 's|^dir .*|dir %s/node|' %s > "
                    "%s/redis-node-%d.conf",
                    dir, port, dir, src, dir, port),
                 0);
    char conf[600], log[600];
    snprintf(conf, sizeof conf, "%s/redis-node-%d.conf", dir, port);
    snprintf(log, sizeof log, "%s/node.log", dir);
    char *argv[] = {"/usr/bin/redis-server", conf, "--daemonize", "no", NULL};
    cr_assert_eq(harness_spawn(&node, argv, log), 0);
    bool up = false;
    for (int i = 0; i < 200 && !up; i++) {
        up = sh("redis-cli -p %d CONFIG GET maxmemory-policy > %s/node.cfg", port, dir) == 0 &&
             sh("grep -q noeviction %s/node.cfg", dir) == 0;
        if (!up)
            usleep(50000);
    }
    cr_expect(up, "the node did not answer with the sample's settings");
    cr_expect_eq(sh("redis-cli -p %d INFO cluster | grep -q cluster_enabled:1", port), 0);
    cr_expect_eq(sh("redis-cli -p %d CONFIG GET appendonly | grep -q yes", port), 0);
    harness_stop(&node);
    cr_expect(exists("%s/node/nodes-%d.conf", dir, port), "no cluster config in the data dir");
}
