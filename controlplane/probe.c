/*
 * Streaming-service health probes (probe.h): one thread that, every
 * probe.interval_ms, reads the services from the local state and, when
 * this node is the ready leader, probes them with libcurl's multi
 * interface and proposes the changes of health.
 *
 * Why a thread of its own with curl_multi_poll() and not the raft loop:
 * the loop must never wait on a streamer, and the proposal is a blocking
 * cp_node_write like an HTTP handler's. Why all results of a round before
 * any proposal: a proposal can block up to http.request_timeout_ms when the
 * leader lost its quorum, and a transfer left undriven meanwhile would
 * time out and count as a failure that never happened.
 */
#include "controlplane/probe.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <raft.h>

#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "controlplane/cmd.h"
#include "controlplane/fsm.h"

#define PROBE_MAX_SERVICES 4096        /* probed per round; more are skipped with a warning */
#define PROBE_MAX_PARALLEL 64          /* transfers at once; more wait for a free slot */
#define PROBE_BODY_MAX     (64 * 1024) /* read no further: the status code decides */
#define PROBE_NAME_MAX     64          /* of a service name in the log */
#define PROBE_POLL_MS      200         /* longest single wait; stop is also a wake-up */

enum result { R_OK, R_HTTP, R_TIMEOUT, R_ERROR, R_COUNT };
static const char *const result_names[R_COUNT] = {"ok", "http_error", "timeout", "error"};
static const char *const health_names[] = {"unknown", "up", "down"};

struct svc {
    uint64_t id, client_id;
    char *url; /* malloc'd; NULL: not probed (disabled or no health_url) */
    char name[PROBE_NAME_MAX + 1];
    enum cp_health health; /* as stored, or as this prober last set it */
    bool enabled;
    unsigned fails, oks; /* consecutive results; only while leading */
    /* this round */
    CURL *easy;
    size_t body_bytes;
    bool body_capped;
    enum result result;
    char reason[CURL_ERROR_SIZE + 32];
    char errbuf[CURL_ERROR_SIZE];
};

struct cp_probe {
    const struct tvmw_config *conf;
    struct cp_node *node;
    pthread_t thread;
    CURLM *multi;
    _Atomic bool stop;
    /* probe thread only */
    struct svc *svcs;
    size_t n_svcs;
    bool leading;
    uint64_t term; /* of the leadership the counters belong to */
    bool warned_too_many;
    /* metrics, any thread */
    _Atomic uint64_t probes[R_COUNT];
    _Atomic uint64_t changes;
    _Atomic uint64_t rounds;
    _Atomic uint64_t services_down;
    _Atomic uint64_t services_probed;
    _Atomic uint64_t leading_gauge;
};

enum cp_health cp_probe_decide(enum cp_health stored, bool ok, unsigned *fails, unsigned *oks,
                               unsigned down_after, unsigned up_after)
{
    if (ok) {
        *fails = 0;
        if (*oks < UINT_MAX) {
            (*oks)++;
        }
    } else {
        *oks = 0;
        if (*fails < UINT_MAX) {
            (*fails)++;
        }
    }
    if (*fails >= down_after && *fails > 0) {
        return CP_HEALTH_DOWN;
    }
    if (*oks >= up_after && *oks > 0) {
        return CP_HEALTH_UP;
    }
    return stored;
}

/* ---- the services in the state -------------------------------------------- */

static void svcs_free(struct svc *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].url);
    }
    free(s);
}

/* Text safe to put between quotes in one log line (names come from the
 * admin API, reasons from libcurl, which quotes too); out_len > 0. */
