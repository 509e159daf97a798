/*
 * Apply of CP_CMD_DEVICE: the writes edges report (device_writes.h,
 * docs/edge-protocol.md "Device writes").
 *
 * Every op reuses the Billing API's objects and methods (billing.h) for
 * what the Billing API can already do — creating customers, accounts and
 * devices, modifying account fields, deleting devices — so the rules
 * (validation, indexes, relations) are the same whoever writes. What is
 * new lives here: device sessions (dsess, edge db 14) and per-account
 * channel settings (acc_settings, edge db 15).
 *
 * Time: each write carries "ms", when it happened at the edge. It stamps
 * what the write records (opened_ms, revoked_ms, logout_before_ms, last
 * seen) and is the time of the Billing methods it calls. An edge clock far
 * ahead would otherwise log accounts out into the future, so ms is capped
 * at the command's time plus MAX_AHEAD_MS.
 */
#include "controlplane/device_writes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/changelog.h"

#define MAX_AHEAD_MS     (5 * 60 * 1000)
#define REQID_HEX        32
#define SESS_HEX         16
#define TEXT_MAX         128 /* device_uid, ip, edge, device type */
#define EVICT_MAX        256
#define LAST_SEEN_MAX    1000
#define SETTINGS_IDS_MAX 10000
#define MS_MAX           ((json_int_t)1 << 53)
#define DEDUP_PREFIX     "devreq/" /* meta: + reqid hex -> first result of a creating write */
#define DEFAULT_DEVICE   "browser" /* account_register without a device type */
#define REGISTER_COMMENT "self-registered"

/* One write being applied. */
struct dw {
    struct cp_apply *a;
    struct bl_ctx c; /* c.txn: the write's own nested transaction */
    json_t *w;
    const char *reqid;
    uint64_t ms;
    json_t *r; /* its result */
};

static int dw_fail(struct dw *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dw_fail(struct dw *d, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(d->r, "error", json_integer(code));
    json_object_set_new(d->r, "message", json_string(msg));
    return 0;
}

static bool failed(const struct dw *d)
{
    return json_integer_value(json_object_get(d->r, "error")) != 0;
}

/* ---- fields ------------------------------------------------------------------ */

static bool is_lower_hex(const char *s, size_t n)
{
    if (s == NULL || strlen(s) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* A positive integer field. */
static bool get_id(const json_t *o, const char *k, uint64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* A session id: 16 lowercase hex digits, read as a big-endian u64 (the
 * dsess key holds the same 8 bytes). */
static bool parse_sess(const json_t *v, uint64_t *out)
{
    const char *s = json_string_value(v);
    if (!is_lower_hex(s, SESS_HEX)) {
        return false;
    }
    *out = strtoull(s, NULL, 16);
    return true;
}

/* An optional string field of at most max bytes: "" when absent; NULL
 * when present but not such a string. */
static const char *get_text(const json_t *o, const char *k, size_t max)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v)) {
        return "";
    }
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return NULL;
    }
    return json_string_value(v);
}

/* 0/1 from an integer or a boolean; -1 when bad, dflt when absent. */
static int get_flag(const json_t *o, const char *k, int dflt)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL) {
        return dflt;
    }
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        return (int)json_integer_value(v);
    }
    return -1;
}

/* A time in ms: a non-negative integer, capped (see the file comment). */
static bool get_ms(const struct dw *d, const json_t *o, const char *k, uint64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MS_MAX) {
        return false;
    }
    uint64_t ms = (uint64_t)json_integer_value(v), cap = d->a->cmd->time_ms + MAX_AHEAD_MS;
    *out = ms < cap ? ms : cap;
    return true;
}

static uint64_t rec_u64(const json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k)); /* null or absent: 0 */
    return v > 0 ? (uint64_t)v : 0;
}

/* Parameters for a Billing method are strings (billing.h). */
static void param_int(json_t *params, const char *k, json_int_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    json_object_set_new(params, k, json_string(buf));
}

static const char *reply_message(json_t *rep)
{
    const char *m = json_string_value(json_object_get(rep, "error_message"));
    return m ? m : "";
}

/* "field: message; ..." of a Billing reply's error_fields, for a message. */
static void field_errors(json_t *rep, char *out, size_t len)
{
    const char *k;
    json_t *v;
    size_t n = 0;
    out[0] = '\0';
    json_object_foreach(json_object_get(rep, "error_fields"), k, v)
    {
        const char *m = json_string_value(json_array_get(v, 0));
        int w = snprintf(out + n, len - n, "%s%s: %s", n ? "; " : "", k, m ? m : "invalid");
        if (w < 0 || (size_t)w >= len - n) {
            break;
        }
        n += (size_t)w;
    }
}

/* ---- objects of the write's client --------------------------------------------- */

/* The account named by "account_id"; error 1 (nothing done) when it is
 * not this client's. *acc NULL then. */
static int load_account(struct dw *d, const json_t *o, uint64_t *id, json_t **acc)
{
    *acc = NULL;
    if (!get_id(o, "account_id", id)) {
        return dw_fail(d, DW_EMALFORMED, "\"account_id\" must be a positive integer");
    }
    int rv = bl_obj_get(&d->c, BL_ACCOUNT, *id, acc);
    if (rv == TVMW_ENOTFOUND) {
        return dw_fail(d, DW_ENOTFOUND, "account %" PRIu64 " not found", *id);
    }
    return rv;
}

/* An object of this client whose "account_id" is acc_id; NULL (and error
 * 1) otherwise. */
static int load_owned(struct dw *d, enum bl_kind kind, const char *what, uint64_t id,
                      uint64_t acc_id, json_t **out)
{
    *out = NULL;
    json_t *o;
    int rv = bl_obj_get(&d->c, kind, id, &o);
    if (rv == TVMW_ENOTFOUND || (rv == 0 && rec_u64(o, "account_id") != acc_id)) {
        if (rv == 0) {
            json_decref(o);
        }
        return dw_fail(d, DW_ENOTFOUND, "%s %" PRIu64 " not found", what, id);
    }
    if (rv == 0) {
        *out = o;
    }
    return rv;
}

/* ---- device sessions (edge db 14) ------------------------------------------------ */

