/*
 * The stream-token check; see tokencheck.h for the contract and
 * shared/spec/streamer-auth.md for the decision tables it implements.
 *
 * Prepared answers. libmicrohttpd allocates a response object and three
 * blocks per header each time one is built, and a response shared between
 * threads is reference-counted under its own mutex. So every thread
 * builds its answers once and reuses them: denies are constant per
 * reason; an allow carries per-request numbers (X-AuthDuration, X-UserId,
 * X-Max-Sessions, X-Session-Name), so each thread keeps one allow answer
 * per combination of the numbers' digit counts and overwrites the digits
 * in place before queueing it. That relies on what libmicrohttpd 0.9.75
 * does (read in its connection.c): a header value is a private copy whose
 * length is fixed when added, and the header block is serialised into the
 * connection's own buffer in the same MHD_connection_handle_idle() pass
 * that called us (FULL_REQ_RECEIVED -> START_REPLY -> build_header_response),
 * before the thread can serve another connection. So the in-place mode is
 * on only for that version (and a start-up self-test); any other version
 * builds each allow answer for its request, as documented in
 * docs/streamer-auth.md.
 */
#include "edge/tokencheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <lmdb.h>
#include <microhttpd.h>
#include <openssl/rand.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "edge/dauth.h"
#include "edge/store.h"
#include "edge/tcindex.h"
#include "edge/tcsess.h"

#define NEG_AUTH_DURATION_S 10  /* §1.6: short negative cache */
#define MIN_AUTH_DURATION_S 10  /* §1.5 rule 1: floor */
#define MAX_TARIFFS         256 /* per relation scanned for the entitlement */
#define LOG_FIELD_MAX       64
#define DUR_DIGITS          10
#define UID_DIGITS          20
#define MAX_DIGITS          10
#define INPLACE_VERSION     "0.9.75"

static const char *const reason_names[EDGE_TC_REASONS] = {
    [EDGE_TC_ALLOW] = "ok",
    [EDGE_TC_TOKEN_MISSING] = "token_missing",
    [EDGE_TC_TOKEN_MALFORMED] = "token_malformed",
    [EDGE_TC_TOKEN_EXPIRED] = "token_expired",
    [EDGE_TC_TOKEN_REVOKED] = "token_revoked",
    [EDGE_TC_ACCOUNT_INACTIVE] = "account_inactive",
    [EDGE_TC_NOT_ENTITLED] = "not_entitled",
    [EDGE_TC_WRONG_STREAM] = "wrong_stream",
    [EDGE_TC_SESSION_LIMIT] = "session_limit",
    [EDGE_TC_IP_MISMATCH] = "ip_mismatch",
    [EDGE_TC_UNAVAILABLE] = "unavailable",
};

/* 403 bodies (§3.4): the code and a fixed text, nothing from the request. */
static const char *const reason_bodies[EDGE_TC_REASONS] = {
    [EDGE_TC_ALLOW] = "",
    [EDGE_TC_TOKEN_MISSING] = "{\"error\":\"token_missing\",\"error_message\":\"no token\"}",
    [EDGE_TC_TOKEN_MALFORMED] =
        "{\"error\":\"token_malformed\",\"error_message\":\"the token is not valid\"}",
    [EDGE_TC_TOKEN_EXPIRED] =
        "{\"error\":\"token_expired\",\"error_message\":\"the token has expired\"}",
    [EDGE_TC_TOKEN_REVOKED] =
        "{\"error\":\"token_revoked\",\"error_message\":\"the token was revoked\"}",
    [EDGE_TC_ACCOUNT_INACTIVE] =
        "{\"error\":\"account_inactive\",\"error_message\":\"the account is not active\"}",
    [EDGE_TC_NOT_ENTITLED] =
        "{\"error\":\"not_entitled\",\"error_message\":\"the account may not watch this\"}",
    [EDGE_TC_WRONG_STREAM] =
        "{\"error\":\"wrong_stream\",\"error_message\":\"the token is for another stream\"}",
    [EDGE_TC_SESSION_LIMIT] =
        "{\"error\":\"session_limit\",\"error_message\":\"too many sessions\"}",
    [EDGE_TC_IP_MISMATCH] =
        "{\"error\":\"ip_mismatch\",\"error_message\":\"the token is for another address\"}",
    [EDGE_TC_UNAVAILABLE] =
        "{\"error\":\"unavailable\",\"error_message\":\"the edge cannot decide yet\"}",
};

const char *edge_tc_reason_name(enum edge_tc_reason r)
{
    return (unsigned)r < EDGE_TC_REASONS ? reason_names[r] : "unknown";
}

/* An allow answer with header values of fixed digit counts, filled in
 * place (see the file comment). */
struct allow_resp {
    struct MHD_Response *r;
    char *dur, *uid, *max, *name; /* libmicrohttpd's copies of the values */
};

