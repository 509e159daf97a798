/* Billing API tariff methods (spec 3.4): the tariff object byte for byte,
 * create/modify validation and error codes, the ext_id index, delete with
 * every link, the basic/additional split, and tenant isolation. */
#include "tests/unit/billing_testlib.h"

#include "common/err.h"
#include "controlplane/catalog.h"

#define FULL_TARIFF                                                                                \
    "name=Basic&period=1&price=150.5&default_activation_price=10&sessions_count=-1&"               \
    "basic_sessions_count=2&basic_tariff_priority=5&ip_restriction=1&ext_id=T-1"

/* ---- direct state access (links other groups or the catalogue create) --- */

static void ctx_begin(struct bt_env *e, uint64_t client, bool write, struct bl_ctx *c)
{
    MDB_txn *txn;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    if (write) {
        MDB_env *env = mdb_txn_env(txn);
        mdb_txn_abort(txn);
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    }
    *c = (struct bl_ctx){.txn = txn,
                         .db = cp_fsm_dbs(e->f),
                         .client_id = client,
                         .time_ms = e->time_ms,
                         .write = write};
}

static void ctx_end(struct bl_ctx *c)
{
    if (c->write) {
        assert_int_equal(mdb_txn_commit(c->txn), 0);
    } else {
        mdb_txn_abort(c->txn);
    }
}

static size_t rel_count(struct bt_env *e, uint64_t client, const char *rel, uint64_t from)
{
    struct bl_ctx c;
    uint64_t *ids;
    size_t n;
    ctx_begin(e, client, false, &c);
    assert_int_equal(bl_rel_list(&c, rel, from, &ids, &n), 0);
    free(ids);
    ctx_end(&c);
    return n;
}

