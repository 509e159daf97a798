/*
 * The device-write journal: an fsync'd LMDB queue and the thread that
 * empties it into the control plane. See journal.h.
 *
 * On disk: <data-dir>/journal/{data.mdb,lock.mdb}, one database "q":
 * be64 sequence number -> the write as compact JSON. Sequence numbers
 * grow from the last one found at open; only the sender removes, always
 * from the front, so the queue is the key order.
 *
 * Group commit: an append queues its write in memory; the first appender
 * that finds no commit running becomes the committer, writes everything
 * queued so far in one transaction (one fsync) and wakes the others.
 * Appends that arrive during an fsync thus share the next one.
 */
#include "edge/journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/metrics.h"

#define DIR_NAME       "journal"
#define RESP_MAX_BYTES (8u << 20)
#define REQID_BYTES    16
#define IDLE_WAIT_MS   1000 /* sender: re-check for writes this often when idle */
#define LOG_EVERY_MS   10000
#define PATH_LEN       600

/* An append waiting for the committer. */
struct item {
    struct item *next;
    char *text;
    size_t len;
    int result;
    bool done;
};

struct edge_journal {
    const struct tvmw_config *conf;
    MDB_env *env;
    MDB_dbi q;
    struct tvmw_httpc *httpc;
    char auth[300]; /* "Authorization: Bearer <admin_token>" */

    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t committed; /* a group commit finished */
    pthread_cond_t wake;      /* sender: new writes, or stop */
    struct item *queue, **queue_tail;
    bool committing;
    uint64_t next_seq;
    uint64_t pending;
    struct edge_journal_status counts; /* pending unused here */
    bool stop;
    bool running;
    pthread_t thread;
    uint64_t rng;           /* xorshift64*: jitter, node choice; nothing secret */
    unsigned node;          /* sender: the node it talks to */
    unsigned call_node;     /* edge_journal_call: where the last call got an answer */
    uint64_t last_fail_log; /* ms of the last "refused" log line */
};

static int err_from_mdb(int rc)
{
    if (rc == 0) {
        return 0;
    }
    if (rc == MDB_NOTFOUND) {
        return TVMW_ENOTFOUND;
    }
    if (rc == MDB_MAP_FULL) {
        return TVMW_EBUSY;
    }
    TVMW_LOG_ERROR("journal", "lmdb error: %s", mdb_strerror(rc));
    return TVMW_ESTORE;
}

/* Under mu. */
static uint64_t rng_next(struct edge_journal *j)
{
    j->rng ^= j->rng >> 12;
    j->rng ^= j->rng << 25;
    j->rng ^= j->rng >> 27;
    return j->rng * 0x2545F4914F6CDD1Dull;
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Adds a random "reqid" to w unless it has one. */
static int ensure_reqid(json_t *w)
{
    if (json_object_get(w, "reqid") != NULL) {
        return 0;
    }
    uint8_t raw[REQID_BYTES];
    char hex[2 * REQID_BYTES + 1];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return TVMW_EIO;
    }
    hex_encode(raw, sizeof(raw), hex);
    return json_object_set_new(w, "reqid", json_string(hex)) == 0 ? 0 : -ENOMEM;
}

/* ---- open / close --------------------------------------------------------------- */

static int env_open(struct edge_journal *j, const char *dir)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    MDB_stat st;
    int rc = mdb_env_create(&j->env);
    if (rc != 0) {
        return err_from_mdb(rc);
    }
    mdb_env_set_mapsize(j->env, (size_t)EDGE_JOURNAL_MAP_MB << 20);
    mdb_env_set_maxdbs(j->env, 2);
    /* Synced commits (no MDB_NOSYNC): an append is durable when it
     * returns. NOTLS: read transactions of several threads. */
    if ((rc = mdb_env_open(j->env, dir, MDB_NOTLS, 0600)) != 0) {
        goto err_close;
    }
    if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)) != 0) {
        goto err_close;
    }
    if ((rc = mdb_dbi_open(txn, "q", MDB_CREATE, &j->q)) != 0 ||
        (rc = mdb_stat(txn, j->q, &st)) != 0 || (rc = mdb_cursor_open(txn, j->q, &cur)) != 0) {
        goto err_abort;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    j->next_seq = 1;
    if (rc == 0 && k.mv_size == 8) {
        j->next_seq = tvmw_get_be64(k.mv_data) + 1;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        goto err_abort;
    }
    j->pending = st.ms_entries;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        goto err_close;
    }
    return 0;

