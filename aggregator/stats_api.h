/* stats_api.h - the stats API of veil-aggregator: Plausible-style
 * GET /api/v1/stats/{aggregate,timeseries,breakdown,realtime/visitors},
 * GET /api/v1/sites, /healthz, /metrics and the dashboard's static files,
 * on its own thread with its own event_base and its own synchronous Redis
 * connection (docs/API.md).
 *
 * It only reads counts (docs/KEYS.md) and publishes them through the
 * privacy filters: k-anonymity folding of breakdown rows, optional DP
 * noise. It must never publish a breakdown row below k, answer a request
 * twice or not at all, keep a plain-text token, or log request content. */
#ifndef VEIL_STATS_API_H
#define VEIL_STATS_API_H

#include <stddef.h>

struct agg_config;
struct stats_api;

/* Bind cfg->api_listen ("host:port"), then serve on a new thread until
 * stats_api_stop. Settings are copied; cfg need not outlive the call,
 * except that cfg->api_token is hashed and then wiped in place (zero
 * bytes), so the caller's plain-text copy is gone afterwards. Redis
 * (cfg->redis) is connected lazily and reconnected after a loss; Redis
 * being down is not an error here.
 * Returns NULL with a reason in err when the address cannot be bound, an
 * api_tokens entry is malformed, or the thread cannot start. */
struct stats_api *stats_api_start(const struct agg_config *cfg, char *err, size_t errlen);

/* Apply a reloaded configuration (SIGHUP) to a running API: api_token,
 * api_tokens, k_anonymity, dp_epsilon, dashboard_dir and retention_days
 * (the period clipping). The new grants are built here, so a malformed
 * api_tokens entry returns -1 with a reason and changes nothing; otherwise
 * the API thread switches to the new settings between two requests and
 * logs it, and 0 is returned. cfg->api_token is wiped in place, as by
 * stats_api_start. Call from any thread but the API's own. */
int stats_api_reload(struct stats_api *api, const struct agg_config *cfg, char *err,
                     size_t errlen);

/* Stop the loop (requests in progress finish first), join the thread and
 * free everything. NULL is a no-op. Call from the thread that started it. */
void stats_api_stop(struct stats_api *api);

#endif
