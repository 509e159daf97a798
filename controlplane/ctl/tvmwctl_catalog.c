/*
 * tvmwctl catalog, tariff and audit: the catalogue of a client (channels, categories,
 * datacenters, streaming services), its tariffs with their channel and service sets, and the
 * audit trail, as docs/admin-api.md describes them. Tables by default, the server's JSON with
 * --json.
 *
 * Admin tariff writes answer 200 with a Billing API reply whose "error" may be non-zero; such
 * a reply is a failed command here. Catalogue bodies come from --json-body and --field K=V;
 * text fields stay text ("name=1984"), other values are JSON when they parse as JSON.
 */
#include "controlplane/ctl/tvmwctl.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define AUDIT_PAGE_MAX     1000 /* docs/admin-api.md: limit <= 1000 */
#define AUDIT_POLL_MS      1000
#define AUDIT_PARAMS_SHOWN 120
#define MAX_SET_IDS        100000
#define NFIELDS(a)         (sizeof(a) / sizeof((a)[0]))

static const struct ctl_field channel_fields[] = {
    {"id", "id:", "ID"},
    {"number", "number:", "NUMBER"},
    {"name", "name:", "NAME"},
    {"category_id", "category:", "CATEGORY"},
    {"stream_name", "stream name:", "STREAM"},
    {"epg_channel_id", "epg channel:", "EPG-ID"},
    {"archive_days", "archive days:", "ARCHIVE"},
    {"enabled", "enabled:", "ENABLED"},
    {"icon", "icon:", NULL},
    {"age_rating", "age rating:", NULL},
    {"created_ms", "created:", NULL},
    {"updated_ms", "updated:", NULL},
};

static const struct ctl_field category_fields[] = {
    {"id", "id:", "ID"},
    {"name", "name:", "NAME"},
    {"order", "order:", "ORDER"},
    {"created_ms", "created:", NULL},
    {"updated_ms", "updated:", NULL},
};

static const struct ctl_field datacenter_fields[] = {
    {"id", "id:", "ID"},
    {"name", "name:", "NAME"},
    {"code", "code:", "CODE"},
    {"created_ms", "created:", NULL},
    {"updated_ms", "updated:", NULL},
};

static const struct ctl_field service_fields[] = {
    {"id", "id:", "ID"},
    {"name", "name:", "NAME"},
    {"type", "type:", "TYPE"},
    {"datacenter_id", "datacenter:", "DC"},
    {"weight", "weight:", "WEIGHT"},
    {"enabled", "enabled:", "ENABLED"},
    {"health", "health:", "HEALTH"},
    {"url_masks", "url masks:", NULL},
    {"health_url", "health url:", NULL},
    {"token_ip_binding", "ip binding:", NULL},
    {"created_ms", "created:", NULL},
    {"updated_ms", "updated:", NULL},
};

static const struct ctl_field tariff_fields[] = {
    {"id", "id:", "ID"},
    {"ext_id", "ext id:", "EXT-ID"},
    {"name", "name:", "NAME"},
    {"period", "period:", "PERIOD"},
    {"price", "price:", "PRICE"},
    {"basic_tariff_priority", "basic priority:", "BASIC"},
    {"sessions_count", "sessions:", "SESSIONS"},
    {"basic_sessions_count", "basic sessions:", "BASIC-SESS"},
    {"channels_count", "channels:", "CHANNELS"},
    {"activation_price", "activation fee:", NULL},
    {"ip_restriction", "ip restriction:", NULL},
};

/* A catalogue kind: its path segment, its keys in answers and its columns. */
struct kind {
    const char *path;
    const char *list_key;
    const char *one_key;
    const struct ctl_field *fields;
    size_t nfields;
};

static const struct kind kinds[] = {
    {"channels", "channels", "channel", channel_fields, NFIELDS(channel_fields)},
    {"categories", "categories", "category", category_fields, NFIELDS(category_fields)},
    {"datacenters", "datacenters", "datacenter", datacenter_fields, NFIELDS(datacenter_fields)},
    {"streaming-services", "streaming_services", "streaming_service", service_fields,
     NFIELDS(service_fields)},
};

