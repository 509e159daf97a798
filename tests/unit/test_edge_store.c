/* Edge state store: snapshot load and swap, atomic feed batches, readers
 * that keep the generation they started on, reopen, and every way a local
 * state is found unusable (corrupt, torn by an OS crash, half swapped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "common/bytes.h"
#include "common/err.h"
#include "edge/feed.h"
#include "edge/proto.h"
#include "edge/store.h"

#define MAP_MB 64

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tvmw-test-edge-store-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static void rm_env(const char *d)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/data.mdb", d);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", d);
    unlink(p);
    rmdir(d);
}

static int teardown(void **state)
{
    (void)state;
    char p[300];
    static const char *const subs[] = {"state", "state.new", "state.old"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, subs[i]);
        rm_env(p);
    }
    snprintf(p, sizeof(p), "%s/LOCK", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}

static void load(struct edge_store *s, uint64_t index, const char *client_name)
{
    struct edge_store_load *l;
    uint8_t id[8];
    assert_int_equal(edge_store_load_begin(s, &l), 0);
    tvmw_put_be64(id, 1);
    assert_int_equal(edge_store_load_put(l, EDGE_DB_CLIENTS, id, 8, (const uint8_t *)client_name,
                                         strlen(client_name)),
                     0);
    tvmw_put_be64(id, 7);
    assert_int_equal(
        edge_store_load_put(l, EDGE_DB_UNIQ, (const uint8_t *)"abonement/1/100", 15, id, 8), 0);
    assert_int_equal(edge_store_load_put(l, 200, id, 8, id, 8), TVMW_EMALFORMED);
    assert_int_equal(edge_store_load_commit(l, index), 0);
}

/* The client 1 record as seen by a new read, or "" if absent. */
static void read_client(struct edge_store *s, char *out, size_t len, uint64_t *applied)
{
    struct edge_read r;
    uint8_t id[8];
    const uint8_t *v;
    size_t vl;
    tvmw_put_be64(id, 1);
    assert_int_equal(edge_store_read_begin(s, &r), 0);
    out[0] = '\0';
    if (edge_store_get(&r, EDGE_DB_CLIENTS, id, 8, &v, &vl) == 0) {
        snprintf(out, len, "%.*s", (int)vl, (const char *)v);
    }
    *applied = r.applied_index;
    edge_store_read_end(s, &r);
}

static void test_load_apply_reopen(void **state)
{
    (void)state;
    struct edge_store *s, *s2;
    struct edge_read r;
    char name[64];
    uint64_t applied;
    uint8_t id[8];
    tvmw_put_be64(id, 1);

    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    assert_false(edge_store_has_state(s));
    assert_int_equal(edge_store_read_begin(s, &r), TVMW_ENOTFOUND);
    assert_int_equal(edge_store_apply(s, NULL, 0, 1), TVMW_ENOTFOUND);
    assert_int_equal(edge_store_open(dir, MAP_MB, &s2), TVMW_EBUSY); /* one edge per dir */

    load(s, 10, "alpha");
    assert_true(edge_store_has_state(s));
    assert_int_equal(edge_store_applied_index(s), 10);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "alpha");
    assert_int_equal(applied, 10);

    struct edge_change ch[3] = {
        {.index = 11,
         .db = EDGE_DB_CLIENTS,
         .key = id,
         .key_len = 8,
         .value = (const uint8_t *)"beta",
         .value_len = 4},
        {.index = 12,
         .db = EDGE_DB_UNIQ,
         .del = true,
         .key = (const uint8_t *)"abonement/1/100",
         .key_len = 15},
        {.index = 12,
         .db = EDGE_DB_UNIQ,
         .del = true,
         .key = (const uint8_t *)"absent",
         .key_len = 6},
    };
    assert_int_equal(edge_store_apply(s, ch, 3, 14), 0);
    assert_int_equal(edge_store_applied_index(s), 14);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "beta");
    assert_int_equal(applied, 14);

    /* All or nothing: a bad change after a good one leaves no trace. */
    struct edge_change bad[2] = {
        {.index = 15,
         .db = EDGE_DB_CLIENTS,
         .key = id,
         .key_len = 8,
         .value = (const uint8_t *)"gamma",
         .value_len = 5},
        {.index = 15, .db = 99, .key = id, .key_len = 8, .value = id, .value_len = 8},
    };
    assert_int_equal(edge_store_apply(s, bad, 2, 15), TVMW_EMALFORMED);
    assert_int_equal(edge_store_apply(s, NULL, 0, 13), TVMW_EMALFORMED); /* backwards */
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "beta");
    assert_int_equal(applied, 14);

    edge_store_close(s);
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    assert_true(edge_store_has_state(s));
    assert_int_equal(edge_store_applied_index(s), 14);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "beta");
    edge_store_close(s);
}

