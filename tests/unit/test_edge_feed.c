/* Feed answer decoding: base64 (RFC 4648 §10 vectors and refusals), a
 * valid answer, every broken promise refused, and the index the edge is
 * at afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "edge/feed.h"

static void test_base64(void **state)
{
    (void)state;
    static const char *const vectors[][2] = {
        {"", ""},
        {"Zg==", "f"},
        {"Zm8=", "fo"},
        {"Zm9v", "foo"},
        {"Zm9vYg==", "foob"},
        {"Zm9vYmE=", "fooba"},
        {"Zm9vYmFy", "foobar"},
        {"Zm9vYg", "foob"},
    };
    uint8_t out[64];
    size_t n;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        assert_int_equal(edge_base64_decode(vectors[i][0], strlen(vectors[i][0]), out, &n), 0);
        assert_int_equal(n, strlen(vectors[i][1]));
        assert_memory_equal(out, vectors[i][1], n);
    }
    assert_int_equal(edge_base64_decode("AAAAAAAAAAg=", 12, out, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(out[7], 8);
    static const char *const bad[] = {"Z",    "Zg=",  "Z===",  "Zm9v!",
                                      "Zh==", "Zm9=", "Zm 9v", "Zm9v\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(edge_base64_decode(bad[i], strlen(bad[i]), out, &n), TVMW_EMALFORMED);
    }
}

static int decode(const char *json, uint64_t after, struct edge_feed_answer *a)
{
    char err[256];
    int rv = edge_feed_decode(json, strlen(json), after, a, err, sizeof(err));
    if (rv != 0) {
        assert_true(err[0] != '\0');
    }
    return rv;
}

static void test_valid_answer(void **state)
{
    (void)state;
    struct edge_feed_answer a;
    const char *json =
        "{\"after\": 120, \"last_index\": 131, \"complete\": true, \"changes\": ["
        "{\"index\": 125, \"op\": \"put\", \"db\": 3, \"key\": \"AAAAAAAAAAc=\","
        " \"value\": \"eyJpZCI6N30=\"},"
        "{\"index\": 125, \"op\": \"del\", \"db\": 11, \"key\": \"cmVsLw==\"},"
        "{\"index\": 126, \"op\": \"put\", \"db\": 11, \"key\": \"cmVsLw==\", \"value\": \"\"}]}";
    assert_int_equal(decode(json, 120, &a), 0);
    assert_int_equal(a.after, 120);
    assert_int_equal(a.last_index, 131);
    assert_true(a.complete);
    assert_int_equal(a.n_changes, 3);
    assert_int_equal(a.changes[0].db, 3);
    assert_false(a.changes[0].del);
    assert_int_equal(a.changes[0].key_len, 8);
    assert_int_equal(a.changes[0].key[7], 7);
    assert_int_equal(a.changes[0].value_len, 8);
    assert_memory_equal(a.changes[0].value, "{\"id\":7}", 8);
    assert_true(a.changes[1].del);
    assert_memory_equal(a.changes[1].key, "rel/", 4);
    assert_int_equal(a.changes[2].value_len, 0);
    assert_int_equal(edge_feed_next_index(&a), 131); /* complete: up to last_index */
    edge_feed_answer_close(&a);

    /* Incomplete: the edge is at the last change, not at last_index. */
    json = "{\"after\": 5, \"last_index\": 90, \"complete\": false, \"changes\": ["
           "{\"index\": 7, \"op\": \"del\", \"db\": 1, \"key\": \"AA==\"}]}";
    assert_int_equal(decode(json, 5, &a), 0);
    assert_int_equal(edge_feed_next_index(&a), 7);
    edge_feed_answer_close(&a);

    /* Nothing new; and a node behind the edge moves it nowhere. */
    json = "{\"after\": 5, \"last_index\": 5, \"complete\": true, \"changes\": []}";
    assert_int_equal(decode(json, 5, &a), 0);
    assert_int_equal(edge_feed_next_index(&a), 5);
    edge_feed_answer_close(&a);
    json = "{\"after\": 9, \"last_index\": 3, \"complete\": true, \"changes\": []}";
    assert_int_equal(decode(json, 9, &a), 0);
    assert_int_equal(edge_feed_next_index(&a), 9);
    edge_feed_answer_close(&a);

    uint64_t last;
    json = "{\"error\": \"snapshot_required\", \"horizon\": 50, \"last_index\": 700}";
    assert_int_equal(edge_feed_last_index(json, strlen(json), &last), 0);
    assert_int_equal(last, 700);
    assert_int_equal(edge_feed_last_index("{}", 2, &last), TVMW_EMALFORMED);
}

static void test_malformed_answers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"after\": 1, \"last_index\": 2, \"complete\": true}",
        "{\"after\": 2, \"last_index\": 3, \"complete\": true, \"changes\": []}", /* wrong after */
        "{\"after\": 1, \"last_index\": 3, \"complete\": 1, \"changes\": []}",
        "{\"after\": 1, \"last_index\": -3, \"complete\": true, \"changes\": []}",
        "{\"after\": 1, \"after\": 1, \"last_index\": 3, \"complete\": true, \"changes\": []}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": false, \"changes\": []}",
        /* index not above after, going back, above last_index */
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 1, \"op\": \"del\", \"db\": 1, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 3, \"op\": \"del\", \"db\": 1, \"key\": \"AA==\"},"
        "{\"index\": 2, \"op\": \"del\", \"db\": 1, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 10, \"op\": \"del\", \"db\": 1, \"key\": \"AA==\"}]}",
        /* db, op, key, value */
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"del\", \"db\": 200, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"del\", \"db\": 0, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"upsert\", \"db\": 1, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"del\", \"db\": 1, \"key\": \"\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"del\", \"db\": 1, \"key\": \"A\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"put\", \"db\": 1, \"key\": \"AA==\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"put\", \"db\": 1, \"key\": \"AA==\", \"value\": \"*\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": ["
        "{\"index\": 2, \"op\": \"put\", \"db\": \"1\", \"key\": \"AA==\", \"value\": \"\"}]}",
        "{\"after\": 1, \"last_index\": 9, \"complete\": true, \"changes\": [5]}",
    };
    struct edge_feed_answer a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (decode(bad[i], 1, &a) != TVMW_EMALFORMED) {
            fail_msg("answer %zu accepted: %s", i, bad[i]);
        }
        assert_null(a.changes);
        edge_feed_answer_close(&a); /* harmless */
    }

    /* A key over LMDB's limit. */
    size_t n = 800;
    char *json = malloc(n + 200);
    assert_non_null(json);
    int off = snprintf(json, 200,
                       "{\"after\": 1, \"last_index\": 9, \"complete\": true, "
                       "\"changes\": [{\"index\": 2, \"op\": \"del\", \"db\": 1, "
                       "\"key\": \"");
    memset(json + off, 'A', n);
    memcpy(json + off + n, "\"}]}", 5);
    assert_int_equal(decode(json, 1, &a), TVMW_EMALFORMED);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_valid_answer),
        cmocka_unit_test(test_malformed_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
