/*
 * The XMLTV export of an account's channels (shared/spec/exports.md §1):
 * /xmltv.php (Xtream) and /epg/xmltv.xml[.gz] (tvmw). The document is
 * written straight from the programme records of db 16, in two passes
 * over the channels: which of them have a programme in the window (a
 * channel without one is left out: tv_validate_file rejects it), then
 * their programmes. Children are written in the DTD's order; every time
 * has 14 digits and "+0000".
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/bytes.h"
#include "edge/export_int.h"
#include "edge/proto.h"

#define MAX_DAYS_AHEAD 62
#define NO_TITLE       "(no title)"
/* Guides built at once on this edge. A two-week guide of 500 channels
 * holds one of the edge's two request threads for about half a second;
 * the other stays free for logins, stream URLs and the streamers' token
 * checks, and a guide asked for meanwhile gets 503 (players fetch guides
 * every few hours and try again). */
#define MAX_GUIDE_BUILDS 1

static atomic_uint guide_builds;

/* "YYYYmmddHHMMSS +0000" */
static void xmltv_time(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int v[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    char *p = out;
    for (int i = 0; i < 6; i++) {
        int w = i == 0 ? 4 : 2;
        for (int k = w - 1; k >= 0; k--) {
            p[k] = (char)('0' + v[i] % 10);
            v[i] /= 10;
        }
        p += w;
    }
    memcpy(p, " +0000", 7);
}

/* The window of a channel: its archive depth back (a day at least, so a
 * guide shows what is on now) to days_ahead forward (or everything). */
static void window(const struct ex_chan *ch, const struct ex_xmltv_opts *opts, int64_t *from,
                   int64_t *to)
{
    int64_t back = ch->archive_days > 0 ? ch->archive_days : 1;
    *from = opts->now - back * EX_DAY_S;
    *to = opts->days_ahead > 0 ? opts->now + opts->days_ahead * EX_DAY_S : INT64_MAX;
}

struct pscan {
    struct ex_acc *a;
    struct ex_out *o;
    const struct ex_xmltv_opts *opts;
    int64_t from, to;
    const char *xid;
    bool write, found;
};

/* A language attribute from the programme's meta (ISO 639 codes and
 * tags like "pt-BR"); "" if none. */
static void meta_lang(const struct ex_jv *meta, char out[16])
{
    out[0] = '\0';
    if (meta->t != 'o') {
        return;
    }
    struct ex_jv v;
    ex_json_get(meta->p, meta->n, "lang", &v);
    if (v.t == 's' && v.n >= 2 && v.n < 16 &&
        strspn(v.p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") >= v.n) {
        memcpy(out, v.p, v.n);
        out[v.n] = '\0';
    }
}

/* xmltv_ns: three dot-separated parts, each empty or "N" or "N/M",
 * spaces allowed around (what tv_validate_file accepts). */
static bool xmltv_ns_ok(const char *s)
{
    int dots = 0;
    for (const char *p = s;; p++) {
        while (*p == ' ') {
            p++;
        }
        size_t d = strspn(p, "0123456789");
        p += d;
        while (*p == ' ') {
            p++;
        }
        if (*p == '/' && d > 0) {
            p++;
            while (*p == ' ') {
                p++;
            }
            size_t t = strspn(p, "0123456789");
            if (t == 0) {
                return false;
            }
            p += t;
            while (*p == ' ') {
                p++;
            }
        }
        if (*p == '\0') {
            return dots == 2;
        }
        if (*p != '.' || ++dots > 2) {
            return false;
        }
    }
}

static void elem(struct ex_acc *a, struct ex_out *o, const char *name, const char *lang,
                 const struct ex_jv *v)
{
    if (v->t == 0 || ex_jv_text(v, &a->scratch) != 0 || a->scratch.len == 0) {
        return;
    }
    ex_out_puts(o, "  <");
    ex_out_puts(o, name);
    if (lang[0] != '\0') {
        ex_out_puts(o, " lang=\"");
        ex_out_puts(o, lang);
        ex_out_puts(o, "\"");
    }
    ex_out_puts(o, ">");
    ex_out_xml(o, a->scratch.data, a->scratch.len);
    ex_out_puts(o, "</");
    ex_out_puts(o, name);
    ex_out_puts(o, ">\n");
}

/* The <date>, <episode-num> parts of meta (decoded into its own buffer,
 * since scratch is reused for each text). */
struct meta {
    struct tvmw_buf text;
    struct ex_jv obj; /* the decoded meta object */
};

static void write_programme(struct pscan *s, const struct ex_prog *p, struct meta *m)
{
    struct ex_acc *a = s->a;
    struct ex_out *o = s->o;
    char start[21], stop[21], lang[16];
    xmltv_time(p->begin, start);
    xmltv_time(p->end, stop);
    m->obj.t = 0;
    if (p->meta.t == 's' && ex_jv_text(&p->meta, &m->text) == 0 && m->text.len > 1 &&
        m->text.data[0] == '{') {
        m->obj = (struct ex_jv){m->text.data, m->text.len, 'o'};
    }
    meta_lang(&m->obj, lang);
    ex_out_puts(o, "<programme start=\"");
    ex_out_put(o, start, 20);
    ex_out_puts(o, "\" stop=\"");
    ex_out_put(o, stop, 20);
    ex_out_puts(o, "\" channel=\"");
    ex_out_puts(o, s->xid);
    if (s->opts->catchup_id) {
        ex_out_puts(o, "\" catchup-id=\"");
        ex_out_int(o, p->id);
    }
    ex_out_puts(o, "\">\n");
    struct ex_jv title = p->name;
    if (title.t != 's' || title.n == 0) {
        title = (struct ex_jv){NO_TITLE, sizeof(NO_TITLE) - 1, 's'};
    }
    elem(a, o, "title", lang, &title);
    elem(a, o, "sub-title", lang, &p->short_name);
    elem(a, o, "desc", lang, &p->desc);
    struct ex_jv v = {0}, ns = {0}, onscreen = {0};
    if (m->obj.t == 'o') {
        ex_json_get(m->obj.p, m->obj.n, "date", &v);
        struct ex_jv ep;
        ex_json_get(m->obj.p, m->obj.n, "episode_num", &ep);
        if (ep.t == 'o') {
            ex_json_get(ep.p, ep.n, "xmltv_ns", &ns);
            ex_json_get(ep.p, ep.n, "onscreen", &onscreen);
        }
    }
    if (v.t == 's' && v.n >= 4 && v.n <= 14 && strspn(v.p, "0123456789") >= v.n) {
        elem(a, o, "date", "", &v);
    }
    elem(a, o, "category", lang, &p->category);
    if (p->preview.t == 's' && ex_jv_text(&p->preview, &a->scratch) == 0 &&
        (strncmp(a->scratch.data, "http://", 7) == 0 ||
         strncmp(a->scratch.data, "https://", 8) == 0)) {
        ex_out_puts(o, "  <icon src=\"");
        ex_out_xml(o, a->scratch.data, a->scratch.len);
        ex_out_puts(o, "\"/>\n");
    }
    if (ns.t == 's' && ex_jv_text(&ns, &a->scratch) == 0 && xmltv_ns_ok(a->scratch.data)) {
        ex_out_puts(o, "  <episode-num system=\"xmltv_ns\">");
        ex_out_xml(o, a->scratch.data, a->scratch.len);
        ex_out_puts(o, "</episode-num>\n");
    }
    if (onscreen.t == 's' && ex_jv_text(&onscreen, &a->scratch) == 0 && a->scratch.len > 0) {
        ex_out_puts(o, "  <episode-num system=\"onscreen\">");
        ex_out_xml(o, a->scratch.data, a->scratch.len);
        ex_out_puts(o, "</episode-num>\n");
    }
    if (p->rating.t != 0 && ex_jv_text(&p->rating, &a->scratch) == 0 && a->scratch.len > 0 &&
        strcmp(a->scratch.data, "0") != 0) {
        ex_out_puts(o, "  <rating><value>");
        ex_out_xml(o, a->scratch.data, a->scratch.len);
        ex_out_puts(o, "</value></rating>\n");
    }
    ex_out_puts(o, "</programme>\n");
}

struct pscan_meta {
    struct pscan s;
    struct meta m;
};

static int prog_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    struct pscan_meta *pm = arg;
    struct pscan *s = &pm->s;
    if (key_len != 16) {
        return 0;
    }
    if ((int64_t)tvmw_get_be64(key + 8) >= s->to) {
        return 1;
    }
    struct ex_prog p;
    if (!ex_prog_parse(value, value_len, &p) || p.end <= s->from) {
        return 0;
    }
    s->found = true;
    if (!s->write) {
        return 1;
    }
    write_programme(s, &p, &pm->m);
    return s->o->failed;
}

/* Scans a channel's programmes in its window: finds one (write false) or
 * writes them all. */
static bool scan_channel(struct pscan_meta *pm, const struct ex_chan *ch)
{
    struct pscan *s = &pm->s;
    uint8_t prefix[8], from[16];
    window(ch, s->opts, &s->from, &s->to);
    tvmw_put_be64(prefix, ch->id);
    memcpy(from, prefix, 8);
    /* no programme is longer than a day but those of the import's 7-day
     * limit; start a day early, as the device API does */
    int64_t start = s->from - EX_DAY_S;
    tvmw_put_be64(from + 8, start > 0 ? (uint64_t)start : 0);
    s->found = false;
    edge_store_scan(&s->a->c->r, EDGE_DB_PROGRAMS, prefix, 8, from, 16, prog_one, pm);
    return s->found;
}

static bool selected(const struct ex_xmltv_opts *opts, uint64_t id)
{
    if (opts->n_only == 0) {
        return true;
    }
    for (size_t i = 0; i < opts->n_only; i++) {
        if (opts->only[i] == id) {
            return true;
        }
    }
    return false;
}

void ex_xmltv_write(struct ex_acc *a, const struct ex_xmltv_opts *opts, struct ex_out *o)
{
    bool *has = calloc(a->n ? a->n : 1, sizeof(*has));
    struct pscan_meta pm = {.s = {.a = a, .o = o, .opts = opts}};
    tvmw_buf_init(&pm.m.text, 0);
    if (has == NULL) {
        o->failed = true;
        return;
    }
    ex_out_puts(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n"
                   "<tv generator-info-name=\"tvmw/1.0\" source-info-name=\"tvmw\">\n");
    char xid[96], icon[1200];
    for (size_t i = 0; i < a->n; i++) {
        const struct ex_chan *ch = &a->ch[i];
        if (!selected(opts, ch->id) || !(has[i] = scan_channel(&pm, ch))) {
            continue;
        }
        ex_chan_xmltv_id(a, ch, xid);
        ex_out_puts(o, "<channel id=\"");
        ex_out_puts(o, xid);
        ex_out_puts(o, "\">\n  <display-name>");
        const char *name = rec_str(ch->rec, "name");
        ex_out_xml(o, name, strlen(name));
        ex_out_puts(o, "</display-name>\n");
        if (ch->number > 0) {
            ex_out_puts(o, "  <display-name>");
            ex_out_int(o, ch->number);
            ex_out_puts(o, "</display-name>\n");
        }
        ex_chan_icon(a, ch, icon, sizeof(icon));
        if (icon[0] != '\0') {
            ex_out_puts(o, "  <icon src=\"");
            ex_out_xml(o, icon, strlen(icon));
            ex_out_puts(o, "\"/>\n");
        }
        ex_out_puts(o, "</channel>\n");
    }
    pm.s.write = true;
    for (size_t i = 0; i < a->n && !o->failed; i++) {
        if (!has[i]) {
            continue;
        }
        ex_chan_xmltv_id(a, &a->ch[i], xid);
        pm.s.xid = xid;
        scan_channel(&pm, &a->ch[i]);
    }
    ex_out_puts(o, "</tv>\n");
    tvmw_buf_close(&pm.m.text);
    free(has);
}

/* ---- handlers
 * ------------------------------------------------------------------------------------ */

static bool accepts_gzip(struct dctx *c)
{
    const char *ae = tvmw_http_header(c->http, "Accept-Encoding");
    if (ae == NULL) {
        return false;
    }
    /* "gzip" as a token, not refused with q=0 */
    for (const char *p = ae; (p = strcasestr(p, "gzip")) != NULL; p += 4) {
        bool start = p == ae || p[-1] == ' ' || p[-1] == ',';
        const char *e = p + 4;
        while (*e == ' ') {
            e++;
        }
        if (start && (*e == '\0' || *e == ',' || *e == ';')) {
            return !(*e == ';' && strstr(e, "q=0") != NULL && strstr(e, "q=0.") == NULL);
        }
    }
    return false;
}

/* Channel ids of "channels=a,b": stream ids or XMLTV ids of this tenant. */
static size_t parse_only(const struct ex_acc *a, const char *list, uint64_t *out, size_t max)
{
    size_t n = 0, slen = strlen(a->slug);
    for (const char *p = list; p && *p && n < max;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        size_t d = strspn(p, "0123456789");
        if (d > 0 && d <= 19 &&
            (d == len ||
             (len == d + 1 + slen && p[d] == '.' && memcmp(p + d + 1, a->slug, slen) == 0))) {
            out[n++] = strtoull(p, NULL, 10);
        }
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

static void build(struct dctx *c, bool xc, const char *user, const char *pass);

static void xmltv(struct dctx *c, bool xc)
{
    const char *user = NULL, *pass = NULL;
    enum ex_auth au = ex_login(c, &user, &pass);
    if (au != EX_AUTH_OK) {
        ex_reply_empty(c, au == EX_AUTH_INACTIVE ? 403 : 401);
        return;
    }
    if (atomic_fetch_add(&guide_builds, 1) >= MAX_GUIDE_BUILDS) {
        atomic_fetch_sub(&guide_builds, 1);
        ex_reply_empty(c, 503);
        return;
    }
    build(c, xc, user, pass);
    atomic_fetch_sub(&guide_builds, 1);
}

static void build(struct dctx *c, bool xc, const char *user, const char *pass)
{
    struct ex_acc a;
    struct ex_out *o = malloc(sizeof(*o));
    uint64_t only[256];
    struct ex_xmltv_opts opts = {.now = (int64_t)(c->now_ms / 1000), .only = only};
    int64_t days;
    if (!xc) {
        if (dreq_int(&c->q, "days", &days)) {
            opts.days_ahead = days < 1 ? 1 : days > MAX_DAYS_AHEAD ? MAX_DAYS_AHEAD : days;
        }
        opts.catchup_id = dreq_flag(&c->q, "catchup_id", 0) == 1;
    }
    bool file_gz = strcmp(c->http->path, "/epg/xmltv.xml.gz") == 0;
    bool gz = file_gz || accepts_gzip(c);
    if (o == NULL || ex_acc_load(c, user, pass, true, &a) != 0) {
        free(o);
        ex_reply_empty(c, 500);
        return;
    }
    const char *ch_list = xc ? NULL : dreq_get(&c->q, "channels");
    if (ch_list != NULL && ch_list[0] != '\0') {
        opts.n_only = parse_only(&a, ch_list, only, sizeof(only) / sizeof(only[0]));
        if (opts.n_only == 0) {
            only[0] = 0; /* names no channel of ours: an empty guide */
            opts.n_only = 1;
        }
    }
    ex_out_init(o, &c->raw, gz);
    ex_xmltv_write(&a, &opts, o);
    int rv = ex_out_finish(o);
    ex_out_close(o);
    free(o);
    ex_acc_close(&a);
    if (rv != 0) {
        ex_reply_empty(c, 500);
        return;
    }
    if (file_gz) {
        ex_reply_raw(c, 200, "application/gzip");
        return;
    }
    if (gz) {
        c->raw_encoding = "gzip";
    }
    ex_reply_raw(c, 200, "application/xml; charset=utf-8");
}

void dx_xmltv(struct dctx *c)
{
    xmltv(c, false);
}

void dx_xc_xmltv(struct dctx *c)
{
    xmltv(c, true);
}
