/*
 * Device API: channel and category lists, the program list and stream
 * URLs with their routing (§7–§9 of shared/spec/device-api.md).
 *
 * Routing: the candidates are the streaming services of the account's
 * tariffs that carry the channel (every service of the client when none of
 * those tariffs names a service); a candidate must be enabled, not "down",
 * not excluded by the caller, and have a URL mask for the content kind.
 * Preferred: the account's datacenter, then the edge's own, then any; in
 * the best group, a random pick weighted by the services' weights.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/bytes.h"
#include "edge/device_int.h"
#include "edge/proto.h"

#define MAX_CHANNELS      5000
#define MAX_SERVICES      256
#define MAX_DATACENTERS   256
#define MAX_PROGRAMS      5000
#define MAX_EXCLUDED      32
#define DEFAULT_TOKEN_TTL 86400
#define DAY_S             86400

/* ---- shared helpers ----------------------------------------------------------------------- */

struct id_set {
    size_t n;
    uint64_t ids[MAX_CHANNELS];
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool set_has(const struct id_set *s, uint64_t id)
{
    return bsearch(&id, s->ids, s->n, sizeof(id), cmp_u64) != NULL;
}

static void set_sort(struct id_set *s)
{
    qsort(s->ids, s->n, sizeof(s->ids[0]), cmp_u64);
}

/* Channels the session's account may watch: those of its tariffs. */
static void entitled_channels(struct dctx *c, struct id_set *out)
{
    uint64_t tariffs[DE_MAX_TARIFFS];
    size_t nt = c->account ? dm_account_tariffs(c, tariffs, DE_MAX_TARIFFS) : 0;
    out->n = 0;
    for (size_t i = 0; i < nt && out->n < MAX_CHANNELS; i++) {
        out->n += dm_rel(c, "tar_chan", tariffs[i], out->ids + out->n, MAX_CHANNELS - out->n);
    }
    set_sort(out);
}

static json_t *own_channel(struct dctx *c, uint64_t id);

static void ids_of(const json_t *settings, const char *name, struct id_set *out)
{
    const json_t *arr = json_object_get(settings, name);
    size_t i;
    const json_t *v;
    out->n = 0;
    json_array_foreach(arr, i, v)
    {
        if (json_is_integer(v) && out->n < MAX_CHANNELS) {
            out->ids[out->n++] = (uint64_t)json_integer_value(v);
        }
    }
    set_sort(out);
}

/* "http(s)://host" of the request, for links back to this API. */
static void base_url(struct dctx *c, char *out, size_t cap)
{
    const char *host = tvmw_http_header(c->http, "Host");
    const char *proto = tvmw_http_header(c->http, "X-Forwarded-Proto");
    if (host == NULL || host[0] == '\0' || strpbrk(host, "/?#\"<> ") != NULL) {
        host = c->dev->self->http_address;
    }
    snprintf(out, cap, "%s://%s", proto && strcmp(proto, "https") == 0 ? "https" : "http", host);
}

/* Inserts "<w>_<h>" before the icon's extension when both are given (§2). */
static void icon_url(struct dctx *c, const char *icon, char *out, size_t cap)
{
    int64_t w, h;
    const char *dot = strrchr(icon, '.'), *slash = strrchr(icon, '/');
    if (!dreq_int(&c->q, "icon_width", &w) || !dreq_int(&c->q, "icon_height", &h) || w <= 0 ||
        h <= 0 || w > 10000 || h > 10000 || dot == NULL || (slash != NULL && dot < slash)) {
        snprintf(out, cap, "%s", icon);
        return;
    }
    snprintf(out, cap, "%.*s%" PRId64 "_%" PRId64 "%s", (int)(dot - icon), icon, w, h, dot);
}

/* ---- programs ------------------------------------------------------------------------------ */

struct prog {
    uint64_t id;
    int64_t begin, end;
    json_t *rec;
};

struct prog_scan {
    int64_t from, to; /* overlap with [from, to) */
    uint64_t pid;     /* or the program with this id */
    int64_t at;       /* or the one containing this time (-1: none) */
    size_t n, max;
    struct prog *out;
};

static int prog_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    struct prog_scan *s = arg;
    if (key_len != 16) {
        return 0;
    }
    int64_t begin = (int64_t)tvmw_get_be64(key + 8);
    if (s->pid == 0 && s->at < 0 && begin >= s->to) {
        return 1;
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (o == NULL) {
        return 0;
    }
    int64_t end = rec_int(o, "end_time", begin);
    uint64_t id = (uint64_t)rec_int(o, "id", 0);
    bool take = s->pid != 0  ? id == s->pid
                : s->at >= 0 ? begin <= s->at && s->at < end
                             : end > s->from;
    if (!take || s->n == s->max) {
        json_decref(o);
        return s->n == s->max;
    }
    s->out[s->n++] = (struct prog){.id = id, .begin = begin, .end = end, .rec = o};
    return s->pid != 0 || s->at >= 0; /* one is enough */
}

/* Programs of a channel; the scan starts a day before `from` (no program
 * is longer). Free with progs_free. */
static size_t programs(struct dctx *c, uint64_t channel, struct prog_scan *s)
{
    uint8_t prefix[8], from[16];
    tvmw_put_be64(prefix, channel);
    memcpy(from, prefix, 8);
    int64_t start = s->pid != 0 ? 0 : (s->at >= 0 ? s->at : s->from) - DAY_S;
    tvmw_put_be64(from + 8, start > 0 ? (uint64_t)start : 0);
    edge_store_scan(&c->r, EDGE_DB_PROGRAMS, prefix, 8, from, 16, prog_one, s);
    return s->n;
}

static void progs_free(struct prog *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(p[i].rec);
    }
}

