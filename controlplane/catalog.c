/*
 * Catalogue objects with a schema per kind (catalog.h). Records are JSON
 * objects keyed by be64 id in the kind's database, each with "id" and
 * "client_id" like the billing model, so the same tenant rules apply.
 */
#include "controlplane/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controlplane/billing.h"

enum ftype { F_STR, F_INT, F_FLAG, F_URLMASKS, F_ENUM, F_REF };

struct field {
    const char *name;
    enum ftype type;
    int required;
    long long min, max;        /* F_STR: max length in chars; F_INT: range */
    const char *const *values; /* F_ENUM */
    const char *ref_kind;      /* F_REF: id of an object of this kind, or null */
    const char *dflt;          /* JSON text of the default on create, NULL = none */
};

static const char *const service_types[] = {"flussonic", "astra", "generic", "multicast", NULL};
static const char *const health_values[] = {"up", "down", "unknown", NULL};

static const struct field channel_fields[] = {
    {"name", F_STR, 1, 0, 255, NULL, NULL, NULL},
    {"number", F_INT, 0, 0, 99999, NULL, NULL, "0"},
    {"icon", F_STR, 0, 0, 1024, NULL, NULL, "\"\""},
    {"category_id", F_REF, 0, 0, 0, NULL, "categories", "null"},
    {"epg_channel_id", F_STR, 0, 0, 255, NULL, NULL, "\"\""},
    {"epg_time_correction_s", F_INT, 0, -172800, 172800, NULL, NULL, "0"},
    {"stream_name", F_STR, 0, 0, 255, NULL, NULL, "\"\""},
    {"archive_days", F_INT, 0, 0, 365, NULL, NULL, "0"},
    {"age_rating", F_INT, 0, 0, 21, NULL, NULL, "0"},
    {"enabled", F_FLAG, 0, 0, 1, NULL, NULL, "1"},
    {NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
static const struct field category_fields[] = {
    {"name", F_STR, 1, 0, 255, NULL, NULL, NULL},
    {"order", F_INT, 0, 0, 100000, NULL, NULL, "0"},
    {NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
static const struct field datacenter_fields[] = {
    {"name", F_STR, 1, 0, 255, NULL, NULL, NULL},
    {"code", F_STR, 0, 0, 64, NULL, NULL, "\"\""},
    {NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};
static const struct field service_fields[] = {
    {"name", F_STR, 1, 0, 255, NULL, NULL, NULL},
    {"type", F_ENUM, 1, 0, 0, service_types, NULL, NULL},
    {"datacenter_id", F_REF, 0, 0, 0, NULL, "datacenters", "null"},
    {"url_masks", F_URLMASKS, 0, 0, 0, NULL, NULL, "{}"},
    {"health_url", F_STR, 0, 0, 1024, NULL, NULL, "\"\""},
    {"weight", F_INT, 0, 0, 1000000, NULL, NULL, "1"},
    {"enabled", F_FLAG, 0, 0, 1, NULL, NULL, "1"},
    {"health", F_ENUM, 0, 0, 0, health_values, NULL, "\"unknown\""},
    {"token_ip_binding", F_FLAG, 0, 0, 1, NULL, NULL, "0"},
    {NULL, 0, 0, 0, 0, NULL, NULL, NULL},
};

struct kind {
    const char *name;
    const char *singular;
    const char *counter;
    const struct field *fields;
};

static const struct kind kinds[] = {
    {"channels", "channel", "next:channel", channel_fields},
    {"categories", "category", "next:category", category_fields},
    {"datacenters", "datacenter", "next:datacenter", datacenter_fields},
    {"streaming-services", "streaming_service", "next:service", service_fields},
};

static const struct kind *find_kind(const char *name)
{
    for (size_t i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kinds[i].name, name) == 0) {
            return &kinds[i];
        }
    }
    return NULL;
}

int cp_catalog_dbi(const struct cp_dbs *db, const char *kind, MDB_dbi *out)
{
    if (kind == NULL) {
        return -1;
    }
    if (strcmp(kind, "channels") == 0) {
        *out = db->channels;
    } else if (strcmp(kind, "categories") == 0) {
        *out = db->categories;
    } else if (strcmp(kind, "datacenters") == 0) {
        *out = db->datacenters;
    } else if (strcmp(kind, "streaming-services") == 0) {
        *out = db->services;
    } else {
        return -1;
    }
    return 0;
}

const char *cp_catalog_singular(const char *kind)
{
    const struct kind *k = find_kind(kind);
    return k ? k->singular : "object";
}

static const char *check_field(const struct field *f, json_t *v)
{
    static char msg[160];
    switch (f->type) {
    case F_STR:
        if (!json_is_string(v) || bl_utf8_chars(json_string_value(v)) > (size_t)f->max) {
            snprintf(msg, sizeof(msg), "\"%s\" must be a string of at most %lld characters",
                     f->name, f->max);
            return msg;
        }
        if (f->required && json_string_length(v) == 0) {
            snprintf(msg, sizeof(msg), "\"%s\" must not be empty", f->name);
            return msg;
        }
        return NULL;
    case F_INT:
    case F_FLAG:
        if (!json_is_integer(v) || json_integer_value(v) < f->min ||
            json_integer_value(v) > f->max) {
            snprintf(msg, sizeof(msg), "\"%s\" must be an integer in %lld..%lld", f->name, f->min,
                     f->max);
            return msg;
        }
        return NULL;
    case F_ENUM:
        for (const char *const *e = f->values; json_is_string(v) && *e; e++) {
            if (strcmp(*e, json_string_value(v)) == 0) {
                return NULL;
            }
        }
        snprintf(msg, sizeof(msg), "\"%s\" has an unknown value", f->name);
        return msg;
    case F_REF:
        if (json_is_null(v) || (json_is_integer(v) && json_integer_value(v) > 0)) {
            return NULL;
        }
        snprintf(msg, sizeof(msg), "\"%s\" must be an id or null", f->name);
        return msg;
    case F_URLMASKS: {
        const char *key;
        json_t *m;
        if (!json_is_object(v)) {
            return "\"url_masks\" must be an object of content kind -> URL mask";
        }
        json_object_foreach(v, key, m)
        {
            if (!json_is_string(m) || json_string_length(m) > 2048) {
                return "every URL mask must be a string of at most 2048 bytes";
            }
        }
        return NULL;
    }
    }
    return "bad field";
}

const char *cp_catalog_check(const char *kind, json_t *fields, int create)
{
    static char msg[160];
    const struct kind *k = find_kind(kind);
    if (k == NULL) {
        return "unknown catalogue kind";
    }
    if (!json_is_object(fields)) {
        return "body must be a JSON object";
    }
    const char *key;
    json_t *v;
    json_object_foreach(fields, key, v)
    {
        const struct field *f = k->fields;
        while (f->name != NULL && strcmp(f->name, key) != 0) {
            f++;
        }
        if (f->name == NULL) {
            snprintf(msg, sizeof(msg), "unknown field \"%s\"", key);
            return msg;
        }
        const char *bad = check_field(f, v);
        if (bad != NULL) {
            return bad;
        }
    }
    for (const struct field *f = k->fields; create && f->name; f++) {
        if (f->required && json_object_get(fields, f->name) == NULL) {
            snprintf(msg, sizeof(msg), "\"%s\" is required", f->name);
            return msg;
        }
    }
    return NULL;
}

/* ---- apply ------------------------------------------------------------ */

static int ref_exists(struct bl_ctx *c, const char *kind, uint64_t id)
{
    MDB_dbi dbi = 0;
    json_t *o;
    if (cp_catalog_dbi(c->db, kind, &dbi) != 0) {
        return 0;
    }
    int rv = cp_record_get(c->txn, dbi, id, &o);
    if (rv != 0) {
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    int mine = (uint64_t)json_integer_value(json_object_get(o, "client_id")) == c->client_id;
    json_decref(o);
    return mine;
}

static int put(struct bl_ctx *c, const struct kind *k, uint64_t id, json_t *fields,
               struct cp_result **res)
{
    MDB_dbi dbi = 0;
    json_t *obj = NULL;
    int created = id == 0, rv;
    cp_catalog_dbi(c->db, k->name, &dbi);
    const char *bad = cp_catalog_check(k->name, fields, id == 0);
    if (bad != NULL) {
        *res = cp_result_error(400, "bad_request", "%s", bad);
        return 0;
    }
    for (const struct field *f = k->fields; f->name; f++) {
        json_t *v = json_object_get(fields, f->name);
        if (f->type == F_REF && json_is_integer(v)) {
            rv = ref_exists(c, f->ref_kind, (uint64_t)json_integer_value(v));
            if (rv < 0) {
                return rv;
            }
            if (rv == 0) {
                *res = cp_result_error(400, "bad_request", "\"%s\": no such %s", f->name,
                                       cp_catalog_singular(f->ref_kind));
                return 0;
            }
        }
    }
    if (id != 0) {
        rv = cp_record_get(c->txn, dbi, id, &obj);
        if (rv == 0 &&
            (uint64_t)json_integer_value(json_object_get(obj, "client_id")) != c->client_id) {
            json_decref(obj);
            rv = TVMW_ENOTFOUND;
        }
        if (rv == TVMW_ENOTFOUND) {
            *res = cp_result_error(404, "not_found", "%s %llu does not exist", k->singular,
                                   (unsigned long long)id);
            return 0;
        }
        if (rv != 0) {
            return rv;
        }
    } else {
        struct cp_apply a = {.txn = c->txn, .db = c->db};
        if ((rv = cp_counter_next(&a, k->counter, &id)) != 0) {
            return rv;
        }
        obj = json_object();
        for (const struct field *f = k->fields; f->name; f++) {
            if (f->dflt != NULL) {
                json_object_set_new(obj, f->name, json_loads(f->dflt, JSON_DECODE_ANY, NULL));
            }
        }
        json_object_set_new(obj, "created_ms", json_integer((json_int_t)c->time_ms));
    }
    json_object_update(obj, fields);
    json_object_set_new(obj, "id", json_integer((json_int_t)id));
    json_object_set_new(obj, "client_id", json_integer((json_int_t)c->client_id));
    json_object_set_new(obj, "updated_ms", json_integer((json_int_t)c->time_ms));
    rv = cp_record_put(c->txn, dbi, id, obj);
    if (rv == 0) {
        *res = cp_result_json(created ? 201 : 200, json_pack("{s:O}", k->singular, obj));
    }
    json_decref(obj);
    return rv;
}

static int del(struct bl_ctx *c, const struct kind *k, uint64_t id, struct cp_result **res)
{
    int rv = ref_exists(c, k->name, id);
    if (rv < 0) {
        return rv;
    }
    if (rv == 0) {
        *res = cp_result_error(404, "not_found", "%s %llu does not exist", k->singular,
                               (unsigned long long)id);
        return 0;
    }
    MDB_dbi dbi = 0;
    cp_catalog_dbi(c->db, k->name, &dbi);
    if ((rv = cp_record_del(c->txn, dbi, id)) != 0) {
        return rv;
    }
    *res = cp_result_json(200, json_pack("{s:I}", "deleted", (json_int_t)id));
    return 0;
}

/* Replaces the set of channels or services of a tariff. */
static int link(struct bl_ctx *c, const char *kind, uint64_t tariff, json_t *ids,
                struct cp_result **res)
{
    int chan = strcmp(kind, "tariff-channels") == 0;
    const char *rel = chan ? BL_REL_TAR_CHAN : CP_REL_TAR_SVC;
    const char *target = chan ? "channels" : "streaming-services";
    json_t *t;
    int rv = bl_obj_get(c, BL_TARIFF, tariff, &t);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "tariff %llu does not exist",
                               (unsigned long long)tariff);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    json_decref(t);
    size_t i;
    json_t *v;
    if (!json_is_array(ids)) {
        *res = cp_result_error(400, "bad_request", "\"ids\" must be an array of ids");
        return 0;
    }
    json_array_foreach(ids, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            *res = cp_result_error(400, "bad_request", "\"ids\" must be an array of ids");
            return 0;
        }
        rv = ref_exists(c, target, (uint64_t)json_integer_value(v));
        if (rv < 0) {
            return rv;
        }
        if (rv == 0) {
            *res = cp_result_error(400, "bad_request", "no such %s: %lld",
                                   cp_catalog_singular(target), (long long)json_integer_value(v));
            return 0;
        }
    }
    if ((rv = bl_rel_del_all(c, rel, tariff)) != 0) {
        return rv;
    }
    json_array_foreach(ids, i, v)
    {
        if ((rv = bl_rel_put(c, rel, tariff, (uint64_t)json_integer_value(v), NULL)) != 0) {
            return rv;
        }
    }
    *res =
        cp_result_json(200, json_pack("{s:I, s:O}", "tariff_id", (json_int_t)tariff, "ids", ids));
    return 0;
}

static int apply_op(struct cp_apply *a, json_t *payload, struct cp_result **res);

/* Every catalogue change is in the audit trail, like Billing API writes. */
int cp_catalog_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    int rv = apply_op(a, payload, res);
    if (rv != 0 || *res == NULL || (*res)->status >= 300) {
        return rv; /* nothing changed, nothing to record */
    }
    char method[96];
    snprintf(method, sizeof(method), "catalog/%s/%s",
             json_string_value(json_object_get(payload, "kind")) ?: "?",
             json_string_value(json_object_get(payload, "op")) ?: "?");
    json_t *params = json_deep_copy(payload);
    json_object_del(params, "client_id");
    rv = cp_audit_put(a, payload, method, params, 0);
    json_decref(params);
    return rv;
}

static int apply_op(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    json_int_t client = json_integer_value(json_object_get(payload, "client_id"));
    json_int_t id = json_integer_value(json_object_get(payload, "id"));
    const char *kind = json_string_value(json_object_get(payload, "kind"));
    const char *op = json_string_value(json_object_get(payload, "op"));
    json_t *cobj;
    if (client <= 0 || kind == NULL || op == NULL || id < 0) {
        *res = cp_result_error(400, "bad_request", "malformed catalogue command");
        return 0;
    }
    int rv = cp_record_get(a->txn, a->db->clients, (uint64_t)client, &cobj);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "client %lld does not exist", (long long)client);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    json_decref(cobj);
    struct bl_ctx c = {.txn = a->txn,
                       .db = a->db,
                       .client_id = (uint64_t)client,
                       .time_ms = a->cmd->time_ms,
                       .index = a->index,
                       .write = true};
    if (strcmp(op, "link") == 0 && id > 0 &&
        (strcmp(kind, "tariff-channels") == 0 || strcmp(kind, "tariff-streaming-services") == 0)) {
        return link(&c, kind, (uint64_t)id, json_object_get(payload, "ids"), res);
    }
    const struct kind *k = find_kind(kind);
    if (k == NULL) {
        *res = cp_result_error(400, "bad_request", "unknown catalogue kind");
        return 0;
    }
    if (strcmp(op, "put") == 0) {
        return put(&c, k, (uint64_t)id, json_object_get(payload, "fields"), res);
    }
    if (strcmp(op, "delete") == 0 && id > 0) {
        return del(&c, k, (uint64_t)id, res);
    }
    *res = cp_result_error(400, "bad_request", "unknown catalogue operation");
    return 0;
}

