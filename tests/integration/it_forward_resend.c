/*
 * it_forward_resend: a follower that forwards a Billing API write to the
 * leader and loses the answer never says "nothing was done" (-1) for it.
 *
 * Regression test of commit c8e0448 ("a failed forward never means nothing
 * was done"), found by the 30-minute fault-injection run: the follower's
 * forward went out on a reused keep-alive connection, the leader applied
 * the write and was killed before it answered, libcurl resent the request
 * on a fresh connection, that connection was refused, and the refusal was
 * taken as proof that nothing had been sent: the follower answered -1 for
 * an applied compare-and-set.
 *
 * Made deterministic with a proxy in this test in front of node 1's HTTP
 * port (cluster.json names the proxy's address, node 1 listens on
 * base+51: it_opts.proxied). Node 1 is made leader; the follower (node 2)
 * forwards through the proxy on a kept-alive connection. For the armed
 * write the proxy relays the request, reads the leader's answer (the write
 * is applied), then drops the answer: it closes its listening socket (a
 * new connection is refused) and the follower's connection without a
 * byte, which is what a dying leader looks like to libcurl.
 *
 * test_resend_deduplicated: the proxy refuses for 300 ms, then relays
 *   again: the follower's retry reaches the leader with the same request id
 *   and gets the first result (error 0); the write is applied once.
 * test_leader_killed: node 3 is down and the proxy kills the leader
 *   (SIGKILL) before it drops the answer: no leader can be elected, the
 *   follower gives up. It must answer 503 (outcome unknown), never 200 with
 *   -1; after a restart the write is there, applied once.
 *
 * Environment: TVMW_CP_BIN. Ports 29000..29199 (HTTP 29001..3, node 1's
 * real HTTP port 29051, raft 29101..3).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "it_billing.h"
#include "it_cmocka.h"

#define BASE_PORT  29000
#define BKEY       "forward-resend-billing-key"
#define ABONEMENT  "500001"
#define MSG_MAX    (256 * 1024)
#define IO_TIMEOUT 20000 /* ms, one read or write of the proxy */

static struct it_cluster *cl;
static struct it_bl_client client = {.key = BKEY};

/* ---- the proxy ------------------------------------------------------------------- */

struct proxy {
    pthread_mutex_t mu;
    pthread_t thread;
    bool running;
    bool stop;
    int lfd;              /* listening socket, -1 while refusing */
    bool shut;            /* lfd was shut down by a drop: the accept loop closes it */
    unsigned port;        /* where it listens (node 1's address in cluster.json) */
    unsigned up_port;     /* where node 1 listens */
    uint64_t relisten_ms; /* listen again at this time; 0: when proxy_resume() */
    /* Armed: the next request that contains `marker`. */
    char marker[64];
    pid_t kill_pid;     /* SIGKILLed before the answer is dropped; 0: none */
    unsigned refuse_ms; /* refuse connections this long after the drop; 0: until resumed */
    /* What happened. */
    unsigned requests, reused, dropped;
    bool dropped_reused; /* the dropped request came on a connection used before */
    long dropped_status; /* the leader's answer to it */
    char dropped_body[512];
};

static struct proxy px = {.mu = PTHREAD_MUTEX_INITIALIZER, .lfd = -1};

static int listen_on(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits until fd is readable; false on timeout or error. */
static bool wait_in(int fd, unsigned ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, (int)ms) == 1;
}

/* Content-Length of an HTTP head (0 when absent). */
static size_t content_length(const char *head, size_t head_len)
{
    const char *p = head;
    const char *end = head + head_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            break;
        }
        if ((size_t)(nl - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
            return (size_t)strtoull(p + 15, NULL, 10);
        }
        p = nl + 1;
    }
    return 0;
}

/* Reads one HTTP message (head and a Content-Length body) into buf.
 * Returns its length, 0 on a clean end of stream before it, -1 on error,
 * timeout or a message over `max`. */
static ssize_t read_msg(int fd, char *buf, size_t max)
{
    size_t have = 0;
    size_t total = 0; /* known once the head is complete */
    for (;;) {
        if (total != 0 && have >= total) {
            return (ssize_t)total;
        }
        if (have == max || !wait_in(fd, IO_TIMEOUT)) {
            return -1;
        }
        ssize_t n = read(fd, buf + have, max - have);
        if (n <= 0) {
            return n == 0 && have == 0 ? 0 : -1;
        }
        have += (size_t)n;
        if (total == 0) {
            char *e = memmem(buf, have, "\r\n\r\n", 4);
            if (e != NULL) {
                size_t head = (size_t)(e - buf) + 4;
                total = head + content_length(buf, head);
                if (total > max) {
                    return -1;
                }
            }
        }
    }
}

