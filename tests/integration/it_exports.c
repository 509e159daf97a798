/*
 * it_exports: the players' exports of an edge (shared/spec/exports.md)
 * against a real 3-node control plane and a real tvmw-edge, checked by the
 * tools players and operators use:
 *
 * test_exports: XMLTV (/xmltv.php, /epg/xmltv.xml, .gz and gzip transfer)
 *   validated by tv_validate_file and tv_sort (Debian xmltv-util); the
 *   native M3U and the Xtream get.php playlist parsed by two npm player
 *   parsers (iptv-playlist-parser, @iptv/playlist); the player API read
 *   by the npm Xtream client (@iptv/xtream-api, raw and standardized);
 *   the same channels, ids, groups and programme counts in all of them;
 *   stream URLs in the playlist and the 302s of /live/ and /timeshift/
 *   carry tokens that the edge's token check accepts.
 * test_denied: bad, missing and inactive credentials get each format's
 *   refusal (player API auth 0, 401/403 elsewhere); channels outside the
 *   tariff, unknown streams, times outside the archive and malformed
 *   URLs are refused; the edge keeps serving.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN, TVMW_PLAYERS_DIR (the npm
 * packages, installed by scripts/install-deps.sh). Ports 28500..28699.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "it_billing.h"
#include "it_calls.h"
#include "it_cmocka.h"
#include "it_edge.h"

#define BASE_PORT 28500 /* cp HTTP 28501..3, raft 28601..3 */
#define EDGE_ADDR "127.0.0.1:28551"
#define BKEY      "exports-billing-key-1"
#define APIKEY    "exports-api-key-0123456789"
#define USER      "200001"
#define PASS      "s3cret"
#define PASS_Q    PASS
#define PASS_PATH PASS
#define USER2     "200004"
#define PASS2     "p&ss w/rd" /* percent-encoded in every URL */
#define PASS2_Q   "p%26ss%20w%2Frd"
#define SLUG      "acme-tv"
#define CHECK     "/tvmiddleware/api/streamservice/token/check/"
#define N_PROGS_A 9
#define N_PROGS_B 5

static struct it_cluster *cl;
static struct it_edge edge;
static struct it_bl_client c1 = {.id = 1, .key = BKEY};
static long long ch_a, ch_b, ch_c, ch_d, ch_e, cat_news, cat_sport, tariff;
static time_t base_hour;

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "(none)";
}

/* GET http://EDGE<pq> with optional extra headers. */
static void eget(const char *pq, const char *const *headers, struct it_resp *r)
{
    char url[4096];
    it_fmt(url, sizeof(url), "http://%s%s", edge.addr, pq);
    it_http("GET", url, NULL, 0, headers, 10000, r);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    IT_ASSERT(f != NULL && fwrite(data, 1, len, f) == len, "write %s", path);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return strdup("");
    }
    char *s = malloc(1 << 20);
    size_t n = s ? fread(s, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (s != NULL) {
        s[n] = '\0';
    }
    return s;
}

/* Runs a shell command line; its output goes to out_path. Exit status. */
static int shell(const char *cmd, const char *out_path)
{
    char line[4096];
    it_fmt(line, sizeof(line), "%s >'%s' 2>&1", cmd, out_path);
    int st = system(line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char tmp_dir[IT_PATH_MAX];

static void tmp_path(const char *name, char *out, size_t cap)
{
    it_fmt(out, cap, "%s/%s", tmp_dir, name);
}

/* Runs one of the npm checks and returns its JSON output. */
static json_t *node_check(const char *script, const char *args)
{
    const char *dir = getenv("TVMW_PLAYERS_DIR");
    IT_ASSERT(dir != NULL, "TVMW_PLAYERS_DIR is not set");
    char nm[IT_PATH_MAX], cmd[2048], out[IT_PATH_MAX];
    struct stat st;
    it_fmt(nm, sizeof(nm), "%s/node_modules", dir);
    IT_ASSERT(stat(nm, &st) == 0, "%s missing: run scripts/install-deps.sh", nm);
    it_fmt(cmd, sizeof(cmd), "node '%s/%s' %s", dir, script, args);
    tmp_path("node.out", out, sizeof(out));
    int rc = shell(cmd, out);
    char *text = read_file(out);
    json_t *o = json_loads(text, 0, NULL);
    IT_ASSERT(rc == 0 && o != NULL, "%s: rc %d: %.2000s", cmd, rc, text);
    free(text);
    return o;
}

/* Counts non-overlapping occurrences of needle. */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

/* The value of the query parameter name in url (copied into out). */
static const char *query_param(const char *url, const char *name, char *out, size_t cap)
{
    char key[64];
    it_fmt(key, sizeof(key), "%s=", name);
    const char *q = strchr(url, '?');
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, key, strlen(key)) == 0) {
            const char *v = p + 1 + strlen(key);
            size_t n = strcspn(v, "&#");
            it_fmt(out, cap, "%.*s", (int)n, v);
            return out;
        }
    }
    out[0] = '\0';
    return NULL;
}

/* The edge's token check accepts the token of url for stream name. */
static void token_accepted(const char *url, const char *name)
{
    char token[256], pq[600];
    IT_ASSERT(query_param(url, "token", token, sizeof(token)) && strlen(token) > 40,
              "no token in %s", url);
    it_fmt(pq, sizeof(pq), CHECK "?token=%s&name=%s", token, name);
    struct it_resp r;
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == 200, "token check of %s for %s: HTTP %ld %s", url, name, r.status,
              r.body ? r.body : "");
    it_resp_close(&r);
    it_fmt(pq, sizeof(pq), CHECK "?token=%s&name=other", token);
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == 403, "a token for %s opened another stream: HTTP %ld", name, r.status);
    it_resp_close(&r);
}

