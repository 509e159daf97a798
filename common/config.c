/*
 * Cluster definition parser. Every key has a default and a range; unknown
 * keys are errors so that a typo never silently falls back to a default.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return TVMW_ECONFIG;
}

static int check_keys(json_t *obj, const char *const *allowed, const char *where, char *err,
                      size_t err_len)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(*a, key) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            return fail(err, err_len, "%s: unknown key \"%s\"", where, key);
        }
    }
    return 0;
}

static int get_str(json_t *obj, const char *key, char *dst, size_t dst_len, size_t min_len,
                   int required, char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return required ? fail(err, err_len, "missing \"%s\"", key) : 0;
    }
    if (!json_is_string(v)) {
        return fail(err, err_len, "\"%s\" must be a string", key);
    }
    size_t n = json_string_length(v);
    if (n < min_len || n >= dst_len) {
        return fail(err, err_len, "\"%s\" must be %zu..%zu characters", key, min_len, dst_len - 1);
    }
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t min, uint64_t max, uint64_t *dst,
                    char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        return 0; /* keep the default */
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max) {
        return fail(err, err_len, "\"%s\" must be an integer in %llu..%llu", key,
                    (unsigned long long)min, (unsigned long long)max);
    }
    *dst = (uint64_t)json_integer_value(v);
    return 0;
}

int tvmw_addr_split(const char *addr, char *host, size_t host_len, unsigned *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= host_len) {
        return TVMW_EMALFORMED;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct in_addr ia;
    if (inet_pton(AF_INET, host, &ia) != 1) {
        return TVMW_EMALFORMED;
    }
    unsigned long p = 0;
    const char *s = colon + 1;
    if (*s == '\0') {
        return TVMW_EMALFORMED;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || p > 65535) {
            return TVMW_EMALFORMED;
        }
        p = p * 10 + (unsigned long)(*s - '0');
    }
    if (p == 0 || p > 65535) {
        return TVMW_EMALFORMED;
    }
    *port = (unsigned)p;
    return 0;
}

static int check_addr(const char *addr, const char *what, char *err, size_t err_len)
{
    char host[TVMW_ADDR_MAX];
    unsigned port;
    if (tvmw_addr_split(addr, host, sizeof(host), &port) != 0) {
        return fail(err, err_len, "%s \"%s\" is not IPv4:port", what, addr);
    }
    return 0;
}

static int parse_nodes(json_t *arr, struct tvmw_config *c, char *err, size_t err_len)
{
    static const char *const keys[] = {"id", "raft_address", "http_address", "datacenter", NULL};
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > TVMW_MAX_NODES) {
        return fail(err, err_len, "\"nodes\" must be an array of 1..%d nodes", TVMW_MAX_NODES);
    }
    size_t i;
    json_t *n;
    json_array_foreach(arr, i, n)
    {
        struct tvmw_node_conf *nc = &c->nodes[i];
        int rv;
        if (!json_is_object(n)) {
            return fail(err, err_len, "nodes[%zu] must be an object", i);
        }
        if ((rv = check_keys(n, keys, "nodes[]", err, err_len)) != 0) {
            return rv;
        }
        json_t *id = json_object_get(n, "id");
        if (!json_is_integer(id) || json_integer_value(id) <= 0) {
            return fail(err, err_len, "nodes[%zu].id must be a positive integer", i);
        }
        nc->id = (uint64_t)json_integer_value(id);
        if ((rv = get_str(n, "raft_address", nc->raft_address, sizeof(nc->raft_address), 1, 1, err,
                          err_len)) != 0 ||
            (rv = get_str(n, "http_address", nc->http_address, sizeof(nc->http_address), 1, 1, err,
                          err_len)) != 0 ||
            (rv = get_str(n, "datacenter", nc->datacenter, sizeof(nc->datacenter), 0, 0, err,
                          err_len)) != 0 ||
            (rv = check_addr(nc->raft_address, "raft_address", err, err_len)) != 0 ||
            (rv = check_addr(nc->http_address, "http_address", err, err_len)) != 0) {
            return rv;
        }
        for (size_t j = 0; j < i; j++) {
            if (c->nodes[j].id == nc->id ||
                strcmp(c->nodes[j].raft_address, nc->raft_address) == 0 ||
                strcmp(c->nodes[j].http_address, nc->http_address) == 0) {
                return fail(err, err_len, "nodes[%zu] repeats the id or an address of nodes[%zu]",
                            i, j);
            }
        }
        c->n_nodes++;
    }
    return 0;
}

