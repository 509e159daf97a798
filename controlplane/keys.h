/*
 * Token signing keys (docs/edge-protocol.md, database 13; docs/admin-api.md,
 * "Keys"): the cluster-wide HMAC-SHA256 keys with which edges sign and
 * check authkeys and stream tokens.
 *
 * A key is {kid, secret, state, created_ms, retired_ms}. The signing key
 * is the active key with the highest kid; every active key validates, so
 * a rotation (a new active key) never invalidates a token another edge
 * just issued; retiring a key makes its tokens invalid everywhere as fast
 * as the change feed. The last active key cannot be retired: edges would
 * then have nothing to sign with.
 *
 * Secrets are 32 random bytes drawn by the proposing node (never during
 * apply, which must be deterministic) and travel base64 in the command.
 * They are never shown by the admin API; only edges receive them, through
 * the projection.
 *
 * The keeper: a thread on every node that, when the node is a ready
 * leader and the state holds no key, proposes a first one, so that a new
 * cluster can sign from its first minutes without an operator step. The
 * command only adds a key if there is still none when it applies, so two
 * leaders racing (or a retry) still make exactly one.
 */
#ifndef TVMW_CONTROLPLANE_KEYS_H
#define TVMW_CONTROLPLANE_KEYS_H

#include <jansson.h>

#include "common/config.h"
#include "controlplane/fsm.h"
#include "controlplane/node.h"

#define CP_KEY_SECRET_BYTES 32
#define CP_KEY_SECRET_B64   44 /* base64 (standard, padded) of the secret */

/*
 * CP_CMD_KEY payloads:
 *   {"op": "add",    "secret": B64}   a new active key (rotate): 200 {"key"}
 *   {"op": "init",   "secret": B64}   the same, only while there is no key
 *                                     at all: 200 {"key"} or {"key": null}
 *   {"op": "retire", "kid": N}        200 {"key"}; 404 unknown kid; 409
 *                                     when it is the last active key
 * "key" is shown without its secret. Retiring a retired key succeeds.
 */
int cp_keys_apply(struct cp_apply *a, json_t *payload, struct cp_result **res);

/* Any thread: every key, without secrets, in kid order, as a JSON array. */
int cp_keys_list(struct cp_fsm *f, json_t **out);

/* A fresh random secret for a proposal, base64 (NUL-terminated). */
int cp_keys_new_secret(char out[CP_KEY_SECRET_B64 + 1]);

struct cp_keys_keeper;

/* Starts the keeper thread (see above); stop it before the node is freed. */
int cp_keys_keeper_start(const struct tvmw_config *conf, struct cp_node *node,
                         struct cp_keys_keeper **out);
/* Stops and frees the keeper; NULL is a no-op. */
void cp_keys_keeper_stop(struct cp_keys_keeper *k);

#endif