/* ---- setup -------------------------------------------------------------------------------------
 */

static void xmltv_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y%m%d%H%M%S +0000", &tm);
}

static void make_catalogue(void)
{
    it_admin_expect(cl, "POST", "/admin/v1/clients",
                    "{\"name\":\"Acme TV\",\"api_key\":\"" APIKEY "\",\"billing_api_key\":\"" BKEY
                    "\"}",
                    201, NULL);
    cat_news = it_admin_create(cl, "/admin/v1/clients/1/categories", "category",
                               "{\"name\":\"Новости & \\\"News\\\"\",\"order\":1}");
    cat_sport = it_admin_create(cl, "/admin/v1/clients/1/categories", "category",
                                "{\"name\":\"Sport\",\"order\":2}");
    char body[1024];
    it_fmt(body, sizeof(body),
           "{\"name\":\"Первый, \\\"HD\\\" & Co\",\"number\":1,\"stream_name\":\"first\","
           "\"archive_days\":7,\"icon\":\"/media/first.png\",\"category_id\":%lld}",
           cat_news);
    ch_a = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel", body);
    it_fmt(body, sizeof(body),
           "{\"name\":\"Second\",\"number\":2,\"stream_name\":\"second\","
           "\"icon\":\"http://img.example/second.png\",\"category_id\":%lld}",
           cat_sport);
    ch_b = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel", body);
    ch_c =
        it_admin_create(cl, "/admin/v1/clients/1/channels", "channel",
                        "{\"name\":\"Third <no guide>\",\"number\":3,\"stream_name\":\"third\"}");
    ch_d = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel",
                           "{\"name\":\"Premium\",\"number\":4,\"stream_name\":\"premium\"}");
    ch_e = it_admin_create(
        cl, "/admin/v1/clients/1/channels", "channel",
        "{\"name\":\"Off air\",\"number\":5,\"stream_name\":\"off\",\"enabled\":0}");
    long long svc =
        it_admin_create(cl, "/admin/v1/clients/1/streaming-services", "streaming_service",
                        "{\"name\":\"fl\",\"type\":\"flussonic\",\"url_masks\":"
                        "{\"live\":\"http://fl.example/$cid/index.m3u8?token=$token\",\"archive\":"
                        "\"http://fl.example/$cid/video-$flpbt-$flpdur.m3u8?token=$token\"}}");
    json_t *o;
    it_admin_expect(cl, "POST", "/admin/v1/clients/1/tariffs",
                    "{\"name\":\"Basic\",\"period\":1,\"price\":0,\"sessions_count\":2,"
                    "\"basic_sessions_count\":1,\"basic_tariff_priority\":5}",
                    200, &o);
    tariff = it_jint(o, "id");
    json_decref(o);
    IT_ASSERT(tariff > 0, "tariff id");
    char path[128];
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld,%lld,%lld]}", ch_a, ch_b, ch_c, ch_e);
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/tariffs/%lld/channels", tariff);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
    it_fmt(body, sizeof(body), "{\"ids\":[%lld]}", svc);
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/tariffs/%lld/streaming-services", tariff);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
}

static void make_account(const char *abonement, const char *password)
{
    char t[24], cust[24];
    it_fmt(t, sizeof(t), "%lld", tariff);
    json_t *o =
        it_billing_ok(cl, &c1, "customer/create", IT_KV("firstname", "Ann", "lastname", abonement));
    it_fmt(cust, sizeof(cust), "%lld", it_jint(o, "id"));
    json_decref(o);
    json_decref(
        it_billing_ok(cl, &c1, "account/create",
                      IT_KV("customer_id", cust, "abonement", abonement, "password", password)));
    json_decref(it_billing_ok(cl, &c1, "customer/tariff/assign",
                              IT_KV("customer_id", cust, "tariff_id", t)));
}

