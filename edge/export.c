/*
 * Playlist and guide exports for players (issue 7, shared/spec/exports.md):
 * the routes outside the device API's prefix (dexport_find, device_int.h),
 * player logins, the account's channel set and the writers the formats
 * share (export_int.h). The formats are in export_xmltv.c, export_m3u.c
 * and export_xc.c; docs/exports.md is the operators' page.
 */
#include "edge/export_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/err.h"
#include "edge/proto.h"

#define CRED_MAX_BYTES 128

/* ---- routes -----------------------------------------------------------------------------------
 */

struct xroute {
    const char *path;
    bool prefix;
    dctx_handler_fn fn;
    const char *label;
};

static const struct xroute xroutes[] = {
    {"/player_api.php", false, dx_xc_player_api, "xc_player_api"},
    {"/get.php", false, dx_xc_get, "xc_get"},
    {"/xmltv.php", false, dx_xc_xmltv, "xc_xmltv"},
    {"/playlist.m3u8", false, dx_playlist, "export_m3u"},
    {"/playlist.m3u", false, dx_playlist, "export_m3u"},
    {"/epg/xmltv.xml", false, dx_xmltv, "export_xmltv"},
    {"/epg/xmltv.xml.gz", false, dx_xmltv, "export_xmltv"},
    {"/streaming/timeshift.php", false, dx_xc_timeshift, "xc_timeshift"},
    {"/live/", true, dx_xc_live, "xc_live"},
    {"/timeshift/", true, dx_xc_timeshift, "xc_timeshift"},
};

/* "/{u}/{p}/{digits}[.ts|.m3u8]": the bare live form Kodi's xc catch-up
 * detection knows (spec §3.7); the password may hold slashes. Only digits
 * as the last segment, so no other path of the edge is taken. */
static bool bare_live(const char *path)
{
    const char *s1 = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    const char *s2 = s1 && s1 > path + 1 ? strrchr(s1 + 1, '/') : NULL;
    if (s2 == NULL || s2 == s1 + 1) {
        return false;
    }
    const char *id = s2 + 1;
    size_t d = strspn(id, "0123456789");
    return d > 0 && d <= 19 &&
           (id[d] == '\0' || strcmp(id + d, ".ts") == 0 || strcmp(id + d, ".m3u8") == 0);
}

dctx_handler_fn dexport_find(const char *path, const char **route_label)
{
    *route_label = NULL;
    for (size_t i = 0; i < sizeof(xroutes) / sizeof(xroutes[0]); i++) {
        const struct xroute *r = &xroutes[i];
        if (r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0 : strcmp(path, r->path) == 0) {
            *route_label = r->label;
            return r->fn;
        }
    }
    if (bare_live(path)) {
        *route_label = "xc_live";
        return dx_xc_live;
    }
    return NULL;
}

/* ---- flat JSON ----------------------------------------------------------------------------------
 */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* The end of the string starting after its opening quote, at the
 * closing quote; NULL if unterminated. */
static const char *string_end(const char *p, const char *end)
{
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL) {
            return NULL;
        }
        size_t bs = 0;
        for (const char *b = q - 1; b >= p && *b == '\\'; b--) {
            bs++;
        }
        if (bs % 2 == 0) {
            return q;
        }
        p = q + 1;
    }
    return NULL;
}

/* The end (one past) of the object or array at p. */
static const char *nested_end(const char *p, const char *end)
{
    unsigned depth = 0;
    while (p < end) {
        char ch = *p;
        if (ch == '"') {
            const char *q = string_end(p + 1, end);
            if (q == NULL) {
                return NULL;
            }
            p = q + 1;
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (++depth > 64) {
                return NULL;
            }
        } else if (ch == '}' || ch == ']') {
            if (depth == 0) {
                return NULL;
            }
            if (--depth == 0) {
                return p + 1;
            }
        }
        p++;
    }
    return NULL;
}

