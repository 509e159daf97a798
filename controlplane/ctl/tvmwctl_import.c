/*
 * tvmwctl import: pushes a bundle of bulk data to one client through the admin API
 * (docs/admin-api.md, "Bulk import"). tvmwctl_sample.c writes demo bundles.
 *
 * Bundle format: one JSON object (documented again in docs/admin-api.md, "Bundle format").
 *
 *   {"counts": {"customers": N, "accounts": N, "devices": N},             optional, first
 *    "datacenters": [{"key", "name", "code"}],
 *    "categories": [{"key", "name", "order"}],
 *    "channels": [{"key", "name", "number", "category", "icon", "epg_channel_id",
 *                  "stream_name", "archive_days"}],
 *    "streaming_services": [{"key", "name", "type", "datacenter", "url_masks", "weight"}],
 *    "tariffs": [{"ext_id", "name", "period", "price", "sessions_count", "basic_sessions_count",
 *                 "basic_tariff_priority", "channels": [channel keys],
 *                 "streaming_services": [service keys]}],
 *    "customers": [{"ext_id", "firstname", "lastname", "mobile_phone_number", "email",
 *                   "balance", "tariffs": [tariff ext_ids],
 *                   "accounts": [{"abonement", "password", "allow_login_by_abonement",
 *                                 "allow_login_by_device_uid",
 *                                 "devices": [{"system_name", "device_uid"}]}]}]}
 *
 * Every section is optional. "key" names a catalogue object inside the bundle only; a
 * channel's "category" and a service's "datacenter" are such keys (or null). Any other member
 * of a catalogue object is sent as the admin API field of the same name; any other member of
 * a tariff, customer, account or device as the parameter of the same name of tariff/create,
 * customer/create, account/create or account/device/create. Customers need "ext_id" and
 * accounts "abonement": they are the selectors that make a re-run find what the first run made.
 * "balance" becomes one processed transaction/create with id "import-balance-<ext_id>", in the
 * same batch as the customer (selected by customer_ext_id, a tvmw extension).
 * "counts" only feeds the progress line.
 *
 * Import order: datacenters, categories, channels, streaming services (one POST each; an
 * object whose name the client already has is reused, not created again), tariffs (by
 * "ext_id", then their channel and service sets with PUT), then customers in chunks through
 * POST .../import: one batch with customer/create, transaction/create (the balance),
 * customer/tariff/assign, account/create and account/device/create items. Answers meaning
 * "already there" count as existing, not failed, so importing the same bundle twice is
 * harmless, and an interrupted import completes on a re-run.
 *
 * Memory stays bounded by the catalogue and one chunk when "customers" comes after all the
 * other sections (as sample-data writes it): customers are then read one at a time from the
 * file or pipe. Otherwise the customers array is loaded whole, since what it refers to comes
 * after it.
 */
#include "controlplane/ctl/tvmwctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define IMPORT_DEFAULT_BATCH   2000
#define IMPORT_MAX_BATCH_BYTES (900u << 10) /* under the server's default 1 MiB body limit */
#define IMPORT_SHOW_FAILURES   10
#define IMPORT_TTY_EVERY_MS    200
#define IMPORT_LOG_EVERY_MS    5000
#define IMPORT_MAX_KEY_LEN     64
#define IMPORT_BALANCE_PREFIX  "import-balance-"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- import: state and reporting ------------------------------------------------------------ */

enum stat_kind {
    ST_DATACENTERS,
    ST_CATEGORIES,
    ST_CHANNELS,
    ST_SERVICES,
    ST_TARIFFS,
    ST_TARIFF_SETS,
    ST_CUSTOMERS,
    ST_ASSIGNMENTS,
    ST_ACCOUNTS,
    ST_DEVICES,
    ST_BALANCES,
    ST_COUNT
};

struct stat {
    uint64_t created, existing, failed;
};

static const char *const stat_names[ST_COUNT] = {
    "datacenters", "categories",  "channels",  "streaming_services",
    "tariffs",     "tariff_sets", "customers", "tariff_assignments",
    "accounts",    "devices",     "balances",
};

/* A catalogue kind: its section in the bundle, its admin API path and answer keys, and the
 * bundle member that refers to another kind by key. */
struct imp_kind {
    const char *section;
    const char *path;
    const char *list_key;
    const char *one_key;
    const char *ref_member;
    const char *ref_field;
    int ref_kind;
};

enum { K_DATACENTERS, K_CATEGORIES, K_CHANNELS, K_SERVICES, K_COUNT };

static const struct imp_kind imp_kinds[K_COUNT] = {
    {"datacenters", "datacenters", "datacenters", "datacenter", NULL, NULL, -1},
    {"categories", "categories", "categories", "category", NULL, NULL, -1},
    {"channels", "channels", "channels", "channel", "category", "category_id", K_CATEGORIES},
    {"streaming_services", "streaming-services", "streaming_services", "streaming_service",
     "datacenter", "datacenter_id", K_DATACENTERS},
};

struct chunk {
    json_t *items;
    size_t bytes; /* estimated size of the batch's JSON */
};