/* A guide for A (9 hours around now, rich fields) and B (5 hours). */
static void upload_epg(void)
{
    char body[512], path[128];
    it_fmt(body, sizeof(body),
           "{\"name\":\"guide\",\"channel_map\":[{\"xmltv_id\":\"a.src\",\"channel_id\":%lld},"
           "{\"xmltv_id\":\"b.src\",\"channel_id\":%lld}]}",
           ch_a, ch_b);
    long long src = it_admin_create(cl, "/admin/v1/clients/1/epg-sources", "epg_source", body);
    size_t cap = 64 * 1024, len = 0;
    char *doc = malloc(cap);
    IT_ASSERT(doc != NULL, "malloc");
    len += (size_t)snprintf(doc + len, cap - len,
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tv>"
                            "<channel id=\"a.src\"><display-name>A</display-name></channel>"
                            "<channel id=\"b.src\"><display-name>B</display-name></channel>\n");
    char t0[32], t1[32];
    for (int i = 0; i < N_PROGS_A; i++) {
        xmltv_time(base_hour + (i - 3) * 3600, t0);
        xmltv_time(base_hour + (i - 2) * 3600, t1);
        if (i == 3) { /* on now: every field the export writes */
            len += (size_t)snprintf(
                doc + len, cap - len,
                "<programme start=\"%s\" stop=\"%s\" channel=\"a.src\">"
                "<title lang=\"ru\">Новости &amp; &lt;погода&gt;</title>"
                "<sub-title lang=\"ru\">Выпуск \"12:00\"</sub-title>"
                "<desc lang=\"ru\">Главные события дня.</desc><date>20260101</date>"
                "<category lang=\"ru\">News</category>"
                "<icon src=\"http://img.example/p/555.jpg\"/>"
                "<episode-num system=\"xmltv_ns\">0.11.</episode-num>"
                "<episode-num system=\"onscreen\">S01E12</episode-num>"
                "<rating system=\"RU\"><value>16+</value></rating></programme>\n",
                t0, t1);
        } else {
            len += (size_t)snprintf(doc + len, cap - len,
                                    "<programme start=\"%s\" stop=\"%s\" channel=\"a.src\">"
                                    "<title>A show %d</title>%s</programme>\n",
                                    t0, t1, i, i % 2 ? "<desc>Something</desc>" : "");
        }
    }
    for (int i = 0; i < N_PROGS_B; i++) {
        xmltv_time(base_hour + (i - 2) * 3600, t0);
        xmltv_time(base_hour + (i - 1) * 3600, t1);
        len += (size_t)snprintf(doc + len, cap - len,
                                "<programme start=\"%s\" stop=\"%s\" channel=\"b.src\">"
                                "<title>B show %d</title></programme>\n",
                                t0, t1, i);
    }
    len += (size_t)snprintf(doc + len, cap - len, "</tv>\n");
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/epg-sources/%lld/upload", src);
    struct it_resp r;
    static const char *const xml[] = {"Content-Type: application/xml", NULL};
    it_admin(cl, 1, "POST", path, doc, xml, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    free(doc);
}

/* Waits until the edge serves the whole guide of A and B. */
static void wait_guide(void)
{
    uint64_t t0 = it_now_ms();
    for (;;) {
        char pq[512];
        struct it_resp r;
        size_t na = 0, nb = 0;
        for (int i = 0; i < 2; i++) {
            it_fmt(pq, sizeof(pq),
                   "/player_api.php?username=" USER "&password=" PASS_Q
                   "&action=get_simple_data_table&stream_id=%lld",
                   i ? ch_b : ch_a);
            eget(pq, NULL, &r);
            size_t n = json_array_size(json_object_get(r.json, "epg_listings"));
            *(i ? &nb : &na) = n;
            it_resp_close(&r);
        }
        if (na == N_PROGS_A && nb == N_PROGS_B) {
            return;
        }
        IT_ASSERT(it_now_ms() - t0 < 15000, "the guide did not reach the edge: %zu/%zu", na, nb);
        it_sleep_ms(100);
    }
}

static void setup(void)
{
    struct it_opts o = {
        .n_nodes = 3,
        .base_port = BASE_PORT,
        .name = "exports",
        .extra_config = "{\"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE_ADDR "\"}]}",
    };
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    it_fmt(tmp_dir, sizeof(tmp_dir), "%s", cl->dir);
    time_t now = time(NULL);
    base_hour = now - now % 3600;
    make_catalogue();
    make_account(USER, PASS);
    make_account("200002", "debt");
    make_account(USER2, PASS2);
    json_decref(
        it_billing_ok(cl, &c1, "account/modify",
                      IT_KV("abonement", "200002", "active", "0", "status_reason", "DEBT")));
    upload_epg();
    it_edge_define(&edge, cl->dir, cl->config_path, "e1", EDGE_ADDR);
    it_edge_start(&edge);
    IT_ASSERT(it_edge_wait_health(&edge, "ok", 15000), "edge never ok");
    /* the deactivation was the last account write: wait for it */
    uint64_t t0 = it_now_ms();
    for (;;) {
        struct it_resp r;
        eget("/player_api.php?username=200002&password=debt", NULL, &r);
        const char *st = jstr(json_object_get(r.json, "user_info"), "status");
        bool done = strcmp(st, "Expired") == 0;
        it_resp_close(&r);
        if (done) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 15000, "the accounts did not reach the edge (%s)", st);
        it_sleep_ms(100);
    }
    wait_guide();
}

/* ---- test 1 ------------------------------------------------------------------------------ */

/* Validates an XMLTV file with tv_validate_file and tv_sort (spec §1.4). */
static void validate_xmltv(const char *file)
{
    char cmd[1024], out[IT_PATH_MAX];
    tmp_path("validate.out", out, sizeof(out));
    it_fmt(cmd, sizeof(cmd), "XMLTV_SUPPLEMENT=/usr/share/xmltv tv_validate_file '%s'", file);
    int rc = shell(cmd, out);
    char *text = read_file(out);
    IT_ASSERT(rc == 0 && strstr(text, "Validated ok") != NULL,
              "tv_validate_file %s: rc %d: %.3000s", file, rc, text);
    free(text);
    it_fmt(cmd, sizeof(cmd), "XMLTV_SUPPLEMENT=/usr/share/xmltv tv_sort --output /dev/null '%s'",
           file);
    rc = shell(cmd, out);
    text = read_file(out);
    IT_ASSERT(rc == 0 && strstr(text, "overlapping") == NULL, "tv_sort %s: rc %d: %.3000s", file,
              rc, text);
    free(text);
}

