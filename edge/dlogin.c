/*
 * Device API: login (shared/spec/device-api.md §3) and the session slots
 * it takes, with the per-edge overlay of recent sessions. See
 * docs/device-api.md "Sessions and the authkey".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "common/bytes.h"
#include "common/log.h"
#include "common/sign.h"
#include "edge/device_int.h"
#include "edge/proto.h"

#define MAX_SESSIONS_SEEN 1024

/* Sessions this edge opened or ended lately, until the feed brings them
 * back: two logins at one edge then count each other, and a session this
 * edge evicted or closed stops working here at once, also while the
 * control plane is unreachable. A ring: the oldest entries give way. */
#define RECENT_SLOTS   4096
#define RECENT_KEEP_MS (10 * 60 * 1000)
#define RECENT_HASH    65536

struct recent_sess {
    uint64_t account, session, opened_ms, revoked_ms;
    bool basic;
    char uid[130];
};

struct recent {
    pthread_mutex_t mu;
    unsigned next;
    struct recent_sess e[RECENT_SLOTS];
    uint16_t per_hash[RECENT_HASH]; /* entries by hash of the account: most are 0 */
};

/* ---- login --------------------------------------------------------------------------- */

#define LE_CREDENTIALS 1
#define LE_INACTIVE    2
#define LE_SESSION_KEY 3
#define LE_CLIENT      4
#define LE_BASIC_FULL  5
#define LE_OTHER_ACC   6
#define LE_NO_TARIFF   8
#define LE_SUBNET      9
#define LE_NO_BASIC    10
#define LE_NO_ADDL     11
#define LE_GROUP       15
#define LE_UNBIND_ID   27

struct live_session {
    uint64_t id, opened_ms;
    bool basic;
    char uid[130];
};

struct sess_arg {
    uint64_t cutoff_ms;
    size_t n;
    struct live_session s[MAX_SESSIONS_SEEN];
};

