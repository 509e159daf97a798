/* Billing API transactions (spec 3.5, 5.2): create/delete, the balance
 * they maintain, ext_id idempotency, customer/transaction/list, tenant
 * isolation, and a randomized check of the balance invariant. */
#include "tests/unit/billing_testlib.h"

#include "common/err.h"

#define DUP_FORM "customer_id=%llu&id=TX-1&amount=150.5&processed=1"

/* ---- helpers ------------------------------------------------------------- */

static uint64_t new_customer(struct bt_env *e, uint64_t client, const char *form)
{
    json_t *r = bt_expect(bt_call(e, client, "customer/create", form), 0);
    uint64_t id = (uint64_t)bt_int(r, "id");
    json_decref(r);
    return id;
}

/* The customer record's balance_cents and payments_count. */
static void balance_of(struct bt_env *e, uint64_t client, uint64_t cust, int64_t *cents,
                       int64_t *count)
{
    MDB_txn *txn;
    json_t *rec;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    struct bl_ctx c = {.txn = txn, .db = cp_fsm_dbs(e->f), .client_id = client};
    assert_int_equal(bl_obj_get(&c, BL_CUSTOMER, cust, &rec), 0);
    mdb_txn_abort(txn);
    *cents = bt_int(rec, "balance_cents");
    if (count != NULL) {
        *count = bt_int(rec, "payments_count");
    }
    json_decref(rec);
}

static void expect_balance(struct bt_env *e, uint64_t client, uint64_t cust, int64_t cents,
                           int64_t count)
{
    int64_t b, n;
    balance_of(e, client, cust, &b, &n);
    assert_int_equal(b, cents);
    assert_int_equal(n, count);
}

