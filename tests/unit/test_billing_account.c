/* Billing API account group (billing_account.c): accounts, devices,
 * messages and account tariffs against real LMDB through bt_call. The
 * customers and tariffs the methods need are seeded directly in the store
 * (their own methods belong to other groups). */
#include "tests/unit/billing_testlib.h"

#include "common/err.h"

/* ---- fixtures ----------------------------------------------------------- */

struct wtx {
    MDB_txn *txn;
    struct bl_ctx c;
};

/* A write transaction outside raft apply, for seeding and inspecting. */
static void w_begin(struct bt_env *e, uint64_t client, struct wtx *w)
{
    MDB_txn *r;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    MDB_env *env = mdb_txn_env(r);
    mdb_txn_abort(r);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &w->txn), 0);
    w->c = (struct bl_ctx){.txn = w->txn,
                           .db = cp_fsm_dbs(e->f),
                           .client_id = client,
                           .time_ms = e->time_ms,
                           .write = true};
}

static void w_commit(struct wtx *w)
{
    assert_int_equal(mdb_txn_commit(w->txn), 0);
}

static uint64_t seed_customer(struct bt_env *e, uint64_t client, const char *ext_id)
{
    struct wtx w;
    uint64_t id;
    w_begin(e, client, &w);
    json_t *o = json_pack("{s:s, s:s, s:I, s:i}", "ext_id", ext_id, "firstname", "Bill",
                          "balance_cents", (json_int_t)0, "payments_count", 0);
    assert_int_equal(bl_obj_new_id(&w.c, BL_CUSTOMER, &id), 0);
    assert_int_equal(bl_obj_put(&w.c, BL_CUSTOMER, id, o), 0);
    if (ext_id[0] != '\0') {
        assert_int_equal(bl_uniq_put(&w.c, BL_UNIQ_CUST_EXT, ext_id, id), 0);
    }
    json_decref(o);
    w_commit(&w);
    return id;
}

static uint64_t seed_tariff(struct bt_env *e, uint64_t client, const char *ext_id, int64_t cents)
{
    struct wtx w;
    uint64_t id;
    w_begin(e, client, &w);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "name", "Basic", "ext_id", ext_id, "price_cents",
                          (json_int_t)cents, "activation_price_cents", (json_int_t)0);
    assert_int_equal(bl_obj_new_id(&w.c, BL_TARIFF, &id), 0);
    assert_int_equal(bl_obj_put(&w.c, BL_TARIFF, id, o), 0);
    if (ext_id[0] != '\0') {
        assert_int_equal(bl_uniq_put(&w.c, BL_UNIQ_TARIFF_EXT, ext_id, id), 0);
    }
    json_decref(o);
    w_commit(&w);
    return id;
}

/* A stored record (caller decrefs) or NULL. */
static json_t *record(struct bt_env *e, uint64_t client, enum bl_kind kind, uint64_t id)
{
    MDB_txn *r;
    json_t *o = NULL;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    struct bl_ctx c = {.txn = r, .db = cp_fsm_dbs(e->f), .client_id = client};
    int rv = bl_obj_get(&c, kind, id, &o);
    mdb_txn_abort(r);
    assert_true(rv == 0 || rv == TVMW_ENOTFOUND);
    return rv == 0 ? o : NULL;
}

static bool rel_exists(struct bt_env *e, const char *name, uint64_t from, uint64_t to)
{
    MDB_txn *r;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    struct bl_ctx c = {.txn = r, .db = cp_fsm_dbs(e->f), .client_id = 1};
    int rv = bl_rel_get(&c, name, from, to, NULL);
    mdb_txn_abort(r);
    assert_true(rv == 0 || rv == TVMW_ENOTFOUND);
    return rv == 0;
}

static bool uniq_exists(struct bt_env *e, uint64_t client, const char *name, const char *key)
{
    MDB_txn *r;
    uint64_t id;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    struct bl_ctx c = {.txn = r, .db = cp_fsm_dbs(e->f), .client_id = client};
    int rv = bl_uniq_get(&c, name, key, &id);
    mdb_txn_abort(r);
    assert_true(rv == 0 || rv == TVMW_ENOTFOUND);
    return rv == 0;
}

/* Runs a method, expects `code`, returns nothing. */
static void call_expect(struct bt_env *e, uint64_t client, const char *method, const char *form,
                        int code)
{
    json_t *r = bt_call(e, client, method, form);
    bt_expect(r, code);
    json_decref(r);
}

/* account/create for client 1; returns the account id and the abonement. */
static uint64_t create_account(struct bt_env *e, uint64_t client, const char *form, char abon[65])
{
    json_t *r = bt_expect(bt_call(e, client, "account/create", form), 0);
    uint64_t id = (uint64_t)bt_int(r, "id");
    if (abon != NULL) {
        snprintf(abon, 65, "%s", bt_str(r, "abonement"));
    }
    json_decref(r);
    return id;
}

static json_t *info(struct bt_env *e, uint64_t client, const char *form)
{
    return bt_call(e, client, "account/info", form);
}

/* The object's keys are exactly `keys`, in this order. */
static void assert_keys(json_t *o, const char *const *keys, size_t n)
{
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (i >= n || strcmp(k, keys[i]) != 0) {
            char *t = json_dumps(o, JSON_COMPACT);
            fail_msg("key %zu is %s, want %s in %s", i, k, i < n ? keys[i] : "(end)", t);
        }
        i++;
    }
    assert_int_equal(i, n);
}

static size_t list_count(struct bt_env *e, uint64_t client, const char *form)
{
    json_t *r = bt_expect(bt_call(e, client, "account/list", form), 0);
    size_t n = json_array_size(json_object_get(r, "accounts"));
    json_decref(r);
    return n;
}

static const char *const info_keys[] = {"id",
                                        "abonement",
                                        "customer_id",
                                        "active",
                                        "status_reason",
                                        "auto_activation_period",
                                        "extension_date",
                                        "activation_date",
                                        "deactivation_date",
                                        "allow_multiple_login",
                                        "allow_login_by_abonement",
                                        "allow_login_by_device_uid",
                                        "allow_login_by_ip",
                                        "parent_code",
                                        "use_timeshift",
                                        "preferred_timeshift_offset",
                                        "devices",
                                        "tariffs",
                                        "subnets",
                                        "subscriptions",
                                        "data_center",
                                        "allowed_device_groups"};
#define INFO_KEYS (sizeof(info_keys) / sizeof(info_keys[0]))

/* ---- account/create ------------------------------------------------------ */