/* Fields that are text even when they look like a number ("name=1984", "ext_id=5"). */
static const char *const text_fields[] = {"name",   "icon",   "epg_channel_id", "stream_name",
                                          "code",   "type",   "health_url",     "health",
                                          "ext_id", "period", "comment",        NULL};

static const struct kind *find_kind(const char *name)
{
    for (size_t i = 0; i < NFIELDS(kinds); i++) {
        if (strcmp(kinds[i].path, name) == 0) {
            return &kinds[i];
        }
    }
    return NULL;
}

/* Every field of obj: the known ones with their labels first, then the others by key. */
static void print_object(json_t *obj, const struct ctl_field *f, size_t nf)
{
    char buf[4096], label[128];
    const char *key;
    json_t *v;
    size_t i;

    for (i = 0; i < nf; i++) {
        if (json_object_get(obj, f[i].key) != NULL) {
            ctl_print_kv(f[i].label, ctl_render(obj, f[i].key, buf, sizeof(buf)));
        }
    }
    json_object_foreach(obj, key, v)
    {
        for (i = 0; i < nf && strcmp(f[i].key, key) != 0; i++) {
        }
        if (i == nf && strcmp(key, "client_id") != 0) {
            snprintf(label, sizeof(label), "%s:", key);
            ctl_print_kv(label, ctl_render(obj, key, buf, sizeof(buf)));
        }
    }
}

/* "--client CID" is required by this command. */
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

/* "/admin/v1/clients/CID/<what>[/ID][<suffix>]" into path; id_arg may be NULL. */
static int client_path(char *path, size_t n, const struct ctl_ctx *c, const char *what,
                       const char *id_arg, const char *suffix)
{
    json_int_t id = 0;
    int len;

    if (id_arg != NULL && ctl_parse_id(id_arg, &id) != 0) {
        return ctl_usage_error("ID must be a positive integer");
    }
    if (id_arg != NULL) {
        len = snprintf(path, n,
                       "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/%s/%" JSON_INTEGER_FORMAT "%s",
                       c->client_id, what, id, suffix);
    } else {
        len = snprintf(path, n, "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/%s%s", c->client_id,
                       what, suffix);
    }
    if (len < 0 || (size_t)len >= n) {
        return ctl_usage_error("path too long");
    }
    return 0;
}

/* The value of one --field: text for text fields, else JSON when it parses as JSON. */
static json_t *field_value(const char *key, const char *text, bool raw)
{
    json_t *v;

    if (raw) {
        return json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    }
    for (const char *const *t = text_fields; *t != NULL; t++) {
        if (strcmp(*t, key) == 0) {
            return json_string(text);
        }
    }
    v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL || json_is_string(v)) {
        json_decref(v);
        return json_string(text);
    }
    return v;
}

/* The body of a create/modify from --json-body and then every --field (which win). */
static int build_fields_body(const struct ctl_ctx *c, json_t **out)
{
    json_error_t jerr;
    char msg[512], key[256];
    json_t *body, *v;

    if (c->json_body == NULL && c->nfields == 0) {
        return ctl_usage_error("give the fields with --json-body JSON or --field K=V");
    }
    body = c->json_body != NULL ? json_loads(c->json_body, JSON_REJECT_DUPLICATES, &jerr)
                                : json_object();
    if (!json_is_object(body)) {
        snprintf(msg, sizeof(msg), "--json-body must be a JSON object%s%s",
                 body == NULL ? ": " : "", body == NULL ? jerr.text : "");
        json_decref(body);
        return ctl_usage_error(msg);
    }
    for (int i = 0; i < c->nfields; i++) {
        const char *f = c->fields[i], *eq = strchr(f, '=');
        size_t klen = eq != NULL ? (size_t)(eq - f) : 0;
        bool raw = klen > 0 && f[klen - 1] == ':';

        klen -= raw ? 1 : 0;
        if (eq == NULL || klen == 0 || klen >= sizeof(key)) {
            snprintf(msg, sizeof(msg), "--field wants K=V or K:=JSON, not \"%.200s\"", f);
            json_decref(body);
            return ctl_usage_error(msg);
        }
        memcpy(key, f, klen);
        key[klen] = '\0';
        v = field_value(key, eq + 1, raw);
        if (v == NULL) {
            snprintf(msg, sizeof(msg), "--field %s: not valid JSON (or not UTF-8)", key);
            json_decref(body);
            return ctl_usage_error(msg);
        }
        json_object_set_new(body, key, v);
    }
    *out = body;
    return 0;
}

