/*
 * libFuzzer target: the stream-token parser (edge_token_check) and the
 * request parsing of the token check's dialects (edge/tcreq.h): query
 * strings as Flussonic and Astra send them, the headers of Astra/Alta and
 * nginx auth_request, tokens inside X-Original-URI and Flussonic's qs,
 * stream paths; and the decoders of the check's binary index, with the
 * account scanner checked against jansson on every input both accept.
 *
 * Input: the first line is a raw query string; every further line is a
 * header "Name: value". The whole input is also tried as a token, and its
 * halves as a path and a stream name. Nothing may crash, read out of
 * bounds or leak (ASan, UBSan); a token the parser accepts must be one the
 * fuzzer's key really signed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sign.h"
#include "edge/dauth.h"
#include "edge/tcindex.h"
#include "edge/tcreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct edge_keyring ring, retired;

static void init_rings(void)
{
    static int done;
    if (done) {
        return;
    }
    done = 1;
    ring.n = 2;
    ring.k[0].kid = 1;
    memcpy(ring.k[0].secret, "fuzz-key-one-fuzz-key-one-fuzz-1", 32);
    ring.k[0].secret_len = 32;
    ring.k[1].kid = 7;
    memcpy(ring.k[1].secret, "fuzz-key-seven-fuzz-key-seven-77", 32);
    ring.k[1].secret_len = 32;
    retired.n = 1;
    retired.k[0].kid = 2;
    memcpy(retired.k[0].secret, "fuzz-key-two-retired-fuzz-key-22", 32);
    retired.k[0].secret_len = 32;
}

/* A token that passes must re-encode to the same text with its key (the
 * current version; version 1 is only read). */
static void check_token(const char *p, size_t n)
{
    struct edge_token t;
    if (edge_token_check(&ring, p, n, &t) == 0 && t.version == 2) {
        struct edge_keyring one = {.n = 1};
        for (unsigned i = 0; i < ring.n; i++) {
            if (ring.k[i].kid == t.kid) {
                one.k[0] = ring.k[i];
            }
        }
        char again[EDGE_TOKEN_LEN + 1];
        struct edge_token copy = t;
        if (edge_token_issue(&one, &copy, again) != 0 || n != EDGE_TOKEN_LEN ||
            memcmp(again, p, n) != 0) {
            abort();
        }
    }
    (void)edge_token_check(&retired, p, n, &t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_rings();
    /* Private copies of exactly size bytes: ASan sees any overread. */
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    check_token(text, size);

    struct edge_tc_req q;
    edge_tc_req_init(&q);
    const char *nl = memchr(text, '\n', size);
    size_t qlen = nl != NULL ? (size_t)(nl - text) : size;
    char *decoded = malloc(qlen * 2 + 16);
    if (decoded != NULL) {
        edge_tc_req_query(&q, text, qlen, decoded, qlen * 2 + 16);
    }
    /* Header lines, each split at ": " into its own allocation. */
    char *hdrs[16];
    size_t nh = 0;
    for (const char *line = nl; line != NULL && nh < 16;) {
        line++;
        const char *end = memchr(line, '\n', size - (size_t)(line - text));
        size_t len = end != NULL ? (size_t)(end - line) : size - (size_t)(line - text);
        const char *colon = memchr(line, ':', len);
        if (colon != NULL) {
            size_t klen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < line + len && *v == ' ') {
                v++;
            }
            size_t vlen = (size_t)(line + len - v);
            char *h = malloc(klen + vlen + 2);
            if (h != NULL) {
                memcpy(h, line, klen);
                h[klen] = '\0';
                memcpy(h + klen + 1, v, vlen);
                h[klen + 1 + vlen] = '\0';
                edge_tc_req_header(&q, h, klen, h + klen + 1, vlen);
                hdrs[nh++] = h;
            }
        }
        line = end;
    }
    edge_tc_req_finish(&q);
    if (q.tok.p != NULL && !q.tok_too_long) {
        check_token(q.tok.p, q.tok.len);
    }
    if (q.path.p != NULL && q.stream.p != NULL) {
        (void)edge_tc_path_has(q.path.p, q.path.len, (const uint8_t *)q.stream.p, q.stream.len);
    }
    (void)edge_tc_dialect_name(q.dialect);

    /* Halves as a path and a stream name; the whole as index values. */
    (void)edge_tc_path_has(text, size / 2, (const uint8_t *)text + size / 2, size - size / 2);
    char out[32];
    (void)edge_tc_query_value(text, size, "token", out, sizeof(out));
    struct edge_tcx_account acc;
    struct edge_tcx_channel ch;
    struct edge_tcx_client cl;
    struct edge_tcx_key key;
    (void)edge_tcx_account_decode(data, size, &acc);
    /* The account scanner and jansson agree on every record both read. */
    uint8_t fast[EDGE_TCX_ACC_LEN], slow[EDGE_TCX_ACC_LEN];
    if (edge_tcx_account_fast(data, size, fast) == 0 &&
        edge_tcx_account_json(data, size, slow) == 0 && memcmp(fast, slow, EDGE_TCX_ACC_LEN) != 0) {
        abort();
    }
    (void)edge_tcx_channel_decode(data, size, &ch);
    (void)edge_tcx_client_decode(data, size, &cl);
    if (size >= 8) {
        (void)edge_tcx_key_decode(data, 8, data + 8, size - 8, &key);
    }

    for (size_t i = 0; i < nh; i++) {
        free(hdrs[i]);
    }
    free(decoded);
    free(text);
    return 0;
}
