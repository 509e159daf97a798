/*
 * it_probe: streaming-service health probes (issue 5, requirement 6) on a
 * real 3-node control plane, with an HTTP server inside this process
 * playing the streamers' health URLs and a real tvmw-edge following the
 * cluster.
 *
 * test_probe_and_failover (probe.interval_ms 500, timeout 300, down and
 * up after 1):
 *   - new services go from "unknown" to "up"; a disabled one and one
 *     without health_url are never probed and stay "unknown"; one nobody
 *     answers for goes "down", and is forgotten when its client is
 *     deleted;
 *   - the streamer answers 500: the service is "down" in the replicated
 *     state within one probe period plus commit, read through the admin
 *     API; the change is in the edge feed (db 10) and the edge applies it;
 *     the other service stays up; the transition is logged, audited with
 *     source "probe" and counted in /metrics;
 *   - 200 again: "up" as fast; an answer slower than the timeout: "down";
 *   - the server stopped (connection refused): every probed service down;
 *     back: up;
 *   - the leader killed: the new leader starts from the stored health
 *     (no change proposed while nothing changes) and keeps probing: a
 *     500 is "down" within one period, 200 "up" again.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN. Ports 27000..27499: cp HTTP
 * 27001..3, raft 27101..3, edge 27051, the streamer 27061, nothing on 27062.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/http.h"
#include "it_cmocka.h"

#define BASE_PORT     27000
#define EDGE_ADDR     "127.0.0.1:27051"
#define STREAMER_ADDR "127.0.0.1:27061"
#define DEAD_ADDR     "127.0.0.1:27062" /* nothing listens */
#define N_NODES       3
#define INTERVAL_MS   500
#define TIMEOUT_MS    300
/* One probe period plus the commit, with room for a loaded 2-core machine
 * running other tests at the same time. */
#define BOUND_MS (INTERVAL_MS + 500)

static struct it_cluster *cl;
static struct tvmw_http_server *streamer;
static uint64_t cid; /* the client (tenant) */

/* ---- the streamer's health URLs ------------------------------------------------- */

enum mode { ANSWER_200, ANSWER_500, ANSWER_SLOW };
static _Atomic int flip_mode = ANSWER_200;
static _Atomic unsigned hits_flip, hits_steady, hits_disabled;

static void streamer_handle(void *ctx, struct tvmw_http_req *req)
{
    (void)ctx;
    static const char ok[] = "OK\n", bad[] = "overloaded\n";
    if (strcmp(req->path, "/flip") == 0) {
        atomic_fetch_add(&hits_flip, 1);
        int m = atomic_load(&flip_mode);
        if (m == ANSWER_SLOW) {
            it_sleep_ms(TIMEOUT_MS * 3); /* thread per connection: may block */
        }
        if (m == ANSWER_500) {
            tvmw_http_reply(req, 500, "text/plain", bad, sizeof(bad) - 1, NULL);
            return;
        }
    } else if (strcmp(req->path, "/steady") == 0) {
        atomic_fetch_add(&hits_steady, 1);
    } else if (strcmp(req->path, "/disabled") == 0) {
        atomic_fetch_add(&hits_disabled, 1);
    } else {
        tvmw_http_reply(req, 404, "text/plain", bad, sizeof(bad) - 1, NULL);
        return;
    }
    tvmw_http_reply(req, 200, "text/plain", ok, sizeof(ok) - 1, NULL);
}

static void streamer_start(void)
{
    struct tvmw_http_server_conf hc = {.address = STREAMER_ADDR,
                                       .max_body_bytes = 4096,
                                       .max_connections = 64,
                                       .idle_timeout_s = 5,
                                       .thread_per_connection = true};
    int rv = -1;
    for (int i = 0; i < 50 && rv != 0; i++) { /* the port may linger a moment */
        rv = tvmw_http_server_start(&hc, streamer_handle, NULL, &streamer);
        if (rv != 0) {
            it_sleep_ms(100);
        }
    }
    IT_ASSERT(rv == 0, "cannot listen on %s", STREAMER_ADDR);
}

