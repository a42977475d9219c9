/* reload.h - SIGHUP for veil-aggregator: a thread that waits for the
 * signal, re-reads the configuration (file and command line) and hands the
 * stats API its new settings.
 *
 * What changes live: api_token, api_tokens, k_anonymity, dp_epsilon,
 * dashboard_dir (its files are read per request anyway), log_level. Every
 * other directive sizes the roll-up or the listener and takes effect after a
 * restart; a reload that changes one logs so. A file with an error is
 * logged and the running configuration stays. It must never log a token. */
#ifndef VEIL_AGG_RELOAD_H
#define VEIL_AGG_RELOAD_H

struct agg_config;
struct stats_api;
struct agg_reloader;

/* Start the thread. SIGHUP must already be blocked in every thread (the
 * caller blocks it with SIGTERM and SIGINT before any thread exists), so
 * that only this thread takes it. `boot` is the start-up configuration
 * (compared, never kept); `api` may be NULL (no stats API: only log_level
 * changes). argv must outlive the reloader. Returns NULL when the thread
 * cannot start. */
struct agg_reloader *agg_reloader_start(int argc, char **argv, const struct agg_config *boot,
                                        struct stats_api *api);

/* Stop and join the thread; NULL is a no-op. Call before stats_api_stop. */
void agg_reloader_stop(struct agg_reloader *r);

#endif
