/*
 * Integration-test harness: real tvmw-cp processes on loopback.
 *
 * A test builds a cluster of N nodes (it_cluster_new), each a fork/exec of
 * the binary named by $TVMW_CP_BIN, with a private temp dir (mkdtemp under
 * /tmp) that holds the generated cluster.json, the data dirs and one log
 * file per node. Ports come from the test (HTTP base+id, raft base+100+id)
 * so that ctest can run the tests in parallel; the redis test suite's
 * start_server is the model.
 *
 * Failure reporting: a test marks success with it_cluster_pass() as its
 * last statement. If it_cluster_free() finds the cluster not passed (a
 * cmocka assertion jumped out of the test), it prints the tail of every
 * node's log and keeps the temp dir for a post-mortem; otherwise it removes
 * it. Either way it kills every process it started, by pid. Children also
 * get PR_SET_PDEATHSIG(SIGKILL), so a test killed by ctest's timeout leaves
 * no servers behind, and a watchdog thread aborts a test that hangs past
 * IT_WATCHDOG_S with the logs printed.
 *
 * Environment: TVMW_CP_BIN (required) the server binary; TVMW_IT_LOG_LEVEL
 * passes --log-level to every node; TVMW_IT_PORT_OFFSET shifts every port
 * (the tests use 23000..23909 and, for the Billing API, 24000..24999), e.g.
 * to run two build trees at once.
 *
 * Threads: the node control functions (start, stop, kill, wipe) belong to
 * the thread that made the cluster (the parent-death signal follows the
 * forking thread). it_http*, the it_node_*_url helpers and the writer are
 * safe from any thread.
 */
#ifndef TVMW_TESTS_INTEGRATION_HARNESS_H
#define TVMW_TESTS_INTEGRATION_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define IT_TOKEN        "integration-test-token-0123"
#define IT_MAX_NODES    9
#define IT_WATCHDOG_S   240
#define IT_HTTP_TIMEOUT 15000 /* ms; above request_timeout_ms 5000 + a forward */
#define IT_ADDR_MAX     64
#define IT_PATH_MAX     512
#define IT_DIR_MAX      256
#define IT_NAME_MAX     96

/* ---- time ------------------------------------------------------------------- */

uint64_t it_now_ms(void); /* CLOCK_MONOTONIC */
void it_sleep_ms(unsigned ms);

/* Formats a diagnostic into out, truncating silently: messages may be cut,
 * never overflow (vsnprintf, so no -Wformat-truncation noise). */
