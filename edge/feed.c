/*
 * Feed answer decoding. Two passes over the parsed JSON: the first checks
 * the structure and adds up the decoded sizes, the second decodes every
 * key and value into one buffer, so a batch costs two allocations
 * whatever its size.
 */
#include "edge/feed.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "edge/proto.h"

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return TVMW_EMALFORMED;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int edge_base64_decode(const char *src, size_t len, uint8_t *dst, size_t *out_len)
{
    size_t pad = 0;
    if (len % 4 == 0) {
        while (pad < 2 && len > pad && src[len - 1 - pad] == '=') {
            pad++;
        }
    }
    size_t n = len - pad; /* significant characters */
    if (n % 4 == 1) {
        return TVMW_EMALFORMED;
    }
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)src[i]);
        if (v < 0) {
            return TVMW_EMALFORMED;
        }
        acc = (acc << 6) | (uint32_t)v;
        if (i % 4 == 3) {
            dst[o++] = (uint8_t)(acc >> 16);
            dst[o++] = (uint8_t)(acc >> 8);
            dst[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    switch (n % 4) {
    case 2:
        if ((acc & 0xF) != 0) {
            return TVMW_EMALFORMED; /* non-canonical: bits beyond the data */
        }
        dst[o++] = (uint8_t)(acc >> 4);
        break;
    case 3:
        if ((acc & 0x3) != 0) {
            return TVMW_EMALFORMED;
        }
        dst[o++] = (uint8_t)(acc >> 10);
        dst[o++] = (uint8_t)(acc >> 2);
        break;
    default:
        break;
    }
    *out_len = o;
    return 0;
}

static size_t b64_max(size_t len)
{
    return len / 4 * 3 + 2;
}

static bool get_u64(const json_t *o, const char *name, uint64_t *out)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* First pass: structure, order and sizes. */
static int check_change(const json_t *c, size_t i, const struct edge_feed_answer *a,
                        uint64_t prev_index, size_t *bytes, char *err, size_t err_len)
{
    uint64_t index, db;
    const char *op;
    if (!json_is_object(c) || !get_u64(c, "index", &index) || !get_u64(c, "db", &db) ||
        (op = json_string_value(json_object_get(c, "op"))) == NULL ||
        !json_is_string(json_object_get(c, "key"))) {
        return fail(err, err_len, "change %zu: needs index, op, db and key", i);
    }
    if (index <= a->after || index < prev_index || index > a->last_index) {
        return fail(err, err_len,
                    "change %zu: index %" PRIu64 " out of order (after %" PRIu64
                    ", previous %" PRIu64 ", last_index %" PRIu64 ")",
                    i, index, a->after, prev_index, a->last_index);
    }
    if (db < EDGE_DB_MIN || db > EDGE_DB_MAX) {
        return fail(err, err_len, "change %zu: unknown database %" PRIu64, i, db);
    }
    bool put = strcmp(op, "put") == 0;
    if (!put && strcmp(op, "del") != 0) {
        return fail(err, err_len, "change %zu: unknown op", i);
    }
    size_t key_len = json_string_length(json_object_get(c, "key"));
    if (key_len == 0 || b64_max(key_len) > EDGE_MAX_KEY_BYTES * 2) {
        return fail(err, err_len, "change %zu: key length out of range", i);
    }
    *bytes += b64_max(key_len);
    if (put) {
        const json_t *v = json_object_get(c, "value");
        if (!json_is_string(v)) {
            return fail(err, err_len, "change %zu: a put needs a value", i);
        }
        if (json_string_length(v) / 4 * 3 > EDGE_MAX_VALUE_BYTES) {
            return fail(err, err_len, "change %zu: value over %u bytes", i, EDGE_MAX_VALUE_BYTES);
        }
        *bytes += b64_max(json_string_length(v));
    }
    return 0;
}

/* Second pass: decode into a->bytes at *off. */
static int decode_change(const json_t *c, size_t i, struct edge_feed_answer *a, size_t *off,
                         char *err, size_t err_len)
{
    struct edge_change *ch = &a->changes[i];
    const json_t *k = json_object_get(c, "key");
    const json_t *v = json_object_get(c, "value");
    ch->index = (uint64_t)json_integer_value(json_object_get(c, "index"));
    ch->db = (unsigned)json_integer_value(json_object_get(c, "db"));
    ch->del = strcmp(json_string_value(json_object_get(c, "op")), "del") == 0;
    ch->key = a->bytes + *off;
    if (edge_base64_decode(json_string_value(k), json_string_length(k), a->bytes + *off,
                           &ch->key_len) != 0 ||
        ch->key_len == 0 || ch->key_len > EDGE_MAX_KEY_BYTES) {
        return fail(err, err_len, "change %zu: bad key (base64 of 1..%d bytes)", i,
                    EDGE_MAX_KEY_BYTES);
    }
    *off += ch->key_len;
    if (ch->del) {
        return 0;
    }
    ch->value = a->bytes + *off;
    if (edge_base64_decode(json_string_value(v), json_string_length(v), a->bytes + *off,
                           &ch->value_len) != 0 ||
        ch->value_len > EDGE_MAX_VALUE_BYTES) {
        return fail(err, err_len, "change %zu: bad value (base64)", i);
    }
    *off += ch->value_len;
    return 0;
}

static int decode_root(const json_t *root, uint64_t after, struct edge_feed_answer *out, char *err,
                       size_t err_len)
{
    const json_t *changes = json_object_get(root, "changes");
    const json_t *complete = json_object_get(root, "complete");
    if (!json_is_object(root) || !get_u64(root, "after", &out->after) ||
        !get_u64(root, "last_index", &out->last_index) || !json_is_boolean(complete) ||
        !json_is_array(changes)) {
        return fail(err, err_len, "needs after, last_index, complete and changes");
    }
    if (out->after != after) {
        return fail(err, err_len, "answer for after=%" PRIu64 ", asked after=%" PRIu64, out->after,
                    after);
    }
    out->complete = json_is_true(complete);
    size_t n = json_array_size(changes);
    if (!out->complete && n == 0) {
        return fail(err, err_len, "an incomplete answer without changes");
    }
    size_t bytes = 1, i;
    uint64_t prev = 0;
    int rv;
    for (i = 0; i < n; i++) {
        const json_t *c = json_array_get(changes, i);
        if ((rv = check_change(c, i, out, prev, &bytes, err, err_len)) != 0) {
            return rv;
        }
        prev = (uint64_t)json_integer_value(json_object_get(c, "index"));
    }
    out->changes = n ? calloc(n, sizeof(*out->changes)) : NULL;
    out->bytes = malloc(bytes);
    if ((n && out->changes == NULL) || out->bytes == NULL) {
        snprintf(err, err_len, "out of memory for %zu changes", n);
        return -ENOMEM;
    }
    size_t off = 0;
    for (i = 0; i < n; i++) {
        if ((rv = decode_change(json_array_get(changes, i), i, out, &off, err, err_len)) != 0) {
            return rv;
        }
    }
    out->n_changes = n;
    return 0;
}

int edge_feed_decode(const char *body, size_t len, uint64_t after, struct edge_feed_answer *out,
                     char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return fail(err, err_len, "not JSON: %s", je.text);
    }
    int rv = decode_root(root, after, out, err, err_len);
    json_decref(root);
    if (rv != 0) {
        edge_feed_answer_close(out);
    }
    return rv;
}

void edge_feed_answer_close(struct edge_feed_answer *a)
{
    free(a->changes);
    free(a->bytes);
    memset(a, 0, sizeof(*a));
}

uint64_t edge_feed_next_index(const struct edge_feed_answer *a)
{
    uint64_t next = a->after;
    if (a->n_changes > 0 && a->changes[a->n_changes - 1].index > next) {
        next = a->changes[a->n_changes - 1].index;
    }
    if (a->complete && a->last_index > next) {
        next = a->last_index;
    }
    return next;
}

int edge_feed_last_index(const char *body, size_t len, uint64_t *out)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    uint64_t v;
    bool ok = root != NULL && get_u64(root, "last_index", &v);
    json_decref(root);
    if (!ok) {
        return TVMW_EMALFORMED;
    }
    *out = v;
    return 0;
}
