/*
 * Billing API customer methods (shared/spec/billing-api.md §3.2):
 * customer/create, modify, info, list, delete and customer/tariff/assign,
 * remove.
 *
 * A customer record stores every text field exactly as given ("" when
 * unset); see the record formats at the end of billing.h. Writes validate
 * the whole request before they touch the store, so a failed method writes
 * nothing even before the dispatcher throws its nested transaction away.
 * Everything a write reads or stores comes from the command (time, params)
 * or from the state (ids from counters): apply stays deterministic.
 */
#include "controlplane/billing.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define MS_PER_DAY 86400000ull
/* Most tariff ids a customer/list filter may name (the parser's input is
 * bounded by bl_parse_int_list's 4 KiB buffer: at most ~2048 items). */
#define LIST_MAX_TARIFFS 2048
#define EXT_ID_MAX_CHARS 64

#define CUST_NOT_FOUND   1 /* every customer method: "customer not found" */
#define CREATE_EXT_TAKEN 1 /* customer/create: ext_id already used */
#define CREATE_INVALID   3 /* customer/create: validation failed */
#define MODIFY_INVALID   2 /* customer/modify: validation failed */
#define TARIFF_NOT_FOUND 2 /* customer/tariff/assign, remove */

enum field_type {
    F_TEXT,   /* string of at most max chars */
    F_DATE,   /* YYYY-MM-DD, "" unset */
    F_EMAIL,  /* e-mail address, "" unset */
    F_META,   /* text holding a JSON object, "" unset */
    F_FLAG,   /* 0/1 (bl_parse_flag); empty means 0 */
    F_DEALER, /* integer, empty means null */
};

struct cust_field {
    const char *name;  /* as stored and as documented */
    const char *alias; /* name the PHP client's name converter produces, or NULL */
    enum field_type type;
    size_t max_chars; /* F_TEXT and F_EMAIL */
};

/* The fields of customer/create and customer/modify (spec 3.2), except
 * ext_id (a selector on modify, unique per client: handled apart) and the
 * accepted-and-ignored send_sms and auto_activation_period. */
static const struct cust_field cust_fields[] = {
    {"firstname", NULL, F_TEXT, 256},
    {"middlename", NULL, F_TEXT, 256},
    {"lastname", NULL, F_TEXT, 256},
    {"birthdate", NULL, F_DATE, 0},
    {"passport_number", NULL, F_TEXT, 6},
    {"passport_series", NULL, F_TEXT, 4},
    {"passport_issue_date", NULL, F_DATE, 0},
    {"passport_issued_by", NULL, F_TEXT, 128},
    {"postal_address_street", NULL, F_TEXT, 128},
    {"postal_address_bld", NULL, F_TEXT, 32},
    {"postal_address_apt", NULL, F_TEXT, 32},
    {"postal_address_zip", NULL, F_TEXT, 32},
    {"postal_address_city", NULL, F_TEXT, 128},
    {"postal_address_country", NULL, F_TEXT, 128},
    {"billing_address_street", NULL, F_TEXT, 128},
    {"billing_address_bld", NULL, F_TEXT, 32},
    {"billing_address_apt", NULL, F_TEXT, 32},
    {"billing_address_zip", NULL, F_TEXT, 32},
    {"mobile_phone_number", NULL, F_TEXT, 24},
    {"phone_number_1", "phone_number1", F_TEXT, 24},
    {"phone_number_2", "phone_number2", F_TEXT, 24},
    {"fax_phone_number", NULL, F_TEXT, 24},
    {"email", NULL, F_EMAIL, 254},
    {"company_name", NULL, F_TEXT, 128},
    {"comment", NULL, F_TEXT, 512},
    {"bank_account_blz", "bank_account_biz", F_TEXT, 9},
    {"bank_account_bic", NULL, F_TEXT, 11},
    {"bank_account_number", NULL, F_TEXT, 40},
    {"bank_account_iban", NULL, F_TEXT, 34},
    {"bank_account_bank_name", NULL, F_TEXT, 128},
    {"bank_account_owner_name", NULL, F_TEXT, 128},
    {"contract_number", NULL, F_TEXT, 128},
    {"dealer_id", NULL, F_DEALER, 0},
    {"meta", NULL, F_META, 0},
    {"send_sms_messages", NULL, F_FLAG, 0},
    {"send_email_messages", NULL, F_FLAG, 0},
};

