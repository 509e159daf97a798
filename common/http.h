/*
 * HTTP server wrapper over libmicrohttpd.
 *
 * The wrapper collects the request (headers and a body bounded by
 * max_body_bytes) and calls the handler once, on an MHD thread, when the
 * request is complete. The handler must answer exactly once with one of the
 * tvmw_http_reply* calls before it returns. In thread-per-connection mode a
 * handler may block (e.g. wait for a raft commit); in pool mode it must not.
 *
 * The wrapper answers bodies over the limit with 413 itself, and counts
 * requests by route label and status for /metrics.
 */
#ifndef TVMW_COMMON_HTTP_H
#define TVMW_COMMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"

struct MHD_Connection;
struct tvmw_http_server;

struct tvmw_http_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path; /* without the query string */
    struct tvmw_buf body;
    bool too_big;
    bool answered;
    const char *route;            /* metrics label; handlers set it, default "other" */
    char remote[64];              /* client address without port */
    unsigned status;              /* of the answer, once answered */
    char *raw_query;              /* private */
    struct tvmw_http_server *srv; /* private */
    /* A spooled body (tvmw_http_server_conf.spool_match): an unlinked
     * temporary file holding spool_len bytes, closed after the answer;
     * -1 when the body is in `body`. */
    int spool_fd;
    uint64_t spool_len;
    int spool_error; /* private: errno of a failed spool write */
};

typedef void (*tvmw_http_handler_cb)(void *ctx, struct tvmw_http_req *req);

struct tvmw_http_server_conf {
    const char *address; /* "IPv4:port" */
    size_t max_body_bytes;
    unsigned max_connections;
    unsigned idle_timeout_s;
    bool thread_per_connection; /* else a pool of `threads` epoll threads */
    unsigned threads;
    /* Optional: the bodies of requests for which spool_match() is true go
     * to an unlinked temporary file in spool_dir (created if missing), up
     * to spool_max_bytes (else 413), instead of memory: for uploads far
     * larger than max_body_bytes. Called on an MHD thread. */
    bool (*spool_match)(const char *method, const char *path);
    const char *spool_dir;
    uint64_t spool_max_bytes;
    /* Optional fast route for one hot endpoint (the edge's stream-token
     * check): requests whose request-target fast_match() accepts (called
     * with the raw URI, query included, before anything is allocated)
     * bypass the wrapper: no per-request allocation, no shared route
     * counters, no body kept (one is read and dropped). fast_handler runs
     * on the connection's thread once the request is complete (never on
     * the first MHD call, see the file comment of http.c), queues one
     * answer with MHD_queue_response and returns true, or returns false
     * to have the connection closed. */
    bool (*fast_match)(const char *uri);
    bool (*fast_handler)(void *fast_ctx, struct MHD_Connection *conn, const char *method);
    void *fast_ctx;
    /* libmicrohttpd's memory per connection (request line, headers, read
     * and write buffers; bodies pass through it); 0: its default, 32 KiB.
     * It zeroes the whole of it after every request, so a server of small
     * requests gains from a smaller one. */
    size_t conn_memory_bytes;
};

int tvmw_http_server_start(const struct tvmw_http_server_conf *conf, tvmw_http_handler_cb handler,
                           void *ctx, struct tvmw_http_server **out);
/* Stops accepting new connections; running handlers go on. */
void tvmw_http_server_quiesce(struct tvmw_http_server *s);
/* Waits for handlers to return, closes everything. */
void tvmw_http_server_stop(struct tvmw_http_server *s);

/* headers: NULL-terminated array of name, value, name, value, ... or NULL. */
void tvmw_http_reply(struct tvmw_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len, const char *const *headers);
/* As tvmw_http_reply, taking ownership of body (malloc'd; freed with
 * free() once sent, or at once if the answer fails): a large answer is
 * not copied. */
void tvmw_http_reply_take(struct tvmw_http_req *req, unsigned status, const char *content_type,
                          void *body, size_t len, const char *const *headers);
/* A streamed answer of unknown length (chunked): read() is called on the
 * connection's thread to fill buf and returns the byte count, 0 at the end
 * or a negative error (the connection is then cut, so the client sees a
 * truncated body); done() runs once when the answer is over. */
typedef long (*tvmw_http_stream_read_cb)(void *ctx, uint8_t *buf, size_t len);
typedef void (*tvmw_http_stream_done_cb)(void *ctx);
void tvmw_http_reply_stream(struct tvmw_http_req *req, unsigned status, const char *content_type,
                            const char *const *headers, tvmw_http_stream_read_cb read,
                            tvmw_http_stream_done_cb done, void *ctx);
/* Body is json_dumps(obj) plus a newline; obj is borrowed. */
void tvmw_http_reply_json(struct tvmw_http_req *req, unsigned status, const json_t *obj);
/* {"error": code, "message": ...}; 503 adds Retry-After and "retryable": true. */
void tvmw_http_reply_error(struct tvmw_http_req *req, unsigned status, const char *code,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

const char *tvmw_http_query(struct tvmw_http_req *req, const char *name);
const char *tvmw_http_header(struct tvmw_http_req *req, const char *name);
/* Query string as sent, without '?', "" if none (for forwarding). */
const char *tvmw_http_raw_query(struct tvmw_http_req *req);

/* Appends tvmw_http_requests_total{route,status} to out. Any thread. */
void tvmw_http_server_metrics(struct tvmw_http_server *s, const char *prefix, struct tvmw_buf *out);

/* Constant-time comparison of a presented secret with the expected one. */
bool tvmw_secret_equal(const char *presented, const char *expected);

#endif
