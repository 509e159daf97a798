/*
 * it_billing_balance: "a customer's balance equals the sum of its
 * transactions" through a leader crash (shared/spec/billing-api.md §5.2).
 *
 * Six threads send transaction/create (unique ids, a random customer of
 * five, a random amount with cents, processed=1) to all three nodes for
 * about 15 s, as a billing system does: an attempt that gets no answer, an
 * HTTP 503 (outcome unknown) or error -1 (nothing done) is retried with
 * the SAME transaction id on any node until a JSON answer comes; error 0
 * and error 1 ("already exists", §5.2's idempotency) both mean it landed.
 * Midway the leader is killed with SIGKILL and restarted a few seconds
 * later.
 *
 * Then, on every node, with linearizable reads and (after convergence)
 * with each node's local state (stale=1): for each customer, the balance of
 * customer/info equals the sum of customer/transaction/list (paged by 100),
 * which equals the sum of the amounts that landed for it; the list holds
 * exactly the landed ids, none twice.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT      24400
#define N_NODES        3
#define N_CUST         5
#define N_THREADS      6
#define RUN_MS         15000
#define KILL_AT_MS     5000
#define DOWN_MS        3000 /* the old leader stays down this long after a new one */
#define ID_DEADLINE_MS 30000
#define PAGE           100
#define KEY1           "balance-key-1"

static struct it_cluster *cl;
static struct it_bl_client c1 = {.id = 1, .key = KEY1};
static long long cust_ids[N_CUST];
static atomic_bool stopping;

struct landed {
    char id[32];
    int cust; /* index into cust_ids */
    long long cents;
    uint64_t at_ms;
};

struct worker {
    unsigned index;
    pthread_t thread;
    struct landed *landed;
    size_t n, cap;
    size_t attempts, retries, unexpected, lost;
    size_t landed_on_retry; /* "already exists" after a retry: an earlier attempt landed */
    uint64_t max_latency_ms;
    char last_unexpected[800];
};

static struct worker workers[N_THREADS];
static unsigned started; /* threads to join */

static void amount_text(long long cents, char out[32])
{
    long long a = cents < 0 ? -cents : cents;
    it_fmt(out, 32, "%s%lld.%02lld", cents < 0 ? "-" : "", a / 100, a % 100);
}

/* One transaction until a JSON answer says where it stands. Returns true
 * if it landed. */
