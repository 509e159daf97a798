/*
 * Token signing keys: apply of CP_CMD_KEY, the list the admin API shows,
 * and the keeper that proposes a first key. See keys.h.
 */
#include "controlplane/keys.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <raft.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"

#define KEY_COUNTER      "next:key"
#define KEEPER_PERIOD_MS 200

/* ---- records -------------------------------------------------------------- */

/* A secret as the proposer sent it: base64 of exactly CP_KEY_SECRET_BYTES. */
static bool secret_ok(const char *s)
{
    unsigned char raw[CP_KEY_SECRET_B64];
    if (s == NULL || strlen(s) != CP_KEY_SECRET_B64 || s[CP_KEY_SECRET_B64 - 1] != '=' ||
        s[CP_KEY_SECRET_B64 - 2] == '=') {
        return false;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes: 44 chars -> 33. */
    return EVP_DecodeBlock(raw, (const unsigned char *)s, CP_KEY_SECRET_B64) ==
           CP_KEY_SECRET_BYTES + 1;
}

static json_t *public_view(const json_t *key)
{
    json_t *o = json_deep_copy(key);
    if (o != NULL) {
        json_object_del(o, "secret");
    }
    return o;
}

/* Counts keys; *active the active ones. */
static int count_keys(MDB_txn *txn, MDB_dbi dbi, size_t *all, size_t *active)
{
    MDB_cursor *cur;
    MDB_val k, v;
    *all = 0;
    *active = 0;
    if (mdb_cursor_open(txn, dbi, &cur) != 0) {
        return TVMW_ESTORE;
    }
    int rc, rv = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if (o == NULL) {
            rv = TVMW_ECORRUPT;
            break;
        }
        const char *state = json_string_value(json_object_get(o, "state"));
        (*all)++;
        *active += state != NULL && strcmp(state, "active") == 0;
        json_decref(o);
    }
    mdb_cursor_close(cur);
    if (rv == 0 && rc != MDB_NOTFOUND) {
        rv = TVMW_ESTORE;
    }
    return rv;
}

static int key_add(struct cp_apply *a, const char *secret, struct cp_result **res)
{
    uint64_t kid;
    int rv = cp_counter_next(a, KEY_COUNTER, &kid);
    if (rv != 0) {
        return rv;
    }
    json_t *key =
        json_pack("{s:I, s:s, s:s, s:I, s:i}", "kid", (json_int_t)kid, "secret", secret, "state",
                  "active", "created_ms", (json_int_t)a->cmd->time_ms, "retired_ms", 0);
    if (key == NULL) {
        return -ENOMEM;
    }
    rv = cp_record_put(a->txn, a->db->keys, kid, key);
    if (rv == 0) {
        *res = cp_result_json(200, json_pack("{s:o}", "key", public_view(key)));
        TVMW_LOG_INFO("keys", "key added kid=%llu", (unsigned long long)kid);
    }
    json_decref(key);
    return rv;
}

static int key_retire(struct cp_apply *a, json_int_t kid, struct cp_result **res)
{
    json_t *key;
    size_t all, active;
    if (kid <= 0) {
        *res = cp_result_error(400, "bad_request", "\"kid\" must be a positive integer");
        return 0;
    }
    int rv = cp_record_get(a->txn, a->db->keys, (uint64_t)kid, &key);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "no key %lld", (long long)kid);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    const char *state = json_string_value(json_object_get(key, "state"));
    if (state != NULL && strcmp(state, "retired") == 0) {
        *res = cp_result_json(200, json_pack("{s:o}", "key", public_view(key)));
        json_decref(key);
        return 0; /* a retry of a retire that applied */
    }
    if ((rv = count_keys(a->txn, a->db->keys, &all, &active)) != 0) {
        json_decref(key);
        return rv;
    }
    if (active <= 1) {
        *res = cp_result_error(409, "last_active_key",
                               "key %lld is the last active key: rotate first", (long long)kid);
        json_decref(key);
        return 0;
    }
    json_object_set_new(key, "state", json_string("retired"));
    json_object_set_new(key, "retired_ms", json_integer((json_int_t)a->cmd->time_ms));
    rv = cp_record_put(a->txn, a->db->keys, (uint64_t)kid, key);
    if (rv == 0) {
        *res = cp_result_json(200, json_pack("{s:o}", "key", public_view(key)));
        TVMW_LOG_INFO("keys", "key retired kid=%lld", (long long)kid);
    }
    json_decref(key);
    return rv;
}

