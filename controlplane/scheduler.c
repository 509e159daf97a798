#include "controlplane/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raft.h>

#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"

struct cp_scheduler {
    const struct tvmw_config *conf;
    struct cp_node *node;
    pthread_t thread;
    pthread_mutex_t mu; /* guards stop */
    pthread_cond_t cv;
    bool stop;
};

int cp_billing_run_once(const struct tvmw_config *conf, struct cp_node *node, uint64_t run_ms)
{
    uint64_t after = 0, t0 = tvmw_now_ns();
    json_int_t charged = 0, deactivated = 0, reactivated = 0, batches = 0;
    for (;;) {
        json_t *p = json_pack("{s:I, s:I, s:I, s:I}", "run_ms", (json_int_t)run_ms, "unit_ms",
                              (json_int_t)conf->billing.period_unit_s * 1000, "after",
                              (json_int_t)after, "limit", (json_int_t)conf->billing.batch);
        char *text = json_dumps(p, JSON_COMPACT);
        json_decref(p);
        if (text == NULL) {
            return -ENOMEM;
        }
        char key[96];
        snprintf(key, sizeof(key), "billing-run:%llu:%llu", (unsigned long long)run_ms,
                 (unsigned long long)after);
        struct cp_cmd cmd = {.type = CP_CMD_BILLING_RUN,
                             .time_ms = run_ms,
                             .payload = text,
                             .payload_len = strlen(text)};
        cp_reqid_make(key, cmd.reqid); /* a retried batch is the same request */
        size_t len = cp_cmd_encoded_size(cmd.payload_len);
        void *buf = raft_malloc(len);
        if (buf == NULL) {
            free(text);
            return -ENOMEM;
        }
        cp_cmd_encode(&cmd, buf, len);
        free(text);
        struct cp_result *res = NULL;
        int rv =
            cp_node_write(node, buf, len, cmd.reqid, conf->http.request_timeout_ms, &res, NULL);
        if (rv != 0) {
            TVMW_LOG_WARN("billing", "run stopped after=%llu: %s (next run retries)",
                          (unsigned long long)after, tvmw_strerror(rv));
            return rv;
        }
        json_t *o = json_loadb(res->body, res->len, 0, NULL);
        cp_result_free(res);
        if (o == NULL) {
            return TVMW_ECORRUPT;
        }
        charged += json_integer_value(json_object_get(o, "charged"));
        deactivated += json_integer_value(json_object_get(o, "deactivated"));
        reactivated += json_integer_value(json_object_get(o, "reactivated"));
        after = (uint64_t)json_integer_value(json_object_get(o, "next"));
        json_decref(o);
        batches++;
        if (after == 0) {
            break;
        }
    }
    TVMW_LOG_INFO("billing",
                  "run done run_ms=%llu batches=%lld charged=%lld deactivated=%lld "
                  "reactivated=%lld took_ms=%llu",
                  (unsigned long long)run_ms, (long long)batches, (long long)charged,
                  (long long)deactivated, (long long)reactivated,
                  (unsigned long long)((tvmw_now_ns() - t0) / 1000000u));
    return 0;
}

static void *run(void *arg)
{
    struct cp_scheduler *s = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns =
            (uint64_t)ts.tv_nsec + (uint64_t)s->conf->billing.check_interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&s->mu);
        while (!s->stop) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            return NULL;
        }
        struct cp_status st;
        cp_node_status(s->node, &st);
        if (st.state == RAFT_LEADER && st.ready) {
            cp_billing_run_once(s->conf, s->node, tvmw_wall_ms());
        }
    }
}

int cp_scheduler_start(const struct tvmw_config *conf, struct cp_node *node,
                       struct cp_scheduler **out)
{
    *out = NULL;
    if (conf->billing.check_interval_ms == 0) {
        return 0; /* built-in billing runs are off */
    }
    struct cp_scheduler *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    s->conf = conf;
    s->node = node;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        free(s);
        return -EAGAIN;
    }
    *out = s;
    return 0;
}

void cp_scheduler_stop(struct cp_scheduler *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
