/*
 * Integration-test harness: processes, HTTP, polling, writer threads. See
 * harness.h for the contract.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define RESP_MAX_BYTES   (64u << 20)
#define POLL_PAUSE_MS    50
#define RETRY_PAUSE_MS   50
#define LOG_TAIL_BYTES   (256u << 10)
#define WRITER_FINISH_MS 20000

/* ---- time ------------------------------------------------------------------- */

uint64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void it_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void it_fmt(char *out, size_t out_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, out_len, fmt, ap);
    va_end(ap);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Progress lines go to stderr with a timestamp, so that a failed run shows
 * what happened when, next to the node logs. */
static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "[it %02d:%02d:%02d.%03ld] %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000L, line);
}

/* ---- HTTP ------------------------------------------------------------------- */

struct grow {
    char *data;
    size_t len;
    size_t cap;
    bool overflow;
};

static size_t grow_append(struct grow *g, const char *p, size_t n)
{
    if (g->overflow || g->len + n + 1 > RESP_MAX_BYTES) {
        g->overflow = true;
        return 0; /* makes libcurl fail the transfer */
    }
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 1024;
        while (cap < g->len + n + 1) {
            cap *= 2;
        }
        char *d = realloc(g->data, cap);
        if (d == NULL) {
            g->overflow = true;
            return 0;
        }
        g->data = d;
        g->cap = cap;
    }
    memcpy(g->data + g->len, p, n);
    g->len += n;
    g->data[g->len] = '\0';
    return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    return grow_append(ctx, p, size * n);
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct grow *g = ctx;
    /* A 100 Continue is followed by the real header block: keep the last. */
    if (size * n > 5 && strncmp(p, "HTTP/", 5) == 0) {
        g->len = 0;
    }
    return grow_append(g, p, size * n);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int it_http(const char *method, const char *url, const char *body, size_t body_len,
            const char *const *headers, unsigned timeout_ms, struct it_resp *out)
{
    return it_http_from(NULL, method, url, body, body_len, headers, timeout_ms, out);
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *p = headers; p != NULL && *p != NULL; p++) {
        if (strncasecmp(*p, name, n) == 0 && (*p)[n] == ':') {
            return true;
        }
    }
    return false;
}

int it_http_from(const char *source_ip, const char *method, const char *url, const char *body,
                 size_t body_len, const char *const *headers, unsigned timeout_ms,
                 struct it_resp *out)
{
    pthread_once(&curl_once, curl_init_once);
    memset(out, 0, sizeof(*out));
    uint64_t t0 = it_now_ms();
    CURL *h = curl_easy_init();
    if (h == NULL) {
        it_fmt(out->error, sizeof(out->error), "curl_easy_init failed");
        return -1;
    }
    struct grow b = {0}, hd = {0};
    struct curl_slist *list = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    list = curl_slist_append(list, "Expect:");
    if (body != NULL && !has_header(headers, "Content-Type")) {
        list = curl_slist_append(list, "Content-Type: application/json");
    }
    for (const char *const *p = headers; p != NULL && *p != NULL; p++) {
        list = curl_slist_append(list, *p);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (source_ip != NULL) {
        curl_easy_setopt(h, CURLOPT_INTERFACE, source_ip);
    }
    if (body != NULL || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(h);
    int rv = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    } else {
        it_fmt(out->error, sizeof(out->error), "%s: %s", curl_easy_strerror(rc),
               errbuf[0] ? errbuf : "-");
        out->status = 0;
        rv = -1;
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    out->body = b.data ? b.data : strdup("");
    out->len = b.data ? b.len : 0;
    out->headers = hd.data ? hd.data : strdup("");
    if (rv == 0 && out->len > 0) {
        json_error_t jerr;
        out->json = json_loadb(out->body, out->len, JSON_REJECT_DUPLICATES, &jerr);
    }
    out->took_ms = it_now_ms() - t0;
    return rv;
}

void it_resp_close(struct it_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

bool it_resp_header(const struct it_resp *r, const char *name, char *out, size_t out_len)
{
    size_t nlen = strlen(name);
    for (const char *p = r->headers; p != NULL && *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            size_t vlen = len - (size_t)(v - p);
            snprintf(out, out_len, "%.*s", (int)vlen, v);
            return true;
        }
        p = eol ? eol + 2 : p + len;
    }
    return false;
}

const char *it_resp_str(const struct it_resp *r, const char *key)
{
    return json_string_value(json_object_get(r->json, key));
}

long long it_resp_int(const struct it_resp *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* ---- watchdog ---------------------------------------------------------------- */

/* One cluster per process is watched: a hung test prints the logs and
 * kills its servers before ctest's timeout kills it silently. */
static struct it_cluster *watched;
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cv = PTHREAD_COND_INITIALIZER;
static bool watch_on;
static pthread_t watch_thread;

static void *watchdog_main(void *arg)
{
    (void)arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += IT_WATCHDOG_S;
    pthread_mutex_lock(&watch_mu);
    while (watch_on) {
        if (pthread_cond_timedwait(&watch_cv, &watch_mu, &deadline) == ETIMEDOUT && watch_on) {
            say("WATCHDOG: test still running after %d s; killing the cluster", IT_WATCHDOG_S);
            it_cluster_dump_logs(watched, 60);
            for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
                if (watched->nodes[i].pid > 0) {
                    kill(watched->nodes[i].pid, SIGKILL);
                }
            }
            fprintf(stderr, "temp dir kept: %s\n", watched->dir);
            _exit(1);
        }
    }
    pthread_mutex_unlock(&watch_mu);
    return NULL;
}

/* ---- cluster ---------------------------------------------------------------- */

static void define_node(struct it_cluster *c, uint64_t id, bool join)
{
    struct it_node *n = &c->nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->defined = true;
    n->join = join;
    snprintf(n->http, sizeof(n->http), "127.0.0.1:%u", c->opts.base_port + (unsigned)id);
    if (!join && id < 32 && (c->opts.proxied & (1u << id)) != 0) {
        snprintf(n->listen, sizeof(n->listen), "127.0.0.1:%u",
                 c->opts.base_port + 50 + (unsigned)id);
    }
    snprintf(n->raft, sizeof(n->raft), "127.0.0.1:%u", c->opts.base_port + 100 + (unsigned)id);
    snprintf(n->data_dir, sizeof(n->data_dir), "%s/data/node-%llu", c->dir, (unsigned long long)id);
    snprintf(n->log_path, sizeof(n->log_path), "%s/node-%llu.log", c->dir, (unsigned long long)id);
}

static int write_config(struct it_cluster *c)
{
    char data_root[IT_PATH_MAX + 8];
    snprintf(data_root, sizeof(data_root), "%s/data", c->dir);
    json_t *raft =
        json_pack("{s:i, s:i}", "election_timeout_ms", 1000, "heartbeat_timeout_ms", 100);
    if (c->opts.snapshot_threshold != 0) {
        json_object_set_new(raft, "snapshot_threshold", json_integer(c->opts.snapshot_threshold));
        json_object_set_new(raft, "snapshot_trailing", json_integer(c->opts.snapshot_trailing));
    }
    json_t *http = json_pack("{s:i}", "request_timeout_ms", 5000);
    if (c->opts.max_body_bytes != 0) {
        json_object_set_new(http, "max_body_bytes",
                            json_integer((json_int_t)c->opts.max_body_bytes));
    }
    json_t *nodes = json_array();
    for (unsigned i = 1; i <= c->opts.n_nodes; i++) {
        json_array_append_new(nodes, json_pack("{s:i, s:s, s:s, s:s}", "id", (int)i, "raft_address",
                                               c->nodes[i].raft, "http_address", c->nodes[i].http,
                                               "datacenter", "dc1"));
    }
    char name[80];
    snprintf(name, sizeof(name), "it-%s", c->opts.name);
    json_t *root = json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:i}, s:o}", "cluster_name", name,
                             "admin_token", IT_TOKEN, "data_root", data_root, "raft", raft, "http",
                             http, "state", "map_size_mb", 256, "nodes", nodes);
    if (c->opts.extra_config != NULL) {
        json_error_t jerr;
        json_t *extra = json_loads(c->opts.extra_config, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(extra)) {
            say("extra_config is not a JSON object: %s", jerr.text);
            json_decref(extra);
            json_decref(root);
            return -1;
        }
        json_object_update_recursive(root, extra);
        json_decref(extra);
    }
    int rv = json_dump_file(root, c->config_path, JSON_INDENT(2));
    json_decref(root);
    return rv == 0 ? 0 : -1;
}

