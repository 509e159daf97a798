/*
 * LMDB state machine: apply, sessions (dedup), snapshot and restore.
 * See fsm.h for the contract and docs/internals.md for the formats.
 */
#include "controlplane/fsm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/buf.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controlplane/billing.h"
#include "controlplane/catalog.h"
#include "controlplane/changelog.h"
#include "controlplane/device_writes.h"
#include "controlplane/epg.h"
#include "controlplane/keys.h"

#define MAX_RECORD_BYTES    (4u << 20)
#define SESSION_PRUNE_BATCH 64
#define SNAP_HEADER_SIZE    32
#define SNAP_END_MARK       0xFF
#define CP_FSM_MAX_BATCH    512 /* entries per LMDB commit at most */

struct cp_fsm {
    MDB_env *env;
    MDB_dbi local; /* this node only, never in snapshots: boot id, clean mark */
    struct cp_dbs db;
    uint64_t last_applied;
    uint64_t dedup_window_ms;
    uint64_t changelog_window;
    uint64_t applying_index; /* the entry being applied, 0 outside apply */
    MDB_txn *batch;          /* open write txn holding applied, uncommitted entries */
    unsigned batch_entries;
    uint32_t applying_seq;
    char dir[512];
};

/* Order of the databases in a snapshot. Adding one appends here. */
static const char *const db_names[] = {
    "meta",      "sessions", "sesslog", "members",      "clients",     "customers",
    "accounts",  "devices",  "tariffs", "transactions", "messages",    "channels",
    "uniq",      "rel",      "audit",   "categories",   "datacenters", "services",
    "changelog", "keys",     "dsess",   "acc_settings", "programs",    "epg_sources"};
#define N_DBS (sizeof(db_names) / sizeof(db_names[0]))
_Static_assert(sizeof(struct cp_dbs) == N_DBS * sizeof(MDB_dbi), "db table out of date");

static MDB_dbi *db_at(struct cp_dbs *db, unsigned i)
{
    return (MDB_dbi *)db + i;
}

static int err_from_mdb(int rc)
{
    if (rc == 0) {
        return 0;
    }
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    TVMW_LOG_ERROR("fsm", "lmdb error: %s", mdb_strerror(rc));
    return TVMW_ESTORE;
}

/* ---- results ---------------------------------------------------------- */

struct cp_result *cp_result_new(unsigned status, const char *body, size_t len)
{
    struct cp_result *r = malloc(sizeof(*r) + len + 1);
    if (r == NULL) {
        return NULL;
    }
    r->status = status;
    r->len = len;
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    return r;
}

struct cp_result *cp_result_json(unsigned status, json_t *obj)
{
    /* 15 digits: money like 9.93 prints as 9.93, not 9.9299999999999997. */
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(obj);
    if (text == NULL) {
        return NULL;
    }
    struct cp_result *r = cp_result_new(status, text, strlen(text));
    free(text);
    return r;
}

struct cp_result *cp_result_error(unsigned status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cp_result_json(status, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

void cp_result_free(struct cp_result *r)
{
    free(r);
}

/* ---- records ---------------------------------------------------------- */

int cp_counter_next(struct cp_apply *a, const char *name, uint64_t *out)
{
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name}, v;
    uint64_t next = 1;
    int rc = mdb_get(a->txn, a->db->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8) {
        next = tvmw_get_u64(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        return err_from_mdb(rc);
    }
    uint8_t buf[8];
    tvmw_put_u64(buf, next + 1);
    v.mv_size = 8;
    v.mv_data = buf;
    rc = mdb_put(a->txn, a->db->meta, &k, &v, 0);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    *out = next;
    return 0;
}

int cp_record_put(MDB_txn *txn, MDB_dbi dbi, uint64_t id, const json_t *obj)
{
    uint8_t key[8];
    tvmw_put_be64(key, id);
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text == NULL) {
        return -ENOMEM;
    }
    MDB_val k = {.mv_size = 8, .mv_data = key}, v = {.mv_size = strlen(text), .mv_data = text};
    int rv = err_from_mdb(mdb_put(txn, dbi, &k, &v, 0));
    if (rv == 0) {
        rv = cp_changelog_note(txn, dbi, &k, &v);
    }
    free(text);
    return rv;
}

int cp_record_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, json_t **out)
{
    uint8_t key[8];
    tvmw_put_be64(key, id);
    MDB_val k = {.mv_size = 8, .mv_data = key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
    if (o == NULL) {
        return TVMW_ECORRUPT;
    }
    *out = o;
    return 0;
}

int cp_record_del(MDB_txn *txn, MDB_dbi dbi, uint64_t id)
{
    uint8_t key[8];
    tvmw_put_be64(key, id);
    MDB_val k = {.mv_size = 8, .mv_data = key};
    int rv = err_from_mdb(mdb_del(txn, dbi, &k, NULL));
    if (rv == 0) {
        rv = cp_changelog_note(txn, dbi, &k, NULL);
    }
    return rv;
}

int cp_record_list(MDB_txn *txn, MDB_dbi dbi, json_t **out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    json_t *arr = json_array();
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if (o == NULL) {
            mdb_cursor_close(cur);
            json_decref(arr);
            return TVMW_ECORRUPT;
        }
        json_array_append_new(arr, o);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        json_decref(arr);
        return err_from_mdb(rc);
    }
    *out = arr;
    return 0;
}

