/*
 * it_billing_builtin: the built-in billing (docs/billing.md, Smarty's
 * check_accounts) on a 3-node cluster with 1-second periods, through a
 * leader crash.
 *
 * billing.check_interval_ms 250, billing.period_unit_s 1, billing.batch 3;
 * client 1 is "builtin"; two tariffs of period 1 and price 1. Four
 * customers with two accounts each can pay for the whole run; a fifth can
 * pay for two periods. Each account has its own tariff (account/tariff/
 * assign: account A tariff "TA", account B "TB"), so a charge's comment
 * ("... tariff "TA", period k") names its account.
 *
 * The billing runs ~8 s, the leader is killed with SIGKILL midway and
 * restarted. Then: the poor customer's accounts are deactivated with
 * status_reason DEBT; a top-up reactivates them (status_reason ACTIVE)
 * within a few check intervals and the period current at the top-up is
 * charged once. Finally billing is switched off for the client (so that
 * nothing moves while we look) and, for every account: no period k is
 * charged twice, every period that ended before the switch-off is charged
 * (the poor accounts: not while in debt), none in the future; every
 * balance equals the sum of its customer's transactions on every node.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT      24600
#define N_NODES        3
#define N_CUST         5 /* the last one is poor */
#define POOR           (N_CUST - 1)
#define RICH_BALANCE   "60" /* 2 accounts x 30 periods: more than the run */
#define POOR_BALANCE   "4"  /* 2 accounts x 2 periods */
#define TOPUP          "20"
#define RUN_MS         8000
#define KILL_AT_MS     3500
#define DOWN_MS        1500 /* after a new leader, before the restart */
#define REACTIVATE_MS  2000 /* "within ~2 s" of the top-up */
#define AFTER_TOPUP_MS 2200 /* periods charged after the reactivation */
#define APPLY_SLACK_MS 400  /* a run inside a period is applied within this after it */
#define PERIOD_MS      1000
#define KEY1           "builtin-key-1"
#define MAX_K          64

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};

struct account {
    long long id;
    char tariff[4];                  /* "TA" or "TB" */
    uint64_t created_lo, created_hi; /* wall ms around account/create */
    int charges[MAX_K];              /* times period k was charged */
    int beyond;                      /* charges of k >= MAX_K */
};

struct customer {
    long long id;
    struct account acc[2];
};

static struct customer custs[N_CUST];
static char tar_a[24], tar_b[24];

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *num(long long v)
{
    static char ring[32][24];
    static unsigned at;
    char *s = ring[at++ % 32];
    it_fmt(s, 24, "%lld", v);
    return s;
}

static json_t *call_at(int line, uint64_t node, const char *path, const char *const *kv,
                       long long want)
{
    struct it_resp r;
    char why[1400];
    it_bl_call(cl, node, IT_BL_PY, &c1, path, kv, &r);
    IT_ASSERT(it_bl_is(&r, want, why, sizeof(why)), "line %d: %s via node %llu: %s", line, path,
              (unsigned long long)node, why);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}

/* Any serving node (the cluster may be short of one). */
#define CALL(path, kv, want) call_at(__LINE__, it_next_serving(cl), path, kv, want)

