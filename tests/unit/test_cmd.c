/* Command envelope: encode/decode round trip, padding, and refusal of
 * every kind of malformed entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/cmd.h"

static size_t encode(const char *payload, uint8_t *out, size_t cap)
{
    struct cp_cmd c = {.type = CP_CMD_CLIENT_CREATE,
                       .time_ms = 1700000000123ull,
                       .payload = payload,
                       .payload_len = strlen(payload)};
    memset(c.reqid, 0xab, sizeof(c.reqid));
    size_t n = cp_cmd_encoded_size(c.payload_len);
    assert_true(n <= cap);
    assert_int_equal(cp_cmd_encode(&c, out, cap), 0);
    return n;
}

static void test_round_trip_and_padding(void **state)
{
    (void)state;
    uint8_t buf[256];
    for (size_t plen = 0; plen < 40; plen++) {
        char payload[64];
        memset(payload, 'x', plen);
        payload[plen] = '\0';
        size_t n = encode(payload, buf, sizeof(buf));
        assert_int_equal(n % 8, 0); /* libraft 0.15 needs 8-byte multiples */
        assert_true(n >= CP_CMD_HEADER_SIZE + plen && n < CP_CMD_HEADER_SIZE + plen + 8);
        struct cp_cmd d;
        assert_int_equal(cp_cmd_decode(buf, n, &d), 0);
        assert_int_equal(d.type, CP_CMD_CLIENT_CREATE);
        assert_int_equal(d.version, CP_CMD_VERSION);
        assert_int_equal(d.time_ms, 1700000000123ull);
        assert_int_equal(d.payload_len, plen);
        assert_memory_equal(d.payload, payload, plen);
        assert_int_equal(d.reqid[0], 0xab);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t buf[256], bad[256];
    struct cp_cmd d;
    size_t n = encode("{\"name\":\"a\"}", buf, sizeof(buf));

    assert_int_equal(cp_cmd_decode(buf, 0, &d), TVMW_EMALFORMED);
    assert_int_equal(cp_cmd_decode(buf, n - 8, &d), TVMW_EMALFORMED); /* truncated */
    assert_int_equal(cp_cmd_decode(buf, n - 1, &d), TVMW_EMALFORMED); /* not 8-aligned */

    memcpy(bad, buf, n);
    bad[0] ^= 1; /* magic */
    assert_int_equal(cp_cmd_decode(bad, n, &d), TVMW_EMALFORMED);

    memcpy(bad, buf, n);
    tvmw_put_u16(bad + 4, CP_CMD_VERSION + 1); /* future version */
    assert_int_equal(cp_cmd_decode(bad, n, &d), TVMW_EMALFORMED);

    memcpy(bad, buf, n);
    tvmw_put_u32(bad + 8, 1000); /* payload longer than the entry */
    assert_int_equal(cp_cmd_decode(bad, n, &d), TVMW_EMALFORMED);

    memcpy(bad, buf, n);
    bad[n - 1] = 1; /* non-zero padding */
    assert_int_equal(cp_cmd_decode(bad, n, &d), TVMW_EMALFORMED);

    memcpy(bad, buf, n);
    tvmw_put_u32(bad + 12, 7); /* unknown flags */
    assert_int_equal(cp_cmd_decode(bad, n, &d), TVMW_EMALFORMED);
}

static void test_too_big(void **state)
{
    (void)state;
    struct cp_cmd c = {.type = 1, .payload = "", .payload_len = CP_CMD_MAX_BYTES};
    uint8_t buf[64];
    assert_int_equal(cp_cmd_encode(&c, buf, sizeof(buf)), TVMW_ETOOBIG);
}

static void test_reqid(void **state)
{
    (void)state;
    uint8_t a[CP_REQID_SIZE], b[CP_REQID_SIZE], c[CP_REQID_SIZE];
    char hex[2 * CP_REQID_SIZE + 1];
    assert_int_equal(cp_reqid_make("key-1", a), 0);
    assert_int_equal(cp_reqid_make("key-1", b), 0);
    assert_memory_equal(a, b, CP_REQID_SIZE); /* same key, same id */
    assert_int_equal(cp_reqid_make("key-2", b), 0);
    assert_memory_not_equal(a, b, CP_REQID_SIZE);
    cp_reqid_hex(a, hex);
    assert_int_equal(cp_reqid_parse_hex(hex, c), 0);
    assert_memory_equal(a, c, CP_REQID_SIZE);
    assert_int_equal(cp_reqid_parse_hex("zz", c), TVMW_EMALFORMED);
    hex[3] = 'G';
    assert_int_equal(cp_reqid_parse_hex(hex, c), TVMW_EMALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_padding),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_reqid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