/* ---- open / close ----------------------------------------------------- */

static int put_local(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *val, size_t len)
{
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
    MDB_val v = {.mv_size = len, .mv_data = (void *)val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int env_open(struct cp_fsm *f, size_t map_size_mb)
{
    int rc = mdb_env_create(&f->env);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    mdb_env_set_mapsize(f->env, map_size_mb << 20);
    mdb_env_set_maxdbs(f->env, 32);
    /* NOSYNC: see the durability note in fsm.h. NOTLS: read txns of HTTP
     * threads are not tied to thread-local slots. */
    mdb_env_set_userctx(f->env, f); /* changelog.c finds the fsm from a txn */
    rc = mdb_env_open(f->env, f->dir, MDB_NOSYNC | MDB_NOTLS, 0600);
    if (rc != 0) {
        mdb_env_close(f->env);
        f->env = NULL;
        return err_from_mdb(rc);
    }
    return 0;
}

/* Opens the databases and reads last_applied. *unclean is set when the
 * environment may have lost writes in an OS crash. */
static int dbs_open(struct cp_fsm *f, int *unclean)
{
    MDB_txn *txn;
    char boot[64], stored[64] = "";
    int rc = mdb_txn_begin(f->env, NULL, 0, &txn);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    if ((rc = mdb_dbi_open(txn, "local", MDB_CREATE, &f->local)) != 0) {
        goto abort;
    }
    for (unsigned i = 0; i < N_DBS; i++) {
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, db_at(&f->db, i))) != 0) {
            goto abort;
        }
    }
    MDB_val k = {.mv_size = 12, .mv_data = "last_applied"}, v;
    rc = mdb_get(txn, f->db.meta, &k, &v);
    f->last_applied = (rc == 0 && v.mv_size == 8) ? tvmw_get_u64(v.mv_data) : 0;
    k.mv_size = 7;
    k.mv_data = "boot_id";
    if (mdb_get(txn, f->local, &k, &v) == 0 && v.mv_size < sizeof(stored)) {
        memcpy(stored, v.mv_data, v.mv_size);
        stored[v.mv_size] = '\0';
    }
    k.mv_size = 5;
    k.mv_data = "clean";
    int clean = mdb_get(txn, f->local, &k, &v) == 0 && v.mv_size == 1 &&
                ((const char *)v.mv_data)[0] == '1';
    tvmw_boot_id(boot, sizeof(boot));
    *unclean = f->last_applied > 0 && !clean && strcmp(stored, boot) != 0;
    if ((rc = put_local(txn, f->local, "boot_id", boot, strlen(boot))) != 0 ||
        (rc = put_local(txn, f->local, "clean", "0", 1)) != 0) {
        goto abort;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        return err_from_mdb(rc);
    }
    return err_from_mdb(mdb_env_sync(f->env, 1));
abort:
    mdb_txn_abort(txn);
    return err_from_mdb(rc);
}

static void remove_env_files(const char *dir)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
}

