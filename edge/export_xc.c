/*
 * The Xtream Codes compatible player API (shared/spec/exports.md §3):
 * /player_api.php and its actions, and the live and timeshift stream URLs
 * that answer 302 to the routed streamer with a fresh stream token.
 *
 * Mapping: line = account (abonement as username), bouquet = tariff,
 * stream_id = channel id, category = the channel's category. Times are
 * UTC (server_info.timezone "UTC"), so Kodi's and the JS client's
 * timeshift starts agree (§3.8). There is no VOD: its actions answer the
 * empty forms the clients know.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "edge/export_int.h"
#include "edge/proto.h"

#define JSON_TYPE         "application/json; charset=utf-8"
#define SHORT_EPG_LIMIT   4
#define SHORT_EPG_MAX     200
#define FULL_EPG_MAX      50000
#define MULTI_EPG_MAX     64
#define TIMESHIFT_MAX_MIN (7 * 24 * 60)
#define UNLIMITED_CONNS   100

/* ---- JSON pieces ------------------------------------------------------------------------------
 */

static void jkey(struct ex_out *o, bool *first, const char *name)
{
    ex_out_puts(o, *first ? "\"" : ",\"");
    *first = false;
    ex_out_puts(o, name);
    ex_out_puts(o, "\":");
}

static void jstr(struct ex_out *o, bool *first, const char *name, const char *v)
{
    jkey(o, first, name);
    ex_out_json(o, v, strlen(v));
}

static void jint(struct ex_out *o, bool *first, const char *name, int64_t v)
{
    jkey(o, first, name);
    ex_out_int(o, v);
}

/* A number the clients type as a string. */
static void jintstr(struct ex_out *o, bool *first, const char *name, int64_t v)
{
    jkey(o, first, name);
    ex_out_puts(o, "\"");
    ex_out_int(o, v);
    ex_out_puts(o, "\"");
}

static void b64(struct ex_out *o, const unsigned char *s, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) {
            v |= (unsigned)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        q[0] = t[(v >> 18) & 63];
        q[1] = t[(v >> 12) & 63];
        q[2] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? t[v & 63] : '=';
        ex_out_put(o, q, 4);
    }
}

/* ---- answers ----------------------------------------------------------------------------------
 */

static struct ex_out *out_new(struct dctx *c)
{
    struct ex_out *o = malloc(sizeof(*o));
    if (o != NULL) {
        ex_out_init(o, &c->raw, false);
    }
    return o;
}

static void out_done(struct dctx *c, struct ex_out *o)
{
    int rv = o ? ex_out_finish(o) : -1;
    free(o);
    if (rv != 0) {
        ex_reply_empty(c, 500);
        return;
    }
    ex_reply_raw(c, 200, JSON_TYPE);
}

static void reply_text(struct dctx *c, const char *json)
{
    struct ex_out *o = out_new(c);
    if (o != NULL) {
        ex_out_puts(o, json);
    }
    out_done(c, o);
}

/* The Xtream refusal: HTTP 200 with auth 0 (clients test user_info.auth). */
static void deny(struct dctx *c, enum ex_auth au)
{
    const char *status = "Disabled",
               *msg = au == EX_AUTH_NONE ? "NO_CREDENTIALS" : "INVALID_CREDENTIALS";
    if (au == EX_AUTH_INACTIVE) {
        const char *reason = dctx_status_reason(c->account);
        if (strcmp(reason, "DEBT") == 0) {
            status = "Expired";
            msg = "EXPIRED";
        } else if (strcmp(reason, "BLOCK") == 0) {
            status = "Banned";
            msg = "BANNED";
        } else {
            msg = "DISABLED";
        }
    }
    struct ex_out *o = out_new(c);
    if (o != NULL) {
        bool f = true;
        ex_out_puts(o, "{\"user_info\":{");
        jint(o, &f, "auth", 0);
        jstr(o, &f, "status", status);
        jstr(o, &f, "message", msg);
        ex_out_puts(o, "}}");
    }
    out_done(c, o);
}

/* "YYYY-MM-DD" → Unix seconds of that UTC day; -1 if not a date. */
static int64_t parse_date(const char *s)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 ||
        d < 1 || d > 31 || y < 1970) {
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
    return (int64_t)timegm(&tm);
}

