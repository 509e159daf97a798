/*
 * EPG import (see epg_import.h): parse into a spool, then propose sorted
 * batches; URL downloads; the leader's scheduler.
 */
#include "controlplane/epg_import.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lmdb.h>
#include <raft.h>

#include "common/buf.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/xmltv.h"
#include "controlplane/catalog.h"
#include "controlplane/epg.h"

#define SPOOL_FLUSH_BYTES   (1u << 20)
#define PROGRESS_EVERY      (16u << 20) /* a progress line per 16 MiB of XML */
#define BATCH_MAX_BYTES     (4u << 20)
#define BATCH_MAX_PROGRAMS  5000
#define MAX_UNMAPPED_IDS    20 /* shown in the report */
#define MAX_SKIP_EXAMPLES   10
#define META_FIELD_BYTES    64
#define PROPOSE_MIN_MS      30000
#define RETRY_PAUSE_MS      200
#define MAX_RUNNING         64
#define EXPIRE_BATCH        10000
#define FETCH_CONNECT_MS    15000
#define FETCH_LOW_SPEED_S   60
#define FETCH_MAX_REDIRECTS 5

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- spool files ------------------------------------------------------------------ */

void cp_epg_spool_dir(const struct tvmw_config *conf, char *out, size_t len)
{
    if (conf->epg.spool_dir[0] != '\0') {
        snprintf(out, len, "%s", conf->epg.spool_dir);
    } else {
        snprintf(out, len, "%s/epg-spool", conf->data_root);
    }
}

int cp_epg_spool_open(const struct tvmw_config *conf, int *out)
{
    char dir[600], path[700];
    cp_epg_spool_dir(conf, dir, sizeof(dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(path, sizeof(path), "%s/epg-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0) {
            return -errno;
        }
        unlink(path);
    }
    *out = fd;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- one import per source at a time ------------------------------------------------ */

static pthread_mutex_t running_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t running[MAX_RUNNING]; /* source ids being imported; guarded by running_mu */

static bool claim(uint64_t source)
{
    bool ok = false;
    pthread_mutex_lock(&running_mu);
    int free_slot = -1;
    bool taken = false;
    for (int i = 0; i < MAX_RUNNING; i++) {
        taken = taken || running[i] == source;
        if (running[i] == 0 && free_slot < 0) {
            free_slot = i;
        }
    }
    if (!taken && free_slot >= 0) {
        running[free_slot] = source;
        ok = true;
    }
    pthread_mutex_unlock(&running_mu);
    return ok;
}

static void release(uint64_t source)
{
    pthread_mutex_lock(&running_mu);
    for (int i = 0; i < MAX_RUNNING; i++) {
        if (running[i] == source) {
            running[i] = 0;
        }
    }
    pthread_mutex_unlock(&running_mu);
}

/* ---- proposing ---------------------------------------------------------------------- */

static int member_http(const struct cp_epg_env *env, uint64_t id, char *out, size_t len)
{
    const struct tvmw_node_conf *nc = tvmw_config_node(env->conf, id);
    if (nc != NULL) {
        snprintf(out, len, "%s", nc->http_address);
        return 0;
    }
    struct cp_fsm *fsm = cp_node_fsm(env->node);
    MDB_txn *txn;
    json_t *rec;
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_get(txn, cp_fsm_dbs(fsm)->members, id, &rec);
    mdb_txn_abort(txn);
    if (rv != 0) {
        return rv;
    }
    const char *h = json_string_value(json_object_get(rec, "http_address"));
    if (h != NULL) {
        snprintf(out, len, "%s", h);
    }
    json_decref(rec);
    return h != NULL ? 0 : TVMW_ENOTFOUND;
}

/* Sends the command to the leader's epg-commands route. 0 with *res once
 * the leader answered (any status but 503), else TVMW_EIO. */
static int forward(const struct cp_epg_env *env, uint64_t leader, const json_t *payload,
                   const char *text, const uint8_t reqid[CP_REQID_SIZE], unsigned timeout_ms,
                   struct cp_result **res)
{
    char addr[TVMW_ADDR_MAX], url[256], auth[300], rid[80], hop[64], err[256];
    char hex[2 * CP_REQID_SIZE + 1];
    if (member_http(env, leader, addr, sizeof(addr)) != 0) {
        return TVMW_EIO;
    }
    snprintf(url, sizeof(url), "http://%s/admin/v1/clients/%lld/epg-commands", addr,
             (long long)json_integer_value(json_object_get(payload, "client_id")));
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", env->conf->admin_token);
    cp_reqid_hex(reqid, hex);
    snprintf(rid, sizeof(rid), "X-Tvmw-Request-Id: %s", hex);
    /* The leader must not forward it again: if it is no longer the leader
     * it answers 503 and we look for the new one. */
    snprintf(hop, sizeof(hop), "X-Tvmw-Forwarded: %llu", (unsigned long long)cp_node_id(env->node));
    const char *headers[] = {auth, "Content-Type: application/json", rid, hop, NULL};
    struct tvmw_httpc_resp resp;
    int rv = tvmw_httpc_do(env->httpc, "POST", url, headers, text, strlen(text), timeout_ms, &resp,
                           err, sizeof(err));
    if (rv == 0 && resp.status != 503) {
        *res = cp_result_new((unsigned)resp.status, resp.body.data ? resp.body.data : "",
                             resp.body.len);
        rv = *res != NULL ? 0 : -ENOMEM;
    } else {
        TVMW_LOG_DEBUG("epg", "forward to leader=%llu failed: %s", (unsigned long long)leader,
                       rv == 0 ? "503" : err);
        rv = TVMW_EIO;
    }
    explicit_bzero(auth, sizeof(auth));
    tvmw_buf_close(&resp.body);
    return rv;
}

int cp_epg_propose(const struct cp_epg_env *env, const json_t *payload,
                   const uint8_t reqid[CP_REQID_SIZE], unsigned timeout_ms, struct cp_result **res)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t plen = strlen(text);
    uint64_t deadline = tvmw_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int rv;
    for (;;) {
        uint64_t now = tvmw_now_ns();
        unsigned left = now < deadline ? (unsigned)((deadline - now) / 1000000u) : 0;
        if (left == 0) {
            rv = TVMW_EUNKNOWN;
            break;
        }
        size_t len = cp_cmd_encoded_size(plen);
        if (len > CP_CMD_MAX_BYTES) {
            rv = TVMW_ETOOBIG;
            break;
        }
        void *buf = raft_malloc(len);
        if (buf == NULL) {
            rv = -ENOMEM;
            break;
        }
        struct cp_cmd cmd = {
            .type = CP_CMD_EPG, .time_ms = tvmw_wall_ms(), .payload = text, .payload_len = plen};
        memcpy(cmd.reqid, reqid, CP_REQID_SIZE);
        cp_cmd_encode(&cmd, buf, len);
        uint64_t leader = 0;
        rv = cp_node_write(env->node, buf, len, reqid, left, res, &leader);
        if (rv == 0) {
            break;
        }
        if (rv == TVMW_ENOTLEADER && leader != 0 && env->httpc != NULL &&
            forward(env, leader, payload, text, reqid, left, res) == 0) {
            rv = 0;
            break;
        }
        if (rv == TVMW_ENOTLEADER && env->httpc == NULL) {
            break; /* the scheduler of a former leader: the new one takes over */
        }
        if (rv != TVMW_ENOTLEADER && rv != TVMW_ENOTAPPLIED && rv != TVMW_EUNKNOWN) {
            break;
        }
        sleep_ms(RETRY_PAUSE_MS); /* same request id: a retry never applies twice */
    }
    free(text);
    return rv;
}

static unsigned propose_timeout_ms(const struct tvmw_config *conf)
{
    unsigned t = conf->http.request_timeout_ms * 3;
    return t > PROPOSE_MIN_MS ? t : PROPOSE_MIN_MS;
}

/* Proposes with a request id derived from "<key>:<what>". */
static int propose_keyed(const struct cp_epg_env *env, const json_t *payload, const char *key,
                         const char *what, struct cp_result **res)
{
    char k[256];
    uint8_t reqid[CP_REQID_SIZE];
    snprintf(k, sizeof(k), "epg:%s:%s", key, what);
    cp_reqid_make(k, reqid);
    return cp_epg_propose(env, payload, reqid, propose_timeout_ms(env->conf), res);
}

/* ---- the channel map ---------------------------------------------------------------- */

struct target {
    char *xmltv_id;
    uint64_t channel;
    int64_t correction_s;
};

static int target_cmp(const void *a, const void *b)
{
    const struct target *x = a, *y = b;
    int c = strcmp(x->xmltv_id, y->xmltv_id);
    return c != 0 ? c : (x->channel > y->channel) - (x->channel < y->channel);
}

/* ---- the import ----------------------------------------------------------------------- */

struct entry {
    uint64_t channel;
    int64_t begin, end; /* end 0: none given */
    uint64_t off;       /* of the record in the spool */
    uint32_t len;
    uint32_t seq; /* document order */
};

struct import {
    const struct cp_epg_env *env;
    uint64_t client, source;
    const char *key;
    int64_t source_correction_s;
    struct target *targets;
    size_t n_targets;
    struct entry *idx;
    size_t n, cap;
    uint32_t seq;
    int spool_fd;
    struct tvmw_buf wbuf;
    uint64_t spool_off;
    int spool_err;
    uint64_t t0_ns;
    /* counts */
    uint64_t read, unmapped, bad_time, duplicates, overlaps, no_stop, too_long;
    json_t *unmapped_ids; /* a few */
    json_t *skipped;      /* a few {"line", "why"} */
    /* batches */
    json_t *batch_channels;
    json_t *entry_obj;
    json_t *entry_progs;
    uint64_t entry_channel;
    size_t batch_bytes, batch_programs, batch_limit;
    unsigned batches;
    json_int_t channels, channels_unchanged, programs, inserted, updated, unchanged, deleted;
    json_t *missing;
    char why[300];
};

static const struct target *first_target(const struct import *im, const char *id)
{
    size_t lo = 0, hi = im->n_targets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(im->targets[mid].xmltv_id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < im->n_targets && strcmp(im->targets[lo].xmltv_id, id) == 0 ? &im->targets[lo]
                                                                           : NULL;
}

static int add_target(struct target **arr, size_t *n, size_t *cap, const char *id, uint64_t ch,
                      int64_t corr)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct target *t = realloc(*arr, nc * sizeof(*t));
        if (t == NULL) {
            return -ENOMEM;
        }
        *arr = t;
        *cap = nc;
    }
    (*arr)[*n].xmltv_id = strdup(id);
    if ((*arr)[*n].xmltv_id == NULL) {
        return -ENOMEM;
    }
    (*arr)[*n].channel = ch;
    (*arr)[*n].correction_s = corr;
    (*n)++;
    return 0;
}

