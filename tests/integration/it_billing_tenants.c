/*
 * it_billing_tenants: every object of the Billing API belongs to one client
 * (tenant), and another client's signature never reaches it
 * (shared/spec/billing-api.md §3.0: "an object belonging to another
 * operator is 'not found'").
 *
 * Client 1 owns a customer (with ext_id), an account (abonement), a device
 * (uid), a tariff (ext_id), a message and transactions. Client 2, signing
 * as itself, calls EVERY method of table 3.0 with client 1's ids, ext_ids,
 * abonements, device uids and transaction ids: each answers its "not
 * found" code, lists show nothing of client 1's, and afterwards client 1's
 * objects read back exactly as before, with no audit record of client 1
 * added. Then client 2 takes the same external keys for objects of its own
 * (they are unique per client, not globally), changes and deletes them by
 * those keys, and client 1's objects are still unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT 24200
#define N_NODES   3
#define KEY1      "tenant-one-key"
#define KEY2      "tenant-two-key"

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};
static struct it_bl_client c2 = {.id = 2, .key = KEY2};
static unsigned rot;

static uint64_t next_node(void)
{
    return 1 + (rot++ % N_NODES);
}

static const char *dump(const json_t *o)
{
    static char buf[2048];
    char *t = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    it_fmt(buf, sizeof(buf), "%s", t ? t : "(null)");
    free(t);
    return buf;
}

static long long geti(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static json_t *call_at(int line, const struct it_bl_client *who, enum it_bl_style st,
                       const char *path, const char *const *kv, long long want)
{
    struct it_resp r;
    uint64_t n = next_node();
    it_bl_call(cl, n, st, who, path, kv, &r);
    char why[1400];
    IT_ASSERT(it_bl_is(&r, want, why, sizeof(why)), "line %d: %s as client %llu via node %llu: %s",
              line, path, (unsigned long long)who->id, (unsigned long long)n, why);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}

#define ONE(st, path, kv, want)    call_at(__LINE__, &c1, st, path, kv, want)
#define TWO(st, path, kv, want)    call_at(__LINE__, &c2, st, path, kv, want)
#define TWO_DO(st, path, kv, want) json_decref(TWO(st, path, kv, want))
#define ONE_DO(st, path, kv, want) json_decref(ONE(st, path, kv, want))

/* Client 1's objects. */
static char cust1[24], acc1[24], dev1[24], tar1[24];
/* Client 2's own customer, account and tariff. */
static char cust2[24], acc2[24], tar2[24];

#define EXT1  "TEN-E1"
#define ABON1 "8880001"
#define UID1  "AA:BB:CC:00:00:01"
#define TEXT1 "TEN-T1"
#define TX1   "TEN-TX1"
#define PHONE "+7 900 000 0001"

static void id_of(const json_t *o, char out[24])
{
    IT_ASSERT(geti(o, "id") > 0, "no id in %s", dump(o));
    it_fmt(out, 24, "%lld", geti(o, "id"));
}

/* Everything a caller can read about client 1's objects. */
static json_t *client1_view(void)
{
    json_t *v = json_object();
    json_object_set_new(v, "customer",
                        ONE(IT_BL_PY, "customer/info", IT_KV("customer_id", cust1), 0));
    json_object_set_new(v, "account", ONE(IT_BL_PY, "account/info", IT_KV("account_id", acc1), 0));
    json_object_set_new(v, "payments",
                        ONE(IT_BL_PY, "customer/transaction/list", IT_KV("customer_id", cust1), 0));
    json_object_set_new(v, "customers", ONE(IT_BL_PHP, "customer/list", IT_KV0, 0));
    json_object_set_new(v, "accounts", ONE(IT_BL_PY, "account/list", IT_KV0, 0));
    json_object_set_new(v, "tariffs", ONE(IT_BL_PY, "tariff/list", IT_KV0, 0));
    json_object_set_new(
        v, "by_ext",
        ONE(IT_BL_HYDRA, "customer/info", IT_KV("customer_id", "-1", "ext_id", EXT1), 0));
    json_object_set_new(v, "by_abon", ONE(IT_BL_PY, "account/info", IT_KV("abonement", ABON1), 0));
    return v;
}