static int catalog_kind(char **args, const struct kind **out)
{
    *out = find_kind(args[0]);
    if (*out == NULL) {
        return ctl_usage_error(
            "KIND must be channels, categories, datacenters or streaming-services");
    }
    return 0;
}

int ctl_cmd_catalog_list(struct ctl_ctx *c, char **args)
{
    const struct kind *k;
    char path[256];
    json_t *v;
    int rv;

    if ((rv = catalog_kind(args, &k)) != 0 || (rv = need_client(c)) != 0 ||
        (rv = client_path(path, sizeof(path), c, k->path, NULL, c->stale ? "?stale=1" : "")) != 0) {
        return rv;
    }
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        ctl_print_table(json_object_get(v, k->list_key), k->fields, k->nfields);
    }
    json_decref(v);
    return 0;
}

int ctl_cmd_catalog_get(struct ctl_ctx *c, char **args)
{
    const struct kind *k;
    char path[256];
    json_t *v;
    int rv;

    if ((rv = catalog_kind(args, &k)) != 0 || (rv = need_client(c)) != 0 ||
        (rv = client_path(path, sizeof(path), c, k->path, args[1], c->stale ? "?stale=1" : "")) !=
            0) {
        return rv;
    }
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        print_object(json_object_get(v, k->one_key), k->fields, k->nfields);
    }
    json_decref(v);
    return 0;
}

/* create (id_arg NULL) or modify. */
static int catalog_write(struct ctl_ctx *c, const struct kind *k, const char *id_arg)
{
    char path[256];
    json_t *body, *v;
    int rv;

    if ((rv = need_client(c)) != 0 ||
        (rv = client_path(path, sizeof(path), c, k->path, id_arg, "")) != 0 ||
        (rv = build_fields_body(c, &body)) != 0) {
        return rv;
    }
    rv = ctl_call(c, id_arg == NULL ? "POST" : "PATCH", path, body, &v);
    json_decref(body);
    if (rv != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        print_object(json_object_get(v, k->one_key), k->fields, k->nfields);
    }
    json_decref(v);
    return 0;
}

int ctl_cmd_catalog_create(struct ctl_ctx *c, char **args)
{
    const struct kind *k;
    int rv = catalog_kind(args, &k);

    return rv != 0 ? rv : catalog_write(c, k, NULL);
}

int ctl_cmd_catalog_modify(struct ctl_ctx *c, char **args)
{
    const struct kind *k;
    int rv = catalog_kind(args, &k);

    return rv != 0 ? rv : catalog_write(c, k, args[1]);
}

