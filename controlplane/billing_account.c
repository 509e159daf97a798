/*
 * Billing API account group (shared/spec/billing-api.md §3.3): accounts
 * (logins of a customer), their devices and messages, and tariffs assigned
 * to one account. Record formats, relation and index names: billing.h.
 *
 * Writes run inside raft apply in a nested transaction that is discarded
 * when the reply carries an error, so every method validates first and a
 * failed call (e.g. Hydra's account/create of an existing abonement) leaves
 * nothing behind. Nothing here reads the clock or a random source: time is
 * c->time_ms, ids and generated abonements come from counters in the state.
 */
#include "controlplane/billing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "controlplane/device_writes.h"

/* Limits (spec 3.3; lengths in characters). */
#define ABONEMENT_MAX           64
#define STATUS_REASON_MAX       20
#define AUTO_ACTIVATION_MAX     36500 /* days: 100 years */
#define PARENT_CODE_MAX         99999999
#define TIMESHIFT_OFFSET_MAX    1000000
#define DATA_CENTER_MAX         INT32_MAX
#define DEVICE_GROUPS           4 /* 0 STB, 1 Smart TV, 2 Mobile, 3 Other */
#define SUBNETS_MAX_CHARS       4096
#define SUBNETS_MAX_COUNT       256
#define PASSWORD_HASH_CHARS     64
#define PASSWORD_SALT_MAX       128
#define MESSAGE_SUBJECT_MAX     255
#define MESSAGE_TEXT_MAX        2000
#define DEVICE_UID_MAX          128
#define DEVICE_TEXT_MAX         64 /* serial_number, brand_name, device_model */
#define DEVICE_DIAGONAL_MAX     16
#define DEVICE_SYSTEM_NAME_MAX  32
#define ABONEMENT_FIRST         1000000           /* first generated abonement */
#define ABONEMENT_COUNTER       "next:abonement/" /* + client id, in meta */
#define ABONEMENT_COUNTER_BYTES 48

/* Error codes per method (spec 3.3). */
#define E_ACCOUNT_NOT_FOUND   1
#define E_CREATE_CUSTOMER     1
#define E_CREATE_INVALID      2
#define E_CREATE_DUPLICATE    3
#define E_MODIFY_INVALID      2
#define E_MODIFY_PRECONDITION 5 /* tvmw extension: if_status_reason did not match */
#define E_TARIFF_NOT_FOUND    2
#define E_MESSAGE_INVALID     2
#define E_DEVICE_TYPE         2
#define E_DEVICE_INVALID      3
#define E_DEVICE_DUPLICATE    4
#define E_DEVICE_NOT_FOUND    1
#define E_DEVMOD_INVALID      2

#define MSG_INVALID  "Invalid parameters"
#define MSG_REQUIRED "This field is required."

/* Device types accepted as system_name: device-api.md §14, plus the names
 * real clients send outside that list. A model suffix of digits is also
 * accepted ("mag250", the spec's own account/info example). */
static const char *const device_types[] = {
    "android",          "android_stb", "dune", "eltex",    "tvip",
    "lg_netcast",       "lg_webos",    "mag",  "pc",       "sagemcom",
    "samsung_smart_tv", "tizen_tv",    "ios",  "wrt",      "amino",
    "imaqliq",          "kodi",        "vewd", "tbrowser", "browser",
    "appleTV",
};

/* ---- small helpers ------------------------------------------------------ */

static bool device_type_known(const char *name)
{
    for (size_t i = 0; i < sizeof(device_types) / sizeof(device_types[0]); i++) {
        size_t n = strlen(device_types[i]);
        if (strncmp(name, device_types[i], n) != 0) {
            continue;
        }
        const char *s = name + n;
        while (*s >= '0' && *s <= '9') {
            s++;
        }
        if (*s == '\0') {
            return true;
        }
    }
    return false;
}

/* Printable ASCII without spaces: an abonement or a device uid is typed on
 * remote controls and compared byte for byte. */
static bool plain_token(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool is_hex(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) {
            return false;
        }
    }
    return true;
}

static json_int_t get_int(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *get_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *date_or_empty(const json_t *o, const char *k)
{
    return json_string(get_str(o, k));
}

/* ---- subnets ------------------------------------------------------------ */

/* "10.0.0.0/8, 192.168.1.5" -> "10.0.0.0/8;192.168.1.5/32". Separators
 * ';', ',' or whitespace (spec 3.3, separator unverified). IPv4 only. */
static int parse_subnets(const char *v, char **out)
{
    size_t len = strlen(v);
    if (len > SUBNETS_MAX_CHARS) {
        return TVMW_EMALFORMED;
    }
    char *copy = strdup(v);
    char *res = malloc(len * 2 + 1); /* each token grows by at most "/32;" */
    if (copy == NULL || res == NULL) {
        free(copy);
        free(res);
        return -ENOMEM;
    }
    res[0] = '\0';
    size_t used = 0, count = 0;
    int rv = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, "; ,\t\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, "; ,\t\r\n", &save)) {
        char addr[INET_ADDRSTRLEN];
        char *slash = strchr(tok, '/');
        size_t al = slash ? (size_t)(slash - tok) : strlen(tok);
        int64_t bits = 32;
        struct in_addr a;
        if (al >= sizeof(addr) || ++count > SUBNETS_MAX_COUNT) {
            rv = TVMW_EMALFORMED;
            break;
        }
        memcpy(addr, tok, al);
        addr[al] = '\0';
        if (inet_pton(AF_INET, addr, &a) != 1 ||
            (slash != NULL && (strlen(slash + 1) > 2 || bl_parse_int(slash + 1, &bits) != 0 ||
                               slash[1] == '-' || bits > 32))) {
            rv = TVMW_EMALFORMED;
            break;
        }
        int n =
            snprintf(res + used, len * 2 + 1 - used, "%s%s/%" PRId64, used ? ";" : "", addr, bits);
        if (n < 0 || (size_t)n >= len * 2 + 1 - used) {
            rv = TVMW_EMALFORMED;
            break;
        }
        used += (size_t)n;
    }
    free(copy);
    if (rv != 0) {
        free(res);
        return rv;
    }
    *out = res;
    return 0;
}

