/* STUB: being written. */
#include "controlplane/billing.h"

int bl_account_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_info(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_list(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_activate(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_deactivate(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_tariff_assign(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_tariff_remove(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_message_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_device_create(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_device_modify(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_device_delete(struct bl_ctx *c, json_t *params, json_t *reply)
{
    (void)c;
    (void)params;
    return bl_fail(reply, BL_EINTERNAL, "Not implemented");
}

int bl_account_destroy(struct bl_ctx *c, uint64_t account_id)
{
    (void)c;
    (void)account_id;
    return 0;
}

int bl_account_json(struct bl_ctx *c, uint64_t id, json_t *acc, json_t **out)
{
    (void)c;
    (void)id;
    *out = json_deep_copy(acc);
    return 0;
}