/* ---- reads --------------------------------------------------------------- */

struct list_arg {
    json_t *arr;
};

int cp_catalog_list(struct cp_fsm *f, uint64_t client_id, const char *kind, json_t **out)
{
    MDB_dbi dbi = 0;
    MDB_txn *txn;
    if (cp_catalog_dbi(cp_fsm_dbs(f), kind, &dbi) != 0) {
        return TVMW_ENOTFOUND;
    }
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    json_t *all;
    rv = cp_record_list(txn, dbi, &all);
    mdb_txn_abort(txn);
    if (rv != 0) {
        return rv;
    }
    json_t *mine = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o)
    {
        if ((uint64_t)json_integer_value(json_object_get(o, "client_id")) == client_id) {
            json_array_append(mine, o);
        }
    }
    json_decref(all);
    *out = mine;
    return 0;
}

int cp_catalog_get(struct cp_fsm *f, uint64_t client_id, const char *kind, uint64_t id,
                   json_t **out)
{
    MDB_dbi dbi = 0;
    MDB_txn *txn;
    if (cp_catalog_dbi(cp_fsm_dbs(f), kind, &dbi) != 0) {
        return TVMW_ENOTFOUND;
    }
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_get(txn, dbi, id, out);
    mdb_txn_abort(txn);
    if (rv == 0 && (uint64_t)json_integer_value(json_object_get(*out, "client_id")) != client_id) {
        json_decref(*out);
        rv = TVMW_ENOTFOUND;
    }
    return rv;
}

int cp_catalog_links(struct cp_fsm *f, uint64_t client_id, const char *kind, uint64_t tariff,
                     json_t **out)
{
    MDB_txn *txn;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    struct bl_ctx c = {.txn = txn, .db = cp_fsm_dbs(f), .client_id = client_id};
    json_t *t;
    rv = bl_obj_get(&c, BL_TARIFF, tariff, &t);
    if (rv == 0) {
        json_decref(t);
        uint64_t *ids;
        size_t n;
        const char *rel = strcmp(kind, "tariff-channels") == 0 ? BL_REL_TAR_CHAN : CP_REL_TAR_SVC;
        rv = bl_rel_list(&c, rel, tariff, &ids, &n);
        if (rv == 0) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++) {
                json_array_append_new(arr, json_integer((json_int_t)ids[i]));
            }
            free(ids);
            *out = arr;
        }
    }
    mdb_txn_abort(txn);
    return rv;
}
