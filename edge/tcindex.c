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
#define ACC_LEN     EDGE_TCX_ACC_LEN
#define CHAN_HEAD   16 /* then 8 bytes per tariff, then the stream name */
#define CLIENT_LEN  24
#define KEY_HEAD    8
#define KID_KEY_LEN 8

#define ACC_VERSION   2 /* 2: with tariffs */
#define ACC_ACTIVE    0x01
#define ACC_MULTI     0x02
#define ACC_TAR_MORE  0x04
#define CHAN_VERSION  2 /* 2: with tariffs */
#define CHAN_ENABLED  0x01
#define CHAN_TAR_MORE 0x02
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

/* ---- accounts without a JSON tree -------------------------------------------------------
 *
 * A snapshot carries every account (a million and more), and jansson takes
 * microseconds to build each record's tree (about 20 us for a typical
 * 600-byte account on a busy 2-core machine): seconds added to an edge's
 * cold start. Accounts are therefore read by a scanner that walks the top
 * level of the record and looks only at the members the index needs,
 * skipping every other value without building anything. It accepts what
 * the control plane writes (jansson's output); anything it does not
 * understand is left to jansson. The fuzz target checks that both give
 * the same entry. */

struct scan {
    const uint8_t *p, *end;
};

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

/* Past a string starting at '"'; false if unterminated. */
static bool skip_string(struct scan *s)
{
    for (s->p++; s->p < s->end; s->p++) {
        if (*s->p == '\\') {
            s->p++;
        } else if (*s->p == '"') {
            s->p++;
            return true;
        } else if (*s->p < 0x20) {
            return false;
        }
    }
    return false;
}

static bool skip_value(struct scan *s, unsigned depth)
{
    if (s->p >= s->end || depth > 32) {
        return false;
    }
    uint8_t c = *s->p;
    if (c == '"') {
        return skip_string(s);
    }
    if (c == '{' || c == '[') {
        uint8_t close = c == '{' ? '}' : ']';
        s->p++;
        ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                ws(s);
                if (s->p >= s->end || *s->p != '"' || !skip_string(s)) {
                    return false;
                }
                ws(s);
                if (s->p >= s->end || *s->p != ':') {
                    return false;
                }
                s->p++;
            }
            ws(s);
            if (!skip_value(s, depth + 1)) {
                return false;
            }
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == close) {
                s->p++;
                return true;
            }
            return false;
        }
    }
    /* number, true, false, null: letters, digits and -+. only, then a
     * delimiter (anything else is not what the control plane writes) */
    const uint8_t *start = s->p;
    while (s->p < s->end &&
           ((*s->p >= '0' && *s->p <= '9') || (*s->p >= 'a' && *s->p <= 'z') ||
            (*s->p >= 'A' && *s->p <= 'Z') || *s->p == '-' || *s->p == '+' || *s->p == '.')) {
        s->p++;
    }
    if (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' &&
        *s->p != '\t' && *s->p != '\n' && *s->p != '\r') {
        return false;
    }
    return s->p > start;
}

enum sval { SV_OTHER, SV_INT, SV_STRING };

/* Classifies a skipped value: an integer (into *i; -1 for an integer out
 * of range, which jansson would refuse), true/false as 1/0, a string
 * without escapes (its bytes), anything else. */
static enum sval classify(const uint8_t *v, size_t n, int64_t *i, int *bad)
{
    if (n == 4 && memcmp(v, "true", 4) == 0) {
        *i = 1;
        return SV_INT;
    }
    if (n == 5 && memcmp(v, "false", 5) == 0) {
        *i = 0;
        return SV_INT;
    }
    if (n >= 2 && v[0] == '"') {
        return memchr(v, '\\', n) == NULL ? SV_STRING : SV_OTHER;
    }
    size_t k = v[0] == '-' ? 1 : 0;
    if (k >= n || v[k] < '0' || v[k] > '9') {
        return SV_OTHER;
    }
    uint64_t acc = 0;
    for (; k < n; k++) {
        if (v[k] < '0' || v[k] > '9') {
            return SV_OTHER; /* a fraction or exponent: a real */
        }
        if (acc > (UINT64_C(1) << 63) / 10) {
            *bad = 1;
            return SV_OTHER;
        }
        acc = acc * 10 + (uint64_t)(v[k] - '0');
    }
    if (acc > (uint64_t)INT64_MAX + (v[0] == '-')) {
        *bad = 1;
        return SV_OTHER;
    }
    *i = v[0] == '-' ? (int64_t)(0 - acc) : (int64_t)acc;
    return SV_INT;
}

