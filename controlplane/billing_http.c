/*
 * Billing API over HTTP (shared/spec/billing-api.md §1–2): path matching,
 * query and form parameters merged into one map, the client_id/signature
 * check, the per-client source network restriction, and the hand-off to a
 * read or a replicated write. Replies are HTTP 200 with the JSON object of
 * spec §4 (404/405/413 for transport errors).
 */
#include "controlplane/billing_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/err.h"
#include "common/log.h"
#include "controlplane/billing.h"

#define MAX_PARAMS      256
#define MAX_SIG_SOURCE  (2u << 20)
#define PASSWORD_DIGITS 6

static void reply_obj(struct tvmw_http_req *req, unsigned status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (text == NULL) {
        tvmw_http_reply(req, 500, "application/json", "{\"error\":-1}", 12, NULL);
        return;
    }
    tvmw_http_reply(req, status, "application/json; charset=utf-8", text, strlen(text), NULL);
    free(text);
}

static void reply_error(struct tvmw_http_req *req, unsigned status, int code, const char *msg)
{
    json_t *o = json_pack("{s:i, s:s}", "error", code, "error_message", msg);
    reply_obj(req, status, o);
    json_decref(o);
}

static bool optional_method(const char *path)
{
    static const char *const optional[] = {"customer/tariffsubscription/create",
                                           "customer/tariffsubscription/delete",
                                           "customer/merchant_url",
                                           "customer/payment/create",
                                           "customer/payment/process",
                                           "tariff/option/list",
                                           "tariff/streamservice/assign",
                                           "tariff/streamservice/remove",
                                           "session/list",
                                           NULL};
    for (const char *const *o = optional; *o; o++) {
        if (strcmp(*o, path) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- form decoding ------------------------------------------------------- */

static int hexv(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes one x-www-form-urlencoded component ('+' is a space). NULL if
 * it holds a NUL byte or is not UTF-8 (the caller answers -100). */
static json_t *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            *o++ = (char)(hexv(s[i + 1]) << 4 | hexv(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    size_t len = (size_t)(o - out);
    json_t *js = memchr(out, '\0', len) ? NULL : json_stringn(out, len);
    free(out);
    return js;
}

/* Adds every pair of `s` to params; a later source overwrites an earlier
 * one, so the body wins over the query (spec 1.2). A key without '=' has
 * the empty value. */
static int parse_form(const char *s, size_t len, json_t *params)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '&') {
            j++;
        }
        if (j > i) {
            const char *eq = memchr(s + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (s + i)) : j - i;
            json_t *k = form_decode(s + i, klen);
            json_t *v = eq ? form_decode(eq + 1, (size_t)(s + j - eq - 1)) : json_string("");
            int bad = k == NULL || v == NULL || json_object_size(params) >= MAX_PARAMS;
            if (!bad && json_string_length(k) > 0) {
                json_object_set(params, json_string_value(k), v);
            }
            json_decref(k);
            json_decref(v);
            if (bad) {
                return TVMW_EMALFORMED;
            }
        }
        i = j + 1;
    }
    return 0;
}

/* ---- signature (spec 2.2) ----------------------------------------------- */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool signature_ok(json_t *params, const char *key, const char *given)
{
    const char *keys[MAX_PARAMS];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v)
    {
        if (strcmp(k, "signature") != 0 && n < MAX_PARAMS) {
            keys[n++] = k;
        }
    }
    qsort(keys, n, sizeof(keys[0]), cmp_keys);
    struct tvmw_buf src;
    tvmw_buf_init(&src, MAX_SIG_SOURCE);
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = tvmw_buf_printf(&src, "%s:%s;", keys[i],
                             json_string_value(json_object_get(params, keys[i])));
    }
    if (rv == 0) {
        rv = tvmw_buf_append(&src, key, strlen(key));
    }
    bool ok = false;
    if (rv == 0) {
        size_t b64len = 4 * ((src.len + 2) / 3);
        unsigned char *b64 = malloc(b64len + 1);
        if (b64 != NULL) {
            EVP_EncodeBlock(b64, (const unsigned char *)src.data, (int)src.len);
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int mdlen = 0;
            EVP_Digest(b64, b64len, md, &mdlen, EVP_md5(), NULL);
            char hex[2 * 16 + 1], low[2 * 16 + 1];
            for (int i = 0; i < 16; i++) {
                snprintf(hex + 2 * i, 3, "%02x", md[i]);
            }
            size_t gl = strlen(given);
            if (gl == 2 * 16) {
                for (size_t i = 0; i <= gl; i++) {
                    low[i] = (char)tolower((unsigned char)given[i]);
                }
                ok = CRYPTO_memcmp(hex, low, 2 * 16) == 0;
            }
            free(b64);
        }
    }
    tvmw_buf_close(&src);
    return ok;
}