static void streamer_stop(void)
{
    tvmw_http_server_stop(streamer);
    streamer = NULL;
}

/* ---- the edge process (as in it_edge_follow.c) ---------------------------------------- */

static pid_t edge_pid;
static char edge_log[IT_PATH_MAX];

static void edge_start(void)
{
    const char *bin = getenv("TVMW_EDGE_BIN");
    IT_ASSERT(bin != NULL, "TVMW_EDGE_BIN is not set");
    char dir[IT_PATH_MAX];
    it_fmt(dir, sizeof(dir), "%s/edge-e1", cl->dir);
    it_fmt(edge_log, sizeof(edge_log), "%s/edge-e1.log", cl->dir);
    const char *argv[] = {bin, "--config", cl->config_path, "--id", "e1", "--data-dir", dir, NULL};
    int fd = open(edge_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    IT_ASSERT(fd >= 0, "open %s: %s", edge_log, strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    IT_ASSERT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fd);
    edge_pid = pid;
}

static void edge_kill(void)
{
    if (edge_pid > 0) {
        kill(edge_pid, SIGKILL);
        waitpid(edge_pid, NULL, 0);
        edge_pid = 0;
    }
}

static double edge_metric(const char *name)
{
    char url[256];
    struct it_resp r;
    it_fmt(url, sizeof(url), "http://%s/metrics", EDGE_ADDR);
    it_http("GET", url, NULL, 0, NULL, 3000, &r);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = strtod(p + n + 1, NULL);
            break;
        }
    }
    it_resp_close(&r);
    return v;
}

/* ---- the catalogue ---------------------------------------------------------------- */

/* An admin request to any running node, repeated on 503 or no answer. */
static void admin(const char *method, const char *path, const char *body, struct it_resp *r)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t node = it_next_serving(cl);
        it_admin(cl, node ? node : 1, method, path, body, NULL, r);
        if (r->status != 503 && r->status != 0) {
            return;
        }
        it_resp_close(r);
        it_sleep_ms(100);
    }
    IT_ASSERT(false, "%s %s: no answer but 503 for 10 s", method, path);
}

static uint64_t service_create(const char *name, const char *path, int enabled)
{
    char body[512], url[128];
    struct it_resp r;
    it_fmt(url, sizeof(url), "/admin/v1/clients/%llu/streaming-services", (unsigned long long)cid);
    it_fmt(body, sizeof(body),
           "{\"name\":\"%s\",\"type\":\"flussonic\",\"enabled\":%d,\"health_url\":\"%s%s%s\"}",
           name, enabled, path ? "http://" STREAMER_ADDR : "", path ? path : "",
           path ? "?check=1" : "");
    admin("POST", url, body, &r);
    IT_ASSERT_STATUS(&r, 201);
    json_t *s = json_object_get(r.json, "streaming_service");
    IT_ASSERT(strcmp(json_string_value(json_object_get(s, "health")), "unknown") == 0,
              "a new service should be unknown: %s", r.body);
    uint64_t id = (uint64_t)json_integer_value(json_object_get(s, "id"));
    it_resp_close(&r);
    return id;
}

/* The service's health as node `node` has it (stale: its local state),
 * or, with node 0, through a linearizable read at any node. */
static void service_read(uint64_t node, uint64_t id, char *health, size_t len,
                         long long *updated_ms)
{
    char path[160];
    struct it_resp r;
    it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/streaming-services/%llu%s",
           (unsigned long long)cid, (unsigned long long)id, node ? "?stale=1" : "");
    if (node == 0) {
        admin("GET", path, NULL, &r);
    } else {
        it_admin(cl, node, "GET", path, NULL, NULL, &r);
    }
    IT_ASSERT_STATUS(&r, 200);
    json_t *s = json_object_get(r.json, "streaming_service");
    it_fmt(health, len, "%s", json_string_value(json_object_get(s, "health")));
    if (updated_ms != NULL) {
        *updated_ms = (long long)json_integer_value(json_object_get(s, "updated_ms"));
    }
    it_resp_close(&r);
}

/* Waits until the service's replicated health is `want`; returns the ms
 * it took, or -1 after timeout_ms. */