static json_t *tariff_record(struct bt_env *e, uint64_t client, uint64_t id)
{
    struct bl_ctx c;
    json_t *rec = NULL;
    ctx_begin(e, client, false, &c);
    int rv = bl_obj_get(&c, BL_TARIFF, id, &rec);
    ctx_end(&c);
    return rv == 0 ? rec : NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t create_tariff(struct bt_env *e, uint64_t client, const char *form)
{
    json_t *r = bt_expect(bt_call(e, client, "tariff/create", form), 0);
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    uint64_t id = (uint64_t)bt_int(r, "id");
    json_decref(r);
    return id;
}

static char *dump(const json_t *o)
{
    return json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

/* The tariff list of a client (method = tariff/list etc.), as text. */
static char *list_text(struct bt_env *e, uint64_t client, const char *method)
{
    json_t *r = bt_expect(bt_call(e, client, method, ""), 0);
    char *t = dump(json_object_get(r, "tariffs"));
    json_decref(r);
    return t;
}

static void expect_field_error(json_t *r, const char *field, const char *msg)
{
    json_t *list = json_object_get(json_object_get(r, "error_fields"), field);
    if (!json_is_array(list) || json_array_size(list) == 0) {
        char *t = dump(r);
        fail_msg("no error_fields.%s in %s", field, t);
    }
    if (msg != NULL) {
        assert_string_equal(json_string_value(json_array_get(list, 0)), msg);
    }
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

/* ---- tests --------------------------------------------------------------- */

static void test_create_and_list_exact(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_t *r = bt_expect(bt_call(e, 1, "tariff/create", FULL_TARIFF), 0);
    assert_int_equal(bt_int(r, "id"), 1);
    assert_string_equal(bt_str(r, "error_message"), "");
    assert_true(json_is_object(json_object_get(r, "error_fields")));
    json_decref(r);

    char *t = list_text(e, 1, "tariff/list");
    assert_string_equal(t, "[{\"id\":1,\"name\":\"Basic\",\"period\":1,\"price\":150.5,"
                           "\"activation_price\":10,\"basic_tariff_priority\":5,"
                           "\"sessions_count\":-1,\"basic_sessions_count\":2,"
                           "\"ip_restriction\":1,\"ip_restrictions\":1,\"channels\":[],"
                           "\"ext_id\":\"T-1\"}]");
    free(t);

    /* Exact types. */
    r = bt_expect(bt_call(e, 1, "tariff/list", ""), 0);
    json_t *o = json_array_get(json_object_get(r, "tariffs"), 0);
    assert_true(json_is_integer(json_object_get(o, "id")));
    assert_true(json_is_number(json_object_get(o, "price")));
    assert_true(json_is_real(json_object_get(o, "price")));
    assert_true(json_is_integer(json_object_get(o, "activation_price")));
    assert_true(json_is_integer(json_object_get(o, "period")));
    assert_true(json_is_array(json_object_get(o, "channels")));
    json_decref(r);
    bt_free(e);
}

static void test_create_defaults_and_stored_record(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1,
                                "name=Min&period=0.5&sessions_count=0&basic_sessions_count=0&"
                                "basic_tariff_priority=0");
    json_t *rec = tariff_record(e, 1, id);
    assert_non_null(rec);
    assert_string_equal(bt_str(rec, "period"), "0.5");
    assert_string_equal(bt_str(rec, "ext_id"), "");
    assert_int_equal(bt_int(rec, "price_cents"), 0);
    assert_int_equal(bt_int(rec, "activation_price_cents"), 0);
    assert_int_equal(bt_int(rec, "created_ms"), (int64_t)e->time_ms);
    static const struct {
        const char *name;
        int v;
    } dflt[] = {{"enabled", 1},
                {"assigned_by_default", 0},
                {"required", 0},
                {"ip_restriction", 0},
                {"available_for_inactive_accounts", 0},
                {"available_everywhere", 1},
                {"display_in_channels_widget", 1},
                {"used_for_channel_list", 1},
                {"used_for_video_list", 1},
                {"used_for_radio_list", 1},
                {"available_to_unsubscribe", 1}};
    for (size_t i = 0; i < sizeof(dflt) / sizeof(dflt[0]); i++) {
        assert_int_equal(bt_int(rec, dflt[i].name), dflt[i].v);
    }
    json_decref(rec);

    /* Flags in every accepted spelling; a decimal period is a real. */
    id = create_tariff(e, 1,
                       "name=Flags&period=1.50&sessions_count=1&basic_sessions_count=1&"
                       "basic_tariff_priority=1&enabled=False&required=true&"
                       "available_everywhere=off&assigned_by_default=on&used_for_radio_list=0");
    rec = tariff_record(e, 1, id);
    assert_int_equal(bt_int(rec, "enabled"), 0);
    assert_int_equal(bt_int(rec, "required"), 1);
    assert_int_equal(bt_int(rec, "available_everywhere"), 0);
    assert_int_equal(bt_int(rec, "assigned_by_default"), 1);
    assert_int_equal(bt_int(rec, "used_for_radio_list"), 0);
    assert_string_equal(bt_str(rec, "period"), "1.50");
    json_decref(rec);
    json_t *r = bt_expect(bt_call(e, 1, "tariff/list", ""), 0);
    json_t *tariffs = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(tariffs), 2);
    json_t *p0 = json_object_get(json_array_get(tariffs, 0), "period");
    json_t *p1 = json_object_get(json_array_get(tariffs, 1), "period");
    assert_true(json_is_real(p0));
    assert_true(json_real_value(p0) == 0.5);
    assert_true(json_is_real(p1));
    assert_true(json_real_value(p1) == 1.5);
    json_decref(r);
    bt_free(e);
}

/* The PHP client's TariffCreateRequest defaults (basic_sessions_count=-1,
 * period and price as "0"). */
static void test_create_php_client_defaults(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1,
                                "name=PHP&period=0&basic_tariff_priority=0&sessions_count=-1&"
                                "basic_sessions_count=-1&available_to_unsubscribe=0&price=0");
    json_t *rec = tariff_record(e, 1, id);
    assert_int_equal(bt_int(rec, "basic_sessions_count"), -1);
    assert_int_equal(bt_int(rec, "available_to_unsubscribe"), 0);
    json_decref(rec);
    bt_free(e);
}