static json_t *tx_call(struct bt_env *e, uint64_t client, const char *method, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static json_t *tx_call(struct bt_env *e, uint64_t client, const char *method, const char *fmt, ...)
{
    char form[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(form, sizeof(form), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(form));
    return bt_call(e, client, method, form);
}

/* customer/transaction/list of a customer, all pages concatenated. */
static json_t *all_payments(struct bt_env *e, uint64_t client, uint64_t cust)
{
    json_t *all = json_array();
    for (int page = 1;; page++) {
        json_t *r =
            bt_expect(tx_call(e, client, "customer/transaction/list",
                              "customer_id=%llu&limit=100&page=%d", (unsigned long long)cust, page),
                      0);
        json_t *p = json_object_get(r, "payments");
        assert_true(json_is_array(p));
        json_array_extend(all, p);
        size_t n = json_array_size(p);
        json_decref(r);
        if (n < 100) {
            break;
        }
    }
    return all;
}

/* "150.50" / "-0.07" -> cents. */
static int64_t text_cents(const char *s)
{
    int64_t v;
    assert_int_equal(bl_parse_amount(s, &v), 0);
    return v;
}

static bool near(double a, double b)
{
    return a - b < 1e-6 && b - a < 1e-6;
}

/* A money field: a JSON number worth `cents`, an integer when whole. */
static void expect_money(json_t *o, const char *k, int64_t cents)
{
    json_t *m = json_object_get(o, k);
    assert_true(json_is_number(m));
    assert_true(near(json_number_value(m), (double)cents / 100.0));
    assert_true(json_is_integer(m) == (cents % 100 == 0)); /* spec 1.4 */
}

/* ---- tests --------------------------------------------------------------- */

static void test_create(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A");
    expect_balance(e, 1, cust, 0, 0);

    /* The official Python client's request (spec 6.1): not processed. */
    json_t *r = bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&id=TX-1001&amount=150.5&comment=May",
                                  (unsigned long long)cust),
                          0);
    assert_string_equal(bt_str(r, "error_message"), "");
    int64_t id1 = bt_int(r, "id");
    expect_money(r, "balance", 0);
    assert_null(json_object_get(r, "error_fields"));
    json_decref(r);
    expect_balance(e, 1, cust, 0, 0);

    r = bt_expect(tx_call(e, 1, "transaction/create",
                          "customer_id=%llu&id=TX-1002&amount=10&comment=&processed=1",
                          (unsigned long long)cust),
                  0);
    assert_true(bt_int(r, "id") > id1);
    expect_money(r, "balance", 1000);
    json_decref(r);
    expect_balance(e, 1, cust, 1000, 1);

    r = bt_expect(tx_call(e, 1, "transaction/create",
                          "customer_id=%llu&ext_id=TX-1003&amount=-0.07&processed=True",
                          (unsigned long long)cust),
                  0);
    expect_money(r, "balance", 993);
    json_decref(r);
    expect_balance(e, 1, cust, 993, 2);

    /* amount defaults to 0; processed "0"/"false" are not processed. */
    json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&id=TX-0&processed=1", (unsigned long long)cust),
                          0));
    expect_balance(e, 1, cust, 993, 3);
    json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&id=TX-F&amount=5&processed=false",
                                  (unsigned long long)cust),
                          0));
    expect_balance(e, 1, cust, 993, 3);

    /* ext_id wins over id; the stored record (source, type, times). */
    json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&ext_id=E-1&id=I-1&amount=1&"
                                  "transaction_type=2&video_available_until=2026-02-01 10:00:00",
                                  (unsigned long long)cust),
                          0));
    MDB_txn *txn;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    struct bl_ctx c = {.txn = txn, .db = cp_fsm_dbs(e->f), .client_id = 1};
    uint64_t txid;
    json_t *rec;
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TX_EXT, "E-1", &txid), 0);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TX_EXT, "I-1", &txid), TVMW_ENOTFOUND);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TX_EXT, "E-1", &txid), 0);
    assert_int_equal(bl_obj_get(&c, BL_TRANSACTION, txid, &rec), 0);
    assert_int_equal(bl_rel_get(&c, BL_REL_CUST_TX, cust, txid, NULL), 0);
    mdb_txn_abort(txn);
    assert_int_equal(bt_int(rec, "customer_id"), (int64_t)cust);
    assert_string_equal(bt_str(rec, "ext_id"), "E-1");
    assert_int_equal(bt_int(rec, "amount_cents"), 100);
    assert_int_equal(bt_int(rec, "processed"), 0);
    assert_string_equal(bt_str(rec, "source"), "billing_api");
    assert_int_equal(bt_int(rec, "transaction_type"), 2);
    assert_string_equal(bt_str(rec, "video_available_until"), "2026-02-01 10:00:00");
    assert_string_equal(bt_str(rec, "video_ext_id"), "");
    assert_int_equal(bt_int(rec, "created_ms"), (int64_t)e->time_ms);
    assert_int_equal(bt_int(rec, "client_id"), 1);
    json_decref(rec);
    bt_free(e);
}

/* The idempotency callers rely on (spec 5.2): a repeated ext_id answers 1
 * and changes nothing, whatever the repeat carries. */
static void test_duplicate_ext_id(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A");
    uint64_t other = new_customer(e, 1, "firstname=B");
#define DUP_FORM "customer_id=%llu&id=TX-1&amount=150.5&processed=1"
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create", DUP_FORM, (unsigned long long)cust), 0));
    expect_balance(e, 1, cust, 15050, 1);
    for (int i = 0; i < 3; i++) {
        json_t *r =
            bt_expect(tx_call(e, 1, "transaction/create", DUP_FORM, (unsigned long long)cust), 1);
        assert_string_not_equal(bt_str(r, "error_message"), "");
        assert_null(json_object_get(r, "id"));
        assert_null(json_object_get(r, "balance"));
        json_decref(r);
    }
    /* Different data, other customer, ext_id spelling: still 1. */
    json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&ext_id=TX-1&amount=99&processed=1",
                                  (unsigned long long)other),
                          1));
    json_decref(bt_expect(tx_call(e, 1, "transaction/create", "customer_id=%llu&id=TX-1&amount=1",
                                  (unsigned long long)cust),
                          1));
    expect_balance(e, 1, cust, 15050, 1);
    expect_balance(e, 1, other, 0, 0);
    json_t *p = all_payments(e, 1, cust);
    assert_int_equal(json_array_size(p), 1);
    json_decref(p);
    p = all_payments(e, 1, other);
    assert_int_equal(json_array_size(p), 0);
    json_decref(p);
    bt_free(e);
}

