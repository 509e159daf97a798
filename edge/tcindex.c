/*
 * The token check's derived index; see tcindex.h. This is the write side
 * (JSON in, fixed layout out), on the follower's thread inside the store's
 * transaction, and the allocation-free decoders the checker uses.
 */
#include "edge/tcindex.h"

#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "edge/feed.h"

#define VERSION     1
#define ACC_LEN     40
#define CHAN_HEAD   16
#define CLIENT_LEN  24
#define KEY_HEAD    8
#define KID_KEY_LEN 8

#define ACC_ACTIVE    0x01
#define ACC_MULTI     0x02
#define CHAN_ENABLED  0x01
#define CLIENT_LIMIT  0x01
#define KEY_IS_ACTIVE 0x01

const char *const edge_tcx_names[EDGE_TCX_N] = {
    [EDGE_TCX_ACC] = "x_acc",
    [EDGE_TCX_CHAN] = "x_chan",
    [EDGE_TCX_CLIENT] = "x_client",
    [EDGE_TCX_KEYS] = "x_keys",
};

bool edge_tcx_wants(unsigned db)
{
    return db == EDGE_DB_ACCOUNTS || db == EDGE_DB_CHANNELS || db == EDGE_DB_CLIENTS ||
           db == EDGE_DB_KEYS;
}

/* ---- JSON fields ---------------------------------------------------------------------- */

/* An integer (or boolean) member; dflt when absent or of another type. */
static int64_t int_of(const json_t *o, const char *name, int64_t dflt)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v)) {
        return (int64_t)json_integer_value(v);
    }
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    return dflt;
}

static uint64_t uint_of(const json_t *o, const char *name)
{
    int64_t v = int_of(o, name, 0);
    return v > 0 ? (uint64_t)v : 0;
}

