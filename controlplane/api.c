/*
 * Admin API, health and metrics of a control-plane node.
 *
 * Forwarding: a follower proxies writes and linearizable reads to the
 * leader (never redirects: billing clients do not follow redirects on
 * POST). The proxied request carries X-Tvmw-Request-Id, so the leader
 * proposes it under the same request id and a repeated forward after a
 * failure cannot apply twice, and X-Tvmw-Forwarded, so that a node that is
 * not the leader any more answers 503 instead of forwarding again.
 */
#include "controlplane/api.h"
#include "controlplane/api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raft.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/http.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controlplane/billing_http.h"
#include "controlplane/catalog.h"
#include "controlplane/changelog.h"
#include "controlplane/device_writes.h"
#include "controlplane/epg_import.h"
#include "controlplane/probe.h"

#define RETRY_PAUSE_MS      100
#define IDEMPOTENCY_KEY_MAX 64
#define FORWARD_RESP_MAX    (64u << 20)

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

bool cp_api_parse_id(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0) {
        return false;
    }
    *out = v;
    return true;
}

/* The HTTP address of member `id`: the cluster file, else the replicated
 * member table (members added at run time). */
static int member_http_address(struct cp_api *api, uint64_t id, char *out, size_t len)
{
    const struct tvmw_node_conf *nc = tvmw_config_node(api->conf, id);
    if (nc != NULL) {
        snprintf(out, len, "%s", nc->http_address);
        return 0;
    }
    MDB_txn *txn;
    json_t *rec;
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_get(txn, cp_fsm_dbs(fsm)->members, id, &rec);
    mdb_txn_abort(txn);
    if (rv != 0) {
        return rv;
    }
    const char *h = json_string_value(json_object_get(rec, "http_address"));
    rv = h != NULL ? 0 : TVMW_ENOTFOUND;
    if (h != NULL) {
        snprintf(out, len, "%s", h);
    }
    json_decref(rec);
    return rv;
}

/* ---- forwarding ---------------------------------------------------------- */

/* Proxies the request to the leader. Returns 0 after relaying an answer,
 * TVMW_EIO if it gave no answer or a 503 (the caller may retry; the
 * request may have reached the leader's log). */
static int forward(struct cp_api *api, struct tvmw_http_req *req, uint64_t leader,
                   const uint8_t *reqid, unsigned timeout_ms)
{
    char addr[TVMW_ADDR_MAX], url[1024], rid[64], hop[64], ct[160], auth[300];
    char err[256];
    if (member_http_address(api, leader, addr, sizeof(addr)) != 0) {
        return TVMW_EIO;
    }
    const char *q = tvmw_http_raw_query(req);
    int n = snprintf(url, sizeof(url), "http://%s%s%s%s", addr, req->path, *q ? "?" : "", q);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return TVMW_ETOOBIG;
    }
    char origin[96], origin_sig[96];
    const char *headers[8];
    unsigned nh = 0;
    const char *a = tvmw_http_header(req, "Authorization");
    const char *c = tvmw_http_header(req, "Content-Type");
    if (a != NULL && (size_t)snprintf(auth, sizeof(auth), "Authorization: %s", a) < sizeof(auth)) {
        headers[nh++] = auth;
    }
    if (c != NULL && (size_t)snprintf(ct, sizeof(ct), "Content-Type: %s", c) < sizeof(ct)) {
        headers[nh++] = ct;
    }
    if (reqid != NULL) {
        char hex[2 * CP_REQID_SIZE + 1];
        cp_reqid_hex(reqid, hex);
        snprintf(rid, sizeof(rid), "X-Tvmw-Request-Id: %s", hex);
        headers[nh++] = rid;
    }
    snprintf(hop, sizeof(hop), "X-Tvmw-Forwarded: %llu", (unsigned long long)api->id);
    headers[nh++] = hop;
    /* The leader sees us as the peer: vouch for the caller's address (the
     * Billing API restricts source networks), signed with the cluster secret. */
    char sig[65];
    bl_password_hash(api->conf->admin_token, req->remote, sig);
    snprintf(origin, sizeof(origin), "X-Tvmw-Origin: %s", req->remote);
    snprintf(origin_sig, sizeof(origin_sig), "X-Tvmw-Origin-Sig: %s", sig);
    headers[nh++] = origin;
    headers[nh++] = origin_sig;
    headers[nh] = NULL;

    struct tvmw_httpc_resp resp;
    bool has_body = req->body.len > 0 || strcmp(req->method, "GET") != 0;
    int rv = tvmw_httpc_do(api->httpc, req->method, url, headers,
                           has_body ? (req->body.data ? req->body.data : "") : NULL, req->body.len,
                           timeout_ms, &resp, err, sizeof(err));
    if (rv == 0 && resp.status != 503) {
        tvmw_http_reply(req, (unsigned)resp.status,
                        resp.content_type[0] ? resp.content_type : "application/json",
                        resp.body.data ? resp.body.data : "", resp.body.len, NULL);
    } else {
        TVMW_LOG_DEBUG("api", "forward to leader=%llu failed: %s", (unsigned long long)leader,
                       rv == 0 ? "503" : err);
        rv = TVMW_EIO;
    }
    tvmw_buf_close(&resp.body);
    return rv;
}

/* Paces the retry loops of writes, reads and membership changes: waits a
 * little before the next attempt, through an election, but gives up early
 * when no leader has been known for two election timeouts (no quorum),
 * instead of holding the caller for the whole request timeout. */
struct retry {
    uint64_t deadline_ns;
    uint64_t leaderless_since_ns;
    uint64_t grace_ns;
};

static void retry_init(struct cp_api *api, struct retry *r)
{
    r->deadline_ns = tvmw_now_ns() + (uint64_t)api->conf->http.request_timeout_ms * 1000000u;
    r->leaderless_since_ns = 0;
    r->grace_ns = (uint64_t)api->conf->raft.election_timeout_ms * 2000000u;
}

static unsigned retry_left_ms(const struct retry *r)
{
    uint64_t now = tvmw_now_ns();
    return now < r->deadline_ns ? (unsigned)((r->deadline_ns - now) / 1000000u) : 0;
}