/* ---- account attributes (spec 3.3 table) --------------------------------- */

enum attr_kind {
    AK_FLAG,     /* 0/1 */
    AK_INT,      /* integer in [min, max] */
    AK_INT_ZERO, /* integer; empty = 0 (unset) */
    AK_INT_NULL, /* integer; empty or -1 = null */
    AK_DATE,     /* YYYY-MM-DD; empty = "" */
    AK_TEXT,     /* string of at most max characters */
};

struct attr {
    const char *name;
    enum attr_kind kind;
    int64_t min, max;
};

static const struct attr attrs[] = {
    {"active", AK_FLAG, 0, 1},
    {"status_reason", AK_TEXT, 0, STATUS_REASON_MAX},
    {"auto_activation_period", AK_INT, 0, AUTO_ACTIVATION_MAX},
    {"extension_date", AK_DATE, 0, 0},
    {"activation_date", AK_DATE, 0, 0},
    {"deactivation_date", AK_DATE, 0, 0},
    {"allow_multiple_login", AK_FLAG, 0, 1},
    {"allow_login_by_abonement", AK_FLAG, 0, 1},
    {"allow_login_by_device_uid", AK_FLAG, 0, 1},
    {"allow_login_by_ip", AK_FLAG, 0, 1},
    {"parent_code", AK_INT_ZERO, 0, PARENT_CODE_MAX},
    {"use_timeshift", AK_FLAG, 0, 1},
    {"preferred_timeshift_offset", AK_INT, -TIMESHIFT_OFFSET_MAX, TIMESHIFT_OFFSET_MAX},
    {"data_center", AK_INT_NULL, 0, DATA_CENTER_MAX},
};

/* Parses one present attribute into acc; records a field error if bad. */
static void parse_attr(json_t *reply, const struct attr *a, const char *v, json_t *acc)
{
    int flag;
    int64_t n;
    char date[11];
    char msg[96];
    switch (a->kind) {
    case AK_FLAG:
        if (bl_parse_flag(v, &flag) != 0) {
            bl_field_error(reply, a->name, "Enter 0 or 1.");
            return;
        }
        json_object_set_new(acc, a->name, json_integer(flag));
        return;
    case AK_INT_NULL:
        if (bl_absent(v)) {
            json_object_set_new(acc, a->name, json_null());
            return;
        }
        /* fall through */
    case AK_INT_ZERO:
        if (v[0] == '\0') {
            json_object_set_new(acc, a->name, json_integer(0));
            return;
        }
        /* fall through */
    case AK_INT:
        if (bl_parse_int(v, &n) != 0) {
            bl_field_error(reply, a->name, "Enter a whole number.");
            return;
        }
        if (n < a->min || n > a->max) {
            snprintf(msg, sizeof(msg), "Enter a number from %" PRId64 " to %" PRId64 ".", a->min,
                     a->max);
            bl_field_error(reply, a->name, msg);
            return;
        }
        json_object_set_new(acc, a->name, json_integer(n));
        return;
    case AK_DATE:
        if (v[0] == '\0') {
            json_object_set_new(acc, a->name, json_string(""));
            return;
        }
        if (bl_parse_date(v, date) != 0) {
            bl_field_error(reply, a->name, "Enter a valid date.");
            return;
        }
        json_object_set_new(acc, a->name, json_string(date));
        return;
    case AK_TEXT: {
        size_t chars = bl_utf8_chars(v);
        if (chars > (size_t)a->max) {
            snprintf(msg, sizeof(msg), "Ensure this value has at most %" PRId64 " characters.",
                     a->max);
            bl_field_error(reply, a->name, chars == SIZE_MAX ? "Invalid UTF-8." : msg);
            return;
        }
        json_object_set_new(acc, a->name, json_string(v));
        return;
    }
    }
}

/* allowed_device_groups: "[0, 2]" -> [0,2] (sorted, no duplicates). */
static void parse_device_groups(json_t *reply, const char *v, json_t *acc)
{
    int64_t list[32];
    size_t n;
    bool seen[DEVICE_GROUPS] = {false};
    if (bl_parse_int_list(v, list, sizeof(list) / sizeof(list[0]), &n) != 0) {
        bl_field_error(reply, "allowed_device_groups", "Enter a list of device groups (0-3).");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i] < 0 || list[i] >= DEVICE_GROUPS) {
            bl_field_error(reply, "allowed_device_groups", "Device groups are 0, 1, 2 and 3.");
            return;
        }
        seen[list[i]] = true;
    }
    json_t *arr = json_array();
    for (int g = 0; g < DEVICE_GROUPS; g++) {
        if (seen[g]) {
            json_array_append_new(arr, json_integer(g));
        }
    }
    json_object_set_new(acc, "allowed_device_groups", arr);
}

/* A new abonement (create, or rename on modify): field error if bad. */
static bool abonement_ok(json_t *reply, const char *v)
{
    size_t n = strlen(v);
    if (n > ABONEMENT_MAX) {
        bl_field_error(reply, "abonement", "Ensure this value has at most 64 characters.");
        return false;
    }
    if (!plain_token(v) || strcmp(v, "-1") == 0) {
        bl_field_error(reply, "abonement", "Enter a login without spaces or control characters.");
        return false;
    }
    return true;
}

