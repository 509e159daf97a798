/*
 * Edge projection, changelog and the readers of the edge feed and edge
 * snapshot. See changelog.h and docs/edge-protocol.md.
 */
#include "controlplane/changelog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"

#define SNAP_MAGIC   "TVMWESN1"
#define SNAP_VERSION 1
#define PRUNE_BATCH  256

enum {
    E_CLIENTS = 1,
    E_CUSTOMERS,
    E_ACCOUNTS,
    E_DEVICES,
    E_TARIFFS,
    E_MESSAGES,
    E_CHANNELS,
    E_CATEGORIES,
    E_DATACENTERS,
    E_SERVICES,
    E_REL,
    E_UNIQ,
    E_KEYS,
    E_DSESS,
    E_ACC_SETTINGS,
    E_PROGRAMS,
};
_Static_assert(E_ACC_SETTINGS == 15, "edge db ids are fixed by docs/edge-protocol.md");
_Static_assert(E_PROGRAMS == 16, "edge db ids are fixed by docs/edge-protocol.md");

/* The control-plane database of each edge db id (index = edge id). */
static MDB_dbi source_dbi(const struct cp_dbs *db, int edb)
{
    const MDB_dbi map[] = {0,
                           db->clients,
                           db->customers,
                           db->accounts,
                           db->devices,
                           db->tariffs,
                           db->messages,
                           db->channels,
                           db->categories,
                           db->datacenters,
                           db->services,
                           db->rel,
                           db->uniq,
                           db->keys,
                           db->dsess,
                           db->acc_settings,
                           db->programs};
    _Static_assert(sizeof(map) / sizeof(map[0]) == CP_EDGE_DB_COUNT + 1, "edge db map");
    return map[edb];
}

int cp_edge_db(const struct cp_dbs *db, MDB_dbi dbi)
{
    for (int e = 1; e <= CP_EDGE_DB_COUNT; e++) {
        if (source_dbi(db, e) == dbi) {
            return e;
        }
    }
    return 0;
}

