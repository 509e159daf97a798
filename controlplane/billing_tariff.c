/*
 * Billing API tariff methods (shared/spec/billing-api.md §3.4): the three
 * list methods and tariff/create, tariff/modify, tariff/delete.
 *
 * A tariff record (billing.h) keeps money in cents and the period as the
 * text it was given; the list methods emit the tariff object of §3.4 with
 * a fixed field order. Validation follows Django's form conventions
 * (messages per field in error_fields, "This field is required." for a
 * missing or empty required field), because Smarty's API is a Django form.
 */
#include "controlplane/billing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controlplane/catalog.h"

#define TARIFF_NAME_MAX    255 /* spec 3.4 via the tariff brief: name ≤ 255 */
#define TARIFF_EXT_MAX     64  /* tvmw decision, like a customer's ext_id (5.3) */
#define PERIOD_INT_DIGITS  9   /* tvmw decision: period text "123456789.123456" */
#define PERIOD_FRAC_DIGITS 6
#define COUNT_MAX          2147483647 /* Django IntegerField's upper bound */
#define PRIORITY_MAX       10

#define E_CREATE_INVALID 1 /* tariff/create: validation failed (spec 3.4) */
#define E_MODIFY_MISSING 1 /* tariff/modify: tariff not found */
#define E_MODIFY_INVALID 2 /* tariff/modify: validation failed (tvmw decision) */
#define E_DELETE_MISSING 1 /* tariff/delete: tariff not found */

static const char MSG_REQUIRED[] = "This field is required.";

/* Flags of tariff/create with their defaults (spec 3.4). Stored as 0/1. */
static const struct tariff_flag {
    const char *name;
    int dflt;
} tariff_flags[] = {
    {"enabled", 1},
    {"assigned_by_default", 0},
    {"required", 0},
    {"ip_restriction", 0},
    {"available_for_inactive_accounts", 0},
    {"available_everywhere", 1},
    {"display_in_channels_widget", 1},
    {"used_for_channel_list", 1},
    {"used_for_video_list", 1},
    {"used_for_radio_list", 1},
    /* Sent by the PHP client only; not in apidoc. Default 1 (the tariff may
     * be unsubscribed) matches required = 0 (tvmw decision). */
    {"available_to_unsubscribe", 1},
};

/* Required integer parameters with their ranges. basic_sessions_count
 * accepts -1 like sessions_count: the PHP client's TariffCreateRequest
 * sends basic_sessions_count=-1 by default. */
static const struct tariff_int {
    const char *name;
    int64_t min, max;
} tariff_ints[] = {
    {"sessions_count", -1, COUNT_MAX},
    {"basic_sessions_count", -1, COUNT_MAX},
    {"basic_tariff_priority", 0, PRIORITY_MAX},
};

/* Money parameters: optional, default 0, ≥ 0, at most 2 decimals. */
static const struct tariff_money {
    const char *param;
    const char *field;
} tariff_money[] = {
    {"price", "price_cents"},
    {"default_activation_price", "activation_price_cents"},
};

/* ---- the tariff object ---------------------------------------------------- */

/* "12", "1.5", "0.25": digits, optionally '.' and digits; no sign. */
static bool period_valid(const char *v)
{
    size_t i = 0, f = 0;
    while (v[i] >= '0' && v[i] <= '9') {
        i++;
    }
    if (i == 0 || i > PERIOD_INT_DIGITS) {
        return false;
    }
    if (v[i] == '.') {
        const char *frac = v + i + 1;
        while (frac[f] >= '0' && frac[f] <= '9') {
            f++;
        }
        if (f == 0 || f > PERIOD_FRAC_DIGITS || frac[f] != '\0') {
            return false;
        }
        return true;
    }
    return v[i] == '\0';
}

/* The stored period text as a JSON number: an integer when whole (as money
 * is, spec 1.4: the PHP client's TariffInfo::$period is an int). */
static json_t *period_json(const char *v)
{
    if (v == NULL || !period_valid(v)) {
        return json_integer(0);
    }
    int64_t whole = 0, frac = 0, scale = 1;
    const char *s = v;
    for (; *s >= '0' && *s <= '9'; s++) {
        whole = whole * 10 + (*s - '0');
    }
    if (*s == '.') {
        for (s++; *s; s++) {
            frac = frac * 10 + (*s - '0');
            scale *= 10;
        }
    }
    if (frac == 0) {
        return json_integer(whole);
    }
    return json_real((double)whole + (double)frac / (double)scale);
}

static int64_t rec_int(const json_t *rec, const char *k)
{
    return json_integer_value(json_object_get(rec, k));
}