/* The explicit map of the source, then (if use_epg_channel_id) every
 * channel's epg_channel_id; a pair (xmltv id, channel) counts once, the
 * explicit entry winning. */
static int build_map(struct import *im, json_t *source)
{
    json_t *channels = NULL;
    int rv = cp_catalog_list(cp_node_fsm(im->env->node), im->client, "channels", &channels);
    if (rv != 0) {
        return rv;
    }
    size_t cap = 0, i, j;
    json_t *e, *ch;
    json_array_foreach(json_object_get(source, "channel_map"), i, e)
    {
        uint64_t cid = (uint64_t)json_integer_value(json_object_get(e, "channel_id"));
        json_t *corr = json_object_get(e, "time_correction_s");
        json_t *found = NULL;
        json_array_foreach(channels, j, ch)
        {
            if ((uint64_t)json_integer_value(json_object_get(ch, "id")) == cid) {
                found = ch;
            }
        }
        if (found == NULL) {
            continue; /* deleted since the map was written */
        }
        if (corr == NULL) {
            corr = json_object_get(found, "epg_time_correction_s");
        }
        if ((rv = add_target(&im->targets, &im->n_targets, &cap,
                             json_string_value(json_object_get(e, "xmltv_id")), cid,
                             json_integer_value(corr))) != 0) {
            goto out;
        }
    }
    size_t explicit_n = im->n_targets;
    if (json_integer_value(json_object_get(source, "use_epg_channel_id")) != 0) {
        json_array_foreach(channels, j, ch)
        {
            const char *id = json_string_value(json_object_get(ch, "epg_channel_id"));
            uint64_t cid = (uint64_t)json_integer_value(json_object_get(ch, "id"));
            bool dup = false;
            for (size_t k = 0; id != NULL && k < explicit_n; k++) {
                dup = dup ||
                      (im->targets[k].channel == cid && strcmp(im->targets[k].xmltv_id, id) == 0);
            }
            if (id == NULL || id[0] == '\0' || dup) {
                continue;
            }
            if ((rv = add_target(
                     &im->targets, &im->n_targets, &cap, id, cid,
                     json_integer_value(json_object_get(ch, "epg_time_correction_s")))) != 0) {
                goto out;
            }
        }
    }
    qsort(im->targets, im->n_targets, sizeof(*im->targets), target_cmp);
out:
    json_decref(channels);
    return rv;
}

/* ---- phase 1: parse into the spool ---------------------------------------------------- */