static bool write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends req to node 1 on a fresh connection; its answer into resp. */
static ssize_t relay(const char *req, size_t len, char *resp, size_t max)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px.up_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ssize_t n = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write_all(fd, req, len)) {
        n = read_msg(fd, resp, max);
    }
    close(fd);
    return n;
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *req = malloc(MSG_MAX);
    char *resp = malloc(MSG_MAX);
    unsigned served = 0;
    while (req != NULL && resp != NULL) {
        ssize_t len = read_msg(fd, req, MSG_MAX - 1);
        if (len <= 0) {
            break;
        }
        req[len] = '\0';
        pthread_mutex_lock(&px.mu);
        px.requests++;
        px.reused += served > 0;
        bool armed = px.marker[0] != '\0' && strstr(req, px.marker) != NULL;
        if (armed) {
            px.marker[0] = '\0';
        }
        pthread_mutex_unlock(&px.mu);
        ssize_t rlen = relay(req, (size_t)len, resp, MSG_MAX - 1);
        if (rlen <= 0) {
            break;
        }
        served++;
        if (armed) {
            /* The leader applied it and answered; it "dies" now. */
            resp[rlen] = '\0';
            pthread_mutex_lock(&px.mu);
            px.dropped++;
            px.dropped_reused = served > 1;
            px.dropped_status = strncmp(resp, "HTTP/1.1 ", 9) == 0 ? atol(resp + 9) : 0;
            const char *body = strstr(resp, "\r\n\r\n");
            snprintf(px.dropped_body, sizeof(px.dropped_body), "%s", body ? body + 4 : "");
            if (px.kill_pid > 0) {
                kill(px.kill_pid, SIGKILL);
            }
            /* A shut down listening socket refuses new connections at once;
             * the accept loop closes it (it may be polling it). */
            shutdown(px.lfd, SHUT_RDWR);
            px.shut = true;
            px.relisten_ms = px.refuse_ms ? it_now_ms() + px.refuse_ms : 0;
            pthread_mutex_unlock(&px.mu);
            break; /* close the follower's connection without a byte */
        }
        if (!write_all(fd, resp, (size_t)rlen)) {
            break;
        }
    }
    free(req);
    free(resp);
    close(fd);
    return NULL;
}

static void *proxy_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&px.mu);
        if (px.stop) {
            pthread_mutex_unlock(&px.mu);
            break;
        }
        if (px.shut) {
            close(px.lfd);
            px.lfd = -1;
            px.shut = false;
        }
        if (px.lfd < 0 && px.relisten_ms != 0 && it_now_ms() >= px.relisten_ms) {
            px.lfd = listen_on(px.port);
            px.relisten_ms = px.lfd < 0 ? it_now_ms() + 20 : 0;
        }
        int lfd = px.lfd;
        pthread_mutex_unlock(&px.mu);
        if (lfd < 0 || !wait_in(lfd, 20)) {
            if (lfd < 0) {
                it_sleep_ms(5);
            }
            continue;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue; /* shut down meanwhile */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static void proxy_start(unsigned port, unsigned up_port)
{
    px.port = port;
    px.up_port = up_port;
    px.lfd = listen_on(port);
    IT_ASSERT(px.lfd >= 0, "proxy cannot listen on %u: %s", port, strerror(errno));
    IT_ASSERT(pthread_create(&px.thread, NULL, proxy_main, NULL) == 0, "proxy thread");
    px.running = true;
}

static void proxy_arm(const char *marker, pid_t kill_pid, unsigned refuse_ms)
{
    pthread_mutex_lock(&px.mu);
    snprintf(px.marker, sizeof(px.marker), "%s", marker);
    px.kill_pid = kill_pid;
    px.refuse_ms = refuse_ms;
    px.dropped = 0;
    px.dropped_status = 0;
    px.dropped_body[0] = '\0';
    pthread_mutex_unlock(&px.mu);
}

/* Listen again (after a drop with refuse_ms 0). */
static void proxy_resume(void)
{
    pthread_mutex_lock(&px.mu);
    px.relisten_ms = it_now_ms();
    pthread_mutex_unlock(&px.mu);
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&px.mu);
        bool up = px.lfd >= 0;
        pthread_mutex_unlock(&px.mu);
        if (up) {
            return;
        }
        it_sleep_ms(5);
    }
    IT_ASSERT(false, "the proxy did not listen again");
}