err_abort:
    mdb_txn_abort(txn);
err_close:
    mdb_env_close(j->env);
    j->env = NULL;
    return err_from_mdb(rc);
}

int edge_journal_open(const char *data_dir, const struct tvmw_config *conf,
                      struct edge_journal **out)
{
    char dir[PATH_LEN];
    int n = snprintf(dir, sizeof(dir), "%s/" DIR_NAME, data_dir);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    if ((mkdir(data_dir, 0700) != 0 && errno != EEXIST) ||
        (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        return -errno;
    }
    struct edge_journal *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return -ENOMEM;
    }
    j->conf = conf;
    j->queue_tail = &j->queue;
    n = snprintf(j->auth, sizeof(j->auth), "Authorization: Bearer %s", conf->admin_token);
    int rv = n > 0 && (size_t)n < sizeof(j->auth) ? 0 : TVMW_ECONFIG;
    if (rv == 0 &&
        (getrandom(&j->rng, sizeof(j->rng), 0) != (ssize_t)sizeof(j->rng) || j->rng == 0)) {
        j->rng = tvmw_now_ns() | 1;
    }
    if (rv == 0) {
        rv = tvmw_httpc_new(RESP_MAX_BYTES, &j->httpc);
    }
    if (rv != 0) {
        free(j);
        return rv;
    }
    if ((rv = env_open(j, dir)) != 0) {
        tvmw_httpc_free(j->httpc);
        free(j);
        return rv;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->wake, &ca);
    pthread_cond_init(&j->committed, &ca);
    pthread_condattr_destroy(&ca);
    if (conf->n_nodes > 0) {
        j->node = (unsigned)(rng_next(j) % conf->n_nodes);
        j->call_node = j->node;
    }
    TVMW_LOG_INFO("journal", "opened dir=%s pending=%llu max_writes=%u", dir,
                  (unsigned long long)j->pending, conf->journal.max_writes);
    *out = j;
    return 0;
}

