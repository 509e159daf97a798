/* Built-in billing runs: one charge per period, deactivation for debt,
 * reactivation after a top-up, no double charge on repeated runs, only
 * clients in builtin mode. */
#include "tests/unit/billing_testlib.h"

static json_t *run(struct bt_env *e, uint64_t run_ms)
{
    char p[200];
    struct cp_result *r = NULL;
    snprintf(p, sizeof(p), "{\"run_ms\":%llu,\"unit_ms\":1000,\"after\":0,\"limit\":1000}",
             (unsigned long long)run_ms);
    e->time_ms = run_ms;
    bt_apply(e, CP_CMD_BILLING_RUN, p, &r);
    assert_non_null(r);
    assert_int_equal(r->status, 200);
    json_t *o = json_loadb(r->body, r->len, 0, NULL);
    cp_result_free(r);
    return o;
}

static void set_builtin(struct bt_env *e, int client)
{
    char p[200];
    struct cp_result *r = NULL;
    snprintf(p, sizeof(p), "{\"id\":%d,\"settings\":{\"billing_mode\":\"builtin\"}}", client);
    bt_apply(e, CP_CMD_CLIENT_UPDATE, p, &r);
    assert_int_equal(r->status, 200);
    cp_result_free(r);
}

static void setup_customer(struct bt_env *e, int client, const char *balance)
{
    char form[200];
    json_decref(bt_expect(bt_call(e, client, "tariff/create",
                                  "name=Basic&period=1&price=100&sessions_count=1&"
                                  "basic_sessions_count=1&basic_tariff_priority=1&ext_id=T1"),
                          0));
    json_decref(bt_expect(bt_call(e, client, "customer/create", "firstname=A&ext_id=C1"), 0));
    json_decref(
        bt_expect(bt_call(e, client, "customer/tariff/assign", "ext_id=C1&tariff_ext_id=T1"), 0));
    json_decref(bt_expect(bt_call(e, client, "account/create", "ext_id=C1&abonement=777"), 0));
    snprintf(form, sizeof(form), "customer_id=1&id=TOPUP-1&amount=%s&processed=1", balance);
    json_decref(bt_expect(bt_call(e, client, "transaction/create", form), 0));
}

static int64_t balance_cents(struct bt_env *e, int client)
{
    json_t *r = bt_expect(bt_call(e, client, "customer/info", "customer_id=1"), 0);
    double b = json_number_value(json_object_get(r, "balance"));
    json_decref(r);
    return (int64_t)(b * 100 + (b < 0 ? -0.5 : 0.5));
}

static int64_t sum_transactions(struct bt_env *e, int client)
{
    json_t *r =
        bt_expect(bt_call(e, client, "customer/transaction/list", "customer_id=1&limit=100"), 0);
    size_t i;
    json_t *p;
    int64_t sum = 0, cents;
    json_array_foreach(json_object_get(r, "payments"), i, p)
    {
        assert_int_equal(bl_parse_amount(bt_str(p, "amount"), &cents), 0);
        sum += bt_int(p, "processed") ? cents : 0;
    }
    json_decref(r);
    return sum;
}

static int account_active(struct bt_env *e, int client, const char **reason)
{
    json_t *r = bt_expect(bt_call(e, client, "account/info", "abonement=777"), 0);
    int active = (int)bt_int(r, "active");
    static char buf[32];
    snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(r, "status_reason")) ?: "");
    *reason = buf;
    json_decref(r);
    return active;
}

