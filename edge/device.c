/*
 * The device API: dispatch, sessions, login, account, messages, devices,
 * registration and health. Channel, EPG and stream-URL calls are in
 * dchannels.c. See device.h and docs/device-api.md.
 */
#include "edge/device.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sign.h"
#include "edge/device_int.h"
#include "edge/follow.h"
#include "edge/journal.h"
#include "edge/proto.h"

#define PARAM_MAX_BYTES   256 /* abonement, password, device uid, ... */
#define REGISTER_WAIT_MS  5000
#define LAST_SEEN_SLOTS   4096
#define LAST_SEEN_HASH    8192 /* a power of two, twice the slots */
#define LAST_SEEN_FLUSH_S 60

/* Last-seen times are batched: one journal write per minute (or when the
 * table fills) instead of one raft entry per status poll. */
struct seen {
    uint64_t account, device, ms;
};

struct last_seen {
    pthread_mutex_t mu;
    uint64_t flushed_ms;
    unsigned n;
    uint16_t slot[LAST_SEEN_HASH]; /* open addressing by account: index + 1, 0 = free */
    struct seen e[LAST_SEEN_SLOTS];
};

/* ---- records ------------------------------------------------------------------------- */

int64_t rec_int(const json_t *o, const char *name, int64_t def)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    if (json_is_true(v)) {
        return 1;
    }
    if (json_is_false(v)) {
        return 0;
    }
    return def;
}

const char *rec_str(const json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return s ? s : "";
}

json_t *dm_get(struct dctx *c, unsigned db, uint64_t id)
{
    uint8_t key[8];
    const uint8_t *v;
    size_t len;
    tvmw_put_be64(key, id);
    if (id == 0 || edge_store_get(&c->r, db, key, 8, &v, &len) != 0) {
        return NULL;
    }
    json_t *o = json_loadb((const char *)v, len, 0, NULL);
    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *dm_get_own(struct dctx *c, unsigned db, uint64_t id)
{
    json_t *o = dm_get(c, db, id);
    if (o != NULL && (uint64_t)rec_int(o, "client_id", 0) != c->client_id) {
        json_decref(o);
        return NULL;
    }
    return o;
}

uint64_t dm_uniq(struct dctx *c, const char *index, const char *value)
{
    char key[EDGE_MAX_KEY_BYTES + 1];
    size_t klen = edge_uniq_key(index, c->client_id, value, key);
    const uint8_t *v;
    size_t len;
    if (klen == 0 || edge_store_get(&c->r, EDGE_DB_UNIQ, key, klen, &v, &len) != 0 || len != 8) {
        return 0;
    }
    return tvmw_get_be64(v);
}

static size_t rel_prefix(const char *name, uint64_t from, uint8_t *out)
{
    size_t n = strlen(name);
    memcpy(out, name, n);
    out[n] = '/';
    tvmw_put_be64(out + n + 1, from);
    return n + 9;
}

struct rel_arg {
    size_t prefix, n, max;
    uint64_t *ids;
};

static int rel_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct rel_arg *a = arg;
    (void)value;
    (void)value_len;
    if (key_len != a->prefix + 8) {
        return 0;
    }
    if (a->n == a->max) {
        return 1;
    }
    a->ids[a->n++] = tvmw_get_be64(key + a->prefix);
    return 0;
}

size_t dm_rel(struct dctx *c, const char *name, uint64_t from, uint64_t *ids, size_t max)
{
    uint8_t prefix[64];
    struct rel_arg a = {.prefix = rel_prefix(name, from, prefix), .max = max, .ids = ids};
    edge_store_scan(&c->r, EDGE_DB_REL, prefix, a.prefix, NULL, 0, rel_one, &a);
    return a.n;
}

static int rel_count(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                     size_t value_len)
{
    struct rel_arg *a = arg;
    (void)key;
    (void)value;
    (void)value_len;
    a->n += key_len == a->prefix + 8;
    return 0;
}

size_t dm_rel_count(struct dctx *c, const char *name, uint64_t from)
{
    uint8_t prefix[64];
    struct rel_arg a = {.prefix = rel_prefix(name, from, prefix)};
    edge_store_scan(&c->r, EDGE_DB_REL, prefix, a.prefix, NULL, 0, rel_count, &a);
    return a.n;
}

bool dm_rel_has(struct dctx *c, const char *name, uint64_t from, uint64_t to)
{
    uint8_t key[72];
    size_t n = rel_prefix(name, from, key);
    const uint8_t *v;
    size_t len;
    tvmw_put_be64(key + n, to);
    return edge_store_get(&c->r, EDGE_DB_REL, key, n + 8, &v, &len) == 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

size_t dm_account_tariffs(struct dctx *c, uint64_t *ids, size_t max)
{
    size_t n = dm_rel(c, "acc_tar", c->account_id, ids, max);
    uint64_t cust = (uint64_t)rec_int(c->account, "customer_id", 0);
    if (cust != 0 && n < max) {
        n += dm_rel(c, "cust_tar", cust, ids + n, max - n);
    }
    qsort(ids, n, sizeof(*ids), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k == 0 || ids[k - 1] != ids[i]) {
            ids[k++] = ids[i];
        }
    }
    return k;
}

/* ---- helpers -------------------------------------------------------------------------- */

const char *dctx_ip(struct dctx *c)
{
    return c->http->remote;
}

