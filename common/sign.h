/*
 * Signing primitives shared by everything that signs or checks a
 * self-contained credential (device authkeys, stream tokens): HMAC-SHA256
 * (OpenSSL), constant-time comparison, and hex / base64url codecs that
 * write into caller buffers and never allocate, so they can sit on the
 * token hot path.
 */
#ifndef TVMW_COMMON_SIGN_H
#define TVMW_COMMON_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TVMW_MAC_BYTES 32

/* out = SHA-256(data). Neither allocates nor takes a lock. */
void tvmw_sha256(const void *data, size_t len, uint8_t out[TVMW_MAC_BYTES]);
/* out = HMAC-SHA256(key, data). Neither allocates nor takes a lock. */
void tvmw_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                      uint8_t out[TVMW_MAC_BYTES]);
/* Constant-time equality of two n-byte strings. */
bool tvmw_mac_equal(const void *a, const void *b, size_t n);

/* Lowercase hex of in[0..n): writes 2n chars and a NUL. */
void tvmw_hex_encode(const uint8_t *in, size_t n, char *out);
/* Exactly 2n hex digits (either case) into out[0..n); -1 if malformed. */
int tvmw_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t n);

/* base64url without padding (RFC 4648 §5): writes the text and a NUL into
 * out, which needs TVMW_B64URL_LEN(n) + 1 bytes; returns the text length. */
#define TVMW_B64URL_LEN(n) (((n)*4 + 2) / 3)
size_t tvmw_b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes unpadded base64url text into out (cap bytes); returns the byte
 * count, or -1 for a character outside the alphabet, an impossible length
 * or more than cap bytes. */
long tvmw_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t cap);

/* Account password hash: hex of HMAC-SHA256 keyed by the salt text. The
 * control plane stores it; edges check logins against it. */
void tvmw_password_hash(const char *salt, const char *password, char out[65]);

#endif
