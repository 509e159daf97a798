/*
 * Device writes: what edges report back to the control plane about
 * devices (docs/edge-protocol.md, "Device writes"): sessions opened and
 * closed, logouts, last-seen times, user settings, messages read or
 * deleted, devices removed, self-registration.
 *
 * An edge sends a batch of writes to POST /edge/v1/device-writes; the
 * batch becomes one CP_CMD_DEVICE command, {"writes": [W, ...]}, and each
 * W is applied in its own nested transaction with its own result, so one
 * bad write never takes the others with it. Edges journal their writes and
 * may send one again after a failure or a restart, so every op is
 * idempotent by construction (puts of the same values, max() of times,
 * deletes of what is gone), and the ops that create objects
 * (session_open with register_device, account_register) keep their result
 * under the write's reqid and answer a replay with it.
 *
 * Ownership: every write names its client; an account, device, message or
 * channel of another client is "not found" (error 1), like billing.h's
 * bl_obj_get.
 *
 * Per-write error codes (R = {"error": N, "message": ".."}):
 *   1   account, device, message or channel not found; for
 *       account_register, the customer or account could not be created
 *   2   account_register: registration is disabled for the client
 *   3   the device given to register is invalid (type, uid, fields)
 *   6   the device uid is bound to another account (or, for
 *       account_register, to any account)
 *   7   account_register: neither device_uid nor mobile_phone_number
 *   100 malformed write (unknown op, missing or bad field)
 */
#ifndef TVMW_CONTROLPLANE_DEVICE_WRITES_H
#define TVMW_CONTROLPLANE_DEVICE_WRITES_H

#include <stdint.h>

#include <jansson.h>

#include "controlplane/billing.h"
#include "controlplane/fsm.h"

#define CP_DEVICE_WRITES_MAX 1000 /* writes in one request / command */

#define DW_ENOTFOUND     1
#define DW_EREG_FAILED   1 /* account_register: the customer or account was refused */
#define DW_EREG_DISABLED 2
#define DW_EDEVICE       3
#define DW_EDEVICE_TAKEN 6
#define DW_EREG_NEED_ID  7
#define DW_EMALFORMED    100

/* Applies a CP_CMD_DEVICE command: 200 {"results": [R, ...]} in the order
 * of the writes; 400 when the payload is not {"writes": [objects]} of at
 * most CP_DEVICE_WRITES_MAX. Returns 0 or a store error. */
int cp_device_writes_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);

/* Checks the envelope of a request body (HTTP layer): NULL when it is
 * {"writes": [objects, ...]} with 1..CP_DEVICE_WRITES_MAX writes, else why
 * not. The writes themselves are checked when applied. */
const char *cp_device_writes_check(const json_t *body);

/* Deletes the device-side records of an account (its sessions and
 * settings) inside a write method: used when the account is deleted. */
int cp_device_account_forget(struct bl_ctx *c, uint64_t account_id);

#endif