void *dctx_scratch(struct dctx *c, enum dscratch which, size_t size)
{
    void *p = pthread_getspecific(c->dev->scratch[which]);
    if (p == NULL && (p = calloc(1, size)) != NULL &&
        pthread_setspecific(c->dev->scratch[which], p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

void dctx_fail(struct dctx *c, int code, const char *message)
{
    dout_int(&c->o, "error", code);
    dout_str(&c->o, "error_message", message);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A parameter that counts as given: present, non-empty, bounded. */
const char *dctx_param(struct dctx *c, const char *name)
{
    const char *v = dreq_get(&c->q, name);
    return v != NULL && v[0] != '\0' && strlen(v) <= PARAM_MAX_BYTES ? v : NULL;
}

/* device_uid as §1.1a: "0" and empty mean none; the cookie is a fallback. */
const char *dctx_device_uid(struct dctx *c, char *buf, size_t cap)
{
    const char *v = dreq_get(&c->q, "device_uid");
    if (v == NULL) {
        v = dreq_cookie(&c->q, "device_uid", buf, cap);
    }
    if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0 || strlen(v) > 128) {
        return NULL;
    }
    return v;
}

/* The abonement as the spec types it: a number when it is one. */
void dctx_out_abonement(struct dctx *c, const char *name, const char *abon)
{
    size_t n = strlen(abon);
    if (n > 0 && n <= 15 && strspn(abon, "0123456789") == n && (abon[0] != '0' || n == 1)) {
        dout_int(&c->o, name, strtoll(abon, NULL, 10));
    } else {
        dout_str(&c->o, name, abon);
    }
}

void dctx_fmt_date(uint64_t ms, bool with_time, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, with_time ? "%Y-%m-%d %H:%M" : "%Y-%m-%d", &tm);
}

json_t *dctx_new_write(struct dctx *c, const char *op)
{
    return json_pack("{s:s, s:I, s:I, s:I}", "op", op, "client_id", (json_int_t)c->client_id,
                     "account_id", (json_int_t)c->account_id, "ms", (json_int_t)c->now_ms);
}

/* Queues w (stolen) for the control plane; false if the journal refused it. */
bool dctx_journal(struct dctx *c, json_t *w)
{
    int rv = w ? edge_journal_append(c->dev->journal, w) : -ENOMEM;
    json_decref(w);
    if (rv != 0) {
        atomic_fetch_add(&c->dev->journal_failed, 1);
        TVMW_LOG_WARN("device", "journal refused a write: %s", tvmw_strerror(rv));
        return false;
    }
    return true;
}

/* ---- device types and formats ------------------------------------------------------- */

static const char *const json_devices[] = {"android", "kodi", "pc", NULL};
static const char *const known_devices[] = {
    "android",          "android_stb", "dune", "eltex",    "tvip",
    "lg_netcast",       "lg_webos",    "mag",  "pc",       "sagemcom",
    "samsung_smart_tv", "tizen_tv",    "ios",  "wrt",      "amino",
    "imaqliq",          "kodi",        "vewd", "tbrowser", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++) {
        if (strcmp(*list, s) == 0) {
            return true;
        }
    }
    return false;
}

/* §1.1: XML for the known device types but android, kodi and pc; JSON for
 * those and for unknown ones; a client's settings.device_formats
 * {"mag": "json", ...} overrides. */
static bool wants_xml(const json_t *client, const char *device)
{
    const char *f = json_string_value(json_object_get(
        json_object_get(json_object_get(client, "settings"), "device_formats"), device));
    if (f != NULL) {
        return strcmp(f, "xml") == 0;
    }
    return in_list(known_devices, device) && !in_list(json_devices, device);
}

/* Device groups of the Billing API: 0 STB, 1 Smart TV, 2 mobile, 3 other. */
int dctx_device_group(const char *device)
{
    static const char *const stb[] = {"android_stb", "dune", "eltex", "tvip",    "mag",
                                      "sagemcom",    "wrt",  "amino", "imaqliq", NULL};
    static const char *const tv[] = {
        "lg_netcast", "lg_webos", "samsung_smart_tv", "tizen_tv", "vewd", "tbrowser", NULL};
    static const char *const mobile[] = {"android", "ios", NULL};
    return in_list(stb, device) ? 0 : in_list(tv, device) ? 1 : in_list(mobile, device) ? 2 : 3;
}

/* ---- client and session ------------------------------------------------------------- */

static bool load_client(struct dctx *c)
{
    int64_t id;
    if (!dreq_int(&c->q, "client_id", &id) || id <= 0) {
        return false;
    }
    c->client_id = (uint64_t)id;
    c->client = dm_get(c, EDGE_DB_CLIENTS, c->client_id);
    return c->client != NULL;
}

bool dctx_api_key_ok(struct dctx *c)
{
    const char *k = dreq_get(&c->q, "api_key");
    const char *want = rec_str(c->client, "api_key");
    return c->client != NULL && k != NULL && want[0] != '\0' && tvmw_secret_equal(k, want);
}

/* The session record of (account, session), NULL if none. */
static json_t *session_record(struct dctx *c, uint64_t account, uint64_t session)
{
    uint8_t key[16];
    const uint8_t *v;
    size_t len;
    tvmw_put_be64(key, account);
    tvmw_put_be64(key + 8, session);
    if (edge_store_get(&c->r, EDGE_DB_DSESS, key, 16, &v, &len) != 0) {
        return NULL;
    }
    return json_loadb((const char *)v, len, 0, NULL);
}

/* A valid authkey of an existing account of this client, issued after
 * its last "log out everywhere" and not closed or evicted since. */
static bool load_session(struct dctx *c)
{
    char cookie[EDGE_AUTHKEY_LEN + 2];
    const char *k = dreq_get(&c->q, "authkey");
    if (k == NULL || k[0] == '\0') {
        k = dreq_cookie(&c->q, "authkey", cookie, sizeof(cookie));
    }
    const struct edge_keyring *ring = edge_keyring(&c->r);
    if (k == NULL || edge_authkey_check(ring, k, &c->ak) != 0) {
        return false;
    }
    int64_t cid;
    const char *given_client = dreq_get(&c->q, "client_id");
    if (given_client != NULL && given_client[0] != '\0' &&
        (!dreq_int(&c->q, "client_id", &cid) || (uint64_t)cid != c->ak.client)) {
        return false;
    }
    if (c->client == NULL) {
        c->client_id = c->ak.client;
        c->client = dm_get(c, EDGE_DB_CLIENTS, c->client_id);
        if (c->client == NULL) {
            return false;
        }
    }
    c->account = dm_get_own(c, EDGE_DB_ACCOUNTS, c->ak.account);
    if (c->account == NULL) {
        return false;
    }
    if (c->ak.issued_ms < (uint64_t)rec_int(c->account, "logout_before_ms", 0)) {
        /* Deactivation ends the sessions; /account/status/ still tells
         * such a device why (status 2) rather than "not logged in". */
        c->deactivated = !rec_int(c->account, "active", 1);
        return false;
    }
    c->account_id = c->ak.account;
    json_t *s = session_record(c, c->ak.account, c->ak.session);
    bool revoked = (s != NULL && rec_int(s, "revoked_ms", 0) != 0) ||
                   dlogin_recent_revoked(c->dev, c->ak.account, c->ak.session, c->now_ms);
    json_decref(s);
    if (revoked) {
        return false;
    }
    memcpy(c->authkey, k, EDGE_AUTHKEY_LEN + 1);
    return true;
}

const char *dctx_status_reason(const json_t *acc)
{
    const char *r = rec_str(acc, "status_reason");
    if (r[0] != '\0') {
        return r;
    }
    return rec_int(acc, "active", 1) ? "ACTIVE" : "INACTIVE";
}

/* ---- last seen ----------------------------------------------------------------------- */

unsigned dm_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (unsigned)x;
}