static int spool_flush(struct import *im)
{
    if (im->wbuf.len > 0 && im->spool_err == 0) {
        im->spool_err = write_all(im->spool_fd, im->wbuf.data, im->wbuf.len);
    }
    im->wbuf.len = 0;
    return im->spool_err;
}

static int spool_str(struct import *im, const char *s, size_t n)
{
    uint8_t len[4];
    tvmw_put_u32(len, (uint32_t)n);
    int rv = tvmw_buf_append(&im->wbuf, len, 4);
    return rv != 0 ? rv : tvmw_buf_append(&im->wbuf, s, n);
}

/* Length of the longest prefix of s of at most max bytes that ends on a
 * UTF-8 character boundary. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) {
        return n;
    }
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

static json_t *short_str(const char *s)
{
    return json_stringn(s, utf8_prefix(s, META_FIELD_BYTES));
}

/* The programme's "meta": JSON text of what the device API and the
 * exports may want beyond the fixed fields. */
static char *make_meta(const struct import *im, const struct tvmw_xmltv_programme *p)
{
    json_t *m = json_pack("{s:I}", "source_id", (json_int_t)im->source);
    if (p->title_lang[0] != '\0') {
        json_object_set_new(m, "lang", short_str(p->title_lang));
    }
    if (p->date[0] != '\0') {
        json_object_set_new(m, "date", short_str(p->date));
    }
    if (p->episode_xmltv_ns[0] != '\0' || p->episode_onscreen[0] != '\0') {
        json_t *ep = json_object();
        if (p->episode_xmltv_ns[0] != '\0') {
            json_object_set_new(ep, "xmltv_ns", short_str(p->episode_xmltv_ns));
        }
        if (p->episode_onscreen[0] != '\0') {
            json_object_set_new(ep, "onscreen", short_str(p->episode_onscreen));
        }
        json_object_set_new(m, "episode_num", ep);
    }
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return text;
}

static void note_skip(struct import *im, unsigned long line, const char *why)
{
    if (json_array_size(im->skipped) < MAX_SKIP_EXAMPLES) {
        json_array_append_new(im->skipped,
                              json_pack("{s:I, s:s}", "line", (json_int_t)line, "why", why));
        TVMW_LOG_WARN("epg", "import source=%llu skips a programme line=%lu: %s",
                      (unsigned long long)im->source, line, why);
    }
}

static void on_skipped(void *arg, unsigned long line, const char *why)
{
    note_skip(arg, line, why);
}

static void on_progress(void *arg, uint64_t bytes_in, uint64_t bytes_xml)
{
    struct import *im = arg;
    TVMW_LOG_INFO("epg",
                  "import source=%llu progress read_mb=%.1f xml_mb=%.1f programmes=%llu "
                  "kept=%zu elapsed_ms=%llu",
                  (unsigned long long)im->source, (double)bytes_in / 1048576.0,
                  (double)bytes_xml / 1048576.0, (unsigned long long)im->read, im->n,
                  (unsigned long long)((tvmw_now_ns() - im->t0_ns) / 1000000u));
}

static bool cancelled(const struct cp_epg_env *env)
{
    return env->cancel != NULL && *env->cancel;
}

static int on_programme(void *arg, const struct tvmw_xmltv_programme *p)
{
    struct import *im = arg;
    if ((im->read & 1023) == 0 && cancelled(im->env)) {
        snprintf(im->why, sizeof(im->why), "the node is stopping");
        return TVMW_ESHUTDOWN;
    }
    im->read++;
    const struct target *t = first_target(im, p->channel);
    if (t == NULL) {
        im->unmapped++;
        bool known = false;
        size_t i;
        json_t *v;
        json_array_foreach(im->unmapped_ids, i, v)
        {
            known = known || strcmp(json_string_value(v), p->channel) == 0;
        }
        if (!known && json_array_size(im->unmapped_ids) < MAX_UNMAPPED_IDS) {
            json_array_append_new(im->unmapped_ids, json_string(p->channel));
        }
        return 0;
    }
    char *meta = make_meta(im, p);
    if (meta == NULL) {
        return -ENOMEM;
    }
    int rv = 0;
    for (; t < im->targets + im->n_targets && strcmp(t->xmltv_id, p->channel) == 0; t++) {
        int64_t corr = im->source_correction_s + t->correction_s;
        int64_t b = p->start_s + corr, e = p->stop_s != 0 ? p->stop_s + corr : 0;
        if (b <= 0 || (p->stop_s != 0 && e <= 0)) {
            im->bad_time++;
            note_skip(im, p->line, "time before 1970 after the correction");
            continue;
        }
        if (im->n == im->env->conf->epg.max_programmes) {
            snprintf(im->why, sizeof(im->why), "more than %u programmes (epg.max_programmes)",
                     im->env->conf->epg.max_programmes);
            rv = TVMW_ETOOBIG;
            break;
        }
        if (im->n == im->cap) {
            size_t nc = im->cap ? im->cap * 2 : 4096;
            struct entry *ne = realloc(im->idx, nc * sizeof(*ne));
            if (ne == NULL) {
                rv = -ENOMEM;
                break;
            }
            im->idx = ne;
            im->cap = nc;
        }
        size_t start = im->wbuf.len;
        const char *strs[] = {p->title, p->sub_title, p->desc, p->category,
                              p->icon,  p->rating,    meta};
        for (size_t k = 0; k < 7 && rv == 0; k++) {
            rv = spool_str(im, strs[k], strlen(strs[k]));
        }
        if (rv != 0) {
            break;
        }
        struct entry *en = &im->idx[im->n++];
        en->channel = t->channel;
        en->begin = b;
        en->end = e;
        en->off = im->spool_off;
        en->len = (uint32_t)(im->wbuf.len - start);
        en->seq = im->seq++;
        im->spool_off += en->len;
        if (im->wbuf.len >= SPOOL_FLUSH_BYTES && (rv = spool_flush(im)) != 0) {
            snprintf(im->why, sizeof(im->why), "cannot write the spool file: %s", strerror(-rv));
            break;
        }
    }
    free(meta);
    return rv;
}

