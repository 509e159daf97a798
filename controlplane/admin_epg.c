/*
 * Admin API of a client's EPG (docs/admin-api.md, "EPG"): its sources,
 * XMLTV uploads and URL runs (imported by this node, epg_import.h), the
 * programme guide, and the epg-commands route through which a node that
 * is not the leader hands its programme batches to the leader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "controlplane/api_internal.h"
#include "controlplane/epg.h"
#include "controlplane/epg_import.h"

#define PROGRAMS_DEFAULT_LIMIT 1000
#define PROGRAMS_MAX_LIMIT     100000
#define IMPORT_KEY_MAX         64

/* "/admin/v1/clients/<id>/epg-sources/<id>/upload": digits only. */
static bool digits_then(const char **p, const char *then)
{
    const char *s = *p;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 19 || strncmp(s + n, then, strlen(then)) != 0) {
        return false;
    }
    *p = s + n + strlen(then);
    return true;
}

bool cp_admin_epg_spool(const char *method, const char *path)
{
    const char *p = path;
    if (strcmp(method, "POST") != 0 || strncmp(p, "/admin/v1/clients/", 18) != 0) {
        return false;
    }
    p += 18;
    return digits_then(&p, "/epg-sources/") && digits_then(&p, "/upload") && *p == '\0';
}

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

static void sources_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid, uint64_t id)
{
    const char *m = req->method;
    if (strcmp(m, "GET") == 0) {
        if (!cp_api_read_ready(api, req)) {
            return;
        }
        json_t *v = NULL;
        struct cp_fsm *fsm = cp_node_fsm(api->node);
        int rv = id == 0 ? cp_epg_source_list(fsm, cid, &v) : cp_epg_source_get(fsm, cid, id, &v);
        reply_read(req, rv, id == 0 ? "epg_sources" : "epg_source", v, "EPG source");
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
        p = json_pack("{s:s, s:I, s:I}", "op", "source_delete", "client_id", (json_int_t)cid, "id",
                      (json_int_t)id);
    } else {
        json_t *fields = cp_api_body_object(req, false);
        if (fields == NULL) {
            return;
        }
        const char *bad = cp_epg_source_check(fields, id == 0);
        if (bad != NULL) {
            tvmw_http_reply_error(req, 400, "bad_request", "%s", bad);
            json_decref(fields);
            return;
        }
        p = json_pack("{s:s, s:I, s:I, s:o}", "op", "source_put", "client_id", (json_int_t)cid,
                      "id", (json_int_t)id, "fields", fields);
    }
    cp_api_do_write(api, req, CP_CMD_EPG, p);
    json_decref(p);
}

/* The import's key: the caller's Idempotency-Key (a repeated upload is
 * then deduplicated batch by batch), else a fresh random one. */
static bool import_key(struct tvmw_http_req *req, const char *prefix, char *out, size_t len)
{
    const char *k = tvmw_http_header(req, "Idempotency-Key");
    if (k != NULL) {
        size_t n = strlen(k);
        for (size_t i = 0; i < n; i++) {
            if (k[i] < 0x21 || k[i] > 0x7e) {
                return false;
            }
        }
        if (n == 0 || n > IMPORT_KEY_MAX) {
            return false;
        }
        snprintf(out, len, "%s:key:%s", prefix, k);
        return true;
    }
    uint8_t r[CP_REQID_SIZE];
    char hex[2 * CP_REQID_SIZE + 1];
    cp_reqid_make(NULL, r);
    cp_reqid_hex(r, hex);
    snprintf(out, len, "%s:%s", prefix, hex);
    return true;
}

static void reply_import(struct tvmw_http_req *req, json_t *report)
{
    const char *status = json_string_value(json_object_get(report, "status"));
    if (status != NULL && strcmp(status, "error") != 0) {
        json_t *out = json_pack("{s:O}", "import", report);
        tvmw_http_reply_json(req, 200, out);
        json_decref(out);
        return;
    }
    static const struct {
        const char *code;
        unsigned status;
    } map[] = {{"invalid_xmltv", 422}, {"too_large", 413},    {"not_found", 404},  {"busy", 409},
               {"bad_request", 400},   {"fetch_failed", 502}, {"unavailable", 503}};
    const char *code = json_string_value(json_object_get(report, "error"));
    unsigned http = 500;
    for (size_t i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].code, code) == 0) {
            http = map[i].status;
        }
    }
    const char *msg = json_string_value(json_object_get(report, "message"));
    json_t *out = json_pack("{s:s, s:s, s:O}", "error", code ? code : "internal", "message",
                            msg ? msg : "import failed", "import", report);
    if (http == 503 && out != NULL) {
        json_object_set_new(out, "retryable", json_true());
    }
    tvmw_http_reply_json(req, http, out);
    json_decref(out);
}