struct it_cluster *it_cluster_new(const struct it_opts *opts)
{
    pthread_once(&curl_once, curl_init_once);
    signal(SIGPIPE, SIG_IGN);
    if (opts->n_nodes == 0 || opts->n_nodes > IT_MAX_NODES || opts->base_port == 0 ||
        opts->base_port + 100 + IT_MAX_NODES > 65535) {
        say("bad cluster options");
        return NULL;
    }
    const char *bin = getenv("TVMW_CP_BIN");
    if (bin == NULL || access(bin, X_OK) != 0) {
        say("TVMW_CP_BIN must name the tvmw-cp binary (got %s)", bin ? bin : "nothing");
        return NULL;
    }
    struct it_cluster *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->opts = *opts;
    /* Lets two trees (build, build-asan) run the suite at the same time. */
    const char *off = getenv("TVMW_IT_PORT_OFFSET");
    if (off != NULL) {
        c->opts.base_port += (unsigned)strtoul(off, NULL, 10);
    }
    if (c->opts.base_port + 100 + IT_MAX_NODES > 65535) {
        say("TVMW_IT_PORT_OFFSET puts the ports out of range");
        free(c);
        return NULL;
    }
    if (c->opts.name == NULL) {
        c->opts.name = "test";
    }
    snprintf(c->bin, sizeof(c->bin), "%s", bin);
    snprintf(c->dir, sizeof(c->dir), "/tmp/tvmw-it-%s-XXXXXX", c->opts.name);
    if (mkdtemp(c->dir) == NULL) {
        say("mkdtemp: %s", strerror(errno));
        free(c);
        return NULL;
    }
    snprintf(c->config_path, sizeof(c->config_path), "%s/cluster.json", c->dir);
    for (unsigned i = 1; i <= opts->n_nodes; i++) {
        define_node(c, i, false);
    }
    if (write_config(c) != 0) {
        say("cannot write %s", c->config_path);
        goto err_free;
    }
    say("%s: cluster of %u in %s (HTTP ports %u+id, raft %u+id)", c->opts.name, opts->n_nodes,
        c->dir, opts->base_port, opts->base_port + 100);