#define N_CUST_FIELDS (sizeof(cust_fields) / sizeof(cust_fields[0]))

/* One of these must be non-empty on create (spec 3.2; company_name alone is
 * what the PHP client allows). */
static const char *const name_fields[] = {"firstname", "middlename", "lastname", "comment",
                                          "company_name"};

/* ---- validation ---------------------------------------------------------- */

/* Django's EmailValidator, reduced to what a billing system could get
 * wrong: one '@', a non-empty local part, a domain with an inner dot, no
 * blanks or control characters. */
static bool email_ok(const char *v)
{
    const char *at = strchr(v, '@');
    if (at == NULL || at == v || strchr(at + 1, '@') != NULL) {
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            return false;
        }
    }
    const char *dom = at + 1;
    size_t n = strlen(dom);
    const char *dot = strchr(dom, '.');
    return n >= 3 && dot != NULL && dom[0] != '.' && dom[n - 1] != '.' && strstr(dom, "..") == NULL;
}

static bool meta_ok(const char *v)
{
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(j);
    json_decref(j);
    return ok;
}

/*
 * Validates field f if the request carries it (under its name, else under
 * its alias) and stores the value in rec. Errors are recorded in
 * reply.error_fields under the name the caller used. Returns false on a
 * validation error.
 */
static bool take_field(json_t *reply, json_t *params, const struct cust_field *f, json_t *rec)
{
    const char *name = f->name;
    const char *v = bl_param(params, name);
    if (v == NULL && f->alias != NULL) {
        name = f->alias;
        v = bl_param(params, name);
    }
    if (v == NULL) {
        return true;
    }
    json_t *val = NULL;
    char date[11];
    int64_t n;
    int flag;
    switch (f->type) {
    case F_TEXT:
        if (!bl_check_len(reply, params, name, f->max_chars)) {
            return false;
        }
        val = json_string(v);
        break;
    case F_EMAIL:
        if (!bl_check_len(reply, params, name, f->max_chars)) {
            return false;
        }
        if (v[0] != '\0' && !email_ok(v)) {
            bl_field_error(reply, name, "Enter a valid email address.");
            return false;
        }
        val = json_string(v);
        break;
    case F_DATE:
        if (v[0] != '\0' && bl_parse_date(v, date) != 0) {
            bl_field_error(reply, name, "Enter a valid date.");
            return false;
        }
        val = json_string(v[0] != '\0' ? date : "");
        break;
    case F_META:
        if (v[0] != '\0' && !meta_ok(v)) {
            bl_field_error(reply, name, "Enter a valid JSON object.");
            return false;
        }
        val = json_string(v);
        break;
    case F_FLAG:
        flag = 0;
        if (v[0] != '\0' && bl_parse_flag(v, &flag) != 0) {
            bl_field_error(reply, name, "Enter 0 or 1.");
            return false;
        }
        val = json_integer(flag);
        break;
    case F_DEALER:
        if (v[0] == '\0') {
            val = json_null();
            break;
        }
        if (bl_parse_int(v, &n) != 0) {
            bl_field_error(reply, name, "Enter a whole number.");
            return false;
        }
        val = json_integer((json_int_t)n);
        break;
    }
    if (val == NULL) { /* json_string() refuses invalid UTF-8 */
        bl_field_error(reply, name, "Invalid UTF-8.");
        return false;
    }
    json_object_set_new(rec, f->name, val);
    return true;
}

/* Validates every customer field present in params into rec; false if any
 * failed (all failures are recorded, not only the first). */
static bool take_fields(json_t *reply, json_t *params, json_t *rec)
{
    bool ok = true;
    for (size_t i = 0; i < N_CUST_FIELDS; i++) {
        ok = take_field(reply, params, &cust_fields[i], rec) && ok;
    }
    return ok;
}