static void test_create_defaults(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = seed_customer(e, 1, "EXT-9");
    char form[128];
    snprintf(form, sizeof(form), "customer_id=%llu", (unsigned long long)cust);
    json_t *r = bt_expect(bt_call(e, 1, "account/create", form), 0);
    static const char *const create_keys[] = {"abonement", "password",      "id",
                                              "error",     "error_message", "error_fields"};
    assert_keys(r, create_keys, 6);
    assert_string_equal(bt_str(r, "abonement"), "1000000");
    assert_string_equal(bt_str(r, "password"), "");
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    uint64_t id = (uint64_t)bt_int(r, "id");
    json_decref(r);

    r = bt_expect(info(e, 1, "abonement=1000000"), 0);
    static const char *const keys[] = {"id",
                                       "abonement",
                                       "customer_id",
                                       "active",
                                       "status_reason",
                                       "auto_activation_period",
                                       "extension_date",
                                       "activation_date",
                                       "deactivation_date",
                                       "allow_multiple_login",
                                       "allow_login_by_abonement",
                                       "allow_login_by_device_uid",
                                       "allow_login_by_ip",
                                       "parent_code",
                                       "use_timeshift",
                                       "preferred_timeshift_offset",
                                       "devices",
                                       "tariffs",
                                       "subnets",
                                       "subscriptions",
                                       "data_center",
                                       "allowed_device_groups",
                                       "error",
                                       "error_message"};
    assert_keys(r, keys, sizeof(keys) / sizeof(keys[0]));
    assert_int_equal(bt_int(r, "id"), id);
    assert_string_equal(bt_str(r, "abonement"), "1000000");
    assert_int_equal(bt_int(r, "customer_id"), cust);
    assert_int_equal(bt_int(r, "active"), 1);
    assert_true(json_is_null(json_object_get(r, "status_reason")));
    assert_int_equal(bt_int(r, "auto_activation_period"), 0);
    assert_string_equal(bt_str(r, "extension_date"), "");
    assert_string_equal(bt_str(r, "activation_date"), "");
    assert_string_equal(bt_str(r, "deactivation_date"), "");
    assert_int_equal(bt_int(r, "allow_multiple_login"), 0);
    assert_int_equal(bt_int(r, "allow_login_by_abonement"), 0);
    assert_int_equal(bt_int(r, "allow_login_by_device_uid"), 1);
    assert_int_equal(bt_int(r, "allow_login_by_ip"), 0);
    assert_int_equal(bt_int(r, "parent_code"), 0);
    assert_int_equal(bt_int(r, "use_timeshift"), 0);
    assert_int_equal(bt_int(r, "preferred_timeshift_offset"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "devices")), 0);
    assert_true(json_is_array(json_object_get(r, "tariffs")));
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 0);
    assert_string_equal(bt_str(r, "subnets"), "");
    assert_int_equal(json_array_size(json_object_get(r, "subscriptions")), 0);
    assert_true(json_is_null(json_object_get(r, "data_center")));
    json_t *groups = json_object_get(r, "allowed_device_groups");
    assert_int_equal(json_array_size(groups), 4);
    assert_int_equal(json_integer_value(json_array_get(groups, 3)), 3);
    assert_string_equal(bt_str(r, "error_message"), "");
    json_decref(r);

    /* The same object by account_id; the customer links the account. */
    snprintf(form, sizeof(form), "account_id=%llu", (unsigned long long)id);
    r = bt_expect(info(e, 1, form), 0);
    assert_string_equal(bt_str(r, "abonement"), "1000000");
    json_decref(r);
    assert_true(rel_exists(e, BL_REL_CUST_ACC, cust, id));
    json_t *rec = record(e, 1, BL_ACCOUNT, id);
    assert_int_equal(bt_int(rec, "created_ms"), e->time_ms);
    assert_int_equal(bt_int(rec, "logout_before_ms"), 0);
    assert_true(json_is_null(json_object_get(rec, "last_active_ms")));
    json_decref(rec);
    bt_free(e);
}

static void test_create_customer_selector(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = seed_customer(e, 1, "EXT-9");
    uint64_t other = seed_customer(e, 2, "EXT-2");
    char form[128];
    /* Hydra: customer_id=-1 and ext_id. */
    json_t *r = bt_expect(bt_call(e, 1, "account/create", "customer_id=-1&ext_id=EXT-9"), 0);
    snprintf(form, sizeof(form), "account_id=%lld", (long long)bt_int(r, "id"));
    json_decref(r);
    r = bt_expect(info(e, 1, form), 0);
    assert_int_equal(bt_int(r, "customer_id"), cust);
    json_decref(r);
    /* Not found: nothing, unknown id/ext_id, garbage, another tenant's. */
    r = bt_expect(bt_call(e, 1, "account/create", "abonement=555"), 1);
    assert_null(json_object_get(r, "abonement"));
    assert_non_null(json_object_get(r, "error_fields"));
    json_decref(r);
    call_expect(e, 1, "account/create", "customer_id=999", 1);
    call_expect(e, 1, "account/create", "ext_id=nope", 1);
    call_expect(e, 1, "account/create", "customer_id=abc", 1);
    snprintf(form, sizeof(form), "customer_id=%llu", (unsigned long long)other);
    call_expect(e, 1, "account/create", form, 1);
    call_expect(e, 1, "account/create", "ext_id=EXT-2", 1);
    assert_int_equal(list_count(e, 1, ""), 1);
    assert_int_equal(list_count(e, 2, ""), 0);
    bt_free(e);
}

