/* Edge device-write journal: durable across reopen (a real LMDB in a temp
 * dir), bounded, FIFO under concurrent appends, delivery to a fake
 * control-plane node with failover from a dead one and retries after a
 * 503, final per-write errors, a batch refused as a whole split until the
 * bad write is found, and edge_journal_call. The fake node takes the first
 * free port from 26451 (other build trees may run this test at the same
 * time); the dead one is port 1, where nothing listens. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>

#include "common/config.h"
#include "common/err.h"
#include "common/http.h"
#include "edge/journal.h"

#define TOKEN      "journal-test-token-0123"
#define DEAD_ADDR  "127.0.0.1:1" /* nothing listens here */
#define FAKE_PORT  26451
#define FAKE_PORTS 48
#define N_THREADS  8
#define PER_THREAD 150

static char dir[256];
static struct tvmw_config conf;
static char fake_addr[32]; /* where the fake node listens (fake_start) */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tvmw-test-edge-journal-XXXXXX");
    memset(&conf, 0, sizeof(conf));
    snprintf(conf.admin_token, sizeof(conf.admin_token), "%s", TOKEN);
    conf.journal.max_writes = 100000;
    conf.http.request_timeout_ms = 2000;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[400];
    snprintf(p, sizeof(p), "%s/journal/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/journal/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/journal", dir);
    rmdir(p);
    rmdir(dir);
    return 0;
}

static void set_nodes(unsigned n, const char *const *addrs)
{
    conf.n_nodes = n;
    for (unsigned i = 0; i < n; i++) {
        conf.nodes[i].id = i + 1;
        snprintf(conf.nodes[i].http_address, sizeof(conf.nodes[i].http_address), "%s", addrs[i]);
    }
}

static json_t *write_of(const char *op, int seq)
{
    return json_pack("{s:s, s:i, s:i, s:I}", "op", op, "client_id", 1, "seq", seq, "ms",
                     (json_int_t)1700000000000);
}

/* ---- the fake control-plane node ------------------------------------------------ */

enum fake_mode { FAKE_OK, FAKE_REFUSE_POISON, FAKE_ALWAYS_503 };