static const char *str_or_empty(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- reply objects -------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Whole days from today (UTC, by now_ms) to a "YYYY-MM-DD" date; 0 when
 * the date is unset, malformed, today or past. */
static int64_t days_left(const char *date, uint64_t now_ms)
{
    char d[11];
    if (date == NULL || bl_parse_date(date, d) != 0) {
        return 0;
    }
    int64_t y = strtol(d, NULL, 10), m = strtol(d + 5, NULL, 10), day = strtol(d + 8, NULL, 10);
    int64_t left = days_from_civil(y, m, day) - (int64_t)(now_ms / MS_PER_DAY);
    return left > 0 ? left : 0;
}

static int accounts_json(struct bl_ctx *c, uint64_t cust, json_t *out)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_CUST_ACC, cust, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *acc;
        rv = bl_obj_get(c, BL_ACCOUNT, ids[i], &acc);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0; /* a dangling link is not the caller's problem */
            continue;
        }
        if (rv != 0) {
            break;
        }
        json_array_append_new(
            out,
            json_pack("{s:I, s:s, s:I, s:i}", "id", (json_int_t)ids[i], "abonement",
                      str_or_empty(acc, "abonement"), "activation_days_left",
                      (json_int_t)days_left(
                          json_string_value(json_object_get(acc, "deactivation_date")), c->time_ms),
                      "on_trial_period", 0));
        json_decref(acc);
    }
    free(ids);
    return rv;
}

/* subscriptions[], tariffs_info[] and tariffs[] from the assigned tariffs
 * (spec 3.2: one endless periodical subscription per assignment). */
static int tariffs_json(struct bl_ctx *c, uint64_t cust, json_t *subs, json_t *info,
                        json_t *ids_out)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_CUST_TAR, cust, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *tar, *link;
        rv = bl_obj_get(c, BL_TARIFF, ids[i], &tar);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0) {
            break;
        }
        rv = bl_rel_get(c, BL_REL_CUST_TAR, cust, ids[i], &link);
        if (rv != 0) {
            json_decref(tar);
            break;
        }
        char start[11];
        bl_date((uint64_t)json_integer_value(json_object_get(link, "assigned_ms")), start);
        json_array_append_new(
            subs, json_pack("{s:I, s:n, s:o, s:s, s:n, s:i, s:n, s:i, s:i}", "tariff_id",
                            (json_int_t)ids[i], "api_config_id", "price",
                            bl_money(json_integer_value(json_object_get(tar, "price_cents"))),
                            "start_date", start, "end_date", "is_periodical", 1, "price_expiration",
                            "is_price_overridden", 0, "is_closed", 0));
        json_array_append_new(info, json_pack("{s:I, s:s}", "id", (json_int_t)ids[i], "ext_id",
                                              str_or_empty(tar, "ext_id")));
        json_array_append_new(ids_out, json_integer((json_int_t)ids[i]));
        json_decref(link);
        json_decref(tar);
    }
    free(ids);
    return rv;
}

/* The customer/info object without error fields. */
static int customer_json(struct bl_ctx *c, uint64_t id, const json_t *obj, json_t **out)
{
    json_t *accounts = json_array(), *subs = json_array(), *info = json_array(),
           *tariffs = json_array();
    int rv = accounts_json(c, id, accounts);
    if (rv == 0) {
        rv = tariffs_json(c, id, subs, info, tariffs);
    }
    if (rv != 0) {
        json_decref(accounts);
        json_decref(subs);
        json_decref(info);
        json_decref(tariffs);
        return rv;
    }
    *out =
        json_pack("{s:I, s:s, s:o, s:o, s:o, s:I, s:o, s:[], s:o}", "id", (json_int_t)id, "ext_id",
                  str_or_empty(obj, "ext_id"), "accounts", accounts, "subscriptions", subs,
                  "balance", bl_money(json_integer_value(json_object_get(obj, "balance_cents"))),
                  "payments_count", json_integer_value(json_object_get(obj, "payments_count")),
                  "tariffs_info", info, "vtariffs_info", "tariffs", tariffs);
    return *out ? 0 : -ENOMEM;
}

