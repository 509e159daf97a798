/* Billing API customer methods (spec 3.2): create, modify, info, list,
 * delete, tariff assign/remove — reply shapes and types, error codes,
 * selector conventions, aliases, limits in characters, idempotency and
 * tenant isolation. Tariffs and accounts are written straight into the
 * store, so these tests do not depend on the tariff and account groups. */
#include "tests/unit/billing_testlib.h"

#include <inttypes.h>
#include <time.h>

#include "common/err.h"

#define MS_PER_DAY_TEST 86400000ull

/* ---- fixtures: direct store access -------------------------------------- */

static struct bl_ctx st_begin(struct bt_env *e, uint64_t client)
{
    MDB_txn *r, *w;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    MDB_env *env = mdb_txn_env(r);
    mdb_txn_abort(r);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &w), 0);
    return (struct bl_ctx){.txn = w,
                           .db = cp_fsm_dbs(e->f),
                           .client_id = client,
                           .time_ms = e->time_ms,
                           .write = true};
}

static struct bl_ctx st_read(struct bt_env *e, uint64_t client)
{
    MDB_txn *r;
    assert_int_equal(cp_fsm_read_begin(e->f, &r), 0);
    return (struct bl_ctx){.txn = r, .db = cp_fsm_dbs(e->f), .client_id = client};
}

static void st_commit(struct bl_ctx *c)
{
    assert_int_equal(mdb_txn_commit(c->txn), 0);
}

static uint64_t add_tariff(struct bt_env *e, uint64_t client, const char *ext_id,
                           int64_t price_cents)
{
    struct bl_ctx c = st_begin(e, client);
    uint64_t id;
    assert_int_equal(bl_obj_new_id(&c, BL_TARIFF, &id), 0);
    json_t *t =
        json_pack("{s:s, s:s, s:I, s:I}", "name", "T", "ext_id", ext_id ? ext_id : "",
                  "price_cents", (json_int_t)price_cents, "created_ms", (json_int_t)e->time_ms);
    assert_int_equal(bl_obj_put(&c, BL_TARIFF, id, t), 0);
    json_decref(t);
    if (ext_id != NULL && ext_id[0] != '\0') {
        assert_int_equal(bl_uniq_put(&c, BL_UNIQ_TARIFF_EXT, ext_id, id), 0);
    }
    st_commit(&c);
    return id;
}

static uint64_t add_account(struct bt_env *e, uint64_t client, uint64_t cust, const char *abonement,
                            const char *deactivation_date)
{
    struct bl_ctx c = st_begin(e, client);
    uint64_t id;
    assert_int_equal(bl_obj_new_id(&c, BL_ACCOUNT, &id), 0);
    json_t *a = json_pack("{s:I, s:s, s:i, s:s, s:s}", "customer_id", (json_int_t)cust, "abonement",
                          abonement, "active", 1, "activation_date", "", "deactivation_date",
                          deactivation_date);
    assert_int_equal(bl_obj_put(&c, BL_ACCOUNT, id, a), 0);
    json_decref(a);
    assert_int_equal(bl_uniq_put(&c, BL_UNIQ_ABONEMENT, abonement, id), 0);
    assert_int_equal(bl_rel_put(&c, BL_REL_CUST_ACC, cust, id, NULL), 0);
    st_commit(&c);
    return id;
}

static void set_balance(struct bt_env *e, uint64_t cust, int64_t cents, int64_t count)
{
    struct bl_ctx c = st_begin(e, 1);
    json_t *o;
    assert_int_equal(bl_obj_get(&c, BL_CUSTOMER, cust, &o), 0);
    json_object_set_new(o, "balance_cents", json_integer(cents));
    json_object_set_new(o, "payments_count", json_integer(count));
    assert_int_equal(bl_obj_put(&c, BL_CUSTOMER, cust, o), 0);
    json_decref(o);
    st_commit(&c);
}

static size_t rel_count(struct bt_env *e, const char *name, uint64_t from)
{
    struct bl_ctx c = st_read(e, 1);
    uint64_t *ids;
    size_t n;
    assert_int_equal(bl_rel_list(&c, name, from, &ids, &n), 0);
    free(ids);
    mdb_txn_abort(c.txn);
    return n;
}

/* The stored customer record of client 1, or NULL. */
static json_t *record(struct bt_env *e, uint64_t id)
{
    struct bl_ctx c = st_read(e, 1);
    json_t *o = NULL;
    int rv = bl_obj_get(&c, BL_CUSTOMER, id, &o);
    mdb_txn_abort(c.txn);
    assert_true(rv == 0 || rv == TVMW_ENOTFOUND);
    return rv == 0 ? o : NULL;
}

static uint64_t create(struct bt_env *e, uint64_t client, const char *form)
{
    json_t *r = bt_expect(bt_call(e, client, "customer/create", form), 0);
    uint64_t id = (uint64_t)bt_int(r, "id");
    json_decref(r);
    return id;
}

/* Calls a method expecting `code`; returns nothing. */
static void expect(struct bt_env *e, uint64_t client, const char *method, const char *form,
                   int code)
{
    json_decref(bt_expect(bt_call(e, client, method, form), code));
}

static json_t *info(struct bt_env *e, uint64_t client, const char *form)
{
    return bt_expect(bt_call(e, client, "customer/info", form), 0);
}

/* error_fields[field] is an array holding exactly one string. */
static void assert_field_error(json_t *r, const char *field)
{
    json_t *f = json_object_get(json_object_get(r, "error_fields"), field);
    if (!json_is_array(f) || json_array_size(f) != 1 || !json_is_string(json_array_get(f, 0))) {
        fail_msg("no error for %s in %s", field, json_dumps(r, JSON_COMPACT));
    }
}