static long long geti(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void set_mode(const char *mode)
{
    char body[128];
    struct it_resp r;
    it_fmt(body, sizeof(body), "{\"settings\":{\"billing_mode\":\"%s\"}}", mode);
    it_admin(cl, it_next_serving(cl), "PATCH", "/admin/v1/clients/1", body, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
}

static void setup_objects(void)
{
    for (int t = 0; t < 2; t++) {
        json_t *o =
            CALL("tariff/create",
                 IT_KV("name", t == 0 ? "TA" : "TB", "period", "1", "price", "1", "sessions_count",
                       "1", "basic_sessions_count", "1", "basic_tariff_priority", "0"),
                 0);
        it_fmt(t == 0 ? tar_a : tar_b, 24, "%lld", geti(o, "id"));
        json_decref(o);
    }
    for (int c = 0; c < N_CUST; c++) {
        char name[16];
        it_fmt(name, sizeof(name), "Subscriber %d", c);
        json_t *o = CALL("customer/create", IT_KV("firstname", name), 0);
        custs[c].id = geti(o, "id");
        json_decref(o);
        char tx[32];
        it_fmt(tx, sizeof(tx), "DEPOSIT-%d", c);
        json_decref(CALL("transaction/create",
                         IT_KV("customer_id", num(custs[c].id), "id", tx, "amount",
                               c == POOR ? POOR_BALANCE : RICH_BALANCE, "processed", "1"),
                         0));
        for (int a = 0; a < 2; a++) {
            struct account *acc = &custs[c].acc[a];
            acc->created_lo = wall_ms();
            o = CALL("account/create", IT_KV("customer_id", num(custs[c].id)), 0);
            acc->created_hi = wall_ms();
            acc->id = geti(o, "id");
            json_decref(o);
            it_fmt(acc->tariff, sizeof(acc->tariff), "%s", a == 0 ? "TA" : "TB");
            json_decref(CALL("account/tariff/assign",
                             IT_KV("account_id", num(acc->id), "tariff_id", a == 0 ? tar_a : tar_b),
                             0));
        }
    }
}

/* Polls until both accounts of customer c have (active, reason). */
static bool wait_accounts(int c, int active, const char *reason, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        int ok = 0;
        for (int a = 0; a < 2; a++) {
            json_t *o = CALL("account/info", IT_KV("account_id", num(custs[c].acc[a].id)), 0);
            const char *r = json_string_value(json_object_get(o, "status_reason"));
            ok += geti(o, "active") == active && r != NULL && strcmp(r, reason) == 0;
            json_decref(o);
        }
        if (ok == 2) {
            return true;
        }
        it_sleep_ms(50);
    } while (it_now_ms() - t0 < timeout_ms);
    return false;
}

static long long parse_cents(const char *s)
{
    bool neg = *s == '-';
    if (neg) {
        s++;
    }
    const char *dot = strchr(s, '.');
    IT_ASSERT(dot != NULL && strlen(dot) == 3, "amount \"%s\"", s);
    long long v = strtoll(s, NULL, 10) * 100 + strtoll(dot + 1, NULL, 10);
    return neg ? -v : v;
}

/* Reads customer c on node (linearizable, or local with stale): fills the
 * charges of its accounts, returns its balance; asserts the balance is the
 * sum of its transactions. */
static long long read_customer(uint64_t node, bool stale, int c)
{
    struct customer *cu = &custs[c];
    char why[1400];
    struct it_resp r;
    for (int a = 0; a < 2; a++) {
        memset(cu->acc[a].charges, 0, sizeof(cu->acc[a].charges));
        cu->acc[a].beyond = 0;
    }
    const char *st = stale ? "1" : "0";
    /* stale=1 must be in the query to be seen; sign it as a parameter. */
    const char *kv_info[] = {"customer_id", num(cu->id), "client_id", "1", "stale", st, NULL};
    char sig[33], body[256], target[128];
    it_bl_sign(kv_info, KEY1, sig);
    it_fmt(body, sizeof(body), "customer_id=%lld&client_id=1&signature=%s", cu->id, sig);
    it_fmt(target, sizeof(target), "/billing/api/customer/info/?stale=%s", st);
    it_bl_raw(cl, node, "POST", target, body, strlen(body), "application/x-www-form-urlencoded",
              NULL, &r);
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "customer/info node %llu: %s",
              (unsigned long long)node, why);
    long long balance = it_bl_cents(json_object_get(r.json, "balance"));
    it_resp_close(&r);
    long long sum = 0;
    for (unsigned page = 1;; page++) {
        const char *kv[] = {"customer_id", num(cu->id), "limit", "100", "page", num(page),
                            "client_id",   "1",         "stale", st,    NULL};
        it_bl_sign(kv, KEY1, sig);
        it_fmt(body, sizeof(body), "customer_id=%lld&limit=100&page=%u&client_id=1&signature=%s",
               cu->id, page, sig);
        it_fmt(target, sizeof(target), "/billing/api/customer/transaction/list/?stale=%s", st);
        it_bl_raw(cl, node, "POST", target, body, strlen(body), "application/x-www-form-urlencoded",
                  NULL, &r);
        IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "transaction list node %llu: %s",
                  (unsigned long long)node, why);
        json_t *ps = json_object_get(r.json, "payments");
        size_t i;
        json_t *p;
        json_array_foreach(ps, i, p)
        {
            const char *amount = json_string_value(json_object_get(p, "amount"));
            const char *source = json_string_value(json_object_get(p, "source"));
            const char *comment = json_string_value(json_object_get(p, "comment"));
            sum += parse_cents(amount);
            if (source == NULL || strcmp(source, "system") != 0) {
                continue;
            }
            /* Charge for tariff "TA", period 7 */
            const char *q = comment ? strstr(comment, "tariff \"") : NULL;
            const char *k = comment ? strstr(comment, "period ") : NULL;
            IT_ASSERT(q != NULL && k != NULL && strcmp(amount, "-1.00") == 0,
                      "charge of customer %lld: %s", cu->id, comment ? comment : "(no comment)");
            int a = strncmp(q + 8, "TA\"", 3) == 0 ? 0 : strncmp(q + 8, "TB\"", 3) == 0 ? 1 : -1;
            IT_ASSERT(a >= 0, "charge for an unknown tariff: %s", comment);
            long kk = strtol(k + 7, NULL, 10);
            IT_ASSERT(kk >= 0, "period %ld: %s", kk, comment);
            if (kk < MAX_K) {
                cu->acc[a].charges[kk]++;
            } else {
                cu->acc[a].beyond++;
            }
        }
        size_t n = json_array_size(ps);
        it_resp_close(&r);
        if (n < 100) {
            break;
        }
    }
    IT_ASSERT(balance == sum,
              "node %llu (%s): customer %lld: balance %lld != sum of its "
              "transactions %lld",
              (unsigned long long)node, stale ? "local" : "linearizable", cu->id, balance, sum);
    return balance;
}

