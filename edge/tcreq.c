/*
 * Stream-token check requests: dialect detection and field extraction
 * (streamer-auth.md §1.2, §2.2, §3.2, §3.3, §4); see tcreq.h.
 */
#include "edge/tcreq.h"

#include <string.h>
#include <strings.h>

static const char *const dialect_names[EDGE_TC_DIALECTS] = {
    [EDGE_TC_GENERIC] = "generic",
    [EDGE_TC_FLUSSONIC] = "flussonic",
    [EDGE_TC_ASTRA] = "astra",
    [EDGE_TC_NGINX] = "nginx",
};

const char *edge_tc_dialect_name(enum edge_tc_dialect d)
{
    return (unsigned)d < EDGE_TC_DIALECTS ? dialect_names[d] : "unknown";
}

void edge_tc_req_init(struct edge_tc_req *q)
{
    memset(q, 0, offsetof(struct edge_tc_req, tokbuf));
    q->tokbuf[0] = '\0';
}

static bool is(const char *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

/* A name of the tables below: its length first, so most comparisons stop
 * there (a Flussonic request carries a dozen arguments). */
struct field {
    const char *name;
    size_t len;
    size_t off;
};
#define FIELD(lit, member)                                                                         \
    {                                                                                              \
        lit, sizeof(lit) - 1, offsetof(struct edge_tc_req, member)                                 \
    }

static void keep(struct edge_tc_str *s, const char *value, size_t len)
{
    if (s->p == NULL) { /* the first of repeated names counts, like MHD's lookup */
        s->p = value != NULL ? value : "";
        s->len = value != NULL ? len : 0;
    }
}

void edge_tc_req_arg(struct edge_tc_req *q, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    static const struct field args[] = {
        FIELD("token", token),
        FIELD("name", name),
        FIELD("ip", ip),
        FIELD("request_type", request_type),
        FIELD("session_id", session_id),
        FIELD("stream_clients", stream_clients),
        FIELD("client_id", client_id),
        FIELD("qs", qs),
    };
    if (name == NULL) {
        return;
    }
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
        if (name_len == args[i].len && memcmp(name, args[i].name, name_len) == 0) {
            keep((struct edge_tc_str *)((char *)q + args[i].off), value, value_len);
            return;
        }
    }
}

void edge_tc_req_header(struct edge_tc_req *q, const char *name, size_t name_len, const char *value,
                        size_t value_len)
{
    static const struct field hdrs[] = {
        FIELD("X-Session-ID", h_session_id),     FIELD("X-Channel-ID", h_channel_id),
        FIELD("X-Real-IP", h_real_ip),           FIELD("X-Real-Path", h_real_path),
        FIELD("X-Original-URI", h_original_uri),
    };
    if (name == NULL || name_len < 9 || (name[0] != 'X' && name[0] != 'x')) {
        return; /* every header we read starts with "X-" and has 9+ characters */
    }
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        if (name_len == hdrs[i].len && strncasecmp(name, hdrs[i].name, name_len) == 0) {
            keep((struct edge_tc_str *)((char *)q + hdrs[i].off), value, value_len);
            return;
        }
    }
}

/* ---- query strings ------------------------------------------------------------------- */

static int hex(char c)
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

/* Form-decodes in[0..len) into out (cap bytes, NUL added). Returns the
 * decoded length, or -1 if it does not fit. A '%' not followed by two hex
 * digits stays as it is (libmicrohttpd does the same). */
static long form_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
            c = (char)(hex(in[i + 1]) << 4 | hex(in[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        out[o++] = c;
    }
    if (cap == 0) {
        return -1;
    }
    out[o] = '\0';
    return (long)o;
}

long edge_tc_query_value(const char *query, size_t len, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key), i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&' && query[end] != ';') {
            end++;
        }
        const char *eq = memchr(query + i, '=', end - i);
        size_t nlen = eq != NULL ? (size_t)(eq - (query + i)) : end - i;
        if (nlen == klen && memcmp(query + i, key, klen) == 0) {
            const char *v = eq != NULL ? eq + 1 : query + end;
            long n = form_decode(v, (size_t)(query + end - v), out, cap);
            return n < 0 ? -2 : n;
        }
        i = end + 1;
    }
    return -1;
}

void edge_tc_req_query(struct edge_tc_req *q, const char *raw, size_t len, char *buf, size_t cap)
{
    size_t i = 0, used = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && raw[end] != '&') {
            end++;
        }
        const char *eq = memchr(raw + i, '=', end - i);
        size_t nlen = eq != NULL ? (size_t)(eq - (raw + i)) : end - i;
        long kn = form_decode(raw + i, nlen, buf + used, cap - used);
        if (kn >= 0 && nlen > 0) {
            char *k = buf + used;
            used += (size_t)kn + 1;
            if (eq == NULL) {
                edge_tc_req_arg(q, k, (size_t)kn, NULL, 0);
            } else {
                long vn = form_decode(eq + 1, (size_t)(raw + end - eq - 1), buf + used, cap - used);
                if (vn >= 0) {
                    edge_tc_req_arg(q, k, (size_t)kn, buf + used, (size_t)vn);
                    used += (size_t)vn + 1;
                }
            }
        }
        i = end + 1;
    }
}

