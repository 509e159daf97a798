/*
 * tvmwctl: the admin command-line tool of tvmw. It speaks the HTTP contract of
 * docs/admin-api.md to one control-plane node, which forwards to the leader as needed.
 *
 * Every write carries an Idempotency-Key made here, once per command: on a 503 or a lost
 * connection the very same request is sent again with the same key, and the cluster's dedup
 * window turns the retry into "return the first result", so a command is never applied twice.
 *
 * A CLI does one thing at a time, so libcurl's easy interface is enough. The token is only
 * ever put in the Authorization header; it is never printed.
 *
 * This file holds the HTTP helpers, output, option parsing, the cluster and client commands
 * and the command table; tvmwctl_catalog.c, tvmwctl_sample.c and tvmwctl_import.c the rest
 * (tvmwctl.h is what they share).
 */
#include "controlplane/ctl/tvmwctl.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#define DEFAULT_SERVER     "http://127.0.0.1:8101"
#define DEFAULT_TIMEOUT_S  15
#define MAX_TIMEOUT_S      3600
#define MAX_RETRIES        5
#define FIRST_BACKOFF_MS   200
#define MAX_RESPONSE_BYTES (64u << 20)
#define MAX_NAME_LEN       200 /* docs/admin-api.md: name is 1-200 bytes */
#define IDEM_KEY_BYTES     16  /* 32 hex chars */
#define TABLE_MAX_COLS     16

#define USAGE_LINE "usage: tvmwctl [--server URL] [--token T] [--json] [--timeout S] COMMAND ...\n"

/* Command-level options; a command lists the ones it accepts. */
enum {
    OPT_NAME = 1u << 0,
    OPT_SETTINGS = 1u << 1,
    OPT_API_KEY = 1u << 2,
    OPT_BILLING_KEY = 1u << 3,
    OPT_STALE = 1u << 4,
    OPT_CLIENT = 1u << 5,
    OPT_JSON_BODY = 1u << 6,
    OPT_FIELD = 1u << 7,
    OPT_SET = 1u << 8,
    OPT_AFTER = 1u << 9,
    OPT_LIMIT = 1u << 10,
    OPT_FOLLOW = 1u << 11,
    OPT_ACCOUNTS = 1u << 12,
    OPT_CHANNELS = 1u << 13,
    OPT_SEED = 1u << 14,
    OPT_OUT = 1u << 15,
    OPT_BATCH = 1u << 16,
};

/* Global options: getopt codes above every OPT_* bit. */
enum { LOPT_SERVER = 1 << 24, LOPT_TOKEN, LOPT_TOKEN_FILE, LOPT_JSON, LOPT_TIMEOUT };

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

static const char help_text[] = USAGE_LINE
    "\n"
    "Options (anywhere on the line):\n"
    "  --server URL       node to talk to (env TVMW_SERVER, default " DEFAULT_SERVER ")\n"
    "  --token T          admin token (env TVMW_TOKEN); prefer --token-file or the env\n"
    "  --token-file FILE  read the admin token from FILE\n"
    "  --json             print the server's JSON answer, for scripts\n"
    "  --timeout S        per-attempt timeout in seconds (default 15)\n"
    "\n"
    "Commands:\n"
    "  cluster status                 this node's view of raft\n"
    "  cluster members                member table\n"
    "  cluster add ID RAFT_ADDR HTTP_ADDR\n"
    "  cluster promote ID\n"
    "  cluster remove ID\n"
    "  cluster transfer [ID]\n"
    "  client create --name NAME [--settings JSON] [--api-key K] [--billing-api-key K]\n"
    "  client list [--stale]\n"
    "  client get ID [--stale]\n"
    "  client modify ID [--name NAME] [--settings JSON] [--api-key K] [--billing-api-key K]\n"
    "  client delete ID\n"
    "  keys list [--stale]            token signing keys (never their secrets)\n"
    "  keys rotate                    a new active key; older ones keep validating\n"
    "  keys retire KID                the key validates nothing any more (not the last one)\n"
    "\n"
    "  catalog list KIND --client CID [--stale]\n"
    "  catalog get KIND ID --client CID [--stale]\n"
    "  catalog create KIND --client CID [--json-body JSON] [--field K=V ...]\n"
    "  catalog modify KIND ID --client CID [--json-body JSON] [--field K=V ...]\n"
    "  catalog delete KIND ID --client CID\n"
    "                 KIND: channels, categories, datacenters, streaming-services\n"
    "  tariff list --client CID [--stale]\n"
    "  tariff get ID --client CID [--stale]\n"
    "  tariff create --client CID [--json-body JSON] [--field K=V ...]\n"
    "  tariff modify ID --client CID [--json-body JSON] [--field K=V ...]\n"
    "  tariff delete ID --client CID\n"
    "  tariff channels CID TARIFF_ID [--set 1,2,3]   show or replace (--set \"\" empties)\n"
    "  tariff services CID TARIFF_ID [--set 1,2,3]   the same for streaming services\n"
    "  audit [--client CID] [--after INDEX] [--limit N] [--follow]\n"
    "                 records after INDEX (default 0), all or N of them; --follow keeps\n"
    "                 polling every second (with --json: one record per line)\n"
    "\n"
    "  sample-data [--accounts N] [--channels N] [--seed S] [--out FILE]\n"
    "                 a demo bundle (default 50 accounts, 200 channels, seed 0); the same\n"
    "                 seed gives the same bytes\n"
    "  import --client CID [--batch N] FILE   push a bundle (FILE \"-\": stdin); running it\n"
    "                 twice changes nothing (format: docs/admin-api.md, \"Bundle format\")\n"
    "  epg sources --client CID [--stale]          EPG sources and their last import\n"
    "  epg add --client CID --name NAME [--json-body JSON] [--field K=V ...]\n"
    "                 e.g. --field url=https://epg.example.net/guide.xml.gz --field "
    "interval_s=21600\n"
    "  epg import SOURCE_ID FILE --client CID      upload an XMLTV file (plain or gzip)\n"
    "  epg run SOURCE_ID --client CID              download the source's URL now\n"
    "  epg programs CHANNEL_ID --client CID [--limit N] [--stale]\n"
    "                 imports wait up to an hour (--timeout S for longer)\n"
    "  help\n"
    "\n"
    "--field K=V sends V as text for text fields (name, icon, ext_id, ...), else as JSON when\n"
    "it parses as a number, true/false, null, an object or an array; K:=JSON forces JSON.\n";

