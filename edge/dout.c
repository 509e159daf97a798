/*
 * Device API answer writer; see dout.h.
 */
#include "edge/dout.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void put(struct dout *o, const void *p, size_t n)
{
    if (o->b.len + n < o->b.cap) { /* the common case: no call, no checks */
        memcpy(o->b.data + o->b.len, p, n);
        o->b.len += n;
        o->b.data[o->b.len] = '\0';
        return;
    }
    if (!o->failed && tvmw_buf_append(&o->b, p, n) != 0) {
        o->failed = true;
    }
}

static void puts_(struct dout *o, const char *s)
{
    put(o, s, strlen(s));
}

static void json_escaped(struct dout *o, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        put(o, run, (size_t)(s - run));
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            esc[2] = '\0';
        } else if (c == '\n') {
            strcpy(esc, "\\n");
        } else if (c == '\t') {
            strcpy(esc, "\\t");
        } else if (c == '\r') {
            strcpy(esc, "\\r");
        } else {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
        }
        puts_(o, esc);
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
}

/* Normal XML escaping and nothing more (§1.1a); characters XML 1.0 cannot
 * carry at all (C0 controls but tab, LF, CR) are dropped. */
static void xml_escaped(struct dout *o, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *rep;
        if (c == '&') {
            rep = "&amp;";
        } else if (c == '<') {
            rep = "&lt;";
        } else if (c == '>') {
            rep = "&gt;";
        } else if (c == '"') {
            rep = "&quot;";
        } else if (c == '\'') {
            rep = "&apos;";
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            rep = "";
        } else {
            continue;
        }
        put(o, run, (size_t)(s - run));
        puts_(o, rep);
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
}

/* Opens a member (JSON key / XML start tag); in a list the name is item. */
static void member_open(struct dout *o, const char *name)
{
    bool in_list = o->list[o->depth];
    if (o->xml) {
        puts_(o, "<");
        puts_(o, in_list ? "item" : name);
        puts_(o, ">");
        return;
    }
    if (!o->first[o->depth]) {
        puts_(o, ",");
    }
    o->first[o->depth] = false;
    if (!in_list) {
        puts_(o, "\"");
        puts_(o, name);
        puts_(o, "\":");
    }
}

static void member_close(struct dout *o, const char *name)
{
    if (o->xml) {
        puts_(o, "</");
        puts_(o, o->list[o->depth] ? "item" : name);
        puts_(o, ">");
    }
}

static void scalar(struct dout *o, const char *name, const char *text, bool quoted)
{
    member_open(o, name);
    if (o->xml) {
        xml_escaped(o, text);
    } else if (quoted) {
        puts_(o, "\"");
        json_escaped(o, text);
        puts_(o, "\"");
    } else {
        puts_(o, text);
    }
    member_close(o, name);
}

void dout_init(struct dout *o, bool xml)
{
    memset(o, 0, sizeof(*o));
    tvmw_buf_init(&o->b, 0);
    if (tvmw_buf_reserve(&o->b, DOUT_INITIAL_BYTES) != 0) {
        o->failed = true;
    }
    o->xml = xml;
    o->first[0] = true;
    puts_(o, xml ? "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss>" : "{");
}

void dout_int(struct dout *o, const char *name, int64_t v)
{
    char t[24], *p = t + sizeof(t) - 1;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--p = '-';
    }
    scalar(o, name, p, false);
}

void dout_bool(struct dout *o, const char *name, bool v)
{
    scalar(o, name, o->xml ? (v ? "1" : "0") : (v ? "true" : "false"), false);
}

void dout_num(struct dout *o, const char *name, double v)
{
    char t[32];
    snprintf(t, sizeof(t), "%.6g", isfinite(v) ? v : 0.0);
    scalar(o, name, t, false);
}

void dout_str(struct dout *o, const char *name, const char *s)
{
    scalar(o, name, s ? s : "", true);
}

static void open_level(struct dout *o, const char *name, bool list)
{
    member_open(o, name);
    if (!o->xml) {
        puts_(o, list ? "[" : "{");
    }
    if (o->depth + 1 >= DOUT_MAX_DEPTH) {
        o->failed = true; /* a programming error: never nest this deep */
        return;
    }
    o->depth++;
    o->first[o->depth] = true;
    o->list[o->depth] = list;
    o->name[o->depth] = name;
    o->opened[o->depth] = o->b.len;
}

static void close_level(struct dout *o)
{
    if (o->depth == 0) {
        o->failed = true;
        return;
    }
    bool list = o->list[o->depth];
    const char *name = o->name[o->depth];
    bool empty = o->b.len == o->opened[o->depth];
    o->depth--;
    if (!o->xml) {
        puts_(o, list ? "]" : "}");
        return;
    }
    if (empty && !o->failed && !o->list[o->depth]) {
        o->b.len--; /* "<name>" -> "<name/>" */
        puts_(o, "/>");
        return;
    }
    member_close(o, name);
}

void dout_obj_begin(struct dout *o, const char *name)
{
    open_level(o, name, false);
}

void dout_obj_end(struct dout *o)
{
    close_level(o);
}

void dout_list_begin(struct dout *o, const char *name)
{
    open_level(o, name, true);
}

void dout_list_end(struct dout *o)
{
    close_level(o);
}

void dout_item_begin(struct dout *o)
{
    open_level(o, "item", false);
}

void dout_item_end(struct dout *o)
{
    close_level(o);
}

int dout_finish(struct dout *o)
{
    if (o->depth != 0) {
        o->failed = true;
    }
    puts_(o, o->xml ? "</rss>\n" : "}");
    return o->failed ? -1 : 0;
}

void dout_close(struct dout *o)
{
    tvmw_buf_close(&o->b);
}