/* max_connections: the largest additional plus the largest basic session
 * count of the account's tariffs; "unlimited" (-1, or multiple login) is
 * reported as UNLIMITED_CONNS. */
static int64_t max_connections(struct dctx *c)
{
    uint64_t tariffs[DE_MAX_TARIFFS];
    size_t nt = dm_account_tariffs(c, tariffs, DE_MAX_TARIFFS);
    int64_t add = 0, basic = 0;
    bool unlimited = rec_int(c->account, "allow_multiple_login", 0) != 0;
    for (size_t i = 0; i < nt; i++) {
        json_t *t = dm_get(c, EDGE_DB_TARIFFS, tariffs[i]);
        int64_t s = rec_int(t, "sessions_count", 0), b = rec_int(t, "basic_sessions_count", 0);
        unlimited = unlimited || s < 0 || b < 0;
        add = s > add ? s : add;
        basic = b > basic ? b : basic;
        json_decref(t);
    }
    return unlimited ? UNLIMITED_CONNS : add + basic > 0 ? add + basic : 1;
}

static void profile(struct dctx *c, struct ex_acc *a)
{
    struct ex_out *o = out_new(c);
    if (o == NULL) {
        out_done(c, o);
        return;
    }
    int64_t now = (int64_t)(c->now_ms / 1000);
    int64_t exp = parse_date(rec_str(c->account, "deactivation_date"));
    char when[24];
    bool f = true;
    ex_out_puts(o, "{\"user_info\":{");
    jstr(o, &f, "username", a->user);
    jstr(o, &f, "password", a->pass);
    jstr(o, &f, "message", "");
    jint(o, &f, "auth", 1);
    jstr(o, &f, "status", "Active");
    jkey(o, &f, "exp_date");
    if (exp >= 0) {
        ex_out_puts(o, "\"");
        ex_out_int(o, exp);
        ex_out_puts(o, "\"");
    } else {
        ex_out_puts(o, "null");
    }
    jstr(o, &f, "is_trial", "0");
    jstr(o, &f, "active_cons", "0");
    jintstr(o, &f, "created_at", rec_int(c->account, "created_ms", 0) / 1000);
    jintstr(o, &f, "max_connections", max_connections(c));
    jkey(o, &f, "allowed_output_formats");
    ex_out_puts(o, "[\"m3u8\",\"ts\"]},\"server_info\":{");
    f = true;
    jstr(o, &f, "url", a->host);
    jstr(o, &f, "port", a->https ? "80" : a->port);
    jstr(o, &f, "https_port", a->https ? a->port : "443");
    jstr(o, &f, "server_protocol", a->https ? "https" : "http");
    jstr(o, &f, "rtmp_port", "0");
    jstr(o, &f, "timezone", "UTC");
    jint(o, &f, "timestamp_now", now);
    ex_fmt_datetime(now, when);
    jstr(o, &f, "time_now", when);
    jkey(o, &f, "process");
    ex_out_puts(o, "true");
    jstr(o, &f, "version", "tvmw-1.0");
    ex_out_puts(o, "}}");
    out_done(c, o);
}

static void live_categories(struct dctx *c, struct ex_acc *a)
{
    struct ex_out *o = out_new(c);
    if (o != NULL) {
        ex_out_puts(o, "[");
        for (size_t i = 0; i < a->n_cat; i++) {
            bool f = true;
            ex_out_puts(o, i ? ",{" : "{");
            jintstr(o, &f, "category_id", (int64_t)a->cat[i].id);
            jstr(o, &f, "category_name", rec_str(a->cat[i].rec, "name"));
            jint(o, &f, "parent_id", 0);
            ex_out_puts(o, "}");
        }
        ex_out_puts(o, "]");
    }
    out_done(c, o);
}

