/*
 * Health probes of streaming services (issue 5, requirement 6).
 *
 * The raft leader probes every enabled streaming service that has a
 * non-empty health_url: one HTTP GET per service and round, all of a round
 * in parallel, each bounded by probe.timeout_ms. Healthy means an HTTP 2xx
 * answer (redirects are not followed). After probe.down_after consecutive
 * failures a service is down, after probe.up_after consecutive successes
 * it is up. A decision that differs from the service's stored "health"
 * is proposed as the same CP_CMD_CATALOG put the admin API uses
 * ({"fields": {"health": ...}}, time from this node's clock, source
 * "probe"), so it is audited and reaches every edge through the change
 * feed; edges then route around a down service.
 *
 * Only the leader probes, and only once its election barrier applied
 * (cp_status.ready): it then reads the replicated state, which holds every
 * decision of earlier leaders. Consecutive-result counters live in memory
 * and start from zero when a node becomes leader; the stored health is
 * where a new leader starts from. Followers probe nothing.
 *
 * Threads: one thread of its own, with a private libcurl multi handle
 * (never the raft loop thread). It proposes through cp_node_write like an
 * HTTP handler and reads the state through its own read transactions.
 * cp_probe_metrics may be called from any thread.
 */
#ifndef TVMW_CONTROLPLANE_PROBE_H
#define TVMW_CONTROLPLANE_PROBE_H

#include <stdbool.h>

#include "common/buf.h"
#include "common/config.h"
#include "controlplane/node.h"

struct cp_probe;

/* Starts the probe thread. conf and node are borrowed and must outlive
 * the prober. With probe.interval_ms 0 nothing is started and *out is
 * NULL (cp_probe_stop and cp_probe_metrics accept NULL). Returns 0,
 * -ENOMEM, -EAGAIN (no thread) or TVMW_EIO (libcurl would not start). */
int cp_probe_start(const struct tvmw_config *conf, struct cp_node *node, struct cp_probe **out);
/* Stops the thread (a round in progress is abandoned, a proposal in
 * flight is waited for) and frees the prober. NULL is a no-op. */
void cp_probe_stop(struct cp_probe *p);

/* What a service's "health" field says (catalog.c: "unknown", "up", "down"). */
enum cp_health { CP_HEALTH_UNKNOWN, CP_HEALTH_UP, CP_HEALTH_DOWN };

/* The decision rule, pure (unit-tested): counts one probe result into the
 * consecutive counters *fails / *oks and returns the health the service
 * should have: DOWN once *fails reaches down_after, UP once *oks reaches
 * up_after, else `stored` unchanged (e.g. an "unknown" service stays so
 * until a threshold is reached). */
enum cp_health cp_probe_decide(enum cp_health stored, bool ok, unsigned *fails, unsigned *oks,
                               unsigned down_after, unsigned up_after);

/* Appends the prober's Prometheus metrics (tvmw_cp_service_*) to out.
 * Any thread; NULL writes nothing. */
void cp_probe_metrics(struct cp_probe *p, struct tvmw_buf *out);

#endif