static bool key_is(const uint8_t *k, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(k, lit, n) == 0;
}

int edge_tcx_account_fast(const uint8_t *v, size_t len, uint8_t out[EDGE_TCX_ACC_LEN])
{
    struct scan s = {v, v + len};
    int64_t active = 1, multi = 0, client = 0, customer = 0, logout = 0;
    uint64_t deact = 0;
    int bad = 0;
    ws(&s);
    if (s.p >= s.end || *s.p != '{') {
        return -1;
    }
    s.p++;
    ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            ws(&s);
            const uint8_t *k = s.p + 1;
            if (s.p >= s.end || *s.p != '"' || !skip_string(&s)) {
                return -1;
            }
            size_t kn = (size_t)(s.p - 1 - k);
            if (memchr(k, '\\', kn) != NULL) {
                return -1; /* an escaped name: leave it to jansson */
            }
            ws(&s);
            if (s.p >= s.end || *s.p != ':') {
                return -1;
            }
            s.p++;
            ws(&s);
            const uint8_t *val = s.p;
            if (!skip_value(&s, 0)) {
                return -1;
            }
            size_t vn = (size_t)(s.p - val);
            int64_t iv = 0;
            enum sval t = classify(val, vn, &iv, &bad);
            if (bad) {
                return -1;
            }
            if (key_is(k, kn, "active")) {
                active = t == SV_INT ? iv : 1;
            } else if (key_is(k, kn, "allow_multiple_login")) {
                multi = t == SV_INT ? iv : 0;
            } else if (key_is(k, kn, "client_id")) {
                client = t == SV_INT ? iv : 0;
            } else if (key_is(k, kn, "customer_id")) {
                customer = t == SV_INT ? iv : 0;
            } else if (key_is(k, kn, "logout_before_ms")) {
                logout = t == SV_INT ? iv : 0;
            } else if (key_is(k, kn, "deactivation_date")) {
                char d[16];
                deact = 0;
                if (t == SV_STRING && vn - 2 < sizeof(d)) {
                    memcpy(d, val + 1, vn - 2);
                    d[vn - 2] = '\0';
                    deact = date_s(d);
                } else if (t == SV_OTHER && vn > 0 && val[0] == '"') {
                    return -1; /* escapes */
                }
            }
            ws(&s);
            if (s.p < s.end && *s.p == ',') {
                s.p++;
                continue;
            }
            if (s.p < s.end && *s.p == '}') {
                s.p++;
                break;
            }
            return -1;
        }
    }
    ws(&s);
    if (s.p != s.end) {
        return -1;
    }
    memset(out, 0, EDGE_TCX_ACC_LEN);
    out[0] = ACC_VERSION;
    out[1] = (uint8_t)((active != 0 ? ACC_ACTIVE : 0) | (multi != 0 ? ACC_MULTI : 0));
    tvmw_put_u64(out + 8, client > 0 ? (uint64_t)client : 0);
    tvmw_put_u64(out + 16, customer > 0 ? (uint64_t)customer : 0);
    tvmw_put_u64(out + 24, logout > 0 ? (uint64_t)logout : 0);
    tvmw_put_u64(out + 32, deact);
    return 0;
}

