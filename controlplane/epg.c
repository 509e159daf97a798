/*
 * EPG sources and programmes in the state machine (epg.h). Everything
 * here runs inside apply (deterministic: time and ids from the command
 * and the counters) or in read-only transactions.
 */
#include "controlplane/epg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/bytes.h"
#include "common/err.h"
#include "controlplane/billing.h"
#include "controlplane/changelog.h"

#define COUNTER_SOURCE  "next:epg_source"
#define COUNTER_PROGRAM "next:program"

void cp_epg_program_key(uint8_t out[CP_EPG_KEY_SIZE], uint64_t channel_id, uint64_t begin_s)
{
    tvmw_put_be64(out, channel_id);
    tvmw_put_be64(out + 8, begin_s);
}

static int err_from_mdb(int rc)
{
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? TVMW_ENOTFOUND : TVMW_ESTORE;
}

/* ---- sources ------------------------------------------------------------------- */

static bool valid_utf8_len(json_t *v, size_t max_bytes)
{
    return json_is_string(v) && json_string_length(v) <= max_bytes &&
           bl_utf8_chars(json_string_value(v)) != (size_t)-1;
}

static bool int_in(json_t *v, long long min, long long max)
{
    return json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max;
}

static const char *check_map(json_t *map)
{
    static char msg[160];
    size_t i;
    json_t *e;
    if (!json_is_array(map) || json_array_size(map) > CP_EPG_MAX_MAP) {
        snprintf(msg, sizeof(msg), "\"channel_map\" must be an array of at most %d entries",
                 CP_EPG_MAX_MAP);
        return msg;
    }
    json_array_foreach(map, i, e)
    {
        const char *key;
        json_t *v;
        if (!json_is_object(e)) {
            goto bad;
        }
        json_object_foreach(e, key, v)
        {
            if (strcmp(key, "xmltv_id") == 0) {
                if (!valid_utf8_len(v, CP_EPG_SHORT_BYTES) || json_string_length(v) == 0) {
                    goto bad;
                }
            } else if (strcmp(key, "channel_id") == 0) {
                if (!int_in(v, 1, INT64_MAX)) {
                    goto bad;
                }
            } else if (strcmp(key, "time_correction_s") == 0) {
                if (!int_in(v, -CP_EPG_MAX_CORRECTION_S, CP_EPG_MAX_CORRECTION_S)) {
                    goto bad;
                }
            } else {
                goto bad;
            }
        }
        if (json_object_get(e, "xmltv_id") == NULL || json_object_get(e, "channel_id") == NULL) {
            goto bad;
        }
    }
    return NULL;
bad:
    snprintf(msg, sizeof(msg),
             "channel_map[%zu] must be {\"xmltv_id\": text of 1..%d bytes, \"channel_id\": id, "
             "\"time_correction_s\": optional seconds within ±%d}",
             i, CP_EPG_SHORT_BYTES, CP_EPG_MAX_CORRECTION_S);
    return msg;
}

