/* Keys and device writes in the state machine: the new databases travel in
 * raft snapshots (keys, dsess, acc_settings restored on another node),
 * applying the same log to two fresh states gives byte-identical
 * snapshots, the projection carries them as edge dbs 13-15, and bad
 * payloads get an answer, never a stopped node. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/changelog.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"
#include "controlplane/keys.h"

#define T0 1700000000000ull

struct env {
    char dir[64];
    struct cp_fsm *f;
    uint64_t index;
};

static struct env *env_new(void)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/tvmw-test-dw-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(cp_fsm_open(e->dir, 64, 300, &e->f), 0);
    return e;
}

static void env_free(struct env *e)
{
    char cmd[128];
    cp_fsm_close(e->f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
}

/* Applies one command as the next index; returns its body parsed. */
static json_t *apply(struct env *e, uint16_t type, const char *payload, unsigned *status)
{
    struct cp_cmd c = {.type = type,
                       .time_ms = T0 + e->index * 1000,
                       .payload = payload,
                       .payload_len = strlen(payload)};
    memset(c.reqid, 0, sizeof(c.reqid));
    uint64_t rid = e->index + 1;
    memcpy(c.reqid, &rid, sizeof(rid));
    size_t n = cp_cmd_encoded_size(c.payload_len);
    uint8_t *buf = malloc(n);
    assert_int_equal(cp_cmd_encode(&c, buf, n), 0);
    uint8_t reqid[CP_REQID_SIZE];
    struct cp_result *r = NULL;
    assert_int_equal(cp_fsm_apply(e->f, ++e->index, buf, n, reqid, &r), 0);
    assert_int_equal(cp_fsm_flush(e->f), 0);
    free(buf);
    assert_non_null(r);
    if (status != NULL) {
        *status = r->status;
    }
    json_t *o = json_loadb(r->body, r->len, 0, NULL);
    cp_result_free(r);
    assert_non_null(o);
    return o;
}

/* The first write's result of a CP_CMD_DEVICE answer. */
static json_int_t first_error(json_t *o)
{
    return json_integer_value(
        json_object_get(json_array_get(json_object_get(o, "results"), 0), "error"));
}

/* A log that touches every new database. */
static void run_log(struct env *e)
{
    /* Secrets come in the command (drawn by the proposer), so the same
     * log gives the same state. */
    static const char fixed[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    char p[512];
    unsigned st;
    snprintf(p, sizeof(p), "{\"op\":\"init\",\"secret\":\"%s\"}", fixed);
    json_decref(apply(e, CP_CMD_KEY, p, &st));
    assert_int_equal(st, 200);
    json_decref(apply(e, CP_CMD_KEY, p, &st)); /* init again: no second key */
    snprintf(p, sizeof(p), "{\"op\":\"add\",\"secret\":\"%s\"}", fixed);
    json_decref(apply(e, CP_CMD_KEY, p, &st));
    json_decref(apply(e, CP_CMD_KEY, "{\"op\":\"retire\",\"kid\":1}", &st));
    assert_int_equal(st, 200);
    json_decref(apply(e, CP_CMD_CLIENT_CREATE,
                      "{\"name\":\"c\",\"api_key\":\"0123456789abcdef0\","
                      "\"billing_api_key\":\"0123456789abcdef1\"}",
                      &st));
    json_decref(apply(e, CP_CMD_BILLING,
                      "{\"client_id\":1,\"method\":\"customer/create\",\"source\":\"t\","
                      "\"params\":{\"firstname\":\"A\"}}",
                      &st));
    json_decref(apply(e, CP_CMD_BILLING,
                      "{\"client_id\":1,\"method\":\"account/create\",\"source\":\"t\","
                      "\"params\":{\"customer_id\":\"1\",\"abonement\":\"42\"}}",
                      &st));
    json_t *o = apply(e, CP_CMD_DEVICE,
                      "{\"writes\":[{\"op\":\"session_open\",\"reqid\":"
                      "\"00000000000000000000000000000001\",\"client_id\":1,\"ms\":5,"
                      "\"account_id\":1,\"sess_id\":\"00000000000000ff\",\"device\":\"mag\"},"
                      "{\"op\":\"settings_save\",\"reqid\":\"00000000000000000000000000000002\","
                      "\"client_id\":1,\"ms\":6,\"account_id\":1,\"sort\":[3,2,1]}]}",
                      &st);
    assert_int_equal(st, 200);
    assert_int_equal(first_error(o), 0);
    json_decref(o);
}

/* The dsess records of account 1 (n, revoked) and its logout_before_ms. */
static void count_sessions(struct env *e, size_t *n, size_t *revoked, uint64_t *cutoff)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    assert_int_equal(mdb_cursor_open(txn, cp_fsm_dbs(e->f)->dsess, &cur), 0);
    *n = *revoked = 0;
    int op = MDB_FIRST;
    while (mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        (*n)++;
        *revoked += json_integer_value(json_object_get(o, "revoked_ms")) != 0;
        json_decref(o);
    }
    mdb_cursor_close(cur);
    json_t *acc;
    assert_int_equal(cp_record_get(txn, cp_fsm_dbs(e->f)->accounts, 1, &acc), 0);
    *cutoff = (uint64_t)json_integer_value(json_object_get(acc, "logout_before_ms"));
    json_decref(acc);
    mdb_txn_abort(txn);
}

