/*
 * it_node_faults: two ways a node used to go wrong, found by the
 * jepsen-like suite (tests/jepsen-like/runs of seed 12, 30 minutes).
 *
 * test_rollback_compacted_configuration — libraft 0.15 crashed (SIGSEGV in
 * membershipRollback) when a follower had to drop an uncommitted
 * membership change while the last committed configuration was already
 * compacted out of its log. Here: the leader appends "remove node F2"
 * while both followers are stopped, is stopped itself, the followers elect
 * a new leader that writes over that index, and the old leader resumes.
 * It must roll back (controlplane/raftguard.c), stay up, keep all three
 * members and converge. The same with the old leader crashed and
 * restarted: libraft 0.15 then took the change from its log for committed
 * and kept a configuration the cluster never agreed on (two members).
 *
 * test_full_state_stops_node — a node whose LMDB map filled up kept voting
 * and leading with the entry skipped, so replicas diverged. Node 3 runs
 * with a 64 MiB map while bulk imports fill the state: it must exit with
 * status 74 and say why, the others go on, and once restarted with a
 * larger map it catches up to the same state.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT 29500 /* HTTP 29501..3, raft 29601..3 */
#define FILL_KEY  "fill-billing-key-0123456789abcdef"

static struct it_cluster *cl;

static void sig(uint64_t id, int s)
{
    IT_ASSERT(cl->nodes[id].pid > 0 && kill(cl->nodes[id].pid, s) == 0, "signal %d to node %llu", s,
              (unsigned long long)id);
}

/* Waits until node `on` reports `n` members in GET /admin/v1/cluster,
 * stale read (works on a follower without a leader round trip). */
static bool members_are(uint64_t on, size_t n, unsigned timeout_ms, char *last, size_t last_len)
{
    uint64_t t0 = it_now_ms();
    do {
        struct it_resp r;
        it_admin(cl, on, "GET", "/admin/v1/cluster", NULL, NULL, &r);
        bool ok = r.status == 200 && json_array_size(json_object_get(r.json, "members")) == n;
        it_fmt(last, last_len, "%ld %s", r.status, r.body);
        it_resp_close(&r);
        if (ok) {
            return true;
        }
        it_sleep_ms(100);
    } while (it_now_ms() - t0 < timeout_ms);
    return false;
}

/* The node among a and b whose /healthz says it leads, or 0. */
static uint64_t leader_of(uint64_t a, uint64_t b, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        for (uint64_t id = a;; id = b) {
            struct it_resp r;
            bool ok = it_healthz(cl, id, &r) && r.status == 200 && it_resp_str(&r, "role") &&
                      strcmp(it_resp_str(&r, "role"), "leader") == 0;
            it_resp_close(&r);
            if (ok) {
                return id;
            }
            if (id == b) {
                break;
            }
        }
        it_sleep_ms(100);
    } while (it_now_ms() - t0 < timeout_ms);
    return 0;
}

/* restart: the old leader crashes and restarts instead of pausing, and
 * must not take its own uncommitted change for a committed one. */
