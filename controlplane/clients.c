/*
 * Clients (tenants): the operator accounts everything else belongs to.
 * Apply side of the client commands; ids come from the "next:client"
 * counter, keys and times from the command (stamped by the proposer).
 *
 * Payloads:
 *   CLIENT_CREATE {"name", "settings"?, "api_key", "billing_api_key"}
 *   CLIENT_UPDATE {"id", "name"?, "settings"?, "api_key"?, "billing_api_key"?}
 *   CLIENT_DELETE {"id"}
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controlplane/fsm.h"

#define NAME_MAX_BYTES     200
#define KEY_MIN_BYTES      8
#define KEY_MAX_BYTES      128
#define SETTINGS_MAX_BYTES (64 * 1024)

/* Validates the fields present in p; same checks on create and update. */
static const char *check_fields(json_t *p, int create)
{
    json_t *v;
    if ((v = json_object_get(p, "name")) != NULL || create) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > NAME_MAX_BYTES) {
            return "name must be a string of 1..200 bytes";
        }
    }
    if ((v = json_object_get(p, "settings")) != NULL) {
        if (!json_is_object(v)) {
            return "settings must be a JSON object";
        }
        char *text = json_dumps(v, JSON_COMPACT);
        size_t n = text ? strlen(text) : SIZE_MAX;
        free(text);
        if (n > SETTINGS_MAX_BYTES) {
            return "settings must be at most 64 KiB";
        }
    }
    static const char *const keys[] = {"api_key", "billing_api_key"};
    for (int i = 0; i < 2; i++) {
        if ((v = json_object_get(p, keys[i])) != NULL || create) {
            if (!json_is_string(v) || json_string_length(v) < KEY_MIN_BYTES ||
                json_string_length(v) > KEY_MAX_BYTES) {
                return "api keys must be strings of 8..128 bytes";
            }
        }
    }
    return NULL;
}

static int create(struct cp_apply *a, json_t *p, struct cp_result **res)
{
    uint64_t id;
    int rv = cp_counter_next(a, "next:client", &id);
    if (rv != 0) {
        return rv;
    }
    json_int_t now_s = (json_int_t)(a->cmd->time_ms / 1000);
    json_t *settings = json_object_get(p, "settings");
    json_t *c = json_pack("{s:I, s:O, s:O, s:O, s:o, s:I, s:I}", "id", (json_int_t)id, "name",
                          json_object_get(p, "name"), "api_key", json_object_get(p, "api_key"),
                          "billing_api_key", json_object_get(p, "billing_api_key"), "settings",
                          settings ? json_deep_copy(settings) : json_object(), "created_at", now_s,
                          "updated_at", now_s);
    if (c == NULL) {
        return -ENOMEM;
    }
    rv = cp_record_put(a->txn, a->db->clients, id, c);
    if (rv == 0) {
        *res = cp_result_json(201, json_pack("{s:O}", "client", c));
    }
    json_decref(c);
    return rv;
}

static int update(struct cp_apply *a, uint64_t id, json_t *p, struct cp_result **res)
{
    json_t *c;
    int rv = cp_record_get(a->txn, a->db->clients, id, &c);
    if (rv == TVMW_ENOTFOUND) {
        *res =
            cp_result_error(404, "not_found", "client %llu does not exist", (unsigned long long)id);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    static const char *const fields[] = {"name", "settings", "api_key", "billing_api_key"};
    for (int i = 0; i < 4; i++) {
        json_t *v = json_object_get(p, fields[i]);
        if (v != NULL) {
            json_object_set(c, fields[i], v);
        }
    }
    json_object_set_new(c, "updated_at", json_integer((json_int_t)(a->cmd->time_ms / 1000)));
    rv = cp_record_put(a->txn, a->db->clients, id, c);
    if (rv == 0) {
        *res = cp_result_json(200, json_pack("{s:O}", "client", c));
    }
    json_decref(c);
    return rv;
}

int cp_clients_apply(struct cp_apply *a, json_t *p, struct cp_result **res)
{
    const char *bad = NULL;
    json_int_t id = 0;
    if (a->cmd->type != CP_CMD_CLIENT_CREATE) {
        id = json_integer_value(json_object_get(p, "id"));
        if (id <= 0) {
            bad = "id must be a positive integer";
        }
    }
    if (bad == NULL && a->cmd->type != CP_CMD_CLIENT_DELETE) {
        bad = check_fields(p, a->cmd->type == CP_CMD_CLIENT_CREATE);
    }
    if (bad != NULL) {
        *res = cp_result_error(400, "bad_request", "%s", bad);
        return 0;
    }
    switch (a->cmd->type) {
    case CP_CMD_CLIENT_CREATE:
        return create(a, p, res);
    case CP_CMD_CLIENT_UPDATE:
        return update(a, (uint64_t)id, p, res);
    default: {
        int rv = cp_record_del(a->txn, a->db->clients, (uint64_t)id);
        if (rv == TVMW_ENOTFOUND) {
            *res = cp_result_error(404, "not_found", "client %lld does not exist", (long long)id);
            return 0;
        }
        if (rv == 0) {
            *res = cp_result_json(200, json_pack("{s:I}", "deleted", id));
        }
        return rv;
    }
    }
}