/* Returns false when the caller should stop retrying. */
static bool retry_again(struct retry *r, uint64_t leader)
{
    uint64_t now = tvmw_now_ns();
    if (leader != 0) {
        r->leaderless_since_ns = 0;
    } else if (r->leaderless_since_ns == 0) {
        r->leaderless_since_ns = now;
    } else if (now - r->leaderless_since_ns > r->grace_ns) {
        return false;
    }
    if (now + (uint64_t)RETRY_PAUSE_MS * 1000000u >= r->deadline_ns) {
        return false;
    }
    sleep_ms(RETRY_PAUSE_MS);
    return true;
}

static bool forwarded_in(struct tvmw_http_req *req)
{
    return tvmw_http_header(req, "X-Tvmw-Forwarded") != NULL;
}

static void reply_unavailable(struct tvmw_http_req *req, int rv)
{
    /* A forwarded request answered here may be a retry of one that reached
     * the old leader's log: only the node the client spoke to can know
     * that nothing was done (the fault-injection suite caught a -1 for a
     * write that had been applied). */
    bool nothing_done = (rv == TVMW_ENOTLEADER || rv == TVMW_ENOLEADER) && !forwarded_in(req);
    const char *why =
        rv == TVMW_EUNKNOWN ? "the outcome is not known yet; retry with the same Idempotency-Key"
        : nothing_done      ? "no leader known (election in progress or no quorum); nothing was "
                              "done"
        : rv == TVMW_EIO    ? "the leader did not answer in time"
                            : tvmw_strerror(rv);
    if (strcmp(req->route, "billing") == 0) {
        /* Billing clients read errors from a 200 body, and the PHP client
         * retries -1, which is therefore only used when nothing happened
         * (spec 4.2). An unknown outcome is a 503 instead, which every
         * client treats as a transport failure. */
        char body[256];
        int n = snprintf(body, sizeof(body), "{\"error\":%d,\"error_message\":\"%s\"}",
                         nothing_done ? BL_EINTERNAL : -503, why);
        static const char *const retry[] = {"Retry-After", "1", NULL};
        tvmw_http_reply(req, nothing_done ? 200 : 503, "application/json; charset=utf-8", body,
                        (size_t)n, nothing_done ? NULL : retry);
        return;
    }
    tvmw_http_reply_error(req, 503, "unavailable", "%s", why);
}

/* ---- writes ---------------------------------------------------------------- */

/* The request id: X-Tvmw-Request-Id from a forwarding node, else the
 * client's Idempotency-Key, else a fresh random id. */
int cp_api_request_id(struct tvmw_http_req *req, uint8_t out[CP_REQID_SIZE])
{
    const char *fwd = tvmw_http_header(req, "X-Tvmw-Request-Id");
    if (fwd != NULL) {
        return cp_reqid_parse_hex(fwd, out);
    }
    const char *key = tvmw_http_header(req, "Idempotency-Key");
    if (key != NULL) {
        size_t n = strlen(key);
        if (n == 0 || n > IDEMPOTENCY_KEY_MAX) {
            return TVMW_EMALFORMED;
        }
        for (size_t i = 0; i < n; i++) {
            if (key[i] < 0x21 || key[i] > 0x7e) {
                return TVMW_EMALFORMED;
            }
        }
    }
    return cp_reqid_make(key, out);
}

/* Proposes `payload` as a command of `type`, forwarding to the leader when
 * this node is not, retrying while the outcome is known not to have
 * happened, and answers the request. */

/* Replaces "password" in a successful Billing API reply with the clear
 * password only the proposing node knows (it never enters the log). */
static void show_password(struct cp_result **res, void *arg)
{
    const char *password = arg;
    json_t *o = json_loadb((*res)->body, (*res)->len, 0, NULL);
    if (o != NULL && json_integer_value(json_object_get(o, "error")) == 0 &&
        json_object_get(o, "password") != NULL) {
        json_object_set_new(o, "password", json_string(password));
        struct cp_result *r = cp_result_json((*res)->status, o);
        if (r != NULL) {
            cp_result_free(*res);
            *res = r;
        }
        return;
    }
    json_decref(o);
}

void cp_api_do_write_ex(struct cp_api *api, struct tvmw_http_req *req, uint16_t type,
                        const json_t *payload, const uint8_t *given_reqid, cp_api_fixup_cb fixup,
                        void *fixup_arg)
{
    uint8_t reqid[CP_REQID_SIZE];
    if (given_reqid != NULL) {
        memcpy(reqid, given_reqid, CP_REQID_SIZE);
    } else if (cp_api_request_id(req, reqid) != 0) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "Idempotency-Key must be 1..64 printable characters");
        return;
    }
    char *text = json_dumps(payload, JSON_COMPACT);
    if (text == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    size_t plen = strlen(text);
    struct retry retry;
    bool maybe_done = false; /* some attempt may have reached a leader's log */
    int rv;
    retry_init(api, &retry);
    for (;;) {
        unsigned left_ms = retry_left_ms(&retry);
        if (left_ms == 0) {
            rv = TVMW_EUNKNOWN;
            break;
        }
        struct cp_cmd cmd = {
            .type = type, .time_ms = tvmw_wall_ms(), .payload = text, .payload_len = plen};
        memcpy(cmd.reqid, reqid, CP_REQID_SIZE);
        size_t len = cp_cmd_encoded_size(plen);
        if (len > CP_CMD_MAX_BYTES) {
            rv = TVMW_ETOOBIG;
            break;
        }
        void *buf = raft_malloc(len);
        if (buf == NULL) {
            rv = -ENOMEM;
            break;
        }
        cp_cmd_encode(&cmd, buf, len);
        struct cp_result *res = NULL;
        uint64_t leader = 0;
        rv = cp_node_write(api->node, buf, len, reqid, left_ms, &res, &leader);
        if (rv == 0) {
            char hex[2 * CP_REQID_SIZE + 1];
            cp_reqid_hex(reqid, hex);
            const char *hdrs[] = {"X-Tvmw-Request-Id", hex, NULL};
            if (fixup != NULL) {
                fixup(&res, fixup_arg);
            }
            tvmw_http_reply(req, res->status,
                            type == CP_CMD_BILLING ? "application/json; charset=utf-8"
                                                   : "application/json",
                            res->body, res->len, hdrs);
            cp_result_free(res);
            break;
        }
        if (rv == TVMW_EUNKNOWN) {
            maybe_done = true;
        }
        if (rv == TVMW_ENOTLEADER && leader != 0 && !forwarded_in(req)) {
            int frv = forward(api, req, leader, reqid, left_ms);
            if (frv == 0) {
                break;
            }
            /* Even a refused connection proves nothing: libcurl resends a
             * request whose reused keep-alive connection died, so the first
             * copy may be in the leader's log (the fault-injection suite
             * caught a -1 for such a write). */
            maybe_done = true;
        } else if (rv != TVMW_ENOTLEADER && rv != TVMW_ENOTAPPLIED) {
            break;
        } else if (forwarded_in(req)) {
            break; /* the forwarding node retries, not us */
        }
        if (!retry_again(&retry, leader)) {
            break;
        }
    }
    if (maybe_done && (rv == TVMW_ENOTLEADER || rv == TVMW_ENOTAPPLIED)) {
        rv = TVMW_EUNKNOWN;
    }
    free(text);
    if (req->answered) {
        return;
    }
    if (rv == TVMW_ETOOBIG) {
        tvmw_http_reply_error(req, 413, "too_large", "command is over %u bytes", CP_CMD_MAX_BYTES);
    } else {
        reply_unavailable(req, rv);
    }
}

