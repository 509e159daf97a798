/*
 * it_edge_journal: the edge's device-write journal (edge/journal.h)
 * against a real 3-node control plane.
 *
 * test_delivery_after_outage: with every control-plane node stopped,
 *   writes are appended (and the journal closed and reopened in between:
 *   they are on disk); the sender keeps retrying; once the nodes are
 *   started again every write arrives, in order, exactly with the effect
 *   the control plane gives it (checked in the projection edges get);
 *   edge_journal_call registers a device on the running cluster.
 *
 * Environment: TVMW_CP_BIN. Ports 26200..26399.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/config.h"
#include "edge/journal.h"
#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT 26200 /* HTTP 26201..3, raft 26301..3 */
#define N_NODES   3
#define KEY1      "edge-journal-key-1"
#define DB_DSESS  14

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};

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

static json_t *W(const char *op, uint64_t ms)
{
    return json_pack("{s:s, s:i, s:I}", "op", op, "client_id", 1, "ms", (json_int_t)ms);
}

static void append(struct edge_journal *j, json_t *w)
{
    int rv = edge_journal_append(j, w);
    json_decref(w);
    IT_ASSERT(rv == 0, "append: %d", rv);
}

/* The dsess record (account, sess) in node 2's feed, or NULL (new ref). */
static json_t *projected_session(uint64_t account, uint64_t sess)
{
    uint8_t key[16];
    tvmw_put_be64(key, account);
    tvmw_put_be64(key + 8, sess);
    char want[32];
    EVP_EncodeBlock((unsigned char *)want, key, sizeof(key));
    struct it_resp r;
    char url[160];
    it_node_url(cl, 2, "/edge/v1/feed?after=0&wait_ms=0&limit=100000", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, IT_HTTP_TIMEOUT, &r);
    IT_ASSERT_STATUS(&r, 200);
    json_t *found = NULL, *c;
    size_t i;
    json_array_foreach(json_object_get(r.json, "changes"), i, c)
    {
        if (json_integer_value(json_object_get(c, "db")) != DB_DSESS ||
            strcmp(json_string_value(json_object_get(c, "key")), want) != 0) {
            continue;
        }
        json_decref(found);
        found = NULL;
        const char *v64 = json_string_value(json_object_get(c, "value"));
        if (v64 != NULL) {
            uint8_t val[4096];
            int n = EVP_DecodeBlock(val, (const unsigned char *)v64, (int)strlen(v64));
            while (n > 0 && val[n - 1] == 0) {
                n--; /* base64 padding */
            }
            found = json_loadb((const char *)val, (size_t)n, 0, NULL);
        }
    }
    it_resp_close(&r);
    return found;
}

