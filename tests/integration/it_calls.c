/*
 * Shared admin and Billing API calls of the device-side tests; see
 * it_calls.h.
 */
#include "it_calls.h"

#include "it_cmocka.h"

long long it_jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -999;
}

void it_admin_expect(struct it_cluster *c, const char *method, const char *path, const char *body,
                     long want, json_t **out)
{
    struct it_resp r;
    it_admin(c, 1, method, path, body, NULL, &r);
    IT_ASSERT_STATUS(&r, want);
    if (out != NULL) {
        *out = json_incref(r.json);
    }
    it_resp_close(&r);
}

long long it_admin_create(struct it_cluster *c, const char *path, const char *key, const char *body)
{
    json_t *o;
    it_admin_expect(c, "POST", path, body, 201, &o);
    long long id = it_jint(json_object_get(o, key), "id");
    json_decref(o);
    IT_ASSERT(id > 0, "no id from %s", path);
    return id;
}

json_t *it_billing_ok(struct it_cluster *c, const struct it_bl_client *client, const char *path,
                      const char *const *kv)
{
    struct it_resp r;
    char why[1400];
    for (int attempt = 0; attempt < 50; attempt++) {
        it_bl_call(c, 1 + (uint64_t)attempt % 3, IT_BL_PY, client, path, kv, &r);
        if (r.status != 503 && r.status != 0) {
            break;
        }
        it_resp_close(&r);
        it_sleep_ms(200);
    }
    IT_ASSERT(it_bl_is(&r, 0, why, sizeof(why)), "%s: %s", path, why);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}
