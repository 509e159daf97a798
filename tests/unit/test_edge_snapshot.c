/* Edge snapshot parser: a valid stream parses whatever the chunking; every
 * corruption (a flipped bit anywhere, truncation at any offset, a wrong
 * version, count, tag, database or length, bytes after the end, a
 * mismatched checksum) is refused. The snapshots are built here by a small
 * encoder that follows docs/edge-protocol.md, independent of the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "common/bytes.h"
#include "common/err.h"
#include "edge/proto.h"
#include "edge/snapshot.h"

/* ---- encoder ---------------------------------------------------------------- */

struct enc {
    uint8_t *p;
    size_t len, cap;
};

static void put(struct enc *e, const void *data, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2 + 64;
        e->p = realloc(e->p, e->cap);
        assert_non_null(e->p);
    }
    memcpy(e->p + e->len, data, n);
    e->len += n;
}

static void put_u8(struct enc *e, uint8_t v)
{
    put(e, &v, 1);
}

static void put_u32(struct enc *e, uint32_t v)
{
    uint8_t b[4];
    tvmw_put_u32(b, v);
    put(e, b, 4);
}

static void put_u64(struct enc *e, uint64_t v)
{
    uint8_t b[8];
    tvmw_put_u64(b, v);
    put(e, b, 8);
}

static void enc_header(struct enc *e, uint32_t version, uint64_t index)
{
    put(e, EDGE_SNAPSHOT_MAGIC, 8);
    put_u32(e, version);
    put_u32(e, 0);
    put_u64(e, index);
    put_u64(e, 0);
}

static void enc_record(struct enc *e, unsigned db, const void *k, size_t kl, const void *v,
                       size_t vl)
{
    put_u8(e, EDGE_SNAPSHOT_RECORD_TAG);
    put_u8(e, (uint8_t)db);
    put_u32(e, (uint32_t)kl);
    put_u32(e, (uint32_t)vl);
    put(e, k, kl);
    put(e, v, vl);
}

static void enc_end(struct enc *e, uint64_t count)
{
    put_u8(e, EDGE_SNAPSHOT_END_TAG);
    put_u64(e, count);
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(e->p, e->len, md);
    put(e, md, sizeof(md));
}

/* The reference snapshot: a few records of several dbs, one empty value,
 * one value large enough to span many chunks. */
#define BIG_VALUE 70000
#define N_RECORDS 6

static void enc_sample(struct enc *e, uint32_t version, uint64_t count)
{
    static uint8_t big[BIG_VALUE];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 31 + 7);
    }
    uint8_t id[8];
    enc_header(e, version, 4242);
    tvmw_put_be64(id, 1);
    enc_record(e, EDGE_DB_CLIENTS, id, 8, "{\"id\":1,\"name\":\"a\"}", 19);
    tvmw_put_be64(id, 7);
    enc_record(e, EDGE_DB_ACCOUNTS, id, 8, "{\"id\":7,\"abonement\":\"100\"}", 26);
    enc_record(e, EDGE_DB_UNIQ, "abonement/1/100", 15, id, 8);
    enc_record(e, EDGE_DB_REL, "acc_tariff/\0\0\0\0\0\0\0\7\0\0\0\0\0\0\0\2", 27, "", 0);
    enc_record(e, EDGE_DB_CHANNELS, id, 8, big, sizeof(big));
    enc_record(e, EDGE_DB_SERVICES, id, 8, "{}", 2);
    enc_end(e, count);
}

/* ---- collecting callback ---------------------------------------------------------- */

struct seen {
    unsigned n;
    unsigned dbs[16];
    size_t key_lens[16];
    size_t value_lens[16];
    uint64_t sum; /* of every key and value byte, to catch a wrong split */
    int fail_at;  /* return an error at this record (-1: never) */
};