/* Everything one request thread owns. Counters are written by the thread
 * only and read by /metrics (relaxed atomics, no read-modify-write). */
struct tc_thread {
    struct tc_thread *next; /* in the checker's list; guarded by its mu */
    uint64_t owner;         /* the checker's instance number */
    struct edge_sticky rd;
    uint64_t ring_seq;
    bool ring_loaded;
    struct edge_keyring ring;    /* active keys */
    struct edge_keyring retired; /* for the token_revoked reason only */
    _Atomic uint64_t checks[EDGE_TC_DIALECTS][2];
    _Atomic uint64_t denies[EDGE_TC_REASONS];
    _Atomic uint64_t untracked;
    uint64_t log_second;
    unsigned log_lines;
    uint64_t log_suppressed;
    struct MHD_Response *deny[EDGE_TC_REASONS][2];
    struct MHD_Response *not_allowed;
    struct allow_resp *allow[DUR_DIGITS + 1][UID_DIGITS + 1][MAX_DIGITS + 1];
};

struct edge_tokencheck {
    struct edge_store *store;
    uint32_t skew_s, auth_duration_s, log_per_s;
    uint64_t id;   /* instance number, so a thread never uses a freed checker's state */
    uint64_t seed; /* session-key hash seed */
    bool inplace;  /* prepared allow answers, filled in place */
    struct edge_tcs *sessions;
    pthread_mutex_t mu; /* guards threads (registration and metrics only) */
    struct tc_thread *threads;
};

static _Atomic uint64_t next_id = 1;
/* The calling thread's state and the checker it belongs to (compared
 * before tl is touched: a freed checker's state is freed). */
static _Thread_local struct tc_thread *tl;
static _Thread_local uint64_t tl_owner;

/* ---- small helpers ------------------------------------------------------------------- */

static inline void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static size_t fmt_u64(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
    return n;
}

/* A decimal of at most 19 digits, nothing else. */
static bool parse_u64(const struct edge_tc_str *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s->p == NULL || s->len == 0 || s->len > 19) {
        return false;
    }
    for (size_t i = 0; i < s->len; i++) {
        if (s->p[i] < '0' || s->p[i] > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(s->p[i] - '0');
    }
    *out = v;
    return true;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    }
    return h;
}

static uint64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec;
}

/* ---- per-thread state ---------------------------------------------------------------- */

static struct tc_thread *thread_state(struct edge_tokencheck *tc)
{
    if (tl_owner == tc->id && tl != NULL) {
        return tl;
    }
    struct tc_thread *t;
    /* First request of this thread (once per thread and checker). */
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->owner = tc->id;
    pthread_mutex_lock(&tc->mu);
    t->next = tc->threads;
    tc->threads = t;
    pthread_mutex_unlock(&tc->mu);
    tl = t;
    tl_owner = tc->id;
    return t;
}

static void thread_free(struct edge_tokencheck *tc, struct tc_thread *t)
{
    edge_store_sticky_close(tc->store, &t->rd);
    for (unsigned r = 0; r < EDGE_TC_REASONS; r++) {
        for (unsigned d = 0; d < 2; d++) {
            MHD_destroy_response(t->deny[r][d]);
        }
    }
    MHD_destroy_response(t->not_allowed);
    for (unsigned a = 0; a <= DUR_DIGITS; a++) {
        for (unsigned b = 0; b <= UID_DIGITS; b++) {
            for (unsigned c = 0; c <= MAX_DIGITS; c++) {
                if (t->allow[a][b][c] != NULL) {
                    MHD_destroy_response(t->allow[a][b][c]->r);
                    free(t->allow[a][b][c]);
                }
            }
        }
    }
    free(t);
}

/* Begins the thread's read of the newest state (renewing its transaction). */
static int state_begin(struct edge_tokencheck *tc, struct tc_thread *t)
{
    return edge_store_sticky_begin(tc->store, &t->rd);
}

static void state_end(struct tc_thread *t)
{
    edge_store_sticky_end(&t->rd);
}

static int get(struct tc_thread *t, enum edge_tcx x, uint64_t id, MDB_val *v)
{
    MDB_val key = {.mv_size = sizeof(id), .mv_data = &id}; /* native: MDB_INTEGERKEY */
    return mdb_get(t->rd.r.txn, t->rd.tcx[x], &key, v);
}

static void ring_add(struct edge_keyring *ring, const struct edge_tcx_key *k)
{
    if (ring->n == EDGE_KEYRING_MAX) {
        /* Keys come in ascending kid order: keep the newest. */
        memmove(&ring->k[0], &ring->k[1], (EDGE_KEYRING_MAX - 1) * sizeof(ring->k[0]));
        ring->n--;
    }
    struct edge_key *e = &ring->k[ring->n++];
    e->kid = k->kid;
    memcpy(e->secret, k->secret, k->secret_len);
    e->secret_len = k->secret_len;
}