    pthread_mutex_lock(&watch_mu);
    if (!watch_on) {
        watched = c;
        watch_on = true;
        pthread_create(&watch_thread, NULL, watchdog_main, NULL);
    }
    pthread_mutex_unlock(&watch_mu);

    for (unsigned i = 1; i <= opts->n_nodes; i++) {
        if (it_node_start(c, i) != 0) {
            goto err_free;
        }
    }
    return c;

err_free:
    it_cluster_free(c);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int rm_tree(const char *path)
{
    int rv = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rv == 0 || errno == ENOENT ? 0 : -1;
}

void it_cluster_pass(struct it_cluster *c)
{
    c->passed = true;
}

void it_cluster_free(struct it_cluster *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < sizeof(c->writers) / sizeof(c->writers[0]); i++) {
        it_writer_free(c->writers[i]);
        c->writers[i] = NULL;
    }
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        if (c->nodes[i].pid > 0) {
            it_node_kill(c, i);
        }
    }
    pthread_mutex_lock(&watch_mu);
    bool stop_watch = watch_on && watched == c;
    if (stop_watch) {
        watch_on = false;
        pthread_cond_signal(&watch_cv);
    }
    pthread_mutex_unlock(&watch_mu);
    if (stop_watch) {
        pthread_join(watch_thread, NULL);
        watched = NULL;
    }
    if (!c->passed) {
        say("%s FAILED: logs of every node follow", c->opts.name);
        it_cluster_dump_logs(c, 40);
        fprintf(stderr, "temp dir kept for inspection: %s\n", c->dir);
    } else if (rm_tree(c->dir) != 0) {
        say("cannot remove %s: %s", c->dir, strerror(errno));
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void dump_log(const struct it_node *n, unsigned lines)
{
    FILE *f = fopen(n->log_path, "r");
    if (f == NULL) {
        fprintf(stderr, "---- node %llu: no log (%s)\n", (unsigned long long)n->id,
                strerror(errno));
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)LOG_TAIL_BYTES ? size - (long)LOG_TAIL_BYTES : 0;
    fseek(f, from, SEEK_SET);
    char *buf = malloc((size_t)(size - from) + 1);
    size_t got = buf ? fread(buf, 1, (size_t)(size - from), f) : 0;
    fclose(f);
    if (buf == NULL) {
        return;
    }
    buf[got] = '\0';
    const char *start = buf + got;
    unsigned seen = 0;
    while (start > buf) {
        if (start[-1] == '\n' && start != buf + got && ++seen > lines) {
            break;
        }
        start--;
    }
    fprintf(stderr, "---- node %llu (%s), last %u lines of %s\n", (unsigned long long)n->id,
            n->pid > 0 ? "running" : "stopped", lines, n->log_path);
    fputs(start, stderr);
    fprintf(stderr, "---- end of node %llu\n", (unsigned long long)n->id);
    free(buf);
}

void it_cluster_dump_logs(const struct it_cluster *c, unsigned lines)
{
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        if (c->nodes[i].defined) {
            dump_log(&c->nodes[i], lines);
        }
    }
}

/* ---- processes ----------------------------------------------------------------- */

static void log_note(const struct it_node *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A harness line in the node's log, so that starts and kills show in it. */
static void log_note(const struct it_node *n, const char *fmt, ...)
{
    FILE *f = fopen(n->log_path, "a");
    if (f == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "==== harness: ");
    vfprintf(f, fmt, ap);
    fprintf(f, " ====\n");
    va_end(ap);
    fclose(f);
}

static int spawn(struct it_cluster *c, struct it_node *n)
{
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)n->id);
    const char *argv[16];
    unsigned a = 0;
    argv[a++] = c->bin;
    argv[a++] = "--config";
    argv[a++] = c->config_path;
    argv[a++] = "--id";
    argv[a++] = id;
    if (n->join) {
        argv[a++] = "--join";
        argv[a++] = "--raft-address";
        argv[a++] = n->raft;
        argv[a++] = "--http-address";
        argv[a++] = n->http;
    } else if (n->listen[0] != '\0') {
        argv[a++] = "--http-address";
        argv[a++] = n->listen;
    }
    const char *level = getenv("TVMW_IT_LOG_LEVEL");
    if (level != NULL) {
        argv[a++] = "--log-level";
        argv[a++] = level;
    }
    argv[a] = NULL;

    n->starts++;
    log_note(n, "start #%u of node %s%s", n->starts, id, n->join ? " (--join)" : "");
    int fd = open(n->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        say("open %s: %s", n->log_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: other threads exist. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(c->bin, (char *const *)argv);
        static const char msg[] = "harness: execv failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    close(fd);
    pthread_mutex_lock(&c->mu);
    n->pid = pid;
    pthread_mutex_unlock(&c->mu);
    say("node %s started pid=%d%s", id, (int)pid, n->join ? " (--join)" : "");
    return 0;
}

int it_node_start(struct it_cluster *c, uint64_t id)
{
    if (id == 0 || id > IT_MAX_NODES || !c->nodes[id].defined || c->nodes[id].pid > 0) {
        say("it_node_start(%llu): not defined or already running", (unsigned long long)id);
        return -1;
    }
    int rv = spawn(c, &c->nodes[id]);
    if (rv == 0 && !c->nodes[id].join) {
        it_node_set_serving(c, id, true);
    }
    return rv;
}

int it_node_start_join(struct it_cluster *c, uint64_t id)
{
    if (id == 0 || id > IT_MAX_NODES || c->nodes[id].defined) {
        say("it_node_start_join(%llu): bad or used id", (unsigned long long)id);
        return -1;
    }
    define_node(c, id, true);
    return spawn(c, &c->nodes[id]);
}

static void forget_pid(struct it_cluster *c, struct it_node *n)
{
    pthread_mutex_lock(&c->mu);
    n->pid = 0;
    n->serving = false;
    pthread_mutex_unlock(&c->mu);
}

void it_node_kill(struct it_cluster *c, uint64_t id)
{
    struct it_node *n = &c->nodes[id];
    pid_t pid = n->pid;
    if (pid <= 0) {
        return;
    }
    forget_pid(c, n);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    log_note(n, "node killed with SIGKILL");
    say("node %llu killed (-9)", (unsigned long long)id);
}

void it_cluster_kill_all(struct it_cluster *c)
{
    pid_t pids[IT_MAX_NODES + 1] = {0};
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        pids[i] = c->nodes[i].pid;
        if (pids[i] > 0) {
            forget_pid(c, &c->nodes[i]);
            kill(pids[i], SIGKILL);
        }
    }
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        if (pids[i] > 0) {
            waitpid(pids[i], NULL, 0);
            log_note(&c->nodes[i], "node killed with SIGKILL (with the whole cluster)");
        }
    }
    say("every node killed (-9) at once");
}

