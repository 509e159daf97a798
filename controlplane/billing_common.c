/*
 * Billing API plumbing shared by every method: the method table, apply of
 * write methods (nested transaction + audit record), parameter parsing,
 * objects, unique indexes, relations and selectors. See billing.h.
 */
#include "controlplane/billing.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/changelog.h"

#define KEY_MAX 511 /* LMDB's default maximum key size */

static const struct bl_method methods[] = {
    {"customer/create", true, true, bl_customer_create},
    {"customer/modify", true, true, bl_customer_modify},
    {"customer/info", false, false, bl_customer_info},
    {"customer/list", false, false, bl_customer_list},
    {"customer/delete", true, false, bl_customer_delete},
    {"customer/tariff/assign", true, false, bl_customer_tariff_assign},
    {"customer/tariff/remove", true, false, bl_customer_tariff_remove},
    {"customer/transaction/list", false, false, bl_customer_transaction_list},
    {"account/create", true, true, bl_account_create},
    {"account/modify", true, true, bl_account_modify},
    {"account/info", false, false, bl_account_info},
    {"account/list", false, false, bl_account_list},
    {"account/delete", true, false, bl_account_delete},
    {"account/activate", true, false, bl_account_activate},
    {"account/deactivate", true, false, bl_account_deactivate},
    {"account/tariff/assign", true, false, bl_account_tariff_assign},
    {"account/tariff/remove", true, false, bl_account_tariff_remove},
    {"account/message/create", true, true, bl_account_message_create},
    {"account/device/create", true, true, bl_account_device_create},
    {"account/device/modify", true, true, bl_account_device_modify},
    {"account/device/delete", true, false, bl_account_device_delete},
    {"tariff/list", false, false, bl_tariff_list},
    {"tariff/basic/list", false, false, bl_tariff_basic_list},
    {"tariff/additional/list", false, false, bl_tariff_additional_list},
    {"tariff/create", true, true, bl_tariff_create},
    {"tariff/modify", true, true, bl_tariff_modify},
    {"tariff/delete", true, false, bl_tariff_delete},
    {"transaction/create", true, false, bl_transaction_create},
    {"transaction/delete", true, false, bl_transaction_delete},
};

const struct bl_method *bl_method_find(const char *path)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(methods[i].path, path) == 0) {
            return &methods[i];
        }
    }
    return NULL;
}

/* ---- replies ---------------------------------------------------------- */

int bl_fail(json_t *reply, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(reply, "error", json_integer(code));
    json_object_set_new(reply, "error_message", json_string(msg));
    return 0;
}

void bl_field_error(json_t *reply, const char *field, const char *msg)
{
    json_t *fields = json_object_get(reply, "error_fields");
    if (fields == NULL) {
        fields = json_object();
        json_object_set_new(reply, "error_fields", fields);
    }
    json_t *list = json_object_get(fields, field);
    if (list == NULL) {
        list = json_array();
        json_object_set_new(fields, field, list);
    }
    json_array_append_new(list, json_string(msg));
}

bool bl_has_field_errors(const json_t *reply)
{
    const json_t *f = json_object_get(reply, "error_fields");
    return f != NULL && json_object_size(f) > 0;
}

/* error/error_message always present; error_fields where the spec has it;
 * method fields dropped on failure (spec 4.1). */
static void finish_reply(const struct bl_method *m, json_t *reply)
{
    json_int_t err = json_integer_value(json_object_get(reply, "error"));
    if (json_object_get(reply, "error") == NULL) {
        json_object_set_new(reply, "error", json_integer(0));
    }
    if (json_object_get(reply, "error_message") == NULL) {
        json_object_set_new(reply, "error_message", json_string(""));
    }
    if (err != 0) {
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(reply, tmp, key, v)
        {
            if (strcmp(key, "error") != 0 && strcmp(key, "error_message") != 0 &&
                strcmp(key, "error_fields") != 0) {
                json_object_del(reply, key);
            }
        }
    }
    if (m->error_fields && json_object_get(reply, "error_fields") == NULL) {
        json_object_set_new(reply, "error_fields", json_object());
    }
}

