/* The LMDB state machine: apply, dedup by request id, replays, malformed
 * entries, snapshot/restore round trip, corrupt snapshots, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"

struct env {
    char dir[64];
    struct cp_fsm *f;
    uint64_t index;
};

static struct env *env_new(unsigned window_s)
{
    struct env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/tvmw-test-fsm-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(cp_fsm_open(e->dir, 64, window_s, &e->f), 0);
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

/* Applies one command as the next index; returns its result (may be NULL). */
static struct cp_result *apply_at(struct env *e, uint64_t time_ms, uint16_t type, int rid,
                                  const char *payload)
{
    struct cp_cmd c = {
        .type = type, .time_ms = time_ms, .payload = payload, .payload_len = strlen(payload)};
    memset(c.reqid, 0, sizeof(c.reqid));
    memcpy(c.reqid, &rid, sizeof(rid));
    size_t n = cp_cmd_encoded_size(c.payload_len);
    uint8_t *buf = malloc(n);
    assert_int_equal(cp_cmd_encode(&c, buf, n), 0);
    uint8_t reqid[CP_REQID_SIZE];
    struct cp_result *r = NULL;
    assert_int_equal(cp_fsm_apply(e->f, ++e->index, buf, n, reqid, &r), 0);
    assert_int_equal(cp_fsm_flush(e->f), 0);
    free(buf);
    return r;
}

static struct cp_result *apply(struct env *e, uint16_t type, int rid, const char *payload)
{
    return apply_at(e, 1700000000000ull + e->index * 1000, type, rid, payload);
}

#define CREATE(name)                                                                               \
    "{\"name\":\"" name "\",\"api_key\":\"0123456789abcdef0\",\"billing_api_key\":"                \
    "\"0123456789abcdef1\"}"

static size_t count_clients(struct env *e)
{
    MDB_txn *txn;
    json_t *arr;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    assert_int_equal(cp_record_list(txn, cp_fsm_dbs(e->f)->clients, &arr), 0);
    mdb_txn_abort(txn);
    size_t n = json_array_size(arr);
    json_decref(arr);
    return n;
}

static void expect(struct cp_result *r, unsigned status, const char *needle)
{
    assert_non_null(r);
    assert_int_equal(r->status, status);
    if (needle != NULL && strstr(r->body, needle) == NULL) {
        fail_msg("result %s lacks %s", r->body, needle);
    }
    cp_result_free(r);
}

static void test_clients_crud(void **state)
{
    (void)state;
    struct env *e = env_new(600);
    expect(apply(e, CP_CMD_CLIENT_CREATE, 1, CREATE("one")), 201, "\"id\":1");
    expect(apply(e, CP_CMD_CLIENT_CREATE, 2, CREATE("two")), 201, "\"id\":2");
    expect(apply(e, CP_CMD_CLIENT_UPDATE, 3, "{\"id\":1,\"name\":\"uno\"}"), 200, "\"uno\"");
    expect(apply(e, CP_CMD_CLIENT_DELETE, 4, "{\"id\":2}"), 200, "\"deleted\":2");
    expect(apply(e, CP_CMD_CLIENT_DELETE, 5, "{\"id\":2}"), 404, "not_found");
    expect(apply(e, CP_CMD_CLIENT_UPDATE, 6, "{\"id\":9,\"name\":\"x\"}"), 404, "not_found");
    expect(apply(e, CP_CMD_CLIENT_CREATE, 7, "{\"api_key\":\"short\"}"), 400, "bad_request");
    expect(apply(e, CP_CMD_CLIENT_CREATE, 8, "[1,2"), 400, "malformed_json");
    expect(apply(e, 999, 9, "{}"), 400, "unknown command");
    assert_int_equal(count_clients(e), 1);
    assert_int_equal(cp_fsm_last_applied(e->f), e->index);
    env_free(e);
}

static void test_dedup_and_replay(void **state)
{
    (void)state;
    struct env *e = env_new(600);
    expect(apply(e, CP_CMD_CLIENT_CREATE, 42, CREATE("a")), 201, "\"id\":1");
    /* The same request id again: same answer, nothing applied twice. */
    expect(apply(e, CP_CMD_CLIENT_CREATE, 42, CREATE("a")), 201, "\"id\":1");
    assert_int_equal(count_clients(e), 1);

    /* An index at or below last_applied (re-delivered after a restart). */
    uint8_t reqid[CP_REQID_SIZE];
    struct cp_result *r = (void *)1;
    uint8_t noop[CP_CMD_HEADER_SIZE];
    struct cp_cmd c = {.type = CP_CMD_CLIENT_CREATE, .payload = "", .payload_len = 0};
    assert_int_equal(cp_cmd_encode(&c, noop, sizeof(noop)), 0);
    assert_int_equal(cp_fsm_apply(e->f, 1, noop, sizeof(noop), reqid, &r), 0);
    assert_int_equal(cp_fsm_flush(e->f), 0);
    assert_null(r);
    assert_int_equal(cp_fsm_last_applied(e->f), 2);

    /* Garbage entry: skipped deterministically, index still advances. */
    uint8_t junk[24] = "this is not a command!!";
    assert_int_equal(cp_fsm_apply(e->f, 3, junk, sizeof(junk), reqid, &r), 0);
    assert_int_equal(cp_fsm_flush(e->f), 0);
    assert_null(r);
    assert_int_equal(cp_fsm_last_applied(e->f), 3);
    env_free(e);
}

