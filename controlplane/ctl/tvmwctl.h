/*
 * What the files of tvmwctl share: the per-run context filled from the command line, the
 * request helpers that speak docs/admin-api.md (with the retry and Idempotency-Key rules of
 * tvmwctl.c) and the commands implemented outside tvmwctl.c.
 *
 * tvmwctl is a single-threaded CLI: nothing here is thread-safe, and every function may print
 * to stderr. Commands return a process exit code: 0, 1 (failed) or CTL_EXIT_USAGE.
 */
#ifndef TVMW_CONTROLPLANE_CTL_TVMWCTL_H
#define TVMW_CONTROLPLANE_CTL_TVMWCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

#define CTL_EXIT_USAGE    2
#define CTL_MAX_URL_LEN   2048
#define CTL_MAX_TOKEN_LEN 4096
#define CTL_MAX_FIELDS    64 /* --field given more often is a usage error */

#define CTL_SAMPLE_MAX_ACCOUNTS 8999999u /* abonements are 7 digits from 1000001 */
#define CTL_SAMPLE_MAX_CHANNELS 99999u   /* channel numbers are 0-99999 */
#define CTL_IMPORT_MAX_BATCH    10000u   /* docs/admin-api.md: 1-10000 items per import */

struct ctl_ctx {
    char server[CTL_MAX_URL_LEN];
    char token[CTL_MAX_TOKEN_LEN + 1];
    bool json;
    long timeout_s;
    CURL *curl;
    unsigned given; /* OPT_* of tvmwctl.c seen on the command line */
    bool stale;
    const char *name;
    const char *settings;
    const char *api_key;
    const char *billing_key;
    json_int_t client_id; /* --client, 0 if not given */
    const char *json_body;
    const char *fields[CTL_MAX_FIELDS]; /* --field k=v, in order */
    int nfields;
    const char *set;      /* --set, may be "" (the empty set) */
    uint64_t after;       /* --after */
    uint64_t limit;       /* --limit, 0 if not given */
    bool follow;          /* --follow */
    uint64_t accounts;    /* --accounts, 0 if not given */
    uint64_t channels;    /* --channels, 0 if not given */
    uint64_t seed;        /* --seed */
    const char *out_file; /* --out */
    uint64_t batch;       /* --batch, 0 if not given */
};

/* One field of an answer: its key, its label in "label: value" views and its table header
 * (NULL: not a column). */
struct ctl_field {
    const char *key;
    const char *label;
    const char *header;
};

/* Prints msg and the usage line to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *msg);

/* Writes s to f with control bytes replaced, so that server text cannot drive the terminal. */
void ctl_fput_clean(FILE *f, const char *s);

/*
 * Sends method path (under the --server URL) with body (borrowed, may be NULL). A write
 * carries one Idempotency-Key for all its attempts; 503s and lost connections are retried
 * with backoff. Returns 0 with *status set and *out the answer if it is JSON (NULL
 * otherwise; caller decrefs), whatever the status; -1 after printing why no answer came.
 */
int ctl_request(struct ctl_ctx *c, const char *method, const char *path, const json_t *body,
                long *status, json_t **out);

/*
 * ctl_request() for callers that want a 2xx JSON object: returns 0 with *out set (caller
 * decrefs); otherwise prints the error ("404 not_found: ...") and returns -1.
 */
int ctl_call(struct ctl_ctx *c, const char *method, const char *path, const json_t *body,
             json_t **out);

/* Prints the error of a non-2xx answer (may be NULL) as ctl_call() does. */
void ctl_print_http_error(long status, const json_t *answer);

/* ---- output (tvmwctl.c) ---- */

/*
 * obj[key] as text: a string of obj (valid while obj is) or buf. "*_at" (unix seconds) and
 * "*_ms" (milliseconds) keys show as UTC times, reals with 2 decimals, objects and arrays as
 * compact JSON cut to n bytes; a missing key as "-".
 */
const char *ctl_render(const json_t *obj, const char *key, char *buf, size_t n);
/* "label            value", the value cleaned of control bytes. */
void ctl_print_kv(const char *label, const char *value);
/* An aligned table of the objects in rows, one column per field with a header. */
void ctl_print_table(const json_t *rows, const struct ctl_field *f, size_t nf);
/* v indented, on stdout. */
void ctl_print_json(const json_t *v);

/* A positive decimal integer up to LLONG_MAX; -1 for anything else. */
int ctl_parse_id(const char *s, json_int_t *out);
void ctl_sleep_ms(long ms);

/* ---- commands; args are the words after the command name ---- */

/* tvmwctl_catalog.c: the catalogue, tariffs and audit trail of docs/admin-api.md. */
int ctl_cmd_catalog_list(struct ctl_ctx *c, char **args);
int ctl_cmd_catalog_get(struct ctl_ctx *c, char **args);
int ctl_cmd_catalog_create(struct ctl_ctx *c, char **args);
int ctl_cmd_catalog_modify(struct ctl_ctx *c, char **args);
int ctl_cmd_catalog_delete(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_list(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_get(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_create(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_modify(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_delete(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_channels(struct ctl_ctx *c, char **args);
int ctl_cmd_tariff_services(struct ctl_ctx *c, char **args);
int ctl_cmd_audit(struct ctl_ctx *c, char **args);

/* tvmwctl_sample.c: writes a demo bundle (format: tvmwctl_import.c). */
int ctl_cmd_sample_data(struct ctl_ctx *c, char **args);
/* tvmwctl_import.c: pushes a bundle to a client. */
int ctl_cmd_import(struct ctl_ctx *c, char **args);

/* tvmwctl_epg.c: EPG sources, XMLTV imports and the programme guide of a client. */
int ctl_cmd_epg_sources(struct ctl_ctx *c, char **args);
int ctl_cmd_epg_add(struct ctl_ctx *c, char **args);
int ctl_cmd_epg_import(struct ctl_ctx *c, char **args);
int ctl_cmd_epg_run(struct ctl_ctx *c, char **args);
int ctl_cmd_epg_programs(struct ctl_ctx *c, char **args);

#endif
