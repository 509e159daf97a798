/*
 * it_device_writes: token signing keys and the device writes of edges on a
 * real 3-node control plane (docs/edge-protocol.md "Device writes",
 * docs/admin-api.md "Keys").
 *
 * test_keys: the leader adds a first key by itself; the admin API lists
 *   keys without secrets, rotates (through a follower), refuses to retire
 *   the last active key, retires, and the edge projection (db 13) follows
 *   with the secrets; tvmwctl keys list|rotate|retire against the cluster.
 * test_device_ops: every op of POST /edge/v1/device-writes, sent to
 *   followers (forwarded to the leader); each effect is checked in the
 *   projection edges get (the feed of a follower, and the edge snapshot);
 *   replaying the same batch changes nothing; register_device and
 *   account_register are deduplicated by reqid; a write naming another
 *   client's objects gets "not found"; malformed requests are refused.
 *
 * Environment: TVMW_CP_BIN, optional TVMWCTL_BIN. Ports 26000..26199.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/bytes.h"
#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT 26000 /* HTTP 26001..3, raft 26101..3 */
#define N_NODES   3
#define KEY1      "device-writes-key-1"
#define KEY2      "device-writes-key-2"

/* Edge database ids (docs/edge-protocol.md). */
#define DB_ACCOUNTS     3
#define DB_DEVICES      4
#define DB_MESSAGES     6
#define DB_UNIQ         12
#define DB_KEYS         13
#define DB_DSESS        14
#define DB_ACC_SETTINGS 15

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};
static struct it_bl_client c2 = {.id = 2, .key = KEY2};
static unsigned reqid_seq;

/* ---- control plane helpers ------------------------------------------------------ */

/* An admin request retried through elections (503 or no answer). */
static void admin(uint64_t node, const char *method, const char *path, const char *body,
                  struct it_resp *r)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        it_admin(cl, node, method, path, body, NULL, r);
        if (r->status != 503 && r->status != 0) {
            return;
        }
        it_resp_close(r);
        it_sleep_ms(200);
    }
}

static void billing(const struct it_bl_client *who, uint64_t node, const char *path,
                    const char *const *kv, json_t **reply)
{
    struct it_resp r;
    char why[1400];
    for (int attempt = 0; attempt < 50; attempt++) {
        it_bl_call(cl, node, IT_BL_PY, who, path, kv, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "%s: %s", path, why);
    if (reply != NULL) {
        *reply = json_incref(r.json);
    }
    it_resp_close(&r);
}

/* A customer and an account of client `who`; returns the account id. */
static uint64_t create_account(const struct it_bl_client *who, const char *abonement)
{
    json_t *o;
    billing(who, 1, "customer/create", IT_KV("firstname", abonement), &o);
    char cust[24];
    it_fmt(cust, sizeof(cust), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    billing(who, 2, "account/create",
            IT_KV("customer_id", cust, "abonement", abonement, "password", "pw-123456"), &o);
    uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    IT_ASSERT(id > 0, "no account id");
    return id;
}

static uint64_t create_message(const char *account, const char *dar)
{
    json_t *o;
    billing(&c1, 3, "account/message/create",
            IT_KV("account_id", account, "text", "hello", "delete_after_reading", dar), &o);
    uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return id;
}

static uint64_t create_channel(uint64_t client, const char *name)
{
    char path[96], body[96];
    struct it_resp r;
    it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/channels", (unsigned long long)client);
    it_fmt(body, sizeof(body), "{\"name\":\"%s\"}", name);
    admin(1, "POST", path, body, &r);
    IT_ASSERT(r.status == 200 || r.status == 201, "channel create: %ld %s", r.status, r.body);
    uint64_t id =
        (uint64_t)json_integer_value(json_object_get(json_object_get(r.json, "channel"), "id"));
    it_resp_close(&r);
    IT_ASSERT(id > 0, "no channel id");
    return id;
}

/* ---- device writes ---------------------------------------------------------------- */

/* A write with a fresh reqid. */
static json_t *W(const char *op, uint64_t client, uint64_t ms)
{
    char reqid[33];
    it_fmt(reqid, sizeof(reqid), "%08x%024x", 0xd0d0d0d0u, ++reqid_seq);
    return json_pack("{s:s, s:s, s:I, s:I}", "op", op, "reqid", reqid, "client_id",
                     (json_int_t)client, "ms", (json_int_t)ms);
}

/* POSTs body (a JSON text) to node; the raw answer in *r. */
static void post_raw(uint64_t node, const char *body, const char *token, struct it_resp *r)
{
    char url[160], auth[160];
    it_node_url(cl, node, "/edge/v1/device-writes", url, sizeof(url));
    it_fmt(auth, sizeof(auth), "Authorization: Bearer %s", token);
    const char *hdrs[] = {auth, NULL};
    for (int attempt = 0; attempt < 50; attempt++) {
        it_http("POST", url, body, strlen(body), token ? hdrs : NULL, IT_HTTP_TIMEOUT, r);
        if (r->status != 503 && r->status != 0) {
            return;
        }
        it_resp_close(r);
        it_sleep_ms(200);
    }
}

/* Sends the writes (array, borrowed) to node; returns the results (new
 * reference), one per write. */
static json_t *send_writes(uint64_t node, json_t *writes)
{
    json_t *body = json_pack("{s:O}", "writes", writes);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct it_resp r;
    post_raw(node, text, IT_TOKEN, &r);
    free(text);
    IT_ASSERT_STATUS(&r, 200);
    json_t *results = json_incref(json_object_get(r.json, "results"));
    it_resp_close(&r);
    IT_ASSERT(json_array_size(results) == json_array_size(writes), "results: %zu for %zu writes",
              json_array_size(results), json_array_size(writes));
    return results;
}

/* Sends one write (takes it); returns its result (new reference). */
static json_t *send1(uint64_t node, json_t *w)
{
    json_t *writes = json_pack("[o]", w);
    json_t *results = send_writes(node, writes);
    json_t *r = json_incref(json_array_get(results, 0));
    json_decref(results);
    json_decref(writes);
    return r;
}

/* Adds fields (taken) to the write w; returns w. */
static json_t *with(json_t *w, json_t *fields)
{
    json_object_update(w, fields);
    json_decref(fields);
    return w;
}

static long long r_error(const json_t *r)
{
    return json_integer_value(json_object_get(r, "error"));
}

#define EXPECT_ERROR(r, code)                                                                      \
    do {                                                                                           \
        char *dump_ = json_dumps((r), JSON_COMPACT);                                               \
        bool ok_ = r_error(r) == (code) &&                                                         \
                   ((code) == 0 || json_is_string(json_object_get((r), "message")));               \
        IT_ASSERT(ok_, "expected error %d, got %s", (int)(code), dump_);                           \
        free(dump_);                                                                               \
    } while (0)

/* ---- the projection edges get ------------------------------------------------------- */

static json_t *projection; /* "db/hexkey" -> value (JSON) */

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static size_t unb64(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap) {
        return 0;
    }
    int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (len < 0) {
        return 0;
    }
    return (size_t)len - (s[n - 1] == '=') - (s[n - 2] == '=');
}

/* Replays the whole feed of node 3 (a follower, once it applied what the
 * leader committed) into `projection`. */
static void load_projection(void)
{
    IT_ASSERT(it_wait_applied(cl, 10000), "followers did not catch up");
    struct it_resp r;
    char url[160];
    it_node_url(cl, 3, "/edge/v1/feed?after=0&wait_ms=0&limit=100000", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, IT_HTTP_TIMEOUT, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(json_is_true(json_object_get(r.json, "complete")), "feed not complete");
    json_decref(projection);
    projection = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r.json, "changes"), i, c)
    {
        uint8_t key[600], val[65536];
        size_t kl = unb64(json_string_value(json_object_get(c, "key")), key, sizeof(key));
        char name[1300];
        char khex[1201];
        hex_of(key, kl, khex);
        it_fmt(name, sizeof(name), "%lld/%s",
               (long long)json_integer_value(json_object_get(c, "db")), khex);
        if (strcmp(json_string_value(json_object_get(c, "op")), "del") == 0) {
            json_object_del(projection, name);
            continue;
        }
        const char *v64 = json_string_value(json_object_get(c, "value"));
        size_t vl = v64[0] ? unb64(v64, val, sizeof(val)) : 0;
        json_t *v = vl ? json_loadb((const char *)val, vl, 0, NULL) : NULL;
        json_object_set_new(projection, name, v ? v : json_string(""));
    }
    it_resp_close(&r);
}