static void test_create_attributes(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    /* The Hydra account_create parameter set (Python 2 booleans). */
    uint64_t id = create_account(e, 1,
                                 "ext_id=U1&abonement=77001&allow_login_by_abonement=True&"
                                 "active=True&allow_multiple_login=True&"
                                 "allow_login_by_device_uid=False&template=impuls",
                                 NULL);
    json_t *r = bt_expect(info(e, 1, "abonement=77001"), 0);
    assert_int_equal(bt_int(r, "id"), id);
    assert_int_equal(bt_int(r, "allow_login_by_abonement"), 1);
    assert_int_equal(bt_int(r, "allow_multiple_login"), 1);
    assert_int_equal(bt_int(r, "allow_login_by_device_uid"), 0);
    assert_int_equal(bt_int(r, "active"), 1);
    json_decref(r);

    id = create_account(e, 1,
                        "ext_id=U1&abonement=77002&active=0&status_reason=DEBT&"
                        "auto_activation_period=30&extension_date=2026-02-01&"
                        "activation_date=2026-01-15 10:00:00&deactivation_date=2026-03-01&"
                        "allow_login_by_ip=on&parent_code=1234&use_timeshift=1&"
                        "preferred_timeshift_offset=-3&data_center=5&"
                        "allowed_device_groups=[2, 0, 2]&"
                        "subnets=10.0.0.0/8, 192.168.1.5;172.16.0.0/12\t0.0.0.0/0&"
                        "password_hash="
                        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff&"
                        "password_salt=abcdef0123456789",
                        NULL);
    r = bt_expect(info(e, 1, "abonement=77002"), 0);
    assert_int_equal(bt_int(r, "active"), 0);
    assert_string_equal(bt_str(r, "status_reason"), "DEBT");
    assert_int_equal(bt_int(r, "auto_activation_period"), 30);
    assert_string_equal(bt_str(r, "extension_date"), "2026-02-01");
    assert_string_equal(bt_str(r, "activation_date"), "2026-01-15");
    assert_string_equal(bt_str(r, "deactivation_date"), "2026-03-01");
    assert_int_equal(bt_int(r, "allow_login_by_ip"), 1);
    assert_int_equal(bt_int(r, "parent_code"), 1234);
    assert_int_equal(bt_int(r, "use_timeshift"), 1);
    assert_int_equal(bt_int(r, "preferred_timeshift_offset"), -3);
    assert_int_equal(bt_int(r, "data_center"), 5);
    json_t *g = json_object_get(r, "allowed_device_groups");
    assert_int_equal(json_array_size(g), 2);
    assert_int_equal(json_integer_value(json_array_get(g, 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(g, 1)), 2);
    assert_string_equal(bt_str(r, "subnets"), "10.0.0.0/8;192.168.1.5/32;172.16.0.0/12;0.0.0.0/0");
    json_decref(r);
    json_t *rec = record(e, 1, BL_ACCOUNT, id);
    assert_string_equal(bt_str(rec, "password_hash"),
                        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_string_equal(bt_str(rec, "password_salt"), "abcdef0123456789");
    assert_null(json_object_get(rec, "template"));
    json_decref(rec);

    /* Empty values: dates unset, data_center null, parent_code 0. */
    create_account(e, 1,
                   "ext_id=U1&abonement=77003&extension_date=&data_center=&parent_code=&"
                   "subnets=&status_reason=",
                   NULL);
    r = bt_expect(info(e, 1, "abonement=77003"), 0);
    assert_string_equal(bt_str(r, "extension_date"), "");
    assert_true(json_is_null(json_object_get(r, "data_center")));
    assert_int_equal(bt_int(r, "parent_code"), 0);
    assert_string_equal(bt_str(r, "subnets"), "");
    assert_string_equal(bt_str(r, "status_reason"), "");
    json_decref(r);
    bt_free(e);
}

static void test_create_validation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    static const struct {
        const char *form, *field;
    } bad[] = {
        {"ext_id=U1&active=maybe", "active"},
        {"ext_id=U1&active=", "active"},
        {"ext_id=U1&status_reason=123456789012345678901", "status_reason"},
        {"ext_id=U1&auto_activation_period=-1", "auto_activation_period"},
        {"ext_id=U1&auto_activation_period=x", "auto_activation_period"},
        {"ext_id=U1&extension_date=01.02.2026", "extension_date"},
        {"ext_id=U1&deactivation_date=2026-02-30", "deactivation_date"},
        {"ext_id=U1&parent_code=12a", "parent_code"},
        {"ext_id=U1&preferred_timeshift_offset=", "preferred_timeshift_offset"},
        {"ext_id=U1&data_center=dc1", "data_center"},
        {"ext_id=U1&allowed_device_groups=[0, 4]", "allowed_device_groups"},
        {"ext_id=U1&allowed_device_groups=[]", "allowed_device_groups"},
        {"ext_id=U1&subnets=10.0.0.0/33", "subnets"},
        {"ext_id=U1&subnets=10.0.0/8", "subnets"},
        {"ext_id=U1&subnets=10.0.0.0/8;fe80::/10", "subnets"},
        {"ext_id=U1&subnets=10.0.0.0/", "subnets"},
        {"ext_id=U1&abonement=12 34", "abonement"},
        {"ext_id=U1&abonement="
         "12345678901234567890123456789012345678901234567890123456789012345",
         "abonement"},
        {"ext_id=U1&password_hash=abc&password_salt=x", "password"},
        {"ext_id=U1&password_hash="
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
         "password"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = bt_call(e, 1, "account/create", bad[i].form);
        if (bt_int(r, "error") != 2 ||
            json_object_get(json_object_get(r, "error_fields"), bad[i].field) == NULL) {
            char *t = json_dumps(r, JSON_COMPACT);
            fail_msg("%s: want error 2 on %s, got %s", bad[i].form, bad[i].field, t);
        }
        assert_null(json_object_get(r, "abonement"));
        json_decref(r);
    }
    /* Nothing was written: no account, the abonement counter untouched. */
    assert_int_equal(list_count(e, 1, ""), 0);
    char abon[65];
    create_account(e, 1, "ext_id=U1", abon);
    assert_string_equal(abon, "1000000");
    bt_free(e);
}

static void test_create_duplicate_and_generated(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t c1 = seed_customer(e, 1, "U1");
    seed_customer(e, 1, "U2");
    seed_customer(e, 2, "U1");
    char abon[65];
    /* A caller-chosen abonement in the generated range is skipped. */
    uint64_t first = create_account(e, 1, "ext_id=U1&abonement=1000001", NULL);
    create_account(e, 1, "ext_id=U1", abon);
    assert_string_equal(abon, "1000000");
    create_account(e, 1, "ext_id=U1", abon);
    assert_string_equal(abon, "1000002");
    /* Counters are per client. */
    create_account(e, 2, "ext_id=U1", abon);
    assert_string_equal(abon, "1000000");
    uint64_t last = create_account(e, 2, "ext_id=U1&abonement=1000001", NULL);

    /* Hydra re-creates an existing abonement: error 3, nothing changes. */
    json_t *r = bt_call(e, 1, "account/create", "ext_id=U2&abonement=1000001&active=0");
    bt_expect(r, 3);
    assert_null(json_object_get(r, "abonement"));
    assert_null(json_object_get(r, "id"));
    assert_non_null(json_object_get(r, "error_fields"));
    json_decref(r);
    r = bt_expect(info(e, 1, "abonement=1000001"), 0);
    assert_int_equal(bt_int(r, "id"), first);
    assert_int_equal(bt_int(r, "customer_id"), c1);
    assert_int_equal(bt_int(r, "active"), 1);
    json_decref(r);
    assert_int_equal(list_count(e, 1, ""), 3);
    /* The failed create consumed no id and no abonement. */
    uint64_t next = create_account(e, 1, "ext_id=U2", abon);
    assert_string_equal(abon, "1000003");
    assert_int_equal(next, last + 1);
    /* Non-numeric logins are accepted (tvmw decision). */
    create_account(e, 1, "ext_id=U2&abonement=AB-77", abon);
    assert_string_equal(abon, "AB-77");
    bt_free(e);
}

/* ---- account/modify ----------------------------------------------------- */

static void test_modify(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    char form[256];
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=5001&parent_code=42", NULL);
    create_account(e, 1, "ext_id=U1&abonement=5002", NULL);

    /* Hydra blocks for debt: only the given fields change. */
    e->time_ms += 60000;
    json_t *r =
        bt_expect(bt_call(e, 1, "account/modify", "abonement=5001&active=0&status_reason=DEBT"), 0);
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    json_decref(r);
    r = bt_expect(info(e, 1, "abonement=5001"), 0);
    assert_int_equal(bt_int(r, "active"), 0);
    assert_string_equal(bt_str(r, "status_reason"), "DEBT");
    assert_int_equal(bt_int(r, "parent_code"), 42);
    assert_int_equal(bt_int(r, "allow_login_by_device_uid"), 1);
    json_decref(r);
    json_t *rec = record(e, 1, BL_ACCOUNT, id);
    assert_int_equal(bt_int(rec, "logout_before_ms"), e->time_ms);
    const char *hash0 = bt_str(rec, "password_hash");
    assert_string_equal(hash0, "");
    json_decref(rec);
    call_expect(e, 1, "account/modify", "abonement=5001&active=1&status_reason=ACTIVE", 0);

    /* abonement as the selector is not a new value. */
    snprintf(form, sizeof(form), "abonement=5001&account_id=-1&use_timeshift=1");
    call_expect(e, 1, "account/modify", form, 0);
    r = bt_expect(info(e, 1, "abonement=5001"), 0);
    assert_int_equal(bt_int(r, "use_timeshift"), 1);
    json_decref(r);

    /* Rename: account_id + abonement; the index follows. */
    snprintf(form, sizeof(form), "account_id=%llu&abonement=6001", (unsigned long long)id);
    call_expect(e, 1, "account/modify", form, 0);
    call_expect(e, 1, "account/info", "abonement=5001", 1);
    r = bt_expect(info(e, 1, "abonement=6001"), 0);
    assert_int_equal(bt_int(r, "id"), id);
    json_decref(r);
    assert_false(uniq_exists(e, 1, BL_UNIQ_ABONEMENT, "5001"));
    /* The freed login can be used again. */
    create_account(e, 1, "ext_id=U1&abonement=5001", NULL);

    /* Renaming onto a taken abonement is a validation error. */
    snprintf(form, sizeof(form), "account_id=%llu&abonement=5002&active=0", (unsigned long long)id);
    r = bt_expect(bt_call(e, 1, "account/modify", form), 2);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "abonement"));
    json_decref(r);
    r = bt_expect(info(e, 1, "abonement=6001"), 0);
    assert_int_equal(bt_int(r, "active"), 1); /* nothing applied */
    json_decref(r);

    /* No password parameters (an empty password): unchanged; a new one
     * arrives hashed. */
    call_expect(e, 1, "account/modify", "abonement=6001", 0);
    rec = record(e, 1, BL_ACCOUNT, id);
    assert_string_equal(bt_str(rec, "password_hash"), "");
    json_decref(rec);
    call_expect(e, 1, "account/modify",
                "abonement=6001&password_hash="
                "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100&"
                "password_salt=0a0b",
                0);
    rec = record(e, 1, BL_ACCOUNT, id);
    assert_string_equal(bt_str(rec, "password_hash"),
                        "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
    assert_string_equal(bt_str(rec, "password_salt"), "0a0b");
    json_decref(rec);

    /* Validation (2), not found (1). */
    r = bt_expect(bt_call(e, 1, "account/modify", "abonement=6001&activation_date=tomorrow"), 2);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "activation_date"));
    json_decref(r);
    call_expect(e, 1, "account/modify", "abonement=6001&reset_device_settings=2", 2);
    call_expect(e, 1, "account/modify", "abonement=9999&active=0", 1);
    call_expect(e, 1, "account/modify", "active=0", 1);
    call_expect(e, 1, "account/modify", "account_id=x", 1);

    /* allowed_device_groups is accepted on modify too; subnets replaced. */
    call_expect(e, 1, "account/modify",
                "abonement=6001&allowed_device_groups=1&subnets=192.168.0.0/16", 0);
    r = bt_expect(info(e, 1, "abonement=6001"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "allowed_device_groups")), 1);
    assert_string_equal(bt_str(r, "subnets"), "192.168.0.0/16");
    json_decref(r);

    /* reset_device_settings=1 marks every device of the account. */
    call_expect(e, 1, "account/device/create", "abonement=6001&system_name=mag&device_uid=U-1", 0);
    call_expect(e, 1, "account/modify", "abonement=6001&reset_device_settings=1", 0);
    r = bt_expect(info(e, 1, "abonement=6001"), 0);
    uint64_t dev = (uint64_t)bt_int(json_array_get(json_object_get(r, "devices"), 0), "id");
    json_decref(r);
    rec = record(e, 1, BL_DEVICE, dev);
    assert_int_equal(bt_int(rec, "reset_settings"), 1);
    json_decref(rec);
    bt_free(e);
}

