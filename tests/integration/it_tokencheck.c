/*
 * it_tokencheck: the streamers' token check (shared/spec/streamer-auth.md)
 * at two real tvmw-edge processes that follow a real 3-node control plane.
 * Tokens come from the device API (channel/url/?redirect=0), as players
 * get them; checks are shaped as the real streamers send them.
 *
 * test_dialects: every allow and deny row of §5 for Flussonic (with the
 *   full §1.2 parameter set, request_number increments, update_session,
 *   and a legacy run without session_id/request_number), Astra and Alta
 *   (both header spellings), nginx auth_request (X-Original-URI) and the
 *   generic form: status, headers, body; IP binding; the edge's session
 *   limit; a token issued by one edge checked at the other; the reason
 *   metrics.
 * test_revocation: account deactivated, tariff link removed at the control
 *   plane -> both edges deny within 1 s; reactivation does not bring back
 *   the tokens issued before.
 * test_keys: key rotation end to end (old tokens keep validating, new ones
 *   carry the new kid), retirement denies the old key's tokens at both
 *   edges within 1 s.
 * test_outage: every control-plane node killed: valid tokens keep
 *   validating, expired, revoked and forged ones keep failing; an edge
 *   that never had state answers "unavailable" per dialect.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN. Ports 28000..28099.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_billing.h"
#include "it_cmocka.h"
#include "it_edge.h"

#define BASE_PORT  28000 /* cp HTTP 28001..3, raft 28101..3 */
#define EDGE1_ADDR "127.0.0.1:28051"
#define EDGE2_ADDR "127.0.0.1:28052"
#define EDGE3_ADDR "127.0.0.1:28053"
#define VISIBLE_MS 1000
#define CHECK      "/tvmiddleware/api/streamservice/token/check/"
#define SKEW_S     1

static struct it_cluster *cl;
static struct it_edge e1, e2, e3;

/* A tenant with three channels (a, b in its tariff; c not) and accounts. */
struct tenant {
    long long id;
    char api_key[40];
    struct it_bl_client bl;
    char bkey[40];
    char prefix[8];
    long long ch[3];
    long long tariff, svc;
};

static struct tenant t1, t2, t3;
static long long acc1, acc1b, acc2, acc3; /* account ids */
static long long cust1b;                  /* the customer of acc1b */

/* ---- helpers ------------------------------------------------------------------------ */

static long long jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -999;
}

