/* main.c - veil-collector: configuration, shared resources, signals.
 *
 * Loads the config (file, then --name=value), the uap-core rules, the
 * GeoIP database and the salt store, starts the HTTP workers, and waits
 * for SIGTERM/SIGINT to stop accepting, flush to Redis and exit 0.
 * SIGHUP re-reads the configuration and reopens the GeoIP database without
 * dropping a connection: the per-request directives, geo_db and
 * trusted_proxies change at once; restart-only ones are reported. */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>

#include "anon.h"
#include "collector_config.h"
#include "geo.h"
#include "http.h"
#include "log.h"
#include "registry.h"
#include "salt.h"
#include "shard_meta.h"
#include "ua.h"
#include "util.h"

#define DRAIN_MS 5000
#define RETIRE_GRACE_MS 10000 /* a request holds a generation for microseconds */
#define RETIRED_MAX 16

/* Directives read once at start-up; a reload that changes them warns. */
static const char *const restart_only[] = {
    "listen",       "redis",          "threads",     "ua_regexes",       "ua_cache_entries",
    "visitor_hash", "max_body_bytes", "max_header_bytes", "timeout_s",   "max_buffered_events",
    "spool_dir",    "spool_max_bytes", "spool_fsync", "rate_limit",       "rate_burst",
    "tracker_js",   "request_timeout_s", "max_connections", "batch_wait_us",
    "registry_poll_ms", "shards", "wait_replicas", "wait_timeout_ms", NULL};

struct reloader {
    int argc;
    char **argv;
    struct collector_server *srv;
    struct collector_live *boot;
    struct collector_live *current;
    struct collector_live *retired[RETIRED_MAX];
    uint64_t retired_at[RETIRED_MAX];
    int nretired;
};

#define TRACKER_MAX_BYTES (256 * 1024)

/* Read the built veil.js into memory and derive its ETag. Returns 0 or -1. */
static int load_tracker(const char *path, char **js, size_t *len, char etag[24])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    *js = xmalloc(TRACKER_MAX_BYTES);
    *len = fread(*js, 1, TRACKER_MAX_BYTES, f);
    bool too_big = *len == TRACKER_MAX_BYTES || ferror(f);
    fclose(f);
    if (too_big || *len == 0)
        return -1;
    uint8_t digest[8];
    crypto_generichash(digest, sizeof digest, (const uint8_t *)*js, *len, NULL, 0);
    char hex[17];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    str_format(etag, 24, "\"%s\"", hex);
    return 0;
}

/* --check-config: the spool directory start-up would create or open must
 * be a writable directory, or the nearest existing parent must let us
 * create it. Returns 0, or -1 with a reason. */