/* ---- customer/create ------------------------------------------------------ */

static json_t *new_record(uint64_t now_ms)
{
    json_t *rec = json_object();
    for (size_t i = 0; i < N_CUST_FIELDS; i++) {
        const struct cust_field *f = &cust_fields[i];
        json_object_set_new(rec, f->name,
                            f->type == F_FLAG     ? json_integer(0)
                            : f->type == F_DEALER ? json_null()
                                                  : json_string(""));
    }
    json_object_set_new(rec, "ext_id", json_string(""));
    json_object_set_new(rec, "balance_cents", json_integer(0));
    json_object_set_new(rec, "payments_count", json_integer(0));
    json_object_set_new(rec, "created_ms", json_integer((json_int_t)now_ms));
    return rec;
}

int bl_customer_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    json_t *rec = new_record(c->time_ms);
    bool ok = take_fields(reply, params, rec);
    /* ext_id: "-1" is the Hydra client's "not given" (spec 3.1), and a
     * stored "-1" could never be selected; both mean unset. */
    const char *ext = bl_param(params, "ext_id");
    if (!bl_absent(ext)) {
        if (bl_check_len(reply, params, "ext_id", EXT_ID_MAX_CHARS)) {
            json_object_set_new(rec, "ext_id", json_string(ext));
        } else {
            ok = false;
        }
    } else {
        ext = NULL;
    }
    bool named = false;
    for (size_t i = 0; i < sizeof(name_fields) / sizeof(name_fields[0]); i++) {
        named = named || str_or_empty(rec, name_fields[i])[0] != '\0';
    }
    if (!named) {
        bl_field_error(reply, "__all__",
                       "One of firstname, middlename, lastname, comment or company_name is "
                       "required.");
        ok = false;
    }
    if (!ok) {
        json_decref(rec);
        return bl_fail(reply, CREATE_INVALID, "Invalid parameters");
    }

    uint64_t id;
    int rv = 0;
    if (ext != NULL) {
        rv = bl_uniq_get(c, BL_UNIQ_CUST_EXT, ext, &id);
        if (rv == 0) {
            json_decref(rec);
            return bl_fail(reply, CREATE_EXT_TAKEN, "Customer with this ext_id already exists");
        }
        if (rv != TVMW_ENOTFOUND) {
            goto out_free_rec;
        }
    }
    if ((rv = bl_obj_new_id(c, BL_CUSTOMER, &id)) != 0 ||
        (rv = bl_obj_put(c, BL_CUSTOMER, id, rec)) != 0) {
        goto out_free_rec;
    }
    if (ext != NULL && (rv = bl_uniq_put(c, BL_UNIQ_CUST_EXT, ext, id)) != 0) {
        goto out_free_rec;
    }
    json_object_set_new(reply, "id", json_integer((json_int_t)id));

out_free_rec:
    json_decref(rec);
    return rv;
}

/* ---- customer/modify ---------------------------------------------------- */

