/*
 * Periodic jobs of the leader (DESIGN.md: they run on the leader only, as
 * commands it proposes, so every node applies the same result): the
 * built-in billing run (billing_run.c). One thread; it proposes through
 * cp_node_write like any HTTP handler.
 */
#ifndef TVMW_CONTROLPLANE_SCHEDULER_H
#define TVMW_CONTROLPLANE_SCHEDULER_H

#include "common/config.h"
#include "controlplane/node.h"

struct cp_scheduler;

int cp_scheduler_start(const struct tvmw_config *conf, struct cp_node *node,
                       struct cp_scheduler **out);
void cp_scheduler_stop(struct cp_scheduler *s);

/* Runs one built-in billing pass now (leader only): proposes batches until
 * every account was visited. Returns 0 or a TVMW_E* code. */
int cp_billing_run_once(const struct tvmw_config *conf, struct cp_node *node, uint64_t run_ms);

#endif