/* ---- source networks (tvmw addition to Smarty) -------------------------- */

static bool ip_in_cidr(const char *ip, const char *cidr)
{
    char net[64];
    const char *slash = strchr(cidr, '/');
    size_t nl = slash ? (size_t)(slash - cidr) : strlen(cidr);
    if (nl >= sizeof(net)) {
        return false;
    }
    memcpy(net, cidr, nl);
    net[nl] = '\0';
    long bits = slash ? strtol(slash + 1, NULL, 10) : 32;
    struct in_addr a, b;
    if (bits < 0 || bits > 32 || inet_pton(AF_INET, ip, &a) != 1 ||
        inet_pton(AF_INET, net, &b) != 1) {
        return false;
    }
    uint32_t mask = bits == 0 ? 0 : htonl(~0u << (32 - bits));
    return (a.s_addr & mask) == (b.s_addr & mask);
}

/* The client's settings.billing_allowed_networks: absent or empty = any. */
static bool source_allowed(json_t *client, const char *ip)
{
    json_t *nets = json_object_get(json_object_get(client, "settings"), "billing_allowed_networks");
    if (!json_is_array(nets) || json_array_size(nets) == 0) {
        return true;
    }
    size_t i;
    json_t *n;
    json_array_foreach(nets, i, n)
    {
        if (json_is_string(n) && ip_in_cidr(ip, json_string_value(n))) {
            return true;
        }
    }
    return false;
}

/* ---- passwords ------------------------------------------------------------ */

