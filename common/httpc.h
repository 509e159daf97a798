/*
 * A small blocking HTTP client over a pool of libcurl easy handles, so that
 * connections (keep-alive) are reused across calls and threads. For threads
 * that may block (HTTP handler threads, CLI); never call it on a loop thread.
 */
#ifndef TVMW_COMMON_HTTPC_H
#define TVMW_COMMON_HTTPC_H

#include <stddef.h>

#include "common/buf.h"

struct tvmw_httpc;

struct tvmw_httpc_resp {
    long status;
    struct tvmw_buf body;
    char content_type[128];
    char retry_after[16];
};

int tvmw_httpc_new(size_t max_resp_bytes, struct tvmw_httpc **out);
void tvmw_httpc_free(struct tvmw_httpc *c);

/* headers: NULL-terminated array of "Name: value" lines. resp->body must be
 * closed by the caller (also on error). Returns 0 once any HTTP answer came
 * back (whatever its status), or TVMW_EIO with a reason in err (the
 * request may or may not have reached the server). Thread-safe. */
int tvmw_httpc_do(struct tvmw_httpc *c, const char *method, const char *url,
                  const char *const *headers, const void *body, size_t len, unsigned timeout_ms,
                  struct tvmw_httpc_resp *resp, char *err, size_t err_len);

#endif