/* ---- apply and read entry points -------------------------------------- */

static json_t *audit_params(json_t *params)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v)
    {
        if (strncmp(key, "password", 8) != 0 && strcmp(key, "signature") != 0) {
            json_object_set(out, key, v);
        }
    }
    return out;
}

int cp_audit_put(struct cp_apply *a, json_t *payload, const char *method, json_t *params,
                 json_int_t error)
{
    json_t *client = json_object_get(payload, "client_id");
    json_t *source = json_object_get(payload, "source");
    json_t *rec = json_pack(
        "{s:I, s:I, s:O, s:s, s:o, s:O, s:I}", "index", (json_int_t)a->index, "time_ms",
        (json_int_t)a->cmd->time_ms, "client_id", client ? client : json_null(), "method", method,
        "params", audit_params(params), "source", source ? source : json_null(), "error", error);
    if (rec == NULL) {
        return -ENOMEM;
    }
    int rv = cp_record_put(a->txn, a->db->audit, a->index, rec);
    json_decref(rec);
    return rv;
}

/* Runs one write method for a client in a nested transaction; fills
 * reply. Returns 0 or a store error. */
static int run_write(struct cp_apply *a, uint64_t client, const struct bl_method *m, json_t *params,
                     json_t *reply)
{
    MDB_txn *child;
    if (mdb_txn_begin(mdb_txn_env(a->txn), a->txn, 0, &child) != 0) {
        return TVMW_ESTORE;
    }
    struct bl_ctx c = {.txn = child,
                       .db = a->db,
                       .client_id = client,
                       .time_ms = a->cmd->time_ms,
                       .index = a->index,
                       .write = true};
    int rv = m->fn(&c, params, reply);
    if (rv != 0) {
        mdb_txn_abort(child);
        return rv;
    }
    if (json_integer_value(json_object_get(reply, "error")) != 0) {
        mdb_txn_abort(child); /* a failed method leaves nothing behind */
    } else if (mdb_txn_commit(child) != 0) {
        return TVMW_ESTORE;
    }
    finish_reply(m, reply);
    return 0;
}

static bool client_exists(struct cp_apply *a, json_int_t client, int *rv)
{
    json_t *cobj = NULL;
    *rv = client > 0 ? cp_record_get(a->txn, a->db->clients, (uint64_t)client, &cobj)
                     : TVMW_ENOTFOUND;
    json_decref(cobj);
    if (*rv == TVMW_ENOTFOUND) {
        *rv = 0;
        return false;
    }
    return *rv == 0;
}

