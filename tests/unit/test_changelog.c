/* The edge changelog: written with the apply, projected (no personal
 * data, no ledger), dropped with a failed method, pruned behind a
 * horizon; and the edge snapshot stream verifies. */
#include "tests/unit/billing_testlib.h"

#include <openssl/evp.h>

#include "common/bytes.h"
#include "controlplane/changelog.h"

static json_t *feed(struct bt_env *e, uint64_t after, unsigned limit, bool *gone)
{
    json_t *out = NULL;
    assert_int_equal(cp_feed_read(e->f, after, limit, &out, gone), 0);
    return out;
}

static char *decode(const char *b64)
{
    size_t n = strlen(b64);
    unsigned char *out = calloc(1, n + 1);
    EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    return (char *)out;
}

/* The customer projection without jansson writes what jansson would, and
 * falls back to jansson for records of another shape. */
static void test_customer_projection_text(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"id\":7,\"client_id\":2,\"firstname\":\"A \\\" {b}\",\"meta\":{\"x\":[1,{\"y\":\"}\"}]},"
        "\"balance_cents\":-1250,\"tags\":[]}",
        "{\"client_id\":2,\"id\":8}",
        "{\"id\":9,\"client_id\":2,\"balance_cents\":1.5}",
        "{ \"id\": 10, \"client_id\": 3, \"balance_cents\": 4 }",
        "{\"id\":11,\"client_id\":3,\"balance_cents\":null,\"e\":\"\\u00e9\"}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        MDB_val k = {.mv_size = 8, .mv_data = "\0\0\0\0\0\0\0\1"};
        MDB_val v = {.mv_size = strlen(cases[i]), .mv_data = (void *)cases[i]};
        struct tvmw_buf out;
        bool skip;
        tvmw_buf_init(&out, 0);
        assert_int_equal(cp_edge_project(2, &k, &v, &out, &skip), 0);
        json_t *o = json_loads(cases[i], 0, NULL), *p = json_object();
        static const char *const keep[] = {"id", "client_id", "balance_cents", NULL};
        for (const char *const *f = keep; *f; f++) {
            if (json_object_get(o, *f) != NULL) {
                json_object_set(p, *f, json_object_get(o, *f));
            }
        }
        char *want = json_dumps(p, JSON_COMPACT);
        assert_string_equal(out.data, want);
        free(want);
        json_decref(o);
        json_decref(p);
        tvmw_buf_close(&out);
    }
}

static void test_projection_and_rollback(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t start = e->index;
    json_decref(bt_expect(
        bt_call(e, 1, "customer/create", "firstname=Secret&lastname=Person&ext_id=C1"), 0));
    json_decref(bt_expect(
        bt_call(e, 1, "transaction/create", "customer_id=1&id=T1&amount=5&processed=1"), 0));
    /* A failed method leaves no change behind. */
    json_decref(bt_expect(bt_call(e, 1, "account/create", "ext_id=NOPE"), 1));
    json_decref(bt_expect(bt_call(e, 1, "tariff/create",
                                  "name=Base&ext_id=T1&period=1&sessions_count=2&basic_sessions_"
                                  "count=1&basic_tariff_priority=0"),
                          0));
    json_decref(bt_expect(bt_call(e, 1, "account/create", "ext_id=C1&abonement=100"), 0));
    json_decref(
        bt_expect(bt_call(e, 1, "account/tariff/assign", "abonement=100&tariff_ext_id=T1"), 0));
    bool gone;
    json_t *f = feed(e, start, 1000, &gone);
    assert_false(gone);
    assert_true(json_is_true(json_object_get(f, "complete")));
    assert_int_equal(json_integer_value(json_object_get(f, "last_index")), e->index);
    size_t i;
    json_t *c;
    int customers = 0, acc_tar = 0;
    json_array_foreach(json_object_get(f, "changes"), i, c)
    {
        int db = (int)json_integer_value(json_object_get(c, "db"));
        assert_true(db >= 1 && db <= CP_EDGE_DB_COUNT);
        assert_true((uint64_t)json_integer_value(json_object_get(c, "index")) > start);
        char *key = decode(json_string_value(json_object_get(c, "key")));
        assert_null(strstr(key, "cust_tx/")); /* the ledger stays home */
        /* tariff -> subscribers stays home too; account -> tariff goes */
        assert_null(strstr(key, "tar_acc/"));
        acc_tar += strncmp(key, "acc_tar/", 8) == 0;
        free(key);
        if (db == 2) {
            char *v = decode(json_string_value(json_object_get(c, "value")));
            assert_null(strstr(v, "Secret")); /* no personal data */
            assert_non_null(strstr(v, "balance_cents"));
            free(v);
            customers++;
        }
    }
    assert_int_equal(customers, 2); /* created, then its balance */
    assert_int_equal(acc_tar, 1);
    json_decref(f);
    bt_free(e);
}

static void test_limit_and_horizon(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    cp_fsm_set_changelog_window(e->f, 5);
    for (int i = 0; i < 20; i++) {
        char form[64];
        snprintf(form, sizeof(form), "firstname=A&ext_id=C%d", i);
        json_decref(bt_expect(bt_call(e, 1, "customer/create", form), 0));
    }
    bool gone;
    json_t *f = feed(e, 0, 1000, &gone);
    assert_true(gone); /* index 0 is far behind the window */
    json_decref(f);
    f = feed(e, e->index - 3, 1, &gone);
    assert_false(gone);
    assert_false(json_is_true(json_object_get(f, "complete"))); /* cut at the limit */
    json_t *changes = json_object_get(f, "changes");
    uint64_t idx =
        (uint64_t)json_integer_value(json_object_get(json_array_get(changes, 0), "index"));
    /* All changes of that index came together. */
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        assert_int_equal(json_integer_value(json_object_get(c, "index")), idx);
    }
    json_decref(f);
    bt_free(e);
}

static void test_snapshot_stream(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_decref(bt_expect(bt_call(e, 1, "customer/create", "firstname=Secret&ext_id=C1"), 0));
    json_decref(bt_expect(bt_call(e, 1, "account/create", "ext_id=C1&abonement=555"), 0));
    struct cp_edge_snap *s;
    uint64_t index;
    assert_int_equal(cp_edge_snap_open(e->f, &s, &index), 0);
    assert_int_equal(index, e->index);
    uint8_t *all = NULL, buf[7];
    size_t n = 0;
    long r;
    while ((r = cp_edge_snap_read(s, buf, sizeof(buf))) > 0) { /* tiny reads on purpose */
        all = realloc(all, n + (size_t)r);
        memcpy(all + n, buf, (size_t)r);
        n += (size_t)r;
    }
    assert_int_equal(r, 0);
    cp_edge_snap_close(s);
    assert_memory_equal(all, "TVMWESN1", 8);
    unsigned char md[32];
    unsigned int mdlen = 32;
    EVP_Digest(all, n - 32, md, &mdlen, EVP_sha256(), NULL);
    assert_memory_equal(md, all + n - 32, 32);
    assert_null(memmem(all, n, "Secret", 6));
    assert_non_null(memmem(all, n, "abonement/1/555", 15));
    free(all);
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customer_projection_text),
        cmocka_unit_test(test_projection_and_rollback),
        cmocka_unit_test(test_limit_and_horizon),
        cmocka_unit_test(test_snapshot_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
