/* STUB: being written. */
#include "controlplane/billing.h"

int bl_transaction_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_transaction_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_transaction_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_balance_add(struct bl_ctx *c, uint64_t customer_id, int64_t cents, int count)
{
    (void)c;
    (void)customer_id;
    (void)cents;
    (void)count;
    return 0;
}
