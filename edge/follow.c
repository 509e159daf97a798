/*
 * The follower thread (see follow.h for the contract).
 *
 * Requests are blocking from this thread's point of view, but run through
 * a private curl multi handle and curl_multi_poll(), so that
 * edge_follow_stop() interrupts a 10 s long poll or a large snapshot at
 * once with curl_multi_wakeup() instead of waiting for it to end. The one
 * easy handle is reused, so keep-alive connections survive between polls.
 *
 * Everything HTTP threads may read is in `st` under `mu`; the rest belongs
 * to the follower thread.
 */
#include "edge/follow.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "edge/feed.h"
#include "edge/snapshot.h"
#include "edge/store.h"

#define ERROR_BODY_MAX 2048 /* of a non-200 answer, kept for the log */
#define URL_MAX        (TVMW_ADDR_MAX + 128)
#define REMIND_MS      60000 /* "still unreachable" reminder in the log */

enum xfer_kind { XFER_FEED, XFER_SNAPSHOT };

struct node_ref {
    uint64_t id;
    char address[TVMW_ADDR_MAX];
};

struct xfer {
    enum xfer_kind kind;
    CURL *easy;
    long status;
    struct tvmw_buf body; /* the feed answer, or the text of an error answer */
    struct edge_snapshot_parser *parser;
    bool parser_failed;
    bool has_index_header;
    char index_header[24];
};

struct edge_follow {
    struct edge_store *store;
    const struct tvmw_edge_conf *self;
    unsigned wait_ms;
    pthread_t thread;
    bool joined; /* main thread only */
    _Atomic bool stopping;
    pthread_mutex_t sleep_mu; /* with sleep_cv: interruptible pauses */
    pthread_cond_t sleep_cv;
    CURLM *multi;
    CURL *easy;

    /* Follower thread only. */
    struct node_ref nodes[TVMW_MAX_NODES]; /* home datacenter first, each part shuffled */
    unsigned n_nodes;
    unsigned n_home; /* nodes[0..n_home) are in the edge's datacenter */
    unsigned pos;    /* the node followed */
    unsigned probe_pos;
    uint64_t rng;
    bool need_snapshot;
    uint64_t node_last_index; /* last_index of the followed node's last answer */
    uint64_t switched_ns;
    uint64_t next_probe_ns;
    uint64_t lag_since_ns; /* 0: no other node seen ahead */
    uint64_t lag_index;
    unsigned lag_pos;
    uint64_t behind_since_ns; /* 0: no node behind the edge since the last answer */
    uint64_t last_remind_ns;
    bool unreachable_logged;
    bool spin_logged;

    pthread_mutex_t mu; /* guards st and last_contact_ns */
    struct edge_follow_status st;
    uint64_t last_contact_ns; /* monotonic; 0: never */
};

/* ---- small helpers --------------------------------------------------------- */

static uint64_t rng_next(struct edge_follow *f)
{
    /* xorshift64*: jitter and shuffling only, nothing secret. */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ULL;
}

static uint64_t rng_below(struct edge_follow *f, uint64_t n)
{
    return n ? rng_next(f) % n : 0;
}

