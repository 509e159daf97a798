/* EPG in the state machine (controlplane/epg.h): source validation and
 * tenancy, programme batches replacing a channel's range (ids kept,
 * unchanged programmes not rewritten, nothing for edges then), refusal
 * of malformed batches, expiry, and the projection to edge db 16. */
#include "tests/unit/billing_testlib.h"

#include <openssl/evp.h>

#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/changelog.h"
#include "controlplane/epg.h"

#define DAY 86400
#define T0  1768478400 /* 2026-01-15 12:00 UTC, the env's clock */

static json_t *apply(struct bt_env *e, uint16_t type, json_t *payload, unsigned want_status)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    struct cp_result *r = NULL;
    bt_apply(e, type, text, &r);
    free(text);
    assert_non_null(r);
    if (r->status != want_status) {
        fail_msg("status %u, wanted %u: %s", r->status, want_status, r->body);
    }
    json_t *o = json_loadb(r->body, r->len, 0, NULL);
    cp_result_free(r);
    assert_non_null(o);
    return o;
}

static uint64_t make_channel(struct bt_env *e, uint64_t client, const char *epg_id)
{
    json_t *o = apply(e, CP_CMD_CATALOG,
                      json_pack("{s:I, s:s, s:s, s:I, s:{s:s, s:s}}", "client_id",
                                (json_int_t)client, "kind", "channels", "op", "put", "id",
                                (json_int_t)0, "fields", "name", "Ch", "epg_channel_id", epg_id),
                      201);
    uint64_t id =
        (uint64_t)json_integer_value(json_object_get(json_object_get(o, "channel"), "id"));
    json_decref(o);
    return id;
}

/* [begin, end, name, "", "", "", "", "", ""] */
static json_t *prog(int64_t b, int64_t en, const char *name)
{
    return json_pack("[I, I, s, s, s, s, s, s, s]", (json_int_t)b, (json_int_t)en, name, "sub",
                     "desc", "cat", "", "16+", "");
}

static json_t *batch(uint64_t client, uint64_t ch, int64_t from, int64_t to, json_t *progs)
{
    return json_pack("{s:s, s:I, s:I, s:[{s:I, s:I, s:I, s:o}]}", "op", "programs", "client_id",
                     (json_int_t)client, "source_id", (json_int_t)1, "channels", "channel_id",
                     (json_int_t)ch, "from", (json_int_t)from, "to", (json_int_t)to, "programs",
                     progs);
}

static json_t *list(struct bt_env *e, uint64_t client, uint64_t ch)
{
    json_t *out = NULL;
    assert_int_equal(cp_epg_programs_list(e->f, client, ch, 0, INT64_MAX, 1000, &out), 0);
    return out;
}