static void admin(const char *method, const char *path, const char *body, long want, json_t **out)
{
    struct it_resp r;
    for (int attempt = 0; attempt < 50; attempt++) {
        it_admin(cl, 1 + (uint64_t)attempt % 3, method, path, body, NULL, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    if (want == 0) { /* any success */
        IT_ASSERT(r.status == 200 || r.status == 201, "%s %s: HTTP %ld %.300s", method, path,
                  r.status, r.body ? r.body : r.error);
    } else {
        IT_ASSERT_STATUS(&r, want);
    }
    if (out != NULL) {
        *out = json_incref(r.json);
    }
    it_resp_close(&r);
}

static long long admin_create(const char *path, const char *key, const char *body)
{
    json_t *o;
    admin("POST", path, body, 201, &o);
    long long id = jint(json_object_get(o, key), "id");
    json_decref(o);
    IT_ASSERT(id > 0, "no id from %s", path);
    return id;
}

static json_t *billing(struct tenant *t, const char *path, const char *const *kv)
{
    struct it_resp r;
    char why[1400];
    for (int attempt = 0; attempt < 50; attempt++) {
        it_bl_call(cl, 1 + (uint64_t)attempt % 3, IT_BL_PY, &t->bl, path, kv, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "%s: %s", path, why);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}

static void make_tenant(struct tenant *t, const char *prefix, const char *settings)
{
    char body[1024], path[160];
    it_fmt(t->prefix, sizeof(t->prefix), "%s", prefix);
    it_fmt(t->api_key, sizeof(t->api_key), "tc-api-key-%s-0123456789", prefix);
    it_fmt(t->bkey, sizeof(t->bkey), "tc-billing-key-%s-0123", prefix);
    it_fmt(body, sizeof(body),
           "{\"name\":\"tc-%s\",\"api_key\":\"%s\",\"billing_api_key\":\"%s\",\"settings\":%s}",
           prefix, t->api_key, t->bkey, settings);
    t->id = admin_create("/admin/v1/clients", "client", body);
    t->bl.id = (uint64_t)t->id;
    it_fmt(t->bl.key, sizeof(t->bl.key), "%s", t->bkey);
    for (int i = 0; i < 3; i++) {
        it_fmt(body, sizeof(body),
               "{\"name\":\"%s channel %d\",\"number\":%d,\"stream_name\":\"%s%c\"}", prefix, i,
               i + 1, prefix, 'a' + i);
        it_fmt(path, sizeof(path), "/admin/v1/clients/%lld/channels", t->id);
        t->ch[i] = admin_create(path, "channel", body);
    }
    it_fmt(path, sizeof(path), "/admin/v1/clients/%lld/streaming-services", t->id);
    t->svc = admin_create(path, "streaming_service",
                          "{\"name\":\"fl\",\"type\":\"flussonic\",\"url_masks\":{\"live\":"
                          "\"http://fl.example/$cid/index.m3u8?token=$token\",\"archive\":"
                          "\"http://fl.example/$cid/video-$flpbt-$flpdur.m3u8?token=$token\"}}");
    json_t *o;
    it_fmt(path, sizeof(path), "/admin/v1/clients/%lld/tariffs", t->id);
    admin("POST", path,
          "{\"name\":\"Basic\",\"period\":1,\"price\":0,\"sessions_count\":5,"
          "\"basic_sessions_count\":1,\"basic_tariff_priority\":5}",
          0, &o);
    t->tariff = jint(o, "id");
    json_decref(o);
    IT_ASSERT(t->tariff > 0, "tariff id");
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld]}", t->ch[0], t->ch[1]);
    it_fmt(path, sizeof(path), "/admin/v1/clients/%lld/tariffs/%lld/channels", t->id, t->tariff);
    admin("PUT", path, body, 200, NULL);
}

/* A customer with an account (abonement, password 111111) on the tariff;
 * returns the account id. */
static long long make_account(struct tenant *t, const char *abonement, long long *customer)
{
    char tar[24], cust[24];
    it_fmt(tar, sizeof(tar), "%lld", t->tariff);
    json_t *o = billing(t, "customer/create", IT_KV("firstname", "Ann", "lastname", abonement));
    it_fmt(cust, sizeof(cust), "%lld", jint(o, "id"));
    json_decref(o);
    o = billing(t, "account/create",
                IT_KV("customer_id", cust, "abonement", abonement, "password", "111111"));
    long long id = jint(o, "id");
    json_decref(o);
    json_decref(billing(t, "customer/tariff/assign", IT_KV("customer_id", cust, "tariff_id", tar)));
    IT_ASSERT(id > 0, "account id");
    if (customer != NULL) {
        *customer = atoll(cust);
    }
    return id;
}

/* A device session of the account at edge e (its authkey, malloc'd). */
static char *login(const struct it_edge *e, const struct tenant *t, const char *abonement)
{
    char url[512];
    it_fmt(url, sizeof(url),
           "http://%s/tvmiddleware/api/login/?client_id=%lld&api_key=%s&abonement=%s&"
           "password=111111&device=android",
           e->addr, t->id, t->api_key, abonement);
    uint64_t t0 = it_now_ms();
    for (;;) {
        struct it_resp r;
        it_http("GET", url, NULL, 0, NULL, 5000, &r);
        const char *k = it_resp_str(&r, "authkey");
        if (r.status == 200 && it_resp_int(&r, "error") == 0 && k != NULL) {
            char *key = strdup(k);
            it_resp_close(&r);
            return key;
        }
        IT_ASSERT(it_now_ms() - t0 < 15000, "no login of %s at %s: %s", abonement, e->id,
                  r.body ? r.body : r.error);
        it_resp_close(&r);
        it_sleep_ms(50);
    }
}

/* A stream URL from the device API, split into its path and token. */
struct url {
    char path[256];
    char token[128];
};

static struct url stream_url(const struct it_edge *e, const struct tenant *t, const char *key,
                             long long cid)
{
    char u[1024];
    struct it_resp r;
    struct url out;
    it_fmt(u, sizeof(u),
           "http://%s/tvmiddleware/api/channel/url/?client_id=%lld&authkey=%s&cid=%lld&"
           "redirect=0",
           e->addr, t->id, key, cid);
    it_http("GET", u, NULL, 0, NULL, 5000, &r);
    const char *uri = it_resp_str(&r, "uri");
    IT_ASSERT(r.status == 200 && it_resp_int(&r, "error") == 0 && uri != NULL, "channel/url: %s",
              r.body ? r.body : r.error);
    const char *p = strstr(uri, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    const char *q = p ? strchr(p, '?') : NULL;
    const char *tok = q ? strstr(q, "token=") : NULL;
    IT_ASSERT(p && q && tok, "no token in %s", uri);
    it_fmt(out.path, sizeof(out.path), "%.*s", (int)(q - p), p);
    it_fmt(out.token, sizeof(out.token), "%s", tok + 6);
    char *amp = strchr(out.token, '&');
    if (amp) {
        *amp = '\0';
    }
    IT_ASSERT(strlen(out.token) == 70, "a 70-character token: %s", uri);
    it_resp_close(&r);
    return out;
}

/* The key id of a token (bytes 2-3 of its base64url body, dauth.h). */
static unsigned token_kid(const char *tok)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned v = 0;
    for (int i = 0; i < 4; i++) { /* 4 chars = 3 bytes: version, kind, kid high */
        v = v << 6 | (unsigned)(strchr(a, tok[i]) - a);
    }
    unsigned w = (unsigned)(strchr(a, tok[4]) - a) << 2 | (unsigned)(strchr(a, tok[5]) - a) >> 4;
    return (v & 0xff) << 8 | (w & 0xff);
}

/* One check at edge e: GET CHECK?query with headers. */
static void chk(const struct it_edge *e, const char *query, const char *const *headers,
                struct it_resp *r)
{
    char url[2048];
    it_fmt(url, sizeof(url), "http://%s" CHECK "%s%s", e->addr, query[0] ? "?" : "", query);
    it_http("GET", url, NULL, 0, headers, 5000, r);
}

/* Asserts status, the deny body's error code (NULL: allow, empty body) and
 * the header set: each "Name: value" in want must be there; each name in
 * absent must not. */
static void expect(const struct it_resp *r, long status, const char *error, const char *const *want,
                   const char *const *absent, const char *what)
{
    IT_ASSERT(r->status == status, "%s: HTTP %ld, wanted %ld: %.300s%s", what, r->status, status,
              r->body ? r->body : "", r->error);
    if (error == NULL) {
        IT_ASSERT(r->len == 0, "%s: allow with a body: %.200s", what, r->body);
    } else {
        IT_ASSERT(r->json != NULL && it_resp_str(r, "error") != NULL &&
                      strcmp(it_resp_str(r, "error"), error) == 0 &&
                      it_resp_str(r, "error_message") != NULL && json_object_size(r->json) == 2,
                  "%s: wanted {\"error\":\"%s\",\"error_message\":...}, got %.300s", what, error,
                  r->body);
    }
    for (const char *const *h = want; h != NULL && *h != NULL; h++) {
        char name[64], v[128];
        const char *colon = strchr(*h, ':');
        it_fmt(name, sizeof(name), "%.*s", (int)(colon - *h), *h);
        IT_ASSERT(it_resp_header(r, name, v, sizeof(v)) && strcmp(v, colon + 2) == 0,
                  "%s: wanted header %s, headers:\n%s", what, *h, r->headers);
    }
    for (const char *const *h = absent; h != NULL && *h != NULL; h++) {
        char v[128];
        IT_ASSERT(!it_resp_header(r, *h, v, sizeof(v)), "%s: unexpected %s: %s", what, *h, v);
    }
}

#define H(...)  ((const char *const[]){__VA_ARGS__, NULL})
#define NONE    ((const char *const *)NULL)
#define FLU_HDR H("X-AuthDuration", "X-UserId", "X-Max-Sessions")

/* The §1.2 Flussonic query. */
static void flq(char *out, size_t n, const char *name, const char *tok, const char *type,
                const char *sess, int number)
{
    it_fmt(out, n,
           "name=%s&proto=hls&ip=127.0.0.1&request_type=%s&request_number=%d&session_id=%s&"
           "stream_clients=3&total_clients=118&token=%s&qs=token%%3D%s&user_agent=VLC%%2F3.0.20&"
           "referer=&host=fl.example",
           name, type, number, sess, tok, tok);
}

/* Polls until check(e) answers `status` with `error`; ms taken or -1. */
static long long wait_answer(const struct it_edge *e, const char *query, const char *const *headers,
                             long status, const char *error, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        struct it_resp r;
        chk(e, query, headers, &r);
        bool ok = r.status == status &&
                  (error == NULL ? r.len == 0
                                 : it_resp_str(&r, "error") != NULL &&
                                       strcmp(it_resp_str(&r, "error"), error) == 0);
        it_resp_close(&r);
        if (ok) {
            return (long long)(it_now_ms() - t0);
        }
        it_sleep_ms(5);
    } while (it_now_ms() - t0 < timeout_ms);
    return -1;
}