void cp_api_do_write(struct cp_api *api, struct tvmw_http_req *req, uint16_t type,
                     const json_t *payload)
{
    cp_api_do_write_ex(api, req, type, payload, NULL, NULL, NULL);
}

/* Makes a linearizable read possible on this node: returns true when the
 * caller may read its local state, false when the request was answered
 * (forwarded or 503). ?stale=1 skips the barrier. */
bool cp_api_read_ready(struct cp_api *api, struct tvmw_http_req *req)
{
    const char *stale = tvmw_http_query(req, "stale");
    if (stale != NULL && strcmp(stale, "1") == 0) {
        return true;
    }
    struct retry retry;
    int rv = TVMW_EUNKNOWN;
    retry_init(api, &retry);
    for (;;) {
        unsigned left_ms = retry_left_ms(&retry);
        if (left_ms == 0) {
            rv = TVMW_EUNKNOWN;
            break;
        }
        uint64_t leader = 0;
        rv = cp_node_read_barrier(api->node, left_ms, &leader);
        if (rv == 0) {
            return true;
        }
        if (rv != TVMW_ENOTLEADER || forwarded_in(req)) {
            break;
        }
        if (leader != 0) {
            int frv = forward(api, req, leader, NULL, left_ms);
            if (frv == 0) {
                return false;
            }
            if (frv == TVMW_EIO) {
                rv = TVMW_EIO; /* the leader took the request but gave no answer */
                break;
            }
        }
        if (!retry_again(&retry, leader)) {
            break;
        }
    }
    reply_unavailable(req, rv);
    return false;
}

/* ---- body helpers -------------------------------------------------------- */

json_t *cp_api_body_object(struct tvmw_http_req *req, bool allow_empty)
{
    if (req->body.len == 0 && allow_empty) {
        return json_object();
    }
    json_error_t jerr;
    json_t *o = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                           JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        tvmw_http_reply_error(req, 400, "malformed_json", "body is not valid JSON: %s (line %d)",
                              jerr.text, jerr.line);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        tvmw_http_reply_error(req, 400, "malformed_json", "body must be a JSON object");
        return NULL;
    }
    return o;
}

/* Only these keys may appear in the body. */
bool cp_api_only_keys(struct tvmw_http_req *req, json_t *o, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++) {
            ok = ok || strcmp(*a, key) == 0;
        }
        if (!ok) {
            tvmw_http_reply_error(req, 400, "bad_request", "unknown field \"%s\"", key);
            return false;
        }
    }
    return true;
}

void cp_api_method_not_allowed(struct tvmw_http_req *req, const char *allow)
{
    const char *hdrs[] = {"Allow", allow, NULL};
    char body[160];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"method_not_allowed\",\"message\":\"allowed: %s\"}", allow);
    tvmw_http_reply(req, 405, "application/json", body, (size_t)n, hdrs);
}

/* ---- clients ---------------------------------------------------------------- */

static void random_key(char out[33])
{
    uint8_t b[CP_REQID_SIZE];
    cp_reqid_make(NULL, b);
    cp_reqid_hex(b, out);
}

static const char *check_client_fields(json_t *o, bool create)
{
    json_t *v;
    if ((v = json_object_get(o, "name")) != NULL || create) {
        if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 200) {
            return "\"name\" must be a string of 1..200 bytes";
        }
    }
    if ((v = json_object_get(o, "settings")) != NULL && !json_is_object(v)) {
        return "\"settings\" must be an object";
    }
    static const char *const keys[] = {"api_key", "billing_api_key"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(o, keys[i]);
        if (v != NULL &&
            (!json_is_string(v) || json_string_length(v) < 8 || json_string_length(v) > 128)) {
            return "api keys must be strings of 8..128 bytes";
        }
    }
    return NULL;
}

static void clients_read(struct cp_api *api, struct tvmw_http_req *req, uint64_t id)
{
    if (!cp_api_read_ready(api, req)) {
        return;
    }
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    MDB_txn *txn;
    json_t *v = NULL;
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv == 0) {
        rv = id == 0 ? cp_record_list(txn, cp_fsm_dbs(fsm)->clients, &v)
                     : cp_record_get(txn, cp_fsm_dbs(fsm)->clients, id, &v);
        mdb_txn_abort(txn);
    }
    if (rv == TVMW_ENOTFOUND) {
        tvmw_http_reply_error(req, 404, "not_found", "client %llu does not exist",
                              (unsigned long long)id);
        return;
    }
    if (rv != 0) {
        tvmw_http_reply_error(req, 500, "internal", "state read failed: %s", tvmw_strerror(rv));
        return;
    }
    json_t *out = json_pack("{s:o}", id == 0 ? "clients" : "client", v);
    tvmw_http_reply_json(req, 200, out);
    json_decref(out);
}

