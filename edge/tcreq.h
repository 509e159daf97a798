/*
 * A stream-token check request as the streamers send it
 * (shared/spec/streamer-auth.md): the caller's dialect, the token, the
 * stream asked for, the viewer's address and the streamer's session id,
 * taken from query arguments and headers. One endpoint serves all callers
 * (§3.2), so the dialect is detected from what the request carries.
 *
 * Pure parsing: no state, no allocation, no locks. Strings point into the
 * caller's buffers (libmicrohttpd's, already URL-decoded) or into the
 * request's own tokbuf, and live as long as those. Every input is
 * untrusted: lengths are bounded and nothing is assumed NUL-terminated.
 */
#ifndef TVMW_EDGE_TCREQ_H
#define TVMW_EDGE_TCREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum edge_tc_dialect {
    EDGE_TC_GENERIC = 0,   /* only token (+ name, ip): legacy, Smarty-style */
    EDGE_TC_FLUSSONIC = 1, /* request_type / session_id / stream_clients in the query */
    EDGE_TC_ASTRA = 2,     /* X-Session-ID or X-Real-Path header (Astra, Alta) */
    EDGE_TC_NGINX = 3,     /* X-Original-URI header (auth_request) */
};
#define EDGE_TC_DIALECTS 4

/* A token longer than this is malformed without being decoded (tokens are
 * 70 characters; room for future formats). */
#define EDGE_TC_TOKEN_MAX 128
/* Paths longer than this match no stream. */
#define EDGE_TC_PATH_MAX 4096

struct edge_tc_str {
    const char *p; /* NULL: absent */
    size_t len;
};

struct edge_tc_req {
    /* query arguments (§1.2, §3.3); the first of repeated names counts */
    struct edge_tc_str token, name, ip, request_type, session_id, stream_clients, client_id, qs;
    /* headers (§2.2, §4); names are case-insensitive */
    struct edge_tc_str h_session_id, h_channel_id, h_real_ip, h_real_path, h_original_uri;

    /* ---- set by edge_tc_req_finish ---- */
    enum edge_tc_dialect dialect;
    bool update;               /* Flussonic request_type=update_session */
    struct edge_tc_str tok;    /* the token to check; p NULL: missing */
    bool tok_too_long;         /* present but over EDGE_TC_TOKEN_MAX */
    struct edge_tc_str stream; /* exact stream id to match (name, X-Channel-ID); p NULL: none */
    struct edge_tc_str path;   /* a path one of whose segments must be the stream; p NULL: none */
    struct edge_tc_str viewer_ip;
    struct edge_tc_str sess; /* the streamer's session id; p NULL: none (legacy) */
    char tokbuf[EDGE_TC_TOKEN_MAX + 1];
};

/* Empties q. */
void edge_tc_req_init(struct edge_tc_req *q);
/* One decoded query argument (value NULL: a name without '='). */
void edge_tc_req_arg(struct edge_tc_req *q, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* One request header. */
void edge_tc_req_header(struct edge_tc_req *q, const char *name, size_t name_len, const char *value,
                        size_t value_len);
/* Detects the dialect and derives tok, stream, path, viewer_ip, sess. */
void edge_tc_req_finish(struct edge_tc_req *q);

/* Splits a raw query string ("a=1&b=%41") into decoded arguments like
 * libmicrohttpd does, decoding into buf (cap bytes), and feeds them to
 * edge_tc_req_arg. Arguments that do not fit in buf are dropped. For
 * tests and the fuzz target; the server uses libmicrohttpd's parser. */
void edge_tc_req_query(struct edge_tc_req *q, const char *raw, size_t len, char *buf, size_t cap);

/* The value of `key` in a query string (form-decoded into out, at most
 * cap - 1 bytes plus a NUL). Returns the decoded length, -1 if absent,
 * -2 if longer than cap - 1. */
long edge_tc_query_value(const char *query, size_t len, const char *key, char *out, size_t cap);

/* True if path (up to '?') has `name` as a run of whole segments:
 * "/play/a001/index.m3u8" has "a001", "/live/ch1/x" has "live/ch1". */
bool edge_tc_path_has(const char *path, size_t path_len, const uint8_t *name, size_t name_len);

/* The dialect's name for logs and metrics. */
const char *edge_tc_dialect_name(enum edge_tc_dialect d);

#endif