static void copy_safe(char *out, size_t out_len, const char *text)
{
    size_t i = 0;
    for (; text != NULL && text[i] != '\0' && i + 1 < out_len; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    out[i] = '\0';
}

static enum cp_health parse_health(const char *s)
{
    if (s != NULL && strcmp(s, "up") == 0) {
        return CP_HEALTH_UP;
    }
    if (s != NULL && strcmp(s, "down") == 0) {
        return CP_HEALTH_DOWN;
    }
    return CP_HEALTH_UNKNOWN;
}

static bool client_exists(MDB_txn *txn, MDB_dbi clients, uint64_t id)
{
    json_t *c = NULL;
    if (cp_record_get(txn, clients, id, &c) != 0) {
        return false;
    }
    json_decref(c);
    return true;
}

/* The old entry of the same service, found by id in the previous list
 * (both in id order, the order of the database). */
static const struct svc *find_old(const struct svc *old, size_t n, uint64_t id, size_t *pos)
{
    while (*pos < n && old[*pos].id < id) {
        (*pos)++;
    }
    return *pos < n && old[*pos].id == id ? &old[*pos] : NULL;
}

/* Replaces p->svcs with the services in the local state. Counters carry
 * over for a service whose health_url did not change, if keep_counters. */
static int load_services(struct cp_probe *p, bool keep_counters)
{
    MDB_txn *txn;
    json_t *all = NULL;
    struct cp_fsm *fsm = cp_node_fsm(p->node);
    int rv = cp_fsm_read_begin(fsm, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_list(txn, cp_fsm_dbs(fsm)->services, &all);
    if (rv != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    size_t n = json_array_size(all), k = 0, pos = 0, probed = 0;
    uint64_t down = 0;
    struct svc *s = n ? calloc(n, sizeof(*s)) : NULL;
    if (n && s == NULL) {
        mdb_txn_abort(txn);
        json_decref(all);
        return -ENOMEM;
    }
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o)
    {
        json_int_t id = json_integer_value(json_object_get(o, "id"));
        json_int_t client = json_integer_value(json_object_get(o, "client_id"));
        const char *url = json_string_value(json_object_get(o, "health_url"));
        if (id <= 0 || client <= 0) {
            continue; /* not a record this module understands; never crash on it */
        }
        if (!client_exists(txn, cp_fsm_dbs(fsm)->clients, (uint64_t)client)) {
            /* Deleting a client leaves its catalogue behind; a proposal
             * for it would fail (404) every round, each a raft entry. */
            continue;
        }
        struct svc *v = &s[k++];
        v->id = (uint64_t)id;
        v->client_id = (uint64_t)client;
        v->enabled = json_integer_value(json_object_get(o, "enabled")) != 0;
        v->health = parse_health(json_string_value(json_object_get(o, "health")));
        copy_safe(v->name, sizeof(v->name), json_string_value(json_object_get(o, "name")));
        if (v->enabled && v->health == CP_HEALTH_DOWN) {
            down++;
        }
        if (!v->enabled || url == NULL || url[0] == '\0') {
            continue;
        }
        if (probed == PROBE_MAX_SERVICES) {
            if (!p->warned_too_many) {
                TVMW_LOG_WARN("probe", "more than %d services to probe: the rest are skipped",
                              PROBE_MAX_SERVICES);
                p->warned_too_many = true;
            }
            continue;
        }
        if ((v->url = strdup(url)) == NULL) {
            mdb_txn_abort(txn);
            svcs_free(s, k);
            json_decref(all);
            return -ENOMEM;
        }
        probed++;
        const struct svc *prev = find_old(p->svcs, p->n_svcs, v->id, &pos);
        if (keep_counters && prev != NULL && prev->url != NULL && strcmp(prev->url, url) == 0) {
            v->fails = prev->fails;
            v->oks = prev->oks;
        }
    }
    mdb_txn_abort(txn);
    json_decref(all);
    svcs_free(p->svcs, p->n_svcs);
    p->svcs = s;
    p->n_svcs = k;
    atomic_store(&p->services_down, down);
    atomic_store(&p->services_probed, probed);
    return 0;
}

/* ---- one round of probes ---------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct svc *v = arg;
    (void)data;
    size_t n = size * nmemb;
    if (v->body_bytes + n > PROBE_BODY_MAX) {
        v->body_capped = true;
        return 0; /* ends the transfer; the status line already came */
    }
    v->body_bytes += n;
    return n;
}