static void proxy_stop(void)
{
    if (!px.running) {
        return;
    }
    pthread_mutex_lock(&px.mu);
    px.stop = true;
    pthread_mutex_unlock(&px.mu);
    pthread_join(px.thread, NULL);
    if (px.lfd >= 0) {
        close(px.lfd);
        px.lfd = -1;
    }
    px.running = false;
}

/* ---- helpers ----------------------------------------------------------------------- */

static void billing(uint64_t node, const char *path, const char *const *kv, struct it_resp *r)
{
    it_bl_call(cl, node, IT_BL_PY, &client, path, kv, r);
}

static void billing_ok(uint64_t node, const char *path, const char *const *kv)
{
    struct it_resp r;
    char why[800];
    for (int i = 0; i < 50; i++) {
        billing(node, path, kv, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "%s at node %llu: %s", path,
              (unsigned long long)node, why);
    it_resp_close(&r);
}

/* The account's status_reason, read (linearizably) at node. */
static void status_reason(uint64_t node, char *out, size_t len)
{
    struct it_resp r;
    billing(node, "account/info", IT_KV("abonement", ABONEMENT), &r);
    const char *s = it_resp_str(&r, "status_reason");
    snprintf(out, len, "%s", r.status == 200 && s != NULL ? s : "?");
    it_resp_close(&r);
}

/* How many applied account/modify records of the client set status_reason
 * to `value` (the audit trail holds every Billing API write). */
static int applied(const char *value)
{
    int count = 0;
    long long after = 0;
    for (;;) {
        char path[160];
        it_fmt(path, sizeof(path), "/admin/v1/clients/%llu/audit?after=%lld&limit=1000",
               (unsigned long long)client.id, after);
        struct it_resp r;
        it_admin(cl, 2, "GET", path, NULL, NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        size_t i;
        json_t *rec;
        json_t *recs = json_object_get(r.json, "records");
        json_array_foreach(recs, i, rec)
        {
            const char *m = json_string_value(json_object_get(rec, "method"));
            const char *v =
                json_string_value(json_object_get(json_object_get(rec, "params"), "status_reason"));
            if (m != NULL && strcmp(m, "account/modify") == 0 && v != NULL &&
                strcmp(v, value) == 0 && json_integer_value(json_object_get(rec, "error")) == 0) {
                count++;
            }
        }
        size_t n = json_array_size(recs);
        after = json_integer_value(json_object_get(r.json, "next_after"));
        it_resp_close(&r);
        if (n < 1000 || after == 0) {
            return count;
        }
    }
}

/* A forwarded write that passes, so that the follower keeps a connection
 * to the proxy alive (libcurl's connection cache) for the next forward. */
static unsigned proxy_requests(void)
{
    pthread_mutex_lock(&px.mu);
    unsigned n = px.requests;
    pthread_mutex_unlock(&px.mu);
    return n;
}

static void warm_up(const char *value)
{
    unsigned before = proxy_requests();
    billing_ok(2, "account/modify", IT_KV("abonement", ABONEMENT, "status_reason", value));
    IT_ASSERT(proxy_requests() > before, "the follower's write did not go through the proxy");
}

static void make_leader_1(void)
{
    uint64_t l = it_wait_all_ready(cl, 20000);
    IT_ASSERT(l != 0, "no leader");
    for (int attempt = 0; l != 1 && attempt < 10; attempt++) {
        struct it_resp r;
        it_admin(cl, l, "POST", "/admin/v1/cluster/transfer", "{\"id\":1}", NULL, &r);
        it_resp_close(&r);
        it_sleep_ms(500);
        l = it_wait_all_ready(cl, 10000);
    }
    IT_ASSERT(l == 1, "node 1 did not become leader (leader %llu)", (unsigned long long)l);
}

/* ---- tests ---------------------------------------------------------------------------- */

/* The cluster, the proxy and the account; once, by the first test run. */
static void setup(void)
{
    if (cl != NULL) {
        return;
    }
    struct it_opts o = {
        .n_nodes = 3, .base_port = BASE_PORT, .name = "forward-resend", .proxied = 1u << 1};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    unsigned port = 0, up = 0;
    sscanf(cl->nodes[1].http, "127.0.0.1:%u", &port);
    sscanf(cl->nodes[1].listen, "127.0.0.1:%u", &up);
    proxy_start(port, up);
    make_leader_1();
    struct it_resp r;
    it_admin(cl, 1, "POST", "/admin/v1/clients",
             "{\"name\":\"forward-resend\",\"billing_api_key\":\"" BKEY "\"}", NULL, &r);
    IT_ASSERT_STATUS(&r, 201);
    client.id =
        (uint64_t)json_integer_value(json_object_get(json_object_get(r.json, "client"), "id"));
    it_resp_close(&r);
    billing_ok(2, "customer/create", IT_KV("ext_id", "fr-1", "firstname", "Resend"));
    billing_ok(2, "account/create",
               IT_KV("ext_id", "fr-1", "abonement", ABONEMENT, "password", "123456"));
}

static int group_teardown(void **state)
{
    (void)state;
    it_group_done(cl);
    it_cluster_free(cl); /* kills the nodes first: no one talks to the proxy */
    proxy_stop();
    return 0;
}

static void test_resend_deduplicated(void **state)
{
    (void)state;
    setup();
    make_leader_1();
    warm_up("warm-a");
    proxy_arm("status_reason=resend-a", 0, 300);
    struct it_resp r;
    billing(2, "account/modify", IT_KV("abonement", ABONEMENT, "status_reason", "resend-a"), &r);
    IT_ASSERT(px.dropped == 1, "the proxy never saw the armed write");
    IT_ASSERT(px.dropped_status == 200 && strstr(px.dropped_body, "\"error\":0") != NULL,
              "the leader's answer to the dropped forward: %ld %s", px.dropped_status,
              px.dropped_body);
    IT_ASSERT(px.dropped_reused, "the armed write did not come on a kept-alive connection");
    char why[800];
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)),
              "the retried forward must get the first result: %s", why);
    it_resp_close(&r);
    char v[64];
    status_reason(2, v, sizeof(v));
    IT_ASSERT(strcmp(v, "resend-a") == 0, "status_reason is %s", v);
    IT_ASSERT(applied("resend-a") == 1, "applied %d times", applied("resend-a"));
    it_test_ok();
}

