/*
 * HTTP surface of a control-plane node: /healthz, /metrics and the admin
 * API (docs/admin-api.md), with forwarding of writes and linearizable
 * reads to the leader. Handlers run on libmicrohttpd's per-connection
 * threads and block on the node (node.h).
 */
#ifndef TVMW_CONTROLPLANE_API_H
#define TVMW_CONTROLPLANE_API_H

#include "common/config.h"
#include "controlplane/node.h"

struct cp_probe;

struct cp_api;

int cp_api_start(const struct tvmw_config *conf, struct cp_node *node, const char *http_address,
                 struct cp_api **out);
void cp_api_stop(struct cp_api *api);
/* Shows the prober's metrics in /metrics from now on (NULL: none). Any
 * thread; the prober must outlive the API (stop the API first). */
void cp_api_set_probe(struct cp_api *api, struct cp_probe *probe);

#endif
