/*
 * Edge HTTP endpoints (see api.h). Health is the follower's published
 * status; the debug read goes through the store like the device API will.
 */
#include "edge/api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/http.h"
#include "common/metrics.h"
#include "edge/device.h"
#include "edge/follow.h"
#include "edge/proto.h"
#include "edge/store.h"
#include "edge/tokencheck.h"

#define ABONEMENT_MAX_BYTES 256

struct edge_api {
    const struct tvmw_config *conf;
    const struct tvmw_edge_conf *self;
    struct edge_store *store;
    struct edge_follow *follow;
    struct edge_device *device;
    struct edge_tokencheck *tokencheck; /* the streamers' token check (fast route) */
    /* Set once tvmw_http_server_start returned, by which time requests
     * may already run: atomic, and NULL until then. */
    _Atomic(struct tvmw_http_server *) http;
};

static const char *health_status(const struct edge_follow_status *s)
{
    if (!s->has_state) {
        return "no_state";
    }
    return s->stale ? "stale" : "ok";
}

static void healthz(struct edge_api *api, struct tvmw_http_req *req)
{
    struct edge_follow_status s;
    edge_follow_status(api->follow, &s);
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:I, s:I, s:{s:I, s:s}, s:o, s:b, s:I, s:I, s:i}", "status",
        health_status(&s), "edge_id", api->self->id, "has_state", s.has_state, "applied_index",
        (json_int_t)s.applied_index, "cp_last_index", (json_int_t)s.cp_last_index, "following",
        "id", (json_int_t)s.following_id, "address", s.following_address, "seconds_since_contact",
        s.seconds_since_contact < 0 ? json_null() : json_real(s.seconds_since_contact), "stale",
        s.stale, "snapshots_loaded", (json_int_t)s.snapshots_loaded, "changes_applied",
        (json_int_t)s.changes_applied, "consecutive_failures", (int)s.consecutive_failures);
    if (o == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    if (s.last_error[0] != '\0') {
        json_object_set_new(o, "last_error", json_string(s.last_error));
    }
    tvmw_http_reply_json(req, s.has_state ? 200 : 503, o);
    json_decref(o);
}

static void metrics(struct edge_api *api, struct tvmw_http_req *req)
{
    struct edge_follow_status s;
    struct tvmw_buf b;
    edge_follow_status(api->follow, &s);
    tvmw_buf_init(&b, 0);
    tvmw_metric_write(&b, "tvmw_edge_has_state", "gauge", "1 if the edge has a state to serve.",
                      s.has_state);
    tvmw_metric_write(&b, "tvmw_edge_applied_index", "gauge",
                      "Control-plane index the local state reflects.", (double)s.applied_index);
    tvmw_metric_write(&b, "tvmw_edge_cp_last_index", "gauge",
                      "Highest last_index a control-plane node reported (0: none yet).",
                      (double)s.cp_last_index);
    tvmw_metric_write(&b, "tvmw_edge_seconds_since_contact", "gauge",
                      "Seconds since a control-plane node last answered (-1: never).",
                      s.seconds_since_contact);
    tvmw_metric_write(&b, "tvmw_edge_stale", "gauge",
                      "1 if the edge serves without recent contact with the control plane.",
                      s.stale);
    tvmw_metric_write(&b, "tvmw_edge_following_node_id", "gauge",
                      "The control-plane node followed (or being tried).", (double)s.following_id);
    tvmw_metric_write(&b, "tvmw_edge_consecutive_failures", "gauge",
                      "Failed requests to the control plane since the last success.",
                      s.consecutive_failures);
    tvmw_metric_write(&b, "tvmw_edge_feed_changes_total", "counter",
                      "Changes applied from the feed.", (double)s.changes_applied);
    tvmw_metric_write(&b, "tvmw_edge_feed_batches_total", "counter",
                      "Feed answers applied (one transaction each).", (double)s.batches_applied);
    tvmw_metric_write(&b, "tvmw_edge_snapshots_total", "counter", "Snapshots loaded.",
                      (double)s.snapshots_loaded);
    tvmw_metric_write(&b, "tvmw_edge_snapshots_refused_total", "counter",
                      "Snapshots refused as corrupt or truncated.", (double)s.snapshots_refused);
    tvmw_metric_write(&b, "tvmw_edge_feed_errors_total", "counter",
                      "Failed requests to the control plane (feed and snapshot).",
                      (double)s.feed_errors);
    tvmw_metric_write(&b, "tvmw_edge_node_switches_total", "counter",
                      "Changes of the control-plane node followed.", (double)s.node_switches);
    if (api->device != NULL) {
        edge_device_metrics(api->device, &b);
    }
    edge_tokencheck_metrics(api->tokencheck, &b);
    struct tvmw_http_server *http = atomic_load(&api->http);
    if (http != NULL) {
        tvmw_http_server_metrics(http, "tvmw_edge", &b);
    }
    tvmw_http_reply(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    tvmw_buf_close(&b);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > 19) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return v != 0;
}

static bool authorized(struct edge_api *api, struct tvmw_http_req *req)
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