/* The programs on now and next; found flags in *n_now, *n_next. */
static void now_next(struct dctx *c, uint64_t channel, int64_t now, struct prog *cur,
                     struct prog *next)
{
    struct prog two[2] = {{0}};
    struct prog_scan s = {.from = now, .to = now + DAY_S, .at = -1, .max = 2, .out = two};
    programs(c, channel, &s);
    memset(cur, 0, sizeof(*cur));
    memset(next, 0, sizeof(*next));
    size_t i = 0;
    if (s.n > 0 && two[0].begin <= now) {
        *cur = two[0];
        i = 1;
    }
    if (i < s.n) {
        *next = two[i];
        i++;
    }
    for (; i < s.n; i++) {
        json_decref(two[i].rec);
    }
}

/* The program_* (next = false) or next_program_* fields of a channel. */
static void out_program_fields(struct dctx *c, bool next, const struct prog *p)
{
    static const char *const names[2][9] = {
        {"program_id", "program_name", "program_begin_time", "program_end_time",
         "program_category_id", "program_category", "program_description", "program_preview_url",
         "program_rating"},
        {"next_program_id", "next_program_name", "next_program_begin_time", "next_program_end_time",
         "next_program_category_id", "next_program_category", "next_program_description",
         "next_program_preview_url", "next_program_rating"}};
    const char *const *f = names[next];
    dout_int(&c->o, f[0], (int64_t)p->id);
    dout_str(&c->o, f[1], rec_str(p->rec, "name"));
    dout_int(&c->o, f[2], p->begin);
    dout_int(&c->o, f[3], p->end);
    dout_int(&c->o, f[4], 0);
    dout_str(&c->o, f[5], rec_str(p->rec, "category"));
    dout_str(&c->o, f[6], rec_str(p->rec, "description"));
    dout_str(&c->o, f[7], rec_str(p->rec, "preview"));
    dout_int(&c->o, f[8], rec_int(p->rec, "rating", 0));
}

/* ---- channel list --------------------------------------------------------------------------- */

struct chan {
    uint64_t id;
    int64_t number;
    int64_t sort; /* position in the account's order, else INT64_MAX */
    json_t *rec;
    struct prog cur, next; /* on now and next (rec NULL: none), valid before `until` */
    int64_t until;
};

struct chan_scan {
    struct dctx *c;
    size_t n;
    struct chan *out;
};

static int chan_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    struct chan_scan *s = arg;
    if (key_len != 8 || s->n == MAX_CHANNELS) {
        return 0;
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (o == NULL || (uint64_t)rec_int(o, "client_id", 0) != s->c->client_id ||
        !rec_int(o, "enabled", 1)) {
        json_decref(o);
        return 0;
    }
    s->out[s->n++] = (struct chan){
        .id = tvmw_get_be64(key), .number = rec_int(o, "number", 0), .sort = INT64_MAX, .rec = o};
    return 0;
}

