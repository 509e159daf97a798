/*
 * it_snapshot: catch-up by snapshot (Raft thesis §5). With
 * snapshot_threshold 64 and snapshot_trailing 16 the leader's log soon
 * starts far past a fresh node's, so a follower whose data dir was wiped
 * (it bootstraps again with the initial configuration) can only catch up
 * by installing a snapshot; so can a follower killed with -9 while many
 * entries were written. Each must then reach the leader's index and serve
 * every acknowledged client from its own state (?stale=1).
 */
#include <stdlib.h>
#include <string.h>

#include "it_cmocka.h"

#define BASE_PORT 23400
/* A wiped follower gets one snapshot and the entries after it: with a
 * 1 s election timeout and a ~250 KB snapshot this takes well under a
 * second. The bound leaves room for slow (sanitizer) builds but not for
 * libraft's install_snapshot_timeout (30 s by default), which is how long
 * the leader waits before it retries a follower stuck after an install. */
#define CATCH_UP_MS 15000

static struct it_cluster *cl;
static struct it_ack *a1, *a2; /* freed by teardown, also after a failure */

static uint64_t a_follower(uint64_t leader, uint64_t not_this)
{
    for (uint64_t id = 1; id <= 3; id++) {
        if (id != leader && id != not_this && it_node_running(cl, id)) {
            return id;
        }
    }
    return 0;
}

/* Runs a writer with `prefix` until n acks; returns its acks. */
static struct it_ack *write_n(const char *prefix, size_t n, size_t *got)
{
    struct it_writer *w;
    IT_ASSERT(it_writer_start(cl, prefix, 4, &w) == 0, "writer did not start");
    bool ok = it_writer_wait(w, n, 40000);
    it_writer_stop(w);
    struct it_writer_stats st;
    it_writer_stats(w, &st);
    bool no_doubt = it_writer_in_doubt(w)[0] == NULL;
    IT_ASSERT(ok, "only %zu of %zu writes acknowledged", st.acked, n);
    IT_ASSERT(st.unexpected == 0, "%zu unexpected answers, last: %s", st.unexpected,
              st.last_unexpected);
    IT_ASSERT(no_doubt, "a write of %s stayed in doubt with every node up", prefix);
    struct it_ack *acks = it_writer_acks(w, got);
    it_writer_free(w);
    IT_ASSERT(acks != NULL, "out of memory");
    return acks;
}

static void check_node(uint64_t id, const struct it_ack *acks, size_t n, const char *prefix)
{
    long p = it_check_acks(cl, id, true, acks, n, prefix, NULL);
    IT_ASSERT(p == 0, "node %llu (stale read): %ld problems with %zu acknowledged %s writes",
              (unsigned long long)id, p, n, prefix);
}

static void test_catch_up_by_snapshot(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = 3,
                        .base_port = BASE_PORT,
                        .snapshot_threshold = 64,
                        .snapshot_trailing = 16,
                        .name = "snapshot"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    uint64_t leader = it_wait_all_ready(cl, 20000);
    IT_ASSERT(leader != 0, "no leader at start");

    size_t n1;
    a1 = write_n("snap1", 500, &n1);
    leader = it_wait_leader(cl, 10000);
    IT_ASSERT(leader != 0, "no leader after the writes");
    double taken = it_metric(cl, leader, "tvmw_cp_snapshots_taken_total");
    IT_ASSERT(taken >= 1, "the leader took no snapshot after %zu writes (metric %.0f)", n1, taken);

    /* 1. Stop a follower, wipe it, restart it: it bootstraps again with
     * the initial configuration and must be brought up to date. */
    uint64_t f = a_follower(leader, 0);
    IT_ASSERT(it_node_stop(cl, f, 10000) == 0, "follower %llu did not stop cleanly",
              (unsigned long long)f);
    IT_ASSERT(it_node_wipe(cl, f) == 0, "wipe of node %llu", (unsigned long long)f);
    uint64_t t0 = it_now_ms();
    IT_ASSERT(it_node_start(cl, f) == 0, "restart of node %llu", (unsigned long long)f);
    IT_ASSERT(it_wait_converged(cl, CATCH_UP_MS), "wiped node %llu did not catch up in %d ms",
              (unsigned long long)f, CATCH_UP_MS);
    fprintf(stderr, "SNAPSHOT TIMING: wiped node %llu caught up in %llu ms\n",
            (unsigned long long)f, (unsigned long long)(it_now_ms() - t0));
    double restored = it_metric(cl, f, "tvmw_cp_snapshots_restored_total");
    IT_ASSERT(restored >= 1, "wiped node %llu restored %.0f snapshots", (unsigned long long)f,
              restored);
    check_node(f, a1, n1, "snap1");
    IT_ASSERT(it_wait_all_ready(cl, 10000) != 0, "cluster not ready");

    /* 2. kill -9 the other follower, write more than threshold + trailing,
     * restart it. */
    leader = it_wait_leader(cl, 10000);
    uint64_t g = a_follower(leader, f);
    if (g == 0) {
        g = a_follower(leader, 0); /* f took the lead: kill the other one */
    }
    IT_ASSERT(g != 0 && g != leader, "no follower to kill");
    it_node_kill(cl, g);
    size_t n2;
    a2 = write_n("snap2", 300, &n2);
    t0 = it_now_ms();
    IT_ASSERT(it_node_start(cl, g) == 0, "restart of node %llu", (unsigned long long)g);
    IT_ASSERT(it_wait_converged(cl, CATCH_UP_MS), "killed node %llu did not catch up in %d ms",
              (unsigned long long)g, CATCH_UP_MS);
    fprintf(stderr,
            "SNAPSHOT TIMING: node %llu (kill -9, %zu writes missed) caught up in %llu ms, "
            "snapshots restored since its start: %.0f\n",
            (unsigned long long)g, n2, (unsigned long long)(it_now_ms() - t0),
            it_metric(cl, g, "tvmw_cp_snapshots_restored_total"));
    for (uint64_t id = 1; id <= 3; id++) {
        check_node(id, a1, n1, "snap1");
        check_node(id, a2, n2, "snap2");
    }

    /* 3. And the cluster still takes writes through every node. */
    IT_ASSERT(it_wait_all_ready(cl, 10000) != 0, "cluster not ready at the end");
    for (uint64_t id = 1; id <= 3; id++) {
        char name[32];
        struct it_ack ack;
        snprintf(name, sizeof(name), "snap3-%llu", (unsigned long long)id);
        IT_ASSERT(it_create_client(cl, id, name, name, 15000, &ack) == 0, "write via %llu",
                  (unsigned long long)id);
    }
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    it_cluster_free(cl);
    cl = NULL;
    free(a1);
    free(a2);
    a1 = a2 = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_catch_up_by_snapshot, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