void edge_journal_close(struct edge_journal *j)
{
    if (j == NULL) {
        return;
    }
    edge_journal_stop(j);
    mdb_env_close(j->env);
    tvmw_httpc_free(j->httpc);
    pthread_cond_destroy(&j->wake);
    pthread_cond_destroy(&j->committed);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* ---- append ------------------------------------------------------------------------ */

/* Writes the items in one transaction; sets each one's result. At most
 * `room` of them fit. Not under mu (only the committer runs this). */
static void commit_batch(struct edge_journal *j, struct item *batch, uint64_t room, uint64_t *seq,
                         uint64_t *added)
{
    MDB_txn *txn = NULL;
    uint64_t s = *seq, n = 0;
    int rv = err_from_mdb(mdb_txn_begin(j->env, NULL, 0, &txn));
    for (struct item *it = batch; rv == 0 && it != NULL; it = it->next) {
        if (n == room) {
            it->result = TVMW_EBUSY; /* full: this one is dropped */
            continue;
        }
        uint8_t key[8];
        tvmw_put_be64(key, s);
        MDB_val k = {.mv_size = 8, .mv_data = key}, v = {.mv_size = it->len, .mv_data = it->text};
        int rc = mdb_put(txn, j->q, &k, &v, MDB_APPEND);
        if (rc != 0) {
            rv = err_from_mdb(rc);
            break;
        }
        it->result = 0;
        s++;
        n++;
    }
    if (rv == 0) {
        rv = err_from_mdb(mdb_txn_commit(txn)); /* the fsync */
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    if (rv != 0) {
        for (struct item *it = batch; it != NULL; it = it->next) {
            it->result = rv; /* nothing of this commit is on disk */
        }
        n = 0;
        s = *seq;
    }
    *seq = s;
    *added = n;
}

int edge_journal_append(struct edge_journal *j, json_t *w)
{
    if (!json_is_object(w)) {
        return TVMW_EMALFORMED;
    }
    int rv = ensure_reqid(w);
    if (rv != 0) {
        return rv;
    }
    struct item me = {.result = TVMW_ESTORE};
    me.text = json_dumps(w, JSON_COMPACT);
    if (me.text == NULL) {
        return -ENOMEM;
    }
    me.len = strlen(me.text);
    if (me.len > EDGE_JOURNAL_WRITE_MAX_BYTES) {
        free(me.text);
        return TVMW_ETOOBIG;
    }
    pthread_mutex_lock(&j->mu);
    *j->queue_tail = &me;
    j->queue_tail = &me.next;
    while (!me.done) {
        if (j->committing) {
            pthread_cond_wait(&j->committed, &j->mu);
            continue;
        }
        /* Commit everything queued so far, ours included. */
        struct item *batch = j->queue;
        j->queue = NULL;
        j->queue_tail = &j->queue;
        j->committing = true;
        uint64_t max = j->conf->journal.max_writes;
        uint64_t room = j->pending < max ? max - j->pending : 0, seq = j->next_seq, added;
        pthread_mutex_unlock(&j->mu);
        commit_batch(j, batch, room, &seq, &added);
        pthread_mutex_lock(&j->mu);
        j->next_seq = seq;
        j->pending += added;
        for (struct item *it = batch, *next; it != NULL; it = next) {
            next = it->next; /* `it` may vanish once done is seen */
            j->counts.appended_total += it->result == 0;
            j->counts.dropped_total += it->result == TVMW_EBUSY;
            it->done = true;
        }
        j->committing = false;
        pthread_cond_broadcast(&j->committed);
        if (added > 0) {
            pthread_cond_signal(&j->wake);
        }
    }
    rv = me.result;
    pthread_mutex_unlock(&j->mu);
    free(me.text);
    return rv;
}

/* ---- sending ----------------------------------------------------------------------- */

/* One batch read from the front of the queue. */
struct batch {
    struct tvmw_buf body; /* {"writes":[...]} */
    size_t n;
    char idem[2 * 32 + 1]; /* SHA-256 of the writes, hex */
};

/* Reads up to `limit` writes from the front into b. */
static int batch_read(struct edge_journal *j, size_t limit, struct batch *b)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t md[32];
    unsigned int md_len = sizeof(md);
    b->n = 0;
    b->body.len = 0;
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(sha);
        return -ENOMEM;
    }
    int rv = err_from_mdb(mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn));
    if (rv == 0 && (rv = err_from_mdb(mdb_cursor_open(txn, j->q, &cur))) != 0) {
        mdb_txn_abort(txn);
    }
    if (rv != 0) {
        EVP_MD_CTX_free(sha);
        return rv;
    }
    rv = tvmw_buf_append(&b->body, "{\"writes\":[", 11);
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && rv == 0 && b->n < limit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (b->n > 0 && b->body.len + v.mv_size + 3 > EDGE_JOURNAL_BATCH_MAX_BYTES) {
            break; /* the first write always goes, whatever its size */
        }
        if ((b->n > 0 && (rv = tvmw_buf_append(&b->body, ",", 1)) != 0) ||
            (rv = tvmw_buf_append(&b->body, v.mv_data, v.mv_size)) != 0) {
            break;
        }
        EVP_DigestUpdate(sha, v.mv_data, v.mv_size);
        b->n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rv == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        rv = err_from_mdb(rc);
    }
    if (rv == 0) {
        rv = tvmw_buf_append(&b->body, "]}", 2);
    }
    EVP_DigestFinal_ex(sha, md, &md_len);
    EVP_MD_CTX_free(sha);
    hex_encode(md, sizeof(md), b->idem);
    return rv;
}

