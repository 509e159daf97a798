/*
 * Built-in billing (Smarty's check_accounts): for clients whose settings
 * say "billing_mode": "builtin", every account on a tariff with a price and
 * a period is charged once per period from its customer's balance; an
 * account whose customer cannot pay is deactivated with status_reason
 * "DEBT", and reactivated by the first run after a top-up covers the
 * charge.
 *
 * The leader proposes CP_CMD_BILLING_RUN commands (scheduler.c), each
 * covering a batch of accounts, with the run's time and the period unit
 * stamped in the payload, so every node computes the same charges. A
 * charge is keyed by (account, tariff, period number) in the "charge"
 * unique index: leader changes, retried batches and restarts never charge
 * a period twice.
 *
 * Period k of an account on a tariff covers
 *   [created + k * len, created + (k + 1) * len),  len = period * unit,
 * and is charged at the first run inside it, or, if no run happened in
 * it, by the next run (see charge()).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/billing.h"

struct run {
    uint64_t run_ms, unit_ms;
    uint64_t charged, deactivated, reactivated;
};

static bool builtin_client(struct cp_apply *a, uint64_t client, uint64_t *cached_id, bool *cached)
{
    if (client == *cached_id) {
        return *cached;
    }
    json_t *c;
    bool yes = false;
    if (cp_record_get(a->txn, a->db->clients, client, &c) == 0) {
        const char *mode =
            json_string_value(json_object_get(json_object_get(c, "settings"), "billing_mode"));
        yes = mode != NULL && strcmp(mode, "builtin") == 0;
        json_decref(c);
    }
    *cached_id = client;
    *cached = yes;
    return yes;
}

/* Writes the charge of period k: a ledger transaction keyed by (account,
 * tariff, k) in the "charge" index. */
static int charge_period(struct bl_ctx *c, struct run *r, uint64_t acc_id, uint64_t cust_id,
                         uint64_t tar_id, const char *name, int64_t price, uint64_t k,
                         const char *key, json_t *cust)
{
    uint64_t tx_id;
    char comment[320];
    snprintf(comment, sizeof(comment), "Charge for tariff \"%s\", period %" PRIu64, name, k);
    json_t *tx =
        json_pack("{s:I, s:n, s:I, s:i, s:s, s:s, s:n, s:s, s:s, s:I, s:I, s:I}", "customer_id",
                  (json_int_t)cust_id, "ext_id", "amount_cents", (json_int_t)-price, "processed", 1,
                  "comment", comment, "source", "system", "transaction_type", "video_ext_id", "",
                  "video_available_until", "", "created_ms", (json_int_t)r->run_ms, "account_id",
                  (json_int_t)acc_id, "tariff_id", (json_int_t)tar_id);
    if (tx == NULL) {
        return -ENOMEM;
    }
    int rv;
    if ((rv = bl_obj_new_id(c, BL_TRANSACTION, &tx_id)) != 0 ||
        (rv = bl_obj_put(c, BL_TRANSACTION, tx_id, tx)) != 0 ||
        (rv = bl_uniq_put(c, "charge", key, tx_id)) != 0 ||
        (rv = bl_rel_put(c, BL_REL_CUST_TX, cust_id, tx_id, NULL)) != 0 ||
        (rv = bl_customer_balance_add(c, cust_id, -price, 1)) != 0) {
        json_decref(tx);
        return rv;
    }
    json_decref(tx);
    json_object_set_new(
        cust, "balance_cents",
        json_integer(json_integer_value(json_object_get(cust, "balance_cents")) - price));
    r->charged++;
    return 0;
}

/* When the tariff was given to the account (directly or through its
 * customer): periods before it are never charged. */
static uint64_t assigned_ms(struct bl_ctx *c, uint64_t acc_id, uint64_t cust_id, uint64_t tar_id)
{
    json_t *v = NULL;
    if (bl_rel_get(c, BL_REL_ACC_TAR, acc_id, tar_id, &v) != 0 &&
        bl_rel_get(c, BL_REL_CUST_TAR, cust_id, tar_id, &v) != 0) {
        return 0;
    }
    uint64_t ms = (uint64_t)json_integer_value(json_object_get(v, "assigned_ms"));
    json_decref(v);
    return ms;
}