const char *cp_epg_source_check(json_t *fields, bool create)
{
    static char msg[160];
    const char *key;
    json_t *v;
    if (!json_is_object(fields)) {
        return "body must be a JSON object";
    }
    json_object_foreach(fields, key, v)
    {
        if (strcmp(key, "name") == 0) {
            if (!valid_utf8_len(v, CP_EPG_SHORT_BYTES) || json_string_length(v) == 0) {
                return "\"name\" must be text of 1..255 bytes";
            }
        } else if (strcmp(key, "url") == 0) {
            const char *u = json_string_value(v);
            if (!valid_utf8_len(v, CP_EPG_URL_BYTES) ||
                (u[0] != '\0' && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)) {
                return "\"url\" must be \"\" (uploads only) or an http:// or https:// URL of at "
                       "most 2048 bytes";
            }
        } else if (strcmp(key, "interval_s") == 0) {
            if (!int_in(v, 0, 30 * 86400)) {
                return "\"interval_s\" must be 0 (no scheduled imports) to 2592000 seconds";
            }
        } else if (strcmp(key, "time_correction_s") == 0) {
            if (!int_in(v, -CP_EPG_MAX_CORRECTION_S, CP_EPG_MAX_CORRECTION_S)) {
                snprintf(msg, sizeof(msg), "\"time_correction_s\" must be within ±%d seconds",
                         CP_EPG_MAX_CORRECTION_S);
                return msg;
            }
        } else if (strcmp(key, "channel_map") == 0) {
            const char *bad = check_map(v);
            if (bad != NULL) {
                return bad;
            }
        } else if (strcmp(key, "use_epg_channel_id") == 0 || strcmp(key, "enabled") == 0) {
            if (!int_in(v, 0, 1)) {
                snprintf(msg, sizeof(msg), "\"%s\" must be 0 or 1", key);
                return msg;
            }
        } else {
            snprintf(msg, sizeof(msg), "unknown field \"%.60s\"", key);
            return msg;
        }
    }
    if (create && json_object_get(fields, "name") == NULL) {
        return "\"name\" is required";
    }
    return NULL;
}

/* The client's channel `id`: 1 if it is, 0 if not, or a store error. */
static int channel_of(MDB_txn *txn, const struct cp_dbs *db, uint64_t client, uint64_t id)
{
    json_t *o;
    int rv = cp_record_get(txn, db->channels, id, &o);
    if (rv != 0) {
        return rv == TVMW_ENOTFOUND ? 0 : rv;
    }
    int mine = (uint64_t)json_integer_value(json_object_get(o, "client_id")) == client;
    json_decref(o);
    return mine;
}

static int source_get(MDB_txn *txn, const struct cp_dbs *db, uint64_t client, uint64_t id,
                      json_t **out)
{
    int rv = cp_record_get(txn, db->epg_sources, id, out);
    if (rv == 0 && (uint64_t)json_integer_value(json_object_get(*out, "client_id")) != client) {
        json_decref(*out);
        rv = TVMW_ENOTFOUND;
    }
    return rv;
}

static int source_put(struct cp_apply *a, uint64_t client, uint64_t id, json_t *fields,
                      struct cp_result **res)
{
    json_t *obj = NULL;
    bool created = id == 0;
    const char *bad = cp_epg_source_check(fields, created);
    if (bad != NULL) {
        *res = cp_result_error(400, "bad_request", "%s", bad);
        return 0;
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(fields, "channel_map"), i, e)
    {
        uint64_t ch = (uint64_t)json_integer_value(json_object_get(e, "channel_id"));
        int rv = channel_of(a->txn, a->db, client, ch);
        if (rv < 0) {
            return rv;
        }
        if (rv == 0) {
            *res = cp_result_error(400, "bad_request", "channel_map[%zu]: no such channel %llu", i,
                                   (unsigned long long)ch);
            return 0;
        }
    }
    int rv;
    if (!created) {
        rv = source_get(a->txn, a->db, client, id, &obj);
        if (rv == TVMW_ENOTFOUND) {
            *res = cp_result_error(404, "not_found", "EPG source %llu does not exist",
                                   (unsigned long long)id);
            return 0;
        }
        if (rv != 0) {
            return rv;
        }
    } else {
        if ((rv = cp_counter_next(a, COUNTER_SOURCE, &id)) != 0) {
            return rv;
        }
        obj = json_pack("{s:I, s:I, s:s, s:s, s:i, s:i, s:[], s:i, s:i, s:I, s:s, s:s, s:i, s:i, "
                        "s:s, s:s, s:{}}",
                        "id", (json_int_t)id, "client_id", (json_int_t)client, "name", "", "url",
                        "", "interval_s", 21600, "time_correction_s", 0, "channel_map",
                        "use_epg_channel_id", 1, "enabled", 1, "created_ms",
                        (json_int_t)a->cmd->time_ms, "etag", "", "last_modified", "", "last_run_ms",
                        0, "last_ok_ms", 0, "last_status", "", "last_message", "", "last_report");
        if (obj == NULL) {
            return -ENOMEM;
        }
    }
    json_object_update(obj, fields);
    if (json_object_get(fields, "url") != NULL) {
        /* Another document: its validators mean nothing any more. */
        json_object_set_new(obj, "etag", json_string(""));
        json_object_set_new(obj, "last_modified", json_string(""));
    }
    json_object_set_new(obj, "updated_ms", json_integer((json_int_t)a->cmd->time_ms));
    rv = cp_record_put(a->txn, a->db->epg_sources, id, obj);
    if (rv == 0) {
        *res = cp_result_json(created ? 201 : 200, json_pack("{s:O}", "epg_source", obj));
    }
    json_decref(obj);
    return rv;
}

