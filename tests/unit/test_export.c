/*
 * Unit tests of the exports' building blocks (edge/export_int.h): the flat
 * JSON reader of programme records, JSON string decoding, and the XML,
 * M3U, JSON and URL writers, on well-formed, malformed and hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "edge/export_int.h"

static struct ex_out *out_new(struct tvmw_buf *b, bool gz)
{
    struct ex_out *o = malloc(sizeof(*o));
    assert_non_null(o);
    tvmw_buf_init(b, 0);
    ex_out_init(o, b, gz);
    return o;
}

static void out_done(struct ex_out *o)
{
    assert_int_equal(ex_out_finish(o), 0);
    ex_out_close(o);
    free(o);
}

static void test_prog_parse(void **state)
{
    (void)state;
    static const char rec[] =
        "{\"id\":42,\"client_id\":1,\"channel_id\":7,\"begin_time\":1700000000,"
        "\"end_time\":1700003600,\"name\":\"A \\\"b\\\" \\u00e9\\ud83d\\ude00\","
        "\"short_name\":\"\",\"description\":\"x\\ny\",\"category\":\"News\","
        "\"preview\":\"http://i/p.jpg\",\"rating\":\"16+\",\"meta\":\"{\\\"source_id\\\":3,"
        "\\\"lang\\\":\\\"ru\\\",\\\"episode_num\\\":{\\\"xmltv_ns\\\":\\\"0.11.\\\"}}\"}";
    struct ex_prog p;
    assert_true(ex_prog_parse((const uint8_t *)rec, strlen(rec), &p));
    assert_int_equal(p.id, 42);
    assert_int_equal(p.begin, 1700000000);
    assert_int_equal(p.end, 1700003600);
    struct tvmw_buf t;
    tvmw_buf_init(&t, 0);
    assert_int_equal(ex_jv_text(&p.name, &t), 0);
    assert_string_equal(t.data, "A \"b\" \xc3\xa9\xf0\x9f\x98\x80");
    assert_int_equal(ex_jv_text(&p.desc, &t), 0);
    assert_string_equal(t.data, "x\ny");
    assert_int_equal(ex_jv_text(&p.meta, &t), 0);
    struct ex_jv v, ep, ns;
    ex_json_get(t.data, t.len, "source_id", &v);
    assert_int_equal(ex_jv_int(&v, 0), 3);
    ex_json_get(t.data, t.len, "episode_num", &ep);
    assert_int_equal(ep.t, 'o');
    ex_json_get(ep.p, ep.n, "xmltv_ns", &ns);
    assert_int_equal(ns.t, 's');
    assert_int_equal(ns.n, 5);
    ex_json_get(t.data, t.len, "absent", &v);
    assert_int_equal(v.t, 0);
    tvmw_buf_close(&t);
}

static void test_prog_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{",
        "{\"begin_time\":5,\"end_time\":5}",            /* not after */
        "{\"begin_time\":5}",                           /* no end */
        "{\"begin_time\":1,\"end_time\":2,\"name\":\"", /* unterminated */
        "{\"begin_time\":\"1\",\"end_time\":2}",        /* a string time */
        "{\"begin_time\":99999999999999999999999,\"end_time\":2}",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]}",
        "{\"begin_time\" 1,\"end_time\":2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ex_prog p;
        assert_false(ex_prog_parse((const uint8_t *)bad[i], strlen(bad[i]), &p));
    }
    /* escapes that are not text: a lone surrogate and a short \u vanish */
    struct tvmw_buf t;
    tvmw_buf_init(&t, 0);
    struct ex_jv v = {"a\\ud800b\\u12", 12, 's'};
    assert_int_equal(ex_jv_text(&v, &t), 0);
    assert_string_equal(t.data, "ab12");
    tvmw_buf_close(&t);
}

static void test_writers(void **state)
{
    (void)state;
    struct tvmw_buf b;
    struct ex_out *o = out_new(&b, false);
    /* XML: escapes, forbidden controls and invalid UTF-8 dropped */
    static const char x[] = "a&b<c>\"d'\x01\x1f\t\n\xc3\xa9\xff\xc0\xaf\xed\xa0\x80\xef\xbf\xbe z";
    ex_out_xml(o, x, sizeof(x) - 1);
    ex_out_puts(o, "|");
    ex_out_m3u(o, "x\"y\r\nz", false);
    ex_out_puts(o, "|");
    ex_out_m3u(o, "  A, \"B\",,C  ", true);
    ex_out_puts(o, "|");
    ex_out_json(o, "q\"\\\x02\xc3\xa9\xff", 7);
    ex_out_puts(o, "|");
    ex_out_urlenc(o, "a b&c/d~");
    out_done(o);
    assert_string_equal(b.data, "a&amp;b&lt;c&gt;&quot;d&apos;\t\n\xc3\xa9 z|x'y  z|A B C|"
                                "\"q\\\"\\\\\\u0002\xc3\xa9\"|a%20b%26c%2Fd~");
    tvmw_buf_close(&b);
}

static void test_gzip_large(void **state)
{
    (void)state;
    struct tvmw_buf b;
    struct ex_out *o = out_new(&b, true);
    for (int i = 0; i < 200000; i++) {
        ex_out_puts(o, "<programme>");
        ex_out_int(o, i);
    }
    out_done(o);
    size_t want = 0;
    for (int i = 0; i < 200000; i++) {
        char n[16];
        want += 11 + (size_t)snprintf(n, sizeof(n), "%d", i);
    }
    char *plain = malloc(want + 1);
    assert_non_null(plain);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (unsigned char *)b.data;
    z.avail_in = (uInt)b.len;
    z.next_out = (unsigned char *)plain;
    z.avail_out = (uInt)want + 1;
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, want);
    assert_memory_equal(plain + want - 17, "<programme>199999", 17);
    inflateEnd(&z);
    free(plain);
    tvmw_buf_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prog_parse),
        cmocka_unit_test(test_prog_malformed),
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_gzip_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