static size_t list_size(struct bt_env *e, uint64_t client, const char *form)
{
    json_t *r = bt_expect(bt_call(e, client, "customer/list", form), 0);
    size_t n = json_array_size(json_object_get(r, "customers"));
    json_decref(r);
    return n;
}

static char *form(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *form(const char *fmt, ...)
{
    static char buf[4][2048];
    static int next;
    char *b = buf[next++ % 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof(buf[0]), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf[0]));
    return b;
}

static char *repeat(const char *unit, int n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        memcpy(s + u * (size_t)i, unit, u);
    }
    s[u * (size_t)n] = '\0';
    return s;
}

/* ---- customer/create ---------------------------------------------------- */

static void test_create_minimal_and_info_shape(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    /* Hydra: customer_create(ext_id=U, comment='USER_U') */
    json_t *r = bt_expect(bt_call(e, 1, "customer/create", "ext_id=77&comment=USER_77"), 0);
    assert_int_equal(json_object_size(r), 4); /* id, error, error_message, error_fields */
    int64_t id = bt_int(r, "id");
    assert_true(id > 0);
    assert_string_equal(bt_str(r, "error_message"), "");
    assert_true(json_is_object(json_object_get(r, "error_fields")));
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    json_decref(r);

    r = info(e, 1, form("customer_id=%" PRId64, id));
    assert_int_equal(bt_int(r, "id"), id);
    assert_string_equal(bt_str(r, "ext_id"), "77");
    assert_true(json_is_array(json_object_get(r, "accounts")));
    assert_int_equal(json_array_size(json_object_get(r, "accounts")), 0);
    assert_int_equal(json_array_size(json_object_get(r, "subscriptions")), 0);
    assert_int_equal(bt_int(r, "balance"), 0);
    assert_int_equal(bt_int(r, "payments_count"), 0);
    assert_int_equal(json_array_size(json_object_get(r, "tariffs_info")), 0);
    assert_true(json_is_array(json_object_get(r, "vtariffs_info")));
    assert_true(json_is_array(json_object_get(r, "tariffs")));
    assert_string_equal(bt_str(r, "error_message"), "");
    assert_null(json_object_get(r, "error_fields")); /* info has none (spec 4.3) */
    json_decref(r);

    /* the stored record: every field present, "" when unset */
    json_t *o = record(e, (uint64_t)id);
    assert_non_null(o);
    assert_string_equal(bt_str(o, "comment"), "USER_77");
    assert_string_equal(bt_str(o, "firstname"), "");
    assert_string_equal(bt_str(o, "birthdate"), "");
    assert_string_equal(bt_str(o, "meta"), "");
    assert_true(json_is_null(json_object_get(o, "dealer_id")));
    assert_int_equal(bt_int(o, "send_sms_messages"), 0);
    assert_int_equal(bt_int(o, "balance_cents"), 0);
    assert_int_equal(bt_int(o, "payments_count"), 0);
    assert_int_equal(bt_int(o, "created_ms"), (int64_t)e->time_ms);
    assert_int_equal(bt_int(o, "client_id"), 1);
    json_decref(o);
    bt_free(e);
}

static void test_create_all_fields(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(
        e, 1,
        "firstname=Bill&middlename=M&lastname=Smith&birthdate=1980-02-29"
        "&passport_number=123456&passport_series=AB12&passport_issue_date=2000-01-02 10:11:12"
        "&passport_issued_by=Police&postal_address_street=Main&postal_address_bld=1"
        "&postal_address_apt=2&postal_address_zip=12345&postal_address_city=Riga"
        "&postal_address_country=LV&billing_address_street=Bill St&billing_address_bld=3"
        "&billing_address_apt=4&billing_address_zip=54321&mobile_phone_number=+37120000000"
        "&phone_number_1=111&phone_number_2=222&fax_phone_number=333&email=bill@example.com"
        "&company_name=ACME&comment=c&ext_id=EXT-9&send_sms=1&bank_account_blz=123456789"
        "&bank_account_bic=DEUTDEFF500&bank_account_number=0001&bank_account_iban=DE89"
        "&bank_account_bank_name=Bank&bank_account_owner_name=Owner&contract_number=K-1"
        "&dealer_id=5&meta={\"k\": 1}&send_sms_messages=True&send_email_messages=off"
        "&auto_activation_period=30&unknown_param=x");
    json_t *o = record(e, id);
    static const char *const same[][2] = {
        {"firstname", "Bill"},
        {"middlename", "M"},
        {"lastname", "Smith"},
        {"birthdate", "1980-02-29"},
        {"passport_number", "123456"},
        {"passport_series", "AB12"},
        {"passport_issue_date", "2000-01-02"}, /* time dropped (spec 5.6) */
        {"passport_issued_by", "Police"},
        {"postal_address_street", "Main"},
        {"postal_address_city", "Riga"},
        {"postal_address_country", "LV"},
        {"billing_address_street", "Bill St"},
        {"billing_address_zip", "54321"},
        {"mobile_phone_number", "+37120000000"},
        {"phone_number_1", "111"},
        {"phone_number_2", "222"},
        {"fax_phone_number", "333"},
        {"email", "bill@example.com"},
        {"company_name", "ACME"},
        {"comment", "c"},
        {"ext_id", "EXT-9"},
        {"bank_account_blz", "123456789"},
        {"bank_account_bic", "DEUTDEFF500"},
        {"bank_account_iban", "DE89"},
        {"bank_account_owner_name", "Owner"},
        {"contract_number", "K-1"},
        {"meta", "{\"k\": 1}"},
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        assert_string_equal(bt_str(o, same[i][0]), same[i][1]);
    }
    assert_int_equal(bt_int(o, "dealer_id"), 5);
    assert_int_equal(bt_int(o, "send_sms_messages"), 1);
    assert_int_equal(bt_int(o, "send_email_messages"), 0);
    /* accepted and ignored */
    assert_null(json_object_get(o, "send_sms"));
    assert_null(json_object_get(o, "auto_activation_period"));
    assert_null(json_object_get(o, "unknown_param"));
    json_decref(o);
    bt_free(e);
}

