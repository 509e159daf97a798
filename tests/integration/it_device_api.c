/*
 * it_device_api: the device API (shared/spec/device-api.md) served by two
 * real tvmw-edge processes (datacenters dc1 and dc2) that follow a real
 * 3-node control plane; requests shaped as the real clients send them.
 *
 * test_device_api: every method, positive and negative, in JSON and XML;
 *   login methods and their errors; session limits (eviction of the oldest
 *   additional session, the basic-device limit and unbinding); an authkey
 *   of one edge accepted by the other; routing by datacenter, exclusion
 *   and redirect; changes at the control plane (new channel, tariff link
 *   removed, account deactivated) visible at both edges within 1 s;
 *   settings, messages, devices, registration.
 * test_outage: every control-plane node killed: both edges keep logging in
 *   and serving channel lists and URLs, report staleness; an edge restarted
 *   meanwhile serves its saved state; a logout made during the outage
 *   reaches the cluster when it returns (journal replay) and the edges
 *   converge.
 *
 * Environment: TVMW_CP_BIN, TVMW_EDGE_BIN. Ports 27500..27599.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "it_billing.h"
#include "it_calls.h"
#include "it_cmocka.h"
#include "it_edge.h"

#define BASE_PORT  27500 /* cp HTTP 27501..3, raft 27601..3 */
#define EDGE1_ADDR "127.0.0.1:27551"
#define EDGE2_ADDR "127.0.0.1:27552"
#define BKEY       "device-api-billing-key-1"
#define APIKEY     "device-api-key-0123456789"
#define VISIBLE_MS 1000
#define UID1       "aa:bb:cc:dd:ee:01"

static struct it_cluster *cl;
static struct it_edge e1, e2;
static struct it_bl_client c1 = {.id = 1, .key = BKEY};
static long long ch_a, ch_b, ch_c, svc1, svc2, tariff;

/* ---- helpers ------------------------------------------------------------------------ */

/* GET /tvmiddleware/api/<pq> at an edge. */
static void dapi(const struct it_edge *e, const char *pq, struct it_resp *r)
{
    char url[2048];
    it_fmt(url, sizeof(url), "http://%s/tvmiddleware/api/%s", e->addr, pq);
    it_http("GET", url, NULL, 0, NULL, 5000, r);
}

/* A JSON device-API call that must answer HTTP 200 with `error` = code. */
static json_t *dcall(const struct it_edge *e, long long code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *dcall(const struct it_edge *e, long long code, const char *fmt, ...)
{
    char pq[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pq, sizeof(pq), fmt, ap);
    va_end(ap);
    struct it_resp r;
    dapi(e, pq, &r);
    IT_ASSERT(r.status == 200 && r.json != NULL, "%s: HTTP %ld %.600s", pq, r.status,
              r.body ? r.body : r.error);
    IT_ASSERT(it_jint(r.json, "error") == code, "%s: wanted error %lld: %.600s", pq, code, r.body);
    json_t *o = json_incref(r.json);
    it_resp_close(&r);
    return o;
}

static char *login_json(const struct it_edge *e, const char *creds, long long code)
{
    json_t *o = dcall(e, code, "login/?client_id=1&api_key=" APIKEY "&device=android&%s", creds);
    const char *k = json_string_value(json_object_get(o, "authkey"));
    char *key = k ? strdup(k) : NULL;
    if (code == 0) {
        IT_ASSERT(key != NULL && strlen(key) == 128 && strspn(key, "0123456789abcdef") == 128,
                  "authkey of 128 hex digits");
    }
    json_decref(o);
    return key;
}

/* Polls account/status until its status is `want`; ms taken or -1. */
static long long wait_status(const struct it_edge *e, const char *key, long long want,
                             unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        json_t *o = dcall(e, 0, "account/status/?client_id=1&authkey=%s&device=android", key);
        long long st = it_jint(o, "status");
        json_decref(o);
        if (st == want) {
            return (long long)(it_now_ms() - t0);
        }
        it_sleep_ms(20);
    } while (it_now_ms() - t0 < timeout_ms);
    return -1;
}

/* The channel object of id in a JSON channel list, or NULL (borrowed). */
static const json_t *find_channel(const json_t *list, long long id)
{
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(list, "channels"), i, c)
    {
        if (it_jint(c, "id") == id) {
            return c;
        }
    }
    return NULL;
}

/* Waits until channel id's field has value want (-1: the channel is absent)
 * in the list of `key` at edge e; ms taken or -1. */
static long long wait_channel(const struct it_edge *e, const char *key, long long id,
                              const char *field, long long want, unsigned timeout_ms)
{
    uint64_t t0 = it_now_ms();
    do {
        json_t *o = dcall(e, 0, "channel/list/?client_id=1&authkey=%s&device=android", key);
        const json_t *c = find_channel(o, id);
        bool ok = want < 0 ? c == NULL : c != NULL && it_jint(c, field) == want;
        json_decref(o);
        if (ok) {
            return (long long)(it_now_ms() - t0);
        }
        it_sleep_ms(20);
    } while (it_now_ms() - t0 < timeout_ms);
    return -1;
}

static char *channel_uri(const struct it_edge *e, const char *key, long long cid, const char *extra)
{
    json_t *o =
        dcall(e, 0, "channel/url/?client_id=1&authkey=%s&cid=%lld&redirect=0%s", key, cid, extra);
    char *uri = strdup(json_string_value(json_object_get(o, "uri")));
    json_decref(o);
    return uri;
}

/* ---- setup ------------------------------------------------------------------------------ */