int cp_keys_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    const char *op = json_string_value(json_object_get(payload, "op"));
    if (op == NULL) {
        *res = cp_result_error(400, "bad_request", "key command without \"op\"");
        return 0;
    }
    if (strcmp(op, "retire") == 0) {
        json_t *kid = json_object_get(payload, "kid");
        return key_retire(a, json_is_integer(kid) ? json_integer_value(kid) : 0, res);
    }
    if (strcmp(op, "add") != 0 && strcmp(op, "init") != 0) {
        *res = cp_result_error(400, "bad_request", "unknown key op \"%.32s\"", op);
        return 0;
    }
    const char *secret = json_string_value(json_object_get(payload, "secret"));
    if (!secret_ok(secret)) {
        *res = cp_result_error(400, "bad_request", "a key secret is base64 of %d bytes",
                               CP_KEY_SECRET_BYTES);
        return 0;
    }
    if (strcmp(op, "init") == 0) {
        size_t all, active;
        int rv = count_keys(a->txn, a->db->keys, &all, &active);
        if (rv != 0) {
            return rv;
        }
        if (all > 0) {
            *res = cp_result_json(200, json_pack("{s:n}", "key"));
            return 0;
        }
    }
    return key_add(a, secret, res);
}

int cp_keys_list(struct cp_fsm *f, json_t **out)
{
    MDB_txn *txn;
    json_t *all;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_list(txn, cp_fsm_dbs(f)->keys, &all);
    mdb_txn_abort(txn);
    if (rv != 0) {
        return rv;
    }
    size_t i;
    json_t *key;
    json_array_foreach(all, i, key)
    {
        json_object_del(key, "secret");
    }
    *out = all;
    return 0;
}

int cp_keys_new_secret(char out[CP_KEY_SECRET_B64 + 1])
{
    unsigned char raw[CP_KEY_SECRET_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return TVMW_EIO;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* ---- keeper ------------------------------------------------------------------ */

struct cp_keys_keeper {
    const struct tvmw_config *conf;
    struct cp_node *node;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;
    bool stop;
    uint64_t checked_term; /* keeper thread only: a term whose leader saw a key */
};

static bool keys_exist(struct cp_node *node, int *rv)
{
    struct cp_fsm *f = cp_node_fsm(node);
    MDB_txn *txn;
    size_t all = 0, active;
    *rv = cp_fsm_read_begin(f, &txn);
    if (*rv == 0) {
        *rv = count_keys(txn, cp_fsm_dbs(f)->keys, &all, &active);
        mdb_txn_abort(txn);
    }
    return all > 0;
}

static int propose_first_key(struct cp_keys_keeper *k)
{
    char secret[CP_KEY_SECRET_B64 + 1];
    int rv = cp_keys_new_secret(secret);
    if (rv != 0) {
        return rv;
    }
    json_t *p = json_pack("{s:s, s:s}", "op", "init", "secret", secret);
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (text == NULL) {
        return -ENOMEM;
    }
    struct cp_cmd cmd = {.type = CP_CMD_KEY,
                         .time_ms = tvmw_wall_ms(),
                         .payload = text,
                         .payload_len = strlen(text)};
    size_t len = cp_cmd_encoded_size(cmd.payload_len);
    void *buf = NULL;
    if ((rv = cp_reqid_make(NULL, cmd.reqid)) == 0) {
        buf = raft_malloc(len);
        rv = buf ? cp_cmd_encode(&cmd, buf, len) : -ENOMEM;
    }
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (rv != 0) {
        raft_free(buf);
        return rv;
    }
    struct cp_result *res = NULL;
    rv = cp_node_write(k->node, buf, len, cmd.reqid, k->conf->http.request_timeout_ms, &res, NULL);
    if (rv == 0 && res->status != 200) {
        TVMW_LOG_ERROR("keys", "first key refused status=%u", res->status);
        rv = TVMW_EMALFORMED;
    }
    cp_result_free(res);
    return rv;
}

static void keeper_check(struct cp_keys_keeper *k)
{
    struct cp_status st;
    cp_node_status(k->node, &st);
    if (st.state != RAFT_LEADER || !st.ready || st.term == k->checked_term) {
        return;
    }
    int rv;
    if (!keys_exist(k->node, &rv)) {
        if (rv == 0) {
            rv = propose_first_key(k);
        }
        if (rv != 0) {
            TVMW_LOG_WARN("keys", "could not add a first signing key: %s (retrying)",
                          tvmw_strerror(rv));
            return;
        }
    }
    k->checked_term = st.term;
}

static void *keeper_run(void *arg)
{
    struct cp_keys_keeper *k = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)KEEPER_PERIOD_MS * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&k->mu);
        while (!k->stop) {
            if (pthread_cond_timedwait(&k->cv, &k->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        bool stop = k->stop;
        pthread_mutex_unlock(&k->mu);
        if (stop) {
            return NULL;
        }
        keeper_check(k);
    }
}

int cp_keys_keeper_start(const struct tvmw_config *conf, struct cp_node *node,
                         struct cp_keys_keeper **out)
{
    struct cp_keys_keeper *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return -ENOMEM;
    }
    k->conf = conf;
    k->node = node;
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&k->thread, NULL, keeper_run, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return -EAGAIN;
    }
    *out = k;
    return 0;
}

void cp_keys_keeper_stop(struct cp_keys_keeper *k)
{
    if (k == NULL) {
        return;
    }
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