static void test_create_validation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_t *r = bt_expect(bt_call(e, 1, "tariff/create", ""), 1);
    assert_string_not_equal(bt_str(r, "error_message"), "");
    assert_null(json_object_get(r, "id"));
    static const char *const req[] = {"name", "period", "sessions_count", "basic_sessions_count",
                                      "basic_tariff_priority"};
    for (size_t i = 0; i < 5; i++) {
        expect_field_error(r, req[i], "This field is required.");
    }
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 5);
    json_decref(r);

    /* Empty required values count as missing. */
    r = bt_expect(bt_call(e, 1, "tariff/create",
                          "name=&period=&sessions_count=&basic_sessions_count=&"
                          "basic_tariff_priority="),
                  1);
    for (size_t i = 0; i < 5; i++) {
        expect_field_error(r, req[i], "This field is required.");
    }
    json_decref(r);

    static const struct {
        const char *form, *field;
    } bad[] = {
        {"name=A&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=11",
         "basic_tariff_priority"},
        {"name=A&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=-1",
         "basic_tariff_priority"},
        {"name=A&period=1&sessions_count=-2&basic_sessions_count=0&basic_tariff_priority=0",
         "sessions_count"},
        {"name=A&period=1&sessions_count=0&basic_sessions_count=-2&basic_tariff_priority=0",
         "basic_sessions_count"},
        {"name=A&period=1&sessions_count=x&basic_sessions_count=0&basic_tariff_priority=0",
         "sessions_count"},
        {"name=A&period=1&sessions_count=2147483648&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "sessions_count"},
        {"name=A&period=-1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
         "period"},
        {"name=A&period=abc&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
         "period"},
        {"name=A&period=1.&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
         "period"},
        {"name=A&period=1&price=1.234&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "price"},
        {"name=A&period=1&price=1,5&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "price"},
        {"name=A&period=1&price=-1&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "price"},
        {"name=A&period=1&default_activation_price=x&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "default_activation_price"},
        {"name=A&period=1&enabled=maybe&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "enabled"},
        {"name=A&period=1&ip_restriction=2&sessions_count=0&basic_sessions_count=0&"
         "basic_tariff_priority=0",
         "ip_restriction"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = bt_call(e, 1, "tariff/create", bad[i].form);
        bt_expect(r, 1);
        expect_field_error(r, bad[i].field, NULL);
        assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 1);
        json_decref(r);
    }

    /* name: 255 characters (code points) pass, 256 fail. */
    char *name = repeat('n', 256), form[600];
    snprintf(form, sizeof(form),
             "name=%s&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
             name);
    r = bt_expect(bt_call(e, 1, "tariff/create", form), 1);
    expect_field_error(r, "name", NULL);
    json_decref(r);
    name[255] = '\0';
    snprintf(form, sizeof(form),
             "name=%s&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
             name);
    create_tariff(e, 1, form);
    free(name);
    /* Cyrillic: 255 characters, 510 bytes. */
    char cyr[520];
    for (int i = 0; i < 255; i++) {
        memcpy(cyr + 2 * i, "Ж", 2);
    }
    cyr[510] = '\0';
    char *form2 = malloc(700);
    snprintf(form2, 700,
             "name=%s&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0",
             cyr);
    create_tariff(e, 1, form2);
    free(form2);

    /* Nothing was stored by the failures. */
    char *t = list_text(e, 1, "tariff/list");
    json_t *list = json_loads(t, 0, NULL);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    free(t);
    bt_free(e);
}

static void test_ext_id_unique(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    create_tariff(e, 1, FULL_TARIFF);
    json_t *r = bt_expect(bt_call(e, 1, "tariff/create", FULL_TARIFF), 1);
    expect_field_error(r, "ext_id", "Tariff with this ext_id already exists.");
    json_decref(r);
    /* Empty ext_id is "unset": any number of tariffs may have it. */
    create_tariff(e, 1,
                  "name=A&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0"
                  "&ext_id=");
    create_tariff(e, 1,
                  "name=B&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0"
                  "&ext_id=");
    char *ext = repeat('x', 65), form[300];
    snprintf(form, sizeof(form),
             "name=A&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0&"
             "ext_id=%s",
             ext);
    r = bt_expect(bt_call(e, 1, "tariff/create", form), 1);
    expect_field_error(r, "ext_id", NULL);
    json_decref(r);
    free(ext);
    /* The index selects the tariff (customer/tariff/assign uses it). */
    struct bl_ctx c;
    uint64_t id;
    ctx_begin(e, 1, false, &c);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TARIFF_EXT, "T-1", &id), 0);
    assert_int_equal(id, 1);
    ctx_end(&c);
    bt_free(e);
}

static void test_basic_additional_lists(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    create_tariff(
        e, 1, "name=B5&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=5");
    create_tariff(
        e, 1, "name=A0&period=1&sessions_count=0&basic_sessions_count=0&basic_tariff_priority=0");
    create_tariff(e, 1,
                  "name=B1&period=1&sessions_count=0&basic_sessions_count=0&"
                  "basic_tariff_priority=1");
    json_t *r = bt_expect(bt_call(e, 1, "tariff/basic/list", ""), 0);
    json_t *l = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(l), 2);
    assert_string_equal(bt_str(json_array_get(l, 0), "name"), "B5");
    assert_string_equal(bt_str(json_array_get(l, 1), "name"), "B1");
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "tariff/additional/list", ""), 0);
    l = json_object_get(r, "tariffs");
    assert_int_equal(json_array_size(l), 1);
    assert_string_equal(bt_str(json_array_get(l, 0), "name"), "A0");
    assert_int_equal(bt_int(json_array_get(l, 0), "basic_tariff_priority"), 0);
    json_decref(r);
    r = bt_expect(bt_call(e, 1, "tariff/list", ""), 0);
    assert_int_equal(json_array_size(json_object_get(r, "tariffs")), 3);
    assert_null(json_object_get(r, "error_fields"));
    json_decref(r);
    bt_free(e);
}