static bool has_prefix(const MDB_val *k, const char *p)
{
    size_t n = strlen(p);
    return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

/* Keeps only the listed fields of a JSON record. */
static int project_fields(const MDB_val *v, const char *const *keep, struct tvmw_buf *out)
{
    json_t *o = json_loadb(v->mv_data, v->mv_size, 0, NULL), *p = json_object();
    if (o == NULL) {
        json_decref(p);
        return TVMW_ECORRUPT;
    }
    for (const char *const *k = keep; *k; k++) {
        json_t *f = json_object_get(o, *k);
        if (f != NULL) {
            json_object_set(p, *k, f);
        }
    }
    char *text = json_dumps(p, JSON_COMPACT);
    json_decref(o);
    json_decref(p);
    if (text == NULL) {
        return -ENOMEM;
    }
    int rv = tvmw_buf_append(out, text, strlen(text));
    free(text);
    return rv;
}

/* Skips one JSON value at p (< end); returns the byte after it, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    do {
        if (p >= end) {
            return NULL;
        }
        if (*p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\') {
                    p++;
                }
            }
            if (p >= end) {
                return NULL;
            }
            p++;
        } else if (*p == '{' || *p == '[') {
            depth++;
            p++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0) {
                return NULL;
            }
            p++;
        } else {
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ':') {
                p++;
            }
        }
        while (depth > 0 && p < end && (*p == ',' || *p == ':')) {
            p++;
        }
    } while (depth > 0);
    return p;
}

/* The integer values of the listed top-level keys of a compact JSON object
 * (as jansson writes records), without building it: customers are ~1M
 * records a snapshot projects. False if the text is not that shape (the
 * caller then parses it). */
static bool scan_top_ints(const char *p, size_t n, const char *const *keys, long long *vals,
                          bool *found)
{
    const char *end = p + n;
    for (size_t i = 0; keys[i]; i++) {
        found[i] = false;
    }
    if (n < 2 || *p != '{') {
        return false;
    }
    p++;
    while (p < end && *p != '}') {
        if (*p != '"') {
            return false;
        }
        const char *name = ++p;
        while (p < end && *p != '"' && *p != '\\') {
            p++;
        }
        if (p + 1 >= end || *p != '"' || p[1] != ':') {
            return false;
        }
        size_t len = (size_t)(p - name);
        p += 2;
        const char *vend = skip_value(p, end);
        if (vend == NULL) {
            return false;
        }
        for (size_t i = 0; keys[i]; i++) {
            if (strlen(keys[i]) == len && memcmp(keys[i], name, len) == 0) {
                char num[24], *e;
                size_t vl = (size_t)(vend - p);
                if (vl == 0 || vl >= sizeof(num)) {
                    return false;
                }
                memcpy(num, p, vl);
                num[vl] = '\0';
                vals[i] = strtoll(num, &e, 10);
                if (*e != '\0') {
                    return false; /* not an integer */
                }
                found[i] = true;
            }
        }
        p = vend;
        if (p < end && *p == ',') {
            p++;
        }
    }
    return p < end && *p == '}' && p + 1 == end;
}

/* The customer projection: {"id","client_id","balance_cents"}, as
 * project_fields would write it, without jansson when the record allows. */
static int project_customer(const MDB_val *v, const char *const *keep, struct tvmw_buf *out)
{
    long long vals[3];
    bool found[3];
    if (!scan_top_ints(v->mv_data, v->mv_size, keep, vals, found)) {
        return project_fields(v, keep, out);
    }
    int rv = tvmw_buf_append(out, "{", 1);
    bool first = true;
    for (size_t i = 0; rv == 0 && keep[i]; i++) {
        if (found[i]) {
            rv = tvmw_buf_printf(out, "%s\"%s\":%lld", first ? "" : ",", keep[i], vals[i]);
            first = false;
        }
    }
    return rv != 0 ? rv : tvmw_buf_append(out, "}", 1);
}

int cp_edge_project(int edb, const MDB_val *k, const MDB_val *v, struct tvmw_buf *out, bool *skip)
{
    static const char *const client_keep[] = {"id", "name", "api_key", "settings", NULL};
    static const char *const customer_keep[] = {"id", "client_id", "balance_cents", NULL};
    *skip = false;
    out->len = 0;
    switch (edb) {
    case E_REL:
        /* The ledger stays on the control plane; edges look relations up
         * from the customer or account, never tariff -> subscribers (a
         * million records at a million accounts). */
        *skip =
            has_prefix(k, "cust_tx/") || has_prefix(k, "tar_cust/") || has_prefix(k, "tar_acc/");
        break;
    case E_UNIQ:
        *skip = !has_prefix(k, "abonement/") && !has_prefix(k, "dev_uid/");
        break;
    case E_CLIENTS:
        return v ? project_fields(v, client_keep, out) : 0;
    case E_CUSTOMERS:
        return v ? project_customer(v, customer_keep, out) : 0;
    default:
        break;
    }
    if (*skip || v == NULL) {
        return 0;
    }
    return tvmw_buf_append(out, v->mv_data, v->mv_size);
}

/* Changelog value: u8 op (1 put, 2 del), u8 edge db, u32 key length, key,
 * projected value. Key: be64 index, be32 seq. */
int cp_changelog_note(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, const MDB_val *v)
{
    uint64_t index;
    uint32_t seq;
    MDB_dbi log;
    struct cp_fsm *f = mdb_env_get_userctx(mdb_txn_env(txn));
    if (f == NULL) {
        return 0;
    }
    const struct cp_dbs *db = cp_fsm_dbs(f);
    int edb = cp_edge_db(db, dbi);
    if (edb == 0 || !cp_fsm_applying(txn, &index, &seq)) {
        return 0;
    }
    log = db->changelog;
    struct tvmw_buf val;
    bool skip;
    tvmw_buf_init(&val, 0);
    int rv = cp_edge_project(edb, k, v, &val, &skip);
    if (rv != 0 || skip) {
        tvmw_buf_close(&val);
        return rv == TVMW_ECORRUPT ? 0 : rv;
    }
    uint8_t key[12];
    tvmw_put_be64(key, index);
    key[8] = (uint8_t)(seq >> 24);
    key[9] = (uint8_t)(seq >> 16);
    key[10] = (uint8_t)(seq >> 8);
    key[11] = (uint8_t)seq;
    MDB_val lk = {.mv_size = sizeof(key), .mv_data = key};
    MDB_val lv = {.mv_size = 6 + k->mv_size + val.len};
    int rc = mdb_put(txn, log, &lk, &lv, MDB_RESERVE);
    if (rc == 0) {
        uint8_t *p = lv.mv_data;
        p[0] = v ? 1 : 2;
        p[1] = (uint8_t)edb;
        tvmw_put_u32(p + 2, (uint32_t)k->mv_size);
        memcpy(p + 6, k->mv_data, k->mv_size);
        if (val.len > 0) {
            memcpy(p + 6 + k->mv_size, val.data, val.len);
        }
    }
    tvmw_buf_close(&val);
    return rc == 0 ? 0 : TVMW_ESTORE;
}

static int meta_u64(MDB_txn *txn, MDB_dbi meta, const char *key, uint64_t *out)
{
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    *out = rc == 0 && v.mv_size == 8 ? tvmw_get_u64(v.mv_data) : 0;
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

int cp_changelog_prune(struct cp_apply *a, uint64_t window)
{
    if (a->index <= window) {
        return 0;
    }
    uint64_t cutoff = a->index - window, horizon, reached = 0;
    int rv = meta_u64(a->txn, a->db->meta, "changelog_horizon", &horizon);
    if (rv != 0 || horizon >= cutoff) {
        return rv;
    }
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(a->txn, a->db->changelog, &cur) != 0) {
        return TVMW_ESTORE;
    }
    int rc, n = 0;
    bool all = true;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        uint64_t idx = tvmw_get_be64(k.mv_data);
        if (idx > cutoff) {
            break;
        }
        if (n++ == PRUNE_BATCH) {
            all = false; /* the rest next time */
            break;
        }
        if (mdb_cursor_del(cur, 0) != 0) {
            mdb_cursor_close(cur);
            return TVMW_ESTORE;
        }
        reached = idx;
    }
    mdb_cursor_close(cur);
    /* Changes after the horizon are all kept: with everything up to the
     * cutoff gone it is the cutoff; otherwise the last index removed. */
    uint64_t nh = all ? cutoff : reached;
    if (nh <= horizon) {
        return 0;
    }
    uint8_t b[8];
    tvmw_put_u64(b, nh);
    MDB_val mk = {.mv_size = 17, .mv_data = "changelog_horizon"}, mv = {.mv_size = 8, .mv_data = b};
    return mdb_put(a->txn, a->db->meta, &mk, &mv, 0) == 0 ? 0 : TVMW_ESTORE;
}