/* Journals a batch of last-seen times (one write; e is freed). */
static void last_seen_send(struct edge_device *d, struct seen *e, unsigned n, uint64_t now)
{
    json_t *items = json_array();
    for (unsigned i = 0; i < n; i++) {
        json_array_append_new(items, json_pack("{s:I, s:I, s:I}", "account_id",
                                               (json_int_t)e[i].account, "device_id",
                                               (json_int_t)e[i].device, "ms", (json_int_t)e[i].ms));
    }
    free(e);
    /* client_id 0: items of several clients; the control plane checks each
     * account's existence, and last-seen times carry no authority. */
    json_t *w = json_pack("{s:s, s:I, s:I, s:o}", "op", "last_seen", "client_id", (json_int_t)0,
                          "ms", (json_int_t)now, "items", items);
    if (w == NULL || edge_journal_append(d->journal, w) != 0) {
        atomic_fetch_add(&d->journal_failed, 1);
    }
    json_decref(w);
}

/* Takes the table's entries out (a copy the caller sends); under ls->mu. */
static struct seen *last_seen_take_locked(struct last_seen *ls, uint64_t now, unsigned *n)
{
    struct seen *copy = NULL;
    *n = 0;
    if (ls->n > 0 && (copy = malloc(ls->n * sizeof(*copy))) != NULL) {
        memcpy(copy, ls->e, ls->n * sizeof(*copy));
        *n = ls->n;
    }
    ls->n = 0;
    memset(ls->slot, 0, sizeof(ls->slot));
    ls->flushed_ms = now;
    return copy;
}

static void last_seen(struct dctx *c, uint64_t device_id)
{
    struct last_seen *ls = c->dev->seen;
    struct seen *out = NULL;
    unsigned n = 0;
    pthread_mutex_lock(&ls->mu);
    if (ls->n == LAST_SEEN_SLOTS) {
        out = last_seen_take_locked(ls, c->now_ms, &n);
    }
    unsigned h = dm_hash_u64(c->account_id) & (LAST_SEEN_HASH - 1);
    while (ls->slot[h] != 0 && ls->e[ls->slot[h] - 1].account != c->account_id) {
        h = (h + 1) & (LAST_SEEN_HASH - 1);
    }
    if (ls->slot[h] == 0) {
        ls->slot[h] = (uint16_t)(++ls->n);
    }
    ls->e[ls->slot[h] - 1] = (struct seen){c->account_id, device_id, c->now_ms};
    if (out == NULL && c->now_ms - ls->flushed_ms >= LAST_SEEN_FLUSH_S * 1000) {
        out = last_seen_take_locked(ls, c->now_ms, &n);
    }
    pthread_mutex_unlock(&ls->mu);
    if (n > 0) {
        last_seen_send(c->dev, out, n, c->now_ms); /* an fsync: outside the lock */
    }
}

/* ---- session-bound calls ---------------------------------------------------------------- */