int ctl_usage_error(const char *msg)
{
    fprintf(stderr, "tvmwctl: %s\n" USAGE_LINE "(see 'tvmwctl help')\n", msg);
    return CTL_EXIT_USAGE;
}

void ctl_fput_clean(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
    }
}

/* Columns on screen, roughly: UTF-8 continuation bytes take none. */
static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80) {
            w++;
        }
    }
    return w;
}

static bool has_control_char(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

/* ---- output ------------------------------------------------------------------------------- */

static const struct ctl_field member_fields[] = {
    {"id", "id:", "ID"},
    {"raft_address", "raft address:", "RAFT-ADDRESS"},
    {"http_address", "http address:", "HTTP-ADDRESS"},
    {"role", "role:", "ROLE"},
    {"voting", "voting:", "VOTING"},
    {"leader", "leader:", "LEADER"},
};

static const struct ctl_field client_fields[] = {
    {"id", "id:", "ID"},
    {"name", "name:", "NAME"},
    {"api_key", "api key:", "API-KEY"},
    {"billing_api_key", "billing api key:", "BILLING-API-KEY"},
    {"settings", "settings:", NULL},
    {"created_at", "created:", NULL},
    {"updated_at", "updated:", "UPDATED"},
};

static const struct ctl_field key_fields[] = {
    {"kid", "kid:", "KID"},
    {"state", "state:", "STATE"},
    {"created_ms", "created:", "CREATED"},
    {"retired_ms", "retired:", "RETIRED"},
};

static const struct ctl_field status_fields[] = {
    {"node_id", "node id:", NULL},           {"role", "role:", NULL},
    {"leader_id", "leader:", NULL},          {"term", "term:", NULL},
    {"commit_index", "commit index:", NULL}, {"applied_index", "applied index:", NULL},
    {"last_index", "last index:", NULL},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Renders obj[key] as text: the string itself, or buf. "*_at" keys (unix seconds) and "*_ms"
 * keys (milliseconds) show as UTC. Objects and arrays (settings) are cut to buf's size; --json
 * shows them whole.
 */
const char *ctl_render(const json_t *obj, const char *key, char *buf, size_t n)
{
    const json_t *v = json_object_get(obj, key);
    size_t klen = strlen(key);
    struct tm tm;
    time_t t;

    if (json_is_integer(v) && klen > 3 && strcmp(key + klen - 3, "_at") == 0) {
        t = (time_t)json_integer_value(v);
        if (gmtime_r(&t, &tm) != NULL && strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm) != 0) {
            return buf;
        }
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0 && klen > 3 &&
        strcmp(key + klen - 3, "_ms") == 0) {
        t = (time_t)(json_integer_value(v) / 1000);
        if (gmtime_r(&t, &tm) != NULL && strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm) != 0) {
            return buf;
        }
    }
    if (json_is_real(v)) {
        snprintf(buf, n, "%.2f", json_real_value(v)); /* money: price, balance */
        return buf;
    }
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v)) {
        return json_is_true(v) ? "yes" : "no";
    }
    if (json_is_object(v) || json_is_array(v)) {
        size_t len = json_dumpb(v, buf, n - 1, JSON_COMPACT);
        if (len > 0 && len < n) {
            buf[len] = '\0';
            return buf;
        }
        return "(too long, see --json)";
    }
    return "-";
}

void ctl_print_kv(const char *label, const char *value)
{
    printf("%-16s ", label);
    ctl_fput_clean(stdout, value);
    putchar('\n');
}

static void print_fields(const json_t *obj, const struct ctl_field *f, size_t nf)
{
    char buf[4096];

    for (size_t i = 0; i < nf; i++) {
        ctl_print_kv(f[i].label, ctl_render(obj, f[i].key, buf, sizeof(buf)));
    }
}