bool ex_json_next(const char **pp, const char *end, struct ex_jv *key, struct ex_jv *val)
{
    const char *p = skip_ws(*pp, end);
    if (p < end && (*p == '{' || *p == ',')) {
        p = skip_ws(p + 1, end);
    }
    if (p >= end || *p != '"') {
        return false;
    }
    const char *q = string_end(p + 1, end);
    if (q == NULL) {
        return false;
    }
    *key = (struct ex_jv){p + 1, (size_t)(q - p - 1), 's'};
    p = skip_ws(q + 1, end);
    if (p >= end || *p != ':') {
        return false;
    }
    p = skip_ws(p + 1, end);
    if (p >= end) {
        return false;
    }
    if (*p == '"') {
        q = string_end(p + 1, end);
        if (q == NULL) {
            return false;
        }
        *val = (struct ex_jv){p + 1, (size_t)(q - p - 1), 's'};
        p = q + 1;
    } else if (*p == '{' || *p == '[') {
        q = nested_end(p, end);
        if (q == NULL) {
            return false;
        }
        *val = (struct ex_jv){p, (size_t)(q - p), 'o'};
        p = q;
    } else {
        q = p;
        while (q < end && *q != ',' && *q != '}' && *q != ' ' && *q != '\n' && *q != '\r' &&
               *q != '\t') {
            q++;
        }
        if (q == p) {
            return false;
        }
        *val = (struct ex_jv){p, (size_t)(q - p), 'n'};
        p = q;
    }
    p = skip_ws(p, end);
    if (p < end && *p != ',' && *p != '}') {
        return false;
    }
    *pp = p;
    return true;
}

void ex_json_get(const char *obj, size_t len, const char *name, struct ex_jv *v)
{
    const char *p = obj, *end = obj + len;
    size_t nlen = strlen(name);
    struct ex_jv k, x;
    v->t = 0;
    while (ex_json_next(&p, end, &k, &x)) {
        if (k.n == nlen && memcmp(k.p, name, nlen) == 0) {
            *v = x;
            return;
        }
    }
}

int64_t ex_jv_int(const struct ex_jv *v, int64_t def)
{
    if (v->t != 'n' || v->n == 0 || v->n > 20) {
        return def;
    }
    size_t i = v->p[0] == '-';
    if (i == v->n) {
        return def;
    }
    int64_t x = 0;
    for (; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9' || x > (INT64_MAX - 9) / 10) {
            return def;
        }
        x = x * 10 + (v->p[i] - '0');
    }
    return v->p[0] == '-' ? -x : x;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        x <<= 4;
        if (ch >= '0' && ch <= '9') {
            x |= (unsigned)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            x |= (unsigned)(ch - 'a' + 10);
        } else if (ch >= 'A' && ch <= 'F') {
            x |= (unsigned)(ch - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = x;
    return 0;
}

static int put_utf8(struct tvmw_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tvmw_buf_append(b, u, n);
}

int ex_jv_text(const struct ex_jv *v, struct tvmw_buf *out)
{
    out->len = 0;
    int rv = tvmw_buf_append(out, "", 0);
    if (v->t != 's') {
        return v->t == 'n' ? tvmw_buf_append(out, v->p, v->n) : rv;
    }
    const char *p = v->p, *end = v->p + v->n;
    while (p < end && rv == 0) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (bs == NULL) {
            return tvmw_buf_append(out, p, (size_t)(end - p));
        }
        rv = tvmw_buf_append(out, p, (size_t)(bs - p));
        p = bs + 1;
        if (p >= end || rv != 0) {
            break;
        }
        char e = *p++, ch = 0;
        switch (e) {
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || hex4(p, &cp) != 0) {
                continue; /* a malformed escape is dropped */
            }
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                continue; /* a lone surrogate is not text */
            }
            rv = put_utf8(out, cp);
            continue;
        }
        default: /* " \ / and anything else stand for themselves */
            ch = e;
            break;
        }
        rv = tvmw_buf_append(out, &ch, 1);
    }
    return rv;
}

bool ex_prog_parse(const uint8_t *v, size_t n, struct ex_prog *p)
{
    const char *s = (const char *)v, *end = s + n;
    struct ex_jv k, x;
    memset(p, 0, sizeof(*p));
    p->begin = p->end = -1;
    if (n == 0 || s[0] != '{') {
        return false;
    }
    while (ex_json_next(&s, end, &k, &x)) {
        /* Dispatch on length and first letters: the names are fixed. */
#define IS(lit) (k.n == sizeof(lit) - 1 && memcmp(k.p, lit, sizeof(lit) - 1) == 0)
        if (IS("id")) {
            p->id = ex_jv_int(&x, 0);
        } else if (IS("begin_time")) {
            p->begin = ex_jv_int(&x, -1);
        } else if (IS("end_time")) {
            p->end = ex_jv_int(&x, -1);
        } else if (IS("name")) {
            p->name = x;
        } else if (IS("short_name")) {
            p->short_name = x;
        } else if (IS("description")) {
            p->desc = x;
        } else if (IS("category")) {
            p->category = x;
        } else if (IS("preview")) {
            p->preview = x;
        } else if (IS("rating")) {
            p->rating = x;
        } else if (IS("meta")) {
            p->meta = x;
        }
#undef IS
    }
    /* the members ended at the closing brace, not at malformed text */
    s = skip_ws(s, end);
    return s < end && *s == '}' && p->begin >= 0 && p->end > p->begin;
}

