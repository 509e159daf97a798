#include "common/httpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/err.h"

#define POOL_MAX 64

struct tvmw_httpc {
    pthread_mutex_t mu; /* guards free_handles / n_free */
    CURL *free_handles[POOL_MAX];
    unsigned n_free;
    size_t max_resp_bytes;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int tvmw_httpc_new(size_t max_resp_bytes, struct tvmw_httpc **out)
{
    pthread_once(&global_once, global_init);
    struct tvmw_httpc *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->max_resp_bytes = max_resp_bytes;
    *out = c;
    return 0;
}

void tvmw_httpc_free(struct tvmw_httpc *c)
{
    if (c == NULL) {
        return;
    }
    for (unsigned i = 0; i < c->n_free; i++) {
        curl_easy_cleanup(c->free_handles[i]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static CURL *take_handle(struct tvmw_httpc *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n_free > 0) {
        h = c->free_handles[--c->n_free];
    }
    pthread_mutex_unlock(&c->mu);
    if (h == NULL) {
        h = curl_easy_init();
    } else {
        curl_easy_reset(h); /* keeps the connection cache */
    }
    return h;
}

static void give_handle(struct tvmw_httpc *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->n_free < POOL_MAX) {
        c->free_handles[c->n_free++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct tvmw_httpc_resp *r = ud;
    return tvmw_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

static void copy_header_value(const char *line, size_t len, size_t name_len, char *dst,
                              size_t dst_len)
{
    const char *v = line + name_len;
    size_t n = len - name_len;
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ')) {
        n--;
    }
    if (n >= dst_len) {
        n = dst_len - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct tvmw_httpc_resp *r = ud;
    size_t len = size * n;
    if (len > 13 && strncasecmp(p, "content-type:", 13) == 0) {
        copy_header_value(p, len, 13, r->content_type, sizeof(r->content_type));
    } else if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        copy_header_value(p, len, 12, r->retry_after, sizeof(r->retry_after));
    }
    return len;
}

int tvmw_httpc_do(struct tvmw_httpc *c, const char *method, const char *url,
                  const char *const *headers, const void *body, size_t len, unsigned timeout_ms,
                  struct tvmw_httpc_resp *resp, char *err, size_t err_len)
{
    struct curl_slist *hl = NULL;
    int rv = 0;
    resp->status = 0;
    resp->content_type[0] = '\0';
    resp->retry_after[0] = '\0';
    tvmw_buf_init(&resp->body, c->max_resp_bytes);

    CURL *h = take_handle(c);
    if (h == NULL) {
        snprintf(err, err_len, "curl_easy_init failed");
        return TVMW_EIO;
    }
    for (const char *const *hp = headers; hp != NULL && *hp != NULL; hp++) {
        struct curl_slist *nl = curl_slist_append(hl, *hp);
        if (nl == NULL) {
            rv = -ENOMEM;
            goto out;
        }
        hl = nl;
    }
    /* Expect: 100-continue costs a round trip on every POST. */
    struct curl_slist *nl = curl_slist_append(hl, "Expect:");
    if (nl == NULL) {
        rv = -ENOMEM;
        goto out;
    }
    hl = nl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 2000 ? timeout_ms : 2000));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(err, err_len, "%s", curl_easy_strerror(cc));
        /* Even "could not connect" does not prove nothing was sent: libcurl
         * resends a request whose reused connection died. */
        rv = TVMW_EIO;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
out:
    curl_slist_free_all(hl);
    give_handle(c, h);
    return rv;
}
