/*
 * it_edge_follow: a real tvmw-edge following a real 3-node control plane
 * (docs/edge-protocol.md, issue 5 items 1-3), and the same edge against a
 * fake control-plane node that serves broken snapshots.
 *
 * test_follow_and_survive:
 *   - a new edge downloads a snapshot and reports "ok";
 *   - an account created through the Billing API shows at the edge within
 *     1 s, its deactivation too;
 *   - every control-plane node killed: the edge keeps answering from its
 *     state and /healthz says "stale" (200); nodes back: it catches up by
 *     itself;
 *   - the edge restarted while the control plane is down serves its saved
 *     state;
 *   - an edge that was away longer than the feed window (changelog of 100
 *     entries) gets 410 and loads a fresh snapshot.
 * test_refuses_bad_snapshots (fake node): a truncated snapshot and one
 *   with a wrong checksum are refused with a clear error and leave "no
 *   state"; a valid one is loaded; past the window, a snapshot of a wrong
 *   version is refused and the edge keeps serving what it had; a valid
 *   newer one replaces it.
 *
 * test_leaves_lagging_node (two fake nodes): the edge starts on the node of
 *   its datacenter, which is stuck at an index while the other moves on;
 *   probing finds it and the edge switches.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN. Ports 25000..25099.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/http.h"
#include "it_billing.h"
#include "it_cmocka.h"
#include "it_edge.h"

#define BASE_PORT  25000 /* cp HTTP 25001..3, raft 25101..3 */
#define EDGE_ADDR  "127.0.0.1:25051"
#define EDGE2_ADDR "127.0.0.1:25052"
#define FAKE_ADDR  "127.0.0.1:25061"
#define EDGE3_ADDR "127.0.0.1:25053"
#define STUCK_ADDR "127.0.0.1:25062" /* a node cut off from the leader, stuck at 10 */
#define AHEAD_ADDR "127.0.0.1:25063" /* a node that moved on to 20 */
#define N_NODES    3
#define KEY1       "edge-follow-key-1"
#define VISIBLE_MS 1000 /* the bound for a change to reach the edge */

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};

/* ---- the edge process --------------------------------------------------------- */

static struct it_edge edge;

/* The edge's debug read: HTTP status; *active from the record (-1 if none). */
static long edge_account(const struct it_edge *e, uint64_t client, const char *abonement,
                         long long *active)
{
    char path[256];
    struct it_resp r;
    it_fmt(path, sizeof(path), "/edge/v1/debug/account?client_id=%llu&abonement=%s",
           (unsigned long long)client, abonement);
    it_edge_get(e, path, &r);
    long status = r.status;
    const json_t *acc = json_object_get(r.json, "account");
    *active = json_is_integer(json_object_get(acc, "active"))
                  ? (long long)json_integer_value(json_object_get(acc, "active"))
                  : -1;
    it_resp_close(&r);
    return status;
}

/* Waits until the account reads with `active` (or, for want_active -1,
 * until it is absent); returns the ms it took or -1 after timeout_ms. */
static long long edge_wait_account(const struct it_edge *e, uint64_t client, const char *abonement,
                                   long long want_active, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        long long active;
        long st = edge_account(e, client, abonement, &active);
        if ((want_active < 0 && st == 404) || (st == 200 && active == want_active)) {
            return (long long)(it_now_ms() - t0);
        }
        it_sleep_ms(10);
    } while (it_now_ms() - t0 < timeout_ms);
    return -1;
}

/* ---- control plane ------------------------------------------------------------- */