int cp_fsm_open(const char *dir, size_t map_size_mb, unsigned dedup_window_s, struct cp_fsm **out)
{
    struct cp_fsm *f = calloc(1, sizeof(*f));
    int unclean = 0, rv;
    if (f == NULL) {
        return -ENOMEM;
    }
    snprintf(f->dir, sizeof(f->dir), "%s", dir);
    f->dedup_window_ms = (uint64_t)dedup_window_s * 1000;
    f->changelog_window = 100000;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rv = -errno;
        goto err_free;
    }
    if ((rv = env_open(f, map_size_mb)) != 0) {
        goto err_free;
    }
    rv = dbs_open(f, &unclean);
    if (rv == 0 && unclean) {
        /* The machine rebooted without our clean mark: NOSYNC writes may be
         * lost or torn. Raft's snapshot and log rebuild the state. */
        TVMW_LOG_WARN("fsm",
                      "unclean shutdown across a reboot: rebuilding state from raft "
                      "last_applied_was=%llu",
                      (unsigned long long)f->last_applied);
        mdb_env_close(f->env);
        remove_env_files(dir);
        if ((rv = env_open(f, map_size_mb)) != 0) {
            goto err_free;
        }
        rv = dbs_open(f, &unclean);
    }
    if (rv != 0) {
        goto err_close_env;
    }
    TVMW_LOG_INFO("fsm", "state opened dir=%s last_applied=%llu", dir,
                  (unsigned long long)f->last_applied);
    *out = f;
    return 0;

err_close_env:
    mdb_env_close(f->env);
err_free:
    free(f);
    return rv;
}

void cp_fsm_close(struct cp_fsm *f)
{
    if (f == NULL) {
        return;
    }
    MDB_txn *txn;
    cp_fsm_flush(f);
    if (mdb_txn_begin(f->env, NULL, 0, &txn) == 0) {
        if (put_local(txn, f->local, "clean", "1", 1) == 0) {
            mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
    }
    mdb_env_sync(f->env, 1);
    mdb_env_close(f->env);
    free(f);
}

int cp_fsm_flush(struct cp_fsm *f)
{
    if (f->batch == NULL) {
        return 0;
    }
    int rc = mdb_txn_commit(f->batch);
    f->batch = NULL;
    f->batch_entries = 0;
    return err_from_mdb(rc);
}

void cp_fsm_set_changelog_window(struct cp_fsm *f, uint64_t entries)
{
    f->changelog_window = entries;
}

bool cp_fsm_applying(MDB_txn *txn, uint64_t *index, uint32_t *seq)
{
    struct cp_fsm *f = mdb_env_get_userctx(mdb_txn_env(txn));
    if (f == NULL || f->applying_index == 0) {
        return false;
    }
    *index = f->applying_index;
    *seq = f->applying_seq++;
    return true;
}

uint64_t cp_fsm_last_applied(const struct cp_fsm *f)
{
    return f->last_applied;
}

void cp_fsm_usage(const struct cp_fsm *f, uint64_t *used, uint64_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    *used = *size = 0;
    if (mdb_env_info(f->env, &info) == 0 && mdb_env_stat(f->env, &st) == 0) {
        *used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
        *size = info.me_mapsize;
    }
}

const struct cp_dbs *cp_fsm_dbs(const struct cp_fsm *f)
{
    return &f->db;
}

int cp_fsm_read_begin(struct cp_fsm *f, MDB_txn **txn)
{
    return err_from_mdb(mdb_txn_begin(f->env, NULL, MDB_RDONLY, txn));
}

/* ---- apply ------------------------------------------------------------ */

static int store_last_applied(MDB_txn *txn, const struct cp_dbs *db, uint64_t index)
{
    uint8_t b[8];
    tvmw_put_u64(b, index);
    MDB_val k = {.mv_size = 12, .mv_data = "last_applied"}, v = {.mv_size = 8, .mv_data = b};
    return err_from_mdb(mdb_put(txn, db->meta, &k, &v, 0));
}

/* Session value: u64 index, u64 time_ms, u32 status, body. */
static int session_get(MDB_txn *txn, const struct cp_dbs *db, const uint8_t *reqid,
                       struct cp_result **res)
{
    MDB_val k = {.mv_size = CP_REQID_SIZE, .mv_data = (void *)reqid}, v;
    int rc = mdb_get(txn, db->sessions, &k, &v);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    if (v.mv_size < 20) {
        return TVMW_ECORRUPT;
    }
    const uint8_t *p = v.mv_data;
    *res = cp_result_new(tvmw_get_u32(p + 16), (const char *)p + 20, v.mv_size - 20);
    return *res ? 0 : -ENOMEM;
}

static int session_put(struct cp_fsm *f, MDB_txn *txn, const struct cp_cmd *cmd, uint64_t index,
                       const struct cp_result *res)
{
    uint8_t lk[8], lv[8 + CP_REQID_SIZE];
    MDB_val k = {.mv_size = CP_REQID_SIZE, .mv_data = (void *)cmd->reqid}, v;
    v.mv_size = 20 + res->len;
    int rc = mdb_put(txn, f->db.sessions, &k, &v, MDB_RESERVE);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    uint8_t *p = v.mv_data;
    tvmw_put_u64(p, index);
    tvmw_put_u64(p + 8, cmd->time_ms);
    tvmw_put_u32(p + 16, res->status);
    memcpy(p + 20, res->body, res->len);

    tvmw_put_be64(lk, index);
    tvmw_put_u64(lv, cmd->time_ms);
    memcpy(lv + 8, cmd->reqid, CP_REQID_SIZE);
    k.mv_size = 8;
    k.mv_data = lk;
    v.mv_size = sizeof(lv);
    v.mv_data = lv;
    if ((rc = mdb_put(txn, f->db.sesslog, &k, &v, MDB_APPEND)) != 0) {
        return err_from_mdb(rc);
    }

    /* Forget sessions older than the window, a few per command, by the
     * command's time: every node prunes exactly the same ones. */
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, f->db.sesslog, &cur)) != 0) {
        return err_from_mdb(rc);
    }
    uint64_t cutoff = cmd->time_ms > f->dedup_window_ms ? cmd->time_ms - f->dedup_window_ms : 0;
    for (int i = 0; i < SESSION_PRUNE_BATCH; i++) {
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) != 0) {
            break;
        }
        if (v.mv_size != sizeof(lv) || tvmw_get_u64(v.mv_data) >= cutoff) {
            break;
        }
        MDB_val sk = {.mv_size = CP_REQID_SIZE, .mv_data = (uint8_t *)v.mv_data + 8};
        rc = mdb_del(txn, f->db.sessions, &sk, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            break;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0) {
            break;
        }
    }
    mdb_cursor_close(cur);
    return (rc == 0 || rc == MDB_NOTFOUND) ? 0 : err_from_mdb(rc);
}