/* ---- phase 2: sort, resolve, batch, propose ------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->channel != y->channel) {
        return x->channel < y->channel ? -1 : 1;
    }
    if (x->begin != y->begin) {
        return x->begin < y->begin ? -1 : 1;
    }
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int propose_batch(struct import *im)
{
    if (json_array_size(im->batch_channels) == 0) {
        return 0;
    }
    if (cancelled(im->env)) {
        snprintf(im->why, sizeof(im->why), "the node is stopping");
        return TVMW_ESHUTDOWN;
    }
    char what[32];
    snprintf(what, sizeof(what), "batch:%u", im->batches);
    json_t *p =
        json_pack("{s:s, s:I, s:I, s:O}", "op", "programs", "client_id", (json_int_t)im->client,
                  "source_id", (json_int_t)im->source, "channels", im->batch_channels);
    struct cp_result *res = NULL;
    int rv = p ? propose_keyed(im->env, p, im->key, what, &res) : -ENOMEM;
    json_decref(p);
    if (rv != 0) {
        snprintf(im->why, sizeof(im->why), "batch %u of programmes not applied: %s",
                 im->batches + 1, tvmw_strerror(rv));
        return rv;
    }
    json_t *o = json_loadb(res->body, res->len, 0, NULL);
    unsigned status = res->status;
    cp_result_free(res);
    if (status != 200 || o == NULL) {
        const char *msg = json_string_value(json_object_get(o, "message"));
        snprintf(im->why, sizeof(im->why), "batch %u of programmes refused (%u): %s",
                 im->batches + 1, status, msg ? msg : "no message");
        json_decref(o);
        /* Not the document's fault: the source or client went away (404),
         * or a batch this node built was refused (a bug: "internal"). */
        return status == 404 ? TVMW_ENOTFOUND : TVMW_ECORRUPT;
    }
    im->inserted += json_integer_value(json_object_get(o, "inserted"));
    im->updated += json_integer_value(json_object_get(o, "updated"));
    im->unchanged += json_integer_value(json_object_get(o, "unchanged"));
    im->deleted += json_integer_value(json_object_get(o, "deleted"));
    json_array_extend(im->missing, json_object_get(o, "missing_channels"));
    json_decref(o);
    im->batches++;
    json_array_clear(im->batch_channels);
    im->batch_bytes = 0;
    im->batch_programs = 0;
    return 0;
}

/* The 7 strings of a spool record: name, short_name, description,
 * category, preview, rating, meta. */
static int decode_record(const struct entry *e, const uint8_t *rec, const char *s[7], size_t n[7])
{
    size_t off = 0;
    for (int k = 0; k < 7; k++) {
        if (off + 4 > e->len) {
            return TVMW_ECORRUPT;
        }
        n[k] = (size_t)tvmw_get_u32(rec + off);
        if (n[k] > e->len - off - 4) {
            return TVMW_ECORRUPT;
        }
        s[k] = (const char *)rec + off + 4;
        off += 4 + n[k];
    }
    return 0;
}

static int read_record(struct import *im, const struct entry *e, uint8_t **rec, size_t *rec_cap)
{
    if (e->len > *rec_cap) {
        uint8_t *nr = realloc(*rec, e->len);
        if (nr == NULL) {
            return -ENOMEM;
        }
        *rec = nr;
        *rec_cap = e->len;
    }
    if (pread(im->spool_fd, *rec, e->len, (off_t)e->off) != (ssize_t)e->len) {
        snprintf(im->why, sizeof(im->why), "cannot read the spool file back");
        return TVMW_EIO;
    }
    return 0;
}

/* Adds one resolved programme (its record read back from the spool). */
static int add_program(struct import *im, const struct entry *e, int64_t end, uint8_t *rec)
{
    const char *s[7];
    size_t n[7], est = 96;
    int rv = decode_record(e, rec, s, n);
    if (rv != 0) {
        return rv;
    }
    for (int k = 0; k < 7; k++) {
        est += 2 * n[k] + 4; /* JSON escaping at most doubles XML text */
    }
    if (im->batch_programs > 0 &&
        (im->batch_bytes + est > im->batch_limit || im->batch_programs >= BATCH_MAX_PROGRAMS)) {
        if (im->entry_obj != NULL) {
            /* The channel goes on in the next batch: this chunk ends there. */
            json_object_set_new(im->entry_obj, "to", json_integer(e->begin));
            im->entry_obj = NULL;
        }
        if ((rv = propose_batch(im)) != 0) {
            return rv;
        }
    }
    if (im->entry_obj == NULL || im->entry_channel != e->channel) {
        im->entry_progs = json_array();
        im->entry_obj =
            json_pack("{s:I, s:I, s:I, s:o}", "channel_id", (json_int_t)e->channel, "from",
                      (json_int_t)e->begin, "to", (json_int_t)0, "programs", im->entry_progs);
        im->entry_channel = e->channel;
        json_array_append_new(im->batch_channels, im->entry_obj);
        im->batch_bytes += 96;
    }
    json_t *p = json_array();
    json_array_append_new(p, json_integer(e->begin));
    json_array_append_new(p, json_integer(end));
    for (int k = 0; k < 7; k++) {
        json_t *str = json_stringn(s[k], n[k]);
        if (str == NULL) {
            json_decref(p);
            return TVMW_ECORRUPT;
        }
        json_array_append_new(p, str);
    }
    json_array_append_new(im->entry_progs, p);
    im->batch_bytes += est;
    im->batch_programs++;
    im->programs++;
    return 0;
}

static bool same_str(json_t *o, const char *key, const char *s, size_t n)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* Whether this node's state already holds exactly these programmes of
 * the channel in [from, to): then proposing them would change nothing,
 * and the channel is left out (a routine re-import of an unchanged guide
 * costs no raft entries). The state was brought up to date with the
 * cluster when the import began (sync_state). */