static void live_streams(struct dctx *c, struct ex_acc *a)
{
    int64_t only = -1;
    const char *cat = dreq_get(&c->q, "category_id");
    if (cat != NULL && cat[0] != '\0' && (!dreq_int(&c->q, "category_id", &only) || only < 0)) {
        only = -2; /* names no category: nothing */
    }
    struct ex_out *o = out_new(c);
    if (o == NULL) {
        out_done(c, o);
        return;
    }
    char xid[96], icon[1200];
    size_t k = 0;
    ex_out_puts(o, "[");
    for (size_t i = 0; i < a->n; i++) {
        const struct ex_chan *ch = &a->ch[i];
        if (only != -1 && (int64_t)ch->category_id != only) {
            continue;
        }
        bool f = true;
        ex_chan_xmltv_id(a, ch, xid);
        ex_chan_icon(a, ch, icon, sizeof(icon));
        ex_out_puts(o, k++ ? ",{" : "{");
        /* num is the position in the account's whole list, as in the
         * playlists, whatever the filter */
        jint(o, &f, "num", (int64_t)i + 1);
        jstr(o, &f, "name", rec_str(ch->rec, "name"));
        jstr(o, &f, "stream_type", "live");
        jint(o, &f, "stream_id", (int64_t)ch->id);
        jstr(o, &f, "stream_icon", icon);
        jstr(o, &f, "epg_channel_id", xid);
        jintstr(o, &f, "added", ch->created_s);
        jkey(o, &f, "category_id");
        if (ch->category_id != 0) {
            ex_out_puts(o, "\"");
            ex_out_int(o, (int64_t)ch->category_id);
            ex_out_puts(o, "\",\"category_ids\":[");
            ex_out_int(o, (int64_t)ch->category_id);
            ex_out_puts(o, "]");
        } else {
            ex_out_puts(o, "\"\",\"category_ids\":[]");
        }
        jstr(o, &f, "custom_sid", "");
        jint(o, &f, "tv_archive", ch->archive_days > 0);
        jstr(o, &f, "direct_source", "");
        jint(o, &f, "tv_archive_duration", ch->archive_days);
        jstr(o, &f, "thumbnail", "");
        ex_out_puts(o, "}");
    }
    ex_out_puts(o, "]");
    out_done(c, o);
}

/* ---- EPG --------------------------------------------------------------------------------------
 */

enum epg_kind { EPG_SHORT, EPG_TABLE };

struct epg_scan {
    struct ex_acc *a;
    struct ex_out *o;
    const struct ex_chan *ch;
    enum epg_kind kind;
    int64_t now;
    size_t n, max;
    char xid[96];
    struct tvmw_buf meta;
};

static void listing(struct epg_scan *s, const struct ex_prog *p)
{
    struct ex_out *o = s->o;
    struct tvmw_buf *t = &s->a->scratch;
    char when[24], lang[16] = "";
    int64_t source = 0;
    if (p->meta.t == 's' && ex_jv_text(&p->meta, &s->meta) == 0 && s->meta.len > 1) {
        struct ex_jv v;
        ex_json_get(s->meta.data, s->meta.len, "source_id", &v);
        source = ex_jv_int(&v, 0);
        ex_json_get(s->meta.data, s->meta.len, "lang", &v);
        if (v.t == 's' && v.n < sizeof(lang) &&
            strspn(v.p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") >= v.n) {
            memcpy(lang, v.p, v.n);
            lang[v.n] = '\0';
        }
    }
    bool f = true;
    ex_out_puts(o, s->n ? ",{" : "{");
    jintstr(o, &f, "id", p->id);
    jintstr(o, &f, "epg_id", source);
    jkey(o, &f, "title");
    ex_out_puts(o, "\"");
    if (ex_jv_text(&p->name, t) == 0) {
        b64(o, (const unsigned char *)t->data, t->len);
    }
    ex_out_puts(o, "\"");
    jstr(o, &f, "lang", lang);
    ex_fmt_datetime(p->begin, when);
    jstr(o, &f, "start", when);
    ex_fmt_datetime(p->end, when);
    jstr(o, &f, "end", when);
    jkey(o, &f, "description");
    ex_out_puts(o, "\"");
    if (ex_jv_text(&p->desc, t) == 0) {
        b64(o, (const unsigned char *)t->data, t->len);
    }
    ex_out_puts(o, "\"");
    jstr(o, &f, "channel_id", s->xid);
    jintstr(o, &f, "start_timestamp", p->begin);
    jintstr(o, &f, "stop_timestamp", p->end);
    if (s->kind == EPG_SHORT) {
        jstr(o, &f, "stop", when);
    } else {
        jint(o, &f, "now_playing", p->begin <= s->now && s->now < p->end);
        jint(o, &f, "has_archive",
             s->ch->archive_days > 0 && p->begin < s->now &&
                 p->begin >= s->now - s->ch->archive_days * EX_DAY_S);
    }
    ex_out_puts(o, "}");
    s->n++;
}

static int epg_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct epg_scan *s = arg;
    struct ex_prog p;
    (void)key;
    if (key_len != 16 || !ex_prog_parse(value, value_len, &p)) {
        return 0;
    }
    if (s->kind == EPG_SHORT && p.end <= s->now) {
        return 0;
    }
    listing(s, &p);
    return s->n >= s->max || s->o->failed;
}