/* ---- account/info tariffs, account/tariff ----------------------------------- */

static void test_tariffs(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = seed_customer(e, 1, "U1");
    uint64_t t1 = seed_tariff(e, 1, "T-1", 15050);
    uint64_t t2 = seed_tariff(e, 1, "T-2", 0);
    uint64_t t3 = seed_tariff(e, 1, "", 1000);
    uint64_t foreign = seed_tariff(e, 2, "T-F", 100);
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=100", NULL);
    char form[128];

    /* A tariff of the customer applies to the account too. */
    struct wtx w;
    w_begin(e, 1, &w);
    json_t *val = json_pack("{s:I}", "assigned_ms", (json_int_t)e->time_ms);
    assert_int_equal(bl_rel_put(&w.c, BL_REL_CUST_TAR, cust, t2, val), 0);
    json_decref(val);
    w_commit(&w);

    snprintf(form, sizeof(form), "abonement=100&tariff_id=%llu", (unsigned long long)t3);
    json_t *r = bt_expect(bt_call(e, 1, "account/tariff/assign", form), 0);
    static const char *const keys[] = {"error", "error_message"};
    assert_keys(r, keys, 2);
    json_decref(r);
    call_expect(e, 1, "account/tariff/assign", "abonement=100&tariff_ext_id=T-1", 0);
    /* Re-assigning later is a success and keeps the first date. */
    e->time_ms += 3ull * 86400000;
    call_expect(e, 1, "account/tariff/assign", "abonement=100&tariff_ext_id=T-1", 0);
    assert_true(rel_exists(e, BL_REL_ACC_TAR, id, t1));
    assert_true(rel_exists(e, BL_REL_TAR_ACC, t1, id));

    r = bt_expect(info(e, 1, "abonement=100"), 0);
    json_t *tariffs = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(tariffs), 3);
    assert_int_equal(json_integer_value(json_array_get(tariffs, 0)), t1);
    assert_int_equal(json_integer_value(json_array_get(tariffs, 1)), t2);
    assert_int_equal(json_integer_value(json_array_get(tariffs, 2)), t3);
    json_t *subs = json_object_get(r, "subscriptions");
    assert_int_equal(json_array_size(subs), 2); /* the account's own */
    json_t *s = json_array_get(subs, 0);
    static const char *const sub_keys[] = {"tariff_id",  "api_config_id", "price",
                                           "start_date", "end_date",      "is_periodical"};
    assert_keys(s, sub_keys, 6);
    assert_int_equal(bt_int(s, "tariff_id"), t1);
    assert_true(json_is_null(json_object_get(s, "api_config_id")));
    assert_true(json_is_real(json_object_get(s, "price")));
    assert_true(json_real_value(json_object_get(s, "price")) == 150.5);
    assert_string_equal(bt_str(s, "start_date"), "2026-01-15");
    assert_true(json_is_null(json_object_get(s, "end_date")));
    assert_int_equal(bt_int(s, "is_periodical"), 1);
    s = json_array_get(subs, 1);
    assert_int_equal(bt_int(s, "tariff_id"), t3);
    assert_int_equal(bt_int(s, "price"), 10);
    json_decref(r);

    /* Remove; removing again is a success; the customer's stays. */
    call_expect(e, 1, "account/tariff/remove", "abonement=100&tariff_ext_id=T-1", 0);
    call_expect(e, 1, "account/tariff/remove", "abonement=100&tariff_ext_id=T-1", 0);
    snprintf(form, sizeof(form), "abonement=100&tariff_id=%llu", (unsigned long long)t2);
    call_expect(e, 1, "account/tariff/remove", form, 0);
    assert_false(rel_exists(e, BL_REL_ACC_TAR, id, t1));
    assert_false(rel_exists(e, BL_REL_TAR_ACC, t1, id));
    r = bt_expect(info(e, 1, "abonement=100"), 0);
    tariffs = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(tariffs), 2);
    assert_int_equal(json_integer_value(json_array_get(tariffs, 0)), t2);
    assert_int_equal(json_array_size(json_object_get(r, "subscriptions")), 1);
    json_decref(r);

    /* Errors: 1 account, 2 tariff (unknown, none, virtual, another tenant's). */
    for (int assign = 0; assign < 2; assign++) {
        const char *m = assign ? "account/tariff/assign" : "account/tariff/remove";
        call_expect(e, 1, m, "abonement=999&tariff_ext_id=T-1", 1);
        call_expect(e, 1, m, "tariff_ext_id=T-1", 1);
        call_expect(e, 1, m, "abonement=100&tariff_id=999", 2);
        call_expect(e, 1, m, "abonement=100", 2);
        call_expect(e, 1, m, "abonement=100&vtariff_id=1", 2);
        call_expect(e, 1, m, "abonement=100&tariff_ext_id=T-F", 2);
        snprintf(form, sizeof(form), "abonement=100&tariff_id=%llu", (unsigned long long)foreign);
        call_expect(e, 1, m, form, 2);
    }
    bt_free(e);
}

