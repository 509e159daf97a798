/*
 * tvmwctl epg: the EPG sources of a client and their imports (docs/admin-api.md, "EPG").
 *
 *   epg sources --client CID              the sources and how their last import went
 *   epg add --client CID --name N [--field url=URL] [--field interval_s=3600] ...
 *   epg import SOURCE_ID FILE --client CID   upload an XMLTV file (plain or .gz) and import it
 *   epg run SOURCE_ID --client CID           download the source's URL now and import it
 *   epg programs CHANNEL_ID --client CID [--limit N]
 *
 * The upload streams FILE from disk (any size, as the server spools it) with one
 * Idempotency-Key for all attempts: a retry after a lost connection re-imports with the same
 * request ids, which the cluster deduplicates. An import answers when it is over, so these
 * two commands wait up to an hour unless --timeout says longer.
 */
#include "controlplane/ctl/tvmwctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#define IMPORT_MIN_TIMEOUT_S 3600
#define UPLOAD_RETRIES       3
#define MAX_ANSWER_BYTES     (16u << 20)

static const struct ctl_field source_fields[] = {
    {"id", "id:", "ID"},
    {"name", "name:", "NAME"},
    {"url", "url:", "URL"},
    {"interval_s", "interval (s):", "EVERY-S"},
    {"time_correction_s", "correction (s):", "CORR-S"},
    {"enabled", "enabled:", "ON"},
    {"last_status", "last status:", "LAST"},
    {"last_run_ms", "last run:", "LAST-RUN"},
    {"last_message", "last message:", NULL},
    {"use_epg_channel_id", "by epg_channel_id:", NULL},
    {"channel_map", "channel map:", NULL},
    {"etag", "etag:", NULL},
    {"last_modified", "last modified:", NULL},
    {"last_ok_ms", "last ok:", NULL},
    {"created_ms", "created:", NULL},
    {"updated_ms", "updated:", NULL},
};

static const struct ctl_field program_fields[] = {
    {"id", "id:", "ID"},       {"begin_time", "begin:", "BEGIN"},     {"end_time", "end:", "END"},
    {"name", "name:", "NAME"}, {"category", "category:", "CATEGORY"},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static int need_client(const struct ctl_ctx *c)
{
    if (c->client_id == 0) {
        return ctl_usage_error("this command needs --client CID");
    }
    if (c->token[0] == '\0') {
        return ctl_usage_error("no admin token: use --token-file FILE, TVMW_TOKEN or --token");
    }
    return 0;
}

int ctl_cmd_epg_sources(struct ctl_ctx *c, char **args)
{
    (void)args;
    char path[128];
    json_t *v;
    int rv = need_client(c);
    if (rv != 0) {
        return rv;
    }
    snprintf(path, sizeof(path), "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/epg-sources%s",
             c->client_id, c->stale ? "?stale=1" : "");
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        ctl_print_table(json_object_get(v, "epg_sources"), source_fields, NFIELDS(source_fields));
    }
    json_decref(v);
    return 0;
}

/* --field K=V: text for name and url, else JSON when it parses (K:=JSON forces JSON). */
static int add_field(json_t *body, const char *f)
{
    const char *eq = strchr(f, '=');
    char key[128];
    size_t klen = eq != NULL ? (size_t)(eq - f) : 0;
    bool raw = klen > 0 && f[klen - 1] == ':';
    klen -= raw ? 1 : 0;
    if (eq == NULL || klen == 0 || klen >= sizeof(key)) {
        return ctl_usage_error("--field wants K=V or K:=JSON");
    }
    memcpy(key, f, klen);
    key[klen] = '\0';
    json_t *v = NULL;
    if (raw || (strcmp(key, "name") != 0 && strcmp(key, "url") != 0)) {
        v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    }
    if (v == NULL && raw) {
        return ctl_usage_error("--field K:=JSON: not valid JSON");
    }
    if (v == NULL) {
        v = json_string(eq + 1);
    }
    if (v == NULL) {
        return ctl_usage_error("--field: value is not UTF-8");
    }
    json_object_set_new(body, key, v);
    return 0;
}