static void dsess_key(uint64_t acc, uint64_t sess, uint8_t out[16])
{
    tvmw_put_be64(out, acc);
    tvmw_put_be64(out + 8, sess);
}

static int dsess_get(struct bl_ctx *c, uint64_t acc, uint64_t sess, json_t **out)
{
    uint8_t key[16];
    dsess_key(acc, sess, key);
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
    int rc = mdb_get(c->txn, c->db->dsess, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc != 0) {
        return TVMW_ESTORE;
    }
    *out = json_loadb(v.mv_data, v.mv_size, 0, NULL);
    return *out ? 0 : TVMW_ECORRUPT;
}

static int dsess_put(struct bl_ctx *c, uint64_t acc, uint64_t sess, const json_t *rec)
{
    uint8_t key[16];
    dsess_key(acc, sess, key);
    char *text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL) {
        return -ENOMEM;
    }
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key},
            v = {.mv_size = strlen(text), .mv_data = text};
    int rv = mdb_put(c->txn, c->db->dsess, &k, &v, 0) == 0 ? 0 : TVMW_ESTORE;
    if (rv == 0) {
        rv = cp_changelog_note(c->txn, c->db->dsess, &k, &v);
    }
    free(text);
    return rv;
}

static int dsess_del(struct bl_ctx *c, uint64_t acc, uint64_t sess)
{
    uint8_t key[16];
    dsess_key(acc, sess, key);
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key};
    int rc = mdb_del(c->txn, c->db->dsess, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    return rc == 0 ? cp_changelog_note(c->txn, c->db->dsess, &k, NULL) : TVMW_ESTORE;
}

/* The session ids of an account, in order (collected first, so that the
 * caller may change or delete them). */
static int dsess_list(struct bl_ctx *c, uint64_t acc, uint64_t **ids, size_t *n)
{
    uint8_t prefix[8];
    tvmw_put_be64(prefix, acc);
    MDB_cursor *cur;
    MDB_val k = {.mv_size = sizeof(prefix), .mv_data = prefix}, v;
    size_t cap = 8, cnt = 0;
    uint64_t *out = malloc(cap * sizeof(*out));
    if (out == NULL) {
        return -ENOMEM;
    }
    if (mdb_cursor_open(c->txn, c->db->dsess, &cur) != 0) {
        free(out);
        return TVMW_ESTORE;
    }
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 16 || memcmp(k.mv_data, prefix, 8) != 0) {
            break;
        }
        if (cnt == cap) {
            uint64_t *bigger = realloc(out, 2 * cap * sizeof(*out));
            if (bigger == NULL) {
                mdb_cursor_close(cur);
                free(out);
                return -ENOMEM;
            }
            out = bigger;
            cap *= 2;
        }
        out[cnt++] = tvmw_get_be64((const uint8_t *)k.mv_data + 8);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(out);
        return TVMW_ESTORE;
    }
    *ids = out;
    *n = cnt;
    return 0;
}

static json_t *dsess_new(uint64_t client, uint64_t acc, uint64_t sess)
{
    char hex[SESS_HEX + 1];
    snprintf(hex, sizeof(hex), "%016" PRIx64, sess);
    return json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:i}", "client_id",
                     (json_int_t)client, "account_id", (json_int_t)acc, "sess_id", hex,
                     "device_uid", "", "device", "", "basic", 0, "device_id", 0, "opened_ms", 0,
                     "ip", "", "edge", "", "revoked_ms", 0);
}

/* Marks a session revoked at ms (the earliest revocation wins). Creates
 * it when absent: a close may overtake its open (journals of two edges,
 * or a retried batch), and must still revoke it. */
static int dsess_revoke(struct bl_ctx *c, uint64_t acc, uint64_t sess, uint64_t ms)
{
    json_t *rec;
    int rv = dsess_get(c, acc, sess, &rec);
    if (rv == TVMW_ENOTFOUND) {
        rec = dsess_new(c->client_id, acc, sess);
        rv = rec ? 0 : -ENOMEM;
    } else if (rv == 0) {
        uint64_t was = rec_u64(rec, "revoked_ms");
        if (was != 0 && was <= ms) {
            json_decref(rec);
            return 0; /* already revoked */
        }
    }
    if (rv != 0) {
        return rv;
    }
    json_object_set_new(rec, "revoked_ms", json_integer((json_int_t)ms));
    rv = dsess_put(c, acc, sess, rec);
    json_decref(rec);
    return rv;
}

/* An authkey stays valid while no record revokes it, so revoked records
 * cannot simply be dropped. What bounds them: once an account has more
 * than DSESS_REVOKED_KEEP, its logout_before_ms moves up to the opening of
 * its oldest live session (to now when none is live, or when even that
 * leaves more than DSESS_REVOKED_MAX) — every authkey issued before that
 * is refused by the cut-off — and the revoked records opened before it
 * are deleted. Live sessions keep working; both changes are one entry, so
 * an edge never sees the records gone without the cut-off. */
#define DSESS_REVOKED_KEEP 32
#define DSESS_REVOKED_MAX  256

static int dsess_compact(struct bl_ctx *c, uint64_t acc_id, uint64_t now_ms)
{
    uint64_t *ids, cutoff = UINT64_MAX, *opened = NULL;
    size_t n, revoked = 0;
    bool *is_revoked = NULL;
    int rv = dsess_list(c, acc_id, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    if (n <= DSESS_REVOKED_KEEP) {
        free(ids);
        return 0;
    }
    if ((opened = calloc(n, sizeof(*opened))) == NULL ||
        (is_revoked = calloc(n, sizeof(*is_revoked))) == NULL) {
        rv = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *rec;
        if ((rv = dsess_get(c, acc_id, ids[i], &rec)) != 0) {
            goto out;
        }
        opened[i] = rec_u64(rec, "opened_ms");
        is_revoked[i] = rec_u64(rec, "revoked_ms") != 0;
        json_decref(rec);
        revoked += is_revoked[i];
        if (!is_revoked[i] && opened[i] < cutoff) {
            cutoff = opened[i];
        }
    }
    if (revoked <= DSESS_REVOKED_KEEP) {
        goto out;
    }
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        left += is_revoked[i] && opened[i] >= cutoff;
    }
    if (cutoff == UINT64_MAX || left > DSESS_REVOKED_MAX) {
        cutoff = now_ms;
    }
    json_t *acc;
    if ((rv = bl_obj_get(c, BL_ACCOUNT, acc_id, &acc)) != 0) {
        goto out;
    }
    if (rec_u64(acc, "logout_before_ms") < cutoff) {
        json_object_set_new(acc, "logout_before_ms", json_integer((json_int_t)cutoff));
        rv = bl_obj_put(c, BL_ACCOUNT, acc_id, acc);
    }
    json_decref(acc);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        if (opened[i] < cutoff) {
            rv = dsess_del(c, acc_id, ids[i]); /* dead by the cut-off, live or not */
        }
    }
