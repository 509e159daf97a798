/*
 * The edge's local state: an LMDB environment in <data-dir>/state holding
 * the projected databases of docs/edge-protocol.md (raw keys and values
 * as the control plane sent them) and a "meta" database whose
 * "applied_index" is written in the same transaction as every change, so
 * the state and its index never disagree.
 *
 * Everything here can be rebuilt from the control plane, hence MDB_NOSYNC
 * for feed batches. What must hold is consistency: a loaded snapshot is
 * synced before it is swapped in; open and close are synced and leave a
 * mark, and a state found after an OS crash (another kernel boot id, no
 * clean-close mark) is thrown away, since unsynced LMDB pages may then be
 * torn. A missing, unreadable or inconsistent environment is "no local
 * state", never an error: the edge then downloads a snapshot.
 *
 * A snapshot is loaded into a new environment in <data-dir>/state.new and
 * swapped in by rename (renameat2 RENAME_EXCHANGE, or two renames that
 * edge_store_open knows how to finish) only after its checksum verified;
 * until then readers keep the previous state. Readers pin the environment
 * (generation) they started on, so a swap never pulls one from under a
 * read transaction; the old environment is closed by the last reader.
 *
 * A lock file (<data-dir>/LOCK, flock) keeps a second tvmw-edge off the
 * same data dir.
 *
 * Threads: one writer thread (the follower) calls open, load_*, apply and
 * close; any thread may read (read_begin/get/read_end), with read-only
 * transactions that are MDB_NOTLS, so one thread may hold several.
 */
#ifndef TVMW_EDGE_STORE_H
#define TVMW_EDGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "edge/tcindex.h"

struct edge_change;
struct edge_store;
struct edge_store_gen; /* one environment; private */

/* Opens (creating data_dir if needed) whatever state there is. Fails only
 * when data_dir cannot be used (-errno) or is locked by another process
 * (TVMW_EBUSY); a missing or bad state just leaves the store empty. */
int edge_store_open(const char *data_dir, size_t map_size_mb, struct edge_store **out);
/* Marks a clean close and syncs. No reader may remain. NULL is a no-op. */
void edge_store_close(struct edge_store *s);

/* Writer thread (or before it starts). */
bool edge_store_has_state(const struct edge_store *s);
uint64_t edge_store_applied_index(const struct edge_store *s);

/* ---- snapshot load -------------------------------------------------------- */

struct edge_store_load;

/* Starts a new environment in <data-dir>/state.new. */
int edge_store_load_begin(struct edge_store *s, struct edge_store_load **out);
/* One snapshot record (an edge_snapshot_record_cb: ctx is the load).
 * TVMW_EMALFORMED for a db outside EDGE_DB_MIN..EDGE_DB_MAX, TVMW_ESTORE if LMDB failed. */
int edge_store_load_put(void *load, unsigned db, const uint8_t *key, size_t key_len,
                        const uint8_t *value, size_t value_len);
/* The snapshot verified: records `index`, syncs, swaps the new state in
 * and frees the load (also on error, which leaves the old state). */
int edge_store_load_commit(struct edge_store_load *l, uint64_t index);
/* Throws the new environment away; the old state stays. NULL is a no-op. */
void edge_store_load_abort(struct edge_store_load *l);

/* ---- feed ----------------------------------------------------------------- */

/* Applies changes[0..n) and sets applied_index, in one write transaction:
 * all or nothing. TVMW_ENOTFOUND without a state, TVMW_EMALFORMED for a
 * db outside EDGE_DB_MIN..EDGE_DB_MAX or an applied_index below the current one,
 * TVMW_ESTORE if LMDB failed. A del of an absent key is not an error. */
int edge_store_apply(struct edge_store *s, const struct edge_change *changes, size_t n,
                     uint64_t applied_index);

/* ---- readers (any thread) ------------------------------------------------- */

struct edge_read {
    MDB_txn *txn;
    struct edge_store_gen *gen;
    uint64_t applied_index; /* of the state this read sees */
};

/* TVMW_ENOTFOUND if there is no state yet, TVMW_ESTORE if LMDB failed.
 * End every successful begin with edge_store_read_end. */
int edge_store_read_begin(struct edge_store *s, struct edge_read *r);
/* The value of key in db; borrowed until read_end. TVMW_ENOTFOUND if
 * absent, TVMW_EMALFORMED for a bad db or key. */
int edge_store_get(const struct edge_read *r, unsigned db, const void *key, size_t key_len,
                   const uint8_t **value, size_t *value_len);
/* Calls cb for every record of db whose key starts with prefix (every
 * record for an empty prefix), in key order, from the first key >= from
 * (NULL: from the prefix); key and value are borrowed until read_end.
 * Stops at the first non-zero return of cb and returns it. */
typedef int (*edge_store_scan_cb)(void *arg, const uint8_t *key, size_t key_len,
                                  const uint8_t *value, size_t value_len);
int edge_store_scan(const struct edge_read *r, unsigned db, const void *prefix, size_t prefix_len,
                    const void *from, size_t from_len, edge_store_scan_cb cb, void *arg);
void edge_store_read_end(struct edge_store *s, struct edge_read *r);

/* ---- sticky readers (the token check's hot path) -------------------------- */

/* A read transaction one thread keeps between reads: reset after each use
 * and renewed before the next, so a read takes neither a lock nor an
 * allocation. Only when the store swapped in a snapshot does the next
 * begin drop the old environment and pin the new one (under the store's
 * lock, once per swap). A thread that stops reading keeps its last
 * environment (and, after a swap, that environment's unlinked files)
 * until it reads again or closes. One per thread; zero-initialise. */
struct edge_sticky {
    struct edge_read r;      /* r.applied_index is not maintained */
    uint64_t seq;            /* the store's swap count r.gen belongs to */
    MDB_dbi tcx[EDGE_TCX_N]; /* the token check's index (tcindex.h), of r.gen */
    MDB_dbi rel;             /* db 11 of r.gen */
    MDB_cursor *rel_cur;     /* on rel, renewed with the transaction */
};

/* Makes k->r a read of the newest committed state. TVMW_ENOTFOUND if the
 * store has no state, TVMW_ESTORE if LMDB failed. End every successful
 * begin with sticky_end. */
int edge_store_sticky_begin(struct edge_store *s, struct edge_sticky *k);
/* Releases the snapshot (mdb_txn_reset); keeps the transaction. */
void edge_store_sticky_end(struct edge_sticky *k);
/* Aborts the transaction and unpins the environment; k may be reused. */
void edge_store_sticky_close(struct edge_store *s, struct edge_sticky *k);
/* Changes whenever the signing keys (db 13) may have changed. Any thread,
 * lock-free. */
uint64_t edge_store_keys_seq(const struct edge_store *s);

/* The key of the control plane's unique index `index` (e.g. "abonement")
 * for a value of one client: "<index>/<client>/<value>", or
 * "<index>/<client>/#<sha256 hex of value>" when that would pass
 * EDGE_MAX_KEY_BYTES (as controlplane/billing_common.c builds it). out
 * needs EDGE_MAX_KEY_BYTES + 1 bytes. Returns the length, or 0 if even the
 * digest form does not fit. */
size_t edge_uniq_key(const char *index, uint64_t client_id, const char *value, char *out);

#endif