static void test_create_errors(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A&ext_id=C-1");
    unsigned long long c = (unsigned long long)cust;
    static const struct {
        const char *form;
        int code;
    } cases[] = {
        {"amount=1", 2},
        {"id=&ext_id=&amount=1", 2},
        {"id=X&amount=1.234", BL_EARGUMENT},
        {"id=X&amount=1,5", BL_EARGUMENT},
        {"id=X&amount=abc", BL_EARGUMENT},
        {"id=X&processed=maybe", BL_EARGUMENT},
        {"id=X&transaction_type=film", BL_EARGUMENT},
        {"id=X&transaction_type=1", 3},
        {"id=X&transaction_type=1&video_ext_id=", 3},
        {"id=X&transaction_type=1&video_ext_id=V-1", 4},
        {"id=X&video_available_until=2024-05-01", 5},
        {"id=X&video_available_until=2024-13-01 00:00:00", 5},
        {"id=X&video_available_until=2024-05-01 24:00:00", 5},
        {"id=X&video_available_until=2024-05-01T10:00:00", 5},
        {"id=X&video_available_until=01.05.2024 10:00:00", 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = tx_call(e, 1, "transaction/create", "customer_id=%llu&%s", c, cases[i].form);
        bt_expect(r, cases[i].code);
        assert_string_not_equal(bt_str(r, "error_message"), "");
        json_decref(r);
    }
    /* Customer: only customer_id selects (ext_id names the transaction). */
    static const char *const no_cust[] = {
        "id=X&amount=1",
        "customer_id=-1&id=X&amount=1",
        "customer_id=&id=X&amount=1",
        "customer_id=abc&id=X&amount=1",
        "customer_id=999&id=X&amount=1",
        "customer_id=0&id=X&amount=1",
        "customer_id=-1&ext_id=C-1&amount=1",
    };
    for (size_t i = 0; i < sizeof(no_cust) / sizeof(no_cust[0]); i++) {
        json_decref(bt_expect(bt_call(e, 1, "transaction/create", no_cust[i]), 6));
    }
    /* ext_id length: 255 characters pass, 256 fail. */
    char ext[300];
    memset(ext, 'x', 256);
    ext[256] = '\0';
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=%s&processed=1&amount=1", c, ext),
        BL_EARGUMENT));
    ext[255] = '\0';
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=%s&processed=1&amount=1", c, ext),
        0));
    /* A valid date-time without a film passes. */
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create",
                          "customer_id=%llu&id=Y&video_available_until=2024-02-29 23:59:59", c),
                  0));
    /* Nothing but the two successes was stored. */
    expect_balance(e, 1, cust, 100, 1);
    json_t *p = all_payments(e, 1, cust);
    assert_int_equal(json_array_size(p), 2);
    json_decref(p);
    bt_free(e);
}