static int source_delete(struct cp_apply *a, uint64_t client, uint64_t id, struct cp_result **res)
{
    json_t *obj;
    int rv = source_get(a->txn, a->db, client, id, &obj);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "EPG source %llu does not exist",
                               (unsigned long long)id);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    json_decref(obj);
    if ((rv = cp_record_del(a->txn, a->db->epg_sources, id)) != 0) {
        return rv;
    }
    *res = cp_result_json(200, json_pack("{s:I}", "deleted", (json_int_t)id));
    return 0;
}

static int import_status(struct cp_apply *a, uint64_t client, json_t *payload,
                         struct cp_result **res)
{
    uint64_t id = (uint64_t)json_integer_value(json_object_get(payload, "source_id"));
    json_t *report = json_object_get(payload, "report");
    const char *status = json_string_value(json_object_get(report, "status"));
    json_t *etag = json_object_get(payload, "etag"),
           *lm = json_object_get(payload, "last_modified");
    json_t *obj;
    if (!json_is_object(report) || status == NULL || (etag && !valid_utf8_len(etag, 1024)) ||
        (lm && !valid_utf8_len(lm, 128))) {
        *res = cp_result_error(400, "bad_request", "malformed import status");
        return 0;
    }
    int rv = source_get(a->txn, a->db, client, id, &obj);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "EPG source %llu does not exist",
                               (unsigned long long)id);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    json_int_t now = (json_int_t)a->cmd->time_ms;
    json_object_set_new(obj, "last_run_ms", json_integer(now));
    if (strcmp(status, "ok") == 0 || strcmp(status, "not_modified") == 0) {
        json_object_set_new(obj, "last_ok_ms", json_integer(now));
    }
    json_object_set_new(obj, "last_status", json_string(status));
    json_t *msg = json_object_get(report, "message");
    json_object_set_new(obj, "last_message",
                        json_string(json_is_string(msg) ? json_string_value(msg) : ""));
    if (strcmp(status, "not_modified") != 0) {
        json_object_set(obj, "last_report", report);
    }
    if (etag != NULL) {
        json_object_set(obj, "etag", etag);
    }
    if (lm != NULL) {
        json_object_set(obj, "last_modified", lm);
    }
    rv = cp_record_put(a->txn, a->db->epg_sources, id, obj);
    if (rv == 0) {
        *res = cp_result_json(200, json_pack("{s:O}", "epg_source", obj));
    }
    json_decref(obj);
    return rv;
}

/* ---- programmes ------------------------------------------------------------------ */

struct counts {
    json_int_t inserted, updated, unchanged, deleted, channels;
};

static bool str_ok(json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) <= max;
}