static void test_create_name_requirement(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_t *r = bt_expect(bt_call(e, 1, "customer/create", "email=a@b.cd"), 3);
    assert_field_error(r, "__all__");
    assert_null(json_object_get(r, "id"));
    assert_true(strlen(bt_str(r, "error_message")) > 0);
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "customer/create", "firstname=&comment="), 3);
    assert_field_error(r, "__all__");
    json_decref(r);
    /* each name part alone is enough; company_name too (PHP client) */
    create(e, 1, "firstname=A");
    create(e, 1, "middlename=A");
    create(e, 1, "lastname=A");
    create(e, 1, "comment=A");
    create(e, 1, "company_name=A");
    assert_int_equal(list_size(e, 1, ""), 5);
    bt_free(e);
}

static void test_create_validation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    static const char *const bad[][2] = {
        {"email", "no-at-sign"},      {"email", "a@b"},
        {"email", "@b.cd"},           {"email", "a@@b.cd"},
        {"email", "a b@c.de"},        {"birthdate", "1980-13-01"},
        {"birthdate", "01.02.1980"},  {"passport_issue_date", "2023-02-29"},
        {"meta", "{not json"},        {"meta", "[1, 2]"},
        {"dealer_id", "abc"},         {"send_sms_messages", "maybe"},
        {"send_email_messages", "2"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *r = bt_expect(
            bt_call(e, 1, "customer/create", form("firstname=A&%s=%s", bad[i][0], bad[i][1])), 3);
        assert_field_error(r, bad[i][0]);
        assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 1);
        assert_null(json_object_get(r, "id"));
        json_decref(r);
    }
    json_t *r = bt_expect(bt_call(e, 1, "customer/create", "firstname=A&email=x"), 3);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(r, "error_fields"), "email"), 0)),
                        "Enter a valid email address.");
    json_decref(r);
    /* every failing field is reported, not only the first */
    r = bt_expect(bt_call(e, 1, "customer/create", "email=x&birthdate=y&meta=z"), 3);
    assert_field_error(r, "email");
    assert_field_error(r, "birthdate");
    assert_field_error(r, "meta");
    assert_field_error(r, "__all__");
    json_decref(r);
    /* empty optional values are fine */
    create(e, 1, "firstname=A&email=&birthdate=&meta=&dealer_id=&send_sms_messages=");
    assert_int_equal(list_size(e, 1, ""), 1); /* nothing of the failures was stored */
    bt_free(e);
}

static void test_create_lengths_in_characters(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    /* 4 Cyrillic letters = 8 bytes: fits passport_series (<= 4 chars) */
    uint64_t id = create(e, 1, "firstname=A&passport_series=АБВГ");
    json_t *o = record(e, id);
    assert_string_equal(bt_str(o, "passport_series"), "АБВГ");
    json_decref(o);
    json_t *r = bt_expect(bt_call(e, 1, "customer/create", "firstname=A&passport_series=АБВГД"), 3);
    assert_field_error(r, "passport_series");
    json_decref(r);

    char *ok = repeat("Я", 256), *over = repeat("a", 257), *ext = repeat("x", 65);
    create(e, 1, form("firstname=%s", ok));
    r = bt_expect(bt_call(e, 1, "customer/create", form("firstname=%s", over)), 3);
    assert_field_error(r, "firstname");
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "customer/create", form("comment=c&ext_id=%s", ext)), 3);
    assert_field_error(r, "ext_id");
    json_decref(r);
    create(e, 1, form("comment=c&ext_id=%.64s", ext));
    r = bt_expect(
        bt_call(e, 1, "customer/create", "comment=c&mobile_phone_number=1234567890123456789012345"),
        3);
    assert_field_error(r, "mobile_phone_number");
    json_decref(r);
    free(ok);
    free(over);
    free(ext);
    bt_free(e);
}

static void test_create_aliases(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id =
        create(e, 1, "firstname=A&phone_number1=111&phone_number2=222&bank_account_biz=BLZ");
    json_t *o = record(e, id);
    assert_string_equal(bt_str(o, "phone_number_1"), "111");
    assert_string_equal(bt_str(o, "phone_number_2"), "222");
    assert_string_equal(bt_str(o, "bank_account_blz"), "BLZ");
    assert_null(json_object_get(o, "phone_number1"));
    assert_null(json_object_get(o, "bank_account_biz"));
    json_decref(o);
    /* the documented name wins over the alias */
    id = create(e, 1, "firstname=A&phone_number_1=1&phone_number1=2");
    o = record(e, id);
    assert_string_equal(bt_str(o, "phone_number_1"), "1");
    json_decref(o);
    /* errors are reported under the name the caller used */
    json_t *r =
        bt_expect(bt_call(e, 1, "customer/create", "firstname=A&bank_account_biz=1234567890"), 3);
    assert_field_error(r, "bank_account_biz");
    json_decref(r);
    bt_free(e);
}