/* Reloads the thread's key rings from the index: only when the keys
 * changed (the store's keys_seq moved), so rarely. 0 or an error. */
static int load_rings(struct edge_tokencheck *tc, struct tc_thread *t)
{
    uint64_t seq = edge_store_keys_seq(tc->store); /* before reading: a later change reloads */
    int rv = state_begin(tc, t);
    if (rv != 0) {
        return rv;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->rd.r.txn, t->rd.tcx[EDGE_TCX_KEYS], &cur);
    if (rc != 0) {
        state_end(t);
        return TVMW_ESTORE;
    }
    memset(&t->ring, 0, sizeof(t->ring));
    memset(&t->retired, 0, sizeof(t->retired));
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct edge_tcx_key key;
        if (edge_tcx_key_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &key) == 0) {
            ring_add(key.active ? &t->ring : &t->retired, &key);
        }
    }
    mdb_cursor_close(cur);
    state_end(t);
    if (rc != MDB_NOTFOUND) {
        return TVMW_ESTORE;
    }
    t->ring_seq = seq;
    t->ring_loaded = true;
    return 0;
}

/* ---- the decision -------------------------------------------------------------------- */

/* Is the stream the request names the token's channel? A channel is named
 * by its stream_name, or by its id when it has none. */
static bool stream_ok(const struct edge_tc_req *q, const struct edge_tcx_channel *ch,
                      uint64_t channel)
{
    char idtext[24];
    const uint8_t *name = ch->stream;
    size_t len = ch->stream_len;
    if (len == 0) {
        len = fmt_u64(channel, idtext);
        name = (const uint8_t *)idtext;
    }
    if (q->stream.p != NULL) {
        return q->stream.len == len && memcmp(q->stream.p, name, len) == 0;
    }
    if (q->path.p != NULL) {
        return edge_tc_path_has(q->path.p, q->path.len, name, len);
    }
    return true; /* the caller names no stream (generic form without name) */
}

/* 1 if tariff holds channel ("tar_chan/" in db 11), 0 if not, -1 on error. */
static int tariff_holds(struct tc_thread *t, uint64_t tariff, uint64_t channel)
{
    uint8_t key[25];
    memcpy(key, "tar_chan/", 9);
    tvmw_put_be64(key + 9, tariff);
    tvmw_put_be64(key + 17, channel);
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
    int rc = mdb_get(t->rd.r.txn, t->rd.rel, &k, &v);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

/* One of the tariffs `from` is linked to through relation `rel` (8 or 9
 * bytes with its '/') holds the channel. */
static int tariffs_hold(struct tc_thread *t, const char *rel, size_t rel_len, uint64_t from,
                        uint64_t channel, bool *found)
{
    uint8_t prefix[32], tc_key[32];
    memcpy(prefix, rel, rel_len);
    tvmw_put_be64(prefix + rel_len, from);
    size_t plen = rel_len + 8;
    memcpy(tc_key, "tar_chan/", 9);
    tvmw_put_be64(tc_key + 17, channel);
    MDB_val k = {.mv_size = plen, .mv_data = prefix}, v;
    int rc = mdb_cursor_get(t->rd.rel_cur, &k, &v, MDB_SET_RANGE);
    for (unsigned n = 0; rc == 0 && n < MAX_TARIFFS; n++) {
        if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0) {
            return 0;
        }
        memcpy(tc_key + 9, (const uint8_t *)k.mv_data + plen, 8);
        MDB_val tk = {.mv_size = 25, .mv_data = tc_key}, tv;
        int r2 = mdb_get(t->rd.r.txn, t->rd.rel, &tk, &tv);
        if (r2 == 0) {
            *found = true;
            return 0;
        }
        if (r2 != MDB_NOTFOUND) {
            return TVMW_ESTORE;
        }
        rc = mdb_cursor_get(t->rd.rel_cur, &k, &v, MDB_NEXT);
    }
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : TVMW_ESTORE;
}

/* The streamer's session key: its session id, or for callers without one
 * (legacy Flussonic, nginx, generic) hash(token, ip, stream) (§1.2). */
static uint64_t session_key(const struct edge_tokencheck *tc, const struct edge_tc_req *q)
{
    uint64_t h = 0xcbf29ce484222325ull ^ tc->seed;
    if (q->sess.p != NULL) {
        return hash_bytes(h, q->sess.p, q->sess.len);
    }
    h = hash_bytes(h, q->tok.p, q->tok.len);
    h = hash_bytes(h, "\n", 1);
    if (q->viewer_ip.p != NULL) {
        h = hash_bytes(h, q->viewer_ip.p, q->viewer_ip.len);
    }
    h = hash_bytes(h, "\n", 1);
    const struct edge_tc_str *s = q->stream.p != NULL ? &q->stream : &q->path;
    return s->p != NULL ? hash_bytes(h, s->p, s->len) : h;
}