static int parse_edges(json_t *arr, struct tvmw_config *c, char *err, size_t err_len)
{
    static const char *const keys[] = {"id", "http_address", "datacenter", NULL};
    if (arr == NULL) {
        return 0;
    }
    if (!json_is_array(arr) || json_array_size(arr) > TVMW_MAX_EDGES) {
        return fail(err, err_len, "\"edges\" must be an array of up to %d edges", TVMW_MAX_EDGES);
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        struct tvmw_edge_conf *ec = &c->edges[i];
        int rv;
        if (!json_is_object(e)) {
            return fail(err, err_len, "edges[%zu] must be an object", i);
        }
        if ((rv = check_keys(e, keys, "edges[]", err, err_len)) != 0 ||
            (rv = get_str(e, "id", ec->id, sizeof(ec->id), 1, 1, err, err_len)) != 0 ||
            (rv = get_str(e, "http_address", ec->http_address, sizeof(ec->http_address), 1, 1, err,
                          err_len)) != 0 ||
            (rv = get_str(e, "datacenter", ec->datacenter, sizeof(ec->datacenter), 0, 0, err,
                          err_len)) != 0 ||
            (rv = check_addr(ec->http_address, "http_address", err, err_len)) != 0) {
            return rv;
        }
        c->n_edges++;
    }
    return 0;
}

static int parse_section(json_t *root, const char *name, const char *const *keys, json_t **out,
                         char *err, size_t err_len)
{
    *out = json_object_get(root, name);
    if (*out == NULL) {
        return 0;
    }
    if (!json_is_object(*out)) {
        return fail(err, err_len, "\"%s\" must be an object", name);
    }
    return check_keys(*out, keys, name, err, err_len);
}

/* "journal": the edge's device-write journal (edge/journal.h). */
static int parse_journal(json_t *sec, struct tvmw_config *c, char *err, size_t err_len)
{
    static const char *const keys[] = {"max_writes", NULL};
    uint64_t v = c->journal.max_writes;
    int rv;
    if (sec == NULL) {
        return 0;
    }
    if (!json_is_object(sec)) {
        return fail(err, err_len, "\"journal\" must be an object");
    }
    if ((rv = check_keys(sec, keys, "journal", err, err_len)) != 0 ||
        (rv = get_uint(sec, "max_writes", 100, 100000000, &v, err, err_len)) != 0) {
        return rv;
    }
    c->journal.max_writes = (unsigned)v;
    return 0;
}

static int parse_epg(json_t *sec, struct tvmw_config *c, char *err, size_t err_len)
{
    static const char *const keys[] = {
        "check_interval_ms", "expire_days",     "max_file_bytes", "max_xml_bytes",
        "max_programmes",    "fetch_timeout_s", "spool_dir",      NULL};
    uint64_t v;
    int rv;
    if (sec == NULL) {
        return 0;
    }
    if (!json_is_object(sec)) {
        return fail(err, err_len, "\"epg\" must be an object");
    }
    if ((rv = check_keys(sec, keys, "epg", err, err_len)) != 0) {
        return rv;
    }
#define E(key, min, max, field)                                                                    \
    v = c->epg.field;                                                                              \
    if ((rv = get_uint(sec, key, min, max, &v, err, err_len)) != 0) {                              \
        return rv;                                                                                 \
    }                                                                                              \
    c->epg.field = v;
    E("check_interval_ms", 0, 86400000, check_interval_ms);
    E("expire_days", 0, 3650, expire_days);
    E("max_file_bytes", 1u << 20, 1ull << 40, max_file_bytes);
    E("max_xml_bytes", 1u << 20, 1ull << 42, max_xml_bytes);
    E("max_programmes", 1000, 100000000, max_programmes);
    E("fetch_timeout_s", 5, 86400, fetch_timeout_s);
#undef E
    return get_str(sec, "spool_dir", c->epg.spool_dir, sizeof(c->epg.spool_dir), 0, 0, err,
                   err_len);
}