static int channel_unchanged(struct import *im, const struct entry *kept, size_t m, int64_t to,
                             uint8_t **rec, size_t *rec_cap, bool *same)
{
    struct cp_fsm *fsm = cp_node_fsm(im->env->node);
    MDB_txn *txn;
    MDB_cursor *cur;
    *same = false;
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv != 0) {
        return 0; /* then propose: apply decides */
    }
    if (mdb_cursor_open(txn, cp_fsm_dbs(fsm)->programs, &cur) != 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    uint64_t ch = kept[0].channel;
    uint8_t key[CP_EPG_KEY_SIZE];
    cp_epg_program_key(key, ch, (uint64_t)kept[0].begin);
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool same_so_far = true;
    for (size_t i = 0; i < m && same_so_far && rv == 0; i++) {
        const char *s[7];
        size_t n[7];
        if (rc != 0 || k.mv_size != CP_EPG_KEY_SIZE || tvmw_get_be64(k.mv_data) != ch ||
            tvmw_get_be64((uint8_t *)k.mv_data + 8) != (uint64_t)kept[i].begin) {
            same_so_far = false;
            break;
        }
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if ((rv = read_record(im, &kept[i], rec, rec_cap)) == 0 &&
            (rv = decode_record(&kept[i], *rec, s, n)) == 0) {
            static const char *const keys[] = {"name",    "short_name", "description", "category",
                                               "preview", "rating",     "meta"};
            same_so_far =
                o != NULL && json_integer_value(json_object_get(o, "end_time")) == kept[i].end &&
                (uint64_t)json_integer_value(json_object_get(o, "client_id")) == im->client;
            for (int f = 0; f < 7 && same_so_far; f++) {
                same_so_far = same_str(o, keys[f], s[f], n[f]);
            }
        }
        json_decref(o);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    /* Nothing else may begin in the range. */
    if (same_so_far && rv == 0 && rc == 0 && k.mv_size == CP_EPG_KEY_SIZE &&
        tvmw_get_be64(k.mv_data) == ch && tvmw_get_be64((uint8_t *)k.mv_data + 8) < (uint64_t)to) {
        same_so_far = false;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    *same = same_so_far && rv == 0;
    return rv == TVMW_EIO || rv == -ENOMEM ? rv : 0;
}

/* One channel's entries [a, b) of the sorted index: drops duplicates (the
 * last in the document wins), takes a missing stop from the next start,
 * cuts overlaps, and adds the rest unless the state has them already. */
static int add_channel(struct import *im, struct entry *a, struct entry *b, uint8_t **rec,
                       size_t *rec_cap)
{
    size_t m = 0;
    for (struct entry *e = a; e < b; e++) {
        if (e + 1 < b && e[1].begin == e->begin) {
            im->duplicates++;
            continue;
        }
        a[m++] = *e; /* compacts in place: m <= e - a */
    }
    /* Final ends, in place; dropped entries compacted away. */
    size_t kept = 0;
    for (size_t i = 0; i < m; i++) {
        struct entry e = a[i];
        if (e.end == 0) {
            if (i + 1 == m) {
                im->no_stop++;
                continue;
            }
            e.end = a[i + 1].begin;
        }
        if (i + 1 < m && e.end > a[i + 1].begin) {
            im->overlaps++;
            e.end = a[i + 1].begin;
        }
        if (e.end - e.begin > CP_EPG_MAX_DURATION_S) {
            im->too_long++;
            continue;
        }
        a[kept++] = e; /* kept <= i */
    }
    if (kept == 0) {
        return 0;
    }
    bool same;
    int rv = channel_unchanged(im, a, kept, a[kept - 1].end, rec, rec_cap, &same);
    if (rv != 0) {
        return rv;
    }
    im->channels++;
    if (same) {
        im->channels_unchanged++;
        im->unchanged += (json_int_t)kept;
        im->programs += (json_int_t)kept;
        return 0;
    }
    for (size_t i = 0; i < kept; i++) {
        if ((rv = read_record(im, &a[i], rec, rec_cap)) != 0 ||
            (rv = add_program(im, &a[i], a[i].end, *rec)) != 0) {
            return rv;
        }
    }
    if (im->entry_obj != NULL && im->entry_channel == a->channel) {
        json_object_set_new(im->entry_obj, "to", json_integer(a[kept - 1].end));
        im->entry_obj = NULL;
    }
    return 0;
}

static int propose_all(struct import *im)
{
    qsort(im->idx, im->n, sizeof(*im->idx), entry_cmp);
    uint8_t *rec = NULL;
    size_t rec_cap = 0;
    int rv = 0;
    for (size_t i = 0; i < im->n && rv == 0;) {
        size_t j = i;
        while (j < im->n && im->idx[j].channel == im->idx[i].channel) {
            j++;
        }
        rv = add_channel(im, im->idx + i, im->idx + j, &rec, &rec_cap);
        i = j;
    }
    if (rv == 0) {
        rv = propose_batch(im);
    }
    free(rec);
    return rv;
}

/* ---- the whole import ---------------------------------------------------------------- */

static const char *code_of(int rv)
{
    switch (rv) {
    case TVMW_EMALFORMED:
        return "invalid_xmltv";
    case TVMW_ETOOBIG:
        return "too_large";
    case TVMW_ENOTFOUND:
        return "not_found";
    case TVMW_EBUSY:
        return "busy";
    case TVMW_ENOTLEADER:
    case TVMW_ENOLEADER:
    case TVMW_EUNKNOWN:
    case TVMW_ENOTAPPLIED:
    case TVMW_ESHUTDOWN:
    case TVMW_EIO:
        return "unavailable";
    default:
        return "internal";
    }
}

static void import_free(struct import *im)
{
    for (size_t i = 0; i < im->n_targets; i++) {
        free(im->targets[i].xmltv_id);
    }
    free(im->targets);
    free(im->idx);
    tvmw_buf_close(&im->wbuf);
    json_decref(im->unmapped_ids);
    json_decref(im->skipped);
    json_decref(im->batch_channels);
    json_decref(im->missing);
}

/* Records the outcome in the source (best effort: it is only a report). */
static void record_status(const struct cp_epg_env *env, uint64_t client, uint64_t source,
                          const char *key, json_t *report, const char *etag, const char *lm)
{
    json_t *p = json_pack("{s:s, s:I, s:I, s:O}", "op", "import_status", "client_id",
                          (json_int_t)client, "source_id", (json_int_t)source, "report", report);
    if (p == NULL) {
        return;
    }
    if (etag != NULL) {
        json_object_set_new(p, "etag", json_string(etag));
    }
    if (lm != NULL) {
        json_object_set_new(p, "last_modified", json_string(lm));
    }
    struct cp_result *res = NULL;
    int rv = propose_keyed(env, p, key, "status", &res);
    json_decref(p);
    if (rv != 0 || res->status != 200) {
        TVMW_LOG_WARN("epg", "import source=%llu: its outcome could not be recorded: %s",
                      (unsigned long long)source, rv != 0 ? tvmw_strerror(rv) : res->body);
    }
    json_object_set_new(report, "recorded", json_boolean(rv == 0 && res->status == 200));
    cp_result_free(res);
}

static json_t *error_report(uint64_t source, int rv, const char *why)
{
    return json_pack("{s:I, s:s, s:s, s:s}", "source_id", (json_int_t)source, "status", "error",
                     "error", code_of(rv), "message", why);
}

/* The import of a document already in fd, for a claimed source. extra:
 * fields merged into the report (download details), may be NULL. */
static json_t *import_doc(const struct cp_epg_env *env, uint64_t client, uint64_t source,
                          json_t *src, int fd, const char *key, json_t *extra)
{
    struct import im = {.env = env,
                        .client = client,
                        .source = source,
                        .key = key,
                        .spool_fd = -1,
                        .t0_ns = tvmw_now_ns()};
    im.source_correction_s = json_integer_value(json_object_get(src, "time_correction_s"));
    im.unmapped_ids = json_array();
    im.skipped = json_array();
    im.batch_channels = json_array();
    im.missing = json_array();
    tvmw_buf_init(&im.wbuf, 0);
    size_t body_max = env->conf->http.max_body_bytes;
    im.batch_limit = body_max > 32768 ? body_max - 16384 : body_max / 2;
    if (im.batch_limit > BATCH_MAX_BYTES) {
        im.batch_limit = BATCH_MAX_BYTES;
    }
    struct tvmw_xmltv_stats st = {0};
    const char *phase = "map";
    int rv = build_map(&im, src);
    if (rv != 0) {
        snprintf(im.why, sizeof(im.why), "cannot read the channels: %s", tvmw_strerror(rv));
        goto out;
    }
    phase = "parse";
    if ((rv = cp_epg_spool_open(env->conf, &im.spool_fd)) != 0) {
        snprintf(im.why, sizeof(im.why), "cannot open a spool file: %s", strerror(-rv));
        goto out;
    }
    TVMW_LOG_INFO("epg", "import source=%llu client=%llu started key=%s mapped_ids=%zu",
                  (unsigned long long)source, (unsigned long long)client, key, im.n_targets);
    struct tvmw_xmltv_limits lim = {.max_xml_bytes = env->conf->epg.max_xml_bytes,
                                    .progress_every_bytes = PROGRESS_EVERY};
    struct tvmw_xmltv_cbs cbs = {
        .programme = on_programme, .skipped = on_skipped, .progress = on_progress, .arg = &im};
    char perr[256];
    rv = tvmw_xmltv_parse_fd(fd, &lim, &cbs, &st, perr, sizeof(perr));
    if (rv == 0) {
        rv = spool_flush(&im);
        if (rv != 0) {
            snprintf(im.why, sizeof(im.why), "cannot write the spool file: %s", strerror(-rv));
        }
    } else if (im.why[0] == '\0') {
        snprintf(im.why, sizeof(im.why), "%s", perr);
    }
    if (rv != 0) {
        goto out;
    }
    TVMW_LOG_INFO("epg",
                  "import source=%llu parsed xml_mb=%.1f programmes=%llu kept=%zu unmapped=%llu "
                  "skipped=%llu took_ms=%llu",
                  (unsigned long long)source, (double)st.bytes_xml / 1048576.0,
                  (unsigned long long)im.read, im.n, (unsigned long long)im.unmapped,
                  (unsigned long long)st.skipped,
                  (unsigned long long)((tvmw_now_ns() - im.t0_ns) / 1000000u));
    phase = "propose";
    rv = propose_all(&im);
out:;
    uint64_t took_ms = (tvmw_now_ns() - im.t0_ns) / 1000000u;
    json_t *r = json_object();
    if (r == NULL) {
        goto out_free;
    }
    struct {
        const char *key;
        json_int_t value;
    } counts[] = {
        {"bytes", (json_int_t)st.bytes_in},
        {"xml_bytes", (json_int_t)st.bytes_xml},
        {"xmltv_channels", (json_int_t)st.channels},
        {"programmes_read", (json_int_t)im.read},
        {"skipped", (json_int_t)(st.skipped + im.bad_time)},
        {"unmapped", (json_int_t)im.unmapped},
        {"mapped_ids", (json_int_t)im.n_targets},
        {"duplicates", (json_int_t)im.duplicates},
        {"overlaps_fixed", (json_int_t)im.overlaps},
        {"no_stop", (json_int_t)im.no_stop},
        {"too_long", (json_int_t)im.too_long},
        {"channels", im.channels},
        {"channels_unchanged", im.channels_unchanged},
        {"programmes", im.programs},
        {"batches", (json_int_t)im.batches},
        {"inserted", im.inserted},
        {"updated", im.updated},
        {"unchanged", im.unchanged},
        {"deleted", im.deleted},
        {"took_ms", (json_int_t)took_ms},
    };
    json_object_set_new(r, "source_id", json_integer((json_int_t)source));
    json_object_set_new(r, "status", json_string(rv == 0 ? "ok" : "error"));
    json_object_set_new(r, "gzip", json_boolean(st.gzip));
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        json_object_set_new(r, counts[i].key, json_integer(counts[i].value));
    }
    json_object_set(r, "unmapped_ids", im.unmapped_ids);
    json_object_set(r, "missing_channels", im.missing);
    json_object_set(r, "skipped_examples", im.skipped);
    if (rv != 0) {
        json_object_set_new(r, "error", json_string(code_of(rv)));
        json_object_set_new(r, "message", json_string(im.why[0] ? im.why : tvmw_strerror(rv)));
        json_object_set_new(r, "phase", json_string(phase));
        if (im.batches > 0) {
            json_object_set_new(r, "partial", json_true());
        }
    } else {
        json_object_set_new(r, "message", json_string(""));
    }
    if (extra != NULL) {
        json_object_update(r, extra);
    }
    if (rv == 0) {
        TVMW_LOG_INFO("epg",
                      "import source=%llu done channels=%lld programmes=%lld batches=%u "
                      "inserted=%lld updated=%lld unchanged=%lld deleted=%lld took_ms=%llu",
                      (unsigned long long)source, (long long)im.channels, (long long)im.programs,
                      im.batches, (long long)im.inserted, (long long)im.updated,
                      (long long)im.unchanged, (long long)im.deleted, (unsigned long long)took_ms);
    } else {
        TVMW_LOG_WARN("epg", "import source=%llu failed phase=%s batches_applied=%u: %s",
                      (unsigned long long)source, phase, im.batches,
                      im.why[0] ? im.why : tvmw_strerror(rv));
    }
out_free:
    if (im.spool_fd >= 0) {
        close(im.spool_fd);
    }
    import_free(&im);
    return r;
}

/* Brings the local state up to date with everything acknowledged before
 * the call, so that a source or channel created just before an import
 * (or the ETag its last run stored) is seen: the leader runs a read
 * barrier; a follower waits until it applied the leader's commit index
 * (from the leader's /healthz). Best effort: on any failure the local
 * state is used as it is. */
static void sync_state(const struct cp_epg_env *env)
{
    struct cp_status st;
    uint64_t leader = 0, commit;
    cp_node_status(env->node, &st);
    if (st.state == RAFT_LEADER) {
        cp_node_read_barrier(env->node, env->conf->http.request_timeout_ms, &leader);
        return;
    }
    commit = st.commit_index;
    char addr[TVMW_ADDR_MAX], url[128], err[128];
    if (st.leader_id != 0 && env->httpc != NULL &&
        member_http(env, st.leader_id, addr, sizeof(addr)) == 0) {
        struct tvmw_httpc_resp resp;
        snprintf(url, sizeof(url), "http://%s/healthz", addr);
        if (tvmw_httpc_do(env->httpc, "GET", url, NULL, NULL, 0, 2000, &resp, err, sizeof(err)) ==
            0) {
            json_t *o = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
            json_int_t c = json_integer_value(json_object_get(o, "commit_index"));
            if (c > 0 && (uint64_t)c > commit) {
                commit = (uint64_t)c;
            }
            json_decref(o);
        }
        tvmw_buf_close(&resp.body);
    }
    if (commit > 0 && st.applied_index < commit) {
        cp_node_wait_applied(env->node, commit - 1, env->conf->http.request_timeout_ms);
    }
}

/* Reads the source (after sync_state) and claims it. */
static int begin(const struct cp_epg_env *env, uint64_t client, uint64_t source, json_t **src,
                 json_t **report)
{
    sync_state(env);
    int rv = cp_epg_source_get(cp_node_fsm(env->node), client, source, src);
    if (rv != 0) {
        *report = error_report(
            source, rv, rv == TVMW_ENOTFOUND ? "no such EPG source" : "cannot read the source");
        return rv;
    }
    if (!claim(source)) {
        json_decref(*src);
        *report = error_report(source, TVMW_EBUSY, "an import of this source is running");
        return TVMW_EBUSY;
    }
    return 0;
}

int cp_epg_import(const struct cp_epg_env *env, uint64_t client_id, uint64_t source_id, int fd,
                  const char *key, json_t **report)
{
    json_t *src;
    if (begin(env, client_id, source_id, &src, report) != 0) {
        return *report ? 0 : -ENOMEM;
    }
    json_t *r = import_doc(env, client_id, source_id, src, fd, key, NULL);
    if (r != NULL) {
        record_status(env, client_id, source_id, key, r, NULL, NULL);
    }
    release(source_id);
    json_decref(src);
    *report = r;
    return r ? 0 : -ENOMEM;
}

/* ---- downloads -------------------------------------------------------------------------- */

struct fetch {
    int fd;
    uint64_t bytes, max;
    bool too_big;
    int write_err;
    char etag[1025];
    char last_modified[129];
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct fetch *f = arg;
    size_t n = size * nmemb;
    if (f->bytes + n > f->max) {
        f->too_big = true;
        return 0;
    }
    if ((f->write_err = write_all(f->fd, p, n)) != 0) {
        return 0;
    }
    f->bytes += n;
    return n;
}

static int on_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const struct cp_epg_env *env = arg;
    return cancelled(env) ? 1 : 0; /* non-zero aborts the transfer */
}