static bool send_one(struct worker *w, const char *id, int cust, long long cents)
{
    char amount[32], customer[24];
    amount_text(cents, amount);
    it_fmt(customer, sizeof(customer), "%lld", cust_ids[cust]);
    uint64_t t0 = it_now_ms();
    unsigned tries = 0;
    for (;;) {
        uint64_t node = it_next_serving(cl);
        if (node == 0) {
            it_sleep_ms(50);
            continue;
        }
        struct it_resp r;
        tries++;
        w->attempts++;
        it_bl_call(cl, node, IT_BL_PY, &c1, "transaction/create",
                   IT_KV("customer_id", customer, "id", id, "amount", amount, "comment", "load",
                         "processed", "1"),
                   &r);
        json_t *e = json_object_get(r.json, "error");
        long long code = json_is_integer(e) ? (long long)json_integer_value(e) : -9999;
        bool done = false, ok = false;
        if (r.status == 200 && (code == 0 || code == 1)) {
            done = ok = true;
            w->landed_on_retry += code == 1 && tries > 1;
            if (code == 1 && tries == 1) {
                /* A fresh id cannot exist yet. */
                w->unexpected++;
                it_fmt(w->last_unexpected, sizeof(w->last_unexpected),
                       "%s: \"already exists\" on the first attempt: %.300s", id, r.body);
            }
        } else if (r.status == 0 || r.status == 503 || (r.status == 200 && code == -1)) {
            w->retries++;
        } else {
            /* An answer that says the write failed: nothing landed. */
            w->unexpected++;
            it_fmt(w->last_unexpected, sizeof(w->last_unexpected), "%s via node %llu: %ld %.300s",
                   id, (unsigned long long)node, r.status, r.body);
            done = true;
        }
        it_resp_close(&r);
        if (done) {
            uint64_t lat = it_now_ms() - t0;
            if (lat > w->max_latency_ms) {
                w->max_latency_ms = lat;
            }
            return ok;
        }
        if (it_now_ms() - t0 > ID_DEADLINE_MS) {
            w->lost++;
            it_fmt(w->last_unexpected, sizeof(w->last_unexpected),
                   "%s: no answer within %d ms (%u attempts)", id, ID_DEADLINE_MS, tries);
            return false;
        }
        it_sleep_ms(20);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned seed = 0x9e3779b9u * (w->index + 1);
    for (unsigned seq = 1; !atomic_load(&stopping); seq++) {
        char id[32];
        it_fmt(id, sizeof(id), "B-%u-%u", w->index, seq);
        int cust = (int)(rand_r(&seed) % N_CUST);
        /* -50.00 .. 149.99, never a whole number of units on purpose half
         * the time. */
        long long cents = (long long)(rand_r(&seed) % 20000) - 5000;
        if (cents == 0) {
            cents = 1;
        }
        if (!send_one(w, id, cust, cents)) {
            if (w->lost > 0) {
                break;
            }
            continue;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 1024;
            struct landed *l = realloc(w->landed, cap * sizeof(*l));
            if (l == NULL) {
                w->lost++;
                break;
            }
            w->landed = l;
            w->cap = cap;
        }
        struct landed *l = &w->landed[w->n++];
        it_fmt(l->id, sizeof(l->id), "%s", id);
        l->cust = cust;
        l->cents = cents;
        l->at_ms = it_now_ms();
    }
    return NULL;
}

static size_t total_landed(void)
{
    size_t n = 0;
    for (int i = 0; i < N_THREADS; i++) {
        n += workers[i].n; /* racy read, for progress only */
    }
    return n;
}

/* ---- verification --------------------------------------------------------- */

static long long parse_cents(const char *s)
{
    bool neg = *s == '-';
    if (neg) {
        s++;
    }
    const char *dot = strchr(s, '.');
    IT_ASSERT(dot != NULL && strlen(dot) == 3, "amount \"%s\" without 2 decimals", s);
    long long v = strtoll(s, NULL, 10) * 100 + strtoll(dot + 1, NULL, 10);
    return neg ? -v : v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A Python-style call; with stale, "?stale=1" in the query (a read from
 * the node's own state, docs/admin-api.md "Reads"), signed like any
 * parameter. */
static void call_node(uint64_t node, bool stale, const char *path, const char *const *kv,
                      struct it_resp *r)
{
    if (!stale) {
        it_bl_call(cl, node, IT_BL_PY, &c1, path, kv, r);
        return;
    }
    const char *all[2 * IT_BL_MAX_PARAMS + 1];
    size_t n = 0;
    while (kv[n] != NULL) {
        all[n] = kv[n];
        n++;
    }
    all[n++] = "client_id";
    all[n++] = "1";
    all[n++] = "stale";
    all[n++] = "1";
    all[n] = NULL;
    char sig[33], target[256];
    it_bl_sign(all, KEY1, sig);
    all[n - 2] = "signature"; /* the body: params, client_id, signature */
    all[n - 1] = sig;
    char *body = it_bl_form(all, IT_ENC_PY);
    IT_ASSERT(body != NULL, "oom");
    it_fmt(target, sizeof(target), "/billing/api/%s/?stale=1", path);
    it_bl_raw(cl, node, "POST", target, body, strlen(body), "application/x-www-form-urlencoded",
              NULL, r);
    free(body);
}

/* Checks one customer on one node. */
static void check_customer(uint64_t node, bool stale, int c, const char **want_ids, size_t n_want,
                           long long want_sum)
{
    char customer[24], why[1400];
    it_fmt(customer, sizeof(customer), "%lld", cust_ids[c]);
    const char *how = stale ? "local (stale=1)" : "linearizable";
    struct it_resp r;
    call_node(node, stale, "customer/info", IT_KV("customer_id", customer), &r);
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "customer/info on node %llu: %s",
              (unsigned long long)node, why);
    long long balance = it_bl_cents(json_object_get(r.json, "balance"));
    long long pays = (long long)json_integer_value(json_object_get(r.json, "payments_count"));
    it_resp_close(&r);

    size_t cap = n_want + PAGE + 1, got = 0;
    char **ids = calloc(cap, sizeof(*ids));
    IT_ASSERT(ids != NULL, "oom");
    long long sum = 0;
    for (unsigned page = 1;; page++) {
        char p[16];
        it_fmt(p, sizeof(p), "%u", page);
        call_node(node, stale, "customer/transaction/list",
                  IT_KV("customer_id", customer, "limit", "100", "page", p), &r);
        IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "transaction list page %u on node %llu: %s",
                  page, (unsigned long long)node, why);
        json_t *ps = json_object_get(r.json, "payments");
        size_t i;
        json_t *e;
        json_array_foreach(ps, i, e)
        {
            IT_ASSERT(json_integer_value(json_object_get(e, "processed")) == 1, "%s",
                      json_string_value(json_object_get(e, "transaction_id")));
            sum += parse_cents(json_string_value(json_object_get(e, "amount")));
            if (got == cap) {
                cap *= 2;
                char **more = realloc(ids, cap * sizeof(*ids));
                IT_ASSERT(more != NULL, "oom");
                ids = more;
            }
            ids[got++] = strdup(json_string_value(json_object_get(e, "transaction_id")));
        }
        size_t n = json_array_size(ps);
        it_resp_close(&r);
        IT_ASSERT(n <= PAGE, "page of %zu", n);
        if (n < PAGE) {
            break;
        }
    }
    qsort(ids, got, sizeof(*ids), cmp_str);
    for (size_t i = 1; i < got; i++) {
        IT_ASSERT(strcmp(ids[i - 1], ids[i]) != 0, "node %llu (%s): customer %lld lists %s twice",
                  (unsigned long long)node, how, cust_ids[c], ids[i]);
    }
    size_t missing = 0, extra = 0;
    for (size_t i = 0, j = 0; i < n_want || j < got;) {
        int d = i == n_want ? 1 : j == got ? -1 : strcmp(want_ids[i], ids[j]);
        if (d < 0) {
            if (missing++ < 5) {
                fprintf(stderr, "node %llu (%s): landed %s MISSING for customer %lld\n",
                        (unsigned long long)node, how, want_ids[i], cust_ids[c]);
            }
            i++;
        } else if (d > 0) {
            if (extra++ < 5) {
                fprintf(stderr, "node %llu (%s): %s listed but never acknowledged\n",
                        (unsigned long long)node, how, ids[j]);
            }
            j++;
        } else {
            i++;
            j++;
        }
    }
    for (size_t i = 0; i < got; i++) {
        free(ids[i]);
    }
    free(ids);
    IT_ASSERT(missing == 0 && extra == 0,
              "node %llu (%s): customer %lld: %zu landed transactions missing, %zu extra",
              (unsigned long long)node, how, cust_ids[c], missing, extra);
    IT_ASSERT(balance == sum && sum == want_sum && pays == (long long)n_want,
              "node %llu (%s): customer %lld: balance %lld, sum of its transactions %lld, sum of "
              "the landed amounts %lld (payments_count %lld, landed %zu)",
              (unsigned long long)node, how, cust_ids[c], balance, sum, want_sum, pays, n_want);
}

static void verify(void)
{
    const char **want[N_CUST];
    size_t n_want[N_CUST] = {0};
    long long sums[N_CUST] = {0};
    size_t total = 0;
    for (int t = 0; t < N_THREADS; t++) {
        total += workers[t].n;
    }
    for (int c = 0; c < N_CUST; c++) {
        want[c] = calloc(total + 1, sizeof(*want[c]));
        IT_ASSERT(want[c] != NULL, "oom");
    }
    for (int t = 0; t < N_THREADS; t++) {
        for (size_t i = 0; i < workers[t].n; i++) {
            const struct landed *l = &workers[t].landed[i];
            want[l->cust][n_want[l->cust]++] = l->id;
            sums[l->cust] += l->cents;
        }
    }
    for (int c = 0; c < N_CUST; c++) {
        qsort(want[c], n_want[c], sizeof(*want[c]), cmp_str);
    }
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "cluster not ready for the check");
    for (uint64_t node = 1; node <= N_NODES; node++) {
        for (int c = 0; c < N_CUST; c++) {
            check_customer(node, false, c, want[c], n_want[c], sums[c]);
        }
    }
    IT_ASSERT(it_wait_converged(cl, 20000), "nodes did not converge");
    for (uint64_t node = 1; node <= N_NODES; node++) {
        for (int c = 0; c < N_CUST; c++) {
            check_customer(node, true, c, want[c], n_want[c], sums[c]);
        }
    }
    for (int c = 0; c < N_CUST; c++) {
        fprintf(stderr, "customer %lld: %zu transactions, balance %lld cents, same on 3 nodes\n",
                cust_ids[c], n_want[c], sums[c]);
        free(want[c]);
    }
}