int cp_billing_batch_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    json_int_t client = json_integer_value(json_object_get(payload, "client_id"));
    json_t *items = json_object_get(payload, "items");
    int rv;
    if (!json_is_array(items)) {
        *res = cp_result_error(400, "bad_request", "\"items\" must be an array");
        return 0;
    }
    if (!client_exists(a, client, &rv)) {
        if (rv != 0) {
            return rv;
        }
        *res = cp_result_error(404, "not_found", "client %lld does not exist", (long long)client);
        return 0;
    }
    json_t *results = json_array();
    size_t i, failed = 0;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *method = json_string_value(json_object_get(it, "method"));
        json_t *params = json_object_get(it, "params");
        const struct bl_method *m = method ? bl_method_find(method) : NULL;
        json_t *reply = json_object();
        if (m == NULL || !m->write || !json_is_object(params)) {
            bl_fail(reply, BL_EARGUMENT, "item needs a write \"method\" and \"params\"");
        } else if ((rv = run_write(a, (uint64_t)client, m, params, reply)) != 0) {
            json_decref(reply);
            json_decref(results);
            return rv;
        }
        failed += json_integer_value(json_object_get(reply, "error")) != 0;
        json_array_append_new(results, reply);
    }
    /* One audit record for the whole entry: what ran, how many, how many failed. */
    json_t *counts = json_object();
    json_array_foreach(items, i, it)
    {
        const char *method = json_string_value(json_object_get(it, "method"));
        json_t *n = json_object_get(counts, method ? method : "?");
        json_object_set_new(counts, method ? method : "?",
                            json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    json_t *summary =
        json_pack("{s:I, s:o}", "items", (json_int_t)json_array_size(items), "methods", counts);
    rv = cp_audit_put(a, payload, "import", summary, (json_int_t)failed);
    json_decref(summary);
    if (rv != 0) {
        json_decref(results);
        return rv;
    }
    *res = cp_result_json(200, json_pack("{s:o, s:I, s:I}", "results", results, "ok",
                                         (json_int_t)(json_array_size(items) - failed), "failed",
                                         (json_int_t)failed));
    return *res ? 0 : -ENOMEM;
}

int cp_billing_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    json_t *params = json_object_get(payload, "params");
    const char *method = json_string_value(json_object_get(payload, "method"));
    json_int_t client = json_integer_value(json_object_get(payload, "client_id"));
    const struct bl_method *m = method ? bl_method_find(method) : NULL;
    json_t *reply = json_object();
    int rv = 0;

    if (m == NULL || !m->write || !json_is_object(params)) {
        bl_fail(reply, BL_EARGUMENT, "malformed billing command");
    } else if (!client_exists(a, client, &rv)) {
        if (rv != 0) {
            json_decref(reply);
            return rv;
        }
        /* Deleted since the proposer checked the signature. */
        bl_fail(reply, BL_EARGUMENT, "Invalid signature: unknown client_id");
        finish_reply(m, reply);
    } else if ((rv = run_write(a, (uint64_t)client, m, params, reply)) != 0) {
        json_decref(reply);
        return rv;
    }
    rv = cp_audit_put(a, payload, method ? method : "?", json_is_object(params) ? params : reply,
                      json_integer_value(json_object_get(reply, "error")));
    if (rv != 0) {
        json_decref(reply);
        return rv;
    }
    *res = cp_result_json(200, reply);
    return *res ? 0 : -ENOMEM;
}

int cp_billing_read(struct cp_fsm *f, uint64_t client_id, const struct bl_method *m, json_t *params,
                    json_t **out)
{
    MDB_txn *txn;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct bl_ctx c = {.txn = txn,
                       .db = cp_fsm_dbs(f),
                       .client_id = client_id,
                       .time_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000};
    json_t *reply = json_object();
    rv = m->fn(&c, params, reply);
    mdb_txn_abort(txn);
    if (rv != 0) {
        json_decref(reply);
        return rv;
    }
    finish_reply(m, reply);
    *out = reply;
    return 0;
}

/* ---- parameters --------------------------------------------------------- */

const char *bl_param(json_t *params, const char *name)
{
    return json_string_value(json_object_get(params, name));
}

bool bl_absent(const char *v)
{
    return v == NULL || v[0] == '\0' || strcmp(v, "-1") == 0;
}

int bl_parse_int(const char *v, int64_t *out)
{
    if (v == NULL || *v == '\0') {
        return TVMW_EMALFORMED;
    }
    const char *s = v;
    bool neg = *s == '-';
    if (neg) {
        s++;
    }
    if (*s == '\0' || strlen(s) > 18) {
        return TVMW_EMALFORMED;
    }
    int64_t n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return TVMW_EMALFORMED;
        }
        n = n * 10 + (*s - '0');
    }
    *out = neg ? -n : n;
    return 0;
}