static void dh_logout(struct dctx *c)
{
    json_t *w = dctx_new_write(c, "session_close");
    json_object_set_new(w, "sess_id", json_sprintf("%016" PRIx64, c->ak.session));
    if (!dctx_journal(c, w)) {
        dctx_fail(c, 1, "Logout could not be saved, try again");
        return;
    }
    dlogin_recent_put(c->dev, c->account_id, c->ak.session, NULL, c->ak.basic, c->now_ms, true);
    dctx_fail(c, 0, "");
    snprintf(c->cookie[0], sizeof(c->cookie[0]),
             "authkey=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
}

struct msg_arg {
    struct dctx *c;
    bool any_unread;
    uint64_t urgent_id, urgent_ms;
};

static void scan_messages(struct dctx *c, struct msg_arg *a)
{
    uint64_t ids[DE_MAX_DEVICES];
    size_t n = dm_rel(c, "acc_msg", c->account_id, ids, DE_MAX_DEVICES);
    for (size_t i = 0; i < n; i++) {
        json_t *m = dm_get(c, EDGE_DB_MESSAGES, ids[i]);
        if (m != NULL && !rec_int(m, "was_read", 0)) {
            a->any_unread = true;
            uint64_t ms = (uint64_t)rec_int(m, "created_ms", 0);
            if (rec_int(m, "urgent", 0) && (a->urgent_id == 0 || ms >= a->urgent_ms)) {
                a->urgent_id = ids[i];
                a->urgent_ms = ms;
            }
        }
        json_decref(m);
    }
}

static void dh_account_status(struct dctx *c)
{
    if (c->account == NULL || (!c->have_session && !c->deactivated)) {
        /* §5: no session is status 1 with error 0. */
        dout_int(&c->o, "error", 0);
        dout_str(&c->o, "error_message", "");
        dout_int(&c->o, "status", 1);
        dout_str(&c->o, "status_reason", "");
        dout_int(&c->o, "is_active", 0);
        dout_int(&c->o, "utc_time", (int64_t)(c->now_ms / 1000));
        dout_int(&c->o, "has_new_messages", 0);
        dout_obj_begin(&c->o, "message");
        dout_obj_end(&c->o);
        dout_obj_begin(&c->o, "command");
        dout_obj_end(&c->o);
        dout_int(&c->o, "channel_list_changed", 0);
        return;
    }
    bool active = rec_int(c->account, "active", 1) != 0;
    struct msg_arg ma = {.c = c};
    scan_messages(c, &ma);
    dout_int(&c->o, "error", 0);
    dout_str(&c->o, "error_message", "");
    dout_int(&c->o, "status", active ? 0 : 2);
    dout_str(&c->o, "status_reason", dctx_status_reason(c->account));
    dout_int(&c->o, "is_active", active);
    dout_int(&c->o, "utc_time", (int64_t)(c->now_ms / 1000));
    dout_int(&c->o, "has_new_messages", ma.any_unread);
    dout_obj_begin(&c->o, "message");
    json_t *m = ma.urgent_id ? dm_get(c, EDGE_DB_MESSAGES, ma.urgent_id) : NULL;
    if (m != NULL) {
        dout_str(&c->o, "subject", rec_str(m, "subject"));
        dout_str(&c->o, "text", rec_str(m, "text"));
        dout_int(&c->o, "no_confirmation", 0);
    }
    json_decref(m);
    dout_obj_end(&c->o);
    dout_obj_begin(&c->o, "command");
    dout_obj_end(&c->o);
    dout_int(&c->o, "channel_list_changed", 0);
    if (dreq_flag(&c->q, "with_tariffs", 0)) {
        uint64_t ids[DE_MAX_TARIFFS];
        size_t n = dm_account_tariffs(c, ids, DE_MAX_TARIFFS);
        dout_list_begin(&c->o, "tariff_ids");
        for (size_t i = 0; i < n; i++) {
            dout_int(&c->o, "id", (int64_t)ids[i]);
        }
        dout_list_end(&c->o);
    }
    uint64_t dev = 0;
    char uidbuf[160];
    const char *uid = dctx_device_uid(c, uidbuf, sizeof(uidbuf));
    if (uid != NULL && c->ak.basic) {
        dev = dm_uniq(c, "dev_uid", uid);
    }
    if (c->have_session) {
        last_seen(c, dev);
    }
}

static void money_text(int64_t cents, char out[32])
{
    uint64_t a = (uint64_t)(cents < 0 ? -cents : cents);
    snprintf(out, 32, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", a / 100, a % 100);
}

static void dh_customer_info(struct dctx *c)
{
    uint64_t cust_id = (uint64_t)rec_int(c->account, "customer_id", 0);
    json_t *cust = dm_get_own(c, EDGE_DB_CUSTOMERS, cust_id);
    char bal[32];
    int64_t cents = rec_int(cust, "balance_cents", 0);
    money_text(cents, bal);
    dout_int(&c->o, "error", 0);
    dout_str(&c->o, "error_message", "");
    dout_str(&c->o, "firstname", "");
    dout_str(&c->o, "lastname", "");
    dout_str(&c->o, "balance", bal);
    dout_str(&c->o, "email", "");
    dout_str(&c->o, "mobile_phone_number", "");
    dout_int(&c->o, "id_for_payment", (int64_t)cust_id);
    dout_str(&c->o, "abonement", rec_str(c->account, "abonement"));
    dout_obj_begin(&c->o, "payments");
    dout_list_begin(&c->o, "btv");
    dout_list_end(&c->o);
    dout_list_begin(&c->o, "vod");
    dout_list_end(&c->o);
    dout_list_begin(&c->o, "other");
    dout_list_end(&c->o);
    dout_obj_end(&c->o);
    uint64_t ids[DE_MAX_TARIFFS];
    size_t n = dm_account_tariffs(c, ids, DE_MAX_TARIFFS);
    int64_t monthly = 0;
    dout_list_begin(&c->o, "tariffs");
    for (size_t i = 0; i < n; i++) {
        json_t *t = dm_get_own(c, EDGE_DB_TARIFFS, ids[i]);
        if (t == NULL) {
            continue;
        }
        char price[32];
        money_text(rec_int(t, "price_cents", 0), price);
        monthly += rec_int(t, "price_cents", 0);
        dout_item_begin(&c->o);
        dout_int(&c->o, "id", (int64_t)ids[i]);
        dout_int(&c->o, "is_virtual", 0);
        dout_str(&c->o, "name", rec_str(t, "name"));
        dout_str(&c->o, "description", rec_str(t, "description"));
        dout_str(&c->o, "price", price);
        dout_str(&c->o, "price_after_activation", price);
        dout_str(&c->o, "period", rec_str(t, "period"));
        dout_int(&c->o, "is_assigned", 1);
        dout_str(&c->o, "subscription_end_date", "");
        dout_int(&c->o, "channels_count", (int64_t)dm_rel_count(c, "tar_chan", ids[i]));
        dout_int(&c->o, "basic_tariff_priority", rec_int(t, "basic_tariff_priority", 0));
        dout_int(&c->o, "is_periodical", rec_int(t, "price_cents", 0) > 0);
        dout_item_end(&c->o);
        json_decref(t);
    }
    dout_list_end(&c->o);
    dout_list_begin(&c->o, "subscriptions");
    dout_list_end(&c->o);
    char debt[32], pay[32];
    money_text(cents < 0 ? -cents : 0, debt);
    money_text(monthly, pay);
    dout_str(&c->o, "payment_sum", pay);
    dout_str(&c->o, "current_debt_amount", debt);
    dout_int(&c->o, "activation_days_left", 0);
    json_decref(cust);
}

/* Adds an id list parameter to w under key when given. */
static void id_param(struct dctx *c, json_t *w, const char *param, const char *key)
{
    int64_t v;
    if (dreq_int(&c->q, param, &v) && v > 0) {
        json_object_set_new(w, key, json_integer(v));
    }
}

static void dh_settings_save(struct dctx *c)
{
    json_t *w = dctx_new_write(c, "settings_save");
    int64_t v;
    const char *pc = dctx_param(c, "parent_code");
    if (pc != NULL) {
        if (strspn(pc, "0123456789") != strlen(pc) || strlen(pc) > 8) {
            json_decref(w);
            dctx_fail(c, 1, "parent_code must be digits");
            return;
        }
        json_object_set_new(w, "parent_code", json_integer(atoi(pc)));
    }
    if (dreq_int(&c->q, "use_timeshift", &v) && (v == 0 || v == 1)) {
        json_object_set_new(w, "use_timeshift", json_integer(v));
    }
    if (dreq_int(&c->q, "preferred_timeshift_offset", &v) && v >= -24 && v <= 24) {
        json_object_set_new(w, "preferred_timeshift_offset", json_integer(v));
    }
    if (dreq_int(&c->q, "data_center_id", &v)) {
        json_object_set_new(w, "data_center_id", json_integer(v));
    }
    id_param(c, w, "favorite_channel", "favorite_add");
    id_param(c, w, "unfavorite_channel", "favorite_remove");
    id_param(c, w, "parent_lock_channel", "lock_add");
    id_param(c, w, "parent_unlock_channel", "lock_remove");
    id_param(c, w, "last_channel", "last_channel");
    const char *sort = dreq_get(&c->q, "channels_sort");
    if (sort != NULL && sort[0] != '\0') {
        json_t *arr = json_loads(sort, 0, NULL);
        if (!json_is_array(arr) || json_array_size(arr) > 5000) {
            json_decref(arr);
            json_decref(w);
            dctx_fail(c, 1, "channels_sort must be a JSON array");
            return;
        }
        json_t *order = json_array(), *hidden = json_array(), *fav = json_array(),
               *lock = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            json_int_t id = json_integer_value(json_object_get(e, "id"));
            if (id <= 0) {
                continue;
            }
            json_array_append_new(order, json_integer(id));
            if (rec_int(e, "is_hidden", 0)) {
                json_array_append_new(hidden, json_integer(id));
            }
            if (rec_int(e, "is_favorited", 0)) {
                json_array_append_new(fav, json_integer(id));
            }
            if (rec_int(e, "is_parent_control", 0)) {
                json_array_append_new(lock, json_integer(id));
            }
        }
        json_decref(arr);
        json_object_set_new(w, "sort", order);
        json_object_set_new(w, "hidden", hidden);
        json_object_set_new(w, "favorites", fav);
        json_object_set_new(w, "parent_locked", lock);
    }
    if (!dctx_journal(c, w)) {
        dctx_fail(c, 1, "Settings were not saved");
        return;
    }
    dctx_fail(c, 0, "");
}

/* The message of this account named by the uuid parameter, or NULL. */
static json_t *own_message(struct dctx *c, uint64_t *id)
{
    int64_t v;
    if (!dreq_int(&c->q, "uuid", &v) || v <= 0 ||
        !dm_rel_has(c, "acc_msg", c->account_id, (uint64_t)v)) {
        return NULL;
    }
    *id = (uint64_t)v;
    return dm_get(c, EDGE_DB_MESSAGES, *id);
}

static void out_message_head(struct dctx *c, uint64_t id, const json_t *m)
{
    char uuid[24];
    snprintf(uuid, sizeof(uuid), "%" PRIu64, id);
    dout_str(&c->o, "uuid", uuid);
    dout_str(&c->o, "subject", rec_str(m, "subject"));
}

static void out_message_tail(struct dctx *c, const json_t *m, bool was_read)
{
    uint64_t ms = (uint64_t)rec_int(m, "created_ms", 0);
    if (c->xml) {
        char d[32];
        dctx_fmt_date(ms, true, d);
        dout_str(&c->o, "created_at", d);
    } else {
        dout_int(&c->o, "created_at", (int64_t)(ms / 1000));
    }
    dout_int(&c->o, "urgent", rec_int(m, "urgent", 0));
    dout_int(&c->o, "was_read", was_read);
}

static void dh_message_list(struct dctx *c)
{
    uint64_t ids[DE_MAX_DEVICES];
    size_t n = dm_rel(c, "acc_msg", c->account_id, ids, DE_MAX_DEVICES);
    dctx_fail(c, 0, "");
    dout_list_begin(&c->o, "messages");
    for (size_t i = n; i-- > 0;) { /* newest first */
        json_t *m = dm_get(c, EDGE_DB_MESSAGES, ids[i]);
        if (m != NULL) {
            dout_item_begin(&c->o);
            out_message_head(c, ids[i], m);
            out_message_tail(c, m, rec_int(m, "was_read", 0));
            dout_item_end(&c->o);
        }
        json_decref(m);
    }
    dout_list_end(&c->o);
}

static void dh_message_detail(struct dctx *c)
{
    uint64_t id;
    json_t *m = own_message(c, &id);
    if (m == NULL) {
        dctx_fail(c, 1, "Message not found");
        return;
    }
    json_t *w = dctx_new_write(c, "message_read");
    json_object_set_new(w, "message_id", json_integer((json_int_t)id));
    dctx_journal(c, w);
    dctx_fail(c, 0, "");
    out_message_head(c, id, m);
    dout_str(&c->o, "text", rec_str(m, "text"));
    dout_int(&c->o, "no_confirmation", 0);
    out_message_tail(c, m, true);
    json_decref(m);
}

static void dh_message_delete(struct dctx *c)
{
    const char *uuid = dreq_get(&c->q, "uuid");
    json_t *w = dctx_new_write(c, "message_delete");
    if (uuid != NULL && strcmp(uuid, "all") == 0) {
        json_object_set_new(w, "message_id", json_string("all"));
    } else {
        uint64_t id;
        json_t *m = own_message(c, &id);
        if (m == NULL) {
            json_decref(w);
            dctx_fail(c, 1, "Message not found");
            return;
        }
        json_decref(m);
        json_object_set_new(w, "message_id", json_integer((json_int_t)id));
    }
    if (!dctx_journal(c, w)) {
        dctx_fail(c, 1, "Message was not deleted, try again");
        return;
    }
    dctx_fail(c, 0, "");
}

static void dh_device_list(struct dctx *c)
{
    dctx_fail(c, 0, "");
    dctx_out_devices(c, false);
}

static void dh_device_delete(struct dctx *c)
{
    int64_t id;
    if (!dreq_int(&c->q, "id", &id) || id <= 0 ||
        !dm_rel_has(c, "acc_dev", c->account_id, (uint64_t)id)) {
        dctx_fail(c, 1, "Device not found");
        return;
    }
    json_t *w = dctx_new_write(c, "device_delete");
    json_object_set_new(w, "device_id", json_integer(id));
    if (!dctx_journal(c, w)) {
        dctx_fail(c, 1, "Device was not deleted, try again");
        return;
    }
    dctx_fail(c, 0, "");
}

/* ---- api_key calls -------------------------------------------------------------------------- */

static void dh_device_exists(struct dctx *c)
{
    char uidbuf[160];
    const char *uid = dctx_device_uid(c, uidbuf, sizeof(uidbuf));
    if (uid == NULL) {
        dctx_fail(c, 1, "device_uid is required");
        return;
    }
    json_t *dev = dm_get_own(c, EDGE_DB_DEVICES, dm_uniq(c, "dev_uid", uid));
    json_t *acc =
        dev ? dm_get_own(c, EDGE_DB_ACCOUNTS, (uint64_t)rec_int(dev, "account_id", 0)) : NULL;
    if (acc == NULL) {
        json_decref(dev);
        dctx_fail(c, 2, "Device not found");
        return;
    }
    dctx_fail(c, 0, "");
    if (!rec_int(acc, "allow_login_by_abonement", 0)) {
        dout_str(&c->o, "abonement", rec_str(acc, "abonement"));
    }
    dout_str(&c->o, "mobile_phone", "");
    dout_str(&c->o, "phone_number_1", "");
    dout_str(&c->o, "phone_number_2", "");
    dout_str(&c->o, "email", "");
    dout_str(&c->o, "ext_id", "");
    json_decref(acc);
    json_decref(dev);
}

static void dh_register(struct dctx *c)
{
    const json_t *settings = json_object_get(c->client, "settings");
    if (!rec_int(settings, "registration_enabled", 0)) {
        dctx_fail(c, 2, "Registration is disabled");
        return;
    }
    char uidbuf[160];
    const char *uid = dctx_device_uid(c, uidbuf, sizeof(uidbuf));
    const char *phone = dctx_param(c, "mobile_phone_number");
    if (uid == NULL && phone == NULL) {
        dctx_fail(c, 7, "mobile_phone_number or device_uid is required");
        return;
    }
    if (phone != NULL && (strlen(phone) > 20 || strspn(phone, "+0123456789") != strlen(phone))) {
        dctx_fail(c, 5, "Bad phone number");
        return;
    }
    /* The clear password exists only in this answer (docs/device-api.md). */
    char pw[16], salt[33], hash[65];
    const char *given_pw = dctx_param(c, "password");
    uint8_t rnd[20];
    RAND_bytes(rnd, sizeof(rnd));
    if (given_pw != NULL && strlen(given_pw) <= 64) {
        snprintf(pw, sizeof(pw), "%.15s", given_pw);
    } else {
        snprintf(pw, sizeof(pw), "%06u", tvmw_get_be32(rnd) % 1000000u);
    }
    tvmw_hex_encode(rnd + 4, 16, salt);
    tvmw_password_hash(salt, pw, hash);
    json_t *w = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "op", "account_register", "client_id",
                          (json_int_t)c->client_id, "ms", (json_int_t)c->now_ms, "password_hash",
                          hash, "password_salt", salt, "device", c->device);
    if (uid != NULL) {
        json_object_set_new(w, "device_uid", json_string(uid));
    }
    if (phone != NULL) {
        json_object_set_new(w, "mobile_phone_number", json_string(phone));
    }
    if (dctx_param(c, "device_model") != NULL) {
        json_object_set_new(w, "device_model", json_string(dctx_param(c, "device_model")));
    }
    /* The call waits for the control plane: one at a time, so that
     * registrations never hold more than one of the pool's threads. */
    json_t *res = NULL;
    int rv = -EBUSY;
    if (!atomic_exchange(&c->dev->registering, true)) {
        rv = edge_journal_call(c->dev->journal, w, REGISTER_WAIT_MS, &res);
        atomic_store(&c->dev->registering, false);
    }
    json_decref(w);
    if (rv != 0 || !json_is_object(res)) {
        json_decref(res);
        dctx_fail(c, 1, "Registration is unavailable, try again later");
        return;
    }
    int64_t err = rec_int(res, "error", 1);
    if (err != 0) {
        dctx_fail(c, err == 6 ? 6 : err == 2 ? 2 : 1, rec_str(res, "message"));
        json_decref(res);
        return;
    }
    /* Compact order "abonement":X,"password":Y is what clients read (§1.1a). */
    dout_int(&c->o, "error", 0);
    dout_str(&c->o, "error_message", "");
    dctx_out_abonement(c, "abonement", rec_str(res, "abonement"));
    dout_str(&c->o, "password", pw);
    dout_str(&c->o, "captcha_url", "");
    dout_str(&c->o, "confirmation_phone", "");
    json_decref(res);
}

