/*
 * The edge's HTTP endpoints (libmicrohttpd thread pool, common/http.h):
 *
 *   GET /healthz   200 while the edge has a state, stale or not (it
 *                  serves either way); 503 only without any state. JSON:
 *                  status "ok" | "stale" | "no_state", applied_index,
 *                  cp_last_index, following {id, address},
 *                  seconds_since_contact (null if never), stale,
 *                  snapshots_loaded, consecutive_failures, last_error.
 *   GET /metrics   Prometheus text (tvmw_edge_*).
 *   GET /edge/v1/debug/account?client_id=C&abonement=X
 *                  the account record found through the uniq index
 *                  (admin bearer token required: records are not public).
 *
 *   /tvmiddleware/api/...  the device API (edge/device.h).
 *
 * Handlers only read: one read-only transaction per request.
 */
#ifndef TVMW_EDGE_API_H
#define TVMW_EDGE_API_H

#include "common/config.h"

struct edge_api;
struct edge_device;
struct edge_follow;
struct edge_store;

struct edge_api_opts {
    const struct tvmw_config *conf; /* borrowed, like the rest */
    const struct tvmw_edge_conf *self;
    struct edge_store *store;
    struct edge_follow *follow;
    struct edge_device *device; /* the device API; NULL: none */
    unsigned threads;           /* MHD pool size; 0: 2 */
};

/* Listens on self->http_address. 0, TVMW_ECONFIG or TVMW_EIO. */
int edge_api_start(const struct edge_api_opts *opts, struct edge_api **out);
/* Stops listening and waits for running handlers. NULL is a no-op. */
void edge_api_stop(struct edge_api *api);

#endif