static int transfer_start(struct cp_probe *p, struct svc *v)
{
    unsigned t = p->conf->probe.timeout_ms;
    v->body_bytes = 0;
    v->body_capped = false;
    v->errbuf[0] = '\0';
    if ((v->easy = curl_easy_init()) == NULL) {
        return -ENOMEM;
    }
    CURL *h = v->easy;
    curl_easy_setopt(h, CURLOPT_URL, v->url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is not a 2xx */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)t);
    /* Each probe opens its own connection: a streamer that stopped
     * accepting connections must not look alive through an old one. */
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tvmw-probe");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, v);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, v->errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, v);
    if (curl_multi_add_handle(p->multi, h) != CURLM_OK) {
        curl_easy_cleanup(h);
        v->easy = NULL;
        return TVMW_EIO;
    }
    return 0;
}

static void transfer_done(struct cp_probe *p, struct svc *v, CURLcode cc)
{
    long code = 0;
    curl_easy_getinfo(v->easy, CURLINFO_RESPONSE_CODE, &code);
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && v->body_capped)) {
        v->result = code >= 200 && code <= 299 ? R_OK : R_HTTP;
        snprintf(v->reason, sizeof(v->reason), "HTTP %ld", code);
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        v->result = R_TIMEOUT;
        snprintf(v->reason, sizeof(v->reason), "no answer within %u ms", p->conf->probe.timeout_ms);
    } else {
        v->result = R_ERROR;
        copy_safe(v->reason, sizeof(v->reason), v->errbuf[0] ? v->errbuf : curl_easy_strerror(cc));
    }
    curl_multi_remove_handle(p->multi, v->easy);
    curl_easy_cleanup(v->easy);
    v->easy = NULL;
    atomic_fetch_add(&p->probes[v->result], 1);
}

/* Probes every service with a URL, at most PROBE_MAX_PARALLEL at once.
 * Returns false if stopped midway (every transfer is then abandoned). */
static bool run_probes(struct cp_probe *p)
{
    size_t next = 0, running = 0;
    while (next < p->n_svcs || running > 0) {
        while (running < PROBE_MAX_PARALLEL && next < p->n_svcs) {
            struct svc *v = &p->svcs[next++];
            if (v->url == NULL) {
                continue;
            }
            int rv = transfer_start(p, v);
            if (rv != 0) {
                v->result = R_ERROR;
                snprintf(v->reason, sizeof(v->reason), "cannot start: %s", tvmw_strerror(rv));
                atomic_fetch_add(&p->probes[R_ERROR], 1);
                continue;
            }
            running++;
        }
        int still = 0;
        curl_multi_perform(p->multi, &still);
        CURLMsg *m;
        int queued;
        while ((m = curl_multi_info_read(p->multi, &queued)) != NULL) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            transfer_done(p, (struct svc *)priv, m->data.result);
            running--;
        }
        if (atomic_load(&p->stop)) {
            break;
        }
        if (running > 0 || next < p->n_svcs) {
            curl_multi_poll(p->multi, NULL, 0, PROBE_POLL_MS, NULL);
        }
    }
    for (size_t i = 0; i < p->n_svcs; i++) {
        if (p->svcs[i].easy != NULL) {
            curl_multi_remove_handle(p->multi, p->svcs[i].easy);
            curl_easy_cleanup(p->svcs[i].easy);
            p->svcs[i].easy = NULL;
        }
    }
    return !atomic_load(&p->stop);
}

/* ---- proposals ----------------------------------------------------------------- */

/* Proposes health `h` for v: 0 once applied, TVMW_ENOTFOUND if the service
 * (or its client) was deleted since we read it. */
