/* The raft guard's decoder of libraft's configuration encoding: what
 * raft_configuration_encode writes must come back identical, and every
 * truncation of it must be refused, never read past the buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "controlplane/raftguard.h"

static void make(struct raft_configuration *c)
{
    raft_configuration_init(c);
    assert_int_equal(raft_configuration_add(c, 1, "10.0.0.1:9100", RAFT_VOTER), 0);
    assert_int_equal(raft_configuration_add(c, 258, "node-b.example:9100", RAFT_STANDBY), 0);
    assert_int_equal(raft_configuration_add(c, 1ull << 40, "h:1", RAFT_SPARE), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct raft_configuration c, d;
    struct raft_buffer b;
    make(&c);
    assert_int_equal(raft_configuration_encode(&c, &b), 0);
    raft_configuration_init(&d);
    assert_int_equal(cp_raftguard_decode(b.base, b.len, &d), 0);
    assert_int_equal(d.n, c.n);
    for (unsigned i = 0; i < c.n; i++) {
        assert_true(d.servers[i].id == c.servers[i].id);
        assert_string_equal(d.servers[i].address, c.servers[i].address);
        assert_int_equal(d.servers[i].role, c.servers[i].role);
    }
    raft_configuration_close(&d);
    raft_configuration_close(&c);
    raft_free(b.base);
}

static void test_truncated_and_bad_version(void **state)
{
    (void)state;
    struct raft_configuration c, d;
    struct raft_buffer b;
    make(&c);
    assert_int_equal(raft_configuration_encode(&c, &b), 0);
    /* Every cut before the last role byte (the rest is padding to 8 bytes,
     * not necessarily zeroed). */
    size_t end = 1 + 8;
    for (unsigned i = 0; i < c.n; i++) {
        end += 8 + strlen(c.servers[i].address) + 1 + 1;
    }
    assert_true(end <= b.len && b.len - end < 8);
    for (size_t len = 0; len < end; len++) {
        unsigned char *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(copy, b.base, len);
        raft_configuration_init(&d);
        assert_int_equal(cp_raftguard_decode(copy, len, &d), RAFT_MALFORMED);
        raft_configuration_close(&d);
        free(copy);
    }
    ((unsigned char *)b.base)[0] = 2;
    raft_configuration_init(&d);
    assert_int_equal(cp_raftguard_decode(b.base, b.len, &d), RAFT_MALFORMED);
    raft_configuration_close(&d);
    raft_configuration_close(&c);
    raft_free(b.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated_and_bad_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
