#include "common/metrics.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const double bucket_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                  0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))
_Static_assert(N_BUCKETS <= TVMW_HIST_MAX_BUCKETS, "too many buckets");

void tvmw_boot_id(char *out, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, (int)len, f) == NULL) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

uint64_t tvmw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tvmw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tvmw_hist_observe_ns(struct tvmw_hist *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    unsigned i = 0;
    while (i < N_BUCKETS && s > bucket_s[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void tvmw_hist_write(struct tvmw_buf *out, const char *name, const char *help, struct tvmw_hist *h)
{
    uint64_t cum = 0;
    tvmw_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (unsigned i = 0; i < N_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        tvmw_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_s[i],
                        (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&h->counts[N_BUCKETS], memory_order_relaxed);
    tvmw_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    tvmw_buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", name,
                    (double)atomic_load(&h->sum_ns) / 1e9, name, (unsigned long long)cum);
}

void tvmw_metric_write(struct tvmw_buf *out, const char *name, const char *type, const char *help,
                       double value)
{
    tvmw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                    value);
}
