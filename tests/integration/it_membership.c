/*
 * it_membership: membership changes under load (Raft thesis §4: one
 * server at a time; §4.2.1 catch-up as a non-voter; §3.10 leadership
 * transfer). Node 4 joins as a standby, is promoted, takes the lead;
 * node 1 is removed and stopped; leadership moves to the best voter.
 * A writer runs throughout, and every acknowledged write must be on every
 * remaining node at the end.
 */
#include <stdlib.h>
#include <string.h>

#include "it_cmocka.h"

#define BASE_PORT 23600
#define PREFIX    "mem"

static struct it_cluster *cl;
static struct it_ack *acks; /* freed by teardown, also after a failure */

/* The member `id` of a GET /admin/v1/cluster answer, or NULL. */
static json_t *find_member(const struct it_resp *r, uint64_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(r->json, "members"), i, m)
    {
        if ((uint64_t)json_integer_value(json_object_get(m, "id")) == id) {
            return m;
        }
    }
    return NULL;
}

static bool member_has_role(const struct it_resp *r, uint64_t id, const char *role)
{
    json_t *m = find_member(r, id);
    const char *got = json_string_value(json_object_get(m, "role"));
    return got != NULL && strcmp(got, role) == 0;
}

/* Polls GET /admin/v1/cluster on node `on` until `id` has `role` ("absent":
 * not a member) and the member count is n_members. */
static bool wait_member(uint64_t on, uint64_t id, const char *role, size_t n_members,
                        unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    char last[600] = "";
    do {
        struct it_resp r;
        it_admin(cl, on, "GET", "/admin/v1/cluster", NULL, NULL, &r);
        bool ok = r.status == 200 &&
                  json_array_size(json_object_get(r.json, "members")) == n_members &&
                  (strcmp(role, "absent") == 0 ? find_member(&r, id) == NULL
                                               : member_has_role(&r, id, role));
        it_fmt(last, sizeof(last), "%ld %s", r.status, r.body);
        it_resp_close(&r);
        if (ok) {
            return true;
        }
        it_sleep_ms(100);
    } while (it_now_ms() - t0 < timeout_ms);
    fprintf(stderr, "node %llu never showed member %llu as %s with %zu members; last: %s\n",
            (unsigned long long)on, (unsigned long long)id, role, n_members, last);
    return false;
}