static void upload_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid, uint64_t id)
{
    if (strcmp(req->method, "POST") != 0) {
        cp_api_method_not_allowed(req, "POST");
        return;
    }
    char key[IMPORT_KEY_MAX + 64];
    if (!import_key(req, "upload", key, sizeof(key))) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "Idempotency-Key must be 1..64 printable characters");
        return;
    }
    int fd = req->spool_fd, own = -1;
    if (fd < 0) {
        /* Not spooled by the server (a forwarded or unusual request): the
         * body is in memory, and the importer reads files. */
        int rv = cp_epg_spool_open(api->conf, &own);
        if (rv == 0 && req->body.len > 0) {
            ssize_t w = write(own, req->body.data, req->body.len);
            rv = w == (ssize_t)req->body.len ? 0 : -EIO;
        }
        if (rv != 0) {
            if (own >= 0) {
                close(own);
            }
            tvmw_http_reply_error(req, 500, "internal", "cannot store the upload: %s",
                                  tvmw_strerror(rv));
            return;
        }
        fd = own;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        tvmw_http_reply_error(req, 500, "internal", "cannot rewind the upload");
    } else {
        struct cp_epg_env env = {.conf = api->conf, .node = api->node, .httpc = api->httpc};
        json_t *report = NULL;
        if (cp_epg_import(&env, cid, id, fd, key, &report) != 0) {
            tvmw_http_reply_error(req, 500, "internal", "out of memory");
        } else {
            reply_import(req, report);
        }
        json_decref(report);
    }
    if (own >= 0) {
        close(own);
    }
}

static void run_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid, uint64_t id)
{
    if (strcmp(req->method, "POST") != 0) {
        cp_api_method_not_allowed(req, "POST");
        return;
    }
    char key[IMPORT_KEY_MAX + 64];
    if (!import_key(req, "run", key, sizeof(key))) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "Idempotency-Key must be 1..64 printable characters");
        return;
    }
    struct cp_epg_env env = {.conf = api->conf, .node = api->node, .httpc = api->httpc};
    json_t *report = NULL;
    if (cp_epg_run(&env, cid, id, key, &report) != 0) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    reply_import(req, report);
    json_decref(report);
}

/* A decimal query parameter: dflt when absent; false when malformed. */
static bool query_num(struct tvmw_http_req *req, const char *name, uint64_t dflt, uint64_t max,
                      uint64_t *out)
{
    const char *v = tvmw_http_query(req, name);
    *out = dflt;
    if (v == NULL) {
        return true;
    }
    if (strcmp(v, "0") == 0) {
        *out = 0;
        return true;
    }
    return cp_api_parse_id(v, strlen(v), out) && *out <= max;
}

static void programs_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid)
{
    uint64_t ch, from, to, limit;
    if (strcmp(req->method, "GET") != 0) {
        cp_api_method_not_allowed(req, "GET");
        return;
    }
    if (!query_num(req, "channel_id", 0, INT64_MAX, &ch) || ch == 0 ||
        !query_num(req, "from", 0, INT64_MAX, &from) ||
        !query_num(req, "to", INT64_MAX, INT64_MAX, &to) ||
        !query_num(req, "limit", PROGRAMS_DEFAULT_LIMIT, PROGRAMS_MAX_LIMIT, &limit) ||
        limit == 0) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "channel_id (an id) is required; from, to: Unix seconds; "
                              "limit 1..%d",
                              PROGRAMS_MAX_LIMIT);
        return;
    }
    if (!cp_api_read_ready(api, req)) {
        return;
    }
    json_t *v = NULL;
    int rv = cp_epg_programs_list(cp_node_fsm(api->node), cid, ch, (int64_t)from, (int64_t)to,
                                  (unsigned)limit, &v);
    reply_read(req, rv, "programs", v, "channel");
}

/* Programme batches and import outcomes, as the importer proposes them;
 * usable by hand as well (docs/admin-api.md). */
static void commands_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid)
{
    if (strcmp(req->method, "POST") != 0) {
        cp_api_method_not_allowed(req, "POST");
        return;
    }
    json_t *o = cp_api_body_object(req, false);
    if (o == NULL) {
        return;
    }
    const char *op = json_string_value(json_object_get(o, "op"));
    json_t *c = json_object_get(o, "client_id");
    if (op == NULL || (strcmp(op, "programs") != 0 && strcmp(op, "import_status") != 0)) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "\"op\" must be \"programs\" or \"import_status\"");
    } else if (c != NULL && (!json_is_integer(c) || (uint64_t)json_integer_value(c) != cid)) {
        tvmw_http_reply_error(req, 400, "bad_request", "\"client_id\" is not this client");
    } else {
        json_object_set_new(o, "client_id", json_integer((json_int_t)cid));
        cp_api_do_write(api, req, CP_CMD_EPG, o);
    }
    json_decref(o);
}

void cp_admin_epg_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                        const char *what, uint64_t id, const char *after_id)
{
    req->route = "admin_epg";
    if (strcmp(what, "programs") == 0 && id == 0 && after_id == NULL) {
        programs_route(api, req, cid);
    } else if (strcmp(what, "epg-commands") == 0 && id == 0 && after_id == NULL) {
        commands_route(api, req, cid);
    } else if (strcmp(what, "epg-sources") == 0 && after_id == NULL) {
        sources_route(api, req, cid, id);
    } else if (strcmp(what, "epg-sources") == 0 && id != 0 && strcmp(after_id, "/upload") == 0) {
        req->route = "admin_epg_import";
        upload_route(api, req, cid, id);
    } else if (strcmp(what, "epg-sources") == 0 && id != 0 && strcmp(after_id, "/run") == 0) {
        req->route = "admin_epg_import";
        run_route(api, req, cid, id);
    } else {
        tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
    }
}