/* Looks the account up inside r; *out is a new reference. */
static int find_account(const struct edge_read *r, uint64_t client_id, const char *abonement,
                        uint64_t *id, json_t **out)
{
    char key[EDGE_MAX_KEY_BYTES + 1];
    size_t key_len = edge_uniq_key("abonement", client_id, abonement, key);
    const uint8_t *v;
    size_t len;
    if (key_len == 0) {
        return TVMW_ENOTFOUND;
    }
    int rv = edge_store_get(r, EDGE_DB_UNIQ, key, key_len, &v, &len);
    if (rv != 0) {
        return rv;
    }
    if (len != 8) {
        return TVMW_ECORRUPT;
    }
    uint8_t idkey[8];
    memcpy(idkey, v, 8);
    *id = tvmw_get_be64(idkey);
    if ((rv = edge_store_get(r, EDGE_DB_ACCOUNTS, idkey, 8, &v, &len)) != 0) {
        return rv == TVMW_ENOTFOUND ? TVMW_ECORRUPT : rv; /* an index to nothing */
    }
    *out = json_loadb((const char *)v, len, JSON_REJECT_DUPLICATES, NULL);
    return *out != NULL ? 0 : TVMW_ECORRUPT;
}

static void debug_account(struct edge_api *api, struct tvmw_http_req *req)
{
    uint64_t client_id, id = 0;
    const char *abonement = tvmw_http_query(req, "abonement");
    if (!parse_u64(tvmw_http_query(req, "client_id"), &client_id) || abonement == NULL ||
        abonement[0] == '\0' || strlen(abonement) > ABONEMENT_MAX_BYTES) {
        tvmw_http_reply_error(req, 400, "bad_request",
                              "client_id (a positive integer) and abonement (1..%d bytes) are "
                              "required",
                              ABONEMENT_MAX_BYTES);
        return;
    }
    struct edge_read r;
    int rv = edge_store_read_begin(api->store, &r);
    if (rv != 0) {
        tvmw_http_reply_error(req, 503, "no_state", "the edge has no state yet");
        return;
    }
    json_t *rec = NULL;
    rv = find_account(&r, client_id, abonement, &id, &rec);
    uint64_t applied = r.applied_index;
    edge_store_read_end(api->store, &r);
    if (rv == TVMW_ENOTFOUND) {
        json_t *o = json_pack("{s:s, s:s, s:I}", "error", "not_found", "message",
                              "no such account at this edge", "applied_index", (json_int_t)applied);
        tvmw_http_reply_json(req, 404, o);
        json_decref(o);
        return;
    }
    if (rv != 0) {
        tvmw_http_reply_error(req, 500, "internal", "state read failed: %s", tvmw_strerror(rv));
        return;
    }
    json_t *o = json_pack("{s:I, s:I, s:o}", "applied_index", (json_int_t)applied, "account_id",
                          (json_int_t)id, "account", rec);
    if (o == NULL) {
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    tvmw_http_reply_json(req, 200, o);
    json_decref(o);
}

static void handle(void *ctx, struct tvmw_http_req *req)
{
    struct edge_api *api = ctx;
    const char *p = req->path;
    if (api->device != NULL && edge_device_handle(api->device, req)) {
        return;
    }
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (strcmp(p, "/healthz") == 0) {
        req->route = "healthz";
    } else if (strcmp(p, "/metrics") == 0) {
        req->route = "metrics";
    } else if (strcmp(p, "/edge/v1/debug/account") == 0) {
        req->route = "debug_account";
    } else {
        req->route = "not_found";
        tvmw_http_reply_error(req, 404, "not_found", "no route %s", p);
        return;
    }
    if (!get) {
        static const char *const hdrs[] = {"Allow", "GET", NULL};
        static const char body[] =
            "{\"error\":\"method_not_allowed\",\"message\":\"only GET here\"}";
        tvmw_http_reply(req, 405, "application/json", body, sizeof(body) - 1, hdrs);
        return;
    }
    if (strcmp(req->route, "healthz") == 0) {
        healthz(api, req);
    } else if (strcmp(req->route, "metrics") == 0) {
        metrics(api, req);
    } else if (authorized(api, req)) {
        debug_account(api, req);
    }
}

int edge_api_start(const struct edge_api_opts *opts, struct edge_api **out)
{
    struct edge_api *api = calloc(1, sizeof(*api));
    if (api == NULL) {
        return -ENOMEM;
    }
    api->conf = opts->conf;
    api->self = opts->self;
    api->store = opts->store;
    api->follow = opts->follow;
    api->device = opts->device;
    struct edge_tokencheck_opts to = {.conf = opts->conf, .store = opts->store};
    int rv = edge_tokencheck_new(&to, &api->tokencheck);
    if (rv != 0) {
        free(api);
        return rv;
    }
    struct tvmw_http_server_conf hc = {
        .address = opts->self->http_address,
        .max_body_bytes = 256 * 1024, /* device API forms (channels_sort) */
        .max_connections = opts->conf->http.max_connections,
        .thread_per_connection = false,
        .threads = opts->threads ? opts->threads : 2,
        /* The token check is routed before everything else, on the
         * wrapper's allocation-free fast route (tokencheck.h). */
        .fast_match = edge_tokencheck_match,
        .fast_handler = edge_tokencheck_serve,
        .fast_ctx = api->tokencheck,
        /* Requests here are small (the largest, device API forms, pass
         * through in pieces); libmicrohttpd zeroes this much after each. */
        .conn_memory_bytes = 8 * 1024,
    };
    struct tvmw_http_server *http;
    rv = tvmw_http_server_start(&hc, handle, api, &http);
    if (rv != 0) {
        edge_tokencheck_free(api->tokencheck);
        free(api);
        return rv;
    }
    atomic_store(&api->http, http);
    *out = api;
    return 0;
}

void edge_api_stop(struct edge_api *api)
{
    if (api == NULL) {
        return;
    }
    tvmw_http_server_stop(atomic_load(&api->http));
    edge_tokencheck_free(api->tokencheck); /* its read transactions, before the store closes */
    free(api);
}