static void clients_route(struct cp_api *api, struct tvmw_http_req *req, const char *rest)
{
    static const char *const fields[] = {"name", "settings", "api_key", "billing_api_key", NULL};
    uint64_t id = 0;
    req->route = "admin_clients";
    if (*rest == '/') {
        rest++;
    }
    const char *slash = strchr(rest, '/');
    if (slash != NULL && cp_api_parse_id(rest, (size_t)(slash - rest), &id)) {
        cp_admin_client_route(api, req, id, slash + 1);
        return;
    }
    if (*rest != '\0' && !cp_api_parse_id(rest, strlen(rest), &id)) {
        tvmw_http_reply_error(req, 404, "not_found", "no such client id \"%s\"", rest);
        return;
    }
    const char *m = req->method;
    if (strcmp(m, "GET") == 0) {
        clients_read(api, req, id);
        return;
    }
    if (id == 0 && strcmp(m, "POST") != 0) {
        cp_api_method_not_allowed(req, "GET, POST");
        return;
    }
    if (id != 0 && strcmp(m, "PATCH") != 0 && strcmp(m, "DELETE") != 0) {
        cp_api_method_not_allowed(req, "GET, PATCH, DELETE");
        return;
    }
    if (strcmp(m, "DELETE") == 0) {
        json_t *p = json_pack("{s:I}", "id", (json_int_t)id);
        cp_api_do_write(api, req, CP_CMD_CLIENT_DELETE, p);
        json_decref(p);
        return;
    }
    json_t *o = cp_api_body_object(req, false);
    if (o == NULL || !cp_api_only_keys(req, o, fields)) {
        json_decref(o);
        return;
    }
    const char *bad = check_client_fields(o, id == 0);
    if (bad != NULL) {
        tvmw_http_reply_error(req, 400, "bad_request", "%s", bad);
        json_decref(o);
        return;
    }
    if (id == 0) {
        char key[33];
        if (json_object_get(o, "api_key") == NULL) {
            random_key(key);
            json_object_set_new(o, "api_key", json_string(key));
        }
        if (json_object_get(o, "billing_api_key") == NULL) {
            random_key(key);
            json_object_set_new(o, "billing_api_key", json_string(key));
        }
        cp_api_do_write(api, req, CP_CMD_CLIENT_CREATE, o);
    } else {
        json_object_set_new(o, "id", json_integer((json_int_t)id));
        cp_api_do_write(api, req, CP_CMD_CLIENT_UPDATE, o);
    }
    json_decref(o);
}

/* ---- cluster ---------------------------------------------------------------- */

static const char *role_name(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    default:
        return "unavailable";
    }
}

static const char *member_role(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    default:
        return "spare";
    }
}

static json_t *member_json(struct cp_api *api, const struct cp_member *m, uint64_t leader)
{
    char http[TVMW_ADDR_MAX] = "";
    member_http_address(api, m->id, http, sizeof(http));
    return json_pack("{s:I, s:s, s:s, s:s, s:b, s:b}", "id", (json_int_t)m->id, "raft_address",
                     m->raft_address, "http_address", http, "role", member_role(m->role), "voting",
                     m->role == RAFT_VOTER, "leader", m->id == leader);
}

static void cluster_get(struct cp_api *api, struct tvmw_http_req *req)
{
    struct cp_status s;
    cp_node_status(api->node, &s);
    json_t *members = json_array();
    for (unsigned i = 0; i < s.n_members; i++) {
        json_array_append_new(members, member_json(api, &s.members[i], s.leader_id));
    }
    json_t *o =
        json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:b, s:o}", "node_id", (json_int_t)api->id,
                  "leader_id", (json_int_t)s.leader_id, "role", role_name(s.state), "term",
                  (json_int_t)s.term, "commit_index", (json_int_t)s.commit_index, "applied_index",
                  (json_int_t)s.applied_index, "last_index", (json_int_t)s.last_index, "ready",
                  s.ready, "members", members);
    tvmw_http_reply_json(req, 200, o);
    json_decref(o);
}

static const struct cp_member *find_member(const struct cp_status *s, uint64_t id)
{
    for (unsigned i = 0; i < s->n_members; i++) {
        if (s->members[i].id == id) {
            return &s->members[i];
        }
    }
    return NULL;
}

static void reply_change_error(struct tvmw_http_req *req, int rv, const char *msg)
{
    if (rv == TVMW_EBUSY) {
        tvmw_http_reply_error(req, 409, "conflict", "%s", msg[0] ? msg : tvmw_strerror(rv));
    } else if (rv == TVMW_ERAFT) {
        tvmw_http_reply_error(req, 409, "conflict", "raft refused the change: %s", msg);
    } else {
        reply_unavailable(req, rv);
    }
}

/* Membership changes run on the leader; a follower forwards the request,
 * waiting through an election for a leader to forward to. */
static bool forward_unless_leader(struct cp_api *api, struct tvmw_http_req *req)
{
    struct retry retry;
    retry_init(api, &retry);
    for (;;) {
        struct cp_status s;
        cp_node_status(api->node, &s);
        if (s.state == RAFT_LEADER) {
            return false;
        }
        if (forwarded_in(req)) {
            break;
        }
        if (s.leader_id != 0 &&
            forward(api, req, s.leader_id, NULL, retry_left_ms(&retry) + 1) == 0) {
            return true;
        }
        if (!retry_again(&retry, s.leader_id)) {
            break;
        }
    }
    reply_unavailable(req, TVMW_ENOLEADER);
    return true;
}