static void header_value(const char *line, size_t n, size_t name_len, char *out, size_t out_len)
{
    const char *v = line + name_len;
    size_t k = n - name_len;
    while (k > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        k--;
    }
    while (k > 0 && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' ')) {
        k--;
    }
    if (k < out_len) {
        memcpy(out, v, k);
        out[k] = '\0';
    }
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct fetch *f = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        f->etag[0] = '\0'; /* a new response (after a redirect) */
        f->last_modified[0] = '\0';
    } else if (n > 5 && strncasecmp(line, "ETag:", 5) == 0) {
        header_value(line, n, 5, f->etag, sizeof(f->etag));
    } else if (n > 14 && strncasecmp(line, "Last-Modified:", 14) == 0) {
        header_value(line, n, 14, f->last_modified, sizeof(f->last_modified));
    }
    return n;
}

/* GETs url into f->fd. Returns 0 with *status once an HTTP answer came
 * back, else TVMW_EIO/TVMW_ETOOBIG with a reason in err. */
static int download(const struct cp_epg_env *env, const char *url, const char *etag, const char *lm,
                    struct fetch *f, long *status, char *err, size_t err_len)
{
    const struct tvmw_config *conf = env->conf;
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char line[1200], cerr[CURL_ERROR_SIZE] = "";
    if (c == NULL) {
        snprintf(err, err_len, "cannot initialise libcurl");
        return -ENOMEM;
    }
    if (etag != NULL && etag[0] != '\0' && strlen(etag) < 1024) {
        snprintf(line, sizeof(line), "If-None-Match: %s", etag);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (lm != NULL && lm[0] != '\0' && strlen(lm) < 128) {
        snprintf(line, sizeof(line), "If-Modified-Since: %s", lm);
        hdrs = curl_slist_append(hdrs, line);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)FETCH_MAX_REDIRECTS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)FETCH_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)conf->epg.fetch_timeout_s);
    /* A server that stalls is given up after a minute, not fetch_timeout_s. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)FETCH_LOW_SPEED_S);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* gzip/deflate, decoded by libcurl */
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tvmw-epg/1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->max);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)env);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(c);
    int rv = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    } else if (f->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(err, err_len, "the file is over %llu bytes (epg.max_file_bytes)",
                 (unsigned long long)f->max);
        rv = TVMW_ETOOBIG;
    } else {
        snprintf(err, err_len, "download failed: %s",
                 f->write_err ? strerror(-f->write_err)
                 : cerr[0]    ? cerr
                              : curl_easy_strerror(rc));
        rv = TVMW_EIO;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rv;
}