int ctl_cmd_catalog_delete(struct ctl_ctx *c, char **args)
{
    const struct kind *k;
    char path[256];
    json_t *v;
    int rv;

    if ((rv = catalog_kind(args, &k)) != 0 || (rv = need_client(c)) != 0 ||
        (rv = client_path(path, sizeof(path), c, k->path, args[1], "")) != 0) {
        return rv;
    }
    if (ctl_call(c, "DELETE", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        printf("deleted %s %" JSON_INTEGER_FORMAT "\n", k->one_key,
               json_integer_value(json_object_get(v, "deleted")));
    }
    json_decref(v);
    return 0;
}

/* Tariff lists carry every channel of every tariff; the table shows how many. */
static void count_tariff_channels(json_t *tariff)
{
    json_t *ch = json_object_get(tariff, "channels");

    if (json_is_array(ch)) {
        json_object_set_new(tariff, "channels_count",
                            json_integer((json_int_t)json_array_size(ch)));
    }
}

int ctl_cmd_tariff_list(struct ctl_ctx *c, char **args)
{
    char path[256];
    json_t *v, *t;
    size_t i;
    int rv;

    (void)args;
    if ((rv = need_client(c)) != 0 || (rv = client_path(path, sizeof(path), c, "tariffs", NULL,
                                                        c->stale ? "?stale=1" : "")) != 0) {
        return rv;
    }
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        json_array_foreach(json_object_get(v, "tariffs"), i, t)
        {
            count_tariff_channels(t);
        }
        ctl_print_table(json_object_get(v, "tariffs"), tariff_fields, NFIELDS(tariff_fields));
    }
    json_decref(v);
    return 0;
}

int ctl_cmd_tariff_get(struct ctl_ctx *c, char **args)
{
    char path[256];
    json_t *v, *t;
    int rv;

    if ((rv = need_client(c)) != 0 || (rv = client_path(path, sizeof(path), c, "tariffs", args[0],
                                                        c->stale ? "?stale=1" : "")) != 0) {
        return rv;
    }
    if (ctl_call(c, "GET", path, NULL, &v) != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        t = json_object_get(v, "tariff");
        count_tariff_channels(t);
        json_object_del(t, "channels"); /* the count is enough here; --json shows them */
        print_object(t, tariff_fields, NFIELDS(tariff_fields));
    }
    json_decref(v);
    return 0;
}

/*
 * Admin tariff writes answer 200 with the Billing API's reply: "error" 0 or a method code
 * with "error_message" and "error_fields". Non-zero is a failure of the command.
 */
static int tariff_write(struct ctl_ctx *c, const char *method, const char *id_arg, json_t *body,
                        const char *done)
{
    char path[256];
    json_t *v;
    json_int_t err;
    int rv;

    rv = client_path(path, sizeof(path), c, "tariffs", id_arg, "");
    if (rv != 0) {
        json_decref(body);
        return rv;
    }
    rv = ctl_call(c, method, path, body, &v);
    json_decref(body);
    if (rv != 0) {
        return 1;
    }
    err = json_integer_value(json_object_get(v, "error"));
    if (c->json) {
        ctl_print_json(v);
    } else if (err != 0) {
        char *fields = json_dumps(json_object_get(v, "error_fields"), JSON_COMPACT);
        fprintf(stderr, "tvmwctl: error %" JSON_INTEGER_FORMAT ": ", err);
        ctl_fput_clean(stderr, json_string_value(json_object_get(v, "error_message")) != NULL
                                   ? json_string_value(json_object_get(v, "error_message"))
                                   : "(no message)");
        if (fields != NULL && strcmp(fields, "{}") != 0) {
            fputc(' ', stderr);
            ctl_fput_clean(stderr, fields);
        }
        fputc('\n', stderr);
        free(fields);
    } else {
        printf("%s tariff %s\n", done,
               id_arg != NULL ? id_arg
                              : ctl_render(v, "id", path, sizeof(path))); /* path is free now */
    }
    json_decref(v);
    return err != 0 ? 1 : 0;
}

int ctl_cmd_tariff_create(struct ctl_ctx *c, char **args)
{
    json_t *body;
    int rv;

    (void)args;
    if ((rv = need_client(c)) != 0 || (rv = build_fields_body(c, &body)) != 0) {
        return rv;
    }
    return tariff_write(c, "POST", NULL, body, "created");
}

int ctl_cmd_tariff_modify(struct ctl_ctx *c, char **args)
{
    json_t *body;
    int rv;

    if ((rv = need_client(c)) != 0 || (rv = build_fields_body(c, &body)) != 0) {
        return rv;
    }
    return tariff_write(c, "PATCH", args[0], body, "modified");
}