static void test_charge_debt_reactivate(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    set_builtin(e, 1);
    uint64_t t0 = e->time_ms;
    setup_customer(e, 1, "150");
    const char *reason;

    json_t *o = run(e, t0 + 500); /* period 0: charged, 150 -> 50 */
    assert_int_equal(bt_int(o, "charged"), 1);
    json_decref(o);
    assert_int_equal(balance_cents(e, 1), 5000);
    o = run(e, t0 + 700); /* same period again: nothing */
    assert_int_equal(bt_int(o, "charged"), 0);
    json_decref(o);
    assert_int_equal(balance_cents(e, 1), 5000);

    o = run(e, t0 + 1200); /* period 1: 50 < 100, deactivated */
    assert_int_equal(bt_int(o, "charged"), 0);
    assert_int_equal(bt_int(o, "deactivated"), 1);
    json_decref(o);
    assert_int_equal(account_active(e, 1, &reason), 0);
    assert_string_equal(reason, "DEBT");
    o = run(e, t0 + 1300); /* still short: not deactivated twice */
    assert_int_equal(bt_int(o, "deactivated"), 0);
    json_decref(o);

    json_decref(bt_expect(
        bt_call(e, 1, "transaction/create", "customer_id=1&id=TOPUP-2&amount=100&processed=1"), 0));
    o = run(e, t0 + 1500); /* covered: charged period 1 and reactivated */
    assert_int_equal(bt_int(o, "charged"), 1);
    assert_int_equal(bt_int(o, "reactivated"), 1);
    json_decref(o);
    assert_int_equal(account_active(e, 1, &reason), 1);
    assert_string_equal(reason, "ACTIVE");
    assert_int_equal(balance_cents(e, 1), 5000);
    assert_int_equal(balance_cents(e, 1), sum_transactions(e, 1));
    bt_free(e);
}

/* No run happened for three periods (no leader, say): the next run
 * charges each of them once. */
static void test_missed_periods_are_caught_up(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    set_builtin(e, 1);
    uint64_t t0 = e->time_ms;
    setup_customer(e, 1, "1000");
    json_t *o = run(e, t0 + 500);
    assert_int_equal(bt_int(o, "charged"), 1); /* period 0 */
    json_decref(o);
    o = run(e, t0 + 3500);
    assert_int_equal(bt_int(o, "charged"), 3); /* periods 1, 2 and 3 */
    json_decref(o);
    o = run(e, t0 + 3900);
    assert_int_equal(bt_int(o, "charged"), 0);
    json_decref(o);
    assert_int_equal(balance_cents(e, 1), 100000 - 4 * 10000);
    assert_int_equal(balance_cents(e, 1), sum_transactions(e, 1));
    bt_free(e);
}

static void test_external_mode_is_never_charged(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t t0 = e->time_ms;
    setup_customer(e, 2, "10"); /* client 2 stays in external mode */
    for (int i = 1; i < 5; i++) {
        json_t *o = run(e, t0 + 1000u * (unsigned)i);
        assert_int_equal(bt_int(o, "charged") + bt_int(o, "deactivated"), 0);
        json_decref(o);
    }
    assert_int_equal(balance_cents(e, 2), 1000);
    bt_free(e);
}

static void test_batches_cover_every_account(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    set_builtin(e, 1);
    uint64_t t0 = e->time_ms;
    setup_customer(e, 1, "1000");
    for (int i = 0; i < 4; i++) {
        char form[100];
        snprintf(form, sizeof(form), "ext_id=C1&abonement=88%d", i);
        json_decref(bt_expect(bt_call(e, 1, "account/create", form), 0));
    }
    /* Batches of 2 accounts: 5 accounts need 3 batches, all charged once. */
    uint64_t after = 0, charged = 0;
    for (int guard = 0; guard < 10; guard++) {
        char p[200];
        struct cp_result *r = NULL;
        snprintf(p, sizeof(p), "{\"run_ms\":%llu,\"unit_ms\":1000,\"after\":%llu,\"limit\":2}",
                 (unsigned long long)(t0 + 100), (unsigned long long)after);
        bt_apply(e, CP_CMD_BILLING_RUN, p, &r);
        json_t *o = json_loadb(r->body, r->len, 0, NULL);
        cp_result_free(r);
        charged += (uint64_t)bt_int(o, "charged");
        after = (uint64_t)bt_int(o, "next");
        json_decref(o);
        if (after == 0) {
            break;
        }
    }
    assert_int_equal(charged, 5);
    assert_int_equal(balance_cents(e, 1), 100000 - 5 * 10000);
    assert_int_equal(balance_cents(e, 1), sum_transactions(e, 1));
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_charge_debt_reactivate),
        cmocka_unit_test(test_missed_periods_are_caught_up),
        cmocka_unit_test(test_external_mode_is_never_charged),
        cmocka_unit_test(test_batches_cover_every_account),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