/* ---- health --------------------------------------------------------------------------------- */

static void dh_health(struct dctx *c)
{
    struct edge_follow_status st;
    edge_follow_status(c->dev->follow, &st);
    dout_int(&c->o, "error", 0);
    dout_num(&c->o, "usage", 0);
    dout_int(&c->o, "alive", st.has_state);
    if (dreq_flag(&c->q, "check_db_conn", 0)) {
        dout_list_begin(&c->o, "connection_errors");
        if (st.stale) {
            dout_str(&c->o, "e", "control plane unreachable; serving the last state");
        }
        dout_list_end(&c->o);
    }
    dout_list_begin(&c->o, "reserved_server_addresses");
    for (unsigned i = 0; i < c->dev->conf->n_edges; i++) {
        if (&c->dev->conf->edges[i] != c->dev->self) {
            dout_str(&c->o, "a", c->dev->conf->edges[i].http_address);
        }
    }
    dout_list_end(&c->o);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

enum auth { AUTH_NONE, AUTH_SESSION, AUTH_OPTIONAL, AUTH_API_KEY };

struct route {
    const char *path;
    void (*fn)(struct dctx *c);
    enum auth auth;
};

static const struct route routes[] = {
    {"login", dh_login, AUTH_NONE}, /* checks its own api_key: error 4 */
    {"logout", dh_logout, AUTH_SESSION},
    {"account/status", dh_account_status, AUTH_OPTIONAL},
    {"channel/list", dh_channel_list, AUTH_SESSION},
    {"category/list", dh_category_list, AUTH_SESSION},
    {"noauth/category/list", dh_category_list, AUTH_API_KEY},
    {"program/list", dh_program_list, AUTH_SESSION},
    {"noauth/program/list", dh_program_list, AUTH_API_KEY},
    {"channel/url", dh_channel_url, AUTH_SESSION},
    {"program/url", dh_program_url, AUTH_SESSION},
    {"customer/info", dh_customer_info, AUTH_SESSION},
    {"settings/save", dh_settings_save, AUTH_SESSION},
    {"message/list", dh_message_list, AUTH_SESSION},
    {"message/detail", dh_message_detail, AUTH_SESSION},
    {"message/delete", dh_message_delete, AUTH_SESSION},
    {"customer/device/list", dh_device_list, AUTH_SESSION},
    {"customer/device/delete", dh_device_delete, AUTH_SESSION},
    {"noauth/device/exists", dh_device_exists, AUTH_API_KEY},
    {"account/register", dh_register, AUTH_API_KEY},
    {"health/check", dh_health, AUTH_NONE},
};

/* The route of a path under either prefix, with or without the final
 * slash; NULL if the path is not the device API's. *known tells an
 * unknown method of the API from a path outside it. */
static const struct route *find_route(const char *path, bool *ours)
{
    static const char *const prefixes[] = {"/tvmiddleware/api/", "/api/tvmiddleware/api/"};
    const char *rest = NULL;
    for (size_t i = 0; i < 2 && rest == NULL; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(path, prefixes[i], n) == 0) {
            rest = path + n;
        } else if (strncmp(path, prefixes[i], n - 1) == 0 && path[n - 1] == '\0') {
            rest = "";
        }
    }
    *ours = rest != NULL;
    if (rest == NULL) {
        return NULL;
    }
    size_t len = strlen(rest);
    if (len > 0 && rest[len - 1] == '/') {
        len--;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strlen(routes[i].path) == len && strncmp(routes[i].path, rest, len) == 0) {
            return &routes[i];
        }
    }
    return NULL;
}

