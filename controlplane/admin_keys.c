/*
 * Admin API of the token signing keys (docs/admin-api.md, "Keys"):
 *
 *   GET  /admin/v1/keys               every key, never its secret
 *   POST /admin/v1/keys/rotate        a new active key (signs from now on)
 *   POST /admin/v1/keys/{kid}/retire  the key validates nothing any more
 *
 * The secret of a new key is drawn here, on the node that takes the
 * request, and travels in the command (keys.h).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/err.h"
#include "controlplane/api_internal.h"
#include "controlplane/keys.h"

static void keys_list(struct cp_api *api, struct tvmw_http_req *req)
{
    if (!cp_api_read_ready(api, req)) {
        return;
    }
    json_t *keys;
    int rv = cp_keys_list(cp_node_fsm(api->node), &keys);
    if (rv != 0) {
        tvmw_http_reply_error(req, 500, "internal", "state read failed: %s", tvmw_strerror(rv));
        return;
    }
    json_t *out = json_pack("{s:o}", "keys", keys);
    tvmw_http_reply_json(req, 200, out);
    json_decref(out);
}

static void keys_rotate(struct cp_api *api, struct tvmw_http_req *req)
{
    static const char *const fields[] = {NULL};
    json_t *body = cp_api_body_object(req, true);
    if (body == NULL || !cp_api_only_keys(req, body, fields)) {
        json_decref(body);
        return;
    }
    json_decref(body);
    char secret[CP_KEY_SECRET_B64 + 1];
    if (cp_keys_new_secret(secret) != 0) {
        tvmw_http_reply_error(req, 500, "internal", "no random bytes for a key");
        return;
    }
    json_t *p = json_pack("{s:s, s:s}", "op", "add", "secret", secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (p == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    cp_api_do_write(api, req, CP_CMD_KEY, p);
    json_decref(p);
}

void cp_admin_keys_route(struct cp_api *api, struct tvmw_http_req *req, const char *rest)
{
    const char *m = req->method;
    req->route = "admin_keys";
    if (*rest == '\0') {
        if (strcmp(m, "GET") != 0) {
            cp_api_method_not_allowed(req, "GET");
            return;
        }
        keys_list(api, req);
        return;
    }
    if (strcmp(rest, "/rotate") == 0) {
        if (strcmp(m, "POST") != 0) {
            cp_api_method_not_allowed(req, "POST");
            return;
        }
        keys_rotate(api, req);
        return;
    }
    const char *kidp = rest + 1;
    const char *slash = strchr(kidp, '/');
    uint64_t kid;
    if (*rest == '/' && slash != NULL && strcmp(slash, "/retire") == 0 &&
        cp_api_parse_id(kidp, (size_t)(slash - kidp), &kid)) {
        if (strcmp(m, "POST") != 0) {
            cp_api_method_not_allowed(req, "POST");
            return;
        }
        json_t *p = json_pack("{s:s, s:I}", "op", "retire", "kid", (json_int_t)kid);
        cp_api_do_write(api, req, CP_CMD_KEY, p);
        json_decref(p);
        return;
    }
    tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
}