int bl_customer_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id, other;
    json_t *rec;
    int rv = bl_select_customer(c, params, &id, &rec);
    if (rv != 0) {
        return rv;
    }
    if (id == 0) {
        return bl_fail(reply, CUST_NOT_FOUND, "Customer not found");
    }
    bool ok = take_fields(reply, params, rec);
    /* With customer_id selecting, a present ext_id is the new value
     * (spec 3.2); without it, ext_id was the selector and stays. Present
     * means not absent in the sense of spec 3.1, so a Hydra-style "-1" or
     * an empty value never clears it. */
    const char *old_ext = str_or_empty(rec, "ext_id");
    const char *ext = bl_param(params, "ext_id");
    char *new_ext = NULL;
    if (!bl_absent(bl_param(params, "customer_id")) && !bl_absent(ext) &&
        strcmp(ext, old_ext) != 0) {
        if (!bl_check_len(reply, params, "ext_id", EXT_ID_MAX_CHARS)) {
            ok = false;
        } else if ((rv = bl_uniq_get(c, BL_UNIQ_CUST_EXT, ext, &other)) == 0 && other != id) {
            bl_field_error(reply, "ext_id", "Customer with this ext_id already exists.");
            ok = false;
        } else if (rv != 0 && rv != TVMW_ENOTFOUND) {
            goto out_free_rec;
        } else {
            new_ext = strdup(ext);
            if (new_ext == NULL) {
                rv = -ENOMEM;
                goto out_free_rec;
            }
        }
    }
    rv = 0;
    if (!ok) {
        bl_fail(reply, MODIFY_INVALID, "Invalid parameters");
        goto out_free_ext;
    }
    if (new_ext != NULL) {
        if (old_ext[0] != '\0' && (rv = bl_uniq_del(c, BL_UNIQ_CUST_EXT, old_ext)) != 0) {
            goto out_free_ext;
        }
        if ((rv = bl_uniq_put(c, BL_UNIQ_CUST_EXT, new_ext, id)) != 0) {
            goto out_free_ext;
        }
        json_object_set_new(rec, "ext_id", json_string(new_ext));
    }
    rv = bl_obj_put(c, BL_CUSTOMER, id, rec);

out_free_ext:
    free(new_ext);
out_free_rec:
    json_decref(rec);
    return rv;
}

/* ---- customer/info ------------------------------------------------------ */

int bl_customer_info(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *rec, *info;
    int rv = bl_select_customer(c, params, &id, &rec);
    if (rv != 0) {
        return rv;
    }
    if (id == 0) {
        return bl_fail(reply, CUST_NOT_FOUND, "Customer not found");
    }
    rv = customer_json(c, id, rec, &info);
    json_decref(rec);
    if (rv != 0) {
        return rv;
    }
    json_object_update(reply, info);
    json_decref(info);
    return 0;
}

/* ---- customer/list ------------------------------------------------------- */

struct list_state {
    const int64_t *tariffs; /* NULL: no tariff filter */
    size_t ntariffs;
    const char *phone; /* NULL: no phone filter */
    regex_t *re;       /* NULL: no abonement filter */
    uint64_t skip;     /* matches before the requested page */
    uint64_t take;     /* page size; 0 = all */
    uint64_t matched;
    json_t *out;
};

#define LIST_STOP 1 /* positive: ends bl_obj_each without an error */

static int has_any_tariff(struct bl_ctx *c, uint64_t cust, const struct list_state *s, bool *yes)
{
    *yes = false;
    for (size_t i = 0; i < s->ntariffs && !*yes; i++) {
        if (s->tariffs[i] <= 0) {
            continue;
        }
        int rv = bl_rel_get(c, BL_REL_CUST_TAR, cust, (uint64_t)s->tariffs[i], NULL);
        if (rv == 0) {
            *yes = true;
        } else if (rv != TVMW_ENOTFOUND) {
            return rv;
        }
    }
    return 0;
}

/* Search semantics (Python re.search): a match anywhere in the abonement. */
static int has_matching_account(struct bl_ctx *c, uint64_t cust, const regex_t *re, bool *yes)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_CUST_ACC, cust, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    *yes = false;
    for (size_t i = 0; i < n && !*yes; i++) {
        json_t *acc;
        rv = bl_obj_get(c, BL_ACCOUNT, ids[i], &acc);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0) {
            break;
        }
        *yes = regexec(re, str_or_empty(acc, "abonement"), 0, NULL, 0) == 0;
        json_decref(acc);
    }
    free(ids);
    return rv;
}

