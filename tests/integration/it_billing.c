/*
 * Billing API caller: signature, form encodings and request shapes of the
 * real clients (shared/spec/billing-api.md §2, §6), JSON type checks. See
 * it_billing.h.
 */
#include "it_billing.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define TARGET_MAX 16384

/* ---- signature -------------------------------------------------------------- */

static size_t kv_count(const char *const *kv)
{
    size_t n = 0;
    while (kv[2 * n] != NULL) {
        n++;
    }
    return n;
}

struct pair {
    const char *k, *v;
};

static int cmp_pair(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: bytewise, as spec 2.2 sorts. */
    return strcmp(((const struct pair *)a)->k, ((const struct pair *)b)->k);
}

int it_bl_sign_parts(const char *const *kv, const char *api_key, char **source, char **base64,
                     char sig[33])
{
    size_t n = kv_count(kv), m = 0, len = strlen(api_key) + 1;
    struct pair *p = calloc(n + 1, sizeof(*p));
    if (p == NULL) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kv[2 * i], "signature") != 0) {
            p[m].k = kv[2 * i];
            p[m].v = kv[2 * i + 1];
            len += strlen(p[m].k) + strlen(p[m].v) + 2;
            m++;
        }
    }
    qsort(p, m, sizeof(*p), cmp_pair);
    char *src = malloc(len);
    char *b64 = malloc(4 * (len / 3 + 1) + 1);
    if (src == NULL || b64 == NULL) {
        free(p);
        free(src);
        free(b64);
        return -1;
    }
    size_t used = 0;
    for (size_t i = 0; i < m; i++) {
        used += (size_t)snprintf(src + used, len - used, "%s:%s;", p[i].k, p[i].v);
    }
    snprintf(src + used, len - used, "%s", api_key);
    free(p);
    int b64len =
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)src, (int)strlen(src));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(b64, (size_t)b64len, md, &mdlen, EVP_md5(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 16; i++) {
        sig[2 * i] = hex[md[i] >> 4];
        sig[2 * i + 1] = hex[md[i] & 15];
    }
    sig[32] = '\0';
    if (source != NULL) {
        *source = src;
    } else {
        free(src);
    }
    if (base64 != NULL) {
        *base64 = b64;
    } else {
        free(b64);
    }
    return 0;
}

void it_bl_sign(const char *const *kv, const char *api_key, char out[33])
{
    if (it_bl_sign_parts(kv, api_key, NULL, NULL, out) != 0) {
        snprintf(out, 33, "%s", "out-of-memory");
    }
}

/* ---- encodings ------------------------------------------------------------ */

static bool keep(unsigned char c, enum it_bl_enc enc)
{
    if (isalnum(c) || c == '_' || c == '.' || c == '-') {
        return true;
    }
    switch (enc) {
    case IT_ENC_PY:
    case IT_ENC_RFC3986:
        return c == '~';
    case IT_ENC_WHATWG:
        return c == '*';
    case IT_ENC_PHP:
        return false;
    }
    return false;
}

static void put_enc(char *out, size_t *used, const char *s, enum it_bl_enc enc)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isascii(*p) && keep(*p, enc)) {
            out[(*used)++] = (char)*p;
        } else if (*p == ' ' && enc != IT_ENC_RFC3986) {
            out[(*used)++] = '+';
        } else {
            out[(*used)++] = '%';
            out[(*used)++] = hex[*p >> 4];
            out[(*used)++] = hex[*p & 15];
        }
    }
}

char *it_bl_form(const char *const *kv, enum it_bl_enc enc)
{
    size_t n = kv_count(kv), len = 1;
    for (size_t i = 0; i < 2 * n; i++) {
        len += 3 * strlen(kv[i]) + 1;
    }
    char *out = malloc(len);
    if (out == NULL) {
        return NULL;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            out[used++] = '&';
        }
        put_enc(out, &used, kv[2 * i], enc);
        out[used++] = '=';
        put_enc(out, &used, kv[2 * i + 1], enc);
    }
    out[used] = '\0';
    return out;
}

/* ---- requests ----------------------------------------------------------------- */