static int check_spool_dir(const char *dir, char *err, size_t errlen)
{
    if (!dir[0])
        return 0;
    char path[1024];
    if (!str_copy(path, sizeof path, dir, strlen(dir))) {
        str_format(err, errlen, "spool_dir: path too long");
        return -1;
    }
    struct stat st;
    while (stat(path, &st) != 0) {
        char *slash = strrchr(path, '/');
        if (!slash) {
            str_copy(path, sizeof path, ".", 1);
            continue;
        }
        if (slash == path)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    if (!S_ISDIR(st.st_mode)) {
        str_format(err, errlen, "spool_dir %s: %s is not a directory", dir, path);
        return -1;
    }
    if (access(path, W_OK | X_OK) != 0) {
        str_format(err, errlen, "spool_dir %s: %s is not writable by this user", dir, path);
        return -1;
    }
    return 0;
}

/* The live site registry (registry.h): polled from the main thread, each
 * snapshot handed to the workers whole; a replaced one is freed after the
 * same grace as a retired configuration. */
#define REGISTRY_RETIRED_MAX 64
struct registry_poller {
    struct collector_server *srv;
    const char *redis;
    redisContext *rc;
    long long version;      /* of the snapshot the workers have; -1 none */
    bool failing;           /* the last poll failed (logged once) */
    const struct reg_hosts *current;
    struct reg_hosts *retired[REGISTRY_RETIRED_MAX];
    uint64_t retired_at[REGISTRY_RETIRED_MAX];
    int nretired;
};

static void registry_sweep(struct registry_poller *p, bool all)
{
    int kept = 0;
    for (int i = 0; i < p->nretired; i++) {
        if (all || clock_ms() - p->retired_at[i] >= RETIRE_GRACE_MS) {
            registry_hosts_free(p->retired[i]);
        } else {
            p->retired[kept] = p->retired[i];
            p->retired_at[kept++] = p->retired_at[i];
        }
    }
    p->nretired = kept;
}

static void registry_poll_failed(struct registry_poller *p, const char *why)
{
    if (!p->failing)
        log_warn("site registry: %s; keeping the sites known so far", why);
    p->failing = true;
    if (p->rc) {
        redisFree(p->rc);
        p->rc = NULL;
    }
}

static void registry_poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct registry_poller *p = arg;
    char err[300];
    registry_sweep(p, false);
    if (p->nretired == REGISTRY_RETIRED_MAX)
        return; /* changing faster than the grace: wait */
    if (!p->rc && !(p->rc = registry_connect(p->redis, 500, err, sizeof err))) {
        registry_poll_failed(p, err);
        return;
    }
    long long version = registry_version(p->rc);
    if (version < 0) {
        registry_poll_failed(p, "cannot read its version");
        return;
    }
    if (p->failing)
        log_info("site registry: reachable again");
    p->failing = false;
    if (version == p->version)
        return;
    struct reg_hosts *next = registry_hosts_load(p->rc, err, sizeof err);
    if (!next) {
        registry_poll_failed(p, err);
        return;
    }
    const struct reg_hosts *old = collector_server_set_registry(p->srv, next);
    if (old) {
        p->retired[p->nretired] = (struct reg_hosts *)(uintptr_t)old;
        p->retired_at[p->nretired++] = clock_ms();
    }
    p->current = next;
    p->version = version;
    log_info("site registry: version %lld, %zu hostname%s", version,
             registry_hosts_count(next), registry_hosts_count(next) == 1 ? "" : "s");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopbreak(arg);
}

/* A generation: config + GeoIP + trusted proxies. NULL with a reason. */
static struct collector_live *live_load(int argc, char **argv, enum cfg_action *action, char *err,
                                        size_t errlen)
{
    struct collector_live *live = xcalloc(1, sizeof *live);
    if (collector_config_load(&live->conf, argc, argv, action, err, errlen) != 0)
        goto fail;
    if (*action != CFG_RUN && *action != CFG_CHECK)
        return live;
    char reason[400];
    live->trusted = anon_cidr_list_new(&live->conf.trusted_proxies, reason, sizeof reason);
    if (!live->trusted) {
        str_format(err, errlen, "trusted_proxies: %s", reason);
        goto fail;
    }
    if (live->conf.geo_db[0] && live->conf.geo != GEO_OFF) {
        live->geo = geo_open(live->conf.geo_db, reason, sizeof reason);
        if (!live->geo) {
            str_format(err, errlen, "geo_db: %s", reason);
            goto fail;
        }
    }
    if (live->geo && *action == CFG_RUN && live->conf.geo_db_max_age_days > 0) {
        int64_t built = geo_db_build_epoch(live->geo), now = (int64_t)time(NULL);
        long long age = built > 0 ? (long long)((now - built) / 86400) : -1;
        if (age > live->conf.geo_db_max_age_days)
            log_warn("geo_db %s is %lld days old (geo_db_max_age_days %lld): update it "
                     "(docs/DEPLOYMENT.md, \"GeoIP database\") and reload",
                     geo_db_description(live->geo), age, live->conf.geo_db_max_age_days);
        else if (built == 0)
            log_warn("geo_db %s has no build date: its age is unknown",
                     geo_db_description(live->geo));
    }
    return live;
fail:
    anon_cidr_list_free(live->trusted);
    collector_config_free(&live->conf);
    free(live);
    return NULL;
}