static void test_session_window(void **state)
{
    (void)state;
    struct env *e = env_new(10);
    expect(apply_at(e, 1000, CP_CMD_CLIENT_CREATE, 7, CREATE("a")), 201, "\"id\":1");
    expect(apply_at(e, 5000, CP_CMD_CLIENT_CREATE, 7, CREATE("a")), 201, "\"id\":1");
    /* 20 s later the session is pruned by the next command. */
    expect(apply_at(e, 21000, CP_CMD_CLIENT_CREATE, 8, CREATE("b")), 201, "\"id\":2");
    expect(apply_at(e, 22000, CP_CMD_CLIENT_CREATE, 7, CREATE("a")), 201, "\"id\":3");
    env_free(e);
}

static void snapshot(struct env *e, void **buf, size_t *len)
{
    assert_int_equal(cp_fsm_snapshot(e->f, buf, len), 0);
    assert_int_equal(*len % 8, 0);
}

static void fill(struct env *e, int n, int rid_base)
{
    for (int i = 0; i < n; i++) {
        char p[200];
        snprintf(p, sizeof(p),
                 "{\"name\":\"c%d\",\"api_key\":\"0123456789abcdef0\",\"billing_api_key\":"
                 "\"0123456789abcdef1\",\"settings\":{\"n\":%d}}",
                 i, i);
        cp_result_free(apply(e, CP_CMD_CLIENT_CREATE, rid_base + i, p));
    }
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    struct env *a = env_new(600), *b = env_new(600);
    fill(a, 300, 1000);
    void *s1, *s2;
    size_t l1, l2;
    snapshot(a, &s1, &l1);
    assert_int_equal(cp_fsm_restore(b->f, s1, l1), 0);
    assert_int_equal(cp_fsm_last_applied(b->f), 300);
    assert_int_equal(count_clients(b), 300);
    snapshot(b, &s2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(s1, s2, l1);
    /* Restored sessions still dedup: a retry of request 1000 is not new. */
    b->index = 300;
    expect(apply(b, CP_CMD_CLIENT_CREATE, 1000, CREATE("c0")), 201, "\"id\":1");
    assert_int_equal(count_clients(b), 300);
    /* An older snapshot than the state is verified and skipped. */
    fill(b, 5, 5000);
    assert_int_equal(cp_fsm_restore(b->f, s1, l1), 0);
    assert_int_equal(count_clients(b), 305);
    free(s1);
    free(s2);
    env_free(a);
    env_free(b);
}

static void test_corrupt_snapshot(void **state)
{
    (void)state;
    struct env *a = env_new(600), *b = env_new(600);
    fill(a, 50, 1000);
    fill(a, 10, 2000); /* a is ahead of b */
    fill(b, 3, 3000);
    void *s;
    size_t l;
    snapshot(a, &s, &l);
    uint8_t *bad = malloc(l);
    size_t flips[] = {0, 9, 20, 40, l / 2, l - 40, l - 1};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(bad, s, l);
        bad[flips[i]] ^= 0x40;
        assert_int_equal(cp_fsm_restore(b->f, bad, l), TVMW_ECORRUPT);
    }
    for (size_t cut = 0; cut < l; cut += l / 7 + 1) {
        assert_int_equal(cp_fsm_restore(b->f, s, cut), TVMW_ECORRUPT); /* truncated */
    }
    assert_int_equal(count_clients(b), 3); /* untouched */
    assert_int_equal(cp_fsm_last_applied(b->f), 3);
    free(bad);
    free(s);
    env_free(a);
    env_free(b);
}

static void test_determinism_and_reopen(void **state)
{
    (void)state;
    struct env *a = env_new(600), *b = env_new(600);
    fill(a, 100, 1000);
    fill(b, 100, 1000);
    void *s1, *s2;
    size_t l1, l2;
    snapshot(a, &s1, &l1);
    snapshot(b, &s2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(s1, s2, l1); /* one log, two environments, same bytes */
    cp_fsm_close(a->f);
    assert_int_equal(cp_fsm_open(a->dir, 64, 600, &a->f), 0);
    assert_int_equal(cp_fsm_last_applied(a->f), 100);
    assert_int_equal(count_clients(a), 100);
    free(s1);
    free(s2);
    env_free(a);
    env_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_crud),     cmocka_unit_test(test_dedup_and_replay),
        cmocka_unit_test(test_session_window),   cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_corrupt_snapshot), cmocka_unit_test(test_determinism_and_reopen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