static void make_catalogue(void)
{
    it_admin_expect(cl, "POST", "/admin/v1/clients",
                    "{\"name\":\"dev\",\"api_key\":\"" APIKEY "\",\"billing_api_key\":\"" BKEY "\","
                    "\"settings\":{\"registration_enabled\":1}}",
                    201, NULL);
    long long dc1 = it_admin_create(cl, "/admin/v1/clients/1/datacenters", "datacenter",
                                    "{\"name\":\"DC one\",\"code\":\"dc1\"}");
    long long dc2 = it_admin_create(cl, "/admin/v1/clients/1/datacenters", "datacenter",
                                    "{\"name\":\"DC two\",\"code\":\"dc2\"}");
    long long cat = it_admin_create(cl, "/admin/v1/clients/1/categories", "category",
                                    "{\"name\":\"News\",\"order\":1}");
    char body[1024];
    it_fmt(body, sizeof(body),
           "{\"name\":\"First & Co\",\"number\":1,\"stream_name\":\"first\",\"archive_days\":7,"
           "\"icon\":\"/media/first.png\",\"category_id\":%lld}",
           cat);
    ch_a = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel", body);
    it_fmt(body, sizeof(body),
           "{\"name\":\"Second\",\"number\":2,\"stream_name\":\"second\",\"category_id\":%lld}",
           cat);
    ch_b = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel", body);
    ch_c = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel",
                           "{\"name\":\"Premium\",\"number\":3,\"stream_name\":\"premium\"}");
    it_fmt(body, sizeof(body),
           "{\"name\":\"fl-dc1\",\"type\":\"flussonic\",\"datacenter_id\":%lld,\"url_masks\":"
           "{\"live\":\"http://s1.dc1.example/$cid/index.m3u8?token=$token\",\"archive\":"
           "\"http://s1.dc1.example/$cid/video-$flpbt-$flpdur.m3u8?token=$token\"}}",
           dc1);
    svc1 = it_admin_create(cl, "/admin/v1/clients/1/streaming-services", "streaming_service", body);
    it_fmt(body, sizeof(body),
           "{\"name\":\"fl-dc2\",\"type\":\"flussonic\",\"datacenter_id\":%lld,\"url_masks\":"
           "{\"live\":\"http://s2.dc2.example/$cid/index.m3u8?token=$token\"}}",
           dc2);
    svc2 = it_admin_create(cl, "/admin/v1/clients/1/streaming-services", "streaming_service", body);
    json_t *o;
    it_admin_expect(cl, "POST", "/admin/v1/clients/1/tariffs",
                    "{\"name\":\"Basic\",\"period\":1,\"price\":0,\"sessions_count\":1,"
                    "\"basic_sessions_count\":1,\"basic_tariff_priority\":5}",
                    200, &o);
    tariff = it_jint(o, "id");
    json_decref(o);
    IT_ASSERT(tariff > 0, "tariff id");
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld]}", ch_a, ch_b);
    char path[128];
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/tariffs/%lld/channels", tariff);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld]}", svc1, svc2);
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/tariffs/%lld/streaming-services", tariff);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
}

static void make_account(const char *abonement, bool with_tariff, const char *flag)
{
    char t[24];
    it_fmt(t, sizeof(t), "%lld", tariff);
    json_t *o =
        it_billing_ok(cl, &c1, "customer/create", IT_KV("firstname", "Ann", "lastname", abonement));
    char cust[24];
    it_fmt(cust, sizeof(cust), "%lld", it_jint(o, "id"));
    json_decref(o);
    json_decref(
        it_billing_ok(cl, &c1, "account/create",
                      IT_KV("customer_id", cust, "abonement", abonement, "password", "111111")));
    if (with_tariff) {
        json_decref(it_billing_ok(cl, &c1, "customer/tariff/assign",
                                  IT_KV("customer_id", cust, "tariff_id", t)));
    }
    if (flag != NULL) {
        json_decref(
            it_billing_ok(cl, &c1, "account/modify", IT_KV("abonement", abonement, flag, "1")));
    }
}

static void setup_cluster(void)
{
    struct it_opts o = {
        .n_nodes = 3,
        .base_port = BASE_PORT,
        .name = "device-api",
        .extra_config =
            "{\"edges\": [{\"id\": \"e1\", \"http_address\": \"" EDGE1_ADDR "\","
            " \"datacenter\": \"dc1\"}, {\"id\": \"e2\", \"http_address\": \"" EDGE2_ADDR "\","
            " \"datacenter\": \"dc2\"}]}",
    };
    cl = it_cluster_new(&o);
    IT_ASSERT(cl != NULL, "cluster did not start");
    IT_ASSERT(it_wait_all_ready(cl, 20000) != 0, "no leader at start");
    make_catalogue();
    make_account("100001", true, NULL);
    make_account("100002", true, "allow_login_by_abonement");
    make_account("100003", false, NULL);
    make_account("100004", true, "allow_multiple_login");
    json_decref(
        it_billing_ok(cl, &c1, "account/device/create",
                      IT_KV("abonement", "100001", "device_uid", UID1, "system_name", "mag")));
    it_edge_define(&e1, cl->dir, cl->config_path, "e1", EDGE1_ADDR);
    it_edge_define(&e2, cl->dir, cl->config_path, "e2", EDGE2_ADDR);
    it_edge_start(&e1);
    it_edge_start(&e2);
    IT_ASSERT(it_edge_wait_health(&e1, "ok", 15000), "e1 never ok");
    IT_ASSERT(it_edge_wait_health(&e2, "ok", 15000), "e2 never ok");
    /* The first signing key is made by the leader once it is ready; wait
     * until a login works at both edges. */
    uint64_t t0 = it_now_ms();
    for (int i = 0; i < 2; i++) {
        const struct it_edge *e = i ? &e2 : &e1;
        for (;;) {
            struct it_resp r;
            /* the device, the last write of the setup */
            dapi(e, "login/?client_id=1&api_key=" APIKEY "&device_uid=" UID1, &r);
            long long err = it_jint(r.json, "error");
            it_resp_close(&r);
            if (err == 0) {
                break;
            }
            IT_ASSERT(it_now_ms() - t0 < 15000, "no login at %s (error %lld)", e->id, err);
            it_sleep_ms(50);
        }
    }
}