/* ---- account/list ---------------------------------------------------------- */

static void test_list(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    uint64_t a = create_account(e, 1, "ext_id=U1&abonement=1000001", NULL);
    uint64_t b =
        create_account(e, 1, "ext_id=U1&abonement=1000002&active=0&status_reason=DEBT", NULL);
    uint64_t c = create_account(e, 1, "ext_id=U1&abonement=2000001&status_reason=ACTIVE", NULL);
    call_expect(e, 1, "account/device/create",
                "abonement=2000001&system_name=android&device_uid=aa:bb", 0);

    /* One account was active last week (set by the device side). */
    struct wtx w;
    w_begin(e, 1, &w);
    json_t *rec;
    assert_int_equal(bl_obj_get(&w.c, BL_ACCOUNT, a, &rec), 0);
    json_object_set_new(rec, "last_active_ms", json_integer((json_int_t)(e->time_ms - 604800000)));
    assert_int_equal(bl_obj_put(&w.c, BL_ACCOUNT, a, rec), 0);
    json_decref(rec);
    w_commit(&w);

    /* The Python client's mass messaging: no parameters, every account. */
    json_t *r = bt_expect(bt_call(e, 1, "account/list", ""), 0);
    static const char *const keys[] = {"accounts", "error", "error_message"};
    assert_keys(r, keys, 3);
    json_t *accs = json_object_get(r, "accounts");
    assert_int_equal(json_array_size(accs), 3);
    json_t *x = json_array_get(accs, 0);
    const char *want[INFO_KEYS + 1];
    memcpy(want, info_keys, sizeof(info_keys));
    want[INFO_KEYS] = "last_active";
    assert_keys(x, want, INFO_KEYS + 1);
    assert_int_equal(bt_int(x, "id"), a);
    const char *la = bt_str(x, "last_active");
    assert_string_equal(la, "2026-01-08");
    assert_int_equal(strlen(la), 10);
    assert_true(json_is_null(json_object_get(json_array_get(accs, 1), "last_active")));
    assert_int_equal(bt_int(json_array_get(accs, 1), "id"), b);
    x = json_array_get(accs, 2);
    assert_int_equal(bt_int(x, "id"), c);
    assert_int_equal(json_array_size(json_object_get(x, "devices")), 1);
    json_decref(r);

    /* Filters. */
    assert_int_equal(list_count(e, 1, "status=1"), 2);
    assert_int_equal(list_count(e, 1, "status=0"), 1);
    assert_int_equal(list_count(e, 1, "status_reason=DEBT"), 1);
    assert_int_equal(list_count(e, 1, "status_reason=BLOCK"), 0);
    assert_int_equal(list_count(e, 1, "device=aa:bb"), 1);
    assert_int_equal(list_count(e, 1, "device=cc:dd"), 0);
    assert_int_equal(list_count(e, 1, "abonement_regexp=^100000[12]$"), 2);
    assert_int_equal(list_count(e, 1, "abonement_regexp=0{4}"), 3); /* search, ERE */
    assert_int_equal(list_count(e, 1, "abonement_regexp=^2&status=1&device=aa:bb"), 1);
    r = bt_expect(bt_call(e, 1, "account/list", "abonement_regexp=(12"), BL_EARGUMENT);
    assert_null(json_object_get(r, "accounts"));
    json_decref(r);
    call_expect(e, 1, "account/list", "status=2", BL_EARGUMENT);
    call_expect(e, 1, "account/list", "limit=x", BL_EARGUMENT);
    call_expect(e, 1, "account/list", "limit=2&page=0", BL_EARGUMENT);

    /* Pages. */
    r = bt_expect(bt_call(e, 1, "account/list", "limit=2"), 0);
    accs = json_object_get(r, "accounts");
    assert_int_equal(json_array_size(accs), 2);
    assert_int_equal(bt_int(json_array_get(accs, 1), "id"), b);
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "account/list", "limit=2&page=2"), 0);
    accs = json_object_get(r, "accounts");
    assert_int_equal(json_array_size(accs), 1);
    assert_int_equal(bt_int(json_array_get(accs, 0), "id"), c);
    json_decref(r);
    assert_int_equal(list_count(e, 1, "limit=2&page=3"), 0);
    assert_int_equal(list_count(e, 1, "limit=0"), 3);

    /* Another tenant sees none of them, not even through the device. */
    assert_int_equal(list_count(e, 2, ""), 0);
    assert_int_equal(list_count(e, 2, "device=aa:bb"), 0);
    bt_free(e);
}