static void test_delivery_after_outage(void **state)
{
    (void)state;
    struct it_resp r;
    it_admin(cl, 1, "POST", "/admin/v1/clients",
             "{\"name\":\"journal\",\"billing_api_key\":\"" KEY1 "\"}", NULL, &r);
    IT_ASSERT_STATUS(&r, 201);
    it_resp_close(&r);
    json_t *o;
    billing(1, "customer/create", IT_KV("firstname", "J"), &o);
    char cust[24];
    it_fmt(cust, sizeof(cust), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
    json_decref(o);
    billing(2, "account/create", IT_KV("customer_id", cust, "abonement", "900001"), &o);
    uint64_t acc = (uint64_t)json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    char acc_s[24];
    it_fmt(acc_s, sizeof(acc_s), "%llu", (unsigned long long)acc);

    static struct tvmw_config conf;
    char err[256], jdir[IT_PATH_MAX];
    IT_ASSERT(tvmw_config_load(cl->config_path, &conf, err, sizeof(err)) == 0, "config: %s", err);
    it_fmt(jdir, sizeof(jdir), "%s/edge-j", cl->dir);

    /* The whole control plane goes away. */
    for (uint64_t id = 1; id <= N_NODES; id++) {
        it_node_stop(cl, id, 10000);
    }
    uint64_t ms = 1700000000000ull;
    struct edge_journal *j;
    IT_ASSERT(edge_journal_open(jdir, &conf, &j) == 0, "journal open");
    json_t *open = W("session_open", ms);
    json_object_update_new(open, json_pack("{s:I, s:s, s:s, s:s, s:i, s:{s:s, s:s}}", "account_id",
                                           (json_int_t)acc, "sess_id", "00000000000000c1",
                                           "device_uid", "AA:BB:CC:00:00:01", "device", "mag",
                                           "basic", 1, "register_device", "system_name", "mag",
                                           "device_uid", "AA:BB:CC:00:00:01"));
    append(j, open);
    json_t *set = W("settings_save", ms + 1);
    json_object_update_new(
        set, json_pack("{s:I, s:i}", "account_id", (json_int_t)acc, "parent_code", 777));
    append(j, set);
    edge_journal_close(j); /* on disk: a restart of the edge keeps them */

    IT_ASSERT(edge_journal_open(jdir, &conf, &j) == 0, "journal reopen");
    struct edge_journal_status st;
    edge_journal_status(j, &st);
    IT_ASSERT(st.pending == 2, "pending after reopen: %llu", (unsigned long long)st.pending);
    IT_ASSERT(edge_journal_start(j) == 0, "sender");
    json_t *close = W("session_close", ms + 2);
    json_object_update_new(close, json_pack("{s:I, s:s}", "account_id", (json_int_t)acc, "sess_id",
                                            "00000000000000c1"));
    append(j, close);
    it_sleep_ms(1500);
    edge_journal_status(j, &st);
    IT_ASSERT(st.pending == 3 && st.sent_total == 0 && st.retries_total > 0,
              "while down: pending %llu sent %llu retries %llu", (unsigned long long)st.pending,
              (unsigned long long)st.sent_total, (unsigned long long)st.retries_total);

    /* Back: everything arrives by itself. */
    for (uint64_t id = 1; id <= N_NODES; id++) {
        IT_ASSERT(it_node_start(cl, id) == 0, "restart of node %llu", (unsigned long long)id);
    }
    IT_ASSERT(it_wait_all_ready(cl, 30000) != 0, "no leader after the restart");
    uint64_t t0 = it_now_ms();
    do {
        edge_journal_status(j, &st);
        if (st.pending == 0) {
            break;
        }
        it_sleep_ms(50);
    } while (it_now_ms() - t0 < 30000);
    IT_ASSERT(st.pending == 0 && st.sent_total == 3 && st.failed_total == 0,
              "after: pending %llu sent %llu failed %llu", (unsigned long long)st.pending,
              (unsigned long long)st.sent_total, (unsigned long long)st.failed_total);
    fprintf(stderr, "delivered %llu writes %llu ms after the cluster was ready again\n",
            (unsigned long long)st.sent_total, (unsigned long long)(it_now_ms() - t0));

    IT_ASSERT(it_wait_applied(cl, 10000), "followers did not catch up");
    json_t *info;
    billing(3, "account/info", IT_KV("account_id", acc_s), &info);
    IT_ASSERT(json_integer_value(json_object_get(info, "parent_code")) == 777 ||
                  (json_is_string(json_object_get(info, "parent_code")) &&
                   strcmp(json_string_value(json_object_get(info, "parent_code")), "777") == 0),
              "parent_code not saved");
    json_t *devs = json_object_get(info, "devices");
    IT_ASSERT(json_array_size(devs) == 1 &&
                  strcmp(json_string_value(json_object_get(json_array_get(devs, 0), "device_uid")),
                         "AA:BB:CC:00:00:01") == 0,
              "registered device missing");
    json_decref(info);
    json_t *sess = projected_session(acc, 0xc1);
    IT_ASSERT(sess != NULL &&
                  json_integer_value(json_object_get(sess, "opened_ms")) == (json_int_t)ms &&
                  json_integer_value(json_object_get(sess, "revoked_ms")) == (json_int_t)ms + 2,
              "session record after delivery");
    json_decref(sess);

    /* A call goes straight through (not journaled). */
    IT_ASSERT(it_admin(cl, 2, "PATCH", "/admin/v1/clients/1",
                       "{\"settings\":{\"registration_enabled\":true}}", NULL, &r) == 0 &&
                  r.status == 200,
              "enable registration: %ld", r.status);
    it_resp_close(&r);
    json_t *reg = W("account_register", ms + 3), *res = NULL;
    json_object_set_new(reg, "device_uid", json_string("AA:BB:CC:00:00:02"));
    IT_ASSERT(edge_journal_call(j, reg, 10000, &res) == 0, "call");
    IT_ASSERT(json_integer_value(json_object_get(res, "error")) == 0 &&
                  json_string_value(json_object_get(res, "abonement")) != NULL,
              "register answer");
    json_decref(res);
    IT_ASSERT(edge_journal_call(j, reg, 10000, &res) == 0, "call again");
    json_decref(res);
    json_decref(reg);
    edge_journal_status(j, &st);
    IT_ASSERT(st.pending == 0 && st.sent_total == 3, "a call was journaled");
    edge_journal_close(j);
    it_test_ok();
}

static int group_setup(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = N_NODES, .base_port = BASE_PORT, .name = "edge-journal"};
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
    it_group_done(cl);
    it_cluster_free(cl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_after_outage, it_test_setup,
                                        it_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