/* ---- paths --------------------------------------------------------------------------- */

bool edge_tc_path_has(const char *path, size_t path_len, const uint8_t *name, size_t name_len)
{
    const char *qm = memchr(path, '?', path_len);
    if (qm != NULL) {
        path_len = (size_t)(qm - path);
    }
    if (name_len == 0 || path_len > EDGE_TC_PATH_MAX || name_len > path_len) {
        return false;
    }
    for (size_t i = 0; i + name_len <= path_len; i++) {
        if ((i == 0 || path[i - 1] == '/') && memcmp(path + i, name, name_len) == 0 &&
            (i + name_len == path_len || path[i + name_len] == '/')) {
            return true;
        }
    }
    return false;
}

/* ---- finish -------------------------------------------------------------------------- */

static bool given(const struct edge_tc_str *s)
{
    return s->p != NULL && s->len > 0;
}

/* The token from a query string embedded in another field. */
static void token_from(struct edge_tc_req *q, const char *query, size_t len)
{
    long n = edge_tc_query_value(query, len, "token", q->tokbuf, sizeof(q->tokbuf));
    if (n == -2) {
        q->tok = (struct edge_tc_str){q->tokbuf, 0};
        q->tok_too_long = true;
    } else if (n > 0) {
        q->tok = (struct edge_tc_str){q->tokbuf, (size_t)n};
    }
}

void edge_tc_req_finish(struct edge_tc_req *q)
{
    if (q->request_type.p != NULL || q->session_id.p != NULL || q->stream_clients.p != NULL) {
        q->dialect = EDGE_TC_FLUSSONIC;
    } else if (q->h_session_id.p != NULL || q->h_real_path.p != NULL) {
        q->dialect = EDGE_TC_ASTRA;
    } else if (q->h_original_uri.p != NULL) {
        q->dialect = EDGE_TC_NGINX;
    } else {
        q->dialect = EDGE_TC_GENERIC;
    }
    q->update = q->dialect == EDGE_TC_FLUSSONIC && is(q->request_type.p ? q->request_type.p : "",
                                                      q->request_type.len, "update_session");

    /* The token: the query's own, else the one in the original URI (nginx
     * forwards $request_uri) or in Flussonic's copy of the play query. */
    if (given(&q->token)) {
        q->tok = q->token;
        q->tok_too_long = q->token.len > EDGE_TC_TOKEN_MAX;
    } else if (given(&q->h_original_uri)) {
        const char *qm = memchr(q->h_original_uri.p, '?', q->h_original_uri.len);
        if (qm != NULL) {
            token_from(q, qm + 1, (size_t)(q->h_original_uri.p + q->h_original_uri.len - qm - 1));
        }
    } else if (given(&q->qs)) {
        token_from(q, q->qs.p, q->qs.len);
    }

    /* The stream asked for (§1.5 rule 6, §2.2, §4). */
    switch (q->dialect) {
    case EDGE_TC_ASTRA:
        if (given(&q->h_channel_id)) {
            q->stream = q->h_channel_id;
        } else if (given(&q->h_real_path)) {
            q->path = q->h_real_path;
        }
        q->sess = q->h_session_id;
        break;
    case EDGE_TC_NGINX:
        if (given(&q->name)) {
            q->stream = q->name;
        } else {
            q->path = q->h_original_uri;
        }
        break;
    case EDGE_TC_FLUSSONIC:
        q->sess = q->session_id;
        if (q->name.p != NULL) {
            q->stream = q->name; /* Flussonic always names the stream; "" matches nothing */
        }
        break;
    case EDGE_TC_GENERIC:
        if (given(&q->name)) {
            q->stream = q->name;
        }
        break;
    }
    if (q->sess.p != NULL && q->sess.len == 0) {
        q->sess.p = NULL; /* an empty session id is no session id */
    }

    /* The viewer: Flussonic passes it as ip=, the proxies as X-Real-IP. */
    bool query_first = q->dialect == EDGE_TC_FLUSSONIC || q->dialect == EDGE_TC_GENERIC;
    const struct edge_tc_str *a = query_first ? &q->ip : &q->h_real_ip;
    const struct edge_tc_str *b = query_first ? &q->h_real_ip : &q->ip;
    q->viewer_ip = given(a) ? *a : given(b) ? *b : (struct edge_tc_str){NULL, 0};
}