static int cmp_chan(const void *a, const void *b)
{
    const struct chan *x = a, *y = b;
    if (x->sort != y->sort) {
        return x->sort < y->sort ? -1 : 1;
    }
    if (x->number != y->number) {
        return x->number < y->number ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The client's catalogue, parsed once per state: each thread keeps the
 * last one it read until the state it reads changes (a channel list would
 * otherwise parse every channel record again, a stream URL every service).
 * Objects in key (id) order. */
struct cat_obj {
    uint64_t id;
    json_t *rec;
};

struct catalog {
    const void *gen;
    uint64_t index, client;
    size_t n_chan, n_svc, n_dc;
    struct chan ch[MAX_CHANNELS]; /* enabled channels */
    struct cat_obj svc[MAX_SERVICES];
    struct cat_obj dc[MAX_DATACENTERS];
};

struct obj_scan {
    uint64_t client;
    size_t n, max;
    struct cat_obj *out;
};

static int obj_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct obj_scan *s = arg;
    if (key_len != 8 || s->n == s->max) {
        return 0;
    }
    json_t *o = json_loadb((const char *)value, value_len, 0, NULL);
    if (o == NULL || (uint64_t)rec_int(o, "client_id", 0) != s->client) {
        json_decref(o);
        return 0;
    }
    s->out[s->n++] = (struct cat_obj){tvmw_get_be64(key), o};
    return 0;
}

static void catalog_clear(struct catalog *k)
{
    for (size_t i = 0; i < k->n_chan; i++) {
        json_decref(k->ch[i].rec);
        json_decref(k->ch[i].cur.rec);
        json_decref(k->ch[i].next.rec);
    }
    for (size_t i = 0; i < k->n_svc; i++) {
        json_decref(k->svc[i].rec);
    }
    for (size_t i = 0; i < k->n_dc; i++) {
        json_decref(k->dc[i].rec);
    }
    k->n_chan = k->n_svc = k->n_dc = 0;
}

void dchannels_cache_free(void *cache)
{
    catalog_clear(cache);
    free(cache);
}

/* The request's client's catalogue (NULL if out of memory); valid until
 * the next call on this thread. */
static const struct catalog *catalog(struct dctx *c)
{
    struct catalog *k = dctx_scratch(c, DS_CHAN_CACHE, sizeof(*k));
    if (k == NULL) {
        return NULL;
    }
    if (k->gen != (const void *)c->r.gen || k->index != c->r.applied_index ||
        k->client != c->client_id) {
        catalog_clear(k);
        struct chan_scan cs = {.c = c, .out = k->ch};
        edge_store_scan(&c->r, EDGE_DB_CHANNELS, NULL, 0, NULL, 0, chan_one, &cs);
        k->n_chan = cs.n;
        struct obj_scan ss = {.client = c->client_id, .max = MAX_SERVICES, .out = k->svc};
        edge_store_scan(&c->r, EDGE_DB_SERVICES, NULL, 0, NULL, 0, obj_one, &ss);
        k->n_svc = ss.n;
        struct obj_scan ds = {.client = c->client_id, .max = MAX_DATACENTERS, .out = k->dc};
        edge_store_scan(&c->r, EDGE_DB_DATACENTERS, NULL, 0, NULL, 0, obj_one, &ds);
        k->n_dc = ds.n;
        k->gen = c->r.gen;
        k->index = c->r.applied_index;
        k->client = c->client_id;
    }
    return k;
}

static int cmp_obj(const void *key, const void *elem)
{
    uint64_t id = *(const uint64_t *)key, e = ((const struct cat_obj *)elem)->id;
    return id < e ? -1 : id > e;
}

static int cmp_chan_id(const void *key, const void *elem)
{
    uint64_t id = *(const uint64_t *)key, e = ((const struct chan *)elem)->id;
    return id < e ? -1 : id > e;
}

/* A catalogue object by id: a new reference, or NULL. */
static json_t *cat_find(const struct cat_obj *a, size_t n, uint64_t id)
{
    const struct cat_obj *o = bsearch(&id, a, n, sizeof(*a), cmp_obj);
    return o ? json_incref(o->rec) : NULL;
}

/* Every enabled channel of the client, in id order, with the programmes on
 * now and next (looked up again only when they end or the state changes). */
static const struct chan *client_channels(struct dctx *c, size_t *n)
{
    struct catalog *k = (struct catalog *)catalog(c);
    int64_t now = (int64_t)(c->now_ms / 1000);
    *n = k ? k->n_chan : 0;
    for (size_t i = 0; i < *n; i++) {
        struct chan *ch = &k->ch[i];
        if (now < ch->until) {
            continue;
        }
        json_decref(ch->cur.rec);
        json_decref(ch->next.rec);
        now_next(c, ch->id, now, &ch->cur, &ch->next);
        ch->until = ch->cur.rec ? ch->cur.end : now + 60;
        if (ch->next.rec && ch->next.begin < ch->until) {
            ch->until = ch->next.begin > now ? ch->next.begin : now + 1;
        }
    }
    return k ? k->ch : NULL;
}

/* Whether the session's account may watch channel cid; the set is made
 * once per request (a playlist asks for every channel). */
static bool entitled(struct dctx *c, uint64_t cid)
{
    struct id_set *ent = dctx_scratch(c, DS_ENTITLED, sizeof(*ent));
    if (ent == NULL) {
        return false;
    }
    if (!c->entitled_ready) {
        entitled_channels(c, ent);
        c->entitled_ready = true;
    }
    return set_has(ent, cid);
}

/* A channel of the request's client, enabled: a new reference, or NULL. */
static json_t *own_channel(struct dctx *c, uint64_t id)
{
    const struct catalog *k = catalog(c);
    const struct chan *ch =
        k ? bsearch(&id, k->ch, k->n_chan, sizeof(k->ch[0]), cmp_chan_id) : NULL;
    return ch ? json_incref(ch->rec) : NULL;
}

struct list_state {
    struct id_set entitled, fav, lock, hidden;
    struct chan ch[MAX_CHANNELS];
};

void dh_channel_list(struct dctx *c)
{
    struct list_state *st = dctx_scratch(c, DS_CHAN_LIST, sizeof(*st));
    if (st == NULL) {
        dctx_fail(c, 1, "out of memory");
        return;
    }
    int64_t sort_id;
    if (dreq_int(&c->q, "channel_sort_id", &sort_id)) {
        dctx_fail(c, 1, "Unknown channel_sort_id");
        return;
    }
    entitled_channels(c, &st->entitled);
    json_t *settings = dm_get(c, EDGE_DB_ACC_SETTINGS, c->account_id);
    ids_of(settings, "favorites", &st->fav);
    ids_of(settings, "parent_locked", &st->lock);
    ids_of(settings, "hidden", &st->hidden);
    size_t n;
    const struct chan *all = client_channels(c, &n);
    memcpy(st->ch, all, n * sizeof(*all));
    const json_t *order = json_object_get(settings, "sort");
    if (dreq_flag(&c->q, "account_sort", 1) && json_array_size(order) > 0) {
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < json_array_size(order); k++) {
                if ((uint64_t)json_integer_value(json_array_get(order, k)) == st->ch[i].id) {
                    st->ch[i].sort = (int64_t)k;
                    break;
                }
            }
        }
    }
    qsort(st->ch, n, sizeof(st->ch[0]), cmp_chan);

    const char *search = dreq_get(&c->q, "search");
    int64_t page = 1, limit = 0;
    bool paged = dreq_int(&c->q, "limit", &limit) && limit > 0;
    if (!dreq_int(&c->q, "page", &page) || page < 1) {
        page = 1;
    }
    bool compact = dreq_flag(&c->q, "compact", 0);
    char base[300], link[1024], icon[1100];
    base_url(c, base, sizeof(base));

    dctx_fail(c, 0, "");
    dout_list_begin(&c->o, "channels");
    int64_t skip = paged ? (page - 1) * limit : 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        const struct chan *ch = &st->ch[i];
        const json_t *r = ch->rec;
        if (search != NULL && search[0] != '\0' && strcasestr(rec_str(r, "name"), search) == NULL) {
            continue;
        }
        if (skip > 0) {
            skip--;
            continue;
        }
        if (paged && shown == limit) {
            break;
        }
        shown++;
        bool sub = set_has(&st->entitled, ch->id);
        int64_t archive = rec_int(r, "archive_days", 0);
        const struct prog cur = ch->cur, next = ch->next;
        snprintf(link, sizeof(link),
                 "%s/tvmiddleware/api/channel/url/?cid=%" PRIu64 "&client_id=%" PRIu64
                 "&authkey=%s%s%s",
                 base, ch->id, c->client_id, c->authkey, c->device[0] ? "&device=" : "", c->device);
        icon_url(c, rec_str(r, "icon"), icon, sizeof(icon));
        /* Field order is part of the contract (§1.1a). */
        dout_item_begin(&c->o);
        dout_int(&c->o, "is_hidden", set_has(&st->hidden, ch->id));
        dout_int(&c->o, "id", (int64_t)ch->id);
        dout_str(&c->o, "name", rec_str(r, "name"));
        dout_int(&c->o, "has_subscription", sub);
        dout_int(&c->o, "max_archive_duration", archive);
        dout_str(&c->o, "url", link);
        dout_str(&c->o, "icon", icon);
        dout_int(&c->o, "category_id", rec_int(r, "category_id", 0));
        dout_int(&c->o, "has_record", archive > 0);
        dout_int(&c->o, "is_favorited", set_has(&st->fav, ch->id));
        dout_int(&c->o, "is_parent_control", set_has(&st->lock, ch->id));
        dout_int(&c->o, "timeshift_offset", 0);
        dout_int(&c->o, "channel_sort", ch->number);
        out_program_fields(c, false, &cur);
        dout_int(&c->o, "pause_live_tv_shift", 0);
        dout_bool(&c->o, "drm_available", false);
        if (!compact) {
            dout_str(&c->o, "option1", "");
            dout_str(&c->o, "option2", "");
            dout_str(&c->o, "option3", "");
            dout_int(&c->o, "aspect_ratio", 0);
            dout_int(&c->o, "lcn_number", ch->number);
            dout_int(&c->o, "show_in_all", 1);
            dout_int(&c->o, "ads_available", 0);
            dout_str(&c->o, "program_meta", rec_str(cur.rec, "meta"));
            out_program_fields(c, true, &next);
        }
        dout_item_end(&c->o);
    }
    dout_list_end(&c->o);
    json_decref(settings);
}

