/* Billing plumbing: parameter parsing, tenant isolation of objects,
 * nested-transaction rollback of failed methods, audit trail. */
#include "tests/unit/billing_testlib.h"

#include "common/err.h"

static void test_parsers(void **state)
{
    (void)state;
    int64_t v, list[8];
    size_t n;
    int f;
    char d[11];
    assert_int_equal(bl_parse_int("42", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(bl_parse_int("-1", &v), 0);
    assert_int_equal(v, -1);
    assert_int_not_equal(bl_parse_int("4x", &v), 0);
    assert_int_not_equal(bl_parse_int("", &v), 0);
    assert_int_equal(bl_parse_flag("True", &f), 0);
    assert_int_equal(f, 1);
    assert_int_equal(bl_parse_flag("off", &f), 0);
    assert_int_equal(f, 0);
    assert_int_not_equal(bl_parse_flag("2", &f), 0);
    assert_int_equal(bl_parse_date("2024-02-29", d), 0);
    assert_int_not_equal(bl_parse_date("2023-02-29", d), 0);
    assert_int_equal(bl_parse_date("2024-05-01 12:30:00", d), 0);
    assert_string_equal(d, "2024-05-01");
    assert_int_not_equal(bl_parse_date("01.05.2024", d), 0);
    assert_int_equal(bl_parse_amount("150.5", &v), 0);
    assert_int_equal(v, 15050);
    assert_int_equal(bl_parse_amount("-0.07", &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(bl_parse_amount("10", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_not_equal(bl_parse_amount("1.234", &v), 0);
    assert_int_not_equal(bl_parse_amount("1,5", &v), 0);
    assert_int_not_equal(bl_parse_amount(".", &v), 0);
    assert_int_equal(bl_parse_int_list("[1, 2, 3]", list, 8, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[2], 3);
    assert_int_equal(bl_parse_int_list("1,2", list, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(bl_parse_int_list("5", list, 8, &n), 0);
    assert_int_equal(list[0], 5);
    assert_int_not_equal(bl_parse_int_list("[1, x]", list, 8, &n), 0);
    assert_int_equal(bl_utf8_chars("Оплата"), 6);
    assert_int_equal(bl_utf8_chars("\xff"), SIZE_MAX);
    char m[32];
    bl_money_text(15050, m);
    assert_string_equal(m, "150.50");
    bl_money_text(-7, m);
    assert_string_equal(m, "-0.07");
}

static void test_unknown_client_is_refused(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_t *r = bt_call(e, 99, "customer/create", "firstname=A");
    bt_expect(r, BL_EARGUMENT);
    json_decref(r);
    bt_free(e);
}

/* tvmw extension: account/modify with if_status_reason is a compare-and-set. */
static void test_status_reason_cas(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    json_decref(bt_expect(bt_call(e, 1, "customer/create", "firstname=A&ext_id=C"), 0));
    json_decref(bt_expect(bt_call(e, 1, "account/create", "ext_id=C&abonement=900"), 0));
    /* never set counts as "" */
    json_decref(bt_expect(
        bt_call(e, 1, "account/modify", "abonement=900&if_status_reason=&status_reason=A"), 0));
    json_decref(bt_expect(
        bt_call(e, 1, "account/modify", "abonement=900&if_status_reason=B&status_reason=C"), 5));
    json_decref(bt_expect(
        bt_call(e, 1, "account/modify", "abonement=900&if_status_reason=A&status_reason=B"), 0));
    json_t *r = bt_expect(bt_call(e, 1, "account/info", "abonement=900"), 0);
    assert_string_equal(bt_str(r, "status_reason"), "B");
    json_decref(r);
    bt_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_unknown_client_is_refused),
        cmocka_unit_test(test_status_reason_cas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