/* Polls both edges from one start until each answers `status` with
 * `error`; *d1, *d2: ms from the start until each did (-1: never). */
static void wait_both(const char *query, long status, const char *error, unsigned timeout_ms,
                      long long *d1, long long *d2)
{
    uint64_t t0 = it_now_ms();
    *d1 = *d2 = -1;
    while ((*d1 < 0 || *d2 < 0) && it_now_ms() - t0 < timeout_ms) {
        for (int i = 0; i < 2; i++) {
            long long *d = i ? d2 : d1;
            if (*d >= 0) {
                continue;
            }
            struct it_resp r;
            chk(i ? &e2 : &e1, query, NULL, &r);
            if (r.status == status && it_resp_str(&r, "error") != NULL &&
                strcmp(it_resp_str(&r, "error"), error) == 0) {
                *d = (long long)(it_now_ms() - t0);
            }
            it_resp_close(&r);
        }
        it_sleep_ms(2);
    }
}

/* ---- setup ---------------------------------------------------------------------------- */

static void setup_cluster(void)
{
    struct it_opts o = {
        .n_nodes = 3,
        .base_port = BASE_PORT,
        .name = "tokencheck",
        .extra_config =
            "{\"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE1_ADDR "\","
            " \"datacenter\": \"dc1\"}, {\"id\": \"e2\", \"http_address\": \"" EDGE2_ADDR "\","
            " \"datacenter\": \"dc2\"}, {\"id\": \"e3\", \"http_address\": \"" EDGE3_ADDR "\","
            " \"datacenter\": \"dc1\"}], \"probe\": {\"interval_ms\": 0},"
            " \"stream_auth\": {\"skew_s\": 1, \"auth_duration_s\": 60}}",
    };
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    /* t1: the general tenant; t2: the edge's session limit (1); t3: tokens
     * that expire after a second. */
    make_tenant(&t1, "p", "{\"stream_token_ttl_s\":600,\"stream_max_sessions\":3}");
    make_tenant(&t2, "q",
                "{\"stream_token_ttl_s\":600,\"stream_max_sessions\":1,"
                "\"stream_session_limit\":1}");
    make_tenant(&t3, "r", "{\"stream_token_ttl_s\":1}");
    acc1 = make_account(&t1, "200001", NULL);
    acc1b = make_account(&t1, "200002", &cust1b);
    acc2 = make_account(&t2, "300001", NULL);
    acc3 = make_account(&t3, "400001", NULL);
    it_edge_define(&e1, cl->dir, cl->config_path, "e1", EDGE1_ADDR);
    it_edge_define(&e2, cl->dir, cl->config_path, "e2", EDGE2_ADDR);
    it_edge_define(&e3, cl->dir, cl->config_path, "e3", EDGE3_ADDR);
    it_edge_start(&e1);
    it_edge_start(&e2);
    IT_ASSERT(it_edge_wait_health(&e1, "ok", 15000), "e1 never ok");
    IT_ASSERT(it_edge_wait_health(&e2, "ok", 15000), "e2 never ok");
}

/* ---- test 1: the decision tables ------------------------------------------------------ */