static uint32_t u32_clamp(int64_t v)
{
    return v <= 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* "YYYY-MM-DD" -> Unix seconds at 00:00 UTC; 0 when empty or not a date. */
static uint64_t date_s(const char *s)
{
    struct tm tm;
    if (s == NULL || strlen(s) != 10) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%d", &tm);
    if (end == NULL || *end != '\0') {
        return 0;
    }
    time_t t = timegm(&tm);
    return t > 0 ? (uint64_t)t : 0;
}

/* ---- encoders ------------------------------------------------------------------------- */

static size_t enc_account(const json_t *o, uint8_t out[ACC_LEN])
{
    memset(out, 0, ACC_LEN);
    out[0] = VERSION;
    out[1] = (uint8_t)((int_of(o, "active", 1) != 0 ? ACC_ACTIVE : 0) |
                       (int_of(o, "allow_multiple_login", 0) != 0 ? ACC_MULTI : 0));
    tvmw_put_u64(out + 8, uint_of(o, "client_id"));
    tvmw_put_u64(out + 16, uint_of(o, "customer_id"));
    tvmw_put_u64(out + 24, uint_of(o, "logout_before_ms"));
    tvmw_put_u64(out + 32, date_s(json_string_value(json_object_get(o, "deactivation_date"))));
    return ACC_LEN;
}

static size_t enc_channel(const json_t *o, uint8_t out[CHAN_HEAD + EDGE_TCX_STREAM_MAX])
{
    const char *name = json_string_value(json_object_get(o, "stream_name"));
    size_t n = name ? strlen(name) : 0;
    if (n > EDGE_TCX_STREAM_MAX) {
        n = 0; /* over the catalogue's limit: matches no request */
    }
    memset(out, 0, CHAN_HEAD);
    out[0] = VERSION;
    out[1] = int_of(o, "enabled", 1) != 0 ? CHAN_ENABLED : 0;
    tvmw_put_u16(out + 2, (uint16_t)n);
    tvmw_put_u64(out + 8, uint_of(o, "client_id"));
    if (n > 0) {
        memcpy(out + CHAN_HEAD, name, n);
    }
    return CHAN_HEAD + n;
}

static size_t enc_client(const json_t *o, uint8_t out[CLIENT_LEN])
{
    const json_t *st = json_object_get(o, "settings");
    int64_t ttl = int_of(st, "stream_token_ttl_s", EDGE_TOKEN_TTL_S_DEF);
    memset(out, 0, CLIENT_LEN);
    out[0] = VERSION;
    out[1] = int_of(st, "stream_session_limit", 0) != 0 ? CLIENT_LIMIT : 0;
    tvmw_put_u32(out + 8, ttl > 0 ? u32_clamp(ttl) : EDGE_TOKEN_TTL_S_DEF);
    tvmw_put_u32(out + 12, u32_clamp(int_of(st, "stream_max_sessions", EDGE_MAX_SESSIONS_DEF)));
    tvmw_put_u32(out + 16, u32_clamp(int_of(st, "stream_auth_duration_s", 0)));
    return CLIENT_LEN;
}

/* 0 and the encoded length, or -1 for a key record that is not usable. */
static int enc_key(const json_t *o, uint8_t out[KEY_HEAD + EDGE_TCX_SECRET_MAX], size_t *len)
{
    const json_t *secret = json_object_get(o, "secret");
    const char *state = json_string_value(json_object_get(o, "state"));
    uint8_t raw[EDGE_TCX_SECRET_MAX + 3];
    size_t n = 0;
    if (!json_is_string(secret) || state == NULL ||
        json_string_length(secret) > (EDGE_TCX_SECRET_MAX + 2) / 3 * 4 ||
        edge_base64_decode(json_string_value(secret), json_string_length(secret), raw, &n) != 0 ||
        n < 16 || n > EDGE_TCX_SECRET_MAX) {
        return -1;
    }
    memset(out, 0, KEY_HEAD);
    out[0] = VERSION;
    out[1] = strcmp(state, "active") == 0 ? KEY_IS_ACTIVE : 0;
    tvmw_put_u16(out + 2, (uint16_t)n);
    memcpy(out + KEY_HEAD, raw, n);
    *len = KEY_HEAD + n;
    return 0;
}

/* ---- update --------------------------------------------------------------------------- */

static int put(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t key_len, const uint8_t *v,
               size_t len, bool append)
{
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    MDB_val d = {.mv_size = len, .mv_data = (void *)v};
    int rc = mdb_put(txn, dbi, &k, &d, append ? MDB_APPEND : 0);
    if (rc == MDB_KEYEXIST && append) {
        rc = mdb_put(txn, dbi, &k, &d, 0);
    }
    return rc == 0 ? 0 : TVMW_ESTORE;
}

static int del(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t key_len)
{
    MDB_val k = {.mv_size = key_len, .mv_data = (void *)key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

int edge_tcx_update(MDB_txn *txn, const MDB_dbi dbi[EDGE_TCX_N], unsigned db, const uint8_t *key,
                    size_t key_len, const uint8_t *value, size_t value_len, bool append)
{
    enum edge_tcx x;
    switch (db) {
    case EDGE_DB_ACCOUNTS:
        x = EDGE_TCX_ACC;
        break;
    case EDGE_DB_CHANNELS:
        x = EDGE_TCX_CHAN;
        break;
    case EDGE_DB_CLIENTS:
        x = EDGE_TCX_CLIENT;
        break;
    case EDGE_DB_KEYS:
        x = EDGE_TCX_KEYS;
        break;
    default:
        return 0;
    }
    if (key_len != 8) {
        return 0; /* not an id key: nothing the check looks up */
    }
    if (value == NULL) {
        return del(txn, dbi[x], key, key_len);
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        TVMW_LOG_WARN("tcindex", "db=%u id=%llu: record is not a JSON object; index entry dropped",
                      db, (unsigned long long)tvmw_get_be64(key));
        return del(txn, dbi[x], key, key_len);
    }
    uint8_t buf[CHAN_HEAD + EDGE_TCX_STREAM_MAX + KEY_HEAD + EDGE_TCX_SECRET_MAX];
    size_t n = 0;
    int rv = 0;
    switch (x) {
    case EDGE_TCX_ACC:
        n = enc_account(o, buf);
        break;
    case EDGE_TCX_CHAN:
        n = enc_channel(o, buf);
        break;
    case EDGE_TCX_CLIENT:
        n = enc_client(o, buf);
        break;
    case EDGE_TCX_KEYS:
        if (enc_key(o, buf, &n) != 0) {
            TVMW_LOG_WARN("tcindex", "key %llu: unusable key record; it validates nothing",
                          (unsigned long long)tvmw_get_be64(key));
            rv = -1;
        }
        break;
    }
    json_decref(o);
    if (rv != 0) {
        return del(txn, dbi[x], key, key_len);
    }
    return put(txn, dbi[x], key, key_len, buf, n, append);
}

/* ---- decoders ------------------------------------------------------------------------- */

int edge_tcx_account_decode(const uint8_t *v, size_t len, struct edge_tcx_account *out)
{
    if (len != ACC_LEN || v[0] != VERSION) {
        return TVMW_ECORRUPT;
    }
    out->active = (v[1] & ACC_ACTIVE) != 0;
    out->multi_login = (v[1] & ACC_MULTI) != 0;
    out->client = tvmw_get_u64(v + 8);
    out->customer = tvmw_get_u64(v + 16);
    out->logout_before_ms = tvmw_get_u64(v + 24);
    out->deactivate_s = tvmw_get_u64(v + 32);
    return 0;
}

int edge_tcx_channel_decode(const uint8_t *v, size_t len, struct edge_tcx_channel *out)
{
    if (len < CHAN_HEAD || v[0] != VERSION || tvmw_get_u16(v + 2) != len - CHAN_HEAD) {
        return TVMW_ECORRUPT;
    }
    out->enabled = (v[1] & CHAN_ENABLED) != 0;
    out->client = tvmw_get_u64(v + 8);
    out->stream = v + CHAN_HEAD;
    out->stream_len = len - CHAN_HEAD;
    return 0;
}

int edge_tcx_client_decode(const uint8_t *v, size_t len, struct edge_tcx_client *out)
{
    if (len != CLIENT_LEN || v[0] != VERSION) {
        return TVMW_ECORRUPT;
    }
    out->session_limit = (v[1] & CLIENT_LIMIT) != 0;
    out->token_ttl_s = tvmw_get_u32(v + 8);
    out->max_sessions = tvmw_get_u32(v + 12);
    out->auth_duration_s = tvmw_get_u32(v + 16);
    return 0;
}

int edge_tcx_key_decode(const uint8_t *key, size_t key_len, const uint8_t *v, size_t len,
                        struct edge_tcx_key *out)
{
    if (key_len != KID_KEY_LEN || tvmw_get_be64(key) == 0 || tvmw_get_be64(key) > UINT16_MAX ||
        len < KEY_HEAD || v[0] != VERSION || tvmw_get_u16(v + 2) != len - KEY_HEAD ||
        len - KEY_HEAD > EDGE_TCX_SECRET_MAX) {
        return TVMW_ECORRUPT;
    }
    out->kid = (uint16_t)tvmw_get_be64(key);
    out->active = (v[1] & KEY_IS_ACTIVE) != 0;
    out->secret = v + KEY_HEAD;
    out->secret_len = (unsigned)(len - KEY_HEAD);
    return 0;
}