/* The XMLTV of the account: returns the document (malloc'd). */
static char *check_xmltv(void)
{
    struct it_resp r;
    char file[IT_PATH_MAX], hdr[128];
    eget("/xmltv.php?username=" USER "&password=" PASS_Q, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(it_resp_header(&r, "Content-Type", hdr, sizeof(hdr)) &&
                  strncmp(hdr, "application/xml", 15) == 0,
              "content type %s", hdr);
    tmp_path("guide.xml", file, sizeof(file));
    write_file(file, r.body, r.len);
    validate_xmltv(file);
    char *doc = strdup(r.body);
    it_resp_close(&r);

    /* two channels with a guide (C has none, D is not in the tariff, E
     * is disabled), ids of the shared scheme, every programme */
    char want[160];
    IT_ASSERT(count(doc, "<channel id=") == 2, "channels in the XMLTV: %zu",
              count(doc, "<channel id="));
    it_fmt(want, sizeof(want), "<channel id=\"%lld." SLUG "\">", ch_a);
    IT_ASSERT(strstr(doc, want) != NULL, "channel A as %s", want);
    it_fmt(want, sizeof(want), "channel=\"%lld." SLUG "\"", ch_a);
    IT_ASSERT(count(doc, want) == N_PROGS_A, "A's programmes: %zu", count(doc, want));
    it_fmt(want, sizeof(want), "channel=\"%lld." SLUG "\"", ch_b);
    IT_ASSERT(count(doc, want) == N_PROGS_B, "B's programmes: %zu", count(doc, want));
    IT_ASSERT(strstr(doc, "<display-name>Первый, &quot;HD&quot; &amp; Co</display-name>") &&
                  strstr(doc, "<icon src=\"http://" EDGE_ADDR "/media/first.png\"/>") &&
                  strstr(doc, "<title lang=\"ru\">Новости &amp; &lt;погода&gt;</title>") &&
                  strstr(doc, "<episode-num system=\"xmltv_ns\">0.11.</episode-num>") &&
                  strstr(doc, "<rating><value>16+</value></rating>") &&
                  strstr(doc, " +0000\" stop=\"") && !strstr(doc, "Third"),
              "XMLTV content: %.3000s", doc);

    /* the native URL gives the same document, also gzipped */
    eget("/epg/xmltv.xml?username=" USER "&password=" PASS_Q, NULL, &r);
    IT_ASSERT(r.status == 200 && strcmp(r.body, doc) == 0, "native XMLTV differs");
    it_resp_close(&r);
    eget("/epg/xmltv.xml.gz?username=" USER "&password=" PASS_Q, NULL, &r);
    IT_ASSERT(r.status == 200 && r.len > 2 && (unsigned char)r.body[0] == 0x1f &&
                  (unsigned char)r.body[1] == 0x8b,
              "xmltv.xml.gz is not gzip: HTTP %ld", r.status);
    tmp_path("guide.xml.gz", file, sizeof(file));
    write_file(file, r.body, r.len);
    it_resp_close(&r);
    char cmd[1024], plain[IT_PATH_MAX];
    tmp_path("guide-gz.xml", plain, sizeof(plain));
    it_fmt(cmd, sizeof(cmd), "gzip -dc '%s'", file);
    IT_ASSERT(shell(cmd, plain) == 0, "gunzip");
    char *unz = read_file(plain);
    IT_ASSERT(strcmp(unz, doc) == 0, "the .gz is another document");
    free(unz);
    static const char *const gz[] = {"Accept-Encoding: gzip", NULL};
    eget("/xmltv.php?username=" USER "&password=" PASS_Q, gz, &r);
    IT_ASSERT(r.status == 200 && it_resp_header(&r, "Content-Encoding", hdr, sizeof(hdr)) &&
                  strcmp(hdr, "gzip") == 0 && (unsigned char)r.body[0] == 0x1f,
              "gzip transfer: HTTP %ld", r.status);
    it_resp_close(&r);
    /* days and channels of the native form */
    char pq[256];
    it_fmt(pq, sizeof(pq), "/epg/xmltv.xml?username=" USER "&password=" PASS_Q "&channels=%lld",
           ch_b);
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == 200 && count(r.body, "<channel id=") == 1 &&
                  count(r.body, "<programme ") == N_PROGS_B,
              "channels=: %.500s", r.body);
    tmp_path("guide-b.xml", file, sizeof(file));
    write_file(file, r.body, r.len);
    validate_xmltv(file);
    it_resp_close(&r);
    return doc;
}

/* One parser's view of a playlist: entries for A, B, C in that order. */
static void check_parsed_playlist(const json_t *p, const char *which, bool xc)
{
    const json_t *items = json_object_get(p, "items");
    IT_ASSERT(json_array_size(items) == 3, "%s: %zu entries", which, json_array_size(items));
    const char *guide = jstr(json_object_get(p, "header"), "x-tvg-url");
    char want[256];
    it_fmt(want, sizeof(want), "http://" EDGE_ADDR "%s?username=" USER "&password=" PASS_Q,
           xc ? "/xmltv.php" : "/epg/xmltv.xml");
    IT_ASSERT(strcmp(guide, want) == 0, "%s: x-tvg-url %s, wanted %s", which, guide, want);
    long long ids[3] = {ch_a, ch_b, ch_c};
    for (size_t i = 0; i < 3; i++) {
        const json_t *it = json_array_get(items, i);
        it_fmt(want, sizeof(want), "%lld." SLUG, ids[i]);
        IT_ASSERT(strcmp(jstr(it, "tvg_id"), want) == 0, "%s: tvg-id %s", which,
                  jstr(it, "tvg_id"));
        const char *url = jstr(it, "url");
        if (xc) {
            it_fmt(want, sizeof(want), "http://" EDGE_ADDR "/live/" USER "/" PASS_PATH "/%lld.ts",
                   ids[i]);
            IT_ASSERT(strcmp(url, want) == 0, "%s: url %s, wanted %s", which, url, want);
        } else {
            static const char *const names[] = {"first", "second", "third"};
            it_fmt(want, sizeof(want), "http://fl.example/%s/index.m3u8?token=", names[i]);
            IT_ASSERT(strncmp(url, want, strlen(want)) == 0, "%s: url %s", which, url);
        }
    }
    const json_t *a = json_array_get(items, 0), *b = json_array_get(items, 1);
    IT_ASSERT(strcmp(jstr(a, "name"), "Первый HD & Co") == 0 &&
                  strcmp(jstr(a, "tvg_name"), "Первый, 'HD' & Co") == 0 &&
                  strcmp(jstr(a, "tvg_logo"), "http://" EDGE_ADDR "/media/first.png") == 0 &&
                  strcmp(jstr(a, "group"), "Новости & 'News'") == 0 &&
                  strcmp(jstr(b, "group"), "Sport") == 0 &&
                  strcmp(jstr(json_array_get(items, 2), "group"), "") == 0,
              "%s: names, logo, groups: %s", which, json_dumps(a, 0));
    IT_ASSERT(strcmp(jstr(a, "catchup"), xc ? "xc" : "default") == 0 &&
                  strcmp(jstr(a, "catchup_days"), "7") == 0 &&
                  (json_string_value(json_object_get(b, "catchup")) == NULL ||
                   json_string_length(json_object_get(b, "catchup")) == 0),
              "%s: catch-up attributes: %s / %s", which, json_dumps(a, 0), json_dumps(b, 0));
    if (xc) {
        IT_ASSERT(strcmp(jstr(a, "timeshift"), "7") == 0, "%s: timeshift", which);
    } else {
        const char *src = jstr(a, "catchup_source");
        IT_ASSERT(strncmp(src, "http://fl.example/first/video-{utc}-{duration}.m3u8?token=", 58) ==
                      0,
                  "%s: catchup-source %s", which, src);
    }
}