static void check_flussonic(const struct url *a, const char *sname_a)
{
    char q[1200], uid[32], hv[64];
    struct it_resp r;
    it_fmt(uid, sizeof(uid), "X-UserId: %lld", acc1);
    it_fmt(hv, sizeof(hv), "X-Session-Name: %lld", acc1);
    /* valid: new_session, then re-checks with request_number incrementing. */
    for (int n = 0; n < 3; n++) {
        flq(q, sizeof(q), sname_a, a->token, n == 0 ? "new_session" : "update_session",
            "6217fd62-16da-4206-9da9-0173d7552a14", n);
        chk(&e1, q, NULL, &r);
        expect(&r, 200, NULL, H("X-AuthDuration: 60", uid, "X-Max-Sessions: 3", hv), NONE,
               "flussonic valid");
        it_resp_close(&r);
    }
    /* The same (session_id, request_number) twice: the same answer. */
    flq(q, sizeof(q), sname_a, a->token, "update_session", "6217fd62-16da-4206-9da9-0173d7552a14",
        2);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, H("X-AuthDuration: 60", uid), NONE, "flussonic repeated");
    it_resp_close(&r);
    /* wrong stream: the token of channel a replayed for channel b, and for
     * a name no channel has. */
    flq(q, sizeof(q), "pb", a->token, "new_session", "wrong-2", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "wrong_stream", NONE, H("X-AuthDuration", "X-UserId"),
           "flussonic wrong stream");
    it_resp_close(&r);
    flq(q, sizeof(q), "nosuch", a->token, "new_session", "wrong-3", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "flussonic unknown name");
    it_resp_close(&r);
    /* malformed: a changed character, a truncated token, not base64, too
     * long, the auto-generated token of a Flussonic without no_auto_token. */
    char bad[5][160];
    it_fmt(bad[0], sizeof(bad[0]), "%s", a->token);
    bad[0][20] = bad[0][20] == 'x' ? 'y' : 'x';
    it_fmt(bad[1], sizeof(bad[1]), "%.40s", a->token);
    it_fmt(bad[2], sizeof(bad[2]), "%.69s!", a->token);
    it_fmt(bad[3], sizeof(bad[3]), "%sAAAA", a->token);
    it_fmt(bad[4], sizeof(bad[4]), "60334b207baa"); /* Flussonic's auto token */
    for (size_t i = 0; i < 5; i++) {
        flq(q, sizeof(q), sname_a, bad[i], "new_session", "bad", 0);
        chk(&e1, q, NULL, &r);
        expect(&r, 403, "token_malformed", NONE, H("X-AuthDuration"), "flussonic malformed");
        it_resp_close(&r);
    }
    /* another tenant's client_id */
    flq(q, sizeof(q), sname_a, a->token, "new_session", "tenant", 0);
    char q2[1300];
    it_fmt(q2, sizeof(q2), "%s&client_id=%lld", q, t2.id);
    chk(&e1, q2, NULL, &r);
    expect(&r, 403, "token_malformed", NONE, NONE, "flussonic other tenant");
    it_resp_close(&r);
    /* missing, empty */
    chk(&e1,
        "name=pa&proto=hls&ip=127.0.0.1&request_type=new_session&request_number=0&session_id=m&"
        "stream_clients=1&total_clients=1",
        NULL, &r);
    expect(&r, 403, "token_missing", NONE, NONE, "flussonic missing");
    it_resp_close(&r);
    flq(q, sizeof(q), sname_a, "", "new_session", "empty", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "token_missing", NONE, NONE, "flussonic empty");
    it_resp_close(&r);

    /* Legacy Flussonic: no session_id, no request_number. */
    it_fmt(q, sizeof(q),
           "token=%s&ip=127.0.0.1&name=%s&referer=&type=hls&request_type=new_session&"
           "stream_clients=1&total_clients=1",
           a->token, sname_a);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, H("X-AuthDuration: 60", uid, "X-Max-Sessions: 3"), NONE,
           "legacy flussonic valid");
    it_resp_close(&r);
    it_fmt(q, sizeof(q),
           "token=%s&ip=127.0.0.1&name=pb&referer=&type=hls&request_type=update_session&"
           "stream_clients=1&total_clients=1",
           a->token);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "legacy flussonic wrong stream");
    it_resp_close(&r);
}