int ctl_cmd_tariff_delete(struct ctl_ctx *c, char **args)
{
    int rv = need_client(c);

    return rv != 0 ? rv : tariff_write(c, "DELETE", args[0], NULL, "deleted");
}

/* "1,2,3" (spaces allowed) into a JSON array of ids; "" is the empty set. */
static int parse_id_set(const char *s, json_t **out)
{
    json_t *ids = json_array();
    char item[32];
    json_int_t id;

    while (ids != NULL && *s != '\0') {
        size_t n = strcspn(s, ",");
        size_t b = 0, e = n;

        while (b < e && s[b] == ' ') {
            b++;
        }
        while (e > b && s[e - 1] == ' ') {
            e--;
        }
        if (e - b == 0 || e - b >= sizeof(item) || json_array_size(ids) >= MAX_SET_IDS) {
            json_decref(ids);
            return ctl_usage_error("--set wants ids separated by commas, e.g. --set 1,2,3");
        }
        memcpy(item, s + b, e - b);
        item[e - b] = '\0';
        if (ctl_parse_id(item, &id) != 0) {
            json_decref(ids);
            return ctl_usage_error("--set: every id must be a positive integer");
        }
        json_array_append_new(ids, json_integer(id));
        s += n + (s[n] == ',' ? 1 : 0);
    }
    if (ids == NULL) {
        fprintf(stderr, "tvmwctl: out of memory\n");
        return 1;
    }
    *out = ids;
    return 0;
}

/* tariff channels|services [CID] TARIFF_ID [--set LIST]; CID may come from --client. */
static int tariff_links(struct ctl_ctx *c, char **args, const char *what, const char *label)
{
    const char *tariff_arg = args[1] != NULL ? args[1] : args[0];
    json_t *body = NULL, *set = NULL, *v, *id;
    char path[256];
    size_t i;
    int rv;

    if (args[1] != NULL && ctl_parse_id(args[0], &c->client_id) != 0) {
        return ctl_usage_error("CID must be a positive integer");
    }
    if ((rv = need_client(c)) != 0 ||
        (rv = client_path(path, sizeof(path), c, "tariffs", tariff_arg, what)) != 0 ||
        (c->set != NULL && (rv = parse_id_set(c->set, &set)) != 0)) {
        return rv;
    }
    if (set != NULL && (body = json_pack("{s:o}", "ids", set)) == NULL) {
        fprintf(stderr, "tvmwctl: out of memory\n");
        return 1;
    }
    rv = ctl_call(c, body != NULL ? "PUT" : "GET", path, body, &v);
    json_decref(body);
    if (rv != 0) {
        return 1;
    }
    if (c->json) {
        ctl_print_json(v);
    } else {
        printf("tariff %s %s:", tariff_arg, label);
        json_array_foreach(json_object_get(v, "ids"), i, id)
        {
            printf("%s%" JSON_INTEGER_FORMAT, i == 0 ? " " : ",", json_integer_value(id));
        }
        printf("%s\n", json_array_size(json_object_get(v, "ids")) == 0 ? " (none)" : "");
    }
    json_decref(v);
    return 0;
}

int ctl_cmd_tariff_channels(struct ctl_ctx *c, char **args)
{
    return tariff_links(c, args, "/channels", "channels");
}

int ctl_cmd_tariff_services(struct ctl_ctx *c, char **args)
{
    return tariff_links(c, args, "/streaming-services", "streaming services");
}