static size_t enc_account(const json_t *o, uint8_t out[ACC_LEN])
{
    memset(out, 0, ACC_LEN);
    out[0] = ACC_VERSION;
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
    out[0] = CHAN_VERSION;
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

/* Index keys are ids in native byte order (MDB_INTEGERKEY, see tcindex.h). */
static int put(MDB_txn *txn, MDB_dbi dbi, uint64_t id, const uint8_t *v, size_t len, bool append)
{
    MDB_val k = {.mv_size = sizeof(id), .mv_data = &id};
    MDB_val d = {.mv_size = len, .mv_data = (void *)v};
    int rc = mdb_put(txn, dbi, &k, &d, append ? MDB_APPEND : 0);
    if (rc == MDB_KEYEXIST && append) {
        rc = mdb_put(txn, dbi, &k, &d, 0);
    }
    return rc == 0 ? 0 : TVMW_ESTORE;
}

static int del(MDB_txn *txn, MDB_dbi dbi, uint64_t id)
{
    MDB_val k = {.mv_size = sizeof(id), .mv_data = &id};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

/* ---- account tariffs ------------------------------------------------------------------ */

#define ACC_TAR_MAX_LEN (ACC_LEN + 8 * EDGE_TCX_TARIFFS)

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Appends the `to` ids of relation prefix (name + '/' + be64 from) to ids. */
static int rel_ids(MDB_cursor *cur, const char *name, uint64_t from, uint64_t *ids, size_t *n,
                   size_t cap, bool *more)
{
    uint8_t prefix[32];
    size_t plen = strlen(name);
    memcpy(prefix, name, plen);
    tvmw_put_be64(prefix + plen, from);
    plen += 8;
    MDB_val k = {.mv_size = plen, .mv_data = prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0) {
            return 0;
        }
        if (*n == cap) {
            *more = true;
            return 0;
        }
        ids[(*n)++] = tvmw_get_be64((const uint8_t *)k.mv_data + plen);
    }
    return rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

/* Completes an x_acc entry whose 40-byte header is in buf with the
 * account's tariffs as the relations in cur's transaction say; returns
 * its length, 0 if LMDB failed. */
static size_t add_tariffs(MDB_cursor *rel, uint64_t account, uint8_t buf[ACC_TAR_MAX_LEN])
{
    uint64_t ids[2 * EDGE_TCX_TARIFFS + 1];
    size_t n = 0;
    bool more = false;
    uint64_t customer = tvmw_get_u64(buf + 16);
    if (rel_ids(rel, "acc_tar/", account, ids, &n, sizeof(ids) / sizeof(ids[0]), &more) != 0 ||
        (customer != 0 &&
         rel_ids(rel, "cust_tar/", customer, ids, &n, sizeof(ids) / sizeof(ids[0]), &more) != 0)) {
        return 0;
    }
    qsort(ids, n, sizeof(ids[0]), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || ids[k - 1] != ids[i]) {
            ids[k++] = ids[i];
        }
    }
    if (more || k > EDGE_TCX_TARIFFS) {
        buf[1] |= ACC_TAR_MORE;
        k = 0;
    }
    buf[2] = (uint8_t)k;
    for (size_t i = 0; i < k; i++) {
        tvmw_put_u64(buf + ACC_LEN + 8 * i, ids[i]);
    }
    return ACC_LEN + 8 * k;
}

/* The 40-byte x_acc header of an account record; -1 if it is no object. */
static int account_header(const uint8_t *value, size_t len, uint8_t buf[ACC_LEN])
{
    if (edge_tcx_account_fast(value, len, buf) == 0) {
        return 0;
    }
    return edge_tcx_account_json(value, len, buf);
}

/* Rewrites the tariffs of an account's x_acc entry (none: nothing to do). */
static int account_refresh(MDB_txn *txn, const struct edge_tcx_dbs *d, MDB_cursor *rel,
                           uint64_t account)
{
    uint8_t buf[ACC_TAR_MAX_LEN];
    MDB_val k = {.mv_size = sizeof(account), .mv_data = &account}, v;
    int rc = mdb_get(txn, d->tcx[EDGE_TCX_ACC], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc != 0 || v.mv_size < ACC_LEN) {
        return rc != 0 ? TVMW_ESTORE : 0;
    }
    memcpy(buf, v.mv_data, ACC_LEN);
    buf[1] &= (uint8_t)~ACC_TAR_MORE;
    size_t n = add_tariffs(rel, account, buf);
    return n == 0 ? TVMW_ESTORE : put(txn, d->tcx[EDGE_TCX_ACC], account, buf, n, false);
}

/* ---- channel tariffs ------------------------------------------------------------------ */

#define CHAN_MAX_LEN (CHAN_HEAD + 8 * EDGE_TCX_TARIFFS + EDGE_TCX_STREAM_MAX)

/* Builds a channel entry from header+stream `base` (as enc_channel wrote
 * it, no tariffs) and a sorted tariff list; returns its length. */
static size_t chan_with(const uint8_t *base, size_t base_len, const uint64_t *ids, size_t n,
                        bool more, uint8_t out[CHAN_MAX_LEN])
{
    size_t stream = base_len - CHAN_HEAD;
    if (more || n > EDGE_TCX_TARIFFS) {
        more = true;
        n = 0;
    }
    memcpy(out, base, CHAN_HEAD);
    out[1] = (uint8_t)((out[1] & ~CHAN_TAR_MORE) | (more ? CHAN_TAR_MORE : 0));
    out[4] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        tvmw_put_u64(out + CHAN_HEAD + 8 * i, ids[i]);
    }
    memcpy(out + CHAN_HEAD + 8 * n, base + CHAN_HEAD, stream);
    return CHAN_HEAD + 8 * n + stream;
}

