/*
 * it_basic: the admin API contract of docs/admin-api.md on a 3-node
 * cluster. Writes through followers are forwarded, reads are linearizable
 * from any node and stale reads converge, errors have the documented codes
 * and bodies, Idempotency-Key dedups across nodes, and the node endpoints
 * (healthz, metrics) answer without a token.
 */
#include <stdlib.h>
#include <string.h>

#include "it_cmocka.h"

#define BASE_PORT 23000
#define N_NODES   3
#define MAX_BODY  4096

static struct it_cluster *cl;

static const char *const no_headers[] = {NULL};

/* ---- helpers ------------------------------------------------------------- */

static bool is_hex32(const char *s)
{
    if (s == NULL || strlen(s) != 32) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return false;
        }
    }
    return true;
}

static json_t *resp_client(const struct it_resp *r)
{
    return json_object_get(r->json, "client");
}

static uint64_t client_id(const struct it_resp *r)
{
    return (uint64_t)json_integer_value(json_object_get(resp_client(r), "id"));
}

static const char *client_str(const struct it_resp *r, const char *key)
{
    return json_string_value(json_object_get(resp_client(r), key));
}

/* POSTs a client to node `node` and asserts 201. Returns the id. */
static uint64_t create(uint64_t node, const char *body, struct it_resp *r)
{
    it_admin(cl, node, "POST", "/admin/v1/clients", body, NULL, r);
    IT_ASSERT_STATUS(r, 201);
    IT_ASSERT(client_id(r) > 0, "no client id in %s", r->body);
    return client_id(r);
}

static size_t count_named(uint64_t node, const char *name)
{
    json_t *arr = it_list_clients(cl, node, false);
    IT_ASSERT(arr != NULL, "cannot list clients from node %llu", (unsigned long long)node);
    size_t n = 0, i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *nm = json_string_value(json_object_get(o, "name"));
        n += nm != NULL && strcmp(nm, name) == 0;
    }
    json_decref(arr);
    return n;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_create_through_each_node(void **state)
{
    (void)state;
    uint64_t ids[N_NODES + 1] = {0};
    char names[N_NODES + 1][32];
    for (uint64_t n = 1; n <= N_NODES; n++) {
        char body[128];
        struct it_resp r;
        snprintf(names[n], sizeof(names[n]), "basic via node %llu", (unsigned long long)n);
        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"settings\":{\"via\":%llu}}", names[n],
                 (unsigned long long)n);
        ids[n] = create(n, body, &r);
        IT_ASSERT(strcmp(client_str(&r, "name"), names[n]) == 0, "name: %s", r.body);
        IT_ASSERT(is_hex32(client_str(&r, "api_key")), "api_key not 32 hex: %s", r.body);
        IT_ASSERT(is_hex32(client_str(&r, "billing_api_key")), "billing key: %s", r.body);
        IT_ASSERT(strcmp(client_str(&r, "api_key"), client_str(&r, "billing_api_key")) != 0,
                  "the two keys are equal: %s", r.body);
        IT_ASSERT(json_integer_value(json_object_get(resp_client(&r), "created_at")) > 1600000000,
                  "created_at: %s", r.body);
        char ct[128] = "";
        IT_ASSERT(it_resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                      strncmp(ct, "application/json", 16) == 0,
                  "Content-Type %s", ct);
        it_resp_close(&r);
        for (uint64_t k = 1; k < n; k++) {
            IT_ASSERT(ids[k] != ids[n], "two creates got the same id %llu",
                      (unsigned long long)ids[n]);
        }
    }

    /* Linearizable reads: from every node, right after the writes. */
    for (uint64_t from = 1; from <= N_NODES; from++) {
        for (uint64_t n = 1; n <= N_NODES; n++) {
            char path[64];
            struct it_resp r;
            snprintf(path, sizeof(path), "/admin/v1/clients/%llu", (unsigned long long)ids[n]);
            it_admin(cl, from, "GET", path, NULL, NULL, &r);
            IT_ASSERT_STATUS(&r, 200);
            IT_ASSERT(client_id(&r) == ids[n] && strcmp(client_str(&r, "name"), names[n]) == 0,
                      "node %llu returned %s", (unsigned long long)from, r.body);
            json_t *via = json_object_get(json_object_get(resp_client(&r), "settings"), "via");
            IT_ASSERT(json_integer_value(via) == (json_int_t)n, "settings lost: %s", r.body);
            it_resp_close(&r);
        }
    }

    /* Stale reads once every node applied everything. */
    IT_ASSERT(it_wait_converged(cl, 10000), "nodes did not converge");
    for (uint64_t from = 1; from <= N_NODES; from++) {
        for (uint64_t n = 1; n <= N_NODES; n++) {
            char path[64];
            struct it_resp r;
            snprintf(path, sizeof(path), "/admin/v1/clients/%llu?stale=1",
                     (unsigned long long)ids[n]);
            it_admin(cl, from, "GET", path, NULL, NULL, &r);
            IT_ASSERT_STATUS(&r, 200);
            IT_ASSERT(client_id(&r) == ids[n], "stale read on node %llu: %s",
                      (unsigned long long)from, r.body);
            it_resp_close(&r);
        }
        /* The list is ordered by id and holds all three. */
        json_t *arr = it_list_clients(cl, from, true);
        IT_ASSERT(arr != NULL, "list failed");
        uint64_t prev = 0;
        size_t found = 0, i;
        json_t *o;
        json_array_foreach(arr, i, o)
        {
            uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "id"));
            IT_ASSERT(id > prev, "list not ordered by id at %zu", i);
            prev = id;
            for (uint64_t n = 1; n <= N_NODES; n++) {
                found += id == ids[n];
            }
        }
        json_decref(arr);
        IT_ASSERT(found == N_NODES, "node %llu lists %zu of the 3 clients",
                  (unsigned long long)from, found);
    }
    it_test_ok();
}