int it_node_stop(struct it_cluster *c, uint64_t id, unsigned timeout_ms)
{
    struct it_node *n = &c->nodes[id];
    pid_t pid = n->pid;
    if (pid <= 0) {
        return -1;
    }
    forget_pid(c, n);
    uint64_t t0 = it_now_ms();
    kill(pid, SIGTERM);
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            break;
        }
        if (it_now_ms() - t0 > timeout_ms) {
            say("node %llu did not stop within %u ms of SIGTERM; SIGKILL", (unsigned long long)id,
                timeout_ms);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            log_note(n, "node did not stop after SIGTERM; killed");
            return -1;
        }
        it_sleep_ms(10);
    }
    log_note(n, "node stopped by SIGTERM, status %d", st);
    if (WIFEXITED(st)) {
        say("node %llu stopped (SIGTERM) in %llu ms, exit %d", (unsigned long long)id,
            (unsigned long long)(it_now_ms() - t0), WEXITSTATUS(st));
        return WEXITSTATUS(st);
    }
    say("node %llu died of signal %d after SIGTERM", (unsigned long long)id,
        WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return -1;
}

int it_node_wipe(struct it_cluster *c, uint64_t id)
{
    struct it_node *n = &c->nodes[id];
    if (n->pid > 0) {
        return -1;
    }
    log_note(n, "data dir wiped");
    say("node %llu: data dir %s wiped", (unsigned long long)id, n->data_dir);
    return rm_tree(n->data_dir);
}

void it_node_set_serving(struct it_cluster *c, uint64_t id, bool serving)
{
    pthread_mutex_lock(&c->mu);
    c->nodes[id].serving = serving && c->nodes[id].pid > 0;
    pthread_mutex_unlock(&c->mu);
}

bool it_node_running(const struct it_cluster *c, uint64_t id)
{
    return id >= 1 && id <= IT_MAX_NODES && c->nodes[id].pid > 0;
}