static void test_leader_killed(void **state)
{
    (void)state;
    setup();
    make_leader_1();
    /* Without node 3 the follower cannot elect a leader once node 1 dies:
     * it gives up after two election timeouts without a leader. */
    it_node_kill(cl, 3);
    warm_up("warm-b");
    pthread_mutex_lock(&cl->mu);
    pid_t leader_pid = cl->nodes[1].pid;
    pthread_mutex_unlock(&cl->mu);
    proxy_arm("status_reason=resend-b", leader_pid, 0);
    struct it_resp r;
    billing(2, "account/modify", IT_KV("abonement", ABONEMENT, "status_reason", "resend-b"), &r);
    IT_ASSERT(px.dropped == 1, "the proxy never saw the armed write");
    IT_ASSERT(px.dropped_status == 200 && strstr(px.dropped_body, "\"error\":0") != NULL,
              "the leader's answer to the dropped forward: %ld %s", px.dropped_status,
              px.dropped_body);
    IT_ASSERT(px.dropped_reused, "the armed write did not come on a kept-alive connection");
    /* The write is in the log of a dead leader: the follower cannot know
     * its outcome. -1 ("nothing was done") would be a lie. */
    IT_ASSERT(!(r.status == 200 && it_resp_int(&r, "error") == -1),
              "the follower answered -1 for a write the leader had applied: %s", r.body);
    IT_ASSERT(r.status == 503 && it_resp_int(&r, "error") == -503,
              "expected 503 (outcome unknown), got %ld %s", r.status, r.body ? r.body : r.error);
    it_resp_close(&r);

    it_node_kill(cl, 1); /* reap */
    proxy_resume();
    IT_ASSERT(it_node_start(cl, 1) == 0 && it_node_start(cl, 3) == 0, "restart");
    IT_ASSERT(it_wait_all_ready(cl, 30000) != 0, "no leader after the restart");
    char v[64];
    status_reason(2, v, sizeof(v));
    IT_ASSERT(strcmp(v, "resend-b") == 0, "status_reason is %s: the write was not kept", v);
    IT_ASSERT(applied("resend-b") == 1, "applied %d times", applied("resend-b"));
    it_test_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resend_deduplicated, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