/* Checks one channel entry of a programs command. NULL if fine. */
static const char *check_entry(json_t *e, uint64_t *ch, int64_t *from, int64_t *to)
{
    json_t *progs = json_object_get(e, "programs");
    if (!json_is_object(e) || !int_in(json_object_get(e, "channel_id"), 1, INT64_MAX) ||
        !int_in(json_object_get(e, "from"), 1, INT64_MAX) ||
        !int_in(json_object_get(e, "to"), 1, INT64_MAX) || !json_is_array(progs)) {
        return "a channel entry needs channel_id, from, to and programs";
    }
    *ch = (uint64_t)json_integer_value(json_object_get(e, "channel_id"));
    *from = json_integer_value(json_object_get(e, "from"));
    *to = json_integer_value(json_object_get(e, "to"));
    if (*from >= *to) {
        return "from must be before to";
    }
    int64_t prev = 0;
    size_t i;
    json_t *p;
    static const size_t max[] = {CP_EPG_NAME_BYTES,  CP_EPG_NAME_BYTES, CP_EPG_DESC_BYTES,
                                 CP_EPG_SHORT_BYTES, CP_EPG_URL_BYTES,  CP_EPG_SHORT_BYTES,
                                 CP_EPG_META_BYTES};
    json_array_foreach(progs, i, p)
    {
        if (!json_is_array(p) || json_array_size(p) != 9 ||
            !int_in(json_array_get(p, 0), 1, INT64_MAX) ||
            !int_in(json_array_get(p, 1), 1, INT64_MAX)) {
            return "a programme is [begin, end, name, short_name, description, category, "
                   "preview, rating, meta]";
        }
        int64_t b = json_integer_value(json_array_get(p, 0));
        int64_t en = json_integer_value(json_array_get(p, 1));
        if (b < *from || b >= *to || b <= prev || en <= b || en - b > CP_EPG_MAX_DURATION_S) {
            return "programmes must be sorted by begin, inside [from, to), end after begin and "
                   "at most 7 days long";
        }
        for (size_t k = 0; k < 7; k++) {
            if (!str_ok(json_array_get(p, k + 2), max[k])) {
                return "a programme text field is too long or not text";
            }
        }
        if (json_string_length(json_array_get(p, 2)) == 0) {
            return "a programme needs a name";
        }
        prev = b;
    }
    return NULL;
}

/* Appends s as a JSON string, escaped exactly as jansson's compact dump
 * escapes it (so records written before and after compare equal). */
static int json_str_append(struct tvmw_buf *b, const char *s, size_t n)
{
    int rv = tvmw_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        rv = tvmw_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        switch (c) {
        case '"':
            memcpy(esc, "\\\"", 3);
            break;
        case '\\':
            memcpy(esc, "\\\\", 3);
            break;
        case '\b':
            memcpy(esc, "\\b", 3);
            break;
        case '\f':
            memcpy(esc, "\\f", 3);
            break;
        case '\n':
            memcpy(esc, "\\n", 3);
            break;
        case '\r':
            memcpy(esc, "\\r", 3);
            break;
        case '\t':
            memcpy(esc, "\\t", 3);
            break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04X", c);
            break;
        }
        if (rv == 0) {
            rv = tvmw_buf_append(b, esc, strlen(esc));
        }
    }
    if (rv == 0) {
        rv = tvmw_buf_append(b, s + run, n - run);
    }
    return rv == 0 ? tvmw_buf_append(b, "\"", 1) : rv;
}

/* The stored record of a programme (the text json_dumps(JSON_COMPACT)
 * would give for the object, built directly: an import writes hundreds
 * of thousands of them). */
static int program_record(struct tvmw_buf *b, uint64_t id, uint64_t client, uint64_t ch, json_t *p)
{
    static const char *const keys[] = {"name",    "short_name", "description", "category",
                                       "preview", "rating",     "meta"};
    b->len = 0;
    int rv =
        tvmw_buf_printf(b,
                        "{\"id\":%llu,\"client_id\":%llu,\"channel_id\":%llu,"
                        "\"begin_time\":%lld,\"end_time\":%lld",
                        (unsigned long long)id, (unsigned long long)client, (unsigned long long)ch,
                        (long long)json_integer_value(json_array_get(p, 0)),
                        (long long)json_integer_value(json_array_get(p, 1)));
    for (size_t k = 0; k < 7 && rv == 0; k++) {
        json_t *v = json_array_get(p, k + 2);
        if ((rv = tvmw_buf_printf(b, ",\"%s\":", keys[k])) == 0) {
            rv = json_str_append(b, json_string_value(v), json_string_length(v));
        }
    }
    return rv == 0 ? tvmw_buf_append(b, "}", 1) : rv;
}