static void test_create_ext_id_unique(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "comment=a&ext_id=EXT-1");
    json_t *r = bt_expect(bt_call(e, 1, "customer/create", "comment=b&ext_id=EXT-1"), 1);
    assert_null(json_object_get(r, "id"));
    assert_true(json_is_object(json_object_get(r, "error_fields")));
    json_decref(r);
    assert_int_equal(list_size(e, 1, ""), 1);
    r = info(e, 1, "ext_id=EXT-1");
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    json_decref(r);
    /* per operator: client 2 may use the same ext_id */
    uint64_t id2 = create(e, 2, "comment=b&ext_id=EXT-1");
    assert_int_not_equal(id2, id);
    /* empty and "-1" ext_ids are "unset" and never collide */
    uint64_t a = create(e, 1, "comment=a&ext_id=");
    uint64_t b = create(e, 1, "comment=b&ext_id=-1");
    uint64_t d = create(e, 1, "comment=d");
    json_t *o = record(e, b);
    assert_string_equal(bt_str(o, "ext_id"), "");
    json_decref(o);
    assert_true(a != b && b != d && a != d);
    bt_free(e);
}

/* ---- customer/modify ---------------------------------------------------- */

static void test_modify(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "firstname=Bill&lastname=Smith&comment=c&phone_number_1=1");
    /* Python client: customer_modify(customer_id=42, lastname='Jones', email='a@b.c') */
    json_t *r = bt_expect(bt_call(e, 1, "customer/modify",
                                  form("customer_id=%" PRIu64 "&lastname=Jones&email=a@b.cd", id)),
                          0);
    assert_int_equal(json_object_size(r), 3); /* error, error_message, error_fields */
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    json_decref(r);
    json_t *o = record(e, id);
    assert_string_equal(bt_str(o, "lastname"), "Jones");
    assert_string_equal(bt_str(o, "email"), "a@b.cd");
    assert_string_equal(bt_str(o, "firstname"), "Bill"); /* not sent: unchanged */
    assert_int_equal(bt_int(o, "created_ms"), (int64_t)e->time_ms);
    json_decref(o);
    /* a present empty value clears; aliases work; flags and dealer_id too */
    expect(e, 1, "customer/modify",
           form("customer_id=%" PRIu64 "&comment=&phone_number1=9&send_sms_messages=1&dealer_id=7"
                "&contract_number=K&send_sms=1",
                id),
           0);
    o = record(e, id);
    assert_string_equal(bt_str(o, "comment"), "");
    assert_string_equal(bt_str(o, "phone_number_1"), "9");
    assert_int_equal(bt_int(o, "send_sms_messages"), 1);
    assert_int_equal(bt_int(o, "dealer_id"), 7);
    assert_string_equal(bt_str(o, "contract_number"), "K");
    assert_null(json_object_get(o, "send_sms"));
    json_decref(o);
    bt_free(e);
}