struct imp {
    struct ctl_ctx *c;
    char base[96]; /* "/admin/v1/clients/CID" */
    size_t batch_max;
    json_t *sections[K_COUNT + 1]; /* catalogue kinds, then tariffs; NULL if not (yet) read */
    bool catalogue_pushed;
    json_t *keys[K_COUNT]; /* bundle key -> id, per kind */
    json_t *tariff_ids;    /* ext_id -> id, as the server has them */
    uint64_t total_customers, total_accounts;
    struct stat st[ST_COUNT];
    uint64_t failures_shown, batches, items;
    uint64_t customers_done, accounts_done;
    struct timespec start, customers_start;
    uint64_t last_progress_ms, last_shown_done;
    bool tty, progress_shown;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t0->tv_sec) + (double)(ts.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Removes the progress line of a terminal before other output. */
static void progress_clear(struct imp *im)
{
    if (im->tty && im->progress_shown) {
        fputs("\r\033[K", stderr);
        im->progress_shown = false;
    }
}

static uint64_t failed_total(const struct imp *im)
{
    uint64_t n = 0;

    for (int i = 0; i < ST_COUNT; i++) {
        n += im->st[i].failed;
    }
    return n;
}

/* "import: customers 120000/500000 accounts 180000/750000 (2350/s) failed 0": in place on a
 * terminal, else one line every IMPORT_LOG_EVERY_MS. */
static void progress(struct imp *im, bool final)
{
    uint64_t now = now_ms();
    char cust[64], acc[64];
    double secs = seconds_since(&im->customers_start);

    if (!final &&
        now - im->last_progress_ms < (im->tty ? IMPORT_TTY_EVERY_MS : IMPORT_LOG_EVERY_MS)) {
        return;
    }
    if (final && !im->tty && im->last_shown_done == im->customers_done) {
        return; /* the last line already says it */
    }
    im->last_progress_ms = now;
    im->last_shown_done = im->customers_done;
    if (im->total_customers != 0) {
        snprintf(cust, sizeof(cust), "%" PRIu64 "/%" PRIu64, im->customers_done,
                 im->total_customers);
        snprintf(acc, sizeof(acc), "%" PRIu64 "/%" PRIu64, im->accounts_done, im->total_accounts);
    } else {
        snprintf(cust, sizeof(cust), "%" PRIu64, im->customers_done);
        snprintf(acc, sizeof(acc), "%" PRIu64, im->accounts_done);
    }
    fprintf(stderr, "%simport: customers %s accounts %s (%.0f/s) failed %" PRIu64 "%s",
            im->tty ? "\r" : "", cust, acc, secs > 0 ? (double)im->accounts_done / secs : 0.0,
            failed_total(im), im->tty ? "\033[K" : "\n");
    im->progress_shown = im->tty;
    if (final && im->tty) {
        fputc('\n', stderr);
        im->progress_shown = false;
    }
}

/* Reports one failure, the first IMPORT_SHOW_FAILURES of them in full; always counts it. */
static void failure(struct imp *im, enum stat_kind kind, const char *what, const json_t *item,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void failure(struct imp *im, enum stat_kind kind, const char *what, const json_t *item,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    im->st[kind].failed++;
    if (im->failures_shown++ >= IMPORT_SHOW_FAILURES) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    progress_clear(im);
    fprintf(stderr, "import: failed: %s: ", what);
    ctl_fput_clean(stderr, msg);
    if (item != NULL) {
        json_t *shown = json_deep_copy(item);
        json_t *params = json_object_get(shown, "params");
        char *text;
        if (json_object_get(params, "password") != NULL) {
            json_object_set_new(params, "password", json_string("***"));
        }
        text = json_dumps(shown, JSON_COMPACT);
        fputs("\n  item: ", stderr);
        ctl_fput_clean(stderr, text != NULL ? text : "?");
        free(text);
        json_decref(shown);
    }
    fputc('\n', stderr);
    if (im->failures_shown == IMPORT_SHOW_FAILURES) {
        fputs("import: (further failures are only counted)\n", stderr);
    }
}

/* The message of a failed Billing API reply: error_message and error_fields. */
static void reply_text(const json_t *reply, char *out, size_t n)
{
    const json_t *fields = json_object_get(reply, "error_fields");
    const char *msg = json_string_value(json_object_get(reply, "error_message"));
    char *ftext = json_object_size(fields) > 0 ? json_dumps(fields, JSON_COMPACT) : NULL;

    snprintf(out, n, "error %" JSON_INTEGER_FORMAT ": %s%s%s",
             json_integer_value(json_object_get(reply, "error")), msg != NULL ? msg : "",
             ftext != NULL ? " " : "", ftext != NULL ? ftext : "");
    free(ftext);
}

/* The message of a non-2xx admin API answer. */
static void http_text(long status, const json_t *answer, char *out, size_t n)
{
    const char *err = json_string_value(json_object_get(answer, "error"));
    const char *msg = json_string_value(json_object_get(answer, "message"));

    snprintf(out, n, "%ld %s: %s", status, err != NULL ? err : "http_error",
             msg != NULL ? msg : "(no error body)");
}

/* ---- import: parameters --------------------------------------------------------------------- */

/*
 * A bundle value as the text of a Billing API parameter: strings as they are, numbers in
 * decimal, true/false as 1/0, objects and arrays as compact JSON (customer "meta"). Returns
 * NULL for null (the parameter is left out).
 */
static json_t *param_text(const json_t *v)
{
    char num[64];

    if (json_is_string(v)) {
        return json_string(json_string_value(v));
    }
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(num);
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        snprintf(num, sizeof(num), "%.2f", d); /* money: "150.50" */
        if (strtod(num, NULL) != d) {
            snprintf(num, sizeof(num), "%.17g", d); /* not cents: all of it */
        }
        return json_string(num);
    }
    if (json_is_boolean(v)) {
        return json_string(json_is_true(v) ? "1" : "0");
    }
    if (json_is_object(v) || json_is_array(v)) {
        char *text = json_dumps(v, JSON_COMPACT);
        json_t *s = text != NULL ? json_string(text) : NULL;
        free(text);
        return s;
    }
    return NULL;
}

/* Copies every member of from except those in skip into params as text. */
static void add_params(json_t *params, json_t *from, const char *const *skip)
{
    const char *key;
    json_t *v;

    json_object_foreach(from, key, v)
    {
        const char *const *s = skip;
        while (*s != NULL && strcmp(*s, key) != 0) {
            s++;
        }
        if (*s == NULL) {
            json_t *t = param_text(v);
            if (t != NULL) {
                json_object_set_new(params, key, t);
            }
        }
    }
}

/* Rough size of an item in the request: enough to keep a batch under the body limit. */
static size_t item_bytes(json_t *item)
{
    json_t *params = json_object_get(item, "params");
    const char *key;
    json_t *v;
    size_t n = 40 + strlen(json_string_value(json_object_get(item, "method")));

    json_object_foreach(params, key, v)
    {
        n += strlen(key) + json_string_length(v) * 2 + 8; /* *2: escapes of non-ASCII text */
    }
    return n;
}

static json_t *new_item(const char *method, json_t *params)
{
    return json_pack("{s:s, s:o}", "method", method, "params", params);
}

/* ---- import: the catalogue ------------------------------------------------------------------ */

/* name -> id of the objects the client already has (the lowest id wins). */
static int load_names(struct imp *im, const struct imp_kind *k, json_t **out)
{
    char path[160];
    json_t *v, *o, *names;
    size_t i;

    snprintf(path, sizeof(path), "%s/%s", im->base, k->path);
    if (ctl_call(im->c, "GET", path, NULL, &v) != 0) {
        return -1;
    }
    names = json_object();
    json_array_foreach(json_object_get(v, k->list_key), i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (name != NULL && json_object_get(names, name) == NULL) {
            json_object_set(names, name, json_object_get(o, "id"));
        }
    }
    json_decref(v);
    *out = names;
    return 0;
}

/* The admin API fields of a bundle object: all members but "key", the reference resolved. */
static int catalogue_fields(struct imp *im, const struct imp_kind *k, json_t *obj, json_t **out,
                            char *err, size_t n)
{
    json_t *fields = json_copy(obj);
    json_t *ref = k->ref_member != NULL ? json_object_get(fields, k->ref_member) : NULL;

    json_object_del(fields, "key");
    if (ref != NULL) {
        json_t *id = json_is_string(ref)
                         ? json_object_get(im->keys[k->ref_kind], json_string_value(ref))
                         : NULL;
        if (!json_is_null(ref) && id == NULL) {
            snprintf(err, n, "\"%s\" is no %s key of the bundle", k->ref_member,
                     imp_kinds[k->ref_kind].one_key);
            json_decref(fields);
            return -1;
        }
        json_object_set(fields, k->ref_field, json_is_null(ref) ? ref : id);
        json_object_del(fields, k->ref_member);
    }
    *out = fields;
    return 0;
}

static int push_kind(struct imp *im, int kind)
{
    const struct imp_kind *k = &imp_kinds[kind];
    struct stat *st = &im->st[ST_DATACENTERS + kind];
    json_t *list = im->sections[kind], *names, *obj, *fields, *v;
    char path[160], what[160], err[512];
    size_t i;
    long status;

    if (list == NULL || json_array_size(list) == 0) {
        return 0;
    }
    if (load_names(im, k, &names) != 0) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", im->base, k->path);
    json_array_foreach(list, i, obj)
    {
        const char *key = json_string_value(json_object_get(obj, "key"));
        const char *name = json_string_value(json_object_get(obj, "name"));
        json_t *id;

        snprintf(what, sizeof(what), "%s[%zu] %.64s", k->section, i, key != NULL ? key : "");
        if (key == NULL || name == NULL) {
            failure(im, ST_DATACENTERS + kind, what, obj, "needs \"key\" and \"name\" strings");
            continue;
        }
        if (json_object_get(im->keys[kind], key) != NULL) {
            failure(im, ST_DATACENTERS + kind, what, obj, "key used twice in the bundle");
            continue;
        }
        if ((id = json_object_get(names, name)) != NULL) {
            json_object_set(im->keys[kind], key, id);
            st->existing++;
            continue;
        }
        if (catalogue_fields(im, k, obj, &fields, err, sizeof(err)) != 0) {
            failure(im, ST_DATACENTERS + kind, what, obj, "%s", err);
            continue;
        }
        v = NULL;
        int rv = ctl_request(im->c, "POST", path, fields, &status, &v);
        json_decref(fields);
        if (rv != 0) {
            json_decref(names);
            return -1;
        }
        id = json_object_get(json_object_get(v, k->one_key), "id");
        if (status >= 200 && status <= 299 && json_is_integer(id)) {
            json_object_set(im->keys[kind], key, id);
            json_object_set(names, name, id);
            st->created++;
        } else {
            http_text(status, v, err, sizeof(err));
            failure(im, ST_DATACENTERS + kind, what, obj, "%s", err);
        }
        json_decref(v);
    }
    json_decref(names);
    progress_clear(im);
    fprintf(stderr, "import: %s: %" PRIu64 " created, %" PRIu64 " existing, %" PRIu64 " failed\n",
            k->section, st->created, st->existing, st->failed);
    return 0;
}

/* ext_id -> id of the client's tariffs. */
static int load_tariffs(struct imp *im)
{
    char path[160];
    json_t *v, *t;
    size_t i;

    snprintf(path, sizeof(path), "%s/tariffs", im->base);
    if (ctl_call(im->c, "GET", path, NULL, &v) != 0) {
        return -1;
    }
    json_object_clear(im->tariff_ids);
    json_array_foreach(json_object_get(v, "tariffs"), i, t)
    {
        const char *ext = json_string_value(json_object_get(t, "ext_id"));
        if (ext != NULL && ext[0] != '\0') {
            json_object_set(im->tariff_ids, ext, json_object_get(t, "id"));
        }
    }
    json_decref(v);
    return 0;
}

/* PUT the channel or service set of a tariff from the bundle keys in list. */
static int put_tariff_set(struct imp *im, const char *what, json_int_t tariff, json_t *list,
                          int kind, const char *suffix)
{
    json_t *ids = json_array(), *key, *body, *v = NULL;
    char path[192], err[512];
    size_t i;
    long status;

    json_array_foreach(list, i, key)
    {
        json_t *id = json_object_get(im->keys[kind], json_string_value(key));
        if (id == NULL) {
            failure(im, ST_TARIFF_SETS, what, NULL, "%s[%zu] is no %s key of the bundle", suffix, i,
                    imp_kinds[kind].one_key);
            json_decref(ids);
            return 0;
        }
        json_array_append(ids, id);
    }
    snprintf(path, sizeof(path), "%s/tariffs/%" JSON_INTEGER_FORMAT "/%s", im->base, tariff,
             suffix);
    body = json_pack("{s:o}", "ids", ids);
    int rv = ctl_request(im->c, "PUT", path, body, &status, &v);
    json_decref(body);
    if (rv != 0) {
        return -1;
    }
    if (status >= 200 && status <= 299) {
        im->st[ST_TARIFF_SETS].created++;
    } else {
        http_text(status, v, err, sizeof(err));
        failure(im, ST_TARIFF_SETS, what, NULL, "%s: %s", suffix, err);
    }
    json_decref(v);
    return 0;
}

/* Creates one tariff unless its ext_id exists; *id is 0 when it failed. */
static int push_tariff(struct imp *im, const char *what, json_t *t, const char *ext, json_int_t *id)
{
    static const char *const skip[] = {"channels", "streaming_services", NULL};
    json_t *body = json_object(), *v = NULL;
    const char *key;
    json_t *val;
    char path[160], err[1024];
    long status;

    *id = json_integer_value(json_object_get(im->tariff_ids, ext));
    if (*id != 0) {
        im->st[ST_TARIFFS].existing++;
        json_decref(body);
        return 0;
    }
    json_object_foreach(t, key, val)
    {
        const char *const *s = skip;
        while (*s != NULL && strcmp(*s, key) != 0) {
            s++;
        }
        if (*s == NULL) {
            json_object_set(body, key, val); /* the admin API takes JSON numbers here */
        }
    }
    snprintf(path, sizeof(path), "%s/tariffs", im->base);
    int rv = ctl_request(im->c, "POST", path, body, &status, &v);
    json_decref(body);
    if (rv != 0) {
        return -1;
    }
    if (status < 200 || status > 299) {
        http_text(status, v, err, sizeof(err));
        failure(im, ST_TARIFFS, what, t, "%s", err);
    } else if (json_integer_value(json_object_get(v, "error")) == 0 &&
               json_is_integer(json_object_get(v, "id"))) {
        *id = json_integer_value(json_object_get(v, "id"));
        json_object_set_new(im->tariff_ids, ext, json_integer(*id));
        im->st[ST_TARIFFS].created++;
    } else if (json_object_get(json_object_get(v, "error_fields"), "ext_id") != NULL) {
        /* Made by someone else since load_tariffs(): take it. */
        if (load_tariffs(im) != 0) {
            json_decref(v);
            return -1;
        }
        *id = json_integer_value(json_object_get(im->tariff_ids, ext));
        im->st[ST_TARIFFS].existing += *id != 0;
    }
    if (*id == 0 && status >= 200 && status <= 299) {
        reply_text(v, err, sizeof(err));
        failure(im, ST_TARIFFS, what, t, "%s", err);
    }
    json_decref(v);
    return 0;
}

static int push_tariffs(struct imp *im)
{
    json_t *list = im->sections[K_COUNT], *t;
    char what[160];
    size_t i;

    if (list == NULL || json_array_size(list) == 0) {
        return 0;
    }
    if (load_tariffs(im) != 0) {
        return -1;
    }
    json_array_foreach(list, i, t)
    {
        const char *ext = json_string_value(json_object_get(t, "ext_id"));
        json_t *chans = json_object_get(t, "channels");
        json_t *svcs = json_object_get(t, "streaming_services");
        json_int_t id;

        snprintf(what, sizeof(what), "tariffs[%zu] %.64s", i, ext != NULL ? ext : "");
        if (ext == NULL || ext[0] == '\0' || (chans != NULL && !json_is_array(chans)) ||
            (svcs != NULL && !json_is_array(svcs))) {
            failure(im, ST_TARIFFS, what, t,
                    "needs an \"ext_id\" string; \"channels\" and \"streaming_services\" are "
                    "arrays of keys");
            continue;
        }
        if (push_tariff(im, what, t, ext, &id) != 0 ||
            (id != 0 && chans != NULL &&
             put_tariff_set(im, what, id, chans, K_CHANNELS, "channels") != 0) ||
            (id != 0 && svcs != NULL &&
             put_tariff_set(im, what, id, svcs, K_SERVICES, "streaming-services") != 0)) {
            return -1;
        }
    }
    progress_clear(im);
    fprintf(stderr,
            "import: tariffs: %" PRIu64 " created, %" PRIu64 " existing, %" PRIu64
            " failed; %" PRIu64 " channel/service sets written\n",
            im->st[ST_TARIFFS].created, im->st[ST_TARIFFS].existing, im->st[ST_TARIFFS].failed,
            im->st[ST_TARIFF_SETS].created);
    return 0;
}

static int push_catalogue(struct imp *im)
{
    im->catalogue_pushed = true;
    for (int k = 0; k < K_COUNT; k++) {
        if (push_kind(im, k) != 0) {
            return -1;
        }
    }
    return push_tariffs(im);
}

/* ---- import: customers ---------------------------------------------------------------------- */

/* What an item's reply means: created, existing ("already there": a re-run) or failed. */
static const struct {
    const char *method;
    enum stat_kind stat;
    json_int_t exists; /* the method's "already exists" code; 0: none */
} outcomes[] = {
    {"customer/create", ST_CUSTOMERS, 1},
    {"customer/tariff/assign", ST_ASSIGNMENTS, 0}, /* a repeated assign is a success */
    {"account/create", ST_ACCOUNTS, 3},
    {"account/device/create", ST_DEVICES, 4},
    {"transaction/create", ST_BALANCES, 1},
};

/* Counts one reply, and reports it if it failed. */
static void tally(struct imp *im, const json_t *item, const json_t *reply)
{
    const char *method = json_string_value(json_object_get(item, "method"));
    json_int_t err = json_integer_value(json_object_get(reply, "error"));
    char what[64], msg[1024];
    size_t i;

    for (i = 0; i < NELEMS(outcomes) && strcmp(outcomes[i].method, method) != 0; i++) {
    }
    if (i == NELEMS(outcomes)) {
        return; /* cannot happen: we made the item */
    }
    if (!json_is_object(reply) || json_object_get(reply, "error") == NULL) {
        snprintf(what, sizeof(what), "%s", method);
        failure(im, outcomes[i].stat, what, item, "no reply for this item");
        return;
    }
    if (err == 0) {
        im->st[outcomes[i].stat].created++;
    } else if (outcomes[i].exists != 0 && err == outcomes[i].exists) {
        im->st[outcomes[i].stat].existing++;
    } else {
        snprintf(what, sizeof(what), "%s", method);
        reply_text(reply, msg, sizeof(msg));
        failure(im, outcomes[i].stat, what, item, "%s", msg);
    }
}

/*
 * POSTs items to .../import and appends the replies to results. A 413 (the server's body
 * limit is lower than ours) halves the batch. -1 on errors that stop the import.
 */
static int post_items(struct imp *im, json_t *items, json_t *results)
{
    char path[160], err[1024];
    json_t *body, *v = NULL, *r;
    size_t n = json_array_size(items), i;
    long status;
    int rv;

    snprintf(path, sizeof(path), "%s/import", im->base);
    body = json_pack("{s:O}", "items", items);
    rv = body != NULL ? ctl_request(im->c, "POST", path, body, &status, &v) : -1;
    json_decref(body);
    if (rv != 0) {
        return -1;
    }
    if (status == 413 && n > 1) {
        json_t *lo = json_array(), *hi = json_array();
        json_array_foreach(items, i, r)
        {
            json_array_append(i < n / 2 ? lo : hi, r);
        }
        rv = post_items(im, lo, results) != 0 || post_items(im, hi, results) != 0 ? -1 : 0;
        json_decref(lo);
        json_decref(hi);
        json_decref(v);
        return rv;
    }
    if (status != 200 || json_array_size(json_object_get(v, "results")) != n) {
        progress_clear(im);
        http_text(status, v, err, sizeof(err));
        fprintf(stderr, "import: batch of %zu items: %s\n", n,
                status == 200 ? "the answer does not list every item" : err);
        json_decref(v);
        return -1;
    }
    json_array_extend(results, json_object_get(v, "results"));
    im->batches++;
    im->items += n;
    json_decref(v);
    return 0;
}

static void chunk_reset(struct chunk *ch)
{
    ch->bytes = 0;
    json_array_clear(ch->items);
}

/* Sends the chunk's batch, then the batch of balances of the customers it created. */
static int flush_chunk(struct imp *im, struct chunk *ch)
{
    json_t *results = json_array(), *item;
    size_t i;
    int rv = -1;

    if (json_array_size(ch->items) == 0) {
        rv = 0;
        goto out;
    }
    if (post_items(im, ch->items, results) != 0) {
        goto out;
    }
    json_array_foreach(ch->items, i, item)
    {
        const char *method = json_string_value(json_object_get(item, "method"));
        tally(im, item, json_array_get(results, i));
        im->customers_done += strcmp(method, "customer/create") == 0;
        im->accounts_done += strcmp(method, "account/create") == 0;
    }
    rv = 0;
    progress(im, false);
out:
    chunk_reset(ch);
    json_decref(results);
    return rv;
}

/* The items of one customer into mine; -1 (counted as a failure) if the customer is unusable. */
static int customer_items(struct imp *im, json_t *cust, size_t index, json_t *mine)
{
    static const char *const cust_skip[] = {"tariffs", "accounts", "balance", NULL};
    static const char *const acc_skip[] = {"devices", NULL};
    static const char *const none[] = {NULL};
    const char *ext = json_string_value(json_object_get(cust, "ext_id"));
    json_t *tariff_list = json_object_get(cust, "tariffs");
    json_t *accounts = json_object_get(cust, "accounts");
    json_t *bal = json_object_get(cust, "balance");
    json_t *params, *t, *acc, *dev, *abon;
    char what[96];
    size_t i, j;

    snprintf(what, sizeof(what), "customers[%zu] %.64s", index, ext != NULL ? ext : "");
    if (!json_is_object(cust) || ext == NULL || ext[0] == '\0' ||
        strlen(ext) > IMPORT_MAX_KEY_LEN || (tariff_list != NULL && !json_is_array(tariff_list)) ||
        (accounts != NULL && !json_is_array(accounts)) ||
        (bal != NULL && !json_is_number(bal) && !json_is_string(bal) && !json_is_null(bal))) {
        failure(im, ST_CUSTOMERS, what, NULL,
                "a customer needs an \"ext_id\" string of 1-64 bytes; \"tariffs\" and "
                "\"accounts\" are arrays, \"balance\" a number");
        return -1;
    }
    json_array_foreach(accounts, i, acc)
    {
        abon = json_object_get(acc, "abonement");
        dev = json_object_get(acc, "devices");
        if (!json_is_object(acc) || !(json_is_string(abon) || json_is_integer(abon)) ||
            (dev != NULL && !json_is_array(dev))) {
            failure(im, ST_ACCOUNTS, what, NULL,
                    "accounts[%zu] needs an \"abonement\" (it selects the account on a re-run); "
                    "\"devices\" is an array",
                    i);
            return -1;
        }
    }
    params = json_object();
    add_params(params, cust, cust_skip);
    json_array_append_new(mine, new_item("customer/create", params));
    json_array_foreach(tariff_list, i, t)
    {
        json_t *tt = param_text(t);
        params = json_pack("{s:s, s:o}", "ext_id", ext, "tariff_ext_id",
                           tt != NULL ? tt : json_string(""));
        json_array_append_new(mine, new_item("customer/tariff/assign", params));
    }
    json_t *amount = bal != NULL && !json_is_null(bal) ? param_text(bal) : NULL;
    if (amount != NULL && strcmp(json_string_value(amount), "0") != 0 &&
        strcmp(json_string_value(amount), "0.00") != 0) {
        /* The opening balance, in the same raft entry as the customer: a
         * re-run finds its id taken ("already exists") and changes nothing. */
        char tx_id[IMPORT_MAX_KEY_LEN + sizeof(IMPORT_BALANCE_PREFIX) + 1];
        snprintf(tx_id, sizeof(tx_id), "%s%s", IMPORT_BALANCE_PREFIX, ext);
        params = json_pack("{s:s, s:s, s:O, s:s, s:s}", "customer_ext_id", ext, "id", tx_id,
                           "amount", amount, "processed", "1", "comment", "import");
        json_array_append_new(mine, new_item("transaction/create", params));
    }
    json_decref(amount);
    json_array_foreach(accounts, i, acc)
    {
        params = json_pack("{s:s}", "ext_id", ext);
        add_params(params, acc, acc_skip);
        json_array_append_new(mine, new_item("account/create", params));
        json_array_foreach(json_object_get(acc, "devices"), j, dev)
        {
            params = json_object();
            json_object_set_new(params, "abonement", param_text(json_object_get(acc, "abonement")));
            if (json_is_object(dev)) {
                add_params(params, dev, none);
            }
            json_array_append_new(mine, new_item("account/device/create", params));
        }
    }
    return 0;
}

static int add_customer(struct imp *im, struct chunk *ch, json_t *cust, size_t index)
{
    json_t *mine = json_array(), *item;
    size_t bytes = 0, i;
    int rv = 0;

    if (customer_items(im, cust, index, mine) != 0) {
        im->customers_done++;
        im->accounts_done += json_array_size(json_object_get(cust, "accounts"));
        json_decref(mine);
        return 0; /* counted; the import goes on */
    }
    json_array_foreach(mine, i, item)
    {
        bytes += item_bytes(item);
    }
    if (json_array_size(ch->items) > 0 &&
        (json_array_size(ch->items) + json_array_size(mine) > im->batch_max ||
         ch->bytes + bytes > IMPORT_MAX_BATCH_BYTES)) {
        rv = flush_chunk(im, ch);
    }
    if (rv == 0 && json_array_size(mine) > CTL_IMPORT_MAX_BATCH) {
        failure(im, ST_CUSTOMERS, json_string_value(json_object_get(cust, "ext_id")), NULL,
                "more than %u items for one customer", CTL_IMPORT_MAX_BATCH);
        im->customers_done++;
        im->accounts_done += json_array_size(json_object_get(cust, "accounts"));
    } else if (rv == 0) {
        json_array_extend(ch->items, mine);
        ch->bytes += bytes;
    }
    json_decref(mine);
    return rv;
}

/* ---- import: reading the bundle ------------------------------------------------------------- */

struct reader {
    FILE *f;
    const char *name;
    struct imp *im;
    struct chunk chunk;
    json_t *customers; /* loaded whole when the catalogue was not read before them */
    bool seen_customers;
};

static int skip_ws(FILE *f)
{
    int ch;

    do {
        ch = getc(f);
    } while (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r');
    return ch;
}

static int bad_bundle(const struct reader *r, const char *msg)
{
    progress_clear(r->im);
    fprintf(stderr, "import: %s: %s\n", r->name, msg);
    return -1;
}

/* A member name of the top-level object: plain ASCII up to IMPORT_MAX_KEY_LEN. */
static int read_key(struct reader *r, char *key)
{
    size_t n = 0;
    int ch;

    if (skip_ws(r->f) != '"') {
        return bad_bundle(r, "expected a member name in the top-level object");
    }
    while ((ch = getc(r->f)) != '"') {
        if (ch == EOF || ch == '\\' || ch < 0x20 || n == IMPORT_MAX_KEY_LEN) {
            return bad_bundle(r, "bad member name in the top-level object");
        }
        key[n++] = (char)ch;
    }
    key[n] = '\0';
    if (skip_ws(r->f) != ':') {
        return bad_bundle(r, "expected ':' after a member name");
    }
    return 0;
}

/* One value (an object or array) from the stream; jansson stops right after it. */
static json_t *read_value(struct reader *r, const char *what)
{
    json_error_t e;
    char msg[512];
    json_t *v = json_loadf(r->f, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &e);

    if (v == NULL) {
        snprintf(msg, sizeof(msg), "%s: %s (line %d column %d of it)", what, e.text, e.line,
                 e.column);
        bad_bundle(r, msg);
    }
    return v;
}

/* Streams the customers array: one customer object in memory at a time. */
static int stream_customers(struct reader *r)
{
    char what[64];
    size_t i = 0;
    int ch = skip_ws(r->f);

    if (ch != '[') {
        return bad_bundle(r, "\"customers\" must be an array");
    }
    if ((ch = skip_ws(r->f)) == ']') {
        return 0;
    }
    ungetc(ch, r->f);
    for (;; i++) {
        snprintf(what, sizeof(what), "customers[%zu]", i);
        json_t *cust = read_value(r, what);
        if (cust == NULL) {
            return -1;
        }
        int rv = add_customer(r->im, &r->chunk, cust, i);
        json_decref(cust);
        if (rv != 0) {
            return -1;
        }
        ch = skip_ws(r->f);
        if (ch == ']') {
            return 0;
        }
        if (ch != ',') {
            snprintf(what, sizeof(what), "expected ',' or ']' after customers[%zu]", i);
            return bad_bundle(r, what);
        }
    }
}

static int section_index(const char *key)
{
    for (int k = 0; k < K_COUNT; k++) {
        if (strcmp(imp_kinds[k].section, key) == 0) {
            return k;
        }
    }
    return strcmp(key, "tariffs") == 0 ? K_COUNT : -1;
}

static bool all_sections_read(const struct imp *im)
{
    for (int k = 0; k <= K_COUNT; k++) {
        if (im->sections[k] == NULL) {
            return false;
        }
    }
    return true;
}

static int read_counts(struct reader *r)
{
    json_t *v = read_value(r, "counts");

    if (v == NULL) {
        return -1;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return bad_bundle(r, "\"counts\" must be an object");
    }
    r->im->total_customers = (uint64_t)json_integer_value(json_object_get(v, "customers"));
    r->im->total_accounts = (uint64_t)json_integer_value(json_object_get(v, "accounts"));
    json_decref(v);
    return 0;
}

/* One member of the top-level object. */
static int read_member(struct reader *r, const char *key)
{
    struct imp *im = r->im;
    int k = section_index(key);

    if (strcmp(key, "counts") == 0) {
        return read_counts(r);
    }
    if (strcmp(key, "customers") == 0 && !r->seen_customers) {
        r->seen_customers = true;
        if (!all_sections_read(im)) {
            r->customers = read_value(r, "customers");
            if (r->customers == NULL) {
                return -1;
            }
            return json_is_array(r->customers) ? 0
                                               : bad_bundle(r, "\"customers\" must be an array");
        }
        if (push_catalogue(im) != 0) {
            return -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &im->customers_start);
        return stream_customers(r) != 0 || flush_chunk(im, &r->chunk) != 0 ? -1 : 0;
    }
    if (k < 0 || im->sections[k] != NULL || im->catalogue_pushed) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s member \"%s\"",
                 k < 0 && strcmp(key, "customers") != 0 ? "unknown" : "repeated or misplaced", key);
        return bad_bundle(r, msg);
    }
    im->sections[k] = read_value(r, key);
    if (im->sections[k] == NULL) {
        return -1;
    }
    if (!json_is_array(im->sections[k])) {
        char msg[160];
        snprintf(msg, sizeof(msg), "\"%s\" must be an array", key);
        return bad_bundle(r, msg);
    }
    return 0;
}