static int collect(void *ctx, unsigned db, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t value_len)
{
    struct seen *s = ctx;
    if (s->fail_at >= 0 && (int)s->n == s->fail_at) {
        return TVMW_ESTORE;
    }
    if (s->n < 16) {
        s->dbs[s->n] = db;
        s->key_lens[s->n] = key_len;
        s->value_lens[s->n] = value_len;
    }
    for (size_t i = 0; i < key_len; i++) {
        s->sum = s->sum * 131 + key[i];
    }
    for (size_t i = 0; i < value_len; i++) {
        s->sum = s->sum * 131 + value[i];
    }
    s->n++;
    return 0;
}

/* Feeds buf in chunks (sizes from a seeded generator, 1..max_chunk; 0:
 * all at once); returns the first error of feed or finish. */
static int parse(const uint8_t *buf, size_t len, unsigned seed, size_t max_chunk, struct seen *seen,
                 uint64_t *index, char *why, size_t why_len)
{
    struct edge_snapshot_parser *p;
    memset(seen, 0, sizeof(*seen));
    seen->fail_at = -1;
    assert_int_equal(edge_snapshot_parser_new(collect, seen, &p), 0);
    int rv = 0;
    size_t off = 0;
    srand(seed);
    while (off < len && rv == 0) {
        size_t n = max_chunk ? 1 + (size_t)rand() % max_chunk : len;
        if (n > len - off) {
            n = len - off;
        }
        rv = edge_snapshot_parser_feed(p, buf + off, n);
        off += n;
    }
    if (rv == 0) {
        rv = edge_snapshot_parser_finish(p);
    }
    if (index != NULL) {
        *index = edge_snapshot_parser_index(p);
    }
    if (why != NULL) {
        snprintf(why, why_len, "%s", edge_snapshot_parser_error(p));
    }
    if (rv == 0) {
        assert_string_equal(edge_snapshot_parser_error(p), "");
        assert_int_equal(edge_snapshot_parser_offset(p), len);
    } else {
        assert_true(edge_snapshot_parser_error(p)[0] != '\0'); /* says why */
    }
    edge_snapshot_parser_free(p);
    return rv;
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_valid_any_chunking(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen whole, chunked;
    uint64_t index = 0;
    enc_sample(&e, EDGE_SNAPSHOT_VERSION, N_RECORDS);

    assert_int_equal(parse(e.p, e.len, 0, 0, &whole, &index, NULL, 0), 0);
    assert_int_equal(index, 4242);
    assert_int_equal(whole.n, N_RECORDS);
    static const unsigned dbs[N_RECORDS] = {EDGE_DB_CLIENTS, EDGE_DB_ACCOUNTS, EDGE_DB_UNIQ,
                                            EDGE_DB_REL,     EDGE_DB_CHANNELS, EDGE_DB_SERVICES};
    for (unsigned i = 0; i < N_RECORDS; i++) {
        assert_int_equal(whole.dbs[i], dbs[i]);
    }
    assert_int_equal(whole.key_lens[3], 27);
    assert_int_equal(whole.value_lens[3], 0);
    assert_int_equal(whole.value_lens[4], BIG_VALUE);

    static const size_t max_chunks[] = {1, 2, 3, 7, 13, 64, 1000, 4096, 65536, 200000};
    for (size_t c = 0; c < sizeof(max_chunks) / sizeof(max_chunks[0]); c++) {
        for (unsigned seed = 1; seed <= 5; seed++) {
            assert_int_equal(parse(e.p, e.len, seed, max_chunks[c], &chunked, &index, NULL, 0), 0);
            assert_int_equal(index, 4242);
            assert_int_equal(chunked.n, whole.n);
            assert_true(chunked.sum == whole.sum);
            assert_memory_equal(chunked.value_lens, whole.value_lens, sizeof(whole.value_lens));
        }
    }
    free(e.p);
}

static void test_empty_snapshot(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s;
    uint64_t index;
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 1);
    enc_end(&e, 0);
    assert_int_equal(e.len, EDGE_SNAPSHOT_HEADER_SIZE + 9 + EDGE_SNAPSHOT_TRAILER_SIZE);
    assert_int_equal(parse(e.p, e.len, 3, 5, &s, &index, NULL, 0), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(index, 1);
    free(e.p);
}

/* Every bit of every byte flipped in turn: each copy is refused. The
 * large value is left out to keep this quick (a flip there is covered by
 * sampling below). */
static void test_every_flip_refused(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s;
    uint8_t id[8];
    tvmw_put_be64(id, 9);
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 77);
    enc_record(&e, EDGE_DB_ACCOUNTS, id, 8, "{\"active\":true}", 15);
    enc_record(&e, EDGE_DB_UNIQ, "abonement/1/x", 13, id, 8);
    enc_record(&e, EDGE_DB_REL, "r/12345678abcdefgh", 18, "", 0);
    enc_end(&e, 3);
    uint8_t *bad = malloc(e.len);
    assert_non_null(bad);
    for (size_t off = 0; off < e.len; off++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, e.p, e.len);
            bad[off] ^= (uint8_t)(1u << bit);
            int rv = parse(bad, e.len, (unsigned)off, 9, &s, NULL, NULL, 0);
            if (rv == 0) {
                fail_msg("flip of bit %d at offset %zu was accepted", bit, off);
            }
        }
    }
    free(bad);
    free(e.p);

    /* The sample with its large value: flips at sampled offsets. */
    struct enc big = {0};
    enc_sample(&big, EDGE_SNAPSHOT_VERSION, N_RECORDS);
    bad = malloc(big.len);
    assert_non_null(bad);
    for (size_t off = 0; off < big.len; off += 97) {
        memcpy(bad, big.p, big.len);
        bad[off] ^= 0x20;
        assert_int_not_equal(parse(bad, big.len, (unsigned)off, 5000, &s, NULL, NULL, 0), 0);
    }
    free(bad);
    free(big.p);
}