out:
    free(opened);
    free(is_revoked);
    free(ids);
    return rv;
}

/* Revokes every session of the account opened on device_id. */
static int dsess_revoke_device(struct bl_ctx *c, uint64_t acc, uint64_t device_id, uint64_t ms)
{
    uint64_t *ids;
    size_t n;
    int rv = dsess_list(c, acc, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        json_t *rec;
        rv = dsess_get(c, acc, ids[i], &rec);
        if (rv != 0) {
            break;
        }
        bool match = rec_u64(rec, "device_id") == device_id;
        json_decref(rec);
        if (match) {
            rv = dsess_revoke(c, acc, ids[i], ms);
        }
    }
    free(ids);
    return rv;
}

/* ---- replays of creating writes ------------------------------------------------- */

static void dedup_key(const char *reqid, char out[sizeof(DEDUP_PREFIX) + REQID_HEX])
{
    snprintf(out, sizeof(DEDUP_PREFIX) + REQID_HEX, DEDUP_PREFIX "%s", reqid);
}

/* The stored result of this write's first application, if any. */
static int dedup_get(struct dw *d, json_t **out)
{
    char key[sizeof(DEDUP_PREFIX) + REQID_HEX];
    dedup_key(d->reqid, key);
    MDB_val k = {.mv_size = strlen(key), .mv_data = key}, v;
    int rc = mdb_get(d->c.txn, d->c.db->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc != 0) {
        return TVMW_ESTORE;
    }
    *out = json_loadb(v.mv_data, v.mv_size, 0, NULL);
    return *out ? 0 : TVMW_ECORRUPT;
}

static int dedup_put(struct dw *d)
{
    char key[sizeof(DEDUP_PREFIX) + REQID_HEX];
    dedup_key(d->reqid, key);
    char *text = json_dumps(d->r, JSON_COMPACT);
    if (text == NULL) {
        return -ENOMEM;
    }
    MDB_val k = {.mv_size = strlen(key), .mv_data = key},
            v = {.mv_size = strlen(text), .mv_data = text};
    int rc = mdb_put(d->c.txn, d->c.db->meta, &k, &v, 0);
    free(text);
    return rc == 0 ? 0 : TVMW_ESTORE;
}

/* True (and d->r replaced) when this write already applied once. */
static int replayed(struct dw *d, bool *yes)
{
    json_t *first;
    int rv = dedup_get(d, &first);
    *yes = rv == 0;
    if (rv == 0) {
        json_object_clear(d->r);
        json_object_update(d->r, first);
        json_decref(first);
    }
    return rv == TVMW_ENOTFOUND ? 0 : rv;
}

/* ---- devices ----------------------------------------------------------------------- */

/* Binds device uid to account acc as a basic device (account/device/create)
 * unless it is already bound to it; error 6 if bound to another account.
 * *device_id: the device. */
static int bind_device(struct dw *d, uint64_t acc, const json_t *dev, uint64_t *device_id)
{
    const char *uid = get_text(dev, "device_uid", TEXT_MAX);
    if (uid == NULL || uid[0] == '\0') {
        return dw_fail(d, DW_EMALFORMED, "the device to register needs a \"device_uid\"");
    }
    uint64_t found;
    int rv = bl_uniq_get(&d->c, BL_UNIQ_DEV_UID, uid, &found);
    if (rv == 0) {
        json_t *o;
        if ((rv = bl_obj_get(&d->c, BL_DEVICE, found, &o)) == TVMW_ENOTFOUND) {
            /* An index without its object: refuse this write, keep applying. */
            return dw_fail(d, DW_EDEVICE, "device %s is indexed but missing", uid);
        }
        if (rv != 0) {
            return rv;
        }
        uint64_t owner = rec_u64(o, "account_id");
        json_decref(o);
        if (owner != acc) {
            return dw_fail(d, DW_EDEVICE_TAKEN, "device %s is bound to another account", uid);
        }
        *device_id = found;
        return 0;
    }
    if (rv != TVMW_ENOTFOUND) {
        return rv;
    }
    static const char *const texts[] = {"system_name", "brand_name", "device_model",
                                        "serial_number"};
    json_t *params = json_object(), *rep = json_object();
    param_int(params, "account_id", (json_int_t)acc);
    json_object_set_new(params, "device_uid", json_string(uid));
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *v = json_object_get(dev, texts[i]);
        if (json_is_string(v)) {
            json_object_set(params, texts[i], v);
        }
    }
    rv = bl_account_device_create(&d->c, params, rep);
    if (rv == 0 && json_integer_value(json_object_get(rep, "error")) != 0) {
        char fields[200];
        field_errors(rep, fields, sizeof(fields));
        dw_fail(d, DW_EDEVICE, "device not registered: %s%s%s", reply_message(rep),
                fields[0] ? ": " : "", fields);
    } else if (rv == 0) {
        *device_id = rec_u64(rep, "id");
    }
    json_decref(params);
    json_decref(rep);
    return rv;
}

/* ---- ops --------------------------------------------------------------------------- */