/* An aligned table of the objects in rows, one column per field that has a header. */
void ctl_print_table(const json_t *rows, const struct ctl_field *f, size_t nf)
{
    size_t width[TABLE_MAX_COLS] = {0};
    char buf[256];
    const char *cell;
    json_t *row;
    size_t i, c, w, last = 0;

    assert(nf <= TABLE_MAX_COLS);
    for (c = 0; c < nf; c++) {
        width[c] = f[c].header != NULL ? strlen(f[c].header) : 0;
        last = f[c].header != NULL ? c : last;
    }
    json_array_foreach(rows, i, row)
    {
        for (c = 0; c < nf; c++) {
            w = display_width(ctl_render(row, f[c].key, buf, sizeof(buf)));
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (i = 0; i <= json_array_size(rows); i++) {
        row = i == 0 ? NULL : json_array_get(rows, i - 1);
        for (c = 0; c < nf; c++) {
            if (f[c].header == NULL) {
                continue;
            }
            cell = row == NULL ? f[c].header : ctl_render(row, f[c].key, buf, sizeof(buf));
            ctl_fput_clean(stdout, cell);
            if (c < last) {
                printf("%*s", (int)(width[c] - display_width(cell) + 2), "");
            }
        }
        putchar('\n');
    }
}

void ctl_print_json(const json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2));

    if (s != NULL) {
        puts(s);
        free(s);
    }
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb; /* size is always 1 */

    if (n > MAX_RESPONSE_BYTES - b->len) {
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 4096 : b->cap;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *data = realloc(b->data, cap);
        if (data == NULL) {
            return 0;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int make_idempotency_key(char out[2 * IDEM_KEY_BYTES + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[IDEM_KEY_BYTES];
    FILE *f = fopen("/dev/urandom", "rbe");
    size_t got = 0;

    if (f != NULL) {
        got = fread(raw, 1, sizeof(raw), f);
        fclose(f);
    }
    if (got != sizeof(raw)) {
        return -EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 0xf];
    }
    out[2 * IDEM_KEY_BYTES] = '\0';
    return 0;
}

/* One attempt. Returns the curl result; *status is set when it is CURLE_OK. */
static CURLcode perform_once(struct ctl_ctx *c, const char *method, const char *url,
                             const char *payload, const char *idem_key, struct buf *resp,
                             long *status, char *errbuf)
{
    char auth[CTL_MAX_TOKEN_LEN + 64];
    char idem[2 * IDEM_KEY_BYTES + 32];
    const char *headers[] = {
        auth, idem_key != NULL ? idem : NULL, "Accept: application/json",
        "Expect:", payload != NULL ? "Content-Type: application/json" : "Content-Type:"};
    struct curl_slist *hdrs = NULL, *more;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    int n;

    n = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
    if (n < 0 || (size_t)n >= sizeof(auth)) {
        goto out_free_headers;
    }
    n = snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idem_key != NULL ? idem_key : "");
    if (n < 0 || (size_t)n >= sizeof(idem)) {
        goto out_free_headers;
    }
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        if (headers[i] == NULL) {
            continue;
        }
        more = curl_slist_append(hdrs, headers[i]);
        if (more == NULL) {
            goto out_free_headers;
        }
        hdrs = more;
    }

    curl_easy_reset(c->curl);
    errbuf[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, resp);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    if (payload != NULL || strcmp(method, "POST") == 0) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload != NULL ? payload : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(payload != NULL ? strlen(payload) : 0));
    }
    rc = curl_easy_perform(c->curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    }

out_free_headers:
    curl_slist_free_all(hdrs);
    explicit_bzero(auth, sizeof(auth));
    return rc;
}

/* Failures after which the request may or may not have reached the server. */
static bool is_retryable(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_PARTIAL_FILE;
}

