/* The streaming XMLTV reader (common/xmltv.h): times, fields, gzip, skipped
 * programmes, and refusal of hostile documents with a clear reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/err.h"
#include "common/xmltv.h"

struct seen {
    int programmes, channels, skipped;
    char last_title[600];
    char last_desc[9000];
    char last_why[200];
    struct tvmw_xmltv_programme first; /* its strings are not kept */
    char first_fields[8][300];
    int stop_after;
};

static int on_prog(void *arg, const struct tvmw_xmltv_programme *p)
{
    struct seen *s = arg;
    if (s->programmes == 0) {
        s->first = *p;
        const char *f[] = {p->channel, p->title,  p->sub_title,        p->category,
                           p->icon,    p->rating, p->episode_xmltv_ns, p->title_lang};
        for (int i = 0; i < 8; i++) {
            snprintf(s->first_fields[i], sizeof(s->first_fields[i]), "%s", f[i]);
        }
    }
    s->programmes++;
    snprintf(s->last_title, sizeof(s->last_title), "%s", p->title);
    snprintf(s->last_desc, sizeof(s->last_desc), "%s", p->desc);
    return s->stop_after != 0 && s->programmes == s->stop_after ? 42 : 0;
}

static int on_chan(void *arg, const struct tvmw_xmltv_channel *c)
{
    (void)c;
    ((struct seen *)arg)->channels++;
    return 0;
}

static void on_skip(void *arg, unsigned long line, const char *why)
{
    struct seen *s = arg;
    (void)line;
    s->skipped++;
    snprintf(s->last_why, sizeof(s->last_why), "%s", why);
}