/* The id of a stored programme: records start with {"id":N, (written
 * above); anything else is parsed. 0 if there is none. */
static uint64_t stored_id(const MDB_val *v)
{
    const char *s = v->mv_data;
    uint64_t id = 0;
    size_t i = 6;
    if (v->mv_size > 7 && memcmp(s, "{\"id\":", 6) == 0) {
        while (i < v->mv_size && i < 26 && s[i] >= '0' && s[i] <= '9') {
            id = id * 10 + (uint64_t)(s[i++] - '0');
        }
        if (i < v->mv_size && s[i] == ',') {
            return id;
        }
    }
    json_t *o = json_loadb(v->mv_data, v->mv_size, 0, NULL);
    json_int_t j = json_integer_value(json_object_get(o, "id"));
    json_decref(o);
    return j > 0 ? (uint64_t)j : 0;
}

static int put_program(struct cp_apply *a, struct tvmw_buf *b, uint64_t client, uint64_t ch,
                       uint64_t id, json_t *p, const MDB_val *old, struct counts *n)
{
    int rv = program_record(b, id, client, ch, p);
    if (rv != 0) {
        return rv;
    }
    if (old != NULL && old->mv_size == b->len && memcmp(old->mv_data, b->data, b->len) == 0) {
        n->unchanged++; /* nothing for edges either */
        return 0;
    }
    uint8_t key[CP_EPG_KEY_SIZE];
    cp_epg_program_key(key, ch, (uint64_t)json_integer_value(json_array_get(p, 0)));
    MDB_val k = {.mv_size = sizeof(key), .mv_data = key},
            v = {.mv_size = b->len, .mv_data = b->data};
    rv = err_from_mdb(mdb_put(a->txn, a->db->programs, &k, &v, 0));
    if (rv == 0) {
        rv = cp_changelog_note(a->txn, a->db->programs, &k, &v);
    }
    if (old != NULL) {
        n->updated++;
    } else {
        n->inserted++;
    }
    return rv;
}

/* Makes the programmes of channel ch beginning in [from, to) exactly
 * progs: a merge of the stored range with the new list, both in begin
 * order. The cursor is positioned afresh after every write (a write may
 * move the page it points into). */
static int replace_range(struct cp_apply *a, uint64_t client, uint64_t ch, int64_t from, int64_t to,
                         json_t *progs, struct counts *n)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(a->txn, a->db->programs, &cur) != 0) {
        return TVMW_ESTORE;
    }
    size_t i = 0, np = json_array_size(progs);
    uint64_t pos = (uint64_t)from;
    int rv = 0;
    struct tvmw_buf rec;
    tvmw_buf_init(&rec, 0);
    for (;;) {
        uint8_t key[CP_EPG_KEY_SIZE];
        cp_epg_program_key(key, ch, pos);
        MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            rv = TVMW_ESTORE;
            break;
        }
        bool have_old = rc == 0 && k.mv_size == CP_EPG_KEY_SIZE && tvmw_get_be64(k.mv_data) == ch &&
                        tvmw_get_be64((uint8_t *)k.mv_data + 8) < (uint64_t)to;
        json_t *p = i < np ? json_array_get(progs, i) : NULL;
        if (!have_old && p == NULL) {
            break;
        }
        uint64_t old_b = have_old ? tvmw_get_be64((uint8_t *)k.mv_data + 8) : UINT64_MAX;
        uint64_t new_b = p ? (uint64_t)json_integer_value(json_array_get(p, 0)) : UINT64_MAX;
        if (old_b < new_b) {
            /* Not in the new guide: gone. */
            cp_epg_program_key(key, ch, old_b);
            MDB_val dk = {.mv_size = sizeof(key), .mv_data = key};
            if ((rv = cp_changelog_note(a->txn, a->db->programs, &dk, NULL)) != 0) {
                break;
            }
            if (mdb_del(a->txn, a->db->programs, &dk, NULL) != 0) {
                rv = TVMW_ESTORE;
                break;
            }
            n->deleted++;
            pos = old_b + 1;
            continue;
        }
        uint64_t id = 0;
        if (old_b == new_b) {
            /* Same slot: the programme keeps its id. The record is built
             * before the put, so the old value is still valid when it is
             * compared. */
            MDB_val old = v;
            id = stored_id(&old);
            if (id == 0) {
                rv = cp_counter_next(a, COUNTER_PROGRAM, &id);
            }
            if (rv == 0) {
                rv = put_program(a, &rec, client, ch, id, p, &old, n);
            }
        } else {
            rv = cp_counter_next(a, COUNTER_PROGRAM, &id);
            if (rv == 0) {
                rv = put_program(a, &rec, client, ch, id, p, NULL, n);
            }
        }
        if (rv != 0) {
            break;
        }
        i++;
        pos = new_b + 1;
    }
    mdb_cursor_close(cur);
    tvmw_buf_close(&rec);
    return rv;
}

