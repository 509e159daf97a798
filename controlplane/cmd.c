#include "controlplane/cmd.h"

#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/err.h"

size_t cp_cmd_encoded_size(size_t payload_len)
{
    return (CP_CMD_HEADER_SIZE + payload_len + 7) & ~(size_t)7;
}

int cp_cmd_encode(const struct cp_cmd *cmd, uint8_t *out, size_t out_len)
{
    size_t need = cp_cmd_encoded_size(cmd->payload_len);
    if (cmd->payload_len > CP_CMD_MAX_BYTES - CP_CMD_HEADER_SIZE - 8 || out_len < need) {
        return TVMW_ETOOBIG;
    }
    memset(out, 0, need);
    tvmw_put_u32(out, CP_CMD_MAGIC);
    tvmw_put_u16(out + 4, CP_CMD_VERSION);
    tvmw_put_u16(out + 6, cmd->type);
    tvmw_put_u32(out + 8, (uint32_t)cmd->payload_len);
    memcpy(out + 16, cmd->reqid, CP_REQID_SIZE);
    tvmw_put_u64(out + 32, cmd->time_ms);
    if (cmd->payload_len > 0) {
        memcpy(out + CP_CMD_HEADER_SIZE, cmd->payload, cmd->payload_len);
    }
    return 0;
}

int cp_cmd_decode(const void *buf, size_t len, struct cp_cmd *out)
{
    const uint8_t *p = buf;
    if (len < CP_CMD_HEADER_SIZE || len % 8 != 0 || tvmw_get_u32(p) != CP_CMD_MAGIC) {
        return TVMW_EMALFORMED;
    }
    uint16_t version = tvmw_get_u16(p + 4);
    uint32_t plen = tvmw_get_u32(p + 8);
    if (version == 0 || version > CP_CMD_VERSION || tvmw_get_u32(p + 12) != 0 ||
        plen > len - CP_CMD_HEADER_SIZE || cp_cmd_encoded_size(plen) != len) {
        return TVMW_EMALFORMED;
    }
    for (size_t i = CP_CMD_HEADER_SIZE + plen; i < len; i++) {
        if (p[i] != 0) {
            return TVMW_EMALFORMED;
        }
    }
    out->version = version;
    out->type = tvmw_get_u16(p + 6);
    memcpy(out->reqid, p + 16, CP_REQID_SIZE);
    out->time_ms = tvmw_get_u64(p + 32);
    out->payload = (const char *)p + CP_CMD_HEADER_SIZE;
    out->payload_len = plen;
    return 0;
}

int cp_reqid_make(const char *key, uint8_t out[CP_REQID_SIZE])
{
    if (key != NULL) {
        uint8_t md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)key, strlen(key), md);
        memcpy(out, md, CP_REQID_SIZE);
        return 0;
    }
    return RAND_bytes(out, CP_REQID_SIZE) == 1 ? 0 : TVMW_EIO;
}

void cp_reqid_hex(const uint8_t id[CP_REQID_SIZE], char out[2 * CP_REQID_SIZE + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < CP_REQID_SIZE; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * CP_REQID_SIZE] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

int cp_reqid_parse_hex(const char *hex, uint8_t out[CP_REQID_SIZE])
{
    if (strlen(hex) != 2 * CP_REQID_SIZE) {
        return TVMW_EMALFORMED;
    }
    for (int i = 0; i < CP_REQID_SIZE; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return TVMW_EMALFORMED;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
