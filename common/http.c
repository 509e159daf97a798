/*
 * libmicrohttpd glue. Two traps from shared/notes/libmicrohttpd.md shape it:
 * answering on the first handler call makes 0.9.75 close every keep-alive
 * connection, so the handler runs on the second call at the earliest; and
 * POST bodies arrive in pieces, the last call having *upload_data_size == 0.
 */
#include "common/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"

#define MAX_ROUTES   64
#define MAX_STATUSES 12

struct route_stat {
    const char *route; /* static string from a handler */
    unsigned status[MAX_STATUSES];
    unsigned long long count[MAX_STATUSES];
};

struct tvmw_http_server {
    struct MHD_Daemon *d;
    tvmw_http_handler_cb handler;
    void *ctx;
    size_t max_body;
    bool (*spool_match)(const char *method, const char *path);
    char spool_dir[512];
    uint64_t spool_max;
    bool (*fast_match)(const char *uri);
    bool (*fast_handler)(void *fast_ctx, struct MHD_Connection *conn, const char *method);
    void *fast_ctx;
    pthread_mutex_t mu; /* guards stats, n_stats */
    struct route_stat stats[MAX_ROUTES];
    unsigned n_stats;
};

static void count_request(struct tvmw_http_server *s, const char *route, unsigned status)
{
    pthread_mutex_lock(&s->mu);
    struct route_stat *rs = NULL;
    for (unsigned i = 0; i < s->n_stats; i++) {
        if (strcmp(s->stats[i].route, route) == 0) {
            rs = &s->stats[i];
            break;
        }
    }
    if (rs == NULL && s->n_stats < MAX_ROUTES) {
        rs = &s->stats[s->n_stats++];
        rs->route = route;
    }
    if (rs != NULL) {
        for (unsigned i = 0; i < MAX_STATUSES; i++) {
            if (rs->status[i] == status || rs->status[i] == 0) {
                rs->status[i] = status;
                rs->count[i]++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
}

void tvmw_http_server_metrics(struct tvmw_http_server *s, const char *prefix, struct tvmw_buf *out)
{
    tvmw_buf_printf(out, "# HELP %s_http_requests_total HTTP requests by route and status.\n",
                    prefix);
    tvmw_buf_printf(out, "# TYPE %s_http_requests_total counter\n", prefix);
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < s->n_stats; i++) {
        for (unsigned j = 0; j < MAX_STATUSES && s->stats[i].status[j] != 0; j++) {
            tvmw_buf_printf(out, "%s_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                            prefix, s->stats[i].route, s->stats[i].status[j], s->stats[i].count[j]);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

bool tvmw_secret_equal(const char *presented, const char *expected)
{
    size_t a = presented ? strlen(presented) : 0;
    size_t b = strlen(expected);
    if (presented == NULL || a != b || b == 0) {
        return false; /* the length of a token is not a secret worth hiding */
    }
    return CRYPTO_memcmp(presented, expected, b) == 0;
}

static void reply_buffer(struct tvmw_http_req *req, unsigned status, const char *content_type,
                         void *body, size_t len, const char *const *headers,
                         enum MHD_ResponseMemoryMode mode)
{
    if (req->answered) {
        TVMW_LOG_ERROR("http", "second answer to one request ignored path=%s", req->path);
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return;
    }
    req->answered = true;
    req->status = status;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return; /* MHD closes the connection */
    }
    if (content_type != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    for (const char *const *h = headers; h != NULL && h[0] != NULL; h += 2) {
        MHD_add_response_header(r, h[0], h[1]);
    }
    MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
}

void tvmw_http_reply(struct tvmw_http_req *req, unsigned status, const char *content_type,
                     const void *body, size_t len, const char *const *headers)
{
    reply_buffer(req, status, content_type, (void *)body, len, headers, MHD_RESPMEM_MUST_COPY);
}

void tvmw_http_reply_take(struct tvmw_http_req *req, unsigned status, const char *content_type,
                          void *body, size_t len, const char *const *headers)
{
    reply_buffer(req, status, content_type, body, len, headers, MHD_RESPMEM_MUST_FREE);
}

struct stream {
    tvmw_http_stream_read_cb read;
    tvmw_http_stream_done_cb done;
    void *ctx;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    long n = st->read(st->ctx, (uint8_t *)buf, max);
    if (n < 0) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *st = cls;
    st->done(st->ctx);
    free(st);
}

void tvmw_http_reply_stream(struct tvmw_http_req *req, unsigned status, const char *content_type,
                            const char *const *headers, tvmw_http_stream_read_cb read,
                            tvmw_http_stream_done_cb done, void *ctx)
{
    struct stream *st = malloc(sizeof(*st));
    struct MHD_Response *r = NULL;
    if (st != NULL) {
        st->read = read;
        st->done = done;
        st->ctx = ctx;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
                                              stream_free);
    }
    if (r == NULL) {
        free(st);
        done(ctx);
        tvmw_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    req->answered = true;
    req->status = status;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (const char *const *h = headers; h != NULL && h[0] != NULL; h += 2) {
        MHD_add_response_header(r, h[0], h[1]);
    }
    MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
}

void tvmw_http_reply_json(struct tvmw_http_req *req, unsigned status, const json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text == NULL) {
        tvmw_http_reply(req, 500, "application/json", "{\"error\":\"internal\"}\n", 21, NULL);
        return;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL; length passed explicitly */
    tvmw_http_reply(req, status, "application/json", text, n + 1, NULL);
    free(text);
}

void tvmw_http_reply_error(struct tvmw_http_req *req, unsigned status, const char *code,
                           const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);
    if (status == 503 && o != NULL) {
        json_object_set_new(o, "retryable", json_true());
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    static const char *const retry[] = {"Retry-After", "1", NULL};
    if (text == NULL) {
        tvmw_http_reply(req, 500, "application/json", "{\"error\":\"internal\"}\n", 21, NULL);
        return;
    }
    tvmw_http_reply(req, status, "application/json", text, strlen(text),
                    status == 503 ? retry : NULL);
    free(text);
}

const char *tvmw_http_query(struct tvmw_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *tvmw_http_header(struct tvmw_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *tvmw_http_raw_query(struct tvmw_http_req *req)
{
    return req->raw_query;
}

/* The *req_cls of a fast-route request: no state of its own, only where it
 * is between MHD's calls (headers seen / being answered). */
static char fast_headers, fast_body;

/* MHD calls this with the whole URI before parsing it; its return value is
 * the first *req_cls, which is how the raw query string is kept. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct tvmw_http_server *s = cls;
    if (s->fast_match != NULL && s->fast_match(uri)) {
        return &fast_headers;
    }
    struct tvmw_http_req *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    const char *q = strchr(uri, '?');
    req->raw_query = strdup(q != NULL ? q + 1 : "");
    if (req->raw_query == NULL) {
        free(req);
        return NULL;
    }
    req->conn = conn;
    req->srv = s;
    req->route = "other";
    req->spool_fd = -1;
    tvmw_buf_init(&req->body, s->max_body);
    return req;
}

static void req_free(struct tvmw_http_req *req)
{
    if (req->spool_fd >= 0) {
        close(req->spool_fd);
    }
    tvmw_buf_close(&req->body);
    free(req->raw_query);
    free(req);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct tvmw_http_req *req = *req_cls;
    if (*req_cls == &fast_headers || *req_cls == &fast_body) {
        *req_cls = NULL;
        return;
    }
    if (req != NULL) {
        if (req->answered) {
            count_request(cls, req->route, req->status);
        }
        req_free(req);
        *req_cls = NULL;
    }
}

/* An unlinked temporary file in the spool dir for this request's body. */
static void spool_open(struct tvmw_http_server *s, struct tvmw_http_req *req)
{
    if (mkdir(s->spool_dir, 0700) != 0 && errno != EEXIST) {
        req->spool_error = errno;
        return;
    }
    int fd = open(s->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        /* No O_TMPFILE on this file system: a named file, unlinked at once. */
        char path[600];
        snprintf(path, sizeof(path), "%s/upload-XXXXXX", s->spool_dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0) {
            unlink(path);
        }
    }
    if (fd < 0) {
        req->spool_error = errno;
        return;
    }
    req->spool_fd = fd;
}

static void spool_write(struct tvmw_http_server *s, struct tvmw_http_req *req, const char *p,
                        size_t n)
{
    if (req->spool_len + n > s->spool_max) {
        req->too_big = true;
        return;
    }
    req->spool_len += n;
    while (n > 0) {
        ssize_t w = write(req->spool_fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            req->spool_error = errno;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct tvmw_http_server *s = cls;
    struct tvmw_http_req *req = *req_cls;
    if (req == NULL) {
        return MHD_NO; /* on_uri could not allocate */
    }
    if (*req_cls == &fast_headers) {
        *req_cls = &fast_body; /* first call: answer on the next one */
        return MHD_YES;
    }
    if (*req_cls == &fast_body) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* nothing on the fast route takes a body */
            return MHD_YES;
        }
        return s->fast_handler(s->fast_ctx, conn, method) ? MHD_YES : MHD_NO;
    }
    if (req->method == NULL) {
        /* First call, headers only: answering now would cost keep-alive. */
        req->method = method;
        req->path = url;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL && ci->client_addr->sa_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
            inet_ntop(AF_INET, &sin->sin_addr, req->remote, sizeof(req->remote));
        }
        if (s->spool_match != NULL && s->spool_match(method, url)) {
            spool_open(s, req);
        }
        uint64_t limit = req->spool_fd >= 0 ? s->spool_max : s->max_body;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > limit) {
            req->too_big = true; /* refuse before reading a byte of it */
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0 && req->spool_fd >= 0) {
        if (!req->too_big && req->spool_error == 0) {
            spool_write(s, req, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_big && tvmw_buf_append(&req->body, upload_data, *upload_data_size) != 0) {
            req->too_big = true;
            tvmw_buf_close(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->answered) {
        return MHD_YES;
    }
    if (req->too_big) {
        req->route = "too_large";
        tvmw_http_reply_error(
            req, 413, "too_large", "request body is over %llu bytes",
            (unsigned long long)(req->spool_fd >= 0 ? s->spool_max : s->max_body));
    } else if (req->spool_error != 0) {
        req->route = "spool_failed";
        tvmw_http_reply_error(req, 500, "internal", "cannot store the request body in %s: %s",
                              s->spool_dir, strerror(req->spool_error));
    } else {
        s->handler(s->ctx, req);
        if (!req->answered) {
            TVMW_LOG_ERROR("http", "handler gave no answer path=%s", req->path);
            tvmw_http_reply_error(req, 500, "internal", "no answer");
        }
    }
    return MHD_YES;
}

int tvmw_http_server_start(const struct tvmw_http_server_conf *conf, tvmw_http_handler_cb handler,
                           void *ctx, struct tvmw_http_server **out)
{
    char host[TVMW_ADDR_MAX];
    unsigned port;
    if (tvmw_addr_split(conf->address, host, sizeof(host), &port) != 0) {
        return TVMW_ECONFIG;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sin.sin_addr);
    struct tvmw_http_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->handler = handler;
    s->ctx = ctx;
    s->max_body = conf->max_body_bytes;
    s->spool_match = conf->spool_match;
    s->spool_max = conf->spool_max_bytes;
    s->fast_match = conf->fast_handler != NULL ? conf->fast_match : NULL;
    s->fast_handler = conf->fast_handler;
    s->fast_ctx = conf->fast_ctx;
    snprintf(s->spool_dir, sizeof(s->spool_dir), "%s", conf->spool_dir ? conf->spool_dir : "/tmp");
    pthread_mutex_init(&s->mu, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (conf->thread_per_connection) {
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    } else {
        flags |= MHD_USE_EPOLL | MHD_USE_TURBO;
    }
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &sin},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, s},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_CONNECTION_LIMIT, conf->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, conf->idle_timeout_s ? conf->idle_timeout_s : 60, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_END, 0, NULL}, /* pool size, if any */
        {MHD_OPTION_END, 0, NULL}, /* memory per connection, if any */
        {MHD_OPTION_END, 0, NULL},
    };
    size_t o = 6;
    if (!conf->thread_per_connection) {
        opts[o++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, conf->threads, NULL};
    }
    if (conf->conn_memory_bytes != 0) {
        opts[o++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                            (intptr_t)conf->conn_memory_bytes, NULL};
    }
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY,
                            opts, MHD_OPTION_END);
    if (s->d == NULL) {
        TVMW_LOG_ERROR("http", "cannot listen on %s", conf->address);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return TVMW_EIO;
    }
    *out = s;
    return 0;
}

void tvmw_http_server_quiesce(struct tvmw_http_server *s)
{
    int fd = MHD_quiesce_daemon(s->d);
    if (fd >= 0) {
        close(fd);
    }
}

void tvmw_http_server_stop(struct tvmw_http_server *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