static void test_patch_delete(void **state)
{
    (void)state;
    struct it_resp r;
    char path[64];
    uint64_t id = create(2, "{\"name\":\"to patch\",\"settings\":{\"a\":1}}", &r);
    json_int_t created = json_integer_value(json_object_get(resp_client(&r), "created_at"));
    char api_key[64];
    snprintf(api_key, sizeof(api_key), "%s", client_str(&r, "api_key"));
    it_resp_close(&r);
    snprintf(path, sizeof(path), "/admin/v1/clients/%llu", (unsigned long long)id);

    /* PATCH through a different node: only the given fields change. */
    it_admin(cl, 3, "PATCH", path, "{\"name\":\"patched\",\"settings\":{\"b\":2}}", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(strcmp(client_str(&r, "name"), "patched") == 0, "%s", r.body);
    IT_ASSERT(strcmp(client_str(&r, "api_key"), api_key) == 0, "api_key changed: %s", r.body);
    IT_ASSERT(json_integer_value(json_object_get(resp_client(&r), "updated_at")) >= created,
              "updated_at: %s", r.body);
    it_resp_close(&r);
    it_admin(cl, 3, "PATCH", path, "{\"api_key\":\"0123456789abcdef0123\"}", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);

    for (uint64_t n = 1; n <= N_NODES; n++) {
        it_admin(cl, n, "GET", path, NULL, NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        json_t *settings = json_object_get(resp_client(&r), "settings");
        IT_ASSERT(strcmp(client_str(&r, "name"), "patched") == 0 &&
                      strcmp(client_str(&r, "api_key"), "0123456789abcdef0123") == 0 &&
                      json_integer_value(json_object_get(settings, "b")) == 2,
                  "node %llu: %s", (unsigned long long)n, r.body);
        it_resp_close(&r);
    }

    /* Unknown ids. */
    it_admin(cl, 1, "PATCH", "/admin/v1/clients/999999", "{\"name\":\"x\"}", NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);
    it_admin(cl, 2, "GET", "/admin/v1/clients/999999", NULL, NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);

    /* DELETE through a follower or the leader, then it is gone everywhere. */
    it_admin(cl, 1, "DELETE", path, NULL, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(it_resp_int(&r, "deleted") == (long long)id, "%s", r.body);
    it_resp_close(&r);
    for (uint64_t n = 1; n <= N_NODES; n++) {
        it_admin(cl, n, "GET", path, NULL, NULL, &r);
        IT_ASSERT_ERROR(&r, 404, "not_found");
        it_resp_close(&r);
    }
    it_admin(cl, 2, "DELETE", path, NULL, NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);
    it_admin(cl, 2, "PATCH", path, "{\"name\":\"ghost\"}", NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);
    it_test_ok();
}

static void test_auth(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL, /* no header at all */
        "Authorization: Bearer wrong-token-wrong-token-xx",
        "Authorization: Bearer integration-test-token-012",   /* a prefix */
        "Authorization: Bearer integration-test-token-01234", /* longer */
        "Authorization: Basic aW50ZWdyYXRpb24tdGVzdC10b2tlbi0wMTIz",
        "Authorization: bearer",
    };
    size_t before = count_named(1, "must not exist");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (uint64_t n = 1; n <= N_NODES; n++) {
            const char *hdrs[] = {bad[i], NULL};
            char url[256];
            struct it_resp r;
            it_node_url(cl, n, "/admin/v1/clients", url, sizeof(url));
            it_http("GET", url, NULL, 0, bad[i] ? hdrs : NULL, IT_HTTP_TIMEOUT, &r);
            IT_ASSERT_ERROR(&r, 401, "unauthorized");
            it_resp_close(&r);
            it_http("POST", url, "{\"name\":\"must not exist\"}", 25, bad[i] ? hdrs : NULL,
                    IT_HTTP_TIMEOUT, &r);
            IT_ASSERT_ERROR(&r, 401, "unauthorized");
            it_resp_close(&r);
            it_node_url(cl, n, "/admin/v1/cluster", url, sizeof(url));
            it_http("GET", url, NULL, 0, bad[i] ? hdrs : NULL, IT_HTTP_TIMEOUT, &r);
            IT_ASSERT_ERROR(&r, 401, "unauthorized");
            it_resp_close(&r);
        }
    }
    IT_ASSERT(count_named(2, "must not exist") == before, "an unauthorized POST created a client");
    it_test_ok();
}

static void test_bad_requests(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *error;
    } cases[] = {
        {"{\"name\":", "malformed_json"},
        {"not json", "malformed_json"},
        {"[\"name\"]", "malformed_json"},
        {"\"name\"", "malformed_json"},
        {"{\"name\":\"a\",\"name\":\"b\"}", "malformed_json"}, /* duplicate key */
        {"", "malformed_json"},
        {"{}", "bad_request"},
        {"{\"name\":5}", "bad_request"},
        {"{\"name\":null}", "bad_request"},
        {"{\"name\":\"\"}", "bad_request"},
        {"{\"name\":\"ok\",\"settings\":\"str\"}", "bad_request"},
        {"{\"name\":\"ok\",\"settings\":[1]}", "bad_request"},
        {"{\"name\":\"ok\",\"api_key\":\"short\"}", "bad_request"},
        {"{\"name\":\"ok\",\"billing_api_key\":42}", "bad_request"},
        {"{\"name\":\"ok\",\"colour\":\"red\"}", "bad_request"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (uint64_t n = 1; n <= N_NODES; n++) {
            struct it_resp r;
            it_admin(cl, n, "POST", "/admin/v1/clients", cases[i].body, NULL, &r);
            if (r.status != 400) {
                fprintf(stderr, "case %zu body=%s node=%llu\n", i, cases[i].body,
                        (unsigned long long)n);
            }
            IT_ASSERT_ERROR(&r, 400, cases[i].error);
            it_resp_close(&r);
        }
    }
    /* A name of 201 bytes is over the limit, 200 is fine. */
    char body[512], name[202];
    memset(name, 'n', 201);
    name[201] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    struct it_resp r;
    it_admin(cl, 2, "POST", "/admin/v1/clients", body, NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);
    name[200] = '\0';
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    uint64_t id = create(2, body, &r);
    it_resp_close(&r);

    /* PATCH validates too (name must stay a non-empty string). */
    char path[64];
    snprintf(path, sizeof(path), "/admin/v1/clients/%llu", (unsigned long long)id);
    it_admin(cl, 3, "PATCH", path, "{\"name\":7}", NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);
    it_admin(cl, 3, "PATCH", path, "{\"settings\":true}", NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);
    it_admin(cl, 3, "PATCH", path, "{bad", NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "malformed_json");
    it_resp_close(&r);

    /* Membership and transfer bodies are checked as well. */
    it_admin(cl, 1, "POST", "/admin/v1/cluster/members", "{\"id\":\"four\"}", NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);
    it_admin(cl, 1, "POST", "/admin/v1/cluster/transfer", "{\"id\":\"x\"}", NULL, &r);
    IT_ASSERT_ERROR(&r, 400, "bad_request");
    it_resp_close(&r);
    it_test_ok();
}

static void test_routes_and_methods(void **state)
{
    (void)state;
    static const char *const not_found[] = {
        "/admin/v1/nope",
        "/admin/v1/clientsx",
        "/admin/v1/clients/abc",
        "/admin/v1/clients/0",
        "/admin/v1/clients/1/extra",
        "/admin/v1/cluster/nope",
        "/admin/v1/cluster/members/x",
    };
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        struct it_resp r;
        it_admin(cl, 1 + i % N_NODES, "GET", not_found[i], NULL, NULL, &r);
        if (r.status != 404) {
            fprintf(stderr, "path %s\n", not_found[i]);
        }
        IT_ASSERT_ERROR(&r, 404, "not_found");
        it_resp_close(&r);
    }
    /* Outside /admin/v1/ no token is needed to get a 404. */
    char url[256];
    struct it_resp r;
    it_node_url(cl, 2, "/nope", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, IT_HTTP_TIMEOUT, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);

    static const struct {
        const char *method;
        const char *path;
        const char *allow;
    } wrong[] = {
        {"PUT", "/admin/v1/clients", "GET, POST"},
        {"DELETE", "/admin/v1/clients", "GET, POST"},
        {"POST", "/admin/v1/clients/1", "GET, PATCH, DELETE"},
        {"PUT", "/admin/v1/clients/1", "GET, PATCH, DELETE"},
        {"POST", "/admin/v1/cluster", "GET"},
        {"GET", "/admin/v1/cluster/transfer", "POST"},
        {"GET", "/admin/v1/cluster/members", "POST"},
        {"GET", "/admin/v1/cluster/members/2", "DELETE"},
        {"GET", "/admin/v1/cluster/members/2/promote", "POST"},
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        char allow[128] = "";
        it_admin(cl, 1 + i % N_NODES, wrong[i].method, wrong[i].path,
                 strcmp(wrong[i].method, "GET") == 0 ? NULL : "{}", NULL, &r);
        IT_ASSERT(it_resp_header(&r, "Allow", allow, sizeof(allow)) &&
                      strcmp(allow, wrong[i].allow) == 0,
                  "%s %s: Allow \"%s\", want \"%s\"", wrong[i].method, wrong[i].path, allow,
                  wrong[i].allow);
        IT_ASSERT_ERROR(&r, 405, "method_not_allowed");
        it_resp_close(&r);
    }
    it_test_ok();
}

