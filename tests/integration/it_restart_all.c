/*
 * it_restart_all: durability of the whole cluster. 200 clients are written,
 * every node is stopped with SIGTERM (clean shutdown, exit 0) and started
 * again; after kill -9 of every node at once, again. Each time a leader
 * must be elected and every acknowledged client read back, unchanged,
 * from each node; new clients must get new ids.
 */
#include <stdlib.h>
#include <string.h>

#include "it_cmocka.h"

#define BASE_PORT 23800
#define PREFIX    "ra"
#define N_CLIENTS 200

static struct it_cluster *cl;
static struct it_ack *acks; /* freed by teardown, also after a failure */

static void check_all(size_t n, const char *when)
{
    for (uint64_t id = 1; id <= 3; id++) {
        long p = it_check_acks(cl, id, false, acks, n, PREFIX, NULL);
        IT_ASSERT(p == 0, "%s, node %llu (linearizable): %ld problems with %zu clients", when,
                  (unsigned long long)id, p, n);
    }
    IT_ASSERT(it_wait_converged(cl, 20000), "%s: nodes did not converge", when);
    for (uint64_t id = 1; id <= 3; id++) {
        long p = it_check_acks(cl, id, true, acks, n, PREFIX, NULL);
        IT_ASSERT(p == 0, "%s, node %llu (stale): %ld problems", when, (unsigned long long)id, p);
    }
}

/* One more client after a restart: it must get an id above every earlier
 * one (ids are never reused). */
static void create_after(size_t *n, const char *tag)
{
    uint64_t max_id = 0;
    for (size_t i = 0; i < *n; i++) {
        max_id = acks[i].id > max_id ? acks[i].id : max_id;
    }
    char name[64];
    snprintf(name, sizeof(name), PREFIX "-%s", tag);
    IT_ASSERT(it_create_client(cl, 0, name, name, 15000, &acks[*n]) == 0, "write after %s", tag);
    IT_ASSERT(acks[*n].id > max_id, "new client %s got id %llu, not above %llu", name,
              (unsigned long long)acks[*n].id, (unsigned long long)max_id);
    (*n)++;
}

static void test_restart_all(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = 3, .base_port = BASE_PORT, .name = "restart_all"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");

    struct it_writer *w;
    IT_ASSERT(it_writer_start(cl, PREFIX, 4, &w) == 0, "writer did not start");
    bool ok = it_writer_wait(w, N_CLIENTS, 30000);
    it_writer_stop(w);
    IT_ASSERT(ok, "could not write %d clients", N_CLIENTS);
    struct it_writer_stats st;
    it_writer_stats(w, &st);
    IT_ASSERT(st.unexpected == 0 && it_writer_in_doubt(w)[0] == NULL,
              "%zu unexpected answers (last: %s) or writes in doubt", st.unexpected,
              st.last_unexpected);
    size_t n;
    acks = it_writer_acks(w, &n);
    it_writer_free(w);
    IT_ASSERT(acks != NULL, "out of memory");
    struct it_ack *more = realloc(acks, (n + 2) * sizeof(*acks));
    IT_ASSERT(more != NULL, "out of memory");
    acks = more;
    check_all(n, "before the restarts");

    /* 1. SIGTERM everyone: each must exit 0. */
    for (uint64_t id = 1; id <= 3; id++) {
        int rc = it_node_stop(cl, id, 10000);
        IT_ASSERT(rc == 0, "node %llu: SIGTERM gave status %d", (unsigned long long)id, rc);
    }
    uint64_t t0 = it_now_ms();
    for (uint64_t id = 1; id <= 3; id++) {
        IT_ASSERT(it_node_start(cl, id) == 0, "restart of node %llu", (unsigned long long)id);
    }
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader after the clean restart");
    fprintf(stderr, "RESTART TIMING: cluster ready %llu ms after a clean restart of all nodes\n",
            (unsigned long long)(it_now_ms() - t0));
    check_all(n, "after SIGTERM and restart");
    create_after(&n, "after-clean-restart");

    /* 2. kill -9 everyone at once. */
    it_cluster_kill_all(cl);
    t0 = it_now_ms();
    for (uint64_t id = 1; id <= 3; id++) {
        IT_ASSERT(it_node_start(cl, id) == 0, "restart of node %llu", (unsigned long long)id);
    }
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader after kill -9 of all nodes");
    fprintf(stderr, "RESTART TIMING: cluster ready %llu ms after kill -9 of all nodes\n",
            (unsigned long long)(it_now_ms() - t0));
    check_all(n, "after kill -9 and restart");
    create_after(&n, "after-kill-restart");
    check_all(n, "at the end");
    it_cluster_pass(cl);
    it_test_ok();
}

static int teardown(void **state)
{
    (void)state;
    it_cluster_free(cl);
    cl = NULL;
    free(acks);
    acks = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_restart_all, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