static int programs_apply(struct cp_apply *a, uint64_t client, json_t *payload,
                          struct cp_result **res)
{
    json_t *chans = json_object_get(payload, "channels");
    size_t i, total = 0;
    json_t *e;
    if (!json_is_array(chans)) {
        *res = cp_result_error(400, "bad_request", "\"channels\" must be an array");
        return 0;
    }
    json_array_foreach(chans, i, e)
    {
        uint64_t ch;
        int64_t from, to;
        const char *bad = check_entry(e, &ch, &from, &to);
        if (bad != NULL) {
            *res = cp_result_error(400, "bad_request", "channels[%zu]: %s", i, bad);
            return 0;
        }
        total += json_array_size(json_object_get(e, "programs"));
    }
    if (total > CP_EPG_MAX_BATCH_PROGRAMS) {
        *res = cp_result_error(400, "bad_request", "more than %d programmes in one command",
                               CP_EPG_MAX_BATCH_PROGRAMS);
        return 0;
    }
    struct counts n = {0};
    json_t *missing = json_array();
    json_array_foreach(chans, i, e)
    {
        uint64_t ch = (uint64_t)json_integer_value(json_object_get(e, "channel_id"));
        int rv = channel_of(a->txn, a->db, client, ch);
        if (rv == 0) {
            json_array_append_new(missing, json_integer((json_int_t)ch));
            continue;
        }
        if (rv < 0 ||
            (rv = replace_range(a, client, ch, json_integer_value(json_object_get(e, "from")),
                                json_integer_value(json_object_get(e, "to")),
                                json_object_get(e, "programs"), &n)) != 0) {
            json_decref(missing);
            return rv;
        }
        n.channels++;
    }
    *res = cp_result_json(200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "channels", n.channels,
                                         "inserted", n.inserted, "updated", n.updated, "unchanged",
                                         n.unchanged, "deleted", n.deleted, "missing_channels",
                                         missing));
    return 0;
}

/* ---- expiry ---------------------------------------------------------------------- */

static int channel_exists(MDB_txn *txn, const struct cp_dbs *db, uint64_t ch, bool *out)
{
    uint8_t kb[8];
    tvmw_put_be64(kb, ch);
    MDB_val k = {.mv_size = 8, .mv_data = kb}, v;
    int rc = mdb_get(txn, db->channels, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return TVMW_ESTORE;
    }
    *out = rc == 0;
    return 0;
}

/* Walks the programmes from channel `from_channel` on and finds the
 * expired ones (begin before `before`, or a channel that is gone). With
 * del, deletes them (at most limit) and says where to go on; without,
 * stops at the first (*found 1). */