static void same_view_at(int line, const json_t *before, const char *what)
{
    json_t *now = client1_view();
    const char *k;
    json_t *v;
    json_object_foreach(now, k, v)
    {
        json_t *was = json_object_get(before, k);
        if (!json_equal(was, v)) {
            char *a = json_dumps(was, JSON_COMPACT | JSON_SORT_KEYS);
            char *b = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
            fprintf(stderr, "before: %s\nafter:  %s\n", a, b);
            free(a);
            free(b);
        }
        IT_ASSERT(json_equal(was, v), "line %d: client 1's %s changed %s", line, k, what);
    }
    json_decref(now);
}
#define SAME_VIEW(before, what) same_view_at(__LINE__, before, what)

/* Client 1's audit records (index of the last one). */
static long long last_audit_index(uint64_t client)
{
    char path[96];
    long long after = 0, last = 0;
    for (;;) {
        struct it_resp r;
        it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/audit?after=%lld&limit=1000",
               (unsigned long long)client, after);
        it_admin(cl, next_node(), "GET", path, NULL, NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        json_t *recs = json_object_get(r.json, "records");
        size_t n = json_array_size(recs);
        if (n > 0) {
            last = geti(json_array_get(recs, n - 1), "index");
        }
        long long next = geti(r.json, "next_after");
        it_resp_close(&r);
        if (n == 0 || next <= after) {
            break;
        }
        after = next;
    }
    return last;
}

static json_t *find_id(const json_t *arr, const char *id)
{
    long long want = strtoll(id, NULL, 10);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (geti(e, "id") == want) {
            return e;
        }
    }
    return NULL;
}

static void setup_objects(void)
{
    json_t *o;
    o = ONE(IT_BL_PY, "customer/create",
            IT_KV("firstname", "One", "ext_id", EXT1, "mobile_phone_number", PHONE), 0);
    id_of(o, cust1);
    json_decref(o);
    o = ONE(IT_BL_PHP, "tariff/create",
            IT_KV("name", "One's", "period", "1", "price", "5", "sessions_count", "1",
                  "basic_sessions_count", "1", "basic_tariff_priority", "1", "ext_id", TEXT1),
            0);
    id_of(o, tar1);
    json_decref(o);
    o = ONE(IT_BL_PY, "account/create",
            IT_KV("customer_id", cust1, "abonement", ABON1, "password", "111111"), 0);
    id_of(o, acc1);
    json_decref(o);
    o = ONE(IT_BL_PHP, "account/device/create",
            IT_KV("account_id", acc1, "system_name", "mag250", "device_uid", UID1), 0);
    id_of(o, dev1);
    json_decref(o);
    ONE_DO(IT_BL_PY, "customer/tariff/assign", IT_KV("customer_id", cust1, "tariff_id", tar1), 0);
    ONE_DO(IT_BL_PHP, "account/tariff/assign", IT_KV("account_id", acc1, "tariff_id", tar1), 0);
    ONE_DO(IT_BL_PY, "transaction/create",
           IT_KV("customer_id", cust1, "id", TX1, "amount", "100", "comment", "", "processed", "1"),
           0);
    ONE_DO(IT_BL_PY, "account/message/create",
           IT_KV("subject", "Hi", "text", "One", "urgent", "1", "account_id", acc1), 0);

    o = TWO(IT_BL_PY, "customer/create", IT_KV("firstname", "Two"), 0);
    id_of(o, cust2);
    json_decref(o);
    o = TWO(IT_BL_PY, "account/create", IT_KV("customer_id", cust2), 0);
    id_of(o, acc2);
    json_decref(o);
    o = TWO(IT_BL_PHP, "tariff/create",
            IT_KV("name", "Two's", "period", "1", "price", "1", "sessions_count", "1",
                  "basic_sessions_count", "1", "basic_tariff_priority", "0"),
            0);
    id_of(o, tar2);
    json_decref(o);
}

