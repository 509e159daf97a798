/*
 * Admin API of one client (tenant): its catalogue, tariffs (through the
 * Billing API methods), bulk import, and the audit trail. See
 * docs/admin-api.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/api_internal.h"
#include "controlplane/billing.h"
#include "controlplane/catalog.h"

#define CP_IMPORT_MAX_ITEMS 10000

/* ---- catalogue, tariffs and audit of one client ---------------------------- */

static void reply_read(struct tvmw_http_req *req, int rv, const char *key, json_t *v,
                       const char *what)
{
    if (rv == TVMW_ENOTFOUND) {
        tvmw_http_reply_error(req, 404, "not_found", "no such %s", what);
        return;
    }
    if (rv != 0) {
        tvmw_http_reply_error(req, 500, "internal", "state read failed: %s", tvmw_strerror(rv));
        return;
    }
    json_t *out = json_pack("{s:o}", key, v);
    tvmw_http_reply_json(req, 200, out);
    json_decref(out);
}

static void catalog_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                          const char *kind, uint64_t id)
{
    const char *m = req->method;
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    if (strcmp(m, "GET") == 0) {
        if (!cp_api_read_ready(api, req)) {
            return;
        }
        json_t *v = NULL;
        int rv =
            id == 0 ? cp_catalog_list(fsm, cid, kind, &v) : cp_catalog_get(fsm, cid, kind, id, &v);
        reply_read(req, rv,
                   id == 0 ? (strcmp(kind, "streaming-services") == 0 ? "streaming_services" : kind)
                           : cp_catalog_singular(kind),
                   v, cp_catalog_singular(kind));
        return;
    }
    bool ok =
        id == 0 ? strcmp(m, "POST") == 0 : strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
    if (!ok) {
        cp_api_method_not_allowed(req, id == 0 ? "GET, POST" : "GET, PATCH, DELETE");
        return;
    }
    json_t *p;
    if (strcmp(m, "DELETE") == 0) {
        p = json_pack("{s:I, s:s, s:s, s:I}", "client_id", (json_int_t)cid, "kind", kind, "op",
                      "delete", "id", (json_int_t)id);
    } else {
        json_t *fields = cp_api_body_object(req, false);
        if (fields == NULL) {
            return;
        }
        const char *bad = cp_catalog_check(kind, fields, id == 0);
        if (bad != NULL) {
            tvmw_http_reply_error(req, 400, "bad_request", "%s", bad);
            json_decref(fields);
            return;
        }
        p = json_pack("{s:I, s:s, s:s, s:I, s:o}", "client_id", (json_int_t)cid, "kind", kind, "op",
                      "put", "id", (json_int_t)id, "fields", fields);
    }
    cp_api_do_write(api, req, CP_CMD_CATALOG, p);
    json_decref(p);
}

static void tariff_links_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                               uint64_t tariff, const char *what)
{
    const char *kind =
        strcmp(what, "channels") == 0 ? "tariff-channels" : "tariff-streaming-services";
    if (strcmp(req->method, "GET") == 0) {
        if (!cp_api_read_ready(api, req)) {
            return;
        }
        json_t *v = NULL;
        int rv = cp_catalog_links(cp_node_fsm(api->node), cid, kind, tariff, &v);
        reply_read(req, rv, "ids", v, "tariff");
        return;
    }
    if (strcmp(req->method, "PUT") != 0) {
        cp_api_method_not_allowed(req, "GET, PUT");
        return;
    }
    static const char *const fields[] = {"ids", NULL};
    json_t *o = cp_api_body_object(req, false);
    if (o == NULL || !cp_api_only_keys(req, o, fields)) {
        json_decref(o);
        return;
    }
    json_t *p = json_pack("{s:I, s:s, s:s, s:I, s:O}", "client_id", (json_int_t)cid, "kind", kind,
                          "op", "link", "id", (json_int_t)tariff, "ids",
                          json_object_get(o, "ids") ? json_object_get(o, "ids") : json_null());
    json_decref(o);
    cp_api_do_write(api, req, CP_CMD_CATALOG, p);
    json_decref(p);
}

/* Admin tariffs reuse the Billing API methods (same validation, same
 * replies, recorded in the audit trail with source "admin"). */
