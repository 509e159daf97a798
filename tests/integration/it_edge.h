/*
 * A tvmw-edge process for integration tests: started by fork/exec of
 * $TVMW_EDGE_BIN with a given cluster file, id and data dir; its log goes
 * to a file the test can search and print. Owned by the thread that
 * started it (parent-death signal).
 */
#ifndef TVMW_TESTS_INTEGRATION_IT_EDGE_H
#define TVMW_TESTS_INTEGRATION_IT_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

struct it_edge {
    pid_t pid;
    char id[16];
    char addr[IT_ADDR_MAX];
    char config[IT_PATH_MAX];
    char data_dir[IT_PATH_MAX];
    char log_path[IT_PATH_MAX];
};

void it_edge_define(struct it_edge *e, const char *dir, const char *config, const char *id,
                    const char *addr);
void it_edge_start(struct it_edge *e);
void it_edge_stop(struct it_edge *e);
void it_edge_kill(struct it_edge *e);
void it_edge_dump_log(const struct it_edge *e);
bool it_edge_log_has(const struct it_edge *e, const char *text);
void it_edge_get(const struct it_edge *e, const char *path, struct it_resp *r);
long it_edge_health(const struct it_edge *e, char *out, size_t len, struct it_resp *r);
bool it_edge_wait_health(const struct it_edge *e, const char *want, unsigned timeout_ms);
double it_edge_metric(const struct it_edge *e, const char *name);
bool it_edge_wait_metric(const struct it_edge *e, const char *name, double want, const char *other,
                         unsigned timeout_ms);

#endif
