/*
 * XMLTV reader (see xmltv.h for the contract and the rules on hostile
 * input). libxml2's reader pulls its bytes through read_input(), which
 * inflates gzip on the fly and enforces the size limit, so neither the
 * compressed nor the decompressed document is ever held whole.
 */
#include "common/xmltv.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <zlib.h>

#include "common/err.h"

#define IN_BUF_BYTES 65536

/* ---- input: plain or gzip ------------------------------------------------------ */

struct input {
    int fd;
    bool started;
    bool gzip;
    bool z_ready;  /* inflateInit2 done */
    bool z_member; /* inside a gzip member (not at its end) */
    bool eof;      /* read() returned 0 */
    z_stream z;
    uint8_t buf[IN_BUF_BYTES];
    size_t buf_off, buf_len; /* plain input: bytes in buf not yet handed out */
    uint64_t bytes_in, bytes_xml, max_xml, every, next_progress;
    int error; /* 0, TVMW_EIO, TVMW_ETOOBIG, TVMW_EMALFORMED */
    char why[160];
    const struct tvmw_xmltv_cbs *cbs;
};

static void input_fail(struct input *in, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void input_fail(struct input *in, int code, const char *fmt, ...)
{
    if (in->error != 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->why, sizeof(in->why), fmt, ap);
    va_end(ap);
    in->error = code;
}

/* Reads more raw bytes into buf (only when it is empty). */
static int fill(struct input *in)
{
    ssize_t n;
    do {
        n = read(in->fd, in->buf, sizeof(in->buf));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        input_fail(in, TVMW_EIO, "read error: %s", strerror(errno));
        return -1;
    }
    if (n == 0) {
        in->eof = true;
    }
    in->buf_off = 0;
    in->buf_len = (size_t)n;
    in->bytes_in += (uint64_t)n;
    return 0;
}

static int start(struct input *in)
{
    in->started = true;
    if (fill(in) != 0) {
        return -1;
    }
    in->gzip = in->buf_len >= 2 && in->buf[0] == 0x1f && in->buf[1] == 0x8b;
    if (in->gzip) {
        memset(&in->z, 0, sizeof(in->z));
        if (inflateInit2(&in->z, 15 + 16) != Z_OK) {
            input_fail(in, -ENOMEM, "cannot initialise zlib");
            return -1;
        }
        in->z_ready = true;
        in->z_member = true;
        in->z.next_in = in->buf;
        in->z.avail_in = (uInt)in->buf_len;
    }
    return 0;
}

/* Up to len decompressed bytes into out; 0 at the end of the input. */
static int inflate_some(struct input *in, uint8_t *out, size_t len)
{
    for (;;) {
        if (in->z.avail_in == 0 && !in->eof) {
            if (fill(in) != 0) {
                return -1;
            }
            in->z.next_in = in->buf;
            in->z.avail_in = (uInt)in->buf_len;
        }
        if (!in->z_member) {
            /* Between members: another member, or the end. gzip(1) also
             * ignores trailing bytes that do not start a member (padding). */
            if (in->z.avail_in == 0 && in->eof) {
                return 0;
            }
            if (in->z.avail_in == 0) {
                continue;
            }
            if (in->z.next_in[0] != 0x1f) {
                in->z.avail_in = 0;
                in->eof = true;
                return 0;
            }
            inflateReset(&in->z);
            in->z_member = true;
        }
        in->z.next_out = out;
        in->z.avail_out = (uInt)len;
        int rc = inflate(&in->z, Z_NO_FLUSH);
        size_t produced = len - in->z.avail_out;
        if (rc == Z_STREAM_END) {
            in->z_member = false;
        } else if (rc == Z_BUF_ERROR) {
            if (in->eof && in->z.avail_in == 0) {
                input_fail(in, TVMW_EMALFORMED, "gzip data is truncated");
                return -1;
            }
        } else if (rc != Z_OK) {
            input_fail(in, TVMW_EMALFORMED, "gzip data is corrupt: %s",
                       in->z.msg ? in->z.msg : "inflate failed");
            return -1;
        }
        if (produced > 0) {
            return (int)produced;
        }
        if (in->eof && in->z.avail_in == 0 && in->z_member) {
            input_fail(in, TVMW_EMALFORMED, "gzip data is truncated");
            return -1;
        }
    }
}

/* libxml2's xmlInputReadCallback: bytes, 0 at the end, -1 on error. */
static int read_input(void *ctx, char *out, int len)
{
    struct input *in = ctx;
    int n;
    if (in->error != 0 || len <= 0) {
        return in->error != 0 ? -1 : 0;
    }
    if (!in->started && start(in) != 0) {
        return -1;
    }
    if (in->gzip) {
        n = inflate_some(in, (uint8_t *)out, (size_t)len);
    } else {
        if (in->buf_off == in->buf_len && !in->eof && fill(in) != 0) {
            return -1;
        }
        size_t k = in->buf_len - in->buf_off;
        if (k > (size_t)len) {
            k = (size_t)len;
        }
        memcpy(out, in->buf + in->buf_off, k);
        in->buf_off += k;
        n = (int)k;
    }
    if (n < 0) {
        return -1;
    }
    in->bytes_xml += (uint64_t)n;
    if (in->max_xml != 0 && in->bytes_xml > in->max_xml) {
        input_fail(in, TVMW_ETOOBIG, "the document is over %llu bytes",
                   (unsigned long long)in->max_xml);
        return -1;
    }
    if (in->every != 0 && in->bytes_xml >= in->next_progress) {
        in->next_progress = in->bytes_xml + in->every;
        if (in->cbs->progress != NULL) {
            in->cbs->progress(in->cbs->arg, in->bytes_in, in->bytes_xml);
        }
    }
    return n;
}

static int close_input(void *ctx)
{
    (void)ctx; /* the caller owns the descriptor */
    return 0;
}

/* ---- bounded text fields ----------------------------------------------------- */

struct field {
    char *s;
    size_t len, cap; /* cap: bytes of text, s has cap + 1 */
    bool set;        /* seen (the first occurrence wins) */
    bool full;
};

static int field_init(struct field *f, size_t cap)
{
    f->s = malloc(cap + 1);
    f->cap = cap;
    f->len = 0;
    f->set = false;
    f->full = false;
    if (f->s != NULL) {
        f->s[0] = '\0';
    }
    return f->s != NULL ? 0 : -ENOMEM;
}

static void field_reset(struct field *f)
{
    f->len = 0;
    f->set = false;
    f->full = false;
    f->s[0] = '\0';
}

/* Appends, cutting at the last whole UTF-8 character when over cap. */
static void field_append(struct field *f, const char *p, size_t n)
{
    if (f->full) {
        return;
    }
    if (n > f->cap - f->len) {
        n = f->cap - f->len;
        f->full = true;
        /* Back off to a character boundary: drop a trailing partial
         * sequence (continuation bytes and the lead byte they follow). */
        size_t end = n, back = 0;
        while (end > 0 && back < 4 && ((unsigned char)p[end - 1] & 0xC0) == 0x80) {
            end--;
            back++;
        }
        if (end > 0 && ((unsigned char)p[end - 1] & 0x80) != 0) {
            unsigned char lead = (unsigned char)p[end - 1];
            size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
            if (back + 1 < need) {
                n = end - 1;
            }
        }
    }
    memcpy(f->s + f->len, p, n);
    f->len += n;
    f->s[f->len] = '\0';
}

static void field_set(struct field *f, const char *p)
{
    field_reset(f);
    f->set = true;
    field_append(f, p, strlen(p));
}

/* Strips leading and trailing XML white space. */
static void field_trim(struct field *f)
{
    size_t a = 0, b = f->len;
    while (a < b && (f->s[a] == ' ' || f->s[a] == '\t' || f->s[a] == '\n' || f->s[a] == '\r')) {
        a++;
    }
    while (b > a && (f->s[b - 1] == ' ' || f->s[b - 1] == '\t' || f->s[b - 1] == '\n' ||
                     f->s[b - 1] == '\r')) {
        b--;
    }
    if (a > 0) {
        memmove(f->s, f->s + a, b - a);
    }
    f->len = b - a;
    f->s[f->len] = '\0';
}

/* ---- the parse ------------------------------------------------------------------ */

enum {
    F_CHANNEL,
    F_TITLE,
    F_TITLE_LANG,
    F_SUB,
    F_DESC,
    F_CAT,
    F_ICON,
    F_RATING,
    F_DATE,
    F_NS,
    F_ONSCREEN,
    F_START,
    F_STOP,
    F_CH_ID,
    F_CH_NAME,
    F_CH_ICON,
    F_COUNT
};

static const size_t field_caps[F_COUNT] = {
    [F_CHANNEL] = TVMW_XMLTV_MAX_ID_BYTES,
    [F_TITLE] = TVMW_XMLTV_TITLE_BYTES,
    [F_TITLE_LANG] = TVMW_XMLTV_SHORT_BYTES,
    [F_SUB] = TVMW_XMLTV_TITLE_BYTES,
    [F_DESC] = TVMW_XMLTV_DESC_BYTES,
    [F_CAT] = TVMW_XMLTV_SHORT_BYTES,
    [F_ICON] = TVMW_XMLTV_URL_BYTES,
    [F_RATING] = TVMW_XMLTV_SHORT_BYTES,
    [F_DATE] = TVMW_XMLTV_SHORT_BYTES,
    [F_NS] = TVMW_XMLTV_SHORT_BYTES,
    [F_ONSCREEN] = TVMW_XMLTV_SHORT_BYTES,
    [F_START] = 64,
    [F_STOP] = 64,
    [F_CH_ID] = TVMW_XMLTV_MAX_ID_BYTES,
    [F_CH_NAME] = TVMW_XMLTV_TITLE_BYTES,
    [F_CH_ICON] = TVMW_XMLTV_URL_BYTES,
};

struct parser {
    xmlTextReaderPtr r;
    const struct tvmw_xmltv_cbs *cbs;
    struct tvmw_xmltv_stats *st;
    struct field f[F_COUNT];
    enum { IN_NONE, IN_PROGRAMME, IN_CHANNEL } in;
    unsigned long line; /* of the open programme or channel */
    const char *bad;    /* the open programme will be skipped, why */
    char bad_buf[128];  /* room for a formatted reason */
    struct field *text; /* collecting text into this field */
    int text_depth;     /* depth of the element whose text it is */
    bool in_rating;     /* inside <rating> (its <value> is the text) */
    bool in_episode_ns; /* which episode-num system is open */
    bool seen_root;
    int xml_error; /* first error from libxml2 */
    int xml_code;  /* its xmlParserErrors code */
    char xml_why[200];
    int rv; /* a callback's non-zero return, or our error */
    char why[200];
};

static void parse_fail(struct parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void parse_fail(struct parser *p, int code, const char *fmt, ...)
{
    if (p->rv != 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, sizeof(p->why), fmt, ap);
    va_end(ap);
    p->rv = code;
}

static void on_xml_error(void *arg, xmlErrorPtr e)
{
    struct parser *p = arg;
    if (e == NULL || e->level < XML_ERR_ERROR || p->xml_error != 0) {
        return; /* warnings do not stop the parse */
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "%s", e->message ? e->message : "XML error");
    size_t n = strlen(msg);
    for (size_t i = 0; i < n; i++) {
        if (msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t') {
            msg[i] = ' '; /* one line in logs and answers */
        }
    }
    while (n > 0 && msg[n - 1] == ' ') {
        msg[--n] = '\0';
    }
    snprintf(p->xml_why, sizeof(p->xml_why), "line %d: %s", e->line, msg);
    p->xml_error = 1;
    p->xml_code = e->code;
}

static void skip(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void skip(struct parser *p, const char *fmt, ...)
{
    if (p->bad != NULL) {
        return; /* the first reason is the one reported */
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->bad_buf, sizeof(p->bad_buf), fmt, ap);
    va_end(ap);
    p->bad = p->bad_buf;
}

/* An attribute of the current element into f; false (and the element
 * marked bad) when it is over the limit. */
static bool get_attr(struct parser *p, const char *name, struct field *f)
{
    xmlChar *v = xmlTextReaderGetAttribute(p->r, (const xmlChar *)name);
    field_reset(f);
    if (v == NULL) {
        return true;
    }
    size_t n = strlen((const char *)v);
    bool ok = n <= TVMW_XMLTV_MAX_ATTR_BYTES && n <= f->cap;
    if (n > TVMW_XMLTV_MAX_ATTR_BYTES) {
        skip(p, "attribute %s is over %d bytes", name, TVMW_XMLTV_MAX_ATTR_BYTES);
    } else if (!ok) {
        skip(p, "attribute %s is over %zu bytes", name, f->cap);
    } else {
        field_set(f, (const char *)v);
    }
    xmlFree(v);
    return ok;
}

static void open_text(struct parser *p, struct field *f, int depth)
{
    if (f->set) {
        return; /* the first one wins */
    }
    f->set = true;
    p->text = f;
    p->text_depth = depth;
}

/* The line of the current node (the parser's own line is ahead of it). */
static unsigned long node_line(struct parser *p)
{
    xmlNodePtr n = xmlTextReaderCurrentNode(p->r);
    long line = n != NULL ? xmlGetLineNo(n) : -1;
    return line > 0 ? (unsigned long)line : (unsigned long)xmlTextReaderGetParserLineNumber(p->r);
}

static void begin_programme(struct parser *p)
{
    for (int i = F_CHANNEL; i <= F_STOP; i++) {
        field_reset(&p->f[i]);
    }
    p->in = IN_PROGRAMME;
    p->bad = NULL;
    p->line = node_line(p);
    get_attr(p, "start", &p->f[F_START]);
    get_attr(p, "stop", &p->f[F_STOP]);
    get_attr(p, "channel", &p->f[F_CHANNEL]);
}

static void end_programme(struct parser *p)
{
    struct tvmw_xmltv_programme pr = {0};
    p->in = IN_NONE;
    p->text = NULL;
    for (int i = F_CHANNEL; i <= F_STOP; i++) {
        field_trim(&p->f[i]);
    }
    if (p->bad == NULL && p->f[F_CHANNEL].len == 0) {
        skip(p, "no channel attribute");
    }
    if (p->bad == NULL && tvmw_xmltv_parse_time(p->f[F_START].s, &pr.start_s) != 0) {
        skip(p, p->f[F_START].len ? "bad start time" : "no start attribute");
    }
    if (p->bad == NULL && p->f[F_STOP].len > 0 &&
        tvmw_xmltv_parse_time(p->f[F_STOP].s, &pr.stop_s) != 0) {
        skip(p, "bad stop time");
    }
    if (p->bad == NULL && p->f[F_STOP].len > 0 && pr.stop_s <= pr.start_s) {
        skip(p, "stop is not after start");
    }
    if (p->bad == NULL && p->f[F_TITLE].len == 0) {
        skip(p, "no title");
    }
    if (p->bad != NULL) {
        p->st->skipped++;
        if (p->cbs->skipped != NULL) {
            p->cbs->skipped(p->cbs->arg, p->line, p->bad);
        }
        return;
    }
    pr.channel = p->f[F_CHANNEL].s;
    pr.title = p->f[F_TITLE].s;
    pr.title_lang = p->f[F_TITLE_LANG].s;
    pr.sub_title = p->f[F_SUB].s;
    pr.desc = p->f[F_DESC].s;
    pr.category = p->f[F_CAT].s;
    pr.icon = p->f[F_ICON].s;
    pr.rating = p->f[F_RATING].s;
    pr.date = p->f[F_DATE].s;
    pr.episode_xmltv_ns = p->f[F_NS].s;
    pr.episode_onscreen = p->f[F_ONSCREEN].s;
    pr.line = p->line;
    p->st->programmes++;
    int rv = p->cbs->programme(p->cbs->arg, &pr);
    if (rv != 0) {
        parse_fail(p, rv, "stopped by the importer");
    }
}

static void begin_channel(struct parser *p)
{
    for (int i = F_CH_ID; i <= F_CH_ICON; i++) {
        field_reset(&p->f[i]);
    }
    p->in = IN_CHANNEL;
    p->bad = NULL;
    p->line = node_line(p);
    get_attr(p, "id", &p->f[F_CH_ID]);
}

static void end_channel(struct parser *p)
{
    p->in = IN_NONE;
    p->text = NULL;
    for (int i = F_CH_ID; i <= F_CH_ICON; i++) {
        field_trim(&p->f[i]);
    }
    if (p->bad != NULL || p->f[F_CH_ID].len == 0) {
        return; /* a channel entry is only informative */
    }
    struct tvmw_xmltv_channel c = {.id = p->f[F_CH_ID].s,
                                   .display_name = p->f[F_CH_NAME].s,
                                   .icon = p->f[F_CH_ICON].s,
                                   .line = p->line};
    p->st->channels++;
    if (p->cbs->channel != NULL) {
        int rv = p->cbs->channel(p->cbs->arg, &c);
        if (rv != 0) {
            parse_fail(p, rv, "stopped by the importer");
        }
    }
}

static void on_element(struct parser *p, const char *name, int depth, bool empty)
{
    if (depth == 0) {
        if (strcmp(name, "tv") != 0) {
            parse_fail(p, TVMW_EMALFORMED, "the root element is <%.40s>, not <tv>", name);
        }
        p->seen_root = true;
        return;
    }
    if (depth == 1) {
        if (strcmp(name, "programme") == 0) {
            begin_programme(p);
            if (empty) {
                end_programme(p);
            }
        } else if (strcmp(name, "channel") == 0) {
            begin_channel(p);
            if (empty) {
                end_channel(p);
            }
        }
        return;
    }
    if (p->in == IN_CHANNEL && depth == 2) {
        if (strcmp(name, "display-name") == 0) {
            open_text(p, &p->f[F_CH_NAME], depth);
        } else if (strcmp(name, "icon") == 0 && !p->f[F_CH_ICON].set) {
            xmlChar *src = xmlTextReaderGetAttribute(p->r, (const xmlChar *)"src");
            if (src != NULL && strlen((const char *)src) <= p->f[F_CH_ICON].cap) {
                field_set(&p->f[F_CH_ICON], (const char *)src); /* longer: dropped */
            }
            xmlFree(src);
        }
    } else if (p->in == IN_PROGRAMME && depth == 2) {
        p->in_rating = false;
        if (strcmp(name, "title") == 0) {
            if (!p->f[F_TITLE].set) {
                xmlChar *lang = xmlTextReaderGetAttribute(p->r, (const xmlChar *)"lang");
                if (lang != NULL && strlen((const char *)lang) <= TVMW_XMLTV_SHORT_BYTES) {
                    field_set(&p->f[F_TITLE_LANG], (const char *)lang);
                }
                xmlFree(lang);
            }
            open_text(p, &p->f[F_TITLE], depth);
        } else if (strcmp(name, "sub-title") == 0) {
            open_text(p, &p->f[F_SUB], depth);
        } else if (strcmp(name, "desc") == 0) {
            open_text(p, &p->f[F_DESC], depth);
        } else if (strcmp(name, "category") == 0) {
            open_text(p, &p->f[F_CAT], depth);
        } else if (strcmp(name, "date") == 0) {
            open_text(p, &p->f[F_DATE], depth);
        } else if (strcmp(name, "rating") == 0) {
            p->in_rating = !empty;
        } else if (strcmp(name, "episode-num") == 0) {
            xmlChar *sys = xmlTextReaderGetAttribute(p->r, (const xmlChar *)"system");
            bool ns = sys != NULL && strcmp((const char *)sys, "xmltv_ns") == 0;
            xmlFree(sys);
            open_text(p, &p->f[ns ? F_NS : F_ONSCREEN], depth);
        } else if (strcmp(name, "icon") == 0 && !p->f[F_ICON].set) {
            struct field *f = &p->f[F_ICON];
            xmlChar *src = xmlTextReaderGetAttribute(p->r, (const xmlChar *)"src");
            if (src != NULL && strlen((const char *)src) <= f->cap) {
                field_set(f, (const char *)src); /* a longer URL is dropped, not cut */
            } else if (src != NULL && strlen((const char *)src) > TVMW_XMLTV_MAX_ATTR_BYTES) {
                skip(p, "attribute src is over %d bytes", TVMW_XMLTV_MAX_ATTR_BYTES);
            }
            xmlFree(src);
        }
        if (empty && p->text != NULL && p->text_depth == depth) {
            p->text = NULL;
        }
    } else if (p->in == IN_PROGRAMME && depth == 3 && p->in_rating && strcmp(name, "value") == 0) {
        open_text(p, &p->f[F_RATING], depth);
        if (empty) {
            p->text = NULL;
        }
    }
}

static void on_end(struct parser *p, int depth)
{
    if (p->text != NULL && depth == p->text_depth) {
        p->text = NULL;
    }
    if (depth == 2) {
        p->in_rating = false;
    }
    if (depth == 1 && p->in == IN_PROGRAMME) {
        end_programme(p);
    } else if (depth == 1 && p->in == IN_CHANNEL) {
        end_channel(p);
    }
}

static void run(struct parser *p)
{
    int rc;
    while (p->rv == 0 && (rc = xmlTextReaderRead(p->r)) == 1) {
        int type = xmlTextReaderNodeType(p->r);
        int depth = xmlTextReaderDepth(p->r);
        if (depth > TVMW_XMLTV_MAX_DEPTH) {
            parse_fail(p, TVMW_EMALFORMED, "line %d: elements nested deeper than %d",
                       xmlTextReaderGetParserLineNumber(p->r), TVMW_XMLTV_MAX_DEPTH);
            break;
        }
        const char *name = (const char *)xmlTextReaderConstName(p->r);
        switch (type) {
        case XML_READER_TYPE_ELEMENT:
            on_element(p, name ? name : "", depth, xmlTextReaderIsEmptyElement(p->r) == 1);
            break;
        case XML_READER_TYPE_END_ELEMENT:
            on_end(p, depth);
            break;
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
        case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
            if (p->text != NULL && depth == p->text_depth + 1) {
                const char *v = (const char *)xmlTextReaderConstValue(p->r);
                if (v != NULL) {
                    field_append(p->text, v, strlen(v));
                }
            }
            break;
        case XML_READER_TYPE_ENTITY_REFERENCE:
        case XML_READER_TYPE_ENTITY:
            parse_fail(p, TVMW_EMALFORMED,
                       "line %d: entity reference &%.40s; (only the predefined entities are "
                       "allowed)",
                       xmlTextReaderGetParserLineNumber(p->r), name ? name : "?");
            break;
        default:
            break;
        }
    }
    if (p->rv == 0 && rc != 0 && !p->seen_root && p->xml_code == XML_ERR_DOCUMENT_EMPTY) {
        parse_fail(p, TVMW_EMALFORMED, "not an XML document (no element at the start)");
    }
    if (p->rv == 0 && rc != 0) {
        parse_fail(p, TVMW_EMALFORMED, "%s", p->xml_error ? p->xml_why : "not well-formed XML");
    }
    if (p->rv == 0 && p->xml_error) {
        parse_fail(p, TVMW_EMALFORMED, "%s", p->xml_why);
    }
    if (p->rv == 0 && !p->seen_root) {
        parse_fail(p, TVMW_EMALFORMED, "no <tv> element");
    }
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* No document we read may pull in another file or URL, whatever options
 * a future caller passes: every external entity or DTD load fails. */
static xmlParserInputPtr refuse_external(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

static void init_parser(void)
{
    xmlInitParser();
    xmlSetExternalEntityLoader(refuse_external);
}

void tvmw_xmltv_init(void)
{
    pthread_once(&init_once, init_parser);
}

int tvmw_xmltv_parse_fd(int fd, const struct tvmw_xmltv_limits *limits,
                        const struct tvmw_xmltv_cbs *cbs, struct tvmw_xmltv_stats *st, char *err,
                        size_t err_len)
{
    struct input *in = calloc(1, sizeof(*in));
    struct parser p = {.cbs = cbs, .st = st};
    int rv = 0;
    memset(st, 0, sizeof(*st));
    snprintf(err, err_len, "%s", "");
    if (in == NULL) {
        return -ENOMEM;
    }
    tvmw_xmltv_init();
    in->fd = fd;
    in->max_xml = limits ? limits->max_xml_bytes : 0;
    in->every = limits ? limits->progress_every_bytes : 0;
    in->next_progress = in->every;
    in->cbs = cbs;
    for (int i = 0; i < F_COUNT; i++) {
        if (field_init(&p.f[i], field_caps[i]) != 0) {
            rv = -ENOMEM;
            goto out_free_fields;
        }
    }
    /* No NOENT (entities stay references, refused above), no DTDLOAD, no
     * HUGE (libxml2's limits stay on), no network; CDATA comes as text. */
    p.r = xmlReaderForIO(read_input, close_input, in, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOBLANKS |
                             XML_PARSE_COMPACT | XML_PARSE_BIG_LINES);
    if (p.r == NULL) {
        rv = in->error != 0 ? in->error : TVMW_EMALFORMED;
        snprintf(err, err_len, "%s", in->error != 0 ? in->why : "cannot start the XML reader");
        goto out_free_fields;
    }
    xmlTextReaderSetStructuredErrorHandler(p.r, on_xml_error, &p);
    run(&p);
    if (in->error == 0 && in->bytes_xml == 0) {
        rv = TVMW_EMALFORMED;
        snprintf(err, err_len, "the document is empty");
    } else if (in->error != 0) {
        /* The input's own failure explains the parser's complaint. */
        rv = in->error;
        snprintf(err, err_len, "%s", in->why);
    } else if (p.rv != 0) {
        rv = p.rv;
        snprintf(err, err_len, "%s", p.why);
    }
    xmlFreeTextReader(p.r);
out_free_fields:
    for (int i = 0; i < F_COUNT; i++) {
        free(p.f[i].s);
    }
    st->bytes_in = in->bytes_in;
    st->bytes_xml = in->bytes_xml;
    st->gzip = in->gzip;
    if (in->z_ready) {
        inflateEnd(&in->z);
    }
    free(in);
    return rv;
}

/* ---- time ------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (any year >= 1). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = y / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int tvmw_xmltv_parse_time(const char *s, int64_t *out)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h = 0, mi = 0, sec = 0;
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    if ((n != 8 && n != 10 && n != 12 && n != 14) || !digits(s, 4, &y) || !digits(s + 4, 2, &mo) ||
        !digits(s + 6, 2, &d) || (n >= 10 && !digits(s + 8, 2, &h)) ||
        (n >= 12 && !digits(s + 10, 2, &mi)) || (n >= 14 && !digits(s + 12, 2, &sec))) {
        return TVMW_EMALFORMED;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1900 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) || h > 23 ||
        mi > 59 || sec > 59) {
        return TVMW_EMALFORMED;
    }
    const char *z = s + n;
    while (*z == ' ') {
        z++;
    }
    int64_t offset = 0;
    if (*z == '+' || *z == '-') {
        unsigned oh, om;
        if (!digits(z + 1, 2, &oh) || !digits(z + 3, 2, &om) || oh > 14 || om > 59) {
            return TVMW_EMALFORMED;
        }
        offset = (int64_t)(oh * 3600 + om * 60) * (*z == '-' ? -1 : 1);
        z += 5;
    } else if (strncmp(z, "UTC", 3) == 0 || strncmp(z, "GMT", 3) == 0) {
        z += 3;
    } else if (*z == 'Z') {
        z += 1;
    }
    while (*z == ' ') {
        z++;
    }
    if (*z != '\0') {
        return TVMW_EMALFORMED;
    }
    *out = days_from_civil(y, mo, d) * 86400 + (int64_t)(h * 3600 + mi * 60 + sec) - offset;
    return 0;
}
