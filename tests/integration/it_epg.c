/*
 * it_epg: EPG import on a real 3-node cluster with a real tvmw-edge
 * (issue 7, requirements 1 and 4; docs/epg.md).
 *
 * test_upload_to_follower: an XMLTV document (zone +0300, a programme
 *   without stop, a broken one, an unmapped channel) uploaded to a
 *   follower lands with the source's and the channels' time corrections
 *   (by epg_channel_id and by the source's explicit map); the programme
 *   older than epg.expire_days disappears through the leader's expiry;
 *   an edge that starts afterwards has exactly the expected keys and
 *   values in its db 16 (edge snapshot).
 * test_reimport_replaces: a changed document re-imported while the edge
 *   follows: same slots keep their ids, unchanged ones are not rewritten,
 *   a removed programme is deleted, a new one added — at the control
 *   plane and in the edge's db 16 (change feed); a generated gzip guide
 *   uploaded with tvmwctl.
 * test_hostile_documents: billion laughs, an external entity, deep
 *   nesting, huge attribute and text, truncated XML and gzip, bad UTF-8,
 *   an unknown encoding, not XML, empty, a wrong root: each is refused
 *   with 422 invalid_xmltv and a reason, the source records the error,
 *   and every channel's programmes are byte for byte what they were; a
 *   document of broken programmes imports the good one and reports the
 *   rest; a file over epg.max_file_bytes is 413.
 * test_url_source: a source with a URL on a small HTTP server here: run
 *   on a follower imports it (gzip), a second run is a conditional GET
 *   answered 304 (not_modified), a changed document is imported, a 404
 *   is fetch_failed, and with interval_s set the leader's scheduler
 *   downloads it by itself.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN, TVMW_CTL_BIN, TVMW_XMLTV_GEN
 * (scripts/xmltv_gen.py). Ports 26500..26599.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/http.h"
#include "edge/proto.h"
#include "edge/store.h"
#include "it_cmocka.h"

#define BASE_PORT 26500 /* cp HTTP 26501..3, raft 26601..3 */
#define EDGE_ADDR "127.0.0.1:26551"
#define WEB_ADDR  "127.0.0.1:26561"
#define N_NODES   3
#define UPLOAD_MS 60000
#define MAX_FILE  (2u << 20)  /* epg.max_file_bytes here: 2 MiB */
#define MAX_XML   (32u << 20) /* epg.max_xml_bytes here */
#define HOUR      3600
#define DAY       86400
#define SRC_CORR  3600  /* source time correction */
#define CH2_CORR  600   /* channel B's epg_time_correction_s */
#define CH3_CORR  -1800 /* channel C's map entry */

static struct it_cluster *cl;
static uint64_t ch_a, ch_b, ch_c; /* our channels for ch1/ch2/ch3.tvmw */
static int64_t base;              /* the hour the documents start at (UTC) */

/* ---- small helpers ----------------------------------------------------------------- */

static uint64_t follower(void)
{
    uint64_t leader = it_wait_leader(cl, 20000);
    IT_ASSERT(leader != 0, "no leader");
    return leader % N_NODES + 1;
}

static json_t *admin_ok(uint64_t node, const char *method, const char *path, const char *body,
                        long want)
{
    struct it_resp r;
    for (int attempt = 0; attempt < 50; attempt++) {
        it_admin(cl, node, method, path, body, NULL, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    IT_ASSERT_STATUS(&r, want);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}

static uint64_t make_channel(const char *name, const char *epg_id, int corr)
{
    char body[256];
    it_fmt(body, sizeof(body),
           "{\"name\":\"%s\",\"epg_channel_id\":\"%s\",\"epg_time_correction_s\":%d}", name, epg_id,
           corr);
    json_t *o = admin_ok(1, "POST", "/admin/v1/clients/1/channels", body, 201);
    uint64_t id =
        (uint64_t)json_integer_value(json_object_get(json_object_get(o, "channel"), "id"));
    json_decref(o);
    return id;
}

/* POST the document to the source's upload route of node; fills r. */
static void upload(uint64_t node, uint64_t sid, const void *doc, size_t len, struct it_resp *r)
{
    char url[256], path[128];
    static const char *const headers[] = {"Authorization: Bearer " IT_TOKEN,
                                          "Content-Type: application/xml", NULL};
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/epg-sources/%llu/upload",
           (unsigned long long)sid);
    it_node_url(cl, node, path, url, sizeof(url));
    it_http("POST", url, doc, len, headers, UPLOAD_MS, r);
}

static json_int_t report_int(const struct it_resp *r, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(r->json, "import"), key));
}

