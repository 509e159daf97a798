/* The stream-token check (edge/tokencheck.h) on a real edge store: every
 * allow and deny reason per dialect, the derived index following feed
 * batches and snapshot swaps (revocation, key rotation and retirement),
 * the session table, request parsing, the allocation-free HMAC, and that
 * the hot path allocates nothing, in the decision and through the HTTP
 * server's fast route with keep-alive. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/err.h"
#include "common/http.h"
#include "common/sign.h"
#include "edge/dauth.h"
#include "edge/feed.h"
#include "edge/proto.h"
#include "edge/store.h"
#include "edge/tcindex.h"
#include "edge/tcreq.h"
#include "edge/tcsess.h"
#include "edge/tokencheck.h"

/* ---- counting allocations ------------------------------------------------------------ */

/* The executable's malloc family interposes on every library's, so this
 * counts what LMDB, OpenSSL and libmicrohttpd allocate too. Not in the
 * sanitizer builds: ASan and TSan own malloc there (and call it before this
 * program is initialised), so the counts are the normal build's check. */
static _Atomic long n_allocs;
static _Atomic bool counting;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTS_ALLOCS 0
#else
#define COUNTS_ALLOCS 1
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);

void *malloc(size_t n)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add(&n_allocs, 1);
    }
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add(&n_allocs, 1);
    }
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add(&n_allocs, 1);
    }
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* ---- fixture ------------------------------------------------------------------------- */

#define MAP_MB 64
#define TTL    3600
#define SKEW   30

static char dir[256];
static struct tvmw_config conf;
static struct edge_store *store;
static struct edge_tokencheck *tc;
static uint64_t now_s;
static uint64_t next_index = 100;
static const uint8_t secret1[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t secret2[32] = "retired-key-retired-key-retired!";
static const uint8_t secret3[32] = "the-third-key-the-third-key-3333";

/* base64 (standard) of 32 bytes into out (45 bytes). */
static void b64(const uint8_t *in, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, 32);
}

static void put(struct edge_store_load *l, unsigned db, uint64_t id, const char *json)
{
    uint8_t k[8];
    tvmw_put_be64(k, id);
    assert_int_equal(edge_store_load_put(l, db, k, 8, (const uint8_t *)json, strlen(json)), 0);
}

static size_t rel_key(const char *name, uint64_t from, uint64_t to, uint8_t *k)
{
    size_t n = strlen(name);
    memcpy(k, name, n);
    k[n] = '/';
    tvmw_put_be64(k + n + 1, from);
    tvmw_put_be64(k + n + 9, to);
    return n + 17;
}

static void rel(struct edge_store_load *l, const char *name, uint64_t from, uint64_t to)
{
    uint8_t k[64];
    size_t n = rel_key(name, from, to, k);
    assert_int_equal(edge_store_load_put(l, EDGE_DB_REL, k, n, (const uint8_t *)"{}", 2), 0);
}

static const char *key_json(unsigned kid, const uint8_t *secret, const char *state)
{
    static char buf[4][256];
    static unsigned i;
    char s[64];
    b64(secret, s);
    char *o = buf[i++ % 4];
    snprintf(o, 256,
             "{\"kid\":%u,\"secret\":\"%s\",\"state\":\"%s\",\"created_ms\":1,\"retired_ms\":0}",
             kid, s, state);
    return o;
}

/* Accounts: 10 (tariff 5 itself), 11 (through customer 101's tariff 6),
 * 12 inactive, 13 multi-login, 20 of client 2. Channels: 50 "ch50" (5, 6),
 * 51 no stream name (5), 52 disabled (5), 53 in no tariff, 60 of client 2. */
static void load_fixture(struct edge_store *s, uint64_t index, bool with_keys)
{
    struct edge_store_load *l;
    assert_int_equal(edge_store_load_begin(s, &l), 0);
    put(l, EDGE_DB_CLIENTS, 1,
        "{\"id\":1,\"name\":\"one\",\"api_key\":\"k\",\"settings\":{\"stream_token_ttl_s\":3600,"
        "\"stream_max_sessions\":2}}");
    put(l, EDGE_DB_CLIENTS, 2, "{\"id\":2,\"name\":\"two\",\"api_key\":\"k2\",\"settings\":{}}");
    put(l, EDGE_DB_ACCOUNTS, 10,
        "{\"client_id\":1,\"customer_id\":100,\"active\":1,\"logout_before_ms\":0,"
        "\"deactivation_date\":\"\"}");
    put(l, EDGE_DB_ACCOUNTS, 11, "{\"client_id\":1,\"customer_id\":101,\"active\":1}");
    put(l, EDGE_DB_ACCOUNTS, 12, "{\"client_id\":1,\"customer_id\":100,\"active\":0}");
    put(l, EDGE_DB_ACCOUNTS, 13,
        "{\"client_id\":1,\"customer_id\":100,\"active\":1,\"allow_multiple_login\":1}");
    put(l, EDGE_DB_ACCOUNTS, 20, "{\"client_id\":2,\"customer_id\":200,\"active\":1}");
    put(l, EDGE_DB_CHANNELS, 50, "{\"client_id\":1,\"stream_name\":\"ch50\",\"enabled\":1}");
    put(l, EDGE_DB_CHANNELS, 51, "{\"client_id\":1,\"stream_name\":\"\",\"enabled\":1}");
    put(l, EDGE_DB_CHANNELS, 52, "{\"client_id\":1,\"stream_name\":\"ch52\",\"enabled\":0}");
    put(l, EDGE_DB_CHANNELS, 53, "{\"client_id\":1,\"stream_name\":\"ch53\"}");
    put(l, EDGE_DB_CHANNELS, 60, "{\"client_id\":2,\"stream_name\":\"ch50\",\"enabled\":1}");
    rel(l, "cust_acc", 100, 10); /* as the control plane links them */
    rel(l, "cust_acc", 101, 11);
    rel(l, "cust_acc", 100, 12);
    rel(l, "cust_acc", 100, 13);
    rel(l, "cust_acc", 200, 20);
    rel(l, "acc_tar", 10, 5);
    rel(l, "acc_tar", 12, 5);
    rel(l, "acc_tar", 13, 5);
    rel(l, "acc_tar", 20, 7);
    rel(l, "cust_tar", 101, 6);
    rel(l, "tar_chan", 5, 50);
    rel(l, "tar_chan", 5, 51);
    rel(l, "tar_chan", 5, 52);
    rel(l, "tar_chan", 6, 50);
    rel(l, "tar_chan", 7, 60);
    if (with_keys) {
        put(l, EDGE_DB_KEYS, 1, key_json(1, secret1, "active"));
        put(l, EDGE_DB_KEYS, 2, key_json(2, secret2, "retired"));
    }
    assert_int_equal(edge_store_load_commit(l, index), 0);
}