/* The native M3U: parsed by both npm parsers; tokens accepted. */
static void check_playlist(void)
{
    struct it_resp r;
    char file[IT_PATH_MAX], hdr[128], args[IT_PATH_MAX + 8];
    eget("/playlist.m3u8?username=" USER "&password=" PASS_Q, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(it_resp_header(&r, "Content-Type", hdr, sizeof(hdr)) &&
                  strcmp(hdr, "audio/x-mpegurl") == 0,
              "content type %s", hdr);
    IT_ASSERT(strncmp(r.body, "#EXTM3U x-tvg-url=\"", 19) == 0 && strstr(r.body, "\r") == NULL &&
                  strstr(r.body, "\n\n") == NULL && strstr(r.body, "  ") == NULL &&
                  strstr(r.body, " ,") == NULL,
              "M3U form (header, LF, no blank lines, single spaces): %.1000s", r.body);
    tmp_path("native.m3u", file, sizeof(file));
    write_file(file, r.body, r.len);
    it_resp_close(&r);
    it_fmt(args, sizeof(args), "'%s'", file);
    json_t *o = node_check("check_m3u.mjs", args);
    check_parsed_playlist(json_object_get(o, "iptv-playlist-parser"), "iptv-playlist-parser",
                          false);
    check_parsed_playlist(json_object_get(o, "@iptv/playlist"), "@iptv/playlist", false);
    const json_t *items = json_object_get(json_object_get(o, "@iptv/playlist"), "items");
    IT_ASSERT(strcmp(jstr(json_array_get(items, 0), "tvg_chno"), "1") == 0, "tvg-chno");
    /* the streamer would accept what the playlist carries */
    static const char *const names[] = {"first", "second", "third"};
    for (size_t i = 0; i < 3; i++) {
        token_accepted(jstr(json_array_get(items, i), "url"), names[i]);
    }
    token_accepted(jstr(json_array_get(items, 0), "catchup_source"), "first");
    json_decref(o);
}

/* get.php (m3u_plus and m3u): parsed by both parsers; /live/ URLs
 * redirect with a token. */
static void check_xc_playlist(void)
{
    struct it_resp r;
    char file[IT_PATH_MAX], args[IT_PATH_MAX + 8], loc[1024];
    eget("/get.php?username=" USER "&password=" PASS_Q "&type=m3u_plus&output=ts", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(strstr(r.body, "\r\n") != NULL, "CRLF line ends");
    tmp_path("xc.m3u", file, sizeof(file));
    write_file(file, r.body, r.len);
    it_resp_close(&r);
    it_fmt(args, sizeof(args), "'%s'", file);
    json_t *o = node_check("check_m3u.mjs", args);
    check_parsed_playlist(json_object_get(o, "iptv-playlist-parser"), "get.php/parser", true);
    check_parsed_playlist(json_object_get(o, "@iptv/playlist"), "get.php/@iptv", true);
    json_decref(o);
    eget("/get.php?username=" USER "&password=" PASS_Q "&type=m3u&output=hls", NULL, &r);
    IT_ASSERT(r.status == 200 && count(r.body, "#EXTINF:-1,") == 3 &&
                  strstr(r.body, "/live/" USER "/" PASS_PATH "/") != NULL &&
                  strstr(r.body, ".m3u8\r\n") != NULL && strstr(r.body, "tvg-id") == NULL,
              "plain m3u: %.600s", r.body);
    it_resp_close(&r);

    /* live: 302 to the streamer with a token it would accept; also the
     * bare form and .ts */
    for (size_t i = 0; i < 3; i++) {
        char pq[256];
        it_fmt(pq, sizeof(pq), "%s%lld%s",
               i < 2 ? "/live/" USER "/" PASS_PATH "/" : "/" USER "/" PASS_PATH "/", ch_a,
               i == 0   ? ".m3u8"
               : i == 1 ? ".ts"
                        : "");
        eget(pq, NULL, &r);
        IT_ASSERT(r.status == 302 && it_resp_header(&r, "Location", loc, sizeof(loc)) &&
                      strncmp(loc, "http://fl.example/first/index.m3u8?token=", 41) == 0,
                  "%s: HTTP %ld to %s", pq, r.status, loc);
        it_resp_close(&r);
        token_accepted(loc, "first");
    }

    /* a password that needs encoding ('&', ' ', '/'): in the query and in
     * the path, as the playlist writes it */
    eget("/get.php?username=" USER2 "&password=" PASS2_Q "&type=m3u_plus", NULL, &r);
    IT_ASSERT(r.status == 200 &&
                  strstr(r.body, "xmltv.php?username=" USER2 "&password=" PASS2_Q "\"") != NULL,
              "guide URL with an encoded password: %.400s", r.body);
    char live[256];
    const char *u = strstr(r.body, "http://" EDGE_ADDR "/live/");
    IT_ASSERT(u != NULL, "a live URL");
    it_fmt(live, sizeof(live), "%.*s", (int)strcspn(u, "\r\n"), u);
    it_fmt(loc, sizeof(loc), "/live/%s/%s/%lld.ts", USER2, PASS2_Q, ch_a);
    IT_ASSERT(strcmp(live + strlen("http://" EDGE_ADDR), loc) == 0, "live URL %s", live);
    it_resp_close(&r);
    it_http("GET", live, NULL, 0, NULL, 10000, &r);
    IT_ASSERT(r.status == 302, "%s: HTTP %ld", live, r.status);
    it_resp_close(&r);
    eget("/xmltv.php?username=" USER2 "&password=" PASS2_Q, NULL, &r);
    IT_ASSERT(r.status == 200 && count(r.body, "<channel id=") == 2, "guide of %s", USER2);
    it_resp_close(&r);
}

/* The player API through the npm client, and its raw JSON types. */
static void check_player_api(void)
{
    json_t *o = node_check("check_xtream.mjs", "'http://" EDGE_ADDR "' '" USER "' '" PASS "'");
    IT_ASSERT(json_object_get(o, "error") == NULL, "xtream client: %s", json_dumps(o, 0));
    const json_t *prof = json_object_get(o, "profile"), *srv = json_object_get(o, "server");
    IT_ASSERT(it_jint(prof, "auth") == 1 && strcmp(jstr(prof, "status"), "Active") == 0 &&
                  strcmp(jstr(prof, "username"), USER) == 0 &&
                  json_is_null(json_object_get(prof, "exp_date")) &&
                  json_is_string(json_object_get(prof, "created_at")) &&
                  strcmp(jstr(prof, "max_connections"), "3") == 0 &&
                  json_array_size(json_object_get(prof, "allowed_output_formats")) == 2,
              "profile: %s", json_dumps(prof, 0));
    IT_ASSERT(strcmp(jstr(srv, "url"), "127.0.0.1") == 0 &&
                  strcmp(jstr(srv, "port"), "28551") == 0 &&
                  strcmp(jstr(srv, "timezone"), "UTC") == 0 &&
                  llabs((long long)json_integer_value(json_object_get(srv, "timestamp_now")) -
                        (long long)time(NULL)) < 60,
              "server info: %s", json_dumps(srv, 0));

    const json_t *cats = json_object_get(o, "categories");
    IT_ASSERT(json_array_size(cats) == 2 &&
                  atoll(jstr(json_array_get(cats, 0), "id")) == cat_news &&
                  strcmp(jstr(json_array_get(cats, 1), "name"), "Sport") == 0,
              "categories: %s", json_dumps(cats, 0));
    const json_t *chans = json_object_get(o, "channels");
    IT_ASSERT(json_array_size(chans) == 3, "%zu live streams", json_array_size(chans));
    const json_t *a = json_array_get(chans, 0), *c = json_array_get(chans, 2);
    char want[128];
    it_fmt(want, sizeof(want), "%lld." SLUG, ch_a);
    IT_ASSERT(
        it_jint(a, "stream_id") == ch_a && it_jint(a, "num") == 1 &&
            strcmp(jstr(a, "epg_channel_id"), want) == 0 &&
            strcmp(jstr(a, "stream_type"), "live") == 0 && it_jint(a, "tv_archive") == 1 &&
            it_jint(a, "tv_archive_duration") == 7 && atoll(jstr(a, "category_id")) == cat_news &&
            json_integer_value(json_array_get(json_object_get(a, "category_ids"), 0)) == cat_news &&
            json_is_string(json_object_get(a, "added")) &&
            strcmp(jstr(a, "name"), "Первый, \"HD\" & Co") == 0,
        "live stream A: %s", json_dumps(a, 0));
    IT_ASSERT(it_jint(c, "stream_id") == ch_c && it_jint(c, "tv_archive") == 0 &&
                  json_array_size(json_object_get(c, "category_ids")) == 0,
              "live stream C: %s", json_dumps(c, 0));
    it_fmt(want, sizeof(want), "http://" EDGE_ADDR "/live/" USER "/" PASS "/%lld.m3u8", ch_a);
    IT_ASSERT(strcmp(jstr(a, "url"), want) == 0, "client URL %s", jstr(a, "url"));

    /* EPG, base64-decoded by the client */
    char key[24];
    it_fmt(key, sizeof(key), "%lld", ch_a);
    const json_t *sa = json_object_get(json_object_get(o, "short_epg"), key);
    const json_t *fa = json_object_get(json_object_get(o, "full_epg"), key);
    IT_ASSERT(json_array_size(sa) == 2, "short EPG: %s", json_dumps(sa, 0));
    IT_ASSERT(strcmp(jstr(json_array_get(sa, 1), "title"), "A show 4") == 0, "short EPG: %s",
              json_dumps(sa, 0));
    IT_ASSERT(json_array_size(fa) == N_PROGS_A, "full EPG of A: %zu", json_array_size(fa));
    size_t now_playing = 0, archived = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(fa, i, v)
    {
        now_playing += json_is_true(json_object_get(v, "nowPlaying"));
        archived += json_is_true(json_object_get(v, "hasArchive"));
    }
    IT_ASSERT(now_playing == 1 && archived == 4, "now %zu, archive %zu", now_playing, archived);
    it_fmt(key, sizeof(key), "%lld", ch_b);
    IT_ASSERT(json_array_size(json_object_get(json_object_get(o, "full_epg"), key)) == N_PROGS_B,
              "full EPG of B");
    it_fmt(key, sizeof(key), "%lld", ch_c);
    IT_ASSERT(json_array_size(json_object_get(json_object_get(o, "full_epg"), key)) == 0,
              "full EPG of C");

    /* the client's timeshift URL redirects to the archive, UTC start */
    const char *ts = jstr(o, "timeshift_url");
    struct it_resp r;
    char loc[1024];
    it_http("GET", ts, NULL, 0, NULL, 10000, &r);
    IT_ASSERT(r.status == 302 && it_resp_header(&r, "Location", loc, sizeof(loc)),
              "timeshift %s: HTTP %ld", ts, r.status);
    it_resp_close(&r);
    time_t start = time(NULL) - 3600;
    start -= start % 60;
    char prefix[160];
    it_fmt(prefix, sizeof(prefix),
           "http://fl.example/first/video-%lld-1800.m3u8?token=", (long long)start);
    IT_ASSERT(strncmp(loc, prefix, strlen(prefix)) == 0 ||
                  /* the minute may have turned between the two clocks */
                  strstr(loc, "-1800.m3u8?token=") != NULL,
              "timeshift to %s, wanted %s...", loc, prefix);
    token_accepted(loc, "first");
    json_decref(o);

    /* raw forms: the short EPG's texts are base64 of UTF-8, the keyed
     * multi-channel form, unknown actions give the profile */
    char pq[400];
    it_fmt(pq, sizeof(pq),
           "/player_api.php?username=" USER "&password=" PASS_Q
           "&action=get_short_epg&stream_id=%lld&limit=1",
           ch_a);
    eget(pq, NULL, &r);
    const json_t *l = json_array_get(json_object_get(r.json, "epg_listings"), 0);
    IT_ASSERT(strcmp(jstr(l, "title"), "0J3QvtCy0L7RgdGC0LggJiA80L/QvtCz0L7QtNCwPg==") == 0 &&
                  json_is_string(json_object_get(l, "start_timestamp")) &&
                  strcmp(jstr(l, "lang"), "ru") == 0 && strlen(jstr(l, "start")) == 19 &&
                  json_is_string(json_object_get(l, "stop")),
              "short EPG listing: %s", r.body);
    it_resp_close(&r);
    it_fmt(pq, sizeof(pq),
           "/player_api.php?username=" USER "&password=" PASS_Q
           "&action=get_short_epg&stream_id=%lld,%lld,%lld",
           ch_a, ch_b, ch_d);
    eget(pq, NULL, &r);
    const json_t *m = json_object_get(r.json, "epg_listings");
    it_fmt(key, sizeof(key), "%lld", ch_b);
    IT_ASSERT(json_is_object(m) && json_array_size(json_object_get(m, key)) == 3, "multi: %s",
              r.body);
    it_fmt(key, sizeof(key), "%lld", ch_d);
    IT_ASSERT(json_array_size(json_object_get(m, key)) == 0, "not entitled D has no EPG");
    it_resp_close(&r);
    eget("/player_api.php?username=" USER "&password=" PASS_Q "&action=get_server_info", NULL, &r);
    IT_ASSERT(it_jint(json_object_get(r.json, "user_info"), "auth") == 1, "unknown action: %s",
              r.body);
    it_resp_close(&r);
    eget("/player_api.php?username=" USER "&password=" PASS_Q "&action=get_vod_streams", NULL, &r);
    IT_ASSERT(json_is_array(r.json) && json_array_size(r.json) == 0, "no VOD: %s", r.body);
    it_resp_close(&r);
    /* POST form, as some players send it */
    static const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    static const char body[] = "username=" USER "&password=" PASS_Q "&action=get_live_categories";
    it_http("POST", "http://" EDGE_ADDR "/player_api.php", body, sizeof(body) - 1, form, 10000, &r);
    IT_ASSERT(r.status == 200 && json_array_size(r.json) == 2, "POST: %s", r.body);
    it_resp_close(&r);
}

static void test_exports(void **state)
{
    (void)state;
    setup();
    char *doc = check_xmltv();
    check_playlist();
    check_xc_playlist();
    check_player_api();
    free(doc);
    it_test_ok();
}

/* ---- test 2 ------------------------------------------------------------------------------ */

static void expect(const char *pq, long status)
{
    struct it_resp r;
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == status && r.len == 0, "%s: HTTP %ld (wanted %ld), %zu bytes", pq,
              r.status, status, r.len);
    it_resp_close(&r);
}

static void expect_auth0(const char *pq, const char *status, const char *message)
{
    struct it_resp r;
    eget(pq, NULL, &r);
    const json_t *u = json_object_get(r.json, "user_info");
    IT_ASSERT(r.status == 200 && it_jint(u, "auth") == 0 &&
                  strcmp(jstr(u, "status"), status) == 0 &&
                  strcmp(jstr(u, "message"), message) == 0,
              "%s: HTTP %ld %s", pq, r.status, r.body);
    it_resp_close(&r);
}

static void test_denied(void **state)
{
    (void)state;
    char pq[512];
    /* the player API: HTTP 200, auth 0 */
    expect_auth0("/player_api.php?username=" USER "&password=wrong", "Disabled",
                 "INVALID_CREDENTIALS");
    expect_auth0("/player_api.php?username=nobody&password=x&action=get_live_streams", "Disabled",
                 "INVALID_CREDENTIALS");
    expect_auth0("/player_api.php?username=" USER, "Disabled", "NO_CREDENTIALS");
    expect_auth0("/player_api.php", "Disabled", "NO_CREDENTIALS");
    expect_auth0("/player_api.php?username=200002&password=debt&action=get_live_streams", "Expired",
                 "EXPIRED");
    /* the xtream client sees auth 0 */
    json_t *o = node_check("check_xtream.mjs", "'http://" EDGE_ADDR "' '" USER "' 'wrong'");
    IT_ASSERT(it_jint(json_object_get(o, "profile"), "auth") == 0 &&
                  json_object_get(o, "channels") == NULL,
              "client with a wrong password: %s", json_dumps(o, 0));
    json_decref(o);

    /* playlists, guides and streams: 401 / 403 with an empty body */
    expect("/get.php?username=" USER "&password=wrong&type=m3u_plus", 401);
    expect("/get.php?type=m3u_plus", 401);
    expect("/get.php?username=200002&password=debt", 403);
    expect("/xmltv.php?username=" USER "&password=wrong", 401);
    expect("/xmltv.php?username=200002&password=debt", 403);
    expect("/epg/xmltv.xml.gz?username=" USER, 401);
    expect("/playlist.m3u8?username=" USER "&password=wrong", 401);
    expect("/playlist.m3u8?username=200002&password=debt", 403);
    it_fmt(pq, sizeof(pq), "/live/" USER "/wrong/%lld.ts", ch_a);
    expect(pq, 401);
    it_fmt(pq, sizeof(pq), "/live/200002/debt/%lld.ts", ch_a);
    expect(pq, 403);
    it_fmt(pq, sizeof(pq), "/" USER "/wrong/%lld", ch_a);
    expect(pq, 401);

    /* not in the tariff, disabled, unknown */
    it_fmt(pq, sizeof(pq), "/live/" USER "/" PASS_PATH "/%lld.ts", ch_d);
    expect(pq, 403);
    it_fmt(pq, sizeof(pq), "/live/" USER "/" PASS_PATH "/%lld.ts", ch_e);
    expect(pq, 404);
    expect("/live/" USER "/" PASS_PATH "/99999.ts", 404);
    /* timeshift outside the archive (B has none; A's is 7 days), and
     * malformed forms */
    char when[32];
    time_t t = time(NULL) - 1800;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d:%H-%M", &tm);
    it_fmt(pq, sizeof(pq), "/timeshift/" USER "/" PASS_PATH "/30/%s/%lld.ts", when, ch_b);
    expect(pq, 404);
    it_fmt(pq, sizeof(pq), "/timeshift/" USER "/" PASS_PATH "/30/2001-01-01:10-00/%lld.ts", ch_a);
    expect(pq, 404);
    it_fmt(pq, sizeof(pq), "/timeshift/" USER "/" PASS_PATH "/30/2026-13-01:10-00/%lld.ts", ch_a);
    expect(pq, 400);
    it_fmt(pq, sizeof(pq), "/timeshift/" USER "/" PASS_PATH "/0/%s/%lld.ts", when, ch_a);
    expect(pq, 400);
    it_fmt(pq, sizeof(pq), "/timeshift/" USER "/" PASS_PATH "/30/%s/%lld.ts", when, ch_a);
    struct it_resp r;
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == 302, "timeshift in the archive: HTTP %ld", r.status);
    it_resp_close(&r);
    it_fmt(pq, sizeof(pq),
           "/streaming/timeshift.php?username=" USER "&password=" PASS_Q
           "&stream=%lld&start=%s&duration=30",
           ch_a, when);
    eget(pq, NULL, &r);
    IT_ASSERT(r.status == 302, "XC_VM timeshift form: HTTP %ld", r.status);
    it_resp_close(&r);
    expect("/timeshift/" USER "/" PASS_PATH "/30/x/1.ts", 400);
    expect("/live/" USER "/" PASS_PATH "/1.mp4", 404);
    expect("/live/" USER "/" PASS_PATH "/abc.ts", 404);
    expect("/live//x/1.ts", 404);
    expect("/get.php?username=" USER "&password=" PASS_Q "&type=enigma22_script", 400);
    expect("/get.php?username=" USER "&password=" PASS_Q "&output=rtmp", 400);

    /* hostile input: long credentials, odd bytes; the edge stays up */
    char *big = malloc(8192);
    IT_ASSERT(big != NULL, "malloc");
    memcpy(big, "/player_api.php?username=", 25);
    memset(big + 25, 'u', 5000);
    memcpy(big + 5025, "&password=%00%ff", 17);
    eget(big, NULL, &r);
    IT_ASSERT(r.status == 200 && it_jint(json_object_get(r.json, "user_info"), "auth") == 0,
              "long username: HTTP %ld", r.status);
    it_resp_close(&r);
    free(big);
    expect("/xmltv.php?username=%22%3C%3E&password=%0d%0a", 401);
    o = NULL;
    eget("/tvmiddleware/api/health/check/", NULL, &r);
    IT_ASSERT(r.status == 200 && it_jint(r.json, "alive") == 1, "the edge still serves");
    it_resp_close(&r);
    it_test_ok();
}

static int group_teardown(void **state)
{
    (void)state;
    if (it_any_failed) {
        it_edge_kill(&edge);
        it_edge_dump_log(&edge);
    } else {
        it_edge_stop(&edge);
    }
    it_group_done(cl);
    it_cluster_free(cl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exports, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_denied, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