/* ---- categories ------------------------------------------------------------------------------ */

struct cat {
    uint64_t id;
    int64_t order;
    json_t *rec;
};

struct cat_scan {
    struct dctx *c;
    size_t n;
    struct cat out[1024];
};

static int cat_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct cat_scan *s = arg;
    json_t *o =
        key_len == 8 && s->n < 1024 ? json_loadb((const char *)value, value_len, 0, NULL) : NULL;
    if (o == NULL || (uint64_t)rec_int(o, "client_id", 0) != s->c->client_id) {
        json_decref(o);
        return 0;
    }
    s->out[s->n++] = (struct cat){tvmw_get_be64(key), rec_int(o, "order", 0), o};
    return 0;
}

static int cmp_cat(const void *a, const void *b)
{
    const struct cat *x = a, *y = b;
    if (x->order != y->order) {
        return x->order < y->order ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

void dh_category_list(struct dctx *c)
{
    struct cat_scan *s = dctx_scratch(c, DS_CATEGORIES, sizeof(*s));
    if (s == NULL) {
        dctx_fail(c, 1, "out of memory");
        return;
    }
    s->c = c;
    s->n = 0;
    edge_store_scan(&c->r, EDGE_DB_CATEGORIES, NULL, 0, NULL, 0, cat_one, s);
    qsort(s->out, s->n, sizeof(s->out[0]), cmp_cat);
    size_t n;
    const struct chan *ch = client_channels(c, &n);
    dctx_fail(c, 0, "");
    dout_list_begin(&c->o, "categories");
    for (size_t i = 0; i < s->n; i++) {
        int64_t count = 0;
        for (size_t k = 0; k < n; k++) {
            count += (uint64_t)rec_int(ch[k].rec, "category_id", 0) == s->out[i].id;
        }
        dout_item_begin(&c->o);
        dout_int(&c->o, "id", (int64_t)s->out[i].id);
        dout_str(&c->o, "name", rec_str(s->out[i].rec, "name"));
        dout_str(&c->o, "description", rec_str(s->out[i].rec, "description"));
        dout_str(&c->o, "color", rec_str(s->out[i].rec, "color"));
        dout_int(&c->o, "channels_count", count);
        dout_str(&c->o, "icon_url", "");
        dout_str(&c->o, "icon_tv_url", "");
        dout_str(&c->o, "dashboard_icon_url", "");
        dout_item_end(&c->o);
        json_decref(s->out[i].rec);
    }
    dout_list_end(&c->o);
}

/* ---- program list --------------------------------------------------------------------------- */

/* "dd.mm.YYYY" -> the UTC day's start. */
static bool parse_day(const char *s, int64_t *out)
{
    int d, m, y;
    char tail;
    if (s == NULL || sscanf(s, "%2d.%2d.%4d%c", &d, &m, &y, &tail) != 3 || d < 1 || d > 31 ||
        m < 1 || m > 12 || y < 1970 || y > 2100) {
        return false;
    }
    struct tm tm = {.tm_mday = d, .tm_mon = m - 1, .tm_year = y - 1900};
    *out = (int64_t)timegm(&tm);
    return true;
}

static bool in_archive(const json_t *ch, const struct prog *p, int64_t now)
{
    int64_t days = rec_int(ch, "archive_days", 0);
    return days > 0 && p->begin < now && p->begin >= now - days * DAY_S;
}

void dh_program_list(struct dctx *c)
{
    int64_t cid, from, to, pid_from = 0, now = (int64_t)(c->now_ms / 1000);
    struct prog *progs = dctx_scratch(c, DS_PROGRAMS, MAX_PROGRAMS * sizeof(*progs));
    if (progs == NULL) {
        dctx_fail(c, 1, "out of memory");
        return;
    }
    json_t *ch = dreq_int(&c->q, "cid", &cid) && cid > 0 ? own_channel(c, (uint64_t)cid) : NULL;
    if (ch == NULL) {
        dctx_fail(c, 1, "cid must name a channel");
        return;
    }
    bool has_from = dreq_int(&c->q, "time_from", &from);
    bool has_to = dreq_int(&c->q, "time_to", &to);
    const char *date = dreq_get(&c->q, "date");
    if (has_from || has_to) {
        from = has_from ? from : now - DAY_S;
        to = has_to ? to : from + DAY_S;
        if (to < from) { /* some clients send them the other way round */
            int64_t t = to;
            to = from;
            from = t;
        }
    } else if (date != NULL && date[0] != '\0') {
        if (!parse_day(date, &from)) {
            json_decref(ch);
            dctx_fail(c, 1, "date must be dd.mm.YYYY");
            return;
        }
        to = from + DAY_S;
    } else {
        from = now - now % DAY_S;
        to = from + DAY_S;
    }
    if (dreq_int(&c->q, "pid_from", &pid_from)) {
        struct prog one;
        struct prog_scan ps = {.pid = (uint64_t)pid_from, .at = -1, .max = 1, .out = &one};
        if (pid_from <= 0 || programs(c, (uint64_t)cid, &ps) == 0) {
            json_decref(ch);
            dctx_fail(c, 2, "pid_from not found");
            return;
        }
        from = one.begin;
        progs_free(&one, 1);
    }
    bool sub = c->account != NULL && entitled(c, (uint64_t)cid);
    struct prog_scan s = {.from = from, .to = to, .at = -1, .max = MAX_PROGRAMS, .out = progs};
    size_t n = programs(c, (uint64_t)cid, &s);
    char base[300], link[1024];
    base_url(c, base, sizeof(base));
    dctx_fail(c, 0, "");
    dout_list_begin(&c->o, "programs");
    for (size_t i = 0; i < n; i++) {
        const struct prog *p = &progs[i];
        bool rec = in_archive(ch, p, now);
        link[0] = '\0';
        if (c->account != NULL && rec && sub) {
            snprintf(link, sizeof(link),
                     "%s/tvmiddleware/api/program/url/?cid=%" PRId64 "&pid=%" PRIu64
                     "&client_id=%" PRIu64 "&authkey=%s",
                     base, cid, p->id, c->client_id, c->authkey);
        }
        dout_item_begin(&c->o);
        dout_int(&c->o, "id", (int64_t)p->id);
        dout_int(&c->o, "begin_time", p->begin);
        dout_int(&c->o, "end_time", p->end);
        dout_str(&c->o, "name", rec_str(p->rec, "name"));
        dout_str(&c->o, "short_name", rec_str(p->rec, "short_name"));
        dout_str(&c->o, "description", rec_str(p->rec, "description"));
        dout_str(&c->o, "category", rec_str(p->rec, "category"));
        dout_str(&c->o, "preview", rec_str(p->rec, "preview"));
        dout_int(&c->o, "rating", rec_int(p->rec, "rating", 0));
        dout_str(&c->o, "meta", rec_str(p->rec, "meta"));
        dout_str(&c->o, "url", link);
        dout_int(&c->o, "has_record", rec);
        dout_int(&c->o, "has_subscription", sub);
        dout_int(&c->o, "ads_available", 0);
        dout_int(&c->o, "position", 0);
        dout_int(&c->o, "blocked", 0);
        dout_item_end(&c->o);
    }
    dout_list_end(&c->o);
    progs_free(progs, n);
    json_decref(ch);
}

/* ---- routing and stream URLs ------------------------------------------------------------------
 */

struct pick {
    uint64_t id;
    json_t *svc;
    const char *mask; /* borrowed from svc */
};

static bool excluded(struct dctx *c, uint64_t id)
{
    const char *vals[MAX_EXCLUDED];
    unsigned n = dreq_all(&c->q, "exclude_service_id", vals, MAX_EXCLUDED);
    for (unsigned i = 0; i < n; i++) {
        for (const char *p = vals[i]; *p;) {
            char *end;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p) {
                p++;
                continue;
            }
            if (v == id) {
                return true;
            }
            p = end;
        }
    }
    return false;
}

struct svc_scan {
    struct dctx *c;
    size_t n;
    uint64_t *ids;
};

static int svc_one(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct svc_scan *s = arg;
    (void)value;
    (void)value_len;
    if (key_len == 8 && s->n < MAX_SERVICES) {
        s->ids[s->n++] = tvmw_get_be64(key);
    }
    return 0;
}

/* 0 = the account's datacenter, 1 = the edge's, 2 = elsewhere. */
static int dc_rank(struct dctx *c, const json_t *svc)
{
    int64_t dc = rec_int(svc, "datacenter_id", 0);
    if (dc <= 0) {
        return 2;
    }
    if (dc == rec_int(c->account, "data_center", -1)) {
        return 0;
    }
    const struct catalog *k = catalog(c);
    json_t *d = k ? cat_find(k->dc, k->n_dc, (uint64_t)dc) : NULL;
    const char *mine = c->dev->self->datacenter;
    int rank =
        d != NULL && mine[0] != '\0' &&
                (strcmp(rec_str(d, "code"), mine) == 0 || strcmp(rec_str(d, "name"), mine) == 0)
            ? 1
            : 2;
    json_decref(d);
    return rank;
}

static int pick_service(struct dctx *c, uint64_t channel, const char *kind, struct pick *out)
{
    uint64_t tariffs[DE_MAX_TARIFFS], ids[MAX_SERVICES];
    size_t nt = dm_account_tariffs(c, tariffs, DE_MAX_TARIFFS), n = 0;
    for (size_t i = 0; i < nt && n < MAX_SERVICES; i++) {
        if (dm_rel_has(c, "tar_chan", tariffs[i], channel)) {
            n += dm_rel(c, "tar_svc", tariffs[i], ids + n, MAX_SERVICES - n);
        }
    }
    if (n == 0) {
        struct svc_scan s = {.c = c, .ids = ids};
        edge_store_scan(&c->r, EDGE_DB_SERVICES, NULL, 0, NULL, 0, svc_one, &s);
        n = s.n;
    }
    qsort(ids, n, sizeof(ids[0]), cmp_u64);
    struct pick best[MAX_SERVICES];
    size_t nb = 0;
    int best_rank = 3;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && ids[i] == ids[i - 1]) {
            continue;
        }
        const struct catalog *cat = catalog(c);
        json_t *svc = cat ? cat_find(cat->svc, cat->n_svc, ids[i]) : NULL;
        const char *mask =
            json_string_value(json_object_get(json_object_get(svc, "url_masks"), kind));
        if (svc == NULL || mask == NULL || mask[0] == '\0' || !rec_int(svc, "enabled", 1) ||
            strcmp(rec_str(svc, "health"), "down") == 0 || excluded(c, ids[i])) {
            json_decref(svc);
            continue;
        }
        int rank = dc_rank(c, svc);
        if (rank > best_rank) {
            json_decref(svc);
            continue;
        }
        if (rank < best_rank) {
            for (size_t k = 0; k < nb; k++) {
                json_decref(best[k].svc);
            }
            nb = 0;
            total = 0;
            best_rank = rank;
        }
        best[nb++] = (struct pick){ids[i], svc, mask};
        int64_t w = rec_int(svc, "weight", 1);
        total += w > 0 ? (uint64_t)w : 0;
    }
    if (nb == 0) {
        return -1;
    }
    uint32_t rnd;
    RAND_bytes((uint8_t *)&rnd, sizeof(rnd));
    size_t chosen = rnd % nb;
    if (total > 0) {
        uint64_t x = rnd % total;
        for (chosen = 0; chosen < nb; chosen++) {
            int64_t w = rec_int(best[chosen].svc, "weight", 1);
            uint64_t wu = w > 0 ? (uint64_t)w : 0;
            if (x < wu) {
                break;
            }
            x -= wu;
        }
    }
    for (size_t k = 0; k < nb; k++) {
        if (k != chosen) {
            json_decref(best[k].svc);
        }
    }
    *out = best[chosen];
    return 0;
}