static void test_modify(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1, FULL_TARIFF);
    uint64_t other = create_tariff(e, 1,
                                   "name=Other&period=1&sessions_count=0&basic_sessions_count=0&"
                                   "basic_tariff_priority=0&ext_id=T-2");
    /* Not found: missing, "-1", not an integer, unknown. */
    static const char *const missing[] = {"name=X", "tariff_id=-1&name=X", "tariff_id=abc&name=X",
                                          "tariff_id=99&name=X", "tariff_id=&name=X"};
    for (size_t i = 0; i < 5; i++) {
        json_decref(bt_expect(bt_call(e, 1, "tariff/modify", missing[i]), 1));
    }
    /* Validation: 2, nothing changed. */
    char form[200];
    snprintf(form, sizeof(form), "tariff_id=%llu&name=Changed&basic_tariff_priority=11",
             (unsigned long long)id);
    json_t *r = bt_expect(bt_call(e, 1, "tariff/modify", form), 2);
    expect_field_error(r, "basic_tariff_priority", NULL);
    json_decref(r);
    snprintf(form, sizeof(form), "tariff_id=%llu&name=", (unsigned long long)id);
    r = bt_expect(bt_call(e, 1, "tariff/modify", form), 2);
    expect_field_error(r, "name", "This field is required.");
    json_decref(r);
    snprintf(form, sizeof(form), "tariff_id=%llu&ext_id=T-2", (unsigned long long)id);
    r = bt_expect(bt_call(e, 1, "tariff/modify", form), 2);
    expect_field_error(r, "ext_id", "Tariff with this ext_id already exists.");
    json_decref(r);
    json_t *rec = tariff_record(e, 1, id);
    assert_string_equal(bt_str(rec, "name"), "Basic");
    assert_int_equal(bt_int(rec, "basic_tariff_priority"), 5);
    json_decref(rec);

    /* Only present parameters change; own ext_id is no conflict. */
    snprintf(form, sizeof(form),
             "tariff_id=%llu&name=Premium&price=99.99&ext_id=T-1&enabled=0&"
             "basic_tariff_priority=0",
             (unsigned long long)id);
    r = bt_expect(bt_call(e, 1, "tariff/modify", form), 0);
    assert_true(json_is_object(json_object_get(r, "error_fields")));
    assert_int_equal(json_object_size(json_object_get(r, "error_fields")), 0);
    json_decref(r);
    rec = tariff_record(e, 1, id);
    assert_string_equal(bt_str(rec, "name"), "Premium");
    assert_int_equal(bt_int(rec, "price_cents"), 9999);
    assert_int_equal(bt_int(rec, "activation_price_cents"), 1000);
    assert_int_equal(bt_int(rec, "enabled"), 0);
    assert_int_equal(bt_int(rec, "basic_tariff_priority"), 0);
    assert_int_equal(bt_int(rec, "sessions_count"), -1);
    assert_string_equal(bt_str(rec, "period"), "1");
    json_decref(rec);

    /* Moving ext_id frees the old value and takes the new one. */
    snprintf(form, sizeof(form), "tariff_id=%llu&ext_id=T-9", (unsigned long long)id);
    json_decref(bt_expect(bt_call(e, 1, "tariff/modify", form), 0));
    snprintf(form, sizeof(form), "tariff_id=%llu&ext_id=T-1", (unsigned long long)other);
    json_decref(bt_expect(bt_call(e, 1, "tariff/modify", form), 0));
    r = bt_expect(bt_call(e, 1, "tariff/create",
                          "name=Z&period=1&sessions_count=0&basic_sessions_count=0&"
                          "basic_tariff_priority=0&ext_id=T-9"),
                  1);
    expect_field_error(r, "ext_id", NULL);
    json_decref(r);
    create_tariff(e, 1,
                  "name=Z&period=1&sessions_count=0&basic_sessions_count=0&"
                  "basic_tariff_priority=0&ext_id=T-2");
    /* Clearing ext_id drops the index. */
    snprintf(form, sizeof(form), "tariff_id=%llu&ext_id=", (unsigned long long)id);
    json_decref(bt_expect(bt_call(e, 1, "tariff/modify", form), 0));
    struct bl_ctx c;
    uint64_t found;
    ctx_begin(e, 1, false, &c);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TARIFF_EXT, "T-9", &found), TVMW_ENOTFOUND);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TARIFF_EXT, "T-1", &found), 0);
    assert_int_equal(found, other);
    ctx_end(&c);

    char *t = list_text(e, 1, "tariff/basic/list");
    assert_string_equal(t, "[]");
    free(t);
    bt_free(e);
}

