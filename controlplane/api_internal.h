/*
 * What the HTTP surface's files share (api.c, admin_client.c): the API
 * object and the request machinery — linearizable reads, replicated writes
 * with forwarding, body parsing. HTTP handler threads only.
 */
#ifndef TVMW_CONTROLPLANE_API_INTERNAL_H
#define TVMW_CONTROLPLANE_API_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "common/config.h"
#include "common/http.h"
#include "common/httpc.h"
#include "controlplane/billing_http.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"
#include "controlplane/node.h"

struct cp_probe;

struct cp_api {
    const struct tvmw_config *conf;
    struct cp_node *node;
    struct tvmw_http_server *http;
    struct tvmw_httpc *httpc;
    uint64_t id;
    struct cp_billing_http billing;
    struct cp_probe *_Atomic probe; /* service health probes, for /metrics; may be NULL */
};

/* Changes a result before it is sent (e.g. shows a password). */
typedef void (*cp_api_fixup_cb)(struct cp_result **res, void *arg);

bool cp_api_parse_id(const char *s, size_t len, uint64_t *out);
/* The request id of a write: forwarded id, Idempotency-Key, or random. */
int cp_api_request_id(struct tvmw_http_req *req, uint8_t out[CP_REQID_SIZE]);
/* True when the caller may read the local state linearizably; false when
 * the request was answered (forwarded to the leader, or 503). */
bool cp_api_read_ready(struct cp_api *api, struct tvmw_http_req *req);
/* Proposes payload as a command of `type` (forwarding, retries) and
 * answers the request with its result. */
void cp_api_do_write(struct cp_api *api, struct tvmw_http_req *req, uint16_t type,
                     const json_t *payload);
void cp_api_do_write_ex(struct cp_api *api, struct tvmw_http_req *req, uint16_t type,
                        const json_t *payload, const uint8_t *given_reqid, cp_api_fixup_cb fixup,
                        void *fixup_arg);
/* The body as a JSON object, or NULL after answering 400. */
json_t *cp_api_body_object(struct tvmw_http_req *req, bool allow_empty);
bool cp_api_only_keys(struct tvmw_http_req *req, json_t *o, const char *const *allowed);
void cp_api_method_not_allowed(struct tvmw_http_req *req, const char *allow);

/* admin_client.c: /admin/v1/clients/{cid}/... (catalogue, tariffs,
 * import, audit) and /admin/v1/audit (cid 0). */
void cp_admin_client_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                           const char *rest);
void cp_admin_audit_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid);
/* admin_keys.c: /admin/v1/keys (rest: what follows "/keys"). */
void cp_admin_keys_route(struct cp_api *api, struct tvmw_http_req *req, const char *rest);
/* admin_epg.c: /admin/v1/clients/{cid}/{what}[/{id}[after_id]] for what =
 * "epg-sources", "programs", "epg-commands" (after_id NULL when absent). */
void cp_admin_epg_route(struct cp_api *api, struct tvmw_http_req *req, uint64_t cid,
                        const char *what, uint64_t id, const char *after_id);
/* Whether a request's body is an XMLTV upload, spooled to a file
 * (tvmw_http_server_conf.spool_match). */
bool cp_admin_epg_spool(const char *method, const char *path);

#endif