/* ---- output -----------------------------------------------------------------------------------
 */

void ex_out_init(struct ex_out *o, struct tvmw_buf *dst, bool gzip)
{
    o->dst = dst;
    o->gz = gzip;
    o->failed = false;
    o->n = 0;
    memset(&o->z, 0, sizeof(o->z));
    /* windowBits 15 + 16: a gzip wrapper; level 1: the guide is highly
     * repetitive, so the fastest level already shrinks it ~10x. */
    if (gzip && deflateInit2(&o->z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        o->failed = true;
        o->gz = false;
    }
}

static void flush_stage(struct ex_out *o, bool last)
{
    if (o->failed) {
        o->n = 0;
        return;
    }
    if (!o->gz) {
        if (tvmw_buf_append(o->dst, o->stage, o->n) != 0) {
            o->failed = true;
        }
        o->n = 0;
        return;
    }
    o->z.next_in = o->stage;
    o->z.avail_in = (uInt)o->n;
    int zr;
    do {
        size_t room = deflateBound(&o->z, o->z.avail_in) + 64;
        if (tvmw_buf_reserve(o->dst, room) != 0) {
            o->failed = true;
            break;
        }
        o->z.next_out = (unsigned char *)o->dst->data + o->dst->len;
        o->z.avail_out = (uInt)room;
        zr = deflate(&o->z, last ? Z_FINISH : Z_NO_FLUSH);
        o->dst->len += room - o->z.avail_out;
        o->dst->data[o->dst->len] = '\0';
        if (zr == Z_STREAM_ERROR) {
            o->failed = true;
            break;
        }
    } while (o->z.avail_in > 0 || (last && zr != Z_STREAM_END));
    o->n = 0;
}

void ex_out_put(struct ex_out *o, const void *p, size_t n)
{
    if (n < sizeof(o->stage) - o->n) { /* the common case: it fits */
        memcpy(o->stage + o->n, p, n);
        o->n += n;
        return;
    }
    const char *s = p;
    while (n > 0) {
        size_t room = sizeof(o->stage) - o->n, k = n < room ? n : room;
        memcpy(o->stage + o->n, s, k);
        o->n += k;
        s += k;
        n -= k;
        if (o->n == sizeof(o->stage)) {
            flush_stage(o, false);
        }
    }
    if (o->dst->len > EX_MAX_BODY_BYTES) {
        o->failed = true;
    }
}

void ex_out_puts(struct ex_out *o, const char *s)
{
    ex_out_put(o, s, strlen(s));
}

void ex_out_int(struct ex_out *o, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof(t), "%" PRId64, v);
    ex_out_put(o, t, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (n bytes left) that XML 1.0
 * allows, or 0 for a byte to drop. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        return b >= 0x20 || b == '\t' || b == '\n' || b == '\r';
    }
    size_t len = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    unsigned cp = len == 2   ? ((b & 0x1Fu) << 6) | (s[1] & 0x3Fu)
                  : len == 3 ? ((b & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu)
                             : ((b & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) |
                                   ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000) || cp == 0xFFFE ||
        cp == 0xFFFF) {
        return 0;
    }
    return len;
}

/* Bytes ex_out_xml passes through unchanged: printable ASCII but the
 * five it escapes, tab, LF and CR. Everything else is looked at. */
static const unsigned char xml_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

void ex_out_xml(struct ex_out *o, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    while (p < end) {
        if (xml_plain[*p]) {
            p++;
            continue;
        }
        unsigned char b = *p;
        const char *rep = NULL;
        size_t len = 1;
        if (b >= 0x20 && b < 0x80) {
            rep = b == '&'   ? "&amp;"
                  : b == '<' ? "&lt;"
                  : b == '>' ? "&gt;"
                  : b == '"' ? "&quot;"
                             : "&apos;";
        } else if ((len = xml_char_len(p, (size_t)(end - p))) != 0) {
            p += len;
            continue;
        }
        ex_out_put(o, run, (size_t)(p - run));
        if (rep != NULL) {
            ex_out_puts(o, rep);
        }
        p++;
        run = p;
    }
    ex_out_put(o, run, (size_t)(p - run));
}