struct mask_vars {
    const char *token, *cid, *channel_id, *flpbt, *flpdur, *account_id, *abonement, *client_id,
        *utc;
};

/* Replaces the mask's $variables; unknown ones stay as written. The
 * longest name wins ($client_id before $cid). Returns a malloc'd string. */
static char *fill_mask(const char *mask, const struct mask_vars *v)
{
    const struct {
        const char *name, *value;
    } vars[] = {{"stream_name", v->cid},
                {"channel_id", v->channel_id},
                {"account_id", v->account_id},
                {"abonement", v->abonement},
                {"client_id", v->client_id},
                {"flpbt", v->flpbt},
                {"flpdur", v->flpdur},
                {"token", v->token},
                {"cid", v->cid},
                {"utc", v->utc}};
    struct tvmw_buf b;
    tvmw_buf_init(&b, 64 * 1024);
    for (const char *p = mask; *p;) {
        const char *dollar = strchr(p, '$');
        if (dollar == NULL) {
            tvmw_buf_append(&b, p, strlen(p));
            break;
        }
        tvmw_buf_append(&b, p, (size_t)(dollar - p));
        p = dollar + 1;
        size_t i = 0;
        for (; i < sizeof(vars) / sizeof(vars[0]); i++) {
            size_t n = strlen(vars[i].name);
            if (strncmp(p, vars[i].name, n) == 0) {
                tvmw_buf_append(&b, vars[i].value, strlen(vars[i].value));
                p += n;
                break;
            }
        }
        if (i == sizeof(vars) / sizeof(vars[0])) {
            tvmw_buf_append(&b, "$", 1);
        }
    }
    tvmw_buf_append(&b, "", 1);
    return tvmw_buf_detach(&b, NULL);
}