/* The viewer's address as the token binds it; 0 when there is none. */
static uint32_t viewer_bind(const struct edge_tc_req *q)
{
    char ip[64];
    const char *p = q->viewer_ip.p;
    size_t n = q->viewer_ip.len;
    if (p == NULL || n == 0 || n >= sizeof(ip)) {
        return 0;
    }
    if (n > 7 && strncasecmp(p, "::ffff:", 7) == 0 && memchr(p + 7, '.', n - 7) != NULL) {
        p += 7; /* an IPv4-mapped IPv6 address is the IPv4 address */
        n -= 7;
    }
    memcpy(ip, p, n);
    ip[n] = '\0';
    return edge_token_ip_bind(ip);
}

static uint32_t min_u32(uint32_t a, uint64_t b)
{
    return b < a ? (uint32_t)b : a;
}

/* Everything after the signature, within the thread's read transaction. */
static enum edge_tc_reason decide_state(struct edge_tokencheck *tc, struct tc_thread *t,
                                        const struct edge_tc_req *q, const struct edge_token *tok,
                                        uint64_t now_s, struct edge_tc_answer *a)
{
    MDB_val v;
    struct edge_tcx_account acc;
    struct edge_tcx_client cl;
    struct edge_tcx_channel ch;
    int rc = get(t, EDGE_TCX_ACC, tok->account, &v);
    if (rc == MDB_NOTFOUND) {
        return EDGE_TC_ACCOUNT_INACTIVE; /* deleted */
    }
    if (rc != 0) {
        return EDGE_TC_UNAVAILABLE;
    }
    if (edge_tcx_account_decode(v.mv_data, v.mv_size, &acc) != 0 || acc.client != tok->client ||
        !acc.active) {
        return EDGE_TC_ACCOUNT_INACTIVE;
    }
    rc = get(t, EDGE_TCX_CLIENT, tok->client, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return EDGE_TC_UNAVAILABLE;
    }
    if (rc != 0 || edge_tcx_client_decode(v.mv_data, v.mv_size, &cl) != 0) {
        return EDGE_TC_ACCOUNT_INACTIVE; /* the operator is gone */
    }
    /* "Log out everywhere" and deactivation revoke what was issued before.
     * A version 1 token has no issue time: one TTL before its expiry. */
    uint64_t issued_s = tok->issued_s;
    if (tok->version == 1) {
        issued_s = tok->expiry_s > cl.token_ttl_s ? tok->expiry_s - cl.token_ttl_s : 0;
    }
    if (acc.logout_before_ms != 0 && issued_s * 1000 < acc.logout_before_ms) {
        return EDGE_TC_TOKEN_REVOKED;
    }
    if (tok->kind == EDGE_TOKEN_VOD) {
        return EDGE_TC_NOT_ENTITLED; /* no VOD catalogue at the edge yet */
    }
    rc = get(t, EDGE_TCX_CHAN, tok->content, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return EDGE_TC_UNAVAILABLE;
    }
    if (rc != 0 || edge_tcx_channel_decode(v.mv_data, v.mv_size, &ch) != 0 ||
        ch.client != tok->client || !ch.enabled) {
        return EDGE_TC_NOT_ENTITLED;
    }
    if (!stream_ok(q, &ch, tok->content)) {
        return EDGE_TC_WRONG_STREAM;
    }
    bool found = false;
    if (!acc.tariffs_more && !ch.tariffs_more) {
        /* Both lists complete: one of the account's tariffs is one of the
         * channel's (both ascending). */
        for (unsigned i = 0, j = 0; i < acc.n_tariffs && j < ch.n_tariffs && !found;) {
            uint64_t x = tvmw_get_u64(acc.tariffs + 8 * i), y = tvmw_get_u64(ch.tariffs + 8 * j);
            found = x == y;
            i += x <= y;
            j += y <= x;
        }
    } else if (acc.tariffs_more) { /* too many tariffs to list: the relations */
        if (tariffs_hold(t, "acc_tar/", 8, tok->account, tok->content, &found) != 0 ||
            (!found && acc.customer != 0 &&
             tariffs_hold(t, "cust_tar/", 9, acc.customer, tok->content, &found) != 0)) {
            return EDGE_TC_UNAVAILABLE;
        }
    } else {
        for (unsigned i = 0; i < acc.n_tariffs && !found; i++) {
            int r = tariff_holds(t, tvmw_get_u64(acc.tariffs + 8 * i), tok->content);
            if (r < 0) {
                return EDGE_TC_UNAVAILABLE;
            }
            found = r > 0;
        }
    }
    if (!found) {
        return EDGE_TC_NOT_ENTITLED;
    }

    /* §1.5 rule 1: min(recheck period, until expiry, until deactivation), >= 10 s. */
    uint32_t d = cl.auth_duration_s != 0 ? cl.auth_duration_s : tc->auth_duration_s;
    uint64_t end_s = (uint64_t)tok->expiry_s + tc->skew_s;
    d = min_u32(d, end_s > now_s ? end_s - now_s : 0);
    if (acc.deactivate_s != 0) {
        d = min_u32(d, acc.deactivate_s > now_s ? acc.deactivate_s - now_s : 0);
    }
    a->auth_duration_s = d < MIN_AUTH_DURATION_S ? MIN_AUTH_DURATION_S : d;
    a->max_sessions = acc.multi_login ? 0 : cl.max_sessions;

    /* §1.5 rule 5: the edge's own limit over every streamer asking it. */
    if (cl.session_limit && a->max_sessions > 0) {
        enum edge_tcs_result r =
            edge_tcs_touch(tc->sessions, tok->account, session_key(tc, q), (uint32_t)monotonic_s(),
                           2 * a->auth_duration_s, a->max_sessions, !q->update);
        if (r == EDGE_TCS_OVER) {
            return EDGE_TC_SESSION_LIMIT;
        }
        if (r == EDGE_TCS_UNTRACKED) {
            bump(&t->untracked);
        }
    }
    return EDGE_TC_ALLOW;
}