static const char *rec_str(const json_t *rec, const char *k)
{
    const char *s = json_string_value(json_object_get(rec, k));
    return s ? s : "";
}

/* channels: [{id, name, icon}] from the tariff's catalogue links; a link to
 * a channel that no longer exists is skipped. */
static int channels_json(struct bl_ctx *c, uint64_t tariff_id, json_t **out)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_TAR_CHAN, tariff_id, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *ch;
        rv = bl_obj_get(c, BL_CHANNEL, ids[i], &ch);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0) {
            break;
        }
        json_array_append_new(arr, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)ids[i], "name",
                                             rec_str(ch, "name"), "icon", rec_str(ch, "icon")));
        json_decref(ch);
    }
    free(ids);
    if (rv != 0) {
        json_decref(arr);
        return rv;
    }
    *out = arr;
    return 0;
}

/* The tariff object of spec 3.4, always in this field order.
 * ip_restrictions repeats ip_restriction: the PHP client's TariffInfo DTO
 * spells it that way (spec 3.4 allows both). */
static int tariff_json(struct bl_ctx *c, uint64_t id, const json_t *rec, json_t **out)
{
    json_t *channels;
    int rv = channels_json(c, id, &channels);
    if (rv != 0) {
        return rv;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)id));
    json_object_set_new(o, "name", json_string(rec_str(rec, "name")));
    json_object_set_new(o, "period",
                        period_json(json_string_value(json_object_get(rec, "period"))));
    json_object_set_new(o, "price", bl_money(rec_int(rec, "price_cents")));
    json_object_set_new(o, "activation_price", bl_money(rec_int(rec, "activation_price_cents")));
    json_object_set_new(o, "basic_tariff_priority",
                        json_integer(rec_int(rec, "basic_tariff_priority")));
    json_object_set_new(o, "sessions_count", json_integer(rec_int(rec, "sessions_count")));
    json_object_set_new(o, "basic_sessions_count",
                        json_integer(rec_int(rec, "basic_sessions_count")));
    json_object_set_new(o, "ip_restriction", json_integer(rec_int(rec, "ip_restriction")));
    json_object_set_new(o, "ip_restrictions", json_integer(rec_int(rec, "ip_restriction")));
    json_object_set_new(o, "channels", channels);
    json_object_set_new(o, "ext_id", json_string(rec_str(rec, "ext_id")));
    *out = o;
    return 0;
}

/* ---- list methods ----------------------------------------------------------- */

enum tariff_filter { ALL_TARIFFS, BASIC_TARIFFS, ADDITIONAL_TARIFFS };

struct list_arg {
    enum tariff_filter filter;
    json_t *out;
};

static int list_one(struct bl_ctx *c, uint64_t id, json_t *rec, void *arg)
{
    struct list_arg *la = arg;
    int64_t prio = rec_int(rec, "basic_tariff_priority");
    if ((la->filter == BASIC_TARIFFS && prio <= 0) ||
        (la->filter == ADDITIONAL_TARIFFS && prio != 0)) {
        return 0;
    }
    json_t *o;
    int rv = tariff_json(c, id, rec, &o);
    if (rv == 0) {
        json_array_append_new(la->out, o);
    }
    return rv;
}

static int list_tariffs(struct bl_ctx *c, json_t *reply, enum tariff_filter filter)
{
    struct list_arg la = {.filter = filter, .out = json_array()};
    int rv = bl_obj_each(c, BL_TARIFF, list_one, &la);
    if (rv != 0) {
        json_decref(la.out);
        return rv;
    }
    json_object_set_new(reply, "tariffs", la.out);
    return 0;
}

int bl_tariff_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)params;
    return list_tariffs(c, reply, ALL_TARIFFS);
}

int bl_tariff_basic_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)params;
    return list_tariffs(c, reply, BASIC_TARIFFS);
}

int bl_tariff_additional_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)params;
    return list_tariffs(c, reply, ADDITIONAL_TARIFFS);
}

/* ---- create / modify ----------------------------------------------------------- */

/* A required parameter's value, or NULL after recording "required" when it
 * is missing (create) or present but empty (create and modify). For
 * modify, a missing parameter returns NULL without an error. */
static const char *required_param(json_t *reply, json_t *params, const char *name, bool create)
{
    const char *v = bl_param(params, name);
    if ((v == NULL && create) || (v != NULL && v[0] == '\0')) {
        bl_field_error(reply, name, MSG_REQUIRED);
        return NULL;
    }
    return v;
}