static void reply(struct dctx *c)
{
    const char *hdrs[12];
    unsigned h = 0;
    for (int i = 0; i < 2; i++) {
        if (c->cookie[i][0] != '\0') {
            hdrs[h++] = "Set-Cookie";
            hdrs[h++] = c->cookie[i];
        }
    }
    if (c->location != NULL) {
        hdrs[h++] = "Location";
        hdrs[h++] = c->location;
    }
    if (c->raw_type != NULL && c->raw_encoding != NULL) {
        hdrs[h++] = "Content-Encoding";
        hdrs[h++] = c->raw_encoding;
        hdrs[h++] = "Vary";
        hdrs[h++] = "Accept-Encoding";
    }
    hdrs[h] = NULL;
    if (c->raw_type != NULL && c->raw.data != NULL) {
        /* exports: handed over, not copied (a guide is tens of MiB) */
        size_t len;
        char *body = tvmw_buf_detach(&c->raw, &len);
        char *fit = realloc(body, len + 1); /* the buffer grew by doubling */
        body = fit ? fit : body;
        tvmw_http_reply_take(c->http, c->raw_status ? c->raw_status : 200, c->raw_type, body, len,
                             hdrs);
        return;
    }
    if (c->raw_type != NULL) {
        tvmw_http_reply(c->http, c->raw_status ? c->raw_status : 200, c->raw_type, "", 0, hdrs);
        return;
    }
    if (dout_finish(&c->o) != 0) {
        tvmw_http_reply_error(c->http, 500, "internal", "out of memory");
        return;
    }
    tvmw_http_reply(c->http, c->location ? 302 : 200,
                    c->xml ? "application/xml; charset=utf-8" : "application/json; charset=utf-8",
                    c->o.b.data, c->o.b.len, hdrs);
}