static int propose(struct cp_probe *p, struct svc *v, enum cp_health h)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s, s:I, s:{s:s}, s:s}", "client_id", (json_int_t)v->client_id,
                  "kind", "streaming-services", "op", "put", "id", (json_int_t)v->id, "fields",
                  "health", health_names[h], "source", "probe");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        return -ENOMEM;
    }
    struct cp_cmd cmd = {.type = CP_CMD_CATALOG,
                         .time_ms = tvmw_wall_ms(),
                         .payload = text,
                         .payload_len = strlen(text)};
    int rv = cp_reqid_make(NULL, cmd.reqid);
    size_t len = cp_cmd_encoded_size(cmd.payload_len);
    void *buf = rv == 0 ? raft_malloc(len) : NULL;
    if (buf == NULL) {
        free(text);
        return rv != 0 ? rv : -ENOMEM;
    }
    cp_cmd_encode(&cmd, buf, len);
    free(text);
    struct cp_result *res = NULL;
    rv = cp_node_write(p->node, buf, len, cmd.reqid, p->conf->http.request_timeout_ms, &res, NULL);
    if (rv != 0) {
        return rv;
    }
    unsigned status = res->status;
    cp_result_free(res);
    if (status == 404) {
        return TVMW_ENOTFOUND;
    }
    return status == 200 ? 0 : TVMW_EMALFORMED;
}

static void decide_all(struct cp_probe *p)
{
    const struct tvmw_config *c = p->conf;
    for (size_t i = 0; i < p->n_svcs && !atomic_load(&p->stop); i++) {
        struct svc *v = &p->svcs[i];
        if (v->url == NULL) {
            continue;
        }
        bool ok = v->result == R_OK;
        enum cp_health h = cp_probe_decide(v->health, ok, &v->fails, &v->oks, c->probe.down_after,
                                           c->probe.up_after);
        if (h == v->health) {
            continue;
        }
        int rv = propose(p, v, h);
        if (rv == TVMW_ENOTFOUND) {
            continue; /* deleted meanwhile: nothing to route to anyway */
        }
        if (rv == TVMW_ENOTLEADER || rv == TVMW_ESHUTDOWN) {
            p->leading = false; /* whoever leads now decides */
            return;
        }
        if (rv != 0) {
            TVMW_LOG_WARN("probe",
                          "service=%llu client=%llu: health %s not recorded: %s (next round "
                          "tries again)",
                          (unsigned long long)v->id, (unsigned long long)v->client_id,
                          health_names[h], tvmw_strerror(rv));
            if (rv != TVMW_EMALFORMED) {
                return; /* no quorum, most likely: do not wait once per service */
            }
            continue;
        }
        atomic_fetch_add(&p->changes, 1);
        if (h == CP_HEALTH_DOWN) {
            TVMW_LOG_WARN("probe",
                          "service down service=%llu client=%llu name=\"%s\" was=%s "
                          "failures=%u reason=\"%s\"",
                          (unsigned long long)v->id, (unsigned long long)v->client_id, v->name,
                          health_names[v->health], v->fails, v->reason);
        } else {
            TVMW_LOG_INFO("probe",
                          "service up service=%llu client=%llu name=\"%s\" was=%s successes=%u",
                          (unsigned long long)v->id, (unsigned long long)v->client_id, v->name,
                          health_names[v->health], v->oks);
        }
        v->health = h;
    }
}

/* ---- the thread ------------------------------------------------------------------ */

static void round_once(struct cp_probe *p)
{
    struct cp_status st;
    cp_node_status(p->node, &st);
    bool leader = st.state == RAFT_LEADER && st.ready;
    /* A new leader starts from the stored health with fresh counters. */
    int rv = load_services(p, p->leading && leader && st.term == p->term);
    if (rv != 0) {
        TVMW_LOG_WARN("probe", "cannot read the services: %s", tvmw_strerror(rv));
        return;
    }
    if (!leader) {
        if (p->leading) {
            TVMW_LOG_INFO("probe", "no longer the leader: probing stops");
        }
        p->leading = false;
        atomic_store(&p->leading_gauge, 0);
        return;
    }
    if (!p->leading || st.term != p->term) {
        TVMW_LOG_INFO("probe", "leader term=%llu: probing %llu services every %u ms",
                      (unsigned long long)st.term,
                      (unsigned long long)atomic_load(&p->services_probed),
                      p->conf->probe.interval_ms);
        p->leading = true;
        p->term = st.term;
    }
    atomic_store(&p->leading_gauge, 1);
    if (run_probes(p)) {
        decide_all(p);
    }
    atomic_fetch_add(&p->rounds, 1);
}