/* The programmes of a channel (stale read of node: the caller waited). */
static json_t *programs(uint64_t node, uint64_t ch)
{
    char path[160];
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/programs?channel_id=%llu&limit=100000",
           (unsigned long long)ch);
    json_t *o = admin_ok(node, "GET", path, NULL, 200);
    json_t *p = json_incref(json_object_get(o, "programs"));
    json_decref(o);
    return p;
}

static json_t *find_program(json_t *list, int64_t begin)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        if (json_integer_value(json_object_get(p, "begin_time")) == begin) {
            return p;
        }
    }
    return NULL;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void fmt_xmltv_time(int64_t t, char *out, size_t len)
{
    time_t local = (time_t)(t + 3 * HOUR); /* written in +0300 */
    struct tm tm;
    gmtime_r(&local, &tm);
    strftime(out, len, "%Y%m%d%H%M%S +0300", &tm);
}

/* A programme element; stop 0: none. */
static void add_prog(char **doc, size_t *len, const char *ch, int64_t start, int64_t stop,
                     const char *title)
{
    char s[40], e[40], buf[1024];
    fmt_xmltv_time(start, s, sizeof(s));
    fmt_xmltv_time(stop, e, sizeof(e));
    int n = snprintf(buf, sizeof(buf),
                     "  <programme start=\"%s\"%s%s%s channel=\"%s\">\n"
                     "    <title lang=\"ru\">%s</title><sub-title>Sub %s</sub-title>\n"
                     "    <desc>About %s &amp; more.</desc><category>News</category>\n"
                     "    <icon src=\"https://img.example.net/%s.jpg\"/>\n"
                     "    <episode-num system=\"xmltv_ns\">0.4.</episode-num>\n"
                     "    <rating system=\"RU\"><value>12+</value></rating>\n"
                     "  </programme>\n",
                     s, stop ? " stop=\"" : "", stop ? e : "", stop ? "\"" : "", ch, title, title,
                     title, title);
    *doc = realloc(*doc, *len + (size_t)n + 1);
    memcpy(*doc + *len, buf, (size_t)n + 1);
    *len += (size_t)n;
}

/* The first document: ch1 has an old programme (expires), one without
 * stop, and two more; ch2 two; ch3 one; ch4 is mapped to nothing; one
 * programme has a broken start. v2 (re-import): no old one (it expired),
 * ch1's third renamed, its fourth gone, a fifth added; the rest the same. */
static char *make_doc(int version, size_t *len)
{
    char *doc = NULL;
    *len = 0;
    const char *head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n<tv>\n"
                       "  <channel id=\"ch1.tvmw\"><display-name>One</display-name></channel>\n";
    doc = strdup(head);
    *len = strlen(head);
    if (version == 1) {
        add_prog(&doc, len, "ch1.tvmw", base - 3 * DAY, base - 3 * DAY + HOUR, "Old");
    }
    add_prog(&doc, len, "ch1.tvmw", base, base + HOUR, "Morning");
    add_prog(&doc, len, "ch1.tvmw", base + HOUR, 0, version == 1 ? "Noon" : "Noon renamed");
    if (version == 1) {
        add_prog(&doc, len, "ch1.tvmw", base + 2 * HOUR, base + 3 * HOUR, "Evening");
    } else {
        add_prog(&doc, len, "ch1.tvmw", base + 2 * HOUR + 1800, base + 3 * HOUR, "Late");
    }
    add_prog(&doc, len, "ch2.tvmw", base, base + 1800, "Sport");
    add_prog(&doc, len, "ch2.tvmw", base + 1800, base + 5400, "Film");
    add_prog(&doc, len, "ch3.tvmw", base, base + HOUR, "Kids");
    add_prog(&doc, len, "ch4.tvmw", base, base + HOUR, "Nobody");
    const char *bad = "  <programme start=\"tomorrow\" channel=\"ch1.tvmw\"><title>Bad</title>"
                      "</programme>\n</tv>\n";
    doc = realloc(doc, *len + strlen(bad) + 1);
    memcpy(doc + *len, bad, strlen(bad) + 1);
    *len += strlen(bad);
    return doc;
}

