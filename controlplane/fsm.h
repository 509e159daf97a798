/*
 * The replicated state machine: an LMDB environment (docs/internals.md).
 *
 * One raft entry = one (nested) LMDB write transaction, which also stores
 * the entry's index as `last_applied`, so the state and its index never
 * disagree. The entries applied in one turn of the loop are committed
 * together (cp_fsm_flush) before anybody is answered. The
 * result of every command is kept (keyed by request id) for the dedup
 * window: a retried command answers with the first result and is never
 * applied twice (client sessions, Raft thesis §6.3).
 *
 * Durability: LMDB runs with MDB_NOSYNC; raft's log and snapshots are the
 * durable copy. A killed process loses nothing LMDB committed (the page
 * cache survives it); after an OS crash the environment is discarded on
 * start (detected by the kernel boot id and a clean-shutdown mark) and
 * rebuilt from the raft snapshot and log.
 *
 * Thread rules: open/close/apply/snapshot/restore on the loop thread only.
 * Readers on any thread open their own read-only transactions.
 */
#ifndef TVMW_CONTROLPLANE_FSM_H
#define TVMW_CONTROLPLANE_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "controlplane/cmd.h"

#define CP_SNAPSHOT_MAGIC   "TVMWSNP1"
#define CP_SNAPSHOT_VERSION 1

/* Named LMDB databases; the snapshot carries all of them in this order. */
struct cp_dbs {
    MDB_dbi meta;     /* "last_applied", counters "next:<kind>" */
    MDB_dbi sessions; /* request id -> index, time, status, result body */
    MDB_dbi sesslog;  /* be64 index -> time, request id (for pruning sessions) */
    MDB_dbi members;  /* be64 node id -> JSON {id, raft_address, http_address} */
    MDB_dbi clients;  /* be64 client id -> JSON client */
    /* Billing model (billing.h); every record carries its client_id. */
    MDB_dbi customers;
    MDB_dbi accounts;
    MDB_dbi devices;
    MDB_dbi tariffs;
    MDB_dbi transactions;
    MDB_dbi messages;
    MDB_dbi channels;
    MDB_dbi uniq;  /* "<index>/<client>/<key>" -> be64 id (unique per client) */
    MDB_dbi rel;   /* "<relation>/" be64 from be64 to -> JSON or empty */
    MDB_dbi audit; /* be64 raft index -> JSON audit record of a Billing API write */
    /* Catalogue (catalog.c). */
    MDB_dbi categories;
    MDB_dbi datacenters;
    MDB_dbi services; /* streaming services */
    /* Edge feed (changelog.c): be64 index, be32 seq -> projected change. */
    MDB_dbi changelog;
    /* Device side (keys.c, device.c; docs/edge-protocol.md dbs 13-15). */
    MDB_dbi keys;         /* be64 kid -> JSON token signing key (cluster-wide) */
    MDB_dbi dsess;        /* be64 account, be64 sess_id -> JSON device session */
    MDB_dbi acc_settings; /* be64 account -> JSON favourites, locks, order */
    /* EPG (epg.h; docs/edge-protocol.md db 16). */
    MDB_dbi programs;    /* be64 channel, be64 begin time -> JSON programme */
    MDB_dbi epg_sources; /* be64 id -> JSON EPG source (not projected) */
};

/* The answer to a command: an HTTP status and a JSON body. */
struct cp_result {
    unsigned status;
    size_t len;
    char body[];
};

struct cp_result *cp_result_new(unsigned status, const char *body, size_t len);
/* Steals obj. */
struct cp_result *cp_result_json(unsigned status, json_t *obj);
struct cp_result *cp_result_error(unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cp_result_free(struct cp_result *r);

/* What a command handler gets while applying. */
struct cp_apply {
    MDB_txn *txn;
    const struct cp_dbs *db;
    const struct cp_cmd *cmd;
    uint64_t index;
};

/* Next value of a named counter in the state (deterministic ids). */
int cp_counter_next(struct cp_apply *a, const char *name, uint64_t *out);
/* Puts/gets a JSON record under a be64 key. get: TVMW_ENOTFOUND if absent. */
int cp_record_put(MDB_txn *txn, MDB_dbi dbi, uint64_t id, const json_t *obj);
int cp_record_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, json_t **out);
int cp_record_del(MDB_txn *txn, MDB_dbi dbi, uint64_t id);
/* Appends every record of dbi to a new JSON array, in id order. */
int cp_record_list(MDB_txn *txn, MDB_dbi dbi, json_t **out);

struct cp_fsm;

int cp_fsm_open(const char *dir, size_t map_size_mb, unsigned dedup_window_s, struct cp_fsm **out);
/* How many raft entries of changes the edge feed keeps (default 100000). */
void cp_fsm_set_changelog_window(struct cp_fsm *f, uint64_t entries);
/* While an entry is applied: its index and the next change number, for
 * the changelog (changelog.c). False outside apply. */
bool cp_fsm_applying(MDB_txn *txn, uint64_t *index, uint32_t *seq);
/* Marks a clean shutdown and syncs. */
void cp_fsm_close(struct cp_fsm *f);
uint64_t cp_fsm_last_applied(const struct cp_fsm *f);
/* Bytes of the LMDB map in use (up to the last page written) and its size:
 * writes fail with MDB_MAP_FULL when the first reaches the second. */
void cp_fsm_usage(const struct cp_fsm *f, uint64_t *used, uint64_t *size);
const struct cp_dbs *cp_fsm_dbs(const struct cp_fsm *f);

/* Commits the entries applied since the last flush: until then readers
 * (other transactions) do not see them. The node flushes once per loop
 * iteration, and before it answers anybody. Loop thread. */
int cp_fsm_flush(struct cp_fsm *f);

/* Applies raft entry `index`. Returns 0 also for business errors and for
 * malformed entries (their result says so); TVMW_ESTORE only if LMDB
 * failed. *res is NULL when there is nobody to answer (no-op, or an index
 * already applied before a restart); otherwise *res belongs to the caller
 * and reqid holds the command's request id. */
int cp_fsm_apply(struct cp_fsm *f, uint64_t index, const void *buf, size_t len,
                 uint8_t reqid[CP_REQID_SIZE], struct cp_result **res);

/* Serializes the whole state (malloc'd buffer, length a multiple of 8). */
int cp_fsm_snapshot(struct cp_fsm *f, void **buf, size_t *len);
/* The same in three steps, so that the copy can leave the loop thread:
 * begin on the applying thread (flushes, then holds a read transaction at
 * last_applied), write on any one thread, end on any thread. */
struct cp_fsm_snap;
int cp_fsm_snapshot_begin(struct cp_fsm *f, struct cp_fsm_snap **s);
int cp_fsm_snapshot_write(struct cp_fsm_snap *s, void **buf, size_t *len);
void cp_fsm_snapshot_end(struct cp_fsm_snap *s);
/* Verifies a snapshot (magic, version, SHA-256, structure) and replaces the
 * state with it in one transaction: on any error the state is unchanged and
 * TVMW_ECORRUPT is returned. A snapshot not newer than the state is
 * verified and then skipped (entries above it will be re-applied). */
int cp_fsm_restore(struct cp_fsm *f, const void *buf, size_t len);

/* Read-only transaction for any thread; end it with mdb_txn_abort(). */
int cp_fsm_read_begin(struct cp_fsm *f, MDB_txn **txn);

/* Command handlers, by object (clients.c, members in fsm.c). */
int cp_clients_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);

#endif
