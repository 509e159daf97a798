/*
 * tvmw-edge processes for integration tests; see it_edge.h.
 */
#include "it_edge.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_cmocka.h"

/* ---- the edge process --------------------------------------------------------- */

void it_edge_define(struct it_edge *e, const char *dir, const char *config, const char *id,
                    const char *addr)
{
    memset(e, 0, sizeof(*e));
    it_fmt(e->id, sizeof(e->id), "%s", id);
    it_fmt(e->addr, sizeof(e->addr), "%s", addr);
    it_fmt(e->config, sizeof(e->config), "%s", config);
    it_fmt(e->data_dir, sizeof(e->data_dir), "%s/edge-%s", dir, id);
    it_fmt(e->log_path, sizeof(e->log_path), "%s/edge-%s.log", dir, id);
}

void it_edge_start(struct it_edge *e)
{
    const char *bin = getenv("TVMW_EDGE_BIN");
    IT_ASSERT(bin != NULL, "TVMW_EDGE_BIN is not set");
    IT_ASSERT(e->pid == 0, "edge already running");
    const char *argv[12];
    unsigned a = 0;
    argv[a++] = bin;
    argv[a++] = "--config";
    argv[a++] = e->config;
    argv[a++] = "--id";
    argv[a++] = e->id;
    argv[a++] = "--data-dir";
    argv[a++] = e->data_dir;
    const char *level = getenv("TVMW_IT_LOG_LEVEL");
    if (level != NULL) {
        argv[a++] = "--log-level";
        argv[a++] = level;
    }
    argv[a] = NULL;
    int fd = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    IT_ASSERT(fd >= 0, "open %s: %s", e->log_path, strerror(errno));
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
    e->pid = pid;
    fprintf(stderr, "edge %s started pid=%d\n", e->id, (int)pid);
}

/* SIGTERM and wait for a clean exit (status 0). */
void it_edge_stop(struct it_edge *e)
{
    if (e->pid <= 0) {
        return;
    }
    pid_t pid = e->pid;
    e->pid = 0;
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "edge did not stop cleanly (status 0x%x)", status);
            return;
        }
        it_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    IT_ASSERT(false, "edge did not stop within 5 s of SIGTERM");
}

void it_edge_kill(struct it_edge *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        e->pid = 0;
    }
}

void it_edge_dump_log(const struct it_edge *e)
{
    FILE *f = fopen(e->log_path, "r");
    if (f == NULL) {
        return;
    }
    fprintf(stderr, "---- edge %s log %s\n", e->id, e->log_path);
    char line[2048];
    while (fgets(line, sizeof(line), f) != NULL) {
        fputs(line, stderr);
    }
    fprintf(stderr, "---- end of edge %s log\n", e->id);
    fclose(f);
}

/* True if the edge's log holds `text`. */
bool it_edge_log_has(const struct it_edge *e, const char *text)
{
    return it_file_has(e->log_path, text);
}

/* ---- edge requests --------------------------------------------------------------- */

void it_edge_get(const struct it_edge *e, const char *path, struct it_resp *r)
{
    char url[256];
    const char *const auth[] = {"Authorization: Bearer " IT_TOKEN, NULL};
    it_fmt(url, sizeof(url), "http://%s%s", e->addr, path);
    it_http("GET", url, NULL, 0, auth, 3000, r);
}

/* GET /healthz: its status text into out ("" if no answer); returns the
 * HTTP status. */
long it_edge_health(const struct it_edge *e, char *out, size_t len, struct it_resp *r)
{
    it_edge_get(e, "/healthz", r);
    const char *s = it_resp_str(r, "status");
    it_fmt(out, len, "%s", s ? s : "");
    return r->status;
}

/* Polls /healthz until its status is `want`; false after timeout_ms. */
bool it_edge_wait_health(const struct it_edge *e, const char *want, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    char st[32];
    do {
        struct it_resp r;
        it_edge_health(e, st, sizeof(st), &r);
        it_resp_close(&r);
        if (strcmp(st, want) == 0) {
            return true;
        }
        it_sleep_ms(50);
    } while (it_now_ms() - t0 < timeout_ms);
    return false;
}

double it_edge_metric(const struct it_edge *e, const char *name)
{
    struct it_resp r;
    it_edge_get(e, "/metrics", &r);
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

/* Waits until metric `name` equals want (-1: equals metric `other`). */
bool it_edge_wait_metric(const struct it_edge *e, const char *name, double want, const char *other,
                         unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        double v = it_edge_metric(e, name);
        if (v >= 0 && v == (other != NULL ? it_edge_metric(e, other) : want)) {
            return true;
        }
        it_sleep_ms(20);
    } while (it_now_ms() - t0 < timeout_ms);
    return false;
}
