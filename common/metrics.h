/*
 * Prometheus text-format helpers: lock-free histograms and the writers for
 * counters and gauges. Callers own the values; this module only formats.
 */
#ifndef TVMW_COMMON_METRICS_H
#define TVMW_COMMON_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/buf.h"

#define TVMW_HIST_MAX_BUCKETS 20

/* Buckets in seconds: 100us .. 10s, roughly x2.5 apart. */
struct tvmw_hist {
    _Atomic uint64_t counts[TVMW_HIST_MAX_BUCKETS + 1]; /* last one is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
};

/* Any thread. */
void tvmw_hist_observe_ns(struct tvmw_hist *h, uint64_t ns);
void tvmw_hist_write(struct tvmw_buf *out, const char *name, const char *help, struct tvmw_hist *h);
void tvmw_metric_write(struct tvmw_buf *out, const char *name, const char *type, const char *help,
                       double value);

/* The kernel's boot id (changes at every boot), "" if unknown. Stored
 * with LMDB environments opened MDB_NOSYNC: a different id at the next
 * open means an OS crash may have lost their last commits. */
void tvmw_boot_id(char *out, size_t len);

/* Monotonic clock in nanoseconds / wall clock in milliseconds. */
uint64_t tvmw_now_ns(void);
uint64_t tvmw_wall_ms(void);

#endif