void ctl_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int ctl_request(struct ctl_ctx *c, const char *method, const char *path, const json_t *body,
                long *status, json_t **out)
{
    char url[CTL_MAX_URL_LEN + 256];
    char key[2 * IDEM_KEY_BYTES + 1];
    char errbuf[CURL_ERROR_SIZE];
    bool is_write = strcmp(method, "GET") != 0;
    struct buf resp = {0};
    char *payload = NULL;
    json_error_t jerr;
    CURLcode rc;
    int rv = -1, n;

    n = snprintf(url, sizeof(url), "%s%s", c->server, path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        fprintf(stderr, "tvmwctl: server URL too long\n");
        return -1;
    }
    if (body != NULL && (payload = json_dumps(body, JSON_COMPACT)) == NULL) {
        fprintf(stderr, "tvmwctl: out of memory\n");
        return -1;
    }
    if (is_write && make_idempotency_key(key) != 0) {
        fprintf(stderr, "tvmwctl: cannot read /dev/urandom\n");
        goto out_free_payload;
    }
    for (int attempt = 0;; attempt++) {
        resp.len = 0;
        rc = perform_once(c, method, url, payload, is_write ? key : NULL, &resp, status, errbuf);
        bool again = rc == CURLE_OK ? *status == 503 : is_retryable(rc);
        if (!again || attempt == MAX_RETRIES) {
            break;
        }
        long delay_ms = (long)FIRST_BACKOFF_MS << attempt;
        fprintf(stderr, "tvmwctl: %s, retrying in %ld ms (%d/%d)\n",
                rc == CURLE_OK ? "503 from server" : "connection failed", delay_ms, attempt + 1,
                MAX_RETRIES);
        ctl_sleep_ms(delay_ms);
    }
    if (rc != CURLE_OK) {
        fprintf(stderr, "tvmwctl: cannot reach %s: %s\n", c->server,
                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        goto out_free_resp;
    }
    *out = resp.len > 0 ? json_loadb(resp.data, resp.len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    rv = 0;

out_free_resp:
    free(resp.data);
out_free_payload:
    free(payload);
    return rv;
}

void ctl_print_http_error(long status, const json_t *answer)
{
    const char *err = json_string_value(json_object_get(answer, "error"));
    const char *msg = json_string_value(json_object_get(answer, "message"));

    fprintf(stderr, "tvmwctl: %ld %s: ", status, err != NULL ? err : "http_error");
    ctl_fput_clean(stderr, msg != NULL ? msg : "(no error body)");
    fputc('\n', stderr);
}

int ctl_call(struct ctl_ctx *c, const char *method, const char *path, const json_t *body,
             json_t **out)
{
    json_t *answer = NULL;
    long status = 0;

    if (ctl_request(c, method, path, body, &status, &answer) != 0) {
        return -1;
    }
    if (status < 200 || status > 299) {
        ctl_print_http_error(status, answer);
        json_decref(answer);
        return -1;
    }
    if (!json_is_object(answer)) {
        fprintf(stderr, "tvmwctl: %ld answer from server is not a JSON object\n", status);
        json_decref(answer);
        return -1;
    }
    *out = answer;
    return 0;
}

/* ---- argument checks ------------------------------------------------------------------------ */

int ctl_parse_id(const char *s, json_int_t *out)
{
    unsigned long long v;
    char *end;

    if (s[0] < '0' || s[0] > '9') {
        return -1; /* strtoull would accept spaces and a sign */
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > LLONG_MAX) {
        return -1;
    }
    *out = (json_int_t)v;
    return 0;
}

static int set_string(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value)); /* NULL for bad UTF-8: fails */
}

/* The body of client create/modify from --name, --settings, --api-key, --billing-api-key. */
static int build_client_body(const struct ctl_ctx *c, json_t **out)
{
    json_t *obj = json_object();
    json_error_t jerr;
    char msg[256];
    int rv = CTL_EXIT_USAGE;

    if (obj == NULL) {
        return 1;
    }
    if (c->name != NULL) {
        size_t len = strlen(c->name);
        if (len == 0 || len > MAX_NAME_LEN) {
            ctl_usage_error("--name must be 1 to 200 bytes");
            goto err_free_obj;
        }
        if (set_string(obj, "name", c->name) != 0) {
            ctl_usage_error("--name must be valid UTF-8");
            goto err_free_obj;
        }
    }
    if (c->settings != NULL) {
        json_t *s = json_loads(c->settings, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(s)) {
            snprintf(msg, sizeof(msg), "--settings must be a JSON object%s%s",
                     s == NULL ? ": " : "", s == NULL ? jerr.text : "");
            json_decref(s);
            ctl_usage_error(msg);
            goto err_free_obj;
        }
        json_object_set_new(obj, "settings", s);
    }
    if ((c->api_key != NULL && set_string(obj, "api_key", c->api_key) != 0) ||
        (c->billing_key != NULL && set_string(obj, "billing_api_key", c->billing_key) != 0)) {
        ctl_usage_error("API keys must be valid UTF-8");
        goto err_free_obj;
    }
    *out = obj;
    return 0;

err_free_obj:
    json_decref(obj);
    return rv;
}

/* ---- commands ------------------------------------------------------------------------------- */

static void show_status(const json_t *v)
{
    const json_t *leader = json_object_get(v, "leader_id");
    const char *addr = NULL;
    char buf[128];
    size_t i;
    json_t *m;

    json_array_foreach(json_object_get(v, "members"), i, m)
    {
        if (json_equal(json_object_get(m, "id"), leader)) {
            addr = json_string_value(json_object_get(m, "http_address"));
        }
    }
    print_fields(v, status_fields, 2);
    if (json_integer_value(leader) == 0) {
        ctl_print_kv("leader:", "none known");
    } else {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT " (%s)", json_integer_value(leader),
                 addr != NULL ? addr : "address unknown");
        ctl_print_kv("leader:", buf);
    }
    print_fields(v, status_fields + 3, NFIELDS(status_fields) - 3);
}

static void show_members(const json_t *v)
{
    ctl_print_table(json_object_get(v, "members"), member_fields, NFIELDS(member_fields));
}

static void show_member(const json_t *v)
{
    print_fields(json_object_get(v, "member"), member_fields, NFIELDS(member_fields));
}

static void show_removed(const json_t *v)
{
    printf("removed member %" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(v, "removed")));
}