static enum edge_tc_reason decide(struct edge_tokencheck *tc, struct tc_thread *t,
                                  const struct edge_tc_req *q, uint64_t now_s,
                                  struct edge_tc_answer *a)
{
    struct edge_token tok;
    if (q->tok.p == NULL) {
        return EDGE_TC_TOKEN_MISSING;
    }
    uint64_t kseq = edge_store_keys_seq(tc->store);
    if ((!t->ring_loaded || t->ring_seq != kseq) && load_rings(tc, t) != 0) {
        return EDGE_TC_UNAVAILABLE; /* no state yet */
    }
    /* The signature, before any state is looked at. */
    if (q->tok_too_long || edge_token_check(&t->ring, q->tok.p, q->tok.len, &tok) != 0) {
        if (!q->tok_too_long && t->retired.n > 0 &&
            edge_token_check(&t->retired, q->tok.p, q->tok.len, &tok) == 0) {
            a->kid = tok.kid;
            a->account = tok.account;
            return EDGE_TC_TOKEN_REVOKED; /* signed by a key retired since */
        }
        return EDGE_TC_TOKEN_MALFORMED;
    }
    a->kid = tok.kid;
    a->account = tok.account;
    a->content = tok.content;
    a->nonce = tok.nonce;
    uint64_t cid;
    if (q->client_id.p != NULL && (!parse_u64(&q->client_id, &cid) || cid != tok.client)) {
        return EDGE_TC_TOKEN_MALFORMED; /* another tenant's token (§3.3) */
    }
    /* Tokens limit starting playback, not watching (§1.5 rule 3). */
    if (!q->update && now_s > (uint64_t)tok.expiry_s + tc->skew_s) {
        return EDGE_TC_TOKEN_EXPIRED;
    }
    if (tok.ip_bind != 0 && viewer_bind(q) != tok.ip_bind) {
        return EDGE_TC_IP_MISMATCH;
    }
    if (state_begin(tc, t) != 0) {
        return EDGE_TC_UNAVAILABLE;
    }
    enum edge_tc_reason r = decide_state(tc, t, q, &tok, now_s, a);
    state_end(t);
    return r;
}

/* Status and headers of a decision for the request's dialect (§1.6,
 * §2.5, §4, §5). */
static void shape(const struct edge_tc_req *q, struct edge_tc_answer *a)
{
    enum edge_tc_dialect d = q->dialect;
    bool proxy = d == EDGE_TC_ASTRA || d == EDGE_TC_NGINX;
    a->with_auth_duration = false;
    switch (a->reason) {
    case EDGE_TC_ALLOW:
        a->status = d == EDGE_TC_NGINX ? 204 : 200;
        a->with_auth_duration = true;
        a->user_id = a->account;
        break;
    case EDGE_TC_TOKEN_MISSING:
        a->status = proxy ? 401 : 403;
        break;
    case EDGE_TC_UNAVAILABLE:
        /* Astra allows when the backend fails, so only a state-less edge
         * says 503 (§2.4 rule 2); Flussonic keeps running sessions on 500. */
        a->status = d != EDGE_TC_FLUSSONIC ? 503 : q->update ? 500 : 403;
        break;
    case EDGE_TC_TOKEN_EXPIRED:
    case EDGE_TC_TOKEN_REVOKED:
    case EDGE_TC_ACCOUNT_INACTIVE:
    case EDGE_TC_NOT_ENTITLED:
        a->status = 403;
        /* A short negative cache, so a fresh token or a restored account
         * works quickly (Flussonic and the Flussonic-like generic form). */
        a->with_auth_duration = !proxy;
        a->auth_duration_s = NEG_AUTH_DURATION_S;
        break;
    default:
        a->status = 403;
        break;
    }
}