static void shuffle(struct edge_follow *f, struct node_ref *a, unsigned n)
{
    for (unsigned i = n; i > 1; i--) {
        unsigned j = (unsigned)rng_below(f, i);
        struct node_ref t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* snprintf for messages, which may be cut: vsnprintf, so that
 * -Wformat-truncation does not flag a deliberate cut. */
static void msg(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void msg(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
}

static bool stopping(struct edge_follow *f)
{
    return atomic_load(&f->stopping);
}

/* Sleeps ms unless stopped first. */
static void pause_ms(struct edge_follow *f, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&f->sleep_mu);
    while (!stopping(f)) {
        if (pthread_cond_timedwait(&f->sleep_cv, &f->sleep_mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&f->sleep_mu);
}

static const struct node_ref *current(const struct edge_follow *f)
{
    return &f->nodes[f->pos];
}

static void set_following(struct edge_follow *f)
{
    pthread_mutex_lock(&f->mu);
    f->st.following_id = current(f)->id;
    snprintf(f->st.following_address, sizeof(f->st.following_address), "%s", current(f)->address);
    pthread_mutex_unlock(&f->mu);
}

static void switch_to(struct edge_follow *f, unsigned pos)
{
    if (pos == f->pos) {
        return;
    }
    f->pos = pos;
    f->node_last_index = 0;
    f->lag_since_ns = 0;
    f->switched_ns = tvmw_now_ns();
    set_following(f);
    pthread_mutex_lock(&f->mu);
    f->st.node_switches++;
    pthread_mutex_unlock(&f->mu);
}

static void note_last_index(struct edge_follow *f, uint64_t last_index)
{
    pthread_mutex_lock(&f->mu);
    if (last_index > f->st.cp_last_index) {
        f->st.cp_last_index = last_index;
    }
    pthread_mutex_unlock(&f->mu);
}

/* Publishes the store's state after a change of it. */
static void publish_state(struct edge_follow *f, uint64_t batches, uint64_t changes,
                          uint64_t snapshots)
{
    pthread_mutex_lock(&f->mu);
    f->st.has_state = edge_store_has_state(f->store);
    f->st.applied_index = edge_store_applied_index(f->store);
    f->st.batches_applied += batches;
    f->st.changes_applied += changes;
    f->st.snapshots_loaded += snapshots;
    pthread_mutex_unlock(&f->mu);
}

/* A node answered usefully. */
static void contact(struct edge_follow *f)
{
    uint64_t now = tvmw_now_ns();
    pthread_mutex_lock(&f->mu);
    char since[32] = "never"; /* "after=" what, for the log */
    if (f->last_contact_ns != 0) {
        snprintf(since, sizeof(since), "%" PRIu64 "ms", (now - f->last_contact_ns) / 1000000);
    }
    unsigned failures = f->st.consecutive_failures;
    f->last_contact_ns = now;
    f->st.contacted = true;
    f->st.consecutive_failures = 0;
    uint64_t applied = f->st.applied_index;
    pthread_mutex_unlock(&f->mu);
    if (f->unreachable_logged) {
        TVMW_LOG_INFO("follow",
                      "control plane reachable again node=%" PRIu64
                      " last_contact_before=%s applied_index=%" PRIu64,
                      current(f)->id, since, applied);
    } else if (failures > 0) {
        TVMW_LOG_INFO("follow", "following node=%" PRIu64 " addr=%s applied_index=%" PRIu64,
                      current(f)->id, current(f)->address, applied);
    }
    f->unreachable_logged = false;
}

/* A request failed: count it, say so (without flooding the log), move to
 * the next node and pause with backoff and jitter. */
static void failure(struct edge_follow *f, bool snapshot_refused, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failure(struct edge_follow *f, bool snapshot_refused, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (stopping(f)) {
        return;
    }
    uint64_t now = tvmw_now_ns();
    pthread_mutex_lock(&f->mu);
    unsigned failures = ++f->st.consecutive_failures;
    f->st.feed_errors++;
    f->st.snapshots_refused += snapshot_refused;
    msg(f->st.last_error, sizeof(f->st.last_error), "node %" PRIu64 ": %s", current(f)->id, reason);
    bool has_state = f->st.has_state;
    uint64_t applied = f->st.applied_index;
    char since[32] = "never";
    if (f->last_contact_ns != 0) {
        snprintf(since, sizeof(since), "%" PRIu64 "s", (now - f->last_contact_ns) / 1000000000);
    }
    pthread_mutex_unlock(&f->mu);

    unsigned shift = failures - 1 < 16 ? failures - 1 : 16;
    uint64_t backoff = (uint64_t)EDGE_FOLLOW_BACKOFF_MIN_MS << shift;
    if (backoff > EDGE_FOLLOW_BACKOFF_MAX_MS) {
        backoff = EDGE_FOLLOW_BACKOFF_MAX_MS;
    }
    unsigned pause = (unsigned)(backoff / 2 + rng_below(f, backoff / 2 + 1));
    const struct node_ref *failed = current(f);
    if (failures == 1 || snapshot_refused) {
        TVMW_LOG_WARN("follow", "node=%" PRIu64 " addr=%s failed: %s; next in %u ms", failed->id,
                      failed->address, reason, pause);
    } else {
        TVMW_LOG_DEBUG("follow", "node=%" PRIu64 " addr=%s failed: %s; next in %u ms", failed->id,
                       failed->address, reason, pause);
    }
    if (failures >= f->n_nodes &&
        (!f->unreachable_logged || now - f->last_remind_ns >= (uint64_t)REMIND_MS * 1000000)) {
        if (has_state) {
            TVMW_LOG_WARN("follow",
                          "control plane unreachable (every node failed); serving the local "
                          "state applied_index=%" PRIu64 " last_contact=%s last_error=\"%s\"",
                          applied, since, reason);
        } else {
            TVMW_LOG_WARN("follow", "control plane unreachable and no local state: nothing to "
                                    "serve until a node answers");
        }
        f->unreachable_logged = true;
        f->last_remind_ns = now;
    }
    switch_to(f, (f->pos + 1) % f->n_nodes);
    pause_ms(f, pause);
}

/* ---- transfers ---------------------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    static const char name[] = "x-tvmw-snapshot-index:";
    if (len > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        size_t i = sizeof(name) - 1, o = 0;
        while (i < len && (p[i] == ' ' || p[i] == '\t')) {
            i++;
        }
        while (i < len && p[i] >= '0' && p[i] <= '9' && o + 1 < sizeof(x->index_header)) {
            x->index_header[o++] = p[i++];
        }
        x->index_header[o] = '\0';
        x->has_index_header = o > 0;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (x->status == 0) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    }
    if (x->kind == XFER_SNAPSHOT && x->status == 200) {
        if (edge_snapshot_parser_feed(x->parser, p, len) != 0) {
            x->parser_failed = true;
            return 0; /* aborts the transfer */
        }
        return len;
    }
    if (x->kind == XFER_SNAPSHOT || x->status != 200) {
        /* An error answer: keep its beginning for the log. */
        size_t room = x->body.len < ERROR_BODY_MAX ? ERROR_BODY_MAX - x->body.len : 0;
        tvmw_buf_append(&x->body, p, len < room ? len : room);
        return len;
    }
    return tvmw_buf_append(&x->body, p, len) == 0 ? len : 0;
}

/* Runs the configured transfer to its end (or until stop). 0 once an HTTP
 * answer came back (x->status), TVMW_ESHUTDOWN, or TVMW_EIO with a reason. */
static int perform(struct edge_follow *f, struct xfer *x, char *err, size_t err_len)
{
    CURLcode result = CURLE_OK;
    int running = 1, rv = 0;
    if (curl_multi_add_handle(f->multi, f->easy) != CURLM_OK) {
        snprintf(err, err_len, "curl_multi_add_handle failed");
        return TVMW_EIO;
    }
    for (;;) {
        CURLMcode mc = curl_multi_perform(f->multi, &running);
        if (mc != CURLM_OK) {
            msg(err, err_len, "%s", curl_multi_strerror(mc));
            rv = TVMW_EIO;
            goto out;
        }
        if (running == 0) {
            break;
        }
        if (stopping(f)) {
            rv = TVMW_ESHUTDOWN;
            goto out;
        }
        curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
    }
    int queued;
    CURLMsg *m;
    while ((m = curl_multi_info_read(f->multi, &queued)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            result = m->data.result;
        }
    }
    if (result != CURLE_OK) {
        msg(err, err_len, "%s", curl_easy_strerror(result));
        rv = TVMW_EIO;
        goto out;
    }
    curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &x->status);
out:
    curl_multi_remove_handle(f->multi, f->easy);
    return rv;
}

static void xfer_setup(struct edge_follow *f, struct xfer *x, enum xfer_kind kind, const char *url,
                       long timeout_ms, long connect_ms)
{
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->easy = f->easy;
    tvmw_buf_init(&x->body, kind == XFER_FEED ? EDGE_FEED_MAX_BYTES : ERROR_BODY_MAX + 1);
    curl_easy_reset(f->easy);
    curl_easy_setopt(f->easy, CURLOPT_URL, url);
    curl_easy_setopt(f->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(f->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(f->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(f->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http");
}

/* "HTTP 503: {...}" for the log. */
static void describe_answer(const struct xfer *x, char *out, size_t len)
{
    int n = (int)(x->body.len < 200 ? x->body.len : 200);
    msg(out, len, "HTTP %ld: %.*s", x->status, n, x->body.data ? x->body.data : "");
    for (char *p = out; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
}

/* ---- snapshot ------------------------------------------------------------------- */

static void download_snapshot(struct edge_follow *f)
{
    const struct node_ref *node = current(f);
    char url[URL_MAX], err[256] = "", what[300];
    struct edge_store_load *load;
    struct xfer x;
    uint64_t t0 = tvmw_now_ns();
    int rv = edge_store_load_begin(f->store, &load);
    if (rv != 0) {
        failure(f, false, "cannot start a new state: %s", tvmw_strerror(rv));
        return;
    }
    snprintf(url, sizeof(url), "http://%s/edge/v1/snapshot", node->address);
    xfer_setup(f, &x, XFER_SNAPSHOT, url, 0, EDGE_FOLLOW_CONNECT_MS);
    /* No overall timeout (a state may be large), but a stalled one ends. */
    curl_easy_setopt(f->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(f->easy, CURLOPT_LOW_SPEED_TIME, (long)EDGE_FOLLOW_SNAPSHOT_STALL_S);
    if ((rv = edge_snapshot_parser_new(edge_store_load_put, load, &x.parser)) != 0) {
        edge_store_load_abort(load);
        tvmw_buf_close(&x.body);
        failure(f, false, "out of memory");
        return;
    }
    TVMW_LOG_INFO("follow", "downloading a snapshot node=%" PRIu64 " addr=%s", node->id,
                  node->address);
    rv = perform(f, &x, err, sizeof(err));
    bool refused = false;
    if (x.parser_failed) {
        rv = TVMW_ECORRUPT;
        refused = true;
        msg(what, sizeof(what), "snapshot refused: %s", edge_snapshot_parser_error(x.parser));
    } else if (rv != 0) {
        msg(what, sizeof(what), "snapshot download failed: %s", err);
    } else if (x.status != 200) {
        rv = TVMW_EIO;
        describe_answer(&x, err, sizeof(err));
        msg(what, sizeof(what), "snapshot: %s", err);
    } else if ((rv = edge_snapshot_parser_finish(x.parser)) != 0) {
        refused = true;
        msg(what, sizeof(what), "snapshot refused: %s", edge_snapshot_parser_error(x.parser));
    } else if (x.has_index_header &&
               strtoull(x.index_header, NULL, 10) != edge_snapshot_parser_index(x.parser)) {
        rv = TVMW_ECORRUPT;
        refused = true;
        msg(what, sizeof(what),
            "snapshot refused: X-Tvmw-Snapshot-Index %s, the snapshot says %" PRIu64,
            x.index_header, edge_snapshot_parser_index(x.parser));
    }
    uint64_t index = edge_snapshot_parser_index(x.parser);
    uint64_t records = edge_snapshot_parser_records(x.parser);
    uint64_t bytes = edge_snapshot_parser_offset(x.parser);
    edge_snapshot_parser_free(x.parser);
    tvmw_buf_close(&x.body);
    if (rv != 0) {
        edge_store_load_abort(load);
        if (rv == TVMW_ESHUTDOWN) {
            return;
        }
        if (refused) {
            TVMW_LOG_ERROR("follow",
                           "node=%" PRIu64 " %s; keeping the state applied_index=%" PRIu64,
                           node->id, what, edge_store_applied_index(f->store));
        }
        failure(f, refused, "%s", what);
        return;
    }
    if ((rv = edge_store_load_commit(load, index)) != 0) {
        failure(f, false, "cannot store the snapshot: %s", tvmw_strerror(rv));
        return;
    }
    f->need_snapshot = false;
    f->behind_since_ns = 0;
    publish_state(f, 0, 0, 1);
    pthread_mutex_lock(&f->mu);
    f->st.cp_last_index = index; /* the cluster's, as of this snapshot */
    pthread_mutex_unlock(&f->mu);
    contact(f);
    TVMW_LOG_INFO("follow",
                  "snapshot loaded node=%" PRIu64 " index=%" PRIu64 " records=%" PRIu64
                  " bytes=%" PRIu64 " took_ms=%" PRIu64,
                  node->id, index, records, bytes, (tvmw_now_ns() - t0) / 1000000);
}

/* ---- feed ------------------------------------------------------------------------ */

/* A node answered with a last_index below the edge's. Committed entries
 * never go back in raft, so when every node stays behind for long, the
 * cluster was restored from an older backup (or lost its data): the
 * edge's state holds writes the cluster no longer has, and only a
 * snapshot brings it back in line. */
static void behind(struct edge_follow *f, uint64_t last, uint64_t after)
{
    uint64_t now = tvmw_now_ns();
    if (f->behind_since_ns == 0) {
        f->behind_since_ns = now;
    } else if (now - f->behind_since_ns >= (uint64_t)EDGE_FOLLOW_BEHIND_RESET_MS * 1000000) {
        TVMW_LOG_WARN("follow",
                      "every node answering has been behind the edge for %d s (restored from "
                      "an older backup?): applied_index=%" PRIu64 ", node=%" PRIu64 " at %" PRIu64
                      "; downloading a snapshot",
                      EDGE_FOLLOW_BEHIND_RESET_MS / 1000, after, current(f)->id, last);
        f->behind_since_ns = 0;
        f->need_snapshot = true;
    }
    failure(f, false, "node is behind the edge (last_index %" PRIu64 " < applied %" PRIu64 ")",
            last, after);
}

/* Returns true if the answer moved the edge forward. */
static bool apply_answer(struct edge_follow *f, const struct xfer *x, uint64_t after)
{
    struct edge_feed_answer a;
    char err[256];
    int rv = edge_feed_decode(x->body.data, x->body.len, after, &a, err, sizeof(err));
    if (rv != 0) {
        failure(f, false, "malformed feed answer: %s", err);
        return false;
    }
    note_last_index(f, a.last_index);
    if (a.last_index < after) {
        /* This node has applied less than the edge has: it is cut off or
         * restarting. Its answers would only stall us. */
        uint64_t last = a.last_index;
        edge_feed_answer_close(&a);
        behind(f, last, after);
        return false;
    }
    f->behind_since_ns = 0;
    f->node_last_index = a.last_index;
    uint64_t next = edge_feed_next_index(&a);
    size_t n = a.n_changes;
    if (next > after || n > 0) {
        rv = edge_store_apply(f->store, a.changes, n, next);
    }
    edge_feed_answer_close(&a);
    if (rv != 0) {
        TVMW_LOG_ERROR("follow", "cannot apply a feed batch changes=%zu index=%" PRIu64 ": %s", n,
                       next, tvmw_strerror(rv));
        failure(f, false, "cannot apply a batch: %s", tvmw_strerror(rv));
        return false;
    }
    contact(f);
    if (next > after || n > 0) {
        publish_state(f, 1, n, 0);
        TVMW_LOG_DEBUG("follow", "applied changes=%zu applied_index=%" PRIu64, n, next);
        return true;
    }
    return false;
}

/* A long poll that comes back at once with nothing new breaks the
 * protocol (it should have waited); polling again at once would make a
 * busy loop of the edge and of the node. */
static void pause_if_spinning(struct edge_follow *f, uint64_t t0)
{
    uint64_t took_ms = (tvmw_now_ns() - t0) / 1000000;
    if (took_ms >= f->wait_ms / 2) {
        return;
    }
    if (!f->spin_logged) {
        TVMW_LOG_WARN("follow",
                      "node=%" PRIu64 " answered the long poll after %" PRIu64
                      " ms with nothing new; pausing %d ms between such polls",
                      current(f)->id, took_ms, EDGE_FOLLOW_SPIN_PAUSE_MS);
        f->spin_logged = true;
    }
    pause_ms(f, EDGE_FOLLOW_SPIN_PAUSE_MS);
}

static void poll_feed(struct edge_follow *f)
{
    const struct node_ref *node = current(f);
    uint64_t after = edge_store_applied_index(f->store);
    char url[URL_MAX], err[256];
    struct xfer x;
    snprintf(url, sizeof(url), "http://%s/edge/v1/feed?after=%" PRIu64 "&wait_ms=%u&limit=%u",
             node->address, after, f->wait_ms, EDGE_FEED_LIMIT);
    xfer_setup(f, &x, XFER_FEED, url, (long)f->wait_ms + 5000, EDGE_FOLLOW_CONNECT_MS);
    uint64_t t0 = tvmw_now_ns();
    int rv = perform(f, &x, err, sizeof(err));
    if (rv == TVMW_ESHUTDOWN) {
        tvmw_buf_close(&x.body);
        return;
    }
    if (rv != 0) {
        failure(f, false, "feed: %s", err);
    } else if (x.status == 200) {
        if (!apply_answer(f, &x, after) && f->st.consecutive_failures == 0) {
            pause_if_spinning(f, t0);
        }
    } else if (x.status == 410) {
        uint64_t last;
        if (edge_feed_last_index(x.body.data, x.body.len, &last) == 0) {
            note_last_index(f, last);
        }
        TVMW_LOG_INFO("follow",
                      "applied_index=%" PRIu64 " is older than node=%" PRIu64
                      "'s feed window: downloading a snapshot",
                      after, node->id);
        f->need_snapshot = true;
        contact(f);
    } else {
        describe_answer(&x, err, sizeof(err));
        failure(f, false, "feed: %s", err);
    }
    tvmw_buf_close(&x.body);
}

/* Asks another node how far it is; leaves a node that stays behind it. */
static void probe(struct edge_follow *f)
{
    uint64_t now = tvmw_now_ns();
    if (f->n_nodes < 2 || now < f->next_probe_ns) {
        return;
    }
    f->next_probe_ns = now + (uint64_t)EDGE_FOLLOW_PROBE_MS * 1000000;
    f->probe_pos = (f->probe_pos + 1) % f->n_nodes;
    if (f->probe_pos == f->pos) {
        f->probe_pos = (f->probe_pos + 1) % f->n_nodes;
    }
    const struct node_ref *node = &f->nodes[f->probe_pos];
    char url[URL_MAX], err[256];
    struct xfer x;
    uint64_t last;
    snprintf(url, sizeof(url), "http://%s/edge/v1/feed?after=%" PRIu64 "&wait_ms=0&limit=1",
             node->address, edge_store_applied_index(f->store));
    xfer_setup(f, &x, XFER_FEED, url, EDGE_FOLLOW_PROBE_TIMEOUT, EDGE_FOLLOW_PROBE_TIMEOUT);
    int rv = perform(f, &x, err, sizeof(err));
    bool ok = rv == 0 && (x.status == 200 || x.status == 410) &&
              edge_feed_last_index(x.body.data, x.body.len, &last) == 0;
    tvmw_buf_close(&x.body);
    if (!ok) {
        return; /* the probed node's trouble is not ours */
    }
    note_last_index(f, last);
    if (last <= f->node_last_index) {
        f->lag_since_ns = 0;
        return;
    }
    if (f->lag_since_ns == 0 || f->lag_pos != f->probe_pos) {
        f->lag_since_ns = now;
        f->lag_index = last;
        f->lag_pos = f->probe_pos;
        return;
    }
    if (now - f->lag_since_ns >= (uint64_t)EDGE_FOLLOW_LAG_MS * 1000000 &&
        f->node_last_index < f->lag_index) {
        TVMW_LOG_WARN("follow",
                      "node=%" PRIu64 " is behind (last_index %" PRIu64 ") while node=%" PRIu64
                      " is at %" PRIu64 ": switching",
                      current(f)->id, f->node_last_index, node->id, last);
        switch_to(f, f->probe_pos);
    }
}

/* Back to the home datacenter after a while elsewhere. */
static void maybe_go_home(struct edge_follow *f)
{
    if (f->n_home == 0 || f->pos < f->n_home ||
        tvmw_now_ns() - f->switched_ns < (uint64_t)EDGE_FOLLOW_HOME_MS * 1000000) {
        return;
    }
    unsigned home = (unsigned)rng_below(f, f->n_home);
    TVMW_LOG_INFO("follow", "trying node=%" PRIu64 " of datacenter %s again", f->nodes[home].id,
                  f->self->datacenter);
    switch_to(f, home);
}

static void *run(void *arg)
{
    struct edge_follow *f = arg;
    while (!stopping(f)) {
        if (!edge_store_has_state(f->store) || f->need_snapshot) {
            download_snapshot(f);
            continue;
        }
        poll_feed(f);
        if (!stopping(f) && f->st.consecutive_failures == 0) {
            probe(f);
            maybe_go_home(f);
        }
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void choose_nodes(struct edge_follow *f, const struct tvmw_config *conf)
{
    unsigned n = 0;
    for (int home = 1; home >= 0; home--) {
        unsigned first = n;
        for (unsigned i = 0; i < conf->n_nodes; i++) {
            const struct tvmw_node_conf *nc = &conf->nodes[i];
            if ((strcmp(nc->datacenter, f->self->datacenter) == 0) == (home == 1)) {
                f->nodes[n].id = nc->id;
                snprintf(f->nodes[n].address, sizeof(f->nodes[n].address), "%s", nc->http_address);
                n++;
            }
        }
        shuffle(f, f->nodes + first, n - first);
        if (home == 1) {
            f->n_home = n;
        }
    }
    f->n_nodes = n;
}

static void destroy(struct edge_follow *f)
{
    if (f->easy != NULL) {
        curl_easy_cleanup(f->easy);
    }
    if (f->multi != NULL) {
        curl_multi_cleanup(f->multi);
    }
    pthread_cond_destroy(&f->sleep_cv);
    pthread_mutex_destroy(&f->sleep_mu);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int edge_follow_start(const struct edge_follow_opts *opts, struct edge_follow **out)
{
    if (opts->conf->n_nodes == 0) {
        return TVMW_ECONFIG;
    }
    pthread_once(&curl_once, curl_init_once);
    struct edge_follow *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -ENOMEM;
    }
    f->store = opts->store;
    f->self = opts->self;
    f->wait_ms = opts->wait_ms ? opts->wait_ms : EDGE_FOLLOW_WAIT_MS;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->sleep_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->sleep_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (getrandom(&f->rng, sizeof(f->rng), 0) != (ssize_t)sizeof(f->rng) || f->rng == 0) {
        f->rng = tvmw_now_ns() | 1;
    }
    choose_nodes(f, opts->conf);
    f->switched_ns = tvmw_now_ns();
    f->probe_pos = f->pos;
    f->st.has_state = edge_store_has_state(f->store);
    f->st.applied_index = edge_store_applied_index(f->store);
    f->st.following_id = current(f)->id;
    snprintf(f->st.following_address, sizeof(f->st.following_address), "%s", current(f)->address);
    f->multi = curl_multi_init();
    f->easy = curl_easy_init();
    if (f->multi == NULL || f->easy == NULL) {
        destroy(f);
        return -ENOMEM;
    }
    /* Before the thread starts: from then on `pos` is the thread's. */
    TVMW_LOG_INFO("follow", "following node=%" PRIu64 " addr=%s (%u nodes, %u in datacenter %s)",
                  current(f)->id, current(f)->address, f->n_nodes, f->n_home, f->self->datacenter);
    int rc = pthread_create(&f->thread, NULL, run, f);
    if (rc != 0) {
        destroy(f);
        return -rc;
    }
    *out = f;
    return 0;
}

void edge_follow_stop(struct edge_follow *f)
{
    if (f == NULL || f->joined) {
        return;
    }
    pthread_mutex_lock(&f->sleep_mu);
    atomic_store(&f->stopping, true);
    pthread_cond_broadcast(&f->sleep_cv);
    pthread_mutex_unlock(&f->sleep_mu);
    curl_multi_wakeup(f->multi);
    pthread_join(f->thread, NULL);
    f->joined = true;
}

void edge_follow_free(struct edge_follow *f)
{
    if (f == NULL) {
        return;
    }
    edge_follow_stop(f);
    destroy(f);
}

void edge_follow_status(struct edge_follow *f, struct edge_follow_status *out)
{
    uint64_t now = tvmw_now_ns();
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    uint64_t last = f->last_contact_ns;
    pthread_mutex_unlock(&f->mu);
    out->seconds_since_contact = last ? (double)(now - last) / 1e9 : -1;
    out->stale = last == 0 ||
                 now - last > (uint64_t)EDGE_FOLLOW_STALE_WAITS * f->wait_ms * 1000000 ||
                 out->consecutive_failures >= f->n_nodes;
}