int bl_parse_flag(const char *v, int *out)
{
    static const char *const yes[] = {"1", "true", "on"}, *const no[] = {"0", "false", "off"};
    if (v == NULL) {
        return TVMW_EMALFORMED;
    }
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return TVMW_EMALFORMED;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int bl_parse_date(const char *v, char out[11])
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = v ? strlen(v) : 0;
    if (n != 10 && n != 19) {
        return TVMW_EMALFORMED;
    }
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7 ? v[i] != '-' : !isdigit((unsigned char)v[i])) {
            return TVMW_EMALFORMED;
        }
    }
    if (n == 19) { /* " HH:MM:SS", dropped (spec 5.6) */
        for (int i = 10; i < 19; i++) {
            if (i == 10              ? v[i] != ' '
                : i == 13 || i == 16 ? v[i] != ':'
                                     : !isdigit((unsigned char)v[i])) {
                return TVMW_EMALFORMED;
            }
        }
    }
    int y = atoi(v), m = atoi(v + 5), d = atoi(v + 8);
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap(y))) {
        return TVMW_EMALFORMED;
    }
    memcpy(out, v, 10);
    out[10] = '\0';
    return 0;
}

int bl_parse_amount(const char *v, int64_t *cents)
{
    if (v == NULL || *v == '\0') {
        return TVMW_EMALFORMED;
    }
    const char *s = v;
    bool neg = false;
    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    int64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    for (; isdigit((unsigned char)*s); s++, digits++) {
        if (digits >= 13) {
            return TVMW_EMALFORMED;
        }
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; isdigit((unsigned char)*s); s++, fdigits++) {
            if (fdigits >= 2) {
                return TVMW_EMALFORMED; /* at most 2 fractional digits (spec 5.2) */
            }
            frac = frac * 10 + (*s - '0');
        }
        if (fdigits == 0) {
            return TVMW_EMALFORMED;
        }
        if (fdigits == 1) {
            frac *= 10;
        }
    }
    if (*s != '\0' || (digits == 0 && fdigits == 0)) {
        return TVMW_EMALFORMED;
    }
    *cents = (neg ? -1 : 1) * (whole * 100 + frac);
    return 0;
}

int bl_parse_int_list(const char *v, int64_t *out, size_t max, size_t *n)
{
    char buf[4096];
    size_t len = v ? strlen(v) : 0;
    if (len == 0 || len >= sizeof(buf)) {
        return TVMW_EMALFORMED;
    }
    memcpy(buf, v, len + 1);
    char *s = buf;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    if (*s == '[') {
        if (e == s || e[-1] != ']') {
            return TVMW_EMALFORMED;
        }
        *--e = '\0';
        s++;
    }
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) {
            tok++;
        }
        char *te = tok + strlen(tok);
        while (te > tok && isspace((unsigned char)te[-1])) {
            *--te = '\0';
        }
        if (*n >= max || bl_parse_int(tok, &out[*n]) != 0) {
            return TVMW_EMALFORMED;
        }
        (*n)++;
    }
    return *n > 0 ? 0 : TVMW_EMALFORMED;
}

size_t bl_utf8_chars(const char *s)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra = *p < 0x80             ? 0
                    : (*p & 0xE0) == 0xC0 ? 1
                    : (*p & 0xF0) == 0xE0 ? 2
                    : (*p & 0xF8) == 0xF0 ? 3
                                          : -1;
        if (extra < 0) {
            return SIZE_MAX;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80) {
                return SIZE_MAX;
            }
        }
        n++;
    }
    return n;
}

bool bl_check_len(json_t *reply, json_t *params, const char *name, size_t max_chars)
{
    const char *v = bl_param(params, name);
    if (v == NULL) {
        return true;
    }
    size_t n = bl_utf8_chars(v);
    if (n > max_chars) {
        char msg[128];
        snprintf(msg, sizeof(msg), "Ensure this value has at most %zu characters (it has %zu).",
                 max_chars, n);
        bl_field_error(reply, name, n == SIZE_MAX ? "Invalid UTF-8." : msg);
        return false;
    }
    return true;
}