/*
 * Applies every present attribute of params to acc (create and modify).
 * The password arrives hashed (billing_http.c): password_hash and
 * password_salt together, or neither.
 */
static int parse_attrs(json_t *reply, json_t *params, json_t *acc)
{
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        const char *v = bl_param(params, attrs[i].name);
        if (v != NULL) {
            parse_attr(reply, &attrs[i], v, acc);
        }
    }
    const char *v = bl_param(params, "allowed_device_groups");
    if (v != NULL && v[0] != '\0') {
        parse_device_groups(reply, v, acc);
    }
    v = bl_param(params, "subnets");
    if (v != NULL) {
        char *norm = NULL;
        int rv = parse_subnets(v, &norm);
        if (rv == -ENOMEM) {
            return rv;
        }
        if (rv != 0) {
            bl_field_error(reply, "subnets", "Enter IPv4 subnets like 10.0.0.0/8;192.168.1.0/24.");
        } else {
            json_object_set_new(acc, "subnets", json_string(norm));
            free(norm);
        }
    }
    const char *hash = bl_param(params, "password_hash");
    const char *salt = bl_param(params, "password_salt");
    if (hash != NULL || salt != NULL) {
        if (hash == NULL || salt == NULL || strlen(hash) != PASSWORD_HASH_CHARS || !is_hex(hash) ||
            salt[0] == '\0' || strlen(salt) > PASSWORD_SALT_MAX || !plain_token(salt)) {
            bl_field_error(reply, "password", "Invalid password.");
        } else {
            json_object_set_new(acc, "password_hash", json_string(hash));
            json_object_set_new(acc, "password_salt", json_string(salt));
        }
    }
    return 0;
}

/* The next free generated abonement of this client: a per-client counter
 * from ABONEMENT_FIRST, skipping values a caller already took. */
static int next_abonement(struct bl_ctx *c, char out[32])
{
    char name[ABONEMENT_COUNTER_BYTES];
    snprintf(name, sizeof(name), ABONEMENT_COUNTER "%" PRIu64, c->client_id);
    struct cp_apply a = {.txn = c->txn, .db = c->db};
    for (;;) {
        uint64_t n, used;
        int rv = cp_counter_next(&a, name, &n);
        if (rv != 0) {
            return rv;
        }
        snprintf(out, 32, "%" PRIu64, n + ABONEMENT_FIRST - 1);
        rv = bl_uniq_get(c, BL_UNIQ_ABONEMENT, out, &used);
        if (rv == TVMW_ENOTFOUND) {
            return 0;
        }
        if (rv != 0) {
            return rv;
        }
    }
}

static int select_account_or_fail(struct bl_ctx *c, json_t *params, json_t *reply, uint64_t *id,
                                  json_t **acc)
{
    int rv = bl_select_account(c, params, id, acc);
    if (rv == 0 && *id == 0) {
        bl_fail(reply, E_ACCOUNT_NOT_FOUND, "Account not found");
    }
    return rv;
}

/* ---- account/create, account/modify -------------------------------------- */

int bl_account_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t cust_id, id, other;
    json_t *cust = NULL;
    int rv = bl_select_customer(c, params, &cust_id, &cust);
    json_decref(cust);
    if (rv != 0) {
        return rv;
    }
    if (cust_id == 0) {
        return bl_fail(reply, E_CREATE_CUSTOMER, "Customer not found");
    }
    json_t *acc = json_pack(
        "{s:I, s:s, s:s, s:s, s:i, s:n, s:i, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
        "s:n, s:[iiii], s:s, s:I, s:n, s:i}",
        "customer_id", (json_int_t)cust_id, "abonement", "", "password_hash", "", "password_salt",
        "", "active", 1, "status_reason", "auto_activation_period", 0, "extension_date", "",
        "activation_date", "", "deactivation_date", "", "allow_multiple_login", 0,
        "allow_login_by_abonement", 0, "allow_login_by_device_uid", 1, "allow_login_by_ip", 0,
        "parent_code", 0, "use_timeshift", 0, "preferred_timeshift_offset", 0, "data_center",
        "allowed_device_groups", 0, 1, 2, 3, "subnets", "", "created_ms", (json_int_t)c->time_ms,
        "last_active_ms", "logout_before_ms", 0);
    if (acc == NULL) {
        return -ENOMEM;
    }
    const char *abon = bl_param(params, "abonement");
    bool given = !bl_absent(abon);
    if (given) {
        abonement_ok(reply, abon);
    }
    rv = parse_attrs(reply, params, acc);
    if (rv != 0) {
        goto out;
    }
    if (bl_has_field_errors(reply)) {
        bl_fail(reply, E_CREATE_INVALID, MSG_INVALID);
        goto out;
    }
    char gen[32];
    if (given) {
        rv = bl_uniq_get(c, BL_UNIQ_ABONEMENT, abon, &other);
        if (rv == 0) {
            bl_fail(reply, E_CREATE_DUPLICATE, "Account with abonement %s already exists", abon);
            goto out;
        }
        if (rv != TVMW_ENOTFOUND) {
            goto out;
        }
    } else {
        if ((rv = next_abonement(c, gen)) != 0) {
            goto out;
        }
        abon = gen;
    }
    json_object_set_new(acc, "abonement", json_string(abon));
    if ((rv = bl_obj_new_id(c, BL_ACCOUNT, &id)) != 0 ||
        (rv = bl_obj_put(c, BL_ACCOUNT, id, acc)) != 0 ||
        (rv = bl_uniq_put(c, BL_UNIQ_ABONEMENT, abon, id)) != 0 ||
        (rv = bl_rel_put(c, BL_REL_CUST_ACC, cust_id, id, NULL)) != 0) {
        goto out;
    }
    /* "password" right after "abonement": the HTTP layer puts the clear
     * password there, which never enters the log (billing_http.c). */
    json_object_set_new(reply, "abonement", json_string(abon));
    json_object_set_new(reply, "password", json_string(""));
    json_object_set_new(reply, "id", json_integer((json_int_t)id));
