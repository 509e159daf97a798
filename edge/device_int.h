/*
 * Private to the device API (device.c, dchannels.c): the request context
 * and the state readers both use.
 */
#ifndef TVMW_EDGE_DEVICE_INT_H
#define TVMW_EDGE_DEVICE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "edge/dauth.h"
#include "edge/device.h"
#include "edge/dout.h"
#include "edge/dreq.h"
#include "edge/store.h"

/* Error codes shared by session-bound calls (§1.2). */
#define DE_OK          0
#define DE_NO_SESSION  403
#define DE_NOT_FOUND   404
#define DE_MAX_TARIFFS 64
#define DE_MAX_DEVICES 256 /* bound devices, messages of an account */

/* Per-thread working memory of the handlers (large arrays that would not
 * fit a stack), freed when the thread exits. */
enum dscratch {
    DS_CHAN_CACHE,
    DS_CHAN_LIST,
    DS_CATEGORIES,
    DS_PROGRAMS,
    DS_SESSIONS,
    DS_ENTITLED,
    DS_N
};

struct edge_device {
    const struct tvmw_config *conf;
    const struct tvmw_edge_conf *self;
    struct edge_store *store;
    struct edge_follow *follow;
    struct edge_journal *journal;
    atomic_uint_fast64_t logins_ok, logins_refused, journal_failed, sessions_refused;
    struct last_seen *seen;
    struct recent *recent; /* sessions opened or ended here lately */
    pthread_key_t scratch[DS_N];
    atomic_bool registering; /* an account/register call is waiting */
};

struct dctx {
    struct edge_device *dev;
    struct tvmw_http_req *http;
    struct dreq q;
    struct edge_read r;
    struct dout o;
    bool xml;
    const char *device; /* never NULL */
    uint64_t now_ms;
    uint64_t client_id;
    json_t *client; /* client record, once known */
    /* the session (session-bound calls) */
    struct edge_authkey ak;
    uint64_t account_id;
    json_t *account;
    bool have_session;   /* a valid session (account/status may run without) */
    bool deactivated;    /* a session ended by the account's deactivation */
    bool entitled_ready; /* DS_ENTITLED holds this request's account's channels */
    char authkey[EDGE_AUTHKEY_LEN + 1];
    /* the answer */
    unsigned status;                        /* HTTP status: 200, or 302 with location */
    char *location;                         /* malloc'd */
    char cookie[2][EDGE_AUTHKEY_LEN + 160]; /* Set-Cookie values, "" if none */
    /* An answer in another format (exports): when raw_type is set, the
     * body is `raw` with raw_type and raw_status (0: 200), not c->o. */
    const char *raw_type;
    unsigned raw_status;
    const char *raw_encoding; /* Content-Encoding of raw (e.g. "gzip"), or NULL */
    struct tvmw_buf raw;
};

/* ---- state readers (all within c->r) ---- */

/* A record of db by be64 id; NULL if absent or unparsable. New reference. */
json_t *dm_get(struct dctx *c, unsigned db, uint64_t id);
/* As dm_get, and NULL unless its "client_id" is the request's client. */
json_t *dm_get_own(struct dctx *c, unsigned db, uint64_t id);
/* The id a unique index maps a value to (0 if none). */
uint64_t dm_uniq(struct dctx *c, const char *index, const char *value);
/* The `to` ids of relation name from `from`, ascending, at most max. */
size_t dm_rel(struct dctx *c, const char *name, uint64_t from, uint64_t *ids, size_t max);
size_t dm_rel_count(struct dctx *c, const char *name, uint64_t from);
bool dm_rel_has(struct dctx *c, const char *name, uint64_t from, uint64_t to);
/* The tariffs of the session's account (its own and its customer's). */
size_t dm_account_tariffs(struct dctx *c, uint64_t *ids, size_t max);

/* ---- record fields ---- */
int64_t rec_int(const json_t *o, const char *name, int64_t def);
const char *rec_str(const json_t *o, const char *name); /* "" if absent */

/* The request's caller address (X-Real-IP is not trusted: the edge is the
 * first hop for devices). */
const char *dctx_ip(struct dctx *c);

