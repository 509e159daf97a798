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

/* tvmwctl_import.c: the bulk-data bundle, see the format at the top of that file. */
int ctl_cmd_sample_data(struct ctl_ctx *c, char **args);
int ctl_cmd_import(struct ctl_ctx *c, char **args);

#endif