static void describe(const struct account *acc, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < MAX_K && used + 8 < len; k++) {
        if (acc->charges[k] > 0) {
            it_fmt(out + used, len - used, " %d%s", k, acc->charges[k] > 1 ? "(x2+)" : "");
            used += strlen(out + used);
        }
    }
}

/* The cluster and client 1 (inside the test, so that a failure shows the
 * node logs). */
static void start_cluster(void)
{
    struct it_opts o = {
        .n_nodes = N_NODES,
        .base_port = BASE_PORT,
        .name = "billing-builtin",
        .extra_config = "{\"billing\":{\"check_interval_ms\":250,\"period_unit_s\":1,\"batch\":3}}",
    };
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    struct it_resp r;
    it_admin(cl, 1, "POST", "/admin/v1/clients",
             "{\"name\":\"builtin\",\"billing_api_key\":\"" KEY1
             "\",\"settings\":{\"billing_mode\":\"builtin\"}}",
             NULL, &r);
    long long id =
        (long long)json_integer_value(json_object_get(json_object_get(r.json, "client"), "id"));
    it_resp_close(&r);
    IT_ASSERT(id == 1, "client 1 got id %lld", id);
}

static void test_builtin_billing(void **state)
{
    (void)state;
    start_cluster();
    setup_objects();
    uint64_t t0 = it_now_ms();

    /* Kill the leader midway; restart it. */
    while (it_now_ms() - t0 < KILL_AT_MS) {
        it_sleep_ms(50);
    }
    uint64_t old = it_wait_leader(cl, 10000);
    IT_ASSERT(old != 0, "no leader");
    it_node_kill(cl, old);
    uint64_t t_kill = it_now_ms();
    uint64_t leader = it_wait_leader(cl, 15000);
    IT_ASSERT(leader != 0 && leader != old, "no new leader");
    uint64_t t_new = it_now_ms();
    fprintf(stderr, "BUILTIN: leader %llu killed; node %llu leads after %llu ms\n",
            (unsigned long long)old, (unsigned long long)leader,
            (unsigned long long)(t_new - t_kill));
    while (it_now_ms() - t_new < DOWN_MS) {
        it_sleep_ms(50);
    }
    IT_ASSERT(it_node_start(cl, old) == 0, "restart");
    while (it_now_ms() - t0 < RUN_MS) {
        it_sleep_ms(50);
    }

    /* The poor customer is in debt, at a balance of 0. */
    IT_ASSERT(wait_accounts(POOR, 0, "DEBT", 5000), "the poor customer's accounts are not in DEBT");
    json_t *o = CALL("customer/info", IT_KV("customer_id", num(custs[POOR].id)), 0);
    IT_ASSERT(it_bl_cents(json_object_get(o, "balance")) == 0, "balance in debt: %lld cents",
              it_bl_cents(json_object_get(o, "balance")));
    json_decref(o);
    /* A top-up reactivates them. */
    uint64_t t_topup = wall_ms();
    json_decref(CALL("transaction/create",
                     IT_KV("customer_id", num(custs[POOR].id), "id", "TOPUP-1", "amount", TOPUP,
                           "processed", "1"),
                     0));
    bool back = wait_accounts(POOR, 1, "ACTIVE", REACTIVATE_MS);
    uint64_t t_react = wall_ms();
    fprintf(stderr, "BUILTIN: reactivated %llu ms after the top-up\n",
            (unsigned long long)(t_react - t_topup));
    IT_ASSERT(back, "the poor customer's accounts are not ACTIVE %d ms after the top-up",
              REACTIVATE_MS);
    uint64_t t_wait = it_now_ms();
    while (it_now_ms() - t_wait < AFTER_TOPUP_MS) {
        it_sleep_ms(50);
    }

    /* Freeze: no charge after the switch-off is applied. */
    uint64_t t_freeze = wall_ms();
    set_mode("off");
    uint64_t t_frozen = wall_ms();
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "cluster not ready");

    /* Every node, linearizable; then every node's own state. */
    long long balances[N_CUST];
    bool first = true;
    int problems = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            /* The scheduler keeps proposing (empty) runs: wait for what
             * was committed, not for the log to stand still. */
            IT_ASSERT(it_wait_applied(cl, 20000), "nodes did not catch up");
        }
        for (uint64_t node = 1; node <= N_NODES; node++) {
            for (int c = 0; c < N_CUST; c++) {
                long long b = read_customer(node, pass == 1, c);
                if (first) {
                    balances[c] = b;
                } else {
                    IT_ASSERT(b == balances[c], "node %llu: customer %lld has %lld, not %lld",
                              (unsigned long long)node, custs[c].id, b, balances[c]);
                }
                if (!first) {
                    continue;
                }
                /* The charges, checked once (every node showed the same
                 * balance and the balance is the sum of the list). */
                int charged = 0;
                for (int a = 0; a < 2; a++) {
                    const struct account *acc = &custs[c].acc[a];
                    char seen[512];
                    describe(acc, seen, sizeof(seen));
                    /* Periods that ended before the switch-off. */
                    long due = ((long long)t_freeze - APPLY_SLACK_MS - (long long)acc->created_hi) /
                               PERIOD_MS;
                    long last = ((long long)t_frozen - (long long)acc->created_lo) / PERIOD_MS;
                    long debt_from = 2; /* the poor pay for periods 0 and 1 */
                    long topup_lo = ((long long)t_topup - (long long)acc->created_hi) / PERIOD_MS;
                    long topup_hi = ((long long)t_react - (long long)acc->created_lo) / PERIOD_MS;
                    IT_ASSERT(acc->beyond == 0 && last < MAX_K, "periods beyond %d", MAX_K);
                    for (int k = 0; k < MAX_K; k++) {
                        charged += acc->charges[k];
                        if (acc->charges[k] > 1) {
                            fprintf(stderr,
                                    "BUILTIN: account %lld (%s): period %d charged %d times\n",
                                    acc->id, acc->tariff, k, acc->charges[k]);
                            problems++;
                        }
                        if (acc->charges[k] > 0 && k > last) {
                            fprintf(stderr,
                                    "BUILTIN: account %lld: period %d charged, but only %ld had "
                                    "begun at the switch-off\n",
                                    acc->id, k, last);
                            problems++;
                        }
                        bool poor_gap = c == POOR && k >= debt_from && k < topup_lo;
                        if (k < due && !poor_gap && acc->charges[k] == 0) {
                            fprintf(stderr,
                                    "BUILTIN: account %lld (%s): period %d ended before the "
                                    "switch-off and was never charged\n",
                                    acc->id, acc->tariff, k);
                            problems++;
                        }
                    }
                    if (c == POOR) {
                        int at_topup = 0;
                        for (long k = topup_lo; k <= topup_hi && k < MAX_K; k++) {
                            at_topup += k >= 0 ? acc->charges[k] : 0;
                        }
                        /* Once: a second charge of the same k is caught above. */
                        if (at_topup < 1) {
                            fprintf(stderr,
                                    "BUILTIN: poor account %lld: the period of the top-up "
                                    "(%ld..%ld) was not charged\n",
                                    acc->id, topup_lo, topup_hi);
                            problems++;
                        }
                    }
                    fprintf(stderr,
                            "BUILTIN: customer %lld account %lld (%s): charged periods%s; due "
                            "0..%ld%s\n",
                            custs[c].id, acc->id, acc->tariff, seen, due - 1,
                            c == POOR ? " (in debt from 2 until the top-up)" : "");
                }
                long long start = c == POOR ? 400 + 2000 : 6000;
                IT_ASSERT(b == start - 100LL * charged,
                          "customer %lld: balance %lld cents after "
                          "%d charges of 1.00 from %lld",
                          custs[c].id, b, charged, start);
            }
            first = false;
        }
    }
    IT_ASSERT(problems == 0, "%d problems with the charges (listed above)", problems);
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    it_cluster_free(cl);
    cl = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_builtin_billing, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