/* The listings of one channel as a JSON array. */
static void channel_epg(struct epg_scan *s, const struct ex_chan *ch)
{
    uint8_t prefix[8], from[16];
    s->ch = ch;
    s->n = 0;
    ex_chan_xmltv_id(s->a, ch, s->xid);
    tvmw_put_be64(prefix, ch->id);
    memcpy(from, prefix, 8);
    int64_t start = s->kind == EPG_SHORT ? s->now - EX_DAY_S : 0;
    tvmw_put_be64(from + 8, start > 0 ? (uint64_t)start : 0);
    ex_out_puts(s->o, "[");
    edge_store_scan(&s->a->c->r, EDGE_DB_PROGRAMS, prefix, 8, from, 16, epg_one, s);
    ex_out_puts(s->o, "]");
}

/* An entitled channel of the account by id into *out (its rec a new
 * reference), or NULL. */
static const struct ex_chan *one_channel(struct dctx *c, uint64_t id, struct ex_chan *out)
{
    if (id == 0 || !ex_entitled(c, id)) {
        return NULL;
    }
    json_t *rec = dm_get_own(c, EDGE_DB_CHANNELS, id);
    if (rec == NULL) {
        return NULL;
    }
    *out = (struct ex_chan){.id = id, .archive_days = rec_int(rec, "archive_days", 0), .rec = rec};
    return out;
}

/* get_short_epg, get_simple_data_table (wrapped in epg_listings) and
 * get_epg (a plain array). stream_id may list several ids ("1,2,3"), or
 * multi=1 asks for the keyed form with one: epg_listings is then an
 * object keyed by stream id. */
static void epg(struct dctx *c, struct ex_acc *a, enum epg_kind kind, bool wrapped)
{
    const char *ids = dreq_get(&c->q, "stream_id");
    uint64_t list[MULTI_EPG_MAX];
    size_t n = 0;
    for (const char *p = ids; p && *p && n < MULTI_EPG_MAX;) {
        size_t d = strspn(p, "0123456789");
        if (d > 0 && d <= 19) {
            list[n++] = strtoull(p, NULL, 10);
        }
        p += d;
        p += *p != '\0';
    }
    bool multi = wrapped && (n > 1 || dreq_flag(&c->q, "multi", 0) == 1);
    int64_t limit = SHORT_EPG_LIMIT;
    if (kind == EPG_SHORT && dreq_int(&c->q, "limit", &limit)) {
        limit = limit < 1 ? 1 : limit > SHORT_EPG_MAX ? SHORT_EPG_MAX : limit;
    }
    struct ex_out *o = out_new(c);
    if (o == NULL) {
        out_done(c, o);
        return;
    }
    struct epg_scan s = {.a = a,
                         .o = o,
                         .kind = kind,
                         .now = (int64_t)(c->now_ms / 1000),
                         .max = kind == EPG_SHORT ? (size_t)limit : FULL_EPG_MAX};
    tvmw_buf_init(&s.meta, 0);
    if (wrapped) {
        ex_out_puts(o, multi ? "{\"epg_listings\":{" : "{\"epg_listings\":");
    }
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        struct ex_chan one;
        const struct ex_chan *ch = one_channel(c, list[i], &one);
        if (multi) {
            ex_out_puts(o, i ? ",\"" : "\"");
            ex_out_int(o, (int64_t)list[i]);
            ex_out_puts(o, "\":");
        } else if (any) {
            break; /* one channel without the keyed form */
        }
        if (ch != NULL) {
            channel_epg(&s, ch);
            json_decref((json_t *)ch->rec);
        } else {
            ex_out_puts(o, "[]");
        }
        any = true;
    }
    if (!any && !multi) {
        ex_out_puts(o, "[]");
    }
    if (wrapped) {
        ex_out_puts(o, multi ? "}}" : "}");
    }
    tvmw_buf_close(&s.meta);
    out_done(c, o);
}

