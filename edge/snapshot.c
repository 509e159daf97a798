/*
 * Edge snapshot parser: a byte-driven state machine. Fixed-size parts
 * (header, tag, record head, count, trailer) are gathered in `fixed`;
 * record bodies go straight from the caller's chunk to the callback when
 * the chunk holds all of one, else they are gathered in `rec`. Every byte
 * before the trailer goes through SHA-256, one update per chunk, so the
 * checksum is known the moment the trailer is complete.
 */
#include "edge/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/err.h"
#include "edge/proto.h"

enum part { P_HEADER, P_TAG, P_HEAD, P_BODY, P_COUNT, P_TRAILER, P_DONE };

static const char *const part_names[] = {"header",       "record tag", "record head", "record body",
                                         "record count", "trailer",    "end"};

struct edge_snapshot_parser {
    edge_snapshot_record_cb cb;
    void *ctx;
    EVP_MD_CTX *md;
    enum part part;
    int err; /* sticky */
    char reason[200];
    uint8_t fixed[EDGE_SNAPSHOT_HEADER_SIZE]; /* the largest fixed part */
    size_t fill;                              /* bytes of the current part gathered */
    uint8_t *rec;                             /* body being gathered */
    size_t rec_cap;
    unsigned db;
    size_t key_len;
    size_t body_len;
    uint64_t index;
    uint64_t records;
    uint64_t offset;
    uint8_t digest[EDGE_SNAPSHOT_TRAILER_SIZE];
};

_Static_assert(EDGE_SNAPSHOT_TRAILER_SIZE <= EDGE_SNAPSHOT_HEADER_SIZE, "fixed buffer");

int edge_snapshot_parser_new(edge_snapshot_record_cb cb, void *ctx,
                             struct edge_snapshot_parser **out)
{
    struct edge_snapshot_parser *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->md = EVP_MD_CTX_new();
    if (p->md == NULL || EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(p->md);
        free(p);
        return -ENOMEM;
    }
    p->cb = cb;
    p->ctx = ctx;
    p->part = P_HEADER;
    *out = p;
    return 0;
}

void edge_snapshot_parser_free(struct edge_snapshot_parser *p)
{
    if (p == NULL) {
        return;
    }
    EVP_MD_CTX_free(p->md);
    free(p->rec);
    free(p);
}

static int fail(struct edge_snapshot_parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct edge_snapshot_parser *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
    va_end(ap);
    p->err = code;
    return code;
}

static size_t part_size(enum part part)
{
    switch (part) {
    case P_HEADER:
        return EDGE_SNAPSHOT_HEADER_SIZE;
    case P_TAG:
        return 1;
    case P_HEAD:
        return EDGE_SNAPSHOT_RECORD_HEAD;
    case P_COUNT:
        return 8;
    case P_TRAILER:
        return EDGE_SNAPSHOT_TRAILER_SIZE;
    case P_BODY:
    case P_DONE:
        break;
    }
    return 0;
}

static int hash(struct edge_snapshot_parser *p, const void *data, size_t len)
{
    if (EVP_DigestUpdate(p->md, data, len) != 1) {
        return fail(p, -ENOMEM, "SHA-256 update failed");
    }
    return 0;
}

static int on_header(struct edge_snapshot_parser *p)
{
    const uint8_t *h = p->fixed;
    if (memcmp(h, EDGE_SNAPSHOT_MAGIC, 8) != 0) {
        return fail(p, TVMW_ECORRUPT, "not an edge snapshot (bad magic)");
    }
    uint32_t version = tvmw_get_u32(h + 8);
    if (version != EDGE_SNAPSHOT_VERSION) {
        return fail(p, TVMW_ECORRUPT, "snapshot version %" PRIu32 ", this edge reads %d", version,
                    EDGE_SNAPSHOT_VERSION);
    }
    if (tvmw_get_u32(h + 12) != 0 || tvmw_get_u64(h + 24) != 0) {
        return fail(p, TVMW_ECORRUPT, "reserved header fields are not zero");
    }
    p->index = tvmw_get_u64(h + 16);
    p->part = P_TAG;
    return 0;
}

static int on_tag(struct edge_snapshot_parser *p)
{
    switch (p->fixed[0]) {
    case EDGE_SNAPSHOT_RECORD_TAG:
        p->part = P_HEAD;
        return 0;
    case EDGE_SNAPSHOT_END_TAG:
        p->part = P_COUNT;
        return 0;
    default:
        return fail(p, TVMW_ECORRUPT, "unknown tag 0x%02x at offset %" PRIu64, p->fixed[0],
                    p->offset - 1);
    }
}

static int on_head(struct edge_snapshot_parser *p)
{
    unsigned db = p->fixed[0];
    uint32_t key_len = tvmw_get_u32(p->fixed + 1);
    uint32_t value_len = tvmw_get_u32(p->fixed + 5);
    if (db < EDGE_DB_MIN || db > EDGE_DB_MAX) {
        return fail(p, TVMW_ECORRUPT, "record %" PRIu64 ": unknown database %u", p->records, db);
    }
    if (key_len == 0 || key_len > EDGE_MAX_KEY_BYTES) {
        return fail(p, TVMW_ECORRUPT, "record %" PRIu64 ": key length %" PRIu32 " not in 1..%d",
                    p->records, key_len, EDGE_MAX_KEY_BYTES);
    }
    if (value_len > EDGE_MAX_VALUE_BYTES) {
        return fail(p, TVMW_ECORRUPT, "record %" PRIu64 ": value length %" PRIu32 " over %u",
                    p->records, value_len, EDGE_MAX_VALUE_BYTES);
    }
    p->db = db;
    p->key_len = key_len;
    p->body_len = (size_t)key_len + value_len;
    if (p->body_len > p->rec_cap) {
        size_t cap = p->rec_cap ? p->rec_cap : 4096;
        while (cap < p->body_len) {
            cap *= 2;
        }
        uint8_t *rec = realloc(p->rec, cap);
        if (rec == NULL) {
            return fail(p, -ENOMEM, "out of memory for a record of %zu bytes", p->body_len);
        }
        p->rec = rec;
        p->rec_cap = cap;
    }
    p->part = P_BODY;
    return 0;
}