static void expect_empty_list(int line, json_t *o, const char *key)
{
    json_t *arr = json_object_get(o, key);
    IT_ASSERT(json_is_array(arr), "line %d: no %s: %s", line, key, dump(o));
    IT_ASSERT(find_id(arr, cust1) == NULL || strcmp(key, "customers") != 0,
              "line %d: client 2 sees client 1's customer: %s", line, dump(o));
    IT_ASSERT(find_id(arr, acc1) == NULL || strcmp(key, "accounts") != 0,
              "line %d: client 2 sees client 1's account: %s", line, dump(o));
    IT_ASSERT(find_id(arr, tar1) == NULL || strcmp(key, "tariffs") != 0,
              "line %d: client 2 sees client 1's tariff: %s", line, dump(o));
    json_decref(o);
}
#define NOTHING_OF_ONE(o, key) expect_empty_list(__LINE__, o, key)

static void test_isolation(void **state)
{
    (void)state;
    setup_objects();
    json_t *before = client1_view();
    long long audit1 = last_audit_index(1);

    /* Customer methods. */
    TWO_DO(IT_BL_PY, "customer/modify", IT_KV("customer_id", cust1, "lastname", "Hacked"), 1);
    TWO_DO(IT_BL_HYDRA, "customer/modify", IT_KV("ext_id", EXT1, "firstname", "Hacked"), 1);
    TWO_DO(IT_BL_PY, "customer/info", IT_KV("customer_id", cust1), 1);
    TWO_DO(IT_BL_HYDRA, "customer/info", IT_KV("customer_id", "-1", "ext_id", EXT1), 1);
    NOTHING_OF_ONE(TWO(IT_BL_PHP, "customer/list", IT_KV0, 0), "customers");
    json_t *o = TWO(IT_BL_PY, "customer/list", IT_KV("tariff_id", tar1), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "customers")) == 0, "by client 1's tariff: %s",
              dump(o));
    json_decref(o);
    o = TWO(IT_BL_PHP, "customer/list", IT_KV("mobile_phone_number", PHONE), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "customers")) == 0, "by phone: %s", dump(o));
    json_decref(o);
    o = TWO(IT_BL_PY, "customer/list", IT_KV("abonement_regexp", ABON1), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "customers")) == 0, "by abonement: %s", dump(o));
    json_decref(o);
    TWO_DO(IT_BL_PHP, "customer/delete", IT_KV("customer_id", cust1), 1);
    TWO_DO(IT_BL_PHP, "customer/delete", IT_KV("ext_id", EXT1), 1);
    TWO_DO(IT_BL_PY, "customer/tariff/assign", IT_KV("customer_id", cust1, "tariff_id", tar2), 1);
    TWO_DO(IT_BL_HYDRA, "customer/tariff/assign",
           IT_KV("customer_id", "-1", "ext_id", EXT1, "tariff_id", tar2), 1);
    TWO_DO(IT_BL_PY, "customer/tariff/assign", IT_KV("customer_id", cust2, "tariff_id", tar1), 2);
    TWO_DO(IT_BL_PHP, "customer/tariff/assign", IT_KV("customer_id", cust2, "tariff_ext_id", TEXT1),
           2);
    TWO_DO(IT_BL_PY, "customer/tariff/remove", IT_KV("customer_id", cust1, "tariff_id", tar1), 1);
    TWO_DO(IT_BL_PY, "customer/tariff/remove", IT_KV("customer_id", cust2, "tariff_id", tar1), 2);
    TWO_DO(IT_BL_PHP, "customer/tariff/remove", IT_KV("customer_id", cust2, "tariff_ext_id", TEXT1),
           2);
    TWO_DO(IT_BL_PY, "customer/transaction/list", IT_KV("customer_id", cust1), 1);
    TWO_DO(IT_BL_PY, "customer/transaction/list", IT_KV("ext_id", EXT1), 1);

    /* Account methods. */
    TWO_DO(IT_BL_PY, "account/create", IT_KV("customer_id", cust1), 1);
    TWO_DO(IT_BL_HYDRA, "account/create", IT_KV("ext_id", EXT1, "abonement", "8889999"), 1);
    TWO_DO(IT_BL_PHP, "account/modify", IT_KV("account_id", acc1, "active", "0"), 1);
    TWO_DO(IT_BL_HYDRA, "account/modify",
           IT_KV("abonement", ABON1, "active", "0", "status_reason", "DEBT"), 1);
    TWO_DO(IT_BL_PY, "account/info", IT_KV("account_id", acc1), 1);
    TWO_DO(IT_BL_PY, "account/info", IT_KV("abonement", ABON1), 1);
    NOTHING_OF_ONE(TWO(IT_BL_PY, "account/list", IT_KV0, 0), "accounts");
    o = TWO(IT_BL_PHP, "account/list", IT_KV("device", UID1), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "accounts")) == 0, "by device: %s", dump(o));
    json_decref(o);
    o = TWO(IT_BL_PHP, "account/list", IT_KV("abonement_regexp", ABON1), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "accounts")) == 0, "by abonement: %s", dump(o));
    json_decref(o);
    TWO_DO(IT_BL_PY, "account/delete", IT_KV("abonement", ABON1), 1);
    TWO_DO(IT_BL_PY, "account/delete", IT_KV("account_id", acc1), 1);
    TWO_DO(IT_BL_PY, "account/activate", IT_KV("abonement", ABON1), 1);
    TWO_DO(IT_BL_PY, "account/activate", IT_KV("account_id", acc1), 1);
    TWO_DO(IT_BL_PY, "account/deactivate", IT_KV("abonement", ABON1), 1);
    TWO_DO(IT_BL_PY, "account/deactivate", IT_KV("account_id", acc1), 1);
    TWO_DO(IT_BL_PHP, "account/tariff/assign", IT_KV("account_id", acc1, "tariff_id", tar2), 1);
    TWO_DO(IT_BL_PHP, "account/tariff/assign", IT_KV("account_id", acc2, "tariff_id", tar1), 2);
    TWO_DO(IT_BL_PHP, "account/tariff/assign", IT_KV("abonement", ABON1, "tariff_ext_id", TEXT1),
           1);
    TWO_DO(IT_BL_PHP, "account/tariff/remove", IT_KV("account_id", acc1, "tariff_id", tar1), 1);
    TWO_DO(IT_BL_PHP, "account/tariff/remove", IT_KV("account_id", acc2, "tariff_id", tar1), 2);
    TWO_DO(IT_BL_PY, "account/message/create",
           IT_KV("subject", "x", "text", "y", "urgent", "1", "account_id", acc1), 1);
    TWO_DO(IT_BL_PHP, "account/message/create", IT_KV("abonement", ABON1, "text", "y"), 1);
    TWO_DO(IT_BL_PHP, "account/device/create",
           IT_KV("account_id", acc1, "system_name", "mag250", "device_uid", "AA:BB:CC:00:00:99"),
           1);
    TWO_DO(IT_BL_PHP, "account/device/modify", IT_KV("device_id", dev1, "serial_number", "x"), 1);
    TWO_DO(IT_BL_PHP, "account/device/modify", IT_KV("device_uid", UID1, "serial_number", "x"), 1);
    TWO_DO(IT_BL_PHP, "account/device/delete", IT_KV("device_id", dev1), 1);
    TWO_DO(IT_BL_PHP, "account/device/delete",
           IT_KV("abonement", ABON1, "system_name", "mag250", "device_uid", UID1), 1);

    /* Tariff methods. */
    NOTHING_OF_ONE(TWO(IT_BL_PY, "tariff/list", IT_KV0, 0), "tariffs");
    NOTHING_OF_ONE(TWO(IT_BL_PHP, "tariff/basic/list", IT_KV0, 0), "tariffs");
    NOTHING_OF_ONE(TWO(IT_BL_PHP, "tariff/additional/list", IT_KV0, 0), "tariffs");
    TWO_DO(IT_BL_PHP, "tariff/modify", IT_KV("tariff_id", tar1, "price", "0"), 1);
    TWO_DO(IT_BL_PHP, "tariff/delete", IT_KV("tariff_id", tar1), 1);

    /* Transaction methods. */
    TWO_DO(IT_BL_PY, "transaction/create",
           IT_KV("customer_id", cust1, "id", "TEN-NEW", "amount", "1", "processed", "1"), 6);
    TWO_DO(IT_BL_PY, "transaction/delete", IT_KV("customer_id", cust1, "id", TX1), 1);
    TWO_DO(IT_BL_PHP, "transaction/delete", IT_KV("ext_id", TX1), 1);
    TWO_DO(IT_BL_PY, "transaction/delete", IT_KV("customer_id", cust2, "id", TX1), 1);

    /* A mix-up the other way: client 1's id with client 2's key. */
    struct it_resp r;
    struct it_bl_auth mixed = {.client_id = "1", .key = KEY2};
    it_bl_call_auth(cl, next_node(), IT_BL_PY, "customer/info", IT_KV("customer_id", cust1), &mixed,
                    NULL, &r);
    char why[1400];
    IT_ASSERT(it_bl_is(&r, -100, why, sizeof(why)), "client_id 1 with client 2's key: %s", why);
    it_resp_close(&r);

    SAME_VIEW(before, "after client 2's calls with its ids");
    IT_ASSERT(last_audit_index(1) == audit1, "client 2's calls left audit records under client 1");
    json_decref(before);
    it_test_ok();
}

