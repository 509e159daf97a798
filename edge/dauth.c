/*
 * Authkeys and stream tokens; see dauth.h.
 */
#include "edge/dauth.h"

#include <arpa/inet.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/sign.h"
#include "edge/feed.h"
#include "edge/proto.h"

#define AUTHKEY_BODY  32
#define TOKEN_BODY    36
#define TOKEN_MAC     16
#define TOKEN_VERSION 2

static const char authkey_label[] = "tvmw-authkey";
static const char token_label[] = "tvmw-stream";

static _Thread_local struct edge_keyring tl_ring;
static _Thread_local bool tl_loaded;

struct load_arg {
    struct edge_keyring *ring;
};

static int load_key(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    struct edge_keyring *ring = ((struct load_arg *)arg)->ring;
    (void)key;
    (void)key_len;
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    json_t *kid = json_object_get(o, "kid"), *secret = json_object_get(o, "secret");
    const char *state = json_string_value(json_object_get(o, "state"));
    uint8_t raw[EDGE_KEY_MAX_SECRET + 3];
    size_t len = 0;
    if (json_is_integer(kid) && json_integer_value(kid) > 0 && json_integer_value(kid) <= 65535 &&
        state != NULL && strcmp(state, "active") == 0 && json_is_string(secret) &&
        json_string_length(secret) <= (EDGE_KEY_MAX_SECRET + 2) / 3 * 4 &&
        edge_base64_decode(json_string_value(secret), json_string_length(secret), raw, &len) == 0 &&
        len >= 16 && len <= EDGE_KEY_MAX_SECRET) {
        /* Keys come in ascending kid order: keep the newest ones first. */
        unsigned n = ring->n < EDGE_KEYRING_MAX ? ring->n : EDGE_KEYRING_MAX - 1;
        memmove(&ring->k[1], &ring->k[0], n * sizeof(ring->k[0]));
        ring->k[0].kid = (uint16_t)json_integer_value(kid);
        memcpy(ring->k[0].secret, raw, len);
        ring->k[0].secret_len = (unsigned)len;
        ring->n = n + 1;
    }
    json_decref(o);
    return 0;
}

const struct edge_keyring *edge_keyring(const struct edge_read *r)
{
    struct edge_keyring *ring = &tl_ring;
    if (!tl_loaded || ring->index != r->applied_index || ring->gen != (const void *)r->gen) {
        memset(ring, 0, sizeof(*ring));
        struct load_arg a = {ring};
        if (edge_store_scan(r, EDGE_DB_KEYS, NULL, 0, NULL, 0, load_key, &a) != 0) {
            ring->n = 0;
        }
        ring->index = r->applied_index;
        ring->gen = r->gen;
        tl_loaded = true;
    }
    return ring->n > 0 ? ring : NULL;
}

static const struct edge_key *find_key(const struct edge_keyring *ring, uint16_t kid)
{
    for (unsigned i = 0; i < ring->n; i++) {
        if (ring->k[i].kid == kid) {
            return &ring->k[i];
        }
    }
    return NULL;
}

static void mac(const struct edge_key *k, const char *label, const uint8_t *body, size_t len,
                uint8_t out[TVMW_MAC_BYTES])
{
    uint8_t msg[64];
    size_t l = strlen(label) + 1;
    memcpy(msg, label, l);
    memcpy(msg + l, body, len);
    tvmw_hmac_sha256(k->secret, k->secret_len, msg, l + len, out);
}

void edge_authkey_issue(const struct edge_keyring *ring, struct edge_authkey *a,
                        char out[EDGE_AUTHKEY_LEN + 1])
{
    uint8_t raw[AUTHKEY_BODY + TVMW_MAC_BYTES] = {1, a->basic ? 1 : 0};
    const struct edge_key *k = &ring->k[0];
    a->kid = k->kid;
    tvmw_put_be16(raw + 2, a->kid);
    tvmw_put_be32(raw + 4, a->client);
    tvmw_put_be64(raw + 8, a->account);
    tvmw_put_be64(raw + 16, a->session);
    tvmw_put_be64(raw + 24, a->issued_ms);
    mac(k, authkey_label, raw, AUTHKEY_BODY, raw + AUTHKEY_BODY);
    tvmw_hex_encode(raw, sizeof(raw), out);
}