static int op_session_open(struct dw *d)
{
    uint64_t acc_id, sess, device_id = 0;
    json_t *acc;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    const char *uid = get_text(d->w, "device_uid", TEXT_MAX);
    const char *device = get_text(d->w, "device", TEXT_MAX);
    const char *ip = get_text(d->w, "ip", TEXT_MAX);
    const char *edge = get_text(d->w, "edge", TEXT_MAX);
    int basic = get_flag(d->w, "basic", 0);
    json_t *reg = json_object_get(d->w, "register_device");
    json_t *evict = json_object_get(d->w, "evict");
    if (!parse_sess(json_object_get(d->w, "sess_id"), &sess) || uid == NULL || device == NULL ||
        ip == NULL || edge == NULL || basic < 0 ||
        (reg != NULL && !json_is_null(reg) && !json_is_object(reg)) ||
        (evict != NULL && (!json_is_array(evict) || json_array_size(evict) > EVICT_MAX))) {
        json_decref(acc);
        return dw_fail(d, DW_EMALFORMED,
                       "session_open needs sess_id (16 hex), strings "
                       "device_uid, device, ip, edge, basic 0/1, "
                       "register_device null or an object, evict an array");
    }
    uint64_t *evicted = NULL;
    size_t n_evict = json_array_size(evict);
    if (n_evict > 0 && (evicted = calloc(n_evict, sizeof(*evicted))) == NULL) {
        json_decref(acc);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_evict; i++) {
        if (!parse_sess(json_array_get(evict, i), &evicted[i])) {
            dw_fail(d, DW_EMALFORMED, "evict holds session ids (16 hex)");
            goto out;
        }
    }
    if (json_is_object(reg)) {
        bool again;
        if ((rv = replayed(d, &again)) != 0 || again) {
            goto out;
        }
        if ((rv = bind_device(d, acc_id, reg, &device_id)) != 0 || failed(d)) {
            goto out;
        }
    } else if (uid[0] != '\0') {
        /* An already bound (basic) device: name it in the session. */
        uint64_t found;
        json_t *o;
        rv = bl_uniq_get(&d->c, BL_UNIQ_DEV_UID, uid, &found);
        if (rv == 0 && bl_obj_get(&d->c, BL_DEVICE, found, &o) == 0) {
            device_id = rec_u64(o, "account_id") == acc_id ? found : 0;
            json_decref(o);
        }
        if (rv != 0 && rv != TVMW_ENOTFOUND) {
            goto out;
        }
        rv = 0;
    }
    /* Opened before the account's "log out everywhere": dead already, and
     * logout_all deleted the account's sessions; do not bring it back. */
    if (d->ms >= rec_u64(acc, "logout_before_ms")) {
        json_t *rec;
        rv = dsess_get(&d->c, acc_id, sess, &rec);
        if (rv == TVMW_ENOTFOUND) {
            rec = dsess_new(d->c.client_id, acc_id, sess);
            rv = rec ? 0 : -ENOMEM;
        }
        if (rv != 0) {
            goto out;
        }
        /* revoked_ms stays: a close that arrived first still holds. */
        json_object_set_new(rec, "device_uid", json_string(uid));
        json_object_set_new(rec, "device", json_string(device));
        json_object_set_new(rec, "basic", json_integer(basic));
        json_object_set_new(rec, "device_id", json_integer((json_int_t)device_id));
        json_object_set_new(rec, "opened_ms", json_integer((json_int_t)d->ms));
        json_object_set_new(rec, "ip", json_string(ip));
        json_object_set_new(rec, "edge", json_string(edge));
        rv = dsess_put(&d->c, acc_id, sess, rec);
        json_decref(rec);
    }
    for (size_t i = 0; rv == 0 && i < n_evict; i++) {
        if (evicted[i] != sess) {
            rv = dsess_revoke(&d->c, acc_id, evicted[i], d->ms);
        }
    }
    if (rv == 0 && n_evict > 0) {
        rv = dsess_compact(&d->c, acc_id, d->ms);
    }
    if (rv == 0) {
        json_object_set_new(d->r, "device_id", json_integer((json_int_t)device_id));
        if (json_is_object(reg)) {
            json_object_set_new(d->r, "error", json_integer(0));
            rv = dedup_put(d);
        }
    }
out:
    free(evicted);
    json_decref(acc);
    return rv;
}

static int op_session_close(struct dw *d)
{
    uint64_t acc_id, sess;
    json_t *acc;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    json_decref(acc);
    if (!parse_sess(json_object_get(d->w, "sess_id"), &sess)) {
        return dw_fail(d, DW_EMALFORMED, "session_close needs sess_id (16 hex)");
    }
    rv = dsess_revoke(&d->c, acc_id, sess, d->ms);
    return rv != 0 ? rv : dsess_compact(&d->c, acc_id, d->ms);
}

static int op_logout_all(struct dw *d)
{
    uint64_t acc_id, *ids = NULL;
    size_t n = 0;
    json_t *acc;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    if (rec_u64(acc, "logout_before_ms") < d->ms) {
        json_object_set_new(acc, "logout_before_ms", json_integer((json_int_t)d->ms));
        rv = bl_obj_put(&d->c, BL_ACCOUNT, acc_id, acc);
    }
    json_decref(acc);
    if (rv == 0 && (rv = dsess_list(&d->c, acc_id, &ids, &n)) == 0) {
        for (size_t i = 0; rv == 0 && i < n; i++) {
            rv = dsess_del(&d->c, acc_id, ids[i]);
        }
        free(ids);
    }
    return rv;
}

/* Raises a record's time field to ms; *changed when it did. */
static void raise_ms(json_t *rec, const char *field, uint64_t ms, bool *changed)
{
    if (rec_u64(rec, field) < ms) {
        json_object_set_new(rec, field, json_integer((json_int_t)ms));
        *changed = true;
    }
}

