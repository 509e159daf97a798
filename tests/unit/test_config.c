/* Cluster definition parsing: defaults, ranges, unknown keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/config.h"

#define NODES                                                                                      \
    "\"nodes\":[{\"id\":1,\"raft_address\":\"127.0.0.1:9101\",\"http_address\":\"127.0.0.1:"       \
    "8101\"}]"

static int parse(const char *text, struct tvmw_config *c, char *err)
{
    return tvmw_config_parse(text, strlen(text), c, err, 256);
}

static void test_minimal_and_defaults(void **state)
{
    (void)state;
    static struct tvmw_config c;
    char err[256];
    assert_int_equal(parse("{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\","
                           "\"data_root\":\"/tmp/x\"," NODES "}",
                           &c, err),
                     0);
    assert_int_equal(c.n_nodes, 1);
    assert_int_equal(c.nodes[0].id, 1);
    assert_string_equal(c.nodes[0].http_address, "127.0.0.1:8101");
    assert_int_equal(c.raft.election_timeout_ms, 1000);
    assert_int_equal(c.http.max_body_bytes, 1 << 20);
    assert_true(c.raft.pre_vote);
    assert_int_equal(c.probe.interval_ms, 5000);
    assert_int_equal(c.probe.down_after, 1); /* down on the first failure */
}

/* Every key docs/configuration.md documents is accepted (a key missing
 * from a parser's list would make the node refuse to start). */
static void test_every_documented_key(void **state)
{
    (void)state;
    static struct tvmw_config c;
    char err[256] = "";
    int rv = parse("{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\","
                   "\"data_root\":\"/x\","
                   "\"raft\":{\"election_timeout_ms\":2000,\"heartbeat_timeout_ms\":200,"
                   "\"snapshot_threshold\":100,\"snapshot_trailing\":50,"
                   "\"install_snapshot_timeout_ms\":7000,\"pre_vote\":false},"
                   "\"http\":{\"max_body_bytes\":4096,\"request_timeout_ms\":500,"
                   "\"max_connections\":10},"
                   "\"state\":{\"map_size_mb\":128,\"dedup_window_s\":60,"
                   "\"changelog_entries\":1000},"
                   "\"billing\":{\"check_interval_ms\":250,\"period_unit_s\":1,\"batch\":3},"
                   "\"probe\":{\"interval_ms\":700,\"timeout_ms\":300,\"down_after\":3,"
                   "\"up_after\":4},"
                   "\"epg\":{\"check_interval_ms\":500,\"expire_days\":3,"
                   "\"max_file_bytes\":2097152,\"max_xml_bytes\":4194304,"
                   "\"max_programmes\":5000,\"fetch_timeout_s\":30,\"spool_dir\":\"/x/s\"},"
                   "\"edges\":[{\"id\":\"e1\",\"http_address\":\"127.0.0.1:8201\","
                   "\"datacenter\":\"dc1\"}]," NODES "}",
                   &c, err);
    if (rv != 0) {
        fail_msg("refused: %s", err);
    }
    assert_int_equal(c.raft.install_snapshot_timeout_ms, 7000);
    assert_false(c.raft.pre_vote);
    assert_int_equal(c.state.changelog_entries, 1000);
    assert_int_equal(c.billing.check_interval_ms, 250);
    assert_int_equal(c.billing.period_unit_s, 1);
    assert_int_equal(c.billing.batch, 3);
    assert_int_equal(c.probe.interval_ms, 700);
    assert_int_equal(c.probe.timeout_ms, 300);
    assert_int_equal(c.probe.down_after, 3);
    assert_int_equal(c.probe.up_after, 4);
    assert_int_equal(c.epg.check_interval_ms, 500);
    assert_int_equal(c.epg.expire_days, 3);
    assert_int_equal(c.epg.max_file_bytes, 2097152);
    assert_int_equal(c.epg.max_xml_bytes, 4194304);
    assert_int_equal(c.epg.max_programmes, 5000);
    assert_int_equal(c.epg.fetch_timeout_s, 30);
    assert_string_equal(c.epg.spool_dir, "/x/s");
    assert_int_equal(c.n_edges, 1);
}

static void test_refusals(void **state)
{
    (void)state;
    static struct tvmw_config c;
    char err[256];
    static const char *const bad[] = {
        "not json",
        "[]",
        /* unknown key */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"colour\":1," NODES "}",
        /* token too short */
        "{\"cluster_name\":\"t\",\"admin_token\":\"short\",\"data_root\":\"/x\"," NODES "}",
        /* heartbeat >= election */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"raft\":{\"election_timeout_ms\":200,\"heartbeat_timeout_ms\":200}," NODES "}",
        /* out of range */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"http\":{\"max_body_bytes\":1}," NODES "}",
        /* a probe that may outlast its period */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"probe\":{\"interval_ms\":1000,\"timeout_ms\":1000}," NODES "}",
        /* probe threshold 0, unknown probe key */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"probe\":{\"down_after\":0}," NODES "}",
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"probe\":{\"intervall_ms\":1000}," NODES "}",
        /* bad address */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"nodes\":[{\"id\":1,\"raft_address\":\"localhost\",\"http_address\":\"1.2.3.4:5\"}]}",
        /* duplicate id */
        "{\"cluster_name\":\"t\",\"admin_token\":\"0123456789abcdef\",\"data_root\":\"/x\","
        "\"nodes\":[{\"id\":1,\"raft_address\":\"1.1.1.1:1\",\"http_address\":\"1.1.1.1:2\"},"
        "{\"id\":1,\"raft_address\":\"1.1.1.1:3\",\"http_address\":\"1.1.1.1:4\"}]}",
        /* duplicate key */
        "{\"cluster_name\":\"t\",\"cluster_name\":\"u\",\"admin_token\":\"0123456789abcdef\","
        "\"data_root\":\"/x\"," NODES "}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_not_equal(parse(bad[i], &c, err), 0);
        assert_true(strlen(err) > 0); /* a reason for the operator */
    }
}

static void test_addr_split(void **state)
{
    (void)state;
    char host[64];
    unsigned port;
    assert_int_equal(tvmw_addr_split("10.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_not_equal(tvmw_addr_split("10.0.0.1:", host, sizeof(host), &port), 0);
    assert_int_not_equal(tvmw_addr_split("10.0.0.1:70000", host, sizeof(host), &port), 0);
    assert_int_not_equal(tvmw_addr_split("host:80", host, sizeof(host), &port), 0);
    assert_int_not_equal(tvmw_addr_split(":80", host, sizeof(host), &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_every_documented_key),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_addr_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
