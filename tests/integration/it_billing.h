/*
 * Billing API caller for the integration tests: signs and sends requests
 * byte for byte as the real clients of shared/spec/billing-api.md §6 do,
 * and checks the JSON types those clients rely on (§1.4).
 *
 * Parameters are given as a NULL-terminated list of key/value strings in
 * the caller's order, {"customer_id", "42", "id", "TX-1", NULL} (the
 * IT_KV() macro builds one): the order on the wire is the client's, the
 * signature sorts the keys (§2.2).
 *
 * The request shapes (§6):
 *   IT_BL_PY     official Python client: POST /billing/api/<path>/? with the
 *                form body params & client_id & signature (quote_plus);
 *                customer/list also repeats its params in the query string;
 *   IT_BL_HYDRA  Hydra (Python 2): POST /billing/api/<path>/ (no '?'),
 *                same encoding, parameters in arbitrary (here: reversed)
 *                order, signature first;
 *   IT_BL_PHP    PHP client (Guzzle): no trailing slash; customer/list and
 *                account/list as GET with everything in an RFC 3986 query,
 *                the rest POST forms (PHP urlencode);
 *   IT_BL_NODE   NodeJS (axios): POST //billing/api/<path>/ (a base URL
 *                with a trailing slash), WHATWG form encoding.
 *
 * Thread-safe (no shared state); the it_resp is the caller's.
 */
#ifndef TVMW_TESTS_INTEGRATION_IT_BILLING_H
#define TVMW_TESTS_INTEGRATION_IT_BILLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "harness.h"

#define IT_BL_MAX_PARAMS 64
#define IT_BL_KEY_MAX    129

/* {k1, v1, ..., NULL} as a compound literal. */
#define IT_KV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define IT_KV0     ((const char *const[]){NULL})

enum it_bl_style { IT_BL_PY, IT_BL_HYDRA, IT_BL_PHP, IT_BL_NODE };

/* How values are percent-encoded. */
enum it_bl_enc {
    IT_ENC_PY,      /* Python quote_plus: A-Za-z0-9_.-~ kept, space '+' */
    IT_ENC_RFC3986, /* PHP rawurlencode / Guzzle query: A-Za-z0-9_.-~ kept, space %20 */
    IT_ENC_PHP,     /* PHP urlencode (form bodies): A-Za-z0-9_.- kept, space '+' */
    IT_ENC_WHATWG,  /* URLSearchParams (axios): A-Za-z0-9*-._ kept, space '+' */
};

struct it_bl_client {
    uint64_t id;
    char key[IT_BL_KEY_MAX]; /* the Billing API key */
    const char *source_ip;   /* local address to call from; NULL: default */
};

/* What a request authenticates with, for the negative cases: client_id
 * text (NULL: not sent), the key to sign with (NULL: no signature
 * parameter unless `signature` is given), a literal signature that
 * replaces the computed one. */
struct it_bl_auth {
    const char *client_id;
    const char *key;
    const char *signature;
};

/* ---- signature (spec 2.2) ---------------------------------------------- */

/* hex(md5(base64(k1:v1;...;kN:vN;KEY))) over kv sorted by key (bytewise);
 * a "signature" pair in kv is left out. out: 32 lower-case hex + NUL. */
void it_bl_sign(const char *const *kv, const char *api_key, char out[33]);
/* The same, also returning the source text and its Base64 (malloc'd,
 * the caller frees). Returns 0, or -1 (out of memory). */
int it_bl_sign_parts(const char *const *kv, const char *api_key, char **source, char **base64,
                     char sig[33]);

/* k1=v1&k2=v2 in kv order (malloc'd). */
char *it_bl_form(const char *const *kv, enum it_bl_enc enc);

/* ---- requests ------------------------------------------------------------ */

/* path: the method path without the prefix and slashes ("customer/info").
 * kv: the method's parameters in the client's order; client_id and
 * signature are added as the style does. Fills *out; returns 0, or -1
 * when no HTTP answer came. */
int it_bl_call(const struct it_cluster *c, uint64_t node, enum it_bl_style style,
               const struct it_bl_client *cl, const char *path, const char *const *kv,
               struct it_resp *out);
/* it_bl_call with explicit authentication parameters (see it_bl_auth). */
int it_bl_call_auth(const struct it_cluster *c, uint64_t node, enum it_bl_style style,
                    const char *path, const char *const *kv, const struct it_bl_auth *auth,
                    const char *source_ip, struct it_resp *out);
/* A raw request: target is the path with its query ("/billing/api/x/?"),
 * sent as is; body may be NULL; content_type NULL sends no Content-Type
 * header. */
int it_bl_raw(const struct it_cluster *c, uint64_t node, const char *http_method,
              const char *target, const char *body, size_t body_len, const char *content_type,
              const char *source_ip, struct it_resp *out);

/* ---- replies -------------------------------------------------------------- */

/*
 * Checks members of a JSON object against a spec of space-separated
 * "key:type" items; types:
 *   i integer          f flag (integer 0 or 1)      n number (int or real)
 *   m money (number with at most 2 decimals)        s string
 *   S string or null   d date "YYYY-MM-DD"           D date or ""
 *   E date, "" or null T datetime "YYYY-MM-DD HH:MM:SS"
 *   a array            o object                      z null
 *   e object with no members ({}, as error_fields on success)
 * A key suffixed "?" may be absent ("abc?:s"). Returns true if all match;
 * otherwise writes the first problem into why.
 */
bool it_bl_types(const json_t *o, const char *spec, char *why, size_t why_len);

/* True if r is an HTTP 200 JSON object whose "error" is the integer code,
 * with a string error_message ("" when code is 0). Else writes why. */
bool it_bl_is(const struct it_resp *r, long long code, char *why, size_t why_len);

/* Number in reply money (JSON integer or real) as cents, rounded. */
long long it_bl_cents(const json_t *v);

#endif