static void check_ints(json_t *params, bool create, json_t *rec, json_t *reply)
{
    for (size_t i = 0; i < sizeof(tariff_ints) / sizeof(tariff_ints[0]); i++) {
        const struct tariff_int *d = &tariff_ints[i];
        const char *v = required_param(reply, params, d->name, create);
        int64_t n;
        char msg[96];
        if (v == NULL) {
            continue;
        }
        if (bl_parse_int(v, &n) != 0) {
            bl_field_error(reply, d->name, "Enter a whole number.");
        } else if (n < d->min) {
            snprintf(msg, sizeof(msg), "Ensure this value is greater than or equal to %lld.",
                     (long long)d->min);
            bl_field_error(reply, d->name, msg);
        } else if (n > d->max) {
            snprintf(msg, sizeof(msg), "Ensure this value is less than or equal to %lld.",
                     (long long)d->max);
            bl_field_error(reply, d->name, msg);
        } else {
            json_object_set_new(rec, d->name, json_integer(n));
        }
    }
}

/* Flags: an empty value counts as not given (the default on create, the
 * current value on modify). */
static void check_flags(json_t *params, bool create, json_t *rec, json_t *reply)
{
    for (size_t i = 0; i < sizeof(tariff_flags) / sizeof(tariff_flags[0]); i++) {
        const struct tariff_flag *d = &tariff_flags[i];
        const char *v = bl_param(params, d->name);
        int f;
        if (create) {
            json_object_set_new(rec, d->name, json_integer(d->dflt));
        }
        if (v == NULL || v[0] == '\0') {
            continue;
        }
        if (bl_parse_flag(v, &f) != 0) {
            bl_field_error(reply, d->name, "Enter 0 or 1 (also true/false, on/off).");
        } else {
            json_object_set_new(rec, d->name, json_integer(f));
        }
    }
}

/* Money: missing keeps the default (create) or the current value (modify);
 * an empty value means 0. */
static void check_money(json_t *params, bool create, json_t *rec, json_t *reply)
{
    for (size_t i = 0; i < sizeof(tariff_money) / sizeof(tariff_money[0]); i++) {
        const struct tariff_money *d = &tariff_money[i];
        const char *v = bl_param(params, d->param);
        int64_t cents = 0;
        if (create) {
            json_object_set_new(rec, d->field, json_integer(0));
        }
        if (v == NULL) {
            continue;
        }
        if (v[0] != '\0' && bl_parse_amount(v, &cents) != 0) {
            bl_field_error(reply, d->param,
                           "Enter a number with at most 2 decimal places and '.' as separator.");
        } else if (cents < 0) {
            bl_field_error(reply, d->param, "Ensure this value is greater than or equal to 0.");
        } else {
            json_object_set_new(rec, d->field, json_integer(cents));
        }
    }
}

/*
 * Validates the parameters of tariff/create (create = true: required
 * fields, defaults) or tariff/modify (only present parameters) and writes
 * the valid ones into rec; every problem becomes an error_fields entry.
 * self is the modified tariff (its own ext_id is no conflict), 0 on create.
 * Returns non-zero only if the store failed.
 */
static int check_params(struct bl_ctx *c, json_t *params, bool create, uint64_t self, json_t *rec,
                        json_t *reply)
{
    const char *v = required_param(reply, params, "name", create);
    if (v != NULL && bl_check_len(reply, params, "name", TARIFF_NAME_MAX)) {
        json_object_set_new(rec, "name", json_string(v));
    }
    if (create) {
        json_object_set_new(rec, "ext_id", json_string(""));
    }
    v = bl_param(params, "ext_id");
    if (v != NULL && bl_check_len(reply, params, "ext_id", TARIFF_EXT_MAX)) {
        uint64_t other;
        int rv = v[0] != '\0' ? bl_uniq_get(c, BL_UNIQ_TARIFF_EXT, v, &other) : TVMW_ENOTFOUND;
        if (rv == 0 && other != self) {
            bl_field_error(reply, "ext_id", "Tariff with this ext_id already exists.");
        } else if (rv == 0 || rv == TVMW_ENOTFOUND) {
            json_object_set_new(rec, "ext_id", json_string(v));
        } else {
            return rv;
        }
    }
    v = required_param(reply, params, "period", create);
    if (v != NULL) {
        if (v[0] == '-' && period_valid(v + 1)) {
            bl_field_error(reply, "period", "Ensure this value is greater than or equal to 0.");
        } else if (!period_valid(v)) {
            bl_field_error(reply, "period", "Enter a number.");
        } else {
            json_object_set_new(rec, "period", json_string(v));
        }
    }
    check_money(params, create, rec, reply);
    check_ints(params, create, rec, reply);
    check_flags(params, create, rec, reply);
    return 0;
}