static int deliver(struct edge_snapshot_parser *p, const uint8_t *body)
{
    int rv = p->cb(p->ctx, p->db, body, p->key_len, body + p->key_len, p->body_len - p->key_len);
    if (rv != 0) {
        return fail(p, rv, "record %" PRIu64 " not stored: %s", p->records, tvmw_strerror(rv));
    }
    p->records++;
    p->part = P_TAG;
    return 0;
}

static int on_count(struct edge_snapshot_parser *p)
{
    uint64_t count = tvmw_get_u64(p->fixed);
    if (count != p->records) {
        return fail(p, TVMW_ECORRUPT, "the snapshot says %" PRIu64 " records, it holds %" PRIu64,
                    count, p->records);
    }
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(p->md, p->digest, &n) != 1 || n != sizeof(p->digest)) {
        return fail(p, -ENOMEM, "SHA-256 final failed");
    }
    p->part = P_TRAILER;
    return 0;
}

static int on_trailer(struct edge_snapshot_parser *p)
{
    if (CRYPTO_memcmp(p->fixed, p->digest, sizeof(p->digest)) != 0) {
        return fail(p, TVMW_ECORRUPT, "SHA-256 checksum mismatch");
    }
    p->part = P_DONE;
    return 0;
}

static int on_fixed(struct edge_snapshot_parser *p)
{
    switch (p->part) {
    case P_HEADER:
        return on_header(p);
    case P_TAG:
        return on_tag(p);
    case P_HEAD:
        return on_head(p);
    case P_COUNT:
        return on_count(p);
    case P_TRAILER:
        return on_trailer(p);
    case P_BODY:
    case P_DONE:
        break;
    }
    return fail(p, TVMW_ECORRUPT, "internal parser state");
}

/* Consumes up to len bytes of a record body; returns the bytes taken. */
static size_t take_body(struct edge_snapshot_parser *p, const uint8_t *data, size_t len, int *rv)
{
    size_t need = p->body_len - p->fill;
    size_t n = len < need ? len : need;
    if (p->fill == 0 && n == p->body_len) {
        *rv = deliver(p, data); /* the whole body is in the chunk: no copy */
        return n;
    }
    memcpy(p->rec + p->fill, data, n);
    p->fill += n;
    if (p->fill == p->body_len) {
        p->fill = 0;
        *rv = deliver(p, p->rec);
    }
    return n;
}

/* Bytes from *span up to `upto` go through SHA-256 in one update (three
 * small ones per record cost a second at ten million records); span
 * then starts at upto. */
static int hash_span(struct edge_snapshot_parser *p, const uint8_t **span, const uint8_t *upto)
{
    int rv = 0;
    if (*span != NULL && upto > *span) {
        rv = hash(p, *span, (size_t)(upto - *span));
    }
    *span = upto;
    return rv;
}

int edge_snapshot_parser_feed(struct edge_snapshot_parser *p, const void *data, size_t len)
{
    const uint8_t *d = data;
    /* Everything before the trailer is hashed; NULL: in the trailer. */
    const uint8_t *span = p->part == P_TRAILER || p->part == P_DONE ? NULL : d;
    int rv = 0;
    if (p->err != 0) {
        return p->err;
    }
    while (len > 0 && rv == 0) {
        size_t n;
        if (p->part == P_DONE) {
            return fail(p, TVMW_ECORRUPT, "%zu bytes after the trailer", len);
        }
        if (p->part == P_BODY) {
            n = take_body(p, d, len, &rv);
        } else {
            size_t need = part_size(p->part) - p->fill;
            n = len < need ? len : need;
            memcpy(p->fixed + p->fill, d, n);
            p->fill += n;
            if (p->fill == part_size(p->part)) {
                p->fill = 0;
                if (p->part == P_COUNT) {
                    /* on_count takes the digest: hash up to here, not
                     * the trailer after it. */
                    rv = hash_span(p, &span, d + n);
                    span = NULL;
                }
                if (rv == 0) {
                    rv = on_fixed(p);
                }
            }
        }
        p->offset += n;
        d += n;
        len -= n;
    }
    if (rv == 0 && span != NULL) {
        rv = hash_span(p, &span, d);
    }
    return rv;
}

int edge_snapshot_parser_finish(struct edge_snapshot_parser *p)
{
    if (p->err != 0) {
        return p->err;
    }
    if (p->part != P_DONE) {
        return fail(p, TVMW_ECORRUPT,
                    "truncated: the stream ends after %" PRIu64 " bytes, in the %s", p->offset,
                    part_names[p->part]);
    }
    return 0;
}

uint64_t edge_snapshot_parser_index(const struct edge_snapshot_parser *p)
{
    return p->index;
}

uint64_t edge_snapshot_parser_records(const struct edge_snapshot_parser *p)
{
    return p->records;
}

uint64_t edge_snapshot_parser_offset(const struct edge_snapshot_parser *p)
{
    return p->offset;
}

const char *edge_snapshot_parser_error(const struct edge_snapshot_parser *p)
{
    return p->reason;
}