int ctl_cmd_epg_add(struct ctl_ctx *c, char **args)
{
    (void)args;
    char path[128];
    json_error_t jerr;
    json_t *v, *body;
    int rv = need_client(c);
    if (rv != 0) {
        return rv;
    }
    body = c->json_body != NULL ? json_loads(c->json_body, JSON_REJECT_DUPLICATES, &jerr)
                                : json_object();
    if (!json_is_object(body)) {
        json_decref(body);
        return ctl_usage_error("--json-body must be a JSON object");
    }
    if (c->name != NULL) {
        json_object_set_new(body, "name", json_string(c->name));
    }
    for (int i = 0; i < c->nfields; i++) {
        if ((rv = add_field(body, c->fields[i])) != 0) {
            json_decref(body);
            return rv;
        }
    }
    snprintf(path, sizeof(path), "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/epg-sources",
             c->client_id);
    rv = ctl_call(c, "POST", path, body, &v);
    json_decref(body);
    if (rv != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        json_t *s = json_object_get(v, "epg_source");
        char buf[4096];
        for (size_t i = 0; i < NFIELDS(source_fields); i++) {
            if (json_object_get(s, source_fields[i].key) != NULL) {
                ctl_print_kv(source_fields[i].label,
                             ctl_render(s, source_fields[i].key, buf, sizeof(buf)));
            }
        }
    }
    json_decref(v);
    return 0;
}

/* ---- import and run ---------------------------------------------------------------------- */

struct answer {
    char *data;
    size_t len;
};

static size_t on_answer(char *p, size_t size, size_t nmemb, void *arg)
{
    struct answer *a = arg;
    size_t n = size * nmemb;
    if (n > MAX_ANSWER_BYTES - a->len) {
        return 0;
    }
    char *d = realloc(a->data, a->len + n + 1);
    if (d == NULL) {
        return 0;
    }
    memcpy(d + a->len, p, n);
    a->data = d;
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    return fread(buf, size, nmemb, arg);
}

static int random_key(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    FILE *f = fopen("/dev/urandom", "rbe");
    size_t got = f != NULL ? fread(raw, 1, sizeof(raw), f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    if (got != sizeof(raw)) {
        return -EIO;
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

/* A summary of an import report on stdout (stderr for failures). */
static void show_report(const json_t *r, bool ok)
{
    FILE *f = ok ? stdout : stderr;
    const char *status = json_string_value(json_object_get(r, "status"));
#define N(k) ((long long)json_integer_value(json_object_get(r, k)))
    if (status != NULL && strcmp(status, "not_modified") == 0) {
        fprintf(f, "not modified since the last import (HTTP 304): nothing imported\n");
        return;
    }
    if (ok) {
        fprintf(f,
                "imported %lld programmes into %lld channels in %lld batches (%lld new, %lld "
                "changed, %lld unchanged, %lld removed) in %lld ms\n",
                N("programmes"), N("channels"), N("batches"), N("inserted"), N("updated"),
                N("unchanged"), N("deleted"), N("took_ms"));
    }
    fprintf(f,
            "read %lld programmes of %lld XMLTV channels (%lld bytes%s); skipped %lld, "
            "unmapped %lld, duplicates %lld, overlaps fixed %lld\n",
            N("programmes_read"), N("xmltv_channels"), N("xml_bytes"),
            json_is_true(json_object_get(r, "gzip")) ? ", gzip" : "", N("skipped"), N("unmapped"),
            N("duplicates"), N("overlaps_fixed"));
#undef N
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "skipped_examples"), i, e)
    {
        fprintf(f,
                "  skipped line %lld: ", (long long)json_integer_value(json_object_get(e, "line")));
        ctl_fput_clean(f, json_string_value(json_object_get(e, "why")) ?: "");
        fputc('\n', f);
    }
    if (json_array_size(json_object_get(r, "unmapped_ids")) > 0) {
        char buf[1024];
        fprintf(f, "  unmapped XMLTV channel ids (first ones): %s\n",
                ctl_render(r, "unmapped_ids", buf, sizeof(buf)));
    }
}

/* POSTs the file (NULL: no body) to path; prints the outcome. */
static int import_request(struct ctl_ctx *c, const char *path, const char *file)
{
    char url[CTL_MAX_URL_LEN + 256], auth[CTL_MAX_TOKEN_LEN + 64], idem[80], key[33];
    char errbuf[CURL_ERROR_SIZE];
    FILE *in = NULL;
    curl_off_t size = 0;
    const char *ctype = "Content-Type: application/xml";
    if (file != NULL) {
        struct stat st;
        in = fopen(file, "rbe");
        if (in == NULL || fstat(fileno(in), &st) != 0) {
            fprintf(stderr, "tvmwctl: cannot open %s: %s\n", file, strerror(errno));
            if (in != NULL) {
                fclose(in);
            }
            return 1;
        }
        size = (curl_off_t)st.st_size;
        unsigned char magic[2] = {0, 0};
        if (fread(magic, 1, 2, in) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
            ctype = "Content-Type: application/gzip";
        }
    }
    if (random_key(key) != 0) {
        fprintf(stderr, "tvmwctl: cannot read /dev/urandom\n");
        if (in != NULL) {
            fclose(in);
        }
        return 1;
    }
    snprintf(url, sizeof(url), "%s%s", c->server, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", key);
    struct curl_slist *hdrs = NULL;
    const char *lines[] = {auth, idem, ctype, "Accept: application/json", "Expect:"};
    for (size_t i = 0; i < NFIELDS(lines); i++) {
        hdrs = curl_slist_append(hdrs, lines[i]);
    }
    long timeout = c->timeout_s > IMPORT_MIN_TIMEOUT_S ? c->timeout_s : IMPORT_MIN_TIMEOUT_S;
    struct answer a = {0};
    long status = 0;
    CURLcode rc = CURLE_OK;
    for (int attempt = 0; attempt <= UPLOAD_RETRIES; attempt++) {
        if (in != NULL) {
            rewind(in);
        }
        free(a.data);
        a = (struct answer){0};
        curl_easy_reset(c->curl);
        errbuf[0] = '\0';
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, timeout);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        if (in != NULL) {
            curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c->curl, CURLOPT_READDATA, in);
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, size);
        } else {
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_answer);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &a);
        rc = curl_easy_perform(c->curl);
        status = 0;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        }
        bool again = rc == CURLE_OK ? status == 503
                                    : rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR ||
                                          rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
        if (!again || attempt == UPLOAD_RETRIES) {
            break;
        }
        fprintf(stderr, "tvmwctl: %s, retrying the same import (%d/%d)\n",
                rc == CURLE_OK ? "503 from server" : "connection failed", attempt + 1,
                UPLOAD_RETRIES);
        ctl_sleep_ms(1000L << attempt);
    }
    curl_slist_free_all(hdrs);
    explicit_bzero(auth, sizeof(auth));
    if (in != NULL) {
        fclose(in);
    }
    if (rc != CURLE_OK) {
        fprintf(stderr, "tvmwctl: cannot reach %s: %s\n", c->server,
                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        free(a.data);
        return 1;
    }
    json_t *answer = a.data ? json_loadb(a.data, a.len, 0, NULL) : NULL;
    free(a.data);
    bool ok = status >= 200 && status <= 299;
    if (c->json && answer != NULL) {
        ctl_print_json(answer);
    } else {
        if (!ok) {
            ctl_print_http_error(status, answer);
        }
        if (json_is_object(json_object_get(answer, "import"))) {
            show_report(json_object_get(answer, "import"), ok);
        }
    }
    json_decref(answer);
    return ok ? 0 : 1;
}

