/*
 * Device API request parameters; see dreq.h.
 */
#include "edge/dreq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes s[0..n) into out (at most n bytes plus a NUL); returns the byte
 * after the NUL. */
static char *url_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out + o + 1;
}

static void parse_pairs(struct dreq *d, const char *s, size_t len, char **w)
{
    const char *end = s + len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(stop - s));
        if (stop > s && d->n < DREQ_MAX_PARAMS) {
            const char *name_end = eq ? eq : stop;
            struct dreq_param *p = &d->p[d->n++];
            p->name = *w;
            *w = url_decode(s, (size_t)(name_end - s), *w);
            p->value = *w;
            *w = eq ? url_decode(eq + 1, (size_t)(stop - eq - 1), *w) : url_decode("", 0, *w);
        }
        s = stop + 1;
    }
}

static bool form_body(struct tvmw_http_req *req)
{
    if (req->body.len == 0) {
        return false;
    }
    const char *ct = tvmw_http_header(req, "Content-Type");
    return ct == NULL || strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

int dreq_parse(struct dreq *d, struct tvmw_http_req *req)
{
    memset(d, 0, sizeof(*d));
    d->http = req;
    const char *q = tvmw_http_raw_query(req);
    size_t qlen = strlen(q);
    bool body = form_body(req);
    size_t blen = body ? req->body.len : 0;
    /* Every pair decodes to at most its own length plus two NULs. */
    d->text = malloc(qlen + blen + 2 * (qlen + blen) + 16);
    if (d->text == NULL) {
        return -ENOMEM;
    }
    char *w = d->text;
    parse_pairs(d, q, qlen, &w);
    if (body) {
        parse_pairs(d, req->body.data, blen, &w);
    }
    return 0;
}

void dreq_close(struct dreq *d)
{
    free(d->text);
    d->text = NULL;
}

const char *dreq_get(const struct dreq *d, const char *name)
{
    for (unsigned i = d->n; i-- > 0;) {
        if (strcmp(d->p[i].name, name) == 0) {
            return d->p[i].value;
        }
    }
    return NULL;
}

unsigned dreq_all(const struct dreq *d, const char *name, const char **out, unsigned max)
{
    unsigned k = 0;
    for (unsigned i = 0; i < d->n && k < max; i++) {
        if (strcmp(d->p[i].name, name) == 0) {
            out[k++] = d->p[i].value;
        }
    }
    return k;
}

const char *dreq_cookie(const struct dreq *d, const char *name, char *out, size_t cap)
{
    const char *c = tvmw_http_header(d->http, "Cookie");
    size_t nlen = strlen(name);
    while (c != NULL && *c) {
        while (*c == ' ' || *c == ';') {
            c++;
        }
        const char *end = strchr(c, ';');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len > nlen && strncmp(c, name, nlen) == 0 && c[nlen] == '=') {
            size_t vlen = len - nlen - 1;
            if (vlen >= cap) {
                return NULL;
            }
            memcpy(out, c + nlen + 1, vlen);
            out[vlen] = '\0';
            return out;
        }
        c = end;
    }
    return NULL;
}

bool dreq_int(const struct dreq *d, const char *name, int64_t *out)
{
    const char *v = dreq_get(d, name);
    if (v == NULL || *v == '\0') {
        return false;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = x;
    return true;
}

int dreq_flag(const struct dreq *d, const char *name, int def)
{
    int64_t v;
    if (!dreq_int(d, name, &v) || (v != 0 && v != 1)) {
        return def;
    }
    return (int)v;
}