static int list_one(struct bl_ctx *c, uint64_t id, json_t *obj, void *arg)
{
    struct list_state *s = arg;
    bool yes;
    int rv;
    if (s->phone != NULL && strcmp(str_or_empty(obj, "mobile_phone_number"), s->phone) != 0) {
        return 0;
    }
    if (s->tariffs != NULL) {
        if ((rv = has_any_tariff(c, id, s, &yes)) != 0) {
            return rv;
        }
        if (!yes) {
            return 0;
        }
    }
    if (s->re != NULL) {
        if ((rv = has_matching_account(c, id, s->re, &yes)) != 0) {
            return rv;
        }
        if (!yes) {
            return 0;
        }
    }
    if (s->matched++ < s->skip) {
        return 0;
    }
    json_t *item;
    if ((rv = customer_json(c, id, obj, &item)) != 0) {
        return rv;
    }
    static const char *const names[] = {"firstname", "middlename", "lastname",
                                        "mobile_phone_number"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_object_set_new(item, names[i], json_string(str_or_empty(obj, names[i])));
    }
    json_array_append_new(s->out, item);
    return s->take != 0 && json_array_size(s->out) >= s->take ? LIST_STOP : 0;
}

/* limit/page: absent or empty = all rows / page 1; anything else must be
 * an integer, limit >= 0 (0 = all rows), page >= 1. */
static int parse_paging(json_t *params, uint64_t *skip, uint64_t *take)
{
    const char *lv = bl_param(params, "limit"), *pv = bl_param(params, "page");
    int64_t limit = 0, page = 1;
    if (lv != NULL && lv[0] != '\0' && (bl_parse_int(lv, &limit) != 0 || limit < 0)) {
        return TVMW_EMALFORMED;
    }
    if (pv != NULL && pv[0] != '\0' && (bl_parse_int(pv, &page) != 0 || page < 1)) {
        return TVMW_EMALFORMED;
    }
    if (limit > BL_MAX_PAGE_LIMIT) {
        limit = BL_MAX_PAGE_LIMIT;
    }
    *take = (uint64_t)limit;
    /* Clamped so that (page - 1) * limit fits in 64 bits; such a page is
     * past any real table anyway. */
    if (page > INT64_MAX / (BL_MAX_PAGE_LIMIT + 1)) {
        page = INT64_MAX / (BL_MAX_PAGE_LIMIT + 1);
    }
    *skip = (uint64_t)(page - 1) * (uint64_t)limit;
    return 0;
}

int bl_customer_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    struct list_state s = {0};
    int64_t *tariffs = NULL;
    regex_t re;
    int rv;

    const char *tv = bl_param(params, "tariff_id");
    if (!bl_absent(tv)) {
        tariffs = calloc(LIST_MAX_TARIFFS, sizeof(*tariffs));
        if (tariffs == NULL) {
            return -ENOMEM;
        }
        if (bl_parse_int_list(tv, tariffs, LIST_MAX_TARIFFS, &s.ntariffs) != 0) {
            free(tariffs);
            return bl_fail(reply, BL_EARGUMENT, "Invalid tariff_id list");
        }
        s.tariffs = tariffs;
    }
    const char *phone = bl_param(params, "mobile_phone_number");
    s.phone = phone != NULL && phone[0] != '\0' ? phone : NULL;
    if (parse_paging(params, &s.skip, &s.take) != 0) {
        free(tariffs);
        return bl_fail(reply, BL_EARGUMENT, "Invalid limit or page");
    }
    const char *rx = bl_param(params, "abonement_regexp");
    if (rx != NULL && rx[0] != '\0') {
        if (regcomp(&re, rx, REG_EXTENDED | REG_NOSUB) != 0) {
            free(tariffs);
            return bl_fail(reply, BL_EARGUMENT, "Invalid abonement_regexp");
        }
        s.re = &re;
    }

    s.out = json_array();
    rv = bl_obj_each(c, BL_CUSTOMER, list_one, &s);
    if (rv == LIST_STOP) {
        rv = 0;
    }
    if (rv == 0) {
        json_object_set_new(reply, "customers", s.out);
    } else {
        json_decref(s.out);
    }
    if (s.re != NULL) {
        regfree(&re);
    }
    free(tariffs);
    return rv;
}

/* ---- customer/delete ----------------------------------------------------- */

static int unlink_tariffs(struct bl_ctx *c, uint64_t cust)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_CUST_TAR, cust, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = bl_rel_del(c, BL_REL_TAR_CUST, ids[i], cust);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
        }
    }
    free(ids);
    return rv != 0 ? rv : bl_rel_del_all(c, BL_REL_CUST_TAR, cust);
}

