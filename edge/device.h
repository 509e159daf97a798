/*
 * The device API (shared/spec/device-api.md) served by the edge from its
 * local state: /tvmiddleware/api/... and the /api/tvmiddleware/api/...
 * alias, with and without the final slash, JSON or XML by device type.
 * See docs/device-api.md for what tvmw chose where the spec is unverified.
 *
 * Handlers read one read-only transaction of the store; writes a device
 * causes (sessions, settings, message reads, device removal, last seen)
 * go to the control plane through the edge journal, so logins keep
 * working when the control plane is unreachable.
 */
#ifndef TVMW_EDGE_DEVICE_H
#define TVMW_EDGE_DEVICE_H

#include <stdbool.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/http.h"

struct edge_device;
struct edge_follow;
struct edge_journal;
struct edge_store;

struct edge_device_opts {
    const struct tvmw_config *conf; /* borrowed, like the rest */
    const struct tvmw_edge_conf *self;
    struct edge_store *store;
    struct edge_follow *follow;
    struct edge_journal *journal;
};

int edge_device_new(const struct edge_device_opts *opts, struct edge_device **out);
/* Flushes pending last-seen updates to the journal. NULL is a no-op. */
void edge_device_free(struct edge_device *d);
/* Answers req if its path belongs to the device API; false otherwise (the
 * request is then untouched). Any HTTP thread. */
bool edge_device_handle(struct edge_device *d, struct tvmw_http_req *req);
/* Appends tvmw_edge_device_* metrics. */
void edge_device_metrics(struct edge_device *d, struct tvmw_buf *out);

#endif