static void member_add(struct cp_api *api, struct tvmw_http_req *req)
{
    static const char *const fields[] = {"id", "raft_address", "http_address", NULL};
    json_t *o = cp_api_body_object(req, false);
    if (o == NULL || !cp_api_only_keys(req, o, fields)) {
        json_decref(o);
        return;
    }
    json_t *id = json_object_get(o, "id");
    const char *raft = json_string_value(json_object_get(o, "raft_address"));
    const char *http = json_string_value(json_object_get(o, "http_address"));
    char host[TVMW_ADDR_MAX];
    unsigned port;
    if (!json_is_integer(id) || json_integer_value(id) <= 0 || raft == NULL || http == NULL ||
        tvmw_addr_split(raft, host, sizeof(host), &port) != 0 ||
        tvmw_addr_split(http, host, sizeof(host), &port) != 0) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "need \"id\" (positive integer), \"raft_address\" and "
                              "\"http_address\" (IPv4:port)");
        json_decref(o);
        return;
    }
    if (forward_unless_leader(api, req)) {
        json_decref(o);
        return;
    }
    struct cp_status s;
    cp_node_status(api->node, &s);
    uint64_t mid = (uint64_t)json_integer_value(id);
    if (find_member(&s, mid) != NULL) {
        tvmw_http_reply_error(req, 409, "conflict", "member %llu already exists",
                              (unsigned long long)mid);
        json_decref(o);
        return;
    }
    for (unsigned i = 0; i < s.n_members; i++) {
        char other[TVMW_ADDR_MAX] = "";
        member_http_address(api, s.members[i].id, other, sizeof(other));
        if (strcmp(s.members[i].raft_address, raft) == 0 || strcmp(other, http) == 0) {
            tvmw_http_reply_error(req, 409, "conflict", "member %llu already uses that address",
                                  (unsigned long long)s.members[i].id);
            json_decref(o);
            return;
        }
    }
    /* First replicate its HTTP address, so every node can forward to it
     * once it leads; then add it to the raft configuration. */
    uint8_t reqid[CP_REQID_SIZE];
    cp_reqid_make(NULL, reqid);
    char *text = json_dumps(o, JSON_COMPACT);
    struct cp_cmd cmd = {.type = CP_CMD_MEMBER_PUT,
                         .time_ms = tvmw_wall_ms(),
                         .payload = text,
                         .payload_len = text ? strlen(text) : 0};
    memcpy(cmd.reqid, reqid, CP_REQID_SIZE);
    size_t len = cp_cmd_encoded_size(cmd.payload_len);
    void *buf = text ? raft_malloc(len) : NULL;
    int rv = -ENOMEM;
    struct cp_result *res = NULL;
    if (buf != NULL) {
        cp_cmd_encode(&cmd, buf, len);
        rv = cp_node_write(api->node, buf, len, reqid, api->conf->http.request_timeout_ms, &res,
                           NULL);
    }
    free(text);
    cp_result_free(res);
    char msg[200] = "";
    if (rv == 0) {
        rv = cp_node_change(api->node, CP_CHANGE_ADD, mid, raft, api->conf->http.request_timeout_ms,
                            NULL, msg, sizeof(msg));
    }
    if (rv != 0) {
        reply_change_error(req, rv, msg);
    } else {
        json_t *out = json_pack("{s:{s:I, s:s, s:s, s:s, s:b, s:b}}", "member", "id",
                                (json_int_t)mid, "raft_address", raft, "http_address", http, "role",
                                "standby", "voting", 0, "leader", 0);
        tvmw_http_reply_json(req, 200, out);
        json_decref(out);
    }
    json_decref(o);
}

static void member_change(struct cp_api *api, struct tvmw_http_req *req, uint64_t mid,
                          enum cp_change kind)
{
    if (forward_unless_leader(api, req)) {
        return;
    }
    struct cp_status s;
    cp_node_status(api->node, &s);
    if (kind != CP_CHANGE_TRANSFER || mid != 0) {
        const struct cp_member *m = find_member(&s, mid);
        if (m == NULL) {
            tvmw_http_reply_error(req, 404, "not_found", "no member %llu", (unsigned long long)mid);
            return;
        }
    }
    if (kind == CP_CHANGE_TRANSFER && mid == api->id) {
        json_t *out = json_pack("{s:I}", "leader_id", (json_int_t)api->id); /* already */
        tvmw_http_reply_json(req, 200, out);
        json_decref(out);
        return;
    }
    char msg[200] = "";
    uint64_t leader = 0;
    int rv = cp_node_change(api->node, kind, mid, NULL, api->conf->http.request_timeout_ms, &leader,
                            msg, sizeof(msg));
    if (rv != 0) {
        reply_change_error(req, rv, msg);
        return;
    }
    json_t *out = NULL;
    if (kind == CP_CHANGE_REMOVE) {
        json_t *p = json_pack("{s:I}", "id", (json_int_t)mid);
        cp_api_do_write(api, req, CP_CMD_MEMBER_DELETE, p); /* answers {"removed": id} */
        json_decref(p);
        return;
    }
    if (kind == CP_CHANGE_TRANSFER) {
        out = json_pack("{s:I}", "leader_id", (json_int_t)leader);
    } else {
        cp_node_status(api->node, &s);
        const struct cp_member *m = find_member(&s, mid);
        out = m ? json_pack("{s:o}", "member", member_json(api, m, s.leader_id)) : NULL;
    }
    if (out == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "member vanished during the change");
        return;
    }
    tvmw_http_reply_json(req, 200, out);
    json_decref(out);
}

static void transfer(struct cp_api *api, struct tvmw_http_req *req)
{
    static const char *const fields[] = {"id", NULL};
    json_t *o = cp_api_body_object(req, true);
    if (o == NULL || !cp_api_only_keys(req, o, fields)) {
        json_decref(o);
        return;
    }
    json_t *id = json_object_get(o, "id");
    if (id != NULL && (!json_is_integer(id) || json_integer_value(id) < 0)) {
        tvmw_http_reply_error(req, 400, "bad_request", "\"id\" must be a member id");
        json_decref(o);
        return;
    }
    uint64_t mid = id ? (uint64_t)json_integer_value(id) : 0;
    json_decref(o);
    member_change(api, req, mid, CP_CHANGE_TRANSFER);
}