/* ---- account/delete, activate, deactivate ----------------------------------- */

static void test_activate_deactivate(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=300&status_reason=ACTIVE", NULL);
    e->time_ms += 1000;
    json_t *r = bt_expect(bt_call(e, 1, "account/deactivate", "abonement=300"), 0);
    static const char *const keys[] = {"error", "error_message"};
    assert_keys(r, keys, 2);
    json_decref(r);
    json_t *rec = record(e, 1, BL_ACCOUNT, id);
    assert_int_equal(bt_int(rec, "active"), 0);
    assert_int_equal(bt_int(rec, "logout_before_ms"), e->time_ms);
    json_decref(rec);
    e->time_ms += 1000;
    call_expect(e, 1, "account/deactivate", "abonement=300", 0); /* idempotent */
    rec = record(e, 1, BL_ACCOUNT, id);
    assert_int_equal(bt_int(rec, "active"), 0);
    assert_string_equal(bt_str(rec, "status_reason"), "ACTIVE");
    json_decref(rec);

    char form[64];
    snprintf(form, sizeof(form), "account_id=%llu", (unsigned long long)id);
    call_expect(e, 1, "account/activate", form, 0);
    call_expect(e, 1, "account/activate", form, 0);
    r = bt_expect(info(e, 1, "abonement=300"), 0);
    assert_int_equal(bt_int(r, "active"), 1);
    assert_string_equal(bt_str(r, "status_reason"), "ACTIVE");
    json_decref(r);

    for (int i = 0; i < 3; i++) {
        const char *m = i == 0   ? "account/activate"
                        : i == 1 ? "account/deactivate"
                                 : "account/delete";
        call_expect(e, 1, m, "abonement=301", 1);
        call_expect(e, 1, m, "", 1);
        call_expect(e, 1, m, "abonement=-1", 1);
        call_expect(e, 1, m, "account_id=0", 1);
    }
    bt_free(e);
}

static void test_delete(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = seed_customer(e, 1, "U1");
    uint64_t t1 = seed_tariff(e, 1, "T-1", 100);
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=400", NULL);
    uint64_t keep = create_account(e, 1, "ext_id=U1&abonement=401", NULL);
    json_t *r = bt_expect(bt_call(e, 1, "account/device/create",
                                  "abonement=400&system_name=mag&device_uid=00:1A:79:00:00:01"),
                          0);
    uint64_t dev = (uint64_t)bt_int(r, "id");
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "account/message/create", "abonement=400&subject=Hi&text=Body"), 0);
    uint64_t msg = (uint64_t)bt_int(r, "id");
    json_decref(r);
    call_expect(e, 1, "account/tariff/assign", "abonement=400&tariff_ext_id=T-1", 0);
    call_expect(e, 1, "account/tariff/assign", "abonement=401&tariff_ext_id=T-1", 0);

    /* Python/NodeJS/Hydra: account_delete('400'). */
    json_t *d = bt_expect(bt_call(e, 1, "account/delete", "abonement=400"), 0);
    static const char *const keys[] = {"error", "error_message"};
    assert_keys(d, keys, 2);
    json_decref(d);
    call_expect(e, 1, "account/info", "abonement=400", 1);
    call_expect(e, 1, "account/delete", "abonement=400", 1);
    assert_null(record(e, 1, BL_ACCOUNT, id));
    assert_null(record(e, 1, BL_DEVICE, dev));
    assert_null(record(e, 1, BL_MESSAGE, msg));
    assert_false(rel_exists(e, BL_REL_CUST_ACC, cust, id));
    assert_false(rel_exists(e, BL_REL_ACC_DEV, id, dev));
    assert_false(rel_exists(e, BL_REL_ACC_MSG, id, msg));
    assert_false(rel_exists(e, BL_REL_ACC_TAR, id, t1));
    assert_false(rel_exists(e, BL_REL_TAR_ACC, t1, id));
    assert_false(uniq_exists(e, 1, BL_UNIQ_ABONEMENT, "400"));
    assert_false(uniq_exists(e, 1, BL_UNIQ_DEV_UID, "00:1A:79:00:00:01"));
    /* The other account is untouched. */
    assert_true(rel_exists(e, BL_REL_CUST_ACC, cust, keep));
    assert_true(rel_exists(e, BL_REL_TAR_ACC, t1, keep));
    /* Login and device uid are free again. */
    create_account(e, 1, "ext_id=U1&abonement=400", NULL);
    call_expect(e, 1, "account/device/create",
                "abonement=400&system_name=mag&device_uid=00:1A:79:00:00:01", 0);

    /* bl_account_destroy directly (customer/delete uses it): an absent
     * account or another tenant's is left alone. */
    struct wtx w;
    w_begin(e, 2, &w);
    assert_int_equal(bl_account_destroy(&w.c, keep), 0);
    assert_int_equal(bl_account_destroy(&w.c, 12345), 0);
    w_commit(&w);
    json_t *still = record(e, 1, BL_ACCOUNT, keep);
    assert_non_null(still);
    json_decref(still);
    w_begin(e, 1, &w);
    assert_int_equal(bl_account_destroy(&w.c, keep), 0);
    w_commit(&w);
    assert_null(record(e, 1, BL_ACCOUNT, keep));
    assert_false(rel_exists(e, BL_REL_TAR_ACC, t1, keep));
    bt_free(e);
}

/* ---- account/message/create -------------------------------------------------- */