static int read_bundle(struct reader *r)
{
    char key[IMPORT_MAX_KEY_LEN + 1];
    int ch;

    if (skip_ws(r->f) != '{') {
        return bad_bundle(r, "a bundle is a JSON object");
    }
    if ((ch = skip_ws(r->f)) == '}') {
        return 0;
    }
    ungetc(ch, r->f);
    for (;;) {
        if (read_key(r, key) != 0 || read_member(r, key) != 0) {
            return -1;
        }
        ch = skip_ws(r->f);
        if (ch == '}') {
            break;
        }
        if (ch != ',') {
            return bad_bundle(r, ferror(r->f) ? strerror(errno)
                                              : "expected ',' or '}' in the top-level object");
        }
    }
    if (skip_ws(r->f) != EOF) {
        return bad_bundle(r, "data after the bundle");
    }
    return 0;
}

/* The rest after the whole file was read: the catalogue, then customers held in memory. */
static int finish_import(struct reader *r)
{
    struct imp *im = r->im;
    json_t *cust;
    size_t i;

    if (!im->catalogue_pushed && push_catalogue(im) != 0) {
        return -1;
    }
    if (r->customers == NULL) {
        return 0;
    }
    im->total_customers = json_array_size(r->customers);
    im->total_accounts = 0;
    json_array_foreach(r->customers, i, cust)
    {
        im->total_accounts += json_array_size(json_object_get(cust, "accounts"));
    }
    clock_gettime(CLOCK_MONOTONIC, &im->customers_start);
    json_array_foreach(r->customers, i, cust)
    {
        if (add_customer(im, &r->chunk, cust, i) != 0) {
            return -1;
        }
    }
    return flush_chunk(im, &r->chunk);
}