/* "stream_auth": the edge's stream-token check (edge/tokencheck.h). */
static int parse_stream_auth(json_t *sec, struct tvmw_config *c, char *err, size_t err_len)
{
    static const char *const keys[] = {"skew_s", "auth_duration_s", "session_accounts",
                                       "log_denies_per_s", NULL};
    uint64_t skew = c->stream_auth.skew_s, dur = c->stream_auth.auth_duration_s;
    uint64_t accounts = c->stream_auth.session_accounts, logs = c->stream_auth.log_denies_per_s;
    int rv;
    if (sec == NULL) {
        return 0;
    }
    if (!json_is_object(sec)) {
        return fail(err, err_len, "\"stream_auth\" must be an object");
    }
    if ((rv = check_keys(sec, keys, "stream_auth", err, err_len)) != 0 ||
        (rv = get_uint(sec, "skew_s", 0, 3600, &skew, err, err_len)) != 0 ||
        (rv = get_uint(sec, "auth_duration_s", 10, 86400, &dur, err, err_len)) != 0 ||
        (rv = get_uint(sec, "session_accounts", 64, 1u << 26, &accounts, err, err_len)) != 0 ||
        (rv = get_uint(sec, "log_denies_per_s", 0, 100000, &logs, err, err_len)) != 0) {
        return rv;
    }
    c->stream_auth.skew_s = (unsigned)skew;
    c->stream_auth.auth_duration_s = (unsigned)dur;
    c->stream_auth.session_accounts = (unsigned)accounts;
    c->stream_auth.log_denies_per_s = (unsigned)logs;
    return 0;
}

static void set_defaults(struct tvmw_config *c)
{
    memset(c, 0, sizeof(*c));
    c->raft.election_timeout_ms = 1000;
    c->raft.heartbeat_timeout_ms = 100;
    c->raft.snapshot_threshold = 32768;
    c->raft.snapshot_trailing = 8192;
    c->raft.install_snapshot_timeout_ms = 5000;
    c->raft.pre_vote = true;
    c->http.max_body_bytes = 1 << 20;
    c->http.request_timeout_ms = 10000;
    c->http.max_connections = 1024;
    c->state.map_size_mb = 4096;
    c->state.dedup_window_s = 300;
    c->state.changelog_entries = 100000;
    c->billing.check_interval_ms = 3600000;
    c->billing.period_unit_s = 30 * 86400;
    c->billing.batch = 1000;
    c->epg.check_interval_ms = 60000;
    c->epg.expire_days = 14;
    c->epg.max_file_bytes = 2ull << 30;
    c->epg.max_xml_bytes = 8ull << 30;
    c->epg.max_programmes = 4000000;
    c->epg.fetch_timeout_s = 900;
    c->journal.max_writes = 100000;
    c->stream_auth.skew_s = 30;
    c->stream_auth.auth_duration_s = 60;
    c->stream_auth.session_accounts = 65536;
    c->stream_auth.log_denies_per_s = 20;
    c->probe.interval_ms = 5000;
    c->probe.timeout_ms = 2000;
    c->probe.down_after = 1; /* edges route around a dead service within one period */
    c->probe.up_after = 2;   /* one good answer does not bring a flapping one back */
}