/* ---- test 1 ------------------------------------------------------------------------------ */

static void check_logins(void)
{
    json_t *o;
    struct it_resp r;
    /* Credentials and their errors (§3.5). */
    json_decref(dcall(&e1, 4, "login/?client_id=1&api_key=wrong&abonement=100001&password=111111"));
    json_decref(dcall(&e1, 4, "login/?client_id=9&api_key=" APIKEY "&abonement=100001"));
    json_decref(dcall(&e1, 1, "login/?client_id=1&api_key=" APIKEY "&abonement=999&password=1"));
    json_decref(dcall(&e1, 1, "login/?client_id=1&api_key=" APIKEY "&abonement=100001&password=2"));
    json_decref(dcall(&e1, 1, "login/?client_id=1&api_key=" APIKEY "&abonement=100001"));
    json_decref(dcall(&e1, 1, "login/?client_id=1&api_key=" APIKEY "&device_uid=unknown-uid"));
    json_decref(
        dcall(&e1, 8, "login/?client_id=1&api_key=" APIKEY "&abonement=100003&password=111111"));
    free(login_json(&e1, "abonement=100002", 0));

    /* The real clients' quirks: alias prefix, no final slash, empty
     * authkey, device_uid=0, duplicate parameters (last wins). */
    it_http("GET",
            "http://" EDGE1_ADDR
            "/api/tvmiddleware/api/login?client_id=1&api_key=wrong&api_key=" APIKEY
            "&abonement=100002&authkey=&device_uid=0&device=browser",
            NULL, 0, NULL, 5000, &r);
    IT_ASSERT(r.status == 200 && it_jint(r.json, "error") == 0, "alias login: %s", r.body);
    IT_ASSERT(strstr(r.body, "\"authkey\":\"") != NULL, "compact JSON: %s", r.body);
    IT_ASSERT(r.headers && strstr(r.headers, "Set-Cookie: authkey=") != NULL, "cookie: %s",
              r.headers);
    it_resp_close(&r);

    /* XML for a MAG, login by the bound device uid. */
    dapi(&e1, "login/?client_id=1&api_key=" APIKEY "&device=mag&device_uid=" UID1, &r);
    IT_ASSERT(r.status == 200 && strncmp(r.body, "<?xml", 5) == 0 &&
                  strstr(r.body, "<rss><error>0</error>") != NULL &&
                  strstr(r.body, "<authkey>") != NULL,
              "XML login: %s", r.body);
    IT_ASSERT(strstr(r.headers, "application/xml") != NULL, "content type: %s", r.headers);
    char xkey[129] = "";
    const char *k = strstr(r.body, "<authkey>");
    memcpy(xkey, k + 9, 128);
    it_resp_close(&r);
    dapi(&e1, "channel/list/?client_id=1&device=mag&authkey=", &r);
    IT_ASSERT(strstr(r.body, "<error>403</error>") != NULL, "no session in XML: %s", r.body);
    it_resp_close(&r);
    char pq[512];
    it_fmt(pq, sizeof(pq), "channel/list/?client_id=1&device=mag&authkey=%s", xkey);
    dapi(&e1, pq, &r);
    const char *item = strstr(r.body, "<channels><item><is_hidden>");
    IT_ASSERT(item != NULL, "XML channel list: %.500s", r.body);
    IT_ASSERT(strstr(item, "<is_hidden>0</is_hidden><id>") != NULL &&
                  strstr(r.body, "First &amp; Co") != NULL,
              "field order / escaping: %.600s", item);
    it_resp_close(&r);

    /* An authkey made by e1 is good at e2. */
    char *key = login_json(&e1, "abonement=100001&password=111111", 0);
    o = dcall(&e2, 0, "account/status/?client_id=1&authkey=%s", key);
    IT_ASSERT(it_jint(o, "status") == 0, "e2 refused e1's authkey");
    json_decref(o);
    o = dcall(&e1, 0, "account/status/?client_id=1&authkey=%s", "00");
    IT_ASSERT(it_jint(o, "status") == 1, "a bad authkey is status 1, error 0");
    json_decref(o);
    key[5] = key[5] == 'a' ? 'b' : 'a';
    json_decref(dcall(&e1, 403, "channel/list/?client_id=1&authkey=%s", key));
    free(key);
}