/* Logs a deny, at most log_per_s lines a second per thread. */
static void log_deny(struct edge_tokencheck *tc, struct tc_thread *t, const struct edge_tc_req *q,
                     const struct edge_tc_answer *a)
{
    uint64_t sec = monotonic_s();
    if (sec != t->log_second) {
        t->log_second = sec;
        t->log_lines = 0;
    }
    if (t->log_lines >= tc->log_per_s) {
        t->log_suppressed++;
        return;
    }
    t->log_lines++;
    char sess[LOG_FIELD_MAX + 1], ip[LOG_FIELD_MAX + 1];
    const struct edge_tc_str *f[2] = {&q->sess, &q->viewer_ip};
    char *out[2] = {sess, ip};
    for (int i = 0; i < 2; i++) { /* untrusted text: printable, bounded */
        size_t n = f[i]->p != NULL ? f[i]->len : 0, o = 0;
        for (size_t j = 0; j < n && o < LOG_FIELD_MAX; j++) {
            char c = f[i]->p[j];
            out[i][o++] = c > ' ' && c < 127 && c != '"' ? c : '?';
        }
        if (o == 0) {
            out[i][o++] = '-';
        }
        out[i][o] = '\0';
    }
    TVMW_LOG_INFO(
        "tokencheck",
        "deny reason=%s dialect=%s request=%s status=%u account=%" PRIu64 " content=%" PRIu64
        " kid=%u nonce=%08" PRIx32 " session=%s ip=%s suppressed=%" PRIu64,
        reason_names[a->reason], edge_tc_dialect_name(q->dialect), q->update ? "update" : "new",
        a->status, a->account, a->content, a->kid, a->nonce, sess, ip, t->log_suppressed);
    t->log_suppressed = 0;
}

static void decide_counted(struct edge_tokencheck *tc, struct tc_thread *t,
                           const struct edge_tc_req *q, uint64_t now_s, struct edge_tc_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->reason = decide(tc, t, q, now_s, a);
    shape(q, a);
    unsigned d = (unsigned)q->dialect < EDGE_TC_DIALECTS ? (unsigned)q->dialect : 0;
    bump(&t->checks[d][a->reason == EDGE_TC_ALLOW ? 0 : 1]);
    if (a->reason != EDGE_TC_ALLOW) {
        bump(&t->denies[a->reason]);
    }
}

void edge_tokencheck_decide(struct edge_tokencheck *tc, const struct edge_tc_req *q, uint64_t now_s,
                            struct edge_tc_answer *a)
{
    struct tc_thread *t = thread_state(tc);
    if (t == NULL) {
        memset(a, 0, sizeof(*a));
        a->reason = EDGE_TC_UNAVAILABLE;
        shape(q, a);
        return;
    }
    decide_counted(tc, t, q, now_s, a);
    if (a->reason != EDGE_TC_ALLOW) {
        log_deny(tc, t, q, a);
    }
}

/* ---- answers ------------------------------------------------------------------------- */

static struct MHD_Response *deny_response(struct tc_thread *t, enum edge_tc_reason r, bool dur)
{
    struct MHD_Response **slot = &t->deny[r][dur];
    if (*slot == NULL) {
        const char *body = reason_bodies[r];
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
            return NULL;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (dur) {
            MHD_add_response_header(resp, "X-AuthDuration", "10");
        }
        *slot = resp;
    }
    return *slot;
}

/* A value of n '0's: a placeholder of the right length. */
static const char *zeros(size_t n)
{
    static const char z[] = "000000000000000000000000";
    return z + (sizeof(z) - 1 - n);
}

