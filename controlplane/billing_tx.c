/*
 * Billing API transaction methods (shared/spec/billing-api.md §3.5, §5.2):
 * transaction/create, transaction/delete, customer/transaction/list, and
 * the customer balance they maintain.
 *
 * Invariant: a customer's balance_cents is the sum of amount_cents over its
 * processed transactions, and payments_count their number. Every change of
 * a processed transaction goes through bl_customer_balance_add() in the same
 * (raft-applied) transaction as the change itself.
 *
 * Idempotency (§5.2): the transaction ext_id is unique per client (index
 * BL_UNIQ_TX_EXT). A create with a known ext_id answers 1 before anything
 * is written, so a caller retrying after a timeout learns that the first
 * attempt landed and the balance moves once. After a delete the ext_id is
 * free again.
 */
#include "controlplane/billing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define TX_EXT_MAX 255 /* spec 3.5 */
/* The unique-index key "tx_ext/<client>/<ext_id>" must fit LMDB's 511-byte
 * key limit: 480 bytes of ext_id leave room for the name and a 20-digit
 * client id. (255 four-byte characters would not fit; such an ext_id is
 * refused rather than stored without its index.) */
#define TX_EXT_MAX_BYTES 480
#define TX_COMMENT_MAX   2000 /* tvmw decision: the spec gives no limit */
#define VIDEO_EXT_MAX    64   /* spec 3.5 */
#define TX_TYPE_FILM     1    /* transaction_type: purchase of a film */
#define TX_LIST_LIMIT    100  /* customer/transaction/list: default and maximum page */

/* transaction/create codes (spec 3.5). */
#define E_CREATE_DUPLICATE   1
#define E_CREATE_NO_EXT      2
#define E_CREATE_NO_VIDEO    3
#define E_CREATE_NO_FILM     4
#define E_CREATE_BAD_DATE    5
#define E_CREATE_NO_CUSTOMER 6 /* tvmw decision (unverified) */
/* transaction/delete codes. */
#define E_DELETE_NOT_FOUND 1
#define E_DELETE_NO_EXT    2
/* customer/transaction/list codes. */
#define E_LIST_NO_CUSTOMER 1

static int64_t rec_int(const json_t *rec, const char *k)
{
    return json_integer_value(json_object_get(rec, k));
}

static const char *rec_str(const json_t *rec, const char *k)
{
    const char *s = json_string_value(json_object_get(rec, k));
    return s ? s : "";
}

/* A parameter that is missing or empty. */
static bool unset(const char *v)
{
    return v == NULL || v[0] == '\0';
}

/* ---- balance ------------------------------------------------------------------ */

/* Adds cents and count to the customer's balance_cents and payments_count;
 * the new balance in *balance (if not NULL). TVMW_ETOOBIG (nothing
 * written) if the balance would overflow. */
static int balance_add(struct bl_ctx *c, uint64_t customer_id, int64_t cents, int count,
                       int64_t *balance)
{
    json_t *cust;
    int rv = bl_obj_get(c, BL_CUSTOMER, customer_id, &cust);
    if (rv != 0) {
        return rv;
    }
    int64_t bal = rec_int(cust, "balance_cents");
    int64_t n = rec_int(cust, "payments_count");
    if (__builtin_add_overflow(bal, cents, &bal)) {
        json_decref(cust);
        return TVMW_ETOOBIG;
    }
    json_object_set_new(cust, "balance_cents", json_integer(bal));
    json_object_set_new(cust, "payments_count", json_integer(n + count));
    rv = bl_obj_put(c, BL_CUSTOMER, customer_id, cust);
    json_decref(cust);
    if (rv == 0 && balance != NULL) {
        *balance = bal;
    }
    return rv;
}

int bl_customer_balance_add(struct bl_ctx *c, uint64_t customer_id, int64_t cents, int count)
{
    return balance_add(c, customer_id, cents, count, NULL);
}

/* ---- parameters --------------------------------------------------------------------- */

/* ext_id, else its alias id (spec 3.5: ext_id wins); NULL if neither. */
static const char *tx_ext_param(json_t *params)
{
    const char *v = bl_param(params, "ext_id");
    if (unset(v)) {
        v = bl_param(params, "id");
    }
    return unset(v) ? NULL : v;
}

static bool tx_ext_fits(const char *ext)
{
    size_t chars = bl_utf8_chars(ext);
    return chars != SIZE_MAX && chars <= TX_EXT_MAX && strlen(ext) <= TX_EXT_MAX_BYTES;
}

