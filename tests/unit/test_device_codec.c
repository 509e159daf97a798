/*
 * The device API's building blocks without a server: the JSON/XML answer
 * writer (exact bytes: clients parse them by pattern), authkeys and stream
 * tokens (round trip, tampering, key rotation and retirement), and the
 * base64url/hex codecs under them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/sign.h"
#include "edge/dauth.h"
#include "edge/dout.h"

static void test_json_answer(void **state)
{
    (void)state;
    struct dout o;
    dout_init(&o, false);
    dout_int(&o, "error", 0);
    dout_str(&o, "name", "A \"q\" \\ \n");
    dout_list_begin(&o, "channels");
    dout_item_begin(&o);
    dout_int(&o, "id", 7);
    dout_bool(&o, "drm", false);
    dout_item_end(&o);
    dout_item_begin(&o);
    dout_int(&o, "id", 8);
    dout_item_end(&o);
    dout_list_end(&o);
    dout_list_begin(&o, "tariff_ids");
    dout_int(&o, "id", 1);
    dout_int(&o, "id", 2);
    dout_list_end(&o);
    dout_obj_begin(&o, "message");
    dout_obj_end(&o);
    assert_int_equal(dout_finish(&o), 0);
    const char *want = "{\"error\":0,\"name\":\"A \\\"q\\\" \\\\ \\n\",\"channels\":[{\"id\":7,"
                       "\"drm\":false},{\"id\":8}],\"tariff_ids\":[1,2],\"message\":{}}";
    assert_int_equal(o.b.len, strlen(want));
    assert_memory_equal(o.b.data, want, o.b.len);
    dout_close(&o);
}

static void test_xml_answer(void **state)
{
    (void)state;
    struct dout o;
    dout_init(&o, true);
    dout_int(&o, "error", 0);
    dout_str(&o, "uri", "http://s/a?x=1&token=T<>\x01");
    dout_list_begin(&o, "channels");
    dout_item_begin(&o);
    dout_int(&o, "is_hidden", 0);
    dout_int(&o, "id", 7);
    dout_bool(&o, "drm", true);
    dout_item_end(&o);
    dout_list_end(&o);
    dout_list_begin(&o, "ids");
    dout_int(&o, "id", 3);
    dout_list_end(&o);
    dout_obj_begin(&o, "message");
    dout_obj_end(&o);
    dout_list_begin(&o, "empty");
    dout_list_end(&o);
    assert_int_equal(dout_finish(&o), 0);
    const char *want =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss><error>0</error>"
        "<uri>http://s/a?x=1&amp;token=T&lt;&gt;</uri><channels><item><is_hidden>0</is_hidden>"
        "<id>7</id><drm>1</drm></item></channels><ids><item>3</item></ids><message/><empty/>"
        "</rss>\n";
    assert_int_equal(o.b.len, strlen(want));
    assert_memory_equal(o.b.data, want, o.b.len);
    dout_close(&o);
}

static struct edge_keyring ring_of(uint16_t newest, uint16_t older)
{
    struct edge_keyring r = {0};
    uint16_t kids[2] = {newest, older};
    for (int i = 0; i < 2; i++) {
        if (kids[i] == 0) {
            continue;
        }
        r.k[r.n].kid = kids[i];
        memset(r.k[r.n].secret, 0x40 + kids[i], 32);
        r.k[r.n].secret_len = 32;
        r.n++;
    }
    return r;
}

static void test_authkey(void **state)
{
    (void)state;
    struct edge_keyring one = ring_of(1, 0), two = ring_of(2, 1), retired = ring_of(2, 0);
    struct edge_authkey a = {.basic = true,
                             .client = 3,
                             .account = 77,
                             .session = 0xabc,
                             .issued_ms = 1700000000123ull},
                        b;
    char text[EDGE_AUTHKEY_LEN + 1];
    edge_authkey_issue(&one, &a, text);
    assert_int_equal(strlen(text), 128);
    assert_int_equal(strspn(text, "0123456789abcdef"), 128);
    assert_int_equal(edge_authkey_check(&one, text, &b), 0);
    assert_true(b.basic && b.client == 3 && b.account == 77 && b.session == 0xabc &&
                b.issued_ms == 1700000000123ull && b.kid == 1);
    /* rotation: the old key still validates; retired: it does not */
    assert_int_equal(edge_authkey_check(&two, text, &b), 0);
    assert_int_equal(edge_authkey_check(&retired, text, &b), -1);
    /* any changed digit fails */
    for (size_t i = 0; i < 128; i += 7) {
        char bad[EDGE_AUTHKEY_LEN + 1];
        memcpy(bad, text, sizeof(bad));
        bad[i] = bad[i] == '0' ? '1' : '0';
        assert_int_equal(edge_authkey_check(&one, bad, &b), -1);
    }
    assert_int_equal(edge_authkey_check(&one, "", &b), -1);
    assert_int_equal(edge_authkey_check(&one, text + 2, &b), -1);
    assert_int_equal(edge_authkey_check(NULL, text, &b), -1);
    edge_authkey_issue(&two, &a, text);
    assert_int_equal(a.kid, 2);
}