/* One audit record as a table row; widths are fixed because --follow prints as it goes. */
static void print_audit_row(const json_t *r)
{
    char when[64];
    const char *src = json_string_value(json_object_get(r, "source"));

    printf("%-9" JSON_INTEGER_FORMAT " %-20s %-6" JSON_INTEGER_FORMAT
           " %-15s %-6" JSON_INTEGER_FORMAT " %-28s ",
           json_integer_value(json_object_get(r, "index")),
           ctl_render(r, "time_ms", when, sizeof(when)),
           json_integer_value(json_object_get(r, "client_id")), src != NULL ? src : "-",
           json_integer_value(json_object_get(r, "error")),
           json_string_value(json_object_get(r, "method")) != NULL
               ? json_string_value(json_object_get(r, "method"))
               : "?");
    char *text = json_dumps(json_object_get(r, "params"), JSON_COMPACT);
    size_t len = text != NULL ? strlen(text) : 0;

    if (len > AUDIT_PARAMS_SHOWN) {   /* the start is enough to recognise a request */
        len = AUDIT_PARAMS_SHOWN - 3; /* "..." and the NUL fit in the text cut off */
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80) {
            len--; /* not inside a UTF-8 sequence */
        }
        memcpy(text + len, "...", 4);
    }
    ctl_fput_clean(stdout, text != NULL ? text : "-");
    putchar('\n');
    free(text);
}

/*
 * Pages through the audit trail with after=next_after. The end of the trail is a page that
 * moves next_after no further; --follow then polls every second. --json collects the records
 * into one {"records", "next_after"} object, or with --follow prints one per line.
 */
int ctl_cmd_audit(struct ctl_ctx *c, char **args)
{
    uint64_t after = c->after, printed = 0;
    json_t *all = NULL, *v, *r;
    bool header = false;
    char path[256];
    size_t i;
    int n;

    (void)args;
    if (c->token[0] == '\0') {
        return ctl_usage_error("no admin token: use --token-file FILE, TVMW_TOKEN or --token");
    }
    if (c->json && !c->follow && (all = json_array()) == NULL) {
        return 1;
    }
    for (;;) {
        uint64_t want = AUDIT_PAGE_MAX;
        if (c->limit != 0 && c->limit - printed < want) {
            want = c->limit - printed;
        }
        if (c->client_id != 0) {
            n = snprintf(path, sizeof(path),
                         "/admin/v1/clients/%" JSON_INTEGER_FORMAT "/audit?after=%llu&limit=%llu",
                         c->client_id, (unsigned long long)after, (unsigned long long)want);
        } else {
            n = snprintf(path, sizeof(path), "/admin/v1/audit?after=%llu&limit=%llu",
                         (unsigned long long)after, (unsigned long long)want);
        }
        if (n < 0 || (size_t)n >= sizeof(path) || ctl_call(c, "GET", path, NULL, &v) != 0) {
            json_decref(all);
            return 1;
        }
        json_array_foreach(json_object_get(v, "records"), i, r)
        {
            if (all != NULL) {
                json_array_append(all, r);
            } else if (c->json) {
                char *line = json_dumps(r, JSON_COMPACT);
                if (line != NULL) {
                    puts(line);
                    free(line);
                }
            } else {
                if (!header) {
                    printf("%-9s %-20s %-6s %-15s %-6s %-28s %s\n", "INDEX", "TIME", "CLIENT",
                           "SOURCE", "ERROR", "METHOD", "PARAMS");
                    header = true;
                }
                print_audit_row(r);
            }
            printed++;
        }
        uint64_t next = (uint64_t)json_integer_value(json_object_get(v, "next_after"));
        bool progress = next > after;
        after = progress ? next : after;
        json_decref(v);
        if (c->limit != 0 && printed >= c->limit) {
            break;
        }
        if (!progress) {
            if (!c->follow) {
                break;
            }
            fflush(stdout);
            ctl_sleep_ms(AUDIT_POLL_MS);
        }
    }
    if (all != NULL) {
        v = json_pack("{s:o, s:I}", "records", all, "next_after", (json_int_t)after);
        ctl_print_json(v);
        json_decref(v);
    } else if (!c->json && !header) {
        printf("no audit records after %llu\n", (unsigned long long)c->after);
    }
    if (!c->json) {
        fprintf(stderr, "next: --after %llu\n", (unsigned long long)after);
    }
    return 0;
}