static void test_swap_keeps_readers(void **state)
{
    (void)state;
    struct edge_store *s;
    struct edge_read old;
    char name[64];
    uint64_t applied;
    uint8_t id[8];
    const uint8_t *v;
    size_t vl;
    tvmw_put_be64(id, 1);

    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    load(s, 10, "first");
    assert_int_equal(edge_store_read_begin(s, &old), 0);
    load(s, 20, "second"); /* swapped while `old` reads */
    assert_int_equal(edge_store_get(&old, EDGE_DB_CLIENTS, id, 8, &v, &vl), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "first", 5);
    assert_int_equal(old.applied_index, 10);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "second");
    assert_int_equal(applied, 20);
    edge_store_read_end(s, &old); /* closes the first environment */

    /* A load given up leaves the state as it was. */
    struct edge_store_load *l;
    assert_int_equal(edge_store_load_begin(s, &l), 0);
    assert_int_equal(edge_store_load_put(l, EDGE_DB_CLIENTS, id, 8, (const uint8_t *)"x", 1), 0);
    edge_store_load_abort(l);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "second");
    edge_store_close(s);

    char p[400];
    struct stat st;
    snprintf(p, sizeof(p), "%s/state.new", dir);
    assert_int_not_equal(stat(p, &st), 0); /* no leftovers */
    snprintf(p, sizeof(p), "%s/state.old", dir);
    assert_int_not_equal(stat(p, &st), 0);
}

static void test_unusable_state_is_no_state(void **state)
{
    (void)state;
    struct edge_store *s;
    char p[400], q[400];
    uint64_t applied;
    char name[64];

    /* Corrupt data file. */
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    load(s, 10, "one");
    edge_store_close(s);
    snprintf(p, sizeof(p), "%s/state/data.mdb", dir);
    FILE *f = fopen(p, "r+");
    assert_non_null(f);
    static char junk[16384];
    memset(junk, 0x5a, sizeof(junk));
    fwrite(junk, 1, sizeof(junk), f);
    fclose(f);
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    assert_false(edge_store_has_state(s));
    load(s, 11, "two"); /* and it can start again */
    edge_store_close(s);

    /* Left open across a reboot (another boot id, no clean mark). */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    snprintf(p, sizeof(p), "%s/state", dir);
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, p, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_val k = {.mv_size = 7, .mv_data = "boot_id"}, v = {.mv_size = 5, .mv_data = "other"};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    k = (MDB_val){.mv_size = 5, .mv_data = "clean"};
    v = (MDB_val){.mv_size = 1, .mv_data = "0"};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    assert_false(edge_store_has_state(s));
    load(s, 12, "three");
    edge_store_close(s);

    /* A crash between the two renames of the fallback swap: state.old is
     * put back. A half-loaded state.new is dropped. */
    snprintf(q, sizeof(q), "%s/state.old", dir);
    assert_int_equal(rename(p, q), 0);
    snprintf(q, sizeof(q), "%s/state.new", dir);
    assert_int_equal(mkdir(q, 0700), 0);
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    assert_true(edge_store_has_state(s));
    assert_int_equal(edge_store_applied_index(s), 12);
    read_client(s, name, sizeof(name), &applied);
    assert_string_equal(name, "three");
    struct stat st;
    assert_int_not_equal(stat(q, &st), 0);
    edge_store_close(s);

    /* A load interrupted before its commit leaves no applied_index: the
     * directory, had it been renamed, would not be adopted. */
    assert_int_equal(edge_store_open(dir, MAP_MB, &s), 0);
    edge_store_close(s);
}

static void test_uniq_key(void **state)
{
    (void)state;
    char key[EDGE_MAX_KEY_BYTES + 1];
    size_t n = edge_uniq_key("abonement", 12, "100200", key);
    assert_int_equal(n, strlen("abonement/12/100200"));
    assert_memory_equal(key, "abonement/12/100200", n);
    char *long_value = malloc(600);
    assert_non_null(long_value);
    memset(long_value, 'a', 599);
    long_value[599] = '\0';
    n = edge_uniq_key("abonement", 12, long_value, key);
    assert_int_equal(n, strlen("abonement/12/#") + 64);
    assert_memory_equal(key, "abonement/12/#", 14);
    free(long_value);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_apply_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swap_keeps_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_state_is_no_state, setup, teardown),
        cmocka_unit_test(test_uniq_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