static struct MHD_Response *allow_build(size_t ml, const char *dur, const char *uid,
                                        const char *max)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return NULL;
    }
    if (MHD_add_response_header(r, "X-AuthDuration", dur) != MHD_YES ||
        MHD_add_response_header(r, "X-UserId", uid) != MHD_YES ||
        MHD_add_response_header(r, "X-Session-Name", uid) != MHD_YES ||
        (ml > 0 && MHD_add_response_header(r, "X-Max-Sessions", max) != MHD_YES)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* The thread's prepared allow answer for these digit counts. */
static struct allow_resp *allow_prepared(struct tc_thread *t, size_t dl, size_t ul, size_t ml)
{
    struct allow_resp **slot = &t->allow[dl][ul][ml];
    if (*slot != NULL) {
        return *slot;
    }
    struct allow_resp *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->r = allow_build(ml, zeros(dl), zeros(ul), zeros(ml));
    if (a->r == NULL) {
        free(a);
        return NULL;
    }
    /* libmicrohttpd's own copies of the values, of exactly these lengths. */
    a->dur = (char *)MHD_get_response_header(a->r, "X-AuthDuration");
    a->uid = (char *)MHD_get_response_header(a->r, "X-UserId");
    a->name = (char *)MHD_get_response_header(a->r, "X-Session-Name");
    a->max = ml > 0 ? (char *)MHD_get_response_header(a->r, "X-Max-Sessions") : NULL;
    if (a->dur == NULL || a->uid == NULL || a->name == NULL || (ml > 0 && a->max == NULL)) {
        MHD_destroy_response(a->r);
        free(a);
        return NULL;
    }
    *slot = a;
    return a;
}

static bool answer_allow(struct edge_tokencheck *tc, struct tc_thread *t,
                         struct MHD_Connection *conn, const struct edge_tc_answer *a)
{
    char dur[24], uid[24], max[24];
    size_t dl = fmt_u64(a->auth_duration_s, dur), ul = fmt_u64(a->user_id, uid);
    size_t ml = a->max_sessions > 0 ? fmt_u64(a->max_sessions, max) : 0;
    if (!tc->inplace) {
        struct MHD_Response *r = allow_build(ml, dur, uid, max);
        if (r == NULL) {
            return false;
        }
        bool ok = MHD_queue_response(conn, a->status, r) == MHD_YES;
        MHD_destroy_response(r);
        return ok;
    }
    struct allow_resp *p = allow_prepared(t, dl, ul, ml);
    if (p == NULL) {
        return false;
    }
    memcpy(p->dur, dur, dl);
    memcpy(p->uid, uid, ul);
    memcpy(p->name, uid, ul);
    if (ml > 0) {
        memcpy(p->max, max, ml);
    }
    return MHD_queue_response(conn, a->status, p->r) == MHD_YES;
}

/* ---- the handler --------------------------------------------------------------------- */

static enum MHD_Result arg_cb(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                              const char *value, size_t value_size)
{
    (void)kind;
    edge_tc_req_arg(cls, key, key_size, value, value_size);
    return MHD_YES;
}

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                 size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    edge_tc_req_header(cls, key, key_size, value, value_size);
    return MHD_YES;
}

static bool path_is(const char *p, size_t n)
{
    static const char base[] = "/tvmiddleware/api/streamservice/token/check";
    size_t b = sizeof(base) - 1;
    if (n >= 4 && memcmp(p, "/api", 4) == 0 && n > 4 && p[4] == '/' &&
        strncmp(p + 4, base, b) == 0) {
        p += 4;
        n -= 4;
    }
    if (n < b || memcmp(p, base, b) != 0) {
        return false;
    }
    return n == b || (n == b + 1 && p[b] == '/');
}

bool edge_tokencheck_match(const char *uri)
{
    if (uri == NULL || uri[0] != '/') {
        return false;
    }
    const char *q = strchr(uri, '?');
    return path_is(uri, q != NULL ? (size_t)(q - uri) : strlen(uri));
}

bool edge_tokencheck_serve(void *ctx, struct MHD_Connection *conn, const char *method)
{
    struct edge_tokencheck *tc = ctx;
    struct tc_thread *t = thread_state(tc);
    if (t == NULL) {
        return false; /* out of memory on this thread's first request */
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        if (t->not_allowed == NULL) {
            static const char body[] =
                "{\"error\":\"method_not_allowed\",\"error_message\":\"only GET here\"}";
            t->not_allowed = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
            if (t->not_allowed == NULL) {
                return false;
            }
            MHD_add_response_header(t->not_allowed, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json");
            MHD_add_response_header(t->not_allowed, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        }
        return MHD_queue_response(conn, 405, t->not_allowed) == MHD_YES;
    }
    struct edge_tc_req q;
    struct edge_tc_answer a;
    struct timespec ts;
    edge_tc_req_init(&q);
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND, arg_cb, &q);
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, header_cb, &q);
    edge_tc_req_finish(&q);
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    decide_counted(tc, t, &q, (uint64_t)ts.tv_sec, &a);
    if (a.reason == EDGE_TC_ALLOW) {
        return answer_allow(tc, t, conn, &a);
    }
    struct MHD_Response *r = deny_response(t, a.reason, a.with_auth_duration);
    bool ok = r != NULL && MHD_queue_response(conn, a.status, r) == MHD_YES;
    /* Logged once the answer is queued: the log's lock (stderr) is
     * shared by all threads. */
    log_deny(tc, t, &q, &a);
    return ok;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

/* The in-place mode's preconditions: the version whose behaviour was read,
 * and that a header value read back is the stored copy. */
static bool inplace_ok(void)
{
    const char *v = MHD_get_version();
    if (v == NULL || strcmp(v, INPLACE_VERSION) != 0) {
        return false;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return false;
    }
    bool ok = false;
    if (MHD_add_response_header(r, "X-T", "0000") == MHD_YES) {
        char *p = (char *)MHD_get_response_header(r, "X-T");
        if (p != NULL) {
            memcpy(p, "1234", 4);
            const char *again = MHD_get_response_header(r, "X-T");
            ok = again == p && strcmp(again, "1234") == 0;
        }
    }
    MHD_destroy_response(r);
    return ok;
}

int edge_tokencheck_new(const struct edge_tokencheck_opts *opts, struct edge_tokencheck **out)
{
    struct edge_tokencheck *tc = calloc(1, sizeof(*tc));
    if (tc == NULL) {
        return -ENOMEM;
    }
    tc->store = opts->store;
    tc->skew_s = opts->conf->stream_auth.skew_s;
    tc->auth_duration_s = opts->conf->stream_auth.auth_duration_s;
    tc->log_per_s = opts->conf->stream_auth.log_denies_per_s;
    tc->id = atomic_fetch_add(&next_id, 1);
    if (RAND_bytes((uint8_t *)&tc->seed, sizeof(tc->seed)) != 1) {
        tc->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)tc;
    }
    int rv = edge_tcs_new(opts->conf->stream_auth.session_accounts, &tc->sessions);
    if (rv != 0) {
        free(tc);
        return rv;
    }
    pthread_mutex_init(&tc->mu, NULL);
    tc->inplace = inplace_ok();
    if (!tc->inplace) {
        TVMW_LOG_WARN("tokencheck",
                      "libmicrohttpd %s: allow answers are built per request (prepared "
                      "answers need %s)",
                      MHD_get_version(), INPLACE_VERSION);
    }
    *out = tc;
    return 0;
}

