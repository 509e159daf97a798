/* STUB: being written. */
#include "controlplane/billing.h"

int bl_customer_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_info(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_customer_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}