static void show_transfer(const json_t *v)
{
    printf("leader is now node %" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(v, "leader_id")));
}

static void show_client(const json_t *v)
{
    print_fields(json_object_get(v, "client"), client_fields, NFIELDS(client_fields));
}

static void show_clients(const json_t *v)
{
    ctl_print_table(json_object_get(v, "clients"), client_fields, NFIELDS(client_fields));
}

static void show_deleted(const json_t *v)
{
    printf("deleted client %" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(v, "deleted")));
}

/* A key as shown: retired_ms 0 (still active) as "-" rather than 1970. */
static json_t *key_view(const json_t *key)
{
    json_t *k = json_deep_copy(key);

    if (k != NULL && json_integer_value(json_object_get(k, "retired_ms")) == 0) {
        json_object_del(k, "retired_ms");
    }
    return k;
}

static void show_keys(const json_t *v)
{
    json_t *rows = json_array(), *key;
    size_t i;

    json_array_foreach(json_object_get(v, "keys"), i, key)
    {
        json_array_append_new(rows, key_view(key));
    }
    ctl_print_table(rows, key_fields, NFIELDS(key_fields));
    json_decref(rows);
}

static void show_key(const json_t *v)
{
    json_t *key = key_view(json_object_get(v, "key"));

    print_fields(key, key_fields, NFIELDS(key_fields));
    json_decref(key);
}

/* Sends the request, then shows the answer, as JSON with --json. Takes ownership of body. */
static int send_and_show(struct ctl_ctx *c, const char *method, const char *path, json_t *body,
                         void (*show)(const json_t *v))
{
    json_t *v;
    int rv;

    if (c->token[0] == '\0') {
        json_decref(body);
        return ctl_usage_error("no admin token: use --token-file FILE, TVMW_TOKEN or --token");
    }
    rv = ctl_call(c, method, path, body, &v);
    json_decref(body);
    if (rv != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        show(v);
    }
    json_decref(v);
    return 0;
}

/* Formats "<prefix><id><suffix>" into path; ID must be a positive integer. */
static int id_path(char *path, size_t n, const char *prefix, const char *id_arg, const char *suffix)
{
    json_int_t id;
    int len;

    if (ctl_parse_id(id_arg, &id) != 0) {
        return ctl_usage_error("ID must be a positive integer");
    }
    len = snprintf(path, n, "%s%" JSON_INTEGER_FORMAT "%s", prefix, id, suffix);
    if (len < 0 || (size_t)len >= n) {
        return ctl_usage_error("ID too long"); /* cannot happen with the buffers below */
    }
    return 0;
}

static int cmd_cluster_status(struct ctl_ctx *c, char **args)
{
    (void)args;
    return send_and_show(c, "GET", "/admin/v1/cluster", NULL, show_status);
}

static int cmd_cluster_members(struct ctl_ctx *c, char **args)
{
    (void)args;
    return send_and_show(c, "GET", "/admin/v1/cluster", NULL, show_members);
}

static int cmd_cluster_add(struct ctl_ctx *c, char **args)
{
    json_int_t id;
    json_t *body;

    if (ctl_parse_id(args[0], &id) != 0) {
        return ctl_usage_error("ID must be a positive integer");
    }
    if (args[1][0] == '\0' || args[2][0] == '\0') {
        return ctl_usage_error("RAFT_ADDR and HTTP_ADDR must not be empty");
    }
    body = json_pack("{s:I,s:s,s:s}", "id", id, "raft_address", args[1], "http_address", args[2]);
    if (body == NULL) {
        return ctl_usage_error("addresses must be valid UTF-8");
    }
    return send_and_show(c, "POST", "/admin/v1/cluster/members", body, show_member);
}

static int cmd_cluster_promote(struct ctl_ctx *c, char **args)
{
    char path[128];
    int rv = id_path(path, sizeof(path), "/admin/v1/cluster/members/", args[0], "/promote");

    return rv != 0 ? rv : send_and_show(c, "POST", path, NULL, show_member);
}

static int cmd_cluster_remove(struct ctl_ctx *c, char **args)
{
    char path[128];
    int rv = id_path(path, sizeof(path), "/admin/v1/cluster/members/", args[0], "");

    return rv != 0 ? rv : send_and_show(c, "DELETE", path, NULL, show_removed);
}

static int cmd_cluster_transfer(struct ctl_ctx *c, char **args)
{
    json_int_t id = 0;
    json_t *body;

    if (args[0] != NULL && ctl_parse_id(args[0], &id) != 0) {
        return ctl_usage_error("ID must be a positive integer");
    }
    body = args[0] != NULL ? json_pack("{s:I}", "id", id) : json_object();
    if (body == NULL) {
        fprintf(stderr, "tvmwctl: out of memory\n");
        return 1;
    }
    return send_and_show(c, "POST", "/admin/v1/cluster/transfer", body, show_transfer);
}

static int cmd_client_create(struct ctl_ctx *c, char **args)
{
    json_t *body;
    int rv;

    (void)args;
    if (c->name == NULL) {
        return ctl_usage_error("client create needs --name NAME");
    }
    rv = build_client_body(c, &body);
    return rv != 0 ? rv : send_and_show(c, "POST", "/admin/v1/clients", body, show_client);
}