static void print_summary(struct imp *im, bool complete)
{
    double secs = seconds_since(&im->start);
    double csecs = seconds_since(&im->customers_start);

    if (im->c->json) {
        json_t *o = json_object(), *s;
        for (int i = 0; i < ST_COUNT; i++) {
            s = json_pack("{s:I, s:I, s:I}", "created", (json_int_t)im->st[i].created, "existing",
                          (json_int_t)im->st[i].existing, "failed", (json_int_t)im->st[i].failed);
            json_object_set_new(o, stat_names[i], s);
        }
        s = json_pack("{s:b, s:f, s:I, s:I, s:f}", "complete", complete, "seconds", secs, "batches",
                      (json_int_t)im->batches, "items", (json_int_t)im->items,
                      "accounts_per_second", csecs > 0 ? (double)im->accounts_done / csecs : 0.0);
        json_object_update(o, s);
        json_decref(s);
        char *text = json_dumps(o, JSON_INDENT(2));
        if (text != NULL) {
            puts(text);
        }
        free(text);
        json_decref(o);
        return;
    }
    printf("import %s in %.1f s: %" PRIu64 " items in %" PRIu64 " batches, %.0f accounts/s, "
           "%.0f items/s\n",
           complete ? "finished" : "STOPPED", secs, im->items, im->batches,
           csecs > 0 ? (double)im->accounts_done / csecs : 0.0,
           csecs > 0 ? (double)im->items / csecs : 0.0);
    for (int i = 0, header = 0; i < ST_COUNT; i++) {
        const struct stat *s = &im->st[i];
        if (s->created + s->existing + s->failed > 0 && header++ == 0) {
            printf("  %-20s %10s %10s %10s\n", "", "CREATED", "EXISTING", "FAILED");
        }
        if (s->created + s->existing + s->failed > 0) {
            printf("  %-20s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", stat_names[i], s->created,
                   s->existing, s->failed);
        }
    }
}