/* Release what requests used; the boot generation keeps its config. */
static void live_release(struct reloader *r, struct collector_live *live)
{
    if (live->geo)
        geo_close(live->geo);
    live->geo = NULL;
    anon_cidr_list_free(live->trusted);
    live->trusted = NULL;
    if (live != r->boot) {
        collector_config_free(&live->conf);
        free(live);
    }
}

static void sweep_retired(struct reloader *r, bool all)
{
    int kept = 0;
    for (int i = 0; i < r->nretired; i++) {
        if (all || clock_ms() - r->retired_at[i] >= RETIRE_GRACE_MS) {
            live_release(r, r->retired[i]);
        } else {
            r->retired[kept] = r->retired[i];
            r->retired_at[kept++] = r->retired_at[i];
        }
    }
    r->nretired = kept;
}

static char *render_values(const struct collector_config *conf)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return NULL;
    fputc('\n', m); /* every line, the first too, starts after a newline */
    cfg_print_values(collector_options, conf, m);
    fclose(m);
    return text;
}

/* Warn about restart-only directives whose value the reload changed. */
static void warn_restart_only(const struct collector_config *old, const struct collector_config *next)
{
    char *a = render_values(old), *b = render_values(next);
    for (int i = 0; a && b && restart_only[i]; i++) {
        char prefix[64];
        str_format(prefix, sizeof prefix, "\n%s ", restart_only[i]);
        const char *la = strstr(a, prefix), *lb = strstr(b, prefix);
        size_t na = la ? strcspn(la + 1, "\n") : 0, nb = lb ? strcspn(lb + 1, "\n") : 0;
        if (!la || !lb || na != nb || memcmp(la, lb, na + 1) != 0)
            log_warn("reload: %s changed; it takes effect after a restart", restart_only[i]);
    }
    free(a);
    free(b);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct reloader *r = arg;
    sweep_retired(r, false);
    if (r->nretired == RETIRED_MAX) {
        log_warn("reload refused: too many reloads in %d s", RETIRE_GRACE_MS / 1000);
        return;
    }
    char err[512];
    enum cfg_action action;
    struct collector_live *next = live_load(r->argc, r->argv, &action, err, sizeof err);
    if (!next) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    warn_restart_only(&r->boot->conf, &next->conf);
    struct collector_live *old = collector_server_reload(r->srv, next);
    r->current = next;
    r->retired[r->nretired] = old;
    r->retired_at[r->nretired++] = clock_ms();
    log_init(r->argv[0], (enum log_level)log_level_parse(next->conf.log_level));
    log_info("configuration reloaded; geo %s", next->geo ? geo_db_description(next->geo) : "off");
}