static void test_body_limit(void **state)
{
    (void)state;
    /* 10 KB against http.max_body_bytes 4096. */
    size_t big = 10 * 1024;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, ' ', big);
    memcpy(body, "{\"name\":\"too big\",\"settings\":{\"pad\":\"", 38);
    memset(body + 38, 'x', big - 38 - 4);
    memcpy(body + big - 4, "\"}} ", 4);
    body[big] = '\0';
    for (uint64_t n = 1; n <= N_NODES; n++) {
        struct it_resp r;
        char url[256];
        const char *hdrs[] = {"Authorization: Bearer " IT_TOKEN, NULL};
        it_node_url(cl, n, "/admin/v1/clients", url, sizeof(url));
        it_http("POST", url, body, big, hdrs, IT_HTTP_TIMEOUT, &r);
        IT_ASSERT_ERROR(&r, 413, "too_large");
        it_resp_close(&r);
        /* Without a Content-Length: the limit holds while reading. */
        const char *chunked[] = {"Authorization: Bearer " IT_TOKEN, "Transfer-Encoding: chunked",
                                 NULL};
        it_http("POST", url, body, big, chunked, IT_HTTP_TIMEOUT, &r);
        IT_ASSERT_ERROR(&r, 413, "too_large");
        it_resp_close(&r);
    }
    free(body);
    IT_ASSERT(count_named(1, "too big") == 0, "a body over the limit created a client");

    /* A body just under the limit is accepted, and the node still serves. */
    char ok[MAX_BODY];
    size_t pad = MAX_BODY - 200;
    int n = snprintf(ok, sizeof(ok), "{\"name\":\"just under\",\"settings\":{\"pad\":\"%0*d\"}}",
                     (int)pad, 0);
    IT_ASSERT(n > 0 && (size_t)n < sizeof(ok), "test body does not fit");
    struct it_resp r;
    create(3, ok, &r);
    it_resp_close(&r);
    it_test_ok();
}