static void test_delete(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A");
    uint64_t other = new_customer(e, 1, "firstname=B");
    unsigned long long c = (unsigned long long)cust, o = (unsigned long long)other;
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=P&amount=150.5&processed=1", c),
        0));
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create", "customer_id=%llu&id=U&amount=7", c), 0));
    expect_balance(e, 1, cust, 15050, 1);

    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu", c), 2));
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=", c), 2));
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=NOPE", c), 1));
    /* Another customer's transaction: 1, and it stays. */
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=P", o), 1));
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=abc&id=P"), 1));
    expect_balance(e, 1, cust, 15050, 1);

    /* The Python client's request (customer_id + id): reverses the balance. */
    json_t *r = bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=P", c), 0);
    assert_null(json_object_get(r, "error_fields"));
    json_decref(r);
    expect_balance(e, 1, cust, 0, 0);
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=P", c), 1));
    /* Without customer_id, by ext_id (and Hydra's "-1" placeholder). */
    json_decref(bt_expect(bt_call(e, 1, "transaction/delete", "customer_id=-1&ext_id=U"), 0));
    expect_balance(e, 1, cust, 0, 0);
    json_t *p = all_payments(e, 1, cust);
    assert_int_equal(json_array_size(p), 0);
    json_decref(p);

    /* The ext_id is free again after delete. */
    r = bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=P&amount=2&processed=1", o), 0);
    expect_money(r, "balance", 200);
    json_decref(r);
    expect_balance(e, 1, other, 200, 1);
    json_decref(bt_expect(bt_call(e, 1, "transaction/delete", "id=P"), 0));
    expect_balance(e, 1, other, 0, 0);

    /* A deleted customer's transactions stay (spec 3.2) and can still be
     * deleted; the ext_id stays taken until then. */
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=K&amount=3&processed=1", o), 0));
    json_decref(bt_expect(tx_call(e, 1, "customer/delete", "customer_id=%llu", o), 0));
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=K&amount=3&processed=1", c), 1));
    json_decref(bt_expect(tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=K", o), 0));
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=K&amount=3&processed=1", c), 0));
    expect_balance(e, 1, cust, 300, 1);
    bt_free(e);
}

static void test_list(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A&ext_id=C-1");
    unsigned long long c = (unsigned long long)cust;
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create",
                          "customer_id=%llu&id=TX-1001&amount=150.5&comment=May&processed=1", c),
                  0));
    e->time_ms += 61000;
    json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                  "customer_id=%llu&id=TX-1002&amount=-0.07&comment=Оплата", c),
                          0));
    json_t *r = bt_expect(tx_call(e, 1, "customer/transaction/list", "customer_id=%llu", c), 0);
    char *t = json_dumps(json_object_get(r, "payments"), JSON_COMPACT);
    assert_string_equal(t, "[{\"transaction_id\":\"TX-1002\",\"amount\":\"-0.07\","
                           "\"source\":\"billing_api\",\"datetime\":\"2026-01-15 12:01:01\","
                           "\"comment\":\"Оплата\",\"processed\":0},"
                           "{\"transaction_id\":\"TX-1001\",\"amount\":\"150.50\","
                           "\"source\":\"billing_api\",\"datetime\":\"2026-01-15 12:00:00\","
                           "\"comment\":\"May\",\"processed\":1}]");
    free(t);
    assert_null(json_object_get(r, "error_fields"));
    json_decref(r);

    /* Selector by the customer's ext_id (Hydra style with customer_id=-1). */
    r = bt_expect(bt_call(e, 1, "customer/transaction/list", "customer_id=-1&ext_id=C-1"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "payments")), 2);
    json_decref(r);
    static const char *const missing[] = {"", "customer_id=999", "customer_id=abc", "ext_id=C-404",
                                          "customer_id=-1&ext_id=-1"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        json_decref(bt_expect(bt_call(e, 1, "customer/transaction/list", missing[i]), 1));
    }

    /* Paging: 105 more; limit clamps at 100; pages are newest first. */
    for (int i = 0; i < 105; i++) {
        json_decref(bt_expect(tx_call(e, 1, "transaction/create",
                                      "customer_id=%llu&id=P-%03d&amount=%d&processed=1", c, i, i),
                              0));
    }
    static const struct {
        const char *q;
        size_t n;
        const char *first;
    } pages[] = {
        {"", 100, "P-104"},
        {"&limit=500", 100, "P-104"},
        {"&limit=100&page=2", 7, "P-004"},
        {"&limit=100&page=3", 0, NULL},
        {"&limit=10&page=11", 7, "P-004"},
        {"&limit=10&page=12", 0, NULL},
        {"&limit=3&page=2", 3, "P-101"},
        {"&limit=0", 0, NULL},
        {"&page=999999999999", 0, NULL},
        {"&limit=&page=", 100, "P-104"},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        r = bt_expect(
            tx_call(e, 1, "customer/transaction/list", "customer_id=%llu%s", c, pages[i].q), 0);
        json_t *p = json_object_get(r, "payments");
        assert_int_equal(json_array_size(p), pages[i].n);
        if (pages[i].first != NULL) {
            assert_string_equal(bt_str(json_array_get(p, 0), "transaction_id"), pages[i].first);
        }
        json_decref(r);
    }
    static const char *const bad[] = {"&limit=-1", "&limit=x", "&page=0", "&page=-2", "&page=y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_decref(
            bt_expect(tx_call(e, 1, "customer/transaction/list", "customer_id=%llu%s", c, bad[i]),
                      BL_EARGUMENT));
    }
    json_t *all = all_payments(e, 1, cust);
    assert_int_equal(json_array_size(all), 107);
    assert_string_equal(bt_str(json_array_get(all, 106), "transaction_id"), "TX-1001");
    json_decref(all);
    bt_free(e);
}