void edge_tokencheck_free(struct edge_tokencheck *tc)
{
    if (tc == NULL) {
        return;
    }
    struct tc_thread *t = tc->threads;
    while (t != NULL) {
        struct tc_thread *next = t->next;
        thread_free(tc, t);
        t = next;
    }
    edge_tcs_free(tc->sessions);
    pthread_mutex_destroy(&tc->mu);
    free(tc);
}

bool edge_tokencheck_inplace(const struct edge_tokencheck *tc)
{
    return tc->inplace;
}

void edge_tokencheck_metrics(struct edge_tokencheck *tc, struct tvmw_buf *out)
{
    uint64_t checks[EDGE_TC_DIALECTS][2] = {{0}}, denies[EDGE_TC_REASONS] = {0}, untracked = 0;
    pthread_mutex_lock(&tc->mu);
    for (struct tc_thread *t = tc->threads; t != NULL; t = t->next) {
        for (unsigned d = 0; d < EDGE_TC_DIALECTS; d++) {
            for (unsigned r = 0; r < 2; r++) {
                checks[d][r] += atomic_load_explicit(&t->checks[d][r], memory_order_relaxed);
            }
        }
        for (unsigned r = 0; r < EDGE_TC_REASONS; r++) {
            denies[r] += atomic_load_explicit(&t->denies[r], memory_order_relaxed);
        }
        untracked += atomic_load_explicit(&t->untracked, memory_order_relaxed);
    }
    pthread_mutex_unlock(&tc->mu);
    tvmw_buf_printf(out, "# HELP tvmw_edge_token_checks_total Stream-token checks answered, by "
                         "caller dialect and result.\n");
    tvmw_buf_printf(out, "# TYPE tvmw_edge_token_checks_total counter\n");
    for (unsigned d = 0; d < EDGE_TC_DIALECTS; d++) {
        for (unsigned r = 0; r < 2; r++) {
            tvmw_buf_printf(
                out, "tvmw_edge_token_checks_total{dialect=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                edge_tc_dialect_name((enum edge_tc_dialect)d), r ? "deny" : "allow", checks[d][r]);
        }
    }
    tvmw_buf_printf(out, "# HELP tvmw_edge_token_denied_total Denied stream-token checks by "
                         "reason (streamer-auth.md 3.4).\n");
    tvmw_buf_printf(out, "# TYPE tvmw_edge_token_denied_total counter\n");
    for (unsigned r = 1; r < EDGE_TC_REASONS; r++) {
        tvmw_buf_printf(out, "tvmw_edge_token_denied_total{reason=\"%s\"} %" PRIu64 "\n",
                        reason_names[r], denies[r]);
    }
    tvmw_buf_printf(out, "# HELP tvmw_edge_token_sessions_untracked_total Playback sessions "
                         "admitted without being counted (session table or slots full).\n");
    tvmw_buf_printf(out, "# TYPE tvmw_edge_token_sessions_untracked_total counter\n");
    tvmw_buf_printf(out, "tvmw_edge_token_sessions_untracked_total %" PRIu64 "\n", untracked);
    tvmw_buf_printf(out, "# HELP tvmw_edge_token_prepared_answers 1 when allow answers are "
                         "prepared per thread and filled in place.\n");
    tvmw_buf_printf(out, "# TYPE tvmw_edge_token_prepared_answers gauge\n");
    tvmw_buf_printf(out, "tvmw_edge_token_prepared_answers %d\n", tc->inplace ? 1 : 0);
}