static int expire_walk(MDB_txn *txn, const struct cp_dbs *db, int64_t before, uint64_t from_channel,
                       bool del, json_int_t limit, json_int_t *found, uint64_t *next_channel)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, db->programs, &cur) != 0) {
        return TVMW_ESTORE;
    }
    uint64_t pos_ch = from_channel, pos_b = 0, known_ch = 0;
    bool exists = true;
    int rv = 0;
    *found = 0;
    *next_channel = 0;
    for (;;) {
        uint8_t key[CP_EPG_KEY_SIZE];
        cp_epg_program_key(key, pos_ch, pos_b);
        MDB_val k = {.mv_size = sizeof(key), .mv_data = key}, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            break;
        }
        if (rc != 0 || k.mv_size != CP_EPG_KEY_SIZE) {
            rv = TVMW_ESTORE;
            break;
        }
        uint64_t ch = tvmw_get_be64(k.mv_data), b = tvmw_get_be64((uint8_t *)k.mv_data + 8);
        if (ch != known_ch || known_ch == 0) {
            known_ch = ch;
            if ((rv = channel_exists(txn, db, ch, &exists)) != 0) {
                break;
            }
        }
        if (exists && b >= (uint64_t)before) {
            if (ch == UINT64_MAX) {
                break;
            }
            pos_ch = ch + 1; /* the rest of this channel is current */
            pos_b = 0;
            continue;
        }
        if (!del) {
            *found = 1;
            break;
        }
        if (*found == limit) {
            *next_channel = ch;
            break;
        }
        cp_epg_program_key(key, ch, b);
        MDB_val dk = {.mv_size = sizeof(key), .mv_data = key};
        if ((rv = cp_changelog_note(txn, db->programs, &dk, NULL)) != 0) {
            break;
        }
        if (mdb_del(txn, db->programs, &dk, NULL) != 0) {
            rv = TVMW_ESTORE;
            break;
        }
        (*found)++;
        pos_ch = ch;
        pos_b = b + 1;
    }
    mdb_cursor_close(cur);
    return rv;
}

static int expire_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    json_t *before = json_object_get(payload, "before");
    json_t *from = json_object_get(payload, "from_channel");
    json_t *limit = json_object_get(payload, "limit");
    if (!int_in(before, 1, INT64_MAX) || !int_in(from, 0, INT64_MAX) ||
        !int_in(limit, 1, 1000000)) {
        *res = cp_result_error(400, "bad_request", "expire needs before, from_channel and limit");
        return 0;
    }
    json_int_t deleted;
    uint64_t next;
    int rv =
        expire_walk(a->txn, a->db, json_integer_value(before), (uint64_t)json_integer_value(from),
                    true, json_integer_value(limit), &deleted, &next);
    if (rv == 0) {
        *res = cp_result_json(
            200, json_pack("{s:I, s:I}", "deleted", deleted, "next_channel", (json_int_t)next));
    }
    return rv;
}

int cp_epg_expire_pending(struct cp_fsm *f, int64_t before, bool *pending)
{
    MDB_txn *txn;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    json_int_t found;
    uint64_t next;
    rv = expire_walk(txn, cp_fsm_dbs(f), before, 0, false, 1, &found, &next);
    mdb_txn_abort(txn);
    if (rv == 0) {
        *pending = found > 0;
    }
    return rv;
}

/* ---- dispatch --------------------------------------------------------------------- */