out:
    json_decref(acc);
    return rv;
}

/* Marks every device of the account for a reset of user data. */
static int reset_devices(struct bl_ctx *c, uint64_t account_id)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, BL_REL_ACC_DEV, account_id, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        json_t *dev;
        rv = bl_obj_get(c, BL_DEVICE, ids[i], &dev);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv == 0) {
            json_object_set_new(dev, "reset_settings", json_integer(1));
            rv = bl_obj_put(c, BL_DEVICE, ids[i], dev);
            json_decref(dev);
        }
    }
    free(ids);
    return rv;
}

int bl_account_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id, other;
    json_t *acc;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    /* tvmw extension: if_status_reason=X applies the change only while the
     * account's status_reason is X ("" for never set): a compare-and-set
     * that billing scripts and the fault-injection suite use. */
    const char *expect = bl_param(params, "if_status_reason");
    if (expect != NULL) {
        const char *cur = json_string_value(json_object_get(acc, "status_reason"));
        if (strcmp(cur ? cur : "", expect) != 0) {
            bl_fail(reply, E_MODIFY_PRECONDITION, "Precondition failed: status_reason is \"%s\"",
                    cur ? cur : "");
            json_decref(acc);
            return 0;
        }
    }
    int was_active = (int)get_int(acc, "active");
    char old_abon[ABONEMENT_MAX + 1];
    snprintf(old_abon, sizeof(old_abon), "%s", get_str(acc, "abonement"));
    /* Selected by abonement: it is the selector, not a new value. Renaming
     * needs account_id + abonement (spec 3.3, tvmw decision). */
    const char *abon = bl_param(params, "abonement");
    bool rename = !bl_absent(bl_param(params, "account_id")) && !bl_absent(abon) &&
                  strcmp(abon, old_abon) != 0;
    if (rename && abonement_ok(reply, abon)) {
        rv = bl_uniq_get(c, BL_UNIQ_ABONEMENT, abon, &other);
        if (rv == 0) {
            bl_field_error(reply, "abonement", "An account with this abonement already exists.");
        } else if (rv != TVMW_ENOTFOUND) {
            goto out;
        }
        rv = 0;
    }
    int reset = 0;
    const char *v = bl_param(params, "reset_device_settings");
    if (v != NULL && v[0] != '\0' && bl_parse_flag(v, &reset) != 0) {
        bl_field_error(reply, "reset_device_settings", "Enter 0 or 1.");
    }
    if ((rv = parse_attrs(reply, params, acc)) != 0) {
        goto out;
    }
    if (bl_has_field_errors(reply)) {
        bl_fail(reply, E_MODIFY_INVALID, MSG_INVALID);
        goto out;
    }
    if (rename) {
        json_object_set_new(acc, "abonement", json_string(abon));
        if ((rv = bl_uniq_del(c, BL_UNIQ_ABONEMENT, old_abon)) != 0 ||
            (rv = bl_uniq_put(c, BL_UNIQ_ABONEMENT, abon, id)) != 0) {
            goto out;
        }
    }
    /* Blocking through modify (Hydra: active=0, status_reason=DEBT) ends
     * the sessions like account/deactivate does. */
    if (was_active && get_int(acc, "active") == 0) {
        json_object_set_new(acc, "logout_before_ms", json_integer((json_int_t)c->time_ms));
    }
    if ((rv = bl_obj_put(c, BL_ACCOUNT, id, acc)) != 0) {
        goto out;
    }
    if (reset) {
        rv = reset_devices(c, id);
    }
out:
    json_decref(acc);
    return rv;
}

/* ---- account/info, account/list ---------------------------------------- */

static int device_json(struct bl_ctx *c, uint64_t dev_id, json_t *arr)
{
    json_t *dev;
    int rv = bl_obj_get(c, BL_DEVICE, dev_id, &dev);
    if (rv == TVMW_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    char created[20];
    bl_datetime((uint64_t)get_int(dev, "created_ms"), created);
    json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:i}", "id", (json_int_t)dev_id,
                                         "system_name", get_str(dev, "system_name"), "device_uid",
                                         get_str(dev, "device_uid"), "serial_number",
                                         get_str(dev, "serial_number"), "created_at", created,
                                         "is_basic", (int)get_int(dev, "is_basic")));
    json_decref(dev);
    return 0;
}

