/*
 * The stream-token check the streamers call on every edge
 * (shared/spec/streamer-auth.md; Smarty's StreamServiceTokenCheck path):
 *
 *   GET /tvmiddleware/api/streamservice/token/check/   (also without the
 *   final slash, and under /api/tvmiddleware/api/...)
 *
 * One endpoint, four callers told apart by what they send (tcreq.h):
 * Flussonic's auth backend, Astra/Alta's HTTP backend, nginx auth_request
 * and the generic (legacy, Smarty-style) form. Each gets the status codes
 * and headers of its decision table (§1.6, §2.5, §4, §5).
 *
 * The decision is taken from the edge's own state only, so it works with
 * the whole control plane down: the token's signature (edge/dauth.h) with
 * the cluster's keys, its expiry (with the stream_auth.skew_s allowance;
 * not applied to Flussonic's update_session), the viewer's address when
 * the token is bound to one, then the account (exists, active, not logged
 * out since the token was issued), the channel (exists, enabled, the one
 * the streamer asks for) and the entitlement (one of the account's or its
 * customer's tariffs holds the channel), then the edge's own session
 * limit. Every deny has a reason code (enum edge_tc_reason), counted per
 * reason in /metrics and logged (rate-limited per thread).
 *
 * Hot path (issue 6 req. 5): the handler runs on libmicrohttpd's fast
 * route (common/http.h), with no heap allocation, no JSON and no lock
 * shared between threads from request to answer. Each thread keeps its
 * own LMDB read transaction (reset and renewed, edge/store.h sticky
 * readers), cursor, key rings, counters and prepared answers; state comes
 * from the binary index (edge/tcindex.h) and the relation database. A
 * token that fails its signature is answered before any state lookup.
 * The key rings reload when the keys changed (one atomic load per
 * request tells).
 *
 * Threads: new/free on the main thread; serve on libmicrohttpd's threads;
 * metrics on any thread. free only after the HTTP server stopped.
 */
#ifndef TVMW_EDGE_TOKENCHECK_H
#define TVMW_EDGE_TOKENCHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "edge/tcreq.h"

struct MHD_Connection;
struct edge_store;
struct edge_tokencheck;
struct tvmw_config;

/* Why a check was denied (§3.4); EDGE_TC_ALLOW is no deny. */
enum edge_tc_reason {
    EDGE_TC_ALLOW = 0,
    EDGE_TC_TOKEN_MISSING,
    EDGE_TC_TOKEN_MALFORMED,
    EDGE_TC_TOKEN_EXPIRED,
    EDGE_TC_TOKEN_REVOKED,
    EDGE_TC_ACCOUNT_INACTIVE,
    EDGE_TC_NOT_ENTITLED,
    EDGE_TC_WRONG_STREAM,
    EDGE_TC_SESSION_LIMIT,
    EDGE_TC_IP_MISMATCH,
    EDGE_TC_UNAVAILABLE,
};
#define EDGE_TC_REASONS 11

/* "token_expired" etc.; "ok" for EDGE_TC_ALLOW. */
const char *edge_tc_reason_name(enum edge_tc_reason r);

struct edge_tc_answer {
    enum edge_tc_reason reason;
    unsigned status;          /* HTTP status for the request's dialect */
    bool with_auth_duration;  /* X-AuthDuration is sent */
    uint32_t auth_duration_s; /* its value */
    /* allow only */
    uint64_t user_id;      /* X-UserId and X-Session-Name: the account id */
    uint32_t max_sessions; /* X-Max-Sessions; 0: not sent */
    /* what the token said, for the log (0 when unknown) */
    uint64_t account, content;
    uint32_t nonce;
    uint16_t kid;
};

struct edge_tokencheck_opts {
    const struct tvmw_config *conf; /* stream_auth section; borrowed */
    struct edge_store *store;       /* borrowed; outlives the checker */
};

/* 0, -ENOMEM. */
int edge_tokencheck_new(const struct edge_tokencheck_opts *opts, struct edge_tokencheck **out);
/* After the HTTP server stopped: releases every thread's state (their
 * read transactions too, so before edge_store_close). NULL is a no-op. */
void edge_tokencheck_free(struct edge_tokencheck *tc);

/* The fast route's match (common/http.h fast_match): the raw request
 * target is this endpoint. */
bool edge_tokencheck_match(const char *uri);
/* The fast route's handler (common/http.h fast_handler); ctx is the
 * checker. */
bool edge_tokencheck_serve(void *ctx, struct MHD_Connection *conn, const char *method);

/* Decides a parsed request on the calling thread at now_s (Unix
 * seconds), counting it in the metrics. Tests and the handler. */
void edge_tokencheck_decide(struct edge_tokencheck *tc, const struct edge_tc_req *q, uint64_t now_s,
                            struct edge_tc_answer *a);

/* Prometheus lines: checks by dialect and result, denies by reason,
 * untracked sessions. Sums the threads' counters. Any thread. */
void edge_tokencheck_metrics(struct edge_tokencheck *tc, struct tvmw_buf *out);

/* True when answers are prepared once per thread and filled in place
 * (libmicrohttpd 0.9.75, see tokencheck.c), false when each answer is
 * built for its request. */
bool edge_tokencheck_inplace(const struct edge_tokencheck *tc);

#endif
