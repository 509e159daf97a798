/*
 * The token check's derived index (issue 6, hot path): binary copies of
 * the few fields of the projected JSON records that a stream-token check
 * needs, kept in extra databases of the same LMDB environment as the
 * projection and written in the same transaction as the change they
 * derive from (edge_store_apply, edge_store_load_put). A reader therefore
 * sees the index and the projection at the same applied index, and a check
 * reads fixed-layout values instead of parsing JSON.
 *
 *   x_acc     be64 account -> account: client, customer, active,
 *             multi-login, logout cut-off, deactivation date, and the
 *             tariffs of the account and of its customer
 *   x_chan    be64 channel -> channel: client, enabled, stream name, and
 *             the tariffs that hold it
 *   x_client  be64 client  -> stream settings of the client
 *   x_keys    be64 kid     -> signing key: state and raw secret
 *
 * An account's tariffs come from the relations "acc_tar/" and "cust_tar/"
 * (db 11); every change of one of those, or of "cust_acc/", rewrites the
 * entries of the accounts concerned (a customer's accounts are found
 * through "cust_acc/", which the control plane writes with the account and
 * deletes with it), so a check reads one entry instead of
 * searching the relation database (the largest) twice. A channel's entry
 * lists the tariffs that hold it, kept by every "tar_chan/" change, so the
 * entitlement is the intersection of two lists already read.
 * A snapshot load leaves accounts and relations to edge_tcx_load_finish,
 * which derives every x_acc entry in one ordered pass once both are in.
 *
 * Values are little-endian, version byte first; decoders check version and
 * length and return TVMW_ECORRUPT otherwise. A record that does not parse
 * (never expected: the control plane wrote it) drops its index entry, so
 * the check denies rather than trusting half a record.
 */
#ifndef TVMW_EDGE_TCINDEX_H
#define TVMW_EDGE_TCINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "edge/proto.h"

enum edge_tcx {
    EDGE_TCX_ACC = 0,
    EDGE_TCX_CHAN = 1,
    EDGE_TCX_CLIENT = 2,
    EDGE_TCX_KEYS = 3,
};
#define EDGE_TCX_N 4

/* LMDB database names of the index, by enum edge_tcx. Their keys are ids
 * as uint64_t in native byte order, opened with EDGE_TCX_DB_FLAGS: LMDB
 * then compares keys as integers instead of calling memcmp (a check's
 * search of a million accounts makes a dozen comparisons). */
extern const char *const edge_tcx_names[EDGE_TCX_N];
#define EDGE_TCX_DB_FLAGS MDB_INTEGERKEY

#define EDGE_TCX_STREAM_MAX   255 /* a channel's stream_name (catalog.c limit) */
#define EDGE_TCX_TARIFFS      16  /* tariffs an x_acc entry lists; beyond: "more" */
#define EDGE_TCX_SECRET_MAX   64
#define EDGE_TOKEN_TTL_S_DEF  86400 /* client setting stream_token_ttl_s (dchannels.c) */
#define EDGE_MAX_SESSIONS_DEF 10    /* client setting stream_max_sessions */

/* True if changes to projected database db feed the index. */
bool edge_tcx_wants(unsigned db);

/* The databases the index is written from and to, in one environment. */
struct edge_tcx_dbs {
    MDB_dbi tcx[EDGE_TCX_N];
    MDB_dbi accounts; /* db 3 */
    MDB_dbi rel;      /* db 11 */
};

/* Writes (or, for value NULL, deletes) the index entries derived from the
 * record (db, key), already written in txn; a db the index does not follow
 * is a no-op. loading: a snapshot load (records in key order; accounts and
 * relations wait for edge_tcx_load_finish). Returns 0, or TVMW_ESTORE if
 * LMDB failed (the caller aborts its transaction). Writer thread only. */
int edge_tcx_update(MDB_txn *txn, const struct edge_tcx_dbs *d, unsigned db, const uint8_t *key,
                    size_t key_len, const uint8_t *value, size_t value_len, bool loading);
/* After the last record of a snapshot load: writes every x_acc entry from
 * the accounts and relations in txn. 0 or TVMW_ESTORE. */
int edge_tcx_load_finish(MDB_txn *txn, const struct edge_tcx_dbs *d);

/* True for a write to db 13 (signing keys): readers reload their key rings. */
static inline bool edge_tcx_is_keys(unsigned db)
{
    return db == EDGE_DB_KEYS;
}

/* The x_acc entry of an account record, by the allocation-free scanner
 * the store uses (0), or -1 when it leaves the record to jansson; and by
 * jansson (0, or -1 if not a JSON object). Both write the same entry for
 * the same record: the fuzz target checks it. */
#define EDGE_TCX_ACC_LEN 40 /* without tariffs */
int edge_tcx_account_fast(const uint8_t *v, size_t len, uint8_t out[EDGE_TCX_ACC_LEN]);
int edge_tcx_account_json(const uint8_t *v, size_t len, uint8_t out[EDGE_TCX_ACC_LEN]);

/* ---- decoded values (readers; no allocation) ---- */

struct edge_tcx_account {
    uint64_t client;
    uint64_t customer;
    uint64_t logout_before_ms; /* tokens issued before are revoked; 0: none */
    uint64_t deactivate_s;     /* deactivation_date 00:00 UTC; 0: none */
    bool active;
    bool multi_login;  /* allow_multiple_login: no session limits */
    bool tariffs_more; /* more than EDGE_TCX_TARIFFS: search the relations */
    unsigned n_tariffs;
    const uint8_t *tariffs; /* n_tariffs little-endian u64, ascending; borrowed */
};

struct edge_tcx_channel {
    uint64_t client;
    bool enabled;
    bool tariffs_more; /* in more than EDGE_TCX_TARIFFS tariffs: search the relations */
    unsigned n_tariffs;
    const uint8_t *tariffs; /* n_tariffs little-endian u64, ascending; borrowed */
    const uint8_t *stream;  /* borrowed from the value; "" when unset */
    size_t stream_len;
};

struct edge_tcx_client {
    uint32_t token_ttl_s;     /* stream_token_ttl_s */
    uint32_t max_sessions;    /* stream_max_sessions: X-Max-Sessions; 0 = none */
    uint32_t auth_duration_s; /* stream_auth_duration_s; 0 = the edge's default */
    bool session_limit;       /* stream_session_limit: the edge enforces max_sessions */
};

struct edge_tcx_key {
    uint16_t kid;
    bool active;
    const uint8_t *secret; /* borrowed from the value */
    unsigned secret_len;
};

int edge_tcx_account_decode(const uint8_t *v, size_t len, struct edge_tcx_account *out);
int edge_tcx_channel_decode(const uint8_t *v, size_t len, struct edge_tcx_channel *out);
int edge_tcx_client_decode(const uint8_t *v, size_t len, struct edge_tcx_client *out);
/* key: the 8-byte key of x_keys (the kid, native byte order). */
int edge_tcx_key_decode(const uint8_t *key, size_t key_len, const uint8_t *v, size_t len,
                        struct edge_tcx_key *out);

#endif