static void cluster_route(struct cp_api *api, struct tvmw_http_req *req, const char *rest)
{
    const char *m = req->method;
    req->route = "admin_cluster";
    if (*rest == '\0') {
        if (strcmp(m, "GET") != 0) {
            cp_api_method_not_allowed(req, "GET");
            return;
        }
        cluster_get(api, req);
        return;
    }
    if (strcmp(rest, "/transfer") == 0) {
        if (strcmp(m, "POST") != 0) {
            cp_api_method_not_allowed(req, "POST");
            return;
        }
        transfer(api, req);
        return;
    }
    if (strcmp(rest, "/members") == 0) {
        if (strcmp(m, "POST") != 0) {
            cp_api_method_not_allowed(req, "POST");
            return;
        }
        member_add(api, req);
        return;
    }
    if (strncmp(rest, "/members/", 9) == 0) {
        const char *idp = rest + 9;
        const char *slash = strchr(idp, '/');
        uint64_t mid;
        if (!cp_api_parse_id(idp, slash ? (size_t)(slash - idp) : strlen(idp), &mid)) {
            tvmw_http_reply_error(req, 404, "not_found", "no such member");
            return;
        }
        if (slash == NULL) {
            if (strcmp(m, "DELETE") != 0) {
                cp_api_method_not_allowed(req, "DELETE");
                return;
            }
            member_change(api, req, mid, CP_CHANGE_REMOVE);
            return;
        }
        if (strcmp(slash, "/promote") == 0) {
            if (strcmp(m, "POST") != 0) {
                cp_api_method_not_allowed(req, "POST");
                return;
            }
            member_change(api, req, mid, CP_CHANGE_PROMOTE);
            return;
        }
    }
    tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
}

/* ---- health and metrics --------------------------------------------------- */

static void healthz(struct cp_api *api, struct tvmw_http_req *req)
{
    struct cp_status s;
    cp_node_status(api->node, &s);
    json_t *o =
        json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:I}", "status",
                  s.ready ? "ok" : "unavailable", "node_id", (json_int_t)api->id, "role",
                  role_name(s.state), "leader_id", (json_int_t)s.leader_id, "term",
                  (json_int_t)s.term, "commit_index", (json_int_t)s.commit_index, "applied_index",
                  (json_int_t)s.applied_index, "last_index", (json_int_t)s.last_index);
    json_object_set_new(o, "state_used_bytes", json_integer((json_int_t)s.state_used_bytes));
    json_object_set_new(o, "state_map_bytes", json_integer((json_int_t)s.state_map_bytes));
    /* A full map stops the node (node.c, store_failed): warn well before. */
    if (s.state_used_bytes > s.state_map_bytes / 10 * 9) {
        json_object_set_new(o, "warning",
                            json_string("state map over 90% full: raise state.map_size_mb"));
    }
    tvmw_http_reply_json(req, s.ready ? 200 : 503, o);
    json_decref(o);
}

static void metrics(struct cp_api *api, struct tvmw_http_req *req)
{
    struct cp_status s;
    struct tvmw_buf b;
    cp_node_status(api->node, &s);
    tvmw_buf_init(&b, 0);
    tvmw_metric_write(&b, "tvmw_cp_term", "gauge", "Current raft term.", (double)s.term);
    tvmw_metric_write(&b, "tvmw_cp_commit_index", "gauge", "Raft commit index.",
                      (double)s.commit_index);
    tvmw_metric_write(&b, "tvmw_cp_applied_index", "gauge", "Last applied raft index.",
                      (double)s.applied_index);
    tvmw_metric_write(&b, "tvmw_cp_last_index", "gauge", "Last raft log index.",
                      (double)s.last_index);
    tvmw_metric_write(&b, "tvmw_cp_is_leader", "gauge", "1 if this node leads.",
                      s.state == RAFT_LEADER);
    tvmw_metric_write(&b, "tvmw_cp_ready", "gauge", "1 if this node can serve.", s.ready);
    tvmw_metric_write(&b, "tvmw_cp_leader_id", "gauge", "Known leader id (0: none).",
                      (double)s.leader_id);
    tvmw_metric_write(&b, "tvmw_cp_members", "gauge", "Members in the raft configuration.",
                      s.n_members);
    tvmw_metric_write(&b, "tvmw_cp_leader_changes_total", "counter",
                      "Leader changes seen by this node.", (double)s.leader_changes);
    tvmw_metric_write(&b, "tvmw_cp_snapshots_taken_total", "counter", "Raft snapshots taken.",
                      (double)s.snapshots_taken);
    tvmw_metric_write(&b, "tvmw_cp_snapshots_restored_total", "counter", "Raft snapshots restored.",
                      (double)s.snapshots_restored);
    tvmw_metric_write(&b, "tvmw_cp_read_barriers_total", "counter",
                      "Barriers issued for linearizable reads.", (double)s.barriers);
    tvmw_metric_write(&b, "tvmw_cp_writes_unknown_total", "counter",
                      "Writes answered 503 with the outcome unknown.", (double)s.writes_unknown);
    tvmw_metric_write(&b, "tvmw_cp_state_used_bytes", "gauge",
                      "Bytes of the LMDB map in use (the node stops when it is full).",
                      (double)s.state_used_bytes);
    tvmw_metric_write(&b, "tvmw_cp_state_map_bytes", "gauge",
                      "Size of the LMDB map (state.map_size_mb).", (double)s.state_map_bytes);
    tvmw_metric_write(&b, "tvmw_cp_config_rollbacks_total", "counter",
                      "Uncommitted membership changes rolled back by the raft guard.",
                      (double)s.config_rollbacks);
    cp_node_metrics(api->node, &b);
    cp_probe_metrics(atomic_load(&api->probe), &b);
    tvmw_http_server_metrics(req->srv, "tvmw_cp", &b); /* api->http may not be set yet */
    tvmw_http_reply(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    tvmw_buf_close(&b);
}

/* ---- Billing API glue (billing_http.h) ------------------------------------ */

static int local_client(struct cp_api *api, uint64_t id, json_t **out)
{
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    MDB_txn *txn;
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv == 0) {
        rv = cp_record_get(txn, cp_fsm_dbs(fsm)->clients, id, out);
        mdb_txn_abort(txn);
    }
    return rv;
}