static int destroy_accounts(struct bl_ctx *c, uint64_t cust)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_CUST_ACC, cust, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = bl_account_destroy(c, ids[i]);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
        }
    }
    free(ids);
    return rv != 0 ? rv : bl_rel_del_all(c, BL_REL_CUST_ACC, cust);
}

/* Transactions (cust_tx) stay for audit (spec 3.2). */
int bl_customer_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id, owner;
    json_t *rec;
    int rv = bl_select_customer(c, params, &id, &rec);
    if (rv != 0) {
        return rv;
    }
    if (id == 0) {
        return bl_fail(reply, CUST_NOT_FOUND, "Customer not found");
    }
    if ((rv = destroy_accounts(c, id)) != 0 || (rv = unlink_tariffs(c, id)) != 0) {
        goto out_free_rec;
    }
    const char *ext = str_or_empty(rec, "ext_id");
    if (ext[0] != '\0') {
        rv = bl_uniq_get(c, BL_UNIQ_CUST_EXT, ext, &owner);
        if (rv == 0 && owner == id) {
            rv = bl_uniq_del(c, BL_UNIQ_CUST_EXT, ext);
        } else if (rv == 0 || rv == TVMW_ENOTFOUND) {
            rv = 0; /* the index names someone else: leave it */
        }
        if (rv != 0) {
            goto out_free_rec;
        }
    }
    rv = bl_obj_del(c, BL_CUSTOMER, id);

out_free_rec:
    json_decref(rec);
    return rv;
}

/* ---- customer/tariff/assign, remove ---------------------------------- */

/* Selects the customer and the tariff; *cust == 0 when the reply already
 * carries the method's error. */
static int select_pair(struct bl_ctx *c, json_t *params, json_t *reply, uint64_t *cust,
                       uint64_t *tariff)
{
    json_t *obj;
    *cust = 0;
    int rv = bl_select_customer(c, params, cust, &obj);
    if (rv != 0) {
        return rv;
    }
    json_decref(obj);
    if (*cust == 0) {
        return bl_fail(reply, CUST_NOT_FOUND, "Customer not found");
    }
    rv = bl_select_tariff(c, params, tariff, &obj);
    if (rv != 0) {
        *cust = 0;
        return rv;
    }
    json_decref(obj);
    if (*tariff == 0) {
        *cust = 0;
        return bl_fail(reply, TARIFF_NOT_FOUND, "Tariff not found");
    }
    return 0;
}

/* Already assigned: success without a write, the first assigned_ms stays
 * (Hydra re-assigns on every sync, spec 3.2). subscribe_svod is accepted
 * and ignored; no balance change (built-in billing charges elsewhere). */
int bl_customer_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t cust, tariff;
    int rv = select_pair(c, params, reply, &cust, &tariff);
    if (rv != 0 || cust == 0) {
        return rv;
    }
    rv = bl_rel_get(c, BL_REL_CUST_TAR, cust, tariff, NULL);
    if (rv != TVMW_ENOTFOUND) {
        return rv;
    }
    json_t *val = json_pack("{s:I}", "assigned_ms", (json_int_t)c->time_ms);
    if (val == NULL) {
        return -ENOMEM;
    }
    rv = bl_rel_put(c, BL_REL_CUST_TAR, cust, tariff, val);
    json_decref(val);
    if (rv != 0) {
        return rv;
    }
    return bl_rel_put(c, BL_REL_TAR_CUST, tariff, cust, NULL);
}

/* Not assigned: success (Hydra removes every promo tariff on each sync). */
int bl_customer_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t cust, tariff;
    int rv = select_pair(c, params, reply, &cust, &tariff);
    if (rv != 0 || cust == 0) {
        return rv;
    }
    rv = bl_rel_del(c, BL_REL_CUST_TAR, cust, tariff);
    if (rv != 0 && rv != TVMW_ENOTFOUND) {
        return rv;
    }
    rv = bl_rel_del(c, BL_REL_TAR_CUST, tariff, cust);
    return rv == TVMW_ENOTFOUND ? 0 : rv;
}