static void check_astra(const struct url *a, const struct url *b)
{
    char q[300], path[300], sname[64];
    struct it_resp r;
    it_fmt(sname, sizeof(sname), "X-Session-Name: %lld", acc1);
    it_fmt(q, sizeof(q), "token=%s&utm=1", a->token);
    it_fmt(path, sizeof(path), "X-Real-Path: %s", a->path);
    /* Astra: X-Channel-ID names the stream. */
    chk(&e1, q,
        H("X-Session-ID: 8d1f63a2c4", "X-Channel-ID: pa", "X-Real-IP: 127.0.0.1", path,
          "X-Real-UA: Lavf/60.3.100", "X-Real-Host: fl.example"),
        &r);
    expect(&r, 200, NULL, H(sname), NONE, "astra valid");
    it_resp_close(&r);
    /* Alta: other spellings, no X-Channel-ID: the path names it. */
    chk(&e1, q,
        H("X-Session-Id: 9e2a", "X-Real-Ip: 127.0.0.1", path, "X-Real-Ua: Lavf/60",
          "X-Real-Origin: https://fl.example"),
        &r);
    expect(&r, 200, NULL, H(sname), NONE, "alta valid");
    it_resp_close(&r);
    char other[300];
    it_fmt(other, sizeof(other), "X-Real-Path: %s", b->path);
    chk(&e1, q, H("X-Session-ID: 8d1f63a2c5", "X-Channel-ID: pb", "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "astra wrong stream");
    it_resp_close(&r);
    chk(&e1, q, H("X-Session-Id: 9e2b", "X-Real-Ip: 127.0.0.1", other), &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "alta wrong stream");
    it_resp_close(&r);
    char bad[300];
    it_fmt(bad, sizeof(bad), "token=%s", a->token);
    bad[6 + 40] = bad[6 + 40] == 'Q' ? 'R' : 'Q';
    chk(&e1, bad, H("X-Session-ID: 8d1f", "X-Channel-ID: pa"), &r);
    expect(&r, 403, "token_malformed", NONE, NONE, "astra malformed");
    it_resp_close(&r);
    chk(&e1, "utm=1", H("X-Session-ID: 8d1f", "X-Channel-ID: pa", "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 401, "token_missing", NONE, NONE, "astra missing");
    it_resp_close(&r);
    chk(&e1, "", H("X-Session-Id: 8d1f", path), &r);
    expect(&r, 401, "token_missing", NONE, NONE, "alta missing");
    it_resp_close(&r);
}

static void check_nginx_generic(const struct url *a, const struct url *b)
{
    char uri[400], q[300], uid[32];
    struct it_resp r;
    it_fmt(uid, sizeof(uid), "X-UserId: %lld", acc1);
    /* nginx auth_request: X-Original-URI $request_uri, X-Real-IP. */
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%s", a->path, a->token);
    chk(&e1, "", H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 204, NULL, NONE, NONE, "nginx valid");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%s", b->path, a->token);
    chk(&e1, "", H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "nginx wrong stream");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%.50s", a->path, a->token);
    chk(&e1, "", H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 403, "token_malformed", NONE, NONE, "nginx malformed");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s", a->path);
    chk(&e1, "", H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 401, "token_missing", NONE, NONE, "nginx missing");
    it_resp_close(&r);
    /* The operator passes ?token=$arg_token instead. */
    it_fmt(q, sizeof(q), "token=%s", a->token);
    chk(&e1, q, H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 204, NULL, NONE, NONE, "nginx token in the query");
    it_resp_close(&r);

    /* Generic (Smarty-style): every allow header at once. */
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, H("X-AuthDuration: 60", uid, "X-Max-Sessions: 3"), NONE, "generic valid");
    it_resp_close(&r);
    it_fmt(q, sizeof(q), "token=%s&name=pb&ip=127.0.0.1", a->token);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "generic wrong stream");
    it_resp_close(&r);
    chk(&e1, "name=pa", NULL, &r);
    expect(&r, 403, "token_missing", NONE, NONE, "generic missing");
    it_resp_close(&r);
    chk(&e1, "token=%25%00%ff", NULL, &r);
    expect(&r, 403, "token_malformed", NONE, NONE, "generic garbage");
    it_resp_close(&r);
    /* Only GET (and HEAD). */
    char url[300];
    it_fmt(url, sizeof(url), "http://%s" CHECK "?token=%s", e1.addr, a->token);
    it_http("POST", url, "{}", 2, NULL, 5000, &r);
    IT_ASSERT_STATUS(&r, 405);
    it_resp_close(&r);
    it_fmt(url, sizeof(url), "http://%s/api" CHECK "?token=%s", e1.addr, a->token);
    it_http("GET", url, NULL, 0, NULL, 5000, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    it_fmt(url, sizeof(url), "http://%s/tvmiddleware/api/streamservice/token/check?token=%s",
           e1.addr, a->token);
    it_http("GET", url, NULL, 0, NULL, 5000, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
}

/* Expired tokens (t3: one-second tokens, skew 1 s). */
static void check_expired(void)
{
    char *key = login(&e1, &t3, "400001");
    struct url a = stream_url(&e1, &t3, key, t3.ch[0]);
    free(key);
    char q[1200], path[300], uri[400], uid[32];
    struct it_resp r;
    /* Still good right away, then expired once its second and the skew passed. */
    flq(q, sizeof(q), "ra", a.token, "new_session", "exp-0", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, NONE, NONE, "fresh short token");
    it_resp_close(&r);
    IT_ASSERT(wait_answer(&e1, q, NULL, 403, "token_expired", 5000) >= 0, "never expired");
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "token_expired", H("X-AuthDuration: 10"), H("X-UserId"),
           "flussonic expired new_session");
    it_resp_close(&r);
    /* update_session of a running session: expiry not applied (§1.5 rule 3). */
    it_fmt(uid, sizeof(uid), "X-UserId: %lld", acc3);
    flq(q, sizeof(q), "ra", a.token, "update_session", "exp-0", 1);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, H(uid, "X-AuthDuration: 10"), NONE, "flussonic expired update_session");
    it_resp_close(&r);
    /* ... but still every other check: the stream. */
    flq(q, sizeof(q), "rb", a.token, "update_session", "exp-0", 2);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "wrong_stream", NONE, NONE, "flussonic expired update, other stream");
    it_resp_close(&r);
    it_fmt(q, sizeof(q), "token=%s", a.token);
    it_fmt(path, sizeof(path), "X-Real-Path: %s", a.path);
    chk(&e1, q, H("X-Session-ID: e1", "X-Channel-ID: ra"), &r);
    expect(&r, 403, "token_expired", NONE, H("X-AuthDuration"), "astra expired");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%s", a.path, a.token);
    chk(&e1, "", H(uri), &r);
    expect(&r, 403, "token_expired", NONE, NONE, "nginx expired");
    it_resp_close(&r);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "token_expired", NONE, NONE, "generic expired");
    it_resp_close(&r);
}