static int cmd_client_list(struct ctl_ctx *c, char **args)
{
    (void)args;
    return send_and_show(c, "GET", c->stale ? "/admin/v1/clients?stale=1" : "/admin/v1/clients",
                         NULL, show_clients);
}

static int cmd_client_get(struct ctl_ctx *c, char **args)
{
    char path[128];
    int rv = id_path(path, sizeof(path), "/admin/v1/clients/", args[0], c->stale ? "?stale=1" : "");

    return rv != 0 ? rv : send_and_show(c, "GET", path, NULL, show_client);
}

static int cmd_client_modify(struct ctl_ctx *c, char **args)
{
    char path[128];
    json_t *body;
    int rv;

    if (c->given == 0) {
        return ctl_usage_error(
            "client modify needs --name, --settings, --api-key or --billing-api-key");
    }
    rv = id_path(path, sizeof(path), "/admin/v1/clients/", args[0], "");
    if (rv == 0) {
        rv = build_client_body(c, &body);
    }
    return rv != 0 ? rv : send_and_show(c, "PATCH", path, body, show_client);
}

static int cmd_client_delete(struct ctl_ctx *c, char **args)
{
    char path[128];
    int rv = id_path(path, sizeof(path), "/admin/v1/clients/", args[0], "");

    return rv != 0 ? rv : send_and_show(c, "DELETE", path, NULL, show_deleted);
}

static int cmd_keys_list(struct ctl_ctx *c, char **args)
{
    (void)args;
    return send_and_show(c, "GET", c->stale ? "/admin/v1/keys?stale=1" : "/admin/v1/keys", NULL,
                         show_keys);
}

static int cmd_keys_rotate(struct ctl_ctx *c, char **args)
{
    (void)args;
    return send_and_show(c, "POST", "/admin/v1/keys/rotate", NULL, show_key);
}

static int cmd_keys_retire(struct ctl_ctx *c, char **args)
{
    char path[128];
    int rv = id_path(path, sizeof(path), "/admin/v1/keys/", args[0], "/retire");

    return rv != 0 ? rv : send_and_show(c, "POST", path, NULL, show_key);
}

struct command {
    const char *group;
    const char *name; /* NULL: a one-word command */
    unsigned allowed; /* OPT_* */
    int min_args;
    int max_args;
    int (*run)(struct ctl_ctx *c, char **args);
};

#define OPT_BODY (OPT_JSON_BODY | OPT_FIELD)

static const struct command commands[] = {
    {"cluster", "status", 0, 0, 0, cmd_cluster_status},
    {"cluster", "members", 0, 0, 0, cmd_cluster_members},
    {"cluster", "add", 0, 3, 3, cmd_cluster_add},
    {"cluster", "promote", 0, 1, 1, cmd_cluster_promote},
    {"cluster", "remove", 0, 1, 1, cmd_cluster_remove},
    {"cluster", "transfer", 0, 0, 1, cmd_cluster_transfer},
    {"client", "create", OPT_NAME | OPT_SETTINGS | OPT_API_KEY | OPT_BILLING_KEY, 0, 0,
     cmd_client_create},
    {"client", "list", OPT_STALE, 0, 0, cmd_client_list},
    {"client", "get", OPT_STALE, 1, 1, cmd_client_get},
    {"client", "modify", OPT_NAME | OPT_SETTINGS | OPT_API_KEY | OPT_BILLING_KEY, 1, 1,
     cmd_client_modify},
    {"client", "delete", 0, 1, 1, cmd_client_delete},
    {"keys", "list", OPT_STALE, 0, 0, cmd_keys_list},
    {"keys", "rotate", 0, 0, 0, cmd_keys_rotate},
    {"keys", "retire", 0, 1, 1, cmd_keys_retire},
    {"catalog", "list", OPT_CLIENT | OPT_STALE, 1, 1, ctl_cmd_catalog_list},
    {"catalog", "get", OPT_CLIENT | OPT_STALE, 2, 2, ctl_cmd_catalog_get},
    {"catalog", "create", OPT_CLIENT | OPT_BODY, 1, 1, ctl_cmd_catalog_create},
    {"catalog", "modify", OPT_CLIENT | OPT_BODY, 2, 2, ctl_cmd_catalog_modify},
    {"catalog", "delete", OPT_CLIENT, 2, 2, ctl_cmd_catalog_delete},
    {"tariff", "list", OPT_CLIENT | OPT_STALE, 0, 0, ctl_cmd_tariff_list},
    {"tariff", "get", OPT_CLIENT | OPT_STALE, 1, 1, ctl_cmd_tariff_get},
    {"tariff", "create", OPT_CLIENT | OPT_BODY, 0, 0, ctl_cmd_tariff_create},
    {"tariff", "modify", OPT_CLIENT | OPT_BODY, 1, 1, ctl_cmd_tariff_modify},
    {"tariff", "delete", OPT_CLIENT, 1, 1, ctl_cmd_tariff_delete},
    {"tariff", "channels", OPT_CLIENT | OPT_SET, 1, 2, ctl_cmd_tariff_channels},
    {"tariff", "services", OPT_CLIENT | OPT_SET, 1, 2, ctl_cmd_tariff_services},
    {"audit", NULL, OPT_CLIENT | OPT_AFTER | OPT_LIMIT | OPT_FOLLOW, 0, 0, ctl_cmd_audit},
    {"sample-data", NULL, OPT_ACCOUNTS | OPT_CHANNELS | OPT_SEED | OPT_OUT, 0, 0,
     ctl_cmd_sample_data},
    {"import", NULL, OPT_CLIENT | OPT_BATCH, 1, 1, ctl_cmd_import},
    {"epg", "sources", OPT_CLIENT | OPT_STALE, 0, 0, ctl_cmd_epg_sources},
    {"epg", "add", OPT_CLIENT | OPT_NAME | OPT_BODY, 0, 0, ctl_cmd_epg_add},
    {"epg", "import", OPT_CLIENT, 2, 2, ctl_cmd_epg_import},
    {"epg", "run", OPT_CLIENT, 1, 1, ctl_cmd_epg_run},
    {"epg", "programs", OPT_CLIENT | OPT_LIMIT | OPT_STALE, 1, 1, ctl_cmd_epg_programs},
};

