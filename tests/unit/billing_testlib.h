/*
 * Test helpers for Billing API methods: a fresh state machine in a temp
 * dir with two clients (tenants), and bl_call() which runs a method the
 * way the node does — writes as CP_CMD_BILLING commands through
 * cp_fsm_apply (real LMDB, nested transaction, audit), reads through
 * cp_billing_read — and returns the parsed reply.
 *
 * Parameters are given as a form string "k=v&k2=v2" (no URL decoding:
 * use literal values; '&' and '=' cannot appear in them).
 */
#ifndef TVMW_TESTS_UNIT_BILLING_TESTLIB_H
#define TVMW_TESTS_UNIT_BILLING_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "controlplane/billing.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"

struct bt_env {
    char dir[64];
    struct cp_fsm *f;
    uint64_t index;
    uint64_t time_ms;
    int next_rid;
};

static inline void bt_apply(struct bt_env *e, uint16_t type, const char *payload,
                            struct cp_result **res)
{
    struct cp_cmd c = {
        .type = type, .time_ms = e->time_ms, .payload = payload, .payload_len = strlen(payload)};
    memset(c.reqid, 0, sizeof(c.reqid));
    int rid = ++e->next_rid;
    memcpy(c.reqid, &rid, sizeof(rid));
    size_t n = cp_cmd_encoded_size(c.payload_len);
    uint8_t *buf = malloc(n);
    assert_int_equal(cp_cmd_encode(&c, buf, n), 0);
    uint8_t reqid[CP_REQID_SIZE];
    assert_int_equal(cp_fsm_apply(e->f, ++e->index, buf, n, reqid, res), 0);
    assert_int_equal(cp_fsm_flush(e->f), 0); /* the node flushes before it answers */
    free(buf);
}

/* Two clients: id 1 and id 2. Time starts at 2026-01-15 12:00:00 UTC. */
static inline struct bt_env *bt_new(void)
{
    struct bt_env *e = calloc(1, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "/tmp/tvmw-test-bl-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(cp_fsm_open(e->dir, 256, 600, &e->f), 0);
    e->time_ms = 1768478400000ull;
    for (int i = 1; i <= 2; i++) {
        char p[200];
        struct cp_result *r = NULL;
        snprintf(p, sizeof(p),
                 "{\"name\":\"client %d\",\"api_key\":\"device-key-%d-xxxx\","
                 "\"billing_api_key\":\"top secret %d\"}",
                 i, i, i);
        bt_apply(e, CP_CMD_CLIENT_CREATE, p, &r);
        assert_non_null(r);
        assert_int_equal(r->status, 201);
        cp_result_free(r);
    }
    return e;
}

static inline void bt_free(struct bt_env *e)
{
    char cmd[128];
    cp_fsm_close(e->f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    free(e);
}

static inline json_t *bt_form(const char *form)
{
    json_t *p = json_object();
    char *copy = strdup(form ? form : ""), *save = NULL;
    for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
        }
        json_object_set_new(p, kv, json_string(eq ? eq + 1 : ""));
    }
    free(copy);
    return p;
}

/* Runs `method` for client `client` with the form parameters; returns the
 * reply object (caller decrefs). */
static inline json_t *bt_call(struct bt_env *e, uint64_t client, const char *method,
                              const char *form)
{
    const struct bl_method *m = bl_method_find(method);
    assert_non_null(m);
    json_t *params = bt_form(form);
    json_t *reply = NULL;
    if (m->write) {
        json_t *payload = json_pack("{s:I, s:s, s:o, s:s}", "client_id", (json_int_t)client,
                                    "method", method, "params", params, "source", "127.0.0.1");
        char *text = json_dumps(payload, JSON_COMPACT);
        json_decref(payload);
        struct cp_result *r = NULL;
        bt_apply(e, CP_CMD_BILLING, text, &r);
        free(text);
        assert_non_null(r);
        assert_int_equal(r->status, 200);
        reply = json_loadb(r->body, r->len, 0, NULL);
        cp_result_free(r);
    } else {
        assert_int_equal(cp_billing_read(e->f, client, m, params, &reply), 0);
        json_decref(params);
    }
    assert_non_null(reply);
    return reply;
}

/* Asserts reply.error == code and returns the reply for further checks. */
static inline json_t *bt_expect(json_t *reply, int code)
{
    json_t *err = json_object_get(reply, "error");
    if (!json_is_integer(err) || json_integer_value(err) != code ||
        !json_is_string(json_object_get(reply, "error_message"))) {
        char *t = json_dumps(reply, JSON_COMPACT);
        fail_msg("expected error %d, got %s", code, t);
    }
    return reply;
}

static inline int64_t bt_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) {
        char *t = json_dumps(o, JSON_COMPACT);
        fail_msg("%s is not an integer in %s", k, t);
    }
    return json_integer_value(v);
}

static inline const char *bt_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) {
        char *t = json_dumps(o, JSON_COMPACT);
        fail_msg("%s is not a string in %s", k, t);
    }
    return json_string_value(v);
}

#endif