static void test_same_keys_per_client(void **state)
{
    (void)state;
    json_t *before = client1_view();
    /* External keys are unique per client: client 2 may use them all. */
    json_t *o = TWO(IT_BL_HYDRA, "customer/create", IT_KV("ext_id", EXT1, "comment", "two"), 0);
    char cust2b[24];
    id_of(o, cust2b);
    json_decref(o);
    IT_ASSERT(strcmp(cust2b, cust1) != 0, "same id");
    o = TWO(IT_BL_HYDRA, "account/create", IT_KV("ext_id", EXT1, "abonement", ABON1), 0);
    char acc2b[24];
    id_of(o, acc2b);
    json_decref(o);
    TWO_DO(IT_BL_PHP, "account/device/create",
           IT_KV("abonement", ABON1, "system_name", "android", "device_uid", UID1), 0);
    TWO_DO(IT_BL_PHP, "tariff/create",
           IT_KV("name", "Two's 2", "period", "1", "sessions_count", "1", "basic_sessions_count",
                 "1", "basic_tariff_priority", "0", "ext_id", TEXT1),
           0);
    TWO_DO(IT_BL_PY, "transaction/create",
           IT_KV("customer_id", cust2b, "id", TX1, "amount", "7", "processed", "1"), 0);

    /* Each client's keys select its own objects. */
    o = TWO(IT_BL_HYDRA, "customer/info", IT_KV("customer_id", "-1", "ext_id", EXT1), 0);
    IT_ASSERT(strtoll(cust2b, NULL, 10) == geti(o, "id") && geti(o, "balance") == 7,
              "client 2's %s: %s", EXT1, dump(o));
    json_decref(o);
    o = TWO(IT_BL_PY, "account/info", IT_KV("abonement", ABON1), 0);
    IT_ASSERT(strtoll(acc2b, NULL, 10) == geti(o, "id") &&
                  json_array_size(json_object_get(o, "devices")) == 1,
              "client 2's %s: %s", ABON1, dump(o));
    json_decref(o);
    o = TWO(IT_BL_PHP, "account/list", IT_KV("device", UID1), 0);
    IT_ASSERT(json_array_size(json_object_get(o, "accounts")) == 1 &&
                  geti(json_array_get(json_object_get(o, "accounts"), 0), "id") ==
                      strtoll(acc2b, NULL, 10),
              "device filter: %s", dump(o));
    json_decref(o);
    SAME_VIEW(before, "after client 2 took the same keys");

    /* Client 2 changes and deletes its objects by those keys. */
    TWO_DO(IT_BL_HYDRA, "customer/modify", IT_KV("ext_id", EXT1, "firstname", "Changed"), 0);
    TWO_DO(IT_BL_HYDRA, "account/modify",
           IT_KV("abonement", ABON1, "active", "0", "status_reason", "DEBT"), 0);
    TWO_DO(IT_BL_PY, "account/deactivate", IT_KV("abonement", ABON1), 0);
    TWO_DO(IT_BL_PHP, "account/tariff/assign", IT_KV("abonement", ABON1, "tariff_ext_id", TEXT1),
           0);
    TWO_DO(IT_BL_HYDRA, "customer/tariff/assign",
           IT_KV("customer_id", "-1", "ext_id", EXT1, "tariff_ext_id", TEXT1), 0);
    TWO_DO(IT_BL_PHP, "account/device/modify", IT_KV("device_uid", UID1, "serial_number", "2"), 0);
    TWO_DO(IT_BL_PY, "transaction/delete", IT_KV("id", TX1), 0);
    TWO_DO(IT_BL_PY, "transaction/create",
           IT_KV("customer_id", cust1, "id", TX1, "amount", "1", "processed", "1"), 6);
    TWO_DO(IT_BL_PHP, "account/device/delete", IT_KV("device_uid", UID1), 0);
    TWO_DO(IT_BL_PY, "account/delete", IT_KV("abonement", ABON1), 0);
    TWO_DO(IT_BL_PHP, "customer/delete", IT_KV("ext_id", EXT1), 0);
    o = TWO(IT_BL_PY, "tariff/list", IT_KV0, 0);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(o, "tariffs"), i, t)
    {
        char id[24];
        id_of(t, id);
        TWO_DO(IT_BL_PHP, "tariff/delete", IT_KV("tariff_id", id), 0);
    }
    json_decref(o);
    SAME_VIEW(before, "after client 2 changed and deleted its own objects");
    /* And client 1's keys still work for client 1. */
    ONE_DO(IT_BL_PY, "transaction/create",
           IT_KV("customer_id", cust1, "id", TX1, "amount", "1", "processed", "1"), 1);
    ONE_DO(IT_BL_PHP, "account/device/modify", IT_KV("device_uid", UID1, "serial_number", "1"), 0);
    json_decref(before);
    it_test_ok();
}

static int group_setup(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = N_NODES, .base_port = BASE_PORT, .name = "billing-tenants"};
    cl = it_cluster_new(&o);
    if (cl == NULL || it_wait_all_ready(cl, 20000) == 0) {
        it_cluster_free(cl); /* not passed: prints the node logs */
        cl = NULL;
        return -1;
    }
    static const char *const bodies[] = {
        "{\"name\":\"tenant one\",\"billing_api_key\":\"" KEY1 "\"}",
        "{\"name\":\"tenant two\",\"billing_api_key\":\"" KEY2 "\"}"};
    for (int i = 0; i < 2; i++) {
        struct it_resp r;
        it_admin(cl, next_node(), "POST", "/admin/v1/clients", bodies[i], NULL, &r);
        long long id = geti(json_object_get(r.json, "client"), "id");
        it_resp_close(&r);
        if (id != i + 1) {
            fprintf(stderr, "client %d got id %lld\n", i + 1, id);
            it_cluster_free(cl);
            cl = NULL;
            return -1;
        }
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
        cmocka_unit_test_setup_teardown(test_isolation, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_same_keys_per_client, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