static void test_modify_validation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "firstname=Bill&email=old@x.org");
    json_t *r = bt_expect(
        bt_call(e, 1, "customer/modify",
                form("customer_id=%" PRIu64 "&firstname=New&email=bad&birthdate=2024-02-30", id)),
        2);
    assert_field_error(r, "email");
    assert_field_error(r, "birthdate");
    json_decref(r);
    json_t *o = record(e, id);
    assert_string_equal(bt_str(o, "firstname"), "Bill"); /* nothing written */
    assert_string_equal(bt_str(o, "email"), "old@x.org");
    json_decref(o);
    char *over = repeat("ж", 513);
    r = bt_expect(
        bt_call(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&comment=%s", id, over)), 2);
    assert_field_error(r, "comment");
    json_decref(r);
    free(over);
    bt_free(e);
}

static void test_modify_selectors_and_ext_id(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t a = create(e, 1, "comment=a&ext_id=A");
    uint64_t b = create(e, 1, "comment=b&ext_id=B");
    /* Hydra: customer_modify(ext_id=U, firstname=NAME), with and without -1 */
    expect(e, 1, "customer/modify", "ext_id=A&firstname=Ann", 0);
    expect(e, 1, "customer/modify", "customer_id=-1&ext_id=A&lastname=Lee", 0);
    json_t *o = record(e, a);
    assert_string_equal(bt_str(o, "firstname"), "Ann");
    assert_string_equal(bt_str(o, "lastname"), "Lee");
    assert_string_equal(bt_str(o, "ext_id"), "A");
    json_decref(o);

    /* customer_id selects, ext_id is the new value; the index follows */
    expect(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=A2", a), 0);
    expect(e, 1, "customer/info", "ext_id=A", 1);
    json_t *r = info(e, 1, "customer_id=-1&ext_id=A2");
    assert_int_equal(bt_int(r, "id"), (int64_t)a);
    assert_string_equal(bt_str(r, "ext_id"), "A2");
    json_decref(r);
    /* the old ext_id is free again */
    create(e, 1, "comment=x&ext_id=A");

    /* a new ext_id already used by another customer: 2 + error_fields.ext_id */
    r = bt_expect(
        bt_call(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=B&firstname=Z", a)),
        2);
    assert_field_error(r, "ext_id");
    json_decref(r);
    o = record(e, a);
    assert_string_equal(bt_str(o, "ext_id"), "A2");
    assert_string_equal(bt_str(o, "firstname"), "Ann");
    json_decref(o);
    r = info(e, 1, "ext_id=B");
    assert_int_equal(bt_int(r, "id"), (int64_t)b);
    json_decref(r);
    /* re-sending its own ext_id is fine; "-1" or empty leave it alone */
    expect(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=B", b), 0);
    expect(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=-1&firstname=F", b), 0);
    expect(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=", b), 0);
    o = record(e, b);
    assert_string_equal(bt_str(o, "ext_id"), "B");
    assert_string_equal(bt_str(o, "firstname"), "F");
    json_decref(o);
    /* a customer without ext_id gets one */
    uint64_t c = create(e, 1, "comment=c");
    expect(e, 1, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=C", c), 0);
    r = info(e, 1, "ext_id=C");
    assert_int_equal(bt_int(r, "id"), (int64_t)c);
    json_decref(r);

    /* not found: unknown id, unknown ext_id, non-integer id, nothing */
    expect(e, 1, "customer/modify", "customer_id=999&firstname=X", 1);
    expect(e, 1, "customer/modify", "ext_id=nope&firstname=X", 1);
    expect(e, 1, "customer/modify", "customer_id=abc&ext_id=B&firstname=X", 1);
    expect(e, 1, "customer/modify", "customer_id=-1&ext_id=-1&firstname=X", 1);
    expect(e, 1, "customer/modify", "firstname=X", 1);
    r = bt_expect(bt_call(e, 1, "customer/modify", "customer_id=999&email=bad"), 1);
    json_decref(r);
    bt_free(e);
}

/* ---- customer/info ------------------------------------------------------ */

static void date_in_days(int days, char out[11])
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void test_info_full(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "comment=c&ext_id=EXT-9");
    char future[11], past[11];
    date_in_days(30, future);
    date_in_days(-3, past);
    uint64_t a1 = add_account(e, 1, id, "1000123", future);
    uint64_t a2 = add_account(e, 1, id, "1000124", past);
    uint64_t a3 = add_account(e, 1, id, "1000125", "");
    uint64_t t1 = add_tariff(e, 1, "T-3", 15050);
    uint64_t t2 = add_tariff(e, 1, NULL, 1000);
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t1), 0);
    e->time_ms += 40 * MS_PER_DAY_TEST;
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t2), 0);
    set_balance(e, id, 15050, 2);

    json_t *r = info(e, 1, form("customer_id=%" PRIu64, id));
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    assert_string_equal(bt_str(r, "ext_id"), "EXT-9");
    json_t *accs = json_object_get(r, "accounts");
    assert_int_equal(json_array_size(accs), 3);
    json_t *x = json_array_get(accs, 0);
    assert_int_equal(json_object_size(x), 4);
    assert_int_equal(bt_int(x, "id"), (int64_t)a1);
    assert_string_equal(bt_str(x, "abonement"), "1000123");
    int64_t left = bt_int(x, "activation_days_left");
    assert_true(left == 30 || left == 29); /* the read uses the real clock */
    assert_int_equal(bt_int(x, "on_trial_period"), 0);
    x = json_array_get(accs, 1);
    assert_int_equal(bt_int(x, "id"), (int64_t)a2);
    assert_int_equal(bt_int(x, "activation_days_left"), 0);
    x = json_array_get(accs, 2);
    assert_int_equal(bt_int(x, "id"), (int64_t)a3);
    assert_int_equal(bt_int(x, "activation_days_left"), 0);

    json_t *subs = json_object_get(r, "subscriptions");
    assert_int_equal(json_array_size(subs), 2);
    x = json_array_get(subs, 0);
    assert_int_equal(json_object_size(x), 9);
    assert_int_equal(bt_int(x, "tariff_id"), (int64_t)t1);
    assert_true(json_is_null(json_object_get(x, "api_config_id")));
    assert_true(json_is_real(json_object_get(x, "price")));
    assert_true(json_real_value(json_object_get(x, "price")) == 150.5);
    assert_string_equal(bt_str(x, "start_date"), "2026-01-15");
    assert_true(json_is_null(json_object_get(x, "end_date")));
    assert_int_equal(bt_int(x, "is_periodical"), 1);
    assert_true(json_is_null(json_object_get(x, "price_expiration")));
    assert_int_equal(bt_int(x, "is_price_overridden"), 0);
    assert_int_equal(bt_int(x, "is_closed"), 0);
    x = json_array_get(subs, 1);
    assert_int_equal(bt_int(x, "price"), 10); /* whole amounts are integers */
    assert_string_equal(bt_str(x, "start_date"), "2026-02-24");

    assert_true(json_is_real(json_object_get(r, "balance")));
    assert_true(json_real_value(json_object_get(r, "balance")) == 150.5);
    assert_int_equal(bt_int(r, "payments_count"), 2);
    json_t *ti = json_object_get(r, "tariffs_info");
    assert_int_equal(json_array_size(ti), 2);
    assert_int_equal(json_object_size(json_array_get(ti, 0)), 2);
    assert_int_equal(bt_int(json_array_get(ti, 0), "id"), (int64_t)t1);
    assert_string_equal(bt_str(json_array_get(ti, 0), "ext_id"), "T-3");
    assert_string_equal(bt_str(json_array_get(ti, 1), "ext_id"), "");
    assert_int_equal(json_array_size(json_object_get(r, "vtariffs_info")), 0);
    json_t *ts = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(ts), 2);
    assert_int_equal(json_integer_value(json_array_get(ts, 0)), (json_int_t)t1);
    assert_int_equal(json_integer_value(json_array_get(ts, 1)), (json_int_t)t2);
    assert_int_equal(bt_int(r, "error"), 0);
    json_decref(r);

    set_balance(e, id, -700, 3);
    r = info(e, 1, "ext_id=EXT-9");
    assert_int_equal(bt_int(r, "balance"), -7);
    json_decref(r);
    bt_free(e);
}

static void test_info_selectors(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "comment=c&ext_id=77");
    uint64_t other = create(e, 1, "comment=o&ext_id=88");
    /* Hydra's customer_info(ext_id='77') */
    json_t *r = info(e, 1, "customer_id=-1&ext_id=77");
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    json_decref(r);
    r = info(e, 1, "customer_id=&ext_id=77");
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    json_decref(r);
    /* customer_id wins; ext_id is then ignored */
    r = info(e, 1, form("customer_id=%" PRIu64 "&ext_id=77", other));
    assert_int_equal(bt_int(r, "id"), (int64_t)other);
    json_decref(r);
    r = info(e, 1, form("customer_id=%" PRIu64 "&ext_id=-1", id));
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    json_decref(r);

    r = bt_expect(bt_call(e, 1, "customer/info", "customer_id=999"), 1);
    assert_int_equal(json_object_size(r), 2); /* no method fields on failure */
    assert_true(strlen(bt_str(r, "error_message")) > 0);
    json_decref(r);
    expect(e, 1, "customer/info", "customer_id=abc&ext_id=77", 1);
    expect(e, 1, "customer/info", "customer_id=-1&ext_id=-1", 1);
    expect(e, 1, "customer/info", "ext_id=", 1);
    expect(e, 1, "customer/info", "ext_id=nope", 1);
    expect(e, 1, "customer/info", "", 1);
    bt_free(e);
}