/* The display name after the comma: commas, quotes and control
 * characters become spaces, and runs of spaces one (the m3u linters'
 * no-multi-spaces). */
static void m3u_name(struct ex_out *o, const char *s)
{
    bool space = false, any = false;
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    while (p < end) {
        size_t len = 1;
        unsigned char b = *p;
        if (b == ',' || b == '"' || b < 0x20 || b == 0x7F || b == ' ') {
            space = true; /* written before the next character, if any */
        } else if (b < 0x80 || (len = xml_char_len(p, (size_t)(end - p))) != 0) {
            if (space && any) {
                ex_out_put(o, " ", 1);
            }
            ex_out_put(o, p, len);
            space = false;
            any = true;
        }
        p += len ? len : 1;
    }
}

void ex_out_m3u(struct ex_out *o, const char *s, bool name)
{
    if (name) {
        m3u_name(o, s);
        return;
    }
    size_t n = strlen(s);
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    while (p < end) {
        unsigned char b = *p;
        size_t len = 1;
        char rep = 0;
        if (b == '"') {
            rep = '\'';
        } else if (b < 0x20 || b == 0x7F) {
            rep = ' ';
        } else if (b < 0x80 || (len = xml_char_len(p, (size_t)(end - p))) != 0) {
            p += len;
            continue;
        }
        ex_out_put(o, run, (size_t)(p - run));
        if (rep != 0) {
            ex_out_put(o, &rep, 1);
        }
        p++;
        run = p;
    }
    ex_out_put(o, run, (size_t)(p - run));
}

void ex_out_json(struct ex_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    ex_out_put(o, "\"", 1);
    while (p < end) {
        unsigned char b = *p;
        size_t len = 1;
        if (b >= 0x20 && b != '"' && b != '\\' && b < 0x80) {
            p++;
            continue;
        }
        if (b >= 0x80 && (len = xml_char_len(p, (size_t)(end - p))) != 0) {
            p += len;
            continue;
        }
        ex_out_put(o, run, (size_t)(p - run));
        if (b == '"' || b == '\\') {
            char e[2] = {'\\', (char)b};
            ex_out_put(o, e, 2);
        } else if (b < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 15]};
            ex_out_put(o, e, 6);
        } /* invalid UTF-8 is dropped */
        p++;
        run = p;
    }
    ex_out_put(o, run, (size_t)(p - run));
    ex_out_put(o, "\"", 1);
}

void ex_out_urlenc(struct ex_out *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            ex_out_put(o, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            ex_out_put(o, e, 3);
        }
    }
}

int ex_out_finish(struct ex_out *o)
{
    flush_stage(o, true);
    return o->failed ? -1 : 0;
}

void ex_out_close(struct ex_out *o)
{
    if (o->gz) {
        deflateEnd(&o->z);
        o->gz = false;
    }
}

/* ---- login and the account's channels -------------------------------------------------------- */

/* A credential parameter: present, non-empty, bounded. */
static const char *cred(struct dctx *c, const char *name)
{
    const char *v = dreq_get(&c->q, name);
    return v != NULL && v[0] != '\0' && strlen(v) <= CRED_MAX_BYTES ? v : NULL;
}