int cp_epg_apply(struct cp_apply *a, json_t *payload, struct cp_result **res)
{
    const char *op = json_string_value(json_object_get(payload, "op"));
    if (op == NULL) {
        *res = cp_result_error(400, "bad_request", "malformed EPG command");
        return 0;
    }
    if (strcmp(op, "expire") == 0) {
        return expire_apply(a, payload, res);
    }
    json_t *cj = json_object_get(payload, "client_id");
    json_t *cobj;
    if (!int_in(cj, 1, INT64_MAX)) {
        *res = cp_result_error(400, "bad_request", "malformed EPG command");
        return 0;
    }
    uint64_t client = (uint64_t)json_integer_value(cj);
    int rv = cp_record_get(a->txn, a->db->clients, client, &cobj);
    if (rv == TVMW_ENOTFOUND) {
        *res = cp_result_error(404, "not_found", "client %llu does not exist",
                               (unsigned long long)client);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    json_decref(cobj);
    json_t *idj = json_object_get(payload, "id");
    uint64_t id =
        json_is_integer(idj) && json_integer_value(idj) > 0 ? (uint64_t)json_integer_value(idj) : 0;
    if (strcmp(op, "programs") == 0) {
        return programs_apply(a, client, payload, res);
    }
    if (strcmp(op, "import_status") == 0) {
        rv = import_status(a, client, payload, res);
    } else if (strcmp(op, "source_put") == 0) {
        rv = source_put(a, client, id, json_object_get(payload, "fields"), res);
    } else if (strcmp(op, "source_delete") == 0 && id > 0) {
        rv = source_delete(a, client, id, res);
    } else {
        *res = cp_result_error(400, "bad_request", "unknown EPG operation");
        return 0;
    }
    if (rv != 0 || *res == NULL || (*res)->status >= 300) {
        return rv;
    }
    /* Source changes and import outcomes are in the audit trail, like the
     * catalogue's; programme batches are not (their size, and the outcome
     * of the import says what they did). */
    char method[64];
    snprintf(method, sizeof(method), "epg/%s", op);
    json_t *params = json_deep_copy(payload);
    json_object_del(params, "client_id");
    rv = cp_audit_put(a, payload, method, params, 0);
    json_decref(params);
    return rv;
}

/* ---- reads ----------------------------------------------------------------------- */

int cp_epg_source_list(struct cp_fsm *f, uint64_t client_id, json_t **out)
{
    MDB_txn *txn;
    json_t *all;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = cp_record_list(txn, cp_fsm_dbs(f)->epg_sources, &all);
    mdb_txn_abort(txn);
    if (rv != 0) {
        return rv;
    }
    if (client_id == 0) {
        *out = all;
        return 0;
    }
    json_t *mine = json_array();
    size_t i;
    json_t *o;
    json_array_foreach(all, i, o)
    {
        if ((uint64_t)json_integer_value(json_object_get(o, "client_id")) == client_id) {
            json_array_append(mine, o);
        }
    }
    json_decref(all);
    *out = mine;
    return 0;
}

int cp_epg_source_get(struct cp_fsm *f, uint64_t client_id, uint64_t id, json_t **out)
{
    MDB_txn *txn;
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = source_get(txn, cp_fsm_dbs(f), client_id, id, out);
    mdb_txn_abort(txn);
    return rv;
}

int cp_epg_programs_list(struct cp_fsm *f, uint64_t client_id, uint64_t channel_id, int64_t from,
                         int64_t to, unsigned limit, json_t **out)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    const struct cp_dbs *db = cp_fsm_dbs(f);
    int rv = cp_fsm_read_begin(f, &txn);
    if (rv != 0) {
        return rv;
    }
    rv = channel_of(txn, db, client_id, channel_id);
    if (rv <= 0) {
        mdb_txn_abort(txn);
        return rv == 0 ? TVMW_ENOTFOUND : rv;
    }
    if (mdb_cursor_open(txn, db->programs, &cur) != 0) {
        mdb_txn_abort(txn);
        return TVMW_ESTORE;
    }
    uint8_t start[CP_EPG_KEY_SIZE];
    cp_epg_program_key(start, channel_id, from > 0 ? (uint64_t)from : 0);
    MDB_val k = {.mv_size = sizeof(start), .mv_data = start}, v;
    json_t *arr = json_array();
    int rc;
    rv = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && json_array_size(arr) < limit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CP_EPG_KEY_SIZE || tvmw_get_be64(k.mv_data) != channel_id ||
            tvmw_get_be64((uint8_t *)k.mv_data + 8) >= (uint64_t)to) {
            break;
        }
        json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
        if (o == NULL) {
            rv = TVMW_ECORRUPT;
            break;
        }
        json_array_append_new(arr, o);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rv != 0) {
        json_decref(arr);
        return rv;
    }
    *out = arr;
    return 0;
}