/* The one place a stream token is made for a URL (issue 6 validates it). */
static void stream_token(struct dctx *c, const json_t *svc, uint8_t kind, uint64_t content,
                         char out[EDGE_TOKEN_LEN + 1])
{
    const struct edge_keyring *ring = edge_keyring(&c->r);
    int64_t ttl =
        rec_int(json_object_get(c->client, "settings"), "stream_token_ttl_s", DEFAULT_TOKEN_TTL);
    struct edge_token t = {
        .kind = kind,
        .client = (uint32_t)c->client_id,
        .account = c->account_id,
        .content = content,
        .issued_s = (uint32_t)(c->now_ms / 1000),
        .expiry_s = (uint32_t)(c->now_ms / 1000 + (uint64_t)(ttl > 0 ? ttl : DEFAULT_TOKEN_TTL)),
        .ip_bind = rec_int(svc, "token_ip_binding", 0) ? edge_token_ip_bind(dctx_ip(c)) : 0,
    };
    if (ring == NULL || edge_token_issue(ring, &t, out) != 0) {
        out[0] = '\0';
    }
}

int dctx_stream_uri(struct dctx *c, uint64_t cid, bool archive, const char *begin, const char *dur,
                    char **uri, uint64_t *service_id, const char **why)
{
    json_t *ch = own_channel(c, cid);
    if (ch == NULL) {
        *why = "Channel not found";
        return DE_NOT_FOUND;
    }
    struct pick pk;
    if (!entitled(c, cid)) {
        json_decref(ch);
        *why = "The account has no subscription to this channel";
        return 1;
    }
    if (pick_service(c, cid, archive ? "archive" : "live", &pk) != 0) {
        json_decref(ch);
        *why = "No streaming service is available for this channel";
        return 1;
    }
    char token[EDGE_TOKEN_LEN + 1], chan_id[24], acc[24], cli[24], utc[24];
    stream_token(c, pk.svc, archive ? EDGE_TOKEN_ARCHIVE : EDGE_TOKEN_LIVE, cid, token);
    snprintf(chan_id, sizeof(chan_id), "%" PRIu64, cid);
    snprintf(acc, sizeof(acc), "%" PRIu64, c->account_id);
    snprintf(cli, sizeof(cli), "%" PRIu64, c->client_id);
    snprintf(utc, sizeof(utc), "%" PRIu64, c->now_ms / 1000);
    const char *stream = rec_str(ch, "stream_name");
    struct mask_vars v = {.token = token,
                          .cid = stream[0] ? stream : chan_id,
                          .channel_id = chan_id,
                          .flpbt = archive && begin ? begin : "",
                          .flpdur = archive && dur ? dur : "",
                          .account_id = acc,
                          .abonement = rec_str(c->account, "abonement"),
                          .client_id = cli,
                          .utc = utc};
    *uri = fill_mask(pk.mask, &v);
    *service_id = pk.id;
    json_decref(pk.svc);
    json_decref(ch);
    *why = "out of memory";
    return *uri != NULL ? 0 : 1;
}