static void test_stream_token(void **state)
{
    (void)state;
    struct edge_keyring ring = ring_of(5, 4);
    struct edge_token t = {.kind = EDGE_TOKEN_ARCHIVE,
                           .client = 1,
                           .account = 9,
                           .content = 48,
                           .issued_s = 1799996400,
                           .expiry_s = 1800000000,
                           .ip_bind = edge_token_ip_bind("10.1.2.3")},
                      u;
    char text[EDGE_TOKEN_LEN + 1];
    assert_int_equal(edge_token_issue(&ring, &t, text), 0);
    assert_int_equal(strlen(text), EDGE_TOKEN_LEN);
    assert_int_equal(edge_token_check(&ring, text, strlen(text), &u), 0);
    assert_true(u.version == 2 && u.kind == EDGE_TOKEN_ARCHIVE && u.client == 1 && u.account == 9 &&
                u.content == 48 && u.issued_s == 1799996400 && u.expiry_s == 1800000000 &&
                u.ip_bind == 0x0a010203 && u.nonce == t.nonce && u.kid == 5);
    /* Ids up to 48 bits; larger ones are refused, not cut. */
    t.account = (1ull << 48) - 1;
    t.content = 1ull << 40;
    assert_int_equal(edge_token_issue(&ring, &t, text), 0);
    assert_int_equal(edge_token_check(&ring, text, strlen(text), &u), 0);
    assert_true(u.account == t.account && u.content == t.content);
    t.account = 1ull << 48;
    assert_int_equal(edge_token_issue(&ring, &t, text), -1);
    assert_int_equal(text[0], '\0');
    t.account = 9;
    assert_int_equal(edge_token_issue(&ring, &t, text), 0);

    /* A version 1 token (u64 ids, no issue time) is still accepted. */
    uint8_t v1[36 + 16] = {1, EDGE_TOKEN_LIVE, 0, 5, 0, 0, 0, 1}, msg[12 + 36], md[32];
    v1[15] = 9;                             /* account (u64 at 8) */
    v1[23] = 48;                            /* content (u64 at 16) */
    memcpy(v1 + 24, "\x6b\x49\xd2\x00", 4); /* expiry 1800000000 */
    memcpy(msg, "tvmw-stream", 12);
    memcpy(msg + 12, v1, 36);
    tvmw_hmac_sha256(ring.k[0].secret, ring.k[0].secret_len, msg, sizeof(msg), md);
    memcpy(v1 + 36, md, 16);
    char v1text[EDGE_TOKEN_LEN + 1];
    assert_int_equal(tvmw_b64url_encode(v1, sizeof(v1), v1text), EDGE_TOKEN_LEN);
    assert_int_equal(edge_token_check(&ring, v1text, EDGE_TOKEN_LEN, &u), 0);
    assert_true(u.version == 1 && u.account == 9 && u.content == 48 && u.issued_s == 0 &&
                u.expiry_s == 1800000000 && u.kind == EDGE_TOKEN_LIVE);
    assert_int_not_equal(edge_token_ip_bind("::1"), 0);
    char bad[EDGE_TOKEN_LEN + 1];
    memcpy(bad, text, sizeof(bad));
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    assert_int_equal(edge_token_check(&ring, bad, strlen(bad), &u), -1);
    bad[10] = '+'; /* outside base64url */
    assert_int_equal(edge_token_check(&ring, bad, strlen(bad), &u), -1);
    assert_int_equal(edge_token_check(&ring, text, strlen(text) - 1, &u), -1);
    struct edge_keyring other = ring_of(6, 0);
    assert_int_equal(edge_token_check(&other, text, strlen(text), &u), -1);
}

static void test_codecs(void **state)
{
    (void)state;
    uint8_t in[5] = {0xfb, 0xff, 0x00, 0x10, 0x7f}, out[8];
    char text[16];
    for (size_t n = 0; n <= 5; n++) {
        size_t len = tvmw_b64url_encode(in, n, text);
        assert_int_equal(len, TVMW_B64URL_LEN(n));
        assert_int_equal(tvmw_b64url_decode(text, len, out, sizeof(out)), (long)n);
        assert_memory_equal(in, out, n);
    }
    assert_string_equal((tvmw_b64url_encode(in, 2, text), text), "-_8");
    assert_int_equal(tvmw_b64url_decode("-_9", 3, out, sizeof(out)), -1); /* non-zero tail */
    assert_int_equal(tvmw_b64url_decode("A", 1, out, sizeof(out)), -1);
    assert_int_equal(tvmw_b64url_decode("AAAA", 4, out, 2), -1);
    tvmw_hex_encode(in, 2, text);
    assert_string_equal(text, "fbff");
    assert_int_equal(tvmw_hex_decode("FBff", 4, out, 2), 0);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(tvmw_hex_decode("fbf", 3, out, 2), -1);
    assert_int_equal(tvmw_hex_decode("fbfg", 4, out, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_answer), cmocka_unit_test(test_xml_answer),
        cmocka_unit_test(test_authkey),     cmocka_unit_test(test_stream_token),
        cmocka_unit_test(test_codecs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