static bool has_id(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* tariffs: assigned to the account or to its customer (spec 3.3, tvmw
 * decision); subscriptions: the account's own assignments. */
static int tariffs_json(struct bl_ctx *c, uint64_t id, uint64_t cust_id, json_t *tariffs,
                        json_t *subs)
{
    uint64_t *own = NULL, *cust = NULL, *all = NULL;
    size_t nown = 0, ncust = 0, nall = 0;
    int rv = bl_rel_list(c, BL_REL_ACC_TAR, id, &own, &nown);
    if (rv != 0) {
        return rv;
    }
    if ((rv = bl_rel_list(c, BL_REL_CUST_TAR, cust_id, &cust, &ncust)) != 0) {
        goto out;
    }
    all = malloc((nown + ncust + 1) * sizeof(*all));
    if (all == NULL) {
        rv = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nown + ncust; i++) {
        uint64_t t = i < nown ? own[i] : cust[i - nown];
        if (!has_id(all, nall, t)) {
            all[nall++] = t;
        }
    }
    qsort(all, nall, sizeof(*all), cmp_u64);
    for (size_t i = 0; i < nall; i++) {
        json_t *tar;
        rv = bl_obj_get(c, BL_TARIFF, all[i], &tar);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue; /* a dangling link is not shown */
        }
        if (rv != 0) {
            goto out;
        }
        json_array_append_new(tariffs, json_integer((json_int_t)all[i]));
        json_t *link = NULL;
        if (has_id(own, nown, all[i]) &&
            (rv = bl_rel_get(c, BL_REL_ACC_TAR, id, all[i], &link)) == 0) {
            char start[11];
            bl_date((uint64_t)get_int(link, "assigned_ms"), start);
            json_array_append_new(
                subs, json_pack("{s:I, s:n, s:o, s:s, s:n, s:i}", "tariff_id", (json_int_t)all[i],
                                "api_config_id", "price", bl_money(get_int(tar, "price_cents")),
                                "start_date", start, "end_date", "is_periodical", 1));
        }
        json_decref(link);
        json_decref(tar);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
        }
        if (rv != 0) {
            goto out;
        }
    }
out:
    free(own);
    free(cust);
    free(all);
    return rv;
}

int bl_account_json(struct bl_ctx *c, uint64_t id, json_t *acc, json_t **out)
{
    json_t *o = json_object(), *devices = json_array(), *tariffs = json_array(),
           *subs = json_array();
    uint64_t *dev_ids = NULL;
    size_t ndev = 0;
    json_t *sr = json_object_get(acc, "status_reason");
    json_object_set_new(o, "id", json_integer((json_int_t)id));
    json_object_set_new(o, "abonement", json_string(get_str(acc, "abonement")));
    json_object_set_new(o, "customer_id", json_integer(get_int(acc, "customer_id")));
    json_object_set_new(o, "active", json_integer(get_int(acc, "active")));
    json_object_set_new(o, "status_reason", json_is_string(sr) ? json_copy(sr) : json_null());
    json_object_set_new(o, "auto_activation_period",
                        json_integer(get_int(acc, "auto_activation_period")));
    json_object_set_new(o, "extension_date", date_or_empty(acc, "extension_date"));
    json_object_set_new(o, "activation_date", date_or_empty(acc, "activation_date"));
    json_object_set_new(o, "deactivation_date", date_or_empty(acc, "deactivation_date"));
    static const char *const ints[] = {"allow_multiple_login",
                                       "allow_login_by_abonement",
                                       "allow_login_by_device_uid",
                                       "allow_login_by_ip",
                                       "parent_code",
                                       "use_timeshift",
                                       "preferred_timeshift_offset"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_object_set_new(o, ints[i], json_integer(get_int(acc, ints[i])));
    }
    json_object_set_new(o, "devices", devices);
    json_object_set_new(o, "tariffs", tariffs);
    json_object_set_new(o, "subnets", json_string(get_str(acc, "subnets")));
    json_object_set_new(o, "subscriptions", subs);
    /* tvmw additions (attributes of the spec 3.3 table). */
    json_t *dc = json_object_get(acc, "data_center");
    json_object_set_new(o, "data_center", json_is_integer(dc) ? json_copy(dc) : json_null());
    json_t *groups = json_object_get(acc, "allowed_device_groups");
    json_object_set_new(o, "allowed_device_groups",
                        json_is_array(groups) ? json_deep_copy(groups) : json_array());

    int rv = bl_rel_list(c, BL_REL_ACC_DEV, id, &dev_ids, &ndev);
    for (size_t i = 0; rv == 0 && i < ndev; i++) {
        rv = device_json(c, dev_ids[i], devices);
    }
    free(dev_ids);
    if (rv == 0) {
        rv = tariffs_json(c, id, (uint64_t)get_int(acc, "customer_id"), tariffs, subs);
    }
    if (rv != 0) {
        json_decref(o);
        return rv;
    }
    *out = o;
    return 0;
}

/* Copies the fields of src into dst (after what dst already has). */
static void merge_into(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        json_object_set(dst, k, v);
    }
}

int bl_account_info(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *acc, *info;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    rv = bl_account_json(c, id, acc, &info);
    json_decref(acc);
    if (rv != 0) {
        return rv;
    }
    merge_into(reply, info);
    json_decref(info);
    return 0;
}

struct list_filter {
    int status;          /* -1 any, else active must equal it */
    const char *reason;  /* NULL any */
    uint64_t device_acc; /* 0 any, else only this account */
    bool device_none;    /* a device filter that matches no account */
    regex_t re;          /* abonement_regexp */
    bool has_re;
    int64_t skip, limit; /* limit < 0: all */
    json_t *out;
};

static int list_one(struct bl_ctx *c, uint64_t id, json_t *acc, void *arg)
{
    struct list_filter *f = arg;
    json_t *sr = json_object_get(acc, "status_reason");
    if ((f->status >= 0 && get_int(acc, "active") != f->status) ||
        (f->reason != NULL && (!json_is_string(sr) || strcmp(json_string_value(sr), f->reason))) ||
        (f->device_acc != 0 && f->device_acc != id) ||
        (f->has_re && regexec(&f->re, get_str(acc, "abonement"), 0, NULL, 0) != 0)) {
        return 0;
    }
    if (f->skip > 0) {
        f->skip--;
        return 0;
    }
    if (f->limit >= 0 && (int64_t)json_array_size(f->out) >= f->limit) {
        return 1; /* page full */
    }
    json_t *o;
    int rv = bl_account_json(c, id, acc, &o);
    if (rv != 0) {
        return rv;
    }
    json_t *last = json_object_get(acc, "last_active_ms");
    if (json_is_integer(last) && json_integer_value(last) > 0) {
        char d[11];
        bl_date((uint64_t)json_integer_value(last), d);
        json_object_set_new(o, "last_active", json_string(d));
    } else {
        json_object_set_new(o, "last_active", json_null());
    }
    json_array_append_new(f->out, o);
    return 0;
}