/* The projected record of (db, key) or NULL (borrowed from projection). */
static json_t *proj(int db, const uint8_t *key, size_t len)
{
    char name[1300], khex[1201];
    hex_of(key, len, khex);
    it_fmt(name, sizeof(name), "%d/%s", db, khex);
    return json_object_get(projection, name);
}

static json_t *proj_id(int db, uint64_t id)
{
    uint8_t k[8];
    tvmw_put_be64(k, id);
    return proj(db, k, 8);
}

static json_t *proj_sess(uint64_t account, const char *sess_hex)
{
    uint8_t k[16];
    tvmw_put_be64(k, account);
    tvmw_put_be64(k + 8, strtoull(sess_hex, NULL, 16));
    return proj(DB_DSESS, k, 16);
}

static bool proj_has_prefix(int db, const char *text_prefix)
{
    char hex[1201], name[1300];
    hex_of((const uint8_t *)text_prefix, strlen(text_prefix), hex);
    it_fmt(name, sizeof(name), "%d/%s", db, hex);
    const char *k;
    json_t *v;
    json_object_foreach(projection, k, v)
    {
        if (strncmp(k, name, strlen(name)) == 0) {
            return true;
        }
    }
    return false;
}

static long long field(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Counts the records of db in the edge snapshot of node 2. */
static size_t snapshot_count(int want_db)
{
    struct it_resp r;
    char url[160];
    it_node_url(cl, 2, "/edge/v1/snapshot", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, IT_HTTP_TIMEOUT, &r);
    IT_ASSERT_STATUS(&r, 200);
    const uint8_t *p = (const uint8_t *)r.body;
    size_t off = 32, n = 0;
    while (off < r.len && p[off] == 1) {
        uint32_t kl = tvmw_get_u32(p + off + 2), vl = tvmw_get_u32(p + off + 6);
        n += p[off + 1] == want_db;
        off += 10 + kl + vl;
    }
    IT_ASSERT(off < r.len && p[off] == 0xFF, "snapshot did not parse");
    it_resp_close(&r);
    return n;
}

/* ---- tvmwctl ---------------------------------------------------------------------------- */

/* Runs tvmwctl with args against node 1; its stdout into out. Exit status. */
static int ctl(const char *bin, const char *const *args, char *out, size_t out_len)
{
    int pipefd[2];
    IT_ASSERT(pipe(pipefd) == 0, "pipe: %s", strerror(errno));
    char server[160];
    it_node_url(cl, 1, "", server, sizeof(server));
    pid_t pid = fork();
    IT_ASSERT(pid >= 0, "fork");
    if (pid == 0) {
        const char *argv[16] = {bin, "--server", server, "--token", IT_TOKEN};
        unsigned a = 5;
        for (; *args != NULL && a < 15; args++) {
            argv[a++] = *args;
        }
        argv[a] = NULL;
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < out_len && (got = read(pipefd[0], out + n, out_len - 1 - n)) > 0) {
        n += (size_t)got;
    }
    out[n] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- test 1: keys ------------------------------------------------------------------------ */

static json_t *keys_list(uint64_t node)
{
    struct it_resp r;
    admin(node, "GET", "/admin/v1/keys", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    json_t *keys = json_incref(json_object_get(r.json, "keys"));
    IT_ASSERT(json_is_array(keys), "no keys array: %s", r.body);
    IT_ASSERT(strstr(r.body, "secret") == NULL, "the admin API shows a secret: %s", r.body);
    it_resp_close(&r);
    return keys;
}

static void check_projected_key(uint64_t kid, const char *state)
{
    json_t *k = proj_id(DB_KEYS, kid);
    IT_ASSERT(k != NULL, "key %llu not projected", (unsigned long long)kid);
    const char *secret = json_string_value(json_object_get(k, "secret"));
    uint8_t raw[64];
    IT_ASSERT(secret != NULL && unb64(secret, raw, sizeof(raw)) == 32,
              "key %llu has no 32-byte secret", (unsigned long long)kid);
    IT_ASSERT(strcmp(json_string_value(json_object_get(k, "state")), state) == 0,
              "key %llu state %s, want %s", (unsigned long long)kid,
              json_string_value(json_object_get(k, "state")), state);
    IT_ASSERT(field(k, "kid") == (long long)kid && field(k, "created_ms") > 0, "key fields");
    IT_ASSERT((strcmp(state, "active") == 0) == (field(k, "retired_ms") == 0), "retired_ms");
}

static void test_keys(void **state)
{
    (void)state;
    struct it_resp r;

    /* A new cluster gets its first key without anybody asking. */
    json_t *keys = NULL;
    uint64_t t0 = it_now_ms();
    do {
        json_decref(keys);
        keys = keys_list(2);
        if (json_array_size(keys) > 0) {
            break;
        }
        it_sleep_ms(100);
    } while (it_now_ms() - t0 < 10000);
    IT_ASSERT(json_array_size(keys) == 1, "%zu keys after start", json_array_size(keys));
    json_t *k1 = json_array_get(keys, 0);
    IT_ASSERT(field(k1, "kid") == 1 &&
                  strcmp(json_string_value(json_object_get(k1, "state")), "active") == 0,
              "first key");
    json_decref(keys);

    /* The last active key stays. */
    admin(2, "POST", "/admin/v1/keys/1/retire", NULL, &r);
    IT_ASSERT_ERROR(&r, 409, "last_active_key");
    it_resp_close(&r);

    /* Rotation through a follower: a new active key, the old one still active. */
    admin(3, "POST", "/admin/v1/keys/rotate", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    json_t *k2 = json_object_get(r.json, "key");
    IT_ASSERT(field(k2, "kid") == 2 && json_object_get(k2, "secret") == NULL, "rotate: %s", r.body);
    it_resp_close(&r);
    admin(1, "POST", "/admin/v1/keys/rotate", "{\"x\":1}", &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);

    /* Retire the first: it stays listed, retired. Twice is fine. */
    for (int i = 0; i < 2; i++) {
        admin(i == 0 ? 3 : 1, "POST", "/admin/v1/keys/1/retire", NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        json_t *k = json_object_get(r.json, "key");
        IT_ASSERT(strcmp(json_string_value(json_object_get(k, "state")), "retired") == 0 &&
                      field(k, "retired_ms") > 0,
                  "retire: %s", r.body);
        it_resp_close(&r);
    }
    admin(2, "POST", "/admin/v1/keys/99/retire", NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);
    admin(2, "POST", "/admin/v1/keys/2/retire", NULL, &r);
    IT_ASSERT_ERROR(&r, 409, "last_active_key");
    it_resp_close(&r);
    admin(2, "GET", "/admin/v1/keys/2/retire", NULL, &r);
    IT_ASSERT_STATUS(&r, 405);
    it_resp_close(&r);
    char url[160];
    it_node_url(cl, 1, "/admin/v1/keys", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, 3000, &r);
    IT_ASSERT_STATUS(&r, 401);
    it_resp_close(&r);

    keys = keys_list(1);
    IT_ASSERT(json_array_size(keys) == 2, "two keys");
    json_decref(keys);

    /* Edges get the keys with their secrets, in the feed and the snapshot. */
    load_projection();
    check_projected_key(1, "retired");
    check_projected_key(2, "active");
    IT_ASSERT(snapshot_count(DB_KEYS) == 2, "keys in the edge snapshot");

    /* tvmwctl */
    const char *bin = getenv("TVMWCTL_BIN");
    if (bin != NULL) {
        char out[4096];
        IT_ASSERT(ctl(bin, (const char *const[]){"keys", "rotate", NULL}, out, sizeof(out)) == 0,
                  "tvmwctl keys rotate: %s", out);
        IT_ASSERT(strstr(out, "active") != NULL, "rotate output: %s", out);
        IT_ASSERT(ctl(bin, (const char *const[]){"keys", "retire", "2", NULL}, out, sizeof(out)) ==
                      0,
                  "tvmwctl keys retire: %s", out);
        IT_ASSERT(ctl(bin, (const char *const[]){"keys", "list", NULL}, out, sizeof(out)) == 0,
                  "tvmwctl keys list: %s", out);
        IT_ASSERT(strstr(out, "KID") != NULL && strstr(out, "retired") != NULL &&
                      strstr(out, "active") != NULL,
                  "list output: %s", out);
        IT_ASSERT(ctl(bin, (const char *const[]){"keys", "retire", "3", NULL}, out, sizeof(out)) ==
                      1,
                  "retiring the last key must fail: %s", out);
        IT_ASSERT(ctl(bin, (const char *const[]){"--json", "keys", "list", NULL}, out,
                      sizeof(out)) == 0 &&
                      strstr(out, "secret") == NULL,
                  "json list: %s", out);
    } else {
        fprintf(stderr, "TVMWCTL_BIN not set: tvmwctl not tested\n");
    }
    it_test_ok();
}

/* ---- test 2: device writes ------------------------------------------------------------------ */

static void test_device_ops(void **state)
{
    (void)state;
    struct it_resp r;
    char acc_a_s[24];
    uint64_t ms = 1700000000000ull;

    admin(1, "POST", "/admin/v1/clients", "{\"name\":\"one\",\"billing_api_key\":\"" KEY1 "\"}",
          &r);
    IT_ASSERT_STATUS(&r, 201);
    it_resp_close(&r);
    admin(1, "POST", "/admin/v1/clients", "{\"name\":\"two\",\"billing_api_key\":\"" KEY2 "\"}",
          &r);
    IT_ASSERT_STATUS(&r, 201);
    it_resp_close(&r);
    uint64_t acc_a = create_account(&c1, "700001");
    uint64_t acc_b = create_account(&c1, "700002");
    uint64_t acc_other = create_account(&c2, "800001"); /* client 2 */
    it_fmt(acc_a_s, sizeof(acc_a_s), "%llu", (unsigned long long)acc_a);
    uint64_t ch1 = create_channel(1, "One"), ch2 = create_channel(1, "Two");
    uint64_t ch_other = create_channel(2, "Other");

    /* ---- session_open with a device to register, sent to a follower ---- */
    json_t *open1 = W("session_open", 1, ms);
    with(open1, json_pack("{s:I, s:s, s:s, s:s, s:i, s:s, s:s, s:{s:s, s:s, s:s, "
                          "s:s, s:s}, s:[]}",
                          "account_id", (json_int_t)acc_a, "sess_id", "00000000000000a1",
                          "device_uid", "00:1A:79:00:00:01", "device", "mag", "basic", 1, "ip",
                          "10.0.0.1", "edge", "edge1", "register_device", "system_name", "mag",
                          "device_uid", "00:1A:79:00:00:01", "brand_name", "Infomir",
                          "device_model", "MAG250", "serial_number", "SN1", "evict"));
    json_t *open2 = W("session_open", 1, ms + 1);
    with(open2,
         json_pack("{s:I, s:s, s:s, s:s, s:i, s:s, s:s, s:n}", "account_id", (json_int_t)acc_a,
                   "sess_id", "00000000000000a2", "device_uid", "phone-1", "device", "android",
                   "basic", 0, "ip", "10.0.0.2", "edge", "edge2", "register_device"));
    json_t *batch = json_pack("[oo]", open1, open2);
    json_t *res = send_writes(2, batch);
    EXPECT_ERROR(json_array_get(res, 0), 0);
    EXPECT_ERROR(json_array_get(res, 1), 0);
    long long dev1 = field(json_array_get(res, 0), "device_id");
    IT_ASSERT(dev1 > 0 && field(json_array_get(res, 1), "device_id") == 0, "device ids");
    json_decref(res);

    load_projection();
    json_t *s1 = proj_sess(acc_a, "00000000000000a1");
    IT_ASSERT(s1 != NULL, "session a1 not projected");
    IT_ASSERT(field(s1, "opened_ms") == (long long)ms && field(s1, "device_id") == dev1 &&
                  field(s1, "revoked_ms") == 0 && field(s1, "basic") == 1 &&
                  field(s1, "client_id") == 1 &&
                  strcmp(json_string_value(json_object_get(s1, "sess_id")), "00000000000000a1") ==
                      0 &&
                  strcmp(json_string_value(json_object_get(s1, "edge")), "edge1") == 0 &&
                  strcmp(json_string_value(json_object_get(s1, "device")), "mag") == 0,
              "session a1 record");
    json_t *dev = proj_id(DB_DEVICES, (uint64_t)dev1);
    IT_ASSERT(dev != NULL && field(dev, "account_id") == (long long)acc_a &&
                  field(dev, "is_basic") == 1 &&
                  strcmp(json_string_value(json_object_get(dev, "device_model")), "MAG250") == 0,
              "registered device");
    IT_ASSERT(proj_has_prefix(DB_UNIQ, "dev_uid/1/00:1A:79:00:00:01"), "dev_uid index");
    IT_ASSERT(proj_sess(acc_a, "00000000000000a2") != NULL, "session a2");
    size_t n_proj = json_object_size(projection);

    /* The same batch again: same answers, nothing new. */
    res = send_writes(3, batch);
    IT_ASSERT(field(json_array_get(res, 0), "device_id") == dev1, "replayed register");
    json_decref(res);
    load_projection();
    IT_ASSERT(json_object_size(projection) == n_proj, "a replay added records");
    json_t *info;
    billing(&c1, 1, "account/info", IT_KV("account_id", acc_a_s), &info);
    IT_ASSERT(json_array_size(json_object_get(info, "devices")) == 1,
              "one device after the replay");
    json_decref(info);
    json_decref(batch);

    /* Registering the same uid again (new reqid) on the same account: the
     * same device; on another account: error 6. */
    json_t *reg = W("session_open", 1, ms + 2);
    with(reg, json_pack("{s:I, s:s, s:s, s:s, s:i, s:{s:s, s:s}}", "account_id", (json_int_t)acc_a,
                        "sess_id", "00000000000000a3", "device_uid", "00:1A:79:00:00:01", "device",
                        "mag", "basic", 1, "register_device", "system_name", "mag", "device_uid",
                        "00:1A:79:00:00:01"));
    json_t *rr = send1(1, reg);
    EXPECT_ERROR(rr, 0);
    IT_ASSERT(field(rr, "device_id") == dev1, "same uid, same device");
    json_decref(rr);
    reg = W("session_open", 1, ms + 2);
    with(reg, json_pack("{s:I, s:s, s:{s:s, s:s}}", "account_id", (json_int_t)acc_b, "sess_id",
                        "00000000000000b1", "register_device", "system_name", "mag", "device_uid",
                        "00:1A:79:00:00:01"));
    rr = send1(2, reg);
    EXPECT_ERROR(rr, 6);
    json_decref(rr);
    reg = W("session_open", 1, ms + 2);
    with(reg, json_pack("{s:I, s:s, s:{s:s, s:s}}", "account_id", (json_int_t)acc_b, "sess_id",
                        "00000000000000b1", "register_device", "system_name", "no-such-type",
                        "device_uid", "uid-x"));
    rr = send1(2, reg);
    EXPECT_ERROR(rr, 3);
    json_decref(rr);

    /* ---- session_close; a close that overtakes its open; evict ---- */
    json_t *close1 = W("session_close", 1, ms + 10);
    with(close1,
         json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_a, "sess_id", "00000000000000a1"));
    json_t *close_early = W("session_close", 1, ms + 11);
    with(close_early,
         json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_b, "sess_id", "00000000000000b9"));
    json_t *open_late = W("session_open", 1, ms + 5);
    with(open_late, json_pack("{s:I, s:s, s:s, s:s}", "account_id", (json_int_t)acc_b, "sess_id",
                              "00000000000000b9", "device", "tvip", "edge", "edge3"));
    json_t *evict = W("session_open", 1, ms + 12);
    with(evict, json_pack("{s:I, s:s, s:s, s:[s]}", "account_id", (json_int_t)acc_a, "sess_id",
                          "00000000000000a4", "device", "tvip", "evict", "00000000000000a2"));
    batch = json_pack("[oooo]", close1, close_early, open_late, evict);
    res = send_writes(1, batch);
    for (size_t i = 0; i < 4; i++) {
        EXPECT_ERROR(json_array_get(res, i), 0);
    }
    json_decref(res);
    json_decref(send_writes(3, batch)); /* replayed: harmless */
    json_decref(batch);
    load_projection();
    IT_ASSERT(field(proj_sess(acc_a, "00000000000000a1"), "revoked_ms") == (long long)ms + 10,
              "close");
    json_t *b9 = proj_sess(acc_b, "00000000000000b9");
    IT_ASSERT(b9 != NULL && field(b9, "revoked_ms") == (long long)ms + 11 &&
                  field(b9, "opened_ms") == (long long)ms + 5 &&
                  strcmp(json_string_value(json_object_get(b9, "edge")), "edge3") == 0,
              "an open after its close stays revoked");
    IT_ASSERT(field(proj_sess(acc_a, "00000000000000a2"), "revoked_ms") == (long long)ms + 12,
              "evicted");
    IT_ASSERT(field(proj_sess(acc_a, "00000000000000a4"), "revoked_ms") == 0, "new session");

    /* ---- last_seen ---- */
    json_t *seen = W("last_seen", 1, ms + 20);
    json_object_set_new(
        seen, "items",
        json_pack("[{s:I, s:I, s:I}, {s:I, s:i, s:I}, {s:I, s:i, s:I}]", "account_id",
                  (json_int_t)acc_a, "device_id", (json_int_t)dev1, "ms", (json_int_t)ms + 20,
                  "account_id", (json_int_t)acc_b, "device_id", 0, "ms", (json_int_t)ms + 21,
                  "account_id", (json_int_t)acc_other, "device_id", 0, "ms", (json_int_t)ms + 22));
    rr = send1(2, seen);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    seen = W("last_seen", 1, ms + 15); /* older: changes nothing */
    json_object_set_new(seen, "items",
                        json_pack("[{s:I, s:I, s:I}]", "account_id", (json_int_t)acc_a, "device_id",
                                  (json_int_t)dev1, "ms", (json_int_t)ms + 15));
    json_decref(send1(2, seen));
    load_projection();
    IT_ASSERT(field(proj_id(DB_ACCOUNTS, acc_a), "last_active_ms") == (long long)ms + 20,
              "account last_active_ms");
    IT_ASSERT(field(proj_id(DB_DEVICES, (uint64_t)dev1), "last_seen_ms") == (long long)ms + 20,
              "device last_seen_ms");
    IT_ASSERT(field(proj_id(DB_ACCOUNTS, acc_b), "last_active_ms") == (long long)ms + 21, "b");
    IT_ASSERT(field(proj_id(DB_ACCOUNTS, acc_other), "last_active_ms") == -1,
              "another client's account was touched");
    /* client_id 0: an edge's items of several clients, each for its own. */
    seen = W("last_seen", 0, ms + 25);
    json_object_set_new(seen, "items",
                        json_pack("[{s:I, s:i, s:I}, {s:I, s:i, s:I}, {s:i, s:i, s:I}]",
                                  "account_id", (json_int_t)acc_b, "device_id", 0, "ms",
                                  (json_int_t)ms + 25, "account_id", (json_int_t)acc_other,
                                  "device_id", 0, "ms", (json_int_t)ms + 26, "account_id", 999999,
                                  "device_id", 0, "ms", (json_int_t)ms + 26));
    rr = send1(1, seen);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    rr = send1(1, W("logout_all", 0, ms + 25)); /* only last_seen goes without a client */
    EXPECT_ERROR(rr, 100);
    json_decref(rr);
    load_projection();
    IT_ASSERT(field(proj_id(DB_ACCOUNTS, acc_b), "last_active_ms") == (long long)ms + 25 &&
                  field(proj_id(DB_ACCOUNTS, acc_other), "last_active_ms") == (long long)ms + 26 &&
                  field(proj_id(DB_ACCOUNTS, acc_other), "client_id") == 2,
              "last_seen of several clients");

    /* ---- settings_save ---- */
    json_t *set = W("settings_save", 1, ms + 30);
    with(set, json_pack("{s:I, s:i, s:i, s:i, s:i, s:I, s:[I], s:[I], s:[I,I], s:I}", "account_id",
                        (json_int_t)acc_a, "parent_code", 4321, "use_timeshift", 1,
                        "preferred_timeshift_offset", 2, "data_center_id", -1, "favorite_add",
                        (json_int_t)ch1, "lock_add", (json_int_t)ch2, "hidden", (json_int_t)ch2,
                        "sort", (json_int_t)ch2, (json_int_t)ch1, "last_channel", (json_int_t)ch1));
    rr = send1(3, set);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    set = W("settings_save", 1, ms + 31);
    with(set, json_pack("{s:I, s:[I,I], s:I}", "account_id", (json_int_t)acc_a, "favorite_add",
                        (json_int_t)ch2, (json_int_t)ch1, "favorite_remove", (json_int_t)ch1));
    json_decref(send1(3, set));
    set = W("settings_save", 1, ms + 32);
    with(set, json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_a, "favorite_add",
                        (json_int_t)ch_other));
    rr = send1(3, set);
    EXPECT_ERROR(rr, 1); /* another client's channel */
    json_decref(rr);
    set = W("settings_save", 1, ms + 32);
    with(set, json_pack("{s:I, s:i}", "account_id", (json_int_t)acc_a, "preferred_timeshift_offset",
                        99999999));
    rr = send1(3, set);
    EXPECT_ERROR(rr, 100);
    json_decref(rr);
    load_projection();
    json_t *acc = proj_id(DB_ACCOUNTS, acc_a);
    IT_ASSERT(field(acc, "parent_code") == 4321 && field(acc, "use_timeshift") == 1 &&
                  field(acc, "preferred_timeshift_offset") == 2 &&
                  json_is_null(json_object_get(acc, "data_center")),
              "account settings");
    json_t *st = proj_id(DB_ACC_SETTINGS, acc_a);
    char *dump = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *want = json_pack("{s:i, s:I, s:[I], s:[I], s:[I], s:[I,I], s:I}", "client_id", 1,
                             "account_id", (json_int_t)acc_a, "favorites", (json_int_t)ch2,
                             "parent_locked", (json_int_t)ch2, "hidden", (json_int_t)ch2, "sort",
                             (json_int_t)ch2, (json_int_t)ch1, "last_channel", (json_int_t)ch1);
    IT_ASSERT(json_equal(st, want), "acc_settings: %s", dump ? dump : "(none)");
    json_decref(want);
    free(dump);
    /* Whole lists (the device API's channels_sort) replace, then edits apply. */
    set = W("settings_save", 1, ms + 33);
    with(set, json_pack("{s:I, s:[I], s:[], s:I}", "account_id", (json_int_t)acc_a, "favorites",
                        (json_int_t)ch1, "parent_locked", "favorite_add", (json_int_t)ch2));
    rr = send1(2, set);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    load_projection();
    st = proj_id(DB_ACC_SETTINGS, acc_a);
    want = json_pack("[I,I]", (json_int_t)ch1, (json_int_t)ch2);
    IT_ASSERT(json_equal(json_object_get(st, "favorites"), want) &&
                  json_array_size(json_object_get(st, "parent_locked")) == 0 &&
                  field(st, "last_channel") == (long long)ch1,
              "replaced lists");
    json_decref(want);

    /* ---- messages ---- */
    uint64_t m_keep = create_message(acc_a_s, "0"), m_gone = create_message(acc_a_s, "1");
    uint64_t m_del = create_message(acc_a_s, "0");
    create_message(acc_a_s, "0");
    create_message(acc_a_s, "0");
    json_t *rd1 = W("message_read", 1, ms + 40), *rd2 = W("message_read", 1, ms + 40);
    json_t *del1 = W("message_delete", 1, ms + 41);
    with(rd1, json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_a, "message_id",
                        (json_int_t)m_keep));
    with(rd2, json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_a, "message_id",
                        (json_int_t)m_gone));
    with(del1,
         json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_a, "message_id", (json_int_t)m_del));
    batch = json_pack("[ooo]", rd1, rd2, del1);
    res = send_writes(2, batch);
    for (size_t i = 0; i < 3; i++) {
        EXPECT_ERROR(json_array_get(res, i), 0);
    }
    json_decref(res);
    load_projection();
    IT_ASSERT(field(proj_id(DB_MESSAGES, m_keep), "was_read") == 1, "was_read");
    IT_ASSERT(proj_id(DB_MESSAGES, m_gone) == NULL, "delete_after_reading");
    IT_ASSERT(proj_id(DB_MESSAGES, m_del) == NULL, "message_delete");
    res = send_writes(1, batch); /* replayed: the deleted ones are gone, nothing else */
    EXPECT_ERROR(json_array_get(res, 0), 0);
    EXPECT_ERROR(json_array_get(res, 1), 1);
    json_decref(res);
    json_decref(batch);
    json_t *all = W("message_delete", 1, ms + 42);
    with(all, json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_a, "message_id", "all"));
    rr = send1(3, all);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    load_projection();
    IT_ASSERT(proj_id(DB_MESSAGES, m_keep) == NULL, "delete all");

    /* ---- ownership: client 2 cannot touch client 1's account ---- */
    json_t *foreign = W("session_close", 2, ms + 50);
    with(foreign,
         json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_a, "sess_id", "00000000000000a4"));
    rr = send1(1, foreign);
    EXPECT_ERROR(rr, 1);
    json_decref(rr);
    foreign = W("device_delete", 2, ms + 50);
    with(foreign, json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_other, "device_id",
                            (json_int_t)dev1));
    rr = send1(1, foreign);
    EXPECT_ERROR(rr, 1);
    json_decref(rr);
    foreign = W("logout_all", 1, ms + 50);
    json_object_set_new(foreign, "account_id", json_integer((json_int_t)acc_other));
    rr = send1(1, foreign);
    EXPECT_ERROR(rr, 1);
    json_decref(rr);

    /* ---- device_delete revokes the device's sessions ---- */
    json_t *ddel = W("device_delete", 1, ms + 60);
    with(ddel,
         json_pack("{s:I, s:I}", "account_id", (json_int_t)acc_a, "device_id", (json_int_t)dev1));
    json_t *ddel_again = json_deep_copy(ddel);
    rr = send1(2, ddel);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    rr = send1(2, ddel_again);
    EXPECT_ERROR(rr, 1);
    json_decref(rr);
    load_projection();
    IT_ASSERT(proj_id(DB_DEVICES, (uint64_t)dev1) == NULL, "device deleted");
    IT_ASSERT(!proj_has_prefix(DB_UNIQ, "dev_uid/1/00:1A:79:00:00:01"), "uid index deleted");
    IT_ASSERT(field(proj_sess(acc_a, "00000000000000a3"), "revoked_ms") == (long long)ms + 60,
              "the device's session is revoked");
    IT_ASSERT(field(proj_sess(acc_a, "00000000000000a4"), "revoked_ms") == 0,
              "other sessions stay");

    /* ---- logout_all ---- */
    json_t *out = W("logout_all", 1, ms + 70);
    json_object_set_new(out, "account_id", json_integer((json_int_t)acc_a));
    rr = send1(3, out);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    json_t *stale_open = W("session_open", 1, ms + 65); /* opened before the logout */
    with(stale_open,
         json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_a, "sess_id", "00000000000000a5"));
    json_decref(send1(3, stale_open));
    load_projection();
    IT_ASSERT(field(proj_id(DB_ACCOUNTS, acc_a), "logout_before_ms") == (long long)ms + 70,
              "logout_before_ms");
    IT_ASSERT(proj_sess(acc_a, "00000000000000a4") == NULL &&
                  proj_sess(acc_a, "00000000000000a5") == NULL,
              "sessions of the account after logout_all");
    IT_ASSERT(proj_sess(acc_b, "00000000000000b9") != NULL, "another account's session");

    /* ---- account_register ---- */
    json_t *regw = W("account_register", 1, ms + 80);
    with(regw, json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "device_uid", "tv-0001", "password_hash",
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                         "password_salt", "salt1", "parent_code", 1111, "device", "tizen_tv",
                         "device_model", "UE55"));
    json_t *regw_copy = json_deep_copy(regw);
    rr = send1(1, json_deep_copy(regw));
    EXPECT_ERROR(rr, 2); /* registration is off by default */
    json_decref(rr);
    admin(2, "PATCH", "/admin/v1/clients/1", "{\"settings\":{\"registration_enabled\":true}}", &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    rr = send1(1, regw);
    EXPECT_ERROR(rr, 0);
    long long new_acc = field(rr, "account_id");
    const char *abon = json_string_value(json_object_get(rr, "abonement"));
    IT_ASSERT(new_acc > 0 && abon != NULL && abon[0] != '\0', "register answer");
    char abon_s[64];
    it_fmt(abon_s, sizeof(abon_s), "%s", abon);
    json_decref(rr);
    rr = send1(2, regw_copy); /* the same write again: the first answer */
    EXPECT_ERROR(rr, 0);
    IT_ASSERT(field(rr, "account_id") == new_acc &&
                  strcmp(json_string_value(json_object_get(rr, "abonement")), abon_s) == 0,
              "a replayed register made another account");
    json_decref(rr);
    json_t *reg2 = W("account_register", 1, ms + 81); /* same uid, new reqid */
    with(reg2, json_pack("{s:s}", "device_uid", "tv-0001"));
    rr = send1(3, reg2);
    EXPECT_ERROR(rr, 6);
    json_decref(rr);
    json_t *reg3 = W("account_register", 1, ms + 81);
    rr = send1(3, reg3);
    EXPECT_ERROR(rr, 7);
    json_decref(rr);
    json_t *reg4 = W("account_register", 1, ms + 82); /* by phone */
    with(reg4, json_pack("{s:s}", "mobile_phone_number", "+15550001"));
    rr = send1(3, reg4);
    EXPECT_ERROR(rr, 0);
    json_decref(rr);
    load_projection();
    json_t *nacc = proj_id(DB_ACCOUNTS, (uint64_t)new_acc);
    IT_ASSERT(nacc != NULL && field(nacc, "parent_code") == 1111 &&
                  strcmp(json_string_value(json_object_get(nacc, "password_salt")), "salt1") == 0 &&
                  strcmp(json_string_value(json_object_get(nacc, "abonement")), abon_s) == 0,
              "registered account");
    char uidkey[64];
    it_fmt(uidkey, sizeof(uidkey), "dev_uid/1/tv-0001");
    IT_ASSERT(proj_has_prefix(DB_UNIQ, uidkey), "registered device index");
    IT_ASSERT(snapshot_count(DB_DSESS) > 0 && snapshot_count(DB_ACC_SETTINGS) == 1,
              "dsess and acc_settings in the edge snapshot");

    /* Deleting the account (Billing API) drops its sessions and settings. */
    billing(&c1, 2, "account/delete", IT_KV("account_id", acc_a_s), NULL);
    load_projection();
    IT_ASSERT(proj_id(DB_ACC_SETTINGS, acc_a) == NULL, "settings of a deleted account");

    /* ---- malformed ---- */
    json_t *bad = W("session_open", 1, ms);
    json_object_set_new(bad, "reqid", json_string("XYZ"));
    rr = send1(1, bad);
    EXPECT_ERROR(rr, 100);
    json_decref(rr);
    rr = send1(1, W("no_such_op", 1, ms));
    EXPECT_ERROR(rr, 100);
    json_decref(rr);
    rr = send1(1, W("session_close", 99, ms));
    EXPECT_ERROR(rr, 1); /* no client 99 */
    json_decref(rr);
    bad = W("session_close", 1, ms);
    with(bad, json_pack("{s:I, s:s}", "account_id", (json_int_t)acc_b, "sess_id", "ABC"));
    rr = send1(1, bad);
    EXPECT_ERROR(rr, 100);
    json_decref(rr);
    static const char *const bodies[] = {"",
                                         "[]",
                                         "{\"writes\":[]}",
                                         "{\"writes\":[1]}",
                                         "{\"writes\":{}}",
                                         "{\"writes\":[{}],\"x\":1}",
                                         "nope"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        post_raw(2, bodies[i], IT_TOKEN, &r);
        IT_ASSERT(r.status == 400, "body %s: %ld %s", bodies[i], r.status, r.body);
        it_resp_close(&r);
    }
    post_raw(2, "{\"writes\":[{}]}", "wrong-token", &r);
    IT_ASSERT_STATUS(&r, 401);
    it_resp_close(&r);
    post_raw(2, "{\"writes\":[{}]}", NULL, &r);
    IT_ASSERT_STATUS(&r, 401);
    it_resp_close(&r);
    json_t *many = json_array();
    for (int i = 0; i < 1001; i++) {
        json_array_append_new(many, json_object());
    }
    json_t *body = json_pack("{s:o}", "writes", many);
    char *text = json_dumps(body, JSON_COMPACT);
    post_raw(2, text, IT_TOKEN, &r);
    IT_ASSERT_STATUS(&r, 400);
    it_resp_close(&r);
    free(text);
    json_decref(body);
    it_test_ok();
}

/* ---- fixtures ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = N_NODES, .base_port = BASE_PORT, .name = "device-writes"};
    cl = it_cluster_new(&o);
    if (cl == NULL || it_wait_all_ready(cl, 20000) == 0) {
        fprintf(stderr, "cluster did not start\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(projection);
    it_group_done(cl);
    it_cluster_free(cl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keys, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_device_ops, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