static json_int_t count(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* Changes for edge db 16 after index `after`. */
static size_t db16_changes(struct bt_env *e, uint64_t after, size_t *dels)
{
    json_t *f = NULL;
    bool gone;
    assert_int_equal(cp_feed_read(e->f, after, 100000, &f, &gone), 0);
    size_t i, n = 0;
    json_t *c;
    *dels = 0;
    json_array_foreach(json_object_get(f, "changes"), i, c)
    {
        if (json_integer_value(json_object_get(c, "db")) == 16) {
            n++;
            if (strcmp(json_string_value(json_object_get(c, "op")), "del") == 0) {
                (*dels)++;
            } else {
                /* The key is be64 channel, be64 begin: 16 bytes, 24 in base64. */
                assert_int_equal(strlen(json_string_value(json_object_get(c, "key"))), 24);
            }
        }
    }
    json_decref(f);
    return n;
}

/* cp_epg_source_check on fields (taken); true when they are fine. */
static bool check(json_t *fields, bool create)
{
    bool ok = cp_epg_source_check(fields, create) == NULL;
    json_decref(fields);
    return ok;
}

static void test_sources(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t ch = make_channel(e, 1, "one.tv");
    uint64_t other = make_channel(e, 2, "two.tv");
    json_t *o =
        apply(e, CP_CMD_EPG,
              json_pack("{s:s, s:I, s:I, s:{s:s, s:s, s:I, s:[{s:s, s:I, s:I}]}}", "op",
                        "source_put", "client_id", (json_int_t)1, "id", (json_int_t)0, "fields",
                        "name", "Provider", "url", "https://epg.example.net/a.xml.gz",
                        "time_correction_s", (json_int_t)-3600, "channel_map", "xmltv_id", "x.1",
                        "channel_id", (json_int_t)ch, "time_correction_s", (json_int_t)60),
              201);
    json_t *src = json_object_get(o, "epg_source");
    assert_int_equal(count(src, "id"), 1);
    assert_int_equal(count(src, "interval_s"), 21600); /* the default */
    assert_string_equal(json_string_value(json_object_get(src, "last_status")), "");
    json_decref(o);
    /* Another client's channel in the map, bad fields, a missing name. */
    json_decref(
        apply(e, CP_CMD_EPG,
              json_pack("{s:s, s:I, s:I, s:{s:s, s:[{s:s, s:I}]}}", "op", "source_put", "client_id",
                        (json_int_t)1, "id", (json_int_t)0, "fields", "name", "X", "channel_map",
                        "xmltv_id", "x", "channel_id", (json_int_t)other),
              400));
    assert_false(check(json_pack("{s:s, s:s}", "name", "x", "url", "ftp://a"), true));
    assert_false(check(json_pack("{s:I}", "interval_s", (json_int_t)-1), false));
    assert_false(check(json_pack("{s:s}", "url", ""), true)); /* no name */
    assert_false(check(json_pack("{s:s, s:i}", "name", "x", "colour", 1), true));
    assert_false(
        check(json_pack("{s:s, s:[{s:s}]}", "name", "x", "channel_map", "xmltv_id", "a"), true));
    assert_true(check(json_pack("{s:s, s:s}", "name", "x", "url", ""), true));
    /* Tenancy: client 2 sees nothing of client 1. */
    json_t *v = NULL;
    assert_int_equal(cp_epg_source_get(e->f, 2, 1, &v), TVMW_ENOTFOUND);
    json_decref(apply(e, CP_CMD_EPG,
                      json_pack("{s:s, s:I, s:I}", "op", "source_delete", "client_id",
                                (json_int_t)2, "id", (json_int_t)1),
                      404));
    assert_int_equal(cp_epg_source_list(e->f, 2, &v), 0);
    assert_int_equal(json_array_size(v), 0);
    json_decref(v);
    /* The outcome of an import lands in the source. */
    o = apply(e, CP_CMD_EPG,
              json_pack("{s:s, s:I, s:I, s:{s:s, s:s, s:I}, s:s}", "op", "import_status",
                        "client_id", (json_int_t)1, "source_id", (json_int_t)1, "report", "status",
                        "ok", "message", "", "programmes", (json_int_t)5, "etag", "\"abc\""),
              200);
    src = json_object_get(o, "epg_source");
    assert_string_equal(json_string_value(json_object_get(src, "last_status")), "ok");
    assert_string_equal(json_string_value(json_object_get(src, "etag")), "\"abc\"");
    assert_int_equal(count(src, "last_run_ms"), (json_int_t)e->time_ms);
    json_decref(o);
    bt_free(e);
}

static void test_replace_range(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t ch = make_channel(e, 1, "one.tv");
    uint64_t start = e->index;
    json_t *o = apply(
        e, CP_CMD_EPG,
        batch(1, ch, T0, T0 + 4 * 3600,
              json_pack("[o, o, o, o]", prog(T0, T0 + 3600, "A"), prog(T0 + 3600, T0 + 7200, "B"),
                        prog(T0 + 7200, T0 + 10800, "C"), prog(T0 + 10800, T0 + 14400, "D"))),
        200);
    assert_int_equal(count(o, "inserted"), 4);
    json_decref(o);
    size_t dels;
    assert_int_equal(db16_changes(e, start, &dels), 4);
    json_t *l = list(e, 1, ch);
    assert_int_equal(json_array_size(l), 4);
    json_int_t id_b = count(json_array_get(l, 1), "id");
    json_int_t id_d = count(json_array_get(l, 3), "id");
    json_t *p0 = json_array_get(l, 0);
    static const char *const keys[] = {"id",       "client_id", "channel_id", "begin_time",
                                       "end_time", "name",      "short_name", "description",
                                       "category", "preview",   "rating",     "meta"};
    assert_int_equal(json_object_size(p0), 12);
    for (size_t i = 0; i < 12; i++) {
        assert_non_null(json_object_get(p0, keys[i]));
    }
    assert_int_equal(count(p0, "channel_id"), (json_int_t)ch);
    json_decref(l);

    /* Again, with B unchanged, C renamed, A gone and E new: B keeps its id
     * and is not rewritten; C keeps its id; D (outside the range) stays. */
    start = e->index;
    o = apply(e, CP_CMD_EPG,
              batch(1, ch, T0, T0 + 3 * 3600,
                    json_pack("[o, o, o]", prog(T0 + 3600, T0 + 7200, "B"),
                              prog(T0 + 7200, T0 + 9000, "C2"), prog(T0 + 9000, T0 + 10800, "E"))),
              200);
    assert_int_equal(count(o, "unchanged"), 1);
    assert_int_equal(count(o, "updated"), 1);
    assert_int_equal(count(o, "inserted"), 1);
    assert_int_equal(count(o, "deleted"), 1);
    json_decref(o);
    assert_int_equal(db16_changes(e, start, &dels), 3); /* del A, put C2, put E */
    assert_int_equal(dels, 1);
    l = list(e, 1, ch);
    assert_int_equal(json_array_size(l), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "name")), "B");
    assert_int_equal(count(json_array_get(l, 0), "id"), id_b);
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 1), "name")), "C2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 2), "name")), "E");
    assert_string_equal(json_string_value(json_object_get(json_array_get(l, 3), "name")), "D");
    assert_int_equal(count(json_array_get(l, 3), "id"), id_d);
    json_decref(l);

    /* An empty range deletes; another client's channel is skipped. */
    uint64_t other = make_channel(e, 2, "x");
    o = apply(e, CP_CMD_EPG, batch(1, other, T0, T0 + 10, json_array()), 200);
    assert_int_equal(json_array_size(json_object_get(o, "missing_channels")), 1);
    json_decref(o);
    json_t *v = NULL;
    assert_int_equal(cp_epg_programs_list(e->f, 1, other, 0, INT64_MAX, 10, &v), TVMW_ENOTFOUND);
    bt_free(e);
}