static void billing(uint64_t node, const char *path, const char *const *kv, json_t **reply)
{
    struct it_resp r;
    char why[1400];
    for (int attempt = 0; attempt < 50; attempt++) {
        it_bl_call(cl, node, IT_BL_PY, &c1, path, kv, &r);
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

static void create_account(const char *abonement)
{
    json_t *o;
    billing(1, "customer/create", IT_KV("firstname", abonement), &o);
    char cust[24];
    it_fmt(cust, sizeof(cust), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    billing(2, "account/create",
            IT_KV("customer_id", cust, "abonement", abonement, "password", "pw-123456"), NULL);
}

static void restart_cluster(void)
{
    for (uint64_t id = 1; id <= N_NODES; id++) {
        IT_ASSERT(it_node_start(cl, id) == 0, "restart of node %llu", (unsigned long long)id);
    }
    IT_ASSERT(it_wait_all_ready(cl, 30000) != 0, "no leader after the restart");
}

/* ---- test 1: real control plane ----------------------------------------------------- */

static void test_follow_and_survive(void **state)
{
    (void)state;
    struct it_opts o = {
        .n_nodes = N_NODES,
        .base_port = BASE_PORT,
        .name = "edge-follow",
        .extra_config = "{\"state\": {\"changelog_entries\": 100},"
                        " \"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE_ADDR "\","
                        " \"datacenter\": \"dc1\"}]}",
    };
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    struct it_resp r;
    it_admin(cl, 1, "POST", "/admin/v1/clients",
             "{\"name\":\"edge\",\"billing_api_key\":\"" KEY1 "\"}", NULL, &r);
    IT_ASSERT_STATUS(&r, 201);
    it_resp_close(&r);

    /* A new edge: snapshot, then the feed. */
    it_edge_define(&edge, cl->dir, cl->config_path, "e1", EDGE_ADDR);
    it_edge_start(&edge);
    IT_ASSERT(it_edge_wait_health(&edge, "ok", 10000), "the edge never reported ok");
    IT_ASSERT(it_edge_wait_metric(&edge, "tvmw_edge_snapshots_total", 1, NULL, 2000),
              "no snapshot loaded");

    /* A new account and its deactivation reach the edge within 1 s. */
    create_account("500100");
    long long took = edge_wait_account(&edge, 1, "500100", 1, 5000);
    IT_ASSERT(took >= 0 && took <= VISIBLE_MS, "new account visible after %lld ms", took);
    char url[256];
    it_fmt(url, sizeof(url), "http://%s/edge/v1/debug/account?client_id=1&abonement=500100",
           EDGE_ADDR);
    it_http("GET", url, NULL, 0, NULL, 3000, &r); /* records are not public */
    IT_ASSERT_STATUS(&r, 401);
    it_resp_close(&r);
    fprintf(stderr, "account visible at the edge %lld ms after the write was acknowledged\n", took);
    billing(3, "account/deactivate", IT_KV("abonement", "500100"), NULL);
    took = edge_wait_account(&edge, 1, "500100", 0, 5000);
    IT_ASSERT(took >= 0 && took <= VISIBLE_MS, "deactivation visible after %lld ms", took);
    fprintf(stderr, "deactivation visible at the edge after %lld ms\n", took);
    IT_ASSERT(
        it_edge_wait_metric(&edge, "tvmw_edge_applied_index", -1, "tvmw_edge_cp_last_index", 2000),
        "applied index differs from the control plane's");

    /* The whole control plane down: the edge serves, and says it is stale. */
    it_cluster_kill_all(cl);
    uint64_t t_kill = it_now_ms();
    IT_ASSERT(it_edge_wait_health(&edge, "stale", 15000), "the edge never said it was stale");
    fprintf(stderr, "edge stale %llu ms after the control plane went down\n",
            (unsigned long long)(it_now_ms() - t_kill));
    char st[32];
    it_edge_health(&edge, st, sizeof(st), &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(json_is_true(json_object_get(r.json, "stale")), "stale flag: %s", r.body);
    IT_ASSERT(json_is_string(json_object_get(r.json, "last_error")), "no last_error: %s", r.body);
    it_resp_close(&r);
    long long active;
    IT_ASSERT(edge_account(&edge, 1, "500100", &active) == 200 && active == 0,
              "the edge stopped serving its state");

    /* Back: it catches up by itself. */
    restart_cluster();
    create_account("500101");
    took = edge_wait_account(&edge, 1, "500101", 1, 20000);
    IT_ASSERT(took >= 0, "the edge did not catch up after the control plane returned");
    IT_ASSERT(it_edge_wait_health(&edge, "ok", 5000), "not ok after catching up");

    /* Edge restarted while the control plane is down: its saved state. */
    it_cluster_kill_all(cl);
    it_edge_stop(&edge);
    it_edge_start(&edge);
    IT_ASSERT(it_edge_wait_health(&edge, "stale", 5000), "restarted edge: not serving stale");
    IT_ASSERT(edge_account(&edge, 1, "500101", &active) == 200 && active == 1,
              "restarted edge lost its state");
    IT_ASSERT(it_edge_metric(&edge, "tvmw_edge_snapshots_total") == 0, "snapshot from nowhere");

    /* Away longer than the feed window: 410, then a fresh snapshot. */
    it_edge_stop(&edge);
    restart_cluster();
    billing(1, "account/deactivate", IT_KV("abonement", "500101"), NULL);
    for (int i = 0; i < 120; i++) {
        char name[24];
        it_fmt(name, sizeof(name), "filler-%d", i);
        billing((uint64_t)(1 + i % N_NODES), "customer/create", IT_KV("firstname", name), NULL);
    }
    it_edge_start(&edge);
    took = edge_wait_account(&edge, 1, "500101", 0, 20000);
    IT_ASSERT(took >= 0, "the edge did not catch up past the feed window");
    IT_ASSERT(it_edge_wait_metric(&edge, "tvmw_edge_snapshots_total", 1, NULL, 2000),
              "past the window the edge should load a snapshot");
    IT_ASSERT(it_edge_log_has(&edge, "feed window: downloading a snapshot"), "no 410 in the log");
    IT_ASSERT(it_edge_wait_health(&edge, "ok", 5000), "not ok after the snapshot");
    it_edge_stop(&edge);
    it_test_ok();
}

/* ---- test 2: a fake node with broken snapshots --------------------------------------- */

enum fake_mode { FAKE_TRUNCATED, FAKE_BAD_SUM, FAKE_V10, FAKE_BAD_VERSION, FAKE_V60 };

static _Atomic int fake_mode;

struct enc {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct enc *e, const void *d, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2;
        e->p = realloc(e->p, e->cap);
        if (e->p == NULL) {
            abort();
        }
    }
    memcpy(e->p + e->len, d, n);
    e->len += n;
}

static void put_record(struct enc *e, unsigned db, const void *k, uint32_t kl, const void *v,
                       uint32_t vl)
{
    uint8_t h[10];
    h[0] = 1;
    h[1] = (uint8_t)db;
    tvmw_put_u32(h + 2, kl);
    tvmw_put_u32(h + 6, vl);
    put(e, h, sizeof(h));
    put(e, k, kl);
    put(e, v, vl);
}

/* A snapshot at `index` with client 1's account 7 "777", active or not. */
static void fake_snapshot(struct enc *e, uint32_t version, uint64_t index, int active)
{
    uint8_t h[32] = "TVMWESN1", id[8], end[9];
    tvmw_put_u32(h + 8, version);
    tvmw_put_u32(h + 12, 0);
    tvmw_put_u64(h + 16, index);
    tvmw_put_u64(h + 24, 0);
    put(e, h, sizeof(h));
    tvmw_put_be64(id, 7);
    char rec[128];
    it_fmt(rec, sizeof(rec), "{\"id\":7,\"client_id\":1,\"abonement\":\"777\",\"active\":%d}",
           active);
    put_record(e, 3, id, 8, rec, (uint32_t)strlen(rec));
    put_record(e, 12, "abonement/1/777", 15, id, 8);
    end[0] = 0xFF;
    tvmw_put_u64(end + 1, 2);
    put(e, end, sizeof(end));
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(e->p, e->len, md);
    put(e, md, sizeof(md));
}

static void fake_handle(void *ctx, struct tvmw_http_req *req)
{
    (void)ctx;
    int mode = atomic_load(&fake_mode);
    uint64_t index = mode == FAKE_V60 || mode == FAKE_BAD_VERSION ? 60 : 10;
    if (strcmp(req->path, "/edge/v1/snapshot") == 0) {
        struct enc e = {0};
        fake_snapshot(&e, mode == FAKE_BAD_VERSION ? 2 : 1, index, mode == FAKE_V60 ? 0 : 1);
        size_t len = e.len;
        if (mode == FAKE_TRUNCATED) {
            len -= 20; /* in the trailer */
        } else if (mode == FAKE_BAD_SUM) {
            e.p[60] ^= 0x01; /* in the first record's value: only the checksum tells */
        }
        char idx[24];
        it_fmt(idx, sizeof(idx), "%llu", (unsigned long long)index);
        const char *hdrs[] = {"X-Tvmw-Snapshot-Index", idx, NULL};
        tvmw_http_reply(req, 200, "application/octet-stream", e.p, len, hdrs);
        free(e.p);
        return;
    }
    if (strcmp(req->path, "/edge/v1/feed") == 0) {
        const char *a = tvmw_http_query(req, "after");
        unsigned long long after = a ? strtoull(a, NULL, 10) : 0;
        char body[256];
        if (after < index && index == 60) {
            it_fmt(body, sizeof(body),
                   "{\"error\":\"snapshot_required\",\"horizon\":50,\"last_index\":60}");
            tvmw_http_reply(req, 410, "application/json", body, strlen(body), NULL);
            return;
        }
        it_sleep_ms(200); /* a short long poll */
        it_fmt(body, sizeof(body),
               "{\"after\":%llu,\"last_index\":%llu,\"complete\":true,\"changes\":[]}", after,
               (unsigned long long)index);
        tvmw_http_reply(req, 200, "application/json", body, strlen(body), NULL);
        return;
    }
    tvmw_http_reply_error(req, 404, "not_found", "fake node");
}

static char fake_dir[IT_DIR_MAX];
static struct it_edge edge2;
static struct tvmw_http_server *fake;

/* Waits until the refused-snapshot counter passes `above`; returns the
 * last_error then. */
static void wait_refusal(double above, const char *reason_part)
{
    uint64_t t0 = it_now_ms();
    while (it_edge_metric(&edge2, "tvmw_edge_snapshots_refused_total") <= above) {
        IT_ASSERT(it_now_ms() - t0 < 15000, "no snapshot refused");
        it_sleep_ms(50);
    }
    struct it_resp r;
    char st[32];
    it_edge_health(&edge2, st, sizeof(st), &r);
    const char *err = json_string_value(json_object_get(r.json, "last_error"));
    IT_ASSERT(err != NULL && strstr(err, reason_part) != NULL, "last_error %s, wanted \"%s\"",
              r.body, reason_part);
    fprintf(stderr, "refused: %s\n", err);
    it_resp_close(&r);
}

static void test_refuses_bad_snapshots(void **state)
{
    (void)state;
    it_fmt(fake_dir, sizeof(fake_dir), "/tmp/it-edge-fake-XXXXXX");
    IT_ASSERT(mkdtemp(fake_dir) != NULL, "mkdtemp");
    char config[IT_PATH_MAX];
    it_fmt(config, sizeof(config), "%s/cluster.json", fake_dir);
    FILE *f = fopen(config, "w");
    IT_ASSERT(f != NULL, "cannot write %s", config);
    fprintf(f,
            "{\"cluster_name\": \"fake\", \"admin_token\": \"%s\", \"data_root\": \"%s\","
            " \"nodes\": [{\"id\": 1, \"raft_address\": \"127.0.0.1:25161\","
            " \"http_address\": \"%s\", \"datacenter\": \"dc1\"}],"
            " \"edges\": [{\"id\": \"e2\", \"http_address\": \"%s\", \"datacenter\": \"dc1\"}]}\n",
            IT_TOKEN, fake_dir, FAKE_ADDR, EDGE2_ADDR);
    fclose(f);
    struct tvmw_http_server_conf hc = {.address = FAKE_ADDR,
                                       .max_body_bytes = 4096,
                                       .max_connections = 64,
                                       .thread_per_connection = true};
    atomic_store(&fake_mode, FAKE_TRUNCATED);
    IT_ASSERT(tvmw_http_server_start(&hc, fake_handle, NULL, &fake) == 0, "fake node");

    it_edge_define(&edge2, fake_dir, config, "e2", EDGE2_ADDR);
    it_edge_start(&edge2);
    wait_refusal(0, "truncated");
    struct it_resp r;
    char st[32];
    IT_ASSERT(it_edge_health(&edge2, st, sizeof(st), &r) == 503 && strcmp(st, "no_state") == 0,
              "without a state: %s", r.body);
    it_resp_close(&r);

    atomic_store(&fake_mode, FAKE_BAD_SUM);
    wait_refusal(it_edge_metric(&edge2, "tvmw_edge_snapshots_refused_total"), "checksum");

    atomic_store(&fake_mode, FAKE_V10);
    IT_ASSERT(edge_wait_account(&edge2, 1, "777", 1, 15000) >= 0, "valid snapshot not loaded");
    IT_ASSERT(it_edge_wait_metric(&edge2, "tvmw_edge_applied_index", 10, NULL, 2000),
              "applied index");

    /* Past the window, a bad snapshot: refused, the state stays. */
    double refused = it_edge_metric(&edge2, "tvmw_edge_snapshots_refused_total");
    atomic_store(&fake_mode, FAKE_BAD_VERSION);
    wait_refusal(refused, "version");
    long long active;
    IT_ASSERT(edge_account(&edge2, 1, "777", &active) == 200 && active == 1,
              "the refused snapshot touched the state");
    IT_ASSERT(it_edge_metric(&edge2, "tvmw_edge_applied_index") == 10, "applied index moved");
    IT_ASSERT(it_edge_health(&edge2, st, sizeof(st), &r) == 200, "serving: %s", r.body);
    it_resp_close(&r);

    atomic_store(&fake_mode, FAKE_V60);
    IT_ASSERT(edge_wait_account(&edge2, 1, "777", 0, 15000) >= 0, "newer snapshot not loaded");
    IT_ASSERT(it_edge_wait_metric(&edge2, "tvmw_edge_applied_index", 60, NULL, 2000),
              "applied index");
    it_edge_stop(&edge2);
    it_test_ok();
}

/* ---- test 3: leaving a node that fell behind ------------------------------------------ */

static const int stuck_node = 1, ahead_node = 2;
static struct tvmw_http_server *stuck, *ahead;
static struct it_edge edge3;

static void lag_handle(void *ctx, struct tvmw_http_req *req)
{
    bool is_ahead = ctx == &ahead_node;
    if (strcmp(req->path, "/edge/v1/snapshot") == 0) {
        struct enc e = {0};
        fake_snapshot(&e, 1, 10, 1);
        const char *hdrs[] = {"X-Tvmw-Snapshot-Index", "10", NULL};
        tvmw_http_reply(req, 200, "application/octet-stream", e.p, e.len, hdrs);
        free(e.p);
        return;
    }
    if (strcmp(req->path, "/edge/v1/feed") != 0) {
        tvmw_http_reply_error(req, 404, "not_found", "fake node");
        return;
    }
    const char *a = tvmw_http_query(req, "after");
    const char *w = tvmw_http_query(req, "wait_ms");
    unsigned long long after = a ? strtoull(a, NULL, 10) : 0;
    unsigned long long last = is_ahead ? 20 : 10;
    char body[512];
    if (after < last) {
        /* Index 15 deactivated account 7 ({"active":0} in base64). */
        it_fmt(
            body, sizeof(body),
            "{\"after\":%llu,\"last_index\":%llu,\"complete\":true,\"changes\":["
            "{\"index\":15,\"op\":\"put\",\"db\":3,\"key\":\"AAAAAAAAAAc=\","
            "\"value\":\"eyJpZCI6NywiY2xpZW50X2lkIjoxLCJhYm9uZW1lbnQiOiI3NzciLCJhY3RpdmUiOjB9\"}]}",
            after, last);
    } else {
        if (w == NULL || strcmp(w, "0") != 0) {
            it_sleep_ms(300); /* a short long poll */
        }
        it_fmt(body, sizeof(body),
               "{\"after\":%llu,\"last_index\":%llu,\"complete\":true,\"changes\":[]}", after,
               last);
    }
    tvmw_http_reply(req, 200, "application/json", body, strlen(body), NULL);
}

static void test_leaves_lagging_node(void **state)
{
    (void)state;
    it_fmt(fake_dir, sizeof(fake_dir), "/tmp/it-edge-lag-XXXXXX");
    IT_ASSERT(mkdtemp(fake_dir) != NULL, "mkdtemp");
    char config[IT_PATH_MAX];
    it_fmt(config, sizeof(config), "%s/cluster.json", fake_dir);
    FILE *f = fopen(config, "w");
    IT_ASSERT(f != NULL, "cannot write %s", config);
    /* The stuck node is in the edge's datacenter: the edge starts on it. */
    fprintf(f,
            "{\"cluster_name\": \"lag\", \"admin_token\": \"%s\", \"data_root\": \"%s\","
            " \"nodes\": [{\"id\": 1, \"raft_address\": \"127.0.0.1:25162\","
            " \"http_address\": \"%s\", \"datacenter\": \"dcA\"},"
            " {\"id\": 2, \"raft_address\": \"127.0.0.1:25163\","
            " \"http_address\": \"%s\", \"datacenter\": \"dcB\"}],"
            " \"edges\": [{\"id\": \"e3\", \"http_address\": \"%s\", \"datacenter\": \"dcA\"}]}\n",
            IT_TOKEN, fake_dir, STUCK_ADDR, AHEAD_ADDR, EDGE3_ADDR);
    fclose(f);
    struct tvmw_http_server_conf hc = {
        .max_body_bytes = 4096, .max_connections = 64, .thread_per_connection = true};
    hc.address = STUCK_ADDR;
    IT_ASSERT(tvmw_http_server_start(&hc, lag_handle, (void *)&stuck_node, &stuck) == 0, "stuck");
    hc.address = AHEAD_ADDR;
    IT_ASSERT(tvmw_http_server_start(&hc, lag_handle, (void *)&ahead_node, &ahead) == 0, "ahead");

    it_edge_define(&edge3, fake_dir, config, "e3", EDGE3_ADDR);
    it_edge_start(&edge3);
    IT_ASSERT(edge_wait_account(&edge3, 1, "777", 1, 10000) >= 0, "snapshot not loaded");
    IT_ASSERT(it_edge_wait_metric(&edge3, "tvmw_edge_following_node_id", 1, NULL, 2000),
              "the edge should start in its own datacenter");
    uint64_t t0 = it_now_ms();
    long long took = edge_wait_account(&edge3, 1, "777", 0, 30000);
    IT_ASSERT(took >= 0, "the edge stayed on the node that fell behind");
    fprintf(stderr, "left the lagging node after %llu ms\n",
            (unsigned long long)(it_now_ms() - t0));
    IT_ASSERT(it_edge_wait_metric(&edge3, "tvmw_edge_applied_index", 20, NULL, 2000),
              "applied index");
    IT_ASSERT(it_edge_metric(&edge3, "tvmw_edge_following_node_id") == 2, "following");
    IT_ASSERT(it_edge_log_has(&edge3, "is behind (last_index 10) while node=2"), "no log line");
    it_edge_stop(&edge3);
    it_test_ok();
}

static int teardown_lag(void **state)
{
    bool failed = !it_current_ok;
    it_test_teardown(state);
    it_edge_kill(&edge3);
    if (failed) {
        it_edge_dump_log(&edge3);
        fprintf(stderr, "kept %s\n", fake_dir);
    } else if (fake_dir[0] != '\0') {
        char cmd[IT_DIR_MAX + 16];
        it_fmt(cmd, sizeof(cmd), "rm -rf %s", fake_dir);
        IT_ASSERT(system(cmd) == 0, "%s", cmd);
    }
    tvmw_http_server_stop(stuck);
    tvmw_http_server_stop(ahead);
    stuck = ahead = NULL;
    return 0;
}

/* ---- fixtures ---------------------------------------------------------------------- */

static int teardown_follow(void **state)
{
    bool failed = !it_current_ok;
    it_test_teardown(state);
    it_edge_kill(&edge);
    if (failed) {
        it_edge_dump_log(&edge);
    }
    it_group_done(cl);
    it_cluster_free(cl);
    cl = NULL;
    return 0;
}

static int teardown_fake(void **state)
{
    bool failed = !it_current_ok;
    it_test_teardown(state);
    it_edge_kill(&edge2);
    if (failed) {
        it_edge_dump_log(&edge2);
        fprintf(stderr, "kept %s\n", fake_dir);
    } else if (fake_dir[0] != '\0') {
        char cmd[IT_DIR_MAX + 16];
        it_fmt(cmd, sizeof(cmd), "rm -rf %s", fake_dir);
        IT_ASSERT(system(cmd) == 0, "%s", cmd);
    }
    tvmw_http_server_stop(fake);
    fake = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_follow_and_survive, it_test_setup, teardown_follow),
        cmocka_unit_test_setup_teardown(test_refuses_bad_snapshots, it_test_setup, teardown_fake),
        cmocka_unit_test_setup_teardown(test_leaves_lagging_node, it_test_setup, teardown_lag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