/* One last_seen item, for the account's client c->client_id. */
static int seen_one(struct bl_ctx *c, uint64_t acc_id, uint64_t dev_id, uint64_t ms)
{
    json_t *acc, *dev;
    bool changed = false;
    int rv = bl_obj_get(c, BL_ACCOUNT, acc_id, &acc);
    if (rv == TVMW_ENOTFOUND) {
        return 0; /* deleted since, or not this client's: nothing to note */
    }
    if (rv != 0) {
        return rv;
    }
    raise_ms(acc, "last_active_ms", ms, &changed);
    rv = changed ? bl_obj_put(c, BL_ACCOUNT, acc_id, acc) : 0;
    json_decref(acc);
    if (rv != 0 || dev_id == 0) {
        return rv;
    }
    rv = bl_obj_get(c, BL_DEVICE, dev_id, &dev);
    if (rv != 0) {
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    changed = false;
    if (rec_u64(dev, "account_id") == acc_id) {
        raise_ms(dev, "last_seen_ms", ms, &changed);
    }
    rv = changed ? bl_obj_put(c, BL_DEVICE, dev_id, dev) : 0;
    json_decref(dev);
    return rv;
}

/* client_id 0 (an edge's batch of several clients' items): each item
 * counts for its account's own client. Last-seen times carry no
 * authority, so that is the one op that may do without a client. */
static int op_last_seen(struct dw *d)
{
    json_t *items = json_object_get(d->w, "items"), *it;
    size_t i;
    int rv = 0;
    if (!json_is_array(items) || json_array_size(items) > LAST_SEEN_MAX) {
        return dw_fail(d, DW_EMALFORMED, "last_seen needs \"items\", at most %d", LAST_SEEN_MAX);
    }
    uint64_t client = d->c.client_id;
    json_array_foreach(items, i, it)
    {
        uint64_t acc_id, ms;
        json_t *dv = json_object_get(it, "device_id");
        if (!get_id(it, "account_id", &acc_id) || !get_ms(d, it, "ms", &ms) ||
            (dv != NULL && !(json_is_integer(dv) && json_integer_value(dv) >= 0))) {
            return dw_fail(d, DW_EMALFORMED,
                           "last_seen items are {account_id, device_id (0: none), ms}");
        }
        if (client == 0) {
            json_t *acc;
            rv = cp_record_get(d->c.txn, d->c.db->accounts, acc_id, &acc);
            if (rv == TVMW_ENOTFOUND) {
                rv = 0;
                continue;
            }
            if (rv != 0) {
                break;
            }
            d->c.client_id = rec_u64(acc, "client_id");
            json_decref(acc);
        }
        rv = seen_one(&d->c, acc_id, dv ? (uint64_t)json_integer_value(dv) : 0, ms);
        d->c.client_id = client;
        if (rv != 0) {
            break;
        }
    }
    return rv;
}

/* ---- settings_save ------------------------------------------------------------------ */

/* A channel id list: an integer or an array of integers, each positive. */
static bool id_list(const json_t *v, json_t **out)
{
    json_t *arr = json_is_array(v) ? json_incref((json_t *)v) : json_pack("[O]", v);
    size_t i;
    json_t *x;
    if (arr == NULL || json_array_size(arr) > SETTINGS_IDS_MAX) {
        json_decref(arr);
        return false;
    }
    json_array_foreach(arr, i, x)
    {
        if (!json_is_integer(x) || json_integer_value(x) <= 0) {
            json_decref(arr);
            return false;
        }
    }
    *out = arr;
    return true;
}

static bool has_int(const json_t *arr, json_int_t id)
{
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        if (json_integer_value(x) == id) {
            return true;
        }
    }
    return false;
}

/* The channels a write adds must be this client's. */
static int check_channels(struct dw *d, const json_t *ids, bool *ok)
{
    size_t i;
    json_t *x;
    *ok = true;
    json_array_foreach(ids, i, x)
    {
        json_t *ch;
        int rv = bl_obj_get(&d->c, BL_CHANNEL, (uint64_t)json_integer_value(x), &ch);
        if (rv == TVMW_ENOTFOUND) {
            *ok = false;
            return dw_fail(d, DW_ENOTFOUND, "channel %lld not found",
                           (long long)json_integer_value(x));
        }
        if (rv != 0) {
            return rv;
        }
        json_decref(ch);
    }
    return 0;
}

/* Adds (add) or removes the ids of `ids` in the set arr (order kept). */
static void set_edit(json_t *arr, const json_t *ids, bool add)
{
    size_t i;
    json_t *x;
    json_array_foreach(ids, i, x)
    {
        json_int_t id = json_integer_value(x);
        if (add) {
            if (!has_int(arr, id)) {
                json_array_append_new(arr, json_integer(id));
            }
            continue;
        }
        for (size_t j = json_array_size(arr); j-- > 0;) {
            if (json_integer_value(json_array_get(arr, j)) == id) {
                json_array_remove(arr, j);
            }
        }
    }
}

/* parent_code, use_timeshift, preferred_timeshift_offset, data_center_id:
 * through account/modify, so they obey the Billing API's rules. */
static int settings_account(struct dw *d, uint64_t acc_id)
{
    static const struct {
        const char *write, *param;
    } fields[] = {{"parent_code", "parent_code"},
                  {"use_timeshift", "use_timeshift"},
                  {"preferred_timeshift_offset", "preferred_timeshift_offset"},
                  {"data_center_id", "data_center"}};
    json_t *params = json_object();
    bool any = false;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(d->w, fields[i].write);
        if (v == NULL) {
            continue;
        }
        any = true;
        if (json_is_integer(v)) {
            param_int(params, fields[i].param, json_integer_value(v));
        } else if (json_is_boolean(v)) {
            param_int(params, fields[i].param, json_is_true(v));
        } else if (json_is_string(v)) {
            json_object_set(params, fields[i].param, v);
        } else {
            json_decref(params);
            return dw_fail(d, DW_EMALFORMED, "\"%s\" must be a number", fields[i].write);
        }
    }
    if (!any) {
        json_decref(params);
        return 0;
    }
    json_t *rep = json_object();
    param_int(params, "account_id", (json_int_t)acc_id);
    int rv = bl_account_modify(&d->c, params, rep);
    if (rv == 0 && json_integer_value(json_object_get(rep, "error")) != 0) {
        char fields_msg[200];
        field_errors(rep, fields_msg, sizeof(fields_msg));
        dw_fail(d, DW_EMALFORMED, "settings not saved: %s%s%s", reply_message(rep),
                fields_msg[0] ? ": " : "", fields_msg);
    }
    json_decref(params);
    json_decref(rep);
    return rv;
}

