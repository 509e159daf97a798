/* STUB: being written. */
#include "controlplane/billing.h"

int bl_tariff_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_tariff_basic_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_tariff_additional_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_tariff_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_tariff_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_tariff_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}