/* Moves the ext_id index from old_ext to the record's ext_id ("" = none). */
static int reindex_ext(struct bl_ctx *c, uint64_t id, const char *old_ext, const json_t *rec)
{
    const char *ext = rec_str(rec, "ext_id");
    int rv = 0;
    if (strcmp(old_ext, ext) == 0) {
        return 0;
    }
    if (old_ext[0] != '\0') {
        rv = bl_uniq_del(c, BL_UNIQ_TARIFF_EXT, old_ext);
    }
    if (rv == 0 && ext[0] != '\0') {
        rv = bl_uniq_put(c, BL_UNIQ_TARIFF_EXT, ext, id);
    }
    return rv;
}

int bl_tariff_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    json_t *rec = json_object();
    uint64_t id;
    int rv = check_params(c, params, true, 0, rec, reply);
    if (rv != 0) {
        goto out;
    }
    if (bl_has_field_errors(reply)) {
        rv = bl_fail(reply, E_CREATE_INVALID, "Invalid parameters");
        goto out;
    }
    json_object_set_new(rec, "created_ms", json_integer((json_int_t)c->time_ms));
    if ((rv = bl_obj_new_id(c, BL_TARIFF, &id)) != 0 ||
        (rv = bl_obj_put(c, BL_TARIFF, id, rec)) != 0 || (rv = reindex_ext(c, id, "", rec)) != 0) {
        goto out;
    }
    json_object_set_new(reply, "id", json_integer((json_int_t)id));
out:
    json_decref(rec);
    return rv;
}

/* tariff_id only (spec 3.4: "tariff_id (req.)"); *id = 0 when not found. */
static int find_tariff(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **rec)
{
    const char *v = bl_param(params, "tariff_id");
    int64_t n;
    *id = 0;
    if (bl_absent(v) || bl_parse_int(v, &n) != 0 || n <= 0) {
        return 0;
    }
    int rv = bl_obj_get(c, BL_TARIFF, (uint64_t)n, rec);
    if (rv == TVMW_ENOTFOUND) {
        return 0;
    }
    if (rv == 0) {
        *id = (uint64_t)n;
    }
    return rv;
}

int bl_tariff_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *rec;
    int rv = find_tariff(c, params, &id, &rec);
    if (rv != 0) {
        return rv;
    }
    if (id == 0) {
        return bl_fail(reply, E_MODIFY_MISSING, "Tariff not found");
    }
    char *old_ext = strdup(rec_str(rec, "ext_id"));
    if (old_ext == NULL) {
        rv = -ENOMEM;
        goto out_free_rec;
    }
    if ((rv = check_params(c, params, false, id, rec, reply)) != 0) {
        goto out_free_ext;
    }
    if (bl_has_field_errors(reply)) {
        rv = bl_fail(reply, E_MODIFY_INVALID, "Invalid parameters");
        goto out_free_ext;
    }
    if ((rv = bl_obj_put(c, BL_TARIFF, id, rec)) == 0) {
        rv = reindex_ext(c, id, old_ext, rec);
    }
out_free_ext:
    free(old_ext);
out_free_rec:
    json_decref(rec);
    return rv;
}

/* ---- delete ------------------------------------------------------------------ */

/* Drops every (fwd, tariff, x) and its reverse (rev, x, tariff). */
static int unlink_all(struct bl_ctx *c, const char *fwd, const char *rev, uint64_t tariff)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, fwd, tariff, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = bl_rel_del(c, rev, ids[i], tariff);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0; /* a one-sided link: nothing to undo */
        }
    }
    free(ids);
    return rv != 0 ? rv : bl_rel_del_all(c, fwd, tariff);
}

int bl_tariff_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *rec;
    int rv = find_tariff(c, params, &id, &rec);
    if (rv != 0) {
        return rv;
    }
    if (id == 0) {
        return bl_fail(reply, E_DELETE_MISSING, "Tariff not found");
    }
    const char *ext = rec_str(rec, "ext_id");
    if (ext[0] != '\0') {
        rv = bl_uniq_del(c, BL_UNIQ_TARIFF_EXT, ext);
    }
    if (rv == 0) {
        rv = unlink_all(c, BL_REL_TAR_CUST, BL_REL_CUST_TAR, id);
    }
    if (rv == 0) {
        rv = unlink_all(c, BL_REL_TAR_ACC, BL_REL_ACC_TAR, id);
    }
    if (rv == 0) {
        rv = bl_rel_del_all(c, BL_REL_TAR_CHAN, id);
    }
    if (rv == 0) {
        rv = bl_rel_del_all(c, CP_REL_TAR_SVC, id);
    }
    if (rv == 0) {
        rv = bl_obj_del(c, BL_TARIFF, id);
    }
    json_decref(rec);
    return rv;
}