int edge_authkey_check(const struct edge_keyring *ring, const char *text, struct edge_authkey *a)
{
    uint8_t raw[AUTHKEY_BODY + TVMW_MAC_BYTES], want[TVMW_MAC_BYTES];
    if (ring == NULL || text == NULL ||
        tvmw_hex_decode(text, strlen(text), raw, sizeof(raw)) != 0 || raw[0] != 1 ||
        (raw[1] & ~1u) != 0) {
        return -1;
    }
    const struct edge_key *k = find_key(ring, tvmw_get_be16(raw + 2));
    if (k == NULL) {
        return -1;
    }
    mac(k, authkey_label, raw, AUTHKEY_BODY, want);
    if (!tvmw_mac_equal(want, raw + AUTHKEY_BODY, TVMW_MAC_BYTES)) {
        return -1;
    }
    a->basic = raw[1] & 1;
    a->kid = k->kid;
    a->client = tvmw_get_be32(raw + 4);
    a->account = tvmw_get_be64(raw + 8);
    a->session = tvmw_get_be64(raw + 16);
    a->issued_ms = tvmw_get_be64(raw + 24);
    return 0;
}

uint32_t edge_token_ip_bind(const char *ip)
{
    struct in_addr a4;
    if (ip == NULL || ip[0] == '\0') {
        return 0;
    }
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        return ntohl(a4.s_addr);
    }
    uint8_t md[TVMW_MAC_BYTES];
    tvmw_sha256(ip, strlen(ip), md); /* SHA256() allocates (sign.c) */
    return tvmw_get_be32(md);
}

static void put_be48(uint8_t *p, uint64_t v)
{
    tvmw_put_be16(p, (uint16_t)(v >> 32));
    tvmw_put_be32(p + 2, (uint32_t)v);
}

static uint64_t get_be48(const uint8_t *p)
{
    return (uint64_t)tvmw_get_be16(p) << 32 | tvmw_get_be32(p + 2);
}

int edge_token_issue(const struct edge_keyring *ring, struct edge_token *t,
                     char out[EDGE_TOKEN_LEN + 1])
{
    uint8_t raw[TOKEN_BODY + TOKEN_MAC] = {TOKEN_VERSION, t->kind}, full[TVMW_MAC_BYTES];
    const struct edge_key *k = &ring->k[0];
    if (t->account >> 48 != 0 || t->content >> 48 != 0) {
        out[0] = '\0';
        return -1;
    }
    t->kid = k->kid;
    t->version = TOKEN_VERSION;
    if (t->nonce == 0) {
        RAND_bytes((uint8_t *)&t->nonce, sizeof(t->nonce));
    }
    tvmw_put_be16(raw + 2, t->kid);
    tvmw_put_be32(raw + 4, t->client);
    put_be48(raw + 8, t->account);
    put_be48(raw + 14, t->content);
    tvmw_put_be32(raw + 20, t->issued_s);
    tvmw_put_be32(raw + 24, t->expiry_s);
    tvmw_put_be32(raw + 28, t->nonce);
    tvmw_put_be32(raw + 32, t->ip_bind);
    mac(k, token_label, raw, TOKEN_BODY, full);
    memcpy(raw + TOKEN_BODY, full, TOKEN_MAC);
    tvmw_b64url_encode(raw, sizeof(raw), out);
    return 0;
}

int edge_token_check(const struct edge_keyring *ring, const char *text, size_t len,
                     struct edge_token *t)
{
    uint8_t raw[TOKEN_BODY + TOKEN_MAC], full[TVMW_MAC_BYTES];
    if (ring == NULL || len != EDGE_TOKEN_LEN ||
        tvmw_b64url_decode(text, len, raw, sizeof(raw)) != (long)sizeof(raw) ||
        (raw[0] != 1 && raw[0] != TOKEN_VERSION) || raw[1] < EDGE_TOKEN_LIVE ||
        raw[1] > EDGE_TOKEN_VOD) {
        return -1;
    }
    const struct edge_key *k = find_key(ring, tvmw_get_be16(raw + 2));
    if (k == NULL) {
        return -1;
    }
    mac(k, token_label, raw, TOKEN_BODY, full);
    if (!tvmw_mac_equal(full, raw + TOKEN_BODY, TOKEN_MAC)) {
        return -1;
    }
    t->version = raw[0];
    t->kind = raw[1];
    t->kid = k->kid;
    t->client = tvmw_get_be32(raw + 4);
    if (raw[0] == 1) {
        t->account = tvmw_get_be64(raw + 8);
        t->content = tvmw_get_be64(raw + 16);
        t->issued_s = 0;
    } else {
        t->account = get_be48(raw + 8);
        t->content = get_be48(raw + 14);
        t->issued_s = tvmw_get_be32(raw + 20);
    }
    t->expiry_s = tvmw_get_be32(raw + 24);
    t->nonce = tvmw_get_be32(raw + 28);
    t->ip_bind = tvmw_get_be32(raw + 32);
    return 0;
}