static int op_settings_save(struct dw *d)
{
    static const struct {
        const char *field, *list;
        bool add, check;
    } edits[] = {{"favorite_add", "favorites", true, true},
                 {"favorite_remove", "favorites", false, false},
                 {"lock_add", "parent_locked", true, true},
                 {"lock_remove", "parent_locked", false, false}};
    /* Replaced wholesale (channels_sort of the device API sends all four). */
    static const char *const replaced[] = {"hidden", "sort", "favorites", "parent_locked"};
    uint64_t acc_id;
    json_t *acc, *set = NULL, *ids = NULL;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    json_decref(acc);
    if ((rv = settings_account(d, acc_id)) != 0 || failed(d)) {
        return rv;
    }
    rv = cp_record_get(d->c.txn, d->c.db->acc_settings, acc_id, &set);
    if (rv == TVMW_ENOTFOUND) {
        set = json_pack("{s:I, s:I, s:[], s:[], s:[], s:[], s:i}", "client_id",
                        (json_int_t)d->c.client_id, "account_id", (json_int_t)acc_id, "favorites",
                        "parent_locked", "hidden", "sort", "last_channel", -1);
        rv = set ? 0 : -ENOMEM;
    }
    if (rv != 0) {
        return rv;
    }
    bool touched = false, ok = true;
    for (size_t i = 0; i < sizeof(replaced) / sizeof(replaced[0]); i++) {
        json_t *v = json_object_get(d->w, replaced[i]);
        if (v == NULL) {
            continue;
        }
        if (!json_is_array(v) || !id_list(v, &ids)) {
            rv = dw_fail(d, DW_EMALFORMED, "\"%s\": a list of channel ids", replaced[i]);
            goto out;
        }
        json_object_set_new(set, replaced[i], json_deep_copy(ids)); /* edited below */
        json_decref(ids);
        ids = NULL;
        touched = true;
    }
    for (size_t i = 0; ok && i < sizeof(edits) / sizeof(edits[0]); i++) {
        json_t *v = json_object_get(d->w, edits[i].field);
        if (v == NULL) {
            continue;
        }
        if (!id_list(v, &ids)) {
            rv =
                dw_fail(d, DW_EMALFORMED, "\"%s\": a channel id or a list of them", edits[i].field);
            goto out;
        }
        if (edits[i].check && ((rv = check_channels(d, ids, &ok)) != 0 || !ok)) {
            goto out;
        }
        json_t *arr = json_object_get(set, edits[i].list);
        if (!json_is_array(arr)) {
            arr = json_array();
            json_object_set_new(set, edits[i].list, arr);
        }
        set_edit(arr, ids, edits[i].add);
        json_decref(ids);
        ids = NULL;
        touched = true;
    }
    json_t *last = json_object_get(d->w, "last_channel");
    if (last != NULL) {
        if (!json_is_integer(last) || json_integer_value(last) < -1 ||
            json_integer_value(last) == 0) {
            rv = dw_fail(d, DW_EMALFORMED, "\"last_channel\": a channel id or -1");
            goto out;
        }
        if (json_integer_value(last) > 0) {
            ids = json_pack("[O]", last);
            if ((rv = check_channels(d, ids, &ok)) != 0 || !ok) {
                goto out;
            }
        }
        json_object_set(set, "last_channel", last);
        touched = true;
    }
    if (touched) {
        rv = cp_record_put(d->c.txn, d->c.db->acc_settings, acc_id, set);
    }
out:
    json_decref(ids);
    json_decref(set);
    return rv;
}

/* ---- messages and devices -------------------------------------------------------------- */

static int message_delete(struct dw *d, uint64_t acc_id, uint64_t msg_id)
{
    int rv = bl_obj_del(&d->c, BL_MESSAGE, msg_id);
    if (rv == 0 || rv == TVMW_ENOTFOUND) {
        rv = bl_rel_del(&d->c, BL_REL_ACC_MSG, acc_id, msg_id);
    }
    return rv == TVMW_ENOTFOUND ? 0 : rv;
}

static int op_message_read(struct dw *d)
{
    uint64_t acc_id, msg_id;
    json_t *acc, *msg;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    json_decref(acc);
    if (!get_id(d->w, "message_id", &msg_id)) {
        return dw_fail(d, DW_EMALFORMED, "\"message_id\" must be a positive integer");
    }
    if ((rv = load_owned(d, BL_MESSAGE, "message", msg_id, acc_id, &msg)) != 0 || msg == NULL) {
        return rv;
    }
    if (json_integer_value(json_object_get(msg, "delete_after_reading")) == 1) {
        rv = message_delete(d, acc_id, msg_id);
    } else if (json_integer_value(json_object_get(msg, "was_read")) != 1) {
        json_object_set_new(msg, "was_read", json_integer(1));
        rv = bl_obj_put(&d->c, BL_MESSAGE, msg_id, msg);
    }
    json_decref(msg);
    return rv;
}

static int op_message_delete(struct dw *d)
{
    uint64_t acc_id, msg_id;
    json_t *acc, *msg;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    json_decref(acc);
    json_t *mv = json_object_get(d->w, "message_id");
    if (json_is_string(mv) && strcmp(json_string_value(mv), "all") == 0) {
        uint64_t *ids;
        size_t n;
        if ((rv = bl_rel_list(&d->c, BL_REL_ACC_MSG, acc_id, &ids, &n)) != 0) {
            return rv;
        }
        for (size_t i = 0; rv == 0 && i < n; i++) {
            rv = message_delete(d, acc_id, ids[i]);
        }
        free(ids);
        return rv;
    }
    if (!get_id(d->w, "message_id", &msg_id)) {
        return dw_fail(d, DW_EMALFORMED, "\"message_id\": a positive integer or \"all\"");
    }
    if ((rv = load_owned(d, BL_MESSAGE, "message", msg_id, acc_id, &msg)) != 0 || msg == NULL) {
        return rv;
    }
    json_decref(msg);
    return message_delete(d, acc_id, msg_id);
}

static int op_device_delete(struct dw *d)
{
    uint64_t acc_id, dev_id;
    json_t *acc, *dev;
    int rv = load_account(d, d->w, &acc_id, &acc);
    if (rv != 0 || acc == NULL) {
        return rv;
    }
    json_decref(acc);
    if (!get_id(d->w, "device_id", &dev_id)) {
        return dw_fail(d, DW_EMALFORMED, "\"device_id\" must be a positive integer");
    }
    if ((rv = load_owned(d, BL_DEVICE, "device", dev_id, acc_id, &dev)) != 0 || dev == NULL) {
        return rv;
    }
    json_decref(dev);
    json_t *params = json_object(), *rep = json_object();
    param_int(params, "device_id", (json_int_t)dev_id);
    rv = bl_account_device_delete(&d->c, params, rep);
    if (rv == 0 && json_integer_value(json_object_get(rep, "error")) != 0) {
        dw_fail(d, DW_ENOTFOUND, "device %" PRIu64 " not found", dev_id);
    } else if (rv == 0) {
        rv = dsess_revoke_device(&d->c, acc_id, dev_id, d->ms);
    }
    json_decref(params);
    json_decref(rep);
    return rv;
}