/* ---- customer/list ----------------------------------------------------- */

static void test_list(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t c1 = create(e, 1, "firstname=A&middlename=B&lastname=C&mobile_phone_number=+1555");
    uint64_t c2 = create(e, 1, "firstname=D&mobile_phone_number=+1666&ext_id=X2");
    uint64_t c3 = create(e, 1, "firstname=E");
    create(e, 2, "firstname=Other&mobile_phone_number=+1555");
    uint64_t t1 = add_tariff(e, 1, NULL, 100), t2 = add_tariff(e, 1, NULL, 200),
             t3 = add_tariff(e, 1, NULL, 300);
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, c1, t1), 0);
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, c2, t2), 0);
    add_account(e, 1, c2, "1000123", "");
    add_account(e, 1, c3, "2000777", "");

    json_t *r = bt_expect(bt_call(e, 1, "customer/list", ""), 0);
    assert_int_equal(json_object_size(r), 3); /* customers, error, error_message */
    json_t *cs = json_object_get(r, "customers");
    assert_int_equal(json_array_size(cs), 3);
    json_t *x = json_array_get(cs, 0);
    assert_int_equal(bt_int(x, "id"), (int64_t)c1);
    assert_string_equal(bt_str(x, "ext_id"), "");
    assert_string_equal(bt_str(x, "firstname"), "A");
    assert_string_equal(bt_str(x, "middlename"), "B");
    assert_string_equal(bt_str(x, "lastname"), "C");
    assert_string_equal(bt_str(x, "mobile_phone_number"), "+1555");
    assert_int_equal(bt_int(x, "balance"), 0);
    assert_int_equal(bt_int(x, "payments_count"), 0);
    assert_int_equal(json_array_size(json_object_get(x, "subscriptions")), 1);
    assert_int_equal(json_array_size(json_object_get(x, "tariffs_info")), 1);
    assert_true(json_is_array(json_object_get(x, "vtariffs_info")));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(x, "tariffs"), 0)),
                     (json_int_t)t1);
    assert_null(json_object_get(x, "error"));
    x = json_array_get(cs, 1);
    assert_string_equal(bt_str(x, "ext_id"), "X2");
    assert_string_equal(bt_str(x, "middlename"), "");
    assert_string_equal(bt_str(json_array_get(json_object_get(x, "accounts"), 0), "abonement"),
                        "1000123");
    json_decref(r);

    /* tariff_id in every client format (spec 3.1) */
    assert_int_equal(list_size(e, 1, form("tariff_id=%" PRIu64, t1)), 1);
    assert_int_equal(
        list_size(e, 1, form("tariff_id=[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "]", t1, t2, t3)), 2);
    assert_int_equal(list_size(e, 1, form("tariff_id=%" PRIu64 ",%" PRIu64, t2, t3)), 1);
    assert_int_equal(list_size(e, 1, form("tariff_id=%" PRIu64, t3)), 0);
    assert_int_equal(list_size(e, 1, "tariff_id=999"), 0);
    assert_int_equal(list_size(e, 1, "tariff_id="), 3);
    expect(e, 1, "customer/list", "tariff_id=x", BL_EARGUMENT);
    expect(e, 1, "customer/list", "tariff_id=[1, x]", BL_EARGUMENT);

    /* mobile_phone_number: exact */
    r = bt_expect(bt_call(e, 1, "customer/list", "mobile_phone_number=+1555"), 0);
    cs = json_object_get(r, "customers");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(bt_int(json_array_get(cs, 0), "id"), (int64_t)c1);
    json_decref(r);
    assert_int_equal(list_size(e, 1, "mobile_phone_number=+155"), 0);

    /* abonement_regexp: search in any account's abonement, POSIX ERE */
    r = bt_expect(bt_call(e, 1, "customer/list", "abonement_regexp=^1000"), 0);
    cs = json_object_get(r, "customers");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(bt_int(json_array_get(cs, 0), "id"), (int64_t)c2);
    json_decref(r);
    assert_int_equal(list_size(e, 1, "abonement_regexp=77"), 1);
    assert_int_equal(list_size(e, 1, "abonement_regexp=^[12]0+[0-9]{3}$"), 2);
    assert_int_equal(list_size(e, 1, "abonement_regexp=^9"), 0);
    expect(e, 1, "customer/list", "abonement_regexp=(", BL_EARGUMENT);
    expect(e, 1, "customer/list", "abonement_regexp=[a-", BL_EARGUMENT);
    /* filters combine */
    assert_int_equal(list_size(e, 1, form("tariff_id=%" PRIu64 "&abonement_regexp=^1", t2)), 1);
    assert_int_equal(list_size(e, 1, form("tariff_id=%" PRIu64 "&abonement_regexp=^2", t2)), 0);
    bt_free(e);
}

static void test_list_paging(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = create(e, 1, form("firstname=N%d", i));
    }
    assert_int_equal(list_size(e, 1, "limit=2"), 2);
    assert_int_equal(list_size(e, 1, "limit=2&page=3"), 1);
    assert_int_equal(list_size(e, 1, "limit=2&page=4"), 0);
    assert_int_equal(list_size(e, 1, "limit=0"), 5);
    assert_int_equal(list_size(e, 1, "limit=&page="), 5);
    assert_int_equal(list_size(e, 1, "limit=10&page=1"), 5);
    assert_int_equal(list_size(e, 1, "limit=1&page=999999999999999999"), 0);
    json_t *r = bt_expect(bt_call(e, 1, "customer/list", "limit=2&page=2"), 0);
    json_t *cs = json_object_get(r, "customers");
    assert_int_equal(bt_int(json_array_get(cs, 0), "id"), (int64_t)ids[2]);
    assert_int_equal(bt_int(json_array_get(cs, 1), "id"), (int64_t)ids[3]);
    json_decref(r);
    expect(e, 1, "customer/list", "limit=x", BL_EARGUMENT);
    expect(e, 1, "customer/list", "limit=-5", BL_EARGUMENT);
    expect(e, 1, "customer/list", "limit=2&page=0", BL_EARGUMENT);
    bt_free(e);
}