static bool text_fits(const char *v, size_t max_chars)
{
    size_t n = bl_utf8_chars(v);
    return n != SIZE_MAX && n <= max_chars;
}

/* "YYYY-MM-DD HH:MM:SS" exactly, a real date and time (spec 5.6). */
static bool datetime_valid(const char *v)
{
    char d[11];
    if (strlen(v) != 19 || bl_parse_date(v, d) != 0) {
        return false; /* bl_parse_date checks the layout of all 19 bytes */
    }
    int h = (v[11] - '0') * 10 + (v[12] - '0');
    int m = (v[14] - '0') * 10 + (v[15] - '0');
    int s = (v[17] - '0') * 10 + (v[18] - '0');
    return h <= 23 && m <= 59 && s <= 59;
}

/* The values of transaction/create after validation. */
struct tx_input {
    const char *ext;
    uint64_t customer_id;
    int64_t cents;
    int processed;
    const char *comment;
    json_t *type; /* integer or null */
    const char *video_ext_id;
    const char *video_until;
    int64_t balance; /* the customer's balance before */
};

/* Checks the parameters in the order of spec 3.5's codes (after ext_id,
 * duplicate and customer): a bad amount, flag, type or over-long text has
 * no code of its own in this method and answers -100. */
static void check_values(json_t *params, struct tx_input *in, json_t *reply)
{
    const char *v = bl_param(params, "amount");
    int64_t n;
    if (!unset(v) && bl_parse_amount(v, &in->cents) != 0) {
        bl_fail(reply, BL_EARGUMENT,
                "Invalid amount: a decimal number with at most 2 decimal places and '.' as "
                "separator is expected");
        return;
    }
    v = bl_param(params, "processed");
    if (!unset(v) && bl_parse_flag(v, &in->processed) != 0) {
        bl_fail(reply, BL_EARGUMENT, "Invalid processed: 0 or 1 is expected");
        return;
    }
    v = bl_param(params, "comment");
    if (v != NULL) {
        if (!text_fits(v, TX_COMMENT_MAX)) {
            bl_fail(reply, BL_EARGUMENT, "Invalid comment: at most %d characters", TX_COMMENT_MAX);
            return;
        }
        in->comment = v;
    }
    v = bl_param(params, "transaction_type");
    if (!unset(v)) {
        if (bl_parse_int(v, &n) != 0) {
            bl_fail(reply, BL_EARGUMENT, "Invalid transaction_type: an integer is expected");
            return;
        }
        in->type = json_integer(n);
    }
    v = bl_param(params, "video_ext_id");
    if (v != NULL) {
        if (!text_fits(v, VIDEO_EXT_MAX)) {
            bl_fail(reply, BL_EARGUMENT, "Invalid video_ext_id: at most %d characters",
                    VIDEO_EXT_MAX);
            return;
        }
        in->video_ext_id = v;
    }
    v = bl_param(params, "video_available_until");
    if (!unset(v)) {
        if (!datetime_valid(v)) {
            bl_fail(reply, E_CREATE_BAD_DATE,
                    "Invalid video_available_until: YYYY-MM-DD HH:MM:SS is expected");
            return;
        }
        in->video_until = v;
    }
    if (json_integer_value(in->type) == TX_TYPE_FILM) {
        if (in->video_ext_id[0] == '\0') {
            bl_fail(reply, E_CREATE_NO_VIDEO, "video_ext_id is required for a film purchase");
        } else {
            /* tvmw has no film catalogue yet: no video_ext_id names a film. */
            bl_fail(reply, E_CREATE_NO_FILM, "No film with this video_ext_id");
        }
    }
}

static bool failed(const json_t *reply)
{
    return json_integer_value(json_object_get(reply, "error")) != 0;
}

/* ---- transaction/create ------------------------------------------------------------ */