bool it_node_exited(struct it_cluster *c, uint64_t id)
{
    struct it_node *n = &c->nodes[id];
    if (n->pid <= 0) {
        return true;
    }
    int st;
    if (waitpid(n->pid, &st, WNOHANG) != n->pid) {
        return false;
    }
    say("node %llu (pid %d) exited on its own: %s %d", (unsigned long long)id, (int)n->pid,
        WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    log_note(n, "process exited on its own, status %d", st);
    forget_pid(c, n);
    return true;
}

uint64_t it_next_serving(struct it_cluster *c)
{
    uint64_t id = 0;
    pthread_mutex_lock(&c->mu);
    for (unsigned k = 0; k < IT_MAX_NODES; k++) {
        unsigned i = 1 + (c->rr + k) % IT_MAX_NODES;
        if (c->nodes[i].serving && c->nodes[i].pid > 0) {
            id = i;
            c->rr = i; /* next call starts after i */
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return id;
}

/* ---- requests to nodes ------------------------------------------------------ */

bool it_file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    bool found = false;
    char line[4096];
    while (f != NULL && !found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, text) != NULL;
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

void it_node_url(const struct it_cluster *c, uint64_t id, const char *path, char *out,
                 size_t out_len)
{
    snprintf(out, out_len, "http://%s%s", c->nodes[id].http, path);
}

int it_admin(const struct it_cluster *c, uint64_t id, const char *method, const char *path,
             const char *body, const char *const *extra_headers, struct it_resp *out)
{
    char url[1024];
    const char *headers[12];
    unsigned nh = 0;
    headers[nh++] = "Authorization: Bearer " IT_TOKEN;
    for (const char *const *p = extra_headers; p != NULL && *p != NULL && nh < 11; p++) {
        headers[nh++] = *p;
    }
    headers[nh] = NULL;
    it_node_url(c, id, path, url, sizeof(url));
    return it_http(method, url, body, body ? strlen(body) : 0, headers, IT_HTTP_TIMEOUT, out);
}

bool it_healthz(const struct it_cluster *c, uint64_t id, struct it_resp *out)
{
    char url[256];
    it_node_url(c, id, "/healthz", url, sizeof(url));
    return it_http("GET", url, NULL, 0, NULL, 2000, out) == 0 && out->json != NULL;
}

double it_metric(const struct it_cluster *c, uint64_t id, const char *name)
{
    char url[256];
    struct it_resp r = {0};
    it_node_url(c, id, "/metrics", url, sizeof(url));
    double v = -1;
    if (it_http("GET", url, NULL, 0, NULL, 5000, &r) == 0 && r.status == 200) {
        size_t nlen = strlen(name);
        for (const char *p = r.body; p != NULL && *p != '\0';) {
            if (strncmp(p, name, nlen) == 0 && p[nlen] == ' ') {
                v = strtod(p + nlen + 1, NULL);
                break;
            }
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
    }
    it_resp_close(&r);
    return v;
}

/* A member of the cluster that should answer: running and not a joining
 * node still waiting to be added. */
static bool is_live_member(const struct it_cluster *c, unsigned i)
{
    return c->nodes[i].pid > 0 && (!c->nodes[i].join || c->nodes[i].serving);
}

static void report_exits(struct it_cluster *c)
{
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        if (c->nodes[i].pid > 0) {
            it_node_exited(c, i);
        }
    }
}

uint64_t it_wait_leader(struct it_cluster *c, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        report_exits(c);
        for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
            struct it_resp r = {0};
            if (c->nodes[i].pid <= 0) {
                continue;
            }
            bool ok = it_healthz(c, i, &r) && r.status == 200 &&
                      strcmp(it_resp_str(&r, "role") ? it_resp_str(&r, "role") : "", "leader") == 0;
            it_resp_close(&r);
            if (ok) {
                return i;
            }
        }
        it_sleep_ms(POLL_PAUSE_MS);
    } while (it_now_ms() - t0 < timeout_ms);
    say("no leader within %u ms; last /healthz of each node:", timeout_ms);
    for (unsigned i = 1; i <= IT_MAX_NODES; i++) {
        struct it_resp r = {0};
        if (c->nodes[i].pid > 0) {
            it_healthz(c, i, &r);
            say("  node %u: %ld %s %s", i, r.status, r.body, r.error);
            it_resp_close(&r);
        }
    }
    return 0;
}

uint64_t it_wait_all_ready(struct it_cluster *c, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    char why[512] = "";
    do {
        report_exits(c);
        uint64_t leader = 0;
        bool ok = true;
        bool leader_seen = false;
        for (unsigned i = 1; i <= IT_MAX_NODES && ok; i++) {
            struct it_resp r = {0};
            if (!is_live_member(c, i)) {
                continue;
            }
            if (!it_healthz(c, i, &r) || r.status != 200) {
                it_fmt(why, sizeof(why), "node %u: %ld %s%s", i, r.status, r.body, r.error);
                ok = false;
            } else {
                uint64_t l = (uint64_t)it_resp_int(&r, "leader_id");
                if (leader == 0) {
                    leader = l;
                }
                if (l != leader || l == 0) {
                    it_fmt(why, sizeof(why), "leaders differ: %llu vs %llu",
                           (unsigned long long)leader, (unsigned long long)l);
                    ok = false;
                }
                const char *role = it_resp_str(&r, "role");
                if (i == l && role != NULL && strcmp(role, "leader") == 0) {
                    leader_seen = true;
                }
            }
            it_resp_close(&r);
        }
        if (ok && leader != 0 && leader_seen) {
            return leader;
        }
        it_sleep_ms(POLL_PAUSE_MS);
    } while (it_now_ms() - t0 < timeout_ms);
    say("cluster not ready within %u ms: %s", timeout_ms, why);
    return 0;
}

/* /healthz figures are copies the node publishes on a timer (50 ms in
 * controlplane/node.c), so one poll can show a leader's commit_index below
 * a write it has already acknowledged. Convergence therefore needs the
 * same target (leader commit_index == last_index, reached by every node's
 * applied_index) over STABLE_MS, several publication periods. */
#define STABLE_MS 300

bool it_wait_converged(struct it_cluster *c, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    uint64_t stable_since = 0;
    long long stable_target = -1;
    char why[512] = "";
    do {
        report_exits(c);
        long long target = -1, leader_last = -1;
        for (unsigned i = 1; i <= IT_MAX_NODES && target < 0; i++) {
            struct it_resp r = {0};
            if (is_live_member(c, i) && it_healthz(c, i, &r) && r.status == 200 &&
                strcmp(it_resp_str(&r, "role") ? it_resp_str(&r, "role") : "", "leader") == 0) {
                target = it_resp_int(&r, "commit_index");
                leader_last = it_resp_int(&r, "last_index");
            }
            it_resp_close(&r);
        }
        bool ok = target > 0 && leader_last == target;
        if (!ok) {
            it_fmt(why, sizeof(why), "no leader, or leader commit %lld < last %lld", target,
                   leader_last);
        }
        for (unsigned i = 1; i <= IT_MAX_NODES && ok; i++) {
            struct it_resp r = {0};
            if (!is_live_member(c, i)) {
                continue;
            }
            if (!it_healthz(c, i, &r) || it_resp_int(&r, "applied_index") < target) {
                it_fmt(why, sizeof(why), "node %u applied_index %lld < leader commit %lld", i,
                       it_resp_int(&r, "applied_index"), target);
                ok = false;
            }
            it_resp_close(&r);
        }
        uint64_t now = it_now_ms();
        if (!ok || target != stable_target) {
            stable_since = now;
            stable_target = ok ? target : -1;
        } else if (now - stable_since >= STABLE_MS) {
            return true;
        }
        it_sleep_ms(POLL_PAUSE_MS);
    } while (it_now_ms() - t0 < timeout_ms);
    say("not converged within %u ms: %s", timeout_ms, why);
    return false;
}

bool it_wait_applied(struct it_cluster *c, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    long long target = -1;
    char why[512] = "no leader";
    do {
        report_exits(c);
        for (unsigned i = 1; i <= IT_MAX_NODES && target < 0; i++) {
            struct it_resp r = {0};
            if (is_live_member(c, i) && it_healthz(c, i, &r) && r.status == 200 &&
                strcmp(it_resp_str(&r, "role") ? it_resp_str(&r, "role") : "", "leader") == 0) {
                target = it_resp_int(&r, "commit_index");
            }
            it_resp_close(&r);
        }
        bool ok = target > 0;
        for (unsigned i = 1; i <= IT_MAX_NODES && ok; i++) {
            struct it_resp r = {0};
            if (!is_live_member(c, i)) {
                continue;
            }
            if (!it_healthz(c, i, &r) || it_resp_int(&r, "applied_index") < target) {
                it_fmt(why, sizeof(why), "node %u applied_index %lld < %lld", i,
                       it_resp_int(&r, "applied_index"), target);
                ok = false;
            }
            it_resp_close(&r);
        }
        if (ok) {
            return true;
        }
        it_sleep_ms(POLL_PAUSE_MS);
    } while (it_now_ms() - t0 < timeout_ms);
    say("not applied within %u ms: %s", timeout_ms, why);
    return false;
}

/* ---- clients ---------------------------------------------------------------- */

/* One create attempt. Returns the HTTP status (0: no answer) and fills
 * *ack on 201. */
static long create_once(const struct it_cluster *c, uint64_t node, const char *name,
                        const char *key, struct it_ack *ack, char *why, size_t why_len)
{
    char body[IT_NAME_MAX + 32], keyh[128];
    json_t *o = json_pack("{s:s}", "name", name);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    snprintf(body, sizeof(body), "%s", text ? text : "{}");
    free(text);
    snprintf(keyh, sizeof(keyh), "Idempotency-Key: %s", key);
    const char *hdrs[] = {keyh, NULL};
    struct it_resp r = {0};
    uint64_t sent = it_now_ms();
    it_admin(c, node, "POST", "/admin/v1/clients", body, hdrs, &r);
    long status = r.status;
    if (status == 201) {
        json_t *cl = json_object_get(r.json, "client");
        json_t *id = json_object_get(cl, "id");
        const char *got = json_string_value(json_object_get(cl, "name"));
        const char *ak = json_string_value(json_object_get(cl, "api_key"));
        if (!json_is_integer(id) || got == NULL || strcmp(got, name) != 0) {
            it_fmt(why, why_len, "201 with an unexpected body from node %llu: %s",
                   (unsigned long long)node, r.body);
            status = -201;
        } else {
            memset(ack, 0, sizeof(*ack));
            snprintf(ack->name, sizeof(ack->name), "%s", name);
            snprintf(ack->api_key, sizeof(ack->api_key), "%s", ak ? ak : "");
            ack->id = (uint64_t)json_integer_value(id);
            ack->sent_ms = sent;
            ack->acked_ms = it_now_ms();
        }
    } else {
        it_fmt(why, why_len, "node %llu: %ld %s%s", (unsigned long long)node, r.status, r.body,
               r.error);
    }
    it_resp_close(&r);
    return status;
}

int it_create_client(struct it_cluster *c, uint64_t id, const char *name, const char *key,
                     unsigned timeout_ms, struct it_ack *ack)
{
    uint64_t t0 = it_now_ms();
    char why[512] = "";
    do {
        uint64_t node = id ? id : it_next_serving(c);
        if (node == 0) {
            it_fmt(why, sizeof(why), "no serving node");
            it_sleep_ms(RETRY_PAUSE_MS);
            continue;
        }
        long st = create_once(c, node, name, key, ack, why, sizeof(why));
        if (st == 201) {
            return 0;
        }
        if (st != 0 && st != 503) {
            break;
        }
        it_sleep_ms(RETRY_PAUSE_MS);
    } while (it_now_ms() - t0 < timeout_ms);
    say("create %s (key %s) failed: %s", name, key, why);
    return -1;
}

json_t *it_list_clients(const struct it_cluster *c, uint64_t id, bool stale)
{
    struct it_resp r = {0};
    it_admin(c, id, "GET", stale ? "/admin/v1/clients?stale=1" : "/admin/v1/clients", NULL, NULL,
             &r);
    json_t *arr = json_object_get(r.json, "clients");
    if (r.status != 200 || !json_is_array(arr)) {
        say("GET clients from node %llu%s: %ld %.300s%s", (unsigned long long)id,
            stale ? " (stale)" : "", r.status, r.body, r.error);
        it_resp_close(&r);
        return NULL;
    }
    json_incref(arr);
    it_resp_close(&r);
    return arr;
}

struct named {
    const char *name;
    const char *api_key;
    uint64_t id;
};

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

static int cmp_ack_name(const void *a, const void *b)
{
    return strcmp(((const struct it_ack *)a)->name, ((const struct it_ack *)b)->name);
}

long it_check_acks(const struct it_cluster *c, uint64_t id, bool stale, const struct it_ack *acks,
                   size_t n, const char *prefix, const char *const *in_doubt)
{
    json_t *arr = it_list_clients(c, id, stale);
    if (arr == NULL) {
        return -1;
    }
    size_t m = json_array_size(arr);
    struct named *list = calloc(m + 1, sizeof(*list));
    struct it_ack *sorted = calloc(n + 1, sizeof(*sorted));
    long problems = 0;
    if (list == NULL || sorted == NULL) {
        problems = -1;
        goto out_free;
    }
    for (size_t i = 0; i < m; i++) {
        json_t *o = json_array_get(arr, i);
        const char *nm = json_string_value(json_object_get(o, "name"));
        const char *ak = json_string_value(json_object_get(o, "api_key"));
        list[i].name = nm ? nm : "";
        list[i].api_key = ak ? ak : "";
        list[i].id = (uint64_t)json_integer_value(json_object_get(o, "id"));
    }
    qsort(list, m, sizeof(*list), cmp_named);
    for (size_t i = 0; i < n; i++) {
        struct named key = {.name = acks[i].name};
        struct named *hit = bsearch(&key, list, m, sizeof(*list), cmp_named);
        if (hit == NULL) {
            if (problems++ < 20) {
                say("node %llu%s: acknowledged client %s (id %llu) is MISSING",
                    (unsigned long long)id, stale ? " (stale)" : "", acks[i].name,
                    (unsigned long long)acks[i].id);
            }
            continue;
        }
        /* bsearch may land on any of equal names: look both ways. */
        size_t lo = (size_t)(hit - list), hi = lo;
        while (lo > 0 && strcmp(list[lo - 1].name, acks[i].name) == 0) {
            lo--;
        }
        while (hi + 1 < m && strcmp(list[hi + 1].name, acks[i].name) == 0) {
            hi++;
        }
        if (hi != lo) {
            if (problems++ < 20) {
                say("node %llu: client %s exists %zu times", (unsigned long long)id, acks[i].name,
                    hi - lo + 1);
            }
        } else if (hit->id != acks[i].id) {
            if (problems++ < 20) {
                say("node %llu: client %s has id %llu, acknowledged %llu", (unsigned long long)id,
                    acks[i].name, (unsigned long long)hit->id, (unsigned long long)acks[i].id);
            }
        } else if (acks[i].api_key[0] != '\0' && strcmp(hit->api_key, acks[i].api_key) != 0) {
            if (problems++ < 20) {
                say("node %llu: client %s has api_key %s, acknowledged %s", (unsigned long long)id,
                    acks[i].name, hit->api_key, acks[i].api_key);
            }
        }
    }
    if (prefix != NULL) {
        if (n > 0) {
            memcpy(sorted, acks, n * sizeof(*acks));
        }
        qsort(sorted, n, sizeof(*sorted), cmp_ack_name);
        size_t plen = strlen(prefix);
        for (size_t i = 0; i < m; i++) {
            if (strncmp(list[i].name, prefix, plen) != 0 || list[i].name[plen] != '-') {
                continue;
            }
            struct it_ack key;
            snprintf(key.name, sizeof(key.name), "%s", list[i].name);
            if (bsearch(&key, sorted, n, sizeof(*sorted), cmp_ack_name) != NULL) {
                continue;
            }
            bool doubt = false;
            for (const char *const *d = in_doubt; d != NULL && *d != NULL; d++) {
                doubt = doubt || strcmp(*d, list[i].name) == 0;
            }
            if (!doubt && problems++ < 20) {
                say("node %llu: client %s (id %llu) exists but was never acknowledged",
                    (unsigned long long)id, list[i].name, (unsigned long long)list[i].id);
            }
        }
    }
out_free:
    free(sorted);
    free(list);
    json_decref(arr);
    return problems;
}

/* ---- writer ----------------------------------------------------------------- */

#define WRITER_MAX_THREADS 8

struct it_writer {
    struct it_cluster *c;
    char prefix[48];
    unsigned n_threads;
    pthread_t threads[WRITER_MAX_THREADS];
    bool joined;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* signalled on each ack */
    bool stopping;
    uint64_t stop_deadline_ms;
    struct it_ack *acks;
    size_t n_acks, cap_acks;
    struct it_writer_stats stats;
    char *doubt[WRITER_MAX_THREADS * 2 + 1];
    unsigned n_doubt;
};

struct writer_arg {
    struct it_writer *w;
    unsigned index;
};

static bool writer_stopping(struct it_writer *w, bool *hard)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stopping;
    *hard = s && it_now_ms() > w->stop_deadline_ms;
    pthread_mutex_unlock(&w->mu);
    return s;
}