static int collect_session(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                           size_t value_len)
{
    struct sess_arg *a = arg;
    if (key_len != 16 || a->n == MAX_SESSIONS_SEEN) {
        return 0;
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (o != NULL && rec_int(o, "revoked_ms", 0) == 0 &&
        (uint64_t)rec_int(o, "opened_ms", 0) >= a->cutoff_ms) {
        struct live_session *s = &a->s[a->n++];
        s->id = tvmw_get_be64(key + 8);
        s->opened_ms = (uint64_t)rec_int(o, "opened_ms", 0);
        s->basic = rec_int(o, "basic", 0) != 0;
        snprintf(s->uid, sizeof(s->uid), "%s", rec_str(o, "device_uid"));
    }
    json_decref(o);
    return 0;
}

int dlogin_recent_new(struct recent **out)
{
    struct recent *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void dlogin_recent_free(struct recent *r)
{
    if (r != NULL) {
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
}

/* The entry of (account, session), or NULL. Under r->mu. */
static struct recent_sess *recent_find(struct recent *r, uint64_t account, uint64_t session,
                                       uint64_t now)
{
    if (r->per_hash[dm_hash_u64(account) % RECENT_HASH] == 0) {
        return NULL;
    }
    for (unsigned i = 0; i < RECENT_SLOTS; i++) {
        struct recent_sess *e = &r->e[i];
        if (e->account == account && e->session == session && now - e->opened_ms < RECENT_KEEP_MS) {
            return e;
        }
    }
    return NULL;
}

void dlogin_recent_put(struct edge_device *d, uint64_t account, uint64_t session, const char *uid,
                       bool basic, uint64_t now, bool revoked)
{
    struct recent *r = d->recent;
    pthread_mutex_lock(&r->mu);
    struct recent_sess *e = recent_find(r, account, session, now);
    if (e == NULL) {
        e = &r->e[r->next];
        r->next = (r->next + 1) % RECENT_SLOTS;
        if (e->account != 0) {
            r->per_hash[dm_hash_u64(e->account) % RECENT_HASH]--;
        }
        r->per_hash[dm_hash_u64(account) % RECENT_HASH]++;
        *e = (struct recent_sess){.account = account, .session = session, .basic = basic};
        snprintf(e->uid, sizeof(e->uid), "%s", uid ? uid : "");
    }
    e->opened_ms = now;
    if (revoked) {
        e->revoked_ms = now;
    }
    pthread_mutex_unlock(&r->mu);
}

bool dlogin_recent_revoked(struct edge_device *d, uint64_t account, uint64_t session, uint64_t now)
{
    struct recent *r = d->recent;
    pthread_mutex_lock(&r->mu);
    struct recent_sess *e = recent_find(r, account, session, now);
    bool revoked = e != NULL && e->revoked_ms != 0;
    pthread_mutex_unlock(&r->mu);
    return revoked;
}

/* Adds this edge's recent sessions of the account to a, drops the ones it
 * ended. */
static void recent_merge(struct edge_device *d, uint64_t account, uint64_t now, struct sess_arg *a)
{
    struct recent *r = d->recent;
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; r->per_hash[dm_hash_u64(account) % RECENT_HASH] != 0 && i < RECENT_SLOTS;
         i++) {
        const struct recent_sess *e = &r->e[i];
        if (e->account != account || now - e->opened_ms >= RECENT_KEEP_MS ||
            e->opened_ms < a->cutoff_ms) {
            continue;
        }
        size_t k = 0;
        while (k < a->n && a->s[k].id != e->session) {
            k++;
        }
        if (e->revoked_ms != 0) {
            if (k < a->n) {
                a->s[k] = a->s[--a->n];
            }
        } else if (k == a->n && a->n < MAX_SESSIONS_SEEN) {
            struct live_session *s = &a->s[a->n++];
            s->id = e->session;
            s->opened_ms = e->opened_ms;
            s->basic = e->basic;
            snprintf(s->uid, sizeof(s->uid), "%s", e->uid);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static int cmp_opened(const void *a, const void *b)
{
    const struct live_session *x = a, *y = b;
    return x->opened_ms < y->opened_ms ? -1 : x->opened_ms > y->opened_ms;
}

/* Caller IP inside the account's subnets ("" = anywhere). */
static bool subnet_ok(struct dctx *c)
{
    const char *list = rec_str(c->account, "subnets");
    struct in_addr ip;
    if (list[0] == '\0') {
        return true;
    }
    if (inet_pton(AF_INET, dctx_ip(c), &ip) != 1) {
        return false;
    }
    uint32_t a = ntohl(ip.s_addr);
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ;", &save); t; t = strtok_r(NULL, ", ;", &save)) {
        char *slash = strchr(t, '/');
        int bits = 32;
        if (slash != NULL) {
            *slash = '\0';
            bits = atoi(slash + 1);
        }
        struct in_addr net;
        if (bits < 0 || bits > 32 || inet_pton(AF_INET, t, &net) != 1) {
            continue;
        }
        uint32_t mask = bits == 0 ? 0 : ~0u << (32 - bits);
        if ((a & mask) == (ntohl(net.s_addr) & mask)) {
            return true;
        }
    }
    return false;
}

static bool group_allowed(struct dctx *c)
{
    const json_t *groups = json_object_get(c->account, "allowed_device_groups");
    if (!json_is_array(groups) || json_array_size(groups) == 0) {
        return true;
    }
    int g = dctx_device_group(c->device);
    size_t i;
    const json_t *v;
    json_array_foreach(groups, i, v)
    {
        if (json_is_integer(v) && json_integer_value(v) == g) {
            return true;
        }
    }
    return false;
}

/* Limits of the account's tariffs: the most generous one wins; -1 is
 * unlimited. Returns the number of tariffs. */
static size_t session_limits(struct dctx *c, int64_t *basic, int64_t *addl)
{
    uint64_t ids[DE_MAX_TARIFFS];
    size_t n = dm_account_tariffs(c, ids, DE_MAX_TARIFFS), found = 0;
    *basic = 0;
    *addl = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *t = dm_get_own(c, EDGE_DB_TARIFFS, ids[i]);
        if (t == NULL) {
            continue;
        }
        found++;
        int64_t b = rec_int(t, "basic_sessions_count", 0), s = rec_int(t, "sessions_count", 0);
        *basic = (*basic < 0 || b < 0) ? -1 : (b > *basic ? b : *basic);
        *addl = (*addl < 0 || s < 0) ? -1 : (s > *addl ? s : *addl);
        json_decref(t);
    }
    return found;
}

static void out_device(struct dctx *c, uint64_t id, const json_t *dev, bool with_sessions)
{
    char date[32];
    dctx_fmt_date((uint64_t)rec_int(dev, "created_ms", 0), true, date);
    dout_item_begin(&c->o);
    dout_int(&c->o, "id", (int64_t)id);
    dout_str(&c->o, "system_name", rec_str(dev, "system_name"));
    dout_str(&c->o, "device_uid", rec_str(dev, "device_uid"));
    dout_str(&c->o, "brand_name", rec_str(dev, "brand_name"));
    dout_str(&c->o, "device_model", rec_str(dev, "device_model"));
    dout_bool(&c->o, "status", true);
    if (with_sessions) {
        dout_bool(&c->o, "has_active_sessions", false);
    }
    dout_str(&c->o, "created_at", date);
    dout_item_end(&c->o);
}

void dctx_out_devices(struct dctx *c, bool with_sessions)
{
    uint64_t ids[DE_MAX_DEVICES];
    size_t n = dm_rel(c, "acc_dev", c->account_id, ids, DE_MAX_DEVICES);
    dout_list_begin(&c->o, "devices");
    for (size_t i = 0; i < n; i++) {
        json_t *dev = dm_get(c, EDGE_DB_DEVICES, ids[i]);
        if (dev != NULL) {
            out_device(c, ids[i], dev, with_sessions);
        }
        json_decref(dev);
    }
    dout_list_end(&c->o);
}

static int out_datacenter(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                          size_t value_len)
{
    struct dctx *c = arg;
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (key_len == 8 && o != NULL && (uint64_t)rec_int(o, "client_id", 0) == c->client_id) {
        dout_item_begin(&c->o);
        dout_int(&c->o, "id", (int64_t)tvmw_get_be64(key));
        dout_str(&c->o, "name", rec_str(o, "name"));
        dout_str(&c->o, "location", rec_str(o, "code"));
        dout_item_end(&c->o);
    }
    json_decref(o);
    return 0;
}

static void out_datacenters(struct dctx *c)
{
    dout_list_begin(&c->o, "data_centers");
    edge_store_scan(&c->r, EDGE_DB_DATACENTERS, NULL, 0, NULL, 0, out_datacenter, c);
    dout_list_end(&c->o);
}

static void login_refused(struct dctx *c, int code, const char *msg)
{
    atomic_fetch_add(&c->dev->logins_refused, 1);
    TVMW_LOG_INFO("device",
                  "login refused client=%" PRIu64 " account=%" PRIu64
                  " device=%s ip=%s error=%d reason=%s",
                  c->client_id, c->account_id, c->device, dctx_ip(c), code, msg);
    dctx_fail(c, code, msg);
}

/* Finds the account of the login's credentials (§3.2); 0 and *method. */
static int login_account(struct dctx *c, const char *uid, const char **method, uint64_t *dev_id)
{
    const char *abon = dctx_param(c, "abonement"), *pw = dreq_get(&c->q, "password");
    *dev_id = 0;
    if (abon != NULL) {
        c->account_id = dm_uniq(c, "abonement", abon);
        c->account = dm_get_own(c, EDGE_DB_ACCOUNTS, c->account_id);
        if (c->account == NULL) {
            return LE_CREDENTIALS;
        }
        if (pw != NULL && pw[0] != '\0') {
            char hash[65];
            tvmw_password_hash(rec_str(c->account, "password_salt"), pw, hash);
            *method = "abonement_password";
            return tvmw_secret_equal(hash, rec_str(c->account, "password_hash")) &&
                           rec_str(c->account, "password_hash")[0] != '\0'
                       ? 0
                       : LE_CREDENTIALS;
        }
        *method = "abonement";
        return rec_int(c->account, "allow_login_by_abonement", 0) ? 0 : LE_CREDENTIALS;
    }
    if (uid != NULL) {
        *dev_id = dm_uniq(c, "dev_uid", uid);
        json_t *dev = dm_get_own(c, EDGE_DB_DEVICES, *dev_id);
        c->account_id = (uint64_t)rec_int(dev, "account_id", 0);
        json_decref(dev);
        c->account = dm_get_own(c, EDGE_DB_ACCOUNTS, c->account_id);
        *method = "device_uid";
        if (c->account == NULL || !rec_int(c->account, "allow_login_by_device_uid", 1)) {
            return LE_CREDENTIALS;
        }
        return 0;
    }
    return LE_CREDENTIALS;
}

struct client_arg {
    struct dctx *c;
    const char *abonement, *password;
    int found;
};

static int try_client(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
    struct client_arg *a = arg;
    struct dctx *c = a->c;
    (void)value;
    (void)value_len;
    if (key_len != 8) {
        return 0;
    }
    c->client_id = tvmw_get_be64(key);
    uint64_t id = dm_uniq(c, "abonement", a->abonement);
    json_t *acc = dm_get_own(c, EDGE_DB_ACCOUNTS, id);
    char hash[65];
    const char *want = rec_str(acc, "password_hash");
    if (acc != NULL && want[0] != '\0') {
        tvmw_password_hash(rec_str(acc, "password_salt"), a->password, hash);
    }
    if (acc == NULL || want[0] == '\0' || !tvmw_secret_equal(hash, want)) {
        json_decref(acc);
        return 0;
    }
    if (++a->found > 1) {
        return 1; /* the same credentials in two clients: refuse */
    }
    json_decref(c->account);
    json_decref(c->client);
    c->account = acc;
    c->account_id = id;
    c->client = dm_get(c, EDGE_DB_CLIENTS, c->client_id);
    return 0;
}

int dctx_login_password(struct dctx *c, const char *abonement, const char *password)
{
    if (abonement == NULL || password == NULL || abonement[0] == '\0' || password[0] == '\0' ||
        strlen(abonement) > 64 || strlen(password) > 128) {
        return -1;
    }
    struct client_arg a = {.c = c, .abonement = abonement, .password = password};
    edge_store_scan(&c->r, EDGE_DB_CLIENTS, NULL, 0, NULL, 0, try_client, &a);
    const char *reason = a.found == 1 ? dctx_status_reason(c->account) : "";
    bool inactive = a.found == 1 && !rec_int(c->account, "active", 1) &&
                    strcmp(reason, "DEBT") != 0 && strcmp(reason, "BLOCK") != 0 &&
                    strcmp(reason, "WAIT") != 0;
    if (a.found != 1 || inactive || c->client == NULL) {
        json_decref(c->account);
        json_decref(c->client);
        c->account = c->client = NULL;
        c->account_id = c->client_id = 0;
        return -1;
    }
    return 0;
}

void dh_login(struct dctx *c)
{
    if (c->client == NULL || !dctx_api_key_ok(c)) {
        login_refused(c, LE_CLIENT, "Client does not exist");
        return;
    }
    char uidbuf[160];
    const char *uid = dctx_device_uid(c, uidbuf, sizeof(uidbuf)), *method = "";
    uint64_t dev_id;
    int code = login_account(c, uid, &method, &dev_id);
    if (code != 0) {
        login_refused(c, code, "Account does not exist");
        return;
    }
    const char *reason = dctx_status_reason(c->account);
    if (!rec_int(c->account, "active", 1) && strcmp(reason, "DEBT") != 0 &&
        strcmp(reason, "BLOCK") != 0 && strcmp(reason, "WAIT") != 0) {
        login_refused(c, LE_INACTIVE, "Account is not active");
        return;
    }
    if (!subnet_ok(c)) {
        login_refused(c, LE_SUBNET, "Login from this network is not allowed");
        return;
    }
    if (!group_allowed(c)) {
        login_refused(c, LE_GROUP, "Device group is not allowed for this account");
        return;
    }
    int64_t basic_limit, addl_limit;
    if (session_limits(c, &basic_limit, &addl_limit) == 0) {
        login_refused(c, LE_NO_TARIFF, "Customer has no tariff");
        return;
    }
    const struct edge_keyring *ring = edge_keyring(&c->r);
    if (ring == NULL) {
        login_refused(c, LE_SESSION_KEY, "Session key could not be created");
        return;
    }

    /* Which slot the device takes (docs/device-api.md "Sessions"). */
    bool multi = rec_int(c->account, "allow_multiple_login", 0) != 0;
    bool basic = false;
    json_t *register_dev = json_null();
    uint64_t unbind = 0;
    if (uid != NULL) {
        uint64_t bound = dev_id ? dev_id : dm_uniq(c, "dev_uid", uid);
        json_t *dev = dm_get_own(c, EDGE_DB_DEVICES, bound);
        if (dev != NULL && (uint64_t)rec_int(dev, "account_id", 0) != c->account_id) {
            json_decref(dev);
            login_refused(c, LE_OTHER_ACC, "Device is bound to another account");
            return;
        }
        if (dev != NULL) {
            basic = true;
            dev_id = bound;
        } else if (basic_limit != 0) {
            uint64_t ids[DE_MAX_DEVICES];
            int64_t bound_n = (int64_t)dm_rel(c, "acc_dev", c->account_id, ids, DE_MAX_DEVICES);
            int64_t want;
            if (dreq_int(&c->q, "device_id_for_unbinding", &want)) {
                if (want <= 0 || !dm_rel_has(c, "acc_dev", c->account_id, (uint64_t)want)) {
                    login_refused(c, LE_UNBIND_ID, "Wrong device_id_for_unbinding");
                    return;
                }
                unbind = (uint64_t)want;
                bound_n--;
            }
            if (basic_limit > 0 && bound_n >= basic_limit && !multi) {
                atomic_fetch_add(&c->dev->logins_refused, 1);
                dctx_fail(c, LE_BASIC_FULL, "Too many basic devices");
                dctx_out_devices(c, true);
                return;
            }
            basic = true;
            register_dev = json_pack(
                "{s:s, s:s, s:s, s:s, s:s}", "system_name", c->device, "device_uid", uid,
                "brand_name", dctx_param(c, "brand_name") ? dctx_param(c, "brand_name") : "",
                "device_model", dctx_param(c, "device_model") ? dctx_param(c, "device_model") : "",
                "serial_number",
                dctx_param(c, "device_serial") ? dctx_param(c, "device_serial") : "");
        }
        json_decref(dev);
    }
    if (!basic && !multi && addl_limit == 0) {
        json_decref(register_dev);
        login_refused(c, basic_limit == 0 ? LE_NO_ADDL : LE_NO_BASIC,
                      "Login from this device is not allowed by the tariff");
        return;
    }

    /* Sessions it replaces: this device's earlier ones, then the oldest
     * additional ones beyond the limit (§3.3). */
    struct sess_arg *sa = dctx_scratch(c, DS_SESSIONS, sizeof(*sa));
    if (sa == NULL) {
        json_decref(register_dev);
        login_refused(c, LE_SESSION_KEY, "Session key could not be created");
        return;
    }
    uint8_t prefix[8];
    tvmw_put_be64(prefix, c->account_id);
    sa->n = 0;
    sa->cutoff_ms = (uint64_t)rec_int(c->account, "logout_before_ms", 0);
    edge_store_scan(&c->r, EDGE_DB_DSESS, prefix, 8, NULL, 0, collect_session, sa);
    recent_merge(c->dev, c->account_id, c->now_ms, sa);
    qsort(sa->s, sa->n, sizeof(sa->s[0]), cmp_opened);
    json_t *evict = json_array();
    int64_t addl_live = 0;
    for (size_t i = 0; i < sa->n; i++) {
        if (uid != NULL && strcmp(sa->s[i].uid, uid) == 0) {
            json_array_append_new(evict, json_sprintf("%016" PRIx64, sa->s[i].id));
            dlogin_recent_put(c->dev, c->account_id, sa->s[i].id, NULL, false, c->now_ms, true);
            sa->s[i].id = 0;
        } else if (!sa->s[i].basic) {
            addl_live++;
        }
    }
    for (size_t i = 0; !basic && !multi && addl_limit > 0 && i < sa->n; i++) {
        if (sa->s[i].id != 0 && !sa->s[i].basic && addl_live >= addl_limit) {
            json_array_append_new(evict, json_sprintf("%016" PRIx64, sa->s[i].id));
            dlogin_recent_put(c->dev, c->account_id, sa->s[i].id, NULL, false, c->now_ms, true);
            addl_live--;
        }
    }

    /* The session: the key first, then the durable record of it. */
    char gen_uid[40];
    if (uid == NULL) {
        uint8_t rnd[16];
        RAND_bytes(rnd, sizeof(rnd));
        tvmw_hex_encode(rnd, sizeof(rnd), gen_uid);
        uid = gen_uid;
    }
    c->ak = (struct edge_authkey){.basic = basic,
                                  .client = (uint32_t)c->client_id,
                                  .account = c->account_id,
                                  .issued_ms = c->now_ms};
    do {
        RAND_bytes((uint8_t *)&c->ak.session, sizeof(c->ak.session));
    } while (c->ak.session == 0);
    edge_authkey_issue(ring, &c->ak, c->authkey);
    if (unbind != 0) {
        json_t *w = dctx_new_write(c, "device_delete");
        json_object_set_new(w, "device_id", json_integer((json_int_t)unbind));
        dctx_journal(c, w);
    }
    json_t *w = dctx_new_write(c, "session_open");
    if (w != NULL) {
        json_object_set_new(w, "sess_id", json_sprintf("%016" PRIx64, c->ak.session));
        json_object_set_new(w, "device_uid", json_string(uid));
        json_object_set_new(w, "device", json_string(c->device));
        json_object_set_new(w, "basic", json_integer(basic));
        json_object_set_new(w, "ip", json_string(dctx_ip(c)));
        json_object_set_new(w, "edge", json_string(c->dev->self->id));
        json_object_set_new(w, "register_device", register_dev);
        json_object_set_new(w, "evict", evict);
        register_dev = evict = NULL;
    }
    json_decref(register_dev);
    json_decref(evict);
    if (!dctx_journal(c, w)) {
        login_refused(c, LE_SESSION_KEY, "Session key could not be created");
        return;
    }
    dlogin_recent_put(c->dev, c->account_id, c->ak.session, uid, basic, c->now_ms, false);
    atomic_fetch_add(&c->dev->logins_ok, 1);
    TVMW_LOG_INFO("device",
                  "login client=%" PRIu64 " account=%" PRIu64 " method=%s device=%s basic=%d ip=%s",
                  c->client_id, c->account_id, method, c->device, basic, dctx_ip(c));

    json_t *settings = dm_get(c, EDGE_DB_ACC_SETTINGS, c->account_id);
    json_t *dc = json_object_get(c->account, "data_center");
    dout_int(&c->o, "error", 0);
    dout_str(&c->o, "error_message", "");
    dout_str(&c->o, "authkey", c->authkey);
    dout_int(&c->o, "utc_time", (int64_t)(c->now_ms / 1000));
    dctx_out_abonement(c, "abonement", rec_str(c->account, "abonement"));
    dout_int(&c->o, "account_id", (int64_t)c->account_id);
    dout_int(&c->o, "customer_id", rec_int(c->account, "customer_id", 0));
    dout_str(&c->o, "customer_ext_id", "");
    dout_str(&c->o, "contract_number", "");
    dout_str(&c->o, "firstname", "");
    dout_str(&c->o, "lastname", "");
    dout_str(&c->o, "meta", "");
    dout_str(&c->o, "currency", "");
    dout_str(&c->o, "ip_address", dctx_ip(c));
    dout_int(&c->o, "activation_days_left", 0);
    char pc[24];
    snprintf(pc, sizeof(pc), "%" PRId64, rec_int(c->account, "parent_code", 0));
    dout_str(&c->o, "parent_code", pc);
    dout_int(&c->o, "last_channel", rec_int(settings, "last_channel", -1));
    dout_str(&c->o, "device_uid", uid);
    dout_bool(&c->o, "reset_settings", false);
    dout_str(&c->o, "template", rec_str(json_object_get(c->client, "settings"), "template"));
    dout_int(&c->o, "use_timeshift", rec_int(c->account, "use_timeshift", 0));
    dout_str(&c->o, "status_reason", reason);
    dout_int(&c->o, "data_center_id", json_is_integer(dc) ? json_integer_value(dc) : -1);
    out_datacenters(c);
    json_decref(settings);
    snprintf(c->cookie[0], sizeof(c->cookie[0]), "authkey=%s; Path=/", c->authkey);
    snprintf(c->cookie[1], sizeof(c->cookie[1]), "device_uid=%s; Path=/", uid);
}