/* The edge's own limit (t2: one session per account) across streamers. */
static void check_session_limit(void)
{
    char *key = login(&e1, &t2, "300001");
    struct url a = stream_url(&e1, &t2, key, t2.ch[0]);
    struct url b = stream_url(&e1, &t2, key, t2.ch[1]);
    free(key);
    char q[1200], uri[400];
    struct it_resp r;
    flq(q, sizeof(q), "qa", a.token, "new_session", "lim-1", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, H("X-Max-Sessions: 1"), NONE, "first session");
    it_resp_close(&r);
    flq(q, sizeof(q), "qb", b.token, "new_session", "lim-2", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "session_limit", NONE, NONE, "flussonic second session");
    it_resp_close(&r);
    it_fmt(q, sizeof(q), "token=%s", b.token);
    chk(&e1, q, H("X-Session-ID: lim-3", "X-Channel-ID: qb", "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 403, "session_limit", NONE, NONE, "astra second session");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%s", b.path, b.token);
    chk(&e1, "", H(uri, "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 403, "session_limit", NONE, NONE, "nginx second session");
    it_resp_close(&r);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "session_limit", NONE, NONE, "generic second session");
    it_resp_close(&r);
    /* The running session goes on, and a repeated start of it is itself. */
    flq(q, sizeof(q), "qa", a.token, "update_session", "lim-1", 1);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, NONE, NONE, "running session update");
    it_resp_close(&r);
    flq(q, sizeof(q), "qa", a.token, "new_session", "lim-1", 0);
    chk(&e1, q, NULL, &r);
    expect(&r, 200, NULL, NONE, NONE, "repeated start");
    it_resp_close(&r);
}

/* token_ip_binding on the streaming service: tokens bound to the device. */
static void check_ip_binding(const char *key)
{
    char path[160];
    it_fmt(path, sizeof(path), "/admin/v1/clients/%lld/streaming-services/%lld", t1.id, t1.svc);
    admin("PATCH", path, "{\"token_ip_binding\":1}", 200, NULL);
    char q[1200];
    struct url a;
    uint64_t t0 = it_now_ms();
    for (;;) { /* until e1 mints bound tokens */
        a = stream_url(&e1, &t1, key, t1.ch[0]);
        it_fmt(q, sizeof(q), "token=%s&ip=10.9.8.7", a.token);
        struct it_resp r;
        chk(&e1, q, NULL, &r);
        bool bound = r.status == 403;
        it_resp_close(&r);
        if (bound) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 5000, "tokens never bound to the viewer");
        it_sleep_ms(20);
    }
    struct it_resp r;
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "ip_mismatch", NONE, NONE, "flussonic other ip");
    it_resp_close(&r);
    flq(q, sizeof(q), "pa", a.token, "new_session", "ip-1", 0);
    chk(&e2, q, NULL, &r);
    expect(&r, 200, NULL, NONE, NONE, "flussonic bound, same ip, other edge");
    it_resp_close(&r);
    it_fmt(q, sizeof(q), "token=%s", a.token);
    chk(&e1, q, H("X-Session-ID: ip-2", "X-Channel-ID: pa", "X-Real-IP: 127.0.0.1"), &r);
    expect(&r, 200, NULL, NONE, NONE, "astra bound, same ip");
    it_resp_close(&r);
    chk(&e1, q, H("X-Session-Id: ip-3", "X-Channel-ID: pa", "X-Real-Ip: 127.0.0.2"), &r);
    expect(&r, 403, "ip_mismatch", NONE, NONE, "alta bound, other ip");
    it_resp_close(&r);
    chk(&e1, q, NULL, &r);
    expect(&r, 403, "ip_mismatch", NONE, NONE, "generic bound, no ip");
    it_resp_close(&r);
    admin("PATCH", path, "{\"token_ip_binding\":0}", 200, NULL);
}

static void test_dialects(void **state)
{
    (void)state;
    setup_cluster();
    char *key = login(&e1, &t1, "200001");
    struct url a = stream_url(&e1, &t1, key, t1.ch[0]);
    struct url b = stream_url(&e1, &t1, key, t1.ch[1]);
    check_flussonic(&a, "pa");
    check_astra(&a, &b);
    check_nginx_generic(&a, &b);
    check_expired();
    check_session_limit();
    check_ip_binding(key);

    /* A token one edge issued validates at the other, both ways. */
    char q[1200];
    struct it_resp r;
    flq(q, sizeof(q), "pa", a.token, "new_session", "cross-1", 0);
    chk(&e2, q, NULL, &r);
    expect(&r, 200, NULL, H("X-AuthDuration: 60"), NONE, "e1's token at e2");
    it_resp_close(&r);
    char *key2 = login(&e2, &t1, "200002");
    struct url a2 = stream_url(&e2, &t1, key2, t1.ch[0]);
    flq(q, sizeof(q), "pa", a2.token, "new_session", "cross-2", 0);
    chk(&e1, q, NULL, &r);
    char uid[32];
    it_fmt(uid, sizeof(uid), "X-UserId: %lld", acc1b);
    expect(&r, 200, NULL, H(uid), NONE, "e2's token at e1");
    it_resp_close(&r);
    free(key2);
    free(key);

    /* Every deny is counted by reason. */
    IT_ASSERT(it_edge_metric(&e1, "tvmw_edge_token_denied_total{reason=\"wrong_stream\"}") >= 5,
              "wrong_stream counted");
    IT_ASSERT(it_edge_metric(&e1, "tvmw_edge_token_denied_total{reason=\"token_expired\"}") >= 4,
              "token_expired counted");
    IT_ASSERT(it_edge_metric(
                  &e1, "tvmw_edge_token_checks_total{dialect=\"astra\",result=\"allow\"}") >= 2,
              "astra allows counted");
    IT_ASSERT(it_edge_metric(&e1, "tvmw_edge_token_prepared_answers") == 1,
              "prepared answers in use");
    IT_ASSERT(it_edge_log_has(&e1, "deny reason=session_limit dialect=flussonic"),
              "denies are logged with their reason");
    it_test_ok();
}