static struct {
    pthread_mutex_t mu;
    enum fake_mode mode;
    unsigned requests;
    unsigned bad_auth;
    json_t *received; /* every write of every answered batch, in order */
    json_t *keys;     /* Idempotency-Key of each request */
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool has_op(json_t *writes, const char *op)
{
    size_t i;
    json_t *w;
    json_array_foreach(writes, i, w)
    {
        const char *o = json_string_value(json_object_get(w, "op"));
        if (o != NULL && strcmp(o, op) == 0) {
            return true;
        }
    }
    return false;
}

static void fake_handle(void *ctx, struct tvmw_http_req *req)
{
    (void)ctx;
    const char *auth = tvmw_http_header(req, "Authorization");
    const char *idem = tvmw_http_header(req, "Idempotency-Key");
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    json_t *writes = json_object_get(body, "writes");
    pthread_mutex_lock(&fake.mu);
    fake.requests++;
    enum fake_mode mode = fake.mode;
    if (auth == NULL || strcmp(auth, "Bearer " TOKEN) != 0) {
        fake.bad_auth++;
    }
    json_array_append_new(fake.keys, json_string(idem ? idem : ""));
    pthread_mutex_unlock(&fake.mu);
    if (strcmp(req->path, "/edge/v1/device-writes") != 0 || !json_is_array(writes)) {
        tvmw_http_reply_error(req, 404, "not_found", "no route");
    } else if (mode == FAKE_ALWAYS_503) {
        tvmw_http_reply_error(req, 503, "unavailable", "try later");
    } else if (mode == FAKE_REFUSE_POISON && has_op(writes, "poison")) {
        tvmw_http_reply_error(req, 400, "bad_request", "poisoned batch");
    } else {
        json_t *results = json_array();
        size_t i;
        json_t *w;
        json_array_foreach(writes, i, w)
        {
            const char *op = json_string_value(json_object_get(w, "op"));
            json_array_append_new(
                results, op && strcmp(op, "bad") == 0
                             ? json_pack("{s:i, s:s}", "error", 1, "message", "account not found")
                         : op && strcmp(op, "account_register") == 0
                             ? json_pack("{s:i, s:s, s:i}", "error", 0, "abonement", "1000001",
                                         "account_id", 5)
                             : json_pack("{s:i}", "error", 0));
        }
        pthread_mutex_lock(&fake.mu);
        json_array_extend(fake.received, writes);
        pthread_mutex_unlock(&fake.mu);
        json_t *out = json_pack("{s:o}", "results", results);
        tvmw_http_reply_json(req, 200, out);
        json_decref(out);
    }
    json_decref(body);
}

static struct tvmw_http_server *fake_start(enum fake_mode mode)
{
    struct tvmw_http_server *srv = NULL;
    struct tvmw_http_server_conf hc = {.address = fake_addr,
                                       .max_body_bytes = 4u << 20,
                                       .max_connections = 64,
                                       .idle_timeout_s = 30,
                                       .thread_per_connection = true};
    pthread_mutex_lock(&fake.mu);
    fake.mode = mode;
    fake.requests = 0;
    fake.bad_auth = 0;
    json_decref(fake.received);
    json_decref(fake.keys);
    fake.received = json_array();
    fake.keys = json_array();
    pthread_mutex_unlock(&fake.mu);
    int rv = -1;
    for (unsigned p = 0; rv != 0 && p < FAKE_PORTS; p++) {
        snprintf(fake_addr, sizeof(fake_addr), "127.0.0.1:%u", FAKE_PORT + p);
        rv = tvmw_http_server_start(&hc, fake_handle, NULL, &srv);
    }
    assert_int_equal(rv, 0);
    return srv;
}

static void fake_stop(struct tvmw_http_server *srv)
{
    tvmw_http_server_stop(srv);
    pthread_mutex_lock(&fake.mu);
    json_decref(fake.received);
    json_decref(fake.keys);
    fake.received = fake.keys = NULL;
    pthread_mutex_unlock(&fake.mu);
}

/* What the fake node saw, copied out: assertions never run under its
 * lock (a failed one jumps out and would leave it held). */
struct seen {
    json_t *received;
    json_t *keys;
    unsigned requests;
    unsigned bad_auth;
};

static void fake_seen(struct seen *s)
{
    pthread_mutex_lock(&fake.mu);
    s->received = json_deep_copy(fake.received);
    s->keys = json_deep_copy(fake.keys);
    s->requests = fake.requests;
    s->bad_auth = fake.bad_auth;
    pthread_mutex_unlock(&fake.mu);
}

static void seen_free(struct seen *s)
{
    json_decref(s->received);
    json_decref(s->keys);
}

static void fake_mode(enum fake_mode mode)
{
    pthread_mutex_lock(&fake.mu);
    fake.mode = mode;
    pthread_mutex_unlock(&fake.mu);
}

/* Waits until nothing is pending; false after timeout_ms. */
static bool wait_drained(struct edge_journal *j, unsigned timeout_ms)
{
    uint64_t t0 = now_ms();
    struct edge_journal_status st;
    do {
        edge_journal_status(j, &st);
        if (st.pending == 0) {
            return true;
        }
        sleep_ms(10);
    } while (now_ms() - t0 < timeout_ms);
    return false;
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_durable_and_bounded(void **state)
{
    (void)state;
    struct edge_journal *j;
    struct edge_journal_status st;
    conf.journal.max_writes = 5;
    set_nodes(0, NULL);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    json_t *w1 = write_of("session_open", 1), *w2 = write_of("session_close", 2);
    json_object_set_new(w2, "reqid", json_string("0123456789abcdef0123456789abcdef"));
    assert_int_equal(edge_journal_append(j, w1), 0);
    assert_int_equal(edge_journal_append(j, w2), 0);
    const char *rid = json_string_value(json_object_get(w1, "reqid"));
    assert_non_null(rid);
    assert_int_equal(strlen(rid), 32);
    assert_string_equal(json_string_value(json_object_get(w2, "reqid")),
                        "0123456789abcdef0123456789abcdef");
    json_t *w3 = write_of("logout_all", 3);
    assert_int_equal(edge_journal_append(j, w3), 0);
    json_decref(w1);
    json_decref(w2);
    json_decref(w3);

    /* Refused: not an object, too big. */
    json_t *arr = json_array();
    assert_int_equal(edge_journal_append(j, arr), TVMW_EMALFORMED);
    json_decref(arr);
    json_t *big = write_of("settings_save", 4);
    char *s = malloc(EDGE_JOURNAL_WRITE_MAX_BYTES + 1);
    memset(s, 'x', EDGE_JOURNAL_WRITE_MAX_BYTES);
    s[EDGE_JOURNAL_WRITE_MAX_BYTES] = '\0';
    json_object_set_new(big, "pad", json_string(s));
    free(s);
    assert_int_equal(edge_journal_append(j, big), TVMW_ETOOBIG);
    json_decref(big);
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.appended_total, 3);
    edge_journal_close(j);

    /* Reopened: still there; the bound holds across the reopen. */
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, 3);
    assert_int_equal(st.appended_total, 0);
    for (int i = 0; i < 3; i++) {
        json_t *w = write_of("last_seen", 10 + i);
        assert_int_equal(edge_journal_append(j, w), i < 2 ? 0 : TVMW_EBUSY);
        json_decref(w);
    }
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, 5);
    assert_int_equal(st.dropped_total, 1);
    edge_journal_close(j);

    /* Delivered in order after yet another reopen, with their reqids. */
    struct tvmw_http_server *srv = fake_start(FAKE_OK);
    const char *addrs[] = {fake_addr};
    set_nodes(1, addrs);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    assert_int_equal(edge_journal_start(j), 0);
    assert_true(wait_drained(j, 5000));
    edge_journal_status(j, &st);
    assert_int_equal(st.sent_total, 5);
    struct seen seen;
    fake_seen(&seen);
    assert_int_equal(json_array_size(seen.received), 5);
    static const int want[] = {1, 2, 3, 10, 11};
    for (size_t i = 0; i < 5; i++) {
        json_t *w = json_array_get(seen.received, i);
        assert_int_equal(json_integer_value(json_object_get(w, "seq")), want[i]);
        assert_int_equal(strlen(json_string_value(json_object_get(w, "reqid"))), 32);
    }
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(seen.received, 1), "reqid")),
        "0123456789abcdef0123456789abcdef");
    assert_int_equal(seen.bad_auth, 0);
    assert_int_equal(strlen(json_string_value(json_array_get(seen.keys, 0))), 64);
    seen_free(&seen);
    edge_journal_close(j);
    fake_stop(srv);

    /* Removal is durable too. */
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, 0);
    edge_journal_close(j);
}