static int source_path(struct ctl_ctx *c, const char *id_arg, const char *suffix, char *path,
                       size_t n)
{
    json_int_t id;
    int rv = need_client(c);
    if (rv != 0) {
        return rv;
    }
    if (ctl_parse_id(id_arg, &id) != 0) {
        return ctl_usage_error("SOURCE_ID must be a positive integer");
    }
    snprintf(path, n,
             "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/epg-sources/%" JSON_INTEGER_FORMAT "%s",
             c->client_id, id, suffix);
    return 0;
}

int ctl_cmd_epg_import(struct ctl_ctx *c, char **args)
{
    char path[192];
    int rv = source_path(c, args[0], "/upload", path, sizeof(path));
    return rv != 0 ? rv : import_request(c, path, args[1]);
}

int ctl_cmd_epg_run(struct ctl_ctx *c, char **args)
{
    char path[192];
    int rv = source_path(c, args[0], "/run", path, sizeof(path));
    return rv != 0 ? rv : import_request(c, path, NULL);
}

int ctl_cmd_epg_programs(struct ctl_ctx *c, char **args)
{
    char path[256];
    json_int_t ch;
    json_t *v;
    int rv = need_client(c);
    if (rv != 0) {
        return rv;
    }
    if (ctl_parse_id(args[0], &ch) != 0) {
        return ctl_usage_error("CHANNEL_ID must be a positive integer");
    }
    snprintf(path, sizeof(path),
             "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/programs?channel_id=%" JSON_INTEGER_FORMAT
             "&limit=%llu%s",
             c->client_id, ch, (unsigned long long)(c->limit ? c->limit : 1000),
             c->stale ? "&stale=1" : "");
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        ctl_print_table(json_object_get(v, "programs"), program_fields, NFIELDS(program_fields));
    }
    json_decref(v);
    return 0;
}