static void test_truncation_refused(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s;
    char why[200];
    enc_sample(&e, EDGE_SNAPSHOT_VERSION, N_RECORDS);
    /* Every offset through the header and the first records, and every
     * offset of the last 300 bytes (end tag, count, trailer); sampled in
     * between. */
    for (size_t cut = 0; cut < e.len; cut++) {
        if (cut > 400 && cut < e.len - 300 && cut % 251 != 0) {
            continue;
        }
        int rv = parse(e.p, cut, (unsigned)cut, 64, &s, NULL, why, sizeof(why));
        if (rv != TVMW_ECORRUPT) {
            fail_msg("truncation at %zu of %zu: rv=%d", cut, e.len, rv);
        }
        assert_non_null(strstr(why, "truncated"));
    }
    free(e.p);
}

static void test_wrong_version_count_and_fields(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s;
    char why[200];
    uint8_t id[8];
    tvmw_put_be64(id, 1);

    enc_sample(&e, 2, N_RECORDS); /* checksum is right: only the version is wrong */
    assert_int_equal(parse(e.p, e.len, 1, 100, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "version"));
    assert_int_equal(s.n, 0); /* nothing delivered from a stream of the wrong version */
    free(e.p);

    for (uint64_t count = 0; count < 2 * N_RECORDS; count++) {
        if (count == N_RECORDS) {
            continue;
        }
        e = (struct enc){0};
        enc_sample(&e, EDGE_SNAPSHOT_VERSION, count);
        assert_int_equal(parse(e.p, e.len, 2, 1000, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
        assert_non_null(strstr(why, "records"));
        free(e.p);
    }

    e = (struct enc){0};
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    enc_record(&e, 200, id, 8, "x", 1); /* no database 200 */
    enc_end(&e, 1);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "database"));
    free(e.p);

    e = (struct enc){0};
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    enc_record(&e, 0, id, 8, "x", 1);
    enc_end(&e, 1);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, NULL, 0), TVMW_ECORRUPT);
    free(e.p);

    e = (struct enc){0}; /* empty key */
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    enc_record(&e, EDGE_DB_CLIENTS, "", 0, "x", 1);
    enc_end(&e, 1);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, NULL, 0), TVMW_ECORRUPT);
    free(e.p);

    e = (struct enc){0}; /* key over LMDB's limit */
    static uint8_t long_key[EDGE_MAX_KEY_BYTES + 1];
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    enc_record(&e, EDGE_DB_UNIQ, long_key, sizeof(long_key), "x", 1);
    enc_end(&e, 1);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, NULL, 0), TVMW_ECORRUPT);
    free(e.p);

    e = (struct enc){0}; /* a value length over the limit: refused before allocating */
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    put_u8(&e, EDGE_SNAPSHOT_RECORD_TAG);
    put_u8(&e, EDGE_DB_CLIENTS);
    put_u32(&e, 8);
    put_u32(&e, UINT32_MAX);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "value length"));
    free(e.p);

    e = (struct enc){0}; /* unknown tag */
    enc_header(&e, EDGE_SNAPSHOT_VERSION, 5);
    put_u8(&e, 0x02);
    enc_end(&e, 0);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "tag"));
    free(e.p);

    e = (struct enc){0}; /* reserved header field set */
    put(&e, EDGE_SNAPSHOT_MAGIC, 8);
    put_u32(&e, EDGE_SNAPSHOT_VERSION);
    put_u32(&e, 1);
    put_u64(&e, 5);
    put_u64(&e, 0);
    enc_end(&e, 0);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, NULL, 0), TVMW_ECORRUPT);
    free(e.p);

    e = (struct enc){0}; /* the control plane's own snapshot is not an edge snapshot */
    put(&e, "TVMWSNP1", 8);
    put_u32(&e, EDGE_SNAPSHOT_VERSION);
    put_u32(&e, 0);
    put_u64(&e, 5);
    put_u64(&e, 0);
    enc_end(&e, 0);
    assert_int_equal(parse(e.p, e.len, 0, 0, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "magic"));
    free(e.p);
}