static void apply_put(unsigned db, const uint8_t *key, size_t key_len, const char *json)
{
    struct edge_change c = {.index = next_index,
                            .db = db,
                            .key = key,
                            .key_len = key_len,
                            .value = (const uint8_t *)json,
                            .value_len = strlen(json)};
    assert_int_equal(edge_store_apply(store, &c, 1, next_index++), 0);
}

static void apply_id(unsigned db, uint64_t id, const char *json)
{
    uint8_t k[8];
    tvmw_put_be64(k, id);
    apply_put(db, k, 8, json);
}

static void apply_del_rel(const char *name, uint64_t from, uint64_t to)
{
    uint8_t k[64];
    size_t n = rel_key(name, from, to, k);
    struct edge_change c = {
        .index = next_index, .db = EDGE_DB_REL, .del = true, .key = k, .key_len = n};
    assert_int_equal(edge_store_apply(store, &c, 1, next_index++), 0);
}

static void rm_env(const char *d)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/data.mdb", d);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", d);
    unlink(p);
    rmdir(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tvmw-test-tokencheck-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    char err[256];
    static const char cfg[] =
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/tmp\","
        "\"nodes\":[{\"id\":1,\"raft_address\":\"127.0.0.1:1\",\"http_address\":"
        "\"127.0.0.1:2\"}],\"stream_auth\":{\"skew_s\":30,\"auth_duration_s\":60,"
        "\"session_accounts\":1024,\"log_denies_per_s\":5}}";
    if (tvmw_config_parse(cfg, strlen(cfg), &conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    if (edge_store_open(dir, MAP_MB, &store) != 0) {
        return -1;
    }
    struct edge_tokencheck_opts o = {.conf = &conf, .store = store};
    if (edge_tokencheck_new(&o, &tc) != 0) {
        return -1;
    }
    now_s = (uint64_t)time(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    edge_tokencheck_free(tc);
    tc = NULL;
    edge_store_close(store);
    store = NULL;
    char p[300];
    static const char *const subs[] = {"state", "state.new", "state.old"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        rm_env(p);
    }
    snprintf(p, sizeof(p), "%s/LOCK", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

/* ---- tokens and requests ------------------------------------------------------------- */

static void ring_of(struct edge_keyring *r, uint16_t kid, const uint8_t *secret)
{
    memset(r, 0, sizeof(*r));
    r->n = 1;
    r->k[0].kid = kid;
    memcpy(r->k[0].secret, secret, 32);
    r->k[0].secret_len = 32;
}

struct tok {
    char text[EDGE_TOKEN_LEN + 1];
};

static struct tok token_ex(uint16_t kid, const uint8_t *secret, uint8_t kind, uint32_t client,
                           uint64_t account, uint64_t content, int64_t expires_in,
                           const char *bind_ip)
{
    struct edge_keyring ring;
    struct tok t;
    ring_of(&ring, kid, secret);
    struct edge_token et = {.kind = kind,
                            .client = client,
                            .account = account,
                            .content = content,
                            /* as if made with the fixture's TTL */
                            .issued_s = (uint32_t)((int64_t)now_s + expires_in - TTL),
                            .expiry_s = (uint32_t)((int64_t)now_s + expires_in),
                            .ip_bind = bind_ip ? edge_token_ip_bind(bind_ip) : 0};
    edge_token_issue(&ring, &et, t.text);
    return t;
}

static struct tok token(uint64_t account, uint64_t channel)
{
    return token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, account, channel, TTL, NULL);
}

/* A parsed request: raw query and "Name: value" headers. */
struct rq {
    struct edge_tc_req q;
    char qbuf[2048];
    char hbuf[2048];
};

static void build(struct rq *r, const char *query, const char *const *headers)
{
    edge_tc_req_init(&r->q);
    edge_tc_req_query(&r->q, query, strlen(query), r->qbuf, sizeof(r->qbuf));
    size_t used = 0;
    for (const char *const *h = headers; h != NULL && *h != NULL; h++) {
        const char *colon = strchr(*h, ':');
        size_t nl = (size_t)(colon - *h), vl = strlen(colon + 2);
        char *name = r->hbuf + used;
        memcpy(name, *h, nl);
        name[nl] = '\0';
        char *value = name + nl + 1;
        memcpy(value, colon + 2, vl + 1);
        used += nl + vl + 2;
        edge_tc_req_header(&r->q, name, nl, value, vl);
    }
    edge_tc_req_finish(&r->q);
}

static struct edge_tc_answer check_at(uint64_t at, const char *query, const char *const *headers)
{
    static struct rq r; /* static: big, and one at a time */
    struct edge_tc_answer a;
    build(&r, query, headers);
    edge_tokencheck_decide(tc, &r.q, at, &a);
    return a;
}

static struct edge_tc_answer check(const char *query, const char *const *headers)
{
    return check_at(now_s, query, headers);
}

#define H(...) ((const char *const[]){__VA_ARGS__, NULL})

#define assert_deny(a, st, why)                                                                    \
    do {                                                                                           \
        struct edge_tc_answer a_ = (a);                                                            \
        assert_string_equal(edge_tc_reason_name(a_.reason), edge_tc_reason_name(why));             \
        assert_int_equal(a_.status, (st));                                                         \
    } while (0)

/* A Flussonic request (§1.2) for name with tok. */
static const char *flu(const char *name, const struct tok *t, const char *type, const char *sess)
{
    static char q[512];
    snprintf(q, sizeof(q),
             "name=%s&proto=hls&ip=203.0.113.7&request_type=%s&request_number=0&session_id=%s&"
             "stream_clients=3&total_clients=118&token=%s&qs=token%%3D%s&user_agent=VLC%%2F3.0&"
             "referer=",
             name, type, sess, t->text, t->text);
    return q;
}

/* ---- tests: allow and deny per dialect ----------------------------------------------- */

static void test_flussonic(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token(10, 50);
    struct edge_tc_answer a = check(flu("ch50", &t, "new_session", "s-1"), NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.status, 200);
    assert_true(a.with_auth_duration);
    assert_int_equal(a.auth_duration_s, 60);
    assert_int_equal(a.user_id, 10);
    assert_int_equal(a.max_sessions, 2);
    /* The same (session_id, request_number) again: the same answer. */
    a = check(flu("ch50", &t, "new_session", "s-1"), NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);

    /* Replayed for another stream; a stream no channel has. */
    assert_deny(check(flu("ch53", &t, "new_session", "s-2"), NULL), 403, EDGE_TC_WRONG_STREAM);
    assert_deny(check(flu("nosuch", &t, "new_session", "s-2"), NULL), 403, EDGE_TC_WRONG_STREAM);
    a = check(flu("", &t, "new_session", "s-2"), NULL);
    assert_int_equal(a.reason, EDGE_TC_WRONG_STREAM);

    /* A channel without stream_name is named by its id. */
    struct tok t51 = token(10, 51);
    assert_int_equal(check(flu("51", &t51, "new_session", "s-3"), NULL).reason, EDGE_TC_ALLOW);
    assert_int_equal(check(flu("ch50", &t51, "new_session", "s-3"), NULL).reason,
                     EDGE_TC_WRONG_STREAM);

    /* Expired: refused for a new session with a short negative cache,
     * allowed for an update of a running one (§1.5 rule 3); the skew. */
    struct tok old = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, -SKEW - 1, NULL);
    a = check(flu("ch50", &old, "new_session", "s-4"), NULL);
    assert_deny(a, 403, EDGE_TC_TOKEN_EXPIRED);
    assert_true(a.with_auth_duration);
    assert_int_equal(a.auth_duration_s, 10);
    a = check(flu("ch50", &old, "update_session", "s-4"), NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.auth_duration_s, 10); /* floor: until expiry is past */
    struct tok skewed = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, -SKEW + 5, NULL);
    assert_int_equal(check(flu("ch50", &skewed, "new_session", "s-5"), NULL).reason, EDGE_TC_ALLOW);
    /* X-AuthDuration never runs past the token (plus skew). */
    struct tok soon = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, 20, NULL);
    assert_int_equal(check(flu("ch50", &soon, "new_session", "s-6"), NULL).auth_duration_s,
                     20 + SKEW);

    /* Malformed: a flipped character, truncated, not base64, oversized,
     * an unknown key id; missing or empty. */
    struct tok bad = t;
    bad.text[10] = bad.text[10] == 'A' ? 'B' : 'A';
    assert_deny(check(flu("ch50", &bad, "new_session", "s-7"), NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    char q[600];
    snprintf(q, sizeof(q), "name=ch50&request_type=new_session&session_id=x&token=%.60s", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    snprintf(q, sizeof(q), "name=ch50&request_type=new_session&session_id=x&token=%.69s*", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    char longtok[400];
    memset(longtok, 'A', 300);
    longtok[300] = '\0';
    snprintf(q, sizeof(q), "name=ch50&request_type=new_session&session_id=x&token=%s", longtok);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    struct tok alien = token_ex(9, secret3, EDGE_TOKEN_LIVE, 1, 10, 50, TTL, NULL);
    assert_deny(check(flu("ch50", &alien, "new_session", "s-8"), NULL), 403,
                EDGE_TC_TOKEN_MALFORMED);
    a = check("name=ch50&request_type=new_session&session_id=x&ip=1.2.3.4", NULL);
    assert_deny(a, 403, EDGE_TC_TOKEN_MISSING);
    assert_false(a.with_auth_duration);
    assert_deny(check("name=ch50&request_type=new_session&session_id=x&token=", NULL), 403,
                EDGE_TC_TOKEN_MISSING);
    /* Flussonic's copy of the play query when token= is absent. */
    snprintf(q, sizeof(q),
             "name=ch50&request_type=new_session&session_id=q&qs=a%%3D1%%26token%%3D%s", t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    /* Another tenant's client_id. */
    snprintf(q, sizeof(q), "%s&client_id=2", flu("ch50", &t, "new_session", "s-9"));
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    snprintf(q, sizeof(q), "%s&client_id=1", flu("ch50", &t, "new_session", "s-9"));
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* Account and entitlement. */
    struct tok inactive = token(12, 50);
    a = check(flu("ch50", &inactive, "new_session", "s-10"), NULL);
    assert_deny(a, 403, EDGE_TC_ACCOUNT_INACTIVE);
    assert_true(a.with_auth_duration);
    struct tok gone = token(99, 50);
    assert_deny(check(flu("ch50", &gone, "new_session", "s-10"), NULL), 403,
                EDGE_TC_ACCOUNT_INACTIVE);
    struct tok other_tenant = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 20, 60, TTL, NULL);
    assert_deny(check(flu("ch50", &other_tenant, "new_session", "s-10"), NULL), 403,
                EDGE_TC_ACCOUNT_INACTIVE);
    struct tok disabled = token(10, 52);
    assert_deny(check(flu("ch52", &disabled, "new_session", "s-11"), NULL), 403,
                EDGE_TC_NOT_ENTITLED);
    struct tok unsub = token(10, 53);
    a = check(flu("ch53", &unsub, "new_session", "s-11"), NULL);
    assert_deny(a, 403, EDGE_TC_NOT_ENTITLED);
    assert_true(a.with_auth_duration);
    struct tok via_customer = token(11, 50);
    assert_int_equal(check(flu("ch50", &via_customer, "new_session", "s-12"), NULL).reason,
                     EDGE_TC_ALLOW);
    struct tok not_via_customer = token(11, 51);
    assert_int_equal(check(flu("51", &not_via_customer, "new_session", "s-12"), NULL).reason,
                     EDGE_TC_NOT_ENTITLED);
    struct tok vod = token_ex(1, secret1, EDGE_TOKEN_VOD, 1, 10, 50, TTL, NULL);
    assert_int_equal(check(flu("ch50", &vod, "new_session", "s-13"), NULL).reason,
                     EDGE_TC_NOT_ENTITLED);
    struct tok archive = token_ex(1, secret1, EDGE_TOKEN_ARCHIVE, 1, 10, 50, TTL, NULL);
    assert_int_equal(check(flu("ch50", &archive, "new_session", "s-13"), NULL).reason,
                     EDGE_TC_ALLOW);

    /* Legacy Flussonic: no session_id, no request_number. */
    snprintf(q, sizeof(q),
             "token=%s&ip=203.0.113.7&name=ch50&referer=&type=hls&request_type=new_session&"
             "stream_clients=1&total_clients=2",
             t.text);
    a = check(q, NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.status, 200);
}

static void test_ip_binding(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, TTL, "203.0.113.7");
    assert_int_equal(check(flu("ch50", &t, "new_session", "ip-1"), NULL).reason, EDGE_TC_ALLOW);
    char q[600];
    snprintf(q, sizeof(q),
             "name=ch50&request_type=new_session&session_id=ip-2&ip=10.0.0.1&token=%s", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_IP_MISMATCH);
    snprintf(q, sizeof(q), "name=ch50&request_type=new_session&session_id=ip-2&token=%s", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_IP_MISMATCH);
    snprintf(q, sizeof(q),
             "name=ch50&request_type=new_session&session_id=ip-3&ip=::ffff:203.0.113.7&token=%s",
             t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    /* The proxies give the viewer as X-Real-IP (both spellings). */
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(
        check(q, H("X-Session-ID: a1", "X-Channel-ID: ch50", "X-Real-IP: 203.0.113.7")).reason,
        EDGE_TC_ALLOW);
    assert_deny(check(q, H("X-Session-Id: a2", "X-Real-Path: /play/ch50/index.m3u8",
                           "X-Real-Ip: 198.51.100.1")),
                403, EDGE_TC_IP_MISMATCH);
    assert_int_equal(
        check("", H("X-Original-URI: /ch50/index.m3u8?token=x", "X-Real-IP: 203.0.113.7")).reason,
        EDGE_TC_TOKEN_MALFORMED);
    char uri[300];
    snprintf(uri, sizeof(uri), "X-Original-URI: /ch50/index.m3u8?token=%s", t.text);
    assert_int_equal(check("", H(uri, "X-Real-IP: 203.0.113.7")).status, 204);
    assert_deny(check("", H(uri, "X-Real-IP: 203.0.113.8")), 403, EDGE_TC_IP_MISMATCH);
    /* An IPv6 viewer is bound through a digest of its text. */
    struct tok t6 = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, TTL, "2001:db8::7");
    snprintf(q, sizeof(q),
             "name=ch50&request_type=new_session&session_id=ip-6&ip=2001:db8::7&token=%s", t6.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
}

static void test_astra_nginx_generic(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token(10, 50);
    char q[600], uri[400];
    /* Astra: the viewer's query appended; X-Channel-ID, else X-Real-Path. */
    snprintf(q, sizeof(q), "token=%s&foo=bar", t.text);
    struct edge_tc_answer a =
        check(q, H("X-Session-ID: 8d1f63a2c4", "X-Channel-ID: ch50", "X-Real-IP: 203.0.113.7",
                   "X-Real-Path: /play/ch50/index.m3u8", "X-Real-UA: Lavf/60.3.100",
                   "X-Real-Host: live.example.com"));
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.user_id, 10);
    assert_int_equal(check(q, H("X-Session-Id: 8d1f", "X-Real-Path: /play/ch50/index.m3u8",
                                "X-Real-Ip: 203.0.113.7", "X-Real-Origin: https://live.example"))
                         .reason,
                     EDGE_TC_ALLOW);
    assert_deny(check(q, H("X-Session-ID: 8d1f", "X-Channel-ID: ch51")), 403, EDGE_TC_WRONG_STREAM);
    assert_deny(check(q, H("X-Session-ID: 8d1f", "X-Real-Path: /play/ch500/index.m3u8")), 403,
                EDGE_TC_WRONG_STREAM);
    a = check("foo=bar", H("X-Session-ID: 8d1f", "X-Channel-ID: ch50"));
    assert_deny(a, 401, EDGE_TC_TOKEN_MISSING);
    struct tok old = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, -3600, NULL);
    snprintf(q, sizeof(q), "token=%s", old.text);
    a = check(q, H("X-Session-ID: 8d1f", "X-Channel-ID: ch50"));
    assert_deny(a, 403, EDGE_TC_TOKEN_EXPIRED);
    assert_false(a.with_auth_duration);
    struct tok inactive = token(12, 50);
    snprintf(q, sizeof(q), "token=%s", inactive.text);
    assert_deny(check(q, H("X-Session-ID: 8d1f", "X-Channel-ID: ch50")), 403,
                EDGE_TC_ACCOUNT_INACTIVE);

    /* nginx auth_request: the token and the stream from X-Original-URI. */
    snprintf(uri, sizeof(uri), "X-Original-URI: /live/ch50/index.m3u8?a=1&token=%s", t.text);
    a = check("", H(uri, "X-Real-IP: 203.0.113.7"));
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.status, 204);
    snprintf(uri, sizeof(uri), "X-Original-URI: /live/ch53/index.m3u8?token=%s", t.text);
    assert_deny(check("", H(uri)), 403, EDGE_TC_WRONG_STREAM);
    assert_deny(check("", H("X-Original-URI: /live/ch50/index.m3u8")), 401, EDGE_TC_TOKEN_MISSING);
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(check(q, H("X-Original-URI: /live/ch50/x.ts")).status, 204);
    snprintf(uri, sizeof(uri), "X-Original-URI: /live/ch50/index.m3u8?token=%s%%41", t.text);
    assert_deny(check("", H(uri)), 403, EDGE_TC_TOKEN_MALFORMED);

    /* Generic / Smarty-style: token (+ name). */
    snprintf(q, sizeof(q), "token=%s", t.text);
    a = check(q, NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.max_sessions, 2);
    snprintf(q, sizeof(q), "token=%s&name=ch53", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_WRONG_STREAM);
    assert_deny(check("name=ch50", NULL), 403, EDGE_TC_TOKEN_MISSING);
    snprintf(q, sizeof(q), "token=%s", old.text);
    a = check(q, NULL);
    assert_deny(a, 403, EDGE_TC_TOKEN_EXPIRED);
    assert_true(a.with_auth_duration);
}

static void test_no_state(void **state)
{
    (void)state;
    struct tok t = token(10, 50);
    char q[600];
    assert_deny(check(flu("ch50", &t, "new_session", "n1"), NULL), 403, EDGE_TC_UNAVAILABLE);
    assert_deny(check(flu("ch50", &t, "update_session", "n1"), NULL), 500, EDGE_TC_UNAVAILABLE);
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_deny(check(q, H("X-Session-ID: s", "X-Channel-ID: ch50")), 503, EDGE_TC_UNAVAILABLE);
    assert_deny(check(q, H("X-Original-URI: /ch50/i.m3u8")), 503, EDGE_TC_UNAVAILABLE);
    assert_deny(check(q, NULL), 503, EDGE_TC_UNAVAILABLE);
    /* A missing token needs no state. */
    assert_deny(check("name=ch50&request_type=new_session", NULL), 403, EDGE_TC_TOKEN_MISSING);
    /* State arrives: the next check sees it. */
    load_fixture(store, 50, true);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
}

/* ---- tests: the index follows the feed ----------------------------------------------- */

static void test_revocation_and_keys(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token(10, 50);
    char q[600];
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* Tariff link removed, restored. */
    apply_del_rel("acc_tar", 10, 5);
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    uint8_t k[64];
    size_t n = rel_key("acc_tar", 10, 5, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* Account deactivated, reactivated: tokens issued before the
     * deactivation stay revoked (logout_before_ms), new ones work. */
    char acc[256];
    snprintf(acc, sizeof(acc),
             "{\"client_id\":1,\"customer_id\":100,\"active\":0,"
             "\"logout_before_ms\":%llu}",
             (unsigned long long)now_s * 1000);
    apply_id(EDGE_DB_ACCOUNTS, 10, acc);
    assert_deny(check(q, NULL), 403, EDGE_TC_ACCOUNT_INACTIVE);
    snprintf(acc, sizeof(acc),
             "{\"client_id\":1,\"customer_id\":100,\"active\":1,"
             "\"logout_before_ms\":%llu}",
             (unsigned long long)now_s * 1000 + 500);
    apply_id(EDGE_DB_ACCOUNTS, 10, acc);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_REVOKED);
    struct tok fresh = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, TTL + 2, NULL);
    snprintf(q, sizeof(q), "token=%s", fresh.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    /* The issue time is in the token: a shorter TTL set since does not
     * make an old token look newer than the logout. */
    apply_id(EDGE_DB_CLIENTS, 1,
             "{\"id\":1,\"settings\":{\"stream_token_ttl_s\":60,\"stream_max_sessions\":0}}");
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_REVOKED);
    snprintf(q, sizeof(q), "token=%s", fresh.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* Channel disabled; the deactivation date bounds X-AuthDuration. */
    apply_id(EDGE_DB_CHANNELS, 50, "{\"client_id\":1,\"stream_name\":\"ch50\",\"enabled\":0}");
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    apply_id(EDGE_DB_CHANNELS, 50, "{\"client_id\":1,\"stream_name\":\"ch50\",\"enabled\":1}");
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    time_t tomorrow = (time_t)(now_s + 86400);
    struct tm tm;
    gmtime_r(&tomorrow, &tm);
    snprintf(acc, sizeof(acc),
             "{\"client_id\":1,\"customer_id\":100,\"active\":1,"
             "\"deactivation_date\":\"%04d-%02d-%02d\"}",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    apply_id(EDGE_DB_ACCOUNTS, 10, acc);
    struct tok far = token_ex(1, secret1, EDGE_TOKEN_LIVE, 1, 10, 50, 2 * 86400, NULL);
    char qf[300];
    snprintf(qf, sizeof(qf), "token=%s", far.text);
    struct edge_tc_answer a = check_at(now_s + 86400 - (uint64_t)tomorrow % 86400 - 15, qf, NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.auth_duration_s, 15);

    /* Client settings: TTL, limits, recheck period. */
    apply_id(EDGE_DB_CLIENTS, 1,
             "{\"id\":1,\"settings\":{\"stream_token_ttl_s\":3602,\"stream_max_sessions\":0,"
             "\"stream_auth_duration_s\":45}}");
    a = check(q, NULL);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(a.auth_duration_s, 45);
    assert_int_equal(a.max_sessions, 0);

    /* Key rotation: a new key signs, the old one keeps validating; once
     * retired, its tokens are revoked at once. */
    apply_id(EDGE_DB_KEYS, 3, key_json(3, secret3, "active"));
    struct tok t3 = token_ex(3, secret3, EDGE_TOKEN_LIVE, 1, 10, 50, TTL + 2, NULL);
    snprintf(q, sizeof(q), "token=%s", t3.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    snprintf(q, sizeof(q), "token=%s", fresh.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    apply_id(EDGE_DB_KEYS, 1, key_json(1, secret1, "retired"));
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_REVOKED);
    struct tok t2 = token_ex(2, secret2, EDGE_TOKEN_LIVE, 1, 10, 50, TTL, NULL);
    snprintf(q, sizeof(q), "token=%s", t2.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_REVOKED);
    /* A forged token carrying a retired kid is malformed, not revoked. */
    struct tok forged = token_ex(2, secret3, EDGE_TOKEN_LIVE, 1, 10, 50, TTL, NULL);
    snprintf(q, sizeof(q), "token=%s", forged.text);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED);
    snprintf(q, sizeof(q), "token=%s", t3.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* A snapshot swapped in under the thread's kept transaction. */
    load_fixture(store, next_index++, false);
    assert_deny(check(q, NULL), 403, EDGE_TC_TOKEN_MALFORMED); /* no keys in it */
    load_fixture(store, next_index++, true);
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);

    /* Everything above is in the metrics by reason. */
    struct tvmw_buf b;
    tvmw_buf_init(&b, 1 << 20);
    edge_tokencheck_metrics(tc, &b);
    assert_non_null(
        strstr((const char *)b.data, "tvmw_edge_token_denied_total{reason=\"token_revoked\"} 4"));
    assert_non_null(strstr((const char *)b.data,
                           "tvmw_edge_token_checks_total{dialect=\"generic\",result=\"allow\"}"));
    tvmw_buf_close(&b);
}

/* The account entries follow every relation change that can change an
 * account's tariffs, and accounts with very many tariffs still work. */
static void test_tariff_index(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token(11, 50); /* through customer 101's tariff 6 */
    char q[300];
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    apply_del_rel("cust_tar", 101, 6);
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    uint8_t k[64];
    size_t n = rel_key("cust_tar", 101, 6, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    /* A new account of customer 101, as the control plane writes it:
     * account, then its customer link. */
    apply_id(EDGE_DB_ACCOUNTS, 14, "{\"client_id\":1,\"customer_id\":101,\"active\":1}");
    n = rel_key("cust_acc", 101, 14, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    struct tok t14 = token(14, 50);
    snprintf(q, sizeof(q), "token=%s", t14.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    /* ... and it follows its customer's tariffs too. */
    apply_del_rel("cust_tar", 101, 6);
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    /* An account with more tariffs than an entry lists. */
    for (uint64_t tar = 100; tar < 100 + EDGE_TCX_TARIFFS + 3; tar++) {
        n = rel_key("acc_tar", 14, tar, k);
        apply_put(EDGE_DB_REL, k, n, "{}");
    }
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    n = rel_key("tar_chan", 100 + EDGE_TCX_TARIFFS + 2, 50, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
    apply_del_rel("acc_tar", 14, 100 + EDGE_TCX_TARIFFS + 2);
    assert_deny(check(q, NULL), 403, EDGE_TC_NOT_ENTITLED);
    /* Channels list their tariffs: a tariff's channel set changes, a
     * channel is modified (its tariffs stay), a channel in more tariffs
     * than an entry lists. */
    struct tok t10 = token(10, 50);
    char q10[300];
    snprintf(q10, sizeof(q10), "token=%s", t10.text);
    assert_int_equal(check(q10, NULL).reason, EDGE_TC_ALLOW);
    apply_del_rel("tar_chan", 5, 50);
    assert_deny(check(q10, NULL), 403, EDGE_TC_NOT_ENTITLED);
    n = rel_key("tar_chan", 5, 50, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    assert_int_equal(check(q10, NULL).reason, EDGE_TC_ALLOW);
    apply_id(EDGE_DB_CHANNELS, 50, "{\"client_id\":1,\"stream_name\":\"ch50\",\"enabled\":1}");
    assert_int_equal(check(q10, NULL).reason, EDGE_TC_ALLOW);
    for (uint64_t tar = 300; tar < 300 + EDGE_TCX_TARIFFS + 2; tar++) {
        n = rel_key("tar_chan", tar, 50, k);
        apply_put(EDGE_DB_REL, k, n, "{}");
    }
    assert_int_equal(check(q10, NULL).reason, EDGE_TC_ALLOW);
    apply_del_rel("tar_chan", 5, 50);
    assert_deny(check(q10, NULL), 403, EDGE_TC_NOT_ENTITLED);
    n = rel_key("tar_chan", 5, 50, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    /* A channel linked before its record arrives (another order of a
     * batch): its put finds its tariffs. */
    n = rel_key("tar_chan", 5, 70, k);
    apply_put(EDGE_DB_REL, k, n, "{}");
    apply_id(EDGE_DB_CHANNELS, 70, "{\"client_id\":1,\"stream_name\":\"ch70\"}");
    struct tok t70 = token(10, 70);
    snprintf(q10, sizeof(q10), "token=%s&name=ch70", t70.text);
    assert_int_equal(check(q10, NULL).reason, EDGE_TC_ALLOW);

    /* The same state through a snapshot: the load derives the entries. */
    load_fixture(store, next_index++, true);
    snprintf(q, sizeof(q), "token=%s", t.text);
    assert_int_equal(check(q, NULL).reason, EDGE_TC_ALLOW);
}

static void test_session_limit(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    apply_id(EDGE_DB_CLIENTS, 1,
             "{\"id\":1,\"settings\":{\"stream_token_ttl_s\":3600,\"stream_max_sessions\":2,"
             "\"stream_session_limit\":1}}");
    struct tok t1 = token(10, 50), t2 = token(10, 51);
    /* stream_max_sessions 2 enforced by the edge across streamers. */
    assert_int_equal(check(flu("ch50", &t1, "new_session", "A"), NULL).reason, EDGE_TC_ALLOW);
    assert_int_equal(check(flu("51", &t2, "new_session", "B"), NULL).reason, EDGE_TC_ALLOW);
    assert_deny(check(flu("ch50", &t1, "new_session", "C"), NULL), 403, EDGE_TC_SESSION_LIMIT);
    char q[600];
    snprintf(q, sizeof(q), "token=%s", t1.text);
    assert_deny(check(q, H("X-Session-ID: D", "X-Channel-ID: ch50")), 403, EDGE_TC_SESSION_LIMIT);
    /* Running sessions go on; a repeated start is the same session. */
    assert_int_equal(check(flu("ch50", &t1, "update_session", "A"), NULL).reason, EDGE_TC_ALLOW);
    assert_int_equal(check(flu("ch50", &t1, "new_session", "A"), NULL).reason, EDGE_TC_ALLOW);
    /* Multi-login accounts have no limit and no X-Max-Sessions. */
    struct tok m = token(13, 50);
    for (int i = 0; i < 5; i++) {
        char s[8];
        snprintf(s, sizeof(s), "M%d", i);
        struct edge_tc_answer a = check(flu("ch50", &m, "new_session", s), NULL);
        assert_int_equal(a.reason, EDGE_TC_ALLOW);
        assert_int_equal(a.max_sessions, 0);
    }
}

static void test_tcsess(void **state)
{
    (void)state;
    struct edge_tcs *t;
    assert_int_equal(edge_tcs_new(100, &t), 0);
    assert_int_equal(edge_tcs_touch(t, 7, 111, 1000, 60, 2, true), EDGE_TCS_OK);
    assert_int_equal(edge_tcs_touch(t, 7, 222, 1000, 60, 2, true), EDGE_TCS_OK);
    assert_int_equal(edge_tcs_touch(t, 7, 333, 1000, 60, 2, true), EDGE_TCS_OVER);
    assert_int_equal(edge_tcs_count(t, 7, 1000, 60), 2);
    assert_int_equal(edge_tcs_touch(t, 7, 333, 1000, 60, 2, false), EDGE_TCS_OK); /* update */
    assert_int_equal(edge_tcs_count(t, 7, 1000, 60), 3);
    /* Sessions not seen for live_s no longer count. */
    assert_int_equal(edge_tcs_touch(t, 7, 111, 1050, 60, 2, false), EDGE_TCS_OK);
    assert_int_equal(edge_tcs_count(t, 7, 1070, 60), 1);
    assert_int_equal(edge_tcs_touch(t, 7, 444, 1070, 60, 2, true), EDGE_TCS_OK);
    assert_int_equal(edge_tcs_touch(t, 7, 555, 1070, 60, 2, true), EDGE_TCS_OVER);
    assert_int_equal(edge_tcs_count(t, 8, 1070, 60), 0);
    /* More sessions than slots: admitted untracked. */
    for (uint64_t k = 1; k <= EDGE_TCS_SLOTS; k++) {
        assert_int_equal(edge_tcs_touch(t, 9, k << 30, 5, 60, 0, true), EDGE_TCS_OK);
    }
    assert_int_equal(edge_tcs_touch(t, 9, 99ull << 30, 5, 60, 0, true), EDGE_TCS_UNTRACKED);
    /* A full table leaves new accounts untracked, stale entries are reused. */
    edge_tcs_free(t);
    assert_int_equal(edge_tcs_new(1, &t), 0); /* 64 entries */
    unsigned untracked = 0;
    for (uint64_t a = 1; a <= 1000; a++) {
        untracked += edge_tcs_touch(t, a, 1ull << 40, 10, 60, 1, true) == EDGE_TCS_UNTRACKED;
    }
    assert_true(untracked > 0);
    assert_int_equal(edge_tcs_touch(t, 5000, 1ull << 40, 100, 60, 1, true), EDGE_TCS_OK);
    edge_tcs_free(t);
}

/* Racing starts of one account's sessions never admit more than the
 * limit (tcsess.h: both may be refused, never both admitted). */
struct race {
    struct edge_tcs *t;
    unsigned id;
    _Atomic unsigned *admitted;
};

static void *race_one(void *arg)
{
    struct race *r = arg;
    for (uint64_t i = 0; i < 2000; i++) {
        uint64_t key = ((uint64_t)r->id << 32) | (i + 1);
        if (edge_tcs_touch(r->t, 7, key, 100, 60, 3, true) == EDGE_TCS_OK) {
            atomic_fetch_add(r->admitted, 1);
        }
    }
    return NULL;
}

static void test_tcsess_race(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        struct edge_tcs *t;
        _Atomic unsigned admitted = 0;
        assert_int_equal(edge_tcs_new(64, &t), 0);
        pthread_t th[4];
        struct race r[4];
        for (unsigned i = 0; i < 4; i++) {
            r[i] = (struct race){t, i + 1, &admitted};
            assert_int_equal(pthread_create(&th[i], NULL, race_one, &r[i]), 0);
        }
        for (unsigned i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
        }
        assert_true(atomic_load(&admitted) <= 3);
        assert_true(edge_tcs_count(t, 7, 100, 60) <= 3);
        edge_tcs_free(t);
    }
}

/* The store's account scanner agrees with jansson, and is fast. */
static void test_account_scanner(void **state)
{
    (void)state;
    static const char *const recs[] = {
        "{\"client_id\":1,\"customer_id\":100,\"active\":1,\"logout_before_ms\":0}",
        "{ \"active\" : false , \"allow_multiple_login\" : true, \"client_id\": 7 }",
        "{\"active\":null,\"client_id\":2.5,\"customer_id\":-3,\"x\":{\"active\":0}}",
        "{\"deactivation_date\":\"2027-01-31\",\"status_reason\":\"a\\\"b\",\"l\":[[],{}]}",
        "{\"active\":0,\"active\":1}",
        "{}",
        "{\"logout_before_ms\":9223372036854775807,\"client_id\":\"1\"}",
    };
    uint8_t a[EDGE_TCX_ACC_LEN], b[EDGE_TCX_ACC_LEN];
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        const uint8_t *v = (const uint8_t *)recs[i];
        assert_int_equal(edge_tcx_account_fast(v, strlen(recs[i]), a), 0);
        assert_int_equal(edge_tcx_account_json(v, strlen(recs[i]), b), 0);
        assert_memory_equal(a, b, sizeof(a));
    }
    struct edge_tcx_account acc;
    edge_tcx_account_fast((const uint8_t *)recs[3], strlen(recs[3]), a);
    assert_int_equal(edge_tcx_account_decode(a, sizeof(a), &acc), 0);
    assert_true(acc.active);
    assert_int_equal(acc.deactivate_s, 1801353600); /* 2027-01-31T00:00:00Z */
    /* Left to jansson: escaped names, numbers jansson refuses, garbage. */
    static const char *const hard[] = {"{\"act\\u0069ve\":0}",
                                       "{\"client_id\":99999999999999999999}",
                                       "[1]",
                                       "{\"a\":1",
                                       "{\"a\" 1}",
                                       "x"};
    for (size_t i = 0; i < sizeof(hard) / sizeof(hard[0]); i++) {
        assert_int_equal(edge_tcx_account_fast((const uint8_t *)hard[i], strlen(hard[i]), a), -1);
    }
    /* A typical account of the Billing API. */
    static const char typical[] =
        "{\"client_id\":1,\"customer_id\":123456,\"abonement\":\"1000001\",\"password_hash\":"
        "\"5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99\",\"password_salt\":"
        "\"a1b2c3d4e5f60718\",\"active\":1,\"status_reason\":\"\",\"auto_activation_period\":0,"
        "\"extension_date\":\"\",\"activation_date\":\"\",\"deactivation_date\":\"\","
        "\"allow_multiple_login\":0,\"allow_login_by_abonement\":0,\"allow_login_by_device_uid\":1,"
        "\"allow_login_by_ip\":0,\"parent_code\":0,\"use_timeshift\":0,"
        "\"preferred_timeshift_offset\":0,\"data_center\":null,\"allowed_device_groups\":[0,1,2,3],"
        "\"subnets\":\"\",\"created_ms\":1764000000000,\"last_active_ms\":null,"
        "\"logout_before_ms\":0}";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20000; i++) {
        edge_tcx_account_fast((const uint8_t *)typical, sizeof(typical) - 1, a);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double fast_us =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 20000 / 1000;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 20000; i++) {
        edge_tcx_account_json((const uint8_t *)typical, sizeof(typical) - 1, b);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double json_us =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 20000 / 1000;
    printf("account record of %zu bytes: scanner %.2f us, jansson %.2f us\n", sizeof(typical) - 1,
           fast_us, json_us);
    assert_memory_equal(a, b, sizeof(a));
}

/* ---- tests: parsing, HMAC ------------------------------------------------------------ */

static void test_parse(void **state)
{
    (void)state;
    struct rq r;
    build(&r, "request_type=update_session&session_id=&name=ch1&token=abc&token=def", NULL);
    assert_int_equal(r.q.dialect, EDGE_TC_FLUSSONIC);
    assert_true(r.q.update);
    assert_null(r.q.sess.p);
    assert_int_equal(r.q.tok.len, 3);
    assert_memory_equal(r.q.tok.p, "abc", 3);
    build(&r, "stream_clients=1", NULL);
    assert_int_equal(r.q.dialect, EDGE_TC_FLUSSONIC);
    assert_false(r.q.update);
    build(&r, "token=x", H("x-real-path: /a/b"));
    assert_int_equal(r.q.dialect, EDGE_TC_ASTRA);
    assert_non_null(r.q.path.p);
    build(&r, "", H("X-ORIGINAL-URI: /p?x=1&token=a%2Bb+c&y"));
    assert_int_equal(r.q.dialect, EDGE_TC_NGINX);
    assert_int_equal(r.q.tok.len, 5);
    assert_memory_equal(r.q.tok.p, "a+b c", 5);
    build(&r, "token=y&ip=1.1.1.1", H("X-Real-IP: 2.2.2.2"));
    assert_int_equal(r.q.dialect, EDGE_TC_GENERIC);
    assert_memory_equal(r.q.viewer_ip.p, "1.1.1.1", 7);
    build(&r, "token=y&ip=1.1.1.1", H("X-Real-IP: 2.2.2.2", "X-Session-ID: s"));
    assert_memory_equal(r.q.viewer_ip.p, "2.2.2.2", 7);
    assert_true(edge_tc_path_has("/play/a001/index.m3u8", 21, (const uint8_t *)"a001", 4));
    assert_true(edge_tc_path_has("/live/ch1/x?q=/ch2", 18, (const uint8_t *)"live/ch1", 8));
    assert_false(edge_tc_path_has("/play/a0011/index.m3u8", 22, (const uint8_t *)"a001", 4));
    assert_false(edge_tc_path_has("/x?/a001", 8, (const uint8_t *)"a001", 4));
    assert_true(edge_tokencheck_match("/tvmiddleware/api/streamservice/token/check/?token=1"));
    assert_true(edge_tokencheck_match("/tvmiddleware/api/streamservice/token/check"));
    assert_true(edge_tokencheck_match("/api/tvmiddleware/api/streamservice/token/check/"));
    assert_true(edge_tokencheck_match("/api/tvmiddleware/api/streamservice/token/check?x"));
    assert_false(edge_tokencheck_match("/tvmiddleware/api/streamservice/token/checks"));
    assert_false(edge_tokencheck_match("/tvmiddleware/api/streamservice/token/check//"));
    assert_false(edge_tokencheck_match("/tvmiddleware/api/login/"));
    char out[8];
    assert_int_equal(edge_tc_query_value("a=1&token=12345678", 18, "token", out, sizeof(out)), -2);
    assert_int_equal(edge_tc_query_value("a=1", 3, "token", out, sizeof(out)), -1);
    assert_int_equal(edge_tc_query_value("token", 5, "token", out, sizeof(out)), 0);
}

static void test_hmac(void **state)
{
    (void)state;
    uint8_t out[32], want[32];
    unsigned wl = 32;
    /* RFC 4231 test case 2. */
    tvmw_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
    static const uint8_t tc2[32] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e,
                                    0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
                                    0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83,
                                    0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    assert_memory_equal(out, tc2, 32);
    uint8_t key[131], msg[200];
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 7 + 1);
    }
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 13 + 5);
    }
    for (size_t kl = 0; kl <= sizeof(key); kl += 13) {
        tvmw_hmac_sha256(key, kl, msg, kl + 17, out);
        HMAC(EVP_sha256(), key, (int)kl, msg, kl + 17, want, &wl);
        assert_memory_equal(out, want, 32);
    }
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, true);
    for (int i = 0; i < 100; i++) {
        tvmw_hmac_sha256(key, 32, msg, 52, out);
    }
    atomic_store(&counting, false);
    assert_int_equal(atomic_load(&n_allocs), 0);
    /* The counter sees libraries' allocations: OpenSSL 3's one-shot HMAC()
     * (what sign.c used before) allocates on every call. */
    atomic_store(&counting, true);
    HMAC(EVP_sha256(), key, 32, msg, 52, want, &wl);
    atomic_store(&counting, false);
    assert_true(!COUNTS_ALLOCS || atomic_load(&n_allocs) > 0);
}

/* ---- tests: nothing allocated on the hot path ---------------------------------------- */

static void test_decide_allocates_nothing(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tok t = token(10, 50), bad = t;
    bad.text[3] = bad.text[3] == 'A' ? 'B' : 'A';
    char q[600], qb[600];
    snprintf(q, sizeof(q), "%s", flu("ch50", &t, "new_session", "alloc"));
    snprintf(qb, sizeof(qb), "%s", flu("ch50", &bad, "new_session", "alloc"));
    static struct rq r, rb;
    build(&r, q, NULL);
    build(&rb, qb, NULL);
    struct edge_tc_answer a;
    edge_tokencheck_decide(tc, &r.q, now_s, &a); /* warm: thread state, key ring */
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, true);
    for (int i = 0; i < 1000; i++) {
        edge_tokencheck_decide(tc, &r.q, now_s, &a);
    }
    atomic_store(&counting, false);
    assert_int_equal(a.reason, EDGE_TC_ALLOW);
    assert_int_equal(atomic_load(&n_allocs), 0);
}

/* A keep-alive HTTP/1.1 client on a raw socket (no allocation). */
static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* Sends one request and reads one answer (no body expected beyond
 * Content-Length); returns the status and copies the head into head. */
static int roundtrip(int fd, const char *req, char *head, size_t cap)
{
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t w = write(fd, req + off, n - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        ssize_t rd = read(fd, head + got, cap - 1 - got);
        assert_true(rd > 0);
        got += (size_t)rd;
        head[got] = '\0';
        char *end = strstr(head, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strcasestr(head, "Content-Length: ");
            size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
            if (got >= (size_t)(end + 4 - head) + body) {
                break;
            }
        }
    }
    return atoi(head + 9);
}

static void test_http_fast_route(void **state)
{
    (void)state;
    load_fixture(store, 50, true);
    struct tvmw_http_server_conf hc = {.address = "127.0.0.1:28017",
                                       .max_body_bytes = 1024,
                                       .max_connections = 16,
                                       .threads = 2,
                                       .fast_match = edge_tokencheck_match,
                                       .fast_handler = edge_tokencheck_serve,
                                       .fast_ctx = tc};
    struct tvmw_http_server *srv;
    assert_int_equal(tvmw_http_server_start(&hc, NULL, NULL, &srv), 0);
    struct tok t = token(10, 50);
    char req[1024], head[4096];
    snprintf(req, sizeof(req),
             "GET /tvmiddleware/api/streamservice/token/check/?%s HTTP/1.1\r\nHost: e\r\n\r\n",
             flu("ch50", &t, "new_session", "http-1"));
    int fd = connect_to(28017);
    for (int i = 0; i < 20; i++) { /* warm: thread state, prepared answers */
        assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 200);
    }
    assert_non_null(strstr(head, "X-UserId: 10\r\n"));
    assert_non_null(strstr(head, "X-Session-Name: 10\r\n"));
    assert_non_null(strstr(head, "X-AuthDuration: 60\r\n"));
    assert_non_null(strstr(head, "X-Max-Sessions: 2\r\n"));
    assert_null(strcasestr(head, "Connection: close"));
    atomic_store(&n_allocs, 0);
    atomic_store(&counting, true);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 200);
    }
    atomic_store(&counting, false);
    long allocs = atomic_load(&n_allocs);
    printf("1000 keep-alive checks through the fast route: %ld allocations (prepared answers: "
           "%s)\n",
           allocs, edge_tokencheck_inplace(tc) ? "yes" : "no");
    if (edge_tokencheck_inplace(tc)) {
        assert_int_equal(allocs, 0);
    }
    /* Answers of other lengths, denies, the alias path, a POST. */
    struct tok t11 = token(11, 50);
    snprintf(req, sizeof(req),
             "GET /api/tvmiddleware/api/streamservice/token/check?%s HTTP/1.1\r\nHost: e\r\n\r\n",
             flu("ch50", &t11, "new_session", "http-2"));
    assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 200);
    assert_non_null(strstr(head, "X-UserId: 11\r\n"));
    snprintf(req, sizeof(req),
             "GET /tvmiddleware/api/streamservice/token/check/?%s HTTP/1.1\r\nHost: e\r\n\r\n",
             flu("ch53", &t, "new_session", "http-3"));
    assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 403);
    assert_non_null(strstr(head, "{\"error\":\"wrong_stream\""));
    snprintf(req, sizeof(req),
             "GET /tvmiddleware/api/streamservice/token/check/ HTTP/1.1\r\nHost: e\r\n"
             "X-Original-URI: /ch50/i.m3u8\r\n\r\n");
    assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 401);
    snprintf(req, sizeof(req),
             "POST /tvmiddleware/api/streamservice/token/check/ HTTP/1.1\r\nHost: e\r\n"
             "Content-Length: 3\r\n\r\nabc");
    assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 405);
    snprintf(req, sizeof(req),
             "GET /tvmiddleware/api/streamservice/token/check/?%s HTTP/1.1\r\nHost: e\r\n\r\n",
             flu("ch50", &t, "new_session", "http-1"));
    assert_int_equal(roundtrip(fd, req, head, sizeof(head)), 200);
    assert_non_null(strstr(head, "X-UserId: 10\r\n"));
    close(fd);
    tvmw_http_server_stop(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flussonic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ip_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_astra_nginx_generic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tariff_index, setup, teardown),
        cmocka_unit_test(test_tcsess),
        cmocka_unit_test(test_tcsess_race),
        cmocka_unit_test(test_account_scanner),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_hmac),
        cmocka_unit_test_setup_teardown(test_decide_allocates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fast_route, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