/* channel/url and program/url (§9): the stream URI as a body or a 302. */
static void stream_url(struct dctx *c, bool archive)
{
    int64_t cid, now = (int64_t)(c->now_ms / 1000);
    if (!dreq_int(&c->q, "cid", &cid) || cid <= 0) {
        dctx_fail(c, 1, "cid must be a channel id");
        return;
    }
    char begin[24] = "", dur[24] = "";
    if (archive) {
        json_t *ch = own_channel(c, (uint64_t)cid);
        int64_t pid = 0, at = -1;
        struct prog p;
        struct prog_scan s = {.at = -1, .max = 1, .out = &p};
        if (dreq_int(&c->q, "pid", &pid) && pid > 0) {
            s.pid = (uint64_t)pid;
        } else if (dreq_int(&c->q, "time", &at) && at >= 0) {
            s.at = at;
        } else {
            json_decref(ch);
            dctx_fail(c, 1, "pid or time is required");
            return;
        }
        bool pause = dreq_flag(&c->q, "tv_pause", 0);
        if (ch == NULL || programs(c, (uint64_t)cid, &s) == 0 ||
            (!pause && !in_archive(ch, &p, now))) {
            if (s.n) {
                progs_free(&p, 1);
            }
            json_decref(ch);
            dctx_fail(c, DE_NOT_FOUND,
                      ch ? "Program not found in the archive" : "Channel not found");
            return;
        }
        snprintf(begin, sizeof(begin), "%" PRId64, p.begin);
        if (pause) {
            strcpy(dur, "now");
        } else {
            snprintf(dur, sizeof(dur), "%" PRId64, p.end - p.begin);
        }
        progs_free(&p, 1);
        json_decref(ch);
    }
    char *uri;
    uint64_t svc;
    const char *why;
    int err = dctx_stream_uri(c, (uint64_t)cid, archive, begin, dur, &uri, &svc, &why);
    if (err != 0) {
        /* No subscription is error 1, not 403: clients read 403 as a lost
         * session (§9.1). */
        dctx_fail(c, err, why);
        return;
    }
    dout_int(&c->o, "error", 0);
    dout_str(&c->o, "error_message", "");
    dout_str(&c->o, "uri", uri);
    dout_int(&c->o, "stream_service_id", (int64_t)svc);
    dout_str(&c->o, archive ? "preview_uri_mask" : "archive_preview_url_mask", "");
    dout_str(&c->o, "lock_banner", "");
    if (dreq_flag(&c->q, "redirect", 1)) {
        c->location = uri;
    } else {
        free(uri);
    }
}

void dh_channel_url(struct dctx *c)
{
    stream_url(c, false);
}

void dh_program_url(struct dctx *c)
{
    stream_url(c, true);
}