static int members_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    json_int_t id = json_integer_value(json_object_get(payload, "id"));
    if (id <= 0) {
        *res = cp_result_error(400, "bad_request", "member id must be a positive integer");
        return 0;
    }
    if (a->cmd->type == CP_CMD_MEMBER_DELETE) {
        int rv = cp_record_del(a->txn, a->db->members, (uint64_t)id);
        if (rv != 0 && rv != TVMW_ENOTFOUND) {
            return rv;
        }
        *res = cp_result_json(200, json_pack("{s:I}", "removed", id));
        return 0;
    }
    const char *raft = json_string_value(json_object_get(payload, "raft_address"));
    const char *http = json_string_value(json_object_get(payload, "http_address"));
    if (raft == NULL || http == NULL) {
        *res = cp_result_error(400, "bad_request", "raft_address and http_address are required");
        return 0;
    }
    json_t *rec =
        json_pack("{s:I, s:s, s:s}", "id", id, "raft_address", raft, "http_address", http);
    int rv = cp_record_put(a->txn, a->db->members, (uint64_t)id, rec);
    if (rv == 0) {
        *res = cp_result_json(200, json_pack("{s:O}", "member", rec));
    }
    json_decref(rec);
    return rv;
}

static int dispatch(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    switch (a->cmd->type) {
    case CP_CMD_CLIENT_CREATE:
    case CP_CMD_CLIENT_UPDATE:
    case CP_CMD_CLIENT_DELETE:
        return cp_clients_apply(a, payload, res);
    case CP_CMD_MEMBER_PUT:
    case CP_CMD_MEMBER_DELETE:
        return members_apply(a, payload, res);
    case CP_CMD_BILLING:
        return cp_billing_apply(a, payload, res);
    case CP_CMD_CATALOG:
        return cp_catalog_apply(a, payload, res);
    case CP_CMD_EPG:
        return cp_epg_apply(a, payload, res);
    case CP_CMD_BILLING_BATCH:
        return cp_billing_batch_apply(a, payload, res);
    case CP_CMD_BILLING_RUN:
        return cp_billing_run_apply(a, payload, res);
    case CP_CMD_KEY:
        return cp_keys_apply(a, payload, res);
    case CP_CMD_DEVICE:
        return cp_device_writes_apply(a, payload, res);
    default:
        *res = cp_result_error(400, "bad_request", "unknown command type %u", a->cmd->type);
        return 0;
    }
}

