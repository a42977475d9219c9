/* reload.c - the aggregator's SIGHUP thread (reload.h).
 *
 * It waits in sigwait() for SIGHUP, which every thread blocks; stopping
 * sends SIGHUP to this thread alone with a stop flag set. It must never
 * print or log a token: the configurations are compared through
 * cfg_print_values, which leaves secrets out. */
#include "reload.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_config.h"
#include "log.h"
#include "stats_api.h"
#include "util.h"

/* Directives the running process keeps until a restart. */
static const char *const restart_only[] = {
    "redis",         "shards",          "consumer",          "batch_size",
    "block_ms",      "lease_ms",        "future_skew_s",     "retention_days",
    "breakdown_cap", "property_budget", "session_timeout_s", "api_listen",
    "iso_codes_dir", "pair_budget",     "pair_dims",         NULL};

struct agg_reloader {
    int argc;
    char **argv;
    struct stats_api *api;
    char *boot_values; /* the start-up configuration as "\nname value" lines */
    pthread_t thread;
    atomic_bool stop;
};

static char *render_values(const struct agg_config *conf)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return NULL;
    fputc('\n', m); /* every line, the first too, starts after a newline */
    cfg_print_values(agg_options, conf, m);
    fclose(m);
    return text;
}

static bool value_changed(const char *a, const char *b, const char *name)
{
    char prefix[64];
    str_format(prefix, sizeof prefix, "\n%s ", name);
    const char *la = strstr(a, prefix), *lb = strstr(b, prefix);
    size_t na = la ? strcspn(la + 1, "\n") : 0, nb = lb ? strcspn(lb + 1, "\n") : 0;
    return !la || !lb || na != nb || memcmp(la, lb, na + 1) != 0;
}

static void reload(struct agg_reloader *r)
{
    struct agg_config next;
    enum cfg_action action;
    char err[512];
    log_info("received SIGHUP, reloading the configuration");
    if (agg_config_load(&next, r->argc, r->argv, &action, err, sizeof err) != 0) {
        log_error("reload failed, keeping the running configuration: %s", err);
        agg_config_free(&next);
        return;
    }
    char *values = render_values(&next);
    for (int i = 0; values && r->boot_values && restart_only[i]; i++) {
        if (value_changed(r->boot_values, values, restart_only[i]))
            log_warn("reload: %s changed; it takes effect after a restart", restart_only[i]);
    }
    free(values);
    if (r->api && stats_api_reload(r->api, &next, err, sizeof err) != 0) {
        log_error("reload failed, keeping the running configuration: %s", err);
        agg_config_free(&next);
        return;
    }
    log_init(r->argv[0], (enum log_level)log_level_parse(next.log_level));
    log_info("configuration reloaded");
    agg_config_free(&next);
}

static void *reloader_main(void *arg)
{
    struct agg_reloader *r = arg;
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&hup, &sig) != 0)
            continue;
        if (atomic_load(&r->stop))
            return NULL;
        reload(r);
    }
}

struct agg_reloader *agg_reloader_start(int argc, char **argv, const struct agg_config *boot,
                                        struct stats_api *api)
{
    struct agg_reloader *r = xcalloc(1, sizeof *r);
    r->argc = argc;
    r->argv = argv;
    r->api = api;
    r->boot_values = render_values(boot);
    atomic_init(&r->stop, false);
    if (pthread_create(&r->thread, NULL, reloader_main, r) != 0) {
        free(r->boot_values);
        free(r);
        return NULL;
    }
    return r;
}

void agg_reloader_stop(struct agg_reloader *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_kill(r->thread, SIGHUP);
    pthread_join(r->thread, NULL);
    free(r->boot_values);
    free(r);
}