/* ---- player_api.php ------------------------------------------------------------------------- */

void dx_xc_player_api(struct dctx *c)
{
    const char *user = NULL, *pass = NULL;
    enum ex_auth au = ex_login(c, &user, &pass);
    if (au != EX_AUTH_OK) {
        deny(c, au);
        return;
    }
    const char *action = dreq_get(&c->q, "action");
    action = action ? action : "";
    /* VOD and series: none here, in the forms the clients treat as empty
     * or "not found" (§3.3). */
    if (strcmp(action, "get_vod_categories") == 0 || strcmp(action, "get_series_categories") == 0 ||
        strcmp(action, "get_vod_streams") == 0 || strcmp(action, "get_series") == 0) {
        reply_text(c, "[]");
        return;
    }
    if (strcmp(action, "get_vod_info") == 0) {
        reply_text(c, "{\"info\":[]}");
        return;
    }
    if (strcmp(action, "get_series_info") == 0) {
        reply_text(c, "{\"seasons\":[],\"info\":{\"name\":null},\"episodes\":{}}");
        return;
    }
    /* The EPG actions name their channels: they look those up alone
     * rather than load the account's whole list (players call them per
     * channel as the user browses). */
    bool epg_action = strcmp(action, "get_short_epg") == 0 ||
                      strcmp(action, "get_simple_data_table") == 0 ||
                      strcmp(action, "get_epg") == 0;
    struct ex_acc a;
    if (ex_acc_load(c, user, pass, !epg_action, &a) != 0) {
        ex_acc_close(&a);
        ex_reply_empty(c, 500);
        return;
    }
    if (strcmp(action, "get_live_categories") == 0) {
        live_categories(c, &a);
    } else if (strcmp(action, "get_live_streams") == 0) {
        live_streams(c, &a);
    } else if (strcmp(action, "get_short_epg") == 0) {
        epg(c, &a, EPG_SHORT, true);
    } else if (strcmp(action, "get_simple_data_table") == 0) {
        epg(c, &a, EPG_TABLE, true);
    } else if (strcmp(action, "get_epg") == 0) {
        epg(c, &a, EPG_TABLE, false);
    } else {
        /* no action, get_profile, get_server_info and anything unknown:
         * the profile (XC's default branch) */
        profile(c, &a);
    }
    ex_acc_close(&a);
}

/* ---- stream URLs ------------------------------------------------------------------------------
 */

/* Splits rest ("U/P/a/b") into the username (up to the first slash), the
 * last `tail` segments and the password between them, which may itself
 * hold slashes (libmicrohttpd hands the path over decoded, so a %2F in a
 * password arrives as '/'). seg[0] user, seg[1] password, seg[2..] the
 * tail; every part non-empty and at most 256 bytes. */
static bool split_path(const char *rest, char *buf, size_t cap, char **seg, int tail)
{
    size_t n = strlen(rest);
    if (n >= cap) {
        return false;
    }
    memcpy(buf, rest, n + 1);
    char *slash = strchr(buf, '/');
    if (slash == NULL) {
        return false;
    }
    *slash = '\0';
    seg[0] = buf;
    char *end = buf + n;
    for (int k = tail; k > 0; k--) {
        char *s = end;
        while (s > slash + 1 && s[-1] != '/') {
            s--;
        }
        if (s <= slash + 1) {
            return false; /* no password left */
        }
        s[-1] = '\0';
        seg[1 + k] = s;
        end = s - 1;
    }
    seg[1] = slash + 1;
    for (int k = 0; k < 2 + tail; k++) {
        if (seg[k][0] == '\0' || strlen(seg[k]) > 256) {
            return false;
        }
    }
    return true;
}

/* "123", "123.ts" or "123.m3u8" → 123; 0 if not a stream id. */
static uint64_t stream_id(const char *s)
{
    size_t d = strspn(s, "0123456789");
    if (d == 0 || d > 19 ||
        (s[d] != '\0' && strcmp(s + d, ".ts") != 0 && strcmp(s + d, ".m3u8") != 0)) {
        return 0;
    }
    return strtoull(s, NULL, 10);
}