/* "tar_chan/" T X added or removed: T joins or leaves channel X's list. */
static int channel_tariff(MDB_txn *txn, const struct edge_tcx_dbs *d, uint64_t tariff,
                          uint64_t channel, bool add)
{
    MDB_val k = {.mv_size = sizeof(channel), .mv_data = &channel}, v;
    int rc = mdb_get(txn, d->tcx[EDGE_TCX_CHAN], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return 0; /* no such channel (yet): its put lists its tariffs */
    }
    struct edge_tcx_channel ch;
    if (rc != 0 || edge_tcx_channel_decode(v.mv_data, v.mv_size, &ch) != 0) {
        return rc != 0 ? TVMW_ESTORE : 0;
    }
    uint8_t base[CHAN_HEAD + EDGE_TCX_STREAM_MAX], out[CHAN_MAX_LEN];
    uint64_t ids[EDGE_TCX_TARIFFS + 1];
    memcpy(base, v.mv_data, CHAN_HEAD);
    memcpy(base + CHAN_HEAD, ch.stream, ch.stream_len);
    size_t n = ch.n_tariffs, at = n;
    for (size_t i = 0; i < n; i++) {
        ids[i] = tvmw_get_u64(ch.tariffs + 8 * i);
        if (ids[i] == tariff) {
            at = i;
        }
    }
    if (add && at == n && !ch.tariffs_more) {
        size_t i = n++;
        while (i > 0 && ids[i - 1] > tariff) { /* keep it sorted */
            ids[i] = ids[i - 1];
            i--;
        }
        ids[i] = tariff;
    } else if (!add && at < n) {
        memmove(&ids[at], &ids[at + 1], (n - at - 1) * sizeof(ids[0]));
        n--;
    } else {
        return 0; /* already so (a list that overflowed stays "more") */
    }
    size_t len = chan_with(base, CHAN_HEAD + ch.stream_len, ids, n, ch.tariffs_more, out);
    return put(txn, d->tcx[EDGE_TCX_CHAN], channel, out, len, false);
}

/* Every tariff holding a channel, from the relations. Only for a channel
 * put with no entry yet outside a snapshot load (rare): the relation is
 * keyed by tariff first, so this reads all of "tar_chan/". */