struct appender {
    struct edge_journal *j;
    int thread;
};

static void *append_many(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        json_t *w = json_pack("{s:s, s:i, s:i, s:i, s:i}", "op", "session_close", "client_id", 1,
                              "ms", 1, "thread", a->thread, "seq", i);
        if (edge_journal_append(a->j, w) != 0) {
            json_decref(w);
            return (void *)1;
        }
        json_decref(w);
    }
    return NULL;
}

static void test_delivery_failover_and_order(void **state)
{
    (void)state;
    struct edge_journal *j;
    struct edge_journal_status st;
    struct tvmw_http_server *srv = fake_start(FAKE_ALWAYS_503);
    const char *addrs[] = {DEAD_ADDR, fake_addr};
    set_nodes(2, addrs);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);

    /* Appended while no node takes writes (the sender runs already): one
     * refuses connections, the other answers 503. */
    assert_int_equal(edge_journal_start(j), 0);
    pthread_t th[N_THREADS];
    struct appender ap[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        ap[t] = (struct appender){.j = j, .thread = t};
        assert_int_equal(pthread_create(&th[t], NULL, append_many, &ap[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    json_t *bad = write_of("bad", 0);
    assert_int_equal(edge_journal_append(j, bad), 0);
    json_decref(bad);
    sleep_ms(300);
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, N_THREADS * PER_THREAD + 1);
    assert_true(st.retries_total > 0);

    /* The node takes writes again: everything arrives, in order. */
    struct seen seen;
    fake_seen(&seen);
    assert_int_equal(json_array_size(seen.received), 0);
    seen_free(&seen);
    fake_mode(FAKE_OK);
    assert_true(wait_drained(j, 20000));
    edge_journal_status(j, &st);
    assert_int_equal(st.sent_total, N_THREADS * PER_THREAD + 1);
    assert_int_equal(st.failed_total, 1);
    assert_int_equal(st.appended_total, N_THREADS * PER_THREAD + 1);
    fake_seen(&seen);
    assert_int_equal(json_array_size(seen.received), N_THREADS * PER_THREAD + 1);
    int next[N_THREADS] = {0};
    size_t i;
    json_t *w;
    json_array_foreach(seen.received, i, w)
    {
        json_t *t = json_object_get(w, "thread");
        if (t == NULL) {
            continue;
        }
        int ti = (int)json_integer_value(t);
        assert_int_equal(json_integer_value(json_object_get(w, "seq")), next[ti]);
        next[ti]++;
    }
    assert_true(seen.requests >= 3); /* 503s, then the batches */
    seen_free(&seen);
    edge_journal_close(j);
    fake_stop(srv);
}

static void test_refused_batch_split(void **state)
{
    (void)state;
    struct edge_journal *j;
    struct edge_journal_status st;
    struct tvmw_http_server *srv = fake_start(FAKE_REFUSE_POISON);
    const char *addrs[] = {fake_addr};
    set_nodes(1, addrs);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    static const char *const ops[] = {"session_open", "session_close", "poison", "logout_all",
                                      "last_seen"};
    for (int i = 0; i < 5; i++) {
        json_t *w = write_of(ops[i], i);
        assert_int_equal(edge_journal_append(j, w), 0);
        json_decref(w);
    }
    assert_int_equal(edge_journal_start(j), 0);
    assert_true(wait_drained(j, 5000));
    edge_journal_status(j, &st);
    assert_int_equal(st.failed_total, 1);
    assert_int_equal(st.sent_total, 5);
    struct seen seen;
    fake_seen(&seen);
    assert_int_equal(json_array_size(seen.received), 4);
    static const int want[] = {0, 1, 3, 4};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            json_integer_value(json_object_get(json_array_get(seen.received, i), "seq")), want[i]);
    }
    seen_free(&seen);
    edge_journal_close(j);
    fake_stop(srv);
}