int tvmw_config_parse(const char *text, size_t len, struct tvmw_config *c, char *err,
                      size_t err_len)
{
    static const char *const top[] = {
        "cluster_name", "admin_token", "data_root", "raft", "http",    "state",       "billing",
        "nodes",        "edges",       "probe",     "epg",  "journal", "stream_auth", NULL};
    static const char *const raft_keys[] = {"election_timeout_ms",
                                            "heartbeat_timeout_ms",
                                            "snapshot_threshold",
                                            "snapshot_trailing",
                                            "install_snapshot_timeout_ms",
                                            "pre_vote",
                                            NULL};
    static const char *const http_keys[] = {"max_body_bytes", "request_timeout_ms",
                                            "max_connections", NULL};
    static const char *const state_keys[] = {"map_size_mb", "dedup_window_s", "changelog_entries",
                                             NULL};
    static const char *const billing_keys[] = {"check_interval_ms", "period_unit_s", "batch", NULL};
    static const char *const probe_keys[] = {"interval_ms", "timeout_ms", "down_after", "up_after",
                                             NULL};
    json_error_t jerr;
    json_t *sec;
    uint64_t v;
    int rv;

    set_defaults(c);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return fail(err, err_len, "line %d: %s", jerr.line, jerr.text);
    }
    if (!json_is_object(root)) {
        rv = fail(err, err_len, "the top level must be an object");
        goto out;
    }
    if ((rv = check_keys(root, top, "top level", err, err_len)) != 0 ||
        (rv = get_str(root, "cluster_name", c->cluster_name, sizeof(c->cluster_name), 1, 1, err,
                      err_len)) != 0 ||
        (rv = get_str(root, "admin_token", c->admin_token, sizeof(c->admin_token), 16, 1, err,
                      err_len)) != 0 ||
        (rv = get_str(root, "data_root", c->data_root, sizeof(c->data_root), 1, 1, err, err_len)) !=
            0) {
        goto out;
    }
    if ((rv = parse_section(root, "raft", raft_keys, &sec, err, err_len)) != 0) {
        goto out;
    }
    if (sec != NULL) {
#define U(key, min, max, field)                                                                    \
    v = c->field;                                                                                  \
    if ((rv = get_uint(sec, key, min, max, &v, err, err_len)) != 0) {                              \
        goto out;                                                                                  \
    }                                                                                              \
    c->field = v;
        U("election_timeout_ms", 100, 60000, raft.election_timeout_ms);
        U("heartbeat_timeout_ms", 10, 10000, raft.heartbeat_timeout_ms);
        U("snapshot_threshold", 16, 100000000, raft.snapshot_threshold);
        U("snapshot_trailing", 0, 100000000, raft.snapshot_trailing);
        U("install_snapshot_timeout_ms", 500, 600000, raft.install_snapshot_timeout_ms);
        json_t *pv = json_object_get(sec, "pre_vote");
        if (pv != NULL) {
            if (!json_is_boolean(pv)) {
                rv = fail(err, err_len, "\"pre_vote\" must be true or false");
                goto out;
            }
            c->raft.pre_vote = json_is_true(pv);
        }
    }
    if ((rv = parse_section(root, "http", http_keys, &sec, err, err_len)) != 0) {
        goto out;
    }
    if (sec != NULL) {
        U("max_body_bytes", 1024, 1u << 30, http.max_body_bytes);
        U("request_timeout_ms", 100, 600000, http.request_timeout_ms);
        U("max_connections", 1, 65536, http.max_connections);
    }
    if ((rv = parse_section(root, "state", state_keys, &sec, err, err_len)) != 0) {
        goto out;
    }
    if (sec != NULL) {
        U("map_size_mb", 64, 1048576, state.map_size_mb);
        U("dedup_window_s", 10, 86400, state.dedup_window_s);
        U("changelog_entries", 100, 100000000, state.changelog_entries);
    }
    if ((rv = parse_section(root, "billing", billing_keys, &sec, err, err_len)) != 0) {
        goto out;
    }
    if (sec != NULL) {
        U("check_interval_ms", 0, 86400000, billing.check_interval_ms);
        U("period_unit_s", 1, 31622400, billing.period_unit_s);
        U("batch", 1, 100000, billing.batch);
    }
    if ((rv = parse_section(root, "probe", probe_keys, &sec, err, err_len)) != 0) {
        goto out;
    }
    if (sec != NULL) {
        U("interval_ms", 0, 3600000, probe.interval_ms);
        U("timeout_ms", 50, 600000, probe.timeout_ms);
        U("down_after", 1, 1000, probe.down_after);
        U("up_after", 1, 1000, probe.up_after);
#undef U
    }
    if (c->probe.interval_ms != 0 && c->probe.timeout_ms >= c->probe.interval_ms) {
        /* A round must end before the next one is due, or "down within one
         * period" no longer holds. */
        rv = fail(err, err_len, "probe.timeout_ms must be below probe.interval_ms");
        goto out;
    }
    if (c->raft.heartbeat_timeout_ms >= c->raft.election_timeout_ms) {
        /* libraft only asserts this, and its asserts are compiled out. */
        rv = fail(err, err_len, "raft.heartbeat_timeout_ms must be below election_timeout_ms");
        goto out;
    }
    if ((rv = parse_nodes(json_object_get(root, "nodes"), c, err, err_len)) != 0 ||
        (rv = parse_edges(json_object_get(root, "edges"), c, err, err_len)) != 0) {
        goto out;
    }
    if ((rv = parse_journal(json_object_get(root, "journal"), c, err, err_len)) != 0) {
        goto out;
    }
    if ((rv = parse_stream_auth(json_object_get(root, "stream_auth"), c, err, err_len)) != 0) {
        goto out;
    }
    if ((rv = parse_epg(json_object_get(root, "epg"), c, err, err_len)) != 0) {
        goto out;
    }
out:
    json_decref(root);
    return rv;
}

int tvmw_config_load(const char *path, struct tvmw_config *out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return fail(err, err_len, "cannot open %s: %m", path);
    }
    static char text[TVMW_MAX_CONFIG_BYTES + 1];
    size_t n = fread(text, 1, sizeof(text), f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        return fail(err, err_len, "cannot read %s", path);
    }
    if (n > TVMW_MAX_CONFIG_BYTES) {
        return fail(err, err_len, "%s is larger than %d bytes", path, TVMW_MAX_CONFIG_BYTES);
    }
    return tvmw_config_parse(text, n, out, err, err_len);
}

const struct tvmw_node_conf *tvmw_config_node(const struct tvmw_config *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].id == id) {
            return &c->nodes[i];
        }
    }
    return NULL;
}