static void rollback_scenario(bool restart)
{
    /* Snapshots every 16 entries keeping 8: the bootstrap configuration at
     * index 1 leaves every log after the first writes. */
    struct it_opts o = {.n_nodes = 3,
                        .base_port = BASE_PORT,
                        .snapshot_threshold = 16,
                        .snapshot_trailing = 8,
                        .name = "rollback"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    uint64_t lead = it_wait_all_ready(cl, 20000);
    IT_ASSERT(lead != 0, "no leader at start");
    struct it_writer *w;
    IT_ASSERT(it_writer_start(cl, "rb", 2, &w) == 0, "writer did not start");
    IT_ASSERT(it_writer_wait(w, 120, 30000), "no writes");
    it_writer_stop(w);
    IT_ASSERT(it_wait_converged(cl, 20000), "did not converge before the fault");

    lead = it_wait_leader(cl, 10000);
    uint64_t f1 = lead == 1 ? 2 : 1, f2 = lead == 3 ? 2 : 3;
    /* The followers crash (a stopped process would still receive the
     * entry into its socket buffer); the leader appends the change alone
     * and cannot commit it; the client gives up after a second. */
    it_node_kill(cl, f1);
    it_node_kill(cl, f2);
    char url[256], path[64], auth[96];
    it_fmt(path, sizeof(path), "/admin/v1/cluster/members/%llu", (unsigned long long)f2);
    it_node_url(cl, lead, path, url, sizeof(url));
    it_fmt(auth, sizeof(auth), "Authorization: Bearer %s", IT_TOKEN);
    const char *const hdr[] = {auth, NULL};
    struct it_resp r;
    it_http("DELETE", url, NULL, 0, hdr, 1000, &r);
    it_resp_close(&r);
    /* Stopped, not killed: a restart would reload the configuration from
     * disk and take the other path. */
    if (restart) {
        it_node_kill(cl, lead);
    } else {
        sig(lead, SIGSTOP);
    }
    IT_ASSERT(it_node_start(cl, f1) == 0 && it_node_start(cl, f2) == 0, "restart of followers");
    uint64_t next = leader_of(f1, f2, 15000);
    IT_ASSERT(next != 0, "the followers elected no leader");
    struct it_ack ack;
    IT_ASSERT(it_create_client(cl, next, "after-election", "rb-after", 15000, &ack) == 0,
              "no write through the new leader %llu", (unsigned long long)next);

    if (restart) {
        IT_ASSERT(it_node_start(cl, lead) == 0, "restart of the old leader");
    } else {
        sig(lead, SIGCONT);
    }
    it_sleep_ms(3000);
    IT_ASSERT(!it_node_exited(cl, lead), "old leader %llu died on the rollback",
              (unsigned long long)lead);
    char last[600];
    for (uint64_t id = 1; id <= 3; id++) {
        IT_ASSERT(members_are(id, 3, 10000, last, sizeof(last)),
                  "node %llu does not list 3 members: %s", (unsigned long long)id, last);
    }
    IT_ASSERT(it_wait_all_ready(cl, 15000) != 0, "not all ready after the rollback");
    IT_ASSERT(it_wait_converged(cl, 20000), "did not converge after the rollback");
    if (restart) {
        IT_ASSERT(it_file_has(cl->nodes[lead].log_path, "treated as uncommitted"),
                  "node %llu did not mark its last configuration uncommitted",
                  (unsigned long long)lead);
    } else {
        IT_ASSERT(it_metric(cl, lead, "tvmw_cp_config_rollbacks_total") >= 1,
                  "node %llu counted no guarded rollback", (unsigned long long)lead);
    }
    size_t n;
    struct it_ack *acks = it_writer_acks(w, &n);
    long p = it_check_acks(cl, lead, false, acks, n, NULL, NULL);
    free(acks);
    it_writer_free(w);
    IT_ASSERT(p == 0, "old leader: %ld acknowledged writes missing or wrong", p);
    it_cluster_pass(cl);
    it_test_ok();
}

static void test_rollback_compacted_configuration(void **state)
{
    (void)state;
    rollback_scenario(false);
}

static void test_restart_with_uncommitted_configuration(void **state)
{
    (void)state;
    rollback_scenario(true);
}

/* POST one import of `count` customers with long names to any node,
 * retried on 503 / no answer; returns the HTTP status of the last try. */
static long import_customers(int batch, int count)
{
    json_t *items = json_array();
    char name[160];
    for (int i = 0; i < count; i++) {
        it_fmt(name, sizeof(name),
               "Customer %d-%d with a name long enough to fill pages quickly "
               "..............................................",
               batch, i);
        json_array_append_new(items, json_pack("{s:s, s:{s:s, s:s}}", "method", "customer/create",
                                               "params", "firstname", name, "lastname", name));
    }
    json_t *req = json_pack("{s:o}", "items", items);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char key[96];
    it_fmt(key, sizeof(key), "Idempotency-Key: fill-%d", batch);
    const char *const hdr[] = {key, NULL};
    long status = 0;
    for (int attempt = 0; attempt < 10 && status != 200; attempt++) {
        struct it_resp r;
        uint64_t id = attempt % 2 ? 2 : 1;
        it_admin(cl, id, "POST", "/admin/v1/clients/1/import", body, hdr, &r);
        status = r.status;
        it_resp_close(&r);
        if (status != 200) {
            it_sleep_ms(500);
        }
    }
    free(body);
    return status;
}

/* Writes cluster.json with state.map_size_mb = mb to path. */
static void write_config(const char *path, int mb)
{
    json_error_t e;
    json_t *c = json_load_file(cl->config_path, 0, &e);
    IT_ASSERT(c != NULL, "cannot read %s: %s", cl->config_path, e.text);
    json_t *st = json_object_get(c, "state");
    if (st == NULL) {
        st = json_object();
        json_object_set_new(c, "state", st);
    }
    json_object_set_new(st, "map_size_mb", json_integer(mb));
    IT_ASSERT(json_dump_file(c, path, JSON_INDENT(1)) == 0, "cannot write %s", path);
    json_decref(c);
}

/* Starts node 3 with its own copy of cluster.json (state.map_size_mb = mb). */
static void start_node3(int mb)
{
    char saved[IT_PATH_MAX], path[IT_PATH_MAX];
    it_fmt(path, sizeof(path), "%s/cluster-node3.json", cl->dir);
    write_config(path, mb);
    memcpy(saved, cl->config_path, sizeof(saved));
    it_fmt(cl->config_path, sizeof(cl->config_path), "%s", path);
    int rv = it_node_start(cl, 3);
    memcpy(cl->config_path, saved, sizeof(saved));
    IT_ASSERT(rv == 0, "node 3 did not start");
}

static void test_full_state_stops_node(void **state)
{
    (void)state;
    struct it_opts o = {
        .n_nodes = 3, .base_port = BASE_PORT, .max_body_bytes = 16u << 20, .name = "mapfull"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    struct it_resp r;
    it_admin(cl, 1, "POST", "/admin/v1/clients",
             "{\"name\":\"fill\",\"billing_api_key\":\"" FILL_KEY "\"}", NULL, &r);
    IT_ASSERT_STATUS(&r, 201);
    it_resp_close(&r);
    IT_ASSERT(it_node_stop(cl, 3, 10000) == 0, "node 3 did not stop");
    start_node3(64);
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "node 3 did not rejoin");

    int batches = 0, total = 0;
    while (!it_node_exited(cl, 3)) {
        IT_ASSERT(batches < 60, "node 3 never filled its 64 MiB map");
        IT_ASSERT(import_customers(batches, 5000) == 200, "import %d failed", batches);
        batches++;
        total += 5000;
    }
    fprintf(stderr, "node 3 stopped after %d imports of 5000 customers\n", batches);
    IT_ASSERT(it_file_has(cl->nodes[3].log_path, "stopping the node"),
              "node 3's log does not say why it stopped");
    /* The majority goes on. */
    IT_ASSERT(import_customers(batches++, 100) == 200, "no write after node 3 stopped");
    total += 100;
    struct it_ack client;
    IT_ASSERT(it_create_client(cl, 1, "after", "fill-after", 15000, &client) == 0,
              "no client write after node 3 stopped");

    start_node3(1024);
    IT_ASSERT(it_wait_all_ready(cl, 30000) != 0, "node 3 did not come back");
    IT_ASSERT(it_wait_converged(cl, 60000), "node 3 did not catch up");
    json_t *a = it_list_clients(cl, 1, true), *b = it_list_clients(cl, 3, true);
    IT_ASSERT(a != NULL && b != NULL && json_equal(a, b), "clients differ between 1 and 3");
    json_decref(a);
    json_decref(b);
    /* The last customer imported, read on node 3 itself. */
    struct it_bl_client bc = {.id = 1, .key = FILL_KEY};
    char last_id[32];
    it_fmt(last_id, sizeof(last_id), "%d", total);
    it_bl_call(cl, 3, IT_BL_PY, &bc, "customer/info", IT_KV("customer_id", last_id), &r);
    char why[300];
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "customer %s on node 3: %s (%.300s)", last_id, why,
              r.body);
    it_resp_close(&r);
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    it_cluster_free(cl);
    cl = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rollback_compacted_configuration, it_test_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_uncommitted_configuration, it_test_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_state_stops_node, it_test_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