/* ---- main ----------------------------------------------------------------------------------- */

static int set_token(struct ctl_ctx *c, const char *t)
{
    size_t len = strlen(t);

    while (len > 0 && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ')) {
        len--;
    }
    if (len == 0 || len > CTL_MAX_TOKEN_LEN) {
        return ctl_usage_error("the token is empty or too long");
    }
    memcpy(c->token, t, len);
    c->token[len] = '\0';
    if (has_control_char(c->token)) {
        return ctl_usage_error("the token contains control characters");
    }
    return 0;
}

static int read_token_file(struct ctl_ctx *c, const char *file)
{
    char data[CTL_MAX_TOKEN_LEN + 2];
    size_t n;
    FILE *f = fopen(file, "re");

    if (f == NULL) {
        fprintf(stderr, "tvmwctl: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    n = fread(data, 1, sizeof(data) - 1, f);
    fclose(f);
    data[n] = '\0';
    return set_token(c, data);
}

static int set_server(struct ctl_ctx *c, const char *url)
{
    size_t len = strlen(url);

    while (len > 0 && url[len - 1] == '/') {
        len--;
    }
    if (len == 0 || len >= sizeof(c->server) || has_control_char(url)) {
        return ctl_usage_error("bad --server URL");
    }
    memcpy(c->server, url, len);
    c->server[len] = '\0';
    return 0;
}

/* A decimal number of an option in min..max; prints the usage error otherwise. */
static int parse_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char msg[128], *end;

    errno = 0;
    v = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
    if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v < min || v > max) {
        snprintf(msg, sizeof(msg), "%s must be a number from %llu to %llu", opt,
                 (unsigned long long)min, (unsigned long long)max);
        return ctl_usage_error(msg);
    }
    *out = v;
    return 0;
}

/* The command-level options that carry a value beyond a flag. */
static int set_command_option(struct ctl_ctx *c, int opt, const char *arg)
{
    uint64_t v;
    int rv = 0;

    switch (opt) {
    case OPT_CLIENT:
        rv = parse_count("--client", arg, 1, LLONG_MAX, &v);
        c->client_id = rv == 0 ? (json_int_t)v : 0;
        break;
    case OPT_JSON_BODY:
        c->json_body = arg;
        break;
    case OPT_FIELD:
        if (c->nfields == CTL_MAX_FIELDS) {
            return ctl_usage_error("too many --field options");
        }
        c->fields[c->nfields++] = arg;
        break;
    case OPT_SET:
        c->set = arg;
        break;
    case OPT_AFTER:
        rv = parse_count("--after", arg, 0, LLONG_MAX, &c->after);
        break;
    case OPT_LIMIT:
        rv = parse_count("--limit", arg, 1, LLONG_MAX, &c->limit);
        break;
    case OPT_FOLLOW:
        c->follow = true;
        break;
    case OPT_ACCOUNTS:
        rv = parse_count("--accounts", arg, 1, CTL_SAMPLE_MAX_ACCOUNTS, &c->accounts);
        break;
    case OPT_CHANNELS:
        rv = parse_count("--channels", arg, 1, CTL_SAMPLE_MAX_CHANNELS, &c->channels);
        break;
    case OPT_SEED:
        rv = parse_count("--seed", arg, 0, UINT64_MAX, &c->seed);
        break;
    case OPT_OUT:
        c->out_file = arg;
        break;
    case OPT_BATCH:
        rv = parse_count("--batch", arg, 1, CTL_IMPORT_MAX_BATCH, &c->batch);
        break;
    default:
        assert(!"not a command option");
        break;
    }
    return rv;
}