static void test_delete_removes_links(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1, FULL_TARIFF);
    uint64_t keep = create_tariff(e, 1,
                                  "name=Keep&period=1&sessions_count=0&basic_sessions_count=0&"
                                  "basic_tariff_priority=0");
    /* Assignments as customer/account tariff assign and the catalogue make
     * them: customers 7 and 8, account 9, channel 3, service 4. */
    struct bl_ctx c;
    ctx_begin(e, 1, true, &c);
    json_t *at = json_pack("{s:I}", "assigned_ms", (json_int_t)e->time_ms);
    for (uint64_t cust = 7; cust <= 8; cust++) {
        assert_int_equal(bl_rel_put(&c, BL_REL_CUST_TAR, cust, id, at), 0);
        assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CUST, id, cust, NULL), 0);
        assert_int_equal(bl_rel_put(&c, BL_REL_CUST_TAR, cust, keep, at), 0);
        assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CUST, keep, cust, NULL), 0);
    }
    assert_int_equal(bl_rel_put(&c, BL_REL_ACC_TAR, 9, id, at), 0);
    assert_int_equal(bl_rel_put(&c, BL_REL_TAR_ACC, id, 9, NULL), 0);
    assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CHAN, id, 3, NULL), 0);
    assert_int_equal(bl_rel_put(&c, CP_REL_TAR_SVC, id, 4, NULL), 0);
    json_decref(at);
    ctx_end(&c);

    json_decref(bt_expect(bt_call(e, 1, "tariff/delete", "tariff_id=99"), 1));
    json_decref(bt_expect(bt_call(e, 1, "tariff/delete", ""), 1));
    json_decref(bt_expect(bt_call(e, 1, "tariff/delete", "tariff_id=x"), 1));
    char form[64];
    snprintf(form, sizeof(form), "tariff_id=%llu", (unsigned long long)id);
    json_t *r = bt_expect(bt_call(e, 1, "tariff/delete", form), 0);
    assert_null(json_object_get(r, "error_fields"));
    json_decref(r);
    assert_null(tariff_record(e, 1, id));
    assert_int_equal(rel_count(e, 1, BL_REL_TAR_CUST, id), 0);
    assert_int_equal(rel_count(e, 1, BL_REL_TAR_ACC, id), 0);
    assert_int_equal(rel_count(e, 1, BL_REL_TAR_CHAN, id), 0);
    assert_int_equal(rel_count(e, 1, CP_REL_TAR_SVC, id), 0);
    assert_int_equal(rel_count(e, 1, BL_REL_ACC_TAR, 9), 0);
    for (uint64_t cust = 7; cust <= 8; cust++) {
        assert_int_equal(rel_count(e, 1, BL_REL_CUST_TAR, cust), 1); /* only `keep` */
    }
    assert_int_equal(rel_count(e, 1, BL_REL_TAR_CUST, keep), 2);
    /* Gone: a second delete and a modify are "not found"; ext_id is free. */
    json_decref(bt_expect(bt_call(e, 1, "tariff/delete", form), 1));
    json_decref(bt_expect(bt_call(e, 1, "tariff/modify", form), 1));
    create_tariff(e, 1, FULL_TARIFF);
    char *t = list_text(e, 1, "tariff/list");
    json_t *l = json_loads(t, 0, NULL);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    free(t);
    bt_free(e);
}