static void test_idempotency(void **state)
{
    (void)state;
    const char *key = "Idempotency-Key: basic-idem-1";
    const char *hdrs[] = {key, NULL};
    struct it_resp r;
    uint64_t first = 0;
    /* The same request to each node: one client, the first answer. */
    for (uint64_t n = 1; n <= N_NODES; n++) {
        it_admin(cl, n, "POST", "/admin/v1/clients", "{\"name\":\"idem one\"}", hdrs, &r);
        IT_ASSERT_STATUS(&r, 201);
        if (first == 0) {
            first = client_id(&r);
        }
        IT_ASSERT(client_id(&r) == first, "repeat through node %llu got id %llu, first %llu",
                  (unsigned long long)n, (unsigned long long)client_id(&r),
                  (unsigned long long)first);
        it_resp_close(&r);
    }
    IT_ASSERT(count_named(2, "idem one") == 1, "the idempotent create applied %zu times",
              count_named(2, "idem one"));
    /* The key decides, not the body: the first result comes back. */
    it_admin(cl, 3, "POST", "/admin/v1/clients", "{\"name\":\"idem other\"}", hdrs, &r);
    IT_ASSERT_STATUS(&r, 201);
    IT_ASSERT(client_id(&r) == first && strcmp(client_str(&r, "name"), "idem one") == 0,
              "a repeated key with another body answered %s", r.body);
    it_resp_close(&r);
    IT_ASSERT(count_named(1, "idem other") == 0, "a repeated key applied another body");

    /* Another key makes another client; no key makes one each time. */
    const char *hdrs2[] = {"Idempotency-Key: basic-idem-2", NULL};
    it_admin(cl, 2, "POST", "/admin/v1/clients", "{\"name\":\"idem one\"}", hdrs2, &r);
    IT_ASSERT_STATUS(&r, 201);
    IT_ASSERT(client_id(&r) != first, "a different key returned the same client");
    it_resp_close(&r);
    for (int i = 0; i < 2; i++) {
        it_admin(cl, 3, "POST", "/admin/v1/clients", "{\"name\":\"idem none\"}", no_headers, &r);
        IT_ASSERT_STATUS(&r, 201);
        it_resp_close(&r);
    }
    IT_ASSERT(count_named(1, "idem none") == 2, "two creates without a key");

    /* A repeated DELETE with its key answers as the first one did. */
    char path[64];
    snprintf(path, sizeof(path), "/admin/v1/clients/%llu", (unsigned long long)first);
    const char *dk[] = {"Idempotency-Key: basic-idem-delete", NULL};
    for (uint64_t n = 1; n <= N_NODES; n++) {
        it_admin(cl, n, "DELETE", path, NULL, dk, &r);
        IT_ASSERT_STATUS(&r, 200);
        IT_ASSERT(it_resp_int(&r, "deleted") == (long long)first, "%s", r.body);
        it_resp_close(&r);
    }

    /* Keys must be 1..64 printable characters. */
    char long_key[100];
    snprintf(long_key, sizeof(long_key), "Idempotency-Key: %065d", 7);
    const char *bad_keys[][2] = {{long_key, NULL}, {"Idempotency-Key: a\x7f", NULL}};
    for (size_t i = 0; i < 2; i++) {
        it_admin(cl, 1, "POST", "/admin/v1/clients", "{\"name\":\"bad key\"}", bad_keys[i], &r);
        IT_ASSERT_ERROR(&r, 400, "bad_request");
        it_resp_close(&r);
    }
    IT_ASSERT(count_named(1, "bad key") == 0, "a bad key still created a client");
    it_test_ok();
}