static void test_messages(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=7", NULL);

    /* Python message_mass_send step 2. */
    json_t *r = bt_expect(bt_call(e, 1, "account/message/create",
                                  "subject=Hello&text=Body text&urgent=1&account_id=1"),
                          0);
    static const char *const keys[] = {"id", "error", "error_message", "error_fields"};
    assert_keys(r, keys, 4);
    uint64_t msg = (uint64_t)bt_int(r, "id");
    json_decref(r);
    json_t *rec = record(e, 1, BL_MESSAGE, msg);
    assert_int_equal(bt_int(rec, "account_id"), id);
    assert_string_equal(bt_str(rec, "subject"), "Hello");
    assert_string_equal(bt_str(rec, "text"), "Body text");
    assert_int_equal(bt_int(rec, "urgent"), 1);
    assert_int_equal(bt_int(rec, "delete_after_reading"), 1);
    assert_int_equal(bt_int(rec, "created_ms"), e->time_ms);
    json_decref(rec);
    assert_true(rel_exists(e, BL_REL_ACC_MSG, id, msg));

    r = bt_expect(bt_call(e, 1, "account/message/create",
                          "abonement=7&text=x&urgent=False&delete_after_reading=0"),
                  0);
    rec = record(e, 1, BL_MESSAGE, (uint64_t)bt_int(r, "id"));
    assert_int_equal(bt_int(rec, "urgent"), 0);
    assert_int_equal(bt_int(rec, "delete_after_reading"), 0);
    assert_string_equal(bt_str(rec, "subject"), "");
    json_decref(rec);
    json_decref(r);

    /* Limits in characters: 2000 Cyrillic letters pass, 2001 do not. */
    static const char head[] = "abonement=7&text=";
    size_t hl = sizeof(head) - 1, cap = hl + 2 * 2001 + 1;
    char *form = malloc(cap);
    memcpy(form, head, hl);
    for (size_t i = 0; i < 2001; i++) {
        memcpy(form + hl + 2 * i, "я", 2); /* 2 bytes in UTF-8 */
    }
    form[hl + 2 * 2000] = '\0';
    call_expect(e, 1, "account/message/create", form, 0);
    memcpy(form + hl + 2 * 2000, "я", 2);
    form[hl + 2 * 2001] = '\0';
    r = bt_expect(bt_call(e, 1, "account/message/create", form), 2);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "text"));
    assert_null(json_object_get(r, "id"));
    json_decref(r);
    free(form);
    char subj[300] = "abonement=7&text=t&subject=";
    size_t n = strlen(subj);
    memset(subj + n, 's', 256);
    subj[n + 256] = '\0';
    r = bt_expect(bt_call(e, 1, "account/message/create", subj), 2);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "subject"));
    json_decref(r);
    subj[n + 255] = '\0';
    call_expect(e, 1, "account/message/create", subj, 0);
    call_expect(e, 1, "account/message/create", "abonement=7&subject=no text", 2);
    call_expect(e, 1, "account/message/create", "abonement=7&text=t&urgent=maybe", 2);
    call_expect(e, 1, "account/message/create", "abonement=8&text=t", 1);
    call_expect(e, 1, "account/message/create", "text=t", 1);
    bt_free(e);
}

/* ---- account/device -------------------------------------------------------------- */

static void test_devices(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    seed_customer(e, 2, "U1");
    create_account(e, 1, "ext_id=U1&abonement=10", NULL);
    create_account(e, 1, "ext_id=U1&abonement=11", NULL);
    create_account(e, 2, "ext_id=U1&abonement=10", NULL);

    json_t *r = bt_expect(bt_call(e, 1, "account/device/create",
                                  "abonement=10&system_name=mag250&device_uid=00:1A:79:00:00:01&"
                                  "serial_number=SN1&brand_name=Infomir&diagonal=32&"
                                  "device_model=MAG250"),
                          0);
    static const char *const keys[] = {"id", "error", "error_message", "error_fields"};
    assert_keys(r, keys, 4);
    uint64_t dev = (uint64_t)bt_int(r, "id");
    json_decref(r);
    r = bt_expect(info(e, 1, "abonement=10"), 0);
    json_t *d = json_array_get(json_object_get(r, "devices"), 0);
    static const char *const dev_keys[] = {
        "id", "system_name", "device_uid", "serial_number", "created_at", "is_basic"};
    assert_keys(d, dev_keys, 6);
    assert_int_equal(bt_int(d, "id"), dev);
    assert_string_equal(bt_str(d, "system_name"), "mag250");
    assert_string_equal(bt_str(d, "device_uid"), "00:1A:79:00:00:01");
    assert_string_equal(bt_str(d, "serial_number"), "SN1");
    assert_string_equal(bt_str(d, "created_at"), "2026-01-15 12:00:00");
    assert_int_equal(bt_int(d, "is_basic"), 1);
    json_decref(r);
    json_t *rec = record(e, 1, BL_DEVICE, dev);
    assert_string_equal(bt_str(rec, "brand_name"), "Infomir");
    assert_string_equal(bt_str(rec, "diagonal"), "32");
    assert_int_equal(bt_int(rec, "reset_settings"), 0);
    assert_true(json_is_null(json_object_get(rec, "last_seen_ms")));
    json_decref(rec);

    /* Device types of device-api.md §14 plus browser/appleTV. */
    static const char *const types[] = {"mag",      "tvip",     "android_stb", "android", "ios",
                                        "tizen_tv", "lg_webos", "browser",     "appleTV", "kodi"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char form[128];
        snprintf(form, sizeof(form), "abonement=11&system_name=%s&device_uid=uid-%zu", types[i], i);
        call_expect(e, 1, "account/device/create", form, 0);
    }
    /* 2 unknown type, 3 validation, 4 duplicate uid (per client), 1 account. */
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=toaster&device_uid=x1", 2);
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=MAG&device_uid=x1", 2);
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=mag_x&device_uid=x1", 2);
    r = bt_expect(bt_call(e, 1, "account/device/create", "abonement=10&device_uid=x1"), 3);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "system_name"));
    json_decref(r);
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=mag", 3);
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=mag&device_uid=0", 3);
    call_expect(e, 1, "account/device/create", "abonement=10&system_name=mag&device_uid=a b", 3);
    call_expect(e, 1, "account/device/create",
                "abonement=10&system_name=mag&device_uid=x1&reset_settings=yes", 3);
    r = bt_expect(bt_call(e, 1, "account/device/create",
                          "abonement=11&system_name=mag&device_uid=00:1A:79:00:00:01"),
                  4);
    assert_null(json_object_get(r, "id"));
    json_decref(r);
    call_expect(e, 1, "account/device/create", "abonement=12&system_name=mag&device_uid=x1", 1);
    call_expect(e, 2, "account/device/create",
                "abonement=10&system_name=mag&device_uid=00:1A:79:00:00:01", 0);

    /* modify by device_id (wins) or device_uid. */
    char form[256];
    snprintf(form, sizeof(form), "device_id=%llu&device_uid=nope&serial_number=SN2",
             (unsigned long long)dev);
    r = bt_expect(bt_call(e, 1, "account/device/modify", form), 0);
    assert_keys(r, keys + 1, 3);
    json_decref(r);
    call_expect(e, 1, "account/device/modify",
                "device_uid=00:1A:79:00:00:01&brand_name=X&reset_settings=1", 0);
    rec = record(e, 1, BL_DEVICE, dev);
    assert_string_equal(bt_str(rec, "serial_number"), "SN2");
    assert_string_equal(bt_str(rec, "brand_name"), "X");
    assert_string_equal(bt_str(rec, "diagonal"), "32");
    assert_int_equal(bt_int(rec, "reset_settings"), 1);
    assert_string_equal(bt_str(rec, "device_uid"), "00:1A:79:00:00:01");
    json_decref(rec);
    call_expect(e, 1, "account/device/modify", "device_uid=nope&serial_number=1", 1);
    call_expect(e, 1, "account/device/modify", "device_id=99999&serial_number=1", 1);
    call_expect(e, 1, "account/device/modify", "serial_number=1", 1);
    r = bt_expect(bt_call(e, 1, "account/device/modify",
                          "device_uid=00:1A:79:00:00:01&diagonal=12345678901234567"),
                  2);
    assert_non_null(json_object_get(json_object_get(r, "error_fields"), "diagonal"));
    json_decref(r);

    /* delete: the PHP client sends the create parameter set. */
    r = bt_expect(bt_call(e, 1, "account/device/delete",
                          "system_name=mag250&device_uid=00:1A:79:00:00:01&abonement=11&"
                          "account_id=999"),
                  0);
    static const char *const del_keys[] = {"error", "error_message"};
    assert_keys(r, del_keys, 2);
    json_decref(r);
    assert_null(record(e, 1, BL_DEVICE, dev));
    call_expect(e, 1, "account/device/delete", "device_uid=00:1A:79:00:00:01", 1);
    call_expect(e, 1, "account/device/delete", "", 1);
    r = bt_expect(info(e, 1, "abonement=10"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "devices")), 0);
    json_decref(r);
    /* Client 2's device with the same uid is still there. */
    assert_true(uniq_exists(e, 2, BL_UNIQ_DEV_UID, "00:1A:79:00:00:01"));
    /* By id. */
    r = bt_expect(info(e, 1, "abonement=11"), 0);
    uint64_t other = (uint64_t)bt_int(json_array_get(json_object_get(r, "devices"), 0), "id");
    json_decref(r);
    snprintf(form, sizeof(form), "device_id=%llu", (unsigned long long)other);
    call_expect(e, 1, "account/device/delete", form, 0);
    assert_false(uniq_exists(e, 1, BL_UNIQ_DEV_UID, "uid-0"));
    bt_free(e);
}