int cp_fsm_apply(struct cp_fsm *f, uint64_t index, const void *buf, size_t len,
                 uint8_t reqid[CP_REQID_SIZE], struct cp_result **res)
{
    struct cp_cmd cmd;
    MDB_txn *txn;
    int rv;

    *res = NULL;
    if (index <= f->last_applied) {
        return 0; /* re-delivered after a restart: already in the state */
    }
    /* Entries accumulate in one write transaction (committed by
     * cp_fsm_flush), each in a nested one so that a failure drops only its
     * own changes: one LMDB commit per batch instead of per entry. */
    if (f->batch_entries >= CP_FSM_MAX_BATCH && (rv = cp_fsm_flush(f)) != 0) {
        return rv;
    }
    int rc = f->batch ? 0 : mdb_txn_begin(f->env, NULL, 0, &f->batch);
    if (rc == 0) {
        rc = mdb_txn_begin(f->env, f->batch, 0, &txn);
    }
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    if (cp_cmd_decode(buf, len, &cmd) != 0) {
        /* Deterministic on every node: skip the entry, keep the index. */
        TVMW_LOG_ERROR("fsm", "malformed command skipped index=%llu len=%zu",
                       (unsigned long long)index, len);
        goto commit;
    }
    if (cmd.type == CP_CMD_NOOP) {
        goto commit;
    }
    memcpy(reqid, cmd.reqid, CP_REQID_SIZE);
    rv = session_get(txn, &f->db, cmd.reqid, res);
    if (rv == 0) {
        goto commit; /* a retry of a command already applied: same answer */
    }
    if (rv != TVMW_ENOTFOUND) {
        goto err_abort;
    }
    json_error_t jerr;
    json_t *payload = json_loadb(cmd.payload, cmd.payload_len, JSON_REJECT_DUPLICATES, &jerr);
    if (payload == NULL || !json_is_object(payload)) {
        json_decref(payload);
        *res = cp_result_error(400, "malformed_json", "command payload is not a JSON object");
    } else {
        struct cp_apply a = {.txn = txn, .db = &f->db, .cmd = &cmd, .index = index};
        f->applying_index = index;
        f->applying_seq = 0;
        rv = dispatch(&a, payload, res);
        f->applying_index = 0;
        if (rv == 0) {
            rv = cp_changelog_prune(&a, f->changelog_window);
        }
        json_decref(payload);
        if (rv != 0) {
            goto err_abort;
        }
    }
    if (*res == NULL) {
        rv = -ENOMEM;
        goto err_abort;
    }
    if ((rv = session_put(f, txn, &cmd, index, *res)) != 0) {
        goto err_abort;
    }
commit:
    if ((rv = store_last_applied(txn, &f->db, index)) != 0) {
        goto err_abort;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        cp_result_free(*res);
        *res = NULL;
        return err_from_mdb(rc);
    }
    f->last_applied = index;
    f->batch_entries++;
    return 0;

err_abort:
    mdb_txn_abort(txn);
    cp_result_free(*res);
    *res = NULL;
    return rv == TVMW_ENOTFOUND || rv == TVMW_ECORRUPT ? TVMW_ESTORE : rv;
}

/* ---- snapshot ----------------------------------------------------------
 *
 *   header (32 bytes): "TVMWSNP1", u32 version, u32 number of dbs,
 *                      u64 last_applied, u64 body length
 *   body: records { u8 db, u32 key len, u32 value len, key, value } in db
 *         order and key order, then one byte 0xFF
 *   SHA-256 of header and body (32 bytes), zero padding to a multiple of 8
 */