static void test_channels(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1, FULL_TARIFF);
    struct bl_ctx c;
    ctx_begin(e, 1, true, &c);
    json_t *ch = json_pack("{s:s, s:s}", "name", "Первый", "icon", "http://x/1.png");
    assert_int_equal(bl_obj_put(&c, BL_CHANNEL, 5, ch), 0);
    json_decref(ch);
    ch = json_pack("{s:s}", "name", "No icon");
    assert_int_equal(bl_obj_put(&c, BL_CHANNEL, 6, ch), 0);
    json_decref(ch);
    assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CHAN, id, 5, NULL), 0);
    assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CHAN, id, 6, NULL), 0);
    assert_int_equal(bl_rel_put(&c, BL_REL_TAR_CHAN, id, 77, NULL), 0); /* dangling */
    ctx_end(&c);
    json_t *r = bt_expect(bt_call(e, 1, "tariff/list", ""), 0);
    char *t = dump(json_object_get(json_array_get(json_object_get(r, "tariffs"), 0), "channels"));
    assert_string_equal(t, "[{\"id\":5,\"name\":\"Первый\",\"icon\":\"http://x/1.png\"},"
                           "{\"id\":6,\"name\":\"No icon\",\"icon\":\"\"}]");
    free(t);
    json_decref(r);
    bt_free(e);
}

static void test_tenant_isolation(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t id = create_tariff(e, 1, FULL_TARIFF);
    char *t = list_text(e, 2, "tariff/list");
    assert_string_equal(t, "[]");
    free(t);
    t = list_text(e, 2, "tariff/basic/list");
    assert_string_equal(t, "[]");
    free(t);
    char form[96];
    snprintf(form, sizeof(form), "tariff_id=%llu&name=Stolen", (unsigned long long)id);
    json_decref(bt_expect(bt_call(e, 2, "tariff/modify", form), 1));
    snprintf(form, sizeof(form), "tariff_id=%llu", (unsigned long long)id);
    json_decref(bt_expect(bt_call(e, 2, "tariff/delete", form), 1));
    /* The same ext_id is free in another client. */
    uint64_t id2 = create_tariff(e, 2, FULL_TARIFF);
    assert_int_not_equal(id2, id);
    json_t *rec = tariff_record(e, 1, id);
    assert_string_equal(bt_str(rec, "name"), "Basic");
    json_decref(rec);
    assert_null(tariff_record(e, 2, id));
    t = list_text(e, 1, "tariff/list");
    json_t *l = json_loads(t, 0, NULL);
    assert_int_equal(json_array_size(l), 1);
    assert_int_equal(bt_int(json_array_get(l, 0), "id"), (int64_t)id);
    json_decref(l);
    free(t);
    /* Client 2 deleting its own copy leaves client 1's ext_id index. */
    snprintf(form, sizeof(form), "tariff_id=%llu", (unsigned long long)id2);
    json_decref(bt_expect(bt_call(e, 2, "tariff/delete", form), 0));
    struct bl_ctx c;
    uint64_t found;
    ctx_begin(e, 1, false, &c);
    assert_int_equal(bl_uniq_get(&c, BL_UNIQ_TARIFF_EXT, "T-1", &found), 0);
    assert_int_equal(found, id);
    ctx_end(&c);
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_list_exact),
        cmocka_unit_test(test_create_defaults_and_stored_record),
        cmocka_unit_test(test_create_php_client_defaults),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_ext_id_unique),
        cmocka_unit_test(test_basic_additional_lists),
        cmocka_unit_test(test_modify),
        cmocka_unit_test(test_delete_removes_links),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_tenant_isolation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