/* Removes the first n writes (answered). */
static int batch_remove(struct edge_journal *j, size_t n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rv = err_from_mdb(mdb_txn_begin(j->env, NULL, 0, &txn));
    if (rv != 0) {
        return rv;
    }
    if ((rv = err_from_mdb(mdb_cursor_open(txn, j->q, &cur))) != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    size_t done = 0;
    while (done < n && (rv = err_from_mdb(mdb_cursor_get(cur, &k, &v, MDB_FIRST))) == 0) {
        if ((rv = err_from_mdb(mdb_cursor_del(cur, 0))) != 0) {
            break;
        }
        done++;
    }
    mdb_cursor_close(cur);
    if (rv != 0 && rv != TVMW_ENOTFOUND) {
        mdb_txn_abort(txn);
        return rv;
    }
    if ((rv = err_from_mdb(mdb_txn_commit(txn))) != 0) {
        return rv;
    }
    pthread_mutex_lock(&j->mu);
    j->pending = j->pending > done ? j->pending - done : 0;
    pthread_mutex_unlock(&j->mu);
    return 0;
}

enum outcome {
    OUT_ANSWERED, /* 200 with every result: *results set */
    OUT_REFUSED,  /* 400/413: the batch as such cannot be taken */
    OUT_RETRY,    /* anything else: try another node later */
};

/* POSTs body to node i; classifies the answer. why: for the log. */
static enum outcome post(struct edge_journal *j, unsigned i, const struct tvmw_buf *body,
                         const char *idem, size_t n, unsigned timeout_ms, json_t **results,
                         char *why, size_t why_len)
{
    char url[TVMW_ADDR_MAX + 64], idem_hdr[128];
    const char *addr = j->conf->nodes[i].http_address;
    snprintf(url, sizeof(url), "http://%s/edge/v1/device-writes", addr);
    snprintf(idem_hdr, sizeof(idem_hdr), "Idempotency-Key: %.64s", idem);
    const char *headers[] = {j->auth, "Content-Type: application/json", idem_hdr, "Expect:", NULL};
    struct tvmw_httpc_resp resp;
    char err[256] = "";
    int rv = tvmw_httpc_do(j->httpc, "POST", url, headers, body->data, body->len, timeout_ms, &resp,
                           err, sizeof(err));
    enum outcome out = OUT_RETRY;
    if (rv != 0) {
        snprintf(why, why_len, "node %s: %s", addr, err);
    } else if (resp.status == 200) {
        json_t *o = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        json_t *r = json_object_get(o, "results");
        if (json_is_array(r) && json_array_size(r) == n) {
            *results = json_incref(r);
            out = OUT_ANSWERED;
        } else {
            snprintf(why, why_len, "node %s: 200 without %zu results", addr, n);
        }
        json_decref(o);
    } else {
        snprintf(why, why_len, "node %s: HTTP %ld %.160s", addr, resp.status,
                 resp.body.data ? resp.body.data : "");
        if (resp.status == 400 || resp.status == 413) {
            out = OUT_REFUSED;
        }
    }
    tvmw_buf_close(&resp.body);
    return out;
}

/* Counts and logs the per-write errors of an answered batch. */
static void note_results(struct edge_journal *j, const json_t *results)
{
    size_t i, failed = 0;
    json_t *r, *first = NULL;
    json_array_foreach(results, i, r)
    {
        if (json_integer_value(json_object_get(r, "error")) != 0) {
            failed++;
            first = first ? first : r;
        }
    }
    uint64_t now = tvmw_now_ns() / 1000000u;
    pthread_mutex_lock(&j->mu);
    j->counts.sent_total += json_array_size(results);
    j->counts.failed_total += failed;
    bool log = failed > 0 && now - j->last_fail_log >= LOG_EVERY_MS;
    if (log) {
        j->last_fail_log = now;
    }
    pthread_mutex_unlock(&j->mu);
    if (log) {
        const char *msg = json_string_value(json_object_get(first, "message"));
        TVMW_LOG_WARN("journal",
                      "the control plane refused device writes for good: %zu of %zu "
                      "error=%lld message=\"%.160s\" (logged at most every %d s)",
                      failed, json_array_size(results),
                      (long long)json_integer_value(json_object_get(first, "error")),
                      msg ? msg : "", LOG_EVERY_MS / 1000);
    }
}

/* Waits up to ms or until stop; returns true when stopping. */
static bool pause_ms(struct edge_journal *j, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&j->mu);
    while (!j->stop && pthread_cond_timedwait(&j->wake, &j->mu, &ts) != ETIMEDOUT) {
    }
    bool stop = j->stop;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

/* Waits for writes (or stop); returns true when stopping. */
static bool wait_for_writes(struct edge_journal *j)
{
    pthread_mutex_lock(&j->mu);
    while (!j->stop && j->pending == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += IDLE_WAIT_MS / 1000;
        pthread_cond_timedwait(&j->wake, &j->mu, &ts);
    }
    bool stop = j->stop;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static unsigned backoff_ms(struct edge_journal *j, unsigned failures)
{
    unsigned shift = failures > 6 ? 6 : failures;
    uint64_t b = (uint64_t)EDGE_JOURNAL_BACKOFF_MIN_MS << shift;
    if (b > EDGE_JOURNAL_BACKOFF_MAX_MS) {
        b = EDGE_JOURNAL_BACKOFF_MAX_MS;
    }
    pthread_mutex_lock(&j->mu);
    uint64_t r = rng_next(j);
    pthread_mutex_unlock(&j->mu);
    return (unsigned)(b / 2 + r % (b / 2 + 1));
}

static unsigned send_timeout_ms(const struct edge_journal *j)
{
    unsigned t = j->conf->http.request_timeout_ms + 1000;
    return t < EDGE_JOURNAL_SEND_TIMEOUT_MS ? t : EDGE_JOURNAL_SEND_TIMEOUT_MS;
}

static void *sender_run(void *arg)
{
    struct edge_journal *j = arg;
    struct batch b = {.n = 0};
    size_t limit = EDGE_JOURNAL_BATCH_MAX;
    unsigned failures = 0;
    uint64_t down_since = 0, last_down_log = 0;
    tvmw_buf_init(&b.body, 0);
    while (!wait_for_writes(j)) {
        if (j->conf->n_nodes == 0) {
            pause_ms(j, EDGE_JOURNAL_BACKOFF_MAX_MS); /* nowhere to send */
            continue;
        }
        if (batch_read(j, limit, &b) != 0 || b.n == 0) {
            if (pause_ms(j, EDGE_JOURNAL_BACKOFF_MAX_MS)) {
                break;
            }
            continue;
        }
        json_t *results = NULL;
        char why[400] = "";
        enum outcome out =
            post(j, j->node, &b.body, b.idem, b.n, send_timeout_ms(j), &results, why, sizeof(why));
        if (out == OUT_ANSWERED) {
            note_results(j, results);
            json_decref(results);
            if (batch_remove(j, b.n) != 0) {
                pause_ms(j, EDGE_JOURNAL_BACKOFF_MAX_MS); /* sent again later: harmless */
            }
            if (down_since != 0) {
                TVMW_LOG_INFO("journal", "delivering again node=%s after_ms=%llu",
                              j->conf->nodes[j->node].http_address,
                              (unsigned long long)(tvmw_now_ns() / 1000000u - down_since));
            }
            failures = 0;
            down_since = 0;
            limit = limit * 2 < EDGE_JOURNAL_BATCH_MAX ? limit * 2 : EDGE_JOURNAL_BATCH_MAX;
            continue;
        }
        if (out == OUT_REFUSED) {
            if (b.n > 1) {
                limit = b.n / 2; /* find the write at fault */
                continue;
            }
            TVMW_LOG_ERROR("journal", "a device write was refused as a whole, dropped: %s", why);
            pthread_mutex_lock(&j->mu);
            j->counts.sent_total++;
            j->counts.failed_total++;
            pthread_mutex_unlock(&j->mu);
            if (batch_remove(j, 1) != 0) {
                pause_ms(j, EDGE_JOURNAL_BACKOFF_MAX_MS);
            }
            continue;
        }
        uint64_t now = tvmw_now_ns() / 1000000u;
        pthread_mutex_lock(&j->mu);
        j->counts.retries_total++;
        pthread_mutex_unlock(&j->mu);
        if (down_since == 0) {
            down_since = now;
        }
        if (now - last_down_log >= LOG_EVERY_MS) {
            last_down_log = now;
            TVMW_LOG_WARN("journal", "device writes not delivered, retrying: %s", why);
        }
        j->node = (j->node + 1) % j->conf->n_nodes;
        if (pause_ms(j, backoff_ms(j, failures++))) {
            break;
        }
    }
    tvmw_buf_close(&b.body);
    return NULL;
}

int edge_journal_start(struct edge_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool running = j->running;
    j->stop = false;
    pthread_mutex_unlock(&j->mu);
    if (running) {
        return 0;
    }
    if (pthread_create(&j->thread, NULL, sender_run, j) != 0) {
        return -EAGAIN;
    }
    j->running = true;
    return 0;
}

void edge_journal_stop(struct edge_journal *j)
{
    if (j == NULL || !j->running) {
        return;
    }
    pthread_mutex_lock(&j->mu);
    j->stop = true;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);
    j->running = false;
}

/* ---- call ------------------------------------------------------------------------------ */

int edge_journal_call(struct edge_journal *j, json_t *w, int timeout_ms, json_t **result)
{
    if (!json_is_object(w)) {
        return TVMW_EMALFORMED;
    }
    if (j->conf->n_nodes == 0) {
        return TVMW_EIO;
    }
    json_t *copy = json_deep_copy(w);
    int rv = copy ? ensure_reqid(copy) : -ENOMEM;
    struct batch b = {.n = 1};
    tvmw_buf_init(&b.body, 0);
    char *text = rv == 0 ? json_dumps(copy, JSON_COMPACT) : NULL;
    json_decref(copy);
    if (text == NULL) {
        return rv != 0 ? rv : -ENOMEM;
    }
    uint8_t md[32];
    unsigned int md_len = sizeof(md);
    if (EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL) != 1) {
        free(text);
        return -ENOMEM;
    }
    hex_encode(md, sizeof(md), b.idem);
    if ((rv = tvmw_buf_append(&b.body, "{\"writes\":[", 11)) != 0 ||
        (rv = tvmw_buf_append(&b.body, text, strlen(text))) != 0 ||
        (rv = tvmw_buf_append(&b.body, "]}", 2)) != 0) {
        free(text);
        tvmw_buf_close(&b.body);
        return rv;
    }
    free(text);
    uint64_t deadline = tvmw_now_ns() / 1000000u + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&j->mu);
    unsigned node = j->call_node;
    pthread_mutex_unlock(&j->mu);
    bool answered = false;
    rv = TVMW_EIO;
    for (unsigned attempt = 0;; attempt++) {
        uint64_t now = tvmw_now_ns() / 1000000u;
        if (now >= deadline) {
            break;
        }
        unsigned left = (unsigned)(deadline - now), t = send_timeout_ms(j);
        json_t *results = NULL;
        char why[400];
        enum outcome out =
            post(j, node, &b.body, b.idem, 1, left < t ? left : t, &results, why, sizeof(why));
        if (out == OUT_ANSWERED) {
            *result = json_incref(json_array_get(results, 0));
            json_decref(results);
            pthread_mutex_lock(&j->mu);
            j->call_node = node;
            pthread_mutex_unlock(&j->mu);
            rv = 0;
            break;
        }
        if (out == OUT_REFUSED) {
            rv = TVMW_EMALFORMED;
            break;
        }
        answered = answered || strstr(why, ": HTTP ") != NULL;
        TVMW_LOG_DEBUG("journal", "call not answered: %s", why);
        node = (node + 1) % j->conf->n_nodes;
        now = tvmw_now_ns() / 1000000u;
        unsigned pause = attempt + 1 < j->conf->n_nodes ? 0 : backoff_ms(j, attempt);
        if (now + pause >= deadline) {
            break;
        }
        if (pause > 0) {
            struct timespec ts = {.tv_sec = pause / 1000,
                                  .tv_nsec = (long)(pause % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    tvmw_buf_close(&b.body);
    if (rv == TVMW_EIO && answered) {
        rv = -ETIMEDOUT;
    }
    return rv;
}

void edge_journal_status(struct edge_journal *j, struct edge_journal_status *st)
{
    pthread_mutex_lock(&j->mu);
    *st = j->counts;
    st->pending = j->pending;
    pthread_mutex_unlock(&j->mu);
}