json_t *bl_money(int64_t cents)
{
    if (cents % 100 == 0) {
        return json_integer(cents / 100);
    }
    return json_real((double)cents / 100.0);
}

void bl_money_text(int64_t cents, char out[32])
{
    int64_t a = cents < 0 ? -cents : cents;
    snprintf(out, 32, "%s%" PRId64 ".%02" PRId64, cents < 0 ? "-" : "", a / 100, a % 100);
}

void bl_date(uint64_t ms, char out[11])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void bl_datetime(uint64_t ms, char out[20])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

/* ---- objects -------------------------------------------------------------- */

static const char *const kind_counter[BL_KIND_COUNT] = {
    "next:customer",    "next:account", "next:device", "next:tariff",
    "next:transaction", "next:message", "next:channel"};

MDB_dbi bl_dbi(const struct bl_ctx *c, enum bl_kind kind)
{
    switch (kind) {
    case BL_CUSTOMER:
        return c->db->customers;
    case BL_ACCOUNT:
        return c->db->accounts;
    case BL_DEVICE:
        return c->db->devices;
    case BL_TARIFF:
        return c->db->tariffs;
    case BL_TRANSACTION:
        return c->db->transactions;
    case BL_MESSAGE:
        return c->db->messages;
    default:
        return c->db->channels;
    }
}

int bl_obj_get(struct bl_ctx *c, enum bl_kind kind, uint64_t id, json_t **out)
{
    json_t *o;
    int rv = cp_record_get(c->txn, bl_dbi(c, kind), id, &o);
    if (rv != 0) {
        return rv;
    }
    if ((uint64_t)json_integer_value(json_object_get(o, "client_id")) != c->client_id) {
        json_decref(o); /* another tenant's object does not exist for us */
        return TVMW_ENOTFOUND;
    }
    *out = o;
    return 0;
}

int bl_obj_put(struct bl_ctx *c, enum bl_kind kind, uint64_t id, json_t *obj)
{
    json_object_set_new(obj, "id", json_integer((json_int_t)id));
    json_object_set_new(obj, "client_id", json_integer((json_int_t)c->client_id));
    return cp_record_put(c->txn, bl_dbi(c, kind), id, obj);
}

int bl_obj_del(struct bl_ctx *c, enum bl_kind kind, uint64_t id)
{
    return cp_record_del(c->txn, bl_dbi(c, kind), id);
}

int bl_obj_new_id(struct bl_ctx *c, enum bl_kind kind, uint64_t *id)
{
    struct cp_apply a = {.txn = c->txn, .db = c->db};
    return cp_counter_next(&a, kind_counter[kind], id);
}

int bl_obj_each(struct bl_ctx *c, enum bl_kind kind,
                int (*fn)(struct bl_ctx *c, uint64_t id, json_t *obj, void *arg), void *arg)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(c->txn, bl_dbi(c, kind), &cur);
    if (rc != 0) {
        return TVMW_ESTORE;
    }
    int rv = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && rv == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if (o == NULL) {
            rv = TVMW_ECORRUPT;
            break;
        }
        if ((uint64_t)json_integer_value(json_object_get(o, "client_id")) == c->client_id) {
            rv = fn(c, tvmw_get_be64(k.mv_data), o, arg);
        }
        json_decref(o);
    }
    mdb_cursor_close(cur);
    return rv;
}

/* ---- unique indexes ---------------------------------------------------- */