int it_bl_raw(const struct it_cluster *c, uint64_t node, const char *http_method,
              const char *target, const char *body, size_t body_len, const char *content_type,
              const char *source_ip, struct it_resp *out)
{
    char url[TARGET_MAX + 64], ct[256];
    it_node_url(c, node, target, url, sizeof(url));
    it_fmt(ct, sizeof(ct), "Content-Type:%s%s", content_type ? " " : "",
           content_type ? content_type : "");
    const char *hdrs[] = {ct, NULL};
    return it_http_from(source_ip, http_method, url, body, body_len, hdrs, IT_HTTP_TIMEOUT, out);
}

static bool php_get(const char *path)
{
    return strcmp(path, "customer/list") == 0 || strcmp(path, "account/list") == 0;
}

int it_bl_call_auth(const struct it_cluster *c, uint64_t node, enum it_bl_style style,
                    const char *path, const char *const *kv, const struct it_bl_auth *auth,
                    const char *source_ip, struct it_resp *out)
{
    size_t n = kv_count(kv);
    if (n + 2 > IT_BL_MAX_PARAMS) {
        memset(out, 0, sizeof(*out));
        it_fmt(out->error, sizeof(out->error), "too many parameters");
        return -1;
    }
    /* The signed set: the method's params plus client_id. */
    const char *all[2 * IT_BL_MAX_PARAMS + 1];
    size_t a = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        all[a++] = kv[i];
    }
    if (auth->client_id != NULL) {
        all[a++] = "client_id";
        all[a++] = auth->client_id;
    }
    all[a] = NULL;
    char sig[33];
    const char *sigv = auth->signature;
    if (sigv == NULL && auth->key != NULL) {
        it_bl_sign(all, auth->key, sig);
        sigv = sig;
    }
    /* The wire order of the style. */
    const char *wire[2 * IT_BL_MAX_PARAMS + 1];
    size_t w = 0;
    if (style == IT_BL_HYDRA) {
        if (sigv != NULL) {
            wire[w++] = "signature";
            wire[w++] = sigv;
        }
        for (size_t i = a / 2; i-- > 0;) {
            wire[w++] = all[2 * i];
            wire[w++] = all[2 * i + 1];
        }
    } else {
        for (size_t i = 0; i < a; i++) {
            wire[w++] = all[i];
        }
        if (sigv != NULL) {
            wire[w++] = "signature";
            wire[w++] = sigv;
        }
    }
    wire[w] = NULL;

    char target[TARGET_MAX];
    char *body = NULL, *query = NULL;
    const char *method = "POST";
    int rv = -1;
    switch (style) {
    case IT_BL_PY:
        query = strcmp(path, "customer/list") == 0 ? it_bl_form(kv, IT_ENC_PY) : strdup("");
        body = it_bl_form(wire, IT_ENC_PY);
        if (query != NULL) {
            it_fmt(target, sizeof(target), "/billing/api/%s/?%s", path, query);
        }
        break;
    case IT_BL_HYDRA:
        body = it_bl_form(wire, IT_ENC_PY);
        it_fmt(target, sizeof(target), "/billing/api/%s/", path);
        break;
    case IT_BL_PHP:
        if (php_get(path)) {
            method = "GET";
            query = it_bl_form(wire, IT_ENC_RFC3986);
            if (query != NULL) {
                it_fmt(target, sizeof(target), "/billing/api/%s?%s", path, query);
            }
        } else {
            body = it_bl_form(wire, IT_ENC_PHP);
            it_fmt(target, sizeof(target), "/billing/api/%s", path);
        }
        break;
    case IT_BL_NODE:
        body = it_bl_form(wire, IT_ENC_WHATWG);
        it_fmt(target, sizeof(target), "//billing/api/%s/", path);
        break;
    }
    bool is_get = strcmp(method, "GET") == 0;
    if ((is_get && query != NULL) || (!is_get && body != NULL)) {
        rv = it_bl_raw(c, node, method, target, body, body ? strlen(body) : 0,
                       is_get ? NULL : "application/x-www-form-urlencoded", source_ip, out);
    } else {
        memset(out, 0, sizeof(*out));
        it_fmt(out->error, sizeof(out->error), "out of memory");
    }
    free(body);
    free(query);
    return rv;
}

int it_bl_call(const struct it_cluster *c, uint64_t node, enum it_bl_style style,
               const struct it_bl_client *cl, const char *path, const char *const *kv,
               struct it_resp *out)
{
    char id[24];
    it_fmt(id, sizeof(id), "%llu", (unsigned long long)cl->id);
    struct it_bl_auth auth = {.client_id = id, .key = cl->key};
    return it_bl_call_auth(c, node, style, path, kv, &auth, cl->source_ip, out);
}