/* ---- account_register ------------------------------------------------------------------- */

static int registration_enabled(struct dw *d, bool *yes)
{
    json_t *client;
    int rv = cp_record_get(d->c.txn, d->c.db->clients, d->c.client_id, &client);
    if (rv != 0) {
        return rv;
    }
    json_t *v = json_object_get(json_object_get(client, "settings"), "registration_enabled");
    *yes = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) == 1);
    json_decref(client);
    return 0;
}

/* Runs one Billing create method; *id its new object, or 0 after
 * recording the failure in d->r. */
static int run_create(struct dw *d, bl_method_fn fn, const char *what, json_t *params, uint64_t *id)
{
    json_t *rep = json_object();
    *id = 0;
    int rv = fn(&d->c, params, rep);
    if (rv == 0 && json_integer_value(json_object_get(rep, "error")) != 0) {
        char fields[200];
        field_errors(rep, fields, sizeof(fields));
        dw_fail(d, DW_EREG_FAILED, "%s not created: %s%s%s", what, reply_message(rep),
                fields[0] ? ": " : "", fields);
    } else if (rv == 0) {
        *id = rec_u64(rep, "id");
        const char *abon = json_string_value(json_object_get(rep, "abonement"));
        if (abon != NULL) {
            json_object_set_new(d->r, "abonement", json_string(abon));
        }
    }
    json_decref(rep);
    return rv;
}

static int op_account_register(struct dw *d)
{
    bool again, enabled;
    int rv = replayed(d, &again);
    if (rv != 0 || again) {
        return rv;
    }
    const char *uid = get_text(d->w, "device_uid", TEXT_MAX);
    const char *phone = get_text(d->w, "mobile_phone_number", TEXT_MAX);
    const char *hash = get_text(d->w, "password_hash", TEXT_MAX);
    const char *salt = get_text(d->w, "password_salt", TEXT_MAX);
    const char *device = get_text(d->w, "device", TEXT_MAX);
    const char *model = get_text(d->w, "device_model", TEXT_MAX);
    json_t *pc = json_object_get(d->w, "parent_code");
    if (uid == NULL || phone == NULL || hash == NULL || salt == NULL || device == NULL ||
        model == NULL || (pc != NULL && !json_is_integer(pc) && !json_is_string(pc)) ||
        (hash[0] == '\0') != (salt[0] == '\0')) {
        return dw_fail(d, DW_EMALFORMED,
                       "account_register: strings device_uid, "
                       "mobile_phone_number, device, device_model, "
                       "password_hash with password_salt; parent_code");
    }
    if ((rv = registration_enabled(d, &enabled)) != 0) {
        return rv;
    }
    if (!enabled) {
        return dw_fail(d, DW_EREG_DISABLED, "registration is disabled for this client");
    }
    if (uid[0] == '\0' && phone[0] == '\0') {
        return dw_fail(d, DW_EREG_NEED_ID, "need mobile_phone_number or device_uid");
    }
    uint64_t other, cust_id, acc_id, dev_id;
    if (uid[0] != '\0') {
        rv = bl_uniq_get(&d->c, BL_UNIQ_DEV_UID, uid, &other);
        if (rv == 0) {
            return dw_fail(d, DW_EDEVICE_TAKEN, "device %s is already registered", uid);
        }
        if (rv != TVMW_ENOTFOUND) {
            return rv;
        }
    }
    json_t *cp = json_pack("{s:s}", "comment", REGISTER_COMMENT);
    if (phone[0] != '\0') {
        json_object_set_new(cp, "mobile_phone_number", json_string(phone));
    }
    rv = run_create(d, bl_customer_create, "customer", cp, &cust_id);
    json_decref(cp);
    if (rv != 0 || cust_id == 0) {
        return rv;
    }
    json_t *ap = json_object();
    param_int(ap, "customer_id", (json_int_t)cust_id);
    if (hash[0] != '\0') {
        json_object_set_new(ap, "password_hash", json_string(hash));
        json_object_set_new(ap, "password_salt", json_string(salt));
    }
    if (json_is_integer(pc)) {
        param_int(ap, "parent_code", json_integer_value(pc));
    } else if (json_is_string(pc)) {
        json_object_set(ap, "parent_code", pc);
    }
    rv = run_create(d, bl_account_create, "account", ap, &acc_id);
    json_decref(ap);
    if (rv != 0 || acc_id == 0) {
        return rv;
    }
    if (uid[0] != '\0') {
        json_t *dev = json_pack("{s:s, s:s, s:s}", "device_uid", uid, "system_name",
                                device[0] ? device : DEFAULT_DEVICE, "device_model", model);
        rv = bind_device(d, acc_id, dev, &dev_id);
        json_decref(dev);
        if (rv != 0 || failed(d)) {
            return rv;
        }
    }
    json_object_set_new(d->r, "error", json_integer(0));
    json_object_set_new(d->r, "account_id", json_integer((json_int_t)acc_id));
    return dedup_put(d);
}

/* ---- one write, the command --------------------------------------------------------------- */

typedef int (*op_cb)(struct dw *d);

static const struct {
    const char *name;
    op_cb fn;
} ops[] = {
    {"session_open", op_session_open},
    {"session_close", op_session_close},
    {"logout_all", op_logout_all},
    {"last_seen", op_last_seen},
    {"settings_save", op_settings_save},
    {"message_read", op_message_read},
    {"message_delete", op_message_delete},
    {"device_delete", op_device_delete},
    {"account_register", op_account_register},
};

static op_cb op_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, name) == 0) {
            return ops[i].fn;
        }
    }
    return NULL;
}

/* Whether the client exists; remembered across the writes of a command. */
static int client_known(struct cp_apply *a, uint64_t client, uint64_t *known, bool *yes)
{
    if (*known == client) {
        *yes = true;
        return 0;
    }
    json_t *o;
    int rv = cp_record_get(a->txn, a->db->clients, client, &o);
    *yes = rv == 0;
    if (rv == 0) {
        json_decref(o);
        *known = client;
    }
    return rv == TVMW_ENOTFOUND ? 0 : rv;
}