/* ---- test 2: revocation ------------------------------------------------------------------ */

static void test_revocation(void **state)
{
    (void)state;
    char *key = login(&e1, &t1, "200002");
    struct url a = stream_url(&e1, &t1, key, t1.ch[0]);
    free(key);
    char q[1200];
    flq(q, sizeof(q), "pa", a.token, "update_session", "rev-1", 3);
    IT_ASSERT(wait_answer(&e1, q, NULL, 200, NULL, 2000) >= 0, "valid before");

    /* Account deactivated at the control plane: both edges deny within 1 s,
     * including Flussonic's re-checks of running sessions. */
    long long d1, d2;
    json_decref(billing(&t1, "account/deactivate", IT_KV("abonement", "200002")));
    wait_both(q, 403, "account_inactive", 5000, &d1, &d2);
    printf("deactivation visible after the Billing API answered: e1 %lld ms, e2 %lld ms\n", d1, d2);
    IT_ASSERT(d1 >= 0 && d2 >= 0, "deactivation never denied");
    struct it_resp r;
    chk(&e2, q, NULL, &r);
    expect(&r, 403, "account_inactive", H("X-AuthDuration: 10"), NONE, "deactivated account");
    it_resp_close(&r);
    IT_ASSERT(d1 <= VISIBLE_MS && d2 <= VISIBLE_MS, "deactivation took %lld / %lld ms", d1, d2);

    /* Reactivated: tokens issued before the deactivation stay revoked. */
    json_decref(billing(&t1, "account/activate", IT_KV("abonement", "200002")));
    IT_ASSERT(wait_answer(&e1, q, NULL, 403, "token_revoked", 2000) >= 0 &&
                  wait_answer(&e2, q, NULL, 403, "token_revoked", 2000) >= 0,
              "old tokens revoked after reactivation");
    key = login(&e1, &t1, "200002");
    it_sleep_ms(1100); /* a token issued in a later second than the deactivation */
    a = stream_url(&e1, &t1, key, t1.ch[0]);
    free(key);
    flq(q, sizeof(q), "pa", a.token, "new_session", "rev-2", 0);
    IT_ASSERT(wait_answer(&e2, q, NULL, 200, NULL, 2000) >= 0, "new token after reactivation");

    /* Tariff removed from the customer: not entitled within 1 s. */
    char tar[24], cust[24];
    it_fmt(tar, sizeof(tar), "%lld", t1.tariff);
    it_fmt(cust, sizeof(cust), "%lld", cust1b);
    json_decref(
        billing(&t1, "customer/tariff/remove", IT_KV("customer_id", cust, "tariff_id", tar)));
    wait_both(q, 403, "not_entitled", 5000, &d1, &d2);
    printf("tariff removal visible: e1 %lld ms, e2 %lld ms\n", d1, d2);
    IT_ASSERT(d1 >= 0 && d2 >= 0 && d1 <= VISIBLE_MS && d2 <= VISIBLE_MS,
              "tariff removal took %lld / %lld ms", d1, d2);
    json_decref(
        billing(&t1, "customer/tariff/assign", IT_KV("customer_id", cust, "tariff_id", tar)));
    IT_ASSERT(wait_answer(&e1, q, NULL, 200, NULL, 2000) >= 0, "entitled again");
    it_test_ok();
}

/* ---- test 3: keys ------------------------------------------------------------------------ */

static void test_keys(void **state)
{
    (void)state;
    char *key = login(&e1, &t1, "200001");
    struct url old = stream_url(&e1, &t1, key, t1.ch[0]);
    unsigned old_kid = token_kid(old.token);
    json_t *o;
    admin("POST", "/admin/v1/keys/rotate", "{}", 200, &o);
    unsigned new_kid = (unsigned)jint(json_object_get(o, "key"), "kid");
    json_decref(o);
    IT_ASSERT(new_kid > old_kid, "rotation made kid %u after %u", new_kid, old_kid);
    /* New tokens carry the new key at both edges; the old one still validates. */
    struct url fresh;
    uint64_t t0 = it_now_ms();
    for (;;) {
        fresh = stream_url(&e2, &t1, key, t1.ch[0]);
        if (token_kid(fresh.token) == new_kid) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 5000, "e2 never signed with kid %u", new_kid);
        it_sleep_ms(20);
    }
    char qo[1200], qn[1200];
    flq(qo, sizeof(qo), "pa", old.token, "update_session", "key-1", 1);
    flq(qn, sizeof(qn), "pa", fresh.token, "new_session", "key-2", 0);
    for (int i = 0; i < 2; i++) {
        const struct it_edge *e = i ? &e2 : &e1;
        IT_ASSERT(wait_answer(e, qn, NULL, 200, NULL, 2000) >= 0, "new key's token at %s", e->id);
        IT_ASSERT(wait_answer(e, qo, NULL, 200, NULL, 10) >= 0, "old key's token at %s", e->id);
    }
    /* Retired: the old key's tokens fail at every edge within 1 s. */
    char path[64];
    it_fmt(path, sizeof(path), "/admin/v1/keys/%u/retire", old_kid);
    admin("POST", path, "{}", 200, NULL);
    long long d1, d2;
    wait_both(qo, 403, "token_revoked", 5000, &d1, &d2);
    printf("key retirement visible: e1 %lld ms, e2 %lld ms\n", d1, d2);
    IT_ASSERT(d1 >= 0 && d2 >= 0 && d1 <= VISIBLE_MS && d2 <= VISIBLE_MS,
              "retirement took %lld / %lld ms", d1, d2);
    IT_ASSERT(wait_answer(&e1, qn, NULL, 200, NULL, 10) >= 0, "new key still good");
    free(key);
    it_test_ok();
}