static int uniq_key(struct bl_ctx *c, const char *name, const char *key, char *out, MDB_val *k)
{
    int n = snprintf(out, KEY_MAX + 1, "%s/%" PRIu64 "/%s", name, c->client_id, key);
    if (n > KEY_MAX) {
        /* Longer than LMDB allows: index by a digest of the key instead. */
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)key, strlen(key), md);
        n = snprintf(out, KEY_MAX + 1, "%s/%" PRIu64 "/#", name, c->client_id);
        for (int i = 0; i < SHA256_DIGEST_LENGTH && n > 0; i++) {
            n += snprintf(out + n, (size_t)(KEY_MAX + 1 - n), "%02x", md[i]);
        }
    }
    if (n < 0 || n > KEY_MAX) {
        return TVMW_ETOOBIG;
    }
    k->mv_data = out;
    k->mv_size = (size_t)n;
    return 0;
}

int bl_uniq_get(struct bl_ctx *c, const char *name, const char *key, uint64_t *id)
{
    char buf[KEY_MAX + 1];
    MDB_val k, v;
    int rv = uniq_key(c, name, key, buf, &k);
    if (rv != 0) {
        return rv == TVMW_ETOOBIG ? TVMW_ENOTFOUND : rv;
    }
    int rc = mdb_get(c->txn, c->db->uniq, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc != 0 || v.mv_size != 8) {
        return TVMW_ESTORE;
    }
    *id = tvmw_get_be64(v.mv_data);
    return 0;
}

int bl_uniq_put(struct bl_ctx *c, const char *name, const char *key, uint64_t id)
{
    char buf[KEY_MAX + 1];
    uint8_t val[8];
    MDB_val k, v = {.mv_size = 8, .mv_data = val};
    int rv = uniq_key(c, name, key, buf, &k);
    if (rv != 0) {
        return rv;
    }
    tvmw_put_be64(val, id);
    if (mdb_put(c->txn, c->db->uniq, &k, &v, 0) != 0) {
        return TVMW_ESTORE;
    }
    return cp_changelog_note(c->txn, c->db->uniq, &k, &v);
}

int bl_uniq_del(struct bl_ctx *c, const char *name, const char *key)
{
    char buf[KEY_MAX + 1];
    MDB_val k;
    int rv = uniq_key(c, name, key, buf, &k);
    if (rv != 0) {
        return rv == TVMW_ETOOBIG ? 0 : rv;
    }
    int rc = mdb_del(c->txn, c->db->uniq, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    return rc == 0 ? cp_changelog_note(c->txn, c->db->uniq, &k, NULL) : TVMW_ESTORE;
}

/* ---- relations -------------------------------------------------------------- */

static size_t rel_key(const char *name, uint64_t from, uint64_t to, uint8_t *out)
{
    size_t n = strlen(name);
    memcpy(out, name, n);
    out[n] = '/';
    tvmw_put_be64(out + n + 1, from);
    tvmw_put_be64(out + n + 9, to);
    return n + 17;
}

int bl_rel_put(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to, const json_t *val)
{
    uint8_t key[96];
    char *text = val ? json_dumps(val, JSON_COMPACT) : NULL;
    MDB_val k = {.mv_size = rel_key(name, from, to, key), .mv_data = key};
    MDB_val v = {.mv_size = text ? strlen(text) : 0, .mv_data = text ? text : ""};
    int rc = mdb_put(c->txn, c->db->rel, &k, &v, 0);
    int rv = rc == 0 ? cp_changelog_note(c->txn, c->db->rel, &k, &v) : TVMW_ESTORE;
    free(text);
    return rv;
}

int bl_rel_del(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to)
{
    uint8_t key[96];
    MDB_val k = {.mv_size = rel_key(name, from, to, key), .mv_data = key};
    int rc = mdb_del(c->txn, c->db->rel, &k, NULL);
    if (rc == 0) {
        return cp_changelog_note(c->txn, c->db->rel, &k, NULL);
    }
    return rc == MDB_NOTFOUND ? TVMW_ENOTFOUND : TVMW_ESTORE;
}

int bl_rel_get(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to, json_t **val)
{
    uint8_t key[96];
    MDB_val k = {.mv_size = rel_key(name, from, to, key), .mv_data = key}, v;
    int rc = mdb_get(c->txn, c->db->rel, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc != 0) {
        return TVMW_ESTORE;
    }
    if (val != NULL) {
        *val = v.mv_size ? json_loadb(v.mv_data, v.mv_size, 0, NULL) : json_object();
        if (*val == NULL) {
            return TVMW_ECORRUPT;
        }
    }
    return 0;
}

int bl_rel_list(struct bl_ctx *c, const char *name, uint64_t from, uint64_t **ids, size_t *n)
{
    uint8_t key[96];
    size_t plen = rel_key(name, from, 0, key) - 8;
    MDB_cursor *cur;
    MDB_val k = {.mv_size = plen + 8, .mv_data = key}, v;
    size_t cap = 16, cnt = 0;
    uint64_t *out = malloc(cap * sizeof(*out));
    if (out == NULL || mdb_cursor_open(c->txn, c->db->rel, &cur) != 0) {
        free(out);
        return out ? TVMW_ESTORE : -ENOMEM;
    }
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + 8 || memcmp(k.mv_data, key, plen) != 0) {
            break;
        }
        if (cnt == cap) {
            uint64_t *bigger = realloc(out, 2 * cap * sizeof(*out));
            if (bigger == NULL) {
                mdb_cursor_close(cur);
                free(out);
                return -ENOMEM;
            }
            out = bigger;
            cap *= 2;
        }
        out[cnt++] = tvmw_get_be64((const uint8_t *)k.mv_data + plen);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(out);
        return TVMW_ESTORE;
    }
    *ids = out;
    *n = cnt;
    return 0;
}