struct cp_fsm_snap {
    struct cp_fsm *f;
    MDB_txn *txn;
    uint64_t index;
};

int cp_fsm_snapshot_begin(struct cp_fsm *f, struct cp_fsm_snap **out)
{
    int rv = cp_fsm_flush(f);
    if (rv != 0) {
        return rv;
    }
    struct cp_fsm_snap *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    int rc = mdb_txn_begin(f->env, NULL, MDB_RDONLY, &s->txn);
    if (rc != 0) {
        free(s);
        return err_from_mdb(rc);
    }
    s->f = f;
    s->index = f->last_applied;
    *out = s;
    return 0;
}

int cp_fsm_snapshot_write(struct cp_fsm_snap *s, void **out, size_t *out_len)
{
    struct tvmw_buf b;
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t hdr[SNAP_HEADER_SIZE] = {0}, rec[9];
    int rc, rv;

    tvmw_buf_init(&b, 0);
    memcpy(hdr, CP_SNAPSHOT_MAGIC, 8);
    tvmw_put_u32(hdr + 8, CP_SNAPSHOT_VERSION);
    tvmw_put_u32(hdr + 12, N_DBS);
    tvmw_put_u64(hdr + 16, s->index);
    if ((rv = tvmw_buf_append(&b, hdr, sizeof(hdr))) != 0) {
        goto out;
    }
    for (unsigned i = 0; i < N_DBS; i++) {
        if ((rc = mdb_cursor_open(s->txn, *db_at(&s->f->db, i), &cur)) != 0) {
            rv = err_from_mdb(rc);
            goto out;
        }
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            rec[0] = (uint8_t)i;
            tvmw_put_u32(rec + 1, (uint32_t)k.mv_size);
            tvmw_put_u32(rec + 5, (uint32_t)v.mv_size);
            if ((rv = tvmw_buf_append(&b, rec, 9)) != 0 ||
                (rv = tvmw_buf_append(&b, k.mv_data, k.mv_size)) != 0 ||
                (rv = tvmw_buf_append(&b, v.mv_data, v.mv_size)) != 0) {
                mdb_cursor_close(cur);
                goto out;
            }
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND) {
            rv = err_from_mdb(rc);
            goto out;
        }
    }
    rec[0] = SNAP_END_MARK;
    if ((rv = tvmw_buf_append(&b, rec, 1)) != 0) {
        goto out;
    }
    tvmw_put_u64((uint8_t *)b.data + 24, b.len - SNAP_HEADER_SIZE);
    uint8_t md[SHA256_DIGEST_LENGTH], zero[8] = {0};
    SHA256((const unsigned char *)b.data, b.len, md);
    if ((rv = tvmw_buf_append(&b, md, sizeof(md))) != 0 ||
        (rv = tvmw_buf_append(&b, zero, (8 - b.len % 8) % 8)) != 0) {
        goto out;
    }
    *out_len = b.len;
    *out = tvmw_buf_detach(&b, NULL);
    TVMW_LOG_INFO("fsm", "snapshot taken last_applied=%llu bytes=%zu", (unsigned long long)s->index,
                  *out_len);
out:
    tvmw_buf_close(&b);
    return rv;
}

void cp_fsm_snapshot_end(struct cp_fsm_snap *s)
{
    if (s != NULL) {
        mdb_txn_abort(s->txn);
        free(s);
    }
}

int cp_fsm_snapshot(struct cp_fsm *f, void **out, size_t *out_len)
{
    struct cp_fsm_snap *s;
    int rv = cp_fsm_snapshot_begin(f, &s);
    if (rv == 0) {
        rv = cp_fsm_snapshot_write(s, out, out_len);
        cp_fsm_snapshot_end(s);
    }
    return rv;
}