static void *writer_main(void *arg)
{
    struct writer_arg *wa = arg;
    struct it_writer *w = wa->w;
    unsigned t = wa->index;
    free(wa);
    for (uint64_t seq = 1;; seq++) {
        bool hard;
        if (writer_stopping(w, &hard)) {
            break;
        }
        char name[IT_NAME_MAX], key[IT_NAME_MAX], why[512] = "";
        snprintf(name, sizeof(name), "%s-%u-%llu", w->prefix, t, (unsigned long long)seq);
        snprintf(key, sizeof(key), "%s-k-%u-%llu", w->prefix, t, (unsigned long long)seq);
        uint64_t first = it_now_ms();
        bool done = false;
        while (!done) {
            uint64_t node = it_next_serving(w->c);
            struct it_ack ack;
            long st = node ? create_once(w->c, node, name, key, &ack, why, sizeof(why)) : 0;
            pthread_mutex_lock(&w->mu);
            w->stats.attempts += node != 0;
            if (st == 201) {
                if (w->n_acks == w->cap_acks) {
                    size_t cap = w->cap_acks ? w->cap_acks * 2 : 1024;
                    struct it_ack *a = realloc(w->acks, cap * sizeof(*a));
                    if (a != NULL) {
                        w->acks = a;
                        w->cap_acks = cap;
                    }
                }
                if (w->n_acks < w->cap_acks) {
                    w->acks[w->n_acks++] = ack;
                    w->stats.acked++;
                }
                uint64_t lat = ack.acked_ms - first;
                if (lat > w->stats.max_latency_ms) {
                    w->stats.max_latency_ms = lat;
                }
                pthread_cond_broadcast(&w->cv);
                done = true;
            } else if (st == 0 || st == 503) {
                w->stats.retries++;
            } else {
                w->stats.unexpected++;
                it_fmt(w->stats.last_unexpected, sizeof(w->stats.last_unexpected), "%s: %s", name,
                       why);
            }
            bool give_up = !done && (st != 0 && st != 503);
            if (!done && !give_up && w->stopping && it_now_ms() > w->stop_deadline_ms) {
                give_up = true;
            }
            if (give_up && w->n_doubt < WRITER_MAX_THREADS * 2) {
                w->doubt[w->n_doubt++] = strdup(name);
            }
            pthread_mutex_unlock(&w->mu);
            if (give_up) {
                say("writer: %s in doubt: %s", name, why);
                return NULL;
            }
            if (!done) {
                it_sleep_ms(RETRY_PAUSE_MS);
            }
        }
    }
    return NULL;
}