/* Runs a program; returns its exit status (-1 if it did not run). */
static int run_cmd(const char *const *argv, const char *out_path)
{
    pid_t pid = fork();
    IT_ASSERT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out_path != NULL) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
            }
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* xmltv_gen.py with args into path. */
static void generate(const char *path, const char *const *args)
{
    const char *gen = getenv("TVMW_XMLTV_GEN");
    IT_ASSERT(gen != NULL, "TVMW_XMLTV_GEN is not set");
    const char *argv[24] = {"/usr/bin/env", "python3", gen, "--out", path};
    unsigned n = 5;
    for (const char *const *a = args; *a != NULL && n < 23; a++) {
        argv[n++] = *a;
    }
    argv[n] = NULL;
    IT_ASSERT(run_cmd(argv, NULL) == 0, "xmltv_gen.py failed for %s", path);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    IT_ASSERT(f != NULL, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    IT_ASSERT(fread(b, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

/* ---- the edge ------------------------------------------------------------------------ */

static pid_t edge_pid;
static char edge_dir[IT_PATH_MAX], edge_log[IT_PATH_MAX];

static void edge_start(void)
{
    const char *bin = getenv("TVMW_EDGE_BIN");
    IT_ASSERT(bin != NULL, "TVMW_EDGE_BIN is not set");
    it_fmt(edge_dir, sizeof(edge_dir), "%s/edge-e1", cl->dir);
    it_fmt(edge_log, sizeof(edge_log), "%s/edge-e1.log", cl->dir);
    int fd = open(edge_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    IT_ASSERT(fd >= 0, "open %s", edge_log);
    pid_t parent = getpid();
    pid_t pid = fork();
    IT_ASSERT(pid >= 0, "fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execl(bin, bin, "--config", cl->config_path, "--id", "e1", "--data-dir", edge_dir,
              (char *)NULL);
        _exit(127);
    }
    close(fd);
    edge_pid = pid;
}

/* SIGTERM: a clean stop leaves the state closed for us to open. */
static void edge_stop(void)
{
    if (edge_pid <= 0) {
        return;
    }
    kill(edge_pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000 && waitpid(edge_pid, &st, WNOHANG) == 0; i++) {
        it_sleep_ms(10);
    }
    if (waitpid(edge_pid, &st, WNOHANG) == 0) {
        kill(edge_pid, SIGKILL);
        waitpid(edge_pid, &st, 0);
    }
    edge_pid = 0;
}

static double edge_metric(const char *name)
{
    char url[128];
    struct it_resp r;
    it_fmt(url, sizeof(url), "http://%s/metrics", EDGE_ADDR);
    it_http("GET", url, NULL, 0, NULL, 2000, &r);
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

/* Waits until the edge applied everything node 1's feed had when asked
 * (the feed's last_index counts commands; raft's applied index also
 * counts barriers). */
static void edge_catch_up(void)
{
    IT_ASSERT(it_wait_applied(cl, 20000), "the cluster did not converge");
    char url[256];
    struct it_resp h;
    it_node_url(cl, 1, "/edge/v1/feed?after=0&wait_ms=0&limit=1", url, sizeof(url));
    it_http("GET", url, NULL, 0, NULL, 5000, &h);
    IT_ASSERT(h.json != NULL, "no feed answer: %ld", h.status);
    double want = (double)json_integer_value(json_object_get(h.json, "last_index"));
    it_resp_close(&h);
    uint64_t t0 = it_now_ms();
    while (edge_metric("tvmw_edge_applied_index") < want) {
        IT_ASSERT(it_now_ms() - t0 < 20000, "the edge did not catch up to %.0f (at %.0f)", want,
                  edge_metric("tvmw_edge_applied_index"));
        it_sleep_ms(50);
    }
}

/* The edge's db-16 record of (channel, begin), read from its state after
 * a clean stop: a JSON object, or NULL when there is none. */
static json_t *edge_program(uint64_t ch, int64_t begin)
{
    struct edge_store *s;
    struct edge_read r;
    IT_ASSERT(edge_store_open(edge_dir, 256, &s) == 0, "cannot open the edge state");
    IT_ASSERT(edge_store_read_begin(s, &r) == 0, "the edge has no state");
    uint8_t key[16];
    tvmw_put_be64(key, ch);
    tvmw_put_be64(key + 8, (uint64_t)begin);
    const uint8_t *v;
    size_t n;
    json_t *o = NULL;
    if (edge_store_get(&r, EDGE_DB_PROGRAMS, key, sizeof(key), &v, &n) == 0) {
        o = json_loadb((const char *)v, n, 0, NULL);
        IT_ASSERT(o != NULL, "edge value is not JSON");
    }
    edge_store_read_end(s, &r);
    edge_store_close(s);
    return o;
}

/* The edge has the cp's record of each programme of the list, the same bytes. */
static void edge_has_all(json_t *list)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        json_t *e = edge_program((uint64_t)json_integer_value(json_object_get(p, "channel_id")),
                                 json_integer_value(json_object_get(p, "begin_time")));
        IT_ASSERT(e != NULL && json_equal(e, p), "edge db 16 lacks or differs for programme %lld",
                  (long long)json_integer_value(json_object_get(p, "id")));
        json_decref(e);
    }
}

/* ---- tests --------------------------------------------------------------------------- */

static uint64_t src_upload; /* the upload source */

static void test_upload_to_follower(void **state)
{
    (void)state;
    char body[512];
    it_fmt(body, sizeof(body),
           "{\"name\":\"Provider\",\"time_correction_s\":%d,\"channel_map\":"
           "[{\"xmltv_id\":\"ch3.tvmw\",\"channel_id\":%llu,\"time_correction_s\":%d}]}",
           SRC_CORR, (unsigned long long)ch_c, CH3_CORR);
    json_t *o = admin_ok(2, "POST", "/admin/v1/clients/1/epg-sources", body, 201);
    src_upload =
        (uint64_t)json_integer_value(json_object_get(json_object_get(o, "epg_source"), "id"));
    json_decref(o);

    size_t len;
    char *doc = make_doc(1, &len);
    struct it_resp r;
    uint64_t f = follower();
    upload(f, src_upload, doc, len, &r);
    free(doc);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(report_int(&r, "programmes") == 7 && report_int(&r, "channels") == 3 &&
                  report_int(&r, "skipped") == 1 && report_int(&r, "unmapped") == 1 &&
                  report_int(&r, "inserted") == 7,
              "report: %s", r.body);
    it_resp_close(&r);

    /* Corrections: source +3600 everywhere, ch2 +600 (its own field), ch3
     * -1800 (the map entry). The programme without stop ends where the
     * next begins. */
    IT_ASSERT(it_wait_applied(cl, 10000), "no convergence");
    json_t *a = programs(f, ch_a), *b = programs(f, ch_b), *c = programs(f, ch_c);
    json_t *p = find_program(a, base + SRC_CORR);
    IT_ASSERT(p != NULL, "no corrected programme on channel A");
    IT_ASSERT(strcmp(str(p, "name"), "Morning") == 0 &&
                  strcmp(str(p, "short_name"), "Sub Morning") == 0 &&
                  strcmp(str(p, "description"), "About Morning & more.") == 0 &&
                  strcmp(str(p, "category"), "News") == 0 &&
                  strcmp(str(p, "preview"), "https://img.example.net/Morning.jpg") == 0 &&
                  strcmp(str(p, "rating"), "12+") == 0 &&
                  json_integer_value(json_object_get(p, "end_time")) == base + SRC_CORR + HOUR &&
                  json_integer_value(json_object_get(p, "client_id")) == 1,
              "programme fields");
    json_t *meta = json_loads(str(p, "meta"), 0, NULL);
    IT_ASSERT(meta != NULL &&
                  json_integer_value(json_object_get(meta, "source_id")) ==
                      (json_int_t)src_upload &&
                  strcmp(str(json_object_get(meta, "episode_num"), "xmltv_ns"), "0.4.") == 0,
              "meta: %s", str(p, "meta"));
    json_decref(meta);
    p = find_program(a, base + HOUR + SRC_CORR);
    IT_ASSERT(p != NULL &&
                  json_integer_value(json_object_get(p, "end_time")) == base + 2 * HOUR + SRC_CORR,
              "no stop: ends at the next start");
    IT_ASSERT(find_program(b, base + SRC_CORR + CH2_CORR) != NULL, "channel B correction");
    IT_ASSERT(find_program(c, base + SRC_CORR + CH3_CORR) != NULL, "channel C correction");
    IT_ASSERT(json_array_size(b) == 2 && json_array_size(c) == 1, "counts B C");
    json_decref(b);
    json_decref(c);

    /* The programme of three days ago goes (epg.expire_days 2). */
    uint64_t t0 = it_now_ms();
    for (;;) {
        json_decref(a);
        a = programs(1, ch_a);
        if (find_program(a, base - 3 * DAY + SRC_CORR) == NULL) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 15000, "the old programme was not expired");
        it_sleep_ms(100);
    }
    IT_ASSERT(json_array_size(a) == 3, "channel A keeps 3, has %zu", json_array_size(a));

    /* An edge that starts now gets db 16 in its snapshot. */
    edge_start();
    edge_catch_up();
    edge_stop();
    edge_has_all(a);
    json_t *gone = edge_program(ch_a, base - 3 * DAY + SRC_CORR);
    IT_ASSERT(gone == NULL, "the expired programme is at the edge");
    json_t *all[] = {programs(1, ch_b), programs(1, ch_c)};
    edge_has_all(all[0]);
    edge_has_all(all[1]);
    json_decref(all[0]);
    json_decref(all[1]);
    json_decref(a);

    json_t *src = admin_ok(3, "GET", "/admin/v1/clients/1/epg-sources/1", NULL, 200);
    IT_ASSERT(strcmp(str(json_object_get(src, "epg_source"), "last_status"), "ok") == 0,
              "source status");
    json_decref(src);
    it_test_ok();
}

static void test_reimport_replaces(void **state)
{
    (void)state;
    edge_start(); /* from its saved state: what follows comes by the feed */
    json_t *before = programs(1, ch_a);
    json_int_t id_morning =
        json_integer_value(json_object_get(find_program(before, base + SRC_CORR), "id"));
    json_int_t id_noon =
        json_integer_value(json_object_get(find_program(before, base + HOUR + SRC_CORR), "id"));
    json_decref(before);

    size_t len;
    char *doc = make_doc(2, &len);
    struct it_resp r;
    upload(follower(), src_upload, doc, len, &r);
    free(doc);
    IT_ASSERT_STATUS(&r, 200);
    /* Morning, ch2, ch3: unchanged; Noon: renamed, and its end moves to
     * Late's start; Evening gone; Late new. */
    IT_ASSERT(report_int(&r, "unchanged") == 4 && report_int(&r, "updated") == 1 &&
                  report_int(&r, "deleted") == 1 && report_int(&r, "inserted") == 1,
              "report: %s", r.body);
    it_resp_close(&r);
    IT_ASSERT(it_wait_applied(cl, 10000), "no convergence");
    json_t *a = programs(1, ch_a);
    json_t *m = find_program(a, base + SRC_CORR), *n = find_program(a, base + HOUR + SRC_CORR);
    IT_ASSERT(m && json_integer_value(json_object_get(m, "id")) == id_morning, "Morning's id");
    IT_ASSERT(n && json_integer_value(json_object_get(n, "id")) == id_noon &&
                  strcmp(str(n, "name"), "Noon renamed") == 0 &&
                  json_integer_value(json_object_get(n, "end_time")) ==
                      base + 2 * HOUR + 1800 + SRC_CORR,
              "Noon renamed in place");
    IT_ASSERT(find_program(a, base + 2 * HOUR + SRC_CORR) == NULL, "Evening is gone");
    IT_ASSERT(find_program(a, base + 2 * HOUR + 1800 + SRC_CORR) != NULL, "Late is there");
    IT_ASSERT(json_array_size(a) == 3, "channel A has %zu", json_array_size(a));

    edge_catch_up();
    edge_stop();
    edge_has_all(a);
    json_t *ev = edge_program(ch_a, base + 2 * HOUR + SRC_CORR);
    IT_ASSERT(ev == NULL, "the deleted programme is still at the edge");
    json_decref(a);

    /* A generated guide, gzip, through tvmwctl: 4 channels × 2 days. */
    char path[IT_PATH_MAX], out[IT_PATH_MAX], server[128], cid_src[32];
    it_fmt(path, sizeof(path), "%s/guide.xml.gz", cl->dir);
    it_fmt(out, sizeof(out), "%s/ctl.out", cl->dir);
    static const char *const gen_args[] = {"--channels", "4", "--days", "2", "--seed", "7", NULL};
    generate(path, gen_args);
    const char *ctl = getenv("TVMW_CTL_BIN");
    IT_ASSERT(ctl != NULL, "TVMW_CTL_BIN is not set");
    char u[IT_ADDR_MAX + 16];
    it_node_url(cl, follower(), "", u, sizeof(u));
    it_fmt(server, sizeof(server), "%s", u);
    it_fmt(cid_src, sizeof(cid_src), "%llu", (unsigned long long)src_upload);
    const char *argv[] = {ctl,      "--server", server, "--token",  IT_TOKEN, "--json", "epg",
                          "import", cid_src,    path,   "--client", "1",      NULL};
    IT_ASSERT(run_cmd(argv, out) == 0, "tvmwctl epg import failed");
    size_t n_out;
    char *text = read_file(out, &n_out);
    json_t *ans = json_loads(text, 0, NULL);
    free(text);
    json_t *imp = json_object_get(ans, "import");
    IT_ASSERT(json_is_true(json_object_get(imp, "gzip")) &&
                  json_integer_value(json_object_get(imp, "channels")) == 3 &&
                  json_integer_value(json_object_get(imp, "programmes")) > 60,
              "tvmwctl import report");
    json_decref(ans);
    it_test_ok();
}

/* Every channel's programmes as one JSON text (to compare states). */
static char *guide_text(void)
{
    json_t *all = json_pack("[o, o, o]", programs(1, ch_a), programs(1, ch_b), programs(1, ch_c));
    char *t = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    return t;
}

static void test_hostile_documents(void **state)
{
    (void)state;
    static const char *const kinds[] = {"billion-laughs",
                                        "external-entity",
                                        "deep-nesting",
                                        "huge-attribute",
                                        "huge-text",
                                        "truncated",
                                        "bad-utf8",
                                        "wrong-encoding-declared",
                                        "not-xml",
                                        "empty",
                                        "wrong-root",
                                        "truncated-gzip",
                                        NULL};
    IT_ASSERT(it_wait_applied(cl, 10000), "no convergence");
    char *before = guide_text();
    uint64_t f = follower();
    for (const char *const *k = kinds; *k != NULL; k++) {
        char path[IT_PATH_MAX];
        it_fmt(path, sizeof(path), "%s/hostile-%s", cl->dir, *k);
        const char *args[] = {"--hostile", *k, NULL};
        generate(path, args);
        size_t len;
        char *doc = read_file(path, &len);
        struct it_resp r;
        upload(f, src_upload, doc, len, &r);
        free(doc);
        IT_ASSERT(r.status == 422 || (r.status == 413 && strncmp(*k, "huge", 4) == 0),
                  "%s: expected 422, got %ld: %.300s", *k, r.status, r.body);
        IT_ASSERT_ERROR(&r, r.status, r.status == 422 ? "invalid_xmltv" : "too_large");
        IT_ASSERT(strlen(it_resp_str(&r, "message")) > 5, "%s: no reason", *k);
        IT_ASSERT(report_int(&r, "batches") == 0, "%s: batches were proposed", *k);
        fprintf(stderr, "it_epg: %-24s -> %ld %s\n", *k, r.status, it_resp_str(&r, "message"));
        it_resp_close(&r);
    }
    IT_ASSERT(it_wait_applied(cl, 10000), "no convergence");
    char *after = guide_text();
    IT_ASSERT(strcmp(before, after) == 0, "a refused document changed the guide");
    free(after);
    json_t *src = admin_ok(1, "GET", "/admin/v1/clients/1/epg-sources/1", NULL, 200);
    IT_ASSERT(strcmp(str(json_object_get(src, "epg_source"), "last_status"), "error") == 0,
              "the source does not record the failure");
    json_decref(src);

    /* Broken programmes in a good document: the good one only. */
    char path[IT_PATH_MAX];
    it_fmt(path, sizeof(path), "%s/bad-programmes.xml", cl->dir);
    static const char *const bp[] = {"--hostile", "bad-programmes", NULL};
    generate(path, bp);
    size_t len;
    char *doc = read_file(path, &len);
    struct it_resp r;
    upload(f, src_upload, doc, len, &r);
    free(doc);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(report_int(&r, "skipped") == 5 && report_int(&r, "programmes") == 1 &&
                  json_array_size(
                      json_object_get(json_object_get(r.json, "import"), "skipped_examples")) == 5,
              "report: %s", r.body);
    it_resp_close(&r);

    /* Compressed, the huge ones pass the file limit and meet libxml2's own
     * limits; a small gzip that inflates past epg.max_xml_bytes is 413. */
    static const struct {
        const char *kind;
        long status;
        const char *error, *why;
    } gz[] = {{"huge-attribute", 422, "invalid_xmltv", "line"},
              {"huge-text", 422, "invalid_xmltv", "huge text"},
              {"bomb", 413, "too_large", "over"}};
    for (size_t i = 0; i < sizeof(gz) / sizeof(gz[0]); i++) {
        char p[IT_PATH_MAX];
        it_fmt(p, sizeof(p), "%s/hostile-%s.xml.gz", cl->dir, gz[i].kind);
        const char *args[] = {"--hostile", gz[i].kind, NULL};
        generate(p, args);
        size_t n;
        char *d = read_file(p, &n);
        IT_ASSERT(n < MAX_FILE, "%s.gz is %zu bytes", gz[i].kind, n);
        upload(f, src_upload, d, n, &r);
        free(d);
        IT_ASSERT_ERROR(&r, gz[i].status, gz[i].error);
        IT_ASSERT(strstr(it_resp_str(&r, "message"), gz[i].why) != NULL, "%s.gz: %s", gz[i].kind,
                  it_resp_str(&r, "message"));
        fprintf(stderr, "it_epg: %-24s -> %ld %s\n", p + strlen(cl->dir) + 9, r.status,
                it_resp_str(&r, "message"));
        it_resp_close(&r);
    }
    char *after_gz = guide_text();

    /* Over epg.max_file_bytes: refused before it is read. */
    size_t big = MAX_FILE + 4096;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    upload(f, src_upload, huge, big, &r);
    free(huge);
    IT_ASSERT_ERROR(&r, 413, "too_large");
    it_resp_close(&r);
    char *last = guide_text();
    IT_ASSERT(strcmp(after_gz, last) == 0, "a refused document changed the guide");
    free(after_gz);
    free(last);
    free(before);
    it_test_ok();
}

/* ---- a small XMLTV server --------------------------------------------------------------- */

struct web {
    pthread_mutex_t mu; /* guards everything below */
    char *doc;
    size_t len;
    char etag[32];
    int status; /* 0: serve the document */
    int hits, conditional_hits;
};

static struct web web = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void web_handle(void *ctx, struct tvmw_http_req *req)
{
    (void)ctx;
    pthread_mutex_lock(&web.mu);
    web.hits++;
    const char *inm = tvmw_http_header(req, "If-None-Match");
    if (web.status != 0) {
        tvmw_http_reply(req, (unsigned)web.status, "text/plain", "no", 2, NULL);
    } else if (inm != NULL && strcmp(inm, web.etag) == 0) {
        web.conditional_hits++;
        const char *h[] = {"ETag", web.etag, NULL};
        tvmw_http_reply(req, 304, NULL, "", 0, h);
    } else {
        const char *h[] = {"ETag", web.etag, NULL};
        tvmw_http_reply(req, 200, "application/gzip", web.doc, web.len, h);
    }
    pthread_mutex_unlock(&web.mu);
}

static void web_serve(const char *gen_seed, const char *etag)
{
    char path[IT_PATH_MAX];
    it_fmt(path, sizeof(path), "%s/web-%s.xml.gz", cl->dir, gen_seed);
    const char *args[] = {"--channels", "3", "--days", "1", "--seed", gen_seed, NULL};
    generate(path, args);
    size_t len;
    char *doc = read_file(path, &len);
    pthread_mutex_lock(&web.mu);
    free(web.doc);
    web.doc = doc;
    web.len = len;
    it_fmt(web.etag, sizeof(web.etag), "%s", etag);
    pthread_mutex_unlock(&web.mu);
}

static json_t *run_source(uint64_t node, uint64_t sid, long want)
{
    char path[128];
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/epg-sources/%llu/run", (unsigned long long)sid);
    return admin_ok(node, "POST", path, NULL, want);
}

static void test_url_source(void **state)
{
    (void)state;
    struct tvmw_http_server *srv;
    struct tvmw_http_server_conf hc = {.address = WEB_ADDR,
                                       .max_body_bytes = 1024,
                                       .max_connections = 16,
                                       .idle_timeout_s = 10,
                                       .thread_per_connection = true};
    IT_ASSERT(tvmw_http_server_start(&hc, web_handle, NULL, &srv) == 0, "web server");
    web_serve("11", "\"v1\"");
    json_t *o = admin_ok(1, "POST", "/admin/v1/clients/1/epg-sources",
                         "{\"name\":\"Web\",\"url\":\"http://" WEB_ADDR "/guide.xml.gz\","
                         "\"interval_s\":0}",
                         201);
    uint64_t sid =
        (uint64_t)json_integer_value(json_object_get(json_object_get(o, "epg_source"), "id"));
    json_decref(o);
    uint64_t f = follower();
    o = run_source(f, sid, 200);
    json_t *imp = json_object_get(o, "import");
    IT_ASSERT(strcmp(str(imp, "status"), "ok") == 0 &&
                  json_integer_value(json_object_get(imp, "http_status")) == 200 &&
                  json_is_true(json_object_get(imp, "gzip")) &&
                  json_integer_value(json_object_get(imp, "channels")) == 2,
              "first run: %s", json_dumps(imp, JSON_COMPACT));
    json_decref(o);
    o = run_source(f, sid, 200); /* conditional GET with the stored ETag */
    IT_ASSERT(strcmp(str(json_object_get(o, "import"), "status"), "not_modified") == 0,
              "second run was not a 304");
    json_decref(o);
    pthread_mutex_lock(&web.mu);
    int cond = web.conditional_hits;
    pthread_mutex_unlock(&web.mu);
    IT_ASSERT(cond == 1, "conditional hits %d", cond);
    web_serve("12", "\"v2\"");
    o = run_source(1, sid, 200);
    imp = json_object_get(o, "import");
    IT_ASSERT(strcmp(str(imp, "status"), "ok") == 0 &&
                  json_integer_value(json_object_get(imp, "updated")) +
                          json_integer_value(json_object_get(imp, "inserted")) >
                      0,
              "changed document");
    json_decref(o);
    pthread_mutex_lock(&web.mu);
    web.status = 404;
    pthread_mutex_unlock(&web.mu);
    o = run_source(f, sid, 502);
    IT_ASSERT(strcmp(str(o, "error"), "fetch_failed") == 0 &&
                  strstr(str(o, "message"), "404") != NULL,
              "404 source");
    json_decref(o);
    pthread_mutex_lock(&web.mu);
    web.status = 0;
    int hits = web.hits;
    pthread_mutex_unlock(&web.mu);

    /* Scheduled: every second, by the leader alone. */
    char path[128];
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/epg-sources/%llu", (unsigned long long)sid);
    json_decref(admin_ok(1, "PATCH", path, "{\"interval_s\":1}", 200));
    uint64_t t0 = it_now_ms();
    for (;;) {
        pthread_mutex_lock(&web.mu);
        int now_hits = web.hits;
        pthread_mutex_unlock(&web.mu);
        if (now_hits >= hits + 2) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 15000, "the scheduler did not download the source");
        it_sleep_ms(100);
    }
    json_decref(admin_ok(1, "PATCH", path, "{\"enabled\":0}", 200));
    o = admin_ok(2, "GET", path, NULL, 200);
    json_t *s = json_object_get(o, "epg_source");
    IT_ASSERT(json_integer_value(json_object_get(s, "last_run_ms")) > 0 &&
                  strcmp(str(s, "etag"), "\"v2\"") == 0,
              "scheduled run not recorded");
    json_decref(o);
    tvmw_http_server_stop(srv);
    it_test_ok();
}

/* ---- main -------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    static char extra[512];
    snprintf(extra, sizeof(extra),
             "{\"epg\": {\"check_interval_ms\": 300, \"expire_days\": 2, \"max_file_bytes\": %u,"
             " \"max_xml_bytes\": %u},"
             " \"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE_ADDR "\","
             " \"datacenter\": \"dc1\"}]}",
             MAX_FILE, MAX_XML);
    struct it_opts o = {
        .n_nodes = N_NODES, .base_port = BASE_PORT, .name = "epg", .extra_config = extra};
    cl = it_cluster_new(&o);
    if (cl == NULL || it_wait_all_ready(cl, 20000) == 0) {
        return -1;
    }
    base = (int64_t)time(NULL) / HOUR * HOUR;
    json_decref(admin_ok(1, "POST", "/admin/v1/clients", "{\"name\":\"epg\"}", 201));
    ch_a = make_channel("A", "ch1.tvmw", 0);
    ch_b = make_channel("B", "ch2.tvmw", CH2_CORR);
    ch_c = make_channel("C", "", 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    edge_stop();
    if (it_any_failed && edge_log[0] != '\0') {
        char cmd[IT_PATH_MAX + 32];
        it_fmt(cmd, sizeof(cmd), "tail -n 40 %s 1>&2", edge_log);
        if (system(cmd) != 0) {
            fprintf(stderr, "(no edge log)\n");
        }
    }
    it_group_done(cl);
    it_cluster_free(cl);
    free(web.doc);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_to_follower, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_reimport_replaces, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_documents, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_url_source, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