/* The calling thread's zeroed block of `size` bytes for `which` (the same
 * size on every call); NULL if out of memory. */
void *dctx_scratch(struct dctx *c, enum dscratch which, size_t size);
/* Destructor of DS_CHAN_CACHE (dchannels.c). */
void dchannels_cache_free(void *cache);

/* ---- helpers of the handlers (device.c) ---- */

/* A parameter that counts as given: present, non-empty, at most 256 bytes. */
const char *dctx_param(struct dctx *c, const char *name);
/* device_uid (or its cookie) as §1.1a: NULL for none, "0" and empty. */
const char *dctx_device_uid(struct dctx *c, char *buf, size_t cap);
/* "YYYY-mm-dd HH:MM" (with_time) or "YYYY-mm-dd", UTC. */
void dctx_fmt_date(uint64_t ms, bool with_time, char out[32]);
/* A device write of the session's account, stamped now (docs/edge-protocol.md). */
json_t *dctx_new_write(struct dctx *c, const char *op);
/* Queues w (stolen) for the control plane; false if the journal refused it. */
bool dctx_journal(struct dctx *c, json_t *w);
/* The abonement as the spec types it: a number when it is one. */
void dctx_out_abonement(struct dctx *c, const char *name, const char *abon);
const char *dctx_status_reason(const json_t *account);
bool dctx_api_key_ok(struct dctx *c);
/* Billing API device group of a device type: 0 STB, 1 Smart TV, 2 mobile, 3 other. */
int dctx_device_group(const char *device);
unsigned dm_hash_u64(uint64_t x);

/* ---- login and sessions (dlogin.c) ---- */

void dh_login(struct dctx *c);
/* The bound devices of the session's account as the list "devices". */
void dctx_out_devices(struct dctx *c, bool with_sessions);
int dlogin_recent_new(struct recent **out);
void dlogin_recent_free(struct recent *r);
/* Records a session this edge opened (revoked false) or ended. */
void dlogin_recent_put(struct edge_device *d, uint64_t account, uint64_t session, const char *uid,
                       bool basic, uint64_t now, bool revoked);
/* True if this edge ended the session lately. */
bool dlogin_recent_revoked(struct edge_device *d, uint64_t account, uint64_t session, uint64_t now);

/* Writes error/error_message for an application error. */
void dctx_fail(struct dctx *c, int code, const char *message);

/* ---- routes outside /tvmiddleware/api/ (exports) ---- */

/* A handler for a path outside the device API's prefixes, or NULL. It runs
 * with the read transaction, the parameters and the current time set up
 * and no client or session loaded: it authenticates the request itself
 * (dctx_login_password) and answers through c->o or c->raw. */
typedef void (*dctx_handler_fn)(struct dctx *c);
dctx_handler_fn dexport_find(const char *path, const char **route_label);

/* Finds the account of abonement + password in any client (exports have
 * no client_id): sets c->client_id, c->client, c->account_id, c->account.
 * 0, or -1 (unknown, wrong password, ambiguous between clients, or an
 * INACTIVE account). */
int dctx_login_password(struct dctx *c, const char *abonement, const char *password);

/* ---- stream URLs (dchannels.c) ---- */

/* The stream URI of channel cid for the context's account (c->client_id,
 * c->account_id and c->account set), routed and with a fresh stream token
 * (docs/device-api.md "Stream URLs and routing"): live, or with archive
 * the recording from `begin` lasting `dur`, both text substituted as is
 * ("1700000000" and "3600", "now" for pause-live, or a player's
 * placeholders such as "{utc}" and "{duration}"). 0 with *uri (malloc'd) and the service chosen;
 * else the device API's error code (404 no such channel, 1 not subscribed or no service) and *why.
 */
int dctx_stream_uri(struct dctx *c, uint64_t cid, bool archive, const char *begin, const char *dur,
                    char **uri, uint64_t *service_id, const char **why);

/* ---- handlers in dchannels.c ---- */
void dh_channel_list(struct dctx *c);
void dh_category_list(struct dctx *c);
void dh_program_list(struct dctx *c);
void dh_channel_url(struct dctx *c);
void dh_program_url(struct dctx *c);

#endif