int it_writer_start(struct it_cluster *c, const char *prefix, unsigned threads,
                    struct it_writer **out)
{
    size_t slot = 0;
    while (slot < sizeof(c->writers) / sizeof(c->writers[0]) && c->writers[slot] != NULL) {
        slot++;
    }
    if (slot == sizeof(c->writers) / sizeof(c->writers[0]) || threads == 0 ||
        threads > WRITER_MAX_THREADS) {
        return -1;
    }
    struct it_writer *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return -1;
    }
    w->c = c;
    snprintf(w->prefix, sizeof(w->prefix), "%s", prefix);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (unsigned i = 0; i < threads; i++) {
        struct writer_arg *wa = malloc(sizeof(*wa));
        if (wa == NULL) {
            break;
        }
        wa->w = w;
        wa->index = i;
        if (pthread_create(&w->threads[i], NULL, writer_main, wa) != 0) {
            free(wa);
            break;
        }
        w->n_threads++;
    }
    c->writers[slot] = w;
    *out = w;
    say("writer %s: %u threads", prefix, w->n_threads);
    return w->n_threads == threads ? 0 : -1;
}

void it_writer_stop(struct it_writer *w)
{
    if (w == NULL || w->joined) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    w->stop_deadline_ms = it_now_ms() + WRITER_FINISH_MS;
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n_threads; i++) {
        pthread_join(w->threads[i], NULL);
    }
    w->joined = true;
    struct it_writer_stats s;
    it_writer_stats(w, &s);
    say("writer %s stopped: acked=%zu attempts=%zu retries=%zu unexpected=%zu max_latency=%llu ms "
        "in_doubt=%u",
        w->prefix, s.acked, s.attempts, s.retries, s.unexpected,
        (unsigned long long)s.max_latency_ms, w->n_doubt);
}