/* An optional integer parameter: absent/empty -> dflt; else in [min, max]. */
static int param_int(json_t *params, const char *name, int64_t min, int64_t max, int64_t dflt,
                     int64_t *out)
{
    const char *v = bl_param(params, name);
    if (v == NULL || v[0] == '\0') {
        *out = dflt;
        return 0;
    }
    int64_t n;
    if (bl_parse_int(v, &n) != 0 || n < min || n > max) {
        return TVMW_EMALFORMED;
    }
    *out = n;
    return 0;
}

int bl_account_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    struct list_filter f = {.status = -1, .limit = -1};
    int64_t limit, page;
    int flag;
    const char *v = bl_param(params, "status");
    if (v != NULL && v[0] != '\0') {
        if (bl_parse_flag(v, &flag) != 0) {
            return bl_fail(reply, BL_EARGUMENT, "status must be 0 or 1");
        }
        f.status = flag;
    }
    v = bl_param(params, "status_reason");
    if (v != NULL && v[0] != '\0') {
        f.reason = v;
    }
    if (param_int(params, "limit", 0, INT64_MAX / 2, 0, &limit) != 0 ||
        param_int(params, "page", 1, INT32_MAX, 1, &page) != 0) {
        return bl_fail(reply, BL_EARGUMENT, "limit and page must be positive integers");
    }
    if (limit > 0) { /* limit absent or 0: every matching account (spec 3.3) */
        f.limit = limit > BL_MAX_PAGE_LIMIT ? BL_MAX_PAGE_LIMIT : limit;
        f.skip = (page - 1) * f.limit;
    }
    v = bl_param(params, "device");
    if (v != NULL && v[0] != '\0') {
        uint64_t dev_id;
        json_t *dev;
        int rv = bl_uniq_get(c, BL_UNIQ_DEV_UID, v, &dev_id);
        if (rv == 0) {
            rv = bl_obj_get(c, BL_DEVICE, dev_id, &dev);
            if (rv == 0) {
                f.device_acc = (uint64_t)get_int(dev, "account_id");
                json_decref(dev);
            }
        }
        if (rv == TVMW_ENOTFOUND) {
            f.device_none = true;
        } else if (rv != 0) {
            return rv;
        }
    }
    v = bl_param(params, "abonement_regexp");
    if (v != NULL && v[0] != '\0') {
        if (regcomp(&f.re, v, REG_EXTENDED | REG_NOSUB) != 0) {
            return bl_fail(reply, BL_EARGUMENT, "Invalid abonement_regexp");
        }
        f.has_re = true;
    }
    f.out = json_array();
    int rv = 0;
    if (!f.device_none) {
        rv = bl_obj_each(c, BL_ACCOUNT, list_one, &f);
    }
    if (f.has_re) {
        regfree(&f.re);
    }
    if (rv < 0) {
        json_decref(f.out);
        return rv;
    }
    json_object_set_new(reply, "accounts", f.out);
    return 0;
}

/* ---- account/delete, activate, deactivate ----------------------------------- */

static int destroy_children(struct bl_ctx *c, const char *rel, enum bl_kind kind, uint64_t from,
                            bool is_device)
{
    uint64_t *ids;
    size_t n;
    int rv = bl_rel_list(c, rel, from, &ids, &n);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        json_t *obj;
        rv = bl_obj_get(c, kind, ids[i], &obj);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0) {
            break;
        }
        if (is_device) {
            rv = bl_uniq_del(c, BL_UNIQ_DEV_UID, get_str(obj, "device_uid"));
        }
        json_decref(obj);
        if (rv == 0) {
            rv = bl_obj_del(c, kind, ids[i]);
            rv = rv == TVMW_ENOTFOUND ? 0 : rv;
        }
    }
    free(ids);
    return rv != 0 ? rv : bl_rel_del_all(c, rel, from);
}

int bl_account_destroy(struct bl_ctx *c, uint64_t account_id)
{
    json_t *acc;
    int rv = bl_obj_get(c, BL_ACCOUNT, account_id, &acc);
    if (rv == TVMW_ENOTFOUND) {
        return 0; /* nothing of this client to delete */
    }
    if (rv != 0) {
        return rv;
    }
    uint64_t *tars = NULL;
    size_t ntar = 0;
    if ((rv = destroy_children(c, BL_REL_ACC_DEV, BL_DEVICE, account_id, true)) != 0 ||
        (rv = destroy_children(c, BL_REL_ACC_MSG, BL_MESSAGE, account_id, false)) != 0 ||
        (rv = bl_rel_list(c, BL_REL_ACC_TAR, account_id, &tars, &ntar)) != 0) {
        goto out;
    }
    for (size_t i = 0; rv == 0 && i < ntar; i++) {
        rv = bl_rel_del(c, BL_REL_TAR_ACC, tars[i], account_id);
        rv = rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    if (rv != 0 || (rv = bl_rel_del_all(c, BL_REL_ACC_TAR, account_id)) != 0 ||
        (rv = bl_uniq_del(c, BL_UNIQ_ABONEMENT, get_str(acc, "abonement"))) != 0 ||
        (rv = cp_device_account_forget(c, account_id)) != 0) {
        goto out;
    }
    rv = bl_rel_del(c, BL_REL_CUST_ACC, (uint64_t)get_int(acc, "customer_id"), account_id);
    if (rv == 0 || rv == TVMW_ENOTFOUND) {
        rv = bl_obj_del(c, BL_ACCOUNT, account_id);
    }
out:
    free(tars);
    json_decref(acc);
    return rv;
}

int bl_account_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *acc;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    json_decref(acc);
    return bl_account_destroy(c, id);
}

