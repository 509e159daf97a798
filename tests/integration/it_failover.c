/*
 * it_failover: kill -9 the leader of a 3-node cluster under a steady
 * stream of idempotent writes. A new leader must be elected and serve
 * writes, the old leader must rejoin after a restart, and no acknowledged
 * write may be lost or applied twice (Raft thesis §3.6: a committed entry
 * survives a leader change; §6.3: retried commands apply once).
 */
#include <stdlib.h>
#include <string.h>

#include "it_cmocka.h"

#define BASE_PORT 23200
#define PREFIX    "fo"

static struct it_cluster *cl;
static struct it_ack *all; /* freed by teardown, also after a failure */

static void check_everywhere(const struct it_ack *acks, size_t n, const char *const *doubt)
{
    IT_ASSERT(it_wait_converged(cl, 20000), "nodes did not converge after the writes");
    for (uint64_t id = 1; id <= 3; id++) {
        long p = it_check_acks(cl, id, true, acks, n, PREFIX, doubt);
        IT_ASSERT(p == 0, "node %llu (stale read): %ld problems with %zu acknowledged writes",
                  (unsigned long long)id, p, n);
        p = it_check_acks(cl, id, false, acks, n, PREFIX, doubt);
        IT_ASSERT(p == 0, "node %llu (linearizable read): %ld problems", (unsigned long long)id, p);
    }
}

#define ROUNDS 3

static void test_kill_leader(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = 3, .base_port = BASE_PORT, .name = "failover"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");

    struct it_writer *w;
    IT_ASSERT(it_writer_start(cl, PREFIX, 3, &w) == 0, "writer did not start");
    IT_ASSERT(it_writer_wait(w, 100, 20000), "no steady writes before the kill");

    /* direct[k]: a write to the new leader, then one to the restarted node. */
    struct it_ack direct[2 * ROUNDS];
    for (unsigned round = 0; round < ROUNDS; round++) {
        struct it_resp r;
        uint64_t old = it_wait_leader(cl, 15000);
        IT_ASSERT(old != 0, "no leader before round %u", round);
        IT_ASSERT(it_healthz(cl, old, &r), "healthz");
        long long old_term = it_resp_int(&r, "term");
        it_resp_close(&r);

        struct it_writer_stats before;
        it_writer_stats(w, &before);
        uint64_t t_kill = it_now_ms();
        it_node_kill(cl, old);

        uint64_t leader = it_wait_leader(cl, 15000);
        uint64_t t_leader = it_now_ms();
        IT_ASSERT(leader != 0 && leader != old, "no new leader after killing %llu (got %llu)",
                  (unsigned long long)old, (unsigned long long)leader);
        IT_ASSERT(it_healthz(cl, leader, &r), "healthz of the new leader");
        IT_ASSERT(it_resp_int(&r, "term") > old_term, "term did not grow: %s", r.body);
        it_resp_close(&r);

        /* The new leader serves writes itself, and the writer goes on. */
        char name[64], key[64];
        snprintf(name, sizeof(name), PREFIX "-direct-%u-new", round);
        snprintf(key, sizeof(key), PREFIX "-dk-%u-new", round);
        IT_ASSERT(it_create_client(cl, leader, name, key, 15000, &direct[2 * round]) == 0,
                  "the new leader does not take writes");
        IT_ASSERT(it_writer_wait(w, before.acked + 100, 30000),
                  "writes did not resume after failover");
        struct it_ack first;
        IT_ASSERT(it_writer_first_ack_after(w, t_kill, &first), "no write sent after the kill");
        uint64_t to_first_write = first.acked_ms - t_kill;
        if (direct[2 * round].acked_ms - t_kill < to_first_write) {
            to_first_write = direct[2 * round].acked_ms - t_kill;
        }
        fprintf(stderr,
                "FAILOVER TIMING round %u: kill -9 of leader %llu -> new leader %llu ready after "
                "%llu ms; first acknowledged write after %llu ms\n",
                round, (unsigned long long)old, (unsigned long long)leader,
                (unsigned long long)(t_leader - t_kill), (unsigned long long)to_first_write);

        /* The old leader comes back as a follower and takes its share. */
        IT_ASSERT(it_node_start(cl, old) == 0, "restart of the old leader");
        IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "cluster not ready after the restart");
        IT_ASSERT(it_healthz(cl, old, &r), "healthz of the old leader");
        IT_ASSERT(r.status == 200 && strcmp(it_resp_str(&r, "role"), "follower") == 0,
                  "old leader after restart: %s", r.body);
        it_resp_close(&r);
        struct it_writer_stats mid;
        it_writer_stats(w, &mid);
        IT_ASSERT(it_writer_wait(w, mid.acked + 100, 30000), "writes stalled after the restart");
        snprintf(name, sizeof(name), PREFIX "-direct-%u-old", round);
        snprintf(key, sizeof(key), PREFIX "-dk-%u-old", round);
        IT_ASSERT(it_create_client(cl, old, name, key, 15000, &direct[2 * round + 1]) == 0,
                  "the restarted node does not take writes");
    }

    it_writer_stop(w);
    struct it_writer_stats st;
    it_writer_stats(w, &st);
    IT_ASSERT(st.unexpected == 0, "%zu unexpected answers, last: %s", st.unexpected,
              st.last_unexpected);
    size_t n;
    all = it_writer_acks(w, &n);
    IT_ASSERT(all != NULL, "out of memory");
    struct it_ack *more = realloc(all, (n + 2 * ROUNDS) * sizeof(*all));
    IT_ASSERT(more != NULL, "out of memory");
    all = more;
    memcpy(all + n, direct, sizeof(direct));
    n += 2 * ROUNDS;
    fprintf(stderr, "checking %zu acknowledged writes (%zu retries) on every node\n", n,
            st.retries);
    check_everywhere(all, n, it_writer_in_doubt(w));
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    it_cluster_free(cl);
    cl = NULL;
    free(all);
    all = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill_leader, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