void it_writer_free(struct it_writer *w)
{
    if (w == NULL) {
        return;
    }
    it_writer_stop(w);
    for (size_t i = 0; i < sizeof(w->c->writers) / sizeof(w->c->writers[0]); i++) {
        if (w->c->writers[i] == w) {
            w->c->writers[i] = NULL;
        }
    }
    for (unsigned i = 0; i < w->n_doubt; i++) {
        free(w->doubt[i]);
    }
    free(w->acks);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

bool it_writer_wait(struct it_writer *w, size_t n, unsigned timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    int rv = 0;
    while (w->n_acks < n && rv != ETIMEDOUT) {
        rv = pthread_cond_timedwait(&w->cv, &w->mu, &deadline);
    }
    bool ok = w->n_acks >= n;
    size_t got = w->n_acks;
    pthread_mutex_unlock(&w->mu);
    if (!ok) {
        say("writer %s: only %zu of %zu writes acknowledged within %u ms", w->prefix, got, n,
            timeout_ms);
    }
    return ok;
}

void it_writer_stats(struct it_writer *w, struct it_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}

struct it_ack *it_writer_acks(struct it_writer *w, size_t *n)
{
    pthread_mutex_lock(&w->mu);
    struct it_ack *copy = calloc(w->n_acks + 1, sizeof(*copy));
    if (copy != NULL) {
        memcpy(copy, w->acks, w->n_acks * sizeof(*copy));
    }
    *n = copy ? w->n_acks : 0;
    pthread_mutex_unlock(&w->mu);
    return copy;
}

bool it_writer_first_ack_after(struct it_writer *w, uint64_t t_ms, struct it_ack *out)
{
    bool found = false;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n_acks; i++) {
        if (w->acks[i].sent_ms >= t_ms && (!found || w->acks[i].acked_ms < out->acked_ms)) {
            *out = w->acks[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

const char *const *it_writer_in_doubt(struct it_writer *w)
{
    return (const char *const *)w->doubt;
}