int main(int argc, char **argv)
{
    enum cfg_action action;
    char err[512];
    int rc = 1;
    struct reloader reloader = {.argc = argc, .argv = argv};
    struct ua_rules *rules = NULL;
    struct salt_store *salts = NULL;
    struct collector_server *srv = NULL;
    struct event_base *main_base = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *registry_ev = NULL;
    struct registry_poller poller = {.version = -1};
    char *tracker = NULL;
    size_t tracker_len = 0;
    char tracker_etag[24] = "";

    log_init(argv[0], LOG_LVL_INFO);
    if (sodium_init() < 0) {
        fprintf(stderr, "veil-collector: libsodium failed to initialise\n");
        return 1;
    }
    struct collector_live *boot = live_load(argc, argv, &action, err, sizeof err);
    if (!boot) {
        fprintf(stderr, "veil-collector: %s\n", err);
        return 2;
    }
    reloader.boot = reloader.current = boot;
    const struct collector_config *conf = &boot->conf;
    if (cfg_print_action(collector_options, action, "veil-collector",
                         "Veil beacon collector: receives analytics events, keeps only "
                         "non-identifying fields, pushes them to Redis. SIGHUP reloads the "
                         "configuration and the GeoIP database.")) {
        rc = 0;
        goto err;
    }
    log_init(argv[0], (enum log_level)log_level_parse(conf->log_level));
    if (!boot->geo && conf->geo != GEO_OFF)
        log_warn("geo_db is empty: no location will be recorded");
    rules = ua_rules_load(conf->ua_regexes, err, sizeof err);
    if (!rules) {
        log_error("ua_regexes: %s", err);
        goto err;
    }
    if (conf->tracker_js[0] &&
        load_tracker(conf->tracker_js, &tracker, &tracker_len, tracker_etag) != 0) {
        log_error("tracker_js: cannot read %s (missing, empty or over 256 KiB)", conf->tracker_js);
        goto err;
    }
    if (action == CFG_CHECK && check_spool_dir(conf->spool_dir, err, sizeof err) != 0) {
        log_error("%s", err);
        goto err;
    }
    if (action == CFG_CHECK) {
        printf("configuration ok\n");
        rc = 0;
        goto err;
    }

    /* Client IPs pass through this process's memory: never dump it (P1). */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    if (conf->sites.n == 0)
        log_warn("sites is empty: events for any site are accepted (open mode) until the site "
                 "registry (veil-admin site add) holds a site");

    int shards_ok = shard_meta_check(conf->redis, (unsigned)conf->shards, 2000, err, sizeof err);
    if (shards_ok < 0) {
        log_error("%s", err);
        goto err;
    }
    if (shards_ok > 0)
        log_warn("redis is not reachable: the shard count (%lld) is checked on connecting",
                 conf->shards);

    salts = salt_store_new((enum salt_period)conf->visitor_hash, conf->redis);
    if (salt_store_start(salts, 2000) != 0) {
        log_error("cannot start the salt rotation thread");
        goto err;
    }

    int nthreads = (int)conf->threads;
    if (nthreads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cores > 0 ? (int)cores : 1;
    }
    struct collector_shared shared = {boot, rules, salts, tracker, tracker_len, tracker_etag};
    srv = collector_server_new(&shared, nthreads, err, sizeof err);
    if (!srv) {
        log_error("%s", err);
        goto err;
    }
    reloader.srv = srv;
    main_base = event_base_new();
    sigterm = evsignal_new(main_base, SIGTERM, signal_cb, main_base);
    sigint = evsignal_new(main_base, SIGINT, signal_cb, main_base);
    sighup = evsignal_new(main_base, SIGHUP, sighup_cb, &reloader);
    if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) != 0 ||
        evsignal_add(sigint, NULL) != 0 || evsignal_add(sighup, NULL) != 0 ||
        collector_server_start(srv) != 0) {
        log_error("cannot start the workers");
        goto err;
    }
    if (conf->registry_poll_ms > 0) {
        poller.srv = srv;
        poller.redis = conf->redis;
        registry_poll_cb(-1, 0, &poller); /* the registry's sites from the first request on */
        long long ms = conf->registry_poll_ms;
        struct timeval every = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        registry_ev = event_new(main_base, -1, EV_PERSIST, registry_poll_cb, &poller);
        if (!registry_ev || event_add(registry_ev, &every) != 0) {
            log_error("cannot start polling the site registry");
            goto err;
        }
    }
    log_info("veil-collector %s listening on %s with %d thread%s; admin on %s; geo %s; redis %s",
             VEIL_VERSION, conf->listen, nthreads, nthreads == 1 ? "" : "s",
             conf->admin_listen[0] ? conf->admin_listen : "(none)",
             boot->geo ? geo_db_description(boot->geo) : "off", conf->redis);
    event_base_dispatch(main_base);
    collector_server_stop(srv, DRAIN_MS);
    log_info("stopped");
    rc = 0;

err:
    if (registry_ev)
        event_free(registry_ev);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (main_base)
        event_base_free(main_base);
    collector_server_free(srv);
    if (poller.rc)
        redisFree(poller.rc);
    registry_sweep(&poller, true);
    registry_hosts_free((struct reg_hosts *)(uintptr_t)poller.current);
    salt_store_free(salts);
    if (rules)
        ua_rules_free(rules);
    free(tracker);
    sweep_retired(&reloader, true);
    if (reloader.current != boot)
        live_release(&reloader, reloader.current);
    live_release(&reloader, boot);
    collector_config_free(&boot->conf);
    free(boot);
    return rc;
}