bool edge_device_handle(struct edge_device *d, struct tvmw_http_req *req)
{
    bool ours;
    const struct route *rt = find_route(req->path, &ours);
    const char *label = NULL;
    dctx_handler_fn other = ours ? NULL : dexport_find(req->path, &label);
    if (!ours && other == NULL) {
        return false;
    }
    req->route = rt ? rt->path : other ? label : "device_unknown";
    if (rt == NULL && other == NULL) {
        tvmw_http_reply_error(req, 404, "not_found", "no device API method %s", req->path);
        return true;
    }
    static _Thread_local struct dctx ctx;
    struct dctx *c = &ctx;
    memset(c, 0, sizeof(*c));
    c->dev = d;
    c->http = req;
    c->now_ms = wall_ms();
    if (dreq_parse(&c->q, req) != 0) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return true;
    }
    if (edge_store_read_begin(d->store, &c->r) != 0) {
        dreq_close(&c->q);
        tvmw_http_reply_error(req, 503, "no_state", "the edge has no state yet");
        return true;
    }
    const char *dev = dreq_get(&c->q, "device");
    c->device = dev != NULL && strlen(dev) <= 64 ? dev : "";
    tvmw_buf_init(&c->raw, 0);
    if (other != NULL) {
        dout_init(&c->o, false);
        other(c);
        goto answer;
    }
    bool have_client = load_client(c);
    bool have_session =
        rt->auth == AUTH_SESSION || rt->auth == AUTH_OPTIONAL ? load_session(c) : false;
    c->xml = wants_xml(c->client, c->device);
    dout_init(&c->o, c->xml);
    if (rt->auth == AUTH_SESSION && !have_session) {
        atomic_fetch_add(&d->sessions_refused, 1);
        dctx_fail(c, DE_NO_SESSION, "Authorization required");
    } else if (rt->auth == AUTH_API_KEY && (!have_client || !dctx_api_key_ok(c))) {
        dctx_fail(c, DE_NO_SESSION, "Wrong client_id or api_key");
    } else {
        c->have_session = have_session;
        rt->fn(c);
    }