void it_fmt(char *out, size_t out_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- HTTP ------------------------------------------------------------------- */

struct it_resp {
    long status;     /* 0: no answer (connection refused, reset, timeout) */
    char error[600]; /* libcurl's reason when status is 0 */
    char *body;      /* NUL-terminated copy of the body (len bytes before it) */
    size_t len;
    json_t *json;  /* the body parsed strictly (whole body), or NULL */
    char *headers; /* raw response header block */
    uint64_t took_ms;
};

/* One request. url is absolute; body may be NULL (no body) and is sent
 * with Content-Type: application/json unless headers name another;
 * headers is a NULL-terminated list of "Name: value" strings or NULL.
 * Fills *out (always; release it with it_resp_close). Returns 0, or -1
 * when no HTTP answer came. */
int it_http(const char *method, const char *url, const char *body, size_t body_len,
            const char *const *headers, unsigned timeout_ms, struct it_resp *out);
/* it_http from a chosen local address (e.g. "127.0.0.5": any 127/8 address
 * works on loopback), so that a test can tell callers apart by source;
 * NULL is it_http. A "Content-Type" in headers replaces the JSON default
 * ("Content-Type:" with no value sends none). */
int it_http_from(const char *source_ip, const char *method, const char *url, const char *body,
                 size_t body_len, const char *const *headers, unsigned timeout_ms,
                 struct it_resp *out);
void it_resp_close(struct it_resp *r);
/* Copies the value of response header `name` (case-insensitive) into out;
 * false if absent. */
bool it_resp_header(const struct it_resp *r, const char *name, char *out, size_t out_len);
/* The string member `key` of the JSON body, or NULL. */
const char *it_resp_str(const struct it_resp *r, const char *key);
/* The integer member `key` of the JSON body, or -1. */
long long it_resp_int(const struct it_resp *r, const char *key);

/* ---- cluster ---------------------------------------------------------------- */

struct it_opts {
    unsigned n_nodes;            /* initial members 1..n_nodes */
    unsigned base_port;          /* HTTP base+id, raft base+100+id */
    unsigned snapshot_threshold; /* 0: 8192 */
    unsigned snapshot_trailing;  /* 0 with threshold 0: 4096 */
    size_t max_body_bytes;       /* 0: server default */
    const char *name;            /* test name, for the temp dir and messages */
    /* A JSON object merged (recursively) into the generated cluster.json,
     * e.g. "{\"billing\":{\"check_interval_ms\":250}}"; NULL: none. */
    const char *extra_config;
    /* Nodes (bit 1 << id) that listen for HTTP on base+50+id (it_node's
     * listen) while cluster.json, the other nodes and the harness use
     * base+id, where the test runs a proxy in front of them. */
    unsigned proxied;
};

struct it_node {
    uint64_t id;
    pid_t pid; /* 0: not running */
    bool defined;
    bool join;    /* started with --join (not in cluster.json) */
    bool serving; /* the writer may send to it */
    unsigned starts;
    char http[IT_ADDR_MAX];
    char listen[IT_ADDR_MAX]; /* "" or where it really listens (it_opts.proxied) */
    char raft[IT_ADDR_MAX];
    char data_dir[IT_PATH_MAX];
    char log_path[IT_PATH_MAX];
};

struct it_writer;

struct it_cluster {
    pthread_mutex_t mu; /* guards nodes[].pid, .serving and rr */
    unsigned rr;        /* round-robin position over serving nodes */
    struct it_opts opts;
    char dir[IT_DIR_MAX];
    char config_path[IT_PATH_MAX];
    char bin[IT_PATH_MAX];
    bool passed;
    struct it_node nodes[IT_MAX_NODES + 1]; /* by id; [0] unused */
    struct it_writer *writers[4];           /* stopped by it_cluster_free */
};

/* Creates the temp dir and cluster.json and starts nodes 1..n_nodes.
 * Returns NULL (after printing why) on failure. */
struct it_cluster *it_cluster_new(const struct it_opts *opts);
/* Stops writers, kills every node (by pid), prints logs unless passed,
 * removes the temp dir if passed. NULL is a no-op. */
void it_cluster_free(struct it_cluster *c);
void it_cluster_pass(struct it_cluster *c);
/* Prints the last `lines` lines of every node's log to stderr. */
void it_cluster_dump_logs(const struct it_cluster *c, unsigned lines);

/* Starts node id (already defined) with its data dir as it is. */
int it_node_start(struct it_cluster *c, uint64_t id);
/* Defines node id outside cluster.json (HTTP base+id, raft base+100+id) and
 * starts it with --join --raft-address --http-address. It is not
 * "serving" until it_node_set_serving. */
int it_node_start_join(struct it_cluster *c, uint64_t id);
/* kill -9 and reap. */
void it_node_kill(struct it_cluster *c, uint64_t id);
/* SIGKILL to every running node first, then reap them: a simultaneous
 * crash of the whole cluster. */
void it_cluster_kill_all(struct it_cluster *c);
/* SIGTERM, wait up to timeout_ms for it to exit (then SIGKILL). Returns the
 * exit status (0 for a clean stop), or -1 if it had to be killed or died
 * by a signal. */
int it_node_stop(struct it_cluster *c, uint64_t id, unsigned timeout_ms);
/* Removes the node's data dir (the node must be stopped). */
int it_node_wipe(struct it_cluster *c, uint64_t id);
void it_node_set_serving(struct it_cluster *c, uint64_t id, bool serving);
bool it_node_running(const struct it_cluster *c, uint64_t id);
/* True if the process is gone (reaps it and logs its status). */
bool it_node_exited(struct it_cluster *c, uint64_t id);

/* True if a line of the file at path (a node's or an edge's log) holds
 * text. */
bool it_file_has(const char *path, const char *text);

/* http://<node http address><path> into out. */
void it_node_url(const struct it_cluster *c, uint64_t id, const char *path, char *out,
                 size_t out_len);
/* An admin request (bearer token added) to node id; extra headers as in
 * it_http. */
int it_admin(const struct it_cluster *c, uint64_t id, const char *method, const char *path,
             const char *body, const char *const *extra_headers, struct it_resp *out);
/* GET /healthz of node id; false if no answer. */
bool it_healthz(const struct it_cluster *c, uint64_t id, struct it_resp *out);
/* The value of an unlabelled metric in node id's /metrics, or -1. */
double it_metric(const struct it_cluster *c, uint64_t id, const char *name);

/* Polls /healthz of every running node until one is role "leader" with
 * status "ok"; returns its id, or 0 after timeout_ms. */
uint64_t it_wait_leader(struct it_cluster *c, unsigned timeout_ms);
/* Waits until every running member answers /healthz 200 with the same
 * leader_id; returns that leader, or 0 after timeout_ms. */
uint64_t it_wait_all_ready(struct it_cluster *c, unsigned timeout_ms);
/* Waits until the applied_index of every running node reaches the leader's
 * commit_index (no writes must be running); returns false on timeout. */
bool it_wait_converged(struct it_cluster *c, unsigned timeout_ms);

/* Waits until the applied_index of every running member reaches the
 * leader's commit_index as of the call, without waiting for the log to
 * stand still (writes, e.g. a billing scheduler, may go on). Returns
 * false on timeout. */
bool it_wait_applied(struct it_cluster *c, unsigned timeout_ms);

/* ---- clients ---------------------------------------------------------------- */

struct it_ack {
    char name[IT_NAME_MAX];
    uint64_t id;
    char api_key[129];
    uint64_t sent_ms;  /* start of the attempt that got the 201 */
    uint64_t acked_ms; /* when the 201 arrived */
};

/* POST /admin/v1/clients with Idempotency-Key `key` to node `id` (0: any
 * serving node, rotating), retrying the same key on 503 or no answer
 * until 201 or timeout_ms. Returns 0 and fills *ack, or -1 (with the last
 * answer printed). */
int it_create_client(struct it_cluster *c, uint64_t id, const char *name, const char *key,
                     unsigned timeout_ms, struct it_ack *ack);

/* GET /admin/v1/clients from node id (stale or linearizable). Returns the
 * "clients" array (new reference) or NULL. */
json_t *it_list_clients(const struct it_cluster *c, uint64_t id, bool stale);

/* Checks that every ack is present on node id, with the acknowledged id
 * and name, exactly once. If prefix is not NULL, also that every client
 * whose name starts with "<prefix>-" is acknowledged or in in_doubt
 * (NULL-terminated, may be NULL): nothing applied twice or unasked.
 * Prints each problem; returns their count (0 ok, -1 if the list could not
 * be read). */
long it_check_acks(const struct it_cluster *c, uint64_t id, bool stale, const struct it_ack *acks,
                   size_t n, const char *prefix, const char *const *in_doubt);
/* The next serving node in rotation (0 if none). Any thread. */
uint64_t it_next_serving(struct it_cluster *c);

/* ---- writer ----------------------------------------------------------------- */

/*
 * Writer threads: keep creating clients named "<prefix>-<thread>-<seq>"
 * with Idempotency-Key "<prefix>-k-<thread>-<seq>", rotating over the
 * serving nodes, retrying the same key on 503 or no answer until 201.
 * Every 201 is recorded. After stop, a key that never got its 201 is
 * reported as in doubt (it may or may not exist).
 */
struct it_writer_stats {
    size_t acked;
    size_t attempts;
    size_t retries;          /* 503 or no answer */
    size_t unexpected;       /* any other status: a bug */
    uint64_t max_latency_ms; /* first attempt to 201 of one key */
    char last_unexpected[800];
};

int it_writer_start(struct it_cluster *c, const char *prefix, unsigned threads,
                    struct it_writer **out);
/* Stops issuing new keys; each thread finishes its current key (up to 20 s)
 * and exits. Idempotent. */
void it_writer_stop(struct it_writer *w);
void it_writer_free(struct it_writer *w);
/* Waits until at least n writes were acknowledged; false on timeout. */
bool it_writer_wait(struct it_writer *w, size_t n, unsigned timeout_ms);
void it_writer_stats(struct it_writer *w, struct it_writer_stats *out);
/* A copy of the acks (malloc'd, caller frees) in acknowledgement order. */
struct it_ack *it_writer_acks(struct it_writer *w, size_t *n);
/* The first ack whose attempt was sent at or after t_ms, or false. */
bool it_writer_first_ack_after(struct it_writer *w, uint64_t t_ms, struct it_ack *out);
/* Names whose outcome is unknown after stop (NULL-terminated list inside
 * the writer; valid until it_writer_free). */
const char *const *it_writer_in_doubt(struct it_writer *w);

#endif
