/*
 * Extended M3U playlists of an account (shared/spec/exports.md §2, §3.5):
 *
 * - /playlist.m3u8 (tvmw): each entry's URL is the routed streamer URL
 *   with a fresh stream token, as channel/url would redirect to, and a
 *   channel with archive carries catchup="default" and a catchup-source
 *   built from the archive mask with the players' {utc} and {duration}
 *   placeholders (and its own token) — §4.3. A channel no service can
 *   serve right now gets the Xtream live URL, which routes at play time,
 *   so the playlist always lists every entitled channel.
 * - /get.php (Xtream): URLs of the /live/U/P/ID.ext form that the edge
 *   redirects on play; catchup="xc" for channels with archive.
 *
 * The header points players at the guide (x-tvg-url and url-tvg).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/export_int.h"

#define M3U_TYPE "audio/x-mpegurl"

struct m3u {
    struct ex_acc *a;
    struct ex_out *o;
    const char *eol;
};

static void creds_query(struct m3u *m)
{
    ex_out_puts(m->o, "username=");
    ex_out_urlenc(m->o, m->a->user);
    ex_out_puts(m->o, "&password=");
    ex_out_urlenc(m->o, m->a->pass);
}

static void header(struct m3u *m, const char *guide_path)
{
    for (int i = 0; i < 2; i++) {
        ex_out_puts(m->o, i == 0 ? "#EXTM3U x-tvg-url=\"" : " url-tvg=\"");
        ex_out_puts(m->o, m->a->base);
        ex_out_puts(m->o, guide_path);
        ex_out_puts(m->o, "?");
        creds_query(m);
        ex_out_puts(m->o, "\"");
    }
    ex_out_puts(m->o, m->eol);
}

/* The Xtream live URL of a channel: BASE/live/U/P/ID.ext. */
static void live_url(struct m3u *m, const struct ex_chan *ch, const char *ext)
{
    ex_out_puts(m->o, m->a->base);
    ex_out_puts(m->o, "/live/");
    ex_out_urlenc(m->o, m->a->user);
    ex_out_puts(m->o, "/");
    ex_out_urlenc(m->o, m->a->pass);
    ex_out_puts(m->o, "/");
    ex_out_int(m->o, (int64_t)ch->id);
    ex_out_puts(m->o, ".");
    ex_out_puts(m->o, ext);
}

/* tvg-id, tvg-name, tvg-logo (and tvg-chno) and group-title. */
static void common_attrs(struct m3u *m, const struct ex_chan *ch, bool chno)
{
    char xid[96], icon[1200];
    const struct ex_cat *cat = ex_acc_cat(m->a, ch->category_id);
    ex_chan_xmltv_id(m->a, ch, xid);
    ex_chan_icon(m->a, ch, icon, sizeof(icon));
    ex_out_puts(m->o, "#EXTINF:-1 tvg-id=\"");
    ex_out_puts(m->o, xid);
    ex_out_puts(m->o, "\" tvg-name=\"");
    ex_out_m3u(m->o, rec_str(ch->rec, "name"), false);
    ex_out_puts(m->o, "\" tvg-logo=\"");
    ex_out_m3u(m->o, icon, false);
    if (chno && ch->number > 0) {
        ex_out_puts(m->o, "\" tvg-chno=\"");
        ex_out_int(m->o, ch->number);
    }
    ex_out_puts(m->o, "\" group-title=\"");
    ex_out_m3u(m->o, cat ? rec_str(cat->rec, "name") : "", false);
    ex_out_puts(m->o, "\"");
}

static void name_line(struct m3u *m, const struct ex_chan *ch)
{
    ex_out_puts(m->o, ",");
    ex_out_m3u(m->o, rec_str(ch->rec, "name"), true);
    ex_out_puts(m->o, m->eol);
}

/* A URL that may go into a playlist line or a quoted attribute. */
static bool url_ok(const char *u)
{
    return u[0] != '\0' && strpbrk(u, "\"\r\n") == NULL;
}