static void check_session_limits(void)
{
    /* sessions_count 1: a second additional session evicts the first. */
    char *k1 = login_json(&e1, "abonement=100001&password=111111", 0);
    IT_ASSERT(wait_status(&e1, k1, 0, 2000) >= 0, "first session");
    char *k2 = login_json(&e1, "abonement=100001&password=111111", 0);
    IT_ASSERT(wait_status(&e1, k1, 1, 100) >= 0, "not evicted at once at its edge");
    long long took = wait_status(&e2, k1, 1, 5000);
    IT_ASSERT(took >= 0 && took <= VISIBLE_MS, "eviction reached the other edge after %lld ms",
              took);
    IT_ASSERT(wait_status(&e2, k2, 0, 100) >= 0, "the new session");
    free(k1);
    free(k2);

    /* basic_sessions_count 1 with UID1 bound: a new uid gets error 5 and
     * the devices to unbind; unbinding one lets it in. */
    json_t *o = dcall(&e1, 5,
                      "login/?client_id=1&api_key=" APIKEY
                      "&abonement=100001&password=111111&device_uid=new-box-2&device=android");
    const json_t *devs = json_object_get(o, "devices");
    IT_ASSERT(json_array_size(devs) == 1 &&
                  strcmp(json_string_value(json_object_get(json_array_get(devs, 0), "device_uid")),
                         UID1) == 0,
              "devices in the error 5 answer");
    long long dev_id = it_jint(json_array_get(devs, 0), "id");
    json_decref(o);
    json_decref(dcall(&e1, 27,
                      "login/?client_id=1&api_key=" APIKEY
                      "&abonement=100001&password=111111&device_uid=new-box-2&"
                      "device_id_for_unbinding=99999"));
    char pq[512];
    it_fmt(pq, sizeof(pq),
           "abonement=100001&password=111111&device_uid=new-box-2&device_id_for_unbinding=%lld",
           dev_id);
    char *k3 = login_json(&e1, pq, 0);
    /* The new box is bound; the old uid no longer logs in. */
    uint64_t t0 = it_now_ms();
    for (;;) {
        o = dcall(&e2, 0, "customer/device/list/?client_id=1&authkey=%s", k3);
        const json_t *d = json_array_get(json_object_get(o, "devices"), 0);
        bool moved = json_array_size(json_object_get(o, "devices")) == 1 &&
                     strcmp(json_string_value(json_object_get(d, "device_uid")), "new-box-2") == 0;
        json_decref(o);
        if (moved) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 5000, "the device was not rebound");
        it_sleep_ms(50);
    }
    json_decref(dcall(&e2, 1, "login/?client_id=1&api_key=" APIKEY "&device_uid=" UID1));
    free(k3);
}

static void check_channels(const char *key)
{
    json_t *o =
        dcall(&e1, 0, "channel/list/?client_id=1&authkey=%s&icon_width=400&icon_height=400", key);
    const json_t *a = find_channel(o, ch_a), *c = find_channel(o, ch_c);
    IT_ASSERT(json_array_size(json_object_get(o, "channels")) == 3 && a && c,
              "three channels listed: %zu, a=%p c=%p",
              json_array_size(json_object_get(o, "channels")), (void *)a, (void *)c);
    IT_ASSERT(it_jint(a, "has_subscription") == 1 && it_jint(c, "has_subscription") == 0 &&
                  it_jint(a, "has_record") == 1 && it_jint(a, "max_archive_duration") == 7,
              "subscription flags");
    IT_ASSERT(strcmp(json_string_value(json_object_get(a, "icon")), "/media/first400_400.png") == 0,
              "icon size suffix");
    IT_ASSERT(strstr(json_string_value(json_object_get(a, "url")),
                     "/tvmiddleware/api/channel/url/") != NULL,
              "channel url is the API link");
    json_decref(o);
    o = dcall(&e1, 0, "channel/list/?client_id=1&authkey=%s&search=sec&compact=1", key);
    IT_ASSERT(json_array_size(json_object_get(o, "channels")) == 1, "search");
    IT_ASSERT(json_object_get(json_array_get(json_object_get(o, "channels"), 0), "option1") == NULL,
              "compact omits heavy fields");
    json_decref(o);
    o = dcall(&e1, 0, "channel/list/?client_id=1&authkey=%s&page=2&limit=2", key);
    IT_ASSERT(json_array_size(json_object_get(o, "channels")) == 1, "paging");
    json_decref(o);
    json_decref(dcall(&e1, 1, "channel/list/?client_id=1&authkey=%s&channel_sort_id=5", key));
    o = dcall(&e1, 0, "category/list/?client_id=1&authkey=%s", key);
    const json_t *cat = json_array_get(json_object_get(o, "categories"), 0);
    IT_ASSERT(cat && strcmp(json_string_value(json_object_get(cat, "name")), "News") == 0 &&
                  it_jint(cat, "channels_count") == 2,
              "category list");
    json_decref(o);
    json_decref(dcall(&e1, 0, "noauth/category/list/?client_id=1&api_key=" APIKEY));
    json_decref(dcall(&e1, 403, "noauth/category/list/?client_id=1&api_key=nope"));

    /* Routing: the edge's datacenter first; exclusion; redirect. */
    char *u1 = channel_uri(&e1, key, ch_a, ""), *u2 = channel_uri(&e2, key, ch_a, "");
    IT_ASSERT(strncmp(u1, "http://s1.dc1.example/first/index.m3u8?token=", 45) == 0 &&
                  strlen(u1) == 45 + 70,
              "e1 routes to dc1: %s", u1);
    IT_ASSERT(strncmp(u2, "http://s2.dc2.example/first/index.m3u8?token=", 45) == 0,
              "e2 routes to dc2: %s", u2);
    free(u1);
    free(u2);
    char ex[64];
    it_fmt(ex, sizeof(ex), "&exclude_service_id=%lld", svc1);
    u1 = channel_uri(&e1, key, ch_a, ex);
    IT_ASSERT(strncmp(u1, "http://s2.dc2.example/", 22) == 0, "exclusion: %s", u1);
    free(u1);
    struct it_resp r;
    char pq[512];
    it_fmt(pq, sizeof(pq), "channel/url/?client_id=1&authkey=%s&cid=%lld", key, ch_b);
    dapi(&e1, pq, &r);
    IT_ASSERT(r.status == 302 &&
                  strstr(r.headers, "Location: http://s1.dc1.example/second/") != NULL,
              "redirect by default: %ld %s", r.status, r.headers);
    it_resp_close(&r);
    /* A service found down (probes, or by hand as here) is routed around
     * at every edge as fast as the feed. */
    char path[128];
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/streaming-services/%lld", svc1);
    it_admin_expect(cl, "PATCH", path, "{\"health\":\"down\"}", 200, NULL);
    uint64_t t0 = it_now_ms();
    for (;;) {
        u1 = channel_uri(&e1, key, ch_a, "");
        bool moved = strncmp(u1, "http://s2.dc2.example/", 22) == 0;
        free(u1);
        if (moved) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < VISIBLE_MS, "a down service still routed to");
        it_sleep_ms(10);
    }
    it_admin_expect(cl, "PATCH", path, "{\"health\":\"up\"}", 200, NULL);
    json_decref(
        dcall(&e1, 1, "channel/url/?client_id=1&authkey=%s&cid=%lld&redirect=0", key, ch_c));
    json_decref(dcall(&e1, 404, "channel/url/?client_id=1&authkey=%s&cid=99999&redirect=0", key));
    json_decref(dcall(&e1, 1, "channel/url/?client_id=1&authkey=%s&redirect=0", key));
    /* EPG calls answer without programmes. */
    o = dcall(&e1, 0, "program/list/?client_id=1&authkey=%s&cid=%lld&time_from=1&time_to=2", key,
              ch_a);
    IT_ASSERT(json_is_array(json_object_get(o, "programs")), "program list");
    json_decref(o);
    json_decref(dcall(&e1, 1, "program/list/?client_id=1&authkey=%s", key));
    json_decref(
        dcall(&e1, 1, "program/list/?client_id=1&authkey=%s&cid=%lld&date=32.13.2020", key, ch_a));
    json_decref(dcall(&e1, 404, "program/url/?client_id=1&authkey=%s&cid=%lld&time=5&redirect=0",
                      key, ch_a));
    json_decref(
        dcall(&e1, 1, "program/url/?client_id=1&authkey=%s&cid=%lld&redirect=0", key, ch_a));
}