static long long wait_health(uint64_t id, const char *want, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    char h[16];
    do {
        service_read(0, id, h, sizeof(h), NULL);
        if (strcmp(h, want) == 0) {
            return (long long)(it_now_ms() - t0);
        }
        it_sleep_ms(20);
    } while (it_now_ms() - t0 < timeout_ms);
    return -1;
}

static void expect_health(uint64_t id, const char *want)
{
    char h[16];
    service_read(0, id, h, sizeof(h), NULL);
    IT_ASSERT(strcmp(h, want) == 0, "service %llu is %s, expected %s", (unsigned long long)id, h,
              want);
}

/* Flips the streamer's answer and asserts the service reaches `want`
 * within BOUND_MS (plus the probe timeout for an answer that never comes). */
static void flip_and_expect(enum mode m, uint64_t id, const char *want, const char *what)
{
    const long long bound = BOUND_MS + (m == ANSWER_SLOW ? TIMEOUT_MS : 0);
    atomic_store(&flip_mode, m);
    long long took = wait_health(id, want, 10000);
    IT_ASSERT(took >= 0, "%s: service never became %s", what, want);
    fprintf(stderr, "%s: service %s after %lld ms (bound %lld ms)\n", what, want, took, bound);
    IT_ASSERT(took <= bound, "%s: %s after %lld ms, above one probe period plus commit", what, want,
              took);
}

static uint64_t applied_index(uint64_t node)
{
    struct it_resp r;
    IT_ASSERT(it_healthz(cl, node, &r), "no /healthz from node %llu", (unsigned long long)node);
    uint64_t v = (uint64_t)json_integer_value(json_object_get(r.json, "applied_index"));
    it_resp_close(&r);
    return v;
}

/* The index of the feed's put of service `id` with health `want` after
 * index `after`, read from node `node` (the feed edges follow); 0 if none. */
static uint64_t feed_find(uint64_t node, uint64_t after, uint64_t id, const char *want)
{
    char url[256], key[16];
    uint8_t be[8];
    tvmw_put_be64(be, id);
    EVP_EncodeBlock((unsigned char *)key, be, sizeof(be));
    it_fmt(url, sizeof(url), "/edge/v1/feed?after=%llu&wait_ms=0", (unsigned long long)after);
    struct it_resp r;
    it_admin(cl, node, "GET", url, NULL, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    uint64_t found = 0;
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(r.json, "changes"), i, ch)
    {
        const char *k = json_string_value(json_object_get(ch, "key"));
        const char *v = json_string_value(json_object_get(ch, "value"));
        if (json_integer_value(json_object_get(ch, "db")) != 10 || k == NULL || v == NULL ||
            strcmp(k, key) != 0) {
            continue;
        }
        size_t vlen = strlen(v);
        unsigned char *dec = malloc(vlen + 1);
        IT_ASSERT(dec != NULL, "out of memory");
        int n = EVP_DecodeBlock(dec, (const unsigned char *)v, (int)vlen);
        while (n > 0 && dec[n - 1] == '\0') {
            n--; /* EVP_DecodeBlock counts the padding as zero bytes */
        }
        json_t *rec = n > 0 ? json_loadb((const char *)dec, (size_t)n, 0, NULL) : NULL;
        free(dec);
        const char *h = json_string_value(json_object_get(rec, "health"));
        if (h != NULL && strcmp(h, want) == 0) {
            found = (uint64_t)json_integer_value(json_object_get(ch, "index"));
        }
        json_decref(rec);
    }
    it_resp_close(&r);
    return found;
}

static double metric(uint64_t node, const char *name)
{
    return it_metric(cl, node, name);
}

static bool wait_metric(uint64_t node, const char *name, double want, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        if (metric(node, name) == want) {
            return true;
        }
        it_sleep_ms(50);
    } while (it_now_ms() - t0 < timeout_ms);
    return false;
}

static bool log_has(uint64_t node, const char *text)
{
    return it_file_has(cl->nodes[node].log_path, text);
}

/* ---- the test ------------------------------------------------------------------------ */