static void tariffs_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid, uint64_t id)
{
    const char *m = req->method;
    if (strcmp(m, "GET") == 0) {
        if (!cp_api_read_ready(api, req)) {
            return;
        }
        json_t *params = json_object(), *reply = NULL;
        int rv = cp_billing_read(cp_node_fsm(api->node), cid, bl_method_find("tariff/list"), params,
                                 &reply);
        json_decref(params);
        if (rv != 0) {
            tvmw_http_reply_error(req, 500, "internal", "state read failed");
            return;
        }
        json_t *list = json_object_get(reply, "tariffs"), *one = NULL;
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t)
        {
            if ((uint64_t)json_integer_value(json_object_get(t, "id")) == id) {
                one = t;
            }
        }
        if (id != 0 && one == NULL) {
            tvmw_http_reply_error(req, 404, "not_found", "no such tariff");
        } else {
            json_t *out =
                id ? json_pack("{s:O}", "tariff", one) : json_pack("{s:O}", "tariffs", list);
            tvmw_http_reply_json(req, 200, out);
            json_decref(out);
        }
        json_decref(reply);
        return;
    }
    const char *method = id == 0 ? (strcmp(m, "POST") == 0 ? "tariff/create" : NULL)
                         : strcmp(m, "PATCH") == 0  ? "tariff/modify"
                         : strcmp(m, "DELETE") == 0 ? "tariff/delete"
                                                    : NULL;
    if (method == NULL) {
        cp_api_method_not_allowed(req, id == 0 ? "GET, POST" : "GET, PATCH, DELETE");
        return;
    }
    json_t *o = strcmp(m, "DELETE") == 0 ? json_object() : cp_api_body_object(req, false);
    if (o == NULL) {
        return;
    }
    /* Billing methods take text parameters. */
    json_t *params = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        char num[64];
        if (json_is_string(v)) {
            json_object_set(params, key, v);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            json_object_set_new(params, key, json_string(num));
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%.2f", json_real_value(v));
            json_object_set_new(params, key, json_string(num));
        } else if (json_is_boolean(v)) {
            json_object_set_new(params, key, json_string(json_is_true(v) ? "1" : "0"));
        }
    }
    json_decref(o);
    if (id != 0) {
        char num[32];
        snprintf(num, sizeof(num), "%llu", (unsigned long long)id);
        json_object_set_new(params, "tariff_id", json_string(num));
    }
    json_t *p = json_pack("{s:I, s:s, s:o, s:s}", "client_id", (json_int_t)cid, "method", method,
                          "params", params, "source", "admin");
    cp_api_do_write(api, req, CP_CMD_BILLING, p);
    json_decref(p);
}

void cp_admin_audit_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid)
{
    if (strcmp(req->method, "GET") != 0) {
        cp_api_method_not_allowed(req, "GET");
        return;
    }
    uint64_t after = 0, limit = 100;
    const char *a = tvmw_http_query(req, "after"), *l = tvmw_http_query(req, "limit");
    if ((a != NULL && !cp_api_parse_id(a, strlen(a), &after) && strcmp(a, "0") != 0) ||
        (l != NULL && (!cp_api_parse_id(l, strlen(l), &limit) || limit > 1000))) {
        tvmw_http_reply_error(req, 400, "bad_request", "after: an index; limit: 1..1000");
        return;
    }
    if (!cp_api_read_ready(api, req)) {
        return;
    }
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    MDB_txn *txn;
    MDB_cursor *cur;
    if (cp_fsm_read_begin(fsm, &txn) != 0) {
        tvmw_http_reply_error(req, 500, "internal", "state read failed");
        return;
    }
    uint8_t kb[8];
    tvmw_put_be64(kb, after + 1);
    MDB_val k = {.mv_size = 8, .mv_data = kb}, v;
    json_t *records = json_array();
    uint64_t last = after;
    if (mdb_cursor_open(txn, cp_fsm_dbs(fsm)->audit, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             rc == 0 && json_array_size(records) < limit;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            json_t *r = json_loadb(v.mv_data, v.mv_size, 0, NULL);
            last = tvmw_get_be64(k.mv_data);
            if (r != NULL && (cid == 0 || (uint64_t)json_integer_value(
                                              json_object_get(r, "client_id")) == cid)) {
                json_array_append(records, r);
            }
            json_decref(r);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    json_t *out = json_pack("{s:o, s:I}", "records", records, "next_after", (json_int_t)last);
    tvmw_http_reply_json(req, 200, out);
    json_decref(out);
}

/* Puts the generated or given clear passwords of account/create items
 * back into their replies (arg: array of strings or nulls by item). */
static void show_batch_passwords(struct cp_result **res, void *arg)
{
    json_t *shown = arg;
    json_t *o = json_loadb((*res)->body, (*res)->len, 0, NULL);
    json_t *results = json_object_get(o, "results");
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        json_t *pw = json_array_get(shown, i);
        if (json_is_string(pw) && json_integer_value(json_object_get(r, "error")) == 0 &&
            json_object_get(r, "password") != NULL) {
            json_object_set(r, "password", pw);
        }
    }
    struct cp_result *nr = o ? cp_result_json((*res)->status, o) : NULL;
    if (nr != NULL) {
        cp_result_free(*res);
        *res = nr;
    }
}

/* Bulk import: many Billing API write methods in one raft entry. */
static void import_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid)
{
    static const char *const fields[] = {"items", NULL};
    if (strcmp(req->method, "POST") != 0) {
        cp_api_method_not_allowed(req, "POST");
        return;
    }
    json_t *o = cp_api_body_object(req, false);
    if (o == NULL || !cp_api_only_keys(req, o, fields)) {
        json_decref(o);
        return;
    }
    json_t *items = json_object_get(o, "items");
    uint8_t reqid[CP_REQID_SIZE];
    if (!json_is_array(items) || json_array_size(items) == 0 ||
        json_array_size(items) > CP_IMPORT_MAX_ITEMS) {
        tvmw_http_reply_error(req, 400, "bad_request", "\"items\" must be an array of 1..%d",
                              CP_IMPORT_MAX_ITEMS);
        json_decref(o);
        return;
    }
    if (cp_api_request_id(req, reqid) != 0) {
        tvmw_http_reply_error(req, 400, "bad_request", "bad Idempotency-Key");
        json_decref(o);
        return;
    }
    json_t *shown = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *method = json_string_value(json_object_get(it, "method"));
        json_t *params = json_object_get(it, "params");
        char *pw = NULL;
        if (method != NULL && json_is_object(params) &&
            (strcmp(method, "account/create") == 0 || strcmp(method, "account/modify") == 0)) {
            uint8_t item_id[CP_REQID_SIZE];
            char key[64], hex[2 * CP_REQID_SIZE + 1];
            cp_reqid_hex(reqid, hex);
            snprintf(key, sizeof(key), "%s:%zu", hex, i);
            cp_reqid_make(key, item_id);
            pw = cp_billing_protect_password(&api->billing, method, params, item_id);
        }
        json_array_append_new(shown, pw ? json_string(pw) : json_null());
        free(pw);
    }
    json_t *p = json_pack("{s:I, s:s, s:O}", "client_id", (json_int_t)cid, "source", "import",
                          "items", items);
    cp_api_do_write_ex(api, req, CP_CMD_BILLING_BATCH, p, reqid, show_batch_passwords, shown);
    json_decref(p);
    json_decref(shown);
    json_decref(o);
}

