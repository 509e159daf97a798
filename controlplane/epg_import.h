/*
 * EPG import: XMLTV in, programme batches out (docs/epg.md).
 *
 * The node that receives a document (an upload, or a download from the
 * source's URL) imports it in two phases:
 *   1. parse: the whole document is read with the streaming XMLTV reader
 *      (common/xmltv.h); each programme of a mapped channel, its time
 *      corrections applied, goes to an unlinked spool file, and a 40-byte
 *      index entry to memory. Nothing is proposed yet: a document that
 *      turns out malformed, truncated or too large changes nothing.
 *   2. propose: the index is sorted by channel and time, duplicates and
 *      overlaps are resolved, and the programmes go out channel by
 *      channel in CP_CMD_EPG "programs" commands of bounded size, each
 *      replacing the programmes of its channels in the time range it
 *      covers (epg.h). Finally an "import_status" command records the
 *      outcome in the source.
 * Memory: a few buffers plus 40 bytes per imported programme (bounded by
 * epg.max_programmes), whatever the size of the file.
 *
 * A failure in phase 2 (leader lost for longer than the retries last)
 * leaves the channels of the batches applied so far imported and the
 * rest as they were; every batch is one raft entry, so a channel range
 * is never half replaced, and running the import again completes it.
 *
 * Threads: any thread that may block (HTTP handler, the scheduler). One
 * import per source at a time per node (TVMW_EBUSY otherwise).
 */
#ifndef TVMW_CONTROLPLANE_EPG_IMPORT_H
#define TVMW_CONTROLPLANE_EPG_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/config.h"
#include "common/httpc.h"
#include "controlplane/cmd.h"
#include "controlplane/node.h"

/* What an import needs of the node. httpc forwards batches to the leader
 * when this node is not the leader; NULL: propose here only (the leader's
 * own scheduler). */
struct cp_epg_env {
    const struct tvmw_config *conf;
    struct cp_node *node;
    struct tvmw_httpc *httpc;
    const _Atomic bool *cancel; /* true: give up soon (shutdown); NULL: never */
};

/* The spool directory (epg.spool_dir or <data_root>/epg-spool). */
void cp_epg_spool_dir(const struct tvmw_config *conf, char *out, size_t len);
/* An unlinked temporary file there; 0 or -errno. */
int cp_epg_spool_open(const struct tvmw_config *conf, int *fd);

/* Proposes a CP_CMD_EPG command under reqid (here, or at the leader over
 * HTTP), retrying with the same id while the outcome is unknown, for up
 * to timeout_ms. 0 with *res (the command's result), or a TVMW_E* code. */
int cp_epg_propose(const struct cp_epg_env *env, const json_t *payload,
                   const uint8_t reqid[CP_REQID_SIZE], unsigned timeout_ms, struct cp_result **res);

/*
 * Imports the XMLTV document in fd (read from its current offset) into
 * source_id of client_id. key identifies this import: the request ids of
 * its commands derive from it, so a repeated import with the same key is
 * deduplicated by the cluster. *report (new reference) says what happened:
 *   {"status": "ok" | "error", "error": code (on error), "message", counts...}
 * with error codes "invalid_xmltv", "too_large", "not_found", "busy",
 * "unavailable", "internal". The outcome is also recorded in the source
 * (import_status) when the cluster can be reached. Returns 0 whenever
 * *report is set, else -ENOMEM.
 */
int cp_epg_import(const struct cp_epg_env *env, uint64_t client_id, uint64_t source_id, int fd,
                  const char *key, json_t **report);

/* Downloads the source's URL (conditional GET with its stored ETag and
 * Last-Modified; gzip) and imports it as cp_epg_import does. Adds status
 * "not_modified" (nothing imported) and error code "fetch_failed". */
int cp_epg_run(const struct cp_epg_env *env, uint64_t client_id, uint64_t source_id,
               const char *key, json_t **report);

/* The leader's EPG jobs: scheduled URL imports (each source every
 * interval_s) and expiry (epg.expire_days), checked every
 * epg.check_interval_ms. Nothing starts when that is 0. Stop cancels a
 * running import (it fails and is recorded as failed when it can be). */
struct cp_epg_scheduler;
int cp_epg_scheduler_start(const struct tvmw_config *conf, struct cp_node *node,
                           struct cp_epg_scheduler **out);
void cp_epg_scheduler_stop(struct cp_epg_scheduler *s);

#endif