/* Checks everything but the record structure; fills body bounds. */
static int snapshot_verify(const uint8_t *p, size_t len, uint64_t *index, const uint8_t **body,
                           size_t *body_len)
{
    if (len < SNAP_HEADER_SIZE + 1 + SHA256_DIGEST_LENGTH || memcmp(p, CP_SNAPSHOT_MAGIC, 8)) {
        return TVMW_ECORRUPT;
    }
    if (tvmw_get_u32(p + 8) != CP_SNAPSHOT_VERSION || tvmw_get_u32(p + 12) > 255) {
        return TVMW_ECORRUPT;
    }
    uint64_t blen = tvmw_get_u64(p + 24);
    if (blen > len - SNAP_HEADER_SIZE - SHA256_DIGEST_LENGTH) {
        return TVMW_ECORRUPT;
    }
    size_t signed_len = SNAP_HEADER_SIZE + (size_t)blen;
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(p, signed_len, md);
    if (memcmp(md, p + signed_len, sizeof(md)) != 0) {
        return TVMW_ECORRUPT;
    }
    for (size_t i = signed_len + sizeof(md); i < len; i++) {
        if (p[i] != 0) {
            return TVMW_ECORRUPT;
        }
    }
    *index = tvmw_get_u64(p + 16);
    *body = p + SNAP_HEADER_SIZE;
    *body_len = (size_t)blen;
    return 0;
}

int cp_fsm_restore(struct cp_fsm *f, const void *buf, size_t len)
{
    uint64_t index;
    const uint8_t *body;
    size_t body_len;
    MDB_txn *txn;
    int rc, rv = cp_fsm_flush(f);
    if (rv != 0) {
        return rv;
    }
    rv = snapshot_verify(buf, len, &index, &body, &body_len);
    if (rv != 0) {
        TVMW_LOG_ERROR("fsm", "snapshot refused: bad header or checksum bytes=%zu", len);
        return TVMW_ECORRUPT;
    }
    if (index <= f->last_applied) {
        TVMW_LOG_INFO("fsm", "snapshot index=%llu not newer than state=%llu: kept state",
                      (unsigned long long)index, (unsigned long long)f->last_applied);
        return 0;
    }
    if ((rc = mdb_txn_begin(f->env, NULL, 0, &txn)) != 0) {
        return err_from_mdb(rc);
    }
    for (unsigned i = 0; i < N_DBS; i++) {
        if ((rc = mdb_drop(txn, *db_at(&f->db, i), 0)) != 0) {
            rv = err_from_mdb(rc);
            goto err_abort;
        }
    }
    struct tvmw_cursor c = {.p = body, .left = body_len};
    size_t records = 0;
    for (;;) {
        const uint8_t *tag, *kp, *vp;
        uint32_t kl, vl;
        if (tvmw_cursor_get_bytes(&c, 1, &tag) != 0) {
            rv = TVMW_ECORRUPT;
            goto err_abort;
        }
        if (*tag == SNAP_END_MARK) {
            break;
        }
        if (*tag >= N_DBS || tvmw_cursor_get_u32(&c, &kl) != 0 ||
            tvmw_cursor_get_u32(&c, &vl) != 0 || kl == 0 || kl > 511 || vl > MAX_RECORD_BYTES * 4 ||
            tvmw_cursor_get_bytes(&c, kl, &kp) != 0 || tvmw_cursor_get_bytes(&c, vl, &vp) != 0) {
            rv = TVMW_ECORRUPT;
            goto err_abort;
        }
        MDB_val k = {.mv_size = kl, .mv_data = (void *)kp},
                v = {.mv_size = vl, .mv_data = (void *)vp};
        if ((rc = mdb_put(txn, *db_at(&f->db, *tag), &k, &v, MDB_APPEND)) != 0) {
            /* MDB_KEYEXIST here means keys out of order: not our writer. */
            rv = rc == MDB_KEYEXIST ? TVMW_ECORRUPT : err_from_mdb(rc);
            goto err_abort;
        }
        records++;
    }
    if (c.left != 0) {
        rv = TVMW_ECORRUPT;
        goto err_abort;
    }
    if ((rv = store_last_applied(txn, &f->db, index)) != 0) {
        goto err_abort;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        return err_from_mdb(rc);
    }
    f->last_applied = index;
    TVMW_LOG_INFO("fsm", "snapshot restored index=%llu records=%zu bytes=%zu",
                  (unsigned long long)index, records, len);
    return 0;

err_abort:
    mdb_txn_abort(txn);
    if (rv == TVMW_ECORRUPT) {
        TVMW_LOG_ERROR("fsm", "snapshot refused: bad record structure index=%llu",
                       (unsigned long long)index);
    }
    return rv;
}