void cp_admin_client_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                           const char *rest)
{
    static const char *const kinds[] = {"channels", "categories", "datacenters",
                                        "streaming-services", NULL};
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    uint64_t id = 0;
    req->route = "admin_catalog";
    if (slash != NULL && !cp_api_parse_id(slash + 1, strcspn(slash + 1, "/"), &id)) {
        tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
        return;
    }
    const char *after_id = slash ? strchr(slash + 1, '/') : NULL;
    /* A client that does not exist has nothing: 404 for reads and writes
     * alike (a follower that has not seen a new client yet asks the leader). */
    json_t *client = NULL;
    int crv = cp_billing_client(&api->billing, req, cid, &client);
    json_decref(client);
    if (crv == 1) {
        return; /* answered by the leader */
    }
    if (crv == TVMW_ENOLEADER) {
        tvmw_http_reply_error(req, 503, "unavailable", "no leader to confirm client %llu",
                              (unsigned long long)cid);
        return;
    }
    if (crv != 0) {
        tvmw_http_reply_error(req, 404, "not_found", "client %llu does not exist",
                              (unsigned long long)cid);
        return;
    }
    if (n == 5 && strncmp(rest, "audit", 5) == 0 && slash == NULL) {
        cp_admin_audit_route(api, req, cid);
        return;
    }
    if (n == 6 && strncmp(rest, "import", 6) == 0 && slash == NULL) {
        import_route(api, req, cid);
        return;
    }
    if (n == 7 && strncmp(rest, "tariffs", 7) == 0) {
        if (after_id == NULL) {
            tariffs_route(api, req, cid, id);
        } else if (strcmp(after_id, "/channels") == 0 ||
                   strcmp(after_id, "/streaming-services") == 0) {
            tariff_links_route(api, req, cid, id, after_id + 1);
        } else {
            tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
        }
        return;
    }
    static const char *const epg[] = {"epg-sources", "programs", "epg-commands", NULL};
    for (const char *const *k = epg; *k != NULL; k++) {
        if (strlen(*k) == n && strncmp(rest, *k, n) == 0) {
            cp_admin_epg_route(api, req, cid, *k, id, after_id);
            return;
        }
    }
    for (const char *const *k = kinds; *k != NULL; k++) {
        if (strlen(*k) == n && strncmp(rest, *k, n) == 0 && after_id == NULL) {
            catalog_route(api, req, cid, *k, id);
            return;
        }
    }
    tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
}
