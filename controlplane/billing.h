/*
 * The Smarty-compatible Billing API (shared/spec/billing-api.md): the
 * method table, the context methods run in, and the helpers they share.
 *
 * Every method is one function with the same shape for reads and writes:
 *
 *   int fn(struct bl_ctx *c, json_t *params, json_t *reply)
 *
 * `params` is the merged request (query ∪ form body) as a JSON object of
 * strings, after the HTTP layer checked the signature and removed
 * `signature` and secrets (a given `password` arrives as `password_hash` and
 * `password_salt`, see billing_http.c). The function fills `reply` with the
 * method's fields, or calls bl_fail() with the method's error code. It
 * returns 0, or a negative code only if the store failed.
 *
 * Writes run inside raft apply (fsm.c → cp_billing_apply), in a nested
 * LMDB transaction that is thrown away when the reply carries an error, so
 * a failed method never leaves half its changes. They must be
 * deterministic: time is c->time_ms (the proposer's), ids come from
 * counters, random values (generated passwords, salts) come in params.
 * Reads run on an HTTP thread in a read-only transaction after the
 * linearizable-read barrier.
 *
 * Every object belongs to one client (tenant) and carries "client_id";
 * bl_obj_get() treats another client's object as absent.
 */
#ifndef TVMW_CONTROLPLANE_BILLING_H
#define TVMW_CONTROLPLANE_BILLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "controlplane/fsm.h"

/* Cross-method codes (spec 4.2). */
#define BL_OK             0
#define BL_EINTERNAL      -1
#define BL_EARGUMENT      -100
#define BL_MAX_PAGE_LIMIT 100000

struct bl_ctx {
    MDB_txn *txn;
    const struct cp_dbs *db;
    uint64_t client_id;
    uint64_t time_ms; /* the command's time (writes) or now (reads) */
    uint64_t index;   /* raft index of the command; 0 for reads */
    bool write;
};

typedef int (*bl_method_fn)(struct bl_ctx *c, json_t *params, json_t *reply);

struct bl_method {
    const char *path; /* "customer/create": no prefix, no slashes around */
    bool write;
    bool error_fields; /* the reply carries "error_fields" (spec 4.3) */
    bl_method_fn fn;
};

/* NULL if the path names no method. */
const struct bl_method *bl_method_find(const char *path);

/* Runs a write method inside apply: nested txn, audit record, reply. The
 * payload is {"client_id", "method", "params", "source"}. */
int cp_billing_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);
/* Many write methods in one command (bulk import): each item runs like a
 * CP_CMD_BILLING command of its own, in its own nested transaction; the
 * result lists every item's reply in order. */
int cp_billing_batch_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);
/* Appends the audit record of the entry being applied: client_id and
 * source from payload, params without secrets. */
int cp_audit_put(struct cp_apply *a, json_t *payload, const char *method, json_t *params,
                 json_int_t error);
/* A batch of the built-in billing run (billing_run.c). */
int cp_billing_run_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);

/* ---- replies ---------------------------------------------------------- */