int cp_epg_run(const struct cp_epg_env *env, uint64_t client_id, uint64_t source_id,
               const char *key, json_t **report)
{
    json_t *src;
    if (begin(env, client_id, source_id, &src, report) != 0) {
        return *report ? 0 : -ENOMEM;
    }
    const char *url = json_string_value(json_object_get(src, "url"));
    struct fetch *f = calloc(1, sizeof(*f));
    json_t *r = NULL;
    char err[300] = "";
    long status = 0;
    int rv;
    if (f == NULL) {
        rv = -ENOMEM;
        goto out;
    }
    f->fd = -1;
    f->max = env->conf->epg.max_file_bytes;
    if (url == NULL || url[0] == '\0') {
        r = error_report(source_id, TVMW_EMALFORMED, "the source has no URL (uploads only)");
        json_object_set_new(r, "error", json_string("bad_request"));
        goto out; /* nothing to record: nothing was tried */
    }
    if ((rv = cp_epg_spool_open(env->conf, &f->fd)) != 0) {
        snprintf(err, sizeof(err), "cannot open a spool file: %s", strerror(-rv));
        r = error_report(source_id, rv, err);
        goto out_record;
    }
    uint64_t t0 = tvmw_now_ns();
    TVMW_LOG_INFO("epg", "download source=%llu started", (unsigned long long)source_id);
    rv = download(env, url, json_string_value(json_object_get(src, "etag")),
                  json_string_value(json_object_get(src, "last_modified")), f, &status, err,
                  sizeof(err));
    uint64_t fetch_ms = (tvmw_now_ns() - t0) / 1000000u;
    json_t *extra =
        json_pack("{s:I, s:I, s:I}", "http_status", (json_int_t)status, "download_bytes",
                  (json_int_t)f->bytes, "download_ms", (json_int_t)fetch_ms);
    TVMW_LOG_INFO("epg", "download source=%llu status=%ld bytes=%llu took_ms=%llu%s%s",
                  (unsigned long long)source_id, status, (unsigned long long)f->bytes,
                  (unsigned long long)fetch_ms, err[0] ? " error=" : "", err);
    if (rv != 0 || (status != 304 && (status < 200 || status > 299))) {
        if (rv == 0) {
            snprintf(err, sizeof(err), "the server answered HTTP %ld", status);
        }
        r = error_report(source_id, rv == TVMW_ETOOBIG ? rv : TVMW_EIO, err);
        json_object_set_new(r, "error",
                            json_string(rv == TVMW_ETOOBIG ? "too_large" : "fetch_failed"));
        json_object_update(r, extra);
        json_decref(extra);
        goto out_record;
    }
    if (status == 304) {
        r = json_pack("{s:I, s:s, s:s}", "source_id", (json_int_t)source_id, "status",
                      "not_modified", "message",
                      "the document has not changed since the last "
                      "import");
        json_object_update(r, extra);
        json_decref(extra);
        goto out_record;
    }
    if (lseek(f->fd, 0, SEEK_SET) != 0) {
        r = error_report(source_id, TVMW_EIO, "cannot rewind the spool file");
        json_decref(extra);
        goto out_record;
    }
    r = import_doc(env, client_id, source_id, src, f->fd, key, extra);
    json_decref(extra);
    if (r != NULL) {
        bool ok = strcmp(json_string_value(json_object_get(r, "status")), "ok") == 0;
        /* The validators are only kept once the document is in. */
        record_status(env, client_id, source_id, key, r, ok ? f->etag : NULL,
                      ok ? f->last_modified : NULL);
    }
    goto out;
out_record:
    if (r != NULL) {
        record_status(env, client_id, source_id, key, r, NULL, NULL);
    }
out:
    if (f != NULL && f->fd >= 0) {
        close(f->fd);
    }
    free(f);
    release(source_id);
    json_decref(src);
    *report = r;
    return r ? 0 : -ENOMEM;
}