static int channel_tariffs_scan(MDB_txn *txn, const struct edge_tcx_dbs *d, uint64_t channel,
                                uint64_t *ids, size_t *n, bool *more)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, d->rel, &cur) != 0) {
        return TVMW_ESTORE;
    }
    MDB_val k = {.mv_size = 9, .mv_data = "tar_chan/"}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 9 || memcmp(k.mv_data, "tar_chan/", 9) != 0) {
            break;
        }
        if (k.mv_size == 25 && tvmw_get_be64((const uint8_t *)k.mv_data + 17) == channel) {
            if (*n == EDGE_TCX_TARIFFS) {
                *more = true;
                break;
            }
            ids[(*n)++] = tvmw_get_be64((const uint8_t *)k.mv_data + 9);
        }
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

/* A relation change: the accounts whose tariffs it may change. */
static int relation_changed(MDB_txn *txn, const struct edge_tcx_dbs *d, const uint8_t *key,
                            size_t key_len)
{
    static const struct {
        const char *prefix;
        size_t len;
        bool customer;     /* `from` is a customer: every account of it */
        size_t account_at; /* else where the account id is in the key */
    } rels[] = {{"acc_tar/", 8, false, 8}, {"cust_tar/", 9, true, 0}, {"cust_acc/", 9, false, 17}};
    for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
        size_t pl = rels[i].len;
        if (key_len != pl + 16 || memcmp(key, rels[i].prefix, pl) != 0) {
            continue;
        }
        MDB_cursor *rel, *accs;
        if (mdb_cursor_open(txn, d->rel, &rel) != 0) {
            return TVMW_ESTORE;
        }
        int rv = 0;
        if (!rels[i].customer) {
            rv = account_refresh(txn, d, rel, tvmw_get_be64(key + rels[i].account_at));
        } else if (mdb_cursor_open(txn, d->rel, &accs) != 0) {
            rv = TVMW_ESTORE;
        } else {
            uint64_t ids[256];
            size_t n;
            bool more = true;
            uint64_t customer = tvmw_get_be64(key + pl), after = 0;
            /* Customers have a few accounts; page through any number. */
            while (rv == 0 && more) {
                n = 0;
                more = false;
                uint8_t from[32];
                memcpy(from, "cust_acc/", 9);
                tvmw_put_be64(from + 9, customer);
                tvmw_put_be64(from + 17, after);
                MDB_val k = {.mv_size = 25, .mv_data = from}, v;
                int rc = mdb_cursor_get(accs, &k, &v, MDB_SET_RANGE);
                for (; rc == 0 && n < 256; rc = mdb_cursor_get(accs, &k, &v, MDB_NEXT)) {
                    if (k.mv_size != 25 || memcmp(k.mv_data, from, 17) != 0) {
                        break;
                    }
                    ids[n++] = tvmw_get_be64((const uint8_t *)k.mv_data + 17);
                }
                if (rc != 0 && rc != MDB_NOTFOUND) {
                    rv = TVMW_ESTORE;
                }
                more = n == 256;
                for (size_t j = 0; j < n && rv == 0; j++) {
                    rv = account_refresh(txn, d, rel, ids[j]);
                }
                after = n > 0 ? ids[n - 1] + 1 : 0;
            }
            mdb_cursor_close(accs);
        }
        mdb_cursor_close(rel);
        return rv;
    }
    return 0;
}

/* "tar_chan/" changes keep the channels' lists (in a snapshot load too:
 * the channels are in by then, and the relation comes in order). */
static int channel_relation(MDB_txn *txn, const struct edge_tcx_dbs *d, const uint8_t *key,
                            size_t key_len, bool add)
{
    if (key_len != 25 || memcmp(key, "tar_chan/", 9) != 0) {
        return 0;
    }
    return channel_tariff(txn, d, tvmw_get_be64(key + 9), tvmw_get_be64(key + 17), add);
}