enum ex_auth ex_login(struct dctx *c, const char **user, const char **pass)
{
    if (*user == NULL) {
        *user = cred(c, "username");
        if (*user == NULL) {
            *user = cred(c, "abonement");
        }
    }
    if (*pass == NULL) {
        *pass = cred(c, "password");
    }
    if (*user == NULL || *pass == NULL) {
        return EX_AUTH_NONE;
    }
    if (dctx_login_password(c, *user, *pass) != 0) {
        return EX_AUTH_INVALID;
    }
    /* dctx_login_password lets DEBT, BLOCK and WAIT accounts in (devices
     * show them their state); a playlist is only for an active one. */
    return rec_int(c->account, "active", 1) ? EX_AUTH_OK : EX_AUTH_INACTIVE;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

bool ex_entitled(struct dctx *c, uint64_t cid)
{
    uint64_t tariffs[DE_MAX_TARIFFS];
    size_t nt = dm_account_tariffs(c, tariffs, DE_MAX_TARIFFS);
    for (size_t i = 0; i < nt; i++) {
        if (dm_rel_has(c, "tar_chan", tariffs[i], cid)) {
            json_t *ch = dm_get_own(c, EDGE_DB_CHANNELS, cid);
            bool ok = ch != NULL && rec_int(ch, "enabled", 1);
            json_decref(ch);
            return ok;
        }
    }
    return false;
}

struct ent_set {
    uint64_t *ids;
    size_t n;
};

struct chan_scan {
    struct ex_acc *a;
    const struct ent_set *ent;
};

static int chan_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    struct chan_scan *s = arg;
    struct ex_acc *a = s->a;
    if (key_len != 8 || a->n == EX_MAX_CHANNELS) {
        return 0;
    }
    uint64_t id = tvmw_get_be64(key);
    if (bsearch(&id, s->ent->ids, s->ent->n, sizeof(id), cmp_u64) == NULL) {
        return 0;
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (o == NULL || (uint64_t)rec_int(o, "client_id", 0) != a->c->client_id ||
        !rec_int(o, "enabled", 1)) {
        json_decref(o);
        return 0;
    }
    int64_t cat = rec_int(o, "category_id", 0);
    a->ch[a->n++] = (struct ex_chan){
        .id = id,
        .number = rec_int(o, "number", 0),
        .archive_days = rec_int(o, "archive_days", 0),
        .created_s = rec_int(o, "created_ms", 0) / 1000,
        .category_id = cat > 0 ? (uint64_t)cat : 0,
        .rec = o,
    };
    return 0;
}

static int cmp_chan(const void *x, const void *y)
{
    const struct ex_chan *a = x, *b = y;
    if (a->number != b->number) {
        return a->number < b->number ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

static int cmp_cat(const void *x, const void *y)
{
    const struct ex_cat *a = x, *b = y;
    if (a->order != b->order) {
        return a->order < b->order ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The tenant part of channel ids: settings.export_slug when it is a valid
 * id part, else the client's name reduced to [-a-z0-9], else "client<id>". */
static void make_slug(struct dctx *c, char *out, size_t cap)
{
    const char *set = rec_str(json_object_get(c->client, "settings"), "export_slug");
    size_t n = strlen(set);
    if (n > 0 && n < cap &&
        strspn(set, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789-") == n) {
        memcpy(out, set, n + 1);
        return;
    }
    size_t k = 0;
    for (const char *p = rec_str(c->client, "name"); *p && k + 1 < cap; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch) && ch < 0x80) {
            out[k++] = (char)tolower(ch);
        } else if (k > 0 && out[k - 1] != '-') {
            out[k++] = '-';
        }
    }
    while (k > 0 && out[k - 1] == '-') {
        k--;
    }
    out[k] = '\0';
    if (k == 0) {
        snprintf(out, cap, "client%" PRIu64, c->client_id);
    }
}

/* Scheme, host and port of the request, for links back to this edge. */
static void request_base(struct dctx *c, struct ex_acc *a)
{
    const char *host = tvmw_http_header(c->http, "Host");
    const char *proto = tvmw_http_header(c->http, "X-Forwarded-Proto");
    if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(a->host) ||
        strpbrk(host, "/?#\"'<>\\ ,@") != NULL) {
        host = c->dev->self->http_address;
    }
    a->https = proto != NULL && strcmp(proto, "https") == 0;
    snprintf(a->base, sizeof(a->base), "%s://%s", a->https ? "https" : "http", host);
    const char *colon = strrchr(host, ':');
    if (colon != NULL && strchr(host, ']') == NULL && strspn(colon + 1, "0123456789") > 0 &&
        strlen(colon + 1) < sizeof(a->port)) {
        snprintf(a->host, sizeof(a->host), "%.*s", (int)(colon - host), host);
        snprintf(a->port, sizeof(a->port), "%s", colon + 1);
    } else {
        snprintf(a->host, sizeof(a->host), "%s", host);
        snprintf(a->port, sizeof(a->port), "%s", a->https ? "443" : "80");
    }
}

int ex_acc_load(struct dctx *c, const char *user, const char *pass, bool channels, struct ex_acc *a)
{
    memset(a, 0, sizeof(*a));
    a->c = c;
    a->user = user;
    a->pass = pass;
    tvmw_buf_init(&a->scratch, 0);
    make_slug(c, a->slug, sizeof(a->slug));
    request_base(c, a);
    if (!channels) {
        return 0;
    }
    a->ch = calloc(EX_MAX_CHANNELS, sizeof(*a->ch));
    a->cat = calloc(EX_MAX_CATEGORIES, sizeof(*a->cat));
    uint64_t *ent = calloc(EX_MAX_CHANNELS, sizeof(*ent));
    if (a->ch == NULL || a->cat == NULL || ent == NULL) {
        free(ent);
        return -ENOMEM;
    }
    /* Entitled: linked to one of the account's tariffs. */
    uint64_t tariffs[DE_MAX_TARIFFS];
    size_t nt = dm_account_tariffs(c, tariffs, DE_MAX_TARIFFS), ne = 0;
    for (size_t i = 0; i < nt && ne < EX_MAX_CHANNELS; i++) {
        ne += dm_rel(c, "tar_chan", tariffs[i], ent + ne, EX_MAX_CHANNELS - ne);
    }
    qsort(ent, ne, sizeof(*ent), cmp_u64);
    struct ent_set es = {ent, ne};
    struct chan_scan cs = {a, &es};
    /* The scan is in key (id) order, so duplicates of ent do not matter. */
    if (ne > 0) {
        edge_store_scan(&c->r, EDGE_DB_CHANNELS, NULL, 0, NULL, 0, chan_one, &cs);
    }
    free(ent);
    qsort(a->ch, a->n, sizeof(*a->ch), cmp_chan);
    /* Categories of those channels (of the same client). */
    for (size_t i = 0; i < a->n; i++) {
        uint64_t cat = a->ch[i].category_id;
        if (cat == 0 || ex_acc_cat(a, cat) != NULL) {
            continue;
        }
        json_t *rec = a->n_cat < EX_MAX_CATEGORIES ? dm_get_own(c, EDGE_DB_CATEGORIES, cat) : NULL;
        if (rec == NULL) {
            a->ch[i].category_id = 0;
            continue;
        }
        a->cat[a->n_cat++] = (struct ex_cat){cat, rec_int(rec, "order", 0), rec};
    }
    qsort(a->cat, a->n_cat, sizeof(*a->cat), cmp_cat);
    return 0;
}

void ex_acc_close(struct ex_acc *a)
{
    for (size_t i = 0; a->ch != NULL && i < a->n; i++) {
        json_decref((json_t *)a->ch[i].rec);
    }
    for (size_t i = 0; a->cat != NULL && i < a->n_cat; i++) {
        json_decref(a->cat[i].rec);
    }
    free(a->ch);
    free(a->cat);
    tvmw_buf_close(&a->scratch);
    a->ch = NULL;
    a->cat = NULL;
    a->n = a->n_cat = 0;
}

const struct ex_cat *ex_acc_cat(const struct ex_acc *a, uint64_t id)
{
    for (size_t i = 0; i < a->n_cat; i++) {
        if (a->cat[i].id == id) {
            return &a->cat[i];
        }
    }
    return NULL;
}

void ex_chan_xmltv_id(const struct ex_acc *a, const struct ex_chan *ch, char out[96])
{
    snprintf(out, 96, "%" PRIu64 ".%s", ch->id, a->slug);
}

void ex_chan_icon(const struct ex_acc *a, const struct ex_chan *ch, char *out, size_t cap)
{
    const char *icon = rec_str(ch->rec, "icon");
    if (strncmp(icon, "http://", 7) == 0 || strncmp(icon, "https://", 8) == 0) {
        snprintf(out, cap, "%s", icon);
    } else if (icon[0] == '/' && icon[1] != '/') {
        snprintf(out, cap, "%s%s", a->base, icon);
    } else {
        out[0] = '\0';
    }
    if (strpbrk(out, "\"\r\n ") != NULL) {
        out[0] = '\0';
    }
}

void ex_fmt_datetime(int64_t t, char out[24])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 24, "%Y-%m-%d %H:%M:%S", &tm);
}

void ex_reply_empty(struct dctx *c, unsigned status)
{
    c->raw.len = 0;
    c->raw_type = "text/plain; charset=utf-8";
    c->raw_status = status;
}

void ex_reply_raw(struct dctx *c, unsigned status, const char *type)
{
    c->raw_type = type;
    c->raw_status = status;
}