int cp_billing_client(struct cp_billing_http *bh, struct tvmw_http_req *req, uint64_t id,
                      json_t **out)
{
    /* The local copy first: keys change rarely, and a barrier per billing
     * call would double the cost of every read. A miss may only mean this
     * node has not applied a new client yet: then ask the leader (a
     * follower forwards the whole request; the leader reads after a
     * barrier). */
    struct cp_api *api = bh->api;
    int rv = local_client(api, id, out);
    if (rv != TVMW_ENOTFOUND) {
        return rv;
    }
    uint64_t leader = 0;
    if (cp_node_read_barrier(api->node, api->conf->http.request_timeout_ms, &leader) == 0) {
        return local_client(api, id, out); /* the leader's word: definite */
    }
    if (leader != 0 && !forwarded_in(req) &&
        forward(api, req, leader, NULL, api->conf->http.request_timeout_ms) == 0) {
        return 1;
    }
    return TVMW_ENOLEADER; /* cannot tell whether the client exists */
}

int cp_billing_recheck_at_leader(struct cp_billing_http *bh, struct tvmw_http_req *req)
{
    struct cp_api *api = bh->api;
    struct cp_status st;
    cp_node_status(api->node, &st);
    if (forwarded_in(req) || st.state == RAFT_LEADER || st.leader_id == 0) {
        return 0;
    }
    return forward(api, req, st.leader_id, NULL, api->conf->http.request_timeout_ms) == 0;
}

int cp_billing_request_id(struct tvmw_http_req *req, uint8_t out[CP_REQID_SIZE])
{
    return cp_api_request_id(req, out);
}

void cp_billing_do_read(struct cp_billing_http *bh, struct tvmw_http_req *req, uint64_t client_id,
                        const struct bl_method *m, json_t *params)
{
    struct cp_api *api = bh->api;
    if (!cp_api_read_ready(api, req)) {
        return;
    }
    json_t *reply = NULL;
    int rv = cp_billing_read(cp_node_fsm(api->node), client_id, m, params, &reply);
    if (rv != 0) {
        /* -1: nothing was changed, a retry is safe (spec 4.2). */
        reply = json_pack("{s:i, s:s}", "error", BL_EINTERNAL, "error_message",
                          "Internal error, retry");
    }
    char *text = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(reply);
    if (text == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    tvmw_http_reply(req, 200, "application/json; charset=utf-8", text, strlen(text), NULL);
    free(text);
}

void cp_billing_do_write(struct cp_billing_http *bh, struct tvmw_http_req *req,
                         const uint8_t reqid[CP_REQID_SIZE], json_t *payload,
                         const char *shown_password)
{
    cp_api_do_write_ex(bh->api, req, CP_CMD_BILLING, payload, reqid,
                       shown_password ? show_password : NULL, (void *)shown_password);
}

/* ---- edge feed and snapshot (docs/edge-protocol.md) ------------------------ */

/* The admin bearer token (admin API, device writes of edges); answers 401
 * and returns false without it. */
static bool admin_authorized(struct cp_api *api, struct tvmw_http_req *req)
{
    const char *auth = tvmw_http_header(req, "Authorization");
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0 &&
        tvmw_secret_equal(auth + 7, api->conf->admin_token)) {
        return true;
    }
    static const char *const hdrs[] = {"WWW-Authenticate", "Bearer", NULL};
    static const char body[] =
        "{\"error\":\"unauthorized\",\"message\":\"missing or wrong bearer token\"}";
    tvmw_http_reply(req, 401, "application/json", body, sizeof(body) - 1, hdrs);
    return false;
}

#define FEED_DEFAULT_WAIT_MS 10000
#define FEED_MAX_WAIT_MS     30000
#define FEED_DEFAULT_LIMIT   10000
#define FEED_MAX_LIMIT       100000

static bool query_u64(struct tvmw_http_req *req, const char *name, uint64_t dflt, uint64_t max,
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

static void edge_feed(struct cp_api *api, struct tvmw_http_req *req)
{
    uint64_t after, wait_ms, limit;
    if (!query_u64(req, "after", 0, UINT64_MAX / 2, &after) ||
        tvmw_http_query(req, "after") == NULL ||
        !query_u64(req, "wait_ms", FEED_DEFAULT_WAIT_MS, FEED_MAX_WAIT_MS, &wait_ms) ||
        !query_u64(req, "limit", FEED_DEFAULT_LIMIT, FEED_MAX_LIMIT, &limit) || limit == 0) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "after (an index) is required; wait_ms <= %d; limit 1..%d",
                              FEED_MAX_WAIT_MS, FEED_MAX_LIMIT);
        return;
    }
    struct cp_fsm *fsm = cp_node_fsm(api->node);
    for (int pass = 0; pass < 2; pass++) {
        /* raft's applied index also counts barriers and configuration
         * entries, which change nothing an edge sees: wait for it to move
         * past where it is now, not past `after`. */
        struct cp_status st;
        cp_node_status(api->node, &st);
        json_t *out = NULL;
        bool gone = false;
        int rv = cp_feed_read(fsm, after, (unsigned)limit, &out, &gone);
        if (rv != 0) {
            tvmw_http_reply_error(req, 503, "unavailable", "state read failed: %s",
                                  tvmw_strerror(rv));
            return;
        }
        if (gone || pass == 1 || json_array_size(json_object_get(out, "changes")) > 0 ||
            (uint64_t)json_integer_value(json_object_get(out, "last_index")) > after ||
            wait_ms == 0) {
            tvmw_http_reply_json(req, gone ? 410 : 200, out);
            json_decref(out);
            return;
        }
        json_decref(out);
        /* Nothing new: long poll until something is applied. */
        cp_node_wait_applied(api->node, st.applied_index > after ? st.applied_index : after,
                             (unsigned)wait_ms);
    }
}