int edge_tcx_load_finish(MDB_txn *txn, const struct edge_tcx_dbs *d)
{
    MDB_cursor *acc, *rel;
    if (mdb_cursor_open(txn, d->accounts, &acc) != 0) {
        return TVMW_ESTORE;
    }
    if (mdb_cursor_open(txn, d->rel, &rel) != 0) {
        mdb_cursor_close(acc);
        return TVMW_ESTORE;
    }
    /* Accounts in key order: x_acc is written by appending, and the
     * relation cursor moves mostly forward. */
    MDB_val k, v;
    int rc, rv = 0;
    uint64_t dropped = 0;
    for (rc = mdb_cursor_get(acc, &k, &v, MDB_FIRST); rc == 0 && rv == 0;
         rc = mdb_cursor_get(acc, &k, &v, MDB_NEXT)) {
        uint8_t buf[ACC_TAR_MAX_LEN];
        if (k.mv_size != 8) {
            continue;
        }
        if (account_header(v.mv_data, v.mv_size, buf) != 0) {
            dropped++;
            continue;
        }
        uint64_t id = tvmw_get_be64(k.mv_data);
        size_t n = add_tariffs(rel, id, buf);
        rv = n == 0 ? TVMW_ESTORE : put(txn, d->tcx[EDGE_TCX_ACC], id, buf, n, true);
    }
    mdb_cursor_close(rel);
    mdb_cursor_close(acc);
    if (dropped > 0) {
        TVMW_LOG_WARN("tcindex", "%llu account records are not JSON objects; not indexed",
                      (unsigned long long)dropped);
    }
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        rv = TVMW_ESTORE;
    }
    return rv;
}

/* ---- update --------------------------------------------------------------------------- */