/* Applies write w in its own nested transaction into r. */
static int apply_one(struct cp_apply *a, json_t *w, json_t *r, uint64_t *known_client)
{
    struct dw d = {.a = a, .w = w, .r = r};
    uint64_t client;
    const char *opname = json_string_value(json_object_get(w, "op"));
    op_cb fn = op_find(opname);
    d.reqid = json_string_value(json_object_get(w, "reqid"));
    json_t *cv = json_object_get(w, "client_id");
    bool any_client = fn == op_last_seen && json_is_integer(cv) && json_integer_value(cv) == 0;
    if (fn == NULL || !is_lower_hex(d.reqid, REQID_HEX) ||
        (!any_client && !get_id(w, "client_id", &client)) || !get_ms(&d, w, "ms", &d.ms)) {
        return dw_fail(&d, DW_EMALFORMED,
                       "a write needs a known \"op\", \"reqid\" (32 hex), "
                       "\"client_id\" and \"ms\"");
    }
    bool exists = true;
    int rv = 0;
    if (any_client) {
        client = 0;
    } else {
        rv = client_known(a, client, known_client, &exists);
    }
    if (rv != 0) {
        return rv;
    }
    if (!exists) {
        return dw_fail(&d, DW_ENOTFOUND, "client %" PRIu64 " not found", client);
    }
    MDB_txn *child;
    if (mdb_txn_begin(mdb_txn_env(a->txn), a->txn, 0, &child) != 0) {
        return TVMW_ESTORE;
    }
    d.c = (struct bl_ctx){.txn = child,
                          .db = a->db,
                          .client_id = client,
                          .time_ms = d.ms,
                          .index = a->index,
                          .write = true};
    rv = fn(&d);
    if (rv == TVMW_ENOTFOUND || rv == TVMW_ECORRUPT) {
        /* A missing or unreadable record: the same on every node (same
         * state, same command), so this write fails and applying goes
         * on. Only node-local failures (LMDB, memory) stop the node. */
        TVMW_LOG_ERROR("device", "write refused op=%s index=%llu: %s", opname,
                       (unsigned long long)a->index, tvmw_strerror(rv));
        rv = dw_fail(&d, DW_ENOTFOUND, "inconsistent state: %s", tvmw_strerror(rv));
    }
    if (rv != 0 || failed(&d)) {
        mdb_txn_abort(child); /* a failed write leaves nothing behind */
        return rv;
    }
    if (mdb_txn_commit(child) != 0) {
        return TVMW_ESTORE;
    }
    if (json_object_get(r, "error") == NULL) {
        json_object_set_new(r, "error", json_integer(0));
    }
    return 0;
}

/* One audit record per command for what changes accounts (last_seen is
 * bookkeeping): which ops, how many failed. */
static int audit(struct cp_apply *a, json_t *writes, json_t *results)
{
    json_t *counts = json_object();
    json_int_t client = -1, failures = 0;
    size_t i;
    json_t *w;
    json_array_foreach(writes, i, w)
    {
        const char *op = json_string_value(json_object_get(w, "op"));
        if (op != NULL && strcmp(op, "last_seen") == 0) {
            continue;
        }
        json_t *n = json_object_get(counts, op && op_find(op) ? op : "?");
        json_object_set_new(counts, op && op_find(op) ? op : "?",
                            json_integer(n ? json_integer_value(n) + 1 : 1));
        json_int_t c = json_integer_value(json_object_get(w, "client_id"));
        client = client == -1 || client == c ? c : 0;
        failures += json_integer_value(json_object_get(json_array_get(results, i), "error")) != 0;
    }
    int rv = 0;
    if (json_object_size(counts) > 0) {
        json_t *who = client > 0 ? json_pack("{s:I, s:s}", "client_id", client, "source", "edge")
                                 : json_pack("{s:s}", "source", "edge");
        json_t *summary = json_pack("{s:o}", "ops", counts);
        counts = NULL;
        rv = cp_audit_put(a, who, "device_writes", summary, failures);
        json_decref(who);
        json_decref(summary);
    }
    json_decref(counts);
    return rv;
}

const char *cp_device_writes_check(const json_t *body)
{
    json_t *writes = json_object_get(body, "writes");
    if (!json_is_object(body) || !json_is_array(writes) || json_object_size(body) != 1) {
        return "the body is {\"writes\": [...]}";
    }
    if (json_array_size(writes) == 0 || json_array_size(writes) > CP_DEVICE_WRITES_MAX) {
        return "\"writes\" holds 1..1000 writes";
    }
    size_t i;
    json_t *w;
    json_array_foreach(writes, i, w)
    {
        if (!json_is_object(w)) {
            return "every write is a JSON object";
        }
    }
    return NULL;
}

int cp_device_writes_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    const char *bad = cp_device_writes_check(payload);
    if (bad != NULL) {
        *res = cp_result_error(400, "bad_request", "%s", bad);
        return 0;
    }
    json_t *writes = json_object_get(payload, "writes"), *results = json_array(), *w;
    uint64_t known_client = 0;
    size_t i;
    int rv = 0;
    json_array_foreach(writes, i, w)
    {
        json_t *r = json_object();
        if ((rv = apply_one(a, w, r, &known_client)) != 0) {
            json_decref(r);
            break;
        }
        json_array_append_new(results, r);
    }
    if (rv == 0) {
        rv = audit(a, writes, results);
    }
    if (rv != 0) {
        json_decref(results);
        return rv;
    }
    *res = cp_result_json(200, json_pack("{s:o}", "results", results));
    return *res ? 0 : -ENOMEM;
}

/* ---- account deletion ------------------------------------------------------------------------ */

int cp_device_account_forget(struct bl_ctx *c, uint64_t account_id)
{
    uint64_t *ids;
    size_t n;
    int rv = dsess_list(c, account_id, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        rv = dsess_del(c, account_id, ids[i]);
    }
    free(ids);
    if (rv == 0) {
        rv = cp_record_del(c->txn, c->db->acc_settings, account_id);
        rv = rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    return rv;
}
