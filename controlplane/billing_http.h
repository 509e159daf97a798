/*
 * The Billing API's HTTP layer (billing_http.c) and what it needs from the
 * node's HTTP surface (api.c): reads after the linearizable barrier, writes
 * through raft with forwarding to the leader.
 */
#ifndef TVMW_CONTROLPLANE_BILLING_HTTP_H
#define TVMW_CONTROLPLANE_BILLING_HTTP_H

#include <stdint.h>

#include <jansson.h>

#include "common/http.h"
#include "controlplane/billing.h"
#include "controlplane/cmd.h"

struct cp_api;

struct cp_billing_http {
    struct cp_api *api;
    const char *secret; /* cluster secret (admin token): vouches forwarded origins */
};

/* path: what follows "/billing/api/". Answers the request. */
void cp_billing_handle(struct cp_billing_http *bh, struct tvmw_http_req *req, const char *path);

/* Replaces a clear "password" in params with password_hash/password_salt
 * (generating one for account/create when absent, derived from reqid so a
 * retry gets the same); returns the clear password to show, or NULL. */
char *cp_billing_protect_password(const struct cp_billing_http *bh, const char *method,
                                  json_t *params, const uint8_t *reqid);

/* Implemented in api.c. */
/* The client (tenant) record: 0, TVMW_ENOTFOUND (definitely absent),
 * TVMW_ENOLEADER (not known here and no leader to ask), or 1 when the
 * request was answered by forwarding it to the leader. */
int cp_billing_client(struct cp_billing_http *bh, struct tvmw_http_req *req, uint64_t id,
                      json_t **out);
int cp_billing_request_id(struct tvmw_http_req *req, uint8_t out[CP_REQID_SIZE]);
/* A follower whose copy of a client refused a request (maybe only because
 * a new key or network list has not reached it yet) lets the leader
 * decide: 1 when the leader's answer was relayed, else 0. */
int cp_billing_recheck_at_leader(struct cp_billing_http *bh, struct tvmw_http_req *req);
void cp_billing_do_read(struct cp_billing_http *bh, struct tvmw_http_req *req, uint64_t client_id,
                        const struct bl_method *m, json_t *params);
/* Proposes payload as a CP_CMD_BILLING command and answers with its reply;
 * `shown_password`, if not NULL, replaces "password" in a successful reply. */
void cp_billing_do_write(struct cp_billing_http *bh, struct tvmw_http_req *req,
                         const uint8_t reqid[CP_REQID_SIZE], json_t *payload,
                         const char *shown_password);

#endif