/* Logs in, checks the channel and answers 302 to its stream (live, or
 * the archive from begin for dur seconds). */
static void redirect(struct dctx *c, const char *user, const char *pass, uint64_t cid,
                     int64_t begin, int64_t dur)
{
    enum ex_auth au = ex_login(c, &user, &pass);
    if (au != EX_AUTH_OK) {
        ex_reply_empty(c, au == EX_AUTH_INACTIVE ? 403 : 401);
        return;
    }
    json_t *ch = dm_get_own(c, EDGE_DB_CHANNELS, cid);
    if (ch == NULL || !rec_int(ch, "enabled", 1)) {
        json_decref(ch);
        ex_reply_empty(c, 404);
        return;
    }
    int64_t days = rec_int(ch, "archive_days", 0), now = (int64_t)(c->now_ms / 1000);
    json_decref(ch);
    if (!ex_entitled(c, cid)) {
        ex_reply_empty(c, 403);
        return;
    }
    bool archive = begin >= 0;
    if (archive && (days <= 0 || begin >= now || begin < now - days * EX_DAY_S)) {
        ex_reply_empty(c, 404); /* not in the channel's archive */
        return;
    }
    char b[24], d[24], *uri;
    uint64_t svc;
    const char *why;
    snprintf(b, sizeof(b), "%" PRId64, begin);
    snprintf(d, sizeof(d), "%" PRId64, dur);
    if (dctx_stream_uri(c, cid, archive, b, d, &uri, &svc, &why) != 0) {
        ex_reply_empty(c, 503); /* no streaming service for it now */
        return;
    }
    c->location = uri;
    ex_reply_empty(c, 302);
}

void dx_xc_live(struct dctx *c)
{
    const char *path = c->http->path;
    const char *rest = strncmp(path, "/live/", 6) == 0 ? path + 6 : path + 1;
    char buf[800], *seg[3];
    uint64_t id;
    if (!split_path(rest, buf, sizeof(buf), seg, 1) || (id = stream_id(seg[2])) == 0) {
        ex_reply_empty(c, 404);
        return;
    }
    redirect(c, seg[0], seg[1], id, -1, 0);
}

/* "YYYY-MM-DD:HH-MM" (minute precision, UTC: §3.8) → Unix seconds, -1. */
static int64_t parse_start(const char *s)
{
    int y, mo, d, h, mi;
    char tail;
    if (s == NULL || strlen(s) != 16 ||
        sscanf(s, "%4d-%2d-%2d:%2d-%2d%c", &y, &mo, &d, &h, &mi, &tail) != 5 || y < 1970 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || h < 0 || mi < 0) {
        return -1;
    }
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static int64_t parse_minutes(const char *s)
{
    size_t d = s ? strspn(s, "0123456789") : 0;
    if (d == 0 || d > 6 || s[d] != '\0') {
        return -1;
    }
    int64_t m = strtoll(s, NULL, 10);
    return m >= 1 && m <= TIMESHIFT_MAX_MIN ? m : -1;
}

void dx_xc_timeshift(struct dctx *c)
{
    const char *user = NULL, *pass = NULL, *start, *minutes, *id_text;
    char buf[800], *seg[5];
    if (strcmp(c->http->path, "/streaming/timeshift.php") == 0) {
        /* XC_VM's form: ?username&password&stream&start&duration */
        start = dreq_get(&c->q, "start");
        minutes = dreq_get(&c->q, "duration");
        id_text = dreq_get(&c->q, "stream");
    } else {
        if (!split_path(c->http->path + strlen("/timeshift/"), buf, sizeof(buf), seg, 3)) {
            ex_reply_empty(c, 404);
            return;
        }
        user = seg[0];
        pass = seg[1];
        minutes = seg[2];
        start = seg[3];
        id_text = seg[4];
    }
    uint64_t id = id_text ? stream_id(id_text) : 0;
    int64_t begin = parse_start(start), dur = parse_minutes(minutes);
    if (id == 0 || begin < 0 || dur < 0) {
        ex_reply_empty(c, id == 0 ? 404 : 400);
        return;
    }
    redirect(c, user, pass, id, begin, dur * 60);
}