int bl_rel_del_all(struct bl_ctx *c, const char *name, uint64_t from)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, name, from, &ids, &n);
    for (size_t i = 0; rv == 0 && i < n; i++) {
        rv = bl_rel_del(c, name, from, ids[i]);
    }
    if (rv == 0 || rv == TVMW_ENOTFOUND) {
        free(ids);
        return 0;
    }
    free(ids);
    return rv;
}

/* ---- selectors -------------------------------------------------------------- */

static int select_by(struct bl_ctx *c, enum bl_kind kind, const char *idv, const char *uniq,
                     const char *keyv, uint64_t *id, json_t **obj)
{
    int64_t n;
    uint64_t found = 0;
    int rv;
    *id = 0;
    *obj = NULL;
    if (!bl_absent(idv)) {
        if (bl_parse_int(idv, &n) != 0 || n <= 0) {
            return 0; /* not an integer: "not found" (spec 3.1) */
        }
        found = (uint64_t)n;
    } else if (!bl_absent(keyv)) {
        rv = bl_uniq_get(c, uniq, keyv, &found);
        if (rv == TVMW_ENOTFOUND) {
            return 0;
        }
        if (rv != 0) {
            return rv;
        }
    } else {
        return 0;
    }
    rv = bl_obj_get(c, kind, found, obj);
    if (rv == TVMW_ENOTFOUND) {
        return 0;
    }
    if (rv == 0) {
        *id = found;
    }
    return rv;
}

int bl_select_customer(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj)
{
    return select_by(c, BL_CUSTOMER, bl_param(params, "customer_id"), "cust_ext",
                     bl_param(params, "ext_id"), id, obj);
}

int bl_select_account(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj)
{
    return select_by(c, BL_ACCOUNT, bl_param(params, "account_id"), "abonement",
                     bl_param(params, "abonement"), id, obj);
}

int bl_select_tariff(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj)
{
    const char *tid = bl_param(params, "tariff_id");
    if (bl_absent(tid) && !bl_absent(bl_param(params, "vtariff_id"))) {
        *id = 0; /* tvmw has no virtual tariffs (spec 3.1): never found */
        *obj = NULL;
        return 0;
    }
    return select_by(c, BL_TARIFF, tid, "tariff_ext", bl_param(params, "tariff_ext_id"), id, obj);
}