static void test_bad_batches(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t ch = make_channel(e, 1, "one.tv");
    json_t *bad[] = {
        /* out of order */
        batch(1, ch, T0, T0 + 7200,
              json_pack("[o, o]", prog(T0 + 3600, T0 + 7200, "B"), prog(T0, T0 + 3600, "A"))),
        /* outside the range */
        batch(1, ch, T0, T0 + 60, json_pack("[o]", prog(T0 + 100, T0 + 200, "A"))),
        /* end before begin */
        batch(1, ch, T0, T0 + 7200, json_pack("[o]", prog(T0 + 100, T0 + 50, "A"))),
        /* longer than 7 days */
        batch(1, ch, T0, T0 + 8 * DAY, json_pack("[o]", prog(T0, T0 + 8 * DAY, "A"))),
        /* no name */
        batch(1, ch, T0, T0 + 7200, json_pack("[o]", prog(T0, T0 + 60, ""))),
        /* wrong shape */
        batch(1, ch, T0, T0 + 7200, json_pack("[[I]]", (json_int_t)T0)),
        /* from after to */
        batch(1, ch, T0 + 10, T0, json_array()),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_decref(apply(e, CP_CMD_EPG, bad[i], 400));
    }
    json_t *l = list(e, 1, ch);
    assert_int_equal(json_array_size(l), 0); /* nothing of any of them */
    json_decref(l);
    json_decref(apply(e, CP_CMD_EPG, json_pack("{s:s, s:I}", "op", "nope", "client_id", 1), 400));
    json_decref(apply(e, CP_CMD_EPG,
                      json_pack("{s:s, s:I, s:o}", "op", "programs", "client_id", (json_int_t)9,
                                "channels", json_array()),
                      404));
    bt_free(e);
}

static void test_expire(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t a = make_channel(e, 1, "a"), b = make_channel(e, 1, "b");
    json_t *progs_a = json_array(), *progs_b = json_array();
    for (int d = -5; d < 3; d++) {
        json_array_append_new(progs_a, prog(T0 + d * DAY, T0 + d * DAY + 3600, "A"));
        json_array_append_new(progs_b, prog(T0 + d * DAY, T0 + d * DAY + 3600, "B"));
    }
    json_decref(apply(e, CP_CMD_EPG, batch(1, a, T0 - 5 * DAY, T0 + 3 * DAY, progs_a), 200));
    json_decref(apply(e, CP_CMD_EPG, batch(1, b, T0 - 5 * DAY, T0 + 3 * DAY, progs_b), 200));
    bool pending = false;
    assert_int_equal(cp_epg_expire_pending(e->f, T0 - 6 * DAY, &pending), 0);
    assert_false(pending);
    assert_int_equal(cp_epg_expire_pending(e->f, T0 - 2 * DAY, &pending), 0);
    assert_true(pending);
    /* Older than 2 days: 3 per channel (-5, -4, -3), in steps of 2. */
    uint64_t from = 0;
    json_int_t total = 0;
    int rounds = 0;
    do {
        json_t *o = apply(e, CP_CMD_EPG,
                          json_pack("{s:s, s:I, s:I, s:I}", "op", "expire", "before",
                                    (json_int_t)(T0 - 2 * DAY), "from_channel", (json_int_t)from,
                                    "limit", (json_int_t)2),
                          200);
        total += count(o, "deleted");
        from = (uint64_t)count(o, "next_channel");
        json_decref(o);
        rounds++;
    } while (from != 0 && rounds < 10);
    assert_int_equal(total, 6);
    json_t *l = list(e, 1, a);
    assert_int_equal(json_array_size(l), 5);
    assert_int_equal(count(json_array_get(l, 0), "begin_time"), T0 - 2 * DAY);
    json_decref(l);
    assert_int_equal(cp_epg_expire_pending(e->f, T0 - 2 * DAY, &pending), 0);
    assert_false(pending);
    /* A deleted channel's programmes all go, future ones too. */
    json_decref(apply(e, CP_CMD_CATALOG,
                      json_pack("{s:I, s:s, s:s, s:I}", "client_id", (json_int_t)1, "kind",
                                "channels", "op", "delete", "id", (json_int_t)b),
                      200));
    assert_int_equal(cp_epg_expire_pending(e->f, T0 - 2 * DAY, &pending), 0);
    assert_true(pending);
    json_t *o = apply(e, CP_CMD_EPG,
                      json_pack("{s:s, s:I, s:I, s:I}", "op", "expire", "before",
                                (json_int_t)(T0 - 2 * DAY), "from_channel", (json_int_t)0, "limit",
                                (json_int_t)1000),
                      200);
    assert_int_equal(count(o, "deleted"), 5);
    assert_int_equal(count(o, "next_channel"), 0);
    json_decref(o);
    bt_free(e);
}