/* Charges every period of one tariff that is due and unpaid, oldest first
 * — a run that did not happen (no leader for longer than a period) is
 * caught up by the next one; *short_of_money when the balance ran out.
 * Periods that passed while the account was blocked for debt are not
 * charged: it could not watch then. "charge_next/<acc>:<tariff>" remembers
 * the first period not known to be paid, so a run looks at new periods
 * only. */
static int charge(struct bl_ctx *c, struct run *r, uint64_t acc_id, json_t *acc, uint64_t tar_id,
                  json_t *cust, bool *short_of_money)
{
    json_t *t;
    int rv = bl_obj_get(c, BL_TARIFF, tar_id, &t);
    if (rv != 0) {
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    int64_t price = json_integer_value(json_object_get(t, "price_cents"));
    const char *ptext = json_string_value(json_object_get(t, "period"));
    double period = ptext ? strtod(ptext, NULL) : json_number_value(json_object_get(t, "period"));
    uint64_t created = (uint64_t)json_integer_value(json_object_get(acc, "created_ms"));
    uint64_t len = (uint64_t)(period * (double)r->unit_ms);
    uint64_t cust_id = (uint64_t)json_integer_value(json_object_get(acc, "customer_id"));
    char name[256];
    snprintf(name, sizeof(name), "%s", json_string_value(json_object_get(t, "name")) ?: "");
    json_decref(t);
    if (price <= 0 || len == 0 || r->run_ms < created) {
        return 0;
    }
    uint64_t now_k = (r->run_ms - created) / len, from = 0, next;
    uint64_t since = assigned_ms(c, acc_id, cust_id, tar_id);
    if (since > created) {
        from = (since - created) / len;
    }
    char cursor[48], key[96];
    snprintf(cursor, sizeof(cursor), "%" PRIu64 ":%" PRIu64, acc_id, tar_id);
    rv = bl_uniq_get(c, "charge_next", cursor, &next);
    if (rv == 0 && next > from) {
        from = next;
    } else if (rv != 0 && rv != TVMW_ENOTFOUND) {
        return rv;
    }
    const char *reason = json_string_value(json_object_get(acc, "status_reason"));
    if (!json_integer_value(json_object_get(acc, "active")) && reason != NULL &&
        strcmp(reason, "DEBT") == 0 && from < now_k) {
        from = now_k; /* blocked for debt: only the period it may watch now */
    }
    uint64_t k = from;
    for (; k <= now_k; k++) {
        uint64_t existing;
        snprintf(key, sizeof(key), "%s:%" PRIu64, cursor, k);
        rv = bl_uniq_get(c, "charge", key, &existing);
        if (rv == 0) {
            continue; /* paid */
        }
        if (rv != TVMW_ENOTFOUND) {
            return rv;
        }
        if (json_integer_value(json_object_get(cust, "balance_cents")) < price) {
            *short_of_money = true;
            break;
        }
        if ((rv = charge_period(c, r, acc_id, cust_id, tar_id, name, price, k, key, cust)) != 0) {
            return rv;
        }
    }
    return k == from ? 0 : bl_uniq_put(c, "charge_next", cursor, k);
}

static int merge_ids(struct bl_ctx *c, uint64_t acc_id, uint64_t cust_id, uint64_t **ids, size_t *n)
{
    uint64_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int rv = bl_rel_list(c, BL_REL_ACC_TAR, acc_id, &a, &na);
    if (rv == 0) {
        rv = bl_rel_list(c, BL_REL_CUST_TAR, cust_id, &b, &nb);
    }
    if (rv != 0) {
        free(a);
        return rv;
    }
    uint64_t *all = realloc(a, (na + nb + 1) * sizeof(*all));
    if (all == NULL) {
        free(a);
        free(b);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nb; i++) {
        bool dup = false;
        for (size_t j = 0; j < na && !dup; j++) {
            dup = all[j] == b[i];
        }
        if (!dup) {
            all[na++] = b[i];
        }
    }
    free(b);
    *ids = all;
    *n = na;
    return 0;
}

static int run_account(struct bl_ctx *c, struct run *r, uint64_t acc_id, json_t *acc)
{
    uint64_t cust_id = (uint64_t)json_integer_value(json_object_get(acc, "customer_id"));
    json_t *cust;
    int rv = bl_obj_get(c, BL_CUSTOMER, cust_id, &cust);
    if (rv != 0) {
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    uint64_t *tariffs;
    size_t n;
    bool short_of_money = false;
    if ((rv = merge_ids(c, acc_id, cust_id, &tariffs, &n)) != 0) {
        json_decref(cust);
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = charge(c, r, acc_id, acc, tariffs[i], cust, &short_of_money);
    }
    free(tariffs);
    json_decref(cust);
    if (rv != 0) {
        return rv;
    }
    const char *reason = json_string_value(json_object_get(acc, "status_reason"));
    int active = (int)json_integer_value(json_object_get(acc, "active"));
    if (short_of_money && active) {
        json_object_set_new(acc, "active", json_integer(0));
        json_object_set_new(acc, "status_reason", json_string("DEBT"));
        json_object_set_new(acc, "logout_before_ms", json_integer((json_int_t)r->run_ms));
        r->deactivated++;
        return bl_obj_put(c, BL_ACCOUNT, acc_id, acc);
    }
    if (!short_of_money && !active && reason != NULL && strcmp(reason, "DEBT") == 0) {
        json_object_set_new(acc, "active", json_integer(1));
        json_object_set_new(acc, "status_reason", json_string("ACTIVE"));
        r->reactivated++;
        return bl_obj_put(c, BL_ACCOUNT, acc_id, acc);
    }
    return 0;
}

int cp_billing_run_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    struct run r = {
        .run_ms = (uint64_t)json_integer_value(json_object_get(payload, "run_ms")),
        .unit_ms = (uint64_t)json_integer_value(json_object_get(payload, "unit_ms")),
    };
    uint64_t after = (uint64_t)json_integer_value(json_object_get(payload, "after"));
    json_int_t limit = json_integer_value(json_object_get(payload, "limit"));
    if (r.run_ms == 0 || r.unit_ms == 0 || limit <= 0) {
        *res = cp_result_error(400, "bad_request", "malformed billing run");
        return 0;
    }
    MDB_cursor *cur;
    if (mdb_cursor_open(a->txn, a->db->accounts, &cur) != 0) {
        return TVMW_ESTORE;
    }
    uint8_t kb[8];
    tvmw_put_be64(kb, after + 1);
    MDB_val k = {.mv_size = 8, .mv_data = kb}, v;
    uint64_t last = 0, cached_client = 0;
    bool cached = false;
    int rv = 0, rc;
    json_int_t seen = 0;
    /* Collect the batch first: run_account writes to the same database. */
    uint64_t *ids = calloc((size_t)limit, sizeof(*ids));
    if (ids == NULL) {
        mdb_cursor_close(cur);
        return -ENOMEM;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && seen < limit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ids[seen++] = tvmw_get_be64(k.mv_data);
    }
    mdb_cursor_close(cur);
    for (json_int_t i = 0; i < seen && rv == 0; i++) {
        json_t *acc;
        last = ids[i];
        rv = cp_record_get(a->txn, a->db->accounts, ids[i], &acc);
        if (rv != 0) {
            break;
        }
        uint64_t client = (uint64_t)json_integer_value(json_object_get(acc, "client_id"));
        if (builtin_client(a, client, &cached_client, &cached)) {
            /* Each account in a nested transaction: an account that cannot
             * be billed (a balance that would overflow) is skipped whole. */
            MDB_txn *child;
            if (mdb_txn_begin(mdb_txn_env(a->txn), a->txn, 0, &child) != 0) {
                json_decref(acc);
                rv = TVMW_ESTORE;
                break;
            }
            struct bl_ctx c = {.txn = child,
                               .db = a->db,
                               .client_id = client,
                               .time_ms = r.run_ms,
                               .index = a->index,
                               .write = true};
            struct run before = r;
            rv = run_account(&c, &r, ids[i], acc);
            if (rv == TVMW_ETOOBIG) {
                mdb_txn_abort(child);
                r = before;
                rv = 0;
            } else if (rv != 0) {
                mdb_txn_abort(child);
            } else if (mdb_txn_commit(child) != 0) {
                rv = TVMW_ESTORE;
            }
        }
        json_decref(acc);
    }
    free(ids);
    if (rv != 0) {
        return rv;
    }
    *res = cp_result_json(
        200, json_pack("{s:I, s:I, s:I, s:I}", "next", (json_int_t)(seen < limit ? 0 : last),
                       "charged", (json_int_t)r.charged, "deactivated", (json_int_t)r.deactivated,
                       "reactivated", (json_int_t)r.reactivated));
    return 0;
}