/* Catalogue reads of a client that does not exist answer empty lists: ask first. */
static int client_exists(struct imp *im)
{
    json_t *v;

    if (ctl_call(im->c, "GET", im->base, NULL, &v) != 0) {
        return -1;
    }
    json_decref(v);
    return 0;
}

int ctl_cmd_import(struct ctl_ctx *c, char **args)
{
    struct imp im = {.c = c, .batch_max = c->batch != 0 ? c->batch : IMPORT_DEFAULT_BATCH};
    struct reader r = {.name = args[0], .im = &im};
    int rv = -1;

    if (c->client_id == 0) {
        return ctl_usage_error("import needs --client CID");
    }
    if (c->token[0] == '\0') {
        return ctl_usage_error("no admin token: use --token-file FILE, TVMW_TOKEN or --token");
    }
    r.f = strcmp(args[0], "-") == 0 ? stdin : fopen(args[0], "re");
    if (r.f == NULL) {
        fprintf(stderr, "tvmwctl: cannot open %s: %s\n", args[0], strerror(errno));
        return 1;
    }
    snprintf(im.base, sizeof(im.base), "/admin/v1/clients/%" JSON_INTEGER_FORMAT, c->client_id);
    im.tty = isatty(STDERR_FILENO) == 1;
    im.tariff_ids = json_object();
    r.chunk.items = json_array();
    for (int k = 0; k < K_COUNT; k++) {
        im.keys[k] = json_object();
    }
    clock_gettime(CLOCK_MONOTONIC, &im.start);
    im.customers_start = im.start;
    if (im.tariff_ids != NULL && r.chunk.items != NULL && client_exists(&im) == 0) {
        rv = read_bundle(&r) == 0 && finish_import(&r) == 0 ? 0 : -1;
    }
    if (im.customers_done > 0) {
        progress(&im, true);
    }
    progress_clear(&im);
    print_summary(&im, rv == 0);
    chunk_reset(&r.chunk);
    json_decref(r.chunk.items);
    json_decref(r.customers);
    for (int k = 0; k <= K_COUNT; k++) {
        json_decref(im.sections[k]);
        json_decref(k < K_COUNT ? im.keys[k] : NULL);
    }
    json_decref(im.tariff_ids);
    if (r.f != stdin) {
        fclose(r.f);
    }
    return rv == 0 && failed_total(&im) == 0 ? 0 : 1;
}