static void test_tenant_isolation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t c1 = new_customer(e, 1, "firstname=A&ext_id=SAME");
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create",
                          "customer_id=%llu&id=TX-1&amount=5&processed=1", (unsigned long long)c1),
                  0));
    /* Client 2 cannot use, list or delete client 1's objects. */
    json_decref(
        bt_expect(tx_call(e, 2, "transaction/create",
                          "customer_id=%llu&id=TX-2&amount=5&processed=1", (unsigned long long)c1),
                  6));
    json_decref(bt_expect(
        tx_call(e, 2, "customer/transaction/list", "customer_id=%llu", (unsigned long long)c1), 1));
    json_decref(bt_expect(bt_call(e, 2, "customer/transaction/list", "ext_id=SAME"), 1));
    json_decref(bt_expect(bt_call(e, 2, "transaction/delete", "id=TX-1"), 1));
    json_decref(bt_expect(
        tx_call(e, 2, "transaction/delete", "customer_id=%llu&id=TX-1", (unsigned long long)c1),
        1));
    expect_balance(e, 1, c1, 500, 1);

    /* Client 2 reuses the same ext_id independently. */
    uint64_t c2 = new_customer(e, 2, "firstname=B&ext_id=SAME");
    json_t *r =
        bt_expect(tx_call(e, 2, "transaction/create",
                          "customer_id=%llu&id=TX-1&amount=7&processed=1", (unsigned long long)c2),
                  0);
    expect_money(r, "balance", 700);
    json_decref(r);
    json_decref(
        bt_expect(tx_call(e, 2, "transaction/create",
                          "customer_id=%llu&id=TX-1&amount=7&processed=1", (unsigned long long)c2),
                  1));
    expect_balance(e, 2, c2, 700, 1);
    expect_balance(e, 1, c1, 500, 1);
    json_decref(bt_expect(bt_call(e, 2, "transaction/delete", "id=TX-1"), 0));
    expect_balance(e, 2, c2, 0, 0);
    expect_balance(e, 1, c1, 500, 1);
    json_t *p = all_payments(e, 1, c1);
    assert_int_equal(json_array_size(p), 1);
    json_decref(p);
    json_decref(bt_expect(
        tx_call(e, 1, "transaction/create", "customer_id=%llu&id=TX-1", (unsigned long long)c1),
        1));
    bt_free(e);
}

/* A balance that would leave int64 is refused (-100) before anything is
 * written. */
static void test_balance_overflow(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t cust = new_customer(e, 1, "firstname=A");
    MDB_txn *txn;
    json_t *rec;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    MDB_env *env = mdb_txn_env(txn);
    mdb_txn_abort(txn);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    struct bl_ctx c = {.txn = txn, .db = cp_fsm_dbs(e->f), .client_id = 1, .write = true};
    assert_int_equal(bl_obj_get(&c, BL_CUSTOMER, cust, &rec), 0);
    json_object_set_new(rec, "balance_cents", json_integer(INT64_MAX - 50));
    assert_int_equal(bl_obj_put(&c, BL_CUSTOMER, cust, rec), 0);
    json_decref(rec);
    assert_int_equal(mdb_txn_commit(txn), 0);

    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create", "customer_id=%llu&id=O&amount=1&processed=1",
                          (unsigned long long)cust),
                  BL_EARGUMENT));
    expect_balance(e, 1, cust, INT64_MAX - 50, 0);
    json_t *p = all_payments(e, 1, cust);
    assert_int_equal(json_array_size(p), 0);
    json_decref(p);
    /* Not processed, or towards zero: fine. */
    json_decref(bt_expect(tx_call(e, 1, "transaction/create", "customer_id=%llu&id=O&amount=1",
                                  (unsigned long long)cust),
                          0));
    json_decref(
        bt_expect(tx_call(e, 1, "transaction/create", "customer_id=%llu&id=P&amount=-1&processed=1",
                          (unsigned long long)cust),
                  0));
    expect_balance(e, 1, cust, INT64_MAX - 150, 1);
    bt_free(e);
}