void dx_playlist(struct dctx *c)
{
    const char *user = NULL, *pass = NULL;
    enum ex_auth au = ex_login(c, &user, &pass);
    if (au != EX_AUTH_OK) {
        ex_reply_empty(c, au == EX_AUTH_INACTIVE ? 403 : 401);
        return;
    }
    struct ex_acc a;
    struct ex_out *o = malloc(sizeof(*o));
    if (o == NULL || ex_acc_load(c, user, pass, true, &a) != 0) {
        free(o);
        ex_reply_empty(c, 500);
        return;
    }
    ex_out_init(o, &c->raw, false);
    struct m3u m = {&a, o, "\n"};
    header(&m, "/epg/xmltv.xml");
    for (size_t i = 0; i < a.n && !o->failed; i++) {
        const struct ex_chan *ch = &a.ch[i];
        char *live = NULL, *arch = NULL;
        uint64_t svc;
        const char *why;
        if (dctx_stream_uri(c, ch->id, false, NULL, NULL, &live, &svc, &why) != 0) {
            live = NULL;
        }
        if (ch->archive_days > 0 &&
            dctx_stream_uri(c, ch->id, true, "{utc}", "{duration}", &arch, &svc, &why) != 0) {
            arch = NULL;
        }
        common_attrs(&m, ch, true);
        if (arch != NULL && url_ok(arch)) {
            ex_out_puts(o, " catchup=\"default\" catchup-days=\"");
            ex_out_int(o, ch->archive_days);
            ex_out_puts(o, "\" catchup-source=\"");
            ex_out_puts(o, arch);
            ex_out_puts(o, "\"");
        }
        name_line(&m, ch);
        if (live != NULL && url_ok(live)) {
            ex_out_puts(o, live);
        } else {
            live_url(&m, ch, "m3u8");
        }
        ex_out_puts(o, m.eol);
        free(live);
        free(arch);
    }
    int rv = ex_out_finish(o);
    free(o);
    ex_acc_close(&a);
    if (rv != 0) {
        ex_reply_empty(c, 500);
        return;
    }
    ex_reply_raw(c, 200, M3U_TYPE);
}

void dx_xc_get(struct dctx *c)
{
    const char *type = dreq_get(&c->q, "type"), *output = dreq_get(&c->q, "output");
    bool plus;
    const char *ext;
    if (type == NULL || type[0] == '\0' || strcmp(type, "m3u_plus") == 0) {
        plus = true;
    } else if (strcmp(type, "m3u") == 0) {
        plus = false;
    } else {
        ex_reply_empty(c, 400);
        return;
    }
    if (output == NULL || output[0] == '\0' || strcmp(output, "ts") == 0 ||
        strcmp(output, "mpegts") == 0) {
        ext = "ts";
    } else if (strcmp(output, "m3u8") == 0 || strcmp(output, "hls") == 0) {
        ext = "m3u8";
    } else {
        ex_reply_empty(c, 400);
        return;
    }
    const char *user = NULL, *pass = NULL;
    enum ex_auth au = ex_login(c, &user, &pass);
    if (au != EX_AUTH_OK) {
        ex_reply_empty(c, au == EX_AUTH_INACTIVE ? 403 : 401);
        return;
    }
    struct ex_acc a;
    struct ex_out *o = malloc(sizeof(*o));
    if (o == NULL || ex_acc_load(c, user, pass, true, &a) != 0) {
        free(o);
        ex_reply_empty(c, 500);
        return;
    }
    ex_out_init(o, &c->raw, false);
    /* CRLF: the line ends of Xtream panels' playlists (spec §3.5). */
    struct m3u m = {&a, o, "\r\n"};
    if (plus) {
        header(&m, "/xmltv.php");
    } else {
        ex_out_puts(o, "#EXTM3U\r\n");
    }
    for (size_t i = 0; i < a.n; i++) {
        const struct ex_chan *ch = &a.ch[i];
        if (plus) {
            common_attrs(&m, ch, false);
            if (ch->archive_days > 0) {
                ex_out_puts(o, " catchup=\"xc\" catchup-days=\"");
                ex_out_int(o, ch->archive_days);
                ex_out_puts(o, "\" timeshift=\"");
                ex_out_int(o, ch->archive_days);
                ex_out_puts(o, "\"");
            }
        } else {
            ex_out_puts(o, "#EXTINF:-1");
        }
        name_line(&m, ch);
        live_url(&m, ch, ext);
        ex_out_puts(o, m.eol);
    }
    int rv = ex_out_finish(o);
    free(o);
    ex_acc_close(&a);
    if (rv != 0) {
        ex_reply_empty(c, 500);
        return;
    }
    ex_reply_raw(c, 200, M3U_TYPE);
}