/* Sets error/error_message; returns 0 so that methods can `return bl_fail()`. */
int bl_fail(json_t *reply, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds a message to error_fields[field] (creating it); "__all__" for
 * non-field errors. Does not set error. */
void bl_field_error(json_t *reply, const char *field, const char *msg);
bool bl_has_field_errors(const json_t *reply);

/* ---- parameters (spec 3.1) --------------------------------------------- */

/* The value of a parameter or NULL. */
const char *bl_param(json_t *params, const char *name);
/* Missing, empty or "-1": the selector conventions of spec 3.1. */
bool bl_absent(const char *v);
int bl_parse_int(const char *v, int64_t *out);      /* decimal, optional '-' */
int bl_parse_flag(const char *v, int *out);         /* 1/0/true/false/on/off */
int bl_parse_date(const char *v, char out[11]);     /* YYYY-MM-DD[ HH:MM:SS] */
int bl_parse_amount(const char *v, int64_t *cents); /* -12.5, 3, 0.07 */
/* 5 | [1, 2, 3] | 1,2,3 -> up to max ints. */
int bl_parse_int_list(const char *v, int64_t *out, size_t max, size_t *n);
size_t bl_utf8_chars(const char *s); /* code points; SIZE_MAX if invalid UTF-8 */

/* Validates an optional string field of at most max_chars; records a field
 * error and returns false when too long. */
bool bl_check_len(json_t *reply, json_t *params, const char *name, size_t max_chars);

/* Money in replies: a JSON number, integral when whole (spec 1.4). */
json_t *bl_money(int64_t cents);
/* "150.50" */
void bl_money_text(int64_t cents, char out[32]);
/* Dates from ms since the epoch, UTC. */
void bl_date(uint64_t ms, char out[11]);
void bl_datetime(uint64_t ms, char out[20]);

/* ---- objects and indexes ------------------------------------------------ */

/* Kinds of objects, each in its own LMDB database keyed by be64 id. */
enum bl_kind {
    BL_CUSTOMER,
    BL_ACCOUNT,
    BL_DEVICE,
    BL_TARIFF,
    BL_TRANSACTION,
    BL_MESSAGE,
    BL_CHANNEL,
    BL_KIND_COUNT
};

MDB_dbi bl_dbi(const struct bl_ctx *c, enum bl_kind kind);
/* Loads an object of this client; TVMW_ENOTFOUND if absent or another
 * client's. */
int bl_obj_get(struct bl_ctx *c, enum bl_kind kind, uint64_t id, json_t **out);
int bl_obj_put(struct bl_ctx *c, enum bl_kind kind, uint64_t id, json_t *obj);
int bl_obj_del(struct bl_ctx *c, enum bl_kind kind, uint64_t id);
/* New id from the kind's counter. */
int bl_obj_new_id(struct bl_ctx *c, enum bl_kind kind, uint64_t *id);

/*
 * Unique indexes: (name, client, key) -> id, e.g. ("cust_ext", 1, "EXT-9").
 * bl_uniq_get: TVMW_ENOTFOUND if absent.
 */
int bl_uniq_get(struct bl_ctx *c, const char *name, const char *key, uint64_t *id);
int bl_uniq_put(struct bl_ctx *c, const char *name, const char *key, uint64_t id);
int bl_uniq_del(struct bl_ctx *c, const char *name, const char *key);

/*
 * Relations: (name, from) -> set of to, e.g. ("cust_acc", customer, account).
 * Values may carry a small JSON object (e.g. assignment time) or NULL.
 * bl_rel_list returns the `to` ids in ascending order.
 */
int bl_rel_put(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to, const json_t *val);
int bl_rel_del(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to);
int bl_rel_get(struct bl_ctx *c, const char *name, uint64_t from, uint64_t to, json_t **val);
int bl_rel_list(struct bl_ctx *c, const char *name, uint64_t from, uint64_t **ids, size_t *n);
/* Removes every (name, from, *). */
int bl_rel_del_all(struct bl_ctx *c, const char *name, uint64_t from);

/* Iterates every object of a kind that belongs to c->client_id, in id
 * order; stops early when fn returns non-zero (returned). */
int bl_obj_each(struct bl_ctx *c, enum bl_kind kind,
                int (*fn)(struct bl_ctx *c, uint64_t id, json_t *obj, void *arg), void *arg);

/* ---- selectors (spec 3.1): *id = 0 and *obj = NULL when not found; the
 * caller answers with its method's code. ---- */

/* Customer by customer_id, else ext_id. *id = 0 when not found. */
int bl_select_customer(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj);
/* Account by account_id, else abonement. */
int bl_select_account(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj);
/* Tariff by tariff_id, else vtariff_id (never found), else tariff_ext_id. */
int bl_select_tariff(struct bl_ctx *c, json_t *params, uint64_t *id, json_t **obj);

/* ---- method groups ------------------------------------------------------ */

int bl_customer_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_modify(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_info(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_list(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_delete(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_customer_transaction_list(struct bl_ctx *c, json_t *params, json_t *reply);

int bl_account_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_modify(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_info(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_list(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_delete(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_activate(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_deactivate(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_message_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_device_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_device_modify(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_account_device_delete(struct bl_ctx *c, json_t *params, json_t *reply);

int bl_tariff_list(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_tariff_basic_list(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_tariff_additional_list(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_tariff_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_tariff_modify(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_tariff_delete(struct bl_ctx *c, json_t *params, json_t *reply);

int bl_transaction_create(struct bl_ctx *c, json_t *params, json_t *reply);
int bl_transaction_delete(struct bl_ctx *c, json_t *params, json_t *reply);

/* ---- shared between method groups --------------------------------------- */

/* Relation names (from -> to). */
#define BL_REL_CUST_ACC "cust_acc" /* customer -> account */
#define BL_REL_CUST_TAR "cust_tar" /* customer -> tariff, {"assigned_ms"} */
#define BL_REL_ACC_TAR  "acc_tar"  /* account -> tariff, {"assigned_ms"} */
#define BL_REL_TAR_CUST "tar_cust" /* tariff -> customer (reverse of cust_tar) */
#define BL_REL_TAR_ACC  "tar_acc"  /* tariff -> account (reverse of acc_tar) */
#define BL_REL_ACC_DEV  "acc_dev"  /* account -> device */
#define BL_REL_CUST_TX  "cust_tx"  /* customer -> transaction */
#define BL_REL_ACC_MSG  "acc_msg"  /* account -> message */
#define BL_REL_TAR_CHAN "tar_chan" /* tariff -> channel */
/* Unique indexes (per client). */
#define BL_UNIQ_CUST_EXT   "cust_ext"   /* customer ext_id */
#define BL_UNIQ_ABONEMENT  "abonement"  /* account abonement */
#define BL_UNIQ_DEV_UID    "dev_uid"    /* device uid */
#define BL_UNIQ_TX_EXT     "tx_ext"     /* transaction ext_id */
#define BL_UNIQ_TARIFF_EXT "tariff_ext" /* tariff ext_id */

/* Account group: deletes an account with its devices, messages, tariff
 * links and indexes (used by customer/delete). */
int bl_account_destroy(struct bl_ctx *c, uint64_t account_id);
/* Account group: the account/info object (without error fields). */
int bl_account_json(struct bl_ctx *c, uint64_t id, json_t *acc, json_t **out);
/* Transaction group: adds a processed amount to the customer's balance. */
int bl_customer_balance_add(struct bl_ctx *c, uint64_t customer_id, int64_t cents, int count);
/* Reads on an HTTP thread (billing_common.c). */
int cp_billing_read(struct cp_fsm *f, uint64_t client_id, const struct bl_method *m, json_t *params,
                    json_t **out);
/* Password hash as stored: hex HMAC-SHA256(salt, password). */
void bl_password_hash(const char *salt, const char *password, char out[65]);

/*
 * Records (JSON objects in their kind's database; every one has "id" and
 * "client_id", set by bl_obj_put). Money is integer cents; times are ms
 * since the epoch (command time); dates are "YYYY-MM-DD" strings or "".
 *
 * customer: ext_id (string, "" unset), firstname, middlename, lastname,
 *   birthdate, passport_*, postal_address_*, billing_address_*, phone and
 *   bank fields, email, company_name, comment, contract_number, meta (the
 *   string as given), dealer_id (int or null), send_sms_messages,
 *   send_email_messages (0/1) — every text field stored as given (""
 *   when unset); balance_cents (int), payments_count (int), created_ms.
 * account: customer_id, abonement (string), password_hash, password_salt,
 *   active (0/1), status_reason (string or null), auto_activation_period,
 *   extension_date, activation_date, deactivation_date, allow_multiple_login,
 *   allow_login_by_abonement, allow_login_by_device_uid, allow_login_by_ip,
 *   parent_code (int), use_timeshift, preferred_timeshift_offset,
 *   data_center (int or null), allowed_device_groups (array of ints),
 *   subnets (string), created_ms, last_active_ms (int or null),
 *   logout_before_ms (int, 0).
 * device: account_id, system_name, device_uid, serial_number, brand_name,
 *   diagonal, is_basic (0/1), created_ms, last_seen_ms (int or null).
 * tariff: name, ext_id, period (number as given, string), price_cents,
 *   activation_price_cents, basic_tariff_priority, sessions_count,
 *   basic_sessions_count, ip_restriction, enabled, assigned_by_default,
 *   required, available_for_inactive_accounts, available_everywhere,
 *   display_in_channels_widget, used_for_channel_list, used_for_video_list,
 *   used_for_radio_list, available_to_unsubscribe (ints), created_ms.
 * transaction: customer_id, ext_id (string or null for system charges),
 *   amount_cents, processed (0/1), comment, source ("billing_api",
 *   "admin", "system"), transaction_type (int or null), video_ext_id,
 *   video_available_until, created_ms.
 * message: account_id, subject, text, urgent, delete_after_reading,
 *   created_ms.
 * channel: name, icon (URL), plus catalogue fields (admin API).
 */

#endif