/* ---- the balance invariant under random operations -------------------------- */

#define INV_CUSTOMERS 3
#define INV_OPS       500
#define INV_EXT_POOL  40

struct model_tx {
    bool live;
    int cust; /* index into the customers array */
    int64_t cents;
    int processed;
};

static uint64_t rnd_state = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state >> 11);
}

/* balance == sum of processed amounts in the list, for every customer; the
 * model agrees with both. */
static void check_invariant(struct bt_env *e, const uint64_t *custs, const struct model_tx *m)
{
    for (int k = 0; k < INV_CUSTOMERS; k++) {
        json_t *all = all_payments(e, 1, custs[k]);
        int64_t sum = 0, count = 0, msum = 0, mcount = 0;
        size_t i, mlive = 0;
        json_t *p;
        json_array_foreach(all, i, p)
        {
            assert_true(json_is_string(json_object_get(p, "amount")));
            if (bt_int(p, "processed")) {
                sum += text_cents(bt_str(p, "amount"));
                count++;
            }
        }
        for (int x = 0; x < INV_EXT_POOL; x++) {
            if (m[x].live && m[x].cust == k) {
                mlive++;
                if (m[x].processed) {
                    msum += m[x].cents;
                    mcount++;
                }
            }
        }
        int64_t bal, n;
        balance_of(e, 1, custs[k], &bal, &n);
        assert_int_equal(bal, sum);
        assert_int_equal(n, count);
        assert_int_equal(bal, msum);
        assert_int_equal(n, mcount);
        assert_int_equal(json_array_size(all), mlive);
        json_decref(all);
    }
}

static void test_balance_invariant_random(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t custs[INV_CUSTOMERS];
    struct model_tx m[INV_EXT_POOL] = {0};
    for (int k = 0; k < INV_CUSTOMERS; k++) {
        custs[k] = new_customer(e, 1, "firstname=R");
    }
    for (int op = 0; op < INV_OPS; op++) {
        int x = (int)(rnd() % INV_EXT_POOL), k = (int)(rnd() % INV_CUSTOMERS);
        e->time_ms += 1000;
        if (rnd() % 5 < 3) {
            int64_t cents = (int64_t)(rnd() % 2000001) - 1000000;
            int processed = (int)(rnd() % 3 != 0);
            char amount[32];
            bl_money_text(cents, amount);
            json_t *r = tx_call(e, 1, "transaction/create",
                                "customer_id=%llu&id=X-%d&amount=%s&processed=%d&comment=op%d",
                                (unsigned long long)custs[k], x, amount, processed, op);
            if (m[x].live) {
                bt_expect(r, 1);
            } else {
                bt_expect(r, 0);
                m[x] = (struct model_tx){
                    .live = true, .cust = k, .cents = cents, .processed = processed};
                int64_t bal;
                balance_of(e, 1, custs[k], &bal, NULL);
                expect_money(r, "balance", bal);
            }
            json_decref(r);
        } else {
            /* Delete, half of the time naming a (maybe wrong) customer. */
            bool named = rnd() % 2;
            json_t *r = named ? tx_call(e, 1, "transaction/delete", "customer_id=%llu&id=X-%d",
                                        (unsigned long long)custs[k], x)
                              : tx_call(e, 1, "transaction/delete", "ext_id=X-%d", x);
            if (m[x].live && (!named || m[x].cust == k)) {
                bt_expect(r, 0);
                m[x].live = false;
            } else {
                bt_expect(r, 1);
            }
            json_decref(r);
        }
        check_invariant(e, custs, m);
    }
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_duplicate_ext_id),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_tenant_isolation),
        cmocka_unit_test(test_balance_overflow),
        cmocka_unit_test(test_balance_invariant_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