/* The loss checker used by the other tests must be able to fail: a
 * fabricated ack, a wrong id and an unacknowledged client are reported. */
static void test_checker_detects_loss(void **state)
{
    (void)state;
    struct it_ack acks[2];
    IT_ASSERT(it_create_client(cl, 0, "chk-1", "chk-key-1", 15000, &acks[0]) == 0, "create");
    IT_ASSERT(it_check_acks(cl, 1, false, acks, 1, "chk", NULL) == 0, "a real ack is reported");
    memset(&acks[1], 0, sizeof(acks[1]));
    snprintf(acks[1].name, sizeof(acks[1].name), "chk-never-written");
    acks[1].id = 999999;
    IT_ASSERT(it_check_acks(cl, 2, false, acks, 2, "chk", NULL) == 1, "a lost write is not seen");
    acks[1] = acks[0];
    acks[1].id++;
    IT_ASSERT(it_check_acks(cl, 3, false, &acks[1], 1, NULL, NULL) == 1, "a wrong id is not seen");
    IT_ASSERT(it_check_acks(cl, 3, false, NULL, 0, "chk", NULL) == 1,
              "an unacknowledged client is not seen");
    const char *const doubt[] = {"chk-1", NULL};
    IT_ASSERT(it_check_acks(cl, 3, false, NULL, 0, "chk", doubt) == 0, "in-doubt not honoured");
    it_test_ok();
}