static void test_call(void **state)
{
    (void)state;
    struct edge_journal *j;
    json_t *res = NULL;
    static const char *const dead[] = {DEAD_ADDR};
    set_nodes(1, dead);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    json_t *w = write_of("account_register", 1);
    uint64_t t0 = now_ms();
    assert_int_equal(edge_journal_call(j, w, 500, &res), TVMW_EIO);
    assert_true(now_ms() - t0 < 3000);
    assert_null(json_object_get(w, "reqid")); /* w itself is left alone */
    edge_journal_close(j);

    struct tvmw_http_server *srv = fake_start(FAKE_OK);
    const char *addrs[] = {DEAD_ADDR, fake_addr};
    set_nodes(2, addrs);
    assert_int_equal(edge_journal_open(dir, &conf, &j), 0);
    for (int i = 0; i < 3; i++) { /* whichever node it starts with */
        assert_int_equal(edge_journal_call(j, w, 3000, &res), 0);
        assert_string_equal(json_string_value(json_object_get(res, "abonement")), "1000001");
        assert_int_equal(json_integer_value(json_object_get(res, "account_id")), 5);
        json_decref(res);
    }
    struct edge_journal_status st;
    edge_journal_status(j, &st);
    assert_int_equal(st.pending, 0); /* not journaled */
    struct seen seen;
    fake_seen(&seen);
    assert_int_equal(
        strlen(json_string_value(json_object_get(json_array_get(seen.received, 0), "reqid"))), 32);
    seen_free(&seen);
    fake_mode(FAKE_ALWAYS_503);
    assert_int_equal(edge_journal_call(j, w, 600, &res), -ETIMEDOUT);
    fake_mode(FAKE_REFUSE_POISON);
    json_t *p = write_of("poison", 2);
    assert_int_equal(edge_journal_call(j, p, 3000, &res), TVMW_EMALFORMED);
    json_decref(p);
    json_decref(w);
    edge_journal_close(j);
    fake_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_durable_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_failover_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_batch_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