static long snap_read(void *ctx, uint8_t *buf, size_t len)
{
    return cp_edge_snap_read(ctx, buf, len);
}

static void snap_done(void *ctx)
{
    cp_edge_snap_close(ctx);
}

static void edge_snapshot(struct cp_api *api, struct tvmw_http_req *req)
{
    struct cp_edge_snap *s;
    uint64_t index;
    int rv = cp_edge_snap_open(cp_node_fsm(api->node), &s, &index);
    if (rv != 0) {
        tvmw_http_reply_error(req, 503, "unavailable", "state read failed: %s", tvmw_strerror(rv));
        return;
    }
    char idx[24];
    snprintf(idx, sizeof(idx), "%llu", (unsigned long long)index);
    const char *hdrs[] = {"X-Tvmw-Snapshot-Index", idx, NULL};
    TVMW_LOG_INFO("edge", "snapshot stream to %s index=%s", req->remote, idx);
    tvmw_http_reply_stream(req, 200, "application/octet-stream", hdrs, snap_read, snap_done, s);
}

/* POST /edge/v1/device-writes (docs/edge-protocol.md): one CP_CMD_DEVICE
 * command per request, forwarded to the leader like any write. */
static void device_writes(struct cp_api *api, struct tvmw_http_req *req)
{
    if (strcmp(req->method, "POST") != 0) {
        cp_api_method_not_allowed(req, "POST");
        return;
    }
    if (!admin_authorized(api, req)) {
        return;
    }
    json_t *body = cp_api_body_object(req, false);
    if (body == NULL) {
        return;
    }
    const char *bad = cp_device_writes_check(body);
    if (bad != NULL) {
        tvmw_http_reply_error(req, 400, "bad_request", "%s", bad);
    } else {
        cp_api_do_write(api, req, CP_CMD_DEVICE, body);
    }
    json_decref(body);
}

/* ---- dispatch ---------------------------------------------------------------- */

static void handle(void *ctx, struct tvmw_http_req *req)
{
    struct cp_api *api = ctx;
    const char *p = req->path;
    if (strcmp(p, "/healthz") == 0) {
        req->route = "healthz";
        healthz(api, req);
        return;
    }
    if (strcmp(p, "/metrics") == 0) {
        req->route = "metrics";
        metrics(api, req);
        return;
    }
    while (p[0] == '/' && p[1] == '/') {
        p++; /* "//billing/api/..." from clients that join base URL and path */
    }
    if (strcmp(p, "/edge/v1/feed") == 0 || strcmp(p, "/edge/v1/snapshot") == 0) {
        req->route = p[9] == 'f' ? "edge_feed" : "edge_snapshot";
        if (strcmp(req->method, "GET") != 0) {
            cp_api_method_not_allowed(req, "GET");
        } else if (p[9] == 'f') {
            edge_feed(api, req);
        } else {
            edge_snapshot(api, req);
        }
        return;
    }
    if (strcmp(p, "/edge/v1/device-writes") == 0) {
        req->route = "edge_device_writes";
        device_writes(api, req);
        return;
    }
    if (strncmp(p, "/billing/api/", 13) == 0) {
        cp_billing_handle(&api->billing, req, p + 13);
        return;
    }
    if (strncmp(p, "/admin/v1/", 10) != 0) {
        req->route = "not_found";
        tvmw_http_reply_error(req, 404, "not_found", "no route %s", p);
        return;
    }
    req->route = "admin";
    if (!admin_authorized(api, req)) {
        return;
    }
    p += 9; /* "/admin/v1" */
    if (strncmp(p, "/cluster", 8) == 0 && (p[8] == '\0' || p[8] == '/')) {
        cluster_route(api, req, p + 8);
    } else if (strncmp(p, "/clients", 8) == 0 && (p[8] == '\0' || p[8] == '/')) {
        clients_route(api, req, p + 8);
    } else if (strcmp(p, "/audit") == 0) {
        req->route = "admin_audit";
        cp_admin_audit_route(api, req, 0);
    } else if (strncmp(p, "/keys", 5) == 0 && (p[5] == '\0' || p[5] == '/')) {
        cp_admin_keys_route(api, req, p + 5);
    } else {
        tvmw_http_reply_error(req, 404, "not_found", "no route %s", req->path);
    }
}

int cp_api_start(const struct tvmw_config *conf, struct cp_node *node, const char *http_address,
                 struct cp_api **out)
{
    struct cp_api *api = calloc(1, sizeof(*api));
    if (api == NULL) {
        return -ENOMEM;
    }
    api->conf = conf;
    api->node = node;
    api->id = cp_node_id(node);
    api->billing.api = api;
    api->billing.secret = conf->admin_token;
    int rv = tvmw_httpc_new(FORWARD_RESP_MAX, &api->httpc);
    if (rv != 0) {
        free(api);
        return rv;
    }
    char spool[600];
    cp_epg_spool_dir(conf, spool, sizeof(spool));
    struct tvmw_http_server_conf hc = {.address = http_address,
                                       .max_body_bytes = conf->http.max_body_bytes,
                                       .max_connections = conf->http.max_connections,
                                       .idle_timeout_s = 120,
                                       .thread_per_connection = true,
                                       .spool_match = cp_admin_epg_spool,
                                       .spool_dir = spool,
                                       .spool_max_bytes = conf->epg.max_file_bytes};
    rv = tvmw_http_server_start(&hc, handle, api, &api->http);
    if (rv != 0) {
        tvmw_httpc_free(api->httpc);
        free(api);
        return rv;
    }
    TVMW_LOG_INFO("api", "listening on http://%s", http_address);
    *out = api;
    return 0;
}

void cp_api_set_probe(struct cp_api *api, struct cp_probe *probe)
{
    atomic_store(&api->probe, probe);
}

void cp_api_stop(struct cp_api *api)
{
    if (api == NULL) {
        return;
    }
    tvmw_http_server_stop(api->http);
    tvmw_httpc_free(api->httpc);
    free(api);
}
