/*
 * EPG in the replicated state: the EPG sources of each client and the
 * programme guide (docs/epg.md), applied as CP_CMD_EPG commands.
 *
 * Databases:
 *   epg_sources  be64 id -> JSON source (never projected to edges: URLs
 *                may carry credentials)
 *   programs     be64 channel_id ‖ be64 begin_time (Unix s) -> JSON
 *                programme, projected to edges as db 16
 *
 * Payload {"op": ...}:
 *   source_put     {client_id, id (0 creates), fields}
 *   source_delete  {client_id, id}
 *   programs       {client_id, source_id, channels: [{channel_id, from, to,
 *                   programs: [[begin, end, name, short_name, description,
 *                               category, preview, rating, meta], ...]}]}
 *                  After it, the programmes of each channel that begin in
 *                  [from, to) are exactly the given ones (sorted by begin,
 *                  each inside the range). A programme whose begin was
 *                  already there keeps its id, and is not rewritten (no
 *                  change for edges) when nothing else changed either; new
 *                  ones get ids from the counter "next:program". A channel
 *                  that is not (or no longer) the client's is skipped and
 *                  reported.
 *   import_status  {client_id, source_id, report, etag?, last_modified?}
 *                  the outcome of an import, kept in the source record
 *   expire         {before, from_channel, limit}  (cluster-wide, from the
 *                  leader's scheduler) deletes programmes that begin before
 *                  `before` and every programme of a channel that no longer
 *                  exists, at most `limit`, from channel `from_channel` on;
 *                  the result's "next_channel" continues it (0: done).
 */
#ifndef TVMW_CONTROLPLANE_EPG_H
#define TVMW_CONTROLPLANE_EPG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "controlplane/fsm.h"

#define CP_EPG_KEY_SIZE           16
#define CP_EPG_MAX_MAP            10000       /* channel_map entries of a source */
#define CP_EPG_MAX_BATCH_PROGRAMS 20000       /* programmes in one command */
#define CP_EPG_MAX_DURATION_S     (7 * 86400) /* one programme */
#define CP_EPG_MAX_CORRECTION_S   (2 * 86400) /* time corrections, either way */
#define CP_EPG_NAME_BYTES         512
#define CP_EPG_DESC_BYTES         8192
#define CP_EPG_SHORT_BYTES        255
#define CP_EPG_URL_BYTES          2048
#define CP_EPG_META_BYTES         2048

/* be64 channel ‖ be64 begin. */
void cp_epg_program_key(uint8_t out[CP_EPG_KEY_SIZE], uint64_t channel_id, uint64_t begin_s);

/* Checks source fields (also run again in apply). create: "name" required.
 * NULL if fine, else a message. */
const char *cp_epg_source_check(json_t *fields, bool create);

int cp_epg_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);

/* Reads (any thread). client_id 0 lists every client's sources. */
int cp_epg_source_list(struct cp_fsm *f, uint64_t client_id, json_t **out);
/* TVMW_ENOTFOUND for another client's source. */
int cp_epg_source_get(struct cp_fsm *f, uint64_t client_id, uint64_t id, json_t **out);
/* Programmes of one channel of the client beginning in [from, to), at
 * most limit, in time order. TVMW_ENOTFOUND if the channel is not the
 * client's. */
int cp_epg_programs_list(struct cp_fsm *f, uint64_t client_id, uint64_t channel_id, int64_t from,
                         int64_t to, unsigned limit, json_t **out);
/* Whether an expire command with this `before` would delete anything. */
int cp_epg_expire_pending(struct cp_fsm *f, int64_t before, bool *pending);

#endif