static void test_probe_and_failover(void **state)
{
    (void)state;
    struct it_opts o = {
        .n_nodes = N_NODES,
        .base_port = BASE_PORT,
        .name = "probe",
        .extra_config = "{\"probe\": {\"interval_ms\": 500, \"timeout_ms\": 300,"
                        " \"down_after\": 1, \"up_after\": 1},"
                        " \"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE_ADDR "\","
                        " \"datacenter\": \"dc1\"}]}",
    };
    _Static_assert(INTERVAL_MS == 500 && TIMEOUT_MS == 300, "extra_config above");
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    uint64_t leader = it_wait_all_ready(cl, 20000);
    IT_ASSERT(leader != 0, "no leader at start");
    streamer_start();

    struct it_resp r;
    admin("POST", "/admin/v1/clients", "{\"name\":\"probe\"}", &r);
    IT_ASSERT_STATUS(&r, 201);
    cid = (uint64_t)json_integer_value(json_object_get(json_object_get(r.json, "client"), "id"));
    it_resp_close(&r);
    IT_ASSERT(cid > 0, "no client id");

    uint64_t flip = service_create("Flussonic \\\"flip\\\"", "/flip", 1);
    uint64_t steady = service_create("steady", "/steady", 1);
    uint64_t off = service_create("disabled", "/disabled", 0);
    uint64_t nourl = service_create("no url", NULL, 1);

    /* unknown -> up at the first good answer (up_after 1). */
    IT_ASSERT(wait_health(flip, "up", 3000) >= 0, "flip never came up");
    IT_ASSERT(wait_health(steady, "up", 3000) >= 0, "steady never came up");
    IT_ASSERT(wait_metric(leader, "tvmw_cp_services_probed", 2, 3000), "leader probes %g services",
              metric(leader, "tvmw_cp_services_probed"));
    IT_ASSERT(metric(leader, "tvmw_cp_service_prober_active") == 1, "the leader does not probe");
    for (uint64_t id = 1; id <= N_NODES; id++) {
        if (id != leader) {
            IT_ASSERT(metric(id, "tvmw_cp_service_prober_active") == 0, "follower %llu probes too",
                      (unsigned long long)id);
            IT_ASSERT(metric(id, "tvmw_cp_service_probes_total{result=\"ok\"}") == 0,
                      "follower %llu sent probes", (unsigned long long)id);
        }
    }

    /* A dead service (nothing listens) of another client goes down; once
     * that client is deleted (its catalogue stays behind), it is no longer
     * probed nor counted. */
    uint64_t cid1 = cid;
    admin("POST", "/admin/v1/clients", "{\"name\":\"gone\"}", &r);
    IT_ASSERT_STATUS(&r, 201);
    cid = (uint64_t)json_integer_value(json_object_get(json_object_get(r.json, "client"), "id"));
    it_resp_close(&r);
    uint64_t dead = service_create("dead", NULL, 1);
    char path[160];
    it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/streaming-services/%llu",
           (unsigned long long)cid, (unsigned long long)dead);
    admin("PATCH", path, "{\"health_url\":\"http://" DEAD_ADDR "/health\"}", &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    IT_ASSERT(wait_health(dead, "down", 3000) >= 0, "a service nobody answers for is not down");
    IT_ASSERT(wait_metric(leader, "tvmw_cp_services_down", 1, 3000), "services_down is %g, not 1",
              metric(leader, "tvmw_cp_services_down"));
    it_fmt(path, sizeof(path), "/admin/v1/clients/%llu", (unsigned long long)cid);
    admin("DELETE", path, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    cid = cid1;
    IT_ASSERT(wait_metric(leader, "tvmw_cp_services_probed", 2, 3000),
              "the deleted client's service is still probed");
    IT_ASSERT(wait_metric(leader, "tvmw_cp_services_down", 0, 3000),
              "the deleted client's service is still counted down");
    double changes = metric(leader, "tvmw_cp_service_health_changes_total");
    it_sleep_ms(2 * INTERVAL_MS);
    IT_ASSERT(metric(leader, "tvmw_cp_service_health_changes_total") == changes,
              "health changes proposed while nothing changed");

    /* The edge follows from here. */
    edge_start();
    uint64_t t0 = it_now_ms();
    while (edge_metric("tvmw_edge_applied_index") < 1 && it_now_ms() - t0 < 10000) {
        it_sleep_ms(50);
    }
    IT_ASSERT(edge_metric("tvmw_edge_applied_index") >= 1, "the edge has no state");

    /* 500: down within one period plus commit; the feed carries it to the edge. */
    uint64_t before = applied_index(leader);
    flip_and_expect(ANSWER_500, flip, "down", "HTTP 500");
    expect_health(steady, "up");
    uint64_t follower = leader % N_NODES + 1;
    uint64_t at, t_feed = it_now_ms();
    while ((at = feed_find(follower, before, flip, "down")) <= before) {
        IT_ASSERT(it_now_ms() - t_feed < 3000,
                  "no put of service %llu with health down in the feed of node %llu",
                  (unsigned long long)flip, (unsigned long long)follower);
        it_sleep_ms(20);
    }
    t0 = it_now_ms();
    while (edge_metric("tvmw_edge_applied_index") < (double)at && it_now_ms() - t0 < 2000) {
        it_sleep_ms(10);
    }
    IT_ASSERT(edge_metric("tvmw_edge_applied_index") >= (double)at,
              "the edge did not apply index %llu (the health change)", (unsigned long long)at);
    fprintf(stderr, "the edge applied the change (index %llu) %llu ms after it was read\n",
            (unsigned long long)at, (unsigned long long)(it_now_ms() - t0));
    for (uint64_t id = 1; id <= N_NODES; id++) {
        IT_ASSERT(wait_metric(id, "tvmw_cp_services_down", 1, 3000),
                  "node %llu: services_down %g, expected 1", (unsigned long long)id,
                  metric(id, "tvmw_cp_services_down"));
    }
    IT_ASSERT(metric(leader, "tvmw_cp_service_probes_total{result=\"http_error\"}") >= 1,
              "no http_error probe counted");
    IT_ASSERT(log_has(leader, "service down service="), "no transition in the leader's log");
    IT_ASSERT(log_has(leader, "reason=\"HTTP 500\""), "no reason in the leader's log");
    IT_ASSERT(!log_has(leader, "check=1"), "the health URL must not be logged");

    /* Audited like an admin change, with source "probe". */
    it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/audit?after=%llu", (unsigned long long)cid,
           (unsigned long long)before);
    admin("GET", path, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(strstr(r.body, "\"source\": \"probe\"") != NULL ||
                  strstr(r.body, "\"source\":\"probe\"") != NULL,
              "no audit record with source probe: %.600s", r.body);
    it_resp_close(&r);

    /* Back to 200: up as fast. A slow answer: down by the timeout. */
    flip_and_expect(ANSWER_200, flip, "up", "HTTP 200 again");
    wait_metric(leader, "tvmw_cp_services_down", 0, 2000);
    flip_and_expect(ANSWER_SLOW, flip, "down", "slower than the timeout");
    IT_ASSERT(metric(leader, "tvmw_cp_service_probes_total{result=\"timeout\"}") >= 1,
              "no timeout counted");
    flip_and_expect(ANSWER_200, flip, "up", "fast again");

    /* The streamer gone: connection refused, every probed service down. */
    streamer_stop();
    t0 = it_now_ms();
    IT_ASSERT(wait_health(flip, "down", 10000) >= 0, "flip not down with the server gone");
    IT_ASSERT(wait_health(steady, "down", 10000) >= 0, "steady not down with the server gone");
    fprintf(stderr, "server stopped: both services down after %llu ms\n",
            (unsigned long long)(it_now_ms() - t0));
    IT_ASSERT(it_now_ms() - t0 <= BOUND_MS + 200, "server stopped: down after %llu ms",
              (unsigned long long)(it_now_ms() - t0));
    IT_ASSERT(metric(leader, "tvmw_cp_service_probes_total{result=\"error\"}") >= 1,
              "no connection error counted");
    streamer_start();
    IT_ASSERT(wait_health(flip, "up", BOUND_MS) >= 0, "flip not up with the server back");
    IT_ASSERT(wait_health(steady, "up", BOUND_MS) >= 0, "steady not up with the server back");

    /* Leader failover: the new leader starts from the stored health. */
    long long upd_flip, upd_steady, upd2;
    char h[16];
    it_sleep_ms(INTERVAL_MS); /* any proposal of the last round applied */
    service_read(0, flip, h, sizeof(h), &upd_flip);
    service_read(0, steady, h, sizeof(h), &upd_steady);
    it_node_kill(cl, leader);
    uint64_t t_kill = it_now_ms();
    uint64_t leader2 = it_wait_leader(cl, 20000);
    IT_ASSERT(leader2 != 0 && leader2 != leader, "no new leader");
    fprintf(stderr, "leader %llu killed, %llu leads after %llu ms\n", (unsigned long long)leader,
            (unsigned long long)leader2, (unsigned long long)(it_now_ms() - t_kill));
    IT_ASSERT(wait_metric(leader2, "tvmw_cp_service_prober_active", 1, 3000),
              "the new leader does not probe");
    it_sleep_ms(3 * INTERVAL_MS);
    IT_ASSERT(metric(leader2, "tvmw_cp_service_probes_total{result=\"ok\"}") >= 4,
              "the new leader sent too few probes");
    service_read(0, flip, h, sizeof(h), &upd2);
    IT_ASSERT(strcmp(h, "up") == 0 && upd2 == upd_flip,
              "flip changed (%s, updated_ms %lld -> %lld) though nothing happened", h, upd_flip,
              upd2);
    service_read(0, steady, h, sizeof(h), &upd2);
    IT_ASSERT(strcmp(h, "up") == 0 && upd2 == upd_steady, "steady changed though nothing happened");
    IT_ASSERT(metric(leader2, "tvmw_cp_service_health_changes_total") == 0,
              "the new leader proposed a change that was none");
    before = applied_index(leader2);
    flip_and_expect(ANSWER_500, flip, "down", "after failover, HTTP 500");
    follower = leader2 % N_NODES + 1;
    if (follower == leader) {
        follower = follower % N_NODES + 1;
    }
    /* The follower applies the entry a moment after the leader answered. */
    t_feed = it_now_ms();
    while (feed_find(follower, before, flip, "down") <= before) {
        IT_ASSERT(it_now_ms() - t_feed < 3000, "after failover: no health change in the feed");
        it_sleep_ms(20);
    }
    flip_and_expect(ANSWER_200, flip, "up", "after failover, HTTP 200");

    /* Never probed: disabled, or no health_url; every node agrees. */
    IT_ASSERT(atomic_load(&hits_disabled) == 0, "the disabled service was probed");
    for (uint64_t id = 1; id <= N_NODES; id++) {
        if (id == leader) {
            continue; /* killed */
        }
        service_read(id, off, h, sizeof(h), NULL);
        IT_ASSERT(strcmp(h, "unknown") == 0, "disabled service is %s at node %llu", h,
                  (unsigned long long)id);
        service_read(id, nourl, h, sizeof(h), NULL);
        IT_ASSERT(strcmp(h, "unknown") == 0, "service without url is %s at node %llu", h,
                  (unsigned long long)id);
    }
    fprintf(stderr, "probes answered: flip %u, steady %u\n", atomic_load(&hits_flip),
            atomic_load(&hits_steady));
    it_test_ok();
}

static int teardown(void **state)
{
    bool failed = !it_current_ok;
    it_test_teardown(state);
    edge_kill();
    if (failed && edge_log[0] != '\0') {
        char cmd[IT_PATH_MAX + 32];
        it_fmt(cmd, sizeof(cmd), "tail -n 40 %s >&2", edge_log);
        if (system(cmd) != 0) {
            fprintf(stderr, "(no edge log)\n");
        }
    }
    if (streamer != NULL) {
        streamer_stop();
    }
    it_group_done(cl);
    it_cluster_free(cl);
    cl = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_and_failover, it_test_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