static void session_write(struct env *e, const char *op, unsigned sess, unsigned ms)
{
    char p[512];
    static unsigned reqid;
    snprintf(p, sizeof(p),
             "{\"writes\":[{\"op\":\"%s\",\"reqid\":\"%032x\",\"client_id\":1,"
             "\"ms\":%u,\"account_id\":1,\"sess_id\":\"%016x\",\"device\":\"android\","
             "\"device_uid\":\"u%u\",\"ip\":\"\",\"edge\":\"e1\",\"basic\":0}]}",
             op, ++reqid + 1000, ms, sess, sess);
    unsigned st;
    json_t *o = apply(e, CP_CMD_DEVICE, p, &st);
    assert_int_equal(st, 200);
    assert_int_equal(first_error(o), 0);
    json_decref(o);
}

/* Closed sessions do not pile up. Past 32 revoked records the account's
 * cut-off moves to its oldest live session and the records older than it
 * go; a live session that pins many younger revoked ones is itself cut
 * off once they pass 256. */
static void test_revoked_sessions_compacted(void **state)
{
    (void)state;
    struct env *e = env_new();
    run_log(e); /* client 1, account 1, a session 0xff opened at 5 */
    size_t n, revoked, most = 0;
    uint64_t cutoff;
    /* Nothing live but short sessions: the records stay few. */
    session_write(e, "session_close", 0xff, 10);
    for (unsigned i = 0; i < 100; i++) {
        session_write(e, "session_open", 0x1000 + i, 2000 + i * 10);
        session_write(e, "session_close", 0x1000 + i, 2005 + i * 10);
        count_sessions(e, &n, &revoked, &cutoff);
        most = revoked > most ? revoked : most;
    }
    assert_true(most <= 33);
    assert_true(n <= 33);
    /* A long-lived session: kept until 256 revoked records pile up behind it. */
    session_write(e, "session_open", 0x500, 5000);
    for (unsigned i = 0; i < 300; i++) {
        session_write(e, "session_open", 0x2000 + i, 6000 + i * 10);
        session_write(e, "session_close", 0x2000 + i, 6005 + i * 10);
        count_sessions(e, &n, &revoked, &cutoff);
        most = revoked > most ? revoked : most;
        if (i < 250) {
            assert_true(cutoff <= 5000); /* 0x500 still valid */
        }
    }
    assert_true(most <= 257);
    assert_true(cutoff > 5000); /* finally cut off with the rest */
    env_free(e);
}