/* ---- replies ------------------------------------------------------------------- */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

/* "YYYY-MM-DD" in the first 10 bytes. */
static bool date_prefix(const char *s)
{
    return strnlen(s, 10) == 10 && digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' &&
           digits(s + 8, 2);
}

static bool is_date(const char *s)
{
    return s != NULL && strlen(s) == 10 && date_prefix(s);
}

static bool is_datetime(const char *s)
{
    return s != NULL && strlen(s) == 19 && date_prefix(s) && s[10] == ' ' && digits(s + 11, 2) &&
           s[13] == ':' && digits(s + 14, 2) && s[16] == ':' && digits(s + 17, 2);
}

static bool money_ok(const json_t *v)
{
    if (json_is_integer(v)) {
        return true;
    }
    if (!json_is_real(v)) {
        return false;
    }
    double x = json_real_value(v) * 100.0;
    return fabs(x - round(x)) < 1e-6;
}

static bool type_ok(const json_t *v, char t)
{
    const char *s = json_string_value(v);
    switch (t) {
    case 'i':
        return json_is_integer(v);
    case 'f':
        return json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1);
    case 'n':
        return json_is_number(v);
    case 'm':
        return money_ok(v);
    case 's':
        return json_is_string(v);
    case 'S':
        return json_is_string(v) || json_is_null(v);
    case 'd':
        return is_date(s);
    case 'D':
        return s != NULL && (s[0] == '\0' || is_date(s));
    case 'E':
        return json_is_null(v) || (s != NULL && (s[0] == '\0' || is_date(s)));
    case 'T':
        return is_datetime(s);
    case 'a':
        return json_is_array(v);
    case 'o':
        return json_is_object(v);
    case 'z':
        return json_is_null(v);
    case 'e':
        return json_is_object(v) && json_object_size(v) == 0;
    default:
        return false;
    }
}

bool it_bl_types(const json_t *o, const char *spec, char *why, size_t why_len)
{
    if (!json_is_object(o)) {
        it_fmt(why, why_len, "not a JSON object");
        return false;
    }
    const char *p = spec;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *colon = strchr(p, ':');
        if (colon == NULL) {
            break;
        }
        char key[96];
        size_t kl = (size_t)(colon - p);
        bool optional = kl > 0 && p[kl - 1] == '?';
        if (optional) {
            kl--;
        }
        if (kl >= sizeof(key)) {
            kl = sizeof(key) - 1;
        }
        memcpy(key, p, kl);
        key[kl] = '\0';
        char t = colon[1];
        json_t *v = json_object_get(o, key);
        if (v == NULL && !optional) {
            it_fmt(why, why_len, "\"%s\" is missing", key);
            return false;
        }
        if (v != NULL && !type_ok(v, t)) {
            char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            it_fmt(why, why_len, "\"%s\" is %s, wanted type '%c'", key, text ? text : "?", t);
            free(text);
            return false;
        }
        p = colon + 2;
    }
    return true;
}

bool it_bl_is(const struct it_resp *r, long long code, char *why, size_t why_len)
{
    if (r->status != 200) {
        it_fmt(why, why_len, "HTTP %ld (wanted 200): %.400s%s", r->status, r->body ? r->body : "",
               r->error);
        return false;
    }
    if (!json_is_object(r->json)) {
        it_fmt(why, why_len, "body is not a JSON object: %.400s", r->body);
        return false;
    }
    json_t *e = json_object_get(r->json, "error");
    const char *msg = json_string_value(json_object_get(r->json, "error_message"));
    if (!json_is_integer(e) || json_integer_value(e) != code) {
        it_fmt(why, why_len, "error %s (wanted %lld): %.600s",
               json_is_integer(e) ? "differs" : "is not an integer", code, r->body);
        return false;
    }
    if (msg == NULL || (code == 0 && msg[0] != '\0') || (code != 0 && msg[0] == '\0')) {
        it_fmt(why, why_len, "error_message is wrong for error %lld: %.600s", code, r->body);
        return false;
    }
    return true;
}

long long it_bl_cents(const json_t *v)
{
    if (json_is_integer(v)) {
        return (long long)json_integer_value(v) * 100;
    }
    return llround(json_number_value(v) * 100.0);
}
