/*
 * Private to the exports (export*.c): what the playlist, guide and Xtream
 * handlers share — the account's channel set, the request's base URL,
 * an output writer that may gzip, and a reader for the flat JSON records
 * of the state (programmes are read by the hundred thousand, so they are
 * not parsed into jansson trees). shared/spec/exports.md is the contract.
 */
#ifndef TVMW_EDGE_EXPORT_INT_H
#define TVMW_EDGE_EXPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <zlib.h>

#include "common/buf.h"
#include "edge/device_int.h"

#define EX_MAX_CHANNELS   5000
#define EX_MAX_CATEGORIES 1024
#define EX_DAY_S          86400
/* The largest export body (an uncompressed XMLTV of thousands of channels
 * over weeks): past it the request fails with 500 rather than exhaust the
 * edge's memory. */
#define EX_MAX_BODY_BYTES ((size_t)1 << 30)

/* ---- flat JSON records -------------------------------------------------------------------- */

/* A member value: 's' string (the text between the quotes, still
 * escaped), 'n' number or literal, 'o' object or array (raw, brackets
 * included); 0 absent. */
struct ex_jv {
    const char *p;
    size_t n;
    char t;
};

/* Iterates the members of the JSON object text [*pp, end): call with *pp
 * at its '{' (skipped on the first call) and keep calling while it
 * returns true. False at the end or on malformed text. */
bool ex_json_next(const char **pp, const char *end, struct ex_jv *key, struct ex_jv *val);
/* A member of a flat object by name; v->t == 0 when absent. */
void ex_json_get(const char *obj, size_t len, const char *name, struct ex_jv *v);
/* The integer value of v (a number), or def. */
int64_t ex_jv_int(const struct ex_jv *v, int64_t def);
/* Decodes a string value's escapes into out (replaced); UTF-8 text.
 * -ENOMEM or TVMW_ETOOBIG only. A number value is copied as text. */
int ex_jv_text(const struct ex_jv *v, struct tvmw_buf *out);

/* A programme record of db 16 (docs/edge-protocol.md). */
struct ex_prog {
    int64_t id, begin, end;
    struct ex_jv name, short_name, desc, category, preview, rating, meta;
};
/* False if the record is not an object with begin_time < end_time. */
bool ex_prog_parse(const uint8_t *v, size_t n, struct ex_prog *p);

/* ---- output -----------------------------------------------------------------------------------
 */

/* Appends to a buffer, optionally through gzip. Errors are remembered
 * (failed) and reported by ex_out_finish; the calls never fail. */
struct ex_out {
    struct tvmw_buf *dst;
    bool gz, failed;
    z_stream z;
    size_t n;
    unsigned char stage[64 * 1024];
};

/* o is heap memory of the caller (it is large). */
void ex_out_init(struct ex_out *o, struct tvmw_buf *dst, bool gzip);
void ex_out_put(struct ex_out *o, const void *p, size_t n);
void ex_out_puts(struct ex_out *o, const char *s);
void ex_out_int(struct ex_out *o, int64_t v);
/* Text, XML-escaped (&, <, >, ", '), without the characters XML 1.0
 * forbids and without invalid UTF-8. */
void ex_out_xml(struct ex_out *o, const char *s, size_t n);
/* A value of an #EXTINF attribute (quote → apostrophe, line ends and
 * control characters → space); with name, also no comma (the display
 * name after the last comma). */
void ex_out_m3u(struct ex_out *o, const char *s, bool name);
/* A JSON string, quoted. */
void ex_out_json(struct ex_out *o, const char *s, size_t n);
/* Percent-encoding of everything but RFC 3986 unreserved characters. */
void ex_out_urlenc(struct ex_out *o, const char *s);
/* Flushes (and ends the gzip stream); -1 if anything failed. */
int ex_out_finish(struct ex_out *o);
/* Releases zlib's state (after finish or instead of it). */
void ex_out_close(struct ex_out *o);