static void test_trailing_bytes_and_checksum(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s;
    char why[200];
    enc_sample(&e, EDGE_SNAPSHOT_VERSION, N_RECORDS);
    size_t len = e.len;
    put_u8(&e, 0);
    assert_int_equal(parse(e.p, e.len, 4, 50, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "after the trailer"));
    /* A trailer that is the checksum of something else. */
    e.len = len;
    e.p[len - 1] ^= 1;
    assert_int_equal(parse(e.p, e.len, 4, 50, &s, NULL, why, sizeof(why)), TVMW_ECORRUPT);
    assert_non_null(strstr(why, "checksum"));
    free(e.p);
}

static void test_callback_error_is_sticky(void **state)
{
    (void)state;
    struct enc e = {0};
    struct seen s = {.fail_at = 2};
    struct edge_snapshot_parser *p;
    enc_sample(&e, EDGE_SNAPSHOT_VERSION, N_RECORDS);
    assert_int_equal(edge_snapshot_parser_new(collect, &s, &p), 0);
    int rv = 0;
    size_t off = 0;
    while (off < e.len && rv == 0) {
        size_t n = e.len - off < 10 ? e.len - off : 10;
        rv = edge_snapshot_parser_feed(p, e.p + off, n);
        off += n;
    }
    assert_int_equal(rv, TVMW_ESTORE);
    assert_int_equal(s.n, 2);
    assert_int_equal(edge_snapshot_parser_feed(p, e.p, 1), TVMW_ESTORE);
    assert_int_equal(edge_snapshot_parser_finish(p), TVMW_ESTORE);
    assert_non_null(strstr(edge_snapshot_parser_error(p), "record 2"));
    edge_snapshot_parser_free(p);
    edge_snapshot_parser_free(NULL);
    free(e.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_any_chunking),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_every_flip_refused),
        cmocka_unit_test(test_truncation_refused),
        cmocka_unit_test(test_wrong_version_count_and_fields),
        cmocka_unit_test(test_trailing_bytes_and_checksum),
        cmocka_unit_test(test_callback_error_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