static void xmltv_time(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y%m%d%H%M%S +0000", &tm);
}

/* The EPG from an XMLTV upload: programme list, archive and pause URLs,
 * the programme on now in the channel list. */
static void check_epg(const char *key)
{
    char body[4096], path[128], t[6][32];
    time_t now = time(NULL), b[4] = {now - 7200, now - 1800, now + 1800, now + 5400};
    it_fmt(body, sizeof(body),
           "{\"name\":\"guide\",\"channel_map\":[{\"xmltv_id\":\"first.tv\",\"channel_id\":%lld}]}",
           ch_a);
    long long src = it_admin_create(cl, "/admin/v1/clients/1/epg-sources", "epg_source", body);
    for (int i = 0; i < 4; i++) {
        xmltv_time(b[i], t[i]);
    }
    it_fmt(body, sizeof(body),
           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tv><channel id=\"first.tv\">"
           "<display-name>First</display-name></channel>"
           "<programme start=\"%s\" stop=\"%s\" channel=\"first.tv\"><title>Morning "
           "&amp; News</title><desc>Past</desc></programme>"
           "<programme start=\"%s\" stop=\"%s\" channel=\"first.tv\"><title>Now On</title>"
           "</programme>"
           "<programme start=\"%s\" stop=\"%s\" channel=\"first.tv\"><title>Next Up</title>"
           "</programme></tv>\n",
           t[0], t[1], t[1], t[2], t[2], t[3]);
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/epg-sources/%lld/upload", src);
    struct it_resp r;
    static const char *const xml[] = {"Content-Type: application/xml", NULL};
    it_admin(cl, 1, "POST", path, body, xml, &r);
    IT_ASSERT_STATUS(&r, 200);
    it_resp_close(&r);
    json_t *o = NULL;
    uint64_t t0 = it_now_ms();
    for (int e = 0; e < 2; e++) {
        for (;;) {
            o = dcall(e ? &e1 : &e2, 0,
                      "program/list/?client_id=1&authkey=%s&cid=%lld&time_from=%lld&time_to=%lld",
                      key, ch_a, (long long)now - 10800, (long long)now + 10800);
            if (json_array_size(json_object_get(o, "programs")) == 3) {
                break;
            }
            json_decref(o);
            IT_ASSERT(it_now_ms() - t0 < 5000, "the programmes did not reach the edge");
            it_sleep_ms(50);
        }
        if (e == 0) {
            json_decref(o);
        }
    }
    const json_t *past = json_array_get(json_object_get(o, "programs"), 0);
    const json_t *cur = json_array_get(json_object_get(o, "programs"), 1);
    IT_ASSERT(strcmp(json_string_value(json_object_get(past, "name")), "Morning & News") == 0 &&
                  it_jint(past, "begin_time") == (long long)b[0] &&
                  it_jint(past, "has_record") == 1 &&
                  it_jint(json_array_get(json_object_get(o, "programs"), 2), "has_record") == 0,
              "program list fields");
    long long pid = it_jint(past, "id"), cur_pid = it_jint(cur, "id");
    json_decref(o);
    /* time_to before time_from (a real client does that) and pid_from */
    o = dcall(
        &e1, 0,
        "program/list/?client_id=1&authkey=%s&cid=%lld&time_from=%lld&time_to=%lld&pid_from=%lld",
        key, ch_a, (long long)now + 10800, (long long)now - 10800, cur_pid);
    IT_ASSERT(json_array_size(json_object_get(o, "programs")) == 2, "pid_from");
    json_decref(o);
    json_decref(
        dcall(&e1, 2, "program/list/?client_id=1&authkey=%s&cid=%lld&pid_from=999999", key, ch_a));

    /* Archive URL by pid and by a time inside; pause-live. */
    char want[160];
    it_fmt(want, sizeof(want),
           "http://s1.dc1.example/first/video-%lld-5400.m3u8?token=", (long long)b[0]);
    o = dcall(&e1, 0, "program/url/?client_id=1&authkey=%s&cid=%lld&pid=%lld&redirect=0", key, ch_a,
              pid);
    IT_ASSERT(strncmp(json_string_value(json_object_get(o, "uri")), want, strlen(want)) == 0,
              "archive uri %s, wanted %s...", json_string_value(json_object_get(o, "uri")), want);
    json_decref(o);
    o = dcall(&e1, 0, "program/url/?client_id=1&authkey=%s&cid=%lld&time=%lld&redirect=0", key,
              ch_a, (long long)b[0] + 60);
    IT_ASSERT(strncmp(json_string_value(json_object_get(o, "uri")), want, strlen(want)) == 0,
              "by time");
    json_decref(o);
    it_fmt(want, sizeof(want),
           "http://s1.dc1.example/first/video-%lld-now.m3u8?token=", (long long)b[1]);
    o = dcall(&e1, 0, "program/url/?client_id=1&authkey=%s&cid=%lld&pid=%lld&tv_pause=1&redirect=0",
              key, ch_a, cur_pid);
    IT_ASSERT(strncmp(json_string_value(json_object_get(o, "uri")), want, strlen(want)) == 0,
              "pause-live");
    json_decref(o);
    /* a programme still to come is not in the archive */
    long long next_pid = 0;
    o = dcall(&e1, 0, "program/list/?client_id=1&authkey=%s&cid=%lld&time_from=%lld&time_to=%lld",
              key, ch_a, (long long)b[2], (long long)b[3]);
    next_pid = it_jint(json_array_get(json_object_get(o, "programs"), 0), "id");
    json_decref(o);
    json_decref(dcall(&e1, 404, "program/url/?client_id=1&authkey=%s&cid=%lld&pid=%lld&redirect=0",
                      key, ch_a, next_pid));

    /* The channel list carries the programmes on now and next. */
    o = dcall(&e1, 0, "channel/list/?client_id=1&authkey=%s", key);
    const json_t *a = find_channel(o, ch_a);
    IT_ASSERT(a && strcmp(json_string_value(json_object_get(a, "program_name")), "Now On") == 0 &&
                  strcmp(json_string_value(json_object_get(a, "next_program_name")), "Next Up") ==
                      0 &&
                  it_jint(a, "program_begin_time") == (long long)b[1],
              "now/next in the channel list");
    json_decref(o);
}