/* ---- the account's channels ---------------------------------------------------------------- */

struct ex_chan {
    uint64_t id;
    int64_t number, archive_days, created_s;
    uint64_t category_id; /* 0: none, or not one of the client's */
    const json_t *rec;    /* owned by the ex_acc */
};

struct ex_cat {
    uint64_t id;
    int64_t order;
    json_t *rec;
};

/* Everything an export of one account needs, loaded once per request. */
struct ex_acc {
    struct dctx *c;
    const char *user, *pass; /* as the player sent them */
    size_t n, n_cat;
    struct ex_chan *ch; /* entitled enabled channels, by number then id */
    struct ex_cat *cat; /* categories of those channels, by order then id */
    char slug[64];      /* the tenant part of channel ids */
    char base[320];     /* "http://host[:port]" of the request */
    char host[256];     /* host without port, and port, as the request named them */
    char port[8];
    bool https;
    struct tvmw_buf scratch; /* decoded texts */
};

enum ex_auth {
    EX_AUTH_OK,
    EX_AUTH_NONE,     /* no username or password */
    EX_AUTH_INVALID,  /* unknown pair */
    EX_AUTH_INACTIVE, /* the account exists but is not active (DEBT, BLOCK, WAIT) */
};

/* Logs the request's username/password (or abonement/password) in. */
enum ex_auth ex_login(struct dctx *c, const char **user, const char **pass);
/* Fills a (after a successful ex_login): slug, base URL and, with
 * channels, the channels and their categories. -ENOMEM only. */
int ex_acc_load(struct dctx *c, const char *user, const char *pass, bool channels,
                struct ex_acc *a);
void ex_acc_close(struct ex_acc *a);
/* The category of id, or NULL. */
const struct ex_cat *ex_acc_cat(const struct ex_acc *a, uint64_t id);
/* XMLTV id = tvg-id = epg_channel_id: "<channel id>.<slug>". */
void ex_chan_xmltv_id(const struct ex_acc *a, const struct ex_chan *ch, char out[96]);
/* The channel's icon as an absolute URL ("" if none). */
void ex_chan_icon(const struct ex_acc *a, const struct ex_chan *ch, char *out, size_t cap);
/* Whether the channel may be exported as entitled for the context's
 * account: an enabled channel of its client linked to one of its tariffs. */
bool ex_entitled(struct dctx *c, uint64_t cid);

/* "YYYY-mm-dd HH:MM:SS", UTC. */
void ex_fmt_datetime(int64_t t, char out[24]);

/* Answers with an empty body and a status (401, 403, 404, ...). */
void ex_reply_empty(struct dctx *c, unsigned status);
/* Takes the text of a finished ex_out (c->raw) as the answer. */
void ex_reply_raw(struct dctx *c, unsigned status, const char *type);

/* ---- handlers ---------------------------------------------------------------------------------
 */

/* XMLTV of the account (export_xmltv.c): the document into o. */
struct ex_xmltv_opts {
    int64_t now, days_ahead; /* days_ahead 0: everything stored */
    bool catchup_id;
    const uint64_t *only; /* restrict to these channel ids (sorted), n_only > 0 */
    size_t n_only;
};
void ex_xmltv_write(struct ex_acc *a, const struct ex_xmltv_opts *opts, struct ex_out *o);
void dx_xmltv(struct dctx *c);    /* /epg/xmltv.xml[.gz] */
void dx_xc_xmltv(struct dctx *c); /* /xmltv.php */

/* M3U (export_m3u.c). */
void dx_playlist(struct dctx *c); /* /playlist.m3u8 */
void dx_xc_get(struct dctx *c);   /* /get.php */

/* Xtream Codes player API and stream URLs (export_xc.c). */
void dx_xc_player_api(struct dctx *c);
void dx_xc_live(struct dctx *c);
void dx_xc_timeshift(struct dctx *c);

#endif
