/*
 * Credentials the edge signs and checks with the cluster's keys (edge db 13,
 * docs/edge-protocol.md): device session keys (authkey) and stream tokens.
 * Both are self-contained, so any edge accepts what another edge issued.
 *
 * Keys: the active key with the highest kid signs; every active key
 * validates; a retired key validates nothing. Each thread keeps its own
 * decoded copy of the key ring, reloaded when the state it reads changed
 * (no lock is shared between request threads).
 *
 * authkey: 128 lowercase hex digits = 32-byte body + HMAC-SHA256 over
 * "tvmw-authkey\0" ‖ body. Body (big-endian): u8 version 1, u8 flags
 * (bit 0: basic device), u16 kid, u32 client, u64 account, u64 session id,
 * u64 issued (ms since the epoch).
 *
 * stream token: base64url (no padding) of a 36-byte body + the first 16
 * bytes of HMAC-SHA256 over "tvmw-stream\0" ‖ body: 70 characters. Body
 * (big endian): u8 version 2, u8 kind (1 live, 2 archive, 3 vod), u16 kid,
 * u32 client, u48 account, u48 content id, u32 issued (Unix s), u32 expiry,
 * u32 nonce, u32 IP binding (the viewer's IPv4 address, the first 4 bytes
 * of SHA-256 of any other address text, 0 when not bound). Version 1 (the
 * first release: u64 account and content, no issue time) is still read;
 * its issue time is unknown (0).
 */
#ifndef TVMW_EDGE_DAUTH_H
#define TVMW_EDGE_DAUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "edge/store.h"

#define EDGE_AUTHKEY_LEN    128
#define EDGE_TOKEN_LEN      70
#define EDGE_KEYRING_MAX    16
#define EDGE_KEY_MAX_SECRET 64

struct edge_key {
    uint16_t kid;
    uint8_t secret[EDGE_KEY_MAX_SECRET];
    unsigned secret_len;
};

struct edge_keyring {
    uint64_t index;  /* applied index it was loaded at */
    const void *gen; /* the store generation it was loaded from */
    unsigned n;      /* active keys, highest kid first */
    struct edge_key k[EDGE_KEYRING_MAX];
};

/* The calling thread's key ring, current for r. NULL only if the state has
 * no usable key (a cluster that has not made its first key yet). */
const struct edge_keyring *edge_keyring(const struct edge_read *r);

struct edge_authkey {
    bool basic;
    uint16_t kid;
    uint32_t client;
    uint64_t account;
    uint64_t session;
    uint64_t issued_ms;
};

/* Signs with the ring's signing key (sets a->kid); out gets 128 hex + NUL. */
void edge_authkey_issue(const struct edge_keyring *ring, struct edge_authkey *a,
                        char out[EDGE_AUTHKEY_LEN + 1]);
/* 0 if text is an authkey signed by an active key; -1 otherwise. */
int edge_authkey_check(const struct edge_keyring *ring, const char *text, struct edge_authkey *a);

enum edge_token_kind { EDGE_TOKEN_LIVE = 1, EDGE_TOKEN_ARCHIVE = 2, EDGE_TOKEN_VOD = 3 };

struct edge_token {
    uint8_t kind;
    uint16_t kid;
    uint32_t client;
    uint64_t account;
    uint64_t content;
    uint32_t issued_s; /* 0: unknown (a version 1 token) */
    uint32_t expiry_s;
    uint32_t nonce;
    uint32_t ip_bind;
    uint8_t version; /* set by edge_token_check */
};

/* The ip_bind value of an address text. */
uint32_t edge_token_ip_bind(const char *ip);
/* Signs (sets t->kid); out gets 70 characters + NUL. -1 (out empty) when
 * the account or the content id does not fit in 48 bits. */
int edge_token_issue(const struct edge_keyring *ring, struct edge_token *t,
                     char out[EDGE_TOKEN_LEN + 1]);
/* Decodes and checks the signature only: 0, or -1 for anything else
 * (length, alphabet, version, unknown or retired kid, MAC). No state
 * lookup happens before the MAC is known to be good. */
int edge_token_check(const struct edge_keyring *ring, const char *text, size_t len,
                     struct edge_token *t);

#endif