/* ---- customer/tariff/assign, remove ---------------------------------------- */

static void test_tariff_assign_remove(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "comment=c&ext_id=U1");
    uint64_t t = add_tariff(e, 1, "PROMO", 500);
    uint64_t t2 = add_tariff(e, 1, NULL, 500);

    /* Python client's call; the reply carries only error fields */
    json_t *r = bt_expect(bt_call(e, 1, "customer/tariff/assign",
                                  form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t)),
                          0);
    assert_int_equal(json_object_size(r), 2);
    json_decref(r);
    assert_int_equal(rel_count(e, BL_REL_CUST_TAR, id), 1);
    assert_int_equal(rel_count(e, BL_REL_TAR_CUST, t), 1);

    /* idempotent: re-assign keeps the first assignment date */
    e->time_ms += 10 * MS_PER_DAY_TEST;
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=-1&ext_id=U1&tariff_id=%" PRIu64 "&subscribe_svod=1", t), 0);
    expect(e, 1, "customer/tariff/assign", "customer_id=-1&ext_id=U1&tariff_ext_id=PROMO", 0);
    r = info(e, 1, "ext_id=U1");
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 1);
    assert_string_equal(
        bt_str(json_array_get(json_object_get(r, "subscriptions"), 0), "start_date"), "2026-01-15");
    json_decref(r);

    /* errors: customer first (1), then tariff (2) */
    expect(e, 1, "customer/tariff/assign", "customer_id=999&tariff_id=999", 1);
    expect(e, 1, "customer/tariff/assign", "customer_id=-1&ext_id=nope&tariff_id=1", 1);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1&tariff_id=999", 2);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1&tariff_id=abc", 2);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1&tariff_ext_id=NOPE", 2);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1&vtariff_id=1", 2);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1", 2);
    expect(e, 1, "customer/tariff/assign", "ext_id=U1&tariff_id=-1", 2);
    assert_int_equal(rel_count(e, BL_REL_CUST_TAR, id), 1);

    expect(e, 1, "customer/tariff/assign", form("ext_id=U1&tariff_id=%" PRIu64, t2), 0);
    assert_int_equal(rel_count(e, BL_REL_CUST_TAR, id), 2);

    /* remove, then remove again: no-op success */
    r = bt_expect(bt_call(e, 1, "customer/tariff/remove",
                          form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t)),
                  0);
    assert_int_equal(json_object_size(r), 2);
    json_decref(r);
    assert_int_equal(rel_count(e, BL_REL_CUST_TAR, id), 1);
    assert_int_equal(rel_count(e, BL_REL_TAR_CUST, t), 0);
    expect(e, 1, "customer/tariff/remove", "customer_id=-1&ext_id=U1&tariff_ext_id=PROMO", 0);
    expect(e, 1, "customer/tariff/remove", "customer_id=999&tariff_id=1", 1);
    expect(e, 1, "customer/tariff/remove", "ext_id=U1&tariff_id=999", 2);
    expect(e, 1, "customer/tariff/remove", "ext_id=U1", 2);
    r = info(e, 1, "ext_id=U1");
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(r, "tariffs"), 0)),
                     (json_int_t)t2);
    json_decref(r);

    /* re-assign after remove gets the new date */
    expect(e, 1, "customer/tariff/assign", form("ext_id=U1&tariff_id=%" PRIu64, t), 0);
    r = info(e, 1, "ext_id=U1");
    assert_string_equal(
        bt_str(json_array_get(json_object_get(r, "subscriptions"), 0), "start_date"), "2026-01-25");
    json_decref(r);
    /* no balance change from assignments */
    json_t *o = record(e, id);
    assert_int_equal(bt_int(o, "balance_cents"), 0);
    json_decref(o);
    bt_free(e);
}