static void test_health_metrics_cluster(void **state)
{
    (void)state;
    unsigned leaders = 0;
    long long leader_id = -1;
    for (uint64_t n = 1; n <= N_NODES; n++) {
        struct it_resp r;
        IT_ASSERT(it_healthz(cl, n, &r), "no /healthz from node %llu: %s", (unsigned long long)n,
                  r.error);
        IT_ASSERT_STATUS(&r, 200);
        const char *role = it_resp_str(&r, "role");
        IT_ASSERT(strcmp(it_resp_str(&r, "status"), "ok") == 0, "%s", r.body);
        IT_ASSERT(it_resp_int(&r, "node_id") == (long long)n, "%s", r.body);
        IT_ASSERT(role != NULL && (strcmp(role, "leader") == 0 || strcmp(role, "follower") == 0),
                  "role: %s", r.body);
        leaders += strcmp(role, "leader") == 0;
        if (leader_id < 0) {
            leader_id = it_resp_int(&r, "leader_id");
        }
        IT_ASSERT(it_resp_int(&r, "leader_id") == leader_id && leader_id > 0,
                  "leader ids differ: %s", r.body);
        IT_ASSERT(it_resp_int(&r, "term") > 0 && it_resp_int(&r, "applied_index") > 0 &&
                      it_resp_int(&r, "commit_index") > 0 && it_resp_int(&r, "last_index") > 0,
                  "%s", r.body);
        it_resp_close(&r);

        char url[256];
        it_node_url(cl, n, "/metrics", url, sizeof(url));
        it_http("GET", url, NULL, 0, NULL, IT_HTTP_TIMEOUT, &r);
        IT_ASSERT_STATUS(&r, 200);
        IT_ASSERT(strstr(r.body, "\ntvmw_cp_term ") != NULL ||
                      strncmp(r.body, "tvmw_cp_term ", 13) == 0,
                  "no tvmw_cp_term sample in /metrics");
        IT_ASSERT(strstr(r.body, "tvmw_cp_http_requests_total{") != NULL,
                  "no tvmw_cp_http_requests_total in /metrics");
        char ct[128] = "";
        IT_ASSERT(it_resp_header(&r, "Content-Type", ct, sizeof(ct)) &&
                      strncmp(ct, "text/plain", 10) == 0,
                  "metrics Content-Type %s", ct);
        it_resp_close(&r);
        IT_ASSERT(it_metric(cl, n, "tvmw_cp_term") >= 1, "tvmw_cp_term < 1");
        IT_ASSERT(it_metric(cl, n, "tvmw_cp_is_leader") == (n == (uint64_t)leader_id),
                  "tvmw_cp_is_leader wrong on node %llu", (unsigned long long)n);

        /* The cluster view: three voters, one leader. */
        it_admin(cl, n, "GET", "/admin/v1/cluster", NULL, NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        json_t *members = json_object_get(r.json, "members");
        IT_ASSERT(json_array_size(members) == N_NODES, "members: %s", r.body);
        size_t i;
        json_t *m;
        unsigned lead = 0;
        json_array_foreach(members, i, m)
        {
            IT_ASSERT(strcmp(json_string_value(json_object_get(m, "role")), "voter") == 0 &&
                          json_is_true(json_object_get(m, "voting")),
                      "member %zu: %s", i, r.body);
            uint64_t mid = (uint64_t)json_integer_value(json_object_get(m, "id"));
            IT_ASSERT(mid >= 1 && mid <= N_NODES &&
                          strcmp(json_string_value(json_object_get(m, "http_address")),
                                 cl->nodes[mid].http) == 0 &&
                          strcmp(json_string_value(json_object_get(m, "raft_address")),
                                 cl->nodes[mid].raft) == 0,
                      "member addresses: %s", r.body);
            lead += json_is_true(json_object_get(m, "leader"));
        }
        IT_ASSERT(lead == 1, "%u members marked leader: %s", lead, r.body);
        it_resp_close(&r);
    }
    IT_ASSERT(leaders == 1, "%u nodes say they lead", leaders);
    it_test_ok();
}

static int group_setup(void **state)
{
    (void)state;
    struct it_opts o = {
        .n_nodes = N_NODES, .base_port = BASE_PORT, .max_body_bytes = MAX_BODY, .name = "basic"};
    cl = it_cluster_new(&o);
    if (cl == NULL) {
        return -1;
    }
    if (it_wait_all_ready(cl, 20000) == 0) {
        it_cluster_free(cl);
        cl = NULL;
        return -1;
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

/* Last, as it takes the quorum away: with two of three nodes down, node 1
 * answers 503 (retryable, Retry-After: 1) without holding the caller
 * much past the request timeout, still serves stale reads, and a retry of
 * the same Idempotency-Key once the quorum is back applies exactly once. */
static void test_no_quorum(void **state)
{
    (void)state;
    struct it_resp r;
    const char *key[] = {"Idempotency-Key: basic-no-quorum", NULL};
    it_node_kill(cl, 2);
    it_node_kill(cl, 3);
    it_admin(cl, 1, "POST", "/admin/v1/clients", "{\"name\":\"no quorum\"}", key, &r);
    IT_ASSERT_ERROR(&r, 503, "unavailable");
    char retry_after[16] = "";
    IT_ASSERT(it_resp_header(&r, "Retry-After", retry_after, sizeof(retry_after)) &&
                  strcmp(retry_after, "1") == 0,
              "Retry-After: \"%s\"", retry_after);
    IT_ASSERT(json_is_true(json_object_get(r.json, "retryable")), "not retryable: %s", r.body);
    IT_ASSERT(r.took_ms < 8000, "the 503 took %llu ms (request_timeout_ms is 5000)",
              (unsigned long long)r.took_ms);
    it_resp_close(&r);

    /* Linearizable reads fail, stale reads still answer. */
    it_admin(cl, 1, "GET", "/admin/v1/clients", NULL, NULL, &r);
    IT_ASSERT_ERROR(&r, 503, "unavailable");
    it_resp_close(&r);
    it_admin(cl, 1, "GET", "/admin/v1/clients?stale=1", NULL, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    uint64_t t0 = it_now_ms();
    bool down = false;
    while (!down && it_now_ms() - t0 < 10000) {
        IT_ASSERT(it_healthz(cl, 1, &r), "no /healthz: %s", r.error);
        down = r.status == 503 && strcmp(it_resp_str(&r, "status"), "unavailable") == 0;
        it_resp_close(&r);
        it_sleep_ms(100);
    }
    IT_ASSERT(down, "/healthz of node 1 still says ok without a quorum");

    IT_ASSERT(it_node_start(cl, 2) == 0 && it_node_start(cl, 3) == 0, "restart");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader after the quorum came back");
    struct it_ack ack;
    IT_ASSERT(it_create_client(cl, 2, "no quorum", "basic-no-quorum", 15000, &ack) == 0,
              "retry after the quorum came back");
    IT_ASSERT(count_named(3, "no quorum") == 1, "the retried create applied %zu times",
              count_named(3, "no quorum"));
    it_test_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_through_each_node, it_test_setup,
                                        it_test_teardown),
        cmocka_unit_test_setup_teardown(test_patch_delete, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_auth, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_methods, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_checker_detects_loss, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_health_metrics_cluster, it_test_setup,
                                        it_test_teardown),
        cmocka_unit_test_setup_teardown(test_no_quorum, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