/* ---- the leader's scheduler ------------------------------------------------------------ */

struct cp_epg_scheduler {
    const struct tvmw_config *conf;
    struct cp_node *node;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;
    bool stop;
    _Atomic bool cancel; /* stop, for the import running on the thread */
};

static bool stopping(struct cp_epg_scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static bool leading(struct cp_epg_scheduler *s)
{
    struct cp_status st;
    cp_node_status(s->node, &st);
    return st.state == RAFT_LEADER && st.ready;
}

static void run_due_imports(struct cp_epg_scheduler *s, const struct cp_epg_env *env)
{
    json_t *all = NULL;
    if (cp_epg_source_list(cp_node_fsm(s->node), 0, &all) != 0) {
        return;
    }
    uint64_t now = tvmw_wall_ms();
    size_t i;
    json_t *src;
    json_array_foreach(all, i, src)
    {
        const char *url = json_string_value(json_object_get(src, "url"));
        json_int_t interval = json_integer_value(json_object_get(src, "interval_s"));
        uint64_t last = (uint64_t)json_integer_value(json_object_get(src, "last_run_ms"));
        if (url == NULL || url[0] == '\0' || interval <= 0 ||
            json_integer_value(json_object_get(src, "enabled")) == 0 ||
            (last != 0 && now < last + (uint64_t)interval * 1000u)) {
            continue;
        }
        if (stopping(s) || !leading(s)) {
            break;
        }
        uint64_t client = (uint64_t)json_integer_value(json_object_get(src, "client_id"));
        uint64_t id = (uint64_t)json_integer_value(json_object_get(src, "id"));
        char key[96];
        snprintf(key, sizeof(key), "sched:%llu:%llu", (unsigned long long)id,
                 (unsigned long long)now);
        json_t *report = NULL;
        cp_epg_run(env, client, id, key, &report);
        json_decref(report);
    }
    json_decref(all);
}

static void run_expiry(struct cp_epg_scheduler *s, const struct cp_epg_env *env)
{
    if (s->conf->epg.expire_days == 0) {
        return;
    }
    int64_t before = (int64_t)(tvmw_wall_ms() / 1000u) - (int64_t)s->conf->epg.expire_days * 86400;
    bool pending = false;
    if (cp_epg_expire_pending(cp_node_fsm(s->node), before, &pending) != 0 || !pending) {
        return;
    }
    uint64_t from = 0;
    json_int_t total = 0;
    for (;;) {
        json_t *p = json_pack("{s:s, s:I, s:I, s:I}", "op", "expire", "before", (json_int_t)before,
                              "from_channel", (json_int_t)from, "limit", (json_int_t)EXPIRE_BATCH);
        char key[96];
        snprintf(key, sizeof(key), "expire:%lld:%llu", (long long)before, (unsigned long long)from);
        struct cp_result *res = NULL;
        int rv = propose_keyed(env, p, key, "run", &res);
        json_decref(p);
        if (rv != 0 || res->status != 200) {
            TVMW_LOG_WARN("epg", "expiry stopped: %s", rv != 0 ? tvmw_strerror(rv) : res->body);
            cp_result_free(res);
            return;
        }
        json_t *o = json_loadb(res->body, res->len, 0, NULL);
        cp_result_free(res);
        total += json_integer_value(json_object_get(o, "deleted"));
        from = (uint64_t)json_integer_value(json_object_get(o, "next_channel"));
        json_decref(o);
        if (from == 0 || stopping(s) || !leading(s)) {
            break;
        }
    }
    TVMW_LOG_INFO("epg", "expiry deleted=%lld before=%lld (epg.expire_days=%u)", (long long)total,
                  (long long)before, s->conf->epg.expire_days);
}

static void *sched_run(void *arg)
{
    struct cp_epg_scheduler *s = arg;
    struct cp_epg_env env = {.conf = s->conf, .node = s->node, .httpc = NULL, .cancel = &s->cancel};
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)s->conf->epg.check_interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&s->mu);
        while (!s->stop) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            return NULL;
        }
        if (leading(s)) {
            run_due_imports(s, &env);
        }
        if (!stopping(s) && leading(s)) {
            run_expiry(s, &env);
        }
    }
}

int cp_epg_scheduler_start(const struct tvmw_config *conf, struct cp_node *node,
                           struct cp_epg_scheduler **out)
{
    *out = NULL;
    if (conf->epg.check_interval_ms == 0) {
        return 0;
    }
    struct cp_epg_scheduler *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->conf = conf;
    s->node = node;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, sched_run, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -EAGAIN;
    }
    *out = s;
    return 0;
}

void cp_epg_scheduler_stop(struct cp_epg_scheduler *s)
{
    if (s == NULL) {
        return;
    }
    s->cancel = true;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