/* ---- customer/delete ------------------------------------------------------ */

static void test_delete(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "comment=c&ext_id=DEL");
    uint64_t keep = create(e, 1, "comment=k&ext_id=KEEP");
    uint64_t t = add_tariff(e, 1, NULL, 100);
    add_account(e, 1, id, "1000123", "");
    add_account(e, 1, id, "1000124", "");
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t), 0);
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, keep, t), 0);
    /* a transaction link, kept for audit */
    struct bl_ctx c = st_begin(e, 1);
    assert_int_equal(bl_rel_put(&c, BL_REL_CUST_TX, id, 42, NULL), 0);
    st_commit(&c);

    json_t *r = bt_expect(bt_call(e, 1, "customer/delete", "ext_id=DEL"), 0);
    assert_int_equal(json_object_size(r), 2); /* no error_fields on delete */
    json_decref(r);
    expect(e, 1, "customer/info", form("customer_id=%" PRIu64, id), 1);
    expect(e, 1, "customer/info", "ext_id=DEL", 1);
    assert_null(record(e, id));
    assert_int_equal(rel_count(e, BL_REL_CUST_ACC, id), 0);
    assert_int_equal(rel_count(e, BL_REL_CUST_TAR, id), 0);
    assert_int_equal(rel_count(e, BL_REL_TAR_CUST, t), 1); /* only `keep` left */
    assert_int_equal(rel_count(e, BL_REL_CUST_TX, id), 1);
    assert_int_equal(list_size(e, 1, ""), 1);
    r = info(e, 1, "ext_id=KEEP");
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 1);
    json_decref(r);

    /* again: not found; the ext_id is free */
    expect(e, 1, "customer/delete", "ext_id=DEL", 1);
    expect(e, 1, "customer/delete", form("customer_id=%" PRIu64, id), 1);
    expect(e, 1, "customer/delete", "customer_id=-1&ext_id=-1", 1);
    expect(e, 1, "customer/delete", "customer_id=x", 1);
    uint64_t again = create(e, 1, "comment=again&ext_id=DEL");
    assert_int_not_equal(again, id);
    expect(e, 1, "customer/delete", form("customer_id=%" PRIu64, again), 0);
    bt_free(e);
}

/* ---- tenant isolation ------------------------------------------------------ */

static void test_tenant_isolation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create(e, 1, "firstname=Mine&ext_id=SECRET");
    uint64_t t = add_tariff(e, 1, "T1", 100);
    expect(e, 1, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, id, t), 0);
    uint64_t own = create(e, 2, "firstname=Theirs&ext_id=OWN");
    uint64_t own_t = add_tariff(e, 2, "T2", 100);

    const char *by_id = form("customer_id=%" PRIu64, id);
    const char *sel[] = {by_id, "ext_id=SECRET", "customer_id=-1&ext_id=SECRET"};
    for (size_t i = 0; i < 3; i++) {
        expect(e, 2, "customer/info", sel[i], 1);
        expect(e, 2, "customer/modify", form("%s&firstname=Hacked", sel[i]), 1);
        expect(e, 2, "customer/tariff/assign", form("%s&tariff_id=%" PRIu64, sel[i], own_t), 1);
        expect(e, 2, "customer/tariff/remove", form("%s&tariff_id=%" PRIu64, sel[i], t), 1);
        expect(e, 2, "customer/delete", sel[i], 1);
    }
    /* client 1's tariff does not exist for client 2's own customer */
    expect(e, 2, "customer/tariff/assign",
           form("customer_id=%" PRIu64 "&tariff_id=%" PRIu64, own, t), 2);
    expect(e, 2, "customer/tariff/assign", form("customer_id=%" PRIu64 "&tariff_ext_id=T1", own),
           2);
    /* client 2 cannot steal the ext_id index entry either */
    expect(e, 2, "customer/modify", form("customer_id=%" PRIu64 "&ext_id=SECRET", own), 0);
    json_t *r = bt_expect(bt_call(e, 2, "customer/list", ""), 0);
    json_t *cs = json_object_get(r, "customers");
    assert_int_equal(json_array_size(cs), 1);
    assert_int_equal(bt_int(json_array_get(cs, 0), "id"), (int64_t)own);
    json_decref(r);
    assert_int_equal(list_size(e, 2, form("tariff_id=%" PRIu64, t)), 0);

    /* client 1's customer is untouched */
    r = info(e, 1, "ext_id=SECRET");
    assert_int_equal(bt_int(r, "id"), (int64_t)id);
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 1);
    json_decref(r);
    json_t *o = record(e, id);
    assert_string_equal(bt_str(o, "firstname"), "Mine");
    json_decref(o);
    r = info(e, 2, "ext_id=SECRET");
    assert_int_equal(bt_int(r, "id"), (int64_t)own);
    json_decref(r);
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_minimal_and_info_shape),
        cmocka_unit_test(test_create_all_fields),
        cmocka_unit_test(test_create_name_requirement),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_create_lengths_in_characters),
        cmocka_unit_test(test_create_aliases),
        cmocka_unit_test(test_create_ext_id_unique),
        cmocka_unit_test(test_modify),
        cmocka_unit_test(test_modify_validation),
        cmocka_unit_test(test_modify_selectors_and_ext_id),
        cmocka_unit_test(test_info_full),
        cmocka_unit_test(test_info_selectors),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_tariff_assign_remove),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_tenant_isolation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