static void test_snapshot_carries_new_dbs(void **state)
{
    (void)state;
    struct env *a = env_new(), *b = env_new();
    run_log(a);
    void *snap;
    size_t len;
    assert_int_equal(cp_fsm_snapshot(a->f, &snap, &len), 0);
    assert_int_equal(cp_fsm_restore(b->f, snap, len), 0);
    free(snap);

    MDB_txn *txn;
    json_t *keys;
    assert_int_equal(cp_keys_list(b->f, &keys), 0);
    assert_int_equal(json_array_size(keys), 2);
    assert_null(json_object_get(json_array_get(keys, 0), "secret"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "state")),
                        "retired");
    json_decref(keys);
    assert_int_equal(cp_fsm_read_begin(b->f, &txn), 0);
    const struct cp_dbs *db = cp_fsm_dbs(b->f);
    uint8_t k[16];
    tvmw_put_be64(k, 1);
    tvmw_put_be64(k + 8, 0xff);
    MDB_val mk = {.mv_size = 16, .mv_data = k}, mv;
    assert_int_equal(mdb_get(txn, db->dsess, &mk, &mv), 0);
    json_t *set;
    assert_int_equal(cp_record_get(txn, db->acc_settings, 1, &set), 0);
    assert_int_equal(json_array_size(json_object_get(set, "sort")), 3);
    json_decref(set);
    /* Projected with the fixed edge ids. */
    assert_int_equal(cp_edge_db(db, db->keys), 13);
    assert_int_equal(cp_edge_db(db, db->dsess), 14);
    assert_int_equal(cp_edge_db(db, db->acc_settings), 15);
    mdb_txn_abort(txn);
    env_free(a);
    env_free(b);
}

static void test_same_log_same_state(void **state)
{
    (void)state;
    struct env *a = env_new(), *b = env_new();
    run_log(a);
    run_log(b);
    void *sa, *sb;
    size_t la, lb;
    assert_int_equal(cp_fsm_snapshot(a->f, &sa, &la), 0);
    assert_int_equal(cp_fsm_snapshot(b->f, &sb, &lb), 0);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    free(sa);
    free(sb);
    env_free(a);
    env_free(b);
}

static void test_bad_payloads_answered(void **state)
{
    (void)state;
    struct env *e = env_new();
    unsigned st;
    char secret[CP_KEY_SECRET_B64 + 1];
    assert_int_equal(cp_keys_new_secret(secret), 0);
    assert_int_equal(strlen(secret), CP_KEY_SECRET_B64);
    static const char *const key_bad[] = {
        "{}",
        "{\"op\":\"add\"}",
        "{\"op\":\"add\",\"secret\":\"short\"}",
        "{\"op\":\"add\",\"secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"}",
        "{\"op\":\"retire\",\"kid\":\"x\"}",
        "{\"op\":\"nope\"}"};
    for (size_t i = 0; i < sizeof(key_bad) / sizeof(key_bad[0]); i++) {
        json_decref(apply(e, CP_CMD_KEY, key_bad[i], &st));
        assert_int_equal(st, 400);
    }
    json_decref(apply(e, CP_CMD_KEY, "{\"op\":\"retire\",\"kid\":7}", &st));
    assert_int_equal(st, 404);
    static const char *const dev_bad[] = {"{}", "{\"writes\":[]}", "{\"writes\":[1]}",
                                          "{\"writes\":{}}"};
    for (size_t i = 0; i < sizeof(dev_bad) / sizeof(dev_bad[0]); i++) {
        json_decref(apply(e, CP_CMD_DEVICE, dev_bad[i], &st));
        assert_int_equal(st, 400);
    }
    /* Writes with every field wrong: each gets its error, the node goes on. */
    json_t *o = apply(e, CP_CMD_DEVICE,
                      "{\"writes\":[{\"op\":\"session_open\"},{\"op\":\"last_seen\","
                      "\"reqid\":\"00000000000000000000000000000009\",\"client_id\":0,\"ms\":1,"
                      "\"items\":[{\"account_id\":5,\"ms\":1}]},{\"op\":\"settings_save\","
                      "\"reqid\":\"0000000000000000000000000000000a\",\"client_id\":3,\"ms\":-1}]}",
                      &st);
    assert_int_equal(st, 200);
    json_t *r = json_object_get(o, "results");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 0), "error")), 100);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "error")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 2), "error")), 100);
    json_decref(o);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoked_sessions_compacted),
        cmocka_unit_test(test_snapshot_carries_new_dbs),
        cmocka_unit_test(test_same_log_same_state),
        cmocka_unit_test(test_bad_payloads_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