static int tx_store(struct bl_ctx *c, const struct tx_input *in, json_t *reply)
{
    uint64_t id;
    int64_t balance;
    json_t *rec = json_pack("{s:I, s:s, s:I, s:i, s:s, s:s, s:O, s:s, s:s, s:I}", "customer_id",
                            (json_int_t)in->customer_id, "ext_id", in->ext, "amount_cents",
                            (json_int_t)in->cents, "processed", in->processed, "comment",
                            in->comment, "source", "billing_api", "transaction_type", in->type,
                            "video_ext_id", in->video_ext_id, "video_available_until",
                            in->video_until, "created_ms", (json_int_t)c->time_ms);
    if (rec == NULL) {
        return -ENOMEM;
    }
    int rv = bl_obj_new_id(c, BL_TRANSACTION, &id);
    if (rv == 0) {
        rv = bl_obj_put(c, BL_TRANSACTION, id, rec);
    }
    json_decref(rec);
    if (rv == 0) {
        rv = bl_uniq_put(c, BL_UNIQ_TX_EXT, in->ext, id);
    }
    if (rv == 0) {
        rv = bl_rel_put(c, BL_REL_CUST_TX, in->customer_id, id, NULL);
    }
    balance = in->balance;
    if (rv == 0 && in->processed) {
        rv = balance_add(c, in->customer_id, in->cents, 1, &balance);
    }
    if (rv != 0) {
        return rv;
    }
    json_object_set_new(reply, "error", json_integer(0));
    json_object_set_new(reply, "error_message", json_string(""));
    json_object_set_new(reply, "id", json_integer((json_int_t)id));
    json_object_set_new(reply, "balance", bl_money(balance));
    return 0;
}

int bl_transaction_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    struct tx_input in = {
        .comment = "", .type = json_null(), .video_ext_id = "", .video_until = ""};
    uint64_t other;
    int64_t n;
    json_t *cust;
    int rv;

    in.ext = tx_ext_param(params);
    if (in.ext == NULL) {
        return bl_fail(reply, E_CREATE_NO_EXT, "Transaction ext_id (id) is required");
    }
    if (!tx_ext_fits(in.ext)) {
        return bl_fail(reply, BL_EARGUMENT, "Invalid ext_id: at most %d characters", TX_EXT_MAX);
    }
    /* Before anything else: a retry must answer 1 and change nothing. */
    rv = bl_uniq_get(c, BL_UNIQ_TX_EXT, in.ext, &other);
    if (rv == 0) {
        return bl_fail(reply, E_CREATE_DUPLICATE, "Transaction with this ext_id already exists");
    }
    if (rv != TVMW_ENOTFOUND) {
        return rv;
    }
    /* customer_id selects here (ext_id names the transaction); tvmw adds
     * customer_ext_id, so that a bulk import can put a new customer and
     * its opening balance into one raft entry. */
    const char *cv = bl_param(params, "customer_id");
    const char *cext = bl_param(params, "customer_ext_id");
    if (bl_absent(cv) && !bl_absent(cext)) {
        uint64_t by_ext;
        rv = bl_uniq_get(c, BL_UNIQ_CUST_EXT, cext, &by_ext);
        if (rv == TVMW_ENOTFOUND) {
            return bl_fail(reply, E_CREATE_NO_CUSTOMER, "Customer not found");
        }
        if (rv != 0) {
            return rv;
        }
        n = (int64_t)by_ext;
    } else if (bl_absent(cv) || bl_parse_int(cv, &n) != 0 || n <= 0) {
        return bl_fail(reply, E_CREATE_NO_CUSTOMER, "Customer not found");
    }
    rv = bl_obj_get(c, BL_CUSTOMER, (uint64_t)n, &cust);
    if (rv == TVMW_ENOTFOUND) {
        return bl_fail(reply, E_CREATE_NO_CUSTOMER, "Customer not found");
    }
    if (rv != 0) {
        return rv;
    }
    in.balance = rec_int(cust, "balance_cents");
    json_decref(cust);
    in.customer_id = (uint64_t)n;
    check_values(params, &in, reply);
    int64_t after;
    if (!failed(reply) && in.processed && __builtin_add_overflow(in.balance, in.cents, &after)) {
        bl_fail(reply, BL_EARGUMENT, "Invalid amount: the balance would overflow");
    }
    if (!failed(reply)) {
        rv = tx_store(c, &in, reply);
    }
    json_decref(in.type);
    return rv;
}

/* ---- transaction/delete ----------------------------------------------------------- */