static void check_changes_propagate(const char *key)
{
    /* A new channel in the tariff: visible at both edges within 1 s. */
    long long d = it_admin_create(cl, "/admin/v1/clients/1/channels", "channel",
                                  "{\"name\":\"Fresh\",\"number\":4,\"stream_name\":\"fresh\"}");
    char body[128], path[128];
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld,%lld]}", ch_a, ch_b, d);
    it_fmt(path, sizeof(path), "/admin/v1/clients/1/tariffs/%lld/channels", tariff);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
    long long t1 = wait_channel(&e1, key, d, "has_subscription", 1, 5000);
    long long t2 = wait_channel(&e2, key, d, "has_subscription", 1, 5000);
    IT_ASSERT(t1 >= 0 && t1 <= VISIBLE_MS && t2 >= 0 && t2 <= VISIBLE_MS,
              "new channel after %lld / %lld ms", t1, t2);
    fprintf(stderr, "new channel visible after %lld / %lld ms\n", t1, t2);
    /* Removed from the tariff: no longer subscribed, no URL. */
    it_fmt(body, sizeof(body), "{\"ids\":[%lld,%lld]}", ch_a, ch_b);
    it_admin_expect(cl, "PUT", path, body, 200, NULL);
    t1 = wait_channel(&e1, key, d, "has_subscription", 0, 5000);
    t2 = wait_channel(&e2, key, d, "has_subscription", 0, 5000);
    IT_ASSERT(t1 >= 0 && t1 <= VISIBLE_MS && t2 >= 0 && t2 <= VISIBLE_MS,
              "tariff change after %lld / %lld ms", t1, t2);
    json_decref(dcall(&e2, 1, "channel/url/?client_id=1&authkey=%s&cid=%lld&redirect=0", key, d));
}