/* ---- tenant isolation ----------------------------------------------------------- */

static void test_tenant_isolation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    seed_customer(e, 1, "U1");
    seed_customer(e, 2, "U2");
    uint64_t tar = seed_tariff(e, 1, "T-1", 100);
    uint64_t t2 = seed_tariff(e, 2, "T-2", 100);
    uint64_t id = create_account(e, 1, "ext_id=U1&abonement=900", NULL);
    json_t *r = bt_expect(
        bt_call(e, 1, "account/device/create", "abonement=900&system_name=mag&device_uid=DEV-1"),
        0);
    uint64_t dev = (uint64_t)bt_int(r, "id");
    json_decref(r);
    (void)tar;

    char by_id[64], by_dev[64], tar_by_id[128];
    snprintf(by_id, sizeof(by_id), "account_id=%llu", (unsigned long long)id);
    snprintf(by_dev, sizeof(by_dev), "device_id=%llu", (unsigned long long)dev);
    snprintf(tar_by_id, sizeof(tar_by_id), "account_id=%llu&tariff_id=%llu", (unsigned long long)id,
             (unsigned long long)t2);
    static const char *const acc_methods[] = {"account/info", "account/modify", "account/delete",
                                              "account/activate", "account/deactivate"};
    for (size_t i = 0; i < sizeof(acc_methods) / sizeof(acc_methods[0]); i++) {
        call_expect(e, 2, acc_methods[i], by_id, 1);
        call_expect(e, 2, acc_methods[i], "abonement=900", 1);
    }
    call_expect(e, 2, "account/tariff/assign", tar_by_id, 1);
    call_expect(e, 2, "account/tariff/remove", tar_by_id, 1);
    call_expect(e, 2, "account/tariff/assign", "abonement=900&tariff_ext_id=T-2", 1);
    call_expect(e, 2, "account/message/create", "abonement=900&text=t", 1);
    char form[128];
    snprintf(form, sizeof(form), "%s&text=t", by_id);
    call_expect(e, 2, "account/message/create", form, 1);
    call_expect(e, 2, "account/device/create", "abonement=900&system_name=mag&device_uid=D2", 1);
    snprintf(form, sizeof(form), "%s&system_name=mag&device_uid=D2", by_id);
    call_expect(e, 2, "account/device/create", form, 1);
    call_expect(e, 2, "account/device/modify", by_dev, 1);
    call_expect(e, 2, "account/device/modify", "device_uid=DEV-1&serial_number=x", 1);
    call_expect(e, 2, "account/device/delete", by_dev, 1);
    call_expect(e, 2, "account/device/delete", "device_uid=DEV-1", 1);
    assert_int_equal(list_count(e, 2, ""), 0);
    /* Client 2 may reuse client 1's abonement: logins are per client. */
    create_account(e, 2, "ext_id=U2&abonement=900", NULL);

    /* Client 1's data is untouched. */
    r = bt_expect(info(e, 1, "abonement=900"), 0);
    assert_int_equal(bt_int(r, "id"), id);
    assert_int_equal(bt_int(r, "active"), 1);
    assert_int_equal(json_array_size(json_object_get(r, "devices")), 1);
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 0);
    json_decref(r);
    json_t *rec = record(e, 1, BL_DEVICE, dev);
    assert_string_equal(bt_str(rec, "serial_number"), "");
    json_decref(rec);
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_customer_selector),
        cmocka_unit_test(test_create_attributes),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_create_duplicate_and_generated),
        cmocka_unit_test(test_modify),
        cmocka_unit_test(test_tariffs),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_activate_deactivate),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_tenant_isolation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