static void *run(void *arg)
{
    struct cp_probe *p = arg;
    uint64_t interval_ns = (uint64_t)p->conf->probe.interval_ms * 1000000u;
    uint64_t next = tvmw_now_ns() + interval_ns;
    while (!atomic_load(&p->stop)) {
        uint64_t now = tvmw_now_ns();
        if (now < next) {
            uint64_t wait_ms = (next - now + 999999u) / 1000000u;
            curl_multi_poll(p->multi, NULL, 0,
                            (int)(wait_ms < PROBE_POLL_MS ? wait_ms : PROBE_POLL_MS), NULL);
            continue;
        }
        /* Fixed rate; a round that overran starts the next one at once,
         * not a burst of missed ones. */
        next = next + interval_ns > now ? next + interval_ns : now + interval_ns;
        round_once(p);
    }
    return NULL;
}

int cp_probe_start(const struct tvmw_config *conf, struct cp_node *node, struct cp_probe **out)
{
    *out = NULL;
    if (conf->probe.interval_ms == 0) {
        return 0;
    }
    struct cp_probe *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->conf = conf;
    p->node = node;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(p);
        return TVMW_EIO;
    }
    if ((p->multi = curl_multi_init()) == NULL) {
        curl_global_cleanup();
        free(p);
        return TVMW_EIO;
    }
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        curl_multi_cleanup(p->multi);
        curl_global_cleanup();
        free(p);
        return -EAGAIN;
    }
    TVMW_LOG_INFO("probe",
                  "service probes every %u ms on the leader, timeout_ms=%u down_after=%u "
                  "up_after=%u",
                  conf->probe.interval_ms, conf->probe.timeout_ms, conf->probe.down_after,
                  conf->probe.up_after);
    *out = p;
    return 0;
}

void cp_probe_stop(struct cp_probe *p)
{
    if (p == NULL) {
        return;
    }
    atomic_store(&p->stop, true);
    curl_multi_wakeup(p->multi);
    pthread_join(p->thread, NULL);
    curl_multi_cleanup(p->multi);
    curl_global_cleanup();
    svcs_free(p->svcs, p->n_svcs);
    free(p);
}

void cp_probe_metrics(struct cp_probe *p, struct tvmw_buf *out)
{
    if (p == NULL) {
        return;
    }
    tvmw_buf_printf(out,
                    "# HELP tvmw_cp_service_probes_total Health probes of streaming services by "
                    "result (leader only).\n# TYPE tvmw_cp_service_probes_total counter\n");
    for (int r = 0; r < R_COUNT; r++) {
        tvmw_buf_printf(out, "tvmw_cp_service_probes_total{result=\"%s\"} %llu\n", result_names[r],
                        (unsigned long long)atomic_load(&p->probes[r]));
    }
    tvmw_metric_write(out, "tvmw_cp_service_health_changes_total", "counter",
                      "Service health changes this node proposed and got applied.",
                      (double)atomic_load(&p->changes));
    tvmw_metric_write(out, "tvmw_cp_service_probe_rounds_total", "counter",
                      "Probe rounds this node ran as the leader.", (double)atomic_load(&p->rounds));
    tvmw_metric_write(out, "tvmw_cp_services_down", "gauge",
                      "Enabled streaming services whose replicated health is down.",
                      (double)atomic_load(&p->services_down));
    tvmw_metric_write(out, "tvmw_cp_services_probed", "gauge",
                      "Enabled streaming services with a health_url.",
                      (double)atomic_load(&p->services_probed));
    tvmw_metric_write(out, "tvmw_cp_service_prober_active", "gauge",
                      "1 while this node probes (the ready leader).",
                      (double)atomic_load(&p->leading_gauge));
}