void bl_password_hash(const char *salt, const char *password, char out[65])
{
    unsigned char md[32];
    unsigned int len = sizeof(md);
    HMAC(EVP_sha256(), salt, (int)strlen(salt), (const unsigned char *)password, strlen(password),
         md, &len);
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

/* Replaces a clear password with its salted hash before the write is
 * proposed, so neither the raft log nor the state ever holds it. A
 * generated password (account/create without one) is derived from the
 * request id with the cluster secret, so a retried request gets the same
 * one. Returns the clear password (malloc'd) when the reply must show it. */
char *cp_billing_protect_password(const struct cp_billing_http *bh, const char *method,
                                  json_t *params, const uint8_t *reqid)
{
    json_object_del(params, "password_hash"); /* never taken from the caller */
    json_object_del(params, "password_salt");
    const char *pw = bl_param(params, "password");
    char gen[PASSWORD_DIGITS + 1], salt[33], hash[65];
    unsigned char md[32];
    unsigned int mdlen = sizeof(md);
    HMAC(EVP_sha256(), bh->secret, (int)strlen(bh->secret), reqid, CP_REQID_SIZE, md, &mdlen);
    for (int i = 0; i < 16; i++) {
        snprintf(salt + 2 * i, 3, "%02x", md[16 + i]);
    }
    char *shown = NULL;
    if (pw == NULL || pw[0] == '\0') {
        json_object_del(params, "password");
        if (strcmp(method, "account/create") != 0) {
            return NULL; /* modify: an empty password changes nothing */
        }
        uint64_t r = 0;
        for (int i = 0; i < 8; i++) {
            r = r << 8 | md[i];
        }
        snprintf(gen, sizeof(gen), "%06llu", (unsigned long long)(r % 1000000u));
        pw = gen;
    }
    shown = strdup(pw);
    bl_password_hash(salt, pw, hash);
    json_object_set_new(params, "password_hash", json_string(hash));
    json_object_set_new(params, "password_salt", json_string(salt));
    json_object_del(params, "password");
    return shown;
}

/* ---- the handler -------------------------------------------------------- */

/* The caller's address: the peer, or, for a request a follower forwarded,
 * the origin it vouches for with an HMAC under the cluster secret. */
static void source_address(const struct cp_billing_http *bh, struct tvmw_http_req *req, char *out,
                           size_t len)
{
    snprintf(out, len, "%s", req->remote);
    const char *origin = tvmw_http_header(req, "X-Tvmw-Origin");
    const char *sig = tvmw_http_header(req, "X-Tvmw-Origin-Sig");
    if (origin != NULL && sig != NULL) {
        char want[65];
        bl_password_hash(bh->secret, origin, want);
        if (strlen(sig) == 64 && CRYPTO_memcmp(want, sig, 64) == 0) {
            snprintf(out, len, "%s", origin);
        }
    }
}

void cp_billing_handle(struct cp_billing_http *bh, struct tvmw_http_req *req, const char *path)
{
    char method[64] = "";
    size_t n = strlen(path);
    req->route = "billing";
    while (n > 0 && path[n - 1] == '/') {
        n--;
    }
    const struct bl_method *m = NULL;
    if (n < sizeof(method)) {
        memcpy(method, path, n);
        method[n] = '\0';
        m = bl_method_find(method);
    }
    if (m == NULL) {
        if (optional_method(method)) {
            /* Documented by Smarty, used by no known client (spec 3.0). */
            reply_error(req, 200, BL_EINTERNAL, "Not implemented");
        } else {
            reply_error(req, 404, -1, "Unknown method");
        }
        return;
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        static const char *const allow[] = {"Allow", "GET, POST", NULL};
        tvmw_http_reply(req, 405, "application/json; charset=utf-8",
                        "{\"error\":-1,\"error_message\":\"Method not allowed\"}", 48, allow);
        return;
    }
    json_t *params = json_object();
    const char *q = tvmw_http_raw_query(req);
    const char *ct = tvmw_http_header(req, "Content-Type");
    int rv = parse_form(q, strlen(q), params);
    if (rv == 0 && req->body.len > 0) {
        if (ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
            rv = TVMW_EMALFORMED;
        } else {
            rv = parse_form(req->body.data, req->body.len, params);
        }
    }
    if (rv != 0) {
        reply_error(req, 200, BL_EARGUMENT, "Malformed request parameters");
        json_decref(params);
        return;
    }
    /* Authentication (spec 2.6): nothing runs before it passes. */
    const char *cid = bl_param(params, "client_id");
    const char *sig = bl_param(params, "signature");
    int64_t client_id = 0;
    json_t *client = NULL;
    char source[64];
    source_address(bh, req, source, sizeof(source));
    rv = TVMW_ENOTFOUND;
    if (cid != NULL && sig != NULL && bl_parse_int(cid, &client_id) == 0 && client_id > 0) {
        rv = cp_billing_client(bh, req, (uint64_t)client_id, &client);
    }
    if (rv == 1) {
        json_decref(params); /* answered by the leader */
        return;
    }
    if (rv == TVMW_ENOLEADER) {
        /* Not known here and no leader to ask: not an authentication
         * failure. -1 (retry) when the caller spoke to us; a 503 when a
         * follower forwarded it, since only that follower knows whether an
         * earlier attempt of the same request got further. */
        if (tvmw_http_header(req, "X-Tvmw-Forwarded") != NULL) {
            static const char *const retry[] = {"Retry-After", "1", NULL};
            static const char body[] =
                "{\"error\":-503,\"error_message\":\"No leader to check the client\"}";
            tvmw_http_reply(req, 503, "application/json; charset=utf-8", body, sizeof(body) - 1,
                            retry);
        } else {
            reply_error(req, 200, BL_EINTERNAL, "No leader known, nothing was done; retry");
        }
        json_decref(params);
        return;
    }
    if (rv != 0) {
        TVMW_LOG_WARN("billing", "auth failed: unknown or missing client_id source=%s path=%s",
                      source, req->path);
        reply_error(req, 200, BL_EARGUMENT, "Invalid signature");
        json_decref(params);
        return;
    }
    const char *key = json_string_value(json_object_get(client, "billing_api_key"));
    bool refused = key == NULL || key[0] == '\0' || !signature_ok(params, key, sig) ||
                   !source_allowed(client, source);
    if (refused && cp_billing_recheck_at_leader(bh, req)) {
        goto out;
    }
    if (key == NULL || key[0] == '\0' || !signature_ok(params, key, sig)) {
        TVMW_LOG_WARN("billing", "auth failed: bad signature client=%lld source=%s path=%s",
                      (long long)client_id, source, req->path);
        reply_error(req, 200, BL_EARGUMENT, "Invalid signature");
        goto out;
    }
    if (!source_allowed(client, source)) {
        TVMW_LOG_WARN("billing", "refused: source not allowed client=%lld source=%s",
                      (long long)client_id, source);
        reply_error(req, 200, BL_EARGUMENT, "Source address not allowed for this client");
        goto out;
    }
    json_object_del(params, "signature");
    json_object_del(params, "client_id");
    /* Only this node may produce these (from a clear password). */
    json_object_del(params, "password_hash");
    json_object_del(params, "password_salt");
    if (!m->write) {
        cp_billing_do_read(bh, req, (uint64_t)client_id, m, params);
        goto out;
    }
    uint8_t reqid[CP_REQID_SIZE];
    if (cp_billing_request_id(req, reqid) != 0) {
        reply_error(req, 200, BL_EARGUMENT, "Malformed Idempotency-Key");
        goto out;
    }
    char *shown = NULL;
    if (strcmp(method, "account/create") == 0 || strcmp(method, "account/modify") == 0) {
        shown = cp_billing_protect_password(bh, method, params, reqid);
    }
    json_t *payload = json_pack("{s:I, s:s, s:O, s:s}", "client_id", (json_int_t)client_id,
                                "method", method, "params", params, "source", source);
    cp_billing_do_write(bh, req, reqid, payload, shown);
    json_decref(payload);
    free(shown);
out:
    json_decref(client);
    json_decref(params);
}