static void test_join_promote_transfer_remove(void **state)
{
    (void)state;
    struct it_opts o = {.n_nodes = 3, .base_port = BASE_PORT, .name = "membership"};
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");

    struct it_writer *w;
    IT_ASSERT(it_writer_start(cl, PREFIX, 3, &w) == 0, "writer did not start");
    IT_ASSERT(it_writer_wait(w, 50, 20000), "no writes at start");

    /* Node 4 starts empty with --join and waits to be added. */
    IT_ASSERT(it_node_start_join(cl, 4) == 0, "start of node 4");
    struct it_resp r;
    char body[256];
    snprintf(body, sizeof(body), "{\"id\":4,\"raft_address\":\"%s\",\"http_address\":\"%s\"}",
             cl->nodes[4].raft, cl->nodes[4].http);
    uint64_t leader = it_wait_leader(cl, 10000);
    uint64_t via = leader == 2 ? 3 : 2; /* through a follower: forwarded */
    it_admin(cl, via, "POST", "/admin/v1/cluster/members", body, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    json_t *m = json_object_get(r.json, "member");
    IT_ASSERT(json_integer_value(json_object_get(m, "id")) == 4 &&
                  strcmp(json_string_value(json_object_get(m, "role")), "standby") == 0 &&
                  json_is_false(json_object_get(m, "voting")),
              "add answered %s", r.body);
    it_resp_close(&r);

    /* Adding it again is a conflict; unknown members are 404. */
    it_admin(cl, 1, "POST", "/admin/v1/cluster/members", body, NULL, &r);
    IT_ASSERT_ERROR(&r, 409, "conflict");
    it_resp_close(&r);
    it_admin(cl, 1, "POST", "/admin/v1/cluster/members/99/promote", NULL, NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);
    it_admin(cl, 1, "DELETE", "/admin/v1/cluster/members/99", NULL, NULL, &r);
    IT_ASSERT_ERROR(&r, 404, "not_found");
    it_resp_close(&r);

    for (uint64_t id = 1; id <= 3; id++) {
        IT_ASSERT(wait_member(id, 4, "standby", 4, 10000), "node %llu does not see standby 4",
                  (unsigned long long)id);
    }
    /* The standby learns the leader and serves (forwarding) requests. */
    it_node_set_serving(cl, 4, true);
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "node 4 never became ready as a standby");

    it_admin(cl, 1, "POST", "/admin/v1/cluster/members/4/promote", NULL, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    m = json_object_get(r.json, "member");
    IT_ASSERT(strcmp(json_string_value(json_object_get(m, "role")), "voter") == 0 &&
                  json_is_true(json_object_get(m, "voting")),
              "promote answered %s", r.body);
    it_resp_close(&r);
    for (uint64_t id = 1; id <= 4; id++) {
        IT_ASSERT(wait_member(id, 4, "voter", 4, 10000), "node %llu does not see voter 4",
                  (unsigned long long)id);
    }
    struct it_writer_stats st;
    it_writer_stats(w, &st);
    IT_ASSERT(it_writer_wait(w, st.acked + 50, 20000), "writes stalled after the promotion");

    /* Leadership to node 4, asked through node 1. */
    it_admin(cl, 1, "POST", "/admin/v1/cluster/transfer", "{\"id\":4}", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(it_resp_int(&r, "leader_id") == 4, "transfer answered %s", r.body);
    it_resp_close(&r);
    IT_ASSERT(it_wait_leader(cl, 10000) == 4, "node 4 does not lead after the transfer");
    IT_ASSERT(it_wait_all_ready(cl, 10000) == 4, "the cluster does not follow node 4");
    it_writer_stats(w, &st);
    IT_ASSERT(it_writer_wait(w, st.acked + 50, 20000), "writes stalled after the transfer");

    /* Remove node 1 (through node 1 itself, a follower now), then stop it. */
    it_admin(cl, 1, "DELETE", "/admin/v1/cluster/members/1", NULL, NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    IT_ASSERT(it_resp_int(&r, "removed") == 1, "remove answered %s", r.body);
    it_resp_close(&r);
    it_node_set_serving(cl, 1, false);
    for (uint64_t id = 2; id <= 4; id++) {
        IT_ASSERT(wait_member(id, 1, "absent", 3, 10000), "node %llu still lists member 1",
                  (unsigned long long)id);
    }
    int rc = it_node_stop(cl, 1, 10000);
    IT_ASSERT(rc == 0, "removed node 1 did not stop cleanly (status %d)", rc);
    it_writer_stats(w, &st);
    IT_ASSERT(it_writer_wait(w, st.acked + 50, 20000), "writes stalled after the removal");

    /* Transfer to "the best voter": someone other than node 4. */
    it_admin(cl, 2, "POST", "/admin/v1/cluster/transfer", "{}", NULL, &r);
    IT_ASSERT_STATUS(&r, 200);
    long long to = it_resp_int(&r, "leader_id");
    IT_ASSERT(to == 2 || to == 3, "transfer {} answered %s", r.body);
    it_resp_close(&r);
    IT_ASSERT(it_wait_all_ready(cl, 10000) == (uint64_t)to, "node %lld does not lead", to);
    it_writer_stats(w, &st);
    IT_ASSERT(it_writer_wait(w, st.acked + 50, 20000), "writes stalled after the second transfer");

    it_writer_stop(w);
    it_writer_stats(w, &st);
    IT_ASSERT(st.unexpected == 0, "%zu unexpected answers, last: %s", st.unexpected,
              st.last_unexpected);
    size_t n;
    acks = it_writer_acks(w, &n);
    IT_ASSERT(acks != NULL && n > 0, "no acknowledged writes");
    IT_ASSERT(it_wait_converged(cl, 20000), "remaining nodes did not converge");
    fprintf(stderr, "checking %zu acknowledged writes (%zu retries) on nodes 2, 3, 4\n", n,
            st.retries);
    for (uint64_t id = 2; id <= 4; id++) {
        long p = it_check_acks(cl, id, true, acks, n, PREFIX, it_writer_in_doubt(w));
        IT_ASSERT(p == 0, "node %llu (stale): %ld problems", (unsigned long long)id, p);
        p = it_check_acks(cl, id, false, acks, n, PREFIX, it_writer_in_doubt(w));
        IT_ASSERT(p == 0, "node %llu (linearizable): %ld problems", (unsigned long long)id, p);
    }

    /* Final view from each remaining node: voters 2, 3, 4, one leader. */
    for (uint64_t id = 2; id <= 4; id++) {
        it_admin(cl, id, "GET", "/admin/v1/cluster", NULL, NULL, &r);
        IT_ASSERT_STATUS(&r, 200);
        json_t *members = json_object_get(r.json, "members");
        IT_ASSERT(json_array_size(members) == 3 && find_member(&r, 1) == NULL, "node %llu: %s",
                  (unsigned long long)id, r.body);
        for (uint64_t k = 2; k <= 4; k++) {
            json_t *mk = find_member(&r, k);
            IT_ASSERT(member_has_role(&r, k, "voter") &&
                          strcmp(json_string_value(json_object_get(mk, "http_address")),
                                 cl->nodes[k].http) == 0 &&
                          strcmp(json_string_value(json_object_get(mk, "raft_address")),
                                 cl->nodes[k].raft) == 0 &&
                          json_is_true(json_object_get(mk, "leader")) == ((long long)k == to),
                      "node %llu, member %llu: %s", (unsigned long long)id, (unsigned long long)k,
                      r.body);
        }
        IT_ASSERT(it_resp_int(&r, "leader_id") == to, "node %llu: %s", (unsigned long long)id,
                  r.body);
        it_resp_close(&r);
    }
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
        cmocka_unit_test_teardown(test_join_promote_transfer_remove, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