/* Activating an active / deactivating an inactive account succeeds (spec
 * 5.4). Deactivation also ends the account's sessions: tokens issued
 * before logout_before_ms are refused. */
static int set_active(struct bl_ctx *c, json_t *params, json_t *reply, int active)
{
    uint64_t id;
    json_t *acc;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    json_object_set_new(acc, "active", json_integer(active));
    if (!active) {
        json_object_set_new(acc, "logout_before_ms", json_integer((json_int_t)c->time_ms));
    }
    rv = bl_obj_put(c, BL_ACCOUNT, id, acc);
    json_decref(acc);
    return rv;
}

int bl_account_activate(struct bl_ctx *c, json_t *params, json_t *reply)
{
    return set_active(c, params, reply, 1);
}

int bl_account_deactivate(struct bl_ctx *c, json_t *params, json_t *reply)
{
    return set_active(c, params, reply, 0);
}

/* ---- account/tariff/assign, account/tariff/remove --------------------------- */

static int tariff_link(struct bl_ctx *c, json_t *params, json_t *reply, bool assign)
{
    uint64_t id, tid;
    json_t *acc, *tar;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    json_decref(acc);
    if ((rv = bl_select_tariff(c, params, &tid, &tar)) != 0) {
        return rv;
    }
    json_decref(tar);
    if (tid == 0) {
        return bl_fail(reply, E_TARIFF_NOT_FOUND, "Tariff not found");
    }
    rv = bl_rel_get(c, BL_REL_ACC_TAR, id, tid, NULL);
    if (rv != 0 && rv != TVMW_ENOTFOUND) {
        return rv;
    }
    bool linked = rv == 0;
    if (assign && !linked) { /* an assigned tariff keeps its first date */
        json_t *val = json_pack("{s:I}", "assigned_ms", (json_int_t)c->time_ms);
        rv = bl_rel_put(c, BL_REL_ACC_TAR, id, tid, val);
        json_decref(val);
        return rv != 0 ? rv : bl_rel_put(c, BL_REL_TAR_ACC, tid, id, NULL);
    }
    if (!assign && linked) {
        rv = bl_rel_del(c, BL_REL_ACC_TAR, id, tid);
        if (rv == 0) {
            rv = bl_rel_del(c, BL_REL_TAR_ACC, tid, id);
        }
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    return 0;
}

int bl_account_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply)
{
    return tariff_link(c, params, reply, true);
}

int bl_account_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply)
{
    return tariff_link(c, params, reply, false);
}

/* ---- account/message/create ------------------------------------------------- */

/* An optional flag parameter: absent or empty -> dflt. */
static int flag_param(json_t *reply, json_t *params, const char *name, int dflt)
{
    const char *v = bl_param(params, name);
    int f = dflt;
    if (v != NULL && v[0] != '\0' && bl_parse_flag(v, &f) != 0) {
        bl_field_error(reply, name, "Enter 0 or 1.");
    }
    return f;
}

int bl_account_message_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id, msg_id;
    json_t *acc;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    json_decref(acc);
    const char *subject = bl_param(params, "subject");
    const char *text = bl_param(params, "text");
    bl_check_len(reply, params, "subject", MESSAGE_SUBJECT_MAX);
    bl_check_len(reply, params, "text", MESSAGE_TEXT_MAX);
    if (text == NULL || text[0] == '\0') {
        bl_field_error(reply, "text", MSG_REQUIRED);
    }
    int urgent = flag_param(reply, params, "urgent", 1);
    int dar = flag_param(reply, params, "delete_after_reading", 1);
    if (bl_has_field_errors(reply)) {
        return bl_fail(reply, E_MESSAGE_INVALID, MSG_INVALID);
    }
    json_t *msg = json_pack("{s:I, s:s, s:s, s:i, s:i, s:I}", "account_id", (json_int_t)id,
                            "subject", subject ? subject : "", "text", text, "urgent", urgent,
                            "delete_after_reading", dar, "created_ms", (json_int_t)c->time_ms);
    if (msg == NULL) {
        return -ENOMEM;
    }
    if ((rv = bl_obj_new_id(c, BL_MESSAGE, &msg_id)) == 0 &&
        (rv = bl_obj_put(c, BL_MESSAGE, msg_id, msg)) == 0 &&
        (rv = bl_rel_put(c, BL_REL_ACC_MSG, id, msg_id, NULL)) == 0) {
        json_object_set_new(reply, "id", json_integer((json_int_t)msg_id));
    }
    json_decref(msg);
    return rv;
}

/* ---- account/device/create, modify, delete ---------------------------------- */

/* serial_number, brand_name, device_model, diagonal, reset_settings:
 * present ones into dev. */