/* ---- test 4: outage ---------------------------------------------------------------------- */

static void test_outage(void **state)
{
    (void)state;
    char *key = login(&e1, &t1, "200001");
    struct url a = stream_url(&e1, &t1, key, t1.ch[0]);
    free(key);
    key = login(&e1, &t3, "400001");
    struct url x = stream_url(&e1, &t3, key, t3.ch[0]);
    free(key);
    char q[1200], qx[1200], qf[1200], qd[1200], forged[128];
    flq(q, sizeof(q), "pa", a.token, "new_session", "out-1", 0);
    flq(qx, sizeof(qx), "ra", x.token, "new_session", "out-2", 0);
    it_fmt(forged, sizeof(forged), "%s", a.token);
    forged[30] = forged[30] == 'Q' ? 'R' : 'Q';
    flq(qf, sizeof(qf), "pa", forged, "new_session", "out-3", 0);
    /* An account revoked before the outage. */
    key = login(&e1, &t1, "200002");
    struct url d = stream_url(&e1, &t1, key, t1.ch[1]);
    free(key);
    flq(qd, sizeof(qd), "pb", d.token, "new_session", "out-4", 0);
    json_decref(billing(&t1, "account/deactivate", IT_KV("abonement", "200002")));
    IT_ASSERT(wait_answer(&e1, qd, NULL, 403, "account_inactive", 2000) >= 0 &&
                  wait_answer(&e2, qd, NULL, 403, "account_inactive", 2000) >= 0,
              "revoked before the outage");
    IT_ASSERT(wait_answer(&e1, qx, NULL, 403, "token_expired", 5000) >= 0, "expired before");

    for (uint64_t id = 1; id <= 3; id++) {
        it_node_kill(cl, id);
    }
    /* Nothing changes for the streamers. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 2; i++) {
            const struct it_edge *e = i ? &e2 : &e1;
            struct it_resp r;
            chk(e, q, NULL, &r);
            expect(&r, 200, NULL, H("X-AuthDuration: 60", "X-Max-Sessions: 3"), NONE,
                   "valid during the outage");
            it_resp_close(&r);
            chk(e, qx, NULL, &r);
            expect(&r, 403, "token_expired", NONE, NONE, "expired during the outage");
            it_resp_close(&r);
            chk(e, qf, NULL, &r);
            expect(&r, 403, "token_malformed", NONE, NONE, "forged during the outage");
            it_resp_close(&r);
            chk(e, qd, NULL, &r);
            expect(&r, 403, "account_inactive", NONE, NONE, "revoked during the outage");
            it_resp_close(&r);
        }
        if (round == 0) {
            IT_ASSERT(it_edge_wait_health(&e1, "stale", 40000), "e1 does not report stale");
        }
    }
    /* An edge restarted during the outage answers from its saved state. */
    it_edge_stop(&e2);
    it_edge_start(&e2);
    IT_ASSERT(it_edge_wait_health(&e2, "stale", 10000), "restarted e2 does not serve");
    IT_ASSERT(wait_answer(&e2, q, NULL, 200, NULL, 5000) >= 0, "restarted edge, valid token");
    IT_ASSERT(wait_answer(&e2, qd, NULL, 403, "account_inactive", 10) >= 0,
              "restarted edge, revoked account");

    /* An edge that never had state cannot decide (§5 last row). */
    it_edge_start(&e3);
    IT_ASSERT(it_edge_wait_health(&e3, "no_state", 10000), "e3 reports no state");
    struct it_resp r;
    chk(&e3, q, NULL, &r);
    expect(&r, 403, "unavailable", NONE, NONE, "no state, flussonic new_session");
    it_resp_close(&r);
    char qu[1200];
    flq(qu, sizeof(qu), "pa", a.token, "update_session", "out-1", 1);
    chk(&e3, qu, NULL, &r);
    expect(&r, 500, "unavailable", NONE, NONE, "no state, flussonic update_session");
    it_resp_close(&r);
    char qa[300], uri[400];
    it_fmt(qa, sizeof(qa), "token=%s", a.token);
    chk(&e3, qa, H("X-Session-ID: s", "X-Channel-ID: pa"), &r);
    expect(&r, 503, "unavailable", NONE, NONE, "no state, astra");
    it_resp_close(&r);
    it_fmt(uri, sizeof(uri), "X-Original-URI: %s?token=%s", a.path, a.token);
    chk(&e3, "", H(uri), &r);
    expect(&r, 503, "unavailable", NONE, NONE, "no state, nginx");
    it_resp_close(&r);
    chk(&e3, qa, NULL, &r);
    expect(&r, 503, "unavailable", NONE, NONE, "no state, generic");
    it_resp_close(&r);
    chk(&e3, "name=pa&request_type=new_session&session_id=z", NULL, &r);
    expect(&r, 403, "token_missing", NONE, NONE, "no state, missing token");
    it_resp_close(&r);
    it_test_ok();
}

static int group_teardown(void **state)
{
    (void)state;
    it_edge_stop(&e1);
    it_edge_stop(&e2);
    if (e3.pid != 0) {
        it_edge_stop(&e3);
    }
    if (it_any_failed) {
        it_edge_dump_log(&e1);
        it_edge_dump_log(&e2);
    }
    it_group_done(cl);
    it_cluster_free(cl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dialects, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_revocation, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_keys, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_outage, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