static int fd_of(const void *p, size_t n)
{
    int fd = memfd_create("xmltv", 0);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static int parse_bytes(const void *p, size_t n, uint64_t max, struct seen *s, char *err)
{
    int fd = fd_of(p, n);
    struct tvmw_xmltv_limits lim = {.max_xml_bytes = max};
    struct tvmw_xmltv_cbs cbs = {
        .programme = on_prog, .channel = on_chan, .skipped = on_skip, .arg = s};
    struct tvmw_xmltv_stats st;
    int rv = tvmw_xmltv_parse_fd(fd, &lim, &cbs, &st, err, 256);
    close(fd);
    return rv;
}

static int parse(const char *doc, struct seen *s, char *err)
{
    return parse_bytes(doc, strlen(doc), 0, s, err);
}

static size_t gzip_bytes(const void *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static void test_time(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(tvmw_xmltv_parse_time("20260101120000 +0000", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("20260101150000 +0300", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("20260101070000 -0500", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("20260101120000", &t), 0); /* no zone: UTC */
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("202601011200 UTC", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("2026010112", &t), 0);
    assert_int_equal(t, 1767268800);
    assert_int_equal(tvmw_xmltv_parse_time("20260101", &t), 0);
    assert_int_equal(t, 1767225600);
    assert_int_equal(tvmw_xmltv_parse_time("20240229000000 +0000", &t), 0); /* leap day */
    assert_int_equal(t, 1709164800);
    static const char *const bad[] = {"",
                                      "2026-01-01 12:00",
                                      "20260101120000 +03",
                                      "20260101120000 +2500",
                                      "20260230120000",
                                      "20250229120000",
                                      "20261301120000",
                                      "20260101250000",
                                      "2026010112000",
                                      "20260101120000 EST",
                                      "20260101120000 +0000 x",
                                      "18000101000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tvmw_xmltv_parse_time(bad[i], &t) != TVMW_EMALFORMED) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

static const char good[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n"
    "<tv>\n"
    "  <channel id=\"101.tvmw\"><display-name>One</display-name></channel>\n"
    "  <programme start=\"20260101120000 +0300\" stop=\"20260101130000 +0300\" "
    "channel=\"101.tvmw\">\n"
    "    <title lang=\"ru\">  Новости &amp; погода </title><title>Second title</title>\n"
    "    <sub-title>Выпуск</sub-title>\n"
    "    <desc><![CDATA[A <b>bold</b> day.]]></desc>\n"
    "    <credits><actor>Someone</actor></credits>\n"
    "    <category>News</category><category>Other</category>\n"
    "    <icon src=\"http://img/p.jpg\"/>\n"
    "    <episode-num system=\"xmltv_ns\">0.11.</episode-num>\n"
    "    <episode-num system=\"onscreen\">S01E12</episode-num>\n"
    "    <rating system=\"RU\"><value>16+</value></rating>\n"
    "  </programme>\n"
    "  <programme start=\"20260101130000 +0300\" channel=\"101.tvmw\"><title>No stop</title>"
    "</programme>\n"
    "  <programme start=\"2026-01-01\" channel=\"101.tvmw\"><title>bad</title></programme>\n"
    "  <programme start=\"20260101130000\" channel=\"101.tvmw\"/>\n"
    "</tv>\n";

static void test_good(void **state)
{
    (void)state;
    struct seen s = {0};
    char err[256];
    assert_int_equal(parse(good, &s, err), 0);
    assert_int_equal(s.programmes, 2);
    assert_int_equal(s.channels, 1);
    assert_int_equal(s.skipped, 2);
    assert_string_equal(s.last_why, "no title");
    assert_int_equal(s.first.start_s, 1767258000);
    assert_int_equal(s.first.stop_s, 1767261600);
    assert_string_equal(s.first_fields[0], "101.tvmw");
    assert_string_equal(s.first_fields[1], "Новости & погода"); /* trimmed, the first */
    assert_string_equal(s.first_fields[2], "Выпуск");
    assert_string_equal(s.first_fields[3], "News");
    assert_string_equal(s.first_fields[4], "http://img/p.jpg");
    assert_string_equal(s.first_fields[5], "16+");
    assert_string_equal(s.first_fields[6], "0.11.");
    assert_string_equal(s.first_fields[7], "ru");
    assert_string_equal(s.last_title, "No stop");

    /* The same as gzip, in two members. */
    uint8_t gz[8192];
    size_t half = strlen(good) / 2;
    size_t n1 = gzip_bytes(good, half, gz, sizeof(gz));
    size_t n2 = gzip_bytes(good + half, strlen(good) - half, gz + n1, sizeof(gz) - n1);
    struct seen z = {0};
    assert_int_equal(parse_bytes(gz, n1 + n2, 0, &z, err), 0);
    assert_int_equal(z.programmes, 2);
    /* Truncated gzip. */
    struct seen t = {0};
    assert_int_equal(parse_bytes(gz, n1 + n2 / 2, 0, &t, err), TVMW_EMALFORMED);
    assert_non_null(strstr(err, "gzip"));
    /* A callback that stops the parse. */
    struct seen st = {.stop_after = 1};
    assert_int_equal(parse(good, &st, err), 42);
    /* The size limit. */
    struct seen l = {0};
    assert_int_equal(parse_bytes(good, strlen(good), 100, &l, err), TVMW_ETOOBIG);
    assert_non_null(strstr(err, "over 100 bytes"));
}

static void test_cut_at_character(void **state)
{
    (void)state;
    size_t n = 20000;
    char *doc = malloc(n * 2 + 400);
    int k = sprintf(doc, "<tv><programme start=\"20260101120000\" channel=\"a\"><title>t</title>"
                         "<desc>x");
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(doc + k, "я", 2); /* 2 bytes; with the x every cut is mid-character */
        k += 2;
    }
    strcpy(doc + k, "</desc></programme></tv>");
    struct seen s = {0};
    char err[256];
    assert_int_equal(parse(doc, &s, err), 0);
    size_t len = strlen(s.last_desc);
    assert_true(len <= TVMW_XMLTV_DESC_BYTES && len >= TVMW_XMLTV_DESC_BYTES - 1);
    assert_int_equal(len % 2, 1); /* "x" + whole "я"s */
    free(doc);
}

struct hostile {
    const char *name;
    const char *doc;
    const char *why; /* a part of the message */
};

static void test_hostile(void **state)
{
    (void)state;
    static char laughs[2000], deep[20000], bigattr[5000 + 200];
    int k = sprintf(laughs, "<?xml version=\"1.0\"?>\n<!DOCTYPE tv [\n<!ENTITY l0 \"lol\">\n");
    for (int i = 1; i < 10; i++) {
        k += sprintf(laughs + k, "<!ENTITY l%d \"", i);
        for (int j = 0; j < 10; j++) {
            k += sprintf(laughs + k, "&l%d;", i - 1);
        }
        k += sprintf(laughs + k, "\">\n");
    }
    sprintf(laughs + k, "]>\n<tv><programme start=\"20260101120000\" channel=\"a\">"
                        "<title>&l9;</title></programme></tv>\n");
    k = sprintf(deep, "<tv>");
    for (int i = 0; i < 1000; i++) {
        k += sprintf(deep + k, "<a>");
    }
    sprintf(deep + k, "</tv>");
    k = sprintf(bigattr, "<tv><programme start=\"20260101120000\" channel=\"");
    memset(bigattr + k, 'c', 5000);
    sprintf(bigattr + k + 5000, "\"><title>t</title></programme></tv>");
    const struct hostile cases[] = {
        {"billion laughs", laughs, "entity"},
        {"external entity",
         "<?xml version=\"1.0\"?><!DOCTYPE tv [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
         "<tv><programme start=\"20260101120000\" channel=\"a\"><title>&x;</title></programme>"
         "</tv>",
         "entity reference &x;"},
        {"undeclared entity",
         "<tv><programme start=\"20260101120000\" channel=\"a\"><title>&nope;</title>"
         "</programme></tv>",
         "nope"},
        {"deep nesting", deep, "nested deeper than 16"},
        {"not xml", "{\"a\": 1}", "not an XML document"},
        {"empty", "", "empty"},
        {"wrong root", "<rss><channel/></rss>", "root element is <rss>"},
        {"truncated", "<tv><programme start=\"20260101120000\" channel=\"a\"><title>x</ti",
         "line 1"},
        {"bad utf-8",
         "<?xml version=\"1.0\" encoding=\"UTF-8\"?><tv><programme start=\"20260101120000\" "
         "channel=\"a\"><title>caf\xe9</title></programme></tv>",
         "UTF-8"},
        {"unknown encoding", "<?xml version=\"1.0\" encoding=\"x-none\"?><tv/>", "encoding"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen s = {0};
        char err[256] = "";
        int rv = parse(cases[i].doc, &s, err);
        if (rv != TVMW_EMALFORMED || strstr(err, cases[i].why) == NULL) {
            fail_msg("%s: rv %d, \"%s\" (wanted \"%s\")", cases[i].name, rv, err, cases[i].why);
        }
        assert_int_equal(s.programmes, 0);
    }
    /* A huge attribute only costs its programme. */
    struct seen s = {0};
    char err[256];
    assert_int_equal(parse(bigattr, &s, err), 0);
    assert_int_equal(s.skipped, 1);
    assert_non_null(strstr(s.last_why, "over 4096 bytes"));
    /* A legacy encoding that is declared is converted. */
    struct seen u = {0};
    assert_int_equal(parse("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><tv><programme "
                           "start=\"20260101120000\" channel=\"a\"><title>caf\xe9</title>"
                           "</programme></tv>",
                           &u, err),
                     0);
    assert_string_equal(u.last_title, "café");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_cut_at_character),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