static void device_fields(json_t *reply, json_t *params, json_t *dev)
{
    static const struct {
        const char *name;
        size_t max;
    } texts[] = {{"serial_number", DEVICE_TEXT_MAX},
                 {"brand_name", DEVICE_TEXT_MAX},
                 {"device_model", DEVICE_TEXT_MAX},
                 {"diagonal", DEVICE_DIAGONAL_MAX}};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        const char *v = bl_param(params, texts[i].name);
        if (v != NULL && bl_check_len(reply, params, texts[i].name, texts[i].max)) {
            json_object_set_new(dev, texts[i].name, json_string(v));
        }
    }
    const char *v = bl_param(params, "reset_settings");
    if (v != NULL && v[0] != '\0') {
        int f;
        if (bl_parse_flag(v, &f) != 0) {
            bl_field_error(reply, "reset_settings", "Enter 0 or 1.");
        } else {
            json_object_set_new(dev, "reset_settings", json_integer(f));
        }
    }
}

int bl_account_device_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id, dev_id, other;
    json_t *acc;
    int rv = select_account_or_fail(c, params, reply, &id, &acc);
    if (rv != 0 || id == 0) {
        return rv;
    }
    json_decref(acc);
    const char *sys = bl_param(params, "system_name");
    const char *uid = bl_param(params, "device_uid");
    if (sys != NULL && sys[0] != '\0' &&
        (strlen(sys) > DEVICE_SYSTEM_NAME_MAX || !device_type_known(sys))) {
        return bl_fail(reply, E_DEVICE_TYPE, "Device type %.32s not found", sys);
    }
    if (sys == NULL || sys[0] == '\0') {
        bl_field_error(reply, "system_name", MSG_REQUIRED);
    }
    /* "0" is what some apps send for "no uid" (device-api.md 1.1a). */
    if (uid == NULL || uid[0] == '\0' || strcmp(uid, "0") == 0) {
        bl_field_error(reply, "device_uid", MSG_REQUIRED);
    } else if (strlen(uid) > DEVICE_UID_MAX || !plain_token(uid)) {
        bl_field_error(reply, "device_uid",
                       "Enter a device UID of at most 128 printable characters.");
    }
    json_t *dev = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:n}", "account_id",
                            (json_int_t)id, "system_name", sys ? sys : "", "device_uid",
                            uid ? uid : "", "serial_number", "", "brand_name", "", "device_model",
                            "", "diagonal", "", "is_basic", 1, "reset_settings", 0, "created_ms",
                            (json_int_t)c->time_ms, "last_seen_ms");
    if (dev == NULL) {
        return -ENOMEM;
    }
    device_fields(reply, params, dev);
    if (bl_has_field_errors(reply)) {
        bl_fail(reply, E_DEVICE_INVALID, MSG_INVALID);
        goto out;
    }
    rv = bl_uniq_get(c, BL_UNIQ_DEV_UID, uid, &other);
    if (rv == 0) {
        bl_fail(reply, E_DEVICE_DUPLICATE, "Device with device_uid %s already exists", uid);
        goto out;
    }
    if (rv != TVMW_ENOTFOUND) {
        goto out;
    }
    if ((rv = bl_obj_new_id(c, BL_DEVICE, &dev_id)) == 0 &&
        (rv = bl_obj_put(c, BL_DEVICE, dev_id, dev)) == 0 &&
        (rv = bl_uniq_put(c, BL_UNIQ_DEV_UID, uid, dev_id)) == 0 &&
        (rv = bl_rel_put(c, BL_REL_ACC_DEV, id, dev_id, NULL)) == 0) {
        json_object_set_new(reply, "id", json_integer((json_int_t)dev_id));
    }
out:
    json_decref(dev);
    return rv;
}

/* Device by device_id, else device_uid (spec 3.3); other parameters are
 * ignored (the PHP client sends device/delete the create parameter set). */
static int select_device(struct bl_ctx *c, json_t *params, json_t *reply, uint64_t *id,
                         json_t **dev)
{
    const char *idv = bl_param(params, "device_id");
    const char *uid = bl_param(params, "device_uid");
    uint64_t found = 0;
    int64_t n;
    int rv = 0;
    *id = 0;
    if (!bl_absent(idv)) {
        if (bl_parse_int(idv, &n) == 0 && n > 0) {
            found = (uint64_t)n;
        }
    } else if (uid != NULL && uid[0] != '\0') {
        rv = bl_uniq_get(c, BL_UNIQ_DEV_UID, uid, &found);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
        }
    }
    if (rv == 0 && found != 0) {
        rv = bl_obj_get(c, BL_DEVICE, found, dev);
        if (rv == 0) {
            *id = found;
        }
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
        }
    }
    if (rv == 0 && *id == 0) {
        bl_fail(reply, E_DEVICE_NOT_FOUND, "Device not found");
    }
    return rv;
}

int bl_account_device_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *dev;
    int rv = select_device(c, params, reply, &id, &dev);
    if (rv != 0 || id == 0) {
        return rv;
    }
    device_fields(reply, params, dev);
    if (bl_has_field_errors(reply)) {
        bl_fail(reply, E_DEVMOD_INVALID, MSG_INVALID);
    } else {
        rv = bl_obj_put(c, BL_DEVICE, id, dev);
    }
    json_decref(dev);
    return rv;
}

int bl_account_device_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t id;
    json_t *dev;
    int rv = select_device(c, params, reply, &id, &dev);
    if (rv != 0 || id == 0) {
        return rv;
    }
    rv = bl_uniq_del(c, BL_UNIQ_DEV_UID, get_str(dev, "device_uid"));
    if (rv == 0) {
        rv = bl_rel_del(c, BL_REL_ACC_DEV, (uint64_t)get_int(dev, "account_id"), id);
        rv = rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    if (rv == 0) {
        rv = bl_obj_del(c, BL_DEVICE, id);
    }
    json_decref(dev);
    return rv;
}