static int parse_options(struct ctl_ctx *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, LOPT_SERVER},
        {"token", required_argument, NULL, LOPT_TOKEN},
        {"token-file", required_argument, NULL, LOPT_TOKEN_FILE},
        {"json", no_argument, NULL, LOPT_JSON},
        {"timeout", required_argument, NULL, LOPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {"name", required_argument, NULL, OPT_NAME},
        {"settings", required_argument, NULL, OPT_SETTINGS},
        {"api-key", required_argument, NULL, OPT_API_KEY},
        {"billing-api-key", required_argument, NULL, OPT_BILLING_KEY},
        {"stale", no_argument, NULL, OPT_STALE},
        {"client", required_argument, NULL, OPT_CLIENT},
        {"json-body", required_argument, NULL, OPT_JSON_BODY},
        {"field", required_argument, NULL, OPT_FIELD},
        {"set", required_argument, NULL, OPT_SET},
        {"after", required_argument, NULL, OPT_AFTER},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"follow", no_argument, NULL, OPT_FOLLOW},
        {"accounts", required_argument, NULL, OPT_ACCOUNTS},
        {"channels", required_argument, NULL, OPT_CHANNELS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"out", required_argument, NULL, OPT_OUT},
        {"batch", required_argument, NULL, OPT_BATCH},
        {NULL, 0, NULL, 0},
    };
    const char *env;
    char msg[128], *end;
    int ch, rv;

    opterr = 0; /* we print our own */
    env = getenv("TVMW_SERVER");
    rv = set_server(c, env != NULL && env[0] != '\0' ? env : DEFAULT_SERVER);
    env = getenv("TVMW_TOKEN");
    if (rv == 0 && env != NULL && env[0] != '\0') {
        rv = set_token(c, env);
    }
    while (rv == 0 && (ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case LOPT_SERVER:
            rv = set_server(c, optarg);
            break;
        case LOPT_TOKEN:
            rv = set_token(c, optarg);
            break;
        case LOPT_TOKEN_FILE:
            rv = read_token_file(c, optarg);
            break;
        case LOPT_JSON:
            c->json = true;
            break;
        case LOPT_TIMEOUT:
            errno = 0;
            c->timeout_s = (long)strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || errno != 0 || *end != '\0' ||
                c->timeout_s < 1 || c->timeout_s > MAX_TIMEOUT_S) {
                rv = ctl_usage_error("--timeout must be 1 to 3600 seconds");
            }
            break;
        case 'h':
            fputs(help_text, stdout);
            return -1;
        case OPT_NAME:
        case OPT_SETTINGS:
        case OPT_API_KEY:
        case OPT_BILLING_KEY:
        case OPT_STALE:
            c->given |= (unsigned)ch;
            c->name = ch == OPT_NAME ? optarg : c->name;
            c->settings = ch == OPT_SETTINGS ? optarg : c->settings;
            c->api_key = ch == OPT_API_KEY ? optarg : c->api_key;
            c->billing_key = ch == OPT_BILLING_KEY ? optarg : c->billing_key;
            c->stale = c->stale || ch == OPT_STALE;
            break;
        case OPT_CLIENT:
        case OPT_JSON_BODY:
        case OPT_FIELD:
        case OPT_SET:
        case OPT_AFTER:
        case OPT_LIMIT:
        case OPT_FOLLOW:
        case OPT_ACCOUNTS:
        case OPT_CHANNELS:
        case OPT_SEED:
        case OPT_OUT:
        case OPT_BATCH:
            c->given |= (unsigned)ch;
            rv = set_command_option(c, ch, optarg);
            break;
        default:
            snprintf(msg, sizeof(msg), "bad option or missing value: %s", argv[optind - 1]);
            rv = ctl_usage_error(msg);
            break;
        }
    }
    return rv;
}

int main(int argc, char **argv)
{
    static struct ctl_ctx c = {.timeout_s = DEFAULT_TIMEOUT_S};
    const struct command *cmd = NULL;
    char **args;
    int nargs, rv;

    rv = parse_options(&c, argc, argv);
    if (rv != 0) {
        return rv < 0 ? 0 : rv;
    }
    args = argv + optind;
    nargs = argc - optind;
    if (nargs == 0) {
        return ctl_usage_error("no command");
    }
    if (strcmp(args[0], "help") == 0) {
        fputs(help_text, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(args[0], commands[i].group) == 0 &&
            (commands[i].name == NULL || (nargs >= 2 && strcmp(args[1], commands[i].name) == 0))) {
            cmd = &commands[i];
        }
    }
    if (cmd == NULL) {
        return ctl_usage_error("unknown command");
    }
    args += cmd->name != NULL ? 2 : 1;
    nargs -= cmd->name != NULL ? 2 : 1;
    if (nargs < cmd->min_args || nargs > cmd->max_args) {
        return ctl_usage_error("wrong number of arguments");
    }
    if ((c.given & ~cmd->allowed) != 0) {
        return ctl_usage_error("option not valid for this command");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (c.curl = curl_easy_init()) == NULL) {
        fprintf(stderr, "tvmwctl: cannot initialise libcurl\n");
        return 1;
    }
    rv = cmd->run(&c, args);
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    explicit_bzero(c.token, sizeof(c.token));
    return rv;
}
