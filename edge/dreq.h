/*
 * Parameters of one device-API request: the query string and, for a form
 * body (application/x-www-form-urlencoded), the body, URL-decoded. Clients
 * send some parameters twice; the last value wins (§1.1a), the body's after
 * the query's. authkey and device_uid fall back to their cookies (§2).
 */
#ifndef TVMW_EDGE_DREQ_H
#define TVMW_EDGE_DREQ_H

#include <stdbool.h>
#include <stdint.h>

#include "common/http.h"

#define DREQ_MAX_PARAMS 96

struct dreq_param {
    const char *name;
    const char *value;
};

struct dreq {
    struct tvmw_http_req *http;
    char *text; /* decoded names and values, NUL separated */
    struct dreq_param p[DREQ_MAX_PARAMS];
    unsigned n;
};

/* -ENOMEM only. Extra parameters beyond DREQ_MAX_PARAMS are ignored. */
int dreq_parse(struct dreq *d, struct tvmw_http_req *req);
void dreq_close(struct dreq *d);
/* The last value of name, or NULL. */
const char *dreq_get(const struct dreq *d, const char *name);
/* Every value of name, in order, into out[0..max); returns the count. */
unsigned dreq_all(const struct dreq *d, const char *name, const char **out, unsigned max);
/* Value of a cookie of the request, copied into out (NULL if absent). */
const char *dreq_cookie(const struct dreq *d, const char *name, char *out, size_t cap);
/* A decimal integer parameter: false if absent, empty or malformed. */
bool dreq_int(const struct dreq *d, const char *name, int64_t *out);
/* A 0/1 flag; def when absent or malformed. */
int dreq_flag(const struct dreq *d, const char *name, int def);

#endif
