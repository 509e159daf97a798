/*
 * Signing primitives; see sign.h.
 */
/* OpenSSL 3's one-shot HMAC() and SHA256() fetch an implementation and
 * allocate contexts on every call (13 and 3 mallocs, and the fetch takes
 * a lock shared by all threads). The low-level SHA-256 API works on a
 * caller's context with neither, which is what the token hot path needs;
 * it is deprecated, not removed, in 3.x. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "common/sign.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

#define SHA256_BLOCK 64

void tvmw_sha256(const void *data, size_t len, uint8_t out[TVMW_MAC_BYTES])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

/* RFC 2104 over SHA-256. */
void tvmw_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                      uint8_t out[TVMW_MAC_BYTES])
{
    uint8_t k[SHA256_BLOCK] = {0}, pad[SHA256_BLOCK], inner[TVMW_MAC_BYTES];
    SHA256_CTX c;
    if (key_len > SHA256_BLOCK) {
        tvmw_sha256(key, key_len, k);
    } else if (key_len > 0) {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < SHA256_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    SHA256_Update(&c, data, len);
    SHA256_Final(inner, &c);
    for (int i = 0; i < SHA256_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    SHA256_Init(&c);
    SHA256_Update(&c, pad, sizeof(pad));
    SHA256_Update(&c, inner, sizeof(inner));
    SHA256_Final(out, &c);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
}

bool tvmw_mac_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void tvmw_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int tvmw_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t n)
{
    if (in_len != 2 * n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tvmw_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* 1 + the value of each character of the base64url alphabet, 0 for every
 * other byte: a token is decoded on every stream-token check, a lookup
 * per character. */
static const uint8_t b64url_values[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,
    ['I'] = 9,  ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64};

static int b64url_value(char c)
{
    return (int)b64url_values[(uint8_t)c] - 1;
}

long tvmw_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t cap)
{
    if (in_len % 4 == 1) {
        return -1;
    }
    size_t need = in_len / 4 * 3 + (in_len % 4 ? in_len % 4 - 1 : 0);
    if (need > cap) {
        return -1;
    }
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < in_len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero, so that one token has one spelling. */
    if ((acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    return (long)o;
}

void tvmw_password_hash(const char *salt, const char *password, char out[65])
{
    uint8_t md[TVMW_MAC_BYTES];
    tvmw_hmac_sha256((const uint8_t *)salt, strlen(salt), password, strlen(password), md);
    tvmw_hex_encode(md, sizeof(md), out);
}