int edge_tcx_update(MDB_txn *txn, const struct edge_tcx_dbs *d, unsigned db, const uint8_t *key,
                    size_t key_len, const uint8_t *value, size_t value_len, bool loading)
{
    enum edge_tcx x;
    switch (db) {
    case EDGE_DB_ACCOUNTS:
        if (loading) {
            return 0; /* edge_tcx_load_finish, once the relations are in */
        }
        x = EDGE_TCX_ACC;
        break;
    case EDGE_DB_REL: {
        int rv = channel_relation(txn, d, key, key_len, value != NULL);
        return rv != 0 || loading ? rv : relation_changed(txn, d, key, key_len);
    }
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
    uint64_t id = tvmw_get_be64(key);
    if (value == NULL) {
        return del(txn, d->tcx[x], id);
    }
    uint8_t buf[CHAN_HEAD + EDGE_TCX_STREAM_MAX + KEY_HEAD + EDGE_TCX_SECRET_MAX + ACC_TAR_MAX_LEN];
    if (x == EDGE_TCX_ACC) {
        if (account_header(value, value_len, buf) != 0) {
            TVMW_LOG_WARN("tcindex", "account %llu: record is not a JSON object; not indexed",
                          (unsigned long long)id);
            return del(txn, d->tcx[x], id);
        }
        MDB_cursor *rel;
        if (mdb_cursor_open(txn, d->rel, &rel) != 0) {
            return TVMW_ESTORE;
        }
        size_t n = add_tariffs(rel, id, buf);
        mdb_cursor_close(rel);
        return n == 0 ? TVMW_ESTORE : put(txn, d->tcx[x], id, buf, n, false);
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        TVMW_LOG_WARN("tcindex", "db=%u id=%llu: record is not a JSON object; index entry dropped",
                      db, (unsigned long long)id);
        return del(txn, d->tcx[x], id);
    }
    size_t n = 0;
    int rv = 0;
    switch (x) {
    case EDGE_TCX_CHAN: {
        /* A channel put keeps the tariffs its entry lists (they come from
         * the relations); a new one outside a snapshot looks them up. */
        uint8_t base[CHAN_HEAD + EDGE_TCX_STREAM_MAX];
        uint64_t ids[EDGE_TCX_TARIFFS + 1];
        size_t bl = enc_channel(o, base), nt = 0;
        bool more = false;
        MDB_val k = {.mv_size = sizeof(id), .mv_data = &id}, v;
        struct edge_tcx_channel old;
        int rc = mdb_get(txn, d->tcx[EDGE_TCX_CHAN], &k, &v);
        if (rc == 0 && edge_tcx_channel_decode(v.mv_data, v.mv_size, &old) == 0) {
            more = old.tariffs_more;
            nt = old.n_tariffs;
            for (size_t i = 0; i < nt; i++) {
                ids[i] = tvmw_get_u64(old.tariffs + 8 * i);
            }
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            rv = TVMW_ESTORE;
        } else if (!loading && channel_tariffs_scan(txn, d, id, ids, &nt, &more) != 0) {
            rv = TVMW_ESTORE;
        }
        n = chan_with(base, bl, ids, nt, more, buf);
        break;
    }
    case EDGE_TCX_CLIENT:
        n = enc_client(o, buf);
        break;
    case EDGE_TCX_KEYS:
        if (enc_key(o, buf, &n) != 0) {
            TVMW_LOG_WARN("tcindex", "key %llu: unusable key record; it validates nothing",
                          (unsigned long long)id);
            rv = -1;
        }
        break;
    default:
        rv = -1;
        break;
    }
    json_decref(o);
    if (rv == TVMW_ESTORE) {
        return rv;
    }
    if (rv != 0) {
        return del(txn, d->tcx[x], id);
    }
    return put(txn, d->tcx[x], id, buf, n, loading);
}

int edge_tcx_account_json(const uint8_t *v, size_t len, uint8_t out[EDGE_TCX_ACC_LEN])
{
    json_t *o = json_loadb((const char *)v, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    enc_account(o, out);
    json_decref(o);
    return 0;
}

/* ---- decoders ------------------------------------------------------------------------- */

int edge_tcx_account_decode(const uint8_t *v, size_t len, struct edge_tcx_account *out)
{
    if (len < ACC_LEN || v[0] != ACC_VERSION || v[2] > EDGE_TCX_TARIFFS ||
        len != ACC_LEN + 8 * (size_t)v[2]) {
        return TVMW_ECORRUPT;
    }
    out->tariffs_more = (v[1] & ACC_TAR_MORE) != 0;
    out->n_tariffs = v[2];
    out->tariffs = v + ACC_LEN;
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
    if (len < CHAN_HEAD || v[0] != CHAN_VERSION || v[4] > EDGE_TCX_TARIFFS ||
        len != CHAN_HEAD + 8 * (size_t)v[4] + tvmw_get_u16(v + 2)) {
        return TVMW_ECORRUPT;
    }
    out->enabled = (v[1] & CHAN_ENABLED) != 0;
    out->tariffs_more = (v[1] & CHAN_TAR_MORE) != 0;
    out->client = tvmw_get_u64(v + 8);
    out->n_tariffs = v[4];
    out->tariffs = v + CHAN_HEAD;
    out->stream = v + CHAN_HEAD + 8 * (size_t)v[4];
    out->stream_len = tvmw_get_u16(v + 2);
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
    uint64_t kid = 0;
    if (key_len == KID_KEY_LEN) {
        memcpy(&kid, key, sizeof(kid));
    }
    if (key_len != KID_KEY_LEN || kid == 0 || kid > UINT16_MAX || len < KEY_HEAD ||
        v[0] != VERSION || tvmw_get_u16(v + 2) != len - KEY_HEAD ||
        len - KEY_HEAD > EDGE_TCX_SECRET_MAX) {
        return TVMW_ECORRUPT;
    }
    out->kid = (uint16_t)kid;
    out->active = (v[1] & KEY_IS_ACTIVE) != 0;
    out->secret = v + KEY_HEAD;
    out->secret_len = (unsigned)(len - KEY_HEAD);
    return 0;
}
