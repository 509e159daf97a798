/*
 * Raft command envelope (docs/internals.md, "Command encoding").
 *
 * Every write is one raft entry holding one command:
 *
 *   off len field
 *    0   4  magic "TVC1" (0x31435654 little-endian)
 *    4   2  version (CP_CMD_VERSION)
 *    6   2  type (enum cp_cmd_type)
 *    8   4  payload length in bytes (the real length; see padding)
 *   12   4  flags, 0
 *   16  16  request id: the same id means the same request (dedup)
 *   32   8  proposer's wall clock, milliseconds since the epoch
 *   40   n  payload: a JSON object (UTF-8), meaning set by the type
 *  40+n  p  zero padding so that the entry length is a multiple of 8
 *
 * The padding exists because libraft 0.15 silently corrupts its log for
 * entries whose length is not a multiple of 8 (shared/notes/libraft.md).
 * Apply takes time only from the command, never from the applying node.
 */
#ifndef TVMW_CONTROLPLANE_CMD_H
#define TVMW_CONTROLPLANE_CMD_H

#include <stddef.h>
#include <stdint.h>

#define CP_CMD_MAGIC       0x31435654u
#define CP_CMD_VERSION     1
#define CP_CMD_HEADER_SIZE 40
#define CP_CMD_MAX_BYTES   (8u << 20) /* one raft entry; bigger writes are split by callers */
#define CP_REQID_SIZE      16

enum cp_cmd_type {
    CP_CMD_NOOP = 0,
    CP_CMD_CLIENT_CREATE = 1,
    CP_CMD_CLIENT_UPDATE = 2,
    CP_CMD_CLIENT_DELETE = 3,
    CP_CMD_MEMBER_PUT = 4,
    CP_CMD_MEMBER_DELETE = 5,
    CP_CMD_BILLING = 6,       /* a Billing API write: {client_id, method, params, source} */
    CP_CMD_CATALOG = 7,       /* catalogue put/delete/link: {client_id, kind, op, id, fields|ids} */
    CP_CMD_BILLING_RUN = 8,   /* built-in billing batch: {run_ms, unit_ms, after, limit} */
    CP_CMD_BILLING_BATCH = 9, /* bulk import: {client_id, source, items: [{method, params}]} */
    CP_CMD_KEY = 10,          /* token signing keys: {op: "add"|"retire", kid?, secret?} */
    CP_CMD_DEVICE = 11,       /* edge device writes: {writes: [W, ...]} (docs/edge-protocol.md) */
    CP_CMD_EPG = 12,          /* EPG sources and programmes: {op, ...} (controlplane/epg.h) */
    CP_CMD_TYPE_COUNT
};

struct cp_cmd {
    uint16_t version;
    uint16_t type;
    uint8_t reqid[CP_REQID_SIZE];
    uint64_t time_ms;
    const char *payload; /* borrowed */
    size_t payload_len;
};

/* Encoded size of a command with this payload, padding included. */
size_t cp_cmd_encoded_size(size_t payload_len);
/* Writes the command into out (cp_cmd_encoded_size() bytes). */
int cp_cmd_encode(const struct cp_cmd *cmd, uint8_t *out, size_t out_len);
/* Parses an entry; out->payload points into buf. TVMW_EMALFORMED on any
 * inconsistency (magic, version, lengths, non-zero padding). */
int cp_cmd_decode(const void *buf, size_t len, struct cp_cmd *out);

/* A request id from an Idempotency-Key (SHA-256 of it, truncated) or, with
 * key NULL, 16 random bytes. */
int cp_reqid_make(const char *key, uint8_t out[CP_REQID_SIZE]);
void cp_reqid_hex(const uint8_t id[CP_REQID_SIZE], char out[2 * CP_REQID_SIZE + 1]);
int cp_reqid_parse_hex(const char *hex, uint8_t out[CP_REQID_SIZE]);

#endif