/* Records are written without jansson but must read back as JSON and be
 * byte for byte what json_dumps(JSON_COMPACT) makes of them. */
static void test_record_text(void **state)
{
    (void)state;
    struct bt_env *e = bt_new();
    uint64_t ch = make_channel(e, 1, "one.tv");
    json_t *p = json_pack("[I, I, s, s, s, s, s, s, s]", (json_int_t)T0, (json_int_t)T0 + 60,
                          "Quote \" back\\slash / é 日本 \xF0\x9F\x93\xBA", "tab\tnl\ncr\r",
                          "ctl \x01\x1f\x7f bs\b ff\f", "", "https://x/y?a=1&b=2", "18+",
                          "{\"source_id\":1}");
    json_decref(apply(e, CP_CMD_EPG, batch(1, ch, T0, T0 + 60, json_pack("[o]", p)), 200));
    MDB_txn *txn;
    assert_int_equal(cp_fsm_read_begin(e->f, &txn), 0);
    uint8_t key[CP_EPG_KEY_SIZE];
    cp_epg_program_key(key, ch, T0);
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
    assert_int_equal(mdb_get(txn, cp_fsm_dbs(e->f)->programs, &k, &v), 0);
    json_t *o = json_loadb(v.mv_data, v.mv_size, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(o);
    char *again = json_dumps(o, JSON_COMPACT);
    assert_int_equal(strlen(again), v.mv_size);
    assert_memory_equal(again, v.mv_data, v.mv_size);
    assert_string_equal(json_string_value(json_object_get(o, "description")),
                        "ctl \x01\x1f\x7f bs\b ff\f");
    free(again);
    json_decref(o);
    mdb_txn_abort(txn);
    /* The same again: unchanged, nothing rewritten. */
    p = json_pack("[I, I, s, s, s, s, s, s, s]", (json_int_t)T0, (json_int_t)T0 + 60,
                  "Quote \" back\\slash / é 日本 \xF0\x9F\x93\xBA", "tab\tnl\ncr\r",
                  "ctl \x01\x1f\x7f bs\b ff\f", "", "https://x/y?a=1&b=2", "18+",
                  "{\"source_id\":1}");
    o = apply(e, CP_CMD_EPG, batch(1, ch, T0, T0 + 60, json_pack("[o]", p)), 200);
    assert_int_equal(count(o, "unchanged"), 1);
    json_decref(o);
    bt_free(e);
}

/* The same commands on two fresh states give the same bytes (ids from
 * the counter, nothing from the applying node). */
static void test_deterministic(void **state)
{
    (void)state;
    void *snap[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        struct bt_env *e = bt_new();
        uint64_t ch = make_channel(e, 1, "one.tv");
        json_decref(apply(
            e, CP_CMD_EPG,
            batch(1, ch, T0, T0 + 7200,
                  json_pack("[o, o]", prog(T0, T0 + 3600, "A"), prog(T0 + 3600, T0 + 7200, "B"))),
            200));
        json_decref(apply(e, CP_CMD_EPG,
                          batch(1, ch, T0, T0 + 7200, json_pack("[o]", prog(T0, T0 + 7200, "AB"))),
                          200));
        assert_int_equal(cp_fsm_snapshot(e->f, &snap[k], &len[k]), 0);
        bt_free(e);
    }
    assert_int_equal(len[0], len[1]);
    /* The snapshot carries no wall clock: identical bytes. */
    assert_memory_equal(snap[0], snap[1], len[0]);
    free(snap[0]);
    free(snap[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources),       cmocka_unit_test(test_replace_range),
        cmocka_unit_test(test_bad_batches),   cmocka_unit_test(test_expire),
        cmocka_unit_test(test_deterministic), cmocka_unit_test(test_record_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