static void check_account_calls(const char *key)
{
    /* Settings: a favourite shows in the channel list. */
    json_decref(
        dcall(&e1, 0, "settings/save/?client_id=1&authkey=%s&favorite_channel=%lld", key, ch_b));
    IT_ASSERT(wait_channel(&e2, key, ch_b, "is_favorited", 1, 5000) >= 0, "favourite not saved");
    json_decref(dcall(&e1, 1, "settings/save/?client_id=1&authkey=%s&parent_code=12ab", key));

    /* Messages: created by the billing system, read and deleted by the device. */
    json_decref(it_billing_ok(cl, &c1, "account/message/create",
                              IT_KV("abonement", "100002", "subject", "Hello", "text",
                                    "Pay <b>now</b>", "urgent", "1", "delete_after_reading", "0")));
    uint64_t t0 = it_now_ms();
    json_t *o;
    for (;;) {
        o = dcall(&e1, 0, "account/status/?client_id=1&authkey=%s&with_tariffs=1", key);
        if (it_jint(o, "has_new_messages") == 1) {
            break;
        }
        json_decref(o);
        IT_ASSERT(it_now_ms() - t0 < 5000, "message did not arrive");
        it_sleep_ms(50);
    }
    IT_ASSERT(strcmp(json_string_value(json_object_get(json_object_get(o, "message"), "subject")),
                     "Hello") == 0 &&
                  json_integer_value(json_array_get(json_object_get(o, "tariff_ids"), 0)) == tariff,
              "status message and tariffs");
    json_decref(o);
    o = dcall(&e1, 0, "message/list/?client_id=1&authkey=%s", key);
    const json_t *m = json_array_get(json_object_get(o, "messages"), 0);
    char uuid[32];
    it_fmt(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(m, "uuid")));
    IT_ASSERT(it_jint(m, "was_read") == 0 && it_jint(m, "urgent") == 1, "message list");
    json_decref(o);
    o = dcall(&e1, 0, "message/detail/?client_id=1&authkey=%s&uuid=%s", key, uuid);
    IT_ASSERT(strcmp(json_string_value(json_object_get(o, "text")), "Pay <b>now</b>") == 0,
              "message text");
    json_decref(o);
    json_decref(dcall(&e1, 1, "message/detail/?client_id=1&authkey=%s&uuid=424242", key));
    t0 = it_now_ms();
    for (;;) {
        o = dcall(&e2, 0, "account/status/?client_id=1&authkey=%s", key);
        long long unread = it_jint(o, "has_new_messages");
        json_decref(o);
        if (unread == 0) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 5000, "read mark did not arrive");
        it_sleep_ms(50);
    }
    json_decref(dcall(&e1, 0, "message/delete/?client_id=1&authkey=%s&uuid=%s", key, uuid));
    t0 = it_now_ms();
    for (;;) {
        o = dcall(&e1, 0, "message/list/?client_id=1&authkey=%s", key);
        size_t n = json_array_size(json_object_get(o, "messages"));
        json_decref(o);
        if (n == 0) {
            break;
        }
        IT_ASSERT(it_now_ms() - t0 < 5000, "message not deleted");
        it_sleep_ms(50);
    }

    o = dcall(&e1, 0, "customer/info/?client_id=1&authkey=%s", key);
    IT_ASSERT(strcmp(json_string_value(json_object_get(o, "abonement")), "100002") == 0 &&
                  json_array_size(json_object_get(o, "tariffs")) == 1 &&
                  json_string_value(json_object_get(o, "balance")) != NULL,
              "customer info");
    json_decref(o);
    json_decref(dcall(&e1, 1, "customer/device/delete/?client_id=1&authkey=%s&id=99999", key));

    /* Registration (the client allows it) and login with what it gave. */
    o = dcall(&e1, 0, "account/register/?client_id=1&api_key=" APIKEY "&device_uid=reg-box-1");
    const char *pw = json_string_value(json_object_get(o, "password"));
    long long abon = it_jint(o, "abonement");
    IT_ASSERT(pw != NULL && abon > 0, "registration answer");
    char creds[128];
    it_fmt(creds, sizeof(creds), "abonement=%lld&password=%s", abon, pw);
    json_decref(o);
    json_decref(dcall(&e1, 403, "account/register/?client_id=1&api_key=bad&device_uid=x"));
    json_decref(dcall(&e1, 7, "account/register/?client_id=1&api_key=" APIKEY));
    t0 = it_now_ms();
    for (;;) {
        struct it_resp r;
        char pq[256];
        it_fmt(pq, sizeof(pq),
               "noauth/device/exists/?client_id=1&api_key=" APIKEY "&device_uid=reg-box-1");
        dapi(&e2, pq, &r);
        long long err = it_jint(r.json, "error");
        it_resp_close(&r);
        if (err == 0) {
            break;
        }
        IT_ASSERT(err == 2 && it_now_ms() - t0 < 5000, "registered device not visible");
        it_sleep_ms(50);
    }
    /* A registered account has no tariff yet: the login says so. */
    free(login_json(&e2, creds, 8));
    json_decref(dcall(&e2, 1, "noauth/device/exists/?client_id=1&api_key=" APIKEY));
    json_decref(
        dcall(&e2, 2, "noauth/device/exists/?client_id=1&api_key=" APIKEY "&device_uid=nobody"));
}

/* Malformed and hostile requests get an answer and leave the edge serving. */
static void check_bad_input(const char *key)
{
    struct it_resp r;
    size_t big = 100 * 1024;
    char *url = malloc(big + 128);
    IT_ASSERT(url != NULL, "malloc");
    int n = snprintf(url, 128, "http://%s/tvmiddleware/api/channel/list/?x=", EDGE1_ADDR);
    memset(url + n, 'a', big);
    url[n + big] = '\0';
    it_http("GET", url, NULL, 0, NULL, 5000, &r);
    IT_ASSERT(r.status >= 200 && r.status < 500, "huge query: HTTP %ld", r.status);
    it_resp_close(&r);
    memset(url, 'b', big);
    char u2[128];
    it_fmt(u2, sizeof(u2), "http://%s/tvmiddleware/api/settings/save/?client_id=1&authkey=%s",
           EDGE1_ADDR, key);
    static const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    char *body = malloc(300 * 1024);
    IT_ASSERT(body != NULL, "malloc");
    memset(body, 'c', 300 * 1024);
    it_http("POST", u2, body, 300 * 1024, form, 5000, &r);
    IT_ASSERT(r.status == 413, "huge body: HTTP %ld", r.status);
    it_resp_close(&r);
    free(body);
    free(url);
    json_decref(dcall(&e1, 403, "channel/list/?client_id=1&authkey=%%00%%zz%%"));
    json_decref(dcall(&e1, 403, "channel/list/?client_id=abc&authkey=%s", key));
    json_decref(dcall(&e1, 1, "channel/url/?client_id=1&authkey=%s&cid=abc&redirect=0", key));
    json_decref(dcall(&e1, 1, "channel/url/?client_id=1&authkey=%s&cid=-5&redirect=0", key));
    json_decref(dcall(&e1, 1, "program/list/?client_id=1&authkey=%s&cid=%lld&date=1.2", key, ch_a));
    json_decref(
        dcall(&e1, 1, "settings/save/?client_id=1&authkey=%s&channels_sort=%%5B%%7B%%22id", key));
    json_decref(dcall(&e1, 4, "login/?client_id=99999999999999999999&api_key=x"));
    json_decref(dcall(&e1, 0, "account/status/?client_id=1&authkey=%s&device=%s", key,
                      "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"));
    json_t *o = dcall(&e1, 0, "health/check/");
    IT_ASSERT(it_jint(o, "alive") == 1, "the edge still serves");
    json_decref(o);
}

/* Many sessions opened and closed beside a long-lived one: the control
 * plane compacts the revoked ones (device_writes.c) without touching the
 * live session, and every closed one stays refused. */