answer:
    reply(c);
    edge_store_read_end(d->store, &c->r);
    dout_close(&c->o);
    dreq_close(&c->q);
    json_decref(c->client);
    json_decref(c->account);
    free(c->location);
    tvmw_buf_close(&c->raw);
    return true;
}

int edge_device_new(const struct edge_device_opts *opts, struct edge_device **out)
{
    struct edge_device *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->seen = calloc(1, sizeof(*d->seen))) == NULL ||
        dlogin_recent_new(&d->recent) != 0) {
        if (d != NULL) {
            free(d->seen);
        }
        free(d);
        return -ENOMEM;
    }
    for (int i = 0; i < DS_N; i++) {
        pthread_key_create(&d->scratch[i], i == DS_CHAN_CACHE ? dchannels_cache_free : free);
    }
    d->conf = opts->conf;
    d->self = opts->self;
    d->store = opts->store;
    d->follow = opts->follow;
    d->journal = opts->journal;
    pthread_mutex_init(&d->seen->mu, NULL);
    d->seen->flushed_ms = wall_ms();
    *out = d;
    return 0;
}

void edge_device_free(struct edge_device *d)
{
    if (d == NULL) {
        return;
    }
    unsigned n;
    struct seen *rest = last_seen_take_locked(d->seen, wall_ms(), &n);
    if (n > 0) {
        last_seen_send(d, rest, n, wall_ms());
    }
    pthread_mutex_destroy(&d->seen->mu);
    free(d->seen);
    dlogin_recent_free(d->recent);
    for (int i = 0; i < DS_N; i++) {
        pthread_key_delete(d->scratch[i]);
    }
    free(d);
}

void edge_device_metrics(struct edge_device *d, struct tvmw_buf *out)
{
    tvmw_metric_write(out, "tvmw_edge_device_logins_total", "counter",
                      "Device logins that created a session.", (double)d->logins_ok);
    tvmw_metric_write(out, "tvmw_edge_device_logins_refused_total", "counter",
                      "Device logins refused (see the log for the reason).",
                      (double)d->logins_refused);
    tvmw_metric_write(out, "tvmw_edge_device_sessions_refused_total", "counter",
                      "Session-bound calls without a valid session (error 403).",
                      (double)d->sessions_refused);
    tvmw_metric_write(out, "tvmw_edge_device_journal_refused_total", "counter",
                      "Device writes the journal refused (full or failing).",
                      (double)d->journal_failed);
    struct edge_journal_status js;
    edge_journal_status(d->journal, &js);
    tvmw_metric_write(out, "tvmw_edge_journal_pending", "gauge",
                      "Device writes waiting for the control plane.", (double)js.pending);
    tvmw_metric_write(out, "tvmw_edge_journal_appended_total", "counter",
                      "Device writes journaled.", (double)js.appended_total);
    tvmw_metric_write(out, "tvmw_edge_journal_sent_total", "counter",
                      "Device writes the control plane answered.", (double)js.sent_total);
    tvmw_metric_write(out, "tvmw_edge_journal_failed_total", "counter",
                      "Device writes the control plane refused for good.", (double)js.failed_total);
    tvmw_metric_write(out, "tvmw_edge_journal_dropped_total", "counter",
                      "Device writes refused because the journal was full.",
                      (double)js.dropped_total);
    tvmw_metric_write(out, "tvmw_edge_journal_retries_total", "counter",
                      "Journal batches sent again.", (double)js.retries_total);
}