/* ---- feed --------------------------------------------------------------- */

static json_t *b64(const void *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out == NULL) {
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    json_t *s = json_string(out);
    free(out);
    return s;
}

int cp_feed_read(struct cp_fsm *f, uint64_t after, unsigned limit, json_t **out, bool *gone)
{
    const struct cp_dbs *db = cp_fsm_dbs(f);
    MDB_txn *txn;
    MDB_cursor *cur;
    uint64_t horizon, last;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    *gone = false;
    if ((rv = meta_u64(txn, db->meta, "changelog_horizon", &horizon)) != 0 ||
        (rv = meta_u64(txn, db->meta, "last_applied", &last)) != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    if (after < horizon) {
        *gone = true;
        *out = json_pack("{s:s, s:I, s:I}", "error", "snapshot_required", "horizon",
                         (json_int_t)horizon, "last_index", (json_int_t)last);
        mdb_txn_abort(txn);
        return 0;
    }
    if (mdb_cursor_open(txn, db->changelog, &cur) != 0) {
        mdb_txn_abort(txn);
        return TVMW_ESTORE;
    }
    uint8_t start[12] = {0};
    tvmw_put_be64(start, after + 1);
    MDB_val k = {.mv_size = sizeof(start), .mv_data = start}, v;
    json_t *changes = json_array();
    bool complete = true;
    uint64_t cur_index = 0;
    unsigned n = 0;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t idx = tvmw_get_be64(k.mv_data);
        if (n >= limit && idx != cur_index) {
            complete = false; /* never split one index's changes */
            break;
        }
        const uint8_t *p = v.mv_data;
        uint32_t klen = v.mv_size >= 6 ? tvmw_get_u32(p + 2) : 0;
        if (v.mv_size < 6 || klen > v.mv_size - 6) {
            continue; /* cannot happen: written by us */
        }
        json_t *c = json_pack("{s:I, s:s, s:i, s:o}", "index", (json_int_t)idx, "op",
                              p[0] == 1 ? "put" : "del", "db", p[1], "key", b64(p + 6, klen));
        if (p[0] == 1) {
            json_object_set_new(c, "value", b64(p + 6 + klen, v.mv_size - 6 - klen));
        }
        json_array_append_new(changes, c);
        cur_index = idx;
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    *out = json_pack("{s:I, s:I, s:b, s:o}", "after", (json_int_t)after, "last_index",
                     (json_int_t)last, "complete", complete, "changes", changes);
    return *out ? 0 : -ENOMEM;
}

/* ---- edge snapshot stream ------------------------------------------------ */

struct cp_edge_snap {
    MDB_txn *txn;
    MDB_cursor *cur;
    const struct cp_dbs *db;
    EVP_MD_CTX *md;
    int edb;                 /* database being walked; CP_EDGE_DB_COUNT + 1 = trailer */
    bool started;            /* cursor positioned in edb */
    uint64_t count;          /* records written */
    struct tvmw_buf pending; /* bytes produced, not yet handed out */
    size_t pending_off;
    struct tvmw_buf val;
    bool done;
};

static int emit(struct cp_edge_snap *s, const void *p, size_t n)
{
    return tvmw_buf_append(&s->pending, p, n);
}

int cp_edge_snap_open(struct cp_fsm *f, struct cp_edge_snap **out, uint64_t *index)
{
    struct cp_edge_snap *s = calloc(1, sizeof(*s));
    uint64_t last;
    if (s == NULL) {
        return -ENOMEM;
    }
    s->db = cp_fsm_dbs(f);
    int rv = cp_fsm_read_begin(f, &s->txn);
    if (rv != 0) {
        free(s);
        return rv;
    }
    tvmw_buf_init(&s->pending, 0);
    tvmw_buf_init(&s->val, 0);
    s->md = EVP_MD_CTX_new();
    if (s->md == NULL || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1 ||
        meta_u64(s->txn, s->db->meta, "last_applied", &last) != 0) {
        cp_edge_snap_close(s);
        return TVMW_ESTORE;
    }
    uint8_t hdr[32] = {0};
    memcpy(hdr, SNAP_MAGIC, 8);
    tvmw_put_u32(hdr + 8, SNAP_VERSION);
    tvmw_put_u64(hdr + 16, last);
    EVP_DigestUpdate(s->md, hdr, sizeof(hdr));
    emit(s, hdr, sizeof(hdr));
    s->edb = 1;
    *index = last;
    *out = s;
    return 0;
}

/* Produces the next records into pending (about 64 KiB at a time); what
 * it adds goes through SHA-256 in one piece (three small updates per
 * record cost a second at ten million records). */
static int produce(struct cp_edge_snap *s)
{
    size_t from = s->pending.len;
    int rv = 0;
    while (s->pending.len - s->pending_off < 65536 && !s->done && rv == 0) {
        if (s->edb > CP_EDGE_DB_COUNT) {
            uint8_t end[9], md[32];
            unsigned int mdlen = sizeof(md);
            end[0] = 0xFF;
            tvmw_put_u64(end + 1, s->count);
            if (emit(s, end, sizeof(end)) != 0) {
                return -ENOMEM;
            }
            EVP_DigestUpdate(s->md, s->pending.data + from, s->pending.len - from);
            EVP_DigestFinal_ex(s->md, md, &mdlen);
            s->done = true;
            return emit(s, md, sizeof(md));
        }
        MDB_val k, v;
        int rc;
        if (!s->started) {
            if (mdb_cursor_open(s->txn, source_dbi(s->db, s->edb), &s->cur) != 0) {
                return TVMW_ESTORE;
            }
            rc = mdb_cursor_get(s->cur, &k, &v, MDB_FIRST);
            s->started = true;
        } else {
            rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND) {
            mdb_cursor_close(s->cur);
            s->cur = NULL;
            s->started = false;
            s->edb++;
            continue;
        }
        if (rc != 0) {
            return TVMW_ESTORE;
        }
        bool skip;
        rv = cp_edge_project(s->edb, &k, &v, &s->val, &skip);
        if (rv != 0 || skip) {
            if (rv == TVMW_ECORRUPT) {
                rv = 0;
            }
            continue;
        }
        uint8_t rec[10];
        rec[0] = 1;
        rec[1] = (uint8_t)s->edb;
        tvmw_put_u32(rec + 2, (uint32_t)k.mv_size);
        tvmw_put_u32(rec + 6, (uint32_t)s->val.len);
        if (emit(s, rec, sizeof(rec)) != 0 || emit(s, k.mv_data, k.mv_size) != 0 ||
            emit(s, s->val.data ? s->val.data : "", s->val.len) != 0) {
            return -ENOMEM;
        }
        s->count++;
    }
    if (rv == 0) {
        EVP_DigestUpdate(s->md, s->pending.data + from, s->pending.len - from);
    }
    return rv;
}

long cp_edge_snap_read(struct cp_edge_snap *s, uint8_t *buf, size_t len)
{
    if (s->pending_off == s->pending.len) {
        s->pending.len = 0;
        s->pending_off = 0;
        int rv = produce(s);
        if (rv != 0) {
            return rv;
        }
    }
    size_t n = s->pending.len - s->pending_off;
    if (n > len) {
        n = len;
    }
    if (n > 0) {
        memcpy(buf, s->pending.data + s->pending_off, n);
    }
    s->pending_off += n;
    return (long)n;
}

void cp_edge_snap_close(struct cp_edge_snap *s)
{
    if (s == NULL) {
        return;
    }
    if (s->cur != NULL) {
        mdb_cursor_close(s->cur);
    }
    mdb_txn_abort(s->txn);
    EVP_MD_CTX_free(s->md);
    tvmw_buf_close(&s->pending);
    tvmw_buf_close(&s->val);
    free(s);
}