static void check_session_churn(void)
{
    char *keep = login_json(&e1, "abonement=100004&password=111111", 0);
    char *first = NULL, *last = NULL;
    for (int i = 0; i < 45; i++) {
        char *k = login_json(&e1, "abonement=100004&password=111111", 0);
        json_decref(dcall(&e1, 0, "logout/?client_id=1&authkey=%s", k));
        if (first == NULL) {
            first = k;
        } else {
            free(last);
            last = k;
        }
    }
    IT_ASSERT(it_edge_wait_metric(&e1, "tvmw_edge_journal_pending", 0, NULL, 10000),
              "journal not drained");
    IT_ASSERT(wait_status(&e2, last, 1, 5000) >= 0 && wait_status(&e2, first, 1, 5000) >= 0,
              "a closed session works at the other edge");
    IT_ASSERT(wait_status(&e2, keep, 0, 100) >= 0 && wait_status(&e1, keep, 0, 100) >= 0,
              "the long-lived session was lost");
    free(keep);
    free(first);
    free(last);
}

static void test_device_api(void **state)
{
    (void)state;
    setup_cluster();
    json_t *o = dcall(&e1, 0, "health/check/?check_db_conn=1");
    IT_ASSERT(it_jint(o, "alive") == 1, "health");
    json_decref(o);
    struct it_resp r;
    dapi(&e1, "no/such/method/", &r);
    IT_ASSERT_STATUS(&r, 404);
    it_resp_close(&r);
    check_logins();
    check_session_limits();
    char *key = login_json(&e1, "abonement=100002", 0); /* 100002: abonement-only login */
    check_channels(key);
    check_epg(key);
    check_changes_propagate(key);
    check_account_calls(key);
    check_bad_input(key);
    check_session_churn();

    /* Logout ends the session everywhere. */
    json_decref(dcall(&e1, 0, "logout/?client_id=1&authkey=%s", key));
    IT_ASSERT(wait_status(&e2, key, 1, 5000) >= 0, "logout did not reach e2");
    json_decref(dcall(&e2, 403, "channel/list/?client_id=1&authkey=%s", key));
    free(key);

    /* Deactivation: status 2, then no login. */
    key = login_json(&e1, "abonement=100002", 0);
    json_decref(
        it_billing_ok(cl, &c1, "account/modify",
                      IT_KV("abonement", "100002", "active", "0", "status_reason", "INACTIVE")));
    IT_ASSERT(wait_status(&e2, key, 2, 5000) >= 0 && wait_status(&e1, key, 2, 5000) >= 0,
              "deactivation not visible");
    free(key);
    json_decref(dcall(&e1, 2, "login/?client_id=1&api_key=" APIKEY "&abonement=100002"));
    it_test_ok();
}

/* ---- test 2 ------------------------------------------------------------------------------ */

static void test_outage(void **state)
{
    (void)state;
    char *old = login_json(&e1, "abonement=100004&password=111111", 0);
    IT_ASSERT(wait_status(&e2, old, 0, 5000) >= 0, "session before the outage");
    for (uint64_t id = 1; id <= 3; id++) {
        it_node_kill(cl, id);
    }
    /* Both edges keep logging devices in and serving lists and URLs. */
    char *k1 = login_json(&e1, "abonement=100004&password=111111", 0);
    char *k2 = login_json(&e2, "abonement=100004&password=111111", 0);
    json_t *o = dcall(&e2, 0, "channel/list/?client_id=1&authkey=%s", k1);
    IT_ASSERT(find_channel(o, ch_a) != NULL, "channel list without the control plane");
    json_decref(o);
    free(channel_uri(&e1, k2, ch_a, ""));
    json_decref(dcall(&e1, 0, "logout/?client_id=1&authkey=%s", old));
    IT_ASSERT(it_edge_wait_health(&e1, "stale", 40000), "e1 does not report stale");
    o = dcall(&e1, 0, "health/check/?check_db_conn=1");
    IT_ASSERT(json_array_size(json_object_get(o, "connection_errors")) == 1, "health says stale");
    json_decref(o);
    /* An edge restarted meanwhile serves its saved state. */
    it_edge_stop(&e2);
    it_edge_start(&e2);
    IT_ASSERT(it_edge_wait_health(&e2, "stale", 10000), "restarted e2 does not serve");
    free(login_json(&e2, "abonement=100004&password=111111", 0));
    IT_ASSERT(it_edge_metric(&e1, "tvmw_edge_journal_pending") > 0, "writes wait in the journal");

    /* The cluster returns: the journal replays, the edges converge. */
    for (uint64_t id = 1; id <= 3; id++) {
        IT_ASSERT(it_node_start(cl, id) == 0, "restart node %llu", (unsigned long long)id);
    }
    IT_ASSERT(it_wait_all_ready(cl, 30000) != 0, "no leader after the outage");
    IT_ASSERT(it_edge_wait_health(&e1, "ok", 30000) && it_edge_wait_health(&e2, "ok", 30000),
              "edges did not catch up");
    IT_ASSERT(wait_status(&e2, old, 1, 30000) >= 0, "the outage's logout never arrived");
    IT_ASSERT(it_edge_wait_metric(&e1, "tvmw_edge_journal_pending", 0, NULL, 30000),
              "journal not drained");
    free(old);
    free(k1);
    free(k2);
    it_test_ok();
}

static int group_teardown(void **state)
{
    (void)state;
    if (it_any_failed) {
        it_edge_kill(&e1);
        it_edge_kill(&e2);
        it_edge_dump_log(&e1);
        it_edge_dump_log(&e2);
    } else {
        it_edge_stop(&e1); /* a clean exit (status 0) is part of the test */
        it_edge_stop(&e2);
    }
    it_group_done(cl);
    it_cluster_free(cl);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_device_api, it_test_setup, it_test_teardown),
        cmocka_unit_test_setup_teardown(test_outage, it_test_setup, it_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
