/* main.c - veil-aggregator: configuration, the stats API thread, the
 * roll-up loop, signals.
 *
 * SIGTERM and SIGINT are blocked in every thread and read from a signalfd
 * that the roll-up loop polls between batches and during every wait, so
 * a stop never interrupts a commit: the process exits 0 after the batch in
 * hand is committed (or left pending for the next worker). SIGHUP is
 * blocked too and taken by the reload thread (reload.h). It never logs
 * event content; the stats API (stats_api.c) has its own thread. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <event2/thread.h>

#include "agg_config.h"
#include "auth.h"
#include "consumer.h"
#include "geo_names.h"
#include "log.h"
#include "referrers.h"
#include "reload.h"
#include "rollup_metrics.h"
#include "stats_api.h"
#include "util.h"

int main(int argc, char **argv)
{
    struct agg_config conf;
    enum cfg_action action;
    char err[512];
    int rc = 1;
    int sigfd = -1;
    struct stats_api *api = NULL;
    struct consumer *consumer = NULL;
    struct referrers *referrers = NULL;
    struct agg_reloader *reloader = NULL;

    /* Block the stop signals first thing, before any thread exists, so that
     * every thread inherits the mask and a SIGTERM that arrives while we
     * start up is not lost (nor fatal): it waits in the signalfd. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigset_t blocked = stop_signals;
    sigaddset(&blocked, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &blocked, NULL) != 0) {
        fprintf(stderr, "veil-aggregator: cannot block signals\n");
        return 1;
    }

    log_init(argv[0], LOG_LVL_INFO);
    /* --hash-token TOKEN: print the SHA-256 line for api_tokens and exit. */
    if (argc == 3 && strcmp(argv[1], "--hash-token") == 0) {
        char hex[65];
        if (argv[2][0] == '\0' || auth_hash_token_hex(argv[2], hex) != 0) {
            fprintf(stderr, "veil-aggregator: --hash-token needs a non-empty token\n");
            return 2;
        }
        printf("%s\n", hex);
        return 0;
    }
    if (agg_config_load(&conf, argc, argv, &action, err, sizeof err) != 0) {
        fprintf(stderr, "veil-aggregator: %s\n", err);
        agg_config_free(&conf);
        return 2;
    }
    if (cfg_print_action(agg_options, action, "veil-aggregator",
                         "Veil aggregator: rolls the event stream up into daily counts "
                         "(exactly once) and serves the stats API and dashboard.\n"
                         "  --hash-token TOKEN  print the SHA-256 of TOKEN for api_tokens")) {
        rc = 0;
        goto out;
    }
    if (action == CFG_CHECK) {
        printf("configuration ok\n");
        rc = 0;
        goto out;
    }
    log_init(argv[0], (enum log_level)log_level_parse(conf.log_level));

    signal(SIGPIPE, SIG_IGN);
    if ((sigfd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        log_error("cannot set up signal handling");
        goto out;
    }
    evthread_use_pthreads();

    /* named sources and channels (docs/API.md "Sources and channels") */
    if (conf.referrer_db[0]) {
        referrers = referrers_load(conf.referrer_db, err, sizeof err);
        if (!referrers && strcmp(conf.referrer_db, AGG_REFERRER_DB_DEFAULT) != 0) {
            log_error("%s", err);
            goto out;
        }
        if (!referrers)
            log_warn("%s: sources are referrer hosts, channels use campaigns only", err);
        else
            log_info("referrer_db: %zu referrer hosts", referrers_count(referrers));
    }
    /* country and region names (docs/API.md "Filters"), before the API thread */
    if (conf.api_listen[0] && conf.iso_codes_dir[0]) {
        if (geo_names_load(conf.iso_codes_dir, err, sizeof err) != 0) {
            log_error("%s", err);
            goto out;
        }
        log_info("iso_codes_dir: %zu country and region names", geo_names_count());
    }
    consumer = consumer_new(&conf);
    consumer_set_referrers(consumer, referrers);
    rollup_metrics_register(consumer); /* before the stats API thread reads it */
    if (conf.api_listen[0]) {
        api = stats_api_start(&conf, err, sizeof err);
        if (!api) {
            log_error("stats API: %s", err);
            goto out;
        }
    } else {
        log_info("api_listen is empty: this process only rolls up");
    }

    reloader = agg_reloader_start(argc, argv, &conf, api);
    if (!reloader)
        log_warn("cannot start the reload thread: SIGHUP is ignored");

    log_info("veil-aggregator %s: redis %s, owner '%s', %lld shards, lease %lld ms, batch %lld, "
             "retention %lld days, breakdown cap %lld, session timeout %lld s",
             VEIL_VERSION, conf.redis, conf.consumer, conf.shards, conf.lease_ms,
             conf.batch_size, conf.retention_days, conf.breakdown_cap, conf.session_timeout_s);
    if (consumer_run(consumer, sigfd) != 0)
        goto out;

    struct signalfd_siginfo si;
    if (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        log_info("received %s, stopped", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;

out:
    agg_reloader_stop(reloader);
    stats_api_stop(api);
    consumer_free(consumer);
    referrers_free(referrers);
    geo_names_unload();
    if (sigfd >= 0)
        close(sigfd);
    agg_config_free(&conf);
    return rc;
}