int bl_transaction_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    const char *ext = tx_ext_param(params);
    uint64_t id;
    json_t *tx;
    int64_t n;
    if (ext == NULL) {
        return bl_fail(reply, E_DELETE_NO_EXT, "Transaction ext_id (id) is required");
    }
    int rv = bl_uniq_get(c, BL_UNIQ_TX_EXT, ext, &id);
    if (rv == 0) {
        rv = bl_obj_get(c, BL_TRANSACTION, id, &tx);
    }
    if (rv == TVMW_ENOTFOUND) {
        return bl_fail(reply, E_DELETE_NOT_FOUND, "Transaction not found");
    }
    if (rv != 0) {
        return rv;
    }
    uint64_t owner = (uint64_t)rec_int(tx, "customer_id");
    int processed = (int)rec_int(tx, "processed");
    int64_t cents = rec_int(tx, "amount_cents");
    json_decref(tx);
    /* customer_id, when given, must be the transaction's own customer. */
    const char *cv = bl_param(params, "customer_id");
    if (!bl_absent(cv) && (bl_parse_int(cv, &n) != 0 || n <= 0 || (uint64_t)n != owner)) {
        return bl_fail(reply, E_DELETE_NOT_FOUND, "Transaction not found for this customer");
    }
    if (processed && owner != 0) {
        rv = balance_add(c, owner, -cents, -1, NULL);
        if (rv == TVMW_ETOOBIG) {
            return bl_fail(reply, BL_EARGUMENT, "The balance would overflow");
        }
        if (rv != 0 && rv != TVMW_ENOTFOUND) { /* a deleted customer has no balance */
            return rv;
        }
    }
    if ((rv = bl_uniq_del(c, BL_UNIQ_TX_EXT, ext)) != 0) {
        return rv;
    }
    rv = owner != 0 ? bl_rel_del(c, BL_REL_CUST_TX, owner, id) : 0;
    if (rv != 0 && rv != TVMW_ENOTFOUND) { /* detached by customer/delete */
        return rv;
    }
    return bl_obj_del(c, BL_TRANSACTION, id);
}

/* ---- customer/transaction/list ---------------------------------------------------- */

/* limit: 0–100, default 100, larger values clamped; page ≥ 1, default 1. */
static bool page_params(json_t *params, json_t *reply, int64_t *limit, int64_t *page)
{
    const char *lv = bl_param(params, "limit"), *pv = bl_param(params, "page");
    *limit = TX_LIST_LIMIT;
    *page = 1;
    if (!unset(lv) && (bl_parse_int(lv, limit) != 0 || *limit < 0)) {
        bl_fail(reply, BL_EARGUMENT, "Invalid limit: an integer 0-100 is expected");
        return false;
    }
    if (!unset(pv) && (bl_parse_int(pv, page) != 0 || *page < 1)) {
        bl_fail(reply, BL_EARGUMENT, "Invalid page: an integer >= 1 is expected");
        return false;
    }
    if (*limit > TX_LIST_LIMIT) {
        *limit = TX_LIST_LIMIT;
    }
    return true;
}

static json_t *payment_json(const json_t *tx)
{
    char amount[32], when[20];
    bl_money_text(rec_int(tx, "amount_cents"), amount);
    bl_datetime((uint64_t)rec_int(tx, "created_ms"), when);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "transaction_id", rec_str(tx, "ext_id"),
                     "amount", amount, "source", rec_str(tx, "source"), "datetime", when, "comment",
                     rec_str(tx, "comment"), "processed", (int)rec_int(tx, "processed"));
}

int bl_customer_transaction_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    uint64_t cid, *ids;
    size_t n;
    json_t *cust;
    int64_t limit, page;
    int rv = bl_select_customer(c, params, &cid, &cust);
    if (rv != 0) {
        return rv;
    }
    if (cid == 0) {
        return bl_fail(reply, E_LIST_NO_CUSTOMER, "Customer not found");
    }
    json_decref(cust);
    if (!page_params(params, reply, &limit, &page)) {
        return 0;
    }
    if ((rv = bl_rel_list(c, BL_REL_CUST_TX, cid, &ids, &n)) != 0) {
        return rv;
    }
    /* Newest first: ids come from one counter in apply order, so the
     * highest id is the latest transaction. */
    json_t *out = json_array();
    size_t skip = 0, end = 0;
    if (limit > 0 && (uint64_t)(page - 1) < n / (uint64_t)limit + 1) {
        skip = (size_t)(page - 1) * (size_t)limit;
        end = skip + (size_t)limit < n ? skip + (size_t)limit : n;
    }
    for (size_t i = skip; i < end; i++) {
        json_t *tx;
        rv = bl_obj_get(c, BL_TRANSACTION, ids[n - 1 - i], &tx);
        if (rv == TVMW_ENOTFOUND) {
            rv = 0;
            continue;
        }
        if (rv != 0) {
            break;
        }
        json_array_append_new(out, payment_json(tx));
        json_decref(tx);
    }
    free(ids);
    if (rv != 0) {
        json_decref(out);
        return rv;
    }
    json_object_set_new(reply, "payments", out);
    return 0;
}