/* ---- the test ------------------------------------------------------------- */

/* The cluster and client 1 (inside the test, so that a failure shows the
 * node logs). */
static void start_cluster(void)
{
    struct it_opts o = {.n_nodes = N_NODES, .base_port = BASE_PORT, .name = "billing-balance"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    struct it_resp r;
    it_admin(cl, 2, "POST", "/admin/v1/clients",
             "{\"name\":\"balance\",\"billing_api_key\":\"" KEY1 "\"}", NULL, &r);
    long long id =
        (long long)json_integer_value(json_object_get(json_object_get(r.json, "client"), "id"));
    it_resp_close(&r);
    IT_ASSERT(id == 1, "client 1 got id %lld", id);
}

static void test_balance_through_failover(void **state)
{
    (void)state;
    start_cluster();
    for (int c = 0; c < N_CUST; c++) {
        char name[16], why[1400];
        it_fmt(name, sizeof(name), "Payer %d", c);
        struct it_resp r;
        it_bl_call(cl, (uint64_t)(1 + c % N_NODES), IT_BL_PY, &c1, "customer/create",
                   IT_KV("firstname", name), &r);
        IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "customer/create: %s", why);
        cust_ids[c] = (long long)json_integer_value(json_object_get(r.json, "id"));
        it_resp_close(&r);
    }
    uint64_t t0 = it_now_ms();
    for (unsigned i = 0; i < N_THREADS; i++) {
        workers[i].index = i;
        IT_ASSERT(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0,
                  "pthread_create");
        started++;
    }
    while (it_now_ms() - t0 < KILL_AT_MS) {
        it_sleep_ms(100);
    }
    uint64_t old = it_wait_leader(cl, 10000);
    IT_ASSERT(old != 0, "no leader before the kill");
    size_t before_kill = total_landed();
    it_node_kill(cl, old);
    uint64_t t_kill = it_now_ms();
    uint64_t leader = it_wait_leader(cl, 15000);
    IT_ASSERT(leader != 0 && leader != old, "no new leader after killing %llu",
              (unsigned long long)old);
    fprintf(stderr,
            "leader %llu killed with %zu transactions landed; node %llu leads after %llu ms\n",
            (unsigned long long)old, before_kill, (unsigned long long)leader,
            (unsigned long long)(it_now_ms() - t_kill));
    while (it_now_ms() - t_kill < DOWN_MS) {
        it_sleep_ms(100);
    }
    IT_ASSERT(it_node_start(cl, old) == 0, "restart of node %llu", (unsigned long long)old);
    size_t at_restart = total_landed();
    while (it_now_ms() - t0 < RUN_MS) {
        it_sleep_ms(100);
    }
    atomic_store(&stopping, true);
    for (; started > 0; started--) {
        pthread_join(workers[started - 1].thread, NULL);
    }
    size_t landed = 0, attempts = 0, retries = 0, unexpected = 0, lost = 0, on_retry = 0;
    uint64_t max_lat = 0;
    for (unsigned i = 0; i < N_THREADS; i++) {
        landed += workers[i].n;
        attempts += workers[i].attempts;
        retries += workers[i].retries;
        unexpected += workers[i].unexpected;
        lost += workers[i].lost;
        on_retry += workers[i].landed_on_retry;
        max_lat = workers[i].max_latency_ms > max_lat ? workers[i].max_latency_ms : max_lat;
        if (workers[i].last_unexpected[0] != '\0') {
            fprintf(stderr, "worker %u: %s\n", i, workers[i].last_unexpected);
        }
    }
    fprintf(stderr,
            "%zu transactions landed in %llu ms (%zu attempts, %zu retries, %zu answered "
            "\"already exists\" on a retry, max %llu ms to an answer); %zu after the restart\n",
            landed, (unsigned long long)(it_now_ms() - t0), attempts, retries, on_retry,
            (unsigned long long)max_lat, landed - at_restart);
    IT_ASSERT(unexpected == 0 && lost == 0, "%zu unexpected answers, %zu ids without an answer",
              unexpected, lost);
    IT_ASSERT(before_kill > 0 && landed > at_restart,
              "no progress: %zu before the kill, %zu at "
              "the restart, %zu at the end",
              before_kill, at_restart, landed);
    verify();
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&stopping, true);
    for (; started > 0; started--) {
        pthread_join(workers[started - 1].thread, NULL); /* before the cluster goes */
    }
    it_cluster_free(cl);
    cl = NULL;
    for (unsigned i = 0; i < N_THREADS; i++) {
        free(workers[i].landed);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_balance_through_failover, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
