/*
 * The edge projection and the changelog behind the edge feed
 * (docs/edge-protocol.md).
 *
 * Every write to a projected database during apply goes through
 * cp_changelog_note(), which appends the projected change to the
 * "changelog" database in the same LMDB transaction — so the feed can
 * never disagree with the state, and a change of a method that fails is
 * dropped with it (nested transactions). The changelog keeps the changes of
 * the last `window` raft entries; "changelog_horizon" in meta is the index
 * up to which changes may be missing.
 */
#ifndef TVMW_CONTROLPLANE_CHANGELOG_H
#define TVMW_CONTROLPLANE_CHANGELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "common/buf.h"
#include "controlplane/fsm.h"

#define CP_EDGE_DB_COUNT 16

/* Edge database id (1..CP_EDGE_DB_COUNT) of a control-plane database, 0 if not projected. */
int cp_edge_db(const struct cp_dbs *db, MDB_dbi dbi);
/* The projected value of a record for edges into out; *skip when this key
 * is not projected at all (ledger relations, other indexes). */
int cp_edge_project(int edb, const MDB_val *k, const MDB_val *v, struct tvmw_buf *out, bool *skip);

/* Records a put (v != NULL) or delete of key k in dbi, if projected and
 * inside apply. Returns 0 or a store error. */
int cp_changelog_note(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, const MDB_val *v);
/* Drops changes older than `window` entries (a bounded amount per call). */
int cp_changelog_prune(struct cp_apply *a, uint64_t window);

/* Feed read (any thread): the changes after `after` as the protocol's JSON
 * answer. When `after` is behind the horizon, *gone is set and *out is the
 * 410 body. */
int cp_feed_read(struct cp_fsm *f, uint64_t after, unsigned limit, json_t **out, bool *gone);

/* Streaming edge snapshot: open pins the state in a read transaction;
 * read fills buf with up to len bytes (returns bytes, 0 at the end, or a
 * negative error); close releases it. One reader per stream. */
struct cp_edge_snap;
int cp_edge_snap_open(struct cp_fsm *f, struct cp_edge_snap **out, uint64_t *index);
long cp_edge_snap_read(struct cp_edge_snap *s, uint8_t *buf, size_t len);
void cp_edge_snap_close(struct cp_edge_snap *s);

#endif
